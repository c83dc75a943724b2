/* cli_fmt_test: the read commands' pure parts: cursor text, dates, numbers,
 * the list-page JSON and the table's column fitting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_fmt.h"

static void test_cursor_round_trip(void **state)
{
    (void)state;
    /* every length 0..40 and every byte value survive the round trip */
    unsigned char buf[256];
    for (int i = 0; i < 256; i++)
        buf[i] = (unsigned char)(255 - i);
    for (size_t len = 0; len <= 256; len += (len < 40 ? 1 : 27)) {
        char *t = cli_cursor_encode(buf, len);
        assert_non_null(t);
        assert_int_equal(strlen(t), (len * 4 + 2) / 3);
        for (const char *p = t; *p; p++) /* shell- and URL-safe alphabet */
            assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                   "0123456789-_", *p));
        void *back = NULL;
        size_t blen = 99;
        assert_int_equal(cli_cursor_decode(t, &back, &blen), 0);
        assert_int_equal(blen, len);
        if (len)
            assert_memory_equal(back, buf, len);
        else
            assert_null(back);
        free(back);
        free(t);
    }
}

static void test_cursor_known_values(void **state)
{
    (void)state;
    /* RFC 4648 test vectors, in the URL alphabet and without padding */
    static const char *const in[] = {"f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const out[] = {"Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (int i = 0; i < 6; i++) {
        char *t = cli_cursor_encode(in[i], strlen(in[i]));
        assert_string_equal(t, out[i]);
        free(t);
    }
    char *t = cli_cursor_encode("\xfb\xff", 2);
    assert_string_equal(t, "-_8"); /* 62 and 63 are '-' and '_' */
    free(t);
    void *b;
    size_t n;
    assert_int_equal(cli_cursor_decode("Zm8=", &b, &n), 0); /* padding accepted */
    assert_int_equal(n, 2);
    assert_memory_equal(b, "fo", 2);
    free(b);
    assert_int_equal(cli_cursor_decode("Zg==", &b, &n), 0);
    assert_int_equal(n, 1);
    free(b);
}

static void test_cursor_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Zm9v+", "Zm9v/", "ab$", "Zm 9v", "Z", "Zm9vY", "Zm=8", "Zh", /* Zh: non-zero tail bits */
        "Zm9=", "Zg=", "Zg===", "é",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        void *b = (void *)1;
        size_t n = 7;
        if (cli_cursor_decode(bad[i], &b, &n) != -1)
            fail_msg("'%s' was accepted as a cursor", bad[i]);
        assert_null(b);
        assert_int_equal(n, 0);
    }
}

