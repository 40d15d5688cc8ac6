package conformance_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/proxy/traffic"
	"github.com/kaudit/kaudit/report"
	"github.com/kaudit/kaudit/sinks"
	"github.com/kaudit/kaudit/store"
)

// groupKey is a topic and consumer group.
type groupKey struct{ topic, group string }

// fixture is what the tests write and the ground truth they derive from it.
type fixture struct {
	now time.Time
	// batches are written in order through the sink: the first verdicts
	// and events; then corrections (LOST -> LATE), a re-sent part of the
	// first batch and stale copies of corrected verdicts.
	batches []*sinks.Batch
	// latest is each (message, group)'s latest verdict.
	latest []codecs.Verdict
	// trailIDs are messages with events.
	trailIDs []string
	// oldDays are the days (UTC) before the retention cutoff that hold rows.
	oldDays []time.Time
	// traffic and admin are kaudit-proxy's records (proxyfixture_test.go),
	// each distinct.
	traffic []traffic.Record
	admin   []sinks.AdminRow
	// lag holds the correlators' lag reports (lagfixture_test.go), each
	// distinct.
	lag []audit.LagReport
}

// groups of the fixture; ledger is slow.
var groups = []groupKey{{"orders", "billing"}, {"orders", "search"}, {"orders", "ledger"}, {"payments", "billing"}}

// newFixture makes 1,500 messages per topic over the last 40 minutes
// before now, judged for every group of their topic, with skewed latencies:
// log-normal ack (median 800 µs) and end-to-end latencies (median 5 ms,
// ledger's 100 ms, a wide spread), 1 % of end-to-end latencies in a tail
// of 1 to 60 s; every status and cause; and a few messages 31 and 40 days
// old, for retention.
func newFixture(now time.Time) *fixture {
	r := rand.New(rand.NewPCG(15, 26))
	f := &fixture{now: now}
	var first, stale, corrections []codecs.Verdict
	var events []sinks.EventRecord
	auditOffset := int64(0)
	message := func(topic, id string, seen time.Time, withEvents bool) {
		send := seen.UnixNano()
		ack := int64(math.Exp(r.NormFloat64()*0.8 + math.Log(800)))
		produceFailed := r.IntN(100) == 0
		if withEvents {
			f.trailIDs = append(f.trailIDs, id)
			auditOffset++
			events = append(events, sinks.EventRecord{Event: codecs.Event{Kind: codecs.KindProduce, CorrelationID: id,
				Topic: topic, Partition: 1, Offset: auditOffset, ClientID: "shop", Host: "h0", Source: "franz-go",
				SendNs: send, AckNs: send + ack*1000, RecordTsNs: send, PayloadSize: 64, Digest: 0xabc},
				From: sinks.Position{Topic: "kaudit.events", Partition: 0, Offset: auditOffset}})
		}
		if produceFailed {
			v := codecs.Verdict{CorrelationID: id, Topic: topic, Status: codecs.StatusProduceFailed,
				Cause: "produce_error", ProduceError: "NOT_LEADER", Seq: 1, SendNs: send, AckLatencyUs: ack, E2ELatencyUs: -1,
				FirstSeenNs: send, DecidedNs: send + int64(time.Second)}
			first = append(first, v)
			f.latest = append(f.latest, v)
			return
		}
		for _, g := range groups {
			if g.topic != topic {
				continue
			}
			median := 5000.0
			if g.group == "ledger" {
				median = 100_000
			}
			e2e := int64(math.Exp(r.NormFloat64()*1.5 + math.Log(median)))
			if r.IntN(100) == 0 {
				e2e = 1_000_000 + r.Int64N(59_000_000)
			}
			v := codecs.Verdict{CorrelationID: id, Topic: topic, Group: g.group, Status: codecs.StatusDelivered, Seq: 1,
				Partition: 1, Offset: int64(len(first)), ProducerClient: "shop", SendNs: send, AckNs: send + ack*1000,
				AckLatencyUs: ack, E2ELatencyUs: e2e, ConsumeCount: 1, FirstSeenNs: send, DecidedNs: send + e2e*1000,
				Expected: true, DeadlineNs: send + int64(30*time.Second)}
			switch p := r.IntN(100); {
			case p < 3:
				v.Status, v.Cause, v.E2ELatencyUs, v.ConsumeCount = codecs.StatusLost, "not_consumed", -1, 0
			case p < 6:
				v.Status, v.Cause, v.E2ELatencyUs, v.ConsumeCount = codecs.StatusLost, store.CauseAuditGap, -1, 0
			case p < 8: // LOST, later LATE
				lost := v
				lost.Status, lost.Cause, lost.E2ELatencyUs, lost.ConsumeCount = codecs.StatusLost, "not_consumed", -1, 0
				lost.DecidedNs = send + int64(30*time.Second)
				first = append(first, lost)
				stale = append(stale, lost)
				v.Status, v.Cause, v.Seq = codecs.StatusLate, "after_deadline", 2
				v.E2ELatencyUs = 30_000_000 + r.Int64N(60_000_000)
				v.DecidedNs = send + v.E2ELatencyUs*1000
				corrections = append(corrections, v)
				f.latest = append(f.latest, v)
				continue
			case p < 11:
				v.Status, v.Cause, v.ConsumeCount = codecs.StatusDuplicate, "redelivery", 2
			case p < 12:
				v.Status, v.Cause = codecs.StatusCorrupted, "digest_mismatch"
			case p < 14:
				v.Status, v.Cause, v.AckLatencyUs = codecs.StatusUnauditedProducer, "no_produce_event", -1
			}
			first = append(first, v)
			f.latest = append(f.latest, v)
			if withEvents && v.E2ELatencyUs >= 0 {
				auditOffset++
				events = append(events, sinks.EventRecord{Event: codecs.Event{Kind: codecs.KindConsume, CorrelationID: id,
					Topic: topic, Partition: 1, Offset: auditOffset, ClientID: g.group + "-1", Group: g.group, Host: "h1",
					Source: "sarama", ConsumeNs: send + v.E2ELatencyUs*1000, RecordTsNs: send, PayloadSize: 64},
					From: sinks.Position{Topic: "kaudit.events", Partition: 0, Offset: auditOffset}})
			}
		}
	}
	for _, topic := range []string{"orders", "payments"} {
		for i := range 1500 {
			seen := now.Add(-40 * time.Minute).Add(time.Duration(r.Int64N(int64(40 * time.Minute))))
			message(topic, fmt.Sprintf("%c-%05d", topic[0], i), seen, i < 8)
		}
	}
	for _, daysAgo := range []int{40, 31} {
		day := now.AddDate(0, 0, -daysAgo).Truncate(24 * time.Hour)
		f.oldDays = append(f.oldDays, day)
		for i := range 10 {
			message("orders", fmt.Sprintf("old%d-%02d", daysAgo, i), day.Add(time.Duration(i)*time.Hour+time.Minute), i < 2)
		}
	}
	f.addProxy(rand.New(rand.NewPCG(10, 20)))
	f.addLag(rand.New(rand.NewPCG(30, 40)))
	f.batches = []*sinks.Batch{
		{Events: events, Verdicts: first, Admin: f.admin, Traffic: f.traffic, Lag: f.lag},
		{Verdicts: corrections},
		{Events: events[:len(events)/2], Verdicts: first[:len(first)/3], // a retried batch
			Admin: f.admin[:len(f.admin)/2], Traffic: f.traffic[:len(f.traffic)/3], Lag: f.lag[:len(f.lag)/2]},
		{Verdicts: stale},
	}
	return f
}

