/*
 * qsearch_bulk_test: a bulk apply with the text analysis on the second
 * thread (qsearch_bulk_begin / replica_apply / qsearch_bulk_end) leaves the
 * same index, byte for byte, as the same changes applied on one thread:
 * new articles, updates (the old version is removed), deletes, duplicates
 * (seq already applied), a PUT without an article, and a map so small that
 * the bulk txn hits MDB_MAP_FULL and is replayed. Also with pipelining:
 * the next batch's job begun from the before-flush callback of this one's
 * txn (qsearch_set_before_flush), on a map small enough for replays, and
 * the same with the job's changes handed over by a prep function that the
 * analysis thread runs first (qsearch_bulk_begin_prep: it runs exactly once
 * per job, also when the job is ended before the thread gets to it). And
 * one big chunk that fills a tiny map in the index's writes while the
 * committed data is small (grown and replayed from the index's error code).
 * And a reset (replica_reset) on a full map, grown and replayed the same way.
 * The three pipelines again with the process on one CPU (the worker's
 * thread then waits for the analysis thread instead of analyzing the job's
 * last items itself).
 * The bulk load's postings kept across its transactions (qsearch_set_bulk
 * with a byte budget): the same answers as the per-chunk segments, the
 * version missing from `meta` while postings are held, a qsearch dropped
 * before qsearch_optimize rebuilt at its next open, and aborts (MDB_MAP_FULL
 * replays on a tiny map) after held commits rebuilt by qsearch_optimize.
 */
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "lmdb_equal.h"

#include "idx_int.h" /* IDX_FORMAT: an index of an older format */
#include "qsearch.h"
#include "query_fixture.h"

#define NBATCH 3
#define PER_BATCH 400

static const char *WORDS[] = {"storm", "running", "market", "bridge", "café", "police",
                              "新闻", "北京", "harvest", "markets", "river", "naïve"};
#define NW (sizeof WORDS / sizeof WORDS[0])

static fx_change CH[NBATCH][PER_BATCH];
static Bulletin__Internal__Change *P[NBATCH][PER_BATCH];
static size_t NCH[NBATCH];
static unsigned rng = 99;
static unsigned rnd(void)
{
    rng = rng * 1103515245u + 12345u;
    return (rng >> 8) & 0xffffff;
}

static void s_body(fx_change *x)
{
    x->body[0] = 0;
    int n = 5 + (int)(rnd() % 40);
    for (int i = 0; i < n; i++) {
        strcat(x->body, WORDS[rnd() % NW]);
        strcat(x->body, " ");
    }
    snprintf(x->title, sizeof x->title, "%s %s", WORDS[rnd() % NW], WORDS[rnd() % NW]);
}

/* batch 0: ids 1..400; batch 1: a few duplicates of batch 0, updates,
 * deletes, new ids, a PUT without article; batch 2: more of the same */
static void s_history(void)
{
    uint64_t seq = 0;
    for (size_t b = 0; b < NBATCH; b++) {
        size_t n = 0;
        if (b > 0) /* duplicates: already applied, skipped by the replica */
            for (int i = 0; i < 5; i++) {
                fx_put(&CH[b][n], 1 + (uint64_t)i, 1 + (uint64_t)i, "dup", "dup", 1, NULL, NULL);
                n++;
            }
        while (n < PER_BATCH) {
            fx_change *x = &CH[b][n];
            uint64_t id = b == 0 ? (uint64_t)n + 1 : 1 + rnd() % (PER_BATCH + 100);
            if (b > 0 && rnd() % 6 == 0) {
                fx_del(x, ++seq, id);
            } else {
                fx_put(x, ++seq, id, rnd() % 2 ? "a.example" : "b.example",
                       rnd() % 2 ? "news" : "jokes", 1600000000000LL + rnd() % 1000,
                       rnd() % 2 ? "t1" : NULL, NULL);
                s_body(x);
                if (b == 2 && n == 50)
                    x->c.article = NULL; /* malformed: logged, skipped */
            }
            n++;
        }
        NCH[b] = n;
        for (size_t i = 0; i < n; i++)
            P[b][i] = &CH[b][i].c;
    }
    /* duplicates need seqs at or below what batch 0 applied */
    for (size_t b = 1; b < NBATCH; b++)
        for (size_t i = 0; i < 5; i++)
            CH[b][i].c.seq = i + 1;
}

