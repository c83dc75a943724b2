"""Mutation fuzzing of every service's front door, with real processes.

Valid requests of every kind (Ingest, Get, Delete, List with a real cursor,
Search with operators and facets, Health, Stats; store-internal Write and
Sync) are encoded, then mutated byte-wise (bit flips, random bytes, cut,
duplicated and inserted ranges, varint-ish bytes) and sent, with a few
frame-level mutations (missing delimiter, extra frames). The seed is fixed, so
a failure replays (BULLETIN_FUZZ_SEED and BULLETIN_FUZZ_ROUNDS override
them for longer runs by hand).

What must hold: no service exits; whatever comes back is a well-formed
Reply; afterwards every service still answers valid requests correctly (a
fresh article is ingested, replicated, listed and found). Under the
AddressSanitizer build this also checks every decoder and handler the
mutations reach for memory errors.
"""

import collections
import os
import random
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import pb, ipb  # noqa: E402
from search_test import SearchCase  # noqa: E402

ROUNDS = int(os.environ.get("BULLETIN_FUZZ_ROUNDS", "600"))
INTERESTING = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0x0A, 0x12, 0x1A, 0x22]


def mutate(data, rng):
    b = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(7)
        i = rng.randrange(len(b) + 1)
        if op == 0 and b:
            j = min(i, len(b) - 1)
            b[j] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[min(i, len(b) - 1)] = rng.randrange(256)
        elif op == 2 and b:
            del b[i:i + rng.randint(1, 16)]
        elif op == 3:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == 4 and b:
            j = rng.randrange(len(b))
            b[i:i] = b[j:j + rng.randint(1, 64)]
        elif op == 5 and b:
            b[min(i, len(b) - 1)] = rng.choice(INTERESTING)
        elif op == 6:
            b = b[:i]  # truncation
    return bytes(b)


def envelope(body_setter, **kw):
    req = pb.Request(version_major=1, request_id=1000 + random.randrange(10 ** 6), **kw)
    body_setter(req)
    return req.SerializeToString()


class FuzzTest(SearchCase):

    def seeds_public(self, cursor):
        def ingest(r):
            for k in range(2):
                a = r.ingest.items.add().article
                a.key = "fuzz-%d" % k
                a.title = "Fuzzed ferry title %d" % k
                a.body = "A body about the ferry and the canteen, 北京天气 %d." % k
                a.site = "fuzz.example"
                a.category = "news"
                a.tags.extend(["x", "y"])
                a.published_at = 1700000000000 + k
            r.ingest.items.add().raw.text = "Title: raw page\n\nSome scraped text."

        def get(r):
            r.get.id = 1

        def get_key(r):
            r.get.key = "fuzz-0"

        def delete(r):
            r.delete.key = "fuzz-1"

        def lst(r):
            r.list.limit = 3
            r.list.filter.site = "fuzz.example"
            r.list.filter.since = 1
            r.list.cursor = cursor
            r.list.with_total = True

        def search(r):
            r.search.query = 'ferry OR canteen -zzz "the ferry" title:fuzzed secur* 北京'
            r.search.limit = 5
            r.search.facets = True
            r.search.filter.category = "news"
            r.search.mark_open = "["

        def health(r):
            r.health.SetInParent()

        def stats(r):
            r.stats.SetInParent()

        return [envelope(f) for f in (ingest, get, get_key, delete, lst, search, health, stats)]

    def seeds_internal(self):
        w = ipb.StoreRequest()
        op = w.write.ops.add()
        op.put.key = "fuzz-internal"
        op.put.title = "internal"
        op.put.body = "written straight to the store"
        op.put.site = "fuzz.example"
        s = ipb.StoreRequest()
        s.sync.from_seq = 0
        s.sync.max_changes = 5
        return [envelope(lambda r, m=m: setattr(r, "internal", m.SerializeToString()))
                for m in (w, s)]

    def drain(self, client, timeout):
        """Read every reply that arrives within timeout; each must be a Reply."""
        n = 0
        while True:
            frames = client.recv_frames(timeout)
            if frames is None:
                return n
            rep = pb.Reply()
            try:
                rep.ParseFromString(frames[-1])
            except Exception as e:
                self.fail("%s: a reply that is not a Reply (%s): %r\nlast requests sent:\n%s"
                          % (self.target, e, frames, "\n".join(repr(f) for f in self.sent)))
            self.assertTrue(rep.HasField("status"), "a reply without a status")
            if rep.status.code != pb.OK:
                self.assertTrue(harness.is_sentence(rep.status.message),
                                "error without a sentence: %r" % rep.status.message)
            n += 1
            timeout = 0.05

    def test_mutated_requests(self):
        self.start_read_stack(workers=1)
        samples, seq = self.ingest_samples()
        # a real cursor to mutate
        req = pb.Request()
        req.list.limit = 2
        req.min_seq = seq
        first = self.qc.request(req, timeout=10)
        self.assertStatus(first, pb.OK, "list before fuzzing")
        public = self.seeds_public(first.list.next_cursor)
        internal = self.seeds_internal()
        targets = [("ingest", self.ingest_svc.ep, public), ("query", self.query_ep, public),
                   ("store", self.store.ep, public + internal)]
        rng = random.Random(int(os.environ.get("BULLETIN_FUZZ_SEED", "20261129")))
        for name, ep, seeds in targets:
            c = self.client(ep)
            self.target = name
            self.sent = collections.deque(maxlen=60)
            answered = 0
            for i in range(ROUNDS):
                data = mutate(rng.choice(seeds), rng)
                kind = rng.randrange(20)
                if kind == 0:
                    frames = [data]  # no empty delimiter
                elif kind == 1:
                    frames = [b"", data, mutate(b"extra", rng)]
                elif kind == 2:
                    frames = [b"", b""]
                else:
                    frames = [b"", data]
                c.send_frames(frames)
                self.sent.append(frames)
                if i % 50 == 49:
                    answered += self.drain(c, 0.3)
            answered += self.drain(c, 1.0)
            self.assertGreater(answered, ROUNDS // 4,
                               "%s answered %d of %d mutated requests" % (name, answered, ROUNDS))
            for p in [self.store.proc, self.ingest_svc.proc, self.broker] + self.worker_procs:
                self.assertTrue(p.alive(), "%s exited while fuzzing %s:\n%s"
                                % (p.name, name, p.log()[-3000:]))
        # everything still serves valid requests correctly
        for svc, ep in (("store", self.store.ep), ("ingest", self.ingest_svc.ep),
                        ("query", self.query_ep)):
            h = self.client(ep).health(timeout=10)
            self.assertStatus(h, pb.OK, "%s health after fuzzing" % svc)
        rep = self.ic.ingest([harness.article(key="after-fuzz", title="Quokka after the storm",
                                              body="The quokka survived the fuzzing.",
                                              site="after.example")], timeout=30)
        self.assertStatus(rep, pb.OK, "ingest after fuzzing")
        new_id, seq = rep.ingest.results[0].id, rep.ingest.max_seq
        hit = self.search_ok("quokka storm", min_seq=seq)
        self.assertEqual(self.ids(hit), [new_id])
        req = pb.Request()
        req.list.filter.site = "after.example"
        req.min_seq = seq
        rep = self.qc.request(req, timeout=10)
        self.assertStatus(rep, pb.OK, "list after fuzzing")
        self.assertEqual([s.id for s in rep.list.items], [new_id])


if __name__ == "__main__":
    harness.main()
