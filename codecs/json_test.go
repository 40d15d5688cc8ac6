package codecs_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/kaudit/kaudit/codecs"
)

func TestEventJSONRoundTrip(t *testing.T) {
	for name, e := range map[string]codecs.Event{
		"produce": produceEvent(), "consume": consumeEvent(), "max": extremeEvent(+1), "min": extremeEvent(-1),
		"drops": dropsEvent(), "drops max": extremeDrops(+1), "drops min": extremeDrops(-1),
	} {
		b, err := json.Marshal(&e)
		if err != nil {
			t.Fatalf("%s: marshal: %v", name, err)
		}
		got := extremeEvent(+1)
		if err := codecs.UnmarshalEventJSON(b, &got); err != nil {
			t.Fatalf("%s: UnmarshalEventJSON(%s): %v", name, b, err)
		}
		if got != e {
			t.Fatalf("%s: round trip:\n got %+v\nwant %+v", name, got, e)
		}
	}
}

func TestVerdictJSONRoundTrip(t *testing.T) {
	for name, v := range map[string]codecs.Verdict{
		"delivered": deliveredVerdict(), "max": extremeVerdict(+1), "min": extremeVerdict(-1),
	} {
		b, err := json.Marshal(&v)
		if err != nil {
			t.Fatalf("%s: marshal: %v", name, err)
		}
		got := extremeVerdict(+1)
		if err := codecs.UnmarshalVerdictJSON(b, &got); err != nil {
			t.Fatalf("%s: UnmarshalVerdictJSON(%s): %v", name, b, err)
		}
		if got != v {
			t.Fatalf("%s: round trip:\n got %+v\nwant %+v", name, got, v)
		}
	}
}

func TestJSONShape(t *testing.T) {
	e := produceEvent()
	b, err := json.Marshal(&e)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["kind"] != "produce" || m["v"] != float64(1) || m["topic"] != "orders" || m["correlation_id"] != e.CorrelationID {
		t.Errorf("event JSON %s: want kind \"produce\", v 1, topic, correlation_id", b)
	}
	if _, ok := m["group"]; ok {
		t.Errorf("event JSON %s: empty group written", b)
	}

	d := dropsEvent()
	if b, err = json.Marshal(&d); err != nil {
		t.Fatal(err)
	}
	m = nil
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["kind"] != "drops" || m["dropped_kind"] != "consume" || m["dropped"] != float64(17) ||
		m["window_start_ns"] != float64(d.WindowStartNs) || m["window_end_ns"] != float64(d.WindowEndNs) {
		t.Errorf("drops JSON %s: want kind \"drops\", dropped_kind \"consume\", dropped 17, the window", b)
	}
	if b, err = json.Marshal(&e); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"dropped", "dropped_kind", "window_start_ns", "window_end_ns"} {
		if strings.Contains(string(b), `"`+k+`"`) {
			t.Errorf("produce JSON %s carries %q", b, k)
		}
	}

	v := deliveredVerdict()
	if b, err = json.Marshal(&v); err != nil {
		t.Fatal(err)
	}
	m = nil
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["status"] != "DELIVERED" || m["group"] != "billing" || m["ack_latency_us"] != float64(1543) {
		t.Errorf("verdict JSON %s: want status \"DELIVERED\", group, ack_latency_us", b)
	}
}

func TestUnmarshalEventJSONRejects(t *testing.T) {
	for name, tc := range map[string]struct{ in, want string }{
		"unknown kind":      {`{"v":1,"kind":"teleport","correlation_id":"c","topic":"t"}`, `unknown event kind "teleport"`},
		"numeric kind":      {`{"v":1,"kind":1,"correlation_id":"c","topic":"t"}`, "json event"},
		"missing kind":      {`{"v":1,"correlation_id":"c","topic":"t"}`, "invalid event kind"},
		"missing version":   {`{"kind":"produce","correlation_id":"c","topic":"t"}`, "unsupported event version 0"},
		"consume w/o group": {`{"v":1,"kind":"consume","correlation_id":"c","topic":"t"}`, "without consumer group"},
		"drops w/o kind":    {`{"v":1,"kind":"drops","correlation_id":"c","topic":"t","dropped":1,"window_start_ns":1,"window_end_ns":2}`, "invalid dropped_kind 0"},
		"drops of drops":    {`{"v":1,"kind":"drops","correlation_id":"c","topic":"t","dropped":1,"window_start_ns":1,"window_end_ns":2,"dropped_kind":"drops"}`, "invalid dropped_kind 3"},
		"drops, none":       {`{"v":1,"kind":"drops","correlation_id":"c","topic":"t","window_start_ns":1,"window_end_ns":2,"dropped_kind":"consume"}`, "dropped 0"},
		"drops, no window":  {`{"v":1,"kind":"drops","correlation_id":"c","topic":"t","dropped":1,"dropped_kind":"consume"}`, "invalid window [0, 0]"},
		"wrong type":        {`{"v":1,"kind":"produce","correlation_id":"c","topic":"t","offset":"12"}`, "json event"},
		"trailing garbage":  {`{"v":1,"kind":"produce","correlation_id":"c","topic":"t"} x`, "json event"},
		"null":              {`null`, "unsupported event version 0"},
		"empty":             {``, "json event"},
	} {
		var e codecs.Event
		err := codecs.UnmarshalEventJSON([]byte(tc.in), &e)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", name, err, tc.want)
		}
	}
	if err := codecs.UnmarshalEventJSON([]byte(`{}`), nil); err == nil {
		t.Error("UnmarshalEventJSON into nil: no error")
	}
}

