package report

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/sinks"
	"github.com/kaudit/kaudit/store"
)

var (
	qTrailEvents = store.NewQuery("report.trail.events", `SELECT kind, topic, partition, offset, client_id, consumer_group, host, source,
		send_ns, ack_ns, consume_ns, record_ts_ns, error, payload_size, digest,
		audit_topic, audit_partition, audit_offset
	FROM {events} FINAL
	WHERE correlation_id = ?
	ORDER BY event_time, audit_topic, audit_partition, audit_offset`)
	qTrailDeliveries = store.NewQuery("report.trail.deliveries", `SELECT topic, consumer_group, status, cause, seq,
		partition, offset, producer_client, producer_host, send_ns, ack_ns, produce_error, payload_size,
		consumer_client, consumer_host, consume_partition, consume_offset, first_consume_ns, last_consume_ns,
		consume_count, ack_latency_us, e2e_latency_us, first_seen, decided_at
	FROM {deliveries} FINAL
	WHERE correlation_id = ?
	ORDER BY consumer_group, topic`)
)

// ErrNotFound is returned by Trail when ClickHouse holds neither events nor
// deliveries for the correlation ID.
var ErrNotFound = errors.New("report: correlation ID not found")

// TrailResult is everything stored about one message. The Version fields
// of its events and verdicts are zero: the tables do not keep the wire
// schema version. Verdict times (FirstSeenNs, DecidedNs) have whole-second
// precision, as stored; event times are exact.
type TrailResult struct {
	CorrelationID string
	// Events are the raw audit events, in event-time order, each with
	// where it was read in the audit topic.
	Events []sinks.EventRecord
	// Deliveries are the latest verdicts, one per consumer group, ordered
	// by group.
	Deliveries []codecs.Verdict
}

// Trail reads the events and deliveries of correlationID (deduplicated
// with FINAL).
func Trail(ctx context.Context, conn driver.Conn, db, correlationID string) (*TrailResult, error) {
	res := &TrailResult{CorrelationID: correlationID}
	var err error
	if res.Events, err = trailEvents(ctx, conn, db, correlationID); err != nil {
		return nil, err
	}
	if res.Deliveries, err = trailDeliveries(ctx, conn, db, correlationID); err != nil {
		return nil, err
	}
	if len(res.Events) == 0 && len(res.Deliveries) == 0 {
		return nil, fmt.Errorf("%w: %q in database %s", ErrNotFound, correlationID, db)
	}
	return res, nil
}

func trailEvents(ctx context.Context, conn driver.Conn, db, id string) ([]sinks.EventRecord, error) {
	out, err := queryAll(ctx, conn, "trail events from "+db+".events", qTrailEvents.SQL(db), []any{id}, func(rows driver.Rows, r *sinks.EventRecord) error {
		e := &r.Event
		e.CorrelationID = id
		var kind string
		if err := rows.Scan(&kind, &e.Topic, &e.Partition, &e.Offset, &e.ClientID, &e.Group, &e.Host, &e.Source,
			&e.SendNs, &e.AckNs, &e.ConsumeNs, &e.RecordTsNs, &e.Error, &e.PayloadSize, &e.Digest,
			&r.From.Topic, &r.From.Partition, &r.From.Offset); err != nil {
			return err
		}
		e.Kind, _ = codecs.ParseKind(kind) // an unknown kind stays KindUnknown
		return nil
	})
	if err != nil {
		return nil, err
	}
	// event_time has whole seconds; order within a second by the
	// nanosecond event time, produce before consume.
	slices.SortStableFunc(out, func(a, b sinks.EventRecord) int {
		return cmp.Or(cmp.Compare(a.Event.TimeNs(), b.Event.TimeNs()), cmp.Compare(a.Event.Kind, b.Event.Kind))
	})
	return out, nil
}

