package store

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/kaudit/kaudit/codecs"
)

// CauseAuditGap is the cause of a LOST verdict whose consume events may have
// been dropped by an interceptor (audit drop reports cover the window): the
// rollups count it apart from real losses (column audit_gap).
const CauseAuditGap = "audit_gap"

// The Refresher's statements.
var (
	qServerNow   = NewQuery("store.refresh.now", `SELECT now()`)
	qLastRefresh = NewQuery("store.refresh.last", `SELECT max(refreshed_at), max(version) FROM {rollup}`)
	qNewParts    = NewQuery("store.refresh.new_parts", `SELECT DISTINCT name FROM {parts}
		WHERE database = ? AND table = ? AND active AND modification_time >= toDateTime(?)`)
	qDirtyMinutes = NewQuery("store.refresh.dirty_minutes", `SELECT DISTINCT toUInt32(toStartOfMinute(first_seen)) AS m
		FROM {deliveries} WHERE inserted_at >= toDateTime(?) ORDER BY m`)
	qDirtyMinutesOfParts = NewQuery("store.refresh.dirty_minutes_of_parts", `SELECT DISTINCT toUInt32(toStartOfMinute(first_seen)) AS m
		FROM {deliveries} WHERE inserted_at >= toDateTime(?) AND has(?, _part) ORDER BY m`)
	qRecompute = NewQuery("store.refresh.recompute", `INSERT INTO {rollup} (minute, topic, consumer_group, messages,
		delivered, lost, audit_gap, late, duplicate, produce_failed, unaudited_producer, corrupted,
		ack_known, e2e_known, ack_hist_keys, ack_hist_counts, e2e_hist_keys, e2e_hist_counts, version, refreshed_at)
	SELECT toStartOfMinute(first_seen) AS m, topic, consumer_group, count(),
		countIf(status = ?), countIf(status = ? AND cause != ?), countIf(status = ? AND cause = ?),
		countIf(status = ?), countIf(status = ?), countIf(status = ?), countIf(status = ?), countIf(status = ?),
		countIf(ack_latency_us >= 0), countIf(e2e_latency_us >= 0),
		tupleElement(sumMapIf([`+latencyKey("ack_latency_us", "ack")+`], [toUInt64(1)], ack_latency_us >= 0) AS ack_h, 1),
		tupleElement(ack_h, 2),
		tupleElement(sumMapIf([`+latencyKey("e2e_latency_us", "e2e")+`], [toUInt64(1)], e2e_latency_us >= 0) AS e2e_h, 1),
		tupleElement(e2e_h, 2),
		toUInt64(?), toDateTime(?)
	FROM {deliveries} FINAL
	WHERE first_seen >= toDateTime(?) AND first_seen < toDateTime(?)
	GROUP BY m, topic, consumer_group`)
)

// Tables of kaudit's schema, inside the configured database.
const (
	DeliveriesTable = "deliveries"
	EventsTable     = "events"
	// RollupTable holds one row per minute (of first_seen), topic and
	// consumer group (migrations 000003, 000015, 000016).
	RollupTable = "deliveries_1m"
)

// Defaults of RefresherConfig.
const (
	DefaultRefreshSlack = time.Minute
	// DefaultMaxParts bounds the list of new parts a pass names in its
	// query; with more, it reads inserted_at of the whole table.
	DefaultMaxParts = 500
)

// rangeGap merges dirty minutes closer than this into one recomputed
// range (one INSERT ... SELECT); the minutes in between are recomputed too,
// which is harmless.
const rangeGap = 15 * time.Minute

// RefresherConfig configures a Refresher. Zero fields take defaults.
type RefresherConfig struct {
	// Database holds deliveries and deliveries_1m (default
	// DefaultDatabase).
	Database string
	// Slack is how far before the previous pass a pass looks for inserted
	// rows, to cover inserts that were in flight while the previous pass
	// read (default DefaultRefreshSlack); whole seconds.
	Slack time.Duration
	// Cluster is the ClickHouse cluster of the tables (store.Config's);
	// empty for one server.
	Cluster string
	// Logger receives a debug line per pass; nil discards.
	Logger *slog.Logger
}

