#!/usr/bin/env python3
"""Ingest one article through bulletin-ingest, then Get it back from bulletin-store.

The worked example of docs/protocol.md. Generate the Python classes first:

    mkdir -p gen && protoc --python_out=gen -I proto proto/bulletin.proto
    PYTHONPATH=gen python3 examples/python/ingest_and_get.py

Endpoints come from BULLETIN_INGEST (default tcp://127.0.0.1:5555) and
BULLETIN_STORE (default tcp://127.0.0.1:5557), as for the `bulletin` CLI.
Needs python3-zmq and python3-protobuf. Exits 0 on success, 1 otherwise.
"""

import os
import sys
import time

import zmq

import bulletin_pb2 as pb

INGEST = os.environ.get("BULLETIN_INGEST", "tcp://127.0.0.1:5555")
STORE = os.environ.get("BULLETIN_STORE", "tcp://127.0.0.1:5557")
TIMEOUT_MS = 5000


def call(ctx, endpoint, request):
    """One request, one reply, over a REQ socket (REQ adds the empty delimiter frame)."""
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)       # never hang on exit
    sock.connect(endpoint)
    try:
        sock.send(request.SerializeToString())
        if not sock.poll(TIMEOUT_MS):    # a REQ that timed out cannot be reused: we close it
            sys.exit("no answer from %s within %d ms" % (endpoint, TIMEOUT_MS))
        reply = pb.Reply()
        reply.ParseFromString(sock.recv())
    finally:
        sock.close()
    if reply.request_id != request.request_id:
        sys.exit("reply for request %d, expected %d" % (reply.request_id, request.request_id))
    if reply.status.code != pb.OK:
        sys.exit("%s: %s" % (pb.StatusCode.Name(reply.status.code), reply.status.message))
    return reply


def main():
    ctx = zmq.Context()

    # 1. Ingest one article. version_major 1, a request_id of our choice.
    req = pb.Request(version_major=1, request_id=1)
    art = req.ingest.items.add().article
    art.url = "https://example.org/news/2026/hello-bulletin"   # becomes the key
    art.site = "Example News"
    art.category = "World"
    art.title = "  Hello,   Bulletin  "                       # normalized by ingest
    art.body = "The first article sent from Python.\r\n"
    art.tags.extend(["example", "python"])
    art.published_at = int(time.time() * 1000)

    rep = call(ctx, INGEST, req)
    result = rep.ingest.results[0]
    print("ingest: status=%s key=%s id=%d seq=%d"
          % (pb.WriteStatus.Name(result.status), result.key, result.id, result.seq))
    for w in result.warnings:
        print("  warning:", w)
    if result.status not in (pb.CREATED, pb.UPDATED, pb.UNCHANGED):
        print("rejected:", result.error)
        return 1

    # 2. Get it back from the store by id.
    req = pb.Request(version_major=1, request_id=2)
    req.get.id = result.id
    rep = call(ctx, STORE, req)
    a = rep.get.article
    print("get: id=%d seq=%d key=%s" % (a.id, a.seq, a.key))
    print("     title=%r site=%r category=%r tags=%s" % (a.title, a.site, a.category, list(a.tags)))
    print("     body=%r" % a.body)

    ctx.term()
    ok = a.id == result.id and a.title == "Hello, Bulletin" and a.seq == result.seq
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
