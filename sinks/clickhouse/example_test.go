package clickhouse_test

import (
	"context"
	"fmt"
	"time"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/internal/chserver"
	"github.com/kaudit/kaudit/sinks"
	chsink "github.com/kaudit/kaudit/sinks/clickhouse"
	"github.com/kaudit/kaudit/store"
	"github.com/kaudit/kaudit/store/migrations"
)

func ExampleNew() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := chserver.Start(ctx, chserver.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Stop()

	cfg := store.Config{Addr: srv.Addr(), Database: "kaudit"}
	if err := migrations.Up(ctx, cfg, nil); err != nil {
		fmt.Println(err)
		return
	}
	conn, err := store.Open(ctx, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()

	sink := chsink.New(conn, chsink.Config{Database: cfg.Database})
	defer sink.Close()
	now := time.Now().UnixNano()
	v := codecs.Verdict{CorrelationID: "c1", Topic: "orders", Group: "billing", Status: codecs.StatusLost, Seq: 1,
		AckLatencyUs: 900, E2ELatencyUs: -1, FirstSeenNs: now, DecidedNs: now}
	later := v
	later.Status, later.Seq, later.E2ELatencyUs = codecs.StatusDelivered, 2, 15_000
	for _, b := range []*sinks.Batch{{Verdicts: []codecs.Verdict{v}}, {Verdicts: []codecs.Verdict{later}}, {Verdicts: []codecs.Verdict{later}}} {
		if err := sink.WriteBatch(ctx, b); err != nil { // idempotent: the repeat changes nothing
			fmt.Println(err)
			return
		}
	}
	var status string
	var n uint64
	err = conn.QueryRow(ctx, "SELECT status, count() FROM "+store.Table(cfg.Database, "deliveries")+" FINAL GROUP BY status").Scan(&status, &n)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(status, n)
	// Prints: DELIVERED 1 (a server-bound example: compiled, not run; the tests check the same)
}
