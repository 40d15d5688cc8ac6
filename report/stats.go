package report

import (
	"context"
	"fmt"
	"io"
	"math"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/store"
)

// Filter selects the messages to report on: first seen in [Since, Until)
// (whole minutes for the rollup reads: Since is rounded down to its minute,
// Until up; the zero Since means from the start, the zero Until means
// open-ended), of Topic and Group when they are not empty.
type Filter struct {
	Since, Until time.Time
	Topic, Group string
}

// bounds returns the filter's range as Unix seconds on minute boundaries.
func (f Filter) bounds() (from, to int64) {
	from = store.UnixSeconds(f.Since) / 60 * 60
	to = math.MaxUint32
	if !f.Until.IsZero() {
		to = min((store.UnixSeconds(f.Until)+59)/60*60, math.MaxUint32)
	}
	return from, to
}

// Counts are numbers of messages by latest verdict status.
type Counts struct {
	// Messages counts every verdict, whatever its status.
	Messages          uint64
	Delivered         uint64
	Lost              uint64
	Late              uint64
	Duplicate         uint64
	ProduceFailed     uint64
	UnauditedProducer uint64
	Corrupted         uint64
}

// Expected is the number of messages the group should have received: all
// but those whose produce failed (they never reached the topic).
func (c Counts) Expected() uint64 {
	if c.ProduceFailed > c.Messages {
		return 0
	}
	return c.Messages - c.ProduceFailed
}

// Completeness is the percentage of expected messages that reached the
// group (all but the lost ones; late, duplicated and corrupted messages
// did arrive), NaN when none was expected.
func (c Counts) Completeness() float64 {
	e := c.Expected()
	if e == 0 {
		return math.NaN()
	}
	return 100 * float64(e-min(c.Lost, e)) / float64(e)
}

// Quantiles are latency quantiles in microseconds, NaN when no latency is
// known.
type Quantiles struct {
	P50, P90, P99, P999 float64
}

func quantilesOf(q []float64, known uint64) Quantiles {
	out := Quantiles{math.NaN(), math.NaN(), math.NaN(), math.NaN()}
	if known == 0 {
		return out
	}
	for i, p := range []*float64{&out.P50, &out.P90, &out.P99, &out.P999} {
		if i < len(q) {
			*p = q[i]
		}
	}
	return out
}

// GroupStats are the counts and latencies of one topic and consumer group.
// Latencies are over the messages whose latency is known, whatever their
// status (a late message's end-to-end latency counts).
type GroupStats struct {
	Topic, Group string
	Counts
	Ack, E2E Quantiles
}

// Point is the counts and latencies of one interval of a Series, the
// minutes of first_seen in [Start, Start+step).
type Point struct {
	Start time.Time
	Counts
	Ack, E2E Quantiles
}

// rollupAggregates is the SELECT list shared by Overview and Series, in
// the order scanRollup reads it.
const rollupAggregates = `sum(messages), sum(delivered), sum(lost), sum(late), sum(duplicate),
	sum(produce_failed), sum(unaudited_producer), sum(corrupted), sum(ack_known), sum(e2e_known),
	quantilesMerge(0.5, 0.9, 0.99, 0.999)(ack_latency_us), quantilesMerge(0.5, 0.9, 0.99, 0.999)(e2e_latency_us)`

// rollupWhere filters deliveries_1m by a Filter; its arguments come from
// rollupArgs.
const rollupWhere = `minute >= toDateTime(?) AND minute < toDateTime(?)
	AND (? = '' OR topic = ?) AND (? = '' OR consumer_group = ?)`

func rollupArgs(f Filter) []any {
	from, to := f.bounds()
	return []any{from, to, f.Topic, f.Topic, f.Group, f.Group}
}

// scanRollup scans the columns of rollupAggregates after the leading ones.
func scanRollup(rows driver.Rows, lead []any, c *Counts, ack, e2e *Quantiles) error {
	var ackKnown, e2eKnown uint64
	var ackQ, e2eQ []float64
	dest := append(lead, &c.Messages, &c.Delivered, &c.Lost, &c.Late, &c.Duplicate,
		&c.ProduceFailed, &c.UnauditedProducer, &c.Corrupted, &ackKnown, &e2eKnown, &ackQ, &e2eQ)
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	*ack, *e2e = quantilesOf(ackQ, ackKnown), quantilesOf(e2eQ, e2eKnown)
	return nil
}

