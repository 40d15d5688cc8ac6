package web

import (
	"html/template"
	"time"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/report"
)

// funcs are the template functions.
var funcs = template.FuncMap{
	"micros":      report.FormatMicros,
	"percent":     report.FormatPercent,
	"statusClass": statusClass,
	"utc":         formatUTC,
	"int64f":      func(i int64) float64 { return float64(i) },
	"bytes":       report.FormatBytes,
	"div":         func(a, b float64) float64 { return a / b },
}

// statusClass is the CSS class of a verdict status: ok, warn or bad.
func statusClass(s codecs.Status) string {
	switch s {
	case codecs.StatusDelivered:
		return "ok"
	case codecs.StatusLate, codecs.StatusDuplicate, codecs.StatusUnauditedProducer:
		return "warn"
	default:
		return "bad"
	}
}

// formatUTC renders Unix nanoseconds as a UTC time, "-" for zero.
func formatUTC(ns int64) string {
	if ns <= 0 {
		return "-"
	}
	return time.Unix(0, ns).UTC().Format(time.DateTime)
}
