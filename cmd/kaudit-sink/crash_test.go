package main_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
	"github.com/kaudit/kaudit/store"
)

type deliveryKey struct{ topic, group, id string }

type eventKey struct {
	id        string
	partition int32
	offset    int64
}

// truth is what the test produced: the latest verdict of every (topic,
// group, message), and every event with its position in the audit topic.
type truth struct {
	mu       sync.Mutex
	verdicts map[deliveryKey]codecs.Verdict
	events   map[eventKey]bool
	rounds   int
}

// produceStream writes rounds of verdicts and events: each round gives new
// messages a first verdict (LOST, seq 1) and corrects the previous round's
// (DELIVERED, seq 2), plus one produce event per new message.
func produceStream(t *testing.T, cl *kgo.Client, stop <-chan struct{}, perRound int, pause time.Duration, tr *truth) {
	now := time.Now().UnixNano()
	for round := 0; ; round++ {
		select {
		case <-stop:
			return
		default:
		}
		var recs []*kgo.Record
		var vs []codecs.Verdict
		for i := range perRound {
			id := fmt.Sprintf("m-%04d-%04d", round, i)
			v := codecs.Verdict{Version: codecs.SchemaVersion, CorrelationID: id, Topic: "orders", Group: []string{"billing", "search"}[i%2],
				Status: codecs.StatusLost, Cause: "not_consumed", Seq: 1, AckLatencyUs: 100, E2ELatencyUs: -1, FirstSeenNs: now, DecidedNs: now}
			vs = append(vs, v)
			ev := codecs.Event{Version: codecs.SchemaVersion, Kind: codecs.KindProduce, CorrelationID: id, Topic: "orders",
				Partition: int32(i % 3), Offset: int64(round*perRound + i), ClientID: "p", SendNs: now, AckNs: now + 1000}
			recs = append(recs, &kgo.Record{Topic: audit.DefaultEventsTopic, Key: []byte(id), Value: codecs.AppendEvent(nil, &ev)})
			if round > 0 {
				prev := fmt.Sprintf("m-%04d-%04d", round-1, i)
				d := v
				d.CorrelationID, d.Status, d.Cause, d.Seq, d.E2ELatencyUs = prev, codecs.StatusDelivered, "", 2, 5000
				vs = append(vs, d)
			}
		}
		for i := range vs {
			recs = append(recs, &kgo.Record{Topic: audit.DefaultVerdictsTopic, Key: []byte(vs[i].CorrelationID), Value: codecs.AppendVerdict(nil, &vs[i])})
		}
		results := cl.ProduceSync(context.Background(), recs...)
		if err := results.FirstErr(); err != nil {
			t.Error(err)
			return
		}
		tr.mu.Lock()
		tr.rounds = round + 1
		for _, v := range vs {
			k := deliveryKey{v.Topic, v.Group, v.CorrelationID}
			if old, ok := tr.verdicts[k]; !ok || v.Seq > old.Seq {
				tr.verdicts[k] = v
			}
		}
		for _, res := range results {
			if res.Record.Topic == audit.DefaultEventsTopic {
				tr.events[eventKey{string(res.Record.Key), res.Record.Partition, res.Record.Offset}] = true
			}
		}
		tr.mu.Unlock()
		time.Sleep(pause)
	}
}

