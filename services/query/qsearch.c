/*
 * qsearch: see qsearch.h. The hook turns a replica change into idx_put /
 * idx_del; the rebuild walks the `articles` database in id order, one write
 * transaction per QSEARCH_REBUILD_BATCH articles; qsearch_run maps a
 * SearchRequest onto an idx_query and the idx_result back onto a SearchReply.
 */
#include "qsearch.h"

#include "clock.h"
#include "log.h"
#include "pbscan.h"
#include "wire.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_META_KEY "search_index"

/* The analysis thread of a bulk apply (qsearch_bulk_begin): it analyzes
 * the chunk's articles in order (idx_analyze, its own idx_analyzer) while
 * the worker's thread applies the chunk; the hook then takes each result
 * (idx_put_analyzed), waiting when the analysis is behind. Everything
 * between the two threads is under mu. */
typedef struct {
    pthread_t thr;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t work, done; /* work: the thread waits; done: the worker waits */
    idx_analyzer *an;          /* the thread's */
    /* the job (arrays of n, owned here; the articles are the caller's) */
    const Bulletin__Article **arts;
    idx_analyzed **res;
    size_t n, cap;
    size_t next;               /* next item the thread takes */
    size_t ndone;              /* items 0..ndone-1 are in res[] */
    size_t end;                /* items end..n-1 were analyzed by the worker's thread
                                  instead of waiting (s_bulk_take): the thread stops at end */
    idx_analyzer *an_self;     /* the worker thread's, for those (made at the first) */
    bool one_cpu;              /* the process may run on one CPU only: never steal (the
                                  threads share the core; a second analyzer's cold stem
                                  cache is only more work), wait for `want` instead */
    size_t want;               /* the worker waits for ndone >= want (0: not waiting) */
    bool active, cancel, busy, quit;
    size_t cursor;             /* the worker's: where the hook looks next */
    const void *job;           /* the changes[] of the job (qsearch_bulk_begin) */
    bool ahead;                /* the job was begun by the before-flush callback of another txn */
    qsearch_prep_fn prep;      /* qsearch_bulk_begin_prep: to run before the job has changes */
    void *prep_ud;
    bool prep_pending;
    uint64_t begun;            /* jobs begun (the caller's thread only) */
    uint64_t used, fallback, waits, wait_us, stolen;
    uint64_t an_cpu_us;        /* the thread's CPU time (measurement, log) */
} s_bulk;

struct qsearch {
    replica *rep;
    idx *ix;
    bool broken;
    char *snip; /* QSEARCH_SNIPPET_CAP bytes */
    idx_options opts;
    s_bulk bulk;
    void (*before_flush)(void *ud); /* qsearch_set_before_flush */
    void *before_flush_ud;
    /* postings kept across a bulk load's transactions (qsearch_set_bulk) */
    size_t defer_bytes; /* the buffer's bound; 0: written at every commit */
    bool held;          /* committed transactions' postings may be buffered (the
                           committed `meta` may lack the version) */
    bool written;       /* a commit is to write them (and the version): held ends
                           when it succeeded, i.e. at the next hook call */
    bool lost;          /* an abort dropped held postings: not indexed until the
                           rebuild of qsearch_optimize (with broken: that rebuild
                           failed, and changes are refused until one succeeds) */
    bool rebuilding;    /* qsearch_rebuild: its transactions write what they buffer */
};

/* --- article -> idx_doc ------------------------------------------------------ */

static void s_doc(const Bulletin__Article *a, idx_doc *d)
{
    memset(d, 0, sizeof *d);
    d->title = a->title ? a->title : "";
    d->title_len = strlen(d->title);
    d->body = a->body ? a->body : "";
    d->body_len = strlen(d->body);
    d->site = a->site ? a->site : "";
    d->category = a->category ? a->category : "";
    d->tags = (const char *const *)a->tags;
    d->ntags = a->n_tags;
    d->published_at = a->published_at;
}

/* --- bulk apply: analysis on a second thread --------------------------------------- */

static uint64_t s_thread_cpu_us(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The job's articles from changes[] (arts[], res[] sized to n); false when
 * there are too few to analyze apart, or no memory. */
static bool s_bulk_fill(s_bulk *b, Bulletin__Internal__Change *const *changes, size_t n)
{
    size_t puts = 0;
    for (size_t i = 0; i < n; i++)
        puts += changes[i] && changes[i]->op == BULLETIN__INTERNAL__CHANGE_OP__PUT &&
                changes[i]->article;
    if (puts < QSEARCH_BULK_MIN)
        return false;
    if (n > b->cap) {
        const Bulletin__Article **na = realloc(b->arts, n * sizeof *na);
        if (na)
            b->arts = na;
        idx_analyzed **nr = na ? realloc(b->res, n * sizeof *nr) : NULL;
        if (nr)
            b->res = nr;
        if (!na || !nr)
            return false;
        b->cap = n;
    }
    for (size_t i = 0; i < n; i++) {
        const Bulletin__Internal__Change *c = changes[i];
        b->arts[i] = c && c->op == BULLETIN__INTERNAL__CHANGE_OP__PUT ? c->article : NULL;
        b->res[i] = NULL;
    }
    return true;
}

/* Run the pending prep (qsearch_bulk_begin_prep) on this thread and make
 * its changes the job (n = 0 when there is nothing to analyze). Called with
 * busy set (the analysis thread) or with the job ended (the caller's thread):
 * nobody else touches the job meanwhile. */
static void s_bulk_prep_run(qsearch *s)
{
    s_bulk *b = &s->bulk;
    Bulletin__Internal__Change *const *changes = NULL;
    size_t n = 0;
    b->prep(b->prep_ud, &changes, &n);
    bool ok = changes && n && s_bulk_fill(b, changes, n);
    pthread_mutex_lock(&b->mu);
    b->job = changes;
    b->n = b->end = ok ? n : 0;
    b->next = b->ndone = 0;
    b->prep_pending = false;
    pthread_mutex_unlock(&b->mu);
}

static void *s_bulk_main(void *ud)
{
    qsearch *s = ud;
    s_bulk *b = &s->bulk;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->quit && !(b->active && !b->cancel && (b->prep_pending || b->next < b->end))) {
            if (b->busy) {
                b->busy = false;
                pthread_cond_broadcast(&b->done);
            }
            pthread_cond_wait(&b->work, &b->mu);
        }
        if (b->quit)
            break;
        b->busy = true;
        if (b->prep_pending) {
            pthread_mutex_unlock(&b->mu);
            s_bulk_prep_run(s);
            pthread_mutex_lock(&b->mu);
            pthread_cond_broadcast(&b->done);
            continue;
        }
        size_t i = b->next++;
        const Bulletin__Article *a = b->arts[i];
        pthread_mutex_unlock(&b->mu);
        idx_analyzed *r = NULL;
        if (a) {
            idx_doc d;
            s_doc(a, &d);
            if (idx_analyze(b->an, &d, &r) != IDX_OK)
                r = NULL; /* the hook falls back to idx_put */
        }
        pthread_mutex_lock(&b->mu);
        b->res[i] = r;
        b->ndone = i + 1;
        if (b->ndone == b->end)
            b->an_cpu_us = s_thread_cpu_us();
        if (!b->one_cpu || b->ndone >= b->want)
            pthread_cond_broadcast(&b->done);
    }
    b->busy = false;
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

