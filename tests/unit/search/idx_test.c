/*
 * idx_test: the index against a brute-force reference scorer written here
 * (it shares only the analyzer with the index), over a few hundred
 * generated articles; plus updates/deletes, phrases across fields,
 * pagination, typos, facets, a 1 MiB article and hostile queries.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "lmdb_tmp.h"
#include "test_rand.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "idx.h"
#include "idx_int.h" /* segment list: test_segments checks no key is orphaned */
#include "idx_terms.h" /* the typo scan keeps its term lists (test_typo_reference) */
#include "text.h"

#define NDOCS 400
static const char *VOCAB[] = {
    "police", "policing", "security", "secure", "securities", "mass", "line", "lines", "party",
    "running", "runs", "run", "market", "markets", "river", "bridge", "storm", "harvest",
    "village", "teacher", "report", "reports", "council", "budget", "school", "festival",
    "train", "station", "weather", "music", "léon", "café", "新闻", "北京", "天气", "中国"};
#define NV (sizeof VOCAB / sizeof VOCAB[0])
static const char *SITES[] = {"alpha.example", "beta.example", "gamma.example"};
static const char *CATS[] = {"news", "jokes", "bulletin", "sport"};
static const char *TAGS[] = {"t1", "t2", "t3"};

typedef struct {
    char title[256], body[2048];
    const char *site, *cat;
    const char *tags[2];
    size_t ntags;
    int64_t pub;
    bool live;
} art;

static art A[NDOCS + 1];
static MDB_env *env;
static idx *ix;
static char dir[64];
static unsigned rng = 12345;
static unsigned rnd(void) {
    return test_rand(&rng);
}

static idx_doc s_doc(const art *a) {
    idx_doc d = {.title = a->title, .title_len = strlen(a->title), .body = a->body,
                 .body_len = strlen(a->body), .site = a->site, .category = a->cat,
                 .tags = a->tags, .ntags = a->ntags, .published_at = a->pub};
    return d;
}

static void s_gen(art *a) {
    memset(a, 0, sizeof *a);
    int nt = 2 + (int)(rnd() % 4), nb = 10 + (int)(rnd() % 60);
    for (int i = 0; i < nt; i++) {
        strcat(a->title, VOCAB[rnd() % NV]);
        strcat(a->title, i + 1 < nt ? " " : "");
    }
    for (int i = 0; i < nb; i++) {
        strcat(a->body, VOCAB[rnd() % (NV - (rnd() % 2 ? 0 : 20))]);
        strcat(a->body, rnd() % 7 == 0 ? ". " : " ");
    }
    a->site = SITES[rnd() % 3];
    a->cat = CATS[rnd() % 4];
    a->ntags = rnd() % 3;
    for (size_t i = 0; i < a->ntags; i++)
        a->tags[i] = TAGS[(rnd() + i) % 3];
    if (a->ntags == 2 && a->tags[0] == a->tags[1])
        a->ntags = 1;
    a->pub = 1600000000000LL + (int64_t)(rnd() % 50) * 86400000LL; /* many ties */
    a->live = true;
}

/* ---------------- reference ------------------------------------------------ */

typedef struct {
    char term[64];
    uint32_t pos;
    uint8_t kind, exact, field;
} rtok;
typedef struct {
    rtok *t;
    size_t n, cap;
    uint32_t len[2];
} rdoc;
static rdoc R[NDOCS + 1];
static text_analyzer *an;
static uint8_t cur_field;

static int r_cb(void *ud, const text_token *t) {
    rdoc *d = ud;
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 64;
        d->t = realloc(d->t, d->cap * sizeof *d->t);
    }
    rtok *o = &d->t[d->n++];
    snprintf(o->term, sizeof o->term, "%.*s", (int)t->len, t->term);
    o->pos = t->pos;
    o->kind = t->kind;
    o->exact = t->exact;
    o->field = cur_field;
    return 0;
}

static void r_index(int id) {
    rdoc *d = &R[id];
    d->n = 0;
    cur_field = 0;
    text_analyze(an, A[id].title, strlen(A[id].title), 0, r_cb, d, &d->len[0]);
    cur_field = 1;
    text_analyze(an, A[id].body, strlen(A[id].body), 0, r_cb, d, &d->len[1]);
}

static uint32_t r_tf(int id, const char *term, int field) {
    uint32_t n = 0;
    for (size_t i = 0; i < R[id].n; i++)
        n += R[id].t[i].field == field && strcmp(R[id].t[i].term, term) == 0;
    return n;
}

static double N_, AVG[2];
static void r_stats(void) {
    double n = 0, s0 = 0, s1 = 0;
    for (int i = 1; i <= NDOCS; i++)
        if (A[i].live) {
            n++;
            s0 += R[i].len[0];
            s1 += R[i].len[1];
        }
    N_ = n;
    AVG[0] = s0 / n;
    AVG[1] = s1 / n;
}

static double r_df(const char *term) {
    double df = 0;
    for (int i = 1; i <= NDOCS; i++)
        if (A[i].live && (r_tf(i, term, 0) || r_tf(i, term, 1)))
            df++;
    return df;
}

static double r_bm25(int id, const char *term, bool title_only) {
    double df = r_df(term), idf = log(1 + (N_ - df + 0.5) / (df + 0.5)), s = 0;
    const double k1 = 1.2, b = 0.75, wt = 2.0;
    uint32_t tt = r_tf(id, term, 0), tb = r_tf(id, term, 1);
    if (tt)
        s += wt * tt * (k1 + 1) / (tt + k1 * (1 - b + b * R[id].len[0] / AVG[0]));
    if (tb && !title_only)
        s += tb * (k1 + 1) / (tb + k1 * (1 - b + b * R[id].len[1] / AVG[1]));
    return idf * s;
}

/* reference atoms */
typedef enum { R_WORD, R_PHRASE, R_PREFIX } rkind;
typedef struct {
    rkind kind;
    const char *text;
    bool title_only;
} ratom;
typedef struct {
    ratom alts[4];
    int na;
    bool neg;
} rclause;

static void r_stem(const char *w, char *out) {
    rdoc tmp = {0};
    cur_field = 0;
    text_analyze(an, w, strlen(w), 0, r_cb, &tmp, NULL);
    strcpy(out, tmp.n ? tmp.t[0].term : "");
    free(tmp.t);
}

/* phrase components: exact forms */
typedef struct {
    char term[64];
    bool need_exact;
} rcomp;
static int r_phrase_comps(const char *text, rcomp *c) {
    rdoc tmp = {0};
    text_analyze(an, text, strlen(text), 0, r_cb, &tmp, NULL);
    int n = 0;
    for (size_t i = 0; i < tmp.n; i++) {
        if (tmp.t[i].kind == TEXT_TERM_STEM && !tmp.t[i].exact)
            continue;
        strcpy(c[n].term, tmp.t[i].term);
        c[n].need_exact = tmp.t[i].kind == TEXT_TERM_STEM;
        n++;
    }
    free(tmp.t);
    return n;
}

static bool r_match_atom(int id, const ratom *a, double *score) {
    *score = 0;
    if (a->kind == R_WORD) {
        char st[64];
        r_stem(a->text, st);
        bool m = r_tf(id, st, 0) || (!a->title_only && r_tf(id, st, 1));
        if (m)
            *score = r_bm25(id, st, a->title_only);
        return m;
    }
    if (a->kind == R_PREFIX) {
        size_t pl = strlen(a->text);
        for (size_t i = 0; i < R[id].n; i++) {
            const rtok *t = &R[id].t[i];
            if (a->title_only && t->field)
                continue;
            const char *s = t->term + (t->kind == TEXT_TERM_EXACT);
            if (strncmp(s, a->text, pl) == 0) {
                *score = 1.0;
                return true;
            }
        }
        return false;
    }
    rcomp c[16];
    int n = r_phrase_comps(a->text, c);
    bool found = false;
    for (int f = 0; f < (a->title_only ? 1 : 2) && !found; f++) {
        for (size_t i = 0; i < R[id].n && !found; i++) {
            const rtok *t0 = &R[id].t[i];
            if (t0->field != f || strcmp(t0->term, c[0].term) || (c[0].need_exact && !t0->exact))
                continue;
            bool ok = true;
            for (int k = 1; k < n && ok; k++) {
                ok = false;
                for (size_t j = 0; j < R[id].n; j++) {
                    const rtok *t = &R[id].t[j];
                    if (t->field == f && t->pos == t0->pos + (uint32_t)k && !strcmp(t->term, c[k].term) &&
                        (!c[k].need_exact || t->exact))
                        ok = true;
                }
            }
            found = ok;
        }
    }
    if (found)
        for (int k = 0; k < n; k++)
            *score += r_bm25(id, c[k].term, a->title_only);
    return found;
}

typedef struct {
    int id;
    double score;
} rhit;
static int r_cmp(const void *a, const void *b) {
    const rhit *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    if (A[x->id].pub != A[y->id].pub)
        return A[x->id].pub > A[y->id].pub ? -1 : 1;
    return x->id > y->id ? -1 : 1;
}

typedef struct {
    const char *site, *cat, *tag;
    int64_t since, until;
} rfilter;

static size_t r_search(const rclause *cl, int ncl, const rfilter *f, rhit *out) {
    size_t n = 0;
    for (int id = 1; id <= NDOCS; id++) {
        if (!A[id].live)
            continue;
        if (f->site && strcmp(A[id].site, f->site))
            continue;
        if (f->cat && strcmp(A[id].cat, f->cat))
            continue;
        if (f->tag) {
            bool t = false;
            for (size_t i = 0; i < A[id].ntags; i++)
                t |= !strcmp(A[id].tags[i], f->tag);
            if (!t)
                continue;
        }
        if ((f->since && A[id].pub < f->since) || (f->until && A[id].pub >= f->until))
            continue;
        double total = 0;
        bool ok = true;
        for (int c = 0; c < ncl && ok; c++) {
            double cs = 0;
            bool any = false;
            for (int a = 0; a < cl[c].na; a++) {
                double s;
                if (r_match_atom(id, &cl[c].alts[a], &s)) {
                    any = true;
                    cs += s;
                }
            }
            if (cl[c].neg)
                ok = !any;
            else {
                ok = any;
                total += cs;
            }
        }
        if (ok)
            out[n++] = (rhit){id, total};
    }
    qsort(out, n, sizeof *out, r_cmp);
    return n;
}

/* ---------------- fixtures ------------------------------------------------- */

/* group 1: batches of 64, default merging; group 2: batches of 7 and
 * merge_factor 2, so that segments are merged all the time (stale versions
 * dropped, deltas summed) while the reference comparisons run */
static idx_options g_opts = {.b = -1, .no_typos = true, .max_pending_docs = 64};
/* group 3: as group 2, but loaded in bulk mode (idx_set_bulk), one txn and
 * one flush per BULK_TXN docs: no flush in between despite max_pending_docs
 * 7, no merge despite merge_factor 2, and every answer still the reference's */
static bool g_bulk;
#define BULK_TXN 50

static int setup(void **state) {
    (void)state;
    strcpy(dir, "/tmp/idx_test_XXXXXX");
    env = lmdb_tmp_open(dir, 16, 1ull << 30);
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(idx_open(txn, &g_opts, &ix), IDX_OK);
    an = text_analyzer_new(NULL);
    idx_set_bulk(ix, g_bulk, 0);
    for (int i = 1; i <= NDOCS; i++) {
        s_gen(&A[i]);
        idx_doc d = s_doc(&A[i]);
        assert_int_equal(idx_put(ix, txn, (uint64_t)i, &d, NULL), IDX_OK);
        r_index(i);
        if (g_bulk && i % BULK_TXN == 0 && i < NDOCS) {
            assert_int_equal(idx_flush(ix, txn), IDX_OK);
            assert_int_equal(mdb_txn_commit(txn), 0);
            assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
        }
    }
    assert_int_equal(idx_flush(ix, txn), IDX_OK);
    if (g_bulk) { /* one segment per txn: nothing flushed early, nothing merged */
        idx_segs sg;
        assert_int_equal(idx_segs_get(ix, txn, &sg), 0);
        assert_int_equal(sg.nsegs, NDOCS / BULK_TXN);
        for (size_t i = 0; i < sg.nsegs; i++)
            assert_int_equal(sg.seg[i].ndocs, BULK_TXN);
        idx_set_bulk(ix, false, 0); /* the later tests' updates merge as usual */
    }
    assert_int_equal(mdb_txn_commit(txn), 0);
    r_stats();
    return 0;
}

static int teardown(void **state) {
    (void)state;
    idx_close(&ix);
    lmdb_tmp_close(&env, dir);
    text_analyzer_destroy(&an);
    for (int i = 0; i <= NDOCS; i++)
        free(R[i].t);
    memset(R, 0, sizeof R);
    return 0;
}

static int s_search(const idx_query *q, idx_result *r) {
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    int rc = idx_search(ix, txn, q, r);
    mdb_txn_abort(txn);
    return rc;
}

static void s_compare(const char *query, const rclause *cl, int ncl, const rfilter *f, uint32_t limit) {
    static rhit ref[NDOCS];
    r_stats();
    size_t nref = r_search(cl, ncl, f, ref);
    idx_query q = {.query = query, .limit = limit, .site = f->site, .category = f->cat,
                   .tag = f->tag, .since = f->since, .until = f->until};
    idx_result r;
    int rc = s_search(&q, &r);
    if (rc)
        fail_msg("query '%s': %s at %ld", query, r.error, r.error_pos);
    if (r.total != nref)
        fail_msg("query '%s': total %llu, reference %zu", query, (unsigned long long)r.total, nref);
    size_t want = nref < limit ? nref : limit;
    assert_int_equal(r.nhits, want);
    for (size_t i = 0; i < want; i++) {
        if (r.hits[i].id != (uint64_t)ref[i].id || fabs(r.hits[i].score - ref[i].score) > 1e-6)
            fail_msg("query '%s' rank %zu: got id %llu score %.9f, reference id %d score %.9f", query, i,
                     (unsigned long long)r.hits[i].id, r.hits[i].score, ref[i].id, ref[i].score);
    }
    idx_result_free(&r);
}

#define W(t) {R_WORD, t, false}
#define P(t) {R_PHRASE, t, false}
#define X(t) {R_PREFIX, t, false}

static void test_reference(void **state) {
    (void)state;
    rfilter nf = {0};
    rclause c1[] = {{{W("police")}, 1, false}};
    s_compare("police", c1, 1, &nf, 10);
    s_compare("POLICE", c1, 1, &nf, 50);
    rclause c2[] = {{{W("mass")}, 1, false}, {{W("line")}, 1, false}};
    s_compare("mass line", c2, 2, &nf, 10);
    rclause c3[] = {{{P("mass line")}, 1, false}};
    s_compare("\"mass line\"", c3, 1, &nf, 10);
    rclause c3b[] = {{{P("running market")}, 1, false}};
    s_compare("\"running market\"", c3b, 1, &nf, 10);
    rclause c4[] = {{{W("police")}, 1, false}, {{W("party")}, 1, true}};
    s_compare("police -party", c4, 2, &nf, 10);
    rclause c5[] = {{{W("police"), W("security")}, 2, false}};
    s_compare("police OR security", c5, 1, &nf, 10);
    rclause c6[] = {{{X("secur")}, 1, false}};
    s_compare("secur*", c6, 1, &nf, 10);
    rclause c7[] = {{{{R_WORD, "police", true}}, 1, false}};
    s_compare("title:police", c7, 1, &nf, 10);
    rclause c8[] = {{{W("river")}, 1, false}, {{W("bridge"), W("storm")}, 2, false}, {{P("music festival")}, 1, true}};
    s_compare("river bridge OR storm -\"music festival\"", c8, 3, &nf, 20);
    rclause c9[] = {{{W("北京")}, 1, false}};
    s_compare("北京", c9, 1, &nf, 10);
    /* blocks mark frequencies (0, 1) in a bitmap after their doc-id deltas
     * (idx_int.h): every hit's score checks the frequencies */
    s_compare("北京", c9, 1, &nf, 400);
    rclause c9b[] = {{{W("京")}, 1, false}};
    s_compare("京", c9b, 1, &nf, 400);
    rclause c9c[] = {{{W("中国")}, 1, false}, {{W("天")}, 1, false}};
    s_compare("中国 天", c9c, 2, &nf, 400);
    rclause c10[] = {{{W("leon")}, 1, false}, {{W("CAFE")}, 1, false}};
    s_compare("Léon café", c10, 2, &nf, 10);
    rclause c11[] = {{{W("run")}, 1, false}};
    s_compare("runs", c11, 1, &nf, 10);
    /* filters: in the query and as fields */
    rfilter fs = {.site = "beta.example"};
    s_compare("site:beta.example police", c1, 1, &fs, 10);
    s_compare("police", c1, 1, &fs, 10);
    rfilter fc = {.cat = "jokes"};
    s_compare("category:jokes mass line", c2, 2, &fc, 10);
    rfilter ft = {.tag = "t2"};
    s_compare("tag:t2 police", c1, 1, &ft, 10);
    rfilter fd = {.since = 1600000000000LL + 10 * 86400000LL, .until = 1600000000000LL + 30 * 86400000LL};
    s_compare("police OR security", c5, 1, &fd, 10);
    rfilter fx = {.site = "nope"};
    s_compare("police", c1, 1, &fx, 10);
}

