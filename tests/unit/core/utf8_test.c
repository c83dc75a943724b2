/* utf8: validation of untrusted text, with the offset of the first problem. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "utf8.h"

static void s_bad_at(const char *s, size_t len, size_t want)
{
    size_t off = 999;
    assert_false(utf8_valid(s, len, &off));
    assert_int_equal(off, want);
}

static void test_valid(void **state)
{
    (void)state;
    const char *ok[] = {"", "plain ascii text long enough for the fast path", "caf\xc3\xa9",
                        "\xe4\xb8\xad\xe6\x96\x87", "\xf0\x9f\x98\x80 emoji", "\xef\xbf\xbd", NULL};
    for (int i = 0; ok[i]; i++)
        assert_true(utf8_valid(ok[i], strlen(ok[i]), NULL));
}

static void test_invalid(void **state)
{
    (void)state;
    s_bad_at("abc\xff", 4, 3);
    s_bad_at("abcdefgh12345\x80xyz", 17, 13);       /* lone continuation after the fast path */
    s_bad_at("ab\xc0\xaf", 4, 2);                   /* overlong '/' */
    s_bad_at("\xed\xa0\x80", 3, 0);                 /* surrogate U+D800 */
    s_bad_at("xx\xf4\x90\x80\x80", 6, 2);           /* above U+10FFFF */
    s_bad_at("\xe4\xb8", 2, 0);                     /* truncated sequence */
    s_bad_at("nul\0inside", 10, 3);                 /* NUL byte */
    s_bad_at("0123456789abcdef\0", 17, 16);         /* NUL after the fast path */
    assert_false(utf8_valid("a\0", 2, NULL));       /* NULL offset pointer is allowed */
}

static void test_big_valid(void **state)
{
    (void)state;
    size_t n = 1 << 20;
    char *buf = malloc(n);
    assert_non_null(buf);
    for (size_t i = 0; i + 3 <= n; i += 3)
        memcpy(buf + i, "\xe4\xb8\xad", 3);
    size_t used = n - n % 3;
    assert_true(utf8_valid(buf, used, NULL));
    buf[used / 2 - (used / 2) % 3] = '\xff';
    assert_false(utf8_valid(buf, used, NULL));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_big_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
