/*
 * The C half of the kaudit librdkafka plugin: the conf_init entry point,
 * the interceptor trampolines librdkafka calls (it wants C function
 * pointers), the correlation ID header of on_send, and the reading of
 * messages for the Go half (exports.go), which builds and sends the
 * events.
 *
 * The message callbacks run entirely in C: on_send adds the header;
 * on_acknowledgement and on_consume read the message into a fixed-size
 * record (ring.c) that the client's Go reader takes in batches. IDs are
 * time-ordered UUIDs (version 7) whose random bits come from a per-thread
 * xoshiro256** generator seeded with getrandom(2) and re-seeded in a
 * forked child.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "plugin.h"
#include "_cgo_export.h"

#define KAUDIT_IC_NAME "kaudit-rdkafka"
#define KAUDIT_HEADER "correlation_id"
#define KAUDIT_PREFIX "audit."

/* ---- correlation IDs ---------------------------------------------------- */

static volatile unsigned long rng_generation = 1; /* bumped in a forked child */
static __thread uint64_t rng_state[4];
static __thread unsigned long rng_seeded_generation; /* 0: never seeded */

/* ---- fork --------------------------------------------------------------- */

/* forked is set in a child forked after the library was loaded. A Go
 * runtime does not survive fork (its threads are gone), and a call into it
 * there hangs, so from then on no callback enters Go: audit.* properties
 * are accepted and ignored, new clients get correlation IDs (pure C) but
 * no events, and the clients inherited from the parent are left alone.
 * The application keeps running, unaudited. */
static volatile int forked;

static void atfork_child(void) {
	rng_generation++;
	forked = 1;
}

/* The handler is registered when the library is loaded: the Go runtime
 * starts then, before any configuration is made. */
__attribute__((constructor)) static void kaudit_register_atfork(void) {
	pthread_atfork(NULL, NULL, atfork_child);
}

