"""The write path end to end: client -> bulletin-ingest -> bulletin-store.

Ingest batches and raw pages, read every article back from the store with
all fields normalized, re-ingest (UNCHANGED, no new seq), update (UPDATED,
same id, new seq), delete (DELETED, then NOT_FOUND), and the `bulletin` CLI.
"""

import glob
import hashlib
import json
import os
import re
import time
import urllib.request
import unicodedata

import harness
from harness import pb, article


def ms():
    return int(time.time() * 1000)


def h_key(site, title, body):
    d = hashlib.blake2b((site + "\x1f" + title + "\x1f" + body).encode(), digest_size=16)
    return "h:" + d.hexdigest()


# Inputs and what the store must hold after ingest normalizes them.
CASES = [
    (article(key="wp-1", title="  Hello   world\t\n again ",
             body="\r\n Line one\r\nLine two  \r\n", site=" Example News ",
             category=" World ", author=" Ann Author ", lang="EN",
             published_at=1700000000000, tags=["b", "a", "b", " c "]),
     dict(key="wp-1", title="Hello world again", body="Line one\nLine two",
          site="Example News", category="World", author="Ann Author", lang="en",
          published_at=1700000000000, tags=["b", "a", "c"])),
    (article(url="HTTP://Example.COM:80/a/b?x=1#frag", title="Cafe\u0301 news",
             body="Body with cafe\u0301.", site="example.com", category="food"),
     dict(key="http://example.com/a/b?x=1",
          title="Caf\u00e9 news", body="Body with caf\u00e9.", site="example.com",
          category="food", published_at=None, tags=[])),
    (article(title="\u5317\u4eac\u3000\u65b0\u95fb\u00a0\u4eca\u5929", body="\u4eca\u5929\u5929\u6c14\u5f88\u597d\u3002",
             site="\u65b0\u95fb\u7f51", category="\u793e\u4f1a", published_at=1600000000000,
             tags=["\u5929\u6c14"]),
     dict(key=h_key("\u65b0\u95fb\u7f51", "\u5317\u4eac \u65b0\u95fb \u4eca\u5929",
                    "\u4eca\u5929\u5929\u6c14\u5f88\u597d\u3002"),
          title="\u5317\u4eac \u65b0\u95fb \u4eca\u5929", body="\u4eca\u5929\u5929\u6c14\u5f88\u597d\u3002",
          site="\u65b0\u95fb\u7f51", category="\u793e\u4f1a", published_at=1600000000000,
          tags=["\u5929\u6c14"])),
    (article(key="wp-4", title="Joke of the day", body="Why did the chicken cross the road?",
             site="jokes.example", category="jokes", published_at=1650000000000),
     dict(key="wp-4", title="Joke of the day", body="Why did the chicken cross the road?",
          site="jokes.example", category="jokes", published_at=1650000000000, tags=[])),
]


