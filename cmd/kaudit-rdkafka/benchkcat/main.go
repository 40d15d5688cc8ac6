// Command benchkcat measures what the kaudit librdkafka plugin costs a real
// client: Debian's kcat produces the same N messages (100 bytes each by
// default) with and without the plugin, alternately, against an in-process
// kfake broker, and it reports the median throughput (messages / wall time
// from start to exit, which with the plugin includes flushing the audit
// events at rd_kafka_destroy), the client CPU per message (user+sys of the
// kcat process, from getrusage) and the plugin's counters (from
// audit.stats.file: dropped, failed and sent audit events). For the audited
// runs it also reports how fast kcat's own messages went (first send to
// last acknowledgement, read from the audit events), i.e. without waiting
// for the audit events to be flushed at exit.
//
//	go run ./cmd/kaudit-rdkafka/benchkcat -plugin bin/kaudit-rdkafka.so -n 200000
//
// `make bench` runs it. The broker shares the machine's CPUs with kcat; its
// CPU is not counted as client CPU.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

type config struct {
	plugin string
	kcat   string
	n      int
	size   int
	rounds int
	extra  multiFlag
	env    multiFlag
}

// run is one kcat run.
type run struct {
	wall  time.Duration
	cpu   time.Duration
	stats map[string]any // the plugin's stats line, nil without plugin
	// span is, for an audited run, the time from the first message's send
	// to the last message's acknowledgement, from the audit events: how
	// long kcat's own messages took, without the audit flush at exit.
	span time.Duration
}

func main() {
	var cfg config
	flag.StringVar(&cfg.plugin, "plugin", "bin/kaudit-rdkafka.so", "the plugin to load")
	flag.StringVar(&cfg.kcat, "kcat", "kcat", "kcat binary")
	flag.IntVar(&cfg.n, "n", 200_000, "messages per run")
	flag.IntVar(&cfg.size, "size", 100, "bytes per message")
	flag.IntVar(&cfg.rounds, "rounds", 5, "runs of each kind (alternating)")
	flag.Var(&cfg.extra, "X", "extra librdkafka property for the audited runs (repeatable), e.g. -X audit.linger.ms=20")
	flag.Var(&cfg.env, "env", "extra environment variable for the audited runs (repeatable), e.g. -env GOGC=200")
	flag.Parse()
	if err := bench(cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchkcat:", err)
		os.Exit(1)
	}
}

