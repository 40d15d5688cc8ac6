package saramaaudit

import (
	"fmt"
	"hash"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"

	"github.com/kaudit/kaudit/audit"
)

// gokaCloseTimeout bounds Close's wait for the results in flight, as goka's
// own producer does.
const gokaCloseTimeout = 60 * time.Second

// ProducerBuilder returns a goka.ProducerBuilder whose producers are audited
// like NewAsyncProducer's: every message a goka processor or emitter writes
// (ctx.Emit, Loopback, goka.Emitter.Emit) gets a correlation_id header and
// one produce event at acknowledgement. Pass it with
// goka.WithProducerBuilder (processors) or goka.WithEmitterProducerBuilder.
//
// The producer is built exactly as goka.ProducerBuilderWithConfig builds it,
// from a copy of cfg (nil: goka.DefaultConfig()), which is not modified:
// the client ID goka passes, and sarama.NewCustomHashPartitioner with the
// hasher goka passes, so keys land in the partitions goka expects.
//
// Writes to goka group tables (topics ending in goka's table suffix,
// "-table" unless changed with goka.SetTableSuffix) are state, not
// messages: they are not audited. Note that goka does not copy an input
// message's headers to what the callback emits, so each output message gets
// its own correlation ID; a callback that forwards the input's headers
// (goka.WithCtxEmitHeaders(ctx.Headers())) makes the output continue the
// input's trail instead, which is rarely what you want across topics.
func ProducerBuilder(em audit.Emitter, cfg *sarama.Config, opts ...Opt) goka.ProducerBuilder {
	return func(brokers []string, clientID string, hasher func() hash.Hash32) (goka.Producer, error) {
		var c sarama.Config
		if cfg != nil {
			c = *cfg
		} else {
			c = *goka.DefaultConfig()
		}
		c.ClientID = clientID
		c.Producer.Partitioner = sarama.NewCustomHashPartitioner(hasher)
		notTable := WithTopicFilter(func(topic string) bool {
			return !strings.HasSuffix(topic, string(goka.GroupTable("")))
		})
		pc, pa, _, err := producerConfig(em, &c, append([]Opt{notTable}, opts...))
		if err != nil {
			return nil, err
		}
		inner, err := sarama.NewAsyncProducer(brokers, pc)
		if err != nil {
			return nil, fmt.Errorf("saramaaudit: failed to start goka producer: %w", err)
		}
		p := &gokaProducer{inner: inner, pa: pa}
		p.done = runResults(inner, pa,
			func(m *sarama.ProducerMessage) {
				if finish, ok := m.Metadata.(goka.PromiseFinisher); ok {
					finish(m, nil)
				}
			},
			func(e *sarama.ProducerError) {
				if e.Msg == nil {
					return
				}
				if finish, ok := e.Msg.Metadata.(goka.PromiseFinisher); ok {
					finish(nil, e)
				}
			},
			func() {}, func() {},
		)
		return p, nil
	}
}

// gokaProducer is goka's Producer on an audited sarama producer: goka's
// own implementation (producer.go), with the results read by the audit.
type gokaProducer struct {
	inner sarama.AsyncProducer
	pa    *producerAudit
	done  <-chan struct{}
}

var _ goka.Producer = (*gokaProducer)(nil)

// Emit implements goka.Producer.
func (p *gokaProducer) Emit(topic string, key string, value []byte) *goka.Promise {
	return p.EmitWithHeaders(topic, key, value, nil)
}

// EmitWithHeaders implements goka.Producer.
func (p *gokaProducer) EmitWithHeaders(topic string, key string, value []byte, headers goka.Headers) *goka.Promise {
	promise, finish := goka.NewPromiseWithFinisher()
	p.inner.Input() <- &sarama.ProducerMessage{
		Topic:    topic,
		Key:      sarama.StringEncoder(key),
		Value:    sarama.ByteEncoder(value),
		Metadata: finish,
		Headers:  headers.ToSarama(),
	}
	return promise
}

// Close implements goka.Producer: it stops the producer and waits (at most
// a minute, like goka) for the results in flight, whose promises and audit
// events are then done.
func (p *gokaProducer) Close() error {
	p.inner.AsyncClose()
	t := time.NewTimer(gokaCloseTimeout)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
	}
	return nil
}

// ConsumerGroupBuilder returns a goka.ConsumerGroupBuilder whose consumer
// groups are audited: every message a goka processor reads from its inputs
// (and loop topic) that carries a correlation ID yields one consume event
// for the processor's group. Pass it with goka.WithConsumerGroupBuilder.
// The group is built like goka.ConsumerGroupBuilderWithConfig builds it,
// from a copy of cfg (nil: goka.DefaultConfig()), which is not modified,
// with the client ID goka passes.
//
// Goka reads tables and views (goka.Join, goka.Lookup, table recovery) with
// a plain sarama consumer (goka.WithConsumerSaramaBuilder), outside any
// group: those reads are state, not deliveries, and are not audited.
func ConsumerGroupBuilder(em audit.Emitter, cfg *sarama.Config, opts ...Opt) goka.ConsumerGroupBuilder {
	return func(brokers []string, group, clientID string) (sarama.ConsumerGroup, error) {
		var c sarama.Config
		if cfg != nil {
			c = *cfg
		} else {
			c = *goka.DefaultConfig()
		}
		c.ClientID = clientID
		return NewConsumerGroup(em, brokers, group, &c, opts...)
	}
}
