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

// Encoding is how an Emitter writes events to the audit topic.
type Encoding uint8

const (
	// Binary is the protobuf encoding (codecs.AppendEvent, audit.proto)
	// the correlator reads.
	Binary Encoding = iota
	// InterceptorJSON is the librdkafka interceptors' JSON record
	// (codecs.AppendInterceptorRecordIn), for the consumers of that format
	// (kaudit ingest turns it into kaudit events). The format has no room
	// for drop reports: drops are counted (Stats().DropsUnreported), not
	// reported.
	InterceptorJSON
)

func (e Encoding) String() string {
	if e == InterceptorJSON {
		return "interceptor-json"
	}
	return "binary"
}

// Config configures an Emitter. Exactly one of Brokers and Client is
// required; every other field has a default.
type Config struct {
	// Brokers are the seed brokers of the audit cluster; the Emitter then
	// builds, owns and closes its own client. The audit cluster may differ
	// from the application's.
	Brokers []string
	// ClientOpts are extra options for the client built from Brokers
	// (TLS, SASL, client ID, delivery timeout...). They are applied after
	// the Emitter's own (seed brokers, partitioner, linger, buffer
	// limits), so they win.
	ClientOpts []kgo.Opt
	// Client is an existing client to produce with instead of Brokers. The
	// Emitter never closes it, but Close flushes it (all of its records).
	// It must have been built with kgo.RecordPartitioner(audit.Partitioner())
	// (see audit.Partitioner for why), must not carry audit hooks itself,
	// and should buffer at least QueueSize records (kgo.MaxBufferedRecords):
	// records it refuses are counted as failed.
	Client *kgo.Client

	// Topic is the audit topic; audit.DefaultEventsTopic if empty.
	Topic string
	// Encode is the encoding of the records; Binary if zero.
	Encode Encoding
	// Location is the time zone of InterceptorJSON timestamps (which
	// carry none); time.Local if nil, as the interceptors print it.
	Location *time.Location
	// QueueSize is how many events may be accepted and not yet
	// acknowledged (buffered or in flight in the client);
	// DefaultQueueSize if zero.
	QueueSize int
	// QueueBytes bounds the memory of those events, estimated from their
	// strings; an event that would exceed it is dropped.
	// DefaultQueueBytes if zero.
	QueueBytes int
	// EnqueueTimeout is how long Emit may wait for room when QueueSize or
	// QueueBytes is reached. Zero (the default) means Emit never blocks:
	// an event that does not fit is dropped and counted.
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
	encode   Encoding
	loc      *time.Location
	timeout  time.Duration
	maxCount int64
	maxBytes int64
	log      *slog.Logger
	now      func() time.Time

	// mu guards closed: Emit holds it shared while it hands a record to
	// the client, Close exclusively while it flips closed, so no record
	// slips in after Close started flushing.
	mu     sync.RWMutex
	closed bool

	ctx     context.Context // produce context, canceled when Close gives up
	cancel  context.CancelFunc
	promise func(*kgo.Record, error)
	recs    sync.Pool // *pooled

	room         chan struct{} // signalled by freed for waiting Emits
	drops        *dropTable
	dropsReady   chan struct{} // poked when drops are counted
	stop         chan struct{} // closed by Close: the reporter returns
	reporterOK   chan struct{} // closed when the reporter returned
	reportCtx    context.Context
	reportCancel context.CancelFunc

	closeOnce sync.Once
	closeErr  error

	// Counters written on the application's goroutines...
	dropped      atomic.Uint64
	pending      atomic.Int64 // accepted, not yet sent or failed
	pendingBytes atomic.Int64 // their estimated memory
	waiters      atomic.Int32 // Emit calls waiting for room (EnqueueTimeout)
	_            [28]byte
	// ...and in the client's promises.
	sent     atomic.Uint64
	failed   atomic.Uint64
	reports  atomic.Uint64
	reported atomic.Uint64

	dropLog logLimiter
	failLog logLimiter
}

