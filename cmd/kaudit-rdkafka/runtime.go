//go:build rdkafka

package main

import (
	"os"
	"runtime"
)

// The plugin's Go runtime does the audit work of every client in the
// process: reading the rings, encoding and producing the events. One core
// is plenty for that (about 1µs per event) and leaves the others to the
// application; with more, the Go scheduler spends CPU spinning between the
// few goroutines that hand events to each other (measured: ~0.3µs per
// event more with two). The GOMAXPROCS environment variable overrides it.
func init() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}
