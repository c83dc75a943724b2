/* store_server: the real service loop in a thread, on ipc:// endpoints in a
 * temp dir, driven over ZeroMQ: public and internal bodies, bad input,
 * group commit, the feed, and SIGTERM shutdown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "clock.h"
#include "store_server.h"
#include "wire.h"

typedef struct {
    char dir[64], api_ep[128], feed_ep[128];
    store_server_config cfg;
    pthread_t thread;
    int rc;
    void *ctx, *dealer, *sub;
    uint64_t next_id;
} fx;

static void *s_run(void *arg)
{
    fx *f = arg;
    f->rc = store_server_run(&f->cfg);
    return NULL;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/store_server_test.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->api_ep, sizeof f->api_ep, "ipc://%s/api", f->dir);
    snprintf(f->feed_ep, sizeof f->feed_ep, "ipc://%s/feed", f->dir);
    f->cfg = (store_server_config){.data_dir = f->dir, .bind = f->api_ep, .feed = f->feed_ep,
                                   .map_size = 1 << 20, .max_msg = STORE_SERVER_MIN_MAX_MSG,
                                   .heartbeat_ms = 100};
    f->rc = -1;
    if (pthread_create(&f->thread, NULL, s_run, f) != 0)
        return -1;
    f->ctx = zmq_ctx_new();
    f->dealer = zmq_socket(f->ctx, ZMQ_DEALER);
    f->sub = zmq_socket(f->ctx, ZMQ_SUB);
    int zero = 0, timeout = 5000;
    zmq_setsockopt(f->dealer, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(f->sub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(f->dealer, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(f->sub, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(f->sub, ZMQ_SUBSCRIBE, "", 0);
    /* ipc connect before bind is fine: ZeroMQ retries */
    if (zmq_connect(f->dealer, f->api_ep) != 0 || zmq_connect(f->sub, f->feed_ep) != 0)
        return -1;
    *state = f;
    return 0;
}

static void s_stop(fx *f)
{
    int64_t t0 = clock_mono_ms();
    kill(getpid(), SIGTERM);
    pthread_join(f->thread, NULL);
    int64_t ms = clock_mono_ms() - t0;
    assert_true(ms < 10000); /* stops, without waiting on a linger (not a speed check) */
    assert_int_equal(f->rc, 0);
}

static int teardown(void **state)
{
    fx *f = *state;
    if (f->rc == -1)
        s_stop(f);
    zmq_close(f->dealer);
    zmq_close(f->sub);
    zmq_ctx_term(f->ctx);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", f->dir);
    free(f);
    return 0;
}

/* --- client helpers ------------------------------------------------------ */

static void s_send_raw(fx *f, const void *data, size_t len)
{
    assert_int_equal(zmq_send(f->dealer, "", 0, ZMQ_SNDMORE), 0);
    assert_int_equal(zmq_send(f->dealer, data, len, 0), (int)len);
}

static uint64_t s_send(fx *f, Bulletin__Request *req)
{
    req->request_id = ++f->next_id;
    size_t n = bulletin__request__get_packed_size(req);
    uint8_t *buf = malloc(n ? n : 1);
    bulletin__request__pack(req, buf);
    s_send_raw(f, buf, n);
    free(buf);
    return req->request_id;
}

static Bulletin__Reply *s_recv(fx *f)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    assert_true(zmq_msg_recv(&m, f->dealer, 0) >= 0); /* delimiter */
    assert_int_equal(zmq_msg_size(&m), 0);
    assert_true(zmq_msg_more(&m));
    assert_true(zmq_msg_recv(&m, f->dealer, 0) >= 0);
    assert_false(zmq_msg_more(&m));
    Bulletin__Reply *r = bulletin__reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
    zmq_msg_close(&m);
    assert_non_null(r);
    assert_int_equal(r->version_major, 1);
    assert_non_null(r->served_by);
    assert_true(strchr(r->served_by, ':') != NULL);
    return r;
}

static Bulletin__Reply *s_call(fx *f, Bulletin__Request *req)
{
    uint64_t id = s_send(f, req);
    Bulletin__Reply *r = s_recv(f);
    assert_int_equal(r->request_id, id);
    return r;
}

