package report

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/kaudit/kaudit/store"
)

// qLag is the statement behind `kaudit report --lag`: per topic, group and
// minute, over the correlators' reports of that minute (FINAL: a repeated
// report counts once), the oldest unconsumed message's age (the largest
// over the instances) and the pending count (their sum).
var qLag = store.NewQuery("report.lag", `SELECT minute, topic, consumer_group,
	       max(age_ms), sum(pending), min(oldest_ack_ns), count()
	FROM {lag} FINAL
	WHERE minute >= toDateTime(?) AND minute < toDateTime(?)
	  AND (? = '' OR topic = ?) AND (? = '' OR consumer_group = ?)
	GROUP BY minute, topic, consumer_group
	ORDER BY topic, consumer_group, minute`)

// LagMinute is one consumer group's lag on one topic in one minute, from
// the reports of every correlator instance that tracked pending messages
// of it then.
type LagMinute struct {
	// Minute is the start of the reported minute (UTC).
	Minute time.Time
	Topic  string
	Group  string
	// AgeMs is the age of the oldest message the group had not consumed,
	// at the report, in milliseconds: the largest over the instances.
	AgeMs int64
	// Pending is how many acknowledged messages the group had not
	// consumed: the sum over the instances.
	Pending uint64
	// OldestAckNs is the acknowledgement time of that oldest message, Unix
	// nanoseconds.
	OldestAckNs int64
	// Instances is how many correlator instances reported.
	Instances uint64
}

// Age is AgeMs as a duration.
func (l LagMinute) Age() time.Duration { return time.Duration(l.AgeMs) * time.Millisecond }

// Lag returns the per-minute lag of each (topic, group) with minutes in
// f's range (whole minutes), by topic, group and minute. A minute without
// a row had nothing pending (or no correlator reported it).
func Lag(ctx context.Context, conn driver.Conn, db string, f Filter) ([]LagMinute, error) {
	from, to := f.bounds()
	return queryAll(ctx, conn, "lag", qLag.SQL(db), []any{from, to, f.Topic, f.Topic, f.Group, f.Group},
		func(rows driver.Rows, l *LagMinute) error {
			if err := rows.Scan(&l.Minute, &l.Topic, &l.Group, &l.AgeMs, &l.Pending, &l.OldestAckNs, &l.Instances); err != nil {
				return err
			}
			l.Minute = l.Minute.UTC()
			return nil
		})
}

// FormatLag prints the per-minute lag table.
func FormatLag(w io.Writer, rows []LagMinute) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tGROUP\tMINUTE (UTC)\tLAG\tPENDING\tOLDEST UNCONSUMED (UTC)\tINSTANCES")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%d\n", r.Topic, r.Group, r.Minute.Format("2006-01-02 15:04"),
			r.Age().Round(100*time.Millisecond), r.Pending, time.Unix(0, r.OldestAckNs).UTC().Format("2006-01-02 15:04:05.000"), r.Instances)
	}
	if len(rows) == 0 {
		fmt.Fprintln(tw, "(no consumer lag reported: no expected group had unconsumed messages, or no correlator reports to the lag topic)")
	}
	return tw.Flush()
}
