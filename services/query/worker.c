/* worker: see worker.h for the replication state machine and the sockets. */
#include "worker.h"

#include "arena.h"
#include "broker.h"
#include "clock.h"
#include "http.h"
#include "list.h"
#include "log.h"
#include "qsearch.h"
#include "replica.h"
#include "syncdec.h"
#include "wire.h"
#include "zio.h"
#include "grow.h"

#include <errno.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define S_SEQ_REPORT_US 2000 /* at most one applied-seq report per 2 ms */
/* A batched answer waits at most this long for the next ones (s_replies_add).
 * Each REPLIES message costs a hand-off to ZeroMQ's I/O thread, which then
 * preempts the search thread, and a loopback send; at ~100 us per search, 100
 * sent ~2-3 answers per message, 500 sends ~5 (en, 16 clients: the I/O
 * thread 12.5 -> 7-8 us per search, context switches 0.78 -> 0.35-0.45 per
 * search each thread; bench/README "the worker's transport, session 7"). */
#define S_REPLY_HOLD_US 500
#define S_ARENA_KEEP ((size_t)4 << 20) /* bytes an arena keeps between store replies */

typedef struct {
    const worker_config *cfg;
    void *ctx;
    replica *rep;
    qsearch *search;            /* the full-text index of rep */
    char name[BROKER_NAME_MAX];
    void *feed, *store, *broker;
    /* replication */
    bool syncing, first_sync_done, resync_after;
    uint64_t sync_id, sync_from;
    int64_t sync_sent_us, sync_retry_us;
    zmq_msg_t *buf;
    size_t nbuf, capbuf;
    /* pipelining: the Sync chunk being applied (NULL otherwise), and the
     * store's next reply when it was read during that apply (s_prefetch) */
    const Bulletin__Internal__SyncChunk *applying;
    bool ahead;
    zmq_msg_t ahead_body;
    Bulletin__Reply *ahead_rep;
    Bulletin__Internal__StoreReply *ahead_sr;
    arena *ahead_ar;
    uint64_t ahead_sync_id;    /* w->sync_id when it was read */
    char ahead_why[256];
    /* store replies are decoded into these two arenas, in turn: a Sync
     * chunk's ~30,000 articles are one bump allocation per field and one
     * reset, not a malloc and a free each; two because the next reply is
     * decoded (s_prefetch) while the chunk before it is still being applied */
    arena *ar[2];
    int ar_next;
    /* broker */
    bool registered;
    int64_t broker_expiry_us, next_hb_us, next_report_us;
    bool report_pending;
    uint64_t reported_seq;
    /* the largest Reply frame the broker takes (its HEARTBEAT says; before
     * that, and from a broker that does not say, our own --max-msg); 0 = any.
     * A larger frame would make the broker's libzmq drop our connection. */
    uint64_t reply_max;
    /* answers to REQUESTS, sent together as one REPLIES (s_replies_flush) */
    zmq_msg_t out[BROKER_CREDIT_MAX];
    uint64_t out_tag[BROKER_CREDIT_MAX];
    int nout;
    int64_t out_first_us;
    http_server *http;          /* /healthz and /metrics, NULL when off */
    int64_t next_http_us;
    /* stats */
    uint64_t requests, syncs, gaps, feed_applied, sync_changes, wipes, searches, rebuilds;
} s_worker;

/* --- broker link -------------------------------------------------------------- */

/* Send n frames; `more` = more frames follow after these. */
static int s_send_frames(void *sock, const void *const *data, const size_t *len, int n, bool more)
{
    for (int i = 0; i < n; i++)
        if (zmq_send(sock, data[i], len[i],
                     ZMQ_DONTWAIT | (i + 1 < n || more ? ZMQ_SNDMORE : 0)) < 0)
            return -1;
    return 0;
}

static void s_u64(uint8_t b[8], uint64_t v) { replica_put_u64(b, v); }

/* Forget answers not sent yet (the broker that asked is gone). */
static void s_replies_drop(s_worker *w)
{
    for (int i = 0; i < w->nout; i++)
        zmq_msg_close(&w->out[i]);
    w->nout = 0;
}

/* Send the held answers as one [""][REPLIES][applied_seq]([tag][Reply])... */
static void s_replies_flush(s_worker *w)
{
    if (w->nout == 0)
        return;
    uint8_t cmd = BROKER_REPLIES, seq[8];
    uint64_t applied = replica_applied_seq(w->rep);
    s_u64(seq, applied);
    const void *d[] = {"", &cmd, seq};
    size_t l[] = {0, 1, 8};
    int rc = w->broker ? s_send_frames(w->broker, d, l, 3, true) : -1;
    for (int i = 0; i < w->nout && rc == 0; i++) {
        uint8_t t[8];
        s_u64(t, w->out_tag[i]);
        if (zmq_send(w->broker, t, 8, ZMQ_DONTWAIT | ZMQ_SNDMORE) < 0 ||
            zmq_msg_send(&w->out[i], w->broker, ZMQ_DONTWAIT | (i + 1 < w->nout ? ZMQ_SNDMORE : 0)) < 0)
            rc = -1;
    }
    if (rc == 0)
        w->reported_seq = applied;
    else
        log_warn("worker.reply_lost", "replies=%d error=\"%s\"", w->nout, zmq_strerror(errno));
    s_replies_drop(w); /* closing a sent message is a no-op */
}

/* Hold the answer `body` (taken) to a batched request; sent with the others
 * of this wake-up, or now when the first has waited S_REPLY_HOLD_US or half
 * our credit is held: each held answer is a slot the broker cannot refill,
 * and holding more would let this worker run out of requests before the
 * broker's next ones arrive. */
static void s_replies_add(s_worker *w, uint64_t tag, zmq_msg_t *body)
{
    if (w->nout == BROKER_CREDIT_MAX)
        s_replies_flush(w);
    int64_t now = clock_mono_us();
    if (w->nout == 0)
        w->out_first_us = now;
    zmq_msg_init(&w->out[w->nout]);
    zmq_msg_move(&w->out[w->nout], body);
    w->out_tag[w->nout++] = tag;
    if (now - w->out_first_us >= S_REPLY_HOLD_US || 2 * w->nout >= w->cfg->credit)
        s_replies_flush(w);
}

