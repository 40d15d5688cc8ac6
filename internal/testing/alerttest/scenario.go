package alerttest

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/sinks"
	chsink "github.com/kaudit/kaudit/sinks/clickhouse"
	"github.com/kaudit/kaudit/store"
)

// Behaviour says when a consumer group consumes the message sent at
// send: consumed false means never.
type Behaviour func(send time.Time) (consume time.Time, consumed bool)

// Steady consumes every message latency after it was sent.
func Steady(latency time.Duration) Behaviour {
	return func(send time.Time) (time.Time, bool) { return send.Add(latency), true }
}

// Stops is b, except that the messages sent in [from, to) are never
// consumed (the group stops, and resumes from the latest offset).
func Stops(b Behaviour, from, to time.Time) Behaviour {
	return func(send time.Time) (time.Time, bool) {
		if !send.Before(from) && send.Before(to) {
			return time.Time{}, false
		}
		return b(send)
	}
}

// Pauses is b, except that the group does not poll in [from, to): the
// messages sent then are consumed at to + latency.
func Pauses(b Behaviour, from, to time.Time, latency time.Duration) Behaviour {
	return func(send time.Time) (time.Time, bool) {
		if !send.Before(from) && send.Before(to) {
			return to.Add(latency), true
		}
		return b(send)
	}
}

// Slows is b, except that the messages sent in [from, to) are consumed
// latency after they were sent.
func Slows(b Behaviour, from, to time.Time, latency time.Duration) Behaviour {
	return func(send time.Time) (time.Time, bool) {
		if !send.Before(from) && send.Before(to) {
			return send.Add(latency), true
		}
		return b(send)
	}
}

// AckLatency is the acknowledgement latency of every scenario message.
const AckLatency = 5 * time.Millisecond

// Scenario is the verdicts the correlator would give for one message per
// second on one topic, in the groups of Groups, all expected with
// Deadline. A message whose group has not consumed it by its deadline is
// LOST at the first sweep after the deadline (Sweep later), and becomes
// LATE if it is consumed later.
type Scenario struct {
	Topic    string
	Deadline time.Duration
	Sweep    time.Duration
	Groups   map[string]Behaviour
	// Gaps are, per group, time ranges [from, to) in which the group's
	// clients dropped audit events: its messages sent then get LOST with
	// cause audit_gap (their fate is unknown) and no consume.
	Gaps map[string][2]time.Time

	verdicts []codecs.Verdict // in decision order
	next     int              // first not yet written
}

// Generate builds the verdicts of the messages sent every second in
// [from, to).
func (s *Scenario) Generate(from, to time.Time) {
	groups := make([]string, 0, len(s.Groups))
	for g := range s.Groups {
		groups = append(groups, g)
	}
	slices.Sort(groups)
	var out []codecs.Verdict
	i := int64(0)
	for send := from; send.Before(to); send = send.Add(time.Second) {
		i++
		id := fmt.Sprintf("%s-%d", s.Topic, send.Unix())
		ack := send.Add(AckLatency)
		deadline := ack.Add(s.Deadline)
		for _, g := range groups {
			base := codecs.Verdict{
				CorrelationID: id, Topic: s.Topic, Group: g, Partition: 0, Offset: send.Unix(),
				ProducerClient: "shop", SendNs: send.UnixNano(), AckNs: ack.UnixNano(), PayloadSize: 100,
				AckLatencyUs: AckLatency.Microseconds(), E2ELatencyUs: -1, FirstSeenNs: send.UnixNano(),
				Expected: true, DeadlineNs: deadline.UnixNano(),
			}
			lostAt := deadline.Add(s.Sweep)
			if gap, ok := s.Gaps[g]; ok && !send.Before(gap[0]) && send.Before(gap[1]) {
				v := base
				v.Status, v.Cause, v.Seq, v.DecidedNs = codecs.StatusLost, store.CauseAuditGap, 1, lostAt.UnixNano()
				out = append(out, v)
				continue
			}
			consume, ok := s.Groups[g](send)
			if !ok || consume.After(lostAt) {
				v := base
				v.Status, v.Cause, v.Seq, v.DecidedNs = codecs.StatusLost, "not_consumed", 1, lostAt.UnixNano()
				out = append(out, v)
			}
			if !ok {
				continue
			}
			v := base
			v.Status, v.Seq, v.DecidedNs = codecs.StatusDelivered, 2, consume.UnixNano()
			if consume.After(deadline) {
				v.Status, v.Cause = codecs.StatusLate, "after_deadline"
			}
			v.ConsumerClient, v.ConsumeCount = g+"-1", 1
			v.FirstConsumeNs, v.LastConsumeNs = consume.UnixNano(), consume.UnixNano()
			v.E2ELatencyUs = consume.Sub(send).Microseconds()
			out = append(out, v)
		}
	}
	slices.SortStableFunc(out, func(a, b codecs.Verdict) int { return cmp.Compare(a.DecidedNs, b.DecidedNs) })
	s.verdicts = out
	s.next = 0
}

// Until returns the verdicts decided at or before t not returned before.
func (s *Scenario) Until(t time.Time) []codecs.Verdict {
	start := s.next
	for s.next < len(s.verdicts) && s.verdicts[s.next].DecidedNs <= t.UnixNano() {
		s.next++
	}
	return s.verdicts[start:s.next]
}

// WriteUntil writes the verdicts decided at or before t and not written
// yet to ClickHouse through the ClickHouse sink, and returns how many.
func (s *Scenario) WriteUntil(t testing.TB, conn driver.Conn, db string, at time.Time) int {
	t.Helper()
	vs := s.Until(at)
	total := len(vs)
	sink := chsink.New(conn, chsink.Config{Database: db})
	for len(vs) > 0 {
		n := min(len(vs), 50_000)
		if err := sink.WriteBatch(context.Background(), &sinks.Batch{Verdicts: vs[:n]}); err != nil {
			t.Fatalf("alerttest: write verdicts: %v", err)
		}
		vs = vs[n:]
	}
	return total
}

// State returns, per correlation ID, the latest verdict of group g
// decided at or before t.
func (s *Scenario) State(g string, t time.Time) map[string]codecs.Verdict {
	out := map[string]codecs.Verdict{}
	for _, v := range s.verdicts {
		if v.Group == g && v.DecidedNs <= t.UnixNano() {
			out[v.CorrelationID] = v
		}
	}
	return out
}

// Count returns how many messages of group g first seen in [from, to)
// have, at time t, a latest verdict for which bad holds.
func (s *Scenario) Count(g string, t, from, to time.Time, bad func(codecs.Verdict) bool) int {
	n := 0
	for _, v := range s.State(g, t) {
		seen := time.Unix(0, v.FirstSeenNs)
		if !seen.Before(from) && seen.Before(to) && bad(v) {
			n++
		}
	}
	return n
}
