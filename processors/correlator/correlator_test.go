package correlator_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/processors/correlator"
	"github.com/kaudit/kaudit/processors/expectations"
	"github.com/kaudit/kaudit/processors/learner"
)

// harness runs the correlator's processor on goka's tester (no Kafka), with
// a clock the test sets and an in-memory output.
type harness struct {
	t    *testing.T
	tt   *tester.Tester
	c    *correlator.Config
	cor  *correlator.Correlator
	proc *goka.Processor
	out  *memOutput
	now  time.Time
	base int64
}

// memOutput records what the correlator writes and acknowledges it at once,
// unless failing is set.
type memOutput struct {
	mu      sync.Mutex
	recs    []*kgo.Record
	read    int
	failing bool
	// refuse fails the records of this topic with an error that is not
	// retriable (as Kafka refuses a topic the client may not write).
	refuse string
}

func (m *memOutput) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	m.mu.Lock()
	m.recs = append(m.recs, r)
	fail := m.failing
	refused := m.refuse != "" && r.Topic == m.refuse
	m.mu.Unlock()
	if refused {
		promise(r, kerr.TopicAuthorizationFailed)
		return
	}
	if fail {
		promise(r, errors.New("broker down"))
		return
	}
	promise(r, nil)
}

// take returns the records written since the last call, on topic.
func (m *memOutput) take(topic string) []*kgo.Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*kgo.Record
	for _, r := range m.recs[m.read:] {
		if r.Topic == topic {
			out = append(out, r)
		}
	}
	m.read = len(m.recs)
	return out
}

const (
	sec      = int64(time.Second)
	ms       = int64(time.Millisecond)
	deadline = 10 * time.Second
	grace    = 60 * time.Second
)

func newHarness(t *testing.T, mod ...func(*correlator.Config)) *harness {
	t.Helper()
	h := &harness{t: t, tt: tester.New(t), now: time.Unix(1_700_000_000, 0), out: &memOutput{}}
	h.base = h.now.UnixNano()
	cfg := correlator.Config{
		Output:          h.out,
		DefaultDeadline: deadline,
		Grace:           grace,
		Now:             func() time.Time { return h.now },
	}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := correlator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.cor = c
	h.proc, err = goka.NewProcessor(nil, c.Graph(), goka.WithTester(h.tt))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.RunProcessor(ctx, h.proc) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("processor: %v", err)
		}
	})
	return h
}

func (h *harness) expect(topic string, groups ...string) {
	h.tt.SetTableValue(goka.Table(audit.DefaultExpectationsTopic), topic, &expectations.Expectation{Topic: topic, Groups: groups})
}

func (h *harness) send(events ...*codecs.Event) {
	h.t.Helper()
	for _, e := range events {
		h.tt.Consume(audit.DefaultEventsTopic, e.CorrelationID, codecs.AppendEvent(nil, e))
	}
}

// at sets the correlator's clock to base+offset.
func (h *harness) at(offset int64) { h.now = time.Unix(0, h.base+offset) }

// sweepAt runs one sweep at base+offset.
func (h *harness) sweepAt(offset int64) {
	h.t.Helper()
	h.at(offset)
	if err := h.cor.Sweep(context.Background(), h.proc); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) next() []*codecs.Verdict {
	h.t.Helper()
	var out []*codecs.Verdict
	for _, r := range h.out.take(audit.DefaultVerdictsTopic) {
		var v codecs.Verdict
		if err := codecs.UnmarshalVerdict(r.Value, &v); err != nil {
			h.t.Fatalf("verdict record: %v", err)
		}
		if string(r.Key) != v.CorrelationID {
			h.t.Errorf("verdict keyed %q, for %q", r.Key, v.CorrelationID)
		}
		out = append(out, &v)
	}
	return out
}

