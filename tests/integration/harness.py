"""Harness for Bulletin's integration tests: real processes on loopback.

Every test starts the services it needs on free ports with a fresh data
directory, talks to them over ZeroMQ with the classes generated from proto/,
and stops them. When a test fails, the stderr of every process it started is
printed, so the service's own log explains the failure.

Environment (set by ctest, see tests/CMakeLists.txt):
  BULLETIN_BIN         directory with bulletin-store, bulletin-ingest, bulletin
  BULLETIN_PYTHON      directory with bulletin_pb2.py and internal_pb2.py
  BULLETIN_SOURCE_DIR  the repository root
Run one file by hand:
  BULLETIN_BIN=build/bin BULLETIN_PYTHON=build/python BULLETIN_SOURCE_DIR=. \
      python3 tests/integration/write_path_test.py -v
"""

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

SOURCE_DIR = os.environ.get(
    "BULLETIN_SOURCE_DIR",
    os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN_DIR = os.environ.get("BULLETIN_BIN", os.path.join(SOURCE_DIR, "build", "bin"))
PY_DIR = os.environ.get("BULLETIN_PYTHON", os.path.join(SOURCE_DIR, "build", "python"))
sys.path.insert(0, PY_DIR)

try:
    import zmq
except ImportError:  # pragma: no cover - environment problem, say it clearly
    sys.stderr.write("integration tests need python3-zmq (apt-get install python3-zmq); "
                     "this interpreter is %s\n" % sys.executable)
    raise
try:
    import bulletin_pb2 as pb
    import internal_pb2 as ipb
except ImportError:  # pragma: no cover
    sys.stderr.write("cannot import bulletin_pb2/internal_pb2 from %s: build the target "
                     "bulletin_python_proto first (needs protoc and python3-protobuf)\n" % PY_DIR)
    raise

LOCAL = "127.0.0.1"
# Generous under AddressSanitizer and on a busy 2-core machine.
START_TIMEOUT = float(os.environ.get("BULLETIN_TEST_START_TIMEOUT", "15"))


_handed_out = set()


def _ephemeral_low():
    """The lowest port the kernel hands to outgoing connections and bind(0)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        return 32768


_PORT_LOW = 20000
_PORT_HIGH = _ephemeral_low()


def free_port():
    """A TCP port on the loopback that nobody listens on right now, and that
    this process has not handed out before: the kernel may return the same
    free port to two binds in a row, and a test that asks for several ports
    before starting anything would then give one port to two services. It is
    drawn at random below the kernel's ephemeral range: a port from bind(0)
    comes from that range, where any outgoing connection of a test running in
    parallel (a ZeroMQ client) may take it as its local port before the
    service binds it ("Address already in use" at start-up, seen in CI)."""
    while True:
        if _PORT_HIGH - _PORT_LOW >= 1000:
            port = random.randrange(_PORT_LOW, _PORT_HIGH)
        else:  # pragma: no cover - an unusual ip_local_port_range
            port = 0
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((LOCAL, port))
            except OSError:
                continue
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def endpoint(port):
    return "tcp://%s:%d" % (LOCAL, port)


def binary(name):
    path = os.path.join(BIN_DIR, name)
    if not os.access(path, os.X_OK):
        raise AssertionError("%s is not built (looked in %s)" % (name, BIN_DIR))
    return path


def wait_for(cond, timeout, interval=0.02, what="condition"):
    """Poll cond() until it is true; AssertionError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def is_sentence(msg):
    """A human message: not empty, a few words."""
    return isinstance(msg, str) and len(msg.strip()) >= 8 and " " in msg.strip()


# --------------------------------------------------------------------------
# processes


class Process:
    """One service process; stderr goes to a file shown when a test fails."""

    def __init__(self, name, args, workdir, env=None):
        self.name = name
        self.args = list(args)
        self.log_path = os.path.join(workdir, "%s.%d.log" % (name, id(self)))
        self.expect_dead = False
        self.env = dict(os.environ)
        self.env.setdefault("ASAN_OPTIONS", "abort_on_error=0")
        if env:
            self.env.update(env)
        self.proc = None
        self.start()

    def start(self):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log, env=self.env)
        self.expect_dead = False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        """SIGKILL and reap: the process has no chance to clean up."""
        self.expect_dead = True
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log.close()

    def stop(self, timeout=5.0):
        """SIGTERM, wait; SIGKILL after timeout. Returns (returncode, forced)."""
        if self.proc.poll() is not None:
            self._log.close()
            return self.proc.returncode, False
        self.proc.send_signal(signal.SIGTERM)
        forced = False
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            forced = True
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()
        return self.proc.returncode, forced

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


