package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/internal/testing/itest"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
)

// chaosRecord is one line a test client wrote down (chaosclient's Record,
// skipconsumer.py's lines).
type chaosRecord struct {
	Value     string `json:"v"`
	Partition int32  `json:"p"`
	Offset    int64  `json:"o"`
	ID        string `json:"id"`
	AtNs      int64  `json:"t"`
	Err       string `json:"err"`
}

func readRecords(t *testing.T, paths ...string) []chaosRecord {
	t.Helper()
	var out []chaosRecord
	for _, p := range paths {
		f, err := os.Open(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var r chaosRecord
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				// A client killed mid-write leaves a torn last line; every
				// line before it is whole (each is synced before the
				// client goes on).
				continue
			}
			out = append(out, r)
		}
		f.Close()
	}
	return out
}

// TestChaos is the black-box acceptance test of "verdicts you can trust":
// kaudit's binaries run as separate processes against the embedded broker
// (3 brokers) and a real ClickHouse; expectations are set with the CLI as
// README shows; franz-go producers and consumers (chaosclient) and
// librdkafka ones loading the plugin (kcat producing, a confluent-kafka
// consumer that skips records) run as processes too. A payments member is
// SIGKILLed (its group rebalances and re-reads what it had not committed), the
// ledger group stalls past the deadline, and two correlators in one group
// and the sink are SIGKILLed again and again at random instants and
// restarted — on the same state directory, on an empty one. The expected
// verdict of every (message, group) is derived from what the clients wrote
// down (what the broker holds, what each poll returned and when), and
// compared with deliveries FINAL row by row: nothing missing, nothing
// wrong, nothing extra.
func TestChaos(t *testing.T) {
	itest.Need(t, "kcat", "python3")
	seed := time.Now().UnixNano()
	if s := os.Getenv("KAUDIT_CHAOS_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	t.Logf("chaos seed %d (KAUDIT_CHAOS_SEED reproduces the schedule)", seed)

	const (
		deadline = 30 * time.Second
		margin   = 3 * time.Second
		goCount  = 1200
		goRate   = 40
	)
	bin := binaries(t)
	dir := t.TempDir()
	if os.Getenv("KAUDIT_CHAOS_KEEP") != "" {
		// Keep every process's log and every client's record after the test.
		dir = filepath.Join(os.TempDir(), fmt.Sprintf("kaudit-chaos-%d", seed))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Logf("keeping the logs in %s", dir)
	}
	e := newEnvCluster(t, kafkatest.NewCluster(t, kfake.NumBrokers(3)))
	brokers := strings.Join(e.brokers, ",")
	kafkatest.CreateTopic(t, e.cluster, "orders", 6)

	// The correlators and the sink, as README runs them.
	type comp struct {
		p       *proc
		addr    string
		storage string
		restart int
	}
	correlators := []*comp{{}, {}}
	startCorrelator := func(i int, fresh bool) {
		c := correlators[i]
		if c.storage == "" || fresh {
			c.storage = filepath.Join(dir, fmt.Sprintf("correlator-%d-%d", i, c.restart))
		}
		c.restart++
		c.addr = freeAddr(t)
		args := []string{"--brokers", brokers, "--storage-dir", c.storage, "--metrics-addr", c.addr,
			"--sweep-interval", "1s", "--grace", "2m", "--log-level", "info"}
		if i == 0 {
			// Correlator 0 takes its partitions back at once when it
			// restarts (static membership); correlator 1's move through a
			// rebalance.
			args = append(args, "--group-instance-id", "correlator-0")
		}
		c.p = startProc(t, dir, fmt.Sprintf("correlator-%d", i), filepath.Join(bin, "kaudit-correlator"), args...)
	}
	sink := &comp{}
	startSink := func() {
		sink.addr = freeAddr(t)
		sink.p = startProc(t, dir, "sink", filepath.Join(bin, "kaudit-sink"),
			"--brokers", brokers, "--clickhouse-addr", e.ch.Addr, "--clickhouse-database", e.ch.Database,
			"--metrics-addr", sink.addr, "--flush.interval", "300ms", "--group-instance-id", "sink-0")
	}
	startCorrelator(0, true)
	startCorrelator(1, true)
	startSink()
	for _, c := range correlators {
		waitReady(t, c.p, c.addr, 90*time.Second)
	}

	// Expectations, exactly as README shows them.
	expect := exec.Command(filepath.Join(bin, "kaudit"), "expect", "set", "orders", "payments,shipping,ledger",
		"--deadline", deadline.String(), "--brokers", brokers)
	if out, err := expect.CombinedOutput(); err != nil {
		t.Fatalf("kaudit expect set: %v\n%s", err, out)
	}
	list, err := exec.Command(filepath.Join(bin, "kaudit"), "expect", "list", "--brokers", brokers).CombinedOutput()
	if err != nil || !strings.Contains(string(list), "[payments shipping ledger]") {
		t.Fatalf("kaudit expect list: %v\n%s", err, list)
	}

	// Consumers.
	consumer := func(name, group string, extra ...string) *proc {
		args := append([]string{"consume", "--brokers", brokers, "--topic", "orders", "--group", group,
			"--log", filepath.Join(dir, name+".jsonl")}, extra...)
		p := startProc(t, dir, name, filepath.Join(bin, "chaosclient"), args...)
		p.waitLine("started", 30*time.Second)
		return p
	}
	pay1 := consumer("payments-1", "payments")
	pay2 := consumer("payments-2", "payments")
	ledger := consumer("ledger", "ledger", "--stall-after", "300", "--stall-for", "70s")
	ship := startProc(t, dir, "shipping", "/usr/bin/python3", filepath.Join("testdata", "skipconsumer.py"),
		"--plugin", filepath.Join(bin, "kaudit-rdkafka.so"), "--bootstrap", brokers, "--topic", "orders",
		"--group", "shipping", "--log", filepath.Join(dir, "shipping.jsonl"), "--skip-after", "60", "--skip", "5")
	ship.waitLine("started", 30*time.Second)

	// Producers: a franz-go one, and kcat with the plugin in bursts.
	began := time.Now()
	goProd := startProc(t, dir, "producer", filepath.Join(bin, "chaosclient"), "produce", "--brokers", brokers,
		"--topic", "orders", "--prefix", "go", "--count", fmt.Sprint(goCount), "--rate", fmt.Sprint(goRate),
		"--log", filepath.Join(dir, "produced.jsonl"))
	kcatDone := make(chan error, 1)
	go func() {
		for b := range 5 {
			time.Sleep(time.Until(began.Add(time.Duration(3+6*b) * time.Second)))
			var lines strings.Builder
			for i := range 50 {
				fmt.Fprintf(&lines, "kc-%d-%d\n", b, i)
			}
			cmd := exec.Command("kcat", "-P", "-b", brokers, "-t", "orders",
				"-X", "plugin.library.paths="+filepath.Join(bin, "kaudit-rdkafka.so"), "-X", "audit.topic=kaudit.events")
			cmd.Stdin = strings.NewReader(lines.String())
			if out, err := cmd.CombinedOutput(); err != nil {
				kcatDone <- fmt.Errorf("kcat burst %d: %v\n%s", b, err, out)
				return
			}
		}
		kcatDone <- nil
	}()

	// The chaos: kills at random instants.
	at := func(sec float64) {
		time.Sleep(time.Until(began.Add(time.Duration((sec + rng.Float64()*2 - 1) * float64(time.Second)))))
	}
	killCorrelator := func(i int, fresh bool, pause time.Duration) {
		t.Logf("%5.1fs SIGKILL correlator %d (restart on %s state after %s)", time.Since(began).Seconds(), i,
			map[bool]string{true: "an empty", false: "the same"}[fresh], pause)
		correlators[i].p.kill()
		time.Sleep(pause)
		startCorrelator(i, fresh)
	}
	killSink := func(pause time.Duration) {
		t.Logf("%5.1fs SIGKILL sink (restart after %s)", time.Since(began).Seconds(), pause)
		sink.p.kill()
		time.Sleep(pause)
		startSink()
	}
	kills := 0
	at(5)
	killCorrelator(0, false, 2*time.Second)
	kills++
	at(10)
	killSink(time.Second)
	kills++
	at(14)
	t.Logf("%5.1fs payments-1 polls once without committing, then is SIGKILLed", time.Since(began).Seconds())
	pay1.send("pause")
	pay1.waitLine("paused", 30*time.Second)
	pay1.kill()
	at(18)
	killCorrelator(1, true, 3*time.Second)
	kills++
	at(24)
	killSink(0)
	kills++
	at(28)
	killCorrelator(0, true, time.Second)
	kills++
	if err := <-kcatDone; err != nil {
		t.Fatal(err)
	}
	goProd.waitLine("produced", 90*time.Second)
	t.Logf("%5.1fs production done", time.Since(began).Seconds())
	// While deadlines fall due (the first messages' at 30s on).
	at(40)
	killCorrelator(1, false, 2*time.Second)
	kills++
	at(50)
	killSink(2 * time.Second)
	kills++
	at(62)
	killCorrelator(0, false, 0)
	kills++

	// Every consumer is done once the ledger has resumed and caught up.
	ledger.waitLine("resumed", 120*time.Second)
	written := readTopic(t, e.brokers, "orders")
	waitFor(t, 90*time.Second, "consumers caught up", func() (bool, string) {
		var missing []string
		for name, files := range map[string][]string{"payments": {"payments-1", "payments-2"}, "ledger": {"ledger"}} {
			seen := map[string]bool{}
			for _, r := range readRecords(t, paths(dir, files)...) {
				seen[r.Value] = true
			}
			if len(seen) < len(written) {
				missing = append(missing, fmt.Sprintf("%s %d/%d", name, len(seen), len(written)))
			}
		}
		return len(missing) == 0, strings.Join(missing, ", ")
	})
	t.Logf("%5.1fs consumers caught up", time.Since(began).Seconds())
	for _, p := range []*proc{pay2, ledger} {
		p.send("stop")
		p.waitLine("stopped", 30*time.Second)
	}
	if err := ship.stop(syscall.SIGTERM, 30*time.Second); err != nil {
		t.Error(err)
	}

	// The ground truth.
	produced := map[string]chaosRecord{} // by value
	for _, r := range readRecords(t, filepath.Join(dir, "produced.jsonl")) {
		if r.Err != "" {
			t.Fatalf("produce of %s failed: %s", r.Value, r.Err)
		}
		produced[r.Value] = r
	}
	polls := map[string]map[string][]chaosRecord{
		"payments": byValue(readRecords(t, paths(dir, []string{"payments-1", "payments-2"})...)),
		"shipping": byValue(readRecords(t, paths(dir, []string{"shipping"})...)),
		"ledger":   byValue(readRecords(t, paths(dir, []string{"ledger"})...)),
	}
	type key struct{ id, group string }
	want := map[key]string{}
	var ambiguous []string
	counts := map[string]int{}
	for _, w := range written {
		ack := w.AtNs // kcat's messages: the record's create time, within ms of the ack
		if p, ok := produced[w.Value]; ok {
			ack = p.AtNs
		}
		for group, byV := range polls {
			ps := byV[w.Value]
			var verdict string
			switch {
			case len(ps) == 0:
				verdict = "LOST/not_consumed"
			default:
				first := ps[0].AtNs
				for _, p := range ps {
					first = min(first, p.AtNs)
				}
				late := time.Duration(first - ack)
				switch {
				case late > deadline+margin:
					verdict = "LATE/after_deadline"
				case late > deadline-margin:
					ambiguous = append(ambiguous, fmt.Sprintf("%s %s read %s after its ack", w.Value, group, late))
				case len(ps) > 1:
					verdict = "DUPLICATE/redelivery"
				default:
					verdict = "DELIVERED/"
				}
			}
			want[key{w.ID, group}] = verdict
			counts[group+" "+verdict]++
		}
	}
	if len(ambiguous) > 0 {
		t.Fatalf("the scenario left %d verdicts too close to the deadline to derive: %v", len(ambiguous), ambiguous[:min(5, len(ambiguous))])
	}
	t.Logf("%d messages written (%d by franz-go, %d by kcat); expected verdicts: %v", len(written), len(produced), len(written)-len(produced), counts)
	for _, must := range []string{"payments DUPLICATE/redelivery", "shipping LOST/not_consumed", "ledger LATE/after_deadline", "ledger DELIVERED/"} {
		if counts[must] == 0 {
			t.Fatalf("the scenario produced no %q verdict: it does not test what it should", must)
		}
	}

	// kaudit's verdicts, once the last deadlines have passed and every row
	// is in ClickHouse.
	deliveries := e.table("deliveries")
	compare := func() (missing, wrong, extra int, detail []string) {
		rows, err := e.conn.Query(context.Background(),
			"SELECT correlation_id, consumer_group, status, cause FROM "+deliveries+" FINAL WHERE topic = 'orders'")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		got := map[key]string{}
		for rows.Next() {
			var id, group, status, cause string
			if err := rows.Scan(&id, &group, &status, &cause); err != nil {
				t.Fatal(err)
			}
			if _, dup := got[key{id, group}]; dup {
				extra++
				detail = append(detail, fmt.Sprintf("two rows for %s/%s after FINAL", id, group))
			}
			got[key{id, group}] = status + "/" + cause
		}
		for k, w := range want {
			g, ok := got[k]
			switch {
			case !ok:
				missing++
				detail = append(detail, fmt.Sprintf("missing %s/%s (want %s)", k.id, k.group, w))
			case g != w:
				wrong++
				detail = append(detail, fmt.Sprintf("%s/%s is %s, want %s", k.id, k.group, g, w))
			}
		}
		for k, g := range got {
			if _, ok := want[k]; !ok {
				extra++
				detail = append(detail, fmt.Sprintf("extra %s/%s %s", k.id, k.group, g))
			}
		}
		sort.Strings(detail)
		return missing, wrong, extra, detail
	}
	var missing, wrong, extra int
	var detail []string
	lastLog := time.Now()
	waitFor(t, 3*time.Minute, "ClickHouse to hold exactly the expected verdicts", func() (bool, string) {
		missing, wrong, extra, detail = compare()
		if time.Since(lastLog) > 10*time.Second {
			lastLog = time.Now()
			kinds := map[string]int{}
			for _, d := range detail {
				f := strings.Fields(d)
				if len(f) > 0 && f[0] == "missing" {
					kinds[strings.SplitN(f[1], "/", 2)[1]+" "+strings.Trim(f[len(f)-1], ")")]++
				}
			}
			// Where are the missing ones: not written by the correlators yet,
			// or not stored by the sink yet?
			inTopic := 0
			for _, r := range readTopic(t, e.brokers, audit.DefaultVerdictsTopic) {
				_ = r
				inTopic++
			}
			t.Logf("%5.1fs %d missing %v, %d wrong, %d extra; %d records in %s", time.Since(began).Seconds(), missing, kinds, wrong, extra,
				inTopic, audit.DefaultVerdictsTopic)
		}
		return missing+wrong+extra == 0, fmt.Sprintf("%d missing, %d wrong, %d extra: %v", missing, wrong, extra, detail[:min(8, len(detail))])
	})
	t.Logf("%5.1fs ClickHouse holds exactly the expected verdicts", time.Since(began).Seconds())
	t.Logf("%d kills of kaudit processes (correlators and sink) and one consumer; %d verdicts compared: 0 missing, 0 wrong, 0 extra",
		kills, len(want))
}

func paths(dir string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = filepath.Join(dir, n+".jsonl")
	}
	return out
}

func byValue(rs []chaosRecord) map[string][]chaosRecord {
	m := map[string][]chaosRecord{}
	for _, r := range rs {
		m[r.Value] = append(m[r.Value], r)
	}
	return m
}

// readTopic reads every record of topic (no audit hooks: what the broker
// holds): value, position, correlation ID and create time.
func readTopic(t *testing.T, brokers []string, topic string) []chaosRecord {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	var out []chaosRecord
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for int64(len(out)) < total && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			id := ""
			for _, h := range r.Headers {
				if h.Key == audit.CorrelationHeader {
					id = string(h.Value)
				}
			}
			out = append(out, chaosRecord{Value: string(r.Value), Partition: r.Partition, Offset: r.Offset, ID: id, AtNs: r.Timestamp.UnixNano()})
		})
	}
	if int64(len(out)) != total {
		t.Fatalf("read %d of %d records of %s", len(out), total, topic)
	}
	return out
}
