package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"gopkg.in/yaml.v3"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/deploy"
	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/sinks"
	chsink "github.com/kaudit/kaudit/sinks/clickhouse"
	"github.com/kaudit/kaudit/store"
	"github.com/kaudit/kaudit/store/migrations"
)

func TestMain(m *testing.M) { chtest.Main(m) }

// The plugin's type name, and where the grafana service mounts the
// repository's provisioning and dashboards.
const (
	pluginID          = "grafana-clickhouse-datasource"
	provisioningMount = "/etc/grafana/provisioning"
)

type datasourceFile struct {
	APIVersion  int `yaml:"apiVersion"`
	Datasources []struct {
		Name     string `yaml:"name"`
		UID      string `yaml:"uid"`
		Type     string `yaml:"type"`
		JSONData struct {
			Host            string `yaml:"host"`
			Port            int    `yaml:"port"`
			Protocol        string `yaml:"protocol"`
			Username        string `yaml:"username"`
			DefaultDatabase string `yaml:"defaultDatabase"`
		} `yaml:"jsonData"`
		SecureJSONData map[string]string `yaml:"secureJsonData"`
	} `yaml:"datasources"`
}

type providerFile struct {
	APIVersion int `yaml:"apiVersion"`
	Providers  []struct {
		Name    string `yaml:"name"`
		Type    string `yaml:"type"`
		Options struct {
			Path string `yaml:"path"`
		} `yaml:"options"`
	} `yaml:"providers"`
}

type dashboardFile struct {
	UID    string  `json:"uid"`
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
	Templ  struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *datasourceRef `json:"datasource"`
	Targets    []struct {
		Datasource *datasourceRef `json:"datasource"`
		EditorType string         `json:"editorType"`
		Format     *int           `json:"format"`
		RawSQL     string         `json:"rawSql"`
		RefID      string         `json:"refId"`
	} `json:"targets"`
}

type variable struct {
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Query      any            `json:"query"`
	Datasource *datasourceRef `json:"datasource"`
}

func grafanaDir(t *testing.T) string {
	return filepath.Join(moduleRoot(t), "deploy", "grafana")
}

