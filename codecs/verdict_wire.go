package codecs

import (
	"errors"
	"fmt"
	"slices"

	"github.com/kaudit/kaudit/internal/wire"
)

// Field numbers of Verdict in audit.proto.
const (
	vdVersion = 1 + iota
	vdCorrelationID
	vdTopic
	vdGroup
	vdStatus
	vdCause
	vdSeq
	vdPartition
	vdOffset
	vdProducerClient
	vdProducerHost
	vdSendNs
	vdAckNs
	vdProduceError
	vdPayloadSize
	vdConsumerClient
	vdConsumerHost
	vdConsumePartition
	vdConsumeOffset
	vdFirstConsumeNs
	vdLastConsumeNs
	vdConsumeCount
	vdAckLatencyUs
	vdE2ELatencyUs
	vdFirstSeenNs
	vdDecidedNs
	vdExpected
	vdLearned
	vdDeadlineNs
	vdFields = vdDeadlineNs
)

// AppendVerdict appends the binary (protobuf, see audit.proto) encoding of v
// to b and returns the extended slice. It does not validate v; it allocates
// only when b lacks the capacity, and then once. A nil v appends nothing.
func AppendVerdict(b []byte, v *Verdict) []byte {
	if v == nil {
		return b
	}
	b = slices.Grow(b, vdFields*wire.MaxScalar+len(v.CorrelationID)+len(v.Topic)+
		len(v.Group)+len(v.Cause)+len(v.ProducerClient)+len(v.ProducerHost)+
		len(v.ProduceError)+len(v.ConsumerClient)+len(v.ConsumerHost))
	b = wire.AppendVarint(b, vdVersion, uint64(v.Version))
	b = wire.AppendString(b, vdCorrelationID, v.CorrelationID)
	b = wire.AppendString(b, vdTopic, v.Topic)
	b = wire.AppendString(b, vdGroup, v.Group)
	b = wire.AppendVarint(b, vdStatus, uint64(v.Status))
	b = wire.AppendString(b, vdCause, v.Cause)
	b = wire.AppendVarint(b, vdSeq, v.Seq)
	b = wire.AppendSint(b, vdPartition, int64(v.Partition))
	b = wire.AppendSint(b, vdOffset, v.Offset)
	b = wire.AppendString(b, vdProducerClient, v.ProducerClient)
	b = wire.AppendString(b, vdProducerHost, v.ProducerHost)
	b = wire.AppendFixed64(b, vdSendNs, uint64(v.SendNs))
	b = wire.AppendFixed64(b, vdAckNs, uint64(v.AckNs))
	b = wire.AppendString(b, vdProduceError, v.ProduceError)
	b = wire.AppendSint(b, vdPayloadSize, int64(v.PayloadSize))
	b = wire.AppendString(b, vdConsumerClient, v.ConsumerClient)
	b = wire.AppendString(b, vdConsumerHost, v.ConsumerHost)
	b = wire.AppendSint(b, vdConsumePartition, int64(v.ConsumePartition))
	b = wire.AppendSint(b, vdConsumeOffset, v.ConsumeOffset)
	b = wire.AppendFixed64(b, vdFirstConsumeNs, uint64(v.FirstConsumeNs))
	b = wire.AppendFixed64(b, vdLastConsumeNs, uint64(v.LastConsumeNs))
	b = wire.AppendVarint(b, vdConsumeCount, uint64(v.ConsumeCount))
	b = wire.AppendSint(b, vdAckLatencyUs, v.AckLatencyUs)
	b = wire.AppendSint(b, vdE2ELatencyUs, v.E2ELatencyUs)
	b = wire.AppendFixed64(b, vdFirstSeenNs, uint64(v.FirstSeenNs))
	b = wire.AppendFixed64(b, vdDecidedNs, uint64(v.DecidedNs))
	b = wire.AppendVarint(b, vdExpected, boolBit(v.Expected))
	b = wire.AppendVarint(b, vdLearned, boolBit(v.Learned))
	b = wire.AppendFixed64(b, vdDeadlineNs, uint64(v.DeadlineNs))
	return b
}

// UnmarshalVerdict decodes the binary encoding of a verdict into v, which it
// resets first. Unknown fields are skipped; malformed input returns an error
// wrapping ErrMalformed, and a decoded verdict that fails v.Validate returns
// that error. The decoded strings share one copy of b, so b may be reused.
func UnmarshalVerdict(b []byte, v *Verdict) error {
	if v == nil {
		return errors.New("codecs: UnmarshalVerdict into nil *Verdict")
	}
	*v = Verdict{}
	d := wire.NewDecoder(b)
	for d.More() {
		num, typ, err := d.Tag()
		if err != nil {
			return fmt.Errorf("codecs: verdict tag at byte %d: %w", d.Offset(), err)
		}
		switch num {
		case vdVersion:
			v.Version, err = d.Uint32(typ)
		case vdCorrelationID:
			v.CorrelationID, err = d.String(typ)
		case vdTopic:
			v.Topic, err = d.String(typ)
		case vdGroup:
			v.Group, err = d.String(typ)
		case vdStatus:
			var s uint8
			s, err = d.Enum(typ)
			v.Status = Status(s)
		case vdCause:
			v.Cause, err = d.String(typ)
		case vdSeq:
			v.Seq, err = d.Varint(typ)
		case vdPartition:
			v.Partition, err = d.Sint32(typ)
		case vdOffset:
			v.Offset, err = d.Sint64(typ)
		case vdProducerClient:
			v.ProducerClient, err = d.String(typ)
		case vdProducerHost:
			v.ProducerHost, err = d.String(typ)
		case vdSendNs:
			v.SendNs, err = d.Sfixed64(typ)
		case vdAckNs:
			v.AckNs, err = d.Sfixed64(typ)
		case vdProduceError:
			v.ProduceError, err = d.String(typ)
		case vdPayloadSize:
			v.PayloadSize, err = d.Sint32(typ)
		case vdConsumerClient:
			v.ConsumerClient, err = d.String(typ)
		case vdConsumerHost:
			v.ConsumerHost, err = d.String(typ)
		case vdConsumePartition:
			v.ConsumePartition, err = d.Sint32(typ)
		case vdConsumeOffset:
			v.ConsumeOffset, err = d.Sint64(typ)
		case vdFirstConsumeNs:
			v.FirstConsumeNs, err = d.Sfixed64(typ)
		case vdLastConsumeNs:
			v.LastConsumeNs, err = d.Sfixed64(typ)
		case vdConsumeCount:
			v.ConsumeCount, err = d.Uint32(typ)
		case vdAckLatencyUs:
			v.AckLatencyUs, err = d.Sint64(typ)
		case vdE2ELatencyUs:
			v.E2ELatencyUs, err = d.Sint64(typ)
		case vdFirstSeenNs:
			v.FirstSeenNs, err = d.Sfixed64(typ)
		case vdDecidedNs:
			v.DecidedNs, err = d.Sfixed64(typ)
		case vdExpected:
			v.Expected, err = d.Bool(typ)
		case vdLearned:
			v.Learned, err = d.Bool(typ)
		case vdDeadlineNs:
			v.DeadlineNs, err = d.Sfixed64(typ)
		default:
			err = d.Skip(num, typ)
		}
		if err != nil {
			return fmt.Errorf("codecs: verdict field %d: %w", num, err)
		}
	}
	return v.Validate()
}