#define S_AHEAD 3 /* results prefetched ahead (idx_prefetch_analyzed's stages) */
#define S_BEHIND 256 /* one CPU: items the thread gets ahead before the worker wakes */

/* Whether item i of the job is analyzed (by the thread, or stolen). Under mu. */
static inline bool s_bulk_done_item(const s_bulk *b, size_t i) { return i < b->ndone || i >= b->end; }

/* The worker thread's own analyzer (s_bulk_take), made at the first use;
 * false when it cannot be had (then it waits for the thread). */
static bool s_bulk_self(qsearch *s)
{
    if (!s->bulk.an_self)
        s->bulk.an_self = idx_analyzer_new(&s->opts);
    return s->bulk.an_self != NULL;
}

/* The analyzed version of `a` (the hook's new article: a copy of a chunk
 * article, sharing its strings), waiting for the thread when needed; NULL
 * when it is not part of the bulk job (or was taken already: a replay). */
static idx_analyzed *s_bulk_take(qsearch *s, const Bulletin__Article *a)
{
    s_bulk *b = &s->bulk;
    if (!b->active)
        return NULL;
    size_t k = b->cursor;
    while (k < b->n &&
           !(b->arts[k] && b->arts[k]->title == a->title && b->arts[k]->body == a->body &&
             b->arts[k]->site == a->site && b->arts[k]->category == a->category &&
             b->arts[k]->tags == a->tags && b->arts[k]->n_tags == a->n_tags &&
             b->arts[k]->published_at == a->published_at))
        k++;
    if (k == b->n) {
        b->fallback++;
        return NULL;
    }
    b->cursor = k + 1;
    pthread_mutex_lock(&b->mu);
    if (!s_bulk_done_item(b, k)) {
        /* behind: rather than wait, analyze the job's last items here (the
         * thread takes them from the front and stops at b->end) */
        b->waits++;
        while (!s_bulk_done_item(b, k)) {
            if (b->one_cpu && b->busy && !b->cancel) {
                /* one core: let the thread get S_BEHIND items ahead before
                 * waking up, rather than a switch per item (at least one
                 * wait per pass: the thread is behind, ndone <= k) */
                b->want = k + S_BEHIND < b->end ? k + S_BEHIND : b->end;
                int64_t t0 = clock_mono_us();
                do
                    pthread_cond_wait(&b->done, &b->mu);
                while (b->ndone < b->want && b->busy && !b->cancel);
                b->wait_us += (uint64_t)(clock_mono_us() - t0);
                b->want = 0;
                continue;
            }
            if (b->next < b->end && s_bulk_self(s)) {
                size_t j = --b->end;
                pthread_mutex_unlock(&b->mu);
                idx_analyzed *rj = NULL;
                if (b->arts[j]) {
                    idx_doc d;
                    s_doc(b->arts[j], &d);
                    if (idx_analyze(b->an_self, &d, &rj) != IDX_OK)
                        rj = NULL; /* the hook falls back to idx_put */
                }
                pthread_mutex_lock(&b->mu);
                b->res[j] = rj;
                b->stolen++;
                continue;
            }
            int64_t t0 = clock_mono_us();
            pthread_cond_wait(&b->done, &b->mu);
            b->wait_us += (uint64_t)(clock_mono_us() - t0);
        }
    }
    idx_analyzed *r = b->res[k];
    b->res[k] = NULL;
    /* the next results (immutable once done; freed only on this thread):
     * their term lookups prefetched in stages, one doc apart */
    const idx_analyzed *ahead[S_AHEAD] = {NULL};
    for (size_t j = 0; j < S_AHEAD && k + 1 + j < b->n && s_bulk_done_item(b, k + 1 + j); j++)
        ahead[j] = b->res[k + 1 + j];
    pthread_mutex_unlock(&b->mu);
    for (int j = 0; j < S_AHEAD; j++)
        idx_prefetch_analyzed(s->ix, ahead[j], S_AHEAD - 1 - j);
    if (r)
        b->used++;
    else
        b->fallback++;
    return r;
}

static int s_bulk_start(qsearch *s)
{
    s_bulk *b = &s->bulk;
    if (b->started)
        return 0;
    b->an = idx_analyzer_new(&s->opts);
    if (!b->an)
        return -1;
    cpu_set_t cs;
    b->one_cpu = sched_getaffinity(0, sizeof cs, &cs) == 0 && CPU_COUNT(&cs) == 1;
    if (pthread_mutex_init(&b->mu, NULL) != 0) {
        idx_analyzer_destroy(&b->an);
        return -1;
    }
    if (pthread_cond_init(&b->work, NULL) != 0) {
        pthread_mutex_destroy(&b->mu);
        idx_analyzer_destroy(&b->an);
        return -1;
    }
    if (pthread_cond_init(&b->done, NULL) != 0) {
        pthread_cond_destroy(&b->work);
        pthread_mutex_destroy(&b->mu);
        idx_analyzer_destroy(&b->an);
        return -1;
    }
    if (pthread_create(&b->thr, NULL, s_bulk_main, s) != 0) {
        pthread_cond_destroy(&b->done);
        pthread_cond_destroy(&b->work);
        pthread_mutex_destroy(&b->mu);
        idx_analyzer_destroy(&b->an);
        return -1;
    }
    b->started = true;
    return 0;
}

