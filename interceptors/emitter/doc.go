// Package emitter sends kaudit audit events to the audit topic
// (kaudit.events by default) asynchronously, through its own franz-go
// client, which may point at another cluster than the audited application.
//
//	em, err := emitter.New(emitter.Config{
//		Brokers:    []string{"audit-kafka:9092"},
//		ClientOpts: []kgo.Opt{kgo.DialTLSConfig(tlsCfg)}, // TLS, SASL, ...
//		Logger:     logger,
//	})
//	if err != nil { ... }
//	defer em.Close(ctx) // flushes what is queued and in flight, within ctx
//	// hand em to the interceptors, e.g. kgoaudit.New(em)
//
// Events are keyed by correlation ID and partitioned exactly like goka
// (Sarama's FNV-1a hash partitioner), because the correlator reading the
// audit topic is a goka processor; see audit.Partitioner. A record's
// timestamp is its event's time (the latest of SendNs, AckNs, ConsumeNs
// and WindowEndNs), or the produce time if the event has none. Records are
// the binary encoding (codecs.AppendEvent) or, with Config.Encode
// InterceptorJSON, the librdkafka interceptors' JSON.
//
// Emit never blocks the application: on the caller's goroutine it encodes
// the event into a pooled record and hands it to the client
// (kgo.Client.TryProduce), which batches records (5ms linger by default)
// and sends them in the background; there is no goroutine of the
// Emitter's own between the caller and the client. The events accepted and
// not yet acknowledged are bounded by count (Config.QueueSize, 65536 by
// default; the client buffers that many) and by memory (Config.QueueBytes,
// 64 MiB by default); an event that finds no room is dropped and counted,
// unless Config.EnqueueTimeout allows a bounded wait. Produce failures are
// counted and logged at most once per Config.LogEvery; they never reach
// the application. Stats exposes the counters.
//
// # Drop reports
//
// A dropped audit event would look like a lost message (a missing consume
// event) or an unaudited producer (a missing produce event), so the
// Emitter reports its own gaps. Every event it drops (queue full) or fails
// to deliver (the audit cluster refused the record, or the client gave up
// after its retries or delivery timeout) is counted per client ID, topic,
// group, kind and minute of the event's own time, in a table of at most
// Config.MaxDropWindows entries (1024); when the table is full, further
// drops are folded into one catch-all count per kind with topic and group
// codecs.AnyTopic, so the counts stay exact while the table stays small.
// When there is room again (fewer than QueueSize events pending), at most
// once a second, a goroutine of the Emitter sends each count as one
// codecs.KindDrops event with a fresh correlation ID: Dropped,
// DroppedKind, and the span of the dropped events' times in WindowStartNs
// and WindowEndNs. A drop report that fails is counted again and sent in
// a later round, so every counted drop is reported exactly once, as long
// as the process lives; Close sends a last round (best effort, within its
// context). Events dropped by a closed Emitter are counted in
// Stats().Dropped but never reported. Callers that drop events before Emit
// (a buffer of their own) count them with AddDrops.
//
// # Crash safety
//
// Accepted events live in the client's buffer, in memory only. When the
// process is killed (kill -9, OOM) or exits without Close, the events
// still buffered or in flight, and the drops counted but not yet
// reported, are lost, and nothing reports them: the correlator judges
// those messages without the missing events. A message whose consume
// event was lost this way gets a LOST verdict for that group with cause
// not_consumed, not audit_gap, since no drop report covers it (LATE, if
// the group reads it again after a rebalance); one whose produce event
// was lost gets UNAUDITED_PRODUCER verdicts. Such a verdict then means
// "not seen by the audit", not necessarily "not processed": the consumer
// may have polled the message, the process died before its audit event
// left. The window is short (the linger, 5ms by default, plus one produce
// round trip under normal load), but with a consumer that commits offsets
// before processing (auto-commit), a message polled just before the kill
// is neither redelivered nor audited. Close the Emitter (after the audited
// clients) when shutting down to lose nothing.
package emitter
