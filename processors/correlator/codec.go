package correlator

import (
	"fmt"

	"github.com/kaudit/kaudit/codecs"
)

// TrailCodec encodes trails in the group table (AppendTrail).
type TrailCodec struct{}

// Encode implements goka.Codec.
func (TrailCodec) Encode(value any) ([]byte, error) {
	t, ok := value.(*Trail)
	if !ok {
		return nil, fmt.Errorf("correlator: trail codec cannot encode %T", value)
	}
	return AppendTrail(make([]byte, 0, 256), t), nil
}

// Decode implements goka.Codec.
func (TrailCodec) Decode(data []byte) (any, error) {
	t := new(Trail)
	if err := UnmarshalTrail(data, t); err != nil {
		return nil, fmt.Errorf("correlator: decode trail: %w", err)
	}
	return t, nil
}

// inbound is an input record as the callback sees it: a decoded event, or
// the raw bytes and the reason they could not be decoded. Decoding never
// fails at the goka level, because a goka processor stops on a codec error:
// one bad record must not stop the audit.
type inbound struct {
	event *codecs.Event
	raw   []byte
	err   error
}

// eventInputCodec decodes audit events (binary or JSON) leniently.
type eventInputCodec struct{}

func (eventInputCodec) Encode(value any) ([]byte, error) {
	switch v := value.(type) {
	case []byte: // already encoded
		return v, nil
	case *codecs.Event:
		return codecs.AppendEvent(nil, v), nil
	case *inbound:
		if v.event != nil {
			return codecs.AppendEvent(nil, v.event), nil
		}
		return v.raw, nil
	}
	return nil, fmt.Errorf("correlator: event codec cannot encode %T", value)
}

func (eventInputCodec) Decode(data []byte) (any, error) {
	e, err := codecs.DecodeEvent(data)
	if err != nil {
		return &inbound{raw: data, err: err}, nil
	}
	return &inbound{event: e}, nil
}
