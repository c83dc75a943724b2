/*
 * idx_terms_test: the typo scan's in-memory term lists (idx_terms.h) against
 * the lexicon pages they are read from: every slice of every segment holds
 * the same terms in the same order (a walk of its trie rebuilds them), every
 * node's skip (idx_tslice_skip) is the first node after its subtree, the
 * cache keeps, reuses, drops and caps slices as documented, and a seek
 * (idx_lexit_seek) lands where a binary search of the terms does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idx.h"
#include "idx_int.h"
#include "idx_terms.h"
#include "lmdb_tmp.h"
#include "test_rand.h"

static MDB_env *env;
static idx *ix;
static char dir[64];
static unsigned rng = 777;

static unsigned rnd(void) {
    return test_rand(&rng);
}

/* Words over few letters (long shared prefixes, many per prefix) and some
 * long ones, in several segments; one document of 4,000 words "bbk" + 8
 * letters (a subtree of more than IDX_TNODE_FAR nodes). */
static int setup(void **state) {
    (void)state;
    strcpy(dir, "/tmp/idx_terms_XXXXXX");
    env = lmdb_tmp_open(dir, 16, 1ull << 28);
    idx_options o = {.b = -1, .max_pending_docs = 300, .merge_factor = 8};
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(idx_open(txn, &o, &ix), IDX_OK);
    static const char alpha[] = "bcdklmrt";
    static char body[64 * 1024];
    for (uint64_t id = 1; id <= 1000; id++) {
        size_t bl = 0;
        for (int w = 0; id == 1000 && w < 4000; w++) {
            memcpy(body + bl, "bbk", 3);
            bl += 3;
            for (size_t k = 0; k < 8; k++) /* high bits: the low ones repeat soon */
                body[bl++] = alpha[(rnd() >> 16) % (sizeof alpha - 1)];
            body[bl++] = ' ';
        }
        for (int w = 0; id < 1000 && w < 30; w++) {
            size_t l = 2 + rnd() % (w == 0 && id % 50 == 0 ? 180 : 12);
            for (size_t k = 0; k < l; k++)
                body[bl++] = alpha[rnd() % (k < 2 ? 3 : sizeof alpha - 1)];
            body[bl++] = ' ';
        }
        body[bl] = 0;
        idx_doc d = {.title = "t", .title_len = 1, .body = body, .body_len = bl, .site = "s",
                     .category = "c", .published_at = 1};
        assert_int_equal(idx_put(ix, txn, id, &d, NULL), IDX_OK);
    }
    assert_int_equal(idx_flush(ix, txn), IDX_OK);
    assert_int_equal(mdb_txn_commit(txn), 0);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    idx_close(&ix);
    lmdb_tmp_close(&env, dir);
    return 0;
}

typedef struct {
    uint8_t t[IDX_TERM_MAX];
    size_t l;
    int64_t df; /* the lexicon's */
} term;

/* The reference: the lexicon's terms of seg starting with pre, in order. */
static size_t s_ref(MDB_cursor *c, uint32_t seg, const uint8_t *pre, size_t pl, term *out, size_t cap) {
    idx_lexit it;
    size_t n = 0;
    assert_int_equal(idx_lexit_seek(&it, c, seg, pre, pl), 0);
    while (!it.eof && it.tl >= pl && memcmp(it.term, pre, pl) == 0) {
        assert_true(n < cap);
        memcpy(out[n].t, it.term, it.tl);
        idx_lexval v;
        assert_int_equal(idx_lexit_value(&it, &v), 0);
        out[n].df = v.df;
        out[n++].l = it.tl;
        assert_int_equal(idx_lexit_next(&it), 0);
    }
    return n;
}

/* The slice's trie walked node by node rebuilds the reference's terms, in
 * order; each node is one byte deeper than its parent (at most one deeper
 * than the node before), and its skip is the first later node at its depth
 * or above (a linear search). */
