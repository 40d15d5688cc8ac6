package codecs

import (
	"errors"
	"fmt"
	"slices"

	"github.com/kaudit/kaudit/internal/wire"
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
	b = slices.Grow(b, evFields*wire.MaxScalar+len(e.CorrelationID)+len(e.Topic)+
		len(e.ClientID)+len(e.Group)+len(e.Host)+len(e.Source)+len(e.Error))
	b = wire.AppendVarint(b, evVersion, uint64(e.Version))
	b = wire.AppendVarint(b, evKind, uint64(e.Kind))
	b = wire.AppendString(b, evCorrelationID, e.CorrelationID)
	b = wire.AppendString(b, evTopic, e.Topic)
	b = wire.AppendSint(b, evPartition, int64(e.Partition))
	b = wire.AppendSint(b, evOffset, e.Offset)
	b = wire.AppendString(b, evClientID, e.ClientID)
	b = wire.AppendString(b, evGroup, e.Group)
	b = wire.AppendString(b, evHost, e.Host)
	b = wire.AppendString(b, evSource, e.Source)
	b = wire.AppendFixed64(b, evSendNs, uint64(e.SendNs))
	b = wire.AppendFixed64(b, evAckNs, uint64(e.AckNs))
	b = wire.AppendFixed64(b, evConsumeNs, uint64(e.ConsumeNs))
	b = wire.AppendFixed64(b, evRecordTsNs, uint64(e.RecordTsNs))
	b = wire.AppendSint(b, evPayloadSize, int64(e.PayloadSize))
	b = wire.AppendFixed64(b, evDigest, e.Digest)
	b = wire.AppendString(b, evError, e.Error)
	b = wire.AppendVarint(b, evDropped, uint64(e.Dropped))
	b = wire.AppendFixed64(b, evWindowStartNs, uint64(e.WindowStartNs))
	b = wire.AppendFixed64(b, evWindowEndNs, uint64(e.WindowEndNs))
	b = wire.AppendVarint(b, evDroppedKind, uint64(e.DroppedKind))
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
	d := wire.NewDecoder(b)
	for d.More() {
		num, typ, err := d.Tag()
		if err != nil {
			return fmt.Errorf("codecs: event tag at byte %d: %w", d.Offset(), err)
		}
		switch num {
		case evVersion:
			e.Version, err = d.Uint32(typ)
		case evKind:
			var k uint8
			k, err = d.Enum(typ)
			e.Kind = Kind(k)
		case evCorrelationID:
			e.CorrelationID, err = d.String(typ)
		case evTopic:
			e.Topic, err = d.String(typ)
		case evPartition:
			e.Partition, err = d.Sint32(typ)
		case evOffset:
			e.Offset, err = d.Sint64(typ)
		case evClientID:
			e.ClientID, err = d.String(typ)
		case evGroup:
			e.Group, err = d.String(typ)
		case evHost:
			e.Host, err = d.String(typ)
		case evSource:
			e.Source, err = d.String(typ)
		case evSendNs:
			e.SendNs, err = d.Sfixed64(typ)
		case evAckNs:
			e.AckNs, err = d.Sfixed64(typ)
		case evConsumeNs:
			e.ConsumeNs, err = d.Sfixed64(typ)
		case evRecordTsNs:
			e.RecordTsNs, err = d.Sfixed64(typ)
		case evPayloadSize:
			e.PayloadSize, err = d.Sint32(typ)
		case evDigest:
			e.Digest, err = d.Fixed64(typ)
		case evError:
			e.Error, err = d.String(typ)
		case evDropped:
			e.Dropped, err = d.Uint32(typ)
		case evWindowStartNs:
			e.WindowStartNs, err = d.Sfixed64(typ)
		case evWindowEndNs:
			e.WindowEndNs, err = d.Sfixed64(typ)
		case evDroppedKind:
			var k uint8
			k, err = d.Enum(typ)
			e.DroppedKind = Kind(k)
		default:
			err = d.Skip(num, typ)
		}
		if err != nil {
			return fmt.Errorf("codecs: event field %d: %w", num, err)
		}
	}
	return e.Validate()
}
