package e2e_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kaudit/kaudit/alerts"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/internal/testing/alerttest"
	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/processors/expectations"
	"github.com/kaudit/kaudit/store"
	"github.com/kaudit/kaudit/web"
)

// TestWebAlerts drives the dashboard's alerts page with headless Chromium
// after an evaluator ran over three hours of one message a second on
// shop.orders, three groups held to 99.9% completeness, one page rule
// (1h/5m): billing is healthy, search lost ten minutes two hours ago (an
// alert that fired and resolved), archiver stopped eight minutes ago (an
// alert firing now). The page must show each group's SLO state and
// completeness as the scenario implies, the two alerts, and sample links
// that open the trails of messages the scenario lost.
func TestWebAlerts(t *testing.T) {
	cfg, conn := chtest.Migrated(t)
	const topic = "shop.orders"
	deadline := 2 * time.Minute
	end := time.Now().Truncate(time.Minute)
	start := end.Add(-3 * time.Hour)
	searchFrom, searchTo := end.Add(-2*time.Hour), end.Add(-110*time.Minute)
	archiverFrom := end.Add(-8 * time.Minute)
	sc := &alerttest.Scenario{Topic: topic, Deadline: deadline, Sweep: time.Second, Groups: map[string]alerttest.Behaviour{
		"billing":  alerttest.Steady(10 * time.Millisecond),
		"search":   alerttest.Stops(alerttest.Steady(20*time.Millisecond), searchFrom, searchTo),
		"archiver": alerttest.Stops(alerttest.Steady(30*time.Millisecond), archiverFrom, end.Add(time.Hour)),
	}}
	sc.Generate(start, end)

	now := start
	exps := []*expectations.Expectation{{Topic: topic, Groups: []string{"billing", "search", "archiver"},
		Deadline: expectations.Duration(deadline), Completeness: 99.9}}
	ev, err := alerts.New(conn, alerts.Config{
		Database:     cfg.Database,
		Expectations: func(context.Context) ([]*expectations.Expectation, error) { return exps, nil },
		Rules:        []alerts.Rule{alerts.DefaultRules[0]},
		Samples:      3,
		Refresher:    store.NewRefresher(conn, store.RefresherConfig{Database: cfg.Database}),
		Now:          func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	for now = start.Add(30 * time.Minute); !now.After(end); now = now.Add(5 * time.Minute) {
		sc.WriteUntil(t, conn, cfg.Database, now)
		if _, err := ev.Evaluate(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	now = end
	lost := sc.State("archiver", end)

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
		chromedp.Flag("disable-sync", true), chromedp.WindowSize(1320, 1000), chromedp.UserDataDir(t.TempDir()))
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

	// From the overview, the header's link opens the alerts page.
	run("open alerts", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`nav.pages a[href="/alerts"]`)),
		chromedp.Click(chromedp.CSS(`nav.pages a[href="/alerts"]`)), chromedp.WaitVisible(chromedp.ID("slo-status")))

	// SLO status: the state and the completeness over the SLO window (all
	// three hours) follow from the scenario.
	for _, g := range []string{"billing", "search", "archiver"} {
		state := sc.State(g, end)
		bad := 0
		for _, v := range state {
			if v.Status == codecs.StatusLost || v.Status == codecs.StatusLate {
				bad++
			}
		}
		row := fmt.Sprintf(`#slo-status tr[data-group=%q][data-slo="completeness"] `, g)
		wantState := "ok"
		if g == "archiver" {
			wantState = "page"
		}
		if got := text(row + `[data-k="state"]`); got != wantState {
			t.Errorf("%s: state %q, want %q", g, got, wantState)
		}
		// Every message of the 3 hours was decided except the archiver's
		// last ones, whose deadline has not passed.
		judged := len(state)
		want := fmt.Sprintf("%.3f%%", 100*float64(judged-bad)/float64(judged))
		if got := text(row + `[data-k="measured"]`); got != want {
			t.Errorf("%s: measured %q, want %q (%d bad of %d)", g, got, want, bad, judged)
		}
		if got := text(row + `[data-k="objective"]`); got != "completeness 99.9% over 30d" {
			t.Errorf("%s: objective %q", g, got)
		}
	}
	if got := text("#firing-count"); got != "1 firing" {
		t.Errorf("firing count %q, want 1 firing", got)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(testout(t), "alerts.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}

	// History: the archiver's alert firing, the search one resolved.
	archiverRow := `#alert-history tr[data-group="archiver"][data-state="firing"]`
	if got := text(archiverRow + ` [data-k="ended"]`); got != "firing" {
		t.Errorf("archiver alert ended %q, want firing", got)
	}
	if got := text(`#alert-history tr[data-group="search"][data-state="resolved"] [data-k="ended"]`); got == "firing" || got == "" {
		t.Errorf("search alert ended %q, want a time", got)
	}
	rows, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.ID("alert-history")))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(rows, "data-id="); n != 2 {
		t.Errorf("alert history lists %d alerts, want 2:\n%s", n, rows)
	}
	wantLost := 0
	for _, v := range lost {
		if v.Status == codecs.StatusLost {
			wantLost++
		}
	}
	if got := text(archiverRow + ` [data-k="lost"]`); got != fmt.Sprint(wantLost) {
		t.Errorf("archiver alert lost %q, want %d", got, wantLost)
	}

	// The first sample opens the trail of a message the archiver lost.
	sample := text(archiverRow + ` a.sample`)
	if v, ok := lost[sample]; !ok || v.Status != codecs.StatusLost {
		t.Fatalf("sample %q is not a LOST message of archiver", sample)
	}
	run("open sample", chromedp.Click(chromedp.CSS(archiverRow+` a.sample`)), chromedp.WaitVisible(chromedp.ID("trail-id-shown")))
	if id, status := text("#trail-id-shown"), text(`tr[data-group="archiver"] [data-k="status"]`); id != sample || status != "LOST" {
		t.Errorf("trail page: id %q, archiver status %q; want %q LOST", id, status, sample)
	}
}
