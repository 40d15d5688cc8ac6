package correlator

import "github.com/prometheus/client_golang/prometheus"

// Collector exports the correlator's counters to Prometheus.
func (c *Correlator) Collector() prometheus.Collector { return collector{c} }

var (
	descEvents   = prometheus.NewDesc("kaudit_correlator_events_total", "Audit events folded into trails.", nil, nil)
	descVerdicts = prometheus.NewDesc("kaudit_correlator_verdicts_total", "Verdicts emitted.", nil, nil)
	descDead     = prometheus.NewDesc("kaudit_correlator_dead_letters_total", "Input records sent to the dead-letter topic.", nil, nil)
	descDeleted  = prometheus.NewDesc("kaudit_correlator_trails_deleted_total", "Trails deleted by sweeps.", nil, nil)
	descOpen     = prometheus.NewDesc("kaudit_correlator_open_trails", "Trails in the table at the last sweep.", nil, nil)
)

type collector struct{ c *Correlator }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descEvents, descVerdicts, descDead, descDeleted, descOpen} {
		ch <- d
	}
}

func (m collector) Collect(ch chan<- prometheus.Metric) {
	s := m.c.Stats()
	ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(s.Events))
	ch <- prometheus.MustNewConstMetric(descVerdicts, prometheus.CounterValue, float64(s.Verdicts))
	ch <- prometheus.MustNewConstMetric(descDead, prometheus.CounterValue, float64(s.DeadLetter))
	ch <- prometheus.MustNewConstMetric(descDeleted, prometheus.CounterValue, float64(s.Deleted))
	ch <- prometheus.MustNewConstMetric(descOpen, prometheus.GaugeValue, float64(s.OpenTrails))
}
