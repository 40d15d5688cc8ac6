// Package audit is the contract every writer and reader of kaudit's audit
// topics agrees on: the topic names, the record header that carries a
// message's correlation ID and how IDs are made, the partitioner of the
// audit topic (the correlator is a goka processor, so it must be goka's),
// the one-method Emitter the interceptors hand events to, and the Kafka
// Connect dead-letter headers.
//
//	var id [audit.CorrelationIDLen]byte
//	audit.PutCorrelationID(&id)
//	rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: audit.CorrelationHeader, Value: id[:]})
//
//	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
//		kgo.RecordPartitioner(audit.Partitioner()), kgo.DefaultProduceTopic(audit.DefaultEventsTopic))
//
// It depends only on codecs (the event type) and franz-go.
package audit

import "github.com/kaudit/kaudit/codecs"

// Default topic names. Every binary takes a flag for each; these are the
// defaults they all share.
const (
	// DefaultEventsTopic holds the raw audit events, keyed by correlation
	// ID and partitioned with Partitioner.
	DefaultEventsTopic = "kaudit.events"
	// DefaultVerdictsTopic holds the correlator's verdicts, keyed by
	// correlation ID.
	DefaultVerdictsTopic = "kaudit.verdicts"
	// DefaultDLQTopic holds the records kaudit could not process, with the
	// reason in the Connect error headers.
	DefaultDLQTopic = "kaudit.dlq"
	// DefaultExpectationsTopic is the compacted topic of declared
	// expectations, keyed by audited topic.
	DefaultExpectationsTopic = "kaudit.expectations"
	// DefaultLagTopic holds the correlators' per-minute reports of the
	// oldest message each expected group has not consumed yet (LagReport,
	// JSON), which the sink stores in ClickHouse.
	DefaultLagTopic = "kaudit.lag"
)

// LagReport is one correlator's report, for one minute, of what one
// expected consumer group has not consumed of one topic, among the messages
// the correlator tracks. Several correlators report for the partitions they
// own: the oldest across them is the group's, and the pending counts add
// up.
type LagReport struct {
	// Minute is the start of the minute, Unix seconds.
	Minute int64  `json:"minute"`
	Topic  string `json:"topic"`
	Group  string `json:"group"`
	// Instance names the reporting correlator (its client ID and host).
	Instance string `json:"instance"`
	// OldestAckNs is the acknowledgement time of the oldest unconsumed
	// message, Unix nanoseconds; AgeMs its age at the report.
	OldestAckNs int64 `json:"oldest_ack_ns"`
	AgeMs       int64 `json:"age_ms"`
	// Pending is how many acknowledged messages the group has not
	// consumed.
	Pending uint64 `json:"pending"`
}

// CorrelationHeader is the record header that carries a message's
// correlation ID. The name is the one used by the librdkafka interceptors
// of the source blog, so trails started by those interceptors continue
// here.
const CorrelationHeader = "correlation_id"

// Emitter takes audit events; *emitter.Emitter is the implementation.
// Emit must never block the caller (or only for a bounded time it was
// configured with), takes ownership of the event and reports whether the
// event was accepted; a refused event is counted by the implementation.
type Emitter interface {
	Emit(*codecs.Event) bool
}
