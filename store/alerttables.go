package store

// Tables of the alerts evaluator (`kaudit alerts`, package alerts),
// inside the configured database (migration 000030).
const (
	// AlertsTable holds one row per version of an alert episode, with its
	// evidence (ReplacingMergeTree(version); read with FINAL).
	AlertsTable = "alerts"
	// SLOStatusTable holds the latest evaluation of each SLO.
	SLOStatusTable = "slo_status"
)
