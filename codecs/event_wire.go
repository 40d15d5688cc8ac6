package codecs

import (
	"errors"
	"fmt"
	"slices"
)

// Field numbers of AuditEvent in audit.proto.
const (
	evVersion = 1 + iota
	evKind
	evCorrelationID
	evTopic
	evPartition
	evOffset
	evClientID
	evGroup
	evHost
	evSource
	evSendNs
	evAckNs
	evConsumeNs
	evRecordTsNs
	evPayloadSize
	evDigest
	evError
	evDropped
	evWindowStartNs
	evWindowEndNs
	evDroppedKind
	evFields = evDroppedKind
)

// AppendEvent appends the binary (protobuf, see audit.proto) encoding of e to
// b and returns the extended slice. It does not validate e; it allocates only
// when b lacks the capacity, and then once. A nil e appends nothing.
func AppendEvent(b []byte, e *Event) []byte {
	if e == nil {
		return b
	}
	b = slices.Grow(b, evFields*maxScalar+len(e.CorrelationID)+len(e.Topic)+
		len(e.ClientID)+len(e.Group)+len(e.Host)+len(e.Source)+len(e.Error))
	b = appendVarint(b, evVersion, uint64(e.Version))
	b = appendVarint(b, evKind, uint64(e.Kind))
	b = appendString(b, evCorrelationID, e.CorrelationID)
	b = appendString(b, evTopic, e.Topic)
	b = appendSint(b, evPartition, int64(e.Partition))
	b = appendSint(b, evOffset, e.Offset)
	b = appendString(b, evClientID, e.ClientID)
	b = appendString(b, evGroup, e.Group)
	b = appendString(b, evHost, e.Host)
	b = appendString(b, evSource, e.Source)
	b = appendFixed64(b, evSendNs, uint64(e.SendNs))
	b = appendFixed64(b, evAckNs, uint64(e.AckNs))
	b = appendFixed64(b, evConsumeNs, uint64(e.ConsumeNs))
	b = appendFixed64(b, evRecordTsNs, uint64(e.RecordTsNs))
	b = appendSint(b, evPayloadSize, int64(e.PayloadSize))
	b = appendFixed64(b, evDigest, e.Digest)
	b = appendString(b, evError, e.Error)
	b = appendVarint(b, evDropped, uint64(e.Dropped))
	b = appendFixed64(b, evWindowStartNs, uint64(e.WindowStartNs))
	b = appendFixed64(b, evWindowEndNs, uint64(e.WindowEndNs))
	b = appendVarint(b, evDroppedKind, uint64(e.DroppedKind))
	return b
}

// UnmarshalEvent decodes the binary encoding of an event into e, which it
// resets first. Unknown fields are skipped; malformed input returns an error
// wrapping ErrMalformed, and a decoded event that fails e.Validate returns
// that error. The decoded strings share one copy of b, so b may be reused.
func UnmarshalEvent(b []byte, e *Event) error {
	if e == nil {
		return errors.New("codecs: UnmarshalEvent into nil *Event")
	}
	*e = Event{}
	d := decoder{msg: b}
	for d.more() {
		num, typ, err := d.tag()
		if err != nil {
			return fmt.Errorf("codecs: event tag at byte %d: %w", d.off, err)
		}
		switch num {
		case evVersion:
			e.Version, err = d.uint32(typ)
		case evKind:
			var k uint8
			k, err = d.enum(typ)
			e.Kind = Kind(k)
		case evCorrelationID:
			e.CorrelationID, err = d.string(typ)
		case evTopic:
			e.Topic, err = d.string(typ)
		case evPartition:
			e.Partition, err = d.sint32(typ)
		case evOffset:
			e.Offset, err = d.sint64(typ)
		case evClientID:
			e.ClientID, err = d.string(typ)
		case evGroup:
			e.Group, err = d.string(typ)
		case evHost:
			e.Host, err = d.string(typ)
		case evSource:
			e.Source, err = d.string(typ)
		case evSendNs:
			e.SendNs, err = d.sfixed64(typ)
		case evAckNs:
			e.AckNs, err = d.sfixed64(typ)
		case evConsumeNs:
			e.ConsumeNs, err = d.sfixed64(typ)
		case evRecordTsNs:
			e.RecordTsNs, err = d.sfixed64(typ)
		case evPayloadSize:
			e.PayloadSize, err = d.sint32(typ)
		case evDigest:
			e.Digest, err = d.fixed64(typ)
		case evError:
			e.Error, err = d.string(typ)
		case evDropped:
			e.Dropped, err = d.uint32(typ)
		case evWindowStartNs:
			e.WindowStartNs, err = d.sfixed64(typ)
		case evWindowEndNs:
			e.WindowEndNs, err = d.sfixed64(typ)
		case evDroppedKind:
			var k uint8
			k, err = d.enum(typ)
			e.DroppedKind = Kind(k)
		default:
			err = d.skip(num, typ)
		}
		if err != nil {
			return fmt.Errorf("codecs: event field %d: %w", num, err)
		}
	}
	return e.Validate()
}
