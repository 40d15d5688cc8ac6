-- +goose NO TRANSACTION
-- kaudit-proxy's admin audit (KIP-567 auditors): one row per resource of
-- every audited request — the cluster changes (topics, partitions, configs,
-- ACLs, records, groups, offsets, reassignments, quotas, SCRAM users),
-- denied Produce/Fetch/OffsetCommit/JoinGroup, failed logins — with who
-- (principal, client address and id), what (method, operation, resource,
-- pattern type) and the outcome (allowed, error). Written by kaudit-sink
-- from the proxy's admin topic (kaudit.admin), in either of its formats.
-- The proxy gives every event a random id; a re-read event is the same row
-- (ReplacingMergeTree on event_id and resource_index). Read with FINAL.
-- +goose Up
CREATE TABLE IF NOT EXISTS admin_audit (
    event_time DateTime,
    event_id String,
    resource_index UInt16,
    method String,
    api_key Int16,
    api_version Int16,
    operation String,
    resource_type String,
    resource_name String,
    pattern_type String,
    principal String,
    client_address String,
    client_id String,
    consumer_group String,
    allowed UInt8,
    error_code Int16,
    error String,
    detail String,
    broker Int32,
    cluster_id String,
    proxy String,
    inserted_at DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(event_time)
ORDER BY (event_time, event_id, resource_index);

-- +goose Down
DROP TABLE IF EXISTS admin_audit;
