package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kaudit/kaudit/internal/chclient"
)

// Log configures the slog logger.
type Log struct {
	LogLevel  string `help:"Log level: debug, info, warn or error." env:"KAUDIT_LOG_LEVEL" default:"info" enum:"debug,info,warn,error"`
	LogFormat string `help:"Log format: text or json." env:"KAUDIT_LOG_FORMAT" default:"text" enum:"text,json"`
}

// Logger returns the logger writing to w.
func (l *Log) Logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(strings.ToUpper(l.LogLevel)))
	opts := &slog.HandlerOptions{Level: lvl}
	if l.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	MetricsAddr string `help:"Serve Prometheus metrics on this address (/metrics); empty disables." env:"KAUDIT_METRICS_ADDR"`
}

// Serve serves reg's metrics on /metrics until ctx ends; it returns at once
// if metrics are disabled.
func (m *Metrics) Serve(ctx context.Context, reg *prometheus.Registry) error {
	if m.MetricsAddr == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{Addr: m.MetricsAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// ClickHouse is how to reach ClickHouse.
type ClickHouse struct {
	ClickHouseAddr     string `name:"clickhouse-addr" help:"ClickHouse native protocol address (host:port)." env:"KAUDIT_CLICKHOUSE_ADDR" default:"127.0.0.1:9000"`
	ClickHouseDatabase string `name:"clickhouse-database" help:"ClickHouse database." env:"KAUDIT_CLICKHOUSE_DATABASE" default:"kaudit"`
	ClickHouseUser     string `name:"clickhouse-user" help:"ClickHouse user." env:"KAUDIT_CLICKHOUSE_USER" default:"default"`
	ClickHousePassword string `name:"clickhouse-password" help:"ClickHouse password." env:"KAUDIT_CLICKHOUSE_PASSWORD"`
	ClickHouseTLS      bool   `name:"clickhouse-tls" help:"Use TLS to reach ClickHouse." env:"KAUDIT_CLICKHOUSE_TLS"`
}

// String describes the target without the password.
func (c *ClickHouse) String() string {
	return fmt.Sprintf("clickhouse://%s@%s/%s", c.ClickHouseUser, c.ClickHouseAddr, c.ClickHouseDatabase)
}

// Config returns the connection settings as a chclient.Config.
func (c *ClickHouse) Config() chclient.Config {
	return chclient.Config{
		Addr:     c.ClickHouseAddr,
		Database: c.ClickHouseDatabase,
		User:     c.ClickHouseUser,
		Password: c.ClickHousePassword,
		TLS:      c.ClickHouseTLS,
	}.WithDefaults()
}
