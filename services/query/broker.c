/*
 * broker: see broker.h for the protocol and the request life.
 *
 * Data: workers in an array (a few dozen at most: linear search by routing
 * id is cheaper than hashing 5-byte ids); ready workers in an intrusive LRU
 * list; requests waiting for a worker in an intrusive FIFO; a request in
 * flight hangs off its worker (up to its credit). Requests assigned to a
 * worker during one wake-up wait in that worker's `out` list, and the end of
 * the wake-up sends each such worker one message (s_flush): REQUESTS for a
 * batch worker, else one REQUEST each. Deadlines are
 * checked by a scan that runs only when the earliest known deadline has
 * passed, so an ordinary request costs no scan at all.
 */
#include "broker.h"

#include "clock.h"
#include "http.h"
#include "log.h"
#include "pbscan.h"
#include "wire.h"
#include "zio.h"
#include "grow.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define S_ID_MAX 255
#define S_MAX_FRAMES (1 + BROKER_FRAMES_MAX) /* [worker id] + the protocol's frames */
#define S_BURST 256   /* messages read per socket per wake-up */

typedef struct s_worker s_worker;

typedef struct s_request {
    uint64_t tag;
    uint64_t request_id;
    uint64_t min_seq;
    int64_t deadline_us;
    int retries;
    size_t size;                /* bytes of the Request frame */
    zio_route route;
    zmq_msg_t body;             /* kept until answered, for one re-send */
    struct s_request *prev, *next; /* waiting FIFO */
} s_request;

struct s_worker {
    uint8_t id[S_ID_MAX];
    size_t id_len;
    char name[BROKER_NAME_MAX];
    uint64_t applied;
    int64_t expiry_us;
    uint32_t credit;            /* requests it accepts at once (READY says; default 1) */
    uint32_t nbusy;             /* slots in use */
    uint64_t max_msg;           /* largest Request frame it accepts (READY says; 0 = any) */
    struct {
        uint64_t tag;           /* 0 = free */
        s_request *r;           /* NULL when that request was answered already (deadline) */
    } slot[BROKER_CREDIT_MAX];
    bool ready;                 /* in the ready list: has a free slot */
    s_worker *rprev, *rnext;    /* ready LRU */
    bool batch;                 /* READY had BROKER_FLAG_BATCH */
    uint32_t nout;              /* requests assigned this wake-up, not sent yet */
    s_request *out[BROKER_CREDIT_MAX];
    bool flushq;                /* in the broker's flush list */
    s_worker *fnext;
};

typedef struct {
    const broker_config *cfg;
    void *front, *back;
    s_worker **workers;
    size_t nworkers, capworkers;
    s_worker *rhead, *rtail;    /* workers with a free slot: head = least recently used */
    size_t nready;
    s_request *whead, *wtail;   /* waiting FIFO */
    size_t nwaiting;
    s_worker *fhead;            /* workers with requests to send (nout > 0) */
    uint64_t take_max;          /* largest Request any registered worker accepts
                                 * (UINT64_MAX: one takes any size; 0: no worker) */
    uint64_t next_tag;
    int64_t next_check_us;      /* earliest deadline or worker expiry known */
    int64_t next_hb_us;
    int64_t next_http_us;       /* next /metrics snapshot */
    /* stats */
    uint64_t requests, replies, timeouts, unavailable, retries, rejected, dropped_workers,
        late_replies, request_msgs, reply_msgs;
    char instance[96];          /* host:pid */
    http_server *http;          /* /healthz and /metrics, NULL when off */
} s_broker;

/* --- envelope scan -------------------------------------------------------- */

int broker_envelope_scan(const void *data, size_t len, broker_envelope *out)
{
    memset(out, 0, sizeof *out);
    const uint8_t *p = data, *end = p + len;
    pbscan_field f;
    int rc;
    while ((rc = pbscan_next(&p, end, &f)) == 1) {
        if (f.field == 0)
            return -1;
        if (f.wire_type == PB_VARINT) {
            if (f.field == 1)
                out->version_major = (uint32_t)f.value;
            else if (f.field == 3)
                out->request_id = f.value;
            else if (f.field == 4)
                out->deadline_ms = (uint32_t)f.value;
            else if (f.field == 5)
                out->min_seq = f.value;
        } else if (f.wire_type == PB_LEN && ((f.field >= 10 && f.field <= 16) || f.field == 100)) {
            out->body = f.field;
        }
    }
    return rc == 0 ? 0 : -1;
}

/* --- sending ---------------------------------------------------------------- */

