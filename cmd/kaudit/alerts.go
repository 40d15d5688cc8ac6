package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/kaudit/kaudit/alerts"
	"github.com/kaudit/kaudit/internal/cli"
	"github.com/kaudit/kaudit/processors/expectations"
	"github.com/kaudit/kaudit/store"
)

type alertsCmd struct {
	cli.Kafka      `embed:""`
	cli.ClickHouse `embed:""`
	cli.Log        `embed:""`

	ExpectationsTopic string        `help:"Compacted topic of declared expectations, read at each evaluation (empty: none)." env:"KAUDIT_EXPECTATIONS_TOPIC" default:"${expectations_topic}"`
	ExpectationsFile  string        `help:"YAML file of expectations, read at each evaluation; the topic's entry wins for a topic in both." env:"KAUDIT_EXPECTATIONS_FILE" type:"existingfile"`
	AlertmanagerURL   []string      `name:"alertmanager-url" help:"Prometheus Alertmanager to send the alerts to (base URL; comma separated for several)." env:"KAUDIT_ALERTMANAGER_URL" sep:","`
	WebhookURL        []string      `name:"webhook-url" help:"URL to post each alert change to as JSON (comma separated for several)." env:"KAUDIT_WEBHOOK_URL" sep:","`
	DashboardURL      string        `name:"dashboard-url" help:"Base URL of the kaudit dashboard, for the links in alerts (e.g. http://kaudit:8080)." env:"KAUDIT_DASHBOARD_URL"`
	Every             time.Duration `help:"Evaluate this often." env:"KAUDIT_ALERTS_EVERY" default:"1m"`
	Samples           int           `help:"Sample correlation IDs per alert." default:"10"`
	Rules             []string      `help:"Burn-rate rules, severity:long/short:budget% (alert when the budget share burns within the long window, over both windows)." default:"page:1h/5m:2%,page:6h/30m:5%,ticket:3d/6h:10%" sep:","`
	Once              bool          `help:"Evaluate once, print the firing alerts and exit."`
}

func (c *alertsCmd) Run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := c.Logger(os.Stderr)
	if c.Every <= 0 {
		return fmt.Errorf("alerts: --every %s is not positive", c.Every)
	}
	var rules []alerts.Rule
	for _, s := range c.Rules {
		r, err := alerts.ParseRule(s)
		if err != nil {
			return err
		}
		rules = append(rules, r)
	}
	var notifiers []alerts.Notifier
	for _, u := range c.AlertmanagerURL {
		n, err := alerts.NewAlertmanager(alerts.AlertmanagerConfig{URL: u, ValidFor: max(4*c.Every, 2*time.Minute)})
		if err != nil {
			return err
		}
		notifiers = append(notifiers, n)
	}
	for _, u := range c.WebhookURL {
		n, err := alerts.NewWebhook(alerts.WebhookConfig{URL: u})
		if err != nil {
			return err
		}
		notifiers = append(notifiers, n)
	}
	if c.ExpectationsTopic == "" && c.ExpectationsFile == "" {
		return fmt.Errorf("alerts: no expectations: give --expectations-topic or --expectations-file")
	}
	var exps *expectations.Store
	if c.ExpectationsTopic != "" {
		opts, err := c.KgoOpts()
		if err != nil {
			return err
		}
		if exps, err = expectations.NewStore(c.ExpectationsTopic, opts...); err != nil {
			return err
		}
		defer exps.Close()
	}
	read := func(ctx context.Context) ([]*expectations.Expectation, error) {
		var fromTopic map[string]*expectations.Expectation
		if exps != nil {
			lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			var err error
			if fromTopic, err = exps.List(lctx); err != nil {
				return nil, err
			}
		}
		var file *expectations.File
		if c.ExpectationsFile != "" {
			var err error
			if file, err = expectations.LoadFile(c.ExpectationsFile); err != nil {
				return nil, err
			}
		}
		return alerts.Merge(fromTopic, file), nil
	}

	conn, cfg, err := c.Open(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	ev, err := alerts.New(conn, alerts.Config{
		Database:     cfg.Database,
		Expectations: read,
		Rules:        rules,
		Notifiers:    notifiers,
		DashboardURL: c.DashboardURL,
		Samples:      c.Samples,
		Refresher:    store.NewRefresher(conn, store.RefresherConfig{Database: cfg.Database, Cluster: cfg.Cluster, Logger: log}),
		Interval:     c.Every,
		Logger:       log,
	})
	if err != nil {
		return err
	}
	if c.Once {
		res, err := ev.Evaluate(ctx)
		if err != nil {
			return err
		}
		return printAlerts(res)
	}
	fmt.Printf("kaudit alerts: evaluating the SLOs every %s (ClickHouse %s; %d notifiers)\n", c.Every, c.ClickHouse.String(), len(notifiers))
	return ev.Run(ctx)
}

// printAlerts writes the SLOs evaluated and the firing alerts.
func printAlerts(res alerts.Result) error {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TOPIC\tGROUP\tSLO\tMEASURED\tSTATE")
	for _, s := range res.Statuses {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.Topic, s.Group, s.ObjectiveText(), s.MeasuredText(), s.State)
	}
	if len(res.Statuses) == 0 {
		fmt.Fprintln(w, "(no SLO declared)")
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for _, a := range res.Firing {
		fmt.Printf("\nFIRING %s %s: %s\n", a.Severity, a.ID, a.Summary)
		for _, s := range a.Samples {
			fmt.Printf("  %s %s %s\n", s.Status, s.CorrelationID, s.TrailURL)
		}
	}
	return nil
}
