package main_test

import (
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
)

// Invalid values are refused at start with a message naming the flag, not
// replaced by defaults.
func TestInvalidFlagsAreRejected(t *testing.T) {
	bin := binary(t, "kaudit-sink")
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"--batch.size=-5"}, "", "--batch.size must be at least 1, got -5"},
		{nil, "KAUDIT_BATCH_SIZE=-5", "--batch.size must be at least 1, got -5"},
		{[]string{"--batch.size", "0"}, "", "--batch.size must be at least 1, got 0"},
		{[]string{"--flush.interval", "0"}, "", "--flush.interval must be positive, got 0s"},
		{[]string{"--flush.interval=-1s"}, "", "--flush.interval must be positive, got -1s"},
		{[]string{"--max.in.flight", "0"}, "", "--max.in.flight must be at least 1, got 0"},
		{[]string{"--session-timeout", "0"}, "", "--session-timeout must be positive, got 0s"},
		{[]string{"--batch.bytes=-1"}, "", "--batch.bytes must be at least 1, got -1"},
		{[]string{"--verdicts-topic", "", "--sink", "log"}, "", "nothing to read"},
		{[]string{"--errors.tolerance", "some"}, "", "--errors.tolerance"},
	} {
		cmd := exec.Command(bin, append(tc.args, "--brokers", "127.0.0.1:1", "--clickhouse-addr", "127.0.0.1:1")...)
		if tc.env != "" {
			cmd.Env = append(os.Environ(), tc.env)
		}
		done := make(chan struct{})
		var out []byte
		var err error
		go func() { out, err = cmd.CombinedOutput(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("%v %s: still running; want a refusal at start", tc.args, tc.env)
		}
		if err == nil || cmd.ProcessState.ExitCode() == 0 {
			t.Errorf("%v %s: exit 0, want a failure", tc.args, tc.env)
		}
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("%v %s: output %q, want it to say %q", tc.args, tc.env, out, tc.want)
		}
	}
}

// /healthz answers while the sink runs; /readyz only once ClickHouse is
// connected and answers and the sink joined its group. `kaudit health`,
// which the compose healthcheck runs, exits 0 only for a 2xx.
func TestHealthEndpoints(t *testing.T) {
	cfg, _ := chtest.Migrated(t)
	c := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, c, audit.DefaultVerdictsTopic, 3)
	kaudit := binary(t, "kaudit")
	health := func(url string) (string, error) {
		out, err := exec.Command(kaudit, "health", url).CombinedOutput()
		return string(out), err
	}

	// ClickHouse that does not answer: live, not ready, and it says why.
	down := startSink(t, "--brokers", c.ListenAddrs()[0], "--clickhouse-addr", freeAddr(t), "--events-topic", "")
	waitFor(t, 20*time.Second, "/healthz", func() (bool, string) {
		code, body := down.get("/healthz")
		return code == http.StatusOK, body
	})
	if code, body := down.get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not connected") {
		t.Errorf("/readyz without ClickHouse: %d %q, want 503 saying it is not connected", code, body)
	}
	if out, err := health(down.health + "/readyz"); err == nil {
		t.Errorf("kaudit health on a sink that is not ready: exit 0 (%s)", out)
	}
	if out, err := health(down.health + "/healthz"); err != nil {
		t.Errorf("kaudit health /healthz of a live sink: %v %s", err, out)
	}

	// A working ClickHouse: ready.
	up := startSink(t, "--brokers", c.ListenAddrs()[0], "--clickhouse-addr", cfg.Addr, "--clickhouse-database", cfg.Database, "--events-topic", "")
	up.waitReady(60 * time.Second)
	if out, err := health(up.health + "/readyz"); err != nil || strings.TrimSpace(out) != "ready" {
		t.Errorf("kaudit health on a ready sink: %v %q", err, out)
	}
	up.stop()
	if out, err := health(up.health + "/healthz"); err == nil {
		t.Errorf("kaudit health after the sink stopped: exit 0 (%s)", out)
	}
}