/* Check that reply r has status `code`, and free it. */
static void s_expect(Bulletin__Reply *r, int code)
{
    assert_int_equal(r->status->code, code);
    bulletin__reply__free_unpacked(r, NULL);
}

static Bulletin__Request *s_internal(Bulletin__Request *req, uint8_t **buf,
                                     Bulletin__Internal__StoreRequest *sr)
{
    bulletin__request__init(req);
    size_t n = bulletin__internal__store_request__get_packed_size(sr);
    *buf = malloc(n ? n : 1);
    bulletin__internal__store_request__pack(sr, *buf);
    req->body_case = BULLETIN__REQUEST__BODY_INTERNAL;
    req->internal.data = *buf;
    req->internal.len = n;
    return req;
}

static Bulletin__Internal__StoreReply *s_store_reply(Bulletin__Reply *r)
{
    assert_int_equal(r->status->code, BULLETIN__STATUS_CODE__OK);
    assert_int_equal(r->body_case, BULLETIN__REPLY__BODY_INTERNAL);
    Bulletin__Internal__StoreReply *sr =
        bulletin__internal__store_reply__unpack(NULL, r->internal.len, r->internal.data);
    assert_non_null(sr);
    return sr;
}

/* Send one WriteBatch of puts with keys prefix-0..n-1 (no reply read). */
static uint64_t s_send_puts(fx *f, const char *prefix, size_t n, const char *body)
{
    Bulletin__Internal__WriteOp *ops = calloc(n, sizeof *ops), **opp = calloc(n, sizeof *opp);
    Bulletin__Article *arts = calloc(n, sizeof *arts);
    char (*keys)[64] = calloc(n, sizeof *keys);
    for (size_t i = 0; i < n; i++) {
        bulletin__article__init(&arts[i]);
        snprintf(keys[i], sizeof keys[i], "%s-%zu", prefix, i);
        arts[i].key = keys[i];
        arts[i].title = keys[i];
        arts[i].body = (char *)body;
        arts[i].published_at = 1000;
        bulletin__internal__write_op__init(&ops[i]);
        ops[i].op_case = BULLETIN__INTERNAL__WRITE_OP__OP_PUT;
        ops[i].put = &arts[i];
        opp[i] = &ops[i];
    }
    Bulletin__Internal__WriteBatch wb = BULLETIN__INTERNAL__WRITE_BATCH__INIT;
    wb.ops = opp;
    wb.n_ops = n;
    Bulletin__Internal__StoreRequest sr = BULLETIN__INTERNAL__STORE_REQUEST__INIT;
    sr.body_case = BULLETIN__INTERNAL__STORE_REQUEST__BODY_WRITE;
    sr.write = &wb;
    Bulletin__Request req;
    uint8_t *buf;
    uint64_t id = s_send(f, s_internal(&req, &buf, &sr));
    free(buf);
    free(ops);
    free(opp);
    free(arts);
    free(keys);
    return id;
}

static double s_metric(Bulletin__Reply *r, const char *name)
{
    assert_int_equal(r->body_case, BULLETIN__REPLY__BODY_STATS);
    for (size_t i = 0; i < r->stats->n_metrics; i++)
        if (!strcmp(r->stats->metrics[i]->name, name))
            return r->stats->metrics[i]->value;
    fail_msg("metric %s missing", name);
    return -1;
}

/* --- tests --------------------------------------------------------------- */

