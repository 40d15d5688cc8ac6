//go:build rdkafka

package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	kaudit "github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/interceptors/emitter"
)

// sink sends the audit events of one client. emit never blocks; room
// reports whether emit would find room now (the reader waits for it).
type sink interface {
	emit(ev *codecs.Event) bool
	// addDrops counts n events like ev (a codecs.KindDrops template)
	// dropped before they reached the sink, to be reported.
	addDrops(ev *codecs.Event, n uint64)
	room() bool
	close(ctx context.Context) error
	stats() sinkStats
}

// sinkStats are a sink's counters: every emit is Enqueued or Dropped;
// every enqueued event ends Sent or Failed.
type sinkStats struct {
	Enqueued, Dropped, Sent, Failed uint64
	// DropsReported counts the dropped and failed events covered by
	// acknowledged drop reports.
	DropsReported uint64
}

// newSink starts the sink of a resolved configuration.
func newSink(a *audit, log *slog.Logger) (sink, error) {
	if a.format == formatInterceptorJSON {
		return newBlogSink(a, log)
	}
	em, err := emitter.New(emitter.Config{
		Brokers:    a.brokers,
		ClientOpts: a.opts,
		Topic:      a.topic,
		QueueSize:  min(a.queueSize, sinkQueueSize),
		Linger:     a.linger,
		Logger:     log,
	})
	if err != nil {
		return nil, err
	}
	return &emitterSink{em: em, size: min(a.queueSize, sinkQueueSize)}, nil
}

// emitterSink writes kaudit events through an emitter.Emitter (created
// without EnqueueTimeout, so Emit never blocks).
type emitterSink struct {
	em   *emitter.Emitter
	size int
}

func (s *emitterSink) emit(ev *codecs.Event) bool { return s.em.Emit(ev) }

func (s *emitterSink) addDrops(ev *codecs.Event, n uint64) { s.em.AddDrops(ev, n) }

// room is conservative: Queued counts events in the queue and in flight in
// the client, so the queue has room whenever it is below the queue size.
func (s *emitterSink) room() bool { return s.em.Stats().Queued < s.size }

func (s *emitterSink) close(ctx context.Context) error { return s.em.Close(ctx) }

func (s *emitterSink) stats() sinkStats {
	st := s.em.Stats()
	return sinkStats{Enqueued: st.Enqueued, Dropped: st.Dropped, Sent: st.Sent, Failed: st.Failed, DropsReported: st.DropsReported}
}

// blogSink writes the source blog's JSON records (codecs.AppendInterceptorRecordIn,
// local time like the blog's asctime(localtime())), keyed by correlation
// ID, partitioned like the emitter (goka-compatible). The franz-go client's
// buffer is the queue: at most max records are accepted and not yet
// acknowledged; more are dropped and counted, so TryProduce never reaches
// its own limit (where it could park).
type blogSink struct {
	cl    *kgo.Client
	topic string
	max   int64
	log   *slog.Logger

	mu     sync.RWMutex // emit holds it shared; close exclusively to flip closed
	closed bool

	pending                         atomic.Int64
	enqueued, dropped, sent, failed atomic.Uint64
	failLog                         atomic.Int64 // unix ns of the last failure log
}

func newBlogSink(a *audit, log *slog.Logger) (*blogSink, error) {
	linger := a.linger
	switch {
	case linger == 0:
		linger = emitter.DefaultLinger
	case linger < 0:
		linger = 0
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(a.brokers...),
		kgo.RecordPartitioner(kaudit.Partitioner()),
		kgo.ProducerLinger(linger),
		kgo.MaxBufferedRecords(min(a.queueSize, sinkQueueSize) + 1024),
	}, a.opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kaudit: audit client for %v: %w", a.brokers, err)
	}
	return &blogSink{cl: cl, topic: a.topic, max: int64(min(a.queueSize, sinkQueueSize)), log: log}, nil
}

func (s *blogSink) emit(ev *codecs.Event) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed || s.pending.Add(1) > s.max {
		if !s.closed {
			s.pending.Add(-1)
		}
		s.dropped.Add(1)
		return false
	}
	s.enqueued.Add(1)
	r := &kgo.Record{
		Topic: s.topic,
		Key:   []byte(ev.CorrelationID),
		Value: codecs.AppendInterceptorRecordIn(make([]byte, 0, 256), ev, time.Local),
	}
	s.cl.TryProduce(context.Background(), r, s.done)
	return true
}

// addDrops does nothing: the blog's format has no drop reports.
func (s *blogSink) addDrops(*codecs.Event, uint64) {}

func (s *blogSink) done(r *kgo.Record, err error) {
	s.pending.Add(-1)
	if err == nil {
		s.sent.Add(1)
		return
	}
	n := s.failed.Add(1)
	now := time.Now().UnixNano()
	if last := s.failLog.Load(); now-last > int64(10*time.Second) && s.failLog.CompareAndSwap(last, now) {
		s.log.Error("kaudit: producing audit record failed", "error", err, "correlation_id", string(r.Key), "failed_total", n)
	}
}

func (s *blogSink) room() bool { return s.pending.Load() < s.max }

func (s *blogSink) close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	err := s.cl.Flush(ctx)
	s.cl.Close() // fails what is left, calling those promises asynchronously:
	wctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = s.cl.Flush(wctx) // on a closed client: waits for those promises
	cancel()
	if err != nil {
		return fmt.Errorf("kaudit: flush audit records: %w", err)
	}
	return nil
}

func (s *blogSink) stats() sinkStats {
	return sinkStats{Enqueued: s.enqueued.Load(), Dropped: s.dropped.Load(), Sent: s.sent.Load(), Failed: s.failed.Load()}
}