// counts are the latest verdicts' counts per topic and group, within
// [since, until) by first_seen minute (zero: unbounded), as report.Counts.
func (f *fixture) counts(since, until time.Time) map[groupKey]report.Counts {
	out := map[groupKey]report.Counts{}
	for _, v := range f.latest {
		m := time.Unix(0, v.FirstSeenNs).Truncate(time.Minute)
		if m.Before(since.Truncate(time.Minute)) || (!until.IsZero() && !m.Before(until)) {
			continue
		}
		k := groupKey{v.Topic, v.Group}
		c := out[k]
		c.Messages++
		switch {
		case v.Status == codecs.StatusDelivered:
			c.Delivered++
		case v.Status == codecs.StatusLost && v.Cause == store.CauseAuditGap:
			c.AuditGap++
		case v.Status == codecs.StatusLost:
			c.Lost++
		case v.Status == codecs.StatusLate:
			c.Late++
		case v.Status == codecs.StatusDuplicate:
			c.Duplicate++
		case v.Status == codecs.StatusProduceFailed:
			c.ProduceFailed++
		case v.Status == codecs.StatusUnauditedProducer:
			c.UnauditedProducer++
		case v.Status == codecs.StatusCorrupted:
			c.Corrupted++
		}
		out[k] = c
	}
	return out
}

// latencies are the known ack and end-to-end latencies of the latest
// verdicts of a topic and group, sorted.
func (f *fixture) latencies(k groupKey) (ack, e2e []int64) {
	for _, v := range f.latest {
		if v.Topic != k.topic || v.Group != k.group {
			continue
		}
		if v.AckLatencyUs >= 0 {
			ack = append(ack, v.AckLatencyUs)
		}
		if v.E2ELatencyUs >= 0 {
			e2e = append(e2e, v.E2ELatencyUs)
		}
	}
	slices.Sort(ack)
	slices.Sort(e2e)
	return ack, e2e
}

// exact is quantileExact of sorted xs at level: the element at 0-based
// rank floor(level*n).
func exact(xs []int64, level float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	return float64(xs[min(int(level*float64(len(xs))), len(xs)-1)])
}
