// Package hookutil holds what the client adapters (kgoaudit, saramaaudit)
// share: finding the correlation ID header, converting times, and turning a
// panic in a hook into a count and a rate-limited log line.
package hookutil

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/kaudit/kaudit/audit"
)

// Index returns the index of the first header of hs whose key (as key
// reads it) is audit.CorrelationHeader, or -1.
func Index[H any, K ~string | ~[]byte](hs []H, key func(*H) K) int {
	for i := range hs {
		if string(key(&hs[i])) == audit.CorrelationHeader {
			return i
		}
	}
	return -1
}

// UnixNano is t in Unix nanoseconds, 0 for the zero time (unknown).
func UnixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// Guard counts recovered panics. Its zero value is ready (it logs nothing
// until Log is set); Log must not change once the hooks run.
type Guard struct {
	// Log receives the 1st, 2nd, 4th, 8th... panic at Error, with Msg.
	Log *slog.Logger
	// Msg is the log message, e.g. "kaudit: recovered panic in franz-go audit hook".
	Msg    string
	panics atomic.Uint64
}

// Recover must be deferred directly (defer g.Recover()): it recovers a
// panic of the deferring function, counts it and logs it, so that auditing
// never takes the application down.
func (g *Guard) Recover() {
	if v := recover(); v != nil {
		n := g.panics.Add(1)
		if n&(n-1) == 0 && g.Log != nil {
			g.Log.Error(g.Msg, "panic", v, "panics_total", n)
		}
	}
}

// Panics is the number of panics recovered.
func (g *Guard) Panics() uint64 { return g.panics.Load() }
