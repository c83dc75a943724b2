#!/usr/bin/env python3
"""Full-text search from Python: ingest three articles, then search them
through the query broker (read-your-writes with min_seq), with snippets,
facets, a second page by cursor, and a query the service refuses.

Generate the Python classes first:

    mkdir -p gen && protoc --python_out=gen -I proto proto/bulletin.proto
    PYTHONPATH=gen python3 examples/python/search.py

Endpoints come from BULLETIN_INGEST (default tcp://127.0.0.1:5555) and
BULLETIN_QUERY (default tcp://127.0.0.1:5556), as for the `bulletin` CLI.
Needs python3-zmq and python3-protobuf. Exits 0 on success, 1 otherwise.
"""

import os
import sys
import time

import zmq

import bulletin_pb2 as pb

INGEST = os.environ.get("BULLETIN_INGEST", "tcp://127.0.0.1:5555")
QUERY = os.environ.get("BULLETIN_QUERY", "tcp://127.0.0.1:5556")
TIMEOUT_MS = 5000
_next_id = 0


def call(ctx, endpoint, request, expect_ok=True):
    """One request, one reply, over a REQ socket (REQ adds the empty delimiter frame)."""
    global _next_id
    _next_id += 1
    request.version_major = 1
    request.request_id = _next_id
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send(request.SerializeToString())
        if not sock.poll(TIMEOUT_MS):
            sys.exit("no answer from %s within %d ms" % (endpoint, TIMEOUT_MS))
        reply = pb.Reply()
        reply.ParseFromString(sock.recv())
    finally:
        sock.close()
    if expect_ok and reply.status.code != pb.OK:
        sys.exit("%s: %s" % (pb.StatusCode.Name(reply.status.code), reply.status.message))
    return reply


def search(ctx, query, min_seq=0, **fields):
    req = pb.Request(min_seq=min_seq)       # answered only by a worker that applied min_seq
    req.search.query = query
    for name, value in fields.items():
        if name in ("site", "category", "tag", "since", "until"):
            setattr(req.search.filter, name, value)
        else:
            setattr(req.search, name, value)  # limit, offset, cursor, facets, mark_open, ...
    return call(ctx, QUERY, req, expect_ok=False)


def main():
    ctx = zmq.Context()
    now = int(time.time() * 1000)

    # 1. Ingest three articles; max_seq is what our reads must see.
    req = pb.Request()
    for i, (site, cat, title, body) in enumerate([
            ("Harbor Gazette", "Transport", "Ferry timetable for the winter",
             "The island ferry runs four crossings a day from November."),
            ("Harbor Gazette", "Business", "Fish market opens early",
             "Tourists from the early ferries asked for breakfast stalls."),
            ("每日新闻网", "社会", "城市公园新增夜间照明",
             "中心公园的步行道新增了两百余盏节能路灯。")]):
        art = req.ingest.items.add().article
        art.url = "https://example.org/search-example/%d" % i
        art.site, art.category, art.title, art.body = site, cat, title, body
        art.published_at = now - i * 60000
    rep = call(ctx, INGEST, req)
    max_seq = rep.ingest.max_seq
    print("ingested %d articles, max_seq=%d" % (len(rep.ingest.results), max_seq))

    # 2. Search: best first, a snippet with the matches marked, facets.
    rep = search(ctx, "ferry", min_seq=max_seq, facets=True, mark_open="[", mark_close="]")
    if rep.status.code != pb.OK:
        sys.exit("search: %s" % rep.status.message)
    s = rep.search
    print("ferry: total=%d took_us=%d served_by=%s" % (s.total, s.took_us, rep.served_by))
    for rank, h in enumerate(s.hits, 1):
        print("  %d. %.3f %s | %s" % (rank, h.score, h.title, h.snippet))
    print("  categories:", ", ".join("%s=%d" % (f.value, f.count) for f in s.categories))

    # 3. One hit per page: follow next_cursor to the end.
    pages, cursor = [], b""
    while True:
        rep = search(ctx, "ferry", min_seq=max_seq, limit=1, cursor=cursor)
        pages.append([h.id for h in rep.search.hits])
        cursor = rep.search.next_cursor
        if not cursor:
            break
    print("pages of one: %s" % pages)

    # 4. Chinese: one, two or more characters match.
    for q in ("灯", "公园", "步行道"):
        rep = search(ctx, q, min_seq=max_seq)
        print("%s: total=%d %s" % (q, rep.search.total,
                                   [h.snippet for h in rep.search.hits]))

    # 5. A query that does not parse: INVALID_ARGUMENT with the position.
    rep = search(ctx, 'ferry "winter')
    print("refused: %s %s" % (pb.StatusCode.Name(rep.status.code), rep.status.message))

    ctx.term()
    ok = (s.total == 2 and s.hits[0].title == "Ferry timetable for the winter"
          and len(pages) == 2 and rep.status.code == pb.INVALID_ARGUMENT)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
