/* ingest_text: NFC, Unicode whitespace, trimming, CRLF, lower case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_text.h"

#include <utf8proc.h>

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

/* ingest_text_nfc copies text it judges already in NFC instead of mapping it:
 * it must give exactly what utf8proc's NFC gives, for every code point, for
 * every pair of code points below U+0300, and for random mixed strings. */
static size_t s_enc(uint32_t cp, char *out)
{
    return (size_t)utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)out);
}

static void s_nfc_same(const char *in, size_t len)
{
    utf8proc_uint8_t *want = NULL;
    utf8proc_ssize_t wn = utf8proc_map((const utf8proc_uint8_t *)in, (utf8proc_ssize_t)len, &want,
                                       UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    assert_true(wn >= 0);
    size_t n = 0;
    char *got = ingest_text_nfc(in, len, &n);
    assert_non_null(got);
    if (n != (size_t)wn || memcmp(got, want, n) != 0)
        fail_msg("NFC differs from utf8proc for %zu bytes starting %02x %02x %02x %02x", len,
                 (unsigned char)in[0], len > 1 ? (unsigned char)in[1] : 0,
                 len > 2 ? (unsigned char)in[2] : 0, len > 3 ? (unsigned char)in[3] : 0);
    free(got);
    free(want);
}

static void test_nfc_fast_path(void **state)
{
    (void)state;
    char buf[64];
    /* every scalar value, alone and after a base letter */
    for (uint32_t cp = 1; cp <= 0x10ffff; cp++) {
        if (cp >= 0xd800 && cp <= 0xdfff)
            continue;
        size_t n = s_enc(cp, buf);
        s_nfc_same(buf, n);
        buf[0] = 'a';
        n = 1 + s_enc(cp, buf + 1);
        s_nfc_same(buf, n);
    }
    /* every pair below U+0300 (the range decided without a table) */
    for (uint32_t a = 1; a < 0x300; a++)
        for (uint32_t b = 1; b < 0x300; b++) {
            size_t n = s_enc(a, buf);
            n += s_enc(b, buf + n);
            s_nfc_same(buf, n);
        }
    /* every code point that can start a composition, followed by every code
     * point above U+02FF that the quick check accepts and that takes part in
     * a composition or has a canonical decomposition (the ones where a
     * mistake could hide): no such pair may change under NFC */
    uint32_t *firsts = malloc(0x110000 * sizeof *firsts), *fast = malloc(0x110000 * sizeof *fast);
    assert_non_null(firsts);
    assert_non_null(fast);
    size_t nf = 0, nfast = 0, nprecomposed = 0;
    for (uint32_t cp = 1; cp <= 0x10ffff; cp++) {
        if (cp >= 0xd800 && cp <= 0xdfff)
            continue;
        const utf8proc_property_t *pr = utf8proc_get_property((utf8proc_int32_t)cp);
        bool first = pr->comb_index != UINT16_MAX && !(pr->comb_index & 0x8000);
        bool canon = pr->decomp_seqindex != UINT16_MAX && pr->decomp_type == 0;
        if (first)
            firsts[nf++] = cp;
        size_t n = s_enc(cp, buf);
        if (cp >= 0x300 && (first || canon) && ingest_text_nfc_quick(buf, n)) {
            fast[nfast++] = cp;
            nprecomposed += canon;
        }
    }
    assert_true(nf > 300);            /* sanity: utf8proc marks the firsts as read above */
    assert_true(nfast > 500);         /* ... Cyrillic/Greek letters are among the fast ones */
    assert_true(nprecomposed > 300);  /* ... and precomposed letters (689 in utf8proc 2.8) */
    for (size_t i = 0; i < nf; i++)
        for (size_t j = 0; j < nfast; j++) {
            size_t n = s_enc(firsts[i], buf);
            n += s_enc(fast[j], buf + n);
            s_nfc_same(buf, n);
        }
    free(firsts);
    free(fast);
    /* the quick check: what it accepts and what it must not */
    assert_true(ingest_text_nfc_quick("\xd0\xb9\xd1\x91 caf\xc3\xa9 \xe4\xb8\xad", 14));
    assert_false(ingest_text_nfc_quick("e\xcc\x81", 3));     /* a combining mark */
    assert_false(ingest_text_nfc_quick("\xe2\x84\xab", 3)); /* ANGSTROM SIGN: a singleton */
    assert_false(ingest_text_nfc_quick("\xea\xb0\x80", 3)); /* Hangul */
    assert_false(ingest_text_nfc_quick("\xff", 1));           /* invalid UTF-8 */
    /* Cyrillic text takes the fast path and comes back unchanged */
    check(ingest_text_nfc, "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82",
          "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82");
    /* and \u0438 + combining breve still composes to \u0439 */
    check(ingest_text_nfc, "\xd0\xb8\xcc\x86", "\xd0\xb9");
    /* random strings over a mix of stable and unstable code points */
    static const uint32_t pool[] = {'a', 'e', 'o', ' ', 0xe9, 0x300, 0x301, 0x308, 0x327, 0x438,
                                    0x306, 0x3b1, 0x342, 0x2019, 0x201c, 0x2026, 0x4e2d, 0x6587,
                                    0x3001, 0x304b, 0x3099, 0x1100, 0x1161, 0x11a8, 0xac00,
                                    0xf900, 0x2000, 0x212b, 0xff21, 0x1f600, 0x0bbe, 0x0bc6};
    uint32_t x = 12345;
    for (int t = 0; t < 20000; t++) {
        size_t n = 0, k = 1 + (size_t)(t % 8);
        for (size_t i = 0; i < k; i++) {
            x = x * 1103515245u + 12345u;
            n += s_enc(pool[(x >> 16) % (sizeof pool / sizeof pool[0])], buf + n);
        }
        s_nfc_same(buf, n);
    }
    /* what the fast path is for: such text comes back unchanged */
    check(ingest_text_nfc, "\xe2\x80\x9cNa\xc3\xafve\xe2\x80\x9d \xe4\xb8\xad\xe6\x96\x87",
          "\xe2\x80\x9cNa\xc3\xafve\xe2\x80\x9d \xe4\xb8\xad\xe6\x96\x87");
    /* and text that must change still does */
    check(ingest_text_nfc, "\xe2\x80\x9c" "e\xcc\x81", "\xe2\x80\x9c\xc3\xa9");
    check(ingest_text_nfc, "\xe2\x84\xab", "\xc3\x85"); /* ANGSTROM SIGN -> A WITH RING */
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
        cmocka_unit_test(test_nfc),   cmocka_unit_test(test_nfc_fast_path),
        cmocka_unit_test(test_title),
        cmocka_unit_test(test_field), cmocka_unit_test(test_body),
        cmocka_unit_test(test_lower), cmocka_unit_test(test_trim_inplace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
