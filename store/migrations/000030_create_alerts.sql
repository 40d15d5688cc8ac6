-- +goose NO TRANSACTION
-- The alerts evaluator's tables (package alerts, `kaudit alerts`).
--
-- alerts: one row per version of an alert episode (an SLO of a topic and
-- consumer group broken at one severity, from when a burn-rate rule fired
-- until none did), with its evidence: the measured value, the counts over
-- the rule's long window and sample correlation IDs of messages that broke
-- the SLO. ReplacingMergeTree(version) keeps the latest version of each
-- episode; read with FINAL. delivered names the notifiers that accepted
-- the current state, so a restarted evaluator finishes what a killed one
-- had not sent.
--
-- slo_status: the latest evaluation of each SLO (one version per
-- evaluation; read with FINAL), for the dashboard.
-- +goose Up
CREATE TABLE IF NOT EXISTS alerts (
    id String,
    topic String,
    consumer_group String,
    slo String,
    severity String,
    state String,
    objective Float64,
    target_seconds Float64,
    slo_window_seconds Float64,
    measured Float64,
    rule String,
    long_window_seconds Int64,
    short_window_seconds Int64,
    burn_threshold Float64,
    burn_rate_long Float64,
    burn_rate_short Float64,
    messages UInt64,
    bad UInt64,
    lost UInt64,
    late UInt64,
    slow UInt64,
    sample_ids Array(String),
    sample_statuses Array(String),
    sample_e2e_latency_us Array(Int64),
    summary String,
    starts_at DateTime,
    ends_at DateTime,
    updated_at DateTime,
    delivered Array(String),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(starts_at)
ORDER BY (topic, consumer_group, slo, severity, id);

CREATE TABLE IF NOT EXISTS slo_status (
    topic String,
    consumer_group String,
    slo String,
    objective Float64,
    target_seconds Float64,
    slo_window_seconds Float64,
    messages UInt64,
    bad UInt64,
    measured Float64,
    budget_left Float64,
    windows Array(String),
    burn_rates Array(Float64),
    state String,
    evaluated_at DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (topic, consumer_group, slo);

-- +goose Down
DROP TABLE IF EXISTS slo_status;
DROP TABLE IF EXISTS alerts;
