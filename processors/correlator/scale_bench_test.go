package correlator

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/processors/expectations"
	"github.com/kaudit/kaudit/processors/internal/gokaopts"
)

// The correlator at scale (issue 14): the correlator and a bare goka
// processor (Persist with goka's LevelDB storage: read and write the group
// table per event, nothing else) read the same preloaded audit events from
// in-process kfake, in one process; the correlator also with 1 M (and, with
// KAUDIT_BENCH_10M=1, 10 M) open trails already in its table, each size in
// two rounds, each between two runs on an empty table. Every comparison is
// made again side by side, in five rounds (three against bare goka): the
// two at the same time, each in a child process (sidebyside_bench_test.go),
// which the host's drift does not blur. A second
// topic's messages are never consumed by their expected group, so their
// LOST verdicts measure how close to its deadline every deadline is
// decided once the backlog is read.
//
//	go test -run '^$' -bench CorrelatorScale -benchtime 1x ./processors/correlator/

const (
	benchPartitions = 6
	benchMessages   = 300_000 // × 3 events (a produce, two consumes)
	benchLost       = 10_000  // produce-only messages of the "lost" topic
	benchLostWithin = 5 * time.Second
)

func BenchmarkCorrelatorScale(b *testing.B) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(benchPartitions, audit.DefaultEventsTopic))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	events := preloadEvents(b, brokers)

	// Each comparison is also made side by side (sidebyside_bench_test.go),
	// the two at the same time, each in a process of its own: the
	// comparison the host's drift does not blur. Five rounds (three
	// against bare goka, which varies less).
	sideRounds := 5
	if v := os.Getenv("KAUDIT_BENCH_SIDE_ROUNDS"); v != "" {
		if sideRounds, err = strconv.Atoi(v); err != nil || sideRounds < 0 {
			b.Fatalf("KAUDIT_BENCH_SIDE_ROUNDS=%q", v)
		}
	}
	side := 200 // the side by side runs' numbers
	// The machine is shared: bare goka and the correlator run in turn,
	// five times each; the ratios are the medians of the pairs', by wall
	// time and by the process's CPU time per event (less sensitive to
	// other processes' load).
	bare := 1.0
	if os.Getenv("KAUDIT_BENCH_SKIP_BARE") == "" { // for a profile of the correlator alone
		var ratios, cpuRatios, bares, cors []float64
		for pair := range 5 {
			br, bcpu := runBareGoka(b, brokers, events, pair)
			cor := runCorrelator(b, brokers, events, 0, 100+pair)
			cr, ccpu := cor.rate, cor.cpu
			bares, cors, ratios, cpuRatios = append(bares, br), append(cors, cr), append(ratios, cr/br), append(cpuRatios, bcpu/ccpu)
			b.Logf("pair %d: bare goka + LevelDB %.0f events/s %.0f CPU ns/event, correlator %.0f events/s %.0f CPU ns/event: %.2f× by time, %.2f× by CPU",
				pair, br, bcpu, cr, ccpu, cr/br, bcpu/ccpu)
		}
		for _, xs := range [][]float64{ratios, cpuRatios, bares, cors} {
			slices.Sort(xs)
		}
		bare = bares[2]
		b.Logf("median: bare goka %.0f events/s, correlator %.0f events/s, ratio %.2f× by time, %.2f× by CPU", bare, cors[2], ratios[2], cpuRatios[2])
		b.ReportMetric(ratios[2], "correlator-x-bare-goka")
		b.ReportMetric(cpuRatios[2], "correlator-x-bare-goka-by-cpu")
		var xs, xcpus []float64
		for round := range min(sideRounds, 3) {
			rates, cpus, window, _ := sideBySide(b, brokers, events, [2]sideSpec{{bare: true}, {}}, side)
			side += 2
			xs, xcpus = append(xs, rates[1]/rates[0]), append(xcpus, cpus[0]/cpus[1])
			b.Logf("side by side %d: correlator %.0f events/s and %.0f CPU ns/event, bare goka + LevelDB %.0f events/s and %.0f CPU ns/event, over %s: %.2f× by time, %.2f× by CPU",
				round, rates[1], cpus[1], rates[0], cpus[0], window.Round(time.Millisecond), rates[1]/rates[0], cpus[0]/cpus[1])
		}
		if len(xs) > 0 {
			slices.Sort(xs)
			slices.Sort(xcpus)
			b.Logf("side by side, median of %d rounds: correlator %.2f× bare goka by time (%.2f–%.2f), %.2f× by CPU (%.2f–%.2f)",
				len(xs), xs[len(xs)/2], xs[0], xs[len(xs)-1], xcpus[len(xcpus)/2], xcpus[0], xcpus[len(xcpus)-1])
			b.ReportMetric(xs[len(xs)/2], "correlator-x-bare-goka-side-by-side")
			b.ReportMetric(xcpus[len(xcpus)/2], "correlator-x-bare-goka-side-by-side-by-cpu")
		}
	}
	sizes := []int{0, 1_000_000}
	if os.Getenv("KAUDIT_BENCH_10M") != "" {
		sizes = append(sizes, 10_000_000)
	}
	if v := os.Getenv("KAUDIT_BENCH_OPEN"); v != "" { // one size only, e.g. for a profile
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		sizes = []int{n}
	}
	// Each size runs in rounds, each run with open trails between two runs
	// on an empty table (E 1M E 10M E 1M E …), and is compared with the
	// mean of the two: the host's speed drifts by more than the 10 %
	// looked for within minutes, and a drift between the three runs
	// cancels out. The figures reported are the medians of the rounds,
	// the latenesses the worst.
	rounds := 2
	if v := os.Getenv("KAUDIT_BENCH_ROUNDS"); v != "" { // 1 for a quick profile, 0 for none
		if rounds, err = strconv.Atoi(v); err != nil || rounds < 0 {
			b.Fatalf("KAUDIT_BENCH_ROUNDS=%q", v)
		}
	}
	type result struct {
		corRun
		open              int
		xEmpty, xEmptyCPU float64
	}
	var order []int
	for range rounds {
		for _, open := range sizes {
			if open != 0 {
				order = append(order, 0, open)
			}
		}
	}
	if len(order) == 0 { // the empty table only
		for range rounds {
			order = append(order, 0)
		}
	} else {
		order = append(order, 0)
	}
	seq := make([]result, 0, len(order))
	for run, open := range order {
		began := time.Now()
		r := runCorrelator(b, brokers, events, open, run)
		seq = append(seq, result{corRun: r, open: open, xEmpty: 1, xEmptyCPU: 1})
		b.Logf("run %d, correlator, %d open trails: %.0f events/s (%.2f× bare goka), %.0f CPU ns/event; decided − deadline p50 %s p99 %s max %s; %d sweeps, mean %s, longest %s; %.0f bytes per trail on disk; run took %s",
			run, open, r.rate, r.rate/bare, r.cpu, r.lateness[0], r.lateness[1], r.lateness[2], r.sweeps, r.sweepMean, r.sweepMax, r.bytesPerTrail, time.Since(began).Round(time.Second))
	}
	results := map[int][]result{}
	for i, r := range seq {
		if r.open != 0 { // between two empty runs, by construction
			before, after := seq[i-1], seq[i+1]
			r.xEmpty = r.rate / ((before.rate + after.rate) / 2)
			r.xEmptyCPU = (before.cpu + after.cpu) / 2 / r.cpu
			b.Logf("run %d, %d open trails: %.2f× the empty runs either side (%.0f, %.0f events/s), %.2f× by CPU",
				i, r.open, r.xEmpty, before.rate, after.rate, r.xEmptyCPU)
		}
		results[r.open] = append(results[r.open], r)
	}
	for _, open := range slices.Sorted(maps.Keys(results)) {
		rs := results[open]
		med := func(f func(result) float64) float64 {
			xs := make([]float64, len(rs))
			for i, r := range rs {
				xs[i] = f(r)
			}
			slices.Sort(xs)
			return xs[len(xs)/2]
		}
		var worst [3]time.Duration
		var sweepMax time.Duration
		for _, r := range rs {
			for i := range worst {
				worst[i] = max(worst[i], r.lateness[i])
			}
			sweepMax = max(sweepMax, r.sweepMax)
		}
		sweepMean := time.Duration(med(func(r result) float64 { return float64(r.sweepMean) }))
		rate, xEmpty, xEmptyCPU := med(func(r result) float64 { return r.rate }), med(func(r result) float64 { return r.xEmpty }), med(func(r result) float64 { return r.xEmptyCPU })
		cpu, bytesPerTrail := med(func(r result) float64 { return r.cpu }), med(func(r result) float64 { return r.bytesPerTrail })
		b.Logf("correlator, %d open trails, median of %d rounds: %.0f events/s (%.2f× bare goka, %.2f× empty table, %.2f× by CPU), %.0f CPU ns/event; decided − deadline, worst round: p50 %s p99 %s max %s; a sweep %s (median of the runs' means), the longest %s; %.0f bytes per trail on disk",
			open, len(rs), rate, rate/bare, xEmpty, xEmptyCPU, cpu, worst[0], worst[1], worst[2], sweepMean, sweepMax, bytesPerTrail)
		name := fmt.Sprintf("open=%d", open)
		b.ReportMetric(rate, name+"-events/s")
		b.ReportMetric(rate/bare, name+"-x-bare-goka")
		b.ReportMetric(worst[1].Seconds(), name+"-p99-decided-minus-deadline-s")
		b.ReportMetric(xEmpty, name+"-x-empty")
		b.ReportMetric(xEmptyCPU, name+"-x-empty-by-cpu")
		b.ReportMetric(cpu, name+"-cpu-ns/event")
		b.ReportMetric(bytesPerTrail, name+"-bytes/trail")
		b.ReportMetric(sweepMean.Seconds(), name+"-sweep-mean-s")
		b.ReportMetric(sweepMax.Seconds(), name+"-sweep-max-s")
	}
	// Then side by side: each size against an empty table.
	for _, open := range sizes {
		if open == 0 || sideRounds == 0 {
			continue
		}
		var xs, xcpus []float64
		var worst [3]time.Duration
		for round := range sideRounds {
			rates, cpus, window, lateness := sideBySide(b, brokers, events, [2]sideSpec{{}, {open: open}}, side)
			side += 2
			xs, xcpus = append(xs, rates[1]/rates[0]), append(xcpus, cpus[0]/cpus[1])
			for i := range worst {
				worst[i] = max(worst[i], lateness[i])
			}
			b.Logf("side by side %d, %d open trails: %.0f events/s and %.0f CPU ns/event, against %.0f events/s and %.0f CPU ns/event on an empty table, over %s: %.2f× by time, %.2f× by CPU; decided − deadline p50 %s p99 %s max %s",
				round, open, rates[1], cpus[1], rates[0], cpus[0], window.Round(time.Millisecond), rates[1]/rates[0], cpus[0]/cpus[1], lateness[0], lateness[1], lateness[2])
		}
		slices.Sort(xs)
		slices.Sort(xcpus)
		b.Logf("side by side, %d open trails, median of %d rounds: %.2f× the empty table by time (%.2f–%.2f), %.2f× by CPU (%.2f–%.2f); decided − deadline, worst round: p99 %s",
			open, len(xs), xs[len(xs)/2], xs[0], xs[len(xs)-1], xcpus[len(xcpus)/2], xcpus[0], xcpus[len(xcpus)-1], worst[1])
		name := fmt.Sprintf("open=%d", open)
		b.ReportMetric(xs[len(xs)/2], name+"-x-empty-side-by-side")
		b.ReportMetric(xcpus[len(xcpus)/2], name+"-x-empty-side-by-side-by-cpu")
	}
	b.ReportMetric(bare, "bare-goka-events/s")
}

