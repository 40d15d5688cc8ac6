package correlator

import (
	"fmt"
	"testing"
	"time"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/processors/expectations"
)

// BenchmarkTrail measures the correlator's work per audit event without
// Kafka: decode the trail, fold the event, judge, encode the trail and the
// verdicts — what the goka callback does for each event. One op is one
// message's trail: a produce and three consumes (4 events).
func BenchmarkTrail(b *testing.B) {
	p := policy{deadline: time.Minute, declared: []*expectations.Expectation{{Topic: "orders", Groups: []string{"a", "b", "c"}}}}
	base := time.Now().UnixNano()
	var codec TrailCodec
	var buf []byte
	tm := &timing{nowNs: base, grace: int64(15 * time.Minute), dupWindow: int64(5 * time.Minute), confirmAfter: 1e10, recheckAfter: 6e10}
	b.ReportAllocs()
	for i := range b.N {
		id := fmt.Sprintf("id-%d", i)
		evs := []*codecs.Event{
			{Version: 1, Kind: codecs.KindProduce, CorrelationID: id, Topic: "orders", Partition: 1, Offset: int64(i), SendNs: base, AckNs: base + 1e6, Digest: 9, PayloadSize: 100, ClientID: "producer-1", Host: "host-1"},
		}
		for _, g := range []string{"a", "b", "c"} {
			evs = append(evs, &codecs.Event{Version: 1, Kind: codecs.KindConsume, CorrelationID: id, Topic: "orders", Partition: 1, Offset: int64(i), ConsumeNs: base + 3e6, Group: g, Digest: 9, PayloadSize: 100, ClientID: g + "-1", Host: "host-2"})
		}
		var stored []byte
		for _, e := range evs {
			t := new(Trail)
			if stored != nil {
				v, err := codec.Decode(stored)
				if err != nil {
					b.Fatal(err)
				}
				t = v.(*Trail)
			}
			res := t.Apply(e, p, e.TimeNs(), tm)
			for i := range res.verdicts {
				buf = codecs.AppendVerdict(buf[:0], &res.verdicts[i])
			}
			t.refreshDue(tm)
			var err error
			if stored, err = codec.Encode(t); err != nil {
				b.Fatal(err)
			}
		}
		if i == 0 {
			b.ReportMetric(float64(len(stored)), "trail-bytes")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(4*b.N), "ns/event")
}
