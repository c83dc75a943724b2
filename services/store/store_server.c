/*
 * store_server: see store_server.h for the loop. Requests are dispatched
 * through s_handlers (one row per Request body); internal bodies carry a
 * packed bulletin.internal.StoreRequest and are dispatched again by its body.
 *
 * Every message is decoded into an arena (core/arena.h): the envelope and
 * the internal StoreRequest inside it go to the same arena, a write keeps
 * its arena until its group is committed and answered, and is then freed in
 * one reset instead of one free per string. Arenas are recycled (s_pool).
 */
#include "store_server.h"

#include "arena.h"
#include "clock.h"
#include "http.h"
#include "log.h"
#include "store_codec.h"
#include "store_db.h"
#include "wire.h"
#include "grow.h"

#include <errno.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A write request waiting for the group commit. */
typedef struct {
    zio_route route;
    uint64_t request_id;
    arena *ar;       /* owned: its decoded Request and StoreRequest */
    size_t first, n; /* its ops in s_server.ops */
} s_pending;

#define S_POOL 16                 /* idle arenas kept for reuse */
#define S_KEEP ((size_t)1 << 20)  /* ... each keeping at most this much memory */
#define S_SCRATCH_KEEP ((size_t)4 << 20)

typedef struct {
    const store_server_config *cfg;
    store_db *db;
    void *ctx, *api, *feed;
    int sigfd;
    char instance[300];
    int64_t started_ms;
    /* the group being collected */
    s_pending *pend;
    size_t n_pend, cap_pend;
    Bulletin__Internal__WriteOp **ops;
    size_t n_ops, cap_ops;
    /* arenas: the one the next message is decoded into, and idle ones */
    arena *scratch;
    arena *pool[S_POOL];
    size_t n_pool;
    /* metrics */
    uint64_t commits, ops_committed, commit_failures, requests, bad_requests;
    uint64_t sync_requests, sync_from_zero, sync_changes_sent, feed_messages;
    uint64_t reply_failures;
    char last_failure[600]; /* why the last commit failed; "" after a success */
    http_server *http;      /* /healthz and /metrics, NULL when off */
} s_server;

typedef int (*s_handler)(s_server *s, zio_route *route, Bulletin__Request *req);

/* --- replies ------------------------------------------------------------- */

static void s_send(s_server *s, const zio_route *route, Bulletin__Reply *rep)
{
    rep->served_by = s->instance;
    rep->applied_seq = store_db_last_seq(s->db);
    if (wire_send(s->api, route, &rep->base) < 0) {
        s->reply_failures++;
        log_warn("store.reply_failed", "request_id=%llu error=\"%s\"",
                 (unsigned long long)rep->request_id, zmq_strerror(errno));
    }
}

