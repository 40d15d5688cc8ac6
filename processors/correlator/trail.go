package correlator

import (
	"slices"

	"github.com/kaudit/kaudit/codecs"
)

// Trail is the correlator's state for one correlation ID: one Hop per topic
// the ID was produced to or consumed from. A record forwarded with its
// correlation_id header to another topic (a stream processor passing headers
// through, MirrorMaker 2) is a new hop with verdicts of its own; it never
// makes the first topic's verdicts duplicates. It is the value of the
// correlator's group table.
//
// A trail is a small state machine. Apply folds one audit event into it;
// Sweep is run when the trail is due (NextDueNs) with the current time. Both
// judge the groups the message concerns and return a verdict for each group
// whose judgement changed. A judgement is a pure function of the facts and
// the time (see judge), and every sequence number is a function of the
// facts too (seqAt), so replaying the same events gives the same verdicts
// with the same seq, and a later fact corrects an earlier verdict with a
// higher seq.
type Trail struct {
	CorrelationID string
	Hops          []Hop
	// NextDueNs is when a sweep must look at the trail next: a deadline,
	// a confirmation, a re-check for audit gaps, or its deletion. The
	// correlator's storage indexes trails by it.
	NextDueNs int64
}

// Hop is what is known of the message on one topic.
type Hop struct {
	Topic string
	// FirstSeenNs is the (clamped) time of the hop's first event. It never
	// changes, so it partitions the hop's verdict rows.
	FirstSeenNs int64
	// LastSeenNs is the latest (clamped) event time folded into the hop.
	LastSeenNs int64

	// Produce is what the producer reported at acknowledgement; nil until
	// a produce event arrived. ProduceEvents counts produce events;
	// DupWrite is set when two successful produce events gave different
	// positions (the message was written twice).
	Produce       *ProduceFacts
	ProduceEvents uint32
	DupWrite      bool

	// Expected are the groups that must consume the message, fixed when
	// its acknowledgement arrives; DeadlineNs is when they must have (for a
	// hop without a produce event: when it is judged unaudited). Both use
	// clamped times.
	Expected   []ExpectedGroup
	DeadlineNs int64
	// RawDeadlineNs is the deadline on the producer's clock (its reported
	// ack time plus the deadline); it differs from DeadlineNs only when the
	// producer's clock was clamped.
	RawDeadlineNs int64

	// Groups holds one entry per consumer group that consumed the message
	// or was judged, in order of appearance. The group "" stands for the
	// produce itself (PRODUCE_FAILED).
	Groups []GroupFacts

	// ConfirmDueNs is when the verdicts a sweep emitted are checked for
	// their acknowledgement (re-emitted if none came); RecheckNs is when a
	// LOST verdict is judged again, for audit gaps reported late.
	ConfirmDueNs int64
	RecheckNs    int64
}

// ProduceFacts is what the producer's audit event told about the message.
// Times are as the client reported them (for display and latencies).
type ProduceFacts struct {
	Partition   int32
	Offset      int64
	ClientID    string
	Host        string
	SendNs      int64
	AckNs       int64
	RecordTsNs  int64
	Error       string
	Digest      uint64
	PayloadSize int32
}

// GroupFacts is what one consumer group's audit events told about the
// message, and the last verdict given for that group.
type GroupFacts struct {
	Group          string
	ClientID       string
	Host           string
	Partition      int32
	Offset         int64
	FirstConsumeNs int64
	LastConsumeNs  int64
	Count          uint32
	Digest         uint64
	// OtherOffset is set when the group consumed the message at a second
	// position: it was written twice.
	OtherOffset bool

	// Status, Cause, Emitted (the consume count it was given for), Seq
	// and DecidedNs describe the last verdict given for the group (Status
	// zero: none yet). Unconfirmed marks a verdict decided by a sweep whose
	// acknowledgement has not been seen yet.
	Status      codecs.Status
	Cause       string
	Emitted     uint32
	Seq         uint64
	DecidedNs   int64
	Unconfirmed bool
}

// ExpectedGroup is one group a message is held to.
type ExpectedGroup struct {
	Group   string
	Learned bool
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
	// CauseAuditGap: LOST or UNAUDITED_PRODUCER while the group's (or the
	// producer's) clients reported dropped audit events for the topic: the
	// missing event may never have been sent, so this is a gap in the
	// audit, not a proven loss.
	CauseAuditGap = "audit_gap"
)

