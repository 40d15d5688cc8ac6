package alerts

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// States of an alert.
const (
	StateFiring   = "firing"
	StateResolved = "resolved"
)

// AlertName is the alertname label of every alert the evaluator sends.
const AlertName = "KauditSLOBurnRate"

// Alert is one episode of an SLO being broken, with its evidence: from the
// moment a rule of its severity fired (StartsAt) to the evaluation that
// found none firing (EndsAt). Its fields are the latest evaluation's.
type Alert struct {
	// ID identifies the episode (the same in ClickHouse, the webhook and
	// Alertmanager's annotations).
	ID       string `json:"id"`
	Topic    string `json:"topic"`
	Group    string `json:"group"`
	SLO      Kind   `json:"slo"`
	Severity string `json:"severity"`
	State    string `json:"status"`
	// Objective is the SLO's percentage (completeness, or 99 for p99);
	// TargetSeconds the p99 target; SLOWindowSeconds its window.
	Objective        float64 `json:"objective"`
	TargetSeconds    float64 `json:"target_seconds,omitempty"`
	SLOWindowSeconds float64 `json:"slo_window_seconds"`
	// Measured over the rule's long window: the completeness in percent
	// (messages delivered on time), or the p99 end-to-end latency in
	// seconds (NaN when unknown).
	Measured float64 `json:"measured"`
	// The rule that fired (the first of its severity, in configuration
	// order) and its burn rates.
	Rule      string  `json:"rule"`
	Long      int64   `json:"long_window_seconds"`
	Short     int64   `json:"short_window_seconds"`
	Threshold float64 `json:"burn_threshold"`
	BurnLong  float64 `json:"burn_rate_long"`
	BurnShort float64 `json:"burn_rate_short"`
	// Counts over the long window: the messages the SLO judged, those
	// that broke it, and of them LOST, LATE and slower than the target.
	Messages uint64 `json:"messages"`
	Bad      uint64 `json:"bad"`
	Lost     uint64 `json:"lost"`
	Late     uint64 `json:"late"`
	Slow     uint64 `json:"slow"`
	// Samples are up to Config.Samples messages that broke the SLO in the
	// long window, latest first.
	Samples   []Sample  `json:"samples"`
	Summary   string    `json:"summary"`
	StartsAt  time.Time `json:"starts_at"`
	EndsAt    time.Time `json:"ends_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at"`
	// Delivered names the notifiers that accepted the current state.
	Delivered []string `json:"-"`
	// DashboardURL is the dashboard the notifications link to (not
	// stored).
	DashboardURL string `json:"-"`
	// version orders the stored rows of the alert.
	version uint64
}

// Sample is one message that broke an SLO.
type Sample struct {
	CorrelationID string `json:"correlation_id"`
	Status        string `json:"status"`
	// E2ELatencyUs is -1 for a message never consumed.
	E2ELatencyUs int64 `json:"e2e_latency_us"`
	// TrailURL is its trail on the dashboard (empty without a dashboard
	// URL).
	TrailURL string `json:"trail_url,omitempty"`
}

// alertID is the ID of the episode of an SLO and severity starting at t.
func alertID(s SLO, severity string, t time.Time) string {
	h := sha256.Sum256([]byte(s.key() + "\x00" + severity + "\x00" + strconv.FormatInt(t.UnixNano(), 10)))
	return hex.EncodeToString(h[:8])
}

// delivered reports whether the notifier named name accepted the current
// state.
func (a *Alert) delivered(name string) bool { return slices.Contains(a.Delivered, name) }

// SampleIDs returns the samples' correlation IDs.
func (a *Alert) SampleIDs() []string {
	ids := make([]string, len(a.Samples))
	for i, s := range a.Samples {
		ids[i] = s.CorrelationID
	}
	return ids
}

// ObjectiveText describes the SLO: "completeness 99.99% over 30d".
func (a *Alert) ObjectiveText() string { return a.slo().String() }

// MeasuredText describes the measured value: "97.52%" or "7.3s".
func (a *Alert) MeasuredText() string {
	if math.IsNaN(a.Measured) || math.IsInf(a.Measured, 0) {
		return "-"
	}
	if a.SLO == Latency {
		return (time.Duration(a.Measured * float64(time.Second))).Round(time.Millisecond).String()
	}
	return fmt.Sprintf("%.3f%%", a.Measured)
}

func (a *Alert) slo() SLO {
	return SLO{Topic: a.Topic, Group: a.Group, Kind: a.SLO, Objective: a.Objective,
		Target: time.Duration(a.TargetSeconds * float64(time.Second)), Window: time.Duration(a.SLOWindowSeconds * float64(time.Second))}
}

// summarize sets a.Summary from the other fields.
func (a *Alert) summarize() {
	var what string
	switch a.SLO {
	case Latency:
		what = fmt.Sprintf("%d of %d messages slower than %s", a.Slow, a.Messages, a.slo().Target)
	default:
		what = fmt.Sprintf("%d LOST and %d LATE of %d expected messages", a.Lost, a.Late, a.Messages)
	}
	a.Summary = fmt.Sprintf("%s / %s breaks %s: %s in the last %s (measured %s); burning the error budget %.1f× (over %s) and %.1f× (over %s), alert at %.1f×",
		a.Topic, a.Group, a.ObjectiveText(), what, shortDuration(time.Duration(a.Long)*time.Second), a.MeasuredText(),
		a.BurnLong, shortDuration(time.Duration(a.Long)*time.Second), a.BurnShort, shortDuration(time.Duration(a.Short)*time.Second), a.Threshold)
}

// trailURL is the dashboard page of a message's trail.
func trailURL(dashboard, id string) string {
	if dashboard == "" {
		return ""
	}
	return strings.TrimRight(dashboard, "/") + "/trail?" + url.Values{"id": {id}}.Encode()
}

// alertsURL is the dashboard page of the alerts.
func alertsURL(dashboard string) string {
	if dashboard == "" {
		return ""
	}
	return strings.TrimRight(dashboard, "/") + "/alerts"
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