static void s_compare(replica *ra, replica *rb)
{
    static const char *names[] = {"idx_post", "idx_lex", "idx_col", "idx_dict", "idx_meta"};
    const replica_dbs *da = replica_dbs_get(ra), *db = replica_dbs_get(rb);
    MDB_txn *ta, *tb;
    assert_int_equal(mdb_txn_begin(da->env, NULL, MDB_RDONLY, &ta), 0);
    assert_int_equal(mdb_txn_begin(db->env, NULL, MDB_RDONLY, &tb), 0);
    size_t total = 0;
    for (size_t n = 0; n < 5; n++) {
        MDB_dbi xa, xb;
        assert_int_equal(mdb_dbi_open(ta, names[n], 0, &xa), 0);
        assert_int_equal(mdb_dbi_open(tb, names[n], 0, &xb), 0);
        total += lmdb_assert_equal(ta, xa, tb, xb);
    }
    assert_true(total > 50);
    mdb_txn_abort(ta);
    mdb_txn_abort(tb);
}

/* Two replicas with indexes: a (default map) is the model, b has a 1 MiB map
 * so that its writes hit MDB_MAP_FULL, grow the map and replay. */
typedef struct {
    char *dir[2];
    replica *r[2];
    qsearch *q[2];
} s_pair;

static void s_pair_open(s_pair *p)
{
    for (int i = 0; i < 2; i++) {
        p->dir[i] = fx_tmpdir();
        assert_non_null(p->dir[i]);
        p->r[i] = replica_new(p->dir[i], i ? (size_t)1 << 20 : 0);
        assert_non_null(p->r[i]);
        p->q[i] = qsearch_new(p->r[i], NULL);
        assert_non_null(p->q[i]);
    }
}

/* Reopen p's b on a map of map_size bytes (0: the default, large). */
static void s_pair_reopen_b(s_pair *p, size_t map_size)
{
    qsearch_destroy(&p->q[1]);
    replica_destroy(&p->r[1]);
    p->r[1] = replica_new(p->dir[1], map_size);
    assert_non_null(p->r[1]);
    p->q[1] = qsearch_new(p->r[1], NULL);
    assert_non_null(p->q[1]);
}

static void s_pair_close(s_pair *p)
{
    for (int i = 1; i >= 0; i--) {
        qsearch_destroy(&p->q[i]);
        replica_destroy(&p->r[i]);
        fx_rmdir(p->dir[i]);
    }
}

static void test_bulk_same_index(void **state)
{
    (void)state;
    s_history();
    s_pair p;
    s_pair_open(&p);
    replica *ra = p.r[0], *rb = p.r[1];
    qsearch *qa = p.q[0], *qb = p.q[1];

    /* a batch under QSEARCH_BULK_MIN articles stays on this thread */
    assert_int_equal(qsearch_bulk_begin(qb, P[0], 3), 0);
    qsearch_bulk_end(qb);
    qsearch_bulk_end(qb); /* safe when nothing runs */

    for (size_t b = 0; b < NBATCH; b++) {
        assert_int_equal(replica_apply(ra, P[b], NCH[b], 0), 0);
        assert_int_equal(qsearch_bulk_begin(qb, P[b], NCH[b]), 1);
        assert_int_equal(replica_apply(rb, P[b], NCH[b], 0), 0);
        qsearch_bulk_end(qb);
    }
    assert_int_equal(replica_applied_seq(ra), replica_applied_seq(rb));
    assert_int_equal(replica_count(ra), replica_count(rb));
    assert_false(qsearch_broken(qb));
    assert_int_equal(qsearch_docs(qa), replica_count(ra));
    assert_int_equal(qsearch_docs(qb), replica_count(rb));
    s_compare(ra, rb);

    /* a bulk begun and ended without an apply (the apply failed early) */
    assert_int_equal(qsearch_bulk_begin(qb, P[1], NCH[1]), 1);
    qsearch_bulk_end(qb);
    /* begun, then destroyed while the thread may still work */
    assert_int_equal(qsearch_bulk_begin(qb, P[2], NCH[2]), 1);
    qsearch_destroy(&p.q[1]);
    s_pair_close(&p); /* destroys it again: safe */
}

