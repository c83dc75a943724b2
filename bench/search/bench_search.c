/*
 * bulletin-bench-search: the search index (services/search) against SQLite
 * FTS5 and Xapian on a reference corpus, in-process: the build on one thread
 * (ours with --threads 2: one analysis thread ahead of the writer, as a
 * worker's Sync), the queries on --query-threads threads (default 1).
 *
 *   bulletin-bench-search --corpus /tmp/corpus/en.jsonl \
 *       --queries /tmp/corpus/queries/en.search.jsonl [--zh] [--dir /tmp/bench-search]
 *       [--max-docs N] [--commit-every 1000] [--rounds 3] [--query-threads 1]
 *
 * Both engines get the same documents (loaded into memory first, so JSON
 * parsing is not timed), commit every N docs with a synced commit (LMDB
 * default flags; SQLite synchronous=FULL, rollback journal), then run the
 * same queries for the top 10 by BM25 with the title weighted x2.
 *
 * Differences that are not hidden: FTS5 does not stem (we index stems and
 * exact forms), and FTS5's LIMIT 10 does not count all matches (we return
 * the exact total with every page). For Chinese, FTS5 gets the text
 * pre-split into bigrams (the corpus README's "pre-bigrammed" convention,
 * done before the timer starts), we analyze the raw text ourselves.
 *
 * Xapian (when built with it, see CMakeLists.txt): BM25Weight(k1 1.2, b
 * 0.75), the title indexed with wdf x2, English stems (STEM_SOME) and exact
 * forms, positions, QueryParser with AND as default operator; for Chinese
 * its own CJK n-grams (FLAG_CJK_NGRAM) on the raw text. It commits (and
 * fsyncs) every N docs like the others; get_mset's total is an estimate.
 *
 * Query phase (every engine): --query-threads N closed loops at once, each
 * thread with its own reader (LMDB read txns and its own idx, its own
 * read-only SQLite connection, its own Xapian::Database), each running one
 * warm-up round and --rounds timed rounds of all the queries (thread t
 * starts at query t*nq/N); QPS = all timed queries / wall time from the
 * start barrier to the last thread's end; p50/p99 over all queries. Each
 * engine prints a checksum of its top-10 ids per query, the same for any N.
 */
#include "clock.h"
#include "config.h"
#include "idx.h"
#include "log.h"
#include "text.h"

#include <jansson.h>
#include <pthread.h>
#include <time.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utf8proc.h>
#ifdef BENCH_HAVE_XAPIAN
#include "xapian_bench.h"
#endif

typedef struct {
    char *title, *body, *site, *cat;
    char *ftitle, *fbody; /* FTS5 text (bigrammed for zh) */
    int64_t pub;
} doc;

typedef struct {
    char *ours; /* our query syntax */
    char *fts;  /* FTS5 MATCH expression */
    char type[16];
} query;

static const char *o_corpus, *o_queries, *o_dir;
static long long o_max, o_every, o_rounds, o_merge;
static bool o_zh, o_skip_fts, o_skip_xapian, o_query_only, o_skip_ours;
static const char *o_per_query;
static bool o_no_typos, o_optimize;
static long long o_threads, o_qthreads;

static const cfg_option OPTS[] = {
    {"corpus", "BENCH_CORPUS", CFG_STR, "/tmp/corpus/en.jsonl", "corpus JSONL", &o_corpus},
    {"queries", "BENCH_QUERIES", CFG_STR, "/tmp/corpus/queries/en.search.jsonl", "queries JSONL", &o_queries},
    {"dir", "BENCH_DIR", CFG_STR, "/tmp/bench-search", "work directory (wiped)", &o_dir},
    {"max-docs", "BENCH_MAX_DOCS", CFG_INT, "0", "index at most N docs (0 = all)", &o_max},
    {"commit-every", "BENCH_COMMIT_EVERY", CFG_INT, "1000", "docs per synced commit", &o_every},
    {"rounds", "BENCH_ROUNDS", CFG_INT, "3", "timed rounds over the queries", &o_rounds},
    {"threads", "BENCH_THREADS", CFG_INT, "1",
     "ours: 1 = idx_put on one thread; 2 = pipelined, as a worker's Sync: one thread analyzes "
     "(idx_analyze) ahead of the writer (idx_put_analyzed, flush, commit)", &o_threads},
    {"query-threads", "BENCH_QUERY_THREADS", CFG_INT, "1",
     "query phase: N threads at once, each its own reader and closed loop over all the queries "
     "(QPS over all threads)", &o_qthreads},
    {"merge-factor", "BENCH_MERGE_FACTOR", CFG_INT, "0", "ours: segments merged at once (0 = default)", &o_merge},
    {"zh", "BENCH_ZH", CFG_BOOL, NULL, "Chinese corpus: bigram text for FTS5", &o_zh},
    {"skip-fts", "BENCH_SKIP_FTS", CFG_BOOL, NULL, "do not run FTS5", &o_skip_fts},
    {"skip-xapian", "BENCH_SKIP_XAPIAN", CFG_BOOL, NULL, "do not run Xapian", &o_skip_xapian},
    {"skip-ours", "BENCH_SKIP_OURS", CFG_BOOL, NULL,
     "do not run our index (the baselines only: bulletin-bench-list --search runs this way)",
     &o_skip_ours},
    {"per-query", "BENCH_PER_QUERY", CFG_STR, "", "ours: write each query's best latency (us) to this file",
     &o_per_query},
    {"no-typos", "BENCH_NO_TYPOS", CFG_BOOL, NULL, "ours: no typo fallback (for profiling)", &o_no_typos},
    {"optimize", "BENCH_OPTIMIZE", CFG_BOOL, NULL,
     "ours: merge all segments into one after the load (idx_optimize, one more synced commit, timed)",
     &o_optimize},
    {"query-only", "BENCH_QUERY_ONLY", CFG_BOOL, NULL,
     "run the queries on the indexes a previous run left in --dir (ours, and FTS5 / Xapian when "
     "their files are there and not skipped); no build", &o_query_only},
};

