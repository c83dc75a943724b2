/* replica: apply order, duplicates, gaps, deletes, updates, persistence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include "lmdb_equal.h"

#include "query_fixture.h"
#include "wire.h"

typedef struct {
    char *dir;
    replica *r;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    f->dir = fx_tmpdir();
    f->r = replica_new(f->dir, 64 << 20);
    if (!f->r)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    replica_destroy(&f->r);
    replica_destroy(&f->r); /* safe twice */
    fx_rmdir(f->dir);
    free(f);
    return 0;
}

static uint64_t s_entries(replica *r, MDB_dbi dbi)
{
    MDB_txn *txn = replica_read_begin(r);
    MDB_stat st;
    assert_int_equal(mdb_stat(txn, dbi, &st), 0);
    replica_read_end(r);
    return st.ms_entries;
}

static uint64_t s_count_of(replica *r, replica_kind kind, const char *value)
{
    const replica_dbs *d = replica_dbs_get(r);
    uint8_t kb[1 + REPLICA_HASH_LEN];
    kb[0] = (uint8_t)kind;
    replica_hash(value, strlen(value), kb + 1);
    MDB_val k = {sizeof kb, kb}, v;
    MDB_txn *txn = replica_read_begin(r);
    uint64_t n = mdb_get(txn, d->counts, &k, &v) == 0 ? replica_get_u64(v.mv_data) : 0;
    replica_read_end(r);
    return n;
}

static void test_apply_in_order_and_get(void **state)
{
    fx *f = *state;
    fx_change x[3];
    fx_put(&x[0], 1, 10, "s1", "news", 1000, "a", NULL);
    fx_put(&x[1], 2, 11, "s1", "jokes", 2000, "a", "b");
    fx_put(&x[2], 3, 12, "s2", "news", 3000, NULL, NULL);
    Bulletin__Internal__Change *p[3] = {&x[0].c, &x[1].c, &x[2].c};
    assert_int_equal(replica_apply(f->r, p, 3, 0), 0);
    assert_int_equal(replica_applied_seq(f->r), 3);
    assert_int_equal(replica_count(f->r), 3);

    Bulletin__Article *a = NULL;
    assert_int_equal(replica_get(f->r, 11, NULL, &a), BULLETIN__STATUS_CODE__OK);
    assert_string_equal(a->title, "title 11");
    assert_int_equal(a->n_tags, 2);
    assert_int_equal(a->seq, 2);
    wire_free(a);
    assert_int_equal(replica_get(f->r, 0, "https://example.org/12", &a), BULLETIN__STATUS_CODE__OK);
    assert_int_equal(a->id, 12);
    wire_free(a);
    assert_int_equal(replica_get(f->r, 99, NULL, &a), BULLETIN__STATUS_CODE__NOT_FOUND);
    assert_null(a);
    assert_int_equal(replica_get(f->r, 0, "nope", &a), BULLETIN__STATUS_CODE__NOT_FOUND);
    assert_int_equal(s_count_of(f->r, REPLICA_SITE, "s1"), 2);
    assert_int_equal(s_count_of(f->r, REPLICA_TAG, "a"), 2);
    assert_int_equal(s_count_of(f->r, REPLICA_TAG, "b"), 1);
    assert_int_equal(s_count_of(f->r, REPLICA_CATEGORY, "news"), 2);
}

static void test_duplicates_skipped(void **state)
{
    fx *f = *state;
    fx_change x[2];
    fx_put(&x[0], 1, 10, "s1", "news", 1000, NULL, NULL);
    fx_put(&x[1], 2, 11, "s1", "news", 1000, NULL, NULL);
    Bulletin__Internal__Change *p[2] = {&x[0].c, &x[1].c};
    assert_int_equal(replica_apply(f->r, p, 2, 0), 0);
    /* an older version of 10 arrives again (seq 1): must not overwrite */
    fx_change old;
    fx_put(&old, 1, 10, "other", "other", 5, NULL, NULL);
    snprintf(old.title, sizeof old.title, "stale");
    assert_int_equal(fx_apply1(f->r, &old), 0);
    assert_int_equal(replica_applied_seq(f->r), 2);
    Bulletin__Article *a = NULL;
    assert_int_equal(replica_get(f->r, 10, NULL, &a), BULLETIN__STATUS_CODE__OK);
    assert_string_equal(a->title, "title 10");
    wire_free(a);
    assert_int_equal(s_count_of(f->r, REPLICA_SITE, "other"), 0);
    assert_int_equal(s_count_of(f->r, REPLICA_SITE, "s1"), 2);
}

static void test_feed_check(void **state)
{
    (void)state;
    /* applied, first, last change, n, last_seq */
    assert_int_equal(replica_feed_check(5, 6, 8, 3, 8), REPLICA_FEED_APPLY);
    assert_int_equal(replica_feed_check(5, 4, 8, 5, 8), REPLICA_FEED_APPLY); /* overlap: dups inside skipped */
    assert_int_equal(replica_feed_check(5, 7, 8, 2, 8), REPLICA_FEED_GAP);   /* missed 6 */
    assert_int_equal(replica_feed_check(5, 3, 5, 3, 5), REPLICA_FEED_SKIP);  /* all duplicates */
    assert_int_equal(replica_feed_check(5, 3, 5, 3, 9), REPLICA_FEED_GAP);   /* dups, but store is ahead */
    assert_int_equal(replica_feed_check(5, 0, 0, 0, 5), REPLICA_FEED_SKIP);  /* heartbeat, up to date */
    assert_int_equal(replica_feed_check(5, 0, 0, 0, 4), REPLICA_FEED_SKIP);  /* heartbeat behind us */
    assert_int_equal(replica_feed_check(5, 0, 0, 0, 6), REPLICA_FEED_GAP);   /* heartbeat shows a miss */
    assert_int_equal(replica_feed_check(0, 1, 1, 1, 1), REPLICA_FEED_APPLY);
}

