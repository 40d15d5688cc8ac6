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
	DefaultQueueSize = 65536
	DefaultLinger    = 5 * time.Millisecond
	DefaultLogEvery  = 10 * time.Second
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
	// EnqueueTimeout is how long Emit may wait for room in a full queue. Zero
	// (the default) means Emit never blocks: an event that does not fit is
	// dropped and counted.
	EnqueueTimeout time.Duration
	// Linger is the producer linger of the client built from Brokers;
	// DefaultLinger if zero, no linger if negative.
	Linger time.Duration

	// Logger receives the Emitter's failure logs; nothing is logged if nil.
	Logger *slog.Logger
	// LogEvery is the least time between two logs of the same kind of
	// failure (queue full, produce failed); DefaultLogEvery if zero.
	LogEvery time.Duration
}

// Emitter sends audit events to the audit topic asynchronously. It is safe
// for concurrent use; one Emitter can serve any number of audited clients.
type Emitter struct {
	cl      *kgo.Client
	owned   bool
	topic   string
	timeout time.Duration
	log     *slog.Logger

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
	recs       sync.Pool // *kgo.Record with reusable Key/Value buffers

	closeOnce sync.Once
	closeErr  error

	enqueued atomic.Uint64
	dropped  atomic.Uint64
	_        [48]byte // keep the application-side counters off the worker's line
	sent     atomic.Uint64
	failed   atomic.Uint64
	pending  atomic.Int64 // accepted, not yet sent or failed

	dropLog logLimiter
	failLog logLimiter
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
	case cfg.EnqueueTimeout < 0:
		return nil, fmt.Errorf("emitter: negative EnqueueTimeout %v", cfg.EnqueueTimeout)
	}
	if cfg.Topic == "" {
		cfg.Topic = audit.DefaultEventsTopic
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = DefaultQueueSize
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

	e := &Emitter{
		cl:         cfg.Client,
		topic:      cfg.Topic,
		timeout:    cfg.EnqueueTimeout,
		log:        cfg.Logger.With("component", "kaudit.emitter", "topic", cfg.Topic),
		queue:      make(chan *codecs.Event, cfg.QueueSize),
		stop:       make(chan struct{}),
		workerDone: make(chan struct{}),
	}
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
// an event that finds the queue full (or the Emitter closed) is dropped and
// counted in Stats().Dropped. A nil event is refused and not counted.
func (e *Emitter) Emit(ev *codecs.Event) bool {
	if ev == nil {
		return false
	}
	e.mu.RLock()
	ok := !e.closed && e.enqueue(ev)
	e.mu.RUnlock()
	if ok {
		return true
	}
	n := e.dropped.Add(1)
	if allow, suppressed := e.dropLog.allow(time.Now()); allow {
		e.log.Warn("kaudit: audit queue full or closed, dropping audit events",
			"dropped_total", n, "dropped_since_last_log", suppressed+1, "queue_size", cap(e.queue))
	}
	return false
}

func (e *Emitter) enqueue(ev *codecs.Event) bool {
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
	return false
}

// work moves events from the queue into the client until Close stops it,
// then drains what is left.
func (e *Emitter) work() {
	defer close(e.workerDone)
	for {
		select {
		case ev := <-e.queue:
			e.produce(ev)
			// Take whatever else is queued without going back to the
			// two-way select: a plain receive is cheaper, and events
			// arrive in bursts.
			for drained := false; !drained; {
				select {
				case ev := <-e.queue:
					e.produce(ev)
				default:
					drained = true
				}
			}
		case <-e.stop:
			for {
				select {
				case ev := <-e.queue:
					e.produce(ev)
				default:
					return
				}
			}
		}
	}
}

func (e *Emitter) produce(ev *codecs.Event) {
	if e.ctx.Err() != nil {
		// Close gave up: account for the event without producing it.
		e.fail(ev.CorrelationID, e.ctx.Err())
		return
	}
	r, _ := e.recs.Get().(*kgo.Record)
	if r == nil {
		r = new(kgo.Record)
	}
	*r = kgo.Record{
		Topic: e.topic,
		Key:   append(r.Key[:0], ev.CorrelationID...),
		Value: codecs.AppendEvent(r.Value[:0], ev),
	}
	// The record's timestamp is the event's own time (what it audits
	// happened then), which also spares the client a clock read per
	// record; an event without any time gets the client's (now).
	if ns := max(ev.SendNs, ev.AckNs, ev.ConsumeNs); ns > 0 {
		r.Timestamp = time.Unix(0, ns)
	}
	// Produce blocks only when the client buffers its maximum; the worker
	// then stops draining, the queue fills and Emit drops: the application
	// is never slowed down.
	e.cl.Produce(e.ctx, r, e.promise)
}

// done is the promise of every audit record.
func (e *Emitter) done(r *kgo.Record, err error) {
	if err != nil {
		e.fail(string(r.Key), err)
	} else {
		e.sent.Add(1)
		e.pending.Add(-1)
	}
	if cap(r.Value) <= maxPooledValue {
		*r = kgo.Record{Key: r.Key[:0], Value: r.Value[:0]}
		e.recs.Put(r)
	}
}

func (e *Emitter) fail(id string, err error) {
	n := e.failed.Add(1)
	e.pending.Add(-1)
	if allow, suppressed := e.failLog.allow(time.Now()); allow {
		e.log.Error("kaudit: producing audit event failed",
			"error", err, "correlation_id", id,
			"failed_total", n, "failed_since_last_log", suppressed+1)
	}
}

// Close stops accepting events, sends what is queued and waits for it to be
// acknowledged, within ctx; then it closes the client if the Emitter built
// it. It returns an error if some accepted events could not be delivered in
// time (they are counted as failed). Close is idempotent; later calls return
// the first call's result.
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
