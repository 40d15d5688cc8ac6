/*
 * Shared between the C half of the plugin (plugin.c, ring.c) and the Go
 * half (cgo preambles). Declarations only: files with //export may not
 * define anything in their preamble.
 */
#ifndef KAUDIT_RDKAFKA_PLUGIN_H
#define KAUDIT_RDKAFKA_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <librdkafka/rdkafka.h>

/* Record kinds. */
#define KAUDIT_PRODUCE 1
#define KAUDIT_CONSUME 2

/* Longest correlation ID a ring record holds; longer IDs take the slow
 * path (a direct call into Go). */
#define KAUDIT_ID_MAX 70

/* kaudit_rec is one audit event as the C callbacks record it: fixed size,
 * no pointers, so Go can copy records out of the ring in batches. */
typedef struct kaudit_rec {
	int64_t offset;
	int64_t ts_ms;   /* record timestamp (ms), -1 if unknown */
	int64_t send_ns; /* produce: ack time minus librdkafka's latency, 0 if unknown */
	int64_t now_ns;  /* CLOCK_REALTIME at the callback (ack or consume time) */
	uint64_t digest; /* codecs.Digest(key, value), computed in C */
	int32_t partition;
	int32_t err;    /* rd_kafka_resp_err_t of a produce (0: acked) */
	uint32_t topic; /* index in the process-wide topic table */
	int32_t size;   /* len(key) + len(value), clamped to INT32_MAX */
	uint8_t kind;
	uint8_t id_len;
	char id[KAUDIT_ID_MAX];
} kaudit_rec;

/* kaudit_ring is a bounded multi-producer, single-consumer queue of
 * records, guarded by a mutex. Pushing never blocks unless the caller
 * allows a bounded wait; a push into a full or closed ring is dropped and
 * counted. */
typedef struct kaudit_ring kaudit_ring;

/* Counters of a ring (read with kaudit_ring_counters). */
typedef struct kaudit_counters {
	uint64_t pushed;    /* records accepted */
	uint64_t dropped;   /* records refused: ring full or closed */
	uint64_t unaudited; /* consumed messages without a correlation ID */
	uint64_t untracked; /* acknowledged messages without a correlation ID */
	uint64_t ungrouped; /* consumed messages of a client without group.id */
	uint64_t slow;      /* records too large for the ring, sent through Go */
} kaudit_counters;

/* kaudit_drop counts the records a ring dropped, per topic, kind and
 * minute of their event time, until the Go reader takes them to report
 * them (codecs.KindDrops). topic is UINT32_MAX for the catch-all of a full
 * table (any topic). */
typedef struct kaudit_drop {
	int64_t minute;
	int64_t start_ns, end_ns; /* earliest and latest event time */
	uint64_t n;
	uint32_t topic;
	uint8_t kind;
} kaudit_drop;

/* KAUDIT_DROP_SLOTS bounds a ring's drop table; the last two slots are the
 * catch-alls (one per kind). */
#define KAUDIT_DROP_SLOTS 64

kaudit_ring *kaudit_ring_new(uint32_t capacity);
/* kaudit_ring_take_drops moves up to max drop counts into out and returns
 * how many. */
int kaudit_ring_take_drops(kaudit_ring *r, kaudit_drop *out, int max);
/* kaudit_ring_push copies rec into the ring (waiting at most wait_ms for
 * room; 0: never wait) and returns 1, or counts it as dropped and returns
 * 0. */
int kaudit_ring_push(kaudit_ring *r, const kaudit_rec *rec, int wait_ms);
/* kaudit_ring_note counts a message that is not audited. */
#define KAUDIT_NOTE_UNAUDITED 1
#define KAUDIT_NOTE_UNTRACKED 2
#define KAUDIT_NOTE_SLOW 3
#define KAUDIT_NOTE_UNGROUPED 4
void kaudit_ring_note(kaudit_ring *r, int what);
void kaudit_ring_free(kaudit_ring *r);
/* kaudit_ring_take copies up to max records into out and returns how many;
 * 0 if the ring is empty, -1 if it is empty and closed. Never blocks. With
 * arm, an empty ring makes the next push wake the reader through
 * kaudit_ring_fd (an eventfd). */
int kaudit_ring_take(kaudit_ring *r, kaudit_rec *out, int max, int arm);
/* kaudit_ring_fd returns a new descriptor of the ring's eventfd (the
 * caller closes it), or -1. */
int kaudit_ring_fd(kaudit_ring *r);
void kaudit_ring_close(kaudit_ring *r);
void kaudit_ring_counters(kaudit_ring *r, kaudit_counters *c);
/* kaudit_ring_room waits at most wait_ms until the ring has room for the
 * records of all *inflight messages (NULL: for one record); returns 1 if
 * it has. */
int kaudit_ring_room(kaudit_ring *r, const int64_t *inflight, int wait_ms);

/* kaudit_topic_index returns the index of a topic name in the process-wide
 * table (adding it), or UINT32_MAX if the table is full. */
uint32_t kaudit_topic_index(const char *name);
/* kaudit_topic_name returns the name of a topic table index, or NULL. */
const char *kaudit_topic_name(uint32_t idx);

/* kaudit_ic is one plugin instance: the ic_opaque of the interceptors the
 * plugin adds to one rd_kafka_conf_t and, after on_new, to the rd_kafka_t
 * made from it. It is C memory and holds no Go pointer: the Go state is
 * reached through handle, a runtime/cgo.Handle (an integer).
 *
 * handle is written once, before the interceptors are added. The other
 * fields are written by on_new (application thread, inside rd_kafka_new)
 * before librdkafka starts its threads, and only read afterwards. The
 * struct is freed by on_conf_destroy, which for a client's configuration
 * runs after librdkafka has joined all of its threads. */
typedef struct kaudit_ic {
	uintptr_t handle;
	kaudit_ring *ring;    /* NULL: not audited (before on_new, or unusable config) */
	char *skip_topic;     /* the audit topic: never audited */
	int wait_ms;          /* audit.enqueue.timeout.ms: application threads only */
	int64_t inflight;     /* with wait_ms: messages sent, not yet acknowledged */
	int audit_consume;    /* the client has a group.id */
} kaudit_ic;

/* kaudit_msg is a message for the slow path: pointers into librdkafka's
 * memory, valid for the duration of the call only. */
typedef struct kaudit_msg {
	kaudit_rec rec; /* everything but the ID */
	const char *topic;
	size_t topic_len;
	const void *id;
	size_t id_len;
} kaudit_msg;

/* kaudit_conf_get returns a malloc'ed copy of property name of conf, or
 * NULL if it is unknown or unset. */
char *kaudit_conf_get(const rd_kafka_conf_t *conf, const char *name);

/* kaudit_set_skip_topic gives ic a copy of the audit topic. */
void kaudit_set_skip_topic(kaudit_ic *ic, const char *topic);

/* kaudit_new_id writes a random version 4 UUID, lowercase, 36 bytes, no
 * terminating NUL. */
void kaudit_new_id(char *dst);

/* kaudit_digest is codecs.Digest: XXH64 (seed 0) of len(key) as 8
 * little-endian bytes, then key, then value. */
uint64_t kaudit_digest(const void *key, size_t key_len, const void *value,
                       size_t value_len);

/* kaudit_copy_errstr copies msg into errstr (size bytes, NUL-terminated). */
void kaudit_copy_errstr(char *errstr, size_t size, const char *msg);

#endif
