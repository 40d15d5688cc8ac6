package store_test

import (
	"context"
	"fmt"
	"time"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/internal/chserver"
	"github.com/kaudit/kaudit/report"
	"github.com/kaudit/kaudit/sinks"
	chsink "github.com/kaudit/kaudit/sinks/clickhouse"
	"github.com/kaudit/kaudit/store"
	"github.com/kaudit/kaudit/store/migrations"
)

// A message first judged LOST and later LATE counts once, as LATE.
func ExampleRefresher() {
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
	refresher := store.NewRefresher(conn, store.RefresherConfig{Database: cfg.Database})

	seen := time.Now().Add(-time.Minute).UnixNano()
	lost := codecs.Verdict{CorrelationID: "c1", Topic: "orders", Group: "billing", Status: codecs.StatusLost, Seq: 1,
		AckLatencyUs: 900, E2ELatencyUs: -1, FirstSeenNs: seen, DecidedNs: seen}
	late := lost
	late.Status, late.Seq, late.E2ELatencyUs = codecs.StatusLate, 2, 42_000_000
	for _, v := range []codecs.Verdict{lost, late} {
		if err := sink.WriteBatch(ctx, &sinks.Batch{Verdicts: []codecs.Verdict{v}}); err != nil {
			fmt.Println(err)
			return
		}
		if _, err := refresher.Refresh(ctx); err != nil {
			fmt.Println(err)
			return
		}
		rows, err := report.Overview(ctx, conn, cfg.Database, report.Filter{})
		if err != nil {
			fmt.Println(err)
			return
		}
		for _, r := range rows {
			fmt.Printf("%s/%s: expected %d, lost %d, late %d, completeness %s, e2e p50 %s\n", r.Topic, r.Group,
				r.Expected(), r.Lost, r.Late, report.FormatPercent(r.Completeness()), report.FormatMicros(r.E2E.P50))
		}
	}
	// (a server-bound example: compiled, not run; the tests check the same)
	// orders/billing: expected 1, lost 1, late 0, completeness 0.00%, e2e p50 -
	// orders/billing: expected 1, lost 0, late 1, completeness 100.00%, e2e p50 42000.00 ms
}
