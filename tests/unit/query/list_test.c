/* list: filters and ordering against a plain model, cursor pagination, totals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "list.h"
#include "query_fixture.h"
#include "wire.h"

#define N_ART 1500
#define MAX_ART 4000

static const char *SITES[] = {"alpha", "beta", "gamma"};
static const char *CATS[] = {"news", "jokes", "bulletins"};
static const char *TAGS[] = {"t0", "t1", "t2", "t3", "t4"};

typedef struct {
    bool live;
    uint64_t id;
    int site, cat, tag1, tag2; /* tag -1 = none */
    int64_t pub;
} m_art;

typedef struct {
    char *dir;
    replica *r;
    m_art arts[MAX_ART];
    size_t n;
    uint64_t seq;
    unsigned rnd;
} fx;

static unsigned s_rand(fx *f)
{
    f->rnd = f->rnd * 1103515245u + 12345u;
    return (f->rnd >> 16) & 0x7fff;
}

static void s_put(fx *f, m_art *a)
{
    fx_change x;
    fx_put(&x, ++f->seq, a->id, SITES[a->site], CATS[a->cat], a->pub,
           a->tag1 >= 0 ? TAGS[a->tag1] : NULL, a->tag2 >= 0 ? TAGS[a->tag2] : NULL);
    assert_int_equal(fx_apply1(f->r, &x), 0);
}

static m_art *s_new_article(fx *f, int64_t pub)
{
    m_art *a = &f->arts[f->n];
    a->live = true;
    a->id = 1000 + f->n;
    a->site = (int)(s_rand(f) % 3);
    a->cat = (int)(s_rand(f) % 3);
    a->tag1 = (int)(s_rand(f) % 6) - 1;
    a->tag2 = (int)(s_rand(f) % 6) - 1;
    a->pub = pub;
    f->n++;
    return a;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    f->dir = fx_tmpdir();
    f->r = replica_new(f->dir, 256 << 20);
    f->rnd = 42;
    if (!f->r)
        return -1;
    for (int i = 0; i < N_ART; i++) {
        /* few distinct times: many ties broken by id; some negative */
        m_art *a = s_new_article(f, ((int64_t)(s_rand(f) % 200) - 20) * 1000);
        s_put(f, a);
    }
    /* some updates and deletes */
    for (int i = 0; i < 100; i++) {
        m_art *a = &f->arts[s_rand(f) % f->n];
        if (!a->live)
            continue;
        if (i % 3 == 0) {
            fx_change x;
            fx_del(&x, ++f->seq, a->id);
            assert_int_equal(fx_apply1(f->r, &x), 0);
            a->live = false;
        } else {
            a->pub = ((int64_t)(s_rand(f) % 200)) * 1000;
            a->site = (a->site + 1) % 3;
            a->tag1 = (int)(s_rand(f) % 6) - 1;
            s_put(f, a);
        }
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    replica_destroy(&f->r);
    fx_rmdir(f->dir);
    free(f);
    return 0;
}

typedef struct {
    int site, cat, tag; /* -1 = any */
    int64_t since, until;
    int order;
} m_query;

static bool s_match(const m_art *a, const m_query *q)
{
    if (!a->live)
        return false;
    if (q->site >= 0 && a->site != q->site)
        return false;
    if (q->cat >= 0 && a->cat != q->cat)
        return false;
    if (q->tag >= 0 && a->tag1 != q->tag && a->tag2 != q->tag)
        return false;
    if (q->since && a->pub < q->since)
        return false;
    if (q->until && a->pub >= q->until)
        return false;
    return true;
}

static int s_order;
static int s_cmp(const void *x, const void *y)
{
    const m_art *a = *(const m_art *const *)x, *b = *(const m_art *const *)y;
    int c = a->pub < b->pub ? -1 : a->pub > b->pub ? 1 : a->id < b->id ? -1 : a->id > b->id ? 1 : 0;
    return s_order ? c : -c;
}

/* The model's answer: matching articles in order. */
static size_t s_model(fx *f, const m_query *q, m_art **out)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n; i++)
        if (s_match(&f->arts[i], q))
            out[n++] = &f->arts[i];
    s_order = q->order;
    qsort(out, n, sizeof *out, s_cmp);
    return n;
}

