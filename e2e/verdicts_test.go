package e2e_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/interceptors/emitter"
	"github.com/kaudit/kaudit/interceptors/kgoaudit"
	"github.com/kaudit/kaudit/internal/testing/itest"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
	"github.com/kaudit/kaudit/processors/correlator"
	"github.com/kaudit/kaudit/processors/expectations"
	"github.com/kaudit/kaudit/sinks"
	chsink "github.com/kaudit/kaudit/sinks/clickhouse"
)

// pos is a record's position in the audited topic.
type pos struct {
	p int32
	o int64
}

// verdictKey is one row of the deliveries table.
type verdictKey struct{ id, group string }

type verdictWant struct{ status, cause string }

// runCorrelator runs a correlator until the returned stop is called.
func runCorrelator(t *testing.T, e *env, storage string, cfg correlator.Config) (*correlator.Correlator, func()) {
	t.Helper()
	cfg.Brokers, cfg.StorageDir, cfg.Logger = e.brokers, storage, e.log
	c, err := correlator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("correlator: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return c, stop
}

// readRange reads offsets [from, to) of partition p as group (a direct
// consumer with audit hooks): exactly those records are polled, so exactly
// those are audited.
func readRange(t *testing.T, e *env, em *emitter.Emitter, topic, group string, p int32, from, to int64) {
	t.Helper()
	if to <= from {
		return
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ClientID(group+"-reader"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().At(from)}}),
		kgo.WithHooks(kgoaudit.New(em, kgoaudit.WithGroup(group))))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	next := from
	for next < to {
		fs := cl.PollRecords(ctx, int(to-next))
		if ctx.Err() != nil {
			t.Fatalf("%s: reading %d[%d,%d) stopped at %d: %v", group, p, from, to, next, ctx.Err())
		}
		for _, r := range fs.Records() {
			if r.Offset != next {
				t.Fatalf("%s: read %d@%d, want offset %d", group, p, r.Offset, next)
			}
			next++
		}
	}
}

// readAllBut reads every record of topic as group except the positions in
// skip.
func readAllBut(t *testing.T, e *env, em *emitter.Emitter, topic, group string, ends map[int32]int64, skip map[pos]bool) {
	t.Helper()
	for p, end := range ends {
		var cuts []int64
		for s := range skip {
			if s.p == p {
				cuts = append(cuts, s.o)
			}
		}
		sort.Slice(cuts, func(i, j int) bool { return cuts[i] < cuts[j] })
		from := int64(0)
		for _, c := range cuts {
			readRange(t, e, em, topic, group, p, from, c)
			from = c + 1
		}
		readRange(t, e, em, topic, group, p, from, end)
	}
}

// corruptOnProduce makes the broker store marker altered: a kfake control
// hook rewrites the value inside the produce request (fixing the batch CRC,
// which kfake checks), as a faulty broker-side plugin would.
func corruptOnProduce(c *kfake.Cluster, marker, altered []byte) {
	crc := crc32.MakeTable(crc32.Castagnoli)
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		for i := range pr.Topics {
			for j := range pr.Topics[i].Partitions {
				raw := pr.Topics[i].Partitions[j].Records
				if len(raw) > 21 && bytes.Contains(raw, marker) {
					copy(raw[bytes.Index(raw, marker):], altered)
					binary.BigEndian.PutUint32(raw[17:21], crc32.Checksum(raw[21:], crc))
				}
			}
		}
		return nil, nil, false
	})
}

