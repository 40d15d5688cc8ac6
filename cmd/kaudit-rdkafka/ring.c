/*
 * The ring of audit records between librdkafka's callbacks (C, any thread)
 * and the Go reader of a client, the process-wide topic name table, and
 * the key/value digest. Nothing here calls into Go, so librdkafka's broker
 * threads never enter the Go runtime (no wait for a Go P, no GC assist).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "plugin.h"

/* ---- ring --------------------------------------------------------------- */

/* Records live in chunks allocated while they are needed: an idle client
 * holds one chunk (512 KiB), a burst up to capacity records. */
#define CHUNK 4096
#define SPARE_CHUNKS 2

typedef struct chunk {
	struct chunk *next;
	uint32_t r, w; /* next record to read, to write */
	kaudit_rec recs[CHUNK];
} chunk;

struct kaudit_ring {
	pthread_mutex_t mu;
	pthread_cond_t writable; /* signalled when records are taken */
	chunk *head;             /* read from; NULL when no chunk */
	chunk *tail;             /* written to */
	chunk *spare;            /* recycled chunks */
	int nspare;
	uint64_t count;
	uint64_t cap;
	int writers_waiting;
	int closed;
	int sleeping; /* the reader waits on efd for the next push */
	int efd;      /* eventfd waking the reader; closed by kaudit_ring_free */
	kaudit_counters counters;
	int ndrops;
	kaudit_drop drops[KAUDIT_DROP_SLOTS];
};

kaudit_ring *kaudit_ring_new(uint32_t capacity) {
	if (capacity == 0)
		return NULL;
	kaudit_ring *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->efd < 0) {
		free(r);
		return NULL;
	}
	r->cap = capacity;
	pthread_mutex_init(&r->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->writable, &ca);
	pthread_condattr_destroy(&ca);
	return r;
}

/* kaudit_ring_fd returns a duplicate of the ring's eventfd, which the
 * caller owns and closes. The ring keeps its own until kaudit_ring_free,
 * which runs once no thread can push any more: a push that decided to wake
 * the reader and writes after the reader has gone (and closed its
 * descriptor) writes into the ring's eventfd, never into a descriptor
 * number the application has reused since. */
int kaudit_ring_fd(kaudit_ring *r) { return fcntl(r->efd, F_DUPFD_CLOEXEC, 0); }

static void wake(kaudit_ring *r) {
	uint64_t one = 1;
	ssize_t n    = write(r->efd, &one, sizeof(one));
	(void)n; /* EAGAIN: the counter is already non-zero, the reader wakes */
}

static void free_chunks(chunk *c) {
	while (c) {
		chunk *next = c->next;
		free(c);
		c = next;
	}
}

/* kaudit_ring_free frees r and closes its eventfd. */
void kaudit_ring_free(kaudit_ring *r) {
	if (!r)
		return;
	close(r->efd);
	pthread_cond_destroy(&r->writable);
	pthread_mutex_destroy(&r->mu);
	free_chunks(r->head);
	free_chunks(r->spare);
	free(r);
}

