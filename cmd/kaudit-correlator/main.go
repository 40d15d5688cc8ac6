// Command kaudit-correlator runs kaudit's correlator: it joins the raw audit
// events of each message by correlation ID and emits a verdict per message
// and consumer group, and the learner beside it. Run it next to the audit
// cluster; run several with the same --group for more throughput or
// availability (the work is split by audit-topic partition, and moves when
// one stops).
//
//	kaudit-correlator --brokers kafka-1:9092 --storage-dir /var/lib/kaudit
//
// kill -9 at any instant loses no verdict: a restart (on the same
// --storage-dir, an empty one, or another instance taking the partitions
// over) reads again every event whose verdicts were not acknowledged and
// writes them again with the same seq; see the correlator package doc for
// the argument. SIGTERM stops it cleanly: in-flight verdicts are flushed.
// /healthz and /readyz (table recovered) are served on --metrics-addr.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/kaudit/kaudit/internal/cli"
	"github.com/kaudit/kaudit/processors/correlator"
	"github.com/kaudit/kaudit/processors/expectations"
)

type config struct {
	cli.Kafka   `embed:""`
	cli.Log     `embed:""`
	cli.Metrics `embed:""`

	Group          string        `help:"Consumer group (and group-table name) of the correlator." env:"KAUDIT_CORRELATOR_GROUP" default:"kaudit-correlator"`
	InstanceID     string        `name:"group-instance-id" help:"Static group membership (KIP-345): a correlator restarted with the same ID takes its partitions back at once, without a rebalance (e.g. the pod name of a StatefulSet)." env:"KAUDIT_GROUP_INSTANCE_ID"`
	SessionTimeout time.Duration `help:"Consumer-group session timeout: how long the partitions of a correlator that died wait before others take them." env:"KAUDIT_SESSION_TIMEOUT" default:"10s"`
	EventsTopic    string        `help:"Audit events topic (input)." env:"KAUDIT_EVENTS_TOPIC" default:"${events_topic}"`
	VerdictsTopic  string        `help:"Verdicts topic (output)." env:"KAUDIT_VERDICTS_TOPIC" default:"${verdicts_topic}"`
	DLQTopic       string        `name:"dlq-topic" help:"Dead-letter topic for undecodable events." env:"KAUDIT_DLQ_TOPIC" default:"${dlq_topic}"`
	Partitions     int           `help:"Partitions of topics the correlator creates." env:"KAUDIT_PARTITIONS" default:"6"`
	Replication    int           `help:"Replication factor of topics the correlator creates." env:"KAUDIT_REPLICATION" default:"1"`
	StorageDir     string        `help:"Directory of the local group-table copy." env:"KAUDIT_STORAGE_DIR" default:"/var/lib/kaudit/correlator" type:"path"`
	SweepInterval  time.Duration `help:"How often the trails that are due are swept (deadlines are decided at most this late)." env:"KAUDIT_SWEEP_INTERVAL" default:"1s"`

	DefaultDeadline   time.Duration `help:"Delivery deadline after the acknowledgement, for topics whose expectation sets none." env:"KAUDIT_DEFAULT_DEADLINE" default:"5m"`
	Grace             time.Duration `help:"How long a message with a loss is kept after its deadline, to turn a late consume into LATE." env:"KAUDIT_GRACE" default:"15m"`
	DuplicateWindow   time.Duration `help:"How long a message every expected group consumed is kept after its last event, to catch redeliveries." env:"KAUDIT_DUPLICATE_WINDOW" default:"5m"`
	ClockSkew         time.Duration `help:"Client event times further ahead of the correlator's clock than this are clamped for deadlines (the times shown are the clients')." env:"KAUDIT_CLOCK_SKEW" default:"5m"`
	ExpectationsFile  string        `help:"YAML file of expected consumer groups per topic (see README)." env:"KAUDIT_EXPECTATIONS_FILE" type:"existingfile"`
	ExpectationsTopic string        `help:"Compacted topic of declared expectations (kaudit expect set writes it)." env:"KAUDIT_EXPECTATIONS_TOPIC" default:"${expectations_topic}"`
	LearnWarmup       time.Duration `help:"Groups seen consuming a topic over this whole time become expected for it (learned); 0 disables learning." env:"KAUDIT_LEARN_WARMUP" default:"0s"`
	LearnForget       time.Duration `help:"A learned group silent this long is no longer expected (default: 3 warm-ups)." env:"KAUDIT_LEARN_FORGET" default:"0s"`
}