static bool s_cjk(int32_t c) {
    return (c >= 0x3040 && c <= 0x30FF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0xF900 && c <= 0xFAFF) ||
           (c >= 0xAC00 && c <= 0xD7AF) || (c >= 0x20000 && c <= 0x2FFFF);
}

/* textutil.bigram_text: each CJK run -> " b1 b2 ... " (a lone char stays). */
static char *s_bigram(const char *s) {
    size_t n = strlen(s);
    char *out = malloc(n * 3 + 16);
    size_t o = 0, i = 0;
    while (i < n) {
        int32_t cp;
        utf8proc_ssize_t r = utf8proc_iterate((const uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (r <= 0 || !s_cjk(cp)) {
            size_t l = r <= 0 ? 1 : (size_t)r;
            memcpy(out + o, s + i, l);
            o += l;
            i += l;
            continue;
        }
        size_t st[4096];
        size_t k = 0, j = i;
        while (j < n && k < 4096) {
            r = utf8proc_iterate((const uint8_t *)s + j, (utf8proc_ssize_t)(n - j), &cp);
            if (r <= 0 || !s_cjk(cp))
                break;
            st[k++] = j;
            j += (size_t)r;
        }
        out[o++] = ' ';
        if (k == 1) {
            memcpy(out + o, s + i, j - i);
            o += j - i;
            out[o++] = ' ';
        } else {
            for (size_t x = 0; x + 1 < k; x++) {
                size_t e = x + 2 < k ? st[x + 2] : j;
                memcpy(out + o, s + st[x], e - st[x]);
                o += e - st[x];
                out[o++] = ' ';
            }
        }
        i = j;
    }
    out[o] = 0;
    return out;
}

static char *s_dup(json_t *o, const char *k) {
    const char *v = json_string_value(json_object_get(o, k));
    return strdup(v ? v : "");
}

static doc *s_load(size_t *n) {
    FILE *f = fopen(o_corpus, "r");
    if (!f) {
        perror(o_corpus);
        exit(1);
    }
    size_t cap = 1 << 16, cnt = 0;
    doc *d = malloc(cap * sizeof *d);
    char *line = NULL;
    size_t lcap = 0;
    while (getline(&line, &lcap, f) > 0 && (!o_max || (long long)cnt < o_max)) {
        json_error_t e;
        json_t *o = json_loads(line, 0, &e);
        if (!o)
            continue;
        if (cnt == cap)
            d = realloc(d, (cap *= 2) * sizeof *d);
        doc *x = &d[cnt++];
        x->title = s_dup(o, "title");
        x->body = s_dup(o, "body");
        x->site = s_dup(o, "site");
        x->cat = s_dup(o, "category");
        x->pub = 0;
        const char *p = json_string_value(json_object_get(o, "published_at"));
        if (p)
            clock_parse_rfc3339(p, &x->pub);
        x->ftitle = o_zh ? s_bigram(x->title) : x->title;
        x->fbody = o_zh ? s_bigram(x->body) : x->body;
        json_decref(o);
    }
    free(line);
    fclose(f);
    *n = cnt;
    return d;
}

static query *s_queries(size_t *n) {
    FILE *f = fopen(o_queries, "r");
    if (!f) {
        perror(o_queries);
        exit(1);
    }
    size_t cap = 256, cnt = 0;
    query *q = malloc(cap * sizeof *q);
    char *line = NULL;
    size_t lcap = 0;
    while (getline(&line, &lcap, f) > 0) {
        json_error_t e;
        json_t *o = json_loads(line, 0, &e);
        if (!o)
            continue;
        if (cnt == cap)
            q = realloc(q, (cap *= 2) * sizeof *q);
        query *x = &q[cnt++];
        snprintf(x->type, sizeof x->type, "%s", json_string_value(json_object_get(o, "type")));
        char ours[2048] = "", fts[2048] = "";
        json_t *groups = json_object_get(o, "groups");
        size_t gi;
        json_t *g;
        json_array_foreach(groups, gi, g) {
            size_t ng = json_array_size(g);
            if (gi) {
                strcat(ours, " ");
                strcat(fts, " AND ");
            }
            strcat(fts, "\"");
            if (o_zh) {
                /* overlapping bigrams -> the character run */
                for (size_t t = 0; t < ng; t++) {
                    const char *tok = json_string_value(json_array_get(g, t));
                    if (t == 0)
                        strcat(ours, tok);
                    else {
                        size_t l = strlen(tok), k = l;
                        while (k > 0 && ((uint8_t)tok[k - 1] & 0xC0) == 0x80)
                            k--;
                        strcat(ours, tok + (k ? k - 1 : 0));
                    }
                    strcat(fts, t ? " " : "");
                    strcat(fts, tok);
                }
            } else {
                if (ng > 1)
                    strcat(ours, "\"");
                for (size_t t = 0; t < ng; t++) {
                    const char *tok = json_string_value(json_array_get(g, t));
                    strcat(ours, t ? " " : "");
                    strcat(ours, tok);
                    strcat(fts, t ? " " : "");
                    strcat(fts, tok);
                }
                if (ng > 1)
                    strcat(ours, "\"");
            }
            strcat(fts, "\"");
        }
        x->ours = strdup(ours);
        x->fts = strdup(fts);
        json_decref(o);
    }
    free(line);
    fclose(f);
    *n = cnt;
    return q;
}

static int s_dcmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    double docs_s, p50, p99, qps, size_mb, build_s;
    double avg_hits;
    size_t docs; /* 0 with --query-only */
} result;

/* --- the query phase: --query-threads closed loops ------------------------ */

#define S_TOPK 10

/* One engine's readers: open one per thread (NULL = error, printed), search
 * one query for its top S_TOPK ids (0, or -1 printed), close. */
typedef struct {
    const char *name;
    void *ctx;
    void *(*open)(void *ctx);
    int (*search)(void *h, const query *q, uint64_t *ids, unsigned *n);
    void (*close)(void *h);
} s_engine;

typedef struct {
    const s_engine *e;
    const query *q;
    size_t nq, t, nt;
    pthread_barrier_t *start;
    double *lat;    /* this thread's: rounds x nq, by query index */
    uint64_t *sum;  /* nq: checksum of the first timed round's top ids */
    uint64_t hits;
    long differ;    /* later rounds whose ids differ from the first's */
    int64_t end_us;
    bool failed;
} s_qthread;

static uint64_t s_fnv(uint64_t h, uint64_t v) {
    for (int i = 0; i < 8; i++, v >>= 8)
        h = (h ^ (v & 0xff)) * 1099511628211ull;
    return h;
}

static void *s_qthread_main(void *ud) {
    s_qthread *t = ud;
    void *h = t->e->open(t->e->ctx);
    t->failed = !h;
    size_t off = t->t * t->nq / t->nt;
    for (long long round = -1; round < o_rounds; round++) { /* round -1: warm-up */
        if (round == 0)
            pthread_barrier_wait(t->start);
        for (size_t j = 0; h && j < t->nq; j++) {
            size_t k = (off + j) % t->nq;
            uint64_t ids[S_TOPK];
            unsigned n = 0;
            int64_t a = clock_mono_us();
            if (t->e->search(h, &t->q[k], ids, &n))
                n = 0;
            int64_t b = clock_mono_us();
            if (round < 0)
                continue;
            t->lat[(size_t)round * t->nq + k] = (double)(b - a);
            t->hits += n;
            uint64_t sum = 1469598103934665603ull;
            for (unsigned i = 0; i < n; i++)
                sum = s_fnv(sum, ids[i]);
            sum = s_fnv(sum, n);
            if (round == 0)
                t->sum[k] = sum;
            else
                t->differ += t->sum[k] != sum;
        }
    }
    t->end_us = clock_mono_us();
    if (h)
        t->e->close(h);
    return NULL;
}

/* Run the queries on --query-threads threads; fills r's p50/p99/QPS/avg
 * hits. Returns the latencies (caller frees), threads x rounds x nq:
 * lat[(t * rounds + round) * nq + k] for query k. Exits when a reader fails. */
static double *s_query_phase(const s_engine *e, const query *q, size_t nq, result *r) {
    size_t nt = (size_t)o_qthreads, per = (size_t)o_rounds * nq, total = nt * per;
    s_qthread *th = calloc(nt, sizeof *th);
    pthread_t *tid = calloc(nt, sizeof *tid);
    double *lat = calloc(total ? total : 1, sizeof *lat);
    double *sorted = malloc((total ? total : 1) * sizeof *sorted);
    uint64_t *sum = calloc(nt * nq + 1, sizeof *sum);
    pthread_barrier_t start;
    if (!th || !tid || !lat || !sorted || !sum || pthread_barrier_init(&start, NULL, (unsigned)nt + 1)) {
        fprintf(stderr, "%s: query phase: out of memory\n", e->name);
        exit(1);
    }
    for (size_t t = 0; t < nt; t++) {
        th[t] = (s_qthread){.e = e, .q = q, .nq = nq, .t = t, .nt = nt, .start = &start,
                            .lat = lat + t * per, .sum = sum + t * nq};
        if (pthread_create(&tid[t], NULL, s_qthread_main, &th[t])) {
            fprintf(stderr, "%s: pthread_create failed\n", e->name);
            exit(1);
        }
    }
    pthread_barrier_wait(&start);
    int64_t t0 = clock_mono_us(), t1 = t0;
    long differ = 0;
    uint64_t hits = 0;
    bool failed = false;
    for (size_t t = 0; t < nt; t++) {
        pthread_join(tid[t], NULL);
        failed |= th[t].failed;
        if (th[t].end_us > t1)
            t1 = th[t].end_us;
        hits += th[t].hits;
        differ += th[t].differ;
        for (size_t k = 0; t && k < nq; k++)
            differ += sum[t * nq + k] != sum[k];
    }
    pthread_barrier_destroy(&start);
    if (failed) {
        fprintf(stderr, "%s: a query thread could not open its reader\n", e->name);
        exit(1);
    }
    uint64_t ck = 1469598103934665603ull;
    for (size_t k = 0; k < nq; k++)
        ck = s_fnv(ck, sum[k]);
    double secs = (double)(t1 - t0) / 1e6;
    printf("%s: query phase: %zu thread%s x %lld rounds x %zu queries in %.3f s; top-%d ids checksum "
           "%016llx, %s\n",
           e->name, nt, nt == 1 ? "" : "s", o_rounds, nq, secs, S_TOPK, (unsigned long long)ck,
           differ ? "DIFFERENT between threads or rounds" : "same in every thread and round");
    if (differ)
        printf("%s: %ld answers differ from the first thread's first round\n", e->name, differ);
    memcpy(sorted, lat, total * sizeof *lat);
    qsort(sorted, total, sizeof *sorted, s_dcmp);
    r->p50 = total ? sorted[total / 2] : 0;
    r->p99 = total ? sorted[(size_t)((double)total * 0.99)] : 0;
    r->qps = secs > 0 ? (double)total / secs : 0;
    r->avg_hits = total ? (double)hits / (double)total : 0;
    free(sorted);
    free(sum);
    free(tid);
    free(th);
    return lat;
}

static off_t s_fsize(const char *p) {
    struct stat st;
    return stat(p, &st) ? 0 : st.st_size;
}

/* --threads 2: the analysis thread runs at most S_WINDOW docs ahead of the
 * writer (bounded memory), like a worker's bulk apply (qsearch_bulk_begin). */
#define S_WINDOW 4096
typedef struct {
    doc *d;
    size_t n;
    idx_analyzed *res[S_WINDOW];
    size_t done, consumed;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t cpu_us, wait_us;
} s_pipe;

static void *s_pipe_main(void *ud) {
    s_pipe *p = ud;
    idx_analyzer *an = idx_analyzer_new(NULL);
    if (!an) {
        fprintf(stderr, "idx_analyzer_new failed\n");
        exit(1);
    }
    for (size_t i = 0; i < p->n; i++) {
        pthread_mutex_lock(&p->mu);
        while (i - p->consumed >= S_WINDOW)
            pthread_cond_wait(&p->cv, &p->mu);
        pthread_mutex_unlock(&p->mu);
        idx_doc x = {.title = p->d[i].title, .title_len = strlen(p->d[i].title), .body = p->d[i].body,
                     .body_len = strlen(p->d[i].body), .site = p->d[i].site, .category = p->d[i].cat,
                     .published_at = p->d[i].pub};
        idx_analyzed *r = NULL;
        if (idx_analyze(an, &x, &r)) {
            fprintf(stderr, "idx_analyze failed at %zu\n", i);
            exit(1);
        }
        pthread_mutex_lock(&p->mu);
        p->res[i % S_WINDOW] = r;
        p->done = i + 1;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    p->cpu_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    idx_analyzer_destroy(&an);
    return NULL;
}

/* The writer's side: doc i analyzed (waits for the thread). */
static idx_analyzed *s_pipe_take(s_pipe *p, size_t i) {
    pthread_mutex_lock(&p->mu);
    if (p->done <= i) {
        int64_t t = clock_mono_us();
        while (p->done <= i)
            pthread_cond_wait(&p->cv, &p->mu);
        p->wait_us += clock_mono_us() - t;
    }
    idx_analyzed *r = p->res[i % S_WINDOW];
    p->res[i % S_WINDOW] = NULL;
    p->consumed = i + 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return r;
}

typedef struct {
    MDB_env *env;
    idx_options opt;
    pthread_mutex_t mu; /* idx_open opens DBIs: one thread at a time */
} s_ours_ctx;

typedef struct {
    MDB_env *env;
    idx *ix;
} s_ours_reader;

static void *s_ours_open(void *ctx) {
    s_ours_ctx *c = ctx;
    s_ours_reader *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    MDB_txn *txn;
    pthread_mutex_lock(&c->mu);
    int rc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn);
    if (!rc) {
        rc = idx_open(txn, &c->opt, &h->ix);
        if (rc)
            mdb_txn_abort(txn);
        else
            rc = mdb_txn_commit(txn); /* keeps the DBI handles */
    }
    pthread_mutex_unlock(&c->mu);
    if (rc) {
        fprintf(stderr, "ours: idx_open (read-only) failed: %d\n", rc);
        idx_close(&h->ix);
        free(h);
        return NULL;
    }
    h->env = c->env;
    return h;
}

static int s_ours_search(void *hv, const query *q, uint64_t *ids, unsigned *n) {
    s_ours_reader *h = hv;
    MDB_txn *txn;
    if (mdb_txn_begin(h->env, NULL, MDB_RDONLY, &txn)) {
        fprintf(stderr, "ours: mdb_txn_begin failed\n");
        return -1;
    }
    idx_query qq = {.query = q->ours, .limit = S_TOPK};
    idx_result res;
    int rc = idx_search(h->ix, txn, &qq, &res);
    mdb_txn_abort(txn);
    if (rc)
        fprintf(stderr, "query '%s': %s\n", q->ours, res.error);
    *n = 0;
    for (size_t i = 0; !rc && i < res.nhits && i < S_TOPK; i++)
        ids[(*n)++] = res.hits[i].id;
    idx_result_free(&res);
    return rc ? -1 : 0;
}

static void s_ours_close(void *hv) {
    s_ours_reader *h = hv;
    idx_close(&h->ix);
    free(h);
}

static void s_ours(doc *d, size_t n, query *q, size_t nq, result *r) {
    char path[512];
    snprintf(path, sizeof path, "%s/idx", o_dir);
    mkdir(path, 0755);
    MDB_env *env;
    mdb_env_create(&env);
    mdb_env_set_maxdbs(env, 16);
    mdb_env_set_mapsize(env, 64ull << 30);
    if (mdb_env_open(env, path, 0, 0644)) {
        fprintf(stderr, "mdb_env_open failed\n");
        exit(1);
    }
    MDB_txn *txn;
    idx *ix;
    idx_options opt = {.b = -1, .max_pending_docs = (uint32_t)o_every + 1, .merge_factor = (uint32_t)o_merge,
                       .no_typos = o_no_typos};
    mdb_txn_begin(env, NULL, 0, &txn);
    if (idx_open(txn, &opt, &ix)) {
        fprintf(stderr, "idx_open failed\n");
        exit(1);
    }
    mdb_txn_commit(txn);
    int64_t t0 = clock_mono_us(), t_put = 0, t_flush = 0, t_commit = 0;
    static s_pipe pp;
    pthread_t pth;
    bool piped = o_threads >= 2 && !o_query_only;
    if (piped) {
        pp.d = d;
        pp.n = n;
        pthread_mutex_init(&pp.mu, NULL);
        pthread_cond_init(&pp.cv, NULL);
        if (pthread_create(&pth, NULL, s_pipe_main, &pp)) {
            fprintf(stderr, "pthread_create failed\n");
            exit(1);
        }
    }
    for (size_t i = o_query_only ? n : 0; i < n;) {
        mdb_txn_begin(env, NULL, 0, &txn);
        size_t end = i + (size_t)o_every < n ? i + (size_t)o_every : n;
        int64_t ta = clock_mono_us();
        for (; i < end; i++) {
            idx_doc x = {.title = d[i].title, .title_len = strlen(d[i].title), .body = d[i].body,
                         .body_len = strlen(d[i].body), .site = d[i].site, .category = d[i].cat,
                         .published_at = d[i].pub};
            if (piped) {
                idx_analyzed *a = s_pipe_take(&pp, i);
                int rc = idx_put_analyzed(ix, txn, i + 1, a, NULL);
                idx_analyzed_free(&a);
                if (rc) {
                    fprintf(stderr, "idx_put_analyzed failed at %zu\n", i);
                    exit(1);
                }
            } else if (idx_put(ix, txn, i + 1, &x, NULL)) {
                fprintf(stderr, "idx_put failed at %zu\n", i);
                exit(1);
            }
        }
        int64_t tb = clock_mono_us();
        if (idx_flush(ix, txn)) {
            fprintf(stderr, "flush failed\n");
            exit(1);
        }
        int64_t tc = clock_mono_us();
        if (mdb_txn_commit(txn)) {
            fprintf(stderr, "commit failed\n");
            exit(1);
        }
        t_put += tb - ta;
        t_flush += tc - tb;
        t_commit += clock_mono_us() - tc;
    }
    if (piped) {
        pthread_join(pth, NULL);
        pthread_cond_destroy(&pp.cv);
        pthread_mutex_destroy(&pp.mu);
        printf("ours: --threads 2: analysis thread %.1f s CPU; the writer waited %.1f s for it\n",
               (double)pp.cpu_us / 1e6, (double)pp.wait_us / 1e6);
    }
    int64_t t_opt = 0;
    if (o_optimize && !o_query_only) {
        int64_t ta = clock_mono_us();
        mdb_txn_begin(env, NULL, 0, &txn);
        if (idx_optimize(ix, txn) || mdb_txn_commit(txn)) {
            fprintf(stderr, "optimize failed\n");
            exit(1);
        }
        t_opt = clock_mono_us() - ta;
    }
    double secs = (double)(clock_mono_us() - t0) / 1e6;
    if (t_opt)
        printf("ours: idx_optimize (merge all into one segment, commit) %.1f s, included below\n",
               (double)t_opt / 1e6);
    printf("ours: time in idx_put%s %.1f s, idx_flush (segment writes, merges) %.1f s, "
           "commit (page writes, fsync) %.1f s\n",
           piped ? "_analyzed (waits for the analysis thread, buffering)" : " (analysis, buffering)",
           (double)t_put / 1e6, (double)t_flush / 1e6,
           (double)t_commit / 1e6);
    r->build_s = secs;
    r->docs_s = o_query_only ? 0 : (double)n / secs;
    r->docs = o_query_only ? 0 : n;
    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    idx_stats_t st;
    idx_stats(ix, txn, &st);
    mdb_txn_abort(txn);
    r->size_mb = (double)st.bytes / 1e6;
    snprintf(path, sizeof path, "%s/idx/data.mdb", o_dir);
    printf("ours: %zu docs in %.1f s (%.0f docs/s); used pages %.1f MB, file %.1f MB, %llu segments, "
           "%llu lexicon pages, %llu blocks\n",
           n, secs, r->docs_s, r->size_mb, (double)s_fsize(path) / 1e6, (unsigned long long)st.segments,
           (unsigned long long)st.terms, (unsigned long long)st.blocks);
    /* one idx per thread (idx.h): the build's is closed first */
    idx_close(&ix);
    s_ours_ctx oc = {.env = env, .opt = opt};
    pthread_mutex_init(&oc.mu, NULL);
    s_engine e = {.name = "ours", .ctx = &oc, .open = s_ours_open, .search = s_ours_search,
                  .close = s_ours_close};
    double *lat = s_query_phase(&e, q, nq, r);
    pthread_mutex_destroy(&oc.mu);
    size_t total = nq * (size_t)o_rounds * (size_t)o_qthreads;
    if (o_per_query && *o_per_query) {
        FILE *pf = fopen(o_per_query, "w");
        for (size_t k = 0; pf && k < nq; k++) {
            double best = lat[k];
            for (size_t rr = 1; rr < total / nq; rr++)
                if (lat[(size_t)rr * nq + k] < best)
                    best = lat[(size_t)rr * nq + k];
            fprintf(pf, "%.0f\t%s\t%s\n", best, q[k].type, q[k].ours);
        }
        if (pf)
            fclose(pf);
    }
    /* the slowest queries (by their worst round) */
    double *worst = calloc(nq, sizeof *worst);
    for (size_t k = 0; k < total; k++)
        if (lat[k] > worst[k % nq])
            worst[k % nq] = lat[k];
    printf("ours, slowest queries:");
    for (int t = 0; t < 5; t++) {
        size_t w = 0;
        for (size_t k = 1; k < nq; k++)
            if (worst[k] > worst[w])
                w = k;
        printf(" [%s] %s %.0fus;", q[w].type, q[w].ours, worst[w]);
        worst[w] = -1;
    }
    printf("\n");
    free(worst);
    free(lat);
    mdb_env_close(env);
}

typedef struct {
    sqlite3 *db;
    sqlite3_stmt *st;
} s_fts_reader;

static void s_fts_close(void *hv) {
    s_fts_reader *h = hv;
    sqlite3_finalize(h->st);
    sqlite3_close(h->db);
    free(h);
}

/* One read-only connection per thread (no mutex: it is used by one thread). */
static void *s_fts_open(void *ctx) {
    s_fts_reader *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    if (sqlite3_open_v2(ctx, &h->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(h->db, "SELECT rowid, bm25(docs, 2.0, 1.0) FROM docs WHERE docs MATCH ? "
                                  "ORDER BY bm25(docs, 2.0, 1.0) LIMIT 10", -1, &h->st, NULL) != SQLITE_OK) {
        fprintf(stderr, "fts5: open %s: %s\n", (const char *)ctx, sqlite3_errmsg(h->db));
        s_fts_close(h);
        return NULL;
    }
    return h;
}

static int s_fts_search(void *hv, const query *q, uint64_t *ids, unsigned *n) {
    s_fts_reader *h = hv;
    sqlite3_bind_text(h->st, 1, q->fts, -1, SQLITE_STATIC);
    int rc;
    *n = 0;
    while ((rc = sqlite3_step(h->st)) == SQLITE_ROW)
        if (*n < S_TOPK)
            ids[(*n)++] = (uint64_t)sqlite3_column_int64(h->st, 0);
    if (rc != SQLITE_DONE)
        fprintf(stderr, "fts query '%s': %s\n", q->fts, sqlite3_errmsg(h->db));
    sqlite3_reset(h->st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static void s_fts(doc *d, size_t n, query *q, size_t nq, result *r) {
    char path[512];
    snprintf(path, sizeof path, "%s/fts.db", o_dir);
    if (o_query_only) {
        r->size_mb = (double)s_fsize(path) / 1e6;
        printf("fts5: --query-only: the index in %s (file %.1f MB)\n", path, r->size_mb);
    } else {
        sqlite3 *db;
        if (sqlite3_open(path, &db)) {
            fprintf(stderr, "sqlite open failed\n");
            exit(1);
        }
        sqlite3_exec(db, "PRAGMA synchronous=FULL; CREATE VIRTUAL TABLE docs USING fts5(title, body);",
                     NULL, NULL, NULL);
        sqlite3_stmt *ins;
        sqlite3_prepare_v2(db, "INSERT INTO docs(rowid, title, body) VALUES(?,?,?)", -1, &ins, NULL);
        int64_t t0 = clock_mono_us();
        for (size_t i = 0; i < n;) {
            sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
            size_t end = i + (size_t)o_every < n ? i + (size_t)o_every : n;
            for (; i < end; i++) {
                sqlite3_bind_int64(ins, 1, (sqlite3_int64)(i + 1));
                sqlite3_bind_text(ins, 2, d[i].ftitle, -1, SQLITE_STATIC);
                sqlite3_bind_text(ins, 3, d[i].fbody, -1, SQLITE_STATIC);
                if (sqlite3_step(ins) != SQLITE_DONE) {
                    fprintf(stderr, "fts insert: %s\n", sqlite3_errmsg(db));
                    exit(1);
                }
                sqlite3_reset(ins);
            }
            sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        }
        double secs = (double)(clock_mono_us() - t0) / 1e6;
        sqlite3_finalize(ins);
        r->docs = n;
        r->build_s = secs;
        r->docs_s = (double)n / secs;
        r->size_mb = (double)s_fsize(path) / 1e6;
        /* the index alone, without the stored text */
        sqlite3_stmt *sz;
        double idx_mb = 0;
        if (sqlite3_prepare_v2(db, "SELECT sum(length(block)) FROM docs_data", -1, &sz, NULL) == SQLITE_OK &&
            sqlite3_step(sz) == SQLITE_ROW)
            idx_mb = (double)sqlite3_column_int64(sz, 0) / 1e6;
        sqlite3_finalize(sz);
        printf("fts5: %zu docs in %.1f s (%.0f docs/s); file %.1f MB (index blocks %.1f MB, rest is stored "
               "text)\n", n, secs, r->docs_s, r->size_mb, idx_mb);
        sqlite3_close(db);
    }
    s_engine e = {.name = "fts5", .ctx = path, .open = s_fts_open, .search = s_fts_search,
                  .close = s_fts_close};
    free(s_query_phase(&e, q, nq, r));
}

#ifdef BENCH_HAVE_XAPIAN
static void *s_xapian_open(void *ctx) { return xb_open(ctx, o_zh); }

static int s_xapian_search(void *h, const query *q, uint64_t *ids, unsigned *n) {
    uint64_t est = 0;
    *n = 0;
    return xb_search(h, q->ours, S_TOPK, n, &est, ids);
}

static void s_xapian_close(void *h) {
    xb *x = h;
    xb_destroy(&x);
}

static void s_xapian(doc *d, size_t n, query *q, size_t nq, result *r) {
    char path[512];
    snprintf(path, sizeof path, "%s/xapian", o_dir);
    if (o_query_only) {
        r->size_mb = (double)xb_size(path) / 1e6;
        printf("xapian: --query-only: the database in %s (%.1f MB)\n", path, r->size_mb);
    } else {
        xb *x = xb_new(path, o_zh);
        if (!x)
            exit(1);
        int64_t t0 = clock_mono_us();
        for (size_t i = 0; i < n;) {
            size_t end = i + (size_t)o_every < n ? i + (size_t)o_every : n;
            for (; i < end; i++)
                if (xb_add(x, d[i].title, d[i].body))
                    exit(1);
            if (xb_commit(x))
                exit(1);
        }
        double secs = (double)(clock_mono_us() - t0) / 1e6;
        r->docs = n;
        r->build_s = secs;
        r->docs_s = (double)n / secs;
        if (xb_finish(x))
            exit(1);
        xb_destroy(&x);
        r->size_mb = (double)xb_size(path) / 1e6;
        printf("xapian: %zu docs in %.1f s (%.0f docs/s); database %.1f MB\n", n, secs, r->docs_s,
               r->size_mb);
    }
    s_engine e = {.name = "xapian", .ctx = path, .open = s_xapian_open, .search = s_xapian_search,
                  .close = s_xapian_close};
    free(s_query_phase(&e, q, nq, r));
}
#endif

static int s_count_tok(void *ud, const text_token *t) {
    (void)t;
    (*(uint64_t *)ud)++;
    return 0;
}

int main(int argc, char **argv) {
    log_init("bench-search");
    int rc = cfg_parse("bulletin-bench-search", "Search index vs SQLite FTS5 on a reference corpus.",
                       OPTS, sizeof OPTS / sizeof OPTS[0], argc, argv);
    if (rc == CFG_HELP)
        return 0;
    if (rc != CFG_OK)
        return 2;
    if (o_every < 1)
        o_every = 1;
    if (o_rounds < 1)
        o_rounds = 1;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", o_dir, o_dir);
    if (o_qthreads < 1)
        o_qthreads = 1;
    /* SQLite's global memory statistics take a mutex on every malloc: off, so
     * that FTS5's query threads do not serialize on it (its best case) */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    if (o_query_only) {
        /* the baselines' indexes, when a previous run left them */
        char p[600];
        snprintf(p, sizeof p, "%s/fts.db", o_dir);
        o_skip_fts |= access(p, R_OK) != 0;
        snprintf(p, sizeof p, "%s/xapian", o_dir);
        o_skip_xapian |= access(p, R_OK) != 0;
        o_max = 1;
    }
    if (!o_query_only && system(cmd) != 0)
        return 1;
    size_t n, nq;
    doc *d = s_load(&n);
    query *q = s_queries(&nq);
    printf("corpus %s: %zu docs; %zu queries; commit every %lld docs (synced)\n", o_corpus, n, nq, o_every);
    /* analysis throughput */
    text_analyzer *an = text_analyzer_new(NULL);
    uint64_t bytes = 0, toks = 0;
    int64_t t0 = clock_mono_us();
    for (size_t i = 0; i < n; i++) {
        size_t bl = strlen(d[i].body);
        text_analyze(an, d[i].body, bl, 0, s_count_tok, &toks, NULL);
        bytes += bl;
    }
    double as = (double)(clock_mono_us() - t0) / 1e6;
    printf("analysis: %.1f MB of bodies at %.1f MB/s, %.1f M tokens/s\n", (double)bytes / 1e6,
           (double)bytes / 1e6 / as, (double)toks / 1e6 / as);
    text_analyzer_destroy(&an);
    result ro = {0}, rf = {0}, rx = {0};
    bool fts = !o_skip_fts, xap = false;
    if (!o_skip_ours)
        s_ours(d, n, q, nq, &ro);
    if (fts)
        s_fts(d, n, q, nq, &rf);
#ifdef BENCH_HAVE_XAPIAN
    xap = !o_skip_xapian;
    if (xap)
        s_xapian(d, n, q, nq, &rx);
#else
    if (!o_skip_xapian)
        printf("xapian: not built in (libxapian-dev and a C++ compiler are needed)\n");
#endif
    printf("\nquery phase: %lld thread%s (QPS = all threads' queries / wall time)\n", o_qthreads,
           o_qthreads == 1 ? "" : "s");
    printf("\n| engine | docs | index docs/s | size MB | search p50 us | p99 us | QPS | avg hits |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    if (!o_skip_ours)
        printf("| bulletin idx | %zu | %.0f | %.1f | %.0f | %.0f | %.0f | %.1f |\n", ro.docs, ro.docs_s,
               ro.size_mb, ro.p50, ro.p99, ro.qps, ro.avg_hits);
    if (fts)
        printf("| SQLite FTS5 | %zu | %.0f | %.1f | %.0f | %.0f | %.0f | %.1f |\n", rf.docs, rf.docs_s,
               rf.size_mb, rf.p50, rf.p99, rf.qps, rf.avg_hits);
    if (xap)
        printf("| Xapian | %zu | %.0f | %.1f | %.0f | %.0f | %.0f | %.1f |\n", rx.docs, rx.docs_s,
               rx.size_mb, rx.p50, rx.p99, rx.qps, rx.avg_hits);
    if (fts && !o_skip_ours)
        printf("\nours / FTS5: index rate %.2fx, size %.2fx, p50 %.2fx, p99 %.2fx, QPS %.2fx\n",
               ro.docs_s / rf.docs_s, ro.size_mb / rf.size_mb, ro.p50 / rf.p50, ro.p99 / rf.p99,
               ro.qps / rf.qps);
    if (xap && !o_skip_ours)
        printf("ours / Xapian: index rate %.2fx, size %.2fx, p50 %.2fx, p99 %.2fx, QPS %.2fx\n",
               ro.docs_s / rx.docs_s, ro.size_mb / rx.size_mb, ro.p50 / rx.p50, ro.p99 / rx.p99,
               ro.qps / rx.qps);
    for (size_t i = 0; i < n; i++) {
        if (d[i].ftitle != d[i].title)
            free(d[i].ftitle);
        if (d[i].fbody != d[i].body)
            free(d[i].fbody);
        free(d[i].title);
        free(d[i].body);
        free(d[i].site);
        free(d[i].cat);
    }
    free(d);
    for (size_t k = 0; k < nq; k++) {
        free(q[k].ours);
        free(q[k].fts);
    }
    free(q);
    return 0;
}