static void s_broker_connect(s_worker *w)
{
    s_replies_drop(w);
    zio_close(&w->broker);
    w->registered = false;
    w->reply_max = w->cfg->max_msg > 0 ? (uint64_t)w->cfg->max_msg : 0;
    w->broker = zio_socket(w->ctx, ZMQ_DEALER, 0, w->cfg->max_msg);
    if (!w->broker || zio_connect(w->broker, w->cfg->broker) < 0) {
        zio_close(&w->broker);
        return;
    }
    uint8_t cmd = BROKER_READY, seq[8], credit[4], flags[4] = {0, 0, 0, BROKER_FLAG_BATCH}, max[8];
    s_u64(seq, replica_applied_seq(w->rep));
    uint32_t c = (uint32_t)w->cfg->credit;
    credit[0] = (uint8_t)(c >> 24), credit[1] = (uint8_t)(c >> 16), credit[2] = (uint8_t)(c >> 8),
    credit[3] = (uint8_t)c;
    /* our socket's limit: the broker sends us no larger Request (a larger
     * frame would make libzmq drop this connection) */
    s_u64(max, w->cfg->max_msg > 0 ? (uint64_t)w->cfg->max_msg : 0);
    const void *d[] = {"", &cmd, w->name, seq, credit, flags, max};
    size_t l[] = {0, 1, strlen(w->name), 8, 4, 4, 8};
    /* the pipe exists once connect returned (immediate is off), so this queues */
    if (s_send_frames(w->broker, d, l, 7, false) < 0)
        log_warn("worker.register", "error=\"%s\"", zmq_strerror(errno));
    int64_t now = clock_mono_us();
    w->registered = true;
    w->reported_seq = replica_applied_seq(w->rep);
    w->broker_expiry_us = now + w->cfg->heartbeat_ms * w->cfg->liveness * 1000;
    w->next_hb_us = now + w->cfg->heartbeat_ms * 1000;
    log_info("worker.register", "broker=%s name=%s applied_seq=%llu", w->cfg->broker, w->name,
             (unsigned long long)w->reported_seq);
}

static void s_broker_heartbeat(s_worker *w)
{
    if (!w->broker)
        return;
    uint8_t cmd = BROKER_HEARTBEAT, seq[8];
    uint64_t applied = replica_applied_seq(w->rep);
    s_u64(seq, applied);
    const void *d[] = {"", &cmd, seq};
    size_t l[] = {0, 1, 8};
    if (s_send_frames(w->broker, d, l, 3, false) == 0)
        w->reported_seq = applied;
    int64_t now = clock_mono_us();
    w->next_hb_us = now + w->cfg->heartbeat_ms * 1000;
    w->next_report_us = now + S_SEQ_REPORT_US;
    w->report_pending = false;
}

/* The replica moved forward: tell the broker soon (rate-limited). */
static void s_seq_advanced(s_worker *w)
{
    if (!w->registered || replica_applied_seq(w->rep) == w->reported_seq)
        return;
    if (clock_mono_us() >= w->next_report_us)
        s_broker_heartbeat(w);
    else
        w->report_pending = true;
}

/* --- request handlers (one per body type) ----------------------------------- */

typedef struct {
    Bulletin__Reply rep;
    Bulletin__Status st;
    char why[512];
    /* bodies kept alive until the reply is packed */
    Bulletin__GetReply get;
    Bulletin__Article *article;
    list_result list;
    bool has_list;              /* the body is `list`, packed by list_reply_pack_zmq */
    qsearch_result search;
    Bulletin__HealthReply health;
    Bulletin__StatsReply stats;
    Bulletin__Metric m[16], *mp[16];
    char detail[160];
} s_answer;

typedef void (*s_handler)(s_worker *w, const Bulletin__Request *req, s_answer *a);

static void s_fail(s_answer *a, wire_code code, const char *fmt, const char *arg)
{
    a->st.code = code;
    snprintf(a->why, sizeof a->why, fmt, arg);
    a->st.message = a->why;
}

static void s_on_get(s_worker *w, const Bulletin__Request *req, s_answer *a)
{
    const Bulletin__GetRequest *g = req->get;
    bool by_key = g->key && *g->key;
    if ((g->id == 0) == !by_key) {
        s_fail(a, BULLETIN__STATUS_CODE__INVALID_ARGUMENT, "%s",
               "Get needs exactly one of id or key");
        return;
    }
    int code = replica_get(w->rep, g->id, by_key ? g->key : NULL, &a->article);
    if (code != BULLETIN__STATUS_CODE__OK) {
        char what[96];
        if (by_key)
            snprintf(what, sizeof what, "key");
        else
            snprintf(what, sizeof what, "id %llu", (unsigned long long)g->id);
        s_fail(a, code,
               code == BULLETIN__STATUS_CODE__NOT_FOUND ? "no article with this %s"
                                                        : "the replica could not be read (%s); see the worker's log",
               what);
        return;
    }
    bulletin__get_reply__init(&a->get);
    a->get.article = a->article;
    a->rep.body_case = BULLETIN__REPLY__BODY_GET;
    a->rep.get = &a->get;
}

static void s_on_list(s_worker *w, const Bulletin__Request *req, s_answer *a)
{
    char why[256] = "";
    int code = list_run(w->rep, req->list, &a->list, why, sizeof why);
    if (code != BULLETIN__STATUS_CODE__OK) {
        s_fail(a, code, "%s", why);
        return;
    }
    a->has_list = true; /* the stored summaries are copied into the reply as they are */
}

static void s_on_search(s_worker *w, const Bulletin__Request *req, s_answer *a)
{
    char why[384] = "";
    w->searches++;
    int code = qsearch_run(w->search, req->search, &a->search, why, sizeof why);
    if (code != BULLETIN__STATUS_CODE__OK) {
        s_fail(a, code, "%s", why);
        return;
    }
    a->rep.body_case = BULLETIN__REPLY__BODY_SEARCH;
    a->rep.search = &a->search.reply;
}

static void s_on_health(s_worker *w, const Bulletin__Request *req, s_answer *a)
{
    (void)req;
    bulletin__health_reply__init(&a->health);
    a->health.ok = w->first_sync_done;
    a->health.service = "worker";
    a->health.instance = w->name;
    a->health.applied_seq = replica_applied_seq(w->rep);
    snprintf(a->detail, sizeof a->detail, "%s", w->syncing ? "syncing" : "following the feed");
    a->health.detail = a->detail;
    a->rep.body_case = BULLETIN__REPLY__BODY_HEALTH;
    a->rep.health = &a->health;
}

