// Package expectations holds what kaudit is told about consumer groups: an
// Expectation names the groups that must consume every message of a topic
// and by when. Expectations come from the compacted expectations topic
// (Store: what `kaudit expect set|list|delete` writes, and what the
// correlator looks up) and from a YAML file (LoadFile).
//
//	s, err := expectations.NewStore(audit.DefaultExpectationsTopic, kgo.SeedBrokers(brokers...))
//	defer s.Close()
//	err = s.Set(ctx, &expectations.Expectation{Topic: "orders", Groups: []string{"billing"}, Deadline: expectations.Duration(time.Minute)})
package expectations

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"gopkg.in/yaml.v3"
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

// Codec encodes expectations as JSON (goka.Codec).
type Codec struct{}

// Encode implements goka.Codec.
func (Codec) Encode(value any) ([]byte, error) {
	e, ok := value.(*Expectation)
	if !ok {
		return nil, fmt.Errorf("expectations: codec cannot encode %T", value)
	}
	return json.Marshal(e)
}

// Decode implements goka.Codec. A value that does not decode is treated
// as no expectation (nil), so one bad record cannot stop the correlator.
func (Codec) Decode(data []byte) (any, error) {
	e := new(Expectation)
	if err := json.Unmarshal(data, e); err != nil {
		return (*Expectation)(nil), nil
	}
	return e, nil
}

// File is the expectations file (YAML):
//
//	default_deadline: 5m   # deadline of topics without their own
//	grace: 15m             # how long a closed trail is kept
//	learn_warmup: 10m      # groups seen consuming a topic become expected after this; 0 disables
//	topics:
//	  orders:
//	    groups: [billing, search]
//	    deadline: 30s
type File struct {
	DefaultDeadline Duration                `yaml:"default_deadline,omitempty"`
	Grace           Duration                `yaml:"grace,omitempty"`
	LearnWarmup     *Duration               `yaml:"learn_warmup,omitempty"`
	Topics          map[string]*Expectation `yaml:"topics"`
}

// LoadFile reads an expectations file.
func LoadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("expectations: file: %w", err)
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("expectations: file %s: %w", path, err)
	}
	for topic, e := range f.Topics {
		if e == nil || len(e.Groups) == 0 {
			return nil, fmt.Errorf("expectations: file %s: topic %q has no groups", path, topic)
		}
		e.Topic = topic
	}
	return &f, nil
}
