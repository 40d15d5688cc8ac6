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
	"github.com/kaudit/kaudit/processors/expectations"
)

// TestAuditGapIsNotALoss: a consumer group reads every message, but its
// audit emitter has room for two events at a time, so most of its consume
// events are dropped — and reported as drops. The test knows the group
// read everything: no message may be judged LOST with cause not_consumed;
// each one whose consume event was dropped is LOST with cause audit_gap.
func TestAuditGapIsNotALoss(t *testing.T) {
	itest.Integration(t)
	const n = 300
	e := newEnv(t)
	kafkatest.CreateTopic(t, e.cluster, "orders", 3)
	_, stop := e.startPipelineWith(pipeline.Config{
		DefaultDeadline: 10 * time.Second,
		Expectations:    []*expectations.Expectation{{Topic: "orders", Groups: []string{"g"}}},
	})
	defer stop()

	prodEm, err := emitter.New(emitter.Config{Brokers: e.brokers, Logger: e.log})
	if err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.DefaultProduceTopic("orders"), kgo.WithHooks(kgoaudit.New(prodEm)))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := prod.ProduceSync(context.Background(), &kgo.Record{Value: fmt.Appendf(nil, "m%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	prod.Close()
	if err := prodEm.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	// The group reads all n messages through an audit emitter with room
	// for two events.
	tiny, err := emitter.New(emitter.Config{Brokers: e.brokers, QueueSize: 2, Logger: e.log})
	if err != nil {
		t.Fatal(err)
	}
	hooks := kgoaudit.New(tiny)
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumerGroup("g"), kgo.ConsumeTopics("orders"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.WithHooks(hooks))
	if err != nil {
		t.Fatal(err)
	}
	read := 0
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	for read < n && ctx.Err() == nil {
		read += cl.PollFetches(ctx).NumRecords()
	}
	cancel()
	cl.Close()
	if err := tiny.Close(context.Background()); err != nil { // sends the drop reports
		t.Logf("closing the tiny emitter: %v", err)
	}
	if read != n {
		t.Fatalf("the group read %d of %d messages", read, n)
	}
	if hooks.Stats().Rejected == 0 {
		t.Fatal("no consume event was dropped: the scenario tests nothing")
	}

	deliveries := e.table("deliveries")
	waitFor(t, 60*time.Second, "a verdict for every message", func() (bool, string) {
		got := e.queryUint("SELECT count() FROM " + deliveries + " FINAL WHERE consumer_group = 'g'")
		return got == n, fmt.Sprintf("%d verdicts", got)
	})
	count := func(where string) uint64 {
		return e.queryUint("SELECT count() FROM " + deliveries + " FINAL WHERE consumer_group = 'g' AND " + where)
	}
	delivered, gap, lost := count("status = 'DELIVERED'"), count("status = 'LOST' AND cause = 'audit_gap'"), count("status = 'LOST' AND cause = 'not_consumed'")
	t.Logf("%d consume events dropped; verdicts: %d DELIVERED, %d LOST/audit_gap, %d LOST/not_consumed", hooks.Stats().Rejected, delivered, gap, lost)
	if lost != 0 || delivered+gap != n || gap == 0 {
		t.Errorf("the group read every message: want only DELIVERED and LOST/audit_gap (some), got %d DELIVERED, %d audit_gap, %d not_consumed",
			delivered, gap, lost)
	}
}
