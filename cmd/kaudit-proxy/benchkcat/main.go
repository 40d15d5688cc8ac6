// Command benchkcat measures what kaudit-proxy costs a real client: Debian's
// kcat produces the same N messages (100 bytes each by default) to an
// in-process kfake broker directly and through the proxy (in this process,
// with the log auditor and the traffic observer on), alternately, and
// reports the median throughput of each (messages / wall time from kcat's
// start to its exit), their ratio, and the produce latency: librdkafka's
// own round-trip time of every ProduceRequest (its "protocol" debug log),
// p50 and p99, pooled over the runs of each kind.
//
//	go run ./cmd/kaudit-proxy/benchkcat -n 1000000
//
// `make bench` runs it. kcat, the broker and the proxy share the machine's
// CPUs, so compare the two kinds only with each other.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kaudit/kaudit/proxy"
	"github.com/kaudit/kaudit/proxy/auditors"
	"github.com/kaudit/kaudit/proxy/traffic"
)

type config struct {
	kcat     string
	n        int
	size     int
	rounds   int
	proxyBin string // kaudit-proxy binary to run as its own process; "" = in this process
	rate     int    // messages per second fed to kcat; 0 = as fast as it reads
}

type run struct {
	wall time.Duration
	rtts []float64 // ms, one per ProduceResponse
}

func main() {
	var cfg config
	flag.StringVar(&cfg.kcat, "kcat", "kcat", "kcat binary")
	flag.IntVar(&cfg.n, "n", 1_000_000, "messages per run")
	flag.IntVar(&cfg.size, "size", 100, "bytes per message")
	flag.IntVar(&cfg.rounds, "rounds", 3, "runs of each kind (alternating)")
	flag.IntVar(&cfg.rate, "rate", 0, "feed kcat this many messages per second (latency below saturation); 0: flat out")
	flag.StringVar(&cfg.proxyBin, "proxy-bin", "", "run this kaudit-proxy binary as its own process (as deployed) instead of the proxy in this process")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of this process (broker and proxy) to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchkcat:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if err := bench(cfg, os.Stdout); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "benchkcat:", err)
		os.Exit(1)
	}
}