static void deadline_after(struct timespec *ts, int ms) {
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* full reports (mu held) whether the ring lacks room: for one more record,
 * or with inflight, for the records of all *inflight messages. */
static int full(const kaudit_ring *r, const int64_t *inflight) {
	if (!inflight)
		return r->count >= r->cap;
	int64_t n = __atomic_load_n(inflight, __ATOMIC_RELAXED);
	return r->count + (uint64_t)(n > 0 ? n : 0) > r->cap;
}

/* wait_room waits (mu held) until the ring has room or is closed, at most
 * wait_ms. */
static void wait_room(kaudit_ring *r, const int64_t *inflight, int wait_ms) {
	if (wait_ms <= 0 || r->closed || !full(r, inflight))
		return;
	struct timespec dl;
	deadline_after(&dl, wait_ms);
	r->writers_waiting++;
	while (!r->closed && full(r, inflight)) {
		if (pthread_cond_timedwait(&r->writable, &r->mu, &dl) == ETIMEDOUT)
			break;
	}
	r->writers_waiting--;
}

/* slot returns where the next record goes (mu held), or NULL. */
static kaudit_rec *slot(kaudit_ring *r) {
	if (r->tail && r->tail->w < CHUNK)
		return &r->tail->recs[r->tail->w];
	chunk *c = r->spare;
	if (c) {
		r->spare = c->next;
		r->nspare--;
	} else if (!(c = malloc(sizeof(*c)))) {
		return NULL;
	}
	c->next = NULL;
	c->r = c->w = 0;
	if (r->tail)
		r->tail->next = c;
	else
		r->head = c;
	r->tail = c;
	return &c->recs[0];
}

static void recycle(kaudit_ring *r, chunk *c) {
	if (r->nspare < SPARE_CHUNKS) {
		c->next  = r->spare;
		r->spare = c;
		r->nspare++;
	} else {
		free(c);
	}
}

/* note_drop counts a dropped record in the drop table (mu held): per
 * topic, kind and minute of the event time (the send time of a failed
 * produce, like codecs.Event.TimeNs), or in the kind's catch-all once the
 * table is full. */
static void note_drop(kaudit_ring *r, const kaudit_rec *rec) {
	int64_t t = rec->now_ns;
	if (rec->kind == KAUDIT_PRODUCE && rec->err != 0 && rec->send_ns > 0)
		t = rec->send_ns;
	uint32_t topic = rec->topic;
	int64_t minute = t / 60000000000LL;
	kaudit_drop *d = NULL;
	for (int i = 0; i < r->ndrops; i++) {
		kaudit_drop *x = &r->drops[i];
		if (x->topic == topic && x->kind == rec->kind && x->minute == minute) {
			d = x;
			break;
		}
	}
	if (!d && r->ndrops >= KAUDIT_DROP_SLOTS - 2) {
		topic  = UINT32_MAX;
		minute = 0;
		for (int i = 0; i < r->ndrops; i++) {
			kaudit_drop *x = &r->drops[i];
			if (x->topic == topic && x->kind == rec->kind) {
				d = x;
				break;
			}
		}
	}
	if (!d) {
		d = &r->drops[r->ndrops++];
		d->topic    = topic;
		d->kind     = rec->kind;
		d->minute   = minute;
		d->n        = 0;
		d->start_ns = d->end_ns = t;
	}
	d->n++;
	if (t < d->start_ns)
		d->start_ns = t;
	if (t > d->end_ns)
		d->end_ns = t;
}

int kaudit_ring_take_drops(kaudit_ring *r, kaudit_drop *out, int max) {
	pthread_mutex_lock(&r->mu);
	int n = r->ndrops < max ? r->ndrops : max;
	memcpy(out, r->drops + (r->ndrops - n), (size_t)n * sizeof(kaudit_drop));
	r->ndrops -= n;
	pthread_mutex_unlock(&r->mu);
	return n;
}

int kaudit_ring_push(kaudit_ring *r, const kaudit_rec *rec, int wait_ms) {
	pthread_mutex_lock(&r->mu);
	wait_room(r, NULL, wait_ms);
	kaudit_rec *dst;
	if (r->closed || r->count >= r->cap || !(dst = slot(r))) {
		r->counters.dropped++;
		if (!r->closed)
			note_drop(r, rec);
		pthread_mutex_unlock(&r->mu);
		return 0;
	}
	*dst = *rec;
	r->tail->w++;
	r->count++;
	r->counters.pushed++;
	int signal  = r->sleeping;
	r->sleeping = 0;
	pthread_mutex_unlock(&r->mu);
	if (signal) {
#ifdef KAUDIT_TEST_PUSH_WAKE_DELAY_US
		usleep(KAUDIT_TEST_PUSH_WAKE_DELAY_US); /* testdata/ringrace.c only */
#endif
		wake(r);
	}
	return 1;
}

int kaudit_ring_room(kaudit_ring *r, const int64_t *inflight, int wait_ms) {
	pthread_mutex_lock(&r->mu);
	wait_room(r, inflight, wait_ms);
	int room = !r->closed && !full(r, inflight);
	pthread_mutex_unlock(&r->mu);
	return room;
}

void kaudit_ring_note(kaudit_ring *r, int what) {
	pthread_mutex_lock(&r->mu);
	switch (what) {
	case KAUDIT_NOTE_UNAUDITED:
		r->counters.unaudited++;
		break;
	case KAUDIT_NOTE_UNTRACKED:
		r->counters.untracked++;
		break;
	case KAUDIT_NOTE_SLOW:
		r->counters.slow++;
		break;
	case KAUDIT_NOTE_UNGROUPED:
		r->counters.ungrouped++;
		break;
	}
	pthread_mutex_unlock(&r->mu);
}

int kaudit_ring_take(kaudit_ring *r, kaudit_rec *out, int max, int arm) {
	pthread_mutex_lock(&r->mu);
	if (r->count == 0) {
		int closed = r->closed;
		if (arm && !closed)
			r->sleeping = 1;
		pthread_mutex_unlock(&r->mu);
		return closed ? -1 : 0;
	}
	int n = 0;
	while (n < max && r->head) {
		chunk *c    = r->head;
		uint32_t k = c->w - c->r;
		if ((uint32_t)(max - n) < k)
			k = (uint32_t)(max - n);
		memcpy(out + n, c->recs + c->r, (size_t)k * sizeof(kaudit_rec));
		c->r += k;
		n += (int)k;
		if (c->r < c->w)
			break; /* out is full */
		if (c == r->tail) {
			if (c->w == CHUNK) { /* full and read: recycle it */
				r->head = r->tail = NULL;
				recycle(r, c);
			} else {
				c->r = c->w = 0;
			}
			break;
		}
		r->head = c->next;
		recycle(r, c);
	}
	r->count -= (uint64_t)n;
	if (r->writers_waiting)
		pthread_cond_broadcast(&r->writable);
	pthread_mutex_unlock(&r->mu);
	return n;
}

void kaudit_ring_close(kaudit_ring *r) {
	pthread_mutex_lock(&r->mu);
	r->closed   = 1;
	r->sleeping = 0;
	pthread_cond_broadcast(&r->writable);
	pthread_mutex_unlock(&r->mu);
	wake(r);
}

void kaudit_ring_counters(kaudit_ring *r, kaudit_counters *c) {
	pthread_mutex_lock(&r->mu);
	*c = r->counters;
	pthread_mutex_unlock(&r->mu);
}

/* ---- topic table -------------------------------------------------------- */

/* Topic names are interned once per process, so records carry a 32-bit
 * index. Names are never freed. Lookups are lock-free: a slot, once set,
 * never changes, and names are published before their slot. */
#define TOPIC_SLOTS 32768 /* open addressing, at most half full */
#define TOPIC_MAX (TOPIC_SLOTS / 2)

static char *topic_names[TOPIC_MAX];
static uint32_t topic_slots[TOPIC_SLOTS]; /* index + 1; 0: empty */
static uint32_t topic_count;
static pthread_mutex_t topic_mu = PTHREAD_MUTEX_INITIALIZER;

static uint32_t fnv1a(const char *s) {
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

/* find returns the index of name + 1, or 0 and the first empty slot. */
static uint32_t topic_find(const char *name, uint32_t h, uint32_t *empty) {
	for (uint32_t i = 0; i < TOPIC_SLOTS; i++) {
		uint32_t slot = (h + i) & (TOPIC_SLOTS - 1);
		uint32_t v = __atomic_load_n(&topic_slots[slot], __ATOMIC_ACQUIRE);
		if (v == 0) {
			*empty = slot;
			return 0;
		}
		if (strcmp(topic_names[v - 1], name) == 0)
			return v;
	}
	return 0;
}

/* kaudit_topic_index returns the table index of name, adding it if
 * needed, or UINT32_MAX if the table is full. */
uint32_t kaudit_topic_index(const char *name) {
	uint32_t h = fnv1a(name), empty = 0;
	uint32_t v = topic_find(name, h, &empty);
	if (v)
		return v - 1;
	pthread_mutex_lock(&topic_mu);
	v = topic_find(name, h, &empty); /* someone may have added it */
	if (!v && topic_count < TOPIC_MAX) {
		char *copy = strdup(name);
		if (copy) {
			uint32_t idx         = topic_count;
			topic_names[idx]     = copy;
			__atomic_store_n(&topic_count, idx + 1, __ATOMIC_RELEASE);
			v = idx + 1;
			__atomic_store_n(&topic_slots[empty], v, __ATOMIC_RELEASE);
		}
	}
	pthread_mutex_unlock(&topic_mu);
	return v ? v - 1 : UINT32_MAX;
}

const char *kaudit_topic_name(uint32_t idx) {
	if (idx >= __atomic_load_n(&topic_count, __ATOMIC_ACQUIRE))
		return NULL;
	return topic_names[idx];
}

/* ---- digest: XXH64, seed 0 ---------------------------------------------- */

#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL
#define P4 0x85EBCA77C2B2AE63ULL
#define P5 0x27D4EB2F165667C5ULL

static inline uint64_t rotl64(uint64_t x, int r) {
	return (x << r) | (x >> (64 - r));
}

static inline uint64_t read64(const uint8_t *p) {
	uint64_t v;
	memcpy(&v, p, 8); /* little-endian host (x86-64, arm64) */
	return v;
}

static inline uint32_t read32(const uint8_t *p) {
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static inline uint64_t xround(uint64_t acc, uint64_t in) {
	acc += in * P2;
	acc = rotl64(acc, 31);
	return acc * P1;
}

static inline uint64_t xmerge(uint64_t acc, uint64_t v) {
	acc ^= xround(0, v);
	return acc * P1 + P4;
}

typedef struct xxh64 {
	uint64_t v[4];
	uint64_t total;
	uint8_t buf[32];
	size_t n; /* bytes in buf */
} xxh64;

static void xxh_init(xxh64 *x) {
	x->v[0]  = P1 + P2;
	x->v[1]  = P2;
	x->v[2]  = 0;
	x->v[3]  = 0 - P1;
	x->total = 0;
	x->n     = 0;
}

static void xxh_stripe(xxh64 *x, const uint8_t *p) {
	x->v[0] = xround(x->v[0], read64(p));
	x->v[1] = xround(x->v[1], read64(p + 8));
	x->v[2] = xround(x->v[2], read64(p + 16));
	x->v[3] = xround(x->v[3], read64(p + 24));
}

static void xxh_update(xxh64 *x, const void *data, size_t len) {
	const uint8_t *p = data;
	x->total += len;
	if (x->n + len < 32) {
		if (len)
			memcpy(x->buf + x->n, p, len);
		x->n += len;
		return;
	}
	if (x->n) {
		size_t fill = 32 - x->n;
		memcpy(x->buf + x->n, p, fill);
		xxh_stripe(x, x->buf);
		p += fill;
		len -= fill;
		x->n = 0;
	}
	while (len >= 32) {
		xxh_stripe(x, p);
		p += 32;
		len -= 32;
	}
	if (len)
		memcpy(x->buf, p, len);
	x->n = len;
}

static uint64_t xxh_final(const xxh64 *x) {
	uint64_t h;
	if (x->total >= 32) {
		h = rotl64(x->v[0], 1) + rotl64(x->v[1], 7) + rotl64(x->v[2], 12) +
		    rotl64(x->v[3], 18);
		for (int i = 0; i < 4; i++)
			h = xmerge(h, x->v[i]);
	} else {
		h = P5;
	}
	h += x->total;
	const uint8_t *p = x->buf, *end = x->buf + x->n;
	for (; p + 8 <= end; p += 8) {
		h ^= xround(0, read64(p));
		h = rotl64(h, 27) * P1 + P4;
	}
	if (p + 4 <= end) {
		h ^= (uint64_t)read32(p) * P1;
		h = rotl64(h, 23) * P2 + P3;
		p += 4;
	}
	for (; p < end; p++) {
		h ^= (uint64_t)(*p) * P5;
		h = rotl64(h, 11) * P1;
	}
	h ^= h >> 33;
	h *= P2;
	h ^= h >> 29;
	h *= P3;
	h ^= h >> 32;
	return h;
}

uint64_t kaudit_digest(const void *key, size_t key_len, const void *value,
                       size_t value_len) {
	xxh64 x;
	uint8_t n[8];
	uint64_t kl = key_len;
	for (int i = 0; i < 8; i++)
		n[i] = (uint8_t)(kl >> (8 * i));
	xxh_init(&x);
	xxh_update(&x, n, 8);
	if (key)
		xxh_update(&x, key, key_len);
	if (value)
		xxh_update(&x, value, value_len);
	return xxh_final(&x);
}
