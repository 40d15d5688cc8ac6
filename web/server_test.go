package web_test

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/sinks"
	chsink "github.com/kaudit/kaudit/sinks/clickhouse"
	"github.com/kaudit/kaudit/store"
	"github.com/kaudit/kaudit/store/migrations"
	"github.com/kaudit/kaudit/web"
)

func TestMain(m *testing.M) { chtest.Main(m) }

// now is the dashboard's clock in these tests.
var now = time.Date(2026, 5, 1, 12, 30, 0, 0, time.UTC)

// fixture writes a scenario with known verdicts and returns a dashboard on
// it: topic orders, group billing has 5 delivered, 2 lost, 1 late (written
// as LOST, then corrected), 1 duplicate; group search 3 delivered; topic
// payments, group billing 1 corrupted and 1 lost with cause audit_gap.
func fixture(t *testing.T) (*web.Server, driver.Conn) {
	t.Helper()
	cfg := chtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := migrations.Up(ctx, cfg, nil); err != nil {
		t.Fatal(err)
	}
	conn := chtest.Open(t, cfg)
	sink := chsink.New(conn, chsink.Config{Database: cfg.Database})
	seen := now.Add(-20 * time.Minute)
	n := 0
	v := func(topic, group string, s codecs.Status, e2e int64) codecs.Verdict {
		n++
		at := seen.Add(time.Duration(n) * 30 * time.Second)
		return codecs.Verdict{CorrelationID: fmt.Sprintf("msg-%02d", n), Topic: topic, Group: group, Status: s, Seq: 1,
			AckLatencyUs: 1000 + int64(n), E2ELatencyUs: e2e, FirstSeenNs: at.UnixNano(), DecidedNs: at.Add(time.Second).UnixNano(),
			Cause: map[codecs.Status]string{codecs.StatusDuplicate: "redelivery", codecs.StatusLost: "not consumed within 30s"}[s]}
	}
	var first []codecs.Verdict
	for range 5 {
		first = append(first, v("orders", "billing", codecs.StatusDelivered, 20_000))
	}
	first = append(first, v("orders", "billing", codecs.StatusLost, -1), v("orders", "billing", codecs.StatusLost, -1))
	lateOne := v("orders", "billing", codecs.StatusLost, -1)
	first = append(first, lateOne, v("orders", "billing", codecs.StatusDuplicate, 25_000))
	for range 3 {
		first = append(first, v("orders", "search", codecs.StatusDelivered, 40_000))
	}
	first = append(first, v("payments", "billing", codecs.StatusCorrupted, 30_000))
	gap := v("payments", "billing", codecs.StatusLost, -1)
	gap.Cause = store.CauseAuditGap
	first = append(first, gap)
	corrected := lateOne
	corrected.Status, corrected.Seq, corrected.E2ELatencyUs, corrected.Cause = codecs.StatusLate, 2, 45_000_000, "consumed 45s after send"
	for _, b := range []*sinks.Batch{{Verdicts: first}, {Verdicts: []codecs.Verdict{corrected}}} {
		if err := sink.WriteBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := web.New(conn, web.Config{
		Database:  cfg.Database,
		Refresher: store.NewRefresher(conn, store.RefresherConfig{Database: cfg.Database}),
		Now:       func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return srv, conn
}

func get(t *testing.T, h http.Handler, target string) (int, http.Header, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec.Code, rec.Header(), rec.Body.String()
}

// cell returns the text of the data-k cell of a row, or "" if missing.
func cell(body, topic, group, key string) string {
	row := regexp.MustCompile(`(?s)<tr data-topic="` + regexp.QuoteMeta(topic) + `" data-group="` + regexp.QuoteMeta(group) + `">(.*?)</tr>`).FindStringSubmatch(body)
	if row == nil {
		return ""
	}
	m := regexp.MustCompile(`data-k="` + key + `">([^<]*)<`).FindStringSubmatch(row[1])
	if m == nil {
		return ""
	}
	return m[1]
}

func TestOverview(t *testing.T) {
	srv, _ := fixture(t)
	code, h, body := get(t, srv, "/")
	if code != http.StatusOK {
		t.Fatalf("GET / = %d:\n%s", code, body)
	}
	if !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("no CSP header: %v", h)
	}
	for _, c := range []struct{ topic, group, key, want string }{
		{"orders", "billing", "expected", "9"},
		{"orders", "billing", "delivered", "5"},
		{"orders", "billing", "lost", "2"},
		{"orders", "billing", "late", "1"},
		{"orders", "billing", "duplicate", "1"},
		{"orders", "billing", "completeness", "77.78%"},
		{"orders", "search", "delivered", "3"},
		{"orders", "search", "completeness", "100.00%"},
		{"payments", "billing", "corrupted", "1"},
		{"payments", "billing", "audit_gap", "1"},
		{"payments", "billing", "lost", "0"},
		{"payments", "billing", "completeness", "100.00%"}, // the audit gap is not a loss
		{"orders", "billing", "audit_gap", "0"},
	} {
		if got := cell(body, c.topic, c.group, c.key); got != c.want {
			t.Errorf("%s/%s %s = %q, want %q", c.topic, c.group, c.key, got, c.want)
		}
	}
	// Latencies come from the rollups' histograms: within
	// store.LatencyRelativeError of the exact 20 ms and 40 ms.
	for _, c := range []struct {
		topic, group, key string
		exactMs           float64
	}{{"orders", "billing", "e2e_p50", 20}, {"orders", "search", "e2e_p99", 40}} {
		got := cell(body, c.topic, c.group, c.key)
		var ms float64
		if _, err := fmt.Sscanf(got, "%f ms", &ms); err != nil || math.Abs(ms-c.exactMs) > store.LatencyRelativeError*c.exactMs+0.005 {
			t.Errorf("%s/%s %s = %q, want %v ms ± %.2f%%", c.topic, c.group, c.key, got, c.exactMs, 100*store.LatencyRelativeError)
		}
	}
	for _, want := range []string{
		`data-k="expected">14<`, `data-k="lost">2<`, `data-k="audit_gap">1<`, `data-k="late">1<`, // totals
		`<polyline class="s-p50"`, `<rect class="s-lost"`, `<rect class="s-late"`,
		`href="/trail?id=msg-08"`, // the late message, among the anomalies
		`>consumed 45s after send<`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	// 3 LOST/LATE + 1 duplicate + 1 corrupted + 1 audit gap.
	if n := strings.Count(body, `class="trail-link"`); n != 6 {
		t.Errorf("%d anomalies listed, want 6", n)
	}
}

func TestOverviewFilters(t *testing.T) {
	srv, _ := fixture(t)
	_, _, body := get(t, srv, "/?topic=orders&group=search")
	if cell(body, "orders", "search", "delivered") != "3" || strings.Contains(body, `data-topic="payments"`) ||
		strings.Contains(body, `data-group="billing"`) {
		t.Errorf("filtered overview shows other groups:\n%s", body)
	}
	_, _, body = get(t, srv, "/?window=15m")
	if cell(body, "orders", "billing", "expected") == "9" {
		t.Error("15-minute window still counts messages first seen 20 minutes ago")
	}
	for _, q := range []string{
		"/?topic=" + url.QueryEscape("' OR 1=1 --"),
		"/?group=" + url.QueryEscape(`\' OR ''='`) + "&window=bogus",
		"/?topic=" + url.QueryEscape("orders') OR ('1'='1"),
	} {
		code, _, body := get(t, srv, q)
		if code != http.StatusOK || strings.Contains(body, "data-topic=") || !strings.Contains(body, `id="no-deliveries"`) {
			t.Errorf("GET %s = %d, shows data or no empty note", q, code)
		}
	}
	// An over-long filter cannot match and is ignored.
	if code, _, body := get(t, srv, "/?topic="+strings.Repeat("x", 5000)); code != http.StatusOK || cell(body, "orders", "billing", "lost") != "2" {
		t.Errorf("over-long topic filter: %d", code)
	}
}

func TestTrail(t *testing.T) {
	srv, _ := fixture(t)
	code, _, body := get(t, srv, "/trail?id=msg-08")
	if code != http.StatusOK {
		t.Fatalf("trail = %d:\n%s", code, body)
	}
	for _, want := range []string{">msg-08<", `data-k="status">LATE<`, "45000.00 ms", "consumed 45s after send"} {
		if !strings.Contains(body, want) {
			t.Errorf("trail page lacks %q", want)
		}
	}
	if strings.Contains(body, ">LOST<") {
		t.Error("trail page shows the superseded LOST verdict")
	}
}

func TestTrailHostileInputIsNotFound(t *testing.T) {
	srv, _ := fixture(t)
	for _, id := range []string{
		"' OR 1=1 --", `msg-08' OR '1'='1`, `\' OR 1=1 --`, "msg-08\x00", "\xff\xfe", "msg-%", "msg-0_",
		strings.Repeat("a", 300), "<script>alert(1)</script>",
	} {
		code, _, body := get(t, srv, "/trail?"+url.Values{"id": {id}}.Encode())
		if code != http.StatusNotFound || !strings.Contains(body, `<h1 id="message-title">Not found</h1>`) {
			t.Errorf("trail of %q: %d\n%s", id, code, body)
		}
		if strings.Contains(body, "msg-0") && !strings.HasPrefix(id, "msg-0") {
			t.Errorf("trail of %q shows data", id)
		}
		if strings.Contains(body, "<script>") {
			t.Errorf("trail of %q echoes markup unescaped", id)
		}
	}
}

func TestRoutes(t *testing.T) {
	srv, _ := fixture(t)
	code, h, body := get(t, srv, "/static/style.css")
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/css") || !strings.Contains(body, ".card") {
		t.Errorf("style.css: %d %v", code, h)
	}
	if code, _, _ := get(t, srv, "/nope"); code != http.StatusNotFound {
		t.Errorf("GET /nope = %d", code)
	}
	if code, _, body := get(t, srv, "/trail"); code != http.StatusOK || !strings.Contains(body, "Enter a correlation ID") {
		t.Errorf("GET /trail = %d", code)
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader("x")))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST / = %d", rec.Code)
	}
}

func TestServe(t *testing.T) {
	srv, _ := fixture(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "ok\n" {
		t.Errorf("healthz: %d %q", resp.StatusCode, b)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
}

func TestUnavailable(t *testing.T) {
	_, conn := fixture(t)
	srv, err := web.New(conn, web.Config{Database: "no_such_database_kaudit", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	code, _, body := get(t, srv, "/")
	if code != http.StatusServiceUnavailable || strings.Contains(body, "no_such_database_kaudit") {
		t.Errorf("overview of a missing database: %d\n%s", code, body)
	}
	if _, err := web.New(nil, web.Config{}); err == nil {
		t.Error("New(nil) did not fail")
	}
}
