"""An acknowledged write survives kill -9.

Several client threads ingest many small batches through bulletin-ingest
while bulletin-store is killed with SIGKILL at a random moment and restarted
on the same data directory. Every article acknowledged as CREATED/UPDATED
must be there afterwards with the same id and seq; acknowledged seqs are
unique; a Sync from 0 lists strictly increasing seqs; last_seq covers every
acknowledged seq. Killing the ingest service leaves the store untouched.
"""

import os
import random
import threading
import time

import harness
from harness import pb, article

THREADS = 3
BATCH = 5


class Writer(threading.Thread):
    """Ingests batches of unique keys until stopped; records every answer."""

    def __init__(self, case, ep, name):
        super().__init__(daemon=True)
        self.case = case
        self.ep = ep
        self.prefix = name
        self.stop = threading.Event()
        self.acked = []        # (key, id, seq, time)
        self.unavailable = 0
        self.timeouts = 0
        self.other = []        # unexpected answers
        self.batches = 0
        self.error = None

    def run(self):
        c = harness.Client(self.case.ctx, self.ep)
        n = 0
        try:
            while not self.stop.is_set():
                items = []
                for _ in range(BATCH):
                    n += 1
                    items.append(article(key="%s-%d" % (self.prefix, n),
                                         title="Durable %s %d" % (self.prefix, n),
                                         body="Body of %s number %d." % (self.prefix, n),
                                         published_at=1700000000000 + n))
                try:
                    rep = c.ingest(items, timeout=5.0, deadline_ms=1000)
                except TimeoutError:
                    self.timeouts += 1
                    c.close()
                    c = harness.Client(self.case.ctx, self.ep)
                    continue
                self.batches += 1
                if rep.status.code == pb.UNAVAILABLE:
                    self.unavailable += 1
                    time.sleep(0.05)
                    continue
                if rep.status.code != pb.OK:
                    self.other.append((harness.code_name(rep.status.code), rep.status.message))
                    continue
                now = time.monotonic()
                for it, r in zip(items, rep.ingest.results):
                    st = harness.write_status_name(r.status)
                    if st in ("CREATED", "UPDATED"):
                        self.acked.append((it.key, r.id, r.seq, now))
                    else:
                        self.other.append((st, r.key, r.error))
        except Exception as e:  # reported by the test
            self.error = e
        finally:
            c.close()


