//go:build rdkafka

package main

/*
#include "plugin.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/interceptors/emitter"
)

// Source is the Event.Source of every event the plugin writes.
const Source = "librdkafka"

// fallbackClose is how long after on_destroy the plugin closes a client's
// emitter by itself if on_conf_destroy does not come (rd_kafka_destroy_flags
// with RD_KAFKA_DESTROY_F_IMMEDIATE, or rd_kafka_new failing after on_new).
const fallbackClose = 30 * time.Second

// instance is the Go half of one kaudit_ic: one librdkafka configuration
// object and, once on_new has run, the client made from it.
//
// Threads: confSet runs on the application thread that sets properties;
// onNew on the thread in rd_kafka_new, before librdkafka starts its own;
// the client's reader on its own goroutine, and its slow path on any
// librdkafka thread, concurrently (fields are set before the client is
// published; only counters and the thread-safe emitter change afterwards);
// confDestroy last, after librdkafka joined its threads.
type instance struct {
	mu    sync.Mutex
	set   settings
	timer *time.Timer // fallback close armed by on_destroy

	cl atomic.Pointer[client]
}

func (in *instance) confSet(name, val string) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.set.set(name, val)
}

// readBatch is how many records the reader takes from the ring at once.
const readBatch = 512

// batchLinger is how long the reader waits after a partial batch before
// looking again, so that moderate traffic is read in batches and a quiet
// ring wakes the reader at most about 1000 times a second.
const batchLinger = time.Millisecond

// client audits one rd_kafka_t. The C callbacks push records to ring; one
// goroutine (read) turns them into events and hands them to the emitter. Only
// records that do not fit the ring (IDs longer than 70 bytes) reach Go
// directly from librdkafka's threads (slow).
type client struct {
	cfg      *audit
	em       *emitter.Emitter // nil if the audit configuration could not be used
	ring     *C.kaudit_ring   // nil if not audited
	clientID string
	group    string
	host     string
	log      *slog.Logger
	name     atomic.Pointer[string] // rd_kafka_name, learned at on_destroy

	topics  map[uint32]string // owned by the reader goroutine
	errMu   sync.Mutex
	errText map[int32]string // rd_kafka_err2str, by error code

	produced atomic.Uint64
	consumed atomic.Uint64
	rejected atomic.Uint64
	panics   atomic.Uint64

	giveUp    atomic.Int64  // unix ns after which the reader stops waiting for room (0: never)
	done      chan struct{} // closed when the reader returns
	closeOnce sync.Once
	closeErr  error
}

// onNew starts auditing the client made from the instance's
// configuration. It never fails: a configuration that cannot be used is
// logged, and the client then runs unaudited (ring nil).
func (in *instance) onNew(p clientProps) *client {
	in.mu.Lock()
	set := in.set
	in.mu.Unlock()

	a, err := set.resolve(p)
	c := &client{cfg: a, clientID: p.clientID, group: p.groupID,
		topics: map[uint32]string{}, errText: map[int32]string{}, done: make(chan struct{})}
	c.host, _ = os.Hostname()
	c.log = newLogger(a.logLevel).With("client_id", p.clientID)
	if err == nil {
		c.em, err = newEmitter(a, c.log)
	}
	if err == nil {
		if c.ring = C.kaudit_ring_new(C.uint32_t(a.queueSize)); c.ring == nil {
			_ = c.em.Close(context.Background())
			c.em, err = nil, errors.New("cannot allocate the audit ring")
		}
	}
	if err != nil {
		c.log.Error("kaudit: audit configuration unusable: this client is NOT audited", "error", err)
		close(c.done)
	} else {
		c.log.Debug("kaudit: auditing client", "format", a.format.String(), "topic", a.topic, "brokers", a.brokers, "group", p.groupID)
		go c.read()
	}
	in.cl.Store(c)
	return c
}

// onDestroy runs when rd_kafka_destroy starts (on librdkafka's main
// thread, before the broker threads stop): acknowledgements of purged or
// in-flight messages may still follow, so the ring and emitter stay open
// until on_conf_destroy, which comes once every librdkafka thread is
// joined. The timer closes them anyway if that never happens.
func (in *instance) onDestroy(name string) {
	c := in.cl.Load()
	if c == nil {
		return
	}
	c.name.Store(&name)
	in.mu.Lock()
	if in.timer == nil {
		in.timer = time.AfterFunc(fallbackClose, c.finish)
	}
	in.mu.Unlock()
}

// confDestroy ends the instance: drains the ring, closes the emitter
// (flushing within audit.close.timeout.ms) and reports the counters.
func (in *instance) confDestroy() {
	in.mu.Lock()
	if in.timer != nil {
		in.timer.Stop()
	}
	in.mu.Unlock()
	if c := in.cl.Load(); c != nil {
		c.finish()
	}
}

// read moves records from the ring to the emitter until the ring is closed
// and empty. It waits on the ring's eventfd (through the Go netpoller, so
// no thread is held) when the ring is empty: on a duplicate of it, which
// it closes when it returns; the ring's own descriptor, which librdkafka's
// threads write, is closed only when the ring is freed (see ring.c).
func (c *client) read() {
	defer close(c.done)
	var wake *os.File // nil (no eventfd): poll
	if fd := int(C.kaudit_ring_fd(c.ring)); fd >= 0 {
		wake = os.NewFile(uintptr(fd), "kaudit-ring")
		defer wake.Close()
	}
	defer c.takeDrops() // the last ones, before the emitter is closed
	buf := make([]C.kaudit_rec, readBatch)
	var tick [8]byte
	for {
		n := int(C.kaudit_ring_take(c.ring, &buf[0], C.int(len(buf)), 0))
		c.takeDrops() // the ring drops only when full, so while this loop is busy
		if n < 0 {
			return
		}
		c.handleBatch(buf[:n])
		if n == len(buf) {
			continue
		}
		if n > 0 {
			time.Sleep(batchLinger)
			continue
		}
		// Empty: arm the wake-up (the next push signals), unless a
		// record slipped in meanwhile.
		if n = int(C.kaudit_ring_take(c.ring, &buf[0], C.int(len(buf)), 1)); n != 0 {
			if n < 0 {
				return
			}
			c.handleBatch(buf[:n])
			continue
		}
		if wake == nil {
			time.Sleep(10 * batchLinger)
			continue
		}
		_ = wake.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := wake.Read(tick[:]); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			// The eventfd is gone: fall back to polling.
			time.Sleep(10 * batchLinger)
		}
	}
}

func (c *client) handleBatch(recs []C.kaudit_rec) {
	defer func() { c.recovered(recover()) }()
	for i := range recs {
		r := &recs[i]
		id := string(unsafe.Slice((*byte)(unsafe.Pointer(&r.id[0])), int(r.id_len)))
		c.emit(c.event(r, id, c.topic(uint32(r.topic))))
	}
}

// takeDrops hands the ring's drop counts to the emitter, which reports them
// (codecs.KindDrops) like its own drops.
func (c *client) takeDrops() {
	defer func() { c.recovered(recover()) }()
	var ds [16]C.kaudit_drop
	for {
		n := int(C.kaudit_ring_take_drops(c.ring, &ds[0], C.int(len(ds))))
		for i := range n {
			d := &ds[i]
			ev := &codecs.Event{
				Version:       codecs.SchemaVersion,
				Kind:          codecs.KindDrops,
				ClientID:      c.clientID,
				Host:          c.host,
				Source:        Source,
				DroppedKind:   codecs.KindProduce,
				WindowStartNs: int64(d.start_ns),
				WindowEndNs:   int64(d.end_ns),
			}
			if d.kind == C.KAUDIT_CONSUME {
				ev.DroppedKind, ev.Group = codecs.KindConsume, c.group
			}
			if ev.Topic = c.topic(uint32(d.topic)); d.topic == math.MaxUint32 || ev.Topic == "" {
				ev.Topic, ev.Group = codecs.AnyTopic, codecs.AnyTopic
			}
			c.em.AddDrops(ev, uint64(d.n))
		}
		if n < len(ds) {
			return
		}
	}
}

// slow handles a record that did not fit the ring, on the calling thread:
// it never waits for room (but on the application thread of a consume,
// within audit.enqueue.timeout.ms).
func (c *client) slow(r *C.kaudit_rec, id, topic string, wait time.Duration) {
	ev := c.event(r, id, topic)
	ok := &c.produced
	if ev.Kind == codecs.KindConsume {
		ok = &c.consumed
	}
	for deadline := time.Now().Add(wait); !c.em.Room() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Microsecond)
	}
	if c.em.Emit(ev) {
		ok.Add(1)
		return
	}
	c.rejected.Add(1)
}

func (c *client) topic(idx uint32) string {
	if s, ok := c.topics[idx]; ok {
		return s
	}
	p := C.kaudit_topic_name(C.uint32_t(idx))
	if p == nil {
		return ""
	}
	s := C.GoString(p)
	c.topics[idx] = s
	return s
}

func (c *client) errorText(code int32) string {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if s, ok := c.errText[code]; ok {
		return s
	}
	s := C.GoString(C.rd_kafka_err2str(C.rd_kafka_resp_err_t(code)))
	if len(c.errText) < 1024 {
		c.errText[code] = s
	}
	return s
}

// event builds the event of a record, exactly as kgoaudit would for the
// same message.
func (c *client) event(r *C.kaudit_rec, id, topic string) *codecs.Event {
	ev := &codecs.Event{
		Version:       codecs.SchemaVersion,
		CorrelationID: id,
		Topic:         topic,
		Partition:     int32(r.partition),
		Offset:        int64(r.offset),
		ClientID:      c.clientID,
		Host:          c.host,
		Source:        Source,
		RecordTsNs:    msToNs(int64(r.ts_ms)),
		PayloadSize:   int32(r.size),
		Digest:        uint64(r.digest),
	}
	now := int64(r.now_ns)
	if r.kind == C.KAUDIT_CONSUME {
		ev.Kind = codecs.KindConsume
		ev.Group = c.group
		ev.ConsumeNs = now
		return ev
	}
	ev.Kind = codecs.KindProduce
	ev.SendNs = int64(r.send_ns)
	switch {
	case c.cfg.format == formatInterceptorJSON:
		// The blog writes the callback time and librdkafka's offset,
		// failed or not.
		ev.AckNs = now
	case r.err != 0:
		ev.Error = c.errorText(int32(r.err))
		ev.Offset = -1
	default:
		ev.AckNs = now
	}
	return ev
}

func (c *client) emit(ev *codecs.Event) {
	ok := &c.produced
	if ev.Kind == codecs.KindConsume {
		ok = &c.consumed
	}
	c.waitRoom()
	if c.em.Emit(ev) {
		ok.Add(1)
		return
	}
	c.rejected.Add(1)
}

// waitRoom waits until the emitter has room, so that events queue in the
// ring (where the C callbacks drop them when it is full) rather than being
// dropped here: the ring and the emitter's queue add up to the buffer. Only
// the reader goroutine calls it. When the client is destroyed it waits
// until audit.close.timeout.ms at most.
func (c *client) waitRoom() {
	for backoff := 20 * time.Microsecond; !c.em.Room(); {
		if g := c.giveUp.Load(); g != 0 && time.Now().UnixNano() > g {
			return
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, time.Millisecond)
	}
}

// finish drains the ring, closes the emitter and reports the counters, once.
func (c *client) finish() {
	c.closeOnce.Do(func() {
		if c.em != nil {
			ctx, cancel := context.WithTimeout(context.Background(), c.cfg.closeTimeout)
			dl, _ := ctx.Deadline()
			c.giveUp.Store(dl.UnixNano())
			C.kaudit_ring_close(c.ring)
			select {
			case <-c.done:
			case <-ctx.Done():
			}
			// Past the deadline, the reader drains what is left into a
			// closed emitter (fast: counted as dropped); it must be gone
			// before on_conf_destroy frees the ring.
			c.closeErr = c.em.Close(ctx)
			<-c.done
			cancel()
		}
		c.report()
	})
}

// recovered turns a panic in a callback into a count and a rate-limited
// log line: auditing never takes the application down.
func (c *client) recovered(v any) {
	if v == nil || c == nil {
		return
	}
	n := c.panics.Add(1)
	if n&(n-1) == 0 {
		c.log.Error("kaudit: recovered panic in librdkafka interceptor", "panic", fmt.Sprint(v), "panics_total", n)
	}
}

// Stats is the line a client appends to audit.stats.file when it is
// destroyed, and the counters of its final log line.
type Stats struct {
	Time     string `json:"time"`
	Name     string `json:"name"` // rd_kafka_name(), e.g. rdkafka#producer-1
	ClientID string `json:"client_id"`
	Group    string `json:"group,omitempty"`
	Format   string `json:"format"`
	Topic    string `json:"topic"`
	// Produced and Consumed count events accepted for sending.
	Produced uint64 `json:"produced"`
	Consumed uint64 `json:"consumed"`
	// Dropped counts events not accepted: audit queue full, emitter closed,
	// or auditing off (unusable audit configuration).
	Dropped uint64 `json:"dropped"`
	// Sent and Failed count accepted events acknowledged by the audit
	// cluster or given up on.
	Sent   uint64 `json:"sent"`
	Failed uint64 `json:"failed"`
	// DropsReported counts the dropped and failed events covered by drop
	// reports (codecs.KindDrops events) the audit cluster acknowledged.
	DropsReported uint64 `json:"drops_reported"`
	// Unaudited counts consumed messages without a correlation_id;
	// Ungrouped consumed messages of a client without group.id; Untracked
	// acknowledged messages without a correlation_id.
	Unaudited uint64 `json:"unaudited"`
	Ungrouped uint64 `json:"ungrouped"`
	Untracked uint64 `json:"untracked"`
	Panics    uint64 `json:"panics"`
	// Slow counts events whose correlation ID was too long for the ring
	// (more than 70 bytes): built on the callback's thread.
	Slow       uint64 `json:"slow"`
	CloseError string `json:"close_error,omitempty"`
	// Audited is false if the audit configuration was unusable (logged
	// when the client was created): nothing was counted then.
	Audited bool `json:"audited"`
}

func (c *client) stats() Stats {
	s := Stats{
		Time:     time.Now().UTC().Format(time.RFC3339Nano),
		ClientID: c.clientID,
		Group:    c.group,
		Format:   c.cfg.format.String(),
		Topic:    c.cfg.topic,
		Produced: c.produced.Load(),
		Consumed: c.consumed.Load(),
		Dropped:  c.rejected.Load(),
		Panics:   c.panics.Load(),
		Audited:  c.ring != nil,
	}
	if c.ring != nil {
		var rc C.kaudit_counters
		C.kaudit_ring_counters(c.ring, &rc)
		s.Dropped += uint64(rc.dropped)
		s.Unaudited = uint64(rc.unaudited)
		s.Ungrouped = uint64(rc.ungrouped)
		s.Untracked = uint64(rc.untracked)
		s.Slow = uint64(rc.slow)
	}
	if n := c.name.Load(); n != nil {
		s.Name = *n
	}
	if c.em != nil {
		st := c.em.Stats()
		s.Sent, s.Failed, s.DropsReported = st.Sent, st.Failed, st.DropsReported
	}
	if c.closeErr != nil {
		s.CloseError = c.closeErr.Error()
	}
	return s
}

func (c *client) report() {
	s := c.stats()
	attrs := []any{"name", s.Name, "produced", s.Produced, "consumed", s.Consumed,
		"dropped", s.Dropped, "sent", s.Sent, "failed", s.Failed, "drops_reported", s.DropsReported,
		"unaudited", s.Unaudited, "panics", s.Panics}
	if s.Dropped+s.Failed+s.Panics > 0 || s.CloseError != "" || !s.Audited {
		c.log.Warn("kaudit: audit events lost", append(attrs, "close_error", s.CloseError)...)
	} else {
		c.log.Info("kaudit: audit summary", attrs...)
	}
	if c.cfg.statsFile == "" {
		return
	}
	line, err := json.Marshal(s)
	if err != nil {
		return
	}
	f, err := os.OpenFile(c.cfg.statsFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		c.log.Error("kaudit: stats file", "error", err)
		return
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		c.log.Error("kaudit: stats file", "error", err)
	}
	if err := f.Close(); err != nil {
		c.log.Error("kaudit: stats file", "error", err)
	}
}

func newLogger(level slog.Level) *slog.Logger {
	if level >= levelOff {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).
		With("plugin", "kaudit-rdkafka")
}

func msToNs(ms int64) int64 {
	if ms <= 0 || ms > math.MaxInt64/1_000_000 {
		return 0
	}
	return ms * 1_000_000
}
