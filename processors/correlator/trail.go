package correlator

import (
	"github.com/kaudit/kaudit/codecs"
)

// Trail is the correlator's state for one message (one correlation ID): what
// its producer reported and, per consumer group, what its consumers reported.
// It is the value of the correlator's group table.
//
// A trail is a small state machine. Apply folds one audit event into it;
// Sweep is run for every trail on a periodic visit with the current time.
// Both then judge every group the message concerns and return a verdict for
// each group whose judgement changed. A judgement is a pure function of the
// facts and the time (see judge), so replaying the same events gives the
// same verdicts, and a later fact (a late consume, an audit event that was
// slow to arrive) corrects an earlier verdict with a higher Seq.
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
	// ProduceEvents counts produce events; DupWrite is set when two
	// successful produce events gave different positions (the message was
	// written twice).
	ProduceEvents uint32 `json:"produce_events,omitempty"`
	DupWrite      bool   `json:"dup_write,omitempty"`

	// Expected are the groups that must consume the message, fixed when
	// its acknowledgement arrives; DeadlineNs is when they must have (for a
	// trail without a produce event: when it is judged unaudited).
	Expected   []ExpectedGroup `json:"expected,omitempty"`
	DeadlineNs int64           `json:"deadline_ns"`

	// Groups holds one entry per consumer group that consumed the message
	// or was judged, in order of appearance. The group "" stands for the
	// produce itself (PRODUCE_FAILED).
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
	// OtherOffset is set when the group consumed the message at a second
	// position: it was written twice.
	OtherOffset bool `json:"other_offset,omitempty"`

	// Status, Cause and Emitted describe the last verdict emitted for the
	// group (Status zero: none yet); Seq is its sequence number.
	Status  codecs.Status `json:"status,omitempty"`
	Cause   string        `json:"cause,omitempty"`
	Emitted uint32        `json:"emitted_count,omitempty"`
	Seq     uint64        `json:"seq,omitempty"`
}

// Causes of verdicts.
const (
	CauseRedelivery    = "redelivery"     // the same position consumed again
	CauseProducerRetry = "producer_retry" // the message was written twice
	CauseNotConsumed   = "not_consumed"   // LOST: no consume by the deadline
	CauseAfterDeadline = "after_deadline" // LATE: consumed after the deadline
	CauseNoProduce     = "no_produce_event"
	CauseDigest        = "digest_mismatch"
	CauseProduceError  = "produce_error"
)

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

func (t *Trail) expectation(g string) (ExpectedGroup, bool) {
	for _, e := range t.Expected {
		if e.Group == g {
			return e, true
		}
	}
	return ExpectedGroup{}, false
}

// Apply folds one valid audit event into the trail and returns the verdicts
// it decides, in order. p is the policy of the event's topic. The trail
// must belong to the event's correlation ID (a zero Trail is a new one).
func (t *Trail) Apply(e *codecs.Event, p policy) []codecs.Verdict {
	now := e.TimeNs()
	if t.CorrelationID == "" {
		t.CorrelationID = e.CorrelationID
		t.FirstSeenNs = now
		t.DeadlineNs = now + int64(p.deadline)
	}
	if t.Topic == "" {
		t.Topic = e.Topic
	}
	if now > t.LastSeenNs {
		t.LastSeenNs = now
	}
	switch e.Kind {
	case codecs.KindProduce:
		t.applyProduce(e, p)
	case codecs.KindConsume:
		if !t.applyConsume(e) {
			return nil
		}
	}
	return t.judgeAll(now)
}