static void test_delete(void **state)
{
    fx *f = *state;
    fx_change x[2], d;
    fx_put(&x[0], 1, 10, "s1", "news", 1000, "t", NULL);
    fx_put(&x[1], 2, 11, "s1", "news", 2000, "t", NULL);
    Bulletin__Internal__Change *p[2] = {&x[0].c, &x[1].c};
    assert_int_equal(replica_apply(f->r, p, 2, 0), 0);
    fx_del(&d, 3, 10);
    assert_int_equal(fx_apply1(f->r, &d), 0);
    assert_int_equal(replica_applied_seq(f->r), 3);
    Bulletin__Article *a = NULL;
    assert_int_equal(replica_get(f->r, 10, NULL, &a), BULLETIN__STATUS_CODE__NOT_FOUND);
    assert_int_equal(replica_get(f->r, 0, "https://example.org/10", &a), BULLETIN__STATUS_CODE__NOT_FOUND);
    assert_int_equal(replica_count(f->r), 1);
    const replica_dbs *db = replica_dbs_get(f->r);
    assert_int_equal(s_entries(f->r, db->by_site), 1);
    assert_int_equal(s_entries(f->r, db->by_tag), 1);
    assert_int_equal(s_entries(f->r, db->summaries), 1);
    assert_int_equal(s_count_of(f->r, REPLICA_TAG, "t"), 1);
    /* deleting something unknown only advances the seq */
    fx_del(&d, 4, 999);
    assert_int_equal(fx_apply1(f->r, &d), 0);
    assert_int_equal(replica_applied_seq(f->r), 4);
    assert_int_equal(replica_count(f->r), 1);
}

static void test_update_moves_indexes(void **state)
{
    fx *f = *state;
    fx_change x;
    fx_put(&x, 1, 10, "s1", "news", 1000, "t1", NULL);
    assert_int_equal(fx_apply1(f->r, &x), 0);
    fx_put(&x, 2, 10, "s2", "jokes", 5000, "t2", "t2"); /* repeated tag counts once */
    snprintf(x.key, sizeof x.key, "https://example.org/moved");
    assert_int_equal(fx_apply1(f->r, &x), 0);
    const replica_dbs *db = replica_dbs_get(f->r);
    assert_int_equal(s_entries(f->r, db->by_time), 1);
    assert_int_equal(s_entries(f->r, db->by_site), 1);
    assert_int_equal(s_entries(f->r, db->by_tag), 1);
    assert_int_equal(s_count_of(f->r, REPLICA_SITE, "s1"), 0);
    assert_int_equal(s_count_of(f->r, REPLICA_SITE, "s2"), 1);
    assert_int_equal(s_count_of(f->r, REPLICA_TAG, "t2"), 1);
    assert_int_equal(s_count_of(f->r, REPLICA_CATEGORY, "news"), 0);
    /* the by_time key carries the new published_at */
    MDB_txn *txn = replica_read_begin(f->r);
    MDB_cursor *c;
    MDB_val k, v;
    assert_int_equal(mdb_cursor_open(txn, db->by_time, &c), 0);
    assert_int_equal(mdb_cursor_get(c, &k, &v, MDB_FIRST), 0);
    assert_int_equal(replica_get_time(k.mv_data), 5000);
    mdb_cursor_close(c);
    replica_read_end(f->r);
    Bulletin__Article *a = NULL;
    assert_int_equal(replica_get(f->r, 0, "https://example.org/10", &a), BULLETIN__STATUS_CODE__NOT_FOUND);
    assert_int_equal(replica_get(f->r, 0, "https://example.org/moved", &a), BULLETIN__STATUS_CODE__OK);
    assert_string_equal(a->site, "s2");
    wire_free(a);
}

