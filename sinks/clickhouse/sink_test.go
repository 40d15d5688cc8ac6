package clickhouse_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/sinks"
	chsink "github.com/kaudit/kaudit/sinks/clickhouse"
	"github.com/kaudit/kaudit/store"
	"github.com/kaudit/kaudit/store/migrations"
)

func TestMain(m *testing.M) { chtest.Main(m) }

// setup returns a migrated database of the test's own, a connection to it
// and a sink writing into it through that connection (clickhouse-go).
func setup(t testing.TB) (store.Config, driver.Conn, *chsink.Sink) {
	t.Helper()
	cfg := chtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := migrations.Up(ctx, cfg, nil); err != nil {
		t.Fatal(err)
	}
	conn := chtest.Open(t, cfg)
	return cfg, conn, chsink.New(conn, chsink.Config{Database: cfg.Database})
}

// setupDial is setup with a sink made by Dial, connected by Connect.
func setupDial(t testing.TB) (store.Config, driver.Conn, *chsink.Sink) {
	t.Helper()
	cfg, conn, _ := setup(t)
	sink := chsink.Dial(cfg, chsink.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := sink.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Close() })
	return cfg, conn, sink
}

// bothPaths runs test with a sink made by New (a connection of the
// caller's) and one made by Dial (connected by Connect).
func bothPaths(t *testing.T, test func(t *testing.T, setup func(testing.TB) (store.Config, driver.Conn, *chsink.Sink))) {
	t.Run("New", func(t *testing.T) { test(t, setup) })
	t.Run("Dial", func(t *testing.T) { test(t, setupDial) })
}

var base = time.Date(2026, 3, 14, 23, 59, 58, 0, time.UTC).UnixNano()

// verdicts returns n distinct verdicts with every field set.
func verdicts(r *rand.Rand, n int) []codecs.Verdict {
	out := make([]codecs.Verdict, n)
	groups := []string{"billing", "search", `we'ird "group"`}
	statuses := []codecs.Status{codecs.StatusDelivered, codecs.StatusLost, codecs.StatusLate, codecs.StatusDuplicate}
	for i := range out {
		send := base + r.Int64N(int64(10*time.Second))
		ack := send + r.Int64N(int64(50*time.Millisecond))
		consume := ack + r.Int64N(int64(time.Second))
		out[i] = codecs.Verdict{
			Version:          codecs.SchemaVersion,
			CorrelationID:    fmt.Sprintf("cid-%06d-%x", i, r.Uint32()),
			Topic:            fmt.Sprintf("orders-%d", i%3),
			Group:            groups[i%len(groups)],
			Status:           statuses[r.IntN(len(statuses))],
			Cause:            fmt.Sprintf("cause ü %d", r.IntN(100)),
			Seq:              1 + r.Uint64N(1000),
			Partition:        r.Int32N(12),
			Offset:           r.Int64N(1 << 40),
			ProducerClient:   "producer-" + fmt.Sprint(r.IntN(4)),
			ProducerHost:     "host-p",
			SendNs:           send,
			AckNs:            ack,
			ProduceError:     fmt.Sprint("err", r.IntN(3)),
			PayloadSize:      r.Int32N(1 << 20),
			ConsumerClient:   "consumer-" + fmt.Sprint(r.IntN(4)),
			ConsumerHost:     "host-c",
			ConsumePartition: r.Int32N(12),
			ConsumeOffset:    r.Int64N(1 << 40),
			FirstConsumeNs:   consume,
			LastConsumeNs:    consume + r.Int64N(int64(time.Second)),
			ConsumeCount:     1 + r.Uint32N(3),
			AckLatencyUs:     (ack - send) / 1000,
			E2ELatencyUs:     (consume - send) / 1000,
			FirstSeenNs:      send,
			DecidedNs:        consume + int64(time.Millisecond),
		}
	}
	return out
}

