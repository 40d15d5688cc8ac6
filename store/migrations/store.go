package migrations

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pressly/goose/v3/database"
	"github.com/pressly/goose/v3/database/dialect"

	"github.com/kaudit/kaudit/store"
)

// VersionTable is goose's version table, in the migrated database. Its
// layout is that of goose's own clickhouse dialect, so the goose CLI reads
// it too.
const VersionTable = "goose_db_version"

// querier is goose's clickhouse dialect with the changes ClickHouse 18.16
// needs, in SQL that modern servers run as well:
//
//   - The version row is written with INSERT ... SELECT, which the server
//     evaluates by itself. An Exec of INSERT ... VALUES never returns on
//     18.16 through clickhouse-go v2.
//   - DELETE runs without "SETTINGS mutations_sync", which 18.16 cannot
//     parse; store.Delete waits for the mutation instead.
//   - The version table's existence is read from system.tables. goose's
//     fallback probes the table with a SELECT that fails when it is
//     missing, and on 18.16 a database/sql connection is unusable after a
//     server error.
//
// On a cluster (spec set) the version table is created ON CLUSTER as one
// ReplicatedMergeTree whose ZooKeeper path has no shard: every node is a
// replica of the same table (replica {shard}-{replica}), so a version is
// recorded once and every node reads the same history; a DELETE is
// replicated to every replica.
type querier struct{ spec *clusterSpec }

var _ dialect.QuerierExtender = querier{}

func (q querier) CreateTable(table string) string {
	on, engine := "", "MergeTree()"
	if q.spec != nil {
		on = q.spec.onCluster()
		engine = "ReplicatedMergeTree(" + store.QuoteString(q.spec.versionPath()) + ", '{shard}-{replica}')"
	}
	return `CREATE TABLE IF NOT EXISTS ` + table + on + ` (
		version_id Int64,
		is_applied UInt8,
		date Date DEFAULT now(),
		tstamp DateTime DEFAULT now()
	)
	ENGINE = ` + engine + `
	ORDER BY (version_id)`
}

func (querier) InsertVersion(table string) string {
	return `INSERT INTO ` + table + ` (version_id, is_applied) SELECT $1, $2`
}

func (querier) DeleteVersion(table string) string {
	return `ALTER TABLE ` + table + ` DELETE WHERE version_id = $1`
}

func (querier) GetMigrationByVersion(table string) string {
	return `SELECT tstamp, is_applied FROM ` + table + ` WHERE version_id = $1 ORDER BY tstamp DESC LIMIT 1`
}

func (querier) ListMigrations(table string) string {
	return `SELECT version_id, is_applied FROM ` + table + ` ORDER BY version_id DESC`
}

func (querier) GetLatestVersion(table string) string {
	return `SELECT max(version_id) FROM ` + table
}

func (querier) TableExists(table string) string {
	return `SELECT count() > 0 FROM system.tables WHERE database = currentDatabase() AND name = '` +
		strings.ReplaceAll(strings.ReplaceAll(table, `\`, `\\`), `'`, `\'`) + `'`
}

// versionStore is goose's SQL store on querier, whose Delete waits until the
// ALTER ... DELETE mutation is done, so that the next read of the version
// table sees it (mutations are asynchronous in ClickHouse).
type versionStore struct {
	database.Store
	poll time.Duration
	// replicated: the version table is replicated, and a replicated
	// mutation reaches system.mutations only once the replica has pulled it
	// from ZooKeeper, so Delete also waits until the row is gone.
	replicated bool
}

var _ database.StoreExtender = (*versionStore)(nil)

func newStore(spec *clusterSpec) (*versionStore, error) {
	s, err := database.NewStoreFromQuerier(VersionTable, querier{spec: spec})
	if err != nil {
		return nil, fmt.Errorf("migrations: version store: %w", err)
	}
	return &versionStore{Store: s, poll: 50 * time.Millisecond, replicated: spec != nil}, nil
}

func (s *versionStore) TableExists(ctx context.Context, db database.DBTxConn) (bool, error) {
	ext, ok := s.Store.(database.StoreExtender)
	if !ok {
		return false, errors.ErrUnsupported
	}
	return ext.TableExists(ctx, db)
}

func (s *versionStore) Delete(ctx context.Context, db database.DBTxConn, version int64) error {
	if err := s.Store.Delete(ctx, db, version); err != nil {
		return err
	}
	const pending = `SELECT count() FROM system.mutations WHERE database = currentDatabase() AND table = $1 AND is_done = 0`
	left := `SELECT count() FROM ` + VersionTable + ` WHERE version_id = $1`
	for {
		var n uint64
		if err := db.QueryRowContext(ctx, pending, VersionTable).Scan(&n); err != nil {
			return fmt.Errorf("wait for deletion of version %d: %w", version, err)
		}
		if n == 0 && s.replicated {
			if err := db.QueryRowContext(ctx, left, version).Scan(&n); err != nil {
				return fmt.Errorf("wait for deletion of version %d: %w", version, err)
			}
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for deletion of version %d: %w", version, ctx.Err())
		case <-time.After(s.poll):
		}
	}
}
