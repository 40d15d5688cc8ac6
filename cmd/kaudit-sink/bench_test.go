package main_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/internal/testing/itest"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
	"github.com/kaudit/kaudit/store"
	"github.com/kaudit/kaudit/store/migrations"
)

// benchRows is the number of verdicts of BenchmarkSinkVsClickHouseClient,
// and samplesPerIteration how many times it measures each side per
// iteration (make bench runs one iteration).
const (
	benchRows           = 300_000
	samplesPerIteration = 3
)

// demoVerdicts returns n verdicts shaped like the demo's: UUID-like
// correlation IDs, one topic, three groups, mostly DELIVERED.
func demoVerdicts(n int) []codecs.Verdict {
	r := rand.New(rand.NewPCG(13, 17))
	now := time.Now().UnixNano()
	groups := []string{"billing", "analytics", "archiver"}
	out := make([]codecs.Verdict, n)
	for i := range out {
		send := now - int64(r.IntN(int(time.Minute)))
		ack := send + int64(r.IntN(int(5*time.Millisecond)))
		consume := ack + int64(r.IntN(int(time.Second)))
		v := codecs.Verdict{
			Version:       codecs.SchemaVersion,
			CorrelationID: fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xfff, r.Uint32()&0xffff, r.Uint64()&0xffffffffffff),
			Topic:         "demo.orders", Group: groups[i%3], Status: codecs.StatusDelivered, Seq: uint64(consume),
			Partition: r.Int32N(3), Offset: int64(i / 3), ProducerClient: "kaudit-demo-producer", ProducerHost: "host-1",
			SendNs: send, AckNs: ack, PayloadSize: 100, ConsumerClient: "kaudit-demo-" + groups[i%3], ConsumerHost: "host-1",
			ConsumePartition: r.Int32N(3), ConsumeOffset: int64(i / 3), FirstConsumeNs: consume, LastConsumeNs: consume, ConsumeCount: 1,
			AckLatencyUs: (ack - send) / 1000, E2ELatencyUs: (consume - send) / 1000, FirstSeenNs: send, DecidedNs: consume,
			Expected: true, DeadlineNs: ack + int64(10*time.Second),
		}
		if i%50 == 0 {
			v.Status, v.Cause, v.E2ELatencyUs, v.ConsumeCount = codecs.StatusLost, "not_consumed", -1, 0
		}
		out[i] = v
	}
	return out
}

