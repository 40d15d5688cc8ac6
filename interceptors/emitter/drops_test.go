package emitter_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/interceptors/emitter"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
)

// brokerFaults makes a kfake cluster's produce handling pause (every
// produce request waits until resume) or fail (every other request, or
// every request with failAll, is refused with INVALID_RECORD, which
// franz-go does not retry).
type brokerFaults struct {
	mu      sync.Mutex
	paused  chan struct{} // closed to resume; nil when not paused
	fail    atomic.Bool
	failAll atomic.Bool
	n       atomic.Int64
	failed  atomic.Int64
}

func installFaults(c *kfake.Cluster) *brokerFaults {
	f := &brokerFaults{}
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		f.mu.Lock()
		p := f.paused
		f.mu.Unlock()
		if p != nil {
			c.SleepControl(func() { <-p })
		}
		if !f.failAll.Load() && (!f.fail.Load() || f.n.Add(1)%2 == 0) {
			return nil, nil, false
		}
		f.failed.Add(1)
		req := kreq.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.InvalidRecord.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	return f
}

func (f *brokerFaults) pause() {
	f.mu.Lock()
	f.paused = make(chan struct{})
	f.mu.Unlock()
}

func (f *brokerFaults) resume() {
	f.mu.Lock()
	if f.paused != nil {
		close(f.paused)
		f.paused = nil
	}
	f.mu.Unlock()
}

// dropKey is what a drop report is per, computed by the test from the
// events it made.
type dropKey struct {
	client, topic, group string
	kind                 codecs.Kind
	minute               int64
}

func keyOf(ev *codecs.Event) dropKey {
	return dropKey{ev.ClientID, ev.Topic, ev.Group, ev.Kind, ev.TimeNs() / int64(time.Minute)}
}

// mixedEvent is event i of a mix of two clients, two topics, produce and
// consume events (of two groups) and three minutes of event times.
func mixedEvent(base time.Time, i int) *codecs.Event {
	ev := &codecs.Event{
		Version:       codecs.SchemaVersion,
		CorrelationID: fmt.Sprintf("mixed-%06d", i),
		Topic:         []string{"orders", "payments"}[i%2],
		ClientID:      []string{"c1", "c2"}[i/2%2],
		Host:          "h",
		Source:        "test",
		Offset:        int64(i),
	}
	ns := base.Add(time.Duration(i%3)*time.Minute + time.Duration(i)*time.Millisecond).UnixNano()
	if i/4%2 == 0 {
		ev.Kind, ev.SendNs, ev.AckNs = codecs.KindProduce, ns-1000, ns
	} else {
		ev.Kind, ev.Group, ev.ConsumeNs = codecs.KindConsume, []string{"g1", "g2"}[i/8%2], ns
	}
	return ev
}

