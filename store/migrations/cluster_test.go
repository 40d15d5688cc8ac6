package migrations_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/pressly/goose/v3"

	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/store"
	"github.com/kaudit/kaudit/store/migrations"
)

// productTables are the tables kaudit reads and writes.
var productTables = []string{store.EventsTable, store.DeliveriesTable, store.RollupTable, store.AdminAuditTable, store.ClientTrafficTable, store.LagTable}

// nodeConns connects to each node of the cluster alone.
func nodeConns(t *testing.T, c *chtest.Cluster, db string) []driver.Conn {
	t.Helper()
	var out []driver.Conn
	for i := range chtest.ClusterNodes {
		out = append(out, chtest.Open(t, store.Config{Addr: c.NodeAddr(i), Database: db}))
	}
	return out
}

// versions returns how often each version is recorded as applied in the
// version table of one node.
func versions(t *testing.T, conn driver.Conn) map[int64]int {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT version_id FROM "+migrations.VersionTable+" WHERE is_applied = 1 AND version_id > 0")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]int{}
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out[v]++
	}
	return out
}

// checkClusterSchema checks every node: each product table is a
// Distributed table over a Replicated*MergeTree <table>_local with the
// same columns, and the version table is replicated and records each
// migration once.
func checkClusterSchema(t *testing.T, conns []driver.Conn, db string, want int) {
	t.Helper()
	for i, conn := range conns {
		tbl := tables(t, conn, db)
		for _, name := range productTables {
			local := name + store.LocalSuffix
			if tbl[name] != "Distributed" || !strings.HasPrefix(tbl[local], "Replicated") || !strings.HasSuffix(tbl[local], "MergeTree") {
				t.Errorf("node %d: %s is %q, %s is %q; want Distributed over Replicated*MergeTree", i, name, tbl[name], local, tbl[local])
			}
			if a, b := columns(t, conn, db, name), columns(t, conn, db, local); a != b || a == "" {
				t.Errorf("node %d: %s has columns %s, %s has %s", i, name, a, local, b)
			}
		}
		if tbl[migrations.VersionTable] != "ReplicatedMergeTree" {
			t.Errorf("node %d: version table is %q, want ReplicatedMergeTree", i, tbl[migrations.VersionTable])
		}
		// Replication is asynchronous: wait for the versions to arrive.
		deadline := time.Now().Add(30 * time.Second)
		for {
			v := versions(t, conn)
			once := len(v) == want
			for _, n := range v {
				once = once && n == 1
			}
			if once {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("node %d: versions %v, want %d versions recorded once each", i, v, want)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func columns(t *testing.T, conn driver.Conn, db, table string) string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT name, type FROM system.columns WHERE database = ? AND table = ? ORDER BY name", db, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var n, typ string
		if err := rows.Scan(&n, &typ); err != nil {
			t.Fatal(err)
		}
		b.WriteString(n + ":" + typ + " ")
	}
	return b.String()
}

// On a cluster Up creates the database and the schema ON CLUSTER: every
// node has the Distributed and the replicated local tables, the version
// table is one replicated table recording each version once, and Up again
// changes nothing.
func TestUpOnCluster(t *testing.T) {
	c := chtest.SharedCluster(t)
	cfg := c.NewDatabase(t, chtest.ShardedCluster)
	cfg.Database += "_new" // Up creates it on every node
	admin := chtest.Open(t, store.Config{Addr: c.Addr(), Database: "default", Cluster: cfg.Cluster})
	t.Cleanup(func() {
		_ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+store.QuoteIdent(cfg.Database)+cfg.Schema().OnCluster())
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	began := time.Now()
	if err := migrations.Up(ctx, cfg, nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("Up on the cluster took %s", time.Since(began).Round(time.Millisecond))
	conns := nodeConns(t, c, cfg.Database)
	checkClusterSchema(t, conns, cfg.Database, migrationCount(t))
	if err := migrations.Up(ctx, cfg, nil); err != nil {
		t.Fatalf("second Up: %v", err)
	}
	checkClusterSchema(t, conns, cfg.Database, migrationCount(t))
	st, err := migrations.Status(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.State != goose.StateApplied {
			t.Errorf("%s is %s", s.Source.Path, s.State)
		}
	}
}

// A node that is down while migrations run gets the statements from the
// distributed DDL queue when it is back, and running Up again then
// completes the migration without error (every statement is idempotent);
// each version is recorded once.
func TestUpOnClusterWithANodeDown(t *testing.T) {
	c := chtest.StartCluster(t)
	cfg := c.NewDatabase(t, chtest.ShardedCluster)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := migrations.Up(ctx, cfg, nil); err != nil {
		t.Fatal(err)
	}
	n := migrationCount(t)
	for range 2 { // the last two migrations: proxy tables
		if err := migrations.Down(ctx, cfg, nil); err != nil {
			t.Fatal(err)
		}
	}
	st, err := migrations.Status(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range st {
		if want := map[bool]goose.State{true: goose.StatePending, false: goose.StateApplied}[i >= n-2]; s.State != want {
			t.Errorf("after two downs %s is %s, want %s", s.Source.Path, s.State, want)
		}
	}
	c.Kill(1)
	down := cfg
	down.DDLTimeout = 2 * time.Second
	err = migrations.Up(ctx, down, nil)
	if err == nil {
		t.Fatal("Up with a node down succeeded")
	}
	t.Logf("Up with node 1 down: %v", err)
	c.Restart(t, 1)
	if err := migrations.Up(ctx, cfg, nil); err != nil {
		t.Fatalf("Up after the node is back: %v", err)
	}
	checkClusterSchema(t, nodeConns(t, c, cfg.Database), cfg.Database, n)
}