static void s_request(const m_query *q, Bulletin__ListRequest *req, Bulletin__Filter *flt)
{
    bulletin__list_request__init(req);
    bulletin__filter__init(flt);
    flt->site = q->site >= 0 ? (char *)SITES[q->site] : "";
    flt->category = q->cat >= 0 ? (char *)CATS[q->cat] : "";
    flt->tag = q->tag >= 0 ? (char *)TAGS[q->tag] : "";
    flt->since = q->since;
    flt->until = q->until;
    req->filter = flt;
    req->order = q->order ? BULLETIN__ORDER__OLDEST_FIRST : BULLETIN__ORDER__NEWEST_FIRST;
}

/* The page as a client gets it: list_reply_pack_zmq after a Reply head, then
 * protobuf-c's own unpack (so the concatenated encoding is checked too).
 * Caller frees with wire_free. */
static Bulletin__Reply *s_decode(const list_result *res)
{
    Bulletin__Reply head;
    Bulletin__Status st;
    wire_reply_init(&head, &st, 4242);
    head.served_by = "w-test";
    head.applied_seq = 99;
    zmq_msg_t m;
    assert_int_equal(list_reply_pack_zmq(&head, res, &m), 0);
    Bulletin__Reply *r = bulletin__reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
    zmq_msg_close(&m);
    assert_non_null(r);
    assert_int_equal(r->request_id, 4242);
    assert_string_equal(r->served_by, "w-test");
    assert_int_equal(r->applied_seq, 99);
    assert_non_null(r->status);
    assert_int_equal(r->status->code, BULLETIN__STATUS_CODE__OK);
    assert_int_equal(r->body_case, BULLETIN__REPLY__BODY_LIST);
    assert_int_equal(r->list->n_items, res->n_items);
    assert_int_equal(r->list->has_total, res->reply.has_total);
    assert_int_equal(r->list->total, res->reply.total);
    assert_int_equal(r->list->next_cursor.len, res->reply.next_cursor.len);
    if (res->reply.next_cursor.len)
        assert_memory_equal(r->list->next_cursor.data, res->reply.next_cursor.data,
                            res->reply.next_cursor.len);
    return r;
}

/* Page through a query and compare with the model, item by item. */
static void s_check_query(fx *f, const m_query *q, uint32_t limit)
{
    static m_art *model[MAX_ART];
    size_t n = s_model(f, q, model);
    Bulletin__ListRequest req;
    Bulletin__Filter flt;
    s_request(q, &req, &flt);
    req.limit = limit;
    req.with_total = true;
    uint8_t cursor[LIST_CURSOR_LEN];
    size_t got = 0;
    for (int page = 0; page < 10000; page++) {
        list_result res;
        char why[256];
        assert_int_equal(list_run(f->r, &req, &res, why, sizeof why), BULLETIN__STATUS_CODE__OK);
        assert_true(res.reply.has_total);
        assert_int_equal(res.reply.total, n);
        Bulletin__Reply *dec = s_decode(&res);
        for (size_t i = 0; i < dec->list->n_items; i++, got++) {
            assert_true(got < n);
            const Bulletin__ArticleSummary *s = dec->list->items[i];
            assert_int_equal(s->id, model[got]->id);
            assert_int_equal(s->published_at, model[got]->pub);
            assert_string_equal(s->site, SITES[model[got]->site]);
            assert_string_equal(s->category, CATS[model[got]->cat]);
            assert_true(strncmp(s->excerpt, "body of article", 15) == 0);
        }
        wire_free(dec);
        if (res.reply.next_cursor.len == 0) {
            list_result_clear(&res);
            break;
        }
        assert_int_equal(res.n_items, limit);
        memcpy(cursor, res.reply.next_cursor.data, LIST_CURSOR_LEN);
        req.cursor.data = cursor;
        req.cursor.len = LIST_CURSOR_LEN;
        list_result_clear(&res);
    }
    assert_int_equal(got, n);
}