static void s_u64(uint8_t b[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        b[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint32_t s_get_u32(const uint8_t b[4])
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static uint64_t s_get_u64(const uint8_t b[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | b[i];
    return v;
}

/* Send [id][""][cmd](+[tag][body]) to a worker. body (may be NULL) is copied.
 * 0 or -1 (errno). */
static int s_send_worker(s_broker *b, const s_worker *w, uint8_t cmd, uint64_t tag,
                         zmq_msg_t *body)
{
    int f = ZMQ_DONTWAIT | ZMQ_SNDMORE;
    if (zmq_send(b->back, w->id, w->id_len, f) < 0)
        return -1;
    if (zmq_send(b->back, "", 0, f) < 0)
        return -1;
    if (zmq_send(b->back, &cmd, 1, body ? f : ZMQ_DONTWAIT) < 0)
        return -1;
    if (!body)
        return 0;
    uint8_t t[8];
    s_u64(t, tag);
    if (zmq_send(b->back, t, 8, f) < 0)
        return -1;
    zmq_msg_t copy;
    zmq_msg_init(&copy);
    zmq_msg_copy(&copy, body);
    if (zmq_msg_send(&copy, b->back, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&copy);
        return -1;
    }
    return 0;
}

/* Send [id][""][HEARTBEAT][max_msg] to a worker: alive, and the largest
 * frame this broker's socket takes from it (0 = any), so that the worker never
 * sends a Reply that would make libzmq drop its connection. 0 or -1 (errno). */
static int s_send_heartbeat(s_broker *b, const s_worker *w)
{
    int f = ZMQ_DONTWAIT | ZMQ_SNDMORE;
    uint8_t cmd = BROKER_HEARTBEAT, max[8];
    s_u64(max, b->cfg->max_msg > 0 ? (uint64_t)b->cfg->max_msg : 0);
    if (zmq_send(b->back, w->id, w->id_len, f) < 0 || zmq_send(b->back, "", 0, f) < 0 ||
        zmq_send(b->back, &cmd, 1, f) < 0 || zmq_send(b->back, max, 8, ZMQ_DONTWAIT) < 0)
        return -1;
    return 0;
}

/* Send [id][""][REQUESTS]([tag][Request])... with the n requests rs to a
 * batch worker (bodies are copied). 0 or -1 (errno; nothing was sent: a
 * multipart message is queued whole once its first frame is). */
static int s_send_batch(s_broker *b, const s_worker *w, s_request *const *rs, uint32_t n)
{
    int f = ZMQ_DONTWAIT | ZMQ_SNDMORE;
    uint8_t cmd = BROKER_REQUESTS;
    if (zmq_send(b->back, w->id, w->id_len, f) < 0 || zmq_send(b->back, "", 0, f) < 0 ||
        zmq_send(b->back, &cmd, 1, f) < 0)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t t[8];
        s_u64(t, rs[i]->tag);
        if (zmq_send(b->back, t, 8, f) < 0)
            return -1;
        zmq_msg_t copy;
        zmq_msg_init(&copy);
        zmq_msg_copy(&copy, &rs[i]->body);
        if (zmq_msg_send(&copy, b->back, i + 1 < n ? f : ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&copy);
            return -1;
        }
    }
    return 0;
}

static void s_answer_status(s_broker *b, s_request *r, wire_code code, const char *why)
{
    if (wire_send_status(b->front, &r->route, r->request_id, code, "%s", why) < 0)
        log_debug("query.client_gone", "request_id=%llu", (unsigned long long)r->request_id);
}

/* RESOURCE_EXHAUSTED to a request of `size` bytes that no registered worker
 * accepts (b->nworkers > 0). */
static void s_answer_too_large(s_broker *b, const zio_route *route, uint64_t request_id, size_t size)
{
    if (wire_send_status(b->front, route, request_id, BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED,
                         "the request is %zu bytes, more than any query worker accepts (at most "
                         "%llu bytes: the workers' --max-msg); send a smaller request",
                         size, (unsigned long long)b->take_max) < 0)
        log_debug("query.client_gone", "request_id=%llu", (unsigned long long)request_id);
}

static void s_request_free(s_request *r)
{
    if (!r)
        return;
    zio_route_close(&r->route);
    zmq_msg_close(&r->body);
    free(r);
}

/* --- queues ----------------------------------------------------------------- */

static void s_ready_push(s_broker *b, s_worker *w)
{
    if (w->ready)
        return;
    w->ready = true;
    w->rnext = NULL;
    w->rprev = b->rtail;
    if (b->rtail)
        b->rtail->rnext = w;
    else
        b->rhead = w;
    b->rtail = w;
    b->nready++;
}

static void s_ready_remove(s_broker *b, s_worker *w)
{
    if (!w->ready)
        return;
    if (w->rprev)
        w->rprev->rnext = w->rnext;
    else
        b->rhead = w->rnext;
    if (w->rnext)
        w->rnext->rprev = w->rprev;
    else
        b->rtail = w->rprev;
    w->ready = false;
    w->rprev = w->rnext = NULL;
    b->nready--;
}

static void s_wait_push(s_broker *b, s_request *r, bool front)
{
    r->prev = r->next = NULL;
    if (front) {
        r->next = b->whead;
        if (b->whead)
            b->whead->prev = r;
        else
            b->wtail = r;
        b->whead = r;
    } else {
        r->prev = b->wtail;
        if (b->wtail)
            b->wtail->next = r;
        else
            b->whead = r;
        b->wtail = r;
    }
    b->nwaiting++;
    if (r->deadline_us < b->next_check_us)
        b->next_check_us = r->deadline_us;
}

static void s_wait_remove(s_broker *b, s_request *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        b->whead = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        b->wtail = r->prev;
    r->prev = r->next = NULL;
    b->nwaiting--;
}

static s_worker *s_worker_find(s_broker *b, const void *id, size_t len)
{
    for (size_t i = 0; i < b->nworkers; i++)
        if (b->workers[i]->id_len == len && memcmp(b->workers[i]->id, id, len) == 0)
            return b->workers[i];
    return NULL;
}

static void s_dispatch(s_broker *b);

/* Recompute take_max after a worker came or left. */
static void s_take_max_update(s_broker *b)
{
    uint64_t m = 0;
    for (size_t i = 0; i < b->nworkers; i++) {
        uint64_t wm = b->workers[i]->max_msg ? b->workers[i]->max_msg : UINT64_MAX;
        if (wm > m)
            m = wm;
    }
    b->take_max = m;
}

/* Whether some registered worker accepts a Request of `size` bytes. */
static bool s_takeable(const s_broker *b, size_t size)
{
    return (uint64_t)size <= b->take_max;
}

/* Remove a worker; re-queue (once) or fail its request. */
static void s_worker_drop(s_broker *b, s_worker *w, const char *why)
{
    s_ready_remove(b, w);
    if (w->flushq) {
        s_worker **pp = &b->fhead;
        while (*pp != w)
            pp = &(*pp)->fnext;
        *pp = w->fnext;
        w->flushq = false;
    }
    /* requests assigned to it but never sent: back to the head of the queue
     * in their order, not counted as a try */
    for (uint32_t i = w->nout; i-- > 0;) {
        s_request *r = w->out[i];
        for (uint32_t k = 0; k < w->credit; k++)
            if (w->slot[k].r == r) {
                w->slot[k].tag = 0;
                w->slot[k].r = NULL;
            }
        s_wait_push(b, r, true);
    }
    w->nout = 0;
    for (size_t i = 0; i < b->nworkers; i++)
        if (b->workers[i] == w) {
            b->workers[i] = b->workers[--b->nworkers];
            break;
        }
    s_take_max_update(b);
    log_info("query.worker_dropped", "worker=%s why=\"%s\" workers=%zu", w->name, why, b->nworkers);
    b->dropped_workers++;
    /* its requests go back to the head of the queue, oldest first, once */
    for (int i = BROKER_CREDIT_MAX - 1; i >= 0; i--) {
        s_request *r = w->slot[i].r;
        if (!r)
            continue;
        if (r->retries == 0) {
            r->retries++;
            b->retries++;
            s_wait_push(b, r, true);
        } else {
            b->unavailable++;
            s_answer_status(b, r, BULLETIN__STATUS_CODE__UNAVAILABLE,
                            "the workers serving this request stopped answering (tried twice); retry");
            s_request_free(r);
        }
    }
    free(w);
}

/* Give r to worker w (which has a free slot): it takes a slot now and is
 * sent by the next s_flush. */
static void s_assign(s_broker *b, s_worker *w, s_request *r)
{
    w->out[w->nout++] = r;
    if (!w->flushq) {
        w->flushq = true;
        w->fnext = b->fhead;
        b->fhead = w;
    }
    for (uint32_t i = 0; i < w->credit; i++)
        if (w->slot[i].tag == 0) {
            w->slot[i].tag = r->tag;
            w->slot[i].r = r;
            break;
        }
    w->nbusy++;
    s_ready_remove(b, w);
    if (w->nbusy < w->credit)
        s_ready_push(b, w); /* still has room: to the back, as most recently used */
    if (r->deadline_us < b->next_check_us)
        b->next_check_us = r->deadline_us;
}

/* Send w's assigned requests: one REQUESTS message to a batch worker, else
 * one REQUEST each. A worker that cannot be sent to is dropped (what it did
 * not get goes back to the queue untried; what it got is retried once). */
static void s_flush_worker(s_broker *b, s_worker *w)
{
    uint32_t sent = 0;
    int rc = 0;
    if (w->batch) {
        rc = s_send_batch(b, w, w->out, w->nout);
        if (rc == 0)
            sent = w->nout;
        b->request_msgs++;
    } else {
        for (; sent < w->nout; sent++) {
            if ((rc = s_send_worker(b, w, BROKER_REQUEST, w->out[sent]->tag, &w->out[sent]->body)) < 0)
                break;
            b->request_msgs++;
        }
    }
    if (rc < 0) {
        char why[96];
        snprintf(why, sizeof why, "send failed: %s", zmq_strerror(errno));
        memmove(w->out, w->out + sent, (w->nout - sent) * sizeof w->out[0]);
        w->nout -= sent;
        s_worker_drop(b, w, why);
        return;
    }
    w->nout = 0;
}

/* End of a wake-up: send every worker what it was assigned. */
static void s_flush(s_broker *b)
{
    while (b->fhead) {
        s_worker *w = b->fhead;
        b->fhead = w->fnext;
        w->fnext = NULL;
        w->flushq = false;
        size_t nw = b->nworkers;
        s_flush_worker(b, w);
        if (b->nworkers < nw && b->nwaiting)
            s_dispatch(b); /* w was dropped: its requests to the others */
    }
}

/* A worker that has applied min_seq, accepts a Request of `size` bytes and
 * has a free slot: an idle one if any (least recently used first), else the
 * least recently used. */
static s_worker *s_pick(s_broker *b, uint64_t min_seq, size_t size)
{
    s_worker *busy = NULL;
    for (s_worker *w = b->rhead; w; w = w->rnext)
        if (w->applied >= min_seq && (w->max_msg == 0 || (uint64_t)size <= w->max_msg)) {
            if (w->nbusy == 0)
                return w;
            if (!busy)
                busy = w;
        }
    return busy;
}

/* Hand waiting requests to ready workers, oldest request first. */
static void s_dispatch(s_broker *b)
{
    s_request *r = b->whead;
    while (r && b->rhead) {
        s_request *next = r->next;
        s_worker *w = s_pick(b, r->min_seq, r->size);
        if (w) {
            s_wait_remove(b, r);
            s_assign(b, w, r);
        }
        r = next;
    }
}

/* --- client requests --------------------------------------------------------- */

/* Stats of the broker, as answered over ZeroMQ and published on /metrics. */
typedef struct {
    Bulletin__StatsReply sr;
    Bulletin__Metric m[16], *mp[16];
} s_stats;

static uint64_t s_max_applied(const s_broker *b)
{
    uint64_t m = 0;
    for (size_t i = 0; i < b->nworkers; i++)
        if (b->workers[i]->applied > m)
            m = b->workers[i]->applied;
    return m;
}

static size_t s_inflight(const s_broker *b)
{
    size_t n = 0;
    for (size_t i = 0; i < b->nworkers; i++)
        n += b->workers[i]->nbusy;
    return n;
}

static void s_stats_fill(s_broker *b, s_stats *st)
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
    } ms[] = {
        {"workers", (double)b->nworkers, "registered workers", false},
        {"workers_ready", (double)b->nready, "workers with room for another request", false},
        {"queue_length", (double)b->nwaiting, "requests waiting for a worker", false},
        {"inflight", (double)s_inflight(b), "requests at workers", false},
        {"requests", (double)b->requests, "client requests forwarded to workers", true},
        {"replies", (double)b->replies, "worker replies forwarded to clients", true},
        {"timeouts", (double)b->timeouts, "requests answered DEADLINE_EXCEEDED", true},
        {"unavailable", (double)b->unavailable, "requests answered UNAVAILABLE", true},
        {"retries", (double)b->retries, "requests re-sent after a worker was lost", true},
        {"rejected", (double)b->rejected, "requests refused by the broker (bad, unsupported, queue full)", true},
        {"dropped_workers", (double)b->dropped_workers, "workers dropped (missed heartbeats, unreachable)", true},
        {"late_replies", (double)b->late_replies, "worker replies after the deadline (discarded)", true},
        {"request_messages", (double)b->request_msgs, "REQUEST/REQUESTS messages sent to workers (requests per message = requests / this)", true},
        {"reply_messages", (double)b->reply_msgs, "REPLY/REPLIES messages received from workers", true},
        {"max_applied_seq", (double)s_max_applied(b), "highest applied seq among workers", false},
        {"cpu_seconds", cpu, "CPU time of the broker process (user+system)", true},
    };
    size_t n = sizeof ms / sizeof ms[0];
    _Static_assert(sizeof ms / sizeof ms[0] <= sizeof st->m / sizeof st->m[0], "s_stats.m too small");
    bulletin__stats_reply__init(&st->sr);
    for (size_t i = 0; i < n; i++) {
        bulletin__metric__init(&st->m[i]);
        st->m[i].name = (char *)ms[i].name;
        st->m[i].value = ms[i].v;
        st->m[i].help = (char *)ms[i].help;
        st->m[i].counter = ms[i].counter;
        st->mp[i] = &st->m[i];
    }
    st->sr.service = "query";
    st->sr.instance = b->instance;
    st->sr.metrics = st->mp;
    st->sr.n_metrics = n;
}

static void s_health_detail(const s_broker *b, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s: %zu workers (%zu ready), %zu requests waiting",
             b->nworkers ? "ok" : "no worker registered", b->nworkers, b->nready, b->nwaiting);
}

