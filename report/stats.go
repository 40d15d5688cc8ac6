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
	Messages  uint64
	Delivered uint64
	// Lost counts LOST verdicts but those of cause audit_gap.
	Lost uint64
	// AuditGap counts LOST verdicts of cause audit_gap: the group's
	// clients reported dropping audit events when the consume would have
	// been audited, so whether the message arrived is unknown.
	AuditGap          uint64
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

// Audited is the number of expected messages whose fate the audit saw:
// all but the audit gaps.
func (c Counts) Audited() uint64 {
	e := c.Expected()
	return e - min(c.AuditGap, e)
}

// Completeness is the percentage of the audited expected messages that
// reached the group (all but the lost ones; late, duplicated and corrupted
// messages did arrive), NaN when there is none. Audit gaps are neither
// lost nor arrived: they are left out, so they never lower it.
func (c Counts) Completeness() float64 {
	a := c.Audited()
	if a == 0 {
		return math.NaN()
	}
	return 100 * float64(a-min(c.Lost, a)) / float64(a)
}

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	c.Messages += o.Messages
	c.Delivered += o.Delivered
	c.Lost += o.Lost
	c.AuditGap += o.AuditGap
	c.Late += o.Late
	c.Duplicate += o.Duplicate
	c.ProduceFailed += o.ProduceFailed
	c.UnauditedProducer += o.UnauditedProducer
	c.Corrupted += o.Corrupted
}

// Quantiles are latency quantiles in microseconds, NaN when no latency is
// known. Read from the rollups' histograms, each is within
// store.LatencyRelativeError (0.4 %) of quantileExact over the same
// latencies, and the same on every ClickHouse version.
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

// rollupSums is the SELECT list of the inner query of Overview and
// Series: sums and merged histograms (sumMap). ClickHouse 18.16 cannot
// evaluate an aggregate inside a lambda, so the quantiles are computed from
// the merged histograms by the outer query (rollupColumns), in the order
// scanRollup reads them.
const rollupSums = `sum(messages) AS n_messages, sum(delivered) AS n_delivered, sum(lost) AS n_lost,
	sum(audit_gap) AS n_audit_gap, sum(late) AS n_late, sum(duplicate) AS n_duplicate,
	sum(produce_failed) AS n_produce_failed, sum(unaudited_producer) AS n_unaudited_producer,
	sum(corrupted) AS n_corrupted, sum(ack_known) AS n_ack_known, sum(e2e_known) AS n_e2e_known,
	sumMap(ack_hist_keys, ack_hist_counts) AS ack_hist, sumMap(e2e_hist_keys, e2e_hist_counts) AS e2e_hist`

var rollupColumns = `n_messages, n_delivered, n_lost, n_audit_gap, n_late, n_duplicate,
	n_produce_failed, n_unaudited_producer, n_corrupted, n_ack_known, n_e2e_known,
	` + store.LatencyQuantilesSQL("ack_hist") + `,
	` + store.LatencyQuantilesSQL("e2e_hist")

// rollupWhere filters deliveries_1m by a Filter; its arguments come from
// rollupArgs.
const rollupWhere = `minute >= toDateTime(?) AND minute < toDateTime(?)
	AND (? = '' OR topic = ?) AND (? = '' OR consumer_group = ?)`

var (
	qOverview = store.NewQuery("report.overview", `SELECT topic, consumer_group, `+rollupColumns+`
	FROM (
		SELECT topic, consumer_group, `+rollupSums+`
		FROM {rollup} FINAL
		WHERE `+rollupWhere+`
		GROUP BY topic, consumer_group
	)
	ORDER BY topic, consumer_group`)
	qSeries = store.NewQuery("report.series", `SELECT start, `+rollupColumns+`
	FROM (
		SELECT intDiv(toUInt32(minute), ?) * ? AS start, `+rollupSums+`
		FROM {rollup} FINAL
		WHERE `+rollupWhere+`
		GROUP BY start
	)
	ORDER BY start`)
	qAnomalies = store.NewQuery("report.anomalies", `SELECT correlation_id, topic, consumer_group, status, cause, seq, partition, offset,
		ack_latency_us, e2e_latency_us, consume_count, first_seen, decided_at
	FROM {deliveries} FINAL
	WHERE first_seen >= toDateTime(?) AND first_seen < toDateTime(?)
		AND (? = '' OR topic = ?) AND (? = '' OR consumer_group = ?)
		AND status != ?
	ORDER BY decided_at DESC, first_seen DESC, correlation_id, topic, consumer_group
	LIMIT ?`)
)

