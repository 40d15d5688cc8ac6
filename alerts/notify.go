package alerts

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Notifier delivers alerts somewhere. Notify gets the alerts whose current
// state the notifier has not accepted yet (and, for a Resender, every
// firing alert); it returns nil only if it accepted all of them, which the
// evaluator then records, so each state is delivered at least once.
type Notifier interface {
	// Name identifies the notifier in the alerts' delivered column; keep
	// it stable across restarts.
	Name() string
	Notify(ctx context.Context, alerts []*Alert) error
}

// Resender is a Notifier that wants every firing alert at each
// evaluation, not only changes (Alertmanager forgets an alert that is not
// sent again before its endsAt).
type Resender interface {
	Notifier
	ResendFiring() bool
}

// DefaultHTTPTimeout bounds one notification request.
const DefaultHTTPTimeout = 10 * time.Second

// AlertmanagerConfig configures an Alertmanager notifier.
type AlertmanagerConfig struct {
	// URL is the Alertmanager's base URL (http://alertmanager:9093); the
	// alerts are posted to URL/api/v2/alerts.
	URL string
	// ValidFor is how long a firing alert stays active in Alertmanager if
	// it is not sent again (its endsAt is the evaluation time plus
	// ValidFor); default 4 minutes. Make it a few evaluation intervals,
	// so that Alertmanager resolves the alerts of an evaluator that died.
	ValidFor time.Duration
	// Client defaults to an http.Client with DefaultHTTPTimeout.
	Client *http.Client
}

// Alertmanager posts alerts to Prometheus Alertmanager's v2 API.
type Alertmanager struct {
	endpoint string
	name     string
	validFor time.Duration
	client   *http.Client
}

var _ Resender = (*Alertmanager)(nil)

// NewAlertmanager returns a notifier posting to cfg.URL.
func NewAlertmanager(cfg AlertmanagerConfig) (*Alertmanager, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("alerts: alertmanager URL %q: want http(s)://host:port", cfg.URL)
	}
	return &Alertmanager{
		endpoint: strings.TrimRight(cfg.URL, "/") + "/api/v2/alerts",
		name:     "alertmanager " + strings.TrimRight(cfg.URL, "/"),
		validFor: cmp.Or(cfg.ValidFor, 4*time.Minute),
		client:   cmp.Or(cfg.Client, &http.Client{Timeout: DefaultHTTPTimeout}),
	}, nil
}

// Name implements Notifier.
func (m *Alertmanager) Name() string { return m.name }

// ResendFiring implements Resender.
func (m *Alertmanager) ResendFiring() bool { return true }

// amAlert is an alert of Alertmanager's v2 API (postableAlert).
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Notify implements Notifier: firing alerts end ValidFor after their last
// evaluation, resolved ones at their resolution.
func (m *Alertmanager) Notify(ctx context.Context, alerts []*Alert) error {
	if len(alerts) == 0 {
		return nil
	}
	body := make([]amAlert, 0, len(alerts))
	for _, a := range alerts {
		ends := a.EndsAt
		if a.State == StateFiring {
			ends = a.UpdatedAt.Add(m.validFor)
		}
		body = append(body, amAlert{
			Labels:       Labels(a),
			Annotations:  Annotations(a),
			StartsAt:     a.StartsAt.UTC(),
			EndsAt:       ends.UTC(),
			GeneratorURL: alertsURL(a.DashboardURL),
		})
	}
	return postJSON(ctx, m.client, m.endpoint, body)
}

// Labels are an alert's Alertmanager labels: alertname, topic, group, slo
// and severity.
func Labels(a *Alert) map[string]string {
	return map[string]string{
		"alertname": AlertName,
		"topic":     a.Topic,
		"group":     a.Group,
		"slo":       string(a.SLO),
		"severity":  a.Severity,
	}
}