// pooled is a record the Emitter reuses, with its context: the Emitter's
// produce context plus what the promise needs to account for the record.
type pooled struct {
	rec kgo.Record
	ctx recordCtx
}

type recordCtx struct {
	context.Context
	p *pooled
	// size is the event's share of pendingBytes; 0 for a drop report.
	size int64
	// ev is the event, kept until the record is acknowledged: if it
	// fails, the drop table needs its client, topic, group, kind and time
	// (or, for a drop report, its counts).
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
	case cfg.Encode > InterceptorJSON:
		return nil, fmt.Errorf("emitter: unknown Encode %d", cfg.Encode)
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
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
		encode:     cfg.Encode,
		loc:        cfg.Location,
		timeout:    cfg.EnqueueTimeout,
		maxCount:   int64(cfg.QueueSize),
		maxBytes:   int64(cfg.QueueBytes),
		log:        cfg.Logger.With("component", "kaudit.emitter", "topic", cfg.Topic),
		now:        cfg.Now,
		room:       make(chan struct{}, 1),
		drops:      newDropTable(cfg.MaxDropWindows),
		dropsReady: make(chan struct{}, 1),
		stop:       make(chan struct{}),
		reporterOK: make(chan struct{}),
	}
	e.dropLog.every = cfg.LogEvery
	e.failLog.every = cfg.LogEvery
	if e.cl == nil {
		opts := append([]kgo.Opt{
			kgo.SeedBrokers(cfg.Brokers...),
			kgo.RecordPartitioner(audit.Partitioner()),
			kgo.ProducerLinger(cfg.Linger),
			kgo.ClientID("kaudit-emitter"),
			// Room for every accepted event plus a round of drop reports
			// (+2 catch-alls), so that the client never refuses a record:
			// the Emitter's own accounting says when it is full.
			kgo.MaxBufferedRecords(cfg.QueueSize + cfg.MaxDropWindows + 2),
		}, cfg.ClientOpts...)
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return nil, fmt.Errorf("emitter: new client for %v: %w", cfg.Brokers, err)
		}
		e.cl, e.owned = cl, true
	}
	// Never more pending events than the client buffers: it would refuse
	// them (ErrMaxBuffered) and they would count as failed.
	if n, ok := e.cl.OptValue(kgo.MaxBufferedRecords).(int64); ok && n > 0 {
		e.maxCount = min(e.maxCount, n)
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.reportCtx, e.reportCancel = context.WithCancel(context.Background())
	e.promise = e.done
	go e.reporter()
	return e, nil
}

// Topic is the audit topic the Emitter writes to.
func (e *Emitter) Topic() string { return e.topic }

// Room reports whether Emit would now find room for one more event (by
// count), for callers with a buffer of their own that would rather keep
// events there than have them dropped.
func (e *Emitter) Room() bool { return e.pending.Load() < e.maxCount }

// Emit encodes ev and hands it to the client, which batches it with others
// and sends it in the background, and reports whether it was accepted.
// The Emitter owns ev from then on (it keeps it until the record is
// acknowledged): the caller must not modify it.
// Emit never blocks unless Config.EnqueueTimeout is set, and then at most
// that long; an event that finds the Emitter full (QueueSize or QueueBytes
// events accepted and not yet acknowledged), or closed, is dropped and
// counted in Stats().Dropped, and, unless the Emitter is closed, reported
// in a drop report. A nil event is refused and not counted.
func (e *Emitter) Emit(ev *codecs.Event) bool {
	if ev == nil {
		return false
	}
	size := eventBytes(ev)
	e.mu.RLock()
	closed := e.closed
	ok := !closed && e.reserve(size)
	if ok {
		e.send(ev, size, nil)
	}
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
			"dropped_total", n, "dropped_since_last_log", suppressed+1, "queue_size", e.maxCount)
	}
	return false
}

