/* broker: run broker_run in a thread on inproc endpoints, with fake workers
 * and clients in the test thread. Queue, LRU, deadlines, min_seq routing,
 * dead-worker retry, local Health/Stats, bad input. */
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

#include "broker.h"
#include "clock.h"
#include "log.h"
#include "replica.h"
#include "wire.h"

/* Every socket a test opens (s_sock) is kept in socks[] until s_close, and
 * teardown closes what is left: a test closes only the sockets whose closing
 * is part of what it checks, and a failed assertion (which leaves the test at
 * once) does not keep zmq_ctx_term waiting for them until ctest's timeout. */
enum { S_MAX_SOCKS = 16 };

typedef struct {
    void *ctx;
    broker_config cfg;
    pthread_t th;
    int pipefd[2];
    int rc;
    bool started; /* the broker thread runs (s_start) */
    char front[64], back[64];
    void *socks[S_MAX_SOCKS];
} fx;

static int s_counter;

static void *s_run(void *arg)
{
    fx *f = arg;
    f->rc = broker_run(&f->cfg);
    return NULL;
}

/* A fixture: its context, its stop pipe and a broker configuration on
 * f->front / f->back with deadline_ms; the broker not started (s_start). */
static fx *s_fx_new(long long deadline_ms)
{
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->ctx = zmq_ctx_new();
    if (!f->ctx || pipe(f->pipefd) != 0) {
        if (f->ctx)
            zmq_ctx_term(f->ctx);
        free(f);
        return NULL;
    }
    snprintf(f->front, sizeof f->front, "inproc://front-%d", s_counter);
    snprintf(f->back, sizeof f->back, "inproc://back-%d", s_counter++);
    broker_config_defaults(&f->cfg);
    f->cfg.bind = f->front;
    f->cfg.workers = f->back;
    f->cfg.ctx = f->ctx;
    f->cfg.stop_fd = f->pipefd[0];
    f->cfg.heartbeat_ms = 50;
    f->cfg.liveness = 3;
    f->cfg.deadline_ms = deadline_ms;
    return f;
}

/* Runs the broker of f->cfg in its thread; teardown stops it. */
static int s_start(fx *f)
{
    if (pthread_create(&f->th, NULL, s_run, f) != 0)
        return -1;
    f->started = true;
    usleep(20000); /* inproc: bind before connect */
    return 0;
}

/* A broker whose own deadline is deadline_ms, running. */
static int s_setup(void **state, long long deadline_ms)
{
    fx *f = s_fx_new(deadline_ms);
    if (!f)
        return -1;
    *state = f;
    return s_start(f);
}

static int setup(void **state) { return s_setup(state, 2000); }

/* The broker's deadline far beyond any request's: which deadline ended a
 * request is then plain from the time, however loaded the machine. */
static int setup_long(void **state) { return s_setup(state, 60000); }

/* A fixture whose broker the test configures and starts itself. */
static int setup_stopped(void **state)
{
    fx *f = s_fx_new(2000);
    *state = f;
    return f ? 0 : -1;
}

static void s_close(fx *f, void *s);

/* Closes every socket the test left open (tests close only the ones whose
 * closing is part of what they check). */
static void s_close_all(fx *f)
{
    for (int i = 0; i < S_MAX_SOCKS; i++)
        if (f->socks[i])
            s_close(f, f->socks[i]);
}

static int teardown(void **state)
{
    fx *f = *state;
    s_close_all(f);
    if (f->started) {
        if (write(f->pipefd[1], "x", 1) != 1)
            return -1;
        pthread_join(f->th, NULL);
        assert_int_equal(f->rc, 0);
    }
    close(f->pipefd[0]);
    close(f->pipefd[1]);
    zmq_ctx_term(f->ctx);
    free(f);
    return 0;
}

/* A socket of the test connected to ep (linger 0), kept in f->socks. */
static void *s_sock(fx *f, int type, const char *ep)
{
    int slot = 0;
    while (slot < S_MAX_SOCKS && f->socks[slot])
        slot++;
    assert_true(slot < S_MAX_SOCKS);
    void *s = zmq_socket(f->ctx, type);
    assert_non_null(s);
    f->socks[slot] = s;
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_connect(s, ep), 0);
    return s;
}

/* Closes a socket from s_sock and forgets it. */
static void s_close(fx *f, void *s)
{
    for (int i = 0; i < S_MAX_SOCKS; i++)
        if (f->socks[i] == s)
            f->socks[i] = NULL;
    zmq_close(s);
}

static bool s_wait(void *s, int ms)
{
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    return zmq_poll(&it, 1, ms) == 1;
}

/* --- client side -------------------------------------------------------------- */

