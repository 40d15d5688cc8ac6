package codecs

import (
	"encoding/json"
	"fmt"
)

// The codecs below implement goka.Codec (Encode(any) ([]byte, error) and
// Decode([]byte) (any, error)) without importing goka, so that interceptors
// using this package do not pull in goka. Encode accepts a value or a pointer
// and validates it; Decode returns a pointer and accepts both the binary and
// the JSON format (see DecodeEvent), so a topic can switch format without
// breaking its readers.

// EventCodec encodes *Event or Event in the binary format.
type EventCodec struct{}

// EventJSONCodec encodes *Event or Event as JSON.
type EventJSONCodec struct{}

// VerdictCodec encodes *Verdict or Verdict in the binary format.
type VerdictCodec struct{}

// VerdictJSONCodec encodes *Verdict or Verdict as JSON.
type VerdictJSONCodec struct{}

// Encode implements goka.Codec.
func (EventCodec) Encode(value any) ([]byte, error) {
	e, err := eventOf(value)
	if err != nil {
		return nil, err
	}
	return AppendEvent(nil, e), nil
}

// Decode implements goka.Codec; the value is a *Event.
func (EventCodec) Decode(b []byte) (any, error) { return decodeEventAny(b) }

// Encode implements goka.Codec.
func (EventJSONCodec) Encode(value any) ([]byte, error) {
	e, err := eventOf(value)
	if err != nil {
		return nil, err
	}
	return json.Marshal(e)
}

// Decode implements goka.Codec; the value is a *Event.
func (EventJSONCodec) Decode(b []byte) (any, error) { return decodeEventAny(b) }

// Encode implements goka.Codec.
func (VerdictCodec) Encode(value any) ([]byte, error) {
	v, err := verdictOf(value)
	if err != nil {
		return nil, err
	}
	return AppendVerdict(nil, v), nil
}

// Decode implements goka.Codec; the value is a *Verdict.
func (VerdictCodec) Decode(b []byte) (any, error) { return decodeVerdictAny(b) }

// Encode implements goka.Codec.
func (VerdictJSONCodec) Encode(value any) ([]byte, error) {
	v, err := verdictOf(value)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// Decode implements goka.Codec; the value is a *Verdict.
func (VerdictJSONCodec) Decode(b []byte) (any, error) { return decodeVerdictAny(b) }

func eventOf(value any) (*Event, error) {
	var e *Event
	switch v := value.(type) {
	case *Event:
		e = v
	case Event:
		e = &v
	default:
		return nil, fmt.Errorf("codecs: cannot encode %T as an event, want *codecs.Event or codecs.Event", value)
	}
	if e == nil {
		return nil, fmt.Errorf("codecs: cannot encode a nil *codecs.Event")
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return e, nil
}

func verdictOf(value any) (*Verdict, error) {
	var vd *Verdict
	switch v := value.(type) {
	case *Verdict:
		vd = v
	case Verdict:
		vd = &v
	default:
		return nil, fmt.Errorf("codecs: cannot encode %T as a verdict, want *codecs.Verdict or codecs.Verdict", value)
	}
	if vd == nil {
		return nil, fmt.Errorf("codecs: cannot encode a nil *codecs.Verdict")
	}
	if err := vd.Validate(); err != nil {
		return nil, err
	}
	return vd, nil
}

// decodeEventAny keeps a failed decode from returning a typed nil in an
// interface.
func decodeEventAny(b []byte) (any, error) {
	e, err := DecodeEvent(b)
	if err != nil {
		return nil, err
	}
	return e, nil
}

func decodeVerdictAny(b []byte) (any, error) {
	v, err := DecodeVerdict(b)
	if err != nil {
		return nil, err
	}
	return v, nil
}
