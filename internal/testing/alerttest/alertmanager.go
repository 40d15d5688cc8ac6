// Package alerttest gives alerting tests real components and known
// ground truth: a Prometheus Alertmanager process (Debian's
// prometheus-alertmanager, started on free ports with a webhook receiver
// pointing at a test HTTP server), a receiver recording what it is sent,
// and a Scenario of verdicts whose LOST, LATE and slow messages the test
// knows.
//
//	rcv := alerttest.NewReceiver(t)
//	am := alerttest.StartAlertmanager(t, rcv.URL+"/am")
//	// ... send alerts to am.URL ...
//	n := rcv.WaitAlertmanager(t, time.Minute, func(a alerttest.AMAlert) bool { return a.Labels["group"] == "billing" })
package alerttest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kaudit/kaudit/internal/testing/itest"
)

// Alertmanager is a running Alertmanager.
type Alertmanager struct {
	// URL is its base URL (http://127.0.0.1:port).
	URL string
	cmd *exec.Cmd
	log *bytes.Buffer
}

// StartAlertmanager starts Debian's prometheus-alertmanager (alertmanager
// elsewhere) on a free loopback port, without clustering, routing every
// alert to one webhook receiver at receiverURL (resolutions included),
// grouped by alertname, topic, group, slo and severity, with no group
// wait. It is stopped when the test ends.
func StartAlertmanager(t testing.TB, receiverURL string) *Alertmanager {
	t.Helper()
	itest.Integration(t)
	bin := ""
	for _, name := range []string{"prometheus-alertmanager", "alertmanager"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Fatal("alerttest: no prometheus-alertmanager on PATH: run ./scripts/deps.sh (make test does), which installs Debian's prometheus-alertmanager")
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`route:
  receiver: test
  group_by: [alertname, topic, group, slo, severity]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: test
    webhook_configs:
      - url: %q
        send_resolved: true
`, receiverURL)
	cfgPath := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	am := &Alertmanager{URL: "http://" + addr, log: new(bytes.Buffer)}
	am.cmd = exec.Command(bin, "--config.file="+cfgPath, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=warn")
	am.cmd.Stdout, am.cmd.Stderr = am.log, am.log
	if err := am.cmd.Start(); err != nil {
		t.Fatalf("alerttest: start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- am.cmd.Wait() }()
	t.Cleanup(func() {
		_ = am.cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = am.cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("alertmanager log:\n%s", am.log.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(am.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return am
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("alerttest: alertmanager exited: %v\n%s", err, am.log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("alerttest: alertmanager not ready at %s after 30s:\n%s", am.URL, am.log.String())
		}
	}
}

// Alerts returns the alerts Alertmanager holds (GET /api/v2/alerts),
// active or not; Status is their state ("active", "suppressed",
// "unprocessed").
func (am *Alertmanager) Alerts(t testing.TB) []AMAlert {
	t.Helper()
	resp, err := http.Get(am.URL + "/api/v2/alerts?active=true&silenced=true&inhibited=true&unprocessed=true")
	if err != nil {
		t.Fatalf("alerttest: list alerts: %v", err)
	}
	defer resp.Body.Close()
	var got []struct {
		AMAlert
		Status struct {
			State string `json:"state"`
		} `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatalf("alerttest: list alerts: %v", err)
	}
	out := make([]AMAlert, len(got))
	for i, a := range got {
		out[i] = a.AMAlert
		out[i].Status = a.Status.State
	}
	return out
}

// freeAddr returns a loopback host:port nothing listens on.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// AMAlert is an alert of an Alertmanager webhook notification or of its
// API.
type AMAlert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	// UpdatedAt is when Alertmanager last received the alert (API only).
	UpdatedAt time.Time `json:"updatedAt"`
}

// amNotification is the body of Alertmanager's webhook.
type amNotification struct {
	Status string    `json:"status"`
	Alerts []AMAlert `json:"alerts"`
}

// Received is one alert as a receiver got it.
type Received struct {
	At    time.Time
	Alert AMAlert
}

// Receiver is an HTTP server recording what Alertmanager (on /am) and
// kaudit's webhook (any other path, raw JSON bodies) send it.
type Receiver struct {
	URL string
	srv *httptest.Server

	mu       sync.Mutex
	am       []Received
	webhooks []WebhookBody
}

// WebhookBody is one body posted to the receiver outside /am.
type WebhookBody struct {
	At   time.Time
	Path string
	Body []byte
}

// NewReceiver starts a receiver, closed when the test ends.
func NewReceiver(t testing.TB) *Receiver {
	t.Helper()
	r := &Receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	r.URL = r.srv.URL
	t.Cleanup(r.srv.Close)
	return r
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(req.Body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if req.URL.Path == "/am" {
		var n amNotification
		if err := json.Unmarshal(buf.Bytes(), &n); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, a := range n.Alerts {
			r.am = append(r.am, Received{At: now, Alert: a})
		}
		return
	}
	r.webhooks = append(r.webhooks, WebhookBody{At: now, Path: req.URL.Path, Body: buf.Bytes()})
}

// AlertmanagerAlerts returns every alert Alertmanager notified so far.
func (r *Receiver) AlertmanagerAlerts() []Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Received(nil), r.am...)
}

// Webhooks returns every body posted outside /am so far.
func (r *Receiver) Webhooks() []WebhookBody {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]WebhookBody(nil), r.webhooks...)
}

// WaitAlertmanager polls until Alertmanager notified an alert matching
// match, and returns the first one.
func (r *Receiver) WaitAlertmanager(t testing.TB, timeout time.Duration, what string, match func(AMAlert) bool) Received {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, got := range r.AlertmanagerAlerts() {
			if match(got.Alert) {
				return got
			}
		}
		if time.Now().After(deadline) {
			var seen []string
			for _, got := range r.AlertmanagerAlerts() {
				seen = append(seen, fmt.Sprintf("%s %v", got.Alert.Status, got.Alert.Labels))
			}
			t.Fatalf("alerttest: after %s Alertmanager has not notified %s; it notified:\n%s", timeout, what, strings.Join(seen, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