/* the before-flush callback: begin the next batch's job (every time: a
 * replayed txn ends the job begun ahead, so it is begun again) */
static qsearch *g_q;
static size_t g_next, g_ahead;
static void s_begin_next(void *ud)
{
    assert_ptr_equal(ud, &g_next);
    if (g_next < NBATCH) {
        assert_int_equal(qsearch_bulk_begin(g_q, P[g_next], NCH[g_next]), 1);
        g_ahead++;
    }
}

/* Applies test_bulk_same_index's history to both replicas of `p`, the index's one with the next
 * batch begun from the before-flush callback `next` (prep: through
 * qsearch_bulk_begin_prep, waited for before each batch), and checks both
 * end the same. */
static void s_apply_begun_ahead(s_pair *p, void (*next)(void *), bool prep)
{
    rng = 99; /* the history of test_bulk_same_index */
    s_history();
    replica *ra = p->r[0], *rb = p->r[1];
    qsearch *qb = p->q[1];
    g_q = qb;
    qsearch_set_before_flush(qb, next, &g_next);
    g_ahead = 0;
    for (size_t b = 0; b < NBATCH; b++) {
        assert_int_equal(replica_apply(ra, P[b], NCH[b], 0), 0);
        g_next = b + 1;
        if (prep)
            qsearch_bulk_prep_wait(qb); /* safe when no prep is pending */
        assert_int_equal(qsearch_bulk_begin(qb, P[b], NCH[b]), 1); /* running when begun ahead */
        assert_int_equal(replica_apply(rb, P[b], NCH[b], 0), 0);
        qsearch_bulk_done(qb, P[b]); /* leaves batch b+1's job running */
    }
    if (prep)
        qsearch_bulk_prep_wait(qb);
    assert_true(g_ahead >= NBATCH - 1);
    qsearch_set_before_flush(qb, NULL, NULL);
    assert_int_equal(replica_applied_seq(ra), replica_applied_seq(rb));
    assert_int_equal(replica_count(ra), replica_count(rb));
    assert_false(qsearch_broken(qb));
    assert_int_equal(qsearch_docs(qb), replica_count(rb));
    s_compare(ra, rb);
}

static void test_bulk_ahead_same_index(void **state)
{
    (void)state;
    s_pair p;
    s_pair_open(&p);
    qsearch *qb = p.q[1];
    s_apply_begun_ahead(&p, s_begin_next, false);

    /* begun ahead, then dropped (the chunk is not applied): done ends it */
    assert_int_equal(qsearch_bulk_begin(qb, P[1], NCH[1]), 1);
    qsearch_bulk_done(qb, P[2]); /* another job's: no effect */
    qsearch_bulk_done(qb, P[1]);
    qsearch_bulk_done(qb, P[1]); /* safe when nothing runs */
    s_pair_close(&p);
}

/* the prep of a job begun by qsearch_bulk_begin_prep: batch *ud's changes */
static size_t g_preps;
static void s_prep(void *ud, Bulletin__Internal__Change *const **changes, size_t *n)
{
    size_t b = *(size_t *)ud;
    __atomic_add_fetch(&g_preps, 1, __ATOMIC_SEQ_CST);
    if (b < NBATCH) {
        *changes = P[b];
        *n = NCH[b];
    }
}

static size_t g_prep_batch;
static void s_begin_next_prep(void *ud)
{
    assert_ptr_equal(ud, &g_next);
    if (g_next < NBATCH) {
        g_prep_batch = g_next;
        assert_int_equal(qsearch_bulk_begin_prep(g_q, s_prep, &g_prep_batch), 1);
        g_ahead++;
    }
}