static void s_answer_local(s_broker *b, const zio_route *route, const broker_envelope *env)
{
    Bulletin__Reply rep;
    Bulletin__Status st;
    wire_reply_init(&rep, &st, env->request_id);
    rep.served_by = b->instance;
    rep.applied_seq = s_max_applied(b);
    Bulletin__HealthReply h = BULLETIN__HEALTH_REPLY__INIT;
    s_stats stats;
    char detail[128];
    if (env->body == 16) {
        h.ok = b->nworkers > 0;
        h.service = "query";
        h.instance = b->instance;
        h.applied_seq = rep.applied_seq;
        s_health_detail(b, detail, sizeof detail);
        h.detail = detail;
        rep.body_case = BULLETIN__REPLY__BODY_HEALTH;
        rep.health = &h;
    } else {
        s_stats_fill(b, &stats);
        rep.body_case = BULLETIN__REPLY__BODY_STATS;
        rep.stats = &stats.sr;
    }
    if (wire_send(b->front, route, &rep.base) < 0)
        log_debug("query.client_gone", "request_id=%llu", (unsigned long long)env->request_id);
}

static void s_http_publish(s_broker *b)
{
    if (!b->http)
        return;
    s_stats st;
    char detail[128];
    s_stats_fill(b, &st);
    s_health_detail(b, detail, sizeof detail);
    http_server_publish(b->http, &st.sr, b->nworkers > 0, detail);
}

