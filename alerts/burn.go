package alerts

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Severities of the default rules.
const (
	SeverityPage   = "page"
	SeverityTicket = "ticket"
)

// Rule is one multi-window, multi-burn-rate condition (Google's SRE
// workbook, "Alerting on SLOs"): it holds when the error budget burns at
// least Threshold times the sustainable rate over both the Long and the
// Short window. The long window makes one bad minute too little to fire;
// the short one makes the alert stop soon after the errors stop.
type Rule struct {
	Severity string
	// Long and Short are whole minutes (the rollups' resolution).
	Long, Short time.Duration
	// BudgetSpent is the share of the SLO window's error budget that
	// burning at the threshold for Long consumes; the threshold is
	// BudgetSpent × SLO window / Long (0.02 over 1h of 30 days: 14.4).
	BudgetSpent float64
}

// DefaultRules are the SRE workbook's recommendation: page when 2% of a
// 30-day budget burns in an hour (14.4×, 1h and 5m) or 5% in six hours
// (6×, 6h and 30m); open a ticket when 10% burns in three days (1×, 3d and
// 6h).
var DefaultRules = []Rule{
	{Severity: SeverityPage, Long: time.Hour, Short: 5 * time.Minute, BudgetSpent: 0.02},
	{Severity: SeverityPage, Long: 6 * time.Hour, Short: 30 * time.Minute, BudgetSpent: 0.05},
	{Severity: SeverityTicket, Long: 3 * 24 * time.Hour, Short: 6 * time.Hour, BudgetSpent: 0.10},
}

// Threshold is the burn rate at which the rule fires for an SLO measured
// over sloWindow.
func (r Rule) Threshold(sloWindow time.Duration) float64 {
	if r.Long <= 0 {
		return math.Inf(1)
	}
	return r.BudgetSpent * float64(sloWindow) / float64(r.Long)
}

// Validate checks that the windows are whole minutes, the short one
// shorter than the long one, and the budget share in (0, 1].
func (r Rule) Validate() error {
	switch {
	case r.Severity == "":
		return fmt.Errorf("alerts: rule %s: no severity", r)
	case r.Short < time.Minute || r.Long < time.Minute || r.Short%time.Minute != 0 || r.Long%time.Minute != 0:
		return fmt.Errorf("alerts: rule %s: windows must be whole minutes", r)
	case r.Short >= r.Long:
		return fmt.Errorf("alerts: rule %s: the short window must be shorter than the long one", r)
	case !(r.BudgetSpent > 0 && r.BudgetSpent <= 1):
		return fmt.Errorf("alerts: rule %s: budget share must be in (0, 1]", r)
	}
	return nil
}

// String writes the rule as ParseRule reads it: "page:1h/5m:2%".
func (r Rule) String() string {
	return fmt.Sprintf("%s:%s/%s:%s%%", r.Severity, shortDuration(r.Long), shortDuration(r.Short),
		strconv.FormatFloat(r.BudgetSpent*100, 'f', -1, 64))
}

// ParseRule reads "severity:long/short:budget%", e.g. "page:1h/5m:2%" or
// "ticket:3d/6h:10%".
func ParseRule(s string) (Rule, error) {
	parts := strings.Split(strings.TrimSpace(s), ":")
	if len(parts) != 3 {
		return Rule{}, fmt.Errorf("alerts: rule %q: want severity:long/short:budget%%, e.g. page:1h/5m:2%%", s)
	}
	long, short, ok := strings.Cut(parts[1], "/")
	if !ok {
		return Rule{}, fmt.Errorf("alerts: rule %q: want the windows as long/short, e.g. 1h/5m", s)
	}
	var r Rule
	var err error
	r.Severity = parts[0]
	if r.Long, err = parseDays(long); err != nil {
		return Rule{}, fmt.Errorf("alerts: rule %q: %w", s, err)
	}
	if r.Short, err = parseDays(short); err != nil {
		return Rule{}, fmt.Errorf("alerts: rule %q: %w", s, err)
	}
	pct, err := strconv.ParseFloat(strings.TrimSuffix(parts[2], "%"), 64)
	if err != nil {
		return Rule{}, fmt.Errorf("alerts: rule %q: budget share: %w", s, err)
	}
	r.BudgetSpent = pct / 100
	return r, r.Validate()
}

