/* ingest_server in-process: a real server thread, a test client (DEALER)
 * and a fake store (ROUTER) on ipc:// endpoints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "ingest_server.h"
#include "wire.h"
#include "zio.h"

typedef struct {
    ingest_server_cfg cfg;
    pthread_t th;
    int stop[2];
    int rc;
    char bind[128], store[128];
    void *ctx, *client, *fake; /* fake = the store's ROUTER (NULL: no store) */
} fixture;

static void *s_run(void *arg)
{
    fixture *f = arg;
    f->rc = ingest_server_run(&f->cfg);
    return NULL;
}

static fixture *start(bool with_store, long long deadline_ms)
{
    static int seq;
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->bind, sizeof f->bind, "ipc:///tmp/bulletin-ingest-test-%d-%d-c", (int)getpid(), seq);
    snprintf(f->store, sizeof f->store, "ipc:///tmp/bulletin-ingest-test-%d-%d-s", (int)getpid(), seq++);
    f->ctx = zmq_ctx_new();
    if (with_store) {
        f->fake = zio_socket(f->ctx, ZMQ_ROUTER, 0, 0);
        assert_int_equal(zio_bind(f->fake, f->store), 0);
    }
    ingest_server_cfg_defaults(&f->cfg);
    f->cfg.bind = f->bind;
    f->cfg.store = f->store;
    f->cfg.deadline_ms = deadline_ms;
    f->cfg.health_interval_ms = 100;
    assert_int_equal(pipe(f->stop), 0);
    f->cfg.stop_fd = f->stop[0];
    f->rc = -2;
    assert_int_equal(pthread_create(&f->th, NULL, s_run, f), 0);
    f->client = zio_socket(f->ctx, ZMQ_DEALER, 0, 0);
    assert_int_equal(zio_connect(f->client, f->bind), 0);
    return f;
}

static void stop(fixture *f)
{
    assert_int_equal(write(f->stop[1], "x", 1), 1);
    pthread_join(f->th, NULL);
    assert_int_equal(f->rc, 0);
    close(f->stop[0]);
    close(f->stop[1]);
    zio_close(&f->client);
    zio_close(&f->fake);
    zmq_ctx_term(f->ctx);
    free(f);
}

static void send_req(fixture *f, Bulletin__Request *req)
{
    zmq_msg_t e;
    zmq_msg_init(&e);
    assert_true(zmq_msg_send(&e, f->client, ZMQ_SNDMORE) >= 0);
    zmq_msg_t m;
    assert_int_equal(wire_pack_zmq(&req->base, &m), 0);
    assert_true(zmq_msg_send(&m, f->client, 0) >= 0);
}

static void send_bytes(fixture *f, const void *data, size_t len)
{
    assert_true(zmq_send(f->client, "", 0, ZMQ_SNDMORE) >= 0);
    assert_true(zmq_send(f->client, data, len, 0) >= 0);
}

/* The client's next reply, or NULL after timeout_ms. */
static Bulletin__Reply *recv_reply(fixture *f, int timeout_ms)
{
    zmq_pollitem_t it = {f->client, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, timeout_ms) <= 0)
        return NULL;
    zmq_msg_t body;
    assert_int_equal(zio_recv_body(f->client, &body, 0), 0);
    wire_code code;
    char why[256];
    Bulletin__Reply *r = (Bulletin__Reply *)wire_unpack(&bulletin__reply__descriptor,
                                                        zmq_msg_data(&body), zmq_msg_size(&body),
                                                        1 << 24, &code, why, sizeof why);
    zmq_msg_close(&body);
    assert_non_null(r);
    return r;
}

/* The fake store's next write request (answering health pings on the way),
 * or NULL after timeout_ms. *route gets the route for the answer. */
