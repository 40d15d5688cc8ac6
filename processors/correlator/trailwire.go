package correlator

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/internal/wire"
)

// The trail's encoding is protobuf wire format (trail.proto) behind a small
// header the storage indexes (see trail.proto for the framing), written
// and read by hand with internal/wire: the correlator decodes and encodes a
// trail for every event, so this is its hot path.

// formatV2 is the first byte of a version 2 value.
const formatV2 = 0x02

// Field numbers of trail.proto.
const (
	trID   = 1
	trHops = 2

	hopTopic         = 1
	hopFirstSeen     = 2
	hopLastSeen      = 3
	hopProduce       = 4
	hopProduceEvents = 5
	hopDupWrite      = 6
	hopExpected      = 7
	hopDeadline      = 8
	hopRawDeadline   = 9
	hopGroups        = 10
	hopConfirmDue    = 11
	hopRecheck       = 12

	prPartition   = 1
	prOffset      = 2
	prClientID    = 3
	prHost        = 4
	prSendNs      = 5
	prAckNs       = 6
	prRecordTsNs  = 7
	prError       = 8
	prDigest      = 9
	prPayloadSize = 10

	exGroup   = 1
	exLearned = 2

	grGroup        = 1
	grClientID     = 2
	grHost         = 3
	grPartition    = 4
	grOffset       = 5
	grFirstConsume = 6
	grLastConsume  = 7
	grCount        = 8
	grDigest       = 9
	grOtherOffset  = 10
	grStatus       = 11
	grCause        = 12
	grEmitted      = 13
	grSeq          = 14
	grDecided      = 15
	grUnconfirmed  = 16

	// TrailV1 and GroupV1.
	v1ID            = 1
	v1Topic         = 2
	v1FirstSeen     = 3
	v1LastSeen      = 4
	v1Produce       = 5
	v1ProduceEvents = 6
	v1DupWrite      = 7
	v1Expected      = 8
	v1Deadline      = 9
	v1Groups        = 10
)

// pending is one entry of the oldest-unconsumed index: an expected group
// that has not consumed the message of an acknowledged hop yet.
type pending struct {
	topic, group string
	ackNs        int64
}

// pendings appends the trail's entries of the oldest-unconsumed index to
// out.
func (t *Trail) pendings(out []pending) []pending {
	for i := range t.Hops {
		h := &t.Hops[i]
		p := h.Produce
		if p == nil || p.Error != "" || p.AckNs == 0 {
			continue
		}
		for _, e := range h.Expected {
			consumed := false
			for j := range h.Groups {
				if h.Groups[j].Group == e.Group && h.Groups[j].Count > 0 {
					consumed = true
				}
			}
			if !consumed {
				out = append(out, pending{topic: h.Topic, group: e.Group, ackNs: p.AckNs})
			}
		}
	}
	return out
}

// AppendTrail appends the stored encoding of t (header and message) to b.
func AppendTrail(b []byte, t *Trail) []byte {
	b = append(b, formatV2)
	b = binary.BigEndian.AppendUint64(b, uint64(t.NextDueNs))
	var buf [4]pending // on the stack: most trails have a few groups pending
	ps := t.pendings(buf[:0])
	b = binary.AppendUvarint(b, uint64(len(ps)))
	for _, p := range ps {
		b = binary.AppendUvarint(b, uint64(len(p.topic)))
		b = append(b, p.topic...)
		b = binary.AppendUvarint(b, uint64(len(p.group)))
		b = append(b, p.group...)
		b = binary.BigEndian.AppendUint64(b, uint64(p.ackNs))
	}
	return appendTrailMessage(b, t)
}

func appendTrailMessage(b []byte, t *Trail) []byte {
	b = wire.AppendString(b, trID, t.CorrelationID)
	for i := range t.Hops {
		h := &t.Hops[i]
		b = wire.AppendMessage(b, trHops, func(b []byte) []byte { return appendHop(b, h) })
	}
	return b
}

