package conformance_test

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/pressly/goose/v3"

	"github.com/kaudit/kaudit/deploy"
	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/report"
	chsink "github.com/kaudit/kaudit/sinks/clickhouse"
	"github.com/kaudit/kaudit/store"
	"github.com/kaudit/kaudit/store/migrations"
	"github.com/kaudit/kaudit/web"
)

func TestMain(m *testing.M) { chtest.Main(m) }

// recorder is a driver.Conn that notes every statement the product sends
// through it (the sink's batch inserts pass through unnoted).
type recorder struct {
	driver.Conn
	mu   sync.Mutex
	seen map[string]int
}

func (r *recorder) note(q string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen[q]++
}

func (r *recorder) Query(ctx context.Context, q string, args ...any) (driver.Rows, error) {
	r.note(q)
	return r.Conn.Query(ctx, q, args...)
}

func (r *recorder) QueryRow(ctx context.Context, q string, args ...any) driver.Row {
	r.note(q)
	return r.Conn.QueryRow(ctx, q, args...)
}

func (r *recorder) Exec(ctx context.Context, q string, args ...any) error {
	r.note(q)
	return r.Conn.Exec(ctx, q, args...)
}

func (r *recorder) Select(ctx context.Context, dest any, q string, args ...any) error {
	r.note(q)
	return r.Conn.Select(ctx, dest, q, args...)
}

// engine is one ClickHouse version under test, with what it answered.
type engine struct {
	name string
	cfg  store.Config
	raw  driver.Conn // for the tests' own queries
	rec  *recorder   // for the product's
	// out holds each check's answer, rendered, by check name.
	out     map[string]string
	outKeys []string
}

func (e *engine) put(key string, v any) {
	if _, dup := e.out[key]; !dup {
		e.outKeys = append(e.outKeys, key)
	}
	e.out[key] = render(v)
}

// render prints v with every float exactly (NaN as NaN) and times as Unix
// seconds, so that renderings are equal exactly when the values are.
func render(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	}
	return fmt.Sprintf("%+v", v)
}

func TestSameAnswersOn18And26(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Minute)
	fx := newFixture(now)
	var engines []*engine
	for _, ce := range chtest.Engines() {
		e := &engine{name: ce.Name, cfg: ce.NewDatabase(t), out: map[string]string{}}
		engines = append(engines, e)
		t.Run("migrations/"+e.name, func(t *testing.T) { migrateUpDownUp(t, e) })
		e.raw = chtest.Open(t, e.cfg)
		e.rec = &recorder{Conn: e.raw, seen: map[string]int{}}
	}
	if t.Failed() {
		t.FailNow()
	}
	for _, e := range engines {
		t.Run("load/"+e.name, func(t *testing.T) { load(t, e, fx) })
	}
	if t.Failed() {
		t.FailNow()
	}
	for _, e := range engines {
		t.Run("report/"+e.name, func(t *testing.T) { reports(t, e, fx) })
		t.Run("proxy-report/"+e.name, func(t *testing.T) { proxyReports(t, e, fx) })
		t.Run("lag-report/"+e.name, func(t *testing.T) { lagReports(t, e, fx) }) // lagfixture_test.go
		t.Run("web/"+e.name, func(t *testing.T) { pages(t, e, fx) })
		t.Run("proxy-web/"+e.name, func(t *testing.T) { proxyPages(t, e, fx) })
		t.Run("grafana/"+e.name, func(t *testing.T) { grafana(t, e, fx) })
		t.Run("percentiles/"+e.name, func(t *testing.T) { percentiles(t, e, fx) })
		t.Run("alerts/"+e.name, func(t *testing.T) { alertChecks(t, e, fx) }) // alerts_test.go
		t.Run("retention/"+e.name, func(t *testing.T) { retention(t, e, fx) })
	}

	// Same rows, same numbers, same pages.
	a := engines[0]
	for _, b := range engines[1:] {
		if !slices.Equal(a.outKeys, b.outKeys) {
			t.Errorf("checks differ: %s ran %v, %s ran %v", a.name, a.outKeys, b.name, b.outKeys)
		}
		differ := 0
		for _, k := range a.outKeys {
			if a.out[k] != b.out[k] {
				differ++
				t.Errorf("%s: %s and %s answer differently:\n%s\n%s", k, a.name, b.name, firstDiff(a.out[k], b.out[k]), firstDiff(b.out[k], a.out[k]))
			}
		}
		t.Logf("%d of %d checks answered alike on %s and %s", len(a.outKeys)-differ, len(a.outKeys), a.name, b.name)
	}

	// Every registered statement ran on both, and nothing else did.
	for _, e := range engines {
		registered := map[string]string{}
		for _, q := range store.Queries() {
			registered[q.For(e.cfg.Schema())] = q.Name
			if e.rec.seen[q.For(e.cfg.Schema())] == 0 {
				t.Errorf("%s: registered query %s never ran: add a check of it here", e.name, q.Name)
			}
		}
		for q := range e.rec.seen {
			if _, ok := registered[q]; !ok {
				t.Errorf("%s: the product sent a statement that is not in store's query registry:\n%s", e.name, q)
			}
		}
	}
}

