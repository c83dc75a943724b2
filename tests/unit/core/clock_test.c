/* clock: RFC 3339 parsing and formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "clock.h"

static void test_parse_forms(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(clock_parse_rfc3339("1970-01-01T00:00:00Z", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(clock_parse_rfc3339("2024-05-01T12:00:00Z", &ms), 0);
    assert_int_equal(ms, 1714564800000LL);
    assert_int_equal(clock_parse_rfc3339("2024-05-01T14:00:00+02:00", &ms), 0);
    assert_int_equal(ms, 1714564800000LL);
    assert_int_equal(clock_parse_rfc3339("2024-05-01T12:00:00.5Z", &ms), 0);
    assert_int_equal(ms, 1714564800500LL);
    assert_int_equal(clock_parse_rfc3339("2024-05-01T12:00:00.123456Z", &ms), 0);
    assert_int_equal(ms, 1714564800123LL);
    assert_int_equal(clock_parse_rfc3339("2024-05-01", &ms), 0);
    assert_int_equal(ms, 1714521600000LL);
    assert_int_equal(clock_parse_rfc3339("2000-02-29T00:00:00-01:30", &ms), 0);
    assert_int_equal(ms, 951782400000LL + 5400000LL);
    assert_int_equal(clock_parse_rfc3339("1969-12-31T23:59:59Z", &ms), 0);
    assert_int_equal(ms, -1000);
}

static void test_parse_rejects(void **state)
{
    (void)state;
    int64_t ms = 7;
    const char *bad[] = {"", "yesterday", "2024-13-01", "2024-05-01T25:00:00Z", "2024-05-01T12:00Zjunk",
                         "2024-05-01T12:00:00.Z", "2024-5-1", "2024-05-01T12:00:00+0200", NULL};
    for (int i = 0; bad[i]; i++)
        assert_int_equal(clock_parse_rfc3339(bad[i], &ms), -1);
    assert_int_equal(clock_parse_rfc3339(NULL, &ms), -1);
    assert_int_equal(ms, 7); /* untouched on failure */
}

static void test_format_round_trip(void **state)
{
    (void)state;
    char buf[40];
    const int64_t samples[] = {0, 1714564800123LL, 951782400000LL, -1000, 4102444799999LL};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        int64_t back;
        clock_format_rfc3339(samples[i], buf, sizeof buf);
        assert_int_equal(clock_parse_rfc3339(buf, &back), 0);
        assert_int_equal(back, samples[i]);
    }
    clock_format_rfc3339(1714564800123LL, buf, sizeof buf);
    assert_string_equal(buf, "2024-05-01T12:00:00.123Z");
}

static void test_clocks_move(void **state)
{
    (void)state;
    assert_true(clock_now_ms() > 1700000000000LL);
    int64_t a = clock_mono_us(), b = clock_mono_us();
    assert_true(b >= a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_forms),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_format_round_trip),
        cmocka_unit_test(test_clocks_move),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
