/*
 * ingest_bench: the write-path benchmark, Bulletin against SQLite in the same run.
 *
 * For every configuration (batch size B x concurrent clients C) it measures two
 * engines on the same articles, cut into the same batches:
 *
 *   bulletin  C client threads, each with its own DEALER connected to an ingest
 *             endpoint, closed loop: send [empty][Request{ingest: B items}], wait
 *             for the Reply, record the acknowledgement latency, take the next
 *             batch. Every result must be CREATED; anything else is an error
 *             (counted and printed). With --spawn the program starts a fresh
 *             bulletin-store (new temp data dir) and bulletin-ingest on free
 *             loopback ports for every configuration and stops them after it.
 *   sqlite    C threads, each with its own connection to ONE fresh database file
 *             (journal_mode=WAL, synchronous=FULL, busy_timeout), one
 *             transaction per batch (BEGIN IMMEDIATE; B x INSERT OR REPLACE;
 *             COMMIT); latency = that transaction.
 *
 * The batches of a configuration are handed out from one shared counter, so
 * the C clients together write articles [0, limit) exactly once. A
 * configuration stops at its article limit or its time limit, whichever comes
 * first (batch 1: --small-articles / --small-seconds; larger batches:
 * --articles / --seconds). Requests are packed before the clock starts: the
 * client side costs as little as possible, so what is measured is the service.
 *
 *   corpus JSONL ──load/filter──▶ articles[] ──pack──▶ requests[] ──C threads──▶ latencies[]
 *
 * Output: a markdown report on stdout (machine, table, ratios, targets);
 * progress as key=value log lines on stderr.
 */
#include "bench_common.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "wire.h"
#include "zio.h"

#include "bulletin.pb-c.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------- */
/* configuration                                                              */

static const char *o_corpus, *o_ingest, *o_store, *o_batches, *o_clients, *o_engines,
    *o_data_dir, *o_bin_dir, *o_out;
static long long o_articles, o_seconds, o_small_articles, o_small_seconds, o_timeout_ms, o_repeat;
static bool o_spawn, o_keep, o_sqlite_serialize;

static const cfg_option s_opts[] = {
    {"corpus", "BULLETIN_BENCH_CORPUS", CFG_STR, "/tmp/corpus/en.jsonl",
     "corpus JSON Lines file (key, title, body, category, site, published_at)", &o_corpus},
    {"articles", "BULLETIN_BENCH_ARTICLES", CFG_INT, "100000",
     "articles per configuration with batch > 1 (read from the start of the corpus)",
     &o_articles},
    {"seconds", "BULLETIN_BENCH_SECONDS", CFG_INT, "60",
     "time limit per configuration with batch > 1", &o_seconds},
    {"small-articles", "BULLETIN_BENCH_SMALL_ARTICLES", CFG_INT, "20000",
     "article limit per configuration with batch 1", &o_small_articles},
    {"small-seconds", "BULLETIN_BENCH_SMALL_SECONDS", CFG_INT, "5",
     "time limit per configuration with batch 1", &o_small_seconds},
    {"batches", "BULLETIN_BENCH_BATCHES", CFG_STR, "1,100,1000",
     "comma-separated batch sizes (articles per request / transaction)", &o_batches},
    {"clients", "BULLETIN_BENCH_CLIENTS", CFG_STR, "1,8",
     "comma-separated numbers of concurrent clients", &o_clients},
    {"engines", "BULLETIN_BENCH_ENGINES", CFG_STR, "bulletin,sqlite",
     "engines to run: bulletin (client -> ingest -> store), sqlite, and the diagnostic "
     "store (the same batches straight to the store as internal WriteBatches)", &o_engines},
    {"spawn", "BULLETIN_BENCH_SPAWN", CFG_BOOL, NULL,
     "start a fresh bulletin-store + bulletin-ingest per configuration", &o_spawn},
    {"ingest", "BULLETIN_BENCH_INGEST", CFG_STR, "tcp://127.0.0.1:5555",
     "ingest endpoint to drive (without --spawn)", &o_ingest},
    {"store", "BULLETIN_BENCH_STORE", CFG_STR, "tcp://127.0.0.1:5557",
     "store API endpoint, asked for Stats after each run (without --spawn; empty = don't)",
     &o_store},
    {"data-dir", "BULLETIN_BENCH_DATA_DIR", CFG_STR, "/tmp",
     "where the temp store data dirs and SQLite files go (same filesystem for both)",
     &o_data_dir},
    {"bin-dir", "BULLETIN_BENCH_BIN_DIR", CFG_STR, NULL,
     "where bulletin-store and bulletin-ingest are (default: next to this program)",
     &o_bin_dir},
    {"repeat", "BULLETIN_BENCH_REPEAT", CFG_INT, "1",
     "runs per configuration and engine (interleaved); the table shows the median run "
     "and the range", &o_repeat},
    {"timeout-ms", "BULLETIN_BENCH_TIMEOUT_MS", CFG_INT, "30000",
     "a request without a reply after this long is an error and stops its client",
     &o_timeout_ms},
    {"out", "BULLETIN_BENCH_OUT", CFG_STR, NULL, "also write the markdown report to this file",
     &o_out},
    {"sqlite-serialize", "BULLETIN_BENCH_SQLITE_SERIALIZE", CFG_BOOL, NULL,
     "SQLite clients take an in-process mutex around each transaction instead of waiting in "
     "SQLite's busy handler (a best case for SQLite with many writers)", &o_sqlite_serialize},
    {"keep", "BULLETIN_BENCH_KEEP", CFG_BOOL, NULL,
     "keep the temp data dirs and service logs (their paths are logged)", &o_keep},
};
#define S_NOPTS (sizeof s_opts / sizeof s_opts[0])

/* ------------------------------------------------------------------------- */
/* corpus                                                                     */

typedef bench_article s_article;

typedef struct {
    s_article *a;
    size_t n;
    size_t lines, bad_json, bad_date, out_of_range, bad_title, too_big, dup_key;
    size_t text_bytes;
} s_corpus;

/* What the ingest contract rejects; such lines are skipped for both engines so
 * that every Bulletin write can be CREATED. */
/* (limits: BENCH_TITLE_MAX, BENCH_BODY_MAX, BENCH_DATE_MIN_MS in bench_common.h) */

/* Simple open-addressing set of keys, to skip duplicates. */
typedef struct {
    const char **slot;
    size_t cap;
} s_keyset;