static Bulletin__Internal__StoreRequest *store_recv(fixture *f, zio_route *route,
                                                    uint64_t *rid, int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;
    for (;;) {
        int64_t left = end - clock_mono_ms();
        zmq_pollitem_t it = {f->fake, 0, ZMQ_POLLIN, 0};
        if (left <= 0 || zmq_poll(&it, 1, (long)left) <= 0)
            return NULL;
        zmq_msg_t body;
        route->n = 0;
        for (int i = 0; i < ZIO_MAX_ROUTE; i++) /* see s_route_prepare in ingest_server.c */
            zmq_msg_init(&route->f[i]);
        assert_int_equal(zio_recv_routed(f->fake, route, &body, 0), 0);
        wire_code code;
        char why[256];
        uint64_t id;
        Bulletin__Request *req = wire_request_unpack(zmq_msg_data(&body), zmq_msg_size(&body),
                                                     1 << 26, &id, &code, why, sizeof why);
        zmq_msg_close(&body);
        assert_non_null(req);
        *rid = req->request_id;
        if (req->body_case == BULLETIN__REQUEST__BODY_HEALTH) {
            Bulletin__Reply rep;
            Bulletin__Status st;
            Bulletin__HealthReply hr = BULLETIN__HEALTH_REPLY__INIT;
            wire_reply_init(&rep, &st, req->request_id);
            rep.body_case = BULLETIN__REPLY__BODY_HEALTH;
            rep.health = &hr;
            hr.ok = true;
            rep.applied_seq = 41;
            wire_send(f->fake, route, &rep.base);
            zio_route_close(route);
            wire_free(req);
            continue;
        }
        assert_int_equal(req->body_case, BULLETIN__REQUEST__BODY_INTERNAL);
        Bulletin__Internal__StoreRequest *sr = (Bulletin__Internal__StoreRequest *)wire_unpack(
            &bulletin__internal__store_request__descriptor, req->internal.data, req->internal.len,
            1 << 26, &code, why, sizeof why);
        assert_non_null(sr);
        wire_free(req);
        return sr;
    }
}

/* The fake store's answer to write rid: a WriteBatchReply with results
 * rp[0..n), sent on route. */
static void store_send_results(fixture *f, zio_route *route, uint64_t rid,
                               Bulletin__IngestResult **rp, size_t n)
{
    Bulletin__Internal__WriteBatchReply wr = BULLETIN__INTERNAL__WRITE_BATCH_REPLY__INIT;
    wr.n_results = n;
    wr.results = rp;
    Bulletin__Internal__StoreReply sr = BULLETIN__INTERNAL__STORE_REPLY__INIT;
    sr.body_case = BULLETIN__INTERNAL__STORE_REPLY__BODY_WRITE;
    sr.write = &wr;
    ProtobufCBinaryData b;
    assert_int_equal(wire_pack_bytes(&sr.base, &b), 0);
    Bulletin__Reply rep;
    Bulletin__Status st;
    wire_reply_init(&rep, &st, rid);
    rep.body_case = BULLETIN__REPLY__BODY_INTERNAL;
    rep.internal = b;
    assert_int_equal(wire_send(f->fake, route, &rep.base), 0);
    free(b.data);
}

/* Answer a write with one result per op: status[i], seq base+i. */
static void store_answer(fixture *f, zio_route *route, uint64_t rid, size_t n,
                         const Bulletin__WriteStatus *status, uint64_t seq_base)
{
    Bulletin__IngestResult rs[16], *rp[16];
    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++) {
        bulletin__ingest_result__init(&rs[i]);
        rs[i].status = status[i];
        rs[i].id = 100 + i;
        rs[i].seq = status[i] == BULLETIN__WRITE_STATUS__REJECTED ? 0 : seq_base + i;
        rs[i].key = "stored-key";
        if (status[i] == BULLETIN__WRITE_STATUS__REJECTED)
            rs[i].error = "no article with this key";
        rp[i] = &rs[i];
    }
    store_send_results(f, route, rid, rp, n);
}

