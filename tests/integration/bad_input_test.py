"""Bad input never crashes, hangs or silences a service.

Every malformed request gets a clear answer (the right status code and a
sentence), and afterwards both services still serve a normal request.
Item-level problems reject only that item; envelope-level problems are
checked against both bulletin-ingest and bulletin-store.
"""

import time

import harness
from harness import pb, ipb, article, zmq

MAX_REQUEST = 4 * 1024 * 1024   # ingest --max-request in this test
STORE_MAX_MSG = 4 * 1024 * 1024  # store --max-msg in this test
PLACEHOLDER = "QQQQBADQQQQ"


def good(key):
    return article(key=key, title="A good article", body="Nothing wrong here.")


def ingest_bytes(items, request_id, transform=None):
    req = pb.Request(version_major=1, request_id=request_id)
    req.ingest.SetInParent()
    for it in items:
        item = req.ingest.items.add()
        if isinstance(it, pb.RawDocument):
            item.raw.CopyFrom(it)
        else:
            item.article.CopyFrom(it)
    data = req.SerializeToString()
    if transform:
        data = transform(data)
    return data


def bad_utf8(data):
    """Replace the placeholder with invalid UTF-8 of the same length."""
    assert PLACEHOLDER.encode() in data
    return data.replace(PLACEHOLDER.encode(), b"QQQ\xff\xfeBAD\xc3QQ")


