// Package migrations holds kaudit's ClickHouse schema as numbered goose
// migrations (embedded SQL files) and applies them with goose v3.
//
//	cfg := store.Config{Addr: "127.0.0.1:9000", Database: "kaudit"}
//	if err := migrations.Up(ctx, cfg, log); err != nil {
//		return err
//	}
//
// Up creates the database when it is missing and applies what is pending;
// running it again is a no-op. The tables are events (raw audit events) and
// deliveries (one row per message and consumer group, latest verdict wins).
// The SQL runs on ClickHouse 18.16 and on modern releases.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/pressly/goose/v3"
	"github.com/sethvargo/go-retry"

	"github.com/kaudit/kaudit/store"
)

//go:embed *.sql
var files embed.FS

// FS returns the embedded migration files.
func FS() fs.FS { return files }

// Up creates cfg.Database if it does not exist and applies the pending
// migrations in it.
func Up(ctx context.Context, cfg store.Config, log *slog.Logger) error {
	cfg = cfg.WithDefaults()
	log = orDiscard(log)
	if err := createDatabase(ctx, cfg); err != nil {
		return err
	}
	p, err := newProvider(ctx, cfg)
	if err != nil {
		return err
	}
	defer p.Close()
	res, err := p.Up(ctx)
	for _, r := range res {
		if r.Error == nil {
			log.Info("applied migration", "database", cfg.Database, "migration", filepath.Base(r.Source.Path), "took", r.Duration)
		}
	}
	if err != nil {
		return fmt.Errorf("migrations: up in %s: %w", cfg.Database, err)
	}
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		return fmt.Errorf("migrations: read version of %s: %w", cfg.Database, err)
	}
	log.Info("clickhouse schema up to date", "database", cfg.Database, "version", v, "applied", len(res))
	return nil
}

// Down rolls the most recent migration of cfg.Database back.
func Down(ctx context.Context, cfg store.Config, log *slog.Logger) error {
	cfg = cfg.WithDefaults()
	log = orDiscard(log)
	p, err := newProvider(ctx, cfg)
	if err != nil {
		return err
	}
	defer p.Close()
	r, err := p.Down(ctx)
	if err != nil {
		return fmt.Errorf("migrations: down in %s: %w", cfg.Database, err)
	}
	log.Info("rolled back migration", "database", cfg.Database, "migration", filepath.Base(r.Source.Path), "took", r.Duration)
	return nil
}

// Status reports every migration and whether it is applied in
// cfg.Database.
func Status(ctx context.Context, cfg store.Config) ([]*goose.MigrationStatus, error) {
	cfg = cfg.WithDefaults()
	p, err := newProvider(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrations: status of %s: %w", cfg.Database, err)
	}
	return st, nil
}

// createDatabase creates cfg.Database. A connection lost on the way (a
// node restarting, a server closing the connection while it waits on
// ZooKeeper for ON CLUSTER) is tried again, four times at most: the
// statement is idempotent. Errors the server reports are not.
func createDatabase(ctx context.Context, cfg store.Config) error {
	b := retry.WithMaxRetries(4, retry.NewExponential(500*time.Millisecond))
	return retry.Do(ctx, b, func(ctx context.Context) error {
		err := createDatabaseOnce(ctx, cfg)
		var exc *clickhouse.Exception
		if err != nil && !errors.As(err, &exc) {
			return retry.RetryableError(err)
		}
		return err
	})
}

func createDatabaseOnce(ctx context.Context, cfg store.Config) error {
	admin := cfg
	admin.Database = "default"
	conn, err := store.Open(ctx, admin)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	defer conn.Close()
	if cfg.Cluster != "" {
		// ON CLUSTER waits for every node: skip it when the database is
		// there (a sink restarting while a node is down must not wait).
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = ?", cfg.Database).Scan(&n); err != nil {
			return fmt.Errorf("migrations: look for database %s: %w", cfg.Database, err)
		}
		if n > 0 {
			return nil
		}
	}
	q := "CREATE DATABASE IF NOT EXISTS " + store.QuoteIdent(cfg.Database) + cfg.Schema().OnCluster()
	if err := conn.Exec(ctx, q); err != nil {
		return fmt.Errorf("migrations: create database %s: %w", cfg.Database, err)
	}
	return nil
}

// newProvider returns a goose provider on cfg.Database; closing it closes
// its database handle.
func newProvider(ctx context.Context, cfg store.Config) (*goose.Provider, error) {
	db, err := openDB(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var fsys fs.FS = files
	var spec *clusterSpec
	if cfg.Cluster != "" {
		s, err := newClusterSpec(ctx, db, cfg)
		if err != nil {
			_ = db.Close()
			return nil, err
		}
		spec, fsys = &s, clusterFS{base: files, spec: s}
	}
	st, err := newStore(spec)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	p, err := goose.NewProvider(goose.DialectCustom, db, fsys,
		goose.WithStore(st),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("migrations: goose: %w", err)
	}
	return p, nil
}

// openDB opens goose's handle on cfg.
func openDB(ctx context.Context, cfg store.Config) (*sql.DB, error) {
	if cfg.Cluster == "" {
		db, err := store.OpenDB(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("migrations: %w", err)
		}
		return db, nil
	}
	opts := cfg.Options()
	// The version table is replicated, and replicated tables drop an
	// inserted block identical to a recent one: a version applied, rolled
	// back and applied again within a second would not be recorded the
	// second time.
	opts.Settings["insert_deduplicate"] = 0
	db := clickhouse.OpenDB(opts)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("migrations: ping %s (database %q, user %q): %w", cfg.Addr, cfg.Database, cfg.User, err)
	}
	return db, nil
}

// newClusterSpec describes cfg's cluster. Without Config.ReplicaPath the
// path depends on the database's engine: Atomic databases (the default of
// ClickHouse 20.10 and later) keep a dropped table until later, so a table
// recreated at once needs a new path ({uuid}); 18.16's Ordinary databases
// drop at once, and have no {uuid}.
func newClusterSpec(ctx context.Context, db *sql.DB, cfg store.Config) (clusterSpec, error) {
	s := clusterSpec{database: cfg.Database, cluster: cfg.Cluster, replicaPath: cfg.ReplicaPath}
	var n uint64
	if err := db.QueryRowContext(ctx, "SELECT count() FROM system.clusters WHERE cluster = ?", cfg.Cluster).Scan(&n); err != nil {
		return s, fmt.Errorf("migrations: look for cluster %s: %w", cfg.Cluster, err)
	}
	if n == 0 {
		return s, fmt.Errorf("migrations: the server at %s has no cluster %q in its remote_servers", cfg.Addr, cfg.Cluster)
	}
	if s.replicaPath == "" {
		var engine string
		if err := db.QueryRowContext(ctx, "SELECT engine FROM system.databases WHERE name = ?", cfg.Database).Scan(&engine); err != nil {
			return s, fmt.Errorf("migrations: engine of database %s: %w", cfg.Database, err)
		}
		s.replicaPath = store.DefaultReplicaPath
		if engine == "Atomic" {
			s.replicaPath = store.DefaultReplicaPathUUID
		}
	}
	return s, nil
}

func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
