package sinks

import "github.com/prometheus/client_golang/prometheus"

// Collector exports the runner's counters to Prometheus.
func (r *Runner) Collector() prometheus.Collector { return collector{r} }

var (
	descWritten = prometheus.NewDesc("kaudit_sink_records_written_total", "Records written to the sink, by kind.", []string{"kind"}, nil)
	descDead    = prometheus.NewDesc("kaudit_sink_dead_letters_total", "Undecodable records sent to the dead-letter topic.", nil, nil)
	descDropped = prometheus.NewDesc("kaudit_sink_dropped_total", "Undecodable records dropped (no dead-letter topic).", nil, nil)
	descBatches = prometheus.NewDesc("kaudit_sink_batches_total", "Batches written.", nil, nil)
	descRetries = prometheus.NewDesc("kaudit_sink_retries_total", "Failed writes retried.", nil, nil)
)

type collector struct{ r *Runner }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descWritten, descDead, descDropped, descBatches, descRetries} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.r.Stats()
	ch <- prometheus.MustNewConstMetric(descWritten, prometheus.CounterValue, float64(s.Events), "event")
	ch <- prometheus.MustNewConstMetric(descWritten, prometheus.CounterValue, float64(s.Verdicts), "verdict")
	ch <- prometheus.MustNewConstMetric(descDead, prometheus.CounterValue, float64(s.DeadLetter))
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(s.Dropped))
	ch <- prometheus.MustNewConstMetric(descBatches, prometheus.CounterValue, float64(s.Batches))
	ch <- prometheus.MustNewConstMetric(descRetries, prometheus.CounterValue, float64(s.Retries))
}
