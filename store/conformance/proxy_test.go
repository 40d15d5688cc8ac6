package conformance_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kaudit/kaudit/report"
	"github.com/kaudit/kaudit/store"
	"github.com/kaudit/kaudit/web"
)

// proxyLoaded checks that kaudit-proxy's tables hold each fixture record
// once (the retried batch collapsed).
func proxyLoaded(t *testing.T, e *engine, fx *fixture) {
	ctx := context.Background()
	for tbl, want := range map[string]int{store.AdminAuditTable: len(fx.admin), store.ClientTrafficTable: len(fx.traffic)} {
		var n uint64
		if err := e.raw.QueryRow(ctx, "SELECT count() FROM "+store.Table(e.cfg.Database, tbl)+" FINAL").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != uint64(want) {
			t.Errorf("%s FINAL has %d rows, want the fixture's %d", tbl, n, want)
		}
	}
}

// utcFlows and the like make rows comparable with reflect.DeepEqual (the
// driver returns times in the server's location).
func utcMinutes(ms []report.TopicMinute) []report.TopicMinute {
	for i := range ms {
		ms[i].Minute = ms[i].Minute.UTC()
	}
	return ms
}

func utcAudit(rs []report.AuditRow) []report.AuditRow {
	if rs == nil {
		rs = []report.AuditRow{}
	}
	for i := range rs {
		rs[i].Time = rs[i].Time.UTC()
	}
	return rs
}

// sameRows reports the first difference between got and want.
func sameRows[T any](t *testing.T, what string, got, want []T) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if reflect.DeepEqual(got, want) {
		return
	}
	if len(got) != len(want) {
		t.Errorf("%s: %d rows, want %d", what, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("%s: row %d is\n%+v, want\n%+v", what, i, got[i], want[i])
			return
		}
	}
}

// proxyReports runs what `kaudit report --clients` and `--admin` read,
// over filters, and compares it with the fixture.
func proxyReports(t *testing.T, e *engine, fx *fixture) {
	ctx := context.Background()
	db := e.cfg.Database
	for _, f := range []report.ClientFilter{
		{Since: fx.now.Add(-time.Hour)},
		{Since: fx.now.Add(-15 * time.Minute)},
		{Since: fx.now.Add(-30 * time.Minute), Until: fx.now.Add(-10 * time.Minute)},
		{Since: fx.now.Add(-time.Hour), Topic: "orders"},
		{Since: fx.now.Add(-time.Hour), Principal: "User:bob"},
		{Since: fx.now.Add(-60 * 24 * time.Hour), Until: fx.now.Add(-24 * time.Hour)},
		{Since: fx.now.Add(-time.Hour), Topic: "' OR 1=1 --"},
	} {
		flows, err := report.ClientFlows(ctx, e.rec, db, f)
		if err != nil {
			t.Fatal(err)
		}
		sameRows(t, fmt.Sprintf("client flows %+v", f), flows, fx.flows(f))
		e.put(fmt.Sprintf("client flows %+v", f), flows)
		minutes, err := report.TopicMinutes(ctx, e.rec, db, f)
		if err != nil {
			t.Fatal(err)
		}
		sameRows(t, fmt.Sprintf("topic minutes %+v", f), utcMinutes(minutes), fx.topicMinutes(f))
		e.put(fmt.Sprintf("topic minutes %+v", f), minutes)
	}
	for _, f := range []report.AuditFilter{
		{Since: fx.now.Add(-24 * time.Hour)}, // more than the default limit of 200
		{Since: fx.now.Add(-time.Hour), Limit: 1000},
		{Since: fx.now.Add(-30 * time.Minute), Until: fx.now.Add(-10 * time.Minute), Limit: 1000},
		{Since: fx.now.Add(-24 * time.Hour), Principal: "User:mallory", Limit: 1000},
		{Since: fx.now.Add(-24 * time.Hour), Method: "CreateAcls", Limit: 1000},
		{Since: fx.now.Add(-24 * time.Hour), Resource: "audit-' OR 1=1 --", Limit: 1000},
		{Since: fx.now.Add(-24 * time.Hour), Denied: true, Limit: 1000},
		{Since: fx.now.Add(-60 * 24 * time.Hour), Until: fx.now.Add(-24 * time.Hour)},
		{Since: fx.now.Add(-24 * time.Hour), Principal: "' OR 1=1 --"},
	} {
		rows, err := report.AdminAudit(ctx, e.rec, db, f)
		if err != nil {
			t.Fatal(err)
		}
		sameRows(t, fmt.Sprintf("admin audit %+v", f), utcAudit(rows), fx.audit(f))
		e.put(fmt.Sprintf("admin audit %+v", f), rows)
	}

	// The report tables are the fixture's, formatted.
	cf := report.ClientFilter{Since: fx.now.Add(-time.Hour)}
	flows, _ := report.ClientFlows(ctx, e.rec, db, cf)
	af := report.AuditFilter{Since: fx.now.Add(-24 * time.Hour)}
	audit, _ := report.AdminAudit(ctx, e.rec, db, af)
	for _, c := range []struct {
		name      string
		got, want func(io.Writer) error
	}{
		{"kaudit report --clients",
			func(w io.Writer) error { return report.FormatClientFlows(w, flows) },
			func(w io.Writer) error { return report.FormatClientFlows(w, fx.flows(cf)) }},
		{"kaudit report --admin",
			func(w io.Writer) error { return report.FormatAdminAudit(w, audit) },
			func(w io.Writer) error { return report.FormatAdminAudit(w, fx.audit(af)) }},
	} {
		var got, want strings.Builder
		if err := c.got(&got); err != nil {
			t.Fatal(err)
		}
		if err := c.want(&want); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("%s:\n%s\nwant\n%s", c.name, firstDiff(got.String(), want.String()), firstDiff(want.String(), got.String()))
		}
		if strings.Count(got.String(), "\n") < 5 {
			t.Errorf("%s prints only:\n%s", c.name, got.String())
		}
		e.put(c.name, got.String())
	}
}