static void s_client_send(void *c, uint64_t rid, int body, uint32_t deadline_ms, uint64_t min_seq)
{
    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    Bulletin__ListRequest lr = BULLETIN__LIST_REQUEST__INIT;
    Bulletin__GetRequest gr = BULLETIN__GET_REQUEST__INIT;
    Bulletin__HealthRequest hr = BULLETIN__HEALTH_REQUEST__INIT;
    Bulletin__StatsRequest sr = BULLETIN__STATS_REQUEST__INIT;
    Bulletin__IngestRequest ir = BULLETIN__INGEST_REQUEST__INIT;
    req.version_major = 1;
    req.request_id = rid;
    req.deadline_ms = deadline_ms;
    req.min_seq = min_seq;
    req.body_case = (Bulletin__Request__BodyCase)body;
    switch (body) {
    case BULLETIN__REQUEST__BODY_LIST: req.list = &lr; lr.limit = 5; break;
    case BULLETIN__REQUEST__BODY_GET: req.get = &gr; gr.id = 7; break;
    case BULLETIN__REQUEST__BODY_HEALTH: req.health = &hr; break;
    case BULLETIN__REQUEST__BODY_STATS: req.stats = &sr; break;
    case BULLETIN__REQUEST__BODY_INGEST: req.ingest = &ir; break;
    }
    zmq_msg_t m;
    assert_int_equal(wire_pack_zmq(&req.base, &m), 0);
    assert_int_equal(zmq_send(c, "", 0, ZMQ_SNDMORE), 0);
    assert_true(zmq_msg_send(&m, c, 0) >= 0);
}

static Bulletin__Reply *s_client_recv(void *c, int ms)
{
    if (!s_wait(c, ms))
        return NULL;
    char empty[8];
    assert_int_equal(zmq_recv(c, empty, sizeof empty, 0), 0);
    zmq_msg_t m;
    zmq_msg_init(&m);
    assert_true(zmq_msg_recv(&m, c, 0) >= 0);
    Bulletin__Reply *r = bulletin__reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
    zmq_msg_close(&m);
    assert_non_null(r);
    return r;
}

/* --- worker side ---------------------------------------------------------------- */

static void s_worker_send(void *w, uint8_t cmd, const char *name, uint64_t seq)
{
    uint8_t b[8];
    replica_put_u64(b, seq);
    zmq_send(w, "", 0, ZMQ_SNDMORE);
    if (cmd == BROKER_READY) {
        zmq_send(w, &cmd, 1, ZMQ_SNDMORE);
        zmq_send(w, name, strlen(name), ZMQ_SNDMORE);
        zmq_send(w, b, 8, 0);
    } else {
        zmq_send(w, &cmd, 1, ZMQ_SNDMORE);
        zmq_send(w, b, 8, 0);
    }
}

/* Wait for a REQUEST (skipping heartbeats). Returns its tag (0 = none);
 * the request body's request_id goes to *rid. Sets *disconnect on DISCONNECT. */
static uint64_t s_worker_recv(void *w, int ms, uint64_t *rid, bool *disconnect)
{
    int64_t end = clock_mono_ms() + ms;
    while (clock_mono_ms() < end) {
        if (!s_wait(w, (int)(end - clock_mono_ms())))
            return 0;
        zmq_msg_t f[6];
        int n = 0;
        for (;;) {
            zmq_msg_init(&f[n]);
            assert_true(zmq_msg_recv(&f[n], w, 0) >= 0);
            int more = zmq_msg_more(&f[n]);
            n++;
            if (!more || n == 6)
                break;
        }
        uint8_t cmd = *(uint8_t *)zmq_msg_data(&f[1]);
        uint64_t tag = 0;
        if (cmd == BROKER_REQUEST) {
            assert_int_equal(n, 4);
            tag = replica_get_u64(zmq_msg_data(&f[2]));
            broker_envelope env;
            assert_int_equal(broker_envelope_scan(zmq_msg_data(&f[3]), zmq_msg_size(&f[3]), &env), 0);
            if (rid)
                *rid = env.request_id;
        } else if (cmd == BROKER_DISCONNECT && disconnect) {
            *disconnect = true;
        }
        for (int i = 0; i < n; i++)
            zmq_msg_close(&f[i]);
        if (tag || (disconnect && *disconnect))
            return tag;
    }
    return 0;
}

static void s_worker_reply(void *w, uint64_t tag, uint64_t seq, uint64_t rid, const char *name)
{
    Bulletin__Reply rep;
    Bulletin__Status st;
    wire_reply_init(&rep, &st, rid);
    rep.served_by = (char *)name;
    rep.applied_seq = seq;
    zmq_msg_t m;
    assert_int_equal(wire_pack_zmq(&rep.base, &m), 0);
    uint8_t cmd = BROKER_REPLY, t[8], s[8];
    replica_put_u64(t, tag);
    replica_put_u64(s, seq);
    zmq_send(w, "", 0, ZMQ_SNDMORE);
    zmq_send(w, &cmd, 1, ZMQ_SNDMORE);
    zmq_send(w, t, 8, ZMQ_SNDMORE);
    zmq_send(w, s, 8, ZMQ_SNDMORE);
    assert_true(zmq_msg_send(&m, w, 0) >= 0);
}

/* --- tests ---------------------------------------------------------------------- */

static void test_envelope_scan(void **state)
{
    (void)state;
    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    Bulletin__ListRequest lr = BULLETIN__LIST_REQUEST__INIT;
    req.version_major = 1;
    req.request_id = 0x123456789aULL;
    req.deadline_ms = 250;
    req.min_seq = 99;
    req.body_case = BULLETIN__REQUEST__BODY_LIST;
    req.list = &lr;
    uint8_t buf[256];
    size_t n = bulletin__request__pack(&req, buf);
    broker_envelope env;
    assert_int_equal(broker_envelope_scan(buf, n, &env), 0);
    assert_int_equal(env.version_major, 1);
    assert_int_equal(env.request_id, 0x123456789aULL);
    assert_int_equal(env.deadline_ms, 250);
    assert_int_equal(env.min_seq, 99);
    assert_int_equal(env.body, 13);
    assert_int_equal(broker_envelope_scan(buf, n - 1, &env), -1); /* list length cut off */
    const uint8_t bad1[] = {0x18, 0xff, 0xff};     /* truncated varint */
    const uint8_t bad2[] = {0x6a, 0x10, 0x01};     /* length past the end */
    const uint8_t bad3[] = {0x1b, 0x00};           /* group wire type */
    assert_int_equal(broker_envelope_scan(bad1, sizeof bad1, &env), -1);
    assert_int_equal(broker_envelope_scan(bad2, sizeof bad2, &env), -1);
    assert_int_equal(broker_envelope_scan(bad3, sizeof bad3, &env), -1);
    assert_int_equal(broker_envelope_scan("", 0, &env), 0);
    assert_int_equal(env.body, 0);
}

