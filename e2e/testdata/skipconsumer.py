"""A consumer-group member audited by the kaudit librdkafka plugin
(Debian's python3-confluent-kafka) that skips records, for the black-box
tests in e2e:

    /usr/bin/python3 skipconsumer.py --plugin kaudit-rdkafka.so --bootstrap host:port \
        --topic orders --group shipping --log polled.jsonl --skip-after 40 --skip 5

It writes down every message poll() returned (value, partition, offset,
correlation_id header, time) and, once it has read --skip-after messages,
seeks past the next --skip records of the partition it just read from
(once they have all been written: a seek past the end would send the
consumer back to the start): the group never reads them. It stops on SIGTERM, closing the consumer (the
plugin flushes its audit events).
"""
import argparse
import json
import os
import signal
import sys
import time

from confluent_kafka import Consumer, TopicPartition


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plugin", required=True)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--skip-after", type=int, default=0)
    ap.add_argument("--skip", type=int, default=0)
    args = ap.parse_args()

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    c = Consumer({
        "bootstrap.servers": args.bootstrap,
        "plugin.library.paths": args.plugin,
        "group.id": args.group,
        "client.id": args.group + "-py",
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1500,
    })
    c.subscribe([args.topic])
    out = open(args.log, "a")
    read = 0
    skipped = False
    print("started", flush=True)
    while not stop:
        m = c.poll(0.25)
        if m is None or m.error():
            continue
        now = time.time_ns()
        cid = ""
        for k, v in m.headers() or []:
            if k == "correlation_id":
                cid = v.decode("utf-8", "replace")
        out.write(json.dumps({"v": m.value().decode(), "p": m.partition(), "o": m.offset(), "id": cid, "t": now}) + "\n")
        out.flush()
        os.fsync(out.fileno())
        read += 1
        if args.skip and not skipped and read >= args.skip_after:
            target = m.offset() + 1 + args.skip
            _, high = c.get_watermark_offsets(TopicPartition(m.topic(), m.partition()), timeout=5, cached=False)
            if high > target:
                skipped = True
                c.seek(TopicPartition(m.topic(), m.partition(), target))
                print("skipped %d after partition %d offset %d" % (args.skip, m.partition(), m.offset()), flush=True)
    c.close()
    out.close()
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