static void s_bulk_stop(qsearch *s)
{
    s_bulk *b = &s->bulk;
    if (b->started) {
        qsearch_bulk_end(s);
        pthread_mutex_lock(&b->mu);
        b->quit = true;
        pthread_cond_broadcast(&b->work);
        pthread_mutex_unlock(&b->mu);
        pthread_join(b->thr, NULL);
        pthread_cond_destroy(&b->done);
        pthread_cond_destroy(&b->work);
        pthread_mutex_destroy(&b->mu);
        idx_analyzer_destroy(&b->an);
        b->started = false;
    }
    idx_analyzer_destroy(&b->an_self);
    free(b->arts);
    free(b->res);
    b->arts = NULL;
    b->res = NULL;
    b->cap = 0;
}

/* Hand the analysis thread a new job: the chunk's changes, or (prep) the
 * decoding of the next chunk first (qsearch_bulk_begin_prep). */
static void s_bulk_arm(s_bulk *b, Bulletin__Internal__Change *const *changes, size_t n, bool prep)
{
    b->begun++;
    pthread_mutex_lock(&b->mu);
    b->n = b->end = n;
    b->job = changes;
    b->ahead = false;
    b->next = b->ndone = 0;
    b->cursor = 0;
    b->cancel = false;
    b->active = true;
    b->busy = true;
    if (prep)
        b->prep_pending = true;
    b->used = b->fallback = b->waits = b->wait_us = b->stolen = 0;
    pthread_cond_broadcast(&b->work);
    pthread_mutex_unlock(&b->mu);
}

int qsearch_bulk_begin(qsearch *s, Bulletin__Internal__Change *const *changes, size_t n)
{
    s_bulk *b = &s->bulk;
    if (b->active && b->job == (const void *)changes && b->n == n) {
        b->ahead = false; /* begun ahead (qsearch_set_before_flush): already running */
        return 1;
    }
    if (b->active)
        qsearch_bulk_end(s);
    size_t puts = 0;
    for (size_t i = 0; i < n; i++)
        puts += changes[i] && changes[i]->op == BULLETIN__INTERNAL__CHANGE_OP__PUT &&
                changes[i]->article;
    if (puts < QSEARCH_BULK_MIN)
        return 0;
    if (s_bulk_start(s) != 0) {
        log_warn("search.bulk", "why=\"cannot start the analysis thread: indexing on this one\"");
        return 0;
    }
    if (!s_bulk_fill(b, changes, n))
        return 0;
    s_bulk_arm(b, changes, n, false);
    return 1;
}

void qsearch_bulk_end(qsearch *s)
{
    s_bulk *b = &s->bulk;
    if (!b->active)
        return;
    pthread_mutex_lock(&b->mu);
    b->cancel = true;
    while (b->busy)
        pthread_cond_wait(&b->done, &b->mu);
    b->active = false;
    bool prep = b->prep_pending;
    pthread_mutex_unlock(&b->mu);
    if (prep)
        s_bulk_prep_run(s); /* the thread did not get to it: it runs once all the same */
    for (size_t i = 0; i < b->n; i++) /* the results not taken (NULL otherwise) */
        idx_analyzed_free(&b->res[i]);
    log_debug("search.bulk",
              "changes=%zu analyzed_apart=%llu fallback=%llu waits=%llu wait_ms=%llu stolen=%llu "
              "analysis_thread_cpu_ms=%llu worker_thread_cpu_ms=%llu",
              b->n, (unsigned long long)b->used, (unsigned long long)b->fallback,
              (unsigned long long)b->waits, (unsigned long long)(b->wait_us / 1000),
              (unsigned long long)b->stolen, (unsigned long long)(b->an_cpu_us / 1000),
              (unsigned long long)(s_thread_cpu_us() / 1000));
    b->n = 0;
    b->job = NULL;
    b->ahead = false;
}

int qsearch_bulk_begin_prep(qsearch *s, qsearch_prep_fn prep, void *ud)
{
    s_bulk *b = &s->bulk;
    if (b->active)
        qsearch_bulk_end(s);
    b->prep = prep;
    b->prep_ud = ud;
    if (s_bulk_start(s) != 0) {
        Bulletin__Internal__Change *const *changes = NULL;
        size_t n = 0;
        prep(ud, &changes, &n);
        return 0;
    }
    s_bulk_arm(b, NULL, 0, true);
    return 1;
}

void qsearch_bulk_prep_wait(qsearch *s)
{
    s_bulk *b = &s->bulk;
    if (!b->started)
        return;
    pthread_mutex_lock(&b->mu);
    while (b->prep_pending && b->active && !b->cancel)
        pthread_cond_wait(&b->done, &b->mu);
    bool run = b->prep_pending; /* ended before the thread got to it */
    pthread_mutex_unlock(&b->mu);
    if (run)
        s_bulk_prep_run(s);
}

void qsearch_bulk_done(qsearch *s, Bulletin__Internal__Change *const *changes)
{
    if (s->bulk.active && s->bulk.job == (const void *)changes)
        qsearch_bulk_end(s);
}

void qsearch_set_before_flush(qsearch *s, void (*fn)(void *ud), void *ud)
{
    s->before_flush = fn;
    s->before_flush_ud = ud;
}

/* --- the replica hook ---------------------------------------------------------- */

/* A hook call after a commit that wrote the held postings: that commit
 * succeeded (a failed one calls s_after_abort first). */
static void s_held_check(qsearch *s)
{
    if (s->written) {
        s->written = false;
        s->held = false;
    }
}

/* The index version in `meta` (the mark of an index that holds every stored
 * article): put or removed in txn. 0 or -1. */
static int s_version_put(qsearch *s, MDB_txn *txn)
{
    const replica_dbs *d = replica_dbs_get(s->rep);
    MDB_val k = {sizeof S_META_KEY - 1, S_META_KEY};
    uint8_t vb[4] = {(uint8_t)(QSEARCH_INDEX_VERSION >> 24), (uint8_t)(QSEARCH_INDEX_VERSION >> 16),
                     (uint8_t)(QSEARCH_INDEX_VERSION >> 8), (uint8_t)QSEARCH_INDEX_VERSION};
    MDB_val v = {4, vb};
    return mdb_put(txn, d->meta, &k, &v, 0) ? -1 : 0;
}

static int s_version_del(qsearch *s, MDB_txn *txn)
{
    const replica_dbs *d = replica_dbs_get(s->rep);
    MDB_val k = {sizeof S_META_KEY - 1, S_META_KEY};
    int rc = mdb_del(txn, d->meta, &k, NULL);
    return rc && rc != MDB_NOTFOUND ? -1 : 0;
}