func trailDeliveries(ctx context.Context, conn driver.Conn, db, id string) ([]codecs.Verdict, error) {
	return queryAll(ctx, conn, "trail deliveries from "+db+".deliveries", qTrailDeliveries.SQL(db), []any{id}, func(rows driver.Rows, v *codecs.Verdict) error {
		v.CorrelationID = id
		var status string
		var firstSeen, decided time.Time
		if err := rows.Scan(&v.Topic, &v.Group, &status, &v.Cause, &v.Seq,
			&v.Partition, &v.Offset, &v.ProducerClient, &v.ProducerHost, &v.SendNs, &v.AckNs, &v.ProduceError, &v.PayloadSize,
			&v.ConsumerClient, &v.ConsumerHost, &v.ConsumePartition, &v.ConsumeOffset, &v.FirstConsumeNs, &v.LastConsumeNs,
			&v.ConsumeCount, &v.AckLatencyUs, &v.E2ELatencyUs, &firstSeen, &decided); err != nil {
			return err
		}
		v.Status, _ = codecs.ParseStatus(status) // an unknown status stays StatusUnknown
		v.FirstSeenNs, v.DecidedNs = firstSeen.UnixNano(), decided.UnixNano()
		return nil
	})
}

// timeLayout shows event times to the microsecond, in UTC.
const timeLayout = "2006-01-02 15:04:05.000000"

func formatNs(ns int64) string {
	if ns == 0 {
		return "-"
	}
	return time.Unix(0, ns).UTC().Format(timeLayout)
}

// FormatTrail writes t as a readable timeline: the produce (sent, acked
// with partition/offset and ack latency, or its error), each consume with
// its group and end-to-end latency since the send, then each group's
// verdict.
func FormatTrail(w io.Writer, t *TrailResult) error {
	if t == nil {
		return errors.New("report: no trail")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "correlation_id %s\n", t.CorrelationID)

	var sendNs int64 // of the first produce, for consume latencies
	for _, r := range t.Events {
		if r.Event.Kind == codecs.KindProduce && r.Event.SendNs != 0 {
			sendNs = r.Event.SendNs
			break
		}
	}

	fmt.Fprintf(tw, "\nevents (%d)\n", len(t.Events))
	if len(t.Events) > 0 {
		fmt.Fprintln(tw, "  TIME (UTC)\tEVENT\tTOPIC[PARTITION]@OFFSET\tCLIENT\tDETAIL")
	}
	for _, r := range t.Events {
		e := &r.Event
		where := fmt.Sprintf("%s[%d]@%d", e.Topic, e.Partition, e.Offset)
		client := Who(e.ClientID, e.Host, e.Source)
		var what, detail string
		switch e.Kind {
		case codecs.KindProduce:
			switch {
			case e.Error != "":
				what = "produce FAILED"
				detail = "error: " + e.Error
				where = e.Topic
			case e.AckNs != 0:
				what = "produce acked"
				detail = "ack latency " + FormatMicros(float64(e.AckNs-e.SendNs)/1e3) + ", sent " + formatNs(e.SendNs)
			default:
				what = "produce sent"
				detail = "no ack recorded"
			}
			detail += fmt.Sprintf(", %d bytes", e.PayloadSize)
		case codecs.KindConsume:
			what = "consume"
			detail = "group " + e.Group
			if sendNs != 0 && e.ConsumeNs != 0 {
				detail += ", e2e " + FormatMicros(float64(e.ConsumeNs-sendNs)/1e3) + " after send"
			}
		default:
			what = e.Kind.String()
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", formatNs(e.TimeNs()), what, where, client, detail)
	}

	fmt.Fprintf(tw, "\nverdicts (%d)\n", len(t.Deliveries))
	if len(t.Deliveries) > 0 {
		fmt.Fprintln(tw, "  GROUP\tSTATUS\tSEQ\tTOPIC[PARTITION]@OFFSET\tACK\tE2E\tCONSUMES\tDECIDED (UTC)\tCAUSE")
	}
	for _, v := range t.Deliveries {
		decided := "-"
		if v.DecidedNs > 0 {
			decided = time.Unix(0, v.DecidedNs).UTC().Format(time.DateTime)
		}
		cause := v.Cause
		if v.ProduceError != "" {
			cause = strings.TrimSpace(cause + " produce error: " + v.ProduceError)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s[%d]@%d\t%s\t%s\t%d\t%s\t%s\n", v.Group, v.Status, v.Seq,
			v.Topic, v.Partition, v.Offset, FormatMicros(float64(v.AckLatencyUs)), FormatMicros(float64(v.E2ELatencyUs)),
			v.ConsumeCount, decided, cause)
	}
	return tw.Flush()
}

// Who renders a client as "client@host (library)", leaving out what is
// unknown.
func Who(client, host, source string) string {
	s := cmp.Or(client, "?")
	if host != "" {
		s += "@" + host
	}
	if source != "" {
		s += " (" + source + ")"
	}
	return s
}
