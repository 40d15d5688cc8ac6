package store_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

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

// rollupCounts reads deliveries_1m FINAL as counts per minute, topic and
// group.
func rollupCounts(t *testing.T, conn driver.Conn, db string) map[minuteKey]report.Counts {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT toUInt32(minute), topic, consumer_group, messages,
		delivered, lost, late, duplicate, produce_failed, unaudited_producer, corrupted
		FROM `+store.Table(db, store.RollupTable)+` FINAL`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[minuteKey]report.Counts{}
	for rows.Next() {
		var m uint32
		var k minuteKey
		var c report.Counts
		if err := rows.Scan(&m, &k.topic, &k.group, &c.Messages, &c.Delivered, &c.Lost, &c.Late, &c.Duplicate,
			&c.ProduceFailed, &c.UnauditedProducer, &c.Corrupted); err != nil {
			t.Fatal(err)
		}
		k.minute = int64(m)
		if _, dup := out[k]; dup {
			t.Errorf("deliveries_1m FINAL has two rows for %+v", k)
		}
		out[k] = c
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// finalCounts is count() over deliveries FINAL per minute, topic, group
// and status, shaped like rollupCounts.
func finalCounts(t *testing.T, conn driver.Conn, db string) map[minuteKey]report.Counts {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT toUInt32(toStartOfMinute(first_seen)) AS m, topic, consumer_group, status, count()
		FROM `+store.Table(db, "deliveries")+` FINAL GROUP BY m, topic, consumer_group, status`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[minuteKey]report.Counts{}
	for rows.Next() {
		var m uint32
		var k minuteKey
		var status string
		var n uint64
		if err := rows.Scan(&m, &k.topic, &k.group, &status, &n); err != nil {
			t.Fatal(err)
		}
		k.minute = int64(m)
		c := out[k]
		addStatus(&c, status, n)
		out[k] = c
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
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

// expectCounts is what the rollups must hold for the latest verdicts vs.
func expectCounts(vs []codecs.Verdict) map[minuteKey]report.Counts {
	out := map[minuteKey]report.Counts{}
	for _, v := range vs {
		k := minuteKey{v.FirstSeenNs / int64(time.Minute) * 60, v.Topic, v.Group}
		c := out[k]
		addStatus(&c, v.Status.String(), 1)
		out[k] = c
	}
	return out
}

func diffCounts(t *testing.T, what string, got, want map[minuteKey]report.Counts) {
	t.Helper()
	for _, k := range slices.SortedFunc(maps.Keys(want), func(a, b minuteKey) int {
		return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
	}) {
		if got[k] != want[k] {
			t.Errorf("%s: %s %s/%s: got %+v, want %+v", what, time.Unix(k.minute, 0).UTC().Format(time.TimeOnly), k.topic, k.group, got[k], want[k])
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected row %+v: %+v", what, k, got[k])
		}
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

func TestRollupsCountCorrectedVerdictsOnce(t *testing.T) {
	conn, db, sink := setup(t)
	ctx := context.Background()
	vs := scenario(base, 600)
	write(t, sink, &sinks.Batch{Verdicts: vs})
	ref := store.NewRefresher(conn, store.RefresherConfig{Database: db})
	st, err := ref.Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Minutes != 3 {
		t.Errorf("first pass recomputed %d minutes, want 3: %+v", st.Minutes, st)
	}
	want := expectCounts(vs)
	diffCounts(t, "before corrections", rollupCounts(t, conn, db), want)

	// Correct every other LOST verdict to LATE, write the corrections
	// twice (a retried batch), and a stale LOST copy after them.
	latest := slices.Clone(vs)
	var corrections, stale []codecs.Verdict
	for i, v := range latest {
		if v.Status == codecs.StatusLost && i%2 == 0 {
			stale = append(stale, v)
			latest[i] = late(v, 90_000_000+int64(i))
			corrections = append(corrections, latest[i])
		}
	}
	if len(corrections) == 0 {
		t.Fatal("scenario has no LOST verdict to correct")
	}
	write(t, sink, &sinks.Batch{Verdicts: corrections})
	write(t, sink, &sinks.Batch{Verdicts: corrections})
	write(t, sink, &sinks.Batch{Verdicts: stale})
	if _, err := ref.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	want = expectCounts(latest)
	got := rollupCounts(t, conn, db)
	diffCounts(t, "after corrections", got, want)
	diffCounts(t, "rollups vs deliveries FINAL", got, finalCounts(t, conn, db))

	// The totals over the rollups equal count() over deliveries FINAL.
	var total, lost, lateN uint64
	for _, c := range got {
		total, lost, lateN = total+c.Messages, lost+c.Lost, lateN+c.Late
	}
	var finalTotal, finalLost, finalLate uint64
	err = conn.QueryRow(ctx, `SELECT count(), countIf(status = 'LOST'), countIf(status = 'LATE') FROM `+
		store.Table(db, "deliveries")+` FINAL`).Scan(&finalTotal, &finalLost, &finalLate)
	if err != nil {
		t.Fatal(err)
	}
	if total != finalTotal || lost != finalLost || lateN != finalLate || total != uint64(len(vs)) {
		t.Errorf("rollups: %d messages, %d lost, %d late; deliveries FINAL: %d, %d, %d; written %d messages",
			total, lost, lateN, finalTotal, finalLost, finalLate, len(vs))
	}
	if lateN != uint64(len(corrections)) {
		t.Errorf("%d LATE in the rollups, want the %d corrections", lateN, len(corrections))
	}
	t.Logf("%d messages, %d corrected LOST -> LATE, %d still lost", total, lateN, lost)

	// Overview quantiles are those of the latest verdicts' known latencies
	// (quantileExact), within the histograms' error bound.
	rows, err := report.Overview(ctx, conn, db, report.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 {
		t.Fatalf("Overview returned %d rows, want 4: %+v", len(rows), rows)
	}
	for _, row := range rows {
		var c report.Counts
		var ack, e2e []float64
		for _, v := range latest {
			if v.Topic != row.Topic || v.Group != row.Group {
				continue
			}
			addStatus(&c, v.Status.String(), 1)
			if v.AckLatencyUs >= 0 {
				ack = append(ack, float64(v.AckLatencyUs))
			}
			if v.E2ELatencyUs >= 0 {
				e2e = append(e2e, float64(v.E2ELatencyUs))
			}
		}
		if row.Counts != c {
			t.Errorf("%s/%s: counts %+v, want %+v", row.Topic, row.Group, row.Counts, c)
		}
		for _, q := range []struct {
			name      string
			got, want float64
		}{
			{"ack p50", row.Ack.P50, quantile(ack, 0.5)}, {"ack p99", row.Ack.P99, quantile(ack, 0.99)},
			{"e2e p50", row.E2E.P50, quantile(e2e, 0.5)}, {"e2e p90", row.E2E.P90, quantile(e2e, 0.9)},
			{"e2e p99", row.E2E.P99, quantile(e2e, 0.99)}, {"e2e p99.9", row.E2E.P999, quantile(e2e, 0.999)},
		} {
			if !within(q.got, q.want) {
				t.Errorf("%s/%s %s = %v, want %v", row.Topic, row.Group, q.name, q.got, q.want)
			}
		}
		wantComplete := 100 * float64(c.Expected()-c.Lost) / float64(c.Expected())
		if !near(row.Completeness(), wantComplete) {
			t.Errorf("%s/%s completeness %v, want %v", row.Topic, row.Group, row.Completeness(), wantComplete)
		}
	}
}

func TestRefreshIsIncremental(t *testing.T) {
	conn, db, sink := setup(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Minute)
	old := scenario(now.Add(-48*time.Hour), 50)
	recent := scenario(now.Add(-10*time.Minute), 50)
	write(t, sink, &sinks.Batch{Verdicts: append(slices.Clone(old), recent...)})
	time.Sleep(1100 * time.Millisecond) // inserted_at has whole seconds

	ref := store.NewRefresher(conn, store.RefresherConfig{Database: db, Slack: time.Nanosecond})
	if st, err := ref.Refresh(ctx); err != nil || st.Minutes != 6 {
		t.Fatalf("first pass: %+v, %v; want 6 minutes", st, err)
	}
	st, err := ref.Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Minutes != 0 || st.Ranges != 0 {
		t.Errorf("a pass without new rows recomputed %d minutes in %d ranges", st.Minutes, st.Ranges)
	}

	// A correction of a two-day-old message is found by the next pass,
	// also by a new Refresher (a restarted process), which resumes from
	// the refresh time stored in the rollups.
	var idx int
	for idx = range old {
		if old[idx].Status == codecs.StatusLost {
			break
		}
	}
	if old[idx].Status != codecs.StatusLost {
		t.Fatal("no LOST verdict in the old scenario")
	}
	latest := append(slices.Clone(old), recent...)
	latest[idx] = late(old[idx], 172_800_000_000)
	write(t, sink, &sinks.Batch{Verdicts: []codecs.Verdict{latest[idx]}})

	restarted := store.NewRefresher(conn, store.RefresherConfig{Database: db, Slack: time.Nanosecond})
	st, err = restarted.Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Minutes != 1 || st.Ranges != 1 {
		t.Errorf("pass after one correction: %+v, want 1 minute in 1 range", st)
	}
	diffCounts(t, "after an old correction", rollupCounts(t, conn, db), expectCounts(latest))
}

func TestRefresherRun(t *testing.T) {
	conn, db, sink := setup(t)
	vs := scenario(base, 20)
	write(t, sink, &sinks.Batch{Verdicts: vs})
	ref := store.NewRefresher(conn, store.RefresherConfig{Database: db})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ref.Run(ctx, 50*time.Millisecond) }()
	deadline := time.Now().Add(20 * time.Second)
	for len(rollupCounts(t, conn, db)) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v after its context ended", err)
	}
	diffCounts(t, "after Run", rollupCounts(t, conn, db), expectCounts(vs))
	if err := ref.Run(context.Background(), 0); err == nil {
		t.Error("Run with interval 0 did not fail")
	}
}

func TestDropBefore(t *testing.T) {
	conn, db, sink := setup(t)
	ctx := context.Background()
	now := time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC)
	day := func(d int) time.Time { return now.AddDate(0, 0, -d) }
	var vs []codecs.Verdict
	var evs []sinks.EventRecord
	for i, d := range []int{40, 31, 30, 29, 1} {
		v := codecs.Verdict{CorrelationID: fmt.Sprint("v", i), Topic: "t", Group: "g", Status: codecs.StatusDelivered, Seq: 1,
			FirstSeenNs: day(d).UnixNano(), DecidedNs: day(d).UnixNano()}
		vs = append(vs, v)
		evs = append(evs, sinks.EventRecord{Event: codecs.Event{Kind: codecs.KindProduce, CorrelationID: v.CorrelationID, Topic: "t",
			SendNs: day(d).UnixNano(), AckNs: day(d).UnixNano()}, From: sinks.Position{Topic: "kaudit.events", Offset: int64(i)}})
	}
	write(t, sink, &sinks.Batch{Events: evs, Verdicts: vs})
	if _, err := store.NewRefresher(conn, store.RefresherConfig{Database: db}).Refresh(ctx); err != nil {
		t.Fatal(err)
	}

	count := func(table string) uint64 {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+store.Table(db, table)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Keep 30 days: the days 40 and 31 ago end before the cutoff; the
	// day 30 days ago ends after it.
	cutoff := now.Add(-30 * 24 * time.Hour)
	dry, err := store.DropBefore(ctx, conn, store.Schema{Database: db}, cutoff, true)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range dry {
		names = append(names, p.Table+"/"+p.ID)
	}
	want := []string{"deliveries/20260506", "deliveries/20260515", "deliveries_1m/20260506", "deliveries_1m/20260515",
		"events/20260506", "events/20260515"}
	if !slices.Equal(names, want) {
		t.Errorf("dry run lists %v, want %v", names, want)
	}
	if n := count("deliveries"); n != 5 {
		t.Errorf("dry run dropped rows: %d deliveries left", n)
	}
	dropped, err := store.DropBefore(ctx, conn, store.Schema{Database: db}, cutoff, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(dropped) != len(want) {
		t.Errorf("dropped %+v", dropped)
	}
	for table, n := range map[string]uint64{"deliveries": 3, "events": 3, store.RollupTable: 3} {
		if got := count(table); got != n {
			t.Errorf("%s: %d rows after DropBefore, want %d", table, got, n)
		}
	}
	if again, err := store.DropBefore(ctx, conn, store.Schema{Database: db}, cutoff, false); err != nil || len(again) != 0 {
		t.Errorf("second DropBefore: %v, %v", again, err)
	}
}

// LOST verdicts of cause audit_gap are counted apart from real losses, do
// not lower completeness, and leave the column when corrected to LATE.
func TestRollupsCountAuditGapsApart(t *testing.T) {
	conn, db, sink := setup(t)
	ctx := context.Background()
	var vs []codecs.Verdict
	add := func(status codecs.Status, cause string, n int) {
		for range n {
			i := len(vs)
			at := base.Add(time.Duration(i) * time.Second)
			vs = append(vs, codecs.Verdict{CorrelationID: fmt.Sprint("ag-", i), Topic: "orders", Group: "billing",
				Status: status, Cause: cause, Seq: 1, AckLatencyUs: 500, E2ELatencyUs: -1,
				FirstSeenNs: at.UnixNano(), DecidedNs: at.UnixNano()})
		}
	}
	add(codecs.StatusDelivered, "", 15)
	add(codecs.StatusLost, "not_consumed", 2)
	add(codecs.StatusLost, store.CauseAuditGap, 4)
	write(t, sink, &sinks.Batch{Verdicts: vs})
	ref := store.NewRefresher(conn, store.RefresherConfig{Database: db})
	check := func(what string, lost, gap, lateN uint64, completeness float64) {
		t.Helper()
		if _, err := ref.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		var l, g, la uint64
		if err := conn.QueryRow(ctx, "SELECT sum(lost), sum(audit_gap), sum(late) FROM "+store.Table(db, store.RollupTable)+" FINAL").Scan(&l, &g, &la); err != nil {
			t.Fatal(err)
		}
		if l != lost || g != gap || la != lateN {
			t.Errorf("%s: rollups lost %d, audit_gap %d, late %d; want %d, %d, %d", what, l, g, la, lost, gap, lateN)
		}
		rows, err := report.Overview(ctx, conn, db, report.Filter{})
		if err != nil || len(rows) != 1 {
			t.Fatalf("%s: Overview %+v, %v", what, rows, err)
		}
		r := rows[0]
		if r.Lost != lost || r.AuditGap != gap || r.Expected() != uint64(len(vs)) || !near(r.Completeness(), completeness) {
			t.Errorf("%s: overview lost %d, audit gap %d, expected %d, completeness %v; want %d, %d, %d, %v",
				what, r.Lost, r.AuditGap, r.Expected(), r.Completeness(), lost, gap, len(vs), completeness)
		}
	}
	// 21 expected, 4 of unknown fate: 15 of the 17 audited arrived.
	check("audit gaps", 2, 4, 0, 100*15.0/17)
	// One audit gap turns out LATE: it arrived.
	corr := vs[len(vs)-1]
	corr.Status, corr.Cause, corr.Seq, corr.E2ELatencyUs = codecs.StatusLate, "after_deadline", 2, 90_000_000
	write(t, sink, &sinks.Batch{Verdicts: []codecs.Verdict{corr}})
	check("one corrected to LATE", 2, 3, 1, 100*16.0/18)
}
