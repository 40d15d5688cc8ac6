package kgoaudit_test

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/interceptors/emitter"
	"github.com/kaudit/kaudit/interceptors/kgoaudit"
)

// An audited producer and consumer group on one cluster, with the audit
// events going to another.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	app, _ := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "orders"))
	defer app.Close()
	auditCluster, _ := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, audit.DefaultEventsTopic))
	defer auditCluster.Close()

	em, err := emitter.New(emitter.Config{Brokers: auditCluster.ListenAddrs()})
	if err != nil {
		panic(err)
	}
	producer, _ := kgo.NewClient(
		kgo.SeedBrokers(app.ListenAddrs()...),
		kgo.WithHooks(kgoaudit.New(em)),
	)
	defer producer.Close()
	consumer, _ := kgo.NewClient(
		kgo.SeedBrokers(app.ListenAddrs()...),
		kgo.ConsumerGroup("billing"),
		kgo.ConsumeTopics("orders"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.WithHooks(kgoaudit.New(em)),
	)
	defer consumer.Close()

	if err := producer.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("order 1")}).FirstErr(); err != nil {
		panic(err)
	}
	for n := 0; n == 0 && ctx.Err() == nil; {
		n = len(consumer.PollFetches(ctx).Records())
	}
	if err := em.Close(ctx); err != nil { // flush the audit events
		panic(err)
	}

	// Read the audit trail: both events share the correlation ID key, so
	// they are in one partition, in order.
	reader, _ := kgo.NewClient(
		kgo.SeedBrokers(auditCluster.ListenAddrs()...),
		kgo.ConsumeTopics(audit.DefaultEventsTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	defer reader.Close()
	var evs []*codecs.Event
	for len(evs) < 2 && ctx.Err() == nil {
		for _, r := range reader.PollFetches(ctx).Records() {
			ev, err := codecs.DecodeEvent(r.Value)
			if err != nil {
				panic(err)
			}
			evs = append(evs, ev)
		}
	}
	for _, ev := range evs {
		fmt.Printf("%s %s group=%q error=%q\n", ev.Kind, ev.Topic, ev.Group, ev.Error)
	}
	fmt.Println("same message:", evs[0].CorrelationID == evs[1].CorrelationID)
	// Output:
	// produce orders group="" error=""
	// consume orders group="billing" error=""
	// same message: true
}