static void s_check_walk(const idx_tslice *s, const uint8_t *pre, size_t pl, const term *ref, size_t n) {
    assert_int_equal(s->n, n);
    uint8_t path[IDX_TERM_MAX];
    memcpy(path, pre, pl);
    size_t i = 0, prev = 0;
    if (n && ref[0].l == pl) {
        assert_int_equal(s->root, 1);
        i++;
    } else {
        assert_int_equal(s->root, 0);
    }
    for (uint32_t x = 0; x < s->nn; x++) {
        uint32_t v = s->node[x];
        size_t dp = idx_tnode_depth(v);
        assert_true(dp >= 1 && dp <= prev + 1 && pl + dp <= IDX_TERM_MAX);
        path[pl + dp - 1] = (uint8_t)idx_tnode_byte(v);
        prev = dp;
        if (idx_tnode_end(v)) {
            assert_true(i < n);
            assert_int_equal(pl + dp, ref[i].l);
            assert_memory_equal(path, ref[i].t, ref[i].l);
            i++;
        }
        uint32_t want = x + 1;
        while (want < s->nn && idx_tnode_depth(s->node[want]) > dp)
            want++;
        assert_int_equal(idx_tslice_skip(s, x), want);
    }
    assert_int_equal(i, n);
}

/* A read txn on the test index, its segment list and a cursor on idx_lex. */
static MDB_txn *s_read(idx_segs *sg, MDB_cursor **c) {
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(idx_segs_get(ix, txn, sg), 0);
    assert_int_equal(mdb_cursor_open(txn, ix->lex, c), 0);
    return txn;
}

static void test_slices(void **state) {
    (void)state;
    static term ref[60000];
    idx_segs sg;
    MDB_cursor *c;
    MDB_txn *txn = s_read(&sg, &c);
    assert_true(sg.nsegs >= 2); /* several segments: slices of each */
    idx_terms *tc = idx_terms_new(0);
    assert_non_null(tc);
    static const char *pres[] = {"b", "bb", "bcd", "cd", "dk", "\x01" "bc", "\x01" "d", "zz", "\x01" "zz"};
    size_t checked = 0, far = 0;
    for (size_t si = 0; si < sg.nsegs; si++) {
        for (size_t pi = 0; pi < sizeof pres / sizeof pres[0]; pi++) {
            const uint8_t *pre = (const uint8_t *)pres[pi];
            size_t pl = strlen(pres[pi]);
            size_t n = s_ref(c, sg.seg[si].id, pre, pl, ref, sizeof ref / sizeof ref[0]);
            for (int keep = 0; keep < 2; keep++) {
                idx_tslice *s;
                bool owned;
                assert_int_equal(idx_terms_slice(keep ? tc : NULL, c, &sg.seg[si], pre, pl,
                                                 keep != 0, &s, &owned),
                                 0);
                assert_true(owned == !keep);
                s_check_walk(s, pre, pl, ref, n);
                far += s->nesc;
                if (owned)
                    idx_tslice_free(&s);
                checked += n;
            }
        }
    }
    assert_true(checked > 10000);
    assert_true(far > 0); /* subtree sizes in esc were checked too */
    idx_terms_destroy(&tc);
    idx_terms_destroy(&tc); /* safe twice */
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
}

/* bytes order, a prefix first (the lexicon's order) */
static int s_term_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl) {
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}

/* idx_lexit_seek (the page walk under every lexicon lookup) lands on the
 * first term >= the key, against a binary search of each segment's terms
 * read in order: every term, each with its last byte one lower and one
 * higher, one shorter, and one longer by a low, a middle and a high byte. */
