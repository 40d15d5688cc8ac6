package emitter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
)

// Defaults of the Config fields left zero.
const (
	DefaultQueueSize  = 65536
	DefaultQueueBytes = 64 << 20
	DefaultLinger     = 5 * time.Millisecond
	DefaultLogEvery   = 10 * time.Second
)

// maxPooledValue caps the encoded size of a record kept for reuse, so one
// event with a huge error text does not pin a large buffer forever.
const maxPooledValue = 4 << 10

// promiseGrace bounds the wait, after closing an owned client, for the
// promises of the records the close failed.
const promiseGrace = 5 * time.Second

// Config configures an Emitter. Exactly one of Brokers and Client is
// required; every other field has a default.
type Config struct {
	// Brokers are the seed brokers of the audit cluster; the Emitter then
	// builds, owns and closes its own client. The audit cluster may differ
	// from the application's.
	Brokers []string
	// ClientOpts are extra options for the client built from Brokers
	// (TLS, SASL, client ID, delivery timeout...). They are applied after
	// the Emitter's own (seed brokers, partitioner, linger), so they win.
	ClientOpts []kgo.Opt
	// Client is an existing client to produce with instead of Brokers. The
	// Emitter never closes it, but Close flushes it (all of its records). It must have been built with
	// kgo.RecordPartitioner(audit.Partitioner()) (see Partitioner for why), and
	// must not carry audit hooks itself.
	Client *kgo.Client

	// Topic is the audit topic; audit.DefaultEventsTopic if empty.
	Topic string
	// QueueSize is how many events may wait for the worker; DefaultQueueSize
	// if zero.
	QueueSize int
	// QueueBytes bounds the memory of the events accepted and not yet
	// acknowledged (waiting in the queue or in flight), estimated from
	// their strings; an event that would exceed it is dropped.
	// DefaultQueueBytes if zero.
	QueueBytes int
	// EnqueueTimeout is how long Emit may wait for room in a full queue. Zero
	// (the default) means Emit never blocks: an event that does not fit is
	// dropped and counted.
	EnqueueTimeout time.Duration
	// Linger is the producer linger of the client built from Brokers;
	// DefaultLinger if zero, no linger if negative.
	Linger time.Duration
	// MaxDropWindows bounds the drop counts kept until they are reported
	// (one per client, topic, group, kind and minute);
	// DefaultMaxDropWindows if zero. Drops of further keys are folded into
	// one catch-all report per kind (topic and group codecs.AnyTopic).
	MaxDropWindows int

	// Logger receives the Emitter's failure logs; nothing is logged if nil.
	Logger *slog.Logger
	// LogEvery is the least time between two logs of the same kind of
	// failure (queue full, produce failed); DefaultLogEvery if zero.
	LogEvery time.Duration
	// Now is the clock that dates drops of events without a time of their
	// own; time.Now if nil.
	Now func() time.Time
}

// Emitter sends audit events to the audit topic asynchronously. It is safe
// for concurrent use; one Emitter can serve any number of audited clients.
type Emitter struct {
	cl       *kgo.Client
	owned    bool
	topic    string
	timeout  time.Duration
	maxBytes int64
	log      *slog.Logger
	now      func() time.Time

	// mu guards closed: Emit holds it shared while it enqueues, Close
	// exclusively while it flips closed, so no event slips into the queue
	// after the worker drained it for the last time.
	mu     sync.RWMutex
	closed bool

	queue      chan *codecs.Event
	stop       chan struct{}
	workerDone chan struct{}
	ctx        context.Context // produce context, canceled when Close gives up
	cancel     context.CancelFunc
	promise    func(*kgo.Record, error)
	recs       sync.Pool // *pooled

	drops      *dropTable
	dropsReady chan struct{} // poked when drops are counted
	nextReport time.Time     // worker only
	reportT    *time.Timer   // worker only: fires at nextReport

	closeOnce sync.Once
	closeErr  error

	enqueued     atomic.Uint64
	dropped      atomic.Uint64
	pendingBytes atomic.Int64 // estimated bytes of the pending events
	_            [40]byte     // keep the application-side counters off the worker's line
	sent         atomic.Uint64
	failed       atomic.Uint64
	pending      atomic.Int64 // accepted, not yet sent or failed
	reports      atomic.Uint64
	reported     atomic.Uint64

	dropLog logLimiter
	failLog logLimiter
}

