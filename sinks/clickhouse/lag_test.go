package clickhouse_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
	"github.com/kaudit/kaudit/report"
	"github.com/kaudit/kaudit/sinks"
	chsink "github.com/kaudit/kaudit/sinks/clickhouse"
	"github.com/kaudit/kaudit/store"
	"github.com/kaudit/kaudit/store/migrations"
)

// The correlators' lag reports go through the runner kaudit-sink runs
// into consumer_lag_1m, on one server and through the Distributed tables
// of a cluster: a report sent twice is one row, records that are no lag
// report are dead-lettered with the reason and committed past, and a
// second sink reading everything again (a redelivery) changes nothing.
// The per-minute lag (report.Lag) is the largest age and the summed
// pending count over the instances of a minute.
func TestLagReportsStored(t *testing.T) {
	t.Run("server", func(t *testing.T) {
		cfg, _ := chtest.Migrated(t)
		testLagReportsStored(t, cfg)
	})
	t.Run("cluster", func(t *testing.T) {
		cfg := chtest.NewClusterDatabase(t)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := migrations.Up(ctx, cfg, nil); err != nil {
			t.Fatal(err)
		}
		testLagReportsStored(t, cfg)
	})
}

func testLagReportsStored(t *testing.T, cfg store.Config) {
	ctx := context.Background()
	conn := chtest.Open(t, cfg)
	c := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, c, audit.DefaultLagTopic, 3)
	kafkatest.CreateTopic(t, c, audit.DefaultDLQTopic, 1)

	m := time.Now().UTC().Truncate(time.Minute).Add(-5 * time.Minute)
	reports := []audit.LagReport{
		// Two correlators own orders/billing's partitions in minute m.
		{Minute: m.Unix(), Topic: "orders", Group: "billing", Instance: "c0@h0", OldestAckNs: m.Add(-90 * time.Second).UnixNano(), AgeMs: 90_000, Pending: 7},
		{Minute: m.Unix(), Topic: "orders", Group: "billing", Instance: "c1@h1", OldestAckNs: m.Add(-30 * time.Second).UnixNano(), AgeMs: 30_010, Pending: 5},
		// One of them in the next minute.
		{Minute: m.Unix() + 60, Topic: "orders", Group: "billing", Instance: "c0@h0", OldestAckNs: m.Add(-90 * time.Second).UnixNano(), AgeMs: 150_002, Pending: 9},
		{Minute: m.Unix(), Topic: "payments", Group: "ledger", Instance: "c1@h1", OldestAckNs: m.Add(-2 * time.Second).UnixNano(), AgeMs: 2_003, Pending: 1},
	}
	var recs []*kgo.Record
	for _, r := range reports {
		v, err := json.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: audit.DefaultLagTopic, Key: []byte(r.Topic + "\x00" + r.Group + "\x00" + r.Instance), Value: v})
	}
	recs = append(recs, &kgo.Record{Topic: audit.DefaultLagTopic, Key: recs[0].Key, Value: recs[0].Value}) // sent twice
	bad := []string{`{not json`, `{"minute":61,"topic":"t","group":"g","instance":"i","oldest_ack_ns":1}`, `{"topic":"t"}`}
	for i, b := range bad {
		recs = append(recs, &kgo.Record{Topic: audit.DefaultLagTopic, Key: fmt.Appendf(nil, "bad-%d", i), Value: []byte(b)})
	}
	if err := kafkatest.Client(t, c).ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	run := func(group string) sinks.Stats {
		sink := chsink.Dial(cfg, chsink.Config{})
		defer sink.Close()
		r, err := sinks.New(sinks.Config[*chsink.Batch]{
			Brokers: c.ListenAddrs(), Group: group, Topics: chsink.Topics("", "", "", "", audit.DefaultLagTopic),
			NewBatch: chsink.NewBatch, FlushInterval: 100 * time.Millisecond, DLQTopic: audit.DefaultDLQTopic,
		}, sinks.Sink[*chsink.Batch](sink.Columnar()))
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(rctx) }()
		adm := kadm.NewClient(kafkatest.Client(t, c))
		deadline := time.Now().Add(30 * time.Second)
		for {
			var n int64
			offs, err := adm.FetchOffsets(ctx, group)
			if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
				t.Fatal(err)
			}
			offs.Each(func(o kadm.OffsetResponse) {
				if o.Topic == audit.DefaultLagTopic && o.At > 0 {
					n += o.At
				}
			})
			if n == int64(len(recs)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("group %s committed %d of the %d lag records: %+v", group, n, len(recs), r.Stats())
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return r.Stats()
	}
	want := []report.LagMinute{
		{Minute: m, Topic: "orders", Group: "billing", AgeMs: 90_000, Pending: 12, OldestAckNs: reports[0].OldestAckNs, Instances: 2},
		{Minute: m.Add(time.Minute), Topic: "orders", Group: "billing", AgeMs: 150_002, Pending: 9, OldestAckNs: reports[2].OldestAckNs, Instances: 1},
		{Minute: m, Topic: "payments", Group: "ledger", AgeMs: 2_003, Pending: 1, OldestAckNs: reports[3].OldestAckNs, Instances: 1},
	}
	for round, group := range []string{"lag-sink", "lag-sink-again"} {
		// Committed only once written: the rows are there.
		s := run(group)
		if s.Written[sinks.KindLag] != uint64(len(reports)+1) || s.DeadLetter != uint64(len(bad)) {
			t.Errorf("round %d: stats %+v, want %d lag reports written and %d dead letters", round, s, len(reports)+1, len(bad))
		}
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+store.Table(cfg.Database, store.LagTable)+" FINAL").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != uint64(len(reports)) {
			t.Errorf("round %d: %d rows FINAL, want one per distinct report (%d)", round, n, len(reports))
		}
		got, err := report.Lag(ctx, conn, cfg.Database, report.Filter{Since: m.Add(-time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round %d: lag\n%+v, want\n%+v", round, got, want)
		}
		if got, _ := report.Lag(ctx, conn, cfg.Database, report.Filter{Since: m.Add(-time.Hour), Topic: "payments"}); len(got) != 1 || got[0].Group != "ledger" {
			t.Errorf("round %d: lag of payments: %+v", round, got)
		}
		if got, _ := report.Lag(ctx, conn, cfg.Database, report.Filter{Since: m.Add(time.Minute), Group: "billing"}); len(got) != 1 || got[0].Pending != 9 {
			t.Errorf("round %d: lag of billing from minute m+1: %+v", round, got)
		}
	}
	dead := kafkatest.Consume(t, c, audit.DefaultDLQTopic, 2*len(bad), 10*time.Second)
	if len(dead) != 2*len(bad) {
		t.Fatalf("%d dead letters, want %d (each bad record once per sink group)", len(dead), 2*len(bad))
	}
	for _, d := range dead {
		h := map[string]string{}
		for _, x := range d.Headers {
			h[x.Key] = string(x.Value)
		}
		if !strings.HasPrefix(h[audit.HeaderErrMessage], "lag record: ") || h[audit.HeaderErrTopic] != audit.DefaultLagTopic || !strings.HasPrefix(string(d.Key), "bad-") {
			t.Errorf("dead letter %q: headers %v", d.Key, h)
		}
	}
}
