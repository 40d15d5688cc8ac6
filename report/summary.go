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
	"github.com/kaudit/kaudit/internal/chclient"
)

// SummaryRow sums up the deliveries of one topic to one consumer group.
// Latency quantiles are over delivered messages whose latency is known;
// they are NaN when there is none.
type SummaryRow struct {
	Topic     string
	Group     string
	Delivered uint64
	Total     uint64
	AckP50Us  float64
	AckP99Us  float64
	E2EP50Us  float64
	E2EP99Us  float64
}

// Summary returns one row per topic and consumer group for the messages
// first seen at or after since (the zero time means all), ordered by topic
// and group. Quantiles are ClickHouse's quantiles() (exact up to 8192
// values per group, sampled beyond).
func Summary(ctx context.Context, conn driver.Conn, db string, since time.Time) ([]SummaryRow, error) {
	query := `SELECT topic, consumer_group,
		countIf(status = ?) AS delivered,
		count() AS total,
		quantilesIf(0.5, 0.99)(ack_latency_us, status = ? AND ack_latency_us >= 0) AS ack,
		quantilesIf(0.5, 0.99)(e2e_latency_us, status = ? AND e2e_latency_us >= 0) AS e2e
	FROM ` + chclient.Table(db, "deliveries") + ` FINAL
	WHERE first_seen >= toDateTime(?)
	GROUP BY topic, consumer_group
	ORDER BY topic, consumer_group`
	delivered := codecs.StatusDelivered.String()
	rows, err := conn.Query(ctx, query, delivered, delivered, delivered, unixSeconds(since))
	if err != nil {
		return nil, fmt.Errorf("report: summary of %s.deliveries: %w", db, err)
	}
	defer rows.Close()
	var out []SummaryRow
	for rows.Next() {
		var r SummaryRow
		var ack, e2e []float64
		if err := rows.Scan(&r.Topic, &r.Group, &r.Delivered, &r.Total, &ack, &e2e); err != nil {
			return nil, fmt.Errorf("report: summary of %s.deliveries: %w", db, err)
		}
		r.AckP50Us, r.AckP99Us = pair(ack)
		r.E2EP50Us, r.E2EP99Us = pair(e2e)
		if r.Delivered == 0 {
			r.AckP50Us, r.AckP99Us, r.E2EP50Us, r.E2EP99Us = math.NaN(), math.NaN(), math.NaN(), math.NaN()
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("report: summary of %s.deliveries: %w", db, err)
	}
	return out, nil
}

// pair returns the two quantiles of q, NaN for missing ones.
func pair(q []float64) (float64, float64) {
	a, b := math.NaN(), math.NaN()
	if len(q) > 0 {
		a = q[0]
	}
	if len(q) > 1 {
		b = q[1]
	}
	return a, b
}

// unixSeconds is t as DateTime seconds (0 for the zero time and earlier).
func unixSeconds(t time.Time) int64 {
	if t.IsZero() || t.Unix() < 0 {
		return 0
	}
	return min(t.Unix(), math.MaxUint32)
}

// FormatSummary writes rows as an aligned text table.
func FormatSummary(w io.Writer, rows []SummaryRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tGROUP\tDELIVERED\tTOTAL\tACK p50\tACK p99\tE2E p50\tE2E p99")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", r.Topic, r.Group, r.Delivered, r.Total,
			FormatMicros(r.AckP50Us), FormatMicros(r.AckP99Us), FormatMicros(r.E2EP50Us), FormatMicros(r.E2EP99Us))
	}
	if len(rows) == 0 {
		fmt.Fprintln(tw, "(no deliveries)")
	}
	return tw.Flush()
}

// FormatMicros renders a latency in microseconds: "850 µs" below a
// millisecond, "12.34 ms" from there, "-" when unknown (NaN or negative).
func FormatMicros(us float64) string {
	switch {
	case math.IsNaN(us) || us < 0:
		return "-"
	case us < 1000:
		return fmt.Sprintf("%.0f µs", us)
	default:
		return fmt.Sprintf("%.2f ms", us/1000)
	}
}

// CountByStatus returns the number of messages per verdict status (latest
// verdict per message and group), keyed by the status name.
func CountByStatus(ctx context.Context, conn driver.Conn, db string) (map[string]uint64, error) {
	rows, err := conn.Query(ctx, `SELECT status, count() FROM `+chclient.Table(db, "deliveries")+` FINAL GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("report: count %s.deliveries by status: %w", db, err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var s string
		var n uint64
		if err := rows.Scan(&s, &n); err != nil {
			return nil, fmt.Errorf("report: count %s.deliveries by status: %w", db, err)
		}
		out[s] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("report: count %s.deliveries by status: %w", db, err)
	}
	return out, nil
}
