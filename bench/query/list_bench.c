/*
 * list_bench: the read-tier benchmark. List through the query broker against an
 * indexed SQLite query and against the empty-handler floor, in the same run.
 *
 *   corpus JSONL ─load─▶ articles[] ─ingest (batches of 1000)─▶ fresh store ──Sync/feed──▶ workers
 *                              │                                                   ▲
 *                              └──────▶ SQLite file (same articles)        broker ─┘
 *
 * Phases, all on one fresh stack spawned on free loopback ports (temp data
 * dirs under --data-dir, HTTP endpoints on free ports):
 *
 *   1. load   bulletin-store + bulletin-ingest; the corpus is ingested in
 *             batches of 1000 by one client; the highest seq is kept.
 *   2. boot   replica bootstrap: a fresh bulletin-worker syncs everything from
 *             seq 0. The bench binds its own ROUTER as the "broker": a worker
 *             sends READY only after its first Sync finished, so spawn -> READY
 *             is the bootstrap time (once per --sync-max-changes value).
 *   3. sqlite the same articles in one SQLite table with an index on
 *             (category, published_at DESC, id DESC); a page is one keyset
 *             query ((published_at, id) < last row's, LIMIT 20).
 *   4. list   for 1 and 2 workers: bulletin-query + N bulletin-workers. First a
 *             verification pass walks every category's pages with the cursors of
 *             the replies (min_seq = the highest seq) and compares the keys of
 *             every page with SQLite's; the cursors are kept, so that each query
 *             of the query set ("category, page k") is one request. Then C
 *             client threads (each its own DEALER, closed loop) send the query
 *             set round-robin for --seconds.
 *   5. empty  the same with N empty-handler workers: this program started with
 *             --fake-worker, a process that speaks the worker protocol of
 *             services/query/broker.h, decodes and checks each Request as
 *             bulletin-worker does, and answers an empty ListReply without
 *             any storage: the transport floor of the same request path.
 *
 * CPU per request: user+system time of the broker and of the workers
 * (/proc/PID/stat, all threads) before and after each run, divided by the
 * requests answered in it. Pinning (sched_setaffinity in the child before
 * exec, pthread affinity for the client threads): --client-cpus for this
 * program's client threads, its ZeroMQ I/O thread and the broker;
 * --worker-cpus for the workers (real or empty). SQLite threads run on all CPUs.
 *
 * Output: a markdown report on stdout (and --out); progress as key=value log
 * lines on stderr.
 */
#include "bench_common.h"
#include "broker.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "wire.h"
#include "zio.h"

#include "bulletin.pb-c.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------- */
/* configuration                                                              */

static const char *o_corpus, *o_queries, *o_workers, *o_clients, *o_engines, *o_data_dir,
    *o_bin_dir, *o_out, *o_client_cpus, *o_worker_cpus, *o_sync_max, *o_fake_worker,
    *o_fake_name, *o_transport, *o_search_bench, *o_broker_cpus, *o_baseline_threads;
static long long o_articles, o_seconds, o_credit, o_page, o_timeout_ms, o_fake_seq, o_inflight;
static bool o_keep, o_no_bootstrap, o_search, o_zh, o_no_baselines, o_fake_no_batch;

static const cfg_option s_opts[] = {
    {"corpus", "BULLETIN_BENCH_CORPUS", CFG_STR, "/tmp/corpus/en.jsonl",
     "corpus JSON Lines file (key, title, body, category, site, published_at)", &o_corpus},
    {"queries", "BULLETIN_BENCH_QUERIES", CFG_STR, "/tmp/corpus/queries/en.list.jsonl",
     "list query set: one {\"category\", \"page\"} per line (newest first)", &o_queries},
    {"articles", "BULLETIN_BENCH_ARTICLES", CFG_INT, "0",
     "articles to load from the start of the corpus (0 = all)", &o_articles},
    {"workers", "BULLETIN_BENCH_WORKERS", CFG_STR, "1,2",
     "comma-separated numbers of workers behind the broker", &o_workers},
    {"clients", "BULLETIN_BENCH_CLIENTS", CFG_STR, "1,2,4,8,16",
     "comma-separated numbers of concurrent clients (closed loop, one DEALER each)",
     &o_clients},
    {"engines", "BULLETIN_BENCH_ENGINES", CFG_STR, "bulletin,empty,sqlite",
     "what to measure: bulletin (broker + bulletin-worker), empty (broker + empty-handler "
     "workers: the transport floor), sqlite (in-process indexed query)", &o_engines},
    {"seconds", "BULLETIN_BENCH_SECONDS", CFG_INT, "4", "measuring time per configuration",
     &o_seconds},
    {"page", "BULLETIN_BENCH_PAGE", CFG_INT, "20", "page size (limit) of every List",
     &o_page},
    {"inflight", "BULLETIN_BENCH_INFLIGHT", CFG_INT, "1",
     "requests each client keeps in flight on its one DEALER (1 = closed loop; more = a client "
     "that pipelines, matching replies by request_id)", &o_inflight},
    {"credit", "BULLETIN_BENCH_CREDIT", CFG_INT, "16",
     "--credit of every worker (requests the broker may send it before an answer; 16 = bulletin-worker's default)", &o_credit},
    {"client-cpus", "BULLETIN_BENCH_CLIENT_CPUS", CFG_STR, "0",
     "CPUs (comma-separated) for the client threads and the broker; \"\" = no pinning",
     &o_client_cpus},
    {"broker-cpus", "BULLETIN_BENCH_BROKER_CPUS", CFG_STR, "same",
     "CPUs (comma-separated) for bulletin-query; \"same\" = the client CPUs, \"\" = no pinning "
     "(e.g. 0 with --client-cpus 1: the broker alone on a core, to measure its capacity)",
     &o_broker_cpus},
    {"worker-cpus", "BULLETIN_BENCH_WORKER_CPUS", CFG_STR, "1",
     "CPUs (comma-separated) for the workers (real and empty); \"\" = no pinning",
     &o_worker_cpus},
    {"sync-max-changes", "BULLETIN_BENCH_SYNC_MAX", CFG_STR, "100000",
     "bootstrap runs: one fresh worker per value of its --sync-max-changes (0 = store "
     "default)", &o_sync_max},
    {"transport", "BULLETIN_BENCH_TRANSPORT", CFG_STR, "tcp",
     "broker endpoints (clients and workers): tcp (loopback ports) or ipc (Unix domain "
     "sockets: the cheaper choice when clients or workers share the broker's host)",
     &o_transport},
    {"no-bootstrap", "BULLETIN_BENCH_NO_BOOTSTRAP", CFG_BOOL, NULL,
     "skip the replica bootstrap measurement", &o_no_bootstrap},
    {"fake-no-batch", "BULLETIN_BENCH_FAKE_NO_BATCH", CFG_BOOL, NULL,
     "the empty-handler workers register without the flags frame (one REQUEST/REPLY message per "
     "request, as workers before REQUESTS/REPLIES; also what a broker before them accepts)", &o_fake_no_batch},
    {"search", "BULLETIN_BENCH_SEARCH", CFG_BOOL, NULL,
     "measure Search instead of List: --queries is a search query set ({\"type\", "
     "\"groups\"} per line, e.g. /tmp/corpus/queries/en.search.jsonl), top 10; the "
     "bootstrap is the replica's catch-up including its index build (and the index size); "
     "the baselines are SQLite FTS5 and Xapian in-process (bulletin-bench-search --skip-ours)",
     &o_search},
    {"zh", "BULLETIN_BENCH_ZH", CFG_BOOL, NULL,
     "--search on the Chinese corpus: a query group of overlapping bigrams is sent as its "
     "character run; the baselines get --zh", &o_zh},
    {"search-bench", "BULLETIN_BENCH_SEARCH_BENCH", CFG_STR, NULL,
     "--search: the bulletin-bench-search program for the FTS5/Xapian baselines (default: "
     "next to this program)", &o_search_bench},
    {"no-baselines", "BULLETIN_BENCH_NO_BASELINES", CFG_BOOL, NULL,
     "--search: do not run the FTS5/Xapian baselines", &o_no_baselines},
    {"baseline-threads", "BULLETIN_BENCH_BASELINE_THREADS", CFG_STR, "1",
     "--search: the baselines' query phase once per thread count in this list (e.g. 1,2; "
     "bulletin-bench-search --query-threads, on the indexes of the first run); the ratios "
     "compare with 1 thread and with the highest count", &o_baseline_threads},
    {"data-dir", "BULLETIN_BENCH_DATA_DIR", CFG_STR, "/tmp",
     "where the temp data dirs (store, workers, SQLite file) go", &o_data_dir},
    {"bin-dir", "BULLETIN_BENCH_BIN_DIR", CFG_STR, NULL,
     "where bulletin-store, -ingest, -query and -worker are (default: next to this program)",
     &o_bin_dir},
    {"timeout-ms", "BULLETIN_BENCH_TIMEOUT_MS", CFG_INT, "10000",
     "a request without a reply after this long is an error and stops its client",
     &o_timeout_ms},
    {"out", "BULLETIN_BENCH_OUT", CFG_STR, NULL, "also write the markdown report to this file",
     &o_out},
    {"keep", "BULLETIN_BENCH_KEEP", CFG_BOOL, NULL,
     "keep the temp data dirs and service logs (their paths are logged)", &o_keep},
    {"fake-worker", NULL, CFG_STR, NULL,
     "internal: run as an empty-handler worker connected to this broker worker endpoint "
     "(the bench starts these itself)", &o_fake_worker},
    {"fake-name", NULL, CFG_STR, "empty", "internal: the empty-handler worker's name",
     &o_fake_name},
    {"fake-seq", NULL, CFG_INT, "0", "internal: the applied seq the empty-handler worker reports",
     &o_fake_seq},
};
#define S_NOPTS (sizeof s_opts / sizeof s_opts[0])

#define S_MAX_CLIENTS 64
#define S_MAX_WORKERS 8
#define S_BATCH 1000

/* ------------------------------------------------------------------------- */
/* small helpers                                                              */

static void s_put_u64(uint8_t b[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        b[i] = (uint8_t)v;
}

static uint64_t s_get_u64(const void *p)
{
    const uint8_t *b = p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return v;
}

/* "0,1" -> cpu set; "" -> *any = true (no pinning). -1 on a bad list. */
static int s_cpus_parse(const char *text, cpu_set_t *set, bool *any)
{
    CPU_ZERO(set);
    *any = !text || !*text;
    if (*any)
        return 0;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    const char *p = text;
    while (*p) {
        char *end;
        long c = strtol(p, &end, 10);
        if (end == p || c < 0 || c >= ncpu || c >= CPU_SETSIZE)
            return -1;
        CPU_SET((int)c, set);
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return 0;
}

static int s_parse_list(const char *text, long long *out, int cap, const char *what, long long max)
{
    int n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || v > max || n == cap || (*end && *end != ',')) {
            fprintf(stderr, "bulletin-bench-list: --%s must be a comma-separated list of numbers "
                            "0..%lld (at most %d)\n", what, max, cap);
            return -1;
        }
        out[n++] = v;
        p = *end ? end + 1 : end;
    }
    return n;
}

/* ------------------------------------------------------------------------- */
/* corpus and query set                                                       */

typedef bench_article s_article; /* .id: assigned by the store; 0 = not written */

typedef struct {
    s_article *a;
    size_t n, cap, lines, skipped;
} s_corpus;

typedef struct {
    char *category;
    int page;
} s_query;

/* Read up to `want` articles (0 = all). Lines the ingest contract rejects
 * (bad date, out of range, empty or long title, huge body) are skipped here;
 * anything ingest still rejects is left out of SQLite too (see s_load). */
static int s_corpus_load(s_corpus *c, const char *path, size_t want)
{
    memset(c, 0, sizeof *c);
    FILE *f = bench_corpus_open(path);
    if (!f)
        return -1;
    int64_t max_ms = clock_now_ms() + 86400000LL;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((!want || c->n < want) && (len = getline(&line, &lcap, f)) > 0) {
        c->lines++;
        s_article a;
        if (bench_article_parse(line, (size_t)len, max_ms, &a) != BENCH_ART_OK) {
            c->skipped++;
            continue;
        }
        if (c->n == c->cap) {
            size_t nc = c->cap ? c->cap * 2 : 65536;
            s_article *na = realloc(c->a, nc * sizeof *na);
            if (!na) {
                bench_article_free(&a);
                free(line);
                fclose(f);
                log_error("bench.corpus", "error=\"out of memory\" articles=%zu", c->n);
                return -1;
            }
            c->a = na;
            c->cap = nc;
        }
        c->a[c->n++] = a;
    }
    free(line);
    fclose(f);
    return 0;
}

static void s_corpus_free(s_corpus *c)
{
    bench_articles_free(c->a, c->n);
    memset(c, 0, sizeof *c);
}

/* A query set from a JSON Lines file: each line longer than a newline is
 * parsed (o NULL when it is not JSON) and given to add(o, lineno, slot, path)
 * with a zeroed slot of `size` bytes at the end of *out (grown here; *n
 * counts the slots given, which the caller frees). add fills it and returns
 * 0, or -1 on a bad line (logged by add: reading stops). 0, or -1 when the
 * file cannot be read, add refused a line, memory ran out or the file has no
 * query (logged). */
static int s_queries_read(const char *path, size_t size,
                          int (*add)(json_t *o, size_t lineno, void *slot, const char *path),
                          void **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        log_error("bench.queries", "path=%s error=\"%s\"", path, strerror(errno));
        return -1;
    }
    size_t lineno = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    int rc = 0;
    while (rc == 0 && (len = getline(&line, &lcap, f)) > 0) {
        lineno++;
        if (len <= 1)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 256;
            void *na = realloc(*out, cap * size);
            if (!na) {
                log_error("bench.queries", "path=%s msg=\"out of memory\"", path);
                rc = -1;
                break;
            }
            *out = na;
        }
        void *slot = (char *)*out + *n * size;
        memset(slot, 0, size);
        (*n)++;
        json_error_t jerr;
        json_t *o = json_loadb(line, (size_t)len, 0, &jerr);
        rc = add(o, lineno, slot, path);
        json_decref(o);
    }
    free(line);
    fclose(f);
    if (rc == 0 && *n == 0) {
        log_error("bench.queries", "path=%s msg=\"no queries\"", path);
        rc = -1;
    }
    return rc;
}