/* Wait until the server's store connection is up (a ping came through). */
static void wait_connected(fixture *f)
{
    zio_route r;
    uint64_t rid;
    /* store_recv answers pings; nothing else is sent yet */
    assert_null(store_recv(f, &r, &rid, 300));
}

static Bulletin__Request mkreq(uint64_t id)
{
    Bulletin__Request r = BULLETIN__REQUEST__INIT;
    r.version_major = 1;
    r.request_id = id;
    return r;
}

/* Send req and return its reply (asserted to come within 2 s). */
static Bulletin__Reply *ask(fixture *f, Bulletin__Request *req)
{
    send_req(f, req);
    Bulletin__Reply *rep = recv_reply(f, 2000);
    assert_non_null(rep);
    return rep;
}

/* Ask for Health (request_id id). */
static Bulletin__Reply *ask_health(fixture *f, uint64_t id)
{
    Bulletin__HealthRequest hq = BULLETIN__HEALTH_REQUEST__INIT;
    Bulletin__Request req = mkreq(id);
    req.body_case = BULLETIN__REQUEST__BODY_HEALTH;
    req.health = &hq;
    return ask(f, &req);
}

/* A Request{ingest: one article titled `title`} with request_id id; the
 * parts live in *o. */
typedef struct {
    Bulletin__Article a;
    Bulletin__IngestItem it, *itp;
    Bulletin__IngestRequest ir;
    Bulletin__Request req;
} one_article;

static Bulletin__Request *one_article_req(one_article *o, uint64_t id, const char *title)
{
    bulletin__article__init(&o->a);
    o->a.title = (char *)title;
    bulletin__ingest_item__init(&o->it);
    o->it.item_case = BULLETIN__INGEST_ITEM__ITEM_ARTICLE;
    o->it.article = &o->a;
    o->itp = &o->it;
    bulletin__ingest_request__init(&o->ir);
    o->ir.n_items = 1;
    o->ir.items = &o->itp;
    o->req = mkreq(id);
    o->req.body_case = BULLETIN__REQUEST__BODY_INGEST;
    o->req.ingest = &o->ir;
    return &o->req;
}

