/* ingest_text: NFC, Unicode whitespace, trimming, CRLF, lower case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_text.h"

static void check(char *(*fn)(const char *, size_t, size_t *), const char *in, const char *want)
{
    size_t n = 0;
    char *r = fn(in, strlen(in), &n);
    assert_non_null(r);
    assert_string_equal(r, want);
    assert_int_equal(n, strlen(want));
    free(r);
}

static void test_nfc(void **state)
{
    (void)state;
    /* e + COMBINING ACUTE -> é (U+00E9) */
    check(ingest_text_nfc, "Caf\x65\xcc\x81", "Caf\xc3\xa9");
    check(ingest_text_nfc, "plain ascii", "plain ascii");
    /* Hangul jamo compose */
    check(ingest_text_nfc, "\xe1\x84\x80\xe1\x85\xa1", "\xea\xb0\x80");
    /* already NFC stays */
    check(ingest_text_nfc, "\xc3\xa9t\xc3\xa9", "\xc3\xa9t\xc3\xa9");
}

static void test_title(void **state)
{
    (void)state;
    check(ingest_text_title, "  Hello \t\n  world  ", "Hello world");
    /* NBSP, EN SPACE, IDEOGRAPHIC SPACE, LINE SEPARATOR, NEL */
    check(ingest_text_title, "a\xc2\xa0\xc2\xa0" "b\xe2\x80\x82" "c\xe3\x80\x80" "d\xe2\x80\xa8" "e\xc2\x85" "f",
          "a b c d e f");
    check(ingest_text_title, "\xc2\xa0 x \xe3\x80\x80", "x");
    check(ingest_text_title, " \t\r\n ", "");
    /* NFC and collapsing together */
    check(ingest_text_title, "Caf\x65\xcc\x81  au   lait", "Caf\xc3\xa9 au lait");
    /* zero width space is not whitespace: kept */
    check(ingest_text_title, "a\xe2\x80\x8b" "b", "a\xe2\x80\x8b" "b");
}

static void test_field(void **state)
{
    (void)state;
    check(ingest_text_field, "  Daily  News \n", "Daily  News");
    check(ingest_text_field, "\xe3\x80\x80site\xc2\xa0", "site");
    check(ingest_text_field, "", "");
}

static void test_body(void **state)
{
    (void)state;
    check(ingest_text_body, "\r\n  Line one.\r\nLine two.\r\n\r\nPara  two.  \r\n",
          "Line one.\nLine two.\n\nPara  two.");
    /* a lone CR is kept: only CR LF pairs are line ends */
    check(ingest_text_body, "a\rb", "a\rb");
    check(ingest_text_body, "x\r\r\ny", "x\r\ny");
}

static void test_lower(void **state)
{
    (void)state;
    check(ingest_text_lower, "EN-GB", "en-gb");
    check(ingest_text_lower, "\xc3\x89" "T\xc3\x89", "\xc3\xa9t\xc3\xa9");
}

static void test_trim_inplace(void **state)
{
    (void)state;
    char buf[] = "\xc2\xa0\xc2\xa0 \xe2\x80\x83";
    assert_int_equal(ingest_text_trim(buf, strlen(buf)), 0);
    assert_string_equal(buf, "");
    char b2[] = "  x\xc3\xa9  ";
    assert_int_equal(ingest_text_trim(b2, strlen(b2)), 3);
    assert_string_equal(b2, "x\xc3\xa9");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nfc),   cmocka_unit_test(test_title),
        cmocka_unit_test(test_field), cmocka_unit_test(test_body),
        cmocka_unit_test(test_lower), cmocka_unit_test(test_trim_inplace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