static void test_pagination(void **state) {
    (void)state;
    idx_query q = {.query = "line OR market", .limit = 1000};
    idx_result all;
    assert_int_equal(s_search(&q, &all), IDX_OK);
    assert_true(all.nhits > 30);
    assert_int_equal(all.nhits, all.total);
    /* by offset */
    for (uint32_t off = 0; off < all.nhits; off += 7) {
        idx_query p = {.query = "line OR market", .limit = 7, .offset = off};
        idx_result r;
        assert_int_equal(s_search(&p, &r), IDX_OK);
        for (size_t i = 0; i < r.nhits; i++)
            assert_int_equal(r.hits[i].id, all.hits[off + i].id);
        idx_result_free(&r);
    }
    /* by cursor */
    uint8_t cur[IDX_CURSOR_LEN];
    size_t curlen = 0, seen = 0;
    for (;;) {
        idx_query p = {.query = "line OR market", .limit = 9, .cursor = cur, .cursor_len = curlen};
        idx_result r;
        assert_int_equal(s_search(&p, &r), IDX_OK);
        for (size_t i = 0; i < r.nhits; i++)
            assert_int_equal(r.hits[i].id, all.hits[seen + i].id);
        seen += r.nhits;
        curlen = r.next_cursor_len;
        memcpy(cur, r.next_cursor, curlen);
        idx_result_free(&r);
        if (!curlen)
            break;
    }
    assert_int_equal(seen, all.nhits);
    idx_query bad = {.query = "line", .cursor = (const uint8_t *)"xx", .cursor_len = 2};
    idx_result r;
    assert_int_equal(s_search(&bad, &r), IDX_INVALID_ARGUMENT);
    idx_result_free(&r);
    idx_result_free(&all);
}

static void test_facets(void **state) {
    (void)state;
    idx_query q = {.query = "police", .facets = true};
    idx_result r;
    assert_int_equal(s_search(&q, &r), IDX_OK);
    uint64_t sum = 0;
    for (size_t i = 0; i < r.ncategories; i++) {
        uint64_t want = 0;
        for (int id = 1; id <= NDOCS; id++)
            if (A[id].live && !strcmp(A[id].cat, r.categories[i].value) &&
                (r_tf(id, "polic", 0) || r_tf(id, "polic", 1)))
                want++;
        assert_int_equal(r.categories[i].count, want);
        sum += r.categories[i].count;
    }
    assert_int_equal(sum, r.total);
    sum = 0;
    for (size_t i = 0; i < r.nsites; i++)
        sum += r.sites[i].count;
    assert_int_equal(sum, r.total);
    idx_result_free(&r);
}

static void s_put(uint64_t id, const art *a, const art *old, int want) {
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    idx_doc d = s_doc(a), od;
    if (old)
        od = s_doc(old);
    assert_int_equal(idx_put(ix, txn, id, &d, old ? &od : NULL), want);
    assert_int_equal(idx_flush(ix, txn), IDX_OK);
    assert_int_equal(mdb_txn_commit(txn), 0);
}

static void test_update_delete_boundary(void **state) {
    (void)state;
    /* phrase across title/body must not match */
    art x = {0};
    strcpy(x.title, "zebra alpha");
    strcpy(x.body, "omega unicorn");
    x.site = "alpha.example";
    x.cat = "news";
    x.pub = 1;
    x.live = true;
    art old = A[5];
    s_put(5, &x, NULL, IDX_FAILED_PRECONDITION); /* indexed: old version required */
    s_put(5, &x, &x, IDX_FAILED_PRECONDITION);   /* wrong old version */
    /* an old version that differs from the indexed one in one thing the
     * column record holds: refused by idx_put and idx_del alike */
    for (int k = 0; k < 7; k++) {
        art w = old;
        switch (k) {
        case 0: w.pub++; break;
        case 1: w.site = strcmp(w.site, SITES[0]) ? SITES[0] : SITES[1]; break;
        case 2: w.site = NULL; break;
        case 3: w.cat = strcmp(w.cat, CATS[0]) ? CATS[0] : CATS[1]; break;
        case 4: w.cat = ""; break;
        case 5: strcat(w.title, " zebra"); break;
        default: strcat(w.body, " zebra"); break;
        }
        s_put(5, &x, &w, IDX_FAILED_PRECONDITION);
        MDB_txn *txn;
        assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
        idx_doc wd = s_doc(&w);
        assert_int_equal(idx_del(ix, txn, 5, &wd), IDX_FAILED_PRECONDITION);
        assert_int_equal(idx_del(ix, txn, 5, NULL), IDX_FAILED_PRECONDITION);
        assert_int_equal(idx_flush(ix, txn), IDX_OK);
        assert_int_equal(mdb_txn_commit(txn), 0);
    }
    s_put(5, &x, &old, IDX_OK);
    A[5] = x;
    r_index(5);
    idx_query q = {.query = "\"alpha omega\""};
    idx_result r;
    assert_int_equal(s_search(&q, &r), IDX_OK);
    assert_int_equal(r.total, 0);
    idx_result_free(&r);
    q.query = "\"zebra alpha\"";
    assert_int_equal(s_search(&q, &r), IDX_OK);
    assert_int_equal(r.total, 1);
    assert_int_equal(r.hits[0].id, 5);
    idx_result_free(&r);
    /* the old words of doc 5 are gone: reference comparison covers it */
    rfilter nf = {0};
    rclause c1[] = {{{W("police")}, 1, false}};
    s_compare("police", c1, 1, &nf, 400);
    /* delete */
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    idx_doc d = s_doc(&A[5]);
    assert_int_equal(idx_del(ix, txn, 5, &d), IDX_OK);
    assert_int_equal(idx_del(ix, txn, 5, &d), IDX_OK); /* idempotent */
    for (int id = 10; id < 60; id += 3) {
        idx_doc e = s_doc(&A[id]);
        assert_int_equal(idx_del(ix, txn, (uint64_t)id, &e), IDX_OK);
        A[id].live = false;
    }
    assert_int_equal(idx_flush(ix, txn), IDX_OK); /* deletes are buffered like puts */
    assert_int_equal(mdb_txn_commit(txn), 0);
    A[5].live = false;
    q.query = "zebra";
    assert_int_equal(s_search(&q, &r), IDX_OK);
    assert_int_equal(r.total, 0);
    idx_result_free(&r);
    s_compare("police", c1, 1, &nf, 400);
    rclause c2[] = {{{W("mass")}, 1, false}, {{W("line")}, 1, false}};
    s_compare("mass line", c2, 2, &nf, 10);
    /* re-add deleted ids (ids go back into the middle of posting lists) */
    for (int id = 10; id < 60; id += 3) {
        s_gen(&A[id]);
        s_put((uint64_t)id, &A[id], NULL, IDX_OK);
        r_index(id);
    }
    s_compare("police", c1, 1, &nf, 400);
    rclause c6[] = {{{X("secur")}, 1, false}};
    s_compare("secur*", c6, 1, &nf, 10);
}

static void test_errors(void **state) {
    (void)state;
    struct {
        const char *q;
        long pos;
    } bad[] = {{"", -1},       {"   ", -1},         {"\"mass line", 0}, {"police \"", 7},
               {"police OR", 7}, {"OR police", 0},  {"s*", 0},          {"-police", 0},
               {"police -", 7},  {"\"\"", 0},       {"a OR OR b", 5},   {"site:alpha.example", -1}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        idx_query q = {.query = bad[i].q};
        idx_result r;
        int rc = s_search(&q, &r);
        if (rc != IDX_INVALID_ARGUMENT || r.error_pos != bad[i].pos || !r.error[0])
            fail_msg("query '%s': rc %d pos %ld (want %ld) '%s'", bad[i].q, rc, r.error_pos, bad[i].pos,
                     r.error);
        idx_result_free(&r);
    }
    /* 10,000 terms: refused quickly */
    size_t n = 10000 * 7;
    char *big = malloc(n + 1);
    for (size_t i = 0; i < 10000; i++)
        memcpy(big + i * 7, i % 2 ? "police " : "market ", 7);
    big[n] = 0;
    idx_query q = {.query = big};
    idx_result r;
    assert_int_equal(s_search(&q, &r), IDX_INVALID_ARGUMENT);
    idx_result_free(&r);
    /* under the byte limit but too many terms */
    big[IDX_QUERY_MAX_BYTES - 10] = 0;
    q.query = big;
    assert_int_equal(s_search(&q, &r), IDX_INVALID_ARGUMENT);
    assert_true(strstr(r.error, "too many terms") != NULL);
    idx_result_free(&r);
    free(big);
    /* limits */
    q = (idx_query){.query = "police", .limit = 5000};
    assert_int_equal(s_search(&q, &r), IDX_INVALID_ARGUMENT);
    idx_result_free(&r);
}

static void test_typos(void **state) {
    (void)state;
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    idx *t;
    idx_options o = {.b = -1};
    assert_int_equal(idx_open(txn, &o, &t), IDX_OK);
    idx_query q = {.query = "polise", .limit = 10};
    idx_result r;
    assert_int_equal(idx_search(t, txn, &q, &r), IDX_OK);
    assert_true(r.nhits > 0);
    for (size_t i = 0; i < r.nhits; i++)
        assert_true(r.hits[i].typo);
    idx_result_free(&r);
    /* exact hits rank above typo-only hits: "festivals" (exact: festival) */
    q.query = "marketz";
    assert_int_equal(idx_search(t, txn, &q, &r), IDX_OK);
    assert_true(r.nhits > 0);
    idx_result_free(&r);
    idx_close(&t);
    mdb_txn_abort(txn);
}

/* Reference Levenshtein distance on bytes (full table). */
static int s_ref_lev(const char *a, const char *b) {
    size_t al = strlen(a), bl = strlen(b);
    int d[40][40];
    for (size_t i = 0; i <= al; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= bl; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= al; i++)
        for (size_t j = 1; j <= bl; j++) {
            int v = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < v)
                v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            d[i][j] = v;
        }
    return d[al][bl];
}

/* One random edit of w (substitute, delete or insert a letter of alpha)
 * after its first two letters. */
static void s_typo_edit(char *w, unsigned *r, const char *alpha, size_t nalpha) {
    size_t l = strlen(w);
    *r = *r * 1103515245u + 12345u;
    size_t at = 2 + (*r >> 16) % (l - 1); /* the first two stay */
    *r = *r * 1103515245u + 12345u;
    char c = alpha[(*r >> 16) % nalpha];
    *r = *r * 1103515245u + 12345u;
    switch ((*r >> 16) % 3) {
    case 0: /* substitute */
        if (at < l)
            w[at] = c;
        break;
    case 1: /* delete */
        if (at < l && l > 4)
            memmove(w + at, w + at + 1, l - at);
        break;
    default: /* insert */
        if (l < 20) {
            memmove(w + at + 1, w + at, l - at + 1);
            w[at] = c;
        }
    }
}

/* Typo alternatives against the reference distance: words made of letters
 * Snowball leaves alone (no vowels, s or y), each query with its own first
 * two letters and at most S_TYPO_ALTS (8) words within reach, so every word
 * within 1 edit (2 from 9 characters on) of the query must be found, and no
 * other. With decoys: per query that many more words with its first two
 * letters, each out of reach (half of them the query with more edits than
 * allowed, half random), which fill many lexicon pages around the query's
 * words (the scan seeks past dead prefixes, across pages); no decoy may be
 * a hit. Indexed in batches of `pending` with merge factor 3 (several
 * segments, the scan's "seen" table) and after idx_optimize (one segment). */
static void s_typo_reference(int decoys, uint32_t pending) {
    char tdir[] = "/tmp/idx_typo_XXXXXX";
    MDB_env *e = lmdb_tmp_open(tdir, 16, 1ull << 28);
    idx_options o = {.b = -1, .max_pending_docs = pending, .merge_factor = 3};
    MDB_txn *txn;
    idx *t;
    assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
    assert_int_equal(idx_open(txn, &o, &t), IDX_OK);
    enum { NQ = 12, NW = 24 };
    static const char alpha[] = "bcdfgh";
    static const char dalpha[] = "bcdfghjklmnpqrtvwx";
    static const char firsts[] = "jklmnpqrtvwx";
    const uint64_t decoy0 = NQ * NW + 1; /* ids from here on are decoys */
    uint64_t did = decoy0;
    char queries[NQ][24], words[NQ][NW][24];
    int near[NQ][NW];
    unsigned r = 99;
    uint64_t id = 0;
    for (int qi = 0; qi < NQ; qi++) {
        char *q = queries[qi];
        size_t ql = (size_t)(qi % 2 ? 10 : 6) + (size_t)(qi % 3);
        q[0] = firsts[qi];
        q[1] = 'z';
        for (size_t k = 2; k < ql; k++) {
            r = r * 1103515245u + 12345u;
            q[k] = alpha[(r >> 16) % 6];
        }
        q[ql] = 0;
        int maxd = ql >= 9 ? 2 : 1, within = 0;
        for (int wi = 0; wi < NW; wi++) {
            char *w = words[qi][wi];
            do {
                strcpy(w, q);
                r = r * 1103515245u + 12345u;
                int edits = 1 + (int)((r >> 16) % 3);
                for (int k = 0; k < edits; k++)
                    s_typo_edit(w, &r, alpha, 6);
                int dist = s_ref_lev(q, w);
                near[qi][wi] = dist >= 1 && dist <= maxd;
            } while (near[qi][wi] && within >= 8); /* keep it to 8 within reach */
            bool dup = false;
            for (int k = 0; k < wi; k++)
                dup = dup || strcmp(words[qi][k], w) == 0;
            if (dup || strcmp(w, q) == 0) {
                near[qi][wi] = 0;
                w[0] = 0; /* not indexed */
                continue;
            }
            within += near[qi][wi];
            art a = {.site = "s", .cat = "c", .pub = 1};
            snprintf(a.title, sizeof a.title, "t");
            snprintf(a.body, sizeof a.body, "%s", w);
            idx_doc d = s_doc(&a);
            id = (uint64_t)qi * NW + (uint64_t)wi + 1;
            assert_int_equal(idx_put(t, txn, id, &d, NULL), IDX_OK);
        }
        for (int k = 0; k < decoys; k++) {
            char w[24];
            r = r * 1103515245u + 12345u;
            if (k % 2) {
                size_t l = 3 + (r >> 16) % 14;
                w[0] = q[0];
                w[1] = 'z';
                for (size_t j = 2; j < l; j++) {
                    r = r * 1103515245u + 12345u;
                    w[j] = dalpha[(r >> 16) % (sizeof dalpha - 1)];
                }
                w[l] = 0;
            } else {
                strcpy(w, q);
                for (int e = 0; e < maxd + 1 + (int)((r >> 16) % 3); e++)
                    s_typo_edit(w, &r, dalpha, sizeof dalpha - 1);
            }
            if (s_ref_lev(q, w) <= maxd)
                continue;
            art a = {.site = "s", .cat = "c", .pub = 1};
            snprintf(a.title, sizeof a.title, "t");
            snprintf(a.body, sizeof a.body, "%s", w);
            idx_doc d = s_doc(&a);
            assert_int_equal(idx_put(t, txn, did++, &d, NULL), IDX_OK);
        }
    }
    assert_int_equal(idx_flush(t, txn), IDX_OK);
    /* rounds 0 and 1 in the write txn (term lists read for each scan), 2
     * and 3 in read txns after the commit: the term lists read, then kept */
    uint64_t builds = 0;
    for (int round = 0; round < 4; round++) {
        if (round == 1)
            assert_int_equal(idx_optimize(t, txn), IDX_OK);
        if (round == 2) {
            assert_int_equal(idx_terms_builds(t->terms), 0); /* nothing kept from a write txn */
            assert_int_equal(mdb_txn_commit(txn), 0);
            assert_int_equal(mdb_txn_begin(e, NULL, MDB_RDONLY, &txn), 0);
        }
        if (round == 3) {
            builds = idx_terms_builds(t->terms);
            assert_true(builds > 0 && idx_terms_bytes(t->terms) > 0);
            mdb_txn_abort(txn);
            assert_int_equal(mdb_txn_begin(e, NULL, MDB_RDONLY, &txn), 0);
        }
        for (int qi = 0; qi < NQ; qi++) {
            idx_query q = {.query = queries[qi], .limit = 50};
            idx_result res;
            assert_int_equal(idx_search(t, txn, &q, &res), IDX_OK);
            id = (uint64_t)qi * NW; /* ids of this query's words: id+1 .. */
            for (int wi = 0; wi < NW; wi++) {
                if (!words[qi][wi][0])
                    continue;
                bool hit = false;
                for (size_t h = 0; h < res.nhits; h++)
                    hit = hit || res.hits[h].id == id + (uint64_t)wi + 1;
                if (hit != (near[qi][wi] != 0))
                    fail_msg("round %d query %s word %s (distance %d): %s", round, queries[qi],
                             words[qi][wi], s_ref_lev(queries[qi], words[qi][wi]),
                             hit ? "found" : "not found");
            }
            for (size_t h = 0; h < res.nhits; h++) {
                assert_true(res.hits[h].typo);
                if (res.hits[h].id >= decoy0)
                    fail_msg("round %d query %s: a decoy is a hit", round, queries[qi]);
            }
            idx_result_free(&res);
        }
    }
    assert_int_equal(idx_terms_builds(t->terms), builds); /* round 3: every list was kept */
    idx_close(&t);
    mdb_txn_abort(txn);
    lmdb_tmp_close(&e, tdir);
}

