package codecs

import "github.com/kaudit/kaudit/internal/wire"

// The binary encodings (event_wire.go, verdict_wire.go) are written and read
// with internal/wire, kaudit's one dialect of hand-written protobuf, shared
// with the correlator's trail encoding.

// ErrMalformed is wrapped by every error about input that is not valid
// protobuf wire format for the schema in audit.proto (truncated, overflowing
// or of the wrong wire type). Well-formed input that fails validation returns
// the Validate error instead.
var ErrMalformed = wire.ErrMalformed

// boolBit is the varint of a protobuf bool.
func boolBit(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