/* Metrics of this worker, for Stats and /metrics. m and mp hold 16 entries. */
static void s_stats_fill(s_worker *w, Bulletin__StatsReply *sr, Bulletin__Metric *m,
                         Bulletin__Metric **mp)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                 ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
    const struct {
        const char *name;
        double v;
        const char *help;
        bool counter;
    } ms[] = {{"articles", (double)replica_count(w->rep), "articles in the replica", false},
              {"applied_seq", (double)replica_applied_seq(w->rep), "last applied seq", false},
              {"requests", (double)w->requests, "requests answered", true},
              {"syncs", (double)w->syncs, "Sync rounds started", true},
              {"gaps", (double)w->gaps, "gaps detected on the feed", true},
              {"feed_changes", (double)w->feed_applied, "changes applied from the feed", true},
              {"sync_changes", (double)w->sync_changes, "changes applied from Sync chunks", true},
              {"wipes", (double)w->wipes, "replica wiped (store_uuid changed)", true},
              {"searches", (double)w->searches, "Search requests answered", true},
              {"indexed", (double)qsearch_docs(w->search), "articles in the full-text index", false},
              {"typo_cache_bytes", (double)idx_typo_cache_bytes(qsearch_index(w->search)),
               "memory of the typo scan's term lists", false},
              {"index_rebuilds", (double)w->rebuilds, "full-text index rebuilt after a mismatch", true},
              {"cpu_seconds", cpu, "CPU time of the worker process (user+system)", true}};
    size_t n = sizeof ms / sizeof ms[0];
    for (size_t i = 0; i < n; i++) {
        bulletin__metric__init(&m[i]);
        m[i].name = (char *)ms[i].name;
        m[i].value = ms[i].v;
        m[i].help = (char *)ms[i].help;
        m[i].counter = ms[i].counter;
        mp[i] = &m[i];
    }
    bulletin__stats_reply__init(sr);
    sr->service = "worker";
    sr->instance = w->name;
    sr->metrics = mp;
    sr->n_metrics = n;
}

static void s_on_stats(s_worker *w, const Bulletin__Request *req, s_answer *a)
{
    (void)req;
    s_stats_fill(w, &a->stats, a->m, a->mp);
    a->rep.body_case = BULLETIN__REPLY__BODY_STATS;
    a->rep.stats = &a->stats;
}

static void s_http_publish(s_worker *w)
{
    if (!w->http)
        return;
    Bulletin__StatsReply sr;
    Bulletin__Metric m[16], *mp[16];
    s_stats_fill(w, &sr, m, mp);
    bool ok = w->first_sync_done && w->registered;
    http_server_publish(w->http, &sr, ok,
                        !w->first_sync_done ? "starting: first Sync from the store not finished"
                                            : "not registered with the broker");
}

static const struct {
    Bulletin__Request__BodyCase body;
    s_handler fn;
} s_handlers[] = {
    {BULLETIN__REQUEST__BODY_GET, s_on_get},
    {BULLETIN__REQUEST__BODY_LIST, s_on_list},
    {BULLETIN__REQUEST__BODY_SEARCH, s_on_search},
    {BULLETIN__REQUEST__BODY_HEALTH, s_on_health},
    {BULLETIN__REQUEST__BODY_STATS, s_on_stats},
};

static void s_bad_string(void *ud, const char *path, size_t off)
{
    s_answer *a = ud;
    if (a->st.code == BULLETIN__STATUS_CODE__OK) {
        a->st.code = BULLETIN__STATUS_CODE__INVALID_ARGUMENT;
        snprintf(a->why, sizeof a->why, "field %s is not valid UTF-8 or contains NUL (byte %zu)",
                 path, off);
        a->st.message = a->why;
    }
}

/* The packed answer *body (size bytes) is more than the broker takes:
 * replace it with RESOURCE_EXHAUSTED saying so. 0, or -1 when even that does
 * not fit (nothing to send: the broker's deadline answers the client). */
static int s_reply_too_big(s_worker *w, s_answer *a, size_t size, zmq_msg_t *body)
{
    zmq_msg_close(body);
    log_warn("worker.reply_too_big", "bytes=%zu broker_max_msg=%llu", size,
             (unsigned long long)w->reply_max);
    a->st.code = BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED;
    snprintf(a->why, sizeof a->why,
             "the answer is %zu bytes, more than the broker takes from a worker (its --max-msg "
             "is %llu bytes): ask for fewer or smaller results, or raise the broker's --max-msg",
             size, (unsigned long long)w->reply_max);
    a->st.message = a->why;
    a->rep.body_case = BULLETIN__REPLY__BODY__NOT_SET;
    if (wire_pack_zmq(&a->rep.base, body) < 0)
        return -1;
    if (zmq_msg_size(body) > w->reply_max) {
        zmq_msg_close(body);
        return -1;
    }
    return 0;
}

/* Answer one request body: send [""][REPLY][tag][applied][Reply], or hold
 * the answer for REPLIES when it came in a REQUESTS batch. */