// Limits on what one trail holds, so a hostile or broken client cannot make
// a trail (and so a table record, a verdict) unbounded.
const (
	maxHops   = 16
	maxGroups = 256
	// maxText bounds client IDs, hosts and error texts kept in a trail.
	maxText = 512
)

// timing is what a trail needs to know about time and the correlator's
// settings when it is judged.
type timing struct {
	// nowNs is the correlator's clock.
	nowNs int64
	// grace: how long a hop with a loss is kept after its deadline.
	grace int64
	// dupWindow: how long a hop whose expected groups all consumed is kept
	// after its last consume, to catch redeliveries.
	dupWindow int64
	// confirmAfter: how long after a sweep verdict its acknowledgement is
	// checked.
	confirmAfter int64
	// recheckAfter: how long after a LOST verdict it is judged again for
	// audit gaps reported late.
	recheckAfter int64
	// gaps tells whether the clients of group (the producers when group
	// is "") reported dropped audit events of kind for topic in [from, to].
	gaps gapSource
	// acked reports whether the verdict (topic, group, seq) of the trail
	// was acknowledged by the verdicts topic.
	acked func(topic, group string, seq uint64) bool
}

// gapSource tells whether audit events were reported dropped (see
// timing.gaps).
type gapSource interface {
	gap(topic, group string, kind codecs.Kind, from, to int64) bool
}

func (tm *timing) gapAt(topic, group string, kind codecs.Kind, from, to int64) bool {
	return tm.gaps != nil && tm.gaps.gap(topic, group, kind, from, to)
}

// hop returns the hop of topic, adding it if it is new (nil when the trail
// holds maxHops already).
func (t *Trail) hop(topic string, firstSeen int64) *Hop {
	for i := range t.Hops {
		if t.Hops[i].Topic == topic {
			return &t.Hops[i]
		}
	}
	if len(t.Hops) >= maxHops {
		return nil
	}
	t.Hops = append(t.Hops, Hop{Topic: topic, FirstSeenNs: firstSeen})
	return &t.Hops[len(t.Hops)-1]
}

// group returns the facts of g, adding an empty entry if g is new (nil when
// the hop holds maxGroups already).
func (h *Hop) group(g string) *GroupFacts {
	for i := range h.Groups {
		if h.Groups[i].Group == g {
			return &h.Groups[i]
		}
	}
	if len(h.Groups) >= maxGroups {
		return nil
	}
	if h.Groups == nil { // room for the expected groups at once
		h.Groups = make([]GroupFacts, 0, min(max(len(h.Expected), 1), maxGroups))
	}
	h.Groups = append(h.Groups, GroupFacts{Group: g})
	return &h.Groups[len(h.Groups)-1]
}

func (h *Hop) expectation(g string) (ExpectedGroup, bool) {
	for _, e := range h.Expected {
		if e.Group == g {
			return e, true
		}
	}
	return ExpectedGroup{}, false
}

// applied is what Apply did with an event.
type applied struct {
	verdicts []codecs.Verdict
	// repeat: the event was already in the trail (a replay after a crash
	// or a rebalance, or a client that sent it twice); verdicts then holds
	// the current verdicts of the groups it concerns, re-emitted with
	// their seq so that an emit lost in the crash is made good.
	repeat bool
	// dropped: the trail could hold no more hops or groups.
	dropped bool
}

// Apply folds one valid audit event into the trail. p is the policy of the
// event's topic; effNs is the event's clamped time (see clampTime). The
// trail must belong to the event's correlation ID (a zero Trail is a new
// one).
func (t *Trail) Apply(e *codecs.Event, p policy, effNs int64, tm *timing) applied {
	if t.CorrelationID == "" {
		t.CorrelationID = e.CorrelationID
	}
	h := t.hop(e.Topic, effNs)
	if h == nil {
		return applied{dropped: true}
	}
	if h.DeadlineNs == 0 {
		h.DeadlineNs = effNs + int64(p.deadline)
	}
	h.LastSeenNs = max(h.LastSeenNs, effNs)
	var out applied
	switch e.Kind {
	case codecs.KindProduce:
		if !h.applyProduce(e, p, effNs) {
			out.repeat = true
			out.verdicts = h.current(t.CorrelationID, "", true)
			return out
		}
	case codecs.KindConsume:
		g := h.group(e.Group)
		if g == nil {
			return applied{dropped: true}
		}
		if !g.applyConsume(e) {
			out.repeat = true
			out.verdicts = h.current(t.CorrelationID, e.Group, false)
			return out
		}
	}
	// Judged at the event's own (clamped) time, not the correlator's: the
	// verdicts of a replay are then the same.
	out.verdicts = h.judgeAll(t.CorrelationID, effNs, effNs, tm, false)
	return out
}

