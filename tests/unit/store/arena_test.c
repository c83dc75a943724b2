/* core/arena (used by the store and ingest to decode requests): allocation,
 * alignment, reset, and arena_unpack / arena_request_unpack agreeing with
 * wire_unpack, with the same budget and error codes; arena_unpack_strings
 * refusing what the two separate walks refused. Lives with the store's
 * tests because tests/unit/core belongs to another owner. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "wire.h"

static void test_alloc_reset(void **state)
{
    (void)state;
    arena *a = arena_new(1024);
    assert_non_null(a);
    char *ptrs[200];
    size_t sizes[200];
    for (int i = 0; i < 200; i++) {
        sizes[i] = (size_t)(i * 37 % 700) + 1;
        if (i == 100)
            sizes[i] = 100000; /* bigger than a block: a block of its own */
        ptrs[i] = arena_alloc(a, sizes[i]);
        assert_non_null(ptrs[i]);
        assert_int_equal((uintptr_t)ptrs[i] % alignof(max_align_t), 0);
        memset(ptrs[i], i & 0xff, sizes[i]);
    }
    /* nothing overlaps: every allocation still holds its own pattern */
    for (int i = 0; i < 200; i++)
        for (size_t k = 0; k < sizes[i]; k++)
            assert_int_equal((unsigned char)ptrs[i][k], i & 0xff);
    assert_true(arena_used(a) >= 100000);
    arena_reset(a, 1 << 20);
    assert_int_equal(arena_used(a), 0);
    for (int r = 0; r < 3; r++) { /* reuse after reset */
        void *p = arena_alloc(a, 5000);
        assert_non_null(p);
        memset(p, 1, 5000);
        arena_reset(a, r == 1 ? 0 : 1 << 20);
    }
    arena_destroy(&a);
    assert_null(a);
    arena_destroy(&a); /* safe twice */
}

/* A Request{ingest: n articles}, packed. */
static uint8_t *s_request(size_t n, size_t *len)
{
    Bulletin__Article *arts = calloc(n, sizeof *arts);
    Bulletin__IngestItem *its = calloc(n, sizeof *its);
    Bulletin__IngestItem **itp = calloc(n, sizeof *itp);
    static char *tags[] = {"a", "bb"};
    for (size_t i = 0; i < n; i++) {
        bulletin__article__init(&arts[i]);
        arts[i].title = "Title";
        arts[i].body = "Body of the article, long enough to matter a little.";
        arts[i].key = "k";
        arts[i].tags = tags;
        arts[i].n_tags = 2;
        arts[i].published_at = (int64_t)i;
        bulletin__ingest_item__init(&its[i]);
        its[i].item_case = BULLETIN__INGEST_ITEM__ITEM_ARTICLE;
        its[i].article = &arts[i];
        itp[i] = &its[i];
    }
    Bulletin__IngestRequest ir = BULLETIN__INGEST_REQUEST__INIT;
    ir.n_items = n;
    ir.items = itp;
    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    req.version_major = 1;
    req.request_id = 99;
    req.body_case = BULLETIN__REQUEST__BODY_INGEST;
    req.ingest = &ir;
    *len = bulletin__request__get_packed_size(&req);
    uint8_t *b = malloc(*len);
    bulletin__request__pack(&req, b);
    free(arts);
    free(its);
    free(itp);
    return b;
}

static void test_unpack_matches_wire(void **state)
{
    (void)state;
    arena *a = arena_new(0);
    assert_non_null(a);
    for (int round = 0; round < 3; round++) {
        size_t len;
        uint8_t *b = s_request(round == 1 ? 2000 : 5, &len);
        wire_code code;
        char why[256];
        Bulletin__Request *w = (Bulletin__Request *)wire_unpack(
            &bulletin__request__descriptor, b, len, WIRE_BUDGET(len), &code, why, sizeof why);
        uint64_t rid = 0;
        Bulletin__Request *r =
            arena_request_unpack(a, b, len, WIRE_BUDGET(len), &rid, NULL, &code, why, sizeof why);
        assert_non_null(w);
        assert_non_null(r);
        assert_int_equal(rid, 99);
        /* the same message: it packs to the same bytes */
        size_t n1 = bulletin__request__get_packed_size(w), n2 = bulletin__request__get_packed_size(r);
        assert_int_equal(n1, n2);
        uint8_t *p1 = malloc(n1), *p2 = malloc(n2);
        bulletin__request__pack(w, p1);
        bulletin__request__pack(r, p2);
        assert_memory_equal(p1, p2, n1);
        assert_memory_equal(p1, b, len);
        free(p1);
        free(p2);
        wire_free(w);
        arena_reset(a, 1 << 20);
        free(b);
    }
    arena_destroy(&a);
}

