// Package correlator is kaudit's correlator: a goka processor that joins the
// raw audit events of each message by correlation ID in a group table (one
// Trail per message) and emits a verdict per (message, consumer group) to the
// verdicts topic, with the message's ack latency and end-to-end latency.
//
//	c, err := correlator.New(correlator.Config{Brokers: []string{"localhost:9092"}})
//	if err != nil { ... }
//	err = c.Run(ctx) // until ctx is cancelled
//
// Events that cannot be decoded go to the dead-letter topic with the reason
// in the Kafka Connect error headers; the correlator keeps going.
package correlator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/processors/expectations"
	"github.com/kaudit/kaudit/processors/internal/gokaopts"
	"github.com/kaudit/kaudit/processors/learner"
)

// Defaults of Config.
const (
	DefaultGroup         = "kaudit-correlator"
	DefaultPartitions    = 6
	DefaultDeadline      = 5 * time.Minute
	DefaultGrace         = 15 * time.Minute
	DefaultSweepInterval = 5 * time.Second
)

// sweepVisitor is the name of the visitor that walks every trail.
const sweepVisitor = "sweep"

// Config configures a Correlator. Zero fields take the defaults.
type Config struct {
	Brokers []string
	// Sarama is the base client configuration (TLS, SASL, version); nil
	// means goka.DefaultConfig(). It is copied, never modified.
	Sarama *sarama.Config

	Group         string
	EventsTopic   string
	VerdictsTopic string
	DLQTopic      string
	// Partitions and Replication are used when the correlator creates
	// missing topics. The events topic decides the table's partitions.
	Partitions  int
	Replication int

	// StorageDir holds the local copy of the group table.
	StorageDir string
	// DefaultDeadline is the delivery deadline of topics whose expectation
	// sets none (and of topics without expectations, for closing trails).
	DefaultDeadline time.Duration
	// Grace is how long a trail is kept after its deadline, to catch late
	// consumes and duplicates; then it is deleted.
	Grace time.Duration
	// SweepInterval is how often every trail is visited (deadlines are
	// decided at most this late).
	SweepInterval time.Duration

	// Expectations are declared expectations (e.g. from a file); the
	// expectations topic adds to them and wins for the topics it names.
	Expectations []*expectations.Expectation
	// ExpectationsTopic is the compacted topic of declared expectations,
	// keyed by topic ("kaudit expect set" writes it).
	ExpectationsTopic string
	// LearnWarmup enables learned expectations: a group seen consuming a
	// topic for this long becomes expected for it. Zero disables learning.
	LearnWarmup time.Duration
	// LearnerGroup is the learner's goka group (its table is looked up).
	LearnerGroup string

	Logger *slog.Logger
	// Now is the clock of the sweeps; nil means time.Now.
	Now func() time.Time
}

