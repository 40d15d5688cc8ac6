package proxy

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

type counters struct {
	accepted       atomic.Uint64
	active         atomic.Int64
	protocolClosed atomic.Uint64
	upstreamFailed atomic.Uint64
	requests       atomic.Uint64
	responses      atomic.Uint64
	rewritten      atomic.Uint64
	undecodable    atomic.Uint64
	audited        atomic.Uint64
}

// Stats are the proxy's counters since New.
type Stats struct {
	Accepted uint64 // client connections accepted
	Active   int64  // client connections open now
	// ProtocolErrors counts connections closed for a protocol violation
	// (malformed or oversized frame, unknown API key or version, ...).
	ProtocolErrors uint64
	// UpstreamFailures counts connections closed because a broker could
	// not be reached or went away.
	UpstreamFailures uint64
	Requests         uint64
	Responses        uint64
	Rewritten        uint64 // responses whose broker addresses were rewritten
	// Undecodable counts responses kmsg could not decode that were
	// forwarded unchanged (neither observed in detail nor audited).
	Undecodable uint64
	Audited     uint64 // audit events handed to the auditors
	// Dropped counts, per observer and auditor queue, what was dropped
	// because the queue was full.
	Dropped map[string]uint64
}

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	s := Stats{
		Accepted:         p.stats.accepted.Load(),
		Active:           p.stats.active.Load(),
		ProtocolErrors:   p.stats.protocolClosed.Load(),
		UpstreamFailures: p.stats.upstreamFailed.Load(),
		Requests:         p.stats.requests.Load(),
		Responses:        p.stats.responses.Load(),
		Rewritten:        p.stats.rewritten.Load(),
		Undecodable:      p.stats.undecodable.Load(),
		Audited:          p.stats.audited.Load(),
		Dropped:          map[string]uint64{},
	}
	for _, q := range p.obsQ {
		s.Dropped[q.name] += q.dropped.Load()
	}
	for _, q := range p.audQ {
		s.Dropped[q.name] += q.dropped.Load()
	}
	return s
}

// Collector exports Stats to Prometheus (kaudit_proxy_*).
func (p *Proxy) Collector() prometheus.Collector { return &collector{p: p} }

type collector struct{ p *Proxy }

var (
	descAccepted    = prometheus.NewDesc("kaudit_proxy_connections_accepted_total", "Client connections accepted.", nil, nil)
	descActive      = prometheus.NewDesc("kaudit_proxy_connections_active", "Client connections open.", nil, nil)
	descProtocol    = prometheus.NewDesc("kaudit_proxy_protocol_errors_total", "Connections closed for a protocol violation.", nil, nil)
	descUpstream    = prometheus.NewDesc("kaudit_proxy_upstream_failures_total", "Connections closed because a broker was unreachable or went away.", nil, nil)
	descRequests    = prometheus.NewDesc("kaudit_proxy_requests_total", "Requests forwarded.", nil, nil)
	descResponses   = prometheus.NewDesc("kaudit_proxy_responses_total", "Responses forwarded.", nil, nil)
	descRewritten   = prometheus.NewDesc("kaudit_proxy_responses_rewritten_total", "Responses whose broker addresses were rewritten.", nil, nil)
	descUndecodable = prometheus.NewDesc("kaudit_proxy_responses_undecodable_total", "Responses forwarded unchanged because they could not be decoded.", nil, nil)
	descAudited     = prometheus.NewDesc("kaudit_proxy_audit_events_total", "Audit events handed to the auditors.", nil, nil)
	descDropped     = prometheus.NewDesc("kaudit_proxy_dropped_total", "Observations and audit events dropped because a queue was full.", []string{"queue"}, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAccepted, descActive, descProtocol, descUpstream, descRequests, descResponses, descRewritten, descUndecodable, descAudited, descDropped} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.Stats()
	ch <- prometheus.MustNewConstMetric(descAccepted, prometheus.CounterValue, float64(s.Accepted))
	ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, float64(s.Active))
	ch <- prometheus.MustNewConstMetric(descProtocol, prometheus.CounterValue, float64(s.ProtocolErrors))
	ch <- prometheus.MustNewConstMetric(descUpstream, prometheus.CounterValue, float64(s.UpstreamFailures))
	ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(s.Requests))
	ch <- prometheus.MustNewConstMetric(descResponses, prometheus.CounterValue, float64(s.Responses))
	ch <- prometheus.MustNewConstMetric(descRewritten, prometheus.CounterValue, float64(s.Rewritten))
	ch <- prometheus.MustNewConstMetric(descUndecodable, prometheus.CounterValue, float64(s.Undecodable))
	ch <- prometheus.MustNewConstMetric(descAudited, prometheus.CounterValue, float64(s.Audited))
	for q, n := range s.Dropped {
		ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(n), q)
	}
}
