package demo

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/sinks"
	chsink "github.com/kaudit/kaudit/sinks/clickhouse"
)

// The summary line gives the p99 of what the sink observed and says
// whether it meets the target.
func TestFreshnessSummary(t *testing.T) {
	for _, tc := range []struct {
		lag  time.Duration
		want string
	}{{800 * time.Millisecond, "p99 801ms, max 801ms; p99 within the 3s target"}, {4 * time.Second, "p99 4.001s, max 4.001s; p99 OVER the 3s target"}} {
		f := newFreshness()
		at := time.Unix(5000, 0)
		b := chsink.NewBatch()
		for range 10 {
			b.AddVerdict(&codecs.Verdict{DecidedNs: at.Add(-tc.lag).UnixNano()})
		}
		f.observe(sinks.Written[*chsink.Batch]{Batch: b, Records: b.Len(), At: at})
		var out bytes.Buffer
		f.print(&out)
		if !strings.Contains(out.String(), "10 verdicts") || !strings.Contains(out.String(), tc.want) {
			t.Errorf("summary %q, want %q", out.String(), tc.want)
		}
	}
}
