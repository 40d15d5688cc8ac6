// Package demo runs kaudit end to end on one machine: the embedded broker,
// a real ClickHouse server, the migrations, the correlator, the ClickHouse
// sink and audited demo traffic (a producer and two consumer groups, one
// slower than the other). It prints progress while it runs and, at the end,
// a summary per topic and consumer group read back from ClickHouse.
package demo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"golang.org/x/sync/errgroup"

	"github.com/kaudit/kaudit/interceptors/emitter"
	"github.com/kaudit/kaudit/internal/app/pipeline"
	"github.com/kaudit/kaudit/internal/app/traffic"
	"github.com/kaudit/kaudit/internal/chserver"
	"github.com/kaudit/kaudit/internal/devbroker"
	"github.com/kaudit/kaudit/processors/expectations"
	"github.com/kaudit/kaudit/report"
	"github.com/kaudit/kaudit/store"
	"github.com/kaudit/kaudit/store/migrations"
	"github.com/kaudit/kaudit/web"
)

// Config configures Run.
type Config struct {
	// StateDir keeps the broker's data, the correlator's table and the
	// local ClickHouse server's data across runs.
	StateDir string
	// BrokerAddr is where the embedded broker listens.
	BrokerAddr string
	// ClickHouse is used if a server answers there; otherwise the demo
	// starts a local clickhouse-server (installing Debian's package if the
	// binary is missing).
	ClickHouse store.Config
	// UseClickHouse says ClickHouse was configured (flag or environment):
	// the demo then uses that server if it answers.
	UseClickHouse bool
	// WebAddr is where the web dashboard listens (default
	// web.DefaultAddr; "off" disables it).
	WebAddr string
	// Duration stops the demo by itself; 0 runs until ctx ends.
	Duration time.Duration
	// Rate is demo messages per second.
	Rate int
	// Topic is the demo topic.
	Topic string
	// AlertmanagerURL, if set, receives the demo's SLO alerts.
	AlertmanagerURL string
	// Out receives progress and the summary.
	Out    io.Writer
	Logger *slog.Logger
}

// Demo groups: billing keeps up, analytics polls once a second, and
// archiver dies a while into the run, so its messages are LOST.
var groups = []traffic.Group{
	{Name: "billing"},
	{Name: "analytics", PollEvery: time.Second},
	{Name: "archiver"},
}

// demoDeadline is the deadline of the demo topic's expectation.
const demoDeadline = 10 * time.Second

