// Package alerts evaluates the SLOs declared with the expectations
// (processors/expectations: completeness and p99 end-to-end latency per
// topic and consumer group) and raises alerts that name the messages
// that broke them. It is what `kaudit alerts` runs.
//
// # Evaluation
//
// Every Interval (1 minute) the Evaluator refreshes the per-minute rollups
// (store.Refresher), reads each SLO's counts per minute of first_seen over
// the longest rule window, and applies the multi-window, multi-burn-rate
// rules of Google's SRE workbook (DefaultRules: page at 14.4× over 1h and
// 5m or 6× over 6h and 30m, ticket at 1× over 3d and 6h, for a 30-day SLO
// window; the thresholds scale with the SLO window). A burn rate is the
// error rate over a window divided by the error budget (1 - objective).
// One alert per SLO and severity fires when one of its rules holds over
// both windows, and resolves at the first evaluation where none does.
//
// Errors are, for completeness, the expected messages that are LOST
// (except cause audit_gap, an audit gap rather than a loss, left out of
// the count altogether) or LATE, out of the audited expected messages (all
// but PRODUCE_FAILED and the audit gaps), read from the rollups through
// report.Series; for latency, the messages whose end-to-end latency
// exceeds the target, out of those whose latency is known, read from the
// rollups' latency histograms (a message at most 0.4% over the target may
// count as within it; the samples are exact). A message is LOST only once its
// deadline passed, so a consumer group that stops pages about one deadline
// after its first unconsumed message; the minutes whose deadline has not
// passed hold only delivered messages, which can lower a burn rate but
// never raise one.
//
// Each alert carries its evidence: topic, group, SLO, the measured
// completeness (messages delivered on time) or p99 over the rule's long
// window, the burn rates, the LOST/LATE/slow counts, up to Samples
// correlation IDs of messages that broke the SLO (from deliveries FINAL,
// latest first) and links to their trails on the dashboard. Alerts go to
// Prometheus Alertmanager (v2 API; every firing alert is sent again at each
// evaluation with endsAt ValidFor ahead, a resolved one with its endsAt)
// and to plain JSON webhooks (each state change), and are stored in
// ClickHouse (tables alerts and slo_status, migration 000030), which the
// dashboard lists.
//
//	ev, err := alerts.New(conn, alerts.Config{
//		Database:     "kaudit",
//		Expectations: func(ctx context.Context) ([]*expectations.Expectation, error) { ... },
//		Notifiers:    []alerts.Notifier{am, hook},
//		DashboardURL: "http://kaudit:8080",
//		Refresher:    store.NewRefresher(conn, store.RefresherConfig{Database: "kaudit"}),
//	})
//	if err != nil {
//		return err
//	}
//	return ev.Run(ctx) // until ctx ends
//
// # Crash safety
//
// An evaluation stores every alert that changed (a new version of its row)
// before it notifies anyone, then stores which notifiers accepted it
// (column delivered). A process killed (kill -9) at any instant loses
// nothing that was decided: a restarted evaluator takes over the firing
// alerts and the resolutions not yet delivered from ClickHouse at its first
// evaluation, keeps their IDs and start times, and sends what was not
// accepted. So every state change reaches every notifier at least once;
// a state can be delivered twice if the process died between a delivery
// and its record (receivers tell repeats by the alert ID and status). A
// kill before the changes were stored loses only that evaluation: the
// next one decides the same from the same rows. While the evaluator is
// down, Alertmanager resolves its alerts by itself ValidFor after their
// last send; the restarted evaluator sends them again with their original
// startsAt. Several evaluators on one database would each send the alerts
// (Alertmanager deduplicates them; webhooks would get each change once per
// evaluator): run one.
package alerts