class WritePathTest(harness.BulletinCase):

    def setUp(self):
        self.store, self.ingest = self.start_stack()
        self.ic = self.client(self.ingest.ep)
        self.sc = self.client(self.store.ep)

    def ingest_cases(self):
        t0 = ms()
        rep = self.ic.ingest([c[0] for c in CASES])
        t1 = ms()
        self.assertStatus(rep, pb.OK, "ingest batch")
        results = list(rep.ingest.results)
        self.assertEqual(len(results), len(CASES), "one result per item")
        return rep, results, t0, t1

    def last_seq(self):
        rep = self.sc.health()
        self.assertStatus(rep, pb.OK, "store health")
        return rep.health.applied_seq

    def test_batch_ingest_then_get_normalized(self):
        rep, results, t0, t1 = self.ingest_cases()
        for r, (_, want) in zip(results, CASES):
            self.assertEqual(harness.write_status_name(r.status), "CREATED", r)
            self.assertEqual(r.key, want["key"])
            self.assertGreater(r.id, 0)
            self.assertGreater(r.seq, 0)
            self.assertEqual(r.error, "")
        self.assertEqual(len({r.id for r in results}), len(results), "ids are distinct")
        self.assertEqual(len({r.seq for r in results}), len(results), "seqs are distinct")
        self.assertEqual(rep.ingest.max_seq, max(r.seq for r in results))
        self.assertEqual(self.last_seq(), max(r.seq for r in results))

        for r, (_, want) in zip(results, CASES):
            g = self.sc.get(id=r.id)
            self.assertStatus(g, pb.OK, "get id %d" % r.id)
            a = g.get.article
            self.assertEqual(a.id, r.id)
            self.assertEqual(a.seq, r.seq)
            for field in ("key", "title", "body", "site", "category", "author", "lang"):
                if field in want:
                    self.assertEqual(getattr(a, field), want[field], "%s of %s" % (field, r.key))
            self.assertEqual(list(a.tags), want["tags"], "tags of %s" % r.key)
            for field in ("title", "body"):
                v = getattr(a, field)
                self.assertEqual(v, unicodedata.normalize("NFC", v), "%s is NFC" % field)
            if want["published_at"] is None:
                # absent date: the store uses the commit time
                self.assertTrue(t0 - 1000 <= a.published_at <= t1 + 1000, a.published_at)
            else:
                self.assertEqual(a.published_at, want["published_at"])
            self.assertTrue(t0 - 1000 <= a.ingested_at <= t1 + 1000,
                            "ingested_at %d not in [%d, %d]" % (a.ingested_at, t0, t1))
            self.assertEqual(a.updated_at, a.ingested_at, "new article: updated_at = ingested_at")
            self.assertEqual(len(a.content_hash), 16, "BLAKE2b-128 content hash")
            # by key too
            gk = self.sc.get(key=r.key)
            self.assertStatus(gk, pb.OK, "get key %r" % r.key)
            self.assertEqual(gk.get.article.id, r.id)

    def test_reingest_is_unchanged_without_new_seq(self):
        _, first, _, _ = self.ingest_cases()
        seq_before = self.last_seq()
        rep, again, _, _ = self.ingest_cases()
        for a, b in zip(first, again):
            self.assertEqual(harness.write_status_name(b.status), "UNCHANGED", b)
            self.assertEqual(b.id, a.id)
            self.assertEqual(b.seq, a.seq, "UNCHANGED carries the stored version's seq")
            self.assertEqual(b.key, a.key)
        self.assertEqual(self.last_seq(), seq_before, "no new seq for identical content")
        _, stats = self.sc.stats()
        self.assertEqual(stats.get("last_seq"), seq_before)

    def test_update_keeps_id_new_seq(self):
        _, first, _, _ = self.ingest_cases()
        seq_before = self.last_seq()
        old = self.sc.get(key="wp-4").get.article
        rep = self.ic.ingest([article(key="wp-4", title="Joke of the day",
                                      body="Why did the chicken cross the road? To get to the other side.",
                                      site="jokes.example", category="jokes",
                                      published_at=1650000000000)])
        self.assertStatus(rep, pb.OK, "update")
        r = rep.ingest.results[0]
        self.assertEqual(harness.write_status_name(r.status), "UPDATED", r)
        self.assertEqual(r.id, first[3].id, "same id")
        self.assertEqual(r.seq, seq_before + 1, "a new seq right after the last one")
        a = self.sc.get(id=r.id).get.article
        self.assertEqual(a.body, "Why did the chicken cross the road? To get to the other side.")
        self.assertEqual(a.seq, r.seq)
        self.assertEqual(a.ingested_at, old.ingested_at, "ingested_at is kept")
        self.assertGreaterEqual(a.updated_at, old.updated_at)
        self.assertNotEqual(a.content_hash, old.content_hash)

    def test_delete_then_not_found(self):
        _, first, _, _ = self.ingest_cases()
        seq_before = self.last_seq()
        rep = self.ic.delete(key="wp-1")
        self.assertStatus(rep, pb.OK, "delete by key")
        self.assertEqual(harness.write_status_name(rep.delete.result.status), "DELETED")
        self.assertEqual(rep.delete.result.id, first[0].id)
        self.assertEqual(rep.delete.result.seq, seq_before + 1)
        g = self.sc.get(key="wp-1")
        self.assertStatus(g, pb.NOT_FOUND, "get deleted by key")
        g = self.sc.get(id=first[0].id)
        self.assertStatus(g, pb.NOT_FOUND, "get deleted by id")
        rep = self.ic.delete(key="wp-1")
        self.assertStatus(rep, pb.NOT_FOUND, "re-delete")
        self.assertEqual(self.last_seq(), seq_before + 1, "a failed delete writes nothing")
        # by id
        rep = self.ic.delete(id=first[3].id)
        self.assertStatus(rep, pb.OK, "delete by id")
        self.assertEqual(harness.write_status_name(rep.delete.result.status), "DELETED")
        self.assertStatus(self.sc.get(id=first[3].id), pb.NOT_FOUND, "get deleted by id")
        rep = self.ic.delete(id=987654321)
        self.assertStatus(rep, pb.NOT_FOUND, "delete of an id that never existed")
        rep = self.ic.delete()
        self.assertStatus(rep, pb.INVALID_ARGUMENT, "delete with neither id nor key")
        # the others are untouched
        self.assertStatus(self.sc.get(id=first[1].id), pb.OK, "untouched article")
        # re-creating a deleted key makes a live article again
        rep = self.ic.ingest([CASES[0][0]])
        self.assertEqual(harness.write_status_name(rep.ingest.results[0].status), "CREATED")
        self.assertStatus(self.sc.get(key="wp-1"), pb.OK, "get re-created")

    def test_long_keys(self):
        """Keys past LMDB's 511-byte key limit work end to end (the store hashes them)."""
        keys = ["long-" + "k" * 1500, "long-" + "k" * 1499 + "x", "u" * 2048]
        rep = self.ic.ingest([article(key=k, title="Long key %d" % i, body="b")
                              for i, k in enumerate(keys)])
        self.assertStatus(rep, pb.OK, "long keys")
        res = rep.ingest.results
        self.assertEqual([harness.write_status_name(r.status) for r in res], ["CREATED"] * 3)
        self.assertEqual(len({r.id for r in res}), 3, "keys sharing a long prefix stay distinct")
        for r, k in zip(res, keys):
            self.assertEqual(r.key, k)
            g = self.sc.get(key=k)
            self.assertStatus(g, pb.OK, "get long key")
            self.assertEqual((g.get.article.id, g.get.article.key), (r.id, k))
        rep = self.ic.ingest([article(key=keys[0], title="Long key 0", body="b2")])
        self.assertEqual(harness.write_status_name(rep.ingest.results[0].status), "UPDATED")
        self.assertEqual(rep.ingest.results[0].id, res[0].id)
        self.assertStatus(self.ic.delete(key=keys[1]), pb.OK, "delete long key")
        self.assertStatus(self.sc.get(key=keys[1]), pb.NOT_FOUND, "deleted long key")
        self.assertStatus(self.sc.get(key=keys[0]), pb.OK, "its neighbour is still there")
        rep = self.ic.ingest([article(key="v" * 2049, title="t", body="b")])
        self.assertEqual(harness.write_status_name(rep.ingest.results[0].status), "REJECTED")
        self.assertIn("key", rep.ingest.results[0].error)

    def test_max_batch(self):
        """10000 items in one request: one result each, in order."""
        n = 10000
        rep = self.ic.ingest([article(key="batch-%05d" % i, title="Item %d" % i, body="b")
                              for i in range(n)], timeout=60)
        self.assertStatus(rep, pb.OK, "10000 items")
        res = rep.ingest.results
        self.assertEqual(len(res), n)
        self.assertEqual([r.key for r in res], ["batch-%05d" % i for i in range(n)])
        self.assertTrue(all(harness.write_status_name(r.status) == "CREATED" for r in res))
        self.assertEqual(len({r.seq for r in res}), n)
        self.assertEqual(rep.ingest.max_seq, max(r.seq for r in res))
        _, stats = self.sc.stats()
        self.assertEqual(stats.get("articles"), n)
        g = self.sc.get(key="batch-09999")
        self.assertEqual(g.get.article.title, "Item 9999")

    def test_get_arguments(self):
        self.assertStatus(self.sc.get(), pb.INVALID_ARGUMENT, "Get with neither id nor key")
        req = pb.Request()
        req.get.id = 1
        req.get.key = "x"
        self.assertStatus(self.sc.request(req), pb.INVALID_ARGUMENT, "Get with id and key")
        self.assertStatus(self.sc.get(key="never-written"), pb.NOT_FOUND, "unknown key")

    def test_damage_warnings_on_articles(self):
        rep = self.ic.ingest([
            article(key="dmg-1", title="Caf\u00c3\u00a9 opens", body="It\u00e2\u20ac\u2122s open."),
            article(key="dmg-2", title="Replacement", body="A lost \ufffd character."),
            article(key="dmg-3", title="Clean", body="Nothing wrong at all?"),
        ])
        self.assertStatus(rep, pb.OK, "damaged articles")
        r1, r2, r3 = rep.ingest.results
        for r in (r1, r2, r3):
            self.assertEqual(harness.write_status_name(r.status), "CREATED", r)
        self.assertTrue(r1.warnings, "mojibake is reported: %r" % r1)
        self.assertTrue(r2.warnings, "U+FFFD is reported: %r" % r2)
        self.assertEqual(list(r3.warnings), [], "a clean article has no warnings")
        a = self.sc.get(key="dmg-1").get.article
        self.assertEqual(a.title, "Caf\u00c3\u00a9 opens", "text is never silently changed")

    def test_http_health_and_metrics(self):
        """/healthz and Prometheus /metrics agree with Health and Stats over ZeroMQ."""
        self.ingest_cases()
        last = self.last_seq()
        for svc in (self.store, self.ingest):
            def fetch(path):
                try:
                    with urllib.request.urlopen("http://%s%s" % (svc.http, path), timeout=5) as r:
                        return r.status, r.read().decode()
                except OSError:
                    return None
            # the loop publishes snapshots about once a second
            harness.wait_for(lambda: fetch("/healthz"), 5, interval=0.1,
                             what="%s /healthz" % svc.name)
            status, _ = fetch("/healthz")
            self.assertEqual(status, 200, "%s /healthz" % svc.name)
            def metrics_current():
                got = fetch("/metrics")
                if not got or got[0] != 200:
                    return None
                if svc.name == "store":
                    return re.search(r"^\S*last_seq(_total)?\S* %d(\.0+)?$" % last, got[1], re.M)
                return re.search(r"^\S*created_total\S* %d(\.0+)?$" % len(CASES), got[1], re.M)
            harness.wait_for(metrics_current, 5, interval=0.2,
                             what="%s /metrics to show the writes" % svc.name)

    # raw documents ------------------------------------------------------

    def sample_pages(self):
        src = harness.SOURCE_DIR
        pages = sorted(glob.glob(os.path.join(src, "samples", "raw", "*.txt")))
        pages += sorted(glob.glob(os.path.join(src, "tests", "unit", "ingest", "fixtures", "*.txt")))
        return pages

    def test_raw_sample_page(self):
        """The repo's copy of the scraped sample page: structure and the ?? damage."""
        wanted_head = ("Joke Collection Website - Bulletin headlines - How to better carry out "
                       "public security work in the context of folk customs")
        page = None
        for p in self.sample_pages():
            with open(p, encoding="utf-8") as f:
                text = f.read()
            if text.startswith(wanted_head) and "??" in text:
                page = text
                break
        self.assertIsNotNone(page, "no copy of the shared sample page under samples/raw/ or "
                             "tests/unit/ingest/fixtures/")
        rep = self.ic.ingest([pb.RawDocument(text=page, url="https://jokes.example/a/1")])
        self.assertStatus(rep, pb.OK, "raw ingest")
        r = rep.ingest.results[0]
        self.assertEqual(harness.write_status_name(r.status), "CREATED", r)
        self.assertEqual(r.key, "https://jokes.example/a/1")
        self.assertTrue(any("??" in w for w in r.warnings),
                        "a warning about the lost characters ('??'): %r" % list(r.warnings))
        a = self.sc.get(id=r.id).get.article
        self.assertEqual(a.site, "Joke Collection Website")
        self.assertEqual(a.category, "Bulletin headlines")
        self.assertEqual(a.title, "How to better carry out public security work in the context "
                                  "of folk customs")
        self.assertTrue(a.body.startswith("How to better implement the party"), a.body[:80])
        self.assertIn("??", a.body, "damage is reported, never silently changed")
        self.assertEqual(a.raw, page, "the original text is kept unchanged")

    def test_raw_all_sample_pages(self):
        pages = self.sample_pages()
        self.assertTrue(pages, "the repo ships sample raw pages")
        docs, heads = [], []
        for p in pages:
            with open(p, encoding="utf-8", errors="replace") as f:
                text = f.read()
            first = text.split("\n", 1)[0]
            parts = first.split(" - ", 2)
            if len(parts) < 3 or "\n\n" not in text.replace("\r\n", "\n"):
                continue  # a fixture that is meant to be rejected
            docs.append(pb.RawDocument(text=text))
            heads.append((p, parts))
        self.assertTrue(docs)
        rep = self.ic.ingest(docs)
        self.assertStatus(rep, pb.OK, "raw batch")
        for r, (p, parts) in zip(rep.ingest.results, heads):
            if harness.write_status_name(r.status) == "REJECTED":
                continue  # e.g. a fixture with a damaged shape; its error must say why
            a = self.sc.get(id=r.id).get.article
            self.assertEqual(a.site, " ".join(parts[0].split()), p)
            self.assertEqual(a.category, " ".join(parts[1].split()), p)
            self.assertEqual(a.title, " ".join(parts[2].split()), p)
        for r in rep.ingest.results:
            if harness.write_status_name(r.status) == "REJECTED":
                self.assertTrue(harness.is_sentence(r.error), r)

    def test_raw_wrong_shape_rejected(self):
        rep = self.ic.ingest([pb.RawDocument(text="just one line without the header shape"),
                              pb.RawDocument(text="Site - Cat - Title\n\nTitle\n\nBody text.")])
        self.assertStatus(rep, pb.OK, "raw batch with one bad page")
        bad, good = rep.ingest.results
        self.assertEqual(harness.write_status_name(bad.status), "REJECTED")
        self.assertTrue(harness.is_sentence(bad.error), bad.error)
        self.assertEqual(harness.write_status_name(good.status), "CREATED", good)
        a = self.sc.get(id=good.id).get.article
        self.assertEqual((a.site, a.category, a.title), ("Site", "Cat", "Title"))
        self.assertEqual(a.body, "Body text.")

    # the CLI -------------------------------------------------------------

    def cli(self, *args, **kw):
        return self.run_cli(["--ingest", self.ingest.ep, "--store", self.store.ep,
                             "--timeout", "5000"] + list(args), **kw)

    def parse_json_lines(self, out):
        """The JSON objects of --json output (a summary line may follow them)."""
        rows = []
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("{"):
                rows.append(json.loads(line))
        return rows

    def test_cli_ingest_samples_json(self):
        path = os.path.join(harness.SOURCE_DIR, "samples", "articles.jsonl")
        self.assertTrue(os.path.exists(path), "samples/articles.jsonl is in the repo")
        with open(path, encoding="utf-8") as f:
            lines = [json.loads(l) for l in f if l.strip()]
        self.assertGreater(len(lines), 10)

        p = self.cli("ingest", "--json", path)
        self.assertEqual(p.returncode, 0, "exit 0 when nothing is rejected\n" + p.stderr)
        rows = self.parse_json_lines(p.stdout)
        self.assertEqual(len(rows), len(lines), "one JSON result per article")
        for i, row in enumerate(rows):
            for k in ("index", "key", "id", "seq", "status"):
                self.assertIn(k, row, "result %d has %s: %r" % (i, k, row))
            self.assertEqual(str(row["status"]).upper(), "CREATED", row)
        self.assertEqual(sorted(r["index"] for r in rows), list(range(len(rows))))
        self.assertEqual(len({r["id"] for r in rows}), len(rows))
        self.assertEqual(self.last_seq(), max(r["seq"] for r in rows))

        # the first article is in the store with its title
        by_index = {r["index"]: r for r in rows}
        first = self.sc.get(id=by_index[0]["id"]).get.article
        self.assertEqual(first.title, " ".join(lines[0]["title"].split()))

        # again: unchanged, exit 0
        p = self.cli("ingest", "--json", path)
        self.assertEqual(p.returncode, 0, p.stderr)
        rows2 = self.parse_json_lines(p.stdout)
        self.assertEqual([str(r["status"]).upper() for r in rows2], ["UNCHANGED"] * len(rows))

        # get through the CLI
        p = self.cli("get", "--store", "--json", str(by_index[0]["id"]))
        self.assertEqual(p.returncode, 0, p.stderr)
        got = self.parse_json_lines(p.stdout)
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0].get("title"), first.title)
        p = self.cli("get", "--store", "987654321")
        self.assertEqual(p.returncode, 1, "get of a missing id exits 1")
        self.assertTrue(p.stderr.strip(), "and says why on stderr")

    def test_cli_exit_codes(self):
        bad = os.path.join(self.tmp, "bad.jsonl")
        with open(bad, "w") as f:
            f.write(json.dumps({"key": "cli-ok", "title": "Fine", "body": "Fine body.",
                                "site": "s", "category": "c"}) + "\n")
            f.write("{this is not json\n")
            f.write("\n")
            f.write(json.dumps({"key": "cli-notitle", "title": "   ", "body": "x",
                                "site": "s", "category": "c"}) + "\n")
        p = self.cli("ingest", "--json", bad)
        self.assertEqual(p.returncode, 1, "exit 1 when something was rejected\n" + p.stderr)
        rows = self.parse_json_lines(p.stdout)
        named = "bad.jsonl:2" in p.stdout + p.stderr or any(
            str(r.get("file", "")).endswith("bad.jsonl") and r.get("line") == 2 for r in rows)
        self.assertTrue(named, "the bad line is named (file:line):\n" + p.stdout + p.stderr)
        statuses = [str(r["status"]).upper() for r in rows]
        self.assertIn("CREATED", statuses)
        self.assertIn("REJECTED", statuses)
        for r in rows:
            if str(r["status"]).upper() == "REJECTED" and r.get("error") is not None:
                self.assertTrue(harness.is_sentence(r["error"]), r)
        self.assertStatus(self.sc.get(key="cli-ok"), pb.OK, "the good line was written")

        # nothing listens there: a connection error is exit 2
        dead = harness.endpoint(harness.free_port())
        t0 = time.monotonic()
        p = self.run_cli(["--ingest", dead, "--timeout", "300", "ingest", bad], timeout=60)
        self.assertEqual(p.returncode, 2, "exit 2 when ingest is unreachable\n" + p.stderr)
        self.assertTrue(p.stderr.strip())
        self.assertLess(time.monotonic() - t0, 20)

        # usage errors are exit 2
        p = self.run_cli(["ingest", "--no-such-flag", bad])
        self.assertEqual(p.returncode, 2, p.stderr)
        p = self.run_cli(["no-such-command"])
        self.assertEqual(p.returncode, 2, p.stderr)
        p = self.run_cli(["ingest", os.path.join(self.tmp, "missing.jsonl")])
        self.assertIn(p.returncode, (1, 2), "a missing file is an error")
        # --help works and exits 0
        p = self.run_cli(["--help"])
        self.assertEqual(p.returncode, 0)
        self.assertIn("ingest", p.stdout)


if __name__ == "__main__":
    harness.main()
