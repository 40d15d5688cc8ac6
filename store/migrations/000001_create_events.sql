-- +goose NO TRANSACTION
-- Raw audit events, one row per audit record read from the audit topic.
-- The same record written again (same audit topic/partition/offset) has the
-- same sorting key and the same event_time, hence the same partition, and
-- collapses into one row on merge or with FINAL.
-- +goose Up
CREATE TABLE IF NOT EXISTS events (
    correlation_id String,
    kind String,
    topic String,
    partition Int32,
    offset Int64,
    client_id String,
    consumer_group String,
    host String,
    source String,
    send_ns Int64,
    ack_ns Int64,
    consume_ns Int64,
    record_ts_ns Int64,
    error String,
    payload_size Int32,
    digest UInt64,
    event_time DateTime,
    audit_topic String,
    audit_partition Int32,
    audit_offset Int64,
    inserted_at DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(event_time)
ORDER BY (correlation_id, audit_topic, audit_partition, audit_offset);

-- +goose Down
DROP TABLE IF EXISTS events;
