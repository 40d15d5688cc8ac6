package correlator

import (
	"time"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/processors/expectations"
	"github.com/kaudit/kaudit/processors/learner"
)

// policy is what the correlator knows about a topic when it judges a
// message: the groups expected for a message acknowledged at a time, and
// the deadline.
type policy struct {
	deadline time.Duration
	declared []*expectations.Expectation // file and topic entries; the topic wins
	learned  *learner.Learned
	// warmup: a group seen consuming for this long becomes expected;
	// forget: a learned group silent for this long is expected no more.
	warmup, forget time.Duration
}

// expectedAt returns the groups that must consume a message acknowledged at
// ackNs, sorted by name: every declared group (of expectations set before
// ackNs), and, with learning on, every group seen consuming the topic over
// a whole warm-up that ended before ackNs and not silent for longer than
// forget at ackNs.
func (p policy) expectedAt(ackNs int64) []ExpectedGroup {
	n := 0
	for _, e := range p.declared {
		if e != nil {
			n += len(e.Groups)
		}
	}
	if p.learned != nil && p.warmup > 0 {
		n += len(p.learned.Groups)
	}
	if n == 0 {
		return nil
	}
	out := make([]ExpectedGroup, 0, n) // one allocation: it is kept in the trail
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
			if p.learnedExpected(g, ackNs) {
				add(g.Group, true)
			}
		}
	}
	sortExpected(out)
	return out
}

// learnedExpected reports whether a learned group is expected for a message
// acknowledged at ackNs.
func (p policy) learnedExpected(g learner.LearnedGroup, ackNs int64) bool {
	warm := int64(p.warmup)
	switch {
	case g.LastSeenNs-g.FirstSeenNs < warm: // not seen over a whole warm-up
		return false
	case g.FirstSeenNs+warm > ackNs: // the warm-up ended after the message
		return false
	case p.forget > 0 && ackNs-g.LastSeenNs > int64(p.forget): // silent too long
		return false
	}
	return true
}

// gapIn reports whether the topic's clients reported dropped audit events
// of kind (by clients of group; by any producer when kind is produce) in a
// window overlapping [from, to].
func gapIn(l *learner.Learned, group string, kind codecs.Kind, from, to int64) bool {
	if l == nil {
		return false
	}
	for _, g := range l.Gaps {
		if g.Kind != uint8(kind) || (kind == codecs.KindConsume && g.Group != group) {
			continue
		}
		if g.EndNs >= from && g.StartNs <= to {
			return true
		}
	}
	return false
}
