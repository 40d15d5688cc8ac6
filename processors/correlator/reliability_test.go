package correlator_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/processors/correlator"
	"github.com/kaudit/kaudit/processors/learner"
)

// A verdict a sweep decides is stored first and written after; until its
// acknowledgement is seen it is written again (same seq) at every
// confirmation, so a crash between the two cannot lose it.
func TestSweepVerdictIsWrittenUntilAcknowledged(t *testing.T) {
	h := newHarness(t, func(c *correlator.Config) { c.ConfirmAfter = 5 * time.Second })
	h.expect("orders", "a")
	h.send(h.produce("m", 0, ms))
	h.out.failing = true
	h.sweepAt(ms + deadline.Nanoseconds() + sec)
	first := h.want("LOST decided, its write fails", "a", "LOST", "not_consumed")
	h.sweepAt(ms + deadline.Nanoseconds() + 3*sec)
	h.want("before the confirmation: nothing")
	h.out.failing = false
	h.sweepAt(ms + deadline.Nanoseconds() + 7*sec)
	again := h.want("confirmation: written again", "a", "LOST", "not_consumed")
	if *again[0] != *first[0] {
		t.Errorf("written again differently:\n%+v\n%+v", again[0], first[0])
	}
	h.sweepAt(ms + deadline.Nanoseconds() + 13*sec)
	h.want("acknowledged: confirmed, nothing more")
	h.sweepAt(ms + deadline.Nanoseconds() + 30*sec)
	h.want("later sweeps: nothing")
}

// The seq of a verdict a sweep decides comes from the deadline, not from
// when the sweep ran: two correlators (a restart, another instance) that
// decide the same loss at different times write the same row.
func TestSweepSeqIsDeterministic(t *testing.T) {
	lost := func(after int64) *codecs.Verdict {
		h := newHarness(t)
		h.expect("orders", "a")
		h.send(h.produce("m", 0, ms))
		h.sweepAt(ms + deadline.Nanoseconds() + after)
		return h.want("sweep", "a", "LOST", "not_consumed")[0]
	}
	a, b := lost(sec), lost(40*sec)
	if a.Seq != b.Seq {
		t.Errorf("seq %d and %d for the same loss", a.Seq, b.Seq)
	}
}

// A client clock far in the future does not keep a trail forever, and one
// near the int64 limit does not decide an instant verdict: deadlines and
// deletion use times clamped to the correlator's clock.
func TestClientClocksAreClamped(t *testing.T) {
	for name, ack := range map[string]int64{
		"a century ahead": 100 * 365 * 24 * int64(time.Hour),
		"overflowing":     math.MaxInt64 - 1,
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, func(c *correlator.Config) { c.ClockSkew = time.Minute })
			h.expect("orders", "a")
			p := h.produce("m", 0, 0)
			p.SendNs, p.AckNs = h.base, sat(h.base, ack)
			h.send(p)
			h.sweepAt(sec)
			h.want("no instant verdict")
			skew := time.Minute.Nanoseconds()
			h.sweepAt(skew + deadline.Nanoseconds() - sec)
			h.want("before the clamped deadline")
			h.sweepAt(skew + deadline.Nanoseconds() + sec)
			v := h.want("after the clamped deadline", "a", "LOST", "not_consumed")[0]
			if v.AckNs != p.AckNs {
				t.Errorf("the verdict shows ack %d, want the client's raw %d", v.AckNs, p.AckNs)
			}
			h.sweepAt(skew + deadline.Nanoseconds() + grace.Nanoseconds() + 2*sec)
			if v := h.tt.TableValue(h.cor.Table(), "m"); v != nil {
				t.Errorf("trail kept past the clamped deadline + grace: %+v", v)
			}
			if h.cor.Stats().Clamped != 1 {
				t.Errorf("stats %+v", h.cor.Stats())
			}
		})
	}
}

func sat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64 - 1
	}
	return a + b
}

// An event without a usable time goes to the dead-letter topic with the
// reason; it decides nothing.
func TestEventWithoutTimeIsDeadLettered(t *testing.T) {
	h := newHarness(t)
	c := h.consume("m", "a", 0)
	c.ConsumeNs = 0
	h.send(c)
	dead := h.out.take(audit.DefaultDLQTopic)
	if len(dead) != 1 || !strings.Contains(header(dead[0], audit.HeaderErrMessage), "usable time") {
		t.Fatalf("dead letters %+v", dead)
	}
	if v := h.tt.TableValue(h.cor.Table(), "m"); v != nil {
		t.Errorf("a trail was made: %+v", v)
	}
}

// A record forwarded with its correlation_id header to another topic (a
// stream processor, MirrorMaker) gets verdicts of its own there, and the
// first topic's verdicts stay DELIVERED, not DUPLICATE.
func TestForwardedRecordHasItsOwnHop(t *testing.T) {
	h := newHarness(t)
	h.expect("orders", "a")
	h.expect("payments", "b")
	h.send(h.produce("m", 0, ms), h.consume("m", "a", 2*ms))
	h.want("orders consumed", "a", "DELIVERED", "")
	fwd := h.produce("m", 3*ms, 4*ms)
	fwd.Topic, fwd.Partition, fwd.Offset = "payments", 0, 7
	h.send(fwd)
	h.want("forwarded: nothing decided yet")
	c := h.consume("m", "b", 5*ms)
	c.Topic, c.Partition, c.Offset = "payments", 0, 7
	h.send(c)
	got := h.want("payments consumed", "b", "DELIVERED", "")
	if got[0].Topic != "payments" || got[0].Partition != 0 || got[0].Offset != 7 || got[0].FirstSeenNs != h.base+4*ms {
		t.Errorf("payments verdict %+v", got[0])
	}
	h.sweepAt(deadline.Nanoseconds() + sec)
	h.want("no losses in either topic")
}