static void test_no_worker_unavailable(void **state)
{
    fx *f = *state;
    void *c = s_sock(f, ZMQ_DEALER, f->front);
    int64_t t0 = clock_mono_ms();
    s_client_send(c, 1, BULLETIN__REQUEST__BODY_LIST, 200, 0);
    Bulletin__Reply *r = s_client_recv(c, 20000);
    assert_non_null(r);
    int64_t dt = clock_mono_ms() - t0;
    assert_int_equal(r->request_id, 1);
    assert_int_equal(r->status->code, BULLETIN__STATUS_CODE__UNAVAILABLE);
    /* at the request's deadline (200 ms), not before, and not at the
     * broker's (60 s): the margin is for a loaded machine, not a speed check */
    assert_true(dt >= 190 && dt < 20000);
    wire_free(r);
}

static void test_forward_and_lru(void **state)
{
    fx *f = *state;
    void *c = s_sock(f, ZMQ_DEALER, f->front);
    void *w1 = s_sock(f, ZMQ_DEALER, f->back), *w2 = s_sock(f, ZMQ_DEALER, f->back);
    s_worker_send(w1, BROKER_READY, "w1", 0);
    usleep(20000);
    s_worker_send(w2, BROKER_READY, "w2", 0);
    usleep(20000);
    s_client_send(c, 10, BULLETIN__REQUEST__BODY_LIST, 0, 0);
    s_client_send(c, 11, BULLETIN__REQUEST__BODY_GET, 0, 0);
    uint64_t rid1 = 0, rid2 = 0;
    uint64_t t1 = s_worker_recv(w1, 1000, &rid1, NULL);
    uint64_t t2 = s_worker_recv(w2, 1000, &rid2, NULL);
    assert_true(t1 && t2 && t1 != t2);
    assert_int_equal(rid1, 10); /* least recently used first */
    assert_int_equal(rid2, 11);
    s_worker_reply(w2, t2, 3, rid2, "w2");
    s_worker_reply(w1, t1, 3, rid1, "w1");
    Bulletin__Reply *a = s_client_recv(c, 1000), *b = s_client_recv(c, 1000);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(a->request_id, 11);
    assert_string_equal(a->served_by, "w2");
    assert_int_equal(b->request_id, 10);
    wire_free(a);
    wire_free(b);
    /* a third request goes to w2 (it became ready first) */
    s_client_send(c, 12, BULLETIN__REQUEST__BODY_LIST, 0, 0);
    uint64_t rid = 0;
    assert_true(s_worker_recv(w2, 1000, &rid, NULL) != 0);
    assert_int_equal(rid, 12);
}

static void test_min_seq_routing(void **state)
{
    fx *f = *state;
    void *c = s_sock(f, ZMQ_DEALER, f->front);
    void *w1 = s_sock(f, ZMQ_DEALER, f->back), *w2 = s_sock(f, ZMQ_DEALER, f->back);
    s_worker_send(w1, BROKER_READY, "w1", 5);
    usleep(20000);
    s_worker_send(w2, BROKER_READY, "w2", 8);
    usleep(20000);
    /* only w2 has seq 8 */
    s_client_send(c, 20, BULLETIN__REQUEST__BODY_GET, 0, 8);
    uint64_t rid = 0, tag;
    tag = s_worker_recv(w2, 1000, &rid, NULL);
    assert_true(tag != 0);
    assert_int_equal(rid, 20);
    s_worker_reply(w2, tag, 8, rid, "w2");
    Bulletin__Reply *r = s_client_recv(c, 1000);
    assert_int_equal(r->status->code, BULLETIN__STATUS_CODE__OK);
    wire_free(r);
    /* nobody has seq 10: it waits until a heartbeat says so */
    s_client_send(c, 21, BULLETIN__REQUEST__BODY_GET, 0, 10);
    assert_int_equal(s_worker_recv(w1, 150, NULL, NULL), 0);
    s_worker_send(w1, BROKER_HEARTBEAT, NULL, 10);
    tag = s_worker_recv(w1, 1000, &rid, NULL);
    assert_true(tag != 0);
    assert_int_equal(rid, 21);
    s_worker_reply(w1, tag, 10, rid, "w1");
    r = s_client_recv(c, 1000);
    assert_string_equal(r->served_by, "w1");
    wire_free(r);
    /* nobody reaches 50 within the deadline (keep both alive meanwhile) */
    s_client_send(c, 22, BULLETIN__REQUEST__BODY_LIST, 300, 50);
    r = NULL;
    for (int i = 0; i < 30 && !r; i++) {
        s_worker_send(w1, BROKER_HEARTBEAT, NULL, 10);
        s_worker_send(w2, BROKER_HEARTBEAT, NULL, 8);
        r = s_client_recv(c, 40);
    }
    assert_non_null(r);
    assert_int_equal(r->request_id, 22);
    assert_int_equal(r->status->code, BULLETIN__STATUS_CODE__DEADLINE_EXCEEDED);
    assert_non_null(strstr(r->status->message, "50"));
    wire_free(r);
}

