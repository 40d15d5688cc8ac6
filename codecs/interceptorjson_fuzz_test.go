package codecs_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kaudit/kaudit/codecs"
)

// FuzzParseInterceptorRecord: ParseInterceptorRecord never panics; what it accepts is a
// valid event that AppendInterceptorRecord writes back as a record parsing to the
// same event, and a second write is byte for byte the first.
func FuzzParseInterceptorRecord(f *testing.F) {
	for _, dir := range []string{"", "invalid"} {
		files, err := os.ReadDir(filepath.Join("testdata", "interceptorjson", dir))
		if err != nil {
			f.Fatal(err)
		}
		for _, fi := range files {
			if fi.IsDir() {
				continue
			}
			f.Add(readFixture(f, filepath.Join(dir, fi.Name())))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := codecs.ParseInterceptorRecord(b)
		if err != nil {
			if e != nil {
				t.Fatalf("event %+v returned with error %v", *e, err)
			}
			return
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("parsed an invalid event %+v: %v", *e, err)
		}
		if e.Source != codecs.InterceptorJSONSource {
			t.Fatalf("source %q", e.Source)
		}
		out := codecs.AppendInterceptorRecord(nil, e)
		again, err := codecs.ParseInterceptorRecord(out)
		if err != nil {
			t.Fatalf("written record %s does not parse: %v", out, err)
		}
		if *again != *e {
			t.Fatalf("round trip:\n got %+v\nwant %+v\nvia %s", *again, *e, out)
		}
		if out2 := codecs.AppendInterceptorRecord(nil, again); string(out2) != string(out) {
			t.Fatalf("second write differs:\n%s\n%s", out2, out)
		}
	})
}
