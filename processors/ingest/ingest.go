// Package ingest re-emits a foreign audit topic as kaudit audit events. Its
// main use is the source blog's librdkafka interceptors: they write JSON
// records (codecs.InterceptorRecord) to their own audit topic, keyed by correlation
// ID but spread by librdkafka's default partitioner, which is not the one
// goka uses. The correlator is a goka processor whose state is
// co-partitioned with its input (see emitter.Partitioner), so it cannot read
// that topic directly; ingest reads it, decodes each record and writes the
// event to kaudit.events with the goka-compatible partitioner.
//
//	in, err := ingest.New(ingest.Config{
//		Brokers: []string{"kafka:9092"},
//		Topic:   "audit_topic", // the blog's audit.topic
//		Format:  ingest.FormatInterceptorJSON,
//		Logger:  logger,
//	})
//	if err != nil { ... }
//	err = in.Run(ctx) // until ctx is cancelled
//
// Delivery is at least once: offsets are committed only after the audit
// cluster acknowledged every event (and dead letter) produced from the
// records read, so a crash re-reads and re-emits records (the correlator
// then sees a repeated produce, ignored, or a repeated consume, counted in
// the delivery's consume_count). Records that cannot be decoded go to the
// dead-letter topic with Kafka Connect's error headers (stage "ingest").
//
// Events from the blog's records have one-second resolution (see
// codecs.InterceptorRecord.Event): ack latencies are 0 and end-to-end latencies
// whole seconds.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/sethvargo/go-retry"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
)

// Formats of the foreign audit topic.
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

// Defaults of Config.
const (
	DefaultGroup       = "kaudit-ingest"
	DefaultEventsTopic = audit.DefaultEventsTopic
	DefaultDLQTopic    = audit.DefaultDLQTopic
	DefaultBatchSize   = 5000
)

// DeadLetterStage is the __connect.errors.stage header of ingest's dead
// letters.
const DeadLetterStage = "ingest"

// Config configures an Ingester. Brokers, Topic and Format are required.
type Config struct {
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
	// Location is the time zone of the interceptor-json records' timestamps (their
	// writers' local time); UTC if nil.
	Location *time.Location

	// AuditBrokers and AuditClientOpts reach the kaudit cluster; Brokers
	// and ClientOpts if AuditBrokers is empty.
	AuditBrokers    []string
	AuditClientOpts []kgo.Opt
	// EventsTopic is where events go (DefaultEventsTopic if empty),
	// DLQTopic where undecodable records go (DefaultDLQTopic if empty).
	// Both must exist (the correlator creates them).
	EventsTopic string
	DLQTopic    string

	// BatchSize is the most records read, written and committed at once.
	BatchSize int
	// RetryBackoff is the first wait before writing a failed batch
	// again; waits double up to RetryBackoffMax.
	RetryBackoff    time.Duration
	RetryBackoffMax time.Duration

	Logger *slog.Logger
}

// Stats are an Ingester's counters since it started.
type Stats struct {
	Read       uint64 // records read from the foreign topic
	Emitted    uint64 // events written (acknowledged) to the events topic
	DeadLetter uint64 // records written to the dead-letter topic
	Batches    uint64 // batches written and committed
	Retries    uint64 // failed writes retried
}

// Ingester reads a foreign audit topic and writes kaudit events.
type Ingester struct {
	cfg    Config
	decode func([]byte) (*codecs.Event, error)
	log    *slog.Logger

	read, emitted, dead, batches, retries atomic.Uint64
}

// Decoder returns the decoder of a format: FormatInterceptorJSON reads timestamps
// in loc (nil: UTC); FormatKaudit ignores loc.
func Decoder(format string, loc *time.Location) (func([]byte) (*codecs.Event, error), error) {
	switch format {
	case FormatInterceptorJSON, codecs.LegacyInterceptorJSONName:
		return func(b []byte) (*codecs.Event, error) { return codecs.ParseInterceptorRecordIn(b, loc) }, nil
	case FormatKaudit:
		return codecs.DecodeEvent, nil
	}
	return nil, fmt.Errorf("ingest: unknown format %q (want %s or %s)", format, FormatInterceptorJSON, FormatKaudit)
}

// New checks cfg and returns an Ingester; Run starts it.
func New(cfg Config) (*Ingester, error) {
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
		cfg.EventsTopic = DefaultEventsTopic
	}
	if cfg.DLQTopic == "" {
		cfg.DLQTopic = DefaultDLQTopic
	}
	if cfg.Topic == cfg.EventsTopic && sameCluster(cfg.Brokers, cfg.AuditBrokers) {
		return nil, fmt.Errorf("ingest: topic %s is the events topic itself", cfg.Topic)
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 200 * time.Millisecond
	}
	if cfg.RetryBackoffMax <= 0 {
		cfg.RetryBackoffMax = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Ingester{
		cfg:    cfg,
		decode: decode,
		log:    cfg.Logger.With("component", "kaudit.ingest", "topic", cfg.Topic, "format", cfg.Format),
	}, nil
}