static uint64_t s_fnv(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* true if inserted, false if already there */
static bool s_keyset_add(s_keyset *ks, const char *key)
{
    size_t i = s_fnv(key) & (ks->cap - 1);
    while (ks->slot[i]) {
        if (!strcmp(ks->slot[i], key))
            return false;
        i = (i + 1) & (ks->cap - 1);
    }
    ks->slot[i] = key;
    return true;
}

static int s_corpus_load(s_corpus *c, const char *path, size_t want)
{
    memset(c, 0, sizeof *c);
    FILE *f = bench_corpus_open(path);
    if (!f)
        return -1;
    c->a = calloc(want ? want : 1, sizeof *c->a);
    s_keyset ks = {0};
    ks.cap = 1;
    while (ks.cap < want * 2 + 16)
        ks.cap <<= 1;
    ks.slot = calloc(ks.cap, sizeof *ks.slot);
    if (!c->a || !ks.slot) {
        fclose(f);
        free(ks.slot);
        log_error("bench.corpus", "error=\"out of memory\" articles=%zu", want);
        return -1;
    }
    int64_t max_ms = clock_now_ms() + 86400000LL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while (c->n < want && (len = getline(&line, &cap, f)) > 0) {
        c->lines++;
        s_article a;
        bench_verdict v = bench_article_parse(line, (size_t)len, max_ms, &a);
        if (v == BENCH_ART_OK && !s_keyset_add(&ks, a.key)) {
            bench_article_free(&a);
            v = BENCH_ART_NO_KEY;
        }
        switch (v) {
        case BENCH_ART_OK:
            break;
        case BENCH_ART_BAD_JSON:
            c->bad_json++;
            continue;
        case BENCH_ART_BAD_DATE:
            c->bad_date++;
            continue;
        case BENCH_ART_OUT_OF_RANGE:
            c->out_of_range++;
            continue;
        case BENCH_ART_BAD_TITLE:
            c->bad_title++;
            continue;
        case BENCH_ART_TOO_BIG:
            c->too_big++;
            continue;
        case BENCH_ART_NO_KEY: /* empty or duplicate */
            c->dup_key++;
            continue;
        }
        c->text_bytes += strlen(a.title) + strlen(a.body) + strlen(a.category) + strlen(a.site) +
                         strlen(a.key);
        c->a[c->n++] = a;
    }
    free(line);
    free(ks.slot);
    fclose(f);
    return 0;
}

static void s_corpus_free(s_corpus *c)
{
    bench_articles_free(c->a, c->n);
    memset(c, 0, sizeof *c);
}

/* ------------------------------------------------------------------------- */
/* one configuration: the work queue and the results                          */

typedef struct {
    size_t batch;          /* articles per request */
    size_t limit;          /* articles in this configuration */
    size_t nbatches;       /* ceil(limit / batch) */
    int64_t time_limit_us; /* stop taking batches after this */
    const char *key_prefix;/* "" or a run tag, for keys distinct across runs */
} s_plan;

typedef struct {
    /* filled by the clients */
    size_t ok_articles, err_articles, requests, failed_requests;
    int64_t *lat_us;       /* one per completed request */
    size_t nlat;
    int64_t wall_us;
    /* store Stats after the run (bulletin only; < 0 = unknown) */
    double commits, ops_committed;
    /* CPU time (user + system) spent during the run, us; < 0 = unknown */
    double cpu_client_us, cpu_ingest_us, cpu_store_us;
    bool ran;    /* measured: a row in the table */
    bool failed; /* attempted but could not run (see the log): a "failed" row */
} s_result;

typedef struct {
    const s_plan *plan;
    atomic_size_t next;      /* next batch index */
    int64_t t_start;         /* monotonic us, set before the clients are released */
    pthread_barrier_t barrier;
    pthread_mutex_t mu;      /* guards the merge into result and error printing */
    s_result *res;
    int errors_printed;
    atomic_int setup_failed; /* clients that could not connect/open before the start */
    pthread_mutex_t writer;  /* --sqlite-serialize: one transaction at a time */
} s_shared;

typedef struct {
    s_shared *sh;
    int index;
    /* per client */
    int64_t *lat_us;
    size_t nlat;
    size_t ok, err, requests, failed;
    int64_t t_end;
} s_client;

#define S_MAX_PRINTED_ERRORS 10

static void s_report_error(s_shared *sh, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_report_error(s_shared *sh, const char *fmt, ...)
{
    pthread_mutex_lock(&sh->mu);
    if (sh->errors_printed < S_MAX_PRINTED_ERRORS) {
        char buf[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        log_warn("bench.error", "%s", buf);
        if (++sh->errors_printed == S_MAX_PRINTED_ERRORS)
            log_warn("bench.error", "msg=\"further errors of this run are counted, not printed\"");
    }
    pthread_mutex_unlock(&sh->mu);
}

/* The next batch index, or SIZE_MAX when the plan is done or out of time. */
static size_t s_take(s_shared *sh)
{
    if (clock_mono_us() - sh->t_start >= sh->plan->time_limit_us)
        return SIZE_MAX;
    size_t b = atomic_fetch_add(&sh->next, 1);
    return b < sh->plan->nbatches ? b : SIZE_MAX;
}

static void s_batch_range(const s_plan *p, size_t b, size_t *from, size_t *to)
{
    *from = b * p->batch;
    *to = *from + p->batch < p->limit ? *from + p->batch : p->limit;
}

static void s_client_merge(s_shared *sh, s_client *cl)
{
    pthread_mutex_lock(&sh->mu);
    s_result *r = sh->res;
    memcpy(r->lat_us + r->nlat, cl->lat_us, cl->nlat * sizeof *cl->lat_us);
    r->nlat += cl->nlat;
    r->ok_articles += cl->ok;
    r->err_articles += cl->err;
    r->requests += cl->requests;
    r->failed_requests += cl->failed;
    if (cl->t_end - sh->t_start > r->wall_us)
        r->wall_us = cl->t_end - sh->t_start;
    pthread_mutex_unlock(&sh->mu);
}

/* ------------------------------------------------------------------------- */
/* Bulletin: requests packed in advance, DEALER clients                       */

/* S_STORE is a diagnostic engine: the same batches sent straight to the
 * store as internal WriteBatches (what ingest forwards), to tell the cost of
 * the ingest hop from the cost of the store. */
typedef enum { S_BULLETIN = 0, S_STORE = 1, S_SQLITE = 2, S_NENGINES = 3 } s_engine;
static const char *s_engine_name[S_NENGINES] = {"Bulletin", "store only", "SQLite"};

typedef struct {
    uint8_t *data;
    size_t len;
} s_buf;

static char *s_prefixed(const char *prefix, const char *key)
{
    size_t a = strlen(prefix), b = strlen(key);
    char *s = malloc(a + b + 1);
    if (s) {
        memcpy(s, prefix, a);
        memcpy(s + a, key, b + 1);
    }
    return s;
}

/* Pack one Request per batch; request_id = batch index + 1. The body is
 * ingest{items} or, when direct, internal = StoreRequest{write{put ops}}. */
static s_buf *s_pack_requests(const s_corpus *c, const s_plan *p, bool direct)
{
    s_buf *bufs = calloc(p->nbatches, sizeof *bufs);
    Bulletin__Article *arts = calloc(p->batch, sizeof *arts);
    Bulletin__IngestItem *items = calloc(p->batch, sizeof *items);
    Bulletin__IngestItem **itemp = calloc(p->batch, sizeof *itemp);
    Bulletin__Internal__WriteOp *ops = calloc(p->batch, sizeof *ops);
    Bulletin__Internal__WriteOp **opp = calloc(p->batch, sizeof *opp);
    char **keys = calloc(p->batch, sizeof *keys);
    bool ok = bufs && arts && items && itemp && ops && opp && keys;
    for (size_t b = 0; ok && b < p->nbatches; b++) {
        size_t from, to;
        s_batch_range(p, b, &from, &to);
        for (size_t i = from; i < to; i++) {
            const s_article *src = &c->a[i];
            Bulletin__Article *a = &arts[i - from];
            bulletin__article__init(a);
            keys[i - from] = p->key_prefix[0] ? s_prefixed(p->key_prefix, src->key) : NULL;
            a->key = keys[i - from] ? keys[i - from] : src->key;
            a->title = src->title;
            a->body = src->body;
            a->category = src->category;
            a->site = src->site;
            a->published_at = src->published_ms;
            bulletin__ingest_item__init(&items[i - from]);
            items[i - from].item_case = BULLETIN__INGEST_ITEM__ITEM_ARTICLE;
            items[i - from].article = a;
            itemp[i - from] = &items[i - from];
            bulletin__internal__write_op__init(&ops[i - from]);
            ops[i - from].op_case = BULLETIN__INTERNAL__WRITE_OP__OP_PUT;
            ops[i - from].put = a;
            opp[i - from] = &ops[i - from];
        }
        Bulletin__IngestRequest ir = BULLETIN__INGEST_REQUEST__INIT;
        ir.n_items = to - from;
        ir.items = itemp;
        Bulletin__Internal__WriteBatch wb = BULLETIN__INTERNAL__WRITE_BATCH__INIT;
        wb.n_ops = to - from;
        wb.ops = opp;
        Bulletin__Internal__StoreRequest sr = BULLETIN__INTERNAL__STORE_REQUEST__INIT;
        sr.body_case = BULLETIN__INTERNAL__STORE_REQUEST__BODY_WRITE;
        sr.write = &wb;
        Bulletin__Request req = BULLETIN__REQUEST__INIT;
        req.version_major = WIRE_VERSION_MAJOR;
        req.version_minor = WIRE_VERSION_MINOR;
        req.request_id = b + 1;
        ProtobufCBinaryData inner = {0, NULL};
        if (direct) {
            if (wire_pack_bytes(&sr.base, &inner) < 0)
                ok = false;
            req.body_case = BULLETIN__REQUEST__BODY_INTERNAL;
            req.internal = inner;
        } else {
            req.body_case = BULLETIN__REQUEST__BODY_INGEST;
            req.ingest = &ir;
        }
        ProtobufCBinaryData out = {0, NULL};
        if (ok && wire_pack_bytes(&req.base, &out) < 0)
            ok = false;
        free(inner.data);
        bufs[b].data = out.data;
        bufs[b].len = out.len;
        for (size_t i = 0; i < to - from; i++) {
            free(keys[i]);
            keys[i] = NULL;
        }
    }
    free(arts);
    free(items);
    free(itemp);
    free(ops);
    free(opp);
    free(keys);
    if (!ok) {
        log_error("bench.pack", "error=\"out of memory\" batches=%zu", p->nbatches);
        if (bufs)
            for (size_t b = 0; b < p->nbatches; b++)
                free(bufs[b].data);
        free(bufs);
        return NULL;
    }
    return bufs;
}

static void s_bufs_free(s_buf *bufs, size_t n)
{
    if (!bufs)
        return;
    for (size_t i = 0; i < n; i++)
        free(bufs[i].data);
    free(bufs);
}


typedef struct {
    s_client base;
    void *ctx;
    const char *endpoint;
    const s_buf *bufs;
    bool direct; /* talking to the store: replies carry StoreReply{write} */
} s_bclient;

#define S_WARMUP_MS 5000

/* The per-article results of a write reply: IngestReply.results, or for a
 * direct store write the WriteBatchReply inside Reply.internal (*sr gets the
 * decoded StoreReply, which the caller frees). false if there are none. */
static bool s_results(const Bulletin__Reply *rep, bool direct, Bulletin__Internal__StoreReply **sr,
                      Bulletin__IngestResult ***results, size_t *n)
{
    *n = 0;
    if (!direct) {
        if (rep->body_case != BULLETIN__REPLY__BODY_INGEST || !rep->ingest)
            return false;
        *results = rep->ingest->results;
        *n = rep->ingest->n_results;
        return true;
    }
    if (rep->body_case != BULLETIN__REPLY__BODY_INTERNAL)
        return false;
    wire_code code;
    char why[256];
    *sr = (Bulletin__Internal__StoreReply *)wire_unpack(
        &bulletin__internal__store_reply__descriptor, rep->internal.data, rep->internal.len,
        WIRE_BUDGET(rep->internal.len), &code, why, sizeof why);
    if (!*sr || (*sr)->body_case != BULLETIN__INTERNAL__STORE_REPLY__BODY_WRITE || !(*sr)->write)
        return false;
    *results = (*sr)->write->results;
    *n = (*sr)->write->n_results;
    return true;
}

static void *s_bulletin_client(void *arg)
{
    s_bclient *bc = arg;
    s_client *cl = &bc->base;
    s_shared *sh = cl->sh;
    const s_plan *p = sh->plan;
    char why[512];
    void *sock = zio_socket(bc->ctx, ZMQ_DEALER, 0, 0);
    bool ready = sock && zio_connect(sock, bc->endpoint) == 0;
    /* Warm-up: one Health round trip so the connection exists before the clock starts. */
    if (ready) {
        Bulletin__Reply *r = bench_simple_request(sock, BULLETIN__REQUEST__BODY_HEALTH, 0,
                                              S_WARMUP_MS, why, sizeof why);
        if (!r) {
            s_report_error(sh, "client=%d stage=warmup error=\"%s\"", cl->index, why);
            ready = false;
        }
        wire_free(r);
    }
    if (!ready)
        atomic_fetch_add(&sh->setup_failed, 1);
    pthread_barrier_wait(&sh->barrier);
    size_t b;
    while (ready && (b = s_take(sh)) != SIZE_MAX) {
        size_t from, to;
        s_batch_range(p, b, &from, &to);
        size_t n = to - from;
        int64_t t0 = clock_mono_us();
        Bulletin__Reply *rep =
            bench_roundtrip(sock, bc->bufs[b].data, bc->bufs[b].len, (int)o_timeout_ms, why, sizeof why);
        int64_t t1 = clock_mono_us();
        cl->requests++;
        if (!rep) {
            cl->failed++;
            cl->err += n;
            s_report_error(sh, "client=%d batch=%zu error=\"%s\" msg=\"this client stops\"",
                           cl->index, b, why);
            break; /* the reply may still come: this socket is out of step */
        }
        cl->lat_us[cl->nlat++] = t1 - t0;
        int code = rep->status ? (int)rep->status->code : 0;
        Bulletin__Internal__StoreReply *sr = NULL;
        Bulletin__IngestResult **results = NULL;
        size_t nres = 0;
        if (rep->request_id != b + 1) {
            cl->failed++;
            cl->err += n;
            s_report_error(sh, "client=%d batch=%zu error=\"reply for request_id %" PRIu64
                           " instead of %zu\"", cl->index, b, rep->request_id, b + 1);
        } else if (code != BULLETIN__STATUS_CODE__OK) {
            cl->failed++;
            cl->err += n;
            s_report_error(sh, "client=%d batch=%zu status=%s message=\"%s\"", cl->index, b,
                           wire_code_name(code), rep->status->message ? rep->status->message : "");
        } else if (!s_results(rep, bc->direct, &sr, &results, &nres) || nres != n) {
            cl->failed++;
            cl->err += n;
            s_report_error(sh, "client=%d batch=%zu error=\"OK reply without %zu write results "
                           "(got %zu)\"", cl->index, b, n, nres);
        } else {
            for (size_t i = 0; i < n; i++) {
                Bulletin__IngestResult *r = results[i];
                if (r->status == BULLETIN__WRITE_STATUS__CREATED) {
                    cl->ok++;
                } else {
                    cl->err++;
                    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(
                        &bulletin__write_status__descriptor, r->status);
                    s_report_error(sh, "client=%d batch=%zu item=%zu key=\"%s\" status=%s error=\"%s\"",
                                   cl->index, b, i, r->key ? r->key : "", ev ? ev->name : "?",
                                   r->error ? r->error : "");
                }
            }
        }
        wire_free(sr);
        sr = NULL;
        wire_free(rep);
    }
    cl->t_end = clock_mono_us();
    zio_close(&sock);
    s_client_merge(sh, cl);
    return NULL;
}

/* ------------------------------------------------------------------------- */
/* SQLite                                                                     */

typedef struct {
    s_client base;
    const char *path;
    const s_corpus *corpus;
} s_sclient;

static const char *s_sqlite_schema =
    "CREATE TABLE IF NOT EXISTS articles ("
    " id INTEGER PRIMARY KEY,"
    " key TEXT NOT NULL UNIQUE,"
    " site TEXT NOT NULL,"
    " category TEXT NOT NULL,"
    " title TEXT NOT NULL,"
    " body TEXT NOT NULL,"
    " published_at INTEGER NOT NULL,"
    " ingested_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL)";

static sqlite3 *s_sqlite_open(const char *path, char *why, size_t cap)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(why, cap, "open %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 60000);
    char *err = NULL;
    if (sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, &err) !=
        SQLITE_OK) {
        snprintf(why, cap, "pragmas: %s", err ? err : "?");
        sqlite3_free(err);
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

static int s_sqlite_exec(sqlite3 *db, const char *sql, char *why, size_t cap)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) == SQLITE_OK)
        return 0;
    snprintf(why, cap, "%s: %s", sql, err ? err : sqlite3_errmsg(db));
    sqlite3_free(err);
    return -1;
}

static void *s_sqlite_client(void *arg)
{
    s_sclient *sc = arg;
    s_client *cl = &sc->base;
    s_shared *sh = cl->sh;
    const s_plan *p = sh->plan;
    char why[512];
    sqlite3_stmt *st = NULL;
    sqlite3 *db = s_sqlite_open(sc->path, why, sizeof why);
    bool ready = db != NULL;
    if (db &&
        sqlite3_prepare_v2(db,
                           "INSERT OR REPLACE INTO articles (key, site, category, title, body,"
                           " published_at, ingested_at, updated_at) VALUES (?1,?2,?3,?4,?5,?6,?7,?7)",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(why, sizeof why, "prepare: %s", sqlite3_errmsg(db));
        ready = false;
    }
    if (!ready) {
        s_report_error(sh, "client=%d engine=sqlite error=\"%s\"", cl->index, why);
        atomic_fetch_add(&sh->setup_failed, 1);
    }
    pthread_barrier_wait(&sh->barrier);
    size_t b;
    char *pkey = NULL;
    while (ready && (b = s_take(sh)) != SIZE_MAX) {
        size_t from, to;
        s_batch_range(p, b, &from, &to);
        size_t n = to - from;
        int64_t t0 = clock_mono_us();
        if (o_sqlite_serialize)
            pthread_mutex_lock(&sh->writer);
        bool ok = s_sqlite_exec(db, "BEGIN IMMEDIATE", why, sizeof why) == 0;
        int64_t now = clock_now_ms();
        for (size_t i = from; ok && i < to; i++) {
            const s_article *a = &sc->corpus->a[i];
            const char *key = a->key;
            if (p->key_prefix[0]) {
                free(pkey);
                key = pkey = s_prefixed(p->key_prefix, a->key);
            }
            sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, a->site, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, a->category, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 4, a->title, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 5, a->body, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 6, a->published_ms);
            sqlite3_bind_int64(st, 7, now);
            if (sqlite3_step(st) != SQLITE_DONE) {
                snprintf(why, sizeof why, "insert: %s", sqlite3_errmsg(db));
                ok = false;
            }
            sqlite3_reset(st);
        }
        if (ok)
            ok = s_sqlite_exec(db, "COMMIT", why, sizeof why) == 0;
        if (!ok) {
            char ignore[64];
            s_sqlite_exec(db, "ROLLBACK", ignore, sizeof ignore);
        }
        if (o_sqlite_serialize)
            pthread_mutex_unlock(&sh->writer);
        int64_t t1 = clock_mono_us();
        cl->requests++;
        if (ok) {
            cl->lat_us[cl->nlat++] = t1 - t0;
            cl->ok += n;
        } else {
            cl->failed++;
            cl->err += n;
            s_report_error(sh, "client=%d engine=sqlite batch=%zu error=\"%s\"", cl->index, b, why);
        }
    }
    free(pkey);
    cl->t_end = clock_mono_us();
    sqlite3_finalize(st);
    sqlite3_close(db);
    s_client_merge(sh, cl);
    return NULL;
}

/* ------------------------------------------------------------------------- */
/* spawning the services                                                      */

typedef struct {
    char dir[PATH_MAX];
    pid_t store_pid, ingest_pid;
    char ingest_ep[64], store_ep[64];
} s_stack;

static void s_stack_stop(s_stack *sk)
{
    bench_stop(&sk->ingest_pid, "bulletin-ingest", 5);
    bench_stop(&sk->store_pid, "bulletin-store", 5);
    bench_dir_release(sk->dir, o_keep);
}

static int s_stack_start(s_stack *sk, void *ctx, const char *bin_dir, const char *data_parent,
                         bool with_ingest)
{
    memset(sk, 0, sizeof *sk);
    snprintf(sk->dir, sizeof sk->dir, "%s/bulletin-bench-XXXXXX", data_parent);
    if (!mkdtemp(sk->dir)) {
        log_error("bench.spawn", "dir=%s error=\"%s\"", sk->dir, strerror(errno));
        sk->dir[0] = 0;
        return -1;
    }
    int p_api = bench_free_port(), p_feed = bench_free_port(), p_ingest = bench_free_port(),
        p_shttp = bench_free_port(), p_ihttp = bench_free_port();
    int ports[] = {p_api, p_feed, p_ingest, p_shttp, p_ihttp};
    bool distinct = true;
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < 5; j++)
            distinct &= ports[i] > 0 && ports[i] != ports[j];
    if (!distinct) {
        log_error("bench.spawn", "msg=\"no free loopback ports\"");
        return -1;
    }
    char store_bin[PATH_MAX], ingest_bin[PATH_MAX], data[PATH_MAX + 8], feed_ep[64],
        bind_ep[64], slog[PATH_MAX + 16], ilog[PATH_MAX + 16], shttp[32], ihttp[32];
    bool fits = snprintf(store_bin, sizeof store_bin, "%s/bulletin-store", bin_dir) <
                    (int)sizeof store_bin &&
                snprintf(ingest_bin, sizeof ingest_bin, "%s/bulletin-ingest", bin_dir) <
                    (int)sizeof ingest_bin &&
                snprintf(data, sizeof data, "%s/store", sk->dir) < (int)sizeof data &&
                snprintf(slog, sizeof slog, "%s/store.log", sk->dir) < (int)sizeof slog &&
                snprintf(ilog, sizeof ilog, "%s/ingest.log", sk->dir) < (int)sizeof ilog;
    if (!fits) {
        log_error("bench.spawn", "msg=\"path too long\" bin_dir=%s dir=%s", bin_dir, sk->dir);
        return -1;
    }
    snprintf(sk->store_ep, sizeof sk->store_ep, "tcp://127.0.0.1:%d", p_api);
    snprintf(feed_ep, sizeof feed_ep, "tcp://127.0.0.1:%d", p_feed);
    snprintf(sk->ingest_ep, sizeof sk->ingest_ep, "tcp://127.0.0.1:%d", p_ingest);
    snprintf(bind_ep, sizeof bind_ep, "tcp://127.0.0.1:%d", p_ingest);
    /* the services serve /healthz and /metrics too: on free ports, so that
     * nothing collides with a stack that runs on the default ports */
    snprintf(shttp, sizeof shttp, "127.0.0.1:%d", p_shttp);
    snprintf(ihttp, sizeof ihttp, "127.0.0.1:%d", p_ihttp);
    if (access(store_bin, X_OK) != 0 || (with_ingest && access(ingest_bin, X_OK) != 0)) {
        log_error("bench.spawn", "store=%s ingest=%s msg=\"binary missing; build bulletin-store%s\"",
                  store_bin, with_ingest ? ingest_bin : "-", with_ingest ? " and bulletin-ingest" : "");
        return -1;
    }
    mkdir(data, 0755);
    char *sargv[] = {store_bin, "--data", data, "--bind", sk->store_ep, "--feed", feed_ep,
                     "--http", shttp, NULL};
    char *iargv[] = {ingest_bin, "--bind", bind_ep, "--store", sk->store_ep, "--http", ihttp, NULL};
    if (bench_start_service(ctx, &sk->store_pid, sargv, slog,
                                NULL, sk->store_ep, "bulletin-store", 10000) < 0)
        return -1;
    if (!with_ingest) {
        log_info("bench.spawn", "dir=%s store=%s store_pid=%d", sk->dir, sk->store_ep,
                 (int)sk->store_pid);
        return 0;
    }
    if (bench_start_service(ctx, &sk->ingest_pid, iargv, ilog,
                                NULL, sk->ingest_ep, "bulletin-ingest", 10000) < 0)
        return -1;
    log_info("bench.spawn", "dir=%s store=%s ingest=%s store_pid=%d ingest_pid=%d", sk->dir,
             sk->store_ep, sk->ingest_ep, (int)sk->store_pid, (int)sk->ingest_pid);
    return 0;
}

