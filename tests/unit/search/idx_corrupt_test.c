/* Corrupt indexes (review, session 8): random English indexes (blocks of
 * every id code: bitmaps, Elias-Fano, varints; several segments, updates,
 * deletes, sometimes idx_optimize), then random changes to a third of the
 * idx_post values and a sixth of the idx_lex ones (bytes replaced, flipped,
 * zeroed or set, values cut or extended with junk), then terms, ANDs,
 * phrases, a negation, an OR and a prefix at limits 3, 10 (with facets) and
 * 1000, then idx_optimize. Each must return (an error is fine): no crash, no
 * endless loop (ctest's timeout), and ASan/UBSan clean. Seed 1040 made
 * idx_optimize segfault in idx_block_ids_put (a doc twice in a merge), seed
 * 2102 looped for ever in s_evaluate's skip of a single term's block (its
 * ids fell behind the current doc). The corruptions must be seen: some
 * searches fail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "lmdb_tmp.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "idx.h"

#define NW 6
static const char *W[NW] = {"apple", "banana", "cherry", "grape", "lemon", "mango"};
#define MAXD 6000
typedef struct { uint64_t id; uint8_t tf[NW], bc[NW], tc[NW]; bool live; char *body; char *title; } fdoc;
static uint64_t rs;
static uint64_t rnd(void) { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return rs; }

static void mkdoc(fdoc *d, const double *p) {
    char buf[8192] = "", tb[256] = "";
    memset(d->tf, 0, NW);
    memset(d->bc, 0, NW);
    memset(d->tc, 0, NW);
    for (int k = 0; k < NW; k++)
        if ((double)(rnd() % 10000) / 10000.0 < p[k]) {
            int tf = 1 + (int)(rnd() % 4 == 0 ? rnd() % 12 : 0);
            d->tf[k] = (uint8_t)tf;
            for (int t = 0; t < tf; t++) {
                if (t == 0 && rnd() % 7 == 0) { strcat(tb, W[k]); strcat(tb, " "); d->tc[k]++; continue; }
                strcat(buf, W[k]); strcat(buf, " "); d->bc[k]++;
            }
        }
    int fill = (int)(rnd() % 40);
    for (int f = 0; f < fill; f++) strcat(buf, f % 3 ? "filler " : "stuffing ");
    free(d->body); free(d->title);
    d->body = strdup(buf); d->title = strdup(tb[0] ? tb : "t");
}
static idx_doc asdoc(const fdoc *d) {
    return (idx_doc){.title = d->title, .title_len = strlen(d->title), .body = d->body, .body_len = strlen(d->body)};
}

static unsigned s_failed; /* searches that saw a corrupt block */

static void corrupt_and_query(MDB_env *e, idx *x, unsigned seed) {
    MDB_txn *w;
    assert_int_equal(mdb_txn_begin(e, NULL, 0, &w), 0);
    MDB_dbi post, lex;
    assert_int_equal(mdb_dbi_open(w, "idx_post", 0, &post), 0);
    assert_int_equal(mdb_dbi_open(w, "idx_lex", 0, &lex), 0);
    for (int db = 0; db < 2; db++) {
        MDB_dbi dbi = db ? lex : post;
        MDB_cursor *c;
        assert_int_equal(mdb_cursor_open(w, dbi, &c), 0);
        MDB_val k, v;
        /* collect keys first */
        size_t nk = 0, capk = 1024;
        uint8_t (*keys)[600] = malloc(capk * 600);
        size_t *kl = malloc(capk * sizeof *kl);
        for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
            if (nk == capk) { capk *= 2; keys = realloc(keys, capk * 600); kl = realloc(kl, capk * sizeof *kl); }
            memcpy(keys[nk], k.mv_data, k.mv_size); kl[nk++] = k.mv_size;
        }
        mdb_cursor_close(c);
        for (size_t i = 0; i < nk; i++) {
            if (rnd() % (db ? 6 : 3)) continue;
            MDB_val kk = {kl[i], keys[i]}, vv;
            if (mdb_get(w, dbi, &kk, &vv)) continue;
            size_t n = vv.mv_size, m = n;
            unsigned how = (unsigned)(rnd() % 6);
            if (how == 4) m = n ? rnd() % n : 0;             /* truncated */
            else if (how == 5) m = n + 1 + rnd() % 9000;       /* extended with junk */
            uint8_t *b = calloc(1, m + 1);
            memcpy(b, vv.mv_data, n < m ? n : m);
            if (how == 5) for (size_t j = n; j < m; j++) b[j] = (rnd() % 4) ? 0 : (uint8_t)rnd();
            int flips = 1 + (int)(rnd() % 4);
            for (int f = 0; f < flips && m && how < 4; f++) {
                size_t at = rnd() % (m < 64 ? m : (rnd() % 2 ? 64 : m));
                b[at] = how == 0 ? (uint8_t)rnd() : how == 1 ? (uint8_t)(b[at] ^ (1u << (rnd() % 8))) : how == 2 ? 0 : 0xff;
            }
            MDB_val nv = {m, b};
            mdb_put(w, dbi, &kk, &nv, 0);
            free(b);
        }
        free(keys); free(kl);
    }
    assert_int_equal(mdb_txn_commit(w), 0);
    MDB_txn *r;
    assert_int_equal(mdb_txn_begin(e, NULL, MDB_RDONLY, &r), 0);
    static const char *qs[] = {"apple", "banana", "cherry", "grape", "lemon", "mango", "apple banana",
                               "banana cherry", "apple grape lemon", "\"apple banana\"", "\"apple apple\"",
                               "\"banana cherry\"", "apple -banana", "cherry OR mango", "appl*", "filler apple"};
    for (size_t qi = 0; qi < sizeof qs / sizeof qs[0]; qi++)
        for (int l = 0; l < 3; l++) {
            idx_query q = {.query = qs[qi], .limit = l == 0 ? 3 : l == 1 ? 10 : 1000, .facets = l == 1};
            idx_result res;
            int rc = idx_search(x, r, &q, &res);
            if (rc == IDX_OK) idx_result_free(&res);
            else s_failed++;
        }
    mdb_txn_abort(r);
    MDB_txn *w2;
    assert_int_equal(mdb_txn_begin(e, NULL, 0, &w2), 0);
    int rc = idx_optimize(x, w2);
    (void)rc;
    mdb_txn_abort(w2);
    (void)seed;
}