// TestVerdicts is the verdicts issue's acceptance test: 10,000 messages on a
// topic expected by groups a, b and c. Group a consumes all (with a
// rebalance half way), b skips 37 chosen messages, c consumes 12 chosen
// messages twice and one after its deadline; 5 produces fail; one message's
// value is altered on its way into the broker. The correlator is restarted
// (with an empty local state) in the middle. Every (message, group) verdict
// in ClickHouse must be the one the scenario implies.
func TestVerdicts(t *testing.T) {
	itest.Integration(t)
	const (
		topic    = "payments"
		total    = 10_000
		failures = 5
		deadline = 20 * time.Second
	)
	e := newEnv(t)
	kafkatest.CreateTopic(t, e.cluster, topic, 3)
	rng := rand.New(rand.NewPCG(7, 11))

	// Expectations, the way a user declares them (kaudit expect set).
	store, err := expectations.NewStore("", kgo.SeedBrokers(e.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Set(context.Background(), &expectations.Expectation{Topic: topic, Groups: []string{"a", "b", "c"},
		Deadline: expectations.Duration(deadline), SinceNs: time.Now().Add(-time.Second).UnixNano()}); err != nil {
		t.Fatal(err)
	}
	store.Close()

	ccfg := correlator.Config{SweepInterval: 500 * time.Millisecond, Grace: 5 * time.Minute}
	firstStart := time.Now()
	corr, stopCorr := runCorrelator(t, e, t.TempDir(), ccfg)
	sinkRunner, err := sinks.New(sinks.Config[*sinks.Batch]{
		Brokers: e.brokers, Group: "sink", Topics: sinks.AuditTopics(audit.DefaultVerdictsTopic, audit.DefaultEventsTopic),
		NewBatch: sinks.NewBatch, DLQTopic: audit.DefaultDLQTopic,
		FlushInterval: 200 * time.Millisecond, Logger: e.log,
	}, chsink.New(e.conn, chsink.Config{Database: e.ch.Database}))
	if err != nil {
		t.Fatal(err)
	}
	sinkCtx, stopSink := context.WithCancel(context.Background())
	sinkDone := make(chan error, 1)
	go func() { sinkDone <- sinkRunner.Run(sinkCtx) }()
	t.Cleanup(func() { stopSink(); <-sinkDone })

	em, err := emitter.New(emitter.Config{Brokers: e.brokers, Logger: e.log})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close(context.Background())

	// Produce: failures one at a time under a fault, the rest in batches;
	// the corrupted message carries a marker the control hook rewrites.
	prod, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ClientID("payments-api"),
		kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.WithHooks(kgoaudit.New(em)))
	if err != nil {
		t.Fatal(err)
	}
	idOf := func(r *kgo.Record) string {
		for _, h := range r.Headers {
			if h.Key == audit.CorrelationHeader {
				return string(h.Value)
			}
		}
		t.Fatalf("record without correlation_id")
		return ""
	}
	var failed []string
	fault := e.cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: kerr.InvalidRecord, Count: -1})
	for i := range failures {
		r := &kgo.Record{Key: fmt.Appendf(nil, "failed-%d", i), Value: []byte("this write is refused")}
		if err := prod.ProduceSync(context.Background(), r).FirstErr(); !errors.Is(err, kerr.InvalidRecord) {
			t.Fatalf("produce under the fault: err %v, want INVALID_RECORD", err)
		}
		failed = append(failed, idOf(r))
	}
	fault.Remove()

	marker, altered := []byte("PAYMENT-TO-CORRUPT"), []byte("PAYMENT-T0-CORRUPT")
	corruptOnProduce(e.cluster, marker, altered)
	corruptAt := rng.IntN(total - failures)
	var recs []*kgo.Record
	for i := range total - failures {
		v := fmt.Appendf(nil, "payment %05d amount %d", i, rng.IntN(100000))
		if i == corruptAt {
			v = append(v, marker...)
		}
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "acct-%d", rng.IntN(500)), Value: v})
	}
	for i := 0; i < len(recs); i += 500 {
		if err := prod.ProduceSync(context.Background(), recs[i:min(i+500, len(recs))]...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	prod.Close()
	e.cluster.DropControl()

	byPos := map[pos]string{}
	ends := map[int32]int64{}
	var positions []pos
	for _, r := range recs {
		at := pos{r.Partition, r.Offset}
		byPos[at] = idOf(r)
		positions = append(positions, at)
		ends[r.Partition] = max(ends[r.Partition], r.Offset+1)
	}
	corrupted := pos{recs[corruptAt].Partition, recs[corruptAt].Offset}

	// The scenario's choices, all distinct: b skips 37 (the corrupted
	// message among them), c reads 12 twice and one late.
	rng.Shuffle(len(positions), func(i, j int) { positions[i], positions[j] = positions[j], positions[i] })
	skipB := map[pos]bool{corrupted: true}
	var dupC []pos
	var lateC pos
	for _, at := range positions {
		switch {
		case at == corrupted:
		case len(skipB) < 37:
			skipB[at] = true
		case len(dupC) < 12:
			dupC = append(dupC, at)
		case lateC == pos{}:
			lateC = at
		}
	}

	// Group a: a real consumer group; the first member leaves after about
	// half (committing), the second takes over (Xinfra Monitor #303).
	consumeGroup := func(stopAfter int) int {
		cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ClientID("a-member"),
			kgo.ConsumerGroup("a"), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.WithHooks(kgoaudit.New(em)))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		n := 0
		for n < stopAfter && ctx.Err() == nil {
			n += cl.PollFetches(ctx).NumRecords()
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatalf("group a commit: %v", err)
		}
		return n
	}
	first := consumeGroup(total / 2)
	second := consumeGroup(total - failures - first)
	if first+second != total-failures {
		t.Fatalf("group a read %d+%d records, want %d", first, second, total-failures)
	}

	// Restart the correlator in the middle, with an empty local state: it
	// must recover every trail from its changelog and change no verdict.
	waitFor(t, time.Minute, "the first correlator to fold the produce and group a events", func() (bool, string) {
		s := corr.Stats()
		return s.Events >= uint64(2*total-failures), fmt.Sprintf("%+v", s)
	})
	firstStats, firstTook := corr.Stats(), time.Since(firstStart)
	stopCorr()
	storage := t.TempDir()
	restartedAt := time.Now()
	corr, stopCorr = runCorrelator(t, e, storage, ccfg)

	readAllBut(t, e, em, topic, "b", ends, skipB)
	readAllBut(t, e, em, topic, "c", ends, map[pos]bool{lateC: true})
	for _, at := range dupC {
		readRange(t, e, em, topic, "c", at.p, at.o, at.o+1)
	}
	lateAck := time.Now() // after the late message's ack
	if d := time.Since(restartedAt); d > deadline/2 {
		t.Logf("warning: consumption took %s, the deadline is %s", d, deadline)
	}
	time.Sleep(time.Until(lateAck.Add(deadline + time.Second)))
	readRange(t, e, em, topic, "c", lateC.p, lateC.o, lateC.o+1)
	if s := em.Stats(); s.Dropped != 0 {
		t.Fatalf("audit events dropped: %+v", s)
	}

	// What the scenario implies, row by row.
	want := map[verdictKey]verdictWant{}
	for _, id := range failed {
		want[verdictKey{id, ""}] = verdictWant{"PRODUCE_FAILED", correlator.CauseProduceError}
	}
	for at, id := range byPos {
		for _, g := range []string{"a", "b", "c"} {
			want[verdictKey{id, g}] = verdictWant{"DELIVERED", ""}
		}
		if skipB[at] {
			want[verdictKey{id, "b"}] = verdictWant{"LOST", correlator.CauseNotConsumed}
		}
		if at == corrupted {
			want[verdictKey{id, "a"}] = verdictWant{"CORRUPTED", correlator.CauseDigest}
			want[verdictKey{id, "c"}] = verdictWant{"CORRUPTED", correlator.CauseDigest}
		}
		if at == lateC {
			want[verdictKey{id, "c"}] = verdictWant{"LATE", correlator.CauseAfterDeadline}
		}
	}
	for _, at := range dupC {
		want[verdictKey{byPos[at], "c"}] = verdictWant{"DUPLICATE", correlator.CauseRedelivery}
	}
	wantCounts := map[string]int{}
	for _, w := range want {
		wantCounts[w.status]++
	}

	deliveries := e.table("deliveries")
	readRows := func() map[verdictKey]verdictWant {
		rows, err := e.conn.Query(context.Background(),
			"SELECT correlation_id, consumer_group, status, cause FROM "+deliveries+" FINAL WHERE topic = ?", topic)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		got := map[verdictKey]verdictWant{}
		for rows.Next() {
			var k verdictKey
			var w verdictWant
			if err := rows.Scan(&k.id, &k.group, &w.status, &w.cause); err != nil {
				t.Fatal(err)
			}
			got[k] = w
		}
		return got
	}
	var got map[verdictKey]verdictWant
	waitFor(t, 2*time.Minute, "the scenario's verdicts in ClickHouse", func() (bool, string) {
		got = readRows()
		counts := map[string]int{}
		for _, w := range got {
			counts[w.status]++
		}
		return len(got) == len(want) && counts["LOST"] == wantCounts["LOST"] && counts["LATE"] == wantCounts["LATE"],
			fmt.Sprintf("%d rows %v, want %d %v; correlator %+v", len(got), counts, len(want), wantCounts, corr.Stats())
	})
	// Let the last sweeps and the sink settle, then compare row by row.
	time.Sleep(2 * time.Second)
	got = readRows()
	mismatches := 0
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			if mismatches++; mismatches <= 10 {
				t.Errorf("message %s group %q: got %+v (present %v), want %+v", k.id, k.group, g, ok, w)
			}
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected row: message %s group %q %+v", k.id, k.group, g)
		}
	}
	counts := map[string]int{}
	for _, w := range got {
		counts[w.status]++
	}
	exact := map[string]int{"LOST": 37, "LATE": 1, "DUPLICATE": 12, "PRODUCE_FAILED": failures, "CORRUPTED": 2,
		"DELIVERED": 3*(total-failures) - 37 - 1 - 12 - 2}
	for status, n := range exact {
		if counts[status] != n {
			t.Errorf("%d %s rows, want %d", counts[status], status, n)
		}
	}
	if n := e.queryUint("SELECT count() FROM "+deliveries+" FINAL WHERE status = 'LOST' AND consumer_group = 'b' AND topic = ?", topic); n != 37 {
		t.Errorf("%d LOST in b, want 37", n)
	}
	if n := e.queryUint("SELECT count() FROM "+deliveries+" FINAL WHERE status = 'LATE' AND consumer_group = 'c' AND e2e_latency_us > ?", deadline.Microseconds()); n != 1 {
		t.Errorf("%d LATE rows in c with a latency above the deadline, want 1", n)
	}

	// Bounded state: what the table holds after the run.
	waitFor(t, 10*time.Second, "a sweep count of the open trails", func() (bool, string) {
		n := corr.Stats().OpenTrails
		return n > 0, fmt.Sprint(n)
	})
	st := corr.Stats()
	if st.OpenTrails > int64(total) {
		t.Errorf("%d open trails for %d messages", st.OpenTrails, total)
	}
	var size int64
	_ = filepath.Walk(storage, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			size += fi.Size()
		}
		return nil
	})
	t.Logf("first correlator before the restart: %+v in %s from its start (%.0f events/s, startup included)",
		firstStats, firstTook.Round(time.Millisecond), float64(firstStats.Events)/firstTook.Seconds())
	t.Logf("correlator after the run: %d open trails, local table %d KiB; events folded by the restarted instance: %d in %s (%.0f events/s wall clock, including waits)",
		st.OpenTrails, size/1024, st.Events, time.Since(restartedAt).Round(time.Second), float64(st.Events)/time.Since(restartedAt).Seconds())
}