static int s_on_change(void *ud, MDB_txn *txn, uint64_t id, const Bulletin__Article *old,
                       const Bulletin__Article *new_)
{
    qsearch *s = ud;
    s_held_check(s);
    if (s->lost) /* rebuilt at the end of the load (qsearch_optimize); when that
                    rebuild failed, no change until a rebuild (s_index_repair) */
        return s->broken ? -1 : 0;
    idx_doc od, nd;
    if (old)
        s_doc(old, &od);
    int rc;
    idx_analyzed *an = new_ ? s_bulk_take(s, new_) : NULL;
    if (an) {
        rc = idx_put_analyzed(s->ix, txn, id, an, old ? &od : NULL);
        idx_analyzed_free(&an);
    } else if (new_) {
        s_doc(new_, &nd);
        rc = idx_put(s->ix, txn, id, &nd, old ? &od : NULL);
    } else if (old) {
        rc = idx_del(s->ix, txn, id, &od);
    } else {
        return 0;
    }
    if (rc == IDX_OK)
        return 0;
    if (rc == IDX_FAILED_PRECONDITION) {
        s->broken = true;
        log_error("search.index_mismatch",
                  "id=%llu why=\"the index does not hold the replica's version of this "
                  "article: it will be rebuilt from the replica\"",
                  (unsigned long long)id);
    } else {
        log_error("search.index", "id=%llu code=%s", (unsigned long long)id, wire_code_name(rc));
    }
    return -1;
}

static int s_on_reset(void *ud, MDB_txn *txn)
{
    qsearch *s = ud;
    return idx_clear(s->ix, txn) == IDX_OK ? 0 : -1;
}

static int s_before_commit(void *ud, MDB_txn *txn)
{
    qsearch *s = ud;
    s_held_check(s);
    if (s->before_flush) {
        s_bulk *b = &s->bulk;
        uint64_t begun = b->begun;
        s->before_flush(s->before_flush_ud);
        if (b->active && b->begun != begun)
            b->ahead = true; /* the next txn's job: not this one's to replay */
    }
    if (s->lost) {
        idx_discard(s->ix);
        return s_version_del(s, txn);
    }
    size_t bytes;
    if (s->defer_bytes && !s->rebuilding && idx_pending(s->ix, &bytes) && bytes < s->defer_bytes) {
        /* kept for a later commit: until then the committed index lags */
        s->held = true;
        return s_version_del(s, txn);
    }
    if (idx_flush(s->ix, txn) != IDX_OK)
        return -1;
    if (s->held) {
        if (s_version_put(s, txn) != 0)
            return -1;
        s->written = true;
    }
    return 0;
}

/* The LMDB error behind the index's last failure (idx_error), 0 unknown. */
static int s_last_error(void *ud)
{
    qsearch *s = ud;
    if (s->lost && s->broken)
        return MDB_PANIC; /* s_on_change refused: a replay (MDB_MAP_FULL) cannot help */
    return idx_error(s->ix);
}

static void s_after_abort(void *ud)
{
    qsearch *s = ud;
    if (s->held && !s->lost) {
        s->lost = true; /* the discard below drops committed postings */
        log_warn("search.bulk_lost", "why=\"an abort dropped the buffered postings of committed "
                                     "transactions: the index is rebuilt after the load\"");
    }
    s->held = s->written = false;
    idx_discard(s->ix);
    if (s->bulk.ahead)
        qsearch_bulk_end(s); /* a replay must not search the next chunk's job; that chunk begins it again */
    else
        s->bulk.cursor = 0; /* a replay: results already taken are analyzed again by idx_put */
}

/* --- open, version, rebuild ----------------------------------------------------- */

typedef struct {
    qsearch *s;
    const idx_options *opts;
} s_open_args;

static int s_open_fn(void *ud, MDB_txn *txn)
{
    s_open_args *a = ud;
    idx_close(&a->s->ix); /* a replayed attempt: handles of the aborted txn are gone */
    return idx_open(txn, a->opts, &a->s->ix) == IDX_OK ? 0 : -1;
}

static uint32_t s_version(qsearch *s)
{
    const replica_dbs *d = replica_dbs_get(s->rep);
    MDB_txn *txn = replica_read_begin(s->rep);
    if (!txn)
        return 0;
    MDB_val k = {sizeof S_META_KEY - 1, S_META_KEY}, v;
    uint32_t ver = 0;
    if (mdb_get(txn, d->meta, &k, &v) == 0 && v.mv_size == 4) {
        const uint8_t *b = v.mv_data;
        ver = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    }
    replica_read_end(s->rep);
    return ver;
}

typedef struct {
    qsearch *s;
    bool first;
    uint64_t from_id;     /* next id to index */
    /* results of the last attempt (kept only when its txn committed) */
    uint64_t next_id, done_docs;
    bool finished;
} s_rebuild_args;

static int s_rebuild_fn(void *ud, MDB_txn *txn)
{
    s_rebuild_args *a = ud;
    const replica_dbs *d = replica_dbs_get(a->s->rep);
    a->done_docs = 0;
    a->finished = false;
    if (a->first && (idx_clear(a->s->ix, txn) != IDX_OK || s_version_del(a->s, txn) != 0))
        return -1;
    MDB_cursor *c;
    if (mdb_cursor_open(txn, d->articles, &c))
        return -1;
    uint8_t kb[8];
    replica_put_u64(kb, a->from_id);
    MDB_val k = {8, kb}, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    uint64_t last = a->from_id;
    while (rc == 0 && a->done_docs < QSEARCH_REBUILD_BATCH) {
        if (k.mv_size != 8) {
            rc = MDB_CORRUPTED;
            break;
        }
        uint64_t id = replica_get_u64(k.mv_data);
        Bulletin__Article *art = bulletin__article__unpack(NULL, v.mv_size, v.mv_data);
        if (!art) {
            log_warn("search.rebuild", "id=%llu why=\"stored article does not decode: skipped\"",
                     (unsigned long long)id);
        } else {
            idx_doc doc;
            s_doc(art, &doc);
            int st = idx_put(a->s->ix, txn, id, &doc, NULL);
            wire_free(art);
            if (st != IDX_OK) {
                log_error("search.rebuild", "id=%llu code=%s", (unsigned long long)id,
                          wire_code_name(st));
                mdb_cursor_close(c);
                return -1;
            }
        }
        a->done_docs++;
        last = id;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND)
        return -1;
    a->next_id = last + 1;
    if (rc == MDB_NOTFOUND) {
        if (s_version_put(a->s, txn) != 0)
            return -1;
        a->finished = true;
    }
    return 0;
}