static void test_typo_reference(void **state) {
    (void)state;
    s_typo_reference(0, 5);
}

/* The same among 1,500 decoys per query (a lexicon of ~18,000 terms). */
static void test_typo_reference_decoys(void **state) {
    (void)state;
    s_typo_reference(1500, 4096);
}

/* The typo scan's kept term lists follow the data: after another idx
 * object cleared the index and indexed other words (the same doc id, count
 * and flush: a segment that would look the same but for its id), the
 * first idx's typo search finds the new words, not its kept ones. */
static void s_put_word(MDB_env *e, idx *t, bool clear, const char *word) {
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
    if (clear)
        assert_int_equal(idx_clear(t, txn), IDX_OK);
    art a = {.site = "s", .cat = "c", .pub = 1};
    snprintf(a.title, sizeof a.title, "t");
    snprintf(a.body, sizeof a.body, "%s", word);
    idx_doc d = s_doc(&a);
    assert_int_equal(idx_put(t, txn, 1, &d, NULL), IDX_OK);
    assert_int_equal(idx_flush(t, txn), IDX_OK);
    assert_int_equal(mdb_txn_commit(txn), 0);
}

static size_t s_typo_hits(MDB_env *e, idx *t, const char *query) {
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(e, NULL, MDB_RDONLY, &txn), 0);
    idx_query q = {.query = query, .limit = 10};
    idx_result res;
    assert_int_equal(idx_search(t, txn, &q, &res), IDX_OK);
    size_t n = res.nhits;
    for (size_t i = 0; i < n; i++)
        assert_true(res.hits[i].typo && res.hits[i].id == 1);
    idx_result_free(&res);
    mdb_txn_abort(txn);
    return n;
}

static void test_typo_terms_after_clear(void **state) {
    (void)state;
    char tdir[] = "/tmp/idx_tclear_XXXXXX";
    MDB_env *e = lmdb_tmp_open(tdir, 16, 1ull << 26);
    idx_options o = {.b = -1, .max_pending_docs = 10};
    MDB_txn *txn;
    idx *a, *b;
    assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
    assert_int_equal(idx_open(txn, &o, &a), IDX_OK);
    assert_int_equal(idx_open(txn, &o, &b), IDX_OK);
    assert_int_equal(mdb_txn_commit(txn), 0);
    s_put_word(e, a, false, "kzbbbbb");
    assert_int_equal(s_typo_hits(e, a, "kzbbbbc"), 1);
    assert_int_equal(s_typo_hits(e, a, "kzddddc"), 0);
    assert_true(idx_terms_builds(a->terms) > 0);
    s_put_word(e, b, true, "kzddddd"); /* b clears: a does not see it happen */
    assert_int_equal(s_typo_hits(e, a, "kzddddc"), 1);
    assert_int_equal(s_typo_hits(e, a, "kzbbbbc"), 0);
    size_t kept = idx_terms_bytes(a->terms);
    s_put_word(e, a, true, "kzbbbbb"); /* a clears: its own lists go at once */
    assert_true(idx_terms_bytes(a->terms) < kept);
    assert_int_equal(s_typo_hits(e, a, "kzbbbbc"), 1);
    assert_int_equal(s_typo_hits(e, a, "kzddddc"), 0);
    idx_close(&a);
    idx_close(&b);
    lmdb_tmp_close(&e, tdir);
}

/* idx_error: LMDB's own code behind an IDX_INTERNAL (MDB_MAP_FULL from a
 * write that does not fit a tiny map), reset by the next call. */
static void test_error_code(void **state) {
    (void)state;
    assert_int_equal(idx_error(NULL), 0);
    char edir[] = "/tmp/idx_err_XXXXXX";
    MDB_env *e = lmdb_tmp_open(edir, 16, 256u << 10);
    idx_options o = {.b = -1, .no_typos = true};
    MDB_txn *txn;
    idx *t;
    assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
    assert_int_equal(idx_open(txn, &o, &t), IDX_OK);
    assert_int_equal(mdb_txn_commit(txn), 0);
    char body[4096];
    unsigned r = 5;
    int st = IDX_OK;
    assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
    for (uint64_t id = 1; id <= 1000 && st == IDX_OK; id++) {
        size_t n = 0;
        while (n + 8 < sizeof body) { /* distinct made-up words */
            for (int k = 0; k < 6; k++) {
                r = r * 1103515245u + 12345u;
                body[n++] = (char)('a' + (r >> 16) % 26);
            }
            body[n++] = ' ';
        }
        idx_doc d = {.title = "t", .title_len = 1, .body = body, .body_len = n, .published_at = 1};
        st = idx_put(t, txn, id, &d, NULL);
        if (st == IDX_OK)
            assert_int_equal(idx_error(t), 0);
    }
    assert_int_equal(st, IDX_INTERNAL);
    assert_int_equal(idx_error(t), MDB_MAP_FULL);
    mdb_txn_abort(txn);
    idx_discard(t);
    assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
    idx_doc d = {.title = "t", .title_len = 1, .body = "small", .body_len = 5, .published_at = 1};
    assert_int_equal(idx_put(t, txn, 1, &d, NULL), IDX_OK);
    assert_int_equal(idx_error(t), 0);
    assert_int_equal(idx_flush(t, txn), IDX_OK);
    assert_int_equal(mdb_txn_commit(txn), 0);
    idx_close(&t);
    lmdb_tmp_close(&e, edir);
}

static void test_big_article(void **state) {
    (void)state;
    size_t n = 1 << 20;
    art *x = calloc(1, sizeof *x);
    char *body = malloc(n + 1);
    size_t o = 0;
    unsigned k = 0;
    while (o + 16 < n) {
        /* a needle every 2000 words: the first lies within the 16 KiB a snippet scans */
        const char *w = (k % 2000 == 1999) ? "needle " : (k % 3 ? "hay " : "straw ");
        memcpy(body + o, w, strlen(w));
        o += strlen(w);
        k++;
    }
    body[o] = 0;
    strcpy(x->title, "the big one");
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    idx_doc d = {.title = x->title, .title_len = strlen(x->title), .body = body, .body_len = o,
                 .site = "big", .category = "big", .published_at = 7};
    assert_int_equal(idx_put(ix, txn, 100000, &d, NULL), IDX_OK);
    assert_int_equal(idx_flush(ix, txn), IDX_OK);
    assert_int_equal(mdb_txn_commit(txn), 0);
    idx_query q = {.query = "\"hay straw\" needle"};
    idx_result r;
    assert_int_equal(s_search(&q, &r), IDX_OK);
    assert_int_equal(r.total, 1);
    assert_int_equal(r.hits[0].id, 100000);
    char snip[1024], snip2[1024];
    size_t sl = idx_snippet(ix, &r, body, o, "[", "]", snip, sizeof snip);
    assert_true(sl > 50 && sl < 400);
    assert_non_null(strstr(snip, "[needle]"));
    /* bounded work: the snippet of the 1 MiB body is the one of its first 32 KiB
     * (nothing past the scan window is read), so it costs what a short body costs */
    size_t sl2 = idx_snippet(ix, &r, body, 32768, "[", "]", snip2, sizeof snip2);
    assert_int_equal(sl2, sl);
    assert_memory_equal(snip2, snip, sl);
    idx_result_free(&r);
    /* delete it again (1 MiB of positions removed) */
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(idx_del(ix, txn, 100000, &d), IDX_OK);
    assert_int_equal(idx_flush(ix, txn), IDX_OK);
    assert_int_equal(mdb_txn_commit(txn), 0);
    q.query = "needle";
    assert_int_equal(s_search(&q, &r), IDX_OK);
    assert_int_equal(r.total, 0);
    idx_result_free(&r);
    free(body);
    free(x);
}

/* Every key of idx_post / idx_lex belongs to a live segment (merges drop
 * their inputs), and the number of segments stays bounded. */
static void test_segments(void **state) {
    (void)state;
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    idx_segs sg;
    assert_int_equal(idx_segs_get(ix, txn, &sg), 0);
    assert_true(sg.nsegs >= 1 && sg.nsegs <= IDX_MAX_SEGS / 2);
    const char *names[] = {"idx_post", "idx_lex"};
    for (int d = 0; d < 2; d++) {
        MDB_dbi dbi;
        MDB_cursor *c;
        assert_int_equal(mdb_dbi_open(txn, names[d], 0, &dbi), 0);
        assert_int_equal(mdb_cursor_open(txn, dbi, &c), 0);
        MDB_val k, v;
        size_t n = 0;
        while (mdb_cursor_get(c, &k, &v, MDB_NEXT) == 0) {
            uint32_t seg = idx_get_be32(k.mv_data);
            bool ok = false;
            for (size_t i = 0; i < sg.nsegs; i++)
                ok |= sg.seg[i].id == seg;
            if (!ok)
                fail_msg("%s: key of segment %u, which is not live", names[d], seg);
            n++;
        }
        if (d == 1)
            assert_true(n > 0); /* rare terms' postings are inline in idx_lex */
        mdb_cursor_close(c);
    }
    mdb_txn_abort(txn);
}

/* FNV-1a over a database's keys and values, in key order. */
static uint64_t s_db_hash(MDB_txn *txn, const char *name) {
    MDB_dbi dbi;
    MDB_cursor *c;
    MDB_val k, v;
    assert_int_equal(mdb_dbi_open(txn, name, 0, &dbi), 0);
    assert_int_equal(mdb_cursor_open(txn, dbi, &c), 0);
    uint64_t h = 1469598103934665603ull, n = 0;
    while (mdb_cursor_get(c, &k, &v, MDB_NEXT) == 0) {
        const MDB_val *kv[2] = {&k, &v};
        for (int x = 0; x < 2; x++) {
            const uint8_t *p = kv[x]->mv_data;
            h = (h ^ kv[x]->mv_size) * 1099511628211ull;
            for (size_t i = 0; i < kv[x]->mv_size; i++)
                h = (h ^ p[i]) * 1099511628211ull;
        }
        n++;
    }
    mdb_cursor_close(c);
    return h ^ n;
}

/* idx_optimize's merge of committed segments reads them on a second thread
 * (here in batches of 3 lexicon entries per input: many hand-overs between
 * the threads); it writes the index the merge writes reading them itself,
 * key for key. Both are aborted: test_optimize merges after this. */
static void test_optimize_read_ahead(void **state) {
    (void)state;
    const char *dbs[] = {"idx_lex", "idx_post", "idx_meta", "idx_col"};
    uint64_t h[2][4];
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    idx_segs sg;
    assert_int_equal(idx_segs_get(ix, txn, &sg), 0);
    mdb_txn_abort(txn);
    assert_true(sg.nsegs > 1);
    size_t batch = idx_merge_batch;
    idx_merge_batch = 3;
    for (int r = 0; r < 2; r++) {
        idx_merge_read_ahead = r == 0;
        uint64_t before = idx_merges_read_ahead;
        assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
        assert_int_equal(idx_optimize(ix, txn), IDX_OK);
        assert_int_equal(idx_merges_read_ahead - before, r == 0 ? 1 : 0);
        assert_int_equal(idx_segs_get(ix, txn, &sg), 0);
        assert_int_equal(sg.nsegs, 1);
        for (int d = 0; d < 4; d++)
            h[r][d] = s_db_hash(txn, dbs[d]);
        mdb_txn_abort(txn);
        idx_discard(ix);
    }
    idx_merge_batch = batch;
    idx_merge_read_ahead = true;
    for (int d = 0; d < 4; d++)
        assert_true(h[0][d] == h[1][d]);
}

/* Merging everything into one segment keeps every answer (and drops the
 * stale versions left by the updates and deletes above). */