static void s_store_stats(void *ctx, const char *endpoint, s_result *r)
{
    r->commits = r->ops_committed = -1;
    if (!endpoint || !endpoint[0])
        return;
    void *s = zio_socket(ctx, ZMQ_DEALER, 0, 0);
    char why[256];
    Bulletin__Reply *rep = NULL;
    if (s && zio_connect(s, endpoint) == 0)
        rep = bench_simple_request(s, BULLETIN__REQUEST__BODY_STATS, 2, 2000, why, sizeof why);
    zio_close(&s);
    if (rep && rep->body_case == BULLETIN__REPLY__BODY_STATS && rep->stats) {
        for (size_t i = 0; i < rep->stats->n_metrics; i++) {
            const Bulletin__Metric *m = rep->stats->metrics[i];
            if (m->name && !strcmp(m->name, "commits"))
                r->commits = m->value;
            else if (m->name && !strcmp(m->name, "ops_committed"))
                r->ops_committed = m->value;
        }
    } else {
        log_warn("bench.stats", "endpoint=%s msg=\"no Stats from the store\"", endpoint);
    }
    wire_free(rep);
}

/* ------------------------------------------------------------------------- */
/* running one configuration                                                  */


static int s_run(s_engine eng, const s_corpus *corpus, const s_plan *plan, int nclients,
                 void *ctx, const char *bin_dir, s_result *res)
{
    memset(res, 0, sizeof *res);
    s_result before;
    memset(&before, 0, sizeof before);
    before.commits = before.ops_committed = -1;
    res->commits = res->ops_committed = -1;
    res->cpu_client_us = res->cpu_ingest_us = res->cpu_store_us = -1;
    res->lat_us = calloc(plan->nbatches + 1, sizeof *res->lat_us);
    if (!res->lat_us)
        return -1;
    s_buf *bufs = NULL;
    s_stack sk = {0};
    const char *endpoint = o_ingest, *store_ep = o_store;
    char sqlite_dir[PATH_MAX] = "", sqlite_path[PATH_MAX + 16] = "";
    int rc = -1;
    if (eng != S_SQLITE) {
        int64_t t = clock_mono_us();
        bufs = s_pack_requests(corpus, plan, eng == S_STORE);
        if (!bufs)
            goto done;
        log_info("bench.pack", "batches=%zu us=%" PRId64, plan->nbatches, clock_mono_us() - t);
        if (o_spawn) {
            if (s_stack_start(&sk, ctx, bin_dir, o_data_dir, eng == S_BULLETIN) < 0)
                goto done;
            endpoint = sk.ingest_ep;
            store_ep = sk.store_ep;
        }
        if (eng == S_STORE)
            endpoint = store_ep;
    } else {
        snprintf(sqlite_dir, sizeof sqlite_dir, "%s/bulletin-bench-sqlite-XXXXXX", o_data_dir);
        if (!mkdtemp(sqlite_dir)) {
            log_error("bench.sqlite", "dir=%s error=\"%s\"", sqlite_dir, strerror(errno));
            sqlite_dir[0] = 0;
            goto done;
        }
        snprintf(sqlite_path, sizeof sqlite_path, "%s/bench.db", sqlite_dir);
        char why[512];
        sqlite3 *db = s_sqlite_open(sqlite_path, why, sizeof why);
        if (!db || s_sqlite_exec(db, s_sqlite_schema, why, sizeof why) < 0) {
            log_error("bench.sqlite", "path=%s error=\"%s\"", sqlite_path, why);
            sqlite3_close(db);
            goto done;
        }
        sqlite3_close(db);
    }

    s_shared sh;
    memset(&sh, 0, sizeof sh);
    sh.plan = plan;
    atomic_init(&sh.next, 0);
    atomic_init(&sh.setup_failed, 0);
    sh.res = res;
    pthread_mutex_init(&sh.mu, NULL);
    pthread_mutex_init(&sh.writer, NULL);
    pthread_barrier_init(&sh.barrier, NULL, (unsigned)nclients + 1);
    s_bclient *bc = calloc((size_t)nclients, sizeof *bc);
    s_sclient *sc = calloc((size_t)nclients, sizeof *sc);
    pthread_t *th = calloc((size_t)nclients, sizeof *th);
    int started = 0;
    bool alloc_ok = bc && sc && th;
    for (int i = 0; alloc_ok && i < nclients; i++) {
        s_client *cl = eng != S_SQLITE ? &bc[i].base : &sc[i].base;
        cl->sh = &sh;
        cl->index = i;
        cl->lat_us = calloc(plan->nbatches + 1, sizeof *cl->lat_us);
        if (!cl->lat_us) {
            alloc_ok = false;
            break;
        }
        int e;
        if (eng != S_SQLITE) {
            bc[i].ctx = ctx;
            bc[i].endpoint = endpoint;
            bc[i].bufs = bufs;
            bc[i].direct = eng == S_STORE;
            e = pthread_create(&th[i], NULL, s_bulletin_client, &bc[i]);
        } else {
            sc[i].path = sqlite_path;
            sc[i].corpus = corpus;
            e = pthread_create(&th[i], NULL, s_sqlite_client, &sc[i]);
        }
        if (e != 0) {
            free(cl->lat_us);
            cl->lat_us = NULL;
            alloc_ok = false;
            break;
        }
        started++;
    }
    if (started == nclients) {
        /* the time limit counts from the release of the clients */
        /* the store's counters are cumulative (a store given without --spawn has a past):
         * take them before and after */
        if (eng != S_SQLITE)
            s_store_stats(ctx, store_ep, &before);
        double c0 = bench_self_cpu_us(), i0 = bench_proc_cpu_us(sk.ingest_pid),
               s0 = bench_proc_cpu_us(sk.store_pid);
        sh.t_start = clock_mono_us();
        pthread_barrier_wait(&sh.barrier);
        for (int i = 0; i < nclients; i++)
            pthread_join(th[i], NULL);
        res->cpu_client_us = bench_cpu_delta(c0, bench_self_cpu_us());
        res->cpu_ingest_us = bench_cpu_delta(i0, bench_proc_cpu_us(sk.ingest_pid));
        res->cpu_store_us = bench_cpu_delta(s0, bench_proc_cpu_us(sk.store_pid));
        int bad = atomic_load(&sh.setup_failed);
        if (bad == 0) {
            res->ran = true;
            rc = 0;
        } else {
            log_error("bench.run", "engine=%s msg=\"%d of %d clients could not start; the "
                      "configuration is not measured\"", s_engine_name[eng], bad, nclients);
        }
    } else {
        log_error("bench.run", "msg=\"could not start %d client threads\"", nclients);
        /* threads that started wait at the barrier forever: abandon the run */
        if (started > 0)
            exit(1);
    }
    for (int i = 0; i < nclients && bc && sc; i++)
        free(eng != S_SQLITE ? bc[i].base.lat_us : sc[i].base.lat_us);
    free(bc);
    free(sc);
    free(th);
    pthread_barrier_destroy(&sh.barrier);
    pthread_mutex_destroy(&sh.mu);
    pthread_mutex_destroy(&sh.writer);
    if (rc == 0 && eng != S_SQLITE) {
        s_store_stats(ctx, store_ep, res);
        if (res->commits >= 0 && before.commits >= 0 && res->ops_committed >= 0 &&
            before.ops_committed >= 0) {
            res->commits -= before.commits;
            res->ops_committed -= before.ops_committed;
        } else {
            res->commits = res->ops_committed = -1;
        }
    }

done:
    if (eng != S_SQLITE)
        s_stack_stop(&sk);
    s_bufs_free(bufs, plan->nbatches);
    if (sqlite_dir[0]) {
        if (o_keep)
            log_info("bench.keep", "dir=%s", sqlite_dir);
        else
            bench_rm_rf(sqlite_dir);
    }
    return rc;
}

