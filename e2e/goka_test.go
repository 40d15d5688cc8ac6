package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/interceptors/emitter"
	"github.com/kaudit/kaudit/interceptors/kgoaudit"
	"github.com/kaudit/kaudit/interceptors/saramaaudit"
	"github.com/kaudit/kaudit/internal/testing/itest"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
)

// TestGoka: an audited franz-go producer writes to orders; a goka processor
// (sarama underneath) built with the saramaaudit builders reads orders and
// writes shipments; an audited franz-go consumer group reads shipments.
// Both hops come out of the correlator as DELIVERED deliveries in
// ClickHouse, and the goka hop's events come from sarama.
func TestGoka(t *testing.T) {
	itest.Integration(t)
	const n = 300
	const shipper, dispatch = "shipper", "dispatch"
	e := newEnv(t)
	kafkatest.CreateTopic(t, e.cluster, "orders", 3)
	kafkatest.CreateTopic(t, e.cluster, "shipments", 3)
	p, stopPipeline := e.startPipeline("sink-goka")

	em, err := emitter.New(emitter.Config{Brokers: e.brokers, Logger: e.log})
	if err != nil {
		t.Fatal(err)
	}

	// The goka processor, inputs and outputs audited.
	cfg := goka.DefaultConfig()
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Producer.Flush.Frequency = 10 * time.Millisecond
	gokaOwn := *cfg // goka's own builders set ClientID on the config they get
	graph := goka.DefineGroup(shipper,
		goka.Input("orders", new(codec.Bytes), func(ctx goka.Context, msg any) {
			order, _ := msg.([]byte)
			ctx.Emit("shipments", ctx.Key(), append([]byte("shipment for "), order...))
		}),
		goka.Output("shipments", new(codec.Bytes)),
	)
	proc, err := goka.NewProcessor(e.brokers, graph,
		goka.WithProducerBuilder(saramaaudit.ProducerBuilder(em, cfg)),
		goka.WithConsumerGroupBuilder(saramaaudit.ConsumerGroupBuilder(em, cfg)),
		goka.WithConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(&gokaOwn)),
		goka.WithTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(&gokaOwn, goka.NewTopicManagerConfig())),
		goka.WithClientID("shipper-1"),
		goka.WithLogger(slog.NewLogLogger(e.log.Handler(), slog.LevelInfo)),
	)
	if err != nil {
		t.Fatal(err)
	}
	pctx, cancelProc := context.WithCancel(context.Background())
	procDone := make(chan error, 1)
	go func() { procDone <- proc.Run(pctx) }()
	var procErr error
	var stopOnce sync.Once
	stopProc := func() error {
		stopOnce.Do(func() {
			cancelProc()
			procErr = <-procDone
		})
		return procErr
	}
	defer stopProc()
	readyCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := proc.WaitForReadyContext(readyCtx); err != nil {
		t.Fatalf("goka processor not ready: %v", err)
	}

	// The audited franz-go producer.
	prod, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ClientID("orders-producer"),
		kgo.DefaultProduceTopic("orders"), kgo.WithHooks(kgoaudit.New(em)))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "order-%d", i), Value: fmt.Appendf(nil, "order number %d", i)})
	}
	if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	prod.Close()
	orderIDs := map[string]bool{}
	for _, r := range recs {
		for _, h := range r.Headers {
			if h.Key == audit.CorrelationHeader {
				orderIDs[string(h.Value)] = true
			}
		}
	}

	// The audited consumer group reads what goka wrote: each shipment is
	// a new message with its own correlation ID.
	shipmentIDs := consumeAll(t, e.brokers, em, "shipments", dispatch, n)
	for id := range shipmentIDs {
		if orderIDs[id] {
			t.Fatalf("shipment carries the order's correlation ID %s", id)
		}
	}
	if err := stopProc(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("goka processor: %v", err)
	}

	closeCtx, cancelClose := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelClose()
	if err := em.Close(closeCtx); err != nil {
		t.Fatalf("emitter close: %v", err)
	}
	// produce orders + goka consume + goka produce + consume shipments;
	// goka may read a message twice if its group rebalanced.
	if s := em.Stats(); s.Dropped != 0 || s.Failed != 0 || s.Sent < 4*n {
		t.Fatalf("emitter stats %+v, want at least %d sent and nothing dropped or failed", s, 4*n)
	}

	deliveries, events := e.table("deliveries"), e.table("events")
	waitFor(t, 90*time.Second, "DELIVERED deliveries for both hops in ClickHouse", func() (bool, string) {
		got := e.queryUint("SELECT count() FROM " + deliveries + " FINAL WHERE status = 'DELIVERED'")
		return got >= 2*n, fmt.Sprintf("%d deliveries, correlator %+v, sink %+v", got, p.Correlator.Stats(), p.Sink.Stats())
	})
	waitFor(t, 30*time.Second, "every event in ClickHouse", func() (bool, string) {
		got := e.queryUint("SELECT count() FROM " + events + " FINAL")
		return got >= 4*n, fmt.Sprintf("%d events", got)
	})
	t.Logf("%d messages through two audited hops, %d deliveries in ClickHouse after %v", n, 2*n, time.Since(start).Round(time.Millisecond))
	stopPipeline()

	for _, hop := range []struct{ topic, group string }{{"orders", shipper}, {"shipments", dispatch}} {
		got := e.queryUint("SELECT count() FROM "+deliveries+" FINAL WHERE topic = ? AND consumer_group = ? AND status = 'DELIVERED'", hop.topic, hop.group)
		if got != n {
			t.Errorf("%s/%s: %d DELIVERED, want %d", hop.topic, hop.group, got, n)
		}
	}
	if got := e.queryUint("SELECT count() FROM " + deliveries + " FINAL"); got != 2*n {
		t.Errorf("%d deliveries, want %d", got, 2*n)
	}
	if got := e.queryUint("SELECT uniqExact(correlation_id) FROM " + deliveries + " FINAL"); got != 2*n {
		t.Errorf("%d distinct messages, want %d", got, 2*n)
	}
	if bad := e.queryUint("SELECT count() FROM " + deliveries + " FINAL WHERE ack_latency_us < 0 OR e2e_latency_us <= 0"); bad != 0 {
		t.Errorf("%d deliveries without ack or end-to-end latency", bad)
	}
	// The goka hop's events are sarama's: its consumes of orders and its
	// produces of shipments, the latter acknowledged with an offset.
	if got := e.queryUint("SELECT uniqExact(correlation_id) FROM "+events+" FINAL WHERE source = ? AND kind = 'consume' AND topic = 'orders' AND consumer_group = ? AND client_id = 'shipper-1'", saramaaudit.Source, shipper); got != n {
		t.Errorf("%d orders with a sarama consume event by %s, want %d", got, shipper, n)
	}
	if got := e.queryUint("SELECT count() FROM "+events+" FINAL WHERE source = ? AND kind = 'produce' AND topic = 'shipments' AND client_id = 'shipper-1' AND ack_ns >= send_ns AND send_ns > 0 AND offset >= 0 AND error = ''", saramaaudit.Source); got != n {
		t.Errorf("%d acknowledged sarama produce events for shipments, want %d", got, n)
	}
	if got := e.queryUint("SELECT count() FROM "+events+" FINAL WHERE source = ? AND NOT (topic = 'orders' AND kind = 'consume') AND NOT (topic = 'shipments' AND kind = 'produce')", saramaaudit.Source); got != 0 {
		t.Errorf("%d other sarama events", got)
	}
	if got := e.queryUint("SELECT count() FROM "+events+" FINAL WHERE source = ? AND NOT (topic = 'orders' AND kind = 'produce') AND NOT (topic = 'shipments' AND kind = 'consume')", kgoaudit.Source); got != 0 {
		t.Errorf("%d franz-go events outside the franz-go hops", got)
	}
}