/* Read and handle one client message: 0, or -1 when none was waiting. */
static int s_on_client(s_broker *b)
{
    zio_route route;
    zmq_msg_t body;
    if (zio_recv_routed(b->front, &route, &body, ZMQ_DONTWAIT) < 0)
        return -1;
    broker_envelope env;
    const char *why = NULL;
    wire_code code = BULLETIN__STATUS_CODE__INVALID_ARGUMENT;
    if (zmq_msg_size(&body) == 0) {
        memset(&env, 0, sizeof env);
        why = "empty or misshapen message: expected [empty frame][bulletin.Request]";
    } else if (broker_envelope_scan(zmq_msg_data(&body), zmq_msg_size(&body), &env) < 0) {
        why = "the message body is not a valid protobuf bulletin.Request";
    } else if (env.version_major > WIRE_VERSION_MAJOR) {
        code = BULLETIN__STATUS_CODE__FAILED_PRECONDITION;
        why = "unsupported protocol major version (this service speaks 1)";
    } else if (env.body == 0) {
        why = "the request has no body (or a message type this service does not know)";
    } else if (env.body == 15 || env.body == 16) {
        s_answer_local(b, &route, &env);
        goto out;
    } else if (env.body != 11 && env.body != 13 && env.body != 14) {
        code = BULLETIN__STATUS_CODE__UNIMPLEMENTED;
        why = "the query service answers Get, List, Search, Stats and Health; send writes to ingest";
    } else if (b->nwaiting >= (size_t)b->cfg->max_queue) {
        code = BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED;
        why = "too many requests are waiting for a worker; retry later";
    } else if (b->nworkers && !s_takeable(b, zmq_msg_size(&body))) {
        b->rejected++;
        s_answer_too_large(b, &route, env.request_id, zmq_msg_size(&body));
        goto out;
    }
    if (why) {
        b->rejected++;
        if (wire_send_status(b->front, &route, env.request_id, code, "%s", why) < 0)
            log_debug("query.client_gone", "request_id=%llu", (unsigned long long)env.request_id);
        goto out;
    }
    s_request *r = calloc(1, sizeof *r);
    if (!r) {
        wire_send_status(b->front, &route, env.request_id, BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED,
                         "out of memory");
        goto out;
    }
    b->requests++;
    r->tag = ++b->next_tag;
    r->request_id = env.request_id;
    r->min_seq = env.min_seq;
    r->size = zmq_msg_size(&body);
    int64_t dl = b->cfg->deadline_ms;
    if (env.deadline_ms && env.deadline_ms < dl)
        dl = env.deadline_ms;
    r->deadline_us = clock_mono_us() + dl * 1000;
    if (zio_route_copy(&r->route, &route) < 0) {
        free(r);
        wire_send_status(b->front, &route, env.request_id, BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED,
                         "out of memory");
        goto out;
    }
    zmq_msg_init(&r->body);
    zmq_msg_move(&r->body, &body);
    s_worker *w = b->nwaiting ? NULL : s_pick(b, r->min_seq, r->size);
    if (w) {
        s_assign(b, w, r);
        goto out;
    }
    s_wait_push(b, r, false);
    s_dispatch(b);
out:
    zio_route_close(&route);
    zmq_msg_close(&body);
    return 0;
}

