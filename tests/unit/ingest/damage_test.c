/* ingest_damage: '??', U+FFFD and mojibake detection, and its speed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest_damage.h"

static ingest_damage scan(const char *s)
{
    ingest_damage d;
    ingest_damage_find(s, strlen(s), &d);
    return d;
}

static void test_lost(void **state)
{
    (void)state;
    ingest_damage d = scan("the values ?\?of law and in?\?the end");
    assert_int_equal(d.count[INGEST_DAMAGE_LOST], 2);
    assert_int_equal(d.first[INGEST_DAMAGE_LOST], 11);
    /* a letter on one side is enough, several '?' are one place */
    d = scan("Really?\?? yes");
    assert_int_equal(d.count[INGEST_DAMAGE_LOST], 1);
    /* no letter next to it: punctuation, not damage */
    d = scan("What ?\? ! and 1?\?2 and a single ? here");
    assert_int_equal(d.count[INGEST_DAMAGE_LOST], 0);
    /* letters of other scripts count */
    d = scan("\xe4\xb8\xad?\?");
    assert_int_equal(d.count[INGEST_DAMAGE_LOST], 1);
    d = scan("?\?");
    assert_int_equal(d.count[INGEST_DAMAGE_LOST], 0);
}

static void test_fffd_mojibake(void **state)
{
    (void)state;
    ingest_damage d = scan("ok \xef\xbf\xbd and \xef\xbf\xbd");
    assert_int_equal(d.count[INGEST_DAMAGE_FFFD], 2);
    assert_int_equal(d.first[INGEST_DAMAGE_FFFD], 3);
    /* Ã© Ã¨ â€™ â€œ Ã¼ */
    d = scan("caf\xc3\x83\xc2\xa9 \xc3\x83\xc2\xa8 it\xc3\xa2\xe2\x82\xac\xe2\x84\xa2s "
             "\xc3\xa2\xe2\x82\xac\xc5\x93q \xc3\x83\xc2\xbc");
    assert_int_equal(d.count[INGEST_DAMAGE_MOJIBAKE], 5);
    assert_int_equal(d.first[INGEST_DAMAGE_MOJIBAKE], 3);
    /* correct text with these letters is not mojibake */
    d = scan("caf\xc3\xa9 \xc3\xa2ge \xc3\x83O Cr\xc3\xa8me \xc3\x83\xc3\x97");
    assert_int_equal(d.count[INGEST_DAMAGE_MOJIBAKE], 0);
    assert_int_equal(d.count[INGEST_DAMAGE_FFFD], 0);
    assert_int_equal(d.count[INGEST_DAMAGE_LOST], 0);
}

static void test_describe(void **state)
{
    (void)state;
    const char *s = "Its essence lies in integrating the legal culture?\?of the people";
    ingest_damage d;
    ingest_damage_find(s, strlen(s), &d);
    char buf[512];
    assert_int_equal(ingest_damage_describe("body", s, strlen(s), &d, INGEST_DAMAGE_LOST, buf,
                                            sizeof buf), 0);
    assert_non_null(strstr(buf, "body: 1 place where characters look lost"));
    assert_non_null(strstr(buf, "first at byte 49"));
    assert_non_null(strstr(buf, "culture?\?of the"));
    assert_int_equal(ingest_damage_describe("body", s, strlen(s), &d, INGEST_DAMAGE_FFFD, buf,
                                            sizeof buf), -1);
    /* context never cuts a character in half */
    const char *m = "\xe4\xb8\xad\xe4\xb8\xad\xe4\xb8\xad\xe4\xb8\xad\xe4\xb8\xad\xe4\xb8\xad"
                    "\xef\xbf\xbd\xe4\xb8\xad\xe4\xb8\xad\xe4\xb8\xad\xe4\xb8\xad\xe4\xb8\xad\xe4\xb8\xad";
    ingest_damage_find(m, strlen(m), &d);
    assert_int_equal(ingest_damage_describe("title", m, strlen(m), &d, INGEST_DAMAGE_FFFD, buf,
                                            sizeof buf), 0);
    char *q = strchr(buf, '\'');
    assert_non_null(q);
    /* the quoted context is whole 3-byte characters */
    assert_int_equal((strlen(q) - 2) % 3, 0);
}

static void test_one_mib(void **state)
{
    (void)state;
    size_t n = 1024 * 1024;
    char *b = malloc(n + 1);
    assert_non_null(b);
    const char *para = "The quick brown fox jumps over the lazy dog. Caf\xc3\xa9 cr\xc3\xa8me. ";
    size_t pl = strlen(para), w = 0;
    while (w + pl < n) {
        memcpy(b + w, para, pl);
        w += pl;
    }
    memset(b + w, 'x', n - w);
    b[n] = '\0';
    memcpy(b + 812, "?\?", 2);            /* lost, after 'x' or a letter */
    memcpy(b + n - 100, "\xef\xbf\xbd", 3); /* U+FFFD near the end */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ingest_damage d;
    for (int i = 0; i < 10; i++)
        ingest_damage_find(b, n, &d);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = ((double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6) / 10;
    print_message("damage scan of 1 MiB: %.2f ms\n", ms);
    assert_true(d.count[INGEST_DAMAGE_LOST] >= 1);
    assert_int_equal(d.first[INGEST_DAMAGE_LOST], 812);
    assert_int_equal(d.count[INGEST_DAMAGE_FFFD], 1);
    assert_int_equal(d.first[INGEST_DAMAGE_FFFD], n - 100);
    assert_int_equal(d.count[INGEST_DAMAGE_MOJIBAKE], 0);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lost),
        cmocka_unit_test(test_fffd_mojibake),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_one_mib),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
