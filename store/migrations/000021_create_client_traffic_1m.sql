-- +goose NO TRANSACTION
-- kaudit-proxy's per-minute client traffic (the KIP-388 observer): per
-- window, proxy instance, principal, client id, client address, consumer
-- group, topic and API: requests, errors, records and record-batch bytes
-- (rows with a topic: that topic's Produce/Fetch share), request and
-- response bytes (rows with topic '': the API's totals). Written by
-- kaudit-sink from the proxy's traffic topic (kaudit.traffic). A proxy
-- instance writes each key once per window, so a re-read record is the
-- same row (ReplacingMergeTree on the whole key); sum over instances.
-- Read with FINAL.
-- +goose Up
CREATE TABLE IF NOT EXISTS client_traffic_1m (
    window_start DateTime,
    window_end DateTime,
    proxy String,
    instance String,
    principal String,
    client_id String,
    client_address String,
    consumer_group String,
    topic String,
    api_key Int16,
    api String,
    requests UInt64,
    errors UInt64,
    records UInt64,
    bytes UInt64,
    request_bytes UInt64,
    response_bytes UInt64,
    inserted_at DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (topic, principal, client_id, client_address, consumer_group, api_key, window_start, instance);

-- +goose Down
DROP TABLE IF EXISTS client_traffic_1m;
