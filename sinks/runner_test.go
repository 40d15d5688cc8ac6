package sinks_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/internal/testing/itest"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
	"github.com/kaudit/kaudit/sinks"
)

// flakySink records what it is given and fails while down is set.
type flakySink struct {
	mu       sync.Mutex
	down     bool
	failures int
	verdicts map[string]int // correlation ID -> times written
	events   map[sinks.Position]int
	// hold, if set, is waited for by the write of a batch holding the
	// verdict with this correlation ID.
	holdID  string
	hold    chan struct{}
	holding atomic.Bool // a write is waiting for hold
}

func newFlakySink() *flakySink {
	return &flakySink{verdicts: map[string]int{}, events: map[sinks.Position]int{}}
}

func (s *flakySink) WriteBatch(ctx context.Context, b *sinks.Batch) error {
	s.mu.Lock()
	hold := s.hold
	for _, v := range b.Verdicts {
		if hold != nil && v.CorrelationID == s.holdID {
			s.mu.Unlock()
			s.holding.Store(true)
			select {
			case <-hold:
			case <-ctx.Done():
				return ctx.Err()
			}
			s.mu.Lock()
			break
		}
	}
	defer s.mu.Unlock()
	if s.down {
		s.failures++
		return errors.New("sink is down")
	}
	for _, v := range b.Verdicts {
		s.verdicts[v.CorrelationID]++
	}
	for _, e := range b.Events {
		s.events[e.From]++
	}
	return nil
}

func (s *flakySink) Close() error { return nil }

func (s *flakySink) setDown(d bool) {
	s.mu.Lock()
	s.down = d
	s.mu.Unlock()
}

func (s *flakySink) snapshot() (verdicts, failures int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.verdicts), s.failures
}

func verdict(i int) *codecs.Verdict {
	return &codecs.Verdict{Version: 1, CorrelationID: fmt.Sprintf("id-%04d", i), Topic: "orders", Group: "g",
		Status: codecs.StatusDelivered, Seq: 1, AckLatencyUs: 10, E2ELatencyUs: 20}
}

