package codecs_test

import (
	"math"

	"github.com/kaudit/kaudit/codecs"
)

// produceEvent is a typical produce event with every field set.
func produceEvent() codecs.Event {
	return codecs.Event{
		Version:       codecs.SchemaVersion,
		Kind:          codecs.KindProduce,
		CorrelationID: "0190f7a2-5c3e-7d41-9a8b-2f6e1c0d4b7a",
		Topic:         "orders",
		Partition:     3,
		Offset:        1234567,
		ClientID:      "checkout-producer",
		Group:         "",
		Host:          "app-7.eu-west-1",
		Source:        "franz-go",
		SendNs:        1_760_000_000_123_456_789,
		AckNs:         1_760_000_000_125_000_000,
		RecordTsNs:    1_760_000_000_123_000_000,
		Error:         "",
		PayloadSize:   1024,
		Digest:        0xdeadbeefcafebabe,
	}
}

func consumeEvent() codecs.Event {
	return codecs.Event{
		Version:       codecs.SchemaVersion,
		Kind:          codecs.KindConsume,
		CorrelationID: "c",
		Topic:         "t",
		Group:         "billing",
		ConsumeNs:     1,
	}
}

// dropsEvent is a drop report: 17 consume events of group billing on
// orders, dropped within one minute.
func dropsEvent() codecs.Event {
	return codecs.Event{
		Version:       codecs.SchemaVersion,
		Kind:          codecs.KindDrops,
		CorrelationID: "0190f7a2-5c3e-7d41-9a8b-2f6e1c0d4b7b",
		Topic:         "orders",
		ClientID:      "billing-1",
		Group:         "billing",
		Host:          "app-9",
		Source:        "franz-go",
		Dropped:       17,
		WindowStartNs: 1_760_000_040_000_000_000,
		WindowEndNs:   1_760_000_099_999_999_999,
		DroppedKind:   codecs.KindConsume,
	}
}

// extremeDrops is a drop report with the extreme values of its fields.
func extremeDrops(sign int) codecs.Event {
	e := dropsEvent()
	e.Dropped, e.DroppedKind = math.MaxUint32, codecs.KindProduce
	e.Group = ""
	if sign < 0 {
		e.Dropped, e.WindowStartNs, e.WindowEndNs = 1, 1, 1
	} else {
		e.WindowStartNs, e.WindowEndNs = math.MaxInt64, math.MaxInt64
	}
	return e
}

// extremeEvent has the extreme values of every numeric field.
func extremeEvent(sign int) codecs.Event {
	e := codecs.Event{
		Version:       codecs.SchemaVersion,
		Kind:          codecs.KindProduce,
		CorrelationID: "x",
		Topic:         "y",
		ClientID:      "ü€😀\x00",
		Error:         "boom: \"quoted\"\n",
		Digest:        math.MaxUint64,
	}
	if sign < 0 {
		e.Partition, e.Offset = math.MinInt32, math.MinInt64
		e.SendNs, e.AckNs, e.ConsumeNs, e.RecordTsNs = math.MinInt64, -1, -2, math.MinInt64
		e.PayloadSize = math.MinInt32
	} else {
		e.Partition, e.Offset = math.MaxInt32, math.MaxInt64
		e.SendNs, e.AckNs, e.ConsumeNs, e.RecordTsNs = math.MaxInt64, 1, 2, math.MaxInt64
		e.PayloadSize = math.MaxInt32
	}
	return e
}

func deliveredVerdict() codecs.Verdict {
	return codecs.Verdict{
		Version:          codecs.SchemaVersion,
		CorrelationID:    "0190f7a2-5c3e-7d41-9a8b-2f6e1c0d4b7a",
		Topic:            "orders",
		Group:            "billing",
		Status:           codecs.StatusDelivered,
		Cause:            "consumed",
		Seq:              2,
		Partition:        3,
		Offset:           1234567,
		ProducerClient:   "checkout-producer",
		ProducerHost:     "app-7",
		SendNs:           1_760_000_000_123_456_789,
		AckNs:            1_760_000_000_125_000_000,
		ProduceError:     "",
		PayloadSize:      1024,
		ConsumerClient:   "billing-1",
		ConsumerHost:     "app-9",
		ConsumePartition: 3,
		ConsumeOffset:    1234567,
		FirstConsumeNs:   1_760_000_000_130_000_000,
		LastConsumeNs:    1_760_000_000_140_000_000,
		ConsumeCount:     2,
		AckLatencyUs:     1543,
		E2ELatencyUs:     6543,
		FirstSeenNs:      1_760_000_000_125_000_000,
		DecidedNs:        1_760_000_000_140_000_000,
	}
}

func extremeVerdict(sign int) codecs.Verdict {
	v := codecs.Verdict{
		Version:       codecs.SchemaVersion,
		CorrelationID: "x",
		Topic:         "y",
		Group:         "g",
		Status:        codecs.StatusCorrupted,
		Cause:         "ü€😀\x00",
		Seq:           math.MaxUint64,
		ConsumeCount:  math.MaxUint32,
		AckLatencyUs:  -1,
		E2ELatencyUs:  -1,
	}
	if sign < 0 {
		v.Partition, v.Offset, v.PayloadSize = math.MinInt32, math.MinInt64, math.MinInt32
		v.ConsumePartition, v.ConsumeOffset = -1, -1
		v.SendNs, v.AckNs, v.FirstConsumeNs, v.LastConsumeNs = math.MinInt64, -1, -2, -3
		v.AckLatencyUs, v.E2ELatencyUs = math.MinInt64, -1
		v.FirstSeenNs, v.DecidedNs = math.MinInt64, -4
	} else {
		v.Partition, v.Offset, v.PayloadSize = math.MaxInt32, math.MaxInt64, math.MaxInt32
		v.ConsumePartition, v.ConsumeOffset = math.MaxInt32, math.MaxInt64
		v.SendNs, v.AckNs, v.FirstConsumeNs, v.LastConsumeNs = math.MaxInt64, 1, 2, 3
		v.AckLatencyUs, v.E2ELatencyUs = math.MaxInt64, math.MaxInt64
		v.FirstSeenNs, v.DecidedNs = math.MaxInt64, 4
	}
	return v
}