func appendHop(b []byte, h *Hop) []byte {
	b = wire.AppendString(b, hopTopic, h.Topic)
	b = wire.AppendFixed64(b, hopFirstSeen, uint64(h.FirstSeenNs))
	b = wire.AppendFixed64(b, hopLastSeen, uint64(h.LastSeenNs))
	if p := h.Produce; p != nil {
		b = wire.AppendMessage(b, hopProduce, func(b []byte) []byte { return appendProduce(b, p) })
	}
	b = wire.AppendVarint(b, hopProduceEvents, uint64(h.ProduceEvents))
	b = wire.AppendBool(b, hopDupWrite, h.DupWrite)
	for _, e := range h.Expected {
		b = wire.AppendMessage(b, hopExpected, func(b []byte) []byte {
			b = wire.AppendString(b, exGroup, e.Group)
			return wire.AppendBool(b, exLearned, e.Learned)
		})
	}
	b = wire.AppendFixed64(b, hopDeadline, uint64(h.DeadlineNs))
	b = wire.AppendFixed64(b, hopRawDeadline, uint64(h.RawDeadlineNs))
	for i := range h.Groups {
		g := &h.Groups[i]
		b = wire.AppendMessage(b, hopGroups, func(b []byte) []byte { return appendGroup(b, g) })
	}
	b = wire.AppendFixed64(b, hopConfirmDue, uint64(h.ConfirmDueNs))
	return wire.AppendFixed64(b, hopRecheck, uint64(h.RecheckNs))
}

func appendProduce(b []byte, p *ProduceFacts) []byte {
	b = wire.AppendSint(b, prPartition, int64(p.Partition))
	b = wire.AppendSint(b, prOffset, p.Offset)
	b = wire.AppendString(b, prClientID, p.ClientID)
	b = wire.AppendString(b, prHost, p.Host)
	b = wire.AppendFixed64(b, prSendNs, uint64(p.SendNs))
	b = wire.AppendFixed64(b, prAckNs, uint64(p.AckNs))
	b = wire.AppendFixed64(b, prRecordTsNs, uint64(p.RecordTsNs))
	b = wire.AppendString(b, prError, p.Error)
	b = wire.AppendFixed64(b, prDigest, p.Digest)
	return wire.AppendSint(b, prPayloadSize, int64(p.PayloadSize))
}

func appendGroup(b []byte, g *GroupFacts) []byte {
	b = wire.AppendStringAlways(b, grGroup, g.Group)
	b = wire.AppendString(b, grClientID, g.ClientID)
	b = wire.AppendString(b, grHost, g.Host)
	b = wire.AppendSint(b, grPartition, int64(g.Partition))
	b = wire.AppendSint(b, grOffset, g.Offset)
	b = wire.AppendFixed64(b, grFirstConsume, uint64(g.FirstConsumeNs))
	b = wire.AppendFixed64(b, grLastConsume, uint64(g.LastConsumeNs))
	b = wire.AppendVarint(b, grCount, uint64(g.Count))
	b = wire.AppendFixed64(b, grDigest, g.Digest)
	b = wire.AppendBool(b, grOtherOffset, g.OtherOffset)
	b = wire.AppendVarint(b, grStatus, uint64(g.Status))
	b = wire.AppendString(b, grCause, g.Cause)
	b = wire.AppendVarint(b, grEmitted, uint64(g.Emitted))
	b = wire.AppendVarint(b, grSeq, g.Seq)
	b = wire.AppendFixed64(b, grDecided, uint64(g.DecidedNs))
	return wire.AppendBool(b, grUnconfirmed, g.Unconfirmed)
}

// header is the indexed part of a stored value.
type header struct {
	nextDueNs int64
	pendings  []pending
	body      []byte // the Trail message
}

// parseHeader reads the header of a version 2 value.
func parseHeader(b []byte) (header, error) {
	var h header
	var err error
	h.nextDueNs, h.body, err = walkHeader(b, func(topic, group []byte, ackNs int64) {
		h.pendings = append(h.pendings, pending{topic: string(topic), group: string(group), ackNs: ackNs})
	})
	return h, err
}

