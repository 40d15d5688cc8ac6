package correlator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/processors/internal/gokaopts"
	"github.com/kaudit/kaudit/processors/learner"
)

func (c *Correlator) saramaConfig() *sarama.Config {
	sc := gokaopts.Sarama(c.cfg.Sarama)
	c.membership(sc)
	return sc
}

// membership applies the static membership and session settings.
func (c *Correlator) membership(sc *sarama.Config) {
	if c.cfg.SessionTimeout > 0 {
		sc.Consumer.Group.Session.Timeout = c.cfg.SessionTimeout
		sc.Consumer.Group.Heartbeat.Interval = c.cfg.SessionTimeout / 4
	}
	if c.cfg.InstanceID != "" {
		sc.Consumer.Group.InstanceId = c.cfg.InstanceID
		if !sc.Version.IsAtLeast(sarama.V2_3_0_0) {
			sc.Version = sarama.V2_3_0_0
		}
	}
}

func (c *Correlator) topicManagerConfig() *goka.TopicManagerConfig {
	return gokaopts.TopicManager(c.cfg.Replication)
}

// EnsureTopics creates the events, verdicts and dead-letter topics, the
// compacted expectations topic and the learner's table if they are missing.
// It warns when it creates topics with fewer than 3 replicas on a cluster
// of 3 or more brokers.
func (c *Correlator) EnsureTopics() error {
	tm, err := goka.NewTopicManager(c.cfg.Brokers, c.saramaConfig(), c.topicManagerConfig())
	if err != nil {
		return fmt.Errorf("correlator: topic manager: %w", err)
	}
	defer tm.Close()
	c.warnReplication()
	topics := []string{c.cfg.EventsTopic, c.cfg.VerdictsTopic, c.cfg.DLQTopic}
	if c.cfg.LagTopic != "-" {
		topics = append(topics, c.cfg.LagTopic)
	}
	for _, t := range topics {
		if err := ensure(func() error { return tm.EnsureStreamExists(t, c.cfg.Partitions) }); err != nil {
			return fmt.Errorf("correlator: ensure topic %s: %w", t, err)
		}
	}
	if err := ensure(func() error { return tm.EnsureTableExists(c.cfg.ExpectationsTopic, 1) }); err != nil {
		return fmt.Errorf("correlator: ensure topic %s: %w", c.cfg.ExpectationsTopic, err)
	}
	// The tables and the learner's loop, with the events topic's
	// partitions: the learner's table is looked up, so it must exist before
	// the correlator starts, and goka would create the others itself at
	// start — racing another instance starting at the same moment.
	parts, err := tm.Partitions(c.cfg.EventsTopic)
	if err != nil {
		return fmt.Errorf("correlator: partitions of %s: %w", c.cfg.EventsTopic, err)
	}
	for _, t := range []string{string(c.Table()), string(learner.Table(c.cfg.LearnerGroup))} {
		if err := ensure(func() error { return tm.EnsureTableExists(t, len(parts)) }); err != nil {
			return fmt.Errorf("correlator: ensure topic %s: %w", t, err)
		}
	}
	loop := c.cfg.LearnerGroup + "-loop" // goka's name for a group's loop topic
	if err := ensure(func() error { return tm.EnsureStreamExists(loop, len(parts)) }); err != nil {
		return fmt.Errorf("correlator: ensure topic %s: %w", loop, err)
	}
	return nil
}

// ensure runs an Ensure…Exists call again when it lost a race to create the
// topic with another instance starting at the same time (it then checks
// the topic the other one made).
func ensure(f func() error) error {
	err := f()
	if err != nil && (errors.Is(err, sarama.ErrTopicAlreadyExists) || strings.Contains(err.Error(), "already exists")) {
		return f()
	}
	return err
}

// warnReplication warns when topics are created with fewer replicas than a
// cluster of 3 or more brokers can hold.
func (c *Correlator) warnReplication() {
	if c.cfg.Replication >= 3 {
		return
	}
	cl, err := sarama.NewClient(c.cfg.Brokers, c.saramaConfig())
	if err != nil {
		return
	}
	defer cl.Close()
	if n := len(cl.Brokers()); n >= 3 {
		c.log.Warn("creating kaudit topics with fewer than 3 replicas on a cluster of 3 or more brokers: a broker failure can lose verdicts; set --replication 3",
			"replication", c.cfg.Replication, "brokers", n)
	}
}

// Options are the goka processor options the correlator runs with; tests
// append goka.WithTester.
func (c *Correlator) Options() []goka.ProcessorOption { return c.options(nil) }

