package clickhouse_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/sinks"
	chsink "github.com/kaudit/kaudit/sinks/clickhouse"
	"github.com/kaudit/kaudit/store"
	"github.com/kaudit/kaudit/store/migrations"
)

// With Config.Distributed, a batch written through the Distributed tables
// of a cluster is on its shards when WriteBatch returns (even on a
// connection without the cluster's settings), and written again it is
// still there once.
func TestDistributedInsertsAreSynchronous(t *testing.T) {
	cfg := chtest.NewClusterDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := migrations.Up(ctx, cfg, nil); err != nil {
		t.Fatal(err)
	}
	plain := cfg
	plain.Cluster = "" // no insert_distributed_sync from the connection
	conn := chtest.Open(t, plain)
	sink := chsink.New(conn, chsink.Config{Database: cfg.Database, Distributed: true})
	vs := verdicts(rand.New(rand.NewPCG(3, 4)), 500)
	for round := range 2 {
		if err := sink.WriteBatch(ctx, &sinks.Batch{Verdicts: vs}); err != nil {
			t.Fatal(err)
		}
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+store.Table(cfg.Database, store.DeliveriesTable)+" FINAL").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != uint64(len(vs)) {
			t.Fatalf("round %d: %d rows right after WriteBatch, want %d", round, n, len(vs))
		}
	}
}