// preloadEvents writes the audit events of benchMessages messages on
// "orders" (a produce and consumes by groups a and b each) to the events
// topic and returns how many there are.
func preloadEvents(b *testing.B, brokers []string) int {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(audit.DefaultEventsTopic),
		kgo.RecordPartitioner(audit.Partitioner()), kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	base := time.Now().UnixNano()
	var failed atomic.Int64
	n := 0
	for i := range benchMessages {
		id := fmt.Sprintf("%08x-bench-%012d", i, i)
		at := base + int64(i)*int64(time.Microsecond)
		evs := []*codecs.Event{{Version: 1, Kind: codecs.KindProduce, CorrelationID: id, Topic: "orders", Partition: int32(i % 12),
			Offset: int64(i), ClientID: "producer-1", Host: "host-1", Source: "franz-go", SendNs: at, AckNs: at + 1e6, Digest: 9, PayloadSize: 100}}
		for _, g := range []string{"a", "b"} {
			evs = append(evs, &codecs.Event{Version: 1, Kind: codecs.KindConsume, CorrelationID: id, Topic: "orders", Partition: int32(i % 12),
				Offset: int64(i), ClientID: g + "-1", Group: g, Host: "host-2", Source: "franz-go", ConsumeNs: at + 3e6, Digest: 9, PayloadSize: 100})
		}
		for _, e := range evs {
			n++
			cl.Produce(context.Background(), &kgo.Record{Key: []byte(id), Value: codecs.AppendEvent(nil, e)}, func(_ *kgo.Record, err error) {
				if err != nil {
					failed.Add(1)
				}
			})
		}
	}
	if err := cl.Flush(context.Background()); err != nil || failed.Load() > 0 {
		b.Fatalf("preload: %v, %d failed", err, failed.Load())
	}
	return n
}

