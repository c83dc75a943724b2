/*
 * idx_analyzed_test: idx_analyze on another thread + idx_put_analyzed must
 * write exactly the index idx_put writes. Two environments get the same
 * history (new docs, updates, deletes, tags, CJK, a term longer than
 * IDX_TERM_MAX, empty fields, several flushes and merges); every key and
 * value of the five idx_* databases is then compared byte for byte. Also:
 * the old-version check of idx_put_analyzed, a replayed (aborted) txn, and
 * two analyzer threads at once; the prefetch hints (idx_prefetch_analyzed)
 * given as qsearch gives them leave the same bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "lmdb_equal.h"
#include "lmdb_tmp.h"
#include "test_rand.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "idx.h"

#define NDOCS 600
#define NOPS 900

static const char *VOCAB[] = {"police", "policing", "security", "running", "runs", "market",
                              "river", "bridge", "Storm", "harvest", "café", "Éclair", "新闻",
                              "北京天气", "中国", "don't", "3.14", "naïve", "ﬁsh", "Ｔｏｋｙｏ"};
#define NV (sizeof VOCAB / sizeof VOCAB[0])
static const char *SITES[] = {"alpha.example", "beta.example", "", "gamma.example"};
static const char *CATS[] = {"news", "jokes", "bulletin"};
static const char *TAGS[] = {"t1", "t2", "long tag"};

typedef struct {
    char title[256], body[3072];
    const char *site, *cat;
    const char *tags[2];
    size_t ntags;
    int64_t pub;
} art;

typedef struct {
    uint64_t id;
    int kind; /* 0 put, 1 delete */
    art now;
    art old;
    bool has_old;
} op;

static op OPS[NOPS];
static size_t nops;
static unsigned rng = 777;
static unsigned rnd(void) {
    return test_rand(&rng);
}

static idx_doc s_doc(const art *a) {
    idx_doc d = {.title = a->title, .title_len = strlen(a->title), .body = a->body,
                 .body_len = strlen(a->body), .site = a->site, .category = a->cat,
                 .tags = a->tags, .ntags = a->ntags, .published_at = a->pub};
    return d;
}

static void s_gen(art *a, unsigned i) {
    memset(a, 0, sizeof *a);
    int nt = (int)(rnd() % 5), nb = (int)(rnd() % 120);
    for (int k = 0; k < nt; k++) {
        strcat(a->title, VOCAB[rnd() % NV]);
        strcat(a->title, " ");
    }
    for (int k = 0; k < nb; k++) {
        strcat(a->body, VOCAB[rnd() % NV]);
        strcat(a->body, rnd() % 5 ? " " : ". ");
    }
    if (i % 97 == 0) { /* a word longer than IDX_TERM_MAX: hashed key */
        size_t l = strlen(a->body);
        memset(a->body + l, 'q', 500);
        a->body[l + 500] = 0;
    }
    a->site = SITES[rnd() % 4];
    a->cat = CATS[rnd() % 3];
    a->ntags = rnd() % 3;
    for (size_t k = 0; k < a->ntags; k++)
        a->tags[k] = TAGS[(rnd() + k) % 3];
    a->pub = 1600000000000LL + (int64_t)(rnd() % 1000) * 1000;
}

/* new docs, then updates and deletes of earlier ones (the op's `old` is
 * what is indexed at that point) */
static void s_history(void) {
    static art cur[NDOCS + 1];
    static bool live[NDOCS + 1];
    nops = 0;
    for (unsigned i = 1; i <= NDOCS; i++) {
        op *o = &OPS[nops++];
        o->id = i;
        s_gen(&o->now, i);
        cur[i] = o->now;
        live[i] = true;
    }
    while (nops < NOPS) {
        uint64_t id = 1 + rnd() % NDOCS;
        op *o = &OPS[nops++];
        o->id = id;
        o->has_old = live[id];
        if (live[id])
            o->old = cur[id];
        if (live[id] && rnd() % 3 == 0) {
            o->kind = 1;
            live[id] = false;
        } else {
            s_gen(&o->now, (unsigned)nops);
            cur[id] = o->now;
            live[id] = true;
        }
    }
}

typedef struct {
    MDB_env *env;
    idx *ix;
    char dir[64];
} s_side;

