package emitter

import (
	"math"
	"testing"
	"time"

	"github.com/kaudit/kaudit/codecs"
)

func TestDropTableBoundsAndSplits(t *testing.T) {
	tab := newDropTable(2)
	minute := int64(time.Minute)
	ev := func(topic string, kind codecs.Kind, ns int64) *codecs.Event {
		return &codecs.Event{Kind: kind, Topic: topic, Group: "g", ClientID: "c", ConsumeNs: ns, AckNs: ns}
	}
	for i := range 1000 {
		// 1000 topics, two kinds, each in its own minute: 2000 keys.
		tab.add(ev(string(rune('a'+i%26))+string(rune('a'+i/26)), codecs.KindConsume, int64(i+1)*minute), 1, 0)
		tab.add(ev("p", codecs.KindProduce, int64(i+1)*minute+5), 1, 0)
	}
	if n := len(tab.m); n > 2+2 {
		t.Fatalf("table holds %d keys, want at most 2 plus one catch-all per kind", n)
	}
	if tab.count() != 2000 {
		t.Fatalf("count %d, want 2000", tab.count())
	}
	// Events no valid report could describe are refused, not counted.
	if tab.add(&codecs.Event{Kind: codecs.KindConsume}, 1, 1) || tab.add(&codecs.Event{Topic: "t"}, 1, 1) {
		t.Fatal("add accepted an event without topic or kind")
	}
	// A drop report that failed goes back with its count and window.
	tab.add(&codecs.Event{Kind: codecs.KindDrops, Topic: codecs.AnyTopic, DroppedKind: codecs.KindProduce,
		Dropped: 7, WindowStartNs: 3, WindowEndNs: 4}, 7, 0)
	// An event without a time is dated now.
	tab.add(&codecs.Event{Kind: codecs.KindProduce, Topic: "x"}, math.MaxUint32+5, 99*minute)

	reports := tab.take()
	if tab.count() != 0 || len(tab.m) != 0 {
		t.Fatalf("take left %d counted in %d keys", tab.count(), len(tab.m))
	}
	var total uint64
	ids := map[string]bool{}
	for _, r := range reports {
		if err := r.Validate(); err != nil {
			t.Errorf("report %+v: %v", r, err)
		}
		if ids[r.CorrelationID] {
			t.Errorf("correlation ID %s used twice", r.CorrelationID)
		}
		ids[r.CorrelationID] = true
		total += uint64(r.Dropped)
		if r.Topic == "x" && r.WindowStartNs != 99*minute {
			t.Errorf("undated drops dated %d, want now", r.WindowStartNs)
		}
	}
	if want := uint64(2000 + 7 + math.MaxUint32 + 5); total != want {
		t.Errorf("reports cover %d drops, want %d", total, want)
	}
	if tab.take() != nil {
		t.Error("second take returned reports")
	}
}
