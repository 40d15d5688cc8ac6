// Package pipeline wires kaudit's back end in one process: the correlator
// (audit events → verdicts) and the ClickHouse sink (verdicts and events →
// ClickHouse). The demo and the end-to-end tests run it; in production the
// two run as separate binaries (kaudit-correlator, kaudit-sink).
package pipeline

import (
	"context"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/processors/correlator"
	"github.com/kaudit/kaudit/processors/expectations"
	"github.com/kaudit/kaudit/processors/learner"
	"github.com/kaudit/kaudit/proxy/auditors"
	"github.com/kaudit/kaudit/sinks"
	chsink "github.com/kaudit/kaudit/sinks/clickhouse"
)

// Config configures a Pipeline.
type Config struct {
	// Brokers of the audit cluster; ClientOpts and Sarama add TLS/SASL.
	Brokers    []string
	ClientOpts []kgo.Opt
	Sarama     *sarama.Config

	// ClickHouse is an open connection; Database holds kaudit's tables.
	ClickHouse driver.Conn
	Database   string

	// StorageDir is the correlator's local table folder.
	StorageDir    string
	SweepInterval time.Duration
	// DefaultDeadline, Grace, Expectations and LearnWarmup are the
	// correlator's (see correlator.Config).
	DefaultDeadline time.Duration
	Grace           time.Duration
	Expectations    []*expectations.Expectation
	LearnWarmup     time.Duration
	// SinkGroup is the sink's consumer group; a new group re-reads the
	// topics from the start.
	SinkGroup     string
	BatchSize     int
	FlushInterval time.Duration
	// OnSinkWritten, if set, is called after each batch the sink wrote
	// (sinks.Config.OnWritten).
	OnSinkWritten func(sinks.Written[*chsink.Batch])
	Logger        *slog.Logger
}

// Pipeline is a running correlator and ClickHouse sink.
type Pipeline struct {
	Correlator *correlator.Correlator
	Learner    *learner.Learner // learned expectations and audit gaps
	Sink       *sinks.Runner[*chsink.Batch]
}

// New builds the pipeline.
func New(cfg Config) (*Pipeline, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SinkGroup == "" {
		cfg.SinkGroup = "kaudit-sink-clickhouse"
	}
	c, err := correlator.New(correlator.Config{
		Brokers:         cfg.Brokers,
		Sarama:          cfg.Sarama,
		StorageDir:      cfg.StorageDir,
		SweepInterval:   cfg.SweepInterval,
		DefaultDeadline: cfg.DefaultDeadline,
		Grace:           cfg.Grace,
		Expectations:    cfg.Expectations,
		LearnWarmup:     cfg.LearnWarmup,
		Logger:          cfg.Logger.With("component", "correlator"),
	})
	if err != nil {
		return nil, err
	}
	l, err := c.Learner()
	if err != nil {
		return nil, err
	}
	r, err := sinks.New(sinks.Config[*chsink.Batch]{
		Brokers:       cfg.Brokers,
		ClientOpts:    cfg.ClientOpts,
		Group:         cfg.SinkGroup,
		Topics:        chsink.Topics(audit.DefaultVerdictsTopic, audit.DefaultEventsTopic, auditors.DefaultAdminTopic, auditors.DefaultTrafficTopic, audit.DefaultLagTopic),
		NewBatch:      chsink.NewBatch,
		DLQTopic:      audit.DefaultDLQTopic,
		BatchSize:     cfg.BatchSize,
		FlushInterval: cfg.FlushInterval,
		OnWritten:     cfg.OnSinkWritten,
		Logger:        cfg.Logger.With("component", "sink"),
	}, chsink.New(cfg.ClickHouse, chsink.Config{Database: cfg.Database}).Columnar())
	if err != nil {
		return nil, err
	}
	return &Pipeline{Correlator: c, Learner: l, Sink: r}, nil
}

// Run creates the missing audit topics, then runs the correlator, the
// learner and the sink until ctx ends or one of them fails.
func (p *Pipeline) Run(ctx context.Context) error {
	// The topics first: the learner reads the events topic and the
	// correlator looks the learner's table up.
	if err := p.Correlator.EnsureTopics(); err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.Correlator.Run(ctx) })
	g.Go(func() error { return p.Learner.Run(ctx) })
	g.Go(func() error { return p.Sink.Run(ctx) })
	return g.Wait()
}
