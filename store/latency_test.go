package store_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kaudit/kaudit/store"
)

// Every latency reads back within the error bound, values below 256 µs
// exactly, and keys grow with the values.
func TestLatencyBuckets(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	values := []int64{0, 1, 2, 127, 128, 255, 256, 257, 511, 512, 513, 1000, 1 << 20, 1<<20 - 1, 1<<20 + 1, 1 << 40, 1<<61 - 1, 1 << 61}
	for range 100_000 {
		values = append(values, int64(math.Exp(r.Float64()*40)))
	}
	worst := 0.0
	for _, v := range values {
		got := store.LatencyBucketValue(store.LatencyBucket(v))
		if v < 256 && got != float64(v) {
			t.Errorf("%d µs reads back as %v, want it exact", v, got)
		}
		rel := math.Abs(got-float64(v)) / math.Max(float64(v), 1)
		worst = max(worst, rel)
		if rel > store.LatencyRelativeError {
			t.Errorf("%d µs reads back as %v: relative error %.5f > %.5f", v, got, rel, store.LatencyRelativeError)
		}
		if store.LatencyBucket(v+1) < store.LatencyBucket(v) && v < 1<<61 {
			t.Errorf("bucket of %d (%d) below the bucket of %d (%d)", v+1, store.LatencyBucket(v+1), v, store.LatencyBucket(v))
		}
	}
	if store.LatencyBucket(-5) != 0 || store.LatencyBucket(math.MaxInt64) != store.LatencyBucket(1<<61) {
		t.Error("out-of-range latencies are not clamped")
	}
	t.Logf("largest relative error over %d values: %.4f%%", len(values), 100*worst)
}