// Overview returns one row per topic and consumer group, ordered, from the
// per-minute rollups (deliveries_1m FINAL). Refresh the rollups first (see
// Refresher) to include the latest verdicts.
func Overview(ctx context.Context, conn driver.Conn, db string, f Filter) ([]GroupStats, error) {
	q := `SELECT topic, consumer_group, ` + rollupAggregates + `
	FROM ` + store.Table(db, store.RollupTable) + ` FINAL
	WHERE ` + rollupWhere + `
	GROUP BY topic, consumer_group
	ORDER BY topic, consumer_group`
	rows, err := conn.Query(ctx, q, rollupArgs(f)...)
	if err != nil {
		return nil, fmt.Errorf("report: overview from %s.%s: %w", db, store.RollupTable, err)
	}
	defer rows.Close()
	var out []GroupStats
	for rows.Next() {
		var g GroupStats
		if err := scanRollup(rows, []any{&g.Topic, &g.Group}, &g.Counts, &g.Ack, &g.E2E); err != nil {
			return nil, fmt.Errorf("report: overview from %s.%s: %w", db, store.RollupTable, err)
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("report: overview from %s.%s: %w", db, store.RollupTable, err)
	}
	return out, nil
}

// Series returns the counts and latencies of f's messages per interval of
// step (whole minutes, at least one; intervals start at multiples of step
// since the Unix epoch), across the topics and groups f selects, in time
// order. Intervals without messages are left out.
func Series(ctx context.Context, conn driver.Conn, db string, f Filter, step time.Duration) ([]Point, error) {
	stepSec := max(int64(step/time.Minute), 1) * 60
	q := `SELECT intDiv(toUInt32(minute), ?) * ? AS start, ` + rollupAggregates + `
	FROM ` + store.Table(db, store.RollupTable) + ` FINAL
	WHERE ` + rollupWhere + `
	GROUP BY start
	ORDER BY start`
	rows, err := conn.Query(ctx, q, append([]any{stepSec, stepSec}, rollupArgs(f)...)...)
	if err != nil {
		return nil, fmt.Errorf("report: series from %s.%s: %w", db, store.RollupTable, err)
	}
	defer rows.Close()
	var out []Point
	for rows.Next() {
		var p Point
		var start uint64
		if err := scanRollup(rows, []any{&start}, &p.Counts, &p.Ack, &p.E2E); err != nil {
			return nil, fmt.Errorf("report: series from %s.%s: %w", db, store.RollupTable, err)
		}
		p.Start = time.Unix(int64(start), 0).UTC()
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("report: series from %s.%s: %w", db, store.RollupTable, err)
	}
	return out, nil
}

// Anomalies returns up to limit latest verdicts (deliveries FINAL) of f
// whose status is not DELIVERED, the most recently decided first. Only the
// fields kept in deliveries are set; the whole verdict is in Trail.
func Anomalies(ctx context.Context, conn driver.Conn, db string, f Filter, limit int) ([]codecs.Verdict, error) {
	from, to := store.UnixSeconds(f.Since), int64(math.MaxUint32)
	if !f.Until.IsZero() {
		to = store.UnixSeconds(f.Until)
	}
	q := `SELECT correlation_id, topic, consumer_group, status, cause, seq, partition, offset,
		ack_latency_us, e2e_latency_us, consume_count, first_seen, decided_at
	FROM ` + store.Table(db, store.DeliveriesTable) + ` FINAL
	WHERE first_seen >= toDateTime(?) AND first_seen < toDateTime(?)
		AND (? = '' OR topic = ?) AND (? = '' OR consumer_group = ?)
		AND status != ?
	ORDER BY decided_at DESC, first_seen DESC, correlation_id
	LIMIT ?`
	rows, err := conn.Query(ctx, q, from, to, f.Topic, f.Topic, f.Group, f.Group,
		codecs.StatusDelivered.String(), max(limit, 0))
	if err != nil {
		return nil, fmt.Errorf("report: anomalies from %s.deliveries: %w", db, err)
	}
	defer rows.Close()
	var out []codecs.Verdict
	for rows.Next() {
		var v codecs.Verdict
		var status string
		var firstSeen, decided time.Time
		if err := rows.Scan(&v.CorrelationID, &v.Topic, &v.Group, &status, &v.Cause, &v.Seq, &v.Partition, &v.Offset,
			&v.AckLatencyUs, &v.E2ELatencyUs, &v.ConsumeCount, &firstSeen, &decided); err != nil {
			return nil, fmt.Errorf("report: anomalies from %s.deliveries: %w", db, err)
		}
		v.Status, _ = codecs.ParseStatus(status)
		v.FirstSeenNs, v.DecidedNs = firstSeen.UnixNano(), decided.UnixNano()
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("report: anomalies from %s.deliveries: %w", db, err)
	}
	return out, nil
}

// FormatPercent renders a percentage with two decimals, "-" for NaN.
func FormatPercent(p float64) string {
	if math.IsNaN(p) {
		return "-"
	}
	return fmt.Sprintf("%.2f%%", p)
}

// FormatOverview writes rows as an aligned text table: per topic and group
// the expected messages, the counts by status, completeness and the p50
// and p99 of ack and end-to-end latency.
func FormatOverview(w io.Writer, rows []GroupStats) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tGROUP\tEXPECTED\tDELIVERED\tLOST\tLATE\tDUPLICATE\tCORRUPTED\tPRODUCE_FAILED\tUNAUDITED\tCOMPLETENESS\tACK p50\tACK p99\tE2E p50\tE2E p99")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", r.Topic, r.Group,
			r.Expected(), r.Delivered, r.Lost, r.Late, r.Duplicate, r.Corrupted, r.ProduceFailed, r.UnauditedProducer,
			FormatPercent(r.Completeness()),
			FormatMicros(r.Ack.P50), FormatMicros(r.Ack.P99), FormatMicros(r.E2E.P50), FormatMicros(r.E2E.P99))
	}
	if len(rows) == 0 {
		fmt.Fprintln(tw, "(no deliveries)")
	}
	return tw.Flush()
}
