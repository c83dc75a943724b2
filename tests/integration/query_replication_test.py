"""The read tier with real processes: store + query broker + workers.

Replication (catch-up, gaps after SIGSTOP, restart from the applied seq),
failover under load (SIGKILL of workers), exact pagination while writing,
read-your-writes with min_seq on every worker.

Articles are written straight to the store (internal WriteBatch) so that a
test controls exactly how many group commits, and so feed messages, happen.
"""

import os
import random
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import pb, endpoint, free_port, binary, wait_for  # noqa: E402


class QueryCase(harness.BulletinCase):

    # services ---------------------------------------------------------

    def start_broker(self, heartbeat_ms=200, deadline_ms=5000):
        svc = harness.Service("query", endpoint(free_port()), workers=endpoint(free_port()))
        svc.args = [binary("bulletin-query"), "--bind", svc.ep, "--workers", svc.workers,
                    "--heartbeat-ms", str(heartbeat_ms), "--deadline-ms", str(deadline_ms)]
        svc.proc = self.spawn("bulletin-query", svc.args)
        c = self.client(svc.ep)
        wait_for(lambda: self._answers(c), harness.START_TIMEOUT, 0.05, "broker answers Health")
        svc.client = c
        return svc

    def _answers(self, c):
        try:
            c.health(timeout=0.3)
            return True
        except TimeoutError:
            return False

    def start_worker(self, store, broker, name, data=None, heartbeat_ms=200, extra=()):
        data = data or os.path.join(self.tmp, "worker-" + name)
        args = [binary("bulletin-worker"), "--broker", broker.workers, "--store", store.ep,
                "--feed", store.feed, "--data", data, "--name", name,
                "--heartbeat-ms", str(heartbeat_ms)] + list(extra)
        p = self.spawn("bulletin-worker-" + name, args)
        p.data = data
        p.wname = name
        return p

    @staticmethod
    def proc_state(pid):
        """The state letter of /proc/PID/stat (R, S, T = stopped, ...)."""
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]

    def broker_metrics(self, broker):
        _, m = broker.client.stats(timeout=5)
        return m

    def wait_workers(self, broker, n, timeout=60):
        wait_for(lambda: self.broker_metrics(broker).get("workers", 0) == n, timeout, 0.05,
                 "%d workers registered" % n)

    def wait_applied(self, broker, seq, timeout=60):
        """Until a min_seq read succeeds (some worker applied seq)."""
        def ok():
            rep = self.list_page(broker.client, limit=1, min_seq=seq, deadline_ms=500)
            return rep.status.code == pb.OK
        wait_for(ok, timeout, 0.05, "a worker at seq %d" % seq)

    # data -------------------------------------------------------------

    def write(self, store_client, n, batch=1000, body_size=200, pub=None, prefix="a"):
        """Write n articles in WriteBatches of `batch`; returns the results."""
        results = []
        body = ("lorem ipsum dolor sit amet " * (body_size // 27 + 1))[:body_size]
        i = 0
        while i < n:
            ops = []
            for k in range(i, min(n, i + batch)):
                key = "https://example.org/%s/%d" % (prefix, k)
                p = pub(k) if pub else 1700000000000 + k * 1000
                ops.append(("put", harness.article(key=key, title="t %s %d" % (prefix, k),
                                                   body="%d %s" % (k, body),
                                                   site="site%d" % (k % 3),
                                                   category=["news", "jokes"][k % 2],
                                                   tags=["tag%d" % (k % 5)],
                                                   published_at=p)))
            res = store_client.write(ops, timeout=60)
            for r in res:
                self.assertIn(harness.write_status_name(r.status), ("CREATED", "UPDATED", "UNCHANGED"),
                              r.error)
            results.extend(res)
            i += batch
        return results

    def store_snapshot(self, store_client):
        """{id: seq} of the live articles, from a Sync from 0."""
        changes, _ = store_client.sync_all(0, max_changes=5000)
        snap = {}
        for c in changes:
            if c.op == 0:
                snap[c.id] = c.seq
            else:
                snap.pop(c.id, None)
        return snap

    def list_page(self, client, limit=100, cursor=b"", min_seq=0, deadline_ms=0, order=0,
                  with_total=False, timeout=10, **flt):
        req = pb.Request()
        req.list.limit = limit
        req.list.order = order
        req.list.with_total = with_total
        if cursor:
            req.list.cursor = cursor
        for k, v in flt.items():
            setattr(req.list.filter, k, v)
        req.list.SetInParent()
        if min_seq:
            req.min_seq = min_seq
        if deadline_ms:
            req.deadline_ms = deadline_ms
        return client.request(req, timeout=timeout)

    def list_all(self, client, limit=1000, **kw):
        items, cursor, pages = [], b"", 0
        while True:
            rep = self.list_page(client, limit=limit, cursor=cursor, **kw)
            self.assertStatus(rep, pb.OK, "List page %d" % pages)
            items.extend(rep.list.items)
            pages += 1
            cursor = rep.list.next_cursor
            if not cursor:
                return items

    def worker_snapshot(self, broker):
        return {s.id: s.seq for s in self.list_all(broker.client)}

    def assertSameAsStore(self, broker, store_client):
        snap = self.store_snapshot(store_client)
        mine = self.worker_snapshot(broker)
        self.assertEqual(len(mine), len(snap))
        self.assertEqual(mine, snap)

    def store_metrics(self, store):
        c = self.client(store.ep)
        _, m = c.stats()
        return m


class ReplicationTest(QueryCase):

    def test_catch_up_after_10000_articles(self):
        store = self.start_store()
        sc = self.client(store.ep)
        res = self.write(sc, 10000, batch=1000)
        top = max(r.seq for r in res)
        broker = self.start_broker()
        t0 = time.monotonic()
        w = self.start_worker(store, broker, "w1")
        self.wait_workers(broker, 1)
        dt = time.monotonic() - t0
        sys.stderr.write("\nbootstrap: 10000 articles registered after %.2f s (%.0f articles/s "
                         "incl. process start)\n" % (dt, 10000 / dt))
        rep = self.list_page(broker.client, limit=5, with_total=True)
        self.assertStatus(rep, pb.OK)
        self.assertEqual(rep.list.total, 10000)
        self.assertEqual(rep.served_by, "w1")
        self.assertEqual(rep.applied_seq, top)
        # newest first: the last written has the highest published_at
        self.assertEqual(rep.list.items[0].key, "https://example.org/a/9999")
        self.assertSameAsStore(broker, sc)
        # a filtered listing, checked against the data we wrote
        got = self.list_all(broker.client, site="site1", category="news", tag="tag3")
        want = sorted((k for k in range(10000) if k % 3 == 1 and k % 2 == 0 and k % 5 == 3),
                      reverse=True)
        self.assertEqual([int(s.key.rsplit("/", 1)[1]) for s in got], want)
        # Get by id and by key return the whole article
        g = broker.client.get(key="https://example.org/a/1234")
        self.assertStatus(g, pb.OK)
        self.assertTrue(g.get.article.body.startswith("1234 lorem"))
        self.assertEqual(broker.client.get(id=g.get.article.id).get.article.key,
                         "https://example.org/a/1234")
        self.assertStatus(broker.client.get(id=987654321), pb.NOT_FOUND)
        self.assertTrue(w.alive())

    def test_sigstop_gap_then_identical(self):
        store = self.start_store()
        sc = self.client(store.ep)
        self.write(sc, 100)
        broker = self.start_broker(heartbeat_ms=1000)
        w = self.start_worker(store, broker, "w1", heartbeat_ms=1000)
        self.wait_workers(broker, 1)
        w.proc.send_signal(signal.SIGSTOP)
        try:
            # more feed messages than the store's SNDHWM (10000) plus what the
            # kernel buffers hold: one article per commit, 1.5 KB each
            n = int(os.environ.get("BULLETIN_TEST_GAP_WRITES", "16000"))
            t0 = time.monotonic()
            pending = []
            for k in range(n):
                res = sc.write([("put", harness.article(
                    key="https://example.org/gap/%d" % k, title="gap %d" % k,
                    body="x%d " % k + "y" * 1500, published_at=1800000000000 + k))])
                pending.append(res[0].seq)
            # and some updates and deletes
            sc.write([("delete", 0, "https://example.org/a/5")])
            sc.write([("put", harness.article(key="https://example.org/a/6", title="changed",
                                               body="new body", published_at=5))])
            sys.stderr.write("\nwrote %d single-article commits in %.1f s while the worker "
                             "was stopped\n" % (n, time.monotonic() - t0))
        finally:
            w.proc.send_signal(signal.SIGCONT)
        head = int(self.store_metrics(store)["last_seq"])
        self.wait_applied(broker, head, timeout=120)
        self.assertSameAsStore(broker, sc)
        log = w.log()
        self.assertIn("worker.gap", log, "the worker should have seen a gap in the feed")
        self.assertStatus(broker.client.get(key="https://example.org/a/5"), pb.NOT_FOUND)
        self.assertEqual(broker.client.get(key="https://example.org/a/6").get.article.title,
                         "changed")

    def test_restart_resumes_from_applied_seq(self):
        store = self.start_store()
        sc = self.client(store.ep)
        self.write(sc, 2000)
        broker = self.start_broker()
        w = self.start_worker(store, broker, "w1")
        self.wait_workers(broker, 1)
        zero_before = self.store_metrics(store)["sync_from_zero"]
        self.assertEqual(zero_before, 1)
        rc, forced = w.stop()
        self.assertFalse(forced)
        self.assertEqual(rc, 0)
        w.expect_dead = True
        self.wait_workers(broker, 0, timeout=10)
        self.write(sc, 300, prefix="b")
        sc.write([("delete", 0, "https://example.org/a/0")])
        w2 = self.start_worker(store, broker, "w1", data=w.data)
        self.wait_workers(broker, 1)
        head = int(self.store_metrics(store)["last_seq"])
        self.wait_applied(broker, head)
        self.assertEqual(self.store_metrics(store)["sync_from_zero"], zero_before,
                         "a restarted worker must not sync from 0")
        self.assertSameAsStore(broker, sc)
        self.assertIn("applied_seq=2000", w2.log())

    def test_new_store_wipes_replica(self):
        store = self.start_store()
        sc = self.client(store.ep)
        self.write(sc, 50)
        broker = self.start_broker()
        w = self.start_worker(store, broker, "w1")
        self.wait_workers(broker, 1)
        w.stop()
        w.expect_dead = True
        store.proc.stop()
        store.proc.expect_dead = True
        # a different database on the same ports
        store2 = self.start_store(port=int(store.ep.rsplit(":", 1)[1]),
                                  feed_port=int(store.feed.rsplit(":", 1)[1]))
        sc2 = self.client(store2.ep)
        self.write(sc2, 7, prefix="new")
        self.wait_workers(broker, 0, timeout=10)
        self.start_worker(store2, broker, "w1", data=w.data)
        self.wait_workers(broker, 1)
        self.assertSameAsStore(broker, sc2)


class ServingTest(QueryCase):

    def test_pagination_5000_with_writes_between_pages(self):
        store = self.start_store()
        sc = self.client(store.ep)
        rnd = random.Random(7)
        pubs = [1700000000000 + rnd.randrange(0, 2000) * 1000 for _ in range(5000)]
        res = self.write(sc, 5000, pub=lambda k: pubs[k])
        ids = {r.id for r in res}
        broker = self.start_broker()
        for k in range(2):
            self.start_worker(store, broker, "w%d" % k)
        self.wait_workers(broker, 2)
        self.wait_applied(broker, max(r.seq for r in res))
        for order in (0, 1):
            # every worker must have everything before we start
            for _ in range(4):
                self.wait_applied(broker, max(r.seq for r in res))
            seen, cursor, pages, extra = [], b"", 0, 0
            while True:
                rep = self.list_page(broker.client, limit=97, cursor=cursor, order=order)
                self.assertStatus(rep, pb.OK)
                seen.extend(s.id for s in rep.list.items)
                keys = [(s.published_at, s.id) for s in rep.list.items]
                self.assertEqual(keys, sorted(keys, reverse=(order == 0)))
                cursor = rep.list.next_cursor
                pages += 1
                if not cursor:
                    break
                # writes between pages: new articles anywhere in time, updates
                # of articles not yet listed keep their published_at
                extra += 5
                self.write(sc, 5, batch=5, prefix="between%d-%d" % (order, pages),
                           pub=lambda k: 1700000000000 + rnd.randrange(0, 2000) * 1000)
            counts = {}
            for i in seen:
                counts[i] = counts.get(i, 0) + 1
            self.assertEqual([i for i, c in counts.items() if c > 1], [], "listed twice")
            self.assertEqual(ids - set(seen), set(), "original articles skipped")

    def test_min_seq_reads_new_article_on_every_worker(self):
        store = self.start_store()
        sc = self.client(store.ep)
        self.write(sc, 200)
        # the broker's own deadline far beyond the last check's 300 ms and its
        # 20 s wait: which deadline ended that request is plain however loaded
        broker = self.start_broker(deadline_ms=60000)
        names = ["w1", "w2", "w3"]
        workers = {n: self.start_worker(store, broker, n) for n in names}
        self.wait_workers(broker, 3)

        def fresh_get(tag):
            res = sc.write([("put", harness.article(key="https://example.org/ryw/%s" % tag,
                                                    title="fresh %s" % tag, body="b"))])
            seq = res[0].seq
            req = pb.Request()
            req.get.key = "https://example.org/ryw/%s" % tag
            req.min_seq = seq
            rep = broker.client.request(req, timeout=10)
            self.assertStatus(rep, pb.OK, "Get with min_seq=%d" % seq)
            self.assertGreaterEqual(rep.applied_seq, seq)
            self.assertEqual(rep.get.article.title, "fresh %s" % tag)
            return rep

        # right away, with min_seq: every answer has it, whichever worker serves
        # (which one does is up to the broker and to who applied the seq first)
        for k in range(12):
            for j in range(3):
                fresh_get("any-%d-%d" % (k, j))
        # and on every worker, deterministically: with the two others stopped
        # (SIGSTOP) before the write, only `n` can reach the new seq, so the
        # broker must wait for `n` and route the read to it. (A stopped worker
        # may miss heartbeats and be dropped; it registers again after SIGCONT.)
        for n in names:
            others = [workers[o] for o in names if o != n]
            for o in others:
                o.proc.send_signal(signal.SIGSTOP)
            try:
                for o in others:  # stopped for sure before the write
                    wait_for(lambda: self.proc_state(o.proc.pid) == "T", 10, 0.01,
                             "%s stopped" % o.wname)
                rep = fresh_get("only-" + n)
                self.assertEqual(rep.served_by, n)
            finally:
                for o in others:
                    o.proc.send_signal(signal.SIGCONT)
            self.wait_workers(broker, 3)
        # a seq nobody has: DEADLINE_EXCEEDED at the request's 300 ms, not
        # before it, and not at the broker's 60 s (the client waits 20 s)
        t0 = time.monotonic()
        rep = self.list_page(broker.client, min_seq=10 ** 9, deadline_ms=300, timeout=20)
        took = time.monotonic() - t0
        self.assertStatus(rep, pb.DEADLINE_EXCEEDED)
        self.assertIn("no worker reached seq %d" % 10 ** 9, rep.status.message)
        self.assertGreaterEqual(took, 0.29, "not before the deadline (took %.2f s)" % took)

    def test_bad_requests(self):
        store = self.start_store()
        broker = self.start_broker()
        self.start_worker(store, broker, "w1")
        self.wait_workers(broker, 1)
        c = broker.client
        self.assertStatus(self.list_page(c, limit=1001), pb.INVALID_ARGUMENT)
        self.assertStatus(self.list_page(c, cursor=b"garbage"), pb.INVALID_ARGUMENT)
        rep = c.get()
        self.assertStatus(rep, pb.INVALID_ARGUMENT)
        req = pb.Request(version_major=1, request_id=harness.Client.new_id())
        req.list.filter.site = "caf\xe9"
        raw = req.SerializeToString().replace(b"caf\xc3\xa9", b"caf\xff\xfe")
        c.send_frames([b"", raw])
        rep = c.recv_reply(5, req.request_id)
        self.assertIsNotNone(rep)
        self.assertStatus(rep, pb.INVALID_ARGUMENT)
        self.assertIn("UTF-8", rep.status.message)
        rep = c.ingest([harness.article(key="k")])
        self.assertStatus(rep, pb.UNIMPLEMENTED)
        c.send_frames([b"", b"\xff\xff\xff"])
        rep = c.recv_reply(5)
        self.assertStatus(rep, pb.INVALID_ARGUMENT)
        self.assertTrue(broker.proc.alive())


class FailoverTest(QueryCase):

    def test_kill_two_of_three_workers_under_load(self):
        store = self.start_store()
        sc = self.client(store.ep)
        self.write(sc, 3000)
        broker = self.start_broker(heartbeat_ms=100)
        workers = [self.start_worker(store, broker, "w%d" % k, heartbeat_ms=100) for k in range(3)]
        self.wait_workers(broker, 3)
        stop = threading.Event()
        stats = {"ok": 0, "retried": 0, "lost": 0, "errors": []}
        lock = threading.Lock()

        def load(k):
            c = harness.Client(self.ctx, broker.ep)
            try:
                while not stop.is_set():
                    ok = False
                    for attempt in range(5):
                        try:
                            rep = self.list_page(c, limit=20, site="site%d" % (k % 3),
                                                 timeout=6)
                        except TimeoutError:
                            continue
                        if rep.status.code == pb.OK and len(rep.list.items) == 20:
                            ok = True
                            break
                        with lock:
                            stats["errors"].append(harness.code_name(rep.status.code))
                    with lock:
                        stats["ok" if ok else "lost"] += 1
                        if ok and attempt:
                            stats["retried"] += 1
            finally:
                c.close()

        threads = [threading.Thread(target=load, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(1.0)
            workers[0].kill9()
            workers[1].kill9()
            time.sleep(0.5)
            workers.append(self.start_worker(store, broker, "w3", heartbeat_ms=100))
            workers.append(self.start_worker(store, broker, "w4", heartbeat_ms=100))
            self.wait_workers(broker, 3, timeout=30)
            time.sleep(1.0)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        sys.stderr.write("\nfailover: %d requests ok (%d needed a client retry), %d lost, "
                         "errors seen: %s\n" % (stats["ok"], stats["retried"], stats["lost"],
                                                sorted(set(stats["errors"]))))
        self.assertEqual(stats["lost"], 0)
        self.assertGreater(stats["ok"], 50)
        m = self.broker_metrics(broker)
        self.assertGreaterEqual(m["dropped_workers"], 2)

    def test_stopped_worker_with_a_batch_in_flight(self):
        """Several requests in flight at one worker (sent as a REQUESTS batch)
        when it stops answering: every one of them is answered by another
        worker (retried once), none is lost."""
        store = self.start_store()
        sc = self.client(store.ep)
        self.write(sc, 50)
        broker = self.start_broker(heartbeat_ms=100)
        w1 = self.start_worker(store, broker, "w1", heartbeat_ms=100, extra=("--credit", "8"))
        self.wait_workers(broker, 1)
        self.wait_applied(broker, 50)
        w1.proc.send_signal(signal.SIGSTOP)
        try:
            c = harness.Client(self.ctx, broker.ep)
            ids = []
            for _ in range(6):  # pipelined on one DEALER: all six go to w1 at once
                req = pb.Request()
                req.version_major = 1
                req.request_id = harness.Client.new_id()
                req.list.limit = 5
                req.list.SetInParent()
                ids.append(req.request_id)
                c.send_frames([b"", req.SerializeToString()])
            wait_for(lambda: self.broker_metrics(broker).get("inflight", 0) == 6, 5, 0.02,
                     "six requests in flight at the stopped worker")
            self.start_worker(store, broker, "w2", heartbeat_ms=100, extra=("--credit", "8"))
            got = {}
            while len(got) < 6:
                rep = c.recv_reply(timeout=10)
                self.assertIsNotNone(rep, "answers so far: %d of 6" % len(got))
                got[rep.request_id] = rep
            c.close()
            self.assertEqual(sorted(got), sorted(ids))
            for rep in got.values():
                self.assertStatus(rep, pb.OK)
                self.assertEqual(rep.served_by, "w2")
                self.assertEqual(len(rep.list.items), 5)
            m = self.broker_metrics(broker)
            self.assertEqual(m["retries"], 6)
            self.assertEqual(m["unavailable"], 0)
            # both workers took REQUESTS batches (the broker logs it at READY)
            self.assertEqual(broker.proc.log().count("batch=1"), 2, broker.proc.log())
        finally:
            w1.kill9()


if __name__ == "__main__":
    harness.main()
