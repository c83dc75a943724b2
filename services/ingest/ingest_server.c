/*
 * ingest_server: see ingest_server.h.
 *
 * Life of a client request:
 *
 *   ROUTER recv -> decode (budgeted) -> dispatch table by body type
 *     Ingest: check strings on the raw bytes, prepare each item
 *             (ingest_validate) and append the valid ones, packed, to the
 *             stage; the stage goes to the store as one WriteBatch (DEALER,
 *             ZMQ_DONTWAIT) whenever it holds S_PART_OPS ops, and at the
 *             end of every loop turn -> pending
 *     Delete: one delete op on the stage -> pending
 *
 *   pending --store reply for its last op--> reply to the client
 *           --deadline passed--> UNAVAILABLE, forgotten (a late reply
 *             for its ops is dropped)
 *
 * The stage decouples client requests from store messages ("parts"):
 *   - a big request goes out in parts of S_PART_OPS while the rest of it is
 *     still being prepared, so the store decodes, writes and fsyncs part 1
 *     on the other core while ingest normalizes part 2 (pipelining);
 *   - small requests that arrive in the same poll turn share one part, so
 *     the store gets one message (and ZeroMQ one wake-up) for all of them
 *     (coalescing).
 * So a part carries ops of one or many requests, and a request may span
 * many parts. Each op of a part names its request by a serial number
 * (pid) and its item index; requests live in a hash table by pid, parts in
 * a hash table by the store request id plus a FIFO for expiry. A request
 * that expired or was answered is simply not found when its ops come back.
 *
 * Articles are packed into the stage as soon as they are prepared, so the
 * decoded request and the normalized strings are freed before the store
 * answers. A WriteBatch is a repeated field, so packed ops concatenate.
 *
 * Client requests and store replies are decoded into one arena (core/arena.h)
 * that is reset after each message: nothing decoded outlives its handler.
 *
 * The store DEALER has ZMQ_IMMEDIATE set: while the store is not connected
 * a send fails at once (UNAVAILABLE) instead of queueing writes that would
 * be replayed minutes later, after the client has been told they failed.
 */
#include "ingest_server.h"

#include "arena.h"
#include "clock.h"
#include "http.h"
#include "ingest_validate.h"
#include "log.h"
#include "wire.h"
#include "zio.h"
#include "grow.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_PART_BYTES (4u << 20) /* a WriteBatch sent to the store stays below this
                                 * (the store's --max-msg is at least this plus
                                 * room for the envelope: STORE_SERVER_MIN_MAX_MSG) */
#define S_PART_OPS 200          /* ... and holds at most this many ops (see above) */
#define S_STAGE_HEAD 16         /* room before the ops for the StoreRequest header */
#define S_BUCKETS 4096
#define S_STOP_GRACE_US 1000000
#define S_PART_GRACE_US 1000000 /* a part is forgotten this long after any deadline */
#define S_ARENA_KEEP ((size_t)4 << 20) /* the decode arena keeps this much between messages */

typedef enum { S_INGEST, S_DELETE } s_kind;

/* One op of a part: which request, which of its items. */
typedef struct {
    uint64_t pid;
    size_t item;
} s_ref;

/* One store message in flight. */
typedef struct s_part {
    uint64_t id;       /* its Request.request_id to the store */
    int64_t expire_us; /* forgotten after this (monotonic) */
    bool ping;         /* a Health request, no ops */
    size_t n_ops;
    s_ref *refs;
    struct s_part *hnext, *prev, *next;
} s_part;

typedef struct s_pending {
    uint64_t pid;
    s_kind kind;
    zio_route route;
    uint64_t client_id;
    int64_t deadline_us; /* monotonic */
    uint32_t wait_ms;    /* the deadline, for the message */
    size_t n_items;
    Bulletin__IngestResult *results; /* strings owned (malloc) */
    size_t ops_total;                /* ops put on the stage */
    size_t ops_left;                 /* ... not answered yet */
    size_t ops_failed;               /* ... refused or not sent */
    bool building;                   /* its handler is still running */
    int fail_code;
    char fail_msg[512];
    struct s_pending *hnext, *prev, *next;
} s_pending;

