// Package clickhouse is the sinks.Sink that writes kaudit's results to
// ClickHouse: raw audit events into <database>.events and verdicts into
// <database>.deliveries (tables created by store/migrations). Rows go column
// by column through clickhouse-go's PrepareBatch with an explicit column
// list, the insert path that works on ClickHouse 18.16 as well as on current
// servers.
//
//	// With a connection of your own:
//	sink := clickhouse.New(conn, clickhouse.Config{Database: "kaudit"})
//	err = sink.WriteBatch(ctx, &sinks.Batch{Verdicts: verdicts})
//
//	// Or let the runner connect (and migrate) when it starts, retrying
//	// while ClickHouse is not up yet:
//	sink := clickhouse.Dial(store.Config{Addr: "clickhouse:9000"}, clickhouse.Config{Migrate: true})
//	r, err := sinks.New(sinks.Config[*sinks.Batch]{...}, sink)
//
// Writes are idempotent by table design: a re-written event has the same
// sorting key and partition as the first copy, and a re-written verdict the
// same key and seq, so ReplacingMergeTree keeps one row (read with FINAL).
//
// A table is a Table value: its name and its columns, each with the
// function giving a row's value (see Events and Deliveries); Rows hold a
// batch of its rows column by column. A new record type declares its Table,
// keeps its rows in a batch type of its own, and writes them from its own
// sinks.Sink with Insert, through a Sink made by Dial (which brings
// Connect, Ping and Close); a sinks.Runner in its own consumer group feeds
// it.
package clickhouse

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/kaudit/kaudit/sinks"
	"github.com/kaudit/kaudit/store"
	"github.com/kaudit/kaudit/store/migrations"
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
	// store.DefaultDatabase, "kaudit"; with Dial, the store.Config's).
	Database string
	// Logger receives a message per connect and a debug message per
	// batch; nil discards.
	Logger *slog.Logger
	// OwnsConn makes Close close the connection too (always so with
	// Dial).
	OwnsConn bool
	// Migrate makes Connect apply the migrations first (Dial only).
	Migrate bool
	// PingTimeout bounds Ping (default 2s).
	PingTimeout time.Duration
	// Distributed says the tables are Distributed tables of a ClickHouse
	// cluster (store.Config.Cluster; Dial sets it from there): every
	// insert then waits until each shard has written its rows
	// (insert_distributed_sync = 1), so a batch is accepted only when all
	// of it is stored; otherwise it fails and is written again (a shard
	// that had its part already keeps one copy: replicated inserts drop a
	// repeated block, ReplacingMergeTree collapses the rest).
	Distributed bool
}

// Sink writes batches to ClickHouse. It is safe for concurrent use: each
// WriteBatch runs its own inserts.
type Sink struct {
	cfg      Config
	dial     *store.Config // set by Dial
	database string
	log      *slog.Logger

	mu     sync.Mutex // guards connecting
	conn   atomic.Pointer[driver.Conn]
	closed atomic.Bool
}

var (
	_ sinks.Sink[*sinks.Batch] = (*Sink)(nil)
	_ sinks.Connecter          = (*Sink)(nil)
	_ sinks.Pinger             = (*Sink)(nil)
)

// New returns a Sink writing through conn. Close leaves the connection open
// unless Config.OwnsConn is set.
func New(conn driver.Conn, cfg Config) *Sink {
	s := newSink(cfg, cmp.Or(cfg.Database, store.DefaultDatabase))
	if conn != nil {
		s.conn.Store(&conn)
	}
	return s
}

// Dial returns a Sink that connects to ClickHouse on Connect: it applies
// the migrations there first if cfg.Migrate is set. It owns its
// connection. Until Connect succeeded, WriteBatch fails with
// sinks.ErrNotConnected.
func Dial(sc store.Config, cfg Config) *Sink {
	sc = sc.WithDefaults()
	cfg.OwnsConn = true
	cfg.Distributed = cfg.Distributed || sc.Cluster != ""
	s := newSink(cfg, cmp.Or(cfg.Database, sc.Database))
	sc.Database = s.database
	s.dial = &sc
	return s
}

func newSink(cfg Config, db string) *Sink {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.PingTimeout = cmp.Or(cfg.PingTimeout, 2*time.Second)
	return &Sink{cfg: cfg, database: db, log: log}
}

// Connect opens the connection of a Sink made by Dial, after applying the
// migrations if Config.Migrate is set. It is a no-op once connected, and
// for a Sink made by New.
func (s *Sink) Connect(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	if s.conn.Load() != nil || s.dial == nil {
		return nil
	}
	if s.cfg.Migrate {
		if err := migrations.Up(ctx, *s.dial, s.log); err != nil {
			return fmt.Errorf("clickhouse sink: migrate %s: %w", s.dial.Addr, err)
		}
	}
	conn, err := store.Open(ctx, *s.dial)
	if err != nil {
		return fmt.Errorf("clickhouse sink: %w", err)
	}
	s.conn.Store(&conn)
	s.log.Info("connected to clickhouse", "addr", s.dial.Addr, "database", s.database)
	return nil
}