// walkHeader reads the header of a version 2 value without copying: it
// calls pending for each pending entry (its topic and group are b's bytes)
// and returns the next due time and the body.
func walkHeader(b []byte, pending func(topic, group []byte, ackNs int64)) (nextDueNs int64, body []byte, err error) {
	if len(b) < 9 || b[0] != formatV2 {
		return 0, nil, wire.Malformed("trail: no version 2 header")
	}
	nextDueNs = int64(binary.BigEndian.Uint64(b[1:9]))
	b = b[9:]
	n, l := binary.Uvarint(b)
	if l <= 0 || n > maxHops*maxGroups {
		return 0, nil, wire.Malformed("trail: pending count")
	}
	b = b[l:]
	str := func() ([]byte, error) {
		n, l := binary.Uvarint(b)
		if l <= 0 || n > uint64(len(b)-l) {
			return nil, wire.Malformed("trail: pending entry")
		}
		s := b[l : l+int(n)]
		b = b[l+int(n):]
		return s, nil
	}
	for range n {
		topic, err := str()
		if err != nil {
			return 0, nil, err
		}
		group, err := str()
		if err != nil {
			return 0, nil, err
		}
		if len(b) < 8 {
			return 0, nil, wire.Malformed("trail: pending ack time")
		}
		pending(topic, group, int64(binary.BigEndian.Uint64(b[:8])))
		b = b[8:]
	}
	return nextDueNs, b, nil
}

// UnmarshalTrail decodes a stored trail: version 2 (AppendTrail), or a
// value written by an earlier version (version 1 protobuf, version 0 JSON),
// which becomes a trail of one hop.
func UnmarshalTrail(b []byte, t *Trail) error {
	*t = Trail{}
	switch {
	case len(b) == 0:
		return wire.Malformed("trail: empty value")
	case b[0] == formatV2:
		due, body, err := walkHeader(b, func([]byte, []byte, int64) {})
		if err != nil {
			return err
		}
		t.NextDueNs = due
		return decodeTrail(body, t)
	case b[0] == '{':
		return decodeV0(b, t)
	default:
		return decodeV1(b, t)
	}
}

func decodeTrail(b []byte, t *Trail) error {
	d := wire.NewDecoder(b)
	for d.More() {
		num, typ, err := d.Tag()
		if err != nil {
			return err
		}
		switch num {
		case trID:
			t.CorrelationID, err = d.String(typ)
		case trHops:
			var m wire.Decoder
			if m, err = d.Message(typ); err == nil {
				var h Hop
				if err = decodeHop(&m, &h); err == nil {
					t.Hops = append(t.Hops, h)
				}
			}
		default:
			err = d.Skip(num, typ)
		}
		if err != nil {
			return fmt.Errorf("trail field %d: %w", num, err)
		}
	}
	return nil
}

func decodeHop(d *wire.Decoder, h *Hop) error {
	for d.More() {
		num, typ, err := d.Tag()
		if err != nil {
			return err
		}
		switch num {
		case hopTopic:
			h.Topic, err = d.String(typ)
		case hopFirstSeen:
			h.FirstSeenNs, err = d.Sfixed64(typ)
		case hopLastSeen:
			h.LastSeenNs, err = d.Sfixed64(typ)
		case hopProduce:
			var m wire.Decoder
			if m, err = d.Message(typ); err == nil {
				h.Produce = new(ProduceFacts)
				err = decodeProduce(&m, h.Produce)
			}
		case hopProduceEvents:
			h.ProduceEvents, err = d.Uint32(typ)
		case hopDupWrite:
			h.DupWrite, err = d.Bool(typ)
		case hopExpected:
			var m wire.Decoder
			if m, err = d.Message(typ); err == nil {
				var e ExpectedGroup
				if err = decodeExpected(&m, &e); err == nil {
					h.Expected = append(h.Expected, e)
				}
			}
		case hopDeadline:
			h.DeadlineNs, err = d.Sfixed64(typ)
		case hopRawDeadline:
			h.RawDeadlineNs, err = d.Sfixed64(typ)
		case hopGroups:
			var m wire.Decoder
			if m, err = d.Message(typ); err == nil {
				var g GroupFacts
				if err = decodeGroup(&m, &g); err == nil {
					h.Groups = append(h.Groups, g)
				}
			}
		case hopConfirmDue:
			h.ConfirmDueNs, err = d.Sfixed64(typ)
		case hopRecheck:
			h.RecheckNs, err = d.Sfixed64(typ)
		default:
			err = d.Skip(num, typ)
		}
		if err != nil {
			return fmt.Errorf("hop field %d: %w", num, err)
		}
	}
	return nil
}

