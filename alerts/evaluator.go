package alerts

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/kaudit/kaudit/processors/expectations"
	"github.com/kaudit/kaudit/store"
)

// Defaults of Config.
const (
	DefaultInterval = time.Minute
	DefaultSamples  = 10
	// resolvedRecovery is how far back a starting evaluator looks for
	// resolved alerts whose resolution may not have been delivered.
	resolvedRecovery = 24 * time.Hour
)

// Config configures an Evaluator. Zero fields take defaults.
type Config struct {
	// Database holds kaudit's tables (default store.DefaultDatabase).
	Database string
	// Expectations returns the declared expectations; their SLOs are
	// evaluated. When it fails, the last ones it returned are used.
	Expectations func(ctx context.Context) ([]*expectations.Expectation, error)
	// Rules are the burn-rate rules (default DefaultRules).
	Rules []Rule
	// Notifiers receive the alerts.
	Notifiers []Notifier
	// DashboardURL is the base URL of kaudit's dashboard
	// (http://kaudit:8080): notifications link to the alerts page and to
	// the sample messages' trails.
	DashboardURL string
	// Samples is the number of sample messages an alert carries (default
	// DefaultSamples).
	Samples int
	// Refresher, if set, brings the rollups up to date before each
	// evaluation; without one, something else must (kaudit web does).
	Refresher *store.Refresher
	// Interval is Run's period (default DefaultInterval).
	Interval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// OnChange, if set, is called with each alert that fired or resolved,
	// once the change is stored.
	OnChange func(*Alert)
	// Logger receives failures and state changes; nil discards.
	Logger *slog.Logger
}

// Evaluator evaluates the SLOs of the declared expectations on the
// ClickHouse rollups and raises, updates and resolves alerts. Its methods
// must not be called concurrently.
type Evaluator struct {
	conn driver.Conn
	cfg  Config
	log  *slog.Logger
	src  *source

	loaded  bool
	slos    []SLO
	firing  map[string]*Alert // by SLO key and severity
	pending []*Alert          // resolved, not yet delivered everywhere
	dirty   map[string]*Alert // changed since last stored, by ID
	untold  []*Alert          // state changes not yet given to OnChange
	version uint64
}

// Result describes one evaluation.
type Result struct {
	// SLOs is the number of SLOs evaluated.
	SLOs int
	// Firing are the alerts firing after the evaluation.
	Firing []*Alert
	// Fired and Resolved are the alerts that changed state.
	Fired, Resolved []*Alert
	// Statuses are the SLOs' evaluations.
	Statuses []*Status
}

// New returns an evaluator reading and writing ClickHouse through conn.
func New(conn driver.Conn, cfg Config) (*Evaluator, error) {
	if conn == nil {
		return nil, errors.New("alerts: no ClickHouse connection")
	}
	if cfg.Expectations == nil {
		return nil, errors.New("alerts: no source of expectations")
	}
	cfg.Database = cmp.Or(cfg.Database, store.DefaultDatabase)
	if len(cfg.Rules) == 0 {
		cfg.Rules = DefaultRules
	}
	for _, r := range cfg.Rules {
		if err := r.Validate(); err != nil {
			return nil, err
		}
	}
	names := map[string]bool{}
	for _, n := range cfg.Notifiers {
		if names[n.Name()] {
			return nil, fmt.Errorf("alerts: notifier %s given twice", n.Name())
		}
		names[n.Name()] = true
	}
	cfg.Samples = cmp.Or(cfg.Samples, DefaultSamples)
	cfg.Interval = cmp.Or(cfg.Interval, DefaultInterval)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Evaluator{
		conn: conn, cfg: cfg, log: log,
		src:    newSource(conn, cfg.Database),
		firing: map[string]*Alert{},
		dirty:  map[string]*Alert{},
	}, nil
}

