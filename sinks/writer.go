package sinks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kaudit/kaudit/audit"
)

// defaultMaxRecordBytes is franz-go's default ProducerBatchMaxBytes.
const defaultMaxRecordBytes = 1_000_012

// commitTimeout bounds one offset commit; commits are not cancelled with
// Run's context, so that a batch written just before a shutdown is
// committed.
const commitTimeout = 10 * time.Second

// pending is what was read since the last batch was handed on.
type pending[B Buffer] struct {
	batch   B
	n       int      // records decoded into batch
	bytes   int      // their key and value bytes
	kinds   []uint64 // decoded records by topic index
	records int      // records taken: decoded, dead-lettered or dropped
	dlq     []*kgo.Record
	// offsets are the next offsets after every record taken, by topic
	// and partition: what committing this batch commits.
	offsets map[string]map[int32]kgo.EpochOffset
	since   time.Time
}

func (p *pending[B]) mark(rec *kgo.Record) {
	m := p.offsets[rec.Topic]
	if m == nil {
		m = map[int32]kgo.EpochOffset{}
		p.offsets[rec.Topic] = m
	}
	m[rec.Partition] = kgo.EpochOffset{Epoch: rec.LeaderEpoch, Offset: rec.Offset + 1}
}

// flight is a batch being written.
type flight[B Buffer] struct {
	p    *pending[B]
	done chan struct{}
	err  error // set before done is closed
}

// writer writes up to MaxInFlight batches at once and commits their
// offsets in the order they were read, each after its batch was written.
// Only Run's goroutine calls its methods; the writes run in goroutines of
// their own.
type writer[B Buffer] struct {
	r       *Runner[B]
	cl, dlq *kgo.Client
	dlqMax  int
	ctx     context.Context // the writes'; cancelled by abort
	cancel  context.CancelFunc
	// stop ends retrying: once Run's context ended, a write gets its
	// current attempt and no more.
	stop     context.Context
	stopping context.CancelFunc
	queue    []*flight[B] // in read order
	wake     chan struct{}
	free     []*pending[B]
}

func newWriter[B Buffer](r *Runner[B], cl, dlq *kgo.Client) *writer[B] {
	ctx, cancel := context.WithCancel(context.Background())
	stop, stopping := context.WithCancel(context.Background())
	w := &writer[B]{r: r, cl: cl, dlq: dlq, dlqMax: defaultMaxRecordBytes, ctx: ctx, cancel: cancel,
		stop: stop, stopping: stopping, wake: make(chan struct{}, 1)}
	switch v := dlq.OptValue(kgo.ProducerBatchMaxBytes).(type) {
	case int32:
		w.dlqMax = int(v)
	case int:
		w.dlqMax = v
	}
	return w
}

// fresh returns an empty pending batch.
func (w *writer[B]) fresh() *pending[B] {
	if n := len(w.free); n > 0 {
		p := w.free[n-1]
		w.free = w.free[:n-1]
		return p
	}
	return &pending[B]{
		batch:   w.r.cfg.NewBatch(),
		kinds:   make([]uint64, len(w.r.cfg.Topics)),
		offsets: map[string]map[int32]kgo.EpochOffset{},
	}
}

func (w *writer[B]) recycle(p *pending[B]) {
	p.batch.Reset()
	p.n, p.bytes, p.records = 0, 0, 0
	clear(p.kinds)
	clear(p.dlq)
	p.dlq = p.dlq[:0]
	for _, m := range p.offsets {
		clear(m)
	}
	w.free = append(w.free, p)
}

func (w *writer[B]) idle() bool { return len(w.queue) == 0 }

