package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/sinks"
)

// Formats of a foreign audit topic.
const (
	// FormatInterceptorJSON is the librdkafka interceptors' JSON
	// (codecs.ParseInterceptorRecordIn); "blog-json" is accepted as its
	// former name.
	FormatInterceptorJSON = codecs.InterceptorJSONSource
	// FormatKaudit is kaudit's own event encoding, binary or JSON
	// (codecs.DecodeEvent): for moving events between clusters, or
	// repartitioning a topic written with another partitioner.
	FormatKaudit = "kaudit"
)

// Defaults of IngestConfig.
const (
	DefaultGroup     = "kaudit-ingest"
	DefaultBatchSize = 5000
)

// DeadLetterStage is the __connect.errors.stage header of ingest's dead
// letters.
const DeadLetterStage = "ingest"

// KindEvent is the kind of the ingested records in the runner's stats.
const KindEvent = sinks.KindEvent

// Decoder returns the decoder of a format: each record becomes one event
// record in the batch, keyed by its correlation ID. FormatInterceptorJSON
// reads timestamps in loc (nil: UTC); FormatKaudit ignores loc.
func Decoder(format string, loc *time.Location) (sinks.Decoder[*Batch], error) {
	var parse func([]byte) (*codecs.Event, error)
	switch format {
	case FormatInterceptorJSON, codecs.LegacyInterceptorJSONName:
		if loc == nil {
			loc = time.UTC
		}
		parse = func(b []byte) (*codecs.Event, error) { return codecs.ParseInterceptorRecordIn(b, loc) }
	case FormatKaudit:
		parse = codecs.DecodeEvent
	default:
		return nil, fmt.Errorf("ingest: unknown format %q (want %s or %s)", format, FormatInterceptorJSON, FormatKaudit)
	}
	return func(b *Batch, rec *kgo.Record) error {
		if len(rec.Value) == 0 {
			return errors.New("empty record value")
		}
		ev, err := parse(rec.Value)
		if err != nil {
			return err
		}
		b.Records = append(b.Records, &kgo.Record{Key: []byte(ev.CorrelationID), Value: codecs.AppendEvent(nil, ev)})
		return nil
	}, nil
}

// IngestConfig configures NewIngest. Brokers, Topic and Format are
// required.
type IngestConfig struct {
	// Brokers and ClientOpts reach the cluster holding the foreign topic.
	Brokers    []string
	ClientOpts []kgo.Opt
	// Topic is the foreign audit topic to read.
	Topic string
	// Group is the consumer group whose offsets record the progress;
	// DefaultGroup if empty. A new group starts at the oldest record.
	Group string
	// Format is FormatInterceptorJSON or FormatKaudit.
	Format string
	// Location is the time zone of the interceptor-json records'
	// timestamps (their writers' local time); UTC if nil.
	Location *time.Location

	// AuditBrokers and AuditClientOpts reach the kaudit cluster. If
	// AuditBrokers is empty it is the foreign topic's cluster, reached
	// with Brokers and ClientOpts; otherwise only AuditClientOpts apply,
	// so the foreign cluster's credentials never go to another cluster.
	AuditBrokers    []string
	AuditClientOpts []kgo.Opt
	// EventsTopic is where events go (audit.DefaultEventsTopic if empty),
	// DLQTopic where undecodable records go (audit.DefaultDLQTopic if
	// empty); both on the kaudit cluster, and both must exist (the
	// correlator creates them).
	EventsTopic string
	DLQTopic    string

	// BatchSize is the most records read, written and committed at once
	// (DefaultBatchSize if 0); FlushInterval the longest a record waits
	// (sinks' default if 0).
	BatchSize     int
	FlushInterval time.Duration
	// RetryBackoff is the first wait before writing a failed batch
	// again; waits double up to RetryBackoffMax.
	RetryBackoff    time.Duration
	RetryBackoffMax time.Duration

	Logger *slog.Logger
}

// Ingest is `kaudit ingest`: a runner reading the foreign topic and the
// sink writing kaudit.events.
type Ingest struct {
	*sinks.Runner[*Batch]
	Sink *Sink
}

// NewIngest checks cfg and wires a Runner reading the foreign topic to a
// Sink writing the kaudit cluster's events topic; Run starts it.
func NewIngest(cfg IngestConfig) (*Ingest, error) {
	switch {
	case len(cfg.Brokers) == 0:
		return nil, errors.New("ingest: no brokers")
	case cfg.Topic == "":
		return nil, errors.New("ingest: no topic to read")
	case cfg.BatchSize < 0:
		return nil, fmt.Errorf("ingest: negative batch size %d", cfg.BatchSize)
	}
	decode, err := Decoder(cfg.Format, cfg.Location)
	if err != nil {
		return nil, err
	}
	if cfg.Group == "" {
		cfg.Group = DefaultGroup
	}
	if len(cfg.AuditBrokers) == 0 {
		cfg.AuditBrokers, cfg.AuditClientOpts = cfg.Brokers, cfg.ClientOpts
	}
	if cfg.EventsTopic == "" {
		cfg.EventsTopic = audit.DefaultEventsTopic
	}
	if cfg.DLQTopic == "" {
		cfg.DLQTopic = audit.DefaultDLQTopic
	}
	if cfg.Topic == cfg.EventsTopic && sameCluster(cfg.Brokers, cfg.AuditBrokers) {
		return nil, fmt.Errorf("ingest: topic %s is the events topic itself", cfg.Topic)
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	log := cfg.Logger.With("component", "kaudit.ingest", "topic", cfg.Topic, "format", cfg.Format)
	sink, err := New(Config{Brokers: cfg.AuditBrokers, ClientOpts: cfg.AuditClientOpts, Topic: cfg.EventsTopic, Logger: log})
	if err != nil {
		return nil, err
	}
	r, err := sinks.New(sinks.Config[*Batch]{
		Brokers:         cfg.Brokers,
		ClientOpts:      append(slices.Clip(cfg.ClientOpts), kgo.ClientID("kaudit-ingest")),
		Group:           cfg.Group,
		Topics:          []sinks.Topic[*Batch]{{Name: cfg.Topic, Kind: KindEvent, Decode: decode}},
		NewBatch:        NewBatch,
		BatchSize:       cfg.BatchSize,
		FlushInterval:   cfg.FlushInterval,
		DLQTopic:        cfg.DLQTopic,
		DLQBrokers:      cfg.AuditBrokers,
		DLQClientOpts:   cfg.AuditClientOpts,
		DLQStage:        DeadLetterStage,
		RetryBackoff:    cfg.RetryBackoff,
		RetryBackoffMax: cfg.RetryBackoffMax,
		Logger:          log,
	}, sink)
	if err != nil {
		return nil, err
	}
	return &Ingest{Runner: r, Sink: sink}, nil
}

// Run runs the ingest until ctx is cancelled (see sinks.Runner.Run), then
// closes the sink's producer.
func (in *Ingest) Run(ctx context.Context) error {
	defer in.Sink.Close()
	return in.Runner.Run(ctx)
}

func sameCluster(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}
