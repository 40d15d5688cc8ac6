package demo

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/kaudit/kaudit/alerts"
	"github.com/kaudit/kaudit/processors/expectations"
	"github.com/kaudit/kaudit/store"
	"github.com/kaudit/kaudit/web"
)

// The demo groups' SLOs: 99.9% of the messages on time, 99% within 5 s.
const (
	demoCompleteness = 99.9
	demoP99          = 5 * time.Second
	// alertsEvery is how often the demo evaluates the SLOs.
	alertsEvery = 5 * time.Second
)

// demoExpectation is the expectation of the demo topic: every group
// within the deadline, with SLOs.
func demoExpectation(topic string) *expectations.Expectation {
	names := make([]string, len(groups))
	for i, g := range groups {
		names[i] = g.Name
	}
	return &expectations.Expectation{Topic: topic, Groups: names, Deadline: expectations.Duration(demoDeadline),
		Completeness: demoCompleteness, P99: expectations.Duration(demoP99)}
}

// demoAlerts runs the SLO evaluator of the demo and prints each alert
// that fires or resolves.
type demoAlerts struct {
	ev  *alerts.Evaluator
	out io.Writer
	// stop ends the periodic evaluation (idempotent).
	stop func()
	mu   sync.Mutex // serializes the evaluator and the output
}

// startAlerts evaluates the SLOs of exp every alertsEvery until stopped,
// sending to cfg.AlertmanagerURL if set.
func startAlerts(ctx context.Context, cfg Config, conn driver.Conn, db string, exp *expectations.Expectation) (*demoAlerts, error) {
	var notifiers []alerts.Notifier
	if cfg.AlertmanagerURL != "" {
		am, err := alerts.NewAlertmanager(alerts.AlertmanagerConfig{URL: cfg.AlertmanagerURL, ValidFor: 4 * alertsEvery})
		if err != nil {
			return nil, err
		}
		notifiers = append(notifiers, am)
	}
	d := &demoAlerts{out: cfg.Out}
	dashboard := ""
	if addr := cmp.Or(cfg.WebAddr, web.DefaultAddr); addr != "off" {
		dashboard = "http://" + addr
	}
	ev, err := alerts.New(conn, alerts.Config{
		Database: db,
		Expectations: func(context.Context) ([]*expectations.Expectation, error) {
			return []*expectations.Expectation{exp}, nil
		},
		Notifiers:    notifiers,
		DashboardURL: dashboard,
		Samples:      3,
		Refresher:    store.NewRefresher(conn, store.RefresherConfig{Database: db, Logger: cfg.Logger}),
		Interval:     alertsEvery,
		OnChange:     d.print,
		// The demo prints the changes itself: only the evaluator's
		// warnings go to the log.
		Logger: slog.New(warnOnly{cfg.Logger.Handler()}),
	})
	if err != nil {
		return nil, err
	}
	d.ev = ev
	to := "the dashboard's /alerts page"
	if cfg.AlertmanagerURL != "" {
		to += " and Alertmanager at " + cfg.AlertmanagerURL
	}
	fmt.Fprintf(cfg.Out, "SLOs:       each group %s%% on time and p99 within %s; burn-rate alerts every %s to %s\n",
		strings.TrimSuffix(fmt.Sprint(demoCompleteness), ".0"), demoP99, alertsEvery, to)
	actx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(alertsEvery)
		defer t.Stop()
		for {
			select {
			case <-actx.Done():
				return
			case <-t.C:
				d.evaluate(actx)
			}
		}
	}()
	var once sync.Once
	d.stop = func() { once.Do(func() { stop(); <-done }) }
	return d, nil
}

func (d *demoAlerts) evaluate(ctx context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, _ = d.ev.Evaluate(ctx) // a failed evaluation is logged and retried
}

// print is the evaluator's OnChange (called under d.mu).
func (d *demoAlerts) print(a *alerts.Alert) {
	fmt.Fprintf(d.out, "ALERT %s %s %s/%s: %s\n", strings.ToUpper(a.State), a.Severity, a.Topic, a.Group, a.Summary)
	if a.State == alerts.StateFiring {
		for _, s := range a.Samples {
			fmt.Fprintf(d.out, "      %s %s %s\n", s.Status, s.CorrelationID, s.TrailURL)
		}
	}
}

// finish stops the periodic evaluation, evaluates once more (every
// deadline has passed by now) and prints the alerts of the run from
// ClickHouse: those started since start, and those still firing.
func (d *demoAlerts) finish(ctx context.Context, conn driver.Conn, db string, start time.Time) error {
	d.stop()
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.ev.Evaluate(ctx); err != nil {
		return fmt.Errorf("demo: evaluate SLOs: %w", err)
	}
	hist, err := alerts.History(ctx, conn, db, alerts.HistoryFilter{})
	if err != nil {
		return fmt.Errorf("demo: alerts: %w", err)
	}
	fmt.Fprintf(d.out, "\nAlerts (kaudit alerts; the dashboard lists them on /alerts):\n")
	n := 0
	for _, a := range hist {
		if a.State != alerts.StateFiring && a.StartsAt.Before(start.Truncate(time.Second)) {
			continue
		}
		n++
		fmt.Fprintf(d.out, "  %-8s %-6s %s/%s %s: measured %s, %d LOST, %d LATE, %d slow; samples %s\n",
			a.State, a.Severity, a.Topic, a.Group, a.ObjectiveText(), a.MeasuredText(), a.Lost, a.Late, a.Slow,
			strings.Join(a.SampleIDs(), " "))
	}
	if n == 0 {
		fmt.Fprintln(d.out, "  (none)")
	}
	return nil
}

// warnOnly passes on the records of warning level and above.
type warnOnly struct{ slog.Handler }

func (w warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && w.Handler.Enabled(ctx, l)
}

func (w warnOnly) WithAttrs(as []slog.Attr) slog.Handler { return warnOnly{w.Handler.WithAttrs(as)} }

func (w warnOnly) WithGroup(name string) slog.Handler { return warnOnly{w.Handler.WithGroup(name)} }