static void test_optimize(void **state) {
    (void)state;
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(idx_optimize(ix, txn), IDX_OK);
    idx_segs sg;
    assert_int_equal(idx_segs_get(ix, txn, &sg), 0);
    assert_int_equal(sg.nsegs, 1);
    assert_int_equal(sg.seg[0].dead, 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    rfilter nf = {0};
    rclause c1[] = {{{W("police")}, 1, false}};
    s_compare("police", c1, 1, &nf, 400);
    rclause c2[] = {{{W("mass")}, 1, false}, {{W("line")}, 1, false}};
    s_compare("mass line", c2, 2, &nf, 10);
    /* one segment: a plain term or an AND of them counts the docs its
     * bounds prune a window at a time (s_window_count), the more of them the
     * smaller the heap; with a tag filter as one more clause, and three terms */
    for (uint32_t lim = 1; lim <= 3; lim++) {
        s_compare("mass line", c2, 2, &nf, lim);
        s_compare("police", c1, 1, &nf, lim);
    }
    rclause c2b[] = {{{W("river")}, 1, false}, {{W("line")}, 1, false}, {{W("train")}, 1, false}};
    s_compare("river line train", c2b, 3, &nf, 1);
    s_compare("river line train", c2b, 3, &nf, 5);
    rfilter ft2 = {.tag = "t1"};
    s_compare("tag:t1 mass line", c2, 2, &ft2, 2);
    rclause c3[] = {{{P("mass line")}, 1, false}};
    s_compare("\"mass line\"", c3, 1, &nf, 10);
    rclause c6[] = {{{X("secur")}, 1, false}};
    s_compare("secur*", c6, 1, &nf, 10);
    rfilter ft = {.tag = "t2"};
    s_compare("tag:t2 police", c1, 1, &ft, 10);
    /* CJK lists (tf folded into the deltas) decoded and re-encoded by the merge */
    rclause c9[] = {{{W("京")}, 1, false}};
    s_compare("京", c9, 1, &nf, 400);
    rclause c9c[] = {{{W("中国")}, 1, false}, {{W("天")}, 1, false}};
    s_compare("中国 天", c9c, 2, &nf, 400);
}

/* Run `query` (its top `limit`) in a read txn of e: the answer in *r (the
 * caller frees it with idx_result_free); a refused query fails the test. */
static void s_query_run(MDB_env *e, idx *x, const char *query, uint32_t limit, idx_result *r) {
    MDB_txn *txn;
    idx_query q = {.query = query, .limit = limit};
    assert_int_equal(mdb_txn_begin(e, NULL, MDB_RDONLY, &txn), 0);
    if (idx_search(x, txn, &q, r) != IDX_OK)
        fail_msg("query '%s': %s", query, r->error);
    mdb_txn_abort(txn);
}

static uint64_t s_total(MDB_env *e, idx *x, const char *query, double *score) {
    idx_result r;
    s_query_run(e, x, query, 10, &r);
    uint64_t t = r.total;
    *score = r.nhits ? r.hits[0].score : 0;
    idx_result_free(&r);
    return t;
}

/* CJK terms whose only doc has frequencies (0, 1) store a one-doc block
 * with n = 0 and no frequencies (idx_bhead.one): their positions follow the
 * header at once. Each doc alone in its segment (write-through), then all
 * merged into one. */
static void test_cjk_one_doc(void **state) {
    (void)state;
    char d[64] = "/tmp/idx_cjk1_XXXXXX";
    MDB_env *e = lmdb_tmp_open(d, 8, 0);
    MDB_txn *txn;
    idx *x = NULL;
    assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
    assert_int_equal(idx_open(txn, NULL, &x), IDX_OK);
    /* 甲乙: once in doc 1's body; 丙丁: in doc 2's title, twice in doc 3's body */
    const char *title[] = {"", "news", "丙丁", "more"}, *body[] = {"", "甲乙 police", "river", "丙丁 丙丁"};
    for (uint64_t id = 1; id <= 3; id++) {
        idx_doc doc = {.title = title[id], .title_len = strlen(title[id]), .body = body[id],
                       .body_len = strlen(body[id])};
        assert_int_equal(idx_put(x, txn, id, &doc, NULL), IDX_OK);
    }
    assert_int_equal(mdb_txn_commit(txn), 0);
    for (int round = 0; round < 2; round++) {
        double s1, s2, s3;
        assert_int_equal(s_total(e, x, "\"甲乙 police\"", &s1), 1); /* positions after the head */
        assert_int_equal(s_total(e, x, "\"乙 police\"", &s1), 1);
        assert_int_equal(s_total(e, x, "甲乙", &s1), 1);
        assert_int_equal(s_total(e, x, "乙", &s2), 1);
        assert_true(s1 > 0 && s2 > 0);
        assert_int_equal(s_total(e, x, "丙丁", &s3), 2);
        assert_int_equal(s_total(e, x, "\"police 甲乙\"", &s3), 0);
        if (round == 0) {
            assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
            assert_int_equal(idx_optimize(x, txn), IDX_OK);
            assert_int_equal(mdb_txn_commit(txn), 0);
        }
    }
    idx_close(&x);
    lmdb_tmp_close(&e, d);
}

/* LEXICON PAGES (idx_int.h): every entry kind and the header's length
 * escapes, written by flushes (one segment per doc group) and by a merge
 * (idx_optimize: terms of one input copied as they are, the others
 * re-encoded), read by the lexicon walk, idx_lex_df, searches and the typo
 * scan's df reads. Kinds: one-doc (0, 1) entries (甲乙, "police" in doc 1),
 * inline blocks (丙丁 in a title and twice in a body), blocks in idx_post
 * ("mmm" in 300 docs) and values as they are (doc 4 written again in a later
 * flush: that segment's df delta is 0 beside a block of one doc). The merge
 * copies "again" (doc 4's second version: one input, no dead docs) as it
 * is and re-encodes the first segment's terms (doc 4's old version is dead
 * there). */
static void s_lex_kinds(MDB_env *e, idx *x, unsigned counts[4], size_t *long_sh, size_t *long_sl) {
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(e, NULL, MDB_RDONLY, &txn), 0);
    idx_segs segs;
    assert_int_equal(idx_segs_get(x, txn, &segs), 0);
    MDB_cursor *c;
    assert_int_equal(mdb_cursor_open(txn, x->lex, &c), 0);
    memset(counts, 0, 4 * sizeof *counts);
    *long_sh = *long_sl = 0;
    for (size_t i = 0; i < segs.nsegs; i++) {
        idx_lexit it;
        assert_int_equal(idx_lexit_seek(&it, c, segs.seg[i].id, (const uint8_t *)"", 0), 0);
        uint8_t prev[IDX_TERM_MAX];
        size_t pl = 0;
        bool any = false;
        while (!it.eof) {
            assert_true(it.kind < 4);
            counts[it.kind]++;
            if (it.sh >= 7)
                (*long_sh)++;
            if (it.tl - it.sh >= 7)
                (*long_sl)++;
            if (any) /* in term order, each one rebuilt from the one before */
                assert_true(memcmp(prev, it.term, pl < it.tl ? pl : it.tl) < 0 ||
                            (memcmp(prev, it.term, pl < it.tl ? pl : it.tl) == 0 && pl < it.tl));
            memcpy(prev, it.term, it.tl);
            pl = it.tl;
            any = true;
            idx_lexval v;
            assert_int_equal(idx_lexit_value(&it, &v), 0);
            if (it.kind == IDX_LEX_ONE) {
                idx_bhead h;
                assert_true(v.one && v.df == 1 && v.blk);
                assert_true(idx_block_head_one(v.blk, &segs.seg[i], &h) == v.blk);
                assert_true(h.n == 1 && h.one && h.minlt == segs.seg[i].minlt);
            } else if (it.kind == IDX_LEX_POST) {
                assert_null(v.blk);
            } else if (it.kind == IDX_LEX_INL) {
                idx_bhead h;
                assert_non_null(v.blk);
                assert_non_null(idx_block_head(v.blk, v.blk + v.blen, &h, idx_term_ids_code(it.term, it.tl)));
                assert_int_equal(v.df, (int64_t)h.n);
            }
            assert_int_equal(idx_lexit_next(&it), 0);
        }
    }
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
}

static uint64_t s_lex_df_of(MDB_env *e, idx *x, const char *term) {
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(e, NULL, MDB_RDONLY, &txn), 0);
    idx_segs segs;
    assert_int_equal(idx_segs_get(x, txn, &segs), 0);
    uint8_t tk[IDX_TERM_MAX];
    size_t tkl = idx_term_key(term, strlen(term), tk);
    uint64_t df = idx_lex_df(x, txn, &segs, tk, tkl);
    mdb_txn_abort(txn);
    return df;
}

static void test_lexicon_entries(void **state) {
    (void)state;
    char d[64] = "/tmp/idx_lexk_XXXXXX";
    MDB_env *e = lmdb_tmp_open(d, 16, 1ull << 27);
    idx_options o = {.b = -1, .max_pending_docs = 1000, .merge_factor = 64};
    MDB_txn *txn;
    idx *x = NULL;
    assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
    assert_int_equal(idx_open(txn, &o, &x), IDX_OK);
    static const char *const bodies[] = {
        "", "甲乙 police", "丙丁 丙丁", "internationalization internationally",
        "internationalization counterrevolutionaries", "internationalizations"};
    const char *titles[] = {"", "news", "丙丁", "more", "x", "y"};
    for (uint64_t id = 1; id <= 5; id++) {
        idx_doc doc = {.title = titles[id], .title_len = strlen(titles[id]), .body = bodies[id],
                       .body_len = strlen(bodies[id])};
        assert_int_equal(idx_put(x, txn, id, &doc, NULL), IDX_OK);
    }
    assert_int_equal(idx_flush(x, txn), IDX_OK);
    for (uint64_t id = 10; id < 310; id++) { /* blocks in idx_post */
        idx_doc doc = {.title = "z", .title_len = 1, .body = "mmm", .body_len = 3};
        assert_int_equal(idx_put(x, txn, id, &doc, NULL), IDX_OK);
    }
    assert_int_equal(idx_flush(x, txn), IDX_OK);
    /* doc 4 again, with one more word: its terms' df deltas are 0 there */
    const char *b4 = "internationalization counterrevolutionaries again";
    idx_doc d4 = {.title = titles[4], .title_len = 1, .body = bodies[4], .body_len = strlen(bodies[4])};
    idx_doc n4 = {.title = titles[4], .title_len = 1, .body = b4, .body_len = strlen(b4)};
    assert_int_equal(idx_put(x, txn, 4, &n4, &d4), IDX_OK);
    assert_int_equal(idx_flush(x, txn), IDX_OK);
    assert_int_equal(mdb_txn_commit(txn), 0);
    for (int round = 0; round < 2; round++) {
        unsigned k[4];
        size_t lsh, lsl;
        s_lex_kinds(e, x, k, &lsh, &lsl);
        assert_true(k[IDX_LEX_ONE] > 0 && k[IDX_LEX_INL] > 0 && k[IDX_LEX_POST] > 0);
        if (round == 0)
            assert_true(k[IDX_LEX_ASIS] > 0);
        assert_true(lsh > 0 && lsl > 0);
        assert_int_equal(s_lex_df_of(e, x, "甲乙"), 1);
        assert_int_equal(s_lex_df_of(e, x, "丙丁"), 1);
        assert_int_equal(s_lex_df_of(e, x, "mmm"), 300);
        assert_int_equal(s_lex_df_of(e, x, "\x01" "internationalization"), 2);
        assert_int_equal(s_lex_df_of(e, x, "\x01" "counterrevolutionaries"), 1);
        double sc;
        assert_int_equal(s_total(e, x, "\"甲乙 police\"", &sc), 1);
        assert_int_equal(s_total(e, x, "丙丁", &sc), 1);
        assert_true(sc > 0);
        assert_int_equal(s_total(e, x, "mmm", &sc), 300);
        assert_int_equal(s_total(e, x, "internationalization", &sc), 3);
        assert_int_equal(s_total(e, x, "\"internationalization internationally\"", &sc), 1);
        assert_int_equal(s_total(e, x, "counterrevolutionaries", &sc), 1);
        /* the typo scan reads the alternatives' dfs */
        assert_true(s_total(e, x, "policr", &sc) == 1 && sc > 0);
        assert_true(s_total(e, x, "counterrevolutionarie", &sc) == 1 && sc > 0);
        if (round == 0) {
            assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
            assert_int_equal(idx_optimize(x, txn), IDX_OK);
            assert_int_equal(mdb_txn_commit(txn), 0);
        }
    }
    idx_close(&x);
    lmdb_tmp_close(&e, d);
}

/* Posting keys hold 4-byte doc ids (IDX_ID_MAX): ids up to it are indexed
 * and found (blocks in idx_post whose keys end at the largest id, seeks of an
 * intersection between them), a larger one is refused. */
static void test_id_max(void **state) {
    (void)state;
    char d[64] = "/tmp/idx_idmax_XXXXXX";
    MDB_env *e = lmdb_tmp_open(d, 16, 1ull << 27);
    idx_options o = {.b = -1, .no_typos = true, .max_pending_docs = 1000};
    MDB_txn *txn;
    idx *x = NULL;
    assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
    assert_int_equal(idx_open(txn, &o, &x), IDX_OK);
    idx_doc big = {.title = "x", .title_len = 1, .body = "mmm", .body_len = 3};
    assert_int_equal(idx_put(x, txn, (uint64_t)IDX_ID_MAX + 1, &big, NULL), IDX_INVALID_ARGUMENT);
    for (uint64_t k = 0; k < 600; k++) { /* "rare" in every 50th doc: seeks across blocks */
        const char *body = k % 50 == 0 ? "mmm rare" : "mmm";
        idx_doc doc = {.title = "x", .title_len = 1, .body = body, .body_len = strlen(body)};
        assert_int_equal(idx_put(x, txn, (uint64_t)IDX_ID_MAX - k, &doc, NULL), IDX_OK);
    }
    assert_int_equal(idx_flush(x, txn), IDX_OK);
    assert_int_equal(mdb_txn_commit(txn), 0);
    double sc;
    assert_int_equal(s_total(e, x, "mmm", &sc), 600);
    assert_int_equal(s_total(e, x, "rare", &sc), 12);
    assert_int_equal(s_total(e, x, "mmm rare", &sc), 12);
    MDB_txn *r;
    assert_int_equal(mdb_txn_begin(e, NULL, MDB_RDONLY, &r), 0);
    idx_query q = {.query = "rare mmm", .limit = 20};
    idx_result res;
    assert_int_equal(idx_search(x, r, &q, &res), IDX_OK);
    assert_int_equal(res.nhits, 12);
    bool top = false;
    for (size_t i = 0; i < res.nhits; i++) {
        assert_true(res.hits[i].id <= IDX_ID_MAX && (IDX_ID_MAX - res.hits[i].id) % 50 == 0);
        top |= res.hits[i].id == IDX_ID_MAX;
    }
    assert_true(top);
    idx_result_free(&res);
    mdb_txn_abort(r);
    idx_close(&x);
    lmdb_tmp_close(&e, d);
}

/* Phrases with lone CJK characters (idx_int.h RUN POSITIONS: unigrams keep
 * only their run-boundary positions when there are no stop words) against
 * a brute-force reference over every position: docs of runs of 1-6
 * characters from a 6-character alphabet (so characters start, end and sit
 * in the middle of runs) between spaces, "，", "。" and words; queries put a lone
 * character after and before words and characters (one query bigram, two,
 * across a separator) at run starts, ends and middles. Written in
 * segments of 9 docs (tiered merges decode and re-encode the blocks), and
 * in an index with stop words (every position kept: "甲 the 丙" needs a
 * middle one). */
#define RP_DOCS 240
typedef struct {
    char term[16];
    uint32_t pos;
    uint8_t field;
} rp_tok;
typedef struct {
    rp_tok *t;
    size_t n, cap;
    uint8_t field;
} rp_list;
static int rp_cb(void *ud, const text_token *t) {
    rp_list *l = ud;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->t = realloc(l->t, l->cap * sizeof *l->t);
    }
    rp_tok *o = &l->t[l->n++];
    size_t n = t->len < sizeof o->term - 1 ? t->len : sizeof o->term - 1;
    memcpy(o->term, t->term, n);
    o->term[n] = 0;
    o->pos = t->pos;
    o->field = l->field;
    return 0;
}
static bool rp_has(const rp_list *d, const char *term, uint8_t f, uint32_t pos) {
    for (size_t i = 0; i < d->n; i++)
        if (d->t[i].field == f && d->t[i].pos == pos && !strcmp(d->t[i].term, term))
            return true;
    return false;
}
/* Docs matching the phrase: some position where every query token (each
 * stem, unigram and bigram; exact forms left out: the words are plain) is at
 * its offset, in one field. */
