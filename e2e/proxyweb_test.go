package e2e_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/internal/testing/itest"
	"github.com/kaudit/kaudit/proxy"
	"github.com/kaudit/kaudit/proxy/traffic"
	"github.com/kaudit/kaudit/sinks"
	chsink "github.com/kaudit/kaudit/sinks/clickhouse"
	"github.com/kaudit/kaudit/web"
)

// TestWebProxyPages drives the Clients and Admin audit pages in headless
// Chromium over rows written through the ClickHouse sink: the traffic per
// topic, principal and direction, the client–topic graph, the audit with
// its filters, and a hostile filter that must match nothing.
func TestWebProxyPages(t *testing.T) {
	itest.Integration(t)
	cfg, conn := chtest.Migrated(t)
	now := time.Now().UTC().Truncate(time.Minute)
	rec := func(ago time.Duration, principal, client, group, topic, api string, records int64) traffic.Record {
		at := now.Add(-ago)
		return traffic.Record{Type: "traffic", WindowStart: at, WindowEnd: at.Add(time.Minute), Proxy: "p", Instance: "i",
			Principal: principal, ClientID: client, ClientAddress: "10.0.0.1", Group: group, Topic: topic, API: api,
			Requests: 1, Records: records, Bytes: records * 100}
	}
	b := &sinks.Batch{Traffic: []traffic.Record{
		rec(5*time.Minute, "User:alice", "app-a", "", "orders", "Produce", 200),
		rec(4*time.Minute, "User:alice", "app-a", "", "orders", "Produce", 100),
		rec(4*time.Minute, "User:bob", "billing-svc", "billing", "orders", "Fetch", 300),
		rec(3*time.Minute, "User:carol", "pay", "", "payments", "Produce", 40),
	}}
	row := func(id, method, principal, typ, name, op string, allowed bool, errName string, ago time.Duration) sinks.AdminRow {
		ev := proxy.AuditEvent{ID: id, Time: now.Add(-ago), Method: method, Principal: principal, ClientAddr: "10.0.0.9:1234", ClientID: "tool"}
		r := proxy.Resource{Type: typ, Name: name, PatternType: "LITERAL", Operation: op, Allowed: allowed, Error: errName}
		if !allowed {
			r.ErrorCode = 29
		}
		return sinks.AdminRow{Event: ev, Resource: r}
	}
	b.Admin = []sinks.AdminRow{
		row("e1", "CreateTopics", "User:alice", "TOPIC", "orders", "CREATE", true, "", 50*time.Minute),
		row("e2", "DeleteTopics", "User:bob", "TOPIC", "orders", "DELETE", false, "TOPIC_AUTHORIZATION_FAILED", 30*time.Minute),
		row("e3", "CreateAcls", "User:carol", "TOPIC", "payments", "ALTER", false, "CLUSTER_AUTHORIZATION_FAILED", 10*time.Minute),
	}
	if err := chsink.New(conn, chsink.Config{Database: cfg.Database}).WriteBatch(context.Background(), b); err != nil {
		t.Fatal(err)
	}

	srv, err := web.New(conn, web.Config{Database: cfg.Database, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("dashboard: %v", err)
		}
	})
	base := "http://" + ln.Addr().String()

	tctx, cancelAll := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancelAll()
	actx, cancelAlloc := chromedp.NewExecAllocator(tctx,
		chromedp.ExecPath(chromium(t)), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("hide-scrollbars", true),
		chromedp.WindowSize(1320, 1000), chromedp.UserDataDir(t.TempDir()),
	)
	defer cancelAlloc()
	ctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	textContent := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return s
	}
	count := func(sel string) int {
		t.Helper()
		nodes, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll(sel), chromedp.AtLeast(0)))
		if err != nil {
			t.Fatalf("count %s: %v", sel, err)
		}
		return len(nodes)
	}
	screenshot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(testout(t), name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Clients: who produces and consumes which topic, and how much.
	run("load clients", chromedp.Navigate(base+"/clients"), chromedp.WaitVisible(chromedp.ID("flows")))
	for _, c := range []struct{ topic, principal, direction, records string }{
		{"orders", "User:alice", "produce", "300"},
		{"orders", "User:bob", "consume", "300"},
		{"payments", "User:carol", "produce", "40"},
	} {
		sel := `#flows tr[data-topic="` + c.topic + `"][data-principal="` + c.principal + `"][data-direction="` + c.direction + `"] td[data-k="records"]`
		if got := text(sel); got != c.records {
			t.Errorf("clients: %s %s %s = %q records, want %s", c.principal, c.direction, c.topic, got, c.records)
		}
	}
	if got := text(`#flows tr[data-principal="User:alice"] td[data-k="per_minute"]`); got != "150" {
		t.Errorf("alice's records per minute = %q, want 150 (300 over 2 minutes)", got)
	}
	if n := count("#client-graph .g-producer"); n != 2 {
		t.Errorf("graph: %d producers, want 2", n)
	}
	if n := count("#client-graph .g-topic"); n != 2 {
		t.Errorf("graph: %d topics, want 2", n)
	}
	if n := count("#client-graph .g-consumer"); n != 1 {
		t.Errorf("graph: %d consumers, want 1", n)
	}
	if n := count("#client-graph path.edge"); n != 3 {
		t.Errorf("graph: %d edges, want 3", n)
	}
	if g := textContent("#client-graph"); !strings.Contains(g, "User:bob · billing-svc (billing)") || !strings.Contains(g, "orders") {
		t.Errorf("graph labels: %q", g)
	}
	screenshot("clients.png")
	run("filter by principal", chromedp.Click(chromedp.CSS(`#flows a[href*="principal=User%3Abob"]`)), chromedp.WaitVisible(chromedp.ID("filter-principal")))
	if n := count("#flows tbody tr"); n != 1 {
		t.Errorf("filtered by User:bob: %d rows, want 1", n)
	}

	// Admin audit: who did what, allowed or denied, with filters.
	run("load admin", chromedp.Navigate(base+"/admin"), chromedp.WaitVisible(chromedp.ID("audit")))
	if a, d := text("#n-allowed"), text("#n-denied"); a != "1" || d != "2" {
		t.Errorf("admin: %s allowed, %s denied; want 1 and 2", a, d)
	}
	if got := text(`#audit tr[data-method="DeleteTopics"]`); !strings.Contains(got, "User:bob") || !strings.Contains(got, "denied") || !strings.Contains(got, "TOPIC_AUTHORIZATION_FAILED") {
		t.Errorf("DeleteTopics row: %q", got)
	}
	screenshot("admin.png")
	// The filtered page is the one whose checkbox the server rendered
	// checked (a click sets the property, not the attribute): waiting for
	// #audit alone could count the rows of the page being left.
	run("denied only", chromedp.Click(chromedp.ID("f-denied")), chromedp.Click(chromedp.ID("f-apply")),
		chromedp.WaitVisible(chromedp.CSS("input#f-denied[checked]")), chromedp.WaitVisible(chromedp.ID("audit")))
	if n, allowedRows := count("#audit tbody tr"), count(`#audit tr[data-allowed="true"]`); n != 2 || allowedRows != 0 {
		t.Errorf("denied only: %d rows (%d allowed), want 2 denied", n, allowedRows)
	}
	run("hostile principal", chromedp.Navigate(base+"/admin"), chromedp.WaitVisible(chromedp.ID("f-principal")),
		chromedp.SendKeys(chromedp.ID("f-principal"), hostileID), chromedp.Click(chromedp.ID("f-apply")),
		chromedp.WaitVisible(chromedp.ID("no-audit")))
	if v := text("#f-principal"); v != "" && v != hostileID {
		t.Errorf("filter field shows %q", v)
	}
}