// events returns a produce and a consume event per verdict, at audit
// offsets 2i and 2i+1.
func events(vs []codecs.Verdict) []sinks.EventRecord {
	out := make([]sinks.EventRecord, 0, 2*len(vs))
	for i, v := range vs {
		out = append(out,
			sinks.EventRecord{
				Event: codecs.Event{
					Version: codecs.SchemaVersion, Kind: codecs.KindProduce, CorrelationID: v.CorrelationID,
					Topic: v.Topic, Partition: v.Partition, Offset: v.Offset, ClientID: v.ProducerClient,
					Host: v.ProducerHost, Source: "franz-go", SendNs: v.SendNs, AckNs: v.AckNs,
					RecordTsNs: v.SendNs - 7, Error: v.ProduceError, PayloadSize: v.PayloadSize, Digest: uint64(i) * 0x9e3779b97f4a7c15,
				},
				From: sinks.Position{Topic: "kaudit.events", Partition: int32(i % 4), Offset: int64(2 * i)},
			},
			sinks.EventRecord{
				Event: codecs.Event{
					Version: codecs.SchemaVersion, Kind: codecs.KindConsume, CorrelationID: v.CorrelationID,
					Topic: v.Topic, Partition: v.ConsumePartition, Offset: v.ConsumeOffset, ClientID: v.ConsumerClient,
					Group: v.Group, Host: v.ConsumerHost, Source: "sarama", ConsumeNs: v.FirstConsumeNs,
					RecordTsNs: v.SendNs - 7, PayloadSize: v.PayloadSize, Digest: ^uint64(i),
				},
				From: sinks.Position{Topic: "kaudit.events", Partition: int32(i % 4), Offset: int64(2*i + 1)},
			})
	}
	return out
}

func count(t testing.TB, conn driver.Conn, query string, args ...any) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func sec(ns int64) time.Time { return time.Unix(ns/int64(time.Second), 0).UTC() }