static int rp_ref(text_analyzer *a, rp_list *docs, const char *query, bool *hit) {
    rp_list q = {0};
    text_analyze(a, query, strlen(query), 0, rp_cb, &q, NULL);
    int n = 0;
    for (int id = 1; id <= RP_DOCS; id++) {
        hit[id] = false;
        for (size_t i = 0; i < docs[id].n && !hit[id] && q.n; i++) {
            const rp_tok *t0 = &docs[id].t[i];
            if (strcmp(t0->term, q.t[0].term) || t0->pos < q.t[0].pos)
                continue;
            bool ok = true;
            for (size_t k = 1; k < q.n && ok; k++)
                ok = rp_has(&docs[id], q.t[k].term, t0->field, t0->pos - q.t[0].pos + q.t[k].pos);
            hit[id] = ok;
        }
        n += hit[id];
    }
    free(q.t);
    return n;
}
static void rp_check(MDB_env *e, idx *x, text_analyzer *a, rp_list *docs, const char *query) {
    static bool hit[RP_DOCS + 1];
    int nref = rp_ref(a, docs, query, hit);
    MDB_txn *txn;
    idx_query q = {.query = query, .limit = RP_DOCS};
    idx_result r;
    assert_int_equal(mdb_txn_begin(e, NULL, MDB_RDONLY, &txn), 0);
    if (idx_search(x, txn, &q, &r) != IDX_OK)
        fail_msg("query '%s': %s", query, r.error);
    mdb_txn_abort(txn);
    if (r.total != (uint64_t)nref)
        fail_msg("query '%s': total %llu, reference %d", query, (unsigned long long)r.total, nref);
    for (size_t i = 0; i < r.nhits; i++)
        if (r.hits[i].id > RP_DOCS || !hit[r.hits[i].id])
            fail_msg("query '%s': doc %llu is not a reference hit", query, (unsigned long long)r.hits[i].id);
    idx_result_free(&r);
}
static void rp_run(const char *const *stops) {
    static const char *CH[] = {"甲", "乙", "丙", "丁", "戊", "己"};
    static const char *SEP[] = {" ", "，", " river ", " 2024", "2024 ", "。"};
    char d[64] = "/tmp/idx_runpos_XXXXXX";
    MDB_env *e = lmdb_tmp_open(d, 8, 0);
    idx_options o = {.b = -1, .no_typos = true, .max_pending_docs = 9, .stopwords = stops};
    text_options to = text_options_default();
    to.stopwords = stops;
    text_analyzer *a = text_analyzer_new(&to);
    static rp_list docs[RP_DOCS + 1];
    MDB_txn *txn;
    idx *x = NULL;
    assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
    assert_int_equal(idx_open(txn, &o, &x), IDX_OK);
    for (uint64_t id = 1; id <= RP_DOCS; id++) {
        char f[2][512];
        for (int k = 0; k < 2; k++) {
            f[k][0] = 0;
            int runs = k ? 2 + (int)(rnd() % 12) : 1 + (int)(rnd() % 3);
            for (int r = 0; r < runs; r++) {
                int len = 1 + (int)(rnd() % 6);
                for (int c = 0; c < len; c++)
                    strcat(f[k], CH[rnd() % 6]);
                strcat(f[k], SEP[rnd() % 6]);
            }
        }
        idx_doc doc = {.title = f[0], .title_len = strlen(f[0]), .body = f[1], .body_len = strlen(f[1])};
        assert_int_equal(idx_put(x, txn, id, &doc, NULL), IDX_OK);
        docs[id].n = 0;
        for (int k = 0; k < 2; k++) {
            docs[id].field = (uint8_t)k;
            text_analyze(a, f[k], strlen(f[k]), 0, rp_cb, &docs[id], NULL);
        }
    }
    assert_int_equal(idx_flush(x, txn), IDX_OK);
    assert_int_equal(mdb_txn_commit(txn), 0);
    static const char *Q[] = {
        "2024甲",      "甲2024",      "\"2024 乙\"",   "\"丙 2024\"",   "丁river",
        "\"river 丁\"", "\"戊 river\"", "\"甲 乙\"",     "\"甲乙 丙\"",   "\"丙 甲乙\"",
        "\"甲乙 丙 丁戊\"", "甲，乙",     "甲乙，丙",      "丙。甲乙",      "\"甲 乙 丙\"",
        "\"己 river 甲\"", "\"甲 2024 乙\"", "\"甲乙丙 丁\"", "\"丁 甲乙丙\"", "\"乙 the 丙\"",
        "\"甲 the 丙\"", "\"甲乙 the 丙\"", "\"丙丁 2024\"", "\"2024 丙丁 戊\""};
    for (size_t i = 0; i < sizeof Q / sizeof Q[0]; i++)
        rp_check(e, x, a, docs, Q[i]);
    for (int i = 0; i < 60; i++) { /* random: char, separator, char(s) */
        char q[64];
        snprintf(q, sizeof q, "\"%s%s %s%s\"", CH[rnd() % 6], rnd() % 2 ? CH[rnd() % 6] : "", CH[rnd() % 6],
                 rnd() % 3 ? "" : CH[rnd() % 6]);
        rp_check(e, x, a, docs, q);
    }
    for (int id = 0; id <= RP_DOCS; id++) {
        free(docs[id].t);
        memset(&docs[id], 0, sizeof docs[id]);
    }
    text_analyzer_destroy(&a);
    idx_close(&x);
    lmdb_tmp_close(&e, d);
}
static void test_cjk_run_positions(void **state) {
    (void)state;
    static const char *const stops[] = {"the", NULL};
    rp_run(NULL);
    rp_run(stops);
}

/* A term whose blocks are the first keys of idx_post (terms of one block
 * are inline in the lexicon) and whose docs have gaps: the first lookup
 * seeks past its first block's key, finds no key before it, and must come
 * back to that block (it used to step over it: 2 of 130 docs found). */
static void test_first_post_key(void **state) {
    (void)state;
    char d[64] = "/tmp/idx_first_XXXXXX";
    MDB_env *e = lmdb_tmp_open(d, 8, 0);
    idx_options o = {.b = -1, .no_typos = true, .max_pending_docs = 1000};
    MDB_txn *txn;
    idx *x = NULL;
    assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
    assert_int_equal(idx_open(txn, &o, &x), IDX_OK);
    for (uint64_t id = 1; id <= 260; id++) { /* "mmm" in every other doc: two blocks, before "x" */
        const char *body = id % 2 ? "yyy" : "mmm";
        idx_doc doc = {.title = "x", .title_len = 1, .body = body, .body_len = 3};
        assert_int_equal(idx_put(x, txn, id, &doc, NULL), IDX_OK);
    }
    assert_int_equal(idx_flush(x, txn), IDX_OK);
    assert_int_equal(mdb_txn_commit(txn), 0);
    double sc;
    assert_int_equal(s_total(e, x, "mmm", &sc), 130);
    assert_int_equal(s_total(e, x, "yyy", &sc), 130);
    assert_int_equal(s_total(e, x, "x", &sc), 260);
    idx_close(&x);
    lmdb_tmp_close(&e, d);
}

/* idx_int.h BLOCK DOC IDS: the code of a CJK term's block ids round-trips
 * for lists that pick each of its three forms (a dense list: the bitmap;
 * ids ~8 apart: Elias-Fano; a run of neighbours and one far id: varints),
 * of 2 and 128 ids, with ids past 2^32; the decoder ends where the encoder
 * did and refuses every truncation. Another term's block (ef false) has the
 * same code from IDX_IDS_CODE_N docs on, or a bitmap of at most
 * IDX_IDS_BITMAP_SLACK times the Elias-Fano code's size, and below that its
 * varint deltas alone, which round-trip and refuse truncations too. */
/* Elias-Fano codes of every low-part width 0-14 (idx_block_ids_get takes
 * widths 1-8 eight values at a time, one 8-byte load per l bytes of low
 * parts, and the last n - 1 % 8 one by one), with 9-128 docs (every n % 8),
 * random gaps around 2^l, read back whole from a buffer with bytes after the
 * code and from one that ends with it (the loads that would pass its end
 * take the one-at-a-time path). */
static void test_block_ids_widths(void **state) {
    (void)state;
    unsigned seed = 4242;
    int seen[32][8] = {{0}}; /* [width][(n - 1) % 8] */
    for (int round = 0; round < 6000; round++) {
        uint64_t d[IDX_BLOCK_DOCS], got[IDX_BLOCK_DOCS];
        size_t n = 9 + (size_t)round % (IDX_BLOCK_DOCS - 8);
        unsigned lw = (unsigned)(round / 7) % 15;
        d[0] = 1 + test_rand(&seed) % 5000;
        for (size_t k = 1; k < n; k++) /* gaps of 2^lw, give or take half */
            d[k] = d[k - 1] + (1ull << lw) / 2 + 1 + test_rand(&seed) % (1u << lw);
        uint8_t buf[8 + IDX_BLOCK_DOCS * 10];
        size_t len = idx_block_ids_put(buf, d, n, true);
        if (buf[0] >= 32)
            continue; /* a bitmap or varints */
        /* the width is the first of the smallest codes over all 32 (the
         * encoder stops at the first width that cannot be smaller) */
        uint64_t u = d[n - 1] - d[0], m = n - 1, rb = 0, rl = 0;
        for (unsigned l = 0; l < 32; l++) {
            uint64_t bytes = (m * l + (u >> l) + m + 7) / 8;
            if (l == 0 || bytes < rb) {
                rb = bytes;
                rl = l;
            }
        }
        assert_int_equal(buf[0], rl);
        assert_int_equal(len, 1 + rb);
        seen[buf[0]][(n - 1) % 8]++;
        for (int tight = 0; tight < 2; tight++) {
            if (!tight)
                memset(buf + len, 0xa5, 8);
            memset(got, 0, sizeof got);
            assert_ptr_equal(idx_block_ids_get(buf, buf + len + (tight ? 0 : 8), d[0], n, true, got),
                             buf + len);
            for (size_t k = 0; k < n; k++)
                if (got[k] != d[k])
                    fail_msg("round %d (n %zu, width %u, tight %d): id %zu is %llu, not %llu", round,
                             n, buf[0], tight, k, (unsigned long long)got[k], (unsigned long long)d[k]);
        }
    }
    for (unsigned l = 1; l <= 10; l++)
        for (int r = 0; r < 8; r++)
            if (!seen[l][r])
                fail_msg("no Elias-Fano code of width %u with n - 1 = %d mod 8", l, r);
}

/* idx_varint_len is the length idx_varint_put writes: every power of two
 * and its neighbours, and random values of every bit length. */
static void test_varint_len(void **state) {
    (void)state;
    uint8_t b[16];
    for (unsigned k = 0; k < 64; k++) {
        uint64_t v = 1ull << k;
        for (int dv = -1; dv <= 1; dv++)
            assert_int_equal(idx_varint_len(v + (uint64_t)(int64_t)dv), idx_varint_put(b, v + (uint64_t)(int64_t)dv));
    }
    assert_int_equal(idx_varint_len(0), 1);
    assert_int_equal(idx_varint_len(UINT64_MAX), 10);
    unsigned seed = 5;
    for (int i = 0; i < 20000; i++) {
        uint64_t v = ((uint64_t)test_rand(&seed) << 32 | test_rand(&seed)) >> (i % 64);
        assert_int_equal(idx_varint_len(v), idx_varint_put(b, v));
    }
}

static void test_block_ids_code(void **state) {
    (void)state;
    unsigned seed = 99;
    int modes[3] = {0, 0, 0}; /* bitmap, EF, varint */
    int plain = 0, coded = 0;   /* ef false: blocks without / with a code */
    int bitmaps = 0;            /* ef false: a bitmap where ef has Elias-Fano */
    for (int round = 0; round < 600; round++) {
        uint64_t d[IDX_BLOCK_DOCS], got[IDX_BLOCK_DOCS];
        size_t n = round % 3 == 0 ? 2 + test_rand(&seed) % 4 : round % 5 == 0 ? 128 : 2 + test_rand(&seed) % 127;
        if (round % 11 == 0)
            n = IDX_IDS_CODE_N - 1 + (size_t)(round / 11) % 2; /* either side of the threshold */
        int kind = round % 3;
        d[0] = (round % 7 == 0 ? (1ull << 33) : 1) + test_rand(&seed) % 1000;
        for (size_t k = 1; k < n; k++) {
            uint64_t gap = kind == 0   ? 1 + test_rand(&seed) % 2          /* dense */
                           : kind == 1 ? 1 + test_rand(&seed) % 16         /* ~8 apart */
                           : k == n / 2 ? (1u << 22) + test_rand(&seed) % 999 /* one far id */
                                        : 1;
            d[k] = d[k - 1] + gap;
        }
        uint8_t buf[8 + IDX_BLOCK_DOCS * 10], vb[8 + IDX_BLOCK_DOCS * 10];
        for (int ef = 1; ef >= 0; ef--) {
            uint8_t *b = ef ? buf : vb;
            size_t len = idx_block_ids_put(b, d, n, ef);
            assert_true(len >= 1 && len <= sizeof buf);
            if (ef) {
                assert_true(len >= 2);
                modes[b[0] == IDX_IDS_BITMAP ? 0 : b[0] == IDX_IDS_VARINT ? 2 : 1]++;
                if (b[0] != IDX_IDS_BITMAP && b[0] != IDX_IDS_VARINT)
                    assert_true(b[0] < 32);
            } else if (n >= IDX_IDS_CODE_N && vb[0] == IDX_IDS_BITMAP && buf[0] < 32) {
                /* a bitmap preferred to Elias-Fano: at most IDX_IDS_BITMAP_SLACK times its size */
                size_t el = 0;
                while (idx_block_ids_get(buf, buf + el, d[0], n, true, got) == NULL)
                    el++;
                assert_true(len - 1 <= (el - 1) * IDX_IDS_BITMAP_SLACK);
                coded++;
                bitmaps++;
            } else if (n >= IDX_IDS_CODE_N) { /* the same code */
                coded++;
                assert_memory_equal(vb, buf, len);
            } else { /* the varint deltas, no code byte */
                uint8_t tmp[10];
                size_t vl = 0;
                for (size_t k = 1; k < n; k++)
                    vl += idx_varint_put(tmp, d[k] - d[k - 1]);
                assert_int_equal(len, vl);
                plain++;
            }
            /* bytes after the code (a block's frequencies follow it) are not read as ids */
            memset(b + len, 0xff, 8);
            assert_ptr_equal(idx_block_ids_get(b, b + len + 8, d[0], n, ef, got), b + len);
            for (size_t k = 0; k < n; k++)
                if (got[k] != d[k])
                    fail_msg("round %d ef %d (n %zu, code %u): id %zu is %llu, not %llu", round, ef,
                             n, b[0], k, (unsigned long long)got[k], (unsigned long long)d[k]);
            for (size_t cut = 0; cut < len; cut++)
                assert_null(idx_block_ids_get(b, b + cut, d[0], n, ef, got));
        }
    }
    /* each form was chosen (kind 0 picks the bitmap, 1 Elias-Fano, 2 varints) */
    assert_true(modes[0] > 100 && modes[1] > 100 && modes[2] > 100);
    assert_true(plain > 100 && coded > 100 && bitmaps > 20);
    uint8_t bad[4] = {32, 0, 0, 0}; /* no such code */
    uint64_t got[IDX_IDS_CODE_N];
    assert_null(idx_block_ids_get(bad, bad + 4, 1, 3, true, got));
    assert_null(idx_block_ids_get(bad, bad + 4, 1, IDX_IDS_CODE_N, false, got));
    /* ids that do not rise (a merge re-encodes a corrupt block's decoded
     * ids): a doc twice took the bitmap and wrote bit v - 1 = -1 (a segfault
     * in idx_optimize; review, session 8), falling ids an Elias-Fano code
     * past its bytes. They keep varints (1 + their bytes, in a buffer of
     * exactly that size) and read back as they were. */
    for (int round = 0; round < 200; round++) {
        uint64_t d[IDX_BLOCK_DOCS], back[IDX_BLOCK_DOCS];
        size_t n = IDX_IDS_CODE_N + (size_t)round % (IDX_BLOCK_DOCS - IDX_IDS_CODE_N + 1);
        d[0] = 1000 + test_rand(&seed) % 1000;
        for (size_t k = 1; k < n; k++)
            d[k] = d[k - 1] + 1 + test_rand(&seed) % 3; /* dense: a bitmap */
        size_t at = 1 + test_rand(&seed) % (n - 2); /* not the last: d[at + 1] follows */
        d[at] = round % 3 == 0 ? d[at - 1] : round % 3 == 1 ? d[0] - 1 - test_rand(&seed) % 900 : d[n - 1] + 50;
        uint8_t tmp[10];
        size_t vb = 0;
        for (size_t k = 1; k < n; k++)
            vb += idx_varint_put(tmp, d[k] - d[k - 1]);
        for (int ef = 0; ef < 2; ef++) {
            uint8_t *b = malloc(1 + vb);
            assert_non_null(b);
            size_t len = idx_block_ids_put(b, d, n, ef);
            assert_int_equal(len, 1 + vb);
            assert_int_equal(b[0], IDX_IDS_VARINT);
            assert_ptr_equal(idx_block_ids_get(b, b + len, d[0], n, ef, back), b + len);
            assert_memory_equal(back, d, n * sizeof d[0]);
            free(b);
        }
    }
    /* a corrupt code whose unary part (Elias-Fano of no low bits, or a
     * bitmap) runs ~8 KB: its zeros would wrap the decoder's 16-bit lanes
     * (an end 2^61 bytes past p, a crash in the search: review, session 8).
     * Refused, or an end inside the block, for every length of its run. */
    size_t big = 2 + 8200 + 1 + 16;
    uint8_t *lb = calloc(1, big);
    assert_non_null(lb);
    for (int bm = 0; bm < 2; bm++)
        for (size_t zeros = 8150; zeros < 8200; zeros++) {
            memset(lb, 0, big);
            lb[0] = bm ? IDX_IDS_BITMAP : 0;
            lb[1] = 0x3F;             /* six ids */
            lb[2 + zeros] = 0x40;     /* the 7th after 2 + 8 * zeros + 6 zero bits */
            for (int ef = 0; ef < 2; ef++) {
                const uint8_t *r = idx_block_ids_get(lb, lb + big, 1000, IDX_IDS_CODE_N, ef, got);
                assert_true(r == NULL || (r > lb && r <= lb + big));
            }
        }
    free(lb);
}

