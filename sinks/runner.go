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
)

// Defaults of Config. The names follow Kafka Connect where it has one.
const (
	DefaultBatchSize       = 10000
	DefaultBatchBytes      = 16 << 20
	DefaultFlushInterval   = time.Second
	DefaultMaxInFlight     = 2
	DefaultShutdownTimeout = 10 * time.Second
)

// Error tolerance, as Kafka Connect's errors.tolerance.
const (
	// ToleranceAll sends records that cannot be decoded to the dead-letter
	// topic (or drops them if there is none) and goes on.
	ToleranceAll = "all"
	// ToleranceNone stops the runner at the first record it cannot decode.
	ToleranceNone = "none"
)

// DeadLetterStage is the __connect.errors.stage header of the runner's dead
// letters.
const DeadLetterStage = "sink"

// Config configures a Runner reading batches of type B. Zero fields take
// the defaults above; negative ones are an error.
type Config[B Buffer] struct {
	// Brokers to consume from; ClientOpts add TLS, SASL and the like.
	Brokers    []string
	ClientOpts []kgo.Opt
	// Group is the runner's consumer group; each sink needs its own. A new
	// group starts at the oldest record.
	Group string
	// Topics are the topics read (Connect's "topics") and how to decode
	// each; a topic appears once.
	Topics []Topic[B]
	// NewBatch returns an empty batch; batches are reused after Reset.
	NewBatch func() B
	// BatchSize is the most records in one batch, BatchBytes the most
	// record bytes (keys and values as read); whichever is reached first
	// closes the batch.
	BatchSize  int
	BatchBytes int
	// FlushInterval is the longest a read record waits for its batch to
	// be handed to the sink.
	FlushInterval time.Duration
	// MaxInFlight is how many batches are written at once while the next
	// one is read. Offsets are committed in read order, each after its
	// batch was written.
	MaxInFlight int
	// ErrorsTolerance is errors.tolerance: "all" (default) or "none".
	ErrorsTolerance string
	// DLQTopic is errors.deadletterqueue.topic.name; empty drops
	// undecodable records (counted). DLQBrokers and DLQClientOpts reach
	// the cluster holding it; by default the one consumed from.
	DLQTopic      string
	DLQBrokers    []string
	DLQClientOpts []kgo.Opt
	// DLQStage is the dead letters' __connect.errors.stage header
	// (default DeadLetterStage).
	DLQStage string
	// RetryBackoff is the first wait before writing a failed batch (or
	// connecting) again; waits double up to RetryBackoffMax.
	RetryBackoff    time.Duration
	RetryBackoffMax time.Duration
	// ShutdownTimeout bounds the final write and commit when Run's
	// context ends.
	ShutdownTimeout time.Duration
	// OnWritten, if set, is called after the sink accepted a batch, from
	// the goroutine that wrote it, before its offsets are committed. It
	// must not keep the batch.
	OnWritten func(Written[B])

	Logger *slog.Logger
}

