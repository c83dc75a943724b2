"""The store's replication side: Sync history and the change feed.

Talks to bulletin-store directly with the internal messages (WriteBatch,
SyncRequest -> SyncChunk, FeedMessage on the PUB socket), checking the
contract of proto/internal.proto: the log keeps only the latest change per
article, so Sync from 0 is a snapshot (live articles once at their latest
seq, tombstones with their keys) and Sync from S is exactly what changed
after S; paging gives the same as one big chunk; one FeedMessage per commit
and a heartbeat about once a second.
"""

import time

import harness
from harness import pb, ipb, article, zmq


class Model:
    """What the store must hold: latest change per id."""

    def __init__(self):
        self.latest = {}  # id -> (seq, op, key, title, body)

    def apply(self, results, ops):
        for r, op in zip(results, ops):
            st = harness.write_status_name(r.status)
            if st in ("CREATED", "UPDATED"):
                a = op[1]
                self.latest[r.id] = (r.seq, ipb.PUT, a.key, a.title, a.body)
            elif st == "DELETED":
                key = op[2] or self.latest[r.id][2]
                self.latest[r.id] = (r.seq, ipb.DELETE, key, None, None)

    def after(self, seq):
        return sorted((v[0], v[1], i, v[2], v[3], v[4])
                      for i, v in self.latest.items() if v[0] > seq)


def as_tuples(changes):
    out = []
    for ch in changes:
        if ch.op == ipb.PUT:
            out.append((ch.seq, ch.op, ch.id, ch.article.key, ch.article.title, ch.article.body))
        else:
            out.append((ch.seq, ch.op, ch.id, ch.key, None, None))
    return out


