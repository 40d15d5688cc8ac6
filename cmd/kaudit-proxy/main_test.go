package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/internal/testing/itest"
)

// buildProxy builds the kaudit-proxy binary into dir.
func buildProxy(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "kaudit-proxy")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freePorts finds n consecutive free loopback ports.
func freePorts(t *testing.T, n int) int {
	t.Helper()
	for range 200 {
		base := 20000 + rand.IntN(30000)
		var lns []net.Listener
		ok := true
		for i := range n {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+i))
			if err != nil {
				ok = false
				break
			}
			lns = append(lns, ln)
		}
		for _, ln := range lns {
			ln.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

// proc is a running kaudit-proxy.
type proc struct {
	cmd *exec.Cmd
}

func startProxy(t *testing.T, bin, logFile string, args ...string) *proc {
	t.Helper()
	f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	p := &proc{cmd: cmd}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return p
}

// waitListening polls until addr accepts connections.
func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never listened: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKill9 kills the kaudit-proxy binary with SIGKILL while an idempotent
// franz-go producer and a consumer group stream through it, starts it
// again on the same ports, and checks: every record the producer was
// asked to send was acknowledged and is in the broker exactly once, in
// order per partition; the consumer, through the restarted proxy, saw every
// record; the audit log holds only whole lines.
func TestKill9(t *testing.T) {
	itest.Integration(t)
	dir := t.TempDir()
	bin := buildProxy(t, dir)
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(3, "k9"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	base := freePorts(t, 5)
	listen := fmt.Sprintf("127.0.0.1:%d", base)
	auditLog := filepath.Join(dir, "audit.jsonl")
	args := []string{"--upstream", c.ListenAddrs()[0], "--listen", listen, "--broker-port-base", strconv.Itoa(base + 1),
		"--auditors", "log", "--audit-log", auditLog, "--traffic-interval", "1s", "--log-level", "debug"}
	stderr := filepath.Join(dir, "proxy.log")
	p := startProxy(t, bin, stderr, args...)
	waitListening(t, listen)

	const n = 20000
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	prod, err := kgo.NewClient(kgo.SeedBrokers(listen), kgo.DefaultProduceTopic("k9"),
		kgo.ProducerLinger(time.Millisecond), kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	cons, err := kgo.NewClient(kgo.SeedBrokers(listen), kgo.ConsumeTopics("k9"), kgo.ConsumerGroup("k9-group"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()

	var acked, failed atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the producer, at a steady pace
		defer wg.Done()
		for i := range n {
			prod.Produce(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}, func(_ *kgo.Record, err error) {
				if err != nil {
					failed.Add(1)
					return
				}
				acked.Add(1)
			})
			if i%200 == 0 {
				time.Sleep(5 * time.Millisecond)
			}
		}
	}()
	seen := make(map[string]bool, n)
	var seenMu sync.Mutex
	wg.Add(1)
	go func() { // the consumer
		defer wg.Done()
		for {
			seenMu.Lock()
			done := len(seen) == n
			seenMu.Unlock()
			if done || ctx.Err() != nil {
				return
			}
			fs := cons.PollFetches(ctx)
			seenMu.Lock()
			fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
			seenMu.Unlock()
		}
	}()

	// Kill mid-traffic: once a quarter of the records are acknowledged.
	for acked.Load() < n/4 {
		if ctx.Err() != nil {
			t.Fatalf("only %d acknowledged before the kill", acked.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	atKill := acked.Load()
	startProxy(t, bin, stderr, args...)
	waitListening(t, listen)

	wg.Wait()
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if acked.Load() != n || failed.Load() != 0 {
		t.Fatalf("producer: %d acknowledged, %d failed, of %d (%d at the kill)", acked.Load(), failed.Load(), n, atKill)
	}
	if atKill >= n {
		t.Fatalf("the kill came after the traffic")
	}
	seenMu.Lock()
	if len(seen) != n {
		t.Fatalf("consumer through the proxy saw %d of %d records", len(seen), n)
	}
	seenMu.Unlock()

	// The broker holds each record once, in order per partition.
	direct, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("k9"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	count := map[string]int{}
	last := map[int32]int{}
	total := 0
	for total < n {
		fs := direct.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("broker has %d records, want %d", total, n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			total++
			count[string(r.Value)]++
			v, _ := strconv.Atoi(string(r.Value))
			if prev, ok := last[r.Partition]; ok && v <= prev {
				t.Errorf("partition %d: %d after %d", r.Partition, v, prev)
			}
			last[r.Partition] = v
		})
	}
	for v, k := range count {
		if k != 1 {
			t.Errorf("record %s stored %d times", v, k)
		}
	}
	pctx, pcancel := context.WithTimeout(ctx, time.Second)
	if extra := direct.PollFetches(pctx).Records(); len(extra) != 0 {
		t.Errorf("%d records more than were produced", len(extra))
	}
	pcancel()

	// The audit log has only whole JSON lines, across the kill.
	f, err := os.Open(auditLog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	lines := 0
	for sc.Scan() {
		lines++
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Errorf("audit log line %d is not whole JSON: %q", lines, sc.Text())
		}
	}
	if lines == 0 {
		t.Error("the audit log is empty")
	}
}
