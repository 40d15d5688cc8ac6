package chtest_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/store"
)

func TestMain(m *testing.M) { chtest.Main(m) }

func TestStartShared(t *testing.T) {
	a := chtest.Start(t)
	b := chtest.Start(t)
	if os.Getenv(chtest.EnvAddr) == "" && a != b {
		t.Errorf("under Main, Start returned two servers: %s and %s", a.Addr(), b.Addr())
	}
	conn := chtest.Open(t, store.Config{Addr: a.Addr(), Database: "default"})
	var one uint8
	if err := conn.QueryRow(context.Background(), "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1: %d, %v", one, err)
	}
}

func TestNewDatabaseIsDroppedAfterTest(t *testing.T) {
	srv := chtest.Start(t)
	admin := chtest.Open(t, store.Config{Addr: srv.Addr(), Database: "default"})
	ctx := context.Background()
	exists := func(name string) bool {
		t.Helper()
		var n uint64
		if err := admin.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = ?", name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}

	var names []string
	t.Run("inner", func(t *testing.T) {
		for range 2 {
			cfg := chtest.NewDatabase(t)
			names = append(names, cfg.Database)
			if cfg.Addr != srv.Addr() {
				t.Errorf("NewDatabase points at %s, server is %s", cfg.Addr, srv.Addr())
			}
			if !exists(cfg.Database) {
				t.Errorf("database %s does not exist during the test", cfg.Database)
			}
			// The config must be usable as is.
			conn := chtest.Open(t, cfg)
			if err := conn.Exec(ctx, "CREATE TABLE t (x UInt8) ENGINE = MergeTree ORDER BY x"); err != nil {
				t.Fatal(err)
			}
		}
	})
	if len(names) != 2 || names[0] == names[1] {
		t.Fatalf("NewDatabase gave names %v, want two distinct", names)
	}
	for _, n := range names {
		if exists(n) {
			t.Errorf("database %s still exists after its test", n)
		}
	}
}

// Each engine's database is on the ClickHouse version it names.
func TestEngines(t *testing.T) {
	for _, e := range chtest.Engines() {
		t.Run(e.Name, func(t *testing.T) {
			cfg := e.NewDatabase(t)
			conn := chtest.Open(t, cfg)
			var version, db string
			if err := conn.QueryRow(context.Background(), "SELECT version(), currentDatabase()").Scan(&version, &db); err != nil {
				t.Fatal(err)
			}
			major := strings.SplitN(version, ".", 2)[0]
			if os.Getenv(chtest.EnvAddr) == "" && major != strings.SplitN(e.Name, ".", 2)[0] || db != cfg.Database {
				t.Errorf("engine %s: version %s, database %s (want %s)", e.Name, version, db, cfg.Database)
			}
		})
	}
}
