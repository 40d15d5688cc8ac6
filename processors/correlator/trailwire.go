package correlator

import (
	"encoding/json"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/kaudit/kaudit/codecs"
)

// The trail's binary encoding is protobuf wire format, written and read by
// hand (no reflection): the correlator decodes and encodes a trail for
// every event, so this is its hot path. Field numbers:
//
//	Trail:   1 id, 2 topic, 3 first_seen_ns, 4 last_seen_ns, 5 produce, 6 produce_events,
//	         7 dup_write, 8 expected (repeated), 9 deadline_ns, 10 groups (repeated)
//	Produce: 1 partition, 2 offset, 3 client_id, 4 host, 5 send_ns, 6 ack_ns, 7 record_ts_ns,
//	         8 error, 9 digest, 10 payload_size
//	Group:   1 group, 2 client_id, 3 host, 4 partition, 5 offset, 6 first_consume_ns,
//	         7 last_consume_ns, 8 count, 9 digest, 10 other_offset, 11 status, 12 cause,
//	         13 emitted, 14 seq
//	Expected: 1 group, 2 learned
//
// A trail stored as JSON (by an earlier version) still decodes: no encoding
// here starts with '{'.

var errTrail = errors.New("malformed trail")

func putStr(b []byte, n protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, n, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func putVarint(b []byte, n protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, n, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func putSint(b []byte, n protowire.Number, v int64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, n, protowire.VarintType)
	return protowire.AppendVarint(b, protowire.EncodeZigZag(v))
}

func putFixed(b []byte, n protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, n, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, v)
}

func putBool(b []byte, n protowire.Number, v bool) []byte {
	if !v {
		return b
	}
	return putVarint(b, n, 1)
}

// putMsg appends field n holding the message enc appends.
func putMsg(b []byte, n protowire.Number, enc func([]byte) []byte) []byte {
	b = protowire.AppendTag(b, n, protowire.BytesType)
	at := len(b)
	b = append(b, 0) // length placeholder: most nested messages are < 128 bytes
	b = enc(b)
	size := len(b) - at - 1
	if size < 128 {
		b[at] = byte(size)
		return b
	}
	l := protowire.SizeVarint(uint64(size))
	b = append(b, make([]byte, l-1)...)
	copy(b[at+l:], b[at+1:at+1+size])
	protowire.AppendVarint(b[at:at], uint64(size))
	return b
}

// AppendTrail appends the binary encoding of t to b.
func AppendTrail(b []byte, t *Trail) []byte {
	b = putStr(b, 1, t.CorrelationID)
	b = putStr(b, 2, t.Topic)
	b = putFixed(b, 3, uint64(t.FirstSeenNs))
	b = putFixed(b, 4, uint64(t.LastSeenNs))
	if p := t.Produce; p != nil {
		b = putMsg(b, 5, func(b []byte) []byte {
			b = putSint(b, 1, int64(p.Partition))
			b = putSint(b, 2, p.Offset)
			b = putStr(b, 3, p.ClientID)
			b = putStr(b, 4, p.Host)
			b = putFixed(b, 5, uint64(p.SendNs))
			b = putFixed(b, 6, uint64(p.AckNs))
			b = putFixed(b, 7, uint64(p.RecordTsNs))
			b = putStr(b, 8, p.Error)
			b = putFixed(b, 9, p.Digest)
			return putSint(b, 10, int64(p.PayloadSize))
		})
	}
	b = putVarint(b, 6, uint64(t.ProduceEvents))
	b = putBool(b, 7, t.DupWrite)
	for _, e := range t.Expected {
		b = putMsg(b, 8, func(b []byte) []byte {
			b = putStr(b, 1, e.Group)
			return putBool(b, 2, e.Learned)
		})
	}
	b = putFixed(b, 9, uint64(t.DeadlineNs))
	for i := range t.Groups {
		g := &t.Groups[i]
		b = putMsg(b, 10, func(b []byte) []byte {
			// The group name is written even when empty: "" is the
			// produce itself.
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			b = protowire.AppendString(b, g.Group)
			b = putStr(b, 2, g.ClientID)
			b = putStr(b, 3, g.Host)
			b = putSint(b, 4, int64(g.Partition))
			b = putSint(b, 5, g.Offset)
			b = putFixed(b, 6, uint64(g.FirstConsumeNs))
			b = putFixed(b, 7, uint64(g.LastConsumeNs))
			b = putVarint(b, 8, uint64(g.Count))
			b = putFixed(b, 9, g.Digest)
			b = putBool(b, 10, g.OtherOffset)
			b = putVarint(b, 11, uint64(g.Status))
			b = putStr(b, 12, g.Cause)
			b = putVarint(b, 13, uint64(g.Emitted))
			return putVarint(b, 14, g.Seq)
		})
	}
	return b
}

