"""Full-text search end to end: ingest -> store -> feed -> 2 workers (index) ->
broker -> Search, checked against a straightforward model built here.

The generated corpus uses made-up four-letter words ("gorf", "zilk", ...):
Snowball leaves them as they are and typo tolerance (words of 5+ characters)
never applies, so which articles match a query is plain set logic over the
words of each field. Ranking itself is checked to 1e-6 against a reference
scorer in the unit tests of services/search; here: scores never increase down
a page, and the obvious best article comes first. Chinese queries (1, 2, 3+
characters) are checked against substring containment on the Chinese
samples (a CJK query of 3+ characters is a phrase of bigrams).
"""

import json
import os
import random
import re
import threading
import time

import harness
from harness import BulletinCase, binary, endpoint, free_port, pb, wait_for

SAMPLES = os.path.join(harness.SOURCE_DIR, "samples", "articles.jsonl")
SITES = ["Gorf Daily", "Zilk Gazette", "Bulletin Tamk", "Kupt Jokes"]
CATEGORIES = ["Local", "Sport", "Science", "Jokes", "Weather"]
TAGS = ["alpha", "beta", "gamma", "delta"]
DAY = 86400 * 1000
T0 = 1700000000000  # 2023-11-14


def make_vocab(n, rng):
    words = set()
    while len(words) < n:
        w = (rng.choice("bdgkpqtvz") + rng.choice("aiou") + rng.choice("lmnr")
             + rng.choice("bfkptx"))
        words.add(w)
    return sorted(words)


class Doc:
    def __init__(self, key, title, body, site, category, tags, pub):
        self.key, self.title, self.body = key, title, body
        self.site, self.category, self.tags, self.pub = site, category, tags, pub
        self.id = 0
        self.tw = title.split()
        self.bw = body.split()

    def article(self):
        return harness.article(key=self.key, title=self.title, body=self.body, site=self.site,
                               category=self.category, tags=list(self.tags),
                               published_at=self.pub)

    # the model ------------------------------------------------------------

    def has(self, w, title_only=False):
        return w in self.tw or (not title_only and w in self.bw)

    def has_phrase(self, ws):
        def inside(seq):
            n = len(ws)
            return any(seq[i:i + n] == ws for i in range(len(seq) - n + 1))
        return inside(self.tw) or inside(self.bw)

    def has_prefix(self, p):
        return any(w.startswith(p) for w in self.tw + self.bw)


def tokens(text):
    return set(re.findall(r"[a-z0-9]+", text.lower()))


