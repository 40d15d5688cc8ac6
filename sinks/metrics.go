package sinks

import "github.com/prometheus/client_golang/prometheus"

// Collector exports the runner's counters to Prometheus.
func (r *Runner[B]) Collector() prometheus.Collector { return collector[B]{r} }

var (
	descWritten    = prometheus.NewDesc("kaudit_sink_records_written_total", "Records written to the sink, by kind.", []string{"kind"}, nil)
	descDead       = prometheus.NewDesc("kaudit_sink_dead_letters_total", "Undecodable records sent to the dead-letter topic.", nil, nil)
	descDeadCut    = prometheus.NewDesc("kaudit_sink_dead_letter_stubs_total", "Dead letters sent as truncated stubs (too large to send whole).", nil, nil)
	descDeadFailed = prometheus.NewDesc("kaudit_sink_dead_letter_failures_total", "Undecodable records the dead-letter topic refused for good (authorization, size), dropped.", nil, nil)
	descDropped    = prometheus.NewDesc("kaudit_sink_dropped_total", "Undecodable records dropped (no dead-letter topic).", nil, nil)
	descBatches    = prometheus.NewDesc("kaudit_sink_batches_total", "Batches written.", nil, nil)
	descRetries    = prometheus.NewDesc("kaudit_sink_retries_total", "Failed writes retried.", nil, nil)
	descCommits    = prometheus.NewDesc("kaudit_sink_commits_total", "Offset commits that succeeded.", nil, nil)
)

type collector[B Buffer] struct{ r *Runner[B] }

func (collector[B]) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descWritten, descDead, descDeadCut, descDeadFailed, descDropped, descBatches, descRetries, descCommits} {
		ch <- d
	}
}

func (c collector[B]) Collect(ch chan<- prometheus.Metric) {
	s := c.r.Stats()
	for kind, n := range s.Written {
		ch <- prometheus.MustNewConstMetric(descWritten, prometheus.CounterValue, float64(n), kind)
	}
	ch <- prometheus.MustNewConstMetric(descDead, prometheus.CounterValue, float64(s.DeadLetter))
	ch <- prometheus.MustNewConstMetric(descDeadCut, prometheus.CounterValue, float64(s.DeadLetterCut))
	ch <- prometheus.MustNewConstMetric(descDeadFailed, prometheus.CounterValue, float64(s.DeadLetterFailed))
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(s.Dropped))
	ch <- prometheus.MustNewConstMetric(descBatches, prometheus.CounterValue, float64(s.Batches))
	ch <- prometheus.MustNewConstMetric(descRetries, prometheus.CounterValue, float64(s.Retries))
	ch <- prometheus.MustNewConstMetric(descCommits, prometheus.CounterValue, float64(s.Commits))
}