class DurabilityTest(harness.BulletinCase):

    def start_writers(self, ep):
        ws = [Writer(self, ep, "w%d" % i) for i in range(THREADS)]
        for w in ws:
            w.start()
        return ws

    def stop_writers(self, ws):
        for w in ws:
            w.stop.set()
        for w in ws:
            w.join(timeout=30)
            self.assertFalse(w.is_alive(), "writer thread stuck")
            self.assertIsNone(w.error, "writer thread failed: %r" % w.error)

    def acked_count(self, ws):
        return sum(len(w.acked) for w in ws)

    def check_store(self, store, acked):
        """Everything acknowledged is there, with the same id and seq."""
        sc = self.client(store.ep)
        seqs = [a[2] for a in acked]
        self.assertEqual(len(seqs), len(set(seqs)), "acknowledged seqs are unique")
        self.assertEqual(len({a[1] for a in acked}), len(acked), "acknowledged ids are unique")

        rep = sc.health()
        self.assertStatus(rep, pb.OK, "store health after restart")
        last_seq = rep.health.applied_seq
        self.assertGreaterEqual(last_seq, max(seqs), "last_seq covers every acked seq")
        _, stats = sc.stats()
        self.assertEqual(stats.get("last_seq"), last_seq)

        changes, _ = sc.sync_all(0, max_changes=500)
        got = [ch.seq for ch in changes]
        self.assertTrue(all(a < b for a, b in zip(got, got[1:])),
                        "Sync from 0 lists seqs strictly increasing")
        self.assertLessEqual(got[-1], last_seq)
        by_key = {ch.key or ch.article.key: ch for ch in changes}
        missing = []
        for key, id_, seq, _ in acked:
            ch = by_key.get(key)
            if ch is None:
                missing.append(key)
                continue
            self.assertEqual(ch.op, harness.ipb.PUT, key)
            self.assertEqual(ch.id, id_, "same id for %s" % key)
            self.assertEqual(ch.seq, seq, "same seq for %s" % key)
        self.assertEqual(missing, [], "%d acknowledged articles lost after kill -9"
                         % len(missing))
        # spot-check by Get
        for key, id_, seq, _ in random.sample(acked, min(50, len(acked))):
            g = sc.get(key=key)
            self.assertStatus(g, pb.OK, "get %s" % key)
            self.assertEqual((g.get.article.id, g.get.article.seq), (id_, seq))
        return last_seq

    def test_store_killed_during_ingest(self):
        seed = int(os.environ.get("BULLETIN_TEST_SEED", time.time()))
        rnd = random.Random(seed)
        print("seed", seed)
        store = self.start_store()
        ingest = self.start_ingest(store.ep, deadline_ms=1000)
        ws = self.start_writers(ingest.ep)
        try:
            harness.wait_for(lambda: self.acked_count(ws) >= 100, 30, what="100 acks")
            time.sleep(rnd.uniform(0.0, 1.0))
            before = self.acked_count(ws)
            store.proc.kill9()
            killed_at = time.monotonic()
            # the ingest service answers UNAVAILABLE meanwhile
            harness.wait_for(lambda: sum(w.unavailable for w in ws) >= 1, 10,
                             what="an UNAVAILABLE answer while the store is down")
            restart_begin = time.monotonic()
            self.restart(store)
            restarted_at = time.monotonic()
            after_restart = self.acked_count(ws)
            harness.wait_for(lambda: self.acked_count(ws) >= after_restart + 100, 30,
                             what="100 more acks after the restart")
        finally:
            self.stop_writers(ws)
        acked = [a for w in ws for a in w.acked]
        print("acked %d (before kill %d), unavailable %d, timeouts %d"
              % (len(acked), before, sum(w.unavailable for w in ws),
                 sum(w.timeouts for w in ws)))
        self.assertEqual([o for w in ws for o in w.other], [], "only OK or UNAVAILABLE answers")
        # no ack arrives for a write while the store is dead
        for key, _, seq, t in acked:
            self.assertFalse(killed_at + 0.5 < t < restart_begin,
                             "%s seq %d acknowledged while the store was dead" % (key, seq))
        self.check_store(store, acked)
        # seqs after the restart continue above everything acknowledged before
        pre = [a[2] for a in acked if a[3] <= killed_at]
        post = [a[2] for a in acked if a[3] >= restarted_at]
        self.assertTrue(pre and post)
        self.assertGreater(min(post), max(pre), "seqs are never reused after a restart")

    def test_store_restart_twice_keeps_everything(self):
        store = self.start_store()
        ingest = self.start_ingest(store.ep, deadline_ms=1000)
        ws = self.start_writers(ingest.ep)
        try:
            for round_ in range(2):
                n = self.acked_count(ws)
                harness.wait_for(lambda: self.acked_count(ws) >= n + 50, 30,
                                 what="50 acks in round %d" % round_)
                store.proc.kill9()
                self.restart(store)
            n = self.acked_count(ws)
            harness.wait_for(lambda: self.acked_count(ws) >= n + 50, 30, what="final acks")
        finally:
            self.stop_writers(ws)
        acked = [a for w in ws for a in w.acked]
        self.check_store(store, acked)

    def test_ingest_killed_store_unaffected(self):
        store = self.start_store()
        ingest = self.start_ingest(store.ep, deadline_ms=1000)
        ws = self.start_writers(ingest.ep)
        try:
            harness.wait_for(lambda: self.acked_count(ws) >= 100, 30, what="100 acks")
            ingest.proc.kill9()
            sc = self.client(store.ep)
            self.assertStatus(sc.health(), pb.OK, "store health with ingest dead")
            # restart ingest on the same port; the writers carry on
            self.restart(ingest)
            n = self.acked_count(ws)
            harness.wait_for(lambda: self.acked_count(ws) >= n + 50, 30,
                             what="acks after the ingest restart")
        finally:
            self.stop_writers(ws)
        self.assertTrue(store.proc.alive(), "the store survived the ingest's death")
        acked = [a for w in ws for a in w.acked]
        self.check_store(store, acked)


if __name__ == "__main__":
    harness.main()
