//go:build rdkafka

// Command kaudit-rdkafka is kaudit's librdkafka plugin: a shared library
// that any librdkafka client (C/C++, Python confluent-kafka, kcat, .NET,
// node-rdkafka...) loads with plugin.library.paths to audit every message it
// produces or consumes. It emits the same events as the franz-go interceptor
// (interceptors/kgoaudit), so the correlator cannot tell the clients apart,
// and it is a drop-in for the source blog's C interceptors: same header,
// same audit.* keys, and optionally the same JSON records.
//
// Build it (cgo against Debian's librdkafka-dev):
//
//	make plugin   # go build -tags rdkafka -buildmode=c-shared -o bin/kaudit-rdkafka.so ./cmd/kaudit-rdkafka
//
// and load it, with plugin.library.paths set BEFORE any audit.* key (kcat
// applies -X in order; confluent-kafka sets plugin.library.paths first by
// itself):
//
//	kcat -P -b kafka:9092 -t orders \
//	    -X plugin.library.paths=/usr/local/lib/kaudit-rdkafka.so \
//	    -X audit.topic=kaudit.events
//
//	producer = confluent_kafka.Producer({
//	    'bootstrap.servers': 'kafka:9092',
//	    'plugin.library.paths': '/usr/local/lib/kaudit-rdkafka.so',
//	    'audit.bootstrap.servers': 'audit-kafka:9093',   # default: bootstrap.servers
//	    'audit.security.protocol': 'SASL_SSL',
//	    'audit.sasl.mechanism': 'SCRAM-SHA-512',
//	    'audit.sasl.username': 'auditor',
//	    'audit.sasl.password': '...',
//	})
//
// # What it reports
//
//   - on_send (application thread, inside produce()): the message gets the
//     header correlation_id, a time-ordered version 7 UUID like kgoaudit's, unless
//     it has a non-empty one already (kept: the trail continues); its other
//     headers are kept.
//   - on_acknowledgement (librdkafka's broker threads): one KindProduce
//     event per produced message: send time, ack time, partition, offset,
//     record timestamp, client.id, host, source "librdkafka",
//     codecs.Digest(key, value) and size; for a failed delivery the error
//     text (rd_kafka_err2str) and offset -1 instead of ack time and offset.
//   - on_consume (application thread, inside poll()): one KindConsume event
//     per message returned to the application: group.id, partition, offset,
//     consume time, record timestamp, digest and size. Messages without a
//     correlation_id are counted (unaudited) and skipped, as are the
//     messages of a consumer without group.id (ungrouped); error and EOF
//     events are not messages.
//   - Messages on the audit topic itself are never audited.
//
// Batch consume: librdkafka calls on_consume when it takes a message from
// its queue for the application. With the batch API (confluent-kafka's
// consume(num_messages) with num_messages > 1, rd_kafka_consume_batch,
// rd_kafka_consume_batch_queue), a seek, pause, resume or rebalance during
// the call makes librdkafka drop messages it had already taken for the
// batch (a librdkafka known issue, listed in its CHANGELOG): the plugin has
// then reported consumes the application never received, and no
// interceptor sees the drop. TestBatchConsumeSeek measures it with a
// consumer seeked back every 10ms: with poll() the consume events match the
// messages returned exactly, repeats included; with consume(100), every
// message returned has its event, plus hundreds to thousands of events for
// messages it never got. In verdicts, a message read again after the seek
// becomes DUPLICATE (redelivery) instead of DELIVERED, and one the seek
// skips (or, with librdkafka 2.0's batch API, one lost in a rebalance) is
// DELIVERED although the application never saw it. Audited consumers
// should poll() one message at a time, or not seek, pause or resume while
// a batch call runs.
//
// The send time is not stored anywhere: librdkafka keeps each message's
// enqueue time (the produce() call, µs) and rd_kafka_message_latency
// returns the time since, so send = ack - latency. That costs nothing per
// message, unlike the alternatives: a map from correlation ID (or message)
// to send time (an allocation, a lock, and entries to expire for messages
// never acknowledged), or a second header (bytes on every message, seen by
// every consumer). Its resolution is 1µs.
//
// # How: C callbacks, a ring, one Go reader per client
//
// librdkafka wants C function pointers, so the interceptors are C
// (plugin.c); conf_init is the exported entry point. The message callbacks
// never call into Go: on_send only adds the header (IDs from a per-thread
// xoshiro256** generator seeded by getrandom(2)); on_acknowledgement and
// on_consume copy what the event needs (ID, topic index, partition, offset,
// times, error code, and the digest, computed in C) into a fixed-size
// 128-byte record and push it to the client's ring (ring.c: a mutex, a
// bounded list of 512 KiB chunks allocated only while records wait). One
// goroutine per client takes records in batches of up to 512 (woken
// through an eventfd when the ring was empty), builds the events and hands
// them to interceptors/emitter (goka-compatible partitioning, franz-go
// producer; binary records, or the interceptors' JSON for
// audit.format=interceptor-json). So librdkafka's threads never wait for the Go
// runtime (no P to acquire, no GC assist, no scheduler), and the cost on
// them is a few hundred nanoseconds. Only a correlation ID longer than 70
// bytes (not one of ours) makes a callback call into Go directly.
//
// Bounds: the ring holds audit.queue.buffering.max.messages events (262144
// by default, 128 bytes each: 32 MiB at most, during a burst only), the
// emitter up to 8192 more. Callbacks on broker threads never wait: an event
// that finds the ring full is dropped, counted and reported (see Crash
// safety). With
// audit.enqueue.timeout.ms, the application threads wait, at most that
// long per message: on_send until the ring has room for the events of all
// the messages sent and not yet acknowledged (real backpressure: the
// producer cannot outrun its auditing), on_consume until it has room for
// its event. The reader waits for room in the emitter, so events queue in
// the ring rather than being dropped.
//
// Lifecycle: conf_init and on_conf_dup create one instance (a C struct
// holding a runtime/cgo.Handle to the Go state; C memory never holds a Go
// pointer) per configuration object; on_conf_set takes the audit.* keys;
// on_new starts the client's emitter and reader. on_destroy comes before
// librdkafka's broker threads stop, so acknowledgements (of messages purged
// at destroy too) may follow it: the ring is drained and the emitter closed
// (flushed within audit.close.timeout.ms, 5s) in on_conf_destroy, which
// librdkafka calls after joining all its threads; if that never comes
// (rd_kafka_destroy_flags with RD_KAFKA_DESTROY_F_IMMEDIATE), a timer
// closes them 30s after on_destroy. rd_kafka_conf_dup copies keep their
// audit settings (librdkafka replays them through on_conf_set); conf_init
// runs again for the copy and finds it set up.
//
// Thread safety: on_send and on_consume run on any application thread,
// on_acknowledgement on any broker thread, concurrently; they share only
// the instance's immutable fields (set in on_new before librdkafka starts
// its threads), the ring (mutex) and the process-wide topic name table
// (lock-free reads, insertions under a mutex). The Go state of a client is
// immutable after on_new but for atomic counters and the thread-safe
// emitter; the reader alone owns its caches. Every function exported to C
// recovers panics (counted, logged).
//
// # Configuration
//
// audit.* properties configure the plugin (librdkafka's names, so the
// blog's configuration works unchanged). A key the plugin does not know or
// cannot honour makes rd_kafka_conf_set fail with RD_KAFKA_CONF_INVALID and
// a message naming the key (kcat exits, confluent-kafka raises
// KafkaException), e.g. "kaudit: audit.topc: unknown property (did you mean
// audit.topic?)":
//
//	audit.topic                          audit topic (kaudit.events)
//	audit.format                         kaudit (default) or interceptor-json (or blog-json, its former name)
//	audit.bootstrap.servers              audit brokers; default: the client's own,
//	                                     and then also its security settings
//	audit.security.protocol              plaintext, ssl, sasl_plaintext, sasl_ssl
//	audit.sasl.mechanism(s)              PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
//	audit.sasl.username, audit.sasl.password
//	audit.ssl.ca.location                PEM CA file (system roots by default)
//	audit.ssl.certificate.location       PEM client certificate
//	audit.ssl.key.location               PEM client key (unencrypted)
//	audit.ssl.endpoint.identification.algorithm   https (default) or none
//	audit.enable.ssl.certificate.verification     true (default) or false
//	audit.client.id                      client.id of the audit producer (kaudit-rdkafka)
//	audit.linger.ms                      audit producer linger (5)
//	audit.queue.buffering.max.messages   events that may wait (262144); more are dropped
//	audit.enqueue.timeout.ms             bounded wait for room, application threads only (0)
//	audit.close.timeout.ms               flush time allowed in rd_kafka_destroy (5000)
//	audit.compression.type               none (default, like librdkafka), gzip, snappy, lz4, zstd
//	audit.acks, audit.batch.size, audit.message.timeout.ms, audit.request.timeout.ms
//	audit.stats.file                     append one JSON line of counters per destroyed client
//	audit.log.level                      debug, info, warn (default), error, off (stderr)
//
// Values are checked when set (files are read then). What can only be
// checked once the client exists (a certificate without its key, an
// inherited SASL mechanism the plugin does not support) is logged when the
// client is created, and that client then runs unaudited ("audited":false
// in its stats): librdkafka ignores errors of on_new. It still gets
// correlation IDs.
//
// audit.format=interceptor-json writes the interceptors's record instead of kaudit events
// (codecs.AppendInterceptorRecordIn: compact JSON, keys timestamp, correlation_id,
// action, topic, client, partition, offset), keyed by correlation ID, with
// the blog's timestamp: asctime(3) of the local time of the callback,
// keeping asctime's trailing newline as the blog's records have it. One
// "produce" record per acknowledgement (client = client.id, failed
// deliveries too with librdkafka's offset, like the blog) and one
// "consume" record per consumed message (client = group.id).
//
// Counters: each client appends one JSON line to audit.stats.file when it
// is destroyed (produced, consumed, dropped, sent, failed, unaudited,
// ungrouped, untracked, panics), and logs them (warn if anything was lost).
//
// The plugin's Go runtime runs with GOMAXPROCS=1 unless the GOMAXPROCS
// environment variable says otherwise: the audit work fits in one core,
// and a second one mostly spins the Go scheduler.
//
// # Cost
//
// make bench-plugin (benchkcat: kcat -P of 200,000 100-byte messages, with
// and without the plugin, alternately, against an in-process kfake broker)
// prints the throughput of both, their ratio, the client CPU per message
// and the audit events dropped. The work per message is the header
// (librdkafka's allocations and bytes), the callbacks and the ring on
// librdkafka's threads, and on the plugin's Go side building, encoding and
// producing one audit record per message.
//
// # Limits
//
// A Go runtime cannot be unloaded (the Go linker marks the library
// NODELETE, so librdkafka's dlclose is harmless) and does not survive
// fork. In a child forked after the library was loaded (Python
// multiprocessing's "fork", gunicorn or celery prefork workers) the plugin
// therefore never enters Go: a pthread_atfork handler disables it, audit.*
// properties are accepted and ignored, clients created in the child get
// correlation IDs but no audit events (the first one prints a warning to
// stderr), and the clients inherited from the parent are left alone. The
// application keeps working, unaudited; create the clients after an exec
// (multiprocessing's "spawn" or "forkserver") to audit them. Go does not
// support a second Go runtime in a process, so the plugin is not for Go
// programs (confluent-kafka-go): audit those with kgoaudit-like hooks
// writing through interceptors/emitter.
//
// # Crash safety
//
// Events live in memory until the audit cluster acknowledges them: in the
// ring, the emitter's queue and its client. When the process is killed
// (kill -9, OOM) or exits without destroying its clients, those events,
// and the drops counted but not yet reported, are lost without a trace;
// destroy the clients to lose nothing (Python: flush() and drop the
// producer, close() the consumer; kcat does it). A consumed message whose
// event was lost so is judged LOST for its group (a produced one
// UNAUDITED_PRODUCER): the message was polled, but the audit never heard
// of it. Events dropped while the process lives are never silent: each
// client's drops (ring or emitter queue full, audit records refused or
// timed out) are sent as codecs.KindDrops reports per topic, kind and
// minute once there is room, and at rd_kafka_destroy; in the interceptor-json
// format, which has no room for them, they are only counted.
package main

func main() {}
