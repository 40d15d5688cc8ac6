package alerts

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/kaudit/kaudit/store"
)

// Status is the latest evaluation of one SLO.
type Status struct {
	Topic, Group string
	SLO          Kind
	Objective    float64
	// TargetSeconds is the p99 target of a latency SLO.
	TargetSeconds    float64
	SLOWindowSeconds float64
	// Messages and Bad are counted over the rules' longest window.
	Messages, Bad uint64
	// Measured over the SLO window: completeness in percent, or the p99
	// latency in seconds; NaN when unknown.
	Measured float64
	// BudgetLeft is the share of the SLO window's error budget not yet
	// spent (negative when overspent); NaN when unknown (latency SLOs).
	BudgetLeft float64
	// Windows and BurnRates: the burn rate over each window the rules use,
	// shortest first ("5m", "1h", ...).
	Windows   []string
	BurnRates []float64
	// State is "ok", or the severities firing ("page", "page,ticket").
	State       string
	EvaluatedAt time.Time
	version     uint64
}

// ObjectiveText describes the SLO: "completeness 99.99% over 30d".
func (s *Status) ObjectiveText() string {
	return (&Alert{SLO: s.SLO, Objective: s.Objective, TargetSeconds: s.TargetSeconds, SLOWindowSeconds: s.SLOWindowSeconds}).ObjectiveText()
}

// MeasuredText describes the measured value: "97.520%" or "7.3s".
func (s *Status) MeasuredText() string {
	return (&Alert{SLO: s.SLO, Measured: s.Measured}).MeasuredText()
}