static void test_dead_worker_retried(void **state)
{
    fx *f = *state;
    void *c = s_sock(f, ZMQ_DEALER, f->front);
    void *w1 = s_sock(f, ZMQ_DEALER, f->back);
    s_worker_send(w1, BROKER_READY, "w1", 0);
    usleep(20000);
    s_client_send(c, 30, BULLETIN__REQUEST__BODY_LIST, 0, 0);
    uint64_t rid;
    assert_true(s_worker_recv(w1, 1000, &rid, NULL) != 0);
    /* w1 goes silent; w2 arrives and keeps beating */
    void *w2 = s_sock(f, ZMQ_DEALER, f->back);
    s_worker_send(w2, BROKER_READY, "w2", 0);
    uint64_t tag = 0;
    for (int i = 0; i < 40 && !tag; i++) {
        s_worker_send(w2, BROKER_HEARTBEAT, NULL, 0);
        tag = s_worker_recv(w2, 25, &rid, NULL);
    }
    assert_true(tag != 0);
    assert_int_equal(rid, 30);
    s_worker_reply(w2, tag, 0, rid, "w2");
    Bulletin__Reply *r = s_client_recv(c, 1000);
    assert_non_null(r);
    assert_int_equal(r->request_id, 30);
    assert_int_equal(r->status->code, BULLETIN__STATUS_CODE__OK);
    wire_free(r);
    /* the dropped worker speaks again: it is told to register anew */
    bool disc = false;
    s_worker_send(w1, BROKER_HEARTBEAT, NULL, 0);
    s_worker_recv(w1, 1000, NULL, &disc);
    assert_true(disc);
    /* stats count the retry and the drop */
    s_client_send(c, 31, BULLETIN__REQUEST__BODY_STATS, 0, 0);
    r = s_client_recv(c, 1000);
    assert_non_null(r);
    assert_int_equal(r->body_case, BULLETIN__REPLY__BODY_STATS);
    double retries = -1, dropped = -1;
    for (size_t i = 0; i < r->stats->n_metrics; i++) {
        if (!strcmp(r->stats->metrics[i]->name, "retries"))
            retries = r->stats->metrics[i]->value;
        if (!strcmp(r->stats->metrics[i]->name, "dropped_workers"))
            dropped = r->stats->metrics[i]->value;
    }
    assert_true(retries == 1.0);
    assert_true(dropped >= 1.0);
    wire_free(r);
}

static void test_in_flight_deadline_and_late_reply(void **state)
{
    fx *f = *state;
    void *c = s_sock(f, ZMQ_DEALER, f->front);
    void *w1 = s_sock(f, ZMQ_DEALER, f->back);
    s_worker_send(w1, BROKER_READY, "w1", 0);
    usleep(20000);
    s_client_send(c, 40, BULLETIN__REQUEST__BODY_LIST, 150, 0);
    uint64_t rid, tag = s_worker_recv(w1, 1000, &rid, NULL);
    assert_true(tag != 0);
    Bulletin__Reply *r = NULL;
    for (int i = 0; i < 20 && !r; i++) {
        s_worker_send(w1, BROKER_HEARTBEAT, NULL, 0);
        r = s_client_recv(c, 30);
    }
    assert_non_null(r);
    assert_int_equal(r->status->code, BULLETIN__STATUS_CODE__DEADLINE_EXCEEDED);
    wire_free(r);
    /* the late reply is dropped, and the worker is usable again */
    s_worker_reply(w1, tag, 0, rid, "w1");
    assert_null(s_client_recv(c, 100));
    s_client_send(c, 41, BULLETIN__REQUEST__BODY_LIST, 0, 0);
    tag = s_worker_recv(w1, 1000, &rid, NULL);
    assert_true(tag != 0);
    s_worker_reply(w1, tag, 0, rid, "w1");
    r = s_client_recv(c, 1000);
    assert_non_null(r);
    assert_int_equal(r->request_id, 41);
    wire_free(r);
}

/* READY with a credit frame; with a flags frame when flags != 0 or max
 * (the max_msg frame, max_len bytes) is given. */
static void s_ready_full(void *w, const char *name, uint32_t credit, uint32_t flags, const void *max,
                         size_t max_len)
{
    uint8_t cmd = BROKER_READY, seq[8] = {0}, c[4], fl[4];
    for (int i = 0; i < 4; i++) {
        c[i] = (uint8_t)(credit >> (24 - 8 * i));
        fl[i] = (uint8_t)(flags >> (24 - 8 * i));
    }
    zmq_send(w, "", 0, ZMQ_SNDMORE);
    zmq_send(w, &cmd, 1, ZMQ_SNDMORE);
    zmq_send(w, name, strlen(name), ZMQ_SNDMORE);
    zmq_send(w, seq, 8, ZMQ_SNDMORE);
    zmq_send(w, c, 4, flags || max ? ZMQ_SNDMORE : 0);
    if (flags || max)
        zmq_send(w, fl, 4, max ? ZMQ_SNDMORE : 0);
    if (max)
        zmq_send(w, max, max_len, 0);
}