/* ------------------------------------------------------------------------- */
/* report                                                                     */

/* Nearest-rank percentile of sorted v[0..n). */
static double s_pct_ms(const int64_t *v, size_t n, double p)
{
    return bench_pct(v, n, p / 100.0) / 1000.0;
}

static double s_rate(const s_result *r)
{
    return r->wall_us > 0 ? (double)r->ok_articles * 1e6 / (double)r->wall_us : 0;
}

/* Filesystem type, device and options of the mount that holds `dir`. */
static void s_filesystem(const char *dir, char *out, size_t cap)
{
    char real[PATH_MAX];
    snprintf(out, cap, "unknown");
    if (!realpath(dir, real))
        return;
    FILE *f = fopen("/proc/self/mounts", "r");
    if (!f)
        return;
    char dev[256], mnt[PATH_MAX], type[64], opts[512];
    size_t best = 0;
    while (fscanf(f, "%255s %4095s %63s %511s %*d %*d", dev, mnt, type, opts) == 4) {
        size_t l = strlen(mnt);
        bool under = !strncmp(real, mnt, l) && (real[l] == '/' || real[l] == 0 || l == 1);
        if (under && l >= best) {
            best = l;
            if (snprintf(out, cap, "%s (%s on %s, %.80s)", type, dev, mnt, opts) >= (int)cap)
                out[cap - 1] = 0;
        }
    }
    fclose(f);
}