static void s_send_status(s_server *s, const zio_route *route, uint64_t request_id,
                          wire_code code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void s_send_status(s_server *s, const zio_route *route, uint64_t request_id,
                          wire_code code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    Bulletin__Reply rep;
    Bulletin__Status st;
    wire_reply_init(&rep, &st, request_id);
    st.code = code;
    st.message = msg;
    if (code != BULLETIN__STATUS_CODE__OK && code != BULLETIN__STATUS_CODE__NOT_FOUND) {
        s->bad_requests++;
        log_warn("store.bad_request", "request_id=%llu code=%s why=\"%s\"",
                 (unsigned long long)request_id, wire_code_name(code), msg);
    }
    s_send(s, route, &rep);
}

/* Reply OK with Reply.internal = a packed StoreReply. */
static void s_send_internal(s_server *s, const zio_route *route, uint64_t request_id,
                            const uint8_t *data, size_t len)
{
    Bulletin__Reply rep;
    Bulletin__Status st;
    wire_reply_init(&rep, &st, request_id);
    rep.body_case = BULLETIN__REPLY__BODY_INTERNAL;
    rep.internal.data = (uint8_t *)data;
    rep.internal.len = len;
    s_send(s, route, &rep);
}

/* --- public bodies ------------------------------------------------------- */

static int s_on_get(s_server *s, zio_route *route, Bulletin__Request *req)
{
    const Bulletin__GetRequest *g = req->get;
    bool has_key = g->key && g->key[0];
    if (g->id && has_key) {
        s_send_status(s, route, req->request_id, BULLETIN__STATUS_CODE__INVALID_ARGUMENT,
                      "Get takes an id or a key, not both");
        return 0;
    }
    if (!g->id && !has_key) {
        s_send_status(s, route, req->request_id, BULLETIN__STATUS_CODE__INVALID_ARGUMENT,
                      "Get needs an id or a key");
        return 0;
    }
    store_buf b = {0};
    int rc = store_db_get(s->db, g->id, g->key, has_key ? strlen(g->key) : 0, &b);
    if (rc == MDB_NOTFOUND) {
        if (has_key)
            s_send_status(s, route, req->request_id, BULLETIN__STATUS_CODE__NOT_FOUND,
                          "no article with key '%.300s'", g->key);
        else
            s_send_status(s, route, req->request_id, BULLETIN__STATUS_CODE__NOT_FOUND,
                          "no article with id %llu", (unsigned long long)g->id);
        return 0;
    }
    Bulletin__Article *a = rc ? NULL : bulletin__article__unpack(NULL, b.len, b.data);
    store_buf_free(&b);
    if (!a) {
        log_error("store.get", "id=%llu error=\"%s\"", (unsigned long long)g->id,
                  rc ? mdb_strerror(rc) : "stored article does not decode");
        s_send_status(s, route, req->request_id, BULLETIN__STATUS_CODE__INTERNAL,
                      "the store could not read this article: %s",
                      rc ? mdb_strerror(rc) : "stored article does not decode");
        return 0;
    }
    Bulletin__Reply rep;
    Bulletin__Status st;
    Bulletin__GetReply gr = BULLETIN__GET_REPLY__INIT;
    wire_reply_init(&rep, &st, req->request_id);
    gr.article = a;
    rep.body_case = BULLETIN__REPLY__BODY_GET;
    rep.get = &gr;
    s_send(s, route, &rep);
    bulletin__article__free_unpacked(a, NULL);
    return 0;
}

/* The store's metrics, for the Stats request and for /metrics. */
#define S_N_METRICS 18
typedef struct {
    Bulletin__Metric m[S_N_METRICS], *mp[S_N_METRICS];
    Bulletin__StatsReply sr;
} s_stats;

/* Fill st (which points into s and itself). Returns 0 or an LMDB error. */
static int s_stats_build(s_server *s, s_stats *st)
{
    store_db_info info;
    int rc = store_db_info_get(s->db, &info);
    if (rc)
        return rc;
    const struct {
        const char *name;
        double value;
        const char *help;
        bool counter;
    } m[S_N_METRICS] = {
        {"articles", (double)info.articles, "articles stored", false},
        {"tombstones", (double)(info.log_entries - info.articles), "DELETE entries in the log",
         false},
        {"last_seq", (double)info.last_seq, "last committed seq", false},
        {"next_id", (double)info.next_id, "id the next new article gets", false},
        {"map_size_bytes", (double)info.map_size, "LMDB map size", false},
        {"map_used_bytes", (double)info.map_used, "LMDB map bytes in use", false},
        {"commits", (double)s->commits, "group commits since start", true},
        {"commit_failures", (double)s->commit_failures, "failed group commits since start", true},
        {"ops_committed", (double)s->ops_committed, "write ops in committed groups", true},
        {"mean_batch_ops", s->commits ? (double)s->ops_committed / (double)s->commits : 0,
         "ops per group commit", false},
        {"requests", (double)s->requests, "requests received", true},
        {"bad_requests", (double)s->bad_requests, "requests answered with an error", true},
        {"reply_failures", (double)s->reply_failures, "replies that could not be sent", true},
        {"sync_requests", (double)s->sync_requests, "Sync requests answered", true},
        {"sync_from_zero", (double)s->sync_from_zero, "Sync requests from seq 0 (snapshots)", true},
        {"sync_changes_sent", (double)s->sync_changes_sent, "changes sent in Sync chunks", true},
        {"feed_messages", (double)s->feed_messages, "feed messages published (incl. heartbeats)",
         true},
        {"uptime_s", (double)(clock_now_ms() - s->started_ms) / 1000.0, "seconds since start",
         false},
    };
    for (size_t i = 0; i < S_N_METRICS; i++) {
        bulletin__metric__init(&st->m[i]);
        st->m[i].name = (char *)m[i].name;
        st->m[i].value = m[i].value;
        st->m[i].help = (char *)m[i].help;
        st->m[i].counter = m[i].counter;
        st->mp[i] = &st->m[i];
    }
    bulletin__stats_reply__init(&st->sr);
    st->sr.service = "store";
    st->sr.instance = s->instance;
    st->sr.n_metrics = S_N_METRICS;
    st->sr.metrics = st->mp;
    return 0;
}

static int s_on_stats(s_server *s, zio_route *route, Bulletin__Request *req)
{
    s_stats st;
    int rc = s_stats_build(s, &st);
    if (rc) {
        s_send_status(s, route, req->request_id, BULLETIN__STATUS_CODE__INTERNAL,
                      "cannot read the store's counters: %s", mdb_strerror(rc));
        return 0;
    }
    Bulletin__Reply rep;
    Bulletin__Status status;
    wire_reply_init(&rep, &status, req->request_id);
    rep.body_case = BULLETIN__REPLY__BODY_STATS;
    rep.stats = &st.sr;
    s_send(s, route, &rep);
    return 0;
}

/* /healthz and /metrics: the same metrics and the same health as over ZeroMQ
 * (healthy while it serves reads; the detail says when writes fail). */
static void s_http_publish(s_server *s)
{
    if (!s->http)
        return;
    s_stats st;
    int rc = s_stats_build(s, &st);
    if (rc) {
        char detail[256];
        snprintf(detail, sizeof detail, "cannot read the store's counters: %s", mdb_strerror(rc));
        http_server_publish(s->http, NULL, false, detail);
        return;
    }
    http_server_publish(s->http, &st.sr, true, s->last_failure);
}

static int s_on_health(s_server *s, zio_route *route, Bulletin__Request *req)
{
    Bulletin__Reply rep;
    Bulletin__Status st;
    Bulletin__HealthReply hr = BULLETIN__HEALTH_REPLY__INIT;
    wire_reply_init(&rep, &st, req->request_id);
    hr.ok = true;
    hr.service = "store";
    hr.instance = s->instance;
    hr.applied_seq = store_db_last_seq(s->db);
    /* still ok for reads; the detail says that writes are failing */
    hr.detail = s->last_failure;
    rep.body_case = BULLETIN__REPLY__BODY_HEALTH;
    rep.health = &hr;
    s_send(s, route, &rep);
    return 0;
}

/* --- internal bodies ----------------------------------------------------- */

static void s_on_sync(s_server *s, zio_route *route, uint64_t request_id,
                      const Bulletin__Internal__SyncRequest *q)
{
    uint32_t max_changes = q->max_changes, max_bytes = q->max_bytes;
    if (max_changes > STORE_SERVER_SYNC_MAX_CHANGES)
        max_changes = STORE_SERVER_SYNC_MAX_CHANGES;
    if (max_bytes > STORE_SERVER_SYNC_MAX_BYTES)
        max_bytes = STORE_SERVER_SYNC_MAX_BYTES;
    store_buf chunk = {0}, reply = {0};
    store_sync_info info;
    char err[512];
    int rc = store_db_sync(s->db, q->from_seq, max_changes, max_bytes, &chunk, &info, err,
                           sizeof err);
    if (rc) {
        log_error("store.sync", "from_seq=%llu error=\"%s\"", (unsigned long long)q->from_seq,
                  err);
        s_send_status(s, route, request_id, BULLETIN__STATUS_CODE__INTERNAL,
                      "Sync from seq %llu failed: %s", (unsigned long long)q->from_seq, err);
        store_buf_free(&chunk);
        return;
    }
    s->sync_requests++;
    if (q->from_seq == 0)
        s->sync_from_zero++;
    s->sync_changes_sent += info.n_changes;
    /* StoreReply { sync = 2 } around the chunk */
    if (store_codec_bytes(&reply, 2, chunk.data, chunk.len, true) < 0) {
        s_send_status(s, route, request_id, BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED,
                      "out of memory building a Sync chunk of %zu bytes", chunk.len);
    } else {
        s_send_internal(s, route, request_id, reply.data, reply.len);
        log_debug("store.sync", "from_seq=%llu changes=%zu bytes=%zu head_seq=%llu done=%d",
                  (unsigned long long)q->from_seq, info.n_changes, reply.len,
                  (unsigned long long)info.head_seq, info.done);
    }
    store_buf_free(&chunk);
    store_buf_free(&reply);
}

/* Collect a WriteBatch for the group commit; when kept, the pending write
 * takes s->scratch (the arena holding req and sreq). Returns 1 (kept) or 0. */
static int s_on_write(s_server *s, zio_route *route, Bulletin__Request *req,
                      Bulletin__Internal__StoreRequest *sreq)
{
    const Bulletin__Internal__WriteBatch *wb = sreq->write;
    if (wb->n_ops > STORE_SERVER_MAX_BATCH_OPS) {
        s_send_status(s, route, req->request_id, BULLETIN__STATUS_CODE__INVALID_ARGUMENT,
                      "a WriteBatch holds at most %d ops (this one has %zu): split it",
                      STORE_SERVER_MAX_BATCH_OPS, wb->n_ops);
        return 0;
    }
    if (s->n_pend == s->cap_pend) {
        s_pending *p = grow(s->pend, &s->cap_pend, sizeof *p, 64);
        if (!p)
            goto oom;
        s->pend = p;
    }
    if (s->cap_ops - s->n_ops < wb->n_ops) {
        Bulletin__Internal__WriteOp **p =
            grow_to(s->ops, &s->cap_ops, sizeof *p, 1024, s->n_ops + wb->n_ops);
        if (!p)
            goto oom;
        s->ops = p;
    }
    s_pending *p = &s->pend[s->n_pend];
    if (zio_route_copy(&p->route, route) < 0)
        goto oom;
    p->request_id = req->request_id;
    p->ar = s->scratch;
    s->scratch = NULL;
    p->first = s->n_ops;
    p->n = wb->n_ops;
    if (wb->n_ops)
        memcpy(s->ops + s->n_ops, wb->ops, wb->n_ops * sizeof *wb->ops);
    s->n_ops += wb->n_ops;
    s->n_pend++;
    return 1;
oom:
    s_send_status(s, route, req->request_id, BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED,
                  "the store is out of memory: retry later");
    return 0;
}

static int s_on_internal(s_server *s, zio_route *route, Bulletin__Request *req)
{
    wire_code code;
    char why[512];
    /* into the same arena as the envelope: one reset frees both. Bad strings
     * are refused too: ingest never sends them, a bad string stored would
     * reach every reader */
    Bulletin__Internal__StoreRequest *sreq =
        (Bulletin__Internal__StoreRequest *)arena_unpack_strings(
            s->scratch, &bulletin__internal__store_request__descriptor, req->internal.data,
            req->internal.len, WIRE_BUDGET(req->internal.len), &code, why, sizeof why);
    if (!sreq) {
        s_send_status(s, route, req->request_id, code, "internal body: %s", why);
        return 0;
    }
    switch (sreq->body_case) {
    case BULLETIN__INTERNAL__STORE_REQUEST__BODY_WRITE:
        return s_on_write(s, route, req, sreq);
    case BULLETIN__INTERNAL__STORE_REQUEST__BODY_SYNC:
        s_on_sync(s, route, req->request_id, sreq->sync);
        break;
    default:
        s_send_status(s, route, req->request_id, BULLETIN__STATUS_CODE__INVALID_ARGUMENT,
                      "the internal StoreRequest has no body (expected write or sync)");
        break;
    }
    return 0;
}

/* One row per Request body this service answers. */
static const struct {
    Bulletin__Request__BodyCase body;
    const char *name;
    s_handler fn;
} s_handlers[] = {
    {BULLETIN__REQUEST__BODY_GET, "get", s_on_get},
    {BULLETIN__REQUEST__BODY_STATS, "stats", s_on_stats},
    {BULLETIN__REQUEST__BODY_HEALTH, "health", s_on_health},
    {BULLETIN__REQUEST__BODY_INTERNAL, "internal", s_on_internal},
};

static const char *s_body_name(Bulletin__Request__BodyCase b)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(&bulletin__request__descriptor, (unsigned)b);
    return f ? f->name : "unknown";
}