class SyncTest(harness.BulletinCase):

    def setUp(self):
        self.store = self.start_store()
        self.sc = self.client(self.store.ep)
        self.model = Model()

    def write(self, ops, expect):
        res = self.sc.write(ops)
        self.assertEqual([harness.write_status_name(r.status) for r in res], expect,
                         "%r" % [(harness.write_status_name(r.status), r.error) for r in res])
        self.model.apply(res, ops)
        return res

    def history(self):
        """Creates, updates, deletes; returns the seq after the first phase."""
        self.write([("put", article(key="s%d" % i, title="T%d" % i, body="B%d" % i))
                    for i in range(12)], ["CREATED"] * 12)
        mid = self.sc.health().health.applied_seq
        self.write([("put", article(key="s3", title="T3", body="B3 v2")),
                    ("put", article(key="s5", title="T5 v2", body="B5")),
                    ("put", article(key="s6", title="T6", body="B6"))],
                   ["UPDATED", "UPDATED", "UNCHANGED"])
        s4 = self.sc.get(key="s4").get.article.id
        self.write([("delete", s4, ""), ("delete", 0, "s7")], ["DELETED", "DELETED"])
        # several ops on one key in one batch are applied in order
        self.write([("put", article(key="s3", title="T3", body="B3 v3")),
                    ("put", article(key="s12", title="T12", body="B12")),
                    ("put", article(key="s3", title="T3", body="B3 v4")),
                    ("delete", 0, "s9")],
                   ["UPDATED", "CREATED", "UPDATED", "DELETED"])
        self.write([("delete", 0, "s4")], ["REJECTED"])
        return mid

    def test_sync_from_zero_is_snapshot(self):
        self.history()
        head = self.sc.health().health.applied_seq
        chunk = self.sc.sync(0)
        self.assertTrue(chunk.done)
        self.assertEqual(chunk.head_seq, head)
        self.assertEqual(len(chunk.store_uuid), 16, "store_uuid is 16 bytes")
        got = as_tuples(chunk.changes)
        self.assertEqual(got, self.model.after(0))
        # each article once; tombstones carry their keys
        self.assertEqual(len({c[2] for c in got}), len(got))
        tomb = sorted(c[3] for c in got if c[1] == ipb.DELETE)
        self.assertEqual(tomb, ["s4", "s7", "s9"])
        # the whole article rides along for a PUT
        for ch in chunk.changes:
            if ch.op == ipb.PUT:
                self.assertEqual(ch.article.id, ch.id)
                self.assertEqual(ch.article.seq, ch.seq)
                self.assertEqual(len(ch.article.content_hash), 16)

    def test_sync_from_middle(self):
        mid = self.history()
        head = self.sc.health().health.applied_seq
        for s in (mid, mid + 1, mid + 3, head - 1):
            with self.subTest(from_seq=s):
                chunk = self.sc.sync(s)
                self.assertTrue(chunk.done)
                self.assertEqual(chunk.head_seq, head)
                self.assertEqual(as_tuples(chunk.changes), self.model.after(s))
                self.assertTrue(all(ch.seq > s for ch in chunk.changes))
        chunk = self.sc.sync(head)
        self.assertEqual(list(chunk.changes), [], "nothing after head")
        self.assertTrue(chunk.done)
        chunk = self.sc.sync(head + 1000)
        self.assertEqual(list(chunk.changes), [], "a from_seq beyond head")
        self.assertTrue(chunk.done)

    def test_paging(self):
        self.history()
        head = self.sc.health().health.applied_seq
        big = self.sc.sync(0, max_changes=100000)
        self.assertTrue(big.done)
        changes, chunks = self.sc.sync_all(0, max_changes=7)
        self.assertEqual(as_tuples(changes), as_tuples(big.changes))
        self.assertGreater(len(chunks), 1)
        for c in chunks[:-1]:
            self.assertEqual(len(c.changes), 7, "a full page before the last")
            self.assertFalse(c.done)
        self.assertLessEqual(len(chunks[-1].changes), 7)
        self.assertTrue(chunks[-1].done)
        for c in chunks:
            self.assertEqual(c.head_seq, head)
            self.assertEqual(c.store_uuid, big.store_uuid)
        # max_bytes = 1: at least one change per chunk, so it still progresses
        changes, chunks = self.sc.sync_all(0, max_bytes=1)
        self.assertEqual(as_tuples(changes), as_tuples(big.changes))
        self.assertTrue(all(len(c.changes) >= 1 for c in chunks[:-1]))

    def test_uuid_stable_across_restart(self):
        self.history()
        before = self.sc.sync(0)
        self.store.proc.stop()
        self.store.proc.expect_dead = True
        self.restart(self.store)
        after = self.sc.sync(0)
        self.assertEqual(after.store_uuid, before.store_uuid)
        self.assertEqual(as_tuples(after.changes), as_tuples(before.changes))
        # a different database has a different uuid
        other = self.start_store()
        oc = self.client(other.ep)
        self.assertNotEqual(oc.sync(0).store_uuid, before.store_uuid)

    # the feed -----------------------------------------------------------

    def subscribe(self):
        sub = self.ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(self.store.feed)
        return sub

    def recv_feed(self, sub, timeout):
        if not sub.poll(int(timeout * 1000)):
            return None
        frames = sub.recv_multipart()
        self.assertEqual(len(frames), 1, "one frame per feed message, no topic frame")
        m = ipb.FeedMessage()
        m.ParseFromString(frames[0])
        return m

    def test_feed_one_message_per_commit(self):
        sub = self.subscribe()
        # a heartbeat proves the subscription is live (slow joiner)
        first = self.recv_feed(sub, 3.0)
        self.assertIsNotNone(first, "no heartbeat within 3 s")
        uuid = self.sc.sync(0).store_uuid
        batches = [[("put", article(key="f%d-%d" % (b, i), title="F", body="%d %d" % (b, i)))
                    for i in range(n)] for b, n in enumerate((1, 3, 5))]
        batches.append([("delete", 0, "f1-0"), ("put", article(key="f0-0", title="F", body="new"))])
        expected = []
        for ops in batches:
            res = self.sc.write(ops)
            expected.append([r.seq for r in res])
        got = []
        deadline = time.monotonic() + 5
        while len(got) < len(expected) and time.monotonic() < deadline:
            m = self.recv_feed(sub, max(0.0, deadline - time.monotonic()))
            if m is None:
                break
            self.assertEqual(m.store_uuid, uuid)
            if m.changes:
                got.append(m)
        self.assertEqual([[c.seq for c in m.changes] for m in got], expected,
                         "one FeedMessage per commit with that commit's changes")
        for m, seqs in zip(got, expected):
            self.assertEqual(m.last_seq, seqs[-1])
        delete = got[3].changes[0]
        self.assertEqual((delete.op, delete.key), (ipb.DELETE, "f1-0"))
        put = got[3].changes[1]
        self.assertEqual((put.op, put.article.key, put.article.body), (ipb.PUT, "f0-0", "new"))
        # an UNCHANGED write is no change on the feed
        self.sc.write([("put", article(key="f0-0", title="F", body="new"))])
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.5:
            m = self.recv_feed(sub, 0.3)
            self.assertTrue(m is None or not m.changes,
                            "an UNCHANGED write published a change: %r" % (m,))
        sub.close(0)

    def test_feed_heartbeats(self):
        sub = self.subscribe()
        self.assertIsNotNone(self.recv_feed(sub, 3.0), "no heartbeat within 3 s")
        res = self.sc.write([("put", article(key="hb", title="H", body="B"))])
        seq = res[0].seq
        t0 = time.monotonic()
        beats = []
        while time.monotonic() - t0 < 3.5:
            m = self.recv_feed(sub, 0.5)
            if m is not None and not m.changes:
                beats.append((time.monotonic(), m.last_seq))
        self.assertTrue(2 <= len(beats) <= 6, "about one heartbeat a second: %d in 3.5 s"
                        % len(beats))
        self.assertTrue(all(ls == seq for _, ls in beats), "heartbeats carry last_seq %d: %r"
                        % (seq, beats))
        sub.close(0)


if __name__ == "__main__":
    harness.main()
