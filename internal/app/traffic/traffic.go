// Package traffic generates audited demo traffic: one instrumented franz-go
// producer writing to a topic at a steady rate, and instrumented consumer
// groups reading it, some slower than others. Every client carries kaudit's
// franz-go hooks, so the correlator sees the same events it would see from a
// real application.
package traffic

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/interceptors/emitter"
	"github.com/kaudit/kaudit/interceptors/kgoaudit"
)

// Group is one consumer group of the demo.
type Group struct {
	Name string
	// PollEvery makes a slow consumer: it polls at most this often, so its
	// records wait longer (0: as fast as records come).
	PollEvery time.Duration
	// StopAfter makes a consumer that dies: it stops consuming after this
	// long (0: never).
	StopAfter time.Duration
}

// Config configures Run.
type Config struct {
	Brokers    []string
	ClientOpts []kgo.Opt
	// Emitter receives the audit events of every demo client.
	Emitter *emitter.Emitter
	Topic   string
	// Rate is messages per second; Count stops the producer after that
	// many (0: until the context ends).
	Rate        int
	Count       int
	PayloadSize int
	// Partitions of the topic, if Produce creates it (default 3).
	Partitions int
	Groups     []Group
	Logger     *slog.Logger
}

// Traffic runs the demo clients; its counters can be read while it runs.
type Traffic struct {
	cfg      Config
	produced atomic.Int64
	failed   atomic.Int64
	mu       sync.Mutex
	consumed map[string]*atomic.Int64
}

// New validates cfg.
func New(cfg Config) (*Traffic, error) {
	if len(cfg.Brokers) == 0 || cfg.Emitter == nil || cfg.Topic == "" {
		return nil, errors.New("traffic: brokers, emitter and topic are required")
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 200
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 3
	}
	if cfg.PayloadSize <= 0 {
		cfg.PayloadSize = 128
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	t := &Traffic{cfg: cfg, consumed: map[string]*atomic.Int64{}}
	for _, g := range cfg.Groups {
		t.consumed[g.Name] = new(atomic.Int64)
	}
	return t, nil
}

// Produced is the number of acknowledged messages; Failed the failed ones.
func (t *Traffic) Produced() int64 { return t.produced.Load() }

// Failed is the number of produces that failed.
func (t *Traffic) Failed() int64 { return t.failed.Load() }

// Consumed is the number of records group has polled.
func (t *Traffic) Consumed(group string) int64 {
	if c := t.consumed[group]; c != nil {
		return c.Load()
	}
	return 0
}

// Produce writes messages until Count is reached or ctx ends, then flushes.
func (t *Traffic) Produce(ctx context.Context) error {
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(t.cfg.Brokers...),
		kgo.ClientID("kaudit-demo-producer"),
		kgo.DefaultProduceTopic(t.cfg.Topic),
		kgo.WithHooks(kgoaudit.New(t.cfg.Emitter)),
		kgo.ProducerLinger(5 * time.Millisecond),
	}, t.cfg.ClientOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("traffic: producer: %w", err)
	}
	defer cl.Close()
	if err := t.ensureTopic(ctx, cl); err != nil {
		return err
	}

	interval := time.Second / time.Duration(t.cfg.Rate)
	tick := time.NewTicker(max(interval, time.Millisecond))
	defer tick.Stop()
	perTick := max(1, int(time.Millisecond/interval))
	payload := make([]byte, t.cfg.PayloadSize)
	done := func(_ *kgo.Record, err error) {
		if err != nil {
			t.failed.Add(1)
			return
		}
		t.produced.Add(1)
	}
	sent := 0
loop:
	for t.cfg.Count == 0 || sent < t.cfg.Count {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
		}
		for i := 0; i < perTick && (t.cfg.Count == 0 || sent < t.cfg.Count); i++ {
			for j := range payload {
				payload[j] = byte('a' + rand.IntN(26))
			}
			r := &kgo.Record{
				Key:   fmt.Appendf(nil, "order-%d", sent),
				Value: append([]byte(nil), payload...),
			}
			cl.Produce(context.WithoutCancel(ctx), r, done)
			sent++
		}
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := cl.Flush(fctx); err != nil {
		return fmt.Errorf("traffic: flush: %w", err)
	}
	return nil
}

// Consume runs group g until ctx ends.
func (t *Traffic) Consume(ctx context.Context, g Group) error {
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(t.cfg.Brokers...),
		kgo.ClientID("kaudit-demo-" + g.Name),
		kgo.ConsumerGroup(g.Name),
		kgo.ConsumeTopics(t.cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.WithHooks(kgoaudit.New(t.cfg.Emitter)),
	}, t.cfg.ClientOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("traffic: consumer %s: %w", g.Name, err)
	}
	defer cl.Close()
	count := t.consumed[g.Name]
	if g.StopAfter > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.StopAfter)
		defer cancel()
	}
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				t.cfg.Logger.Warn("demo consumer fetch error", "group", g.Name, "topic", topic, "partition", p, "err", err)
			}
		})
		count.Add(int64(fs.NumRecords()))
		if g.PollEvery > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(g.PollEvery):
			}
		}
	}
	return nil
}

// ensureTopic creates the demo topic if it does not exist.
func (t *Traffic) ensureTopic(ctx context.Context, cl *kgo.Client) error {
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopics(ctx, int32(t.cfg.Partitions), -1, nil, t.cfg.Topic)
	if err != nil {
		return fmt.Errorf("traffic: create topic %s: %w", t.cfg.Topic, err)
	}
	for _, r := range resp {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("traffic: create topic %s: %w", t.cfg.Topic, r.Err)
		}
	}
	return nil
}
