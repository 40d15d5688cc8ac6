package store

// LagTable holds the correlators' per-minute lag reports (audit.LagReport),
// one row per minute, topic, consumer group and correlator instance,
// inside the configured database (migration 000031). Read with FINAL.
const LagTable = "consumer_lag_1m"