static void test_public_bodies_and_errors(void **state)
{
    fx *f = *state;
    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    Bulletin__HealthRequest h = BULLETIN__HEALTH_REQUEST__INIT;
    req.body_case = BULLETIN__REQUEST__BODY_HEALTH;
    req.health = &h;
    Bulletin__Reply *r = s_call(f, &req);
    assert_int_equal(r->status->code, BULLETIN__STATUS_CODE__OK);
    assert_int_equal(r->body_case, BULLETIN__REPLY__BODY_HEALTH);
    assert_true(r->health->ok);
    assert_string_equal(r->health->service, "store");
    assert_int_equal(r->health->applied_seq, 0);
    bulletin__reply__free_unpacked(r, NULL);

    Bulletin__StatsRequest st = BULLETIN__STATS_REQUEST__INIT;
    bulletin__request__init(&req);
    req.body_case = BULLETIN__REQUEST__BODY_STATS;
    req.stats = &st;
    r = s_call(f, &req);
    assert_string_equal(r->stats->service, "store");
    const char *names[] = {"articles", "tombstones", "last_seq", "next_id", "map_size_bytes",
                           "map_used_bytes", "commits", "ops_committed", "mean_batch_ops",
                           "sync_requests", "sync_from_zero", "sync_changes_sent",
                           "feed_messages", "uptime_s"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        (void)s_metric(r, names[i]);
    assert_true(s_metric(r, "next_id") == 1);
    bulletin__reply__free_unpacked(r, NULL);

    /* Get: neither, both, missing */
    Bulletin__GetRequest g = BULLETIN__GET_REQUEST__INIT;
    bulletin__request__init(&req);
    req.body_case = BULLETIN__REQUEST__BODY_GET;
    req.get = &g;
    r = s_call(f, &req);
    assert_int_equal(r->status->code, BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    assert_true(strlen(r->status->message) > 0);
    bulletin__reply__free_unpacked(r, NULL);
    g.id = 5;
    g.key = "k";
    s_expect(s_call(f, &req), BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    g.id = 0;
    r = s_call(f, &req);
    assert_int_equal(r->status->code, BULLETIN__STATUS_CODE__NOT_FOUND);
    assert_string_equal(r->status->message, "no article with key 'k'");
    bulletin__reply__free_unpacked(r, NULL);

    /* an unsupported body */
    Bulletin__SearchRequest sq = BULLETIN__SEARCH_REQUEST__INIT;
    bulletin__request__init(&req);
    req.body_case = BULLETIN__REQUEST__BODY_SEARCH;
    req.search = &sq;
    s_expect(s_call(f, &req), BULLETIN__STATUS_CODE__UNIMPLEMENTED);

    /* garbage, empty and truncated bodies: INVALID_ARGUMENT, still serving */
    const char garbage[] = "\xff\xff\xff\xff not protobuf";
    s_send_raw(f, garbage, sizeof garbage - 1);
    s_expect(s_recv(f), BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    s_send_raw(f, "", 0);
    s_expect(s_recv(f), BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    uint8_t trunc[] = {0x18, 0x07, 0x82, 0x01, 0x10, 0x01}; /* id 7, body 16 bytes, 1 given */
    s_send_raw(f, trunc, sizeof trunc);
    s_expect(s_recv(f), BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    /* an internal body that is not a StoreRequest */
    bulletin__request__init(&req);
    req.body_case = BULLETIN__REQUEST__BODY_INTERNAL;
    req.internal.data = (uint8_t *)"\x0a\x09zz";
    req.internal.len = 4;
    s_expect(s_call(f, &req), BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    /* an empty StoreRequest */
    req.internal.len = 0;
    s_expect(s_call(f, &req), BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    /* a frame over max_msg drops that connection; the service keeps serving */
    void *big = zmq_socket(f->ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(big, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_connect(big, f->api_ep), 0);
    size_t bn = STORE_SERVER_MIN_MAX_MSG + (1u << 20);
    char *bb = calloc(1, bn);
    zmq_send(big, "", 0, ZMQ_SNDMORE);
    zmq_send(big, bb, bn, 0);
    free(bb);
    zmq_close(big);
    bulletin__request__init(&req);
    req.body_case = BULLETIN__REQUEST__BODY_HEALTH;
    req.health = &h;
    s_expect(s_call(f, &req), BULLETIN__STATUS_CODE__OK);
}

static void test_write_sync_feed(void **state)
{
    fx *f = *state;
    /* wait for the feed subscription: the heartbeat arrives within ~100 ms */
    zmq_msg_t m;
    zmq_msg_init(&m);
    assert_true(zmq_msg_recv(&m, f->sub, 0) >= 0);
    Bulletin__Internal__FeedMessage *fm =
        bulletin__internal__feed_message__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
    assert_non_null(fm);
    assert_int_equal(fm->n_changes, 0);
    assert_int_equal(fm->store_uuid.len, 16);
    bulletin__internal__feed_message__free_unpacked(fm, NULL);

    uint64_t id = s_send_puts(f, "a", 5, "body");
    Bulletin__Reply *r = s_recv(f);
    assert_int_equal(r->request_id, id);
    assert_int_equal(r->applied_seq, 5);
    Bulletin__Internal__StoreReply *sr = s_store_reply(r);
    assert_int_equal(sr->body_case, BULLETIN__INTERNAL__STORE_REPLY__BODY_WRITE);
    assert_int_equal(sr->write->n_results, 5);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(sr->write->results[i]->status, BULLETIN__WRITE_STATUS__CREATED);
        assert_int_equal(sr->write->results[i]->seq, i + 1);
        assert_int_equal(sr->write->results[i]->id, i + 1);
    }
    assert_string_equal(sr->write->results[2]->key, "a-2");
    bulletin__internal__store_reply__free_unpacked(sr, NULL);
    bulletin__reply__free_unpacked(r, NULL);

    /* the commit is on the feed (skip heartbeats) */
    for (int tries = 0; tries < 50; tries++) {
        assert_true(zmq_msg_recv(&m, f->sub, 0) >= 0);
        fm = bulletin__internal__feed_message__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        assert_non_null(fm);
        if (fm->n_changes)
            break;
        bulletin__internal__feed_message__free_unpacked(fm, NULL);
        fm = NULL;
    }
    assert_non_null(fm);
    assert_int_equal(fm->n_changes, 5);
    assert_int_equal(fm->last_seq, 5);
    assert_int_equal(fm->changes[4]->seq, 5);
    assert_string_equal(fm->changes[4]->article->key, "a-4");
    bulletin__internal__feed_message__free_unpacked(fm, NULL);
    zmq_msg_close(&m);

    /* Get sees it, by id and by key */
    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    Bulletin__GetRequest g = BULLETIN__GET_REQUEST__INIT;
    req.body_case = BULLETIN__REQUEST__BODY_GET;
    req.get = &g;
    g.key = "a-3";
    r = s_call(f, &req);
    assert_int_equal(r->status->code, BULLETIN__STATUS_CODE__OK);
    assert_int_equal(r->get->article->id, 4);
    assert_int_equal(r->get->article->content_hash.len, 16);
    bulletin__reply__free_unpacked(r, NULL);

    /* Sync with paging */
    Bulletin__Internal__SyncRequest sy = BULLETIN__INTERNAL__SYNC_REQUEST__INIT;
    Bulletin__Internal__StoreRequest sq = BULLETIN__INTERNAL__STORE_REQUEST__INIT;
    sq.body_case = BULLETIN__INTERNAL__STORE_REQUEST__BODY_SYNC;
    sq.sync = &sy;
    sy.from_seq = 1;
    sy.max_changes = 3;
    uint8_t *buf;
    r = s_call(f, s_internal(&req, &buf, &sq));
    free(buf);
    sr = s_store_reply(r);
    assert_int_equal(sr->body_case, BULLETIN__INTERNAL__STORE_REPLY__BODY_SYNC);
    assert_int_equal(sr->sync->n_changes, 3);
    assert_int_equal(sr->sync->changes[0]->seq, 2);
    assert_false(sr->sync->done);
    assert_int_equal(sr->sync->head_seq, 5);
    bulletin__internal__store_reply__free_unpacked(sr, NULL);
    bulletin__reply__free_unpacked(r, NULL);

    /* an empty WriteBatch: OK with no results */
    Bulletin__Internal__WriteBatch wb = BULLETIN__INTERNAL__WRITE_BATCH__INIT;
    Bulletin__Internal__StoreRequest wq = BULLETIN__INTERNAL__STORE_REQUEST__INIT;
    wq.body_case = BULLETIN__INTERNAL__STORE_REQUEST__BODY_WRITE;
    wq.write = &wb;
    r = s_call(f, s_internal(&req, &buf, &wq));
    free(buf);
    sr = s_store_reply(r);
    assert_int_equal(sr->body_case, BULLETIN__INTERNAL__STORE_REPLY__BODY_WRITE);
    assert_int_equal(sr->write->n_results, 0);
    bulletin__internal__store_reply__free_unpacked(sr, NULL);
    bulletin__reply__free_unpacked(r, NULL);

    /* same content again: UNCHANGED, no new seq */
    id = s_send_puts(f, "a", 2, "body");
    r = s_recv(f);
    sr = s_store_reply(r);
    assert_int_equal(sr->write->results[1]->status, BULLETIN__WRITE_STATUS__UNCHANGED);
    assert_int_equal(sr->write->results[1]->seq, 2);
    assert_int_equal(r->applied_seq, 5);
    bulletin__internal__store_reply__free_unpacked(sr, NULL);
    bulletin__reply__free_unpacked(r, NULL);
}

/* Read feed messages until one has changes; NULL on timeout. */
static Bulletin__Internal__FeedMessage *s_feed_next(fx *f)
{
    for (int tries = 0; tries < 100; tries++) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, f->sub, 0) < 0) {
            zmq_msg_close(&m);
            return NULL;
        }
        Bulletin__Internal__FeedMessage *fm =
            bulletin__internal__feed_message__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        zmq_msg_close(&m);
        assert_non_null(fm);
        if (fm->n_changes)
            return fm;
        bulletin__internal__feed_message__free_unpacked(fm, NULL);
    }
    return NULL;
}

static void test_feed_split(void **state)
{
    fx *f = *state;
    /* wait until subscribed (first heartbeat) */
    zmq_msg_t m;
    zmq_msg_init(&m);
    assert_true(zmq_msg_recv(&m, f->sub, 0) >= 0);
    zmq_msg_close(&m);
    enum { N = STORE_SERVER_FEED_CHANGES * 2 + 500 };
    uint64_t id = s_send_puts(f, "s", N, "split");
    Bulletin__Reply *r = s_recv(f);
    assert_int_equal(r->request_id, id);
    assert_int_equal(r->applied_seq, N);
    bulletin__reply__free_unpacked(r, NULL);
    size_t sizes[] = {STORE_SERVER_FEED_CHANGES, STORE_SERVER_FEED_CHANGES, 500};
    uint64_t next = 1;
    for (int part = 0; part < 3; part++) {
        Bulletin__Internal__FeedMessage *fm = s_feed_next(f);
        assert_non_null(fm);
        assert_int_equal(fm->n_changes, sizes[part]);
        for (size_t i = 0; i < fm->n_changes; i++)
            assert_int_equal(fm->changes[i]->seq, next++);
        /* each part's last_seq is its last change; the last part's is the commit's */
        assert_int_equal(fm->last_seq, next - 1);
        bulletin__internal__feed_message__free_unpacked(fm, NULL);
    }
    assert_int_equal(next - 1, N);
}

/* A REQ client (the delimiter is added by ZeroMQ) and a malformed
 * multi-frame message. */
static void test_req_client_and_frames(void **state)
{
    fx *f = *state;
    void *req_sock = zmq_socket(f->ctx, ZMQ_REQ);
    int zero = 0, timeout = 5000;
    zmq_setsockopt(req_sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(req_sock, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    assert_int_equal(zmq_connect(req_sock, f->api_ep), 0);
    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    Bulletin__HealthRequest h = BULLETIN__HEALTH_REQUEST__INIT;
    req.body_case = BULLETIN__REQUEST__BODY_HEALTH;
    req.health = &h;
    req.request_id = 77;
    uint8_t buf[64];
    size_t n = bulletin__request__pack(&req, buf);
    assert_int_equal(zmq_send(req_sock, buf, n, 0), (int)n);
    char rbuf[4096];
    int got = zmq_recv(req_sock, rbuf, sizeof rbuf, 0);
    assert_true(got > 0);
    Bulletin__Reply *r = bulletin__reply__unpack(NULL, (size_t)got, (uint8_t *)rbuf);
    assert_non_null(r);
    assert_int_equal(r->request_id, 77);
    assert_true(r->health->ok);
    bulletin__reply__free_unpacked(r, NULL);
    zmq_close(req_sock);

    /* [empty][a][b]: two body frames */
    zmq_send(f->dealer, "", 0, ZMQ_SNDMORE);
    zmq_send(f->dealer, "a", 1, ZMQ_SNDMORE);
    zmq_send(f->dealer, "b", 1, 0);
    r = s_recv(f);
    assert_int_equal(r->status->code, BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    assert_non_null(strstr(r->status->message, "malformed"));
    bulletin__reply__free_unpacked(r, NULL);
}

/* Packed bytes of a valid internal request (caller frees). */
static uint8_t *s_pack_internal(Bulletin__Internal__StoreRequest *sr, uint64_t id, size_t *len)
{
    Bulletin__Request req;
    uint8_t *inner;
    s_internal(&req, &inner, sr);
    req.request_id = id;
    *len = bulletin__request__get_packed_size(&req);
    uint8_t *out = malloc(*len);
    bulletin__request__pack(&req, out);
    free(inner);
    return out;
}

/* Random mutations of valid requests: every message gets exactly one reply
 * and the service stays healthy and consistent. */
static void test_mutated_requests(void **state)
{
    fx *f = *state;
    Bulletin__Article a = BULLETIN__ARTICLE__INIT;
    char *tags[] = {"t1", "t2"};
    a.key = "https://example.org/mutate";
    a.title = "Title";
    a.body = "Some body text";
    a.tags = tags;
    a.n_tags = 2;
    Bulletin__Internal__WriteOp put = BULLETIN__INTERNAL__WRITE_OP__INIT, *ops[2];
    put.op_case = BULLETIN__INTERNAL__WRITE_OP__OP_PUT;
    put.put = &a;
    Bulletin__DeleteRequest dr = BULLETIN__DELETE_REQUEST__INIT;
    dr.key = "https://example.org/mutate";
    Bulletin__Internal__WriteOp del = BULLETIN__INTERNAL__WRITE_OP__INIT;
    del.op_case = BULLETIN__INTERNAL__WRITE_OP__OP_DELETE;
    del.delete_ = &dr;
    ops[0] = &put;
    ops[1] = &del;
    Bulletin__Internal__WriteBatch wb = BULLETIN__INTERNAL__WRITE_BATCH__INIT;
    wb.ops = ops;
    wb.n_ops = 2;
    Bulletin__Internal__StoreRequest w = BULLETIN__INTERNAL__STORE_REQUEST__INIT;
    w.body_case = BULLETIN__INTERNAL__STORE_REQUEST__BODY_WRITE;
    w.write = &wb;
    Bulletin__Internal__SyncRequest sy = BULLETIN__INTERNAL__SYNC_REQUEST__INIT;
    sy.max_changes = 2;
    Bulletin__Internal__StoreRequest q = BULLETIN__INTERNAL__STORE_REQUEST__INIT;
    q.body_case = BULLETIN__INTERNAL__STORE_REQUEST__BODY_SYNC;
    q.sync = &sy;
    size_t lens[2];
    uint8_t *seeds[2] = {s_pack_internal(&w, 1, &lens[0]), s_pack_internal(&q, 2, &lens[1])};

    srand(12345);
    enum { N = 3000 };
    for (int i = 0; i < N; i++) {
        size_t len = lens[i % 2];
        uint8_t *m = malloc(len + 8);
        memcpy(m, seeds[i % 2], len);
        int flips = 1 + rand() % 4;
        for (int k = 0; k < flips; k++) {
            switch (rand() % 3) {
            case 0: m[rand() % len] ^= (uint8_t)(1u << (rand() % 8)); break;
            case 1: m[rand() % len] = (uint8_t)rand(); break;
            default: len = 1 + (size_t)rand() % len; break; /* truncate */
            }
        }
        s_send_raw(f, m, len);
        free(m);
        Bulletin__Reply *r = s_recv(f); /* exactly one reply, whatever the bytes */
        assert_non_null(r->status);
        bulletin__reply__free_unpacked(r, NULL);
    }
    free(seeds[0]);
    free(seeds[1]);

    /* still healthy, and a full Sync walks a consistent log */
    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    Bulletin__HealthRequest h = BULLETIN__HEALTH_REQUEST__INIT;
    req.body_case = BULLETIN__REQUEST__BODY_HEALTH;
    req.health = &h;
    Bulletin__Reply *r = s_call(f, &req);
    assert_true(r->health->ok);
    uint64_t head = r->applied_seq;
    bulletin__reply__free_unpacked(r, NULL);
    sy.from_seq = 0;
    sy.max_changes = 0;
    uint8_t *buf;
    r = s_call(f, s_internal(&req, &buf, &q));
    free(buf);
    Bulletin__Internal__StoreReply *sr = s_store_reply(r);
    assert_true(sr->sync->done);
    assert_int_equal(sr->sync->head_seq, head);
    uint64_t prev = 0;
    for (size_t i = 0; i < sr->sync->n_changes; i++) {
        assert_true(sr->sync->changes[i]->seq > prev);
        prev = sr->sync->changes[i]->seq;
    }
    fprintf(stderr, "mutations: %d requests, head_seq %llu, %zu entries in the log\n", N,
            (unsigned long long)head, sr->sync->n_changes);
    bulletin__internal__store_reply__free_unpacked(sr, NULL);
    bulletin__reply__free_unpacked(r, NULL);
}

static void test_group_commit(void **state)
{
    fx *f = *state;
    enum { N = 300 };
    uint64_t ids[N];
    char prefix[16];
    for (int i = 0; i < N; i++) {
        snprintf(prefix, sizeof prefix, "g%d", i);
        ids[i] = s_send_puts(f, prefix, 2, "group commit body");
    }
    uint64_t seen_seq[2 * N + 1] = {0};
    for (int i = 0; i < N; i++) {
        Bulletin__Reply *r = s_recv(f);
        assert_int_equal(r->request_id, ids[i]); /* one reply per request, in order */
        Bulletin__Internal__StoreReply *sr = s_store_reply(r);
        assert_int_equal(sr->write->n_results, 2);
        for (int j = 0; j < 2; j++) {
            uint64_t seq = sr->write->results[j]->seq;
            assert_int_equal(sr->write->results[j]->status, BULLETIN__WRITE_STATUS__CREATED);
            assert_true(seq >= 1 && seq <= 2 * N);
            assert_int_equal(seen_seq[seq], 0);
            seen_seq[seq] = 1;
        }
        assert_true(r->applied_seq >= sr->write->results[1]->seq);
        bulletin__internal__store_reply__free_unpacked(sr, NULL);
        bulletin__reply__free_unpacked(r, NULL);
    }
    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    Bulletin__StatsRequest st = BULLETIN__STATS_REQUEST__INIT;
    req.body_case = BULLETIN__REQUEST__BODY_STATS;
    req.stats = &st;
    Bulletin__Reply *r = s_call(f, &req);
    double commits = s_metric(r, "commits"), ops = s_metric(r, "ops_committed");
    assert_true(ops == 2 * N);
    assert_true(commits >= 1 && commits <= N);
    assert_true(s_metric(r, "articles") == 2 * N);
    assert_true(s_metric(r, "last_seq") == 2 * N);
    fprintf(stderr, "group commit: %d requests in %.0f commits (mean %.1f ops)\n", N, commits,
            s_metric(r, "mean_batch_ops"));
    bulletin__reply__free_unpacked(r, NULL);
}

static void test_restart_keeps_data(void **state)
{
    fx *f = *state;
    uint64_t id = s_send_puts(f, "p", 3, "persist");
    Bulletin__Reply *r = s_recv(f);
    assert_int_equal(r->request_id, id);
    bulletin__reply__free_unpacked(r, NULL);
    s_stop(f);
    /* start again on the same directory */
    f->rc = -1;
    assert_int_equal(pthread_create(&f->thread, NULL, s_run, f), 0);
    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    Bulletin__HealthRequest h = BULLETIN__HEALTH_REQUEST__INIT;
    req.body_case = BULLETIN__REQUEST__BODY_HEALTH;
    req.health = &h;
    r = s_call(f, &req);
    assert_int_equal(r->health->applied_seq, 3);
    bulletin__reply__free_unpacked(r, NULL);
}

int main(void)
{
    /* SIGTERM must reach the server's signalfd, not kill the test: block it
     * in every thread (the server thread inherits the mask) */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_public_bodies_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_sync_feed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feed_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_req_client_and_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mutated_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_keeps_data, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