static void s_ready_flags(void *w, const char *name, uint32_t credit, uint32_t flags)
{
    s_ready_full(w, name, credit, flags, NULL, 0);
}

/* READY of a batch worker whose socket takes Request frames of at most max_msg bytes. */
static void s_ready_max(void *w, const char *name, uint32_t credit, uint64_t max_msg)
{
    uint8_t m[8];
    replica_put_u64(m, max_msg);
    s_ready_full(w, name, credit, BROKER_FLAG_BATCH, m, 8);
}

static void s_ready_credit(void *w, const char *name, uint32_t credit) { s_ready_flags(w, name, credit, 0); }

static void test_credit(void **state)
{
    fx *f = *state;
    void *c = s_sock(f, ZMQ_DEALER, f->front);
    void *w1 = s_sock(f, ZMQ_DEALER, f->back);
    s_ready_credit(w1, "w1", 3);
    usleep(20000);
    for (int i = 0; i < 4; i++)
        s_client_send(c, 60 + (uint64_t)i, BULLETIN__REQUEST__BODY_LIST, 0, 0);
    uint64_t tags[3], rid;
    for (int i = 0; i < 3; i++) {
        tags[i] = s_worker_recv(w1, 1000, &rid, NULL);
        assert_true(tags[i] != 0);
        assert_int_equal(rid, 60 + (uint64_t)i);
    }
    /* the fourth waits for a free slot */
    assert_int_equal(s_worker_recv(w1, 150, NULL, NULL), 0);
    s_worker_reply(w1, tags[1], 0, 61, "w1");
    uint64_t t4 = s_worker_recv(w1, 1000, &rid, NULL);
    assert_true(t4 != 0);
    assert_int_equal(rid, 63);
    /* an idle worker is preferred to one with room left */
    void *w2 = s_sock(f, ZMQ_DEALER, f->back);
    s_ready_credit(w2, "w2", 3);
    usleep(20000);
    s_worker_reply(w1, tags[0], 0, 60, "w1");
    usleep(20000);
    s_client_send(c, 70, BULLETIN__REQUEST__BODY_LIST, 0, 0);
    assert_true(s_worker_recv(w2, 1000, &rid, NULL) != 0);
    assert_int_equal(rid, 70);
    /* replies come back in the order the worker sends them */
    s_worker_reply(w1, tags[2], 0, 62, "w1");
    s_worker_reply(w1, t4, 0, 63, "w1");
    uint64_t got[4] = {0};
    for (int i = 0; i < 4; i++) {
        Bulletin__Reply *r = s_client_recv(c, 1000);
        assert_non_null(r);
        got[i] = r->request_id;
        wire_free(r);
    }
    assert_int_equal(got[0], 61);
    assert_int_equal(got[1], 60);
    assert_int_equal(got[2], 62);
    assert_int_equal(got[3], 63);
}

static void s_ready_batch(void *w, const char *name, uint32_t credit)
{
    s_ready_flags(w, name, credit, BROKER_FLAG_BATCH);
}

/* Receive one message on a batch worker (heartbeats skipped, beating back
 * every 25 ms): it must be REQUESTS; its tags and request ids are appended
 * at *n (up to cap). Returns the number of requests in it (0 = none came). */
static int s_worker_recv_batch(void *w, int ms, uint64_t *tags, uint64_t *rids, int *n, int cap)
{
    int64_t end = clock_mono_ms() + ms;
    while (clock_mono_ms() < end) {
        s_worker_send(w, BROKER_HEARTBEAT, NULL, 0);
        if (!s_wait(w, 25))
            continue;
        zmq_msg_t f[BROKER_FRAMES_MAX];
        int nf = 0;
        for (;;) {
            zmq_msg_init(&f[nf]);
            assert_true(zmq_msg_recv(&f[nf], w, 0) >= 0);
            int more = zmq_msg_more(&f[nf]);
            nf++;
            if (!more)
                break;
            assert_true(nf < BROKER_FRAMES_MAX);
        }
        uint8_t cmd = *(uint8_t *)zmq_msg_data(&f[1]);
        int got = 0;
        if (cmd != BROKER_HEARTBEAT) {
            assert_int_equal(cmd, BROKER_REQUESTS);
            assert_true(nf >= 4 && nf % 2 == 0);
            for (int i = 2; i < nf; i += 2) {
                assert_int_equal(zmq_msg_size(&f[i]), 8);
                broker_envelope env;
                assert_int_equal(broker_envelope_scan(zmq_msg_data(&f[i + 1]), zmq_msg_size(&f[i + 1]), &env), 0);
                assert_true(*n < cap);
                tags[*n] = replica_get_u64(zmq_msg_data(&f[i]));
                rids[(*n)++] = env.request_id;
                got++;
            }
        }
        for (int i = 0; i < nf; i++)
            zmq_msg_close(&f[i]);
        if (got)
            return got;
    }
    return 0;
}

