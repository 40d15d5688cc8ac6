package codecs_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kaudit/kaudit/codecs"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "interceptorjson", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The blog's example record: "Fri Jun  7 13:23:43 2024" read as UTC.
var blogExampleNs = time.Date(2024, time.June, 7, 13, 23, 43, 0, time.UTC).UnixNano()

func TestParseBlogRecordExample(t *testing.T) {
	want := codecs.Event{
		Version:       codecs.SchemaVersion,
		Kind:          codecs.KindProduce,
		CorrelationID: "c0613861-f1a9-47f0-9b92-09a2346fe250",
		Topic:         "test_topic",
		Partition:     0,
		Offset:        13,
		ClientID:      "ksb-demo-producer",
		Source:        codecs.InterceptorJSONSource,
		SendNs:        blogExampleNs,
		AckNs:         blogExampleNs,
	}
	// example.json is the record as the blog prints it (pretty, and the
	// timestamp without asctime's newline); produce_compact.json is what
	// the C interceptor actually writes.
	for _, name := range []string{"example.json", "produce_compact.json"} {
		t.Run(name, func(t *testing.T) {
			got, err := codecs.ParseInterceptorRecord(readFixture(t, name))
			if err != nil {
				t.Fatal(err)
			}
			if *got != want {
				t.Fatalf("got  %+v\nwant %+v", *got, want)
			}
		})
	}
}

