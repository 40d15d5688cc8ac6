// Package clickhouse is the sinks.Sink that writes kaudit's results to
// ClickHouse: raw audit events into <database>.events and verdicts into
// <database>.deliveries (tables created by the migrations package). Rows go
// through clickhouse-go's PrepareBatch with an explicit column list, the
// insert path that works on ClickHouse 18.16 as well as on modern servers.
//
//	conn, err := store.Open(ctx, store.Config{Addr: addr, Database: "kaudit"})
//	...
//	sink := clickhouse.New(conn, clickhouse.Config{Database: "kaudit"})
//	err = sink.WriteBatch(ctx, &sinks.Batch{Verdicts: verdicts})
//
// Writes are idempotent by table design: a re-written event has the same
// sorting key and partition as the first copy, and a re-written verdict the
// same key and seq, so ReplacingMergeTree keeps one row (read with FINAL).
package clickhouse

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/sinks"
	"github.com/kaudit/kaudit/store"
)

// Table names inside the configured database.
const (
	EventsTable     = store.EventsTable
	DeliveriesTable = store.DeliveriesTable
)

// ErrClosed is returned by WriteBatch after Close.
var ErrClosed = errors.New("clickhouse sink: closed")

// Config configures a Sink. Zero fields take defaults.
type Config struct {
	// Database holds the events and deliveries tables (default
	// store.DefaultDatabase, "kaudit").
	Database string
	// Logger receives a debug message per batch; nil discards.
	Logger *slog.Logger
	// OwnsConn makes Close close the connection too.
	OwnsConn bool
}

// Sink writes batches to ClickHouse. Close leaves the connection open
// unless Config.OwnsConn is set.
type Sink struct {
	conn       driver.Conn
	ownsConn   bool
	database   string
	events     string // quoted database.table
	deliveries string
	log        *slog.Logger
	closed     atomic.Bool
}

var _ sinks.Sink = (*Sink)(nil)

// New returns a Sink writing through conn.
func New(conn driver.Conn, cfg Config) *Sink {
	db := cmp.Or(cfg.Database, store.DefaultDatabase)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sink{
		conn:       conn,
		ownsConn:   cfg.OwnsConn,
		database:   db,
		events:     store.Table(db, EventsTable),
		deliveries: store.Table(db, DeliveriesTable),
		log:        log,
	}
}

// eventColumns is the insert column list of the events table, in the order
// appendEvent appends; inserted_at takes its default.
var eventColumns = []string{
	"correlation_id", "kind", "topic", "partition", "offset",
	"client_id", "consumer_group", "host", "source",
	"send_ns", "ack_ns", "consume_ns", "record_ts_ns",
	"error", "payload_size", "digest", "event_time",
	"audit_topic", "audit_partition", "audit_offset",
}

// deliveryColumns is the insert column list of the deliveries table, in the
// order appendVerdict appends; inserted_at takes its default.
var deliveryColumns = []string{
	"correlation_id", "topic", "consumer_group", "status", "cause", "seq",
	"partition", "offset", "producer_client", "producer_host",
	"send_ns", "ack_ns", "produce_error", "payload_size",
	"consumer_client", "consumer_host", "consume_partition", "consume_offset",
	"first_consume_ns", "last_consume_ns", "consume_count",
	"ack_latency_us", "e2e_latency_us", "first_seen", "decided_at",
	"expected", "learned", "deadline_ns",
}

// WriteBatch inserts b's events and then its verdicts, one INSERT per
// table. On error some rows may have been written; writing the same batch
// again is safe.
func (s *Sink) WriteBatch(ctx context.Context, b *sinks.Batch) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if b == nil || b.Len() == 0 {
		return nil
	}
	if s.conn == nil {
		return errors.New("clickhouse sink: no connection")
	}
	began := time.Now()
	if len(b.Events) > 0 {
		err := s.insert(ctx, s.events, EventsTable, eventColumns, len(b.Events), func(batch driver.Batch, i int) error {
			return appendEvent(batch, &b.Events[i])
		})
		if err != nil {
			return err
		}
	}
	if len(b.Verdicts) > 0 {
		err := s.insert(ctx, s.deliveries, DeliveriesTable, deliveryColumns, len(b.Verdicts), func(batch driver.Batch, i int) error {
			return appendVerdict(batch, &b.Verdicts[i])
		})
		if err != nil {
			return err
		}
	}
	if err := s.writeProxy(ctx, b); err != nil {
		return err
	}
	s.log.Debug("clickhouse sink wrote batch", "database", s.database,
		"events", len(b.Events), "verdicts", len(b.Verdicts), "took", time.Since(began))
	return nil
}

// insert sends n rows to table in one INSERT.
func (s *Sink) insert(ctx context.Context, table, name string, columns []string, n int, row func(driver.Batch, int) error) error {
	query := "INSERT INTO " + table + " (" + strings.Join(columns, ", ") + ")"
	batch, err := s.conn.PrepareBatch(ctx, query)
	if err != nil {
		return fmt.Errorf("clickhouse sink: prepare insert into %s.%s: %w", s.database, name, err)
	}
	defer batch.Close()
	for i := range n {
		if err := row(batch, i); err != nil {
			return fmt.Errorf("clickhouse sink: append row %d for %s.%s: %w", i, s.database, name, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("clickhouse sink: send batch to %s.%s: %w", s.database, name, err)
	}
	return nil
}

func appendEvent(batch driver.Batch, r *sinks.EventRecord) error {
	e := &r.Event
	return batch.Append(
		e.CorrelationID, e.Kind.String(), e.Topic, e.Partition, e.Offset,
		e.ClientID, e.Group, e.Host, e.Source,
		e.SendNs, e.AckNs, e.ConsumeNs, e.RecordTsNs,
		e.Error, e.PayloadSize, e.Digest, dateTime(e.TimeNs()),
		r.From.Topic, r.From.Partition, r.From.Offset,
	)
}

func appendVerdict(batch driver.Batch, v *codecs.Verdict) error {
	return batch.Append(
		v.CorrelationID, v.Topic, v.Group, v.Status.String(), v.Cause, v.Seq,
		v.Partition, v.Offset, v.ProducerClient, v.ProducerHost,
		v.SendNs, v.AckNs, v.ProduceError, v.PayloadSize,
		v.ConsumerClient, v.ConsumerHost, v.ConsumePartition, v.ConsumeOffset,
		v.FirstConsumeNs, v.LastConsumeNs, v.ConsumeCount,
		v.AckLatencyUs, v.E2ELatencyUs, dateTime(v.FirstSeenNs), dateTime(v.DecidedNs),
		uint8Of(v.Expected), uint8Of(v.Learned), v.DeadlineNs,
	)
}

// dateTime converts Unix nanoseconds to a time a ClickHouse DateTime holds
// (whole seconds, 1970 to 2106); out-of-range values are clamped, so the
// same input always gives the same row and partition.
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

// Close makes later writes fail with ErrClosed and, with Config.OwnsConn,
// closes the connection.
func (s *Sink) Close() error {
	if s.closed.Swap(true) || !s.ownsConn || s.conn == nil {
		return nil
	}
	if err := s.conn.Close(); err != nil {
		return fmt.Errorf("clickhouse sink: close connection: %w", err)
	}
	return nil
}

func uint8Of(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
