/*
 * ringrace: the eventfd of a kaudit ring against its close, for the Go
 * tests (TestRingWakeAfterClose). Built with ring.c and
 * -DKAUDIT_TEST_PUSH_WAKE_DELAY_US, which makes a push that must wake the
 * reader sleep between releasing the ring's mutex and writing the eventfd:
 * the window in which librdkafka's threads could be preempted.
 *
 * Each round: pusher threads push records while a reader takes them and
 * sleeps on the descriptor kaudit_ring_fd gave it, the way the plugin's Go
 * reader does; the main thread closes the ring; the reader drains it and
 * closes its descriptor (as the Go reader does when it returns), putting
 * at once a pipe's write end on that descriptor number, as an application
 * opening a file would. A push that writes the eventfd after
 * that writes into the pipe. Prints the number of rounds in which the pipe
 * received bytes and exits 1 if any did.
 *
 *   ringrace <rounds>
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../plugin.h"

#define PUSHERS 4

static kaudit_ring *ring;
static volatile int stop;
static int stray_pipe[2];

static void *pusher(void *arg) {
	(void)arg;
	kaudit_rec rec;
	memset(&rec, 0, sizeof(rec));
	rec.kind = KAUDIT_PRODUCE;
	rec.id_len = 1;
	rec.id[0] = 'x';
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		kaudit_ring_push(ring, &rec, 0);
		usleep(20); /* let the reader go to sleep, so pushes must wake it */
	}
	return NULL;
}

static void *reader(void *arg) {
	(void)arg;
	int fd = kaudit_ring_fd(ring);
	kaudit_rec buf[64];
	for (;;) {
		int n = kaudit_ring_take(ring, buf, 64, 0);
		if (n < 0)
			break;
		if (n > 0)
			continue;
		n = kaudit_ring_take(ring, buf, 64, 1);
		if (n < 0)
			break;
		if (n > 0)
			continue;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 1000) > 0) {
			uint64_t v;
			ssize_t r = read(fd, &v, sizeof(v));
			(void)r;
		}
	}
	/* Close the descriptor and reuse its number at once, the way an
	 * application opening a file right after would (dup2 does both
	 * atomically). */
	if (pipe2(stray_pipe, O_NONBLOCK) != 0 || dup2(stray_pipe[1], fd) < 0) {
		perror("pipe");
		exit(2);
	}
	close(stray_pipe[1]);
	stray_pipe[1] = fd;
	return NULL;
}

int main(int argc, char **argv) {
	signal(SIGPIPE, SIG_IGN); /* report stray writes, do not die of them */
	int rounds = argc > 1 ? atoi(argv[1]) : 200;
	int bad = 0;
	for (int i = 0; i < rounds; i++) {
		ring = kaudit_ring_new(1 << 20);
		if (!ring) {
			fprintf(stderr, "kaudit_ring_new failed\n");
			return 2;
		}
		__atomic_store_n(&stop, 0, __ATOMIC_RELEASE);
		pthread_t pt[PUSHERS], rt;
		pthread_create(&rt, NULL, reader, NULL);
		for (int j = 0; j < PUSHERS; j++)
			pthread_create(&pt[j], NULL, pusher, NULL);
		usleep(500 + (i % 7) * 100);
		kaudit_ring_close(ring);
		pthread_join(rt, NULL);
		__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
		for (int j = 0; j < PUSHERS; j++)
			pthread_join(pt[j], NULL);
		/* Every thread is gone, as in on_conf_destroy. */
		kaudit_ring_free(ring);
		char b[64];
		ssize_t n = read(stray_pipe[0], b, sizeof(b));
		if (n > 0)
			bad++;
		close(stray_pipe[0]);
		close(stray_pipe[1]);
	}
	printf("%d of %d rounds wrote into a reused descriptor\n", bad, rounds);
	return bad ? 1 : 0;
}