func decodeProduce(d *wire.Decoder, p *ProduceFacts) error {
	for d.More() {
		num, typ, err := d.Tag()
		if err != nil {
			return err
		}
		switch num {
		case prPartition:
			p.Partition, err = d.Sint32(typ)
		case prOffset:
			p.Offset, err = d.Sint64(typ)
		case prClientID:
			p.ClientID, err = d.String(typ)
		case prHost:
			p.Host, err = d.String(typ)
		case prSendNs:
			p.SendNs, err = d.Sfixed64(typ)
		case prAckNs:
			p.AckNs, err = d.Sfixed64(typ)
		case prRecordTsNs:
			p.RecordTsNs, err = d.Sfixed64(typ)
		case prError:
			p.Error, err = d.String(typ)
		case prDigest:
			p.Digest, err = d.Fixed64(typ)
		case prPayloadSize:
			p.PayloadSize, err = d.Sint32(typ)
		default:
			err = d.Skip(num, typ)
		}
		if err != nil {
			return fmt.Errorf("produce field %d: %w", num, err)
		}
	}
	return nil
}

func decodeExpected(d *wire.Decoder, e *ExpectedGroup) error {
	for d.More() {
		num, typ, err := d.Tag()
		if err != nil {
			return err
		}
		switch num {
		case exGroup:
			e.Group, err = d.String(typ)
		case exLearned:
			e.Learned, err = d.Bool(typ)
		default:
			err = d.Skip(num, typ)
		}
		if err != nil {
			return fmt.Errorf("expected field %d: %w", num, err)
		}
	}
	return nil
}

func decodeGroup(d *wire.Decoder, g *GroupFacts) error {
	for d.More() {
		num, typ, err := d.Tag()
		if err != nil {
			return err
		}
		switch num {
		case grGroup:
			g.Group, err = d.String(typ)
		case grClientID:
			g.ClientID, err = d.String(typ)
		case grHost:
			g.Host, err = d.String(typ)
		case grPartition:
			g.Partition, err = d.Sint32(typ)
		case grOffset:
			g.Offset, err = d.Sint64(typ)
		case grFirstConsume:
			g.FirstConsumeNs, err = d.Sfixed64(typ)
		case grLastConsume:
			g.LastConsumeNs, err = d.Sfixed64(typ)
		case grCount:
			g.Count, err = d.Uint32(typ)
		case grDigest:
			g.Digest, err = d.Fixed64(typ)
		case grOtherOffset:
			g.OtherOffset, err = d.Bool(typ)
		case grStatus:
			var s uint8
			s, err = d.Enum(typ)
			g.Status = codecs.Status(s)
		case grCause:
			g.Cause, err = d.String(typ)
		case grEmitted:
			g.Emitted, err = d.Uint32(typ)
		case grSeq:
			g.Seq, err = d.Varint(typ)
		case grDecided:
			g.DecidedNs, err = d.Sfixed64(typ)
		case grUnconfirmed:
			g.Unconfirmed, err = d.Bool(typ)
		default:
			err = d.Skip(num, typ)
		}
		if err != nil {
			return fmt.Errorf("group field %d: %w", num, err)
		}
	}
	return nil
}

// decodeV1 reads a version 1 trail (one topic) into a trail of one hop.
func decodeV1(b []byte, t *Trail) error {
	d := wire.NewDecoder(b)
	var h Hop
	for d.More() {
		num, typ, err := d.Tag()
		if err != nil {
			return err
		}
		switch num {
		case v1ID:
			t.CorrelationID, err = d.String(typ)
		case v1Topic:
			h.Topic, err = d.String(typ)
		case v1FirstSeen:
			h.FirstSeenNs, err = d.Sfixed64(typ)
		case v1LastSeen:
			h.LastSeenNs, err = d.Sfixed64(typ)
		case v1Produce:
			var m wire.Decoder
			if m, err = d.Message(typ); err == nil {
				h.Produce = new(ProduceFacts)
				err = decodeProduce(&m, h.Produce)
			}
		case v1ProduceEvents:
			h.ProduceEvents, err = d.Uint32(typ)
		case v1DupWrite:
			h.DupWrite, err = d.Bool(typ)
		case v1Expected:
			var m wire.Decoder
			if m, err = d.Message(typ); err == nil {
				var e ExpectedGroup
				if err = decodeExpected(&m, &e); err == nil {
					h.Expected = append(h.Expected, e)
				}
			}
		case v1Deadline:
			h.DeadlineNs, err = d.Sfixed64(typ)
		case v1Groups:
			// GroupV1 is Group's fields 1–14.
			var m wire.Decoder
			if m, err = d.Message(typ); err == nil {
				var g GroupFacts
				if err = decodeGroup(&m, &g); err == nil {
					g.DecidedNs = int64(g.Seq) // the best estimate: seq followed the decision time
					h.Groups = append(h.Groups, g)
				}
			}
		default:
			err = d.Skip(num, typ)
		}
		if err != nil {
			return fmt.Errorf("trail v1 field %d: %w", num, err)
		}
	}
	if h.Produce != nil && h.Produce.AckNs != 0 {
		h.RawDeadlineNs = h.DeadlineNs
	}
	t.Hops = []Hop{h}
	t.NextDueNs = h.DeadlineNs
	return nil
}