int qsearch_rebuild(qsearch *s)
{
    uint64_t total = replica_count(s->rep), done = 0;
    int64_t t0 = clock_mono_us(), next_log = t0 + 2000000;
    log_info("search.rebuild_start", "articles=%llu", (unsigned long long)total);
    s_rebuild_args a = {.s = s, .first = true, .from_id = 1};
    /* its first txn clears the index, the buffer and the version; the last
     * puts the version back; its transactions write what they buffer */
    bool behind = s->lost || s->held;
    s->rebuilding = true;
    s->lost = s->held = s->written = false;
    for (;;) {
        if (replica_write(s->rep, s_rebuild_fn, &a) != 0) {
            s->rebuilding = false;
            s->lost = behind; /* index buffered postings no more until it is rebuilt */
            s->broken = true; /* the index lacks stored articles: s_index_repair rebuilds */
            log_error("search.rebuild", "indexed=%llu error=\"could not write the index\"",
                      (unsigned long long)done);
            return -1;
        }
        a.first = false;
        a.from_id = a.next_id;
        done += a.done_docs;
        if (a.finished)
            break;
        int64_t now = clock_mono_us();
        if (now >= next_log) {
            log_info("search.rebuild_progress", "indexed=%llu of=%llu docs_per_s=%.0f",
                     (unsigned long long)done, (unsigned long long)total,
                     (double)done * 1e6 / (double)(now - t0 + 1));
            next_log = now + 2000000;
        }
    }
    int64_t us = clock_mono_us() - t0;
    log_info("search.rebuild_done", "indexed=%llu ms=%lld docs_per_s=%.0f", (unsigned long long)done,
             (long long)(us / 1000), (double)done * 1e6 / (double)(us + 1));
    s->rebuilding = false;
    s->broken = false;
    return 0;
}

qsearch *qsearch_new(replica *rep, const idx_options *opts)
{
    qsearch *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->rep = rep;
    s->snip = malloc(QSEARCH_SNIPPET_CAP);
    idx_options o = {0};
    if (opts)
        o = *opts;
    if (!opts || !opts->max_pending_docs)
        o.max_pending_docs = QSEARCH_PENDING_DOCS;
    s->opts = o;
    s_open_args oa = {s, &o};
    if (!s->snip || replica_write(rep, s_open_fn, &oa) != 0 || !s->ix) {
        log_error("search.open", "error=\"could not open the index databases\"");
        qsearch_destroy(&s);
        return NULL;
    }
    replica_hook h = {.ud = s,
                      .on_change = s_on_change,
                      .on_reset = s_on_reset,
                      .before_commit = s_before_commit,
                      .after_abort = s_after_abort,
                      .last_error = s_last_error};
    replica_set_hook(rep, &h);
    uint32_t ver = s_version(s);
    uint64_t docs = qsearch_docs(s), articles = replica_count(rep);
    /* idx_open clears an index of another format (IDX_FORMAT, a new build):
     * an empty index over a replica with articles is rebuilt as well */
    if (ver != QSEARCH_INDEX_VERSION || (docs == 0 && articles > 0)) {
        log_info("search.index_outdated", "version=%u want=%u articles=%llu indexed=%llu", ver,
                 QSEARCH_INDEX_VERSION, (unsigned long long)articles, (unsigned long long)docs);
        if (qsearch_rebuild(s) != 0) {
            qsearch_destroy(&s);
            return NULL;
        }
        docs = qsearch_docs(s);
    }
    log_info("search.open", "indexed=%llu articles=%llu pending_docs=%u", (unsigned long long)docs,
             (unsigned long long)articles, o.max_pending_docs);
    return s;
}

static int s_optimize_fn(void *ud, MDB_txn *txn)
{
    qsearch *s = ud;
    if (idx_flush(s->ix, txn) != IDX_OK)
        return -1;
    return idx_optimize(s->ix, txn) == IDX_OK ? 0 : -1;
}

void qsearch_set_bulk(qsearch *s, bool on, size_t max_bytes)
{
    s->defer_bytes = on ? max_bytes : 0;
    idx_set_bulk(s->ix, on, s->defer_bytes);
}

int qsearch_optimize(qsearch *s)
{
    s->defer_bytes = 0;
    idx_set_bulk(s->ix, false, 0);
    int64_t t0 = clock_mono_us();
    if (s->lost) {
        log_warn("search.optimize", "why=\"the load lost buffered postings: rebuilding\"");
        return qsearch_rebuild(s);
    }
    size_t bytes;
    bool held = idx_pending(s->ix, &bytes);
    idx_stats_t st = {0};
    MDB_txn *txn = replica_read_begin(s->rep);
    int rc = txn ? idx_stats(s->ix, txn, &st) : IDX_INTERNAL;
    if (txn)
        replica_read_end(s->rep);
    if (!held && !txn) /* held postings are written whatever the stats say */
        return -1;
    if (!held && (rc != IDX_OK || st.segments <= 1))
        return 0;
    rc = replica_write(s->rep, s_optimize_fn, s);
    if (rc != 0) {
        if (s->held && !s->lost) /* failed before any txn: no s_after_abort */
            s->lost = true;
        s->held = s->written = false;
        idx_discard(s->ix);
        log_warn("search.optimize", "segments=%llu error=\"could not write or merge the index\"",
                 (unsigned long long)st.segments);
    } else {
        s_held_check(s); /* the write committed */
    }
    if (s->lost) { /* an attempt aborted (replayed after MDB_MAP_FULL, or failed) */
        log_warn("search.optimize", "why=\"an abort lost the buffered postings: rebuilding\"");
        return qsearch_rebuild(s);
    }
    if (rc != 0)
        return -1;
    idx_set_bulk(s->ix, false, 0); /* nothing pending now: the buffer's memory back */
    log_info("search.optimize", "segments=%llu docs=%llu pending_mb=%zu ms=%lld",
             (unsigned long long)st.segments, (unsigned long long)st.docs, bytes >> 20,
             (long long)((clock_mono_us() - t0) / 1000));
    return 0;
}

void qsearch_destroy(qsearch **self)
{
    if (!self || !*self)
        return;
    qsearch *s = *self;
    if (s->ix)
        replica_set_hook(s->rep, NULL);
    s_bulk_stop(s);
    idx_close(&s->ix);
    free(s->snip);
    free(s);
    *self = NULL;
}

bool qsearch_broken(const qsearch *s) { return s->broken; }

idx *qsearch_index(qsearch *s) { return s->ix; }