static void test_seek(void **state) {
    (void)state;
    static term all[60000];
    idx_segs sg;
    MDB_cursor *c;
    MDB_txn *txn = s_read(&sg, &c);
    size_t probes = 0, between = 0;
    for (size_t si = 0; si < sg.nsegs; si++) {
        size_t n = s_ref(c, sg.seg[si].id, (const uint8_t *)"", 0, all, sizeof all / sizeof all[0]);
        assert_true(n > 1000);
        for (size_t t = 0; t < n; t++) {
            for (int v = 0; v < 7; v++) {
                uint8_t k[IDX_TERM_MAX + 1];
                size_t kl = all[t].l;
                memcpy(k, all[t].t, kl);
                if (v == 1 && k[kl - 1] > 0)
                    k[kl - 1]--;
                else if (v == 2 && k[kl - 1] < 0xff)
                    k[kl - 1]++;
                else if (v == 3 && kl > 1)
                    kl--;
                else if (v >= 4 && kl < IDX_TERM_MAX)
                    k[kl++] = v == 4 ? 0 : v == 5 ? 'e' : 0xff;
                else if (v)
                    continue;
                size_t lo = 0, hi = n; /* the first term >= k */
                while (lo < hi) {
                    size_t mid = lo + (hi - lo) / 2;
                    if (s_term_cmp(all[mid].t, all[mid].l, k, kl) < 0)
                        lo = mid + 1;
                    else
                        hi = mid;
                }
                idx_lexit it;
                assert_int_equal(idx_lexit_seek(&it, c, sg.seg[si].id, k, kl), 0);
                if (lo == n) {
                    assert_true(it.eof);
                    continue;
                }
                assert_false(it.eof);
                assert_int_equal(it.tl, all[lo].l);
                assert_memory_equal(it.term, all[lo].t, all[lo].l);
                idx_lexval lv;
                assert_int_equal(idx_lexit_value(&it, &lv), 0);
                assert_int_equal(lv.df, all[lo].df);
                /* the iterator goes on from there as from a full walk */
                assert_int_equal(idx_lexit_next(&it), 0);
                if (lo + 1 < n) {
                    assert_false(it.eof);
                    assert_int_equal(it.tl, all[lo + 1].l);
                    assert_memory_equal(it.term, all[lo + 1].t, all[lo + 1].l);
                }
                probes++;
                between += s_term_cmp(all[lo].t, all[lo].l, k, kl) != 0;
            }
        }
    }
    assert_true(probes > 50000);
    assert_true(between > 20000); /* keys that are no term */
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
}

/* A seek past an entry that shares more bytes with the one before than that
 * one has fails with MDB_CORRUPTED, also when the walk began at a longer
 * term: the page "abcdef", "ab"+"x", then sh 4 (a page of a segment no list
 * has, in a write txn aborted after). */
static void test_seek_corrupt(void **state) {
    (void)state;
    MDB_txn *txn;
    MDB_cursor *c;
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    const uint32_t seg = 0x7ffffff0u;
    static const uint8_t good[] = {IDX_LEX_POST | 0 << 2 | 6 << 5, 'a', 'b', 'c', 'd', 'e', 'f', 2,
                                   IDX_LEX_POST | 2 << 2 | 1 << 5, 'x', 2,
                                   IDX_LEX_POST | 3 << 2 | 1 << 5, 'y', 2};
    uint8_t page[sizeof good];
    for (int bad = 0; bad < 2; bad++) {
        memcpy(page, good, sizeof good);
        if (bad)
            page[11] = IDX_LEX_POST | 4 << 2 | 1 << 5; /* "abx" has 3 bytes */
        uint8_t kb[IDX_KEY_MAX];
        MDB_val k = {idx_lex_key(seg, (const uint8_t *)"abcdef", 6, kb), kb}, v = {sizeof page, page};
        assert_int_equal(mdb_put(txn, ix->lex, &k, &v, 0), 0);
        assert_int_equal(mdb_cursor_open(txn, ix->lex, &c), 0);
        idx_lexit it;
        int rc = idx_lexit_seek(&it, c, seg, (const uint8_t *)"abz", 3);
        if (bad) {
            assert_int_equal(rc, MDB_CORRUPTED);
            /* reported where the page's scan found it, the iterator still on
             * the entry the scan started after: not walked on entry by entry,
             * each step scanning the rest of the page again (quadratic in the
             * page's entries: 0.55 ms for a seek past 418) */
            assert_int_equal(it.tl, 6);
            assert_memory_equal(it.term, "abcdef", 6);
        } else { /* "abxy" is below "abz" too: past the page */
            assert_int_equal(rc, 0);
            assert_true(it.eof);
            assert_int_equal(idx_lexit_seek(&it, c, seg, (const uint8_t *)"abxa", 4), 0);
            assert_false(it.eof);
            assert_int_equal(it.tl, 4);
            assert_memory_equal(it.term, "abxy", 4);
        }
        mdb_cursor_close(c);
    }
    mdb_txn_abort(txn);
}