// reserve counts an event of size bytes as pending if there is room for
// it, waiting up to EnqueueTimeout for room.
func (e *Emitter) reserve(size int64) bool {
	if e.tryReserve(size) {
		return true
	}
	if e.timeout <= 0 {
		return false
	}
	e.waiters.Add(1)
	defer e.waiters.Add(-1)
	t := time.NewTimer(e.timeout)
	defer t.Stop()
	for {
		select {
		case <-e.room:
		case <-t.C:
			return e.tryReserve(size)
		}
		if e.tryReserve(size) {
			return true
		}
	}
}

// freed is called when a pending event is sent or failed: it wakes an Emit
// waiting for room, if any, once an eighth of the room is free (records
// are acknowledged in batches, and waking a waiter per record would cost a
// goroutine switch each).
func (e *Emitter) freed() {
	if e.waiters.Load() > 0 && e.pending.Load() <= e.maxCount-max(e.maxCount/8, 1) {
		select {
		case e.room <- struct{}{}:
		default:
		}
	}
}

func (e *Emitter) tryReserve(size int64) bool {
	if e.pending.Add(1) > e.maxCount {
		e.pending.Add(-1)
		return false
	}
	if e.pendingBytes.Add(size) > e.maxBytes {
		e.pendingBytes.Add(-size)
		e.pending.Add(-1)
		return false
	}
	return true
}

// AddDrops counts n events like ev that the caller dropped before they
// reached Emit (a buffer of its own was full), so that they are reported
// like the Emitter's own drops; they count in Stats().Dropped. ev may be a
// codecs.KindDrops event, whose DroppedKind and window are used. ev is
// read, not kept.
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

// countDrops adds dropped events to the drop table and wakes the reporter.
func (e *Emitter) countDrops(ev *codecs.Event, n uint64) {
	if e.encode != Binary || !e.drops.add(ev, n, e.now().UnixNano()) {
		return
	}
	select {
	case e.dropsReady <- struct{}{}:
	default:
	}
}

// eventBytes estimates the memory an event holds until it is
// acknowledged: the event, its strings, its encoded record and the
// record itself.
func eventBytes(ev *codecs.Event) int64 {
	s := len(ev.CorrelationID) + len(ev.Topic) + len(ev.ClientID) + len(ev.Group) +
		len(ev.Host) + len(ev.Source) + len(ev.Error)
	return int64(512 + 2*s)
}

// send encodes ev into a pooled record and hands it to the client. size is
// its share of pendingBytes (0 for a drop report, which is not counted as
// pending). With a nil wait it never blocks; otherwise (drop reports) it
// waits for room in the client's buffer until wait is done.
func (e *Emitter) send(ev *codecs.Event, size int64, wait context.Context) {
	p, _ := e.recs.Get().(*pooled)
	if p == nil {
		// The context is set once: franz-go may read it from other
		// goroutines even after the promise.
		p = &pooled{ctx: recordCtx{Context: e.ctx}}
		p.ctx.p = p
	}
	p.ctx.size, p.ctx.ev = size, ev
	r := &p.rec
	value := r.Value[:0] // the pooled buffer
	if e.encode == InterceptorJSON {
		value = codecs.AppendInterceptorRecordIn(value, ev, e.loc)
	} else {
		value = codecs.AppendEvent(value, ev)
	}
	*r = kgo.Record{
		Topic:   e.topic,
		Key:     append(r.Key[:0], ev.CorrelationID...),
		Value:   value,
		Context: &p.ctx,
	}
	// The record's timestamp is the event's own time (what it audits
	// happened then), which also spares the client a clock read per
	// record; an event without any time gets the client's (now).
	if ns := max(ev.SendNs, ev.AckNs, ev.ConsumeNs, ev.WindowEndNs); ns > 0 {
		r.Timestamp = time.Unix(0, ns)
	}
	if wait != nil {
		e.cl.Produce(wait, r, e.promise)
		return
	}
	// TryProduce never blocks. The client's buffer has room for every
	// pending event plus a round of drop reports, so it does not refuse
	// the record for lack of room.
	e.cl.TryProduce(e.ctx, r, e.promise)
}

