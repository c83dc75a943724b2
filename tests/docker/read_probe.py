#!/usr/bin/env python3
"""read_probe: the read-tier checks of compose_test.sh, over the wire contract.

Talks to the published query port (the broker) with a DEALER socket and
bulletin.proto messages, the way any client does, and checks:

  list     every article ingested comes back from List (pages of up to 1000,
           oldest first, min_seq = the last ingest seq), field by field;
  get      every article comes back from Get by id, and the answers name
           (Reply.served_by) every worker container: each of them served;
  kill     Get keeps working while one worker container is killed: with 8
           requests in flight the probe runs KILL_CMD a third of the way
           through and goes on; every request must be answered OK (the broker
           re-sends what the dead worker held to another one).

Usage: read_probe.py ENDPOINT ARTICLES.jsonl RESULTS.jsonl --workers H1,H2,H3
                     [--kill-cmd "docker kill ID"] [--kill-requests N]
Exit 0 when every check passed; 1 with a sentence on stderr otherwise.
Needs python3-zmq and bulletin_pb2 (protoc --python_out) on PYTHONPATH.
"""
import argparse
import json
import subprocess
import sys
import time

import zmq

import bulletin_pb2 as pb

OK = pb.OK


class Client:
    def __init__(self, endpoint, timeout_ms):
        self.ctx = zmq.Context.instance()
        self.endpoint = endpoint
        self.timeout_ms = timeout_ms
        self.next_id = 1
        self.sock = None
        self._open()

    def _open(self):
        if self.sock is not None:
            self.sock.close(linger=0)
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(self.endpoint)

    def call(self, fill, min_seq=0):
        """One request; returns the Reply, or raises RuntimeError on timeout."""
        req = pb.Request(version_major=1, request_id=self.next_id, min_seq=min_seq)
        self.next_id += 1
        fill(req)
        self.sock.send_multipart([b"", req.SerializeToString()])
        deadline = time.monotonic() + self.timeout_ms / 1000
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sock.poll(int(left * 1000) + 1):
                self._open()  # a late answer must not be taken for the next one
                raise RuntimeError(f"request {req.request_id}: no reply within {self.timeout_ms} ms")
            frames = self.sock.recv_multipart()
            rep = pb.Reply()
            rep.ParseFromString(frames[-1])
            if rep.request_id == req.request_id:
                return rep