func main() {
	var cfg config
	kong.Parse(&cfg, cli.Vars(), kong.Description("kaudit correlator: joins audit events into per-message trails and emits verdicts."))
	log := cfg.Logger(os.Stderr)
	if err := run(cfg); err != nil {
		log.Error("kaudit-correlator failed", "err", err)
		os.Exit(1)
	}
}

// check refuses flag values that cannot be meant, instead of replacing them
// with defaults.
func (c *config) check() error {
	var errs []error
	positive := map[string]time.Duration{
		"--sweep-interval": c.SweepInterval, "--default-deadline": c.DefaultDeadline, "--grace": c.Grace,
		"--duplicate-window": c.DuplicateWindow, "--clock-skew": c.ClockSkew, "--session-timeout": c.SessionTimeout,
	}
	for _, name := range []string{"--sweep-interval", "--default-deadline", "--grace", "--duplicate-window", "--clock-skew", "--session-timeout"} {
		if positive[name] <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %v", name, positive[name]))
		}
	}
	if c.LearnWarmup < 0 || c.LearnForget < 0 {
		errs = append(errs, errors.New("--learn-warmup and --learn-forget must not be negative"))
	}
	if c.Partitions <= 0 {
		errs = append(errs, fmt.Errorf("--partitions must be positive, got %d", c.Partitions))
	}
	if c.Replication <= 0 {
		errs = append(errs, fmt.Errorf("--replication must be positive, got %d", c.Replication))
	}
	return errors.Join(errs...)
}

func run(cfg config) error {
	log := cfg.Logger(os.Stderr)
	if err := cfg.check(); err != nil {
		return err
	}
	sar, err := cfg.Sarama()
	if err != nil {
		return err
	}
	kopts, err := cfg.ClientOpts()
	if err != nil {
		return err
	}
	ccfg := correlator.Config{
		Brokers:           cfg.Brokers,
		Sarama:            sar,
		ClientOpts:        kopts,
		Group:             cfg.Group,
		InstanceID:        cfg.InstanceID,
		SessionTimeout:    cfg.SessionTimeout,
		EventsTopic:       cfg.EventsTopic,
		VerdictsTopic:     cfg.VerdictsTopic,
		DLQTopic:          cfg.DLQTopic,
		Partitions:        cfg.Partitions,
		Replication:       cfg.Replication,
		StorageDir:        cfg.StorageDir,
		SweepInterval:     cfg.SweepInterval,
		DefaultDeadline:   cfg.DefaultDeadline,
		Grace:             cfg.Grace,
		DuplicateWindow:   cfg.DuplicateWindow,
		ClockSkew:         cfg.ClockSkew,
		ExpectationsTopic: cfg.ExpectationsTopic,
		LearnWarmup:       cfg.LearnWarmup,
		LearnForget:       cfg.LearnForget,
		Logger:            log,
	}
	if cfg.ExpectationsFile != "" {
		f, err := expectations.LoadFile(cfg.ExpectationsFile)
		if err != nil {
			return err
		}
		ccfg.ApplyFile(f)
	}
	c, err := correlator.New(ccfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// The topics first: the learner reads the events topic and the
	// correlator looks the learner's table up.
	if err := c.EnsureTopics(); err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c.Collector())
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return cfg.Serve(ctx, reg, c.Ready) })
	log.Info("kaudit-correlator starting", "brokers", cfg.Brokers, "events", cfg.EventsTopic, "verdicts", cfg.VerdictsTopic)
	g.Go(func() error { return c.Run(ctx) })
	l, err := c.Learner()
	if err != nil {
		return err
	}
	g.Go(func() error { return l.Run(ctx) })
	err = g.Wait()
	log.Info("kaudit-correlator stopped", "stats", c.Stats())
	return err
}
