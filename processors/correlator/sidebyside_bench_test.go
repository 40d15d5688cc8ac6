package correlator

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lovoo/goka"
)

// Side by side: the correlator on an empty table and the correlator with
// open trails already in its table, each in a child process of its own
// (this test binary again, TestSideBySideChild), started together on the
// same events of the in-process broker. On a shared host whose speed
// drifts by ±25 % between runs minutes apart, two runs at the same time
// see the same host: what differs between them is the table. Each child
// reports its event count and its own CPU time every few milliseconds;
// the rates and CPU per event compared are those of the window in which
// both were reading events, so that neither has the host to itself (one
// opening its table, or the other done).

// sideSpec is what a side-by-side child runs: bare goka, or the
// correlator with open trails already in its table.
type sideSpec struct {
	bare bool
	open int
}

// sideBySide is one round: two children, runs run and run+1 (the second
// a correlator). It returns the rate and CPU per event of each in the
// common window, and the lateness of the second's deadlines.
func sideBySide(b *testing.B, brokers []string, total int, specs [2]sideSpec, run int) (rates, cpus [2]float64, window time.Duration, lateness [3]time.Duration) {
	b.Helper()
	dirs := [2]string{b.TempDir(), b.TempDir()}
	for i, sp := range specs {
		if sp.open > 0 {
			preloadInChild(b, filepath.Join(dirs[i], "table"), string(goka.GroupTable(goka.Group(benchConfig(brokers, dirs[i], run+i).Group))), sp.open)
		}
	}
	runtime.GC()
	syscall.Sync()
	var kids [2]*sideChild
	for i := range kids {
		kids[i] = startSideChild(b, brokers, dirs[i], run+i, total, specs[i].bare)
	}
	defer func() {
		for _, k := range kids {
			k.stop(b)
		}
		dropRunTopics(b, brokers)
		for _, d := range dirs {
			_ = os.RemoveAll(d)
		}
	}()
	for _, k := range kids {
		k.await(b, "ready")
	}
	// Told to go in turn, the first first in one round, the second in the
	// next (the window starts when both have begun anyway).
	first := run / 2 % 2
	kids[first].send(b, "go")
	kids[1-first].send(b, "go")
	for _, k := range kids {
		k.await(b, "done")
	}
	// The window: from the later first event to the earlier last one.
	var from, to time.Time
	for i, k := range kids {
		f, l := k.span()
		if i == 0 || f.After(from) {
			from = f
		}
		if i == 0 || l.Before(to) {
			to = l
		}
	}
	if !to.After(from) {
		b.Fatalf("the two runs did not overlap: %s to %s", from, to)
	}
	window = to.Sub(from)
	for i, k := range kids {
		n0, c0 := k.at(from)
		n1, c1 := k.at(to)
		rates[i] = (n1 - n0) / window.Seconds()
		cpus[i] = (c1 - c0) / (n1 - n0)
	}
	produceLost(b, brokers, lostTopic(run+1))
	lateness = lostLateness(b, brokers, benchConfig(brokers, dirs[1], run+1).VerdictsTopic, lostTopic(run+1))
	return rates, cpus, window, lateness
}

// sideSample is a child's event count and CPU time at a time.
type sideSample struct {
	at     time.Time
	n, cpu float64
}

type sideChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // what it printed but samples

	mu      sync.Mutex
	samples []sideSample
	out     strings.Builder // everything else it printed, for an error
}

func startSideChild(b *testing.B, brokers []string, dir string, run, total int, bare bool) *sideChild {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSideBySideChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "KAUDIT_BENCH_SIDE_BROKERS="+strings.Join(brokers, ","), "KAUDIT_BENCH_SIDE_DIR="+dir,
		"KAUDIT_BENCH_SIDE_RUN="+strconv.Itoa(run), "KAUDIT_BENCH_SIDE_TOTAL="+strconv.Itoa(total))
	if bare {
		cmd.Env = append(cmd.Env, "KAUDIT_BENCH_SIDE_BARE=1")
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	k := &sideChild{cmd: cmd, stdin: stdin, lines: make(chan string, 1<<16)}
	go func() { // never blocks the child: its samples are kept here
		defer close(k.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "kaudit-side-sample" {
				at, _ := strconv.ParseInt(f[1], 10, 64)
				n, _ := strconv.ParseFloat(f[2], 64)
				cpu, _ := strconv.ParseFloat(f[3], 64)
				k.mu.Lock()
				k.samples = append(k.samples, sideSample{time.Unix(0, at), n, cpu})
				k.mu.Unlock()
				continue
			}
			k.lines <- sc.Text()
		}
	}()
	return k
}