// runBareGoka returns the events per second, and the process CPU ns per
// event, of a goka processor that reads and writes its LevelDB group table
// per event.
func runBareGoka(b *testing.B, brokers []string, total, run int) (rate, cpuNsPerEvent float64) {
	b.Helper()
	proc, seen, err := bareGoka(brokers, b.TempDir(), run)
	if err != nil {
		b.Fatal(err)
	}
	rate, cpu, stop := timeRun(b, func(ctx context.Context) error { return proc.Run(ctx) }, seen.Load, int64(total), "bare")
	stop()
	dropRunTopics(b, brokers)
	logLeft(b, "bare goka run "+strconv.Itoa(run))
	return rate, cpu
}

// bareGoka is a goka processor that reads and writes its LevelDB group
// table (under dir) per event, nothing else, and counts the events.
func bareGoka(brokers []string, dir string, run int) (*goka.Processor, *atomic.Int64, error) {
	seen := new(atomic.Int64)
	g := goka.DefineGroup(goka.Group("bench-bare-"+strconv.Itoa(run)),
		goka.Input(goka.Stream(audit.DefaultEventsTopic), new(codec.Bytes), func(ctx goka.Context, msg any) {
			v, _ := ctx.Value().([]byte)
			ctx.SetValue(append(v[:0:0], msg.([]byte)...))
			seen.Add(1)
		}),
		goka.Persist(new(codec.Bytes)),
	)
	sc := gokaopts.Sarama(nil)
	sc.Producer.Idempotent, sc.Net.MaxOpenRequests = false, 5 // goka's own defaults
	proc, err := goka.NewProcessor(brokers, g,
		goka.WithStorageBuilder(storage.DefaultBuilder(dir)),
		goka.WithConsumerGroupBuilder(goka.ConsumerGroupBuilderWithConfig(sc)),
		goka.WithConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(sc)),
		goka.WithProducerBuilder(goka.ProducerBuilderWithConfig(sc)),
		goka.WithTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(sc, gokaopts.TopicManager(1))),
		goka.WithLogger(gokaopts.Logger{L: nullLogger()}))
	return proc, seen, err
}