// readAudit reads the whole audit topic (what is there 2s after the test
// started reading it; the Emitter is closed by then).
func readAudit(t *testing.T, c *kfake.Cluster) (events map[string]*codecs.Event, reports []*codecs.Event) {
	t.Helper()
	events = map[string]*codecs.Event{}
	for _, r := range kafkatest.Consume(t, c, audit.DefaultEventsTopic, 1<<30, 2*time.Second) {
		ev, err := codecs.DecodeEvent(r.Value)
		if err != nil {
			t.Fatalf("audit record %q does not decode: %v", r.Value, err)
		}
		if string(r.Key) != ev.CorrelationID {
			t.Errorf("record key %q, correlation ID %q", r.Key, ev.CorrelationID)
		}
		if ev.Kind == codecs.KindDrops {
			reports = append(reports, ev)
			continue
		}
		if events[ev.CorrelationID] != nil {
			t.Errorf("event %s arrived twice", ev.CorrelationID)
		}
		events[ev.CorrelationID] = ev
	}
	return events, reports
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDropReportsCoverEveryDrop drops events in every way the Emitter can
// (a full queue while the audit broker stalls; records the broker refuses)
// and checks, from the events the test made and those that arrived, that
// the drop reports in the audit topic add up to exactly the events that
// did not arrive, per client, topic, group, kind and minute.
func TestDropReportsCoverEveryDrop(t *testing.T) {
	c := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, c, audit.DefaultEventsTopic, 3)
	faults := installFaults(c)
	em, err := emitter.New(emitter.Config{
		Brokers:    c.ListenAddrs(),
		ClientOpts: []kgo.Opt{kgo.MaxBufferedRecords(64)},
		QueueSize:  16,
	})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 3, 1, 10, 0, 30, 0, time.UTC)
	var made []*codecs.Event
	refused := 0
	emit := func(i int) {
		ev := mixedEvent(base, i)
		made = append(made, mixedEvent(base, i)) // a copy: the emitter owns ev
		if !em.Emit(ev) {
			refused++
		}
	}

	// 1. The audit broker stalls: the queue fills and Emit drops.
	faults.pause()
	for i := range 3000 {
		emit(i)
	}
	if refused < 2000 {
		t.Fatalf("only %d of 3000 events refused with a stalled broker", refused)
	}
	// Room again: the drops are reported without waiting for Close.
	faults.resume()
	waitFor(t, "drop reports after the broker recovered", 20*time.Second, func() bool {
		return em.Stats().DropsReported >= uint64(refused)
	})

	// 2. The broker refuses every other produce request (drop reports
	// included): accepted events fail.
	faults.fail.Store(true)
	for i := 3000; i < 6000; i++ {
		waitFor(t, "room", 20*time.Second, em.Room) // accepted, then failed or sent
		emit(i)
	}
	waitFor(t, "failed records", 20*time.Second, func() bool { return em.Stats().Failed > 100 })
	// 3. The broker refuses everything: once every accepted event is sent
	// or failed, the only records left to produce are drop reports, and
	// they fail too (and must be counted again).
	faults.failAll.Store(true)
	waitFor(t, "accepted events sent or failed", 20*time.Second, func() bool { return em.Stats().Queued == 0 })
	failedBefore := faults.failed.Load()
	waitFor(t, "a refused drop report", 20*time.Second, func() bool { return faults.failed.Load() > failedBefore })
	faults.failAll.Store(false)
	faults.fail.Store(false)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := em.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s := em.Stats()
	t.Logf("stats %+v; refused by Emit %d, produce requests failed %d", s, refused, faults.failed.Load())

	events, reports := readAudit(t, c)
	want := map[dropKey]int{}
	lostAccepted := 0
	for _, ev := range made {
		if got, ok := events[ev.CorrelationID]; ok {
			if *got != *ev {
				t.Errorf("event %s arrived as %+v, want %+v", ev.CorrelationID, got, ev)
			}
			continue
		}
		want[keyOf(ev)]++
		lostAccepted++
	}
	lostAccepted -= refused
	if lostAccepted < 100 {
		t.Errorf("only %d accepted events were lost to refused produce requests; the test did not exercise failures", lostAccepted)
	}
	got := map[dropKey]int{}
	for _, r := range reports {
		if err := r.Validate(); err != nil {
			t.Errorf("drop report %+v: %v", r, err)
		}
		if r.Topic == codecs.AnyTopic {
			t.Errorf("catch-all drop report %+v with a table that never filled", r)
		}
		k := dropKey{r.ClientID, r.Topic, r.Group, r.DroppedKind, r.WindowStartNs / int64(time.Minute)}
		if r.WindowEndNs/int64(time.Minute) != k.minute {
			t.Errorf("drop report window [%d, %d] spans minutes", r.WindowStartNs, r.WindowEndNs)
		}
		got[k] += int(r.Dropped)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("drop reports per key:\n got %v\nwant %v", got, want)
	}
	if len(want) != 2*2*3*3 {
		t.Errorf("%d keys with drops, want all 36 (2 clients x (2 topics x (produce + 2 groups)) x 3 minutes)", len(want))
	}
	total := refused + lostAccepted
	if s.Dropped != uint64(refused) || s.Dropped+s.Failed != uint64(total) ||
		s.DropsReported != uint64(total) || s.DropsUnreported != 0 || s.DropReports != uint64(len(reports)) {
		t.Errorf("stats %+v; want %d dropped, %d dropped+failed, all reported in %d reports", s, refused, total, len(reports))
	}
}