func (c *Config[B]) setDefaults() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("sinks: no brokers")
	case c.Group == "":
		return errors.New("sinks: no consumer group")
	case len(c.Topics) == 0:
		return errors.New("sinks: no topics to read")
	case c.NewBatch == nil:
		return errors.New("sinks: no NewBatch")
	}
	seen := map[string]bool{}
	for _, t := range c.Topics {
		switch {
		case t.Name == "":
			return errors.New("sinks: a topic without a name")
		case t.Decode == nil:
			return fmt.Errorf("sinks: topic %s: no decoder", t.Name)
		case seen[t.Name]:
			return fmt.Errorf("sinks: topic %s given twice", t.Name)
		}
		seen[t.Name] = true
	}
	for _, n := range []struct {
		name string
		v    int64
	}{
		{"batch size", int64(c.BatchSize)}, {"batch bytes", int64(c.BatchBytes)},
		{"flush interval", int64(c.FlushInterval)}, {"max in flight", int64(c.MaxInFlight)},
		{"retry backoff", int64(c.RetryBackoff)}, {"max retry backoff", int64(c.RetryBackoffMax)},
		{"shutdown timeout", int64(c.ShutdownTimeout)},
	} {
		if n.v < 0 {
			return fmt.Errorf("sinks: negative %s %d", n.name, n.v)
		}
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = DefaultBatchBytes
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	switch c.ErrorsTolerance {
	case "":
		c.ErrorsTolerance = ToleranceAll
	case ToleranceAll, ToleranceNone:
	default:
		return fmt.Errorf("sinks: errors.tolerance %q: want all or none", c.ErrorsTolerance)
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = 200 * time.Millisecond
	}
	if c.RetryBackoffMax == 0 {
		c.RetryBackoffMax = 30 * time.Second
	}
	if c.RetryBackoffMax < c.RetryBackoff {
		c.RetryBackoffMax = c.RetryBackoff
	}
	if c.DLQStage == "" {
		c.DLQStage = DeadLetterStage
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Stats are a runner's counters since it started.
type Stats struct {
	// Written counts the records written by the sink, by Topic.Kind.
	Written map[string]uint64
	// DeadLetter counts records sent to the dead-letter topic;
	// DeadLetterCut those of them sent as stubs (too large to send whole).
	DeadLetter    uint64
	DeadLetterCut uint64
	// DeadLetterFailed counts undecodable records the dead-letter topic
	// refused for good (an authorization failure, a size the broker
	// rejects even as a stub): dropped, each with an Error log.
	DeadLetterFailed uint64
	// Dropped counts undecodable records dropped because no dead-letter
	// topic is configured.
	Dropped uint64
	Batches uint64 // batches written
	Retries uint64 // failed writes (and dead-letter produces) retried
	Commits uint64 // offset commits that succeeded
}

// Runner consumes topics and feeds a Sink. It commits offsets only after
// the sink accepted the batch holding them (and the dead-letter topic
// acknowledged the bad records), so a crash or a sink outage loses nothing:
// records are read again and, the sink being idempotent, counted once.
type Runner[B Buffer] struct {
	cfg    Config[B]
	sink   Sink[B]
	log    *slog.Logger
	topics map[string]int // name -> index in cfg.Topics

	written                                                   []atomic.Uint64 // by topic index
	dead, cut, deadFailed, dropped, batches, retries, commits atomic.Uint64

	running   atomic.Bool
	connected atomic.Bool
	client    atomic.Pointer[kgo.Client]
	// rebalance is set when a rebalance waits for the runner to stop
	// holding polled records.
	rebalance atomic.Bool
}

// New returns a runner feeding sink.
func New[B Buffer](cfg Config[B], sink Sink[B]) (*Runner[B], error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if sink == nil {
		return nil, errors.New("sinks: no sink")
	}
	r := &Runner[B]{cfg: cfg, sink: sink, log: cfg.Logger, topics: map[string]int{}, written: make([]atomic.Uint64, len(cfg.Topics))}
	for i, t := range cfg.Topics {
		r.topics[t.Name] = i
	}
	return r, nil
}

// Stats returns the current counters.
func (r *Runner[B]) Stats() Stats {
	s := Stats{
		Written:          map[string]uint64{},
		DeadLetter:       r.dead.Load(),
		DeadLetterCut:    r.cut.Load(),
		DeadLetterFailed: r.deadFailed.Load(),
		Dropped:          r.dropped.Load(),
		Batches:          r.batches.Load(),
		Retries:          r.retries.Load(),
		Commits:          r.commits.Load(),
	}
	for i, t := range r.cfg.Topics {
		s.Written[t.Kind] += r.written[i].Load()
	}
	return s
}

// Live reports whether Run is running.
func (r *Runner[B]) Live() error {
	if !r.running.Load() {
		return errors.New("sinks: runner not running")
	}
	return nil
}

// Ready reports whether the runner is doing its job: connected to its
// sink, the sink reachable (if it is a Pinger) and a member of its consumer
// group. The error says what is missing.
func (r *Runner[B]) Ready(ctx context.Context) error {
	if err := r.Live(); err != nil {
		return err
	}
	if !r.connected.Load() {
		return errors.New("sink not connected yet")
	}
	if p, ok := r.sink.(Pinger); ok {
		if err := p.Ping(ctx); err != nil {
			return fmt.Errorf("sink unreachable: %w", err)
		}
	}
	cl := r.client.Load()
	if cl == nil {
		return errors.New("kafka consumer not started")
	}
	if member, gen := cl.GroupMetadata(); member == "" || gen < 0 {
		return fmt.Errorf("not yet a member of consumer group %s", r.cfg.Group)
	}
	return nil
}

// Run connects the sink (retrying with backoff) and consumes until ctx is
// cancelled, then writes what it has read and commits it (waiting at most
// Config.ShutdownTimeout), and returns nil. It returns an error if the
// Kafka client cannot be created, or with errors.tolerance=none at the
// first bad record.
func (r *Runner[B]) Run(ctx context.Context) error {
	r.running.Store(true)
	defer r.running.Store(false)
	if err := r.connect(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}

	names := make([]string, len(r.cfg.Topics))
	for i, t := range r.cfg.Topics {
		names[i] = t.Name
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(r.cfg.Brokers...),
		kgo.ConsumerGroup(r.cfg.Group),
		kgo.ConsumeTopics(names...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsCallbackBlocked(func(context.Context, *kgo.Client) { r.rebalance.Store(true) }),
		kgo.FetchMaxWait(250 * time.Millisecond),
	}, r.cfg.ClientOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("sinks: kafka client: %w", err)
	}
	defer cl.Close()
	// Leaving the group waits for a blocked rebalance: unblock it first.
	defer cl.AllowRebalance()
	dlq := cl
	if r.cfg.DLQTopic != "" && len(r.cfg.DLQBrokers) > 0 {
		if dlq, err = kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(r.cfg.DLQBrokers...)}, r.cfg.DLQClientOpts...)...); err != nil {
			return fmt.Errorf("sinks: dead-letter producer for %v: %w", r.cfg.DLQBrokers, err)
		}
		defer dlq.Close()
	}
	r.client.Store(cl)
	defer r.client.Store(nil)

	w := newWriter(r, cl, dlq)
	defer w.abort()
	p := w.fresh()
