package alerts

import "github.com/kaudit/kaudit/store"

// The SQL of this package. Every statement it reads with is registered in
// store's query registry, so the conformance tests run it on ClickHouse
// 18.16 and 26.x (store/conformance); its rows are written with
// PrepareBatch and an explicit column list (insertAlertSQL,
// insertStatusSQL), as the sink writes its own. The completeness counts
// come through report.Series, the measured values through
// report.Overview. Values reach the statements only as bound parameters.

var (
	// qLatencyMinutes counts, per minute of first_seen, the messages of
	// one topic and group whose end-to-end latency is known and those in
	// a histogram bucket above the target's (?: store.LatencyBucket of the
	// target), from the rollups.
	qLatencyMinutes = store.NewQuery("alerts.latency_minutes", `SELECT toUInt32(minute) AS m, sum(e2e_known),
	sum(arraySum(arrayMap((slow_k, slow_c) -> if(slow_k > ?, slow_c, 0), e2e_hist_keys, e2e_hist_counts)))
	FROM {rollup} FINAL
	WHERE topic = ? AND consumer_group = ? AND minute >= toDateTime(?) AND minute < toDateTime(?)
	GROUP BY m
	ORDER BY m`)

	// qLostLateSamples lists the latest LOST and LATE messages of one
	// topic and group first seen in a range; LOST with cause audit_gap is
	// an audit gap, not a loss.
	qLostLateSamples = store.NewQuery("alerts.samples.lost_late", `SELECT correlation_id, status, e2e_latency_us
	FROM {deliveries} FINAL
	WHERE topic = ? AND consumer_group = ? AND first_seen >= toDateTime(?) AND first_seen < toDateTime(?)
		AND (status = ? OR status = ?) AND cause != ?
	ORDER BY first_seen DESC, correlation_id
	LIMIT ?`)

	// qSlowSamples lists the latest messages of one topic and group first
	// seen in a range whose end-to-end latency exceeds a target (µs).
	qSlowSamples = store.NewQuery("alerts.samples.slow", `SELECT correlation_id, status, e2e_latency_us
	FROM {deliveries} FINAL
	WHERE topic = ? AND consumer_group = ? AND first_seen >= toDateTime(?) AND first_seen < toDateTime(?)
		AND e2e_latency_us > ?
	ORDER BY first_seen DESC, correlation_id
	LIMIT ?`)

	// qOpenAlerts selects the alerts a starting evaluator takes over: the
	// firing ones, and those resolved since a time whose resolution may
	// not have been delivered.
	qOpenAlerts = store.NewQuery("alerts.open", `SELECT `+alertColumns+`
	FROM {alerts} FINAL
	WHERE state = ? OR (state = ? AND updated_at >= toDateTime(?))
	ORDER BY starts_at, id`)

	// qHistory selects the latest alerts, the firing ones first.
	qHistory = store.NewQuery("alerts.history", `SELECT `+alertColumns+`
	FROM {alerts} FINAL
	WHERE (? = '' OR topic = ?) AND (? = '' OR consumer_group = ?)
	ORDER BY state = ? DESC, starts_at DESC, id
	LIMIT ?`)

	// qStatus selects the latest evaluation of every SLO.
	qStatus = store.NewQuery("alerts.status", `SELECT `+statusColumns+`
	FROM {slo_status} FINAL
	ORDER BY topic, consumer_group, slo`)
)

// alertColumns are the columns of the alerts table, in the order
// writeAlerts and readAlerts use them.
const alertColumns = `id, topic, consumer_group, slo, severity, state, objective, target_seconds,
	slo_window_seconds, measured, rule, long_window_seconds, short_window_seconds, burn_threshold,
	burn_rate_long, burn_rate_short, messages, bad, lost, late, slow, sample_ids, sample_statuses,
	sample_e2e_latency_us, summary, starts_at, ends_at, updated_at, delivered, version`

// insertAlertSQL is the batch insert into the alerts table (%s: the quoted
// table).
const insertAlertSQL = `INSERT INTO %s (` + alertColumns + `)`

const statusColumns = `topic, consumer_group, slo, objective, target_seconds, slo_window_seconds,
	messages, bad, measured, budget_left, windows, burn_rates, state, evaluated_at, version`

const insertStatusSQL = `INSERT INTO %s (` + statusColumns + `)`