// TestDropReportsWindow checks that a report's window is the span of the
// dropped events' own times.
func TestDropReportsWindow(t *testing.T) {
	c := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, c, audit.DefaultEventsTopic, 1)
	faults := installFaults(c)
	em, err := emitter.New(emitter.Config{Brokers: c.ListenAddrs(), QueueSize: 1,
		ClientOpts: []kgo.Opt{kgo.MaxBufferedRecords(1)}})
	if err != nil {
		t.Fatal(err)
	}
	faults.pause()
	base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC).UnixNano()
	var lo, hi int64
	refused := 0
	for i := range 100 {
		ns := base + int64(i%50+5)*int64(time.Second)
		if !em.Emit(&codecs.Event{Version: 1, Kind: codecs.KindConsume, CorrelationID: fmt.Sprint(i),
			Topic: "t", Group: "g", ClientID: "c", ConsumeNs: ns}) {
			refused++
			if lo == 0 || ns < lo {
				lo = ns
			}
			hi = max(hi, ns)
		}
	}
	faults.resume()
	if err := em.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, reports := readAudit(t, c)
	if len(reports) != 1 {
		t.Fatalf("%d drop reports, want 1: %+v", len(reports), reports)
	}
	r := reports[0]
	if int(r.Dropped) != refused || r.WindowStartNs != lo || r.WindowEndNs != hi || r.TimeNs() != hi ||
		r.Topic != "t" || r.Group != "g" || r.ClientID != "c" || r.DroppedKind != codecs.KindConsume {
		t.Errorf("report %+v; want %d dropped consumes of t/g by c in [%d, %d]", r, refused, lo, hi)
	}
}

// TestDropTableFull fills a 3-entry drop table with drops of 20 topics: the
// overflow goes to a catch-all report, and the counts still add up.
func TestDropTableFull(t *testing.T) {
	c := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, c, audit.DefaultEventsTopic, 1)
	faults := installFaults(c)
	em, err := emitter.New(emitter.Config{Brokers: c.ListenAddrs(), QueueSize: 1, MaxDropWindows: 3,
		ClientOpts: []kgo.Opt{kgo.MaxBufferedRecords(1)}})
	if err != nil {
		t.Fatal(err)
	}
	faults.pause()
	now := time.Now().UnixNano()
	want := map[string]int{}
	for i := range 2000 {
		ev := &codecs.Event{Version: 1, Kind: codecs.KindProduce, CorrelationID: fmt.Sprint(i),
			Topic: fmt.Sprintf("topic-%02d", i%20), ClientID: "c", AckNs: now}
		if !em.Emit(ev) {
			want[ev.Topic]++
		}
	}
	faults.resume()
	if err := em.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, reports := readAudit(t, c)
	got, total, wantTotal, catchAll := map[string]int{}, 0, 0, 0
	for _, n := range want {
		wantTotal += n
	}
	for _, r := range reports {
		total += int(r.Dropped)
		if r.Topic == codecs.AnyTopic {
			catchAll += int(r.Dropped)
			if r.Group != codecs.AnyTopic || r.DroppedKind != codecs.KindProduce {
				t.Errorf("catch-all report %+v", r)
			}
			continue
		}
		got[r.Topic] += int(r.Dropped)
	}
	if total != wantTotal || catchAll == 0 {
		t.Fatalf("reports cover %d drops (%d in the catch-all), want %d with a catch-all", total, catchAll, wantTotal)
	}
	for topic, n := range got {
		if n > want[topic] {
			t.Errorf("topic %s: %d drops reported, %d happened", topic, n, want[topic])
		}
	}
}

// TestQueueBoundedByBytes emits large events (64 KiB error texts) while the
// audit broker stalls: the Emitter accepts about QueueBytes of them and the
// heap does not grow by what was emitted.
func TestQueueBoundedByBytes(t *testing.T) {
	c := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, c, audit.DefaultEventsTopic, 1)
	faults := installFaults(c)
	em, err := emitter.New(emitter.Config{Brokers: c.ListenAddrs(), QueueBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	faults.pause()
	defer faults.resume()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	big := strings.Repeat("x", 64<<10)
	accepted := 0
	for i := range 1000 { // 64 MiB of error texts
		ev := &codecs.Event{Version: 1, Kind: codecs.KindProduce, CorrelationID: fmt.Sprint(i),
			Topic: "t", SendNs: 1, Error: big[:len(big)-i%2] + fmt.Sprint(i)} // a copy each
		if em.Emit(ev) {
			accepted++
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if accepted < 4 || accepted > (1<<20)/(64<<10)+1 {
		t.Errorf("%d events of 64 KiB accepted with QueueBytes 1 MiB", accepted)
	}
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 16<<20 {
		t.Errorf("heap grew by %d MiB while 64 MiB of events were emitted against a stalled broker", grown>>20)
	}
	faults.resume()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := em.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if s := em.Stats(); s.Sent != uint64(accepted) || s.DropsReported != uint64(1000-accepted) {
		t.Errorf("stats %+v, want %d sent and %d reported dropped", s, accepted, 1000-accepted)
	}
}