static int s_query_add(json_t *o, size_t lineno, void *slot, const char *path)
{
    s_query *q = slot;
    json_t *cat = json_object_get(o, "category"), *page = json_object_get(o, "page");
    if (!json_is_string(cat) || !json_is_integer(page) || json_integer_value(page) < 0 ||
        json_integer_value(page) > 1000) {
        log_error("bench.queries", "path=%s line=%zu msg=\"need category (string) and page "
                  "(0..1000)\"", path, lineno);
        return -1;
    }
    q->category = strdup(json_string_value(cat));
    q->page = (int)json_integer_value(page);
    return q->category ? 0 : -1;
}

static int s_queries_load(const char *path, s_query **out, size_t *n)
{
    return s_queries_read(path, sizeof **out, s_query_add, (void **)out, n);
}

/* ------------------------------------------------------------------------- */
/* processes                                                                  */

/* Every online CPU (computed once; the main thread only). */
static const cpu_set_t *s_all_cpus(void)
{
    static cpu_set_t all;
    static bool done;
    if (!done) {
        bench_cpuset_all(&all);
        done = true;
    }
    return &all;
}

/* bench_spawn pinned to `cpus`, or to every CPU if any. */
static pid_t s_spawn(char *const argv[], const char *log_path, const cpu_set_t *cpus, bool any)
{
    return bench_spawn(argv, log_path, any ? s_all_cpus() : cpus);
}

/* ------------------------------------------------------------------------- */
/* request / reply                                                            */

static const char *s_status_text(const Bulletin__Reply *r)
{
    return r && r->status && r->status->message ? r->status->message : "";
}

/* A metric of a Stats reply, -1 if absent. */
static double s_metric(const Bulletin__Reply *r, const char *name)
{
    if (!r || r->body_case != BULLETIN__REPLY__BODY_STATS || !r->stats)
        return -1;
    for (size_t i = 0; i < r->stats->n_metrics; i++)
        if (r->stats->metrics[i]->name && !strcmp(r->stats->metrics[i]->name, name))
            return r->stats->metrics[i]->value;
    return -1;
}

/* req (its body set) with this version, request_id and min_seq, packed into
 * out (caller frees out->data). 0 or -1. */
static int s_pack_request(Bulletin__Request *req, uint64_t request_id, uint64_t min_seq,
                          ProtobufCBinaryData *out)
{
    req->version_major = WIRE_VERSION_MAJOR;
    req->version_minor = WIRE_VERSION_MINOR;
    req->request_id = request_id;
    req->min_seq = min_seq;
    return wire_pack_bytes(&req->base, out);
}

/* A List request for `category` after `cursor` (NULL = first page), packed. */
static int s_pack_list(const char *category, const uint8_t *cursor, size_t cursor_len,
                       uint64_t request_id, uint64_t min_seq, ProtobufCBinaryData *out)
{
    Bulletin__Filter f = BULLETIN__FILTER__INIT;
    f.category = (char *)category;
    Bulletin__ListRequest l = BULLETIN__LIST_REQUEST__INIT;
    l.filter = &f;
    l.limit = (uint32_t)o_page;
    l.cursor.data = (uint8_t *)cursor;
    l.cursor.len = cursor_len;
    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    req.body_case = BULLETIN__REQUEST__BODY_LIST;
    req.list = &l;
    return s_pack_request(&req, request_id, min_seq, out);
}

/* ------------------------------------------------------------------------- */
/* the empty-handler worker (--fake-worker)                                   */

/* The empty answer to one Request: decoded and its strings checked as
 * bulletin-worker does, then an empty ListReply (SearchReply for a Search):
 * everything but the storage. 0, or -1 when packing failed. */
static int s_fake_answer(const void *data, size_t len, zmq_msg_t *body)
{
    char why[256] = "";
    uint64_t rid = 0;
    wire_code code = BULLETIN__STATUS_CODE__OK;
    Bulletin__Request *req = wire_request_unpack(data, len, WIRE_BUDGET(len), &rid, &code, why, sizeof why);
    Bulletin__Reply rep;
    Bulletin__Status st;
    wire_reply_init(&rep, &st, rid);
    rep.served_by = (char *)o_fake_name;
    rep.applied_seq = (uint64_t)o_fake_seq;
    Bulletin__ListReply lr = BULLETIN__LIST_REPLY__INIT;
    Bulletin__SearchReply sr = BULLETIN__SEARCH_REPLY__INIT;
    if (!req) {
        st.code = code;
        st.message = why;
    } else if (wire_check_strings(&bulletin__request__descriptor, data, len, NULL, NULL) != 0) {
        st.code = BULLETIN__STATUS_CODE__INVALID_ARGUMENT;
        st.message = "a string is not valid UTF-8";
    } else if (req->body_case == BULLETIN__REQUEST__BODY_SEARCH) {
        rep.body_case = BULLETIN__REPLY__BODY_SEARCH;
        rep.search = &sr;
    } else {
        rep.body_case = BULLETIN__REPLY__BODY_LIST;
        rep.list = &lr;
    }
    int rc = wire_pack_zmq(&rep.base, body);
    wire_free(req);
    return rc;
}

/* Send the held answers as one REPLIES message. */
static void s_fake_flush(void *sock, zmq_msg_t *out, uint8_t (*tag)[8], int *nout)
{
    if (*nout == 0)
        return;
    uint8_t cmd = BROKER_REPLIES, seq[8];
    s_put_u64(seq, (uint64_t)o_fake_seq);
    int f = ZMQ_SNDMORE | ZMQ_DONTWAIT;
    int rc = zmq_send(sock, "", 0, f) < 0 || zmq_send(sock, &cmd, 1, f) < 0 || zmq_send(sock, seq, 8, f) < 0
                 ? -1
                 : 0;
    for (int i = 0; i < *nout && rc == 0; i++)
        if (zmq_send(sock, tag[i], 8, f) < 0 ||
            zmq_msg_send(&out[i], sock, i + 1 < *nout ? f : ZMQ_DONTWAIT) < 0)
            rc = -1;
    if (rc < 0)
        log_warn("fake.reply_lost", "replies=%d error=\"%s\"", *nout, zmq_strerror(errno));
    for (int i = 0; i < *nout; i++)
        zmq_msg_close(&out[i]);
    *nout = 0;
}

/* Speaks the worker side of broker.h: READY with credit (and
 * BROKER_FLAG_BATCH unless --fake-no-batch), HEARTBEAT every second, REPLY
 * to each REQUEST, one REPLIES for the REQUESTS read in one wake-up. */
