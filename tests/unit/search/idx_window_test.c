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

/* A sub on a bitmap-coded block of ids d[0..n) not decoded (s_sub.bm, as
 * s_sub_decode leaves it); buf holds the code. */
static void s_fix_bitmap(s_sub *s, uint8_t *buf, const uint64_t *d, size_t n) {
    size_t len = idx_block_ids_put(buf, d, n, false);
    assert_int_equal(buf[0], IDX_IDS_BITMAP);
    memset(buf + len, 0xff, 8); /* the block's bytes after the code */
    s->n = n;
    s->i = 0;
    assert_ptr_equal(s_bm_open(s, buf + 1, buf + len + 8, d[0], n - 1), buf + len);
    assert_int_equal(s->bml, len - 1);
    assert_int_equal(s->docs[0], d[0]);
    assert_int_equal(s->docs[n - 1], d[n - 1]);
}

static uint64_t s_rand(uint64_t *x) {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Blocks of ids ~1-3 apart (bitmaps) in s_sub_raw's in-block steps
 * (s_bm_seek) and in s_window_count's pruned windows (s_window_bits, with
 * the other clause a bitmap too or decoded), against the decoded ids: each
 * step's doc and index, each window's count, end and the clauses' docs
 * after it; a single term's pruned window counted without decoding. A
 * bitmap with set bits past its last doc (corrupt) keeps the index inside
 * the block. */
static void test_window_bitmaps(void **state) {
    (void)state;
    s_fix *f = s_fix_new();
    s_sub *sub = f->sub;
    uint64_t seed = 88172645463325252ull;
    static uint8_t buf[2][1024];
    for (int round = 0; round < 300; round++) {
        uint64_t ids[2][IDX_BLOCK_DOCS], d = 1000 + s_rand(&seed) % 50;
        size_t n[2];
        bool decoded1 = round % 3 == 0;
        for (int k = 0; k < 2; k++) {
            n[k] = IDX_IDS_CODE_N + s_rand(&seed) % (IDX_BLOCK_DOCS - IDX_IDS_CODE_N + 1);
            ids[k][0] = d;
            for (size_t j = 1; j < n[k]; j++)
                ids[k][j] = ids[k][j - 1] + 1 + s_rand(&seed) % (k ? 2 : 3);
            memset(&sub[k], 0, sizeof sub[k]);
            if (k == 1 && decoded1) {
                sub[k].n = n[k];
                memcpy(sub[k].docs, ids[k], n[k] * sizeof ids[k][0]);
            } else {
                s_fix_bitmap(&sub[k], buf[k], ids[k], n[k]);
            }
        }
        if (round % 5 == 1) { /* one term's pruned window: the block's docs after d */
            uint64_t end;
            assert_int_equal(s_window_count(&f->c, f->req, 1, d, true, 0, &end), n[0] - 1);
            assert_int_equal(end, ids[0][n[0] - 1]);
            assert_int_equal(sub[0].i, n[0] - 1);
            assert_non_null(sub[0].bm); /* counted without decoding */
            continue;
        }
        /* s_sub_raw's steps on clause 0 (its block holds every target) */
        if (round % 2) {
            uint64_t t = d;
            while (t <= ids[0][n[0] - 1]) {
                size_t want = 0;
                while (ids[0][want] < t)
                    want++;
                assert_int_equal(s_sub_raw(&f->post[0], &sub[0], t), ids[0][want]);
                assert_int_equal(sub[0].i, want);
                t = ids[0][want] + 1 + s_rand(&seed) % 40;
            }
            continue;
        }
        /* the window: every common doc in (d, e], e the smaller last doc */
        uint64_t e = ids[0][n[0] - 1] < ids[1][n[1] - 1] ? ids[0][n[0] - 1] : ids[1][n[1] - 1], end;
        uint64_t want = 0;
        for (size_t a = 1; a < n[0] && ids[0][a] <= e; a++)
            for (size_t b = 1; b < n[1]; b++)
                want += ids[1][b] == ids[0][a];
        assert_int_equal(s_window_count(&f->c, f->req, 2, d, true, 0, &end), want);
        assert_int_equal(end, e);
        for (int k = 0; k < 2; k++) { /* on the first doc after e, or the last one */
            size_t at = 0;
            while (at + 1 < n[k] && ids[k][at] <= e)
                at++;
            assert_int_equal(sub[k].i, at);
            assert_int_equal(sub[k].docs[sub[k].i], ids[k][at]);
        }
    }
    /* set bits past the last doc: the index stays in the block */
    uint64_t ids[IDX_IDS_CODE_N];
    for (size_t j = 0; j < IDX_IDS_CODE_N; j++)
        ids[j] = 100 + j;
    memset(&sub[0], 0, sizeof sub[0]);
    s_fix_bitmap(&sub[0], buf[0], ids, IDX_IDS_CODE_N);
    buf[0][1] = 0xff; /* bits 0-7: ids 101-108, one past the last (107) */
    sub[0].docs[IDX_IDS_CODE_N - 1] = 108;
    s_sub_raw(&f->post[0], &sub[0], 108);
    assert_true(sub[0].i < sub[0].n);
    free(f);
}

