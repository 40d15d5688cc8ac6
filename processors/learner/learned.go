package learner

import (
	"encoding/json"
	"fmt"
)

// Learned is the learner's table value, keyed by topic: the consumer groups
// seen consuming the topic and when.
type Learned struct {
	Topic  string         `json:"topic"`
	Groups []LearnedGroup `json:"groups"`
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
