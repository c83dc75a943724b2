/*
 * client: libbulletin, the public client API of include/bulletin.h.
 *
 * Each client owns a ZeroMQ context and, lazily, one DEALER socket per
 * service it talks to. A call builds a bulletin.Request, packs it once, and
 * runs the Lazy Pirate loop:
 *
 *     attempt 0..retries:
 *        (re)open the DEALER, connect, send [empty][Request]
 *        poll until the attempt's deadline:
 *            reply with our request_id  -> decode it (byte budget), done
 *            reply with another id      -> a late answer to an earlier
 *                                          attempt or call: discard, poll on
 *        timeout -> close the socket (drops queued requests and late
 *                   replies), try again
 *     all attempts timed out -> BULLETIN_UNAVAILABLE
 *
 * Every write is idempotent on the service side (an identical article is
 * "unchanged"), so sending a request again after a timeout is safe.
 *
 * The library never prints: errors go to c->err, read with
 * bulletin_client_last_error(). Replies are untrusted input: they are
 * decoded with a byte budget and every field is copied out before the
 * decoded message is freed.
 */
#include "bulletin.h"
#include "client_internal.h"

#include "clock.h"
#include "wire.h"
#include "zio.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CLIENT_MAX_REPLY (256LL * 1024 * 1024) /* a frame over this drops the connection */
#define CLIENT_MAX_ITEMS 10000
#define CLIENT_BIG_REQUEST (16u * 1024 * 1024) /* the services' default message limit */

typedef struct {
    char *endpoint; /* NULL = not configured */
    void *sock;     /* NULL until first use and after a timeout */
} s_peer;

struct bulletin_client {
    void *ctx;
    s_peer peer[3]; /* indexed by bulletin_service */
    int timeout_ms;
    int retries;
    uint64_t next_id;
    char err[512];
    char served_by[128];  /* Reply.served_by of the last successful call */
    uint64_t applied_seq; /* Reply.applied_seq of the last successful call */
    bool answered;        /* the last call got its reply (any status) */
};

/* ------------------------------------------------------------------------ */
/* names                                                                     */

static const char *const s_status_names[] = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED"};

const char *bulletin_status_name(bulletin_status s)
{
    if ((int)s < 0 || (size_t)s >= sizeof s_status_names / sizeof *s_status_names)
        return "UNKNOWN";
    return s_status_names[s];
}

const char *bulletin_service_name(bulletin_service s)
{
    switch (s) {
    case BULLETIN_SERVICE_INGEST: return "ingest";
    case BULLETIN_SERVICE_QUERY: return "query";
    case BULLETIN_SERVICE_STORE: return "store";
    }
    return "?";
}

const char *bulletin_write_status_name(bulletin_write_status s)
{
    switch (s) {
    case BULLETIN_WRITE_CREATED: return "created";
    case BULLETIN_WRITE_UPDATED: return "updated";
    case BULLETIN_WRITE_UNCHANGED: return "unchanged";
    case BULLETIN_WRITE_DELETED: return "deleted";
    case BULLETIN_WRITE_REJECTED: return "rejected";
    case BULLETIN_WRITE_UNSPECIFIED: break;
    }
    return "unspecified";
}

/* ------------------------------------------------------------------------ */
/* life                                                                      */

void bulletin_options_init(bulletin_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->timeout_ms = 5000;
    o->retries = 2;
}

