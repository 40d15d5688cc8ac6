package sinks_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
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
}

func newFlakySink() *flakySink {
	return &flakySink{verdicts: map[string]int{}, events: map[sinks.Position]int{}}
}

func (s *flakySink) WriteBatch(_ context.Context, b *sinks.Batch) error {
	s.mu.Lock()
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

func startRunner(t *testing.T, c *kfake.Cluster, sink sinks.Sink, group string, mod func(*sinks.RunnerConfig)) (*sinks.Runner, func() error) {
	t.Helper()
	cfg := sinks.RunnerConfig{
		Brokers:       c.ListenAddrs(),
		Group:         group,
		VerdictsTopic: "kaudit.verdicts",
		EventsTopic:   "kaudit.events",
		DLQTopic:      "kaudit.dlq",
		BatchSize:     100,
		FlushInterval: 50 * time.Millisecond,
		RetryBackoff:  10 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	r, err := sinks.NewRunner(cfg, sink)
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

func newCluster(t *testing.T) *kfake.Cluster {
	c := kafkatest.NewCluster(t)
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

	// Same group: nothing was committed, so all 300 come again.
	sink.setDown(false)
	r, stop := startRunner(t, c, sink, "g1", nil)
	eventually(t, "all verdicts", func() bool { n, _ := sink.snapshot(); return n == 300 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if s := r.Stats(); s.Verdicts != 300 || s.DeadLetter != 0 {
		t.Errorf("stats %+v", s)
	}

	// And now they are committed: a new runner in the group reads only new
	// records.
	produceVerdicts(t, c, 300, 310)
	sink2 := newFlakySink()
	_, stop = startRunner(t, c, sink2, "g1", nil)
	eventually(t, "the 10 new verdicts", func() bool { n, _ := sink2.snapshot(); return n == 10 })
	time.Sleep(300 * time.Millisecond)
	if n, _ := sink2.snapshot(); n != 10 {
		t.Errorf("runner after commit wrote %d verdicts, want only the 10 new ones", n)
	}
	_ = stop()
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
		h := map[string]string{}
		for _, x := range d.Headers {
			h[x.Key] = string(x.Value)
		}
		if h[audit.HeaderErrMessage] == "" || h[audit.HeaderErrTopic] == "" || h[audit.HeaderErrOffset] == "" {
			t.Errorf("dead letter %q lacks error headers: %v", d.Key, h)
		}
		if string(d.Key) == "junk" && string(d.Value) != string(garbage) {
			t.Errorf("dead letter changed the record's value")
		}
	}
	_ = stop()
	if s := r.Stats(); s.DeadLetter != 2 || s.Verdicts != 5 {
		t.Errorf("stats %+v", s)
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
	r, err := sinks.NewRunner(sinks.RunnerConfig{
		Brokers: c.ListenAddrs(), Group: "g", VerdictsTopic: "kaudit.verdicts",
		ErrorsTolerance: sinks.ToleranceNone, DLQTopic: "kaudit.dlq",
	}, newFlakySink())
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
}
