package kgoaudit

import (
	"context"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/interceptors/internal/hookutil"
)

// Source is the Event.Source of every event these hooks write.
const Source = "franz-go"

// Hooks audits one franz-go client: pass it to kgo.WithHooks when building
// the client. It learns the client ID and consumer group in OnNewClient, so
// each client needs its own Hooks; the Emitter behind them can be shared.
// All methods are safe for concurrent use, never block and never panic.
type Hooks struct {
	em        audit.Emitter
	skipTopic string
	now       func() time.Time
	host      string
	group     string // group for consumers outside a group (WithGroup)
	guard     hookutil.Guard

	id atomic.Pointer[identity]

	produced  atomic.Uint64
	consumed  atomic.Uint64
	rejected  atomic.Uint64
	unaudited atomic.Uint64
	ungrouped atomic.Uint64
	untracked atomic.Uint64
}

var (
	_ kgo.HookNewClient               = (*Hooks)(nil)
	_ kgo.HookProduceRecordBuffered   = (*Hooks)(nil)
	_ kgo.HookProduceRecordUnbuffered = (*Hooks)(nil)
	_ kgo.HookFetchRecordUnbuffered   = (*Hooks)(nil)
)

// identity is what OnNewClient learns about the audited client.
type identity struct {
	clientID string
	group    string
}

// Opt configures Hooks.
type Opt interface{ apply(*Hooks) }

type optFunc func(*Hooks)

func (f optFunc) apply(h *Hooks) { f(h) }

// WithClock sets the clock of the send, ack and consume times (time.Now by
// default); for tests.
func WithClock(now func() time.Time) Opt {
	return optFunc(func(h *Hooks) {
		if now != nil {
			h.now = now
		}
	})
}

// WithHost sets Event.Host (os.Hostname by default).
func WithHost(host string) Opt {
	return optFunc(func(h *Hooks) { h.host = host })
}

// WithGroup names the consumer in consume events when the client does not
// consume in a group (direct partition consumers). Without it, records
// polled outside a group are not audited (Stats().Ungrouped), since every
// consume verdict is per group.
func WithGroup(group string) Opt {
	return optFunc(func(h *Hooks) { h.group = group })
}

// WithLogger sets where recovered panics are logged (nothing by default).
// Logs are rate-limited: the 1st, 2nd, 4th, 8th... panic is logged.
func WithLogger(l *slog.Logger) Opt {
	return optFunc(func(h *Hooks) {
		if l != nil {
			h.guard.Log = l
		}
	})
}

// New returns hooks that emit to em (an *emitter.Emitter). A nil em yields
// hooks that audit nothing (every event counts as rejected). If em also has
// a Topic() string method, records on that topic (the audit topic itself)
// are never audited, so an audit client can never audit itself in a loop.
func New(em audit.Emitter, opts ...Opt) *Hooks {
	h := &Hooks{em: em, now: time.Now}
	h.guard.Msg = "kaudit: recovered panic in franz-go audit hook"
	h.host, _ = os.Hostname()
	if t, ok := em.(interface{ Topic() string }); ok {
		h.skipTopic = t.Topic()
	}
	for _, o := range opts {
		o.apply(h)
	}
	h.id.Store(&identity{})
	return h
}

// OnNewClient implements kgo.HookNewClient: it records the client ID and
// consumer group (or share group) of the client the hooks were installed on.
func (h *Hooks) OnNewClient(cl *kgo.Client) {
	defer h.guard.Recover()
	id := &identity{}
	id.clientID, _ = cl.OptValue(kgo.ClientID).(string)
	id.group, _ = cl.OptValue(kgo.ConsumerGroup).(string)
	if id.group == "" {
		id.group, _ = cl.OptValue(kgo.ShareGroup).(string)
	}
	h.id.Store(id)
}

// stateKey is the context key of a record's produceState.
type stateKey struct{}

// produceState carries a record's audit state from OnProduceRecordBuffered
// to OnProduceRecordUnbuffered. It is the record's context (wrapping the
// original), so the state costs one allocation and no shared map; the event
// is filled in place and handed to the Emitter at ack time.
type produceState struct {
	context.Context
	ev  codecs.Event
	id  [audit.CorrelationIDLen]byte // generated correlation ID; the header value points here
	hdr [1]kgo.RecordHeader          // the headers of a record that had none
}

func (s *produceState) Value(key any) any {
	if key == (stateKey{}) {
		return s
	}
	return s.Context.Value(key)
}

func stateOf(ctx context.Context) *produceState {
	if s, ok := ctx.(*produceState); ok {
		return s
	}
	if ctx == nil {
		return nil
	}
	s, _ := ctx.Value(stateKey{}).(*produceState)
	return s
}

// OnProduceRecordBuffered implements kgo.HookProduceRecordBuffered. It runs
// in Produce, on the caller's goroutine: it gives the record a correlation
// ID header unless it has a non-empty one already, and notes the send time,
// digest and size.
func (h *Hooks) OnProduceRecordBuffered(r *kgo.Record) {
	defer h.guard.Recover()
	if h.skipTopic != "" && r.Topic == h.skipTopic {
		return
	}
	parent := r.Context
	if parent == nil {
		parent = context.Background()
	}
	s := &produceState{Context: parent}
	s.ev = codecs.Event{
		Version:     codecs.SchemaVersion,
		Kind:        codecs.KindProduce,
		SendNs:      h.now().UnixNano(),
		PayloadSize: int32(len(r.Key) + len(r.Value)),
		Digest:      codecs.Digest(r.Key, r.Value),
	}
	i := hookutil.Index(r.Headers, headerKey)
	if i >= 0 && len(r.Headers[i].Value) > 0 {
		s.ev.CorrelationID = string(r.Headers[i].Value)
	} else {
		audit.PutCorrelationID(&s.id)
		s.ev.CorrelationID = string(s.id[:])
		r.Headers = withID(r.Headers, i, s)
	}
	r.Context = s
}