// A record key too large for a trail is dead-lettered with a cut key and a
// header saying so, and the partition goes on.
func TestOversizedKeyIsDeadLettered(t *testing.T) {
	h := newHarness(t)
	big := strings.Repeat("\xff", 400<<10)
	e := h.produce(big, 0, ms)
	h.tt.Consume(audit.DefaultEventsTopic, big, codecs.AppendEvent(nil, e))
	dead := h.out.take(audit.DefaultDLQTopic)
	if len(dead) != 1 || len(dead[0].Key) > 256 || header(dead[0], "kaudit.truncated") == "" ||
		len(header(dead[0], audit.HeaderErrMessage)) > audit.MaxReasonLen+8 {
		t.Fatalf("dead letter: key %d bytes, headers %d", len(dead[0].Key), len(dead[0].Headers))
	}
	h.send(h.produce("ok", 0, ms), h.consume("ok", "g", 2*ms))
	h.want("still going", "g", "DELIVERED", "")
}

// Learned expectations: a one-off consumer (seen once) is never expected,
// and a group silent for longer than LearnForget is expected no more.
func TestLearnedExpectationsExpire(t *testing.T) {
	h := newHarness(t, func(c *correlator.Config) { c.LearnWarmup, c.LearnForget = time.Minute, 5*time.Minute })
	m := time.Minute.Nanoseconds()
	h.tt.SetTableValue(learner.Table(learner.DefaultGroup), "orders", &learner.Learned{Topic: "orders", Groups: []learner.LearnedGroup{
		{Group: "steady", FirstSeenNs: h.base - 10*m, LastSeenNs: h.base - sec},
		{Group: "one-off", FirstSeenNs: h.base - 10*m, LastSeenNs: h.base - 10*m},
		{Group: "retired", FirstSeenNs: h.base - 60*m, LastSeenNs: h.base - 20*m},
	}})
	h.send(h.produce("m", 0, 0))
	h.sweepAt(deadline.Nanoseconds() + sec)
	h.want("only the steady group is expected", "steady", "LOST", "not_consumed")
}

// A LOST verdict for a group whose clients reported dropped audit events
// for the topic around the message's time is an audit gap, not a loss;
// a report that arrives after the loss was decided corrects its cause.
func TestAuditGapCause(t *testing.T) {
	h := newHarness(t, func(c *correlator.Config) { c.RecheckAfter = 20 * time.Second })
	h.expect("orders", "a", "b")
	h.tt.SetTableValue(learner.Table(learner.DefaultGroup), "orders", &learner.Learned{Topic: "orders", Gaps: []learner.Gap{
		{Group: "a", Kind: uint8(codecs.KindConsume), Client: "a-1", StartNs: h.base - sec, EndNs: h.base + 2*sec, Dropped: 40},
	}})
	h.send(h.produce("m", 0, ms))
	h.sweepAt(ms + deadline.Nanoseconds() + sec)
	first := h.want("deadline", "a", "LOST", "audit_gap", "b", "LOST", "not_consumed")
	// b's clients report their drops late.
	h.tt.SetTableValue(learner.Table(learner.DefaultGroup), "orders", &learner.Learned{Topic: "orders", Gaps: []learner.Gap{
		{Group: "a", Kind: uint8(codecs.KindConsume), Client: "a-1", StartNs: h.base - sec, EndNs: h.base + 2*sec, Dropped: 40},
		{Group: "b", Kind: uint8(codecs.KindConsume), Client: "b-1", StartNs: h.base + 5*sec, EndNs: h.base + 6*sec, Dropped: 3},
	}})
	h.sweepAt(ms + deadline.Nanoseconds() + 25*sec)
	got := h.want("re-check", "b", "LOST", "audit_gap")
	if got[0].Seq <= first[1].Seq {
		t.Errorf("corrected cause seq %d not above %d", got[0].Seq, first[1].Seq)
	}
}

// A message every expected group consumed is deleted a duplicate window
// after its last event, not grace after its deadline: the table holds what
// can still change.
func TestConsumedTrailsAreDeletedEarly(t *testing.T) {
	h := newHarness(t, func(c *correlator.Config) { c.Grace, c.DuplicateWindow = time.Hour, 30*time.Second })
	h.expect("orders", "a")
	h.send(h.produce("m", 0, ms), h.consume("m", "a", 2*ms))
	h.send(h.produce("lost", 0, ms))
	h.want("delivered", "a", "DELIVERED", "")
	h.sweepAt(31 * sec)
	h.want("the loss", "a", "LOST", "not_consumed")
	if h.tt.TableValue(h.cor.Table(), "m") != nil {
		t.Error("a consumed message is kept past the duplicate window")
	}
	if h.tt.TableValue(h.cor.Table(), "lost") == nil {
		t.Error("a lost message is deleted before deadline + grace")
	}
}

// A record Kafka refuses for good (here: a dead letter the correlator may
// not write) is dropped and counted with an Error log; it does not hold the
// partition back, which would stop the audit on one record.
func TestPermanentlyRefusedRecordDoesNotStopThePartition(t *testing.T) {
	h := newHarness(t)
	h.out.refuse = audit.DefaultDLQTopic
	h.tt.Consume(audit.DefaultEventsTopic, "junk", []byte{0xff, 0x00})
	h.send(h.produce("m", 0, ms), h.consume("m", "g", 2*ms))
	h.want("the partition goes on", "g", "DELIVERED", "")
	if s := h.cor.Stats(); s.OutDropped != 1 || s.DeadLetter != 1 {
		t.Errorf("stats %+v", s)
	}
}
