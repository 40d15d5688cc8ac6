package conformance_test

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/report"
	"github.com/kaudit/kaudit/store"
)

// addLag adds the correlators' lag reports to the fixture: over the last
// 40 minutes, orders/ledger reported by two correlator instances in most
// minutes (one in some), orders/billing by one in every other minute,
// payments/billing by one in every third minute, and one report on each
// old day, for retention.
func (f *fixture) addLag(r *rand.Rand) {
	rep := func(at time.Time, topic, group, instance string) audit.LagReport {
		age := 1 + r.Int64N(300_000)
		return audit.LagReport{Minute: at.Unix(), Topic: topic, Group: group, Instance: instance,
			OldestAckNs: at.UnixNano() - age*1e6 - r.Int64N(1e6), AgeMs: age, Pending: 1 + r.Uint64N(5000)}
	}
	for k := 1; k <= 40; k++ {
		at := f.now.Add(-time.Duration(k) * time.Minute)
		f.lag = append(f.lag, rep(at, "orders", "ledger", "correlator-0@h0"))
		if r.IntN(4) != 0 {
			f.lag = append(f.lag, rep(at, "orders", "ledger", "correlator-1@h1"))
		}
		if k%2 == 0 {
			f.lag = append(f.lag, rep(at, "orders", "billing", "correlator-0@h0"))
		}
		if k%3 == 0 {
			f.lag = append(f.lag, rep(at, "payments", "billing", "correlator-1@h1"))
		}
	}
	for _, day := range f.oldDays {
		f.lag = append(f.lag, rep(day.Add(3*time.Hour), "orders", "ledger", "correlator-0@h0"))
	}
}

// lagMinutes is what report.Lag must return for f: per minute, topic and
// group, the largest age and summed pending count over the instances.
func (fx *fixture) lagMinutes(f report.Filter) []report.LagMinute {
	from, to := proxyBounds(f.Since, f.Until)
	type key struct {
		m            int64
		topic, group string
	}
	sums := map[key]*report.LagMinute{}
	for _, l := range fx.lag {
		if l.Minute < from || l.Minute >= to || (f.Topic != "" && l.Topic != f.Topic) || (f.Group != "" && l.Group != f.Group) {
			continue
		}
		k := key{l.Minute, l.Topic, l.Group}
		m := sums[k]
		if m == nil {
			m = &report.LagMinute{Minute: time.Unix(l.Minute, 0).UTC(), Topic: l.Topic, Group: l.Group, AgeMs: l.AgeMs, OldestAckNs: l.OldestAckNs}
			sums[k] = m
		}
		m.AgeMs = max(m.AgeMs, l.AgeMs)
		m.OldestAckNs = min(m.OldestAckNs, l.OldestAckNs)
		m.Pending += l.Pending
		m.Instances++
	}
	var out []report.LagMinute
	for _, m := range sums {
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b report.LagMinute) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), strings.Compare(a.Group, b.Group), a.Minute.Compare(b.Minute))
	})
	return out
}

// lagReports runs what `kaudit report --lag` reads, over filters, and
// compares it with the fixture.
func lagReports(t *testing.T, e *engine, fx *fixture) {
	ctx := context.Background()
	db := e.cfg.Database
	for _, f := range []report.Filter{
		{Since: fx.now.Add(-time.Hour)},
		{Since: fx.now.Add(-15 * time.Minute)},
		{Since: fx.now.Add(-30 * time.Minute), Until: fx.now.Add(-10 * time.Minute)},
		{Since: fx.now.Add(-time.Hour), Topic: "orders"},
		{Since: fx.now.Add(-time.Hour), Group: "billing"},
		{Since: fx.now.Add(-60 * 24 * time.Hour), Until: fx.now.Add(-24 * time.Hour)},
		{Since: fx.now.Add(-time.Hour), Topic: "' OR 1=1 --"},
	} {
		got, err := report.Lag(ctx, e.rec, db, f)
		if err != nil {
			t.Fatal(err)
		}
		want := fx.lagMinutes(f)
		sameRows(t, fmt.Sprintf("lag %+v", f), got, want)
		if f.Topic == "" && len(want) < 2 {
			t.Errorf("lag %+v: the fixture has only %d rows; pick a filter that shows more", f, len(want))
		}
		e.put(fmt.Sprintf("lag %+v", f), got)
	}
	f := report.Filter{Since: fx.now.Add(-time.Hour)}
	got, _ := report.Lag(ctx, e.rec, db, f)
	var a, b strings.Builder
	for _, c := range []struct {
		w    io.Writer
		rows []report.LagMinute
	}{{&a, got}, {&b, fx.lagMinutes(f)}} {
		if err := report.FormatLag(c.w, c.rows); err != nil {
			t.Fatal(err)
		}
	}
	if a.String() != b.String() || strings.Count(a.String(), "\n") < 40 {
		t.Errorf("kaudit report --lag:\n%s\nwant\n%s", a.String(), b.String())
	}
	e.put("kaudit report --lag", a.String())
}

// lagLoaded checks that consumer_lag_1m holds each fixture report once
// (the retried batch collapsed).
func lagLoaded(t *testing.T, e *engine, fx *fixture) {
	var n uint64
	if err := e.raw.QueryRow(context.Background(), "SELECT count() FROM "+store.Table(e.cfg.Database, store.LagTable)+" FINAL").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != uint64(len(fx.lag)) {
		t.Errorf("%s FINAL has %d rows, want the fixture's %d", store.LagTable, n, len(fx.lag))
	}
}
