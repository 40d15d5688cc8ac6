package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/interceptors/emitter"
	"github.com/kaudit/kaudit/interceptors/kgoaudit"
	"github.com/kaudit/kaudit/internal/app/pipeline"
	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/internal/testing/itest"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
	"github.com/kaudit/kaudit/report"
	"github.com/kaudit/kaudit/sinks"
	"github.com/kaudit/kaudit/store"
	"github.com/kaudit/kaudit/store/migrations"
)

func testLogger(t testing.TB) *slog.Logger {
	if lvl := os.Getenv("KAUDIT_TEST_LOG"); lvl != "" {
		var l slog.Level
		_ = l.UnmarshalText([]byte(lvl))
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
	}
	return slog.New(slog.DiscardHandler)
}

// env is one kaudit installation under test: a kfake cluster, a fresh
// ClickHouse database with the migrations applied.
type env struct {
	t       *testing.T
	cluster *kfake.Cluster
	brokers []string
	ch      store.Config
	conn    driver.Conn
	log     *slog.Logger
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvCluster(t, kafkatest.NewCluster(t))
}

// newEnvCluster is newEnv on a given cluster.
func newEnvCluster(t *testing.T, c *kfake.Cluster) *env {
	t.Helper()
	e := &env{t: t, log: testLogger(t)}
	e.cluster = c
	e.brokers = e.cluster.ListenAddrs()
	e.ch = chtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := migrations.Up(ctx, e.ch, e.log); err != nil {
		t.Fatalf("migrations: %v", err)
	}
	e.conn = chtest.Open(t, e.ch)
	return e
}

// startPipeline runs the correlator and the ClickHouse sink (consumer group
// sinkGroup) until the returned stop function is called.
func (e *env) startPipeline(sinkGroup string) (*pipeline.Pipeline, func()) {
	e.t.Helper()
	return e.startPipelineWith(pipeline.Config{SinkGroup: sinkGroup})
}

// startPipelineWith is startPipeline with settings of cfg (the env's
// brokers, ClickHouse, storage and logger are filled in).
func (e *env) startPipelineWith(cfg pipeline.Config) (*pipeline.Pipeline, func()) {
	e.t.Helper()
	cfg.Brokers, cfg.ClickHouse, cfg.Database, cfg.StorageDir, cfg.Logger = e.brokers, e.conn, e.ch.Database, e.t.TempDir(), e.log
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = 200 * time.Millisecond
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = 300 * time.Millisecond
	}
	p, err := pipeline.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := p.Correlator.EnsureTopics(); err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				e.t.Errorf("pipeline: %v", err)
			}
		})
	}
	e.t.Cleanup(stop)
	return p, stop
}

func (e *env) queryUint(query string, args ...any) uint64 {
	e.t.Helper()
	var n uint64
	if err := e.conn.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	return n
}

func (e *env) table(name string) string { return store.Table(e.ch.Database, name) }

// waitFor polls cond until it is true or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s (last: %s)", timeout, what, last)
}

// consumeAll reads topic in group with audit hooks until it has n records
// and returns the correlation IDs it saw.
func consumeAll(t *testing.T, brokers []string, em *emitter.Emitter, topic, group string, n int) map[string]bool {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ClientID(group+"-client"),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.WithHooks(kgoaudit.New(em)))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seen := map[string]bool{}
	for len(seen) < n && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == audit.CorrelationHeader {
					seen[string(h.Value)] = true
				}
			}
		})
	}
	if len(seen) != n {
		t.Fatalf("group %s read %d distinct correlation IDs, want %d", group, len(seen), n)
	}
	return seen
}

