"""With the store down, ingest answers UNAVAILABLE: never a hang, never silence.

With no store connected the answer comes at once (even with a 600 s
--deadline-ms); a store that does not answer is given up at the request's
own deadline_ms, not before it and not at the service's far longer one; and
the service recovers by itself once the store is back. No check bounds how
fast a loaded machine answers: the waits are seconds beyond any deadline.
"""

import time

import zmq

import harness
from harness import pb, article

# far beyond every wait of the client in these tests: a reply that comes
# within such a wait did not come at the service's deadline
LONG_DEADLINE_MS = 600000


class UnavailableTest(harness.BulletinCase):

    def timed_ingest(self, c, key, timeout=10, **kw):
        t0 = time.monotonic()
        rep = c.ingest([article(key=key, title="t", body="b")], timeout=timeout, **kw)
        return rep, time.monotonic() - t0

    def test_store_never_started(self):
        nowhere = harness.endpoint(harness.free_port())
        # the answer inside the client's 10 s wait came at once, not at the
        # deadline: a send to a store that is not connected fails right away
        ingest = self.start_ingest(nowhere, deadline_ms=LONG_DEADLINE_MS, store_up=False)
        ic = self.client(ingest.ep)
        for i in range(3):
            rep, _ = self.timed_ingest(ic, "u-%d" % i)
            self.assertStatus(rep, pb.UNAVAILABLE, "ingest with no store")
            self.assertIn("not connected", rep.status.message)
        rep = ic.delete(key="u-0", timeout=10)
        self.assertStatus(rep, pb.UNAVAILABLE, "delete with no store")
        self.assertIn("not connected", rep.status.message)
        # Health still answers (it is the ingest's own health)
        rep = ic.health()
        self.assertEqual(rep.status.code, pb.OK)

    def test_client_deadline_smaller_wins(self):
        # a "store" that takes the connection and never answers
        silent = self.ctx.socket(zmq.ROUTER)
        silent.setsockopt(zmq.LINGER, 0)
        port = silent.bind_to_random_port("tcp://127.0.0.1")
        try:
            ingest = self.start_ingest("tcp://127.0.0.1:%d" % port,
                                       deadline_ms=LONG_DEADLINE_MS, store_up=False)
            ic = self.client(ingest.ep)
            # until the ingest has connected, it answers "not connected" at once
            give_up = time.monotonic() + 10
            while True:
                rep, took = self.timed_ingest(ic, "u-d", timeout=30, deadline_ms=300)
                if "not connected" not in rep.status.message or time.monotonic() > give_up:
                    break
                time.sleep(0.05)
            self.assertStatus(rep, pb.UNAVAILABLE, "the store does not answer")
            # the request's 300 ms, not the service's 600 s (the client waits 30 s)
            self.assertIn("did not answer within 300 ms", rep.status.message)
            self.assertTrue(harness.is_sentence(rep.status.message))
            self.assertGreaterEqual(took, 0.29, "not before the request's deadline (took %.2f s)"
                                    % took)
        finally:
            silent.close(linger=0)

    def test_store_goes_down_and_comes_back(self):
        store = self.start_store()
        ingest = self.start_ingest(store.ep, deadline_ms=500)
        ic = self.client(ingest.ep)
        rep, _ = self.timed_ingest(ic, "before")
        self.assertStatus(rep, pb.OK, "with the store up")
        store.proc.kill9()
        # at once ("not connected") or at the 500 ms deadline if the ingest has
        # not seen the connection drop yet: either way inside the 10 s wait
        rep, _ = self.timed_ingest(ic, "during")
        self.assertStatus(rep, pb.UNAVAILABLE, "store killed")
        # several at once: each gets its answer
        cs = [self.client(ingest.ep) for _ in range(4)]
        ids = []
        for i, c in enumerate(cs):
            req = pb.Request(version_major=1, request_id=harness.Client.new_id())
            req.ingest.items.add().article.CopyFrom(article(key="many-%d" % i))
            c.send_frames([b"", req.SerializeToString()])
            ids.append(req.request_id)
        for c, rid in zip(cs, ids):
            rep = c.recv_reply(10, rid)
            self.assertIsNotNone(rep)
            self.assertStatus(rep, pb.UNAVAILABLE, "concurrent request")

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