// applyProduce folds a produce event in; it reports false for an event
// that adds nothing (a repeat, or a second failure).
func (h *Hop) applyProduce(e *codecs.Event, p policy, effNs int64) bool {
	facts := &ProduceFacts{
		Partition:   e.Partition,
		Offset:      e.Offset,
		ClientID:    cut(e.ClientID),
		Host:        cut(e.Host),
		SendNs:      e.SendNs,
		AckNs:       e.AckNs,
		RecordTsNs:  e.RecordTsNs,
		Error:       cut(e.Error),
		Digest:      e.Digest,
		PayloadSize: e.PayloadSize,
	}
	switch {
	case h.Produce == nil:
		h.Produce = facts
	case h.Produce.Error != "" && e.Error == "":
		// The application retried a failed produce with the same record
		// and this time it was written: the success is the reference.
		h.Produce = facts
	case e.Error == "" && (e.Partition != h.Produce.Partition || e.Offset != h.Produce.Offset):
		// A second acknowledgement at another position: written twice.
		if h.DupWrite {
			return false
		}
		h.ProduceEvents++
		h.DupWrite = true
		return true
	default:
		// A repeated audit event, or another failure: nothing new.
		return false
	}
	h.ProduceEvents++
	if facts.Error != "" {
		h.group("") // the produce itself is judged (PRODUCE_FAILED)
		return true
	}
	h.Expected = p.expectedAt(effNs)
	h.DeadlineNs = effNs + int64(p.deadline)
	h.RawDeadlineNs = facts.AckNs + int64(p.deadline)
	return true
}

// applyConsume folds a consume event in; it reports false for a repeated
// audit event (same position and time), which changes nothing.
func (g *GroupFacts) applyConsume(e *codecs.Event) bool {
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
		g.ClientID = cut(e.ClientID)
		g.Host = cut(e.Host)
		g.Partition = e.Partition
		g.Offset = e.Offset
		g.Digest = e.Digest
	} else if e.Partition != g.Partition || e.Offset != g.Offset {
		g.OtherOffset = true
	}
	g.LastConsumeNs = max(g.LastConsumeNs, e.ConsumeNs)
	return true
}

// judge returns the verdict the facts call for in group g at time now, or
// StatusUnknown while the facts do not decide yet.
func (h *Hop) judge(g *GroupFacts, now int64, tm *timing) (codecs.Status, string) {
	p := h.Produce
	if g.Group == "" {
		if p != nil && p.Error != "" {
			return codecs.StatusProduceFailed, CauseProduceError
		}
		return codecs.StatusUnknown, ""
	}
	_, expected := h.expectation(g.Group)
	if p == nil {
		if g.Count > 0 && now >= h.DeadlineNs {
			if tm.gapAt(h.Topic, "", codecs.KindProduce, h.FirstSeenNs-(h.DeadlineNs-h.FirstSeenNs), h.DeadlineNs) {
				return codecs.StatusUnauditedProducer, CauseAuditGap
			}
			return codecs.StatusUnauditedProducer, CauseNoProduce
		}
		return codecs.StatusUnknown, ""
	}
	if g.Count == 0 {
		if expected && p.Error == "" && now >= h.DeadlineNs {
			if tm.gapAt(h.Topic, g.Group, codecs.KindConsume, h.FirstSeenNs, h.DeadlineNs) {
				return codecs.StatusLost, CauseAuditGap
			}
			return codecs.StatusLost, CauseNotConsumed
		}
		return codecs.StatusUnknown, ""
	}
	switch {
	case p.Digest != 0 && g.Digest != 0 && p.Digest != g.Digest:
		return codecs.StatusCorrupted, CauseDigest
	case expected && p.Error == "" && g.FirstConsumeNs > h.lateAfter():
		return codecs.StatusLate, CauseAfterDeadline
	case g.OtherOffset || h.DupWrite:
		return codecs.StatusDuplicate, CauseProducerRetry
	case g.Count > 1:
		return codecs.StatusDuplicate, CauseRedelivery
	}
	return codecs.StatusDelivered, ""
}