class SearchCase(BulletinCase):
    """A read tier with 2 workers on free ports (HTTP listeners off)."""

    @staticmethod
    def http_off(name):
        import subprocess
        h = subprocess.run([binary(name), "--help"], capture_output=True, text=True, timeout=10)
        return ["--http", ""] if "--http" in h.stdout else []

    def start_read_stack(self, workers=2, broker_extra=(), worker_extra=()):
        store = self.start_store(extra=self.http_off("bulletin-store"))
        ingest = self.start_ingest(store.ep, extra=self.http_off("bulletin-ingest"))
        qport, wport = free_port(), free_port()
        broker = self.spawn("bulletin-query", [binary("bulletin-query"), "--bind", endpoint(qport),
                                               "--workers", endpoint(wport),
                                               "--heartbeat-ms", "200"]
                            + self.http_off("bulletin-query") + list(broker_extra))
        self.worker_names = []
        self.worker_procs = []
        for k in range(workers):
            name = "w%d" % (k + 1)
            self.worker_names.append(name)
            self.worker_procs.append(self.spawn(
                "bulletin-worker-" + name,
                [binary("bulletin-worker"), "--broker", endpoint(wport), "--store", store.ep,
                 "--feed", store.feed, "--data", os.path.join(self.tmp, "worker-" + name),
                 "--name", name, "--heartbeat-ms", "200"] + self.http_off("bulletin-worker")
                + list(worker_extra)))
        self.query_ep = endpoint(qport)
        self.workers_ep = endpoint(wport)
        self.served = set()
        self.qc = self.client(self.query_ep)
        self.ic = self.client(ingest.ep)
        self.store, self.ingest_svc, self.broker = store, ingest, broker

        def registered():
            if not broker.alive():
                raise AssertionError("bulletin-query exited during start-up")
            try:
                _, m = self.qc.stats(timeout=1)
            except TimeoutError:
                return False
            return m.get("workers", 0) >= workers
        wait_for(registered, harness.START_TIMEOUT, 0.05, "%d workers registered" % workers)

    # requests -------------------------------------------------------------

    def search(self, query, client=None, min_seq=0, timeout=10, **kw):
        req = pb.Request()
        req.search.query = query
        req.min_seq = min_seq
        for k, v in kw.items():
            if k in ("site", "category", "tag", "since", "until"):
                setattr(req.search.filter, k, v)
            else:
                setattr(req.search, k, v)
        return (client or self.qc).request(req, timeout=timeout)

    def search_ok(self, query, **kw):
        rep = self.search(query, **kw)
        self.assertStatus(rep, pb.OK, "search %r" % query)
        self.served.add(rep.served_by)
        return rep

    def ingest_docs(self, docs, batch=200):
        """Ingest through the ingest service; sets ids; returns max_seq."""
        max_seq = 0
        for i in range(0, len(docs), batch):
            part = docs[i:i + batch]
            rep = self.ic.ingest([d.article() for d in part], timeout=30)
            self.assertStatus(rep, pb.OK, "ingest")
            for d, r in zip(part, rep.ingest.results):
                self.assertIn(r.status, (pb.CREATED, pb.UPDATED), r.error)
                d.id = r.id
            max_seq = max(max_seq, rep.ingest.max_seq)
        return max_seq

    def ingest_samples(self):
        arts = []
        with open(SAMPLES, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    o = json.loads(line)
                    a = pb.Article(key=o.get("key") or o.get("url") or "", site=o.get("site", ""),
                                   category=o.get("category", ""), title=o.get("title", ""),
                                   body=o.get("body", ""), url=o.get("url", ""))
                    a.tags.extend(o.get("tags") or [])
                    arts.append(a)
        rep = self.ic.ingest(arts, timeout=30)
        self.assertStatus(rep, pb.OK, "ingest samples")
        samples = {}
        for a, r in zip(arts, rep.ingest.results):
            self.assertEqual(r.status, pb.CREATED, r.error)
            samples[r.id] = a
        return samples, rep.ingest.max_seq

    def ids(self, rep):
        return [h.id for h in rep.search.hits]

    def all_ids(self, query, min_seq=0, **kw):
        """Every matching id, following the cursor (pages of 1000)."""
        out, cursor = [], b""
        while True:
            rep = self.search_ok(query, min_seq=min_seq, limit=1000, cursor=cursor, **kw)
            out.extend(self.ids(rep))
            self.assertDescending(rep, query)
            if not rep.search.next_cursor:
                self.assertEqual(len(out), rep.search.total, "total of %r" % query)
                return out
            cursor = rep.search.next_cursor

    def assertDescending(self, rep, what):
        scores = [h.score for h in rep.search.hits]
        for a, b in zip(scores, scores[1:]):
            self.assertGreaterEqual(a + 1e-9, b, "%s: scores not descending: %s" % (what, scores))


class SearchTest(SearchCase):

    def make_corpus(self, n=300, seed=4):
        rng = random.Random(seed)
        vocab = make_vocab(70, rng)
        weights = [1.0 / (i + 1) for i in range(len(vocab))]
        docs = []
        for i in range(n):
            title = " ".join(rng.choices(vocab, weights, k=rng.randint(2, 5)))
            body = " ".join(rng.choices(vocab, weights, k=rng.randint(15, 60)))
            docs.append(Doc("https://gen.example/%d" % i, title, body, rng.choice(SITES),
                            rng.choice(CATEGORIES), rng.sample(TAGS, rng.randint(0, 2)),
                            T0 + rng.randint(0, 400) * DAY + rng.randint(0, DAY - 1)))
        return vocab, docs

    def test_operators_filters_facets_updates(self):
        self.start_read_stack(workers=2)
        vocab, docs = self.make_corpus()
        samples, _ = self.ingest_samples()
        sample_tokens = set()
        for a in samples.values():
            sample_tokens |= tokens(a.title + " " + a.body)
        self.assertFalse(sample_tokens & set(vocab), "made-up words occur in the samples")
        seq = self.ingest_docs(docs)
        by_id = {d.id: d for d in docs}
        gen = set(by_id)

        def check(query, pred, **kw):
            got = self.all_ids(query, min_seq=seq, **kw)
            self.assertEqual(len(got), len(set(got)), "%r: an id twice" % query)
            want = {d.id for d in docs if pred(d)}
            # every case is chosen to match something: an empty answer proves nothing
            self.assertTrue(want, "query %r %r matches nothing in the model" % (query, kw))
            self.assertEqual(set(got) & gen, want, "query %r %r" % (query, kw))
            self.assertFalse(set(got) - gen, "query %r matched samples" % query)
            return got

        common, mid, rare = vocab[0], vocab[5], vocab[40]
        w1, w2 = vocab[1], vocab[3]
        cases = [
            (common, lambda d: d.has(common)),
            (rare, lambda d: d.has(rare)),
            ("%s %s" % (w1, mid), lambda d: d.has(w1) and d.has(mid)),
            ('"%s %s"' % (w1, w2), lambda d: d.has_phrase([w1, w2])),
            ("%s -%s" % (w1, mid), lambda d: d.has(w1) and not d.has(mid)),
            ("%s OR %s" % (rare, vocab[30]), lambda d: d.has(rare) or d.has(vocab[30])),
            ("%s %s OR %s" % (w1, rare, vocab[30]),
             lambda d: d.has(w1) and (d.has(rare) or d.has(vocab[30]))),
            ("title:%s" % mid, lambda d: d.has(mid, title_only=True)),
            ("title:%s %s" % (w1, w2), lambda d: d.has(w1, True) and d.has(w2)),
            ('%s site:"%s"' % (w1, SITES[1]), lambda d: d.has(w1) and d.site == SITES[1]),
            ("%s category:%s" % (w1, CATEGORIES[2]),
             lambda d: d.has(w1) and d.category == CATEGORIES[2]),
            ("%s tag:%s" % (w1, TAGS[0]), lambda d: d.has(w1) and TAGS[0] in d.tags),
            ('-"%s %s" %s' % (w1, w2, mid), lambda d: d.has(mid) and not d.has_phrase([w1, w2])),
        ]
        # prefixes that only made-up words have
        prefixes = sorted({w[:2] for w in vocab} | {w[:3] for w in vocab})
        prefixes = [p for p in prefixes if not any(t.startswith(p) for t in sample_tokens)]
        self.assertTrue(prefixes)
        for p in prefixes[:4]:
            cases.append((p + "*", lambda d, p=p: d.has_prefix(p)))
        cases.append(("%s* %s" % (prefixes[0], w1), lambda d: d.has_prefix(prefixes[0]) and d.has(w1)))
        for q, pred in cases:
            with self.subTest(query=q):
                check(q, pred)

        # request filters and the date range
        since, until = T0 + 100 * DAY, T0 + 250 * DAY
        with self.subTest("request filters"):
            check(w1, lambda d: d.has(w1) and d.site == SITES[0], site=SITES[0])
            check(w1, lambda d: d.has(w1) and d.category == CATEGORIES[1], category=CATEGORIES[1])
            check(w1, lambda d: d.has(w1) and TAGS[2] in d.tags, tag=TAGS[2])
            check(w1, lambda d: d.has(w1) and since <= d.pub < until, since=since, until=until)
            check(w1, lambda d: d.has(w1) and d.pub >= since, since=since)
            check("%s site:\"%s\"" % (w1, SITES[2]),
                  lambda d: d.has(w1) and d.site == SITES[2] and d.category == CATEGORIES[3],
                  category=CATEGORIES[3])

        # facets: counts per category and site over all matches
        with self.subTest("facets"):
            rep = self.search_ok(w1, min_seq=seq, facets=True, limit=5)
            match = [d for d in docs if d.has(w1)]
            self.assertEqual(rep.search.total, len(match))
            for field, facets in (("category", rep.search.categories), ("site", rep.search.sites)):
                want = {}
                for d in match:
                    want[getattr(d, field)] = want.get(getattr(d, field), 0) + 1
                got = [(f.value, f.count) for f in facets]
                self.assertEqual(dict(got), want, field)
                self.assertEqual(got, sorted(got, key=lambda x: (-x[1], x[0])), field)
            rep = self.search_ok(w1, min_seq=seq, limit=5)
            self.assertEqual(len(rep.search.categories), 0, "facets without asking")

        # the obvious best article first, snippets marked
        with self.subTest("top hit"):
            best = Doc("https://gen.example/best", "%s %s" % (rare, rare),
                       " ".join([rare] * 6 + [vocab[2]] * 20), SITES[0], CATEGORIES[0], [], T0)
            seq = self.ingest_docs([best])
            docs.append(best)
            by_id[best.id] = best
            gen.add(best.id)
            rep = self.search_ok(rare, min_seq=seq)
            self.assertEqual(rep.search.hits[0].id, best.id)
            self.assertGreaterEqual(rep.applied_seq, seq)
            self.assertIn("\u00ab%s\u00bb" % rare, rep.search.hits[0].snippet)
            h = rep.search.hits[0]
            self.assertEqual((h.key, h.site, h.category, h.title, h.published_at),
                             (best.key, best.site, best.category, best.title, best.pub))
            rep = self.search_ok(rare, min_seq=seq, mark_open="[", mark_close="]")
            self.assertIn("[%s]" % rare, rep.search.hits[0].snippet)
            self.assertNotIn("\u00ab", rep.search.hits[0].snippet)

        # pagination: offset pages and cursor pages are the one big page
        with self.subTest("pagination"):
            full = self.ids(self.search_ok(common, min_seq=seq, limit=1000))
            self.assertGreater(len(full), 25)
            by_offset = []
            for off in range(0, len(full), 7):
                by_offset += self.ids(self.search_ok(common, min_seq=seq, limit=7, offset=off))
            self.assertEqual(by_offset, full)
            by_cursor, cursor, pages = [], b"", 0
            while True:
                rep = self.search_ok(common, min_seq=seq, limit=9, cursor=cursor)
                by_cursor += self.ids(rep)
                pages += 1
                cursor = rep.search.next_cursor
                if not cursor:
                    break
                self.assertLess(pages, 100)
            self.assertEqual(by_cursor, full)
            rep = self.search(common, cursor=b"not a cursor at all")
            self.assertStatus(rep, pb.INVALID_ARGUMENT, "bad cursor")

        # deletes and updates disappear on every worker
        with self.subTest("deletes and updates"):
            victims = [d for d in docs if d.has(w1)][:5]
            last = 0
            for d in victims[:3]:
                rep = self.ic.delete(id=d.id)
                self.assertStatus(rep, pb.OK, "delete")
                last = rep.delete.result.seq
                docs.remove(d)
            upd = victims[3:5]
            for d in upd:
                d.title = "%s %s" % (vocab[60], vocab[61])
                d.body = " ".join([vocab[62]] * 5)
                d.tw, d.bw = d.title.split(), d.body.split()
            seq = max(last, self.ingest_docs(upd))
            self.served = set()
            for _ in range(6):
                got = self.all_ids(w1, min_seq=seq)
                self.assertFalse({v.id for v in victims} & set(got), "deleted/updated still found")
                rep = self.search_ok(vocab[62], min_seq=seq)
                self.assertTrue({d.id for d in upd} <= set(self.ids(rep)))
                rep = self.search_ok(vocab[62], min_seq=seq)
                self.assertTrue({d.id for d in upd} <= set(self.ids(rep)))
            self.assertEqual(self.served, set(self.worker_names), "every worker answered")
            check(w1, lambda d: d.has(w1))

    def test_chinese_and_bad_queries(self):
        self.start_read_stack(workers=2)
        samples, seq = self.ingest_samples()
        zh = {i: a for i, a in samples.items() if re.search("[\u4e00-\u9fff]", a.title + a.body)}
        self.assertGreaterEqual(len(zh), 3, "the samples have Chinese articles")
        text = "".join(a.title + a.body for a in zh.values())
        han = re.findall("[\u4e00-\u9fff]+", text)
        run = max(han, key=len)
        queries = [run[0], run[1], run[:2], run[2:4], run[:3], run[1:5], "老师", "的"]
        for q in queries:
            with self.subTest(query=q):
                want = {i for i, a in samples.items() if q in a.title or q in a.body}
                rep = self.search_ok(q, min_seq=seq, limit=1000)
                self.assertEqual(set(self.ids(rep)), want)
                self.assertEqual(rep.search.total, len(want))
                for h in rep.search.hits:
                    self.assertIn(q[0], h.snippet + h.title)
                self.assertDescending(rep, q)
        # traditional characters fold to simplified ones on both sides
        pairs = [("说", "說"), ("们", "們"), ("这", "這"), ("国", "國"), ("时", "時"),
                 ("会", "會"), ("为", "為"), ("学", "學"), ("发", "發"), ("对", "對")]
        present = [(si, tr) for si, tr in pairs if si in text]
        self.assertTrue(present, "the Chinese samples use common simplified characters")
        for si, tr in present[:3]:
            with self.subTest(traditional=tr):
                want = {i for i, a in samples.items()
                        if si in a.title + a.body or tr in a.title + a.body}
                rep = self.search_ok(tr, min_seq=seq, limit=1000)
                self.assertEqual(set(self.ids(rep)), want)
                self.assertEqual(set(self.ids(self.search_ok(si, min_seq=seq, limit=1000))), want)
        # a mixed query: a Chinese word and an English filter
        rep = self.search_ok("老师 -迟到", min_seq=seq)
        self.assertEqual(set(self.ids(rep)),
                         {i for i, a in samples.items()
                          if "老师" in a.title + a.body and "迟到" not in a.title + a.body})

        # refused queries: quick, with a sentence, and the worker keeps serving
        bad = [("", None), ("   ", None), ('ferry "unclosed', "position"),
               ("-ferry", None), ("a*", None),
               (" ".join("w%d" % i for i in range(10000)), None)]
        for q, must in bad:
            with self.subTest(bad=q[:40]):
                rep = self.search(q, timeout=5)  # a hang fails here
                self.assertStatus(rep, pb.INVALID_ARGUMENT, "query %r" % q[:40])
                if must:
                    self.assertIn(must, rep.status.message)
        rep = self.search('ferry "unclosed')
        m = re.search(r"position (\d+)", rep.status.message)
        self.assertTrue(m, rep.status.message)
        self.assertEqual(int(m.group(1)), len("ferry "))
        rep = self.search("ferry", limit=1001)
        self.assertStatus(rep, pb.INVALID_ARGUMENT, "limit 1001")
        rep = self.search("ferry", mark_open="x" * 100)
        self.assertStatus(rep, pb.INVALID_ARGUMENT, "marker of 100 bytes")
        for _ in range(4):
            self.search_ok("ferry")
        for p in self.worker_procs:
            self.assertTrue(p.alive())

    def test_big_article(self):
        self.start_read_stack(workers=2)
        rng = random.Random(7)
        vocab = make_vocab(50, rng)
        body = []
        size = 0
        while size < 1024 * 1024 - 200:
            w = rng.choice(vocab[:-1])
            body.append(w)
            size += len(w) + 1
        body.insert(len(body) - 30, vocab[-1])
        body = " ".join(body)[:1024 * 1024 - 100]
        d = Doc("https://gen.example/big", "the big one", body, SITES[0], CATEGORIES[0], [], T0)
        small = Doc("https://gen.example/small", "small", "%s %s" % (vocab[0], vocab[-1]),
                    SITES[1], CATEGORIES[1], [], T0)
        seq = self.ingest_docs([d, small])
        # vocab[0] is everywhere (marked in the snippet); vocab[-1] only near
        # the end, past the bytes a snippet scans (16 KiB): found, and the
        # snippet is the beginning of the body, just as cheap
        # (that the snippet's work is bounded is asserted in tests/unit/search:
        # speed itself is the benchmark's business, not the test suite's)
        for q in (vocab[-1], vocab[0]):
            rep = self.search_ok(q, min_seq=seq)
            self.assertEqual(set(self.ids(rep)), {d.id, small.id})
            big = [h for h in rep.search.hits if h.id == d.id][0]
            if q == vocab[0]:
                self.assertIn("\u00ab%s\u00bb" % q, big.snippet)
            else:
                self.assertTrue(big.snippet.startswith(body[:20]), big.snippet[:40])
            self.assertLess(len(big.snippet.encode()), 2000)


class ConcurrentSearchTest(SearchCase):

    def test_ingest_while_searching(self):
        self.start_read_stack(workers=2)
        rng = random.Random(9)
        vocab = make_vocab(30, rng)
        marker = "qorx" if "qorx" not in vocab else "zumb"
        state = {"acked": 0, "acked_seq": 0, "stop": False, "errors": [], "searches": 0,
                 "served": set()}
        lock = threading.Lock()
        duration = 10.0

        def writer():
            c = harness.Client(self.ctx, self.ingest_svc.ep)
            try:
                i = 0
                t_end = time.monotonic() + duration
                while time.monotonic() < t_end:
                    batch = []
                    for _ in range(rng.randint(1, 20)):
                        body = " ".join(rng.choices(vocab, k=30) + [marker])
                        batch.append(harness.article(key="https://conc.example/%d" % i,
                                                     title="%s %d" % (vocab[0], i), body=body,
                                                     published_at=T0 + i))
                        i += 1
                    rep = c.ingest(batch, timeout=20)
                    if rep.status.code != pb.OK:
                        state["errors"].append("ingest: %s" % rep.status.message)
                        continue
                    with lock:
                        state["acked"] = i
                        state["acked_seq"] = rep.ingest.max_seq
                    time.sleep(0.01)
            except Exception as e:  # noqa: BLE001 - reported by the test
                state["errors"].append("writer: %r" % e)
            finally:
                state["stop"] = True
                c.close()

        def searcher(k):
            c = harness.Client(self.ctx, self.query_ep)
            try:
                while not state["stop"]:
                    with lock:
                        acked, seq = state["acked"], state["acked_seq"]
                    rep = self.search(marker, client=c, min_seq=seq, limit=5, facets=(k == 0),
                                      timeout=10)
                    if rep.status.code != pb.OK:
                        state["errors"].append("search: %s %s" % (harness.code_name(rep.status.code),
                                                                   rep.status.message))
                        continue
                    if rep.search.total < acked:
                        state["errors"].append("min_seq %d: total %d < %d acknowledged"
                                               % (seq, rep.search.total, acked))
                    if rep.applied_seq < seq:
                        state["errors"].append("answered at seq %d < min_seq %d"
                                               % (rep.applied_seq, seq))
                    if k == 0 and sum(f.count for f in rep.search.sites) != rep.search.total:
                        state["errors"].append("site facets do not add up to total")
                    with lock:
                        state["searches"] += 1
                        state["served"].add(rep.served_by)
            except Exception as e:  # noqa: BLE001
                state["errors"].append("searcher %d: %r" % (k, e))
            finally:
                c.close()

        threads = [threading.Thread(target=writer)] + [
            threading.Thread(target=searcher, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=duration + 60)
        self.assertFalse(any(t.is_alive() for t in threads), "a thread hung")
        self.assertEqual(state["errors"][:10], [])
        self.assertGreater(state["searches"], 50)
        self.assertEqual(state["served"], set(self.worker_names))
        # at the end every worker has every article
        for _ in range(6):
            rep = self.search_ok(marker, min_seq=state["acked_seq"])
            self.assertEqual(rep.search.total, state["acked"])


class CliSearchTest(SearchCase):

    def cli(self, args):
        return self.run_cli(["--query", self.query_ep] + list(args))

    def test_cli_search(self):
        self.start_read_stack(workers=2)
        samples, seq = self.ingest_samples()
        r = self.cli(["search", "ferry", "--json", "--facets", "--min-seq", str(seq)])
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = [l for l in r.stdout.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1)
        o = json.loads(lines[0])
        api = self.search_ok("ferry", min_seq=seq, facets=True)
        self.assertEqual([h["id"] for h in o["hits"]], self.ids(api))
        self.assertEqual(o["total"], api.search.total)
        self.assertIsNone(o["next_cursor"])
        for h, a in zip(o["hits"], api.search.hits):
            self.assertEqual((h["key"], h["site"], h["category"], h["title"], h["snippet"]),
                             (a.key, a.site, a.category, a.title, a.snippet))
            self.assertAlmostEqual(h["score"], a.score, places=9)
            self.assertRegex(h["published_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual({(f["value"], f["count"]) for f in o["sites"]},
                         {(f.value, f.count) for f in api.search.sites})
        self.assertIn(o["served_by"], self.worker_names)
        self.assertGreaterEqual(o["applied_seq"], seq)
        self.assertIsInstance(o["took_us"], int)
        self.assertTrue(set(o) >= {"hits", "total", "next_cursor", "categories", "sites",
                                   "took_us", "served_by", "applied_seq"})

        # pages through --cursor: the same ids as one big page
        full = self.ids(self.search_ok("the", min_seq=seq, limit=1000))
        got, cursor = [], None
        for _ in range(50):
            args = ["search", "the", "--json", "--limit", "4"] + (["--cursor", cursor] if cursor else [])
            r = self.cli(args)
            self.assertEqual(r.returncode, 0, r.stderr)
            o = json.loads(r.stdout)
            self.assertNotIn("sites", o)
            got += [h["id"] for h in o["hits"]]
            cursor = o["next_cursor"]
            if not cursor:
                break
        self.assertEqual(got, full)
        r = self.cli(["search", "the", "--json", "--limit", "3", "--offset", "3"])
        self.assertEqual([h["id"] for h in json.loads(r.stdout)["hits"]], full[3:6])

        # filters and the human output (not a terminal: the « » markers)
        r = self.cli(["search", "ferry", "--site", "Harbor Gazette", "--facets"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("  1. ", r.stdout)
        self.assertIn("\u00abferries\u00bb", r.stdout)
        self.assertIn("Harbor Gazette", r.stdout)
        self.assertRegex(r.stdout, r"\d+ articles? match(es)? \(took \d+ us on w\d at seq \d+\)")
        self.assertIn("categories:", r.stdout)
        self.assertNotIn("\x1b[", r.stdout)
        r = self.cli(["search", "老师", "--json"])
        o = json.loads(r.stdout)
        self.assertTrue(o["hits"] and all("老师" in h["title"] + h["snippet"] for h in o["hits"]))
        r = self.cli(["search", "zzqqxx", "--json"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["hits"], [])
        r = self.cli(["search", "zzqqxx"])
        self.assertEqual(r.returncode, 0)
        self.assertIn("0 articles match", r.stdout)

        # exit codes: refused query, usage errors, no query tier
        r = self.cli(["search", 'ferry "open'])
        self.assertEqual(r.returncode, 2)
        self.assertIn("INVALID_ARGUMENT", r.stderr)
        self.assertIn("position 6", r.stderr)
        for args in (["search"], ["search", "a", "b"], ["search", "x", "--limit", "0"],
                     ["search", "x", "--since", "yesterday"], ["search", "x", "--cursor", "!!"],
                     ["search", "x", "--offset", "3", "--cursor", "AAAA"],
                     ["search", "x", "--min-seq", "-1"]):
            with self.subTest(args=args):
                r = self.cli(args)
                self.assertEqual(r.returncode, 2, (args, r.stdout, r.stderr))
                self.assertTrue(r.stderr.strip())
        r = self.run_cli(["--query", endpoint(free_port()), "--timeout", "300", "--retries", "0",
                          "search", "ferry"])
        self.assertEqual(r.returncode, 2)
        r = self.cli(["search", "--help"])
        self.assertEqual(r.returncode, 0)
        self.assertIn("--facets", r.stdout)


if __name__ == "__main__":
    harness.main()