/* REPLIES with the n (tag, request id) pairs, in that order. */
static void s_worker_replies(void *w, const uint64_t *tags, const uint64_t *rids, int n, const char *name)
{
    uint8_t cmd = BROKER_REPLIES, s[8];
    replica_put_u64(s, 0);
    zmq_send(w, "", 0, ZMQ_SNDMORE);
    zmq_send(w, &cmd, 1, ZMQ_SNDMORE);
    zmq_send(w, s, 8, ZMQ_SNDMORE);
    for (int i = 0; i < n; i++) {
        Bulletin__Reply rep;
        Bulletin__Status st;
        wire_reply_init(&rep, &st, rids[i]);
        rep.served_by = (char *)name;
        zmq_msg_t m;
        assert_int_equal(wire_pack_zmq(&rep.base, &m), 0);
        uint8_t t[8];
        replica_put_u64(t, tags[i]);
        zmq_send(w, t, 8, ZMQ_SNDMORE);
        assert_true(zmq_msg_send(&m, w, i + 1 < n ? ZMQ_SNDMORE : 0) >= 0);
    }
}

static double s_metric(const Bulletin__Reply *r, const char *name)
{
    for (size_t i = 0; i < r->stats->n_metrics; i++)
        if (!strcmp(r->stats->metrics[i]->name, name))
            return r->stats->metrics[i]->value;
    return -1;
}

/* Requests queued while no worker is there go to a batch worker in ONE
 * REQUESTS message; when that worker dies with the whole batch in flight,
 * every request of it is retried once at another worker, and one REPLIES
 * answers them all (an unknown tag in it is ignored). */
static void test_batch_lost_worker_retried(void **state)
{
    fx *f = *state;
    void *c = s_sock(f, ZMQ_DEALER, f->front);
    for (int i = 0; i < 4; i++)
        s_client_send(c, 80 + (uint64_t)i, BULLETIN__REQUEST__BODY_LIST, 0, 0);
    usleep(30000); /* all four wait in the broker's queue */
    void *w1 = s_sock(f, ZMQ_DEALER, f->back);
    s_ready_batch(w1, "w1", 4);
    uint64_t tags[8], rids[8];
    int n = 0;
    assert_int_equal(s_worker_recv_batch(w1, 1000, tags, rids, &n, 8), 4); /* one message */
    for (int i = 0; i < 4; i++)
        assert_int_equal(rids[i], 80 + (uint64_t)i);
    /* w1 dies silently with the batch; w2 (batch, credit 4) gets all four */
    s_close(f, w1);
    void *w2 = s_sock(f, ZMQ_DEALER, f->back);
    s_ready_batch(w2, "w2", 4);
    n = 0;
    while (n < 4 && s_worker_recv_batch(w2, 1500, tags, rids, &n, 8) > 0)
        ;
    assert_int_equal(n, 4);
    bool seen[4] = {false};
    for (int i = 0; i < 4; i++) {
        assert_true(rids[i] >= 80 && rids[i] < 84);
        seen[rids[i] - 80] = true;
    }
    for (int i = 0; i < 4; i++)
        assert_true(seen[i]);
    /* answered in reverse order, with a stray tag in the middle */
    uint64_t rt[5] = {tags[3], tags[2], 999999, tags[1], tags[0]};
    uint64_t rr[5] = {rids[3], rids[2], 12345, rids[1], rids[0]};
    s_worker_replies(w2, rt, rr, 5, "w2");
    for (int i = 0; i < 4; i++) {
        Bulletin__Reply *r = s_client_recv(c, 1000);
        assert_non_null(r);
        assert_int_equal(r->request_id, rr[i < 2 ? i : i + 1]);
        assert_int_equal(r->status->code, BULLETIN__STATUS_CODE__OK);
        assert_string_equal(r->served_by, "w2");
        wire_free(r);
    }
    assert_null(s_client_recv(c, 50));
    /* counted: four retries, and the batches as messages */
    s_client_send(c, 90, BULLETIN__REQUEST__BODY_STATS, 0, 0);
    Bulletin__Reply *r = s_client_recv(c, 1000);
    assert_non_null(r);
    assert_true(s_metric(r, "retries") == 4.0);
    assert_true(s_metric(r, "replies") == 4.0);
    assert_true(s_metric(r, "reply_messages") == 1.0);
    assert_true(s_metric(r, "request_messages") >= 2.0 && s_metric(r, "request_messages") <= 5.0);
    wire_free(r);
}

/* A REPLIES that breaks the format (odd frame count) is refused whole;
 * the worker's slots stay taken, so the requests end by their deadline. */
static void test_batch_bad_replies(void **state)
{
    fx *f = *state;
    void *c = s_sock(f, ZMQ_DEALER, f->front);
    void *w1 = s_sock(f, ZMQ_DEALER, f->back);
    s_ready_batch(w1, "w1", 2);
    usleep(20000);
    s_client_send(c, 95, BULLETIN__REQUEST__BODY_LIST, 200, 0);
    uint64_t tags[2], rids[2];
    int n = 0;
    assert_int_equal(s_worker_recv_batch(w1, 1000, tags, rids, &n, 2), 1);
    uint8_t cmd = BROKER_REPLIES, s8[8] = {0}, t[8];
    replica_put_u64(t, tags[0]);
    zmq_send(w1, "", 0, ZMQ_SNDMORE);
    zmq_send(w1, &cmd, 1, ZMQ_SNDMORE);
    zmq_send(w1, s8, 8, ZMQ_SNDMORE);
    zmq_send(w1, t, 8, 0); /* a tag without its Reply */
    Bulletin__Reply *r = NULL;
    for (int i = 0; i < 40 && !r; i++) {
        s_worker_send(w1, BROKER_HEARTBEAT, NULL, 0);
        r = s_client_recv(c, 25);
    }
    assert_non_null(r);
    assert_int_equal(r->request_id, 95);
    assert_int_equal(r->status->code, BULLETIN__STATUS_CODE__DEADLINE_EXCEEDED);
    wire_free(r);
}

