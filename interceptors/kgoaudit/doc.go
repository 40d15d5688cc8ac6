// Package kgoaudit audits a franz-go client: plugged in with kgo.WithHooks,
// it gives every produced record a correlation ID header and reports each
// produced record (at acknowledgement) and each consumed record (at poll)
// to an Emitter as one kaudit event.
//
//	em, err := emitter.New(emitter.Config{Brokers: []string{"audit-kafka:9092"}})
//	if err != nil { ... }
//	defer em.Close(ctx)
//
//	producer, err := kgo.NewClient(
//		kgo.SeedBrokers("kafka:9092"),
//		kgo.WithHooks(kgoaudit.New(em)),
//	)
//	consumer, err := kgo.NewClient(
//		kgo.SeedBrokers("kafka:9092"),
//		kgo.ConsumerGroup("billing"),
//		kgo.ConsumeTopics("orders"),
//		kgo.WithHooks(kgoaudit.New(em)), // one Hooks per client, one shared Emitter
//	)
//
// What is reported:
//
//   - Produce: in OnProduceRecordBuffered (inside Produce, on the caller's
//     goroutine) the record gets a header correlation_id holding a random
//     UUID v7 (time-ordered), unless it already has a non-empty one, which is kept (so
//     trails started upstream continue). The hooks never write into the
//     application's header slice, which may be shared between records: a
//     record with headers gets a new slice with the ID added, one without
//     a slice held by the hooks' state; the send time, key/value digest
//     (codecs.Digest) and size are noted in the record's context. In
//     OnProduceRecordUnbuffered (just before the promise) one KindProduce
//     event is emitted: send and ack times, partition, offset, record
//     timestamp, client ID, host and source "franz-go"; for a failed
//     produce the error text instead of ack time and offset (-1). One
//     produced message costs one audit event. A record object produced
//     again keeps its ID and is therefore reported as a duplicate send.
//   - Consume: in OnFetchRecordUnbuffered, for records returned by a poll,
//     one KindConsume event with the consumer group (or share group),
//     partition, offset,
//     consume time, record timestamp and the digest and size of what was
//     read. Records without a correlation ID are counted (Stats().Unaudited)
//     and skipped; so are records polled outside a consumer group unless
//     WithGroup names the reader. "Consumed" means returned by poll, not
//     processed.
//   - Records on the Emitter's own topic are never audited.
//
// The hooks learn client.id and the consumer group in OnNewClient, so each
// client needs its own Hooks; the Emitter can be shared by any number of
// clients. Hooks never block (Emit is non-blocking: a full queue drops the
// event, counted as Rejected, and the Emitter reports the drop in a
// codecs.KindDrops event under the client ID, topic and group of the
// dropped event) and never panic (a panic below them is recovered and
// counted). Acknowledged records of an aborted transaction are reported as
// produced.
//
// The audit work of a produced record (building its event, encoding it and
// handing it to the Emitter's client) runs on franz-go's promise goroutine,
// just before the record's promise; that of a consumed record inside
// PollFetches. The hooks keep nothing of their own: what is lost when the
// audited process is killed (kill -9) is what the Emitter had not sent;
// see the emitter package. BenchmarkProduce and BenchmarkHooks (make
// bench) measure the cost per message against plain franz-go.
//
// The produce hooks keep their state in the record's context (one
// allocation: a context wrapping the original); context.WithValue plus a
// separate struct costs two allocations and ~50% more, a sync.Map keyed by
// record more than twice as much. IDs come from math/rand/v2 (ChaCha8,
// OS-seeded), several times cheaper than crypto/rand.
package kgoaudit
