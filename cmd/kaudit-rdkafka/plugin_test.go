//go:build rdkafka

package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
)

// pythonBin is Debian's python, the one with python3-confluent-kafka (the
// python3 first on PATH may be another one).
const pythonBin = "/usr/bin/python3"

// The shared library under test, built once per test binary, by the first
// test that needs it.
var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := chtest.Run(m)
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// pluginLib returns the path of the plugin, building it on first use.
func pluginLib(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "kaudit-rdkafka-test-"); built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "kaudit-rdkafka.so")
		out, err := exec.Command("go", "build", "-tags", "rdkafka", "-buildmode=c-shared", "-o", built.path, ".").CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("go build -buildmode=c-shared: %w\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatalf("build the plugin: %v", built.err)
	}
	return built.path
}

// cmdResult is what a client process did.
type cmdResult struct {
	stdout, stderr string
	err            error
}

// runCmd runs a client process with a deadline and returns its output.
func runCmd(t *testing.T, timeout time.Duration, stdin string, name string, args ...string) cmdResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s timed out after %s: %w", name, timeout, ctx.Err())
	}
	return cmdResult{stdout: out.String(), stderr: errb.String(), err: err}
}

// mustRun is runCmd failing the test on a non-zero exit.
func mustRun(t *testing.T, timeout time.Duration, stdin string, name string, args ...string) string {
	t.Helper()
	r := runCmd(t, timeout, stdin, name, args...)
	if r.err != nil {
		t.Fatalf("%s %s: %v\nstderr:\n%s", name, strings.Join(args, " "), r.err, r.stderr)
	}
	return r.stdout
}

// auditArgs are kcat's -X options loading the plugin (first, so that the
// audit.* keys after it are known) plus props.
func auditArgs(t *testing.T, props ...string) []string {
	args := []string{"-X", "plugin.library.paths=" + pluginLib(t)}
	for _, p := range props {
		args = append(args, "-X", p)
	}
	return args
}

// kcatProduce pipes lines to kcat -P (with flags) and the plugin.
func kcatProduce(t *testing.T, brokers, topic string, lines, flags []string, props ...string) {
	t.Helper()
	args := append(append([]string{"-P", "-b", brokers, "-t", topic}, flags...), auditArgs(t, props...)...)
	mustRun(t, time.Minute, strings.Join(lines, "\n")+"\n", "kcat", args...)
}

// kcatGroupConsume reads n messages of topic in a consumer group with the
// plugin and returns kcat's output, one "%h" line per message (headers).
func kcatGroupConsume(t *testing.T, brokers, group, topic string, n int, props ...string) []string {
	t.Helper()
	args := append([]string{"-G", group, "-b", brokers, "-c", fmt.Sprint(n), "-q",
		"-X", "auto.offset.reset=earliest", "-f", "%p %o %h\n"}, auditArgs(t, props...)...)
	args = append(args, topic)
	out := mustRun(t, 2*time.Minute, "", "kcat", args...)
	return strings.Split(strings.TrimSpace(out), "\n")
}

// pluginStats reads the lines a stats file got from destroyed clients.
type pluginStats struct {
	Name      string `json:"name"`
	ClientID  string `json:"client_id"`
	Group     string `json:"group"`
	Format    string `json:"format"`
	Topic     string `json:"topic"`
	Produced  uint64 `json:"produced"`
	Consumed  uint64 `json:"consumed"`
	Dropped   uint64 `json:"dropped"`
	Sent      uint64 `json:"sent"`
	Failed    uint64 `json:"failed"`
	Reported  uint64 `json:"drops_reported"`
	Unaudited uint64 `json:"unaudited"`
	Panics    uint64 `json:"panics"`
	Audited   bool   `json:"audited"`
}

func readStats(t *testing.T, path string) []pluginStats {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("plugin stats: %v", err)
	}
	defer f.Close()
	var out []pluginStats
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var s pluginStats
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("plugin stats line %q: %v", sc.Text(), err)
		}
		out = append(out, s)
	}
	return out
}

// checkStats fails unless every client audited want events, none lost.
func checkStats(t *testing.T, stats []pluginStats, want map[string]uint64) {
	t.Helper()
	if len(stats) != len(want) {
		t.Fatalf("stats of %d clients, want %d: %+v", len(stats), len(want), stats)
	}
	for _, s := range stats {
		n, ok := want[s.ClientID]
		if !ok {
			t.Errorf("stats of unexpected client %q", s.ClientID)
			continue
		}
		if !s.Audited || s.Produced+s.Consumed != n || s.Sent != n || s.Dropped != 0 || s.Failed != 0 || s.Panics != 0 {
			t.Errorf("client %s: stats %+v, want %d events all sent", s.ClientID, s, n)
		}
	}
}

// readEvents reads n audit events from the kaudit topic of c.
func readEvents(t *testing.T, c *kfake.Cluster, topic string, n int) []*codecs.Event {
	t.Helper()
	recs := kafkatest.Consume(t, c, topic, n+1, 5*time.Second)
	if len(recs) != n {
		t.Fatalf("%d records on %s, want %d", len(recs), topic, n)
	}
	evs := make([]*codecs.Event, 0, n)
	for _, r := range recs {
		ev, err := codecs.DecodeEvent(r.Value)
		if err != nil {
			t.Fatalf("audit record %q: %v", r.Value, err)
		}
		if string(r.Key) != ev.CorrelationID {
			t.Errorf("audit record key %q, event correlation ID %q", r.Key, ev.CorrelationID)
		}
		evs = append(evs, ev)
	}
	return evs
}