/* Send a Search whose Request frame is exactly `size` bytes (>= 16). */
static void s_client_send_sized(void *c, uint64_t rid, size_t size, uint32_t deadline_ms)
{
    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    Bulletin__SearchRequest sr = BULLETIN__SEARCH_REQUEST__INIT;
    req.version_major = 1;
    req.request_id = rid;
    req.deadline_ms = deadline_ms;
    req.body_case = BULLETIN__REQUEST__BODY_SEARCH;
    req.search = &sr;
    char *q = malloc(size + 1);
    assert_non_null(q);
    size_t qlen = size;
    for (;;) { /* the varint lengths shrink with the query: walk down to the size */
        memset(q, 'q', qlen);
        q[qlen] = '\0';
        sr.query = q;
        size_t packed = bulletin__request__get_packed_size(&req);
        if (packed <= size) {
            assert_int_equal(packed, size);
            break;
        }
        /* one byte less of query is one to three less in all (the two
         * length varints): step by the excess less 4, then by one */
        qlen -= packed - size > 4 ? packed - size - 4 : 1;
    }
    zmq_msg_t m;
    assert_int_equal(wire_pack_zmq(&req.base, &m), 0);
    assert_int_equal(zmq_msg_size(&m), size);
    free(q);
    assert_int_equal(zmq_send(c, "", 0, ZMQ_SNDMORE), 0);
    assert_true(zmq_msg_send(&m, c, 0) >= 0);
}

static double s_stat(void *c, const char *name)
{
    s_client_send(c, 999, BULLETIN__REQUEST__BODY_STATS, 0, 0);
    Bulletin__Reply *r = s_client_recv(c, 1000);
    assert_non_null(r);
    assert_int_equal(r->request_id, 999);
    double v = s_metric(r, name);
    wire_free(r);
    return v;
}

/* A worker says in READY how large a Request it accepts: the broker never
 * sends it a larger one (libzmq would drop the worker's connection), gives
 * such a request to a worker that takes it (an old one that said nothing
 * takes any size), and answers RESOURCE_EXHAUSTED at once when no
 * registered worker takes it. */
static void test_worker_max_msg(void **state)
{
    fx *f = *state;
    void *c = s_sock(f, ZMQ_DEALER, f->front);
    void *w1 = s_sock(f, ZMQ_DEALER, f->back);
    s_ready_max(w1, "w1", 4, 300);
    usleep(20000);
    uint64_t tags[4], rids[4];
    int n = 0;
    /* one byte over: refused at once, with the limit in the sentence */
    s_client_send_sized(c, 100, 301, 0);
    Bulletin__Reply *r = s_client_recv(c, 1000);
    assert_non_null(r);
    assert_int_equal(r->request_id, 100);
    assert_int_equal(r->status->code, BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED);
    assert_non_null(strstr(r->status->message, "301 bytes"));
    assert_non_null(strstr(r->status->message, "at most 300 bytes"));
    wire_free(r);
    /* exactly the limit: served by w1 */
    s_client_send_sized(c, 101, 300, 0);
    assert_int_equal(s_worker_recv_batch(w1, 1000, tags, rids, &n, 4), 1);
    assert_int_equal(rids[0], 101);
    s_worker_replies(w1, tags, rids, 1, "w1");
    r = s_client_recv(c, 1000);
    assert_non_null(r);
    assert_int_equal(r->request_id, 101);
    assert_int_equal(r->status->code, BULLETIN__STATUS_CODE__OK);
    wire_free(r);
    /* an old worker (no max_msg frame) takes any size: the large request
     * goes to it although w1 is idle and first in line */
    void *w2 = s_sock(f, ZMQ_DEALER, f->back);
    s_worker_send(w2, BROKER_READY, "w2", 0);
    usleep(20000);
    s_client_send_sized(c, 102, 5000, 0);
    uint64_t rid = 0, tag = 0;
    for (int i = 0; i < 40 && !tag; i++) {
        s_worker_send(w1, BROKER_HEARTBEAT, NULL, 0);
        s_worker_send(w2, BROKER_HEARTBEAT, NULL, 0);
        tag = s_worker_recv(w2, 25, &rid, NULL);
    }
    assert_true(tag != 0);
    assert_int_equal(rid, 102);
    s_worker_reply(w2, tag, 0, rid, "w2");
    r = s_client_recv(c, 1000);
    assert_non_null(r);
    assert_string_equal(r->served_by, "w2");
    wire_free(r);
    n = 0;
    assert_int_equal(s_worker_recv_batch(w1, 100, tags, rids, &n, 4), 0);
    /* a READY whose max_msg frame is not 8 bytes is refused */
    void *w3 = s_sock(f, ZMQ_DEALER, f->back);
    s_ready_full(w3, "w3", 1, BROKER_FLAG_BATCH, "\0\0\1\0", 4);
    usleep(20000);
    assert_true(s_stat(c, "workers") == 2.0);
    /* w2 leaves: the large request is refused again, the rejection counted */
    s_worker_send(w2, BROKER_DISCONNECT, NULL, 0);
    usleep(20000);
    double rejected = s_stat(c, "rejected");
    s_client_send_sized(c, 103, 5000, 0);
    r = s_client_recv(c, 1000);
    assert_non_null(r);
    assert_int_equal(r->request_id, 103);
    assert_int_equal(r->status->code, BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED);
    wire_free(r);
    assert_true(s_stat(c, "rejected") == rejected + 1);
}