static void test_applied_seq_persisted(void **state)
{
    fx *f = *state;
    fx_change x;
    fx_put(&x, 7, 10, "s1", "news", 1000, NULL, NULL);
    const uint8_t uuid[4] = {1, 2, 3, 4};
    assert_int_equal(replica_set_store_uuid(f->r, uuid, 4), 0);
    assert_int_equal(fx_apply1(f->r, &x), 0);
    /* a finished Sync moves applied to head_seq */
    assert_int_equal(replica_apply(f->r, NULL, 0, 12), 0);
    assert_int_equal(replica_applied_seq(f->r), 12);
    replica_destroy(&f->r);
    f->r = replica_new(f->dir, 64 << 20);
    assert_non_null(f->r);
    assert_int_equal(replica_applied_seq(f->r), 12);
    size_t len;
    const uint8_t *u = replica_store_uuid(f->r, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(u, uuid, 4);
    assert_int_equal(replica_count(f->r), 1);
    /* reset wipes everything */
    const uint8_t other[2] = {9, 9};
    assert_int_equal(replica_reset(f->r, other, 2), 0);
    assert_int_equal(replica_applied_seq(f->r), 0);
    assert_int_equal(replica_count(f->r), 0);
    u = replica_store_uuid(f->r, &len);
    assert_int_equal(len, 2);
    assert_int_equal(s_count_of(f->r, REPLICA_SITE, "s1"), 0);
}

static void test_bad_change_advances(void **state)
{
    fx *f = *state;
    fx_change x;
    fx_put(&x, 1, 10, "s1", "news", 1000, NULL, NULL);
    x.c.article = NULL; /* PUT without an article */
    assert_int_equal(fx_apply1(f->r, &x), 0);
    assert_int_equal(replica_applied_seq(f->r), 1);
    assert_int_equal(replica_count(f->r), 0);
}

static void test_long_key_and_excerpt(void **state)
{
    fx *f = *state;
    fx_change x;
    fx_put(&x, 1, 10, "s1", "news", 1000, NULL, NULL);
    char longkey[2000];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    x.a.key = longkey;
    /* 250 characters of 3-byte UTF-8 ("€") */
    char body[251 * 3 + 1];
    for (int i = 0; i < 251; i++)
        memcpy(body + i * 3, "\xe2\x82\xac", 3);
    body[251 * 3] = '\0';
    x.a.body = body;
    assert_int_equal(fx_apply1(f->r, &x), 0);
    Bulletin__Article *a = NULL;
    assert_int_equal(replica_get(f->r, 0, longkey, &a), BULLETIN__STATUS_CODE__OK);
    assert_int_equal(a->id, 10);
    wire_free(a);
    assert_int_equal(replica_excerpt_len(body, strlen(body), 200), 600);
    assert_int_equal(replica_excerpt_len("ab\xe2\x82", 4, 200), 2); /* cut character */
    assert_int_equal(replica_excerpt_len("abc", 3, 2), 2);
    assert_int_equal(replica_excerpt_len("\xff" "abc", 4, 10), 0);
    /* ASCII runs (8 bytes at a time) next to multi-byte characters and the limits */
    const char *mix = "aaaaaaaaaaaaaaaaaaaa\xc3\xa9" "bbbbbbbbbb";
    assert_int_equal(replica_excerpt_len(mix, strlen(mix), 25), 26);
    assert_int_equal(replica_excerpt_len(mix, strlen(mix), 20), 20);
    assert_int_equal(replica_excerpt_len(mix, strlen(mix), 21), 22);
    assert_int_equal(replica_excerpt_len(mix, strlen(mix), 100), strlen(mix));
    assert_int_equal(replica_excerpt_len("abcdefghijklm", 13, 10), 10);
    assert_int_equal(replica_excerpt_len("abcdefghij\xe2\x82", 12, 50), 10); /* cut character */
    assert_int_equal(replica_excerpt_len("abcdefghij\x80xyz", 14, 50), 10); /* stray continuation */
}

static int s_hook_calls, s_hook_deletes;
static int s_hook(void *ud, MDB_txn *txn, uint64_t id, const Bulletin__Article *old,
                  const Bulletin__Article *new_)
{
    (void)ud, (void)txn, (void)id;
    s_hook_calls++;
    if (!new_ && old)
        s_hook_deletes++;
    return 0;
}

static void test_hook(void **state)
{
    fx *f = *state;
    replica_hook h = {.on_change = s_hook};
    replica_set_hook(f->r, &h);
    fx_change x;
    fx_put(&x, 1, 10, "s1", "news", 1000, NULL, NULL);
    assert_int_equal(fx_apply1(f->r, &x), 0);
    fx_del(&x, 2, 10);
    assert_int_equal(fx_apply1(f->r, &x), 0);
    assert_int_equal(s_hook_calls, 2);
    assert_int_equal(s_hook_deletes, 1);
}

/* The hook calls a replica made, as text: id, old title, new title. */
typedef struct {
    char log[64 * 1024];
    size_t len;
} s_calls;

static int s_record(void *ud, MDB_txn *txn, uint64_t id, const Bulletin__Article *old,
                    const Bulletin__Article *new_)
{
    (void)txn;
    s_calls *c = ud;
    int n = snprintf(c->log + c->len, sizeof c->log - c->len, "%llu:%s>%s:%llu;",
                     (unsigned long long)id, old ? old->title : "-", new_ ? new_->title : "-",
                     new_ ? (unsigned long long)new_->id : 0ull);
    assert_true(n > 0 && (size_t)n < sizeof c->log - c->len);
    c->len += (size_t)n;
    return 0;
}

/* Two fresh replicas for comparing a batch with the same changes applied
 * one per transaction: s_two_open, (hooks on t.ra / t.rb), s_two_apply,
 * the comparisons, s_two_close. */
typedef struct {
    char *da, *db;
    replica *ra, *rb;
} s_two;

static void s_two_open(s_two *t)
{
    t->da = fx_tmpdir();
    t->db = fx_tmpdir();
    t->ra = replica_new(t->da, 64 << 20);
    t->rb = replica_new(t->db, 64 << 20);
    assert_non_null(t->ra);
    assert_non_null(t->rb);
}

/* p[0..n) as one batch into t->ra, one change per txn into t->rb. */
static void s_two_apply(s_two *t, Bulletin__Internal__Change **p, size_t n)
{
    assert_int_equal(replica_apply(t->ra, p, n, 0), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(replica_apply(t->rb, &p[i], 1, 0), 0);
}

static void s_two_close(s_two *t)
{
    replica_destroy(&t->ra);
    replica_destroy(&t->rb);
    fx_rmdir(t->da);
    fx_rmdir(t->db);
}

/* Assert that databases off..off+n-1 of {articles, summaries, keys, by_time,
 * by_site, by_cat, by_tag, counts, meta} are equal in ra and rb; returns
 * the entries compared. */
static size_t s_dbs_equal(replica *ra, replica *rb, size_t off, size_t n)
{
    const replica_dbs *a = replica_dbs_get(ra), *b = replica_dbs_get(rb);
    MDB_dbi dba[] = {a->articles, a->summaries, a->keys, a->by_time, a->by_site,
                     a->by_cat, a->by_tag, a->counts, a->meta};
    MDB_dbi dbb[] = {b->articles, b->summaries, b->keys, b->by_time, b->by_site,
                     b->by_cat, b->by_tag, b->counts, b->meta};
    assert_true(off + n <= sizeof dba / sizeof dba[0]);
    MDB_txn *ta = replica_read_begin(ra), *tb = replica_read_begin(rb);
    size_t total = 0;
    for (size_t i = off; i < off + n; i++)
        total += lmdb_assert_equal(ta, dba[i], tb, dbb[i]);
    replica_read_end(ra);
    replica_read_end(rb);
    return total;
}

/* A batch (by_* entries buffered and written sorted, counts per value, hook
 * calls of new articles deferred to the end of the batch) leaves every
 * database as the same changes applied one per transaction, and makes the
 * same hook calls in the same order with the same old and new versions:
 * new articles out of time order, repeated values and tags, updates and
 * deletes of articles put earlier in the same batch, a duplicate seq, new
 * articles with the same key. */
static void test_batch_same_as_one_by_one(void **state)
{
    (void)state;
    static const char *sites[] = {"s1", "s2", "s3"}, *cats[] = {"news", "jokes"};
    static const char *tags[] = {"a", "b", "c", NULL};
    enum { N = 300 };
    static fx_change x[N];
    Bulletin__Internal__Change *p[N];
    unsigned rng = 7;
    uint64_t seq = 0;
    for (size_t i = 0; i < N; i++) {
        rng = rng * 1103515245u + 12345u;
        unsigned v = rng >> 8;
        uint64_t id = i < 200 ? i + 1 : 1 + v % 220; /* updates of ids put before */
        if (i >= 200 && v % 5 == 0)
            fx_del(&x[i], ++seq, id);
        else
            fx_put(&x[i], ++seq, id, sites[v % 3], cats[(v >> 3) % 2], (int64_t)(v % 50) * 1000,
                   tags[(v >> 5) % 4], tags[(v >> 7) % 4]);
        p[i] = &x[i].c;
    }
    x[250].c.seq = 3; /* already applied: skipped in both */
    s_two t;
    s_two_open(&t);
    replica *ra = t.ra, *rb = t.rb;
    static s_calls ca, cb;
    for (size_t i = 0; i < N; i++) /* titles tell versions apart */
        if (x[i].c.article)
            snprintf(x[i].title, sizeof x[i].title, "t%zu", i);
    replica_hook ha = {.on_change = s_record, .ud = &ca}, hb = {.on_change = s_record, .ud = &cb};
    replica_set_hook(ra, &ha);
    replica_set_hook(rb, &hb);
    s_two_apply(&t, p, N);
    assert_true(ca.len > 1000);
    assert_int_equal(ca.len, cb.len);
    assert_string_equal(ca.log, cb.log);
    assert_non_null(strstr(ca.log, ">-:0;")); /* a delete of an article put in the batch */
    const replica_dbs *a = replica_dbs_get(ra);
    assert_true(s_dbs_equal(ra, rb, 0, 9) > 1000);
    assert_true(s_count_of(ra, REPLICA_TAG, "a") > 0);
    assert_int_equal(s_count_of(ra, REPLICA_SITE, "s1") + s_count_of(ra, REPLICA_SITE, "s2") +
                         s_count_of(ra, REPLICA_SITE, "s3"),
                     s_entries(ra, a->by_time));
    s_two_close(&t);
}

/* A batch of articles with more distinct sites, categories and tags than
 * the batch's memo of value hashes has slots (values that share a slot
 * evict each other, and come back), and new articles sharing keys (the
 * keys are put sorted at the end of the batch): the same databases as the
 * changes applied one per transaction, and every value's count right. */
static void test_batch_many_values(void **state)
{
    (void)state;
    enum { N = 3000, NV = 1500 };
    static fx_change x[N];
    static char sv[NV][32], cv[NV][32], tv[NV][32];
    Bulletin__Internal__Change *p[N];
    for (size_t i = 0; i < NV; i++) {
        snprintf(sv[i], sizeof sv[i], "site-%zu", i);
        snprintf(cv[i], sizeof cv[i], "category/%zu", i * 7);
        snprintf(tv[i], sizeof tv[i], "t%zu", i * 13);
    }
    unsigned rng = 11;
    for (size_t i = 0; i < N; i++) {
        rng = rng * 1103515245u + 12345u;
        unsigned v = rng >> 8;
        fx_put(&x[i], i + 1, i + 1, sv[v % NV], cv[(v >> 4) % NV], (int64_t)(v % 97) * 1000,
               tv[(v >> 2) % NV], NULL);
        p[i] = &x[i].c;
    }
    for (size_t i = 100; i < 160; i++) /* new articles sharing keys: the last put wins */
        snprintf(x[i].key, sizeof x[i].key, "shared-%zu", i % 4);
    s_two t;
    s_two_open(&t);
    replica *ra = t.ra, *rb = t.rb;
    s_two_apply(&t, p, N);
    assert_true(s_dbs_equal(ra, rb, 2, 6) >= 4 * N); /* keys, by_time, by_site, by_cat, by_tag, counts */
    MDB_val k = {8, "shared-0"}, v;
    MDB_txn *txn = replica_read_begin(ra);
    assert_int_equal(mdb_get(txn, replica_dbs_get(ra)->keys, &k, &v), 0);
    assert_int_equal(replica_get_u64(v.mv_data), 157); /* x[156] */
    replica_read_end(ra);
    uint64_t sum = 0;
    for (size_t i = 0; i < NV; i++)
        sum += s_count_of(ra, REPLICA_SITE, sv[i]);
    assert_int_equal(sum, N);
    size_t want = 0;
    for (size_t i = 0; i < N; i++)
        want += strcmp(x[i].a.site, sv[42]) == 0;
    assert_true(want > 0);
    assert_int_equal(s_count_of(ra, REPLICA_SITE, sv[42]), want);
    s_two_close(&t);
}

/* The keys of a batch's new articles are put sorted by their first 24
 * bytes kept as numbers, then the rest: keys shorter and longer than 24
 * bytes that share their first 8, 16 or 24 bytes, keys that are prefixes of
 * others, and keys put again (the last put wins) leave the keys database as
 * the changes applied one per transaction. */
static void test_batch_keys_order(void **state)
{
    (void)state;
    enum { N = 2000 };
    static fx_change x[N];
    Bulletin__Internal__Change *p[N];
    unsigned rng = 23;
    for (size_t i = 0; i < N; i++) {
        fx_put(&x[i], i + 1, i + 1, "s", "c", (int64_t)i * 1000, NULL, NULL);
        rng = rng * 1103515245u + 12345u;
        unsigned v = rng >> 8;
        /* a shared start of 0..31 bytes, then 1..8 of "ab" */
        size_t pre = v % 32, tail = 1 + (v >> 5) % 8;
        size_t len = 0;
        for (size_t j = 0; j < pre; j++)
            x[i].key[len++] = "fortune:computers:anarchism"[j % 27];
        for (size_t j = 0; j < tail; j++)
            x[i].key[len++] = (v >> (9 + j)) & 1 ? 'b' : 'a';
        x[i].key[len] = 0;
        p[i] = &x[i].c;
    }
    s_two t;
    s_two_open(&t);
    replica *ra = t.ra, *rb = t.rb;
    s_two_apply(&t, p, N);
    size_t keys = s_dbs_equal(ra, rb, 2, 1);
    assert_true(keys > 500 && keys < N); /* many distinct keys, some put again */
    s_two_close(&t);
}

/* The value stored under article id in dbi: found, and byte for byte what
 * protobuf-c packs m into (what names it in a failure). */
static void s_expect_stored(MDB_txn *txn, MDB_dbi dbi, uint64_t id, const ProtobufCMessage *m,
                               const char *what) {
    uint8_t idk[8];
    replica_put_u64(idk, id);
    MDB_val k = {8, idk}, v;
    assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *want = malloc(n ? n : 1);
    assert_non_null(want);
    protobuf_c_message_pack(m, want);
    if (v.mv_size != n || memcmp(v.mv_data, want, n) != 0)
        fail_msg("%s %llu: %zu stored bytes, protobuf-c %zu", what, (unsigned long long)id, v.mv_size, n);
    free(want);
}

/* The stored article and summary (written by replica.c's own encoder) are
 * the bytes protobuf-c packs for them: every field of Article set or left
 * out, negative and large integers, empty tags, more tags than the
 * encoder lists (protobuf-c's path), multi-byte text cut for the excerpt. */
static void test_stored_bytes(void **state)
{
    fx *f = *state;
    enum { N = 64 };
    static fx_change x[N];
    static char bodies[N][700], tagv[N][60][8];
    static char *tagp[N][60];
    static uint8_t hash[16] = {1, 2, 3, 0, 5};
    Bulletin__Internal__Change *p[N];
    unsigned rng = 5;
    for (size_t i = 0; i < N; i++) {
        rng = rng * 1103515245u + 12345u;
        unsigned v = rng >> 8;
        fx_put(&x[i], i + 1, i + 1, (v & 1) ? "site" : "", (v & 2) ? "cat" : "",
               (v & 4) ? -(int64_t)v * 1000 : (int64_t)v << 20, NULL, NULL);
        Bulletin__Article *a = &x[i].a;
        size_t bl = 0;
        for (size_t k = 0; k < (v % 5) * 40; k++) /* ASCII and 2- and 3-byte characters */
            bl += (size_t)snprintf(bodies[i] + bl, sizeof bodies[i] - bl, "%s",
                                   k % 3 == 0 ? "a" : k % 3 == 1 ? "\xc3\xa9" : "\xe4\xb8\xad");
        a->body = bodies[i];
        a->author = (v & 8) ? "someone" : (v & 16) ? NULL : "";
        a->lang = (v & 32) ? "en" : "";
        a->ingested_at = (v & 64) ? INT64_MIN + v : 0;
        a->updated_at = (v & 128) ? INT64_MAX - v : 0;
        if (v & 256) {
            a->content_hash.data = hash;
            a->content_hash.len = sizeof hash;
        }
        a->url = (v & 512) ? "https://example.org/u" : "";
        a->raw = (v & 1024) ? "raw text" : "";
        a->seq = (v & 2048) ? 0 : x[i].c.seq; /* 0: the replica stores the change's */
        size_t nt = i == 7 ? 60 : (v >> 12) % 5;
        for (size_t t = 0; t < nt; t++) {
            snprintf(tagv[i][t], sizeof tagv[i][t], "t%zu", t % 7);
            tagp[i][t] = t % 5 == 4 ? (char *)"" : tagv[i][t]; /* protobuf-c: no NULL elements */
        }
        a->tags = tagp[i];
        a->n_tags = nt;
        p[i] = &x[i].c;
    }
    assert_int_equal(replica_apply(f->r, p, N / 2, 0), 0);          /* a batch */
    for (size_t i = N / 2; i < N; i++)                                /* one by one */
        assert_int_equal(replica_apply(f->r, &p[i], 1, 0), 0);
    const replica_dbs *d = replica_dbs_get(f->r);
    MDB_txn *txn = replica_read_begin(f->r);
    for (size_t i = 0; i < N; i++) {
        Bulletin__Article a = x[i].a;
        if (a.seq == 0)
            a.seq = x[i].c.seq;
        s_expect_stored(txn, d->articles, i + 1, &a.base, "article");
        /* the summary: its fields, and protobuf-c's bytes for them */
        uint8_t idk[8];
        replica_put_u64(idk, i + 1);
        MDB_val k = {8, idk}, v;
        assert_int_equal(mdb_get(txn, d->summaries, &k, &v), 0);
        Bulletin__ArticleSummary *s = bulletin__article_summary__unpack(NULL, v.mv_size, v.mv_data);
        assert_non_null(s);
        assert_true(s->id == i + 1 && s->seq == a.seq && s->published_at == a.published_at);
        assert_string_equal(s->key, a.key);
        assert_string_equal(s->site, a.site);
        assert_string_equal(s->category, a.category);
        assert_string_equal(s->title, a.title);
        size_t el = replica_excerpt_len(a.body, strlen(a.body), REPLICA_EXCERPT_CHARS);
        assert_int_equal(strlen(s->excerpt), el);
        assert_memory_equal(s->excerpt, a.body, el);
        assert_int_equal(s->n_tags, a.n_tags);
        for (size_t t = 0; t < a.n_tags; t++)
            assert_string_equal(s->tags[t], a.tags[t]);
        s_expect_stored(txn, d->summaries, i + 1, &s->base, "summary");
        bulletin__article_summary__free_unpacked(s, NULL);
    }
    replica_read_end(f->r);
}

/* The stored article and summary (replica.c's hand-written encoders) equal
 * protobuf-c's bytes for random articles: every field NULL, empty or set,
 * strings and bytes whose lengths sit at the varint boundaries (127/128,
 * 16383/16384, 2^21 - 1/2^21), int64s at 0, -1, INT64_MIN and INT64_MAX,
 * 0 to 50 tags (the protobuf-c path past the encoder's field list), keys
 * around the keys table's 511-byte limit; in batches and one by one. And
 * each article is found by its key. */
static unsigned s_prng = 99;
static unsigned s_rand(void)
{
    s_prng = s_prng * 1103515245u + 12345u;
    return s_prng >> 8;
}

static size_t s_rand_len(void)
{
    static const size_t edge[] = {1, 2, 127, 128, 129, 255, 16383, 16384, 16385, 511, 512};
    unsigned k = s_rand() % 16;
    if (k < 11)
        return edge[k];
    if (k == 11 && s_rand() % 8 == 0)
        return s_rand() % 2 ? ((size_t)1 << 21) - 1 : (size_t)1 << 21;
    return 1 + s_rand() % 300;
}

/* NULL, "", or a new string of s_rand_len() bytes (ASCII, 2- and 3-byte
 * UTF-8), kept in s_allocs to be freed. */
static char *s_allocs[4096];
static size_t s_nallocs;

static char *s_rand_str(bool allow_empty)
{
    unsigned k = s_rand() % 6;
    if (allow_empty && k == 0)
        return NULL;
    if (allow_empty && k == 1)
        return "";
    size_t n = s_rand_len();
    char *buf = malloc(n + 1);
    assert_non_null(buf);
    assert_true(s_nallocs < sizeof s_allocs / sizeof *s_allocs);
    s_allocs[s_nallocs++] = buf;
    for (size_t i = 0; i < n;) {
        unsigned c = s_rand() % 10;
        if (c == 0 && i + 2 <= n) {
            memcpy(buf + i, "\xc3\xa9", 2);
            i += 2;
        } else if (c == 1 && i + 3 <= n) {
            memcpy(buf + i, "\xe4\xb8\xad", 3);
            i += 3;
        } else {
            buf[i++] = (char)('a' + s_rand() % 26);
        }
    }
    buf[n] = '\0';
    return buf;
}

static int64_t s_rand_i64(void)
{
    static const int64_t edge[] = {0, 1, -1, 127, 128, -128, INT64_MIN, INT64_MAX, (int64_t)1 << 35};
    unsigned k = s_rand() % 12;
    return k < 9 ? edge[k] : k == 9 ? -(int64_t)s_rand() * 1000 : (int64_t)s_rand() << 20;
}

static void test_stored_bytes_random(void **state)
{
    (void)state;
    enum { N = 160 };
    char *dir = fx_tmpdir();
    replica *r = replica_new(dir, 512u << 20);
    assert_non_null(r);
    static Bulletin__Internal__Change ch[N];
    static Bulletin__Article art[N];
    static char keys[N][700];
    static char *tagp[N][50];
    static uint8_t hash[200];
    Bulletin__Internal__Change *p[N];
    for (size_t i = 0; i < sizeof hash; i++)
        hash[i] = (uint8_t)i;
    for (size_t i = 0; i < N; i++) {
        bulletin__internal__change__init(&ch[i]);
        Bulletin__Article *a = &art[i];
        bulletin__article__init(a);
        ch[i].seq = i + 1;
        ch[i].op = BULLETIN__INTERNAL__CHANGE_OP__PUT;
        ch[i].id = i + 1;
        ch[i].article = a;
        a->id = i + 1;
        size_t kl = s_rand() % 3 ? 1 + s_rand() % 40 : 505 + s_rand() % 12; /* keys 505-516 bytes */
        for (size_t k = 0; k < kl; k++)
            keys[i][k] = (char)('a' + (i + k * 7) % 26);
        snprintf(keys[i] + kl, 12, "%zu", i); /* distinct */
        a->key = keys[i];
        a->site = s_rand_str(true);
        a->category = s_rand_str(true);
        a->title = s_rand_str(true);
        a->body = s_rand_str(true);
        a->author = s_rand_str(true);
        a->lang = s_rand() % 2 ? "en" : s_rand() % 2 ? "" : NULL;
        a->url = s_rand_str(true);
        a->raw = s_rand_str(true);
        a->published_at = s_rand_i64();
        a->ingested_at = s_rand_i64();
        a->updated_at = s_rand_i64();
        a->seq = s_rand() % 3 ? 0 : (uint64_t)s_rand_i64(); /* 0: the replica stores the change's */
        static const size_t hl[] = {0, 0, 1, 16, 127, 128, 200};
        a->content_hash.len = hl[s_rand() % 7];
        a->content_hash.data = a->content_hash.len ? hash : NULL;
        size_t nt = s_rand() % 4 == 0 ? s_rand() % 50 : s_rand() % 4;
        char *tv[2] = {s_rand_str(false), s_rand_str(false)};
        for (size_t t = 0; t < nt; t++)
            tagp[i][t] = t % 3 == 2 ? (char *)"" : s_rand() % 2 ? (char *)"tag" : tv[t % 2];
        a->tags = tagp[i];
        a->n_tags = nt;
        p[i] = &ch[i];
    }
    for (size_t i = 0; i < N;) { /* batches of 1 to 40 */
        size_t n = 1 + s_rand() % 40;
        if (n > N - i)
            n = N - i;
        assert_int_equal(replica_apply(r, p + i, n, 0), 0);
        i += n;
    }
    const replica_dbs *d = replica_dbs_get(r);
    MDB_txn *txn = replica_read_begin(r);
    for (size_t i = 0; i < N; i++) {
        Bulletin__Article a = art[i];
        if (a.seq == 0)
            a.seq = ch[i].seq;
        s_expect_stored(txn, d->articles, i + 1, &a.base, "article");
        Bulletin__ArticleSummary s = BULLETIN__ARTICLE_SUMMARY__INIT;
        s.id = i + 1;
        s.key = a.key;
        s.site = a.site;
        s.category = a.category;
        s.title = a.title;
        s.published_at = a.published_at;
        s.tags = a.tags;
        s.n_tags = a.n_tags;
        s.seq = a.seq;
        const char *body = a.body ? a.body : "";
        size_t el = replica_excerpt_len(body, strlen(body), REPLICA_EXCERPT_CHARS);
        char ex[REPLICA_EXCERPT_CHARS * 4 + 1];
        memcpy(ex, body, el);
        ex[el] = '\0';
        s.excerpt = ex;
        s_expect_stored(txn, d->summaries, i + 1, &s.base, "summary");
    }
    replica_read_end(r);
    for (size_t i = 0; i < N; i++) {
        Bulletin__Article *g = NULL;
        assert_int_equal(replica_get(r, 0, keys[i], &g), BULLETIN__STATUS_CODE__OK);
        assert_int_equal(g->id, i + 1);
        wire_free(g);
    }
    for (size_t i = 0; i < s_nallocs; i++)
        free(s_allocs[i]);
    s_nallocs = 0;
    replica_destroy(&r);
    fx_rmdir(dir);
}

/* r's map size (LMDB's, which may be larger than was asked). */
static size_t s_map_size(replica *r)
{
    MDB_envinfo ei;
    assert_int_equal(mdb_env_info(replica_dbs_get(r)->env, &ei), 0);
    return ei.me_mapsize;
}

/* Shrink r's map to the pages its data uses (LMDB rounds a smaller size up
 * to that): the next write that needs a new page hits MDB_MAP_FULL unless
 * the free list has one. Checks that the map is full. */
static void s_map_shrink(replica *r)
{
    MDB_env *env = replica_dbs_get(r)->env;
    assert_int_equal(mdb_env_set_mapsize(env, 1), 0);
    MDB_envinfo ei;
    MDB_stat st;
    assert_int_equal(mdb_env_info(env, &ei), 0);
    assert_int_equal(mdb_env_stat(env, &st), 0);
    assert_int_equal((ei.me_last_pgno + 1) * st.ms_psize, ei.me_mapsize);
}

/* replica_set_store_uuid on a full map grows the map and replays its write,
 * like apply and reset (it failed with MDB_MAP_FULL): a new replica (one
 * commit so far, so no free pages) shrunk to its used size. */
static void test_map_full_uuid(void **state)
{
    fx *f = *state;
    s_map_shrink(f->r);
    size_t before = s_map_size(f->r);
    const uint8_t uuid[3] = {7, 8, 9};
    assert_int_equal(replica_set_store_uuid(f->r, uuid, sizeof uuid), 0);
    assert_true(s_map_size(f->r) > before);
    replica_destroy(&f->r);
    f->r = replica_new(f->dir, 64 << 20);
    assert_non_null(f->r);
    size_t len;
    const uint8_t *u = replica_store_uuid(f->r, &len);
    assert_int_equal(len, sizeof uuid);
    assert_memory_equal(u, uuid, sizeof uuid);
}

/* replica_new's own write (the databases created, the schema) grows the map
 * and replays on MDB_MAP_FULL (the open failed): a map asked 1 byte big
 * (LMDB makes it the two meta pages), then reopened so over the data
 * (LMDB opens it at the size used) after a batch and a uuid. */
static void test_map_full_open(void **state)
{
    (void)state;
    char *dir = fx_tmpdir();
    replica *r = replica_new(dir, 1);
    assert_non_null(r);
    const uint8_t uuid[3] = {7, 8, 9};
    assert_int_equal(replica_set_store_uuid(r, uuid, sizeof uuid), 0);
    enum { N = 64 };
    static fx_change x[N];
    Bulletin__Internal__Change *p[N];
    for (size_t i = 0; i < N; i++) {
        fx_put(&x[i], i + 1, i + 1, i % 2 ? "s1" : "s2", "news", (int64_t)i * 1000, "a", NULL);
        p[i] = &x[i].c;
    }
    assert_int_equal(replica_apply(r, p, N, 0), 0);
    replica_destroy(&r);
    for (int round = 0; round < 3; round++) {
        r = replica_new(dir, 1);
        assert_non_null(r);
        assert_int_equal(replica_applied_seq(r), N);
        assert_int_equal(replica_count(r), N);
        size_t len;
        const uint8_t *u = replica_store_uuid(r, &len);
        assert_int_equal(len, sizeof uuid);
        assert_memory_equal(u, uuid, sizeof uuid);
        replica_destroy(&r);
    }
    fx_rmdir(dir);
}

/* `articles` is ordered by replica.c's comparator (ids as numbers): the same
 * order as LMDB's default, so the keys are in memcmp order in the file and an
 * environment opened without the comparator finds every id. */
static void test_article_order(void **state)
{
    fx *f = *state;
    static const uint64_t ids[] = {300, 2, 256, 255, 65536, 1ull << 33, 65535, 1, (1ull << 40) + 7};
    enum { N = sizeof ids / sizeof ids[0] };
    fx_change x[N];
    Bulletin__Internal__Change *p[N];
    for (size_t i = 0; i < N; i++) {
        fx_put(&x[i], i + 1, ids[i], "s1", "news", 1000, NULL, NULL);
        p[i] = &x[i].c;
    }
    assert_int_equal(replica_apply(f->r, p, N, 0), 0);
    for (size_t i = 0; i < N; i++) {
        Bulletin__Article *a = NULL;
        assert_int_equal(replica_get(f->r, ids[i], NULL, &a), BULLETIN__STATUS_CODE__OK);
        assert_int_equal(a->id, ids[i]);
        wire_free(a);
    }
    const replica_dbs *d = replica_dbs_get(f->r);
    MDB_txn *txn = replica_read_begin(f->r);
    MDB_cursor *c;
    assert_int_equal(mdb_cursor_open(txn, d->articles, &c), 0);
    MDB_val k, v;
    uint8_t prev[8] = {0};
    size_t n = 0;
    for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        assert_int_equal(k.mv_size, 8);
        if (n++)
            assert_true(memcmp(prev, k.mv_data, 8) < 0);
        memcpy(prev, k.mv_data, 8);
    }
    assert_int_equal(n, N);
    mdb_cursor_close(c);
    replica_read_end(f->r);
    replica_destroy(&f->r);

    /* the default comparator reads the same file */
    MDB_env *env;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
    assert_int_equal(mdb_env_open(env, f->dir, MDB_RDONLY | MDB_NOTLS, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    MDB_dbi dbi;
    assert_int_equal(mdb_dbi_open(txn, "articles", 0, &dbi), 0);
    for (size_t i = 0; i < N; i++) {
        uint8_t kb[8];
        replica_put_u64(kb, ids[i]);
        MDB_val kk = {8, kb}, vv;
        assert_int_equal(mdb_get(txn, dbi, &kk, &vv), 0);
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_apply_in_order_and_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicates_skipped, setup, teardown),
        cmocka_unit_test(test_feed_check),
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_moves_indexes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_applied_seq_persisted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_change_advances, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_key_and_excerpt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hook, setup, teardown),
        cmocka_unit_test(test_batch_same_as_one_by_one),
        cmocka_unit_test(test_batch_many_values),
        cmocka_unit_test(test_batch_keys_order),
        cmocka_unit_test_setup_teardown(test_stored_bytes, setup, teardown),
        cmocka_unit_test(test_stored_bytes_random),
        cmocka_unit_test_setup_teardown(test_map_full_uuid, setup, teardown),
        cmocka_unit_test(test_map_full_open),
        cmocka_unit_test_setup_teardown(test_article_order, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
