package report_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/report"
	"github.com/kaudit/kaudit/sinks"
	chsink "github.com/kaudit/kaudit/sinks/clickhouse"
	"github.com/kaudit/kaudit/store"
)

func TestMain(m *testing.M) { chtest.Main(m) }

// setup returns a connection to a migrated database of the test's own, its
// name, and a sink writing into it.
func setup(t *testing.T) (driver.Conn, string, *chsink.Sink) {
	t.Helper()
	cfg, conn := chtest.Migrated(t)
	return conn, cfg.Database, chsink.New(conn, chsink.Config{Database: cfg.Database})
}

func write(t *testing.T, s *chsink.Sink, b *sinks.Batch) {
	t.Helper()
	if err := s.WriteBatch(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

var base = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// quantile is ClickHouse's quantileExact: the element at 0-based rank
// floor(level*n) of the sorted values.
func quantile(xs []float64, level float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(int(level*float64(len(s))), len(s)-1)]
}

// within says whether a latency quantile read from the rollups is within
// their relative error bound of the exact one.
func within(got, exact float64) bool {
	if math.IsNaN(got) || math.IsNaN(exact) {
		return math.IsNaN(got) && math.IsNaN(exact)
	}
	return math.Abs(got-exact) <= store.LatencyRelativeError*math.Abs(exact)+1e-9
}

func near(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= 1e-6*math.Max(1, math.Abs(b))
}

type groupKey struct{ topic, group string }

// genVerdicts makes latest verdicts for n messages over 2 topics and 2
// groups with mixed statuses, plus superseded older versions of some.
func genVerdicts(r *rand.Rand, n int, firstSeen time.Time) (latest, superseded []codecs.Verdict) {
	statuses := []codecs.Status{codecs.StatusDelivered, codecs.StatusDelivered, codecs.StatusDelivered, codecs.StatusLost, codecs.StatusLate}
	for i := range n {
		send := firstSeen.UnixNano() + r.Int64N(int64(time.Minute))
		v := codecs.Verdict{
			CorrelationID: fmt.Sprintf("%s-%d", firstSeen.Format("0102"), i),
			Topic:         []string{"orders", "payments"}[i%2],
			Group:         []string{"billing", "search"}[(i/2)%2],
			Status:        statuses[r.IntN(len(statuses))],
			Seq:           2 + r.Uint64N(5),
			SendNs:        send,
			AckLatencyUs:  r.Int64N(5_000),
			E2ELatencyUs:  5_000 + r.Int64N(500_000),
			FirstSeenNs:   send,
			DecidedNs:     send + int64(time.Second),
			ConsumeCount:  1,
		}
		if r.IntN(10) == 0 {
			v.AckLatencyUs = -1 // unknown; must not enter the quantiles
		}
		if v.Status != codecs.StatusDelivered {
			v.E2ELatencyUs = -1
		}
		latest = append(latest, v)
		if r.IntN(3) == 0 {
			old := v
			old.Seq = v.Seq - 1
			old.Status = []codecs.Status{codecs.StatusLost, codecs.StatusDelivered}[r.IntN(2)]
			old.AckLatencyUs, old.E2ELatencyUs = 999_999_999, 999_999_999 // would show if FINAL were missing
			superseded = append(superseded, old)
		}
	}
	return latest, superseded
}

// trailFixture is one message produced once and consumed by two groups,
// with the billing verdict upgraded from LOST to DELIVERED.
func trailFixture(id string) (*sinks.Batch, *sinks.Batch, []codecs.Verdict) {
	send := base.Add(1500 * time.Millisecond).UnixNano()
	ack := send + int64(3200*time.Microsecond)
	c1 := send + int64(250*time.Millisecond)
	c2 := send + int64(1700*time.Millisecond) // next second
	pos := func(off int64) sinks.Position {
		return sinks.Position{Topic: "kaudit.events", Partition: 1, Offset: off}
	}
	ev := []sinks.EventRecord{
		// Written out of order: Trail orders by event time.
		{Event: codecs.Event{Kind: codecs.KindConsume, CorrelationID: id, Topic: "orders", Partition: 2, Offset: 77,
			ClientID: "search-1", Group: "search", Host: "h2", Source: "sarama", ConsumeNs: c2, RecordTsNs: send, PayloadSize: 42}, From: pos(12)},
		{Event: codecs.Event{Kind: codecs.KindProduce, CorrelationID: id, Topic: "orders", Partition: 2, Offset: 77,
			ClientID: "shop", Host: "h0", Source: "franz-go", SendNs: send, AckNs: ack, RecordTsNs: send, PayloadSize: 42, Digest: 0xfeed}, From: pos(10)},
		{Event: codecs.Event{Kind: codecs.KindConsume, CorrelationID: id, Topic: "orders", Partition: 2, Offset: 77,
			ClientID: "billing-1", Group: "billing", Host: "h1", Source: "franz-go", ConsumeNs: c1, RecordTsNs: send, PayloadSize: 42}, From: pos(11)},
	}
	common := codecs.Verdict{CorrelationID: id, Topic: "orders", Partition: 2, Offset: 77, ProducerClient: "shop", ProducerHost: "h0",
		SendNs: send, AckNs: ack, PayloadSize: 42, ConsumePartition: 2, ConsumeOffset: 77,
		AckLatencyUs: (ack - send) / 1000, FirstSeenNs: send}
	lost := common
	lost.Group, lost.Status, lost.Seq, lost.Cause, lost.E2ELatencyUs, lost.DecidedNs = "billing", codecs.StatusLost, 1, "not consumed within 100ms", -1, send+int64(100*time.Millisecond)
	billing := common
	billing.Group, billing.Status, billing.Seq, billing.E2ELatencyUs = "billing", codecs.StatusDelivered, 2, (c1-send)/1000
	billing.ConsumerClient, billing.ConsumerHost, billing.FirstConsumeNs, billing.LastConsumeNs, billing.ConsumeCount, billing.DecidedNs = "billing-1", "h1", c1, c1, 1, c1
	search := common
	search.Group, search.Status, search.Seq, search.E2ELatencyUs = "search", codecs.StatusDelivered, 1, (c2-send)/1000
	search.ConsumerClient, search.ConsumerHost, search.FirstConsumeNs, search.LastConsumeNs, search.ConsumeCount, search.DecidedNs = "search-1", "h2", c2, c2, 1, c2
	first := &sinks.Batch{Events: ev, Verdicts: []codecs.Verdict{lost, search}}
	second := &sinks.Batch{Events: ev[1:2], Verdicts: []codecs.Verdict{billing}}
	return first, second, []codecs.Verdict{billing, search}
}

func TestTrail(t *testing.T) {
	conn, db, sink := setup(t)
	const id = `it's a \ "tricky" id`
	first, second, wantDeliveries := trailFixture(id)
	other, _, _ := trailFixture("someone-else")
	write(t, sink, other)
	write(t, sink, first)
	write(t, sink, second)

	tr, err := report.Trail(context.Background(), conn, db, id)
	if err != nil {
		t.Fatal(err)
	}
	if tr.CorrelationID != id {
		t.Errorf("CorrelationID %q", tr.CorrelationID)
	}
	wantEvents := slices.Clone(first.Events)
	slices.SortFunc(wantEvents, func(a, b sinks.EventRecord) int { return int(a.Event.TimeNs() - b.Event.TimeNs()) })
	if len(tr.Events) != len(wantEvents) {
		t.Fatalf("%d events, want %d: %+v", len(tr.Events), len(wantEvents), tr.Events)
	}
	for i := range wantEvents {
		if tr.Events[i] != wantEvents[i] {
			t.Errorf("event %d:\n got  %+v\n want %+v", i, tr.Events[i], wantEvents[i])
		}
	}
	if len(tr.Deliveries) != len(wantDeliveries) {
		t.Fatalf("%d deliveries, want %d: %+v", len(tr.Deliveries), len(wantDeliveries), tr.Deliveries)
	}
	for i, w := range wantDeliveries {
		w.FirstSeenNs = time.Unix(0, w.FirstSeenNs).Truncate(time.Second).UnixNano()
		w.DecidedNs = time.Unix(0, w.DecidedNs).Truncate(time.Second).UnixNano()
		if tr.Deliveries[i] != w {
			t.Errorf("delivery %d:\n got  %+v\n want %+v", i, tr.Deliveries[i], w)
		}
	}

	var buf bytes.Buffer
	if err := report.FormatTrail(&buf, tr); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	t.Log("\n" + out)
	lines := strings.Split(out, "\n")
	idx := func(sub string) int {
		for i, l := range lines {
			if strings.Contains(l, sub) {
				return i
			}
		}
		t.Errorf("trail output lacks %q:\n%s", sub, out)
		return -1
	}
	produce := tr.Events[0].Event
	for _, s := range []string{
		"produce acked",
		"ack latency " + report.FormatMicros(float64(produce.AckNs-produce.SendNs)/1e3),
		"e2e " + report.FormatMicros(float64(wantDeliveries[0].E2ELatencyUs)) + " after send",
		"e2e " + report.FormatMicros(float64(wantDeliveries[1].E2ELatencyUs)) + " after send",
		"orders[2]@77",
	} {
		idx(s)
	}
	if !(idx("produce acked") < idx("group billing") && idx("group billing") < idx("group search")) {
		t.Errorf("timeline out of order:\n%s", out)
	}
	if strings.Contains(out, "LOST") {
		t.Errorf("superseded LOST verdict shown:\n%s", out)
	}
	if strings.Count(out, codecs.StatusDelivered.String()) != 2 {
		t.Errorf("want two DELIVERED verdicts:\n%s", out)
	}
}

func TestTrailNotFound(t *testing.T) {
	conn, db, sink := setup(t)
	first, _, _ := trailFixture("present")
	write(t, sink, first)
	for _, id := range []string{"absent", "", `present' OR '1'='1`, `\' OR 1=1 --`} {
		tr, err := report.Trail(context.Background(), conn, db, id)
		if !errors.Is(err, report.ErrNotFound) {
			t.Errorf("Trail(%q) = %+v, %v; want ErrNotFound", id, tr, err)
		}
	}
}

func TestFormatMicros(t *testing.T) {
	for _, c := range []struct {
		us   float64
		want string
	}{
		{math.NaN(), "-"}, {-1, "-"}, {0, "0 µs"}, {999.4, "999 µs"}, {1000, "1.00 ms"}, {1234.5, "1.23 ms"}, {2_500_000, "2500.00 ms"},
	} {
		if got := report.FormatMicros(c.us); got != c.want {
			t.Errorf("FormatMicros(%v) = %q, want %q", c.us, got, c.want)
		}
	}
}
