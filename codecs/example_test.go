package codecs_test

import (
	"fmt"

	"github.com/kaudit/kaudit/codecs"
)

func Example() {
	key, value := []byte("order-42"), []byte(`{"total":12.5}`)
	e := codecs.Event{
		Version:       codecs.SchemaVersion,
		Kind:          codecs.KindProduce,
		CorrelationID: "0190f7a2-5c3e-7d41-9a8b-2f6e1c0d4b7a",
		Topic:         "orders",
		Partition:     3,
		Offset:        42,
		SendNs:        1_760_000_000_000_000_000,
		AckNs:         1_760_000_000_002_000_000,
		PayloadSize:   int32(len(key) + len(value)),
		Digest:        codecs.Digest(key, value),
	}

	// Producer side: append into a reused buffer.
	var buf []byte
	buf = codecs.AppendEvent(buf[:0], &e)

	// Reader side: binary or JSON, validated.
	got, err := codecs.DecodeEvent(buf)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(buf), "bytes;", got.Kind, got.Topic, got.Offset, got.Digest == e.Digest)

	json, _ := codecs.EventJSONCodec{}.Encode(got)
	fmt.Println(len(json), "bytes as JSON")

	_, err = codecs.DecodeEvent(buf[:len(buf)-3])
	fmt.Println(err)
	// Output:
	// 84 bytes; produce orders 42 true
	// 230 bytes as JSON
	// codecs: event field 16: malformed input: unexpected EOF
}