// await reads the child's lines until want.
func (k *sideChild) await(b *testing.B, want string) {
	b.Helper()
	timeout := time.After(10 * time.Minute)
	for {
		select {
		case line, ok := <-k.lines:
			if !ok {
				b.Fatalf("the child exited before %q: %v\n%s", want, k.cmd.Wait(), k.out.String())
			}
			f := strings.Fields(line)
			switch {
			case len(f) == 1 && f[0] == "kaudit-side-"+want:
				return
			case len(f) == 4 && f[0] == "kaudit-side-sample":
				at, _ := strconv.ParseInt(f[1], 10, 64)
				n, _ := strconv.ParseFloat(f[2], 64)
				cpu, _ := strconv.ParseFloat(f[3], 64)
				k.samples = append(k.samples, sideSample{time.Unix(0, at), n, cpu})
			default:
				k.out.WriteString(line + "\n")
			}
		case <-timeout:
			b.Fatalf("no %q from the child in 10 minutes\n%s", want, k.out.String())
		}
	}
}

func (k *sideChild) send(b *testing.B, line string) {
	b.Helper()
	if _, err := io.WriteString(k.stdin, line+"\n"); err != nil {
		b.Fatal(err)
	}
}

// span is when the child counted its first event and its last.
func (k *sideChild) span() (first, last time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, s := range k.samples {
		if s.n > 0 && first.IsZero() {
			first = s.at
		}
	}
	return first, k.samples[len(k.samples)-1].at
}

// at is the child's count and CPU time at t, interpolated between the
// samples either side.
func (k *sideChild) at(t time.Time) (n, cpu float64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i := 1; i < len(k.samples); i++ {
		a, z := k.samples[i-1], k.samples[i]
		if !z.at.Before(t) {
			f := 0.0
			if d := z.at.Sub(a.at); d > 0 {
				f = float64(t.Sub(a.at)) / float64(d)
			}
			return a.n + f*(z.n-a.n), a.cpu + f*(z.cpu-a.cpu)
		}
	}
	last := k.samples[len(k.samples)-1]
	return last.n, last.cpu
}

// stop closes the child's input, which stops its correlator, and waits.
func (k *sideChild) stop(b *testing.B) {
	_ = k.stdin.Close()
	for line := range k.lines {
		k.out.WriteString(line + "\n")
	}
	if err := k.cmd.Wait(); err != nil || !strings.Contains(k.out.String(), "--- PASS: TestSideBySideChild") {
		b.Errorf("side-by-side child: %v\n%s", err, k.out.String())
	}
}

// TestSideBySideChild is a child process of BenchmarkCorrelatorScale's side
// by side rounds; run otherwise, it is skipped. It opens the correlator
// (the table already preloaded, or empty), says kaudit-side-ready, waits
// for "go", prints its event count and CPU time every 5 ms until it has
// read every event (kaudit-side-done), and stops when its input closes.
func TestSideBySideChild(t *testing.T) {
	brokers := os.Getenv("KAUDIT_BENCH_SIDE_BROKERS")
	if brokers == "" {
		t.Skip("BenchmarkCorrelatorScale's child process")
	}
	run, err := strconv.Atoi(os.Getenv("KAUDIT_BENCH_SIDE_RUN"))
	if err != nil {
		t.Fatal(err)
	}
	total, err := strconv.Atoi(os.Getenv("KAUDIT_BENCH_SIDE_TOTAL"))
	if err != nil {
		t.Fatal(err)
	}
	run1, count, err := sideRunner(strings.Split(brokers, ","), os.Getenv("KAUDIT_BENCH_SIDE_DIR"), run, os.Getenv("KAUDIT_BENCH_SIDE_BARE") != "")
	if err != nil {
		t.Fatal(err)
	}
	in := bufio.NewScanner(os.Stdin)
	fmt.Println("kaudit-side-ready")
	if !in.Scan() || in.Text() != "go" {
		t.Fatalf("no go: %v", in.Err())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run1(ctx) }()
	sample := func() int {
		n := int(count())
		fmt.Printf("kaudit-side-sample %d %d %d\n", time.Now().UnixNano(), n, processCPU().Nanoseconds())
		return n
	}
	tick := time.NewTicker(5 * time.Millisecond)
	for sample() < total {
		select {
		case err := <-done:
			t.Fatalf("stopped after %d of %d events: %v", count(), total, err)
		case <-tick.C:
		}
	}
	tick.Stop()
	fmt.Println("kaudit-side-done")
	for in.Scan() { // until the parent closes our input
	}
	cancel()
	if err := <-done; err != nil && ctx.Err() == nil {
		t.Fatal(err)
	}
}

// sideRunner is the run and the event count of a side-by-side child:
// bare goka, or the correlator (its table under dir, preloaded or empty).
func sideRunner(brokers []string, dir string, run int, bare bool) (func(context.Context) error, func() int64, error) {
	if bare {
		proc, seen, err := bareGoka(brokers, filepath.Join(dir, "bare"), run)
		if err != nil {
			return nil, nil, err
		}
		return func(ctx context.Context) error { return proc.Run(ctx) }, seen.Load, nil
	}
	cfg := benchConfig(brokers, dir, run)
	cfg.Logger = nullLogger()
	if os.Getenv("KAUDIT_BENCH_SIDE_LOG") != "" { // the correlators' logs on stderr, with their sweeps
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("run", run)
	}
	cor, err := New(cfg)
	if err != nil {
		return nil, nil, err
	}
	if err := cor.EnsureTopics(); err != nil {
		return nil, nil, err
	}
	return cor.Run, func() int64 { return int64(cor.Stats().Events) }, nil
}
