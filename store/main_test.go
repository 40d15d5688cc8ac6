package store_test

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/sinks"
	chsink "github.com/kaudit/kaudit/sinks/clickhouse"
	"github.com/kaudit/kaudit/store"
)

func TestMain(m *testing.M) { chtest.Main(m) }

// setup returns a connection to a migrated database of the test's own, its
// name, and a sink writing into it.
func setup(t *testing.T) (driver.Conn, string, *chsink.Sink) {
	t.Helper()
	cfg, conn := chtest.Migrated(t)
	return conn, cfg.Database, chsink.New(conn, chsink.Config{Database: cfg.Database})
}

func write(t *testing.T, s *chsink.Sink, b *sinks.Batch) {
	t.Helper()
	if err := s.WriteBatch(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

var base = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// quantile is ClickHouse's quantileExact: the element at 0-based rank
// floor(level*n) of the sorted values.
func quantile(xs []float64, level float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(int(level*float64(len(s))), len(s)-1)]
}

// within says whether a latency quantile read from the rollups is within
// their relative error bound of the exact one.
func within(got, exact float64) bool {
	if math.IsNaN(got) || math.IsNaN(exact) {
		return math.IsNaN(got) && math.IsNaN(exact)
	}
	return math.Abs(got-exact) <= store.LatencyRelativeError*math.Abs(exact)+1e-9
}

func near(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= 1e-6*math.Max(1, math.Abs(b))
}
