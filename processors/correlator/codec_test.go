package correlator

import (
	"bytes"
	"reflect"
	"testing"
	"unsafe"
)

// The table codec hands an encoded trail back only for the bytes Encode
// returned, once; any other bytes (a copy, the changelog, Pebble) and a
// second read are decoded, and what is decoded equals what was encoded.
func TestHandoffCodec(t *testing.T) {
	c := newHandoffCodec()
	want := sampleTrail()
	in := sampleTrail()
	data, err := c.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	decode := func(b []byte) *Trail {
		t.Helper()
		v, err := c.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		return v.(*Trail)
	}
	if got := decode(bytes.Clone(data)); got == in || !reflect.DeepEqual(got, want) {
		t.Errorf("a copy of the bytes: handed back %v, equal %v", got == in, reflect.DeepEqual(got, want))
	}
	if got := decode(data); got != in {
		t.Error("the encoded bytes: the trail is decoded again, not handed back")
	}
	if got := decode(data); got == in || !reflect.DeepEqual(got, want) {
		t.Errorf("a second read: handed back %v, equal %v", got == in, reflect.DeepEqual(got, want))
	}

	// Once its slot holds another, a trail is decoded from its bytes.
	first := sampleTrail()
	firstData, _ := c.Encode(first)
	for i := 0; c.slot(unsafe.SliceData(firstData)).t == first; i++ {
		if i > 100*handoffSlots {
			t.Fatal("the slot is never taken")
		}
		if _, err := c.Encode(sampleTrail()); err != nil {
			t.Fatal(err)
		}
	}
	if got := decode(firstData); got == first || !reflect.DeepEqual(got, want) {
		t.Errorf("evicted: handed back %v, equal %v", got == first, reflect.DeepEqual(got, want))
	}
	if len(c.slots) > handoffSlots {
		t.Errorf("%d trails held, bound %d", len(c.slots), handoffSlots)
	}
	if _, err := c.Decode([]byte{0xff, 0xff}); err == nil {
		t.Error("malformed bytes decoded")
	}
}