// done is the promise of every audit record.
func (e *Emitter) done(r *kgo.Record, err error) {
	rc, ok := r.Context.(*recordCtx)
	if !ok {
		return // not ours (a shared Config.Client's other records never get this promise)
	}
	switch ev := rc.ev; {
	case ev.Kind == codecs.KindDrops && err != nil:
		e.countDrops(ev, uint64(ev.Dropped)) // counted again, reported later
	case ev.Kind == codecs.KindDrops:
		e.reports.Add(1)
		e.reported.Add(uint64(ev.Dropped))
	case err != nil:
		e.fail(rc, r, err)
	default:
		e.sent.Add(1)
		e.pending.Add(-1)
		e.pendingBytes.Add(-rc.size)
		e.freed()
	}
	p := rc.p
	p.ctx.ev = nil
	if cap(r.Value) <= maxPooledValue {
		*r = kgo.Record{Key: r.Key[:0], Value: r.Value[:0]}
		e.recs.Put(p)
	}
}

// fail accounts for an accepted event that will never be sent.
func (e *Emitter) fail(rc *recordCtx, r *kgo.Record, err error) {
	n := e.failed.Add(1)
	e.pending.Add(-1)
	e.pendingBytes.Add(-rc.size)
	e.freed()
	if e.ctx.Err() == nil {
		e.countDrops(rc.ev, 1)
	}
	if allow, suppressed := e.failLog.allow(time.Now()); allow {
		e.log.Error("kaudit: producing audit event failed",
			"error", err, "correlation_id", string(r.Key),
			"failed_total", n, "failed_since_last_log", suppressed+1)
	}
}

// reporter sends the drop reports: when drops were counted, or the timer
// set by the last round fires, and there is room (fewer than QueueSize
// events pending), at most once per dropReportEvery. It may wait for room
// in the client's buffer, never the application.
func (e *Emitter) reporter() {
	defer close(e.reporterOK)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var next time.Time
	for {
		select {
		case <-e.dropsReady:
		case <-timer.C:
		case <-e.stop:
			return
		}
		if e.drops.count() == 0 {
			continue
		}
		now := time.Now()
		if now.Before(next) || e.pending.Load() >= e.maxCount {
			timer.Reset(max(next.Sub(now), dropReportEvery/4))
			continue
		}
		next = now.Add(dropReportEvery)
		e.sendReports(e.reportCtx)
	}
}

// sendReports produces a drop report for every count in the drop table,
// waiting for room in the client's buffer until ctx is done (a report that
// finds none fails, and is counted again).
func (e *Emitter) sendReports(ctx context.Context) {
	for _, ev := range e.drops.take() {
		e.send(ev, 0, ctx)
	}
}

// Flush waits, within ctx, until every event accepted so far is
// acknowledged or failed, sending what the client lingers on at once
// (with Config.Client: every record of that client). Emit may go on
// meanwhile.
func (e *Emitter) Flush(ctx context.Context) error {
	if err := e.cl.Flush(ctx); err != nil {
		return fmt.Errorf("emitter: flush: %w", err)
	}
	return nil
}

// Close stops accepting events, waits for the accepted ones and a last
// round of drop reports to be acknowledged, within ctx; then it closes the
// client if the Emitter built it. It returns an error if some accepted
// events could not be delivered in time (they are counted as failed).
// Close is idempotent; later calls return the first call's result.
func (e *Emitter) Close(ctx context.Context) error {
	e.closeOnce.Do(func() { e.closeErr = e.close(ctx) })
	return e.closeErr
}

func (e *Emitter) close(ctx context.Context) error {
	failedBefore := e.failed.Load()
	e.reportCancel()
	close(e.stop)
	<-e.reporterOK
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()

	// Two rounds: records may fail while the first is flushed.
	var err error
	for range 2 {
		e.sendReports(ctx)
		if err = e.cl.Flush(ctx); err != nil || e.drops.count() == 0 {
			break
		}
	}
	if err != nil {
		// Fail what is still in the client (records with a canceled
		// context are failed as soon as that is safe).
		e.cancel()
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