// writeAlerts stores one version of each alert.
func writeAlerts(ctx context.Context, conn driver.Conn, db string, alerts []*Alert) error {
	if len(alerts) == 0 {
		return nil
	}
	table := store.Table(db, store.AlertsTable)
	b, err := conn.PrepareBatch(ctx, fmt.Sprintf(insertAlertSQL, table))
	if err != nil {
		return fmt.Errorf("alerts: prepare insert into %s: %w", table, err)
	}
	defer b.Close()
	for _, a := range alerts {
		ids := a.SampleIDs()
		statuses := make([]string, len(a.Samples))
		lat := make([]int64, len(a.Samples))
		for i, s := range a.Samples {
			statuses[i], lat[i] = s.Status, s.E2ELatencyUs
		}
		delivered := a.Delivered
		if delivered == nil {
			delivered = []string{}
		}
		if err := b.Append(a.ID, a.Topic, a.Group, string(a.SLO), a.Severity, a.State, a.Objective, a.TargetSeconds,
			a.SLOWindowSeconds, a.Measured, a.Rule, a.Long, a.Short, a.Threshold, a.BurnLong, a.BurnShort,
			a.Messages, a.Bad, a.Lost, a.Late, a.Slow, ids, statuses, lat, a.Summary,
			dateTime(a.StartsAt), dateTime(a.EndsAt), dateTime(a.UpdatedAt), delivered, a.version); err != nil {
			return fmt.Errorf("alerts: append to %s: %w", table, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("alerts: send batch to %s: %w", table, err)
	}
	return nil
}

// dateTime is t for a DateTime column: the zero time is the epoch.
func dateTime(t time.Time) time.Time {
	if t.IsZero() || t.Unix() < 0 {
		return time.Unix(0, 0).UTC()
	}
	return t.UTC()
}

// readAlerts runs an alerts query and scans its rows.
func readAlerts(ctx context.Context, conn driver.Conn, table, q string, args ...any) ([]*Alert, error) {
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("alerts: read %s: %w", table, err)
	}
	defer rows.Close()
	var out []*Alert
	for rows.Next() {
		a := new(Alert)
		var slo string
		var ids, statuses []string
		var lat []int64
		if err := rows.Scan(&a.ID, &a.Topic, &a.Group, &slo, &a.Severity, &a.State, &a.Objective, &a.TargetSeconds,
			&a.SLOWindowSeconds, &a.Measured, &a.Rule, &a.Long, &a.Short, &a.Threshold, &a.BurnLong, &a.BurnShort,
			&a.Messages, &a.Bad, &a.Lost, &a.Late, &a.Slow, &ids, &statuses, &lat, &a.Summary,
			&a.StartsAt, &a.EndsAt, &a.UpdatedAt, &a.Delivered, &a.version); err != nil {
			return nil, fmt.Errorf("alerts: read %s: %w", table, err)
		}
		a.SLO = Kind(slo)
		if a.EndsAt.Unix() <= 0 {
			a.EndsAt = time.Time{}
		}
		for i, id := range ids {
			s := Sample{CorrelationID: id}
			if i < len(statuses) {
				s.Status = statuses[i]
			}
			if i < len(lat) {
				s.E2ELatencyUs = lat[i]
			}
			a.Samples = append(a.Samples, s)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("alerts: read %s: %w", table, err)
	}
	return out, nil
}

// loadOpen returns the firing alerts and those resolved since since.
func loadOpen(ctx context.Context, conn driver.Conn, db string, since time.Time) ([]*Alert, error) {
	return readAlerts(ctx, conn, store.Table(db, store.AlertsTable), qOpenAlerts.SQL(db), StateFiring, StateResolved, store.UnixSeconds(since))
}

// HistoryFilter selects alerts for History.
type HistoryFilter struct {
	// Topic and Group, when not empty, select one topic or group.
	Topic, Group string
	// Limit bounds the alerts returned (default 100).
	Limit int
}

// History returns the latest alerts stored in db, firing ones first, then
// the most recently started; the dashboard lists them.
func History(ctx context.Context, conn driver.Conn, db string, f HistoryFilter) ([]*Alert, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	return readAlerts(ctx, conn, store.Table(db, store.AlertsTable), qHistory.SQL(db), f.Topic, f.Topic, f.Group, f.Group, StateFiring, f.Limit)
}

// writeStatus stores one evaluation of each SLO.
func writeStatus(ctx context.Context, conn driver.Conn, db string, st []*Status) error {
	if len(st) == 0 {
		return nil
	}
	table := store.Table(db, store.SLOStatusTable)
	b, err := conn.PrepareBatch(ctx, fmt.Sprintf(insertStatusSQL, table))
	if err != nil {
		return fmt.Errorf("alerts: prepare insert into %s: %w", table, err)
	}
	defer b.Close()
	for _, s := range st {
		if err := b.Append(s.Topic, s.Group, string(s.SLO), s.Objective, s.TargetSeconds, s.SLOWindowSeconds,
			s.Messages, s.Bad, s.Measured, s.BudgetLeft, s.Windows, s.BurnRates, s.State, dateTime(s.EvaluatedAt), s.version); err != nil {
			return fmt.Errorf("alerts: append to %s: %w", table, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("alerts: send batch to %s: %w", table, err)
	}
	return nil
}

// Statuses returns the latest evaluation of every SLO evaluated in db,
// ordered by topic, group and SLO. An SLO that is no longer declared keeps
// its last row; EvaluatedAt tells.
func Statuses(ctx context.Context, conn driver.Conn, db string) ([]*Status, error) {
	table := store.Table(db, store.SLOStatusTable)
	rows, err := conn.Query(ctx, qStatus.SQL(db))
	if err != nil {
		return nil, fmt.Errorf("alerts: read %s: %w", table, err)
	}
	defer rows.Close()
	var out []*Status
	for rows.Next() {
		s := new(Status)
		var slo string
		if err := rows.Scan(&s.Topic, &s.Group, &slo, &s.Objective, &s.TargetSeconds, &s.SLOWindowSeconds,
			&s.Messages, &s.Bad, &s.Measured, &s.BudgetLeft, &s.Windows, &s.BurnRates, &s.State, &s.EvaluatedAt, &s.version); err != nil {
			return nil, fmt.Errorf("alerts: read %s: %w", table, err)
		}
		s.SLO = Kind(slo)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("alerts: read %s: %w", table, err)
	}
	return out, nil
}
