/* wire: budgeted decoding, envelope checks, string checks on raw bytes, and
 * zio routing of REQ and DEALER clients through a ROUTER. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "wire.h"

static size_t s_pack_request(Bulletin__Request *req, uint8_t **out)
{
    size_t n = bulletin__request__get_packed_size(req);
    *out = malloc(n + 1);
    return bulletin__request__pack(req, *out);
}

static void test_request_round_trip(void **state)
{
    (void)state;
    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    Bulletin__StatsRequest stats = BULLETIN__STATS_REQUEST__INIT;
    req.version_major = 1;
    req.version_minor = 7; /* a newer minor version is accepted */
    req.request_id = 99;
    req.body_case = BULLETIN__REQUEST__BODY_STATS;
    req.stats = &stats;
    uint8_t *buf;
    size_t n = s_pack_request(&req, &buf);
    uint64_t id;
    wire_code code;
    char why[256];
    Bulletin__Request *got = wire_request_unpack(buf, n, WIRE_BUDGET(n), &id, &code, why, sizeof why);
    assert_non_null(got);
    assert_int_equal(id, 99);
    assert_int_equal(got->body_case, BULLETIN__REQUEST__BODY_STATS);
    wire_free(got);

    req.version_major = 2; /* a newer major version is not */
    free(buf);
    n = s_pack_request(&req, &buf);
    assert_null(wire_request_unpack(buf, n, WIRE_BUDGET(n), &id, &code, why, sizeof why));
    assert_int_equal(code, BULLETIN__STATUS_CODE__FAILED_PRECONDITION);
    assert_int_equal(id, 99);
    assert_non_null(strstr(why, "version"));
    free(buf);
}