// readGrafana parses the three provisioning files.
func readGrafana(t *testing.T) (datasourceFile, providerFile, dashboardFile) {
	t.Helper()
	dir := grafanaDir(t)
	var ds datasourceFile
	var pf providerFile
	for path, v := range map[string]any{
		filepath.Join(dir, "provisioning", "datasources", "kaudit.yml"): &ds,
		filepath.Join(dir, "provisioning", "dashboards", "kaudit.yml"):  &pf,
	} {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(raw)))
		if err := dec.Decode(v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	var db dashboardFile
	raw, err := os.ReadFile(filepath.Join(dir, "dashboards", "kaudit.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &db); err != nil {
		t.Fatalf("dashboards/kaudit.json: %v", err)
	}
	return ds, pf, db
}

func TestGrafanaProvisioning(t *testing.T) {
	ds, pf, db := readGrafana(t)
	if ds.APIVersion != 1 || len(ds.Datasources) != 1 {
		t.Fatalf("datasources: apiVersion %d, %d data sources; want 1 and 1", ds.APIVersion, len(ds.Datasources))
	}
	src := ds.Datasources[0]
	if src.Type != pluginID || src.UID == "" || src.JSONData.Protocol != "native" {
		t.Errorf("data source %+v: want type %s, a uid, protocol native", src, pluginID)
	}
	if pf.APIVersion != 1 || len(pf.Providers) != 1 || pf.Providers[0].Type != "file" || pf.Providers[0].Options.Path == "" {
		t.Fatalf("dashboard providers: %+v", pf)
	}
	if db.UID == "" || db.Title == "" || len(db.Panels) == 0 {
		t.Fatalf("dashboard without uid, title or panels: %+v", db)
	}

	// The built-in dashboard's parts, each with a panel.
	var titles []string
	for _, p := range db.Panels {
		titles = append(titles, strings.ToLower(p.Title))
		if p.Datasource == nil || p.Datasource.UID != src.UID || p.Datasource.Type != pluginID {
			t.Errorf("panel %q: data source %+v, want the provisioned %s", p.Title, p.Datasource, src.UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != src.UID || tg.EditorType != "sql" || strings.TrimSpace(tg.RawSQL) == "" || tg.Format == nil {
				t.Errorf("panel %q query %q: want the provisioned data source, SQL editor, a format and SQL", p.Title, tg.RefID)
			}
			// Time series need a time column; tables must not be time series.
			if wantFormat := map[string]int{"timeseries": 0, "table": 1, "stat": 1}[p.Type]; *tg.Format != wantFormat {
				t.Errorf("panel %q (%s): format %d, want %d", p.Title, p.Type, *tg.Format, wantFormat)
			}
		}
	}
	all := strings.Join(titles, "|")
	for _, want := range []string{"totals", "per topic and consumer group", "latency", "lost and late", "anomalies"} {
		if !strings.Contains(all, want) {
			t.Errorf("no panel titled like %q (have %s)", want, all)
		}
	}
}

func TestGrafanaCompose(t *testing.T) {
	root := moduleRoot(t)
	cf := loadCompose(t, root)
	ds, pf, _ := readGrafana(t)
	g, ok := cf.Services["grafana"]
	if !ok {
		t.Fatal("no grafana service")
	}
	plugins := g.Environment["GF_INSTALL_PLUGINS"]
	if !regexp.MustCompile(`(^|,)\s*` + pluginID + `[ @]\d+\.\d+\.\d+\s*(,|$)`).MatchString(plugins) {
		t.Errorf("GF_INSTALL_PLUGINS = %q, want %s at a pinned version", plugins, pluginID)
	}
	if cond := g.dependsOn(t, "grafana")["clickhouse"]; cond != "service_healthy" {
		t.Errorf("grafana depends on clickhouse with condition %q, want service_healthy", cond)
	}

	// The provisioning and dashboards folders are mounted where Grafana
	// and the provider file expect them.
	mounts := map[string]string{} // container path -> host path
	for _, v := range g.Volumes {
		src, dst := volume(t, v)
		mounts[dst] = src
	}
	for dst, want := range map[string]string{
		provisioningMount:            filepath.Join(grafanaDir(t), "provisioning"),
		pf.Providers[0].Options.Path: filepath.Join(grafanaDir(t), "dashboards"),
	} {
		if src := mounts[dst]; !samePath(src, want) {
			t.Errorf("grafana mounts %q at %s, want %s", src, dst, want)
		}
	}
	if home := g.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home != "" &&
		!strings.HasPrefix(home, pf.Providers[0].Options.Path+"/") {
		t.Errorf("home dashboard %s is outside the provisioned folder", home)
	}

	// The data source reaches the compose ClickHouse as its user, and its
	// password variable is set in the grafana container.
	src := ds.Datasources[0].JSONData
	ch := cf.Services["clickhouse"]
	if _, ok := cf.Services[src.Host]; !ok || src.Host != "clickhouse" || src.Port != 9000 {
		t.Errorf("data source host %s:%d, want the clickhouse service's native port clickhouse:9000", src.Host, src.Port)
	}
	if src.Username != ch.Environment["CLICKHOUSE_USER"] || src.DefaultDatabase != ch.Environment["CLICKHOUSE_DB"] {
		t.Errorf("data source user %q database %q; clickhouse service has %q and %q",
			src.Username, src.DefaultDatabase, ch.Environment["CLICKHOUSE_USER"], ch.Environment["CLICKHOUSE_DB"])
	}
	pw := ds.Datasources[0].SecureJSONData["password"]
	name := strings.Trim(strings.TrimPrefix(pw, "$"), "{}")
	if !strings.HasPrefix(pw, "$") || g.Environment[name] != ch.Environment["CLICKHOUSE_PASSWORD"] {
		t.Errorf("data source password %q: the grafana service must set %s to the ClickHouse password", pw, name)
	}

	// The built-in dashboard runs too, and keeps the rollups current.
	if d, ok := cf.Services["dashboard"]; !ok || !strings.Contains(strings.Join(d.argv(t, "dashboard"), " "), "kaudit web") {
		t.Error("no dashboard service running `kaudit web`")
	}
}

// volume returns a compose volume's source and target, from the short
// ("src:dst[:mode]") or the long form.
func volume(t *testing.T, n yaml.Node) (string, string) {
	t.Helper()
	switch n.Kind {
	case yaml.ScalarNode:
		parts := strings.Split(n.Value, ":")
		if len(parts) < 2 {
			return "", parts[0]
		}
		return parts[0], parts[1]
	case yaml.MappingNode:
		var v struct {
			Source string `yaml:"source"`
			Target string `yaml:"target"`
		}
		if err := n.Decode(&v); err != nil {
			t.Fatal(err)
		}
		return v.Source, v.Target
	}
	t.Fatalf("volume of unexpected YAML kind %v", n.Kind)
	return "", ""
}

// selection is a choice of the dashboard's topic and group variables; an
// empty value is "All".
type selection struct{ topic, group string }

// expand is ExpandGrafana for a selection; a failure fails the test.
func expand(t *testing.T, sql, db string, sel selection, from, to time.Time) string {
	t.Helper()
	out, err := deploy.ExpandGrafana(sql, db, map[string]string{"topic": sel.topic, "group": sel.group}, from, to)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// query runs sql and returns its column names and rows, each value
// dereferenced.
func query(t *testing.T, conn driver.Conn, sql string) ([]string, [][]any) {
	t.Helper()
	rows, err := conn.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%v\n%s", err, sql)
	}
	defer rows.Close()
	cols := rows.Columns()
	var out [][]any
	for rows.Next() {
		dest := make([]any, len(cols))
		for i, ct := range rows.ColumnTypes() {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatalf("%v\n%s", err, sql)
		}
		row := make([]any, len(dest))
		for i, d := range dest {
			row[i] = reflect.ValueOf(d).Elem().Interface()
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%v\n%s", err, sql)
	}
	return cols, out
}

// grafanaScenario writes verdicts 5 minutes ago: orders/billing 5
// delivered, 1 lost, 1 lost with cause audit_gap, 1 lost then corrected
// to late; payments/search 3 delivered, 1 duplicate; and the lag of
// orders/billing that minute from two correlators (90 s and 30 s old, 7
// and 5 pending), one report written twice.
func grafanaScenario(t *testing.T, conn driver.Conn, db string, now time.Time) {
	t.Helper()
	seen := now.Add(-5 * time.Minute)
	var first, second []codecs.Verdict
	n := 0
	add := func(topic, group string, s codecs.Status, count int) []codecs.Verdict {
		var vs []codecs.Verdict
		for range count {
			n++
			at := seen.Add(time.Duration(n) * 10 * time.Second)
			vs = append(vs, codecs.Verdict{CorrelationID: fmt.Sprint("g-", n), Topic: topic, Group: group, Status: s, Seq: 1,
				AckLatencyUs: 800, E2ELatencyUs: 10_000 + int64(n), FirstSeenNs: at.UnixNano(), DecidedNs: at.UnixNano()})
		}
		first = append(first, vs...)
		return vs
	}
	add("orders", "billing", codecs.StatusDelivered, 5)
	add("orders", "billing", codecs.StatusLost, 1)
	add("orders", "billing", codecs.StatusLost, 1)
	first[len(first)-1].Cause = store.CauseAuditGap // fate unknown: not a loss
	late := add("orders", "billing", codecs.StatusLost, 1)[0]
	late.Status, late.Seq = codecs.StatusLate, 2
	second = append(second, late)
	add("payments", "search", codecs.StatusDelivered, 3)
	add("payments", "search", codecs.StatusDuplicate, 1)
	m := seen.Truncate(time.Minute)
	lag := []audit.LagReport{
		{Minute: m.Unix(), Topic: "orders", Group: "billing", Instance: "c0", OldestAckNs: m.Add(-90 * time.Second).UnixNano(), AgeMs: 90_000, Pending: 7},
		{Minute: m.Unix(), Topic: "orders", Group: "billing", Instance: "c1", OldestAckNs: m.Add(-30 * time.Second).UnixNano(), AgeMs: 30_000, Pending: 5},
	}
	sink := chsink.New(conn, chsink.Config{Database: db})
	for _, b := range []*sinks.Batch{{Verdicts: first, Lag: lag}, {Verdicts: second, Lag: lag[:1]}} {
		if err := sink.WriteBatch(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
}

func TestGrafanaQueriesRunOnClickHouse(t *testing.T) {
	_, _, dash := readGrafana(t)
	cfg := chtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := migrations.Up(ctx, cfg, nil); err != nil {
		t.Fatal(err)
	}
	conn := chtest.Open(t, cfg)
	now := time.Now()
	grafanaScenario(t, conn, cfg.Database, now)
	if _, err := store.NewRefresher(conn, store.RefresherConfig{Database: cfg.Database}).Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	from, to := now.Add(-time.Hour), now

	// Variables: their queries run and list the scenario's values.
	for _, v := range dash.Templ.List {
		if v.Type != "query" {
			continue
		}
		q, ok := v.Query.(string)
		if !ok {
			t.Fatalf("variable %s: query %v is not SQL text", v.Name, v.Query)
		}
		_, rows := query(t, conn, expand(t, q, cfg.Database, selection{}, from, to))
		var vals []string
		for _, r := range rows {
			vals = append(vals, fmt.Sprint(r[0]))
		}
		want := map[string]string{"topic": "orders payments", "group": "billing search"}[v.Name]
		if strings.Join(vals, " ") != want {
			t.Errorf("variable %s lists %v, want %s", v.Name, vals, want)
		}
	}

	// Every panel query runs with All and with one topic and group.
	results := map[string]map[selection][][]any{}
	columns := map[string][]string{}
	for _, p := range dash.Panels {
		results[p.Title] = map[selection][][]any{}
		for _, tg := range p.Targets {
			for _, sel := range []selection{{}, {"orders", "billing"}, {"' OR 1=1 --", ""}} {
				cols, rows := query(t, conn, expand(t, tg.RawSQL, cfg.Database, sel, from, to))
				columns[p.Title] = cols
				results[p.Title][sel] = append(results[p.Title][sel], rows...)
				if p.Type == "timeseries" && (len(cols) == 0 || cols[0] != "time") {
					t.Errorf("panel %q: time series whose first column is %v, not time", p.Title, cols)
				}
			}
		}
	}

	// The numbers are the scenario's (corrected verdicts count once).
	cell := func(title string, sel selection, row int, col string) any {
		t.Helper()
		rows := results[title][sel]
		for i, c := range columns[title] {
			if c == col && row < len(rows) {
				return rows[row][i]
			}
		}
		t.Fatalf("panel %q (%+v): no row %d column %q in %v / %v", title, sel, row, col, columns[title], rows)
		return nil
	}
	all, ob := selection{}, selection{"orders", "billing"}
	for _, c := range []struct {
		sel  selection
		col  string
		want uint64
	}{
		{all, "Expected", 12}, {all, "Delivered", 8}, {all, "Lost", 1}, {all, "Audit gap", 1}, {all, "Late", 1},
		{all, "Duplicates", 1}, {ob, "Expected", 8}, {ob, "Duplicates", 0}, {ob, "Audit gap", 1},
	} {
		if got := num(t, cell("Totals", c.sel, 0, c.col)); got != float64(c.want) {
			t.Errorf("Totals %s (%+v) = %v, want %d", c.col, c.sel, got, c.want)
		}
	}
	// 11 audited (the audit gap is left out), 10 of them arrived.
	if got := num(t, cell("Totals", all, 0, "Completeness")); math.Abs(got-100*10.0/11) > 1e-9 {
		t.Errorf("Totals completeness = %v", got)
	}
	for title, want := range map[string][3]int{
		"Per topic and consumer group": {2, 1, 0},
		"Latest anomalies":             {4, 3, 0},
	} {
		for i, sel := range []selection{all, ob, {"' OR 1=1 --", ""}} {
			if got := len(results[title][sel]); got != want[i] {
				t.Errorf("panel %q (%+v): %d rows, want %d", title, sel, got, want[i])
			}
		}
	}
	// quantileExact of 10001..10008 µs is 10005 µs; the histograms are
	// within store.LatencyRelativeError of it.
	if got := num(t, cell("Per topic and consumer group", ob, 0, "E2E p50")); math.Abs(got-10.005)/10.005 > store.LatencyRelativeError {
		t.Errorf("per-group e2e p50 = %v ms, want 10.005 ms ± %.2f%%", got, 100*store.LatencyRelativeError)
	}
	if got := num(t, cell("Per topic and consumer group", ob, 0, "Audit gap")); got != 1 {
		t.Errorf("per-group audit gap = %v, want 1", got)
	}
	for _, title := range []string{"End-to-end latency per minute (p50, p99)", "Lost and late messages per minute"} {
		if len(results[title][all]) == 0 {
			t.Errorf("panel %q returns no rows", title)
		}
	}
	// The group's lag is the oldest over the correlators, its pending
	// count their sum; the repeated report counts once.
	for _, sel := range []selection{all, ob} {
		for title, want := range map[string]float64{"Consumer lag per minute (oldest unconsumed message)": 90, "Unconsumed messages per minute": 12} {
			if rs := results[title][sel]; len(rs) != 1 || rs[0][1] != "orders / billing" || num(t, rs[0][2]) != want {
				t.Errorf("panel %q (%+v): %v, want one point of orders / billing at %v", title, sel, rs, want)
			}
		}
	}
	var lost, late, gap uint64
	for _, r := range results["Lost and late messages per minute"][all] {
		lost += uint64(num(t, r[1]))
		late += uint64(num(t, r[2]))
		gap += uint64(num(t, r[3]))
	}
	if lost != 1 || late != 1 || gap != 1 {
		t.Errorf("lost, late and audit gaps per minute add up to %d, %d and %d, want 1, 1 and 1", lost, late, gap)
	}
}

// num converts a numeric query result to float64 (column types differ
// between ClickHouse releases, e.g. UInt64 - UInt64 is Int64).
func num(t *testing.T, v any) float64 {
	t.Helper()
	r := reflect.ValueOf(v)
	switch {
	case r.CanInt():
		return float64(r.Int())
	case r.CanUint():
		return float64(r.Uint())
	case r.CanFloat():
		return r.Float()
	}
	t.Fatalf("%v (%T) is not a number", v, v)
	return 0
}