/* --- worker messages ------------------------------------------------------- */

/* The answer to `tag` from w: forwarded to its client (the frame is taken),
 * or counted as late when the request was answered already (deadline). */
static void s_on_reply(s_broker *b, s_worker *w, uint64_t tag, zmq_msg_t *reply)
{
    uint32_t k = 0;
    while (k < w->credit && (tag == 0 || w->slot[k].tag != tag))
        k++;
    if (k == w->credit) {
        log_warn("query.unexpected_reply", "worker=%s tag=%llu", w->name, (unsigned long long)tag);
        return;
    }
    s_request *r = w->slot[k].r;
    w->slot[k].tag = 0;
    w->slot[k].r = NULL;
    w->nbusy--;
    if (!r) {
        b->late_replies++;
        return;
    }
    b->replies++;
    if (zio_send_routed_msg(b->front, &r->route, reply) < 0)
        log_debug("query.client_gone", "request_id=%llu error=\"%s\"",
                  (unsigned long long)r->request_id, zmq_strerror(errno));
    zmq_msg_init(reply); /* consumed */
    s_request_free(r);
}

/* Read and handle one worker message: 0, or -1 when none was waiting. */
static int s_on_worker(s_broker *b)
{
    zmq_msg_t f[S_MAX_FRAMES];
    int n;
    bool too_many;
    if (zio_recv_frames(b->back, f, S_MAX_FRAMES, &n, &too_many, ZMQ_DONTWAIT) < 0)
        return -1;
    int64_t now = clock_mono_us();
    s_worker *w = NULL;
    if (n < 3 || too_many || zmq_msg_size(&f[1]) != 0 || zmq_msg_size(&f[2]) != 1 ||
        zmq_msg_size(&f[0]) > S_ID_MAX) {
        log_warn("query.bad_worker_message", "frames=%d", n);
        goto out;
    }
    uint8_t cmd = *(uint8_t *)zmq_msg_data(&f[2]);
    w = s_worker_find(b, zmq_msg_data(&f[0]), zmq_msg_size(&f[0]));
    if (cmd == BROKER_READY) {
        if (n < 5 || n > 8 || zmq_msg_size(&f[4]) != 8 || (n >= 6 && zmq_msg_size(&f[5]) != 4) ||
            (n >= 7 && zmq_msg_size(&f[6]) != 4) || (n == 8 && zmq_msg_size(&f[7]) != 8)) {
            log_warn("query.bad_worker_message", "cmd=READY frames=%d", n);
            goto out;
        }
        if (w) /* registering twice: start over (its request, if any, is retried) */
            s_worker_drop(b, w, "registered again");
        w = calloc(1, sizeof *w);
        if (!w)
            goto out;
        if (b->nworkers == b->capworkers) {
            s_worker **nw = grow(b->workers, &b->capworkers, sizeof *nw, 16);
            if (!nw) {
                free(w);
                goto out;
            }
            b->workers = nw;
        }
        b->workers[b->nworkers++] = w;
        w->id_len = zmq_msg_size(&f[0]);
        memcpy(w->id, zmq_msg_data(&f[0]), w->id_len);
        size_t nl = zmq_msg_size(&f[3]);
        if (nl >= BROKER_NAME_MAX)
            nl = BROKER_NAME_MAX - 1;
        memcpy(w->name, zmq_msg_data(&f[3]), nl);
        w->name[nl] = '\0';
        for (size_t i = 0; i < nl; i++) /* keep log lines one key=value each */
            if ((unsigned char)w->name[i] <= ' ' || w->name[i] == '"' || w->name[i] == '=')
                w->name[i] = '_';
        w->applied = s_get_u64(zmq_msg_data(&f[4]));
        w->credit = 1;
        if (n >= 7)
            w->batch = (s_get_u32(zmq_msg_data(&f[6])) & BROKER_FLAG_BATCH) != 0;
        if (n == 8)
            w->max_msg = s_get_u64(zmq_msg_data(&f[7]));
        if (n >= 6) {
            uint32_t credit = s_get_u32(zmq_msg_data(&f[5]));
            w->credit = credit < 1 ? 1 : credit > BROKER_CREDIT_MAX ? BROKER_CREDIT_MAX : credit;
        }
        w->expiry_us = now + b->cfg->heartbeat_ms * b->cfg->liveness * 1000;
        s_take_max_update(b);
        log_info("query.worker_ready",
                 "worker=%s applied_seq=%llu credit=%u batch=%d max_msg=%llu workers=%zu", w->name,
                 (unsigned long long)w->applied, w->credit, (int)w->batch,
                 (unsigned long long)w->max_msg, b->nworkers);
        /* our limit before its first request: the same pipe keeps the order */
        s_send_heartbeat(b, w);
        s_ready_push(b, w);
        s_dispatch(b);
        goto out;
    }
    if (!w) {
        /* a worker we do not know (we restarted, or dropped it): make it register again */
        if (cmd != BROKER_DISCONNECT) {
            s_worker tmp = {.id_len = zmq_msg_size(&f[0])};
            memcpy(tmp.id, zmq_msg_data(&f[0]), tmp.id_len);
            s_send_worker(b, &tmp, BROKER_DISCONNECT, 0, NULL);
        }
        goto out;
    }
    w->expiry_us = now + b->cfg->heartbeat_ms * b->cfg->liveness * 1000;
    switch (cmd) {
    case BROKER_HEARTBEAT:
        if (n >= 4 && zmq_msg_size(&f[3]) == 8) {
            uint64_t seq = s_get_u64(zmq_msg_data(&f[3]));
            bool more = seq > w->applied;
            w->applied = seq;
            if (more && w->ready && b->nwaiting)
                s_dispatch(b);
        }
        break;
    case BROKER_REPLY:
        if (n != 6 || zmq_msg_size(&f[3]) != 8 || zmq_msg_size(&f[4]) != 8) {
            log_warn("query.bad_worker_message", "cmd=REPLY frames=%d worker=%s", n, w->name);
            break;
        }
        b->reply_msgs++;
        w->applied = s_get_u64(zmq_msg_data(&f[4]));
        s_on_reply(b, w, s_get_u64(zmq_msg_data(&f[3])), &f[5]);
        s_ready_push(b, w); /* no-op when it still had room */
        if (b->nwaiting)
            s_dispatch(b);
        break;
    case BROKER_REPLIES:
        if (n < 6 || (n - 4) % 2 != 0 || too_many || zmq_msg_size(&f[3]) != 8) {
            log_warn("query.bad_worker_message", "cmd=REPLIES frames=%d worker=%s", n, w->name);
            break;
        }
        b->reply_msgs++;
        w->applied = s_get_u64(zmq_msg_data(&f[3]));
        for (int i = 4; i < n; i += 2) {
            if (zmq_msg_size(&f[i]) != 8)
                log_warn("query.bad_worker_message", "cmd=REPLIES tag_bytes=%zu worker=%s",
                         zmq_msg_size(&f[i]), w->name);
            else
                s_on_reply(b, w, s_get_u64(zmq_msg_data(&f[i])), &f[i + 1]);
        }
        s_ready_push(b, w);
        if (b->nwaiting)
            s_dispatch(b);
        break;
    case BROKER_DISCONNECT:
        s_worker_drop(b, w, "disconnected");
        break;
    default:
        log_warn("query.bad_worker_message", "cmd=%u worker=%s", cmd, w->name);
    }
out:
    for (int i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
    return 0;
}

/* --- time -------------------------------------------------------------------- */

static void s_expire_one(s_broker *b, s_request *r)
{
    b->timeouts++;
    if (b->nworkers == 0) {
        b->unavailable++;
        b->timeouts--;
        s_answer_status(b, r, BULLETIN__STATUS_CODE__UNAVAILABLE,
                        "no query worker is available; retry later");
    } else if (!s_takeable(b, r->size)) {
        b->timeouts--;
        b->rejected++;
        s_answer_too_large(b, &r->route, r->request_id, r->size);
    } else if (r->min_seq > s_max_applied(b)) {
        char why[160];
        snprintf(why, sizeof why, "no worker reached seq %llu within the deadline (highest applied: %llu)",
                 (unsigned long long)r->min_seq, (unsigned long long)s_max_applied(b));
        s_answer_status(b, r, BULLETIN__STATUS_CODE__DEADLINE_EXCEEDED, why);
    } else {
        s_answer_status(b, r, BULLETIN__STATUS_CODE__DEADLINE_EXCEEDED,
                        "no worker answered within the deadline");
    }
    s_request_free(r);
}

/* Expire requests and workers; recompute the next check time. */
static void s_check(s_broker *b, int64_t now)
{
    int64_t next = now + 1000000;
    for (size_t i = 0; i < b->nworkers;) {
        s_worker *w = b->workers[i];
        if (w->expiry_us <= now) {
            s_worker_drop(b, w, "missed heartbeats");
            continue; /* the array was compacted into slot i */
        }
        if (w->expiry_us < next)
            next = w->expiry_us;
        for (uint32_t k = 0; k < w->credit; k++) {
            s_request *r = w->slot[k].r;
            if (r && r->deadline_us <= now) {
                w->slot[k].r = NULL; /* the slot stays busy until the worker answers */
                s_expire_one(b, r);
            } else if (r && r->deadline_us < next) {
                next = r->deadline_us;
            }
        }
        i++;
    }
    for (s_request *r = b->whead; r;) {
        s_request *nx = r->next;
        if (r->deadline_us <= now) {
            s_wait_remove(b, r);
            s_expire_one(b, r);
        } else if (r->deadline_us < next) {
            next = r->deadline_us;
        }
        r = nx;
    }
    b->next_check_us = next;
    if (b->nwaiting)
        s_dispatch(b); /* retried requests may have been queued by drops */
}

static void s_heartbeat(s_broker *b)
{
    for (size_t i = 0; i < b->nworkers;) {
        s_worker *w = b->workers[i];
        if (s_send_heartbeat(b, w) < 0 && errno == EHOSTUNREACH) {
            s_worker_drop(b, w, "unreachable");
            continue;
        }
        i++;
    }
}

/* Whether sock has a message to read: 1 or 0, -1 when the context was
 * terminated (ZMQ_EVENTS; it also reads the socket's pending commands, so
 * that its ZMQ_FD signals only what comes after). */
static int s_readable(void *sock)
{
    int ev = 0;
    size_t sz = sizeof ev;
    if (zmq_getsockopt(sock, ZMQ_EVENTS, &ev, &sz) < 0)
        return errno == ETERM ? -1 : 0;
    return (ev & ZMQ_POLLIN) != 0;
}

/* Handle what is waiting on one socket with `on` (s_on_worker or
 * s_on_client), at most S_BURST messages; *n = how many. 0, or -1 when the
 * context was terminated. */
static int s_drain(s_broker *b, int (*on)(s_broker *), int *n)
{
    for (*n = 0; *n < S_BURST; (*n)++)
        if (on(b) < 0)
            return errno == ETERM ? -1 : 0;
    return 0;
}

/* Bind sock to every endpoint of a comma-separated list (e.g. TCP for remote
 * peers plus ipc:// for those on this host: cheaper per message). 0 or -1. */
static int s_bind_list(void *sock, const char *list)
{
    const char *p = list ? list : "";
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char ep[512];
        if (len == 0 || len >= sizeof ep) {
            log_error("zmq.bind", "endpoints=\"%s\" error=\"empty or too long endpoint in the list\"",
                      list ? list : "");
            return -1;
        }
        memcpy(ep, p, len);
        ep[len] = '\0';
        if (zio_bind(sock, ep) < 0)
            return -1;
        if (!end)
            return 0;
        p = end + 1;
    }
}

