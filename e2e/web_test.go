package e2e_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/chromedp/chromedp"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/internal/testing/itest"
	"github.com/kaudit/kaudit/report"
	"github.com/kaudit/kaudit/sinks"
	chsink "github.com/kaudit/kaudit/sinks/clickhouse"
	"github.com/kaudit/kaudit/store"
	"github.com/kaudit/kaudit/store/migrations"
	"github.com/kaudit/kaudit/web"
)

// hostileID is the trail lookup an attacker would try.
const hostileID = "' OR 1=1 --"

// verdictScenario is a set of verdicts with known counts per topic and
// group, written through the ClickHouse sink the way the sink runner
// writes them, including corrections (LOST, then LATE for the same
// message) and a re-written batch.
type verdictScenario struct {
	// want is, per "topic/group", the counts the report must show.
	want map[string]report.Counts
	// lateID is a message corrected from LOST to LATE, with raw events.
	lateID string
}

func writeVerdictScenario(t *testing.T, conn driver.Conn, db string, now time.Time) verdictScenario {
	t.Helper()
	sink := chsink.New(conn, chsink.Config{Database: db})
	sc := verdictScenario{want: map[string]report.Counts{}, lateID: "late-1"}
	start := now.Add(-10 * time.Minute).Truncate(time.Minute)
	var first, second []codecs.Verdict
	var events []sinks.EventRecord
	n := 0
	add := func(topic, group string, status codecs.Status, count int, e2eUs int64, cause string) {
		for i := range count {
			n++
			seen := start.Add(time.Duration(n%9)*time.Minute + time.Duration(i)*time.Second)
			v := codecs.Verdict{
				CorrelationID: fmt.Sprintf("%s-%s-%s-%d", topic, group, strings.ToLower(status.String()), i),
				Topic:         topic, Group: group, Status: status, Cause: cause, Seq: 1,
				Partition: int32(n % 3), Offset: int64(n),
				AckLatencyUs: 900 + int64(n), E2ELatencyUs: e2eUs, ConsumeCount: 1,
				FirstSeenNs: seen.UnixNano(), DecidedNs: seen.Add(2 * time.Second).UnixNano(),
			}
			switch status {
			case codecs.StatusLate:
				// Decided LOST at the deadline, corrected when the
				// consume finally came.
				v.CorrelationID = fmt.Sprintf("late-%d", i+1)
				lost := v
				lost.Status, lost.Cause, lost.E2ELatencyUs, lost.ConsumeCount = codecs.StatusLost, "not_consumed", -1, 0
				first = append(first, lost)
				v.Seq, v.DecidedNs = 2, seen.Add(45*time.Second).UnixNano()
				second = append(second, v)
				if i == 0 {
					send := seen.UnixNano()
					pos := sinks.Position{Topic: "kaudit.events", Offset: int64(n)}
					events = append(events,
						sinks.EventRecord{Event: codecs.Event{Kind: codecs.KindProduce, CorrelationID: v.CorrelationID, Topic: topic,
							Partition: v.Partition, Offset: v.Offset, ClientID: "shop", SendNs: send, AckNs: send + 900_000, PayloadSize: 64}, From: pos},
						sinks.EventRecord{Event: codecs.Event{Kind: codecs.KindConsume, CorrelationID: v.CorrelationID, Topic: topic,
							Partition: v.Partition, Offset: v.Offset, ClientID: "billing-1", Group: group, ConsumeNs: send + e2eUs*1000, PayloadSize: 64},
							From: sinks.Position{Topic: "kaudit.events", Offset: int64(n) + 1000}})
				}
			default:
				first = append(first, v)
			}
		}
		c := sc.want[topic+"/"+group]
		c.Messages += uint64(count)
		switch status {
		case codecs.StatusDelivered:
			c.Delivered += uint64(count)
		case codecs.StatusLost:
			c.Lost += uint64(count)
		case codecs.StatusLate:
			c.Late += uint64(count)
		case codecs.StatusDuplicate:
			c.Duplicate += uint64(count)
		case codecs.StatusCorrupted:
			c.Corrupted += uint64(count)
		case codecs.StatusProduceFailed:
			c.ProduceFailed += uint64(count)
		case codecs.StatusUnauditedProducer:
			c.UnauditedProducer += uint64(count)
		}
		sc.want[topic+"/"+group] = c
	}
	add("orders", "billing", codecs.StatusDelivered, 40, 15_000, "")
	add("orders", "billing", codecs.StatusLost, 3, -1, "not_consumed")
	add("orders", "billing", codecs.StatusLate, 2, 45_000_000, "")
	add("orders", "billing", codecs.StatusDuplicate, 2, 16_000, "redelivery")
	add("orders", "billing", codecs.StatusCorrupted, 1, 15_500, "digest mismatch")
	add("orders", "analytics", codecs.StatusDelivered, 45, 12_000, "")
	add("orders", "analytics", codecs.StatusProduceFailed, 1, -1, "produce error")
	add("payments", "billing", codecs.StatusDelivered, 10, 8_000, "")
	add("payments", "billing", codecs.StatusLost, 1, -1, "not_consumed")
	add("payments", "billing", codecs.StatusUnauditedProducer, 1, 9_000, "")

	ctx := context.Background()
	for _, b := range []*sinks.Batch{
		{Events: events, Verdicts: first},
		{Verdicts: second},
		{Verdicts: second}, // the sink runner retried a batch
	} {
		if err := sink.WriteBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	return sc
}

// newWebEnv is a migrated database with the verdict scenario.
func newWebEnv(t *testing.T) (store.Config, driver.Conn, verdictScenario) {
	t.Helper()
	cfg := chtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := migrations.Up(ctx, cfg, nil); err != nil {
		t.Fatal(err)
	}
	conn := chtest.Open(t, cfg)
	return cfg, conn, writeVerdictScenario(t, conn, cfg.Database, time.Now())
}

// chromium finds Debian's headless-capable Chromium.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium found: run ./scripts/deps.sh (or `make test`), which installs Debian's chromium package")
	return ""
}