// firstDiff is a's text around its first difference from b.
func firstDiff(a, b string) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	lo, hi := max(i-80, 0), min(i+160, len(a))
	return fmt.Sprintf("…%s…", a[lo:hi])
}

// migrateUpDownUp applies every migration, rolls every one back (each
// changes the schema), applies them again and checks the schema came back;
// the schema is recorded to be compared across engines.
func migrateUpDownUp(t *testing.T, e *engine) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := migrations.Up(ctx, e.cfg, nil); err != nil {
		t.Fatal(err)
	}
	conn := chtest.Open(t, e.cfg)
	full := schema(t, conn, e.cfg.Database)
	st, err := migrations.Status(ctx, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	prev := full
	for i := len(st) - 1; i >= 0; i-- {
		if err := migrations.Down(ctx, e.cfg, nil); err != nil {
			t.Fatalf("down %s: %v", st[i].Source.Path, err)
		}
		cur := schema(t, conn, e.cfg.Database)
		if cur == prev {
			t.Errorf("down %s left the schema unchanged", st[i].Source.Path)
		}
		prev = cur
	}
	if prev != "" {
		t.Errorf("after every down the database still has %s", prev)
	}
	after, err := migrations.Status(ctx, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range after {
		if s.State != goose.StatePending {
			t.Errorf("after every down %s is %s", s.Source.Path, s.State)
		}
	}
	if err := migrations.Up(ctx, e.cfg, nil); err != nil {
		t.Fatal(err)
	}
	if again := schema(t, conn, e.cfg.Database); again != full {
		t.Errorf("schema after up, down and up differs:\n%s\n%s", full, again)
	}
	e.put("schema", sameLayout(t, e, full))
}

// sameLayout returns a schema listing as it would be on one server: on a
// cluster each Distributed table must have its local table's columns, and
// the local tables are listed under the product's names and engines
// (events_local(ReplicatedReplacingMergeTree) as events(ReplacingMergeTree)).
func sameLayout(t *testing.T, e *engine, full string) string {
	if e.cfg.Cluster == "" {
		return full
	}
	tables := map[string][]string{} // table(engine) -> columns
	for _, c := range strings.Fields(full) {
		tbl, col, _ := strings.Cut(c, ").")
		tables[tbl+")"] = append(tables[tbl+")"], col)
	}
	var out []string
	for tbl, cols := range tables {
		name, engine, _ := strings.Cut(strings.TrimSuffix(tbl, ")"), "(")
		if engine == "Distributed" {
			var local []string
			for t2, c2 := range tables {
				if strings.HasPrefix(t2, name+store.LocalSuffix+"(") {
					local = c2
				}
			}
			if !slices.Equal(cols, local) {
				t.Errorf("%s: Distributed %s has columns %v, its local table %v", e.name, name, cols, local)
			}
			continue
		}
		if !strings.HasSuffix(name, store.LocalSuffix) || !strings.HasPrefix(engine, "Replicated") {
			t.Errorf("%s: table %s(%s) is neither Distributed nor a replicated local table", e.name, name, engine)
		}
		name, engine = strings.TrimSuffix(name, store.LocalSuffix), strings.TrimPrefix(engine, "Replicated")
		for _, c := range cols {
			out = append(out, name+"("+engine+")."+c)
		}
	}
	slices.Sort(out)
	return strings.Join(out, " ") + " "
}

// schema lists every table, engine, column and type of db (but goose's).
func schema(t *testing.T, conn driver.Conn, db string) string {
	t.Helper()
	// (18.16's system.columns has no position: columns by name.)
	rows, err := conn.Query(context.Background(), `SELECT c.table, t.engine, c.name, c.type
		FROM system.columns AS c ANY LEFT JOIN (SELECT name AS table, engine FROM system.tables WHERE database = ?) AS t USING table
		WHERE c.database = ? AND c.table != ? ORDER BY c.table, c.name`, db, db, migrations.VersionTable)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var tbl, eng, col, typ string
		if err := rows.Scan(&tbl, &eng, &col, &typ); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s(%s).%s:%s ", tbl, eng, col, typ)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// load writes the fixture through the sink and refreshes the rollups,
// checking them against the fixture.
func load(t *testing.T, e *engine, fx *fixture) {
	ctx := context.Background()
	sink := chsink.New(e.rec, chsink.Config{Database: e.cfg.Database})
	ref := store.NewRefresher(e.rec, store.RefresherConfig{Database: e.cfg.Database, Cluster: e.cfg.Cluster})
	for i, b := range fx.batches {
		if err := sink.WriteBatch(ctx, b); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		st, err := ref.Refresh(ctx)
		if err != nil {
			t.Fatalf("refresh after batch %d: %v", i, err)
		}
		if i == 0 {
			e.put("first refresh: minutes", st.Minutes)
		}
	}
	// The rollups hold the latest verdicts, counted once.
	rows, err := report.Overview(ctx, e.rec, e.cfg.Database, report.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	want := fx.counts(time.Time{}, time.Time{})
	if len(rows) != len(want) {
		t.Errorf("overview has %d rows, the fixture %d groups", len(rows), len(want))
	}
	for _, r := range rows {
		if w := want[groupKey{r.Topic, r.Group}]; r.Counts != w {
			t.Errorf("%s/%s: counts %+v, want %+v", r.Topic, r.Group, r.Counts, w)
		}
	}
	var final uint64
	if err := e.raw.QueryRow(ctx, "SELECT count() FROM "+store.Table(e.cfg.Database, store.DeliveriesTable)+" FINAL").Scan(&final); err != nil {
		t.Fatal(err)
	}
	if final != uint64(len(fx.latest)) {
		t.Errorf("deliveries FINAL has %d rows, want %d", final, len(fx.latest))
	}
	proxyLoaded(t, e, fx)
	lagLoaded(t, e, fx)
}

// reports runs what `kaudit report` and `kaudit trail` read, over filters.
func reports(t *testing.T, e *engine, fx *fixture) {
	ctx := context.Background()
	db := e.cfg.Database
	for _, f := range []report.Filter{
		{},
		{Topic: "orders"},
		{Group: "billing"},
		{Topic: "payments", Group: "billing"},
		{Since: fx.now.Add(-15 * time.Minute)},
		{Since: fx.now.Add(-30 * time.Minute), Until: fx.now.Add(-10 * time.Minute)},
		{Since: fx.now.Add(-60 * 24 * time.Hour), Until: fx.now.Add(-24 * time.Hour)},
		{Topic: "' OR 1=1 --"},
	} {
		rows, err := report.Overview(ctx, e.rec, db, f)
		if err != nil {
			t.Fatal(err)
		}
		e.put(fmt.Sprintf("overview %+v", f), rows)
		for _, step := range []time.Duration{time.Minute, 5 * time.Minute, time.Hour} {
			pts, err := report.Series(ctx, e.rec, db, f, step)
			if err != nil {
				t.Fatal(err)
			}
			e.put(fmt.Sprintf("series %s %+v", step, f), pts)
		}
		an, err := report.Anomalies(ctx, e.rec, db, f, 40)
		if err != nil {
			t.Fatal(err)
		}
		e.put(fmt.Sprintf("anomalies %+v", f), an)
	}
	// Per filter, the overview's counts are the fixture's.
	f := report.Filter{Since: fx.now.Add(-30 * time.Minute), Until: fx.now.Add(-10 * time.Minute)}
	rows, err := report.Overview(ctx, e.rec, db, f)
	if err != nil {
		t.Fatal(err)
	}
	want := fx.counts(f.Since, f.Until)
	for _, r := range rows {
		if w := want[groupKey{r.Topic, r.Group}]; r.Counts != w {
			t.Errorf("%s/%s in [-30m, -10m): counts %+v, want %+v", r.Topic, r.Group, r.Counts, w)
		}
	}
	for _, id := range append(slices.Clone(fx.trailIDs), "absent", `' OR 1=1 --`) {
		tr, err := report.Trail(ctx, e.rec, db, id)
		e.put("trail "+id, strings.ReplaceAll(fmt.Sprintf("%+v %v", tr, err), db, "<database>"))
	}
	var buf strings.Builder
	rows, _ = report.Overview(ctx, e.rec, db, report.Filter{})
	if err := report.FormatOverview(&buf, rows); err != nil {
		t.Fatal(err)
	}
	e.put("kaudit report", buf.String())
}

// pages renders the dashboard's pages.
func pages(t *testing.T, e *engine, fx *fixture) {
	srv, err := web.New(e.rec, web.Config{
		Database:  e.cfg.Database,
		Refresher: store.NewRefresher(e.rec, store.RefresherConfig{Database: e.cfg.Database, Cluster: e.cfg.Cluster}),
		Now:       func() time.Time { return fx.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{
		"/", "/?window=15m", "/?window=7d&topic=orders", "/?topic=orders&group=ledger", "/?group=billing&window=6h",
		"/trail?id=" + fx.trailIDs[0], "/trail?id=" + fx.trailIDs[len(fx.trailIDs)-1], "/trail?id=absent",
	} {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		body, _ := io.ReadAll(rec.Body)
		if rec.Code != http.StatusOK && !(strings.Contains(target, "absent") && rec.Code == http.StatusNotFound) {
			t.Errorf("GET %s = %d", target, rec.Code)
		}
		if strings.Contains(string(body), "could not be refreshed") {
			t.Errorf("GET %s: the rollups could not be refreshed", target)
		}
		e.put(fmt.Sprintf("GET %s (%d)", target, rec.Code), body)
	}
}

// grafana runs every panel and variable of the dashboard, for All, one
// topic and group, and a hostile value.
func grafana(t *testing.T, e *engine, fx *fixture) {
	qs, err := deploy.GrafanaQueries()
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) < 7 {
		t.Fatalf("only %d Grafana queries", len(qs))
	}
	from, to := fx.now.Add(-time.Hour), fx.now
	sels := []map[string]string{
		{"topic": "", "group": ""}, {"topic": "orders", "group": "billing"}, {"topic": "' OR 1=1 --", "group": ""},
	}
	answers := make([]map[string][][]any, len(sels))
	columns := map[string][]string{}
	for _, q := range qs {
		for i, sel := range sels {
			sql, err := deploy.ExpandGrafana(q.SQL, e.cfg.Database, sel, from, to)
			if err != nil {
				t.Fatal(err)
			}
			cols, rows := query(t, e.raw, sql)
			if answers[i] == nil {
				answers[i] = map[string][][]any{}
			}
			answers[i][q.Panel] = append(answers[i][q.Panel], rows...)
			if len(cols) > 0 {
				columns[q.Panel] = cols
			}
			if len(rows) == 0 && sel["topic"] != "' OR 1=1 --" && !strings.Contains(q.Panel, "Latest anomalies") {
				t.Errorf("Grafana %s %v: no rows", q.Panel, sel)
			}
			if len(rows) == 0 {
				cols = nil // the in-process engine sends no header block for an empty result
			}
			e.put(fmt.Sprintf("grafana %s %v", q.Panel, sel), fmt.Sprint(cols, rows))
		}
	}
	// kaudit-proxy's panels show the fixture's numbers.
	grafanaProxy(t, fx, "", from, to, columns, answers[0])
	grafanaProxy(t, fx, "orders", from, to, columns, answers[1])
}

// query runs sql and returns its columns and rows, numbers as float64 (the
// type of UInt64 - UInt64 differs between versions) and times as Unix
// seconds.
func query(t *testing.T, conn driver.Conn, sql string) ([]string, [][]any) {
	t.Helper()
	rows, err := conn.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%v\n%s", err, sql)
	}
	defer rows.Close()
	var out [][]any
	for rows.Next() {
		dest := make([]any, len(rows.ColumnTypes()))
		for i, ct := range rows.ColumnTypes() {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatalf("%v\n%s", err, sql)
		}
		row := make([]any, len(dest))
		for i, d := range dest {
			row[i] = normalize(reflect.ValueOf(d).Elem().Interface())
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%v\n%s", err, sql)
	}
	return rows.Columns(), out
}

func normalize(v any) any {
	if tm, ok := v.(time.Time); ok {
		return tm.Unix()
	}
	r := reflect.ValueOf(v)
	switch {
	case r.CanInt():
		return float64(r.Int())
	case r.CanUint():
		return float64(r.Uint())
	case r.CanFloat():
		return r.Float()
	}
	return v
}

// percentiles checks the latency quantiles of the rollups against
// quantileExact: the engine's own and the fixture's agree, and the
// rollups' are within store.LatencyRelativeError of them.
func percentiles(t *testing.T, e *engine, fx *fixture) {
	ctx := context.Background()
	rows, err := report.Overview(ctx, e.rec, e.cfg.Database, report.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	engineExact := map[groupKey][2][]float64{}
	cols, res := query(t, e.raw, `SELECT topic, consumer_group,
		quantilesExactIf(0.5, 0.9, 0.99, 0.999)(ack_latency_us, ack_latency_us >= 0),
		quantilesExactIf(0.5, 0.9, 0.99, 0.999)(e2e_latency_us, e2e_latency_us >= 0)
		FROM `+store.Table(e.cfg.Database, store.DeliveriesTable)+` FINAL GROUP BY topic, consumer_group`)
	_ = cols
	for _, r := range res {
		conv := func(v any) []float64 {
			var out []float64
			rv := reflect.ValueOf(v)
			for i := range rv.Len() {
				out = append(out, normalize(rv.Index(i).Interface()).(float64))
			}
			return out
		}
		engineExact[groupKey{r[0].(string), r[1].(string)}] = [2][]float64{conv(r[2]), conv(r[3])}
	}
	worst := map[string]float64{}
	checked := 0
	for _, r := range rows {
		k := groupKey{r.Topic, r.Group}
		ack, e2e := fx.latencies(k)
		for i, m := range []struct {
			name   string
			values []int64
			got    report.Quantiles
		}{{"ack", ack, r.Ack}, {"e2e", e2e, r.E2E}} {
			for j, lv := range store.LatencyLevels {
				got := []float64{m.got.P50, m.got.P90, m.got.P99, m.got.P999}[j]
				want := exact(m.values, lv)
				if ex := engineExact[k][i]; len(m.values) > 0 && (j >= len(ex) || ex[j] != want) {
					t.Errorf("%s/%s %s p%v: quantileExact on %s = %v, the fixture's %v", k.topic, k.group, m.name, lv*100, e.name, ex, want)
				}
				if len(m.values) == 0 {
					if !math.IsNaN(got) {
						t.Errorf("%s/%s %s p%v = %v without known latencies", k.topic, k.group, m.name, lv*100, got)
					}
					continue
				}
				rel := math.Abs(got-want) / want
				if want == 0 {
					rel = math.Abs(got)
				}
				if rel > store.LatencyRelativeError+1e-12 {
					t.Errorf("%s/%s %s p%v = %v, quantileExact %v: relative error %.4f%% > %.4f%%",
						k.topic, k.group, m.name, lv*100, got, want, 100*rel, 100*store.LatencyRelativeError)
				}
				name := fmt.Sprintf("p%v", lv*100)
				worst[name] = max(worst[name], rel)
				checked++
			}
		}
	}
	if checked < 4*2*len(groups) {
		t.Errorf("only %d quantiles checked", checked)
	}
	t.Logf("%s: largest relative error against quantileExact over %d quantiles: p50 %.3f%%, p90 %.3f%%, p99 %.3f%%, p99.9 %.3f%%",
		e.name, checked, 100*worst["p50"], 100*worst["p90"], 100*worst["p99"], 100*worst["p99.9"])
}

// retention drops the partitions of the days before the cutoff.
func retention(t *testing.T, e *engine, fx *fixture) {
	ctx := context.Background()
	cutoff := fx.now.Add(-30 * 24 * time.Hour)
	dry, err := store.DropBefore(ctx, e.rec, e.cfg.Schema(), cutoff, true)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, tbl := range []string{store.AdminAuditTable, store.ClientTrafficTable, store.LagTable, store.DeliveriesTable, store.RollupTable, store.EventsTable} {
		for _, d := range fx.oldDays {
			want = append(want, tbl+"/"+d.Format("20060102"))
		}
	}
	slices.Sort(want)
	var got []string
	for _, p := range dry {
		got = append(got, p.Table+"/"+p.ID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("partitions before the cutoff: %v, want %v", got, want)
	}
	dropped, err := store.DropBefore(ctx, e.rec, e.cfg.Schema(), cutoff, false)
	if err != nil {
		t.Fatal(err)
	}
	var names []string // (Rows counts unmerged row versions: it depends on merge timing)
	for _, p := range dropped {
		names = append(names, p.Table+"/"+p.ID+"/"+p.Day.Format(time.DateOnly))
	}
	e.put("retention dropped", names)
	rest, err := store.DropBefore(ctx, e.rec, e.cfg.Schema(), cutoff, true)
	if err != nil || len(rest) != 0 {
		t.Errorf("after the drop: %v, %v", rest, err)
	}
	var n uint64
	if err := e.raw.QueryRow(ctx, "SELECT count() FROM "+store.Table(e.cfg.Database, store.DeliveriesTable)+" FINAL").Scan(&n); err != nil {
		t.Fatal(err)
	}
	recent := 0
	for _, v := range fx.latest {
		if !time.Unix(0, v.FirstSeenNs).Before(cutoff.Truncate(24 * time.Hour)) {
			recent++
		}
	}
	if n != uint64(recent) {
		t.Errorf("%d deliveries left, want the %d recent ones", n, recent)
	}
	e.put("deliveries after retention", n)
	recentAdmin, recentTraffic, recentLag := 0, 0, 0
	for _, l := range fx.lag {
		if !time.Unix(l.Minute, 0).Before(cutoff.Truncate(24 * time.Hour)) {
			recentLag++
		}
	}
	for _, a := range fx.admin {
		if !a.Event.Time.Before(cutoff.Truncate(24 * time.Hour)) {
			recentAdmin++
		}
	}
	for _, tr := range fx.traffic {
		if !tr.WindowStart.Before(cutoff.Truncate(24 * time.Hour)) {
			recentTraffic++
		}
	}
	for tbl, want := range map[string]int{store.AdminAuditTable: recentAdmin, store.ClientTrafficTable: recentTraffic, store.LagTable: recentLag} {
		if err := e.raw.QueryRow(ctx, "SELECT count() FROM "+store.Table(e.cfg.Database, tbl)+" FINAL").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != uint64(want) || want == 0 {
			t.Errorf("%s after retention: %d rows, want the %d recent ones", tbl, n, want)
		}
	}
}
