// Package itest marks integration tests: tests that need a real server or
// client from outside Go (clickhouse-server, kcat, librdkafka, Python's
// confluent-kafka, Chromium, Prometheus...). They run in `make test` and are
// skipped by `make test-unit` (go test -short), which needs nothing but Go.
//
//	func TestAgainstClickHouse(t *testing.T) {
//		itest.Integration(t)
//		...
//	}
//
// An integration test that runs must never skip because something is
// missing: it fails, so `make test` cannot pass without testing.
package itest

import (
	"os/exec"
	"testing"
)

// Integration skips t under go test -short.
func Integration(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: skipped with -short (make test-unit)")
	}
}

// Need marks t as an integration test and fails it unless every named
// program is on PATH; it returns their paths in order.
func Need(t testing.TB, programs ...string) []string {
	t.Helper()
	Integration(t)
	paths := make([]string, len(programs))
	for i, p := range programs {
		path, err := exec.LookPath(p)
		if err != nil {
			t.Fatalf("integration test needs %s on PATH (make deps installs it): %v", p, err)
		}
		paths[i] = path
	}
	return paths
}
