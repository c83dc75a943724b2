"""examples/python/search.py runs against a real read tier (store, ingest,
query broker, one worker) with classes generated as its docstring says, and
prints what it should."""

import os
import shutil
import subprocess
import sys

import harness

EXAMPLE = os.path.join(harness.SOURCE_DIR, "examples", "python", "search.py")


class SearchExampleTest(harness.BulletinCase):

    def test_search_example(self):
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
        self.wait_healthy(query.proc, query.ep)
        env = dict(os.environ, PYTHONPATH=gen, BULLETIN_INGEST=ingest.ep,
                   BULLETIN_QUERY=query.ep)
        p = subprocess.run([sys.executable, EXAMPLE], env=env, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, "example failed:\n%s\n%s" % (p.stdout, p.stderr))
        out = p.stdout
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
