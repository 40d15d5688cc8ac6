package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/interceptors/emitter"
	"github.com/kaudit/kaudit/interceptors/kgoaudit"
	"github.com/kaudit/kaudit/internal/testing/itest"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
	"github.com/kaudit/kaudit/report"
)

// lagPeriod is how often the correlator reports the lag: at the start of
// every minute, for that minute.
const lagPeriod = time.Minute

// TestLagStoredPerMinute: the real kaudit-correlator and kaudit-sink
// binaries against kfake and ClickHouse 18.16. Group "fast" reads every
// message of orders at once, group "stalled" none. The correlator's
// per-minute report reaches consumer_lag_1m through the sink, and the
// stored lag of stalled is what the test knows: every message pending,
// the oldest one acknowledged when the test produced it, its age the time
// from then to the report, which the correlator makes within the report
// period after the minute starts (and before the test saw the row); fast
// has no row. The report sent again to the lag topic (a sink retry, a
// correlator re-sending its minute) leaves the group's pending count as it
// was, and `kaudit report --lag` prints the row.
func TestLagStoredPerMinute(t *testing.T) {
	itest.Integration(t)
	bin := binaries(t)
	dir := t.TempDir()
	e := newEnv(t)
	brokers := strings.Join(e.brokers, ",")
	kafkatest.CreateTopic(t, e.cluster, "orders", 3)
	exp := filepath.Join(dir, "expectations.yaml")
	if err := os.WriteFile(exp, []byte("topics:\n  orders:\n    groups: [fast, stalled]\n    deadline: 10m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	corrAddr, sinkAddr := freeAddr(t), freeAddr(t)
	corr := startProc(t, dir, "correlator", filepath.Join(bin, "kaudit-correlator"), "--brokers", brokers,
		"--storage-dir", filepath.Join(dir, "storage"), "--metrics-addr", corrAddr, "--expectations-file", exp, "--log-level", "info")
	waitReady(t, corr, corrAddr, 90*time.Second) // the correlator has created the lag topic
	sink := startProc(t, dir, "sink", filepath.Join(bin, "kaudit-sink"), "--brokers", brokers,
		"--clickhouse-addr", e.ch.Addr, "--clickhouse-database", e.ch.Database, "--metrics-addr", sinkAddr, "--flush.interval", "200ms")
	waitReady(t, sink, sinkAddr, 90*time.Second)

	em, err := emitter.New(emitter.Config{Brokers: e.brokers, Logger: e.log})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close(context.Background())
	prod, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.DefaultProduceTopic("orders"), kgo.WithHooks(kgoaudit.New(em)))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	const messages = 21
	// The first message is the oldest stalled never reads: its
	// acknowledgement lies between sending it and ProduceSync returning.
	beforeFirst := time.Now()
	if err := prod.ProduceSync(context.Background(), &kgo.Record{Value: []byte("first")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	afterFirst := time.Now()
	for i := 1; i < messages; i++ {
		if err := prod.ProduceSync(context.Background(), &kgo.Record{Value: fmt.Appendf(nil, "m%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	lastAck := time.Now()
	consumeAll(t, e.brokers, em, "orders", "fast", messages)

	// The first minute that starts well after the last acknowledgement
	// (the correlator folds events within seconds) has every message
	// pending for stalled. A report for an earlier minute may count fewer.
	const fold = 10 * time.Second
	first := lastAck.Add(fold).Truncate(time.Minute).Add(time.Minute)
	var row report.LagMinute
	var seenAt time.Time
	waitFor(t, time.Until(first)+lagPeriod+30*time.Second, "the lag of stalled for minute "+first.UTC().Format(time.TimeOnly), func() (bool, string) {
		rows, err := report.Lag(context.Background(), e.conn, e.ch.Database, report.Filter{Since: beforeFirst.Add(-time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		seenAt = time.Now()
		for _, r := range rows {
			if r.Topic != "orders" || r.Group != "stalled" {
				t.Fatalf("a lag row for %s/%s: %+v (fast consumed everything)", r.Topic, r.Group, r)
			}
			if r.Pending > messages {
				t.Fatalf("%d pending in minute %s, but only %d messages were produced", r.Pending, r.Minute, messages)
			}
			if r.Minute.Equal(first) {
				row = r
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", rows)
	})
	if row.Pending != messages || row.Instances != 1 {
		t.Errorf("minute %s: %d pending from %d instances, want all %d messages from the one correlator", row.Minute, row.Pending, row.Instances, messages)
	}
	if oldest := time.Unix(0, row.OldestAckNs); oldest.Before(beforeFirst) || oldest.After(afterFirst) {
		t.Errorf("oldest unconsumed acknowledged at %s, want between %s and %s (the first message's ProduceSync)",
			oldest.Format(time.StampMicro), beforeFirst.Format(time.StampMicro), afterFirst.Format(time.StampMicro))
	}
	// The report was made at oldest + age: within the report period after
	// the minute started, and before the test saw it. So the age is at
	// least from the first ack to the minute, at most from the first send
	// to when the row was seen (the age is whole milliseconds).
	age := row.Age()
	latest := first.Add(lagPeriod)
	if seenAt.Before(latest) {
		latest = seenAt
	}
	lo, hi := first.Sub(afterFirst)-time.Millisecond, latest.Sub(beforeFirst)
	t.Logf("minute %s: stalled's lag %s (want %s to %s), %d pending", first.UTC().Format(time.TimeOnly), age, lo, hi, row.Pending)
	if age < lo || age > hi {
		t.Errorf("lag of stalled in minute %s: %s, want %s to %s (the first message's age between the minute's start and the report)",
			first.UTC().Format(time.TimeOnly), age, lo, hi)
	}
	if at := time.Unix(0, row.OldestAckNs).Add(age); at.Before(first.Add(-time.Millisecond)) || at.After(first.Add(lagPeriod)) {
		t.Errorf("report made at %s, not within the report period after %s", at.Format(time.StampMilli), first.Format(time.StampMilli))
	}

	// The same report again, then a marker behind it on its partition:
	// once the marker is stored, so is the repeat.
	var orig *kgo.Record
	for _, rec := range kafkatest.Consume(t, e.cluster, audit.DefaultLagTopic, 100, 3*time.Second) {
		var r audit.LagReport
		if err := json.Unmarshal(rec.Value, &r); err != nil {
			t.Fatalf("lag record %q: %v", rec.Value, err)
		}
		if r.Minute == first.Unix() && r.Group == "stalled" {
			orig = rec
		}
	}
	if orig == nil {
		t.Fatalf("no report of minute %s on %s", first, audit.DefaultLagTopic)
	}
	marker, err := json.Marshal(audit.LagReport{Minute: first.Unix(), Topic: "marker", Group: "marker", Instance: "test", OldestAckNs: 1, Pending: 1})
	if err != nil {
		t.Fatal(err)
	}
	resend, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer resend.Close()
	if err := resend.ProduceSync(context.Background(),
		&kgo.Record{Topic: orig.Topic, Partition: orig.Partition, Key: orig.Key, Value: orig.Value},
		&kgo.Record{Topic: orig.Topic, Partition: orig.Partition, Key: []byte("marker"), Value: marker},
	).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the marker report to be stored", func() (bool, string) {
		rows, err := report.Lag(context.Background(), e.conn, e.ch.Database, report.Filter{Since: first, Topic: "marker"})
		if err != nil {
			t.Fatal(err)
		}
		return len(rows) == 1, fmt.Sprintf("%+v", rows)
	})
	again, err := report.Lag(context.Background(), e.conn, e.ch.Database, report.Filter{Since: first, Until: first.Add(time.Minute), Group: "stalled"})
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 1 || again[0].Pending != messages || again[0].Instances != 1 || again[0].AgeMs != row.AgeMs {
		t.Errorf("after the report was sent again: %+v, want the same %d pending from one instance", again, messages)
	}

	// kaudit report --lag prints it.
	out, err := exec.Command(filepath.Join(bin, "kaudit"), "report", "--lag", "--since", "1h", "--topic", "orders",
		"--clickhouse-addr", e.ch.Addr, "--clickhouse-database", e.ch.Database).CombinedOutput()
	if err != nil {
		t.Fatalf("kaudit report --lag: %v\n%s", err, out)
	}
	want := []string{"orders", "stalled", first.UTC().Format("2006-01-02"), first.UTC().Format("15:04"),
		age.Round(100 * time.Millisecond).String(), fmt.Sprint(messages)}
	found := false
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= len(want) && strings.Join(f[:len(want)], " ") == strings.Join(want, " ") {
			found = true
		}
	}
	if !found || strings.Contains(string(out), "marker") {
		t.Errorf("kaudit report --lag --topic orders has no line %q (or shows another topic):\n%s", strings.Join(want, " "), out)
	}
}
