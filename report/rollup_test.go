package report_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/report"
	"github.com/kaudit/kaudit/sinks"
	"github.com/kaudit/kaudit/store"
)

// minuteKey is one row of deliveries_1m.
type minuteKey struct {
	minute       int64
	topic, group string
}

func addStatus(c *report.Counts, status string, n uint64) {
	c.Messages += n
	switch status {
	case codecs.StatusDelivered.String():
		c.Delivered += n
	case codecs.StatusLost.String():
		c.Lost += n
	case codecs.StatusLate.String():
		c.Late += n
	case codecs.StatusDuplicate.String():
		c.Duplicate += n
	case codecs.StatusProduceFailed.String():
		c.ProduceFailed += n
	case codecs.StatusUnauditedProducer.String():
		c.UnauditedProducer += n
	case codecs.StatusCorrupted.String():
		c.Corrupted += n
	}
}

// scenario is a mix of verdicts over 3 minutes, 2 topics and 2 groups.
func scenario(start time.Time, n int) []codecs.Verdict {
	r := rand.New(rand.NewPCG(7, 7))
	statuses := []codecs.Status{
		codecs.StatusDelivered, codecs.StatusDelivered, codecs.StatusDelivered, codecs.StatusDelivered,
		codecs.StatusLost, codecs.StatusDuplicate, codecs.StatusCorrupted, codecs.StatusProduceFailed,
		codecs.StatusUnauditedProducer,
	}
	var out []codecs.Verdict
	for i := range n {
		seen := start.Add(time.Duration(r.Int64N(int64(3 * time.Minute))))
		v := codecs.Verdict{
			CorrelationID: fmt.Sprintf("m-%04d", i),
			Topic:         []string{"orders", "payments"}[i%2],
			Group:         []string{"billing", "search"}[(i/2)%2],
			Status:        statuses[r.IntN(len(statuses))],
			Seq:           1,
			AckLatencyUs:  100 + r.Int64N(5_000),
			E2ELatencyUs:  1_000 + r.Int64N(200_000),
			FirstSeenNs:   seen.UnixNano(),
			DecidedNs:     seen.Add(time.Second).UnixNano(),
		}
		switch v.Status {
		case codecs.StatusLost, codecs.StatusProduceFailed:
			v.E2ELatencyUs = -1
		case codecs.StatusUnauditedProducer:
			v.AckLatencyUs, v.E2ELatencyUs = -1, -1
		}
		out = append(out, v)
	}
	return out
}

// late returns v corrected from LOST to LATE (the next seq).
func late(v codecs.Verdict, e2eUs int64) codecs.Verdict {
	v.Status, v.Seq, v.E2ELatencyUs = codecs.StatusLate, v.Seq+1, e2eUs
	v.DecidedNs += int64(time.Minute)
	return v
}

func TestOverviewAndSeriesFilters(t *testing.T) {
	conn, db, sink := setup(t)
	ctx := context.Background()
	vs := scenario(base, 200)
	write(t, sink, &sinks.Batch{Verdicts: vs})
	if _, err := store.NewRefresher(conn, store.RefresherConfig{Database: db}).Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	second := base.Add(time.Minute)
	for _, f := range []report.Filter{
		{},
		{Topic: "orders"},
		{Group: "search"},
		{Topic: "payments", Group: "billing"},
		{Since: second.Add(10 * time.Second)}, // rounds down to the second minute
		{Until: second},
		{Since: second, Until: second.Add(time.Minute)},
		{Topic: "orders' OR 1=1 --"},
		{Group: `\' OR ''='`},
		{Since: base.Add(time.Hour)},
	} {
		want := map[string]report.Counts{}
		perMinute := map[int64]report.Counts{}
		for _, v := range vs {
			m := time.Unix(0, v.FirstSeenNs).Truncate(time.Minute)
			if (f.Topic != "" && v.Topic != f.Topic) || (f.Group != "" && v.Group != f.Group) ||
				m.Before(f.Since.Truncate(time.Minute)) || (!f.Until.IsZero() && !m.Before(f.Until)) {
				continue
			}
			c := want[v.Topic+"/"+v.Group]
			addStatus(&c, v.Status.String(), 1)
			want[v.Topic+"/"+v.Group] = c
			c = perMinute[m.Unix()]
			addStatus(&c, v.Status.String(), 1)
			perMinute[m.Unix()] = c
		}
		rows, err := report.Overview(ctx, conn, db, f)
		if err != nil {
			t.Fatalf("Overview(%+v): %v", f, err)
		}
		got := map[string]report.Counts{}
		for _, r := range rows {
			got[r.Topic+"/"+r.Group] = r.Counts
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("Overview(%+v):\n got  %v\n want %v", f, got, want)
		}
		mins, err := report.Series(ctx, conn, db, f, time.Minute)
		if err != nil {
			t.Fatalf("Series(%+v): %v", f, err)
		}
		gotMin := map[int64]report.Counts{}
		for i, m := range mins {
			if i > 0 && !mins[i-1].Start.Before(m.Start) {
				t.Errorf("Series(%+v) out of order at %d", f, i)
			}
			gotMin[m.Start.Unix()] = m.Counts
		}
		if fmt.Sprint(gotMin) != fmt.Sprint(perMinute) {
			t.Errorf("Series(%+v):\n got  %v\n want %v", f, gotMin, perMinute)
		}
		// Two-minute steps sum pairs of minutes.
		perTwo := map[int64]report.Counts{}
		for m, c := range perMinute {
			k := m / 120 * 120
			s := perTwo[k]
			s.Messages += c.Messages
			s.Delivered += c.Delivered
			s.Lost += c.Lost
			s.Late += c.Late
			s.Duplicate += c.Duplicate
			s.ProduceFailed += c.ProduceFailed
			s.UnauditedProducer += c.UnauditedProducer
			s.Corrupted += c.Corrupted
			perTwo[k] = s
		}
		two, err := report.Series(ctx, conn, db, f, 2*time.Minute)
		if err != nil {
			t.Fatalf("Series(%+v, 2m): %v", f, err)
		}
		gotTwo := map[int64]report.Counts{}
		for _, p := range two {
			gotTwo[p.Start.Unix()] = p.Counts
		}
		if fmt.Sprint(gotTwo) != fmt.Sprint(perTwo) {
			t.Errorf("Series(%+v, 2m):\n got  %v\n want %v", f, gotTwo, perTwo)
		}
	}
}

