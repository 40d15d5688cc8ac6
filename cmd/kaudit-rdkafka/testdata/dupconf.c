/*
 * dupconf: a C client of the kaudit plugin for the Go tests, for what kcat
 * and Python do not exercise: rd_kafka_conf_dup (the copy must keep its
 * audit settings, and the plugin, loaded again for the copy, must not
 * register twice), messages that already carry headers (also a
 * correlation_id too long for the plugin's ring records), and a second
 * client created after the first one and its configuration are gone (the
 * plugin must survive librdkafka's dlclose).
 *
 *   dupconf <plugin.so> <brokers> <topic> <audit-topic>
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <librdkafka/rdkafka.h>

static void set(rd_kafka_conf_t *conf, const char *k, const char *v) {
	char errstr[512];
	if (rd_kafka_conf_set(conf, k, v, errstr, sizeof(errstr)) !=
	    RD_KAFKA_CONF_OK) {
		fprintf(stderr, "set %s=%s: %s\n", k, v, errstr);
		exit(2);
	}
}

static int failures;

static void dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
	(void)rk;
	(void)opaque;
	if (m->err) {
		fprintf(stderr, "delivery failed: %s\n", rd_kafka_err2str(m->err));
		failures++;
	}
}

static void produce(rd_kafka_t *rk, const char *topic, const char *value,
                    const char *hname, const char *hval) {
	rd_kafka_resp_err_t err;
	if (hname) {
		rd_kafka_headers_t *h = rd_kafka_headers_new(2);
		rd_kafka_header_add(h, hname, -1, hval, -1);
		err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
		                        RD_KAFKA_V_VALUE((void *)value, strlen(value)),
		                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		                        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
		if (err)
			rd_kafka_headers_destroy(h);
	} else {
		err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
		                        RD_KAFKA_V_VALUE((void *)value, strlen(value)),
		                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		                        RD_KAFKA_V_END);
	}
	if (err) {
		fprintf(stderr, "produce: %s\n", rd_kafka_err2str(err));
		exit(3);
	}
}

static rd_kafka_t *producer(rd_kafka_conf_t *conf) {
	char errstr[512];
	rd_kafka_conf_set_dr_msg_cb(conf, dr);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!rk) {
		fprintf(stderr, "rd_kafka_new: %s\n", errstr);
		exit(4);
	}
	return rk;
}

static void finish(rd_kafka_t *rk) {
	if (rd_kafka_flush(rk, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		fprintf(stderr, "flush timed out\n");
		exit(5);
	}
	rd_kafka_destroy(rk);
}

int main(int argc, char **argv) {
	if (argc != 5) {
		fprintf(stderr, "usage: %s plugin brokers topic audit-topic\n", argv[0]);
		return 1;
	}
	const char *plugin = argv[1], *brokers = argv[2], *topic = argv[3],
	           *audit = argv[4];

	/* 1. A copied configuration keeps its audit settings. */
	rd_kafka_conf_t *orig = rd_kafka_conf_new();
	set(orig, "plugin.library.paths", plugin);
	set(orig, "bootstrap.servers", brokers);
	set(orig, "client.id", "dup-producer");
	set(orig, "audit.topic", audit);
	rd_kafka_conf_t *copy = rd_kafka_conf_dup(orig);
	rd_kafka_conf_destroy(orig);

	rd_kafka_t *rk = producer(copy);
	produce(rk, topic, "plain message", NULL, NULL);
	produce(rk, topic, "message with a trace header", "trace", "t-1");
	produce(rk, topic, "message with its own ID", "correlation_id", "dup-fixed-id");
	/* An ID longer than a ring record holds takes the slow path. */
	char long_id[101];
	memset(long_id, 'L', 100);
	long_id[100] = '\0';
	produce(rk, topic, "message with a long ID", "correlation_id", long_id);
	finish(rk);

	/* 2. A client created after everything above is destroyed. */
	rd_kafka_conf_t *again = rd_kafka_conf_new();
	set(again, "plugin.library.paths", plugin);
	set(again, "audit.topic", audit);
	set(again, "bootstrap.servers", brokers);
	set(again, "client.id", "second-producer");
	rk = producer(again);
	produce(rk, topic, "after reload", NULL, NULL);
	finish(rk);

	return failures ? 6 : 0;
}
