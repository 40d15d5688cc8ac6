package auditors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kaudit/kaudit/proxy"
	"github.com/kaudit/kaudit/proxy/traffic"
)

// The default topics of the Kafka auditor.
const (
	DefaultAdminTopic   = "kaudit.admin"
	DefaultTrafficTopic = "kaudit.traffic"
)

// KafkaConfig configures a Kafka auditor.
type KafkaConfig struct {
	// ClientOpts reach the audit cluster (seed brokers, TLS, SASL). The
	// auditor talks to it directly, never through the proxy.
	ClientOpts   []kgo.Opt
	AdminTopic   string // default DefaultAdminTopic
	TrafficTopic string // default DefaultTrafficTopic; "" after defaults means none
	Format       Format
	// Partitions and Replication are used to create missing topics
	// (defaults 3 and 1; a cluster may refuse replication 1).
	Partitions  int32
	Replication int16
	// MaxBuffered is how many records may wait for the audit cluster
	// (default 100,000); past it records are dropped and counted.
	MaxBuffered int
	Logger      *slog.Logger
}

// Kafka writes audit events and traffic records to Kafka topics.
type Kafka struct {
	cfg KafkaConfig
	cl  *kgo.Client
	log *slog.Logger

	sent    atomic.Uint64
	dropped atomic.Uint64
	failed  atomic.Uint64
}

var (
	_ proxy.Auditor  = (*Kafka)(nil)
	_ traffic.Writer = (*Kafka)(nil)
)

// NewKafka connects to the audit cluster and creates the topics if they are
// missing (an error creating them is logged, not returned: the cluster may
// auto-create them, or an operator may).
func NewKafka(ctx context.Context, cfg KafkaConfig) (*Kafka, error) {
	if cfg.AdminTopic == "" {
		cfg.AdminTopic = DefaultAdminTopic
	}
	if cfg.Format == "" {
		cfg.Format = FormatKaudit
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 3
	}
	if cfg.Replication <= 0 {
		cfg.Replication = 1
	}
	if cfg.MaxBuffered <= 0 {
		cfg.MaxBuffered = 100_000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	opts := append([]kgo.Opt{
		kgo.MaxBufferedRecords(cfg.MaxBuffered),
		kgo.ProducerLinger(50 * time.Millisecond),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
	}, cfg.ClientOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka auditor: client: %w", err)
	}
	k := &Kafka{cfg: cfg, cl: cl, log: cfg.Logger}
	topics := []string{cfg.AdminTopic}
	if cfg.TrafficTopic != "" {
		topics = append(topics, cfg.TrafficTopic)
	}
	if err := k.createTopics(ctx, topics); err != nil {
		k.log.Warn("kafka auditor: could not create the audit topics", "topics", topics, "err", err)
	}
	return k, nil
}

func (k *Kafka) createTopics(ctx context.Context, topics []string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 10_000
	for _, t := range topics {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = t, k.cfg.Partitions, k.cfg.Replication
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, k.cl)
	if err != nil {
		return err
	}
	var errs []error
	for _, t := range resp.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("%s: %w", t.Topic, err))
		}
	}
	return errors.Join(errs...)
}

func (k *Kafka) produce(topic string, key, value []byte) {
	r := &kgo.Record{Topic: topic, Key: key, Value: value}
	k.cl.TryProduce(context.Background(), r, func(_ *kgo.Record, err error) {
		switch {
		case err == nil:
			k.sent.Add(1)
		case errors.Is(err, kgo.ErrMaxBuffered):
			if n := k.dropped.Add(1); n == 1 || n%10_000 == 0 {
				k.log.Warn("kafka auditor: producer buffer full; dropping audit records", "dropped", n)
			}
		default:
			if n := k.failed.Add(1); n == 1 || n%10_000 == 0 {
				k.log.Error("kafka auditor: audit record not written", "topic", topic, "failed", n, "err", err)
			}
		}
	})
}

// Audit implements proxy.Auditor.
func (k *Kafka) Audit(ev *proxy.AuditEvent) {
	recs, err := Encode(ev, k.cfg.Format)
	if err != nil {
		k.failed.Add(1)
		k.log.Error("kafka auditor: cannot encode event", "err", err)
		return
	}
	for _, v := range recs {
		k.produce(k.cfg.AdminTopic, []byte(ev.Principal), v)
	}
}

// WriteTraffic implements traffic.Writer.
func (k *Kafka) WriteTraffic(recs []traffic.Record) {
	if k.cfg.TrafficTopic == "" {
		return
	}
	for i := range recs {
		v, err := json.Marshal(&recs[i])
		if err != nil {
			k.failed.Add(1)
			continue
		}
		k.produce(k.cfg.TrafficTopic, []byte(recs[i].Principal+"|"+recs[i].ClientID), v)
	}
}

// KafkaStats are the auditor's counters.
type KafkaStats struct {
	Sent, Dropped, Failed uint64
}

// Stats returns the counters.
func (k *Kafka) Stats() KafkaStats {
	return KafkaStats{Sent: k.sent.Load(), Dropped: k.dropped.Load(), Failed: k.failed.Load()}
}

// Close implements proxy.Auditor: it waits (until ctx ends) for buffered
// records to be written.
func (k *Kafka) Close(ctx context.Context) error {
	err := k.cl.Flush(ctx)
	k.cl.Close()
	st := k.Stats()
	k.log.Info("kafka auditor: closed", "sent", st.Sent, "dropped", st.Dropped, "failed", st.Failed)
	if err != nil {
		return fmt.Errorf("kafka auditor: flush: %w", err)
	}
	return nil
}
