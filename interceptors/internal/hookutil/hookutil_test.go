package hookutil_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kaudit/kaudit/interceptors/internal/hookutil"
)

type hdr struct {
	k []byte
	v string
}

func TestIndex(t *testing.T) {
	hs := []hdr{{k: []byte("trace")}, {k: []byte("correlation_id"), v: "a"}, {k: []byte("correlation_id"), v: "b"}}
	key := func(h *hdr) []byte { return h.k }
	if i := hookutil.Index(hs, key); i != 1 {
		t.Errorf("Index = %d, want 1 (the first correlation_id)", i)
	}
	if i := hookutil.Index(hs[:1], key); i != -1 {
		t.Errorf("Index without the header = %d, want -1", i)
	}
	strs := []string{"x", "correlation_id"}
	if i := hookutil.Index(strs, func(s *string) string { return *s }); i != 1 {
		t.Errorf("Index over strings = %d, want 1", i)
	}
}

func TestUnixNano(t *testing.T) {
	if hookutil.UnixNano(time.Time{}) != 0 || hookutil.UnixNano(time.Unix(0, 42)) != 42 {
		t.Error("UnixNano: want 0 for the zero time, the nanoseconds otherwise")
	}
}

func TestGuard(t *testing.T) {
	var logs bytes.Buffer
	g := &hookutil.Guard{Log: slog.New(slog.NewTextHandler(&logs, nil)), Msg: "recovered"}
	for range 5 {
		func() {
			defer g.Recover()
			panic("boom")
		}()
	}
	if g.Panics() != 5 {
		t.Errorf("Panics = %d, want 5", g.Panics())
	}
	if n := strings.Count(logs.String(), "recovered"); n != 3 { // 1st, 2nd, 4th
		t.Errorf("%d log lines for 5 panics, want 3:\n%s", n, logs.String())
	}
	var quiet hookutil.Guard // zero value: counts, logs nothing
	func() {
		defer quiet.Recover()
		panic("boom")
	}()
	if quiet.Panics() != 1 {
		t.Error("zero Guard did not count")
	}
}