// want checks the verdicts emitted since the last call: group → status/cause.
func (h *harness) want(what string, exp ...string) []*codecs.Verdict {
	h.t.Helper()
	got := h.next()
	if len(got) != len(exp)/3 {
		h.t.Fatalf("%s: got %d verdicts %s, want %v", what, len(got), describe(got), exp)
	}
	for i, v := range got {
		if v.Group != exp[3*i] || v.Status.String() != exp[3*i+1] || v.Cause != exp[3*i+2] {
			h.t.Errorf("%s: verdict %d is %s/%s/%q, want %s/%s/%q", what, i, v.Group, v.Status, v.Cause, exp[3*i], exp[3*i+1], exp[3*i+2])
		}
	}
	return got
}

func describe(vs []*codecs.Verdict) string {
	s := "["
	for _, v := range vs {
		s += v.Group + ":" + v.Status.String() + "/" + v.Cause + " "
	}
	return s + "]"
}

func (h *harness) produce(id string, sendOff, ackOff int64) *codecs.Event {
	return &codecs.Event{Version: 1, Kind: codecs.KindProduce, CorrelationID: id, Topic: "orders",
		Partition: 2, Offset: 41, ClientID: "p1", SendNs: h.base + sendOff, AckNs: h.base + ackOff, PayloadSize: 10, Digest: 7}
}

func (h *harness) consume(id, group string, at int64) *codecs.Event {
	return &codecs.Event{Version: 1, Kind: codecs.KindConsume, CorrelationID: id, Topic: "orders",
		Partition: 2, Offset: 41, ClientID: group + "-c", Group: group, ConsumeNs: h.base + at, PayloadSize: 10, Digest: 7}
}

func TestDeliveredWithLatencies(t *testing.T) {
	h := newHarness(t)
	h.send(h.produce("m1", 0, 2*ms))
	h.want("after the produce")
	h.send(h.consume("m1", "billing", 5*ms), h.consume("m1", "search", 9*ms))
	got := h.want("after the consumes", "billing", "DELIVERED", "", "search", "DELIVERED", "")
	for i, e2e := range []int64{5000, 9000} {
		v := got[i]
		if v.AckLatencyUs != 2000 || v.E2ELatencyUs != e2e {
			t.Errorf("%s: ack %dus e2e %dus, want 2000us and %dus", v.Group, v.AckLatencyUs, v.E2ELatencyUs, e2e)
		}
		if v.Partition != 2 || v.Offset != 41 || v.ProducerClient != "p1" || v.ConsumeCount != 1 || v.Expected {
			t.Errorf("%s facts: %+v", v.Group, v)
		}
		if v.FirstSeenNs != h.base+2*ms {
			t.Errorf("%s: first seen %d, want the ack time", v.Group, v.FirstSeenNs)
		}
	}
	// A topic without expectations never gets LOST verdicts.
	h.sweepAt(deadline.Nanoseconds() + sec)
	h.want("sweep after the deadline")
}

// A consumer may see a record before its producer sees the ack.
func TestConsumeBeforeAck(t *testing.T) {
	h := newHarness(t)
	h.send(h.consume("m2", "billing", 1*ms))
	h.want("consume without produce facts")
	h.send(h.produce("m2", 0, 3*ms))
	got := h.want("after the ack", "billing", "DELIVERED", "")
	if got[0].E2ELatencyUs != 1000 || got[0].AckLatencyUs != 3000 || got[0].FirstSeenNs != h.base+ms {
		t.Errorf("%+v", got[0])
	}
}