func TestParseBlogRecordConsume(t *testing.T) {
	got, err := codecs.ParseInterceptorRecord(readFixture(t, "consume_compact.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := codecs.Event{
		Version:       codecs.SchemaVersion,
		Kind:          codecs.KindConsume,
		CorrelationID: "c0613861-f1a9-47f0-9b92-09a2346fe250",
		Topic:         "test_topic",
		Offset:        13,
		Group:         "ksb-demo-group",
		Source:        codecs.InterceptorJSONSource,
		ConsumeNs:     blogExampleNs + 2*int64(time.Second),
	}
	if *got != want {
		t.Fatalf("got  %+v\nwant %+v", *got, want)
	}

	// Unknown keys are ignored.
	got, err = codecs.ParseInterceptorRecord(readFixture(t, "consume_extra_key.json"))
	if err != nil {
		t.Fatal(err)
	}
	wantNs := time.Date(2024, time.June, 17, 9, 5, 1, 0, time.UTC).UnixNano()
	if got.Kind != codecs.KindConsume || got.Group != "ksb-demo-group" || got.Partition != 2 || got.Offset != 1024 || got.ConsumeNs != wantNs {
		t.Fatalf("consume_extra_key.json: %+v", *got)
	}
}

// The writers' local time: 13:23:43 in UTC+2 is 11:23:43 UTC.
func TestParseBlogRecordIn(t *testing.T) {
	cest := time.FixedZone("CEST", 2*60*60)
	got, err := codecs.ParseInterceptorRecordIn(readFixture(t, "produce_compact.json"), cest)
	if err != nil {
		t.Fatal(err)
	}
	if want := blogExampleNs - 2*int64(time.Hour); got.AckNs != want || got.SendNs != want {
		t.Fatalf("send %d ack %d, want both %d", got.SendNs, got.AckNs, want)
	}
	utc, err := codecs.ParseInterceptorRecordIn(readFixture(t, "produce_compact.json"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if utc.AckNs != blogExampleNs {
		t.Fatalf("nil location: ack %d, want UTC %d", utc.AckNs, blogExampleNs)
	}
}

func TestParseBlogTime(t *testing.T) {
	for _, s := range []string{
		"Fri Jun  7 13:23:43 2024",
		"Fri Jun  7 13:23:43 2024\n",
		"Fri Jun 07 13:23:43 2024", // not what asctime writes, but unambiguous
	} {
		ns, err := codecs.ParseInterceptorTime(s, nil)
		if err != nil {
			t.Errorf("%q: %v", s, err)
			continue
		}
		if ns != blogExampleNs {
			t.Errorf("%q: %d, want %d", s, ns, blogExampleNs)
		}
	}
	for _, s := range []string{
		"",
		"\n",
		"Fri Jun  7 13:23:43 2024\n\n",
		"Fri Jun  7 13:23:43 2024 ",
		" Fri Jun  7 13:23:43 2024",
		"fri Jun  7 13:23:43 2024", // asctime capitalizes
		"Sat Jun  7 13:23:43 2024", // wrong weekday
		"Fri Jun 31 13:23:43 2024",
		"Fri Jun  7 25:23:43 2024",
		"Fri Jun  7 13:23:43 24",
		"Thu Jan  1 00:00:00 1970", // Unix time 0 means "unknown" in an Event
		"Wed Dec 31 23:59:59 1969",
		"Sat Jan  1 00:00:00 2262",
		"2024-06-07T13:23:43Z",
	} {
		if ns, err := codecs.ParseInterceptorTime(s, nil); err == nil {
			t.Errorf("%q: parsed as %d, want an error", s, ns)
		} else if !errors.Is(err, codecs.ErrMalformed) {
			t.Errorf("%q: %v does not wrap ErrMalformed", s, err)
		}
	}
}

func TestParseBlogRecordInvalid(t *testing.T) {
	// Records that are valid JSON objects of the right shape but make an
	// invalid event fail validation; everything else is malformed.
	invalidEvent := map[string]bool{
		"consume_without_group.json": true,
		"empty_correlation_id.json":  true,
	}
	files, err := os.ReadDir(filepath.Join("testdata", "interceptorjson", "invalid"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("only %d invalid fixtures", len(files))
	}
	for _, f := range files {
		t.Run(f.Name(), func(t *testing.T) {
			b := readFixture(t, filepath.Join("invalid", f.Name()))
			e, err := codecs.ParseInterceptorRecord(b)
			if err == nil {
				t.Fatalf("parsed %q as %+v, want an error", b, *e)
			}
			if e != nil {
				t.Errorf("non-nil event with error %v", err)
			}
			if got := errors.Is(err, codecs.ErrMalformed); got == invalidEvent[f.Name()] {
				t.Errorf("errors.Is(%v, ErrMalformed) = %v", err, got)
			}
		})
	}
}

// AppendInterceptorRecord reproduces the C interceptors' records byte for byte.
func TestAppendBlogRecordExact(t *testing.T) {
	for _, name := range []string{"produce_compact.json", "consume_compact.json"} {
		t.Run(name, func(t *testing.T) {
			want := readFixture(t, name)
			e, err := codecs.ParseInterceptorRecord(want)
			if err != nil {
				t.Fatal(err)
			}
			if got := codecs.AppendInterceptorRecord(nil, e); string(got) != string(want) {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
		})
	}
}

func TestAppendBlogRecordIn(t *testing.T) {
	e := codecs.Event{
		Version: codecs.SchemaVersion, Kind: codecs.KindConsume, CorrelationID: "id", Topic: "t", Group: "g",
		ClientID:  "not written: the blog writes the group",
		ConsumeNs: time.Date(2024, time.December, 31, 23, 59, 59, 999_999_999, time.UTC).UnixNano(),
	}
	got := codecs.AppendInterceptorRecordIn([]byte("prefix:"), &e, time.FixedZone("UTC+1", 60*60))
	want := `prefix:{"timestamp":"Wed Jan  1 00:59:59 2025\n","correlation_id":"id","action":"consume","topic":"t","client":"g","partition":0,"offset":0}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	// A failed produce (no ack time) is stamped with its send time.
	p := codecs.Event{Version: codecs.SchemaVersion, Kind: codecs.KindProduce, CorrelationID: "id", Topic: "t",
		ClientID: "c", SendNs: blogExampleNs + 500_000_000, Offset: -1, Partition: -1, Error: "boom"}
	got = codecs.AppendInterceptorRecord(nil, &p)
	want = `{"timestamp":"Fri Jun  7 13:23:43 2024\n","correlation_id":"id","action":"produce","topic":"t","client":"c","partition":-1,"offset":-1}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// Strings are escaped as jansson escapes them, and whatever is written
// parses back to the same strings (invalid UTF-8 becomes U+FFFD).
func TestAppendBlogRecordEscaping(t *testing.T) {
	e := codecs.Event{
		Version: codecs.SchemaVersion, Kind: codecs.KindProduce, SendNs: blogExampleNs, AckNs: blogExampleNs,
		CorrelationID: "quote\" backslash\\ slash/ tab\t nl\n cr\r bs\b ff\f us\x1f nul\x00 del\x7f",
		Topic:         "ünïcödé €😀 <&>",
		ClientID:      "bad utf8 \xff\xfe end",
	}
	got := string(codecs.AppendInterceptorRecord(nil, &e))
	for _, want := range []string{
		`"correlation_id":"quote\" backslash\\ slash/ tab\t nl\n cr\r bs\b ff\f us\u001F nul\u0000 del` + "\x7f" + `"`,
		`"topic":"ünïcödé €😀 <&>"`,
		`"client":"bad utf8 ` + "\uFFFD\uFFFD" + ` end"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %s\nin %s", want, got)
		}
	}
	if !json.Valid([]byte(got)) {
		t.Fatalf("invalid JSON: %s", got)
	}
	back, err := codecs.ParseInterceptorRecord([]byte(got))
	if err != nil {
		t.Fatal(err)
	}
	if back.CorrelationID != e.CorrelationID || back.Topic != e.Topic || back.ClientID != "bad utf8 \uFFFD\uFFFD end" {
		t.Fatalf("round trip: %+v", *back)
	}
}

func TestAppendBlogRecordAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	e, err := codecs.ParseInterceptorRecord(readFixture(t, "produce_compact.json"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() { buf = codecs.AppendInterceptorRecord(buf[:0], e) }); n != 0 {
		t.Fatalf("%v allocations per AppendInterceptorRecord, want 0", n)
	}
}

func ExampleParseInterceptorRecord() {
	// A record from the blog's audit topic, as its C interceptor writes it.
	value := []byte(`{"timestamp":"Fri Jun  7 13:23:43 2024\n","correlation_id":"c0613861-f1a9-47f0-9b92-09a2346fe250","action":"produce","topic":"test_topic","client":"ksb-demo-producer","partition":0,"offset":13}`)
	e, err := codecs.ParseInterceptorRecord(value)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(e.Kind, e.CorrelationID, e.Topic, e.Partition, e.Offset, e.ClientID, e.Source)
	fmt.Println(time.Unix(0, e.AckNs).UTC())
	// Output:
	// produce c0613861-f1a9-47f0-9b92-09a2346fe250 test_topic 0 13 ksb-demo-producer interceptor-json
	// 2024-06-07 13:23:43 +0000 UTC
}

func ExampleAppendInterceptorRecord() {
	e := codecs.Event{
		Version:       codecs.SchemaVersion,
		Kind:          codecs.KindConsume,
		CorrelationID: "c0613861-f1a9-47f0-9b92-09a2346fe250",
		Topic:         "test_topic",
		Group:         "ksb-demo-group",
		Offset:        13,
		ConsumeNs:     time.Date(2024, time.June, 7, 13, 23, 45, 0, time.UTC).UnixNano(),
	}
	fmt.Printf("%s\n", codecs.AppendInterceptorRecord(nil, &e))
	// Output:
	// {"timestamp":"Fri Jun  7 13:23:45 2024\n","correlation_id":"c0613861-f1a9-47f0-9b92-09a2346fe250","action":"consume","topic":"test_topic","client":"ksb-demo-group","partition":0,"offset":13}
}
