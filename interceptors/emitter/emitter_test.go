package emitter_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/interceptors/emitter"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
)

// saramaPartition is the partition goka's producer picks for key.
func saramaPartition(t testing.TB, key []byte, n int32) int32 {
	t.Helper()
	p := sarama.NewCustomHashPartitioner(fnv.New32a)("any")
	got, err := p.Partition(&sarama.ProducerMessage{Key: sarama.ByteEncoder(key)}, n)
	if err != nil {
		t.Fatalf("sarama partition: %v", err)
	}
	return got
}

func TestPartitionerMatchesGoka(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		key := make([]byte, rng.IntN(64))
		for j := range key {
			key[j] = byte(rng.Uint32())
		}
		n := 1 + i%97
		tp := audit.Partitioner().ForTopic("kaudit.events")
		got := tp.Partition(&kgo.Record{Key: key}, n)
		if want := saramaPartition(t, key, int32(n)); int32(got) != want {
			t.Fatalf("key %x, %d partitions: emitter partition %d, goka/sarama %d", key, n, got, want)
		}
	}
}

func event(i int) *codecs.Event {
	return &codecs.Event{
		Version:       codecs.SchemaVersion,
		Kind:          codecs.KindProduce,
		CorrelationID: fmt.Sprintf("cid-%06d", i),
		Topic:         "orders",
		Partition:     int32(i % 3),
		Offset:        int64(i),
		ClientID:      "test",
		Source:        "franz-go",
		SendNs:        int64(1000 + i),
		AckNs:         int64(2000 + i),
		PayloadSize:   int32(i),
		Digest:        uint64(i) * 7919,
	}
}

