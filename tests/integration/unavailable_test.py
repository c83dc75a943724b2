"""With the store down, ingest answers UNAVAILABLE within its deadline.

Never a hang, never silence: --deadline-ms 500 must give an answer well
under 2 s, and the service recovers by itself once the store is back.
"""

import time

import harness
from harness import pb, article


class UnavailableTest(harness.BulletinCase):

    def timed_ingest(self, c, key, **kw):
        t0 = time.monotonic()
        rep = c.ingest([article(key=key, title="t", body="b")], timeout=10, **kw)
        return rep, time.monotonic() - t0

    def test_store_never_started(self):
        nowhere = harness.endpoint(harness.free_port())
        ingest = self.start_ingest(nowhere, deadline_ms=500)
        ic = self.client(ingest.ep)
        for i in range(3):
            rep, took = self.timed_ingest(ic, "u-%d" % i)
            self.assertStatus(rep, pb.UNAVAILABLE, "ingest with no store")
            self.assertLess(took, 2.0, "answered within the deadline (took %.2f s)" % took)
        t0 = time.monotonic()
        rep = ic.delete(key="u-0", timeout=10)
        self.assertStatus(rep, pb.UNAVAILABLE, "delete with no store")
        self.assertLess(time.monotonic() - t0, 2.0)
        # Health still answers (it is the ingest's own health)
        rep = ic.health()
        self.assertEqual(rep.status.code, pb.OK)

    def test_client_deadline_smaller_wins(self):
        nowhere = harness.endpoint(harness.free_port())
        ingest = self.start_ingest(nowhere, deadline_ms=5000)
        ic = self.client(ingest.ep)
        rep, took = self.timed_ingest(ic, "u-d", deadline_ms=300)
        self.assertIn(harness.code_name(rep.status.code), ("UNAVAILABLE", "DEADLINE_EXCEEDED"))
        self.assertTrue(harness.is_sentence(rep.status.message))
        self.assertLess(took, 2.0, "the request's deadline_ms 300 wins (took %.2f s)" % took)

    def test_store_goes_down_and_comes_back(self):
        store = self.start_store()
        ingest = self.start_ingest(store.ep, deadline_ms=500)
        ic = self.client(ingest.ep)
        rep, _ = self.timed_ingest(ic, "before")
        self.assertStatus(rep, pb.OK, "with the store up")
        store.proc.kill9()
        rep, took = self.timed_ingest(ic, "during")
        self.assertStatus(rep, pb.UNAVAILABLE, "store killed")
        self.assertLess(took, 2.0, "took %.2f s" % took)
        # several at once: each gets its answer
        cs = [self.client(ingest.ep) for _ in range(4)]
        t0 = time.monotonic()
        ids = []
        for i, c in enumerate(cs):
            req = pb.Request(version_major=1, request_id=harness.Client.new_id())
            req.ingest.items.add().article.CopyFrom(article(key="many-%d" % i))
            c.send_frames([b"", req.SerializeToString()])
            ids.append(req.request_id)
        for c, rid in zip(cs, ids):
            rep = c.recv_reply(5, rid)
            self.assertIsNotNone(rep)
            self.assertStatus(rep, pb.UNAVAILABLE, "concurrent request")
        self.assertLess(time.monotonic() - t0, 2.5)

        self.restart(store)
        # ZeroMQ reconnects by itself: the next write goes through
        def ok():
            rep, _ = self.timed_ingest(ic, "after")
            return rep.status.code == pb.OK
        harness.wait_for(ok, 10, interval=0.1, what="ingest to reach the restarted store")
        sc = self.client(store.ep)
        self.assertStatus(sc.get(key="before"), pb.OK, "written before the kill")
        self.assertStatus(sc.get(key="after"), pb.OK, "written after the restart")


if __name__ == "__main__":
    harness.main()