class BadInputTest(harness.BulletinCase):

    def setUp(self):
        self.store = self.start_store(extra=["--max-msg", str(STORE_MAX_MSG)])
        self.ingest = self.start_ingest(self.store.ep, max_request=MAX_REQUEST)
        self.ic = self.client(self.ingest.ep)
        self.sc = self.client(self.store.ep)
        self.n = 0

    def key(self):
        self.n += 1
        return "bad-input-%d" % self.n

    def both_serve(self, what):
        self.assertServes(self.store, what)
        self.assertServes(self.ingest, what)
        # and a real write goes through end to end
        rep = self.ic.ingest([good(self.key())])
        self.assertStatus(rep, pb.OK, "normal ingest after " + what)
        self.assertEqual(harness.write_status_name(rep.ingest.results[0].status), "CREATED",
                         "normal ingest after " + what)

    def send_raw(self, client, frames, timeout=5.0):
        client.send_frames(frames)
        rep = client.recv_reply(timeout)
        self.assertIsNotNone(rep, "no reply from %s to %s" % (client.ep, frames[:1]))
        return rep

    # item level (ingest) --------------------------------------------------

    def check_rejected(self, bad_item, field, transform=None, what=None):
        """[good, bad, good] -> CREATED, REJECTED naming `field`, CREATED."""
        what = what or field
        items = [good(self.key()), bad_item, good(self.key())]
        rid = harness.Client.new_id()
        rep = self.send_raw(self.ic, [b"", ingest_bytes(items, rid, transform)], timeout=15)
        self.assertEqual(rep.request_id, rid)
        self.assertStatus(rep, pb.OK, what)
        res = rep.ingest.results
        self.assertEqual(len(res), 3, what)
        self.assertEqual([harness.write_status_name(r.status) for r in res],
                         ["CREATED", "REJECTED", "CREATED"], "%s: %r" % (what, res))
        self.assertTrue(harness.is_sentence(res[1].error), "%s: error %r" % (what, res[1].error))
        self.assertIn(field, res[1].error.lower(), "%s: the error names the field" % what)
        self.assertEqual(res[1].id, 0, "nothing written for a rejected item")
        self.both_serve(what)
        return res[1]

    def check_accepted(self, item, what):
        rep = self.ic.ingest([item], timeout=15)
        self.assertStatus(rep, pb.OK, what)
        self.assertEqual(harness.write_status_name(rep.ingest.results[0].status), "CREATED",
                         "%s: %r" % (what, rep.ingest.results[0]))

    def test_invalid_utf8_title(self):
        self.check_rejected(article(key=self.key(), title=PLACEHOLDER, body="b"), "title",
                            transform=bad_utf8)

    def test_invalid_utf8_body_and_raw(self):
        self.check_rejected(article(key=self.key(), title="t", body="x " + PLACEHOLDER), "body",
                            transform=bad_utf8)
        self.check_rejected(pb.RawDocument(text="S - C - " + PLACEHOLDER + "\n\nT\n\nbody"),
                            "text", transform=bad_utf8, what="raw document text")

    def test_nul_in_body(self):
        self.check_rejected(article(key=self.key(), title="t", body="before\x00after"), "body")

    def test_nul_in_title(self):
        self.check_rejected(article(key=self.key(), title="ti\x00tle", body="b"), "title")

    def test_title_size(self):
        self.check_accepted(article(key=self.key(), title="x" * 1000, body="b"),
                            "a 1000-byte title")
        self.check_rejected(article(key=self.key(), title="x" * 1001, body="b"), "title")
        self.check_rejected(article(key=self.key(), title=" \t\n ", body="b"), "title",
                            what="blank title")

    def test_body_size(self):
        self.check_accepted(article(key=self.key(), title="big", body="y" * (1 << 20)),
                            "a 1 MiB body")
        self.check_rejected(article(key=self.key(), title="too big", body="y" * ((1 << 20) + 1)),
                            "body")

    def test_tags(self):
        self.check_accepted(article(key=self.key(), title="t", body="b",
                                    tags=["t%d" % i for i in range(32)]), "32 tags")
        self.check_rejected(article(key=self.key(), title="t", body="b",
                                    tags=["t%d" % i for i in range(33)]), "tag",
                            what="33 tags")
        self.check_rejected(article(key=self.key(), title="t", body="b", tags=["z" * 65]),
                            "tag", what="a 65-byte tag")

    def test_published_at_range(self):
        self.check_rejected(article(key=self.key(), title="t", body="b", published_at=1000),
                            "published_at", what="a date in 1970")
        future = int(time.time() * 1000) + 3 * 86400 * 1000
        self.check_rejected(article(key=self.key(), title="t", body="b", published_at=future),
                            "published_at", what="a date three days ahead")

    def test_empty_and_oversized_batches(self):
        req = pb.Request()
        req.ingest.SetInParent()
        rep = self.ic.request(req)
        self.assertStatus(rep, pb.INVALID_ARGUMENT, "IngestRequest with no items")
        req = pb.Request()
        for i in range(10001):
            req.ingest.items.add().article.CopyFrom(pb.Article(key="k%d" % i, title="t", body="b"))
        rep = self.ic.request(req, timeout=15)
        self.assertStatus(rep, pb.INVALID_ARGUMENT, "10001 items")
        self.both_serve("bad batches")

    def test_unknown_field_in_article(self):
        a = article(key=self.key(), title="Unknown field inside", body="b")
        extra = bytes([(99 << 3 | 0) & 0x7F | 0x80, (99 << 3) >> 7, 1])  # field 99 = 1
        data = a.SerializeToString() + extra
        a2 = pb.Article()
        a2.ParseFromString(data)  # python keeps it as an unknown field
        self.check_accepted(a2, "an Article with an unknown field")

    def test_wrong_service(self):
        rep = self.ic.get(id=1)
        self.assertStatus(rep, pb.UNIMPLEMENTED, "Get sent to ingest")
        req = pb.Request()
        req.ingest.items.add().article.CopyFrom(good(self.key()))
        rep = self.sc.request(req)
        self.assertStatus(rep, pb.UNIMPLEMENTED, "Ingest sent to the store")
        self.both_serve("requests for another service")

    # envelope level (both services) -----------------------------------------

    def for_both(self):
        return (("ingest", self.ic), ("store", self.sc))

    def test_garbage_bytes(self):
        for name, c in self.for_both():
            with self.subTest(service=name):
                rep = self.send_raw(c, [b"", b"\xff\xfe\xfd this is not a protobuf \x00\x01"])
                self.assertStatus(rep, pb.INVALID_ARGUMENT, name + ": garbage")
        self.both_serve("garbage bytes")

    def test_truncated_protobuf(self):
        data = ingest_bytes([good("trunc-%d" % i) for i in range(3)], 12345)
        for name, c in self.for_both():
            for cut in (len(data) // 2, len(data) - 1):
                with self.subTest(service=name, cut=cut):
                    rep = self.send_raw(c, [b"", data[:cut]])
                    self.assertStatus(rep, pb.INVALID_ARGUMENT, "%s: truncated at %d" % (name, cut))
        self.both_serve("truncated protobuf")
        self.assertStatus(self.sc.get(key="trunc-0"), pb.NOT_FOUND, "nothing was written")

    def test_empty_frame(self):
        for name, c in self.for_both():
            with self.subTest(service=name):
                rep = self.send_raw(c, [b"", b""])
                self.assertStatus(rep, pb.INVALID_ARGUMENT, name + ": empty body frame")
        self.both_serve("an empty frame")

    def test_multi_frame_message(self):
        req = pb.Request(version_major=1, request_id=777)
        req.health.SetInParent()
        data = req.SerializeToString()
        for name, c in self.for_both():
            with self.subTest(service=name):
                rep = self.send_raw(c, [b"", data, data])
                self.assertStatus(rep, pb.INVALID_ARGUMENT, name + ": two body frames")
                rep = self.send_raw(c, [b"", data, b"", data, b"x"])
                self.assertStatus(rep, pb.INVALID_ARGUMENT, name + ": five frames")
        self.both_serve("multi-frame messages")

    def test_request_without_body(self):
        for name, c in self.for_both():
            with self.subTest(service=name):
                rid = harness.Client.new_id()
                rep = self.send_raw(c, [b"", pb.Request(version_major=1, request_id=rid)
                                        .SerializeToString()])
                self.assertStatus(rep, pb.INVALID_ARGUMENT, name + ": no body")
                self.assertEqual(rep.request_id, rid, "the request_id is echoed")
        self.both_serve("a request without body")

    def test_unknown_field_number(self):
        req = pb.Request(version_major=1, request_id=4242)
        req.health.SetInParent()
        data = req.SerializeToString() + bytes([0x90, 0x03, 0x01])  # field 50, varint 1
        for name, c in self.for_both():
            with self.subTest(service=name):
                rep = self.send_raw(c, [b"", data])
                self.assertStatus(rep, pb.OK, name + ": unknown field is ignored")
                self.assertEqual(rep.request_id, 4242)
                self.assertEqual(rep.WhichOneof("body"), "health")
        self.both_serve("an unknown field")

    def test_versions(self):
        for name, c in self.for_both():
            with self.subTest(service=name):
                req = pb.Request(version_major=1, version_minor=9)
                req.health.SetInParent()
                rep = c.request(req)
                self.assertStatus(rep, pb.OK, name + ": newer minor version is accepted")
                req = pb.Request(version_major=0)
                req.health.SetInParent()
                rep = c.request(req)
                self.assertStatus(rep, pb.OK, name + ": major 0 is read as 1")
                req = pb.Request(version_major=2)
                req.health.SetInParent()
                rep = c.request(req)
                self.assertStatus(rep, pb.FAILED_PRECONDITION, name + ": newer major version")
                self.assertEqual(rep.request_id, req.request_id)
        self.both_serve("version checks")

    def test_req_socket_client(self):
        """A plain REQ socket works (REQ writes the empty delimiter itself)."""
        for name, c in self.for_both():
            with self.subTest(service=name):
                s = self.ctx.socket(zmq.REQ)
                s.setsockopt(zmq.LINGER, 0)
                s.connect(c.ep)
                req = pb.Request(version_major=1, request_id=99)
                req.health.SetInParent()
                s.send(req.SerializeToString())
                self.assertTrue(s.poll(5000), name + ": REQ got no reply")
                rep = pb.Reply()
                rep.ParseFromString(s.recv())
                s.close(0)
                self.assertEqual(rep.request_id, 99)
                self.assertStatus(rep, pb.OK, name + ": health over REQ")

    def test_bad_internal_payload(self):
        req = pb.Request(internal=b"\xff\xfe not a StoreRequest")
        rep = self.sc.request(req)
        self.assertStatus(rep, pb.INVALID_ARGUMENT, "garbage StoreRequest")
        rep, _ = self.sc.store_request(ipb.StoreRequest())
        self.assertIn(harness.code_name(rep.status.code), ("INVALID_ARGUMENT", "UNIMPLEMENTED"),
                      "a StoreRequest with no body")
        self.assertTrue(harness.is_sentence(rep.status.message), rep.status.message)
        # defensive checks in the store: a put without a key is rejected, not written
        res = self.sc.write([("put", pb.Article(title="no key", body="b")),
                             ("put", good("store-direct-ok"))])
        self.assertEqual(harness.write_status_name(res[0].status), "REJECTED", res[0])
        self.assertTrue(harness.is_sentence(res[0].error), res[0].error)
        self.assertEqual(harness.write_status_name(res[1].status), "CREATED", res[1])
        self.both_serve("bad internal payloads")

    # over the size limit: refused at the socket ---------------------------

    def check_dropped(self, svc, size):
        big = harness.Client(self.ctx, svc.ep)
        other = self.client(svc.ep)
        try:
            self.assertStatus(big.health(), pb.OK, "before")
            req = pb.Request(version_major=1, request_id=31337)
            req.ingest.items.add().article.CopyFrom(
                article(key="huge", title="huge", body="z" * size))
            t0 = time.monotonic()
            big.send_frames([b"", req.SerializeToString()])
            # while the big one is refused, others are served
            self.assertStatus(other.health(), pb.OK, "another client during the refusal")
            rep = big.recv_reply(timeout=max(0.0, 1.5 - (time.monotonic() - t0)))
            self.assertIsNone(rep, "%s answered a message over its size limit: %s %r"
                              % (svc.name, rep and harness.code_name(rep.status.code),
                                 rep and rep.status.message))
        finally:
            big.close()
        self.assertServes(svc, "an oversized message")

    def test_message_over_max_request_is_dropped(self):
        self.check_dropped(self.ingest, MAX_REQUEST + 1024 * 1024)
        self.both_serve("an oversized message to ingest")
        self.assertStatus(self.sc.get(key="huge"), pb.NOT_FOUND, "nothing was written")

    def test_message_over_store_max_msg_is_dropped(self):
        self.check_dropped(self.store, STORE_MAX_MSG + 1024 * 1024)
        self.both_serve("an oversized message to the store")


if __name__ == "__main__":
    harness.main()
