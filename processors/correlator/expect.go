package correlator

import (
	"slices"
	"time"

	"github.com/kaudit/kaudit/processors/expectations"
	"github.com/kaudit/kaudit/processors/learner"
)

// ExpectedGroup is one group a message is held to.
type ExpectedGroup struct {
	Group   string `json:"group"`
	Learned bool   `json:"learned,omitempty"`
}

// policy is what the correlator knows about a topic when it judges a
// message: the groups expected for a message acknowledged at ackNs and the
// deadline.
type policy struct {
	deadline time.Duration
	declared []*expectations.Expectation // file and topic entries; the topic wins
	learned  *learner.Learned
	warmup   time.Duration
}

// expectedAt returns the groups that must consume a message acknowledged at
// ackNs, sorted by name.
func (p policy) expectedAt(ackNs int64) []ExpectedGroup {
	var out []ExpectedGroup
	add := func(g string, learned bool) {
		for _, x := range out {
			if x.Group == g {
				return
			}
		}
		out = append(out, ExpectedGroup{Group: g, Learned: learned})
	}
	for _, e := range p.declared {
		if e == nil || e.SinceNs > ackNs {
			continue
		}
		for _, g := range e.Groups {
			add(g, false)
		}
	}
	if p.learned != nil && p.warmup > 0 {
		for _, g := range p.learned.Groups {
			if g.FirstSeenNs+int64(p.warmup) <= ackNs {
				add(g.Group, true)
			}
		}
	}
	slices.SortFunc(out, func(a, b ExpectedGroup) int {
		switch {
		case a.Group < b.Group:
			return -1
		case a.Group > b.Group:
			return 1
		}
		return 0
	})
	return out
}