// withID returns the headers hs with the correlation ID of s at index i
// (appended if i < 0). It never writes into hs, whose backing array belongs
// to the application and may be shared by records produced concurrently:
// the result is a new slice (the state's own one-element array when hs is
// empty, which costs no allocation).
func withID(hs []kgo.RecordHeader, i int, s *produceState) []kgo.RecordHeader {
	h := kgo.RecordHeader{Key: audit.CorrelationHeader, Value: s.id[:]}
	if len(hs) == 0 {
		s.hdr[0] = h
		return s.hdr[:1:1]
	}
	out := make([]kgo.RecordHeader, len(hs), len(hs)+1)
	copy(out, hs)
	if i >= 0 {
		out[i] = h
		return out
	}
	return append(out, h)
}

// OnProduceRecordUnbuffered implements kgo.HookProduceRecordUnbuffered. It
// runs just before the record's promise and emits the record's one produce
// event: partition, offset and ack time on success, the error text (and no
// ack time or offset) on failure.
func (h *Hooks) OnProduceRecordUnbuffered(r *kgo.Record, err error) {
	defer h.guard.Recover()
	if h.skipTopic != "" && r.Topic == h.skipTopic {
		return
	}
	now := h.now().UnixNano()
	var ev *codecs.Event
	if s := stateOf(r.Context); s != nil {
		ev = &s.ev
		if r.Context == context.Context(s) {
			r.Context = s.Context // hand the promise the context it was given
		}
	} else {
		// Not seen when buffered (hooks added oddly, or the context was
		// replaced): audit what is still known, if the record has an ID.
		h.untracked.Add(1)
		i := hookutil.Index(r.Headers, headerKey)
		if i < 0 || len(r.Headers[i].Value) == 0 {
			return
		}
		ev = &codecs.Event{
			Version:       codecs.SchemaVersion,
			Kind:          codecs.KindProduce,
			CorrelationID: string(r.Headers[i].Value),
			PayloadSize:   int32(len(r.Key) + len(r.Value)),
			Digest:        codecs.Digest(r.Key, r.Value),
		}
	}
	id := h.id.Load()
	ev.Topic = r.Topic
	ev.Partition = r.Partition
	ev.ClientID = id.clientID
	ev.Host = h.host
	ev.Source = Source
	ev.RecordTsNs = hookutil.UnixNano(r.Timestamp)
	if err != nil {
		ev.Error = err.Error()
		ev.Offset = -1
	} else {
		ev.AckNs = now
		ev.Offset = r.Offset
	}
	h.emit(ev, &h.produced)
}

// OnFetchRecordUnbuffered implements kgo.HookFetchRecordUnbuffered. For a
// record returned by a poll it emits a consume event; records discarded
// internally are ignored, as are records without a correlation ID (counted
// as Unaudited).
func (h *Hooks) OnFetchRecordUnbuffered(r *kgo.Record, polled bool) {
	if !polled {
		return
	}
	defer h.guard.Recover()
	if h.skipTopic != "" && r.Topic == h.skipTopic {
		return
	}
	id := h.id.Load()
	group := id.group
	if group == "" {
		group = h.group
	}
	if group == "" {
		h.ungrouped.Add(1)
		return
	}
	i := hookutil.Index(r.Headers, headerKey)
	if i < 0 || len(r.Headers[i].Value) == 0 {
		h.unaudited.Add(1)
		return
	}
	ev := &codecs.Event{
		Version:       codecs.SchemaVersion,
		Kind:          codecs.KindConsume,
		CorrelationID: string(r.Headers[i].Value),
		Topic:         r.Topic,
		Partition:     r.Partition,
		Offset:        r.Offset,
		ClientID:      id.clientID,
		Group:         group,
		Host:          h.host,
		Source:        Source,
		ConsumeNs:     h.now().UnixNano(),
		RecordTsNs:    hookutil.UnixNano(r.Timestamp),
		PayloadSize:   int32(len(r.Key) + len(r.Value)),
		Digest:        codecs.Digest(r.Key, r.Value),
	}
	h.emit(ev, &h.consumed)
}

func (h *Hooks) emit(ev *codecs.Event, ok *atomic.Uint64) {
	if h.em != nil && h.em.Emit(ev) {
		ok.Add(1)
		return
	}
	h.rejected.Add(1)
}

func headerKey(h *kgo.RecordHeader) string { return h.Key }

// Stats are the hooks' counters since New.
type Stats struct {
	// Produced and Consumed count events the Emitter accepted.
	Produced uint64
	Consumed uint64
	// Rejected counts events the Emitter refused (queue full or closed).
	Rejected uint64
	// Unaudited counts polled records without a correlation ID header.
	Unaudited uint64
	// Ungrouped counts polled records not audited because the client is not
	// in a consumer group and WithGroup was not given.
	Ungrouped uint64
	// Untracked counts acknowledged records the produce hook had not seen.
	Untracked uint64
	// Panics counts recovered panics.
	Panics uint64
}

// Stats returns a snapshot of the counters.
func (h *Hooks) Stats() Stats {
	return Stats{
		Produced:  h.produced.Load(),
		Consumed:  h.consumed.Load(),
		Rejected:  h.rejected.Load(),
		Unaudited: h.unaudited.Load(),
		Ungrouped: h.ungrouped.Load(),
		Untracked: h.untracked.Load(),
		Panics:    h.guard.Panics(),
	}
}