static void run(unsigned seed) {
    rs = 0x9E3779B97F4A7C15ull ^ ((uint64_t)seed * 0x100000001B3ull);
    char dir[64] = "/tmp/idx_zzfuzz_XXXXXX";
    MDB_env *e = lmdb_tmp_open(dir, 16, 1ull << 30);
    idx_options o = {.b = -1, .no_typos = true, .max_pending_docs = 100000};
    MDB_txn *txn;
    idx *x = NULL;
    assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
    assert_int_equal(idx_open(txn, &o, &x), IDX_OK);
    static fdoc D[MAXD];
    memset(D, 0, sizeof D);
    size_t nd = 1000 + rnd() % (MAXD - 1000);
    double p[NW] = {0.95, 0.6, 0.3, 0.12, 0.04, 0.01};
    for (int k = 0; k < NW; k++) p[k] *= 0.5 + (double)(rnd() % 100) / 100.0;
    uint64_t id = 1 + rnd() % 100;
    bool high = rnd() % 3 == 0;
    for (size_t i = 0; i < nd; i++) {
        unsigned g = (unsigned)(rnd() % 100);
        id += g < 70 ? 1 : g < 90 ? 1 + rnd() % 4 : g < 98 ? 1 + rnd() % 60 : 3000 + rnd() % 6000;
        D[i].id = id;
    }
    if (high) {
        uint64_t sh = (uint64_t)IDX_ID_MAX - D[nd - 1].id;
        for (size_t i = 0; i < nd; i++) D[i].id += sh;
    }
    size_t flush_every = 50 + rnd() % 900;
    for (size_t i = 0; i < nd; i++) {
        mkdoc(&D[i], p);
        idx_doc dd = asdoc(&D[i]);
        assert_int_equal(idx_put(x, txn, D[i].id, &dd, NULL), IDX_OK);
        D[i].live = true;
        if ((i + 1) % flush_every == 0) assert_int_equal(idx_flush(x, txn), IDX_OK);
    }
    assert_int_equal(idx_flush(x, txn), IDX_OK);
    /* updates and deletes */
    int mode = (int)(rnd() % 3);
    size_t nch = mode == 0 ? 0 : nd / (5 + rnd() % 20);
    for (size_t c = 0; c < nch; c++) {
        size_t i = rnd() % nd;
        if (!D[i].live) continue;
        idx_doc old = asdoc(&D[i]);
        if (rnd() % 2) {
            assert_int_equal(idx_del(x, txn, D[i].id, &old), IDX_OK);
            D[i].live = false;
        } else {
            char *ob = D[i].body, *ot = D[i].title;
            D[i].body = D[i].title = NULL;
            old.body = ob; old.title = ot;
            mkdoc(&D[i], p);
            idx_doc dd = asdoc(&D[i]);
            assert_int_equal(idx_put(x, txn, D[i].id, &dd, &old), IDX_OK);
            free(ob); free(ot);
        }
        if (c % 97 == 96) assert_int_equal(idx_flush(x, txn), IDX_OK);
    }
    assert_int_equal(idx_flush(x, txn), IDX_OK);
    if (rnd() % 3 == 0) assert_int_equal(idx_optimize(x, txn), IDX_OK);
    assert_int_equal(mdb_txn_commit(txn), 0);
    {
        corrupt_and_query(e, x, seed);
        idx_close(&x);
        lmdb_tmp_close(&e, dir);
        for (size_t i = 0; i < nd; i++) { free(D[i].body); free(D[i].title); D[i].body = D[i].title = NULL; }
        return;
    }
}

static void test_corrupt(void **state) {
    (void)state;
    static const unsigned seeds[] = {1040, 2102};
    for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++)
        run(seeds[s]);
    for (unsigned s = 100; s < 140; s++)
        run(s);
    assert_true(s_failed > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_corrupt)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