// lateAfter is the deadline on the clients' clock, against which their
// consume times are compared: the acknowledgement as the producer reported
// it plus the deadline (DeadlineNs is the same on the correlator's clamped
// clock, used for scheduling).
func (h *Hop) lateAfter() int64 {
	if h.RawDeadlineNs != 0 {
		return h.RawDeadlineNs
	}
	return h.DeadlineNs
}

// judgeAll judges the expected groups and every group with facts, and
// returns a verdict for each whose judgement (or consume count) changed.
// trigger is the time the judgement is due to (the event's time, or the
// deadline for a sweep): it orders the verdict's seq. bySweep marks the
// verdicts as unconfirmed.
func (h *Hop) judgeAll(id string, now, trigger int64, tm *timing, bySweep bool) []codecs.Verdict {
	if now >= h.DeadlineNs && h.Produce != nil && h.Produce.Error == "" {
		for _, e := range h.Expected {
			h.group(e.Group) // make room to record a LOST verdict
		}
	}
	var out []codecs.Verdict
	for i := range h.Groups {
		g := &h.Groups[i]
		status, cause := h.judge(g, now, tm)
		if status == codecs.StatusUnknown {
			continue
		}
		if status == g.Status && cause == g.Cause && g.Count == g.Emitted {
			continue
		}
		g.Status, g.Cause, g.Emitted = status, cause, g.Count
		g.Seq = max(g.Seq+1, uint64(max(trigger, 0)))
		g.DecidedNs = now
		g.Unconfirmed = bySweep
		if status == codecs.StatusLost && cause == CauseNotConsumed && tm.recheckAfter > 0 {
			h.RecheckNs = now + tm.recheckAfter
		}
		out = append(out, h.verdict(id, g))
	}
	if bySweep && len(out) > 0 {
		h.ConfirmDueNs = now + tm.confirmAfter
	}
	return out
}

// current returns the verdicts already given for group (every group when
// all), as they were emitted.
func (h *Hop) current(id, group string, all bool) []codecs.Verdict {
	var out []codecs.Verdict
	for i := range h.Groups {
		g := &h.Groups[i]
		if g.Status == codecs.StatusUnknown || (!all && g.Group != group) {
			continue
		}
		out = append(out, h.verdict(id, g))
	}
	return out
}

