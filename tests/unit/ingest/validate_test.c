/* ingest_validate: limits, boundaries, normalization, keys, bad strings per item. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_key.h"
#include "ingest_validate.h"

#define NOW_MS 1767225600000LL /* 2026-01-01 */

static char *rep(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static int prep(const Bulletin__Article *a, ingest_doc *d)
{
    ingest_doc_init(d);
    return ingest_article_prepare(a, NOW_MS, d);
}

/* Expect `a` accepted, or rejected with an error containing `needle`. */
static void expect(const Bulletin__Article *a, const char *needle)
{
    ingest_doc d;
    int rc = prep(a, &d);
    if (!needle) {
        if (rc != 0)
            fail_msg("unexpected rejection: %s", d.error ? d.error : "?");
    } else {
        assert_int_equal(rc, 1);
        assert_non_null(d.error);
        if (!strstr(d.error, needle))
            fail_msg("error '%s' does not contain '%s'", d.error, needle);
    }
    ingest_doc_clear(&d);
}

static void test_title_limits(void **state)
{
    (void)state;
    Bulletin__Article a = BULLETIN__ARTICLE__INIT;
    a.title = rep('t', 1000);
    expect(&a, NULL);
    free(a.title);
    a.title = rep('t', 1001);
    expect(&a, "title is 1001 bytes after trimming and collapsing whitespace; the limit is 1000");
    free(a.title);
    /* 1000 bytes plus whitespace that normalization removes: fine */
    char *t = rep('t', 1000);
    a.title = malloc(1010);
    snprintf(a.title, 1010, "  %.500s \n\t %s  ", t, t + 500);
    ingest_doc d;
    assert_int_equal(prep(&a, &d), 1); /* 500 + 1 space + 500 = 1001 */
    ingest_doc_clear(&d);
    snprintf(a.title, 1010, "  %.499s \n\t %s  ", t, t + 500);
    assert_int_equal(prep(&a, &d), 0);
    assert_int_equal(strlen(d.art.title), 1000);
    ingest_doc_clear(&d);
    free(a.title);
    free(t);
    a.title = "t";
    expect(&a, NULL);
    a.title = " \t\xc2\xa0\n";
    expect(&a, "title is empty");
    a.title = "";
    expect(&a, "title is empty");
    a.title = NULL;
    expect(&a, "title is empty");
}

static void test_field_limits(void **state)
{
    (void)state;
    Bulletin__Article a = BULLETIN__ARTICLE__INIT;
    a.title = "T";
    char *ok = rep('x', 256), *big = rep('x', 257);
    a.site = ok;
    expect(&a, NULL);
    a.site = big;
    expect(&a, "site is 257 bytes after trimming; the limit is 256");
    a.site = "";
    a.category = ok;
    expect(&a, NULL);
    a.category = big;
    expect(&a, "category is 257 bytes");
    a.category = "";
    a.author = ok;
    expect(&a, NULL);
    a.author = big;
    expect(&a, "author is 257 bytes");
    a.author = "";
    free(ok);
    free(big);

    char *k = rep('k', 2048), *kb = rep('k', 2049);
    a.key = k;
    expect(&a, NULL);
    a.key = kb;
    expect(&a, "key is 2049 bytes after trimming; the limit is 2048");
    a.key = "";
    free(k);
    free(kb);
    char *u = rep('p', 2048), *ub = rep('p', 2049);
    memcpy(u, "http://a.org/", 13);
    memcpy(ub, "http://a.org/", 13);
    a.url = u;
    expect(&a, NULL);
    a.url = ub;
    expect(&a, "url is 2049 bytes");
    a.url = "";
    free(u);
    free(ub);

    char *l = rep('a', 35), *lb = rep('a', 36);
    a.lang = l;
    expect(&a, NULL);
    a.lang = lb;
    expect(&a, "lang is 36 bytes");
    a.lang = "";
    free(l);
    free(lb);

    char *b = rep('b', 1024 * 1024), *bb = rep('b', 1024 * 1024 + 1);
    a.body = b;
    expect(&a, NULL);
    a.body = bb;
    expect(&a, "body is 1048577 bytes after trimming; the limit is 1048576");
    /* far over the limit: refused before normalization, same kind of sentence */
    char *huge = rep('b', 8 * 1024 * 1024);
    a.body = huge;
    expect(&a, "body is 8388608 bytes; the limit is 1048576");
    free(huge);
    free(b);
    free(bb);
}

static void test_tags(void **state)
{
    (void)state;
    Bulletin__Article a = BULLETIN__ARTICLE__INIT;
    a.title = "T";
    char *tags[40];
    char buf[40][8];
    for (int i = 0; i < 40; i++) {
        snprintf(buf[i], sizeof buf[i], "t%d", i);
        tags[i] = buf[i];
    }
    a.tags = tags;
    a.n_tags = 32;
    expect(&a, NULL);
    a.n_tags = 33;
    expect(&a, "the article has 33 tags; the limit is 32");
    char *t64 = rep('g', 64), *t65 = rep('g', 65);
    char *one[1] = {t64};
    a.tags = one;
    a.n_tags = 1;
    expect(&a, NULL);
    one[0] = t65;
    expect(&a, "tags[0] is 65 bytes after trimming; the limit is 64");
    one[0] = "  ";
    expect(&a, "tags[0] is empty");
    free(t64);
    free(t65);
    /* trimmed, NFC, deduplicated keeping order */
    char *dup[] = {" news ", "sport", "news", "caf\x65\xcc\x81", "caf\xc3\xa9", "sport "};
    a.tags = dup;
    a.n_tags = 6;
    ingest_doc d;
    assert_int_equal(prep(&a, &d), 0);
    assert_int_equal(d.art.n_tags, 3);
    assert_string_equal(d.art.tags[0], "news");
    assert_string_equal(d.art.tags[1], "sport");
    assert_string_equal(d.art.tags[2], "caf\xc3\xa9");
    ingest_doc_clear(&d);
}

static void test_published_at(void **state)
{
    (void)state;
    Bulletin__Article a = BULLETIN__ARTICLE__INIT;
    a.title = "T";
    a.published_at = 0;
    ingest_doc d;
    assert_int_equal(prep(&a, &d), 0);
    assert_int_equal(d.art.published_at, 0); /* absent stays absent */
    ingest_doc_clear(&d);
    a.published_at = INGEST_MIN_PUBLISHED_MS;
    expect(&a, NULL);
    a.published_at = INGEST_MIN_PUBLISHED_MS - 1;
    expect(&a, "is before 1990-01-01");
    a.published_at = -5;
    expect(&a, "is before 1990-01-01");
    a.published_at = NOW_MS + INGEST_MAX_FUTURE_MS;
    expect(&a, NULL);
    a.published_at = NOW_MS + INGEST_MAX_FUTURE_MS + 1;
    expect(&a, "more than one day in the future");
}

static void test_normalization(void **state)
{
    (void)state;
    Bulletin__Article a = BULLETIN__ARTICLE__INIT;
    a.title = "\n  Caf\x65\xcc\x81\xc2\xa0\xc2\xa0news\t\ttoday \r\n";
    a.body = "\r\n\r\n  First line.\r\nSecond  line.\r\n\r\n";
    a.site = "  Daily News  ";
    a.category = "\tWorld\n";
    a.author = " A. Writer ";
    a.lang = " ZH-Hant ";
    a.key = "  my-key  ";
    ingest_doc d;
    assert_int_equal(prep(&a, &d), 0);
    assert_string_equal(d.art.title, "Caf\xc3\xa9 news today");
    assert_string_equal(d.art.body, "First line.\nSecond  line.");
    assert_string_equal(d.art.site, "Daily News");
    assert_string_equal(d.art.category, "World");
    assert_string_equal(d.art.author, "A. Writer");
    assert_string_equal(d.art.lang, "zh-hant");
    assert_string_equal(d.art.key, "my-key");
    assert_string_equal(d.art.url, "");
    assert_string_equal(d.art.raw, "");
    assert_int_equal(d.n_warnings, 0);
    ingest_doc_clear(&d);
}

static void test_keys(void **state)
{
    (void)state;
    Bulletin__Article a = BULLETIN__ARTICLE__INIT;
    a.title = "T";
    a.site = "S";
    a.body = "B";
    ingest_doc d;
    /* explicit key wins over url */
    a.key = "explicit";
    a.url = "HTTP://X.org/p";
    assert_int_equal(prep(&a, &d), 0);
    assert_string_equal(d.art.key, "explicit");
    assert_string_equal(d.art.url, "http://x.org/p");
    ingest_doc_clear(&d);
    /* url -> canonical url */
    a.key = "   ";
    assert_int_equal(prep(&a, &d), 0);
    assert_string_equal(d.art.key, "http://x.org/p");
    ingest_doc_clear(&d);
    /* relative url: kept as written, with a warning */
    a.url = "x.org/p";
    assert_int_equal(prep(&a, &d), 0);
    assert_string_equal(d.art.key, "x.org/p");
    assert_int_equal(d.n_warnings, 1);
    assert_non_null(strstr(d.warnings[0], "not an absolute URL"));
    ingest_doc_clear(&d);
    /* hash of normalized site/title/body: whitespace differences give the same key */
    a.url = "";
    char want[INGEST_KEY_HASH_LEN];
    assert_int_equal(ingest_key_hash("S", "T", "B", want), 0);
    assert_int_equal(prep(&a, &d), 0);
    assert_string_equal(d.art.key, want);
    ingest_doc_clear(&d);
    a.title = "  T \n";
    a.body = "\r\nB  ";
    a.site = " S";
    assert_int_equal(prep(&a, &d), 0);
    assert_string_equal(d.art.key, want);
    ingest_doc_clear(&d);
}

static void test_store_fields_ignored(void **state)
{
    (void)state;
    Bulletin__Article a = BULLETIN__ARTICLE__INIT;
    a.title = "T";
    a.id = 7;
    a.seq = 9;
    a.updated_at = 1;
    uint8_t h[4] = {1, 2, 3, 4};
    a.content_hash.data = h;
    a.content_hash.len = 4;
    ingest_doc d;
    assert_int_equal(prep(&a, &d), 0);
    assert_int_equal(d.art.id, 0);
    assert_int_equal(d.art.seq, 0);
    assert_int_equal(d.art.updated_at, 0);
    assert_int_equal(d.art.content_hash.len, 0);
    assert_int_equal(d.n_warnings, 1);
    assert_non_null(strstr(d.warnings[0], "ignored id, seq, updated_at, content_hash"));
    ingest_doc_clear(&d);
}

static void test_no_item(void **state)
{
    (void)state;
    Bulletin__IngestItem item = BULLETIN__INGEST_ITEM__INIT;
    ingest_doc d;
    ingest_doc_init(&d);
    assert_int_equal(ingest_item_prepare(&item, NOW_MS, &d), 1);
    assert_non_null(strstr(d.error, "neither an article nor a raw document"));
    assert_string_equal(d.art.key, "");
    ingest_doc_clear(&d);
    ingest_doc_clear(&d); /* safe twice */
}

/* Pack a Request with 3 articles; item 1 gets a bad byte in its body (0x01
 * marker replaced by `bad`), item 2 in a tag. */
static void bad_strings(uint8_t bad, const char *needle)
{
    Bulletin__Article a[3];
    Bulletin__IngestItem it[3], *itp[3];
    char *tags[] = {"ok", "t\x01g"};
    for (int i = 0; i < 3; i++) {
        bulletin__article__init(&a[i]);
        a[i].title = "Title";
        a[i].body = i == 1 ? "bo\x01" "dy" : "body";
        if (i == 2) {
            a[i].tags = tags;
            a[i].n_tags = 2;
        }
        bulletin__ingest_item__init(&it[i]);
        it[i].item_case = BULLETIN__INGEST_ITEM__ITEM_ARTICLE;
        it[i].article = &a[i];
        itp[i] = &it[i];
    }
    Bulletin__IngestRequest ir = BULLETIN__INGEST_REQUEST__INIT;
    ir.n_items = 3;
    ir.items = itp;
    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    req.body_case = BULLETIN__REQUEST__BODY_INGEST;
    req.ingest = &ir;
    size_t n = protobuf_c_message_get_packed_size(&req.base);
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    protobuf_c_message_pack(&req.base, buf);
    int marks = 0;
    for (size_t i = 0; i < n; i++)
        if (buf[i] == 0x01 && i > 0 && buf[i - 1] != 0x0a && buf[i - 1] != 0x08) {
            /* only the markers inside strings: they follow a letter */
            if ((buf[i - 1] >= 'a' && buf[i - 1] <= 'z')) {
                buf[i] = bad;
                marks++;
            }
        }
    assert_int_equal(marks, 2);
    ingest_doc docs[3];
    for (int i = 0; i < 3; i++)
        ingest_doc_init(&docs[i]);
    assert_int_equal(ingest_check_strings(buf, n, docs, 3), 2);
    assert_null(docs[0].error);
    assert_non_null(docs[1].error);
    assert_non_null(strstr(docs[1].error, "article.body is not valid UTF-8 or contains a NUL byte (at byte 2)"));
    assert_non_null(docs[2].error);
    assert_non_null(strstr(docs[2].error, needle));
    /* a pre-rejected doc stays rejected through prepare */
    assert_int_equal(ingest_item_prepare(&it[1], NOW_MS, &docs[1]), 1);
    assert_int_equal(ingest_item_prepare(&it[0], NOW_MS, &docs[0]), 0);
    for (int i = 0; i < 3; i++)
        ingest_doc_clear(&docs[i]);
    free(buf);
}

static void test_bad_strings(void **state)
{
    (void)state;
    bad_strings(0x00, "article.tags[1] is not valid UTF-8 or contains a NUL byte (at byte 1)");
    bad_strings(0xff, "article.tags[1] is not valid UTF-8");
    bad_strings(0xc0, "article.tags[1]");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_title_limits),     cmocka_unit_test(test_field_limits),
        cmocka_unit_test(test_tags),             cmocka_unit_test(test_published_at),
        cmocka_unit_test(test_normalization),    cmocka_unit_test(test_keys),
        cmocka_unit_test(test_store_fields_ignored), cmocka_unit_test(test_no_item),
        cmocka_unit_test(test_bad_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
