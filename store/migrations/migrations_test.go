package migrations_test

import (
	"context"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/pressly/goose/v3"

	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/store"
	"github.com/kaudit/kaudit/store/migrations"
)

func TestMain(m *testing.M) { chtest.Main(m) }

// migrationCount is the number of migration files shipped.
func migrationCount(t *testing.T) int {
	t.Helper()
	m, err := fs.Glob(migrations.FS(), "*.sql")
	if err != nil || len(m) == 0 {
		t.Fatalf("no embedded migrations (%v)", err)
	}
	return len(m)
}

func tables(t *testing.T, conn driver.Conn, db string) map[string]string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT name, engine FROM system.tables WHERE database = ?", db)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]string{}
	for rows.Next() {
		var name, engine string
		if err := rows.Scan(&name, &engine); err != nil {
			t.Fatal(err)
		}
		got[name] = engine
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestUpCreatesDatabaseAndIsIdempotent(t *testing.T) {
	srv := chtest.Start(t)
	admin := chtest.Open(t, store.Config{Addr: srv.Addr(), Database: "default"})
	cfg := chtest.NewDatabase(t)
	cfg.Database += "_new" // does not exist yet: Up must create it
	t.Cleanup(func() {
		_ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+store.QuoteIdent(cfg.Database))
	})

	// A hanging version-table write (INSERT ... VALUES on 18.16) must
	// show up as a failure, not as a stuck test.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := migrations.Up(ctx, cfg, nil); err != nil {
		t.Fatal(err)
	}

	got := tables(t, admin, cfg.Database)
	for name, engine := range map[string]string{
		"events":                "ReplacingMergeTree",
		"deliveries":            "ReplacingMergeTree",
		migrations.VersionTable: "MergeTree",
	} {
		if got[name] != engine {
			t.Errorf("table %s: engine %q, want %q (tables: %v)", name, got[name], engine, got)
		}
	}

	versionRows := func() uint64 {
		var n uint64
		q := "SELECT count() FROM " + store.Table(cfg.Database, migrations.VersionTable)
		if err := admin.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// goose writes version 0 and one row per migration.
	want := uint64(migrationCount(t) + 1)
	if n := versionRows(); n != want {
		t.Fatalf("version table has %d rows after Up, want %d", n, want)
	}

	if err := migrations.Up(ctx, cfg, nil); err != nil {
		t.Fatalf("second Up: %v", err)
	}
	if n := versionRows(); n != want {
		t.Errorf("version table has %d rows after a second Up, want still %d", n, want)
	}

	st, err := migrations.Status(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != migrationCount(t) {
		t.Fatalf("Status lists %d migrations, want %d", len(st), migrationCount(t))
	}
	for _, s := range st {
		if s.State != goose.StateApplied {
			t.Errorf("%s: state %s after Up", s.Source.Path, s.State)
		}
	}
}

func TestDownThenUp(t *testing.T) {
	cfg := chtest.NewDatabase(t)
	admin := chtest.Open(t, store.Config{Addr: cfg.Addr, Database: "default"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := migrations.Up(ctx, cfg, nil); err != nil {
		t.Fatal(err)
	}
	st, err := migrations.Status(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	last := st[len(st)-1]
	before := schema(t, admin, cfg.Database)

	if err := migrations.Down(ctx, cfg, nil); err != nil {
		t.Fatal(err)
	}
	st, err = migrations.Status(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		want := goose.StateApplied
		if s.Source.Version == last.Source.Version {
			want = goose.StatePending
		}
		if s.State != want {
			t.Errorf("after Down: %s is %s, want %s", s.Source.Path, s.State, want)
		}
	}
	// The rolled-back migration's schema change is gone, and Up brings
	// the schema back exactly.
	if after := schema(t, admin, cfg.Database); after == before {
		t.Errorf("Down of %s left the schema unchanged", last.Source.Path)
	}
	if err := migrations.Up(ctx, cfg, nil); err != nil {
		t.Fatal(err)
	}
	if again := schema(t, admin, cfg.Database); again != before {
		t.Errorf("schema after Down and Up differs:\nbefore %s\nafter  %s", before, again)
	}
}

// schema describes every table and column of db (except goose's table).
func schema(t *testing.T, conn driver.Conn, db string) string {
	t.Helper()
	rows, err := conn.Query(context.Background(),
		"SELECT table, name, type FROM system.columns WHERE database = ? AND table != 'goose_db_version' ORDER BY table, name", db)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var tbl, name, typ string
		if err := rows.Scan(&tbl, &name, &typ); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s.%s:%s ", tbl, name, typ)
	}
	return b.String()
}
