/* pbscan: field-by-field reads agree with protobuf-c, and malformed input is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bulletin.pb-c.h"
#include "pbscan.h"

static void test_fields_match_protobuf_c(void **state)
{
    (void)state;
    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    Bulletin__GetRequest get = BULLETIN__GET_REQUEST__INIT;
    req.version_major = 1;
    req.request_id = 0x123456789abcULL;
    req.deadline_ms = 250;
    req.min_seq = 42;
    get.key = "some-key";
    req.body_case = BULLETIN__REQUEST__BODY_GET;
    req.get = &get;
    uint8_t buf[256];
    size_t n = bulletin__request__pack(&req, buf);

    const uint8_t *p = buf, *end = buf + n;
    pbscan_field f;
    uint64_t rid = 0, dl = 0, ms = 0;
    const uint8_t *body = NULL;
    size_t body_len = 0;
    int r;
    while ((r = pbscan_next(&p, end, &f)) > 0) {
        if (f.field == 3)
            rid = f.value;
        if (f.field == 4)
            dl = f.value;
        if (f.field == 5)
            ms = f.value;
        if (f.field == 11) {
            assert_int_equal(f.wire_type, PB_LEN);
            body = f.data;
            body_len = f.len;
        }
    }
    assert_int_equal(r, 0);
    assert_true(p == end);
    assert_int_equal(rid, req.request_id);
    assert_int_equal(dl, 250);
    assert_int_equal(ms, 42);
    assert_non_null(body);
    Bulletin__GetRequest *g = bulletin__get_request__unpack(NULL, body_len, body);
    assert_non_null(g);
    assert_string_equal(g->key, "some-key");
    bulletin__get_request__free_unpacked(g, NULL);
}

static void test_malformed_refused(void **state)
{
    (void)state;
    pbscan_field f;
    /* a length past the end */
    const uint8_t long_len[] = {0x12, 0x05, 'a', 'b'};
    const uint8_t *p = long_len;
    assert_int_equal(pbscan_next(&p, long_len + sizeof long_len, &f), -1);
    /* a truncated varint */
    const uint8_t trunc[] = {0x08, 0xff, 0xff};
    p = trunc;
    assert_int_equal(pbscan_next(&p, trunc + sizeof trunc, &f), -1);
    /* wire type 3 (group) and 7 (does not exist) */
    const uint8_t group[] = {0x0b};
    p = group;
    assert_int_equal(pbscan_next(&p, group + 1, &f), -1);
    const uint8_t seven[] = {0x0f};
    p = seven;
    assert_int_equal(pbscan_next(&p, seven + 1, &f), -1);
    /* field number 0 */
    const uint8_t zero[] = {0x00, 0x01};
    p = zero;
    assert_int_equal(pbscan_next(&p, zero + 2, &f), -1);
    /* a fixed64 with 7 bytes left */
    const uint8_t fx[] = {0x09, 1, 2, 3, 4, 5, 6, 7};
    p = fx;
    assert_int_equal(pbscan_next(&p, fx + sizeof fx, &f), -1);
    /* empty input is the end, not an error */
    p = fx;
    assert_int_equal(pbscan_next(&p, fx, &f), 0);
}

static void test_fixed_values(void **state)
{
    (void)state;
    const uint8_t in[] = {0x0d, 0x78, 0x56, 0x34, 0x12, 0x11, 1, 0, 0, 0, 0, 0, 0, 0x80};
    const uint8_t *p = in;
    pbscan_field f;
    assert_int_equal(pbscan_next(&p, in + sizeof in, &f), 1);
    assert_int_equal(f.field, 1);
    assert_int_equal(f.wire_type, PB_FIXED32);
    assert_int_equal(f.value, 0x12345678);
    assert_int_equal(pbscan_next(&p, in + sizeof in, &f), 1);
    assert_int_equal(f.field, 2);
    assert_int_equal(f.value, 0x8000000000000001ULL);
    assert_int_equal(pbscan_next(&p, in + sizeof in, &f), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_match_protobuf_c),
        cmocka_unit_test(test_malformed_refused),
        cmocka_unit_test(test_fixed_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