func TestUnmarshalVerdictJSONRejects(t *testing.T) {
	for name, tc := range map[string]struct{ in, want string }{
		"unknown status": {`{"v":1,"correlation_id":"c","topic":"t","group":"g","status":"FINE"}`, `unknown status "FINE"`},
		"UNKNOWN status": {`{"v":1,"correlation_id":"c","topic":"t","group":"g","status":"UNKNOWN"}`, `unknown status "UNKNOWN"`},
		"no status":      {`{"v":1,"correlation_id":"c","topic":"t","group":"g"}`, "invalid verdict status 0"},
		"no group":       {`{"v":1,"correlation_id":"c","topic":"t","status":"LOST"}`, "without consumer group"},
	} {
		var v codecs.Verdict
		err := codecs.UnmarshalVerdictJSON([]byte(tc.in), &v)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", name, err, tc.want)
		}
	}
}

func TestUnmarshalEventJSONIgnoresUnknownKeys(t *testing.T) {
	var e codecs.Event
	in := `{"v":1,"kind":"consume","correlation_id":"c","topic":"t","group":"g","added_later":{"x":[1,2]}}`
	if err := codecs.UnmarshalEventJSON([]byte(in), &e); err != nil {
		t.Fatal(err)
	}
	want := codecs.Event{Version: 1, Kind: codecs.KindConsume, CorrelationID: "c", Topic: "t", Group: "g"}
	if e != want {
		t.Fatalf("got %+v, want %+v", e, want)
	}
}

func TestDecodeEventDetectsFormat(t *testing.T) {
	e := produceEvent()
	js, err := json.Marshal(&e)
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string][]byte{
		"binary":            codecs.AppendEvent(nil, &e),
		"json":              js,
		"json, whitespace":  append([]byte(" \t\r\n"), js...),
		"json, indented":    mustIndent(t, js),
		"binary, unknown 1": cat(unknownFields(), codecs.AppendEvent(nil, &e)),
	} {
		got, err := codecs.DecodeEvent(in)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		} else if *got != e {
			t.Errorf("%s: got %+v, want %+v", name, *got, e)
		}
	}
	for name, in := range map[string]string{
		"empty":      "",
		"whitespace": "  \n",
		"array":      `[{"v":1}]`,
		"bad json":   `{"v":`,
		"garbage":    "\xff\xfe",
	} {
		if got, err := codecs.DecodeEvent([]byte(in)); err == nil || got != nil {
			t.Errorf("%s: DecodeEvent = %v, %v; want nil, error", name, got, err)
		}
	}
}

func TestDecodeVerdictDetectsFormat(t *testing.T) {
	v := deliveredVerdict()
	js, err := json.Marshal(&v)
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string][]byte{"binary": codecs.AppendVerdict(nil, &v), "json": append([]byte("\n"), js...)} {
		got, err := codecs.DecodeVerdict(in)
		if err != nil || *got != v {
			t.Errorf("%s: DecodeVerdict = %+v, %v", name, got, err)
		}
	}
	if got, err := codecs.DecodeVerdict([]byte("{")); err == nil || got != nil {
		t.Errorf("DecodeVerdict(\"{\") = %v, %v; want nil, error", got, err)
	}
	if _, err := codecs.DecodeVerdict([]byte{0x08}); !errors.Is(err, codecs.ErrMalformed) {
		t.Errorf("DecodeVerdict(truncated binary): %v, want ErrMalformed", err)
	}
}

func mustIndent(t *testing.T, js []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.Indent(&b, js, "", "  "); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