func rollupArgs(f Filter) []any {
	from, to := f.bounds()
	return []any{from, to, f.Topic, f.Topic, f.Group, f.Group}
}

// scanRollup scans the columns of rollupColumns after the leading ones.
func scanRollup(rows driver.Rows, lead []any, c *Counts, ack, e2e *Quantiles) error {
	var ackKnown, e2eKnown uint64
	var ackQ, e2eQ []float64
	dest := append(lead, &c.Messages, &c.Delivered, &c.Lost, &c.AuditGap, &c.Late, &c.Duplicate,
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
	return queryAll(ctx, conn, "overview from "+db+"."+store.RollupTable, qOverview.SQL(db), rollupArgs(f),
		func(rows driver.Rows, g *GroupStats) error {
			return scanRollup(rows, []any{&g.Topic, &g.Group}, &g.Counts, &g.Ack, &g.E2E)
		})
}

// Series returns the counts and latencies of f's messages per interval of
// step (whole minutes, at least one; intervals start at multiples of step
// since the Unix epoch), across the topics and groups f selects, in time
// order. Intervals without messages are left out.
func Series(ctx context.Context, conn driver.Conn, db string, f Filter, step time.Duration) ([]Point, error) {
	stepSec := max(int64(step/time.Minute), 1) * 60
	args := append([]any{stepSec, stepSec}, rollupArgs(f)...)
	return queryAll(ctx, conn, "series from "+db+"."+store.RollupTable, qSeries.SQL(db), args, func(rows driver.Rows, p *Point) error {
		var start uint64
		if err := scanRollup(rows, []any{&start}, &p.Counts, &p.Ack, &p.E2E); err != nil {
			return err
		}
		p.Start = time.Unix(int64(start), 0).UTC()
		return nil
	})
}

// Anomalies returns up to limit latest verdicts (deliveries FINAL) of f
// whose status is not DELIVERED, the most recently decided first. Only the
// fields kept in deliveries are set; the whole verdict is in Trail.
func Anomalies(ctx context.Context, conn driver.Conn, db string, f Filter, limit int) ([]codecs.Verdict, error) {
	from, to := store.UnixSeconds(f.Since), int64(math.MaxUint32)
	if !f.Until.IsZero() {
		to = store.UnixSeconds(f.Until)
	}
	args := []any{from, to, f.Topic, f.Topic, f.Group, f.Group, codecs.StatusDelivered.String(), max(limit, 0)}
	return queryAll(ctx, conn, "anomalies from "+db+".deliveries", qAnomalies.SQL(db), args, func(rows driver.Rows, v *codecs.Verdict) error {
		var status string
		var firstSeen, decided time.Time
		if err := rows.Scan(&v.CorrelationID, &v.Topic, &v.Group, &status, &v.Cause, &v.Seq, &v.Partition, &v.Offset,
			&v.AckLatencyUs, &v.E2ELatencyUs, &v.ConsumeCount, &firstSeen, &decided); err != nil {
			return err
		}
		v.Status, _ = codecs.ParseStatus(status)
		v.FirstSeenNs, v.DecidedNs = firstSeen.UnixNano(), decided.UnixNano()
		return nil
	})
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
	fmt.Fprintln(tw, "TOPIC\tGROUP\tEXPECTED\tDELIVERED\tLOST\tAUDIT_GAP\tLATE\tDUPLICATE\tCORRUPTED\tPRODUCE_FAILED\tUNAUDITED\tCOMPLETENESS\tACK p50\tACK p99\tE2E p50\tE2E p99")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", r.Topic, r.Group,
			r.Expected(), r.Delivered, r.Lost, r.AuditGap, r.Late, r.Duplicate, r.Corrupted, r.ProduceFailed, r.UnauditedProducer,
			FormatPercent(r.Completeness()),
			FormatMicros(r.Ack.P50), FormatMicros(r.Ack.P99), FormatMicros(r.E2E.P50), FormatMicros(r.E2E.P99))
	}
	if len(rows) == 0 {
		fmt.Fprintln(tw, "(no deliveries)")
	}
	return tw.Flush()
}