// ApplyFile merges an expectations file into c: its topics are added to
// Expectations, and its default deadline, grace and learning warm-up, when
// set, replace c's.
func (c *Config) ApplyFile(f *expectations.File) {
	if f == nil {
		return
	}
	topics := make([]string, 0, len(f.Topics))
	for t := range f.Topics {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	for _, t := range topics {
		c.Expectations = append(c.Expectations, f.Topics[t])
	}
	if f.DefaultDeadline > 0 {
		c.DefaultDeadline = time.Duration(f.DefaultDeadline)
	}
	if f.Grace > 0 {
		c.Grace = time.Duration(f.Grace)
	}
	if f.LearnWarmup != nil {
		c.LearnWarmup = time.Duration(*f.LearnWarmup)
	}
}

func (c *Config) setDefaults() {
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.EventsTopic == "" {
		c.EventsTopic = audit.DefaultEventsTopic
	}
	if c.VerdictsTopic == "" {
		c.VerdictsTopic = audit.DefaultVerdictsTopic
	}
	if c.DLQTopic == "" {
		c.DLQTopic = audit.DefaultDLQTopic
	}
	if c.Partitions <= 0 {
		c.Partitions = DefaultPartitions
	}
	if c.Replication <= 0 {
		c.Replication = 1
	}
	if c.StorageDir == "" {
		c.StorageDir = filepath.Join(os.TempDir(), "kaudit-correlator")
	}
	if c.DefaultDeadline <= 0 {
		c.DefaultDeadline = DefaultDeadline
	}
	if c.Grace <= 0 {
		c.Grace = DefaultGrace
	}
	if c.ExpectationsTopic == "" {
		c.ExpectationsTopic = audit.DefaultExpectationsTopic
	}
	if c.LearnerGroup == "" {
		c.LearnerGroup = learner.DefaultGroup
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Stats are the correlator's counters since it started.
type Stats struct {
	Events     uint64 // audit events folded into trails
	Verdicts   uint64 // verdicts emitted
	DeadLetter uint64 // input records sent to the dead-letter topic
	Deleted    uint64 // trails deleted by sweeps
	OpenTrails int64  // trails in the table at the last sweep
}

// Correlator joins audit events into trails and emits verdicts.
type Correlator struct {
	cfg Config
	log *slog.Logger

	events, verdicts, dead, deleted atomic.Uint64
	open                            atomic.Int64
}

// New returns a correlator for cfg.
func New(cfg Config) (*Correlator, error) {
	cfg.setDefaults()
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("correlator: no brokers")
	}
	return &Correlator{cfg: cfg, log: cfg.Logger}, nil
}

// Stats returns the current counters.
func (c *Correlator) Stats() Stats {
	return Stats{
		Events:     c.events.Load(),
		Verdicts:   c.verdicts.Load(),
		DeadLetter: c.dead.Load(),
		Deleted:    c.deleted.Load(),
		OpenTrails: c.open.Load(),
	}
}

// Table is the name of the correlator's group table topic.
func (c *Correlator) Table() goka.Table { return goka.GroupTable(goka.Group(c.cfg.Group)) }

// Graph is the correlator's processor graph.
func (c *Correlator) Graph() *goka.GroupGraph {
	edges := []goka.Edge{
		goka.Input(goka.Stream(c.cfg.EventsTopic), eventInputCodec{}, c.onEvent),
		goka.Visitor(sweepVisitor, c.onSweep),
		goka.Persist(TrailCodec{}),
		goka.Lookup(goka.Table(c.cfg.ExpectationsTopic), expectations.Codec{}),
		goka.Output(goka.Stream(c.cfg.VerdictsTopic), codecs.VerdictCodec{}),
		goka.Output(goka.Stream(c.cfg.DLQTopic), rawCodec{}),
	}
	if c.cfg.LearnWarmup > 0 {
		edges = append(edges, goka.Lookup(learner.Table(c.cfg.LearnerGroup), learner.Codec{}))
	}
	return goka.DefineGroup(goka.Group(c.cfg.Group), edges...)
}

// policyFor returns what the correlator knows about topic now.
func (c *Correlator) policyFor(ctx goka.Context, topic string) policy {
	p := policy{deadline: c.cfg.DefaultDeadline, warmup: c.cfg.LearnWarmup}
	var fromFile *expectations.Expectation
	for _, e := range c.cfg.Expectations {
		if e != nil && e.Topic == topic {
			fromFile = e
		}
	}
	fromTopic, _ := ctx.Lookup(goka.Table(c.cfg.ExpectationsTopic), topic).(*expectations.Expectation)
	switch {
	case fromTopic != nil:
		p.declared = []*expectations.Expectation{fromTopic}
	case fromFile != nil:
		p.declared = []*expectations.Expectation{fromFile}
	}
	for _, e := range p.declared {
		if e.Deadline > 0 {
			p.deadline = time.Duration(e.Deadline)
		}
	}
	if c.cfg.LearnWarmup > 0 {
		p.learned, _ = ctx.Lookup(learner.Table(c.cfg.LearnerGroup), topic).(*learner.Learned)
	}
	return p
}

// onEvent folds one audit event into its trail.
func (c *Correlator) onEvent(ctx goka.Context, msg any) {
	in, ok := msg.(*inbound)
	if !ok || in == nil {
		return
	}
	if in.err != nil {
		c.deadLetter(ctx, in.raw, in.err)
		return
	}
	e := in.event
	if e.CorrelationID != ctx.Key() {
		c.deadLetter(ctx, in.raw, fmt.Errorf("record key %q is not the event's correlation_id %q", ctx.Key(), e.CorrelationID))
		return
	}
	t, _ := ctx.Value().(*Trail)
	if t == nil {
		t = new(Trail)
	}
	verdicts := t.Apply(e, c.policyFor(ctx, e.Topic))
	ctx.SetValue(t)
	c.events.Add(1)
	c.emit(ctx, verdicts)
}

// onSweep is the visitor run for every trail on each sweep; meta is the
// sweep's time in Unix nanoseconds.
func (c *Correlator) onSweep(ctx goka.Context, meta any) {
	now, _ := meta.(int64)
	t, _ := ctx.Value().(*Trail)
	if t == nil {
		return
	}
	verdicts, done := t.Sweep(now, int64(c.cfg.Grace))
	c.emit(ctx, verdicts)
	if done {
		ctx.Delete()
		c.deleted.Add(1)
		return
	}
	if len(verdicts) > 0 {
		ctx.SetValue(t)
	}
}

func (c *Correlator) emit(ctx goka.Context, verdicts []codecs.Verdict) {
	for i := range verdicts {
		ctx.Emit(goka.Stream(c.cfg.VerdictsTopic), verdicts[i].CorrelationID, &verdicts[i])
	}
	c.verdicts.Add(uint64(len(verdicts)))
}

func (c *Correlator) deadLetter(ctx goka.Context, raw []byte, reason error) {
	c.dead.Add(1)
	c.log.Warn("audit event sent to dead-letter topic",
		"topic", ctx.Topic(), "partition", ctx.Partition(), "offset", ctx.Offset(), "reason", reason)
	if raw == nil {
		raw = []byte{}
	}
	headers := goka.Headers{}
	for _, h := range audit.DeadLetterHeaders(string(ctx.Topic()), ctx.Partition(), ctx.Offset(), "correlator", reason) {
		headers[h.Key] = h.Value
	}
	ctx.Emit(goka.Stream(c.cfg.DLQTopic), ctx.Key(), raw, goka.WithCtxEmitHeaders(headers))
}

func (c *Correlator) saramaConfig() *sarama.Config { return gokaopts.Sarama(c.cfg.Sarama) }

func (c *Correlator) topicManagerConfig() *goka.TopicManagerConfig {
	return gokaopts.TopicManager(c.cfg.Replication)
}

// EnsureTopics creates the events, verdicts and dead-letter topics if they
// are missing.
func (c *Correlator) EnsureTopics() error {
	tm, err := goka.NewTopicManager(c.cfg.Brokers, c.saramaConfig(), c.topicManagerConfig())
	if err != nil {
		return fmt.Errorf("correlator: topic manager: %w", err)
	}
	defer tm.Close()
	for _, t := range []string{c.cfg.EventsTopic, c.cfg.VerdictsTopic, c.cfg.DLQTopic} {
		if err := tm.EnsureStreamExists(t, c.cfg.Partitions); err != nil {
			return fmt.Errorf("correlator: ensure topic %s: %w", t, err)
		}
	}
	if err := tm.EnsureTableExists(c.cfg.ExpectationsTopic, 1); err != nil {
		return fmt.Errorf("correlator: ensure topic %s: %w", c.cfg.ExpectationsTopic, err)
	}
	return nil
}

// Options are the goka processor options the correlator runs with; tests
// append goka.WithTester.
func (c *Correlator) Options() []goka.ProcessorOption {
	return gokaopts.Options(gokaopts.Config{
		Base:        c.cfg.Sarama,
		StorageDir:  c.cfg.StorageDir,
		Replication: c.cfg.Replication,
		ClientID:    c.cfg.Group,
		Logger:      c.log,
	})
}

// Learner returns the learner the correlator's learned expectations need,
// configured from the correlator's own settings (brokers, client settings,
// events topic, replication, storage next to the correlator's); nil when
// learning is off. Run it beside the correlator.
func (c *Correlator) Learner() (*learner.Learner, error) {
	if c.cfg.LearnWarmup <= 0 {
		return nil, nil
	}
	return learner.New(learner.Config{
		Brokers:     c.cfg.Brokers,
		Sarama:      c.cfg.Sarama,
		Group:       c.cfg.LearnerGroup,
		EventsTopic: c.cfg.EventsTopic,
		StorageDir:  c.cfg.StorageDir + "-learner",
		Replication: c.cfg.Replication,
		Logger:      c.log.With("component", "learner"),
	})
}

// Run runs the correlator until ctx is cancelled or it fails. It creates
// missing topics first.
func (c *Correlator) Run(ctx context.Context) error {
	if err := c.EnsureTopics(); err != nil {
		return err
	}
	proc, err := goka.NewProcessor(c.cfg.Brokers, c.Graph(), c.Options()...)
	if err != nil {
		return fmt.Errorf("correlator: new processor: %w", err)
	}
	return c.RunProcessor(ctx, proc)
}

// RunProcessor runs proc (built from Graph and Options) and its sweeps.
func (c *Correlator) RunProcessor(ctx context.Context, proc *goka.Processor) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sweeps := make(chan struct{})
	go func() {
		defer close(sweeps)
		c.sweepLoop(ctx, proc)
	}()
	err := proc.Run(ctx)
	stopped := ctx.Err() != nil
	cancel()
	<-sweeps
	if err != nil && !stopped && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("correlator: %w", err)
	}
	return nil
}

func (c *Correlator) sweepLoop(ctx context.Context, proc *goka.Processor) {
	began := time.Now()
	if err := proc.WaitForReadyContext(ctx); err != nil {
		return
	}
	c.log.Info("correlator ready", "took", time.Since(began).Round(time.Millisecond))
	tick := time.NewTicker(c.cfg.SweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := c.Sweep(ctx, proc); err != nil && ctx.Err() == nil {
			c.log.Warn("correlator sweep failed", "err", err)
		}
	}
}

// Sweep visits every trail once now.
func (c *Correlator) Sweep(ctx context.Context, proc *goka.Processor) error {
	deletedBefore := c.deleted.Load()
	n, err := proc.VisitAllWithStats(ctx, sweepVisitor, c.cfg.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("correlator: sweep: %w", err)
	}
	c.open.Store(n - int64(c.deleted.Load()-deletedBefore))
	return nil
}