// BenchmarkSinkVsClickHouseClient measures, in one run, the kaudit-sink
// binary writing 300,000 verdicts from Kafka (kfake in this process) into
// kaudit.deliveries, from its start to the last row visible, and Debian's
// clickhouse-client inserting the same rows (read back from that table) in
// Native format into an identical table. It reports both rates and their
// ratio (the goal: sink ≥ 0.5× clickhouse-client), the best of 3×b.N runs
// of each, and the sink's CPU time per row in its best run.
//
//	go test -run '^$' -bench SinkVsClickHouseClient -benchtime 1x ./cmd/kaudit-sink/
//
// KAUDIT_BENCH_SINK_PROFILE=file writes the sink's CPU profile there (go
// tool pprof); KAUDIT_BENCH_SINK_ARGS adds sink flags to compare settings.
func BenchmarkSinkVsClickHouseClient(b *testing.B) {
	chClient := itest.Need(b, "clickhouse-client")[0]
	binary(b, "kaudit-sink") // built before anything is timed
	srv := chtest.Start(b)
	host, port, err := net.SplitHostPort(srv.Addr())
	if err != nil {
		b.Fatal(err)
	}
	c := kafkatest.NewCluster(b)
	kafkatest.CreateTopic(b, c, audit.DefaultVerdictsTopic, 6)
	// Uncompressed, as the correlator (sarama) writes verdicts.
	prod := kafkatest.Client(b, c, kgo.RecordPartitioner(audit.Partitioner()), kgo.ProducerBatchMaxBytes(1<<20), kgo.ProducerBatchCompression(kgo.NoCompression()))
	vs := demoVerdicts(benchRows)
	var recs []*kgo.Record
	for i := range vs {
		recs = append(recs, &kgo.Record{Topic: audit.DefaultVerdictsTopic, Key: []byte(vs[i].CorrelationID), Value: codecs.AppendVerdict(nil, &vs[i])})
		if len(recs) == 10_000 || i == len(vs)-1 {
			if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
				b.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	columns := "correlation_id, topic, consumer_group, status, cause, seq, partition, offset, producer_client, producer_host, " +
		"send_ns, ack_ns, produce_error, payload_size, consumer_client, consumer_host, consume_partition, consume_offset, " +
		"first_consume_ns, last_consume_ns, consume_count, ack_latency_us, e2e_latency_us, first_seen, decided_at, expected, learned, deadline_ns"
	client := func(query string, stdin, stdout *os.File) time.Duration {
		b.Helper()
		cmd := exec.Command(chClient, "--host", host, "--port", port, "--query", query)
		cmd.Stdin, cmd.Stdout = stdin, stdout
		var stderr strings.Builder
		cmd.Stderr = &stderr
		began := time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatalf("clickhouse-client --query %q: %v\n%s", query, err, stderr.String())
		}
		return time.Since(began)
	}

	// Each iteration measures both; the best of each is reported: the
	// machine is shared, and a pause of another process only ever slows a
	// run down.
	var sinkTook, peerTook, sinkCPU time.Duration
	run := 0
	for b.Loop() {
		for range samplesPerIteration {
			run++
			cfg := chtest.NewDatabase(b)
			if err := migrations.Up(context.Background(), cfg, nil); err != nil {
				b.Fatal(err)
			}
			conn := chtest.Open(b, cfg)
			deliveries := store.Table(cfg.Database, "deliveries")
			count := func(table string) uint64 {
				var n uint64
				if err := conn.QueryRow(context.Background(), "SELECT count() FROM "+table).Scan(&n); err != nil {
					b.Fatal(err)
				}
				return n
			}

			settle(b, conn)
			profile := os.Getenv("KAUDIT_BENCH_SINK_PROFILE") // a CPU profile of the sink, if set
			if profile == "" {
				profile = filepath.Join(b.TempDir(), "sink.pprof")
			}
			began := time.Now()
			args := []string{"--brokers", c.ListenAddrs()[0], "--clickhouse-addr", cfg.Addr, "--clickhouse-database", cfg.Database,
				"--no-migrate", "--events-topic", "", "--group", fmt.Sprintf("bench-%d", run), "--cpu-profile", profile}
			// Other settings to compare, e.g. "--batch.size 20000".
			args = append(args, strings.Fields(os.Getenv("KAUDIT_BENCH_SINK_ARGS"))...)
			p := startSink(b, args...)
			waitFor(b, 5*time.Minute, "every verdict in ClickHouse", func() (bool, string) {
				n := count(deliveries)
				return n >= benchRows, fmt.Sprintf("%d rows", n)
			})
			took := time.Since(began)
			p.stop()
			if cpu := p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime(); sinkTook == 0 || took < sinkTook {
				sinkTook, sinkCPU = took, cpu
			}
			if os.Getenv("KAUDIT_BENCH_VERBOSE") != "" {
				b.Logf("sink started %s:\n%s", began.Format(time.StampMicro), p.out)
			}

			native, err := os.Create(filepath.Join(b.TempDir(), "deliveries.native"))
			if err != nil {
				b.Fatal(err)
			}
			client("SELECT "+columns+" FROM "+deliveries+" FORMAT Native", nil, native)
			if _, err := native.Seek(0, 0); err != nil {
				b.Fatal(err)
			}
			peer := store.Table(cfg.Database, "deliveries_peer")
			if err := conn.Exec(context.Background(), "CREATE TABLE "+peer+" AS "+deliveries); err != nil {
				b.Fatal(err)
			}
			settle(b, conn)
			if took := client("INSERT INTO "+peer+" ("+columns+") FORMAT Native", native, nil); peerTook == 0 || took < peerTook {
				peerTook = took
			}
			native.Close()
			if n := count(peer); n != benchRows {
				b.Fatalf("clickhouse-client inserted %d rows, want %d", n, benchRows)
			}
		}
	}
	sinkRate := float64(benchRows) / sinkTook.Seconds()
	peerRate := float64(benchRows) / peerTook.Seconds()
	b.ReportMetric(sinkRate, "sink-rows/s")
	b.ReportMetric(peerRate, "clickhouse-client-rows/s")
	b.ReportMetric(sinkRate/peerRate, "ratio")
	b.ReportMetric(float64(sinkCPU.Microseconds())/float64(benchRows), "sink-cpu-µs/row")
}

// settle waits until ClickHouse merges no parts, so that one measurement's
// merges do not slow the next one down.
func settle(b *testing.B, conn driver.Conn) {
	b.Helper()
	waitFor(b, 2*time.Minute, "background merges to finish", func() (bool, string) {
		var n uint64
		if err := conn.QueryRow(context.Background(), "SELECT count() FROM system.merges").Scan(&n); err != nil {
			b.Fatal(err)
		}
		return n == 0, fmt.Sprintf("%d merges running", n)
	})
}