/* An English term's block of 8 docs (IDX_IDS_CODE_N: coded ids, format 20)
 * whose Elias-Fano code of no low bits is corrupt: its unary part runs
 * ~8 KB of zeros, the 7th id after 65,528 of them. The decoder's 16-bit
 * lanes wrapped to 0 and idx_block_ids_get returned p + 2^61: s_sub_decode
 * took it, and s_sub_tf read the (0, 1) bitmap there (a segfault; review,
 * session 8). The block is refused as corrupt. */
static void test_decode_long_code(void **state) {
    (void)state;
    s_fix *f = s_fix_new();
    s_sub *s = &f->sub[0];
    s_post *p = &f->post[0];
    size_t len = 5 + 1 + 8190 + 1 + 1 + 16;
    uint8_t *blk = calloc(1, len), *q = blk;
    assert_non_null(blk);
    *q++ = IDX_IDS_CODE_N;    /* n */
    q += idx_tf_put(q, 1, 3); /* the largest frequencies */
    *q++ = 1;                 /* min title length */
    *q++ = 10;                /* min body length */
    *q++ = 0;                 /* Elias-Fano, no low bits */
    *q++ = 0x3F;              /* six ids, then two zeros */
    q += 8190;                /* 65,520 zeros */
    *q = 0x40;                /* six zeros, the 7th id */
    assert_int_equal(s_sub_decode(p, s, 1000, blk, len), -1);
    assert_int_equal(p->err, 1);
    free(blk);
    free(f);
}

/* A block of 9 docs whose (0, 1) bitmap marks bits 9-15 (no such docs:
 * corrupt) and whose two codes end the block. s_sub_ra counted those bits
 * as marked docs, so 2 codes where doc 8's is the 9th: s_sub_tf_at read
 * pp[8] and s_sub_tf_sum (a phrase's skip) 8 bytes at pp, past the block
 * (ASan: heap-buffer-overflow; review, session 8). Such a block is not read
 * in place (ra 2); s_sub_tf finds it truncated. */
static void test_ra_bits_past_n(void **state) {
    (void)state;
    s_fix *f = s_fix_new();
    s_sub *s = &f->sub[0];
    s_post *p = &f->post[0];
    static const uint8_t one[2] = {0x00, 0xFE};
    uint8_t *codes = malloc(2); /* exactly the block's last bytes */
    assert_non_null(codes);
    codes[0] = codes[1] = 0x04; /* (0, 1): simple codes */
    s->n = 9;
    s->one = one;
    s->pp = codes;
    s->pend = codes + 2;
    uint32_t tt = 7, tb = 7;
    s_sub_tf_at(p, s, 8, &tt, &tb);
    assert_int_equal(s->ra, 2);
    assert_int_equal(p->err, 1); /* s_sub_tf: 9 codes do not fit in 2 bytes */
    assert_int_equal(tt, 0);
    assert_int_equal(tb, 0);
    /* the same bitmap without the bits past doc 8: read in place */
    static const uint8_t one2[2] = {0xFE, 0x00}; /* docs 1-7 marked: 2 codes */
    memset(s, 0, S_SUB_HEAD);
    s->n = 9;
    s->one = one2;
    s->pp = codes;
    s->pend = codes + 2;
    s_sub_tf_at(p, s, 8, &tt, &tb);
    assert_int_equal(s->ra, 1);
    assert_int_equal(tt, 0);
    assert_int_equal(tb, 1);
    assert_int_equal(s_sub_tf_sum(s, 0, 8), 1 + 7);
    free(codes);
    free(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_falling_ids),
        cmocka_unit_test(test_window_count),
        cmocka_unit_test(test_window_one),
        cmocka_unit_test(test_window_bitmaps),
        cmocka_unit_test(test_decode_long_code),
        cmocka_unit_test(test_ra_bits_past_n),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