static int s_fake_worker(void)
{
    int stop_fd = zio_signal_fd();
    void *ctx = zmq_ctx_new();
    if (stop_fd < 0 || !ctx) {
        log_error("fake.start", "error=\"cannot set up signals or ZeroMQ\"");
        return 1;
    }
    void *sock = NULL;
    const long long hb_ms = 1000, liveness = 3;
    int64_t next_hb = 0, expiry = 0;
    uint64_t answered = 0;
    int rc = 1;
    zmq_msg_t out[BROKER_CREDIT_MAX];
    uint8_t out_tag[BROKER_CREDIT_MAX][8];
    int nout = 0;
    for (;;) {
        int64_t now = clock_mono_ms();
        if (!sock || now >= expiry) {
            zio_close(&sock);
            sock = zio_socket(ctx, ZMQ_DEALER, 0, 16 << 20);
            if (!sock || zio_connect(sock, o_fake_worker) < 0) {
                log_error("fake.connect", "broker=%s", o_fake_worker);
                break;
            }
            uint8_t cmd = BROKER_READY, seq[8], credit[4], flags[4] = {0, 0, 0, BROKER_FLAG_BATCH};
            s_put_u64(seq, (uint64_t)o_fake_seq);
            uint32_t c = (uint32_t)o_credit;
            credit[0] = (uint8_t)(c >> 24), credit[1] = (uint8_t)(c >> 16),
            credit[2] = (uint8_t)(c >> 8), credit[3] = (uint8_t)c;
            if (zmq_send(sock, "", 0, ZMQ_SNDMORE) < 0 || zmq_send(sock, &cmd, 1, ZMQ_SNDMORE) < 0 ||
                zmq_send(sock, o_fake_name, strlen(o_fake_name), ZMQ_SNDMORE) < 0 ||
                zmq_send(sock, seq, 8, ZMQ_SNDMORE) < 0 ||
                zmq_send(sock, credit, 4, o_fake_no_batch ? 0 : ZMQ_SNDMORE) < 0 ||
                (!o_fake_no_batch && zmq_send(sock, flags, 4, 0) < 0))
                log_warn("fake.register", "error=\"%s\"", zmq_strerror(errno));
            expiry = now + hb_ms * liveness;
            next_hb = now + hb_ms;
            log_info("fake.register", "broker=%s name=%s credit=%lld", o_fake_worker, o_fake_name,
                     o_credit);
        }
        if (now >= next_hb) {
            uint8_t cmd = BROKER_HEARTBEAT, seq[8];
            s_put_u64(seq, (uint64_t)o_fake_seq);
            if (zmq_send(sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0 &&
                zmq_send(sock, &cmd, 1, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
                zmq_send(sock, seq, 8, ZMQ_DONTWAIT);
            next_hb = now + hb_ms;
        }
        zmq_pollitem_t it[2] = {{sock, 0, ZMQ_POLLIN, 0}, {NULL, stop_fd, ZMQ_POLLIN, 0}};
        int64_t wake = next_hb < expiry ? next_hb : expiry;
        int n = zmq_poll(it, 2, (long)(wake > now ? wake - now : 0));
        if (n < 0 && errno != EINTR) {
            log_error("fake.poll", "error=\"%s\"", zmq_strerror(errno));
            break;
        }
        if (it[1].revents & ZMQ_POLLIN) {
            rc = 0;
            break;
        }
        for (int k = 0; k < 64 && (it[0].revents & ZMQ_POLLIN); k++) {
            zmq_msg_t f[BROKER_FRAMES_MAX];
            int nf = 0;
            bool more = true, bad = false;
            while (more) {
                zmq_msg_t m;
                zmq_msg_init(&m);
                if (zmq_msg_recv(&m, sock, nf == 0 ? ZMQ_DONTWAIT : 0) < 0) {
                    zmq_msg_close(&m);
                    break;
                }
                more = zmq_msg_more(&m);
                if (nf < BROKER_FRAMES_MAX) {
                    zmq_msg_init(&f[nf]);
                    zmq_msg_move(&f[nf++], &m);
                } else {
                    bad = true;
                }
                zmq_msg_close(&m);
            }
            if (nf == 0)
                break;
            expiry = clock_mono_ms() + hb_ms * liveness;
            uint8_t cmd = nf >= 2 && zmq_msg_size(&f[1]) == 1 ? *(uint8_t *)zmq_msg_data(&f[1]) : 0;
            if (!bad && cmd == BROKER_REQUEST && nf == 4 && zmq_msg_size(&f[2]) == 8) {
                zmq_msg_t body;
                if (s_fake_answer(zmq_msg_data(&f[3]), zmq_msg_size(&f[3]), &body) == 0) {
                    uint8_t c3 = BROKER_REPLY, seq[8];
                    s_put_u64(seq, (uint64_t)o_fake_seq);
                    if (zmq_send(sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
                        zmq_send(sock, &c3, 1, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
                        zmq_send(sock, zmq_msg_data(&f[2]), 8, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
                        zmq_send(sock, seq, 8, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
                        zmq_msg_send(&body, sock, ZMQ_DONTWAIT) < 0)
                        log_warn("fake.reply_lost", "error=\"%s\"", zmq_strerror(errno));
                    zmq_msg_close(&body);
                }
                answered++;
            } else if (!bad && cmd == BROKER_REQUESTS && nf >= 4 && nf % 2 == 0) {
                for (int i = 2; i < nf; i += 2) {
                    if (zmq_msg_size(&f[i]) != 8)
                        continue;
                    if (nout == BROKER_CREDIT_MAX)
                        s_fake_flush(sock, out, out_tag, &nout);
                    if (s_fake_answer(zmq_msg_data(&f[i + 1]), zmq_msg_size(&f[i + 1]), &out[nout]) == 0)
                        memcpy(out_tag[nout++], zmq_msg_data(&f[i]), 8);
                    answered++;
                }
            } else if (!bad && cmd == BROKER_DISCONNECT) {
                expiry = 0; /* register again on a fresh socket */
            } else if (bad || cmd != BROKER_HEARTBEAT) {
                log_warn("fake.bad_broker_message", "cmd=%u frames=%d", cmd, nf);
            }
            for (int i = 0; i < nf; i++)
                zmq_msg_close(&f[i]);
            int ev = 0;
            size_t sz = sizeof ev;
            if (expiry == 0 || zmq_getsockopt(sock, ZMQ_EVENTS, &ev, &sz) < 0 || !(ev & ZMQ_POLLIN))
                break;
        }
        s_fake_flush(sock, out, out_tag, &nout); /* the answers of this wake-up, together */
    }
    if (sock) {
        uint8_t cmd = BROKER_DISCONNECT;
        zmq_send(sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(sock, &cmd, 1, ZMQ_DONTWAIT);
        int linger = 200;
        zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    }
    zio_close(&sock);
    zmq_ctx_term(ctx);
    close(stop_fd);
    log_info("fake.stop", "name=%s answered=%llu", o_fake_name, (unsigned long long)answered);
    return rc;
}

/* ------------------------------------------------------------------------- */
/* the stack                                                                  */

typedef struct {
    char dir[PATH_MAX];
    char bin[PATH_MAX];
    pid_t store_pid, ingest_pid, broker_pid, worker_pid[S_MAX_WORKERS];
    int nworkers;
    bool fake;
    double ready_s; /* spawn of the read tier to all workers registered with the highest seq */
    char store_ep[64], feed_ep[64], ingest_ep[64], front_ep[64], back_ep[64];
} s_stack;

static cpu_set_t s_client_set, s_worker_set, s_broker_set;
static bool s_client_any, s_worker_any, s_broker_any;

/* --broker-cpus as it was applied, for the report. */
static const char *s_broker_cpus_text(void)
{
    if (s_broker_any)
        return "any";
    return strcmp(o_broker_cpus, "same") == 0 ? o_client_cpus : o_broker_cpus;
}

static void s_path(char *out, size_t cap, const char *a, const char *b)
{
    if (snprintf(out, cap, "%s/%s", a, b) >= (int)cap)
        out[0] = 0;
}

/* Pin every thread of a running process (the store, for the bootstrap). */
static void s_pin_process(pid_t pid, const cpu_set_t *set, bool any)
{
    if (any || pid <= 0)
        return;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            sched_setaffinity((pid_t)atoi(e->d_name), sizeof *set, set);
    closedir(d);
}

static int s_store_start(s_stack *sk, void *ctx)
{
    int ports[5];
    if (bench_free_ports(ports, 5) < 0) {
        log_error("bench.spawn", "msg=\"no free loopback ports\"");
        return -1;
    }
    char bin[PATH_MAX], data[PATH_MAX], logp[PATH_MAX], bind_ep[64], shttp[32], ihttp[32];
    snprintf(sk->store_ep, sizeof sk->store_ep, "tcp://127.0.0.1:%d", ports[0]);
    snprintf(sk->feed_ep, sizeof sk->feed_ep, "tcp://127.0.0.1:%d", ports[1]);
    snprintf(sk->ingest_ep, sizeof sk->ingest_ep, "tcp://127.0.0.1:%d", ports[2]);
    snprintf(bind_ep, sizeof bind_ep, "tcp://127.0.0.1:%d", ports[2]);
    snprintf(shttp, sizeof shttp, "127.0.0.1:%d", ports[3]);
    snprintf(ihttp, sizeof ihttp, "127.0.0.1:%d", ports[4]);
    s_path(bin, sizeof bin, sk->bin, "bulletin-store");
    s_path(data, sizeof data, sk->dir, "store");
    s_path(logp, sizeof logp, sk->dir, "store.log");
    mkdir(data, 0755);
    char *sargv[] = {bin, "--data", data, "--bind", sk->store_ep, "--feed", sk->feed_ep, "--http",
                     shttp, NULL};
    if (bench_start_service(ctx, &sk->store_pid, sargv, logp,
                                s_all_cpus(), sk->store_ep, "bulletin-store", 10000) < 0)
        return -1;
    s_path(bin, sizeof bin, sk->bin, "bulletin-ingest");
    s_path(logp, sizeof logp, sk->dir, "ingest.log");
    char *iargv[] = {bin, "--bind", bind_ep, "--store", sk->store_ep, "--http", ihttp, NULL};
    if (bench_start_service(ctx, &sk->ingest_pid, iargv, logp,
                                s_all_cpus(), sk->ingest_ep, "bulletin-ingest", 10000) < 0)
        return -1;
    log_info("bench.spawn", "dir=%s store=%s ingest=%s store_pid=%d ingest_pid=%d", sk->dir,
             sk->store_ep, sk->ingest_ep, (int)sk->store_pid, (int)sk->ingest_pid);
    return 0;
}

static void s_workers_stop(s_stack *sk)
{
    for (int i = 0; i < sk->nworkers; i++)
        bench_stop(&sk->worker_pid[i], sk->fake ? "empty-worker" : "bulletin-worker", 10);
    sk->nworkers = 0;
    bench_stop(&sk->broker_pid, "bulletin-query", 10);
    const char *eps[] = {sk->front_ep, sk->back_ep};
    for (int i = 0; i < 2; i++) /* ipc: the broker's socket files */
        if (strncmp(eps[i], "ipc://", 6) == 0)
            unlink(eps[i] + 6);
}

/* Broker + n workers (fake = empty-handler workers), all registered. */
static int s_read_tier_start(s_stack *sk, void *ctx, int n, bool fake, uint64_t max_seq, int round)
{
    int ports[3];
    if (bench_free_ports(ports, 3) < 0)
        return -1;
    char bin[PATH_MAX], logp[PATH_MAX], fbind[64], bbind[64], http[32], name[32], data[PATH_MAX],
        sub[96], credit[24], seq[24], self[PATH_MAX];
    if (strcmp(o_transport, "ipc") == 0) {
        snprintf(sk->front_ep, sizeof sk->front_ep, "ipc:///tmp/bbench-%d-%d-front.sock",
                 (int)getpid(), round);
        snprintf(sk->back_ep, sizeof sk->back_ep, "ipc:///tmp/bbench-%d-%d-back.sock",
                 (int)getpid(), round);
    } else {
        snprintf(sk->front_ep, sizeof sk->front_ep, "tcp://127.0.0.1:%d", ports[0]);
        snprintf(sk->back_ep, sizeof sk->back_ep, "tcp://127.0.0.1:%d", ports[1]);
    }
    snprintf(fbind, sizeof fbind, "%s", sk->front_ep);
    snprintf(bbind, sizeof bbind, "%s", sk->back_ep);
    snprintf(http, sizeof http, "127.0.0.1:%d", ports[2]);
    s_path(bin, sizeof bin, sk->bin, "bulletin-query");
    snprintf(sub, sizeof sub, "broker-%d.log", round);
    s_path(logp, sizeof logp, sk->dir, sub);
    char *bargv[] = {bin, "--bind", fbind, "--workers", bbind, "--http", http, NULL};
    if (bench_start_service(ctx, &sk->broker_pid, bargv, logp,
                                s_broker_any ? s_all_cpus() : &s_broker_set, sk->front_ep,
                                "bulletin-query", 10000) < 0)
        return -1;
    sk->fake = fake;
    snprintf(credit, sizeof credit, "%lld", o_credit);
    snprintf(seq, sizeof seq, "%llu", (unsigned long long)max_seq);
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    self[sl > 0 ? sl : 0] = 0;
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s-%d", fake ? "empty" : "worker", i + 1);
        snprintf(sub, sizeof sub, "%s-r%d.log", name, round);
        s_path(logp, sizeof logp, sk->dir, sub);
        if (fake) {
            char *fargv[] = {self, "--fake-worker", sk->back_ep, "--fake-name", name, "--fake-seq",
                             seq, "--credit", credit, NULL};
            sk->worker_pid[i] = s_spawn(fargv, logp, &s_worker_set, s_worker_any);
        } else {
            snprintf(sub, sizeof sub, "%s-r%d", name, round);
            s_path(data, sizeof data, sk->dir, sub);
            mkdir(data, 0755);
            s_path(bin, sizeof bin, sk->bin, "bulletin-worker");
            char *wargv[] = {bin, "--broker", sk->back_ep, "--store", sk->store_ep, "--feed",
                             sk->feed_ep, "--data", data, "--name", name, "--credit", credit, NULL};
            sk->worker_pid[i] = s_spawn(wargv, logp, &s_worker_set, s_worker_any);
        }
        sk->nworkers = i + 1;
        if (sk->worker_pid[i] < 0)
            return -1;
    }
    /* registered: the broker counts n workers and the highest seq is there */
    void *s = zio_socket(ctx, ZMQ_DEALER, 0, 0);
    if (!s || zio_connect(s, sk->front_ep) < 0) {
        zio_close(&s);
        return -1;
    }
    int64_t t0 = clock_mono_ms(), deadline = t0 + 600000;
    int rc = -1;
    char why[256] = "";
    while (clock_mono_ms() < deadline) {
        bool dead = false;
        for (int i = 0; i < n; i++)
            dead |= bench_exited(sk->worker_pid[i]);
        if (dead) {
            log_error("bench.spawn", "msg=\"a worker exited\" dir=%s", sk->dir);
            break;
        }
        Bulletin__Reply *r = bench_simple_request(s, BULLETIN__REQUEST__BODY_STATS, 1, 2000, why, sizeof why);
        double nw = s_metric(r, "workers"), seqm = s_metric(r, "max_applied_seq");
        wire_free(r);
        if (nw == n && seqm >= (double)max_seq) {
            rc = 0;
            break;
        }
        usleep(100000);
    }
    zio_close(&s);
    sk->ready_s = (double)(clock_mono_ms() - t0) / 1e3;
    if (rc == 0)
        log_info("bench.read_tier", "workers=%d kind=%s broker=%s broker_pid=%d ready_ms=%" PRId64,
                 n, fake ? "empty" : "bulletin-worker", sk->front_ep, (int)sk->broker_pid,
                 clock_mono_ms() - t0);
    else
        log_error("bench.read_tier", "msg=\"workers not registered\" workers=%d last=\"%s\"", n, why);
    return rc;
}

static void s_stack_stop(s_stack *sk)
{
    s_workers_stop(sk);
    bench_stop(&sk->ingest_pid, "bulletin-ingest", 10);
    bench_stop(&sk->store_pid, "bulletin-store", 10);
    bench_dir_release(sk->dir, o_keep);
}

/* ------------------------------------------------------------------------- */
/* phase 1: load                                                              */

typedef struct {
    size_t written, rejected;
    uint64_t max_seq;
    double seconds;
} s_load_result;

static int s_load(s_stack *sk, void *ctx, s_corpus *c, s_load_result *res)
{
    memset(res, 0, sizeof *res);
    void *s = zio_socket(ctx, ZMQ_DEALER, 0, 0);
    if (!s || zio_connect(s, sk->ingest_ep) < 0) {
        zio_close(&s);
        return -1;
    }
    Bulletin__Article *arts = calloc(S_BATCH, sizeof *arts);
    Bulletin__IngestItem *items = calloc(S_BATCH, sizeof *items);
    Bulletin__IngestItem **itemp = calloc(S_BATCH, sizeof *itemp);
    int rc = arts && items && itemp ? 0 : -1;
    int64_t t0 = clock_mono_us();
    for (size_t from = 0; rc == 0 && from < c->n; from += S_BATCH) {
        size_t to = from + S_BATCH < c->n ? from + S_BATCH : c->n;
        for (size_t i = from; i < to; i++) {
            Bulletin__Article *a = &arts[i - from];
            bulletin__article__init(a);
            a->key = c->a[i].key;
            a->title = c->a[i].title;
            a->body = c->a[i].body;
            a->category = c->a[i].category;
            a->site = c->a[i].site;
            a->published_at = c->a[i].published_ms;
            bulletin__ingest_item__init(&items[i - from]);
            items[i - from].item_case = BULLETIN__INGEST_ITEM__ITEM_ARTICLE;
            items[i - from].article = a;
            itemp[i - from] = &items[i - from];
        }
        Bulletin__IngestRequest ir = BULLETIN__INGEST_REQUEST__INIT;
        ir.n_items = to - from;
        ir.items = itemp;
        Bulletin__Request req = BULLETIN__REQUEST__INIT;
        req.version_major = WIRE_VERSION_MAJOR;
        req.request_id = from / S_BATCH + 1;
        req.body_case = BULLETIN__REQUEST__BODY_INGEST;
        req.ingest = &ir;
        ProtobufCBinaryData buf = {0, NULL};
        char why[256] = "";
        if (wire_pack_bytes(&req.base, &buf) < 0) {
            rc = -1;
            break;
        }
        Bulletin__Reply *r = bench_roundtrip(s, buf.data, buf.len, 120000, why, sizeof why);
        free(buf.data);
        if (!bench_reply_ok(r) || r->body_case != BULLETIN__REPLY__BODY_INGEST ||
            r->ingest->n_results != to - from) {
            log_error("bench.load", "batch=%zu why=\"%s%s\"", from / S_BATCH, why, s_status_text(r));
            wire_free(r);
            rc = -1;
            break;
        }
        for (size_t i = 0; i < r->ingest->n_results; i++) {
            const Bulletin__IngestResult *ires = r->ingest->results[i];
            if (ires->status == BULLETIN__WRITE_STATUS__CREATED ||
                ires->status == BULLETIN__WRITE_STATUS__UPDATED) {
                if (c->a[from + i].id == 0)
                    res->written++;
                /* a later duplicate key updates the earlier article: same id (rare) */
                if (ires->status == BULLETIN__WRITE_STATUS__UPDATED)
                    for (size_t j = 0; j < from + i; j++)
                        if (c->a[j].id == ires->id) {
                            c->a[j].id = 0;
                            res->written--;
                            break;
                        }
                c->a[from + i].id = ires->id;
            } else {
                res->rejected++;
            }
        }
        if (r->ingest->max_seq > res->max_seq)
            res->max_seq = r->ingest->max_seq;
        wire_free(r);
        if ((from / S_BATCH) % 50 == 0)
            log_info("bench.load", "articles=%zu", to);
    }
    res->seconds = (double)(clock_mono_us() - t0) / 1e6;
    free(arts);
    free(items);
    free(itemp);
    zio_close(&s);
    if (rc == 0)
        log_info("bench.loaded", "written=%zu rejected=%zu max_seq=%llu seconds=%.1f", res->written,
                 res->rejected, (unsigned long long)res->max_seq, res->seconds);
    return rc;
}

/* ------------------------------------------------------------------------- */
/* phase 2: bootstrap                                                         */

typedef struct {
    long long sync_max;
    double seconds, worker_cpu_s, store_cpu_s;
    uint64_t seq;
    bool failed;
    /* --search: the worker's LMDB after its catch-up (pages in use per database) */
    double idx_bytes, replica_bytes, file_bytes;
    bool sized;
} s_boot_result;

/* Pages in use by the idx_* databases (the full-text index) and by the others
 * (the replica), and the file's allocated size, of a worker's LMDB (stopped). */
static int s_env_sizes(const char *dir, s_boot_result *res)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_dbi main_dbi;
    int rc = mdb_env_create(&env);
    if (!rc)
        rc = mdb_env_set_maxdbs(env, 64);
    if (!rc)
        rc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0644);
    if (!rc)
        rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    if (!rc)
        rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
    if (!rc)
        rc = mdb_cursor_open(txn, main_dbi, &cur);
    MDB_val k, v;
    int crc = rc ? rc : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (!rc && crc == 0) {
        char name[128];
        if (k.mv_size < sizeof name && !memchr(k.mv_data, 0, k.mv_size)) {
            memcpy(name, k.mv_data, k.mv_size);
            name[k.mv_size] = 0;
            MDB_dbi d;
            MDB_stat st;
            if (mdb_dbi_open(txn, name, 0, &d) == 0 && mdb_stat(txn, d, &st) == 0) {
                double b = (double)(st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages) *
                           st.ms_psize;
                if (!strncmp(name, "idx_", 4))
                    res->idx_bytes += b;
                else
                    res->replica_bytes += b;
            }
        }
        crc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    char path[PATH_MAX];
    struct stat st;
    s_path(path, sizeof path, dir, "data.mdb");
    if (stat(path, &st) == 0)
        res->file_bytes = (double)st.st_blocks * 512;
    res->sized = rc == 0;
    if (rc)
        log_warn("bench.size", "dir=%s error=\"%s\"", dir, mdb_strerror(rc));
    else
        log_info("bench.size", "index_mb=%.1f replica_mb=%.1f file_mb=%.1f", res->idx_bytes / 1e6,
                 res->replica_bytes / 1e6, res->file_bytes / 1e6);
    return rc ? -1 : 0;
}

static int s_bootstrap(s_stack *sk, void *ctx, long long sync_max, uint64_t max_seq, int k,
                       s_boot_result *res)
{
    memset(res, 0, sizeof *res);
    res->sync_max = sync_max;
    res->failed = true;
    int port = bench_free_port();
    char ep[64], bin[PATH_MAX], data[PATH_MAX], logp[PATH_MAX], sub[64], sm[24];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    void *router = zio_socket(ctx, ZMQ_ROUTER, 0, 0);
    if (!router || zio_bind(router, ep) < 0) {
        zio_close(&router);
        return -1;
    }
    snprintf(sub, sizeof sub, "boot-%d", k);
    s_path(data, sizeof data, sk->dir, sub);
    snprintf(sub, sizeof sub, "boot-%d.log", k);
    s_path(logp, sizeof logp, sk->dir, sub);
    s_path(bin, sizeof bin, sk->bin, "bulletin-worker");
    snprintf(sm, sizeof sm, "%lld", sync_max);
    mkdir(data, 0755);
    char *wargv[] = {bin, "--broker", ep, "--store", sk->store_ep, "--feed", sk->feed_ep, "--data",
                     data, "--name", "boot", "--sync-max-changes", sm, NULL};
    double store0 = bench_proc_cpu_us(sk->store_pid);
    int64_t t0 = clock_mono_us();
    pid_t pid = s_spawn(wargv, logp, &s_worker_set, s_worker_any);
    int rc = -1;
    while (pid > 0 && clock_mono_us() - t0 < 600 * 1000000LL) {
        zmq_pollitem_t it = {router, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 100) > 0) {
            zmq_msg_t f[6];
            int n = 0;
            bool more = true;
            while (more) {
                zmq_msg_t m;
                zmq_msg_init(&m);
                if (zmq_msg_recv(&m, router, 0) < 0) {
                    zmq_msg_close(&m);
                    break;
                }
                more = zmq_msg_more(&m);
                if (n < 6) {
                    zmq_msg_init(&f[n]);
                    zmq_msg_move(&f[n++], &m);
                }
                zmq_msg_close(&m);
            }
            bool ready = n >= 5 && zmq_msg_size(&f[2]) == 1 &&
                         *(uint8_t *)zmq_msg_data(&f[2]) == BROKER_READY && zmq_msg_size(&f[4]) == 8;
            if (ready) {
                res->seconds = (double)(clock_mono_us() - t0) / 1e6;
                res->seq = s_get_u64(zmq_msg_data(&f[4]));
            }
            for (int i = 0; i < n; i++)
                zmq_msg_close(&f[i]);
            if (ready) {
                rc = 0;
                break;
            }
        }
        if (bench_exited(pid)) {
            log_error("bench.bootstrap", "msg=\"the worker exited\" log=%s", logp);
            pid = 0;
            break;
        }
    }
    res->worker_cpu_s = bench_proc_cpu_us(pid) / 1e6;
    res->store_cpu_s = (bench_proc_cpu_us(sk->store_pid) - store0) / 1e6;
    bench_stop(&pid, "bulletin-worker", 10);
    zio_close(&router);
    if (o_search && rc == 0)
        s_env_sizes(data, res);
    if (!o_keep)
        bench_rm_rf(data);
    if (rc == 0 && res->seq < max_seq) {
        log_error("bench.bootstrap", "msg=\"READY before the highest seq\" seq=%llu max_seq=%llu",
                  (unsigned long long)res->seq, (unsigned long long)max_seq);
        rc = -1;
    }
    res->failed = rc != 0;
    if (rc == 0)
        log_info("bench.bootstrap", "sync_max_changes=%lld seconds=%.2f seq=%llu worker_cpu_s=%.2f "
                 "store_cpu_s=%.2f", sync_max, res->seconds, (unsigned long long)res->seq,
                 res->worker_cpu_s, res->store_cpu_s);
    return rc;
}

/* ------------------------------------------------------------------------- */
/* --search baselines: FTS5 and Xapian in-process (bulletin-bench-search)      */

typedef struct {
    bool ok;
    size_t docs;
    double docs_s, size_mb, p50, p99, qps, hits;
} s_baseline;

#define S_MAX_BT 8 /* --baseline-threads values */

typedef struct {
    s_baseline fts, xap; /* the first run's: index build, and queries at threads[0] */
    s_baseline qfts[S_MAX_BT], qxap[S_MAX_BT]; /* the query phase at threads[i] */
    long long threads[S_MAX_BT];
    int nthreads;
    double fts_index_mb; /* FTS5's index blocks without the stored text; -1 = unknown */
    char log[PATH_MAX];
    bool ran;
} s_baselines;

static long long s_bthreads[S_MAX_BT]; /* --baseline-threads */
static int s_nbt;

/* "| name | docs | docs/s | MB | p50 | p99 | QPS | hits |" */
static void s_baseline_parse(const char *line, const char *name, s_baseline *b)
{
    char head[64];
    snprintf(head, sizeof head, "| %s |", name);
    if (strncmp(line, head, strlen(head)) != 0)
        return;
    b->ok = sscanf(line + strlen(head), " %zu | %lf | %lf | %lf | %lf | %lf | %lf |", &b->docs,
                   &b->docs_s, &b->size_mb, &b->p50, &b->p99, &b->qps, &b->hits) == 7;
}

/* One run of bulletin-bench-search --skip-ours with --query-threads nt
 * (query_only: on the indexes the first run left in work), output to log. */
static int s_baselines_run1(const char *prog, const char *work, const char *log, long long nt,
                            bool query_only)
{
    char maxd[32], nts[32];
    snprintf(maxd, sizeof maxd, "%lld", o_articles);
    snprintf(nts, sizeof nts, "%lld", nt);
    char *argv[20];
    int a = 0;
    argv[a++] = (char *)prog;
    argv[a++] = "--skip-ours";
    argv[a++] = "--corpus";
    argv[a++] = (char *)o_corpus;
    argv[a++] = "--queries";
    argv[a++] = (char *)o_queries;
    argv[a++] = "--dir";
    argv[a++] = (char *)work;
    argv[a++] = "--max-docs";
    argv[a++] = maxd;
    argv[a++] = "--query-threads";
    argv[a++] = nts;
    if (query_only)
        argv[a++] = "--query-only";
    if (o_zh)
        argv[a++] = "--zh";
    argv[a] = NULL;
    pid_t pid = s_spawn(argv, log, NULL, true);
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        log_error("bench.baselines", "program=%s threads=%lld status=%d output=%s", prog, nt, st, log);
        return -1;
    }
    return 0;
}

/* Run bulletin-bench-search --skip-ours on the same corpus and queries (FTS5
 * synchronous=FULL and Xapian, commit every 1000 docs, 1 warm-up and 3 timed
 * rounds of the queries per thread, top 10) once per --baseline-threads value:
 * the first run builds the indexes, the others query them (--query-only);
 * parse the tables. */
static int s_baselines_run(const char *dir, s_baselines *bl)
{
    memset(bl, 0, sizeof *bl);
    bl->fts_index_mb = -1;
    char prog[PATH_MAX], work[PATH_MAX];
    if (o_search_bench)
        snprintf(prog, sizeof prog, "%s", o_search_bench);
    else {
        ssize_t n = readlink("/proc/self/exe", prog, sizeof prog - 1);
        prog[n > 0 ? n : 0] = 0;
        char *slash = strrchr(prog, '/');
        snprintf(slash ? slash + 1 : prog, sizeof prog - (size_t)(slash ? slash + 1 - prog : 0),
                 "bulletin-bench-search");
    }
    if (access(prog, X_OK) != 0) {
        log_error("bench.baselines", "program=%s msg=\"not found: build bulletin-bench-search or "
                  "pass --search-bench\"", prog);
        return -1;
    }
    s_path(work, sizeof work, dir, "baselines");
    s_path(bl->log, sizeof bl->log, dir, "baselines.out");
    int64_t t0 = clock_mono_ms();
    for (int i = 0; i < s_nbt; i++) {
        char log[PATH_MAX], name[64];
        snprintf(name, sizeof name, "baselines-%lldt.out", s_bthreads[i]);
        if (i)
            s_path(log, sizeof log, dir, name);
        else
            snprintf(log, sizeof log, "%s", bl->log);
        if (s_baselines_run1(prog, work, log, s_bthreads[i], i > 0) < 0)
            break;
        bl->ran = true;
        bl->threads[bl->nthreads] = s_bthreads[i];
        s_baseline *qf = &bl->qfts[bl->nthreads], *qx = &bl->qxap[bl->nthreads];
        bl->nthreads++;
        FILE *f = fopen(log, "r");
        char line[1024];
        while (f && fgets(line, sizeof line, f)) {
            s_baseline_parse(line, "SQLite FTS5", qf);
            s_baseline_parse(line, "Xapian", qx);
            const char *ib = strstr(line, "(index blocks ");
            if (!i && !strncmp(line, "fts5:", 5) && ib)
                sscanf(ib, "(index blocks %lf", &bl->fts_index_mb);
        }
        if (f)
            fclose(f);
        if (!i) {
            bl->fts = *qf;
            bl->xap = *qx;
        }
    }
    if (!o_keep)
        bench_rm_rf(work);
    log_info("bench.baselines", "seconds=%.1f runs=%d fts5=%s xapian=%s output=%s",
             (double)(clock_mono_ms() - t0) / 1e3, bl->nthreads, bl->fts.ok ? "ok" : "missing",
             bl->xap.ok ? "ok" : "missing", bl->log);
    return bl->fts.ok ? 0 : -1;
}

/* ------------------------------------------------------------------------- */
/* phase 3: SQLite                                                            */

static const char *s_sql_page =
    "SELECT id, key, site, category, title, published_at, substr(body, 1, 200) FROM articles "
    "WHERE category = ?1 AND (published_at, id) < (?2, ?3) "
    "ORDER BY published_at DESC, id DESC LIMIT ?4";

static int s_sqlite_build(const char *path, const s_corpus *c, double *seconds)
{
    sqlite3 *db = NULL;
    int64_t t0 = clock_mono_us();
    if (sqlite3_open(path, &db) != SQLITE_OK) {
        log_error("bench.sqlite", "path=%s error=\"%s\"", path, db ? sqlite3_errmsg(db) : "open");
        sqlite3_close(db);
        return -1;
    }
    const char *ddl =
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;"
        "CREATE TABLE articles (id INTEGER PRIMARY KEY, key TEXT NOT NULL, site TEXT, "
        "category TEXT, title TEXT, published_at INTEGER, body TEXT);"
        "BEGIN;";
    sqlite3_stmt *ins = NULL;
    char *err = NULL;
    int rc = sqlite3_exec(db, ddl, NULL, NULL, &err);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "INSERT INTO articles VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", -1,
                                &ins, NULL);
    for (size_t i = 0; rc == SQLITE_OK && i < c->n; i++) {
        const s_article *a = &c->a[i];
        if (!a->id)
            continue;
        sqlite3_bind_int64(ins, 1, (sqlite3_int64)a->id);
        sqlite3_bind_text(ins, 2, a->key, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 3, a->site, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 4, a->category, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 5, a->title, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 6, a->published_ms);
        sqlite3_bind_text(ins, 7, a->body, -1, SQLITE_STATIC);
        rc = sqlite3_step(ins) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "COMMIT; CREATE INDEX articles_by_category ON articles "
                              "(category, published_at DESC, id DESC); ANALYZE;"
                              "PRAGMA wal_checkpoint(TRUNCATE);", NULL, NULL, &err);
    if (rc != SQLITE_OK)
        log_error("bench.sqlite", "path=%s error=\"%s\"", path, err ? err : sqlite3_errmsg(db));
    sqlite3_free(err);
    sqlite3_close(db);
    *seconds = (double)(clock_mono_us() - t0) / 1e6;
    return rc == SQLITE_OK ? 0 : -1;
}

/* The plan SQLite chose for a page (for the report). */
static void s_sqlite_plan(const char *path, char *out, size_t cap)
{
    out[0] = 0;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char sql[512];
    snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN %s", s_sql_page);
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        size_t used = 0;
        while (sqlite3_step(st) == SQLITE_ROW && used + 2 < cap) {
            const char *d = (const char *)sqlite3_column_text(st, 3);
            used += (size_t)snprintf(out + used, cap - used, "%s%s", used ? "; " : "", d ? d : "");
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* ------------------------------------------------------------------------- */
/* the query set: SQLite's pages are the reference; Bulletin's cursors       */

typedef struct {
    const char *category;
    int page;
    int64_t after_pub;  /* SQLite keyset of this page: rows before (after_pub, after_id) */
    int64_t after_id;
    uint64_t *ids;      /* SQLite's page (reference) */
    size_t nids;
    ProtobufCBinaryData req;  /* packed List for this page (cursor of the previous one) */
    bool beyond;        /* the category has fewer pages (small --articles): not measured */
    char *query;        /* --search: the query text (search-box syntax); nids = its hits */
    uint64_t total;     /* --search: matches the worker reported */
} s_page;

/* --search: a packed Search for the top 10 of `query`. */
static int s_pack_search(const char *query, uint64_t request_id, uint64_t min_seq,
                         ProtobufCBinaryData *out)
{
    Bulletin__SearchRequest sr = BULLETIN__SEARCH_REQUEST__INIT;
    sr.query = (char *)query;
    sr.limit = 10;
    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    req.body_case = BULLETIN__REQUEST__BODY_SEARCH;
    req.search = &sr;
    return s_pack_request(&req, request_id, min_seq, out);
}

/* --search: the query set of bench/search ({"type", "groups": [[tokens]]} per
 * line) as search-box text, as bulletin-bench-search gives it to our index and
 * to Xapian: groups are ANDed; an en group of several tokens is a phrase; a zh
 * group of overlapping bigrams is sent as its character run. */
static int s_search_query_add(json_t *o, size_t lineno, void *slot, const char *path)
{
    s_page *pg = slot;
    char text[2048];
    if (bench_search_text(json_object_get(o, "groups"), o_zh, text, sizeof text) != 0) {
        log_error("bench.queries", "path=%s line=%zu msg=\"need groups: a non-empty array of "
                  "non-empty arrays of tokens\"", path, lineno);
        return -1;
    }
    pg->query = strdup(text);
    return pg->query ? 0 : -1;
}

static int s_search_queries_load(const char *path, s_page **out, size_t *n)
{
    int rc = s_queries_read(path, sizeof **out, s_search_query_add, (void **)out, n);
    for (size_t i = 0; rc == 0 && i < *n; i++)
        rc = s_pack_search((*out)[i].query, i + 1, 0, &(*out)[i].req) < 0 ? -1 : 0;
    return rc;
}

/* --search: each query once through the broker with min_seq; its hits (top
 * 10) and total are kept (the first time) or compared (later: another worker
 * count must answer the same). Returns the number of queries whose answer
 * differs from the first, -1 on a transport error or a failed search. */
static long s_search_verify(void *ctx, const char *front, s_page *pg, size_t n, uint64_t min_seq,
                            bool first)
{
    void *s = zio_socket(ctx, ZMQ_DEALER, 0, 0);
    if (!s || zio_connect(s, front) < 0) {
        zio_close(&s);
        return -1;
    }
    long differ = 0;
    for (size_t i = 0; i < n; i++) {
        ProtobufCBinaryData req = {0, NULL};
        char why[256] = "";
        Bulletin__Reply *r = NULL;
        if (s_pack_search(pg[i].query, i + 1, min_seq, &req) == 0)
            r = bench_roundtrip(s, req.data, req.len, 10000, why, sizeof why);
        free(req.data);
        if (!bench_reply_ok(r) || r->body_case != BULLETIN__REPLY__BODY_SEARCH || r->request_id != i + 1) {
            log_error("bench.verify", "query=\"%s\" why=\"%s%s\"", pg[i].query, why,
                      s_status_text(r));
            wire_free(r);
            zio_close(&s);
            return -1;
        }
        if (first) {
            pg[i].nids = r->search->n_hits;
            pg[i].total = r->search->total;
        } else if (pg[i].nids != r->search->n_hits || pg[i].total != r->search->total) {
            if (differ++ < 5)
                log_warn("bench.verify", "query=\"%s\" hits=%zu total=%llu first_hits=%zu "
                         "first_total=%llu msg=\"answers differ\"", pg[i].query, r->search->n_hits,
                         (unsigned long long)r->search->total, pg[i].nids,
                         (unsigned long long)pg[i].total);
        }
        wire_free(r);
    }
    zio_close(&s);
    return differ;
}

static _Atomic size_t s_sink;

/* Run one keyset page on SQLite; ids (may be NULL) get the rows' ids. Returns
 * rows, -1 on error. The columns of an ArticleSummary are all read. */
static int s_sqlite_page(sqlite3_stmt *st, const char *category, int64_t pub, int64_t id,
                         uint64_t *ids, int64_t *last_pub, int64_t *last_id)
{
    sqlite3_bind_text(st, 1, category, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, pub);
    sqlite3_bind_int64(st, 3, id);
    sqlite3_bind_int64(st, 4, o_page);
    int n = 0, rc;
    size_t bytes = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t rid = sqlite3_column_int64(st, 0);
        for (int c = 1; c <= 6; c++)
            if (c != 5)
                bytes += (size_t)sqlite3_column_bytes(st, c) + (sqlite3_column_text(st, c) ? 1 : 0);
        int64_t rpub = sqlite3_column_int64(st, 5);
        if (ids)
            ids[n] = (uint64_t)rid;
        if (last_pub)
            *last_pub = rpub, *last_id = rid;
        n++;
    }
    sqlite3_reset(st);
    s_sink += bytes; /* the columns are really read */
    return rc == SQLITE_DONE ? n : -1;
}

static int s_pages_prepare(const char *dbpath, s_page *pg, size_t n)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, s_sql_page, -1, &st, NULL) != SQLITE_OK) {
        log_error("bench.sqlite", "error=\"%s\"", sqlite3_errmsg(db));
        sqlite3_close(db);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        int64_t pub = INT64_MAX, id = INT64_MAX;
        pg[i].ids = calloc((size_t)o_page, sizeof *pg[i].ids);
        if (!pg[i].ids) {
            rc = -1;
            break;
        }
        for (int p = 0; p <= pg[i].page; p++) {
            pg[i].after_pub = pub;
            pg[i].after_id = id;
            int k = s_sqlite_page(st, pg[i].category, pub, id, pg[i].ids, &pub, &id);
            if (k < 0) {
                log_error("bench.sqlite", "category=%s page=%d error=\"%s\"", pg[i].category, p,
                          sqlite3_errmsg(db));
                rc = -1;
                break;
            }
            pg[i].nids = (size_t)k;
            if (k == 0) {
                pg[i].beyond = true; /* past the end of the category: not a page */
                break;
            }
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

/* Walk every query's pages through the broker with min_seq, keep the packed
 * request of its page, compare every page with SQLite's. Returns the number
 * of pages that differ (reported), -1 on a transport error. */
static long s_pages_verify(void *ctx, const char *front, s_page *pg, size_t n, uint64_t min_seq,
                           size_t *items)
{
    void *s = zio_socket(ctx, ZMQ_DEALER, 0, 0);
    if (!s || zio_connect(s, front) < 0) {
        zio_close(&s);
        return -1;
    }
    long bad = 0;
    *items = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t cursor[256];
        size_t clen = 0;
        bool ended = false;
        for (int p = 0; p <= pg[i].page; p++) {
            ProtobufCBinaryData req = {0, NULL};
            if (s_pack_list(pg[i].category, clen ? cursor : NULL, clen, i + 1, 0, &req) < 0) {
                zio_close(&s);
                return -1;
            }
            if (p == pg[i].page) {
                free(pg[i].req.data);
                pg[i].req = req; /* the measured request: no min_seq, as most reads */
            }
            ProtobufCBinaryData vreq = {0, NULL};
            s_pack_list(pg[i].category, clen ? cursor : NULL, clen, i + 1, min_seq, &vreq);
            char why[256] = "";
            Bulletin__Reply *r = ended ? NULL : bench_roundtrip(s, vreq.data, vreq.len, 10000, why, sizeof why);
            free(vreq.data);
            if (p != pg[i].page)
                free(req.data);
            if (ended)
                break;
            if (!bench_reply_ok(r) || r->body_case != BULLETIN__REPLY__BODY_LIST || r->request_id != i + 1) {
                log_error("bench.verify", "category=%s page=%d why=\"%s%s\"", pg[i].category, p, why,
                          s_status_text(r));
                wire_free(r);
                zio_close(&s);
                return -1;
            }
            const Bulletin__ListReply *l = r->list;
            if (p == pg[i].page) {
                bool same = l->n_items == pg[i].nids;
                for (size_t k = 0; same && k < l->n_items; k++)
                    same = l->items[k]->id == pg[i].ids[k];
                if (!same) {
                    if (bad < 5)
                        log_warn("bench.verify", "category=%s page=%d items=%zu sqlite_items=%zu "
                                 "first_id=%llu sqlite_first_id=%llu msg=\"pages differ\"",
                                 pg[i].category, p, l->n_items, pg[i].nids,
                                 (unsigned long long)(l->n_items ? l->items[0]->id : 0),
                                 (unsigned long long)(pg[i].nids ? pg[i].ids[0] : 0));
                    bad++;
                }
                *items += l->n_items;
            }
            clen = l->next_cursor.len <= sizeof cursor ? l->next_cursor.len : 0;
            if (clen)
                memcpy(cursor, l->next_cursor.data, clen);
            else
                ended = true;
            wire_free(r);
        }
    }
    zio_close(&s);
    return bad;
}

/* ------------------------------------------------------------------------- */
/* measured runs                                                              */

typedef enum { E_BULLETIN = 0, E_EMPTY = 1, E_SQLITE = 2, E_N = 3 } s_engine;
static const char *s_engine_name[E_N] = {"Bulletin", "empty handler", "SQLite"};

typedef struct {
    s_engine eng;
    const s_page *pg;
    size_t npg;
    const char *front;
    const char *dbpath;
    void *ctx;
    atomic_int *ready; /* clients warmed up */
    atomic_bool *go, *stop;
} s_shared;

typedef struct {
    s_shared *sh;
    int idx;
    int64_t *lat;  /* us */
    size_t n, cap, errors;
    bool ok;
} s_client;

static void s_lat_add(s_client *c, int64_t us)
{
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 4096;
        int64_t *nl = realloc(c->lat, nc * sizeof *nl);
        if (!nl) {
            c->errors++;
            return;
        }
        c->lat = nl;
        c->cap = nc;
    }
    c->lat[c->n++] = us;
}

static void s_client_error(s_client *c, const char *what, size_t q)
{
    if (c->errors++ < 5)
        log_warn("bench.client_error", "engine=%s client=%d query=%zu why=\"%s\"",
                 s_engine_name[c->sh->eng], c->idx, q, what);
}

/* Tell the main thread this client is warm, wait for everyone's start. */
static void s_start_wait(s_shared *sh)
{
    atomic_fetch_add(sh->ready, 1);
    while (!atomic_load(sh->go))
        usleep(200);
}

static void *s_client_bulletin(void *arg)
{
    s_client *c = arg;
    s_shared *sh = c->sh;
    void *s = zio_socket(sh->ctx, ZMQ_DEALER, 0, 0);
    bool up = s && zio_connect(s, sh->front) == 0;
    size_t q = (size_t)c->idx * 37 % sh->npg;
    /* warm-up: connection made, first pages touched */
    for (int i = 0; up && i < 10; i++) {
        char why[256];
        wire_free(bench_roundtrip(s, sh->pg[q].req.data, sh->pg[q].req.len, (int)o_timeout_ms, why, sizeof why));
    }
    s_start_wait(sh);
    /* o_inflight requests in flight at once (query indexes q, q+1, ...;
     * each one's send time kept by its index, the reply's request_id - 1) */
    int64_t *sent = up ? calloc(sh->npg, sizeof *sent) : NULL;
    size_t pending = 0;
    if (up && !sent) {
        s_client_error(c, "out of memory", q);
        up = false;
    }
    while (up && !atomic_load_explicit(sh->stop, memory_order_relaxed)) {
        while (pending < (size_t)o_inflight && !sent[q]) {
            const s_page *p = &sh->pg[q];
            sent[q] = clock_mono_us();
            if (zmq_send(s, "", 0, ZMQ_SNDMORE) < 0 || zmq_send(s, p->req.data, p->req.len, 0) < 0) {
                s_client_error(c, "send failed", q);
                up = false;
                break;
            }
            pending++;
            q = (q + 1) % sh->npg;
        }
        if (!up)
            break;
        char why[256] = "";
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        int rc;
        while ((rc = zmq_poll(&it, 1, (long)o_timeout_ms)) < 0 && errno == EINTR)
            ;
        zmq_msg_t body;
        if (rc <= 0 || zio_recv_body(s, &body, 0) < 0) {
            s_client_error(c, "no reply within the timeout", q);
            break;
        }
        int64_t t1 = clock_mono_us();
        wire_code code;
        Bulletin__Reply *r = (Bulletin__Reply *)wire_unpack(&bulletin__reply__descriptor,
                                                            zmq_msg_data(&body), zmq_msg_size(&body),
                                                            WIRE_BUDGET(zmq_msg_size(&body)), &code,
                                                            why, sizeof why);
        zmq_msg_close(&body);
        size_t rq = r && r->request_id >= 1 && r->request_id <= sh->npg ? (size_t)(r->request_id - 1)
                                                                         : sh->npg;
        if (rq == sh->npg || !sent[rq]) {
            s_client_error(c, r ? "reply to no request in flight" : why, q);
            wire_free(r);
            break;
        }
        const s_page *p = &sh->pg[rq];
        size_t want = sh->eng == E_EMPTY ? 0 : p->nids;
        if (!bench_reply_ok(r) ||
            (o_search ? r->body_case != BULLETIN__REPLY__BODY_SEARCH || r->search->n_hits != want
                      : r->body_case != BULLETIN__REPLY__BODY_LIST || r->list->n_items != want))
            s_client_error(c, r ? (s_status_text(r)[0] ? s_status_text(r) : "unexpected reply") : why, rq);
        else
            s_lat_add(c, t1 - sent[rq]);
        sent[rq] = 0;
        pending--;
        wire_free(r);
    }
    free(sent);
    zio_close(&s);
    if (!up)
        s_client_error(c, "cannot connect", 0);
    return NULL;
}

static void *s_client_sqlite(void *arg)
{
    s_client *c = arg;
    s_shared *sh = c->sh;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    bool up = sqlite3_open_v2(sh->dbpath, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) ==
                  SQLITE_OK &&
              sqlite3_prepare_v2(db, s_sql_page, -1, &st, NULL) == SQLITE_OK;
    size_t q = (size_t)c->idx * 37 % sh->npg;
    for (int i = 0; up && i < 10; i++)
        s_sqlite_page(st, sh->pg[q].category, sh->pg[q].after_pub, sh->pg[q].after_id, NULL, NULL, NULL);
    s_start_wait(sh);
    if (!up)
        s_client_error(c, "cannot open the SQLite file", 0);
    while (up && !atomic_load_explicit(sh->stop, memory_order_relaxed)) {
        const s_page *p = &sh->pg[q];
        int64_t t0 = clock_mono_us();
        int n = s_sqlite_page(st, p->category, p->after_pub, p->after_id, NULL, NULL, NULL);
        int64_t t1 = clock_mono_us();
        if (n < 0 || (size_t)n != p->nids)
            s_client_error(c, "wrong number of rows", q);
        else
            s_lat_add(c, t1 - t0);
        q = (q + 1) % sh->npg;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return NULL;
}

typedef struct {
    s_engine eng;
    int workers, clients;
    size_t requests, errors;
    double wall_s, qps, p50, p99, max;
    double broker_us, worker_us, client_us; /* CPU per request; -1 = n/a */
    bool done;
} s_row;

static int s_measure(s_engine eng, int nclients, const s_stack *sk, s_shared *sh, s_row *row)
{
    memset(row, 0, sizeof *row);
    row->eng = eng;
    row->workers = eng == E_SQLITE ? 0 : sk->nworkers;
    row->clients = nclients;
    row->broker_us = row->worker_us = row->client_us = -1;
    s_client cl[S_MAX_CLIENTS];
    pthread_t th[S_MAX_CLIENTS];
    memset(cl, 0, sizeof cl);
    atomic_int ready = 0;
    atomic_bool go = false, stop = false;
    sh->eng = eng;
    sh->ready = &ready;
    sh->go = &go;
    sh->stop = &stop;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    cpu_set_t all;
    bench_cpuset_all(&all);
    if (eng == E_SQLITE)
        pthread_attr_setaffinity_np(&attr, sizeof all, &all);
    else
        pthread_attr_setaffinity_np(&attr, sizeof all, s_client_any ? &all : &s_client_set);
    int started = 0;
    for (int i = 0; i < nclients; i++) {
        cl[i].sh = sh;
        cl[i].idx = i;
        if (pthread_create(&th[i], &attr, eng == E_SQLITE ? s_client_sqlite : s_client_bulletin,
                           &cl[i]) != 0)
            break;
        started++;
    }
    pthread_attr_destroy(&attr);
    if (started < nclients) {
        log_error("bench.run", "msg=\"cannot start client threads\" started=%d", started);
        atomic_store(&stop, true);
        atomic_store(&go, true);
        for (int i = 0; i < started; i++)
            pthread_join(th[i], NULL);
        for (int i = 0; i < started; i++)
            free(cl[i].lat);
        return -1;
    }
    while (atomic_load(&ready) < nclients)
        usleep(1000);
    atomic_store(&go, true);
    double b0 = bench_proc_cpu_us(sk->broker_pid), w0 = 0, c0 = bench_self_cpu_us();
    for (int i = 0; i < sk->nworkers; i++)
        w0 += bench_proc_cpu_us(sk->worker_pid[i]);
    int64_t t0 = clock_mono_us();
    usleep((useconds_t)(o_seconds * 1000000));
    atomic_store(&stop, true);
    for (int i = 0; i < nclients; i++)
        pthread_join(th[i], NULL);
    int64_t t1 = clock_mono_us();
    double b1 = bench_proc_cpu_us(sk->broker_pid), w1 = 0, c1 = bench_self_cpu_us();
    for (int i = 0; i < sk->nworkers; i++)
        w1 += bench_proc_cpu_us(sk->worker_pid[i]);
    size_t total = 0;
    for (int i = 0; i < nclients; i++)
        total += cl[i].n;
    int64_t *all_lat = malloc((total ? total : 1) * sizeof *all_lat);
    size_t k = 0;
    for (int i = 0; i < nclients; i++) {
        if (all_lat)
            memcpy(all_lat + k, cl[i].lat, cl[i].n * sizeof *all_lat);
        k += cl[i].n;
        row->errors += cl[i].errors;
        free(cl[i].lat);
    }
    row->requests = total;
    row->wall_s = (double)(t1 - t0) / 1e6;
    row->qps = (double)total / row->wall_s;
    if (all_lat) {
        qsort(all_lat, total, sizeof *all_lat, bench_cmp_i64);
        row->p50 = bench_pct(all_lat, total, 0.50);
        row->p99 = bench_pct(all_lat, total, 0.99);
        row->max = total ? (double)all_lat[total - 1] : 0;
    }
    free(all_lat);
    if (total) {
        if (eng != E_SQLITE && b0 >= 0 && b1 >= 0)
            row->broker_us = (b1 - b0) / (double)total;
        if (eng != E_SQLITE && sk->nworkers)
            row->worker_us = (w1 - w0) / (double)total;
        row->client_us = (c1 - c0) / (double)total;
    }
    row->done = true;
    log_info("bench.done", "engine=\"%s\" workers=%d clients=%d requests=%zu errors=%zu qps=%.0f "
             "p50_us=%.0f p99_us=%.0f broker_us=%.1f worker_us=%.1f client_us=%.1f",
             s_engine_name[eng], row->workers, nclients, total, row->errors, row->qps, row->p50,
             row->p99, row->broker_us, row->worker_us, row->client_us);
    return 0;
}

/* ------------------------------------------------------------------------- */
/* report                                                                     */

typedef struct {
    const s_corpus *corpus;
    const s_load_result *load;
    const s_boot_result *boot;
    size_t nboot;
    const s_row *rows;
    size_t nrows;
    size_t nqueries, ncategories, verified_items, beyond;
    long mismatched_pages;
    double sqlite_build_s;
    char sqlite_plan[512], load_before[128], load_after[128], command[1024];
    /* --search */
    const s_baselines *bl;
    const s_page *pg;
    long search_differ;
    double tier_ready_s[S_MAX_WORKERS + 1]; /* by worker count: read tier catch-up; 0 = n/a */
} s_report_in;

static void s_fmt_us(char *out, size_t cap, double v)
{
    if (v < 0)
        snprintf(out, cap, "–");
    else
        snprintf(out, cap, "%.1f", v);
}

static const s_row *s_find(const s_report_in *in, s_engine eng, int workers, int clients)
{
    for (size_t i = 0; i < in->nrows; i++)
        if (in->rows[i].done && in->rows[i].eng == eng && in->rows[i].clients == clients &&
            (eng == E_SQLITE || in->rows[i].workers == workers))
            return &in->rows[i];
    return NULL;
}

static void s_report(FILE *out, const s_report_in *in)
{
    char cpu[256], kernel[256];
    bench_machine(cpu, sizeof cpu, kernel, sizeof kernel);
    int major, minor, patch;
    zmq_version(&major, &minor, &patch);
    fprintf(out, "## Read tier: List through the broker (bulletin-bench-list)\n\n");
    fprintf(out, "Command: `%s`\n\n", in->command);
    fprintf(out, "- machine: %ld CPUs (nproc), %s, %s; libzmq %d.%d.%d, SQLite %s\n",
            sysconf(_SC_NPROCESSORS_ONLN), cpu, kernel, major, minor, patch, sqlite3_libversion());
    fprintf(out, "- load average before / after: %s / %s\n", in->load_before, in->load_after);
    fprintf(out, "- pinning: client threads and the bench's ZeroMQ I/O thread on CPU %s, "
                 "bulletin-query on CPU %s; workers (bulletin-worker or empty handler) on CPU %s; SQLite threads on all "
                 "CPUs; store and ingest unpinned (idle while measuring)\n",
            s_client_any ? "any" : o_client_cpus, s_broker_cpus_text(), s_worker_any ? "any" : o_worker_cpus);
    fprintf(out, "- corpus: %s — %zu lines, %zu articles written (%zu skipped before ingest, %zu "
                 "rejected by ingest), max_seq %llu; loaded in batches of %d in %.1f s (%.0f "
                 "articles/s)\n",
            o_corpus, in->corpus->lines, in->load->written, in->corpus->skipped,
            in->load->rejected, (unsigned long long)in->load->max_seq, S_BATCH, in->load->seconds,
            in->load->seconds > 0 ? (double)in->load->written / in->load->seconds : 0);
    fprintf(out, "- query set: %s — %zu queries (%zu categories, newest first, %lld per page; "
                 "page k is requested with the cursor of page k-1; %zu left out: past the end of "
                 "their category); every page checked against SQLite's: %ld of %zu differ (%zu "
                 "items compared)\n",
            o_queries, in->nqueries, in->ncategories, o_page, in->beyond, in->mismatched_pages,
            in->nqueries - in->beyond, in->verified_items);
    fprintf(out, "- SQLite: one table, index (category, published_at DESC, id DESC), built in "
                 "%.1f s; page query `%s`; plan: %s\n",
            in->sqlite_build_s, s_sql_page, in->sqlite_plan);
    fprintf(out, "- %lld s per configuration, closed loop (%lld request(s) in flight per client), "
                 "worker credit %lld; latency = send to reply received (decoding the reply is "
                 "not included); CPU = user+system of the process over the run ÷ requests\n\n",
            o_seconds, o_inflight, o_credit);

    fprintf(out, "| engine | workers | clients | requests | errors | QPS | p50 µs | p99 µs | max µs "
                 "| broker CPU µs/req | worker CPU µs/req | client CPU µs/req |\n");
    fprintf(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < in->nrows; i++) {
        const s_row *r = &in->rows[i];
        if (!r->done)
            continue;
        char b[32], w[32], c[32];
        s_fmt_us(b, sizeof b, r->broker_us);
        s_fmt_us(w, sizeof w, r->worker_us);
        s_fmt_us(c, sizeof c, r->client_us);
        fprintf(out, "| %s | %s%d | %d | %zu | %zu | %.0f | %.0f | %.0f | %.0f | %s | %s | %s |\n",
                s_engine_name[r->eng], r->eng == E_SQLITE ? "in-process " : "",
                r->eng == E_SQLITE ? 0 : r->workers, r->clients, r->requests, r->errors, r->qps,
                r->p50, r->p99, r->max, b, w, c);
    }

    fprintf(out, "\nBulletin next to the floor and SQLite (same clients):\n\n");
    fprintf(out, "| workers | clients | Bulletin p50 µs | empty p50 µs | Bulletin − empty µs | "
                 "Bulletin/empty QPS | SQLite p50 µs | Bulletin/SQLite p50 |\n");
    fprintf(out, "|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < in->nrows; i++) {
        const s_row *b = &in->rows[i];
        if (!b->done || b->eng != E_BULLETIN)
            continue;
        const s_row *e = s_find(in, E_EMPTY, b->workers, b->clients);
        const s_row *q = s_find(in, E_SQLITE, 0, b->clients);
        char ep[32] = "–", d[32] = "–", rq[32] = "–", qp[32] = "–", rat[32] = "–";
        if (e) {
            snprintf(ep, sizeof ep, "%.0f", e->p50);
            snprintf(d, sizeof d, "%+.0f", b->p50 - e->p50);
            snprintf(rq, sizeof rq, "%.2fx", e->qps > 0 ? b->qps / e->qps : 0);
        }
        if (q) {
            snprintf(qp, sizeof qp, "%.0f", q->p50);
            snprintf(rat, sizeof rat, "%.1fx", q->p50 > 0 ? b->p50 / q->p50 : 0);
        }
        fprintf(out, "| %d | %d | %.0f | %s | %s | %s | %s | %s |\n", b->workers, b->clients,
                b->p50, ep, d, rq, qp, rat);
    }

    if (in->nboot) {
        fprintf(out, "\nReplica bootstrap (a fresh bulletin-worker syncs %zu articles from seq 0; "
                     "spawn to READY, which a worker sends after its first Sync; worker on CPU %s, "
                     "store on CPU %s):\n\n",
                in->load->written, s_worker_any ? "any" : o_worker_cpus,
                s_client_any ? "any" : o_client_cpus);
        fprintf(out, "| --sync-max-changes | seconds | articles/s | worker CPU s | store CPU s |\n");
        fprintf(out, "|---|---:|---:|---:|---:|\n");
        for (size_t i = 0; i < in->nboot; i++) {
            const s_boot_result *b = &in->boot[i];
            char sm[32];
            snprintf(sm, sizeof sm, b->sync_max ? "%lld" : "0 (store default)", b->sync_max);
            if (b->failed)
                fprintf(out, "| %s | failed | | | |\n", sm);
            else
                fprintf(out, "| %s | %.2f | %.0f | %.2f | %.2f |\n", sm, b->seconds,
                        (double)in->load->written / b->seconds, b->worker_cpu_s, b->store_cpu_s);
        }
    }

    /* targets */
    const s_row *b1 = s_find(in, E_BULLETIN, 1, 1), *e1 = s_find(in, E_EMPTY, 1, 1);
    double worst_broker = -1;
    for (size_t i = 0; i < in->nrows; i++)
        if (in->rows[i].done && in->rows[i].eng == E_BULLETIN && in->rows[i].broker_us > worst_broker)
            worst_broker = in->rows[i].broker_us;
    double best_boot = 0;
    for (size_t i = 0; i < in->nboot; i++)
        if (!in->boot[i].failed && in->boot[i].seconds > 0 &&
            (double)in->load->written / in->boot[i].seconds > best_boot)
            best_boot = (double)in->load->written / in->boot[i].seconds;
    double def_boot = in->nboot && !in->boot[0].failed && in->boot[0].seconds > 0
                          ? (double)in->load->written / in->boot[0].seconds : 0;
    fprintf(out, "\nTargets:\n\n| target | result | |\n|---|---|---|\n");
    if (b1)
        fprintf(out, "| list p50 ≤ 250 µs through the broker (1 worker, 1 client) | %.0f µs | %s |\n",
                b1->p50, b1->p50 <= 250 ? "met" : "**missed**");
    if (b1 && e1)
        fprintf(out, "| within 50 µs of the empty-handler floor (1 worker, 1 client) | %.0f − %.0f = "
                     "%+.0f µs | %s |\n", b1->p50, e1->p50, b1->p50 - e1->p50,
                b1->p50 - e1->p50 <= 50 ? "met" : "**missed**");
    if (worst_broker >= 0)
        fprintf(out, "| broker CPU ≤ 10 µs per request | worst Bulletin configuration %.1f µs | %s |\n",
                worst_broker, worst_broker <= 10 ? "met" : "**missed**");
    if (in->nboot)
        fprintf(out, "| bootstrap ≥ 100,000 articles/s | default %.0f/s, best %.0f/s | %s |\n",
                def_boot, best_boot, def_boot >= 100000 ? "met" : best_boot >= 100000 ? "met only with a larger chunk" : "**missed**");
    fprintf(out, "\n");
}

/* The baselines' query figures at bl->threads[i] (NULL = none). */
static const s_baseline *s_bq(const s_baselines *bl, bool xapian, int i)
{
    if (!bl || i < 0 || i >= bl->nthreads)
        return NULL;
    const s_baseline *b = xapian ? &bl->qxap[i] : &bl->qfts[i];
    return b->ok && b->qps > 0 ? b : NULL;
}

/* --search: one table per corpus, Bulletin through the broker next to the
 * floor and to FTS5 / Xapian in-process (--baseline-threads query threads). */
static void s_report_search(FILE *out, const s_report_in *in)
{
    char cpu[256], kernel[256];
    bench_machine(cpu, sizeof cpu, kernel, sizeof kernel);
    const s_baselines *bl = in->bl;
    const s_baseline *fts = bl && bl->fts.ok ? &bl->fts : NULL, *xap = bl && bl->xap.ok ? &bl->xap : NULL;
    /* the baselines' query runs compared: 1 thread (else the fewest) and the most threads */
    int lo = -1, hi = -1;
    char bthreads[128] = "";
    for (int i = 0; bl && i < bl->nthreads; i++) {
        if (lo < 0 || bl->threads[i] < bl->threads[lo])
            lo = i;
        if (hi < 0 || bl->threads[i] > bl->threads[hi])
            hi = i;
        size_t l = strlen(bthreads);
        snprintf(bthreads + l, sizeof bthreads - l, "%s%lld", i ? ", " : "", bl->threads[i]);
    }
    if (hi == lo)
        hi = -1;
    if (!bthreads[0])
        snprintf(bthreads, sizeof bthreads, "%s", o_baseline_threads);
    const s_baseline *fts1 = s_bq(bl, false, lo), *xap1 = s_bq(bl, true, lo);
    const s_baseline *ftsn = s_bq(bl, false, hi), *xapn = s_bq(bl, true, hi);
    long long t1 = lo >= 0 ? bl->threads[lo] : 1, tn = hi >= 0 ? bl->threads[hi] : 1;
    size_t hits = 0, zero = 0, nq = in->nqueries;
    for (size_t i = 0; i < nq; i++) {
        hits += in->pg[i].nids;
        zero += in->pg[i].nids == 0;
    }
    fprintf(out, "## Search through the broker (bulletin-bench-list --search)\n\n");
    fprintf(out, "Command: `%s`\n\n", in->command);
    fprintf(out, "- machine: %ld CPUs (nproc), %s, %s; SQLite %s, %s\n",
            sysconf(_SC_NPROCESSORS_ONLN), cpu, kernel, sqlite3_libversion(),
            mdb_version(NULL, NULL, NULL));
    fprintf(out, "- load average before / after: %s / %s\n", in->load_before, in->load_after);
    fprintf(out, "- pinning: client threads and the bench's ZeroMQ I/O thread on CPU %s, "
                 "bulletin-query on CPU %s; workers (bulletin-worker or empty handler) on CPU %s; FTS5 and Xapian "
                 "(bulletin-bench-search, query threads: %s) unpinned, run after the stack is stopped\n",
            s_client_any ? "any" : o_client_cpus, s_broker_cpus_text(), s_worker_any ? "any" : o_worker_cpus,
            bthreads);
    fprintf(out, "- corpus: %s — %zu articles written through bulletin-ingest (batches of %d, "
                 "%zu rejected) in %.1f s (%.0f articles/s, each batch acknowledged after its "
                 "synced commit), max_seq %llu\n",
            o_corpus, in->load->written, S_BATCH, in->load->rejected, in->load->seconds,
            in->load->seconds > 0 ? (double)in->load->written / in->load->seconds : 0,
            (unsigned long long)in->load->max_seq);
    fprintf(out, "- queries: %s — %zu, top 10 (SearchRequest.query, limit 10, no min_seq); "
                 "answered with %.1f hits on average, %zu with none; answers with 2 workers "
                 "identical to 1 worker's: %s\n",
            o_queries, nq, nq ? (double)hits / (double)nq : 0, zero,
            in->search_differ == 0 ? "yes" : in->search_differ > 0 ? "**no**" : "not checked");
    fprintf(out, "- %lld s per configuration, closed loop (%lld request(s) in flight per client), "
                 "worker credit %lld; latency = send to reply received; baselines: in-process (no "
                 "transport), per query thread its own reader (SQLite connection, Xapian::Database) "
                 "and 1 warm-up + 3 timed rounds of the same queries, closed loop; QPS = all "
                 "threads' queries / wall time, p50/p99 over all of them\n\n",
            o_seconds, o_inflight, o_credit);

    /* index build */
    const s_boot_result *b = in->nboot && !in->boot[0].failed ? &in->boot[0] : NULL;
    fprintf(out, "Index build (Bulletin: a fresh bulletin-worker catches up from seq 0 after the "
                 "load, spawn to READY, which includes the replica, the index and its merge into "
                 "one segment (search.optimize); each Sync chunk is one synced LMDB commit. "
                 "Baselines: commit every 1000 docs, synced):\n\n");
    fprintf(out, "| engine | docs | seconds | docs/s | index MB | with stored text MB | file MB |\n");
    fprintf(out, "|---|---:|---:|---:|---:|---:|---:|\n");
    if (b)
        fprintf(out, "| Bulletin worker (1, alone) | %zu | %.1f | %.0f | %.1f | %.1f | %.1f |\n",
                in->load->written, b->seconds, (double)in->load->written / b->seconds,
                b->idx_bytes / 1e6, (b->idx_bytes + b->replica_bytes) / 1e6, b->file_bytes / 1e6);
    for (int w = 1; w <= S_MAX_WORKERS; w++)
        if (in->tier_ready_s[w] > 0)
            fprintf(out, "| Bulletin workers (%d at once, read tier start) | %zu | %.1f | %.0f "
                         "each | | | |\n", w, in->load->written, in->tier_ready_s[w],
                    (double)in->load->written / in->tier_ready_s[w]);
    if (fts) {
        char im[32] = "–";
        if (bl->fts_index_mb >= 0)
            snprintf(im, sizeof im, "%.1f", bl->fts_index_mb);
        fprintf(out, "| SQLite FTS5 | %zu | %.1f | %.0f | %s | %.1f | %.1f |\n", fts->docs,
                fts->docs_s > 0 ? (double)fts->docs / fts->docs_s : 0, fts->docs_s, im,
                fts->size_mb, fts->size_mb);
    }
    if (xap)
        fprintf(out, "| Xapian | %zu | %.1f | %.0f | %.1f | (no stored text) | %.1f |\n", xap->docs,
                xap->docs_s > 0 ? (double)xap->docs / xap->docs_s : 0, xap->docs_s, xap->size_mb,
                xap->size_mb);
    fprintf(out, "\nBulletin index MB = pages in use by the worker's idx_* databases; with stored "
                 "text = plus its replica databases (articles, summaries, keys, by_*); file = "
                 "data.mdb's allocated blocks (pages freed by the merge stay in the file until "
                 "reused). FTS5 index MB = its docs_data blocks; with stored text = the whole file "
                 "(FTS5 keeps title and body). Xapian stores no text.\n\n");

    /* search */
    fprintf(out, "| engine | workers | clients | requests | errors | QPS | p50 µs | p99 µs | max µs "
                 "| broker CPU µs/req | worker CPU µs/req |\n");
    fprintf(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < in->nrows; i++) {
        const s_row *r = &in->rows[i];
        if (!r->done)
            continue;
        char bc[32], wc[32];
        s_fmt_us(bc, sizeof bc, r->broker_us);
        s_fmt_us(wc, sizeof wc, r->worker_us);
        fprintf(out, "| %s | %d | %d | %zu | %zu | %.0f | %.0f | %.0f | %.0f | %s | %s |\n",
                r->eng == E_EMPTY ? "empty handler (floor)" : "Bulletin", r->workers, r->clients,
                r->requests, r->errors, r->qps, r->p50, r->p99, r->max, bc, wc);
    }
    for (int x = 0; x < 2; x++)
        for (int i = 0; bl && i < bl->nthreads; i++) {
            const s_baseline *q = s_bq(bl, x == 1, i);
            if (q)
                fprintf(out, "| %s, in-process | – | %lld thread%s | %zu | | %.0f | %.0f | %.0f | | | |\n",
                        x ? "Xapian" : "SQLite FTS5", bl->threads[i], bl->threads[i] == 1 ? "" : "s",
                        nq * 3 * (size_t)bl->threads[i], q->qps, q->p50, q->p99);
        }

    fprintf(out, "\nRatios (Bulletin through the broker against the floor and the in-process "
                 "baselines):\n\n");
    fprintf(out, "| workers | clients | p50 − floor µs | QPS / FTS5 (%lld thr.) | QPS / Xapian (%lld thr.) |",
            t1, t1);
    if (hi >= 0)
        fprintf(out, " QPS / FTS5 (%lld thr.) | QPS / Xapian (%lld thr.) |", tn, tn);
    fprintf(out, "\n|---:|---:|---:|---:|---:|%s\n", hi >= 0 ? "---:|---:|" : "");
    const s_row *best = NULL;
    for (size_t i = 0; i < in->nrows; i++) {
        const s_row *r = &in->rows[i];
        if (!r->done || r->eng != E_BULLETIN)
            continue;
        if (!best || r->qps > best->qps)
            best = r;
        const s_row *e = s_find(in, E_EMPTY, r->workers, r->clients);
        char d[32] = "–", rf[32] = "–", rx[32] = "–", rfn[32] = "–", rxn[32] = "–";
        if (e)
            snprintf(d, sizeof d, "%+.0f", r->p50 - e->p50);
        if (fts1)
            snprintf(rf, sizeof rf, "%.2fx", r->qps / fts1->qps);
        if (xap1)
            snprintf(rx, sizeof rx, "%.2fx", r->qps / xap1->qps);
        if (ftsn)
            snprintf(rfn, sizeof rfn, "%.2fx", r->qps / ftsn->qps);
        if (xapn)
            snprintf(rxn, sizeof rxn, "%.2fx", r->qps / xapn->qps);
        fprintf(out, "| %d | %d | %s | %s | %s |", r->workers, r->clients, d, rf, rx);
        if (hi >= 0)
            fprintf(out, " %s | %s |", rfn, rxn);
        fprintf(out, "\n");
    }

    /* targets (issue 4) */
    const s_row *b1 = s_find(in, E_BULLETIN, 1, 1), *e1 = s_find(in, E_EMPTY, 1, 1);
    double worst_p99 = -1;
    for (size_t i = 0; i < in->nrows; i++)
        if (in->rows[i].done && in->rows[i].eng == E_BULLETIN && in->rows[i].clients == 1 &&
            in->rows[i].p99 > worst_p99)
            worst_p99 = in->rows[i].p99;
    fprintf(out, "\nTargets (issue 4):\n\n| target | result | |\n|---|---|---|\n");
    if (b1)
        fprintf(out, "| p50 ≤ 400 µs through the broker (1 worker, 1 client) | %.0f µs | %s |\n",
                b1->p50, b1->p50 <= 400 ? "met" : "**missed**");
    if (b1 && e1)
        fprintf(out, "| within 150 µs of the empty-handler floor | %.0f − %.0f = %+.0f µs | %s |\n",
                b1->p50, e1->p50, b1->p50 - e1->p50, b1->p50 - e1->p50 <= 150 ? "met" : "**missed**");
    if (worst_p99 >= 0)
        fprintf(out, "| p99 ≤ 2.5 ms (1 client, 1 or 2 workers) | worst %.0f µs | %s |\n", worst_p99,
                worst_p99 <= 2500 ? "met" : "**missed**");
    for (int i = 0; best && i < 2; i++) {
        const s_baseline *f = i ? ftsn : fts1, *x = i ? xapn : xap1;
        long long t = i ? tn : t1;
        if (f)
            fprintf(out, "| QPS ≥ 1.5x FTS5 (%lld thread%s) | best %.0f (%d workers, %d clients) vs %.0f = "
                         "%.2fx | %s |\n", t, t == 1 ? "" : "s", best->qps, best->workers, best->clients,
                    f->qps, best->qps / f->qps, best->qps >= 1.5 * f->qps ? "met" : "**missed**");
        if (x)
            fprintf(out, "| QPS ≥ Xapian (%lld thread%s) | %.0f vs %.0f = %.2fx | %s |\n", t,
                    t == 1 ? "" : "s", best->qps, x->qps, best->qps / x->qps,
                    best->qps >= x->qps ? "met" : "**missed**");
    }
    if (b && fts)
        fprintf(out, "| indexing ≥ 1.5x FTS5's bulk rate (durable) | %.0f vs %.0f docs/s = %.2fx | %s |\n",
                (double)in->load->written / b->seconds, fts->docs_s,
                (double)in->load->written / b->seconds / fts->docs_s,
                (double)in->load->written / b->seconds >= 1.5 * fts->docs_s ? "met" : "**missed**");
    if (b && fts)
        fprintf(out, "| index size ≤ FTS5's | %.1f MB vs %.1f MB (index blocks) / %.1f MB (file) | %s |\n",
                b->idx_bytes / 1e6, bl->fts_index_mb, fts->size_mb,
                bl->fts_index_mb >= 0 && b->idx_bytes / 1e6 <= bl->fts_index_mb ? "met"
                : b->idx_bytes / 1e6 <= fts->size_mb ? "met against the file only" : "**missed**");
    fprintf(out, "\n");
}

/* --search, phases 4-6: for each worker count, Bulletin (answers checked once
 * with min_seq, then measured) and the empty-handler floor; then, with the
 * read tier stopped, the FTS5 / Xapian baselines. */
static int s_search_phases(s_stack *sk, void *ctx, const s_load_result *load, s_page *pg,
                           size_t nq, const long long *workers, int nw, const long long *clients,
                           int nc, const bool *run, s_row *rows, size_t *nrows, s_report_in *rin,
                           s_baselines *bl)
{
    s_shared sh = {.pg = pg, .npg = nq, .ctx = ctx};
    int round = 0;
    bool verified = false;
    for (int wi = 0; wi < nw; wi++) {
        for (int e = E_BULLETIN; e <= E_EMPTY; e++) {
            if (!run[e] && !(e == E_BULLETIN && !verified))
                continue;
            if (s_read_tier_start(sk, ctx, (int)workers[wi], e == E_EMPTY, load->max_seq, round++) < 0)
                return -1;
            if (e == E_BULLETIN) {
                rin->tier_ready_s[workers[wi]] = sk->ready_s;
                long differ = s_search_verify(ctx, sk->front_ep, pg, nq, load->max_seq, !verified);
                if (differ < 0)
                    return -1;
                if (verified)
                    rin->search_differ = rin->search_differ < 0 ? differ : rin->search_differ + differ;
                log_info("bench.verify", "workers=%d queries=%zu differ=%ld", sk->nworkers, nq, differ);
                verified = true;
            }
            sh.front = sk->front_ep;
            if (run[e])
                for (int ci = 0; ci < nc; ci++)
                    if (s_measure((s_engine)e, (int)clients[ci], sk, &sh, &rows[*nrows]) == 0)
                        (*nrows)++;
            s_workers_stop(sk);
        }
    }
    rin->pg = pg;
    if (!o_no_baselines) {
        bench_stop(&sk->ingest_pid, "bulletin-ingest", 10);
        bench_stop(&sk->store_pid, "bulletin-store", 10);
        if (s_baselines_run(sk->dir, bl) < 0)
            log_warn("bench.baselines", "msg=\"no FTS5 figures: the report has Bulletin only\"");
        rin->bl = bl;
    }
    return 0;
}

/* ------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    switch (cfg_parse("bulletin-bench-list",
                      "Read-tier benchmark: List through bulletin-query to bulletin-worker on the "
                      "reference corpus, next to the same pages from an indexed SQLite query and "
                      "to the empty-handler floor of the same request path; broker and worker CPU "
                      "per request; replica bootstrap speed. Spawns its own stack on free loopback "
                      "ports. Prints a markdown report on stdout.",
                      s_opts, S_NOPTS, argc, argv)) {
    case CFG_HELP:
        return 0;
    case CFG_ERROR:
        return 2;
    }
    log_init(o_fake_worker ? "bench-empty-worker" : "bench");
    if (o_credit < 1 || o_credit > BROKER_CREDIT_MAX) {
        fprintf(stderr, "bulletin-bench-list: --credit must be 1..%d\n", BROKER_CREDIT_MAX);
        return 2;
    }
    if (o_inflight < 1 || o_inflight > 64) {
        fprintf(stderr, "bulletin-bench-list: --inflight must be 1..64\n");
        return 2;
    }
    if (o_fake_worker)
        return s_fake_worker();
    if (strcmp(o_transport, "tcp") != 0 && strcmp(o_transport, "ipc") != 0) {
        fprintf(stderr, "bulletin-bench-list: --transport must be tcp or ipc\n");
        return 2;
    }
    /* SQLite's global memory statistics take a mutex on every malloc: off, so that
     * its threads do not serialize on it (the best case for the baseline) */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    s_nbt = s_parse_list(o_baseline_threads, s_bthreads, S_MAX_BT, "baseline-threads", 64);
    if (s_nbt < 0)
        return 2;
    for (int i = 0; i < s_nbt; i++)
        if (s_bthreads[i] < 1) {
            fprintf(stderr, "bulletin-bench-list: --baseline-threads values must be >= 1\n");
            return 2;
        }
    if (s_nbt == 0)
        s_bthreads[s_nbt++] = 1;
    long long workers[8], clients[16], sync_max[8];
    int nw = s_parse_list(o_workers, workers, 8, "workers", S_MAX_WORKERS);
    int nc = s_parse_list(o_clients, clients, 16, "clients", S_MAX_CLIENTS);
    int nsm = o_no_bootstrap ? 0 : s_parse_list(o_sync_max, sync_max, 8, "sync-max-changes", 1000000);
    if (nw < 0 || nc < 0 || nsm < 0)
        return 2;
    if (o_search && nsm > 1)
        nsm = 1; /* one catch-up: the index build rate and size */
    for (int i = 0; i < nw; i++)
        if (workers[i] < 1) {
            fprintf(stderr, "bulletin-bench-list: --workers: at least 1\n");
            return 2;
        }
    for (int i = 0; i < nc; i++)
        if (clients[i] < 1) {
            fprintf(stderr, "bulletin-bench-list: --clients: at least 1\n");
            return 2;
        }
    bool run[E_N] = {strstr(o_engines, "bulletin") != NULL, strstr(o_engines, "empty") != NULL,
                     strstr(o_engines, "sqlite") != NULL};
    if (o_seconds < 1 || o_seconds > 3600 || o_page < 1 || o_page > 1000 || o_timeout_ms < 100 ||
        o_articles < 0) {
        fprintf(stderr, "bulletin-bench-list: --seconds 1..3600, --page 1..1000, --timeout-ms >= 100, "
                        "--articles >= 0\n");
        return 2;
    }
    if (s_cpus_parse(o_client_cpus, &s_client_set, &s_client_any) < 0 ||
        s_cpus_parse(o_worker_cpus, &s_worker_set, &s_worker_any) < 0 ||
        s_cpus_parse(strcmp(o_broker_cpus, "same") == 0 ? o_client_cpus : o_broker_cpus, &s_broker_set,
                     &s_broker_any) < 0) {
        fprintf(stderr, "bulletin-bench-list: --client-cpus / --worker-cpus / --broker-cpus: comma-separated CPU "
                        "numbers below %ld, or \"\"\n", sysconf(_SC_NPROCESSORS_ONLN));
        return 2;
    }
    struct stat dst;
    if (stat(o_data_dir, &dst) != 0 || !S_ISDIR(dst.st_mode)) {
        fprintf(stderr, "bulletin-bench-list: --data-dir %s is not a directory\n", o_data_dir);
        return 2;
    }
    s_stack sk;
    memset(&sk, 0, sizeof sk);
    if (o_bin_dir) {
        snprintf(sk.bin, sizeof sk.bin, "%s", o_bin_dir);
    } else {
        ssize_t n = readlink("/proc/self/exe", sk.bin, sizeof sk.bin - 1);
        sk.bin[n > 0 ? n : 0] = 0;
        char *slash = strrchr(sk.bin, '/');
        if (slash)
            *slash = 0;
    }
    const char *need[] = {"bulletin-store", "bulletin-ingest", "bulletin-query", "bulletin-worker"};
    for (size_t i = 0; i < 4; i++) {
        char p[PATH_MAX];
        s_path(p, sizeof p, sk.bin, need[i]);
        if (access(p, X_OK) != 0) {
            fprintf(stderr, "bulletin-bench-list: %s not found in %s (build it, or --bin-dir)\n",
                    need[i], sk.bin);
            return 2;
        }
    }
    s_report_in rin;
    memset(&rin, 0, sizeof rin);
    size_t used = 0;
    for (int i = 0; i < argc && used + 2 < sizeof rin.command; i++)
        used += (size_t)snprintf(rin.command + used, sizeof rin.command - used, "%s%s", i ? " " : "",
                                 i ? argv[i] : "bulletin-bench-list");
    bench_loadavg(rin.load_before, sizeof rin.load_before, "");
    /* the main thread (and so the ZeroMQ I/O thread it creates) runs where the clients run */
    if (!s_client_any)
        sched_setaffinity(0, sizeof s_client_set, &s_client_set);

    s_query *qs = NULL;
    s_page *spg = NULL; /* --search: the query set, packed */
    size_t nq = 0;
    s_corpus corpus;
    if (o_search ? s_search_queries_load(o_queries, &spg, &nq) < 0
                 : s_queries_load(o_queries, &qs, &nq) < 0)
        return 1;
    int64_t t = clock_mono_us();
    if (s_corpus_load(&corpus, o_corpus, (size_t)o_articles) < 0)
        return 1;
    log_info("bench.corpus", "path=%s articles=%zu lines=%zu ms=%" PRId64, o_corpus, corpus.n,
             corpus.lines, (clock_mono_us() - t) / 1000);
    rin.corpus = &corpus;
    rin.nqueries = nq;
    for (size_t i = 0; !o_search && i < nq; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = !strcmp(qs[i].category, qs[j].category);
        rin.ncategories += !seen;
    }

    void *ctx = zmq_ctx_new();
    snprintf(sk.dir, sizeof sk.dir, "%s/bulletin-bench-list-XXXXXX", o_data_dir);
    if (!ctx || !mkdtemp(sk.dir)) {
        log_error("bench.start", "dir=%s error=\"%s\"", sk.dir, strerror(errno));
        return 1;
    }
    int rc = 1;
    s_load_result load;
    s_boot_result boot[8];
    s_row rows[3 * 8 * 16];
    size_t nrows = 0;
    s_page *pg = o_search ? spg : calloc(nq, sizeof *pg);
    s_baselines bl;
    memset(&bl, 0, sizeof bl);
    rin.search_differ = -1;
    char dbpath[PATH_MAX];
    s_path(dbpath, sizeof dbpath, sk.dir, "sqlite.db");
    memset(rows, 0, sizeof rows);
    memset(&load, 0, sizeof load);
    rin.load = &load;
    if (!pg || s_store_start(&sk, ctx) < 0 || s_load(&sk, ctx, &corpus, &load) < 0)
        goto out;
    bench_stop(&sk.ingest_pid, "bulletin-ingest", 10); /* not needed any more */
    /* phase 2: bootstrap (store on the client CPUs, the worker on the worker CPUs) */
    s_pin_process(sk.store_pid, &s_client_set, s_client_any);
    for (int i = 0; i < nsm; i++) {
        if (s_bootstrap(&sk, ctx, sync_max[i], load.max_seq, i, &boot[i]) < 0)
            log_error("bench.bootstrap", "sync_max_changes=%lld msg=\"failed\"", sync_max[i]);
        rin.nboot++;
    }
    rin.boot = boot;
    if (o_search) {
        rc = s_search_phases(&sk, ctx, &load, pg, nq, workers, nw, clients, nc, run, rows, &nrows,
                             &rin, &bl);
        goto out;
    }
    /* phase 3: SQLite, and the reference pages */
    if (s_sqlite_build(dbpath, &corpus, &rin.sqlite_build_s) < 0)
        goto out;
    s_sqlite_plan(dbpath, rin.sqlite_plan, sizeof rin.sqlite_plan);
    for (size_t i = 0; i < nq; i++) {
        pg[i].category = qs[i].category;
        pg[i].page = qs[i].page;
    }
    if (s_pages_prepare(dbpath, pg, nq) < 0)
        goto out;
    size_t kept = 0;
    for (size_t i = 0; i < nq; i++)
        if (!pg[i].beyond)
            pg[kept++] = pg[i];
        else
            free(pg[i].ids);
    if (kept < nq)
        log_warn("bench.queries", "msg=\"pages past the end of their category are left out\" "
                 "queries=%zu kept=%zu", nq, kept);
    rin.beyond = nq - kept;
    nq = kept;
    if (nq == 0) {
        log_error("bench.queries", "msg=\"no query has a page in this corpus\"");
        goto out;
    }
    log_info("bench.sqlite", "seconds=%.1f plan=\"%s\"", rin.sqlite_build_s, rin.sqlite_plan);
    s_shared sh = {.pg = pg, .npg = nq, .dbpath = dbpath, .ctx = ctx};
    if (run[E_SQLITE])
        for (int ci = 0; ci < nc; ci++)
            if (s_measure(E_SQLITE, (int)clients[ci], &sk, &sh, &rows[nrows]) == 0)
                nrows++;
    /* phases 4 and 5 */
    int round = 0;
    bool verified = false;
    for (int wi = 0; wi < nw; wi++) {
        for (int e = E_BULLETIN; e <= E_EMPTY; e++) {
            if (!run[e] && !(e == E_BULLETIN && !verified))
                continue;
            if (s_read_tier_start(&sk, ctx, (int)workers[wi], e == E_EMPTY, load.max_seq, round++) < 0)
                goto out;
            if (e == E_BULLETIN) {
                size_t items = 0;
                long bad = s_pages_verify(ctx, sk.front_ep, pg, nq, load.max_seq, &items);
                if (bad < 0)
                    goto out;
                if (!verified) {
                    rin.mismatched_pages = bad;
                    rin.verified_items = items;
                }
                log_info("bench.verify", "workers=%d pages=%zu differ=%ld items=%zu", sk.nworkers, nq,
                         bad, items);
                verified = true;
            }
            sh.front = sk.front_ep;
            if (run[e])
                for (int ci = 0; ci < nc; ci++)
                    if (s_measure((s_engine)e, (int)clients[ci], &sk, &sh, &rows[nrows]) == 0)
                        nrows++;
            s_workers_stop(&sk);
        }
    }
    rc = 0;
out:
    s_stack_stop(&sk);
    bench_loadavg(rin.load_after, sizeof rin.load_after, "");
    rin.rows = rows;
    rin.nrows = nrows;
    if (rc == 0) {
        void (*report)(FILE *, const s_report_in *) = o_search ? s_report_search : s_report;
        report(stdout, &rin);
        if (o_out) {
            FILE *f = fopen(o_out, "w");
            if (f) {
                report(f, &rin);
                fclose(f);
            } else {
                log_error("bench.out", "path=%s error=\"%s\"", o_out, strerror(errno));
            }
        }
    }
    size_t errs = 0;
    for (size_t i = 0; i < nrows; i++)
        errs += rows[i].errors;
    for (size_t i = 0; pg && i < nq; i++) {
        free(pg[i].ids);
        free(pg[i].req.data);
        free(pg[i].query);
    }
    free(pg);
    for (size_t i = 0; qs && i < rin.nqueries; i++)
        free(qs[i].category);
    free(qs);
    s_corpus_free(&corpus);
    zmq_ctx_term(ctx);
    return rc != 0 || errs || rin.mismatched_pages ? 1 : 0;
}
