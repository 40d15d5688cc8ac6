package codecs_test

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/kaudit/kaudit/codecs"
)

func eventSeeds() []codecs.Event {
	return []codecs.Event{produceEvent(), consumeEvent(), extremeEvent(+1), extremeEvent(-1),
		dropsEvent(), extremeDrops(+1), extremeDrops(-1)}
}

func FuzzUnmarshalEvent(f *testing.F) {
	for _, e := range eventSeeds() {
		b := codecs.AppendEvent(nil, &e)
		f.Add(b)
		f.Add(cat(b, unknownFields()))
		f.Add(b[:len(b)/2])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var e codecs.Event
		if err := codecs.UnmarshalEvent(b, &e); err != nil {
			return
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("decoded an invalid event: %v", err)
		}
		var again codecs.Event
		if err := codecs.UnmarshalEvent(codecs.AppendEvent(nil, &e), &again); err != nil {
			t.Fatalf("re-encoded event does not decode: %v", err)
		}
		if again != e {
			t.Fatalf("re-encode round trip:\n got %+v\nwant %+v", again, e)
		}
	})
}

func FuzzUnmarshalVerdict(f *testing.F) {
	for _, v := range []codecs.Verdict{deliveredVerdict(), extremeVerdict(+1), extremeVerdict(-1)} {
		b := codecs.AppendVerdict(nil, &v)
		f.Add(b)
		f.Add(cat(unknownFields(), b))
		f.Add(b[:len(b)/2])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v codecs.Verdict
		if err := codecs.UnmarshalVerdict(b, &v); err != nil {
			return
		}
		if err := v.Validate(); err != nil {
			t.Fatalf("decoded an invalid verdict: %v", err)
		}
		var again codecs.Verdict
		if err := codecs.UnmarshalVerdict(codecs.AppendVerdict(nil, &v), &again); err != nil {
			t.Fatalf("re-encoded verdict does not decode: %v", err)
		}
		if again != v {
			t.Fatalf("re-encode round trip:\n got %+v\nwant %+v", again, v)
		}
	})
}

func FuzzDecodeEvent(f *testing.F) {
	for _, e := range eventSeeds() {
		f.Add(codecs.AppendEvent(nil, &e))
		js, err := json.Marshal(&e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(js)
		f.Add(append([]byte(" \n"), js[:len(js)-1]...))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := codecs.DecodeEvent(b)
		if err != nil {
			if e != nil {
				t.Fatalf("DecodeEvent returned %+v with error %v", e, err)
			}
			return
		}
		again, err := codecs.DecodeEvent(codecs.AppendEvent(nil, e))
		if err != nil {
			t.Fatalf("binary re-encoding does not decode: %v", err)
		}
		if *again != *e {
			t.Fatalf("binary round trip:\n got %+v\nwant %+v", *again, *e)
		}
		// JSON replaces invalid UTF-8, which only binary input can carry.
		if !utf8Event(e) {
			return
		}
		js, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("json.Marshal of a decoded event: %v", err)
		}
		if again, err = codecs.DecodeEvent(js); err != nil || *again != *e {
			t.Fatalf("JSON round trip of %s: %+v, %v; want %+v", js, again, err, *e)
		}
	})
}

func utf8Event(e *codecs.Event) bool {
	for _, s := range []string{e.CorrelationID, e.Topic, e.ClientID, e.Group, e.Host, e.Source, e.Error} {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}
