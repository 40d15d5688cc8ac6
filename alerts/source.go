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

// CauseAuditGap is the cause of a LOST verdict that an audit gap (audit
// events the interceptors dropped) can explain: not a loss.
const CauseAuditGap = "audit_gap"

// source reads what the evaluator judges from ClickHouse: per-minute
// counts of an SLO (completeness from the rollups through report.Series;
// latency from deliveries FINAL, cached once a minute is older than
// stableAfter), sample messages and measured values.
type source struct {
	conn        driver.Conn
	db          string
	stableAfter time.Duration

	// latency caches, per latency SLO, the counts of the minutes before
	// its stable mark.
	latency map[string]*latencyCache
	// overviews holds, per [from, to) in Unix seconds, the rollup stats
	// of every topic and group, for one evaluation.
	overviews map[[2]int64]map[[2]string]report.GroupStats
}

type latencyCache struct {
	stable  time.Time // minutes before it are cached
	minutes map[int64]Minute
}

func newSource(conn driver.Conn, db string, stableAfter time.Duration) *source {
	return &source{conn: conn, db: db, stableAfter: stableAfter, latency: map[string]*latencyCache{},
		overviews: map[[2]int64]map[[2]string]report.GroupStats{}}
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
		// Lost counts real losses: LOST with cause audit_gap is counted
		// apart by the rollups (the audit-drops contract).
		bad := p.Lost + p.Late
		out = append(out, Minute{Start: p.Start, Total: p.Expected(), Bad: bad, Lost: p.Lost, Late: p.Late})
	}
	return out, nil
}

func (src *source) latencyMinutes(ctx context.Context, s SLO, from, to time.Time) ([]Minute, error) {
	key := s.key() + "\x00" + s.Target.String()
	c := src.latency[key]
	if c == nil {
		c = &latencyCache{minutes: map[int64]Minute{}}
		src.latency[key] = c
	}
	qfrom := from
	if c.stable.After(qfrom) {
		qfrom = c.stable
	}
	stable := to.Add(-src.stableAfter).Truncate(time.Minute)
	fresh := map[int64]Minute{}
	if qfrom.Before(to) {
		table := store.Table(src.db, store.DeliveriesTable)
		rows, err := src.conn.Query(ctx, fmt.Sprintf(latencyMinutesSQL, table),
			s.Target.Microseconds(), s.Topic, s.Group, store.UnixSeconds(qfrom), store.UnixSeconds(to))
		if err != nil {
			return nil, fmt.Errorf("alerts: latency of %s/%s from %s: %w", s.Topic, s.Group, table, err)
		}
		for rows.Next() {
			var m uint32
			var known, slow uint64
			if err := rows.Scan(&m, &known, &slow); err != nil {
				rows.Close()
				return nil, fmt.Errorf("alerts: latency of %s/%s from %s: %w", s.Topic, s.Group, table, err)
			}
			fresh[int64(m)] = Minute{Start: time.Unix(int64(m), 0).UTC(), Total: known, Bad: slow, Slow: slow}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("alerts: latency of %s/%s from %s: %w", s.Topic, s.Group, table, err)
		}
	}
	// Keep the minutes that became stable; forget those before from.
	for m, v := range fresh {
		if time.Unix(m, 0).Before(stable) {
			c.minutes[m] = v
		}
	}
	for m := range c.minutes {
		if time.Unix(m, 0).Before(from) {
			delete(c.minutes, m)
		}
	}
	if stable.After(c.stable) {
		c.stable = stable
	}
	out := make([]Minute, 0, len(c.minutes)+len(fresh))
	for m, v := range c.minutes {
		if _, ok := fresh[m]; !ok {
			out = append(out, v)
		}
	}
	for _, v := range fresh {
		out = append(out, v)
	}
	sortMinutes(out)
	return out, nil
}

// samples returns up to n messages of s first seen in [from, to) that
// broke it, latest first.
func (src *source) samples(ctx context.Context, s SLO, from, to time.Time, n int) ([]Sample, error) {
	if n <= 0 {
		return nil, nil
	}
	table := store.Table(src.db, store.DeliveriesTable)
	var q string
	var args []any
	if s.Kind == Latency {
		q = fmt.Sprintf(slowSamplesSQL, table)
		args = []any{s.Topic, s.Group, store.UnixSeconds(from), store.UnixSeconds(to), s.Target.Microseconds(), n}
	} else {
		q = fmt.Sprintf(lostLateSamplesSQL, table)
		args = []any{s.Topic, s.Group, store.UnixSeconds(from), store.UnixSeconds(to),
			codecs.StatusLost.String(), codecs.StatusLate.String(), CauseAuditGap, n}
	}
	rows, err := src.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("alerts: samples of %s/%s from %s: %w", s.Topic, s.Group, table, err)
	}
	defer rows.Close()
	var out []Sample
	for rows.Next() {
		var sm Sample
		if err := rows.Scan(&sm.CorrelationID, &sm.Status, &sm.E2ELatencyUs); err != nil {
			return nil, fmt.Errorf("alerts: samples of %s/%s from %s: %w", s.Topic, s.Group, table, err)
		}
		out = append(out, sm)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("alerts: samples of %s/%s from %s: %w", s.Topic, s.Group, table, err)
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
// in percent, or the p99 latency in seconds (NaN when unknown).
func measured(s SLO, g report.GroupStats, ok bool) float64 {
	if !ok {
		return math.NaN()
	}
	if s.Kind == Latency {
		return g.E2E.P99 / 1e6
	}
	e := g.Expected()
	if e == 0 {
		return math.NaN()
	}
	bad := min(g.Lost+g.Late, e)
	return 100 * float64(e-bad) / float64(e)
}