// Refresher keeps deliveries_1m equal to an aggregation of deliveries
// FINAL, one minute of first_seen at a time.
//
// A pass asks the server for its clock, lists the deliveries parts created
// since the previous pass (minus Slack), reads from them the minutes
// (toStartOfMinute(first_seen)) of the rows inserted since then, and
// recomputes those minutes from deliveries FINAL with INSERT ... SELECT,
// under a version higher than any before. Because every recomputation
// reads only the latest verdict of each message, a verdict corrected later
// (LOST, then LATE for the same message) and a batch the sink wrote twice
// are counted once. The previous pass's time is kept in memory and, at the
// first pass, read back from deliveries_1m (refreshed_at), so a restarted
// process resumes where the last one stopped; an empty rollup table makes
// the first pass compute every minute.
//
// Passes of one Refresher are serialized. Several processes may refresh the
// same database: each pass computes complete minutes, and the newest
// version of a minute wins.
//
// On a cluster the same statements read and write the Distributed tables:
// every version of a delivery row is on the shard of its correlation ID,
// so FINAL on each shard sees them all, and the partial aggregates of the
// shards (counts, sumMap histograms) add up exactly. The new parts are
// those of the local tables of every shard (cluster(..., system.parts));
// the rollup rows are inserted synchronously on their shards. With several
// replicas per shard, the parts listed are those of one replica per shard
// (ClickHouse's load_balancing picks it): a row that reaches that replica
// more than Slack after its insert (written to another replica while this
// one was down, fetched later) is missed until its minute changes again
// (docs/clickhouse-cluster.md).
type Refresher struct {
	conn  driver.Conn
	db    string
	s     Schema
	slack time.Duration
	log   *slog.Logger

	mu       sync.Mutex
	loaded   bool
	since    time.Time // server time of the previous successful pass
	version  uint64    // highest version written or seen
	lastPass time.Time // local time of the last successful pass
}

// RefreshStats describes one pass.
type RefreshStats struct {
	// Parts is the number of new deliveries parts looked at.
	Parts int
	// Minutes is the number of minutes found changed.
	Minutes int
	// Ranges is the number of INSERT ... SELECT statements run.
	Ranges int
	// Took is the pass's duration.
	Took time.Duration
}

// NewRefresher returns a Refresher for the database of cfg, reached
// through conn.
func NewRefresher(conn driver.Conn, cfg RefresherConfig) *Refresher {
	db := cmp.Or(cfg.Database, DefaultDatabase)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Refresher{
		conn:  conn,
		db:    db,
		s:     Schema{Database: db, Cluster: strings.TrimSpace(cfg.Cluster)},
		slack: cmp.Or(cfg.Slack, DefaultRefreshSlack),
		log:   log,
	}
}

// Refresh runs one pass.
func (r *Refresher) Refresh(ctx context.Context) (RefreshStats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refresh(ctx)
}

// RefreshIfOlder runs a pass unless one succeeded less than maxAge ago.
func (r *Refresher) RefreshIfOlder(ctx context.Context, maxAge time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.lastPass.IsZero() && time.Since(r.lastPass) < maxAge {
		return nil
	}
	_, err := r.refresh(ctx)
	return err
}