// Run runs the demo until cfg.Duration passes or ctx ends, then drains,
// shuts everything down and prints the summary.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 500
	}
	if cfg.Topic == "" {
		cfg.Topic = "demo.orders"
	}
	if cfg.StateDir == "" {
		cfg.StateDir = ".kaudit"
	}
	out, log := cfg.Out, cfg.Logger
	start := time.Now()

	// 1. The embedded broker.
	broker, err := devbroker.Start(devbroker.Config{
		Addr: cfg.BrokerAddr, DataDir: filepath.Join(cfg.StateDir, "kafka"), Logger: log,
	})
	if err != nil {
		return err
	}
	defer broker.Close()
	brokers := []string{broker.Addr()}
	fmt.Fprintf(out, "kafka:      embedded kfake broker at %s (data in %s)\n", broker.Addr(), filepath.Join(cfg.StateDir, "kafka"))

	// 1b. kaudit-proxy in front of it, for the demo's clients (proxy.go).
	proxyAddr, stopProxy, err := startProxy(ctx, out, broker, log)
	if err != nil {
		return err
	}
	defer stopProxy()

	// 2. ClickHouse: the configured server if it answers, else a local one.
	chcfg := cfg.ClickHouse.WithDefaults()
	conn, stopCH, local, err := clickhouse(ctx, cfg, &chcfg)
	if err != nil {
		return err
	}
	defer stopCH()
	defer conn.Close()

	// 3. Migrations.
	if err := migrations.Up(ctx, chcfg, log); err != nil {
		return fmt.Errorf("demo: migrations: %w", err)
	}
	fmt.Fprintf(out, "migrations: applied to database %s\n", chcfg.Database)

	// 4. Correlator and sink.
	exp := demoExpectation(cfg.Topic)
	fresh := newFreshness()
	p, err := pipeline.New(pipeline.Config{
		Brokers:       brokers,
		ClickHouse:    conn,
		Database:      chcfg.Database,
		StorageDir:    filepath.Join(cfg.StateDir, "correlator"),
		SweepInterval: 2 * time.Second,
		Grace:         2 * time.Minute,
		Expectations:  []*expectations.Expectation{exp},
		FlushInterval: 500 * time.Millisecond,
		OnSinkWritten: fresh.observe,
		Logger:        log,
	})
	if err != nil {
		return err
	}
	if err := p.Correlator.EnsureTopics(); err != nil {
		return err
	}

	// 4b. The web dashboard (it refreshes the rollups when a page loads).
	stopWeb := startWeb(ctx, cfg, conn, chcfg.Schema())
	defer stopWeb()
	al, err := startAlerts(ctx, cfg, conn, chcfg.Database, exp) // alerts.go
	if err != nil {
		return err
	}
	defer al.stop()

	// 5. The audit emitter and the demo traffic.
	em, err := emitter.New(emitter.Config{Brokers: brokers, Logger: log})
	if err != nil {
		return err
	}
	archiverLife := 10 * time.Second
	if cfg.Duration > 0 {
		archiverLife = cfg.Duration / 3
	}
	demoGroups := append([]traffic.Group(nil), groups...)
	demoGroups[2].StopAfter = archiverLife
	tr, err := traffic.New(traffic.Config{
		Brokers: []string{proxyAddr}, Emitter: em, Topic: cfg.Topic, Rate: cfg.Rate, Groups: demoGroups, Logger: log,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "traffic:    %d msg/s to %s; consumer groups billing (fast), analytics (polls every 1s) and archiver (dies after %s)\n", cfg.Rate, cfg.Topic, archiverLife)
	fmt.Fprintf(out, "expected:   all three groups must consume every message within %s of its ack\n", demoDeadline)
	if cfg.Duration > 0 {
		fmt.Fprintf(out, "running for %s (Ctrl-C stops earlier)\n\n", cfg.Duration)
	} else {
		fmt.Fprintf(out, "running until Ctrl-C\n\n")
	}

	backCtx, stopBack := context.WithCancel(context.WithoutCancel(ctx))
	back, backCtx := errgroup.WithContext(backCtx)
	back.Go(func() error { return p.Run(backCtx) })
	consCtx, stopCons := context.WithCancel(backCtx)
	cons, consCtx := errgroup.WithContext(consCtx)
	for _, g := range demoGroups {
		cons.Go(func() error { return tr.Consume(consCtx, g) })
	}
	prodCtx, stopProd := context.WithCancel(ctx)
	if cfg.Duration > 0 {
		prodCtx, stopProd = context.WithTimeout(ctx, cfg.Duration)
	}
	defer stopProd()
	prodDone := make(chan error, 1)
	go func() { prodDone <- tr.Produce(prodCtx) }()
	go func() {
		if err := adminOps(ctx, out, broker, proxyAddr); err != nil {
			log.Warn("demo: admin operations", "err", err)
		}
	}()

	prog := newProgress(out, p, tr, em, start)
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	var prodErr error
wait:
	for {
		select {
		case prodErr = <-prodDone:
			break wait
		case <-backCtx.Done():
			stopProd()
			prodErr = <-prodDone
			break wait
		case <-tick.C:
			prog.print()
		}
	}
	if prodErr != nil {
		log.Warn("demo producer", "err", prodErr)
	}

	// Drain: let consumers, correlator and sink catch up, and the last
	// messages' deadlines pass so their LOST verdicts are decided.
	deadlinesDone := time.Now().Add(demoDeadline + 3*time.Second)
	fmt.Fprintf(out, "\nstopping traffic; draining until the last deadlines pass (%s)...\n", time.Until(deadlinesDone).Round(time.Second))
	drainUntil := deadlinesDone.Add(15 * time.Second)
	for time.Now().Before(drainUntil) && backCtx.Err() == nil && (time.Now().Before(deadlinesDone) || !prog.drained()) {
		time.Sleep(500 * time.Millisecond)
	}
	prog.print()
	stopCons()
	_ = cons.Wait()
	closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = em.Close(closeCtx)
	cancel()
	time.Sleep(time.Second) // last audit events of the consumers' final polls
	stopBack()
	if err := back.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("demo: pipeline: %w", err)
	}

	// 6. The summary, from ClickHouse.
	sctx := context.WithoutCancel(ctx)
	if _, err := store.NewRefresher(conn, store.RefresherConfig{Database: chcfg.Database, Cluster: chcfg.Cluster, Logger: log}).Refresh(sctx); err != nil {
		return fmt.Errorf("demo: refresh rollups: %w", err)
	}
	rows, err := report.Overview(sctx, conn, chcfg.Database, report.Filter{Since: start})
	if err != nil {
		return fmt.Errorf("demo: summary: %w", err)
	}
	fmt.Fprintf(out, "\nSummary since %s (from ClickHouse %s, database %s):\n", start.Format(time.TimeOnly), chcfg.Addr, chcfg.Database)
	if err := report.FormatOverview(out, rows); err != nil {
		return err
	}
	es := em.Stats()
	fmt.Fprintf(out, "\naudit events: %d sent, %d dropped, %d failed; dead letters: %d\n",
		es.Sent, es.Dropped, es.Failed, p.Sink.Stats().DeadLetter+p.Correlator.Stats().DeadLetter)
	fresh.print(out)
	if err := al.finish(sctx, conn, chcfg.Database, start); err != nil {
		return err
	}
	// The trail of one anomaly, as `kaudit trail <id>` prints it.
	if anomalies, err := report.Anomalies(sctx, conn, chcfg.Database, report.Filter{Since: start}, 1); err == nil && len(anomalies) > 0 {
		if tr, err := report.Trail(sctx, conn, chcfg.Database, anomalies[0].CorrelationID); err == nil {
			fmt.Fprintf(out, "\nThe trail of one anomaly (kaudit trail %s):\n", anomalies[0].CorrelationID)
			_ = report.FormatTrail(out, tr)
		}
	}
	if local {
		fmt.Fprintf(out, "\nThe local ClickHouse stops with the demo (its data stays in %s); to keep exploring with\n"+
			"kaudit web, report and trail, run a server and set KAUDIT_CLICKHOUSE_ADDR.\n", filepath.Join(cfg.StateDir, "clickhouse"))
	}
	return nil
}