func produceVerdicts(t *testing.T, c *kfake.Cluster, from, to int) {
	t.Helper()
	cl := kafkatest.Client(t, c)
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		v := verdict(i)
		recs = append(recs, &kgo.Record{Topic: "kaudit.verdicts", Key: []byte(v.CorrelationID), Value: codecs.AppendVerdict(nil, v)})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func config(c *kfake.Cluster, group string) sinks.Config[*sinks.Batch] {
	return sinks.Config[*sinks.Batch]{
		Brokers:       c.ListenAddrs(),
		Group:         group,
		Topics:        sinks.AuditTopics("kaudit.verdicts", "kaudit.events"),
		NewBatch:      sinks.NewBatch,
		DLQTopic:      "kaudit.dlq",
		BatchSize:     100,
		FlushInterval: 50 * time.Millisecond,
		RetryBackoff:  10 * time.Millisecond,
	}
}

func startRunner(t *testing.T, c *kfake.Cluster, sink sinks.Sink[*sinks.Batch], group string, mod func(*sinks.Config[*sinks.Batch])) (*sinks.Runner[*sinks.Batch], func() error) {
	t.Helper()
	cfg := config(c, group)
	if mod != nil {
		mod(&cfg)
	}
	r, err := sinks.New(cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return r, stop
}

func newCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	c := kafkatest.NewCluster(t, opts...)
	for _, tp := range []string{"kaudit.verdicts", "kaudit.events", "kaudit.dlq"} {
		kafkatest.CreateTopic(t, c, tp, 3)
	}
	return c
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// committed returns the group's committed offsets of topic, summed over
// partitions (-1 counts as 0).
func committed(t *testing.T, c *kfake.Cluster, group, topic string) int64 {
	t.Helper()
	adm := kadm.NewClient(kafkatest.Client(t, c))
	offs, err := adm.FetchOffsets(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, parts := range offs {
		for _, o := range parts {
			if o.Topic == topic && o.At > 0 {
				sum += o.At
			}
		}
	}
	return sum
}

// While the sink is down the runner retries and commits nothing; a runner
// that replaces it (same group) after a crash reads the same records again;
// once the sink is back everything is written.
func TestRunnerRetriesAndCommitsOnlyWritten(t *testing.T) {
	c := newCluster(t)
	produceVerdicts(t, c, 0, 300)
	sink := newFlakySink()
	sink.setDown(true)
	_, stop := startRunner(t, c, sink, "g1", nil)
	eventually(t, "failed writes", func() bool { _, f := sink.snapshot(); return f >= 3 })
	if err := stop(); err != nil {
		t.Fatalf("runner: %v", err)
	}
	if n, _ := sink.snapshot(); n != 0 {
		t.Fatalf("%d verdicts written while the sink was down", n)
	}
	if n := committed(t, c, "g1", "kaudit.verdicts"); n != 0 {
		t.Fatalf("%d offsets committed while the sink was down", n)
	}

	// Same group: nothing was committed, so all 300 come again.
	sink.setDown(false)
	r, stop := startRunner(t, c, sink, "g1", nil)
	eventually(t, "all verdicts", func() bool { n, _ := sink.snapshot(); return n == 300 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if s := r.Stats(); s.Written[sinks.KindVerdict] != 300 || s.DeadLetter != 0 {
		t.Errorf("stats %+v", s)
	}
	if n := committed(t, c, "g1", "kaudit.verdicts"); n != 300 {
		t.Errorf("committed %d, want 300", n)
	}

	// And now they are committed: a new runner in the group reads only new
	// records.
	produceVerdicts(t, c, 300, 310)
	sink2 := newFlakySink()
	r2, stop := startRunner(t, c, sink2, "g1", nil)
	eventually(t, "the 10 new verdicts", func() bool { n, _ := sink2.snapshot(); return n == 10 })
	_ = stop()
	if n, _ := sink2.snapshot(); n != 10 || r2.Stats().Written[sinks.KindVerdict] != 10 {
		t.Errorf("runner after commit wrote %d verdicts (%+v), want only the 10 new ones", n, r2.Stats())
	}
}

// cancelOnRecord cancels a context when the at-th record is handed out by a
// poll.
type cancelOnRecord struct {
	n      atomic.Int64
	at     int64
	cancel context.CancelFunc
}

func (h *cancelOnRecord) OnFetchRecordUnbuffered(_ *kgo.Record, polled bool) {
	if polled && h.n.Add(1) == h.at {
		h.cancel()
	}
}

// A shutdown (SIGTERM) that lands while a poll returns records: the runner
// writes those records too before it commits, so the committed offset never
// runs ahead of what the sink wrote.
func TestRunnerShutdownDuringPollLosesNothing(t *testing.T) {
	c := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, c, "kaudit.verdicts", 1)
	produceVerdicts(t, c, 0, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The first poll returns the 10 records produced so far (one batch);
	// the shutdown comes with the first record of the second poll.
	hook := &cancelOnRecord{at: 11, cancel: cancel}
	sink := newFlakySink()
	cfg := config(c, "g")
	cfg.Topics = sinks.AuditTopics("kaudit.verdicts", "")
	cfg.BatchSize, cfg.FlushInterval = 1000, time.Minute
	cfg.ClientOpts = []kgo.Opt{kgo.WithHooks(hook)}
	r, err := sinks.New(cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	eventually(t, "the first poll", func() bool { return hook.n.Load() >= 10 })
	produceVerdicts(t, c, 10, 20)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("runner did not stop")
	}
	written, _ := sink.snapshot()
	if got := committed(t, c, "g", "kaudit.verdicts"); got != int64(written) || written != 20 {
		t.Fatalf("committed offset %d, the sink wrote %d verdicts; want both 20", got, written)
	}
}

// With several batches in flight, a batch written before an earlier one is
// not committed until the earlier one is written too.
func TestRunnerCommitsInReadOrder(t *testing.T) {
	c := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, c, "kaudit.verdicts", 1)
	produceVerdicts(t, c, 0, 10)
	sink := newFlakySink()
	sink.holdID, sink.hold = verdict(0).CorrelationID, make(chan struct{})
	_, stop := startRunner(t, c, sink, "g", func(cfg *sinks.Config[*sinks.Batch]) {
		cfg.Topics = sinks.AuditTopics("kaudit.verdicts", "")
		cfg.BatchSize, cfg.MaxInFlight = 10, 4
	})
	eventually(t, "the first batch to be held", sink.holding.Load)
	produceVerdicts(t, c, 10, 30)
	eventually(t, "the later batches written", func() bool { n, _ := sink.snapshot(); return n == 20 })
	if got := committed(t, c, "g", "kaudit.verdicts"); got != 0 {
		t.Fatalf("committed %d while the first batch was still being written", got)
	}
	close(sink.hold)
	eventually(t, "everything committed", func() bool { return committed(t, c, "g", "kaudit.verdicts") == 30 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n, _ := sink.snapshot(); n != 30 {
		t.Errorf("%d verdicts written, want 30", n)
	}
}

// A record of random bytes lands in the dead-letter topic with the reason
// in Kafka Connect's headers, and the runner keeps going.
func TestRunnerDeadLetters(t *testing.T) {
	c := newCluster(t)
	cl := kafkatest.Client(t, c)
	garbage := []byte{0x9c, 0xff, 0x01, 0x42, 0x00, 0x17}
	if err := cl.ProduceSync(context.Background(),
		&kgo.Record{Topic: "kaudit.verdicts", Key: []byte("junk"), Value: garbage},
		&kgo.Record{Topic: "kaudit.events", Key: []byte("junk2"), Value: []byte("{not json")},
	).FirstErr(); err != nil {
		t.Fatal(err)
	}
	produceVerdicts(t, c, 0, 5)
	sink := newFlakySink()
	r, stop := startRunner(t, c, sink, "g", nil)
	eventually(t, "the valid verdicts", func() bool { n, _ := sink.snapshot(); return n == 5 })

	dead := kafkatest.Consume(t, c, "kaudit.dlq", 2, 10*time.Second)
	if len(dead) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dead))
	}
	for _, d := range dead {
		h := headers(d)
		if h[audit.HeaderErrMessage] == "" || h[audit.HeaderErrTopic] == "" || h[audit.HeaderErrOffset] == "" || h[audit.HeaderErrStage] != sinks.DeadLetterStage {
			t.Errorf("dead letter %q lacks error headers: %v", d.Key, h)
		}
		if _, cut := h[audit.HeaderTruncated]; cut {
			t.Errorf("small dead letter %q marked as truncated", d.Key)
		}
		if string(d.Key) == "junk" && string(d.Value) != string(garbage) {
			t.Errorf("dead letter changed the record's value")
		}
	}
	eventually(t, "the commit past the bad records", func() bool {
		return committed(t, c, "g", "kaudit.verdicts")+committed(t, c, "g", "kaudit.events") == 7
	})
	_ = stop()
	if s := r.Stats(); s.DeadLetter != 2 || s.Written[sinks.KindVerdict] != 5 || s.DeadLetterCut != 0 {
		t.Errorf("stats %+v", s)
	}
}

func headers(r *kgo.Record) map[string]string {
	h := map[string]string{}
	for _, x := range r.Headers {
		h[x.Key] = string(x.Value)
	}
	return h
}

// randomJunk returns n incompressible bytes that are no kaudit record.
func randomJunk(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	b[0] = 0xff // an invalid protobuf tag
	return b
}

// junkProducer can write records up to 2 MiB.
func junkProducer(t *testing.T, c *kfake.Cluster) *kgo.Client {
	return kafkatest.Client(t, c, kgo.ProducerBatchMaxBytes(2<<20))
}

// An undecodable record too large to dead-letter whole (1,010,000 bytes:
// over franz-go's 1,000,012-byte batch limit once the error headers are
// added) is dead-lettered as a stub: the first KiB of the value, the
// Connect headers, and a header saying what was cut. The records after it
// are written.
func TestRunnerDeadLettersOversizedRecordAsStub(t *testing.T) {
	c := newCluster(t)
	junk := randomJunk(1_010_000)
	if err := junkProducer(t, c).ProduceSync(context.Background(),
		&kgo.Record{Topic: "kaudit.verdicts", Key: []byte("big"), Value: junk}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	produceVerdicts(t, c, 0, 50)
	sink := newFlakySink()
	r, stop := startRunner(t, c, sink, "g", nil)
	eventually(t, "the valid verdicts", func() bool { n, _ := sink.snapshot(); return n == 50 })
	dead := kafkatest.Consume(t, c, "kaudit.dlq", 1, 10*time.Second)
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want the stub of the big record", len(dead))
	}
	d := dead[0]
	h := headers(d)
	if !bytes.Equal(d.Value, junk[:audit.StubBytes]) || string(d.Key) != "big" {
		t.Errorf("stub value %d bytes (key %q), want the first %d bytes of the record", len(d.Value), d.Key, audit.StubBytes)
	}
	if want := fmt.Sprintf("value %d bytes, kept %d", len(junk), audit.StubBytes); !strings.Contains(h[audit.HeaderTruncated], want) {
		t.Errorf("truncation header %q, want it to say %q", h[audit.HeaderTruncated], want)
	}
	if h[audit.HeaderErrTopic] != "kaudit.verdicts" || h[audit.HeaderErrPartition] == "" || h[audit.HeaderErrOffset] != "0" || h[audit.HeaderErrMessage] == "" {
		t.Errorf("stub lacks the error headers: %v", h)
	}
	eventually(t, "the commit past the big record", func() bool { return committed(t, c, "g", "kaudit.verdicts") == 51 })
	_ = stop()
	if s := r.Stats(); s.DeadLetter != 1 || s.DeadLetterCut != 1 || s.DeadLetterFailed != 0 {
		t.Errorf("stats %+v", s)
	}
}

// A broker whose size limit is below the producer's refuses the first
// dead letter (MESSAGE_TOO_LARGE, a permanent error); the runner sends the
// smallest stub instead.
func TestRunnerDeadLetterOverBrokerLimitSendsSmallestStub(t *testing.T) {
	c := newCluster(t, kfake.BrokerConfigs(map[string]string{"message.max.bytes": "600000"}))
	junk := randomJunk(599_900) // fits the broker; with the error headers it does not
	if err := junkProducer(t, c).ProduceSync(context.Background(),
		&kgo.Record{Topic: "kaudit.verdicts", Key: []byte("big"), Value: junk}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	produceVerdicts(t, c, 0, 20)
	sink := newFlakySink()
	r, stop := startRunner(t, c, sink, "g", nil)
	eventually(t, "the valid verdicts", func() bool { n, _ := sink.snapshot(); return n == 20 })
	dead := kafkatest.Consume(t, c, "kaudit.dlq", 1, 10*time.Second)
	if len(dead) != 1 || len(dead[0].Value) != audit.StubBytes || !strings.Contains(headers(dead[0])[audit.HeaderTruncated], "value 599900 bytes") {
		t.Fatalf("dead letters %d, value %d bytes, headers %v: want one stub of the big record", len(dead), len(dead[0].Value), headers(dead[0]))
	}
	eventually(t, "the commit past the big record", func() bool { return committed(t, c, "g", "kaudit.verdicts") == 21 })
	_ = stop()
	if s := r.Stats(); s.DeadLetter != 1 || s.DeadLetterCut != 1 {
		t.Errorf("stats %+v", s)
	}
}

// A dead-letter topic the sink may not write to (ACLs): the bad record is
// dropped, counted and logged at Error; the runner does not retry it
// forever, and the good records around it are written and committed.
func TestRunnerDeadLetterTopicForbidden(t *testing.T) {
	acl := func(res kmsg.ACLResourceType, name string, op kmsg.ACLOperation) kfake.ACL {
		return kfake.ACL{Resource: res, Name: name, Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: op, Allow: true}
	}
	c := kafkatest.NewCluster(t, kfake.SeedTopics(3, "kaudit.verdicts", "kaudit.events", "kaudit.dlq"),
		kfake.EnableSASL(), kfake.EnableACLs(), kfake.Superuser("PLAIN", "admin", "admin"),
		kfake.User("PLAIN", "sink", "sink-secret",
			acl(kmsg.ACLResourceTypeTopic, "kaudit.verdicts", kmsg.ACLOperationRead),
			acl(kmsg.ACLResourceTypeTopic, "kaudit.events", kmsg.ACLOperationRead),
			acl(kmsg.ACLResourceTypeGroup, "g", kmsg.ACLOperationRead),
			acl(kmsg.ACLResourceTypeCluster, "kafka-cluster", kmsg.ACLOperationIdempotentWrite),
		))
	admin := kgo.SASL(plain.Auth{User: "admin", Pass: "admin"}.AsMechanism())
	prod := kafkatest.Client(t, c, admin)
	var recs []*kgo.Record
	for i := range 30 {
		v := verdict(i)
		recs = append(recs, &kgo.Record{Topic: "kaudit.verdicts", Key: []byte(v.CorrelationID), Value: codecs.AppendVerdict(nil, v)})
		if i == 10 {
			recs = append(recs, &kgo.Record{Topic: "kaudit.verdicts", Key: []byte("junk"), Value: []byte{0xde, 0xad, 0xbe, 0xef}})
		}
	}
	if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var logs itest.SyncBuffer
	sink := newFlakySink()
	r, stop := startRunner(t, c, sink, "g", func(cfg *sinks.Config[*sinks.Batch]) {
		cfg.ClientOpts = []kgo.Opt{kgo.SASL(plain.Auth{User: "sink", Pass: "sink-secret"}.AsMechanism())}
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	eventually(t, "the valid verdicts", func() bool { n, _ := sink.snapshot(); return n == 30 })
	eventually(t, "the dropped dead letter counted", func() bool { return r.Stats().DeadLetterFailed == 1 })
	adm := kadm.NewClient(kafkatest.Client(t, c, admin))
	eventually(t, "the commit past the bad record", func() bool {
		offs, err := adm.FetchOffsets(context.Background(), "g")
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		offs.Each(func(o kadm.OffsetResponse) {
			if o.Topic == "kaudit.verdicts" && o.At > 0 {
				sum += o.At
			}
		})
		return sum == 31
	})
	_ = stop()
	if s := r.Stats(); s.DeadLetter != 0 || s.DeadLetterFailed != 1 {
		t.Errorf("stats %+v", s)
	}
	if out := logs.String(); !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "TOPIC_AUTHORIZATION_FAILED") {
		t.Errorf("no Error log naming the authorization failure:\n%s", out)
	}
	if n := len(kafkatest.Consume(t, c, "kaudit.dlq", 1, time.Second)); n != 0 {
		t.Errorf("%d dead letters written by a sink without the right to", n)
	}
}

// errors.tolerance=none stops at the first bad record and writes nothing
// past it.
func TestRunnerToleranceNone(t *testing.T) {
	c := newCluster(t)
	cl := kafkatest.Client(t, c)
	if err := cl.ProduceSync(context.Background(),
		&kgo.Record{Topic: "kaudit.verdicts", Partition: 0, Value: []byte{0xde, 0xad}}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cfg := config(c, "g")
	cfg.ErrorsTolerance = sinks.ToleranceNone
	r, err := sinks.New(cfg, newFlakySink())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = r.Run(ctx)
	if err == nil || ctx.Err() != nil {
		t.Fatalf("runner with errors.tolerance=none: err %v, want a failure on the bad record before the timeout", err)
	}
	if !strings.Contains(err.Error(), "errors.tolerance=none") {
		t.Errorf("error does not say why: %v", err)
	}
	if n := committed(t, c, "g", "kaudit.verdicts"); n != 0 {
		t.Errorf("committed %d past the bad record", n)
	}
}

func TestConfigRejectsInvalidValues(t *testing.T) {
	for name, mod := range map[string]func(*sinks.Config[*sinks.Batch]){
		"negative batch size":     func(c *sinks.Config[*sinks.Batch]) { c.BatchSize = -5 },
		"negative batch bytes":    func(c *sinks.Config[*sinks.Batch]) { c.BatchBytes = -1 },
		"negative flush interval": func(c *sinks.Config[*sinks.Batch]) { c.FlushInterval = -time.Second },
		"negative in flight":      func(c *sinks.Config[*sinks.Batch]) { c.MaxInFlight = -1 },
		"no topics":               func(c *sinks.Config[*sinks.Batch]) { c.Topics = nil },
		"topic twice":             func(c *sinks.Config[*sinks.Batch]) { c.Topics = append(c.Topics, c.Topics[0]) },
		"no group":                func(c *sinks.Config[*sinks.Batch]) { c.Group = "" },
		"bad tolerance":           func(c *sinks.Config[*sinks.Batch]) { c.ErrorsTolerance = "some" },
	} {
		cfg := sinks.Config[*sinks.Batch]{Brokers: []string{"127.0.0.1:1"}, Group: "g", Topics: sinks.AuditTopics("v", "e"), NewBatch: sinks.NewBatch}
		mod(&cfg)
		if _, err := sinks.New(cfg, newFlakySink()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// pingSink is a sink whose destination can be made unreachable.
type pingSink struct {
	*flakySink
	connects atomic.Int32
	failPing atomic.Bool
}

func (s *pingSink) Connect(context.Context) error {
	if s.connects.Add(1) < 3 {
		return errors.New("not up yet")
	}
	return nil
}

func (s *pingSink) Ping(context.Context) error {
	if s.failPing.Load() {
		return errors.New("connection refused")
	}
	return nil
}

// The runner connects its sink (retrying), and is ready once connected,
// its destination answers and it joined its group.
func TestRunnerConnectsAndReportsReadiness(t *testing.T) {
	c := newCluster(t)
	produceVerdicts(t, c, 0, 5)
	sink := &pingSink{flakySink: newFlakySink()}
	r, err := sinks.New(config(c, "g"), sinks.Sink[*sinks.Batch](sink))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Ready(context.Background()); err == nil {
		t.Fatal("ready before Run")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	eventually(t, "readiness", func() bool { return r.Ready(context.Background()) == nil })
	if n := sink.connects.Load(); n != 3 {
		t.Errorf("%d connects, want 3 (two failures retried)", n)
	}
	eventually(t, "the verdicts", func() bool { n, _ := sink.snapshot(); return n == 5 })
	sink.failPing.Store(true)
	if err := r.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("ready with the destination down: %v", err)
	}
	if err := r.Live(); err != nil {
		t.Errorf("not live while running: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r.Live() == nil {
		t.Error("live after Run returned")
	}
}
