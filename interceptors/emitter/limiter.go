package emitter

import (
	"sync/atomic"
	"time"
)

// logLimiter lets at most one log line through per interval and counts the
// occurrences it held back, so a failing audit cluster costs one log line
// per interval instead of one per event.
type logLimiter struct {
	every      time.Duration
	next       atomic.Int64 // unix ns before which nothing is logged
	suppressed atomic.Uint64
}

// allow reports whether a line may be logged at now; when it may, it also
// returns how many occurrences were suppressed since the last line.
func (l *logLimiter) allow(now time.Time) (bool, uint64) {
	ns := now.UnixNano()
	next := l.next.Load()
	if ns < next || !l.next.CompareAndSwap(next, ns+int64(l.every)) {
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.suppressed.Swap(0)
}
