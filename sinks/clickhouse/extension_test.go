package clickhouse_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
	"github.com/kaudit/kaudit/sinks"
	chsink "github.com/kaudit/kaudit/sinks/clickhouse"
	"github.com/kaudit/kaudit/store"
)

// adminOp is a record type of another component (say, admin operations
// seen by a proxy), written to a table of its own.
type adminOp struct {
	ID    string `json:"id"`
	User  string `json:"user"`
	Op    string `json:"op"`
	AtNs  int64  `json:"at_ns"`
	Count uint32 `json:"count"`
}

var adminOps = &chsink.Table[adminOp]{Name: "admin_ops", Columns: []chsink.Column[adminOp]{
	chsink.String("id", func(o *adminOp) string { return o.ID }),
	chsink.String("user", func(o *adminOp) string { return o.User }),
	chsink.String("op", func(o *adminOp) string { return o.Op }),
	chsink.DateTime("at", func(o *adminOp) int64 { return o.AtNs }),
	chsink.Int("count", func(o *adminOp) uint32 { return o.Count }),
}}

// adminBatch, its decoder and its sink are all a new record type needs.
type adminBatch struct {
	rows *chsink.Rows[adminOp]
	op   adminOp
}

func (b *adminBatch) Reset() { b.rows.Reset() }

func decodeAdminOp(b *adminBatch, rec *kgo.Record) error {
	b.op = adminOp{}
	if err := json.Unmarshal(rec.Value, &b.op); err != nil {
		return err
	}
	if b.op.ID == "" {
		return fmt.Errorf("admin op without id")
	}
	b.rows.Add(&b.op)
	return nil
}

type adminSink struct{ *chsink.Sink }

func (s adminSink) WriteBatch(ctx context.Context, b *adminBatch) error {
	return chsink.Insert(ctx, s.Sink, b.rows)
}

// A new record type runs through a Runner of its own, with the ClickHouse
// sink's columns and connection, without changing the runner: every valid
// record lands in its table, the invalid one in the dead-letter topic.
func TestNewRecordTypeThroughOwnRunner(t *testing.T) {
	cfg, conn := chtest.Migrated(t)
	ctx := context.Background()
	table := store.Table(cfg.Database, "admin_ops")
	if err := conn.Exec(ctx, "CREATE TABLE "+table+" (id String, user String, op String, at DateTime, count UInt32) ENGINE = ReplacingMergeTree() PARTITION BY toYYYYMMDD(at) ORDER BY id"); err != nil {
		t.Fatal(err)
	}
	c := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, c, "admin.ops", 2)
	kafkatest.CreateTopic(t, c, "kaudit.dlq", 1)
	prod := kafkatest.Client(t, c, kgo.DefaultProduceTopic("admin.ops"))
	now := time.Now()
	var recs []*kgo.Record
	for i := range 20_000 {
		v, _ := json.Marshal(adminOp{ID: fmt.Sprintf("op-%05d", i), User: "alice", Op: "CreateTopics", AtNs: now.UnixNano(), Count: uint32(i)})
		recs = append(recs, &kgo.Record{Value: v})
	}
	recs = append(recs, &kgo.Record{Value: []byte(`{"user":"mallory"}`)})
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	sink := adminSink{chsink.Dial(cfg, chsink.Config{})}
	defer sink.Close()
	r, err := sinks.New(sinks.Config[*adminBatch]{
		Brokers: c.ListenAddrs(), Group: "admin-sink",
		Topics:   []sinks.Topic[*adminBatch]{{Name: "admin.ops", Kind: "admin_op", Decode: decodeAdminOp}},
		NewBatch: func() *adminBatch { return &adminBatch{rows: adminOps.NewRows()} },
		DLQTopic: "kaudit.dlq", FlushInterval: 100 * time.Millisecond,
	}, sinks.Sink[*adminBatch](sink))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	deadline := time.Now().Add(60 * time.Second)
	for r.Stats().Written["admin_op"] < 20_000 || r.Stats().DeadLetter < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %+v", r.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var n, sum uint64
	if err := conn.QueryRow(ctx, "SELECT count(), sum(count) FROM "+table+" FINAL WHERE user = 'alice' AND op = 'CreateTopics'").Scan(&n, &sum); err != nil {
		t.Fatal(err)
	}
	if n != 20_000 || sum != 20_000*19_999/2 {
		t.Errorf("admin_ops: %d rows summing to %d, want 20000 summing to %d", n, sum, 20_000*19_999/2)
	}
	if dead := kafkatest.Consume(t, c, "kaudit.dlq", 1, 10*time.Second); len(dead) != 1 || string(dead[0].Value) != `{"user":"mallory"}` {
		t.Errorf("dead letters %v, want mallory's record", dead)
	}
}
