package emitter

import "github.com/prometheus/client_golang/prometheus"

// Stats are the Emitter's counters since New.
//
// Every Emit call is either Enqueued or Dropped; every enqueued event ends
// up Sent or Failed, and until then is counted in Queued.
type Stats struct {
	// Enqueued events were accepted by Emit.
	Enqueued uint64
	// Dropped events were refused by Emit: queue full (after
	// EnqueueTimeout, if set) or Emitter closed.
	Dropped uint64
	// Sent events were acknowledged by the audit cluster.
	Sent uint64
	// Failed events were accepted but could not be produced (the client
	// gave up, or Close ran out of time).
	Failed uint64
	// Queued events were accepted and are neither sent nor failed yet:
	// waiting in the queue or in flight in the client.
	Queued int
}

// Stats returns a snapshot of the counters. The fields are read one by
// one, so a snapshot taken while events flow may be off by the few events
// that moved in between.
func (e *Emitter) Stats() Stats {
	return Stats{
		Enqueued: e.enqueued.Load(),
		Dropped:  e.dropped.Load(),
		Sent:     e.sent.Load(),
		Failed:   e.failed.Load(),
		Queued:   int(max(e.pending.Load(), 0)),
	}
}

// Collector exposes the counters to Prometheus:
//
//	kaudit_emitter_events_total{result="sent"|"dropped"|"failed"}  counter
//	kaudit_emitter_queued_events                                   gauge
//
// Register it once per registry; to tell several Emitters apart, wrap it
// with prometheus.WrapCollectorWith and a distinguishing label.
func (e *Emitter) Collector() prometheus.Collector {
	return &collector{
		e: e,
		events: prometheus.NewDesc("kaudit_emitter_events_total",
			"Audit events by outcome: sent (acknowledged by the audit cluster), dropped (queue full or emitter closed), failed (produce failed).",
			[]string{"result"}, nil),
		queued: prometheus.NewDesc("kaudit_emitter_queued_events",
			"Audit events accepted and not yet sent or failed.", nil, nil),
	}
}

type collector struct {
	e      *Emitter
	events *prometheus.Desc
	queued *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.events
	ch <- c.queued
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.e.Stats()
	for _, v := range []struct {
		result string
		n      uint64
	}{{"sent", s.Sent}, {"dropped", s.Dropped}, {"failed", s.Failed}} {
		ch <- constMetric(c.events, prometheus.CounterValue, float64(v.n), v.result)
	}
	ch <- constMetric(c.queued, prometheus.GaugeValue, float64(s.Queued))
}

func constMetric(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) prometheus.Metric {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		return prometheus.NewInvalidMetric(d, err)
	}
	return m
}