func sameCluster(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

// Stats returns the current counters.
func (in *Ingester) Stats() Stats {
	return Stats{
		Read:       in.read.Load(),
		Emitted:    in.emitted.Load(),
		DeadLetter: in.dead.Load(),
		Batches:    in.batches.Load(),
		Retries:    in.retries.Load(),
	}
}

// Run ingests until ctx is cancelled, then returns nil; records read but not
// yet written are not committed, and are read again by the next run. It
// returns an error if a client cannot be built.
func (in *Ingester) Run(ctx context.Context) error {
	src, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(in.cfg.Brokers...),
		kgo.ConsumerGroup(in.cfg.Group),
		kgo.ConsumeTopics(in.cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxWait(250 * time.Millisecond),
		kgo.ClientID("kaudit-ingest"),
	}, in.cfg.ClientOpts...)...)
	if err != nil {
		return fmt.Errorf("ingest: consumer for %v: %w", in.cfg.Brokers, err)
	}
	defer src.Close()
	// Leaving the group waits for a blocked rebalance: unblock it first.
	defer src.AllowRebalance()

	dst, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(in.cfg.AuditBrokers...),
		kgo.RecordPartitioner(audit.Partitioner()),
		kgo.ProducerLinger(5 * time.Millisecond),
		kgo.ClientID("kaudit-ingest"),
	}, in.cfg.AuditClientOpts...)...)
	if err != nil {
		return fmt.Errorf("ingest: producer for %v: %w", in.cfg.AuditBrokers, err)
	}
	defer dst.Close()

	in.log.Info("kaudit ingest started", "group", in.cfg.Group, "events_topic", in.cfg.EventsTopic, "dlq_topic", in.cfg.DLQTopic)
	var out []*kgo.Record
	for {
		fetches := src.PollRecords(ctx, in.cfg.BatchSize)
		if ctx.Err() != nil {
			break
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				in.log.Warn("ingest fetch error", "topic", t, "partition", p, "err", err)
			}
		})
		out = out[:0]
		var dead int
		fetches.EachRecord(func(r *kgo.Record) {
			in.read.Add(1)
			rec, ok := in.convert(r)
			if !ok {
				dead++
			}
			out = append(out, rec)
		})
		if len(out) > 0 {
			if err := in.write(ctx, dst, out); err != nil {
				if ctx.Err() != nil {
					break
				}
				return err
			}
			in.emitted.Add(uint64(len(out) - dead))
			in.dead.Add(uint64(dead))
			in.batches.Add(1)
			if err := src.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
				// Not fatal: the records are written, and are
				// written again if the commit is lost.
				in.log.Warn("ingest commit failed", "err", err)
			}
		}
		src.AllowRebalance()
	}
	in.log.Info("kaudit ingest stopped", "stats", in.Stats())
	return nil
}

// convert turns one foreign record into the event record to write, or its
// dead letter (ok false).
func (in *Ingester) convert(r *kgo.Record) (rec *kgo.Record, ok bool) {
	var err error
	if len(r.Value) == 0 {
		err = errors.New("empty record value")
	} else {
		var ev *codecs.Event
		if ev, err = in.decode(r.Value); err == nil {
			return &kgo.Record{
				Topic: in.cfg.EventsTopic,
				Key:   []byte(ev.CorrelationID),
				Value: codecs.AppendEvent(nil, ev),
			}, true
		}
	}
	in.log.Debug("ingest: undecodable record to the dead-letter topic",
		"partition", r.Partition, "offset", r.Offset, "reason", err)
	return audit.DeadLetter(r, in.cfg.DLQTopic, DeadLetterStage, err), false
}

// write produces recs, retrying those that failed with backoff until all
// are acknowledged or ctx ends.
func (in *Ingester) write(ctx context.Context, dst *kgo.Client, recs []*kgo.Record) error {
	backoff := retry.WithCappedDuration(in.cfg.RetryBackoffMax, retry.NewExponential(in.cfg.RetryBackoff))
	todo := recs
	return retry.Do(ctx, backoff, func(ctx context.Context) error {
		var failed []*kgo.Record
		var firstErr error
		for _, res := range dst.ProduceSync(ctx, todo...) {
			if res.Err != nil {
				if firstErr == nil {
					firstErr = res.Err
				}
				// A fresh record: a failed one keeps state from its
				// attempt.
				failed = append(failed, &kgo.Record{Topic: res.Record.Topic, Key: res.Record.Key, Value: res.Record.Value, Headers: res.Record.Headers})
			}
		}
		if len(failed) == 0 {
			return nil
		}
		todo = failed
		if ctx.Err() != nil {
			return ctx.Err()
		}
		in.retries.Add(1)
		if errors.Is(firstErr, kerr.UnknownTopicOrPartition) {
			in.log.Warn("ingest: the events or dead-letter topic does not exist; the correlator creates them (kaudit-correlator, or EnsureTopics): start it first",
				"events_topic", in.cfg.EventsTopic, "dlq_topic", in.cfg.DLQTopic)
		}
		in.log.Warn("ingest: writing events failed; retrying", "failed", len(failed), "of", len(recs), "err", firstErr)
		return retry.RetryableError(fmt.Errorf("ingest: write %d records: %w", len(failed), firstErr))
	})
}
