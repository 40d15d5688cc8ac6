package correlator

import (
	"github.com/kaudit/kaudit/codecs"
)

// Trail is the correlator's state for one message (one correlation ID): what
// its producer reported and, per consumer group, what its consumers reported.
// It is the value of the correlator's group table.
//
// A trail is a small state machine. Apply folds one audit event into it and
// returns the verdicts the event decided; Sweep is driven by a periodic visit
// of every trail and decides what only the passing of time can decide (today:
// forgetting finished trails).
type Trail struct {
	CorrelationID string `json:"id"`
	Topic         string `json:"topic"`
	// FirstSeenNs is the event time of the first event of the trail. It
	// never changes, so it partitions the trail's verdict rows.
	FirstSeenNs int64 `json:"first_seen_ns"`
	// LastSeenNs is the latest event time folded into the trail.
	LastSeenNs int64 `json:"last_seen_ns"`

	// Produce is what the producer reported at acknowledgement; nil until
	// a produce event arrived.
	Produce *ProduceFacts `json:"produce,omitempty"`
	// ProduceEvents counts produce events (a second one is a duplicate
	// write or a re-delivered audit event).
	ProduceEvents uint32 `json:"produce_events,omitempty"`

	// Groups holds one entry per consumer group that consumed the message,
	// in order of first consumption.
	Groups []GroupFacts `json:"groups,omitempty"`
}

// ProduceFacts is what the producer's audit event told about the message.
type ProduceFacts struct {
	Partition   int32  `json:"partition"`
	Offset      int64  `json:"offset"`
	ClientID    string `json:"client_id,omitempty"`
	Host        string `json:"host,omitempty"`
	SendNs      int64  `json:"send_ns"`
	AckNs       int64  `json:"ack_ns"`
	RecordTsNs  int64  `json:"record_ts_ns,omitempty"`
	Error       string `json:"error,omitempty"`
	Digest      uint64 `json:"digest,omitempty"`
	PayloadSize int32  `json:"payload_size"`
}

// GroupFacts is what one consumer group's audit events told about the
// message, and the last verdict given for that group.
type GroupFacts struct {
	Group          string `json:"group"`
	ClientID       string `json:"client_id,omitempty"`
	Host           string `json:"host,omitempty"`
	Partition      int32  `json:"partition"`
	Offset         int64  `json:"offset"`
	FirstConsumeNs int64  `json:"first_consume_ns"`
	LastConsumeNs  int64  `json:"last_consume_ns"`
	Count          uint32 `json:"count"`
	Digest         uint64 `json:"digest,omitempty"`

	// Status is the status of the last verdict emitted for the group
	// (StatusUnknown: none yet); Seq is its sequence number.
	Status codecs.Status `json:"status,omitempty"`
	Seq    uint64        `json:"seq,omitempty"`
}

// group returns the facts of g, adding an empty entry if g is new.
func (t *Trail) group(g string) *GroupFacts {
	for i := range t.Groups {
		if t.Groups[i].Group == g {
			return &t.Groups[i]
		}
	}
	t.Groups = append(t.Groups, GroupFacts{Group: g})
	return &t.Groups[len(t.Groups)-1]
}

// Apply folds one valid audit event into the trail and returns the verdicts
// it decides, in order. The trail must belong to the event's correlation ID
// (a zero Trail is a new one).
func (t *Trail) Apply(e *codecs.Event) []codecs.Verdict {
	now := e.TimeNs()
	if t.CorrelationID == "" {
		t.CorrelationID = e.CorrelationID
		t.FirstSeenNs = now
	}
	if t.Topic == "" {
		t.Topic = e.Topic
	}
	if now > t.LastSeenNs {
		t.LastSeenNs = now
	}

	switch e.Kind {
	case codecs.KindProduce:
		return t.applyProduce(e, now)
	case codecs.KindConsume:
		return t.applyConsume(e, now)
	}
	return nil
}

