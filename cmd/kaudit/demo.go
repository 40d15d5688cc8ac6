package main

import (
	"context"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/kaudit/kaudit/internal/app/demo"
	"github.com/kaudit/kaudit/internal/cli"
)

type demoCmd struct {
	cli.ClickHouse `embed:""`
	cli.Log        `embed:""`

	Duration   time.Duration `help:"Stop after this long and print the summary (0: run until Ctrl-C)." env:"DURATION"`
	Rate       int           `help:"Demo messages per second." env:"KAUDIT_DEMO_RATE" default:"500"`
	StateDir   string        `help:"Folder for the broker's, correlator's and local ClickHouse's data." env:"KAUDIT_STATE_DIR" default:".kaudit" type:"path"`
	BrokerAddr string        `help:"Listen address of the embedded broker." env:"KAUDIT_BROKER_ADDR" default:"127.0.0.1:9092"`
	WebAddr    string        `help:"Listen address of the web dashboard (off: none)." env:"KAUDIT_WEB_ADDR" default:"127.0.0.1:8080"`
	// AlertmanagerURL sends the demo's SLO alerts to an Alertmanager.
	AlertmanagerURL string `name:"alertmanager-url" help:"Prometheus Alertmanager to send the demo's SLO alerts to (base URL; empty: none)." env:"KAUDIT_ALERTMANAGER_URL"`
}

func (c *demoCmd) Run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c.LogLevel = orDefault(c.LogLevel, "warn")
	return demo.Run(ctx, demo.Config{
		StateDir:   c.StateDir,
		BrokerAddr: c.BrokerAddr,
		WebAddr:    c.WebAddr,
		ClickHouse: c.ClickHouse.Config(),
		// A configured server is used if it answers; otherwise the demo
		// starts its own.
		UseClickHouse: os.Getenv("KAUDIT_CLICKHOUSE_ADDR") != "" || slices.ContainsFunc(os.Args, func(a string) bool {
			return strings.HasPrefix(a, "--clickhouse-addr")
		}),
		Duration:        c.Duration,
		Rate:            c.Rate,
		AlertmanagerURL: c.AlertmanagerURL,
		Out:             os.Stdout,
		Logger:          c.Logger(os.Stderr),
	})
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
