/* s_window_count (idx_search.c, static: included here) on blocks whose doc
 * ids do not rise, as a corrupt block decodes (a varint delta of 0 or one
 * that wraps, an Elias-Fano code whose low parts fall: the decoders do not
 * check the order). Its table path indexes s_wtab by docs[j] - d - 1; the
 * offsets are masked to the table, so such a block gives a wrong count, never
 * a write outside it (before the mask: a segfault here, or with ids near d a
 * silent write ~1 MB before the thread's TLS block; review, session 7). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "idx_search.c"
#include "test_rand.h"

/* Two clauses of one sub each, as s_window_count reads them. */
typedef struct {
    s_sub sub[2];
    s_post post[2];
    s_matcher alt[2];
    s_cl req[2];
    s_ctx c;
} s_fix;

static s_fix *s_fix_new(void) {
    s_fix *f = calloc(1, sizeof *f);
    assert_non_null(f);
    for (int k = 0; k < 2; k++) {
        f->post[k].subs = &f->sub[k];
        f->post[k].nsub = 1;
        f->alt[k].posts = &f->post[k];
        f->alt[k].np = 1;
        f->req[k].alts = &f->alt[k];
        f->req[k].na = 1;
    }
    return f;
}

static void test_window_falling_ids(void **state) {
    (void)state;
    s_fix *f = s_fix_new();
    s_sub *sub = f->sub;
    uint64_t bases[3] = {(uint64_t)1 << 41, 1000000, 20};
    for (int r = 0; r < 3; r++) {
        uint64_t d = bases[r], end;
        /* clause 0: d, d + 1 .. d + 10 (well formed) */
        sub[0].n = 11;
        sub[0].i = 0;
        for (int i = 0; i < 11; i++)
            sub[0].docs[i] = d + (uint64_t)i;
        /* clause 1: on d, then an id far below d, then d, then d + 1000 */
        sub[1].n = 4;
        sub[1].i = 0;
        sub[1].docs[0] = d;
        sub[1].docs[1] = 5;
        sub[1].docs[2] = d;
        sub[1].docs[3] = d + 1000;
        uint64_t n = s_window_count(&f->c, f->req, 2, d, true, 0, &end);
        assert_true(n <= 10); /* at most clause 0's docs after d */
        assert_true(end >= d);
        /* clause 0 falls instead: its chunk's last id below d */
        sub[0].docs[5] = 3;
        sub[0].i = 0;
        sub[1].i = 0;
        sub[1].docs[1] = d + 2;
        sub[1].docs[2] = d + 3;
        n = s_window_count(&f->c, f->req, 2, d, true, 0, &end);
        assert_true(n <= 10);
    }
    free(f);
}

/* Well-formed blocks: the count is the intersection's size after d. */
static void test_window_count(void **state) {
    (void)state;
    s_fix *f = s_fix_new();
    s_sub *sub = f->sub;
    uint64_t d = 5000, end;
    sub[0].n = 100;
    sub[1].n = 50;
    for (int i = 0; i < 100; i++)
        sub[0].docs[i] = d + 2 * (uint64_t)i; /* d, d + 2, ..., d + 198 */
    for (int i = 0; i < 50; i++)
        sub[1].docs[i] = d + 3 * (uint64_t)i; /* d, d + 3, ..., d + 147 */
    sub[0].i = sub[1].i = 0;
    /* common after d: multiples of 6 in (0, 147]: 6, 12, ..., 144 = 24 */
    assert_int_equal(s_window_count(&f->c, f->req, 2, d, true, 0, &end), 24);
    assert_int_equal(end, d + 147);
    free(f);
}

/* s_window_one (a single term's window) stops at the same doc as a loop
 * over s_sub_doc_bound, for worsts that equal a doc's bound exactly (and the
 * doubles just above and below it), with title frequencies below and at or
 * above S_ONE_TT, body frequencies below and above 64, and a second call on
 * the same block and worst (the kept limits). A limit one too high, or a
 * doc past the limits taken as below them, stops late. */
static void test_window_one(void **state) {
    (void)state;
    s_fix *f = s_fix_new();
    s_sub *s = &f->sub[0];
    s_post *p = &f->post[0];
    f->c.k1 = 1.2;
    f->c.b = 0.75;
    f->c.wt = 2.0;
    f->c.avg_t = 4.5;
    f->c.avg_b = 180.0;
    p->idf = 2.75;
    unsigned seed = 7;
    s->n = IDX_BLOCK_DOCS;
    s->tf_ok = true;
    static const uint64_t ML[][2] = {{1, 3}, {3, 40}, {12, 900}, {0, 0}};
    for (size_t b = 0; b < sizeof ML / sizeof ML[0]; b++) {
        s_blocks_decoded++; /* a new block: its limits are found again */
        s->h.minlt = ML[b][0];
        s->h.minlb = ML[b][1];
        s->dbt_ok = 0;
        s->dbb_ok = 0;
        for (size_t i = 0; i < s->n; i++) {
            unsigned r = test_rand(&seed) % 16;
            s->tft[i] = r < 10 ? 0 : r < 13 ? 1 : r < 15 ? 2 + test_rand(&seed) % 2 : 4 + test_rand(&seed) % 3;
            s->tfb[i] = test_rand(&seed) % 8 ? test_rand(&seed) % 70 : 64 + test_rand(&seed) % 40;
            if (!s->tft[i] && !s->tfb[i])
                s->tfb[i] = 1;
        }
        for (int t = 0; t < 200; t++) {
            size_t j = test_rand(&seed) % s->n, from = test_rand(&seed) % s->n;
            double w = s_sub_doc_bound(&f->c, p, s, s->tft[j], s->tfb[j], false);
            double ws[3] = {w, nextafter(w, 0), nextafter(w, INFINITY)};
            for (int k = 0; k < 3; k++) {
                size_t want = from;
                while (want < s->n && s_sub_doc_bound(&f->c, p, s, s->tft[want], s->tfb[want], false) < ws[k])
                    want++;
                assert_int_equal(s_window_one(&f->c, p, s, from, s->n, ws[k]), want);
                assert_int_equal(s_window_one(&f->c, p, s, from, s->n, ws[k]), want); /* kept limits */
            }
        }
    }
    free(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_falling_ids),
        cmocka_unit_test(test_window_count),
        cmocka_unit_test(test_window_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