// verdict renders the facts of group g as its verdict.
func (h *Hop) verdict(id string, g *GroupFacts) codecs.Verdict {
	v := codecs.Verdict{
		Version:          codecs.SchemaVersion,
		CorrelationID:    id,
		Topic:            h.Topic,
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
		ConsumeCount:     g.Emitted,
		AckLatencyUs:     -1,
		E2ELatencyUs:     -1,
		FirstSeenNs:      h.FirstSeenNs,
		DecidedNs:        g.DecidedNs,
	}
	if e, ok := h.expectation(g.Group); ok {
		v.Expected, v.Learned, v.DeadlineNs = true, e.Learned, h.lateAfter()
	}
	if p := h.Produce; p != nil {
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

// Sweep judges the trail at the correlator's time tm.nowNs: deadlines that
// passed decide LOST and UNAUDITED_PRODUCER verdicts, LOST verdicts are
// judged again for audit gaps, verdicts emitted by an earlier sweep whose
// acknowledgement was not seen are emitted again with their seq, and hops
// that can no longer change are dropped. It returns the verdicts to emit,
// whether the trail changed (and must be stored), and whether it is done
// (to be deleted). NextDueNs is updated.
func (t *Trail) Sweep(tm *timing) (verdicts []codecs.Verdict, changed, done bool) {
	now := tm.nowNs
	kept := t.Hops[:0]
	for i := range t.Hops {
		h := t.Hops[i]
		// Re-emit or confirm what an earlier sweep emitted.
		if h.ConfirmDueNs != 0 && now >= h.ConfirmDueNs {
			pending := false
			for j := range h.Groups {
				g := &h.Groups[j]
				if !g.Unconfirmed {
					continue
				}
				if tm.acked != nil && tm.acked(h.Topic, g.Group, g.Seq) {
					g.Unconfirmed = false
					changed = true
					continue
				}
				pending = true
				verdicts = append(verdicts, h.verdict(t.CorrelationID, g))
			}
			if pending {
				h.ConfirmDueNs = now + tm.confirmAfter
			} else {
				h.ConfirmDueNs = 0
			}
			changed = true
		}
		if h.RecheckNs != 0 && now >= h.RecheckNs {
			h.RecheckNs = 0
			changed = true
		}
		if now >= h.DeadlineNs {
			if vs := h.judgeAll(t.CorrelationID, now, h.DeadlineNs, tm, true); len(vs) > 0 {
				verdicts = append(verdicts, vs...)
				changed = true
			}
		}
		if h.ConfirmDueNs == 0 && now >= h.deleteAt(tm) {
			changed = true
			continue // the hop can no longer change: drop it
		}
		kept = append(kept, h)
	}
	t.Hops = kept
	if len(t.Hops) == 0 {
		return verdicts, true, true
	}
	due := t.nextDue(tm)
	if due != t.NextDueNs {
		t.NextDueNs = due
		changed = true
	}
	return verdicts, changed, false
}

// deleteAt is when the hop can no longer change its verdicts: grace after
// its deadline; or, when every expected group consumed it without being
// LOST or LATE, the duplicate window after its last event (redeliveries are
// still caught until then).
func (h *Hop) deleteAt(tm *timing) int64 {
	long := h.DeadlineNs + tm.grace
	if tm.dupWindow <= 0 || len(h.Expected) == 0 || h.Produce == nil || h.Produce.Error != "" {
		return long
	}
	for _, e := range h.Expected {
		var g *GroupFacts
		for i := range h.Groups {
			if h.Groups[i].Group == e.Group {
				g = &h.Groups[i]
			}
		}
		if g == nil || g.Count == 0 || g.Status == codecs.StatusUnknown || g.Status == codecs.StatusLost || g.Status == codecs.StatusLate {
			return long
		}
	}
	return min(long, h.LastSeenNs+tm.dupWindow)
}

// nextDue is the earliest time a sweep must look at the trail.
func (t *Trail) nextDue(tm *timing) int64 {
	due := int64(1<<63 - 1)
	for i := range t.Hops {
		h := &t.Hops[i]
		due = min(due, h.deleteAt(tm))
		if h.ConfirmDueNs != 0 {
			due = min(due, h.ConfirmDueNs)
		}
		if h.RecheckNs != 0 {
			due = min(due, h.RecheckNs)
		}
		if h.undecided() {
			due = min(due, h.DeadlineNs)
		}
	}
	return due
}

// undecided reports whether the hop's deadline can still decide something:
// an expected group with no verdict, or a consumed group waiting for a
// produce event.
func (h *Hop) undecided() bool {
	if h.Produce == nil {
		for i := range h.Groups {
			if h.Groups[i].Group != "" && h.Groups[i].Status == codecs.StatusUnknown {
				return true
			}
		}
		return false
	}
	if h.Produce.Error != "" {
		return false
	}
	for _, e := range h.Expected {
		found := false
		for i := range h.Groups {
			if h.Groups[i].Group == e.Group && h.Groups[i].Status != codecs.StatusUnknown {
				found = true
			}
		}
		if !found {
			return true
		}
	}
	return false
}

// refreshDue recomputes NextDueNs after Apply.
func (t *Trail) refreshDue(tm *timing) { t.NextDueNs = t.nextDue(tm) }

// cut bounds a client-supplied text kept in a trail.
func cut(s string) string {
	if len(s) <= maxText {
		return s
	}
	return s[:maxText]
}

// sortExpected orders expected groups by name.
func sortExpected(gs []ExpectedGroup) {
	slices.SortFunc(gs, func(a, b ExpectedGroup) int {
		switch {
		case a.Group < b.Group:
			return -1
		case a.Group > b.Group:
			return 1
		}
		return 0
	})
}
