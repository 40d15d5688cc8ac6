package expectations

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/kaudit/kaudit/audit"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Store reads and writes the compacted expectations topic that
// the correlator looks up (`kaudit expect set|list|delete`).
type Store struct {
	cl    *kgo.Client
	topic string
}

// NewStore returns a store on the expectations topic of the
// cluster opts point at; Close it when done.
func NewStore(topic string, opts ...kgo.Opt) (*Store, error) {
	if topic == "" {
		topic = audit.DefaultExpectationsTopic
	}
	// The correlator reads the topic through a goka view: keys must be
	// partitioned as goka partitions them.
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.RecordPartitioner(audit.Partitioner())}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("expectations: kafka client: %w", err)
	}
	return &Store{cl: cl, topic: topic}, nil
}

// Close closes the store's client.
func (s *Store) Close() { s.cl.Close() }

// ensure creates the compacted topic if it is missing.
func (s *Store) ensure(ctx context.Context) error {
	adm := kadm.NewClient(s.cl)
	resp, err := adm.CreateTopics(ctx, 1, -1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, s.topic)
	if err != nil {
		return fmt.Errorf("expectations: create topic %s: %w", s.topic, err)
	}
	for _, r := range resp {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("expectations: create topic %s: %w", s.topic, r.Err)
		}
	}
	return nil
}

// Set writes the expectation of e.Topic, replacing any earlier one.
func (s *Store) Set(ctx context.Context, e *Expectation) error {
	if err := e.Validate(); err != nil {
		return fmt.Errorf("expectations: %w", err)
	}
	if err := s.ensure(ctx); err != nil {
		return err
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	rec := &kgo.Record{Topic: s.topic, Key: []byte(e.Topic), Value: b}
	if err := s.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("expectations: write %s: %w", e.Topic, err)
	}
	return nil
}

// Delete removes the expectation of topic (a tombstone).
func (s *Store) Delete(ctx context.Context, topic string) error {
	if err := s.ensure(ctx); err != nil {
		return err
	}
	rec := &kgo.Record{Topic: s.topic, Key: []byte(topic)}
	if err := s.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("expectations: delete %s: %w", topic, err)
	}
	return nil
}

// List reads the whole topic and returns the current expectation per topic.
func (s *Store) List(ctx context.Context) (map[string]*Expectation, error) {
	if err := s.ensure(ctx); err != nil {
		return nil, err
	}
	adm := kadm.NewClient(s.cl)
	ends, err := adm.ListEndOffsets(ctx, s.topic)
	if err != nil {
		return nil, fmt.Errorf("expectations: end offsets: %w", err)
	}
	want := map[int32]kgo.Offset{}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = kgo.NewOffset().AtStart()
			left[o.Partition] = o.Offset
		}
	})
	out := map[string]*Expectation{}
	if len(want) == 0 {
		return out, nil
	}
	rd, err := kgo.NewClient(append(s.cl.Opts(), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{s.topic: want}))...)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	for len(left) > 0 {
		fs := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("expectations: read %s: %w", s.topic, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset+1 >= left[r.Partition] {
				delete(left, r.Partition)
			}
			if r.Value == nil {
				delete(out, string(r.Key))
				return
			}
			var e Expectation
			if json.Unmarshal(r.Value, &e) == nil {
				e.Topic = string(r.Key)
				out[e.Topic] = &e
			}
		})
	}
	return out, nil
}