// pooled is a record the Emitter reuses, with its context: the Emitter's
// produce context plus the event the record carries, so that the promise
// knows what failed.
type pooled struct {
	rec kgo.Record
	ctx recordCtx
}

type recordCtx struct {
	context.Context
	p  *pooled
	ev *codecs.Event
}

// New starts an Emitter. It fails if the configuration is invalid or the
// client cannot be built; it does not wait for the audit cluster to be
// reachable (produce failures are counted and logged, never returned).
func New(cfg Config) (*Emitter, error) {
	switch {
	case cfg.Client == nil && len(cfg.Brokers) == 0:
		return nil, errors.New("emitter: need Config.Brokers or Config.Client")
	case cfg.Client != nil && len(cfg.Brokers) > 0:
		return nil, errors.New("emitter: Config.Brokers and Config.Client are exclusive")
	case cfg.Client != nil && len(cfg.ClientOpts) > 0:
		return nil, errors.New("emitter: Config.ClientOpts apply only with Config.Brokers")
	case cfg.QueueSize < 0:
		return nil, fmt.Errorf("emitter: negative QueueSize %d", cfg.QueueSize)
	case cfg.QueueBytes < 0:
		return nil, fmt.Errorf("emitter: negative QueueBytes %d", cfg.QueueBytes)
	case cfg.MaxDropWindows < 0:
		return nil, fmt.Errorf("emitter: negative MaxDropWindows %d", cfg.MaxDropWindows)
	case cfg.EnqueueTimeout < 0:
		return nil, fmt.Errorf("emitter: negative EnqueueTimeout %v", cfg.EnqueueTimeout)
	}
	if cfg.Topic == "" {
		cfg.Topic = audit.DefaultEventsTopic
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.QueueBytes == 0 {
		cfg.QueueBytes = DefaultQueueBytes
	}
	if cfg.MaxDropWindows == 0 {
		cfg.MaxDropWindows = DefaultMaxDropWindows
	}
	if cfg.Linger == 0 {
		cfg.Linger = DefaultLinger
	} else if cfg.Linger < 0 {
		cfg.Linger = 0
	}
	if cfg.LogEvery <= 0 {
		cfg.LogEvery = DefaultLogEvery
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}

	e := &Emitter{
		cl:         cfg.Client,
		topic:      cfg.Topic,
		timeout:    cfg.EnqueueTimeout,
		maxBytes:   int64(cfg.QueueBytes),
		log:        cfg.Logger.With("component", "kaudit.emitter", "topic", cfg.Topic),
		now:        cfg.Now,
		queue:      make(chan *codecs.Event, cfg.QueueSize),
		stop:       make(chan struct{}),
		workerDone: make(chan struct{}),
		drops:      newDropTable(cfg.MaxDropWindows),
		dropsReady: make(chan struct{}, 1),
		reportT:    time.NewTimer(time.Hour),
	}
	e.reportT.Stop()
	e.dropLog.every = cfg.LogEvery
	e.failLog.every = cfg.LogEvery
	if e.cl == nil {
		opts := append([]kgo.Opt{
			kgo.SeedBrokers(cfg.Brokers...),
			kgo.RecordPartitioner(audit.Partitioner()),
			kgo.ProducerLinger(cfg.Linger),
			kgo.ClientID("kaudit-emitter"),
		}, cfg.ClientOpts...)
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return nil, fmt.Errorf("emitter: new client for %v: %w", cfg.Brokers, err)
		}
		e.cl, e.owned = cl, true
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.promise = e.done
	go e.work()
	return e, nil
}

// Topic is the audit topic the Emitter writes to.
func (e *Emitter) Topic() string { return e.topic }

// Emit queues ev for sending and reports whether it was accepted. The
// Emitter owns ev from then on: the caller must not modify it. Emit never
// blocks unless Config.EnqueueTimeout is set, and then at most that long;
// an event that finds the queue full (by count or bytes), or the Emitter
// closed, is dropped and counted in Stats().Dropped, and, unless the
// Emitter is closed, reported in a drop report. A nil event is refused
// and not counted.
func (e *Emitter) Emit(ev *codecs.Event) bool {
	if ev == nil {
		return false
	}
	e.mu.RLock()
	closed := e.closed
	ok := !closed && e.enqueue(ev)
	e.mu.RUnlock()
	if ok {
		return true
	}
	n := e.dropped.Add(1)
	if !closed {
		e.countDrops(ev, 1)
	}
	if allow, suppressed := e.dropLog.allow(time.Now()); allow {
		e.log.Warn("kaudit: audit queue full or closed, dropping audit events",
			"dropped_total", n, "dropped_since_last_log", suppressed+1, "queue_size", cap(e.queue))
	}
	return false
}

// AddDrops counts n events like ev that the caller dropped before they
// reached Emit (a buffer of its own was full), so that they are reported
// like the Emitter's own drops; they count in Stats().Dropped. ev is read,
// not kept.
func (e *Emitter) AddDrops(ev *codecs.Event, n uint64) {
	if ev == nil || n == 0 {
		return
	}
	e.dropped.Add(n)
	e.mu.RLock()
	closed := e.closed
	e.mu.RUnlock()
	if !closed {
		e.countDrops(ev, n)
	}
}

// countDrops adds dropped events to the drop table and wakes the worker.
func (e *Emitter) countDrops(ev *codecs.Event, n uint64) {
	if !e.drops.add(ev, n, e.now().UnixNano()) {
		return
	}
	select {
	case e.dropsReady <- struct{}{}:
	default:
	}
}

// eventBytes estimates the memory an event holds while it waits: the
// struct, its strings and its encoded record.
func eventBytes(ev *codecs.Event) int64 {
	s := len(ev.CorrelationID) + len(ev.Topic) + len(ev.ClientID) + len(ev.Group) +
		len(ev.Host) + len(ev.Source) + len(ev.Error)
	return int64(256 + 2*s)
}

func (e *Emitter) enqueue(ev *codecs.Event) bool {
	size := eventBytes(ev)
	if e.pendingBytes.Add(size) > e.maxBytes {
		e.pendingBytes.Add(-size)
		return false
	}
	e.pending.Add(1)
	select {
	case e.queue <- ev:
		e.enqueued.Add(1)
		return true
	default:
	}
	if e.timeout > 0 {
		t := time.NewTimer(e.timeout)
		defer t.Stop()
		select {
		case e.queue <- ev:
			e.enqueued.Add(1)
			return true
		case <-t.C:
		}
	}
	e.pending.Add(-1)
	e.pendingBytes.Add(-size)
	return false
}

// work moves events from the queue into the client until Close stops it,
// then drains what is left and reports the drops, and interleaves drop
// reports whenever drops are counted (at most once per dropReportEvery).
func (e *Emitter) work() {
	defer close(e.workerDone)
	for {
		select {
		case ev := <-e.queue:
			e.produce(ev)
			// Take whatever else is queued without going back to the
			// multi-way select: a plain receive is cheaper, and events
			// arrive in bursts.
			for i := 1; ; i++ {
				select {
				case ev := <-e.queue:
					e.produce(ev)
					if i%1024 == 0 && e.drops.count() > 0 {
						e.reportDrops(false)
					}
					continue
				default:
				}
				break
			}
		case <-e.dropsReady:
		case <-e.reportT.C:
		case <-e.stop:
			for {
				select {
				case ev := <-e.queue:
					e.produce(ev)
					continue
				default:
				}
				break
			}
			e.reportDrops(true)
			return
		}
		if e.drops.count() > 0 {
			e.reportDrops(false)
		}
	}
}

// reportDrops produces a drop report for every count in the drop table,
// unless the last round was less than dropReportEvery ago (then it arms
// the timer), or final.
func (e *Emitter) reportDrops(final bool) {
	now := time.Now()
	if !final && now.Before(e.nextReport) {
		e.reportT.Reset(e.nextReport.Sub(now))
		return
	}
	e.nextReport = now.Add(dropReportEvery)
	for _, ev := range e.drops.take() {
		e.send(ev)
	}
}

// produce sends one event taken from the queue.
func (e *Emitter) produce(ev *codecs.Event) {
	if e.ctx.Err() != nil {
		// Close gave up: account for the event without producing it.
		e.fail(ev, e.ctx.Err())
		return
	}
	e.send(ev)
}

// send hands ev (an accepted event or a drop report) to the client.
func (e *Emitter) send(ev *codecs.Event) {
	p, _ := e.recs.Get().(*pooled)
	if p == nil {
		// The context is set once: franz-go may read it from other
		// goroutines even after the promise.
		p = &pooled{ctx: recordCtx{Context: e.ctx}}
		p.ctx.p = p
	}
	p.ctx.ev = ev
	r := &p.rec
	*r = kgo.Record{
		Topic:   e.topic,
		Key:     append(r.Key[:0], ev.CorrelationID...),
		Value:   codecs.AppendEvent(r.Value[:0], ev),
		Context: &p.ctx,
	}
	// The record's timestamp is the event's own time (what it audits
	// happened then), which also spares the client a clock read per
	// record; an event without any time gets the client's (now).
	if ns := max(ev.SendNs, ev.AckNs, ev.ConsumeNs, ev.WindowEndNs); ns > 0 {
		r.Timestamp = time.Unix(0, ns)
	}
	// Produce blocks only when the client buffers its maximum; the worker
	// then stops draining, the queue fills and Emit drops: the application
	// is never slowed down.
	e.cl.Produce(e.ctx, r, e.promise)
}

// done is the promise of every audit record.
func (e *Emitter) done(r *kgo.Record, err error) {
	rc, ok := r.Context.(*recordCtx)
	if !ok {
		return // not ours (a shared Config.Client's other records never get this promise)
	}
	ev := rc.ev
	switch {
	case ev.Kind == codecs.KindDrops && err != nil:
		e.countDrops(ev, uint64(ev.Dropped)) // counted again, reported later
	case ev.Kind == codecs.KindDrops:
		e.reports.Add(1)
		e.reported.Add(uint64(ev.Dropped))
	case err != nil:
		e.fail(ev, err)
	default:
		e.sent.Add(1)
		e.pending.Add(-1)
		e.pendingBytes.Add(-eventBytes(ev))
	}
	p := rc.p
	p.ctx.ev = nil
	if cap(r.Value) <= maxPooledValue {
		*r = kgo.Record{Key: r.Key[:0], Value: r.Value[:0]}
		e.recs.Put(p)
	}
}

// fail accounts for an accepted event that will never be sent.
func (e *Emitter) fail(ev *codecs.Event, err error) {
	n := e.failed.Add(1)
	e.pending.Add(-1)
	e.pendingBytes.Add(-eventBytes(ev))
	if e.ctx.Err() == nil {
		e.countDrops(ev, 1)
	}
	if allow, suppressed := e.failLog.allow(time.Now()); allow {
		e.log.Error("kaudit: producing audit event failed",
			"error", err, "correlation_id", ev.CorrelationID,
			"failed_total", n, "failed_since_last_log", suppressed+1)
	}
}

// Close stops accepting events, sends what is queued and a last round of
// drop reports, and waits for them to be acknowledged, within ctx; then it
// closes the client if the Emitter built it. It returns an error if some
// accepted events could not be delivered in time (they are counted as
// failed). Close is idempotent; later calls return the first call's
// result.
func (e *Emitter) Close(ctx context.Context) error {
	e.closeOnce.Do(func() { e.closeErr = e.close(ctx) })
	return e.closeErr
}

func (e *Emitter) close(ctx context.Context) error {
	failedBefore := e.failed.Load()
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	close(e.stop)

	var err error
	select {
	case <-e.workerDone:
		err = e.cl.Flush(ctx)
		if err == nil && e.drops.count() > 0 {
			// Records failed during the flush: one more round of reports.
			for _, ev := range e.drops.take() {
				e.send(ev)
			}
			err = e.cl.Flush(ctx)
		}
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		// Fail what is still in the client (records with a canceled
		// context are failed as soon as that is safe) and what the worker
		// has not taken yet.
		e.cancel()
		<-e.workerDone
	}
	if e.owned {
		e.cl.Close() // fails whatever is still buffered...
		// ...but calls those promises asynchronously: wait for them, so the
		// counters are final when Close returns. Flush on a closed client
		// only waits for the buffered count to reach zero.
		wctx, wcancel := context.WithTimeout(context.Background(), promiseGrace)
		_ = e.cl.Flush(wctx)
		wcancel()
	}
	e.cancel()
	if err != nil {
		lost := e.failed.Load() - failedBefore + uint64(max(e.pending.Load(), 0))
		return fmt.Errorf("emitter: close: %d audit events undelivered: %w", lost, err)
	}
	return nil
}
