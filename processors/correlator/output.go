package correlator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Output is where the correlator's verdicts and dead letters go: the
// produce call of a franz-go client (*kgo.Client implements it). promise is
// called exactly once, when the record was acknowledged (nil error) or
// could not be written.
type Output interface {
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
}

// Why the correlator writes its verdicts with a client of its own instead of
// goka's ctx.Emit: goka marks an input offset as consumed when that
// message's emits are done, and Kafka offsets only move forward, so when a
// later message's emits finish first (its verdict went to a faster
// partition), the committed offset passes an earlier message whose verdict
// is still in flight; a crash then loses that verdict for good, since the
// message is never read again. The gates below make commits follow the
// input order: each input message defers its commit (ctx.DeferCommit) until
// its own records and those of every earlier message of its partition are
// acknowledged. goka's own emit of the table update is counted by goka, and
// table updates of one partition are acknowledged in order (one idempotent
// franz-go producer, gokaopts.ProducerBuilder; one table partition), so a committed offset means every
// earlier message's verdicts and table updates are durable.

// gate orders the commits of one input partition.
type gate struct {
	mu       sync.Mutex
	q        []*inflight
	draining bool
}

// inflight is one input message whose records are being produced.
type inflight struct {
	left    int  // records not yet acknowledged
	sealed  bool // all of its records were handed to the output
	err     error
	release func(error)
}

// gates holds the gate of every partition.
type gates struct {
	mu sync.Mutex
	m  map[int32]*gate
}

func (gs *gates) of(partition int32) *gate {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if gs.m == nil {
		gs.m = map[int32]*gate{}
	}
	g := gs.m[partition]
	if g == nil {
		g = &gate{}
		gs.m[partition] = g
	}
	return g
}

// produceGated writes recs for the input message of ctx and defers the
// message's commit until they and every earlier message's records are
// acknowledged.
func (c *Correlator) produceGated(ctx goka.Context, recs []*kgo.Record) {
	g := c.gates.of(ctx.Partition())
	f := &inflight{release: ctx.DeferCommit(), left: len(recs)}
	g.mu.Lock()
	g.q = append(g.q, f)
	g.mu.Unlock()
	for _, r := range recs {
		c.out.Produce(context.Background(), r, func(_ *kgo.Record, err error) {
			if permanent(err) {
				// The record can never be written (too large, not
				// authorized): holding the input back would stop the
				// partition for good on this one record.
				c.outDropped.Add(1)
				c.log.Error("correlator: a record was refused for good and is dropped; the partition goes on",
					"topic", r.Topic, "key", fmt.Sprintf("%.64q", r.Key), "err", err)
				err = nil
			}
			g.mu.Lock()
			f.left--
			if err != nil && f.err == nil {
				f.err = err
			}
			g.mu.Unlock()
			if err != nil {
				c.log.Error("correlator: writing a verdict failed; the input is not committed and will be read again",
					"topic", r.Topic, "err", err)
			}
			g.drain()
		})
	}
	g.mu.Lock()
	f.sealed = true
	g.mu.Unlock()
	g.drain()
}

// drain releases, in order, the messages at the head whose records are all
// acknowledged. One goroutine drains at a time, so releases keep the
// input order.
func (g *gate) drain() {
	g.mu.Lock()
	if g.draining {
		g.mu.Unlock()
		return
	}
	g.draining = true
	for len(g.q) > 0 && g.q[0].sealed && g.q[0].left == 0 {
		f := g.q[0]
		g.q[0] = nil
		g.q = g.q[1:]
		g.mu.Unlock()
		f.release(f.err)
		g.mu.Lock()
	}
	g.draining = false
	g.mu.Unlock()
}

// acks remembers which verdicts emitted by sweeps were acknowledged, until
// a later sweep confirms them in the trail.
type acks struct {
	mu sync.Mutex
	m  map[ackKey]time.Time
}

type ackKey struct {
	id, topic, group string
	seq              uint64
}

// maxAcks bounds the remembered acknowledgements; older ones are
// forgotten first (a forgotten one only costs a re-emitted verdict).
const maxAcks = 1 << 20

func (a *acks) add(k ackKey) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[ackKey]time.Time{}
	}
	now := time.Now()
	if len(a.m) >= maxAcks {
		for x, at := range a.m {
			if now.Sub(at) > 10*time.Minute || len(a.m) >= maxAcks {
				delete(a.m, x)
			}
			if len(a.m) < maxAcks/2 {
				break
			}
		}
	}
	a.m[k] = now
}

// take reports whether k was acknowledged, forgetting it.
func (a *acks) take(k ackKey) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.m[k]
	delete(a.m, k)
	return ok
}

// produceSwept writes verdicts decided by a sweep; their acknowledgements
// are remembered for the sweep that confirms them.
func (c *Correlator) produceSwept(recs []*kgo.Record, keys []ackKey) {
	for i, r := range recs {
		k := keys[i]
		c.out.Produce(context.Background(), r, func(_ *kgo.Record, err error) {
			switch {
			case permanent(err):
				c.outDropped.Add(1)
				c.log.Error("correlator: a swept verdict was refused for good and is dropped", "topic", r.Topic, "err", err)
			case err != nil:
				c.log.Warn("correlator: writing a swept verdict failed; it is written again at its confirmation", "err", err)
				return
			}
			c.acks.add(k)
		})
	}
}

// permanent reports whether a produce error can never go away by retrying
// the same record: a Kafka error that is not retriable (the record is too
// large, the topic may not be written, ...). Timeouts, unreachable brokers
// and retriable Kafka errors are not: they stop the partition until Kafka
// is back, which loses nothing.
func permanent(err error) bool {
	if err == nil {
		return false
	}
	var ke *kerr.Error
	return errors.As(err, &ke) && !ke.Retriable
}