// parseDays is time.ParseDuration with a leading number of days ("3d").
func parseDays(s string) (time.Duration, error) {
	days, rest, ok := strings.Cut(s, "d")
	if !ok {
		return time.ParseDuration(s)
	}
	n, err := strconv.ParseUint(days, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	d := time.Duration(n) * 24 * time.Hour
	if rest != "" {
		r, err := time.ParseDuration(rest)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		d += r
	}
	return d, nil
}

// shortDuration writes 3d, 6h, 5m, 1h30m rather than 72h0m0s.
func shortDuration(d time.Duration) string {
	var b strings.Builder
	if days := d / (24 * time.Hour); days > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", days)
	}
	if h := d / time.Hour; h > 0 {
		fmt.Fprintf(&b, "%dh", h)
		d -= h * time.Hour
	}
	if m := d / time.Minute; m > 0 {
		fmt.Fprintf(&b, "%dm", m)
		d -= m * time.Minute
	}
	if d > 0 || b.Len() == 0 {
		b.WriteString(d.String())
	}
	return b.String()
}

// Minute holds the counts of the messages of one topic and group first
// seen in one minute: Total is the messages the SLO judges, Bad those
// that broke it (for completeness Lost + Late; for latency the messages
// slower than the target).
type Minute struct {
	Start            time.Time
	Total, Bad       uint64
	Lost, Late, Slow uint64
}

// Window is the sum of the minutes of a window.
type Window struct {
	Total, Bad       uint64
	Lost, Late, Slow uint64
}

// ErrorRate is Bad / Total, 0 without messages.
func (w Window) ErrorRate() float64 {
	if w.Total == 0 {
		return 0
	}
	return float64(w.Bad) / float64(w.Total)
}

// BurnRate is how many times faster than sustainable the window spends an
// error budget of budget (the allowed error rate, e.g. 0.001 for 99.9%):
// 1 spends exactly the budget over the SLO window. Without bad messages it
// is 0; with a zero budget (a 100% objective) any bad message is an
// infinite burn.
func (w Window) BurnRate(budget float64) float64 {
	if w.Bad == 0 {
		return 0
	}
	if budget <= 0 {
		return math.Inf(1)
	}
	return w.ErrorRate() / budget
}

// Sum adds the minutes of the window of length d that ends with the
// minute holding now: the d/1m minutes starting in (now-d, now],
// counted by their start.
func Sum(minutes []Minute, now time.Time, d time.Duration) Window {
	last := now.Truncate(time.Minute)
	first := last.Add(-d + time.Minute)
	var w Window
	for _, m := range minutes {
		if m.Start.Before(first) || m.Start.After(last) {
			continue
		}
		w.Total += m.Total
		w.Bad += m.Bad
		w.Lost += m.Lost
		w.Late += m.Late
		w.Slow += m.Slow
	}
	return w
}

// RuleResult is a rule evaluated on an SLO's minutes.
type RuleResult struct {
	Rule
	Long, Short         Window
	BurnLong, BurnShort float64
	Threshold           float64
	// Firing: both burn rates reach the threshold.
	Firing bool
}

// Check evaluates rules at now on the minutes of an SLO whose allowed
// error rate is budget and whose window is sloWindow.
func Check(rules []Rule, minutes []Minute, now time.Time, budget float64, sloWindow time.Duration) []RuleResult {
	out := make([]RuleResult, len(rules))
	for i, r := range rules {
		res := RuleResult{Rule: r, Threshold: r.Threshold(sloWindow)}
		res.Long = Sum(minutes, now, r.Long)
		res.Short = Sum(minutes, now, r.Short)
		res.BurnLong, res.BurnShort = res.Long.BurnRate(budget), res.Short.BurnRate(budget)
		res.Firing = res.Long.Bad > 0 && res.Short.Bad > 0 &&
			res.BurnLong >= res.Threshold && res.BurnShort >= res.Threshold
		out[i] = res
	}
	return out
}

// Longest is the longest window of rules.
func Longest(rules []Rule) time.Duration {
	var d time.Duration
	for _, r := range rules {
		d = max(d, r.Long)
	}
	return d
}

// sortMinutes orders minutes by start.
func sortMinutes(ms []Minute) {
	slices.SortFunc(ms, func(a, b Minute) int { return a.Start.Compare(b.Start) })
}
