// Package learner keeps what kaudit learns about each topic from the audit
// events: a goka processor that reads them and keeps, per topic, the groups
// seen consuming it with the first and last time, and the windows in which
// the topic's clients reported dropped audit events (drop reports). The
// correlator looks the table up: a group seen over a whole warm-up becomes
// an expected (learned) group of the topic, until it has been silent for
// Forget; and a LOST verdict that a drop report could explain gets the
// cause audit_gap.
//
// On kill -9 at any instant: the table is goka's (local storage plus a
// compacted changelog), so a restart recovers it and re-reads the events
// after the last committed offset; a sighting or gap may be recorded twice,
// which changes nothing (sightings keep first/last times, gaps of one
// report window add up, so a replayed report can count its drops twice —
// the cause it gives is the same).
//
//	l, _ := learner.New(learner.Config{Brokers: brokers})
//	go l.Run(ctx)
package learner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/processors/internal/gokaopts"
)

// DefaultGroup is the learner's goka group; its table is
// goka.GroupTable(DefaultGroup).
const DefaultGroup = "kaudit-learner"

// Table is the learner's table for group (the correlator's lookup).
func Table(group string) goka.Table { return goka.GroupTable(goka.Group(group)) }

// Config configures the learner.
type Config struct {
	Brokers []string
	// Sarama configures goka's consumers; ClientOpts the producer (TLS,
	// SASL) of the same cluster.
	Sarama      *sarama.Config
	ClientOpts  []kgo.Opt
	Group       string
	EventsTopic string
	StorageDir  string
	// Replication of the topics the learner creates (its table, its loop).
	Replication int
	// Resolution is how often a (topic, group) sighting is written: the
	// learner remembers recent sightings in memory and skips repeats.
	Resolution time.Duration
	// Forget drops a group from a topic's value once it has not been seen
	// for this long (0: never), so retired and one-off groups do not pile
	// up.
	Forget time.Duration
	// GapRetention is how long drop reports are kept (default 2h).
	GapRetention time.Duration
	Logger       *slog.Logger
}

// Learner is the learning processor.
type Learner struct {
	cfg Config

	mu     sync.Mutex
	recent map[[2]string]int64 // (topic, group) -> last looped event time
}

// New returns a learner.
func New(cfg Config) (*Learner, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("learner: no brokers")
	}
	if cfg.Group == "" {
		cfg.Group = DefaultGroup
	}
	if cfg.EventsTopic == "" {
		cfg.EventsTopic = audit.DefaultEventsTopic
	}
	if cfg.StorageDir == "" {
		cfg.StorageDir = filepath.Join(os.TempDir(), "kaudit-learner")
	}
	if cfg.Resolution <= 0 {
		cfg.Resolution = time.Minute
	}
	if cfg.GapRetention <= 0 {
		cfg.GapRetention = 2 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Learner{cfg: cfg, recent: map[[2]string]int64{}}, nil
}

// loopMsg is the loop message, keyed by topic: a sighting (a group
// consumed the topic at a time) or a drop report.
type loopMsg struct {
	Group string `json:"group,omitempty"`
	AtNs  int64  `json:"at_ns,omitempty"`
	Gap   *Gap   `json:"gap,omitempty"`
}

type loopCodec struct{}

func (loopCodec) Encode(v any) ([]byte, error) {
	m, ok := v.(*loopMsg)
	if !ok {
		return nil, fmt.Errorf("learner: cannot encode %T", v)
	}
	return json.Marshal(m)
}

// Decode reads a loop message; the text form "<at_ns> <group>" of earlier
// versions is still read. Anything else is nothing (nil).
func (loopCodec) Decode(b []byte) (any, error) {
	if len(b) > 0 && b[0] == '{' {
		m := new(loopMsg)
		if err := json.Unmarshal(b, m); err != nil {
			return (*loopMsg)(nil), nil
		}
		return m, nil
	}
	at, group, ok := strings.Cut(string(b), " ")
	ns, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil {
		return (*loopMsg)(nil), nil
	}
	return &loopMsg{Group: group, AtNs: ns}, nil
}

