package demo

import (
	"fmt"
	"io"
	"time"

	"github.com/kaudit/kaudit/sinks"
	chsink "github.com/kaudit/kaudit/sinks/clickhouse"
)

// freshnessTarget is the demo's goal for the p99 of freshness.
const freshnessTarget = 3 * time.Second

// freshness is what the summary says about end-to-end freshness: per
// verdict, the time from the event that decided it to ClickHouse
// acknowledging the insert of its row (after which queries see it), as the
// sink records it for each batch it writes.
type freshness struct{ f *chsink.Freshness }

func newFreshness() *freshness { return &freshness{f: chsink.NewFreshness()} }

// observe is the sink's OnWritten hook.
func (f *freshness) observe(w sinks.Written[*chsink.Batch]) { f.f.Observe(w) }

// print writes the summary line.
func (f *freshness) print(out io.Writer) {
	n := f.f.Count()
	if n == 0 {
		fmt.Fprintf(out, "\nfreshness: no verdict written\n")
		return
	}
	p99 := f.f.Quantile(0.99)
	verdict := "within"
	if p99 > freshnessTarget {
		verdict = "OVER"
	}
	fmt.Fprintf(out, "\nfreshness (row visible in ClickHouse - deciding event time, %d verdicts): p50 %s, p99 %s, max %s; p99 %s the %s target\n",
		n, f.f.Quantile(0.5), p99, f.f.Quantile(1), verdict, freshnessTarget)
}