uint64_t qsearch_docs(qsearch *s)
{
    MDB_txn *txn = replica_read_begin(s->rep);
    if (!txn)
        return 0;
    idx_stats_t st;
    uint64_t n = idx_stats(s->ix, txn, &st) == IDX_OK ? st.docs : 0;
    replica_read_end(s->rep);
    return n;
}

/* --- search ------------------------------------------------------------------------ */

/* The answer's strings: chunks that are never moved (the hits point into
 * them), one per search unless the hits' strings outgrow it. */
struct qsearch_chunk {
    qsearch_chunk *next;
    size_t used, cap;
    char data[];
};

#define S_CHUNK_MIN 8192

void qsearch_result_clear(qsearch_result *r)
{
    for (qsearch_chunk *c = r->strings, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(r->hits);
    free(r->hitp);
    free(r->facets);
    free(r->catp);
    free(r->sitep);
    if (r->has_res)
        idx_result_free(&r->res);
    memset(r, 0, sizeof *r);
}

/* --- the answer's bytes (qsearch_reply_pack) ---------------------------------
 * What protobuf-c 1.4 writes for a proto3 message: the fields in number
 * order, a scalar only when it is not 0 (a double not == 0: -0.0 is left
 * out, NaN is not), a string only when it is not NULL or empty, bytes when
 * not empty, each entry of a repeated message as [tag][length][message].
 * Reply.search (field 14) comes after the head's fields 1-6, which
 * protobuf-c packs. tests/unit/query/qsearch_pack_test compares the bytes
 * with protobuf-c's on random replies. */

#define S_PB_TAG(field, type) ((uint8_t)((field) << 3 | (type))) /* field < 16 */

static size_t s_pb_u64_size(uint64_t v)
{
    return v ? 1 + pbscan_varint_len(v) : 0;
}

static uint8_t *s_pb_u64(uint8_t *p, uint8_t tag, uint64_t v)
{
    if (v) {
        *p++ = tag;
        p = pbscan_varint_put(p, v);
    }
    return p;
}

static size_t s_pb_bytes_size(size_t n)
{
    return n ? 1 + pbscan_varint_len(n) + n : 0;
}

static uint8_t *s_pb_bytes(uint8_t *p, uint8_t tag, const void *d, size_t n)
{
    if (n) {
        *p++ = tag;
        p = pbscan_varint_put(p, n);
        memcpy(p, d, n);
        p += n;
    }
    return p;
}

/* A hit's string lengths (key, site, category, title, snippet) and packed
 * size: measured once, for its length and then its bytes. */
typedef struct {
    size_t len[5];
    size_t size;
} s_hit_lens;

/* Hits whose lengths qsearch_reply_pack keeps (later ones are measured again). */
#define S_PACK_HITS 64

static const char *s_hit_str(const Bulletin__SearchHit *h, int i)
{
    const char *s[5] = {h->key, h->site, h->category, h->title, h->snippet};
    return s[i];
}

static size_t s_hit_measure(const Bulletin__SearchHit *h, s_hit_lens *l)
{
    size_t n = s_pb_u64_size(h->id) + s_pb_u64_size((uint64_t)h->published_at) +
               (h->score != 0 ? 9 : 0);
    for (int i = 0; i < 5; i++) {
        const char *str = s_hit_str(h, i);
        l->len[i] = str ? strlen(str) : 0;
        n += s_pb_bytes_size(l->len[i]);
    }
    return l->size = n;
}

static uint8_t *s_hit_pack(uint8_t *p, const Bulletin__SearchHit *h, const s_hit_lens *l)
{
    *p++ = S_PB_TAG(1, PB_LEN); /* SearchReply.hits */
    p = pbscan_varint_put(p, l->size);
    p = s_pb_u64(p, S_PB_TAG(1, PB_VARINT), h->id);
    for (int i = 0; i < 4; i++) /* key, site, category, title: fields 2-5 */
        p = s_pb_bytes(p, S_PB_TAG(2 + i, PB_LEN), s_hit_str(h, i), l->len[i]);
    p = s_pb_u64(p, S_PB_TAG(6, PB_VARINT), (uint64_t)h->published_at);
    if (h->score != 0) {
        uint64_t b;
        memcpy(&b, &h->score, 8);
        *p++ = S_PB_TAG(7, PB_FIXED64);
        for (int i = 0; i < 8; i++) /* little-endian */
            *p++ = (uint8_t)(b >> (8 * i));
    }
    return s_pb_bytes(p, S_PB_TAG(8, PB_LEN), h->snippet, l->len[4]);
}

static size_t s_facet_size(const Bulletin__FacetCount *f)
{
    return s_pb_bytes_size(f->value ? strlen(f->value) : 0) + s_pb_u64_size(f->count);
}

static size_t s_facets_size(Bulletin__FacetCount *const *f, size_t n)
{
    size_t sz = 0;
    for (size_t i = 0; i < n; i++) {
        size_t m = s_facet_size(f[i]);
        sz += 1 + pbscan_varint_len(m) + m;
    }
    return sz;
}

static uint8_t *s_facets_pack(uint8_t *p, uint8_t tag, Bulletin__FacetCount *const *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        *p++ = tag;
        p = pbscan_varint_put(p, s_facet_size(f[i]));
        p = s_pb_bytes(p, S_PB_TAG(1, PB_LEN), f[i]->value, f[i]->value ? strlen(f[i]->value) : 0);
        p = s_pb_u64(p, S_PB_TAG(2, PB_VARINT), f[i]->count);
    }
    return p;
}

/* The SearchReply's size; the first S_PACK_HITS hits' lengths into hl. */
static size_t s_search_size(const Bulletin__SearchReply *r, s_hit_lens *hl)
{
    size_t sz = s_pb_u64_size(r->total) + s_pb_bytes_size(r->next_cursor.len) +
                s_facets_size(r->categories, r->n_categories) +
                s_facets_size(r->sites, r->n_sites) + s_pb_u64_size(r->took_us);
    for (size_t i = 0; i < r->n_hits; i++) {
        s_hit_lens t;
        size_t m = s_hit_measure(r->hits[i], i < S_PACK_HITS ? &hl[i] : &t);
        sz += 1 + pbscan_varint_len(m) + m;
    }
    return sz;
}

/* The head: rep without its body. */
static Bulletin__Reply s_head(const Bulletin__Reply *rep)
{
    Bulletin__Reply head = *rep;
    head.body_case = BULLETIN__REPLY__BODY__NOT_SET;
    return head;
}

