package codecs_test

import (
	"encoding/json"
	"testing"

	"github.com/kaudit/kaudit/codecs"
)

func BenchmarkAppendEvent(b *testing.B) {
	e := produceEvent()
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = codecs.AppendEvent(buf[:0], &e)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkUnmarshalEvent(b *testing.B) {
	e := produceEvent()
	buf := codecs.AppendEvent(nil, &e)
	var got codecs.Event
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if err := codecs.UnmarshalEvent(buf, &got); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendVerdict(b *testing.B) {
	v := deliveredVerdict()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = codecs.AppendVerdict(buf[:0], &v)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkUnmarshalVerdict(b *testing.B) {
	v := deliveredVerdict()
	buf := codecs.AppendVerdict(nil, &v)
	var got codecs.Verdict
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if err := codecs.UnmarshalVerdict(buf, &got); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDigest(b *testing.B) {
	key, value := []byte("order-42"), make([]byte, 1024)
	b.SetBytes(int64(len(key) + len(value)))
	b.ReportAllocs()
	for b.Loop() {
		_ = codecs.Digest(key, value)
	}
}

// BenchmarkEventJSON is the JSON encoding for comparison: marshal, then
// UnmarshalEventJSON.
func BenchmarkEventJSON(b *testing.B) {
	e := produceEvent()
	b.Run("marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(&e); err != nil {
				b.Fatal(err)
			}
		}
	})
	js, err := json.Marshal(&e)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("unmarshal", func(b *testing.B) {
		var got codecs.Event
		b.SetBytes(int64(len(js)))
		b.ReportAllocs()
		for b.Loop() {
			if err := codecs.UnmarshalEventJSON(js, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
}
