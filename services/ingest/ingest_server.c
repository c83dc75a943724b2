/*
 * ingest_server: see ingest_server.h.
 *
 * Life of a client request:
 *
 *   ROUTER recv -> decode (budgeted) -> dispatch table by body type
 *     Ingest: check strings on the raw bytes, prepare every item
 *             (ingest_validate), pack the valid ones into WriteBatch "parts",
 *             send each part to the store (DEALER, ZMQ_DONTWAIT) under its own
 *             request id -> pending
 *     Delete: one part with one delete op -> pending
 *
 *   pending --store reply for a part--> merge results --all parts in--> reply
 *           --deadline passed--> UNAVAILABLE, its parts forgotten (a late
 *             reply is dropped)
 *
 * A part is the unit the store answers; a pending request has 1..n parts.
 * Parts live in a hash table keyed by their id; pending requests live in a
 * doubly linked list scanned for deadlines (a scan per loop turn is cheap
 * next to protobuf decoding, and deadlines differ per request).
 *
 * The store DEALER has ZMQ_IMMEDIATE set: while the store is not connected
 * a send fails at once (UNAVAILABLE) instead of queueing writes that would
 * be replayed minutes later, after the client has been told they failed.
 */
#include "ingest_server.h"

#include "clock.h"
#include "http.h"
#include "ingest_validate.h"
#include "log.h"
#include "wire.h"
#include "zio.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_PART_BYTES (4u << 20) /* a WriteBatch sent to the store stays below this */
#define S_PART_OPS 2000
#define S_BUCKETS 4096
#define S_STOP_GRACE_US 1000000

typedef enum { S_INGEST, S_DELETE, S_PING } s_kind;

typedef struct s_pending s_pending;

typedef struct s_part {
    uint64_t id;
    s_pending *p;
    size_t op_base, n_ops;
    bool done;
    struct s_part *hnext;
} s_part;

struct s_pending {
    s_kind kind;
    zio_route route;
    uint64_t client_id;
    int64_t deadline_us; /* monotonic */
    uint32_t wait_ms;    /* the deadline, for the message */
    size_t n_items;
    Bulletin__IngestResult *results; /* strings owned (malloc) */
    size_t *op_item;                 /* op index -> item index */
    s_part **parts;
    size_t n_parts, parts_left, parts_failed;
    size_t n_unsent; /* parts that could not be sent (counted in parts_failed) */
    int fail_code;
    char fail_msg[512];
    s_pending *prev, *next;
};

typedef struct {
    const ingest_server_cfg *cfg;
    void *ctx, *router, *dealer;
    zio_route delim; /* one empty frame: [empty][body] to the store */
    char instance[128];
    uint64_t next_id;
    s_part *buckets[S_BUCKETS];
    s_pending *head; /* all pending requests, newest first */
    size_t in_flight;     /* client requests waiting for the store */
    int64_t store_seen_us; /* last time the store answered anything, 0 = never */
    uint64_t store_seq;
    int64_t next_ping_us;
    http_server *http;    /* /healthz and /metrics, NULL when off */
    int64_t next_http_us; /* next publish to http */
    struct {
        uint64_t requests, items, created, updated, unchanged, deleted, rejected,
            store_timeouts, bad_requests, late_replies;
    } m;
} s_server;

/* --- small helpers --------------------------------------------------------- */

static char *s_dup(const char *s)
{
    return strdup(s ? s : "");
}

/* Result strings are ours (malloc) or protobuf-c's static "" from _init. */
static void s_str_free(char **p)
{
    if (*p && *p != protobuf_c_empty_string)
        free(*p);
    *p = NULL;
}

static void s_result_clear(Bulletin__IngestResult *r)
{
    s_str_free(&r->key);
    s_str_free(&r->error);
    for (size_t i = 0; i < r->n_warnings; i++)
        free(r->warnings[i]);
    free(r->warnings);
    bulletin__ingest_result__init(r);
}

static int s_result_warn(Bulletin__IngestResult *r, const char *w)
{
    char **nw = realloc(r->warnings, (r->n_warnings + 1) * sizeof *nw);
    if (!nw)
        return -1;
    r->warnings = nw;
    if (!(nw[r->n_warnings] = s_dup(w)))
        return -1;
    r->n_warnings++;
    return 0;
}

