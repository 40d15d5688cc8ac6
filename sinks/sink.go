// Package sinks moves records out of Kafka: a Runner consumes topics,
// decodes each record into the batch being built (a Decoder per topic),
// hands full batches to a Sink (ClickHouse, a Kafka topic, JSON lines, ...)
// and commits Kafka offsets only after the sink accepted the batch holding
// them. It is Redpanda Connect's shape, and Kafka Connect's sink-connector
// idea, in Go: the sink connects and writes, the runner owns batching,
// retries, dead letters and offsets.
//
//	r, err := sinks.New(sinks.Config[*sinks.Batch]{
//		Brokers:  []string{"kafka:9092"},
//		Group:    "kaudit-sink-clickhouse",
//		Topics:   sinks.AuditTopics(audit.DefaultVerdictsTopic, audit.DefaultEventsTopic),
//		NewBatch: sinks.NewBatch,
//		DLQTopic: audit.DefaultDLQTopic,
//	}, sink)
//	if err != nil { ... }
//	err = r.Run(ctx) // until ctx is cancelled
//
// # New record types
//
// The runner's loop knows nothing about what it moves. A new record type
// (a topic and a table) needs a batch type B with a Reset method, a
// Decoder[B] per topic and a Sink[B]; a new Runner[B] in its own consumer
// group runs them, with the same commit, retry and dead-letter guarantees.
// For the ClickHouse tables of the audit pipeline, *Batch carries events and
// verdicts, AuditTopics maps their topics to decoders, and
// sinks/clickhouse writes them; a record type that belongs in the same
// consumer group adds a field to Batch, a Topic to AuditTopics and a table
// to sinks/clickhouse (see its package doc).
//
// # Crashes
//
// Offsets are committed only for records that were written, dead-lettered
// or counted as dropped, in the order they were read, after the sink
// returned. A process killed at any instant (kill -9) therefore loses
// nothing: the next run reads everything after the last commit again and
// writes it again. Sinks must make that re-write idempotent (the ClickHouse
// tables collapse repeats; a Kafka sink writes duplicates that its
// consumers must tolerate).
package sinks

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/proxy/traffic"
)

// Sink writes batches of type B. WriteBatch must be idempotent: after an
// error, or after a restart before offsets were committed, the runner
// writes the same records again, and they must not be counted twice. A sink
// may remove from b what it did write before it returns an error, so that
// the retry sends only the rest. The runner calls WriteBatch from up to
// Config.MaxInFlight goroutines at once, each with its own batch, and owns
// retries and backoff.
type Sink[B any] interface {
	WriteBatch(ctx context.Context, b B) error
	Close() error
}

// Connecter is implemented by sinks that must connect before they write
// (open a connection, apply migrations). The runner calls Connect before it
// consumes anything and retries it with backoff until it succeeds or the
// runner's context ends.
type Connecter interface {
	Connect(ctx context.Context) error
}

// Pinger is implemented by sinks that can tell whether their destination is
// reachable; the runner's readiness (Runner.Ready) asks it.
type Pinger interface {
	Ping(ctx context.Context) error
}

// ErrNotConnected is returned by sinks asked to write before Connect
// succeeded.
var ErrNotConnected = errors.New("sinks: not connected")

// Buffer is the constraint on batch types: a batch the runner can empty and
// fill again.
type Buffer interface {
	Reset()
}

// Decoder decodes one record into b. It returns an error, and leaves b as
// it was, for a record it cannot decode: the runner then dead-letters the
// record per errors.tolerance. It must not keep rec or its slices.
type Decoder[B any] func(b B, rec *kgo.Record) error

// Topic says how to read one topic: its name, what kind of record it holds
// (a short name for stats and metrics: "verdict", "event") and its decoder.
type Topic[B any] struct {
	Name   string
	Kind   string
	Decode Decoder[B]
}

// Position is where a record was read in Kafka.
type Position struct {
	Topic     string
	Partition int32
	Offset    int64
}

// EventRecord is a raw audit event with its position in the audit topic; the
// position makes a re-written event recognisable as the same row.
type EventRecord struct {
	Event codecs.Event
	From  Position
}