// submit starts writing p, first waiting (and committing) while
// MaxInFlight batches are being written. It fails only if ctx ends first,
// or a write failed for good.
func (w *writer[B]) submit(ctx context.Context, p *pending[B]) error {
	for len(w.queue) >= w.r.cfg.MaxInFlight {
		head := w.queue[0]
		select {
		case <-head.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if head.err != nil {
			return head.err
		}
		w.commitDone(ctx)
	}
	f := &flight[B]{p: p, done: make(chan struct{})}
	w.queue = append(w.queue, f)
	go func() {
		f.err = w.write(w.ctx, p)
		close(f.done)
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}()
	return nil
}

// wakeOnDone calls cancel when a write finishes, so that a poll waiting for
// records returns and the batch is committed promptly; the returned
// function stops watching.
func (w *writer[B]) wakeOnDone(cancel context.CancelFunc) func() {
	if len(w.queue) == 0 {
		return func() {}
	}
	stop := make(chan struct{})
	go func() {
		select {
		case <-w.wake:
			cancel()
		case <-stop:
		}
	}()
	return func() { close(stop) }
}

// commitDone commits the offsets of the written batches at the head of the
// queue, in one commit, and recycles them. It never commits past a batch
// that is still being written or failed.
func (w *writer[B]) commitDone(ctx context.Context) {
	var merged map[string]map[int32]kgo.EpochOffset
	var done []*pending[B]
	for len(w.queue) > 0 {
		f := w.queue[0]
		select {
		case <-f.done:
		default:
			f = nil
		}
		if f == nil || f.err != nil {
			break
		}
		w.queue = w.queue[1:]
		if merged == nil {
			merged = map[string]map[int32]kgo.EpochOffset{}
		}
		for t, parts := range f.p.offsets {
			m := merged[t]
			if m == nil {
				m = map[int32]kgo.EpochOffset{}
				merged[t] = m
			}
			for part, eo := range parts {
				m[part] = eo // later batches hold later offsets
			}
		}
		done = append(done, f.p)
	}
	if len(done) == 0 {
		return
	}
	if err := w.commit(ctx, merged); err != nil {
		// Not fatal: the records are written, and will be written
		// again (idempotently) if the commit is lost.
		w.r.log.Warn("sink: commit failed; the records will be read again after a restart", "err", err)
	} else {
		w.r.commits.Add(1)
	}
	for _, p := range done {
		w.recycle(p)
	}
}

func (w *writer[B]) commit(ctx context.Context, offsets map[string]map[int32]kgo.EpochOffset) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	var rerr error
	w.cl.CommitOffsetsSync(cctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			rerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					rerr = errors.Join(rerr, fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, err))
				}
			}
		}
	})
	return rerr
}

// drain waits for every write in flight and commits them. It returns
// ctx's error if ctx ends first, or an error if a write failed.
func (w *writer[B]) drain(ctx context.Context) error {
	for _, f := range w.queue {
		select {
		case <-f.done:
		case <-ctx.Done():
			w.commitDone(ctx)
			return ctx.Err()
		}
	}
	w.commitDone(ctx)
	if len(w.queue) > 0 {
		return fmt.Errorf("sinks: a write failed: %w", w.queue[0].err)
	}
	return nil
}

// abort cancels the writes in flight and waits for them; nothing more is
// committed.
func (w *writer[B]) abort() {
	w.stopping()
	w.cancel()
	for _, f := range w.queue {
		<-f.done
	}
	w.queue = nil
}