// Run evaluates every Interval until ctx ends, logging failed
// evaluations, and returns nil when ctx ends.
func (e *Evaluator) Run(ctx context.Context) error {
	t := time.NewTicker(e.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := e.Evaluate(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("alerts: evaluation failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Evaluate runs one evaluation: it refreshes the rollups (with a
// Refresher), evaluates every SLO, stores the alerts that changed, sends
// the notifications due, then stores the SLOs' statuses. An SLO whose
// counts cannot be read keeps its alerts as they were; the error is
// returned after the others are done.
func (e *Evaluator) Evaluate(ctx context.Context) (Result, error) {
	now := e.cfg.Now()
	var res Result
	var errs []error
	e.src.newCycle()
	if err := e.prepare(ctx, now); err != nil {
		// Keep what Alertmanager shows alive while ClickHouse or Kafka
		// cannot be read.
		e.notify(ctx, now)
		return res, err
	}
	seen := map[string]bool{}
	for _, s := range e.slos {
		st, err := e.evaluate(ctx, s, now, &res)
		seen[s.key()] = true
		if err != nil {
			errs = append(errs, err)
			continue
		}
		res.Statuses = append(res.Statuses, st)
	}
	// Alerts of SLOs no longer declared resolve.
	for key, a := range e.firing {
		if !seen[a.slo().key()] {
			e.resolve(key, a, now, fmt.Sprintf("resolved: %s / %s: %s is no longer declared", a.Topic, a.Group, a.ObjectiveText()))
			res.Resolved = append(res.Resolved, a)
		}
	}
	res.SLOs = len(e.slos)
	e.untold = append(append(e.untold, res.Fired...), res.Resolved...)
	if err := e.store(ctx); err != nil {
		// Not stored, not sent: the next evaluation stores the changes
		// again before sending them.
		return res, errors.Join(append(errs, err)...)
	}
	for _, a := range e.untold {
		e.changed(a)
	}
	e.untold = nil
	e.notify(ctx, now)
	if err := e.store(ctx); err != nil {
		errs = append(errs, err)
	}
	e.forgetDelivered(now)
	if err := writeStatus(ctx, e.conn, e.cfg.Database, res.Statuses); err != nil {
		errs = append(errs, err)
	}
	for _, a := range e.firing {
		res.Firing = append(res.Firing, a)
	}
	slices.SortFunc(res.Firing, func(a, b *Alert) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Group, b.Group), cmp.Compare(a.SLO, b.SLO), cmp.Compare(a.Severity, b.Severity))
	})
	return res, errors.Join(errs...)
}

// prepare refreshes the rollups, takes over the stored alerts at the first
// evaluation and reads the SLOs.
func (e *Evaluator) prepare(ctx context.Context, now time.Time) error {
	if e.cfg.Refresher != nil {
		if _, err := e.cfg.Refresher.Refresh(ctx); err != nil {
			return fmt.Errorf("alerts: %w", err)
		}
	}
	if !e.loaded {
		open, err := loadOpen(ctx, e.conn, e.cfg.Database, now.Add(-resolvedRecovery))
		if err != nil {
			return err
		}
		for _, a := range open {
			e.version = max(e.version, a.version)
			a.DashboardURL = e.cfg.DashboardURL
			if a.State == StateFiring {
				e.firing[a.slo().key()+"\x00"+a.Severity] = a
			} else if !e.deliveredEverywhere(a) {
				e.pending = append(e.pending, a)
			}
		}
		e.loaded = true
		if len(open) > 0 {
			e.log.Info("alerts: took over stored alerts", "firing", len(e.firing), "undelivered_resolutions", len(e.pending))
		}
	}
	exps, err := e.cfg.Expectations(ctx)
	if err != nil {
		if e.slos == nil {
			return fmt.Errorf("alerts: read expectations: %w", err)
		}
		e.log.Warn("alerts: read expectations; using the last ones", "err", err)
		return nil
	}
	e.slos = FromExpectations(exps)
	if e.slos == nil {
		e.slos = []SLO{}
	}
	return nil
}

// evaluate evaluates one SLO and updates its alerts.
func (e *Evaluator) evaluate(ctx context.Context, s SLO, now time.Time, res *Result) (*Status, error) {
	last := now.Truncate(time.Minute)
	to := last.Add(time.Minute)
	minutes, err := e.src.minutes(ctx, s, to.Add(-Longest(e.cfg.Rules)), to)
	if err != nil {
		return nil, err
	}
	results := Check(e.cfg.Rules, minutes, now, s.Budget(), s.Window)

	var severities []string
	for _, r := range e.cfg.Rules {
		if !slices.Contains(severities, r.Severity) {
			severities = append(severities, r.Severity)
		}
	}
	var firing []string
	for _, sev := range severities {
		key := s.key() + "\x00" + sev
		var fired *RuleResult
		for i := range results {
			if results[i].Severity == sev && results[i].Firing {
				fired = &results[i]
				break
			}
		}
		a := e.firing[key]
		switch {
		case fired != nil:
			firing = append(firing, sev)
			isNew := a == nil
			if isNew {
				a = &Alert{ID: alertID(s, sev, now), Topic: s.Topic, Group: s.Group, SLO: s.Kind, Severity: sev,
					State: StateFiring, StartsAt: now, DashboardURL: e.cfg.DashboardURL}
			}
			if err := e.evidence(ctx, a, s, *fired, now); err != nil {
				return nil, err
			}
			e.firing[key] = a
			e.dirty[a.ID] = a
			if isNew {
				res.Fired = append(res.Fired, a)
			}
		case a != nil:
			e.resolve(key, a, now, fmt.Sprintf("resolved: %s / %s holds %s again", a.Topic, a.Group, a.ObjectiveText()))
			res.Resolved = append(res.Resolved, a)
		}
	}
	return e.status(ctx, s, minutes, results, firing, now)
}

// evidence sets the alert's evidence from the rule that fired.
func (e *Evaluator) evidence(ctx context.Context, a *Alert, s SLO, r RuleResult, now time.Time) error {
	to := now.Truncate(time.Minute).Add(time.Minute)
	from := to.Add(-r.Rule.Long)
	g, ok, err := e.src.overview(ctx, s, from, to)
	if err != nil {
		return err
	}
	samples, err := e.src.samples(ctx, s, from, to, e.cfg.Samples)
	if err != nil {
		return err
	}
	a.Objective, a.SLOWindowSeconds = s.Objective, s.Window.Seconds()
	a.TargetSeconds = s.Target.Seconds()
	a.Measured = measured(s, g, ok)
	a.Rule = r.Rule.String()
	a.Long, a.Short = int64(r.Rule.Long/time.Second), int64(r.Rule.Short/time.Second)
	a.Threshold, a.BurnLong, a.BurnShort = r.Threshold, r.BurnLong, r.BurnShort
	a.Messages, a.Bad = r.Long.Total, r.Long.Bad
	a.Lost, a.Late, a.Slow = r.Long.Lost, r.Long.Late, r.Long.Slow
	if s.Kind == Latency && ok {
		a.Lost, a.Late = g.Lost, g.Late
	}
	a.Samples = samples
	a.UpdatedAt = now
	a.summarize()
	return nil
}

// resolve ends a firing alert at now; its evidence stays that of its last
// firing evaluation.
func (e *Evaluator) resolve(key string, a *Alert, now time.Time, summary string) {
	delete(e.firing, key)
	a.State, a.EndsAt, a.UpdatedAt, a.Delivered, a.Summary = StateResolved, now, now, nil, summary
	e.pending = append(e.pending, a)
	e.dirty[a.ID] = a
}

// status is the evaluation of s for the dashboard.
func (e *Evaluator) status(ctx context.Context, s SLO, minutes []Minute, results []RuleResult, firing []string, now time.Time) (*Status, error) {
	st := &Status{Topic: s.Topic, Group: s.Group, SLO: s.Kind, Objective: s.Objective, TargetSeconds: s.Target.Seconds(),
		SLOWindowSeconds: s.Window.Seconds(), State: "ok", EvaluatedAt: now, BudgetLeft: math.NaN()}
	if len(firing) > 0 {
		st.State = strings.Join(firing, ",")
	}
	all := Sum(minutes, now, Longest(e.cfg.Rules))
	st.Messages, st.Bad = all.Total, all.Bad
	var windows []time.Duration
	for _, r := range results {
		windows = append(windows, r.Rule.Short, r.Rule.Long)
	}
	slices.Sort(windows)
	for _, w := range slices.Compact(windows) {
		st.Windows = append(st.Windows, shortDuration(w))
		st.BurnRates = append(st.BurnRates, Sum(minutes, now, w).BurnRate(s.Budget()))
	}
	to := now.Truncate(time.Minute).Add(time.Minute)
	g, ok, err := e.src.overview(ctx, s, to.Add(-s.Window), to)
	if err != nil {
		return nil, err
	}
	st.Measured = measured(s, g, ok)
	if s.Kind == Completeness && ok && g.Audited() > 0 {
		bad := float64(min(g.Lost+g.Late, g.Audited()))
		allowed := s.Budget() * float64(g.Audited())
		switch {
		case bad == 0:
			st.BudgetLeft = 1
		case allowed == 0:
			st.BudgetLeft = math.Inf(-1)
		default:
			st.BudgetLeft = 1 - bad/allowed
		}
	}
	e.version = max(e.version+1, uint64(time.Now().UnixNano()))
	st.version = e.version
	return st, nil
}

// store writes the changed alerts.
func (e *Evaluator) store(ctx context.Context) error {
	if len(e.dirty) == 0 {
		return nil
	}
	batch := make([]*Alert, 0, len(e.dirty))
	for _, a := range e.dirty {
		e.version = max(e.version+1, uint64(time.Now().UnixNano()))
		a.version = e.version
		batch = append(batch, a)
	}
	if err := writeAlerts(ctx, e.conn, e.cfg.Database, batch); err != nil {
		return err
	}
	clear(e.dirty)
	return nil
}

// notify sends every notifier what it has not accepted yet (Resenders
// also every firing alert) and records what it accepted.
func (e *Evaluator) notify(ctx context.Context, now time.Time) {
	var open []*Alert
	for _, a := range e.firing {
		open = append(open, a)
	}
	open = append(open, e.pending...)
	slices.SortFunc(open, func(a, b *Alert) int { return cmp.Or(a.StartsAt.Compare(b.StartsAt), cmp.Compare(a.ID, b.ID)) })
	for _, a := range open {
		e.decorate(a)
	}
	for _, n := range e.cfg.Notifiers {
		resend := false
		if r, ok := n.(Resender); ok {
			resend = r.ResendFiring()
		}
		var due []*Alert
		for _, a := range open {
			if !a.delivered(n.Name()) || (resend && a.State == StateFiring) {
				due = append(due, a)
			}
		}
		if len(due) == 0 {
			continue
		}
		if err := n.Notify(ctx, due); err != nil {
			e.log.Warn("alerts: notify", "notifier", n.Name(), "alerts", len(due), "err", err)
			continue
		}
		for _, a := range due {
			if !a.delivered(n.Name()) {
				a.Delivered = append(a.Delivered, n.Name())
				e.dirty[a.ID] = a
			}
		}
	}
}

// decorate sets the links of a's notifications.
func (e *Evaluator) decorate(a *Alert) {
	a.DashboardURL = e.cfg.DashboardURL
	for i := range a.Samples {
		a.Samples[i].TrailURL = trailURL(e.cfg.DashboardURL, a.Samples[i].CorrelationID)
	}
}

func (e *Evaluator) deliveredEverywhere(a *Alert) bool {
	for _, n := range e.cfg.Notifiers {
		if !a.delivered(n.Name()) {
			return false
		}
	}
	return true
}

// forgetDelivered drops the resolved alerts every notifier accepted, and
// those whose resolution could not be delivered for resolvedRecovery (a
// receiver that refuses for a day will not take it later; it stays
// stored).
func (e *Evaluator) forgetDelivered(now time.Time) {
	e.pending = slices.DeleteFunc(e.pending, func(a *Alert) bool {
		if e.dirty[a.ID] != nil {
			return false
		}
		if e.deliveredEverywhere(a) {
			return true
		}
		if now.Sub(a.EndsAt) > resolvedRecovery {
			e.log.Warn("alerts: giving up delivering a resolution", "id", a.ID, "topic", a.Topic, "group", a.Group, "delivered", a.Delivered)
			return true
		}
		return false
	})
}

// changed logs a state change and calls OnChange.
func (e *Evaluator) changed(a *Alert) {
	e.decorate(a)
	e.log.Info("alerts: "+a.State, "id", a.ID, "topic", a.Topic, "group", a.Group, "slo", a.SLO, "severity", a.Severity, "summary", a.Summary)
	if e.cfg.OnChange != nil {
		e.cfg.OnChange(a)
	}
}