func (t *Trail) applyProduce(e *codecs.Event, now int64) []codecs.Verdict {
	t.ProduceEvents++
	if t.Produce != nil {
		// A repeated produce event: the audit record was written twice
		// (at-least-once emitter) or the message was written twice.
		// The first acknowledgement stays the reference.
		return nil
	}
	t.Produce = &ProduceFacts{
		Partition:   e.Partition,
		Offset:      e.Offset,
		ClientID:    e.ClientID,
		Host:        e.Host,
		SendNs:      e.SendNs,
		AckNs:       e.AckNs,
		RecordTsNs:  e.RecordTsNs,
		Error:       e.Error,
		Digest:      e.Digest,
		PayloadSize: e.PayloadSize,
	}
	// Consumers that were faster than the producer's acknowledgement are
	// decided now.
	var out []codecs.Verdict
	for i := range t.Groups {
		if v, ok := t.decide(&t.Groups[i], now); ok {
			out = append(out, v)
		}
	}
	return out
}

func (t *Trail) applyConsume(e *codecs.Event, now int64) []codecs.Verdict {
	g := t.group(e.Group)
	g.Count++
	if g.Count == 1 || e.ConsumeNs < g.FirstConsumeNs {
		g.FirstConsumeNs = e.ConsumeNs
		g.ClientID = e.ClientID
		g.Host = e.Host
		g.Partition = e.Partition
		g.Offset = e.Offset
		g.Digest = e.Digest
	}
	if e.ConsumeNs > g.LastConsumeNs {
		g.LastConsumeNs = e.ConsumeNs
	}
	v, ok := t.decide(g, now)
	if !ok {
		return nil
	}
	return []codecs.Verdict{v}
}

// decide returns the verdict for group g if the facts now call for one that
// differs from the last one emitted.
func (t *Trail) decide(g *GroupFacts, now int64) (codecs.Verdict, bool) {
	if t.Produce == nil || g.Count == 0 {
		// Waiting for the other half of the trail.
		return codecs.Verdict{}, false
	}
	if t.Produce.Error != "" {
		// A failed produce that was consumed anyway is a duplicate
		// write the client was not told about; judged with the
		// verdicts that need expectations and deadlines.
		return codecs.Verdict{}, false
	}
	status := codecs.StatusDelivered
	if g.Status == status && g.Count == 1 {
		return codecs.Verdict{}, false
	}
	g.Status = status
	g.Seq++
	return t.verdict(g, now), true
}

// verdict renders the current facts of group g as a verdict.
func (t *Trail) verdict(g *GroupFacts, now int64) codecs.Verdict {
	v := codecs.Verdict{
		Version:          codecs.SchemaVersion,
		CorrelationID:    t.CorrelationID,
		Topic:            t.Topic,
		Group:            g.Group,
		Status:           g.Status,
		Seq:              g.Seq,
		ConsumerClient:   g.ClientID,
		ConsumerHost:     g.Host,
		ConsumePartition: g.Partition,
		ConsumeOffset:    g.Offset,
		FirstConsumeNs:   g.FirstConsumeNs,
		LastConsumeNs:    g.LastConsumeNs,
		ConsumeCount:     g.Count,
		AckLatencyUs:     -1,
		E2ELatencyUs:     -1,
		FirstSeenNs:      t.FirstSeenNs,
		DecidedNs:        now,
	}
	if p := t.Produce; p != nil {
		v.Partition = p.Partition
		v.Offset = p.Offset
		v.ProducerClient = p.ClientID
		v.ProducerHost = p.Host
		v.SendNs = p.SendNs
		v.AckNs = p.AckNs
		v.ProduceError = p.Error
		v.PayloadSize = p.PayloadSize
		v.AckLatencyUs = latencyUs(p.SendNs, p.AckNs)
		v.E2ELatencyUs = latencyUs(p.SendNs, g.FirstConsumeNs)
	}
	return v
}

// latencyUs is to−from in microseconds, or -1 when either time is unknown.
func latencyUs(from, to int64) int64 {
	if from == 0 || to == 0 {
		return -1
	}
	return (to - from) / 1000
}

// Sweep is called for every trail on each periodic visit with the current
// time. It returns the verdicts that time decided and whether the trail is
// finished and can be deleted: a trail is forgotten once nothing happened to
// it for the retention period (late duplicates within it are still caught).
func (t *Trail) Sweep(nowNs int64, retentionNs int64) (verdicts []codecs.Verdict, done bool) {
	return nil, nowNs-t.LastSeenNs > retentionNs
}
