package alerts

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/kaudit/kaudit/processors/expectations"
)

// Kind is what an SLO measures; it is the slo label of its alerts.
type Kind string

// Kinds of SLO.
const (
	// Completeness: the share of expected messages delivered by the
	// deadline (LOST and LATE messages are errors; LOST with cause
	// audit_gap, an audit gap rather than a loss, is not).
	Completeness Kind = "completeness"
	// Latency: the share of messages, 99% by definition, whose end-to-end
	// latency is at most the target.
	Latency Kind = "p99"
)

// latencyObjective is the percentage of messages that a p99 target
// holds to.
const latencyObjective = 99.0

// SLO is one objective of one consumer group of a topic.
type SLO struct {
	Topic, Group string
	Kind         Kind
	// Objective is the percentage of good messages: the completeness
	// declared, or 99 for a latency SLO.
	Objective float64
	// Target is the end-to-end latency target of a Latency SLO.
	Target time.Duration
	// Window is the SLO window (the error budget's period).
	Window time.Duration
}

// Budget is the allowed error rate: 1 - Objective/100.
func (s SLO) Budget() float64 { return max(0, 1-s.Objective/100) }

// key identifies the SLO (its alerts' labels, without the severity).
func (s SLO) key() string { return s.Topic + "\x00" + s.Group + "\x00" + string(s.Kind) }

// String describes the objective: "completeness 99.99% over 30d",
// "p99 5s over 30d".
func (s SLO) String() string {
	if s.Kind == Latency {
		return fmt.Sprintf("p99 %s over %s", s.Target, shortDuration(s.Window))
	}
	return fmt.Sprintf("completeness %s%% over %s", formatFloat(s.Objective), shortDuration(s.Window))
}

// FromExpectations returns the SLOs the expectations declare, one per
// group and kind, ordered by topic, group and kind. Expectations without
// an SLO, and invalid ones, give none.
func FromExpectations(es []*expectations.Expectation) []SLO {
	var out []SLO
	for _, e := range es {
		if e == nil || !e.HasSLO() || e.Validate() != nil {
			continue
		}
		groups := slices.Clone(e.Groups)
		slices.Sort(groups)
		for _, g := range slices.Compact(groups) {
			if e.Completeness != 0 {
				out = append(out, SLO{Topic: e.Topic, Group: g, Kind: Completeness, Objective: e.Completeness, Window: e.Window()})
			}
			if e.P99 > 0 {
				out = append(out, SLO{Topic: e.Topic, Group: g, Kind: Latency, Objective: latencyObjective,
					Target: time.Duration(e.P99), Window: e.Window()})
			}
		}
	}
	slices.SortFunc(out, func(a, b SLO) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Group, b.Group), cmp.Compare(a.Kind, b.Kind))
	})
	return slices.CompactFunc(out, func(a, b SLO) bool { return a.key() == b.key() })
}

// Merge returns the expectations of file and topic, the topic's entry
// winning for a topic in both (as in the correlator).
func Merge(fromTopic map[string]*expectations.Expectation, file *expectations.File) []*expectations.Expectation {
	all := map[string]*expectations.Expectation{}
	if file != nil {
		for t, e := range file.Topics {
			all[t] = e
		}
	}
	for t, e := range fromTopic {
		all[t] = e
	}
	out := make([]*expectations.Expectation, 0, len(all))
	for _, e := range all {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *expectations.Expectation) int { return cmp.Compare(a.Topic, b.Topic) })
	return out
}