// readDeliveries reads deliveries FINAL back into verdicts, keyed by
// correlation ID and group.
func readDeliveries(t testing.TB, conn driver.Conn, db string) map[string]codecs.Verdict {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT correlation_id, topic, consumer_group, status, cause, seq,
		partition, offset, producer_client, producer_host, send_ns, ack_ns, produce_error, payload_size,
		consumer_client, consumer_host, consume_partition, consume_offset, first_consume_ns, last_consume_ns,
		consume_count, ack_latency_us, e2e_latency_us, first_seen, decided_at
		FROM `+store.Table(db, "deliveries")+` FINAL`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]codecs.Verdict{}
	for rows.Next() {
		var v codecs.Verdict
		var status string
		var firstSeen, decided time.Time
		if err := rows.Scan(&v.CorrelationID, &v.Topic, &v.Group, &status, &v.Cause, &v.Seq,
			&v.Partition, &v.Offset, &v.ProducerClient, &v.ProducerHost, &v.SendNs, &v.AckNs, &v.ProduceError, &v.PayloadSize,
			&v.ConsumerClient, &v.ConsumerHost, &v.ConsumePartition, &v.ConsumeOffset, &v.FirstConsumeNs, &v.LastConsumeNs,
			&v.ConsumeCount, &v.AckLatencyUs, &v.E2ELatencyUs, &firstSeen, &decided); err != nil {
			t.Fatal(err)
		}
		if v.Status, err = codecs.ParseStatus(status); err != nil {
			t.Fatal(err)
		}
		// DateTime holds whole seconds: keep the written nanoseconds'
		// seconds for comparison.
		v.FirstSeenNs, v.DecidedNs = firstSeen.UnixNano(), decided.UnixNano()
		v.Version = codecs.SchemaVersion
		got[v.CorrelationID+"/"+v.Group] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestWriteBatchTwiceCountsOnce(t *testing.T) { bothPaths(t, testWriteBatchTwiceCountsOnce) }

func testWriteBatchTwiceCountsOnce(t *testing.T, setup func(testing.TB) (store.Config, driver.Conn, *chsink.Sink)) {
	cfg, conn, sink := setup(t)
	ctx := context.Background()
	vs := verdicts(rand.New(rand.NewPCG(1, 2)), 300)
	b := &sinks.Batch{Verdicts: vs, Events: events(vs)}

	for i := range 2 {
		if err := sink.WriteBatch(ctx, b); err != nil {
			t.Fatalf("write %d: %v", i+1, err)
		}
	}
	deliveries := store.Table(cfg.Database, "deliveries")
	eventsT := store.Table(cfg.Database, "events")
	if n := count(t, conn, "SELECT count() FROM "+deliveries+" FINAL"); n != uint64(len(vs)) {
		t.Errorf("deliveries FINAL: %d rows, want %d", n, len(vs))
	}
	if n := count(t, conn, "SELECT count() FROM "+eventsT+" FINAL"); n != uint64(len(b.Events)) {
		t.Errorf("events FINAL: %d rows, want %d", n, len(b.Events))
	}

	// Every field round-trips.
	got := readDeliveries(t, conn, cfg.Database)
	for _, v := range vs {
		g, ok := got[v.CorrelationID+"/"+v.Group]
		if !ok {
			t.Errorf("verdict %s/%s missing", v.CorrelationID, v.Group)
			continue
		}
		want := v
		want.FirstSeenNs, want.DecidedNs = sec(v.FirstSeenNs).UnixNano(), sec(v.DecidedNs).UnixNano()
		if g != want {
			t.Errorf("verdict round trip:\n got  %+v\n want %+v", g, want)
		}
	}

	// Events: each keeps its audit position, kind and event time.
	rows, err := conn.Query(ctx, "SELECT correlation_id, kind, audit_partition, audit_offset, event_time, consumer_group, digest, toYYYYMMDD(event_time) FROM "+eventsT+" FINAL")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	byPos := map[[2]int64]sinks.EventRecord{}
	for _, e := range b.Events {
		byPos[[2]int64{int64(e.From.Partition), e.From.Offset}] = e
	}
	seen := 0
	for rows.Next() {
		var cid, kind, group string
		var part int32
		var off int64
		var at time.Time
		var digest uint64
		var day uint32
		if err := rows.Scan(&cid, &kind, &part, &off, &at, &group, &digest, &day); err != nil {
			t.Fatal(err)
		}
		seen++
		e, ok := byPos[[2]int64{int64(part), off}]
		if !ok {
			t.Errorf("unexpected event at %d/%d", part, off)
			continue
		}
		wantAt := sec(e.Event.TimeNs())
		if cid != e.Event.CorrelationID || kind != e.Event.Kind.String() || group != e.Event.Group ||
			digest != e.Event.Digest || !at.Equal(wantAt) {
			t.Errorf("event %d/%d: got %s %s %q %x %s, want %+v at %s", part, off, cid, kind, group, digest, at, e.Event, wantAt)
		}
		if want := uint32(wantAt.Year()*10000 + int(wantAt.Month())*100 + wantAt.Day()); day != want {
			t.Errorf("event %d/%d partition day %d, want %d", part, off, day, want)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if seen != len(b.Events) {
		t.Errorf("read %d events, want %d", seen, len(b.Events))
	}
}

func TestHigherSeqWins(t *testing.T) { bothPaths(t, testHigherSeqWins) }

func testHigherSeqWins(t *testing.T, setup func(testing.TB) (store.Config, driver.Conn, *chsink.Sink)) {
	cfg, conn, sink := setup(t)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(3, 4))
	lost := verdicts(r, 2)
	lost[0].Status, lost[0].Seq, lost[0].Cause, lost[0].E2ELatencyUs = codecs.StatusLost, 1, "deadline passed", -1
	lost[1].Status, lost[1].Seq, lost[1].Cause, lost[1].E2ELatencyUs = codecs.StatusLost, 1, "deadline passed", -1
	delivered := append([]codecs.Verdict(nil), lost...)
	for i := range delivered {
		delivered[i].Status, delivered[i].Seq, delivered[i].Cause = codecs.StatusDelivered, 2, ""
		delivered[i].E2ELatencyUs = 1234 + int64(i)
		delivered[i].DecidedNs += int64(time.Hour) // decided later, possibly on another day
	}

	// In order for the first message, out of order for the second.
	for _, b := range []*sinks.Batch{
		{Verdicts: lost[:1]}, {Verdicts: delivered[:1]},
		{Verdicts: delivered[1:]}, {Verdicts: lost[1:]},
	} {
		if err := sink.WriteBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	got := readDeliveries(t, conn, cfg.Database)
	if len(got) != 2 {
		t.Fatalf("deliveries FINAL has %d rows, want 2: %+v", len(got), got)
	}
	for _, d := range delivered {
		g := got[d.CorrelationID+"/"+d.Group]
		if g.Status != codecs.StatusDelivered || g.Seq != 2 || g.E2ELatencyUs != d.E2ELatencyUs {
			t.Errorf("%s: FINAL shows %s seq %d e2e %d, want DELIVERED seq 2 e2e %d", d.CorrelationID, g.Status, g.Seq, g.E2ELatencyUs, d.E2ELatencyUs)
		}
	}
	// Both versions share a partition (first_seen), so a merge collapses
	// them for good.
	deliveries := store.Table(cfg.Database, "deliveries")
	if err := conn.Exec(ctx, "OPTIMIZE TABLE "+deliveries+" FINAL"); err != nil {
		t.Fatal(err)
	}
	if n := count(t, conn, "SELECT count() FROM "+deliveries); n != 2 {
		t.Errorf("after OPTIMIZE FINAL: %d rows, want 2", n)
	}
}

func TestSameEventRewrittenCollapses(t *testing.T) { bothPaths(t, testSameEventRewrittenCollapses) }

func testSameEventRewrittenCollapses(t *testing.T, setup func(testing.TB) (store.Config, driver.Conn, *chsink.Sink)) {
	cfg, conn, sink := setup(t)
	ctx := context.Background()
	ev := events(verdicts(rand.New(rand.NewPCG(5, 6)), 1))
	// The same record at another audit offset is another audit record.
	again := ev[0]
	again.From.Offset += 1000
	for _, b := range []*sinks.Batch{{Events: ev}, {Events: ev[:1]}, {Events: []sinks.EventRecord{again}}} {
		if err := sink.WriteBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	eventsT := store.Table(cfg.Database, "events")
	if n := count(t, conn, "SELECT count() FROM "+eventsT+" FINAL WHERE correlation_id = ?", ev[0].Event.CorrelationID); n != 3 {
		t.Errorf("events FINAL: %d rows, want 3 (two records plus one at another audit offset)", n)
	}
	if err := conn.Exec(ctx, "OPTIMIZE TABLE "+eventsT+" FINAL"); err != nil {
		t.Fatal(err)
	}
	if n := count(t, conn, "SELECT count() FROM "+eventsT); n != 3 {
		t.Errorf("after OPTIMIZE FINAL: %d rows, want 3", n)
	}
}

func TestWriteErrorsNameTheTable(t *testing.T) {
	cfg, conn, _ := setup(t)
	missing := cfg.Database + "_missing"
	sink := chsink.New(conn, chsink.Config{Database: missing})
	err := sink.WriteBatch(context.Background(), &sinks.Batch{Verdicts: verdicts(rand.New(rand.NewPCG(7, 8)), 1)})
	if err == nil {
		t.Fatal("write into a missing database succeeded")
	}
	if !strings.Contains(err.Error(), missing+".deliveries") {
		t.Errorf("error does not name the table %s.deliveries: %v", missing, err)
	}
}

func TestEmptyBatchAndClose(t *testing.T) {
	cfg, conn, sink := setup(t)
	ctx := context.Background()
	if err := sink.WriteBatch(ctx, nil); err != nil {
		t.Errorf("nil batch: %v", err)
	}
	if err := sink.WriteBatch(ctx, &sinks.Batch{}); err != nil {
		t.Errorf("empty batch: %v", err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	err := sink.WriteBatch(ctx, &sinks.Batch{Verdicts: verdicts(rand.New(rand.NewPCG(9, 9)), 1)})
	if !errors.Is(err, chsink.ErrClosed) {
		t.Errorf("write after Close: %v, want ErrClosed", err)
	}
	// Close leaves the connection to its owner.
	if n := count(t, conn, "SELECT count() FROM "+store.Table(cfg.Database, "deliveries")); n != 0 {
		t.Errorf("%d rows written by empty or refused batches", n)
	}
}

// BenchmarkWriteBatch10kVerdicts measures WriteBatch with 10,000 verdicts
// per batch against the real server.
func BenchmarkWriteBatch10kVerdicts(b *testing.B) {
	_, _, sink := setup(b)
	ctx := context.Background()
	const n = 10_000
	batch := &sinks.Batch{Verdicts: verdicts(rand.New(rand.NewPCG(10, 11)), n)}
	b.ResetTimer()
	for b.Loop() {
		if err := sink.WriteBatch(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkWriteBatch10kEvents is the same for raw events.
func BenchmarkWriteBatch10kEvents(b *testing.B) {
	_, _, sink := setup(b)
	ctx := context.Background()
	batch := &sinks.Batch{Events: events(verdicts(rand.New(rand.NewPCG(12, 13)), 5_000))}
	b.ResetTimer()
	for b.Loop() {
		if err := sink.WriteBatch(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(batch.Events))*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

func TestCloseClosesOwnedConn(t *testing.T) {
	cfg, _, _ := setup(t)
	ctx := context.Background()
	conn, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	sink := chsink.New(conn, chsink.Config{Database: cfg.Database, OwnsConn: true})
	if err := sink.WriteBatch(ctx, &sinks.Batch{Verdicts: verdicts(rand.New(rand.NewPCG(14, 15)), 3)}); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	if err := conn.Ping(ctx); err == nil {
		t.Error("connection still usable after Close of a sink owning it")
	}
	if err := sink.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func BenchmarkWriteColumnsSizes(b *testing.B) {
	for _, n := range []int{10_000, 50_000, 100_000, 300_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			_, _, sink := setup(b)
			ctx := context.Background()
			batch := chsink.NewBatch()
			vs := verdicts(rand.New(rand.NewPCG(10, 11)), n)
			for i := range vs {
				batch.AddVerdict(&vs[i])
			}
			b.ResetTimer()
			for b.Loop() {
				if err := sink.WriteColumns(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// A batch larger than one block goes in several blocks of one INSERT:
// every row arrives, with its values.
func TestLargeBatchInBlocks(t *testing.T) { bothPaths(t, testLargeBatchInBlocks) }

func testLargeBatchInBlocks(t *testing.T, setup func(testing.TB) (store.Config, driver.Conn, *chsink.Sink)) {
	cfg, conn, sink := setup(t)
	vs := verdicts(rand.New(rand.NewPCG(21, 22)), 20_001)
	b := chsink.NewBatch()
	var sum int64
	for i := range vs {
		b.AddVerdict(&vs[i])
		sum += vs[i].E2ELatencyUs
	}
	if err := sink.WriteColumns(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	deliveries := store.Table(cfg.Database, "deliveries")
	if n := count(t, conn, "SELECT count() FROM "+deliveries+" FINAL"); n != uint64(len(vs)) {
		t.Errorf("deliveries FINAL: %d rows, want %d", n, len(vs))
	}
	var got int64
	if err := conn.QueryRow(context.Background(), "SELECT toInt64(sum(e2e_latency_us)) FROM "+deliveries).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != sum {
		t.Errorf("sum of e2e latencies %d, want %d", got, sum)
	}
	var parts uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM system.parts WHERE database = ? AND table = 'deliveries' AND active", cfg.Database).Scan(&parts); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d rows in %d parts", len(vs), parts)
	// Reused after Reset: the same rows again, and nothing more.
	b.Reset()
	for i := range vs[:100] {
		b.AddVerdict(&vs[i])
	}
	if err := sink.WriteColumns(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if n := count(t, conn, "SELECT count() FROM "+deliveries+" FINAL"); n != uint64(len(vs)) {
		t.Errorf("after a second, smaller batch: %d rows FINAL, want %d", n, len(vs))
	}
}