// Run refreshes every interval until ctx ends, logging failed passes, and
// returns nil when ctx ends.
func (r *Refresher) Run(ctx context.Context, every time.Duration) error {
	if every <= 0 {
		return fmt.Errorf("report: refresh interval %s is not positive", every)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := r.Refresh(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("rollup refresh failed", "database", r.db, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (r *Refresher) refresh(ctx context.Context) (RefreshStats, error) {
	began := time.Now()
	if r.s.Cluster != "" {
		ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clusterSettings))
	}
	var st RefreshStats
	var now time.Time
	if err := r.conn.QueryRow(ctx, qServerNow.For(r.s)).Scan(&now); err != nil {
		return st, fmt.Errorf("report: refresh %s: read server time: %w", r.db, err)
	}
	if !r.loaded {
		var last time.Time
		var version uint64
		if err := r.conn.QueryRow(ctx, qLastRefresh.For(r.s)).Scan(&last, &version); err != nil {
			return st, fmt.Errorf("report: refresh %s: read previous refresh: %w", r.db, err)
		}
		if last.Unix() > 0 {
			r.since = last
		}
		r.version = version
		r.loaded = true
	}

	minutes, parts, err := r.dirtyMinutes(ctx)
	if err != nil {
		return st, err
	}
	st.Parts, st.Minutes = parts, len(minutes)
	if len(minutes) > 0 {
		// Versions follow the server's clock, shared by every refreshing
		// process (the local nanoseconds only order passes within a
		// second).
		r.version = max(r.version+1, uint64(max(now.Unix(), 0))*uint64(time.Second)+uint64(time.Now().Nanosecond()))
		for _, rg := range ranges(minutes) {
			if err := r.recompute(ctx, rg[0], rg[1], now); err != nil {
				return st, err
			}
			st.Ranges++
		}
	}
	r.since = now
	r.lastPass = time.Now()
	st.Took = time.Since(began)
	r.log.Debug("rollups refreshed", "database", r.db, "parts", st.Parts, "minutes", st.Minutes,
		"ranges", st.Ranges, "took", st.Took)
	return st, nil
}

// dirtyMinutes returns the minutes (Unix seconds, ascending) holding rows
// of deliveries inserted since the previous pass (minus slack), and the
// number of parts looked at.
func (r *Refresher) dirtyMinutes(ctx context.Context) ([]int64, int, error) {
	from := time.Unix(0, 0)
	if !r.since.IsZero() {
		from = time.Unix(r.since.Unix()-int64(r.slack/time.Second), 0) // DateTime has whole seconds
	}
	q := qDirtyMinutes
	args := []any{UnixSeconds(from)}
	nparts := 0
	if !r.since.IsZero() {
		parts, err := r.newParts(ctx, from)
		if err != nil {
			return nil, 0, err
		}
		if len(parts) == 0 {
			return nil, 0, nil
		}
		nparts = len(parts)
		if len(parts) <= DefaultMaxParts {
			q = qDirtyMinutesOfParts
			args = append(args, parts)
		}
	}
	rows, err := r.conn.Query(ctx, q.For(r.s), args...)
	if err != nil {
		return nil, 0, fmt.Errorf("report: refresh %s: find changed minutes: %w", r.db, err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var m uint32
		if err := rows.Scan(&m); err != nil {
			return nil, 0, fmt.Errorf("report: refresh %s: find changed minutes: %w", r.db, err)
		}
		out = append(out, int64(m))
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("report: refresh %s: find changed minutes: %w", r.db, err)
	}
	return out, nparts, nil
}

// newParts lists the active deliveries parts modified at or after from.
func (r *Refresher) newParts(ctx context.Context, from time.Time) ([]string, error) {
	rows, err := r.conn.Query(ctx, qNewParts.For(r.s), r.db, r.s.Local(DeliveriesTable), UnixSeconds(from))
	if err != nil {
		return nil, fmt.Errorf("report: refresh %s: list new parts: %w", r.db, err)
	}
	defer rows.Close()
	var parts []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("report: refresh %s: list new parts: %w", r.db, err)
		}
		parts = append(parts, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("report: refresh %s: list new parts: %w", r.db, err)
	}
	return parts, nil
}

// ranges groups ascending minutes into [from, to) ranges of Unix seconds,
// merging minutes less than rangeGap apart.
func ranges(minutes []int64) [][2]int64 {
	var out [][2]int64
	gap := int64(rangeGap / time.Second)
	for _, m := range minutes {
		if n := len(out); n > 0 && m-out[n-1][1] < gap {
			out[n-1][1] = max(out[n-1][1], m+60)
			continue
		}
		out = append(out, [2]int64{m, m + 60})
	}
	return out
}

// recompute writes the rollup rows of the minutes in [from, to) (Unix
// seconds) from deliveries FINAL.
func (r *Refresher) recompute(ctx context.Context, from, to int64, now time.Time) error {
	lost := codecs.StatusLost.String()
	args := []any{
		codecs.StatusDelivered.String(), lost, CauseAuditGap, lost, CauseAuditGap, codecs.StatusLate.String(),
		codecs.StatusDuplicate.String(), codecs.StatusProduceFailed.String(),
		codecs.StatusUnauditedProducer.String(), codecs.StatusCorrupted.String(),
		r.version, UnixSeconds(now), from, min(to, math.MaxUint32),
	}
	if err := r.conn.Exec(ctx, qRecompute.For(r.s), args...); err != nil {
		return fmt.Errorf("report: refresh %s: recompute %s to %s: %w", r.db,
			time.Unix(from, 0).UTC().Format(time.DateTime), time.Unix(to, 0).UTC().Format(time.DateTime), err)
	}
	return nil
}