// Graph is the learner's processor graph.
func (l *Learner) Graph() *goka.GroupGraph {
	return goka.DefineGroup(goka.Group(l.cfg.Group),
		goka.Input(goka.Stream(l.cfg.EventsTopic), new(codec.Bytes), l.onEvent),
		goka.Loop(loopCodec{}, l.onLoop),
		goka.Persist(Codec{}),
	)
}

// onEvent re-keys consume events and drop reports by topic (through the
// loop), skipping sightings seen within the resolution.
func (l *Learner) onEvent(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	e, err := codecs.DecodeEvent(raw)
	if err != nil {
		return // the correlator dead-letters bad events
	}
	switch e.Kind {
	case codecs.KindDrops:
		ctx.Loopback(e.Topic, &loopMsg{Gap: &Gap{Group: e.Group, Kind: uint8(e.DroppedKind), Client: e.ClientID,
			StartNs: e.WindowStartNs, EndNs: e.WindowEndNs, Dropped: uint64(e.Dropped)}})
	case codecs.KindConsume:
		if l.fresh(e.Topic, e.Group, e.ConsumeNs) {
			ctx.Loopback(e.Topic, &loopMsg{Group: e.Group, AtNs: e.ConsumeNs})
		}
	}
}

// maxRecent bounds the in-memory sightings (ephemeral group IDs must not
// grow it without bound); past it, the oldest half is forgotten, which only
// costs a few extra loop messages.
const maxRecent = 100_000

func (l *Learner) fresh(topic, group string, at int64) bool {
	key := [2]string{topic, group}
	l.mu.Lock()
	defer l.mu.Unlock()
	last, ok := l.recent[key]
	fresh := !ok || at > last+int64(l.cfg.Resolution) || at < last
	if fresh {
		if len(l.recent) >= maxRecent {
			l.pruneRecent(at)
		}
		l.recent[key] = at
	}
	return fresh
}

// pruneRecent forgets sightings older than the newest minus a few
// resolutions, or every other one if that is not enough.
func (l *Learner) pruneRecent(now int64) {
	cutoff := now - 4*int64(l.cfg.Resolution)
	for k, at := range l.recent {
		if at < cutoff {
			delete(l.recent, k)
		}
	}
	if len(l.recent) >= maxRecent/2 {
		i := 0
		for k := range l.recent {
			if i%2 == 0 {
				delete(l.recent, k)
			}
			i++
		}
	}
}

// onLoop records a sighting or a gap in the topic's value.
func (l *Learner) onLoop(ctx goka.Context, msg any) {
	m, _ := msg.(*loopMsg)
	if m == nil {
		return
	}
	v, _ := ctx.Value().(*Learned)
	if v == nil {
		v = &Learned{Topic: ctx.Key()}
	}
	changed := false
	switch {
	case m.Gap != nil:
		v.gap(*m.Gap, m.Gap.EndNs-int64(l.cfg.GapRetention))
		changed = true
	case m.Group != "":
		changed = v.seen(m.Group, m.AtNs, int64(l.cfg.Resolution))
		if l.cfg.Forget > 0 && v.forget(m.AtNs-int64(l.cfg.Forget)) {
			changed = true
		}
	}
	if changed {
		ctx.SetValue(v)
	}
}

// Options are the goka options the learner runs with.
func (l *Learner) Options() []goka.ProcessorOption {
	return gokaopts.Options(gokaopts.Config{
		Base:        l.cfg.Sarama,
		ClientOpts:  l.cfg.ClientOpts,
		StorageDir:  l.cfg.StorageDir,
		Replication: l.cfg.Replication,
		ClientID:    l.cfg.Group,
		Logger:      l.cfg.Logger,
	})
}

// Run runs the learner until ctx ends.
func (l *Learner) Run(ctx context.Context) error {
	proc, err := goka.NewProcessor(l.cfg.Brokers, l.Graph(), l.Options()...)
	if err != nil {
		return fmt.Errorf("learner: new processor: %w", err)
	}
	err = proc.Run(ctx)
	if ctx.Err() != nil {
		return nil // asked to stop
	}
	if err == nil {
		err = errors.New("processor stopped")
	}
	return fmt.Errorf("learner: %w", err)
}