func bench(cfg config, out io.Writer) error {
	dir, err := os.MkdirTemp("", "benchkcat-proxy-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	input := filepath.Join(dir, "input.txt")
	if err := writeInput(input, cfg.n, cfg.size); err != nil {
		return err
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.BlackholeProduce())
	if err != nil {
		return fmt.Errorf("kfake: %w", err)
	}
	defer c.Close()
	direct := c.ListenAddrs()[0]

	var (
		proxyAddr string
		stats     func() string
	)
	if cfg.proxyBin != "" {
		addr, st, stop, err := startProxyProcess(cfg.proxyBin, direct, dir)
		if err != nil {
			return err
		}
		defer stop()
		proxyAddr, stats = addr, st
	} else {
		logFile, err := os.Create(filepath.Join(dir, "audit.jsonl"))
		if err != nil {
			return err
		}
		lg := auditors.NewLog(logFile, logFile, auditors.FormatKaudit, nil)
		agg := traffic.New(traffic.Config{Writers: []traffic.Writer{lg}, Proxy: "bench"})
		p, err := proxy.New(proxy.Config{Upstream: []string{direct}, Listen: "127.0.0.1:0",
			Auditors: []proxy.Auditor{lg}, Observers: []proxy.Observer{agg}})
		if err != nil {
			return err
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		defer func() {
			cancel()
			<-done
		}()
		proxyAddr = p.Addr()
		stats = func() string {
			st := p.Stats()
			return fmt.Sprintf("%d requests, %d protocol errors, dropped %v", st.Requests, st.ProtocolErrors, st.Dropped)
		}
	}

	admin, err := kgo.NewClient(kgo.SeedBrokers(direct))
	if err != nil {
		return err
	}
	defer admin.Close()
	var plain, proxied []run
	for i := range cfg.rounds {
		for _, through := range []bool{false, true} {
			topic := fmt.Sprintf("bench-%d-%t", i, through)
			if err := createTopic(admin, topic, 3); err != nil {
				return err
			}
			addr := direct
			if through {
				addr = proxyAddr
			}
			r, err := kcat(cfg, addr, topic, input)
			if err != nil {
				return err
			}
			if through {
				proxied = append(proxied, r)
			} else {
				plain = append(plain, r)
			}
			deleteTopic(admin, topic) // keep the broker's memory flat
		}
	}
	report(out, cfg, plain, proxied, stats())
	return nil
}

// startProxyProcess runs the kaudit-proxy binary in front of upstream, with
// the log auditor (and its traffic observer) writing into dir, and returns
// its bootstrap address, a summary of its own metrics, and a stop function.
func startProxyProcess(bin, upstream, dir string) (string, func() string, func(), error) {
	var ports [3]int
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", nil, nil, err
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	metrics := fmt.Sprintf("127.0.0.1:%d", ports[2])
	cmd := exec.Command(bin, "--upstream", upstream, "--listen", addr, "--broker-port-base", strconv.Itoa(ports[1]),
		"--auditors", "log", "--audit-log", filepath.Join(dir, "audit.jsonl"), "--metrics-addr", metrics, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, nil, fmt.Errorf("%s did not listen on %s", bin, addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stats := func() string {
		resp, err := http.Get("http://" + metrics + "/metrics")
		if err != nil {
			return "metrics: " + err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var keep []string
		for _, l := range strings.Split(string(b), "\n") {
			for _, m := range []string{"kaudit_proxy_requests_total", "kaudit_proxy_protocol_errors_total", "kaudit_proxy_dropped_total"} {
				if strings.HasPrefix(l, m) {
					keep = append(keep, l)
				}
			}
		}
		return "(own process) " + strings.Join(keep, ", ")
	}
	return addr, stats, stop, nil
}

func writeInput(path string, n, size int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	pad := strings.Repeat("x", max(size-18, 0))
	for i := range n {
		line := fmt.Sprintf("message %09d %s", i, pad)
		if len(line) > size {
			line = line[:size]
		}
		w.WriteString(line)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

var rttRE = regexp.MustCompile(`Received ProduceResponse \([^)]*rtt ([0-9.]+)ms\)`)

func kcat(cfg config, addr, topic, input string) (run, error) {
	args := []string{"-P", "-b", addr, "-t", topic, "-d", "protocol"}
	in, err := os.Open(input)
	if err != nil {
		return run{}, err
	}
	defer in.Close()
	cmd := exec.Command(cfg.kcat, args...)
	if cfg.rate > 0 {
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return run{}, err
		}
		go feed(stdin, in, cfg.rate)
	} else {
		cmd.Stdin = in
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return run{}, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return run{}, err
	}
	var r run
	var tail []string
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := rttRE.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseFloat(m[1], 64)
			r.rtts = append(r.rtts, v)
		} else if strings.Contains(line, "ERROR") || strings.Contains(line, "FAIL") {
			tail = append(tail, line)
		}
	}
	err = cmd.Wait()
	r.wall = time.Since(start)
	if err != nil {
		return run{}, fmt.Errorf("%s %s: %w: %s", cfg.kcat, strings.Join(args, " "), err, strings.Join(tail, "\n"))
	}
	if len(r.rtts) == 0 {
		return run{}, errors.New("kcat logged no ProduceResponse")
	}
	return r, nil
}

// feed copies the lines of in to w at rate lines per second (in steps of a
// millisecond), then closes w.
func feed(w io.WriteCloser, in io.Reader, rate int) {
	defer w.Close()
	sc := bufio.NewScanner(in)
	bw := bufio.NewWriter(w)
	start := time.Now()
	sent := 0
	for sc.Scan() {
		bw.Write(sc.Bytes())
		bw.WriteByte('\n')
		sent++
		if due := start.Add(time.Duration(sent) * time.Second / time.Duration(rate)); time.Until(due) > time.Millisecond {
			if bw.Flush() != nil {
				return
			}
			time.Sleep(time.Until(due))
		}
	}
	bw.Flush()
}

func createTopic(cl *kgo.Client, topic string, partitions int32) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrCreateTopicsRequest()
	t := kmsg.NewCreateTopicsRequestTopic()
	t.Topic, t.NumPartitions, t.ReplicationFactor = topic, partitions, 1
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	if code := resp.Topics[0].ErrorCode; code != 0 {
		return fmt.Errorf("create topic %s: error code %d", topic, code)
	}
	return nil
}

func deleteTopic(cl *kgo.Client, topic string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.TopicNames = []string{topic}
	rt := kmsg.NewDeleteTopicsRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	_, _ = req.RequestWith(ctx, cl)
}

func where(cfg config) string {
	if cfg.proxyBin != "" {
		return "as its own process (" + cfg.proxyBin + ")"
	}
	return "in this process"
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func quantile(v []float64, q float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	i := int(q*float64(len(v))+0.5) - 1
	return v[min(max(i, 0), len(v)-1)]
}

func report(out io.Writer, cfg config, plain, proxied []run, stats string) {
	rates := func(rs []run) []float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = float64(cfg.n) / r.wall.Seconds()
		}
		return v
	}
	rtts := func(rs []run) []float64 {
		var v []float64
		for _, r := range rs {
			v = append(v, r.rtts...)
		}
		return v
	}
	pr, xr := median(rates(plain)), median(rates(proxied))
	prt, xrt := rtts(plain), rtts(proxied)
	pace := "flat out"
	if cfg.rate > 0 {
		pace = fmt.Sprintf("fed at %d msgs/s", cfg.rate)
	}
	fmt.Fprintf(out, "kcat -P, %d messages of %d bytes %s, %d runs each (median throughput), kfake broker in this process, kaudit-proxy %s\n", cfg.n, cfg.size, pace, cfg.rounds, where(cfg))
	fmt.Fprintf(out, "%-14s %12s %22s %22s\n", "", "msgs/s", "produce rtt p50", "produce rtt p99")
	fmt.Fprintf(out, "%-14s %12.0f %20.2fms %20.2fms   (%d requests)\n", "direct", pr, quantile(prt, 0.5), quantile(prt, 0.99), len(prt))
	fmt.Fprintf(out, "%-14s %12.0f %20.2fms %20.2fms   (%d requests)\n", "through proxy", xr, quantile(xrt, 0.5), quantile(xrt, 0.99), len(xrt))
	fmt.Fprintf(out, "throughput ratio:     %.2fx direct  (target >= 0.90x)\n", xr/pr)
	fmt.Fprintf(out, "added p99 produce rtt: %.2fms  (target <= 1ms)\n", quantile(xrt, 0.99)-quantile(prt, 0.99))
	fmt.Fprintf(out, "proxy: %s\n", stats)
}