#define S_MAX_REPEAT 9

typedef struct {
    size_t batch;
    int clients;
    s_result r[S_NENGINES];          /* the median run (errors: summed over all runs) */
    double rate_min[S_NENGINES], rate_max[S_NENGINES];
    int nruns[S_NENGINES];            /* runs that completed */
    s_result runs[S_NENGINES][S_MAX_REPEAT];
} s_row;

static void s_report(FILE *out, const s_row *rows, size_t nrows, const s_corpus *c,
                     const char *load_before, const char *load_after)
{
    char model[256], kernel[300], fs[PATH_MAX + 300], date[64];
    bench_machine(model, sizeof model, kernel, sizeof kernel);
    if (!kernel[0])
        snprintf(kernel, sizeof kernel, "unknown");
    s_filesystem(o_data_dir, fs, sizeof fs);
    clock_format_rfc3339(clock_now_ms(), date, sizeof date);
    int zmaj, zmin, zpat;
    zmq_version(&zmaj, &zmin, &zpat);

    fprintf(out, "## Ingest benchmark — %s\n\n", date);
    fprintf(out, "- machine: %ld CPUs (nproc), %s, %s\n", sysconf(_SC_NPROCESSORS_ONLN),
            model[0] ? model : "unknown CPU", kernel);
    fprintf(out, "- data dir: %s — filesystem %s\n", o_data_dir, fs);
    fprintf(out, "- load average before / after: %s / %s\n", load_before, load_after);
    fprintf(out, "- libzmq %d.%d.%d, SQLite %s (WAL, synchronous=FULL, one connection per client, "
            "%s)\n", zmaj, zmin, zpat, sqlite3_libversion(),
            o_sqlite_serialize ? "writers serialized by an in-process mutex (--sqlite-serialize)"
                               : "writers wait in SQLite's busy handler, busy_timeout 60 s");
    fprintf(out, "- corpus: %s — %zu articles loaded (%.1f MB of text) from %zu lines; skipped: "
            "%zu bad JSON, %zu bad date, %zu date before 1990 or in the future, %zu empty/long "
            "title, %zu too big, %zu duplicate/empty key\n",
            o_corpus, c->n, (double)c->text_bytes / 1e6, c->lines, c->bad_json, c->bad_date,
            c->out_of_range, c->bad_title, c->too_big, c->dup_key);
    fprintf(out, "- limits: batch 1: %lld articles or %lld s; larger batches: %lld articles or %lld s "
            "(whichever first); Bulletin %s; %lld run(s) per configuration and engine, interleaved%s\n\n",
            o_small_articles, o_small_seconds, o_articles, o_seconds,
            o_spawn ? "on a fresh store per run (--spawn)" : "at the given endpoints", o_repeat,
            o_repeat > 1 ? " (the median run is shown; articles/s range in parentheses)" : "");

    fprintf(out, "| engine | batch | clients | articles | errors | articles/s | p50 ms | p99 ms "
                 "| max ms | Bulletin/SQLite articles/s | Bulletin/SQLite p99 |\n");
    fprintf(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < nrows; i++) {
        for (int e = 0; e < S_NENGINES; e++) {
            const s_result *r = &rows[i].r[e];
            if (r->failed)
                fprintf(out, "| %s | %zu | %d | — | — | failed (see the log) | | | | | |\n",
                        s_engine_name[e], rows[i].batch, rows[i].clients);
            if (!r->ran)
                continue;
            qsort(r->lat_us, r->nlat, sizeof *r->lat_us, bench_cmp_i64);
            char ratio[32] = "", pratio[32] = "";
            const s_result *q = &rows[i].r[S_SQLITE];
            if (e != S_SQLITE && q->ran && s_rate(q) > 0) {
                snprintf(ratio, sizeof ratio, "%.2fx", s_rate(r) / s_rate(q));
                double p99s = s_pct_ms(q->lat_us, q->nlat, 99);
                if (p99s > 0)
                    snprintf(pratio, sizeof pratio, "%.2fx", s_pct_ms(r->lat_us, r->nlat, 99) / p99s);
            }
            char rate[96];
            if (rows[i].nruns[e] > 1)
                snprintf(rate, sizeof rate, "%.0f (%.0f–%.0f)", s_rate(r), rows[i].rate_min[e],
                         rows[i].rate_max[e]);
            else
                snprintf(rate, sizeof rate, "%.0f", s_rate(r));
            fprintf(out, "| %s | %zu | %d | %zu | %zu | %s | %.2f | %.2f | %.2f | %s | %s |\n",
                    s_engine_name[e], rows[i].batch, rows[i].clients, r->ok_articles,
                    r->err_articles, rate, s_pct_ms(r->lat_us, r->nlat, 50),
                    s_pct_ms(r->lat_us, r->nlat, 99), s_pct_ms(r->lat_us, r->nlat, 100), ratio,
                    pratio);
        }
    }

    fprintf(out, "\nWhere the time goes: group commits (store Stats) and CPU time (user + "
                 "system) per acknowledged article of each process during the run; busy = all "
                 "that CPU / (wall time x %ld CPUs):\n\n", sysconf(_SC_NPROCESSORS_ONLN));
    fprintf(out, "| engine | batch | clients | commits | articles per commit | commits/s | CPU us/article: "
                 "bench client | ingest | store | busy |\n"
                 "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < nrows; i++) {
        for (int e = 0; e < S_NENGINES; e++) {
            const s_result *r = &rows[i].r[e];
            if (!r->ran || r->ok_articles == 0)
                continue;
            char commits[32] = "", per[32] = "", cps[32] = "", cc[32] = "", ci[32] = "",
                 cs[32] = "", busy[32] = "";
            double a = (double)r->ok_articles, total = 0;
            if (r->commits > 0) {
                snprintf(commits, sizeof commits, "%.0f", r->commits);
                snprintf(per, sizeof per, "%.1f", r->ops_committed > 0 ? r->ops_committed / r->commits : 0);
                snprintf(cps, sizeof cps, "%.0f", r->wall_us > 0 ? r->commits * 1e6 / (double)r->wall_us : 0);
            } else if (e == S_SQLITE) {
                snprintf(commits, sizeof commits, "%zu", r->requests - r->failed_requests);
                snprintf(per, sizeof per, "%zu", rows[i].batch);
                snprintf(cps, sizeof cps, "%.0f", r->wall_us > 0 ? (double)(r->requests - r->failed_requests) * 1e6 / (double)r->wall_us : 0);
            }
            if (r->cpu_client_us >= 0) {
                snprintf(cc, sizeof cc, "%.1f", r->cpu_client_us / a);
                total += r->cpu_client_us;
            }
            if (r->cpu_ingest_us >= 0) {
                snprintf(ci, sizeof ci, "%.1f", r->cpu_ingest_us / a);
                total += r->cpu_ingest_us;
            }
            if (r->cpu_store_us >= 0) {
                snprintf(cs, sizeof cs, "%.1f", r->cpu_store_us / a);
                total += r->cpu_store_us;
            }
            if (r->wall_us > 0)
                snprintf(busy, sizeof busy, "%.0f%%",
                         100.0 * total / ((double)r->wall_us * (double)sysconf(_SC_NPROCESSORS_ONLN)));
            fprintf(out, "| %s | %zu | %d | %s | %s | %s | %s | %s | %s | %s |\n", s_engine_name[e],
                    rows[i].batch, rows[i].clients, commits, per, cps, cc, ci, cs, busy);
        }
    }

    fprintf(out, "\nTargets:\n\n");
    for (size_t i = 0; i < nrows; i++) {
        const s_result *b = &rows[i].r[S_BULLETIN], *q = &rows[i].r[S_SQLITE];
        if (rows[i].batch == 1000 && b->ran)
            fprintf(out, "- batch 1000, %d client(s): %.0f articles/s, target >= 100000: %s\n",
                    rows[i].clients, s_rate(b), s_rate(b) >= 100000 ? "met" : "MISSED");
        if (rows[i].batch == 1 && rows[i].clients == 8 && b->ran && q->ran && s_rate(q) > 0)
            fprintf(out, "- batch 1, 8 clients: %.2fx SQLite, target >= 3x: %s\n",
                    s_rate(b) / s_rate(q), s_rate(b) >= 3 * s_rate(q) ? "met" : "MISSED");
    }
    size_t errs = 0, failed = 0;
    for (size_t i = 0; i < nrows; i++)
        for (int e = 0; e < S_NENGINES; e++) {
            errs += rows[i].r[e].err_articles;
            failed += rows[i].r[e].failed;
        }
    if (failed)
        fprintf(out, "\nConfigurations that could not run: %zu (see the log)\n", failed);
    fprintf(out, "\nErrors (articles not acknowledged as CREATED / not committed): %zu\n\n", errs);
}

