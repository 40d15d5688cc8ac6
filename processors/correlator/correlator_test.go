package correlator_test

import (
	"context"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/processors/correlator"
)

// harness runs the correlator's processor on goka's tester (no Kafka).
type harness struct {
	t        *testing.T
	tt       *tester.Tester
	c        *correlator.Correlator
	proc     *goka.Processor
	verdicts *tester.QueueTracker
	dlq      *tester.QueueTracker
	now      time.Time
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, tt: tester.New(t), now: time.Unix(1_700_000_000, 0)}
	c, err := correlator.New(correlator.Config{
		Brokers:   []string{"unused:9092"},
		Retention: time.Minute,
		Now:       func() time.Time { return h.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	h.proc, err = goka.NewProcessor(nil, c.Graph(), goka.WithTester(h.tt))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.proc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("processor: %v", err)
		}
	})
	h.verdicts = h.tt.NewQueueTracker(correlator.DefaultVerdictsTopic)
	h.dlq = h.tt.NewQueueTracker(correlator.DefaultDLQTopic)
	return h
}

func (h *harness) consume(e *codecs.Event) {
	h.t.Helper()
	h.tt.Consume(correlator.DefaultEventsTopic, e.CorrelationID, codecs.AppendEvent(nil, e))
}

func (h *harness) nextVerdicts() []*codecs.Verdict {
	var out []*codecs.Verdict
	for {
		_, v, ok := h.verdicts.Next()
		if !ok {
			return out
		}
		out = append(out, v.(*codecs.Verdict))
	}
}

const sec = int64(time.Second)

func produce(id string, send, ack int64) *codecs.Event {
	return &codecs.Event{Version: 1, Kind: codecs.KindProduce, CorrelationID: id, Topic: "orders",
		Partition: 2, Offset: 41, ClientID: "p1", SendNs: send, AckNs: ack, PayloadSize: 10, Digest: 7}
}

func consume(id, group string, at int64) *codecs.Event {
	return &codecs.Event{Version: 1, Kind: codecs.KindConsume, CorrelationID: id, Topic: "orders",
		Partition: 2, Offset: 41, ClientID: group + "-c", Group: group, ConsumeNs: at, PayloadSize: 10, Digest: 7}
}

func TestProduceThenConsumeIsDelivered(t *testing.T) {
	h := newHarness(t)
	base := h.now.UnixNano()
	h.consume(produce("m1", base, base+2_000_000))
	if got := h.nextVerdicts(); len(got) != 0 {
		t.Fatalf("verdicts before any consume: %+v", got)
	}
	h.consume(consume("m1", "billing", base+5_000_000))
	h.consume(consume("m1", "search", base+9_000_000))

	got := h.nextVerdicts()
	if len(got) != 2 {
		t.Fatalf("got %d verdicts, want 2: %+v", len(got), got)
	}
	for i, want := range []struct {
		group string
		e2eUs int64
	}{{"billing", 5000}, {"search", 9000}} {
		v := got[i]
		if v.Group != want.group || v.Status != codecs.StatusDelivered || v.Seq != 1 {
			t.Errorf("verdict %d: group %s status %s seq %d", i, v.Group, v.Status, v.Seq)
		}
		if v.AckLatencyUs != 2000 || v.E2ELatencyUs != want.e2eUs {
			t.Errorf("verdict %d: ack %dus e2e %dus, want 2000us and %dus", i, v.AckLatencyUs, v.E2ELatencyUs, want.e2eUs)
		}
		if v.Partition != 2 || v.Offset != 41 || v.ProducerClient != "p1" || v.ConsumerClient != want.group+"-c" || v.ConsumeCount != 1 {
			t.Errorf("verdict %d facts: %+v", i, v)
		}
		if v.FirstSeenNs != base+2_000_000 {
			t.Errorf("verdict %d first seen %d, want the ack time %d", i, v.FirstSeenNs, base+2_000_000)
		}
	}
	trail := h.tt.TableValue(h.c.Table(), "m1").(*correlator.Trail)
	if len(trail.Groups) != 2 || trail.Produce == nil || trail.ProduceEvents != 1 {
		t.Fatalf("trail: %+v", trail)
	}
}