// write sends p's dead letters, then its batch, retrying with backoff
// until both are accepted or ctx ends.
func (w *writer[B]) write(ctx context.Context, p *pending[B]) error {
	r := w.r
	if len(p.dlq) > 0 {
		if err := w.deadLetters(ctx, p.dlq); err != nil {
			return fmt.Errorf("sinks: dead-letter topic %s: %w", r.cfg.DLQTopic, err)
		}
	}
	if p.n == 0 {
		return nil
	}
	err := w.retry(ctx, func(ctx context.Context) (bool, error) {
		if err := r.sink.WriteBatch(ctx, p.batch); err != nil {
			if ctx.Err() != nil || w.stop.Err() != nil {
				return false, err
			}
			r.retries.Add(1)
			r.log.Warn("sink: write failed; retrying", "records", p.n, "err", err)
			return true, err
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("sinks: write batch: %w", err)
	}
	if r.cfg.OnWritten != nil {
		r.cfg.OnWritten(Written[B]{Batch: p.batch, Records: p.n, At: time.Now()})
	}
	for i, k := range p.kinds {
		r.written[i].Add(k)
	}
	r.batches.Add(1)
	return nil
}

// letter is a dead letter on its way.
type letter struct {
	rec     *kgo.Record
	cut     bool // rec is a stub
	minimal bool // rec is the smallest stub
}

// retry calls f until it succeeds or says not to retry, waiting the
// runner's backoff between attempts. Once the writer is stopping it makes
// no new attempt; f's attempts run with ctx.
func (w *writer[B]) retry(ctx context.Context, f func(context.Context) (again bool, err error)) error {
	b := w.r.backoff()
	for {
		again, err := f(ctx)
		if err == nil || !again || w.stop.Err() != nil {
			return err
		}
		next, _ := b.Next()
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-w.stop.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// deadLetters produces recs to the dead-letter topic. A record over the
// producer's size limit goes as a stub (audit.FitDeadLetter), and as the
// smallest stub if the broker refuses the first one as too large; a record
// refused for good (authorization, invalid topic, ...) is dropped with an
// Error log and counted. Other errors are retried with backoff until ctx
// ends: the dead-letter topic being away loses nothing.
func (w *writer[B]) deadLetters(ctx context.Context, recs []*kgo.Record) error {
	r := w.r
	todo := make([]letter, len(recs))
	for i, dl := range recs {
		rec, cut := audit.FitDeadLetter(dl, w.dlqMax, false)
		if cut {
			r.log.Warn("sink: dead letter over the producer's size limit; sending a stub", "limit", w.dlqMax,
				"size", audit.RecordSize(dl), "from", origin(dl))
		}
		todo[i] = letter{rec: rec, cut: cut}
	}
	return w.retry(ctx, func(ctx context.Context) (bool, error) {
		recs := make([]*kgo.Record, len(todo))
		for i, l := range todo {
			recs[i] = l.rec
		}
		var again []letter
		var firstErr error
		for i, res := range w.dlq.ProduceSync(ctx, recs...) {
			l := todo[i]
			// A fresh record: a failed one keeps state from its attempt.
			l.rec = &kgo.Record{Topic: l.rec.Topic, Key: l.rec.Key, Value: l.rec.Value, Headers: l.rec.Headers}
			switch err := res.Err; {
			case err == nil:
				r.dead.Add(1)
				if l.cut {
					r.cut.Add(1)
				}
			case ctx.Err() != nil:
				again = append(again, l)
			case tooLarge(err) && !l.minimal:
				r.log.Warn("sink: the broker refused a dead letter as too large; sending the smallest stub", "from", origin(l.rec), "err", err)
				l.rec, _ = audit.FitDeadLetter(l.rec, 0, true)
				l.cut, l.minimal = true, true
				again = append(again, l)
			case permanent(err):
				r.deadFailed.Add(1)
				r.log.Error("sink: the dead-letter topic refused a record for good; dropping it (counted in kaudit_sink_dead_letter_failures_total)",
					"dlq_topic", l.rec.Topic, "from", origin(l.rec), "reason", header(l.rec, audit.HeaderErrMessage), "err", err)
			default:
				again = append(again, l)
				if firstErr == nil {
					firstErr = err
				}
			}
		}
		todo = again
		switch {
		case len(todo) == 0:
			return false, nil
		case ctx.Err() != nil:
			return false, ctx.Err()
		case firstErr == nil:
			return true, errors.New("resending stubs")
		}
		r.retries.Add(1)
		if errors.Is(firstErr, kerr.UnknownTopicOrPartition) {
			r.log.Error("sink: the dead-letter topic does not exist; create it (the correlator creates kaudit.dlq) - retrying", "dlq_topic", r.cfg.DLQTopic)
		} else {
			r.log.Warn("sink: dead-letter produce failed; retrying", "records", len(todo), "err", firstErr)
		}
		return true, firstErr
	})
}

// tooLarge reports whether err says a record is over a size limit.
func tooLarge(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)
}

// permanent reports whether err is a Kafka error that retrying cannot fix.
func permanent(err error) bool {
	var ke *kerr.Error
	return errors.As(err, &ke) && !ke.Retriable
}

// origin names where a dead letter was read, from its Connect headers.
func origin(dl *kgo.Record) string {
	return header(dl, audit.HeaderErrTopic) + "/" + header(dl, audit.HeaderErrPartition) + "@" + header(dl, audit.HeaderErrOffset)
}

func header(r *kgo.Record, key string) string {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == key {
			return string(r.Headers[i].Value)
		}
	}
	return ""
}