// Batch is a batch of the audit pipeline's records: raw audit events and
// verdicts.
type Batch struct {
	Events   []EventRecord
	Verdicts []codecs.Verdict
	// Admin and Traffic are kaudit-proxy's audit (see proxyrecords.go).
	Admin   []AdminRow
	Traffic []traffic.Record
	// Lag holds the correlators' lag reports (see lagrecords.go).
	Lag []audit.LagReport
}

// NewBatch returns an empty Batch (Config.NewBatch of the audit pipeline).
func NewBatch() *Batch { return new(Batch) }

// Len is the number of items in b.
func (b *Batch) Len() int {
	return len(b.Events) + len(b.Verdicts) + len(b.Admin) + len(b.Traffic) + len(b.Lag)
}

// Reset empties b, keeping its memory.
func (b *Batch) Reset() {
	clear(b.Events)
	clear(b.Verdicts)
	clear(b.Admin)
	clear(b.Traffic)
	clear(b.Lag)
	b.Events, b.Verdicts, b.Admin, b.Traffic, b.Lag = b.Events[:0], b.Verdicts[:0], b.Admin[:0], b.Traffic[:0], b.Lag[:0]
}

// Kinds of the audit pipeline's records.
const (
	KindVerdict = "verdict"
	KindEvent   = "event"
)

// AuditTopics returns the topics of the audit pipeline: verdicts (binary or
// JSON codecs.Verdict) and raw events (codecs.Event, with their position);
// an empty name is not read.
func AuditTopics(verdictsTopic, eventsTopic string) []Topic[*Batch] {
	var ts []Topic[*Batch]
	if verdictsTopic != "" {
		ts = append(ts, Topic[*Batch]{Name: verdictsTopic, Kind: KindVerdict, Decode: DecodeVerdict})
	}
	if eventsTopic != "" {
		ts = append(ts, Topic[*Batch]{Name: eventsTopic, Kind: KindEvent, Decode: DecodeEvent})
	}
	return ts
}

var errEmpty = errors.New("empty record value")

// DecodeVerdict decodes a verdict record (binary or JSON) into b.
func DecodeVerdict(b *Batch, rec *kgo.Record) error {
	b.Verdicts = append(b.Verdicts, codecs.Verdict{})
	if err := UnmarshalVerdict(rec.Value, &b.Verdicts[len(b.Verdicts)-1]); err != nil {
		b.Verdicts[len(b.Verdicts)-1] = codecs.Verdict{}
		b.Verdicts = b.Verdicts[:len(b.Verdicts)-1]
		return err
	}
	return nil
}

// DecodeEvent decodes a raw audit event record (binary or JSON) into b,
// with the record's position.
func DecodeEvent(b *Batch, rec *kgo.Record) error {
	b.Events = append(b.Events, EventRecord{})
	e := &b.Events[len(b.Events)-1]
	if err := UnmarshalEvent(rec, e); err != nil {
		*e = EventRecord{}
		b.Events = b.Events[:len(b.Events)-1]
		return err
	}
	return nil
}

// UnmarshalVerdict decodes a verdict record's value, binary or JSON, into
// v (for decoders of other batch types).
func UnmarshalVerdict(value []byte, v *codecs.Verdict) error {
	switch {
	case len(value) == 0:
		return errEmpty
	case isJSON(value):
		return codecs.UnmarshalVerdictJSON(value, v)
	}
	return codecs.UnmarshalVerdict(value, v)
}

// UnmarshalEvent decodes a raw audit event record, binary or JSON, into e,
// with the record's position (for decoders of other batch types).
func UnmarshalEvent(rec *kgo.Record, e *EventRecord) error {
	e.From = Position{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset}
	switch {
	case len(rec.Value) == 0:
		return errEmpty
	case isJSON(rec.Value):
		return codecs.UnmarshalEventJSON(rec.Value, &e.Event)
	}
	return codecs.UnmarshalEvent(rec.Value, &e.Event)
}

// Written is what a hook learns about a batch the sink accepted: the batch,
// how many records it held, and when the sink returned.
type Written[B any] struct {
	Batch   B
	Records int
	At      time.Time
}

// isJSON says whether b starts like JSON: no valid binary encoding starts
// with '{' or JSON whitespace (codecs/audit.proto).
func isJSON(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c == '{'
	}
	return false
}