var (
	flowRowRe    = regexp.MustCompile(`<tr data-topic=`)
	flowRecsRe   = regexp.MustCompile(`data-k="records">(\d+)<`)
	auditRowRe   = regexp.MustCompile(`<tr data-method=`)
	nAllowedRe   = regexp.MustCompile(`id="n-allowed">(\d+)<`)
	nDeniedRe    = regexp.MustCompile(`id="n-denied">(\d+)<`)
	proxyWindows = map[string]time.Duration{"15m": 15 * time.Minute, "1h": time.Hour, "6h": 6 * time.Hour, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour}
)

// proxyPages renders the Clients and Admin audit pages over filters and
// checks what they show against the fixture.
func proxyPages(t *testing.T, e *engine, fx *fixture) {
	srv, err := web.New(e.rec, web.Config{Database: e.cfg.Database, Now: func() time.Time { return fx.now }})
	if err != nil {
		t.Fatal(err)
	}
	get := func(target string) string {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		body, _ := io.ReadAll(rec.Body)
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s = %d", target, rec.Code)
		}
		e.put(fmt.Sprintf("GET %s (%d)", target, rec.Code), body)
		return string(body)
	}
	sum := func(re *regexp.Regexp, body string) (n uint64) {
		for _, m := range re.FindAllStringSubmatch(body, -1) {
			v, _ := strconv.ParseUint(m[1], 10, 64)
			n += v
		}
		return n
	}
	for _, target := range []string{
		"/clients", "/clients?window=15m", "/clients?topic=orders", "/clients?principal=User%3Abob&window=6h",
		"/clients?topic=absent", "/clients?topic=%27+OR+1%3D1+--",
	} {
		u, _ := url.Parse(target)
		q := u.Query()
		d := proxyWindows[cmpOr(q.Get("window"), "1h")]
		want := fx.flows(report.ClientFilter{Since: fx.now.Add(-d), Topic: q.Get("topic"), Principal: q.Get("principal")})
		var records uint64
		for _, f := range want {
			records += f.Records
		}
		body := get(target)
		if n := len(flowRowRe.FindAllString(body, -1)); n != len(want) {
			t.Errorf("GET %s lists %d flows, the fixture has %d", target, n, len(want))
		}
		if got := sum(flowRecsRe, body); got != records {
			t.Errorf("GET %s: %d records, the fixture's %d", target, got, records)
		}
		if len(want) == 0 && !strings.Contains(body, `id="no-flows"`) {
			t.Errorf("GET %s: no flows, but no empty notice", target)
		}
	}
	for _, target := range []string{
		"/admin", "/admin?window=1h", "/admin?principal=User%3Amallory", "/admin?denied=1&window=6h",
		"/admin?method=CreateTopics&resource=orders&window=7d", "/admin?resource=audit-%27+OR+1%3D1+--",
	} {
		u, _ := url.Parse(target)
		q := u.Query()
		d := proxyWindows[cmpOr(q.Get("window"), "24h")]
		want := fx.audit(report.AuditFilter{Since: fx.now.Add(-d), Principal: q.Get("principal"), Method: q.Get("method"),
			Resource: q.Get("resource"), Denied: q.Get("denied") == "1", Limit: 500})
		var allowed, denied uint64
		for _, a := range want {
			if a.Allowed {
				allowed++
			} else {
				denied++
			}
		}
		body := get(target)
		if n := len(auditRowRe.FindAllString(body, -1)); n != len(want) {
			t.Errorf("GET %s lists %d admin rows, the fixture has %d", target, n, len(want))
		}
		if a, d := sum(nAllowedRe, body), sum(nDeniedRe, body); a != allowed || d != denied {
			t.Errorf("GET %s: %d allowed, %d denied; the fixture has %d and %d", target, a, d, allowed, denied)
		}
		if len(want) == 0 {
			t.Errorf("GET %s: the fixture has no such rows; pick a filter that shows some", target)
		}
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// grafanaProxy checks the numbers of the kaudit-proxy panels against the
// fixture, for a topic selection ("" is All): rows holds each panel's
// answer by title. Grafana's range is [from, to], both ends included.
func grafanaProxy(t *testing.T, fx *fixture, topic string, from, to time.Time, cols map[string][]string, rows map[string][][]any) {
	t.Helper()
	in := func(at time.Time) bool { return !at.Before(from) && !at.After(to) }
	var produced, consumed float64
	perMinute := map[int64]bool{}
	type flowKey struct{ topic, dir, principal, client, group string }
	flows := map[flowKey]float64{}
	for _, tr := range fx.traffic {
		if !isFlow(tr) || !in(tr.WindowStart) || (topic != "" && tr.Topic != topic) {
			continue
		}
		perMinute[tr.WindowStart.Unix()/60] = true
		dir := "consume"
		if tr.API == "Produce" {
			produced += float64(tr.Records)
			dir = "produce"
		} else {
			consumed += float64(tr.Records)
		}
		flows[flowKey{tr.Topic, dir, tr.Principal, tr.ClientID, tr.Group}] += float64(tr.Records)
	}
	var admin int
	for _, a := range fx.admin {
		if in(a.Event.Time.Truncate(time.Second)) && (topic == "" || a.Resource.Name == topic) {
			admin++
		}
	}
	col := func(title, name string) int {
		for i, c := range cols[title] {
			if c == name {
				return i
			}
		}
		t.Fatalf("panel %q has no column %q (%v)", title, name, cols[title])
		return -1
	}
	found := 0
	for title, rs := range rows {
		switch {
		case strings.HasPrefix(title, "Client traffic per minute"):
			found++
			var p, c float64
			for _, r := range rs {
				p += r[col(title, "produced")].(float64)
				c += r[col(title, "consumed")].(float64)
			}
			if len(rs) != len(perMinute) || p != produced || c != consumed {
				t.Errorf("Grafana %q (topic %q): %d minutes, %v produced, %v consumed; the fixture's %d, %v, %v",
					title, topic, len(rs), p, c, len(perMinute), produced, consumed)
			}
		case strings.HasPrefix(title, "Who produces and consumes"):
			found++
			got := map[flowKey]float64{}
			for _, r := range rs {
				got[flowKey{r[col(title, "Topic")].(string), r[col(title, "Direction")].(string), r[col(title, "Principal")].(string),
					r[col(title, "Client ID")].(string), r[col(title, "Group")].(string)}] = r[col(title, "Records")].(float64)
			}
			if !reflect.DeepEqual(got, flows) {
				t.Errorf("Grafana %q (topic %q): %v, the fixture's %v", title, topic, got, flows)
			}
		case strings.HasPrefix(title, "Admin audit"):
			found++
			if want := min(admin, 200); len(rs) != want {
				t.Errorf("Grafana %q (topic %q): %d rows, the fixture's %d", title, topic, len(rs), want)
			}
		}
	}
	if found != 3 {
		t.Errorf("found %d of the 3 kaudit-proxy Grafana panels", found)
	}
}