loop:
	for {
		pollCtx, cancel := context.WithCancel(ctx)
		if p.records > 0 {
			pollCtx, cancel = context.WithDeadline(ctx, p.since.Add(r.cfg.FlushInterval))
		}
		unwake := w.wakeOnDone(cancel)
		fetches := cl.PollRecords(pollCtx, max(1, r.cfg.BatchSize-p.n))
		unwake()
		cancel()
		fetches.EachError(func(t string, part int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				r.log.Warn("sink fetch error", "topic", t, "partition", part, "err", err)
			}
		})
		// Take every record polled, even when ctx ended during the
		// poll: franz-go counts them as consumed, and the shutdown below
		// writes them before it commits.
		var stop error
		fetches.EachRecord(func(rec *kgo.Record) {
			if stop == nil {
				stop = r.take(p, rec)
			}
		})
		if stop != nil {
			return stop
		}
		w.commitDone(ctx)
		if ctx.Err() != nil {
			break loop
		}
		rebalance := r.rebalance.Load()
		if p.records > 0 && (rebalance || p.n >= r.cfg.BatchSize || p.bytes >= r.cfg.BatchBytes || time.Since(p.since) >= r.cfg.FlushInterval) {
			if err := w.submit(ctx, p); err != nil {
				break loop // ctx ended while waiting for room
			}
			p = w.fresh()
		}
		switch {
		case rebalance:
			// Finish everything polled, then let the rebalance go.
			if w.drain(ctx) != nil {
				break loop
			}
			r.rebalance.Store(false)
			cl.AllowRebalance()
		case p.records == 0 && w.idle():
			cl.AllowRebalance()
		}
	}
	// Shutting down: write and commit what was read, briefly; writes
	// that fail are not retried.
	w.stopping()
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.ShutdownTimeout)
	defer cancel()
	if p.records > 0 {
		_ = w.submit(fctx, p)
	}
	if err := w.drain(fctx); err != nil {
		r.log.Warn("sink: final write did not finish; its records will be read again", "err", err)
	}
	return nil
}

// connect connects the sink, if it is a Connecter, retrying with backoff.
func (r *Runner[B]) connect(ctx context.Context) error {
	c, ok := r.sink.(Connecter)
	if !ok {
		r.connected.Store(true)
		return nil
	}
	err := retry.Do(ctx, r.backoff(), func(ctx context.Context) error {
		if err := c.Connect(ctx); err != nil {
			if ctx.Err() == nil {
				r.log.Warn("sink: connect failed; retrying", "err", err)
			}
			return retry.RetryableError(err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sinks: connect: %w", err)
	}
	r.connected.Store(true)
	return nil
}

func (r *Runner[B]) backoff() retry.Backoff {
	return retry.WithCappedDuration(r.cfg.RetryBackoffMax, retry.NewExponential(r.cfg.RetryBackoff))
}

// take decodes one record into the pending batch, or routes it per
// errors.tolerance.
func (r *Runner[B]) take(p *pending[B], rec *kgo.Record) error {
	if p.records == 0 {
		p.since = time.Now()
	}
	p.records++
	p.mark(rec)
	i, ok := r.topics[rec.Topic]
	var err error
	if !ok {
		err = fmt.Errorf("record of unexpected topic %s", rec.Topic)
	} else if err = r.cfg.Topics[i].Decode(p.batch, rec); err == nil {
		p.n++
		p.bytes += len(rec.Key) + len(rec.Value)
		p.kinds[i]++
		return nil
	}
	if r.cfg.ErrorsTolerance == ToleranceNone {
		return fmt.Errorf("sinks: %s/%d@%d: %w (errors.tolerance=none)", rec.Topic, rec.Partition, rec.Offset, err)
	}
	if r.cfg.DLQTopic == "" {
		r.dropped.Add(1)
		r.log.Warn("sink: dropping undecodable record (no dead-letter topic)", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "reason", err)
		return nil
	}
	p.dlq = append(p.dlq, audit.DeadLetter(rec, r.cfg.DLQTopic, r.cfg.DLQStage, err))
	return nil
}
