#!/usr/bin/env python3
"""Publishes what DocumentChannel.broadcast_to(document, message) publishes in
Rails, from Python with redis-py (Debian: python3-redis), for cablecar.

    REDIS_URL=redis://127.0.0.1:6379/0 python3 publish.py 'a b/c' '{"status":"complete"}'

It prints the Redis channel and how many subscribers (cablecar processes)
got the message.
"""
import base64
import json
import os
import sys
from urllib.parse import quote_plus

import redis

CHANNEL_PREFIX = os.environ.get("CHANNEL_PREFIX", "myapp_production")  # cable.yml channel_prefix
GID_APP = os.environ.get("GID_APP", "myapp")  # GlobalID.app


def gid_param(model, id):
    """GlobalID#to_gid_param: URL-safe Base64, without padding, of
    gid://<app>/<model>/<id>, the id escaped as Ruby's CGI.escape does."""
    uri = f"gid://{GID_APP}/{model}/{quote_plus(str(id), safe='')}"
    return base64.urlsafe_b64encode(uri.encode()).rstrip(b"=").decode()


def broadcast_to_document(r, id, message):
    # DocumentChannel.broadcasting_for(document) is "document:" + the gid param.
    channel = f"{CHANNEL_PREFIX}:document:{gid_param('Document', id)}"
    return channel, r.publish(channel, json.dumps(message, separators=(",", ":")))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: publish.py DOCUMENT_ID JSON")
    r = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    channel, receivers = broadcast_to_document(r, sys.argv[1], json.loads(sys.argv[2]))
    print(f"{channel} {receivers}")