static void test_bulk_prep_same_index(void **state)
{
    (void)state;
    s_pair p;
    s_pair_open(&p);
    qsearch *qb = p.q[1];
    g_preps = 0;
    s_apply_begun_ahead(&p, s_begin_next_prep, true);
    assert_int_equal(__atomic_load_n(&g_preps, __ATOMIC_SEQ_CST), g_ahead);

    /* a prep runs once even when its job is ended at once, or begun over */
    for (int i = 0; i < 50; i++) {
        g_preps = 0;
        g_prep_batch = 1;
        assert_int_equal(qsearch_bulk_begin_prep(qb, s_prep, &g_prep_batch), 1);
        if (i % 2)
            assert_int_equal(qsearch_bulk_begin_prep(qb, s_prep, &g_prep_batch), 1);
        qsearch_bulk_end(qb);
        qsearch_bulk_prep_wait(qb);
        assert_int_equal(__atomic_load_n(&g_preps, __ATOMIC_SEQ_CST), i % 2 ? 2 : 1);
    }
    /* a prep with nothing to analyze; then one begun and destroyed */
    g_prep_batch = NBATCH;
    assert_int_equal(qsearch_bulk_begin_prep(qb, s_prep, &g_prep_batch), 1);
    qsearch_bulk_prep_wait(qb);
    assert_int_equal(qsearch_bulk_begin(qb, P[0], 3), 0);
    g_prep_batch = 2;
    assert_int_equal(qsearch_bulk_begin_prep(qb, s_prep, &g_prep_batch), 1);
    qsearch_destroy(&p.q[1]);
    s_pair_close(&p);
}

/* One big chunk on a tiny map whose committed data is small: the articles
 * fit, the index's writes of the same txn (its flush) hit MDB_MAP_FULL.
 * The replica must grow the map and replay from the index's own error code
 * (the committed state is far below 75% of the map, so guessing from it
 * would give up with MDB_PANIC), and end identical to a large-map model. */
#define NBIG 500
static fx_change BIG[NBIG];
static Bulletin__Internal__Change *PBIG[NBIG];

static void s_big_history(void)
{
    for (size_t i = 0; i < NBIG; i++) {
        fx_change *x = &BIG[i];
        fx_put(x, i + 1, i + 1, "a.example", "news", 1600000000000LL + (int64_t)i, NULL, NULL);
        size_t n = 0;
        while (n + 8 < sizeof x->body) { /* distinct made-up words: many terms */
            for (int k = 0; k < 6; k++)
                x->body[n++] = (char)('a' + rnd() % 26);
            x->body[n++] = ' ';
        }
        x->body[n] = 0;
        snprintf(x->title, sizeof x->title, "%s", WORDS[rnd() % NW]);
        PBIG[i] = &x->c;
    }
}

static void s_map_full_big_txn(bool bulk)
{
    rng = 7;
    s_big_history();
    s_pair p;
    s_pair_open(&p);
    replica *ra = p.r[0], *rb = p.r[1];
    qsearch *qb = p.q[1];
    /* committed: a few articles, far below 75% of the map */
    assert_int_equal(replica_apply(ra, PBIG, 3, 0), 0);
    assert_int_equal(replica_apply(rb, PBIG, 3, 0), 0);
    assert_int_equal(replica_apply(ra, PBIG + 3, NBIG - 3, 0), 0);
    if (bulk)
        assert_int_equal(qsearch_bulk_begin(qb, PBIG + 3, NBIG - 3), 1);
    assert_int_equal(replica_apply(rb, PBIG + 3, NBIG - 3, 0), 0);
    if (bulk)
        qsearch_bulk_end(qb);
    assert_int_equal(replica_applied_seq(rb), NBIG);
    assert_int_equal(replica_count(rb), NBIG);
    assert_false(qsearch_broken(qb));
    assert_int_equal(qsearch_docs(qb), NBIG);
    s_compare(ra, rb);
    s_pair_close(&p);
}

static void test_map_full_big_txn(void **state)
{
    (void)state;
    s_map_full_big_txn(false);
}

static void test_map_full_big_txn_bulk(void **state)
{
    (void)state;
    s_map_full_big_txn(true);
}

/* A reset (the store was replaced: every table and the index dropped) on a
 * map that is full: the replica is reopened asking for a 1 MiB map over
 * more data than that, which LMDB opens at exactly the used size, so the
 * reset's own writes hit MDB_MAP_FULL. The replica must grow the map and
 * replay the reset, like an apply, and stay usable: the same changes
 * applied after the reset leave the same index as on a large-map model. */