/* For every row and engine: r = the run with the median rate (errors summed
 * over all runs, so none is hidden), the range of rates, and the other runs'
 * latencies freed. An engine with no completed run is "failed" if any was
 * attempted. */
static void s_pick_medians(s_row *rows, size_t nrows, int repeat)
{
    for (size_t i = 0; i < nrows; i++) {
        for (int e = 0; e < S_NENGINES; e++) {
            s_row *row = &rows[i];
            int ok[S_MAX_REPEAT], n = 0;
            bool attempted = false;
            size_t errs = 0;
            for (int k = 0; k < repeat; k++) {
                s_result *r = &row->runs[e][k];
                attempted |= r->ran || r->failed;
                errs += r->err_articles;
                if (r->ran)
                    ok[n++] = k;
            }
            /* sort the completed runs by rate (n <= 9: insertion sort) */
            for (int a = 1; a < n; a++)
                for (int b = a; b > 0 && s_rate(&row->runs[e][ok[b]]) <
                                             s_rate(&row->runs[e][ok[b - 1]]); b--) {
                    int t = ok[b];
                    ok[b] = ok[b - 1];
                    ok[b - 1] = t;
                }
            memset(&row->r[e], 0, sizeof row->r[e]);
            row->nruns[e] = n;
            if (n == 0) {
                row->r[e].failed = attempted;
                row->r[e].err_articles = errs;
                for (int k = 0; k < repeat; k++)
                    free(row->runs[e][k].lat_us);
                continue;
            }
            int med = ok[(n - 1) / 2];
            row->rate_min[e] = s_rate(&row->runs[e][ok[0]]);
            row->rate_max[e] = s_rate(&row->runs[e][ok[n - 1]]);
            row->r[e] = row->runs[e][med];
            row->r[e].err_articles = errs;
            for (int k = 0; k < repeat; k++)
                if (k != med)
                    free(row->runs[e][k].lat_us);
            memset(row->runs[e], 0, sizeof row->runs[e]);
        }
    }
}

