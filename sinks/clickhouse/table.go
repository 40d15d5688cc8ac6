package clickhouse

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"
	"unsafe"

	"github.com/ClickHouse/ch-go/proto"
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

// Column is one column of a Table; build it with String, Int, Bool,
// DateTime.
type Column[T any] interface {
	name() string
	// buffer returns an empty buffer of the column's values.
	buffer() columnBuffer[T]
}

// columnBuffer holds one column's values of the rows added so far, in
// ch-go's column types: pointer-free memory that the garbage collector need
// not scan, sent as it is by the native insert.
type columnBuffer[T any] interface {
	add(*T)
	// appendTo appends the values to a clickhouse-go batch column.
	appendTo(driver.BatchColumn) error
	reset()
}

// String is a String column.
func String[T any](name string, get func(*T) string) Column[T] { return strCol[T]{name, get} }

// Int is a column of an integer type: Int16, Int32, Int64, UInt8,
// UInt16, UInt32, UInt64.
func Int[T any, V int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64](name string, get func(*T) V) Column[T] {
	return intCol[T, V]{name, get}
}

// Bool is a UInt8 column holding 0 or 1.
func Bool[T any](name string, get func(*T) bool) Column[T] {
	return intCol[T, uint8]{name, func(r *T) uint8 {
		if get(r) {
			return 1
		}
		return 0
	}}
}

// DateTime is a DateTime column (whole seconds) from Unix nanoseconds;
// values outside what a DateTime holds are clamped, so the same input
// always gives the same row and partition.
func DateTime[T any](name string, getNs func(*T) int64) Column[T] { return dateCol[T]{name, getNs} }

type strCol[T any] struct {
	n   string
	get func(*T) string
}

func (c strCol[T]) name() string            { return c.n }
func (c strCol[T]) buffer() columnBuffer[T] { return &strBuf[T]{get: c.get} }

type strBuf[T any] struct {
	get   func(*T) string
	col   proto.ColStr
	views []string
}

func (b *strBuf[T]) add(r *T) { b.col.Append(b.get(r)) }
func (b *strBuf[T]) reset() {
	b.col.Reset()
	clear(b.views)
	b.views = b.views[:0]
}

// appendTo hands clickhouse-go views of the column's bytes (no copy here;
// clickhouse-go copies them into its own column).
func (b *strBuf[T]) appendTo(col driver.BatchColumn) error {
	b.views = b.views[:0]
	for _, p := range b.col.Pos {
		if p.End == p.Start {
			b.views = append(b.views, "")
			continue
		}
		b.views = append(b.views, unsafe.String(&b.col.Buf[p.Start], p.End-p.Start))
	}
	err := col.Append(b.views)
	clear(b.views)
	return err
}

type intCol[T any, V int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64] struct {
	n   string
	get func(*T) V
}

func (c intCol[T, V]) name() string            { return c.n }
func (c intCol[T, V]) buffer() columnBuffer[T] { return &intBuf[T, V]{get: c.get} }

type intBuf[T any, V int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64] struct {
	get func(*T) V
	v   []V
}

func (b *intBuf[T, V]) add(r *T)                              { b.v = append(b.v, b.get(r)) }
func (b *intBuf[T, V]) appendTo(col driver.BatchColumn) error { return col.Append(b.v) }
func (b *intBuf[T, V]) reset()                                { b.v = b.v[:0] }

type dateCol[T any] struct {
	n     string
	getNs func(*T) int64
}

func (c dateCol[T]) name() string            { return c.n }
func (c dateCol[T]) buffer() columnBuffer[T] { return &dateBuf[T]{getNs: c.getNs} }

type dateBuf[T any] struct {
	getNs func(*T) int64
	col   proto.ColDateTime
	secs  []int64
}

func (b *dateBuf[T]) add(r *T) {
	b.col.Data = append(b.col.Data, proto.DateTime(unixSeconds(b.getNs(r))))
}
func (b *dateBuf[T]) reset() { b.col.Data = b.col.Data[:0] }