static void test_map_full_reset(void **state)
{
    (void)state;
    rng = 11;
    s_big_history();
    s_pair p;
    s_pair_open(&p);
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(replica_apply(p.r[i], PBIG, NBIG, 0), 0);
    qsearch_destroy(&p.q[1]);
    replica_destroy(&p.r[1]);
    p.r[1] = replica_new(p.dir[1], (size_t)1 << 20);
    assert_non_null(p.r[1]);
    p.q[1] = qsearch_new(p.r[1], NULL);
    assert_non_null(p.q[1]);
    static const uint8_t uuid[] = {1, 2, 3, 4};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(replica_reset(p.r[i], uuid, sizeof uuid), 0);
        assert_int_equal(replica_applied_seq(p.r[i]), 0);
        assert_int_equal(replica_count(p.r[i]), 0);
        assert_int_equal(qsearch_docs(p.q[i]), 0);
        assert_int_equal(replica_apply(p.r[i], PBIG, NBIG / 2, 0), 0);
    }
    size_t len = 0;
    const uint8_t *got = replica_store_uuid(p.r[1], &len);
    assert_int_equal(len, sizeof uuid);
    assert_memory_equal(got, uuid, sizeof uuid);
    assert_false(qsearch_broken(p.q[1]));
    assert_int_equal(qsearch_docs(p.q[1]), NBIG / 2);
    s_compare(p.r[0], p.r[1]);
    s_pair_close(&p);
}

static int s_old_format(void *ud, MDB_txn *txn)
{
    (void)ud;
    MDB_dbi meta;
    MDB_val k = {4, "segs"}, v;
    if (mdb_dbi_open(txn, "idx_meta", 0, &meta) || mdb_get(txn, meta, &k, &v))
        return -1;
    uint8_t *b = malloc(v.mv_size);
    if (!b)
        return -1;
    memcpy(b, v.mv_data, v.mv_size);
    uint32_t f = IDX_FORMAT - 1; /* the list's first field: the format */
    memcpy(b, &f, sizeof f);
    v.mv_data = b;
    int rc = mdb_put(txn, meta, &k, &v, 0);
    free(b);
    return rc ? -1 : 0;
}

/* A replica whose index has an older format (a new build's IDX_FORMAT):
 * idx_open clears it, and qsearch_new re-indexes every article although
 * the replica's index version is current. */
static void test_older_index_format_rebuilt(void **state)
{
    (void)state;
    rng = 5;
    s_history();
    char *dir = fx_tmpdir();
    assert_non_null(dir);
    replica *r = replica_new(dir, 0);
    assert_non_null(r);
    qsearch *q = qsearch_new(r, NULL);
    assert_non_null(q);
    assert_int_equal(replica_apply(r, P[0], NCH[0], 0), 0);
    uint64_t n = replica_count(r);
    assert_true(n > 0);
    assert_int_equal(qsearch_docs(q), n);
    qsearch_destroy(&q);
    assert_int_equal(replica_write(r, s_old_format, NULL), 0);
    q = qsearch_new(r, NULL);
    assert_non_null(q);
    assert_int_equal(qsearch_docs(q), n);
    qsearch_destroy(&q);
    replica_destroy(&r);
    fx_rmdir(dir);
}

/* --- the bulk load's postings kept across transactions --------------------- */

/* Whether meta holds the index version (the mark of a complete index). */
static bool s_version_present(replica *r)
{
    const replica_dbs *d = replica_dbs_get(r);
    MDB_txn *txn = replica_read_begin(r);
    assert_non_null(txn);
    MDB_val k = {12, "search_index"}, v;
    bool got = mdb_get(txn, d->meta, &k, &v) == 0;
    replica_read_end(r);
    return got;
}

static uint64_t s_segments(replica *r, qsearch *q)
{
    MDB_txn *txn = replica_read_begin(r);
    assert_non_null(txn);
    idx_stats_t st;
    assert_int_equal(idx_stats(qsearch_index(q), txn, &st), IDX_OK);
    replica_read_end(r);
    return st.segments;
}

/* The two indexes answer every query alike: totals, hits (ids, scores) and
 * facets; at least `min_total` hits over all the queries. */
