package main_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/internal/testing/itest"
)

func TestMain(m *testing.M) {
	code := chtest.Run(m)
	if bins.dir != "" {
		_ = os.RemoveAll(bins.dir)
	}
	os.Exit(code)
}

// bins are kaudit-sink and kaudit, built once per test binary from this
// tree.
var bins struct {
	once sync.Once
	dir  string
	err  error
}

// binary returns the path of the named binary of ./cmd (kaudit-sink or
// kaudit), building both on first use.
func binary(t testing.TB, name string) string {
	t.Helper()
	itest.Integration(t)
	bins.once.Do(func() {
		dir, err := os.MkdirTemp("", "kaudit-sink-test-")
		if err != nil {
			bins.err = err
			return
		}
		bins.dir = dir
		cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/kaudit-sink", "./cmd/kaudit")
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			bins.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if bins.err != nil {
		t.Fatal(bins.err)
	}
	return filepath.Join(bins.dir, name)
}

// proc is a running kaudit-sink.
type proc struct {
	t      testing.TB
	cmd    *exec.Cmd
	out    *itest.SyncBuffer
	done   chan struct{}
	health string // base URL of the metrics and health endpoints
}

// startSink starts kaudit-sink with args and a metrics listener of its own.
func startSink(t testing.TB, args ...string) *proc {
	t.Helper()
	addr := freeAddr(t)
	p := &proc{t: t, out: &itest.SyncBuffer{}, done: make(chan struct{}), health: "http://" + addr}
	p.cmd = exec.Command(binary(t, "kaudit-sink"), append(args, "--metrics-addr", addr)...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Env = append(os.Environ(), "KAUDIT_LOG_FORMAT=text")
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Fatalf("kaudit-sink did not stop on SIGTERM:\n%s", p.out)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		p.t.Fatalf("kaudit-sink exited with %d after SIGTERM:\n%s", code, p.out)
	}
}

// get returns the status and body of a health endpoint (0 if it does not
// answer).
func (p *proc) get(path string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.health+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitReady waits until /readyz answers 200.
func (p *proc) waitReady(timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		code, body := p.get("/readyz")
		if code == http.StatusOK {
			return
		}
		select {
		case <-p.done:
			p.t.Fatalf("kaudit-sink exited before it was ready:\n%s", p.out)
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("kaudit-sink not ready after %s (/readyz: %d %s):\n%s", timeout, code, body, p.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %s", timeout, what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
