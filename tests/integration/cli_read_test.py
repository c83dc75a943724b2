"""The read commands of the bulletin CLI against a real read tier.

Each test runs store + ingest + query broker + 2 workers on free ports (or
`bulletin up --workers 2`), then drives the `bulletin` command only:
ingest --wait, list (table, --json pages, --all, filters, --cursor, --total,
--oldest, --min-seq), get through the query tier, health/stats of the broker,
and the exit codes. Expected answers come from a model built here from
samples/articles.jsonl (and, for what ingest derives — raw documents, a
missing published_at — from the store, the system of record).
"""

import datetime
import json
import os
import signal
import stat
import subprocess
import time

import harness
from harness import BulletinCase, binary, endpoint, free_port, pb, wait_for

SAMPLES = os.path.join(harness.SOURCE_DIR, "samples")
JSONL = os.path.join(SAMPLES, "articles.jsonl")
RAW_DIR = os.path.join(SAMPLES, "raw")


def rfc3339_ms(text):
    """RFC 3339 or a plain date (midnight UTC), as the CLI reads them -> Unix ms."""
    if len(text) == 10:
        text += "T00:00:00Z"
    d = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(round(d.timestamp() * 1000))


def ms_text(ms):
    """Unix ms -> the CLI's JSON time: RFC 3339 UTC with milliseconds."""
    d = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