typedef struct {
    const ingest_server_cfg *cfg;
    void *ctx, *router, *dealer;
    zio_route delim; /* one empty frame: [empty][body] to the store */
    char instance[128];
    uint64_t next_id, next_pid;
    s_part *parts[S_BUCKETS];
    s_part *part_head, *part_tail; /* in send order (expiry) */
    s_pending *pend[S_BUCKETS];
    s_pending *head;       /* all pending requests, newest first */
    size_t in_flight;      /* client requests waiting for the store */
    bool ping_out;         /* a Health ping is in flight */
    int64_t ping_at_us;    /* ... sent then */
    int64_t store_seen_us; /* last time the store answered anything, 0 = never */
    uint64_t store_seq;
    int64_t next_ping_us;
    http_server *http;    /* /healthz and /metrics, NULL when off */
    int64_t next_http_us; /* next publish to http */
    arena *ar;            /* decoded messages, reset after each */
    /* the stage: packed WriteOps after S_STAGE_HEAD bytes, and their refs */
    struct {
        uint8_t *buf;
        size_t len, cap; /* len counts from buf + S_STAGE_HEAD */
        s_ref *refs;
        size_t n, cap_refs;
        int64_t deadline_us; /* the earliest deadline of its requests */
    } st;
    struct {
        uint64_t requests, items, created, updated, unchanged, deleted, rejected,
            store_timeouts, bad_requests, late_replies, parts_sent;
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

static s_pending *s_pending_find(s_server *s, uint64_t pid)
{
    for (s_pending *p = s->pend[pid % S_BUCKETS]; p; p = p->hnext)
        if (p->pid == pid)
            return p;
    return NULL;
}

static s_pending *s_pending_new(s_server *s, s_kind kind, const zio_route *route,
                                uint64_t client_id, uint32_t wait_ms, size_t n_items)
{
    s_pending *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->pid = ++s->next_pid;
    p->kind = kind;
    p->client_id = client_id;
    p->wait_ms = wait_ms;
    p->deadline_us = clock_mono_us() + (int64_t)wait_ms * 1000;
    p->n_items = n_items;
    if (zio_route_copy(&p->route, route) < 0) {
        free(p);
        return NULL;
    }
    p->results = calloc(n_items ? n_items : 1, sizeof *p->results);
    if (!p->results) {
        zio_route_close(&p->route);
        free(p);
        return NULL;
    }
    for (size_t i = 0; i < n_items; i++)
        bulletin__ingest_result__init(&p->results[i]);
    p->next = s->head;
    if (s->head)
        s->head->prev = p;
    s->head = p;
    p->hnext = s->pend[p->pid % S_BUCKETS];
    s->pend[p->pid % S_BUCKETS] = p;
    s->in_flight++;
    return p;
}

static void s_pending_destroy(s_server *s, s_pending **pp)
{
    s_pending *p = *pp;
    if (!p)
        return;
    s_pending **hp = &s->pend[p->pid % S_BUCKETS];
    while (*hp && *hp != p)
        hp = &(*hp)->hnext;
    if (*hp)
        *hp = p->hnext;
    for (size_t i = 0; i < p->n_items; i++)
        s_result_clear(&p->results[i]);
    free(p->results);
    zio_route_close(&p->route);
    if (p->prev)
        p->prev->next = p->next;
    else
        s->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    s->in_flight--;
    free(p);
    *pp = NULL;
}

/* --- the parts table ---------------------------------------------------------- */

static s_part *s_part_find(s_server *s, uint64_t id)
{
    for (s_part *pt = s->parts[id % S_BUCKETS]; pt; pt = pt->hnext)
        if (pt->id == id)
            return pt;
    return NULL;
}

static void s_part_add(s_server *s, s_part *pt)
{
    pt->hnext = s->parts[pt->id % S_BUCKETS];
    s->parts[pt->id % S_BUCKETS] = pt;
    pt->prev = s->part_tail;
    pt->next = NULL;
    if (s->part_tail)
        s->part_tail->next = pt;
    else
        s->part_head = pt;
    s->part_tail = pt;
}

/* Unlink from both tables and free. */
static void s_part_destroy(s_server *s, s_part **ptp)
{
    s_part *pt = *ptp;
    if (!pt)
        return;
    s_part **hp = &s->parts[pt->id % S_BUCKETS];
    while (*hp && *hp != pt)
        hp = &(*hp)->hnext;
    if (*hp)
        *hp = pt->hnext;
    if (pt->prev)
        pt->prev->next = pt->next;
    else
        s->part_head = pt->next;
    if (pt->next)
        pt->next->prev = pt->prev;
    else
        s->part_tail = pt->prev;
    if (pt->ping)
        s->ping_out = false;
    free(pt->refs);
    free(pt);
    *ptp = NULL;
}

/* Send one store Request (request_id = a new part id) whose body is the
 * health ping or Request.internal = `internal`. Returns the new part (owning
 * `refs`, n_ops) or NULL with errno (refs untouched). */
static s_part *s_send_part(s_server *s, const ProtobufCBinaryData *internal, int64_t deadline_us,
                           s_ref *refs, size_t n_ops)
{
    s_part *pt = calloc(1, sizeof *pt);
    if (!pt)
        return NULL;
    int64_t now = clock_mono_us();
    pt->id = ++s->next_id;
    pt->ping = internal == NULL;
    pt->expire_us = now + s->cfg->deadline_ms * 1000 + S_PART_GRACE_US;

    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    Bulletin__HealthRequest hr = BULLETIN__HEALTH_REQUEST__INIT;
    req.version_major = WIRE_VERSION_MAJOR;
    req.version_minor = WIRE_VERSION_MINOR;
    req.request_id = pt->id;
    int64_t left_ms = (deadline_us - now) / 1000;
    req.deadline_ms = left_ms > 0 ? (uint32_t)left_ms : 1;
    if (!internal) {
        req.body_case = BULLETIN__REQUEST__BODY_HEALTH;
        req.health = &hr;
    } else {
        req.body_case = BULLETIN__REQUEST__BODY_INTERNAL;
        req.internal = *internal;
    }
    if (wire_send(s->dealer, &s->delim, &req.base) < 0) {
        int e = errno;
        free(pt);
        errno = e;
        return NULL;
    }
    pt->refs = refs;
    pt->n_ops = n_ops;
    s_part_add(s, pt);
    if (pt->ping)
        s->ping_out = true;
    else
        s->m.parts_sent++;
    return pt;
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
    if (p->ops_total > 0 && p->ops_failed == p->ops_total) {
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
    if (p->ops_failed) {
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

/* Answer the client and forget the request. */
static void s_finish(s_server *s, s_pending **pp)
{
    s_pending *p = *pp;
    if (p->kind == S_INGEST)
        s_finish_ingest(s, p);
    else
        s_finish_delete(s, p);
    s_pending_destroy(s, pp);
}

/* One op of p is answered: finish p when it was the last one and its
 * handler is done. */
static void s_op_done(s_server *s, s_pending *p)
{
    if (p->ops_left > 0)
        p->ops_left--;
    if (p->ops_left == 0 && !p->building)
        s_finish(s, &p);
}

/* An op failed with `code`: its item is rejected with the reason. */
static void s_op_failed(s_server *s, s_pending *p, size_t item, int code, const char *msg)
{
    if (p->ops_failed++ == 0) {
        p->fail_code = code;
        snprintf(p->fail_msg, sizeof p->fail_msg, "%s", msg);
    }
    s_result_error(&p->results[item], "%s", msg);
    s_op_done(s, p);
}

/* Every op of refs[0..n) failed. */
static void s_refs_failed(s_server *s, const s_ref *refs, size_t n, int code, const char *msg)
{
    for (size_t k = 0; k < n; k++) {
        s_pending *p = s_pending_find(s, refs[k].pid);
        if (p)
            s_op_failed(s, p, refs[k].item, code, msg);
    }
}

/* --- the stage ------------------------------------------------------------------ */

static size_t s_varint(uint8_t *b, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        b[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b[n++] = (uint8_t)v;
    return n;
}

static size_t s_varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Send what is on the stage as one WriteBatch. On failure its ops fail
 * (UNAVAILABLE), which may answer their requests. */
static void s_stage_flush(s_server *s)
{
    if (s->st.n == 0)
        return;
    size_t n = s->st.n;
    s_ref *refs = malloc(n * sizeof *refs);
    s_part *pt = NULL;
    if (refs) {
        memcpy(refs, s->st.refs, n * sizeof *refs);
        /* StoreRequest { write (1) = WriteBatch { ops... } }, right before the ops */
        uint8_t hdr[16];
        size_t h = 0;
        hdr[h++] = 0x0a;
        h += s_varint(hdr + h, s->st.len);
        memcpy(s->st.buf + S_STAGE_HEAD - h, hdr, h);
        ProtobufCBinaryData internal = {h + s->st.len, s->st.buf + S_STAGE_HEAD - h};
        pt = s_send_part(s, &internal, s->st.deadline_us, refs, n);
    }
    s->st.n = 0;
    s->st.len = 0;
    s->st.deadline_us = INT64_MAX;
    if (pt)
        return;
    free(refs);
    /* s->st.refs still holds the refs (the stage is empty now, nothing overwrote them) */
    if (errno == ENOMEM)
        s_refs_failed(s, s->st.refs, n, BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED,
                      "ingest ran out of memory sending to the store; nothing was written — "
                      "retrying is safe");
    else
        s_refs_failed(s, s->st.refs, n, BULLETIN__STATUS_CODE__UNAVAILABLE,
                      "the store is not connected or not keeping up (its queue is full); "
                      "nothing was written — retrying is safe");
}

/* Put one WriteOp (field `op_field` of WriteOp holding the packed `m`) on
 * the stage for item `item` of p; sends the stage when it is full. -1 when
 * out of memory (nothing staged). */
static int s_stage_put(s_server *s, s_pending *p, size_t item, uint32_t op_field,
                       const ProtobufCMessage *m)
{
    size_t msz = protobuf_c_message_get_packed_size(m);
    size_t opsz = 1 + s_varint_size(msz) + msz;           /* WriteOp */
    size_t need = 1 + s_varint_size(opsz) + opsz;         /* WriteBatch.ops entry */
    if (s->st.n > 0 && (s->st.len + need > S_PART_BYTES || s->st.n >= S_PART_OPS))
        s_stage_flush(s);
    if (S_STAGE_HEAD + s->st.len + need > s->st.cap) {
        uint8_t *b = grow_to(s->st.buf, &s->st.cap, 1, 65536, S_STAGE_HEAD + s->st.len + need);
        if (!b)
            return -1;
        s->st.buf = b;
    }
    if (s->st.n == s->st.cap_refs) {
        s_ref *r = grow(s->st.refs, &s->st.cap_refs, sizeof *r, 256);
        if (!r)
            return -1;
        s->st.refs = r;
    }
    uint8_t *w = s->st.buf + S_STAGE_HEAD + s->st.len;
    *w++ = 0x0a; /* WriteBatch.ops = 1, length-delimited */
    w += s_varint(w, opsz);
    *w++ = (uint8_t)(op_field << 3 | 2);
    w += s_varint(w, msz);
    w += protobuf_c_message_pack(m, w);
    s->st.len = (size_t)(w - (s->st.buf + S_STAGE_HEAD));
    s->st.refs[s->st.n].pid = p->pid;
    s->st.refs[s->st.n].item = item;
    s->st.n++;
    if (p->deadline_us < s->st.deadline_us)
        s->st.deadline_us = p->deadline_us;
    p->ops_total++;
    p->ops_left++;
    if (s->st.n >= S_PART_OPS || s->st.len >= S_PART_BYTES)
        s_stage_flush(s);
    return 0;
}

/* The handler of p is done: answer now if nothing is left to wait for. */
static void s_built(s_server *s, s_pending *p)
{
    p->building = false;
    if (p->ops_left == 0)
        s_finish(s, &p);
}

/* --- store replies ---------------------------------------------------------- */

static void s_store_reply(s_server *s, const void *data, size_t len)
{
    wire_code code;
    char why[256];
    Bulletin__Reply *rep = (Bulletin__Reply *)arena_unpack(
        s->ar, &bulletin__reply__descriptor, data, len, WIRE_BUDGET(len), &code, why, sizeof why);
    if (!rep) {
        log_warn("ingest.store_bad_reply", "bytes=%zu error=\"%s\"", len, why);
        arena_reset(s->ar, S_ARENA_KEEP);
        return;
    }
    s->store_seen_us = clock_mono_us();
    if (rep->applied_seq > s->store_seq)
        s->store_seq = rep->applied_seq;
    s_part *pt = s_part_find(s, rep->request_id);
    if (!pt) {
        s->m.late_replies++;
        log_debug("ingest.store_late", "request_id=%" PRIu64, rep->request_id);
        arena_reset(s->ar, S_ARENA_KEEP);
        return;
    }
    if (pt->ping) {
        s_part_destroy(s, &pt);
        arena_reset(s->ar, S_ARENA_KEEP);
        return;
    }
    int scode = rep->status ? (int)rep->status->code : 0;
    if (scode != BULLETIN__STATUS_CODE__OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "the store refused the write (%s): %s", wire_code_name(scode),
                 rep->status && rep->status->message && *rep->status->message
                     ? rep->status->message
                     : "no reason given");
        s_refs_failed(s, pt->refs, pt->n_ops, scode, msg);
    } else {
        Bulletin__Internal__StoreReply *sr = NULL;
        if (rep->body_case == BULLETIN__REPLY__BODY_INTERNAL)
            sr = (Bulletin__Internal__StoreReply *)arena_unpack(
                s->ar, &bulletin__internal__store_reply__descriptor, rep->internal.data,
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
            s_refs_failed(s, pt->refs, pt->n_ops, BULLETIN__STATUS_CODE__INTERNAL, msg);
        } else {
            for (size_t k = 0; k < pt->n_ops; k++) {
                s_pending *p = s_pending_find(s, pt->refs[k].pid);
                if (!p)
                    continue; /* answered already (deadline) */
                const Bulletin__IngestResult *in = wr->results[k];
                Bulletin__IngestResult *r = &p->results[pt->refs[k].item];
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
                s_op_done(s, p);
            }
        }
    }
    s_part_destroy(s, &pt);
    arena_reset(s->ar, S_ARENA_KEEP);
}

/* --- client requests --------------------------------------------------------- */

/* A client request's bytes, for the checks protobuf-c does not make. */
typedef struct {
    const void *data;
    size_t len;
    bool strings_ok; /* every string valid UTF-8 without NUL (checked while decoding) */
} s_raw;

static void s_handle_ingest(s_server *s, const zio_route *route, const Bulletin__Request *req,
                            const s_raw *raw)
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
    p->building = true;
    for (size_t i = 0; i < n; i++)
        ingest_doc_init(&docs[i]);
    if (!raw->strings_ok)
        ingest_check_strings(raw->data, raw->len, docs, n);

    int64_t now = clock_now_ms();
    bool oom = false;
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
        if (!r->key) {
            oom = true;
        } else if (rc == 1) {
            r->status = BULLETIN__WRITE_STATUS__REJECTED;
            r->error = d->error;
            d->error = NULL;
        } else if (s_stage_put(s, p, i, 1, &d->art.base) < 0) {
            oom = true;
        }
        ingest_doc_clear(d); /* packed on the stage (or rejected): not needed any more */
    }
    for (size_t i = 0; i < n; i++)
        ingest_doc_clear(&docs[i]);
    free(docs);
    if (oom) {
        s_reply_status(s, route, req->request_id, BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED,
                       "ingest ran out of memory preparing this request; the articles may be "
                       "partly written — retrying is safe");
        s_pending_destroy(s, &p); /* its ops still in flight are dropped when answered */
        return;
    }
    /* nothing to wait for (all rejected, or every op failed already): answer now */
    s_built(s, p);
}

static void s_handle_delete(s_server *s, const zio_route *route, const Bulletin__Request *req,
                            const s_raw *raw)
{
    const Bulletin__DeleteRequest *dr = req->delete_;
    if (!raw->strings_ok) {
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
    if (!p || !(p->results[0].key = s_dup(key ? key : ""))) {
        free(key);
        s_pending_destroy(s, &p);
        s_reply_status(s, route, req->request_id, BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED,
                       "ingest is out of memory; retry later");
        return;
    }
    p->building = true;
    p->results[0].id = id;
    Bulletin__DeleteRequest del = BULLETIN__DELETE_REQUEST__INIT;
    del.id = id;
    del.key = key ? key : (char *)"";
    int rc = s_stage_put(s, p, 0, 2, &del.base);
    free(key);
    if (rc < 0) {
        s_reply_status(s, route, req->request_id, BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED,
                       "ingest is out of memory; retry later");
        s_pending_destroy(s, &p);
        return;
    }
    s_built(s, p);
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
                            const s_raw *raw)
{
    (void)raw;
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
#define S_N_METRICS 12
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
        {"store_parts", (double)s->m.parts_sent,
         "WriteBatch messages sent to the store (items of several requests may share one)",
         true},
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
                           const s_raw *raw)
{
    (void)raw;
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
                           const s_raw *raw)
{
    (void)raw;
    s_reply_status(s, route, req->request_id, BULLETIN__STATUS_CODE__UNIMPLEMENTED,
                   "ingest only takes writes: send reads to the query service (or Get to the store)");
}

static void s_handle_internal(s_server *s, const zio_route *route, const Bulletin__Request *req,
                              const s_raw *raw)
{
    (void)raw;
    s_reply_status(s, route, req->request_id, BULLETIN__STATUS_CODE__UNIMPLEMENTED,
                   "ingest does not take store-internal requests; clients send Ingest or Delete");
}

typedef void (*s_handler)(s_server *, const zio_route *, const Bulletin__Request *,
                          const s_raw *);

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
    s_raw raw = {data, len, true};
    Bulletin__Request *req = arena_request_unpack(s->ar, data, len, WIRE_BUDGET(len), &rid,
                                                  &raw.strings_ok, &code, why, sizeof why);
    if (!req) {
        arena_reset(s->ar, S_ARENA_KEEP);
        s->m.bad_requests++;
        log_debug("ingest.bad_request", "bytes=%zu error=\"%s\"", len, why);
        s_reply_status(s, route, rid, code, "%s", why);
        return;
    }
    for (size_t i = 0; i < sizeof s_dispatch / sizeof s_dispatch[0]; i++)
        if (s_dispatch[i].body == req->body_case) {
            s_dispatch[i].fn(s, route, req, &raw);
            arena_reset(s->ar, S_ARENA_KEEP);
            return;
        }
    s->m.bad_requests++;
    s_reply_status(s, route, rid, BULLETIN__STATUS_CODE__UNIMPLEMENTED,
                   "ingest does not answer this request type");
    arena_reset(s->ar, S_ARENA_KEEP);
}

/* --- deadlines and pings ------------------------------------------------------ */

static void s_expire(s_server *s, int64_t now)
{
    s_pending *p = s->head;
    while (p) {
        s_pending *next = p->next;
        if (p->deadline_us <= now) {
            s->m.store_timeouts++;
            size_t answered = p->ops_total - p->ops_left;
            log_warn("ingest.store_timeout",
                     "request_id=%" PRIu64 " wait_ms=%u ops=%zu answered=%zu", p->client_id,
                     p->wait_ms, p->ops_total, answered);
            if (answered == 0)
                s_reply_status(s, &p->route, p->client_id, BULLETIN__STATUS_CODE__UNAVAILABLE,
                               "the store did not answer within %u ms; nothing is known to be "
                               "written — retrying is safe",
                               p->wait_ms);
            else
                s_reply_status(s, &p->route, p->client_id, BULLETIN__STATUS_CODE__UNAVAILABLE,
                               "the store did not answer within %u ms for %zu of %zu articles "
                               "of this request; some articles may be written — retrying is "
                               "safe",
                               p->wait_ms, p->ops_left, p->ops_total);
            s_pending_destroy(s, &p);
        }
        p = next;
    }
    /* parts nobody waits for any more (sent in order, so expire in order) */
    while (s->part_head && s->part_head->expire_us <= now) {
        s_part *pt = s->part_head;
        s_part_destroy(s, &pt);
    }
}

static int64_t s_next_deadline(const s_server *s)
{
    int64_t t = INT64_MAX;
    for (const s_pending *p = s->head; p; p = p->next)
        if (p->deadline_us < t)
            t = p->deadline_us;
    if (s->part_head && s->part_head->expire_us < t)
        t = s->part_head->expire_us;
    return t;
}

static void s_ping(s_server *s, int64_t now)
{
    s->next_ping_us = now + s->cfg->health_interval_ms * 1000;
    /* one at a time, unless the last one went unanswered for a whole interval */
    if (s->ping_out && now - s->ping_at_us < s->cfg->health_interval_ms * 1000)
        return;
    if (s_send_part(s, NULL, now + s->cfg->health_interval_ms * 1000, NULL, 0))
        s->ping_at_us = now;
}

/* zio_recv_routed moves frames into route->f[] with zmq_msg_move, which
 * closes the destination first: on uninitialized memory that fails (EFAULT)
 * and the routing frames are lost (replies then fail with EHOSTUNREACH).
 * Initialize every slot first; empty messages hold no resources, so
 * zio_route_close (which closes only the first n) leaks nothing. */
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

int ingest_server_config_check(const ingest_server_cfg *c, char *err, size_t cap)
{
    if (c->deadline_ms < 1 || c->deadline_ms > 3600000 || c->max_request < 1024 ||
        c->max_items < 1 || c->max_inflight < 1 || c->health_interval_ms < 10) {
        snprintf(err, cap, "out of range: deadline-ms 1..3600000, max-request >= 1024, "
                           "max-items >= 1, max-inflight >= 1");
        return -1;
    }
    if (zio_endpoints_check("--bind", c->bind, true, false, err, cap) < 0 ||
        zio_endpoints_check("--store", c->store, false, false, err, cap) < 0 ||
        http_listen_check(c->http, err, cap) < 0)
        return -1;
    return 0;
}

int ingest_server_run(const ingest_server_cfg *cfg)
{
    char err[640];
    if (ingest_server_config_check(cfg, err, sizeof err) < 0) {
        log_error("ingest.config", "error=\"%s\"", err);
        return -1;
    }
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
    s->st.deadline_us = INT64_MAX;
    zmq_msg_init(&s->delim.f[0]);
    int rc = -1;
    s->ar = arena_new(0);
    s->ctx = zmq_ctx_new();
    if (!s->ar || !s->ctx)
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
                if (zio_recv_routed(s->router, &route, &body, ZMQ_DONTWAIT) < 0) {
                    zmq_msg_close(&body);
                    break;
                }
                s_client_request(s, &route, &body);
                zmq_msg_close(&body);
                zio_route_close(&route);
            }
            /* what this turn's requests staged goes out as one message */
            s_stage_flush(s);
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
    while (s->part_head) {
        s_part *pt = s->part_head;
        s_part_destroy(s, &pt);
    }
    free(s->st.buf);
    free(s->st.refs);
    arena_destroy(&s->ar);
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