// options are Options with the consumers and topic managers kept in
// clients (when not nil), for Run to close.
func (c *Correlator) options(clients *gokaopts.Clients) []goka.ProcessorOption {
	base := gokaopts.Sarama(c.cfg.Sarama)
	c.membership(base)
	opts := gokaopts.Options(gokaopts.Config{
		Base:        base,
		ClientOpts:  c.cfg.ClientOpts,
		StorageDir:  c.cfg.StorageDir,
		Replication: c.cfg.Replication,
		ClientID:    c.cfg.Group,
		Logger:      c.log,
		Clients:     clients,
	})
	return append(opts, goka.WithStorageBuilder(c.stores.builder()))
}

// Learner returns the learner that keeps, per topic, the groups seen
// consuming it (learned expectations) and the clients' drop reports (audit
// gaps), configured from the correlator's own settings. Run it beside the
// correlator: the correlator looks its table up.
func (c *Correlator) Learner() (*learner.Learner, error) {
	return learner.New(learner.Config{
		Brokers:     c.cfg.Brokers,
		Sarama:      c.cfg.Sarama,
		ClientOpts:  c.cfg.ClientOpts,
		Group:       c.cfg.LearnerGroup,
		EventsTopic: c.cfg.EventsTopic,
		StorageDir:  c.cfg.StorageDir + "-learner",
		Replication: c.cfg.Replication,
		Forget:      c.cfg.LearnForget,
		// A sighting every quarter warm-up at least, so "seen over the
		// whole warm-up" can be told apart from "seen once".
		Resolution: learnResolution(c.cfg.LearnWarmup),
		Logger:     c.log.With("component", "learner"),
	})
}

// output returns the verdict output, building the correlator's client if
// none was configured.
func (c *Correlator) output() (Output, error) {
	if c.out != nil {
		return c.out, nil
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(c.cfg.Brokers...),
		kgo.ClientID(c.cfg.Group),
		kgo.RecordPartitioner(audit.Partitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(2 * time.Millisecond),
		kgo.ProducerBatchCompression(kgo.SnappyCompression(), kgo.NoCompression()), // as gokaopts.ProducerBuilder
		kgo.RecordDeliveryTimeout(2 * time.Minute),
	}, c.cfg.ClientOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("correlator: verdicts client: %w", err)
	}
	c.ownedOut = cl
	c.out = cl
	return cl, nil
}

// Run runs the correlator until ctx is cancelled or it fails. It creates
// missing topics first.
func (c *Correlator) Run(ctx context.Context) error {
	if err := c.EnsureTopics(); err != nil {
		return err
	}
	// The lookup tables' views keep sarama clients goka never closes:
	// closed here once the processor has stopped.
	clients := new(gokaopts.Clients)
	defer func() {
		if err := clients.Close(); err != nil {
			c.log.Warn("correlator: closing the processor's clients", "err", err)
		}
	}()
	proc, err := goka.NewProcessor(c.cfg.Brokers, c.Graph(), c.options(clients)...)
	if err != nil {
		return fmt.Errorf("correlator: new processor: %w", err)
	}
	return c.RunProcessor(ctx, proc)
}

// RunProcessor runs proc (built from Graph and Options) and its sweeps. It
// returns nil when ctx ends, and an error when the processor stops by
// itself (with or without one).
func (c *Correlator) RunProcessor(ctx context.Context, proc *goka.Processor) error {
	if _, err := c.output(); err != nil {
		return err
	}
	defer c.closeOutput()
	c.procMu.Lock()
	c.proc = proc
	c.procMu.Unlock()
	defer func() {
		c.procMu.Lock()
		c.proc = nil
		c.procMu.Unlock()
	}()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	sweeps := make(chan struct{})
	go func() {
		defer close(sweeps)
		c.sweepLoop(runCtx, proc)
	}()
	lags := make(chan struct{})
	go func() {
		defer close(lags)
		c.lagLoop(runCtx, proc)
	}()
	err := proc.Run(runCtx)
	cancel()
	<-sweeps
	<-lags
	if ctx.Err() != nil {
		return nil // asked to stop
	}
	if err == nil {
		err = errors.New("processor stopped")
	}
	return fmt.Errorf("correlator: %w", err)
}

func (c *Correlator) closeOutput() {
	if c.ownedOut == nil {
		return
	}
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.ownedOut.Flush(fctx); err != nil {
		c.log.Warn("correlator: flushing verdicts at shutdown", "err", err)
	}
	c.ownedOut.Close()
	c.ownedOut, c.out = nil, c.cfg.Output
}

// Ready reports whether the correlator runs with every assigned partition
// recovered (the readiness check).
func (c *Correlator) Ready() error {
	c.procMu.Lock()
	proc := c.proc
	c.procMu.Unlock()
	if proc == nil {
		return errors.New("correlator not running")
	}
	if !proc.Recovered() {
		return errors.New("correlator recovering its table")
	}
	return nil
}

