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
)

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