// Annotations are an alert's evidence as Alertmanager annotations.
func Annotations(a *Alert) map[string]string {
	var trails []string
	for _, s := range a.Samples {
		if s.TrailURL != "" {
			trails = append(trails, s.TrailURL)
		}
	}
	ann := map[string]string{
		"summary":                a.Summary,
		"alert_id":               a.ID,
		"objective":              a.ObjectiveText(),
		"measured":               a.MeasuredText(),
		"rule":                   a.Rule,
		"burn_rate":              fmt.Sprintf("%s over %s, %s over %s (fires at %s)", burnText(a.BurnLong), shortDuration(time.Duration(a.Long)*time.Second), burnText(a.BurnShort), shortDuration(time.Duration(a.Short)*time.Second), burnText(a.Threshold)),
		"messages":               strconv.FormatUint(a.Messages, 10),
		"lost":                   strconv.FormatUint(a.Lost, 10),
		"late":                   strconv.FormatUint(a.Late, 10),
		"slow":                   strconv.FormatUint(a.Slow, 10),
		"sample_correlation_ids": strings.Join(a.SampleIDs(), ","),
	}
	if len(trails) > 0 {
		ann["trail_urls"] = strings.Join(trails, "\n")
	}
	if u := alertsURL(a.DashboardURL); u != "" {
		ann["dashboard"] = u
	}
	return ann
}

func burnText(b float64) string {
	if math.IsInf(b, 1) {
		return "∞×"
	}
	return strconv.FormatFloat(b, 'f', 1, 64) + "×"
}

// WebhookConfig configures a Webhook.
type WebhookConfig struct {
	URL    string
	Client *http.Client
}

// Webhook posts each alert state change once (at least once) to a URL as
// JSON: {"version": "1", "alerts": [Alert, ...]}, every Alert with its
// status ("firing" or "resolved"), id, evidence and samples.
type Webhook struct {
	url, name string
	client    *http.Client
}

var _ Notifier = (*Webhook)(nil)

// NewWebhook returns a notifier posting to cfg.URL.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("alerts: webhook URL %q: want http(s)://host/path", cfg.URL)
	}
	return &Webhook{url: cfg.URL, name: "webhook " + cfg.URL, client: cmp.Or(cfg.Client, &http.Client{Timeout: DefaultHTTPTimeout})}, nil
}

// Name implements Notifier.
func (w *Webhook) Name() string { return w.name }

// WebhookPayload is the body the Webhook posts.
type WebhookPayload struct {
	Version string   `json:"version"`
	Alerts  []*Alert `json:"alerts"`
}

// Notify implements Notifier.
func (w *Webhook) Notify(ctx context.Context, alerts []*Alert) error {
	if len(alerts) == 0 {
		return nil
	}
	return postJSON(ctx, w.client, w.url, WebhookPayload{Version: "1", Alerts: alerts})
}

// postJSON posts v as JSON and wants a 2xx answer.
func postJSON(ctx context.Context, client *http.Client, to string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("alerts: encode for %s: %w", to, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, to, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("alerts: post to %s: %w", to, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "kaudit-alerts")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("alerts: post to %s: %w", to, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("alerts: post to %s: %s: %s", to, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// MarshalJSON writes the alert with its unknown and infinite numbers as
// null (JSON has neither NaN nor infinity).
func (a *Alert) MarshalJSON() ([]byte, error) {
	type plain Alert
	num := func(v float64) *float64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return &v
	}
	return json.Marshal(struct {
		*plain
		Objective   string            `json:"objective_text"`
		Measured    *float64          `json:"measured"`
		MeasuredTxt string            `json:"measured_text"`
		Threshold   *float64          `json:"burn_threshold"`
		BurnLong    *float64          `json:"burn_rate_long"`
		BurnShort   *float64          `json:"burn_rate_short"`
		Labels      map[string]string `json:"labels"`
		Dashboard   string            `json:"dashboard_url,omitempty"`
	}{(*plain)(a), a.ObjectiveText(), num(a.Measured), a.MeasuredText(), num(a.Threshold), num(a.BurnLong), num(a.BurnShort), Labels(a), alertsURL(a.DashboardURL)})
}
