#!/usr/bin/env python3
"""Reads the client actions cablecar adds to a Redis Stream
(CABLECAR_PERFORM_STREAM) as a consumer group, with redis-py (Debian:
python3-redis), and prints each one as a line of JSON.

    REDIS_URL=redis://127.0.0.1:6379/0 python3 perform_consumer.py cable:actions

Options: --group NAME (default "workers"), --consumer NAME (default the host
and pid), --count N (exit after N actions; default: run forever), --block MS
(give up after MS milliseconds without an action; default 0: wait forever).

The group starts at the beginning of the stream the first time, so actions
added before the worker first ran are handled too. Each entry is
acknowledged (XACK) once printed: a worker that dies before that leaves it
pending for XAUTOCLAIM.
"""
import argparse
import json
import os
import socket
import sys

import redis

# Fields whose values are JSON text; the rest are plain strings.
JSON_FIELDS = ("streams", "data", "claims")


def decode(entry_id, fields):
    """An entry as a dict: strings as they are, JSON fields decoded."""
    action = {"id": entry_id}
    for key, value in fields.items():
        action[key] = json.loads(value) if key in JSON_FIELDS else value
    return action


def handle(action):
    # A real worker acts here on action["action"] and action["data"], as
    # the channel's method would; action["user"] is who sent it.
    print(json.dumps(action), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("stream")
    ap.add_argument("--group", default="workers")
    ap.add_argument("--consumer", default=f"{socket.gethostname()}-{os.getpid()}")
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--block", type=int, default=0)
    args = ap.parse_args()

    r = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), decode_responses=True)
    try:
        r.xgroup_create(args.stream, args.group, id="0", mkstream=True)
    except redis.ResponseError as e:
        if "BUSYGROUP" not in str(e):  # the group exists already: fine
            raise

    handled = 0
    while args.count == 0 or handled < args.count:
        # ">" asks for entries never delivered to this group.
        want = 10 if args.count == 0 else args.count - handled
        batches = r.xreadgroup(args.group, args.consumer, {args.stream: ">"}, count=want, block=args.block)
        if not batches:
            sys.exit(f"no action within {args.block} ms")
        for _stream, entries in batches:
            for entry_id, fields in entries:
                handle(decode(entry_id, fields))
                r.xack(args.stream, args.group, entry_id)
                handled += 1


if __name__ == "__main__":
    main()