// Expected groups: one consumes, one misses the deadline (LOST), then
// consumes after all (LATE, replacing LOST with a higher seq).
func TestLostThenLate(t *testing.T) {
	h := newHarness(t)
	h.expect("orders", "a", "b")
	h.send(h.produce("m", 0, ms))
	h.send(h.consume("m", "a", 4*ms))
	h.want("a consumed", "a", "DELIVERED", "")
	h.sweepAt(5 * sec)
	h.want("sweep before the deadline")
	h.sweepAt(ms + deadline.Nanoseconds() + sec)
	lost := h.want("sweep after the deadline", "b", "LOST", "not_consumed")
	if !lost[0].Expected || lost[0].DeadlineNs != h.base+ms+deadline.Nanoseconds() || lost[0].E2ELatencyUs != -1 || lost[0].AckLatencyUs != 1000 {
		t.Errorf("LOST verdict: %+v", lost[0])
	}
	h.sweepAt(ms + deadline.Nanoseconds() + 2*sec)
	h.want("second sweep: nothing new")
	// Three sweeps, timed, in the stats and the exported histogram.
	if s := h.cor.Stats(); s.Sweeps != 3 || s.SweepMax <= 0 || s.SweepTime < s.SweepMax {
		t.Errorf("sweep stats after three sweeps: %d sweeps, %s, longest %s", s.Sweeps, s.SweepTime, s.SweepMax)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(h.cor.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sweeps uint64
	for _, mf := range mfs {
		if mf.GetName() == "kaudit_correlator_sweep_duration_seconds" {
			sweeps = mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	if sweeps != 3 {
		t.Errorf("kaudit_correlator_sweep_duration_seconds counts %d sweeps, want 3", sweeps)
	}

	h.send(h.consume("m", "b", 15*sec))
	late := h.want("b consumed late", "b", "LATE", "after_deadline")
	if late[0].Seq <= lost[0].Seq {
		t.Errorf("LATE seq %d does not replace LOST seq %d", late[0].Seq, lost[0].Seq)
	}
	if late[0].E2ELatencyUs != 15*sec/1000 {
		t.Errorf("LATE latency %dus", late[0].E2ELatencyUs)
	}
}

// A consume after the deadline that arrives before any sweep is LATE at once.
func TestLateWithoutSweep(t *testing.T) {
	h := newHarness(t)
	h.expect("orders", "a", "b")
	h.send(h.produce("m", 0, 0), h.consume("m", "a", 30*sec))
	// a's event is after the deadline: a is LATE and b is LOST by then.
	h.want("a late", "a", "LATE", "after_deadline", "b", "LOST", "not_consumed")
}

// An expectation set after a message was acknowledged does not hold it.
func TestExpectationSince(t *testing.T) {
	h := newHarness(t)
	h.tt.SetTableValue(goka.Table(audit.DefaultExpectationsTopic), "orders",
		&expectations.Expectation{Topic: "orders", Groups: []string{"a"}, SinceNs: h.base + sec})
	h.send(h.produce("old", 0, 0), h.produce("new", 2*sec, 2*sec))
	h.sweepAt(time.Minute.Nanoseconds())
	got := h.want("sweep", "a", "LOST", "not_consumed")
	if got[0].CorrelationID != "new" {
		t.Errorf("LOST for %s, want only the message acked after the expectation", got[0].CorrelationID)
	}
}

// Expectations from the file apply; a per-topic deadline overrides the default.
func TestExpectationsFromConfig(t *testing.T) {
	h := newHarness(t, func(c *correlator.Config) {
		c.Expectations = []*expectations.Expectation{{Topic: "orders", Groups: []string{"a"}, Deadline: expectations.Duration(2 * time.Second)}}
	})
	h.send(h.produce("m", 0, 0))
	h.sweepAt(3 * sec)
	h.want("sweep after the file's deadline", "a", "LOST", "not_consumed")
}

func TestRedelivery(t *testing.T) {
	h := newHarness(t)
	h.expect("orders", "c")
	h.send(h.produce("m", 0, ms), h.consume("m", "c", 2*ms))
	h.want("first consume", "c", "DELIVERED", "")
	h.send(h.consume("m", "c", 900*ms))
	got := h.want("same position again", "c", "DUPLICATE", "redelivery")
	if got[0].ConsumeCount != 2 || got[0].LastConsumeNs != h.base+900*ms || got[0].FirstConsumeNs != h.base+2*ms {
		t.Errorf("%+v", got[0])
	}
	// The same audit record again (a replay after a crash): the current
	// verdict is written again, with its seq, so a write lost in the crash
	// is made good and ClickHouse keeps one row.
	h.send(h.consume("m", "c", 900*ms))
	again := h.want("repeated audit record", "c", "DUPLICATE", "redelivery")
	if again[0].Seq != got[0].Seq || *again[0] != *got[0] {
		t.Errorf("re-written verdict differs:\n%+v\n%+v", again[0], got[0])
	}
	if s := h.cor.Stats(); s.Repeats != 1 || s.Rewritten != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestProducerRetry(t *testing.T) {
	t.Run("two acks", func(t *testing.T) {
		h := newHarness(t)
		h.send(h.produce("m", 0, ms), h.consume("m", "a", 2*ms))
		h.want("delivered", "a", "DELIVERED", "")
		again := h.produce("m", 0, 3*ms)
		again.Offset = 99
		h.send(again)
		h.want("second ack at another offset", "a", "DUPLICATE", "producer_retry")
	})
	t.Run("one group reads two offsets", func(t *testing.T) {
		h := newHarness(t)
		h.send(h.produce("m", 0, ms), h.consume("m", "a", 2*ms))
		h.want("delivered", "a", "DELIVERED", "")
		other := h.consume("m", "a", 3*ms)
		other.Offset = 42
		h.send(other)
		h.want("second position", "a", "DUPLICATE", "producer_retry")
	})
}

// A failed produce is PRODUCE_FAILED (on the "" group: no consumer group
// could have read it), never LOST.
func TestProduceFailed(t *testing.T) {
	h := newHarness(t)
	h.expect("orders", "a", "b")
	failed := h.produce("m", 0, 0)
	failed.AckNs, failed.Offset, failed.Error = 0, -1, "INVALID_RECORD: broker rejected it"
	h.send(failed)
	got := h.want("failed produce", "", "PRODUCE_FAILED", "produce_error")
	if got[0].ProduceError == "" || got[0].Expected {
		t.Errorf("%+v", got[0])
	}
	h.sweepAt(time.Minute.Nanoseconds())
	h.want("sweep after the deadline: no LOST")
}

// Consumes of a message whose producer is not audited are reported as
// UNAUDITED_PRODUCER at the deadline, with the consume facts; a produce
// event arriving later corrects them.
func TestUnauditedProducer(t *testing.T) {
	h := newHarness(t)
	h.send(h.consume("m", "a", 0))
	h.sweepAt(5 * sec)
	h.want("before the deadline")
	h.sweepAt(deadline.Nanoseconds() + sec)
	got := h.want("after the deadline", "a", "UNAUDITED_PRODUCER", "no_produce_event")
	if got[0].ConsumerClient != "a-c" || got[0].ConsumeCount != 1 || got[0].E2ELatencyUs != -1 {
		t.Errorf("%+v", got[0])
	}
	h.send(h.produce("m", -ms, -ms/2))
	h.want("the produce event after all", "a", "DELIVERED", "")
}

func TestCorrupted(t *testing.T) {
	h := newHarness(t)
	h.send(h.produce("m", 0, ms))
	bad := h.consume("m", "a", 2*ms)
	bad.Digest = 8
	h.send(bad, h.consume("m", "b", 3*ms))
	h.want("digests", "a", "CORRUPTED", "digest_mismatch", "b", "DELIVERED", "")
}

// Learned expectations: a group seen consuming the topic for longer than the
// warm-up is expected for messages acknowledged after that.
func TestLearnedExpectation(t *testing.T) {
	h := newHarness(t, func(c *correlator.Config) { c.LearnWarmup = time.Minute })
	h.tt.SetTableValue(learner.Table(learner.DefaultGroup), "orders", &learner.Learned{Topic: "orders", Groups: []learner.LearnedGroup{
		{Group: "old", FirstSeenNs: h.base - 2*time.Minute.Nanoseconds(), LastSeenNs: h.base - 30*sec},
		{Group: "new", FirstSeenNs: h.base - 10*sec, LastSeenNs: h.base},
	}})
	h.send(h.produce("m", 0, 0))
	h.sweepAt(time.Minute.Nanoseconds())
	got := h.want("sweep", "old", "LOST", "not_consumed")
	if !got[0].Learned || !got[0].Expected {
		t.Errorf("learned flags: %+v", got[0])
	}
}

// Garbage and events keyed by something else go to the dead-letter topic
// with the reason, and the processor keeps going.
func TestMalformedGoesToDLQ(t *testing.T) {
	h := newHarness(t)
	h.tt.Consume(audit.DefaultEventsTopic, "k", []byte{0xff, 0x00, 0x13, 0x37})
	h.tt.Consume(audit.DefaultEventsTopic, "not-m4", codecs.AppendEvent(nil, h.produce("m4", 1, 2)))
	dead := h.out.take(audit.DefaultDLQTopic)
	if len(dead) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dead))
	}
	for i, wantKey := range []string{"k", "not-m4"} {
		r := dead[i]
		if string(r.Key) != wantKey || header(r, audit.HeaderErrMessage) == "" || header(r, audit.HeaderErrTopic) != audit.DefaultEventsTopic {
			t.Errorf("dead letter %d: key %q headers %+v", i, r.Key, r.Headers)
		}
	}
	h.send(h.produce("m5", 0, ms), h.consume("m5", "g", 2*ms))
	h.want("still alive", "g", "DELIVERED", "")
	if s := h.cor.Stats(); s.DeadLetter != 2 || s.Events != 2 {
		t.Errorf("stats %+v", s)
	}
}

// Trails are deleted once deadline + grace passed, so the table holds only
// messages in flight; late duplicates within the grace are still caught.
func TestSweepBoundsTheTable(t *testing.T) {
	h := newHarness(t)
	h.send(h.produce("m", 0, 0), h.consume("m", "a", ms))
	h.send(h.produce("young", 30*sec, 30*sec))
	h.want("delivered", "a", "DELIVERED", "")
	h.sweepAt(deadline.Nanoseconds() + 30*sec)
	for _, id := range []string{"m", "young"} {
		if h.tt.TableValue(h.cor.Table(), id) == nil {
			t.Errorf("trail %s deleted before deadline + grace", id)
		}
	}
	h.send(h.consume("m", "a", 40*sec)) // within the grace
	h.want("late duplicate", "a", "DUPLICATE", "redelivery")
	h.sweepAt(deadline.Nanoseconds() + grace.Nanoseconds() + sec)
	if v := h.tt.TableValue(h.cor.Table(), "m"); v != nil {
		t.Errorf("trail kept after deadline+grace: %+v", v)
	}
	if v := h.tt.TableValue(h.cor.Table(), "young"); v == nil {
		t.Errorf("young trail deleted")
	}
	if s := h.cor.Stats(); s.Deleted != 1 {
		t.Errorf("stats %+v", s)
	}
}

// Replaying the same events on a fresh correlator (a restart that lost its
// local state and re-reads the topic) gives the same verdicts.
func TestReplayIsDeterministic(t *testing.T) {
	run := func() []*codecs.Verdict {
		h := newHarness(t)
		h.expect("orders", "a", "b")
		h.send(h.consume("x", "a", ms), h.produce("x", 0, 2*ms), h.consume("x", "a", 3*ms), h.consume("x", "b", 20*sec))
		return h.next()
	}
	first, second := run(), run()
	if len(first) != len(second) || len(first) != 3 {
		t.Fatalf("%d vs %d verdicts", len(first), len(second))
	}
	for i := range first {
		if *first[i] != *second[i] {
			t.Errorf("verdict %d differs:\n%+v\n%+v", i, first[i], second[i])
		}
	}
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
