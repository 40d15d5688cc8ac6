package kgoaudit_test

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/interceptors/emitter"
	"github.com/kaudit/kaudit/interceptors/kgoaudit"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
)

// encodingEmitter stands for an Emitter whose queue is always drained: it
// encodes each event synchronously (the work the real worker does before
// producing) into a reused buffer and discards it.
type encodingEmitter struct {
	buf []byte
	n   atomic.Uint64
}

func (e *encodingEmitter) Emit(ev *codecs.Event) bool {
	e.buf = codecs.AppendEvent(e.buf[:0], ev)
	e.n.Add(1)
	return true
}

var benchValue = bytes.Repeat([]byte("v"), 100)

// BenchmarkProduce is the cost per produced 100-byte record through a kfake
// broker: async Produce of every record, one Flush at the end.
//
//   - plain: no hooks.
//   - audited: hooks and a real Emitter writing to a second kfake cluster
//     (the audit producer and its broker share the CPU with the benchmark).
//   - hooks-only: hooks with an Emitter that encodes and discards, i.e. the
//     audit CPU on the application's goroutines without the audit produce.
func BenchmarkProduce(b *testing.B) {
	run := func(b *testing.B, opts ...kgo.Opt) {
		c := kafkatest.NewCluster(b)
		kafkatest.CreateTopic(b, c, "bench", 3)
		cl := kafkatest.Client(b, c, append(opts, kgo.DefaultProduceTopic("bench"))...)
		ctx := context.Background()
		// Warm up connections and metadata.
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: benchValue}).FirstErr(); err != nil {
			b.Fatal(err)
		}
		var failed atomic.Int64
		promise := func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			cl.Produce(ctx, &kgo.Record{Key: []byte("order-12345"), Value: benchValue}, promise)
		}
		if err := cl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if failed.Load() > 0 {
			b.Fatalf("%d produces failed", failed.Load())
		}
	}
	b.Run("plain", func(b *testing.B) { run(b) })
	b.Run("audited", func(b *testing.B) {
		ac := kafkatest.NewCluster(b)
		kafkatest.CreateTopic(b, ac, audit.DefaultEventsTopic, 3)
		em, err := emitter.New(emitter.Config{Brokers: ac.ListenAddrs()})
		if err != nil {
			b.Fatal(err)
		}
		run(b, kgo.WithHooks(kgoaudit.New(em)))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := em.Close(ctx); err != nil {
			b.Fatal(err)
		}
		s := em.Stats()
		b.ReportMetric(float64(s.Dropped)/float64(s.Enqueued+s.Dropped), "dropped/event")
	})
	b.Run("hooks-only", func(b *testing.B) {
		run(b, kgo.WithHooks(kgoaudit.New(new(encodingEmitter))))
	})
}

// BenchmarkHooks isolates the audit CPU per message: the hook calls franz-go
// makes for one record, plus encoding of the event, with no Kafka I/O.
func BenchmarkHooks(b *testing.B) {
	b.Run("produce", func(b *testing.B) {
		em := new(encodingEmitter)
		h := kgoaudit.New(em)
		ctx := context.Background()
		r := &kgo.Record{Topic: "orders", Key: []byte("order-12345"), Value: benchValue}
		hdrs := make([]kgo.RecordHeader, 0, 4)
		b.ReportAllocs()
		var off int64
		for b.Loop() {
			r.Headers, r.Context, r.Timestamp = hdrs[:0], ctx, time.Now()
			h.OnProduceRecordBuffered(r)
			r.Partition, r.Offset = 1, off
			off++
			h.OnProduceRecordUnbuffered(r, nil)
		}
		if em.n.Load() != h.Stats().Produced || h.Stats().Produced == 0 {
			b.Fatalf("emitted %d, hooks %+v", em.n.Load(), h.Stats())
		}
	})
	b.Run("consume", func(b *testing.B) {
		em := new(encodingEmitter)
		h := kgoaudit.New(em, kgoaudit.WithGroup("g"))
		r := &kgo.Record{
			Topic: "orders", Key: []byte("order-12345"), Value: benchValue, Timestamp: time.Now(),
			Headers: []kgo.RecordHeader{{Key: audit.CorrelationHeader, Value: []byte("5f0c3a52-8c1e-4d5b-9a57-0e1c2b3d4f5a")}},
		}
		b.ReportAllocs()
		for b.Loop() {
			h.OnFetchRecordUnbuffered(r, true)
		}
		if h.Stats().Consumed == 0 {
			b.Fatal("nothing audited")
		}
	})
}
