package correlator

import (
	"reflect"
	"testing"

	"github.com/kaudit/kaudit/codecs"
)

func sampleTrail() *Trail {
	return &Trail{
		CorrelationID: "c0613861-f1a9-47f0-9b92-09a2346fe250", Topic: "orders",
		FirstSeenNs: 1_700_000_000_000_000_000, LastSeenNs: 1_700_000_001_000_000_000,
		Produce: &ProduceFacts{Partition: 2, Offset: 1 << 40, ClientID: "p", Host: "h", SendNs: 1, AckNs: -2,
			RecordTsNs: 3, Error: "boom", Digest: ^uint64(0), PayloadSize: 1 << 20},
		ProduceEvents: 2, DupWrite: true,
		Expected:   []ExpectedGroup{{Group: "a"}, {Group: "b", Learned: true}},
		DeadlineNs: 1_700_000_060_000_000_000,
		Groups: []GroupFacts{
			{Group: ""},
			{Group: "a", ClientID: "a-1", Host: "h2", Partition: -1, Offset: 41, FirstConsumeNs: 5, LastConsumeNs: 6,
				Count: 3, Digest: 7, OtherOffset: true, Status: codecs.StatusDuplicate, Cause: CauseRedelivery, Emitted: 2, Seq: 1 << 62},
		},
	}
}

func TestTrailWireRoundTrip(t *testing.T) {
	for _, in := range []*Trail{sampleTrail(), {}, {CorrelationID: "x", Groups: []GroupFacts{{Group: "big", Cause: string(make([]byte, 300))}}}} {
		var out Trail
		if err := UnmarshalTrail(AppendTrail(nil, in), &out); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(in, &out) && !(len(in.Groups) == 0 && len(out.Groups) == 0 && in.CorrelationID == out.CorrelationID) {
			t.Errorf("round trip:\n in  %+v\n out %+v", in, &out)
		}
	}
}

// Trails stored as JSON by an earlier version still decode.
func TestTrailDecodesJSON(t *testing.T) {
	var out Trail
	if err := UnmarshalTrail([]byte(`{"id":"x","topic":"t","groups":[{"group":"a","count":2}]}`), &out); err != nil {
		t.Fatal(err)
	}
	if out.CorrelationID != "x" || out.Groups[0].Count != 2 {
		t.Errorf("%+v", out)
	}
}

func FuzzUnmarshalTrail(f *testing.F) {
	f.Add(AppendTrail(nil, sampleTrail()))
	f.Add([]byte{0x0a, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		var tr Trail
		if UnmarshalTrail(b, &tr) != nil || (len(b) > 0 && b[0] == '{') {
			return
		}
		var again Trail
		if err := UnmarshalTrail(AppendTrail(nil, &tr), &again); err != nil {
			t.Fatalf("re-encoded trail does not decode: %v", err)
		}
	})
}
