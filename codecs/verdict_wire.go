package codecs

import (
	"errors"
	"fmt"
	"slices"
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
	b = slices.Grow(b, vdFields*maxScalar+len(v.CorrelationID)+len(v.Topic)+
		len(v.Group)+len(v.Cause)+len(v.ProducerClient)+len(v.ProducerHost)+
		len(v.ProduceError)+len(v.ConsumerClient)+len(v.ConsumerHost))
	b = appendVarint(b, vdVersion, uint64(v.Version))
	b = appendString(b, vdCorrelationID, v.CorrelationID)
	b = appendString(b, vdTopic, v.Topic)
	b = appendString(b, vdGroup, v.Group)
	b = appendVarint(b, vdStatus, uint64(v.Status))
	b = appendString(b, vdCause, v.Cause)
	b = appendVarint(b, vdSeq, v.Seq)
	b = appendSint(b, vdPartition, int64(v.Partition))
	b = appendSint(b, vdOffset, v.Offset)
	b = appendString(b, vdProducerClient, v.ProducerClient)
	b = appendString(b, vdProducerHost, v.ProducerHost)
	b = appendFixed64(b, vdSendNs, uint64(v.SendNs))
	b = appendFixed64(b, vdAckNs, uint64(v.AckNs))
	b = appendString(b, vdProduceError, v.ProduceError)
	b = appendSint(b, vdPayloadSize, int64(v.PayloadSize))
	b = appendString(b, vdConsumerClient, v.ConsumerClient)
	b = appendString(b, vdConsumerHost, v.ConsumerHost)
	b = appendSint(b, vdConsumePartition, int64(v.ConsumePartition))
	b = appendSint(b, vdConsumeOffset, v.ConsumeOffset)
	b = appendFixed64(b, vdFirstConsumeNs, uint64(v.FirstConsumeNs))
	b = appendFixed64(b, vdLastConsumeNs, uint64(v.LastConsumeNs))
	b = appendVarint(b, vdConsumeCount, uint64(v.ConsumeCount))
	b = appendSint(b, vdAckLatencyUs, v.AckLatencyUs)
	b = appendSint(b, vdE2ELatencyUs, v.E2ELatencyUs)
	b = appendFixed64(b, vdFirstSeenNs, uint64(v.FirstSeenNs))
	b = appendFixed64(b, vdDecidedNs, uint64(v.DecidedNs))
	b = appendVarint(b, vdExpected, boolBit(v.Expected))
	b = appendVarint(b, vdLearned, boolBit(v.Learned))
	b = appendFixed64(b, vdDeadlineNs, uint64(v.DeadlineNs))
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
	d := decoder{msg: b}
	for d.more() {
		num, typ, err := d.tag()
		if err != nil {
			return fmt.Errorf("codecs: verdict tag at byte %d: %w", d.off, err)
		}
		switch num {
		case vdVersion:
			v.Version, err = d.uint32(typ)
		case vdCorrelationID:
			v.CorrelationID, err = d.string(typ)
		case vdTopic:
			v.Topic, err = d.string(typ)
		case vdGroup:
			v.Group, err = d.string(typ)
		case vdStatus:
			var s uint8
			s, err = d.enum(typ)
			v.Status = Status(s)
		case vdCause:
			v.Cause, err = d.string(typ)
		case vdSeq:
			v.Seq, err = d.uint64(typ)
		case vdPartition:
			v.Partition, err = d.sint32(typ)
		case vdOffset:
			v.Offset, err = d.sint64(typ)
		case vdProducerClient:
			v.ProducerClient, err = d.string(typ)
		case vdProducerHost:
			v.ProducerHost, err = d.string(typ)
		case vdSendNs:
			v.SendNs, err = d.sfixed64(typ)
		case vdAckNs:
			v.AckNs, err = d.sfixed64(typ)
		case vdProduceError:
			v.ProduceError, err = d.string(typ)
		case vdPayloadSize:
			v.PayloadSize, err = d.sint32(typ)
		case vdConsumerClient:
			v.ConsumerClient, err = d.string(typ)
		case vdConsumerHost:
			v.ConsumerHost, err = d.string(typ)
		case vdConsumePartition:
			v.ConsumePartition, err = d.sint32(typ)
		case vdConsumeOffset:
			v.ConsumeOffset, err = d.sint64(typ)
		case vdFirstConsumeNs:
			v.FirstConsumeNs, err = d.sfixed64(typ)
		case vdLastConsumeNs:
			v.LastConsumeNs, err = d.sfixed64(typ)
		case vdConsumeCount:
			v.ConsumeCount, err = d.uint32(typ)
		case vdAckLatencyUs:
			v.AckLatencyUs, err = d.sint64(typ)
		case vdE2ELatencyUs:
			v.E2ELatencyUs, err = d.sint64(typ)
		case vdFirstSeenNs:
			v.FirstSeenNs, err = d.sfixed64(typ)
		case vdDecidedNs:
			v.DecidedNs, err = d.sfixed64(typ)
		case vdExpected:
			v.Expected, err = d.bool(typ)
		case vdLearned:
			v.Learned, err = d.bool(typ)
		case vdDeadlineNs:
			v.DeadlineNs, err = d.sfixed64(typ)
		default:
			err = d.skip(num, typ)
		}
		if err != nil {
			return fmt.Errorf("codecs: verdict field %d: %w", num, err)
		}
	}
	return v.Validate()
}