// testout is the repository's test output folder (gitignored).
func testout(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "testout"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestWebDashboard(t *testing.T) {
	itest.Integration(t)
	cfg, conn, sc := newWebEnv(t)
	srv, err := web.New(conn, web.Config{
		Database:  cfg.Database,
		Refresher: store.NewRefresher(conn, store.RefresherConfig{Database: cfg.Database}),
		Logger:    testLogger(t),
	})
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

	// One deadline for the whole browser session (set on the allocator:
	// chromedp stops the browser when the context of its first use ends).
	tctx, cancelAll := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancelAll()
	actx, cancelAlloc := chromedp.NewExecAllocator(tctx,
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.WindowSize(1320, 1000),
		chromedp.UserDataDir(t.TempDir()),
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
	screenshot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		path := filepath.Join(testout(t), name)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
	}

	// The overview shows the scenario's numbers per topic and group.
	run("load overview", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("overview")))
	for key, c := range sc.want {
		topic, group, _ := strings.Cut(key, "/")
		row := fmt.Sprintf(`tr[data-topic=%q][data-group=%q] `, topic, group)
		for _, cell := range []struct {
			k    string
			want string
		}{
			{"expected", fmt.Sprint(c.Expected())},
			{"delivered", fmt.Sprint(c.Delivered)},
			{"lost", fmt.Sprint(c.Lost)},
			{"audit_gap", fmt.Sprint(c.AuditGap)},
			{"late", fmt.Sprint(c.Late)},
			{"duplicate", fmt.Sprint(c.Duplicate)},
			{"corrupted", fmt.Sprint(c.Corrupted)},
			{"produce_failed", fmt.Sprint(c.ProduceFailed)},
			{"unaudited", fmt.Sprint(c.UnauditedProducer)},
			{"completeness", report.FormatPercent(c.Completeness())},
		} {
			if got := text(row + `td[data-k="` + cell.k + `"]`); got != cell.want {
				t.Errorf("overview %s %s = %q, want %q", key, cell.k, got, cell.want)
			}
		}
	}
	if got := text(`tr[data-topic="orders"][data-group="analytics"] td[data-k="e2e_p50"]`); got != "12.00 ms" {
		t.Errorf("orders/analytics e2e p50 = %q, want 12.00 ms", got)
	}
	if got := text(`#totals [data-k="lost"]`); got != "4" {
		t.Errorf("total lost = %q, want 4", got)
	}
	charts, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("section.charts")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`class="s-p50"`, `class="s-p99"`, `class="s-lost"`, `class="s-late"`} {
		if !strings.Contains(charts, want) {
			t.Errorf("charts lack %s", want)
		}
	}
	screenshot("dashboard.png")

	// An anomaly links to its trail: LATE, with its events.
	run("open trail", chromedp.Click(chromedp.CSS(`a.trail-link[href="/trail?id=`+sc.lateID+`"]`)),
		chromedp.WaitVisible(chromedp.ID("trail-id-shown")))
	if id, status := text("#trail-id-shown"), text(`tr[data-group="billing"] [data-k="status"]`); id != sc.lateID || status != "LATE" {
		t.Errorf("trail page: id %q status %q, want %q LATE", id, status, sc.lateID)
	}
	events := text("table.events")
	for _, want := range []string{"produce acked", "consume", "end-to-end 45000.00 ms"} {
		if !strings.Contains(events, want) {
			t.Errorf("trail events lack %q:\n%s", want, events)
		}
	}
	screenshot("trail.png")

	// A hostile lookup, typed into the form, finds nothing.
	run("hostile lookup", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("trail-id")),
		chromedp.SendKeys(chromedp.ID("trail-id"), hostileID),
		chromedp.Submit(chromedp.ID("trail-id")),
		chromedp.WaitVisible(chromedp.ID("message-title")))
	if msg, echoed := text("#message-title"), text("#missing-id"); msg != "Not found" || echoed != hostileID {
		t.Errorf("hostile lookup: title %q, id %q; want Not found for %q", msg, echoed, hostileID)
	}
	body := text("main")
	for _, leak := range []string{"orders", "billing", "delivered", "lost", "error", "exception"} {
		if strings.Contains(strings.ToLower(body), leak) {
			t.Errorf("hostile lookup page shows %q:\n%s", leak, body)
		}
	}
	screenshot("trail-not-found.png")
}

