package correlator

import (
	"fmt"
	"sync"
	"unsafe"

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

// handoffCodec is the group table's codec: TrailCodec, and a bounded
// hand-off of the trails it encoded last. goka decodes a trail at every
// event (ctx.Value) from the bytes the storage holds, and those are, until
// the next write, the very bytes Encode returned (the storage keeps the
// slice it was given). Decode of those bytes (the same array, not equal
// contents) hands the encoded trail back instead of decoding it again: the
// second and later events of a message cost no decode. A trail is handed
// back at most once, so it has one owner at a time; whoever encodes a
// trail gives it up (the correlator's callbacks do not touch a trail after
// SetValue), and bytes that came from anywhere else (the changelog on
// recovery, Pebble after an eviction, a copy) are decoded as always.
type handoffCodec struct {
	TrailCodec

	mu   sync.Mutex
	byAt map[*byte]handoff
	ring []*byte // oldest first out
	next int
}

type handoff struct {
	t    *Trail
	data []byte // holds the array alive, so its address is not reused
}

// handoffCap bounds the trails held for a hand-off (a few MB): the events
// of one message mostly arrive close together.
const handoffCap = 16384

func newHandoffCodec() *handoffCodec {
	return &handoffCodec{byAt: make(map[*byte]handoff, handoffCap), ring: make([]*byte, handoffCap)}
}

// Encode implements goka.Codec; the trail must not be changed afterwards.
func (c *handoffCodec) Encode(value any) ([]byte, error) {
	data, err := c.TrailCodec.Encode(value)
	if err != nil || len(data) == 0 {
		return data, err
	}
	at := unsafe.SliceData(data)
	c.mu.Lock()
	if old := c.ring[c.next]; old != nil {
		delete(c.byAt, old)
	}
	c.ring[c.next] = at
	c.next = (c.next + 1) % len(c.ring)
	c.byAt[at] = handoff{t: value.(*Trail), data: data}
	c.mu.Unlock()
	return data, nil
}

// Decode implements goka.Codec.
func (c *handoffCodec) Decode(data []byte) (any, error) {
	if len(data) > 0 {
		at := unsafe.SliceData(data)
		c.mu.Lock()
		h, ok := c.byAt[at]
		if ok && len(h.data) == len(data) {
			delete(c.byAt, at) // its ring slot is reused in turn
			c.mu.Unlock()
			return h.t, nil
		}
		c.mu.Unlock()
	}
	return c.TrailCodec.Decode(data)
}