/* Handle one received message; takes the body, the route stays the caller's. */
static void s_handle(s_server *s, zio_route *route, zmq_msg_t *body)
{
    uint64_t request_id = 0;
    wire_code code;
    char why[512];
    s->requests++;
    size_t len = zmq_msg_size(body);
    if (len == 0) {
        /* zio gives an empty body for an empty frame and for a wrong shape */
        zmq_msg_close(body);
        s_send_status(s, route, 0, BULLETIN__STATUS_CODE__INVALID_ARGUMENT,
                      "empty or malformed message: expected an empty delimiter frame, then "
                      "exactly one frame holding a protobuf bulletin.Request");
        return;
    }
    if (!s->scratch) {
        s->scratch = s->n_pool ? s->pool[--s->n_pool] : arena_new(0);
        if (!s->scratch) {
            zmq_msg_close(body);
            s_send_status(s, route, 0, BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED,
                          "the store is out of memory: retry later");
            return;
        }
    }
    bool clean = true;
    Bulletin__Request *req =
        arena_request_unpack(s->scratch, zmq_msg_data(body), len, WIRE_BUDGET(len), &request_id,
                             &clean, &code, why, sizeof why);
    /* protobuf-c checks neither UTF-8 nor NUL: a bad key would be echoed in an
     * error message that clients cannot decode (checked in the same walk as
     * the rest; walked again to name the field only when one is bad) */
    if (req && !clean && wire_strings_why(&bulletin__request__descriptor, zmq_msg_data(body), len,
                                          why, sizeof why) > 0) {
        req = NULL;
        code = BULLETIN__STATUS_CODE__INVALID_ARGUMENT;
    }
    zmq_msg_close(body);
    if (!req) {
        arena_reset(s->scratch, S_SCRATCH_KEEP);
        s_send_status(s, route, request_id, code, "%s", why);
        return;
    }
    for (size_t i = 0; i < sizeof s_handlers / sizeof s_handlers[0]; i++) {
        if (s_handlers[i].body == req->body_case) {
            /* a handler that keeps the request takes s->scratch (sets it NULL) */
            s_handlers[i].fn(s, route, req);
            if (s->scratch)
                arena_reset(s->scratch, S_SCRATCH_KEEP);
            return;
        }
    }
    s_send_status(s, route, request_id, BULLETIN__STATUS_CODE__UNIMPLEMENTED,
                  "the store does not answer '%s' requests (send writes to bulletin-ingest "
                  "and reads to bulletin-query)",
                  s_body_name(req->body_case));
    arena_reset(s->scratch, S_SCRATCH_KEEP);
}