static void s_handle(s_worker *w, uint64_t tag, const void *data, size_t len, bool batch)
{
    s_answer *a = calloc(1, sizeof *a);
    if (!a)
        return;
    uint64_t rid = 0;
    wire_code code;
    Bulletin__Request *req = wire_request_unpack(data, len, WIRE_BUDGET(len), &rid, &code, a->why,
                                                 sizeof a->why);
    wire_reply_init(&a->rep, &a->st, rid);
    a->rep.served_by = w->name;
    w->requests++;
    if (!req) {
        a->st.code = code;
        a->st.message = a->why;
    } else {
        wire_check_strings(&bulletin__request__descriptor, data, len, s_bad_string, a);
    }
    if (req && a->st.code == BULLETIN__STATUS_CODE__OK) {
        if (req->min_seq > replica_applied_seq(w->rep)) {
            /* the broker routes by applied seq; only a replica wipe gets here */
            char m[32];
            snprintf(m, sizeof m, "%llu", (unsigned long long)req->min_seq);
            s_fail(a, BULLETIN__STATUS_CODE__UNAVAILABLE,
                   "this worker has not applied seq %s yet; retry", m);
        } else {
            s_handler fn = NULL;
            for (size_t i = 0; i < sizeof s_handlers / sizeof s_handlers[0]; i++)
                if (s_handlers[i].body == req->body_case)
                    fn = s_handlers[i].fn;
            if (fn)
                fn(w, req, a);
            else
                s_fail(a, BULLETIN__STATUS_CODE__UNIMPLEMENTED, "%s",
                       "a query worker answers Get, List, Search, Health and Stats");
        }
    }
    a->rep.applied_seq = replica_applied_seq(w->rep);
    zmq_msg_t body;
    int prc;
    if (a->has_list && a->st.code == BULLETIN__STATUS_CODE__OK) {
        prc = list_reply_pack_zmq(&a->rep, &a->list, &body);
    } else if (a->rep.body_case == BULLETIN__REPLY__BODY_SEARCH) {
        prc = qsearch_reply_pack_zmq(&a->rep, &body); /* the hits packed by hand */
    } else {
        prc = wire_pack_zmq(&a->rep.base, &body);
    }
    if (prc == 0 && w->reply_max && zmq_msg_size(&body) > w->reply_max)
        prc = s_reply_too_big(w, a, zmq_msg_size(&body), &body);
    if (prc == 0 && batch) {
        s_replies_add(w, tag, &body);
    } else if (prc == 0) {
        uint8_t cmd = BROKER_REPLY, t[8], seq[8];
        s_u64(t, tag);
        s_u64(seq, a->rep.applied_seq);
        const void *d[] = {"", &cmd, t, seq};
        size_t l[] = {0, 1, 8, 8};
        if (s_send_frames(w->broker, d, l, 4, true) == 0 && zmq_msg_send(&body, w->broker, ZMQ_DONTWAIT) >= 0)
            w->reported_seq = a->rep.applied_seq;
        else
            log_warn("worker.reply_lost", "tag=%llu error=\"%s\"", (unsigned long long)tag,
                     zmq_strerror(errno));
        zmq_msg_close(&body);
    }
    wire_free(req);
    wire_free(a->article);
    list_result_clear(&a->list);
    qsearch_result_clear(&a->search);
    free(a);
}