# --------------------------------------------------------------------------
# a small client


class Client:
    """A DEALER that speaks like REQ: [empty][Request] out, [empty][Reply] in.

    request() sets version 1 and a fresh request_id, waits for the Reply with
    that id (a stale reply of an earlier, timed-out request is skipped) and
    raises TimeoutError when none comes in time.
    """

    _next_id = int(time.time() * 1000) << 16
    _id_lock = threading.Lock()

    def __init__(self, ctx, ep, max_msg=None):
        self.ctx = ctx
        self.ep = ep
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if max_msg is not None:
            self.sock.setsockopt(zmq.MAXMSGSIZE, max_msg)
        self.sock.connect(ep)

    @classmethod
    def new_id(cls):
        with cls._id_lock:
            cls._next_id += 1
            return cls._next_id

    def close(self):
        if self.sock is not None:
            self.sock.close(0)
            self.sock = None

    def send_frames(self, frames):
        self.sock.send_multipart(frames, copy=True)

    def recv_frames(self, timeout):
        """The next message's frames, or None after timeout seconds."""
        if self.sock.poll(int(timeout * 1000), zmq.POLLIN):
            return self.sock.recv_multipart()
        return None

    def recv_reply(self, timeout=5.0, request_id=None):
        """The next Reply (with request_id if given); None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            frames = self.recv_frames(left)
            if frames is None:
                return None
            if len(frames) != 2 or frames[0] != b"":
                raise AssertionError("reply is not [empty][Reply]: %d frames %r"
                                     % (len(frames), [f[:40] for f in frames]))
            rep = pb.Reply()
            rep.ParseFromString(frames[1])
            if request_id is None or rep.request_id == request_id:
                return rep

    def request(self, req, timeout=5.0):
        """Send a Request (version and request_id filled in) and return the Reply."""
        if not req.version_major:
            req.version_major = 1
        req.request_id = self.new_id()
        self.send_frames([b"", req.SerializeToString()])
        rep = self.recv_reply(timeout, req.request_id)
        if rep is None:
            raise TimeoutError("no reply from %s within %.1f s" % (self.ep, timeout))
        return rep

    # convenience ------------------------------------------------------

    def health(self, timeout=5.0):
        req = pb.Request()
        req.health.SetInParent()
        return self.request(req, timeout)

    def stats(self, timeout=5.0):
        req = pb.Request()
        req.stats.SetInParent()
        rep = self.request(req, timeout)
        return rep, {m.name: m.value for m in rep.stats.metrics}

    def get(self, id=0, key="", timeout=5.0):
        req = pb.Request()
        if id:
            req.get.id = id
        if key:
            req.get.key = key
        if not id and not key:
            req.get.SetInParent()
        return self.request(req, timeout)

    def ingest(self, items, timeout=10.0, deadline_ms=0):
        """items: Article or RawDocument messages."""
        req = pb.Request()
        req.ingest.SetInParent()
        if deadline_ms:
            req.deadline_ms = deadline_ms
        for it in items:
            item = req.ingest.items.add()
            if isinstance(it, pb.RawDocument):
                item.raw.CopyFrom(it)
            else:
                item.article.CopyFrom(it)
        return self.request(req, timeout)

    def delete(self, id=0, key="", timeout=10.0):
        req = pb.Request()
        req.delete.SetInParent()
        if id:
            req.delete.id = id
        if key:
            req.delete.key = key
        return self.request(req, timeout)

    # store-internal ---------------------------------------------------

    def store_request(self, sreq, timeout=10.0):
        """Send an internal StoreRequest; returns (Reply, StoreReply or None)."""
        req = pb.Request()
        req.internal = sreq.SerializeToString()
        rep = self.request(req, timeout)
        srep = None
        if rep.WhichOneof("body") == "internal":
            srep = ipb.StoreReply()
            srep.ParseFromString(rep.internal)
        return rep, srep

    def write(self, ops, timeout=10.0):
        """ops: list of ("put", Article) or ("delete", id, key). Returns results."""
        sreq = ipb.StoreRequest()
        sreq.write.SetInParent()
        for op in ops:
            w = sreq.write.ops.add()
            if op[0] == "put":
                w.put.CopyFrom(op[1])
            else:
                if op[1]:
                    w.delete.id = op[1]
                if op[2]:
                    w.delete.key = op[2]
        rep, srep = self.store_request(sreq, timeout)
        if rep.status.code != pb.OK or srep is None or srep.WhichOneof("body") != "write":
            raise AssertionError("WriteBatch failed: status %s %r, body %s"
                                 % (pb.StatusCode.Name(rep.status.code), rep.status.message,
                                    rep.WhichOneof("body")))
        return list(srep.write.results)

    def sync(self, from_seq, max_changes=0, max_bytes=0, timeout=10.0):
        sreq = ipb.StoreRequest()
        sreq.sync.from_seq = from_seq
        sreq.sync.max_changes = max_changes
        sreq.sync.max_bytes = max_bytes
        rep, srep = self.store_request(sreq, timeout)
        if rep.status.code != pb.OK or srep is None or srep.WhichOneof("body") != "sync":
            raise AssertionError("Sync failed: status %s %r"
                                 % (pb.StatusCode.Name(rep.status.code), rep.status.message))
        return srep.sync

    def sync_all(self, from_seq, max_changes=0, max_bytes=0, limit=100000):
        """Follow Sync chunks until done; returns (changes, chunks)."""
        changes, chunks = [], []
        cur = from_seq
        while True:
            chunk = self.sync(cur, max_changes, max_bytes)
            chunks.append(chunk)
            changes.extend(chunk.changes)
            if chunk.done:
                return changes, chunks
            if not chunk.changes:
                raise AssertionError("Sync chunk from %d has no changes but done=false" % cur)
            cur = chunk.changes[-1].seq
            if len(chunks) > limit:
                raise AssertionError("Sync did not finish after %d chunks" % limit)


def article(key="", title="A title", body="A body.", site="example.org", category="news",
            **kw):
    a = pb.Article(key=key, title=title, body=body, site=site, category=category)
    for k, v in kw.items():
        if k == "tags":
            a.tags.extend(v)
        else:
            setattr(a, k, v)
    return a


def code_name(code):
    try:
        return pb.StatusCode.Name(code)
    except ValueError:
        return str(code)


def write_status_name(s):
    try:
        return pb.WriteStatus.Name(s)
    except ValueError:
        return str(s)


# --------------------------------------------------------------------------
# the base test case


class BulletinCase(unittest.TestCase):
    """Each test gets a temp dir, a zmq context, and helpers to start services.

    Services still running at the end are stopped with SIGTERM; one that
    does not exit 0 within a few seconds (crash, sanitizer report, hang)
    fails the test. On failure the logs of all processes are printed.
    """

    maxDiff = None

    def run(self, result=None):
        if result is None:
            result = self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        self.tmp = tempfile.mkdtemp(prefix="bulletin-it-")
        self.procs = []
        self.ctx = zmq.Context()
        self._clients = []
        try:
            return super().run(result)
        finally:
            failed = len(result.failures) + len(result.errors) > before
            for p in self.procs:
                if p.alive():
                    p.stop(timeout=2)
            if failed or os.environ.get("BULLETIN_TEST_LOGS"):
                for p in self.procs:
                    sys.stderr.write("\n----- %s: %s -----\n%s----- end of %s log -----\n"
                                     % (p.name, " ".join(p.args), p.log()[-20000:], p.name))
            for c in self._clients:
                c.close()
            self.ctx.destroy(linger=0)
            shutil.rmtree(self.tmp, ignore_errors=True)

    def tearDown(self):
        problems = []
        for p in self.procs:
            if p.expect_dead:
                continue
            rc, forced = p.stop()
            if forced:
                problems.append("%s did not exit within 5 s of SIGTERM" % p.name)
            elif rc != 0:
                problems.append("%s exited with %s on SIGTERM (expected 0)" % (p.name, rc))
            p.expect_dead = True
        if problems:
            self.fail("; ".join(problems))

    # helpers ----------------------------------------------------------

    def client(self, ep, **kw):
        c = Client(self.ctx, ep, **kw)
        self._clients.append(c)
        return c

    def spawn(self, name, args, env=None):
        p = Process(name, args, self.tmp, env)
        self.procs.append(p)
        return p

    def wait_healthy(self, proc, ep, timeout=START_TIMEOUT, ready=False):
        """Poll Health until the service answers OK (fail fast if it died).
        With ready, until its Health also says ok: an ingest answers Health
        at once but says ok only once the store answered its ping, and until
        its connection to the store is made it refuses writes (UNAVAILABLE,
        "not connected") — on a loaded machine the first request can come
        before that."""
        deadline = time.monotonic() + timeout
        c = Client(self.ctx, ep)
        try:
            while True:
                if not proc.alive():
                    raise AssertionError("%s exited with %s during start-up"
                                         % (proc.name, proc.proc.returncode))
                req = pb.Request(version_major=1, request_id=Client.new_id())
                req.health.SetInParent()
                c.send_frames([b"", req.SerializeToString()])
                rep = c.recv_reply(0.2, req.request_id)
                if rep is not None and rep.status.code == pb.OK:
                    if not ready or rep.health.ok:
                        return rep
                    time.sleep(0.02)
                if time.monotonic() > deadline:
                    raise AssertionError("%s did not answer Health%s on %s within %.0f s%s"
                                         % (proc.name, " ok" if ready else "", ep, timeout,
                                            " (%s)" % rep.health.detail if rep else ""))
        finally:
            c.close()

    def start_store(self, data=None, port=None, feed_port=None, extra=(), wait=True):
        """bulletin-store on free ports; returns a Service record."""
        data = data or tempfile.mkdtemp(prefix="store-", dir=self.tmp)
        port = port or free_port()
        feed_port = feed_port or free_port()
        svc = Service("store", endpoint(port), data=data, feed=endpoint(feed_port),
                      http="%s:%d" % (LOCAL, free_port()))
        # every process gets its own HTTP port (/healthz, /metrics): the defaults
        # would collide between tests running in parallel
        svc.args = [binary("bulletin-store"), "--data", data, "--bind", svc.ep,
                    "--feed", svc.feed, "--http", svc.http] + list(extra)
        svc.proc = self.spawn("bulletin-store", svc.args)
        if wait:
            self.wait_healthy(svc.proc, svc.ep)
        return svc

    def restart(self, svc, wait=True):
        """Start the same service again (same ports, same data)."""
        svc.proc = self.spawn(svc.proc.name, svc.args)
        if wait:
            self.wait_healthy(svc.proc, svc.ep, ready=getattr(svc, "ready", False))
        return svc

    def start_ingest(self, store_ep, port=None, deadline_ms=None, max_request=None,
                     extra=(), wait=True, store_up=True):
        """bulletin-ingest on free ports; with wait, returns once it answers
        Health and (store_up) once the store answered it: writes go through."""
        port = port or free_port()
        svc = Service("ingest", endpoint(port), http="%s:%d" % (LOCAL, free_port()),
                      ready=store_up)
        svc.args = [binary("bulletin-ingest"), "--bind", svc.ep, "--store", store_ep,
                    "--http", svc.http]
        if deadline_ms is not None:
            svc.args += ["--deadline-ms", str(deadline_ms)]
        if max_request is not None:
            svc.args += ["--max-request", str(max_request)]
        svc.args += list(extra)
        svc.proc = self.spawn("bulletin-ingest", svc.args)
        if wait:
            self.wait_healthy(svc.proc, svc.ep, ready=store_up)
        return svc

    def start_stack(self, **ingest_kw):
        store = self.start_store()
        ingest = self.start_ingest(store.ep, **ingest_kw)
        return store, ingest

    def run_cli(self, args, timeout=60, input=None):
        """Run the bulletin CLI; returns CompletedProcess (text)."""
        return subprocess.run([binary("bulletin")] + list(args), capture_output=True,
                              text=True, timeout=timeout, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)

    # assertions -------------------------------------------------------

    def assertStatus(self, rep, code, what=""):
        self.assertEqual(code_name(rep.status.code), code_name(code),
                         "%s: expected %s, got %s %r" % (what, code_name(code),
                                                         code_name(rep.status.code),
                                                         rep.status.message))
        if code != pb.OK:
            self.assertTrue(is_sentence(rep.status.message),
                            "%s: %s without a sentence: %r" % (what, code_name(code),
                                                               rep.status.message))

    def assertServes(self, svc, what=""):
        """The service still answers a normal request."""
        c = Client(self.ctx, svc.ep)
        try:
            rep = c.health(timeout=5)
        finally:
            c.close()
        self.assertEqual(rep.status.code, pb.OK, "%s: Health after %s" % (svc.name, what))
        self.assertTrue(svc.proc.alive(), "%s died after %s" % (svc.name, what))


class Service:
    def __init__(self, name, ep, **kw):
        self.name = name
        self.ep = ep
        self.proc = None
        self.args = []
        for k, v in kw.items():
            setattr(self, k, v)


def main():
    unittest.main(verbosity=2)