/* The same code in an index, against brute force: docs of six one-character
 * words and a two-character one (equal lengths: a term's BM25 score grows
 * with its tf alone) over ids 1-1200 and 300000-300100, where 甲 and the
 * bigram 丁戊 are in most of the docs (bitmaps), 乙 and 丁乙 in ~12%
 * (Elias-Fano), 丙 in ids 1-70 and 300000-300050 (varints: one far gap),
 * written in flushes of 50 docs with merges of 2 (blocks copied and
 * re-encoded), then every 7th doc deleted, then idx_optimize (merged with
 * its dead docs dropped). Each term's and pair's totals and hits are the
 * brute-force ones, and each single term's scores order its hits by tf; a
 * top 3 (pruned: windows counted) has the same total and the first 3 hits. */
#define BI_DOCS 1301
static uint64_t bi_id(size_t i) {
    return i < 1200 ? i + 1 : 300000 + (i - 1200);
}
/* the words: CJK (idx_term_ids_code) or English ones (IDX_IDS_CODE_N) */
static const char *const bi_zh[8] = {"甲", "乙", "丙", "丁", "戊", "丁乙", "丁戊", "戊戊"};
static const char *const bi_en[8] = {"alpha", "bravo", "charlie", "delta", "echo", "deltabravo", "deltaecho", "echoecho"};
static const char *const *bi_w = bi_zh;
static void bi_body(size_t i, char *out, uint8_t tf[6]) {
    const char *const *ch = bi_w;
    unsigned seed = 7u + (unsigned)i * 31u;
    uint64_t id = bi_id(i);
    bool yi = test_rand(&seed) % 8 == 0, bing = id <= 70 || (id >= 300000 && id <= 300050);
    memset(tf, 0, 6);
    out[0] = 0;
    for (int sl = 0; sl < 6; sl++) {
        unsigned r = test_rand(&seed) % 6;
        int c = r < 2 ? 0 : (r == 2 && yi) || (sl == 0 && yi) ? 1 : (sl == 5 && bing) ? 2 : r == 3 ? 3 : 4;
        tf[c < 4 ? c : 0] += c < 4;
        strcat(out, ch[c]);
        strcat(out, " ");
    }
    /* a two-character word last (every doc: same length): 丁乙 where 乙 is
     * (Elias-Fano), else mostly 丁戊 (bitmaps) */
    bool ding = test_rand(&seed) % 8 != 0;
    strcat(out, yi ? bi_w[5] : ding ? bi_w[6] : bi_w[7]);
    if (bi_w == bi_zh) { /* 丁 and 乙 of the bigram are unigrams too */
        tf[3] += yi || ding;
        tf[1] += yi;
    }
    tf[4] = !yi && ding;
    tf[5] = yi;
}
static void bi_check(MDB_env *e, idx *x, const uint8_t (*tf)[6], const bool *live) {
    /* queries: one word (c), or two (c c) */
    static const int qw[][2] = {{0, -1}, {1, -1}, {2, -1}, {3, -1}, {0, 1}, {1, 2}, {2, 0}, {3, 1},
                                {6, -1}, {5, -1}, {5, 2}, {6, 0}};
    char q[12][64];
    for (size_t k = 0; k < 12; k++)
        snprintf(q[k], sizeof q[k], "%s%s%s", bi_w[qw[k][0]], qw[k][1] < 0 ? "" : " ",
                 qw[k][1] < 0 ? "" : bi_w[qw[k][1]]);
    static const int qa[] = {0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 5, 4}, qb[] = {-1, -1, -1, -1, 1, 2, 0, 1, -1, -1, 2, 0};
    for (size_t k = 0, off = 0; k < sizeof q / sizeof *q; off = off ? 0 : 1000, k += !off) {
        MDB_txn *txn; /* two pages of 1000 each */
        idx_query qq = {.query = q[k], .limit = 1000, .offset = (uint32_t)off};
        idx_result r;
        assert_int_equal(mdb_txn_begin(e, NULL, MDB_RDONLY, &txn), 0);
        if (idx_search(x, txn, &qq, &r) != IDX_OK)
            fail_msg("query '%s': %s", q[k], r.error);
        mdb_txn_abort(txn);
        size_t want = 0;
        for (size_t i = 0; i < BI_DOCS; i++)
            want += live[i] && tf[i][qa[k]] && (qb[k] < 0 || tf[i][qb[k]]);
        if (r.total != want || r.nhits != (want > off + 1000 ? 1000 : want > off ? want - off : 0))
            fail_msg("query '%s': total %llu (%zu hits from %zu), brute force %zu", q[k],
                     (unsigned long long)r.total, r.nhits, off, want);
        if (!off) { /* a top 3 (pruned windows: counted, and their docs' own bounds read) */
            idx_query q3 = {.query = q[k], .limit = 3};
            idx_result r3;
            assert_int_equal(mdb_txn_begin(e, NULL, MDB_RDONLY, &txn), 0);
            assert_int_equal(idx_search(x, txn, &q3, &r3), IDX_OK);
            mdb_txn_abort(txn);
            if (r3.total != want)
                fail_msg("query '%s' top 3: total %llu, brute force %zu", q[k],
                         (unsigned long long)r3.total, want);
            assert_int_equal(r3.nhits, want < 3 ? want : 3);
            for (size_t h = 0; h < r3.nhits; h++)
                assert_int_equal(r3.hits[h].id, r.hits[h].id);
            idx_result_free(&r3);
        }
        static double score_of[9];
        if (!off)
            memset(score_of, 0, sizeof score_of);
        for (size_t h = 0; h < r.nhits; h++) {
            uint64_t id = r.hits[h].id;
            size_t i = id <= 1200 ? (size_t)id - 1 : (size_t)(id - 300000 + 1200);
            if (id == 0 || (id > 1200 && id < 300000) || i >= BI_DOCS || !live[i] || !tf[i][qa[k]] ||
                (qb[k] >= 0 && !tf[i][qb[k]]))
                fail_msg("query '%s': hit %llu is not a brute-force answer", q[k], (unsigned long long)id);
            if (qb[k] >= 0)
                continue;
            uint8_t t = tf[i][qa[k]];
            if (score_of[t] == 0)
                score_of[t] = r.hits[h].score;
            else if (fabs(score_of[t] - r.hits[h].score) > 1e-9)
                fail_msg("query '%s': doc %llu (tf %u) scores %.9f, another of its tf %.9f", q[k],
                         (unsigned long long)id, t, r.hits[h].score, score_of[t]);
        }
        for (int t = 1; t < 9 && qb[k] < 0; t++)
            for (int u = t + 1; u < 9; u++)
                if (score_of[t] && score_of[u] && !(score_of[u] > score_of[t]))
                    fail_msg("query '%s': tf %d scores %.9f, tf %d %.9f", q[k], u, score_of[u], t,
                             score_of[t]);
        idx_result_free(&r);
    }
}
static void bi_run(const char *const *words) {
    bi_w = words;
    char d[64] = "/tmp/idx_bids_XXXXXX";
    MDB_env *e = lmdb_tmp_open(d, 8, 0);
    idx_options o = {.b = -1, .no_typos = true, .max_pending_docs = 50, .merge_factor = 2};
    static uint8_t tf[BI_DOCS][6];
    static bool live[BI_DOCS];
    static char body[BI_DOCS][80];
    MDB_txn *txn;
    idx *x = NULL;
    assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
    assert_int_equal(idx_open(txn, &o, &x), IDX_OK);
    for (size_t i = 0; i < BI_DOCS; i++) {
        bi_body(i, body[i], tf[i]);
        live[i] = true;
        idx_doc doc = {.title = "x", .title_len = 1, .body = body[i], .body_len = strlen(body[i])};
        assert_int_equal(idx_put(x, txn, bi_id(i), &doc, NULL), IDX_OK);
    }
    assert_int_equal(idx_flush(x, txn), IDX_OK);
    assert_int_equal(mdb_txn_commit(txn), 0);
    bi_check(e, x, (const uint8_t(*)[6])tf, live);
    assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
    for (size_t i = 3; i < BI_DOCS; i += 7) {
        idx_doc doc = {.title = "x", .title_len = 1, .body = body[i], .body_len = strlen(body[i])};
        assert_int_equal(idx_del(x, txn, bi_id(i), &doc), IDX_OK);
        live[i] = false;
    }
    assert_int_equal(idx_flush(x, txn), IDX_OK);
    assert_int_equal(mdb_txn_commit(txn), 0);
    bi_check(e, x, (const uint8_t(*)[6])tf, live);
    assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
    assert_int_equal(idx_optimize(x, txn), IDX_OK);
    assert_int_equal(mdb_txn_commit(txn), 0);
    bi_check(e, x, (const uint8_t(*)[6])tf, live);
    idx_close(&x);
    lmdb_tmp_close(&e, d);
}
static void test_block_ids_search(void **state) {
    (void)state;
    bi_run(bi_zh);
}
/* The same with English words: alpha and deltaecho in most docs (blocks of
 * IDX_IDS_CODE_N docs or more: bitmaps), bravo and deltabravo in ~12% (6 of
 * a flush's 50 docs: bare varints; merged: Elias-Fano), charlie in two runs
 * of ids far apart. */
static void test_block_ids_search_en(void **state) {
    (void)state;
    bi_run(bi_en);
}

/* IDX_HEAD_NOMAX: a CJK term's blocks of 2-8 docs store no largest
 * frequencies; the search takes them from the codes for the block's bound.
 * Segments of 5 docs of equal lengths (one block each): the first has 甲乙
 * twice in its first doc, the second once in each but its last doc (three
 * times). Top 1 must be that last doc: a bound taken from fewer than all the
 * block's codes is below the first segment's best and skips the block. */
static void test_block_nomax(void **state) {
    (void)state;
    char d[64] = "/tmp/idx_nomax_XXXXXX";
    MDB_env *e = lmdb_tmp_open(d, 8, 0);
    idx_options o = {.b = -1, .no_typos = true, .max_pending_docs = 5, .merge_factor = 64};
    MDB_txn *txn;
    idx *x = NULL;
    assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
    assert_int_equal(idx_open(txn, &o, &x), IDX_OK);
    static const char *body[10] = {
        "甲乙 甲乙 丙丁", "甲乙 丙丁 丙丁", "甲乙 丙丁 丙丁", "甲乙 丙丁 丙丁", "甲乙 丙丁 丙丁",
        "甲乙 丙丁 丙丁", "甲乙 丙丁 丙丁", "甲乙 丙丁 丙丁", "甲乙 丙丁 丙丁", "甲乙 甲乙 甲乙"};
    for (uint64_t id = 1; id <= 10; id++) {
        idx_doc doc = {.title = "x", .title_len = 1, .body = body[id - 1], .body_len = strlen(body[id - 1])};
        assert_int_equal(idx_put(x, txn, id, &doc, NULL), IDX_OK);
    }
    assert_int_equal(idx_flush(x, txn), IDX_OK);
    idx_segs sg;
    assert_int_equal(idx_segs_get(x, txn, &sg), 0);
    assert_int_equal(sg.nsegs, 2);
    assert_int_equal(mdb_txn_commit(txn), 0);
    for (uint32_t lim = 1; lim <= 2; lim++) {
        idx_query q = {.query = "甲乙", .limit = lim};
        idx_result r;
        assert_int_equal(mdb_txn_begin(e, NULL, MDB_RDONLY, &txn), 0);
        assert_int_equal(idx_search(x, txn, &q, &r), IDX_OK);
        mdb_txn_abort(txn);
        assert_int_equal(r.total, 10);
        assert_int_equal(r.nhits, lim);
        assert_int_equal(r.hits[0].id, 10);
        if (lim == 2)
            assert_int_equal(r.hits[1].id, 1);
        idx_result_free(&r);
    }
    idx_close(&x);
    lmdb_tmp_close(&e, d);
}

/* Phrase checks far into bodies: a candidate's positions are found by
 * skipping those of the block's docs before it (s_varints_skip, 8 bytes at
 * a time); random gaps of 1-150 words make the position deltas one- and
 * two-byte varints that straddle those 8 bytes in every way. Every doc has
 * both words (each one a phrase candidate), apart in most, each right after
 * the only "hay" of its gap ("straw" elsewhere: a position decoded wrong
 * finds no "hay" before it); the phrase is in every third doc; every other
 * title has the first word too. */
static void test_phrase_far_positions(void **state) {
    (void)state;
    char d[64] = "/tmp/idx_phrase_XXXXXX";
    MDB_env *e = lmdb_tmp_open(d, 8, 1ull << 28);
    MDB_txn *txn;
    idx *x = NULL;
    assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
    assert_int_equal(idx_open(txn, NULL, &x), IDX_OK);
    size_t cap = 1 << 16;
    unsigned seed = 99;
    char *body = malloc(cap);
    assert_non_null(body);
    for (uint64_t id = 1; id <= 90; id++) {
        size_t o = 0;
        for (unsigned k = 0; k < 9; k++) {
            unsigned gap = 1 + test_rand(&seed) % 150;
            for (unsigned g = 0; g < gap; g++)
                o += (size_t)snprintf(body + o, cap - o, "%s ", g + 1 == gap ? "hay" : "straw");
            const char *w = k == 8 && id % 3 == 0 ? "alpha beta " : k % 2 ? "alpha " : "beta ";
            o += (size_t)snprintf(body + o, cap - o, "%s", w);
        }
        const char *title = id % 2 ? "alpha title more" : "plain";
        idx_doc doc = {.title = title, .title_len = strlen(title), .body = body, .body_len = o};
        assert_int_equal(idx_put(x, txn, id, &doc, NULL), IDX_OK);
    }
    free(body);
    assert_int_equal(mdb_txn_commit(txn), 0);
    for (int round = 0; round < 2; round++) {
        double sc;
        assert_int_equal(s_total(e, x, "\"alpha beta\"", &sc), 30);
        assert_int_equal(s_total(e, x, "\"beta alpha\"", &sc), 0);
        assert_int_equal(s_total(e, x, "\"straw alpha\"", &sc), 0);
        assert_int_equal(s_total(e, x, "\"hay alpha\"", &sc), 90);
        assert_int_equal(s_total(e, x, "\"hay beta\"", &sc), 90);
        assert_int_equal(s_total(e, x, "\"alpha title\"", &sc), 45);
        if (round == 0) { /* one segment, one list */
            assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
            assert_int_equal(idx_optimize(x, txn), IDX_OK);
            assert_int_equal(mdb_txn_commit(txn), 0);
        }
    }
    idx_close(&x);
    lmdb_tmp_close(&e, d);
}

/* The ids of a query's hits (all of them: at most 200), sorted. */
static size_t s_hit_ids(MDB_env *e, idx *x, const char *query, uint64_t *ids) {
    idx_result r;
    s_query_run(e, x, query, 200, &r);
    assert_true(r.total == r.nhits);
    size_t n = r.nhits;
    for (size_t i = 0; i < n; i++)
        ids[i] = r.hits[i].id;
    idx_result_free(&r);
    for (size_t i = 1; i < n; i++) /* insertion sort: ids ascending */
        for (size_t j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
            uint64_t t = ids[j];
            ids[j] = ids[j - 1];
            ids[j - 1] = t;
        }
    return n;
}