// logLeft logs what a run left in the process (goroutines, heap): later
// runs share it.
func logLeft(b *testing.B, what string) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	b.Logf("after %s: %d goroutines, %d MB of heap in use", what, runtime.NumGoroutine(), m.HeapInuse>>20)
	if dir := os.Getenv("KAUDIT_BENCH_GOROUTINES"); dir != "" { // where to write each run's goroutine dump
		name := filepath.Join(dir, strings.NewReplacer(" ", "-", "(", "", ")", "").Replace(what)+".txt")
		if f, err := os.Create(name); err == nil {
			_ = pprof.Lookup("goroutine").WriteTo(f, 1)
			_ = f.Close()
		}
	}
}

// benchConfig is the configuration of a benchmark run's correlator: its
// own group, table, verdicts and lost topic, its table under dir.
func benchConfig(brokers []string, dir string, run int) Config {
	verdicts := "bench.verdicts." + strconv.Itoa(run)
	return Config{
		Brokers: brokers, Group: "bench-correlator-" + strconv.Itoa(run), VerdictsTopic: verdicts, DLQTopic: verdicts + ".dlq",
		LearnerGroup: "bench-learner-" + strconv.Itoa(run), Partitions: benchPartitions,
		// Deadline, grace and duplicate window longer than the benchmark:
		// the preloaded events' times do not change as it runs, and with
		// the default 5 min window the runs after its first 5 minutes
		// would also delete every trail they folded (their messages
		// consumed by every group more than 5 minutes before), in sweeps
		// of 30,000 trails and seconds each, that the earlier runs do not.
		StorageDir: filepath.Join(dir, "table"), DefaultDeadline: time.Hour, Grace: time.Hour, DuplicateWindow: time.Hour,
		Expectations: []*expectations.Expectation{
			{Topic: "orders", Groups: []string{"a", "b"}},
			{Topic: lostTopic(run), Groups: []string{"a"}, Deadline: expectations.Duration(benchLostWithin)},
		},
	}
}