static void test_filters_and_order_vs_model(void **state)
{
    fx *f = *state;
    m_query all = {-1, -1, -1, 0, 0, 0};
    s_check_query(f, &all, 100);
    all.order = 1;
    s_check_query(f, &all, 7);
    for (int i = 0; i < 60; i++) {
        m_query q;
        q.site = (int)(s_rand(f) % 4) - 1;
        q.cat = (int)(s_rand(f) % 4) - 1;
        q.tag = (int)(s_rand(f) % 6) - 1;
        q.since = s_rand(f) % 3 ? 0 : ((int64_t)(s_rand(f) % 220) - 30) * 1000;
        q.until = s_rand(f) % 3 ? 0 : ((int64_t)(s_rand(f) % 220) - 30) * 1000;
        q.order = (int)(s_rand(f) % 2);
        s_check_query(f, &q, 1 + s_rand(f) % 60);
    }
    /* a value nobody has */
    Bulletin__ListRequest req;
    Bulletin__Filter flt;
    m_query q = {-1, -1, -1, 0, 0, 0};
    s_request(&q, &req, &flt);
    flt.site = "nobody";
    req.with_total = true;
    list_result res;
    char why[256];
    assert_int_equal(list_run(f->r, &req, &res, why, sizeof why), BULLETIN__STATUS_CODE__OK);
    assert_int_equal(res.n_items, 0);
    assert_int_equal(res.reply.total, 0);
    wire_free(s_decode(&res));
    assert_int_equal(res.reply.next_cursor.len, 0);
    list_result_clear(&res);
}