/* Terms of at most IDX_BLOCK_DOCS docs in one flush whose postings are not
 * one inline block (the flush's second pass writes them to idx_post): one
 * block larger than IDX_INLINE_MAX ("hay": 100 docs of ~12 bytes) or blocks
 * cut at IDX_BLOCK_BYTES (every doc's "straw", 40 times in each of 120
 * docs). Their hits and phrases (positions) are the docs they were put
 * with. */
static void test_staged_blocks(void **state) {
    (void)state;
    char d[64] = "/tmp/idx_staged_XXXXXX";
    MDB_env *e = lmdb_tmp_open(d, 8, 1ull << 28);
    MDB_txn *txn;
    idx *x = NULL;
    idx_options o = {.b = -1, .no_typos = true, .max_pending_docs = 1000};
    assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
    assert_int_equal(idx_open(txn, &o, &x), IDX_OK);
    size_t cap = 1 << 16;
    char *body = malloc(cap);
    assert_non_null(body);
    uint64_t all[120], hay[120], needle[120];
    size_t nall = 0, nhay = 0, nneedle = 0;
    for (uint64_t i = 1; i <= 120; i++) {
        uint64_t id = 7 + 3 * i; /* not 1, 2, 3...: a first id off by one is seen */
        size_t at = 0;
        for (unsigned k = 0; k < 40; k++)
            at += (size_t)snprintf(body + at, cap - at, "straw filler ");
        all[nall++] = id;
        if (i % 6) { /* "hay" 4 times, ~150 words apart (two-byte position deltas) */
            for (unsigned k = 0; k < 4; k++) {
                for (unsigned g = 0; g < 150; g++)
                    at += (size_t)snprintf(body + at, cap - at, "chaff ");
                at += (size_t)snprintf(body + at, cap - at, "%s", k == 3 && i % 4 == 0 ? "hay needle " : "hay ");
            }
            hay[nhay++] = id;
            if (i % 4 == 0)
                needle[nneedle++] = id;
        }
        idx_doc doc = {.title = "plain", .title_len = 5, .body = body, .body_len = at};
        assert_int_equal(idx_put(x, txn, id, &doc, NULL), IDX_OK);
    }
    free(body);
    assert_int_equal(idx_flush(x, txn), IDX_OK);
    assert_int_equal(mdb_txn_commit(txn), 0);
    unsigned counts[4];
    size_t lsh, lsl;
    s_lex_kinds(e, x, counts, &lsh, &lsl);
    assert_true(counts[IDX_LEX_POST] >= 2); /* straw's and hay's blocks are in idx_post */
    uint64_t got[200];
    assert_int_equal(s_hit_ids(e, x, "straw", got), nall);
    assert_memory_equal(got, all, nall * sizeof *got);
    assert_int_equal(s_hit_ids(e, x, "hay", got), nhay);
    assert_memory_equal(got, hay, nhay * sizeof *got);
    assert_int_equal(s_hit_ids(e, x, "\"hay needle\"", got), nneedle);
    assert_memory_equal(got, needle, nneedle * sizeof *got);
    assert_int_equal(s_hit_ids(e, x, "\"filler straw\"", got), nall);
    assert_int_equal(s_hit_ids(e, x, "\"straw hay\"", got), 0);
    assert_int_equal(s_lex_df_of(e, x, "hay"), nhay);
    idx_close(&x);
    lmdb_tmp_close(&e, d);
}

/* A phrase's positions reached through the frequencies of the docs before
 * its candidate in the block: summed from the codes in place (s_sub_tf_sum,
 * 8 codes at a time: docs marked (0, 1) among docs with codes, runs of more
 * than 8 codes) or from the decoded frequencies (blocks with a title
 * frequency of 3, an escaped code), and both in one block when a bound
 * decodes its frequencies between two candidates. 300 docs (blocks of 128):
 * "gamma delta" 1 + id % 3 times in the body of every 20th doc (runs of more
 * than 8 codes between candidates), a lone "gamma" 1 + id % 5 times in every
 * doc (once: marked (0, 1)), each after a gap of 1-150 words that ends with
 * "hay"; ids 150-199 have "gamma gamma gamma delta" as their title. */
static void test_phrase_skip_sum(void **state) {
    (void)state;
    char d[64] = "/tmp/idx_phsum_XXXXXX";
    MDB_env *e = lmdb_tmp_open(d, 8, 1ull << 28);
    MDB_txn *txn;
    idx *x = NULL;
    assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
    assert_int_equal(idx_open(txn, NULL, &x), IDX_OK);
    size_t cap = 1 << 16;
    unsigned seed = 5;
    char *body = malloc(cap);
    assert_non_null(body);
    uint64_t want_gd = 0, want_hg = 0, want_title = 0, want_gdh = 0, want_body = 0;
    for (uint64_t id = 1; id <= 300; id++) {
        size_t o = 0;
        unsigned g = id % 20 ? 0 : 1 + (unsigned)(id % 3), lone = 1 + (unsigned)(id % 5);
        for (unsigned k = 0; k < g + lone; k++) {
            unsigned gap = 1 + test_rand(&seed) % 150;
            for (unsigned j = 0; j < gap; j++)
                o += (size_t)snprintf(body + o, cap - o, "%s ", j + 1 == gap ? "hay" : "straw");
            o += (size_t)snprintf(body + o, cap - o, "%s", k < g ? "gamma delta " : "gamma ");
        }
        o += (size_t)snprintf(body + o, cap - o, "straw end");
        bool t = id >= 150 && id < 200;
        const char *title = t ? "gamma gamma gamma delta" : "plain";
        want_gd += g || t;
        want_hg += g || lone;
        want_title += t;
        want_gdh += (g || t) && (g || lone); /* "hay" in the body */
        want_body += g > 0;
        idx_doc doc = {.title = title, .title_len = strlen(title), .body = body, .body_len = o};
        assert_int_equal(idx_put(x, txn, id, &doc, NULL), IDX_OK);
    }
    free(body);
    assert_int_equal(idx_optimize(x, txn), IDX_OK); /* one segment */
    assert_int_equal(mdb_txn_commit(txn), 0);
    double sc;
    assert_int_equal(s_total(e, x, "\"gamma delta\"", &sc), want_gd);
    assert_int_equal(s_total(e, x, "\"hay gamma\"", &sc), want_hg);
    assert_int_equal(s_total(e, x, "\"hay gamma delta\"", &sc), want_body);
    assert_int_equal(s_total(e, x, "\"delta gamma\"", &sc), 0);
    assert_int_equal(s_total(e, x, "\"gamma gamma gamma\"", &sc), want_title);
    assert_int_equal(s_total(e, x, "\"gamma delta\" hay", &sc), want_gdh);
    idx_close(&x);
    lmdb_tmp_close(&e, d);
}

/* A two-word phrase's AND (s_phrase_and2): its terms' blocks merged in
 * place, and each side's block running out below the other's doc (its next
 * block then starting at, or past, that doc). 1,000 docs: "kappa" in the
 * even ids and the multiples of 7, "lambda" in the multiples of 3 and 5 (a
 * few blocks of 128 each, ending at different ids); a doc with both has
 * "kappa lambda", "lambda kappa" or neither adjacent, by id % 4. Counted with
 * one segment per flush (several subs: the plain leapfrog) and after
 * idx_optimize (one segment: the merge), against the counts written. */
static void test_phrase_and2(void **state) {
    (void)state;
    char d[64] = "/tmp/idx_and2_XXXXXX";
    MDB_env *e = lmdb_tmp_open(d, 8, 1ull << 28);
    MDB_txn *txn;
    idx *x = NULL;
    uint64_t want_kl = 0, want_lk = 0, want_both = 0;
    char body[256];
    for (uint64_t id = 1; id <= 1000; id++) {
        if (id % 250 == 1) { /* a segment per 250 docs */
            if (x)
                assert_int_equal(mdb_txn_commit(txn), 0);
            assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
            idx_options o = {.b = -1, .max_pending_docs = 1000, .merge_factor = 64};
            if (!x)
                assert_int_equal(idx_open(txn, &o, &x), IDX_OK);
        }
        bool k = id % 2 == 0 || id % 7 == 0, l = id % 3 == 0 || id % 5 == 0;
        const char *w = "";
        if (k && l) {
            static const char *BOTH[] = {"kappa lambda", "lambda kappa", "kappa straw lambda",
                                         "lambda straw kappa"};
            w = BOTH[id % 4];
            want_kl += id % 4 == 0;
            want_lk += id % 4 == 1;
            want_both++;
        } else if (k || l) {
            w = k ? "kappa" : "lambda";
        }
        int n = snprintf(body, sizeof body, "hay straw %s straw hay", w);
        idx_doc doc = {.title = "plain", .title_len = 5, .body = body, .body_len = (size_t)n};
        assert_int_equal(idx_put(x, txn, id, &doc, NULL), IDX_OK);
        if (id % 50 == 0)
            assert_int_equal(idx_flush(x, txn), IDX_OK);
    }
    assert_int_equal(mdb_txn_commit(txn), 0);
    for (int round = 0; round < 2; round++) {
        double sc;
        assert_int_equal(s_total(e, x, "\"kappa lambda\"", &sc), want_kl);
        assert_int_equal(s_total(e, x, "\"lambda kappa\"", &sc), want_lk);
        assert_int_equal(s_total(e, x, "kappa lambda", &sc), want_both);
        if (round == 0) { /* one segment */
            assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
            assert_int_equal(idx_optimize(x, txn), IDX_OK);
            assert_int_equal(mdb_txn_commit(txn), 0);
        }
    }
    idx_close(&x);
    lmdb_tmp_close(&e, d);
}

/* An AND's steps between blocks (s_sub_raw: the next block, the blocks after
 * it stepped over by their keys with the cursor left on the one it looked at
 * past them, or a seek) and within a block (s_post_advance's inline scan),
 * against brute force: omega in 2 of 3 docs, sigma in ~1 in 9 (Elias-Fano
 * blocks), tau in 1 of 97 but none in 3,000-6,000 (a seek) and a run of 41
 * at 9,000 (the next block's docs one after the other), omegab (its keys
 * follow omega's last block: a look past it finds another term's) in the
 * last 40 docs; rho in runs of 64 docs 64 apart (blocks of 128 docs: two
 * runs, and 64 ids between blocks), upsilon in some of those gaps (an AND
 * with rho steps over a block to a target between the next two: the block
 * the cursor looked at past it is the one loaded after it) and in a run
 * every 768 ids. Each query's total and hits (limit 1000) are the brute-force
 * ones, and its top 3 the limit 1000's first 3; in one segment, again after
 * every 11th doc is deleted (the segment's generations are checked: no
 * inline scan) and after idx_optimize. */
#define AS_DOCS 12000
static bool as_has(uint64_t id, int w) {
    switch (w) {
    case 0:
        return id % 3 != 0;
    case 1:
        return (id * 2654435761u >> 7) % 9 == 0;
    case 2:
        return (id % 97 == 5 && (id < 3000 || id > 6000)) || (id >= 9000 && id <= 9040);
    case 3:
        return id > AS_DOCS - 40;
    case 4:
        return id / 64 % 2 == 0;
    default:
        return id % 384 == 100 || id % 768 == 10;
    }
}
static void as_check(MDB_env *e, idx *x, const bool *live) {
    static const char *const words[6] = {"omega", "sigma", "tau", "omegab", "rho", "upsilon"};
    static const int qw[][3] = {{0, 2, -1}, {1, 2, -1}, {0, 1, -1}, {2, 1, 0}, {3, 0, -1}, {3, 1, -1},
                                {0, 3, 2}, {2, -1, -1}, {1, -1, -1}, {4, 5, -1}, {5, 4, -1}};
    for (size_t k = 0; k < sizeof qw / sizeof *qw; k++) {
        char q[64] = "";
        for (int j = 0; j < 3 && qw[k][j] >= 0; j++) {
            strcat(q, j ? " " : "");
            strcat(q, words[qw[k][j]]);
        }
        uint64_t want = 0;
        for (uint64_t id = 1; id <= AS_DOCS; id++) {
            bool all = live[id];
            for (int j = 0; j < 3 && qw[k][j] >= 0; j++)
                all = all && as_has(id, qw[k][j]);
            want += all;
        }
        MDB_txn *txn;
        idx_query q1 = {.query = q, .limit = 1000}, q3 = {.query = q, .limit = 3};
        idx_result r, r3;
        assert_int_equal(mdb_txn_begin(e, NULL, MDB_RDONLY, &txn), 0);
        if (idx_search(x, txn, &q1, &r) != IDX_OK)
            fail_msg("query '%s': %s", q, r.error);
        assert_int_equal(idx_search(x, txn, &q3, &r3), IDX_OK);
        mdb_txn_abort(txn);
        if (r.total != want || r3.total != want)
            fail_msg("query '%s': total %llu (top 3: %llu), brute force %llu", q,
                     (unsigned long long)r.total, (unsigned long long)r3.total, (unsigned long long)want);
        assert_int_equal(r.nhits, want < 1000 ? want : 1000);
        for (size_t h = 0; h < r.nhits; h++) {
            uint64_t id = r.hits[h].id;
            bool all = id >= 1 && id <= AS_DOCS && live[id];
            for (int j = 0; all && j < 3 && qw[k][j] >= 0; j++)
                all = as_has(id, qw[k][j]);
            if (!all)
                fail_msg("query '%s': hit %llu is not a brute-force answer", q, (unsigned long long)id);
        }
        assert_int_equal(r3.nhits, want < 3 ? want : 3);
        for (size_t h = 0; h < r3.nhits; h++)
            assert_int_equal(r3.hits[h].id, r.hits[h].id);
        idx_result_free(&r);
        idx_result_free(&r3);
    }
}
static void test_and_block_steps(void **state) {
    (void)state;
    char d[64] = "/tmp/idx_andsteps_XXXXXX";
    MDB_env *e = lmdb_tmp_open(d, 8, 1ull << 28);
    static bool live[AS_DOCS + 1];
    static const char *const words[6] = {"omega", "sigma", "tau", "omegab", "rho", "upsilon"};
    idx_options o = {.b = -1, .no_typos = true, .max_pending_docs = AS_DOCS + 1, .merge_factor = 64};
    MDB_txn *txn;
    idx *x = NULL;
    char body[128];
    assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
    assert_int_equal(idx_open(txn, &o, &x), IDX_OK);
    for (uint64_t id = 1; id <= AS_DOCS; id++) {
        strcpy(body, "hay");
        for (int w = 0; w < 6; w++)
            if (as_has(id, w)) {
                strcat(body, " ");
                strcat(body, words[w]);
            }
        live[id] = true;
        idx_doc doc = {.title = "plain", .title_len = 5, .body = body, .body_len = strlen(body)};
        assert_int_equal(idx_put(x, txn, id, &doc, NULL), IDX_OK);
    }
    assert_int_equal(idx_flush(x, txn), IDX_OK);
    assert_int_equal(mdb_txn_commit(txn), 0);
    as_check(e, x, live);
    assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
    for (uint64_t id = 11; id <= AS_DOCS; id += 11) {
        strcpy(body, "hay");
        for (int w = 0; w < 6; w++)
            if (as_has(id, w)) {
                strcat(body, " ");
                strcat(body, words[w]);
            }
        idx_doc doc = {.title = "plain", .title_len = 5, .body = body, .body_len = strlen(body)};
        assert_int_equal(idx_del(x, txn, id, &doc), IDX_OK);
        live[id] = false;
    }
    assert_int_equal(idx_flush(x, txn), IDX_OK);
    assert_int_equal(mdb_txn_commit(txn), 0);
    as_check(e, x, live);
    assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
    assert_int_equal(idx_optimize(x, txn), IDX_OK);
    assert_int_equal(mdb_txn_commit(txn), 0);
    as_check(e, x, live);
    idx_close(&x);
    lmdb_tmp_close(&e, d);
}

