package alerts_test

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/kaudit/kaudit/alerts"
)

// TestAlertJSON: JSON has no NaN or infinity; an alert whose p99 is
// unknown and whose budget is zero (100% objective) still encodes, with
// nulls, and carries its labels and trail links.
func TestAlertJSON(t *testing.T) {
	a := &alerts.Alert{ID: "abc", Topic: "orders", Group: "billing", SLO: alerts.Completeness, Severity: "page",
		State: alerts.StateFiring, Objective: 100, SLOWindowSeconds: 30 * 86400, Measured: math.NaN(),
		BurnLong: math.Inf(1), BurnShort: math.Inf(1), Threshold: 14.4, Lost: 3,
		Samples:  []alerts.Sample{{CorrelationID: "m-1", Status: "LOST", E2ELatencyUs: -1, TrailURL: "http://k/trail?id=m-1"}},
		StartsAt: time.Unix(1700000000, 0).UTC(), UpdatedAt: time.Unix(1700000060, 0).UTC()}
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["measured"] != nil || got["burn_rate_long"] != nil || got["burn_threshold"] != 14.4 || got["status"] != "firing" ||
		got["objective_text"] != "completeness 100% over 30d" || got["measured_text"] != "-" || got["lost"] != 3.0 {
		t.Errorf("encoded %s", b)
	}
	labels, _ := got["labels"].(map[string]any)
	if labels["alertname"] != alerts.AlertName || labels["slo"] != "completeness" || labels["severity"] != "page" || labels["group"] != "billing" {
		t.Errorf("labels %v", labels)
	}
	samples, _ := got["samples"].([]any)
	if len(samples) != 1 || samples[0].(map[string]any)["trail_url"] != "http://k/trail?id=m-1" {
		t.Errorf("samples %v", samples)
	}
}