void broker_config_defaults(broker_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->bind = "tcp://*:5556";
    cfg->workers = "tcp://*:5559";
    cfg->deadline_ms = 5000;
    cfg->heartbeat_ms = 1000;
    cfg->liveness = 3;
    cfg->max_queue = 100000;
    cfg->max_msg = 16 << 20;
    cfg->stop_fd = -1;
}

int broker_config_check(const broker_config *cfg, char *err, size_t cap)
{
    /* the upper bounds keep now + deadline or heartbeat * liveness (us) far from overflow */
    if (cfg->deadline_ms < 1 || cfg->deadline_ms > 3600000 || cfg->heartbeat_ms < 1 ||
        cfg->heartbeat_ms > 3600000 || cfg->liveness < 1 || cfg->liveness > 1000 ||
        cfg->max_queue < 1 || cfg->max_msg < 0 ||
        (cfg->max_msg > 0 && cfg->max_msg < BROKER_MIN_MAX_MSG)) {
        snprintf(err, cap, "out of range: deadline-ms and heartbeat-ms 1..3600000, liveness "
                           "1..1000, max-queue >= 1, max-msg 0 (no limit) or >= %d",
                 BROKER_MIN_MAX_MSG);
        return -1;
    }
    if (zio_endpoints_check("--bind", cfg->bind, true, true, err, cap) < 0 ||
        zio_endpoints_check("--workers", cfg->workers, true, true, err, cap) < 0 ||
        http_listen_check(cfg->http, err, cap) < 0)
        return -1;
    return 0;
}