static void test_cache_life(void **state) {
    (void)state;
    idx_segs sg;
    MDB_cursor *c;
    MDB_txn *txn = s_read(&sg, &c);
    idx_terms *tc = idx_terms_new(0);
    assert_non_null(tc);
    size_t empty = idx_terms_bytes(tc);
    idx_tslice *a, *b;
    bool owned;
    /* kept, then the same slice again without a read */
    assert_int_equal(idx_terms_slice(tc, c, &sg.seg[0], (const uint8_t *)"bb", 2, true, &a, &owned), 0);
    assert_false(owned);
    uint32_t an = a->n; /* a is freed by the retain below */
    assert_true(an > 0);
    assert_int_equal(idx_terms_builds(tc), 1);
    size_t one = idx_terms_bytes(tc);
    assert_true(one > empty + a->bytes && a->bytes >= a->nn * sizeof *a->node);
    assert_int_equal(idx_terms_slice(tc, c, &sg.seg[0], (const uint8_t *)"bb", 2, true, &b, &owned), 0);
    assert_false(owned);
    assert_ptr_equal(a, b);
    assert_int_equal(idx_terms_builds(tc), 1);
    /* keep = false: read for the caller, nothing kept */
    assert_int_equal(idx_terms_slice(tc, c, &sg.seg[0], (const uint8_t *)"bc", 2, false, &b, &owned), 0);
    assert_true(owned);
    idx_tslice_free(&b);
    assert_null(b);
    assert_int_equal(idx_terms_bytes(tc), one);
    /* another segment's slice of the same prefix is another slice */
    assert_int_equal(idx_terms_slice(tc, c, &sg.seg[1], (const uint8_t *)"bb", 2, true, &b, &owned), 0);
    assert_false(owned);
    assert_ptr_not_equal(a, b);
    assert_true(idx_terms_bytes(tc) > one);
    /* the same id with other contents (another index's segment) is not it */
    idx_seg other = sg.seg[0];
    other.ndocs++;
    assert_int_equal(idx_terms_slice(tc, c, &other, (const uint8_t *)"bb", 2, true, &b, &owned), 0);
    assert_ptr_not_equal(a, b);
    assert_int_equal(idx_terms_builds(tc), 3);
    /* a changed dead count is the same segment */
    other = sg.seg[0];
    other.dead += 3;
    assert_int_equal(idx_terms_slice(tc, c, &other, (const uint8_t *)"bb", 2, true, &b, &owned), 0);
    assert_ptr_equal(a, b);
    /* segments gone from the list are dropped; the ones left are kept */
    idx_segs keep0 = sg;
    keep0.nsegs = 1;
    idx_terms_retain(tc, &keep0);
    assert_int_equal(idx_terms_bytes(tc) - empty, one - empty);
    assert_int_equal(idx_terms_slice(tc, c, &sg.seg[0], (const uint8_t *)"bb", 2, true, &b, &owned), 0);
    assert_ptr_equal(a, b);
    idx_segs none = sg;
    none.nsegs = 0;
    idx_terms_retain(tc, &none);
    assert_true(idx_terms_bytes(tc) < one);
    idx_terms_clear(tc);
    size_t cleared = idx_terms_bytes(tc);
    /* over the cap: read for the caller, nothing kept */
    idx_terms *small = idx_terms_new(cleared + 64);
    assert_non_null(small);
    assert_int_equal(idx_terms_slice(small, c, &sg.seg[0], (const uint8_t *)"bb", 2, true, &b, &owned), 0);
    assert_true(owned);
    assert_int_equal(b->n, an);
    idx_tslice_free(&b);
    assert_true(idx_terms_bytes(small) <= cleared + 64);
    /* a prefix of 0 or 4 bytes is refused */
    assert_int_equal(idx_terms_slice(tc, c, &sg.seg[0], (const uint8_t *)"bbbb", 4, true, &b, &owned),
                     EINVAL);
    assert_null(b);
    assert_int_equal(idx_terms_slice(tc, c, &sg.seg[0], (const uint8_t *)"", 0, true, &b, &owned), EINVAL);
    idx_terms_destroy(&small);
    idx_terms_destroy(&tc);
    assert_int_equal(idx_terms_bytes(NULL), 0);
    idx_terms_clear(NULL);
    idx_terms_retain(NULL, &sg);
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slices),
        cmocka_unit_test(test_cache_life),
        cmocka_unit_test(test_seek),
        cmocka_unit_test(test_seek_corrupt),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