func (b *dateBuf[T]) appendTo(col driver.BatchColumn) error {
	b.secs = b.secs[:0]
	for _, d := range b.col.Data {
		b.secs = append(b.secs, int64(d))
	}
	return col.Append(b.secs)
}

// chunkRows is how many rows one chunk of Rows holds, and one block of an
// insert carries: blocks of this size keep clickhouse-go's column buffers
// small and warm (the server squashes the blocks of one INSERT into one
// part).
const chunkRows = 8192

// Rows are rows of a Table held column by column, in chunks of chunkRows:
// what a Batch keeps per table, filled as records are decoded. Reset keeps
// the chunks for the next batch, so a sink in steady state allocates
// nothing per row.
type Rows[T any] struct {
	t      *Table[T]
	n      int
	chunks []*chunk[T] // in use; all but the last are full
	free   []*chunk[T]
}

type chunk[T any] struct {
	n    int
	bufs []columnBuffer[T]
}

// NewRows returns empty rows of t.
func (t *Table[T]) NewRows() *Rows[T] { return &Rows[T]{t: t} }

// Add appends row.
func (r *Rows[T]) Add(row *T) {
	var c *chunk[T]
	if k := len(r.chunks); k > 0 && r.chunks[k-1].n < chunkRows {
		c = r.chunks[k-1]
	} else {
		c = r.chunk()
		r.chunks = append(r.chunks, c)
	}
	for _, b := range c.bufs {
		b.add(row)
	}
	c.n++
	r.n++
}

// chunk returns an empty chunk, reusing a free one.
func (r *Rows[T]) chunk() *chunk[T] {
	if k := len(r.free); k > 0 {
		c := r.free[k-1]
		r.free = r.free[:k-1]
		return c
	}
	c := &chunk[T]{bufs: make([]columnBuffer[T], len(r.t.Columns))}
	for i, col := range r.t.Columns {
		c.bufs[i] = col.buffer()
	}
	return c
}

// Len is the number of rows.
func (r *Rows[T]) Len() int { return r.n }

// Reset empties r, keeping its memory.
func (r *Rows[T]) Reset() {
	for _, c := range r.chunks {
		for _, b := range c.bufs {
			b.reset()
		}
		c.n = 0
		r.free = append(r.free, c)
	}
	clear(r.chunks)
	r.chunks = r.chunks[:0]
	r.n = 0
}

// query is the INSERT statement of the rows' table in database.
func (r *Rows[T]) query(database string) string {
	names := make([]string, len(r.t.Columns))
	for i, c := range r.t.Columns {
		names[i] = c.name()
	}
	return "INSERT INTO " + store.Table(database, r.t.Name) + " (" + strings.Join(names, ", ") + ")"
}

// Insert writes the rows into database.table in one INSERT, a block per
// chunk. On error some blocks may have been written.
func (r *Rows[T]) Insert(ctx context.Context, conn driver.Conn, database string) error {
	if r.n == 0 {
		return nil
	}
	t := r.t
	batch, err := conn.PrepareBatch(ctx, r.query(database))
	if err != nil {
		return fmt.Errorf("clickhouse sink: prepare insert into %s.%s: %w", database, t.Name, err)
	}
	defer batch.Close()
	for k, c := range r.chunks {
		for i, b := range c.bufs {
			if err := b.appendTo(batch.Column(i)); err != nil {
				return fmt.Errorf("clickhouse sink: column %s of %s.%s: %w", t.Columns[i].name(), database, t.Name, err)
			}
		}
		if k < len(r.chunks)-1 {
			if err := batch.Flush(); err != nil {
				return fmt.Errorf("clickhouse sink: send block to %s.%s: %w", database, t.Name, err)
			}
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("clickhouse sink: send batch to %s.%s: %w", database, t.Name, err)
	}
	return nil
}

// unixSeconds is a DateTime's seconds for Unix nanoseconds: 0 for times
// before 1970, at most the DateTime maximum (2106).
func unixSeconds(ns int64) uint32 {
	if ns <= 0 {
		return 0
	}
	return uint32(min(ns/int64(time.Second), math.MaxUint32))
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