static void test_ingest_roundtrip(void **state)
{
    (void)state;
    fixture *f = start(true, 5000);
    wait_connected(f);
    Bulletin__Article a0 = BULLETIN__ARTICLE__INIT, a1 = BULLETIN__ARTICLE__INIT;
    a0.title = "  First \n article ";
    a0.body = "Body\r\nline";
    a0.url = "HTTP://Example.org/a#x";
    a1.title = "   "; /* rejected */
    Bulletin__RawDocument raw = BULLETIN__RAW_DOCUMENT__INIT;
    raw.text = "Site - Cat - Raw title\n\nRaw title\n\nThe values ?\?of law.";
    Bulletin__IngestItem it[3] = {BULLETIN__INGEST_ITEM__INIT, BULLETIN__INGEST_ITEM__INIT,
                                  BULLETIN__INGEST_ITEM__INIT};
    it[0].item_case = it[1].item_case = BULLETIN__INGEST_ITEM__ITEM_ARTICLE;
    it[0].article = &a0;
    it[1].article = &a1;
    it[2].item_case = BULLETIN__INGEST_ITEM__ITEM_RAW;
    it[2].raw = &raw;
    Bulletin__IngestItem *itp[3] = {&it[0], &it[1], &it[2]};
    Bulletin__IngestRequest ir = BULLETIN__INGEST_REQUEST__INIT;
    ir.n_items = 3;
    ir.items = itp;
    Bulletin__Request req = mkreq(77);
    req.body_case = BULLETIN__REQUEST__BODY_INGEST;
    req.ingest = &ir;
    send_req(f, &req);

    zio_route route;
    uint64_t rid;
    Bulletin__Internal__StoreRequest *sr = store_recv(f, &route, &rid, 2000);
    assert_non_null(sr);
    assert_int_equal(sr->body_case, BULLETIN__INTERNAL__STORE_REQUEST__BODY_WRITE);
    assert_int_equal(sr->write->n_ops, 2);
    assert_string_equal(sr->write->ops[0]->put->title, "First article");
    assert_string_equal(sr->write->ops[0]->put->body, "Body\nline");
    assert_string_equal(sr->write->ops[0]->put->key, "http://example.org/a");
    assert_string_equal(sr->write->ops[1]->put->site, "Site");
    assert_string_equal(sr->write->ops[1]->put->title, "Raw title");
    assert_string_equal(sr->write->ops[1]->put->raw, raw.text);
    wire_free(sr);
    Bulletin__WriteStatus ws[2] = {BULLETIN__WRITE_STATUS__CREATED,
                                   BULLETIN__WRITE_STATUS__UNCHANGED};
    store_answer(f, &route, rid, 2, ws, 5);
    zio_route_close(&route);

    Bulletin__Reply *rep = recv_reply(f, 2000);
    assert_non_null(rep);
    assert_int_equal(rep->request_id, 77);
    assert_int_equal(rep->status->code, BULLETIN__STATUS_CODE__OK);
    assert_int_equal(rep->body_case, BULLETIN__REPLY__BODY_INGEST);
    Bulletin__IngestReply *r = rep->ingest;
    assert_int_equal(r->n_results, 3);
    assert_int_equal(r->results[0]->status, BULLETIN__WRITE_STATUS__CREATED);
    assert_int_equal(r->results[0]->seq, 5);
    assert_int_equal(r->results[1]->status, BULLETIN__WRITE_STATUS__REJECTED);
    assert_non_null(strstr(r->results[1]->error, "title is empty"));
    assert_int_equal(r->results[2]->status, BULLETIN__WRITE_STATUS__UNCHANGED);
    assert_int_equal(r->results[2]->seq, 6);
    assert_int_equal(r->results[2]->n_warnings, 1);
    assert_non_null(strstr(r->results[2]->warnings[0], "look lost"));
    assert_int_equal(r->max_seq, 6);
    wire_free(rep);

    /* Stats count what happened */
    Bulletin__StatsRequest sq = BULLETIN__STATS_REQUEST__INIT;
    req = mkreq(78);
    req.body_case = BULLETIN__REQUEST__BODY_STATS;
    req.stats = &sq;
    rep = ask(f, &req);
    assert_int_equal(rep->body_case, BULLETIN__REPLY__BODY_STATS);
    int seen = 0;
    for (size_t i = 0; i < rep->stats->n_metrics; i++) {
        Bulletin__Metric *m = rep->stats->metrics[i];
        if (!strcmp(m->name, "created"))
            assert_true(m->value == 1), seen++;
        if (!strcmp(m->name, "unchanged"))
            assert_true(m->value == 1), seen++;
        if (!strcmp(m->name, "rejected"))
            assert_true(m->value == 1), seen++;
        if (!strcmp(m->name, "items"))
            assert_true(m->value == 3), seen++;
    }
    assert_int_equal(seen, 4);
    wire_free(rep);

    /* Health: the store answered pings */
    rep = ask_health(f, 79);
    assert_true(rep->health->ok);
    assert_string_equal(rep->health->service, "ingest");
    assert_non_null(strstr(rep->health->detail, "answered"));
    wire_free(rep);
    stop(f);
}

