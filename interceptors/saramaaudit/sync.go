package saramaaudit

import (
	"errors"
	"fmt"

	"github.com/IBM/sarama"

	"github.com/kaudit/kaudit/audit"
)

// SyncProducer is an audited sarama.SyncProducer: SendMessage and
// SendMessages give each message a correlation_id header (unless it has a
// non-empty one), note the send time, and once sarama has answered emit one
// produce event per message (ack time = when the call returned for the
// message). Nothing else changes.
type SyncProducer struct {
	sarama.SyncProducer // Close and the transaction methods
	pa                  *producerAudit
}

var _ sarama.SyncProducer = (*SyncProducer)(nil)

// NewSyncProducer builds an audited sync producer for the brokers addrs with
// a copy of cfg (nil: sarama.NewConfig()), which it does not modify. The
// copy has both Producer.Return flags on, as sarama's sync producer needs.
// Events name cfg.ClientID unless WithClientID says otherwise. cfg.Version
// must be at least V0_11_0_0 (headers).
func NewSyncProducer(em audit.Emitter, addrs []string, cfg *sarama.Config, opts ...Opt) (*SyncProducer, error) {
	var c sarama.Config
	if cfg != nil {
		c = *cfg
	} else {
		c = *sarama.NewConfig()
	}
	if !c.Version.IsAtLeast(sarama.V0_11_0_0) {
		return nil, fmt.Errorf("saramaaudit: sarama Version %s cannot produce headers; need at least %s", c.Version, sarama.V0_11_0_0)
	}
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	inner, err := sarama.NewSyncProducer(addrs, &c)
	if err != nil {
		return nil, fmt.Errorf("saramaaudit: new sync producer: %w", err)
	}
	return WrapSyncProducer(em, inner, append([]Opt{WithClientID(c.ClientID)}, opts...)...), nil
}

// WrapSyncProducer audits an existing sync producer (one built with
// sarama.NewSyncProducerFromClient, for instance). The producer's client
// ID is not visible through the interface: pass WithClientID.
func WrapSyncProducer(em audit.Emitter, sp sarama.SyncProducer, opts ...Opt) *SyncProducer {
	return &SyncProducer{SyncProducer: sp, pa: &producerAudit{newAuditor(em, newOptions(em, "", opts))}}
}

// SendMessage implements sarama.SyncProducer.
func (p *SyncProducer) SendMessage(msg *sarama.ProducerMessage) (partition int32, offset int64, err error) {
	if msg == nil {
		return p.SyncProducer.SendMessage(msg)
	}
	s := p.prepare(msg)
	partition, offset, err = p.SyncProducer.SendMessage(msg)
	if s != nil {
		p.pa.report(msg, s, err)
	}
	return partition, offset, err
}

// SendMessages implements sarama.SyncProducer. Messages named in the
// returned sarama.ProducerErrors are reported failed, the others acknowledged.
func (p *SyncProducer) SendMessages(msgs []*sarama.ProducerMessage) error {
	states := make([]*sendState, len(msgs))
	for i, m := range msgs {
		if m != nil {
			states[i] = p.prepare(m)
		}
	}
	err := p.SyncProducer.SendMessages(msgs)
	var failed map[*sarama.ProducerMessage]error
	var perrs sarama.ProducerErrors
	if errors.As(err, &perrs) {
		failed = make(map[*sarama.ProducerMessage]error, len(perrs))
		for _, pe := range perrs {
			if pe != nil {
				failed[pe.Msg] = pe
			}
		}
	}
	for i, m := range msgs {
		if states[i] == nil {
			continue
		}
		merr := failed[m]
		if err != nil && failed == nil {
			merr = err // not per message: all of them failed
		}
		p.pa.report(m, states[i], merr)
	}
	return err
}

// prepare is producerAudit.prepare behind the panic guard.
func (p *SyncProducer) prepare(m *sarama.ProducerMessage) (s *sendState) {
	defer p.pa.g.Recover()
	return p.pa.prepare(m)
}

// Stats returns the producer's audit counters.
func (p *SyncProducer) Stats() Stats { return p.pa.stats() }
