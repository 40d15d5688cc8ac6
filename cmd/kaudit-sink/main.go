// Command kaudit-sink writes kaudit's verdicts and raw audit events to
// ClickHouse (or, with --sink=log, verdicts as JSON lines to stdout). It
// commits Kafka offsets only after the sink accepted a batch, retries with
// backoff while the sink is down, and sends undecodable records to the
// dead-letter topic.
//
//	kaudit-sink --brokers kafka-1:9092 --clickhouse-addr clickhouse:9000
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/alecthomas/kong"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sethvargo/go-retry"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/kaudit/kaudit/internal/cli"
	"github.com/kaudit/kaudit/sinks"
	chsink "github.com/kaudit/kaudit/sinks/clickhouse"
	"github.com/kaudit/kaudit/store"
	"github.com/kaudit/kaudit/store/migrations"
)

type config struct {
	cli.Kafka      `embed:""`
	cli.ClickHouse `embed:""`
	cli.Log        `embed:""`
	cli.Metrics    `embed:""`

	Sink           string        `help:"Where to write: clickhouse, or log (verdicts as JSON lines on stdout)." env:"KAUDIT_SINK" default:"clickhouse" enum:"clickhouse,log"`
	Group          string        `help:"Consumer group of this sink (default kaudit-sink-<sink>)." env:"KAUDIT_SINK_GROUP"`
	VerdictsTopic  string        `help:"Verdicts topic to read; empty to skip." env:"KAUDIT_VERDICTS_TOPIC" default:"${verdicts_topic}"`
	EventsTopic    string        `help:"Raw audit events topic to read; empty to skip (the log sink skips it by default)." env:"KAUDIT_EVENTS_TOPIC" default:"${events_topic}"`
	AdminTopic     string        `help:"kaudit-proxy's admin audit topic to read; empty to skip." env:"KAUDIT_ADMIN_TOPIC" default:"kaudit.admin"`
	TrafficTopic   string        `help:"kaudit-proxy's traffic topic to read; empty to skip." env:"KAUDIT_TRAFFIC_TOPIC" default:"kaudit.traffic"`
	BatchSize      int           `name:"batch.size" help:"Most records written in one batch." env:"KAUDIT_BATCH_SIZE" default:"10000"`
	FlushInterval  time.Duration `name:"flush.interval" help:"Longest a read record waits for its batch to be written." env:"KAUDIT_FLUSH_INTERVAL" default:"1s"`
	Tolerance      string        `name:"errors.tolerance" help:"On an undecodable record: all (dead-letter it and go on) or none (stop)." env:"KAUDIT_ERRORS_TOLERANCE" default:"all" enum:"all,none"`
	DLQTopic       string        `name:"errors.deadletterqueue.topic.name" help:"Dead-letter topic; empty drops undecodable records (counted)." env:"KAUDIT_DLQ_TOPIC" default:"${dlq_topic}"`
	SessionTimeout time.Duration `help:"Consumer-group session timeout: how long the partitions of a sink that died wait before another takes them." env:"KAUDIT_SESSION_TIMEOUT" default:"10s"`
	InstanceID     string        `name:"group-instance-id" help:"Static group membership (KIP-345): a sink restarted with the same ID takes its partitions back at once, without a rebalance (e.g. the pod name of a StatefulSet)." env:"KAUDIT_GROUP_INSTANCE_ID"`
	Migrate        bool          `help:"Apply the ClickHouse migrations before starting." env:"KAUDIT_MIGRATE" negatable:"" default:"true"`
}

func main() {
	var cfg config
	kong.Parse(&cfg, cli.Vars(), kong.Description("kaudit sink: writes verdicts and audit events to ClickHouse, batched and idempotent."))
	log := cfg.Logger(os.Stderr)
	if err := run(cfg); err != nil {
		log.Error("kaudit-sink failed", "err", err)
		os.Exit(1)
	}
}

func run(cfg config) error {
	log := cfg.Logger(os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	kopts, err := cfg.ClientOpts()
	if err != nil {
		return err
	}
	if cfg.SessionTimeout <= 0 {
		return fmt.Errorf("--session-timeout must be positive, got %v", cfg.SessionTimeout)
	}
	kopts = append(kopts, kgo.SessionTimeout(cfg.SessionTimeout), kgo.HeartbeatInterval(cfg.SessionTimeout/4))
	if cfg.InstanceID != "" {
		kopts = append(kopts, kgo.InstanceID(cfg.InstanceID))
	}
	var sink sinks.Sink
	eventsTopic, adminTopic, trafficTopic := cfg.EventsTopic, cfg.AdminTopic, cfg.TrafficTopic
	switch cfg.Sink {
	case "log":
		sink = sinks.NewLogSink(os.Stdout, false)
		eventsTopic, adminTopic, trafficTopic = "", "", ""
	default:
		s, err := openClickHouse(ctx, cfg.ClickHouse.Config(), cfg.Migrate, log)
		if err != nil {
			return err
		}
		sink = s
	}
	defer sink.Close()

	group := cfg.Group
	if group == "" {
		group = "kaudit-sink-" + cfg.Sink
	}
	r, err := sinks.NewRunner(sinks.RunnerConfig{
		Brokers:         cfg.Brokers,
		ClientOpts:      kopts,
		Group:           group,
		VerdictsTopic:   cfg.VerdictsTopic,
		EventsTopic:     eventsTopic,
		AdminTopic:      adminTopic,
		TrafficTopic:    trafficTopic,
		BatchSize:       cfg.BatchSize,
		FlushInterval:   cfg.FlushInterval,
		ErrorsTolerance: cfg.Tolerance,
		DLQTopic:        cfg.DLQTopic,
		Logger:          log,
	}, sink)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(r.Collector())
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return cfg.Serve(ctx, reg, nil) })
	log.Info("kaudit-sink starting", "sink", cfg.Sink, "group", group, "brokers", cfg.Brokers)
	g.Go(func() error { return r.Run(ctx) })
	err = g.Wait()
	log.Info("kaudit-sink stopped", "stats", r.Stats())
	return err
}

func openClickHouse(ctx context.Context, cfg store.Config, migrate bool, log *slog.Logger) (sinks.Sink, error) {
	// ClickHouse may come up after the sink: wait for it, with backoff.
	var conn driver.Conn
	backoff := retry.WithCappedDuration(30*time.Second, retry.NewExponential(500*time.Millisecond))
	err := retry.Do(ctx, backoff, func(ctx context.Context) error {
		if migrate {
			if err := migrations.Up(ctx, cfg, log); err != nil {
				log.Warn("clickhouse not ready; retrying", "addr", cfg.Addr, "err", err)
				return retry.RetryableError(err)
			}
		}
		c, err := store.Open(ctx, cfg)
		if err != nil {
			log.Warn("clickhouse not ready; retrying", "addr", cfg.Addr, "err", err)
			return retry.RetryableError(err)
		}
		conn = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	log.Info("connected to clickhouse", "addr", cfg.Addr, "database", cfg.Database)
	return chsink.New(conn, chsink.Config{Database: cfg.Database, Logger: log, OwnsConn: true}), nil
}