static void test_all_rejected_and_errors(void **state)
{
    (void)state;
    fixture *f = start(true, 5000);
    /* all rejected: answered without the store */
    one_article one;
    Bulletin__Request *ing = one_article_req(&one, 1, "");
    Bulletin__Reply *rep = ask(f, ing);
    assert_int_equal(rep->status->code, BULLETIN__STATUS_CODE__OK);
    assert_int_equal(rep->ingest->n_results, 1);
    assert_int_equal(rep->ingest->results[0]->status, BULLETIN__WRITE_STATUS__REJECTED);
    wire_free(rep);
    zio_route route;
    uint64_t rid;
    assert_null(store_recv(f, &route, &rid, 200)); /* nothing reached the store */

    /* zero items */
    one.ir.n_items = 0;
    ing->request_id = 2;
    rep = ask(f, ing);
    assert_int_equal(rep->request_id, 2);
    assert_int_equal(rep->status->code, BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    assert_non_null(strstr(rep->status->message, "1 to 10000 items; this one has 0"));
    wire_free(rep);

    /* bytes that are not a Request */
    send_bytes(f, "\xff\xff\xff garbage", 12);
    rep = recv_reply(f, 2000);
    assert_non_null(rep);
    assert_int_equal(rep->status->code, BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    wire_free(rep);
    send_bytes(f, "", 0);
    rep = recv_reply(f, 2000);
    assert_non_null(rep);
    assert_int_equal(rep->status->code, BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    wire_free(rep);

    /* reads are not ours */
    Bulletin__GetRequest g = BULLETIN__GET_REQUEST__INIT;
    Bulletin__Request req = mkreq(3);
    req.body_case = BULLETIN__REQUEST__BODY_GET;
    req.get = &g;
    rep = ask(f, &req);
    assert_int_equal(rep->status->code, BULLETIN__STATUS_CODE__UNIMPLEMENTED);
    assert_non_null(strstr(rep->status->message, "query service"));
    wire_free(rep);

    /* a delete with neither id nor key */
    Bulletin__DeleteRequest d = BULLETIN__DELETE_REQUEST__INIT;
    req = mkreq(4);
    req.body_case = BULLETIN__REQUEST__BODY_DELETE;
    req.delete_ = &d;
    rep = ask(f, &req);
    assert_int_equal(rep->status->code, BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    wire_free(rep);
    stop(f);
}

static void test_store_timeout_and_late_reply(void **state)
{
    (void)state;
    fixture *f = start(true, 5000);
    wait_connected(f);
    one_article one;
    Bulletin__Request *req = one_article_req(&one, 9, "T");
    req->deadline_ms = 300; /* smaller than the service's: wins */
    int64_t t0 = clock_mono_ms();
    send_req(f, req);
    zio_route route;
    uint64_t rid;
    Bulletin__Internal__StoreRequest *sr = store_recv(f, &route, &rid, 2000);
    assert_non_null(sr);
    wire_free(sr);
    Bulletin__Reply *rep = recv_reply(f, 5000);
    int64_t took = clock_mono_ms() - t0;
    assert_non_null(rep);
    assert_int_equal(rep->status->code, BULLETIN__STATUS_CODE__UNAVAILABLE);
    /* the request's deadline, not the service's 5000 ms: said in the sentence */
    assert_non_null(strstr(rep->status->message, "did not answer within 300 ms"));
    assert_non_null(strstr(rep->status->message, "retrying is safe"));
    assert_true(took >= 290); /* not before the deadline; how late under load is not checked */
    wire_free(rep);
    /* the late reply is dropped: the client hears nothing more */
    Bulletin__WriteStatus ws = BULLETIN__WRITE_STATUS__CREATED;
    store_answer(f, &route, rid, 1, &ws, 1);
    zio_route_close(&route);
    assert_null(recv_reply(f, 300));

    /* a store error status is passed on */
    req->request_id = 10;
    req->deadline_ms = 0;
    send_req(f, req);
    sr = store_recv(f, &route, &rid, 2000);
    assert_non_null(sr);
    wire_free(sr);
    wire_send_status(f->fake, &route, rid, BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED,
                     "the map is full");
    zio_route_close(&route);
    rep = recv_reply(f, 2000);
    assert_non_null(rep);
    assert_int_equal(rep->request_id, 10);
    assert_int_equal(rep->status->code, BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED);
    assert_non_null(strstr(rep->status->message, "the map is full"));
    wire_free(rep);
    stop(f);
}

static void test_delete(void **state)
{
    (void)state;
    fixture *f = start(true, 5000);
    wait_connected(f);
    Bulletin__DeleteRequest d = BULLETIN__DELETE_REQUEST__INIT;
    d.key = " k1 ";
    Bulletin__Request req = mkreq(20);
    req.body_case = BULLETIN__REQUEST__BODY_DELETE;
    req.delete_ = &d;
    for (int round = 0; round < 2; round++) {
        req.request_id = 20 + (uint64_t)round;
        send_req(f, &req);
        zio_route route;
        uint64_t rid;
        Bulletin__Internal__StoreRequest *sr = store_recv(f, &route, &rid, 2000);
        assert_non_null(sr);
        assert_int_equal(sr->write->n_ops, 1);
        assert_int_equal(sr->write->ops[0]->op_case, BULLETIN__INTERNAL__WRITE_OP__OP_DELETE);
        assert_string_equal(sr->write->ops[0]->delete_->key, "k1");
        wire_free(sr);
        Bulletin__WriteStatus ws = round == 0 ? BULLETIN__WRITE_STATUS__DELETED
                                              : BULLETIN__WRITE_STATUS__REJECTED;
        store_answer(f, &route, rid, 1, &ws, 30);
        zio_route_close(&route);
        Bulletin__Reply *rep = recv_reply(f, 2000);
        assert_non_null(rep);
        if (round == 0) {
            assert_int_equal(rep->status->code, BULLETIN__STATUS_CODE__OK);
            assert_int_equal(rep->body_case, BULLETIN__REPLY__BODY_DELETE);
            assert_int_equal(rep->delete_->result->status, BULLETIN__WRITE_STATUS__DELETED);
            assert_int_equal(rep->delete_->result->seq, 30);
        } else {
            assert_int_equal(rep->status->code, BULLETIN__STATUS_CODE__NOT_FOUND);
            assert_non_null(strstr(rep->status->message, "no article with this key"));
        }
        wire_free(rep);
    }
    stop(f);
}

static void test_store_down(void **state)
{
    (void)state;
    /* nothing listens on the store endpoint; a deadline far beyond ask's 2 s
     * wait: the answer comes at once (the send to an unconnected store
     * fails), not when the deadline ends */
    fixture *f = start(false, 600000);
    one_article one;
    Bulletin__Reply *rep = ask(f, one_article_req(&one, 5, "T"));
    assert_int_equal(rep->status->code, BULLETIN__STATUS_CODE__UNAVAILABLE);
    assert_non_null(strstr(rep->status->message, "not connected"));
    wire_free(rep);
    rep = ask_health(f, 6);
    assert_false(rep->health->ok);
    assert_non_null(strstr(rep->health->detail, "has not answered yet"));
    wire_free(rep);
    stop(f);
}

/* Answer a write with one CREATED result per op: key = the op's key (so the
 * test can check which result went where), seq = seq_base + op index. */
static void store_answer_keys(fixture *f, zio_route *route, uint64_t rid,
                              const Bulletin__Internal__WriteBatch *wb, uint64_t seq_base)
{
    size_t n = wb->n_ops;
    Bulletin__IngestResult *rs = calloc(n, sizeof *rs);
    Bulletin__IngestResult **rp = calloc(n, sizeof *rp);
    assert_non_null(rs);
    assert_non_null(rp);
    for (size_t i = 0; i < n; i++) {
        bulletin__ingest_result__init(&rs[i]);
        rs[i].status = BULLETIN__WRITE_STATUS__CREATED;
        rs[i].id = seq_base + i;
        rs[i].seq = seq_base + i;
        rs[i].key = wb->ops[i]->put->key;
        rp[i] = &rs[i];
    }
    store_send_results(f, route, rid, rp, n);
    free(rs);
    free(rp);
}

/* An ingest request of n articles keyed "<prefix>-<i>". */
typedef struct {
    Bulletin__Article *a;
    Bulletin__IngestItem *it, **itp;
    char (*key)[32];
    Bulletin__IngestRequest ir;
    Bulletin__Request req;
} s_batch;

static void batch_make(s_batch *b, uint64_t id, const char *prefix, size_t n)
{
    b->a = calloc(n, sizeof *b->a);
    b->it = calloc(n, sizeof *b->it);
    b->itp = calloc(n, sizeof *b->itp);
    b->key = calloc(n, sizeof *b->key);
    assert_true(b->a && b->it && b->itp && b->key);
    for (size_t i = 0; i < n; i++) {
        bulletin__article__init(&b->a[i]);
        snprintf(b->key[i], sizeof b->key[i], "%s-%zu", prefix, i);
        b->a[i].key = b->key[i];
        b->a[i].title = "A title";
        b->a[i].body = "Some body text, caf\xc3\xa9.";
        bulletin__ingest_item__init(&b->it[i]);
        b->it[i].item_case = BULLETIN__INGEST_ITEM__ITEM_ARTICLE;
        b->it[i].article = &b->a[i];
        b->itp[i] = &b->it[i];
    }
    bulletin__ingest_request__init(&b->ir);
    b->ir.n_items = n;
    b->ir.items = b->itp;
    b->req = mkreq(id);
    b->req.body_case = BULLETIN__REQUEST__BODY_INGEST;
    b->req.ingest = &b->ir;
}

static void batch_free(s_batch *b)
{
    free(b->a);
    free(b->it);
    free(b->itp);
    free(b->key);
}

/* A big request goes to the store in parts (so the store works on the first
 * part while ingest prepares the next); the parts may be answered in any
 * order and the client gets every result in its place. */
static void test_big_request_in_parts(void **state)
{
    (void)state;
    fixture *f = start(true, 5000);
    wait_connected(f);
    const size_t n = 450;
    s_batch b;
    batch_make(&b, 500, "big", n);
    send_req(f, &b.req);
    zio_route route[8];
    uint64_t rid[8];
    Bulletin__Internal__StoreRequest *sr[8];
    size_t parts = 0, ops = 0;
    while (ops < n) {
        assert_true(parts < 8);
        sr[parts] = store_recv(f, &route[parts], &rid[parts], 2000);
        assert_non_null(sr[parts]);
        size_t k = sr[parts]->write->n_ops;
        assert_true(k >= 1 && k <= 200); /* parts of at most S_PART_OPS */
        for (size_t i = 0; i < k; i++) /* in order */
            assert_string_equal(sr[parts]->write->ops[i]->put->key, b.key[ops + i]);
        ops += k;
        parts++;
    }
    assert_int_equal(ops, n);
    assert_true(parts >= 3);
    /* answer the last part first: no reply until every part is in */
    for (size_t j = parts; j-- > 0;) {
        store_answer_keys(f, &route[j], rid[j], sr[j]->write, 1000 * (j + 1));
        zio_route_close(&route[j]);
        if (j > 0)
            assert_null(recv_reply(f, j == parts - 1 ? 100 : 0));
    }
    Bulletin__Reply *rep = recv_reply(f, 2000);
    assert_non_null(rep);
    assert_int_equal(rep->request_id, 500);
    assert_int_equal(rep->status->code, BULLETIN__STATUS_CODE__OK);
    assert_int_equal(rep->ingest->n_results, n);
    size_t i = 0;
    for (size_t j = 0; j < parts; j++)
        for (size_t k = 0; k < sr[j]->write->n_ops; k++, i++) {
            assert_string_equal(rep->ingest->results[i]->key, b.key[i]);
            assert_int_equal(rep->ingest->results[i]->seq, 1000 * (j + 1) + k);
            assert_int_equal(rep->ingest->results[i]->status, BULLETIN__WRITE_STATUS__CREATED);
        }
    for (size_t j = 0; j < parts; j++)
        wire_free(sr[j]);
    wire_free(rep);
    batch_free(&b);
    stop(f);
}

/* Small requests that arrive together share store messages; each client
 * request still gets exactly its own results. One of them has a short
 * deadline and expires while the others are answered.
 *
 * So that "together" does not depend on thread scheduling, a big request goes
 * first: ingest prepares its 3,000 articles in one loop turn (milliseconds, more
 * under a sanitizer), the burst of small requests queues meanwhile, and the
 * next turn reads it at once. */
static void test_small_requests_coalesced(void **state)
{
    (void)state;
    fixture *f = start(true, 5000);
    wait_connected(f);
    enum { N = 40, BIG = 3000 };
    s_batch big;
    batch_make(&big, 999, "big", BIG);
    s_batch b[N];
    char prefix[16];
    for (int r = 0; r < N; r++) {
        snprintf(prefix, sizeof prefix, "r%d", r);
        batch_make(&b[r], 1000 + (uint64_t)r, prefix, 1 + (size_t)(r % 3));
        if (r == 7)
            b[r].req.deadline_ms = 200;
    }
    send_req(f, &big.req);
    for (int r = 0; r < N; r++) /* in a burst, while ingest works on the big one */
        send_req(f, &b[r].req);
    size_t want = BIG;
    for (int r = 0; r < N; r++)
        want += b[r].ir.n_items;
    size_t ops = 0, small_parts = 0;
    uint64_t seq = 1;
    while (ops < want) {
        zio_route route;
        uint64_t rid;
        Bulletin__Internal__StoreRequest *sr = store_recv(f, &route, &rid, 5000);
        assert_non_null(sr);
        ops += sr->write->n_ops;
        /* answer everything except the part holding r7's article, after r7 expired */
        bool late = false, small = false;
        for (size_t k = 0; k < sr->write->n_ops; k++) {
            const char *key = sr->write->ops[k]->put->key;
            late |= strncmp(key, "r7-", 3) == 0;
            small |= key[0] == 'r';
        }
        small_parts += small;
        if (late)
            usleep(400 * 1000);
        store_answer_keys(f, &route, rid, sr->write, seq);
        seq += sr->write->n_ops;
        zio_route_close(&route);
        wire_free(sr);
    }
    assert_int_equal(ops, want);
    assert_true(small_parts < N); /* sent in a burst: some requests shared a message */
    bool seen[N] = {false}, big_seen = false;
    for (int r = 0; r < N + 1; r++) {
        Bulletin__Reply *rep = recv_reply(f, 2000);
        assert_non_null(rep);
        if (rep->request_id == 999) {
            assert_false(big_seen);
            big_seen = true;
            assert_int_equal(rep->status->code, BULLETIN__STATUS_CODE__OK);
            assert_int_equal(rep->ingest->n_results, BIG);
            wire_free(rep);
            continue;
        }
        assert_true(rep->request_id >= 1000 && rep->request_id < 1000 + N);
        int i = (int)(rep->request_id - 1000);
        assert_false(seen[i]);
        seen[i] = true;
        if (i == 7) {
            assert_int_equal(rep->status->code, BULLETIN__STATUS_CODE__UNAVAILABLE);
        } else {
            assert_int_equal(rep->status->code, BULLETIN__STATUS_CODE__OK);
            assert_int_equal(rep->ingest->n_results, b[i].ir.n_items);
            for (size_t k = 0; k < rep->ingest->n_results; k++) {
                assert_string_equal(rep->ingest->results[k]->key, b[i].key[k]);
                assert_true(rep->ingest->results[k]->seq > 0);
            }
        }
        wire_free(rep);
    }
    assert_true(big_seen);
    assert_null(recv_reply(f, 200)); /* nothing twice */
    for (int r = 0; r < N; r++)
        batch_free(&b[r]);
    batch_free(&big);
    stop(f);
}

int main(void)

{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ingest_roundtrip),
        cmocka_unit_test(test_all_rejected_and_errors),
        cmocka_unit_test(test_store_timeout_and_late_reply),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_store_down),
        cmocka_unit_test(test_big_request_in_parts),
        cmocka_unit_test(test_small_requests_coalesced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
