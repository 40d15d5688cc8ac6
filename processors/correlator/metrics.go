package correlator

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kaudit/kaudit/codecs"
)

// Cardinality caps of the labelled metrics: past them, new label sets are
// folded into "other" (and counted in kaudit_metric_series_folded_total).
const (
	maxTopicGroups = 1000
	maxClients     = 500
	otherLabel     = "other"
)

// metrics are the correlator's labelled metrics.
type metrics struct {
	verdicts *prometheus.CounterVec
	ack, e2e *prometheus.HistogramVec
	dropped  *prometheus.CounterVec
	folded   prometheus.Counter
	sweep    prometheus.Histogram

	mu      sync.Mutex
	pairs   map[[2]string]*pairMetrics // folded pairs share other's
	other   *pairMetrics
	clients map[string]struct{}
}

// pairMetrics are the series of one (topic, group), looked up once: a
// lookup by label values hashes them, and observe runs for every verdict.
type pairMetrics struct {
	topic, group string                           // the labels (other past the cap)
	ack, e2e     prometheus.Observer              // made at the first latency, as WithLabelValues would
	verdicts     map[[2]string]prometheus.Counter // by status and cause
}

func newMetrics() *metrics {
	buckets := prometheus.ExponentialBucketsRange(0.0005, 900, 28)
	return &metrics{
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kaudit_verdicts_total",
			Help: "Verdicts given, by topic, consumer group, status and cause (a corrected verdict counts again under its new status).",
		}, []string{"topic", "group", "status", "cause"}),
		ack: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kaudit_ack_latency_seconds",
			Help:    "Acknowledgement latency (ack − send), observed once per message and group when first judged DELIVERED or LATE.",
			Buckets: buckets,
		}, []string{"topic", "group"}),
		e2e: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kaudit_e2e_latency_seconds",
			Help:    "End-to-end latency (first consume − send), observed once per message and group when first judged DELIVERED or LATE.",
			Buckets: buckets,
		}, []string{"topic", "group"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kaudit_audit_dropped_events_total",
			Help: "Audit events the interceptors reported they dropped, by client, topic, group and kind.",
		}, []string{"client", "topic", "group", "kind"}),
		folded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kaudit_metric_series_folded_total",
			Help: "Label sets folded into topic=\"other\", group=\"other\" or client=\"other\" by the cardinality caps.",
		}),
		sweep: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kaudit_correlator_sweep_duration_seconds",
			Help:    "How long a sweep took, from its start to the last partition visited (it reads only the trails due: it grows with them, not with the table).",
			Buckets: prometheus.ExponentialBucketsRange(0.0005, 60, 20),
		}),
		pairs:   map[[2]string]*pairMetrics{},
		clients: map[string]struct{}{},
	}
}

// pair returns the labels of (topic, group), folded past the cap.
func (m *metrics) pair(topic, group string) (string, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seriesLocked(topic, group) == m.other {
		return otherLabel, otherLabel
	}
	return topic, group
}

// seriesLocked returns the series of (topic, group), those of other past
// the cap; the caller holds mu.
func (m *metrics) seriesLocked(topic, group string) *pairMetrics {
	k := [2]string{topic, group}
	if pm, ok := m.pairs[k]; ok {
		return pm
	}
	if len(m.pairs) >= maxTopicGroups {
		m.folded.Inc()
		if m.other == nil {
			m.other = m.newPair(otherLabel, otherLabel)
		}
		return m.other
	}
	pm := m.newPair(topic, group)
	m.pairs[k] = pm
	return pm
}

func (m *metrics) newPair(topic, group string) *pairMetrics {
	return &pairMetrics{topic: topic, group: group, verdicts: map[[2]string]prometheus.Counter{}}
}

func (m *metrics) client(id string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.clients[id]; ok {
		return id
	}
	if len(m.clients) >= maxClients {
		m.folded.Inc()
		return otherLabel
	}
	m.clients[id] = struct{}{}
	return id
}

// observe counts verdicts whose status is new.
func (m *metrics) observe(vs []codecs.Verdict) {
	for i := range vs {
		v := &vs[i]
		status := v.Status.String()
		m.mu.Lock()
		pm := m.seriesLocked(v.Topic, v.Group)
		c, ok := pm.verdicts[[2]string{status, v.Cause}]
		if !ok {
			c = m.verdicts.WithLabelValues(pm.topic, pm.group, status, v.Cause)
			pm.verdicts[[2]string{status, v.Cause}] = c
		}
		latencies := v.Status == codecs.StatusDelivered || v.Status == codecs.StatusLate
		if latencies && v.AckLatencyUs >= 0 && pm.ack == nil {
			pm.ack = m.ack.WithLabelValues(pm.topic, pm.group)
		}
		if latencies && v.E2ELatencyUs >= 0 && pm.e2e == nil {
			pm.e2e = m.e2e.WithLabelValues(pm.topic, pm.group)
		}
		ack, e2e := pm.ack, pm.e2e
		m.mu.Unlock()
		c.Inc()
		if !latencies {
			continue
		}
		if v.AckLatencyUs >= 0 {
			ack.Observe(float64(v.AckLatencyUs) / 1e6)
		}
		if v.E2ELatencyUs >= 0 {
			e2e.Observe(float64(v.E2ELatencyUs) / 1e6)
		}
	}
}

