/* The pure parts of `bulletin search`: snippet rendering for a terminal or a
 * pipe, and the JSON page. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_fmt.h"

static void test_snippet_ansi(void **state)
{
    (void)state;
    char *s = cli_snippet_render("the " CLI_MARK_OPEN "mass" CLI_MARK_CLOSE " line", 1);
    assert_non_null(s);
    assert_string_equal(s, "the \x1b[1;33mmass\x1b[0m line\x1b[0m");
    free(s);
}

static void test_snippet_plain_keeps_markers(void **state)
{
    (void)state;
    /* without ansi the markers stay as they are (the CLI asks for «» then) */
    char *s = cli_snippet_render("a \xc2\xab" "b\xc2\xbb c", 0);
    assert_string_equal(s, "a \xc2\xab" "b\xc2\xbb c");
    free(s);
}

static void test_snippet_controls(void **state)
{
    (void)state;
    /* newlines, tabs, an escape sequence from a scraped page, a C1 control */
    char *s = cli_snippet_render("line1\n\n\tline2 \x1b[31mred \xc2\x85next", 1);
    assert_non_null(s);
    assert_null(strchr(s, '\n'));
    assert_null(strchr(s, '\t'));
    /* the only ESC bytes left are our own reset at the end */
    const char *esc = strchr(s, '\x1b');
    assert_non_null(esc);
    assert_string_equal(esc, "\x1b[0m");
    assert_non_null(strstr(s, "line1 line2"));
    assert_non_null(strstr(s, " next"));
    free(s);
    s = cli_snippet_render(NULL, 0);
    assert_string_equal(s, "");
    free(s);
}

static void test_snippet_many_markers(void **state)
{
    (void)state;
    /* the worst case for the output size: nothing but markers */
    size_t n = 200;
    char *in = malloc(n * 3 + 1), *p = in;
    for (size_t i = 0; i < n; i++) {
        memcpy(p, i % 2 ? CLI_MARK_CLOSE : CLI_MARK_OPEN, 3);
        p += 3;
    }
    *p = '\0';
    char *s = cli_snippet_render(in, 1);
    assert_non_null(s);
    assert_int_equal(strlen(s), (n / 2) * 7 + (n / 2) * 4 + 4);
    free(s);
    free(in);
}

static void test_search_page_json(void **state)
{
    (void)state;
    bulletin_hit hits[2] = {
        {.id = 7, .key = "k7", .site = "S", .category = "C", .title = "T7",
         .published_at = 1714564800000LL, .score = 3.5, .snippet = "x \xc2\xab" "y\xc2\xbb"},
        {.id = 9, .key = "k9", .site = NULL, .category = "C", .title = "T9",
         .published_at = 0, .score = 1.25, .snippet = NULL},
    };
    bulletin_facet cats[1] = {{"C", 2}}, sites[1] = {{"S", 1}};
    unsigned char cursor[3] = {1, 2, 3};
    bulletin_search_result r = {
        .hits = hits, .hit_count = 2, .total = 41, .next_cursor = cursor,
        .next_cursor_len = sizeof cursor, .categories = cats, .category_count = 1,
        .sites = sites, .site_count = 1, .took_us = 321, .served_by = "w1", .applied_seq = 55};
    json_t *o = cli_json_search_page(&r, 1);
    assert_non_null(o);
    assert_int_equal(json_integer_value(json_object_get(o, "total")), 41);
    assert_int_equal(json_integer_value(json_object_get(o, "took_us")), 321);
    assert_string_equal(json_string_value(json_object_get(o, "served_by")), "w1");
    assert_int_equal(json_integer_value(json_object_get(o, "applied_seq")), 55);
    json_t *h = json_object_get(o, "hits");
    assert_int_equal(json_array_size(h), 2);
    json_t *h0 = json_array_get(h, 0);
    assert_int_equal(json_integer_value(json_object_get(h0, "id")), 7);
    assert_true(json_real_value(json_object_get(h0, "score")) == 3.5);
    assert_string_equal(json_string_value(json_object_get(h0, "snippet")), "x \xc2\xab" "y\xc2\xbb");
    assert_true(json_is_null(json_object_get(json_array_get(h, 1), "site")));
    /* the cursor is the same text --cursor accepts */
    const char *cur = json_string_value(json_object_get(o, "next_cursor"));
    assert_non_null(cur);
    void *back = NULL;
    size_t blen = 0;
    assert_int_equal(cli_cursor_decode(cur, &back, &blen), 0);
    assert_int_equal(blen, 3);
    assert_memory_equal(back, cursor, 3);
    free(back);
    json_t *c = json_object_get(o, "categories");
    assert_int_equal(json_array_size(c), 1);
    json_decref(o);

    /* without facets: no facet keys; at the end: next_cursor null */
    r.next_cursor = NULL;
    r.next_cursor_len = 0;
    o = cli_json_search_page(&r, 0);
    assert_null(json_object_get(o, "categories"));
    assert_null(json_object_get(o, "sites"));
    assert_true(json_is_null(json_object_get(o, "next_cursor")));
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snippet_ansi),
        cmocka_unit_test(test_snippet_plain_keeps_markers),
        cmocka_unit_test(test_snippet_controls),
        cmocka_unit_test(test_snippet_many_markers),
        cmocka_unit_test(test_search_page_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
