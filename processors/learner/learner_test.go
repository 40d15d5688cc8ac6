package learner_test

import (
	"context"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/processors/learner"
)

func TestLearnsGroupsPerTopic(t *testing.T) {
	tt := tester.New(t)
	l, err := learner.New(learner.Config{Brokers: []string{"unused:9092"}, Resolution: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	proc, err := goka.NewProcessor(nil, l.Graph(), goka.WithTester(tt))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- proc.Run(ctx) }()
	defer func() { cancel(); <-done }()

	base := time.Unix(1_700_000_000, 0).UnixNano()
	send := func(topic, group string, at int64, kind codecs.Kind) {
		e := &codecs.Event{Version: 1, Kind: kind, CorrelationID: "id", Topic: topic, Group: group, ConsumeNs: base + at, SendNs: base + at, AckNs: base + at}
		tt.Consume("kaudit.events", e.CorrelationID, codecs.AppendEvent(nil, e))
	}
	send("orders", "billing", 0, codecs.KindConsume)
	send("orders", "billing", int64(time.Second), codecs.KindConsume) // within the resolution
	send("orders", "search", int64(2*time.Second), codecs.KindConsume)
	send("orders", "", 0, codecs.KindProduce) // not a sighting
	send("refunds", "billing", int64(5*time.Minute), codecs.KindConsume)
	tt.Consume("kaudit.events", "junk", []byte{0xff}) // ignored, never fatal

	v, _ := tt.TableValue(learner.Table(learner.DefaultGroup), "orders").(*learner.Learned)
	if v == nil || len(v.Groups) != 2 {
		t.Fatalf("orders: %+v", v)
	}
	if v.Groups[0].Group != "billing" || v.Groups[0].FirstSeenNs != base || v.Groups[1].Group != "search" {
		t.Errorf("orders groups: %+v", v.Groups)
	}
	if r, _ := tt.TableValue(learner.Table(learner.DefaultGroup), "refunds").(*learner.Learned); r == nil || len(r.Groups) != 1 {
		t.Errorf("refunds: %+v", r)
	}
}
