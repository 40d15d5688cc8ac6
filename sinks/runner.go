package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/sethvargo/go-retry"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
)

// Defaults of RunnerConfig. The names follow Kafka Connect where it has one.
const (
	DefaultBatchSize     = 10000
	DefaultFlushInterval = time.Second
)

// Error tolerance, as Kafka Connect's errors.tolerance.
const (
	// ToleranceAll sends records that cannot be decoded to the dead-letter
	// topic (or drops them if there is none) and goes on.
	ToleranceAll = "all"
	// ToleranceNone stops the runner at the first record it cannot decode.
	ToleranceNone = "none"
)

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	// Brokers to consume from; ClientOpts add TLS, SASL and the like.
	Brokers    []string
	ClientOpts []kgo.Opt
	// Group is the runner's consumer group; each sink needs its own.
	Group string
	// VerdictsTopic and EventsTopic are the topics read (Connect's
	// "topics"); an empty one is not read.
	VerdictsTopic string
	EventsTopic   string
	// AdminTopic and TrafficTopic are kaudit-proxy's topics (kaudit.admin,
	// kaudit.traffic); an empty one is not read.
	AdminTopic   string
	TrafficTopic string
	// BatchSize is the most records handed to the sink at once.
	BatchSize int
	// FlushInterval is the longest a read record waits for its batch.
	FlushInterval time.Duration
	// ErrorsTolerance is errors.tolerance: "all" (default) or "none".
	ErrorsTolerance string
	// DLQTopic is errors.deadletterqueue.topic.name.
	DLQTopic string
	// RetryBackoff is the first wait before writing a failed batch again;
	// waits double up to RetryBackoffMax.
	RetryBackoff    time.Duration
	RetryBackoffMax time.Duration

	Logger *slog.Logger
}

