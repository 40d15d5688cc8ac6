package cli

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// RunContext returns the context a command runs in: cancelled on SIGINT or
// SIGTERM, and after d if d > 0. Call cancel when the command is done.
func RunContext(d time.Duration) (ctx context.Context, cancel context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if d <= 0 {
		return ctx, stop
	}
	ctx, cancelTimeout := context.WithTimeout(ctx, d)
	return ctx, func() { cancelTimeout(); stop() }
}
