package learner

import (
	"encoding/json"
	"fmt"
)

// Learned is the learner's table value, keyed by topic: the consumer groups
// seen consuming the topic and when, and the windows in which the topic's
// clients reported dropped audit events (drop reports). The key
// codecs.AnyTopic holds the drops a client could not attribute to a topic.
type Learned struct {
	Topic  string         `json:"topic"`
	Groups []LearnedGroup `json:"groups"`
	Gaps   []Gap          `json:"gaps,omitempty"`
}

// Gap is one drop report: Dropped audit events of Kind (codecs.Kind) by
// Client, of Group (consume drops), with event times in [StartNs, EndNs].
type Gap struct {
	Group   string `json:"group,omitempty"`
	Kind    uint8  `json:"kind"`
	Client  string `json:"client,omitempty"`
	StartNs int64  `json:"start_ns"`
	EndNs   int64  `json:"end_ns"`
	Dropped uint64 `json:"dropped"`
}

// maxGaps bounds the gaps kept per topic (the oldest go first).
const maxGaps = 1024

// gap records a drop report; reports of one client, group, kind and window
// start add up. Gaps that ended before keepAfter are forgotten.
func (l *Learned) gap(g Gap, keepAfter int64) {
	merged := false
	for i := range l.Gaps {
		x := &l.Gaps[i]
		if x.Group == g.Group && x.Kind == g.Kind && x.Client == g.Client && x.StartNs == g.StartNs {
			x.Dropped += g.Dropped
			x.EndNs = max(x.EndNs, g.EndNs)
			merged = true
			break
		}
	}
	if !merged {
		l.Gaps = append(l.Gaps, g)
	}
	kept := l.Gaps[:0]
	for _, x := range l.Gaps {
		if x.EndNs >= keepAfter {
			kept = append(kept, x)
		}
	}
	l.Gaps = kept
	if over := len(l.Gaps) - maxGaps; over > 0 {
		l.Gaps = append(l.Gaps[:0], l.Gaps[over:]...)
	}
}

// forget drops the groups last seen before cutoff; it reports whether any
// was dropped.
func (l *Learned) forget(cutoff int64) bool {
	kept := l.Groups[:0]
	for _, g := range l.Groups {
		if g.LastSeenNs >= cutoff {
			kept = append(kept, g)
		}
	}
	dropped := len(kept) != len(l.Groups)
	l.Groups = kept
	return dropped
}

// LearnedGroup is one group seen consuming a topic.
type LearnedGroup struct {
	Group       string `json:"group"`
	FirstSeenNs int64  `json:"first_seen_ns"`
	LastSeenNs  int64  `json:"last_seen_ns"`
}

// seen records that group consumed the topic at ns; it reports whether the
// value changed in a way worth storing (a new group, or LastSeen moved by
// more than resolution).
func (l *Learned) seen(group string, ns, resolution int64) bool {
	for i := range l.Groups {
		g := &l.Groups[i]
		if g.Group != group {
			continue
		}
		changed := false
		if ns < g.FirstSeenNs {
			g.FirstSeenNs, changed = ns, true
		}
		if ns > g.LastSeenNs+resolution {
			g.LastSeenNs, changed = ns, true
		}
		return changed
	}
	l.Groups = append(l.Groups, LearnedGroup{Group: group, FirstSeenNs: ns, LastSeenNs: ns})
	return true
}

// Codec encodes Learned values as JSON (goka.Codec).
type Codec struct{}

// Encode implements goka.Codec.
func (Codec) Encode(value any) ([]byte, error) {
	l, ok := value.(*Learned)
	if !ok {
		return nil, fmt.Errorf("learner: codec cannot encode %T", value)
	}
	return json.Marshal(l)
}

// Decode implements goka.Codec; undecodable values read as nothing learned.
func (Codec) Decode(data []byte) (any, error) {
	l := new(Learned)
	if err := json.Unmarshal(data, l); err != nil {
		return (*Learned)(nil), nil
	}
	return l, nil
}
