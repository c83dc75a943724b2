"""The examples in examples/python run and print what they should.

The worked example of docs/protocol.md runs exactly as the document shows it:
generate the classes with protoc --python_out, start ingest + store, run
examples/python/ingest_and_get.py against them. The document must contain the
example file verbatim, so the two cannot drift. list_and_get.py and search.py
run the same way against a real read tier (store, ingest, query broker, one
worker).
"""

import os
import shutil
import subprocess
import sys

import harness

EXAMPLE = os.path.join(harness.SOURCE_DIR, "examples", "python", "ingest_and_get.py")
LIST_EXAMPLE = os.path.join(harness.SOURCE_DIR, "examples", "python", "list_and_get.py")
SEARCH_EXAMPLE = os.path.join(harness.SOURCE_DIR, "examples", "python", "search.py")
DOC = os.path.join(harness.SOURCE_DIR, "docs", "protocol.md")


class ExamplesTest(harness.BulletinCase):

    def generate_classes(self):
        """The Python classes of bulletin.proto, as the examples' docstrings say; their dir."""
        protoc = shutil.which("protoc")
        self.assertIsNotNone(protoc, "protoc is installed (protobuf-compiler)")
        gen = os.path.join(self.tmp, "gen")
        os.makedirs(gen, exist_ok=True)
        subprocess.run([protoc, "--python_out=" + gen, "-I",
                        os.path.join(harness.SOURCE_DIR, "proto"),
                        os.path.join(harness.SOURCE_DIR, "proto", "bulletin.proto")],
                       check=True)
        return gen

    def start_read_tier(self):
        """Store, ingest, a query broker and one worker "w1"; (ingest, query) once healthy."""
        store, ingest = self.start_stack()
        query = harness.Service("query", harness.endpoint(harness.free_port()),
                                workers=harness.endpoint(harness.free_port()))
        query.proc = self.spawn("bulletin-query", [
            harness.binary("bulletin-query"), "--bind", query.ep, "--workers", query.workers,
            "--http", "%s:%d" % (harness.LOCAL, harness.free_port())])
        self.spawn("bulletin-worker", [
            harness.binary("bulletin-worker"), "--broker", query.workers, "--store", store.ep,
            "--feed", store.feed, "--data", os.path.join(self.tmp, "worker"), "--name", "w1"])
        self.wait_healthy(query.proc, query.ep)   # the broker is healthy once a worker registered
        return ingest, query

    def run_example(self, path, gen, **endpoints):
        """Run an example with the classes in gen and BULLETIN_* endpoints; its stdout."""
        env = dict(os.environ, PYTHONPATH=gen, **endpoints)
        p = subprocess.run([sys.executable, path], env=env, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, "example failed:\n%s\n%s" % (p.stdout, p.stderr))
        return p.stdout

    def test_document_contains_example(self):
        with open(EXAMPLE, encoding="utf-8") as f:
            code = f.read()
        with open(DOC, encoding="utf-8") as f:
            doc = f.read()
        self.assertIn(code.strip(), doc, "docs/protocol.md shows %s verbatim" % EXAMPLE)

    def test_ingest_and_get_example(self):
        gen = self.generate_classes()
        store, ingest = self.start_stack()
        out = self.run_example(EXAMPLE, gen, BULLETIN_INGEST=ingest.ep, BULLETIN_STORE=store.ep)
        self.assertIn("ingest: status=CREATED key=https://example.org/news/2026/hello-bulletin",
                      out)
        self.assertIn("title='Hello, Bulletin'", out)
        self.assertIn("body='The first article sent from Python.'", out)
        # the article really is in the store
        sc = self.client(store.ep)
        rep = sc.get(key="https://example.org/news/2026/hello-bulletin")
        self.assertStatus(rep, harness.pb.OK, "get the example's article")

    def test_list_and_get_example(self):
        """The read-tier example: ingest, list with min_seq and cursors, get via the broker."""
        gen = self.generate_classes()
        ingest, query = self.start_read_tier()
        out = self.run_example(LIST_EXAMPLE, gen, BULLETIN_INGEST=ingest.ep,
                               BULLETIN_QUERY=query.ep)
        self.assertIn("total=5 (served by w1", out)
        self.assertIn("listed in order: yes", out)
        self.assertIn("get: id=", out)

    def test_search_example(self):
        """search.py: ingest, search with facets, Chinese text, a refused query."""
        gen = self.generate_classes()
        ingest, query = self.start_read_tier()
        out = self.run_example(SEARCH_EXAMPLE, gen, BULLETIN_INGEST=ingest.ep,
                               BULLETIN_QUERY=query.ep)
        self.assertIn("ingested 3 articles", out)
        self.assertIn("ferry: total=2", out)
        self.assertIn("served_by=w1", out)
        self.assertIn("1. ", out)
        self.assertIn("[ferry]", out)
        self.assertIn("Transport=1", out)
        self.assertIn("灯: total=1", out)
        self.assertIn("公园: total=1", out)
        self.assertIn("步行道: total=1", out)
        self.assertIn("«步行道»", out)
        self.assertIn("refused: INVALID_ARGUMENT position 6:", out)


if __name__ == "__main__":
    harness.main()