// Ping reports whether ClickHouse answers, within Config.PingTimeout.
func (s *Sink) Ping(ctx context.Context) error {
	conn := s.connection()
	if conn == nil {
		return sinks.ErrNotConnected
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.PingTimeout)
	defer cancel()
	if err := conn.Ping(ctx); err != nil {
		return fmt.Errorf("clickhouse sink: ping: %w", err)
	}
	return nil
}

func (s *Sink) connection() driver.Conn {
	if c := s.conn.Load(); c != nil {
		return *c
	}
	return nil
}

// WriteBatch inserts b's events and then its verdicts, one INSERT per
// table. On error some rows may have been written; writing the same batch
// again is safe.
func (s *Sink) WriteBatch(ctx context.Context, b *sinks.Batch) error {
	if b == nil || b.Len() == 0 {
		return s.WriteColumns(ctx, nil)
	}
	cb := NewBatch()
	for i := range b.Events {
		cb.AddEvent(&b.Events[i])
	}
	for i := range b.Verdicts {
		cb.AddVerdict(&b.Verdicts[i])
	}
	for i := range b.Admin {
		cb.Admin.Add(&b.Admin[i])
	}
	for i := range b.Traffic {
		cb.Traffic.Add(&b.Traffic[i])
	}
	for i := range b.Lag {
		cb.Lag.Add(&b.Lag[i])
	}
	return s.WriteColumns(ctx, cb)
}

// WriteColumns is WriteBatch for a columnar Batch.
func (s *Sink) WriteColumns(ctx context.Context, b *Batch) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if b == nil || b.Len() == 0 {
		return nil
	}
	conn := s.connection()
	if conn == nil {
		return fmt.Errorf("clickhouse sink: %w", sinks.ErrNotConnected)
	}
	began := time.Now()
	ctx = s.insertContext(ctx)
	if err := b.Events.Insert(ctx, conn, s.database); err != nil {
		return err
	}
	if err := b.Verdicts.Insert(ctx, conn, s.database); err != nil {
		return err
	}
	if err := b.Admin.Insert(ctx, conn, s.database); err != nil {
		return err
	}
	if err := b.Traffic.Insert(ctx, conn, s.database); err != nil {
		return err
	}
	if err := b.Lag.Insert(ctx, conn, s.database); err != nil {
		return err
	}
	s.log.Debug("clickhouse sink wrote batch", "database", s.database,
		"events", b.Events.Len(), "verdicts", b.Verdicts.Len(), "took", time.Since(began))
	return nil
}

// Insert writes rows of any Table through s's connection into s's
// database: what the sink of another record type calls from its
// WriteBatch, reusing s's Dial, Connect, Ping and Close.
func Insert[T any](ctx context.Context, s *Sink, rows *Rows[T]) error {
	if s.closed.Load() {
		return ErrClosed
	}
	conn := s.connection()
	if conn == nil {
		return fmt.Errorf("clickhouse sink: %w", sinks.ErrNotConnected)
	}
	return rows.Insert(s.insertContext(ctx), conn, s.database)
}

// insertContext is ctx with the settings of s's inserts.
func (s *Sink) insertContext(ctx context.Context) context.Context {
	if !s.cfg.Distributed {
		return ctx
	}
	return clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_distributed_sync": 1}))
}

// Columnar returns s as the sink of columnar batches (WriteColumns), for a
// runner decoding records with Topics.
func (s *Sink) Columnar() *ColumnarSink { return &ColumnarSink{s} }

// ColumnarSink is a Sink writing columnar Batches.
type ColumnarSink struct{ *Sink }

var (
	_ sinks.Sink[*Batch] = (*ColumnarSink)(nil)
	_ sinks.Connecter    = (*ColumnarSink)(nil)
	_ sinks.Pinger       = (*ColumnarSink)(nil)
)

// WriteBatch implements sinks.Sink (WriteColumns).
func (c *ColumnarSink) WriteBatch(ctx context.Context, b *Batch) error { return c.WriteColumns(ctx, b) }

// Close makes later writes fail with ErrClosed and, with Config.OwnsConn,
// closes the connection.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Swap(true) || !s.cfg.OwnsConn {
		return nil
	}
	conn := s.connection()
	if conn == nil {
		return nil
	}
	if err := conn.Close(); err != nil {
		return fmt.Errorf("clickhouse sink: close connection: %w", err)
	}
	return nil
}