/* --- group commit and feed ----------------------------------------------- */

static void s_feed_send(s_server *s, store_buf *b, uint64_t last_seq)
{
    if (store_codec_uint(b, 2, last_seq) < 0 ||
        store_codec_bytes(b, 3, store_db_uuid(s->db), STORE_DB_UUID_BYTES, true) < 0) {
        log_error("store.feed", "error=\"out of memory\"");
        return;
    }
    if (zmq_send(s->feed, b->data, b->len, ZMQ_DONTWAIT) < 0)
        log_warn("store.feed", "error=\"%s\"", zmq_strerror(errno));
    else
        s->feed_messages++;
}

static void s_publish(s_server *s, const store_write *w)
{
    store_buf b = {0};
    size_t n = 0;
    for (size_t i = 0; i < w->n_changes; i++) {
        const store_change *c = &w->changes[i];
        size_t fs = store_codec_field_size(1, c->bytes.len);
        if (n > 0 && (n >= STORE_SERVER_FEED_CHANGES || b.len + fs > STORE_SERVER_FEED_BYTES)) {
            s_feed_send(s, &b, w->changes[i - 1].seq);
            b.len = 0;
            n = 0;
        }
        if (store_codec_bytes(&b, 1, c->bytes.data, c->bytes.len, true) < 0) {
            log_error("store.feed", "error=\"out of memory\" seq=%llu",
                      (unsigned long long)c->seq);
            break; /* replicas find the gap and Sync */
        }
        n++;
    }
    if (n > 0)
        s_feed_send(s, &b, w->last_seq);
    store_buf_free(&b);
}

