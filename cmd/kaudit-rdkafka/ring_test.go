//go:build rdkafka

package main_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRingWakeAfterClose runs testdata/ringrace.c: librdkafka threads push
// to a ring (one waking its reader is held between the ring's mutex and
// the eventfd write) while the ring is closed and its reader exits and
// closes its descriptor, whose number the application reuses at once. No
// push may write into the reused descriptor.
func TestRingWakeAfterClose(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "ringrace")
	if out, err := exec.Command("gcc", "-O1", "-Wall", "-pthread", "-DKAUDIT_TEST_PUSH_WAKE_DELAY_US=300",
		"-o", bin, "testdata/ringrace.c", "ring.c").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	r := runCmd(t, time.Minute, "", bin, "200")
	if r.err != nil || !strings.HasPrefix(r.stdout, "0 of 200 rounds") {
		t.Fatalf("ringrace: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
}
