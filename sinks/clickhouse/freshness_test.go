package clickhouse_test

import (
	"testing"
	"time"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/sinks"
	chsink "github.com/kaudit/kaudit/sinks/clickhouse"
)

func TestFreshnessQuantiles(t *testing.T) {
	f := chsink.NewFreshness()
	if f.Quantile(0.99) != 0 {
		t.Fatal("quantile of nothing")
	}
	at := time.Unix(1000, 0)
	b := chsink.NewBatch()
	// 100 verdicts decided 1..100 ms before the insert was acknowledged,
	// and one from the future (a skewed clock), counted as 0.
	for i := 1; i <= 100; i++ {
		b.AddVerdict(&codecs.Verdict{DecidedNs: at.Add(-time.Duration(i) * time.Millisecond).UnixNano()})
	}
	b.AddVerdict(&codecs.Verdict{DecidedNs: at.Add(time.Second).UnixNano()})
	b.AddEvent(&sinks.EventRecord{})
	f.Observe(sinks.Written[*chsink.Batch]{Batch: b, Records: b.Len(), At: at})
	if n := f.Count(); n != 101 {
		t.Fatalf("count %d, want the 101 verdicts (not the event)", n)
	}
	for q, want := range map[float64]time.Duration{0.5: 50 * time.Millisecond, 0.99: 100 * time.Millisecond, 1: 101 * time.Millisecond} {
		// Millisecond buckets, rounded up: the 51st of 101 values is 50 ms
		// (bucket [50, 51) ms reported as 51 ms).
		if got := f.Quantile(q); got < want || got > want+time.Millisecond {
			t.Errorf("p%v = %s, want %s (+1ms)", q*100, got, want)
		}
	}
}