func bench(cfg config, out io.Writer) error {
	plugin, err := filepath.Abs(cfg.plugin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(plugin); err != nil {
		return fmt.Errorf("plugin: %w (run make plugin)", err)
	}
	dir, err := os.MkdirTemp("", "benchkcat-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	input := filepath.Join(dir, "input.txt")
	if err := writeInput(input, cfg.n, cfg.size); err != nil {
		return err
	}

	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(3))
	if err != nil {
		return fmt.Errorf("kfake: %w", err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	admin, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return err
	}
	defer admin.Close()

	var plain, audited []run
	for i := range cfg.rounds {
		for _, withPlugin := range []bool{false, true} {
			topic := fmt.Sprintf("bench-%d-%t", i, withPlugin)
			if err := createTopic(admin, topic, 3); err != nil {
				return err
			}
			r, err := kcat(cfg, addr, topic, input, dir, withPlugin, plugin)
			if err != nil {
				return err
			}
			if withPlugin {
				if r.span, err = produceSpan(addr, cfg.n); err != nil {
					return err
				}
				audited = append(audited, r)
			} else {
				plain = append(plain, r)
			}
			// Keep the broker's memory flat across rounds.
			deleteTopics(admin, topic, audit.DefaultEventsTopic)
		}
	}
	report(out, cfg, plain, audited)
	return nil
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

func kcat(cfg config, addr, topic, input, dir string, withPlugin bool, plugin string) (run, error) {
	args := []string{"-P", "-b", addr, "-t", topic}
	stats := filepath.Join(dir, topic+".stats")
	if withPlugin {
		args = append(args, "-X", "plugin.library.paths="+plugin, "-X", "audit.stats.file="+stats)
		for _, x := range cfg.extra {
			args = append(args, "-X", x)
		}
	}
	in, err := os.Open(input)
	if err != nil {
		return run{}, err
	}
	defer in.Close()
	cmd := exec.Command(cfg.kcat, args...)
	cmd.Stdin = in
	if withPlugin {
		cmd.Env = append(os.Environ(), cfg.env...)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return run{}, fmt.Errorf("%s %s: %w: %s", cfg.kcat, strings.Join(args, " "), err, stderr.String())
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return run{}, errors.New("no rusage for kcat")
	}
	r := run{wall: wall, cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
	if withPlugin {
		b, err := os.ReadFile(stats)
		if err != nil {
			return run{}, fmt.Errorf("plugin stats: %w (stderr: %s)", err, stderr.String())
		}
		if err := json.Unmarshal(b, &r.stats); err != nil {
			return run{}, fmt.Errorf("plugin stats %q: %w", b, err)
		}
	}
	return r, nil
}

// produceSpan reads the n produce events of a run and returns the time
// from the first send to the last acknowledgement.
func produceSpan(addr string, n int) (time.Duration, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(audit.DefaultEventsTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var first, last int64
	seen := 0
	for seen < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return 0, fmt.Errorf("read %d of %d audit events: %w", seen, n, ctx.Err())
		}
		for _, r := range fs.Records() {
			ev, err := codecs.DecodeEvent(r.Value)
			if err != nil {
				return 0, err
			}
			if ev.Kind != codecs.KindProduce {
				continue
			}
			seen++
			if first == 0 || ev.SendNs < first {
				first = ev.SendNs
			}
			last = max(last, ev.AckNs)
		}
	}
	return time.Duration(last - first), nil
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

func deleteTopics(cl *kgo.Client, topics ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.TopicNames = topics
	for _, t := range topics {
		rt := kmsg.NewDeleteTopicsRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	_, _ = req.RequestWith(ctx, cl)
}

func median(rs []run, f func(run) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func report(out io.Writer, cfg config, plain, audited []run) {
	n := float64(cfg.n)
	rate := func(r run) float64 { return n / r.wall.Seconds() }
	cpuPer := func(r run) float64 { return float64(r.cpu.Nanoseconds()) / n / 1000 } // µs
	pr, ar := median(plain, rate), median(audited, rate)
	pc, ac := median(plain, cpuPer), median(audited, cpuPer)
	sum := func(key string) (total, worst float64) {
		for _, r := range audited {
			v, _ := r.stats[key].(float64)
			total += v
			worst = max(worst, v)
		}
		return total, worst
	}
	fmt.Fprintf(out, "kcat -P, %d messages of %d bytes, %d runs each (medians), kfake broker in this process\n", cfg.n, cfg.size, cfg.rounds)
	if len(cfg.extra)+len(cfg.env) > 0 {
		fmt.Fprintf(out, "audited runs with: %s %s\n", cfg.extra.String(), cfg.env.String())
	}
	fmt.Fprintf(out, "%-12s %14s %16s\n", "", "msgs/s", "client CPU/msg")
	fmt.Fprintf(out, "%-12s %14.0f %14.2fµs\n", "plain", pr, pc)
	fmt.Fprintf(out, "%-12s %14.0f %14.2fµs\n", "with plugin", ar, ac)
	fmt.Fprintf(out, "throughput ratio:        %.0f%%  (target >= 50%%; kcat start to exit, audit flush included)\n", 100*ar/pr)
	sr := median(audited, func(r run) float64 { return n / r.span.Seconds() })
	fmt.Fprintf(out, "audited kcat's own messages, first send to last ack: %.0f msgs/s (%.0f%% of plain kcat start to exit)\n", sr, 100*sr/pr)
	fmt.Fprintf(out, "added client CPU/msg:    %.2fµs  (target <= 1µs)\n", ac-pc)
	_, dropped := sum("dropped")
	_, failed := sum("failed")
	sent, _ := sum("sent")
	fmt.Fprintf(out, "audit events per run:    dropped max %.0f, failed max %.0f, sent %.0f of %d  (target: 0 dropped)\n",
		dropped, failed, sent, cfg.n*len(audited))
}
