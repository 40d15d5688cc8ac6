package correlator

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/processors/expectations"
	"github.com/kaudit/kaudit/processors/internal/gokaopts"
	"github.com/kaudit/kaudit/processors/learner"
)

// Defaults of Config.
const (
	DefaultGroup           = "kaudit-correlator"
	DefaultPartitions      = 6
	DefaultDeadline        = 5 * time.Minute
	DefaultGrace           = 15 * time.Minute
	DefaultDuplicateWindow = 5 * time.Minute
	DefaultSweepInterval   = time.Second
	DefaultClockSkew       = 5 * time.Minute
	DefaultMaxEventAge     = 7 * 24 * time.Hour
	DefaultConfirmAfter    = 10 * time.Second
	DefaultRecheckAfter    = time.Minute
)

// maxIDLen bounds the correlation IDs the correlator keeps a trail for: a
// longer record key is dead-lettered (kaudit's own IDs have 36 bytes).
const maxIDLen = 256

// maxDLQValue bounds the value copied into a dead-letter record; a longer
// one is cut, and a header says so.
const maxDLQValue = 256 << 10

// sweepVisitor is the name of the visitor that sweeps due trails.
const sweepVisitor = "sweep"

// Config configures a Correlator. Zero fields take the defaults; negative
// durations and counts are refused by New.
type Config struct {
	Brokers []string
	// Sarama is the base client configuration of goka's consumers (TLS,
	// SASL, version); nil means goka.DefaultConfig(). It is copied, never
	// modified. ClientOpts configure the franz-go clients — goka's
	// producer (table changelog) and the one that writes the verdicts and
	// dead letters — the same way (TLS, SASL).
	Sarama     *sarama.Config
	ClientOpts []kgo.Opt
	// Output replaces that client (tests).
	Output Output

	Group string
	// InstanceID enables static group membership (KIP-345): a correlator
	// restarted with the same ID takes its partitions back without a
	// rebalance. SessionTimeout is how long a dead instance's partitions
	// wait before others take them (default sarama's 10s).
	InstanceID     string
	SessionTimeout time.Duration
	EventsTopic    string
	VerdictsTopic  string
	DLQTopic       string
	// LagTopic receives the per-minute LagReports ("-": none).
	LagTopic string
	// Partitions and Replication are used when the correlator creates
	// missing topics. The events topic decides the table's partitions.
	Partitions  int
	Replication int

	// StorageDir holds the local copy of the group table.
	StorageDir string
	// DefaultDeadline is the delivery deadline of topics whose expectation
	// sets none (and of topics without expectations, for closing trails).
	DefaultDeadline time.Duration
	// Grace is how long a message with a loss is kept after its deadline,
	// to catch late consumes.
	Grace time.Duration
	// DuplicateWindow is how long a message every expected group consumed
	// is kept after its last event, to catch redeliveries.
	DuplicateWindow time.Duration
	// SweepInterval is how often the due trails are swept (deadlines are
	// decided at most this late).
	SweepInterval time.Duration
	// ClockSkew and MaxEventAge bound the client event times used for
	// deadlines and deletion (see the package doc).
	ClockSkew   time.Duration
	MaxEventAge time.Duration
	// ConfirmAfter is when a verdict decided by a sweep is checked for its
	// acknowledgement; RecheckAfter when a LOST verdict is judged again for
	// audit gaps.
	ConfirmAfter time.Duration
	RecheckAfter time.Duration

	// Expectations are declared expectations (e.g. from a file); the
	// expectations topic adds to them and wins for the topics it names.
	Expectations []*expectations.Expectation
	// ExpectationsTopic is the compacted topic of declared expectations,
	// keyed by topic ("kaudit expect set" writes it).
	ExpectationsTopic string
	// LearnWarmup enables learned expectations: a group seen consuming a
	// topic over a whole warm-up becomes expected for it. Zero disables
	// learning. LearnForget: a learned group silent this long is no longer
	// expected (default 3 warm-ups).
	LearnWarmup time.Duration
	LearnForget time.Duration
	// LearnerGroup is the learner's goka group (its table is looked up).
	LearnerGroup string

	Logger *slog.Logger
	// Now is the correlator's clock; nil means time.Now.
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

// validate refuses values that cannot be meant.
func (c *Config) validate() error {
	var errs []error
	for name, d := range map[string]time.Duration{
		"default deadline": c.DefaultDeadline, "grace": c.Grace, "duplicate window": c.DuplicateWindow,
		"sweep interval": c.SweepInterval, "clock skew": c.ClockSkew, "max event age": c.MaxEventAge,
		"confirm after": c.ConfirmAfter, "recheck after": c.RecheckAfter, "learn warm-up": c.LearnWarmup,
		"learn forget": c.LearnForget,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s %v is negative", name, d))
		}
	}
	if c.Partitions < 0 {
		errs = append(errs, fmt.Errorf("partitions %d is negative", c.Partitions))
	}
	if c.Replication < 0 {
		errs = append(errs, fmt.Errorf("replication %d is negative", c.Replication))
	}
	if len(c.Brokers) == 0 && c.Output == nil {
		errs = append(errs, errors.New("no brokers"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("correlator: %w", err)
	}
	return nil
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
	if c.LagTopic == "" {
		c.LagTopic = audit.DefaultLagTopic
	}
	if c.ExpectationsTopic == "" {
		c.ExpectationsTopic = audit.DefaultExpectationsTopic
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.Replication == 0 {
		c.Replication = 1
	}
	if c.StorageDir == "" {
		c.StorageDir = filepath.Join(os.TempDir(), "kaudit-correlator")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.DefaultDeadline, DefaultDeadline)
	def(&c.Grace, DefaultGrace)
	def(&c.DuplicateWindow, DefaultDuplicateWindow)
	def(&c.SweepInterval, DefaultSweepInterval)
	def(&c.ClockSkew, DefaultClockSkew)
	def(&c.MaxEventAge, DefaultMaxEventAge)
	def(&c.ConfirmAfter, DefaultConfirmAfter)
	def(&c.RecheckAfter, DefaultRecheckAfter)
	def(&c.LearnForget, 3*c.LearnWarmup)
	if c.LearnerGroup == "" {
		c.LearnerGroup = learner.DefaultGroup
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
	Events     uint64        // audit events folded into trails
	Repeats    uint64        // events already in their trail (replays), whose verdicts were written again
	Verdicts   uint64        // verdicts written (first writes; re-writes are not counted)
	Rewritten  uint64        // verdicts written again (repeats, unconfirmed sweep verdicts)
	DeadLetter uint64        // input records sent to the dead-letter topic
	Dropped    uint64        // events not folded because a trail was full (maxHops, maxGroups)
	Clamped    uint64        // events whose time was clamped for deadlines
	Deleted    uint64        // trails deleted by sweeps
	Swept      uint64        // trails visited by sweeps
	Sweeps     uint64        // sweeps done
	SweepTime  time.Duration // their time, all together
	SweepMax   time.Duration // the longest
	OutDropped uint64        // verdicts and dead letters Kafka refused for good (too large, not authorized), dropped
	OpenTrails int64         // trails in the local table
}

// Correlator joins audit events into trails and emits verdicts.
type Correlator struct {
	cfg Config
	log *slog.Logger
	// learnerTable is the learner's table name (built once: it is looked
	// up for every event).
	learnerTable goka.Table

	out      Output
	ownedOut *kgo.Client
	gates    gates
	acks     acks
	stores   *storages
	trails   *handoffCodec
	metrics  *metrics

	events, repeats, verdicts, rewritten, dead, dropped, clamped, deleted, swept, outDropped atomic.Uint64
	sweeps, sweepNs, sweepMaxNs                                                              atomic.Uint64

	procMu sync.Mutex
	proc   *goka.Processor

	policiesMu sync.Mutex
	policies   map[string]cachedPolicy
}

// New returns a correlator for cfg.
func New(cfg Config) (*Correlator, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	c := &Correlator{cfg: cfg, log: cfg.Logger, out: cfg.Output, metrics: newMetrics(), trails: newHandoffCodec(),
		learnerTable: learner.Table(cfg.LearnerGroup)}
	c.stores = newStorages(cfg.StorageDir, string(c.Table()))
	c.stores.log = cfg.Logger
	return c, nil
}

// Stats returns the current counters.
func (c *Correlator) Stats() Stats {
	var open int64
	c.stores.each(func(st *tableStorage) { open += st.trails.Load() })
	return Stats{
		Events:     c.events.Load(),
		Repeats:    c.repeats.Load(),
		Verdicts:   c.verdicts.Load(),
		Rewritten:  c.rewritten.Load(),
		DeadLetter: c.dead.Load(),
		Dropped:    c.dropped.Load(),
		Clamped:    c.clamped.Load(),
		Deleted:    c.deleted.Load(),
		Swept:      c.swept.Load(),
		Sweeps:     c.sweeps.Load(),
		SweepTime:  time.Duration(c.sweepNs.Load()),
		SweepMax:   time.Duration(c.sweepMaxNs.Load()),
		OutDropped: c.outDropped.Load(),
		OpenTrails: open,
	}
}

// Table is the name of the correlator's group table topic.
func (c *Correlator) Table() goka.Table { return goka.GroupTable(goka.Group(c.cfg.Group)) }

// Graph is the correlator's processor graph. Verdicts and dead letters are
// not goka outputs: they are written by the correlator's own client (see
// output.go).
func (c *Correlator) Graph() *goka.GroupGraph {
	return goka.DefineGroup(goka.Group(c.cfg.Group),
		goka.Input(goka.Stream(c.cfg.EventsTopic), eventInputCodec{}, c.onEvent),
		goka.Visitor(sweepVisitor, c.onSweep),
		goka.Persist(c.trails),
		goka.Lookup(goka.Table(c.cfg.ExpectationsTopic), expectations.Codec{}),
		goka.Lookup(c.learnerTable, learner.Codec{}),
	)
}

// policyTTL is how long a topic's policy (its expectations, read from two
// lookup tables whose values are JSON) is reused: an expectation set with
// kaudit expect takes effect at most this late.
const policyTTL = time.Second

type cachedPolicy struct {
	p  policy
	at time.Time
}

// policyFor returns what the correlator knows about topic now, from a cache
// refreshed every policyTTL.
func (c *Correlator) policyFor(ctx goka.Context, topic string) policy {
	now := time.Now()
	c.policiesMu.Lock()
	cp, ok := c.policies[topic]
	c.policiesMu.Unlock()
	if ok && now.Sub(cp.at) < policyTTL {
		return cp.p
	}
	p := c.readPolicy(ctx, topic)
	c.policiesMu.Lock()
	if c.policies == nil || len(c.policies) > 100_000 {
		c.policies = map[string]cachedPolicy{}
	}
	c.policies[topic] = cachedPolicy{p: p, at: now}
	c.policiesMu.Unlock()
	return p
}

// readPolicy reads the policy of topic from the lookup tables.
func (c *Correlator) readPolicy(ctx goka.Context, topic string) policy {
	p := policy{deadline: c.cfg.DefaultDeadline, warmup: c.cfg.LearnWarmup, forget: c.cfg.LearnForget}
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
		p.learned, _ = ctx.Lookup(c.learnerTable, topic).(*learner.Learned)
	}
	return p
}

// timing returns the judgement context at now, with the audit gaps read
// from the learner's table through ctx. One allocation per event: the
// lookups are made on the first gap question (LOST is rare).
func (c *Correlator) timing(ctx goka.Context, now int64) *timing {
	et := &eventTiming{
		timing: timing{
			nowNs:        now,
			grace:        int64(c.cfg.Grace),
			dupWindow:    int64(c.cfg.DuplicateWindow),
			confirmAfter: int64(c.cfg.ConfirmAfter),
			recheckAfter: int64(c.cfg.RecheckAfter),
		},
		learned: learnedGaps{ctx: ctx, table: c.learnerTable},
	}
	et.gaps = &et.learned
	return &et.timing
}

// eventTiming is a timing and the gap source it asks, in one allocation.
type eventTiming struct {
	timing
	learned learnedGaps
}

// learnedGaps answers gap questions from the learner's table, looking each
// topic up once.
type learnedGaps struct {
	ctx     goka.Context
	table   goka.Table
	lookups map[string]*learner.Learned
}

func (l *learnedGaps) learned(topic string) *learner.Learned {
	v, ok := l.lookups[topic]
	if !ok {
		if l.lookups == nil {
			l.lookups = map[string]*learner.Learned{}
		}
		v, _ = l.ctx.Lookup(l.table, topic).(*learner.Learned)
		l.lookups[topic] = v
	}
	return v
}

func (l *learnedGaps) gap(topic, group string, kind codecs.Kind, from, to int64) bool {
	return gapIn(l.learned(topic), group, kind, from, to) || gapIn(l.learned(codecs.AnyTopic), codecs.AnyTopic, kind, from, to) ||
		gapIn(l.learned(codecs.AnyTopic), group, kind, from, to)
}

// clampTime returns the time used for deadlines and deletion for an event
// time: t within [now-maxAge, now+skew]. ok is false for an unusable time.
func (c *Correlator) clampTime(t, now int64) (eff int64, clamped, ok bool) {
	if t <= 0 {
		return 0, false, false
	}
	lo, hi := now-int64(c.cfg.MaxEventAge), now+int64(c.cfg.ClockSkew)
	switch {
	case t > hi:
		return hi, true, true
	case t < lo:
		return lo, true, true
	}
	return t, false, true
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
	switch {
	case len(ctx.Key()) > maxIDLen:
		c.deadLetter(ctx, in.raw, fmt.Errorf("record key of %d bytes: correlation IDs longer than %d bytes are not audited", len(ctx.Key()), maxIDLen))
		return
	case e.CorrelationID != ctx.Key():
		c.deadLetter(ctx, in.raw, fmt.Errorf("record key %.64q is not the event's correlation_id %.64q", ctx.Key(), e.CorrelationID))
		return
	case e.Kind == codecs.KindDrops:
		// Drop reports are the learner's (it keeps them per topic); the
		// correlator only counts them.
		c.metrics.drops(e)
		c.events.Add(1)
		return
	}
	now := c.cfg.Now().UnixNano()
	eff, clamped, usable := c.clampTime(e.TimeNs(), now)
	if !usable {
		c.deadLetter(ctx, in.raw, fmt.Errorf("%s event without a usable time (%d)", e.Kind, e.TimeNs()))
		return
	}
	if clamped {
		c.clamped.Add(1)
	}
	t, _ := ctx.Value().(*Trail)
	if t == nil {
		t = new(Trail)
	}
	tm := c.timing(ctx, now)
	res := t.Apply(e, c.policyFor(ctx, e.Topic), eff, tm)
	if res.dropped {
		c.dropped.Add(1)
		c.log.Warn("correlator: trail full, event not folded", "correlation_id", t.CorrelationID, "topic", e.Topic, "group", e.Group)
		return
	}
	t.refreshDue(tm)
	// Written even for a repeat: the local store may be ahead of the table
	// topic after a crash, and the replay is what puts the table right.
	// t is not touched after this (the table's codec hands it to the next
	// event of the message).
	ctx.SetValue(t)
	c.events.Add(1)
	if res.repeat {
		c.repeats.Add(1)
		c.rewritten.Add(uint64(len(res.verdicts)))
	} else {
		c.verdicts.Add(uint64(len(res.verdicts)))
		c.metrics.observe(res.verdicts)
	}
	if len(res.verdicts) > 0 {
		var buf [4]*kgo.Record
		recs := buf[:0]
		for i := range res.verdicts {
			recs = append(recs, c.verdictRecord(&res.verdicts[i]))
		}
		c.produceGated(ctx, recs)
	}
}

// onSweep is the visitor run for every due trail; meta is the sweep's time
// in Unix nanoseconds.
func (c *Correlator) onSweep(ctx goka.Context, meta any) {
	now, _ := meta.(int64)
	t, _ := ctx.Value().(*Trail)
	if t == nil || t.NextDueNs > now {
		return
	}
	c.swept.Add(1)
	tm := c.timing(ctx, now)
	tm.acked = func(topic, group string, seq uint64) bool {
		return c.acks.take(ackKey{id: t.CorrelationID, topic: topic, group: group, seq: seq})
	}
	before := make(map[[2]string]codecs.Status)
	for i := range t.Hops {
		for _, g := range t.Hops[i].Groups {
			before[[2]string{t.Hops[i].Topic, g.Group}] = g.Status
		}
	}
	verdicts, changed, done := t.Sweep(tm)
	// Store the decision first, then write it (see the package doc).
	switch {
	case done:
		ctx.Delete()
		c.deleted.Add(1)
	case changed:
		ctx.SetValue(t) // t is not changed after this (see onEvent)
	}
	if len(verdicts) == 0 {
		return
	}
	recs := make([]*kgo.Record, len(verdicts))
	keys := make([]ackKey, len(verdicts))
	var fresh []codecs.Verdict
	for i := range verdicts {
		v := &verdicts[i]
		recs[i] = c.verdictRecord(v)
		keys[i] = ackKey{id: v.CorrelationID, topic: v.Topic, group: v.Group, seq: v.Seq}
		if before[[2]string{v.Topic, v.Group}] != v.Status {
			fresh = append(fresh, *v)
		}
	}
	c.verdicts.Add(uint64(len(fresh)))
	c.rewritten.Add(uint64(len(verdicts) - len(fresh)))
	c.metrics.observe(fresh)
	c.produceSwept(recs, keys)
}

func (c *Correlator) verdictRecord(v *codecs.Verdict) *kgo.Record {
	return &kgo.Record{
		Topic: c.cfg.VerdictsTopic,
		Key:   gokaopts.KeyBytes(v.CorrelationID),
		Value: codecs.AppendVerdict(nil, v),
	}
}

// deadLetter writes the input record to the dead-letter topic with the
// reason; a key or value too large to copy whole is cut, and the header
// kaudit.truncated says how long the original was.
func (c *Correlator) deadLetter(ctx goka.Context, raw []byte, reason error) {
	c.dead.Add(1)
	c.log.Warn("audit event sent to dead-letter topic",
		"topic", ctx.Topic(), "partition", ctx.Partition(), "offset", ctx.Offset(), "reason", reason)
	key, value := []byte(ctx.Key()), raw
	var truncated []string
	if len(key) > maxIDLen {
		truncated = append(truncated, fmt.Sprintf("key %d bytes", len(key)))
		key = key[:maxIDLen]
	}
	if len(value) > maxDLQValue {
		truncated = append(truncated, fmt.Sprintf("value %d bytes", len(value)))
		value = value[:maxDLQValue]
	}
	headers := audit.DeadLetterHeaders(string(ctx.Topic()), ctx.Partition(), ctx.Offset(), "correlator", reason)
	if len(truncated) > 0 {
		headers = append(headers, kgo.RecordHeader{Key: "kaudit.truncated", Value: fmt.Appendf(nil, "%v", truncated)})
	}
	if value == nil {
		value = []byte{}
	}
	c.produceGated(ctx, []*kgo.Record{{Topic: c.cfg.DLQTopic, Key: key, Value: value, Headers: headers}})
}
