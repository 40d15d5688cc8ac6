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
)

// TestLearnedExpectations: two groups consume a topic; after the warm-up
// they are expected without anyone declaring it, so when one of them stops
// consuming, its messages are LOST (learned).
func TestLearnedExpectations(t *testing.T) {
	itest.Integration(t)
	const n = 20
	e := newEnv(t)
	kafkatest.CreateTopic(t, e.cluster, "invoices", 2)
	p, err := pipeline.New(pipeline.Config{
		Brokers: e.brokers, ClickHouse: e.conn, Database: e.ch.Database, StorageDir: t.TempDir(),
		SweepInterval: 300 * time.Millisecond, DefaultDeadline: 3 * time.Second, LearnWarmup: 2 * time.Second,
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
	produce := func(phase string) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.DefaultProduceTopic("invoices"), kgo.WithHooks(kgoaudit.New(em)))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		for i := range n {
			if err := cl.ProduceSync(context.Background(), &kgo.Record{Value: fmt.Appendf(nil, "%s %d", phase, i)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
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

	produce("first")
	consume("x", n)
	consume("y", n)
	// Wait past the warm-up, counted from the sightings.
	time.Sleep(3 * time.Second)
	produce("second")
	consume("x", n) // y has stopped

	deliveries := e.table("deliveries")
	waitFor(t, 60*time.Second, "y's second-phase messages LOST (learned)", func() (bool, string) {
		lost := e.queryUint("SELECT count() FROM " + deliveries + " FINAL WHERE consumer_group = 'y' AND status = 'LOST' AND learned = 1 AND expected = 1")
		return lost == n, fmt.Sprintf("%d learned LOST", lost)
	})
	if got := e.queryUint("SELECT count() FROM " + deliveries + " FINAL WHERE status = 'DELIVERED'"); got != 3*n {
		t.Errorf("%d DELIVERED, want %d (x twice, y once)", got, 3*n)
	}
	if got := e.queryUint("SELECT count() FROM " + deliveries + " FINAL WHERE status = 'DELIVERED' AND expected = 0"); got != 2*n {
		t.Errorf("%d DELIVERED before the warm-up ended (not expected), want %d", got, 2*n)
	}
}