static void test_bad_bytes(void **state)
{
    (void)state;
    uint64_t id;
    wire_code code;
    char why[256];
    assert_null(wire_request_unpack("", 0, 1000, &id, &code, why, sizeof why));
    assert_int_equal(code, BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    const uint8_t garbage[] = {0xff, 0xff, 0xff, 0x01, 0x02};
    assert_null(wire_request_unpack(garbage, sizeof garbage, 1000, &id, &code, why, sizeof why));
    assert_int_equal(code, BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    /* a request with no body */
    const uint8_t nobody[] = {0x18, 0x05};
    assert_null(wire_request_unpack(nobody, sizeof nobody, 1000, &id, &code, why, sizeof why));
    assert_int_equal(code, BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    assert_int_equal(id, 5);
}

/* protobuf-c skips a field numbered above 2^29 - 1 as unknown, but the raw
 * string checks cannot walk past it: such a message is refused, so a bad
 * string after it can never slip through (found by tests/integration/fuzz_test). */
static void test_malformed_field(void **state)
{
    (void)state;
    uint64_t id;
    wire_code code;
    char why[256];
    /* version 1, a fixed64 field with tag varint e9 f0 9a f4 26, then get{key "fuzz-\xb4"} */
    const uint8_t bad[] = {0x08, 0x01, 0xe9, 0xf0, 0x9a, 0xf4, 0x26, 'm', '/', 0xab, 0xbe, 0x18,
                           0xa5, 0xde, '4', 0x5a, 0x08, 0x12, 0x06, 'f', 'u', 'z', 'z', '-', 0xb4};
    ProtobufCMessage *raw = protobuf_c_message_unpack(&bulletin__request__descriptor, NULL,
                                                      sizeof bad, bad);
    assert_non_null(raw); /* protobuf-c alone accepts it */
    protobuf_c_message_free_unpacked(raw, NULL);
    assert_int_equal(wire_malformed_at(&bulletin__request__descriptor, bad, sizeof bad), 2);
    assert_null(wire_request_unpack(bad, sizeof bad, 1 << 20, &id, &code, why, sizeof why));
    assert_int_equal(code, BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    assert_non_null(strstr(why, "malformed field at byte 2"));
    /* the same inside a nested message: get{ <bad field> key "k" } */
    const uint8_t nested[] = {0x08, 0x01, 0x5a, 0x10, 0xe9, 0xf0, 0x9a, 0xf4, 0x26, 0, 0, 0, 0,
                              0,    0,    0,    0,    0x12, 0x01, 'k'};
    assert_int_equal(wire_malformed_at(&bulletin__request__descriptor, nested, sizeof nested), 4);
    assert_null(wire_request_unpack(nested, sizeof nested, 1 << 20, &id, &code, why, sizeof why));
    /* well-formed: SIZE_MAX */
    const uint8_t good[] = {0x08, 0x01, 0x5a, 0x03, 0x12, 0x01, 'k'};
    assert_int_equal(wire_malformed_at(&bulletin__request__descriptor, good, sizeof good), SIZE_MAX);
    Bulletin__Request *req = wire_request_unpack(good, sizeof good, 1 << 20, &id, &code, why,
                                                 sizeof why);
    assert_non_null(req);
    assert_string_equal(req->get->key, "k");
    wire_free(req);
}

static void test_budget(void **state)
{
    (void)state;
    /* 2000 empty items decode to far more memory than their 4000 bytes */
    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    Bulletin__IngestRequest ing = BULLETIN__INGEST_REQUEST__INIT;
    Bulletin__IngestItem item = BULLETIN__INGEST_ITEM__INIT;
    Bulletin__Article art = BULLETIN__ARTICLE__INIT;
    item.item_case = BULLETIN__INGEST_ITEM__ITEM_ARTICLE;
    item.article = &art;
    Bulletin__IngestItem *items[2000];
    for (int i = 0; i < 2000; i++)
        items[i] = &item;
    ing.n_items = 2000;
    ing.items = items;
    req.body_case = BULLETIN__REQUEST__BODY_INGEST;
    req.ingest = &ing;
    uint8_t *buf;
    size_t n = s_pack_request(&req, &buf);
    uint64_t id;
    wire_code code;
    char why[256];
    assert_null(wire_request_unpack(buf, n, n * 4, &id, &code, why, sizeof why));
    assert_int_equal(code, BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED);
    Bulletin__Request *ok = wire_request_unpack(buf, n, WIRE_BUDGET(n), &id, &code, why, sizeof why);
    assert_non_null(ok);
    assert_int_equal(ok->ingest->n_items, 2000);
    wire_free(ok);
    free(buf);
}

typedef struct {
    int calls;
    char path[256];
    size_t offset;
} s_bad;

static void s_on_bad(void *ud, const char *path, size_t offset)
{
    s_bad *b = ud;
    if (b->calls++ == 0) {
        snprintf(b->path, sizeof b->path, "%s", path);
        b->offset = offset;
    }
}

static void test_strings(void **state)
{
    (void)state;
    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    Bulletin__IngestRequest ing = BULLETIN__INGEST_REQUEST__INIT;
    Bulletin__IngestItem it0 = BULLETIN__INGEST_ITEM__INIT, it1 = BULLETIN__INGEST_ITEM__INIT;
    Bulletin__Article a0 = BULLETIN__ARTICLE__INIT, a1 = BULLETIN__ARTICLE__INIT;
    char *tags[] = {"ok", "bad\xff"};
    a0.title = "fine";
    a1.title = "also fine";
    a1.n_tags = 2;
    a1.tags = tags;
    it0.item_case = it1.item_case = BULLETIN__INGEST_ITEM__ITEM_ARTICLE;
    it0.article = &a0;
    it1.article = &a1;
    Bulletin__IngestItem *items[] = {&it0, &it1};
    ing.n_items = 2;
    ing.items = items;
    req.body_case = BULLETIN__REQUEST__BODY_INGEST;
    req.ingest = &ing;
    uint8_t *buf;
    size_t n = s_pack_request(&req, &buf);
    s_bad b = {0};
    assert_int_equal(wire_check_strings(&bulletin__request__descriptor, buf, n, s_on_bad, &b), 1);
    assert_string_equal(b.path, "ingest.items[1].article.tags[1]");
    assert_int_equal(b.offset, 3);
    free(buf);

    /* an embedded NUL, which protobuf-c would silently truncate */
    a1.n_tags = 0;
    n = s_pack_request(&req, &buf);
    uint8_t *t = memmem(buf, n, "fine", 4);
    assert_non_null(t);
    t[1] = 0; /* "f\0ne" */
    memset(&b, 0, sizeof b);
    assert_int_equal(wire_check_strings(&bulletin__request__descriptor, buf, n, s_on_bad, &b), 1);
    assert_string_equal(b.path, "ingest.items[0].article.title");
    free(buf);
}

static void test_routing(void **state)
{
    (void)state;
    void *ctx = zmq_ctx_new();
    void *router = zio_socket(ctx, ZMQ_ROUTER, 0, 1 << 20);
    assert_int_equal(zio_bind(router, "inproc://wire-test"), 0);
    void *req = zio_socket(ctx, ZMQ_REQ, 0, 0);
    void *dealer = zio_socket(ctx, ZMQ_DEALER, 0, 0);
    assert_int_equal(zio_connect(req, "inproc://wire-test"), 0);
    assert_int_equal(zio_connect(dealer, "inproc://wire-test"), 0);
    int timeout = 2000;
    zmq_setsockopt(router, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(req, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(dealer, ZMQ_RCVTIMEO, &timeout, sizeof timeout);

    /* REQ: [id][empty][body] */
    assert_int_equal(zmq_send(req, "ping", 4, 0), 4);
    zio_route route;
    zmq_msg_t body;
    assert_int_equal(zio_recv_routed(router, &route, &body, 0), 0);
    assert_int_equal(route.n, 2);
    assert_int_equal(zmq_msg_size(&body), 4);
    zmq_msg_close(&body);
    assert_int_equal(zio_send_routed(router, &route, "pong", 4), 0);
    zio_route_close(&route);
    char buf[16];
    assert_int_equal(zmq_recv(req, buf, sizeof buf, 0), 4);
    assert_memory_equal(buf, "pong", 4);

    /* DEALER with a delimiter, and one with too many frames after it */
    zmq_send(dealer, "", 0, ZMQ_SNDMORE);
    zmq_send(dealer, "a", 1, ZMQ_SNDMORE);
    zmq_send(dealer, "b", 1, 0);
    assert_int_equal(zio_recv_routed(router, &route, &body, 0), 0);
    assert_int_equal(zmq_msg_size(&body), 0); /* malformed: empty body, still routable */
    zmq_msg_close(&body);
    assert_int_equal(zio_send_routed(router, &route, "err", 3), 0);
    zio_route_close(&route);
    zmq_msg_t r;
    assert_int_equal(zio_recv_body(dealer, &r, 0), 0);
    assert_int_equal(zmq_msg_size(&r), 3);
    zmq_msg_close(&r);

    /* a reply to a peer that is gone is an error, not a silent drop */
    zio_route ghost = {.n = 1};
    zmq_msg_init_size(&ghost.f[0], 5);
    memcpy(zmq_msg_data(&ghost.f[0]), "ghost", 5);
    assert_int_equal(zio_send_routed(router, &ghost, "x", 1), -1);
    assert_int_equal(errno, EHOSTUNREACH);
    zio_route_close(&ghost);

    zio_close(&req);
    zio_close(&dealer);
    zio_close(&router);
    assert_null(router);
    zmq_ctx_term(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_round_trip),
        cmocka_unit_test(test_bad_bytes),
        cmocka_unit_test(test_malformed_field),
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_routing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