/* A doc's frequencies read in place (s_sub_tf_at: the doc's code found by
 * counting the bitmap's marked docs before it, when every code of its block
 * is one simple byte) or decoded with the block's (a block with a body
 * frequency >= 32 or a title frequency >= 3 somewhere), against scores
 * computed here from the frequencies each doc was written with. One segment
 * of 3,000 docs (blocks of 128): frequent terms mostly once in a doc (marked
 * (0, 1)), now and then 2-5 times, peaks of 33-40 in the bodies of ids
 * 1200-1799, of 64-71 in those of ids 2400-2599 and of 4 in some titles;
 * small limits, so that most candidates are pruned by their own bounds (a
 * frequency read wrong moves a peak, or prunes a doc that belongs in the
 * top). The one-word queries go through s_window_one's limits per title
 * frequency (a limit one too high, or a doc past the limits taken as below
 * them, prunes a doc of the top). */
#define TF_DOCS 3000
static struct {
    uint32_t tt[3], tb[3], lt, lb;
} tfd[TF_DOCS + 1];

static int s_count_cb(void *ud, const text_token *t) {
    (void)ud;
    (void)t;
    return 0;
}

static double s_tf_part(double w, uint32_t tf, uint32_t len, double avg) {
    const double k1 = 1.2, b = 0.75;
    return w * (double)tf * (k1 + 1) / ((double)tf + k1 * (1 - b + b * (double)len / avg));
}

static int s_tf_hit_cmp(const void *a, const void *b) {
    const rhit *x = a, *y = b; /* score desc, then pub (= id) desc */
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->id > y->id ? -1 : 1;
}

static void s_tf_check(MDB_env *e, idx *x, const int *w, int nw, uint32_t limit) {
    static const char *WORD[] = {"alpha", "beta", "gamma"};
    static rhit ref[TF_DOCS];
    double df[3] = {0}, avg_t = 0, avg_b = 0;
    for (int id = 1; id <= TF_DOCS; id++) {
        avg_t += tfd[id].lt;
        avg_b += tfd[id].lb;
        for (int k = 0; k < 3; k++)
            df[k] += tfd[id].tt[k] + tfd[id].tb[k] > 0;
    }
    avg_t /= TF_DOCS;
    avg_b /= TF_DOCS;
    int ord[3]; /* the rarest first: the order idx_search sums the clauses in */
    for (int i = 0; i < nw; i++)
        ord[i] = w[i];
    for (int i = 1; i < nw; i++)
        for (int j = i; j > 0 && df[ord[j]] < df[ord[j - 1]]; j--) {
            int t = ord[j];
            ord[j] = ord[j - 1];
            ord[j - 1] = t;
        }
    size_t n = 0;
    for (int id = 1; id <= TF_DOCS; id++) {
        double sc = 0;
        bool all = true;
        for (int i = 0; i < nw && all; i++) {
            int k = ord[i];
            uint32_t tt = tfd[id].tt[k], tb = tfd[id].tb[k];
            all = tt + tb > 0;
            double idf = log(1.0 + (TF_DOCS - df[k] + 0.5) / (df[k] + 0.5)), v = 0;
            if (tt)
                v += s_tf_part(2.0, tt, tfd[id].lt, avg_t);
            if (tb)
                v += s_tf_part(1.0, tb, tfd[id].lb, avg_b);
            sc += idf * v;
        }
        if (all)
            ref[n++] = (rhit){id, sc};
    }
    qsort(ref, n, sizeof *ref, s_tf_hit_cmp);
    char query[64] = "";
    for (int i = 0; i < nw; i++) {
        strcat(query, WORD[w[i]]);
        strcat(query, i + 1 < nw ? " " : "");
    }
    MDB_txn *txn;
    idx_query q = {.query = query, .limit = limit};
    idx_result r;
    assert_int_equal(mdb_txn_begin(e, NULL, MDB_RDONLY, &txn), 0);
    if (idx_search(x, txn, &q, &r) != IDX_OK)
        fail_msg("query '%s': %s", query, r.error);
    mdb_txn_abort(txn);
    assert_int_equal(r.total, n);
    assert_int_equal(r.nhits, n < limit ? n : limit);
    for (size_t i = 0; i < r.nhits; i++)
        if (r.hits[i].id != (uint64_t)ref[i].id || fabs(r.hits[i].score - ref[i].score) > 1e-9 * ref[i].score)
            fail_msg("query '%s' limit %u rank %zu: id %llu score %.12f, reference id %d score %.12f", query,
                     limit, i, (unsigned long long)r.hits[i].id, r.hits[i].score, ref[i].id, ref[i].score);
    idx_result_free(&r);
}

static void test_tf_in_place(void **state) {
    (void)state;
    char d[64] = "/tmp/idx_tf_XXXXXX";
    MDB_env *e = lmdb_tmp_open(d, 8, 1ull << 28);
    MDB_txn *txn;
    idx *x = NULL;
    assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
    assert_int_equal(idx_open(txn, NULL, &x), IDX_OK);
    static const char *WORD[] = {"alpha", "beta", "gamma"};
    unsigned seed = 11;
    static char body[8192], title[128];
    for (uint64_t id = 1; id <= TF_DOCS; id++) {
        size_t o = 0, to = 0;
        memset(&tfd[id], 0, sizeof tfd[id]);
        for (int w = 0; w < 3; w++) {
            if (id % (uint64_t)(w + 1))
                continue;
            unsigned r = test_rand(&seed) % 64, tf = 1;
            if (r < 6)
                tf = 2 + r % 4;
            else if (r < 8 && id >= 1200 && id < 1800)
                tf = 33 + test_rand(&seed) % 8; /* a code of two bytes */
            else if (r < 8 && id >= 2400 && id < 2600)
                tf = 64 + test_rand(&seed) % 8; /* past s_window_one's limits (tb < 64) */
            for (unsigned k = 0; k < tf; k++)
                o += (size_t)snprintf(body + o, sizeof body - o, "%s straw ", WORD[w]);
            tfd[id].tb[w] = tf;
        }
        unsigned fill = test_rand(&seed) % 40;
        for (unsigned k = 0; k < fill; k++)
            o += (size_t)snprintf(body + o, sizeof body - o, "straw ");
        if (id % 5 == 0) {
            to = (size_t)snprintf(title, sizeof title, "alpha beta title");
            tfd[id].tt[0] = tfd[id].tt[1] = 1;
        } else if (id % 331 == 0) {
            to = (size_t)snprintf(title, sizeof title, "alpha alpha alpha alpha title"); /* escaped code */
            tfd[id].tt[0] = 4;
        } else {
            to = (size_t)snprintf(title, sizeof title, "plain");
        }
        text_analyze(an, title, to, 0, s_count_cb, NULL, &tfd[id].lt);
        text_analyze(an, body, o, 0, s_count_cb, NULL, &tfd[id].lb);
        idx_doc doc = {.title = title, .title_len = to, .body = body, .body_len = o,
                       .published_at = (int64_t)id};
        assert_int_equal(idx_put(x, txn, id, &doc, NULL), IDX_OK);
    }
    assert_int_equal(idx_optimize(x, txn), IDX_OK); /* one segment */
    assert_int_equal(mdb_txn_commit(txn), 0);
    static const int Q[][3] = {{0, 1}, {1, 2}, {0, 1, 2}, {0}, {2}, {0, 2}};
    static const int QN[] = {2, 2, 3, 1, 1, 2};
    static const uint32_t L[] = {1, 3, 10, 50};
    for (size_t i = 0; i < sizeof QN / sizeof QN[0]; i++)
        for (size_t j = 0; j < sizeof L / sizeof L[0]; j++)
            s_tf_check(e, x, Q[i], QN[i], L[j]);
    idx_close(&x);
    lmdb_tmp_close(&e, d);
}

/* Column chunks: every record comes back as written through one opened
 * chunk object that is reused (its layout cache) across chunks of the same
 * and of other layouts: the widest values (pub INT64_MIN and INT64_MAX,
 * UINT32_MAX fields), pubs in milliseconds and in whole seconds, an empty
 * chunk; records with live 0 read as zeros; a chunk of typical widths fits
 * one 4 KiB overflow page; a chunk of the wrong length or with a width or
 * flag out of range is refused and reads as absent (all zero). */
static void s_chunk_check(idx_colchunk *c, const idx_col_rec *recs, const uint8_t *buf, size_t len) {
    assert_int_equal(idx_colchunk_open(c, buf, len), 0);
    for (size_t i = 0; i < IDX_COL_PER_CHUNK; i++) {
        idx_col_rec r, want = recs[i];
        if (!want.live)
            memset(&want, 0, sizeof want);
        idx_colchunk_get(c, i, &r);
        assert_true(r.pub == want.pub); /* field by field: the struct has padding */
        assert_int_equal(r.len_t, want.len_t);
        assert_int_equal(r.len_b, want.len_b);
        assert_int_equal(r.site, want.site);
        assert_int_equal(r.cat, want.cat);
        assert_int_equal(r.live, want.live);
        assert_int_equal(idx_colchunk_u32(c, IDX_CF_SITE, i), want.site);
        if (want.live)
            assert_true(idx_colchunk_pub(c, i) == want.pub);
    }
}

static void test_column_chunks(void **state) {
    (void)state;
    static idx_col_rec recs[4][IDX_COL_PER_CHUNK];
    static uint8_t buf[4][IDX_COL_MAX];
    size_t len[4];
    memset(recs, 0, sizeof recs);
    for (size_t i = 0; i < IDX_COL_PER_CHUNK; i++) { /* typical: pubs in whole seconds */
        recs[0][i] = (idx_col_rec){.pub = 1500000000000 + (int64_t)(rnd() % 100000000) * 1000,
                                   .len_t = 1 + rnd() % 30, .len_b = rnd() % 3000, .site = rnd() % 900,
                                   .cat = rnd() % 300, .live = 1 + rnd() % 200};
        recs[1][i] = recs[0][i];
        recs[1][i].pub += 7; /* milliseconds */
        recs[1][i].live = i % 3 ? recs[1][i].live : 0;
    }
    recs[2][1].pub = INT64_MIN;
    recs[2][2].pub = INT64_MAX;
    recs[2][3] = (idx_col_rec){.pub = -1, .len_t = UINT32_MAX, .len_b = UINT32_MAX, .site = UINT32_MAX,
                               .cat = UINT32_MAX, .live = UINT32_MAX};
    recs[2][1].live = recs[2][2].live = 1;
    recs[2][IDX_COL_PER_CHUNK - 1] = recs[2][3];
    /* recs[3]: every record absent */
    for (int k = 0; k < 4; k++) {
        len[k] = idx_colchunk_encode(recs[k], buf[k]);
        assert_true(len[k] <= IDX_COL_MAX);
    }
    assert_true(len[0] <= 4096 - 16); /* one overflow page */
    assert_int_equal(len[3], IDX_COL_HEAD + IDX_COL_PAD);
    idx_colchunk c = {.len = 0};
    static const int order[] = {0, 0, 1, 2, 3, 0, 2, 2, 1};
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++)
        s_chunk_check(&c, recs[order[k]], buf[order[k]], len[order[k]]);
    /* malformed: refused, then read as absent; the next good chunk reads right */
    idx_col_rec r;
    assert_int_equal(idx_colchunk_open(&c, buf[0], len[0] - 1), -1);
    idx_colchunk_get(&c, 5, &r);
    assert_int_equal(r.live, 0);
    assert_int_equal(idx_colchunk_u32(&c, IDX_CF_LB, 5), 0);
    assert_int_equal(idx_colchunk_open(&c, buf[0], len[0] + 1), -1);
    assert_int_equal(idx_colchunk_open(&c, buf[0], 3), -1);
    uint8_t bad[IDX_COL_MAX];
    memcpy(bad, buf[0], len[0]);
    bad[9 + IDX_CF_SITE] = 5; /* at most 4 bytes */
    assert_int_equal(idx_colchunk_open(&c, bad, len[0]), -1);
    memcpy(bad, buf[0], len[0]);
    bad[8] = 2; /* flags */
    assert_int_equal(idx_colchunk_open(&c, bad, len[0]), -1);
    s_chunk_check(&c, recs[0], buf[0], len[0]);
    assert_int_equal(idx_colchunk_open(&c, NULL, 0), 0); /* absent */
    idx_colchunk_get(&c, 0, &r);
    assert_int_equal(r.live, 0);
}

/* An index in an older layout is cleared by idx_open in a write txn (the
 * caller re-indexes) and refused in a read-only one. */
static void test_old_format(void **state) {
    (void)state;
    char d[64] = "/tmp/idx_old_XXXXXX";
    MDB_env *e = lmdb_tmp_open(d, 8, 0);
    MDB_txn *txn;
    MDB_dbi post, meta;
    assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "idx_post", MDB_CREATE, &post), 0);
    assert_int_equal(mdb_dbi_open(txn, "idx_meta", MDB_CREATE, &meta), 0);
    const char *more[] = {"idx_lex", "idx_col", "idx_dict"};
    for (int i = 0; i < 3; i++) {
        MDB_dbi x;
        assert_int_equal(mdb_dbi_open(txn, more[i], MDB_CREATE, &x), 0);
    }
    MDB_val k = {6, "police"}, v = {3, "old"};
    assert_int_equal(mdb_put(txn, post, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    idx *o = NULL;
    assert_int_equal(mdb_txn_begin(e, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(idx_open(txn, NULL, &o), IDX_FAILED_PRECONDITION);
    assert_null(o);
    mdb_txn_abort(txn);
    assert_int_equal(mdb_txn_begin(e, NULL, 0, &txn), 0);
    assert_int_equal(idx_open(txn, NULL, &o), IDX_OK);
    MDB_stat st;
    assert_int_equal(mdb_stat(txn, post, &st), 0);
    assert_int_equal(st.ms_entries, 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    idx_close(&o);
    lmdb_tmp_close(&e, d);
}

static int setup_merging(void **state) {
    g_opts = (idx_options){.b = -1, .no_typos = true, .max_pending_docs = 7, .merge_factor = 2};
    rng = 777;
    return setup(state);
}

static int setup_bulk(void **state) {
    g_opts = (idx_options){.b = -1, .no_typos = true, .max_pending_docs = 7, .merge_factor = 2};
    g_bulk = true;
    rng = 4242;
    return setup(state);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference),    cmocka_unit_test(test_pagination),
        cmocka_unit_test(test_facets),       cmocka_unit_test(test_errors),
        cmocka_unit_test(test_typos),        cmocka_unit_test(test_update_delete_boundary),
        cmocka_unit_test(test_typo_reference), cmocka_unit_test(test_typo_reference_decoys),
        cmocka_unit_test(test_typo_terms_after_clear),
        cmocka_unit_test(test_big_article),  cmocka_unit_test(test_segments),
        cmocka_unit_test(test_optimize_read_ahead),
        cmocka_unit_test(test_optimize),     cmocka_unit_test(test_segments),
        cmocka_unit_test(test_old_format),   cmocka_unit_test(test_cjk_one_doc),
        cmocka_unit_test(test_cjk_run_positions), cmocka_unit_test(test_first_post_key),
        cmocka_unit_test(test_phrase_far_positions), cmocka_unit_test(test_phrase_skip_sum),
        cmocka_unit_test(test_staged_blocks),
        cmocka_unit_test(test_phrase_and2),  cmocka_unit_test(test_and_block_steps),
        cmocka_unit_test(test_block_ids_code), cmocka_unit_test(test_block_ids_widths),
        cmocka_unit_test(test_varint_len),
        cmocka_unit_test(test_block_ids_search),
        cmocka_unit_test(test_block_ids_search_en), cmocka_unit_test(test_tf_in_place),
        cmocka_unit_test(test_block_nomax),
        cmocka_unit_test(test_error_code),   cmocka_unit_test(test_column_chunks),
        cmocka_unit_test(test_lexicon_entries), cmocka_unit_test(test_id_max),
    };
    int failed = cmocka_run_group_tests_name("batches of 64", tests, setup, teardown);
    failed += cmocka_run_group_tests_name("batches of 7, merge factor 2", tests, setup_merging, teardown);
    failed += cmocka_run_group_tests_name("bulk load, then batches of 7, merge factor 2", tests,
                                          setup_bulk, teardown);
    return failed;
}