static void s_open(s_side *s, const char *name) {
    snprintf(s->dir, sizeof s->dir, "/tmp/idx_analyzed_%s_XXXXXX", name);
    s->env = lmdb_tmp_open(s->dir, 8, (size_t)1 << 30);
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(s->env, NULL, 0, &txn), 0);
    idx_options o = {.max_pending_docs = 50, .merge_factor = 2, .b = -1};
    assert_int_equal(idx_open(txn, &o, &s->ix), IDX_OK);
    assert_int_equal(mdb_txn_commit(txn), 0);
}

static void s_close(s_side *s) {
    idx_close(&s->ix);
    lmdb_tmp_close(&s->env, s->dir);
}

/* the analysis thread: analyzes OPS[from..to) puts into res[] */
typedef struct {
    size_t from, to;
    idx_analyzed **res;
    int rc;
} s_job;

static void *s_analyze_thread(void *ud) {
    s_job *j = ud;
    idx_analyzer *an = idx_analyzer_new(NULL);
    if (!an) {
        j->rc = -1;
        return NULL;
    }
    for (size_t i = j->from; i < j->to; i++) {
        if (OPS[i].kind != 0)
            continue;
        idx_doc d = s_doc(&OPS[i].now);
        if (idx_analyze(an, &d, &j->res[i]) != IDX_OK)
            j->rc = -1;
    }
    idx_analyzer_destroy(&an);
    idx_analyzer_destroy(&an); /* safe twice */
    return NULL;
}

/* Apply OPS in txns of 37 ops, through idx_put or idx_put_analyzed. */
static void s_apply(s_side *s, idx_analyzed **res) {
    for (size_t i = 0; i < nops;) {
        MDB_txn *txn;
        assert_int_equal(mdb_txn_begin(s->env, NULL, 0, &txn), 0);
        size_t end = i + 37 < nops ? i + 37 : nops;
        for (; i < end; i++) {
            op *o = &OPS[i];
            idx_doc od = s_doc(&o->old);
            if (o->kind == 1) {
                assert_int_equal(idx_del(s->ix, txn, o->id, &od), IDX_OK);
            } else if (res) {
                assert_non_null(res[i]);
                /* the hints qsearch gives for the next docs: they must not change the index */
                for (int st = 0; st < 3; st++)
                    if (i + 3 - (size_t)st < nops)
                        idx_prefetch_analyzed(s->ix, res[i + 3 - (size_t)st], st);
                assert_int_equal(idx_put_analyzed(s->ix, txn, o->id, res[i], o->has_old ? &od : NULL),
                                 IDX_OK);
            } else {
                idx_doc nd = s_doc(&o->now);
                assert_int_equal(idx_put(s->ix, txn, o->id, &nd, o->has_old ? &od : NULL), IDX_OK);
            }
        }
        assert_int_equal(idx_flush(s->ix, txn), IDX_OK);
        assert_int_equal(mdb_txn_commit(txn), 0);
    }
}

static void s_compare_dbs(s_side *a, s_side *b) {
    static const char *names[] = {"idx_post", "idx_lex", "idx_col", "idx_dict", "idx_meta"};
    MDB_txn *ta, *tb;
    assert_int_equal(mdb_txn_begin(a->env, NULL, MDB_RDONLY, &ta), 0);
    assert_int_equal(mdb_txn_begin(b->env, NULL, MDB_RDONLY, &tb), 0);
    size_t total = 0;
    for (size_t n = 0; n < 5; n++) {
        MDB_dbi da, db;
        assert_int_equal(mdb_dbi_open(ta, names[n], 0, &da), 0);
        assert_int_equal(mdb_dbi_open(tb, names[n], 0, &db), 0);
        total += lmdb_assert_equal(ta, da, tb, db);
    }
    assert_true(total > 100);
    mdb_txn_abort(ta);
    mdb_txn_abort(tb);
}

