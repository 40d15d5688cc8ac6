-- +goose NO TRANSACTION
-- The correlators' per-minute lag reports (audit.LagReport, from the lag
-- topic kaudit.lag): per minute, topic, expected consumer group and
-- reporting correlator instance, the acknowledgement time of the oldest
-- message the group has not consumed (Unix nanoseconds), its age at the
-- report and how many acknowledged messages the group has not consumed,
-- among the messages that instance tracks. A group with nothing pending
-- has no row. Written by kaudit-sink. Each instance reports a minute of a
-- (topic, group) once, so a report read or written again (a sink retry, a
-- correlator re-sending the minute) is the same row (ReplacingMergeTree on
-- the whole key; a different report for the same key replaces the older
-- one). Read with FINAL: the group's lag is the largest age over the
-- instances of a minute, its pending count their sum.
-- +goose Up
CREATE TABLE IF NOT EXISTS consumer_lag_1m (
    minute DateTime,
    topic String,
    consumer_group String,
    instance String,
    oldest_ack_ns Int64,
    age_ms Int64,
    pending UInt64,
    inserted_at DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(minute)
ORDER BY (topic, consumer_group, minute, instance);

-- +goose Down
DROP TABLE IF EXISTS consumer_lag_1m;
