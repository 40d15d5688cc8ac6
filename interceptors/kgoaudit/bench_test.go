package kgoaudit_test

import (
	"bytes"
	"context"
	"sync/atomic"
	"syscall"
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

// BenchmarkProduce is the cost of auditing per produced 100-byte record,
// against its peer measured in the same run: three clients of one kfake
// broker produce flat out (async Produce, then Flush) in alternating
// chunks of 20,000 records:
//
//   - plain: no hooks;
//   - audited: hooks and a real Emitter with default settings, writing to
//     a second kfake cluster; a chunk ends when the Emitter has sent all
//     its events (Emitter.Flush), so their cost is counted;
//   - hooks: hooks with an Emitter that encodes and discards (the audit
//     CPU on the application's goroutines, without the audit produce).
//
// It reports ns per record of each (ns/op is the audited one), the added
// cost and the ratio, the CPU time of the whole process per record (plain,
// and added by auditing: brokers included, but insensitive to other
// processes' load), the audit events dropped (the target is 0 with default
// settings: a chunk is a burst the Emitter must absorb) and the most
// events the Emitter held (in flight), which bounds its memory.
// Everything shares the machine's CPUs.
func BenchmarkProduce(b *testing.B) {
	const chunk = 20_000
	app := kafkatest.NewCluster(b)
	kafkatest.CreateTopic(b, app, "bench", 3)
	ac := kafkatest.NewCluster(b)
	kafkatest.CreateTopic(b, ac, audit.DefaultEventsTopic, 3)
	em, err := emitter.New(emitter.Config{Brokers: ac.ListenAddrs()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	type kind struct {
		name string
		cl   *kgo.Client
		wait func() error // after Flush: until the audit trail is out
		took time.Duration
		cpu  time.Duration // of the whole process, brokers included
		n    int
	}
	kinds := []*kind{
		{name: "plain", cl: kafkatest.Client(b, app, kgo.DefaultProduceTopic("bench"))},
		{name: "audited", cl: kafkatest.Client(b, app, kgo.DefaultProduceTopic("bench"), kgo.WithHooks(kgoaudit.New(em))),
			wait: func() error { return em.Flush(ctx) }},
		{name: "hooks", cl: kafkatest.Client(b, app, kgo.DefaultProduceTopic("bench"), kgo.WithHooks(kgoaudit.New(new(encodingEmitter))))},
	}
	maxQueued := 0
	var failed atomic.Int64
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.Add(1)
		}
	}
	var (
		cur     *kind
		inChunk int
		cpu0    time.Duration
		start   time.Time
	)
	begin := func(k *kind) { cur, inChunk, cpu0, start = k, 0, processCPU(), time.Now() }
	end := func() {
		if err := cur.cl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		if cur.wait != nil {
			if err := cur.wait(); err != nil {
				b.Fatal(err)
			}
		}
		cur.took += time.Since(start)
		cur.cpu += processCPU() - cpu0
		cur.n += inChunk
	}
	produce := func() {
		cur.cl.Produce(ctx, &kgo.Record{Key: []byte("order-12345"), Value: benchValue}, promise)
		inChunk++
		if inChunk%1000 == 0 && cur.wait != nil {
			maxQueued = max(maxQueued, em.Stats().Queued)
		}
	}
	for _, k := range kinds { // warm up connections, metadata, pools
		begin(k)
		for range chunk {
			produce()
		}
		end()
		k.took, k.cpu, k.n = 0, 0, 0
	}
	b.ReportAllocs()
	chunks := 0
	begin(kinds[0])
	for b.Loop() {
		if inChunk == chunk {
			end()
			chunks++
			// Rotate the order every round, so no kind always follows
			// the same one.
			round, j := chunks/len(kinds), chunks%len(kinds)
			begin(kinds[(round+j)%len(kinds)])
		}
		produce()
	}
	end()
	if failed.Load() > 0 {
		b.Fatalf("%d produces failed", failed.Load())
	}
	for _, k := range kinds {
		if k.n == 0 {
			b.Skipf("too few records (%d) for a chunk of each kind; raise -benchtime", b.N)
		}
	}
	ns := func(k *kind) float64 { return float64(k.took.Nanoseconds()) / float64(k.n) }
	cpu := func(k *kind) float64 { return float64(k.cpu.Nanoseconds()) / float64(k.n) }
	plain, audited, hooks := ns(kinds[0]), ns(kinds[1]), ns(kinds[2])
	s := em.Stats()
	b.ReportMetric(audited, "ns/op")
	b.ReportMetric(plain, "plain-ns/msg")
	b.ReportMetric(hooks-plain, "hooks-added-ns/msg")
	b.ReportMetric(audited-plain, "added-ns/msg")
	b.ReportMetric(plain/audited, "plain/audited")
	b.ReportMetric(cpu(kinds[0]), "plain-cpu-ns/msg")
	b.ReportMetric(cpu(kinds[1])-cpu(kinds[0]), "added-cpu-ns/msg")
	b.ReportMetric(float64(s.Dropped+s.Failed), "audit-dropped")
	b.ReportMetric(float64(maxQueued), "max-queued")
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

// processCPU is the user+system CPU time the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
