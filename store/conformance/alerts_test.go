package conformance_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kaudit/kaudit/alerts"
	"github.com/kaudit/kaudit/processors/expectations"
	"github.com/kaudit/kaudit/web"
)

// describeResult renders an evaluation without what differs between runs
// (row versions).
func describeResult(res alerts.Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d SLOs\n", res.SLOs)
	for _, s := range res.Statuses {
		fmt.Fprintf(&b, "status %s/%s %s: %d bad of %d, measured %v, budget left %v, %v %v, %s at %d\n",
			s.Topic, s.Group, s.ObjectiveText(), s.Bad, s.Messages, s.Measured, s.BudgetLeft, s.Windows, s.BurnRates, s.State, s.EvaluatedAt.Unix())
	}
	for _, list := range []struct {
		name string
		as   []*alerts.Alert
	}{{"firing", res.Firing}, {"fired", res.Fired}, {"resolved", res.Resolved}} {
		for _, a := range list.as {
			fmt.Fprintf(&b, "%s %s %s/%s %s %s %s: measured %v, %s %v/%v (%v), %d bad of %d, lost %d late %d slow %d, samples %+v, %q, %d-%d\n",
				list.name, a.ID, a.Topic, a.Group, a.SLO, a.Severity, a.State, a.Measured, a.Rule, a.BurnLong, a.BurnShort, a.Threshold,
				a.Bad, a.Messages, a.Lost, a.Late, a.Slow, a.Samples, a.Summary, a.StartsAt.Unix(), a.EndsAt.Unix())
		}
	}
	return b.String()
}

// alertChecks runs the alerts evaluator over the fixture (SLOs for every
// group: strict enough that completeness and latency alerts fire), a
// second evaluator taking the alerts over, and the dashboard's alerts
// page: every statement of package alerts, on both engines.
func alertChecks(t *testing.T, e *engine, fx *fixture) {
	ctx := context.Background()
	exps := []*expectations.Expectation{
		{Topic: "orders", Groups: []string{"billing", "search", "ledger"}, Completeness: 99.99, P99: expectations.Duration(100 * time.Millisecond)},
		{Topic: "payments", Groups: []string{"billing"}, Completeness: 99.5, P99: expectations.Duration(2 * time.Second)},
	}
	now := fx.now
	newEvaluator := func() *alerts.Evaluator {
		ev, err := alerts.New(e.rec, alerts.Config{
			Database:     e.cfg.Database,
			Expectations: func(context.Context) ([]*expectations.Expectation, error) { return exps, nil },
			Samples:      3,
			DashboardURL: "http://kaudit.test",
			Now:          func() time.Time { return now },
		})
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	kinds := map[alerts.Kind]bool{}
	for i, ev := range []*alerts.Evaluator{newEvaluator(), nil, newEvaluator()} {
		if ev == nil { // the same evaluator, a minute later
			now = now.Add(time.Minute)
			continue
		}
		res, err := ev.Evaluate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range res.Firing {
			if len(a.Samples) > 0 {
				kinds[a.SLO] = true
			}
		}
		e.put(fmt.Sprintf("alerts evaluation %d", i), describeResult(res))
	}
	if !kinds[alerts.Completeness] || !kinds[alerts.Latency] {
		t.Errorf("the fixture fired alerts with samples of kinds %v, want completeness and p99", kinds)
	}
	srv, err := web.New(e.rec, web.Config{Database: e.cfg.Database, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/alerts", nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != http.StatusOK || !strings.Contains(string(body), `id="alert-history"`) {
		t.Errorf("GET /alerts = %d:\n%s", rec.Code, body)
	}
	e.put("GET /alerts", body)
}
