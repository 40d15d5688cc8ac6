// Package expectations holds what kaudit is told about consumer groups: an
// Expectation names the groups that must consume every message of a topic
// and by when, and optionally the service-level objectives (SLOs) the
// alerts evaluator holds each of those groups to: the completeness
// (percentage of messages delivered on time) and the end-to-end latency
// that 99% of the messages must not exceed. Expectations come from the
// compacted expectations topic (Store: what `kaudit expect set|list|delete`
// writes, and what the correlator looks up) and from a YAML file
// (LoadFile). The correlator reads only the groups and the deadline.
//
//	s, err := expectations.NewStore(audit.DefaultExpectationsTopic, kgo.SeedBrokers(brokers...))
//	defer s.Close()
//	err = s.Set(ctx, &expectations.Expectation{Topic: "orders", Groups: []string{"billing"}, Deadline: expectations.Duration(time.Minute)})
package expectations

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
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

	// Completeness is the completeness SLO of each group, in percent: the
	// share of expected messages that must be delivered by the deadline
	// (a LOST or LATE message is an error), in (0, 100]. Zero: none.
	Completeness float64 `json:"completeness,omitempty" yaml:"completeness,omitempty"`
	// P99 is the latency SLO of each group: 99% of the messages must be
	// consumed at most this long after they were sent (end-to-end
	// latency). Zero: none.
	P99 Duration `json:"p99,omitempty" yaml:"p99,omitempty"`
	// SLOWindow is the period the SLOs are measured over, which sets the
	// error budget the burn rates refer to; zero means DefaultSLOWindow.
	SLOWindow Duration `json:"slo_window,omitempty" yaml:"slo_window,omitempty"`
}

// DefaultSLOWindow is the SLO window of expectations that name none.
const DefaultSLOWindow = 30 * 24 * time.Hour

// HasSLO reports whether the expectation declares an SLO.
func (e *Expectation) HasSLO() bool { return e.Completeness != 0 || e.P99 != 0 }

// Window returns the SLO window, DefaultSLOWindow if none is set.
func (e *Expectation) Window() time.Duration {
	if e.SLOWindow <= 0 {
		return DefaultSLOWindow
	}
	return time.Duration(e.SLOWindow)
}

// Validate checks the expectation: a topic, at least one group, and SLOs
// in range (completeness in (0, 100], p99 and the SLO window not
// negative).
func (e *Expectation) Validate() error {
	if e.Topic == "" || len(e.Groups) == 0 {
		return errors.New("a topic and at least one group are required")
	}
	for _, g := range e.Groups {
		if g == "" {
			return fmt.Errorf("topic %q: empty consumer group name", e.Topic)
		}
	}
	if e.Deadline < 0 {
		return fmt.Errorf("topic %q: negative deadline %s", e.Topic, time.Duration(e.Deadline))
	}
	if c := e.Completeness; c != 0 && (math.IsNaN(c) || c <= 0 || c > 100) {
		return fmt.Errorf("topic %q: completeness %v%% is not in (0, 100]", e.Topic, c)
	}
	if e.P99 < 0 {
		return fmt.Errorf("topic %q: p99 %s is not positive", e.Topic, time.Duration(e.P99))
	}
	if e.SLOWindow < 0 {
		return fmt.Errorf("topic %q: negative slo_window %s", e.Topic, time.Duration(e.SLOWindow))
	}
	return nil
}

// Duration is a time.Duration written as text ("2m") in JSON and YAML. It
// also reads whole days: "30d", "1d12h".
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := parseDuration(string(b))
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("negative duration %s", v)
	}
	*d = Duration(v)
	return nil
}

// parseDuration is time.ParseDuration with a leading number of days.
func parseDuration(s string) (time.Duration, error) {
	days, rest, ok := strings.Cut(s, "d")
	if !ok {
		return time.ParseDuration(s)
	}
	n, err := strconv.ParseUint(days, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	d := time.Duration(n) * 24 * time.Hour
	if rest != "" {
		r, err := time.ParseDuration(rest)
		if err != nil || r < 0 {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		d += r
	}
	return d, nil
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
//	    completeness: 99.99   # SLOs (optional), see Expectation
//	    p99: 5s
//	    slo_window: 30d
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
		if err := e.Validate(); err != nil {
			return nil, fmt.Errorf("expectations: file %s: %w", path, err)
		}
	}
	return &f, nil
}
