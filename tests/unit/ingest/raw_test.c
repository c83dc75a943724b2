/* ingest_raw + ingest_item_prepare on raw pages: the shared sample page and
 * our fixtures (tests/unit/ingest/fixtures). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_raw.h"
#include "ingest_validate.h"

#define FIXTURES BULLETIN_SOURCE_DIR "/tests/unit/ingest/fixtures/"
#define NOW_MS 1767225600000LL /* 2026-01-01 */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    return b;
}

/* Prepare a raw page as ingest does; returns the prepare result code. */
static int prepare_raw(char *text, ingest_doc *d)
{
    Bulletin__RawDocument raw = BULLETIN__RAW_DOCUMENT__INIT;
    raw.text = text;
    Bulletin__IngestItem item = BULLETIN__INGEST_ITEM__INIT;
    item.item_case = BULLETIN__INGEST_ITEM__ITEM_RAW;
    item.raw = &raw;
    ingest_doc_init(d);
    return ingest_item_prepare(&item, NOW_MS, d);
}

static bool has_warning(const ingest_doc *d, const char *needle)
{
    for (size_t i = 0; i < d->n_warnings; i++)
        if (strstr(d->warnings[i], needle))
            return true;
    return false;
}

static void test_shared_sample(void **state)
{
    (void)state;
    char *text = slurp(BULLETIN_SOURCE_DIR "/samples/raw/000_6b860823d964cfe5.txt");
    ingest_doc d;
    assert_int_equal(prepare_raw(text, &d), 0);
    assert_null(d.error);
    assert_string_equal(d.art.site, "Joke Collection Website");
    assert_string_equal(d.art.category, "Bulletin headlines");
    assert_string_equal(d.art.title,
                        "How to better carry out public security work in the context of folk customs");
    assert_true(strncmp(d.art.body, "How to better implement the party", 33) == 0);
    assert_string_equal(d.art.raw, text); /* kept unchanged */
    assert_memory_equal(d.art.key, "h:", 2);
    assert_true(has_warning(&d, "body: 3 places where characters look lost"));
    assert_true(has_warning(&d, "values ?\?of law"));
    assert_false(has_warning(&d, "mojibake"));
    ingest_doc_clear(&d);
    free(text);
}

static void test_clean(void **state)
{
    (void)state;
    char *text = slurp(FIXTURES "clean.txt");
    ingest_doc d;
    assert_int_equal(prepare_raw(text, &d), 0);
    assert_string_equal(d.art.site, "Daily News Site");
    assert_string_equal(d.art.category, "World");
    assert_string_equal(d.art.title, "Rivers rise after a week of rain");
    assert_string_equal(d.art.body,
                        "The river rose two metres overnight.\n\nResidents moved to higher ground.");
    assert_int_equal(d.n_warnings, 0);
    ingest_doc_clear(&d);
    free(text);
}

static void test_title_with_dash(void **state)
{
    (void)state;
    char *text = slurp(FIXTURES "title_dash.txt");
    ingest_doc d;
    assert_int_equal(prepare_raw(text, &d), 0);
    assert_string_equal(d.art.site, "Joke Collection Website");
    assert_string_equal(d.art.category, "Jokes");
    assert_string_equal(d.art.title, "Q - A: why did the chicken - cross the road");
    assert_string_equal(d.art.body, "To get to the other side.");
    ingest_doc_clear(&d);
    free(text);
}

static void test_missing_blank(void **state)
{
    (void)state;
    char *text = slurp(FIXTURES "missing_blank.txt");
    ingest_doc d;
    assert_int_equal(prepare_raw(text, &d), 1);
    assert_non_null(d.error);
    assert_non_null(strstr(d.error, "line 2 of the raw text should be blank"));
    assert_non_null(strstr(d.error, "'Water cut on Monday'"));
    ingest_doc_clear(&d);
    free(text);
}

static void test_mojibake(void **state)
{
    (void)state;
    char *text = slurp(FIXTURES "mojibake.txt");
    ingest_doc d;
    assert_int_equal(prepare_raw(text, &d), 0);
    assert_true(has_warning(&d, "title: 1 place that looks like UTF-8 read as Latin-1"));
    assert_true(has_warning(&d, "body: 3 places that look like UTF-8 read as Latin-1"));
    /* text never changed */
    assert_non_null(strstr(d.art.body, "caf\xc3\x83\xc2\xa9"));
    ingest_doc_clear(&d);
    free(text);
}