func countRows(t *testing.T, conn driver.Conn, query string) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// TestKill9LosesNothingDoublesNothing runs the kaudit-sink binary against a
// stream of verdicts and events, SIGKILLs it at random instants several
// times while it writes, restarts it each time, and then compares
// deliveries FINAL and events FINAL with what was produced: every row
// there, with its latest version, none twice.
func TestKill9LosesNothingDoublesNothing(t *testing.T) {
	cfg, conn := chtest.Migrated(t)
	c := kafkatest.NewCluster(t)
	for _, tp := range []string{audit.DefaultVerdictsTopic, audit.DefaultEventsTopic} {
		kafkatest.CreateTopic(t, c, tp, 6)
	}
	kafkatest.CreateTopic(t, c, audit.DefaultDLQTopic, 1)
	deliveries, events := store.Table(cfg.Database, "deliveries"), store.Table(cfg.Database, "events")
	args := []string{"--brokers", strings.Join(c.ListenAddrs(), ","), "--clickhouse-addr", cfg.Addr, "--clickhouse-database", cfg.Database,
		"--no-migrate", "--group", "sink-kill", "--group-instance-id", "sink-1", "--batch.size", "1500", "--flush.interval", "100ms", "--max.in.flight", "2"}

	// Rows written so far: distinct deliveries and events (raw rows shrink
	// as merges collapse versions).
	versions := "SELECT (SELECT uniqExact(correlation_id, consumer_group) FROM " + deliveries + ") + (SELECT uniqExact(correlation_id, audit_partition, audit_offset) FROM " + events + ")"
	tr := &truth{verdicts: map[deliveryKey]codecs.Verdict{}, events: map[eventKey]bool{}}
	prod := kafkatest.Client(t, c, kgo.RecordPartitioner(audit.Partitioner()))
	produced, stopProducing := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(produced)
		produceStream(t, prod, stopProducing, 100, 50*time.Millisecond, tr)
	}()

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	const kills = 6
	midStream := 0
	for k := 0; k < kills; k++ {
		before := countRows(t, conn, versions)
		p := startSink(t, args...)
		// The first run waits to be ready, so that it writes before the
		// first kill; later kills land anywhere, start-up included.
		if k == 0 {
			began := time.Now()
			p.waitReady(60 * time.Second)
			t.Logf("first run ready after %s", time.Since(began).Round(time.Millisecond))
		}
		time.Sleep(time.Duration(200+rng.IntN(1800)) * time.Millisecond)
		p.kill()
		after := countRows(t, conn, versions)
		if after > before {
			midStream++
		}
		t.Logf("kill %d: %d rows in ClickHouse before the run, %d at the SIGKILL", k+1, before, after)
	}
	close(stopProducing)
	<-produced
	if t.Failed() {
		return
	}
	if midStream < kills/2 {
		t.Fatalf("only %d of %d kills landed while the sink was writing", midStream, kills)
	}

	tr.mu.Lock()
	wantV, wantE, last := len(tr.verdicts), len(tr.events), fmt.Sprintf("m-%04d-%%", tr.rounds-1)
	tr.mu.Unlock()
	p := startSink(t, args...)
	waitFor(t, 120*time.Second, "every row in ClickHouse", func() (bool, string) {
		v := countRows(t, conn, "SELECT count() FROM "+deliveries+" FINAL WHERE seq = 2 OR correlation_id LIKE '"+last+"'")
		e := countRows(t, conn, "SELECT count() FROM "+events+" FINAL")
		return v == uint64(wantV) && e == uint64(wantE), fmt.Sprintf("%d of %d deliveries in their last version, %d of %d events", v, wantV, e, wantE)
	})
	p.stop()

	// deliveries FINAL, row by row.
	rows, err := conn.Query(context.Background(), "SELECT topic, consumer_group, correlation_id, seq, status, e2e_latency_us FROM "+deliveries+" FINAL")
	if err != nil {
		t.Fatal(err)
	}
	got := map[deliveryKey]bool{}
	var missing, wrong, doubled int
	for rows.Next() {
		var k deliveryKey
		var seq uint64
		var status string
		var e2e int64
		if err := rows.Scan(&k.topic, &k.group, &k.id, &seq, &status, &e2e); err != nil {
			t.Fatal(err)
		}
		if got[k] {
			doubled++
		}
		got[k] = true
		w, ok := tr.verdicts[k]
		if !ok || w.Seq != seq || w.Status.String() != status || w.E2ELatencyUs != e2e {
			wrong++
			if wrong <= 5 {
				t.Errorf("delivery %v: seq %d %s e2e %d, want %+v (known %v)", k, seq, status, e2e, w, ok)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	for k := range tr.verdicts {
		if !got[k] {
			missing++
		}
	}

	// events FINAL: every produced event once, at its audit position.
	erows, err := conn.Query(context.Background(), "SELECT correlation_id, audit_partition, audit_offset FROM "+events+" FINAL")
	if err != nil {
		t.Fatal(err)
	}
	gotE := map[eventKey]bool{}
	var wrongE, doubledE int
	for erows.Next() {
		var k eventKey
		if err := erows.Scan(&k.id, &k.partition, &k.offset); err != nil {
			t.Fatal(err)
		}
		if gotE[k] {
			doubledE++
		}
		gotE[k] = true
		if !tr.events[k] {
			wrongE++
		}
	}
	if err := erows.Err(); err != nil {
		t.Fatal(err)
	}
	erows.Close()
	missingE := 0
	for k := range tr.events {
		if !gotE[k] {
			missingE++
		}
	}
	raw := countRows(t, conn, "SELECT count() FROM "+deliveries)
	rawE := countRows(t, conn, "SELECT count() FROM "+events)
	t.Logf("%d kills (%d mid-stream); deliveries: %d expected, %d missing, %d wrong, %d doubled (raw rows %d); events: %d expected, %d missing, %d unknown, %d doubled (raw rows %d)",
		kills, midStream, wantV, missing, wrong, doubled, raw, wantE, missingE, wrongE, doubledE, rawE)
	if missing+wrong+doubled+missingE+wrongE+doubledE != 0 {
		t.Fatalf("after %d SIGKILLs: deliveries %d missing, %d wrong, %d doubled; events %d missing, %d unknown, %d doubled",
			kills, missing, wrong, doubled, missingE, wrongE, doubledE)
	}
}
