package web

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"

	"github.com/kaudit/kaudit/report"
)

// proxyQuery is the query string of the clients and admin pages.
type proxyQuery struct {
	window           string
	d                time.Duration
	topic, principal string
	method, resource string
	denied           bool
	path             string
	defaultWindow    string
}

func parseProxyQuery(path string, q url.Values, defWindow string, defD time.Duration) proxyQuery {
	o := proxyQuery{path: path, window: defWindow, d: defD, defaultWindow: defWindow}
	for _, w := range windows {
		if q.Get("window") == w.Value {
			o.window, o.d = w.Value, w.D
		}
	}
	get := func(k string) string {
		if v := q.Get(k); len(v) <= maxFilterLen {
			return v
		}
		return ""
	}
	o.topic, o.principal, o.method, o.resource = get("topic"), get("principal"), get("method"), get("resource")
	o.denied = q.Get("denied") == "1"
	return o
}

// url returns the page's URL with window w and the filters of o, changed
// by set (key, value pairs; "" removes).
func (o proxyQuery) url(w string, set ...string) string {
	v := url.Values{}
	if w != o.defaultWindow {
		v.Set("window", w)
	}
	for k, val := range map[string]string{"topic": o.topic, "principal": o.principal, "method": o.method, "resource": o.resource} {
		if val != "" {
			v.Set(k, val)
		}
	}
	if o.denied {
		v.Set("denied", "1")
	}
	for i := 0; i+1 < len(set); i += 2 {
		if set[i+1] == "" {
			v.Del(set[i])
		} else {
			v.Set(set[i], set[i+1])
		}
	}
	if len(v) == 0 {
		return o.path
	}
	return o.path + "?" + v.Encode()
}

func (o proxyQuery) windowLinks() []link {
	var out []link
	for _, w := range windows {
		out = append(out, link{w.Value, o.url(w.Value), w.Value == o.window})
	}
	return out
}

type clientsPage struct {
	Window    string
	Windows   []link
	Topic     string
	Principal string
	ClearURL  string
	Since     string
	Flows     []flowRow
	Graph     *graph
	Traffic   *chart
}

type flowRow struct {
	report.ClientFlow
	TopicURL, PrincipalURL string
	PerMinute              float64
}

func (s *Server) clients(w http.ResponseWriter, r *http.Request) {
	q := parseProxyQuery("/clients", r.URL.Query(), defaultWindow, time.Hour)
	now := s.cfg.Now().UTC()
	since := now.Add(-q.d)
	f := report.ClientFilter{Since: since, Topic: q.topic, Principal: q.principal}
	ctx, cancel := s.queryContext(r)
	defer cancel()
	flows, err := report.ClientFlows(ctx, s.conn, s.cfg.Database, f)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	minutes, err := report.TopicMinutes(ctx, s.conn, s.cfg.Database, f)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	page := clientsPage{Window: q.window, Windows: q.windowLinks(), Topic: q.topic, Principal: q.principal,
		ClearURL: q.url(q.window, "topic", "", "principal", ""), Since: since.Format(time.DateTime)}
	for _, fl := range flows {
		row := flowRow{ClientFlow: fl, TopicURL: q.url(q.window, "topic", fl.Topic), PrincipalURL: q.url(q.window, "principal", fl.Principal)}
		if fl.Minutes > 0 {
			row.PerMinute = float64(fl.Records) / float64(fl.Minutes)
		}
		page.Flows = append(page.Flows, row)
	}
	page.Graph = clientGraph(flows)
	page.Traffic = trafficChart(minutes, since, now, q.d)
	s.render(w, http.StatusOK, "clients", page)
}

