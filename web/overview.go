package web

import (
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/report"
)

// windows are the time windows the overview offers, by query value.
var windows = []struct {
	Value string
	D     time.Duration
}{
	{"15m", 15 * time.Minute},
	{"1h", time.Hour},
	{"6h", 6 * time.Hour},
	{"24h", 24 * time.Hour},
	{"7d", 7 * 24 * time.Hour},
}

const defaultWindow = "1h"

// anomalyLimit is how many anomalies the overview lists.
const anomalyLimit = 50

// maxPoints bounds the intervals of a chart: longer windows get coarser
// steps.
const maxPoints = 240

// maxFilterLen bounds topic and group filters (Kafka topic names have at
// most 249 characters).
const maxFilterLen = 512

type link struct {
	Label, URL string
	Active     bool
}

type overviewPage struct {
	Window    string
	Windows   []link
	Topic     string
	Group     string
	ClearURL  string
	Since     string
	Step      string
	Stale     bool
	Totals    report.Counts
	Rows      []overviewRow
	Latency   *chart
	Losses    *chart
	Anomalies []anomalyRow
}

type overviewRow struct {
	report.GroupStats
	TopicURL, GroupURL string
}

type anomalyRow struct {
	codecs.Verdict
	TrailURL string
}

// overviewQuery is the overview's parsed query string.
type overviewQuery struct {
	window       string
	d            time.Duration
	topic, group string
}

func parseOverviewQuery(q url.Values) overviewQuery {
	o := overviewQuery{window: defaultWindow, d: time.Hour}
	for _, w := range windows {
		if q.Get("window") == w.Value {
			o.window, o.d = w.Value, w.D
		}
	}
	// Over-long filters cannot match anything kaudit stores; they are
	// dropped rather than sent.
	if t := q.Get("topic"); len(t) <= maxFilterLen {
		o.topic = t
	}
	if g := q.Get("group"); len(g) <= maxFilterLen {
		o.group = g
	}
	return o
}

// url returns the overview URL of o with the given changes.
func (o overviewQuery) url(window, topic, group string) string {
	v := url.Values{}
	if window != defaultWindow {
		v.Set("window", window)
	}
	if topic != "" {
		v.Set("topic", topic)
	}
	if group != "" {
		v.Set("group", group)
	}
	if len(v) == 0 {
		return "/"
	}
	return "/?" + v.Encode()
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	q := parseOverviewQuery(r.URL.Query())
	now := s.cfg.Now().UTC()
	since := now.Add(-q.d)
	step := max(q.d/maxPoints, time.Minute).Truncate(time.Minute)
	f := report.Filter{Since: since, Topic: q.topic, Group: q.group}

	ctx, cancel := s.queryContext(r)
	defer cancel()
	page := overviewPage{
		Window: q.window, Topic: q.topic, Group: q.group,
		ClearURL: q.url(q.window, "", ""),
		Since:    since.Format(time.DateTime),
		Step:     step.String(),
	}
	if s.cfg.AutoReload > 0 {
		// The Refresh header reloads the page (a meta tag would do the
		// same, in the page).
		w.Header().Set("Refresh", strconv.Itoa(max(int(s.cfg.AutoReload/time.Second), 1)))
	}
	for _, win := range windows {
		page.Windows = append(page.Windows, link{win.Value, q.url(win.Value, q.topic, q.group), win.Value == q.window})
	}
	if s.cfg.Refresher != nil {
		if err := s.cfg.Refresher.RefreshIfOlder(ctx, s.cfg.RefreshEvery); err != nil {
			s.log.Warn("web: refresh rollups", "err", err)
			page.Stale = true
		}
	}

	groups, err := report.Overview(ctx, s.conn, s.cfg.Database, f)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	for _, g := range groups {
		page.Rows = append(page.Rows, overviewRow{
			GroupStats: g,
			TopicURL:   q.url(q.window, g.Topic, ""),
			GroupURL:   q.url(q.window, g.Topic, g.Group),
		})
		page.Totals.Add(g.Counts)
	}

	points, err := report.Series(ctx, s.conn, s.cfg.Database, f, step)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	page.Latency, page.Losses = charts(points, since.Truncate(step), now, step)

	anomalies, err := report.Anomalies(ctx, s.conn, s.cfg.Database, f, anomalyLimit)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	for _, a := range anomalies {
		page.Anomalies = append(page.Anomalies, anomalyRow{Verdict: a, TrailURL: trailURL(a.CorrelationID)})
	}
	s.render(w, http.StatusOK, "overview", page)
}

// charts draws the latency and loss charts of points over [from, to].
func charts(points []report.Point, from, to time.Time, step time.Duration) (*chart, *chart) {
	times := make([]time.Time, len(points))
	for i, p := range points {
		times[i] = p.Start
	}
	per := "per minute"
	if step > time.Minute {
		per = "per " + step.String()
	}
	ms := func(us float64) float64 {
		if math.IsNaN(us) {
			return us
		}
		return us / 1000
	}
	latency := lineChart("End-to-end latency", per+", ms, UTC", from, to, step, times, []seriesDef{
		{Name: "p50", Class: "s-p50", Value: func(i int) float64 { return ms(points[i].E2E.P50) }},
		{Name: "p99", Class: "s-p99", Value: func(i int) float64 { return ms(points[i].E2E.P99) }},
	}, axisMillis)
	losses := barChart("Lost and late messages", per+", UTC", from, to, step, times, []seriesDef{
		{Name: "lost", Class: "s-lost", Value: func(i int) float64 { return float64(points[i].Lost) }},
		{Name: "late", Class: "s-late", Value: func(i int) float64 { return float64(points[i].Late) }},
		{Name: "audit gap", Class: "s-gap", Value: func(i int) float64 { return float64(points[i].AuditGap) }},
	})
	return latency, losses
}

// axisMillis labels a latency axis in milliseconds compactly: "0",
// "250 µs", "2.5 ms", "40 ms", "12.5 s".
func axisMillis(ms float64) string {
	short := func(v float64) string {
		return strings.TrimSuffix(strings.TrimRight(strconv.FormatFloat(v, 'f', 2, 64), "0"), ".")
	}
	switch {
	case ms == 0:
		return "0"
	case ms >= 1000:
		return short(ms/1000) + " s"
	case ms >= 1:
		return short(ms) + " ms"
	default:
		return short(ms*1000) + " µs"
	}
}

func trailURL(id string) string {
	return "/trail?" + url.Values{"id": {id}}.Encode()
}