static void test_dates_and_numbers(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(cli_parse_date("2024-03-11T07:45:00Z", &ms), 0);
    assert_int_equal(ms, 1710143100000LL);
    assert_int_equal(cli_parse_date("2024-11-20T16:00:00+01:00", &ms), 0);
    assert_int_equal(ms, 1732114800000LL);
    assert_int_equal(cli_parse_date("2021-06-01", &ms), 0);
    assert_int_equal(ms, 1622505600000LL);
    assert_int_equal(cli_parse_date("", &ms), -1);
    assert_int_equal(cli_parse_date("yesterday", &ms), -1);
    assert_int_equal(cli_parse_date("2024-13-01", &ms), -1);
    assert_int_equal(cli_parse_date("2024-02-30", &ms), -1);
    assert_int_equal(cli_parse_date("2023-02-29", &ms), -1);
    assert_int_equal(cli_parse_date("2024-04-31T00:00:00Z", &ms), -1);
    assert_int_equal(cli_parse_date("2024-02-29", &ms), 0); /* a leap day */
    assert_int_equal(cli_parse_date("2024-12-31T23:59:59.999Z", &ms), 0);
    assert_int_equal(cli_parse_date("1712131200000", &ms), -1);

    uint64_t v;
    assert_int_equal(cli_parse_u64("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(cli_parse_u64("18446744073709551615", &v), 0);
    assert_true(v == UINT64_MAX);
    static const char *const bad[] = {"", "-1", "+1", " 1", "1 ", "1x", "18446744073709551616",
                                      "0x10"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (cli_parse_u64(bad[i], &v) != -1)
            fail_msg("'%s' was accepted as a seq", bad[i]);
}

static void test_page_json(void **state)
{
    (void)state;
    const char *tags[] = {"dad joke", "farm"};
    bulletin_summary items[2] = {
        {.id = 7, .key = "k7", .site = "Joke Collection Website", .category = "Dad jokes",
         .title = "The scarecrow's award", .published_at = 1581681600000LL, .excerpt = "Why...",
         .tags = tags, .tag_count = 2, .seq = 9},
        {.id = 8, .title = "no site"},
    };
    bulletin_list_page p = {.items = items, .count = 2, .next_cursor = "foo",
                            .next_cursor_len = 3, .total = 12, .has_total = 1,
                            .served_by = "worker-1", .applied_seq = 30};
    json_t *j = cli_json_list_page(&p);
    assert_non_null(j);
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(
        s, "{\"applied_seq\":30,\"items\":[{\"category\":\"Dad jokes\",\"excerpt\":\"Why...\","
           "\"id\":7,\"key\":\"k7\",\"published_at\":\"2020-02-14T12:00:00.000Z\",\"seq\":9,"
           "\"site\":\"Joke Collection Website\",\"tags\":[\"dad joke\",\"farm\"],"
           "\"title\":\"The scarecrow's award\"},{\"category\":null,\"excerpt\":null,\"id\":8,"
           "\"key\":null,\"published_at\":null,\"seq\":0,\"site\":null,\"tags\":[],"
           "\"title\":\"no site\"}],\"next_cursor\":\"Zm9v\",\"served_by\":\"worker-1\","
           "\"total\":12}");
    free(s);
    json_decref(j);

    /* the last page: next_cursor null, no total unless asked */
    bulletin_list_page end = {0};
    j = cli_json_list_page(&end);
    s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"applied_seq\":0,\"items\":[],\"next_cursor\":null,"
                           "\"served_by\":null}");
    free(s);
    json_decref(j);
}

static void test_fit_and_width(void **state)
{
    (void)state;
    char out[128];
    assert_int_equal(cli_text_width("abc"), 3);
    assert_int_equal(cli_text_width("每日新闻网"), 10); /* wide */
    assert_int_equal(cli_text_width("e\xcc\x81"), 1);   /* e + combining acute */
    assert_int_equal(cli_text_width(""), 0);

    assert_string_equal(cli_fit("abc", 5, out, sizeof out), "abc  ");
    assert_string_equal(cli_fit("abcdef", 5, out, sizeof out), "abcd\xe2\x80\xa6");
    assert_string_equal(cli_fit("abcde", 5, out, sizeof out), "abcde");
    /* a wide character never straddles the cut: the ellipsis, then padding */
    assert_string_equal(cli_fit("每日新闻网", 6, out, sizeof out), "每日\xe2\x80\xa6 ");
    assert_int_equal(cli_text_width(out), 6);
    assert_string_equal(cli_fit("每日新闻网", 10, out, sizeof out), "每日新闻网");
    /* control characters do not break the line */
    assert_string_equal(cli_fit("a\nb\tc", 5, out, sizeof out), "a b c");
    /* invalid UTF-8 shows as '?' */
    assert_string_equal(cli_fit("a\xff", 3, out, sizeof out), "a? ");
    /* a small buffer is never overrun */
    char tiny[6];
    cli_fit("abcdefghij", 20, tiny, sizeof tiny);
    assert_true(strlen(tiny) < sizeof tiny);
}

static void test_table_row(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    bulletin_summary s = {.id = 17, .site = "每日新闻网", .category = "社会",
                          .title = "城市公园新增夜间照明设施", .published_at = 1725364800000LL};
    cli_table_header(f);
    cli_table_row(f, &s);
    bulletin_summary none = {.id = 3};
    cli_table_row(f, &none);
    fclose(f);
    char *l1 = buf, *l2 = strchr(l1, '\n') + 1, *l3 = strchr(l2, '\n') + 1;
    l2[-1] = l3[-1] = '\0';
    assert_int_equal(l3[strlen(l3) - 1], '\n');
    l3[strlen(l3) - 1] = '\0';
    /* the title column starts at the same display column on every line */
    size_t col = strstr(l1, "TITLE") - l1;
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%.*s", (int)(strstr(l2, "城市") - l2), l2);
    assert_int_equal(cli_text_width(prefix), col);
    assert_non_null(strstr(l2, "      17  2024-09-03 12:00  每日新闻网"));
    assert_non_null(strstr(l3, "(untitled)"));
    assert_non_null(strstr(l3, "       3  -"));
    assert_int_equal(l3[strlen(l3) - 1], ')'); /* no trailing padding */
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cursor_round_trip),
        cmocka_unit_test(test_cursor_known_values),
        cmocka_unit_test(test_cursor_rejects),
        cmocka_unit_test(test_dates_and_numbers),
        cmocka_unit_test(test_page_json),
        cmocka_unit_test(test_fit_and_width),
        cmocka_unit_test(test_table_row),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