static void s_same_answers(replica *ra, qsearch *qa, replica *rb, qsearch *qb, uint64_t min_total)
{
    static const char *extra[] = {"storm market", "\"police bridge\"", "storm OR 北京",
                                  "market -river", "mark*", "harvset"};
    uint64_t total = 0;
    for (size_t i = 0; i < NW + sizeof extra / sizeof extra[0]; i++) {
        idx_query q = {.query = i < NW ? WORDS[i] : extra[i - NW], .limit = IDX_LIMIT_MAX,
                       .facets = true};
        idx_result x, y;
        MDB_txn *ta = replica_read_begin(ra), *tb = replica_read_begin(rb);
        assert_non_null(ta);
        assert_non_null(tb);
        assert_int_equal(idx_search(qsearch_index(qa), ta, &q, &x), IDX_OK);
        assert_int_equal(idx_search(qsearch_index(qb), tb, &q, &y), IDX_OK);
        replica_read_end(ra);
        replica_read_end(rb);
        assert_int_equal(x.total, y.total);
        assert_int_equal(x.nhits, y.nhits);
        for (size_t h = 0; h < x.nhits; h++) {
            assert_int_equal(x.hits[h].id, y.hits[h].id);
            assert_true(x.hits[h].score == y.hits[h].score);
        }
        assert_int_equal(x.ncategories, y.ncategories);
        for (size_t f = 0; f < x.ncategories; f++)
            assert_int_equal(x.categories[f].count, y.categories[f].count);
        assert_int_equal(x.nsites, y.nsites);
        for (size_t f = 0; f < x.nsites; f++)
            assert_int_equal(x.sites[f].count, y.sites[f].count);
        total += x.total;
        idx_result_free(&x);
        idx_result_free(&y);
    }
    assert_true(total >= min_total);
}

/* The model: the history applied as the bulk load without the budget (a
 * segment per txn, merged by qsearch_optimize). */
static void s_model(replica *r, qsearch *q, Bulletin__Internal__Change *const *const *chunks,
                    const size_t *n, size_t nchunks)
{
    qsearch_set_bulk(q, true, 0);
    for (size_t b = 0; b < nchunks; b++)
        assert_int_equal(replica_apply(r, chunks[b], n[b], 0), 0);
    assert_int_equal(qsearch_optimize(q), 0);
    assert_true(s_version_present(r));
}

/* The history of test_bulk_same_index in pair p: a is the model (s_model),
 * b is reopened without a map limit (no MDB_MAP_FULL: nothing lost) and set
 * to hold up to `budget` bytes of postings across its txns; nothing is
 * applied to b yet. */
static void s_held_open(s_pair *p, size_t budget)
{
    rng = 99;
    s_history();
    s_pair_open(p);
    s_pair_reopen_b(p, 0);
    Bulletin__Internal__Change *const *chunks[NBATCH] = {P[0], P[1], P[2]};
    s_model(p->r[0], p->q[0], chunks, NCH, NBATCH);
    qsearch_set_bulk(p->q[1], true, budget);
}

/* The history's batches (new articles, then updates and deletes of them)
 * with the postings held across the txns, budget `budget` bytes; with the
 * analysis on the second thread or not. */
static void s_held_same_answers(size_t budget, bool threaded)
{
    s_pair p;
    s_held_open(&p, budget);
    replica *ra = p.r[0], *rb = p.r[1];
    qsearch *qa = p.q[0], *qb = p.q[1];
    for (size_t b = 0; b < NBATCH; b++) {
        if (threaded)
            assert_int_equal(qsearch_bulk_begin(qb, P[b], NCH[b]), 1);
        assert_int_equal(replica_apply(rb, P[b], NCH[b], 0), 0);
        qsearch_bulk_end(qb);
        if (b == 0 && budget > 1000000) { /* all of batch 0 held: none of it committed */
            assert_false(s_version_present(rb));
            assert_int_equal(qsearch_docs(qb), 0);
            assert_int_equal(s_segments(rb, qb), 0);
        }
    }
    assert_int_equal(qsearch_optimize(qb), 0);
    assert_true(s_version_present(rb));
    assert_false(qsearch_broken(qb));
    assert_int_equal(s_segments(rb, qb), 1);
    assert_int_equal(qsearch_docs(qb), replica_count(rb));
    assert_int_equal(qsearch_docs(qa), qsearch_docs(qb));
    s_same_answers(ra, qa, rb, qb, 1000);
    /* after the load: every commit writes what it buffered, as before */
    assert_int_equal(replica_apply(ra, P[0] + 100, 50, 0), 0); /* seqs applied: no change */
    s_pair_close(&p);
}