static void s_result_error(Bulletin__IngestResult *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void s_result_error(Bulletin__IngestResult *r, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    s_str_free(&r->error);
    r->error = strdup(buf);
    r->status = BULLETIN__WRITE_STATUS__REJECTED;
}

static void s_reply_status(s_server *s, const zio_route *route, uint64_t id, int code,
                           const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void s_reply_status(s_server *s, const zio_route *route, uint64_t id, int code,
                           const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    Bulletin__Reply rep;
    Bulletin__Status st;
    wire_reply_init(&rep, &st, id);
    st.code = (Bulletin__StatusCode)code;
    st.message = msg;
    rep.served_by = s->instance;
    if (wire_send(s->router, route, &rep.base) < 0)
        log_debug("ingest.reply_lost", "request_id=%" PRIu64 " error=\"%s\"", id,
                  zmq_strerror(errno));
}

static void s_reply(s_server *s, const zio_route *route, Bulletin__Reply *rep)
{
    rep->served_by = s->instance;
    if (wire_send(s->router, route, &rep->base) < 0)
        log_debug("ingest.reply_lost", "request_id=%" PRIu64 " error=\"%s\"", rep->request_id,
                  zmq_strerror(errno));
}

/* --- the pending table ------------------------------------------------------- */

static void s_part_unlink(s_server *s, s_part *pt)
{
    s_part **pp = &s->buckets[pt->id % S_BUCKETS];
    while (*pp && *pp != pt)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = pt->hnext;
}

static s_part *s_part_find(s_server *s, uint64_t id)
{
    for (s_part *pt = s->buckets[id % S_BUCKETS]; pt; pt = pt->hnext)
        if (pt->id == id)
            return pt;
    return NULL;
}

static s_pending *s_pending_new(s_server *s, s_kind kind, const zio_route *route,
                                uint64_t client_id, uint32_t wait_ms, size_t n_items)
{
    s_pending *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->kind = kind;
    p->client_id = client_id;
    p->wait_ms = wait_ms;
    p->deadline_us = clock_mono_us() + (int64_t)wait_ms * 1000;
    p->n_items = n_items;
    if (route && zio_route_copy(&p->route, route) < 0) {
        free(p);
        return NULL;
    }
    if (n_items) {
        p->results = calloc(n_items, sizeof *p->results);
        p->op_item = calloc(n_items, sizeof *p->op_item);
        if (!p->results || !p->op_item) {
            zio_route_close(&p->route);
            free(p->results);
            free(p->op_item);
            free(p);
            return NULL;
        }
        for (size_t i = 0; i < n_items; i++)
            bulletin__ingest_result__init(&p->results[i]);
    }
    p->next = s->head;
    if (s->head)
        s->head->prev = p;
    s->head = p;
    if (kind != S_PING)
        s->in_flight++;
    return p;
}

static void s_pending_destroy(s_server *s, s_pending **pp)
{
    s_pending *p = *pp;
    if (!p)
        return;
    for (size_t i = 0; i < p->n_parts; i++) {
        if (!p->parts[i]->done)
            s_part_unlink(s, p->parts[i]);
        free(p->parts[i]);
    }
    free(p->parts);
    for (size_t i = 0; i < p->n_items; i++)
        s_result_clear(&p->results[i]);
    free(p->results);
    free(p->op_item);
    zio_route_close(&p->route);
    if (p->prev)
        p->prev->next = p->next;
    else
        s->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    if (p->kind != S_PING)
        s->in_flight--;
    free(p);
    *pp = NULL;
}

/* Send one store Request carrying `sreq` as a part of p; -1 when it could not
 * be sent (the part is then not registered). */
static int s_send_part(s_server *s, s_pending *p, const Bulletin__Internal__StoreRequest *sreq,
                       size_t op_base, size_t n_ops, bool health)
{
    s_part **np = realloc(p->parts, (p->n_parts + 1) * sizeof *np);
    if (!np)
        return -1;
    p->parts = np;
    s_part *pt = calloc(1, sizeof *pt);
    if (!pt)
        return -1;
    pt->id = ++s->next_id;
    pt->p = p;
    pt->op_base = op_base;
    pt->n_ops = n_ops;

    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    Bulletin__HealthRequest hr = BULLETIN__HEALTH_REQUEST__INIT;
    req.version_major = WIRE_VERSION_MAJOR;
    req.version_minor = WIRE_VERSION_MINOR;
    req.request_id = pt->id;
    int64_t left_ms = (p->deadline_us - clock_mono_us()) / 1000;
    req.deadline_ms = left_ms > 0 ? (uint32_t)left_ms : 1;
    ProtobufCBinaryData packed = {0, NULL};
    if (health) {
        req.body_case = BULLETIN__REQUEST__BODY_HEALTH;
        req.health = &hr;
    } else {
        if (wire_pack_bytes(&sreq->base, &packed) < 0) {
            free(pt);
            return -1;
        }
        req.body_case = BULLETIN__REQUEST__BODY_INTERNAL;
        req.internal = packed;
    }
    int rc = wire_send(s->dealer, &s->delim, &req.base);
    int e = errno;
    free(packed.data);
    if (rc < 0) {
        free(pt);
        errno = e;
        return -1;
    }
    p->parts[p->n_parts++] = pt;
    p->parts_left++;
    pt->hnext = s->buckets[pt->id % S_BUCKETS];
    s->buckets[pt->id % S_BUCKETS] = pt;
    return 0;
}

static uint32_t s_wait_ms(const s_server *s, const Bulletin__Request *req)
{
    long long d = s->cfg->deadline_ms;
    if (req->deadline_ms > 0 && req->deadline_ms < d)
        d = req->deadline_ms;
    return d > 0 ? (uint32_t)d : 1;
}

/* --- finishing a request ------------------------------------------------------ */

static void s_count(s_server *s, const Bulletin__IngestResult *r)
{
    switch (r->status) {
    case BULLETIN__WRITE_STATUS__CREATED: s->m.created++; break;
    case BULLETIN__WRITE_STATUS__UPDATED: s->m.updated++; break;
    case BULLETIN__WRITE_STATUS__UNCHANGED: s->m.unchanged++; break;
    case BULLETIN__WRITE_STATUS__DELETED: s->m.deleted++; break;
    case BULLETIN__WRITE_STATUS__REJECTED: s->m.rejected++; break;
    default: break;
    }
}

static void s_finish_ingest(s_server *s, s_pending *p)
{
    size_t total = p->n_parts + p->n_unsent;
    if (total > 0 && p->parts_failed == total) {
        /* the store refused everything: pass its status on */
        s_reply_status(s, &p->route, p->client_id, p->fail_code, "%s", p->fail_msg);
        for (size_t i = 0; i < p->n_items; i++)
            s->m.rejected++;
        return;
    }
    Bulletin__Reply rep;
    Bulletin__Status st;
    Bulletin__IngestReply ir = BULLETIN__INGEST_REPLY__INIT;
    Bulletin__IngestResult **rs = malloc((p->n_items ? p->n_items : 1) * sizeof *rs);
    if (!rs) {
        s_reply_status(s, &p->route, p->client_id, BULLETIN__STATUS_CODE__INTERNAL,
                       "ingest ran out of memory while answering; the articles may be written "
                       "— retrying is safe");
        return;
    }
    for (size_t i = 0; i < p->n_items; i++) {
        rs[i] = &p->results[i];
        if (!rs[i]->key)
            rs[i]->key = s_dup("");
        s_count(s, rs[i]);
        if (rs[i]->seq > ir.max_seq)
            ir.max_seq = rs[i]->seq;
    }
    ir.n_results = p->n_items;
    ir.results = rs;
    wire_reply_init(&rep, &st, p->client_id);
    rep.body_case = BULLETIN__REPLY__BODY_INGEST;
    rep.ingest = &ir;
    rep.applied_seq = s->store_seq;
    s_reply(s, &p->route, &rep);
    free(rs);
}

static void s_finish_delete(s_server *s, s_pending *p)
{
    if (p->parts_failed) {
        s_reply_status(s, &p->route, p->client_id, p->fail_code, "%s", p->fail_msg);
        return;
    }
    Bulletin__IngestResult *r = &p->results[0];
    if (!r->key)
        r->key = s_dup("");
    if (r->status == BULLETIN__WRITE_STATUS__REJECTED) {
        s_reply_status(s, &p->route, p->client_id, BULLETIN__STATUS_CODE__NOT_FOUND, "%s",
                       r->error && *r->error ? r->error : "no such article");
        return;
    }
    s_count(s, r);
    Bulletin__Reply rep;
    Bulletin__Status st;
    Bulletin__DeleteReply dr = BULLETIN__DELETE_REPLY__INIT;
    dr.result = r;
    wire_reply_init(&rep, &st, p->client_id);
    rep.body_case = BULLETIN__REPLY__BODY_DELETE;
    rep.delete_ = &dr;
    rep.applied_seq = s->store_seq;
    s_reply(s, &p->route, &rep);
}

static void s_finish(s_server *s, s_pending **pp)
{
    s_pending *p = *pp;
    if (p->kind == S_INGEST)
        s_finish_ingest(s, p);
    else if (p->kind == S_DELETE)
        s_finish_delete(s, p);
    s_pending_destroy(s, pp);
}

/* A part failed with `code`: its items are rejected with the reason. */
static void s_part_failed(s_pending *p, const s_part *pt, int code, const char *msg)
{
    if (p->parts_failed++ == 0) {
        p->fail_code = code;
        snprintf(p->fail_msg, sizeof p->fail_msg, "%s", msg);
    }
    for (size_t k = pt->op_base; k < pt->op_base + pt->n_ops; k++)
        s_result_error(&p->results[p->op_item[k]], "%s", msg);
}

/* --- store replies ---------------------------------------------------------- */

static void s_store_reply(s_server *s, const void *data, size_t len)
{
    wire_code code;
    char why[256];
    Bulletin__Reply *rep = (Bulletin__Reply *)wire_unpack(
        &bulletin__reply__descriptor, data, len, WIRE_BUDGET(len), &code, why, sizeof why);
    if (!rep) {
        log_warn("ingest.store_bad_reply", "bytes=%zu error=\"%s\"", len, why);
        return;
    }
    s->store_seen_us = clock_mono_us();
    if (rep->applied_seq > s->store_seq)
        s->store_seq = rep->applied_seq;
    s_part *pt = s_part_find(s, rep->request_id);
    if (!pt) {
        s->m.late_replies++;
        log_debug("ingest.store_late", "request_id=%" PRIu64, rep->request_id);
        wire_free(rep);
        return;
    }
    s_part_unlink(s, pt);
    pt->done = true;
    s_pending *p = pt->p;
    p->parts_left--;
    if (p->kind == S_PING) {
        s_pending_destroy(s, &p);
        wire_free(rep);
        return;
    }
    int scode = rep->status ? (int)rep->status->code : 0;
    if (scode != BULLETIN__STATUS_CODE__OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "the store refused the write (%s): %s", wire_code_name(scode),
                 rep->status && rep->status->message && *rep->status->message
                     ? rep->status->message
                     : "no reason given");
        s_part_failed(p, pt, scode, msg);
    } else {
        Bulletin__Internal__StoreReply *sr = NULL;
        if (rep->body_case == BULLETIN__REPLY__BODY_INTERNAL)
            sr = (Bulletin__Internal__StoreReply *)wire_unpack(
                &bulletin__internal__store_reply__descriptor, rep->internal.data,
                rep->internal.len, WIRE_BUDGET(rep->internal.len), &code, why, sizeof why);
        Bulletin__Internal__WriteBatchReply *wr =
            sr && sr->body_case == BULLETIN__INTERNAL__STORE_REPLY__BODY_WRITE ? sr->write : NULL;
        if (!wr || wr->n_results != pt->n_ops) {
            char msg[256];
            snprintf(msg, sizeof msg,
                     "the store answered the write with %zu results for %zu articles; "
                     "nothing is known to be written — retrying is safe",
                     wr ? wr->n_results : 0, pt->n_ops);
            log_error("ingest.store_bad_reply", "request_id=%" PRIu64 " results=%zu ops=%zu",
                      rep->request_id, wr ? wr->n_results : 0, pt->n_ops);
            s_part_failed(p, pt, BULLETIN__STATUS_CODE__INTERNAL, msg);
        } else {
            for (size_t k = 0; k < pt->n_ops; k++) {
                const Bulletin__IngestResult *in = wr->results[k];
                Bulletin__IngestResult *r = &p->results[p->op_item[pt->op_base + k]];
                r->status = in->status;
                r->id = in->id;
                r->seq = in->seq;
                if (in->key && *in->key) {
                    s_str_free(&r->key);
                    r->key = s_dup(in->key);
                }
                if (in->error && *in->error) {
                    s_str_free(&r->error);
                    r->error = s_dup(in->error);
                }
                for (size_t w = 0; w < in->n_warnings; w++)
                    s_result_warn(r, in->warnings[w]);
            }
        }
        wire_free(sr);
    }
    wire_free(rep);
    if (p->parts_left == 0)
        s_finish(s, &p);
}

/* --- client requests --------------------------------------------------------- */

static void s_handle_ingest(s_server *s, const zio_route *route, const Bulletin__Request *req,
                            const void *raw, size_t raw_len)
{
    const Bulletin__IngestRequest *ir = req->ingest;
    size_t n = ir ? ir->n_items : 0;
    if (n == 0 || n > (size_t)s->cfg->max_items) {
        s->m.bad_requests++;
        s_reply_status(s, route, req->request_id, BULLETIN__STATUS_CODE__INVALID_ARGUMENT,
                       "an IngestRequest must have 1 to %lld items; this one has %zu",
                       s->cfg->max_items, n);
        return;
    }
    if (s->in_flight >= (size_t)s->cfg->max_inflight) {
        s_reply_status(s, route, req->request_id, BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED,
                       "ingest already has %zu requests waiting for the store; retry shortly",
                       s->in_flight);
        return;
    }
    s->m.items += n;
    ingest_doc *docs = calloc(n, sizeof *docs);
    s_pending *p = docs ? s_pending_new(s, S_INGEST, route, req->request_id, s_wait_ms(s, req), n)
                        : NULL;
    if (!p) {
        free(docs);
        s_reply_status(s, route, req->request_id, BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED,
                       "ingest is out of memory; nothing was written — retry later");
        return;
    }
    for (size_t i = 0; i < n; i++)
        ingest_doc_init(&docs[i]);
    ingest_check_strings(raw, raw_len, docs, n);

    int64_t now = clock_now_ms();
    bool oom = false;
    size_t n_valid = 0;
    for (size_t i = 0; i < n && !oom; i++) {
        ingest_doc *d = &docs[i];
        int rc = ingest_item_prepare(ir->items[i], now, d);
        Bulletin__IngestResult *r = &p->results[i];
        if (rc < 0) {
            oom = true;
            break;
        }
        r->key = s_dup(d->art.key);
        r->warnings = d->warnings; /* moved */
        r->n_warnings = d->n_warnings;
        d->warnings = NULL;
        d->n_warnings = d->cap_warnings = 0;
        if (rc == 1) {
            r->status = BULLETIN__WRITE_STATUS__REJECTED;
            r->error = d->error;
            d->error = NULL;
        } else {
            p->op_item[n_valid++] = i;
        }
        if (!r->key)
            oom = true;
    }
    /* pack the valid ones into parts and send them */
    Bulletin__Internal__WriteOp *ops = oom ? NULL : calloc(n_valid ? n_valid : 1, sizeof *ops);
    Bulletin__Internal__WriteOp **opp = oom ? NULL : calloc(n_valid ? n_valid : 1, sizeof *opp);
    if (!ops || !opp)
        oom = true;
    const char *unavailable = NULL;
    for (size_t k = 0; !oom && k < n_valid;) {
        size_t base = k, bytes = 0;
        while (k < n_valid && k - base < S_PART_OPS) {
            Bulletin__Internal__WriteOp *op = &ops[k];
            bulletin__internal__write_op__init(op);
            op->op_case = BULLETIN__INTERNAL__WRITE_OP__OP_PUT;
            op->put = &docs[p->op_item[k]].art;
            opp[k] = op;
            size_t sz = bulletin__article__get_packed_size(op->put) + 16;
            if (k > base && bytes + sz > S_PART_BYTES)
                break;
            bytes += sz;
            k++;
        }
        Bulletin__Internal__WriteBatch wb = BULLETIN__INTERNAL__WRITE_BATCH__INIT;
        wb.n_ops = k - base;
        wb.ops = opp + base;
        Bulletin__Internal__StoreRequest sreq = BULLETIN__INTERNAL__STORE_REQUEST__INIT;
        sreq.body_case = BULLETIN__INTERNAL__STORE_REQUEST__BODY_WRITE;
        sreq.write = &wb;
        s_part tmp = {.op_base = base, .n_ops = k - base};
        if (s_send_part(s, p, &sreq, base, k - base, false) < 0) {
            if (errno == ENOMEM) {
                oom = true;
                break;
            }
            unavailable = "the store is not connected or not keeping up (its queue is full); "
                          "nothing was written — retrying is safe";
            p->n_unsent++;
            s_part_failed(p, &tmp, BULLETIN__STATUS_CODE__UNAVAILABLE, unavailable);
        }
    }
    free(ops);
    free(opp);
    for (size_t i = 0; i < n; i++)
        ingest_doc_clear(&docs[i]);
    free(docs);
    if (oom) {
        s_reply_status(s, route, req->request_id, BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED,
                       "ingest ran out of memory preparing this request; the articles may be "
                       "partly written — retrying is safe");
        s_pending_destroy(s, &p);
        return;
    }
    /* nothing to wait for (all rejected, or no part could be sent): answer now */
    if (p->parts_left == 0)
        s_finish(s, &p);
}

static void s_handle_delete(s_server *s, const zio_route *route, const Bulletin__Request *req,
                            const void *raw, size_t raw_len)
{
    const Bulletin__DeleteRequest *dr = req->delete_;
    if (wire_check_strings(&bulletin__request__descriptor, raw, raw_len, NULL, NULL) > 0) {
        s->m.bad_requests++;
        s_reply_status(s, route, req->request_id, BULLETIN__STATUS_CODE__INVALID_ARGUMENT,
                       "delete.key is not valid UTF-8 or contains a NUL byte");
        return;
    }
    char *key = NULL;
    size_t klen = 0;
    if (dr && dr->key && *dr->key) {
        key = strdup(dr->key);
        if (!key) {
            s_reply_status(s, route, req->request_id, BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED,
                           "ingest is out of memory; retry later");
            return;
        }
        klen = strlen(key);
        /* trim like ingest does, so "key " deletes what "key " created */
        while (klen && (key[klen - 1] == ' ' || key[klen - 1] == '\t' || key[klen - 1] == '\n' ||
                        key[klen - 1] == '\r'))
            key[--klen] = '\0';
        size_t a = 0;
        while (key[a] == ' ' || key[a] == '\t' || key[a] == '\n' || key[a] == '\r')
            a++;
        memmove(key, key + a, klen - a + 1);
        klen -= a;
    }
    uint64_t id = dr ? dr->id : 0;
    if ((id == 0) == (klen == 0) || klen > INGEST_MAX_KEY) {
        s->m.bad_requests++;
        s_reply_status(s, route, req->request_id, BULLETIN__STATUS_CODE__INVALID_ARGUMENT,
                       klen > INGEST_MAX_KEY ? "delete.key is %zu bytes; the limit is 2048"
                       : klen ? "a DeleteRequest names an article by id or by key, not both (%zu)"
                              : "a DeleteRequest needs an id or a key (%zu)",
                       klen);
        free(key);
        return;
    }
    if (s->in_flight >= (size_t)s->cfg->max_inflight) {
        free(key);
        s_reply_status(s, route, req->request_id, BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED,
                       "ingest already has %zu requests waiting for the store; retry shortly",
                       s->in_flight);
        return;
    }
    s_pending *p = s_pending_new(s, S_DELETE, route, req->request_id, s_wait_ms(s, req), 1);
    if (!p) {
        free(key);
        s_reply_status(s, route, req->request_id, BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED,
                       "ingest is out of memory; retry later");
        return;
    }
    p->results[0].key = s_dup(key ? key : "");
    p->results[0].id = id;
    Bulletin__DeleteRequest del = BULLETIN__DELETE_REQUEST__INIT;
    del.id = id;
    del.key = key ? key : (char *)"";
    Bulletin__Internal__WriteOp op = BULLETIN__INTERNAL__WRITE_OP__INIT, *opp = &op;
    op.op_case = BULLETIN__INTERNAL__WRITE_OP__OP_DELETE;
    op.delete_ = &del;
    Bulletin__Internal__WriteBatch wb = BULLETIN__INTERNAL__WRITE_BATCH__INIT;
    wb.n_ops = 1;
    wb.ops = &opp;
    Bulletin__Internal__StoreRequest sreq = BULLETIN__INTERNAL__STORE_REQUEST__INIT;
    sreq.body_case = BULLETIN__INTERNAL__STORE_REQUEST__BODY_WRITE;
    sreq.write = &wb;
    int rc = s_send_part(s, p, &sreq, 0, 1, false);
    free(key);
    if (rc < 0) {
        s_reply_status(s, route, req->request_id, BULLETIN__STATUS_CODE__UNAVAILABLE,
                       "the store is not connected or not keeping up (its queue is full); "
                       "nothing was deleted — retrying is safe");
        s_pending_destroy(s, &p);
    }
}

/* Healthy while the store answered recently; detail says when it last did. */
static bool s_health(const s_server *s, char *detail, size_t cap)
{
    int64_t now = clock_mono_us();
    int64_t fresh_us = 3 * s->cfg->health_interval_ms * 1000 + 1000000;
    bool ok = s->store_seen_us && now - s->store_seen_us <= fresh_us;
    if (!s->store_seen_us)
        snprintf(detail, cap, "the store at %s has not answered yet", s->cfg->store);
    else
        snprintf(detail, cap, "the store at %s answered %" PRId64 " ms ago%s", s->cfg->store,
                 (now - s->store_seen_us) / 1000,
                 ok ? "" : "; writes will fail until it answers again");
    return ok;
}

static void s_handle_health(s_server *s, const zio_route *route, const Bulletin__Request *req,
                            const void *raw, size_t raw_len)
{
    (void)raw;
    (void)raw_len;
    char detail[256];
    bool ok = s_health(s, detail, sizeof detail);
    Bulletin__Reply rep;
    Bulletin__Status st;
    Bulletin__HealthReply hr = BULLETIN__HEALTH_REPLY__INIT;
    hr.ok = ok;
    hr.service = (char *)"ingest";
    hr.instance = s->instance;
    hr.detail = detail;
    hr.applied_seq = s->store_seq;
    wire_reply_init(&rep, &st, req->request_id);
    rep.body_case = BULLETIN__REPLY__BODY_HEALTH;
    rep.health = &hr;
    rep.applied_seq = s->store_seq;
    s_reply(s, route, &rep);
}

/* The metrics, for the Stats request and for /metrics. */
#define S_N_METRICS 11
typedef struct {
    Bulletin__Metric m[S_N_METRICS], *mp[S_N_METRICS];
    Bulletin__StatsReply sr;
} s_stats;

static void s_stats_build(s_server *s, s_stats *out)
{
    const struct {
        const char *name;
        double v;
        const char *help;
        bool counter;
    } t[S_N_METRICS] = {
        {"requests", (double)s->m.requests, "client requests received", true},
        {"items", (double)s->m.items, "ingest items received", true},
        {"created", (double)s->m.created, "articles created", true},
        {"updated", (double)s->m.updated, "articles updated", true},
        {"unchanged", (double)s->m.unchanged, "articles written again with the same content",
         true},
        {"deleted", (double)s->m.deleted, "articles deleted", true},
        {"rejected", (double)s->m.rejected, "items rejected (by ingest or the store)", true},
        {"store_timeouts", (double)s->m.store_timeouts,
         "requests the store did not answer in time", true},
        {"in_flight", (double)s->in_flight, "requests waiting for the store now", false},
        {"bad_requests", (double)s->m.bad_requests, "requests refused as malformed", true},
        {"late_replies", (double)s->m.late_replies,
         "store replies that came after the deadline", true},
    };
    for (size_t i = 0; i < S_N_METRICS; i++) {
        bulletin__metric__init(&out->m[i]);
        out->m[i].name = (char *)t[i].name;
        out->m[i].value = t[i].v;
        out->m[i].help = (char *)t[i].help;
        out->m[i].counter = t[i].counter;
        out->mp[i] = &out->m[i];
    }
    bulletin__stats_reply__init(&out->sr);
    out->sr.service = (char *)"ingest";
    out->sr.instance = s->instance;
    out->sr.n_metrics = S_N_METRICS;
    out->sr.metrics = out->mp;
}

static void s_handle_stats(s_server *s, const zio_route *route, const Bulletin__Request *req,
                           const void *raw, size_t raw_len)
{
    (void)raw;
    (void)raw_len;
    s_stats stats;
    s_stats_build(s, &stats);
    Bulletin__Reply rep;
    Bulletin__Status st;
    wire_reply_init(&rep, &st, req->request_id);
    rep.body_case = BULLETIN__REPLY__BODY_STATS;
    rep.stats = &stats.sr;
    s_reply(s, route, &rep);
}

/* /healthz and /metrics: the same health and metrics as over ZeroMQ. */
static void s_http_publish(s_server *s, int64_t now)
{
    s->next_http_us = now + INGEST_SERVER_HTTP_MS * 1000;
    if (!s->http)
        return;
    char detail[256];
    bool ok = s_health(s, detail, sizeof detail);
    s_stats stats;
    s_stats_build(s, &stats);
    http_server_publish(s->http, &stats.sr, ok, detail);
}

static void s_handle_reads(s_server *s, const zio_route *route, const Bulletin__Request *req,
                           const void *raw, size_t raw_len)
{
    (void)raw;
    (void)raw_len;
    s_reply_status(s, route, req->request_id, BULLETIN__STATUS_CODE__UNIMPLEMENTED,
                   "ingest only takes writes: send reads to the query service (or Get to the store)");
}

static void s_handle_internal(s_server *s, const zio_route *route, const Bulletin__Request *req,
                              const void *raw, size_t raw_len)
{
    (void)raw;
    (void)raw_len;
    s_reply_status(s, route, req->request_id, BULLETIN__STATUS_CODE__UNIMPLEMENTED,
                   "ingest does not take store-internal requests; clients send Ingest or Delete");
}

typedef void (*s_handler)(s_server *, const zio_route *, const Bulletin__Request *,
                          const void *, size_t);

static const struct {
    Bulletin__Request__BodyCase body;
    s_handler fn;
} s_dispatch[] = {
    {BULLETIN__REQUEST__BODY_INGEST, s_handle_ingest},
    {BULLETIN__REQUEST__BODY_DELETE, s_handle_delete},
    {BULLETIN__REQUEST__BODY_HEALTH, s_handle_health},
    {BULLETIN__REQUEST__BODY_STATS, s_handle_stats},
    {BULLETIN__REQUEST__BODY_GET, s_handle_reads},
    {BULLETIN__REQUEST__BODY_LIST, s_handle_reads},
    {BULLETIN__REQUEST__BODY_SEARCH, s_handle_reads},
    {BULLETIN__REQUEST__BODY_INTERNAL, s_handle_internal},
};

static void s_client_request(s_server *s, const zio_route *route, zmq_msg_t *body)
{
    const void *data = zmq_msg_data(body);
    size_t len = zmq_msg_size(body);
    uint64_t rid;
    wire_code code;
    char why[256];
    s->m.requests++;
    Bulletin__Request *req = wire_request_unpack(data, len, WIRE_BUDGET(len), &rid, &code, why,
                                                 sizeof why);
    if (!req) {
        s->m.bad_requests++;
        log_debug("ingest.bad_request", "bytes=%zu error=\"%s\"", len, why);
        s_reply_status(s, route, rid, code, "%s", why);
        return;
    }
    for (size_t i = 0; i < sizeof s_dispatch / sizeof s_dispatch[0]; i++)
        if (s_dispatch[i].body == req->body_case) {
            s_dispatch[i].fn(s, route, req, data, len);
            wire_free(req);
            return;
        }
    s->m.bad_requests++;
    s_reply_status(s, route, rid, BULLETIN__STATUS_CODE__UNIMPLEMENTED,
                   "ingest does not answer this request type");
    wire_free(req);
}

/* --- deadlines and pings ------------------------------------------------------ */

static void s_expire(s_server *s, int64_t now)
{
    s_pending *p = s->head;
    while (p) {
        s_pending *next = p->next;
        if (p->deadline_us <= now) {
            if (p->kind != S_PING) {
                s->m.store_timeouts++;
                size_t answered = p->n_parts - p->parts_left;
                log_warn("ingest.store_timeout", "request_id=%" PRIu64 " wait_ms=%u parts=%zu answered=%zu",
                         p->client_id, p->wait_ms, p->n_parts, answered);
                if (answered == 0)
                    s_reply_status(s, &p->route, p->client_id, BULLETIN__STATUS_CODE__UNAVAILABLE,
                                   "the store did not answer within %u ms; nothing is known to be "
                                   "written — retrying is safe",
                                   p->wait_ms);
                else
                    s_reply_status(s, &p->route, p->client_id, BULLETIN__STATUS_CODE__UNAVAILABLE,
                                   "the store did not answer within %u ms for %zu of %zu batches "
                                   "of this request; some articles may be written — retrying is safe",
                                   p->wait_ms, p->parts_left, p->n_parts);
            }
            s_pending_destroy(s, &p);
        }
        p = next;
    }
}

static int64_t s_next_deadline(const s_server *s)
{
    int64_t t = INT64_MAX;
    for (const s_pending *p = s->head; p; p = p->next)
        if (p->deadline_us < t)
            t = p->deadline_us;
    return t;
}

static void s_ping(s_server *s, int64_t now)
{
    s->next_ping_us = now + s->cfg->health_interval_ms * 1000;
    for (const s_pending *p = s->head; p; p = p->next)
        if (p->kind == S_PING)
            return; /* one at a time */
    s_pending *p = s_pending_new(s, S_PING, NULL, 0, (uint32_t)s->cfg->health_interval_ms, 0);
    if (p && s_send_part(s, p, NULL, 0, 0, true) < 0)
        s_pending_destroy(s, &p);
}

/* zio_recv_routed moves frames into route->f[] with zmq_msg_move, which
 * closes the destination first: on uninitialized memory that fails (EFAULT)
 * and the routing frames are lost (replies then fail with EHOSTUNREACH).
 * Initialize every slot first; empty messages hold no resources, so
 * zio_route_close (which closes only the first n) leaks nothing. */
static void s_route_prepare(zio_route *route)
{
    route->n = 0;
    for (int i = 0; i < ZIO_MAX_ROUTE; i++)
        zmq_msg_init(&route->f[i]);
}

/* --- the loop ---------------------------------------------------------------- */

void ingest_server_cfg_defaults(ingest_server_cfg *cfg)
{
    cfg->bind = "tcp://*:5555";
    cfg->store = "tcp://127.0.0.1:5557";
    cfg->deadline_ms = 5000;
    cfg->max_request = 16777216;
    cfg->max_items = 10000;
    cfg->max_inflight = 4096;
    cfg->health_interval_ms = 2000;
    cfg->stop_fd = -1;
    cfg->http = NULL;
}

static int s_check_cfg(const ingest_server_cfg *c)
{
    if (!c->bind || !*c->bind || !c->store || !*c->store) {
        log_error("ingest.config", "error=\"bind and store endpoints are required\"");
        return -1;
    }
    if (c->deadline_ms < 1 || c->deadline_ms > 3600000 || c->max_request < 1024 ||
        c->max_items < 1 || c->max_inflight < 1 || c->health_interval_ms < 10) {
        log_error("ingest.config",
                  "error=\"out of range: deadline-ms 1..3600000, max-request >= 1024, "
                  "max-items >= 1, max-inflight >= 1\"");
        return -1;
    }
    return 0;
}

int ingest_server_run(const ingest_server_cfg *cfg)
{
    if (s_check_cfg(cfg) < 0)
        return -1;
    int stop_fd = cfg->stop_fd, own_fd = -1;
    if (stop_fd < 0) {
        own_fd = stop_fd = zio_signal_fd();
        if (stop_fd < 0) {
            log_error("ingest.signals", "error=\"%s\"", strerror(errno));
            return -1;
        }
    }
    s_server *s = calloc(1, sizeof *s);
    if (!s) {
        if (own_fd >= 0)
            close(own_fd);
        return -1;
    }
    s->cfg = cfg;
    char host[64] = "localhost";
    gethostname(host, sizeof host - 1);
    snprintf(s->instance, sizeof s->instance, "%s:%d", host, (int)getpid());
    s->delim.n = 1;
    zmq_msg_init(&s->delim.f[0]);
    int rc = -1;
    s->ctx = zmq_ctx_new();
    if (!s->ctx)
        goto out;
    s->router = zio_socket(s->ctx, ZMQ_ROUTER, 500, cfg->max_request);
    s->dealer = zio_socket(s->ctx, ZMQ_DEALER, 0, 0);
    if (!s->router || !s->dealer)
        goto out;
    int one = 1;
    zmq_setsockopt(s->dealer, ZMQ_IMMEDIATE, &one, sizeof one);
    if (zio_bind(s->router, cfg->bind) < 0 || zio_connect(s->dealer, cfg->store) < 0)
        goto out;
    log_info("ingest.start", "bind=%s store=%s deadline_ms=%lld max_request=%lld max_items=%lld",
             cfg->bind, cfg->store, cfg->deadline_ms, cfg->max_request, cfg->max_items);

    bool stopping = false;
    int64_t stop_at = 0;
    s->next_ping_us = clock_mono_us() + 100000; /* first ping soon after connecting */
    /* HTTP is a side channel: if it cannot listen (logged), ingest runs on */
    s->http = http_server_new(cfg->http, "ingest");
    s_http_publish(s, clock_mono_us());
    for (;;) {
        int64_t now = clock_mono_us();
        if (stopping && (s->in_flight == 0 || now >= stop_at))
            break;
        int64_t wake = s_next_deadline(s);
        if (s->next_ping_us < wake)
            wake = s->next_ping_us;
        if (s->http && s->next_http_us < wake)
            wake = s->next_http_us;
        if (stopping && stop_at < wake)
            wake = stop_at;
        long timeout = wake <= now ? 0 : (long)((wake - now + 999) / 1000);
        zmq_pollitem_t items[3] = {
            {s->dealer, 0, ZMQ_POLLIN, 0},
            {NULL, stop_fd, ZMQ_POLLIN, 0},
            {s->router, 0, ZMQ_POLLIN, 0},
        };
        int n = zmq_poll(items, stopping ? 2 : 3, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_error("ingest.poll", "error=\"%s\"", zmq_strerror(errno));
            break;
        }
        if (items[1].revents & ZMQ_POLLIN) {
            if (own_fd >= 0)
                zio_signal_read(stop_fd);
            if (!stopping) {
                stopping = true;
                stop_at = clock_mono_us() + S_STOP_GRACE_US;
                log_info("ingest.stopping", "in_flight=%zu", s->in_flight);
            }
        }
        if (items[0].revents & ZMQ_POLLIN) {
            for (int k = 0; k < 1024; k++) {
                zmq_msg_t body;
                if (zio_recv_body(s->dealer, &body, ZMQ_DONTWAIT) < 0) {
                    zmq_msg_close(&body);
                    break;
                }
                s_store_reply(s, zmq_msg_data(&body), zmq_msg_size(&body));
                zmq_msg_close(&body);
            }
        }
        if (!stopping && (items[2].revents & ZMQ_POLLIN)) {
            for (int k = 0; k < 256; k++) {
                zio_route route;
                zmq_msg_t body;
                s_route_prepare(&route);
                if (zio_recv_routed(s->router, &route, &body, ZMQ_DONTWAIT) < 0) {
                    zmq_msg_close(&body);
                    break;
                }
                s_client_request(s, &route, &body);
                zmq_msg_close(&body);
                zio_route_close(&route);
            }
        }
        now = clock_mono_us();
        s_expire(s, now);
        if (!stopping && now >= s->next_ping_us)
            s_ping(s, now);
        if (now >= s->next_http_us)
            s_http_publish(s, now);
    }
    /* whatever is still waiting gets a clear answer */
    while (s->head) {
        s_pending *p = s->head;
        if (p->kind != S_PING)
            s_reply_status(s, &p->route, p->client_id, BULLETIN__STATUS_CODE__UNAVAILABLE,
                           "ingest is shutting down and the store has not answered yet; "
                           "nothing is known to be written — retrying is safe");
        s_pending_destroy(s, &p);
    }
    log_info("ingest.stop", "requests=%" PRIu64 " items=%" PRIu64, s->m.requests, s->m.items);
    rc = 0;
out:
    if (rc < 0)
        log_error("ingest.start_failed", "error=\"%s\"", zmq_strerror(errno));
    http_server_destroy(&s->http);
    zio_close(&s->router);
    zio_close(&s->dealer);
    zio_route_close(&s->delim);
    if (s->ctx)
        zmq_ctx_term(s->ctx);
    free(s);
    if (own_fd >= 0)
        close(own_fd);
    return rc;
}
