package saramaaudit_test

import (
	"context"
	"fmt"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/interceptors/emitter"
	"github.com/kaudit/kaudit/interceptors/saramaaudit"
)

func ExampleNewAsyncProducer() {
	// An in-process broker stands in for Kafka.
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "orders", audit.DefaultEventsTopic))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()

	em, err := emitter.New(emitter.Config{Brokers: brokers})
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_1_0_0 // headers need at least 0.11
	cfg.ClientID = "checkout"
	cfg.Producer.Return.Successes = true
	producer, err := saramaaudit.NewAsyncProducer(em, brokers, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	producer.Input() <- &sarama.ProducerMessage{Topic: "orders", Value: sarama.StringEncoder("order 1")}
	msg := <-producer.Successes()
	for _, h := range msg.Headers {
		if string(h.Key) == audit.CorrelationHeader {
			fmt.Println("correlation ID length:", len(h.Value))
		}
	}
	if err := producer.Close(); err != nil {
		fmt.Println(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := em.Close(ctx); err != nil {
		fmt.Println(err)
	}
	fmt.Printf("audit events sent: %d\n", em.Stats().Sent)
	// Output:
	// correlation ID length: 36
	// audit events sent: 1
}

// A goka processor whose inputs and outputs are audited.
func ExampleProducerBuilder() {
	em, err := emitter.New(emitter.Config{Brokers: []string{"audit-kafka:9092"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer em.Close(context.Background())

	cfg := goka.DefaultConfig()
	graph := goka.DefineGroup("shipper",
		goka.Input("orders", new(codec.Bytes), func(ctx goka.Context, msg any) {
			ctx.Emit("shipments", ctx.Key(), msg)
		}),
		goka.Output("shipments", new(codec.Bytes)),
	)
	proc, err := goka.NewProcessor([]string{"kafka:9092"}, graph,
		goka.WithProducerBuilder(saramaaudit.ProducerBuilder(em, cfg)),
		goka.WithConsumerGroupBuilder(saramaaudit.ConsumerGroupBuilder(em, cfg)),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = proc.Run(context.Background())
}
