package emitter

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
)

// DefaultMaxDropWindows is the number of distinct (client, topic, group,
// kind, minute) drop counts an Emitter keeps while it cannot report them.
const DefaultMaxDropWindows = 1024

// dropReportEvery is the least time between two rounds of drop reports, so
// that an audit cluster that refuses every write is not asked again in a
// tight loop.
const dropReportEvery = time.Second

// dropKey is what a drop report is per: the dropped events' client, topic,
// group, kind and the minute of their event time. The catch-all of a full
// table has topic and group codecs.AnyTopic, no client and minute 0.
type dropKey struct {
	clientID, topic, group string
	kind                   codecs.Kind
	minute                 int64
}

// dropCount is the count of one key and the span of the dropped events'
// times.
type dropCount struct {
	n            uint64
	start, end   int64
	host, source string
}

// dropTable counts dropped events until they are reported. It is bounded:
// at most max keys, plus one catch-all per kind into which drops of new
// keys are folded once it is full, so counts are never lost, only blurred.
type dropTable struct {
	mu      sync.Mutex
	m       map[dropKey]*dropCount
	max     int
	pending atomic.Uint64 // events counted and not taken; written under mu
}

func newDropTable(max int) *dropTable {
	return &dropTable{m: make(map[dropKey]*dropCount), max: max}
}

// add counts n dropped events described by ev: a produce or consume event
// (n is 1), or a drop report that could not be delivered (its own count,
// kind and window go back in). now is the time of an event without one.
// It reports false, counting nothing, for an event no valid drop report
// could describe (no topic, or a kind that is neither produce nor consume).
func (t *dropTable) add(ev *codecs.Event, n uint64, now int64) bool {
	k := dropKey{clientID: ev.ClientID, topic: ev.Topic, group: ev.Group, kind: ev.Kind}
	start, end := ev.TimeNs(), ev.TimeNs()
	if ev.Kind == codecs.KindDrops {
		k.kind = ev.DroppedKind
		start, end = ev.WindowStartNs, ev.WindowEndNs
	}
	if k.topic == "" || (k.kind != codecs.KindProduce && k.kind != codecs.KindConsume) || n == 0 {
		return false
	}
	if start <= 0 || end <= 0 {
		start, end = now, now
	}
	k.minute = start / int64(time.Minute)
	if k.topic == codecs.AnyTopic {
		k = dropKey{topic: codecs.AnyTopic, group: codecs.AnyTopic, kind: k.kind}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.m[k]
	if c == nil {
		if len(t.m) >= t.max {
			k = dropKey{topic: codecs.AnyTopic, group: codecs.AnyTopic, kind: k.kind}
			c = t.m[k]
		}
		if c == nil {
			c = &dropCount{start: start, end: end, host: ev.Host, source: ev.Source}
			t.m[k] = c
		}
	}
	c.n += n
	c.start, c.end = min(c.start, start), max(c.end, end)
	t.pending.Add(n)
	return true
}

// count is the number of dropped events counted and not yet taken.
func (t *dropTable) count() uint64 { return t.pending.Load() }

// take empties the table and returns its counts as drop reports, each with
// a fresh correlation ID; counts above math.MaxUint32 are split.
func (t *dropTable) take() []*codecs.Event {
	t.mu.Lock()
	m := t.m
	if len(m) == 0 {
		t.mu.Unlock()
		return nil
	}
	t.m = make(map[dropKey]*dropCount, len(m))
	t.pending.Store(0)
	t.mu.Unlock()

	out := make([]*codecs.Event, 0, len(m))
	for k, c := range m {
		for n := c.n; n > 0; {
			part := min(n, math.MaxUint32)
			n -= part
			out = append(out, &codecs.Event{
				Version:       codecs.SchemaVersion,
				Kind:          codecs.KindDrops,
				CorrelationID: audit.NewCorrelationID(),
				Topic:         k.topic,
				Group:         k.group,
				ClientID:      k.clientID,
				Host:          c.host,
				Source:        c.source,
				Dropped:       uint32(part),
				WindowStartNs: c.start,
				WindowEndNs:   c.end,
				DroppedKind:   k.kind,
			})
		}
	}
	return out
}