static void test_limits_and_bad_cursors(void **state)
{
    fx *f = *state;
    Bulletin__ListRequest req;
    Bulletin__Filter flt;
    m_query q = {-1, -1, -1, 0, 0, 0};
    s_request(&q, &req, &flt);
    list_result res;
    char why[256];
    assert_int_equal(list_run(f->r, &req, &res, why, sizeof why), BULLETIN__STATUS_CODE__OK);
    assert_int_equal(res.n_items, LIST_DEFAULT_LIMIT);
    assert_false(res.reply.has_total);
    uint8_t cursor[LIST_CURSOR_LEN];
    memcpy(cursor, res.reply.next_cursor.data, LIST_CURSOR_LEN);
    list_result_clear(&res);

    req.limit = 1001;
    assert_int_equal(list_run(f->r, &req, &res, why, sizeof why), BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    list_result_clear(&res);
    req.limit = 1000;
    assert_int_equal(list_run(f->r, &req, &res, why, sizeof why), BULLETIN__STATUS_CODE__OK);
    assert_int_equal(res.n_items, 1000);
    wire_free(s_decode(&res));
    list_result_clear(&res);

    /* the cursor belongs to (no filter, newest first) */
    req.cursor.data = cursor;
    req.cursor.len = LIST_CURSOR_LEN;
    assert_int_equal(list_run(f->r, &req, &res, why, sizeof why), BULLETIN__STATUS_CODE__OK);
    list_result_clear(&res);
    req.order = BULLETIN__ORDER__OLDEST_FIRST;
    assert_int_equal(list_run(f->r, &req, &res, why, sizeof why), BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    list_result_clear(&res);
    req.order = BULLETIN__ORDER__NEWEST_FIRST;
    flt.site = "alpha";
    assert_int_equal(list_run(f->r, &req, &res, why, sizeof why), BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    list_result_clear(&res);
    flt.site = "";
    req.cursor.len = 5;
    assert_int_equal(list_run(f->r, &req, &res, why, sizeof why), BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    list_result_clear(&res);
    req.cursor.len = LIST_CURSOR_LEN;
    req.order = (Bulletin__Order)7;
    assert_int_equal(list_run(f->r, &req, &res, why, sizeof why), BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    list_result_clear(&res);
}

/* Writes between pages: every article that existed at the start and was not
 * touched is returned exactly once, in order. */
static void test_pagination_with_inserts(void **state)
{
    fx *f = *state;
    for (int order = 0; order < 2; order++) {
        size_t n0 = f->n;
        static int seen[MAX_ART];
        memset(seen, 0, sizeof seen);
        Bulletin__ListRequest req;
        Bulletin__Filter flt;
        m_query q = {-1, -1, -1, 0, 0, order};
        s_request(&q, &req, &flt);
        req.limit = 37;
        uint8_t cursor[LIST_CURSOR_LEN];
        int64_t last_pub = order ? INT64_MIN : INT64_MAX;
        uint64_t last_id = order ? 0 : UINT64_MAX;
        for (;;) {
            list_result res;
            char why[256];
            assert_int_equal(list_run(f->r, &req, &res, why, sizeof why), BULLETIN__STATUS_CODE__OK);
            Bulletin__Reply *dec = s_decode(&res);
            for (size_t i = 0; i < dec->list->n_items; i++) {
                const Bulletin__ArticleSummary *s = dec->list->items[i];
                /* strictly monotonic in (pub, id) */
                if (order)
                    assert_true(s->published_at > last_pub || (s->published_at == last_pub && s->id > last_id));
                else
                    assert_true(s->published_at < last_pub || (s->published_at == last_pub && s->id < last_id));
                last_pub = s->published_at;
                last_id = s->id;
                assert_true(s->id >= 1000 && s->id < 1000 + MAX_ART);
                seen[s->id - 1000]++;
            }
            wire_free(dec);
            bool more = res.reply.next_cursor.len > 0;
            if (more)
                memcpy(cursor, res.reply.next_cursor.data, LIST_CURSOR_LEN);
            list_result_clear(&res);
            if (!more)
                break;
            req.cursor.data = cursor;
            req.cursor.len = LIST_CURSOR_LEN;
            /* insert a few articles anywhere in time, including right at the cursor's time */
            for (int k = 0; k < 3 && f->n < MAX_ART; k++) {
                m_art *a = s_new_article(f, k == 0 ? last_pub : ((int64_t)(s_rand(f) % 200) - 20) * 1000);
                s_put(f, a);
            }
        }
        for (size_t i = 0; i < n0; i++)
            if (f->arts[i].live)
                assert_int_equal(seen[i], 1);
            else
                assert_int_equal(seen[i], 0);
        for (size_t i = n0; i < f->n; i++)
            assert_true(seen[i] <= 1);
    }
}

static void test_cursor_codec(void **state)
{
    (void)state;
    uint8_t c[LIST_CURSOR_LEN];
    Bulletin__Filter flt = BULLETIN__FILTER__INIT;
    flt.site = "x";
    uint64_t h = list_filter_hash(&flt);
    assert_true(h != list_filter_hash(NULL));
    flt.site = "";
    assert_int_equal(list_filter_hash(&flt), list_filter_hash(NULL));
    list_cursor_encode(c, 1, h, -5, 77);
    int64_t pub;
    uint64_t id;
    assert_int_equal(list_cursor_decode(c, sizeof c, 1, h, &pub, &id), 0);
    assert_int_equal(pub, -5);
    assert_int_equal(id, 77);
    assert_int_equal(list_cursor_decode(c, sizeof c, 0, h, &pub, &id), -1);
    assert_int_equal(list_cursor_decode(c, sizeof c, 1, h + 1, &pub, &id), -1);
    c[0] = 9;
    assert_int_equal(list_cursor_decode(c, sizeof c, 1, h, &pub, &id), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cursor_codec),
        cmocka_unit_test_setup_teardown(test_filters_and_order_vs_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits_and_bad_cursors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pagination_with_inserts, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
