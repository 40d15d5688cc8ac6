"""A producer and a consumer audited by the kaudit librdkafka plugin, in one
process (Debian's python3-confluent-kafka). Used by the Go tests:

    /usr/bin/python3 clients.py --plugin kaudit-rdkafka.so --bootstrap host:port \
        --topic orders --produce 100 --client-id py-producer \
        --group py-group --consume 200 --stats stats.jsonl

It produces --produce messages (every message with a "trace" header; the
first --fixed ones also with a correlation_id header of their own), destroys
the producer, then reads --consume messages in group --group and prints one
JSON object: the correlation IDs it read, and whether every message it read
from this producer kept its "trace" header.
"""
import argparse
import gc
import json
import sys

from confluent_kafka import Consumer, KafkaException, Producer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plugin", required=True)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--produce", type=int, default=0)
    ap.add_argument("--fixed", type=int, default=0)
    ap.add_argument("--client-id", default="py-producer")
    ap.add_argument("--group", default="")
    ap.add_argument("--consume", type=int, default=0)
    ap.add_argument("--stats", default="")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("-X", action="append", default=[], help="extra property k=v")
    args = ap.parse_args()

    common = {
        "bootstrap.servers": args.bootstrap,
        "plugin.library.paths": args.plugin,
    }
    if args.stats:
        common["audit.stats.file"] = args.stats
    for kv in args.X:
        k, v = kv.split("=", 1)
        common[k] = v

    out = {"ids": [], "trace_kept": True, "delivered": 0}

    if args.produce:
        p = Producer(dict(common, **{"client.id": args.client_id}))
        errors = []

        def report(err, msg):
            if err is not None:
                errors.append(str(err))
            else:
                out["delivered"] += 1

        for i in range(args.produce):
            headers = [("trace", b"py-%d" % i)]
            if i < args.fixed:
                headers.append(("correlation_id", b"py-fixed-%d" % i))
            p.produce(args.topic, key=b"py-key-%d" % i,
                      value=b"python message %d " % i + b"v" * (i % 80),
                      headers=headers, on_delivery=report)
            p.poll(0)
        left = p.flush(args.timeout)
        if left or errors:
            print("producer: %d undelivered, errors %s" % (left, errors[:3]), file=sys.stderr)
            sys.exit(1)
        # Destroy the producer before the consumer exists: the plugin must
        # survive librdkafka unloading it (dlclose) and being loaded again.
        del p
        gc.collect()

    if args.consume:
        c = Consumer(dict(common, **{
            "group.id": args.group,
            "client.id": args.group + "-client",
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
        }))
        c.subscribe([args.topic])
        import time
        deadline = time.time() + args.timeout
        while len(out["ids"]) < args.consume and time.time() < deadline:
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            hdrs = dict(msg.headers() or [])
            cid = hdrs.get("correlation_id")
            out["ids"].append(cid.decode() if cid else None)
            if msg.key() and msg.key().startswith(b"py-key-") and "trace" not in hdrs:
                out["trace_kept"] = False
        c.close()

    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