func (c *Correlator) sweepLoop(ctx context.Context, proc *goka.Processor) {
	began := time.Now()
	if err := proc.WaitForReadyContext(ctx); err != nil {
		return
	}
	c.log.Info("correlator ready", "took", time.Since(began).Round(time.Millisecond), "open_trails", c.Stats().OpenTrails)
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

// Sweep visits the trails due now: deadlines that passed are judged,
// verdicts of earlier sweeps are confirmed, trails that can no longer
// change are deleted.
func (c *Correlator) Sweep(ctx context.Context, proc *goka.Processor) error {
	now := c.cfg.Now().UnixNano()
	c.stores.sweepUntil.Store(now)
	defer c.stores.sweepUntil.Store(0)
	began := time.Now()
	visited, err := proc.VisitAllWithStats(ctx, sweepVisitor, now)
	if err != nil {
		return fmt.Errorf("correlator: sweep: %w", err)
	}
	took := time.Since(began)
	c.log.Debug("correlator sweep", "took", took, "visited", visited)
	c.sweeps.Add(1)
	c.sweepNs.Add(uint64(took))
	for ns := c.sweepMaxNs.Load(); uint64(took) > ns && !c.sweepMaxNs.CompareAndSwap(ns, uint64(took)); ns = c.sweepMaxNs.Load() {
	}
	c.metrics.sweep.Observe(took.Seconds())
	return nil
}

// OldestUnconsumed returns, per (topic, group), the acknowledgement time of
// the oldest message the group is expected to consume and has not (among
// the trails this instance holds).
func (c *Correlator) OldestUnconsumed() (map[[2]string]time.Time, error) {
	m := map[[2]string]int64{}
	var errs []error
	c.stores.each(func(st *tableStorage) {
		if err := st.oldestPending(m); err != nil {
			errs = append(errs, err)
		}
	})
	out := make(map[[2]string]time.Time, len(m))
	for k, ns := range m {
		out[k] = time.Unix(0, ns)
	}
	return out, errors.Join(errs...)
}

// learnResolution is how often the learner records that a group consumed a
// topic: a minute, or a quarter of a shorter warm-up.
func learnResolution(warmup time.Duration) time.Duration {
	if warmup > 0 && warmup/4 < time.Minute {
		return max(warmup/4, time.Millisecond)
	}
	return time.Minute
}

// lagLoop reports, at the start of every minute, what each expected group
// has not consumed (LagReport) to the lag topic.
func (c *Correlator) lagLoop(ctx context.Context, proc *goka.Processor) {
	if c.cfg.LagTopic == "-" {
		return
	}
	if err := proc.WaitForReadyContext(ctx); err != nil {
		return
	}
	for {
		now := time.Now()
		next := now.Truncate(time.Minute).Add(time.Minute)
		select {
		case <-ctx.Done():
			return
		case <-time.After(next.Sub(now)):
		}
		if err := c.ReportLag(ctx, next); err != nil && ctx.Err() == nil {
			c.log.Warn("correlator: lag report failed", "err", err)
		}
	}
}

// ReportLag writes one LagReport per (topic, group) with pending messages,
// for the minute starting at minute, to the lag topic.
func (c *Correlator) ReportLag(ctx context.Context, minute time.Time) error {
	stats := map[[2]string]pendingStat{}
	var errs []error
	c.stores.each(func(st *tableStorage) {
		if err := st.pendingStats(stats); err != nil {
			errs = append(errs, err)
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	now := c.cfg.Now()
	for k, s := range stats {
		r := audit.LagReport{
			Minute: minute.Unix(), Topic: k[0], Group: k[1], Instance: c.instance(),
			OldestAckNs: s.oldestAckNs, AgeMs: max(now.UnixNano()-s.oldestAckNs, 0) / 1e6, Pending: s.count,
		}
		b, err := json.Marshal(&r)
		if err != nil {
			return fmt.Errorf("correlator: lag report: %w", err)
		}
		c.out.Produce(ctx, &kgo.Record{Topic: c.cfg.LagTopic, Key: []byte(k[0] + "\x00" + k[1] + "\x00" + r.Instance), Value: b},
			func(_ *kgo.Record, err error) {
				if err != nil {
					c.log.Warn("correlator: lag report not written", "err", err)
				}
			})
	}
	return nil
}

// instance names this correlator in lag reports: its static member ID,
// or its group and state directory, with the host.
func (c *Correlator) instance() string {
	host, _ := os.Hostname()
	if c.cfg.InstanceID != "" {
		return c.cfg.InstanceID + "@" + host
	}
	// The state directory is the instance's own on its host (its Pebble
	// databases are locked) and stays across restarts, so a correlator
	// restarted within a minute reports under the same name.
	return fmt.Sprintf("%s@%s:%s", c.cfg.Group, host, c.cfg.StorageDir)
}
