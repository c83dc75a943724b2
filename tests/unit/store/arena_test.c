/* core/arena (used by the store and ingest to decode requests): allocation,
 * alignment, reset, and arena_unpack / arena_request_unpack agreeing with
 * wire_unpack, with the same budget and error codes. Lives with the store's
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
            arena_request_unpack(a, b, len, WIRE_BUDGET(len), &rid, &code, why, sizeof why);
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
    assert_null(arena_request_unpack(a, "", 0, 100, &rid, &code, why, sizeof why));
    assert_int_equal(code, BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    req.version_major = 9;
    req.request_id = 5;
    Bulletin__HealthRequest hr = BULLETIN__HEALTH_REQUEST__INIT;
    req.body_case = BULLETIN__REQUEST__BODY_HEALTH;
    req.health = &hr;
    uint8_t buf[64];
    len = bulletin__request__pack(&req, buf);
    assert_null(arena_request_unpack(a, buf, len, 4096, &rid, &code, why, sizeof why));
    assert_int_equal(code, BULLETIN__STATUS_CODE__FAILED_PRECONDITION);
    assert_int_equal(rid, 5);
    req.version_major = 1;
    req.body_case = BULLETIN__REQUEST__BODY__NOT_SET;
    len = bulletin__request__pack(&req, buf);
    assert_null(arena_request_unpack(a, buf, len, 4096, &rid, &code, why, sizeof why));
    assert_int_equal(code, BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    /* garbage */
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    assert_null(arena_request_unpack(a, junk, sizeof junk, 4096, &rid, &code, why, sizeof why));
    assert_int_equal(code, BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    arena_destroy(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_reset),
        cmocka_unit_test(test_unpack_matches_wire),
        cmocka_unit_test(test_unpack_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