func TestWebReportCLI(t *testing.T) {
	itest.Integration(t)
	cfg, _, sc := newWebEnv(t)
	bin := filepath.Join(t.TempDir(), "kaudit")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	build := exec.Command(goBin, "build", "-o", bin, "./cmd/kaudit")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/kaudit: %v\n%s", err, out)
	}
	runReport := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"report", "--clickhouse-addr", cfg.Addr, "--clickhouse-database", cfg.Database}, args...)...)
		cmd.Env = append(os.Environ(), "KAUDIT_CLICKHOUSE_USER=default", "KAUDIT_CLICKHOUSE_PASSWORD=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kaudit report %v: %v\n%s", args, err, out)
		}
		return string(out)
	}

	out := runReport("--since", "1h")
	t.Log("\n" + out)
	rows := parseReport(t, out)
	if len(rows) != len(sc.want) {
		t.Errorf("report has %d rows, want %d", len(rows), len(sc.want))
	}
	for key, c := range sc.want {
		got, ok := rows[key]
		if !ok {
			t.Errorf("report lacks %s", key)
			continue
		}
		want := []string{fmt.Sprint(c.Expected()), fmt.Sprint(c.Delivered), fmt.Sprint(c.Lost), fmt.Sprint(c.AuditGap), fmt.Sprint(c.Late),
			fmt.Sprint(c.Duplicate), fmt.Sprint(c.Corrupted), fmt.Sprint(c.ProduceFailed), fmt.Sprint(c.UnauditedProducer),
			report.FormatPercent(c.Completeness())}
		if strings.Join(got[:len(want)], " ") != strings.Join(want, " ") {
			t.Errorf("%s: report shows %v, want %v", key, got[:len(want)], want)
		}
	}
	// After the counts and completeness come ack p50 and p99, then e2e
	// p50, each as a number and a unit.
	if got := rows["orders/analytics"]; len(got) < 16 || got[14]+" "+got[15] != "12.00 ms" {
		t.Errorf("orders/analytics e2e p50: %v", got)
	}

	if rows := parseReport(t, runReport("--since", "1h", "--topic", "payments")); len(rows) != 1 || rows["payments/billing"] == nil {
		t.Errorf("--topic payments: %v", rows)
	}
	if rows := parseReport(t, runReport("--since", "1h", "--group", "analytics")); len(rows) != 1 || rows["orders/analytics"] == nil {
		t.Errorf("--group analytics: %v", rows)
	}
	if rows := parseReport(t, runReport("--since", "1h", "--topic", hostileID)); len(rows) != 0 {
		t.Errorf("hostile --topic: %v", rows)
	}
	// The scenario spans the 10 minutes before now: a 5-minute window
	// holds part of it.
	var all, recent uint64
	for _, c := range sc.want {
		all += c.Expected()
	}
	for _, f := range parseReport(t, runReport("--since", "5m", "--no-refresh")) {
		var n uint64
		fmt.Sscan(f[0], &n)
		recent += n
	}
	if recent == 0 || recent >= all {
		t.Errorf("--since 5m counts %d expected messages of the scenario's %d", recent, all)
	}
}

// parseReport returns the report table's rows by "topic/group", each as
// the fields after topic and group.
func parseReport(t *testing.T, out string) map[string][]string {
	t.Helper()
	rows := map[string][]string{}
	header := false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "TOPIC" {
			header = true
			if strings.Join(f[:12], " ") != "TOPIC GROUP EXPECTED DELIVERED LOST AUDIT_GAP LATE DUPLICATE CORRUPTED PRODUCE_FAILED UNAUDITED COMPLETENESS" {
				t.Fatalf("unexpected report header %q", line)
			}
			continue
		}
		if !header || len(f) < 3 || strings.HasPrefix(line, "(") {
			continue
		}
		rows[f[0]+"/"+f[1]] = f[2:]
	}
	if !header {
		t.Fatalf("no report table in:\n%s", out)
	}
	return rows
}
