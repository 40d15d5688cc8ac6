"""A process that creates a producer with the kaudit plugin, then forks; the
child creates a producer of its own with the plugin and produces one
message (Debian's python3-confluent-kafka). Used by TestForkedChild:

    /usr/bin/python3 fork.py --plugin kaudit-rdkafka.so --bootstrap host:port \
        --topic orders --audit-topic kaudit.events

A Go runtime does not survive fork, so the plugin must not enter it in the
child. Prints one JSON object: how the child ended ("exit" code or
"signal"), and the delivery results of parent and child.
"""
import argparse
import json
import os
import signal
import sys
import time

from confluent_kafka import Producer


def produce(conf, topic, value):
    p = Producer(conf)
    delivered = []
    p.produce(topic, value=value, on_delivery=lambda err, msg: delivered.append(err is None))
    left = p.flush(20)
    del p
    return left == 0 and delivered == [True]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plugin", required=True)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--audit-topic", required=True)
    args = ap.parse_args()
    conf = {
        "bootstrap.servers": args.bootstrap,
        "plugin.library.paths": args.plugin,
        "audit.topic": args.audit_topic,
    }
    out = {"parent": produce(dict(conf, **{"client.id": "parent"}), args.topic, b"from the parent")}
    # Keep one client alive across the fork, as a prefork server would.
    keep = Producer(dict(conf, **{"client.id": "kept"}))
    # Fork once it is idle, as a prefork server does: librdkafka is not
    # fork-safe, and a child forked while the parent's client threads are
    # still starting (connecting, resolving) can inherit one of its locks
    # held and hang in its own client, plugin or not.
    keep.list_topics(timeout=10)
    time.sleep(0.5)

    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        signal.alarm(30)  # a hung child kills itself
        ok = produce(dict(conf, **{"client.id": "child"}), args.topic, b"from the child")
        os._exit(0 if ok else 3)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        out["child"] = {"signal": os.WTERMSIG(status)}
    else:
        out["child"] = {"exit": os.WEXITSTATUS(status)}
    keep.flush(5)
    del keep
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