int qsearch_reply_pack_zmq(const Bulletin__Reply *rep, zmq_msg_t *out)
{
    if (rep->body_case != BULLETIN__REPLY__BODY_SEARCH || !rep->search)
        return wire_pack_zmq(&rep->base, out);
    Bulletin__Reply head = s_head(rep);
    const Bulletin__SearchReply *r = rep->search;
    s_hit_lens hl[S_PACK_HITS];
    size_t ssz = s_search_size(r, hl);
    size_t n = protobuf_c_message_get_packed_size(&head.base) + 1 + pbscan_varint_len(ssz) + ssz;
    if (zmq_msg_init_size(out, n) != 0) {
        zmq_msg_init(out);
        return -1;
    }
    uint8_t *p = zmq_msg_data(out);
    p += protobuf_c_message_pack(&head.base, p);
    *p++ = (uint8_t)(14 << 3 | PB_LEN); /* Reply.search */
    p = pbscan_varint_put(p, ssz);
    for (size_t i = 0; i < r->n_hits; i++) {
        s_hit_lens t;
        if (i >= S_PACK_HITS)
            s_hit_measure(r->hits[i], &t);
        p = s_hit_pack(p, r->hits[i], i < S_PACK_HITS ? &hl[i] : &t);
    }
    p = s_pb_u64(p, S_PB_TAG(2, PB_VARINT), r->total);
    p = s_pb_bytes(p, S_PB_TAG(3, PB_LEN), r->next_cursor.data, r->next_cursor.len);
    p = s_facets_pack(p, S_PB_TAG(4, PB_LEN), r->categories, r->n_categories);
    p = s_facets_pack(p, S_PB_TAG(5, PB_LEN), r->sites, r->n_sites);
    p = s_pb_u64(p, S_PB_TAG(6, PB_VARINT), r->took_us);
    return 0;
}

/* Room for `need` bytes in the answer's current chunk (a new chunk when it
 * is full); NULL when out of memory. The caller adds what it wrote to used. */
static qsearch_chunk *s_room(qsearch_result *r, size_t need)
{
    qsearch_chunk *c = r->strings;
    if (c && c->cap - c->used >= need)
        return c;
    size_t cap = need > S_CHUNK_MIN ? need : S_CHUNK_MIN;
    c = malloc(sizeof *c + cap);
    if (!c)
        return NULL;
    c->next = r->strings;
    c->used = 0;
    c->cap = cap;
    r->strings = c;
    return c;
}

/* What a hit takes from its stored bulletin.Article, in place (valid in the
 * read txn). Absent fields are empty (0 for published_at), and a field that
 * occurs twice takes its last value, as protobuf-c's unpack would; the hit is
 * thus what the summary replica.c derives from the same article gave. */
enum { S_KEY, S_SITE, S_CATEGORY, S_TITLE, S_NSTR };

typedef struct {
    const char *str[S_NSTR];
    size_t len[S_NSTR];
    const char *body;
    size_t body_len;
    int64_t published_at;
} s_hitrec;

/* One pass over the article's fields (pbscan_next's checks, with only the
 * fields a hit takes kept). 0, or -1 when it does not parse. */
static int s_hitrec_scan(const MDB_val *v, s_hitrec *h)
{
    const uint8_t *p = v->mv_data, *end = p + v->mv_size;
    memset(h, 0, sizeof *h);
    while (p < end) {
        uint64_t tag, val;
        if (pbscan_varint(&p, end, &tag) < 0 || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff)
            return -1;
        uint64_t field = tag >> 3;
        switch (tag & 7) {
        case PB_VARINT:
            if (pbscan_varint(&p, end, &val) < 0)
                return -1;
            if (field == 10) /* Article.published_at */
                h->published_at = (int64_t)val;
            break;
        case PB_FIXED64:
        case PB_FIXED32: {
            size_t w = (tag & 7) == PB_FIXED64 ? 8 : 4;
            if ((size_t)(end - p) < w)
                return -1;
            p += w;
            break;
        }
        case PB_LEN:
            if (pbscan_varint(&p, end, &val) < 0 || val > (uint64_t)(end - p))
                return -1;
            if (field >= 2 && field <= 5) { /* Article.key, site, category, title */
                h->str[field - 2] = (const char *)p;
                h->len[field - 2] = (size_t)val;
            } else if (field == 6) { /* Article.body */
                h->body = (const char *)p;
                h->body_len = (size_t)val;
            }
            p += val;
            break;
        default:
            return -1;
        }
    }
    return 0;
}

/* Hits whose records are looked up (and prefetched) before the first of
 * them is read. */
#define S_HIT_AHEAD 16

/* How much of a hit's record is prefetched: its short fields and the
 * start of its body, which the snippet scans next. 4 KiB measured best
 * (bench/README.md, hit path, session 8: 256 B -1.3%, 1 KiB -2.0 to -2.6%,
 * 4 KiB -3.0 to -3.8%, 8-16 KiB -1.7 to -3.2% of the in-process search). */
#define S_PREFETCH_BYTES 4096

static void s_prefetch(const MDB_val *v)
{
    const char *p = v->mv_data;
    size_t n = v->mv_size < S_PREFETCH_BYTES ? v->mv_size : S_PREFETCH_BYTES;
    for (size_t i = 0; i < n; i += 64)
        __builtin_prefetch(p + i);
}

/* Fill hit `h` (id and score set) from its record and the snippet of its
 * body: the strings copied, NUL-terminated, into the answer's chunk. 0 or
 * -1 (out of memory). */
static int s_hit_fill(qsearch *s, qsearch_result *out, const s_hitrec *rec, const char *mo,
                      const char *mc, Bulletin__SearchHit *h)
{
    size_t sl = idx_snippet(s->ix, &out->res, rec->body ? rec->body : "", rec->body_len, mo, mc,
                            s->snip, QSEARCH_SNIPPET_CAP);
    size_t need = sl + 1;
    for (int i = 0; i < S_NSTR; i++)
        need += rec->len[i] + 1;
    qsearch_chunk *c = s_room(out, need);
    if (!c)
        return -1;
    char *p = c->data + c->used, **dst[S_NSTR] = {&h->key, &h->site, &h->category, &h->title};
    for (int i = 0; i < S_NSTR; i++) {
        *dst[i] = p;
        if (rec->len[i])
            memcpy(p, rec->str[i], rec->len[i]);
        p += rec->len[i];
        *p++ = '\0';
    }
    h->snippet = p;
    memcpy(p, s->snip, sl);
    p[sl] = '\0';
    h->published_at = rec->published_at;
    c->used += need;
    return 0;
}

