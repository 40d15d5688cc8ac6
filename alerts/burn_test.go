package alerts_test

import (
	"math"
	"testing"
	"time"

	"github.com/kaudit/kaudit/alerts"
	"github.com/kaudit/kaudit/processors/expectations"
)

const month = 30 * 24 * time.Hour

// TestDefaultRulesAreTheWorkbooks checks the default rules against the
// SRE workbook's table (chapter "Alerting on SLOs", recommended
// parameters for a 30-day SLO): 14.4× over 1h/5m and 6× over 6h/30m page,
// 1× over 3d/6h opens a ticket.
func TestDefaultRulesAreTheWorkbooks(t *testing.T) {
	want := []struct {
		sev         string
		long, short time.Duration
		burn        float64
	}{
		{"page", time.Hour, 5 * time.Minute, 14.4},
		{"page", 6 * time.Hour, 30 * time.Minute, 6},
		{"ticket", 72 * time.Hour, 6 * time.Hour, 1},
	}
	if len(alerts.DefaultRules) != len(want) {
		t.Fatalf("%d default rules, want %d", len(alerts.DefaultRules), len(want))
	}
	for i, w := range want {
		r := alerts.DefaultRules[i]
		if r.Severity != w.sev || r.Long != w.long || r.Short != w.short {
			t.Errorf("rule %d = %s, want %s %s/%s", i, r, w.sev, w.long, w.short)
		}
		if got := r.Threshold(month); math.Abs(got-w.burn) > 1e-9 {
			t.Errorf("rule %s: threshold %v over 30 days, want %v", r, got, w.burn)
		}
		if err := r.Validate(); err != nil {
			t.Error(err)
		}
	}
	// Over a 7-day SLO window, spending 2% of the budget in one hour is a
	// burn of 0.02 × 168h / 1h = 3.36.
	if got := alerts.DefaultRules[0].Threshold(7 * 24 * time.Hour); math.Abs(got-3.36) > 1e-9 {
		t.Errorf("1h rule over a 7-day window: threshold %v, want 3.36", got)
	}
}

func TestBurnRate(t *testing.T) {
	for _, c := range []struct {
		w      alerts.Window
		budget float64
		want   float64
	}{
		{alerts.Window{Total: 1000, Bad: 10}, 0.001, 10}, // 1% errors, 0.1% allowed
		{alerts.Window{Total: 1000, Bad: 1}, 0.001, 1},   // exactly the budget
		{alerts.Window{Total: 1000, Bad: 0}, 0.001, 0},
		{alerts.Window{Total: 0, Bad: 0}, 0.001, 0},               // no traffic, no burn
		{alerts.Window{Total: 10, Bad: 1}, 0, math.Inf(1)},        // 100% objective
		{alerts.Window{Total: 200, Bad: 0}, 0, 0},                 // 100% objective, kept
		{alerts.Window{Total: 100_000, Bad: 1}, 0.0001, 0.1},      // 99.99%: 10 allowed
		{alerts.Window{Total: 500, Bad: 500}, 0.01, 100},          // everything slow, p99
		{alerts.Window{Total: 1_000_000, Bad: 144}, 0.0001, 1.44}, // 99.99%
	} {
		if got := c.w.BurnRate(c.budget); math.Abs(got-c.want) > 1e-9 && !(math.IsInf(got, 1) && math.IsInf(c.want, 1)) {
			t.Errorf("%+v at budget %v: burn %v, want %v", c.w, c.budget, got, c.want)
		}
	}
}

// traffic is per-minute counts: perMinute messages a minute from start for
// n minutes, with bad(i) bad ones in minute i.
func traffic(start time.Time, n int, perMinute uint64, bad func(i int) uint64) []alerts.Minute {
	out := make([]alerts.Minute, n)
	for i := range out {
		b := bad(i)
		out[i] = alerts.Minute{Start: start.Add(time.Duration(i) * time.Minute), Total: perMinute, Bad: b, Lost: b}
	}
	return out
}

func TestSumCountsTheMinutesOfTheWindow(t *testing.T) {
	start := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	ms := traffic(start, 10, 60, func(i int) uint64 { return uint64(i) }) // minute i has i bad
	// At 10:09:30 a 5-minute window holds minutes 10:05..10:09.
	w := alerts.Sum(ms, start.Add(9*time.Minute+30*time.Second), 5*time.Minute)
	if w.Total != 300 || w.Bad != 5+6+7+8+9 {
		t.Errorf("5m window at 10:09:30: %+v, want 300 messages, 35 bad", w)
	}
	// A window longer than the data holds all of it.
	if w := alerts.Sum(ms, start.Add(9*time.Minute), time.Hour); w.Total != 600 || w.Bad != 45 {
		t.Errorf("1h window: %+v, want 600 messages, 45 bad", w)
	}
}

// firing returns the severities firing at now.
func firing(ms []alerts.Minute, now time.Time, budget float64) map[string]bool {
	out := map[string]bool{}
	for _, r := range alerts.Check(alerts.DefaultRules, ms, now, budget, month) {
		if r.Firing {
			out[r.Severity] = true
		}
	}
	return out
}

