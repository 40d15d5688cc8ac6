package e2e_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The black-box tests run kaudit's binaries (and test clients) as separate
// processes, the way the README says to run them against a real cluster.

var bins struct {
	once sync.Once
	dir  string
	err  error
}

// binaries builds kaudit's binaries, the chaos client and the librdkafka
// plugin once per test binary and returns the directory holding them.
func binaries(t *testing.T) string {
	t.Helper()
	bins.once.Do(func() {
		bins.dir, bins.err = os.MkdirTemp("", "kaudit-e2e-bin-")
		if bins.err != nil {
			return
		}
		root, err := filepath.Abs("..")
		if err != nil {
			bins.err = err
			return
		}
		for _, args := range [][]string{
			{"build", "-o", bins.dir + "/", "./cmd/kaudit", "./cmd/kaudit-correlator", "./cmd/kaudit-sink", "./e2e/internal/chaosclient"},
			{"build", "-tags", "rdkafka", "-buildmode=c-shared", "-o", filepath.Join(bins.dir, "kaudit-rdkafka.so"), "./cmd/kaudit-rdkafka"},
		} {
			cmd := exec.Command("go", args...)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				bins.err = fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
				return
			}
		}
	})
	if bins.err != nil {
		t.Fatalf("build binaries: %v", bins.err)
	}
	return bins.dir
}

// proc is a process under test.
type proc struct {
	t     *testing.T
	name  string
	cmd   *exec.Cmd
	log   string
	stdin io.WriteCloser
	mu    sync.Mutex
	lines []string
	seen  chan struct{} // closed and replaced when a line arrives
	done  chan struct{}
}

// startProc starts bin with args; its stdout lines are kept (waitLine),
// stdout and stderr both go to a log file in dir, dumped if the test fails.
func startProc(t *testing.T, dir, name, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, log: filepath.Join(dir, name+".log"), seen: make(chan struct{}), done: make(chan struct{})}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "=== %s %s %s\n", time.Now().Format(time.StampMilli), bin, strings.Join(args, " "))
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stderr = f
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(f, line)
			p.mu.Lock()
			p.lines = append(p.lines, line)
			close(p.seen)
			p.seen = make(chan struct{})
			p.mu.Unlock()
		}
		_ = p.cmd.Wait()
		fmt.Fprintf(f, "=== %s exited: %v\n", time.Now().Format(time.StampMilli), p.cmd.ProcessState)
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			if len(b) > 6000 {
				b = append([]byte("...\n"), b[len(b)-6000:]...)
			}
			t.Logf("--- %s log:\n%s", name, b)
		}
	})
	return p
}

// kill sends SIGKILL and waits for the process to exit.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// signal sends sig and waits up to timeout for the process to exit.
func (p *proc) stop(sig os.Signal, timeout time.Duration) error {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		p.kill()
		return fmt.Errorf("%s did not exit within %s of %v", p.name, timeout, sig)
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitLine waits for a stdout line containing want.
func (p *proc) waitLine(want string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		for _, l := range p.lines {
			if strings.Contains(l, want) {
				p.mu.Unlock()
				return
			}
		}
		seen := p.seen
		p.mu.Unlock()
		select {
		case <-seen:
		case <-p.done:
			p.t.Fatalf("%s exited before printing %q", p.name, want)
		case <-deadline:
			p.t.Fatalf("%s did not print %q within %s", p.name, want, timeout)
		}
	}
}

func (p *proc) send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		p.t.Fatalf("%s: write %q: %v", p.name, line, err)
	}
}

// freeAddr returns a free loopback address.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitReady polls http://addr/readyz of p until it answers 200.
func waitReady(t *testing.T, p *proc, addr string, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, p.name+" ready", func() (bool, string) {
		if p.exited() {
			t.Fatalf("%s exited", p.name)
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK, strings.TrimSpace(string(b))
	})
}