func (t *Trail) applyProduce(e *codecs.Event, p policy) {
	t.ProduceEvents++
	facts := &ProduceFacts{
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
	switch {
	case t.Produce == nil:
		t.Produce = facts
	case t.Produce.Error != "" && e.Error == "":
		// The application retried a failed produce with the same record
		// and this time it was written: the success is the reference.
		t.Produce = facts
	case e.Error == "" && (e.Partition != t.Produce.Partition || e.Offset != t.Produce.Offset):
		// A second acknowledgement at another position: written twice.
		t.DupWrite = true
		return
	default:
		// A repeated audit event, or another failure: nothing new.
		return
	}
	if facts.Error != "" {
		t.group("") // the produce itself is judged (PRODUCE_FAILED)
		return
	}
	t.Expected = p.expectedAt(facts.AckNs)
	t.DeadlineNs = facts.AckNs + int64(p.deadline)
}

// applyConsume folds a consume event in; it reports false for a repeated
// audit event (same group, position and time), which changes nothing.
func (t *Trail) applyConsume(e *codecs.Event) bool {
	g := t.group(e.Group)
	if g.Count > 0 && (e.ConsumeNs == g.FirstConsumeNs || e.ConsumeNs == g.LastConsumeNs) &&
		e.Partition == g.Partition && e.Offset == g.Offset {
		return false
	}
	g.Count++
	if g.Count == 1 || e.ConsumeNs < g.FirstConsumeNs {
		if g.Count > 1 && (e.Partition != g.Partition || e.Offset != g.Offset) {
			g.OtherOffset = true
		}
		g.FirstConsumeNs = e.ConsumeNs
		g.ClientID = e.ClientID
		g.Host = e.Host
		g.Partition = e.Partition
		g.Offset = e.Offset
		g.Digest = e.Digest
	} else if e.Partition != g.Partition || e.Offset != g.Offset {
		g.OtherOffset = true
	}
	if e.ConsumeNs > g.LastConsumeNs {
		g.LastConsumeNs = e.ConsumeNs
	}
	return true
}

// judge returns the verdict the facts call for in group g at time now, or
// StatusUnknown while the facts do not decide yet.
func (t *Trail) judge(g *GroupFacts, now int64) (codecs.Status, string) {
	p := t.Produce
	if g.Group == "" {
		if p != nil && p.Error != "" {
			return codecs.StatusProduceFailed, CauseProduceError
		}
		return codecs.StatusUnknown, ""
	}
	_, expected := t.expectation(g.Group)
	if p == nil {
		if g.Count > 0 && now >= t.DeadlineNs {
			return codecs.StatusUnauditedProducer, CauseNoProduce
		}
		return codecs.StatusUnknown, ""
	}
	if g.Count == 0 {
		if expected && p.Error == "" && now >= t.DeadlineNs {
			return codecs.StatusLost, CauseNotConsumed
		}
		return codecs.StatusUnknown, ""
	}
	switch {
	case p.Digest != 0 && g.Digest != 0 && p.Digest != g.Digest:
		return codecs.StatusCorrupted, CauseDigest
	case expected && p.Error == "" && g.FirstConsumeNs > t.DeadlineNs:
		return codecs.StatusLate, CauseAfterDeadline
	case g.OtherOffset || t.DupWrite:
		return codecs.StatusDuplicate, CauseProducerRetry
	case g.Count > 1:
		return codecs.StatusDuplicate, CauseRedelivery
	}
	return codecs.StatusDelivered, ""
}

// judgeAll judges the expected groups and every group with facts, and
// returns a verdict for each whose judgement (or consume count) changed.
func (t *Trail) judgeAll(now int64) []codecs.Verdict {
	for _, e := range t.Expected {
		if now >= t.DeadlineNs {
			t.group(e.Group) // make room to record a LOST verdict
		}
	}
	var out []codecs.Verdict
	for i := range t.Groups {
		g := &t.Groups[i]
		status, cause := t.judge(g, now)
		if status == codecs.StatusUnknown {
			continue
		}
		if status == g.Status && cause == g.Cause && g.Count == g.Emitted {
			continue
		}
		g.Status, g.Cause, g.Emitted = status, cause, g.Count
		g.Seq = max(g.Seq+1, uint64(max(now, 0)))
		out = append(out, t.verdict(g, now))
	}
	return out
}

// verdict renders the current facts of group g as a verdict.
func (t *Trail) verdict(g *GroupFacts, now int64) codecs.Verdict {
	v := codecs.Verdict{
		Version:          codecs.SchemaVersion,
		CorrelationID:    t.CorrelationID,
		Topic:            t.Topic,
		Group:            g.Group,
		Status:           g.Status,
		Cause:            g.Cause,
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
	if e, ok := t.expectation(g.Group); ok {
		v.Expected, v.Learned, v.DeadlineNs = true, e.Learned, t.DeadlineNs
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
		if g.Count > 0 {
			v.E2ELatencyUs = latencyUs(p.SendNs, g.FirstConsumeNs)
		}
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

// Sweep judges the trail at time nowNs (deadlines that passed decide LOST
// and UNAUDITED_PRODUCER verdicts) and reports whether the trail is done:
// its deadline passed more than grace ago. Until then late consumes and
// duplicates are still caught; after it the trail is deleted, so the table
// holds only messages younger than deadline + grace.
func (t *Trail) Sweep(nowNs int64, graceNs int64) (verdicts []codecs.Verdict, done bool) {
	verdicts = t.judgeAll(nowNs)
	return verdicts, nowNs >= t.DeadlineNs+graceNs
}