func TestAnomalies(t *testing.T) {
	conn, db, sink := setup(t)
	ctx := context.Background()
	mk := func(id string, s codecs.Status, seq uint64, decided time.Duration) codecs.Verdict {
		return codecs.Verdict{CorrelationID: id, Topic: "orders", Group: "billing", Status: s, Seq: seq,
			AckLatencyUs: 500, E2ELatencyUs: -1, FirstSeenNs: base.UnixNano(), DecidedNs: base.Add(decided).UnixNano()}
	}
	write(t, sink, &sinks.Batch{Verdicts: []codecs.Verdict{
		mk("ok", codecs.StatusDelivered, 1, time.Second),
		mk("fixed", codecs.StatusLost, 1, 2*time.Second), // superseded below
		mk("late", codecs.StatusLost, 1, 3*time.Second),  // superseded below
		mk("dup", codecs.StatusDuplicate, 1, 4*time.Second),
		mk("gone", codecs.StatusLost, 1, 5*time.Second),
	}})
	write(t, sink, &sinks.Batch{Verdicts: []codecs.Verdict{
		mk("fixed", codecs.StatusDelivered, 2, 6*time.Second),
		mk("late", codecs.StatusLate, 2, 7*time.Second),
	}})
	got, err := report.Anomalies(ctx, conn, db, report.Filter{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, v := range got {
		ids = append(ids, v.CorrelationID+":"+v.Status.String())
	}
	if want := []string{"late:LATE", "gone:LOST", "dup:DUPLICATE"}; !slices.Equal(ids, want) {
		t.Errorf("Anomalies = %v, want %v", ids, want)
	}
	if got, err := report.Anomalies(ctx, conn, db, report.Filter{}, 1); err != nil || len(got) != 1 {
		t.Errorf("limit 1: %d anomalies, %v", len(got), err)
	}
	if got, err := report.Anomalies(ctx, conn, db, report.Filter{Topic: "' OR 1=1 --"}, 10); err != nil || len(got) != 0 {
		t.Errorf("hostile topic: %v, %v", got, err)
	}
}

func TestFormatOverview(t *testing.T) {
	var buf bytes.Buffer
	if err := report.FormatOverview(&buf, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "(no deliveries)") {
		t.Errorf("empty overview:\n%s", buf.String())
	}
	if c := (report.Counts{Messages: 3, ProduceFailed: 3}); !math.IsNaN(c.Completeness()) || c.Expected() != 0 {
		t.Errorf("nothing expected: completeness %v, expected %d", c.Completeness(), c.Expected())
	}
}

func ExampleFormatOverview() {
	nan := math.NaN()
	rows := []report.GroupStats{
		{Topic: "orders", Group: "billing",
			Counts: report.Counts{Messages: 1006, Delivered: 990, Lost: 4, AuditGap: 3, Late: 5, Duplicate: 2, Corrupted: 1, ProduceFailed: 1},
			Ack:    report.Quantiles{P50: 850, P99: 4210}, E2E: report.Quantiles{P50: 12_345, P99: 98_765}},
		{Topic: "orders", Group: "search",
			Counts: report.Counts{Messages: 2, Lost: 2},
			Ack:    report.Quantiles{P50: 900, P99: 900}, E2E: report.Quantiles{P50: nan, P99: nan}},
	}
	_ = report.FormatOverview(os.Stdout, rows)
	// Output:
	// TOPIC   GROUP    EXPECTED  DELIVERED  LOST  AUDIT_GAP  LATE  DUPLICATE  CORRUPTED  PRODUCE_FAILED  UNAUDITED  COMPLETENESS  ACK p50  ACK p99  E2E p50   E2E p99
	// orders  billing  1005      990        4     3          5     2          1          1               0          99.60%        850 µs   4.21 ms  12.35 ms  98.77 ms
	// orders  search   2         0          2     0          0     0          0          0               0          0.00%         900 µs   900 µs   -         -
}