// corRun is what a correlator run measured.
type corRun struct {
	rate, cpu     float64          // events per second, process CPU ns per event
	lateness      [3]time.Duration // p50, p99, max of decided − deadline of the lost topic's LOST verdicts
	bytesPerTrail float64          // disk
	sweeps        uint64           // during the run, and their mean and longest time
	sweepMean     time.Duration
	sweepMax      time.Duration
}

// runCorrelator runs the correlator with open trails preloaded in its
// table: it reads the preloaded events, then decides the lost topic's
// deadlines.
func runCorrelator(b *testing.B, brokers []string, total, open, run int) (r corRun) {
	b.Helper()
	dir := b.TempDir()
	group := "bench-correlator-" + strconv.Itoa(run)
	verdicts := "bench.verdicts." + strconv.Itoa(run)
	table := string(goka.GroupTable(goka.Group(group)))
	if open > 0 {
		preloadInChild(b, filepath.Join(dir, "table"), table, open)
	}
	// Every run, empty or not, starts from the same state: the earlier
	// runs' garbage collected, their files written out.
	runtime.GC()
	syscall.Sync()
	cor, err := New(benchConfig(brokers, dir, run))
	if err != nil {
		b.Fatal(err)
	}
	if err := cor.EnsureTopics(); err != nil {
		b.Fatal(err)
	}
	var stop func()
	r.rate, r.cpu, stop = timeRun(b, cor.Run, func() int64 { return int64(cor.Stats().Events) }, int64(total), fmt.Sprintf("open=%d", open))
	// Then messages whose expected group never reads them: their LOST
	// verdicts show how close to its deadline each is decided, with the
	// table as large as it is.
	produceLost(b, brokers, lostTopic(run))
	r.lateness = lostLateness(b, brokers, verdicts, lostTopic(run))
	st := cor.Stats()
	stop()
	if r.sweeps, r.sweepMax = st.Sweeps, st.SweepMax; st.Sweeps > 0 {
		r.sweepMean = st.SweepTime / time.Duration(st.Sweeps)
	}
	dropRunTopics(b, brokers)
	logLeft(b, fmt.Sprintf("correlator run %d (%d open trails)", run, open))
	var disk int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			disk += fi.Size()
		}
		return nil
	})
	_ = os.RemoveAll(dir) // 10 M trails take a GB: gone before the next run
	r.bytesPerTrail = float64(disk) / float64(open+benchMessages+benchLost)
	return r
}

// timeRun starts run, waits until count reaches total and returns the rate
// from the first counted event to the last (startup — recovery, opening
// the storage — is logged apart) and a function that stops the run; what
// names the run in profiles.
func timeRun(b *testing.B, run func(context.Context) error, count func() int64, total int64, what string) (float64, float64, func()) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	began := time.Now()
	go func() {
		// Labelled, so that a profile of the benchmark tells the runs (and
		// the goroutines they start) from the preloads and from each other:
		// -tagfocus phase=run, -tagfocus what=open=1000000.
		pprof.Do(ctx, pprof.Labels("phase", "run", "what", what), func(ctx context.Context) { done <- run(ctx) })
	}()
	var first time.Time
	var before int64
	var cpu0 time.Duration
	for count() < total {
		select {
		case err := <-done:
			b.Fatalf("stopped after %d of %d events: %v", count(), total, err)
		case <-time.After(5 * time.Millisecond):
		}
		if n := count(); first.IsZero() && n > 0 {
			first, before, cpu0 = time.Now(), n, processCPU()
		}
		if time.Since(began) > 10*time.Minute {
			b.Fatalf("%d of %d events after 10 minutes", count(), total)
		}
	}
	took, cpu := time.Since(first), processCPU()-cpu0
	total -= before
	return float64(total) / took.Seconds(), float64(cpu.Nanoseconds()) / float64(total), func() { cancel(); <-done }
}

