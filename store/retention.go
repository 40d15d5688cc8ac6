package store

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// RetentionTables are the tables DropBefore trims. Each is partitioned by
// day (toYYYYMMDD of its time column), so a partition ID is a date.
var RetentionTables = []string{EventsTable, DeliveriesTable, RollupTable, AdminAuditTable, ClientTrafficTable, LagTable}

var (
	// Partitions with rows: after DROP PARTITION, recent ClickHouse keeps an
	// empty part covering the dropped range for a while (active, 0 rows),
	// which is no partition to drop.
	qPartitions = NewQuery("store.retention.partitions", `SELECT table, partition_id, sum(rows)
		FROM {parts}
		WHERE database = ? AND has(?, table) AND active
		GROUP BY table, partition_id
		HAVING sum(rows) > 0
		ORDER BY table, partition_id`)
	qDropPartition = map[string]*Query{}
)

func init() {
	for _, p := range placeholders {
		if slices.Contains(RetentionTables, p.table) {
			qDropPartition[p.table] = NewQuery("store.retention.drop_partition."+p.table, "ALTER TABLE {"+p.name+"_local}{on_cluster} DROP PARTITION ID ?")
		}
	}
}

// Partition is one day partition of a kaudit table.
type Partition struct {
	Table string
	// ID is the partition ID, YYYYMMDD.
	ID string
	// Day is the start of the partition's day (UTC).
	Day  time.Time
	Rows uint64
}

// DropBefore drops the partitions of RetentionTables in s whose whole day
// lies before cutoff (the day ends at or before cutoff), with ALTER TABLE
// ... DROP PARTITION ID, and returns them. With dryRun it only returns
// them. So with cutoff = now - 30 days, between 30 and 31 days of data
// remain.
//
// On a cluster it lists the partitions of the local tables of every shard
// and drops them ON CLUSTER (for replicated tables ClickHouse runs the
// drop on one replica per shard and replicates it); Rows then adds up the
// shards. A node that is down gets the drop from the distributed DDL queue
// when it is back, but the statement fails after
// distributed_ddl_task_timeout (180 s by default): the Retainer retries at
// its next interval.
//
// Partitions whose ID is not a date are left alone. Modern servers refuse
// to drop a partition larger than max_partition_size_to_drop (50 GB by
// default); the error says so.
func DropBefore(ctx context.Context, conn driver.Conn, s Schema, cutoff time.Time, dryRun bool) ([]Partition, error) {
	db := s.Database
	product := map[string]string{}
	var locals []string
	for _, t := range RetentionTables {
		product[s.Local(t)] = t
		locals = append(locals, s.Local(t))
	}
	rows, err := conn.Query(ctx, qPartitions.For(s), db, locals)
	if err != nil {
		return nil, fmt.Errorf("report: list partitions of %s: %w", db, err)
	}
	var old []Partition
	for rows.Next() {
		var p Partition
		if err := rows.Scan(&p.Table, &p.ID, &p.Rows); err != nil {
			rows.Close()
			return nil, fmt.Errorf("report: list partitions of %s: %w", db, err)
		}
		p.Table = product[p.Table]
		day, ok := partitionDay(p.ID)
		if !ok || day.Add(24*time.Hour).After(cutoff) {
			continue
		}
		p.Day = day
		old = append(old, p)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("report: list partitions of %s: %w", db, err)
	}
	// (By the product's names: local names sort differently.)
	slices.SortFunc(old, func(a, b Partition) int {
		return cmp.Or(strings.Compare(a.Table, b.Table), strings.Compare(a.ID, b.ID))
	})
	if dryRun {
		return old, nil
	}
	for i, p := range old {
		if err := conn.Exec(ctx, qDropPartition[p.Table].For(s), p.ID); err != nil {
			return old[:i], fmt.Errorf("report: drop partition %s of %s.%s: %w", p.ID, db, s.Local(p.Table), err)
		}
	}
	return old, nil
}

// partitionDay parses a YYYYMMDD partition ID.
func partitionDay(id string) (time.Time, bool) {
	if len(id) != 8 {
		return time.Time{}, false
	}
	for _, c := range id {
		if c < '0' || c > '9' {
			return time.Time{}, false
		}
	}
	day, err := time.Parse("20060102", id)
	if err != nil {
		return time.Time{}, false
	}
	return day, true
}

// Retainer drops old day partitions periodically (kaudit web --retention).
type Retainer struct {
	conn   driver.Conn
	schema Schema
	keep   time.Duration
	log    *slog.Logger
	now    func() time.Time
}

// NewRetainer returns a Retainer keeping keep of history in the tables of
// s; log may be nil.
func NewRetainer(conn driver.Conn, s Schema, keep time.Duration, log *slog.Logger) *Retainer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Retainer{conn: conn, schema: s, keep: keep, log: log, now: time.Now}
}

// Run drops the partitions older than the kept history now and then every
// interval until ctx ends; failures are logged and retried at the next
// interval. It returns nil when ctx ends.
func (r *Retainer) Run(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		parts, err := DropBefore(ctx, r.conn, r.schema, r.now().Add(-r.keep), false)
		for _, p := range parts {
			r.log.Info("retention dropped partition", "table", p.Table, "partition", p.ID, "rows", p.Rows)
		}
		if err != nil && ctx.Err() == nil {
			r.log.Warn("retention failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
