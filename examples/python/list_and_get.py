#!/usr/bin/env python3
"""A foreign client of the read tier: ingest, list (read-your-writes, cursor
pagination) and get through the query broker, with nothing but python3-zmq and
classes generated from proto/bulletin.proto.

    mkdir -p gen && protoc --python_out=gen -I proto proto/bulletin.proto
    PYTHONPATH=gen python3 examples/python/list_and_get.py

Endpoints: BULLETIN_INGEST (default tcp://127.0.0.1:5555) and BULLETIN_QUERY
(default tcp://127.0.0.1:5556), as for the `bulletin` CLI. Exits 0 on success.
"""

import os
import sys
import time

import zmq

import bulletin_pb2 as pb

INGEST = os.environ.get("BULLETIN_INGEST", "tcp://127.0.0.1:5555")
QUERY = os.environ.get("BULLETIN_QUERY", "tcp://127.0.0.1:5556")
TIMEOUT_MS = 5000
_next_id = [100]


def call(ctx, endpoint, fill):
    """Build a Request with fill(req), send it on a DEALER ([empty][body]), wait for its Reply."""
    _next_id[0] += 1
    req = pb.Request(version_major=1, request_id=_next_id[0], deadline_ms=TIMEOUT_MS - 500)
    fill(req)
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send_multipart([b"", req.SerializeToString()])
        deadline = time.monotonic() + TIMEOUT_MS / 1000.0
        while True:
            left = int((deadline - time.monotonic()) * 1000)
            if left <= 0 or not sock.poll(left):
                sys.exit("no answer from %s within %d ms" % (endpoint, TIMEOUT_MS))
            frames = sock.recv_multipart()
            reply = pb.Reply()
            reply.ParseFromString(frames[-1])
            if reply.request_id == req.request_id:   # a DEALER may see a stale reply: skip it
                break
    finally:
        sock.close()
    if reply.status.code != pb.OK:
        sys.exit("%s: %s" % (pb.StatusCode.Name(reply.status.code), reply.status.message))
    return reply


def main():
    ctx = zmq.Context()
    site = "Python Example %d" % os.getpid()     # our own site, so the listing is ours alone
    now = int(time.time() * 1000)

    # 1. Ingest five articles in one batch.
    def ingest(req):
        for i in range(5):
            a = req.ingest.items.add().article
            a.site = site
            a.category = "Examples"
            a.title = "Example article %d" % i
            a.body = "Body of example article number %d." % i
            a.published_at = now - i * 60000        # one minute apart, article 0 newest
    rep = call(ctx, INGEST, ingest)
    ids = [r.id for r in rep.ingest.results]
    print("ingested ids=%s max_seq=%d" % (ids, rep.ingest.max_seq))

    # 2. List them newest first, two per page, following the cursor. min_seq makes
    #    the broker pick a worker that has applied our write (read-your-writes).
    seen, cursor = [], b""
    while True:
        def lst(req):
            req.min_seq = rep.ingest.max_seq
            req.list.filter.site = site
            req.list.limit = 2
            req.list.cursor = cursor
            req.list.with_total = not cursor
        page = call(ctx, QUERY, lst)
        for s in page.list.items:
            seen.append(s.id)
            print("  %d  %s  %s" % (s.id, s.title, s.excerpt))
        if page.list.has_total:
            print("total=%d (served by %s at seq %d)"
                  % (page.list.total, page.served_by, page.applied_seq))
        cursor = page.list.next_cursor
        if not cursor:
            break

    # 3. Get the newest one by id through the query tier.
    def get(req):
        req.min_seq = rep.ingest.max_seq
        req.get.id = ids[0]
    art = call(ctx, QUERY, get).get.article
    print("get: id=%d title=%r body=%r" % (art.id, art.title, art.body))

    ctx.term()
    ok = seen == ids and art.title == "Example article 0"
    print("listed in order: %s" % ("yes" if ok else "NO"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