static void s_heartbeat(s_server *s)
{
    store_buf b = {0};
    s_feed_send(s, &b, store_db_last_seq(s->db));
    store_buf_free(&b);
}

static void s_reply_writes(s_server *s, const store_write *w)
{
    for (size_t i = 0; i < s->n_pend; i++) {
        s_pending *p = &s->pend[i];
        Bulletin__IngestResult *res = calloc(p->n ? p->n : 1, sizeof *res);
        Bulletin__IngestResult **rp = calloc(p->n ? p->n : 1, sizeof *rp);
        Bulletin__Internal__WriteBatchReply wr = BULLETIN__INTERNAL__WRITE_BATCH_REPLY__INIT;
        Bulletin__Internal__StoreReply sr = BULLETIN__INTERNAL__STORE_REPLY__INIT;
        ProtobufCBinaryData packed = {0, NULL};
        if (!res || !rp)
            goto oom;
        for (size_t j = 0; j < p->n; j++) {
            const store_result *r = &w->results[p->first + j];
            bulletin__ingest_result__init(&res[j]);
            res[j].key = r->key ? r->key : "";
            res[j].id = r->id;
            res[j].seq = r->seq;
            res[j].status = r->status;
            res[j].error = r->error ? r->error : "";
            rp[j] = &res[j];
        }
        wr.n_results = p->n;
        wr.results = rp;
        sr.body_case = BULLETIN__INTERNAL__STORE_REPLY__BODY_WRITE;
        sr.write = &wr;
        if (wire_pack_bytes(&sr.base, &packed) < 0)
            goto oom;
        s_send_internal(s, &p->route, p->request_id, packed.data, packed.len);
        free(packed.data);
        free(res);
        free(rp);
        continue;
    oom:
        free(res);
        free(rp);
        s_send_status(s, &p->route, p->request_id, BULLETIN__STATUS_CODE__INTERNAL,
                      "the writes were committed but the reply could not be built (out of "
                      "memory): retrying is safe");
    }
}

