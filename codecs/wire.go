package codecs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// ErrMalformed is wrapped by every error about input that is not valid
// protobuf wire format for the schema in audit.proto (truncated, overflowing
// or of the wrong wire type). Well-formed input that fails validation returns
// the Validate error instead.
var ErrMalformed = errors.New("malformed input")

// maxScalar is the most bytes a tag (field numbers < 2048) plus a varint or
// fixed64 value take; growing by maxScalar per field plus the string lengths
// lets an Append function allocate at most once.
const maxScalar = 2 + binary.MaxVarintLen64

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendSint(b []byte, num protowire.Number, v int64) []byte {
	return appendVarint(b, num, protowire.EncodeZigZag(v))
}

func appendFixed64(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, v)
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// decoder reads one message. Strings are cut from a single string copy of the
// whole message, made on the first non-empty string field, so decoding costs
// one allocation however many string fields there are.
type decoder struct {
	msg []byte
	off int
	str string
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

func parseError(n int) error { return malformed("%v", protowire.ParseError(n)) }

func (d *decoder) more() bool { return d.off < len(d.msg) }

func (d *decoder) tag() (protowire.Number, protowire.Type, error) {
	num, typ, n := protowire.ConsumeTag(d.msg[d.off:])
	if n < 0 {
		return 0, 0, parseError(n)
	}
	d.off += n
	return num, typ, nil
}

func (d *decoder) skip(num protowire.Number, typ protowire.Type) error {
	n := protowire.ConsumeFieldValue(num, typ, d.msg[d.off:])
	if n < 0 {
		return parseError(n)
	}
	d.off += n
	return nil
}

func wantType(got, want protowire.Type) error {
	if got != want {
		return malformed("wire type %d, want %d", got, want)
	}
	return nil
}

func (d *decoder) varint(typ protowire.Type) (uint64, error) {
	if err := wantType(typ, protowire.VarintType); err != nil {
		return 0, err
	}
	v, n := protowire.ConsumeVarint(d.msg[d.off:])
	if n < 0 {
		return 0, parseError(n)
	}
	d.off += n
	return v, nil
}

func (d *decoder) uint64(typ protowire.Type) (uint64, error) { return d.varint(typ) }

func (d *decoder) uint32(typ protowire.Type) (uint32, error) {
	v, err := d.varint(typ)
	if err == nil && v > math.MaxUint32 {
		err = malformed("%d overflows uint32", v)
	}
	return uint32(v), err
}

// enum reads an enum value; kaudit's enums are uint8.
func (d *decoder) enum(typ protowire.Type) (uint8, error) {
	v, err := d.varint(typ)
	if err == nil && v > math.MaxUint8 {
		err = malformed("enum value %d out of range", v)
	}
	return uint8(v), err
}

func (d *decoder) sint64(typ protowire.Type) (int64, error) {
	v, err := d.varint(typ)
	return protowire.DecodeZigZag(v), err
}

func (d *decoder) sint32(typ protowire.Type) (int32, error) {
	v, err := d.varint(typ)
	if err == nil && v > math.MaxUint32 {
		err = malformed("%d overflows sint32", v)
	}
	return int32(protowire.DecodeZigZag(v)), err
}

func (d *decoder) fixed64(typ protowire.Type) (uint64, error) {
	if err := wantType(typ, protowire.Fixed64Type); err != nil {
		return 0, err
	}
	v, n := protowire.ConsumeFixed64(d.msg[d.off:])
	if n < 0 {
		return 0, parseError(n)
	}
	d.off += n
	return v, nil
}

func (d *decoder) sfixed64(typ protowire.Type) (int64, error) {
	v, err := d.fixed64(typ)
	return int64(v), err
}

func (d *decoder) string(typ protowire.Type) (string, error) {
	if err := wantType(typ, protowire.BytesType); err != nil {
		return "", err
	}
	v, n := protowire.ConsumeBytes(d.msg[d.off:])
	if n < 0 {
		return "", parseError(n)
	}
	d.off += n
	if len(v) == 0 {
		return "", nil
	}
	if d.str == "" {
		d.str = string(d.msg)
	}
	return d.str[d.off-len(v) : d.off], nil
}

// boolBit is the varint of a protobuf bool.
func boolBit(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

func (d *decoder) bool(typ protowire.Type) (bool, error) {
	v, err := d.varint(typ)
	if err != nil {
		return false, err
	}
	if v > 1 {
		return false, fmt.Errorf("bool value %d: %w", v, ErrMalformed)
	}
	return v == 1, nil
}