// clickhouse connects to the configured server if it answers, otherwise
// starts a local one under the state folder.
func clickhouse(ctx context.Context, cfg Config, chcfg *store.Config) (conn driver.Conn, stop func(), local bool, err error) {
	out := cfg.Out
	if cfg.UseClickHouse {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		probe := *chcfg
		probe.Database = "default"
		c, err := store.Open(pctx, probe) // the context bounds the dial and ping only
		cancel()
		if err == nil {
			fmt.Fprintf(out, "clickhouse: using the server at %s\n", chcfg.Addr)
			return c, func() {}, false, nil
		}
		fmt.Fprintf(out, "clickhouse: no server answers at %s (%v); starting a local one\n", chcfg.Addr, err)
	}
	dir, err := filepath.Abs(filepath.Join(cfg.StateDir, "clickhouse"))
	if err != nil {
		return nil, nil, false, err
	}
	if _, err := chserver.Find(); err != nil {
		fmt.Fprintf(out, "clickhouse: no clickhouse-server binary; installing Debian's package clickhouse-server (apt-get)...\n")
	}
	srv, err := chserver.Start(ctx, chserver.Options{Dir: dir, Logger: cfg.Logger, Install: true})
	if err != nil {
		return nil, nil, false, fmt.Errorf("demo: start clickhouse: %w", err)
	}
	fmt.Fprintf(out, "clickhouse: started local clickhouse-server %s at %s (data in %s)\n", srv.Version(), srv.Addr(), dir)
	chcfg.Addr = srv.Addr()
	chcfg.Cluster = "" // one local server
	probe := *chcfg
	probe.Database = "default"
	if conn, err = store.Open(ctx, probe); err != nil {
		srv.Stop()
		return nil, nil, false, err
	}
	return conn, func() { _ = srv.Stop() }, true, nil
}

// startWeb serves the dashboard on cfg.WebAddr until the returned function
// is called; a port in use only costs the dashboard.
func startWeb(ctx context.Context, cfg Config, conn driver.Conn, schema store.Schema) func() {
	db := schema.Database
	addr := cmp.Or(cfg.WebAddr, web.DefaultAddr)
	if addr == "off" {
		return func() {}
	}
	srv, err := web.New(conn, web.Config{Database: db, Logger: cfg.Logger, AutoReload: 10 * time.Second,
		Refresher: store.NewRefresher(conn, store.RefresherConfig{Database: db, Cluster: schema.Cluster, Logger: cfg.Logger})})
	if err == nil {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			fmt.Fprintf(cfg.Out, "dashboard:  http://%s/ (kaudit web dashboard)\n", ln.Addr())
			wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
			done := make(chan struct{})
			go func() { defer close(done); _ = srv.Serve(wctx, ln) }()
			return func() { stop(); <-done }
		}
	}
	fmt.Fprintf(cfg.Out, "dashboard:  not started (%v)\n", err)
	return func() {}
}