static void s_on_broker(s_worker *w)
{
    zmq_msg_t f[BROKER_FRAMES_MAX];
    int n;
    bool bad;
    if (zio_recv_frames(w->broker, f, BROKER_FRAMES_MAX, &n, &bad, ZMQ_DONTWAIT) < 0)
        return;
    w->broker_expiry_us = clock_mono_us() + w->cfg->heartbeat_ms * w->cfg->liveness * 1000;
    if (bad || n < 2 || zmq_msg_size(&f[0]) != 0 || zmq_msg_size(&f[1]) != 1) {
        log_warn("worker.bad_broker_message", "frames=%d", n);
    } else {
        uint8_t cmd = *(uint8_t *)zmq_msg_data(&f[1]);
        if (cmd == BROKER_REQUEST && n == 4 && zmq_msg_size(&f[2]) == 8) {
            s_handle(w, replica_get_u64(zmq_msg_data(&f[2])), zmq_msg_data(&f[3]), zmq_msg_size(&f[3]),
                     false);
        } else if (cmd == BROKER_REQUESTS && n >= 4 && n % 2 == 0) {
            for (int i = 2; i < n; i += 2)
                if (zmq_msg_size(&f[i]) == 8)
                    s_handle(w, replica_get_u64(zmq_msg_data(&f[i])), zmq_msg_data(&f[i + 1]),
                             zmq_msg_size(&f[i + 1]), true);
                else
                    log_warn("worker.bad_broker_message", "cmd=REQUESTS tag_bytes=%zu", zmq_msg_size(&f[i]));
        } else if (cmd == BROKER_DISCONNECT) {
            log_info("worker.broker_forgot_us", "broker=%s", w->cfg->broker);
            for (int i = 0; i < n; i++)
                zmq_msg_close(&f[i]);
            s_broker_connect(w);
            return;
        } else if (cmd == BROKER_HEARTBEAT) {
            if (n >= 3 && zmq_msg_size(&f[2]) == 8)
                w->reply_max = replica_get_u64(zmq_msg_data(&f[2]));
        } else {
            log_warn("worker.bad_broker_message", "cmd=%u frames=%d", cmd, n);
        }
    }
    for (int i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
}

/* --- replication -------------------------------------------------------------- */

static void s_store_connect(s_worker *w)
{
    zio_close(&w->store);
    w->store = zio_socket(w->ctx, ZMQ_DEALER, 0, 0);
    if (w->store)
        zio_connect(w->store, w->cfg->store);
}

static void s_sync_send(s_worker *w)
{
    Bulletin__Internal__SyncRequest sr = BULLETIN__INTERNAL__SYNC_REQUEST__INIT;
    sr.from_seq = w->sync_from;
    sr.max_changes = (uint32_t)w->cfg->sync_max_changes;
    sr.max_bytes = (uint32_t)w->cfg->sync_max_bytes;
    Bulletin__Internal__StoreRequest st = BULLETIN__INTERNAL__STORE_REQUEST__INIT;
    st.body_case = BULLETIN__INTERNAL__STORE_REQUEST__BODY_SYNC;
    st.sync = &sr;
    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    req.version_major = WIRE_VERSION_MAJOR;
    req.request_id = ++w->sync_id;
    req.body_case = BULLETIN__REQUEST__BODY_INTERNAL;
    w->sync_sent_us = clock_mono_us();
    w->sync_retry_us = 0;
    if (wire_pack_bytes(&st.base, &req.internal) < 0)
        return;
    zmq_msg_t body;
    if (wire_pack_zmq(&req.base, &body) == 0) {
        if (zmq_send(w->store, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
            zmq_msg_send(&body, w->store, ZMQ_DONTWAIT) < 0)
            log_warn("worker.sync_send", "error=\"%s\"", zmq_strerror(errno));
        zmq_msg_close(&body);
    }
    free(req.internal.data);
}

/* An apply failed: if the index disagreed with the replica, rebuild it from
 * the replica (blocking; rare) before the changes are tried again. */
static void s_index_repair(s_worker *w)
{
    if (!qsearch_broken(w->search))
        return;
    w->rebuilds++;
    if (qsearch_rebuild(w->search) != 0)
        log_error("worker.index_repair", "why=\"rebuild failed; the next apply tries again\"");
}

/* malloc during the bulk load (the first Sync): every chunk allocates and
 * frees again tens of MB (the decoded reply, the analyzed articles, the
 * pending postings, LMDB's dirty pages), and glibc gave the freed memory
 * back to the kernel (heap trim, mmap'd blocks) only to fault it in, zeroed,
 * for the next chunk: ~160k page faults in a 307k-article en bootstrap.
 * During the load nothing is trimmed and blocks up to 32 MiB come from the
 * heap; after it, one malloc_trim gives the load's memory back. The mmap
 * threshold stays at 32 MiB and the trim threshold at 64 MiB for the
 * process's life: any M_MMAP_THRESHOLD ends glibc's dynamic thresholds (which
 * grow to those values anyway), so an arena may keep up to 64 MiB of freed
 * memory before it trims. mallopt's result is not checked: on failure glibc
 * keeps its defaults, which are only slower. */
#define S_BULK_MMAP_MAX ((size_t)32 << 20)

static void s_bulk_malloc(bool on)
{
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, (int)S_BULK_MMAP_MAX);
    mallopt(M_TRIM_THRESHOLD, on ? INT_MAX : (int)(2 * S_BULK_MMAP_MAX));
    if (!on)
        malloc_trim(0);
#else
    (void)on;
#endif
}

/* Whether the process may run on one CPU only (taskset): then the bulk
 * load's index is held across its chunks and written once at the end
 * (--index-bulk-mb), which takes less CPU. With more CPUs the per-chunk
 * writes overlap the analysis of the next chunk on the other core, while
 * the one write at the end runs alone: the bootstrap took longer (en
 * unpinned: 2.57-2.77 s per chunk, 2.71-3.47 s held; bench/README.md). */
static bool s_one_cpu(void)
{
    cpu_set_t cs;
    return sched_getaffinity(0, sizeof cs, &cs) == 0 && CPU_COUNT(&cs) == 1;
}

static void s_sync_start(s_worker *w, const char *why)
{
    if (w->syncing)
        return;
    w->syncing = true;
    w->syncs++;
    w->sync_from = replica_applied_seq(w->rep);
    if (!w->first_sync_done) { /* the bulk load: qsearch_optimize follows it */
        qsearch_set_bulk(w->search, true, s_one_cpu() ? (size_t)w->cfg->index_bulk_mb << 20 : 0);
        s_bulk_malloc(true);
    }
    log_info("worker.sync_start", "from_seq=%llu why=\"%s\"", (unsigned long long)w->sync_from, why);
    s_sync_send(w);
}

static void s_process_feed(s_worker *w, const zmq_msg_t *msg);

static void s_sync_finished(s_worker *w, uint64_t head)
{
    w->syncing = false;
    log_info("worker.sync_done", "applied_seq=%llu head_seq=%llu articles=%llu",
             (unsigned long long)replica_applied_seq(w->rep), (unsigned long long)head,
             (unsigned long long)replica_count(w->rep));
    if (!w->first_sync_done) {
        w->first_sync_done = true;
        /* the first sync is the bulk load: write (and merge) the index before serving */
        qsearch_optimize(w->search);
        s_bulk_malloc(false);
        s_broker_connect(w);
    }
    /* replay what the feed brought meanwhile, in order, until done or a new gap */
    size_t i = 0;
    while (i < w->nbuf && !w->syncing) {
        s_process_feed(w, &w->buf[i]);
        zmq_msg_close(&w->buf[i]);
        i++;
    }
    for (size_t j = 0; i > 0 && i + j < w->nbuf; j++) { /* shift what is left to the front */
        zmq_msg_init(&w->buf[j]);
        zmq_msg_move(&w->buf[j], &w->buf[i + j]);
        zmq_msg_close(&w->buf[i + j]);
    }
    w->nbuf -= i;
    if (!w->syncing && w->resync_after) {
        w->resync_after = false;
        s_sync_start(w, "feed buffer overflowed during the sync");
    }
    s_seq_advanced(w);
}

static void s_on_chunk(s_worker *w, const Bulletin__Internal__SyncChunk *c)
{
    size_t ulen;
    const uint8_t *uuid = replica_store_uuid(w->rep, &ulen);
    if (c->store_uuid.len > 0 &&
        (ulen != c->store_uuid.len || memcmp(uuid, c->store_uuid.data, ulen) != 0)) {
        if (ulen == 0 && replica_applied_seq(w->rep) == 0 && w->sync_from == 0) {
            replica_set_store_uuid(w->rep, c->store_uuid.data, c->store_uuid.len);
        } else {
            log_warn("worker.store_changed", "applied_seq=%llu why=\"store_uuid differs: wiping the replica\"",
                     (unsigned long long)replica_applied_seq(w->rep));
            w->wipes++;
            replica_reset(w->rep, c->store_uuid.data, c->store_uuid.len);
            for (size_t i = 0; i < w->nbuf; i++)
                zmq_msg_close(&w->buf[i]);
            w->nbuf = 0;
            w->sync_from = 0;
            s_sync_send(w);
            return;
        }
    }
    uint64_t last = w->sync_from;
    if (c->n_changes)
        last = c->changes[c->n_changes - 1]->seq;
    if (!c->done) {
        /* ask for the next chunk first: the store reads it while we apply this one */
        w->sync_from = last > w->sync_from ? last : replica_applied_seq(w->rep);
        s_sync_send(w);
    }
    /* the chunk's text analysis runs on the search's second thread while this
     * one applies the chunk (same txn, same order: see qsearch_bulk_begin) */
    qsearch_bulk_begin(w->search, c->changes, c->n_changes);
    w->applying = c->done ? NULL : c; /* a next chunk was asked for: s_prefetch may read it */
    int arc = replica_apply(w->rep, c->changes, c->n_changes, c->done ? c->head_seq : 0);
    w->applying = NULL;
    qsearch_bulk_done(w->search, c->changes); /* not the next chunk's job, if begun ahead */
    if (arc < 0) {
        s_index_repair(w);
        w->sync_id++; /* forget the chunk asked for above */
        w->sync_from = replica_applied_seq(w->rep);
        w->sync_retry_us = clock_mono_us() + 1000000; /* storage trouble: try again in 1 s */
        w->sync_sent_us = 0;
        return;
    }
    w->sync_changes += c->n_changes;
    if (c->done)
        s_sync_finished(w, c->head_seq);
}

/* Decode a store reply into arena a: *rep (NULL when it does not parse: why
 * says why) and, when it carries an internal body, *sr (NULL when that does
 * not parse). A Sync chunk is read in one pass (syncdec), anything else by
 * protobuf-c. Touches nothing of the worker's (s_prefetch runs it on the
 * analysis thread). (*rep)->internal may point into body: it is read only
 * here. */
static void s_store_unpack(arena *a, zmq_msg_t *body, Bulletin__Reply **rep,
                           Bulletin__Internal__StoreReply **sr, char *why, size_t whylen)
{
    syncdec_store_reply(a, zmq_msg_data(body), zmq_msg_size(body), rep, sr, why, whylen);
}

/* The next of the two arenas store replies are decoded into, in turn. */
static arena *s_next_arena(s_worker *w)
{
    arena *a = w->ar[w->ar_next];
    w->ar_next ^= 1;
    return a;
}

/* Handle one unpacked store reply (s_store_unpack), then free it with body
 * (a reset of its arena). */
static void s_store_reply(s_worker *w, zmq_msg_t *body, Bulletin__Reply *rep,
                          Bulletin__Internal__StoreReply *sr, arena *ar, const char *why)
{
    if (!rep) {
        log_warn("worker.bad_store_reply", "why=\"%s\"", why);
        goto out;
    }
    if (!w->syncing || rep->request_id != w->sync_id)
        goto out; /* an answer to a Sync we gave up on */
    if (rep->status && rep->status->code != BULLETIN__STATUS_CODE__OK) {
        log_warn("worker.sync_refused", "code=%s why=\"%s\"", wire_code_name(rep->status->code),
                 rep->status->message ? rep->status->message : "");
        w->sync_retry_us = clock_mono_us() + 1000000;
        w->sync_sent_us = 0;
        goto out;
    }
    if (rep->body_case != BULLETIN__REPLY__BODY_INTERNAL || !sr ||
        sr->body_case != BULLETIN__INTERNAL__STORE_REPLY__BODY_SYNC) {
        log_warn("worker.bad_store_reply", "why=\"not a SyncChunk\"");
        w->sync_retry_us = clock_mono_us() + 1000000;
        w->sync_sent_us = 0;
        goto out;
    }
    s_on_chunk(w, sr->sync);
out:
    if (sr && sr->body_case == BULLETIN__INTERNAL__STORE_REPLY__BODY_SYNC)
        qsearch_bulk_done(w->search, sr->sync->changes); /* begun ahead, then dropped */
    arena_reset(ar, S_ARENA_KEEP);
    zmq_msg_close(body);
}

/* The job prep of a reply read ahead (qsearch_bulk_begin_prep), on the
 * analysis thread: decode it, and hand over its changes when it is the Sync
 * chunk asked for (the worker reads none of the ahead_* fields until
 * qsearch_bulk_prep_wait). Its store_uuid is checked when it is handled
 * (s_on_chunk); a chunk refused there ends the job (s_store_reply). */
static void s_prefetch_prep(void *ud, Bulletin__Internal__Change *const **changes, size_t *n)
{
    s_worker *w = ud;
    s_store_unpack(w->ahead_ar, &w->ahead_body, &w->ahead_rep, &w->ahead_sr, w->ahead_why,
                   sizeof w->ahead_why);
    const Bulletin__Reply *rep = w->ahead_rep;
    const Bulletin__Internal__StoreReply *sr = w->ahead_sr;
    if (rep && rep->request_id == w->ahead_sync_id &&
        (!rep->status || rep->status->code == BULLETIN__STATUS_CODE__OK) && sr &&
        sr->body_case == BULLETIN__INTERNAL__STORE_REPLY__BODY_SYNC) {
        *changes = sr->sync->changes;
        *n = sr->sync->n_changes;
    }
}

/* The index's before-flush callback (qsearch_set_before_flush): while a Sync
 * chunk's transaction is about to flush and commit, read the store's answer
 * to the next Sync request if it is already here; the analysis thread
 * decodes it (s_prefetch_prep) and starts its analysis, so both overlap this
 * chunk's flush and commit (and the next chunk's replica writes). The reply
 * is handled after this chunk, in order (s_on_store); nothing is written
 * here. */
static void s_prefetch(void *ud)
{
    s_worker *w = ud;
    if (!w->applying || w->ahead || !w->store)
        return;
    zmq_msg_t body;
    if (zio_recv_body(w->store, &body, ZMQ_DONTWAIT) < 0)
        return;
    zmq_msg_init(&w->ahead_body);
    zmq_msg_move(&w->ahead_body, &body);
    zmq_msg_close(&body);
    w->ahead_ar = s_next_arena(w);
    w->ahead_sync_id = w->sync_id;
    w->ahead_rep = NULL;
    w->ahead_sr = NULL;
    w->ahead_why[0] = '\0';
    w->ahead = true;
    qsearch_bulk_begin_prep(w->search, s_prefetch_prep, w);
}

static void s_on_store(s_worker *w)
{
    zmq_msg_t body;
    if (zio_recv_body(w->store, &body, ZMQ_DONTWAIT) < 0)
        return;
    Bulletin__Reply *rep;
    Bulletin__Internal__StoreReply *sr;
    arena *ar = s_next_arena(w);
    char why[256];
    s_store_unpack(ar, &body, &rep, &sr, why, sizeof why);
    s_store_reply(w, &body, rep, sr, ar, why);
    while (w->ahead) { /* read during the apply above: next in order */
        qsearch_bulk_prep_wait(w->search); /* decoded by the analysis thread */
        w->ahead = false;
        zmq_msg_init(&body);
        zmq_msg_move(&body, &w->ahead_body);
        zmq_msg_close(&w->ahead_body);
        memcpy(why, w->ahead_why, sizeof why);
        s_store_reply(w, &body, w->ahead_rep, w->ahead_sr, w->ahead_ar, why);
    }
}

static void s_process_feed(s_worker *w, const zmq_msg_t *msg)
{
    size_t len = zmq_msg_size(msg);
    wire_code code;
    char why[256];
    Bulletin__Internal__FeedMessage *fm = (Bulletin__Internal__FeedMessage *)wire_unpack(
        &bulletin__internal__feed_message__descriptor, zmq_msg_data((zmq_msg_t *)msg), len,
        WIRE_BUDGET(len), &code, why, sizeof why);
    if (!fm) {
        log_warn("worker.bad_feed_message", "why=\"%s\"", why);
        return;
    }
    size_t ulen;
    const uint8_t *uuid = replica_store_uuid(w->rep, &ulen);
    if (fm->store_uuid.len && ulen &&
        (fm->store_uuid.len != ulen || memcmp(fm->store_uuid.data, uuid, ulen) != 0)) {
        wire_free(fm);
        s_sync_start(w, "the feed comes from another store_uuid");
        return;
    }
    uint64_t applied = replica_applied_seq(w->rep);
    uint64_t first = fm->n_changes ? fm->changes[0]->seq : 0;
    uint64_t lastc = fm->n_changes ? fm->changes[fm->n_changes - 1]->seq : 0;
    switch (replica_feed_check(applied, first, lastc, fm->n_changes, fm->last_seq)) {
    case REPLICA_FEED_SKIP:
        break;
    case REPLICA_FEED_GAP:
        w->gaps++;
        log_info("worker.gap", "applied_seq=%llu first_seq=%llu last_seq=%llu",
                 (unsigned long long)applied, (unsigned long long)first,
                 (unsigned long long)fm->last_seq);
        s_sync_start(w, "gap in the feed");
        break;
    case REPLICA_FEED_APPLY:
        if (replica_apply(w->rep, fm->changes, fm->n_changes, 0) < 0) {
            s_index_repair(w);
            s_sync_start(w, "could not apply a feed message");
            break;
        }
        w->feed_applied += fm->n_changes;
        if (fm->last_seq > replica_applied_seq(w->rep)) {
            w->gaps++;
            s_sync_start(w, "the store is ahead of the feed message");
        }
        break;
    }
    wire_free(fm);
}

static void s_on_feed(s_worker *w)
{
    zmq_msg_t body;
    if (zio_recv_body(w->feed, &body, ZMQ_DONTWAIT) < 0)
        return;
    if (!w->syncing) {
        s_process_feed(w, &body);
        zmq_msg_close(&body);
        s_seq_advanced(w);
        return;
    }
    if (w->nbuf >= (size_t)w->cfg->feed_buffer_max) {
        /* bounded: drop what we had and sync once more afterwards */
        for (size_t i = 0; i < w->nbuf; i++)
            zmq_msg_close(&w->buf[i]);
        w->nbuf = 0;
        w->resync_after = true;
    }
    if (w->nbuf == w->capbuf) {
        zmq_msg_t *nb = grow(w->buf, &w->capbuf, sizeof *nb, 64);
        if (!nb) {
            zmq_msg_close(&body);
            w->resync_after = true;
            return;
        }
        w->buf = nb;
    }
    zmq_msg_init(&w->buf[w->nbuf]);
    zmq_msg_move(&w->buf[w->nbuf++], &body);
    zmq_msg_close(&body);
}

/* --- main loop ------------------------------------------------------------------- */

void worker_config_defaults(worker_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->broker = "tcp://127.0.0.1:5559";
    cfg->store = "tcp://127.0.0.1:5557";
    cfg->feed = "tcp://127.0.0.1:5558";
    cfg->data = "./data/worker";
    cfg->heartbeat_ms = 1000;
    cfg->liveness = 3;
    cfg->sync_timeout_ms = 5000;
    cfg->sync_max_changes = 100000; /* as bulletin-worker's defaults (worker_main.c) */
    cfg->sync_max_bytes = 16 << 20;
    cfg->feed_buffer_max = 100000;
    cfg->credit = 16; /* see worker_main.c */
    cfg->max_msg = 16 << 20;
    cfg->index_bulk_mb = WORKER_INDEX_BULK_MB;
    cfg->stop_fd = -1;
}

static int64_t s_min(int64_t a, int64_t b) { return a < b ? a : b; }

int worker_config_check(const worker_config *cfg, char *err, size_t cap)
{
    /* the upper bounds keep now + heartbeat * liveness * 1000 (us) far from overflow */
    if (cfg->heartbeat_ms < 1 || cfg->heartbeat_ms > 3600000 || cfg->liveness < 1 ||
        cfg->liveness > 1000 || cfg->sync_timeout_ms < 1 || cfg->sync_timeout_ms > 3600000 ||
        cfg->feed_buffer_max < 1 || cfg->sync_max_changes < 0 || cfg->sync_max_changes > UINT32_MAX ||
        cfg->sync_max_bytes < 0 || cfg->sync_max_bytes > UINT32_MAX || cfg->index_pending_docs < 0 ||
        cfg->index_pending_docs > UINT32_MAX || cfg->index_bulk_mb < 0 ||
        cfg->index_bulk_mb > (long long)(SIZE_MAX >> 21) || cfg->credit < 1 ||
        cfg->credit > BROKER_CREDIT_MAX || cfg->max_msg < 0 || cfg->map_size_mb < 0 ||
        cfg->map_size_mb > (long long)(SIZE_MAX >> 21)) {
        snprintf(err, cap, "out of range: heartbeat-ms and sync-timeout-ms 1..3600000, liveness "
                           "1..1000, feed-buffer >= 1, credit 1..%d, sync-max-changes, "
                           "sync-max-bytes, index-pending-docs, index-bulk-mb, map-size-mb and max-msg >= 0",
                 BROKER_CREDIT_MAX);
        return -1;
    }
    if (!cfg->data || !*cfg->data) {
        snprintf(err, cap, "the data directory is an empty string: give a path (--data DIR)");
        return -1;
    }
    /* a malformed --broker, --store or --feed (no transport, a typo) would
     * leave the worker running on, connected to nothing */
    if (zio_endpoints_check("--broker", cfg->broker, false, false, err, cap) < 0 ||
        zio_endpoints_check("--store", cfg->store, false, false, err, cap) < 0 ||
        zio_endpoints_check("--feed", cfg->feed, false, false, err, cap) < 0 ||
        http_listen_check(cfg->http, err, cap) < 0)
        return -1;
    return 0;
}

int worker_run(const worker_config *cfg)
{
    char err[640];
    if (worker_config_check(cfg, err, sizeof err) < 0) {
        log_error("worker.config", "error=\"%s\"", err);
        return -1;
    }
    s_worker w = {.cfg = cfg};
    if (cfg->name && *cfg->name) {
        snprintf(w.name, sizeof w.name, "%s", cfg->name);
    } else {
        char host[48] = "worker";
        gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = '\0';
        snprintf(w.name, sizeof w.name, "%s-%d", host, (int)getpid());
    }
    w.rep = replica_new(cfg->data, (size_t)cfg->map_size_mb << 20);
    if (!w.rep)
        return -1;
    idx_options io = {0};
    io.max_pending_docs = (uint32_t)cfg->index_pending_docs;
    w.search = qsearch_new(w.rep, &io);
    if (!w.search) {
        replica_destroy(&w.rep);
        return -1;
    }
    qsearch_set_before_flush(w.search, s_prefetch, &w);
    w.ar[0] = arena_new(0);
    w.ar[1] = arena_new(0);
    if (!w.ar[0] || !w.ar[1]) {
        arena_destroy(&w.ar[0]);
        arena_destroy(&w.ar[1]);
        qsearch_destroy(&w.search);
        replica_destroy(&w.rep);
        return -1;
    }
    w.ctx = cfg->ctx ? cfg->ctx : zmq_ctx_new();
    int rc = -1;
    if (!w.ctx)
        goto done;
    /* feed first, so nothing committed after our Sync is missed (slow joiner) */
    w.feed = zio_socket(w.ctx, ZMQ_SUB, 0, 0);
    if (!w.feed || zmq_setsockopt(w.feed, ZMQ_SUBSCRIBE, "", 0) != 0 ||
        zio_connect(w.feed, cfg->feed) < 0)
        goto done;
    s_store_connect(&w);
    if (!w.store)
        goto done;
    log_info("worker.start", "name=%s data=%s store=%s feed=%s broker=%s applied_seq=%llu", w.name,
             cfg->data, cfg->store, cfg->feed, cfg->broker,
             (unsigned long long)replica_applied_seq(w.rep));
    w.http = http_server_new(cfg->http, "worker");
    s_http_publish(&w);
    s_sync_start(&w, "start");
    for (;;) {
        int64_t now = clock_mono_us();
        int64_t wake = now + 1000000;
        if (w.syncing)
            wake = s_min(wake, w.sync_retry_us ? w.sync_retry_us : w.sync_sent_us + cfg->sync_timeout_ms * 1000);
        if (w.broker) {
            wake = s_min(wake, s_min(w.next_hb_us, w.broker_expiry_us));
            if (w.report_pending)
                wake = s_min(wake, w.next_report_us);
        }
        long timeout = wake <= now ? 0 : (long)((wake - now + 999) / 1000);
        zmq_pollitem_t items[4] = {{w.feed, 0, ZMQ_POLLIN, 0},
                                   {w.store, 0, ZMQ_POLLIN, 0},
                                   {NULL, cfg->stop_fd, ZMQ_POLLIN, 0},
                                   {w.broker, 0, ZMQ_POLLIN, 0}};
        int nitems = w.broker ? 4 : 3;
        if (cfg->stop_fd < 0)
            items[2].fd = -1, items[2].events = 0;
        int n = zmq_poll(items, nitems, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == ETERM) {
                rc = 0;
                break;
            }
            log_error("worker.poll", "error=\"%s\"", zmq_strerror(errno));
            break;
        }
        if (cfg->stop_fd >= 0 && (items[2].revents & ZMQ_POLLIN)) {
            rc = 0;
            break;
        }
        /* requests first: they are what someone waits for */
        if (nitems == 4 && (items[3].revents & ZMQ_POLLIN))
            for (int i = 0; i < 64 && w.broker; i++) {
                int ev = 0;
                size_t sz = sizeof ev;
                s_on_broker(&w);
                if (!w.broker || zmq_getsockopt(w.broker, ZMQ_EVENTS, &ev, &sz) < 0 || !(ev & ZMQ_POLLIN))
                    break;
            }
        s_replies_flush(&w); /* the answers of this wake-up, together */
        if (items[1].revents & ZMQ_POLLIN)
            s_on_store(&w);
        if (items[0].revents & ZMQ_POLLIN)
            for (int i = 0; i < 64; i++) {
                int ev = 0;
                size_t sz = sizeof ev;
                s_on_feed(&w);
                if (zmq_getsockopt(w.feed, ZMQ_EVENTS, &ev, &sz) < 0 || !(ev & ZMQ_POLLIN))
                    break;
            }
        now = clock_mono_us();
        if (w.syncing) {
            if (w.sync_retry_us && now >= w.sync_retry_us) {
                s_sync_send(&w);
            } else if (!w.sync_retry_us && now >= w.sync_sent_us + cfg->sync_timeout_ms * 1000) {
                log_warn("worker.sync_timeout", "store=%s from_seq=%llu", cfg->store,
                         (unsigned long long)w.sync_from);
                s_store_connect(&w); /* Lazy Pirate: a fresh socket */
                if (w.store)
                    s_sync_send(&w);
            }
        }
        if (w.broker) {
            if (now >= w.broker_expiry_us) {
                log_warn("worker.broker_lost", "broker=%s", cfg->broker);
                s_broker_connect(&w);
            } else if (now >= w.next_hb_us || (w.report_pending && now >= w.next_report_us)) {
                s_broker_heartbeat(&w);
            }
        }
        if (w.http && now >= w.next_http_us) {
            s_http_publish(&w);
            w.next_http_us = now + 1000000;
        }
        if (!w.store) {
            s_store_connect(&w);
            if (!w.store)
                break;
        }
    }
done:
    if (w.broker) {
        uint8_t cmd = BROKER_DISCONNECT;
        const void *d[] = {"", &cmd};
        size_t l[] = {0, 1};
        s_send_frames(w.broker, d, l, 2, false);
        int linger = 200;
        zmq_setsockopt(w.broker, ZMQ_LINGER, &linger, sizeof linger);
    }
    s_replies_drop(&w);
    for (size_t i = 0; i < w.nbuf; i++)
        zmq_msg_close(&w.buf[i]);
    free(w.buf);
    http_server_destroy(&w.http);
    zio_close(&w.broker);
    zio_close(&w.store);
    zio_close(&w.feed);
    if (w.ctx && !cfg->ctx)
        zmq_ctx_term(w.ctx);
    qsearch_destroy(&w.search);
    replica_destroy(&w.rep);
    arena_destroy(&w.ar[0]);
    arena_destroy(&w.ar[1]);
    log_info("worker.stop", "name=%s", w.name);
    return rc;
}
