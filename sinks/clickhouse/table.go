package clickhouse

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/sinks"
	"github.com/kaudit/kaudit/store"
)

// A Table is the insert of one ClickHouse table from rows of type T: its
// name inside the database and its columns, each with the function that
// gives a row's value. Rows go column by column (clickhouse-go's columnar
// batch API), through PrepareBatch with the explicit column list, the
// insert that works on ClickHouse 18.16 as well as on current releases.
// Columns not listed take their defaults.
type Table[T any] struct {
	Name    string
	Columns []Column[T]
}

// Column is one column of a Table; build it with String, Int, DateTime.
type Column[T any] interface {
	name() string
	// buffer returns an empty buffer for n rows.
	buffer(n int) columnBuffer[T]
}

type columnBuffer[T any] interface {
	add(*T)
	send(driver.BatchColumn) error
}

// String is a String column.
func String[T any](name string, get func(*T) string) Column[T] { return valueCol[T, string]{name, get} }

// Int is a column of an integer type: Int16, Int32, Int64, UInt8,
// UInt16, UInt32, UInt64.
func Int[T any, V int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64](name string, get func(*T) V) Column[T] {
	return valueCol[T, V]{name, get}
}

// Bool is a UInt8 column holding 0 or 1.
func Bool[T any](name string, get func(*T) bool) Column[T] {
	return valueCol[T, uint8]{name, func(r *T) uint8 {
		if get(r) {
			return 1
		}
		return 0
	}}
}

// DateTime is a DateTime column (whole seconds) from Unix nanoseconds;
// values outside what a DateTime holds are clamped (see UnixSeconds), so
// the same input always gives the same row and partition.
func DateTime[T any](name string, getNs func(*T) int64) Column[T] {
	return valueCol[T, time.Time]{name, func(r *T) time.Time { return dateTime(getNs(r)) }}
}

type valueCol[T, V any] struct {
	n   string
	get func(*T) V
}

func (c valueCol[T, V]) name() string { return c.n }

func (c valueCol[T, V]) buffer(n int) columnBuffer[T] {
	return &valueBuf[T, V]{get: c.get, v: make([]V, 0, n)}
}

type valueBuf[T, V any] struct {
	get func(*T) V
	v   []V
}

func (b *valueBuf[T, V]) add(r *T) { b.v = append(b.v, b.get(r)) }

func (b *valueBuf[T, V]) send(col driver.BatchColumn) error { return col.Append(b.v) }