static void warn_forked(void) {
	static int warned; /* per process: the flag is copied at fork, 0 then */
	if (__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
		return;
	fprintf(stderr,
	        "kaudit-rdkafka: plugin loaded in a forked child (pid %d): "
	        "clients created here are not audited (a Go runtime does "
	        "not survive fork); create them before forking or in a "
	        "process started with exec\n",
	        (int)getpid());
}

static uint64_t splitmix64(uint64_t *x) {
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void rng_seed(void) {
	if (getrandom(rng_state, sizeof(rng_state), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(rng_state)) {
		/* No entropy available (very early boot): mix the clock, the
		 * thread and a per-thread address. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t x = (uint64_t)ts.tv_sec * 1000000000ULL +
		             (uint64_t)ts.tv_nsec;
		x ^= (uint64_t)pthread_self();
		x ^= (uint64_t)(uintptr_t)&rng_state;
		for (int i = 0; i < 4; i++)
			rng_state[i] = splitmix64(&x);
	}
	if (!(rng_state[0] | rng_state[1] | rng_state[2] | rng_state[3]))
		rng_state[0] = 1; /* the one state xoshiro cannot leave */
	rng_seeded_generation = rng_generation;
}

static inline uint64_t rotl(uint64_t x, int k) {
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (Blackman & Vigna). */
static uint64_t rng_next(void) {
	if (rng_seeded_generation != rng_generation)
		rng_seed();
	uint64_t *s        = rng_state;
	const uint64_t out = rotl(s[1] * 5, 7) * 9;
	const uint64_t t   = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

/* A time-ordered (version 7, RFC 9562) UUID, as audit.PutCorrelationID
 * makes them: 48 bits of Unix milliseconds, then random bits. */
void kaudit_new_id(char *dst) {
	static const char hex[] = "0123456789abcdef";
	uint8_t u[16];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t ms = (uint64_t)ts.tv_sec * 1000ULL + (uint64_t)ts.tv_nsec / 1000000ULL;
	uint64_t a = rng_next(), b = rng_next();
	for (int i = 0; i < 6; i++)
		u[i] = (uint8_t)(ms >> (40 - 8 * i));
	u[6] = (uint8_t)a;
	u[7] = (uint8_t)(a >> 8);
	memcpy(u + 8, &b, 8);
	u[6] = (uint8_t)((u[6] & 0x0f) | 0x70); /* version 7 */
	u[8] = (uint8_t)((u[8] & 0x3f) | 0x80); /* RFC 9562 variant */
	int j = 0;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			dst[j++] = '-';
		dst[j++] = hex[u[i] >> 4];
		dst[j++] = hex[u[i] & 0x0f];
	}
}

/* ---- helpers for Go ----------------------------------------------------- */

char *kaudit_conf_get(const rd_kafka_conf_t *conf, const char *name) {
	size_t size = 0;
	if (rd_kafka_conf_get(conf, name, NULL, &size) != RD_KAFKA_CONF_OK ||
	    size == 0)
		return NULL;
	char *buf = malloc(size);
	if (!buf)
		return NULL;
	if (rd_kafka_conf_get(conf, name, buf, &size) != RD_KAFKA_CONF_OK) {
		free(buf);
		return NULL;
	}
	buf[size - 1] = '\0';
	return buf;
}

void kaudit_set_skip_topic(kaudit_ic *ic, const char *topic) {
	char *copy = topic ? strdup(topic) : NULL;
	free(ic->skip_topic);
	ic->skip_topic = copy;
}

void kaudit_copy_errstr(char *errstr, size_t size, const char *msg) {
	if (errstr && size > 0)
		snprintf(errstr, size, "%s", msg);
}

/* The Go linker marks a c-shared library NODELETE (a Go runtime cannot be
 * unloaded), so librdkafka's dlclose when a configuration is destroyed
 * keeps it loaded. */

/* ---- message reading ---------------------------------------------------- */

static int is_skipped(const kaudit_ic *ic, const char *topic) {
	return ic->skip_topic && topic && strcmp(ic->skip_topic, topic) == 0;
}

static int64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* first_id returns the value of the first correlation_id header (NULL if
 * there is none or it is empty). */
static const void *first_id(const rd_kafka_message_t *m, size_t *len) {
	rd_kafka_headers_t *hdrs = NULL;
	const void *id           = NULL;
	*len                     = 0;
	if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    !hdrs ||
	    rd_kafka_header_get(hdrs, 0, KAUDIT_HEADER, &id, len) !=
	        RD_KAFKA_RESP_ERR_NO_ERROR ||
	    !id || *len == 0)
		return NULL;
	return id;
}

/* record fills rec from m and pushes it to the ring; an ID or topic that
 * does not fit takes the slow path, a direct call into Go. */
static void record(kaudit_ic *ic, const rd_kafka_message_t *m,
                   const char *topic, const void *id, size_t id_len,
                   kaudit_rec *rec, int wait_ms) {
	size_t klen = m->key ? m->key_len : 0;
	size_t vlen = m->payload ? m->len : 0;
	size_t size = klen + vlen;
	rec->offset    = m->offset;
	rec->partition = m->partition;
	rec->ts_ms     = rd_kafka_message_timestamp(m, NULL);
	rec->digest    = kaudit_digest(m->key, klen, m->payload, vlen);
	rec->size      = size > INT32_MAX ? INT32_MAX : (int32_t)size;
	rec->topic     = kaudit_topic_index(topic);
	if (id_len <= KAUDIT_ID_MAX && rec->topic != UINT32_MAX) {
		rec->id_len = (uint8_t)id_len;
		memcpy(rec->id, id, id_len);
		kaudit_ring_push(ic->ring, rec, wait_ms);
		return;
	}
	kaudit_ring_note(ic->ring, KAUDIT_NOTE_SLOW);
	kaudit_msg km;
	km.rec       = *rec;
	km.topic     = topic;
	km.topic_len = strlen(topic);
	km.id        = id;
	km.id_len    = id_len;
	kauditSlow(ic->handle, &km);
}

/* ---- client interceptors ------------------------------------------------ */

/* on_send: application thread, inside produce(). Adds the correlation_id
 * header unless the message has a non-empty one; other headers are kept. */
static rd_kafka_resp_err_t on_send(rd_kafka_t *rk, rd_kafka_message_t *m,
                                   void *opaque) {
	kaudit_ic *ic = opaque;
	(void)rk;
	/* ic is NULL in a client made in a forked child: IDs only. */
	if (!m || !m->rkt || (ic && is_skipped(ic, rd_kafka_topic_name(m->rkt))))
		return RD_KAFKA_RESP_ERR_NO_ERROR;

	rd_kafka_headers_t *hdrs = NULL;
	int created              = 0;
	if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
	    hdrs) {
		const void *v = NULL;
		size_t n      = 0;
		if (rd_kafka_header_get(hdrs, 0, KAUDIT_HEADER, &v, &n) ==
		    RD_KAFKA_RESP_ERR_NO_ERROR) {
			if (v && n > 0)
				goto done; /* keep the ID: the trail continues */
			rd_kafka_header_remove(hdrs, KAUDIT_HEADER);
		}
	} else {
		hdrs    = rd_kafka_headers_new(1);
		created = 1;
		if (!hdrs)
			goto done;
	}

	char id[36];
	kaudit_new_id(id);
	rd_kafka_header_add(hdrs, KAUDIT_HEADER, (ssize_t)strlen(KAUDIT_HEADER),
	                    id, sizeof(id));
	if (created)
		rd_kafka_message_set_headers(m, hdrs); /* the message owns them */

done:
	/* Backpressure (audit.enqueue.timeout.ms): the event of this message
	 * is recorded at acknowledgement, on a thread that never waits, so
	 * wait here, at most wait_ms, until the ring has room for the events
	 * of every message not yet acknowledged. */
	if (ic && ic->ring && ic->wait_ms > 0 && !forked) {
		__atomic_add_fetch(&ic->inflight, 1, __ATOMIC_RELAXED);
		kaudit_ring_room(ic->ring, &ic->inflight, ic->wait_ms);
	}
	return RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* on_acknowledgement: librdkafka's broker threads (or produce() when the
 * partitioner fails). Never waits and never enters Go (but for IDs longer
 * than KAUDIT_ID_MAX). */
static rd_kafka_resp_err_t on_acknowledgement(rd_kafka_t *rk,
                                              rd_kafka_message_t *m,
                                              void *opaque) {
	kaudit_ic *ic = opaque;
	(void)rk;
	if (forked || !ic->ring || !m || !m->rkt)
		return RD_KAFKA_RESP_ERR_NO_ERROR;
	const char *topic = rd_kafka_topic_name(m->rkt);
	if (!topic || is_skipped(ic, topic))
		return RD_KAFKA_RESP_ERR_NO_ERROR;
	size_t id_len;
	const void *id = first_id(m, &id_len);
	if (!id) {
		kaudit_ring_note(ic->ring, KAUDIT_NOTE_UNTRACKED);
	} else {
		kaudit_rec rec;
		rec.kind        = KAUDIT_PRODUCE;
		rec.err         = m->err;
		rec.now_ns      = now_ns();
		int64_t latency = rd_kafka_message_latency(m);
		rec.send_ns     = latency >= 0 ? rec.now_ns - latency * 1000 : 0;
		record(ic, m, topic, id, id_len, &rec, 0);
	}
	/* Only now is the message no longer in flight: on_send reserved room
	 * for its event, and that room must stay reserved until the event is
	 * in the ring, or a concurrent on_send could take it. */
	if (ic->wait_ms > 0)
		__atomic_sub_fetch(&ic->inflight, 1, __ATOMIC_RELAXED);
	return RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* on_consume: application thread, inside poll()/consume(). */
static rd_kafka_resp_err_t on_consume(rd_kafka_t *rk, rd_kafka_message_t *m,
                                      void *opaque) {
	kaudit_ic *ic = opaque;
	(void)rk;
	if (forked || !ic->ring || !m || m->err || !m->rkt) /* errors, partition EOF */
		return RD_KAFKA_RESP_ERR_NO_ERROR;
	const char *topic = rd_kafka_topic_name(m->rkt);
	if (!topic || is_skipped(ic, topic))
		return RD_KAFKA_RESP_ERR_NO_ERROR;
	if (!ic->audit_consume) {
		kaudit_ring_note(ic->ring, KAUDIT_NOTE_UNGROUPED);
		return RD_KAFKA_RESP_ERR_NO_ERROR;
	}
	size_t id_len;
	const void *id = first_id(m, &id_len);
	if (!id) {
		kaudit_ring_note(ic->ring, KAUDIT_NOTE_UNAUDITED);
		return RD_KAFKA_RESP_ERR_NO_ERROR;
	}
	kaudit_rec rec;
	rec.kind    = KAUDIT_CONSUME;
	rec.err     = 0;
	rec.now_ns  = now_ns();
	rec.send_ns = 0;
	record(ic, m, topic, id, id_len, &rec, ic->wait_ms);
	return RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* on_destroy: librdkafka's main thread, before the broker threads stop
 * (acknowledgements may still follow); see kauditOnDestroy. */
static rd_kafka_resp_err_t on_destroy(rd_kafka_t *rk, void *opaque) {
	kaudit_ic *ic = opaque;
	if (forked)
		return RD_KAFKA_RESP_ERR_NO_ERROR;
	kauditOnDestroy(ic->handle, (char *)rd_kafka_name(rk));
	return RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* ---- configuration interceptors ---------------------------------------- */

static rd_kafka_resp_err_t setup(rd_kafka_conf_t *conf, char *errstr,
                                 size_t errstr_size);

static rd_kafka_conf_res_t on_conf_set(rd_kafka_conf_t *conf, const char *name,
                                       const char *val, char *errstr,
                                       size_t errstr_size, void *opaque) {
	kaudit_ic *ic = opaque;
	(void)conf;
	if (!name || strncmp(name, KAUDIT_PREFIX, sizeof(KAUDIT_PREFIX) - 1) != 0)
		return RD_KAFKA_CONF_UNKNOWN;
	if (forked || !ic)
		return RD_KAFKA_CONF_OK; /* accepted, ignored: not audited */
	return kauditConfSet(ic->handle, (char *)name, (char *)val, errstr,
	                     errstr_size) == 0
	           ? RD_KAFKA_CONF_OK
	           : RD_KAFKA_CONF_INVALID;
}

/* on_conf_dup: the copy gets its own instance; librdkafka then replays the
 * audit.* properties of the original through on_conf_set, and loads the
 * plugin again for the copy (conf_init then finds it set up already). */
static rd_kafka_resp_err_t on_conf_dup(rd_kafka_conf_t *new_conf,
                                       const rd_kafka_conf_t *old_conf,
                                       size_t filter_cnt, const char **filter,
                                       void *opaque) {
	(void)old_conf;
	(void)filter_cnt;
	(void)filter;
	(void)opaque;
	return setup(new_conf, NULL, 0);
}

/* on_conf_destroy: for a client's configuration this runs at the end of
 * rd_kafka_destroy(), after every librdkafka thread has been joined, so no
 * callback can use ic any more. */
static rd_kafka_resp_err_t on_conf_destroy(void *opaque) {
	kaudit_ic *ic = opaque;
	if (forked) /* the parent's: its Go half and ring are out of reach */
		return RD_KAFKA_RESP_ERR_NO_ERROR;
	kauditConfDestroy(ic->handle); /* drains the ring, closes the sink */
	kaudit_ring_free(ic->ring);
	free(ic->skip_topic);
	free(ic);
	return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static rd_kafka_resp_err_t on_new(rd_kafka_t *rk, const rd_kafka_conf_t *conf,
                                  void *opaque, char *errstr,
                                  size_t errstr_size) {
	kaudit_ic *ic = opaque;
	rd_kafka_resp_err_t err;

	if (forked) {
		/* Correlation IDs only (ic NULL, or the parent's instance, whose
		 * ring must not be touched here). */
		return rd_kafka_interceptor_add_on_send(rk, KAUDIT_IC_NAME, on_send,
		                                        NULL);
	}
	kauditOnNew(ic, (rd_kafka_conf_t *)conf);

	if ((err = rd_kafka_interceptor_add_on_send(rk, KAUDIT_IC_NAME, on_send,
	                                            ic)) ||
	    (err = rd_kafka_interceptor_add_on_acknowledgement(
	         rk, KAUDIT_IC_NAME, on_acknowledgement, ic)) ||
	    (err = rd_kafka_interceptor_add_on_consume(rk, KAUDIT_IC_NAME,
	                                               on_consume, ic)) ||
	    (err = rd_kafka_interceptor_add_on_destroy(rk, KAUDIT_IC_NAME,
	                                               on_destroy, ic))) {
		if (errstr && errstr_size > 0)
			snprintf(errstr, errstr_size,
			         "kaudit: cannot add interceptors: %s",
			         rd_kafka_err2str(err));
		return err;
	}
	return RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* setup_forked is setup in a forked child: the interceptors that accept
 * audit.* properties and add correlation IDs, without an instance. */
static rd_kafka_resp_err_t setup_forked(rd_kafka_conf_t *conf) {
	warn_forked();
	rd_kafka_resp_err_t err = rd_kafka_conf_interceptor_add_on_conf_set(
	    conf, KAUDIT_IC_NAME, on_conf_set, NULL);
	if (err) /* __CONFLICT: set up already */
		return RD_KAFKA_RESP_ERR_NO_ERROR;
	rd_kafka_conf_interceptor_add_on_conf_dup(conf, KAUDIT_IC_NAME,
	                                          on_conf_dup, NULL);
	rd_kafka_conf_interceptor_add_on_new(conf, KAUDIT_IC_NAME, on_new, NULL);
	return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static rd_kafka_resp_err_t setup(rd_kafka_conf_t *conf, char *errstr,
                                 size_t errstr_size) {
	if (forked)
		return setup_forked(conf);

	kaudit_ic *ic = calloc(1, sizeof(*ic));
	if (!ic) {
		kaudit_copy_errstr(errstr, errstr_size, "kaudit: out of memory");
		return RD_KAFKA_RESP_ERR__FAIL;
	}
	ic->handle = kauditNewInstance();
	if (!ic->handle) {
		free(ic);
		kaudit_copy_errstr(errstr, errstr_size,
		                   "kaudit: cannot create plugin instance");
		return RD_KAFKA_RESP_ERR__FAIL;
	}

	rd_kafka_resp_err_t err = rd_kafka_conf_interceptor_add_on_conf_set(
	    conf, KAUDIT_IC_NAME, on_conf_set, ic);
	if (err == RD_KAFKA_RESP_ERR__CONFLICT) {
		/* Already set up on this configuration: by on_conf_dup for a
		 * copy, or plugin.library.paths was set again. */
		kauditConfDestroy(ic->handle);
		free(ic);
		return RD_KAFKA_RESP_ERR_NO_ERROR;
	}
	if (err) {
		kauditConfDestroy(ic->handle);
		free(ic);
		if (errstr && errstr_size > 0)
			snprintf(errstr, errstr_size,
			         "kaudit: cannot add on_conf_set: %s",
			         rd_kafka_err2str(err));
		return err;
	}
	/* From here on on_conf_destroy owns ic. */
	rd_kafka_conf_interceptor_add_on_conf_destroy(conf, KAUDIT_IC_NAME,
	                                              on_conf_destroy, ic);
	rd_kafka_conf_interceptor_add_on_conf_dup(conf, KAUDIT_IC_NAME,
	                                          on_conf_dup, ic);
	rd_kafka_conf_interceptor_add_on_new(conf, KAUDIT_IC_NAME, on_new, ic);
	return RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* conf_init is the plugin entry point: librdkafka calls it for each
 * configuration object on which plugin.library.paths names this library. */
rd_kafka_resp_err_t conf_init(rd_kafka_conf_t *conf, void **plug_opaquep,
                              char *errstr, size_t errstr_size) {
	(void)plug_opaquep;
	return setup(conf, errstr, errstr_size);
}
