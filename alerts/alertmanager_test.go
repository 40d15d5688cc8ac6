package alerts_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kaudit/kaudit/alerts"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/internal/testing/alerttest"
	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/processors/expectations"
	"github.com/kaudit/kaudit/store"
)

func TestMain(m *testing.M) { chtest.Main(m) }

const dashboard = "http://kaudit.test:8080"

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return nil
}

// webhookAlerts decodes the kaudit webhook bodies the receiver got.
func webhookAlerts(t *testing.T, rcv *alerttest.Receiver) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, b := range rcv.Webhooks() {
		var p struct {
			Version string           `json:"version"`
			Alerts  []map[string]any `json:"alerts"`
		}
		if err := json.Unmarshal(b.Body, &p); err != nil {
			t.Fatalf("webhook body %s: %v", b.Body, err)
		}
		if p.Version != "1" {
			t.Fatalf("webhook body version %q", p.Version)
		}
		out = append(out, p.Alerts...)
	}
	return out
}

// TestConsumerGroupStopsPagesAlertmanager is the acceptance test of
// issue 11: three consumer groups of shop.orders, each held to 99.9%
// completeness and a 5 s p99, one message a second, six hours of history.
// billing is healthy throughout; analytics stops polling for 2m10s (about
// ten messages LATE, a hundred slower than 5 s: a 5-minute window alone
// would page); archiver stops consuming for 15 minutes and resumes from the
// latest offset, so the messages sent meanwhile stay LOST. Verdicts reach
// ClickHouse through the ClickHouse sink at the time the correlator would
// decide them, while the evaluator's clock steps a minute at a time through
// the 75 minutes (the clock ends in the real past, so Alertmanager sees
// the resolution as over). billing's clients also dropped the audit events
// of 10 minutes (600 LOST verdicts of cause audit_gap, which would page
// if they counted). A real Alertmanager routes to a test receiver.
//
// Checked from the scenario's own ground truth: the archiver's page
// reaches Alertmanager within the 5-minute short window after the first
// lost message's deadline, carrying the exact number of LOST messages and
// sample correlation IDs that are LOST messages of archiver, with links to
// their trails; it resolves at the first evaluation after the last LOST
// minute left the 30-minute window of the 6h/30m rule; the ticket (1× over
// 3d/6h) stays open; analytics and billing never fire.
func TestConsumerGroupStopsPagesAlertmanager(t *testing.T) {
	cfg, conn := chtest.Migrated(t)
	rcv := alerttest.NewReceiver(t)
	am := alerttest.StartAlertmanager(t, rcv.URL+"/am")

	const topic = "shop.orders"
	deadline := 2 * time.Minute
	end := time.Now().Truncate(time.Minute).Add(-2 * time.Minute)
	s0 := end.Add(-75 * time.Minute)
	history := s0.Add(-6 * time.Hour)
	pauseFrom, pauseTo := s0.Add(5*time.Minute), s0.Add(7*time.Minute+10*time.Second)
	stopFrom, stopTo := s0.Add(20*time.Minute), s0.Add(35*time.Minute)
	sc := &alerttest.Scenario{Topic: topic, Deadline: deadline, Sweep: 2 * time.Second, Groups: map[string]alerttest.Behaviour{
		"billing":   alerttest.Steady(20 * time.Millisecond),
		"analytics": alerttest.Pauses(alerttest.Steady(500*time.Millisecond), pauseFrom, pauseTo, 500*time.Millisecond),
		"archiver":  alerttest.Stops(alerttest.Steady(30*time.Millisecond), stopFrom, stopTo),
	}, Gaps: map[string][2]time.Time{
		// billing's clients dropped the audit events of 10 minutes: LOST
		// with cause audit_gap, not a loss.
		"billing": {s0.Add(40 * time.Minute), s0.Add(50 * time.Minute)},
	}}
	sc.Generate(history, end)
	if n := sc.WriteUntil(t, conn, cfg.Database, s0); n < 60_000 {
		t.Fatalf("history: %d verdicts written", n)
	}

	// The scenario does what it says: a single 5-minute window would page
	// for analytics (threshold 14.4 × budget), its hour would not.
	late := sc.Count("analytics", end, pauseFrom, pauseFrom.Add(5*time.Minute), func(v codecs.Verdict) bool { return v.Status == codecs.StatusLate })
	slow := sc.Count("analytics", end, pauseFrom, pauseFrom.Add(5*time.Minute), func(v codecs.Verdict) bool { return v.E2ELatencyUs > 5e6 })
	if late < 5 || float64(late)/300 < 14.4*0.001 || float64(slow)/300 < 14.4*0.01 || float64(slow)/3600 >= 14.4*0.01 {
		t.Fatalf("scenario: analytics has %d LATE and %d slow messages in its worst 5 minutes", late, slow)
	}

	now := s0
	amn, err := alerts.NewAlertmanager(alerts.AlertmanagerConfig{URL: am.URL, ValidFor: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	hook, err := alerts.NewWebhook(alerts.WebhookConfig{URL: rcv.URL + "/kaudit"})
	if err != nil {
		t.Fatal(err)
	}
	exps := []*expectations.Expectation{{Topic: topic, Groups: []string{"billing", "analytics", "archiver"},
		Deadline: expectations.Duration(deadline), Completeness: 99.9, P99: expectations.Duration(5 * time.Second)}}
	ev, err := alerts.New(conn, alerts.Config{
		Database:     cfg.Database,
		Expectations: func(context.Context) ([]*expectations.Expectation, error) { return exps, nil },
		Notifiers:    []alerts.Notifier{amn, hook},
		DashboardURL: dashboard,
		Samples:      5,
		Refresher:    store.NewRefresher(conn, store.RefresherConfig{Database: cfg.Database}),
		Now:          func() time.Time { return now },
		Logger:       testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	isPage := func(a alerttest.AMAlert) bool {
		return a.Labels["group"] == "archiver" && a.Labels["slo"] == "completeness" && a.Labels["severity"] == "page" &&
			a.Labels["alertname"] == alerts.AlertName && a.Labels["topic"] == topic
	}

	var page *alerts.Alert
	var firedAt, resolvedAt time.Time
	var amDelay time.Duration
	var lastRes alerts.Result
	began := time.Now()
	for ; !now.After(end); now = now.Add(time.Minute) {
		sc.WriteUntil(t, conn, cfg.Database, now)
		posted := time.Now()
		res, err := ev.Evaluate(ctx)
		if err != nil {
			t.Fatalf("evaluate at %s: %v", now, err)
		}
		lastRes = res
		if res.SLOs != 6 {
			t.Fatalf("evaluated %d SLOs, want 6 (3 groups × completeness, p99)", res.SLOs)
		}
		for _, a := range res.Fired {
			if a.Group != "archiver" || a.SLO != alerts.Completeness {
				t.Fatalf("at %s (stepping from %s): %s fired: %s", now.Format(time.TimeOnly), s0.Format(time.TimeOnly), a.Group, a.Summary)
			}
			if a.Severity != alerts.SeverityPage {
				continue
			}
			page, firedAt = a, now
			// The page is at Alertmanager, with its evidence.
			got := rcv.WaitAlertmanager(t, 30*time.Second, "the archiver's page", func(a alerttest.AMAlert) bool {
				return isPage(a) && a.Status == "firing"
			})
			amDelay = got.At.Sub(posted)
			checkEvidence(t, sc, got.Alert, now)
			if got.Alert.Annotations["alert_id"] != a.ID || !got.Alert.StartsAt.Equal(now) {
				t.Errorf("Alertmanager alert id %q startsAt %s, want %q at %s", got.Alert.Annotations["alert_id"], got.Alert.StartsAt, a.ID, now)
			}
		}
		for _, a := range res.Resolved {
			if page == nil || a.ID != page.ID {
				t.Fatalf("at %s: %s/%s %s resolved", now, a.Group, a.SLO, a.Severity)
			}
			resolvedAt = now
			rcv.WaitAlertmanager(t, 30*time.Second, "the archiver's page resolved", func(a alerttest.AMAlert) bool {
				return isPage(a) && a.Status == "resolved"
			})
		}
	}
	t.Logf("stepped 75 minutes of evaluations in %s", time.Since(began).Round(time.Millisecond))

	if page == nil {
		t.Fatal("the archiver's outage never paged")
	}
	// The first lost message was sent at stopFrom; it is LOST once its
	// deadline (after its ack) passed and the sweep saw it.
	delay := firedAt.Sub(stopFrom)
	t.Logf("first lost message sent at %s; paged at the evaluation of %s (%s later: deadline %s, sweep, 1.44%% of the hour LOST, evaluation step); at Alertmanager's receiver %s after the evaluation began",
		stopFrom.Format(time.TimeOnly), firedAt.Format(time.TimeOnly), delay, deadline, amDelay.Round(time.Millisecond))
	if limit := deadline + alerttest.AckLatency + 5*time.Minute; delay > limit {
		t.Errorf("paged %s after the first lost message, want within %s (deadline + the page rule's short window)", delay, limit)
	}

	// Resolution: the last LOST message was sent in the minute before
	// stopTo; the 6h/30m rule holds until that minute is out of its
	// 30-minute window, the 1h/5m rule stopped earlier.
	lastBad := stopTo.Add(-time.Second).Truncate(time.Minute)
	if resolvedAt.IsZero() {
		t.Fatal("the archiver's page never resolved")
	}
	if want := lastBad.Add(30 * time.Minute); !resolvedAt.Equal(want) {
		t.Errorf("page resolved at the evaluation of %s, want %s", resolvedAt.Format(time.TimeOnly), want.Format(time.TimeOnly))
	}

	// Alertmanager holds the archiver's ticket (900 LOST over six hours
	// burn 4× the budget) and nothing for the other groups.
	var ticket bool
	for _, a := range am.Alerts(t) {
		if a.Labels["group"] != "archiver" {
			t.Errorf("Alertmanager holds an alert of %s: %v", a.Labels["group"], a.Labels)
		}
		if a.Labels["severity"] == "ticket" && a.Status == "active" {
			ticket = true
		}
	}
	if !ticket {
		t.Errorf("no active archiver ticket in Alertmanager: %+v", am.Alerts(t))
	}
	for _, r := range rcv.AlertmanagerAlerts() {
		if r.Alert.Labels["group"] != "archiver" {
			t.Errorf("Alertmanager notified an alert of %s", r.Alert.Labels["group"])
		}
	}

	// The webhook got each change once, with the same alert ID.
	var fired, resolved int
	for _, a := range webhookAlerts(t, rcv) {
		if a["id"] != page.ID {
			continue
		}
		switch a["status"] {
		case "firing":
			fired++
			samples, _ := a["samples"].([]any)
			if len(samples) == 0 || a["group"] != "archiver" || a["slo"] != "completeness" {
				t.Errorf("webhook firing alert: %v", a)
			}
		case "resolved":
			resolved++
		}
	}
	if fired != 1 || resolved != 1 {
		t.Errorf("webhook got the page %d times firing, %d resolved; want once each", fired, resolved)
	}

	// billing's audit gap left its completeness whole: the messages whose
	// fate is unknown are not counted.
	for _, st := range lastRes.Statuses {
		if st.Group == "billing" && st.SLO == alerts.Completeness && (st.State != "ok" || st.Measured != 100 || st.Bad != 0) {
			t.Errorf("billing after its audit gap: %+v", st)
		}
	}

	// ClickHouse keeps the episode with its evidence.
	hist, err := alerts.History(ctx, conn, cfg.Database, alerts.HistoryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, a := range hist {
		ids = append(ids, a.Group+"/"+string(a.SLO)+"/"+a.Severity+"/"+a.State)
		if a.ID == page.ID && (a.State != alerts.StateResolved || !a.EndsAt.Equal(resolvedAt) || len(a.Samples) == 0) {
			t.Errorf("stored page: %+v", a)
		}
	}
	slices.Sort(ids)
	want := []string{"archiver/completeness/page/resolved", "archiver/completeness/ticket/firing"}
	if !slices.Equal(ids, want) {
		t.Errorf("stored alerts %v, want %v", ids, want)
	}
}

// checkEvidence checks an Alertmanager alert of the archiver against the
// scenario at time now.
func checkEvidence(t *testing.T, sc *alerttest.Scenario, a alerttest.AMAlert, now time.Time) {
	t.Helper()
	state := sc.State("archiver", now)
	lost := 0
	for _, v := range state {
		if v.Status == codecs.StatusLost {
			lost++
		}
	}
	if got := a.Annotations["lost"]; got != strconv.Itoa(lost) {
		t.Errorf("annotation lost = %s, want %d (the archiver's messages LOST by %s)", got, lost, now.Format(time.TimeOnly))
	}
	if got := a.Annotations["late"]; got != "0" {
		t.Errorf("annotation late = %s, want 0", got)
	}
	ids := strings.Split(a.Annotations["sample_correlation_ids"], ",")
	if len(ids) == 0 || ids[0] == "" || len(ids) > 5 {
		t.Fatalf("sample_correlation_ids %q: want 1 to 5", a.Annotations["sample_correlation_ids"])
	}
	trails := strings.Split(a.Annotations["trail_urls"], "\n")
	if len(trails) != len(ids) {
		t.Errorf("%d trail URLs for %d samples", len(trails), len(ids))
	}
	for i, id := range ids {
		if v, ok := state[id]; !ok || v.Status != codecs.StatusLost {
			t.Errorf("sample %s is not a LOST message of archiver (latest verdict %+v)", id, v)
		}
		if i < len(trails) {
			want := dashboard + "/trail?" + url.Values{"id": {id}}.Encode()
			if trails[i] != want {
				t.Errorf("trail URL %q, want %q", trails[i], want)
			}
		}
	}
	for _, k := range []string{"summary", "objective", "measured", "burn_rate", "messages", "dashboard"} {
		if a.Annotations[k] == "" {
			t.Errorf("annotation %s missing: %v", k, a.Annotations)
		}
	}
	if a.Annotations["objective"] != "completeness 99.9% over 30d" {
		t.Errorf("objective %q", a.Annotations["objective"])
	}
}

// TestLatencySLOPages: one group, p99 5 s, one message a second; two
// hours healthy, then for 20 minutes every message takes 8 s end to end
// (within its deadline: DELIVERED, but slow). The p99 SLO pages with
// samples that are slow messages and the exact number of slow messages of
// the last hour, the completeness SLO stays quiet, and the page resolves
// rule stops holding. Latency counts come from the rollups' histograms: at
// the end, the count over all the data must equal the scenario's (8 s is
// far from the 5 s target's bucket).
func TestLatencySLOPages(t *testing.T) {
	cfg, conn := chtest.Migrated(t)
	const topic = "shop.search"
	end := time.Now().Truncate(time.Minute).Add(-time.Minute)
	s0 := end.Add(-70 * time.Minute)
	slowFrom, slowTo := s0.Add(10*time.Minute), s0.Add(30*time.Minute)
	sc := &alerttest.Scenario{Topic: topic, Deadline: 2 * time.Minute, Sweep: time.Second, Groups: map[string]alerttest.Behaviour{
		"indexer": alerttest.Slows(alerttest.Steady(200*time.Millisecond), slowFrom, slowTo, 8*time.Second),
	}}
	sc.Generate(s0.Add(-2*time.Hour), end)
	sc.WriteUntil(t, conn, cfg.Database, s0)
	isSlow := func(v codecs.Verdict) bool { return v.E2ELatencyUs > 5_000_000 }

	now := s0
	exps := []*expectations.Expectation{{Topic: topic, Groups: []string{"indexer"}, Completeness: 99.9, P99: expectations.Duration(5 * time.Second)}}
	ev, err := alerts.New(conn, alerts.Config{
		Database:     cfg.Database,
		Expectations: func(context.Context) ([]*expectations.Expectation, error) { return exps, nil },
		DashboardURL: dashboard,
		Samples:      4,
		Refresher:    store.NewRefresher(conn, store.RefresherConfig{Database: cfg.Database}),
		Now:          func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	var page *alerts.Alert
	var resolvedAt time.Time
	var last alerts.Result
	for ; !now.After(end); now = now.Add(time.Minute) {
		sc.WriteUntil(t, conn, cfg.Database, now)
		res, err := ev.Evaluate(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		last = res
		for _, a := range res.Fired {
			if a.SLO != alerts.Latency {
				t.Fatalf("at %s: %s %s fired: %s", now, a.SLO, a.Severity, a.Summary)
			}
			if a.Severity != alerts.SeverityPage {
				continue
			}
			page = a
			// Its evidence, over the rule's hour: the slow messages first
			// seen in the 60 minutes ending with this one.
			to := now.Truncate(time.Minute).Add(time.Minute)
			want := sc.Count("indexer", now, to.Add(-time.Hour), to, isSlow)
			if a.Slow != uint64(want) || a.Bad != a.Slow || a.Lost != 0 || a.Late != 0 {
				t.Errorf("page at %s: slow %d bad %d lost %d late %d, want %d slow", now.Format(time.TimeOnly), a.Slow, a.Bad, a.Lost, a.Late, want)
			}
			state := sc.State("indexer", now)
			for _, s := range a.Samples {
				if v := state[s.CorrelationID]; !isSlow(v) || s.E2ELatencyUs != v.E2ELatencyUs {
					t.Errorf("sample %s (e2e %d µs) is not a slow message (scenario: %+v)", s.CorrelationID, s.E2ELatencyUs, v)
				}
			}
			if len(a.Samples) != 4 {
				t.Errorf("%d samples, want 4", len(a.Samples))
			}
			// The hour's p99: about 15% of its messages took 8 s, so the
			// p99 is 8 s, within the histograms' relative error.
			if math.Abs(a.Measured-8) > 8*store.LatencyRelativeError {
				t.Errorf("measured p99 %v s, want 8 (±%.1f%%)", a.Measured, 100*store.LatencyRelativeError)
			}
		}
		for _, a := range res.Resolved {
			if page != nil && a.ID == page.ID {
				resolvedAt = now
			}
		}
	}
	if page == nil {
		t.Fatal("the slow period never paged")
	}
	// The 1h/5m rule needs 14.4% of the hour's 3,600 messages slow: 519,
	// more than 8 minutes' worth (480 by slowFrom+8m, counted once
	// consumed 8 s after their send), so the first evaluation that pages
	// is at slowFrom+9m.
	if want := slowFrom.Add(9 * time.Minute); !page.StartsAt.Equal(want) {
		t.Errorf("paged at %s, want %s", page.StartsAt.Format(time.TimeOnly), want.Format(time.TimeOnly))
	}
	// The 6h/30m rule needs 6% of its 30 minutes (108 messages) slow: it
	// holds while the window has the last two slow minutes (120) and stops
	// when only the last one (60) is left, at lastSlow+29m; the 1h/5m rule
	// stopped five minutes after the last slow minute.
	lastSlow := slowTo.Add(-time.Second).Truncate(time.Minute)
	if want := lastSlow.Add(29 * time.Minute); !resolvedAt.Equal(want) {
		t.Errorf("page resolved at %s, want %s", resolvedAt.Format(time.TimeOnly), want.Format(time.TimeOnly))
	}
	// The longest window (3 days: all the data), from the rollups.
	for _, st := range last.Statuses {
		if st.SLO != alerts.Latency {
			continue
		}
		judged := sc.Count("indexer", end, time.Time{}, end.Add(time.Minute), func(v codecs.Verdict) bool { return v.E2ELatencyUs >= 0 })
		slow := sc.Count("indexer", end, time.Time{}, end.Add(time.Minute), isSlow)
		if st.Messages != uint64(judged) || st.Bad != uint64(slow) {
			t.Errorf("latency status over all the data: %d slow of %d, want %d of %d", st.Bad, st.Messages, slow, judged)
		}
	}
}