static void s_pending_clear(s_server *s)
{
    for (size_t i = 0; i < s->n_pend; i++) {
        zio_route_close(&s->pend[i].route);
        arena *a = s->pend[i].ar;
        s->pend[i].ar = NULL;
        if (s->n_pool < S_POOL) {
            arena_reset(a, S_KEEP);
            s->pool[s->n_pool++] = a;
        } else {
            arena_destroy(&a);
        }
    }
    s->n_pend = 0;
    s->n_ops = 0;
}

static void s_commit(s_server *s)
{
    if (s->n_pend == 0)
        return;
    store_write w = {0};
    char err[512];
    int64_t t0 = clock_mono_us();
    int rc = store_db_write(s->db, s->ops, s->n_ops, clock_now_ms(), &w, err, sizeof err);
    int64_t us = clock_mono_us() - t0;
    if (rc == 0) {
        s->commits++;
        s->ops_committed += s->n_ops;
        s->last_failure[0] = '\0';
        log_debug("store.commit", "docs=%zu batches=%zu changes=%zu us=%lld last_seq=%llu",
                  s->n_ops, s->n_pend, w.n_changes, (long long)us,
                  (unsigned long long)w.last_seq);
        s_reply_writes(s, &w);
        s_publish(s, &w);
    } else {
        s->commit_failures++;
        snprintf(s->last_failure, sizeof s->last_failure, "degraded: the last commit failed: %s",
                 err);
        bool space = rc == MDB_MAP_FULL || rc == ENOSPC || rc == EDQUOT || rc == EFBIG;
        log_error("store.commit", "docs=%zu batches=%zu error=\"%s\"", s->n_ops, s->n_pend, err);
        for (size_t i = 0; i < s->n_pend; i++)
            s_send_status(s, &s->pend[i].route, s->pend[i].request_id,
                          space ? BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED
                                : BULLETIN__STATUS_CODE__INTERNAL,
                          "nothing was written: %s", err);
    }
    store_write_clear(&w);
    s_pending_clear(s);
}

