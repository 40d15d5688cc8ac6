//go:build rdkafka

package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/internal/app/pipeline"
	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
	"github.com/kaudit/kaudit/store"
	"github.com/kaudit/kaudit/store/migrations"
)

var uuidV7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestKcatAndPythonDelivered is the plugin's acceptance test: clients no
// one here wrote, loading the pluginLib(t), against a kfake broker, through the
// real pipeline (correlator + ClickHouse sink):
//
//   - kcat produces n keyed lines; a Python process (confluent-kafka)
//     produces n messages, some with their own correlation_id and all with
//     another header, destroys its producer, then reads all 2n messages in
//     group py-group; kcat reads them in group kcat-group.
//   - ClickHouse then holds 4n DELIVERED deliveries: 2n per group, n per
//     producer client in each; 6n events, all from librdkafka, with the
//     digests and sizes of the messages as they are on the topic.
func TestKcatAndPythonDelivered(t *testing.T) {
	const n = 200
	const fixed = 5
	ctx := context.Background()
	c := kafkatest.NewCluster(t)
	brokers := c.ListenAddrs()[0]
	kafkatest.CreateTopic(t, c, "orders", 3)

	chCfg := chtest.NewDatabase(t)
	mctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := migrations.Up(mctx, chCfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("migrations: %v", err)
	}
	conn := chtest.Open(t, chCfg)
	p, err := pipeline.New(pipeline.Config{
		Brokers:       c.ListenAddrs(),
		ClickHouse:    conn,
		Database:      chCfg.Database,
		StorageDir:    t.TempDir(),
		FlushInterval: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Correlator.EnsureTopics(); err != nil {
		t.Fatal(err)
	}
	pctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(pctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("pipeline: %v", err)
		}
	})

	stats := filepath.Join(t.TempDir(), "stats.jsonl")
	var lines []string
	for i := range n {
		lines = append(lines, fmt.Sprintf("kcat-key-%d:kcat message %d %s", i, i, strings.Repeat("k", i%90)))
	}
	kcatProduce(t, brokers, "orders", lines, []string{"-K", ":"}, "client.id=kcat-producer", "audit.stats.file="+stats)

	out := mustRun(t, 3*time.Minute, "", pythonBin, "testdata/clients.py",
		"--plugin", pluginLib(t), "--bootstrap", brokers, "--topic", "orders",
		"--produce", fmt.Sprint(n), "--fixed", fmt.Sprint(fixed), "--client-id", "py-producer",
		"--group", "py-group", "--consume", fmt.Sprint(2*n), "--stats", stats)
	var py struct {
		IDs       []*string `json:"ids"`
		TraceKept bool      `json:"trace_kept"`
		Delivered int       `json:"delivered"`
	}
	if err := json.Unmarshal([]byte(out), &py); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	if py.Delivered != n || len(py.IDs) != 2*n || !py.TraceKept {
		t.Fatalf("python: delivered %d, read %d, trace headers kept %t; want %d, %d, true", py.Delivered, len(py.IDs), py.TraceKept, n, 2*n)
	}

	heads := kcatGroupConsume(t, brokers, "kcat-group", "orders", 2*n, "audit.stats.file="+stats)
	if len(heads) != 2*n {
		t.Fatalf("kcat read %d messages, want %d", len(heads), 2*n)
	}
	checkStats(t, readStats(t, stats), map[string]uint64{
		"kcat-producer": n, "py-producer": n, "py-group-client": 2 * n, "rdkafka": 2 * n,
	})

	// The messages as they are on the topic.
	type msg struct {
		digest uint64
		size   int32
		value  string
	}
	byID := map[string]msg{}
	for _, r := range kafkatest.Consume(t, c, "orders", 2*n, 20*time.Second) {
		var id string
		for _, h := range r.Headers {
			if h.Key == audit.CorrelationHeader {
				id = string(h.Value)
				break
			}
		}
		byID[id] = msg{codecs.Digest(r.Key, r.Value), int32(len(r.Key) + len(r.Value)), string(r.Value)}
	}
	if len(byID) != 2*n {
		t.Fatalf("%d distinct correlation IDs on %d messages", len(byID), 2*n)
	}
	for id, m := range byID {
		own := strings.HasPrefix(id, "py-fixed-")
		if !own && !uuidV7.MatchString(id) {
			t.Errorf("correlation ID %q of %q is not a lowercase UUID v7", id, m.value)
		}
		if own != (strings.HasPrefix(m.value, "python message ") && id == "py-fixed-"+strings.Fields(m.value)[2]) {
			t.Errorf("message %q has correlation ID %q", m.value, id)
		}
	}

	q := func(query string, args ...any) uint64 {
		t.Helper()
		var v uint64
		if err := conn.QueryRow(ctx, query, args...).Scan(&v); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return v
	}
	deliveries := store.Table(chCfg.Database, "deliveries")
	events := store.Table(chCfg.Database, "events")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got := q("SELECT count() FROM " + deliveries + " FINAL WHERE status = 'DELIVERED'")
		evs := q("SELECT count() FROM " + events + " FINAL")
		if got >= 4*n && evs >= 6*n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ClickHouse: %d DELIVERED deliveries (want %d), %d events (want %d); correlator %+v, sink %+v",
				got, 4*n, evs, 6*n, p.Correlator.Stats(), p.Sink.Stats())
		}
		time.Sleep(250 * time.Millisecond)
	}
	time.Sleep(time.Second) // nothing more may arrive

	if got := q("SELECT count() FROM " + deliveries + " FINAL"); got != 4*n {
		t.Errorf("%d deliveries, want %d", got, 4*n)
	}
	for _, g := range []string{"py-group", "kcat-group"} {
		for _, pc := range []string{"kcat-producer", "py-producer"} {
			got := q("SELECT count() FROM "+deliveries+" FINAL WHERE status = 'DELIVERED' AND topic = 'orders' AND consumer_group = ? AND producer_client = ?", g, pc)
			if got != n {
				t.Errorf("group %s, producer %s: %d DELIVERED, want %d", g, pc, got, n)
			}
		}
	}
	if bad := q("SELECT count() FROM " + deliveries + " FINAL WHERE ack_latency_us < 0 OR e2e_latency_us <= 0 OR consume_count != 1"); bad != 0 {
		t.Errorf("%d deliveries with ack_latency_us < 0, e2e_latency_us <= 0 or consume_count != 1", bad)
	}
	if got := q("SELECT count() FROM " + deliveries + " FINAL WHERE status = 'DELIVERED' AND startsWith(correlation_id, 'py-fixed-')"); got != 2*fixed {
		t.Errorf("%d DELIVERED deliveries of messages with their own ID, want %d", got, 2*fixed)
	}
	if got := q("SELECT count() FROM " + events + " FINAL WHERE source = 'librdkafka'"); got != 6*n {
		t.Errorf("%d events from librdkafka, want %d", got, 6*n)
	}
	if bad := q("SELECT count() FROM " + events + " FINAL WHERE kind = 'produce' AND (send_ns <= 0 OR ack_ns < send_ns OR ack_ns - send_ns > 60000000000 OR offset < 0 OR error != '')"); bad != 0 {
		t.Errorf("%d produce events without a sane send time, ack time and offset", bad)
	}
	if bad := q("SELECT count() FROM " + events + " FINAL WHERE host = '' OR record_ts_ns <= 0 OR (kind = 'consume' AND consume_ns <= 0)"); bad != 0 {
		t.Errorf("%d events without host, record timestamp or consume time", bad)
	}

	rows, err := conn.Query(ctx, "SELECT correlation_id, kind, digest, payload_size, client_id, consumer_group FROM "+events+" FINAL")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var id, kind, client, group string
		var digest uint64
		var size int32
		if err := rows.Scan(&id, &kind, &digest, &size, &client, &group); err != nil {
			t.Fatal(err)
		}
		seen++
		m, ok := byID[id]
		if !ok {
			t.Errorf("event for unknown correlation ID %q", id)
			continue
		}
		if digest != m.digest || size != m.size {
			t.Errorf("%s event of %q: digest %x size %d, want %x %d", kind, m.value, digest, size, m.digest, m.size)
		}
		if kind == "consume" && !(group == "py-group" && client == "py-group-client" || group == "kcat-group" && client == "rdkafka") {
			t.Errorf("consume event by client %q in group %q", client, group)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if seen != 6*n {
		t.Errorf("read %d events, want %d", seen, 6*n)
	}
}