static Bulletin__FacetCount **s_facets(const idx_facet *f, size_t n, Bulletin__FacetCount *store)
{
    Bulletin__FacetCount **pp = malloc((n ? n : 1) * sizeof *pp);
    if (!pp)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        bulletin__facet_count__init(&store[i]);
        store[i].value = f[i].value ? f[i].value : "";
        store[i].count = f[i].count;
        pp[i] = &store[i];
    }
    return pp;
}

static int s_fail(char *why, size_t cap, int code, const char *fmt, const char *arg)
{
    snprintf(why, cap, fmt, arg);
    return code;
}

int qsearch_run(qsearch *s, const Bulletin__SearchRequest *req, qsearch_result *out, char *why,
                size_t why_cap)
{
    int64_t t0 = clock_mono_us();
    memset(out, 0, sizeof *out);
    bulletin__search_reply__init(&out->reply);
    const char *mo = req->mark_open && *req->mark_open ? req->mark_open : NULL;
    const char *mc = req->mark_close && *req->mark_close ? req->mark_close : NULL;
    if ((mo && strlen(mo) > QSEARCH_MARK_MAX) || (mc && strlen(mc) > QSEARCH_MARK_MAX))
        return s_fail(why, why_cap, BULLETIN__STATUS_CODE__INVALID_ARGUMENT,
                      "a snippet marker (mark_open, mark_close) is at most %s bytes", "32");
    idx_query q = {0};
    q.query = req->query ? req->query : "";
    if (req->filter) {
        q.site = req->filter->site;
        q.category = req->filter->category;
        q.tag = req->filter->tag;
        q.since = req->filter->since;
        q.until = req->filter->until;
    }
    q.limit = req->limit;
    q.offset = req->offset;
    q.cursor = req->cursor.len ? req->cursor.data : NULL;
    q.cursor_len = req->cursor.len;
    q.facets = req->facets;

    MDB_txn *txn = replica_read_begin(s->rep);
    if (!txn)
        return s_fail(why, why_cap, BULLETIN__STATUS_CODE__INTERNAL, "%s",
                      "the replica could not be read; see the worker's log");
    int code = idx_search(s->ix, txn, &q, &out->res);
    out->has_res = true;
    if (code != IDX_OK) {
        replica_read_end(s->rep);
        const char *msg = out->res.error[0] ? out->res.error : "the query was refused";
        if (out->res.error_pos >= 0)
            snprintf(why, why_cap, "position %ld: %s", out->res.error_pos, msg);
        else
            snprintf(why, why_cap, "%s", msg);
        if (code != IDX_INVALID_ARGUMENT && code != IDX_RESOURCE_EXHAUSTED)
            log_error("search.run", "code=%s why=\"%s\"", wire_code_name(code), why);
        return code == IDX_INVALID_ARGUMENT || code == IDX_RESOURCE_EXHAUSTED ||
                       code == IDX_FAILED_PRECONDITION
                   ? code
                   : BULLETIN__STATUS_CODE__INTERNAL;
    }
    const idx_result *res = &out->res;
    const replica_dbs *d = replica_dbs_get(s->rep);
    size_t n = res->nhits;
    size_t nf = res->ncategories + res->nsites;
    out->hits = calloc(n ? n : 1, sizeof *out->hits);
    out->hitp = calloc(n ? n : 1, sizeof *out->hitp);
    out->facets = calloc(nf ? nf : 1, sizeof *out->facets);
    if (!out->hits || !out->hitp || !out->facets) {
        replica_read_end(s->rep);
        return s_fail(why, why_cap, BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED, "%s",
                      "out of memory for the answer");
    }
    out->nhits = n;
    size_t kept = 0;
    for (size_t b = 0; b < n; b += S_HIT_AHEAD) {
        /* the records of up to S_HIT_AHEAD hits first, each one's first
         * S_PREFETCH_BYTES prefetched: their cache and TLB misses overlap
         * the next lookups and the snippets before them, instead of
         * stalling the scan of the fields and the snippet's first pass (a
         * hardware prefetcher stops at the 4 KiB page) */
        size_t m = n - b < S_HIT_AHEAD ? n - b : S_HIT_AHEAD;
        MDB_val vals[S_HIT_AHEAD];
        bool found[S_HIT_AHEAD];
        for (size_t j = 0; j < m; j++) {
            uint8_t idk[8];
            replica_put_u64(idk, res->hits[b + j].id);
            MDB_val k = {8, idk};
            found[j] = mdb_get(txn, d->articles, &k, &vals[j]) == 0;
            if (found[j])
                s_prefetch(&vals[j]);
        }
        for (size_t j = 0; j < m; j++) {
            Bulletin__SearchHit *h = &out->hits[kept];
            bulletin__search_hit__init(h);
            h->id = res->hits[b + j].id;
            h->score = res->hits[b + j].score;
            s_hitrec rec;
            if (!found[j] || s_hitrec_scan(&vals[j], &rec) != 0) {
                /* indexed but not in the replica: cannot happen (same txn); say so */
                log_error("search.missing_article", "id=%llu", (unsigned long long)h->id);
                continue;
            }
            if (s_hit_fill(s, out, &rec, mo, mc, h) != 0) {
                replica_read_end(s->rep);
                return s_fail(why, why_cap, BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED, "%s",
                              "out of memory for the answer");
            }
            out->hitp[kept++] = h;
        }
    }
    replica_read_end(s->rep);
    out->reply.hits = out->hitp;
    out->reply.n_hits = kept;
    out->reply.total = res->total;
    out->reply.next_cursor.data = (uint8_t *)res->next_cursor;
    out->reply.next_cursor.len = res->next_cursor_len;
    if (req->facets) {
        out->catp = s_facets(res->categories, res->ncategories, out->facets);
        out->sitep = s_facets(res->sites, res->nsites, out->facets + res->ncategories);
        if (!out->catp || !out->sitep)
            return s_fail(why, why_cap, BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED, "%s",
                          "out of memory for the answer");
        out->reply.categories = out->catp;
        out->reply.n_categories = res->ncategories;
        out->reply.sites = out->sitep;
        out->reply.n_sites = res->nsites;
    }
    out->reply.took_us = (uint64_t)(clock_mono_us() - t0);
    return BULLETIN__STATUS_CODE__OK;
}
