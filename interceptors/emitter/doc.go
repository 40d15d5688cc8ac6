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
//	prometheus.MustRegister(em.Collector())
//	// hand em to the interceptors, e.g. kgoaudit.New(em)
//
// Events are keyed by correlation ID and partitioned exactly like goka
// (Sarama's FNV-1a hash partitioner), because the correlator reading the
// audit topic is a goka processor; see Partitioner. A record's timestamp
// is its event's time (the latest of SendNs, AckNs and ConsumeNs), or the
// produce time if the event has none.
//
// Emit never blocks the application: events wait in a bounded queue
// (Config.QueueSize, 65536 by default) from which one worker goroutine
// encodes them (codecs.AppendEvent) and hands them to the client, which
// batches them (5ms linger by default). An event that finds the queue full
// is dropped and counted, unless Config.EnqueueTimeout allows a bounded
// wait. Produce failures are counted and logged at most once per
// Config.LogEvery; they never reach the application. Stats and Collector
// expose the counters (kaudit_emitter_events_total{result=sent|dropped|failed}).
//
// Cost: about 0.3-0.4µs of CPU per event for the whole pipeline (enqueue,
// encode, produce, acknowledgement) with no allocation in steady state
// (records and buffers are reused), measured against an in-process broker
// on a shared 2-core VM (BenchmarkEmitter).
package emitter
