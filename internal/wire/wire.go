// Package wire is kaudit's one dialect of hand-written protobuf: append
// helpers that omit zero values (proto3 implicit presence) and a strict
// decoder that rejects a known field sent with another wire type (a type
// change would otherwise misdecode silently). The schemas are .proto files
// next to the code that uses them (codecs/audit.proto,
// processors/correlator/trail.proto), each checked by a schema test.
//
//	b = wire.AppendString(b, 1, t.ID)
//	b = wire.AppendMessage(b, 2, func(b []byte) []byte { return wire.AppendSint(b, 1, -1) })
//
//	d := wire.NewDecoder(b)
//	for d.More() {
//		num, typ, err := d.Tag()
//		...
//		switch num {
//		case 1:
//			t.ID, err = d.String(typ)
//		default:
//			err = d.Skip(num, typ)
//		}
//	}
//
// Strings are cut from one string copy of the outermost message, made on the
// first non-empty string field, so decoding a message with nested messages
// costs one allocation for all of its strings.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// ErrMalformed is wrapped by every decoding error: input that is truncated,
// overflows, or has a known field with the wrong wire type.
var ErrMalformed = errors.New("malformed input")

// MaxScalar is the most bytes a tag (field numbers < 2048) plus a varint or
// fixed64 value take; growing a buffer by MaxScalar per field plus the
// string lengths lets an encoder allocate at most once.
const MaxScalar = 2 + binary.MaxVarintLen64

// AppendVarint appends field num as a varint, unless v is zero.
func AppendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// AppendSint appends field num as a zigzag varint (sint32/sint64), unless v
// is zero.
func AppendSint(b []byte, num protowire.Number, v int64) []byte {
	return AppendVarint(b, num, protowire.EncodeZigZag(v))
}

// AppendFixed64 appends field num as fixed64/sfixed64, unless v is zero.
func AppendFixed64(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, v)
}

// AppendBool appends field num as a bool, unless v is false.
func AppendBool(b []byte, num protowire.Number, v bool) []byte {
	if !v {
		return b
	}
	return AppendVarint(b, num, 1)
}

// AppendString appends field num as a string, unless s is empty.
func AppendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	return AppendStringAlways(b, num, s)
}

// AppendStringAlways appends field num as a string even when s is empty
// (for a field whose presence means something).
func AppendStringAlways(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// AppendMessage appends field num holding the message enc appends. It
// reserves one length byte (most nested messages are shorter than 128
// bytes) and moves the message when the length needs more.
func AppendMessage(b []byte, num protowire.Number, enc func([]byte) []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	at := len(b)
	b = append(b, 0)
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

// root is the outermost message of a decoding and its lazily made string
// copy, shared with the decoders of nested messages.
type root struct {
	b []byte
	s string
}

// Decoder reads the fields of one message.
type Decoder struct {
	msg  []byte
	off  int
	base int // offset of msg in root.b
	root *root
}

// NewDecoder returns a decoder of the message b.
func NewDecoder(b []byte) Decoder { return Decoder{msg: b, root: &root{b: b}} }

// Malformed returns an error wrapping ErrMalformed.
func Malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

func parseError(n int) error { return Malformed("%v", protowire.ParseError(n)) }

// More reports whether fields are left.
func (d *Decoder) More() bool { return d.off < len(d.msg) }

// Tag reads the next field's number and wire type.
func (d *Decoder) Tag() (protowire.Number, protowire.Type, error) {
	num, typ, n := protowire.ConsumeTag(d.msg[d.off:])
	if n < 0 {
		return 0, 0, parseError(n)
	}
	d.off += n
	return num, typ, nil
}

// Skip skips the value of an unknown field.
func (d *Decoder) Skip(num protowire.Number, typ protowire.Type) error {
	n := protowire.ConsumeFieldValue(num, typ, d.msg[d.off:])
	if n < 0 {
		return parseError(n)
	}
	d.off += n
	return nil
}

func wantType(got, want protowire.Type) error {
	if got != want {
		return Malformed("wire type %d, want %d", got, want)
	}
	return nil
}

// Varint reads a varint value.
func (d *Decoder) Varint(typ protowire.Type) (uint64, error) {
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

// Uint32 reads a uint32 varint.
func (d *Decoder) Uint32(typ protowire.Type) (uint32, error) {
	v, err := d.Varint(typ)
	if err == nil && v > math.MaxUint32 {
		err = Malformed("%d overflows uint32", v)
	}
	return uint32(v), err
}

// Enum reads an enum value; kaudit's enums fit a uint8.
func (d *Decoder) Enum(typ protowire.Type) (uint8, error) {
	v, err := d.Varint(typ)
	if err == nil && v > math.MaxUint8 {
		err = Malformed("enum value %d out of range", v)
	}
	return uint8(v), err
}

// Sint64 reads a zigzag varint.
func (d *Decoder) Sint64(typ protowire.Type) (int64, error) {
	v, err := d.Varint(typ)
	return protowire.DecodeZigZag(v), err
}

// Sint32 reads a zigzag varint that must fit an int32.
func (d *Decoder) Sint32(typ protowire.Type) (int32, error) {
	v, err := d.Varint(typ)
	if err != nil {
		return 0, err
	}
	s := protowire.DecodeZigZag(v)
	if s < math.MinInt32 || s > math.MaxInt32 {
		return 0, Malformed("%d overflows sint32", s)
	}
	return int32(s), nil
}

// Fixed64 reads a fixed64 value.
func (d *Decoder) Fixed64(typ protowire.Type) (uint64, error) {
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

// Sfixed64 reads an sfixed64 value.
func (d *Decoder) Sfixed64(typ protowire.Type) (int64, error) {
	v, err := d.Fixed64(typ)
	return int64(v), err
}

// Bool reads a bool (a varint of 0 or 1).
func (d *Decoder) Bool(typ protowire.Type) (bool, error) {
	v, err := d.Varint(typ)
	if err != nil {
		return false, err
	}
	if v > 1 {
		return false, Malformed("bool value %d", v)
	}
	return v == 1, nil
}

func (d *Decoder) bytes(typ protowire.Type) ([]byte, int, error) {
	if err := wantType(typ, protowire.BytesType); err != nil {
		return nil, 0, err
	}
	v, n := protowire.ConsumeBytes(d.msg[d.off:])
	if n < 0 {
		return nil, 0, parseError(n)
	}
	d.off += n
	return v, d.base + d.off - len(v), nil
}

// String reads a string, cut from the shared copy of the outermost message.
func (d *Decoder) String(typ protowire.Type) (string, error) {
	v, at, err := d.bytes(typ)
	if err != nil || len(v) == 0 {
		return "", err
	}
	if d.root.s == "" {
		d.root.s = string(d.root.b)
	}
	return d.root.s[at : at+len(v)], nil
}

// Message reads a nested message and returns its decoder.
func (d *Decoder) Message(typ protowire.Type) (Decoder, error) {
	v, at, err := d.bytes(typ)
	if err != nil {
		return Decoder{}, err
	}
	return Decoder{msg: v, base: at, root: d.root}, nil
}

// Offset is how many bytes of the message have been read (for errors).
func (d *Decoder) Offset() int { return d.off }
