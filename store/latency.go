package store

import (
	"math/bits"
	"strings"
)

// Latency histograms. The rollups keep, per minute, topic and group, a
// histogram of the known ack and end-to-end latencies (microseconds) as
// two arrays, bucket keys and counts, which sumMap merges over any set of
// rows and ClickHouse 18.16 and current releases compute alike. A
// quantile read from a histogram is the middle of the bucket holding the
// element quantileExact would return (the one at 0-based rank
// floor(level × count)), so it is within LatencyRelativeError of that
// element, and, as every step is integer arithmetic or an exactly
// corrected logarithm, it is the same on every ClickHouse version.
//
// Buckets are those of an HDR histogram with 8 significant bits: a value v
// below 256 is its own bucket (exact); above, with e = ⌊log2 v⌋ and shift
// s = e − 7, the bucket is [m·2^s, (m+1)·2^s) with m = v >> s in
// [128, 256), and its key is s·256 + m. Keys grow with the values. Values
// above 2^61 µs (73,000 years) share the top bucket.

// LatencyRelativeError bounds the relative error of a latency quantile read
// from the rollups, against quantileExact: half a bucket over the bucket's
// lower bound, 2^s/2 / (128·2^s).
const LatencyRelativeError = 1.0 / 256

// maxLatency is the largest latency the histograms tell apart.
const maxLatency = 1 << 61

// LatencyLevels are the quantile levels the rollup reads return, in
// order: p50, p90, p99, p99.9.
var LatencyLevels = []float64{0.5, 0.9, 0.99, 0.999}

const latencyLevelsSQL = "[0.5, 0.9, 0.99, 0.999]"

// LatencyBucket is the histogram key of a latency of us microseconds (≥ 0),
// as the rollups compute it in SQL.
func LatencyBucket(us int64) uint32 {
	v := uint64(min(max(us, 0), maxLatency))
	s := max(bits.Len64(v)-1-7, 0)
	return uint32(s*256) + uint32(v>>s)
}

// LatencyBucketValue is the value a quantile reads for a bucket: the middle
// of its range (the value itself below 256).
func LatencyBucketValue(key uint32) float64 {
	s := key / 256
	m := uint64(key % 256)
	return float64(m<<s) + float64((uint64(1)<<s)-1)/2
}

// latencyKey returns an SQL expression of type UInt32: the histogram key of
// the latency column col (Int64 microseconds), with helper aliases
// <prefix>_v, _e0, _s defined inside it (so that it can be the argument of
// an aggregate function: the rollups aggregate straight over deliveries,
// which on a cluster lets every shard aggregate its own rows). ⌊log2 v⌋
// comes from log2 and is corrected with exact integer comparisons, so a
// float rounding on either side of a power of two cannot move a value to
// another bucket. Values are clamped to 2^61 so that 2^(e+1) stays a
// positive Int64 (bitShiftLeft returns Int64 on 26.x).
func latencyKey(col, prefix string) string {
	return strings.NewReplacer("$c", col, "$p", prefix).Replace(
		`toUInt32((greatest(` +
			`(toInt64(log2(greatest(least(greatest($c, 0), toInt64(2305843009213693952)) AS $p_v, 1))) AS $p_e0)` +
			` - (bitShiftLeft(toUInt64(1), $p_e0) > $p_v) + (bitShiftLeft(toUInt64(1), $p_e0 + 1) <= $p_v) - 7, 0) AS $p_s)` +
			` * 256 + bitShiftRight($p_v, $p_s))`)
}

// LatencyQuantilesSQL returns an SQL expression of type Array(Float64): the
// LatencyLevels quantiles of the histogram hist, an expression of type
// Tuple(Array(UInt32), Array(UInt64)) such as
// "sumMap(e2e_hist_keys, e2e_hist_counts)". An empty histogram gives zeros:
// check the known count. Written for ClickHouse 18.16 as well: no t.1[i]
// subscripts, no aggregate inside a lambda (give the alias of a sumMap
// computed in a subquery), and the histogram passed to the lambda as an
// argument rather than captured (18.16 drops a subquery column that is
// only named inside lambdas).
func LatencyQuantilesSQL(hist string) string {
	return strings.NewReplacer("$h", hist, "$levels", latencyLevelsSQL).Replace(
		`arrayMap(lat_k -> bitShiftLeft(toUInt64(lat_k % 256), intDiv(lat_k, 256)) + (bitShiftLeft(toUInt64(1), intDiv(lat_k, 256)) - 1) / 2,
		arrayMap((lat_q, lat_h) -> arrayElement(tupleElement(lat_h, 1),
			arrayFirstIndex(lat_c -> lat_c > floor(lat_q * arraySum(tupleElement(lat_h, 2))), arrayCumSum(tupleElement(lat_h, 2)))),
			$levels, [$h, $h, $h, $h]))`)
}