static void test_unpack_errors(void **state)
{
    (void)state;
    arena *a = arena_new(0);
    assert_non_null(a);
    wire_code code;
    char why[256];
    uint64_t rid;
    size_t len;
    uint8_t *b = s_request(100, &len);
    /* budget too small: RESOURCE_EXHAUSTED, like wire_unpack */
    assert_null(arena_unpack(a, &bulletin__request__descriptor, b, len, 1000, &code, why,
                             sizeof why));
    assert_int_equal(code, BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED);
    assert_non_null(strstr(why, "more memory"));
    /* the budget is per call: the same arena decodes it with a fair budget */
    assert_non_null(arena_unpack(a, &bulletin__request__descriptor, b, len, WIRE_BUDGET(len),
                                 &code, why, sizeof why));
    /* truncated: INVALID_ARGUMENT */
    assert_null(arena_unpack(a, &bulletin__request__descriptor, b, len - 3, WIRE_BUDGET(len),
                             &code, why, sizeof why));
    assert_int_equal(code, BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    assert_non_null(strstr(why, "not a valid protobuf"));
    arena_reset(a, 1 << 20);
    free(b);
    /* envelope checks as wire_request_unpack */
    assert_null(arena_request_unpack(a, "", 0, 100, &rid, NULL, &code, why, sizeof why));
    assert_int_equal(code, BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    req.version_major = 9;
    req.request_id = 5;
    Bulletin__HealthRequest hr = BULLETIN__HEALTH_REQUEST__INIT;
    req.body_case = BULLETIN__REQUEST__BODY_HEALTH;
    req.health = &hr;
    uint8_t buf[64];
    len = bulletin__request__pack(&req, buf);
    assert_null(arena_request_unpack(a, buf, len, 4096, &rid, NULL, &code, why, sizeof why));
    assert_int_equal(code, BULLETIN__STATUS_CODE__FAILED_PRECONDITION);
    assert_int_equal(rid, 5);
    req.version_major = 1;
    req.body_case = BULLETIN__REQUEST__BODY__NOT_SET;
    len = bulletin__request__pack(&req, buf);
    assert_null(arena_request_unpack(a, buf, len, 4096, &rid, NULL, &code, why, sizeof why));
    assert_int_equal(code, BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    /* garbage */
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    assert_null(arena_request_unpack(a, junk, sizeof junk, 4096, &rid, NULL, &code, why, sizeof why));
    assert_int_equal(code, BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    arena_destroy(&a);
}

/* arena_unpack_strings (the store's decoding of internal write batches)
 * refuses what arena_unpack + wire_strings_why refused, with the same code
 * and sentence, after one walk (wire_accepted_strings), and
 * arena_request_unpack's strings_ok is wire_strings_ok's answer: on fixed cases (a
 * bad string, a malformed field before and after one, nested) and on 3000
 * random mutations of a valid request. */
static void s_two_walks(const uint8_t *b, size_t len, bool *ok, char *why, size_t cap)
{
    wire_code code = BULLETIN__STATUS_CODE__OK;
    *ok = wire_accepted(&bulletin__request__descriptor, b, len, &code, why, cap) &&
          wire_strings_why(&bulletin__request__descriptor, b, len, why, cap) == 0;
}

static void s_one_walk(arena *a, const uint8_t *b, size_t len, bool *ok, char *why, size_t cap)
{
    wire_code code = BULLETIN__STATUS_CODE__OK;
    *ok = wire_accepted_strings(&bulletin__request__descriptor, b, len, &code, why, cap);
    assert_int_equal(code, *ok ? BULLETIN__STATUS_CODE__OK : BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    /* arena_request_unpack with strings_ok (ingest, the store's client
     * requests): refuses what it refuses without, and says what
     * wire_strings_ok says about the strings */
    bool strings = wire_strings_ok(&bulletin__request__descriptor, b, len), clean = !strings;
    char w3[256] = "", w4[256] = "";
    wire_code c3 = BULLETIN__STATUS_CODE__OK, c4 = BULLETIN__STATUS_CODE__OK;
    uint64_t rid;
    bool r3 = arena_request_unpack(a, b, len, WIRE_BUDGET(len), &rid, NULL, &c3, w3, sizeof w3);
    bool r4 = arena_request_unpack(a, b, len, WIRE_BUDGET(len), &rid, &clean, &c4, w4, sizeof w4);
    assert_int_equal(r3, r4);
    if (r4) {
        assert_int_equal(clean, strings);
    } else {
        assert_int_equal(c3, c4);
        assert_string_equal(w3, w4);
    }
    arena_reset(a, 1 << 20);
    /* arena_unpack_strings: the same verdict wherever protobuf-c decodes it */
    ProtobufCMessage *m = protobuf_c_message_unpack(&bulletin__request__descriptor, NULL, len, b);
    if (!m)
        return;
    protobuf_c_message_free_unpacked(m, NULL);
    char w2[256];
    code = BULLETIN__STATUS_CODE__OK;
    ProtobufCMessage *r = arena_unpack_strings(a, &bulletin__request__descriptor, b, len,
                                               WIRE_BUDGET(len), &code, w2, sizeof w2);
    assert_int_equal(r != NULL, *ok);
    if (!*ok) {
        assert_int_equal(code, BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
        assert_string_equal(w2, why);
    }
    arena_reset(a, 1 << 20);
}

static void s_same_verdict(arena *a, const uint8_t *b, size_t len, bool want_ok, const char *want)
{
    bool ok1, ok2;
    char w1[256] = "", w2[256] = "";
    s_two_walks(b, len, &ok1, w1, sizeof w1);
    s_one_walk(a, b, len, &ok2, w2, sizeof w2);
    assert_int_equal(ok1, ok2);
    if (!ok1)
        assert_string_equal(w1, w2);
    if (want) {
        assert_int_equal(ok2, want_ok);
        assert_non_null(strstr(w2, want));
    }
}

static void test_unpack_strings(void **state)
{
    (void)state;
    arena *a = arena_new(0);
    assert_non_null(a);
    /* version 1, get{key "k"}; get{key "k\xff"} */
    const uint8_t good[] = {0x08, 0x01, 0x5a, 0x03, 0x12, 0x01, 'k'};
    const uint8_t bad_str[] = {0x08, 0x01, 0x5a, 0x04, 0x12, 0x02, 'k', 0xff};
    /* a bad string, then a fixed64 field numbered above 2^29 - 1 */
    const uint8_t str_then_malformed[] = {0x08, 0x01, 0x5a, 0x04, 0x12, 0x02, 'k', 0xff,
                                          0xe9, 0xf0, 0x9a, 0xf4, 0x26, 0, 0, 0, 0, 0, 0, 0, 0};
    /* get{ <that field> key "\xff" }: malformed first, nested */
    const uint8_t nested[] = {0x08, 0x01, 0x5a, 0x10, 0xe9, 0xf0, 0x9a, 0xf4, 0x26, 0, 0, 0, 0,
                              0,    0,    0,    0,    0x12, 0x01, 0xff};
    wire_code code;
    char why[256];
    ProtobufCMessage *m = arena_unpack_strings(a, &bulletin__request__descriptor, good,
                                               sizeof good, 4096, &code, why, sizeof why);
    assert_non_null(m);
    assert_string_equal(((Bulletin__Request *)m)->get->key, "k");
    arena_reset(a, 1 << 20);
    s_same_verdict(a, good, sizeof good, true, NULL);
    s_same_verdict(a, bad_str, sizeof bad_str, false,
                   "field get.key is not valid UTF-8 or contains NUL (byte 1)");
    s_same_verdict(a, str_then_malformed, sizeof str_then_malformed, false,
                   "malformed field at byte 8");
    s_same_verdict(a, nested, sizeof nested, false, "malformed field at byte 4");
    /* random byte changes of a valid ingest request */
    size_t len;
    uint8_t *b = s_request(4, &len);
    uint8_t *mut = malloc(len);
    unsigned rng = 12345, refused = 0;
    for (int i = 0; i < 3000; i++) {
        memcpy(mut, b, len);
        for (int k = 0; k < 1 + i % 3; k++) {
            rng = rng * 1103515245u + 12345u;
            size_t at = (rng >> 8) % len;
            rng = rng * 1103515245u + 12345u;
            mut[at] = (uint8_t)(i % 4 == 0 ? (rng >> 16) & 0x7f : 0x80 | (rng >> 16));
        }
        bool ok;
        char w[256];
        s_two_walks(mut, len, &ok, w, sizeof w);
        refused += !ok;
        s_same_verdict(a, mut, len, ok, NULL);
    }
    assert_true(refused > 300); /* the mutations reach both checks */
    free(mut);
    free(b);
    arena_destroy(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_reset),
        cmocka_unit_test(test_unpack_matches_wire),
        cmocka_unit_test(test_unpack_errors),
        cmocka_unit_test(test_unpack_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
