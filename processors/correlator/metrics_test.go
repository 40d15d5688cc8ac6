package correlator

import (
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/kaudit/kaudit/codecs"
)

// Verdicts are counted by topic, group, status and cause, latencies
// observed for DELIVERED and LATE only, and past the cap of (topic, group)
// pairs new pairs are counted under other.
func TestMetricsObserve(t *testing.T) {
	m := newMetrics()
	vs := []codecs.Verdict{
		{Topic: "orders", Group: "a", Status: codecs.StatusDelivered, AckLatencyUs: 1000, E2ELatencyUs: 2000},
		{Topic: "orders", Group: "a", Status: codecs.StatusDelivered, AckLatencyUs: 1000, E2ELatencyUs: -1},
		{Topic: "orders", Group: "a", Status: codecs.StatusLost, Cause: CauseNotConsumed, AckLatencyUs: 1000, E2ELatencyUs: 5},
		{Topic: "orders", Group: "b", Status: codecs.StatusLate, Cause: CauseAfterDeadline, AckLatencyUs: 3, E2ELatencyUs: 4},
	}
	m.observe(vs)
	m.observe(vs[:1])
	if n := testutil.CollectAndCount(m.verdicts); n != 3 {
		t.Errorf("%d verdict series, want 3", n)
	}
	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"orders", "a", codecs.StatusDelivered.String(), ""}, 3},
		{[]string{"orders", "a", codecs.StatusLost.String(), CauseNotConsumed}, 1},
		{[]string{"orders", "b", codecs.StatusLate.String(), CauseAfterDeadline}, 1},
		{[]string{"orders", "b", codecs.StatusDelivered.String(), ""}, 0},
	} {
		if got := testutil.ToFloat64(m.verdicts.WithLabelValues(c.labels...)); got != c.want {
			t.Errorf("verdicts %v = %v, want %v", c.labels, got, c.want)
		}
	}
	// Histograms: a's ack latency 3 times (DELIVERED ×3), e2e twice; b's once each.
	for _, c := range []struct {
		name  string
		count uint64
	}{{"ack a", 3}, {"e2e a", 2}, {"ack b", 1}, {"e2e b", 1}} {
		h := m.ack
		if c.name[:3] == "e2e" {
			h = m.e2e
		}
		got := histogramCount(t, h.WithLabelValues("orders", c.name[4:]))
		if got != c.count {
			t.Errorf("%s: %d observations, want %d", c.name, got, c.count)
		}
	}

	// Fill the cap, then one more pair: counted under other.
	for i := 0; len(m.pairs) < maxTopicGroups; i++ {
		m.observe([]codecs.Verdict{{Topic: "t" + strconv.Itoa(i), Group: "g", Status: codecs.StatusLost}})
	}
	m.observe([]codecs.Verdict{{Topic: "one-too-many", Group: "g", Status: codecs.StatusLost}})
	m.observe([]codecs.Verdict{{Topic: "two-too-many", Group: "g", Status: codecs.StatusLost}})
	if got := testutil.ToFloat64(m.verdicts.WithLabelValues(otherLabel, otherLabel, codecs.StatusLost.String(), "")); got != 2 {
		t.Errorf("other LOST = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.folded); got != 2 {
		t.Errorf("folded = %v, want 2", got)
	}
	if topic, group := m.pair("one-too-many", "g"); topic != otherLabel || group != otherLabel {
		t.Errorf("pair past the cap = %q %q", topic, group)
	}
	if topic, group := m.pair("orders", "a"); topic != "orders" || group != "a" {
		t.Errorf("pair within the cap = %q %q", topic, group)
	}
}

func histogramCount(t *testing.T, o prometheus.Observer) uint64 {
	t.Helper()
	var m dto.Metric
	if err := o.(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}
