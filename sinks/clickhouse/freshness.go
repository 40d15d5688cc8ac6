package clickhouse

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kaudit/kaudit/sinks"
)

// Freshness measures how long verdicts take to become visible in
// ClickHouse: for each verdict written, the time from the event that decided
// it (Verdict.DecidedNs, the correlator's event time) to ClickHouse's
// acknowledgement of the INSERT holding it, after which queries see the row.
// (inserted_at has whole seconds, too coarse for this.) Use Observe as the
// runner's OnWritten hook. Both clocks must agree: on one machine, or with
// NTP (negative values count as 0).
type Freshness struct {
	mu     sync.Mutex
	counts []uint64 // by millisecond; the last one holds everything above
	n      uint64
	hist   prometheus.Histogram
}

// freshnessMaxMs is the range of Freshness's millisecond counts; longer
// times are counted as that.
const freshnessMaxMs = 120_000

// NewFreshness returns an empty Freshness.
func NewFreshness() *Freshness {
	return &Freshness{
		counts: make([]uint64, freshnessMaxMs+1),
		hist: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kaudit_sink_verdict_freshness_seconds",
			Help:    "Time from the event that decided a verdict to ClickHouse acknowledging the insert of its row.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300},
		}),
	}
}

// Observe records the verdicts of a written batch (sinks.Config.OnWritten).
func (f *Freshness) Observe(w sinks.Written[*Batch]) {
	at := w.At.UnixNano()
	decided := w.Batch.DecidedNs()
	if len(decided) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range decided {
		ns := max(at-d, 0)
		f.counts[min(ns/int64(time.Millisecond), freshnessMaxMs)]++
		f.hist.Observe(float64(ns) / 1e9)
	}
	f.n += uint64(len(decided))
}

// Count is the number of verdicts observed.
func (f *Freshness) Count() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// Quantile returns the q-quantile (0 < q ≤ 1) of the times observed, to the
// millisecond (rounded up), or 0 if none was.
func (f *Freshness) Quantile(q float64) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		return 0
	}
	rank := uint64(q*float64(f.n) + 0.999999)
	rank = min(max(rank, 1), f.n)
	var seen uint64
	for ms, c := range f.counts {
		if seen += c; seen >= rank {
			return time.Duration(ms+1) * time.Millisecond
		}
	}
	return freshnessMaxMs * time.Millisecond
}

// Collector exports the histogram kaudit_sink_verdict_freshness_seconds.
func (f *Freshness) Collector() prometheus.Collector { return f.hist }
