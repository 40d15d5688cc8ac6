package conformance_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/processors/correlator"
	"github.com/kaudit/kaudit/sinks"
	chsink "github.com/kaudit/kaudit/sinks/clickhouse"
	"github.com/kaudit/kaudit/store"
	"github.com/kaudit/kaudit/store/migrations"

	"github.com/kaudit/kaudit/internal/testing/chtest"
)

// The rollups' SQL puts every latency in the bucket store.LatencyBucket
// names, on both engines, also next to every power of two (where a
// floating-point log2 could round to the wrong side) and at the extremes.
func TestHistogramBucketsOnBothEngines(t *testing.T) {
	var values []int64
	for e := 0; e < 63; e++ {
		p := int64(1) << e
		values = append(values, p-1, p, p+1)
	}
	values = append(values, math.MaxInt64, 1000, 999_999, 123_456_789)
	want := map[uint32]uint64{}
	var vs []codecs.Verdict
	at := time.Now().UTC().Truncate(time.Minute).Add(-5 * time.Minute)
	for i, v := range values {
		want[store.LatencyBucket(v)]++
		vs = append(vs, codecs.Verdict{CorrelationID: fmt.Sprint("b-", i), Topic: "t", Group: "g", Status: codecs.StatusDelivered,
			Seq: 1, AckLatencyUs: v, E2ELatencyUs: -1, FirstSeenNs: at.UnixNano(), DecidedNs: at.UnixNano()})
	}
	for _, e := range chtest.Engines() {
		t.Run(e.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cfg := e.NewDatabase(t)
			if err := migrations.Up(ctx, cfg, nil); err != nil {
				t.Fatal(err)
			}
			conn := chtest.Open(t, cfg)
			if err := chsink.New(conn, chsink.Config{Database: cfg.Database}).WriteBatch(ctx, &sinks.Batch{Verdicts: vs}); err != nil {
				t.Fatal(err)
			}
			if _, err := store.NewRefresher(conn, store.RefresherConfig{Database: cfg.Database, Cluster: cfg.Cluster}).Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			var keys []uint32
			var counts []uint64
			var known uint64
			if err := conn.QueryRow(ctx, "SELECT ack_hist_keys, ack_hist_counts, ack_known FROM "+
				store.Table(cfg.Database, store.RollupTable)+" FINAL").Scan(&keys, &counts, &known); err != nil {
				t.Fatal(err)
			}
			if known != uint64(len(values)) || len(keys) != len(counts) {
				t.Fatalf("%d known, %d keys, %d counts; want %d known", known, len(keys), len(counts), len(values))
			}
			got := map[uint32]uint64{}
			for i, k := range keys {
				got[k] = counts[i]
				if i > 0 && keys[i-1] >= k {
					t.Errorf("keys not ascending at %d: %d, %d", i, keys[i-1], k)
				}
			}
			for k, n := range want {
				if got[k] != n {
					t.Errorf("bucket %d: %d latencies in SQL, %d by store.LatencyBucket", k, got[k], n)
				}
			}
			for k, n := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("bucket %d: %d latencies in SQL, none by store.LatencyBucket", k, n)
				}
			}
		})
	}
}

// The rollups count the correlator's audit-gap cause.
func TestAuditGapCauseIsTheCorrelators(t *testing.T) {
	if store.CauseAuditGap != correlator.CauseAuditGap {
		t.Errorf("store.CauseAuditGap %q, the correlator writes %q", store.CauseAuditGap, correlator.CauseAuditGap)
	}
}