static bulletin_status s_fail(bulletin_client *c, bulletin_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bulletin_status s_fail(bulletin_client *c, bulletin_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return st;
}

/* "transport://address" with a transport ZeroMQ knows. */
static int s_endpoint_ok(const char *ep)
{
    static const char *const transports[] = {"tcp://", "ipc://", "inproc://", "pgm://",
                                             "epgm://", "vmci://"};
    for (size_t i = 0; i < sizeof transports / sizeof *transports; i++) {
        size_t n = strlen(transports[i]);
        if (!strncmp(ep, transports[i], n) && ep[n])
            return 1;
    }
    return 0;
}

bulletin_client *bulletin_client_new(const bulletin_options *opts)
{
    bulletin_options def;
    bulletin_options_init(&def);
    if (!opts)
        opts = &def;
    const char *eps[3] = {opts->ingest_endpoint, opts->query_endpoint, opts->store_endpoint};
    for (int i = 0; i < 3; i++)
        if (eps[i] && !s_endpoint_ok(eps[i]))
            return NULL;

    bulletin_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 5000;
    c->retries = opts->retries >= 0 ? opts->retries : 2;
    /* Start ids somewhere unlikely to collide with an earlier client of the
     * same peer (a late reply must not be mistaken for ours). */
    c->next_id = ((uint64_t)clock_now_ms() << 20) ^ ((uint64_t)getpid() << 8);
    for (int i = 0; i < 3; i++) {
        if (eps[i] && !(c->peer[i].endpoint = strdup(eps[i]))) {
            bulletin_client_destroy(&c);
            return NULL;
        }
    }
    c->ctx = zmq_ctx_new();
    if (!c->ctx) {
        bulletin_client_destroy(&c);
        return NULL;
    }
    return c;
}

void bulletin_client_destroy(bulletin_client **cp)
{
    if (!cp || !*cp)
        return;
    bulletin_client *c = *cp;
    for (int i = 0; i < 3; i++) {
        zio_close(&c->peer[i].sock);
        free(c->peer[i].endpoint);
    }
    if (c->ctx)
        zmq_ctx_term(c->ctx); /* every socket has linger 0: returns at once */
    free(c);
    *cp = NULL;
}

const char *bulletin_client_last_error(const bulletin_client *c)
{
    return c ? c->err : "no client (NULL)";
}

const char *bulletin_client_served_by(const bulletin_client *c, uint64_t *applied_seq)
{
    if (applied_seq)
        *applied_seq = c ? c->applied_seq : 0;
    return c ? c->served_by : "";
}

/* ------------------------------------------------------------------------ */
/* transport                                                                 */

static int s_open(bulletin_client *c, s_peer *p)
{
    if (p->sock)
        return 0;
    p->sock = zio_socket(c->ctx, ZMQ_DEALER, 0, CLIENT_MAX_REPLY);
    if (!p->sock)
        return -1;
    int sndtimeo = c->timeout_ms;
    zmq_setsockopt(p->sock, ZMQ_SNDTIMEO, &sndtimeo, sizeof sndtimeo);
    if (zmq_connect(p->sock, p->endpoint) != 0) {
        int e = errno;
        zio_close(&p->sock);
        errno = e;
        return -1;
    }
    return 0;
}

/* Send [empty][bytes]. 0 or -1 with errno. */
static int s_send(void *sock, const ProtobufCBinaryData *bytes)
{
    if (zmq_send(sock, "", 0, ZMQ_SNDMORE) < 0)
        return -1;
    return zmq_send(sock, bytes->data, bytes->len, 0) < 0 ? -1 : 0;
}

uint32_t client_deadline_ms(int timeout_ms)
{
    /* The service's deadline ends a margin before we stop listening, so that
     * its DEADLINE_EXCEEDED (a clear answer) arrives while we still wait. */
    if (timeout_ms < 2)
        return 1;
    int margin = timeout_ms / 10;
    if (margin < 100)
        margin = 100;
    if (margin > timeout_ms / 2)
        margin = timeout_ms / 2;
    return (uint32_t)(timeout_ms - margin);
}

/*
 * One request/reply exchange with retries. On BULLETIN_OK *out is the decoded
 * reply (free with wire_free) and its status was OK; otherwise c->err says
 * why. req's version, request_id and deadline are set here.
 */
bulletin_status client_call(bulletin_client *c, bulletin_service svc, Bulletin__Request *req,
                            Bulletin__Reply **out)
{
    *out = NULL;
    if ((int)svc < 0 || (int)svc > 2)
        return s_fail(c, BULLETIN_INVALID_ARGUMENT, "unknown service %d", (int)svc);
    s_peer *p = &c->peer[svc];
    if (!p->endpoint)
        return s_fail(c, BULLETIN_FAILED_PRECONDITION, "no %s endpoint configured",
                      bulletin_service_name(svc));
    req->version_major = WIRE_VERSION_MAJOR;
    req->version_minor = WIRE_VERSION_MINOR;
    req->request_id = ++c->next_id;
    req->deadline_ms = client_deadline_ms(c->timeout_ms);
    c->served_by[0] = '\0';
    c->applied_seq = 0;
    c->answered = false;

    ProtobufCBinaryData bytes = {0, NULL};
    if (wire_pack_bytes(&req->base, &bytes) != 0)
        return s_fail(c, BULLETIN_RESOURCE_EXHAUSTED, "out of memory packing the request");

    bulletin_status st = BULLETIN_UNAVAILABLE;
    int attempts = c->retries + 1;
    char last_why[300] = "no reply";
    for (int attempt = 0; attempt < attempts; attempt++) {
        if (s_open(c, p) != 0) {
            st = s_fail(c, BULLETIN_INVALID_ARGUMENT, "cannot connect to %s at %s: %s",
                        bulletin_service_name(svc), p->endpoint, zmq_strerror(errno));
            goto done;
        }
        if (s_send(p->sock, &bytes) != 0) {
            snprintf(last_why, sizeof last_why, "send failed: %s", zmq_strerror(errno));
            zio_close(&p->sock);
            continue;
        }
        int64_t deadline = clock_mono_ms() + c->timeout_ms;
        bool garbage = false; /* keep "undecodable reply" as the reason */
        for (;;) {
            int64_t left = deadline - clock_mono_ms();
            if (left <= 0) {
                if (!garbage)
                    snprintf(last_why, sizeof last_why, "no reply within %d ms", c->timeout_ms);
                break;
            }
            zmq_pollitem_t item = {p->sock, 0, ZMQ_POLLIN, 0};
            int rc = zmq_poll(&item, 1, (long)left);
            if (rc < 0) {
                if (errno == EINTR)
                    continue;
                snprintf(last_why, sizeof last_why, "poll failed: %s", zmq_strerror(errno));
                break;
            }
            if (rc == 0)
                continue; /* deadline check above */
            zmq_msg_t body;
            if (zio_recv_body(p->sock, &body, ZMQ_DONTWAIT) != 0)
                continue;
            wire_code code;
            char why[200];
            Bulletin__Reply *rep = (Bulletin__Reply *)wire_unpack(
                &bulletin__reply__descriptor, zmq_msg_data(&body), zmq_msg_size(&body),
                WIRE_BUDGET(zmq_msg_size(&body)), &code, why, sizeof why);
            zmq_msg_close(&body);
            if (!rep) {
                /* Not even our id is readable: not ours to act on. */
                snprintf(last_why, sizeof last_why, "undecodable reply: %s", why);
                garbage = true;
                continue;
            }
            if (rep->request_id != req->request_id) {
                wire_free(rep); /* stale: an earlier attempt's or call's answer */
                continue;
            }
            c->answered = true;
            int sc = rep->status ? (int)rep->status->code : 0;
            if (sc != 0) {
                const char *msg = rep->status->message;
                st = s_fail(c, (bulletin_status)sc, "%s: %s", bulletin_service_name(svc),
                            msg && *msg ? msg : bulletin_status_name((bulletin_status)sc));
                wire_free(rep);
                goto done;
            }
            c->err[0] = '\0';
            snprintf(c->served_by, sizeof c->served_by, "%s",
                     rep->served_by ? rep->served_by : "");
            c->applied_seq = rep->applied_seq;
            *out = rep;
            st = BULLETIN_OK;
            goto done;
        }
        /* Lazy Pirate: a socket that timed out may hold a queued request or a
         * late reply; start the next attempt on a fresh one. */
        zio_close(&p->sock);
    }
    st = s_fail(c, BULLETIN_UNAVAILABLE, "%s at %s did not answer (%d attempt%s, %s)%s",
                bulletin_service_name(svc), p->endpoint, attempts, attempts == 1 ? "" : "s",
                last_why,
                bytes.len > CLIENT_BIG_REQUEST
                    ? "; the request is over 16 MB, and services drop messages over their "
                      "size limit: send fewer items per request"
                    : "");
done:
    free(bytes.data);
    return st;
}

/* ------------------------------------------------------------------------ */
/* conversions (copies out of decoded messages)                              */

/* strdup of a non-empty string; NULL for "" or NULL. *oom set on failure. */
static const char *s_dup(const char *s, int *oom)
{
    if (!s || !*s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *oom = 1;
    return d;
}

static const char **s_dup_list(char **v, size_t n, size_t *count, int *oom)
{
    *count = 0;
    if (!n)
        return NULL;
    const char **out = calloc(n, sizeof *out);
    if (!out) {
        *oom = 1;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        out[i] = strdup(v[i] ? v[i] : "");
        if (!out[i])
            *oom = 1;
    }
    *count = n;
    return out;
}

static void s_free_list(const char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free((char *)v[i]);
    free(v);
}

static void s_article_clear(bulletin_article *a)
{
    free((char *)a->key);
    free((char *)a->site);
    free((char *)a->category);
    free((char *)a->title);
    free((char *)a->body);
    s_free_list(a->tags, a->tag_count);
    free((char *)a->author);
    free((char *)a->lang);
    free((char *)a->url);
    free((char *)a->raw);
    memset(a, 0, sizeof *a);
}

void bulletin_article_free(bulletin_article **a)
{
    if (!a || !*a)
        return;
    s_article_clear(*a);
    free(*a);
    *a = NULL;
}

bulletin_article *client_article_from_pb(const Bulletin__Article *pa)
{
    bulletin_article *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    int oom = 0;
    a->id = pa->id;
    a->key = s_dup(pa->key, &oom);
    a->site = s_dup(pa->site, &oom);
    a->category = s_dup(pa->category, &oom);
    a->title = s_dup(pa->title, &oom);
    a->body = s_dup(pa->body, &oom);
    a->tags = s_dup_list(pa->tags, pa->n_tags, &a->tag_count, &oom);
    a->author = s_dup(pa->author, &oom);
    a->lang = s_dup(pa->lang, &oom);
    a->url = s_dup(pa->url, &oom);
    a->raw = s_dup(pa->raw, &oom);
    a->published_at = pa->published_at;
    a->ingested_at = pa->ingested_at;
    a->updated_at = pa->updated_at;
    a->seq = pa->seq;
    if (oom)
        bulletin_article_free(&a);
    return a;
}

static void s_result_clear(bulletin_ingest_result *r)
{
    free((char *)r->key);
    free((char *)r->error);
    s_free_list(r->warnings, r->warning_count);
    memset(r, 0, sizeof *r);
}

int client_result_from_pb(const Bulletin__IngestResult *pr, bulletin_ingest_result *r)
{
    int oom = 0;
    memset(r, 0, sizeof *r);
    r->key = s_dup(pr->key, &oom);
    r->id = pr->id;
    r->seq = pr->seq;
    r->status = (pr->status >= 0 && pr->status <= 5) ? (bulletin_write_status)pr->status
                                                      : BULLETIN_WRITE_UNSPECIFIED;
    r->error = s_dup(pr->error, &oom);
    r->warnings = s_dup_list(pr->warnings, pr->n_warnings, &r->warning_count, &oom);
    if (oom) {
        s_result_clear(r);
        return -1;
    }
    return 0;
}

void bulletin_ingest_results_free(bulletin_ingest_result **results, size_t n)
{
    if (!results || !*results)
        return;
    for (size_t i = 0; i < n; i++)
        s_result_clear(&(*results)[i]);
    free(*results);
    *results = NULL;
}

/* Protobuf wants char* even for strings it only reads; "" for absent. */
static char *s_in(const char *s)
{
    return (char *)(s ? s : "");
}

/* ------------------------------------------------------------------------ */
/* calls                                                                     */

bulletin_status bulletin_ingest(bulletin_client *c, const bulletin_ingest_item *items, size_t n,
                                bulletin_ingest_result **out, uint64_t *max_seq)
{
    if (!c)
        return BULLETIN_INVALID_ARGUMENT;
    if (out)
        *out = NULL;
    if (max_seq)
        *max_seq = 0;
    if (!items || !out)
        return s_fail(c, BULLETIN_INVALID_ARGUMENT, "ingest: items and out must not be NULL");
    if (n == 0 || n > CLIENT_MAX_ITEMS)
        return s_fail(c, BULLETIN_INVALID_ARGUMENT,
                      "ingest: %zu items; a request carries 1..%d", n, CLIENT_MAX_ITEMS);

    /* The request points into the caller's strings: nothing is copied. */
    Bulletin__IngestItem *pitems = calloc(n, sizeof *pitems);
    Bulletin__IngestItem **pptrs = calloc(n, sizeof *pptrs);
    Bulletin__Article *arts = calloc(n, sizeof *arts);
    Bulletin__RawDocument *raws = calloc(n, sizeof *raws);
    bulletin_status st;
    Bulletin__Reply *rep = NULL;
    if (!pitems || !pptrs || !arts || !raws) {
        st = s_fail(c, BULLETIN_RESOURCE_EXHAUSTED, "ingest: out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        bulletin__ingest_item__init(&pitems[i]);
        pptrs[i] = &pitems[i];
        if (items[i].kind == BULLETIN_ITEM_ARTICLE) {
            const bulletin_article *a = &items[i].article;
            Bulletin__Article *pa = &arts[i];
            bulletin__article__init(pa);
            pa->key = s_in(a->key);
            pa->site = s_in(a->site);
            pa->category = s_in(a->category);
            pa->title = s_in(a->title);
            pa->body = s_in(a->body);
            pa->n_tags = a->tags ? a->tag_count : 0;
            pa->tags = (char **)a->tags;
            pa->author = s_in(a->author);
            pa->lang = s_in(a->lang);
            pa->url = s_in(a->url);
            pa->raw = s_in(a->raw);
            pa->published_at = a->published_at;
            pitems[i].item_case = BULLETIN__INGEST_ITEM__ITEM_ARTICLE;
            pitems[i].article = pa;
        } else if (items[i].kind == BULLETIN_ITEM_RAW) {
            const bulletin_raw_document *r = &items[i].raw;
            Bulletin__RawDocument *pr = &raws[i];
            bulletin__raw_document__init(pr);
            pr->text = s_in(r->text);
            pr->url = s_in(r->url);
            pr->key = s_in(r->key);
            pr->n_tags = r->tags ? r->tag_count : 0;
            pr->tags = (char **)r->tags;
            pr->published_at = r->published_at;
            pr->lang = s_in(r->lang);
            pitems[i].item_case = BULLETIN__INGEST_ITEM__ITEM_RAW;
            pitems[i].raw = pr;
        } else {
            st = s_fail(c, BULLETIN_INVALID_ARGUMENT, "ingest: item %zu has unknown kind %d", i,
                        (int)items[i].kind);
            goto done;
        }
    }
    for (size_t i = 0; i < n; i++) {
        char **tags = pitems[i].item_case == BULLETIN__INGEST_ITEM__ITEM_ARTICLE ? arts[i].tags
                                                                                 : raws[i].tags;
        size_t nt = pitems[i].item_case == BULLETIN__INGEST_ITEM__ITEM_ARTICLE ? arts[i].n_tags
                                                                               : raws[i].n_tags;
        for (size_t t = 0; t < nt; t++)
            if (!tags[t]) {
                st = s_fail(c, BULLETIN_INVALID_ARGUMENT, "ingest: item %zu: tag %zu is NULL", i,
                            t);
                goto done;
            }
    }

    Bulletin__IngestRequest ir = BULLETIN__INGEST_REQUEST__INIT;
    ir.n_items = n;
    ir.items = pptrs;
    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    req.body_case = BULLETIN__REQUEST__BODY_INGEST;
    req.ingest = &ir;
    st = client_call(c, BULLETIN_SERVICE_INGEST, &req, &rep);
    if (st != BULLETIN_OK)
        goto done;
    if (rep->body_case != BULLETIN__REPLY__BODY_INGEST || !rep->ingest) {
        st = s_fail(c, BULLETIN_INTERNAL, "ingest: the reply carries no IngestReply");
        goto done;
    }
    if (rep->ingest->n_results != n) {
        st = s_fail(c, BULLETIN_INTERNAL, "ingest: sent %zu items, the reply has %zu results", n,
                    rep->ingest->n_results);
        goto done;
    }
    bulletin_ingest_result *res = calloc(n, sizeof *res);
    if (!res) {
        st = s_fail(c, BULLETIN_RESOURCE_EXHAUSTED, "ingest: out of memory");
        goto done;
    }
    uint64_t mx = 0;
    for (size_t i = 0; i < n; i++) {
        if (client_result_from_pb(rep->ingest->results[i], &res[i]) != 0) {
            bulletin_ingest_results_free(&res, n);
            st = s_fail(c, BULLETIN_RESOURCE_EXHAUSTED, "ingest: out of memory");
            goto done;
        }
        if (res[i].seq > mx)
            mx = res[i].seq;
    }
    if (rep->ingest->max_seq > mx)
        mx = rep->ingest->max_seq;
    if (max_seq)
        *max_seq = mx;
    *out = res;
done:
    wire_free(rep);
    free(pitems);
    free(pptrs);
    free(arts);
    free(raws);
    return st;
}

static bulletin_status s_check_id_key(bulletin_client *c, const char *what, uint64_t id,
                                      const char *key)
{
    if ((id == 0) == (key == NULL || *key == '\0'))
        return s_fail(c, BULLETIN_INVALID_ARGUMENT, "%s: give exactly one of id and key", what);
    return BULLETIN_OK;
}

bulletin_status bulletin_get(bulletin_client *c, uint64_t id, const char *key, uint64_t min_seq,
                             unsigned flags, bulletin_article **out)
{
    if (!c)
        return BULLETIN_INVALID_ARGUMENT;
    if (!out)
        return s_fail(c, BULLETIN_INVALID_ARGUMENT, "get: out must not be NULL");
    *out = NULL;
    bulletin_status st = s_check_id_key(c, "get", id, key);
    if (st != BULLETIN_OK)
        return st;
    /* The query tier answers reads; the store is the fallback until it exists. */
    bulletin_service svc = (flags & BULLETIN_READ_FROM_STORE) ||
                                   !c->peer[BULLETIN_SERVICE_QUERY].endpoint
                               ? BULLETIN_SERVICE_STORE
                               : BULLETIN_SERVICE_QUERY;
    Bulletin__GetRequest g = BULLETIN__GET_REQUEST__INIT;
    g.id = id;
    g.key = s_in(id ? NULL : key);
    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    req.body_case = BULLETIN__REQUEST__BODY_GET;
    req.get = &g;
    req.min_seq = min_seq;
    Bulletin__Reply *rep = NULL;
    st = client_call(c, svc, &req, &rep);
    if (st != BULLETIN_OK)
        return st;
    if (rep->body_case != BULLETIN__REPLY__BODY_GET || !rep->get || !rep->get->article) {
        wire_free(rep);
        return s_fail(c, BULLETIN_INTERNAL, "get: the reply carries no article");
    }
    *out = client_article_from_pb(rep->get->article);
    wire_free(rep);
    if (!*out)
        return s_fail(c, BULLETIN_RESOURCE_EXHAUSTED, "get: out of memory");
    return BULLETIN_OK;
}

bulletin_status bulletin_delete(bulletin_client *c, uint64_t id, const char *key,
                                bulletin_ingest_result **out)
{
    if (!c)
        return BULLETIN_INVALID_ARGUMENT;
    if (out)
        *out = NULL;
    bulletin_status st = s_check_id_key(c, "delete", id, key);
    if (st != BULLETIN_OK)
        return st;
    Bulletin__DeleteRequest d = BULLETIN__DELETE_REQUEST__INIT;
    d.id = id;
    d.key = s_in(id ? NULL : key);
    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    req.body_case = BULLETIN__REQUEST__BODY_DELETE;
    req.delete_ = &d;
    Bulletin__Reply *rep = NULL;
    st = client_call(c, BULLETIN_SERVICE_INGEST, &req, &rep);
    if (st != BULLETIN_OK)
        return st;
    if (rep->body_case != BULLETIN__REPLY__BODY_DELETE || !rep->delete_ || !rep->delete_->result) {
        wire_free(rep);
        return s_fail(c, BULLETIN_INTERNAL, "delete: the reply carries no result");
    }
    if (out) {
        bulletin_ingest_result *r = calloc(1, sizeof *r);
        if (!r || client_result_from_pb(rep->delete_->result, r) != 0) {
            free(r);
            wire_free(rep);
            return s_fail(c, BULLETIN_RESOURCE_EXHAUSTED, "delete: out of memory");
        }
        *out = r;
    }
    wire_free(rep);
    return BULLETIN_OK;
}

bulletin_status bulletin_stats_get(bulletin_client *c, bulletin_service svc, bulletin_stats **out)
{
    if (!c)
        return BULLETIN_INVALID_ARGUMENT;
    if (!out)
        return s_fail(c, BULLETIN_INVALID_ARGUMENT, "stats: out must not be NULL");
    *out = NULL;
    Bulletin__StatsRequest sr = BULLETIN__STATS_REQUEST__INIT;
    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    req.body_case = BULLETIN__REQUEST__BODY_STATS;
    req.stats = &sr;
    Bulletin__Reply *rep = NULL;
    bulletin_status st = client_call(c, svc, &req, &rep);
    if (st != BULLETIN_OK)
        return st;
    if (rep->body_case != BULLETIN__REPLY__BODY_STATS || !rep->stats) {
        wire_free(rep);
        return s_fail(c, BULLETIN_INTERNAL, "stats: the reply carries no StatsReply");
    }
    const Bulletin__StatsReply *ps = rep->stats;
    int oom = 0;
    bulletin_stats *s = calloc(1, sizeof *s);
    if (!s) {
        wire_free(rep);
        return s_fail(c, BULLETIN_RESOURCE_EXHAUSTED, "stats: out of memory");
    }
    s->service = s_dup(ps->service, &oom);
    s->instance = s_dup(ps->instance, &oom);
    if (ps->n_metrics) {
        s->metrics = calloc(ps->n_metrics, sizeof *s->metrics);
        if (!s->metrics)
            oom = 1;
        else
            s->metric_count = ps->n_metrics;
    }
    for (size_t i = 0; i < s->metric_count; i++) {
        const Bulletin__Metric *m = ps->metrics[i];
        s->metrics[i].name = strdup(m->name ? m->name : "");
        if (!s->metrics[i].name)
            oom = 1;
        s->metrics[i].value = m->value;
        s->metrics[i].help = s_dup(m->help, &oom);
    }
    wire_free(rep);
    if (oom) {
        bulletin_stats_free(&s);
        return s_fail(c, BULLETIN_RESOURCE_EXHAUSTED, "stats: out of memory");
    }
    *out = s;
    return BULLETIN_OK;
}

void bulletin_stats_free(bulletin_stats **sp)
{
    if (!sp || !*sp)
        return;
    bulletin_stats *s = *sp;
    for (size_t i = 0; i < s->metric_count; i++) {
        free((char *)s->metrics[i].name);
        free((char *)s->metrics[i].help);
    }
    free(s->metrics);
    free((char *)s->service);
    free((char *)s->instance);
    free(s);
    *sp = NULL;
}

bulletin_status bulletin_health_get(bulletin_client *c, bulletin_service svc,
                                    bulletin_health **out)
{
    if (!c)
        return BULLETIN_INVALID_ARGUMENT;
    if (!out)
        return s_fail(c, BULLETIN_INVALID_ARGUMENT, "health: out must not be NULL");
    *out = NULL;
    Bulletin__HealthRequest hr = BULLETIN__HEALTH_REQUEST__INIT;
    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    req.body_case = BULLETIN__REQUEST__BODY_HEALTH;
    req.health = &hr;
    Bulletin__Reply *rep = NULL;
    bulletin_status st = client_call(c, svc, &req, &rep);
    if (st != BULLETIN_OK)
        return st;
    if (rep->body_case != BULLETIN__REPLY__BODY_HEALTH || !rep->health) {
        wire_free(rep);
        return s_fail(c, BULLETIN_INTERNAL, "health: the reply carries no HealthReply");
    }
    int oom = 0;
    bulletin_health *h = calloc(1, sizeof *h);
    if (h) {
        h->ok = rep->health->ok ? 1 : 0;
        h->service = s_dup(rep->health->service, &oom);
        h->instance = s_dup(rep->health->instance, &oom);
        h->detail = s_dup(rep->health->detail, &oom);
        h->applied_seq = rep->health->applied_seq;
    }
    wire_free(rep);
    if (!h || oom) {
        bulletin_health_free(&h);
        return s_fail(c, BULLETIN_RESOURCE_EXHAUSTED, "health: out of memory");
    }
    *out = h;
    return BULLETIN_OK;
}

void bulletin_health_free(bulletin_health **hp)
{
    if (!hp || !*hp)
        return;
    bulletin_health *h = *hp;
    free((char *)h->service);
    free((char *)h->instance);
    free((char *)h->detail);
    free(h);
    *hp = NULL;
}

/* ------------------------------------------------------------------------ */
/* list and search (query tier)                                              */

static void s_filter_in(const bulletin_filter *f, Bulletin__Filter *pf)
{
    bulletin__filter__init(pf);
    pf->site = s_in(f->site);
    pf->category = s_in(f->category);
    pf->tag = s_in(f->tag);
    pf->since = f->since;
    pf->until = f->until;
}

/* Copy of opaque cursor bytes; NULL for none. */
static void *s_dup_bytes(const ProtobufCBinaryData *b, size_t *len, int *oom)
{
    *len = 0;
    if (!b->len)
        return NULL;
    void *d = malloc(b->len);
    if (!d) {
        *oom = 1;
        return NULL;
    }
    memcpy(d, b->data, b->len);
    *len = b->len;
    return d;
}

void bulletin_list_page_free(bulletin_list_page **pp)
{
    if (!pp || !*pp)
        return;
    bulletin_list_page *p = *pp;
    for (size_t i = 0; i < p->count; i++) {
        bulletin_summary *s = &p->items[i];
        free((char *)s->key);
        free((char *)s->site);
        free((char *)s->category);
        free((char *)s->title);
        free((char *)s->excerpt);
        s_free_list(s->tags, s->tag_count);
    }
    free(p->items);
    free(p->next_cursor);
    free((char *)p->served_by);
    free(p);
    *pp = NULL;
}

bulletin_status bulletin_list(bulletin_client *c, const bulletin_list_request *r,
                              bulletin_list_page **out)
{
    if (!c)
        return BULLETIN_INVALID_ARGUMENT;
    if (!r || !out)
        return s_fail(c, BULLETIN_INVALID_ARGUMENT, "list: req and out must not be NULL");
    *out = NULL;
    if (r->limit > 1000)
        return s_fail(c, BULLETIN_INVALID_ARGUMENT, "list: limit %u; the maximum is 1000",
                      r->limit);
    Bulletin__Filter pf;
    s_filter_in(&r->filter, &pf);
    Bulletin__ListRequest lr = BULLETIN__LIST_REQUEST__INIT;
    lr.filter = &pf;
    lr.order = r->order == BULLETIN_OLDEST_FIRST ? BULLETIN__ORDER__OLDEST_FIRST
                                                 : BULLETIN__ORDER__NEWEST_FIRST;
    lr.limit = r->limit;
    lr.cursor.data = (uint8_t *)r->cursor;
    lr.cursor.len = r->cursor ? r->cursor_len : 0;
    lr.with_total = r->with_total != 0;
    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    req.body_case = BULLETIN__REQUEST__BODY_LIST;
    req.list = &lr;
    req.min_seq = r->min_seq;
    Bulletin__Reply *rep = NULL;
    bulletin_status st = client_call(c, BULLETIN_SERVICE_QUERY, &req, &rep);
    if (st != BULLETIN_OK)
        return st;
    if (rep->body_case != BULLETIN__REPLY__BODY_LIST || !rep->list) {
        wire_free(rep);
        return s_fail(c, BULLETIN_INTERNAL, "list: the reply carries no ListReply");
    }
    const Bulletin__ListReply *pl = rep->list;
    int oom = 0;
    bulletin_list_page *p = calloc(1, sizeof *p);
    if (p && pl->n_items) {
        p->items = calloc(pl->n_items, sizeof *p->items);
        if (p->items)
            p->count = pl->n_items;
        else
            oom = 1;
    }
    for (size_t i = 0; p && i < p->count; i++) {
        const Bulletin__ArticleSummary *ps = pl->items[i];
        bulletin_summary *s = &p->items[i];
        s->id = ps->id;
        s->key = s_dup(ps->key, &oom);
        s->site = s_dup(ps->site, &oom);
        s->category = s_dup(ps->category, &oom);
        s->title = s_dup(ps->title, &oom);
        s->published_at = ps->published_at;
        s->excerpt = s_dup(ps->excerpt, &oom);
        s->tags = s_dup_list(ps->tags, ps->n_tags, &s->tag_count, &oom);
        s->seq = ps->seq;
    }
    if (p) {
        p->next_cursor = s_dup_bytes(&pl->next_cursor, &p->next_cursor_len, &oom);
        p->total = pl->total;
        p->has_total = pl->has_total ? 1 : 0;
        p->served_by = s_dup(rep->served_by, &oom);
        p->applied_seq = rep->applied_seq;
    }
    wire_free(rep);
    if (!p || oom) {
        bulletin_list_page_free(&p);
        return s_fail(c, BULLETIN_RESOURCE_EXHAUSTED, "list: out of memory");
    }
    *out = p;
    return BULLETIN_OK;
}

static void s_facets_free(bulletin_facet *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((char *)f[i].value);
    free(f);
}

static bulletin_facet *s_facets(Bulletin__FacetCount **v, size_t n, size_t *count, int *oom)
{
    *count = 0;
    if (!n)
        return NULL;
    bulletin_facet *f = calloc(n, sizeof *f);
    if (!f) {
        *oom = 1;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        f[i].value = strdup(v[i]->value ? v[i]->value : "");
        if (!f[i].value)
            *oom = 1;
        f[i].count = v[i]->count;
    }
    *count = n;
    return f;
}

void bulletin_search_result_free(bulletin_search_result **rp)
{
    if (!rp || !*rp)
        return;
    bulletin_search_result *r = *rp;
    for (size_t i = 0; i < r->hit_count; i++) {
        bulletin_hit *h = &r->hits[i];
        free((char *)h->key);
        free((char *)h->site);
        free((char *)h->category);
        free((char *)h->title);
        free((char *)h->snippet);
    }
    free(r->hits);
    free(r->next_cursor);
    s_facets_free(r->categories, r->category_count);
    s_facets_free(r->sites, r->site_count);
    free((char *)r->served_by);
    free(r);
    *rp = NULL;
}

bulletin_status bulletin_search(bulletin_client *c, const bulletin_search_request *r,
                                bulletin_search_result **out)
{
    if (!c)
        return BULLETIN_INVALID_ARGUMENT;
    if (!r || !out || !r->query)
        return s_fail(c, BULLETIN_INVALID_ARGUMENT,
                      "search: req, req->query and out must not be NULL");
    *out = NULL;
    if (r->limit > 1000)
        return s_fail(c, BULLETIN_INVALID_ARGUMENT, "search: limit %u; the maximum is 1000",
                      r->limit);
    Bulletin__Filter pf;
    s_filter_in(&r->filter, &pf);
    Bulletin__SearchRequest sr = BULLETIN__SEARCH_REQUEST__INIT;
    sr.query = (char *)r->query;
    sr.filter = &pf;
    sr.limit = r->limit;
    sr.offset = r->offset;
    sr.cursor.data = (uint8_t *)r->cursor;
    sr.cursor.len = r->cursor ? r->cursor_len : 0;
    sr.facets = r->facets != 0;
    sr.mark_open = s_in(r->mark_open);
    sr.mark_close = s_in(r->mark_close);
    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    req.body_case = BULLETIN__REQUEST__BODY_SEARCH;
    req.search = &sr;
    req.min_seq = r->min_seq;
    Bulletin__Reply *rep = NULL;
    bulletin_status st = client_call(c, BULLETIN_SERVICE_QUERY, &req, &rep);
    if (st != BULLETIN_OK)
        return st;
    if (rep->body_case != BULLETIN__REPLY__BODY_SEARCH || !rep->search) {
        wire_free(rep);
        return s_fail(c, BULLETIN_INTERNAL, "search: the reply carries no SearchReply");
    }
    const Bulletin__SearchReply *ps = rep->search;
    int oom = 0;
    bulletin_search_result *res = calloc(1, sizeof *res);
    if (res && ps->n_hits) {
        res->hits = calloc(ps->n_hits, sizeof *res->hits);
        if (res->hits)
            res->hit_count = ps->n_hits;
        else
            oom = 1;
    }
    for (size_t i = 0; res && i < res->hit_count; i++) {
        const Bulletin__SearchHit *ph = ps->hits[i];
        bulletin_hit *h = &res->hits[i];
        h->id = ph->id;
        h->key = s_dup(ph->key, &oom);
        h->site = s_dup(ph->site, &oom);
        h->category = s_dup(ph->category, &oom);
        h->title = s_dup(ph->title, &oom);
        h->published_at = ph->published_at;
        h->score = ph->score;
        h->snippet = s_dup(ph->snippet, &oom);
    }
    if (res) {
        res->total = ps->total;
        res->took_us = ps->took_us;
        res->next_cursor = s_dup_bytes(&ps->next_cursor, &res->next_cursor_len, &oom);
        res->categories = s_facets(ps->categories, ps->n_categories, &res->category_count, &oom);
        res->sites = s_facets(ps->sites, ps->n_sites, &res->site_count, &oom);
        res->served_by = s_dup(rep->served_by, &oom);
        res->applied_seq = rep->applied_seq;
    }
    wire_free(rep);
    if (!res || oom) {
        bulletin_search_result_free(&res);
        return s_fail(c, BULLETIN_RESOURCE_EXHAUSTED, "search: out of memory");
    }
    *out = res;
    return BULLETIN_OK;
}

/* ------------------------------------------------------------------------ */
/* read-your-writes                                                          */

bulletin_status bulletin_wait_readable(bulletin_client *c, uint64_t min_seq, int timeout_ms,
                                       uint64_t *served_by_seq)
{
    if (!c)
        return BULLETIN_INVALID_ARGUMENT;
    if (served_by_seq)
        *served_by_seq = 0;
    if (timeout_ms <= 0)
        return s_fail(c, BULLETIN_INVALID_ARGUMENT, "wait: timeout_ms must be > 0 (got %d)",
                      timeout_ms);
    if (!c->peer[BULLETIN_SERVICE_QUERY].endpoint)
        return s_fail(c, BULLETIN_FAILED_PRECONDITION, "no query endpoint configured");
    if (min_seq == 0) {
        c->err[0] = '\0';
        return BULLETIN_OK;
    }
    /* One attempt per List, each bounded by what is left of the wait. */
    int saved_timeout = c->timeout_ms, saved_retries = c->retries;
    int64_t deadline = clock_mono_ms() + timeout_ms;
    bulletin_status st = BULLETIN_DEADLINE_EXCEEDED, why_st = st;
    char why[sizeof c->err] = "";
    for (;;) {
        int64_t left = deadline - clock_mono_ms();
        if (left <= 0)
            break;
        bool cut = left < saved_timeout; /* this attempt ends with the wait */
        c->timeout_ms = cut ? (int)left : saved_timeout;
        c->retries = 0;
        bulletin_list_request lr = {.limit = 1, .min_seq = min_seq};
        bulletin_list_page *page = NULL;
        int64_t t0 = clock_mono_ms();
        st = bulletin_list(c, &lr, &page);
        c->timeout_ms = saved_timeout;
        c->retries = saved_retries;
        if (st == BULLETIN_OK) {
            uint64_t seq = page->applied_seq;
            bulletin_list_page_free(&page);
            if (seq != 0 && seq < min_seq) {
                /* a worker that says it has not applied min_seq answered a
                 * min_seq read: the tier broke its promise */
                return s_fail(c, BULLETIN_INTERNAL,
                              "wait: a read with min_seq %llu was answered by %s at seq %llu",
                              (unsigned long long)min_seq,
                              c->served_by[0] ? c->served_by : "a worker",
                              (unsigned long long)seq);
            }
            if (served_by_seq)
                *served_by_seq = seq;
            return BULLETIN_OK;
        }
        if (st != BULLETIN_DEADLINE_EXCEEDED && st != BULLETIN_UNAVAILABLE)
            return st; /* a real error: waiting longer will not help */
        if (cut && !c->answered && why[0]) {
            /* no reply in what was left of the wait (maybe a few ms): that
             * says nothing new, the tier's last answer is the reason */
            st = why_st;
            break;
        }
        snprintf(why, sizeof why, "%s", c->err);
        why_st = st;
        /* an answer that came back at once (e.g. no worker registered yet)
         * must not turn this into a busy loop */
        if (clock_mono_ms() - t0 < 50)
            usleep(50000);
    }
    c->timeout_ms = saved_timeout;
    c->retries = saved_retries;
    return s_fail(c, st, "wait: the query tier did not reach seq %llu within %d ms (%s)",
                  (unsigned long long)min_seq, timeout_ms, why[0] ? why : "no answer");
}