/* Drain what is waiting on the API socket: reads answered, writes collected. */
static void s_drain(s_server *s)
{
    size_t bytes = 0;
    while (s->n_ops < STORE_SERVER_MAX_OPS && bytes < STORE_SERVER_MAX_BYTES) {
        zio_route route;
        zmq_msg_t body;
        if (zio_recv_routed(s->api, &route, &body, ZMQ_DONTWAIT) < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            if (e != EAGAIN)
                log_warn("store.recv", "error=\"%s\"", zmq_strerror(e));
            break;
        }
        bytes += zmq_msg_size(&body) + 64;
        s_handle(s, &route, &body);
        zio_route_close(&route);
    }
}

/* --- run ----------------------------------------------------------------- */

int store_server_config_check(const store_server_config *cfg, char *err, size_t cap)
{
    if (!cfg->data_dir || !*cfg->data_dir) {
        snprintf(err, cap, "the data directory is an empty string: give a path (--data DIR)");
        return -1;
    }
    if (cfg->map_size < 0 || cfg->heartbeat_ms <= 0 || cfg->heartbeat_ms > 3600000) {
        snprintf(err, cap, "out of range: map-size >= 0, heartbeat-ms 1..3600000");
        return -1;
    }
    if (cfg->max_msg < 0 || (cfg->max_msg > 0 && cfg->max_msg < STORE_SERVER_MIN_MAX_MSG)) {
        snprintf(err, cap, "--max-msg is %lld: give 0 (no limit) or at least %u bytes (the "
                           "ingest sends write batches of up to 4 MiB)",
                 cfg->max_msg, STORE_SERVER_MIN_MAX_MSG);
        return -1;
    }
    if (zio_endpoints_check("--bind", cfg->bind, true, false, err, cap) < 0 ||
        zio_endpoints_check("--feed", cfg->feed, true, false, err, cap) < 0 ||
        http_listen_check(cfg->http, err, cap) < 0)
        return -1;
    return 0;
}

