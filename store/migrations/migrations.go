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
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"

	"github.com/pressly/goose/v3"

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

func createDatabase(ctx context.Context, cfg store.Config) error {
	admin := cfg
	admin.Database = "default"
	conn, err := store.Open(ctx, admin)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	defer conn.Close()
	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+store.QuoteIdent(cfg.Database)); err != nil {
		return fmt.Errorf("migrations: create database %s: %w", cfg.Database, err)
	}
	return nil
}

// newProvider returns a goose provider on cfg.Database; closing it closes
// its database handle.
func newProvider(ctx context.Context, cfg store.Config) (*goose.Provider, error) {
	st, err := newStore()
	if err != nil {
		return nil, err
	}
	db, err := store.OpenDB(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectCustom, db, files,
		goose.WithStore(st),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("migrations: goose: %w", err)
	}
	return p, nil
}

func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