class ReadStack:
    """Endpoints and processes of one stack."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def globals(self):
        return ["--ingest", self.ingest, "--query", self.query, "--store", self.store]


class CliReadTest(BulletinCase):

    # -- stack ------------------------------------------------------------

    @staticmethod
    def http_off(name):
        """["--http", ""] when the service has an HTTP listener (its fixed
        default port would collide between tests running side by side)."""
        h = subprocess.run([binary(name), "--help"], capture_output=True, text=True, timeout=10)
        return ["--http", ""] if "--http" in h.stdout else []

    def start_read_stack(self, workers=2, broker_extra=()):
        store = self.start_store(extra=self.http_off("bulletin-store"))
        ingest = self.start_ingest(store.ep, extra=self.http_off("bulletin-ingest"))
        qport, wport = free_port(), free_port()
        broker = self.spawn("bulletin-query", [binary("bulletin-query"), "--bind", endpoint(qport),
                                               "--workers", endpoint(wport)]
                            + self.http_off("bulletin-query") + list(broker_extra))
        names = []
        for k in range(workers):
            name = "w%d" % (k + 1)
            names.append(name)
            self.spawn("bulletin-worker-%d" % (k + 1),
                       [binary("bulletin-worker"), "--broker", endpoint(wport), "--store",
                        store.ep, "--feed", store.feed, "--data",
                        os.path.join(self.tmp, "worker-%d" % (k + 1)), "--name", name]
                       + self.http_off("bulletin-worker"))
        qc = self.client(endpoint(qport))

        def registered():
            if not broker.alive():
                raise AssertionError("bulletin-query exited during start-up")
            try:
                rep, m = qc.stats(timeout=1)
            except TimeoutError:
                return False
            return m.get("workers", 0) >= workers

        wait_for(registered, harness.START_TIMEOUT, 0.05, "%d workers registered" % workers)
        return ReadStack(store=store.ep, ingest=ingest.ep, query=endpoint(qport),
                         store_client=self.client(store.ep), workers=names, broker=broker)

    def cli(self, st, args, input=None, timeout=60):
        return self.run_cli(st.globals() + list(args), input=input, timeout=timeout)

    def cli_ok(self, st, args, input=None):
        r = self.cli(st, args, input=input)
        self.assertEqual(r.returncode, 0, "bulletin %s: rc %d\nstdout: %s\nstderr: %s"
                         % (" ".join(args), r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
        return r

    def json_lines(self, text):
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    # -- the model --------------------------------------------------------

    def ingest_samples(self, st):
        """ingest --wait --json the samples; returns the model {id: record}."""
        r = self.cli_ok(st, ["ingest", "--wait", "--json", JSONL])
        lines = self.json_lines(r.stdout)
        results, tail = lines[:-1], lines[-1]
        with open(JSONL, encoding="utf-8") as f:
            samples = [json.loads(l) for l in f if l.strip()]
        self.assertEqual(len(results), len(samples))
        self.assertTrue(all(x["status"] == "created" for x in results), results)
        max_seq = max(x["seq"] for x in results)
        self.assertEqual(tail["max_seq"], max_seq)
        self.assertIs(tail["readable"], True)
        self.assertIn(tail["served_by"], st.workers)
        self.assertGreaterEqual(tail["applied_seq"], max_seq)

        raws = sorted(os.path.join(RAW_DIR, f) for f in os.listdir(RAW_DIR))
        r = self.cli_ok(st, ["ingest", "--wait", "--json", "--raw"] + raws)
        rlines = self.json_lines(r.stdout)
        self.assertEqual(len(rlines), len(raws) + 1)
        self.assertIs(rlines[-1]["readable"], True)

        model = {}
        for res, s in zip(results, samples):
            stored = st.store_client.get(id=res["id"]).get.article
            pub = s.get("published_at")
            if pub is None:
                pub = stored.published_at  # ingest used the ingest time
            elif isinstance(pub, str):
                pub = rfc3339_ms(pub)
            self.assertEqual(stored.published_at, pub, s["title"])
            model[res["id"]] = dict(id=res["id"], key=res["key"], site=s["site"],
                                    category=s["category"], title=s["title"],
                                    tags=list(s.get("tags", [])), published_at=pub)
        for res in rlines[:-1]:
            a = st.store_client.get(id=res["id"]).get.article
            model[res["id"]] = dict(id=a.id, key=a.key, site=a.site, category=a.category,
                                    title=a.title, tags=list(a.tags), published_at=a.published_at)
        return model, rlines[-1]["max_seq"]

    @staticmethod
    def expect(model, oldest=False, site=None, category=None, tag=None, since=None, until=None):
        rows = [m for m in model.values()
                if (site is None or m["site"] == site)
                and (category is None or m["category"] == category)
                and (tag is None or tag in m["tags"])
                and (since is None or m["published_at"] >= since)
                and (until is None or m["published_at"] < until)]
        rows.sort(key=lambda m: (m["published_at"], m["id"]), reverse=not oldest)
        return [m["id"] for m in rows]

    def list_ids(self, st, args):
        pages = self.json_lines(self.cli_ok(st, ["list", "--json", "--all"] + args).stdout)
        ids = [it["id"] for p in pages for it in p["items"]]
        self.assertEqual(len(ids), len(set(ids)), "an article listed twice: %s" % args)
        self.assertIsNone(pages[-1]["next_cursor"])
        return ids, pages

    # -- tests ------------------------------------------------------------

    def test_list_all_filters_and_get_match_the_model(self):
        st = self.start_read_stack()
        model, _ = self.ingest_samples(st)
        self.assertEqual(len(model), 30)

        ids, pages = self.list_ids(st, [])
        self.assertEqual(ids, self.expect(model), "list --all: every article once, newest first")
        for p in pages:
            self.assertIn(p["served_by"], st.workers)
            for it in p["items"]:
                m = model[it["id"]]
                self.assertEqual((it["key"], it["site"], it["category"], it["title"]),
                                 (m["key"], m["site"], m["category"], m["title"]))
                self.assertEqual(it["published_at"], ms_text(m["published_at"]))
                self.assertEqual(sorted(it["tags"]), sorted(m["tags"]))

        # small pages: the cursor is followed, nothing twice, nothing skipped
        ids, pages = self.list_ids(st, ["--limit", "7"])
        self.assertEqual(ids, self.expect(model))
        self.assertEqual([len(p["items"]) for p in pages], [7, 7, 7, 7, 2])
        ids, _ = self.list_ids(st, ["--limit", "4", "--oldest"])
        self.assertEqual(ids, self.expect(model, oldest=True))

        for site in sorted({m["site"] for m in model.values()}):
            ids, _ = self.list_ids(st, ["--site", site])
            self.assertEqual(ids, self.expect(model, site=site), "--site %s" % site)
        for cat in ["Programmer jokes", "Dad jokes", "Announcements", "社会", "Local news"]:
            ids, _ = self.list_ids(st, ["--category", cat, "--limit", "1"])
            self.assertEqual(ids, self.expect(model, category=cat), "--category %s" % cat)
        for tag in ["programming", "dad joke", "environment", "科技", "science"]:
            ids, _ = self.list_ids(st, ["--tag", tag])
            self.assertEqual(ids, self.expect(model, tag=tag), "--tag %s" % tag)
        ids, _ = self.list_ids(st, ["--site", "Joke Collection Website", "--category",
                                    "Programmer jokes", "--tag", "sql"])
        self.assertEqual(ids, self.expect(model, site="Joke Collection Website",
                                          category="Programmer jokes", tag="sql"))
        self.assertEqual(len(ids), 1)
        since, until = rfc3339_ms("2025-01-01"), rfc3339_ms("2025-10-08T13:00:00Z")
        ids, _ = self.list_ids(st, ["--since", "2025-01-01", "--until", "2025-10-08T13:00:00Z"])
        self.assertEqual(ids, self.expect(model, since=since, until=until))
        titles = [model[i]["title"] for i in ids]
        self.assertNotIn("Robotics society demo day", titles)  # until is exclusive
        ids, _ = self.list_ids(st, ["--since", "2025-10-08T15:00:00+02:00", "--oldest"])
        self.assertEqual(ids, self.expect(model, oldest=True, since=until))
        self.assertEqual(model[ids[0]]["title"], "Robotics society demo day")  # since inclusive
        ids, _ = self.list_ids(st, ["--site", "no such site"])
        self.assertEqual(ids, [])

        # --total counts every match, once, on the first page
        pages = self.json_lines(self.cli_ok(st, ["list", "--json", "--total", "--limit", "3",
                                                 "--tag", "programming"]).stdout)
        self.assertEqual(len(pages), 1)
        self.assertEqual(pages[0]["total"], len(self.expect(model, tag="programming")))
        self.assertNotIn("total", self.json_lines(
            self.cli_ok(st, ["list", "--json", "--limit", "3"]).stdout)[0])

        # get goes to the query tier and returns the whole article
        for i in list(model)[::3]:
            r = self.cli_ok(st, ["get", "--json", str(i)])
            a = json.loads(r.stdout)
            m = model[i]
            self.assertEqual((a["id"], a["key"], a["site"], a["title"]),
                             (i, m["key"], m["site"], m["title"]))
            self.assertTrue(a["body"])
        some = list(model)[5]
        a = json.loads(self.cli_ok(st, ["get", "--json", "--key", model[some]["key"]]).stdout)
        self.assertEqual(a["id"], some)
        r = self.cli_ok(st, ["get", str(some)])
        self.assertIn("served_by=w", r.stdout)  # the human form says which worker
        r = self.cli_ok(st, ["get", "--store", str(some)])
        self.assertNotIn("served_by=w", r.stdout)
        several = list(model)[:3]
        r = self.cli_ok(st, ["get", "--json"] + [str(i) for i in several])
        self.assertEqual([json.loads(l)["id"] for l in r.stdout.splitlines()], several)

    def test_table_cursor_continues_where_the_page_ended(self):
        st = self.start_read_stack()
        model, _ = self.ingest_samples(st)
        want = self.expect(model)
        r = self.cli_ok(st, ["list", "--limit", "4", "--total"])
        lines = r.stdout.splitlines()
        self.assertRegex(lines[0], r"^\s+ID\s+DATE \(UTC\)\s+SITE\s+CATEGORY\s+TITLE$")
        rows = lines[1:5]
        self.assertEqual([int(l.split()[0]) for l in rows], want[:4])
        self.assertIn("30 articles match", lines)
        self.assertTrue(lines[-1].startswith("more: --cursor "), lines[-1])
        cursor = lines[-1].split()[-1]
        page = self.json_lines(self.cli_ok(st, ["list", "--json", "--limit", "4",
                                                "--cursor", cursor]).stdout)[0]
        self.assertEqual([it["id"] for it in page["items"]], want[4:8])
        # the JSON cursor is the same text and continues the same way
        page2 = self.json_lines(self.cli_ok(st, ["list", "--json", "--limit", "4", "--cursor",
                                                 page["next_cursor"]]).stdout)[0]
        self.assertEqual([it["id"] for it in page2["items"]], want[8:12])
        # --all from a cursor: the rest, and no cursor line at the end
        r = self.cli_ok(st, ["list", "--all", "--limit", "5", "--cursor", cursor])
        lines = r.stdout.splitlines()
        self.assertEqual([int(l.split()[0]) for l in lines[1:]], want[4:])
        r = self.cli_ok(st, ["list", "--site", "no such site"])
        self.assertEqual(r.stdout.strip(), "no articles")

    def test_min_seq_reads_your_write_on_every_worker(self):
        # the broker's own deadline (2 s) ends the unreachable min_seq read
        # below long before the CLI stops waiting (10 s); if the CLI's --timeout
        # set it, only the client's margin (a tenth, at least 100 ms) would be
        # left for the answer to come back, which a loaded machine can eat
        st = self.start_read_stack(broker_extra=["--deadline-ms", "2000"])
        self.ingest_samples(st)
        served = set()
        for n in range(6):
            # no published_at: ingest uses the ingest time, so (ties by id) it is
            # the newest article of all
            art = {"site": "Read Your Writes", "category": "Tests", "title": "fresh %d" % n,
                   "body": "written just now"}
            r = self.cli_ok(st, ["ingest", "--json", "-"], input=json.dumps(art) + "\n")
            res = self.json_lines(r.stdout)[0]
            self.assertEqual(res["status"], "created")
            seq = res["seq"]
            # at once, no waiting: the read must see it
            page = self.json_lines(self.cli_ok(st, ["list", "--json", "--limit", "1",
                                                    "--min-seq", str(seq)]).stdout)[0]
            self.assertEqual(page["items"][0]["id"], res["id"], "newest is the new one")
            self.assertGreaterEqual(page["applied_seq"], seq)
            served.add(page["served_by"])
            a = json.loads(self.cli_ok(st, ["get", "--json", "--min-seq", str(seq),
                                            str(res["id"])]).stdout)
            self.assertEqual(a["title"], "fresh %d" % n)
        # Every worker has them: keep reading with min_seq = the last seq until
        # each worker has answered (the broker may prefer the first worker to
        # report the seq; the other one catches up from the feed).
        fresh = ["fresh %d" % n for n in range(6)]
        answers = {}

        def every_worker_answered():
            page = self.json_lines(self.cli_ok(st, ["list", "--json", "--limit", "6",
                                                    "--min-seq", str(seq)]).stdout)[0]
            answers[page["served_by"]] = [it["title"] for it in page["items"]]
            return set(answers) == set(st.workers)

        wait_for(every_worker_answered, 10, 0.05, "a min_seq read served by every worker "
                 "(answers so far: %s)" % answers)
        for w, titles in answers.items():
            self.assertEqual(titles, fresh[::-1], "worker %s" % w)
        # a seq nobody has: DEADLINE_EXCEEDED at the broker's deadline, exit 2
        # (the answer came before the CLI's 10 s timeout, else it would say
        # "did not answer")
        t0 = time.monotonic()
        r = self.cli(st, ["--timeout", "10000", "--retries", "0", "list", "--min-seq",
                          "999999"])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("DEADLINE_EXCEEDED", r.stderr)
        self.assertIn("no worker reached seq 999999", r.stderr)
        self.assertGreaterEqual(time.monotonic() - t0, 1.9)  # not before the deadline
        # --wait when nothing was written: nothing to wait for
        r = self.cli(st, ["ingest", "--wait", "--json", "-"], input="{\"titel\": 1}\n")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(self.json_lines(r.stdout)[-1]["max_seq"], 0)

    def test_exit_codes_and_messages(self):
        st = self.start_read_stack()
        self.ingest_samples(st)
        cases = [
            (["get", "987654"], 1, "no article"),
            (["get", "--key", "no-such-key"], 1, "no-such-key"),
            (["get", "abc"], 2, "not an article id"),
            (["get", "--min-seq", "-3", "1"], 2, "--min-seq"),
            (["list", "--limit", "0"], 2, "--limit"),
            (["list", "--limit", "1001"], 2, "--limit"),
            (["list", "--limit", "-1"], 2, "--limit"),
            (["search", "x", "--offset", "-1"], 2, "--offset"),
            (["search", "x", "--limit", "-1"], 2, "--limit"),
            (["list", "--cursor", "not a cursor!"], 2, "--cursor"),
            (["list", "--cursor", "AAAAAAAA"], 2, "INVALID_ARGUMENT"),
            (["list", "--since", "yesterday"], 2, "--since"),
            (["list", "--until", "2024-02-30"], 2, "--until"),
            (["list", "--since", "2025-01-01", "--until", "2024-01-01"], 2, "before"),
            (["list", "--min-seq", "x"], 2, "--min-seq"),
            (["list", "--colour"], 2, "unknown option"),
            (["list", "extra"], 2, "unexpected argument"),
            (["ingest", "--wait-timeout", "0", JSONL], 2, "--wait-timeout"),
            # an empty endpoint is an error, not "use the default endpoint"
            (["--query", "", "list"], 2, "--query ''"),
            (["--store=", "health", "--service", "store"], 2, "--store ''"),
            # "" + "/store" was a store in the root directory
            (["up", "--data", ""], 2, "--data ''"),
            (["up", "--workers-bind="], 2, "--workers-bind ''"),
        ]
        for args, rc, needle in cases:
            r = self.cli(st, args)
            self.assertEqual(r.returncode, rc, "%s: %s" % (args, r.stderr))
            self.assertIn(needle, r.stderr, args)
        # a get of several ids: found ones printed, exit 1 for the missing one
        r = self.cli(st, ["get", "--json", "1", "987654", "2"])
        self.assertEqual(r.returncode, 1)
        self.assertEqual([json.loads(l)["id"] for l in r.stdout.splitlines()], [1, 2])
        # health and stats of the broker
        r = self.cli_ok(st, ["health", "--service", "query"])
        self.assertIn("query healthy", r.stdout)
        r = self.cli_ok(st, ["health"])
        self.assertEqual(len(r.stdout.splitlines()), 3)
        s = json.loads(self.cli_ok(st, ["stats", "--service", "query", "--json"]).stdout)
        self.assertEqual(s["metrics"]["workers"], 2)
        # --help of the new commands
        for cmd in ["list", "get", "ingest", "up"]:
            r = self.run_cli([cmd, "--help"])
            self.assertEqual(r.returncode, 0)
            self.assertIn("min-seq" if cmd in ("list", "get") else "--", r.stdout)

    def test_up_runs_broker_and_workers(self):
        ports = {n: free_port() for n in ("ingest", "query", "store", "feed", "workers")}
        data = os.path.join(self.tmp, "data")
        args = [binary("bulletin"), "up", "--data", data, "--workers", "2", "--load", SAMPLES]
        for n, p in ports.items():
            args += ["--%s-bind" % n, endpoint(p)]
        up = self.spawn("bulletin-up", args)
        wait_for(lambda: "Bulletin is up." in up.log() or not up.alive(), 60, 0.1,
                 "bulletin up to start")
        self.assertTrue(up.alive(), up.log())
        self.assertIn("readable through the query tier", up.log())
        st = ReadStack(ingest=endpoint(ports["ingest"]), query=endpoint(ports["query"]),
                       store=endpoint(ports["store"]))
        s = json.loads(self.cli_ok(st, ["stats", "--service", "query", "--json"]).stdout)
        self.assertEqual(s["metrics"]["workers"], 2)
        self.cli_ok(st, ["health"])
        pages = self.json_lines(self.cli_ok(st, ["list", "--json", "--all"]).stdout)
        self.assertEqual(sum(len(p["items"]) for p in pages), 30)
        self.assertEqual({p["served_by"] for p in pages} <= {"worker-1", "worker-2"}, True)
        self.assertTrue(os.path.isdir(os.path.join(data, "worker-1")))
        self.assertTrue(os.path.isdir(os.path.join(data, "worker-2")))
        # the local workers reach the broker over a Unix socket in the data directory
        sock = os.path.join(data, "query-workers.sock")
        self.assertTrue(stat.S_ISSOCK(os.stat(sock).st_mode), sock)
        workers = self.child_pids(up.proc.pid, "bulletin-worker")
        self.assertEqual(len(workers), 2)
        for pid in workers:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
            self.assertEqual(argv[argv.index(b"--broker") + 1].decode(), "ipc://" + sock)
        up.proc.send_signal(signal.SIGINT)
        self.assertEqual(up.proc.wait(timeout=30), 0, up.log())
        up.stop()  # already exited: closes its log
        self.assertNotIn("did not stop", up.log())
        # everything it started is gone: the ports are free again
        r = self.cli(st, ["--timeout", "300", "--retries", "0", "health", "--service", "query"])
        self.assertEqual(r.returncode, 1)
        up.expect_dead = True

    @staticmethod
    def child_pids(ppid, name):
        pids = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
            except OSError:
                continue
            comm = st[st.index("(") + 1:st.rindex(")")]
            if int(st.rsplit(")", 1)[1].split()[1]) == ppid and name.startswith(comm):
                pids.append(int(d))
        return pids

    def test_no_command(self):
        # one line on stderr naming the commands, nothing on stdout, exit 2
        for args in ([], ["--timeout", "300"], ["--query=tcp://127.0.0.1:1"]):
            r = self.run_cli(args)
            self.assertEqual(r.returncode, 2, args)
            self.assertEqual(r.stdout, "", args)
            self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
            self.assertIn("no COMMAND given", r.stderr)
            self.assertIn("search", r.stderr)
        # a last global option without its value: that is the error
        r = self.run_cli(["--timeout"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("--timeout", r.stderr)

    def test_up_refuses_bad_worker_count(self):
        r = self.run_cli(["up", "--workers", "33", "--data", os.path.join(self.tmp, "d")])
        self.assertEqual(r.returncode, 2)
        self.assertIn("--workers", r.stderr)


if __name__ == "__main__":
    harness.main()
