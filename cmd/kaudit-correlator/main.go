// Command kaudit-correlator runs kaudit's correlator: it joins the raw audit
// events of each message by correlation ID and emits a verdict per message
// and consumer group. Run it next to the audit cluster; run several for more
// throughput (the work is split by audit-topic partition).
//
//	kaudit-correlator --brokers kafka-1:9092 --storage-dir /var/lib/kaudit
package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/kaudit/kaudit/internal/cli"
	"github.com/kaudit/kaudit/processors/correlator"
)

type config struct {
	cli.Kafka   `embed:""`
	cli.Log     `embed:""`
	cli.Metrics `embed:""`

	Group         string        `help:"Consumer group (and group-table name) of the correlator." env:"KAUDIT_CORRELATOR_GROUP" default:"kaudit-correlator"`
	EventsTopic   string        `help:"Audit events topic (input)." env:"KAUDIT_EVENTS_TOPIC" default:"kaudit.events"`
	VerdictsTopic string        `help:"Verdicts topic (output)." env:"KAUDIT_VERDICTS_TOPIC" default:"kaudit.verdicts"`
	DLQTopic      string        `name:"dlq-topic" help:"Dead-letter topic for undecodable events." env:"KAUDIT_DLQ_TOPIC" default:"kaudit.dlq"`
	Partitions    int           `help:"Partitions of topics the correlator creates." env:"KAUDIT_PARTITIONS" default:"6"`
	Replication   int           `help:"Replication factor of topics the correlator creates." env:"KAUDIT_REPLICATION" default:"1"`
	StorageDir    string        `help:"Directory of the local group-table copy." env:"KAUDIT_STORAGE_DIR" default:"/var/lib/kaudit/correlator" type:"path"`
	Retention     time.Duration `help:"How long a trail is kept after its last event." env:"KAUDIT_RETENTION" default:"1h"`
	SweepInterval time.Duration `help:"How often every trail is visited." env:"KAUDIT_SWEEP_INTERVAL" default:"30s"`
}

func main() {
	var cfg config
	kong.Parse(&cfg, kong.Description("kaudit correlator: joins audit events into per-message trails and emits verdicts."))
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
	c, err := correlator.New(correlator.Config{
		Brokers:       cfg.Brokers,
		Sarama:        sar,
		Group:         cfg.Group,
		EventsTopic:   cfg.EventsTopic,
		VerdictsTopic: cfg.VerdictsTopic,
		DLQTopic:      cfg.DLQTopic,
		Partitions:    cfg.Partitions,
		Replication:   cfg.Replication,
		StorageDir:    cfg.StorageDir,
		Retention:     cfg.Retention,
		SweepInterval: cfg.SweepInterval,
		Logger:        log,
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	reg := prometheus.NewRegistry()
	reg.MustRegister(c.Collector())
	g, ctx := errgroup.WithContext(ctx)
	if srv := cfg.Server(reg); srv != nil {
		g.Go(func() error { return serve(ctx, srv) })
	}
	log.Info("kaudit-correlator starting", "brokers", cfg.Brokers, "events", cfg.EventsTopic, "verdicts", cfg.VerdictsTopic)
	g.Go(func() error { return c.Run(ctx) })
	err = g.Wait()
	log.Info("kaudit-correlator stopped", "stats", c.Stats())
	return err
}

// serve runs srv until ctx ends.
func serve(ctx context.Context, srv *http.Server) error {
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