// fields walks the fields of msg, calling f for each with its number, type
// and value bytes (varint/fixed values already decoded into v).
func fields(msg []byte, f func(n protowire.Number, typ protowire.Type, v uint64, raw []byte) error) error {
	for len(msg) > 0 {
		n, typ, l := protowire.ConsumeTag(msg)
		if l < 0 {
			return fmt.Errorf("%w: %v", errTrail, protowire.ParseError(l))
		}
		msg = msg[l:]
		var v uint64
		var raw []byte
		switch typ {
		case protowire.VarintType:
			v, l = protowire.ConsumeVarint(msg)
		case protowire.Fixed64Type:
			v, l = protowire.ConsumeFixed64(msg)
		case protowire.BytesType:
			raw, l = protowire.ConsumeBytes(msg)
		default:
			l = protowire.ConsumeFieldValue(n, typ, msg)
		}
		if l < 0 {
			return fmt.Errorf("%w: field %d: %v", errTrail, n, protowire.ParseError(l))
		}
		msg = msg[l:]
		if err := f(n, typ, v, raw); err != nil {
			return err
		}
	}
	return nil
}

// UnmarshalTrail decodes a trail written by AppendTrail (or, from earlier
// versions, as JSON).
func UnmarshalTrail(b []byte, t *Trail) error {
	*t = Trail{}
	if len(b) > 0 && b[0] == '{' {
		return json.Unmarshal(b, t)
	}
	return fields(b, func(n protowire.Number, typ protowire.Type, v uint64, raw []byte) error {
		switch n {
		case 1:
			t.CorrelationID = string(raw)
		case 2:
			t.Topic = string(raw)
		case 3:
			t.FirstSeenNs = int64(v)
		case 4:
			t.LastSeenNs = int64(v)
		case 5:
			p := new(ProduceFacts)
			t.Produce = p
			return fields(raw, func(n protowire.Number, _ protowire.Type, v uint64, raw []byte) error {
				switch n {
				case 1:
					p.Partition = int32(protowire.DecodeZigZag(v))
				case 2:
					p.Offset = protowire.DecodeZigZag(v)
				case 3:
					p.ClientID = string(raw)
				case 4:
					p.Host = string(raw)
				case 5:
					p.SendNs = int64(v)
				case 6:
					p.AckNs = int64(v)
				case 7:
					p.RecordTsNs = int64(v)
				case 8:
					p.Error = string(raw)
				case 9:
					p.Digest = v
				case 10:
					p.PayloadSize = int32(protowire.DecodeZigZag(v))
				}
				return nil
			})
		case 6:
			t.ProduceEvents = uint32(v)
		case 7:
			t.DupWrite = v != 0
		case 8:
			var e ExpectedGroup
			err := fields(raw, func(n protowire.Number, _ protowire.Type, v uint64, raw []byte) error {
				switch n {
				case 1:
					e.Group = string(raw)
				case 2:
					e.Learned = v != 0
				}
				return nil
			})
			t.Expected = append(t.Expected, e)
			return err
		case 9:
			t.DeadlineNs = int64(v)
		case 10:
			var g GroupFacts
			err := fields(raw, func(n protowire.Number, _ protowire.Type, v uint64, raw []byte) error {
				switch n {
				case 1:
					g.Group = string(raw)
				case 2:
					g.ClientID = string(raw)
				case 3:
					g.Host = string(raw)
				case 4:
					g.Partition = int32(protowire.DecodeZigZag(v))
				case 5:
					g.Offset = protowire.DecodeZigZag(v)
				case 6:
					g.FirstConsumeNs = int64(v)
				case 7:
					g.LastConsumeNs = int64(v)
				case 8:
					g.Count = uint32(v)
				case 9:
					g.Digest = v
				case 10:
					g.OtherOffset = v != 0
				case 11:
					g.Status = codecs.Status(v)
				case 12:
					g.Cause = string(raw)
				case 13:
					g.Emitted = uint32(v)
				case 14:
					g.Seq = v
				}
				return nil
			})
			t.Groups = append(t.Groups, g)
			return err
		}
		return nil
	})
}
