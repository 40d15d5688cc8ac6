// Command kaudit-sink writes kaudit's verdicts and raw audit events (and
// kaudit-proxy's audit and the correlators' per-minute lag reports) to
// ClickHouse (or, with --sink=log, verdicts as JSON lines to stdout). It
// connects to ClickHouse (applying the migrations unless --no-migrate) with
// backoff while ClickHouse is not up yet, commits Kafka offsets only after
// ClickHouse accepted a batch, retries with backoff while ClickHouse is
// down, and sends undecodable records to the dead-letter topic.
//
//	kaudit-sink --brokers kafka-1:9092 --clickhouse-addr clickhouse:9000 --metrics-addr :9100
//
// /healthz answers 200 while the sink runs; /readyz answers 200 once
// ClickHouse is connected and answers and the sink is a member of its
// consumer group (both on --metrics-addr).
//
// kill -9 at any instant loses nothing and doubles nothing: offsets are
// committed only after the batch holding them was written (in read order,
// also with several batches in flight), so a restart reads every record
// after the last commit again and writes it again, and the tables collapse
// the repeats (events by their audit-topic position, verdicts by key and
// seq; read them with FINAL). A kill during an insert leaves either the
// whole block or none of it. A restarted sink with the same
// --group-instance-id resumes at once; without one, its partitions wait
// for the killed member's session to time out (--session-timeout, 10 s). SIGTERM
// writes and commits what was read, waiting at most 10 s.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/kaudit/kaudit/internal/cli"
	"github.com/kaudit/kaudit/sinks"
	chsink "github.com/kaudit/kaudit/sinks/clickhouse"
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
	LagTopic       string        `help:"The correlators' per-minute lag reports to read; empty to skip." env:"KAUDIT_LAG_TOPIC" default:"${lag_topic}"`
	BatchSize      int           `name:"batch.size" help:"Most records written in one batch." env:"KAUDIT_BATCH_SIZE" default:"50000"`
	BatchBytes     int           `name:"batch.bytes" help:"Most record bytes (as read from Kafka) in one batch." env:"KAUDIT_BATCH_BYTES" default:"16777216"`
	FlushInterval  time.Duration `name:"flush.interval" help:"Longest a read record waits for its batch to be written." env:"KAUDIT_FLUSH_INTERVAL" default:"500ms"`
	MaxInFlight    int           `name:"max.in.flight" help:"Batches written at once while the next is read (offsets are still committed in order, each after its write)." env:"KAUDIT_MAX_IN_FLIGHT" default:"2"`
	Tolerance      string        `name:"errors.tolerance" help:"On an undecodable record: all (dead-letter it and go on) or none (stop)." env:"KAUDIT_ERRORS_TOLERANCE" default:"all" enum:"all,none"`
	DLQTopic       string        `name:"errors.deadletterqueue.topic.name" help:"Dead-letter topic; empty drops undecodable records (counted)." env:"KAUDIT_DLQ_TOPIC" default:"${dlq_topic}"`
	SessionTimeout time.Duration `help:"Consumer-group session timeout: how long the partitions of a sink that died wait before another takes them." env:"KAUDIT_SESSION_TIMEOUT" default:"10s"`
	InstanceID     string        `name:"group-instance-id" help:"Static group membership (KIP-345): a sink restarted with the same ID takes its partitions back at once, without a rebalance (e.g. the pod name of a StatefulSet)." env:"KAUDIT_GROUP_INSTANCE_ID"`
	Migrate        bool          `help:"Apply the ClickHouse migrations before starting." env:"KAUDIT_MIGRATE" negatable:"" default:"true"`
	CPUProfile     string        `name:"cpu-profile" help:"Write a CPU profile (go tool pprof) to this file until the sink stops." hidden:"" type:"path"`
}

