"""A consumer in group --group that reads --topic (one partition) with the
kaudit plugin while another thread seeks it back every 10 milliseconds
(Debian's python3-confluent-kafka), either one message at a time (poll) or
in batches (consume(num_messages)). Used by TestBatchConsumeSeek:

    /usr/bin/python3 batchseek.py --plugin kaudit-rdkafka.so --bootstrap host:port \
        --topic orders --group g --n 3000 --mode batch --audit-topic audit

Reads until every offset in [0, n) was returned at least once and it was
sought back --min-seeks times (100), then prints
one JSON object: the offsets returned to the application, in order (with
repeats), and the number of seeks.
"""
import argparse
import json
import random
import sys
import threading
import time

from confluent_kafka import Consumer, TopicPartition


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plugin", required=True)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--audit-topic", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--mode", choices=["poll", "batch"], required=True)
    ap.add_argument("--min-seeks", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()
    c = Consumer({
        "bootstrap.servers": args.bootstrap,
        "plugin.library.paths": args.plugin,
        "audit.topic": args.audit_topic,
        "group.id": args.group,
        "client.id": args.group + "-client",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "message.max.bytes": 4096,
        "fetch.max.bytes": 4096,  # small fetches: a seek lands mid-batch
        "max.partition.fetch.bytes": 4096,
    })
    assigned = threading.Event()
    c.subscribe([args.topic], on_assign=lambda _c, ps: assigned.set())
    got = []
    seen = set()
    stop = threading.Event()
    seeks = [0]

    def seeker():
        rng = random.Random(1)
        assigned.wait()
        while not stop.is_set():
            time.sleep(0.010)
            if not got:
                continue
            back = max(0, got[-1] - rng.randint(0, 50))
            try:
                c.seek(TopicPartition(args.topic, 0, back))
                seeks[0] += 1
            except Exception:
                pass  # not fetching at the moment

    t = threading.Thread(target=seeker)
    t.start()
    deadline = time.time() + args.timeout
    try:
        while (len(seen) < args.n or seeks[0] < args.min_seeks) and time.time() < deadline:
            if args.mode == "poll":
                m = c.poll(0.2)
                msgs = [m] if m is not None else []
            else:
                msgs = c.consume(num_messages=100, timeout=0.2)
            for m in msgs:
                if m.error():
                    continue
                got.append(m.offset())
                seen.add(m.offset())
            if args.mode == "batch":
                time.sleep(0.001)  # processing: seeks land while a batch is being read
    finally:
        stop.set()
        t.join()
    c.close()
    json.dump({"offsets": got, "seeks": seeks[0]}, sys.stdout)


if __name__ == "__main__":
    main()