static void test_held_same_answers(void **state)
{
    (void)state;
    s_held_same_answers((size_t)64 << 20, true);
    s_held_same_answers((size_t)64 << 20, false);
    s_held_same_answers(200000, true); /* over the budget at some commits: written then */
    s_held_same_answers(30000, false); /* and within txns (idx_put: a segment each time) */
}

/* A qsearch dropped while it holds committed txns' postings (a worker that
 * stops during its bootstrap): the version is missing, so the next
 * qsearch_new rebuilds the index from the stored articles. */
static void test_held_dropped_rebuilt(void **state)
{
    (void)state;
    s_pair p;
    s_held_open(&p, (size_t)64 << 20);
    replica *ra = p.r[0], *rb = p.r[1];
    for (size_t b = 0; b < NBATCH; b++) {
        assert_int_equal(replica_apply(rb, P[b], NCH[b], 0), 0);
        if (b == 0) /* the index lags: batch 0 is held whole */
            assert_int_equal(qsearch_docs(p.q[1]), 0);
        assert_false(s_version_present(rb));
    }
    qsearch_destroy(&p.q[1]); /* the held postings are gone */
    p.q[1] = qsearch_new(rb, NULL);
    assert_non_null(p.q[1]);
    assert_true(s_version_present(rb));
    assert_int_equal(qsearch_docs(p.q[1]), replica_count(rb));
    s_same_answers(ra, p.q[0], rb, p.q[1], 1000);
    s_pair_close(&p);
}

/* Aborts after held commits: the big history in chunks of 25 on a 256 KiB map
 * (b), which fills after the first chunk: MDB_MAP_FULL aborts a txn (a
 * chunk's, or the one that writes the held postings) while earlier chunks'
 * postings are held; the abort drops them, the rest of the load is not
 * indexed, and qsearch_optimize rebuilds the index. */
#define NCHUNK 20
#define S_SMALL_MAP ((size_t)256 << 10)
static void test_held_map_full_rebuilt(void **state)
{
    (void)state;
    rng = 7;
    s_big_history();
    s_pair p;
    s_pair_open(&p);
    replica *ra = p.r[0], *rb = p.r[1];
    Bulletin__Internal__Change *const *chunks[NCHUNK];
    size_t n[NCHUNK];
    for (size_t c = 0; c < NCHUNK; c++) {
        chunks[c] = PBIG + c * (NBIG / NCHUNK);
        n[c] = NBIG / NCHUNK;
    }
    s_model(ra, p.q[0], chunks, n, NCHUNK);
    s_pair_reopen_b(&p, S_SMALL_MAP);
    rb = p.r[1];
    const replica_dbs *d = replica_dbs_get(rb);
    MDB_envinfo info;
    qsearch_set_bulk(p.q[1], true, (size_t)64 << 20);
    for (size_t c = 0; c < NCHUNK; c++) {
        assert_int_equal(replica_apply(rb, chunks[c], n[c], 0), 0);
        assert_int_equal(mdb_env_info(d->env, &info), 0);
        if (c == 0) /* held, committed without MDB_MAP_FULL */
            assert_int_equal(info.me_mapsize, S_SMALL_MAP);
    }
    assert_false(s_version_present(rb));
    assert_int_equal(qsearch_optimize(p.q[1]), 0);
    assert_int_equal(mdb_env_info(d->env, &info), 0);
    assert_true(info.me_mapsize > S_SMALL_MAP); /* grown: a txn after the first was aborted */
    assert_true(s_version_present(rb));
    assert_int_equal(replica_count(rb), NBIG);
    assert_int_equal(qsearch_docs(p.q[1]), NBIG);
    s_same_answers(ra, p.q[0], rb, p.q[1], 400);
    s_pair_close(&p);
}

/* A hooked write that fails (not with MDB_MAP_FULL): its abort drops the
 * held postings, as a failed commit does. */
static int s_failing_write(void *ud, MDB_txn *txn)
{
    (void)ud;
    (void)txn;
    return -1;
}

