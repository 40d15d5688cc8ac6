// Package kafka is the sinks.Sink that writes kaudit audit events to a
// Kafka topic (kaudit.events), partitioned with audit.Partitioner so that
// the correlator finds them, and the decoders that turn a foreign audit
// topic's records into such events. Together with a sinks.Runner they are
// `kaudit ingest` (see NewIngest): its main use is the source blog's
// librdkafka interceptors, which write JSON records (codecs.InterceptorRecord)
// to their own audit topic, keyed by correlation ID but spread by
// librdkafka's default partitioner, which is not the one goka uses.
//
//	r, err := kafka.NewIngest(kafka.IngestConfig{
//		Brokers: []string{"kafka:9092"},
//		Topic:   "audit_topic", // the blog's audit.topic
//		Format:  kafka.FormatInterceptorJSON,
//	})
//	if err != nil { ... }
//	err = r.Run(ctx) // until ctx is cancelled
//
// Delivery is at least once: offsets are committed only after the audit
// cluster acknowledged every event (and dead letter) produced from the
// records read, so a crash re-reads and re-emits records (the correlator
// then sees a repeated produce, ignored, or a repeated consume, counted in
// the delivery's consume_count). Records that cannot be decoded go to the
// dead-letter topic with Kafka Connect's error headers (stage "ingest").
// An event the audit cluster refuses for its size is dropped with an Error
// log and counted (Stats.Dropped); other refusals (authorization, a missing
// topic) are retried until fixed, so nothing is lost.
package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/sinks"
)

// Batch is the events to produce, as records without a topic (the sink
// sets it).
type Batch struct {
	Records []*kgo.Record
}

// NewBatch returns an empty Batch.
func NewBatch() *Batch { return new(Batch) }

// Reset empties b.
func (b *Batch) Reset() {
	clear(b.Records)
	b.Records = b.Records[:0]
}

// Config configures a Sink.
type Config struct {
	// Brokers and ClientOpts reach the audit cluster.
	Brokers    []string
	ClientOpts []kgo.Opt
	// Topic is where events go (default audit.DefaultEventsTopic); it must
	// exist (the correlator creates it).
	Topic  string
	Logger *slog.Logger
}

// Stats are a Sink's counters.
type Stats struct {
	Produced uint64 // events acknowledged by the audit cluster
	Dropped  uint64 // events refused for good (too large), dropped
	Retries  uint64 // events produced again after a failure
}

// Sink produces events to the audit cluster.
type Sink struct {
	cfg Config
	log *slog.Logger

	mu sync.Mutex
	cl atomic.Pointer[kgo.Client]

	produced, dropped, retries atomic.Uint64
}

var (
	_ sinks.Sink[*Batch] = (*Sink)(nil)
	_ sinks.Connecter    = (*Sink)(nil)
	_ sinks.Pinger       = (*Sink)(nil)
)

// New returns a Sink; Connect builds its client.
func New(cfg Config) (*Sink, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("kafka sink: no brokers")
	}
	cfg.Topic = cmp.Or(cfg.Topic, audit.DefaultEventsTopic)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sink{cfg: cfg, log: log}, nil
}

// Connect builds the producer (it reaches the cluster on the first write).
func (s *Sink) Connect(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cl.Load() != nil {
		return nil
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(s.cfg.Brokers...),
		kgo.RecordPartitioner(audit.Partitioner()),
		kgo.ProducerLinger(5 * time.Millisecond),
		kgo.ClientID("kaudit-ingest"),
	}, s.cfg.ClientOpts...)...)
	if err != nil {
		return fmt.Errorf("kafka sink: producer for %v: %w", s.cfg.Brokers, err)
	}
	s.cl.Store(cl)
	return nil
}

// Ping reports whether the audit cluster answers.
func (s *Sink) Ping(ctx context.Context) error {
	cl := s.cl.Load()
	if cl == nil {
		return sinks.ErrNotConnected
	}
	if err := cl.Ping(ctx); err != nil {
		return fmt.Errorf("kafka sink: ping %v: %w", s.cfg.Brokers, err)
	}
	return nil
}

// Stats returns the current counters.
func (s *Sink) Stats() Stats {
	return Stats{Produced: s.produced.Load(), Dropped: s.dropped.Load(), Retries: s.retries.Load()}
}

// WriteBatch produces b's records. On error, b keeps only the records that
// still have to be written, so that the runner's retry sends only those.
func (s *Sink) WriteBatch(ctx context.Context, b *Batch) error {
	cl := s.cl.Load()
	if cl == nil {
		return fmt.Errorf("kafka sink: %w", sinks.ErrNotConnected)
	}
	if len(b.Records) == 0 {
		return nil
	}
	for _, r := range b.Records {
		r.Topic = s.cfg.Topic
	}
	var again []*kgo.Record
	var firstErr error
	for _, res := range cl.ProduceSync(ctx, b.Records...) {
		r := res.Record
		switch err := res.Err; {
		case err == nil:
			s.produced.Add(1)
		case ctx.Err() == nil && (errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge) || errors.Is(err, kerr.InvalidRecord)):
			s.dropped.Add(1)
			s.log.Error("kafka sink: the audit cluster refused an event for good; dropping it", "topic", r.Topic, "key", trim(r.Key), "bytes", len(r.Value), "err", err)
		default:
			// A fresh record: a failed one keeps state from its attempt.
			again = append(again, &kgo.Record{Key: r.Key, Value: r.Value, Headers: r.Headers})
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	if len(again) == 0 {
		b.Reset()
		return nil
	}
	n := len(b.Records)
	b.Reset()
	b.Records = append(b.Records, again...)
	s.retries.Add(uint64(len(again)))
	if errors.Is(firstErr, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("kafka sink: topic %s does not exist (the correlator creates it: start it first): %w", s.cfg.Topic, firstErr)
	}
	return fmt.Errorf("kafka sink: write %d of %d events to %s: %w", len(again), n, s.cfg.Topic, firstErr)
}

func trim(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}

// Close closes the producer.
func (s *Sink) Close() error {
	if cl := s.cl.Swap(nil); cl != nil {
		cl.Close()
	}
	return nil
}
