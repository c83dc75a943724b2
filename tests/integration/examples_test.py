"""The worked example of docs/protocol.md runs, exactly as the document shows it.

Follows the document's steps: generate the classes with protoc --python_out,
start ingest + store, run examples/python/ingest_and_get.py against them. The
document must contain the example file verbatim, so the two cannot drift.
"""

import os
import shutil
import subprocess
import sys

import harness

EXAMPLE = os.path.join(harness.SOURCE_DIR, "examples", "python", "ingest_and_get.py")
LIST_EXAMPLE = os.path.join(harness.SOURCE_DIR, "examples", "python", "list_and_get.py")
DOC = os.path.join(harness.SOURCE_DIR, "docs", "protocol.md")


class ExamplesTest(harness.BulletinCase):

    def test_document_contains_example(self):
        with open(EXAMPLE, encoding="utf-8") as f:
            code = f.read()
        with open(DOC, encoding="utf-8") as f:
            doc = f.read()
        self.assertIn(code.strip(), doc, "docs/protocol.md shows %s verbatim" % EXAMPLE)

    def test_ingest_and_get_example(self):
        protoc = shutil.which("protoc")
        self.assertIsNotNone(protoc, "protoc is installed (protobuf-compiler)")
        gen = os.path.join(self.tmp, "gen")
        os.mkdir(gen)
        subprocess.run([protoc, "--python_out=" + gen, "-I",
                        os.path.join(harness.SOURCE_DIR, "proto"),
                        os.path.join(harness.SOURCE_DIR, "proto", "bulletin.proto")],
                       check=True)
        store, ingest = self.start_stack()
        env = dict(os.environ, PYTHONPATH=gen, BULLETIN_INGEST=ingest.ep,
                   BULLETIN_STORE=store.ep)
        p = subprocess.run([sys.executable, EXAMPLE], env=env, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, "example failed:\n%s\n%s" % (p.stdout, p.stderr))
        self.assertIn("ingest: status=CREATED key=https://example.org/news/2026/hello-bulletin",
                      p.stdout)
        self.assertIn("title='Hello, Bulletin'", p.stdout)
        self.assertIn("body='The first article sent from Python.'", p.stdout)
        # the article really is in the store
        sc = self.client(store.ep)
        rep = sc.get(key="https://example.org/news/2026/hello-bulletin")
        self.assertStatus(rep, harness.pb.OK, "get the example's article")


    def test_list_and_get_example(self):
        """The read-tier example: ingest, list with min_seq and cursors, get via the broker."""
        protoc = shutil.which("protoc")
        self.assertIsNotNone(protoc, "protoc is installed (protobuf-compiler)")
        gen = os.path.join(self.tmp, "gen")
        os.makedirs(gen, exist_ok=True)
        subprocess.run([protoc, "--python_out=" + gen, "-I",
                        os.path.join(harness.SOURCE_DIR, "proto"),
                        os.path.join(harness.SOURCE_DIR, "proto", "bulletin.proto")],
                       check=True)
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
        env = dict(os.environ, PYTHONPATH=gen, BULLETIN_INGEST=ingest.ep,
                   BULLETIN_QUERY=query.ep)
        p = subprocess.run([sys.executable, LIST_EXAMPLE], env=env, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, "example failed:\n%s\n%s" % (p.stdout, p.stderr))
        self.assertIn("total=5 (served by w1", p.stdout)
        self.assertIn("listed in order: yes", p.stdout)
        self.assertIn("get: id=", p.stdout)


if __name__ == "__main__":
    harness.main()
