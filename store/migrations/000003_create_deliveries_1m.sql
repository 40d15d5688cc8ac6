-- +goose NO TRANSACTION
-- Per-minute rollup of deliveries: one row per minute (of first_seen),
-- topic and consumer group, with the number of messages by latest verdict
-- status and quantile states (p50/p90/p99/p99.9) of the known ack and
-- end-to-end latencies.
--
-- The rows are not fed by a materialized view: a view sees every inserted
-- version of a verdict, so a LOST later corrected to LATE (and any batch the
-- sink writes twice) would be counted twice. Instead report.Refresher
-- recomputes whole minutes from deliveries FINAL (only the latest verdict of
-- each message) and writes them again with a higher version;
-- ReplacingMergeTree(version) keeps the newest computation of each minute,
-- so read with FINAL. Which minutes to recompute is found from the parts
-- and inserted_at of deliveries written since the previous pass.
-- +goose Up
CREATE TABLE IF NOT EXISTS deliveries_1m (
    minute DateTime,
    topic String,
    consumer_group String,
    messages UInt64,
    delivered UInt64,
    lost UInt64,
    late UInt64,
    duplicate UInt64,
    produce_failed UInt64,
    unaudited_producer UInt64,
    corrupted UInt64,
    ack_known UInt64,
    e2e_known UInt64,
    ack_latency_us AggregateFunction(quantiles(0.5, 0.9, 0.99, 0.999), Int64),
    e2e_latency_us AggregateFunction(quantiles(0.5, 0.9, 0.99, 0.999), Int64),
    version UInt64,
    refreshed_at DateTime
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(minute)
ORDER BY (topic, consumer_group, minute);

-- +goose Down
DROP TABLE IF EXISTS deliveries_1m;