// trailV0 is the JSON encoding of version 0.
type trailV0 struct {
	ID            string          `json:"id"`
	Topic         string          `json:"topic"`
	FirstSeenNs   int64           `json:"first_seen_ns"`
	LastSeenNs    int64           `json:"last_seen_ns"`
	Produce       *produceV0      `json:"produce"`
	ProduceEvents uint32          `json:"produce_events"`
	DupWrite      bool            `json:"dup_write"`
	Expected      []ExpectedGroup `json:"expected"`
	DeadlineNs    int64           `json:"deadline_ns"`
	Groups        []groupV0       `json:"groups"`
}

type produceV0 struct {
	Partition   int32  `json:"partition"`
	Offset      int64  `json:"offset"`
	ClientID    string `json:"client_id"`
	Host        string `json:"host"`
	SendNs      int64  `json:"send_ns"`
	AckNs       int64  `json:"ack_ns"`
	RecordTsNs  int64  `json:"record_ts_ns"`
	Error       string `json:"error"`
	Digest      uint64 `json:"digest"`
	PayloadSize int32  `json:"payload_size"`
}

type groupV0 struct {
	Group          string        `json:"group"`
	ClientID       string        `json:"client_id"`
	Host           string        `json:"host"`
	Partition      int32         `json:"partition"`
	Offset         int64         `json:"offset"`
	FirstConsumeNs int64         `json:"first_consume_ns"`
	LastConsumeNs  int64         `json:"last_consume_ns"`
	Count          uint32        `json:"count"`
	Digest         uint64        `json:"digest"`
	OtherOffset    bool          `json:"other_offset"`
	Status         codecs.Status `json:"status"`
	Cause          string        `json:"cause"`
	Emitted        uint32        `json:"emitted_count"`
	Seq            uint64        `json:"seq"`
}

func decodeV0(b []byte, t *Trail) error {
	var v trailV0
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("%w: trail v0: %v", wire.ErrMalformed, err)
	}
	h := Hop{Topic: v.Topic, FirstSeenNs: v.FirstSeenNs, LastSeenNs: v.LastSeenNs, ProduceEvents: v.ProduceEvents,
		DupWrite: v.DupWrite, Expected: v.Expected, DeadlineNs: v.DeadlineNs}
	if p := v.Produce; p != nil {
		h.Produce = &ProduceFacts{Partition: p.Partition, Offset: p.Offset, ClientID: p.ClientID, Host: p.Host,
			SendNs: p.SendNs, AckNs: p.AckNs, RecordTsNs: p.RecordTsNs, Error: p.Error, Digest: p.Digest, PayloadSize: p.PayloadSize}
		if p.AckNs != 0 {
			h.RawDeadlineNs = v.DeadlineNs
		}
	}
	for _, g := range v.Groups {
		h.Groups = append(h.Groups, GroupFacts{Group: g.Group, ClientID: g.ClientID, Host: g.Host, Partition: g.Partition,
			Offset: g.Offset, FirstConsumeNs: g.FirstConsumeNs, LastConsumeNs: g.LastConsumeNs, Count: g.Count,
			Digest: g.Digest, OtherOffset: g.OtherOffset, Status: g.Status, Cause: g.Cause, Emitted: g.Emitted,
			Seq: g.Seq, DecidedNs: int64(g.Seq)})
	}
	t.CorrelationID = v.ID
	t.Hops = []Hop{h}
	t.NextDueNs = h.DeadlineNs
	return nil
}
