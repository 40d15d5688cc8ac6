-- +goose NO TRANSACTION
-- Expectations on deliveries: whether the consumer group was expected to
-- consume the message (declared or learned), and the delivery deadline.
-- Numbered 10 to leave room for the rollup migrations.
-- +goose Up
ALTER TABLE deliveries
    ADD COLUMN expected UInt8 DEFAULT 0,
    ADD COLUMN learned UInt8 DEFAULT 0,
    ADD COLUMN deadline_ns Int64 DEFAULT 0;

-- +goose Down
ALTER TABLE deliveries
    DROP COLUMN expected,
    DROP COLUMN learned,
    DROP COLUMN deadline_ns;