// TestOutagePagesAndResolves: 1 message per second, 99.9% completeness.
// Six hours of clean traffic, then a group loses everything for 15
// minutes, then recovers. By hand: one lost minute is 60 of 3,600 (1.7%)
// in the last hour and 60 of 300 (20%) in the last 5 minutes, both above
// 14.4 × 0.1% = 1.44%, so the first evaluation after one bad minute
// pages; over 3 days (all 6h15m of data) it is above 1 × 0.1%, so a
// ticket opens too. After recovery the 1h/5m rule stops once five clean
// minutes passed, but the 6h/30m rule (6 × 0.1% = 0.6%; 900 of 21,600
// over 6h) holds until the last bad minute (T+14m) leaves the 30-minute
// window: at T+43m it still pages, at T+44m it does not. The ticket's 6h
// short window keeps it open for hours.
func TestOutagePagesAndResolves(t *testing.T) {
	start := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	const history = 360 // minutes
	ms := traffic(start, history+120, 60, func(i int) uint64 {
		if i >= history && i < history+15 {
			return 60
		}
		return 0
	})
	T := start.Add(history * time.Minute)
	at := func(d time.Duration) time.Time { return T.Add(d + 30*time.Second) } // mid-minute
	if f := firing(ms, at(-time.Minute), 0.001); len(f) != 0 {
		t.Fatalf("before the outage: %v firing", f)
	}
	if f := firing(ms, at(0), 0.001); !f["page"] || !f["ticket"] {
		t.Fatalf("after the first lost minute: firing %v, want page and ticket", f)
	}
	if f := firing(ms, at(43*time.Minute), 0.001); !f["page"] {
		t.Errorf("at T+43m (the last bad minute still in the 30-minute window): firing %v, want page", f)
	}
	if f := firing(ms, at(44*time.Minute), 0.001); f["page"] || !f["ticket"] {
		t.Errorf("at T+44m: firing %v, want only the ticket", f)
	}
}

// TestBriefSlownessDoesNotPage: six hours at 1 message per second, 99.9%
// completeness; 10 messages LATE in one minute. The last 5 minutes burn
// 10/300 / 0.1% = 33× (a single-window alert would page), but the hour
// burns 10/3,600 / 0.1% = 2.8× < 14.4, the six hours 0.46× < 6, the
// 3 days 0.46× < 1: nothing fires.
func TestBriefSlownessDoesNotPage(t *testing.T) {
	start := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	ms := traffic(start, 360, 60, func(i int) uint64 {
		if i == 340 {
			return 10
		}
		return 0
	})
	for m := 340; m < 360; m++ {
		now := start.Add(time.Duration(m)*time.Minute + 59*time.Second)
		if f := firing(ms, now, 0.001); len(f) != 0 {
			t.Fatalf("minute %d: %v firing", m, f)
		}
	}
	res := alerts.Check(alerts.DefaultRules, ms, start.Add(342*time.Minute), 0.001, month)
	if res[0].BurnShort < res[0].Threshold {
		t.Errorf("5-minute burn %v: the scenario should exceed %v over the short window alone", res[0].BurnShort, res[0].Threshold)
	}
}

// TestSteadyErrorsWithinBudget: a steady error rate of half the budget
// never fires, however long it lasts.
func TestSteadyErrorsWithinBudget(t *testing.T) {
	start := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	ms := traffic(start, 4*24*60, 2000, func(int) uint64 { return 1 }) // 0.05% of 2,000/min
	if f := firing(ms, start.Add(4*24*time.Hour-time.Second), 0.001); len(f) != 0 {
		t.Errorf("steady 0.05%% errors under a 0.1%% budget: %v firing", f)
	}
	// The same at twice the budget opens a ticket (1×) but does not page.
	ms = traffic(start, 4*24*60, 500, func(int) uint64 { return 1 }) // 0.2%
	if f := firing(ms, start.Add(4*24*time.Hour-time.Second), 0.001); !f["ticket"] || f["page"] {
		t.Errorf("steady 0.2%% errors under a 0.1%% budget: firing %v, want only the ticket", f)
	}
}

func TestParseRule(t *testing.T) {
	for _, r := range alerts.DefaultRules {
		got, err := alerts.ParseRule(r.String())
		if err != nil || got != r {
			t.Errorf("ParseRule(%q) = %+v, %v; want %+v", r.String(), got, err, r)
		}
	}
	if got := alerts.DefaultRules[2].String(); got != "ticket:3d/6h:10%" {
		t.Errorf("ticket rule written %q", got)
	}
	for _, bad := range []string{"", "page", "page:1h:2%", "page:5m/1h:2%", "page:1h/5m:0%", "page:1h/5m:200%",
		"page:1h/30s:2%", ":1h/5m:2%", "page:1x/5m:2%", "page:1h/5m:two"} {
		if _, err := alerts.ParseRule(bad); err == nil {
			t.Errorf("ParseRule(%q) accepted", bad)
		}
	}
}

func TestFromExpectations(t *testing.T) {
	es := []*expectations.Expectation{
		{Topic: "orders", Groups: []string{"search", "billing"}, Completeness: 99.99, P99: expectations.Duration(5 * time.Second)},
		{Topic: "payments", Groups: []string{"ledger"}, Completeness: 99.5, SLOWindow: expectations.Duration(7 * 24 * time.Hour)},
		{Topic: "clicks", Groups: []string{"stats"}},                // no SLO
		{Topic: "broken", Groups: []string{"x"}, Completeness: 120}, // invalid
	}
	got := alerts.FromExpectations(es)
	want := []string{
		"orders/billing completeness 99.99% over 30d",
		"orders/billing p99 5s over 30d",
		"orders/search completeness 99.99% over 30d",
		"orders/search p99 5s over 30d",
		"payments/ledger completeness 99.5% over 7d",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d SLOs %v, want %v", len(got), got, want)
	}
	for i, s := range got {
		if d := s.Topic + "/" + s.Group + " " + s.String(); d != want[i] {
			t.Errorf("SLO %d: %q, want %q", i, d, want[i])
		}
	}
	if b := got[0].Budget(); math.Abs(b-0.0001) > 1e-12 {
		t.Errorf("budget of 99.99%%: %v", b)
	}
	if b := got[1].Budget(); math.Abs(b-0.01) > 1e-12 {
		t.Errorf("budget of p99: %v", b)
	}
}
