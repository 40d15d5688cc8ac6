package saramaaudit

import (
	"fmt"

	"github.com/IBM/sarama"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/interceptors/internal/hookutil"
)

// ConsumerInterceptor is a sarama.ConsumerInterceptor that emits one consume
// event per message carrying a correlation_id header. Sarama's interceptor
// does not know the consumer group, so the interceptor is built for one:
// use one ConsumerInterceptor per group (NewConsumerGroup and
// ConsumerGroupBuilder do that for you).
//
// Sarama calls OnConsume when a fetched message is put on a partition's
// Messages channel, which can be up to Config.ChannelBufferSize messages
// before the application takes it; "consumed" means handed to the
// application's channel, not processed.
type ConsumerInterceptor struct {
	*auditor
	group string
}

var _ sarama.ConsumerInterceptor = (*ConsumerInterceptor)(nil)

// NewConsumerInterceptor returns the interceptor for consumers of group
// (required: every consume verdict is per group). Add it to
// Config.Consumer.Interceptors; pass WithClientID to name the client.
func NewConsumerInterceptor(em audit.Emitter, group string, opts ...Opt) *ConsumerInterceptor {
	return &ConsumerInterceptor{auditor: newAuditor(em, newOptions(em, "", opts)), group: group}
}

// OnConsume implements sarama.ConsumerInterceptor. Messages without a
// correlation ID are counted (Stats().Unaudited) and skipped.
func (ci *ConsumerInterceptor) OnConsume(m *sarama.ConsumerMessage) {
	defer ci.g.Recover()
	if m == nil || !ci.o.audits(m.Topic) {
		return
	}
	var id []byte
	if i := hookutil.Index(m.Headers, consumedKey); i >= 0 {
		id = m.Headers[i].Value
	}
	if len(id) == 0 || ci.group == "" {
		ci.c.unaudited.Add(1)
		return
	}
	ev := &codecs.Event{
		Version:       codecs.SchemaVersion,
		Kind:          codecs.KindConsume,
		CorrelationID: string(id),
		Topic:         m.Topic,
		Partition:     m.Partition,
		Offset:        m.Offset,
		ClientID:      ci.o.clientID,
		Group:         ci.group,
		Host:          ci.o.host,
		Source:        Source,
		ConsumeNs:     ci.o.now().UnixNano(),
		RecordTsNs:    hookutil.UnixNano(m.Timestamp),
		PayloadSize:   int32(len(m.Key) + len(m.Value)),
		Digest:        codecs.Digest(m.Key, m.Value),
	}
	ci.emit(ev, &ci.c.consumed)
}

// Stats returns the interceptor's counters.
func (ci *ConsumerInterceptor) Stats() Stats { return ci.stats() }

// NewConsumerGroup builds a sarama consumer group whose consumed messages
// are audited: a copy of cfg (nil: sarama.NewConfig()), which it does not
// modify, gets a ConsumerInterceptor for group appended to
// Consumer.Interceptors. Events name cfg.ClientID unless WithClientID says
// otherwise.
func NewConsumerGroup(em audit.Emitter, addrs []string, group string, cfg *sarama.Config, opts ...Opt) (sarama.ConsumerGroup, error) {
	if group == "" {
		return nil, fmt.Errorf("saramaaudit: consumer group name required")
	}
	c := consumerConfig(em, group, cfg, opts)
	cg, err := sarama.NewConsumerGroup(addrs, group, c)
	if err != nil {
		return nil, fmt.Errorf("saramaaudit: new consumer group %s: %w", group, err)
	}
	return cg, nil
}

// consumerConfig returns a copy of cfg with the audit interceptor for group.
func consumerConfig(em audit.Emitter, group string, cfg *sarama.Config, opts []Opt) *sarama.Config {
	var c sarama.Config
	if cfg != nil {
		c = *cfg
	} else {
		c = *sarama.NewConfig()
	}
	ci := NewConsumerInterceptor(em, group, append([]Opt{WithClientID(c.ClientID)}, opts...)...)
	ics := make([]sarama.ConsumerInterceptor, 0, len(c.Consumer.Interceptors)+1)
	c.Consumer.Interceptors = append(append(ics, c.Consumer.Interceptors...), ci)
	return &c
}

func consumedKey(h **sarama.RecordHeader) []byte {
	if *h == nil {
		return nil
	}
	return (*h).Key
}
