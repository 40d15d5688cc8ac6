package correlator

import (
	"bytes"
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
	event *codecs.Event // &ev once decoded
	raw   []byte
	err   error
	ev    codecs.Event
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
	in := new(inbound) // one allocation for the event and its envelope
	if err := codecs.DecodeEventInto(data, &in.ev); err != nil {
		return &inbound{raw: data, err: err}, nil
	}
	in.event = &in.ev
	return in, nil
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

	scratch sync.Pool // *[]byte to encode into

	mu    sync.Mutex
	slots []handoff // direct-mapped by the bytes' address: a collision loses a hand-off, nothing else
}

type handoff struct {
	t    *Trail
	data []byte // holds the array alive, so its address is not reused
}

// handoffSlots bounds the trails held for a hand-off (a few MB): the
// events of one message mostly arrive close together.
const handoffSlots = 16384

func newHandoffCodec() *handoffCodec {
	return &handoffCodec{slots: make([]handoff, handoffSlots)}
}

func (c *handoffCodec) slot(at *byte) *handoff {
	h := uint64(uintptr(unsafe.Pointer(at))) * 0x9e3779b97f4a7c15
	return &c.slots[h>>32%uint64(len(c.slots))]
}

// Encode implements goka.Codec; the trail must not be changed afterwards.
func (c *handoffCodec) Encode(value any) ([]byte, error) {
	t, ok := value.(*Trail)
	if !ok {
		return c.TrailCodec.Encode(value) // its error
	}
	// Into a scratch buffer, then one exact-size copy: a buffer grown from
	// a guess was copied two or three times a trail.
	buf, _ := c.scratch.Get().(*[]byte)
	if buf == nil {
		buf = new([]byte)
	}
	*buf = AppendTrail((*buf)[:0], t)
	data := bytes.Clone(*buf)
	if cap(*buf) <= 64<<10 { // a rare huge trail's buffer is not kept
		c.scratch.Put(buf)
	}
	c.mu.Lock()
	*c.slot(unsafe.SliceData(data)) = handoff{t: t, data: data}
	c.mu.Unlock()
	return data, nil
}

// Decode implements goka.Codec.
func (c *handoffCodec) Decode(data []byte) (any, error) {
	if len(data) > 0 {
		at := unsafe.SliceData(data)
		c.mu.Lock()
		h := c.slot(at)
		if t := h.t; t != nil && unsafe.SliceData(h.data) == at && len(h.data) == len(data) {
			*h = handoff{} // once
			c.mu.Unlock()
			return t, nil
		}
		c.mu.Unlock()
	}
	return c.TrailCodec.Decode(data)
}
