package e2e_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/interceptors/emitter"
	"github.com/kaudit/kaudit/interceptors/kgoaudit"
	"github.com/kaudit/kaudit/internal/app/pipeline"
	"github.com/kaudit/kaudit/internal/testing/itest"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
	"github.com/kaudit/kaudit/processors/learner"
)

// TestLearnedExpectations: two groups consume a topic steadily; once they
// have consumed over a whole warm-up they are expected without anyone
// declaring it, so when one of them stops consuming, its messages are LOST
// (learned). A one-off consumer (one poll at the start) never becomes
// expected.
func TestLearnedExpectations(t *testing.T) {
	itest.Integration(t)
	const (
		n      = 20
		warmup = 2 * time.Second
	)
	e := newEnv(t)
	kafkatest.CreateTopic(t, e.cluster, "invoices", 2)
	p, err := pipeline.New(pipeline.Config{
		Brokers: e.brokers, ClickHouse: e.conn, Database: e.ch.Database, StorageDir: t.TempDir(),
		SweepInterval: 300 * time.Millisecond, DefaultDeadline: 3 * time.Second, LearnWarmup: warmup,
		FlushInterval: 200 * time.Millisecond, Logger: e.log,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	em, err := emitter.New(emitter.Config{Brokers: e.brokers, Logger: e.log})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close(context.Background())
	prod, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.DefaultProduceTopic("invoices"), kgo.WithHooks(kgoaudit.New(em)))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	produce := func(phase string, i int) {
		if err := prod.ProduceSync(context.Background(), &kgo.Record{Value: fmt.Appendf(nil, "%s %d", phase, i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	consumers := map[string]*kgo.Client{}
	consume := func(group string, want int) {
		cl := consumers[group]
		if cl == nil {
			if cl, err = kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumerGroup(group), kgo.ConsumeTopics("invoices"),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.WithHooks(kgoaudit.New(em))); err != nil {
				t.Fatal(err)
			}
			consumers[group] = cl
			t.Cleanup(cl.Close)
		}
		pctx, pcancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer pcancel()
		for got := 0; got < want && pctx.Err() == nil; {
			got += cl.PollFetches(pctx).NumRecords()
		}
	}

	// Phase 1: x and y consume steadily for longer than the warm-up; "once"
	// reads the first message only.
	produce("first", 0)
	consume("x", 1)
	consume("y", 1)
	consume("once", 1)
	began := time.Now()
	for i := 1; time.Since(began) < warmup+time.Second; i++ {
		produce("first", i)
		consume("x", 1)
		consume("y", 1)
		time.Sleep(100 * time.Millisecond) // the pace of the traffic, not a wait for kaudit
	}
	// Wait until the learner has seen x and y over the whole warm-up.
	waitFor(t, 30*time.Second, "x and y learned", func() (bool, string) {
		l := learned(t, e, "invoices")
		ok := l["x"] >= warmup && l["y"] >= warmup
		return ok, fmt.Sprint(l)
	})

	// Phase 2: y and "once" have stopped.
	for i := range n {
		produce("second", i)
	}
	consume("x", n)

	deliveries := e.table("deliveries")
	waitFor(t, 60*time.Second, "y's second-phase messages LOST (learned)", func() (bool, string) {
		lost := e.queryUint("SELECT count() FROM " + deliveries + " FINAL WHERE consumer_group = 'y' AND status = 'LOST' AND learned = 1 AND expected = 1")
		return lost == n, fmt.Sprintf("%d learned LOST", lost)
	})
	// Messages acknowledged after the warm-up ended are expected for both
	// groups: y read those of phase 1 (k of them), x read them all.
	k := e.queryUint("SELECT count() FROM " + deliveries + " FINAL WHERE consumer_group = 'y' AND status = 'DELIVERED' AND expected = 1")
	if got := e.queryUint("SELECT count() FROM " + deliveries + " FINAL WHERE consumer_group = 'x' AND status = 'DELIVERED' AND expected = 1"); got != n+k {
		t.Errorf("x: %d expected DELIVERED, want %d (phase 2) + %d (late phase 1, as for y)", got, n, k)
	}
	if got := e.queryUint("SELECT count() FROM " + deliveries + " FINAL WHERE consumer_group = 'once' AND status != 'DELIVERED'"); got != 0 {
		t.Errorf("the one-off group has %d verdicts other than DELIVERED: it must never be expected", got)
	}
}

// learned reads the learner's table for topic: how long each group has been
// seen consuming it.
func learned(t *testing.T, e *env, topic string) map[string]time.Duration {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics(string(learner.Table(learner.DefaultGroup))),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	out := map[string]time.Duration{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Key) != topic {
				return
			}
			v, _ := learner.Codec{}.Decode(r.Value)
			if l, _ := v.(*learner.Learned); l != nil {
				for _, g := range l.Groups {
					out[g.Group] = time.Duration(g.LastSeenNs - g.FirstSeenNs)
				}
			}
		})
	}
	return out
}