// trafficChart draws records produced and consumed per step (summed over
// the topics shown).
func trafficChart(ms []report.TopicMinute, since, now time.Time, d time.Duration) *chart {
	step := max(d/maxPoints, time.Minute).Truncate(time.Minute)
	from := since.Truncate(step)
	byStep := map[time.Time]*report.TopicMinute{}
	var times []time.Time
	for _, m := range ms {
		t := m.Minute.UTC().Truncate(step)
		p := byStep[t]
		if p == nil {
			p = &report.TopicMinute{Minute: t}
			byStep[t] = p
			times = append(times, t)
		}
		p.ProducedRecords += m.ProducedRecords
		p.ConsumedRecords += m.ConsumedRecords
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	return barChart("Records per "+shortDuration(step), "produced and consumed through kaudit-proxy", from, now, step, times, []seriesDef{
		{Name: "produced", Class: "s-produced", Value: func(i int) float64 { return float64(byStep[times[i]].ProducedRecords) }},
		{Name: "consumed", Class: "s-consumed", Value: func(i int) float64 { return float64(byStep[times[i]].ConsumedRecords) }},
	})
}

func shortDuration(d time.Duration) string {
	if d == time.Minute {
		return "minute"
	}
	return d.String()
}

// graph is the client–topic graph: producers on the left, topics in the
// middle, consumers on the right; an edge's width grows with the records
// that went along it. Laid out here, drawn by the clients template.
type graph struct {
	W, H  float64
	Nodes []gnode
	Edges []gedge
	Empty bool
}

type gnode struct {
	X, Y   float64
	Label  string
	Class  string // g-producer, g-topic, g-consumer
	Anchor string // text-anchor of the label
	LabelX float64
	Title  string
}

type gedge struct {
	Path  string
	Width float64
	Class string
	Title string
}

const (
	graphW       = 900
	graphRowH    = 34
	graphPad     = 24
	graphLeftX   = 250
	graphMiddleX = 450
	graphRightX  = 650
)

func clientGraph(flows []report.ClientFlow) *graph {
	type key struct{ col, name string }
	index := map[key]int{}
	var cols [3][]string
	add := func(col int, name string) {
		k := key{strconv.Itoa(col), name}
		if _, ok := index[k]; !ok {
			index[k] = len(cols[col])
			cols[col] = append(cols[col], name)
		}
	}
	client := func(f report.ClientFlow) string {
		name := f.Principal + " · " + f.ClientID
		if f.Direction == "consume" && f.Group != "" {
			name += " (" + f.Group + ")"
		}
		return name
	}
	var top uint64
	for _, f := range flows {
		add(1, f.Topic)
		if f.Direction == "produce" {
			add(0, client(f))
		} else {
			add(2, client(f))
		}
		top = max(top, f.Records)
	}
	rows := max(len(cols[0]), len(cols[1]), len(cols[2]), 1)
	g := &graph{W: graphW, H: float64(rows)*graphRowH + 2*graphPad, Empty: len(flows) == 0}
	yOf := func(col, i int) float64 {
		n := len(cols[col])
		span := float64(rows-1) * graphRowH
		if n <= 1 {
			return graphPad + span/2
		}
		return graphPad + float64(i)*span/float64(n-1)
	}
	xs := [3]float64{graphLeftX, graphMiddleX, graphRightX}
	classes := [3]string{"g-producer", "g-topic", "g-consumer"}
	for col := range 3 {
		for i, name := range cols[col] {
			n := gnode{X: xs[col], Y: yOf(col, i), Label: name, Class: classes[col], Title: name}
			switch col {
			case 0:
				n.Anchor, n.LabelX = "end", n.X-10
			case 1:
				n.Anchor, n.LabelX = "middle", n.X
			default:
				n.Anchor, n.LabelX = "start", n.X+10
			}
			g.Nodes = append(g.Nodes, n)
		}
	}
	for _, f := range flows {
		t := index[key{"1", f.Topic}]
		ty := yOf(1, t)
		width := 1.5
		if top > 0 && f.Records > 0 {
			width = 1.5 + 8*math.Log1p(float64(f.Records))/math.Log1p(float64(top))
		}
		title := fmt.Sprintf("%s %s %s: %d records, %s", client(f), f.Direction, f.Topic, f.Records, report.FormatBytes(f.Bytes))
		if f.Direction == "produce" {
			c := index[key{"0", client(f)}]
			cy := yOf(0, c)
			g.Edges = append(g.Edges, gedge{Path: curve(graphLeftX, cy, graphMiddleX, ty), Width: width, Class: "g-produce", Title: title})
		} else {
			c := index[key{"2", client(f)}]
			cy := yOf(2, c)
			g.Edges = append(g.Edges, gedge{Path: curve(graphMiddleX, ty, graphRightX, cy), Width: width, Class: "g-consume", Title: title})
		}
	}
	return g
}

func curve(x1, y1, x2, y2 float64) string {
	mx := (x1 + x2) / 2
	return fmt.Sprintf("M%s,%s C%s,%s %s,%s %s,%s", coord(x1), coord(y1), coord(mx), coord(y1), coord(mx), coord(y2), coord(x2), coord(y2))
}

type adminPage struct {
	Window    string
	Windows   []link
	Principal string
	Method    string
	Resource  string
	Denied    bool
	ClearURL  string
	Since     string
	Rows      []auditRow
	Limit     int
	Allowed   int
	DeniedN   int
}

type auditRow struct {
	report.AuditRow
	PrincipalURL, MethodURL, ResourceURL string
}

const auditLimit = 500

func (s *Server) admin(w http.ResponseWriter, r *http.Request) {
	q := parseProxyQuery("/admin", r.URL.Query(), "24h", 24*time.Hour)
	now := s.cfg.Now().UTC()
	since := now.Add(-q.d)
	ctx, cancel := s.queryContext(r)
	defer cancel()
	rows, err := report.AdminAudit(ctx, s.conn, s.cfg.Database, report.AuditFilter{Since: since, Principal: q.principal,
		Method: q.method, Resource: q.resource, Denied: q.denied, Limit: auditLimit})
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	page := adminPage{Window: q.window, Windows: q.windowLinks(), Principal: q.principal, Method: q.method, Resource: q.resource,
		Denied: q.denied, ClearURL: "/admin", Since: since.Format(time.DateTime), Limit: auditLimit}
	if q.window != q.defaultWindow {
		page.ClearURL = "/admin?window=" + q.window
	}
	for _, a := range rows {
		page.Rows = append(page.Rows, auditRow{AuditRow: a,
			PrincipalURL: q.url(q.window, "principal", a.Principal),
			MethodURL:    q.url(q.window, "method", a.Method),
			ResourceURL:  q.url(q.window, "resource", a.ResourceName)})
		if a.Allowed {
			page.Allowed++
		} else {
			page.DeniedN++
		}
	}
	s.render(w, http.StatusOK, "admin", page)
}
