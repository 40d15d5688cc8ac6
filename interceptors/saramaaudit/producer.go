package saramaaudit

import (
	"errors"
	"fmt"

	"github.com/IBM/sarama"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/interceptors/internal/hookutil"
)

// sendState is what the send side learned about a message, handed to the
// acknowledgement side. In an AsyncProducer it travels in the message's
// Metadata (the application's Metadata is kept in it and put back before
// the message is returned), so it needs no shared map and cannot leak.
type sendState struct {
	meta   any
	sendNs int64
	id     string
	idBuf  [audit.CorrelationIDLen]byte // the generated ID; the header value points here
	keyBuf [len(audit.CorrelationHeader)]byte
}

// producerAudit is the audit logic shared by the async and sync producers.
type producerAudit struct {
	*auditor
}

// OnSend implements sarama.ProducerInterceptor for the AsyncProducer. Sarama
// calls it from its dispatcher goroutine when the message is taken from
// Input() — before the partitioner, so the partition is unknown here — and
// again each time the message is retried; the first call wins.
func (p *producerAudit) OnSend(m *sarama.ProducerMessage) {
	defer p.g.Recover()
	if m == nil {
		return
	}
	if _, seen := m.Metadata.(*sendState); seen {
		return // a retry
	}
	if s := p.prepare(m); s != nil {
		s.meta = m.Metadata
		m.Metadata = s
	}
}

// prepare gives m a correlation ID header unless it has a non-empty one
// and notes the send time. It returns nil for a topic not audited.
func (p *producerAudit) prepare(m *sarama.ProducerMessage) *sendState {
	if !p.o.audits(m.Topic) {
		return nil
	}
	s := &sendState{sendNs: p.o.now().UnixNano()}
	i := hookutil.Index(m.Headers, headerKey)
	if i >= 0 && len(m.Headers[i].Value) > 0 {
		s.id = string(m.Headers[i].Value)
		return s
	}
	audit.PutCorrelationID(&s.idBuf)
	s.id = string(s.idBuf[:])
	// A new slice: the application may share one backing array between
	// messages.
	hs := make([]sarama.RecordHeader, len(m.Headers), len(m.Headers)+1)
	copy(hs, m.Headers)
	if i >= 0 {
		hs[i].Value = s.idBuf[:]
	} else {
		copy(s.keyBuf[:], audit.CorrelationHeader)
		hs = append(hs, sarama.RecordHeader{Key: s.keyBuf[:], Value: s.idBuf[:]})
	}
	m.Headers = hs
	return s
}

// acked restores m's Metadata and reports its produce result (err nil:
// acknowledged). It runs on the goroutine reading sarama's Successes or
// Errors channel, before the message is handed on.
func (p *producerAudit) acked(m *sarama.ProducerMessage, err error) {
	if m == nil {
		return
	}
	s, _ := m.Metadata.(*sendState)
	if s != nil {
		m.Metadata = s.meta
	}
	p.report(m, s, err)
}

// report emits the one produce event of m: partition, offset and ack time
// when err is nil, the error text (offset -1, no ack time) otherwise.
func (p *producerAudit) report(m *sarama.ProducerMessage, s *sendState, err error) {
	defer p.g.Recover()
	if !p.o.audits(m.Topic) {
		return
	}
	now := p.o.now().UnixNano()
	ev := &codecs.Event{
		Version:    codecs.SchemaVersion,
		Kind:       codecs.KindProduce,
		Topic:      m.Topic,
		Partition:  m.Partition,
		ClientID:   p.o.clientID,
		Host:       p.o.host,
		Source:     Source,
		RecordTsNs: hookutil.UnixNano(m.Timestamp),
	}
	if s != nil {
		ev.CorrelationID = s.id
		ev.SendNs = s.sendNs
	} else {
		// Refused before the interceptors ran (producer shutting down,
		// no transaction): report it if it has an ID of its own.
		p.c.untracked.Add(1)
		i := hookutil.Index(m.Headers, headerKey)
		if i < 0 || len(m.Headers[i].Value) == 0 {
			return
		}
		ev.CorrelationID = string(m.Headers[i].Value)
	}
	if err != nil {
		var pe *sarama.ProducerError
		if errors.As(err, &pe) && pe.Err != nil {
			err = pe.Err
		}
		ev.Error = err.Error()
		ev.Offset = -1
	} else {
		ev.AckNs = now
		ev.Offset = m.Offset
	}
	key, kerr := encoded(m.Key)
	value, verr := encoded(m.Value)
	if kerr == nil && verr == nil {
		ev.PayloadSize = int32(len(key) + len(value))
		ev.Digest = codecs.Digest(key, value)
	}
	p.emit(ev, &p.c.produced)
}

// encoded returns the bytes sarama wrote for a key or value.
func encoded(enc sarama.Encoder) ([]byte, error) {
	switch v := enc.(type) {
	case nil:
		return nil, nil
	case sarama.ByteEncoder:
		return v, nil
	case sarama.StringEncoder:
		return []byte(v), nil
	}
	b, err := enc.Encode()
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return b, nil
}
