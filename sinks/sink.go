// Package sinks moves audit results out of Kafka: a Runner consumes the
// verdict and raw-event topics, batches what it reads and hands each batch to
// a Sink (ClickHouse, JSON lines, ...), committing Kafka offsets only after
// the sink accepted the batch. It is Kafka Connect's sink-connector idea, in
// Go: the sink writes, the runner owns batching, retries, dead letters and
// offsets.
package sinks

import (
	"context"

	"github.com/kaudit/kaudit/codecs"
	"github.com/kaudit/kaudit/proxy/traffic"
)

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

// Batch is what a runner hands to a sink in one call.
type Batch struct {
	Events   []EventRecord
	Verdicts []codecs.Verdict
	// Admin and Traffic are kaudit-proxy's audit (see proxyrecords.go).
	Admin   []AdminRow
	Traffic []traffic.Record
}

// Len is the number of items in b.
func (b *Batch) Len() int { return len(b.Events) + len(b.Verdicts) + len(b.Admin) + len(b.Traffic) }

// Sink writes batches. WriteBatch must be idempotent: after an error, or after
// a restart before offsets were committed, the runner writes the same records
// again, and they must not be counted twice. The runner calls WriteBatch from
// one goroutine at a time and owns retries and backoff.
type Sink interface {
	WriteBatch(ctx context.Context, b *Batch) error
	Close() error
}
