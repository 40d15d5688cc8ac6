// Command kaudit-correlator runs kaudit's correlator: it joins the raw audit
// events of each message by correlation ID and emits a verdict per message
// and consumer group. Run it next to the audit cluster; run several for more
// throughput (the work is split by audit-topic partition).
//
//	kaudit-correlator --brokers kafka-1:9092 --storage-dir /var/lib/kaudit
package main

import (
	"context"
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

	Group         string        `help:"Consumer group (and group-table name) of the correlator." env:"KAUDIT_CORRELATOR_GROUP" default:"kaudit-correlator"`
	EventsTopic   string        `help:"Audit events topic (input)." env:"KAUDIT_EVENTS_TOPIC" default:"${events_topic}"`
	VerdictsTopic string        `help:"Verdicts topic (output)." env:"KAUDIT_VERDICTS_TOPIC" default:"${verdicts_topic}"`
	DLQTopic      string        `name:"dlq-topic" help:"Dead-letter topic for undecodable events." env:"KAUDIT_DLQ_TOPIC" default:"${dlq_topic}"`
	Partitions    int           `help:"Partitions of topics the correlator creates." env:"KAUDIT_PARTITIONS" default:"6"`
	Replication   int           `help:"Replication factor of topics the correlator creates." env:"KAUDIT_REPLICATION" default:"1"`
	StorageDir    string        `help:"Directory of the local group-table copy." env:"KAUDIT_STORAGE_DIR" default:"/var/lib/kaudit/correlator" type:"path"`
	SweepInterval time.Duration `help:"How often every trail is visited (deadlines are decided at most this late)." env:"KAUDIT_SWEEP_INTERVAL" default:"5s"`

	DefaultDeadline   time.Duration `help:"Delivery deadline after the acknowledgement, for topics whose expectation sets none." env:"KAUDIT_DEFAULT_DEADLINE" default:"5m"`
	Grace             time.Duration `help:"How long a trail is kept after its deadline, to catch late consumes and duplicates." env:"KAUDIT_GRACE" default:"15m"`
	ExpectationsFile  string        `help:"YAML file of expected consumer groups per topic (see README)." env:"KAUDIT_EXPECTATIONS_FILE" type:"existingfile"`
	ExpectationsTopic string        `help:"Compacted topic of declared expectations (kaudit expect set writes it)." env:"KAUDIT_EXPECTATIONS_TOPIC" default:"${expectations_topic}"`
	LearnWarmup       time.Duration `help:"Groups seen consuming a topic this long become expected for it (learned); 0 disables learning." env:"KAUDIT_LEARN_WARMUP" default:"0s"`
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

func run(cfg config) error {
	log := cfg.Logger(os.Stderr)
	sar, err := cfg.Sarama()
	if err != nil {
		return err
	}
	ccfg := correlator.Config{
		Brokers:           cfg.Brokers,
		Sarama:            sar,
		Group:             cfg.Group,
		EventsTopic:       cfg.EventsTopic,
		VerdictsTopic:     cfg.VerdictsTopic,
		DLQTopic:          cfg.DLQTopic,
		Partitions:        cfg.Partitions,
		Replication:       cfg.Replication,
		StorageDir:        cfg.StorageDir,
		SweepInterval:     cfg.SweepInterval,
		DefaultDeadline:   cfg.DefaultDeadline,
		Grace:             cfg.Grace,
		ExpectationsTopic: cfg.ExpectationsTopic,
		LearnWarmup:       cfg.LearnWarmup,
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

	reg := prometheus.NewRegistry()
	reg.MustRegister(c.Collector())
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return cfg.Serve(ctx, reg) })
	log.Info("kaudit-correlator starting", "brokers", cfg.Brokers, "events", cfg.EventsTopic, "verdicts", cfg.VerdictsTopic)
	g.Go(func() error { return c.Run(ctx) })
	l, err := c.Learner()
	if err != nil {
		return err
	}
	if l != nil {
		g.Go(func() error { return l.Run(ctx) })
	}
	err = g.Wait()
	log.Info("kaudit-correlator stopped", "stats", c.Stats())
	return err
}
