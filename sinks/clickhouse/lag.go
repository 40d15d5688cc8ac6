package clickhouse

import (
	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/store"
)

// ConsumerLag is the table of the correlators' per-minute lag reports:
// one row per minute, topic, consumer group and correlator instance;
// inserted_at takes its default.
var ConsumerLag = &Table[audit.LagReport]{Name: store.LagTable, Columns: []Column[audit.LagReport]{
	DateTime("minute", func(r *audit.LagReport) int64 { return r.Minute * 1e9 }),
	String("topic", func(r *audit.LagReport) string { return r.Topic }),
	String("consumer_group", func(r *audit.LagReport) string { return r.Group }),
	String("instance", func(r *audit.LagReport) string { return r.Instance }),
	Int("oldest_ack_ns", func(r *audit.LagReport) int64 { return r.OldestAckNs }),
	Int("age_ms", func(r *audit.LagReport) int64 { return r.AgeMs }),
	Int("pending", func(r *audit.LagReport) uint64 { return r.Pending }),
}}