int broker_run(const broker_config *cfg)
{
    s_broker b = {.cfg = cfg};
    char err[640];
    if (broker_config_check(cfg, err, sizeof err) < 0) {
        log_error("query.config", "error=\"%s\"", err);
        return -1;
    }
    void *ctx = cfg->ctx ? cfg->ctx : zmq_ctx_new();
    int rc = -1;
    if (!ctx)
        return -1;
    b.front = zio_socket(ctx, ZMQ_ROUTER, 0, cfg->max_msg);
    b.back = zio_socket(ctx, ZMQ_ROUTER, 0, cfg->max_msg);
    if (!b.front || !b.back || s_bind_list(b.front, cfg->bind) < 0 ||
        s_bind_list(b.back, cfg->workers) < 0)
        goto done;
    int hwm = 100000;
    zmq_setsockopt(b.front, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(b.front, ZMQ_RCVHWM, &hwm, sizeof hwm);
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    snprintf(b.instance, sizeof b.instance, "%s:%d", host, (int)getpid());
    b.http = http_server_new(cfg->http, "query");
    s_http_publish(&b);
    log_info("query.start", "bind=%s workers=%s deadline_ms=%lld heartbeat_ms=%lld liveness=%lld",
             cfg->bind, cfg->workers, cfg->deadline_ms, cfg->heartbeat_ms, cfg->liveness);
    int64_t now = clock_mono_us();
    b.next_check_us = now + 1000000;
    b.next_hb_us = now + cfg->heartbeat_ms * 1000;
    int ffd = -1, bfd = -1;
    size_t fdsz = sizeof ffd;
    if (zmq_getsockopt(b.front, ZMQ_FD, &ffd, &fdsz) < 0 ||
        (fdsz = sizeof bfd, zmq_getsockopt(b.back, ZMQ_FD, &bfd, &fdsz) < 0)) {
        log_error("query.poll", "error=\"%s\"", zmq_strerror(errno));
        goto done;
    }
    /* The loop polls the sockets' ZMQ_FDs itself instead of calling zmq_poll,
     * which asks ZMQ_EVENTS of every socket before and after each poll (each
     * ask a poll(2) on the socket's mailbox). ZMQ_FD is edge-triggered: it is
     * readable while the socket has commands from the I/O thread not read yet.
     * A socket is read (until EAGAIN) only when its fd was readable or when
     * ZMQ_EVENTS said so before sleeping; that ask is needed because a send
     * may read the command that made the socket readable. */
    bool front_in = true, back_in = true; /* may have messages: read before sleeping */
    unsigned busy_turns = 0;
    rc = 0;
    for (;;) {
        if (!front_in && !back_in) {
            struct pollfd pfd[3] = {{ffd, POLLIN, 0}, {bfd, POLLIN, 0}, {cfg->stop_fd, POLLIN, 0}};
            now = clock_mono_us();
            int64_t wake = b.next_check_us < b.next_hb_us ? b.next_check_us : b.next_hb_us;
            int timeout = wake <= now ? 0 : (int)((wake - now + 999) / 1000);
            int n = poll(pfd, cfg->stop_fd >= 0 ? 3 : 2, timeout);
            if (n < 0 && errno != EINTR) {
                log_error("query.poll", "error=\"%s\"", strerror(errno));
                rc = -1;
                break;
            }
            if (n > 0 && (pfd[2].revents & POLLIN))
                break;
            front_in = n > 0 && pfd[0].revents;
            back_in = n > 0 && pfd[1].revents;
        } else if (cfg->stop_fd >= 0 && ++busy_turns % 64 == 0) {
            /* never slept for a while: look at the stop fd without waiting */
            struct pollfd sp = {cfg->stop_fd, POLLIN, 0};
            if (poll(&sp, 1, 0) > 0 && (sp.revents & POLLIN))
                break;
        }
        /* workers first: replies free workers for the requests behind them */
        int nb = 0, nf = 0;
        if ((back_in && s_drain(&b, s_on_worker, &nb) < 0) ||
            (front_in && s_drain(&b, s_on_client, &nf) < 0))
            break;
        s_flush(&b); /* before s_check: it may expire what `out` lists hold */
        now = clock_mono_us();
        if (now >= b.next_hb_us) {
            s_heartbeat(&b);
            if (now >= b.next_http_us) {
                s_http_publish(&b);
                b.next_http_us = now + 1000000;
            }
            b.next_hb_us = now + cfg->heartbeat_ms * 1000;
        }
        if (now >= b.next_check_us) {
            s_check(&b, now);
            s_flush(&b);
        }
        int fr = nf == S_BURST ? 1 : s_readable(b.front);
        int br = nb == S_BURST ? 1 : s_readable(b.back);
        if (fr < 0 || br < 0)
            break;
        front_in = fr;
        back_in = br;
    }
    log_info("query.stop", "requests=%llu replies=%llu", (unsigned long long)b.requests,
             (unsigned long long)b.replies);
done:
    /* answer what is still pending, so no client waits for nothing */
    while (b.whead) {
        s_request *r = b.whead;
        s_wait_remove(&b, r);
        s_answer_status(&b, r, BULLETIN__STATUS_CODE__UNAVAILABLE, "the query broker is stopping");
        s_request_free(r);
    }
    for (size_t i = 0; i < b.nworkers; i++) {
        for (uint32_t k = 0; k < b.workers[i]->credit; k++) {
            s_request *r = b.workers[i]->slot[k].r;
            if (r) {
                s_answer_status(&b, r, BULLETIN__STATUS_CODE__UNAVAILABLE, "the query broker is stopping");
                s_request_free(r);
            }
        }
        free(b.workers[i]);
    }
    free(b.workers);
    http_server_destroy(&b.http);
    zio_close(&b.front);
    zio_close(&b.back);
    if (!cfg->ctx)
        zmq_ctx_term(ctx);
    return rc;
}
