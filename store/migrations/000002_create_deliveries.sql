-- +goose NO TRANSACTION
-- One row per message and consumer group: the correlator's latest verdict.
-- Every verdict is a new version (seq) of its (topic, consumer_group,
-- correlation_id) row; ReplacingMergeTree(seq) keeps the highest, so read
-- with FINAL. first_seen never changes for a message, so all versions of a
-- row land in the same partition.
-- +goose Up
CREATE TABLE IF NOT EXISTS deliveries (
    correlation_id String,
    topic String,
    consumer_group String,
    status String,
    cause String,
    seq UInt64,
    partition Int32,
    offset Int64,
    producer_client String,
    producer_host String,
    send_ns Int64,
    ack_ns Int64,
    produce_error String,
    payload_size Int32,
    consumer_client String,
    consumer_host String,
    consume_partition Int32,
    consume_offset Int64,
    first_consume_ns Int64,
    last_consume_ns Int64,
    consume_count UInt32,
    ack_latency_us Int64,
    e2e_latency_us Int64,
    first_seen DateTime,
    decided_at DateTime,
    inserted_at DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree(seq)
PARTITION BY toYYYYMMDD(first_seen)
ORDER BY (topic, consumer_group, correlation_id);

-- +goose Down
DROP TABLE IF EXISTS deliveries;