// TestEmitSendsAndCloseFlushes emits events immediately before Close and
// checks that every one of them is in the audit topic, keyed by correlation
// ID, in the partition goka would choose, and decodes to what was emitted.
func TestEmitSendsAndCloseFlushes(t *testing.T) {
	c := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, c, audit.DefaultEventsTopic, 3)

	em, err := emitter.New(emitter.Config{Brokers: c.ListenAddrs()})
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	want := make(map[string]*codecs.Event, n)
	for i := range n {
		ev := event(i)
		want[ev.CorrelationID] = event(i) // a copy: the emitter owns ev
		if !em.Emit(ev) {
			t.Fatalf("Emit %d refused", i)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := em.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if s := em.Stats(); s != (emitter.Stats{Enqueued: n, Sent: n}) {
		t.Fatalf("Stats after Close = %+v, want %d enqueued and sent", s, n)
	}

	recs := kafkatest.Consume(t, c, audit.DefaultEventsTopic, n+1, 3*time.Second)
	if len(recs) != n {
		t.Fatalf("audit topic has %d records, want %d", len(recs), n)
	}
	for _, r := range recs {
		got, err := codecs.DecodeEvent(r.Value)
		if err != nil {
			t.Fatalf("decode %x: %v", r.Value, err)
		}
		w, ok := want[got.CorrelationID]
		if !ok {
			t.Fatalf("unexpected or duplicate event %+v", got)
		}
		delete(want, got.CorrelationID)
		if *got != *w {
			t.Errorf("event = %+v, want %+v", got, w)
		}
		if string(r.Key) != got.CorrelationID {
			t.Errorf("record key %q, correlation ID %q", r.Key, got.CorrelationID)
		}
		if p := saramaPartition(t, r.Key, 3); r.Partition != p {
			t.Errorf("key %q in partition %d, goka expects %d", r.Key, r.Partition, p)
		}
	}

	if em.Emit(event(n)) {
		t.Error("Emit after Close accepted the event")
	}
	if s := em.Stats(); s.Dropped != 1 {
		t.Errorf("Dropped after Emit on closed emitter = %d, want 1", s.Dropped)
	}
	if err := em.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// unreachable returns a loopback address nothing listens on.
func unreachable(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// countingHandler counts log records by message.
type countingHandler struct {
	mu   sync.Mutex
	msgs map[string]int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *countingHandler) WithGroup(string) slog.Handler            { return h }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs[r.Message]++
	return nil
}

func (h *countingHandler) count(substr string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for m, c := range h.msgs {
		if strings.Contains(m, substr) {
			n += c
		}
	}
	return n
}

// TestQueueFullDropsWithoutBlocking points the emitter at a dead broker
// with a tiny queue and client buffer: Emit must keep returning at once,
// count the drops, and log them once, not per event.
func TestQueueFullDropsWithoutBlocking(t *testing.T) {
	logs := &countingHandler{msgs: map[string]int{}}
	em, err := emitter.New(emitter.Config{
		Brokers:    []string{unreachable(t)},
		ClientOpts: []kgo.Opt{kgo.MaxBufferedRecords(8)},
		QueueSize:  4,
		Logger:     slog.New(logs),
		LogEvery:   time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	var slowest time.Duration
	start := time.Now()
	for i := range n {
		t0 := time.Now()
		em.Emit(event(i))
		slowest = max(slowest, time.Since(t0))
	}
	total := time.Since(start)
	s := em.Stats()
	t.Logf("%d Emits in %v (slowest %v): %+v", n, total, slowest, s)
	if s.Enqueued+s.Dropped != n {
		t.Fatalf("enqueued %d + dropped %d != %d emitted", s.Enqueued, s.Dropped, n)
	}
	// At most queue (4) + client buffer (8) + the one the worker holds.
	if s.Enqueued > 4+8+1 || s.Dropped < n-13 {
		t.Fatalf("dead audit cluster: %+v, want at most 13 enqueued", s)
	}
	if slowest > 100*time.Millisecond {
		t.Errorf("an Emit took %v; Emit must not block", slowest)
	}
	if got := logs.count("dropping"); got != 1 {
		t.Errorf("%d drop log lines for %d drops, want 1 (rate-limited)", got, s.Dropped)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	closeStart := time.Now()
	err = em.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), fmt.Sprintf(" %d audit events undelivered", s.Enqueued)) {
		t.Fatalf("Close against a dead cluster = %v, want %d undelivered, deadline exceeded", err, s.Enqueued)
	}
	if d := time.Since(closeStart); d > 5*time.Second {
		t.Errorf("Close took %v with a 300ms context", d)
	}
	s = em.Stats()
	if s.Sent != 0 || s.Failed != s.Enqueued || s.Queued != 0 {
		t.Errorf("after Close: %+v, want every enqueued event failed and none queued", s)
	}
	if got := logs.count("failed"); got != 1 {
		t.Errorf("%d failure log lines for %d failures, want 1 (rate-limited)", got, s.Failed)
	}
}

func TestEnqueueTimeoutWaitsBounded(t *testing.T) {
	em, err := emitter.New(emitter.Config{
		Brokers:        []string{unreachable(t)},
		ClientOpts:     []kgo.Opt{kgo.MaxBufferedRecords(1)},
		QueueSize:      1,
		EnqueueTimeout: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_ = em.Close(ctx)
	}()
	// Fill client buffer (1), worker hand (1) and queue (1); the next Emit
	// must wait EnqueueTimeout, then give up.
	for i := 0; ; i++ {
		t0 := time.Now()
		ok := em.Emit(event(i))
		d := time.Since(t0)
		if ok {
			if i > 10 {
				t.Fatalf("%d events accepted by a dead emitter with 3 slots", i+1)
			}
			continue
		}
		if d < 50*time.Millisecond || d > 2*time.Second {
			t.Fatalf("refused Emit returned after %v, want about 50ms", d)
		}
		break
	}
}

// TestExistingClient produces through a client the caller owns; Close
// flushes but leaves it open.
func TestExistingClient(t *testing.T) {
	c := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, c, "audit", 2)
	cl := kafkatest.Client(t, c, kgo.RecordPartitioner(audit.Partitioner()))
	em, err := emitter.New(emitter.Config{Client: cl, Topic: "audit"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		em.Emit(event(i))
	}
	if err := em.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := em.Stats(); s.Sent != 10 {
		t.Fatalf("Stats = %+v, want 10 sent", s)
	}
	// The client still works.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "audit", Key: []byte("k")}).FirstErr(); err != nil {
		t.Fatalf("client closed by Emitter.Close: %v", err)
	}
	if got := len(kafkatest.Consume(t, c, "audit", 11, 10*time.Second)); got != 11 {
		t.Fatalf("audit topic has %d records, want 11", got)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for name, cfg := range map[string]emitter.Config{
		"nothing":         {},
		"both":            {Brokers: []string{"a:1"}, Client: cl},
		"opts w/o broker": {Client: cl, ClientOpts: []kgo.Opt{kgo.ClientID("x")}},
		"negative queue":  {Brokers: []string{"a:1"}, QueueSize: -1},
		"negative wait":   {Brokers: []string{"a:1"}, EnqueueTimeout: -time.Second},
		"negative bytes":  {Brokers: []string{"a:1"}, QueueBytes: -1},
		"negative drops":  {Brokers: []string{"a:1"}, MaxDropWindows: -1},
		"unknown encode":  {Brokers: []string{"a:1"}, Encode: emitter.InterceptorJSON + 1},
	} {
		if em, err := emitter.New(cfg); err == nil {
			_ = em.Close(context.Background())
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
}

// TestConcurrentEmitAndClose races many emitters against Close: every
// Emit call must be accounted for exactly once.
func TestConcurrentEmitAndClose(t *testing.T) {
	c := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, c, audit.DefaultEventsTopic, 3)
	em, err := emitter.New(emitter.Config{Brokers: c.ListenAddrs(), QueueSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Uint64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				em.Emit(event(g*1_000_000 + i))
				calls.Add(1)
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := em.Close(ctx); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	s := em.Stats()
	if s.Enqueued+s.Dropped != calls.Load() || s.Sent != s.Enqueued || s.Failed != 0 || s.Queued != 0 {
		t.Fatalf("%d Emit calls, stats %+v: want enqueued+dropped = calls, all enqueued sent", calls.Load(), s)
	}
	if s.Sent == 0 {
		t.Fatal("nothing sent")
	}
	t.Logf("%d calls: %+v", calls.Load(), s)
}

// TestInterceptorJSON writes the interceptors' JSON records: each decodes
// (in the configured zone, to the second) to the event emitted, keyed by
// correlation ID; drops are counted but never reported (the format has no
// room for them).
func TestInterceptorJSON(t *testing.T) {
	c := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, c, "audit.json", 3)
	zone := time.FixedZone("UTC+3", 3*3600)
	em, err := emitter.New(emitter.Config{Brokers: c.ListenAddrs(), Topic: "audit.json",
		Encode: emitter.InterceptorJSON, Location: zone})
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	want := map[string]*codecs.Event{}
	for i := range n {
		ev := event(i)
		ev.SendNs, ev.AckNs = int64(i+1)*int64(time.Second)+1_760_000_000e9, int64(i+1)*int64(time.Second)+1_760_000_000e9
		if i%2 == 1 {
			ev.Kind, ev.Group, ev.ConsumeNs = codecs.KindConsume, "billing", ev.AckNs
		}
		want[ev.CorrelationID] = ev
		if !em.Emit(ev) {
			t.Fatal("Emit refused")
		}
	}
	em.AddDrops(event(n), 5)
	if err := em.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs := kafkatest.Consume(t, c, "audit.json", n+1, 2*time.Second)
	if len(recs) != n {
		t.Fatalf("%d records, want %d", len(recs), n)
	}
	for _, r := range recs {
		got, err := codecs.ParseInterceptorRecordIn(r.Value, zone)
		if err != nil {
			t.Fatalf("record %q: %v", r.Value, err)
		}
		w := want[got.CorrelationID]
		if w == nil || string(r.Key) != w.CorrelationID || got.Kind != w.Kind || got.Topic != w.Topic ||
			got.TimeNs() != w.TimeNs() || got.Partition != w.Partition || got.Offset != w.Offset {
			t.Errorf("record %s decodes to %+v, want %+v", r.Value, got, w)
		}
	}
	if s := em.Stats(); s.Sent != n || s.Dropped != 5 || s.DropsUnreported != 5 || s.DropReports != 0 {
		t.Errorf("stats %+v, want %d sent, 5 dropped and unreported", s, n)
	}
}

// TestFlush: with a linger far longer than the test, Flush sends what is
// lingering and returns once every accepted event is acknowledged.
func TestFlush(t *testing.T) {
	c := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, c, audit.DefaultEventsTopic, 3)
	em, err := emitter.New(emitter.Config{Brokers: c.ListenAddrs(), Linger: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close(context.Background())
	for i := range 100 {
		em.Emit(event(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := em.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if s := em.Stats(); s.Sent != 100 || s.Queued != 0 {
		t.Fatalf("after Flush: %+v, want 100 sent, none queued", s)
	}
	if got := len(kafkatest.Consume(t, c, audit.DefaultEventsTopic, 100, 10*time.Second)); got != 100 {
		t.Fatalf("%d events in the audit topic after Flush, want 100", got)
	}
}
