package saramaaudit

import (
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/kaudit/kaudit/codecs"
)

// Source is the Event.Source of every event this package writes.
const Source = "sarama"

// Emitter takes audit events; *emitter.Emitter is the implementation. Emit
// must not block and takes ownership of the event. If the Emitter also has a
// Topic() string method, records on that topic (the audit topic itself) are
// never audited.
type Emitter interface {
	Emit(*codecs.Event) bool
}

// Opt configures the audited producers and consumer interceptors.
type Opt interface{ apply(*options) }

type optFunc func(*options)

func (f optFunc) apply(o *options) { f(o) }

type options struct {
	now      func() time.Time
	host     string
	clientID string
	hasID    bool
	log      *slog.Logger
	audit    func(topic string) bool
}

// WithClock sets the clock of the send, ack and consume times (time.Now by
// default); for tests.
func WithClock(now func() time.Time) Opt {
	return optFunc(func(o *options) {
		if now != nil {
			o.now = now
		}
	})
}

// WithHost sets Event.Host (os.Hostname by default).
func WithHost(host string) Opt {
	return optFunc(func(o *options) { o.host = host })
}

// WithClientID sets Event.ClientID. The constructors that receive a
// sarama.Config take its ClientID by default; WrapSyncProducer and
// NewConsumerInterceptor know none without this option.
func WithClientID(id string) Opt {
	return optFunc(func(o *options) { o.clientID, o.hasID = id, true })
}

// WithLogger sets where recovered panics are logged (nothing by default).
// Logs are rate-limited: the 1st, 2nd, 4th, 8th... panic is logged.
func WithLogger(l *slog.Logger) Opt {
	return optFunc(func(o *options) {
		if l != nil {
			o.log = l
		}
	})
}

// WithTopicFilter audits only the topics for which audit returns true (all
// topics but the Emitter's own by default). Messages on other topics get no
// correlation ID header and no event. ProducerBuilder adds a filter that
// skips goka's group tables (see ProducerBuilder).
func WithTopicFilter(audit func(topic string) bool) Opt {
	return optFunc(func(o *options) {
		if audit == nil {
			return
		}
		if prev := o.audit; prev != nil {
			o.audit = func(t string) bool { return prev(t) && audit(t) }
		} else {
			o.audit = audit
		}
	})
}

// newOptions applies opts over the defaults for em and the client ID
// learned from a sarama configuration.
func newOptions(em Emitter, clientID string, opts []Opt) *options {
	o := &options{now: time.Now, clientID: clientID, log: slog.New(slog.DiscardHandler)}
	o.host, _ = os.Hostname()
	for _, opt := range opts {
		if opt != nil {
			opt.apply(o)
		}
	}
	if t, ok := em.(interface{ Topic() string }); ok {
		if skip := t.Topic(); skip != "" {
			WithTopicFilter(func(topic string) bool { return topic != skip }).apply(o)
		}
	}
	return o
}

func (o *options) audits(topic string) bool { return o.audit == nil || o.audit(topic) }

// Stats are an audited client's counters since it was built.
type Stats struct {
	// Produced and Consumed count events the Emitter accepted.
	Produced uint64
	Consumed uint64
	// Rejected counts events the Emitter refused (queue full or closed).
	Rejected uint64
	// Unaudited counts consumed messages not reported: without a
	// correlation ID header, or read by an interceptor without a group.
	Unaudited uint64
	// Untracked counts produce results for messages the send side had not
	// seen (refused by sarama before its interceptors ran); they are
	// reported if they carry a correlation ID.
	Untracked uint64
	// Panics counts recovered panics.
	Panics uint64
}

// counters are the live Stats.
type counters struct {
	produced, consumed, rejected, unaudited, untracked, panics atomic.Uint64
}

func (c *counters) stats() Stats {
	return Stats{
		Produced:  c.produced.Load(),
		Consumed:  c.consumed.Load(),
		Rejected:  c.rejected.Load(),
		Unaudited: c.unaudited.Load(),
		Untracked: c.untracked.Load(),
		Panics:    c.panics.Load(),
	}
}

// auditor holds what every audited client shares: the Emitter, options and
// counters.
type auditor struct {
	em Emitter
	o  *options
	c  counters
}

func (a *auditor) emit(ev *codecs.Event, ok *atomic.Uint64) {
	if a.em != nil && a.em.Emit(ev) {
		ok.Add(1)
		return
	}
	a.c.rejected.Add(1)
}

// guard turns a panic into a count (and a rate-limited log line), so
// auditing can never take the application down.
func (a *auditor) guard() {
	if v := recover(); v != nil {
		n := a.c.panics.Add(1)
		if n&(n-1) == 0 {
			a.o.log.Error("kaudit: recovered panic in sarama audit", "panic", v, "panics_total", n)
		}
	}
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