static void test_fffd(void **state)
{
    (void)state;
    char *text = slurp(FIXTURES "fffd.txt");
    ingest_doc d;
    assert_int_equal(prepare_raw(text, &d), 0);
    assert_true(has_warning(&d, "body: 2 U+FFFD replacement characters"));
    assert_true(has_warning(&d, "first at byte 12"));
    ingest_doc_clear(&d);
    free(text);
}

static void test_not_raw(void **state)
{
    (void)state;
    char *text = slurp(FIXTURES "not_raw.txt");
    ingest_doc d;
    assert_int_equal(prepare_raw(text, &d), 1);
    assert_non_null(strstr(d.error, "should be 'Site - Category - Title'"));
    assert_non_null(strstr(d.error, "'Dear all,'"));
    ingest_doc_clear(&d);
    char empty[] = "";
    assert_int_equal(prepare_raw(empty, &d), 1);
    assert_non_null(strstr(d.error, "empty"));
    ingest_doc_clear(&d);
    char two_parts[] = "Site - Title only\n\nbody";
    assert_int_equal(prepare_raw(two_parts, &d), 1);
    ingest_doc_clear(&d);
    char empty_part[] = "Site -  - Title\n\nbody";
    assert_int_equal(prepare_raw(empty_part, &d), 1);
    assert_non_null(strstr(d.error, "none of the three parts empty"));
    ingest_doc_clear(&d);
    free(text);
}

static void test_crlf_and_variants(void **state)
{
    (void)state;
    char *text = slurp(FIXTURES "crlf.txt");
    ingest_doc d;
    assert_int_equal(prepare_raw(text, &d), 0);
    assert_string_equal(d.art.title, "Rivers rise");
    /* the repeated title differs only in whitespace: still skipped */
    assert_string_equal(d.art.body, "Line one.\nLine two.");
    assert_string_equal(d.art.raw, text);
    ingest_doc_clear(&d);
    free(text);
    /* no repeated title: the first line after the blank is body */
    char b[] = "S - C - T\n\nBody starts here.\nMore.";
    assert_int_equal(prepare_raw(b, &d), 0);
    assert_string_equal(d.art.body, "Body starts here.\nMore.");
    ingest_doc_clear(&d);
    /* header only: a title-only page */
    char h[] = "S - C - Just a headline\n";
    assert_int_equal(prepare_raw(h, &d), 0);
    assert_string_equal(d.art.title, "Just a headline");
    assert_string_equal(d.art.body, "");
    ingest_doc_clear(&d);
    /* header, blank, title, nothing else */
    char t[] = "S - C - T\n\nT\n\n";
    assert_int_equal(prepare_raw(t, &d), 0);
    assert_string_equal(d.art.body, "");
    ingest_doc_clear(&d);
}

static void test_raw_fields_copied(void **state)
{
    (void)state;
    char text[] = "S - C - T\n\nT\n\nbody";
    char *tags[] = {"b", "a", "b"};
    Bulletin__RawDocument raw = BULLETIN__RAW_DOCUMENT__INIT;
    raw.text = text;
    raw.url = "HTTPS://News.Example.org:443/x#frag";
    raw.n_tags = 3;
    raw.tags = tags;
    raw.published_at = 1700000000000LL;
    raw.lang = "EN";
    Bulletin__IngestItem item = BULLETIN__INGEST_ITEM__INIT;
    item.item_case = BULLETIN__INGEST_ITEM__ITEM_RAW;
    item.raw = &raw;
    ingest_doc d;
    ingest_doc_init(&d);
    assert_int_equal(ingest_item_prepare(&item, NOW_MS, &d), 0);
    assert_string_equal(d.art.url, "https://news.example.org/x");
    assert_string_equal(d.art.key, "https://news.example.org/x");
    assert_int_equal(d.art.n_tags, 2);
    assert_string_equal(d.art.tags[0], "b");
    assert_string_equal(d.art.tags[1], "a");
    assert_int_equal(d.art.published_at, 1700000000000LL);
    assert_string_equal(d.art.lang, "en");
    ingest_doc_clear(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_sample),  cmocka_unit_test(test_clean),
        cmocka_unit_test(test_title_with_dash), cmocka_unit_test(test_missing_blank),
        cmocka_unit_test(test_mojibake),        cmocka_unit_test(test_fffd),
        cmocka_unit_test(test_not_raw),         cmocka_unit_test(test_crlf_and_variants),
        cmocka_unit_test(test_raw_fields_copied),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