// processCPU is the CPU time of the whole process (the in-process broker
// included): unlike wall time, barely changed by other processes' load.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// dropRunTopics deletes every topic but the preloaded events, so that a
// run does not pay for the earlier runs' verdicts and changelogs in the
// in-process broker's memory (and its garbage collector's work).
func dropRunTopics(b *testing.B, brokers []string) {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var drop []string
	for _, t := range topics.Names() {
		if t != audit.DefaultEventsTopic {
			drop = append(drop, t)
		}
	}
	if len(drop) > 0 {
		if _, err := adm.DeleteTopics(ctx, drop...); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
}

// produceLost writes benchLost produce events of the "lost" topic, acked
// now: their deadline falls benchLostWithin later.
// lostTopic is the topic of a run's produce-only messages (each run its
// own: a later run reads the earlier runs' events too).
func lostTopic(run int) string { return "lost-" + strconv.Itoa(run) }

func produceLost(b *testing.B, brokers []string, topic string) {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(audit.DefaultEventsTopic),
		kgo.RecordPartitioner(audit.Partitioner()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	began := time.Now()
	for i := range benchLost {
		now := time.Now().UnixNano()
		id := fmt.Sprintf("lost-%d-%d", now, i)
		e := &codecs.Event{Version: 1, Kind: codecs.KindProduce, CorrelationID: id, Topic: topic, Partition: 0, Offset: int64(i),
			SendNs: now, AckNs: now, PayloadSize: 1}
		cl.Produce(context.Background(), &kgo.Record{Key: []byte(id), Value: codecs.AppendEvent(nil, e)}, nil)
	}
	if err := cl.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	// Their acknowledgement times are those of their making: a slow write
	// here shows in decided − deadline.
	if took := time.Since(began); took > time.Second {
		b.Logf("the lost topic's %d events took %s to write", benchLost, took.Round(time.Millisecond))
	}
}

// lostLateness waits for the LOST verdicts of the lost topic and returns
// the p50, p99 and max of decided − deadline.
func lostLateness(b *testing.B, brokers []string, verdicts, lost string) [3]time.Duration {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(verdicts), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), benchLostWithin+2*time.Minute)
	defer cancel()
	var late []time.Duration
	seen := map[string]bool{}
	for len(seen) < benchLost && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			var v codecs.Verdict
			if codecs.UnmarshalVerdict(r.Value, &v) == nil && v.Topic == lost && v.Status == codecs.StatusLost && !seen[v.CorrelationID] {
				seen[v.CorrelationID] = true
				late = append(late, time.Duration(v.DecidedNs-v.DeadlineNs))
			}
		})
	}
	if len(seen) < benchLost {
		b.Fatalf("%d of %d LOST verdicts", len(seen), benchLost)
	}
	slices.Sort(late)
	return [3]time.Duration{late[len(late)/2], late[len(late)*99/100], late[len(late)-1]}
}

// preloadInChild runs preloadTrails in a child process (this test binary
// again, TestPreloadTrailsChild) and waits for it: building 10 M trails
// in the benchmark's own process left it 10–20 % slower for the run that
// followed, even on an empty table (its heap grown and given back, pages
// to fault in again), which is not what a table of that size costs.
func preloadInChild(b *testing.B, dir, table string, n int) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPreloadTrailsChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "KAUDIT_BENCH_PRELOAD_DIR="+dir, "KAUDIT_BENCH_PRELOAD_TABLE="+table, "KAUDIT_BENCH_PRELOAD_N="+strconv.Itoa(n))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestPreloadTrailsChild") {
		b.Fatalf("preload in a child process: %v\n%s", err, out)
	}
}

// TestPreloadTrailsChild is BenchmarkCorrelatorScale's child process; run
// otherwise, it is skipped.
func TestPreloadTrailsChild(t *testing.T) {
	dir := os.Getenv("KAUDIT_BENCH_PRELOAD_DIR")
	if dir == "" {
		t.Skip("BenchmarkCorrelatorScale's child process")
	}
	n, err := strconv.Atoi(os.Getenv("KAUDIT_BENCH_PRELOAD_N"))
	if err != nil {
		t.Fatal(err)
	}
	preloadTrails(t, dir, os.Getenv("KAUDIT_BENCH_PRELOAD_TABLE"), n)
}

