package web

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/kaudit/kaudit/alerts"
)

// alertHistoryLimit is how many alerts the alerts page lists.
const alertHistoryLimit = 200

// staleAfter marks an SLO status older than this, relative to the newest
// one, as no longer evaluated (its SLO was removed, or the evaluator
// stopped).
const staleAfter = 10 * time.Minute

type alertsPage struct {
	Statuses []statusRow
	Alerts   []alertRow
	Firing   int
}

type statusRow struct {
	*alerts.Status
	Burns       []burnCell
	Budget      string
	BudgetBad   bool
	StateClass  string
	Stale       bool
	OverviewURL string
}

type burnCell struct {
	Window, Value string
	Hot           bool
}

type alertRow struct {
	*alerts.Alert
	Samples    []sampleLink
	StateClass string
	Ended      string
	Burn       string
}

type sampleLink struct {
	ID, Status, TrailURL string
}

func (s *Server) alerts(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.queryContext(r)
	defer cancel()
	statuses, err := alerts.Statuses(ctx, s.conn, s.cfg.Database)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	history, err := alerts.History(ctx, s.conn, s.cfg.Database, alerts.HistoryFilter{Limit: alertHistoryLimit})
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	var page alertsPage
	var newest time.Time
	for _, st := range statuses {
		if st.EvaluatedAt.After(newest) {
			newest = st.EvaluatedAt
		}
	}
	q := overviewQuery{window: defaultWindow}
	for _, st := range statuses {
		row := statusRow{Status: st, StateClass: "ok", Budget: "-",
			Stale:       st.EvaluatedAt.Before(newest.Add(-staleAfter)),
			OverviewURL: q.url(defaultWindow, st.Topic, st.Group)}
		if st.State != "ok" {
			row.StateClass = "bad"
		}
		if !math.IsNaN(st.BudgetLeft) {
			row.Budget = fmt.Sprintf("%.1f%%", math.Max(st.BudgetLeft*100, -9999))
			row.BudgetBad = st.BudgetLeft < 0
		}
		for i, win := range st.Windows {
			if i < len(st.BurnRates) {
				row.Burns = append(row.Burns, burnCell{Window: win, Value: burnText(st.BurnRates[i]), Hot: st.BurnRates[i] > 1})
			}
		}
		page.Statuses = append(page.Statuses, row)
	}
	for _, a := range history {
		row := alertRow{Alert: a, StateClass: "ok", Ended: formatTime(a.EndsAt),
			Burn: burnText(a.BurnLong) + " / " + burnText(a.BurnShort)}
		if a.State == alerts.StateFiring {
			row.StateClass = "bad"
			row.Ended = "firing"
			page.Firing++
		}
		for _, sm := range a.Samples {
			row.Samples = append(row.Samples, sampleLink{ID: sm.CorrelationID, Status: sm.Status, TrailURL: trailURL(sm.CorrelationID)})
		}
		page.Alerts = append(page.Alerts, row)
	}
	s.render(w, http.StatusOK, "alerts", page)
}

func burnText(b float64) string {
	switch {
	case math.IsInf(b, 1):
		return "∞×"
	case math.IsNaN(b):
		return "-"
	}
	return strings.TrimSuffix(fmt.Sprintf("%.1f", b), ".0") + "×"
}

func formatTime(t time.Time) string {
	if t.IsZero() || t.Unix() <= 0 {
		return "-"
	}
	return t.UTC().Format(time.DateTime)
}