// TestSpine is the spine's acceptance test: an instrumented franz-go
// producer sends 1,000 messages to a 3-partition topic, two instrumented
// consumer groups read them, and ClickHouse then holds exactly 2,000
// DELIVERED deliveries; a sink restarted on a new consumer group writes
// everything again and the counts do not change.
func TestSpine(t *testing.T) {
	itest.Integration(t)
	const n = 1000
	e := newEnv(t)
	kafkatest.CreateTopic(t, e.cluster, "orders", 3)
	p, stopPipeline := e.startPipeline("sink-a")

	em, err := emitter.New(emitter.Config{Brokers: e.brokers, Logger: e.log})
	if err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ClientID("orders-producer"),
		kgo.DefaultProduceTopic("orders"), kgo.WithHooks(kgoaudit.New(em)))
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "order number %d", i)})
	}
	if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	prod.Close()
	produced := map[string]bool{}
	for _, r := range recs {
		for _, h := range r.Headers {
			if h.Key == audit.CorrelationHeader {
				produced[string(h.Value)] = true
			}
		}
	}
	if len(produced) != n {
		t.Fatalf("%d produced records carry a distinct correlation_id, want %d", len(produced), n)
	}

	for _, group := range []string{"billing", "search"} {
		seen := consumeAll(t, e.brokers, em, "orders", group, n)
		for id := range seen {
			if !produced[id] {
				t.Fatalf("group %s read correlation ID %s that the producer did not send", group, id)
			}
		}
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := em.Close(closeCtx); err != nil {
		t.Fatalf("emitter close: %v", err)
	}
	if s := em.Stats(); s.Dropped != 0 || s.Failed != 0 || s.Sent != 3*n {
		t.Fatalf("emitter stats %+v, want %d sent and nothing dropped or failed", s, 3*n)
	}

	deliveries := e.table("deliveries")
	events := e.table("events")
	waitFor(t, 90*time.Second, "2,000 DELIVERED deliveries in ClickHouse", func() (bool, string) {
		got := e.queryUint("SELECT count() FROM " + deliveries + " FINAL WHERE status = 'DELIVERED'")
		return got >= 2*n, fmt.Sprintf("%d deliveries, correlator %+v, sink %+v", got, p.Correlator.Stats(), p.Sink.Stats())
	})
	waitFor(t, 30*time.Second, "3,000 events in ClickHouse", func() (bool, string) {
		got := e.queryUint("SELECT count() FROM " + events + " FINAL")
		return got >= 3*n, fmt.Sprintf("%d events", got)
	})
	stopPipeline()

	check := func(stage string) {
		t.Helper()
		if got := e.queryUint("SELECT count() FROM " + deliveries + " FINAL"); got != 2*n {
			t.Errorf("%s: %d deliveries, want %d", stage, got, 2*n)
		}
		if got := e.queryUint("SELECT count() FROM " + deliveries + " FINAL WHERE status = 'DELIVERED'"); got != 2*n {
			t.Errorf("%s: %d DELIVERED, want %d", stage, got, 2*n)
		}
		for _, g := range []string{"billing", "search"} {
			got := e.queryUint("SELECT count() FROM "+deliveries+" FINAL WHERE consumer_group = ? AND topic = 'orders'", g)
			if got != n {
				t.Errorf("%s: group %s has %d deliveries, want %d", stage, g, got, n)
			}
		}
		if bad := e.queryUint("SELECT count() FROM " + deliveries + " FINAL WHERE ack_latency_us < 0 OR e2e_latency_us <= 0 OR consume_count != 1"); bad != 0 {
			t.Errorf("%s: %d deliveries with ack_latency_us < 0, e2e_latency_us <= 0 or consume_count != 1", stage, bad)
		}
		if got := e.queryUint("SELECT uniqExact(correlation_id) FROM " + deliveries + " FINAL"); got != n {
			t.Errorf("%s: %d distinct messages, want %d", stage, got, n)
		}
		if got := e.queryUint("SELECT count() FROM " + events + " FINAL"); got != 3*n {
			t.Errorf("%s: %d events, want %d (one per produced message, one per consumed)", stage, got, 3*n)
		}
	}
	check("first run")

	// Every delivery belongs to a message the producer sent.
	rows, err := e.conn.Query(context.Background(), "SELECT DISTINCT correlation_id FROM "+deliveries)
	if err != nil {
		t.Fatal(err)
	}
	var someID string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		if !produced[id] {
			t.Errorf("delivery for unknown correlation ID %q", id)
		}
		someID = id
	}
	rows.Close()

	// The trail of one message shows its produce and both groups' consumes.
	tr, err := report.Trail(context.Background(), e.conn, e.ch.Database, someID)
	if err != nil {
		t.Fatalf("trail %s: %v", someID, err)
	}
	var out bytes.Buffer
	report.FormatTrail(&out, tr)
	for _, want := range []string{someID, "produce", "billing", "search", "DELIVERED"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("trail output lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := report.Trail(context.Background(), e.conn, e.ch.Database, "' OR 1=1 --"); !errors.Is(err, report.ErrNotFound) {
		t.Errorf("trail of a hostile ID: err %v, want ErrNotFound", err)
	}

	// Restart: a sink on a new consumer group reads both topics from the
	// start and writes every row again. The counts must not change.
	rawBefore := e.queryUint("SELECT count() FROM " + deliveries)
	p2, stop2 := e.startPipeline("sink-b")
	waitFor(t, 60*time.Second, "the restarted sink to write everything again", func() (bool, string) {
		s := p2.Sink.Stats()
		return s.Written[sinks.KindVerdict] >= 2*n && s.Written[sinks.KindEvent] >= 3*n, fmt.Sprintf("%+v", s)
	})
	stop2()
	if raw := e.queryUint("SELECT count() FROM " + deliveries); raw <= rawBefore {
		t.Logf("note: %d raw delivery rows before the rewrite, %d after (merged already)", rawBefore, raw)
	}
	check("after the sink rewrote everything")
}