// Validate rejects values the sink cannot run with (kong calls it after
// parsing), rather than replacing them by defaults.
func (c *config) Validate() error {
	switch {
	case c.BatchSize <= 0:
		return fmt.Errorf("--batch.size must be at least 1, got %d", c.BatchSize)
	case c.BatchBytes <= 0:
		return fmt.Errorf("--batch.bytes must be at least 1, got %d", c.BatchBytes)
	case c.FlushInterval <= 0:
		return fmt.Errorf("--flush.interval must be positive, got %s", c.FlushInterval)
	case c.SessionTimeout <= 0:
		return fmt.Errorf("--session-timeout must be positive, got %s", c.SessionTimeout)
	case c.MaxInFlight <= 0:
		return fmt.Errorf("--max.in.flight must be at least 1, got %d", c.MaxInFlight)
	case c.VerdictsTopic == "" && (c.Sink == "log" || c.EventsTopic == "" && c.AdminTopic == "" && c.TrafficTopic == "" && c.LagTopic == ""):
		return fmt.Errorf("nothing to read: --verdicts-topic is empty, and the other topics are empty or skipped by --sink log (which writes verdicts only)")
	}
	return nil
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
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	kopts, err := cfg.ClientOpts()
	if err != nil {
		return err
	}
	kopts = append(kopts, kgo.SessionTimeout(cfg.SessionTimeout), kgo.HeartbeatInterval(cfg.SessionTimeout/4))
	if cfg.InstanceID != "" {
		kopts = append(kopts, kgo.InstanceID(cfg.InstanceID))
	}
	group := cfg.Group
	if group == "" {
		group = "kaudit-sink-" + cfg.Sink
	}
	log.Info("kaudit-sink starting", "sink", cfg.Sink, "group", group, "brokers", cfg.Brokers)
	switch cfg.Sink {
	case "log":
		// The log sink writes verdicts only.
		return serve(ctx, cfg, runnerConfig(cfg, kopts, group, sinks.AuditTopics(cfg.VerdictsTopic, ""), sinks.NewBatch), sinks.NewLogSink(os.Stdout, false))
	default:
		sink := chsink.Dial(cfg.ClickHouse.Config(), chsink.Config{Migrate: cfg.Migrate, Logger: log})
		rc := runnerConfig(cfg, kopts, group, chsink.Topics(cfg.VerdictsTopic, cfg.EventsTopic, cfg.AdminTopic, cfg.TrafficTopic, cfg.LagTopic), chsink.NewBatch)
		fresh := chsink.NewFreshness()
		rc.OnWritten = fresh.Observe
		return serve(ctx, cfg, rc, sink.Columnar(), fresh.Collector())
	}
}

// runnerConfig is the runner configuration of the flags.
func runnerConfig[B sinks.Buffer](cfg config, kopts []kgo.Opt, group string, topics []sinks.Topic[B], newBatch func() B) sinks.Config[B] {
	return sinks.Config[B]{
		Brokers:         cfg.Brokers,
		ClientOpts:      kopts,
		Group:           group,
		Topics:          topics,
		NewBatch:        newBatch,
		BatchSize:       cfg.BatchSize,
		BatchBytes:      cfg.BatchBytes,
		FlushInterval:   cfg.FlushInterval,
		MaxInFlight:     cfg.MaxInFlight,
		ErrorsTolerance: cfg.Tolerance,
		DLQTopic:        cfg.DLQTopic,
		Logger:          cfg.Logger(os.Stderr),
	}
}

// serve runs a runner feeding sink, and the metrics and health endpoints,
// until ctx ends or the runner fails.
func serve[B sinks.Buffer](ctx context.Context, cfg config, rc sinks.Config[B], sink sinks.Sink[B], metrics ...prometheus.Collector) error {
	defer sink.Close()
	r, err := sinks.New(rc, sink)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(r.Collector())
	reg.MustRegister(metrics...)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return cfg.Serve(ctx, reg, readiness(r.Ready)) })
	g.Go(func() error { return r.Run(ctx) })
	err = g.Wait()
	rc.Logger.Info("kaudit-sink stopped", "stats", r.Stats())
	return err
}

// readyTimeout bounds one readiness check (a ClickHouse ping).
const readyTimeout = 3 * time.Second

// readiness adapts the runner's readiness to the metrics server's.
func readiness(ready func(context.Context) error) func() error {
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
		defer cancel()
		return ready(ctx)
	}
}