/* ------------------------------------------------------------------------- */

static int s_parse_list(const char *text, long long *out, int cap, const char *what)
{
    int n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (errno || end == p || v <= 0 || n == cap || (*end && *end != ',')) {
            fprintf(stderr, "bulletin-bench-ingest: --%s: '%s' is not a list of positive integers "
                            "(at most %d)\n", what, text, cap);
            return -1;
        }
        out[n++] = v;
        p = *end ? end + 1 : end;
    }
    if (n == 0) {
        fprintf(stderr, "bulletin-bench-ingest: --%s is empty\n", what);
        return -1;
    }
    return n;
}

int main(int argc, char **argv)
{
    log_init("bench");
    switch (cfg_parse("bulletin-bench-ingest",
                      "End-to-end write benchmark: bulletin-ingest -> bulletin-store with durable "
                      "commits, against SQLite (WAL, synchronous=FULL) on the same articles and "
                      "batches. Prints a markdown report on stdout.",
                      s_opts, S_NOPTS, argc, argv)) {
    case CFG_HELP:
        return 0;
    case CFG_ERROR:
        return 2;
    }
    long long batches[16], clients[16];
    int nb = s_parse_list(o_batches, batches, 16, "batches");
    int nc = s_parse_list(o_clients, clients, 16, "clients");
    if (nb < 0 || nc < 0)
        return 2;
    bool run[S_NENGINES] = {strstr(o_engines, "bulletin") != NULL,
                            strstr(o_engines, "store") != NULL,
                            strstr(o_engines, "sqlite") != NULL};
    if (!run[S_BULLETIN] && !run[S_STORE] && !run[S_SQLITE]) {
        fprintf(stderr, "bulletin-bench-ingest: --engines must name bulletin, store and/or sqlite\n");
        return 2;
    }
    if (o_articles <= 0 || o_small_articles <= 0 || o_seconds <= 0 || o_small_seconds <= 0 ||
        o_timeout_ms <= 0) {
        fprintf(stderr, "bulletin-bench-ingest: limits must be positive\n");
        return 2;
    }
    if (o_repeat < 1 || o_repeat > S_MAX_REPEAT) {
        fprintf(stderr, "bulletin-bench-ingest: --repeat must be 1..%d\n", S_MAX_REPEAT);
        return 2;
    }
    for (int i = 0; i < nc; i++)
        if (clients[i] > 256) {
            fprintf(stderr, "bulletin-bench-ingest: at most 256 clients\n");
            return 2;
        }
    for (int i = 0; i < nb; i++)
        if (batches[i] > 10000) {
            fprintf(stderr, "bulletin-bench-ingest: batches of at most 10000 (the ingest limit)\n");
            return 2;
        }
    struct stat dst;
    if (stat(o_data_dir, &dst) != 0 || !S_ISDIR(dst.st_mode)) {
        fprintf(stderr, "bulletin-bench-ingest: --data-dir %s is not a directory\n", o_data_dir);
        return 2;
    }
    char bin_dir[PATH_MAX];
    if (o_bin_dir) {
        snprintf(bin_dir, sizeof bin_dir, "%s", o_bin_dir);
    } else {
        ssize_t n = readlink("/proc/self/exe", bin_dir, sizeof bin_dir - 1);
        bin_dir[n > 0 ? n : 0] = 0;
        char *slash = strrchr(bin_dir, '/');
        if (slash)
            *slash = 0;
        else
            snprintf(bin_dir, sizeof bin_dir, ".");
    }

    size_t want = (size_t)(o_articles > o_small_articles ? o_articles : o_small_articles);
    s_corpus corpus;
    int64_t t = clock_mono_us();
    if (s_corpus_load(&corpus, o_corpus, want) < 0)
        return 1;
    log_info("bench.corpus", "path=%s articles=%zu lines=%zu ms=%" PRId64, o_corpus, corpus.n,
             corpus.lines, (clock_mono_us() - t) / 1000);
    if (corpus.n < want)
        log_warn("bench.corpus", "msg=\"fewer usable articles than asked\" want=%zu have=%zu", want,
                 corpus.n);
    if (corpus.n == 0) {
        log_error("bench.corpus", "msg=\"no usable article\" path=%s", o_corpus);
        return 1;
    }

    char load_before[128], load_after[128];
    bench_loadavg(load_before, sizeof load_before, "unknown");

    void *ctx = zmq_ctx_new();
    if (!ctx) {
        log_error("bench.zmq", "error=\"%s\"", zmq_strerror(errno));
        return 1;
    }
    /* Without --spawn the keys must be new to the store: prefix them with a run tag. */
    char tag[64] = "";
    s_row *rows = calloc((size_t)(nb * nc), sizeof *rows);
    if (!rows)
        return 1;
    size_t nrows = 0;
    int failures = 0;
    for (int bi = 0; bi < nb; bi++)
        for (int ci = 0; ci < nc; ci++) {
            rows[nrows].batch = (size_t)batches[bi];
            rows[nrows++].clients = (int)clients[ci];
        }
    for (int rp = 0; rp < (int)o_repeat; rp++) {
        for (size_t ri = 0; ri < nrows; ri++) {
            s_row *row = &rows[ri];
            if (!o_spawn)
                snprintf(tag, sizeof tag, "bench-%" PRId64 "-b%zu-c%d/", clock_now_ms(), row->batch,
                         row->clients);
            s_plan plan = {0};
            plan.batch = row->batch;
            size_t lim = (size_t)(row->batch == 1 ? o_small_articles : o_articles);
            plan.limit = lim < corpus.n ? lim : corpus.n;
            plan.nbatches = (plan.limit + plan.batch - 1) / plan.batch;
            plan.time_limit_us = (row->batch == 1 ? o_small_seconds : o_seconds) * 1000000LL;
            plan.key_prefix = tag;
            for (int e = 0; e < S_NENGINES; e++) {
                if (!run[e])
                    continue;
                log_info("bench.run", "engine=%s batch=%zu clients=%d limit=%zu run=%d/%lld",
                         s_engine_name[e], plan.batch, row->clients, plan.limit, rp + 1, o_repeat);
                s_result *r = &row->runs[e][rp];
                if (s_run((s_engine)e, &corpus, &plan, row->clients, ctx, bin_dir, r) < 0) {
                    r->failed = true;
                    failures++;
                    continue;
                }
                log_info("bench.done", "engine=%s batch=%zu clients=%d articles=%zu errors=%zu "
                         "wall_ms=%.1f rate=%.0f", s_engine_name[e], plan.batch, row->clients,
                         r->ok_articles, r->err_articles, (double)r->wall_us / 1000, s_rate(r));
            }
        }
    }
    s_pick_medians(rows, nrows, (int)o_repeat);
    bench_loadavg(load_after, sizeof load_after, "unknown");
    s_report(stdout, rows, nrows, &corpus, load_before, load_after);
    if (o_out) {
        FILE *f = fopen(o_out, "w");
        if (f) {
            s_report(f, rows, nrows, &corpus, load_before, load_after);
            fclose(f);
        } else {
            log_error("bench.out", "path=%s error=\"%s\"", o_out, strerror(errno));
        }
    }
    size_t errs = 0;
    for (size_t i = 0; i < nrows; i++)
        for (int e = 0; e < S_NENGINES; e++) {
            errs += rows[i].r[e].err_articles;
            free(rows[i].r[e].lat_us);
        }
    free(rows);
    s_corpus_free(&corpus);
    zmq_ctx_term(ctx);
    return failures || errs ? 1 : 0;
}