func (c *RunnerConfig) setDefaults() error {
	if len(c.Brokers) == 0 {
		return errors.New("sinks: no brokers")
	}
	if c.Group == "" {
		return errors.New("sinks: no consumer group")
	}
	if c.VerdictsTopic == "" && c.EventsTopic == "" && c.AdminTopic == "" && c.TrafficTopic == "" {
		return errors.New("sinks: no topics to read")
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	switch c.ErrorsTolerance {
	case "":
		c.ErrorsTolerance = ToleranceAll
	case ToleranceAll, ToleranceNone:
	default:
		return fmt.Errorf("sinks: errors.tolerance %q: want all or none", c.ErrorsTolerance)
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = 200 * time.Millisecond
	}
	if c.RetryBackoffMax <= 0 {
		c.RetryBackoffMax = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// RunnerStats are a runner's counters since it started.
type RunnerStats struct {
	Events     uint64 // events written
	Verdicts   uint64 // verdicts written
	DeadLetter uint64 // records sent to the dead-letter topic
	Dropped    uint64 // undecodable records dropped (no dead-letter topic)
	Batches    uint64 // batches written
	Retries    uint64 // failed writes retried
}

// Runner consumes the audit topics and feeds a Sink. It commits offsets only
// after the sink accepted the batch holding them (and the dead-letter topic
// acknowledged the bad records), so a crash or a sink outage loses nothing:
// records are read again and, the sink being idempotent, counted once.
type Runner struct {
	cfg  RunnerConfig
	sink Sink
	log  *slog.Logger

	events, verdicts, dead, dropped, batches, retries atomic.Uint64
}

// NewRunner returns a runner feeding sink.
func NewRunner(cfg RunnerConfig, sink Sink) (*Runner, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	return &Runner{cfg: cfg, sink: sink, log: cfg.Logger}, nil
}

// Stats returns the current counters.
func (r *Runner) Stats() RunnerStats {
	return RunnerStats{
		Events:     r.events.Load(),
		Verdicts:   r.verdicts.Load(),
		DeadLetter: r.dead.Load(),
		Dropped:    r.dropped.Load(),
		Batches:    r.batches.Load(),
		Retries:    r.retries.Load(),
	}
}

// pending is what was read since the last flush.
type pending struct {
	batch   Batch
	dlq     []*kgo.Record
	records int
	since   time.Time
}

// Run consumes until ctx is cancelled, then writes what it has read and
// commits it (waiting at most a few seconds), and returns nil. It returns an
// error if the client cannot be created, or with errors.tolerance=none at
// the first bad record.
func (r *Runner) Run(ctx context.Context) error {
	var topics []string
	for _, t := range []string{r.cfg.VerdictsTopic, r.cfg.EventsTopic, r.cfg.AdminTopic, r.cfg.TrafficTopic} {
		if t != "" {
			topics = append(topics, t)
		}
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(r.cfg.Brokers...),
		kgo.ConsumerGroup(r.cfg.Group),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxWait(250 * time.Millisecond),
	}, r.cfg.ClientOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("sinks: kafka client: %w", err)
	}
	defer cl.Close()
	// Leaving the group waits for a blocked rebalance: unblock it first.
	defer cl.AllowRebalance()

	p := &pending{}
	for {
		pollCtx, cancel := ctx, context.CancelFunc(func() {})
		if p.records > 0 {
			pollCtx, cancel = context.WithDeadline(ctx, p.since.Add(r.cfg.FlushInterval))
		}
		fetches := cl.PollRecords(pollCtx, r.cfg.BatchSize-p.records)
		cancel()
		if ctx.Err() != nil {
			break
		}
		fetches.EachError(func(t string, part int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				r.log.Warn("sink fetch error", "topic", t, "partition", part, "err", err)
			}
		})
		var stop error
		fetches.EachRecord(func(rec *kgo.Record) {
			if stop == nil {
				stop = r.add(p, rec)
			}
		})
		if stop != nil {
			return stop
		}
		if p.records > 0 && (p.records >= r.cfg.BatchSize || time.Since(p.since) >= r.cfg.FlushInterval) {
			if err := r.flush(ctx, cl, p); err != nil {
				if ctx.Err() != nil {
					break
				}
				return err
			}
		}
		if p.records == 0 {
			cl.AllowRebalance()
		}
	}
	// Shutting down: write and commit what was read, briefly.
	if p.records > 0 {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := r.flush(fctx, cl, p); err != nil {
			r.log.Warn("sink: final flush failed; the records will be read again", "err", err)
		}
	}
	return nil
}

// add decodes one record into the pending batch.
func (r *Runner) add(p *pending, rec *kgo.Record) error {
	if p.records == 0 {
		p.since = time.Now()
	}
	p.records++
	if ok, err := r.addProxy(p, rec); ok {
		return err
	}
	var err error
	switch {
	case len(rec.Value) == 0:
		err = errors.New("empty record value")
	case rec.Topic == r.cfg.VerdictsTopic:
		var v codecs.Verdict
		if err = codecs.UnmarshalVerdict(rec.Value, &v); err == nil {
			p.batch.Verdicts = append(p.batch.Verdicts, v)
			return nil
		}
	default:
		var e *codecs.Event
		if e, err = codecs.DecodeEvent(rec.Value); err == nil {
			p.batch.Events = append(p.batch.Events, EventRecord{
				Event: *e,
				From:  Position{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset},
			})
			return nil
		}
	}
	return r.bad(p, rec, err)
}

// bad handles a record that cannot be decoded, per errors.tolerance.
func (r *Runner) bad(p *pending, rec *kgo.Record, reason error) error {
	if r.cfg.ErrorsTolerance == ToleranceNone {
		return fmt.Errorf("sinks: %s/%d@%d: %w (errors.tolerance=none)", rec.Topic, rec.Partition, rec.Offset, reason)
	}
	if r.cfg.DLQTopic == "" {
		r.dropped.Add(1)
		r.log.Warn("sink: dropping undecodable record", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "reason", reason)
		return nil
	}
	p.dlq = append(p.dlq, audit.DeadLetter(rec, r.cfg.DLQTopic, "sink", reason))
	return nil
}

// flush writes the pending batch and dead letters, retrying with backoff
// until they are accepted or ctx ends, then commits the offsets.
func (r *Runner) flush(ctx context.Context, cl *kgo.Client, p *pending) error {
	backoff := retry.WithCappedDuration(r.cfg.RetryBackoffMax, retry.NewExponential(r.cfg.RetryBackoff))
	if len(p.dlq) > 0 {
		err := retry.Do(ctx, backoff, func(ctx context.Context) error {
			if err := cl.ProduceSync(ctx, p.dlq...).FirstErr(); err != nil {
				r.retries.Add(1)
				r.log.Warn("sink: dead-letter produce failed; retrying", "err", err)
				return retry.RetryableError(err)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("sinks: dead-letter topic %s: %w", r.cfg.DLQTopic, err)
		}
		r.dead.Add(uint64(len(p.dlq)))
		backoff = retry.WithCappedDuration(r.cfg.RetryBackoffMax, retry.NewExponential(r.cfg.RetryBackoff))
	}
	if p.batch.Len() > 0 {
		err := retry.Do(ctx, backoff, func(ctx context.Context) error {
			if err := r.sink.WriteBatch(ctx, &p.batch); err != nil {
				r.retries.Add(1)
				r.log.Warn("sink: write failed; retrying", "records", p.batch.Len(), "err", err)
				return retry.RetryableError(err)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("sinks: write batch: %w", err)
		}
		r.events.Add(uint64(len(p.batch.Events)))
		r.verdicts.Add(uint64(len(p.batch.Verdicts)))
		r.batches.Add(1)
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		// Not fatal: the records are written, and will be written
		// again (idempotently) if the commit is lost.
		r.log.Warn("sink: commit failed", "err", err)
	}
	*p = pending{batch: Batch{Events: p.batch.Events[:0], Verdicts: p.batch.Verdicts[:0]}}
	return nil
}
