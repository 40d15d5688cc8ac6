package alerts

// The SQL of this package, in one place. Everything else it reads comes
// through the report package (report.Series and report.Overview on the
// per-minute rollups). Values reach these statements only as bound
// parameters; %[1]s is the quoted table. Each runs on ClickHouse 18.16 and
// current releases; rows are written with PrepareBatch and an explicit
// column list.

// latencyMinutesSQL counts, per minute of first_seen, the messages of one
// topic and group whose end-to-end latency is known and those slower than
// a target (µs), from the latest verdicts. The rollups keep latency only
// as quantile states, which cannot count messages over a threshold; this
// query reads deliveries FINAL, and Source caches the minutes old enough
// not to change any more.
const latencyMinutesSQL = `SELECT toUInt32(toStartOfMinute(first_seen)) AS m,
	countIf(e2e_latency_us >= 0), countIf(e2e_latency_us > ?)
FROM %[1]s FINAL
WHERE topic = ? AND consumer_group = ? AND first_seen >= toDateTime(?) AND first_seen < toDateTime(?)
GROUP BY m
ORDER BY m`

// lostLateSamplesSQL lists the latest LOST and LATE messages of one topic
// and group first seen in a range; LOST with cause audit_gap is an audit
// gap, not a loss.
const lostLateSamplesSQL = `SELECT correlation_id, status, e2e_latency_us
FROM %[1]s FINAL
WHERE topic = ? AND consumer_group = ? AND first_seen >= toDateTime(?) AND first_seen < toDateTime(?)
	AND (status = ? OR status = ?) AND cause != ?
ORDER BY first_seen DESC, correlation_id
LIMIT ?`

// slowSamplesSQL lists the latest messages of one topic and group first
// seen in a range whose end-to-end latency exceeds a target (µs).
const slowSamplesSQL = `SELECT correlation_id, status, e2e_latency_us
FROM %[1]s FINAL
WHERE topic = ? AND consumer_group = ? AND first_seen >= toDateTime(?) AND first_seen < toDateTime(?)
	AND e2e_latency_us > ?
ORDER BY first_seen DESC, correlation_id
LIMIT ?`

// alertColumns are the columns of the alerts table, in the order
// insertAlertSQL and selectAlertsSQL use them.
const alertColumns = `id, topic, consumer_group, slo, severity, state, objective, target_seconds,
	slo_window_seconds, measured, rule, long_window_seconds, short_window_seconds, burn_threshold,
	burn_rate_long, burn_rate_short, messages, bad, lost, late, slow, sample_ids, sample_statuses,
	sample_e2e_latency_us, summary, starts_at, ends_at, updated_at, delivered, version`

const insertAlertSQL = `INSERT INTO %[1]s (` + alertColumns + `)`

// openAlertsSQL selects the alerts a restarted evaluator takes over: those
// firing, and those resolved since a time (seconds) whose resolution may
// not have been delivered.
const openAlertsSQL = `SELECT ` + alertColumns + `
FROM %[1]s FINAL
WHERE state = ? OR (state = ? AND updated_at >= toDateTime(?))
ORDER BY starts_at, id`

// historySQL selects the latest alerts, firing first, then by start.
const historySQL = `SELECT ` + alertColumns + `
FROM %[1]s FINAL
WHERE (? = '' OR topic = ?) AND (? = '' OR consumer_group = ?)
ORDER BY state = ? DESC, starts_at DESC, id
LIMIT ?`

const statusColumns = `topic, consumer_group, slo, objective, target_seconds, slo_window_seconds,
	messages, bad, measured, budget_left, windows, burn_rates, state, evaluated_at, version`

const insertStatusSQL = `INSERT INTO %[1]s (` + statusColumns + `)`

const statusSQL = `SELECT ` + statusColumns + `
FROM %[1]s FINAL
ORDER BY topic, consumer_group, slo`