// insert writes rows into database.t in one INSERT.
func (t *Table[T]) insert(ctx context.Context, conn driver.Conn, database string, rows []T) error {
	if len(rows) == 0 {
		return nil
	}
	names := make([]string, len(t.Columns))
	bufs := make([]columnBuffer[T], len(t.Columns))
	for i, c := range t.Columns {
		names[i] = c.name()
		bufs[i] = c.buffer(len(rows))
	}
	for i := range rows {
		for _, b := range bufs {
			b.add(&rows[i])
		}
	}
	query := "INSERT INTO " + store.Table(database, t.Name) + " (" + strings.Join(names, ", ") + ")"
	batch, err := conn.PrepareBatch(ctx, query)
	if err != nil {
		return fmt.Errorf("clickhouse sink: prepare insert into %s.%s: %w", database, t.Name, err)
	}
	defer batch.Close()
	for i, b := range bufs {
		if err := b.send(batch.Column(i)); err != nil {
			return fmt.Errorf("clickhouse sink: column %s of %s.%s: %w", names[i], database, t.Name, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("clickhouse sink: send batch to %s.%s: %w", database, t.Name, err)
	}
	return nil
}

// dateTime converts Unix nanoseconds to a time a ClickHouse DateTime holds
// (whole seconds, 1970 to 2106); out-of-range values are clamped.
func dateTime(ns int64) time.Time {
	if ns <= 0 {
		return time.Unix(0, 0).UTC()
	}
	sec := ns / int64(time.Second)
	if sec > math.MaxUint32 {
		sec = math.MaxUint32
	}
	return time.Unix(sec, 0).UTC()
}

// Events is the events table: one row per raw audit event, keyed by its
// position in the audit topic; inserted_at takes its default.
var Events = &Table[sinks.EventRecord]{Name: EventsTable, Columns: []Column[sinks.EventRecord]{
	String("correlation_id", func(r *sinks.EventRecord) string { return r.Event.CorrelationID }),
	String("kind", func(r *sinks.EventRecord) string { return r.Event.Kind.String() }),
	String("topic", func(r *sinks.EventRecord) string { return r.Event.Topic }),
	Int("partition", func(r *sinks.EventRecord) int32 { return r.Event.Partition }),
	Int("offset", func(r *sinks.EventRecord) int64 { return r.Event.Offset }),
	String("client_id", func(r *sinks.EventRecord) string { return r.Event.ClientID }),
	String("consumer_group", func(r *sinks.EventRecord) string { return r.Event.Group }),
	String("host", func(r *sinks.EventRecord) string { return r.Event.Host }),
	String("source", func(r *sinks.EventRecord) string { return r.Event.Source }),
	Int("send_ns", func(r *sinks.EventRecord) int64 { return r.Event.SendNs }),
	Int("ack_ns", func(r *sinks.EventRecord) int64 { return r.Event.AckNs }),
	Int("consume_ns", func(r *sinks.EventRecord) int64 { return r.Event.ConsumeNs }),
	Int("record_ts_ns", func(r *sinks.EventRecord) int64 { return r.Event.RecordTsNs }),
	String("error", func(r *sinks.EventRecord) string { return r.Event.Error }),
	Int("payload_size", func(r *sinks.EventRecord) int32 { return r.Event.PayloadSize }),
	Int("digest", func(r *sinks.EventRecord) uint64 { return r.Event.Digest }),
	DateTime("event_time", func(r *sinks.EventRecord) int64 { return r.Event.TimeNs() }),
	String("audit_topic", func(r *sinks.EventRecord) string { return r.From.Topic }),
	Int("audit_partition", func(r *sinks.EventRecord) int32 { return r.From.Partition }),
	Int("audit_offset", func(r *sinks.EventRecord) int64 { return r.From.Offset }),
}}

// Deliveries is the deliveries table: one row per verdict, the latest seq
// of a (topic, consumer_group, correlation_id) winning; inserted_at takes
// its default.
var Deliveries = &Table[codecs.Verdict]{Name: DeliveriesTable, Columns: []Column[codecs.Verdict]{
	String("correlation_id", func(v *codecs.Verdict) string { return v.CorrelationID }),
	String("topic", func(v *codecs.Verdict) string { return v.Topic }),
	String("consumer_group", func(v *codecs.Verdict) string { return v.Group }),
	String("status", func(v *codecs.Verdict) string { return v.Status.String() }),
	String("cause", func(v *codecs.Verdict) string { return v.Cause }),
	Int("seq", func(v *codecs.Verdict) uint64 { return v.Seq }),
	Int("partition", func(v *codecs.Verdict) int32 { return v.Partition }),
	Int("offset", func(v *codecs.Verdict) int64 { return v.Offset }),
	String("producer_client", func(v *codecs.Verdict) string { return v.ProducerClient }),
	String("producer_host", func(v *codecs.Verdict) string { return v.ProducerHost }),
	Int("send_ns", func(v *codecs.Verdict) int64 { return v.SendNs }),
	Int("ack_ns", func(v *codecs.Verdict) int64 { return v.AckNs }),
	String("produce_error", func(v *codecs.Verdict) string { return v.ProduceError }),
	Int("payload_size", func(v *codecs.Verdict) int32 { return v.PayloadSize }),
	String("consumer_client", func(v *codecs.Verdict) string { return v.ConsumerClient }),
	String("consumer_host", func(v *codecs.Verdict) string { return v.ConsumerHost }),
	Int("consume_partition", func(v *codecs.Verdict) int32 { return v.ConsumePartition }),
	Int("consume_offset", func(v *codecs.Verdict) int64 { return v.ConsumeOffset }),
	Int("first_consume_ns", func(v *codecs.Verdict) int64 { return v.FirstConsumeNs }),
	Int("last_consume_ns", func(v *codecs.Verdict) int64 { return v.LastConsumeNs }),
	Int("consume_count", func(v *codecs.Verdict) uint32 { return v.ConsumeCount }),
	Int("ack_latency_us", func(v *codecs.Verdict) int64 { return v.AckLatencyUs }),
	Int("e2e_latency_us", func(v *codecs.Verdict) int64 { return v.E2ELatencyUs }),
	DateTime("first_seen", func(v *codecs.Verdict) int64 { return v.FirstSeenNs }),
	DateTime("decided_at", func(v *codecs.Verdict) int64 { return v.DecidedNs }),
	Bool("expected", func(v *codecs.Verdict) bool { return v.Expected }),
	Bool("learned", func(v *codecs.Verdict) bool { return v.Learned }),
	Int("deadline_ns", func(v *codecs.Verdict) int64 { return v.DeadlineNs }),
}}