/* A large request that came while no worker was registered waits; when the
 * workers that registered meanwhile all take less, its deadline answers
 * RESOURCE_EXHAUSTED (not "no worker answered"). */
static void test_worker_max_msg_waiting(void **state)
{
    fx *f = *state;
    void *c = s_sock(f, ZMQ_DEALER, f->front);
    s_client_send_sized(c, 110, 2000, 300);
    usleep(20000);
    void *w1 = s_sock(f, ZMQ_DEALER, f->back);
    s_ready_max(w1, "w1", 4, 1000);
    uint64_t tags[4], rids[4];
    int n = 0;
    Bulletin__Reply *r = NULL;
    for (int i = 0; i < 80 && !r; i++) {
        assert_int_equal(s_worker_recv_batch(w1, 25, tags, rids, &n, 4), 0);
        r = s_client_recv(c, 1);
    }
    assert_non_null(r);
    assert_int_equal(r->request_id, 110);
    assert_int_equal(r->status->code, BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED);
    assert_non_null(strstr(r->status->message, "at most 1000 bytes"));
    wire_free(r);
}

static void test_local_answers_and_bad_input(void **state)
{
    fx *f = *state;
    void *c = s_sock(f, ZMQ_DEALER, f->front);
    s_client_send(c, 50, BULLETIN__REQUEST__BODY_HEALTH, 0, 0);
    Bulletin__Reply *r = s_client_recv(c, 1000);
    assert_non_null(r);
    assert_int_equal(r->request_id, 50);
    assert_int_equal(r->body_case, BULLETIN__REPLY__BODY_HEALTH);
    assert_false(r->health->ok); /* no worker */
    assert_string_equal(r->health->service, "query");
    wire_free(r);
    s_client_send(c, 51, BULLETIN__REQUEST__BODY_INGEST, 0, 0);
    r = s_client_recv(c, 1000);
    assert_int_equal(r->status->code, BULLETIN__STATUS_CODE__UNIMPLEMENTED);
    wire_free(r);
    zmq_send(c, "", 0, ZMQ_SNDMORE);
    zmq_send(c, "\x1b\x00garbage", 9, 0);
    r = s_client_recv(c, 1000);
    assert_int_equal(r->status->code, BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    wire_free(r);
    zmq_send(c, "", 0, ZMQ_SNDMORE);
    zmq_send(c, "", 0, 0);
    r = s_client_recv(c, 1000);
    assert_int_equal(r->status->code, BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    wire_free(r);
    /* newer major version */
    uint8_t v2[] = {0x08, 0x02, 0x18, 0x07, 0x8a, 0x01, 0x00}; /* major 2, id 7, list {} */
    zmq_send(c, "", 0, ZMQ_SNDMORE);
    zmq_send(c, v2, sizeof v2, 0);
    r = s_client_recv(c, 1000);
    assert_int_equal(r->status->code, BULLETIN__STATUS_CODE__FAILED_PRECONDITION);
    assert_int_equal(r->request_id, 7);
    wire_free(r);
    /* a misbehaving worker does not disturb the broker */
    void *w = s_sock(f, ZMQ_DEALER, f->back);
    zmq_send(w, "junk", 4, 0);
    zmq_send(w, "", 0, ZMQ_SNDMORE);
    zmq_send(w, "\x01", 1, 0); /* READY without name and seq */
    s_client_send(c, 52, BULLETIN__REQUEST__BODY_HEALTH, 0, 0);
    r = s_client_recv(c, 1000);
    assert_non_null(r);
    assert_false(r->health->ok);
    wire_free(r);
}

/* --bind and --workers take comma-separated lists: every endpoint answers;
 * an empty entry is refused at start. */
static void test_bind_list(void **state)
{
    fx *f = *state;
    f->cfg.bind = "inproc://list-x,";
    f->cfg.workers = "inproc://list-y";
    assert_int_equal(broker_run(&f->cfg), -1); /* empty second entry */
    f->cfg.bind = "inproc://list-a,inproc://list-b";
    f->cfg.workers = "inproc://list-w1,inproc://list-w2";
    assert_int_equal(s_start(f), 0);
    const char *eps[] = {"inproc://list-a", "inproc://list-b"};
    for (int i = 0; i < 2; i++) {
        void *c = s_sock(f, ZMQ_DEALER, eps[i]);
        s_client_send(c, 60 + (uint64_t)i, BULLETIN__REQUEST__BODY_HEALTH, 0, 0);
        Bulletin__Reply *r = s_client_recv(c, 1000);
        assert_non_null(r);
        assert_int_equal(r->request_id, 60 + (uint64_t)i);
        assert_int_equal(r->body_case, BULLETIN__REPLY__BODY_HEALTH);
        wire_free(r);
    }
}

int main(void)
{
    log_init("query-test");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope_scan),
        cmocka_unit_test_setup_teardown(test_bind_list, setup_stopped, teardown),
        cmocka_unit_test_setup_teardown(test_no_worker_unavailable, setup_long, teardown),
        cmocka_unit_test_setup_teardown(test_forward_and_lru, setup, teardown),
        cmocka_unit_test_setup_teardown(test_min_seq_routing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_worker_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_flight_deadline_and_late_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_credit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_lost_worker_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_bad_replies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_max_msg, setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_max_msg_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_answers_and_bad_input, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
