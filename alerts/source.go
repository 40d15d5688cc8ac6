package alerts

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/report"
	"github.com/kaudit/kaudit/store"
)

// source reads what the evaluator judges from ClickHouse: per-minute
// counts of an SLO from the rollups (completeness through report.Series,
// latency from their histograms), sample messages from deliveries FINAL,
// and measured values through report.Overview.
type source struct {
	conn driver.Conn
	db   string
	// overviews holds, per [from, to) in Unix seconds, the rollup stats
	// of every topic and group, for one evaluation.
	overviews map[[2]int64]map[[2]string]report.GroupStats
}

func newSource(conn driver.Conn, db string) *source {
	return &source{conn: conn, db: db, overviews: map[[2]int64]map[[2]string]report.GroupStats{}}
}

// minutes returns the per-minute counts of s for the minutes starting in
// [from, to) (whole minutes), in time order.
func (src *source) minutes(ctx context.Context, s SLO, from, to time.Time) ([]Minute, error) {
	if s.Kind == Latency {
		return src.latencyMinutes(ctx, s, from, to)
	}
	points, err := report.Series(ctx, src.conn, src.db, report.Filter{Since: from, Until: to, Topic: s.Topic, Group: s.Group}, time.Minute)
	if err != nil {
		return nil, err
	}
	out := make([]Minute, 0, len(points))
	for _, p := range points {
		// The audited messages (audit gaps are neither lost nor
		// delivered: the rollups count them apart from Lost).
		out = append(out, Minute{Start: p.Start, Total: p.Audited(), Bad: p.Lost + p.Late, Lost: p.Lost, Late: p.Late})
	}
	return out, nil
}

// latencyMinutes counts the messages slower than the target from the
// rollups' histograms: a message is slow if its bucket lies above the
// target's, so one at most store.LatencyRelativeError (0.4%) over the
// target may count as within it.
func (src *source) latencyMinutes(ctx context.Context, s SLO, from, to time.Time) ([]Minute, error) {
	rows, err := src.conn.Query(ctx, qLatencyMinutes.SQL(src.db), store.LatencyBucket(s.Target.Microseconds()),
		s.Topic, s.Group, store.UnixSeconds(from), store.UnixSeconds(to))
	if err != nil {
		return nil, fmt.Errorf("alerts: latency of %s/%s: %w", s.Topic, s.Group, err)
	}
	defer rows.Close()
	var out []Minute
	for rows.Next() {
		var m uint32
		var known, slow uint64
		if err := rows.Scan(&m, &known, &slow); err != nil {
			return nil, fmt.Errorf("alerts: latency of %s/%s: %w", s.Topic, s.Group, err)
		}
		out = append(out, Minute{Start: time.Unix(int64(m), 0).UTC(), Total: known, Bad: slow, Slow: slow})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("alerts: latency of %s/%s: %w", s.Topic, s.Group, err)
	}
	return out, nil
}

// samples returns up to n messages of s first seen in [from, to) that
// broke it, latest first.
func (src *source) samples(ctx context.Context, s SLO, from, to time.Time, n int) ([]Sample, error) {
	if n <= 0 {
		return nil, nil
	}
	var q string
	var args []any
	if s.Kind == Latency {
		q = qSlowSamples.SQL(src.db)
		args = []any{s.Topic, s.Group, store.UnixSeconds(from), store.UnixSeconds(to), s.Target.Microseconds(), n}
	} else {
		q = qLostLateSamples.SQL(src.db)
		args = []any{s.Topic, s.Group, store.UnixSeconds(from), store.UnixSeconds(to),
			codecs.StatusLost.String(), codecs.StatusLate.String(), store.CauseAuditGap, n}
	}
	rows, err := src.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("alerts: samples of %s/%s: %w", s.Topic, s.Group, err)
	}
	defer rows.Close()
	var out []Sample
	for rows.Next() {
		var sm Sample
		if err := rows.Scan(&sm.CorrelationID, &sm.Status, &sm.E2ELatencyUs); err != nil {
			return nil, fmt.Errorf("alerts: samples of %s/%s: %w", s.Topic, s.Group, err)
		}
		out = append(out, sm)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("alerts: samples of %s/%s: %w", s.Topic, s.Group, err)
	}
	return out, nil
}

// overview returns the rollup counts and latency quantiles of s's topic
// and group for the minutes in [from, to); ok is false without messages.
// The rollups of all topics and groups are read in one query, kept until
// newCycle.
func (src *source) overview(ctx context.Context, s SLO, from, to time.Time) (report.GroupStats, bool, error) {
	key := [2]int64{from.Unix(), to.Unix()}
	all, ok := src.overviews[key]
	if !ok {
		rows, err := report.Overview(ctx, src.conn, src.db, report.Filter{Since: from, Until: to})
		if err != nil {
			return report.GroupStats{}, false, err
		}
		all = map[[2]string]report.GroupStats{}
		for _, r := range rows {
			all[[2]string{r.Topic, r.Group}] = r
		}
		src.overviews[key] = all
	}
	g, ok := all[[2]string{s.Topic, s.Group}]
	return g, ok, nil
}

// newCycle forgets the overviews of the previous evaluation.
func (src *source) newCycle() { clear(src.overviews) }

// measured is the value of s over a window's stats: completeness on time
// of the audited messages in percent, or the p99 latency in seconds (NaN
// when unknown).
func measured(s SLO, g report.GroupStats, ok bool) float64 {
	if !ok {
		return math.NaN()
	}
	if s.Kind == Latency {
		return g.E2E.P99 / 1e6
	}
	a := g.Audited()
	if a == 0 {
		return math.NaN()
	}
	bad := min(g.Lost+g.Late, a)
	return 100 * float64(a-bad) / float64(a)
}
