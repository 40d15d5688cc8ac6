package e2e_test

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kaudit/kaudit/alerts"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/internal/testing/alerttest"
	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/internal/testing/doccmd"
	"github.com/kaudit/kaudit/internal/testing/kafkatest"
)

// The command lines of docs/alerts.md that this file runs.
const (
	docExpectSet  = "kaudit expect set orders billing --deadline 2m --completeness 99.99 --p99 5s"
	docExpectList = "kaudit expect list"
	docAlerts     = "kaudit alerts --brokers kafka:9092 --clickhouse-addr clickhouse:9000 --alertmanager-url http://alertmanager:9093 --dashboard-url http://kaudit:8080"
)

// buildKaudit builds ./cmd/kaudit into a temporary folder.
func buildKaudit(t *testing.T) string {
	t.Helper()
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
	return bin
}

// docArgs turns a documented command line into arguments for this test:
// the documented hosts become the test's servers.
func docArgs(line string, hosts map[string]string) []string {
	args := strings.Fields(strings.TrimPrefix(line, "kaudit "))
	for i, a := range args {
		if h, ok := hosts[a]; ok {
			args[i] = h
		}
	}
	return args
}

// TestAlertsCommandSurvivesSIGKILL runs the documented commands against
// a kfake broker, a real ClickHouse and a real Alertmanager: `kaudit
// expect set` declares the SLOs of group billing (which lost the last ten
// minutes of orders; search, not declared, lost nothing), `kaudit alerts`
// pages. Then the evaluator is killed with SIGKILL at random instants of
// its evaluation cycle (every 200 ms) and restarted, four times while the
// alert fires and three times right after `kaudit expect delete orders`
// removed the SLO. What a user sees: one incident, not one per restart
// (every firing notification and Alertmanager's alert carry the first
// alert's ID; ClickHouse holds one episode per severity), Alertmanager
// kept receiving it from each new process, and the resolution reached
// both the webhook and Alertmanager.
func TestAlertsCommandSurvivesSIGKILL(t *testing.T) {
	expectSet := doccmd.Line(t, "docs/alerts.md", docExpectSet)
	expectList := doccmd.Line(t, "docs/alerts.md", docExpectList)
	alertsLine := doccmd.Line(t, "docs/alerts.md", docAlerts)
	bin := buildKaudit(t)
	kafka := kafkatest.NewCluster(t)
	cfg, conn := chtest.Migrated(t)
	rcv := alerttest.NewReceiver(t)
	am := alerttest.StartAlertmanager(t, rcv.URL+"/am")
	brokers := strings.Join(kafka.ListenAddrs(), ",")

	// Two hours of orders; billing lost the last ten minutes.
	end := time.Now()
	sc := &alerttest.Scenario{Topic: "orders", Deadline: 5 * time.Second, Sweep: time.Second, Groups: map[string]alerttest.Behaviour{
		"billing": alerttest.Stops(alerttest.Steady(20*time.Millisecond), end.Add(-10*time.Minute), end.Add(time.Hour)),
		"search":  alerttest.Steady(20 * time.Millisecond),
	}}
	sc.Generate(end.Add(-2*time.Hour), end)
	sc.WriteUntil(t, conn, cfg.Database, end)
	lost := sc.State("billing", end)

	kaudit := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("kaudit %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	out := kaudit(append(docArgs(expectSet, nil), "--brokers", brokers)...)
	if !strings.Contains(out, "orders: SLO of each group: completeness 99.99%, p99 5s over 30d") {
		t.Errorf("kaudit expect set printed:\n%s", out)
	}
	out = kaudit(append(docArgs(expectList, nil), "--brokers", brokers)...)
	if !regexp.MustCompile(`(?m)^orders\s+\[billing\]\s+2m0s\s+\S+\s+completeness 99.99%, p99 5s over 30d$`).MatchString(out) {
		t.Errorf("kaudit expect list printed:\n%s", out)
	}

	args := append(docArgs(alertsLine, map[string]string{
		"kafka:9092": brokers, "clickhouse:9000": cfg.Addr, "http://alertmanager:9093": am.URL,
	}), "--clickhouse-database", cfg.Database, "--webhook-url", rcv.URL+"/hook", "--every", "200ms")
	var mu sync.Mutex
	var logs bytes.Buffer
	start := func() *exec.Cmd {
		t.Helper()
		cmd := exec.Command(bin, args...)
		mu.Lock()
		cmd.Stdout, cmd.Stderr = &syncWriter{&mu, &logs}, &syncWriter{&mu, &logs}
		mu.Unlock()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	cmd := start()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			mu.Lock()
			t.Logf("kaudit alerts output:\n%s", logs.String())
			mu.Unlock()
		}
	})

	isPage := func(a alerttest.AMAlert) bool {
		return a.Labels["topic"] == "orders" && a.Labels["group"] == "billing" && a.Labels["slo"] == "completeness" && a.Labels["severity"] == "page"
	}
	first := rcv.WaitAlertmanager(t, time.Minute, "the billing page", func(a alerttest.AMAlert) bool { return isPage(a) && a.Status == "firing" })
	id := first.Alert.Annotations["alert_id"]
	for _, s := range strings.Split(first.Alert.Annotations["sample_correlation_ids"], ",") {
		if v, ok := lost[s]; !ok || v.Status != codecs.StatusLost {
			t.Errorf("sample %q is not a LOST message of billing", s)
		}
	}

	// amPage returns Alertmanager's current billing page.
	amPage := func() (alerttest.AMAlert, bool) {
		for _, a := range am.Alerts(t) {
			if isPage(a) {
				return a, true
			}
		}
		return alerttest.AMAlert{}, false
	}
	kill := func() {
		t.Helper()
		time.Sleep(time.Duration(rand.Int64N(int64(250 * time.Millisecond)))) // a random instant of the cycle
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		cmd = start()
	}
	for range 4 {
		kill()
		restarted := time.Now()
		waitFor(t, 30*time.Second, "Alertmanager to receive the page from the restarted process", func() (bool, string) {
			a, ok := amPage()
			return ok && a.UpdatedAt.After(restarted) && a.Annotations["alert_id"] == id, a.Annotations["alert_id"] + " " + a.UpdatedAt.String()
		})
	}

	// Remove the SLO: the alert resolves, through three more kills.
	kaudit("expect", "delete", "orders", "--brokers", brokers)
	for range 3 {
		kill()
	}
	rcv.WaitAlertmanager(t, time.Minute, "the billing page resolved", func(a alerttest.AMAlert) bool { return isPage(a) && a.Status == "resolved" })
	var hooks []map[string]any
	waitFor(t, 30*time.Second, "the webhook to get the resolution", func() (bool, string) {
		hooks = nil
		resolved := false
		for _, b := range rcv.Webhooks() {
			var raw struct {
				Alerts []map[string]any `json:"alerts"`
			}
			if json.Unmarshal(b.Body, &raw) != nil {
				continue
			}
			for _, a := range raw.Alerts {
				hooks = append(hooks, a)
				if a["id"] == id && a["status"] == "resolved" {
					resolved = true
				}
			}
		}
		return resolved, ""
	})

	// One incident: every firing notification of the billing page has the
	// first ID, and ClickHouse holds one episode per SLO and severity.
	for _, a := range hooks {
		if a["slo"] == "completeness" && a["severity"] == "page" && a["id"] != id {
			t.Errorf("webhook got a second page episode %v (first %s)", a["id"], id)
		}
		if a["group"] != "billing" {
			t.Errorf("webhook got an alert of %v", a["group"])
		}
	}
	for _, r := range rcv.AlertmanagerAlerts() {
		if isPage(r.Alert) && r.Alert.Annotations["alert_id"] != id {
			t.Errorf("Alertmanager notified a second page episode %s (first %s)", r.Alert.Annotations["alert_id"], id)
		}
	}
	hist, err := alerts.History(t.Context(), conn, cfg.Database, alerts.HistoryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var episodes []string
	for _, a := range hist {
		episodes = append(episodes, string(a.SLO)+"/"+a.Severity+"/"+a.State)
	}
	slices.Sort(episodes)
	want := []string{"completeness/page/resolved", "completeness/ticket/resolved"}
	if !slices.Equal(episodes, want) {
		t.Errorf("ClickHouse holds the episodes %v, want %v", episodes, want)
	}
}

// syncWriter serializes writes of two pipes into one buffer.
type syncWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
