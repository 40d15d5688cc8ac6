package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/interceptors/emitter"
	"github.com/kaudit/kaudit/interceptors/kgoaudit"
	"github.com/kaudit/kaudit/internal/app/pipeline"
	"github.com/kaudit/kaudit/internal/testing/itest"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
	"github.com/kaudit/kaudit/processors/expectations"
)

// TestOldestUnconsumedAge: group "fast" reads every message at once, group
// "stalled" reads nothing for a known time. The correlator's
// kaudit_oldest_unconsumed_age_seconds for stalled follows the age of the
// oldest message it has not read (the test knows when that message was
// acknowledged), fast has none, and once stalled catches up its series goes;
// the per-minute report on kaudit.lag says the same.
func TestOldestUnconsumedAge(t *testing.T) {
	itest.Integration(t)
	e := newEnv(t)
	kafkatest.CreateTopic(t, e.cluster, "orders", 3)
	p, err := pipeline.New(pipeline.Config{
		Brokers: e.brokers, ClickHouse: e.conn, Database: e.ch.Database, StorageDir: t.TempDir(),
		SweepInterval: 500 * time.Millisecond, DefaultDeadline: time.Minute, Logger: e.log,
		Expectations: []*expectations.Expectation{{Topic: "orders", Groups: []string{"fast", "stalled"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	reg := prometheus.NewRegistry()
	reg.MustRegister(p.Correlator.Collector())

	em, err := emitter.New(emitter.Config{Brokers: e.brokers, Logger: e.log})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close(context.Background())
	prod, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.DefaultProduceTopic("orders"), kgo.WithHooks(kgoaudit.New(em)))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	// The first message is the oldest the stalled group never reads until
	// the end; its acknowledgement is the reference.
	r := &kgo.Record{Value: []byte("first")}
	if err := prod.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		t.Fatal(err)
	}
	firstAck := time.Now() // the ack arrived before ProduceSync returned
	for i := range 20 {
		if err := prod.ProduceSync(context.Background(), &kgo.Record{Value: fmt.Appendf(nil, "m%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	consumeAll(t, e.brokers, em, "orders", "fast", 21)

	age := func(group string) (float64, bool) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "kaudit_oldest_unconsumed_age_seconds" {
				continue
			}
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["topic"] == "orders" && labels["group"] == group {
					return m.GetGauge().GetValue(), true
				}
			}
		}
		return 0, false
	}
	// Stall for a known time, then check the metric against it.
	const stall = 6 * time.Second
	time.Sleep(time.Until(firstAck.Add(stall))) // the stall is the scenario
	waitFor(t, 10*time.Second, "the correlator to have folded the produce events", func() (bool, string) {
		_, ok := age("stalled")
		return ok, "no series for stalled"
	})
	before := time.Since(firstAck)
	got, _ := age("stalled")
	after := time.Since(firstAck)
	if got < before.Seconds()-0.5 || got > after.Seconds()+0.5 {
		t.Errorf("oldest unconsumed age of stalled: %.2fs, want %.2f–%.2fs (since the first message's ack)", got, before.Seconds(), after.Seconds())
	}
	if v, ok := age("fast"); ok {
		t.Errorf("fast consumed everything, yet its oldest unconsumed age is %.2fs", v)
	}
	// The per-minute report.
	if err := p.Correlator.ReportLag(context.Background(), time.Now().Truncate(time.Minute)); err != nil {
		t.Fatal(err)
	}
	// The correlator's own minute report may be on the topic before it
	// (a minute can begin during the test): look for the one written now.
	var reps []audit.LagReport
	found := false
	for n := 1; n <= 3 && !found; n++ {
		reps = reps[:0]
		for _, rec := range kafkatest.Consume(t, e.cluster, audit.DefaultLagTopic, n, 10*time.Second) {
			var rep audit.LagReport
			if err := json.Unmarshal(rec.Value, &rep); err != nil {
				t.Fatal(err)
			}
			reps = append(reps, rep)
			if rep.Topic == "orders" && rep.Group == "stalled" && rep.Pending == 21 && time.Duration(rep.AgeMs)*time.Millisecond >= stall {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("lag reports %+v, want one of orders/stalled with 21 pending, at least %s old", reps, stall)
	}
	// Stalled catches up: nothing is pending any more.
	consumeAll(t, e.brokers, em, "orders", "stalled", 21)
	waitFor(t, 20*time.Second, "stalled's series to go", func() (bool, string) {
		v, ok := age("stalled")
		return !ok, fmt.Sprintf("still %.2fs", v)
	})
}
