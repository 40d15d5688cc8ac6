package chtest_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

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

// The test cluster: both nodes know both clusters, have their own macros,
// replicate through the ZooKeeper, and a killed node comes back with its
// data.
func TestCluster(t *testing.T) {
	c := chtest.StartCluster(t)
	ctx := context.Background()
	cfg := c.NewDatabase(t, chtest.ReplicatedCluster)
	for i := range chtest.ClusterNodes {
		conn := chtest.Open(t, store.Config{Addr: c.NodeAddr(i), Database: "default"})
		var layout string
		if err := conn.QueryRow(ctx, `SELECT arrayStringConcat(groupArray(concat(cluster, ':', toString(shard_num), '.', toString(replica_num))), ' ')
			FROM (SELECT * FROM system.clusters WHERE cluster LIKE 'kaudit_%' ORDER BY cluster, shard_num, replica_num)`).Scan(&layout); err != nil {
			t.Fatal(err)
		}
		if want := chtest.ReplicatedCluster + ":1.1 " + chtest.ReplicatedCluster + ":1.2 " + chtest.ShardedCluster + ":1.1 " + chtest.ShardedCluster + ":2.1"; layout != want {
			t.Errorf("node %d: clusters %q, want %q", i, layout, want)
		}
		var shard, replica string
		if err := conn.QueryRow(ctx, "SELECT anyIf(substitution, macro = 'shard'), anyIf(substitution, macro = 'replica') FROM system.macros").Scan(&shard, &replica); err != nil {
			t.Fatal(err)
		}
		if shard != fmt.Sprintf("%02d", i+1) || replica != fmt.Sprintf("n%d", i) {
			t.Errorf("node %d: macros shard %q replica %q", i, shard, replica)
		}
	}
	admin := chtest.Open(t, cfg)
	if err := admin.Exec(ctx, "CREATE TABLE t ON CLUSTER "+cfg.Cluster+" (x UInt32) ENGINE = ReplicatedMergeTree('/clickhouse/tables/test/"+cfg.Database+"/t', '{replica}') ORDER BY x"); err != nil {
		t.Fatal(err)
	}
	if err := admin.Exec(ctx, "INSERT INTO t SELECT number FROM system.numbers LIMIT 100"); err != nil {
		t.Fatal(err)
	}
	count := func(i int) (uint64, error) {
		conn, err := store.Open(ctx, store.Config{Addr: c.NodeAddr(i), Database: cfg.Database})
		if err != nil {
			return 0, err
		}
		defer conn.Close()
		var n uint64
		err = conn.QueryRow(ctx, "SELECT count() FROM t").Scan(&n)
		return n, err
	}
	waitCount := func(i int, want uint64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			n, err := count(i)
			if err == nil && n == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d: %d rows (%v), want %d", i, n, err, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitCount(1, 100) // replicated
	c.Kill(1)
	if _, err := count(1); err == nil {
		t.Fatal("node 1 answers after Kill")
	}
	c.Restart(t, 1)
	waitCount(1, 100)
}

// TestWithUserAndNamedDatabase: User logs in with WithUser's password and
// with no other; NewNamedDatabase gives the named database, empty.
func TestWithUserAndNamedDatabase(t *testing.T) {
	ctx := context.Background()
	cfg := chtest.NewNamedDatabase(t, "kaudit_chtest_named")
	conn := chtest.Open(t, chtest.WithUser(t, cfg))
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ?", cfg.Database).Scan(&n); err != nil || n != 0 {
		t.Errorf("the named database has %d tables (%v), want a new empty one", n, err)
	}
	bad := chtest.WithUser(t, cfg)
	bad.Password += "x"
	if c, err := store.Open(ctx, bad); err == nil {
		_ = c.Close()
		t.Errorf("user %s logged in with a wrong password", bad.User)
	}
}