/* Put (or delete) a 7-byte key in `articles`: the rebuild's walk stops at it
 * (MDB_CORRUPTED), so every rebuild fails until it is deleted. */
static void s_bad_article_key(replica *r, bool put)
{
    const replica_dbs *d = replica_dbs_get(r);
    MDB_txn *txn;
    MDB_val k = {7, "\xff\xff\xff\xff\xff\xff\xff"}, v = {1, "x"};
    assert_int_equal(mdb_txn_begin(d->env, NULL, 0, &txn), 0);
    assert_int_equal(put ? mdb_put(txn, d->articles, &k, &v, 0) : mdb_del(txn, d->articles, &k, NULL), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
}

/* The rebuild that follows lost postings fails (storage trouble: the final
 * write is the load's biggest txn): the index lacks the load, so it is broken
 * and takes no change until it is rebuilt (the apply fails, and the worker's
 * s_index_repair rebuilds), instead of serving without the load's articles
 * and leaving every later change out. */
static void test_held_lost_rebuild_fails(void **state)
{
    (void)state;
    s_pair p;
    s_held_open(&p, (size_t)64 << 20);
    replica *ra = p.r[0], *rb = p.r[1];
    qsearch *qb = p.q[1];
    for (size_t b = 0; b + 1 < NBATCH; b++)
        assert_int_equal(replica_apply(rb, P[b], NCH[b], 0), 0);
    assert_int_equal(replica_write(rb, s_failing_write, NULL), -1); /* the held postings lost */
    s_bad_article_key(rb, true);
    assert_int_equal(qsearch_optimize(qb), -1); /* its rebuild fails */
    assert_true(qsearch_broken(qb));
    assert_false(s_version_present(rb));
    assert_true(replica_apply(rb, P[NBATCH - 1], NCH[NBATCH - 1], 0) < 0);
    s_bad_article_key(rb, false);
    assert_int_equal(qsearch_rebuild(qb), 0); /* s_index_repair */
    assert_false(qsearch_broken(qb));
    assert_int_equal(replica_apply(rb, P[NBATCH - 1], NCH[NBATCH - 1], 0), 0);
    assert_true(s_version_present(rb));
    assert_int_equal(qsearch_docs(qb), replica_count(rb));
    assert_int_equal(qsearch_docs(p.q[0]), qsearch_docs(qb));
    s_same_answers(ra, p.q[0], rb, qb, 1000);
    s_pair_close(&p);
}

/* fn with this thread (the qsearch's analysis threads inherit it) on one CPU */
static void s_on_one_cpu(void (*fn)(void **), void **state)
{
    cpu_set_t all, one;
    assert_int_equal(sched_getaffinity(0, sizeof all, &all), 0);
    int cpu = 0;
    while (!CPU_ISSET(cpu, &all))
        cpu++;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    assert_int_equal(sched_setaffinity(0, sizeof one, &one), 0);
    fn(state);
    assert_int_equal(sched_setaffinity(0, sizeof all, &all), 0);
}

static void test_bulk_same_index_one_cpu(void **state) { s_on_one_cpu(test_bulk_same_index, state); }
static void test_bulk_ahead_one_cpu(void **state) { s_on_one_cpu(test_bulk_ahead_same_index, state); }
static void test_bulk_prep_one_cpu(void **state) { s_on_one_cpu(test_bulk_prep_same_index, state); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bulk_same_index),
        cmocka_unit_test(test_bulk_ahead_same_index),
        cmocka_unit_test(test_bulk_prep_same_index),
        cmocka_unit_test(test_bulk_same_index_one_cpu),
        cmocka_unit_test(test_bulk_ahead_one_cpu),
        cmocka_unit_test(test_bulk_prep_one_cpu),
        cmocka_unit_test(test_map_full_big_txn),
        cmocka_unit_test(test_map_full_big_txn_bulk),
        cmocka_unit_test(test_map_full_reset),
        cmocka_unit_test(test_older_index_format_rebuilt),
        cmocka_unit_test(test_held_same_answers),
        cmocka_unit_test(test_held_dropped_rebuilt),
        cmocka_unit_test(test_held_map_full_rebuilt),
        cmocka_unit_test(test_held_lost_rebuild_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
