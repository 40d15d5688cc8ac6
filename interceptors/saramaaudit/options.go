package saramaaudit

import (
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/interceptors/internal/hookutil"
)

// Source is the Event.Source of every event this package writes.
const Source = "sarama"

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
func newOptions(em audit.Emitter, clientID string, opts []Opt) *options {
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
	produced, consumed, rejected, unaudited, untracked atomic.Uint64
}

func (c *counters) stats() Stats {
	return Stats{
		Produced:  c.produced.Load(),
		Consumed:  c.consumed.Load(),
		Rejected:  c.rejected.Load(),
		Unaudited: c.unaudited.Load(),
		Untracked: c.untracked.Load(),
	}
}

// auditor holds what every audited client shares: the Emitter, options,
// counters and the panic guard (see newAuditor).
type auditor struct {
	em audit.Emitter
	o  *options
	c  counters
	g  hookutil.Guard
}

// newAuditor returns the auditor for em and o, whose guard logs to o's
// logger.
func newAuditor(em audit.Emitter, o *options) *auditor {
	return &auditor{em: em, o: o, g: hookutil.Guard{Log: o.log, Msg: "kaudit: recovered panic in sarama audit"}}
}

func (a *auditor) emit(ev *codecs.Event, ok *atomic.Uint64) {
	if a.em != nil && a.em.Emit(ev) {
		ok.Add(1)
		return
	}
	a.c.rejected.Add(1)
}

// stats are the auditor's counters.
func (a *auditor) stats() Stats {
	s := a.c.stats()
	s.Panics = a.g.Panics()
	return s
}

func headerKey(h *sarama.RecordHeader) []byte { return h.Key }