// A consumer may see a record before its producer sees the ack: the verdict
// waits for the produce event, and the e2e latency can be below the ack
// latency.
func TestConsumeBeforeAck(t *testing.T) {
	h := newHarness(t)
	base := h.now.UnixNano()
	h.consume(consume("m2", "billing", base+1_000_000))
	if got := h.nextVerdicts(); len(got) != 0 {
		t.Fatalf("verdict without produce facts: %+v", got)
	}
	h.consume(produce("m2", base, base+3_000_000))
	got := h.nextVerdicts()
	if len(got) != 1 || got[0].Status != codecs.StatusDelivered {
		t.Fatalf("got %+v", got)
	}
	if got[0].E2ELatencyUs != 1000 || got[0].AckLatencyUs != 3000 {
		t.Errorf("e2e %d ack %d", got[0].E2ELatencyUs, got[0].AckLatencyUs)
	}
	if got[0].FirstSeenNs != base+1_000_000 {
		t.Errorf("first seen %d, want the consume time", got[0].FirstSeenNs)
	}
}

// A repeated audit event (the emitter is at-least-once) does not create a
// second verdict; a second consume updates the count under a higher seq.
func TestRepeatedEvents(t *testing.T) {
	h := newHarness(t)
	base := h.now.UnixNano()
	h.consume(produce("m3", base, base+1000))
	h.consume(produce("m3", base, base+1000))
	h.consume(consume("m3", "g", base+5000))
	h.consume(consume("m3", "g", base+9000))
	got := h.nextVerdicts()
	if len(got) != 2 {
		t.Fatalf("got %d verdicts: %+v", len(got), got)
	}
	if got[1].Seq != 2 || got[1].ConsumeCount != 2 || got[1].LastConsumeNs != base+9000 {
		t.Errorf("second verdict: %+v", got[1])
	}
}

// Garbage and events keyed by something else go to the dead-letter topic
// with the reason, and the processor keeps going.
func TestMalformedGoesToDLQ(t *testing.T) {
	h := newHarness(t)
	h.tt.Consume(correlator.DefaultEventsTopic, "k", []byte{0xff, 0x00, 0x13, 0x37})
	wrongKey := codecs.AppendEvent(nil, produce("m4", 1, 2))
	h.tt.Consume(correlator.DefaultEventsTopic, "not-m4", wrongKey)

	for i, wantKey := range []string{"k", "not-m4"} {
		hdr, key, _, ok := h.dlq.NextWithHeaders()
		if !ok {
			t.Fatalf("dead letter %d missing", i)
		}
		if key != wantKey || len(hdr[correlator.HeaderErrMessage]) == 0 || string(hdr[correlator.HeaderErrTopic]) != correlator.DefaultEventsTopic {
			t.Errorf("dead letter %d: key %q headers %q", i, key, hdr)
		}
	}
	// Still alive.
	base := h.now.UnixNano()
	h.consume(produce("m5", base, base+1000))
	h.consume(consume("m5", "g", base+2000))
	if got := h.nextVerdicts(); len(got) != 1 {
		t.Fatalf("after dead letters: %d verdicts", len(got))
	}
	if s := h.c.Stats(); s.DeadLetter != 2 || s.Events != 2 {
		t.Errorf("stats %+v", s)
	}
}

// Sweeps delete trails idle for longer than the retention, and only those.
func TestSweepDeletesIdleTrails(t *testing.T) {
	h := newHarness(t)
	base := h.now.UnixNano()
	h.consume(produce("old", base-2*60*sec, base-2*60*sec))
	h.consume(produce("new", base-10*sec, base-10*sec))
	if err := h.c.Sweep(context.Background(), h.proc); err != nil {
		t.Fatal(err)
	}
	if v := h.tt.TableValue(h.c.Table(), "old"); v != nil {
		t.Errorf("idle trail kept: %+v", v)
	}
	if v := h.tt.TableValue(h.c.Table(), "new"); v == nil {
		t.Errorf("recent trail deleted")
	}
	if s := h.c.Stats(); s.Deleted != 1 || s.OpenTrails != 1 {
		t.Errorf("stats %+v", s)
	}
}
