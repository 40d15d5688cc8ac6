package correlator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kaudit/kaudit/processors/learner"
)

// Expectation says which consumer groups must consume every message of a
// topic, and by when (Deadline after the message's acknowledgement). It is
// the value of the compacted expectations topic, keyed by topic, and an
// entry of the expectations file.
type Expectation struct {
	Topic  string   `json:"topic" yaml:"-"`
	Groups []string `json:"groups" yaml:"groups"`
	// Deadline is the delivery deadline; zero means the default.
	Deadline Duration `json:"deadline,omitempty" yaml:"deadline,omitempty"`
	// SinceNs is when the expectation was set: messages acknowledged
	// before it are not held to it. Zero means always.
	SinceNs int64 `json:"since_ns,omitempty" yaml:"-"`
}

// Duration is a time.Duration written as text ("2m") in JSON and YAML.
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("negative duration %s", v)
	}
	*d = Duration(v)
	return nil
}

// ExpectationCodec encodes expectations as JSON (goka.Codec).
type ExpectationCodec struct{}

// Encode implements goka.Codec.
func (ExpectationCodec) Encode(value any) ([]byte, error) {
	e, ok := value.(*Expectation)
	if !ok {
		return nil, fmt.Errorf("correlator: expectation codec cannot encode %T", value)
	}
	return json.Marshal(e)
}

// Decode implements goka.Codec. A value that does not decode is treated
// as no expectation (nil), so one bad record cannot stop the correlator.
func (ExpectationCodec) Decode(data []byte) (any, error) {
	e := new(Expectation)
	if err := json.Unmarshal(data, e); err != nil {
		return (*Expectation)(nil), nil
	}
	return e, nil
}

// ExpectationsFile is the expectations file (YAML):
//
//	default_deadline: 5m   # deadline of topics without their own
//	grace: 15m             # how long a closed trail is kept
//	learn_warmup: 10m      # groups seen consuming a topic become expected after this; 0 disables
//	topics:
//	  orders:
//	    groups: [billing, search]
//	    deadline: 30s
type ExpectationsFile struct {
	DefaultDeadline Duration                `yaml:"default_deadline,omitempty"`
	Grace           Duration                `yaml:"grace,omitempty"`
	LearnWarmup     *Duration               `yaml:"learn_warmup,omitempty"`
	Topics          map[string]*Expectation `yaml:"topics"`
}

// LoadExpectationsFile reads an expectations file.
func LoadExpectationsFile(path string) (*ExpectationsFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("correlator: expectations file: %w", err)
	}
	var f ExpectationsFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("correlator: expectations file %s: %w", path, err)
	}
	for topic, e := range f.Topics {
		if e == nil || len(e.Groups) == 0 {
			return nil, fmt.Errorf("correlator: expectations file %s: topic %q has no groups", path, topic)
		}
		e.Topic = topic
	}
	return &f, nil
}

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
	declared []*Expectation // file and topic entries; the topic wins
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