static void test_same_bytes(void **state) {
    (void)state;
    s_history();
    static idx_analyzed *res[NOPS];
    memset(res, 0, sizeof res);
    /* two analysis threads at once, each with its own analyzer */
    s_job j1 = {0, nops / 2, res, 0}, j2 = {nops / 2, nops, res, 0};
    pthread_t t1, t2;
    assert_int_equal(pthread_create(&t1, NULL, s_analyze_thread, &j1), 0);
    assert_int_equal(pthread_create(&t2, NULL, s_analyze_thread, &j2), 0);
    s_side a, b;
    s_open(&a, "put");
    s_open(&b, "analyzed");
    s_apply(&a, NULL); /* meanwhile, the threads analyze */
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    assert_int_equal(j1.rc, 0);
    assert_int_equal(j2.rc, 0);
    s_apply(&b, res);
    s_compare_dbs(&a, &b);

    /* a search sees the same */
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(b.env, NULL, MDB_RDONLY, &txn), 0);
    idx_query q = {.query = "running", .limit = 5};
    idx_result r;
    assert_int_equal(idx_search(b.ix, txn, &q, &r), IDX_OK);
    assert_true(r.total > 0);
    idx_result_free(&r);
    mdb_txn_abort(txn);

    for (size_t i = 0; i < nops; i++)
        idx_analyzed_free(&res[i]);
    s_close(&a);
    s_close(&b);
}

/* the old-version checks, an aborted txn replayed with the same results */
static void test_checks_and_replay(void **state) {
    (void)state;
    s_side s;
    s_open(&s, "checks");
    idx_analyzer *an = idx_analyzer_new(NULL);
    assert_non_null(an);
    art x, y;
    s_gen(&x, 1);
    s_gen(&y, 2);
    strcat(y.title, " different");
    idx_doc dx = s_doc(&x), dy = s_doc(&y);
    idx_analyzed *ax = NULL, *ay = NULL;
    assert_int_equal(idx_analyze(an, &dx, &ax), IDX_OK);
    assert_int_equal(idx_analyze(an, &dy, &ay), IDX_OK);
    idx_analyzed *az = ax;
    assert_int_equal(idx_analyze(an, NULL, &az), IDX_INVALID_ARGUMENT);
    assert_null(az);
    assert_int_equal(idx_analyze(NULL, &dy, &az), IDX_INVALID_ARGUMENT);
    assert_int_equal(idx_analyze(an, &dy, NULL), IDX_INVALID_ARGUMENT);
    idx_prefetch_analyzed(NULL, ax, 0); /* hints: safe on NULL and an empty buffer */
    idx_prefetch_analyzed(s.ix, NULL, 1);
    for (int st = 0; st < 3; st++)
        idx_prefetch_analyzed(s.ix, ax, st);

    MDB_txn *txn;
    /* an aborted txn: discard, replay the same analyzed doc */
    assert_int_equal(mdb_txn_begin(s.env, NULL, 0, &txn), 0);
    assert_int_equal(idx_put_analyzed(s.ix, txn, 5, ax, NULL), IDX_OK);
    mdb_txn_abort(txn);
    idx_discard(s.ix);
    assert_int_equal(mdb_txn_begin(s.env, NULL, 0, &txn), 0);
    assert_int_equal(idx_put_analyzed(s.ix, txn, 0, ax, NULL), IDX_INVALID_ARGUMENT);
    assert_int_equal(idx_put_analyzed(s.ix, txn, 5, NULL, NULL), IDX_INVALID_ARGUMENT);
    assert_int_equal(idx_put_analyzed(s.ix, txn, 5, ax, NULL), IDX_OK);
    assert_int_equal(idx_flush(s.ix, txn), IDX_OK);
    assert_int_equal(mdb_txn_commit(txn), 0);

    assert_int_equal(mdb_txn_begin(s.env, NULL, 0, &txn), 0);
    /* already indexed: old required, and must be what is indexed */
    assert_int_equal(idx_put_analyzed(s.ix, txn, 5, ay, NULL), IDX_FAILED_PRECONDITION);
    assert_int_equal(idx_put_analyzed(s.ix, txn, 5, ay, &dy), IDX_FAILED_PRECONDITION);
    assert_int_equal(idx_put_analyzed(s.ix, txn, 5, ay, &dx), IDX_OK);
    assert_int_equal(idx_del(s.ix, txn, 5, &dy), IDX_OK);
    assert_int_equal(idx_flush(s.ix, txn), IDX_OK);
    assert_int_equal(mdb_txn_commit(txn), 0);

    idx_stats_t st;
    assert_int_equal(mdb_txn_begin(s.env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(idx_stats(s.ix, txn, &st), IDX_OK);
    assert_int_equal(st.docs, 0);
    mdb_txn_abort(txn);

    idx_analyzed_free(&ax);
    idx_analyzed_free(&ax); /* safe twice */
    idx_analyzed_free(&ay);
    idx_analyzer_destroy(&an);
    s_close(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_bytes),
        cmocka_unit_test(test_checks_and_replay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
