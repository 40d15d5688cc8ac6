package e2e_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/internal/chserver"
	"github.com/kaudit/kaudit/internal/testing/itest"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
	"github.com/kaudit/kaudit/sinks"
	chsink "github.com/kaudit/kaudit/sinks/clickhouse"
	"github.com/kaudit/kaudit/store"
	"github.com/kaudit/kaudit/store/migrations"
)

// TestSinkSurvivesClickHouseOutage: while ClickHouse is down the sink
// retries with backoff and commits nothing; when the server is back (same
// address and data), everything read meanwhile is written, exactly once.
func TestSinkSurvivesClickHouseOutage(t *testing.T) {
	itest.Integration(t)
	ctx := context.Background()
	log := testLogger(t)
	dir := t.TempDir()
	srv, err := chserver.Start(ctx, chserver.Options{Dir: dir, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	port := func(addr string) int {
		_, p, _ := net.SplitHostPort(addr)
		n, _ := strconv.Atoi(p)
		return n
	}
	tcpPort, httpPort := port(srv.Addr()), port(srv.HTTPAddr())
	cfg := store.Config{Addr: srv.Addr(), Database: "kaudit"}
	if err := migrations.Up(ctx, cfg, log); err != nil {
		t.Fatal(err)
	}
	conn, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	c := kafkatest.NewCluster(t)
	kafkatest.CreateTopic(t, c, "kaudit.verdicts", 3)
	kafkatest.CreateTopic(t, c, "kaudit.dlq", 1)
	prod := kafkatest.Client(t, c)
	send := func(from, to int) {
		var recs []*kgo.Record
		for i := from; i < to; i++ {
			v := &codecs.Verdict{Version: 1, CorrelationID: fmt.Sprintf("m%05d", i), Topic: "orders", Group: "g",
				Status: codecs.StatusDelivered, Seq: 1, AckLatencyUs: 1, E2ELatencyUs: 2, FirstSeenNs: time.Now().UnixNano()}
			recs = append(recs, &kgo.Record{Topic: "kaudit.verdicts", Key: []byte(v.CorrelationID), Value: codecs.AppendVerdict(nil, v)})
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	r, err := sinks.New(sinks.Config[*sinks.Batch]{
		Brokers: c.ListenAddrs(), Group: "sink", Topics: sinks.AuditTopics("kaudit.verdicts", ""), NewBatch: sinks.NewBatch, DLQTopic: "kaudit.dlq",
		FlushInterval: 100 * time.Millisecond, RetryBackoff: 100 * time.Millisecond, RetryBackoffMax: time.Second, Logger: log,
	}, chsink.New(conn, chsink.Config{Database: "kaudit"}))
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() { stop(); <-done }()

	count := func() (uint64, error) {
		var n uint64
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		err := conn.QueryRow(qctx, "SELECT count() FROM kaudit.deliveries FINAL").Scan(&n)
		return n, err
	}
	send(0, 500)
	waitFor(t, 30*time.Second, "the first 500 rows", func() (bool, string) {
		n, err := count()
		return n == 500, fmt.Sprintf("%d rows, err %v", n, err)
	})

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	send(500, 1000)
	retriesBefore := r.Stats().Retries
	waitFor(t, 30*time.Second, "the sink to retry against the stopped server", func() (bool, string) {
		s := r.Stats()
		return s.Retries >= retriesBefore+2, fmt.Sprintf("%+v", s)
	})
	if s := r.Stats(); s.Written[sinks.KindVerdict] != 500 {
		t.Fatalf("the sink reports %d verdicts written while ClickHouse was down", s.Written[sinks.KindVerdict])
	}

	srv, err = chserver.Start(ctx, chserver.Options{Dir: dir, Logger: log, TCPPort: tcpPort, HTTPPort: httpPort})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	waitFor(t, 60*time.Second, "all 1,000 rows after the outage", func() (bool, string) {
		n, err := count()
		return n == 1000, fmt.Sprintf("%d rows, err %v, sink %+v", n, err, r.Stats())
	})
	var distinct uint64
	if err := conn.QueryRow(ctx, "SELECT uniqExact(correlation_id) FROM kaudit.deliveries FINAL").Scan(&distinct); err != nil || distinct != 1000 {
		t.Errorf("%d distinct messages (err %v), want 1000", distinct, err)
	}
}