int store_server_run(const store_server_config *cfg)
{
    s_server s = {.cfg = cfg, .sigfd = -1};
    char host[256] = "localhost", err[640];
    int rc = 1;
    if (store_server_config_check(cfg, err, sizeof err) < 0) {
        log_error("store.config", "error=\"%s\"", err);
        return 1;
    }
    if (gethostname(host, sizeof host) != 0)
        strcpy(host, "localhost");
    host[sizeof host - 1] = '\0';
    snprintf(s.instance, sizeof s.instance, "%s:%d", host, (int)getpid());
    s.started_ms = clock_now_ms();

    s.sigfd = zio_signal_fd();
    if (s.sigfd < 0) {
        log_error("store.start", "error=\"cannot set up signal handling: %s\"", strerror(errno));
        return 1;
    }
    s.db = store_db_open(cfg->data_dir, cfg->map_size > 0 ? (size_t)cfg->map_size : 0, err,
                         sizeof err);
    if (!s.db) {
        log_error("store.start", "data=%s error=\"%s\"", cfg->data_dir, err);
        goto out;
    }
    s.ctx = zmq_ctx_new();
    if (!s.ctx)
        goto out;
    s.api = zio_socket(s.ctx, ZMQ_ROUTER, 500, cfg->max_msg);
    s.feed = zio_socket(s.ctx, ZMQ_PUB, 200, 0);
    if (!s.api || !s.feed) {
        log_error("store.start", "error=\"cannot create sockets: %s\"", zmq_strerror(errno));
        goto out;
    }
    /* replies to pipelining clients (ingest keeps many writes in flight) must
     * not hit the HWM: a full pipe is a lost reply with ROUTER_MANDATORY */
    int hwm = 10000;
    zmq_setsockopt(s.feed, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s.api, ZMQ_SNDHWM, &hwm, sizeof hwm);
    if (zio_bind(s.api, cfg->bind) < 0 || zio_bind(s.feed, cfg->feed) < 0)
        goto out;

    store_db_info info;
    if (store_db_info_get(s.db, &info) == 0)
        log_info("store.start",
                 "data=%s bind=%s feed=%s last_seq=%llu articles=%llu next_id=%llu "
                 "map_size=%llu instance=%s",
                 cfg->data_dir, cfg->bind, cfg->feed, (unsigned long long)info.last_seq,
                 (unsigned long long)info.articles, (unsigned long long)info.next_id,
                 (unsigned long long)info.map_size, s.instance);

    /* HTTP is a side channel: if it cannot listen (logged), the store runs on */
    s.http = http_server_new(cfg->http, "store");
    s_http_publish(&s);

    int64_t hb_ms = cfg->heartbeat_ms > 0 ? cfg->heartbeat_ms : 1000;
    int64_t next_hb = clock_mono_ms() + hb_ms, next_check = clock_mono_ms() + 10000;
    int64_t next_http = clock_mono_ms() + STORE_SERVER_HTTP_MS;
    bool stop = false;
    while (!stop) {
        zmq_pollitem_t items[] = {{s.api, 0, ZMQ_POLLIN, 0}, {NULL, s.sigfd, ZMQ_POLLIN, 0}};
        int64_t now = clock_mono_ms();
        int64_t wake = s.http && next_http < next_hb ? next_http : next_hb;
        long timeout = wake > now ? (long)(wake - now) : 0;
        int n = zmq_poll(items, 2, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_error("store.poll", "error=\"%s\"", zmq_strerror(errno));
            break;
        }
        if (items[1].revents & ZMQ_POLLIN) {
            int sig = zio_signal_read(s.sigfd);
            if (sig) {
                log_info("store.stop", "signal=%d", sig);
                stop = true;
            }
        }
        if (items[0].revents & ZMQ_POLLIN) {
            s_drain(&s);
            s_commit(&s);
        }
        now = clock_mono_ms();
        if (now >= next_hb) {
            s_heartbeat(&s);
            next_hb = now + hb_ms;
        }
        if (now >= next_http) {
            s_http_publish(&s);
            next_http = now + STORE_SERVER_HTTP_MS;
        }
        if (now >= next_check) {
            int dead = store_db_reader_check(s.db);
            if (dead)
                log_warn("store.readers", "cleared=%d", dead);
            next_check = now + 10000;
        }
    }
    rc = 0;
    log_info("store.stopped", "last_seq=%llu commits=%llu ops_committed=%llu",
             (unsigned long long)store_db_last_seq(s.db), (unsigned long long)s.commits,
             (unsigned long long)s.ops_committed);
out:
    http_server_destroy(&s.http);
    s_pending_clear(&s);
    arena_destroy(&s.scratch);
    while (s.n_pool)
        arena_destroy(&s.pool[--s.n_pool]);
    free(s.pend);
    free(s.ops);
    zio_close(&s.api);
    zio_close(&s.feed);
    if (s.ctx)
        zmq_ctx_term(s.ctx);
    store_db_destroy(&s.db);
    if (s.sigfd >= 0)
        close(s.sigfd);
    return rc;
}