// preloadTrails writes open trails into the correlator's storage, each in
// the partition goka keeps its key in, not due for an hour, with an
// expected group that has not consumed.
func preloadTrails(b testing.TB, dir, table string, n int) {
	b.Helper()
	ss := newStorages(dir, table)
	stores := make([]*tableStorage, benchPartitions)
	for p := range stores {
		st, err := ss.builder()(table, int32(p))
		if err != nil {
			b.Fatal(err)
		}
		if err := st.Open(); err != nil {
			b.Fatal(err)
		}
		stores[p] = st.(*tableStorage)
	}
	// The key filters a correlator that wrote these trails would have
	// saved at its last close (without, each partition's is built from a
	// scan of its table at Open: what a restart after a crash costs).
	for _, st := range stores {
		if os.Getenv("KAUDIT_BENCH_NO_SAVED_FILTER") != "" {
			break
		}
		st.fmu.Lock()
		st.building = nil // an empty table's scan, if still running, is dropped
		st.filter = newKeyFilter(min(max(2*n/benchPartitions+n/50, ss.filterMin), ss.filterMax))
		st.fmu.Unlock()
	}
	batches := make([]*pebble.Batch, benchPartitions)
	counts := make([]int64, benchPartitions)
	pendings := make([]map[[2]string]int64, benchPartitions)
	for p := range pendings {
		pendings[p] = map[[2]string]int64{}
	}
	now := time.Now().UnixNano()
	flush := func(p int) {
		if batches[p] == nil {
			return
		}
		if err := batches[p].Commit(pebble.NoSync); err != nil {
			b.Fatal(err)
		}
		batches[p].Close()
		batches[p] = nil
	}
	for i := range n {
		id := fmt.Sprintf("open-%012d", i)
		h := fnv.New32a()
		h.Write([]byte(id))
		p := int(int32(h.Sum32()) % benchPartitions)
		if p < 0 {
			p = -p
		}
		ack := now - int64(i)%int64(time.Minute)
		tr := &Trail{CorrelationID: id, NextDueNs: now + int64(time.Hour), Hops: []Hop{{
			Topic: "orders", FirstSeenNs: ack, LastSeenNs: ack, DeadlineNs: now + int64(time.Hour), RawDeadlineNs: now + int64(time.Hour),
			Produce:  &ProduceFacts{Partition: int32(i % 12), Offset: int64(i), ClientID: "producer-1", Host: "host-1", SendNs: ack - 1e6, AckNs: ack, Digest: 9, PayloadSize: 100},
			Expected: []ExpectedGroup{{Group: "a"}, {Group: "b"}},
			Groups:   []GroupFacts{{Group: "b", ClientID: "b-1", Host: "host-2", Partition: int32(i % 12), Offset: int64(i), FirstConsumeNs: ack + 3e6, LastConsumeNs: ack + 3e6, Count: 1, Digest: 9, Status: codecs.StatusDelivered, Emitted: 1, Seq: uint64(ack + 3e6)}},
		}}}
		v := AppendTrail(nil, tr)
		if batches[p] == nil {
			batches[p] = stores[p].db.NewBatch()
		}
		bt := batches[p]
		counts[p]++
		_ = bt.Set(dataKey(id), v, nil)
		if f := stores[p].filter; f != nil {
			f.add(id)
		}
		for _, k := range indexKeys(id, v) {
			_ = bt.Set(k, nil, nil)
			if pid, _, ok := parsePendingKey(k); ok {
				pendings[p][pid]++
			}
		}
		if bt.Count() >= 20_000 {
			flush(p)
		}
	}
	for p := range stores {
		flush(p)
		// The counts a correlator that wrote these trails would have stored.
		st := stores[p]
		st.trails.Store(counts[p])
		st.wmu.Lock()
		st.pendings = pendings[p]
		c := st.encodeCounts()
		st.wmu.Unlock()
		if err := st.db.Set(countsKey, c, pebble.NoSync); err != nil {
			b.Fatal(err)
		}
		// Compact what was loaded, so the run measures a settled table,
		// not the preload's compaction debt.
		if err := stores[p].db.Compact(context.Background(), []byte{0}, []byte{0xff}, true); err != nil {
			b.Fatal(err)
		}
		if err := stores[p].Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func nullLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
