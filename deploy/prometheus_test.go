package deploy_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kaudit/kaudit/internal/testing/doccmd"
	"github.com/kaudit/kaudit/internal/testing/itest"
)

// correlatorMetrics are the correlator's metric names the rules may use
// (the metrics contract of issue 11; histograms with their series).
var correlatorMetrics = []string{
	"kaudit_verdicts_total",
	"kaudit_ack_latency_seconds_bucket", "kaudit_ack_latency_seconds_count", "kaudit_ack_latency_seconds_sum",
	"kaudit_e2e_latency_seconds_bucket", "kaudit_e2e_latency_seconds_count", "kaudit_e2e_latency_seconds_sum",
	"kaudit_oldest_unconsumed_age_seconds",
	"kaudit_audit_dropped_events_total",
	"kaudit_metric_series_folded_total",
}

// run runs a command in the module root and fails the test on a non-zero
// exit.
func run(t *testing.T, root string, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// TestPrometheusRules runs promtool on the shipped rules (the unit tests
// in deploy/prometheus/tests work out every expected value from their
// input series) and on the compose configuration of Prometheus, and amtool
// on Alertmanager's.
func TestPrometheusRules(t *testing.T) {
	itest.Need(t, "promtool", "amtool")
	root := moduleRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "alerts.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		doccmd.Line(t, "docs/alerts.md", "promtool check rules deploy/prometheus/rules/kaudit.rules.yml"),
		doccmd.Line(t, "docs/alerts.md", "promtool test rules deploy/prometheus/tests/kaudit.rules.test.yml"),
	} {
		out := run(t, root, strings.Fields(line)...)
		if !strings.Contains(out, "SUCCESS") {
			t.Errorf("%s:\n%s", line, out)
		}
	}
	out := run(t, root, "promtool", "check", "config", "deploy/prometheus/prometheus.yml")
	if !strings.Contains(out, "kaudit.rules.yml") {
		t.Errorf("promtool check config did not load the kaudit rules:\n%s", out)
	}
	run(t, root, "amtool", "check-config", "deploy/alertmanager/alertmanager.yml")

	// The routing example of docs/alerts.md, with its two receivers.
	_, rest, ok := strings.Cut(string(doc), "```yaml\nroute:")
	if !ok {
		t.Fatal("docs/alerts.md has no Alertmanager routing example")
	}
	example, _, _ := strings.Cut(rest, "```")
	amFile := filepath.Join(t.TempDir(), "alertmanager.yml")
	if err := os.WriteFile(amFile, []byte("route:"+example+"receivers:\n  - name: team-chat\n  - name: on-call\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, root, "amtool", "check-config", amFile)

	// The rules only use the correlator's metric names.
	rules, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus", "rules", "kaudit.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range regexp.MustCompile(`\bkaudit_[a-z0-9_]+`).FindAllString(string(rules), -1) {
		if !slices.Contains(correlatorMetrics, name) {
			t.Errorf("the rules use %s, which the correlator does not export", name)
		}
	}
}

// TestComposeAlerting checks the wiring of the alerting services of
// docker-compose.yml: Prometheus scrapes the services that serve metrics,
// loads the rules and alerts to the Alertmanager service; kaudit alerts
// sends to it; both are provisioned from deploy/.
func TestComposeAlerting(t *testing.T) {
	itest.Integration(t)
	root := moduleRoot(t)
	cf := loadCompose(t, root)
	for name, repo := range map[string]string{"prometheus": "prom/prometheus", "alertmanager": "prom/alertmanager"} {
		s, ok := cf.Services[name]
		if !ok {
			t.Fatalf("service %s missing", name)
		}
		if r, tag := splitImage(s.Image); r != repo || tag == "" || tag == "latest" {
			t.Errorf("service %s: image %q, want %s pinned", name, s.Image, repo)
		}
	}
	mounts := func(name string) map[string]string {
		out := map[string]string{}
		for _, v := range cf.Services[name].Volumes {
			if v.Kind == yaml.ScalarNode { // source:target[:mode] (docker-compose 1.x)
				if parts := strings.Split(v.Value, ":"); len(parts) >= 2 && filepath.IsAbs(parts[0]) {
					out[parts[1]] = parts[0]
				}
				continue
			}
			var m struct {
				Type, Source, Target string
			}
			if err := v.Decode(&m); err == nil && m.Type == "bind" {
				out[m.Target] = m.Source
			}
		}
		return out
	}
	if src := mounts("prometheus")["/etc/prometheus"]; !samePath(src, filepath.Join(root, "deploy", "prometheus")) {
		t.Errorf("prometheus mounts %q on /etc/prometheus, want deploy/prometheus", src)
	}
	if src := mounts("alertmanager")["/etc/alertmanager"]; !samePath(src, filepath.Join(root, "deploy", "alertmanager")) {
		t.Errorf("alertmanager mounts %q on /etc/alertmanager, want deploy/alertmanager", src)
	}
	argv := cf.Services["prometheus"].argv(t, "prometheus")
	if !slices.Contains(argv, "--config.file=/etc/prometheus/prometheus.yml") {
		t.Errorf("prometheus runs %v", argv)
	}
	argv = cf.Services["alertmanager"].argv(t, "alertmanager")
	if !slices.Contains(argv, "--config.file=/etc/alertmanager/alertmanager.yml") {
		t.Errorf("alertmanager runs %v", argv)
	}
	alerts := cf.Services["alerts"].argv(t, "alerts")
	if i := slices.Index(alerts, "--alertmanager-url"); i < 0 || i+1 >= len(alerts) || alerts[i+1] != "http://alertmanager:9093" {
		t.Errorf("kaudit alerts runs %v, want --alertmanager-url http://alertmanager:9093", alerts)
	}

	raw, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var pc struct {
		RuleFiles []string `yaml:"rule_files"`
		Alerting  struct {
			Alertmanagers []struct {
				StaticConfigs []struct {
					Targets []string `yaml:"targets"`
				} `yaml:"static_configs"`
			} `yaml:"alertmanagers"`
		} `yaml:"alerting"`
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &pc); err != nil {
		t.Fatal(err)
	}
	var targets, ams []string
	for _, sc := range pc.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	for _, a := range pc.Alerting.Alertmanagers {
		for _, st := range a.StaticConfigs {
			ams = append(ams, st.Targets...)
		}
	}
	if !slices.Equal(ams, []string{"alertmanager:9093"}) {
		t.Errorf("Prometheus alerts to %v, want alertmanager:9093", ams)
	}
	// Every scrape target is a service serving metrics on that port.
	for _, svc := range []string{"correlator", "sink"} {
		argv := cf.Services[svc].argv(t, svc)
		i := slices.Index(argv, "--metrics-addr")
		if i < 0 || i+1 >= len(argv) {
			t.Errorf("service %s serves no metrics", svc)
			continue
		}
		want := svc + argv[i+1] // ":9100"
		if !slices.Contains(targets, want) {
			t.Errorf("Prometheus does not scrape %s (targets %v)", want, targets)
		}
	}
	if len(pc.RuleFiles) == 0 {
		t.Error("Prometheus loads no rule files")
	}
}
