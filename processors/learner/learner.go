// Package learner learns which consumer groups consume which topics: a goka
// processor that reads the audit events and keeps, per topic, the groups
// seen consuming it with the first and last time. The correlator looks the
// table up: a group seen for longer than the warm-up becomes an expected
// (learned) group of the topic.
//
//	l, _ := learner.New(learner.Config{Brokers: brokers})
//	go l.Run(ctx)
package learner

import (
	"context"
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
	Brokers     []string
	Sarama      *sarama.Config
	Group       string
	EventsTopic string
	StorageDir  string
	// Replication of the topics the learner creates (its table, its loop).
	Replication int
	// Resolution is how often a (topic, group) sighting is written: the
	// learner remembers recent sightings in memory and skips repeats.
	Resolution time.Duration
	Logger     *slog.Logger
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
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Learner{cfg: cfg, recent: map[[2]string]int64{}}, nil
}

// sighting is the loop message: a group consumed a topic at a time.
type sighting struct {
	Group string `json:"group"`
	AtNs  int64  `json:"at_ns"`
}

type sightingCodec struct{}

func (sightingCodec) Encode(v any) ([]byte, error) {
	s, ok := v.(*sighting)
	if !ok {
		return nil, fmt.Errorf("learner: cannot encode %T", v)
	}
	return fmt.Appendf(nil, "%d %s", s.AtNs, s.Group), nil
}

func (sightingCodec) Decode(b []byte) (any, error) {
	at, group, ok := strings.Cut(string(b), " ")
	ns, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil {
		return (*sighting)(nil), nil
	}
	return &sighting{Group: group, AtNs: ns}, nil
}

// Graph is the learner's processor graph.
func (l *Learner) Graph() *goka.GroupGraph {
	return goka.DefineGroup(goka.Group(l.cfg.Group),
		goka.Input(goka.Stream(l.cfg.EventsTopic), new(codec.Bytes), l.onEvent),
		goka.Loop(sightingCodec{}, l.onSighting),
		goka.Persist(Codec{}),
	)
}

// onEvent re-keys consume events by topic (through the loop), skipping
// sightings seen within the resolution.
func (l *Learner) onEvent(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	e, err := codecs.DecodeEvent(raw)
	if err != nil || e.Kind != codecs.KindConsume {
		return // the correlator dead-letters bad events
	}
	key := [2]string{e.Topic, e.Group}
	l.mu.Lock()
	last, ok := l.recent[key]
	fresh := !ok || e.ConsumeNs > last+int64(l.cfg.Resolution) || e.ConsumeNs < last
	if fresh {
		l.recent[key] = e.ConsumeNs
	}
	l.mu.Unlock()
	if fresh {
		ctx.Loopback(e.Topic, &sighting{Group: e.Group, AtNs: e.ConsumeNs})
	}
}

// onSighting records a sighting in the topic's value.
func (l *Learner) onSighting(ctx goka.Context, msg any) {
	s, _ := msg.(*sighting)
	if s == nil || s.Group == "" {
		return
	}
	v, _ := ctx.Value().(*Learned)
	if v == nil {
		v = &Learned{Topic: ctx.Key()}
	}
	if v.seen(s.Group, s.AtNs, int64(l.cfg.Resolution)) {
		ctx.SetValue(v)
	}
}

// Options are the goka options the learner runs with.
func (l *Learner) Options() []goka.ProcessorOption {
	return gokaopts.Options(gokaopts.Config{
		Base:        l.cfg.Sarama,
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
	if err := proc.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("learner: %w", err)
	}
	return nil
}