def status_str(rep):
    return f"{pb.StatusCode.Name(rep.status.code)}: {rep.status.message}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("endpoint")
    ap.add_argument("articles")
    ap.add_argument("results")
    ap.add_argument("--workers", required=True, help="worker container hostnames, comma-separated")
    ap.add_argument("--kill-cmd")
    ap.add_argument("--kill-requests", type=int, default=1500)
    ap.add_argument("--timeout-ms", type=int, default=15000)
    a = ap.parse_args()

    sent = [json.loads(l) for l in open(a.articles, encoding="utf-8") if l.strip()]
    res = sorted((json.loads(l) for l in open(a.results) if l.strip()), key=lambda r: r["index"])
    ids = [r["id"] for r in res]
    by_id = {r["id"]: s for r, s in zip(res, sent)}
    min_seq = max(r["seq"] for r in res)
    hosts = [h for h in a.workers.split(",") if h]
    c = Client(a.endpoint, a.timeout_ms)

    def worker_of(served_by):
        for h in hosts:
            if served_by.startswith(h):
                return h
        return None

    # --- list: every article, in order ------------------------------------------------
    t = time.monotonic()
    listed, cursor, pages = [], b"", 0
    while True:
        def fill(req, cursor=cursor):
            req.list.order = pb.OLDEST_FIRST
            req.list.limit = 1000
            req.list.cursor = cursor
            req.list.with_total = True
        rep = c.call(fill, min_seq)
        if rep.status.code != OK:
            sys.exit(f"list: page {pages + 1}: {status_str(rep)}")
        pages += 1
        listed.extend(rep.list.items)
        if rep.list.has_total and rep.list.total != len(sent):
            sys.exit(f"list: total {rep.list.total}, {len(sent)} articles ingested")
        cursor = rep.list.next_cursor
        if not cursor:
            break
        if pages > len(sent):
            sys.exit("list: the cursor never ends")
    got_ids = sorted(s.id for s in listed)
    if got_ids != sorted(ids):
        missing = sorted(set(ids) - set(got_ids))[:5]
        extra = sorted(set(got_ids) - set(ids))[:5]
        sys.exit(f"list: {len(listed)} listed for {len(ids)} ingested; missing {missing}, extra {extra}")
    prev = None
    for s in listed:
        want = by_id[s.id]
        for f in ("key", "site", "category", "title"):
            if getattr(s, f) != want[f]:
                sys.exit(f"list: id {s.id} field {f}: sent {want[f]!r}, listed {getattr(s, f)!r}")
        if list(s.tags) != want["tags"] or s.published_at != want["published_at"]:
            sys.exit(f"list: id {s.id}: tags/published_at differ")
        if prev is not None and (s.published_at, s.id) < prev:
            sys.exit(f"list: not oldest first at id {s.id}")
        prev = (s.published_at, s.id)
    print(f"read_probe: list: {len(listed)} articles in {pages} pages, "
          f"{time.monotonic() - t:.2f} s, fields and order equal", flush=True)

    # --- get: every article, every worker serves ---------------------------------------
    t = time.monotonic()
    served = {}
    for i in ids:
        def fill(req, i=i):
            req.get.id = i
        rep = c.call(fill, min_seq)
        if rep.status.code != OK:
            sys.exit(f"get {i}: {status_str(rep)}")
        art, want = rep.get.article, by_id[i]
        if art.id != i or art.key != want["key"] or art.title != want["title"] \
                or art.body.split() != want["body"].split():
            sys.exit(f"get {i}: article differs: {art.key!r} {art.title!r}")
        w = worker_of(rep.served_by)
        if w is None:
            sys.exit(f"get {i}: served_by {rep.served_by!r} names none of the workers {hosts}")
        served[w] = served.get(w, 0) + 1
    print(f"read_probe: get: {len(ids)} articles in {time.monotonic() - t:.2f} s; "
          f"served per worker: {served}", flush=True)
    if len(served) != len(hosts):
        sys.exit(f"get: only {len(served)} of {len(hosts)} workers served: {served}")

    # --- kill: no failed request while a worker dies ------------------------------------
    # WINDOW requests stay in flight, so the killed worker dies holding requests: the broker
    # must notice (heartbeats) and send them to another worker.
    if a.kill_cmd:
        t = time.monotonic()
        n, window = a.kill_requests, 8
        sock = c.sock
        pending = {}  # request_id -> (article id, sent at)
        served, slowest, sent_n, done_n, killed_at = {}, 0.0, 0, 0, None
        rid = 1_000_000
        while done_n < n:
            while sent_n < n and len(pending) < window:
                if sent_n == n // 3 and killed_at is None:
                    subprocess.run(a.kill_cmd, shell=True, check=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    killed_at = sent_n
                i = ids[sent_n % len(ids)]
                rid += 1
                req = pb.Request(version_major=1, request_id=rid, min_seq=min_seq)
                req.get.id = i
                sock.send_multipart([b"", req.SerializeToString()])
                pending[rid] = (i, time.monotonic())
                sent_n += 1
            if not sock.poll(a.timeout_ms):
                sys.exit(f"kill: {len(pending)} requests unanswered for {a.timeout_ms} ms "
                         f"(worker killed after request {killed_at})")
            rep = pb.Reply()
            rep.ParseFromString(sock.recv_multipart()[-1])
            if rep.request_id not in pending:
                continue
            i, t1 = pending.pop(rep.request_id)
            slowest = max(slowest, time.monotonic() - t1)
            if rep.status.code != OK or rep.get.article.id != i:
                sys.exit(f"kill: get {i} (worker killed after request {killed_at}): {status_str(rep)}")
            w = worker_of(rep.served_by) or rep.served_by
            served[w] = served.get(w, 0) + 1
            done_n += 1
        print(f"read_probe: kill: {n} gets, {window} in flight, worker killed after request "
              f"{killed_at}, 0 failed, slowest {slowest * 1000:.0f} ms, "
              f"{time.monotonic() - t:.2f} s; served: {served}", flush=True)

if __name__ == "__main__":
    main()