// drops counts a drop report.
func (m *metrics) drops(e *codecs.Event) {
	topic, group := m.pair(e.Topic, e.Group)
	m.dropped.WithLabelValues(m.client(e.ClientID), topic, group, e.DroppedKind.String()).Add(float64(e.Dropped))
}

// Collector exports the correlator's metrics to Prometheus.
func (c *Correlator) Collector() prometheus.Collector { return collector{c} }

var (
	descEvents    = prometheus.NewDesc("kaudit_correlator_events_total", "Audit events folded into trails.", nil, nil)
	descRepeats   = prometheus.NewDesc("kaudit_correlator_repeated_events_total", "Events already in their trail (replays after a restart or rebalance); their verdicts were written again.", nil, nil)
	descVerdicts  = prometheus.NewDesc("kaudit_correlator_verdicts_total", "Verdicts written (first writes).", nil, nil)
	descRewritten = prometheus.NewDesc("kaudit_correlator_verdicts_rewritten_total", "Verdicts written again with their seq (replays, unconfirmed sweep verdicts).", nil, nil)
	descDead      = prometheus.NewDesc("kaudit_correlator_dead_letters_total", "Input records sent to the dead-letter topic.", nil, nil)
	descDropped   = prometheus.NewDesc("kaudit_correlator_events_dropped_total", "Events not folded because their trail held the most hops or groups.", nil, nil)
	descClamped   = prometheus.NewDesc("kaudit_correlator_clamped_events_total", "Events whose client time was clamped for deadlines.", nil, nil)
	descDeleted   = prometheus.NewDesc("kaudit_correlator_trails_deleted_total", "Trails deleted by sweeps.", nil, nil)
	descSwept     = prometheus.NewDesc("kaudit_correlator_trails_swept_total", "Due trails visited by sweeps.", nil, nil)
	descOutDrop   = prometheus.NewDesc("kaudit_correlator_output_dropped_total", "Verdicts and dead letters Kafka refused for good (too large, not authorized), dropped with an Error log.", nil, nil)
	descOpen      = prometheus.NewDesc("kaudit_correlator_open_trails", "Trails in the local table.", nil, nil)
	descOldest    = prometheus.NewDesc("kaudit_oldest_unconsumed_age_seconds",
		"Age of the oldest acknowledged message an expected group has not consumed yet (among the messages the correlator still tracks).",
		[]string{"topic", "group"}, nil)
)

type collector struct{ c *Correlator }

func (m collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descEvents, descRepeats, descVerdicts, descRewritten, descDead, descDropped,
		descClamped, descDeleted, descSwept, descOutDrop, descOpen, descOldest} {
		ch <- d
	}
	mt := m.c.metrics
	mt.verdicts.Describe(ch)
	mt.ack.Describe(ch)
	mt.e2e.Describe(ch)
	mt.dropped.Describe(ch)
	mt.folded.Describe(ch)
	mt.sweep.Describe(ch)
}

func (m collector) Collect(ch chan<- prometheus.Metric) {
	s := m.c.Stats()
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(descEvents, s.Events)
	counter(descRepeats, s.Repeats)
	counter(descVerdicts, s.Verdicts)
	counter(descRewritten, s.Rewritten)
	counter(descDead, s.DeadLetter)
	counter(descDropped, s.Dropped)
	counter(descClamped, s.Clamped)
	counter(descDeleted, s.Deleted)
	counter(descSwept, s.Swept)
	counter(descOutDrop, s.OutDropped)
	ch <- prometheus.MustNewConstMetric(descOpen, prometheus.GaugeValue, float64(s.OpenTrails))
	if oldest, err := m.c.OldestUnconsumed(); err == nil {
		now := m.c.cfg.Now()
		ages := map[[2]string]float64{}
		for k, at := range oldest {
			topic, group := m.c.metrics.pair(k[0], k[1])
			lk := [2]string{topic, group}
			ages[lk] = max(ages[lk], max(now.Sub(at), 0).Seconds())
		}
		for k, age := range ages {
			ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, age, k[0], k[1])
		}
	}
	mt := m.c.metrics
	mt.verdicts.Collect(ch)
	mt.ack.Collect(ch)
	mt.e2e.Collect(ch)
	mt.dropped.Collect(ch)
	mt.folded.Collect(ch)
	mt.sweep.Collect(ch)
}
