/* store_db: LMDB schema round trips, upsert semantics, the log, Sync paging,
 * long keys, map growth and persistence across reopen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash.h"
#include "store_db.h"

/* --- fixtures ------------------------------------------------------------ */

typedef struct {
    char dir[64];
    store_db *db;
} fx;

static void s_rm_rf(const char *dir)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

static store_db *s_open(const char *dir, size_t map)
{
    char err[512] = "";
    store_db *db = store_db_open(dir, map, err, sizeof err);
    if (!db)
        fprintf(stderr, "store_db_open: %s\n", err);
    return db;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/store_db_test.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    f->db = s_open(f->dir, 64u << 20);
    if (!f->db)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    store_db_destroy(&f->db);
    store_db_destroy(&f->db); /* safe twice */
    s_rm_rf(f->dir);
    free(f);
    return 0;
}

/* An article to put; strings are static or owned by the test. */
static Bulletin__Article s_article(const char *key, const char *title, const char *body,
                                   int64_t published_at)
{
    Bulletin__Article a = BULLETIN__ARTICLE__INIT;
    a.key = (char *)key;
    a.site = "example.org";
    a.category = "news";
    a.title = (char *)title;
    a.body = (char *)body;
    a.published_at = published_at;
    return a;
}

typedef struct {
    Bulletin__Internal__WriteOp op[64];
    Bulletin__Internal__WriteOp *p[64];
    Bulletin__DeleteRequest del[64];
    size_t n;
} s_batch;

static void s_add_put(s_batch *b, Bulletin__Article *a)
{
    bulletin__internal__write_op__init(&b->op[b->n]);
    b->op[b->n].op_case = BULLETIN__INTERNAL__WRITE_OP__OP_PUT;
    b->op[b->n].put = a;
    b->p[b->n] = &b->op[b->n];
    b->n++;
}

static void s_add_del(s_batch *b, uint64_t id, const char *key)
{
    bulletin__delete_request__init(&b->del[b->n]);
    b->del[b->n].id = id;
    b->del[b->n].key = key ? (char *)key : "";
    bulletin__internal__write_op__init(&b->op[b->n]);
    b->op[b->n].op_case = BULLETIN__INTERNAL__WRITE_OP__OP_DELETE;
    b->op[b->n].delete_ = &b->del[b->n];
    b->p[b->n] = &b->op[b->n];
    b->n++;
}

/* Write one article; returns its result (copied). */
static store_result s_put1(store_db *db, Bulletin__Article *a, int64_t now)
{
    s_batch b = {.n = 0};
    store_write w = {0};
    char err[256];
    s_add_put(&b, a);
    assert_int_equal(store_db_write(db, b.p, b.n, now, &w, err, sizeof err), 0);
    assert_int_equal(w.n_results, 1);
    store_result r = w.results[0];
    r.key = NULL;
    r.error = NULL;
    store_write_clear(&w);
    return r;
}

static Bulletin__Article *s_get(store_db *db, uint64_t id, const char *key)
{
    store_buf b = {0};
    int rc = store_db_get(db, id, key, key ? strlen(key) : 0, &b);
    if (rc) {
        store_buf_free(&b);
        return NULL;
    }
    Bulletin__Article *a = bulletin__article__unpack(NULL, b.len, b.data);
    store_buf_free(&b);
    return a;
}

static Bulletin__Internal__SyncChunk *s_sync(store_db *db, uint64_t from, uint32_t max_changes,
                                             uint32_t max_bytes, store_sync_info *info)
{
    store_buf b = {0};
    char err[256];
    assert_int_equal(store_db_sync(db, from, max_changes, max_bytes, &b, info, err, sizeof err),
                     0);
    Bulletin__Internal__SyncChunk *c =
        bulletin__internal__sync_chunk__unpack(NULL, b.len, b.data);
    assert_non_null(c);
    store_buf_free(&b);
    return c;
}

/* --- tests --------------------------------------------------------------- */

static void test_put_get_roundtrip(void **state)
{
    fx *f = *state;
    Bulletin__Article a = s_article("https://example.org/a", "Title A", "Body A", 1000);
    char *tags[] = {"x", "y"};
    a.tags = tags;
    a.n_tags = 2;
    a.author = "Ann";
    a.lang = "en";
    a.url = "https://example.org/a";
    a.raw = "raw text";
    store_result r = s_put1(f->db, &a, 5000);
    assert_int_equal(r.status, BULLETIN__WRITE_STATUS__CREATED);
    assert_int_equal(r.id, 1);
    assert_int_equal(r.seq, 1);
    assert_int_equal(store_db_last_seq(f->db), 1);

    Bulletin__Article *g = s_get(f->db, 1, NULL);
    assert_non_null(g);
    assert_string_equal(g->key, "https://example.org/a");
    assert_string_equal(g->title, "Title A");
    assert_string_equal(g->body, "Body A");
    assert_string_equal(g->author, "Ann");
    assert_string_equal(g->raw, "raw text");
    assert_int_equal(g->n_tags, 2);
    assert_string_equal(g->tags[1], "y");
    assert_int_equal(g->id, 1);
    assert_int_equal(g->seq, 1);
    assert_int_equal(g->published_at, 1000);
    assert_int_equal(g->ingested_at, 5000);
    assert_int_equal(g->updated_at, 5000);
    uint8_t h[HASH_CONTENT_BYTES];
    hash_article_content(&a, h);
    assert_int_equal(g->content_hash.len, HASH_CONTENT_BYTES);
    assert_memory_equal(g->content_hash.data, h, HASH_CONTENT_BYTES);
    bulletin__article__free_unpacked(g, NULL);

    g = s_get(f->db, 0, "https://example.org/a");
    assert_non_null(g);
    assert_int_equal(g->id, 1);
    bulletin__article__free_unpacked(g, NULL);

    assert_null(s_get(f->db, 2, NULL));
    assert_null(s_get(f->db, 0, "nope"));
    store_buf b = {0};
    assert_int_equal(store_db_get(f->db, 0, NULL, 0, &b), MDB_NOTFOUND);
    store_buf_free(&b);
}

static void test_upsert_unchanged_published(void **state)
{
    fx *f = *state;
    Bulletin__Article a = s_article("k1", "T", "B", 1000);
    store_result r = s_put1(f->db, &a, 5000);
    assert_int_equal(r.status, BULLETIN__WRITE_STATUS__CREATED);
    Bulletin__Article other = s_article("k2", "T2", "B2", 0);
    r = s_put1(f->db, &other, 5100);
    assert_int_equal(r.id, 2);
    assert_int_equal(r.seq, 2);

    /* identical -> UNCHANGED, stored id and seq, no new seq */
    r = s_put1(f->db, &a, 6000);
    assert_int_equal(r.status, BULLETIN__WRITE_STATUS__UNCHANGED);
    assert_int_equal(r.id, 1);
    assert_int_equal(r.seq, 1);
    assert_int_equal(store_db_last_seq(f->db), 2);

    /* different -> UPDATED, same id, new seq, ingested_at kept */
    Bulletin__Article a2 = s_article("k1", "T", "B changed", 1000);
    r = s_put1(f->db, &a2, 7000);
    assert_int_equal(r.status, BULLETIN__WRITE_STATUS__UPDATED);
    assert_int_equal(r.id, 1);
    assert_int_equal(r.seq, 3);
    Bulletin__Article *g = s_get(f->db, 1, NULL);
    assert_int_equal(g->ingested_at, 5000);
    assert_int_equal(g->updated_at, 7000);
    assert_int_equal(g->seq, 3);
    assert_string_equal(g->body, "B changed");
    bulletin__article__free_unpacked(g, NULL);

    /* published_at 0 = absent: the stored one is kept -> UNCHANGED */
    Bulletin__Article a3 = s_article("k1", "T", "B changed", 0);
    r = s_put1(f->db, &a3, 8000);
    assert_int_equal(r.status, BULLETIN__WRITE_STATUS__UNCHANGED);
    assert_int_equal(r.seq, 3);

    /* k2 was put with no date: published_at became now (5100), re-send UNCHANGED */
    g = s_get(f->db, 2, NULL);
    assert_int_equal(g->published_at, 5100);
    bulletin__article__free_unpacked(g, NULL);
    r = s_put1(f->db, &other, 9000);
    assert_int_equal(r.status, BULLETIN__WRITE_STATUS__UNCHANGED);
    assert_int_equal(r.id, 2);
    assert_int_equal(r.seq, 2);
}

static void test_batch_same_key_in_order(void **state)
{
    fx *f = *state;
    Bulletin__Article v1 = s_article("k", "T", "v1", 1), v2 = s_article("k", "T", "v2", 1);
    Bulletin__Article empty = s_article("", "T", "B", 1);
    s_batch b = {.n = 0};
    s_add_put(&b, &v1);
    s_add_put(&b, &v1);
    s_add_put(&b, &v2);
    s_add_del(&b, 0, "k");
    s_add_del(&b, 0, "k");
    s_add_put(&b, &empty);
    s_add_put(&b, NULL);
    s_add_del(&b, 1, "k");
    s_add_del(&b, 0, NULL);
    b.p[b.n++] = NULL;
    store_write w = {0};
    char err[256];
    assert_int_equal(store_db_write(f->db, b.p, b.n, 100, &w, err, sizeof err), 0);
    assert_int_equal(w.n_results, 10);
    assert_int_equal(w.results[0].status, BULLETIN__WRITE_STATUS__CREATED);
    assert_int_equal(w.results[1].status, BULLETIN__WRITE_STATUS__UNCHANGED);
    assert_int_equal(w.results[1].seq, 1);
    assert_int_equal(w.results[2].status, BULLETIN__WRITE_STATUS__UPDATED);
    assert_int_equal(w.results[2].seq, 2);
    assert_int_equal(w.results[3].status, BULLETIN__WRITE_STATUS__DELETED);
    assert_int_equal(w.results[3].seq, 3);
    assert_int_equal(w.results[3].id, 1);
    assert_string_equal(w.results[3].key, "k");
    assert_int_equal(w.results[4].status, BULLETIN__WRITE_STATUS__REJECTED);
    assert_string_equal(w.results[4].error, "not found: no article with key 'k'");
    for (size_t i = 5; i < 10; i++) {
        assert_int_equal(w.results[i].status, BULLETIN__WRITE_STATUS__REJECTED);
        assert_non_null(w.results[i].error);
        assert_non_null(w.results[i].key);
    }
    assert_int_equal(w.n_changes, 3);
    assert_int_equal(w.changes[0].seq, 1);
    assert_int_equal(w.changes[2].seq, 3);
    assert_int_equal(w.last_seq, 3);
    /* the committed changes decode as Change messages */
    Bulletin__Internal__Change *c =
        bulletin__internal__change__unpack(NULL, w.changes[2].bytes.len, w.changes[2].bytes.data);
    assert_non_null(c);
    assert_int_equal(c->op, BULLETIN__INTERNAL__CHANGE_OP__DELETE);
    assert_string_equal(c->key, "k");
    assert_null(c->article);
    bulletin__internal__change__free_unpacked(c, NULL);
    c = bulletin__internal__change__unpack(NULL, w.changes[1].bytes.len, w.changes[1].bytes.data);
    assert_non_null(c);
    assert_int_equal(c->op, BULLETIN__INTERNAL__CHANGE_OP__PUT);
    assert_non_null(c->article);
    assert_string_equal(c->article->body, "v2");
    assert_int_equal(c->article->seq, 2);
    bulletin__internal__change__free_unpacked(c, NULL);
    store_write_clear(&w);
    store_write_clear(&w);

    /* re-creating a deleted key gets a new id */
    store_result r = s_put1(f->db, &v1, 200);
    assert_int_equal(r.status, BULLETIN__WRITE_STATUS__CREATED);
    assert_int_equal(r.id, 2);
    assert_int_equal(r.seq, 4);
}

static void test_delete_tombstone_and_log(void **state)
{
    fx *f = *state;
    Bulletin__Article a = s_article("a", "A", "a", 1), b = s_article("b", "B", "b", 1),
                      c = s_article("c", "C", "c", 1);
    s_put1(f->db, &a, 1); /* seq 1 id 1 */
    s_put1(f->db, &b, 1); /* seq 2 id 2 */
    s_put1(f->db, &c, 1); /* seq 3 id 3 */
    Bulletin__Article a2 = s_article("a", "A", "a2", 1);
    s_put1(f->db, &a2, 2); /* seq 4 id 1 (log entry 1 removed) */

    s_batch bt = {.n = 0};
    s_add_del(&bt, 2, NULL); /* seq 5, by id */
    store_write w = {0};
    char err[256];
    assert_int_equal(store_db_write(f->db, bt.p, bt.n, 3, &w, err, sizeof err), 0);
    assert_int_equal(w.results[0].status, BULLETIN__WRITE_STATUS__DELETED);
    assert_string_equal(w.results[0].key, "b");
    store_write_clear(&w);
    assert_null(s_get(f->db, 2, NULL));
    assert_null(s_get(f->db, 0, "b"));

    /* delete of an unknown id: REJECTED with a sentence */
    bt.n = 0;
    s_add_del(&bt, 99, NULL);
    assert_int_equal(store_db_write(f->db, bt.p, bt.n, 3, &w, err, sizeof err), 0);
    assert_int_equal(w.results[0].status, BULLETIN__WRITE_STATUS__REJECTED);
    assert_string_equal(w.results[0].error, "not found: no article with id 99");
    store_write_clear(&w);

    store_db_info info;
    assert_int_equal(store_db_info_get(f->db, &info), 0);
    assert_int_equal(info.articles, 2);
    assert_int_equal(info.log_entries, 3); /* c@3, a@4, tombstone b@5 */
    assert_int_equal(info.last_seq, 5);
    assert_int_equal(info.next_id, 4);

    store_sync_info si;
    Bulletin__Internal__SyncChunk *ch = s_sync(f->db, 0, 0, 0, &si);
    assert_int_equal(ch->n_changes, 3);
    assert_true(ch->done);
    assert_int_equal(ch->head_seq, 5);
    assert_int_equal(ch->store_uuid.len, STORE_DB_UUID_BYTES);
    assert_memory_equal(ch->store_uuid.data, store_db_uuid(f->db), STORE_DB_UUID_BYTES);
    assert_int_equal(ch->changes[0]->seq, 3);
    assert_int_equal(ch->changes[0]->id, 3);
    assert_string_equal(ch->changes[0]->key, "c");
    assert_int_equal(ch->changes[0]->op, BULLETIN__INTERNAL__CHANGE_OP__PUT);
    assert_string_equal(ch->changes[0]->article->title, "C");
    assert_int_equal(ch->changes[1]->seq, 4);
    assert_string_equal(ch->changes[1]->article->body, "a2");
    assert_int_equal(ch->changes[2]->seq, 5);
    assert_int_equal(ch->changes[2]->op, BULLETIN__INTERNAL__CHANGE_OP__DELETE);
    assert_int_equal(ch->changes[2]->id, 2);
    assert_string_equal(ch->changes[2]->key, "b");
    assert_null(ch->changes[2]->article);
    bulletin__internal__sync_chunk__free_unpacked(ch, NULL);

    /* from the middle: exactly the later changes */
    ch = s_sync(f->db, 4, 0, 0, &si);
    assert_int_equal(ch->n_changes, 1);
    assert_int_equal(ch->changes[0]->seq, 5);
    assert_true(ch->done);
    bulletin__internal__sync_chunk__free_unpacked(ch, NULL);
    ch = s_sync(f->db, 5, 0, 0, &si);
    assert_int_equal(ch->n_changes, 0);
    assert_true(ch->done);
    assert_int_equal(ch->head_seq, 5);
    bulletin__internal__sync_chunk__free_unpacked(ch, NULL);
    ch = s_sync(f->db, 1000, 0, 0, &si);
    assert_int_equal(ch->n_changes, 0);
    assert_true(ch->done);
    bulletin__internal__sync_chunk__free_unpacked(ch, NULL);
}

static void test_sync_paging(void **state)
{
    fx *f = *state;
    char keys[50][16];
    char body[2000];
    memset(body, 'x', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    s_batch b = {.n = 0};
    Bulletin__Article arts[50];
    for (int i = 0; i < 50; i++) {
        snprintf(keys[i], sizeof keys[i], "key-%02d", i);
        arts[i] = s_article(keys[i], "t", body, 1);
        s_add_put(&b, &arts[i]);
    }
    store_write w = {0};
    char err[256];
    assert_int_equal(store_db_write(f->db, b.p, b.n, 1, &w, err, sizeof err), 0);
    store_write_clear(&w);

    /* max_changes paging: 7 per chunk, walk to the end */
    uint64_t from = 0, seen = 0;
    store_sync_info si;
    for (int round = 0; round < 20; round++) {
        Bulletin__Internal__SyncChunk *c = s_sync(f->db, from, 7, 0, &si);
        assert_true(c->n_changes <= 7);
        for (size_t i = 0; i < c->n_changes; i++) {
            assert_int_equal(c->changes[i]->seq, from + 1 + i);
            seen++;
        }
        if (c->n_changes)
            from = c->changes[c->n_changes - 1]->seq;
        bool done = c->done;
        assert_int_equal(done, from == 50);
        bulletin__internal__sync_chunk__free_unpacked(c, NULL);
        if (done)
            break;
    }
    assert_int_equal(seen, 50);
    assert_int_equal(from, 50);

    /* max_bytes paging: about 2 KiB per change -> 5 KiB gives 2 changes */
    Bulletin__Internal__SyncChunk *c = s_sync(f->db, 0, 0, 5000, &si);
    assert_int_equal(c->n_changes, 2);
    assert_false(c->done);
    bulletin__internal__sync_chunk__free_unpacked(c, NULL);
    /* at least one change even when it exceeds max_bytes */
    c = s_sync(f->db, 10, 0, 1, &si);
    assert_int_equal(c->n_changes, 1);
    assert_int_equal(c->changes[0]->seq, 11);
    assert_false(c->done);
    bulletin__internal__sync_chunk__free_unpacked(c, NULL);
    /* exactly the last page reports done */
    c = s_sync(f->db, 45, 5, 0, &si);
    assert_int_equal(c->n_changes, 5);
    assert_true(c->done);
    bulletin__internal__sync_chunk__free_unpacked(c, NULL);
}

static void test_long_keys(void **state)
{
    fx *f = *state;
    size_t n = 2000;
    char *k1 = malloc(n + 1), *k2 = malloc(n + 1);
    memset(k1, 'a', n);
    k1[n] = '\0';
    memcpy(k2, k1, n + 1);
    k2[n - 1] = 'b'; /* differs only at the end */
    Bulletin__Article a = s_article(k1, "T1", "B1", 1), b = s_article(k2, "T2", "B2", 1);
    store_result r1 = s_put1(f->db, &a, 1), r2 = s_put1(f->db, &b, 1);
    assert_int_equal(r1.status, BULLETIN__WRITE_STATUS__CREATED);
    assert_int_equal(r2.status, BULLETIN__WRITE_STATUS__CREATED);
    assert_int_not_equal(r1.id, r2.id);
    Bulletin__Article *g = s_get(f->db, 0, k2);
    assert_non_null(g);
    assert_string_equal(g->title, "T2");
    assert_string_equal(g->key, k2);
    bulletin__article__free_unpacked(g, NULL);
    assert_int_equal(s_put1(f->db, &a, 2).status, BULLETIN__WRITE_STATUS__UNCHANGED);
    /* a 480-byte key is stored as is, a 481-byte one hashed: both work */
    k1[480] = '\0';
    Bulletin__Article c = s_article(k1, "T3", "B3", 1);
    assert_int_equal(s_put1(f->db, &c, 1).status, BULLETIN__WRITE_STATUS__CREATED);
    k1[480] = 'a';
    k1[481] = '\0';
    Bulletin__Article d = s_article(k1, "T4", "B4", 1);
    assert_int_equal(s_put1(f->db, &d, 1).status, BULLETIN__WRITE_STATUS__CREATED);
    /* delete by a long key */
    s_batch bt = {.n = 0};
    s_add_del(&bt, 0, k2);
    store_write w = {0};
    char err[256];
    assert_int_equal(store_db_write(f->db, bt.p, bt.n, 3, &w, err, sizeof err), 0);
    assert_int_equal(w.results[0].status, BULLETIN__WRITE_STATUS__DELETED);
    store_write_clear(&w);
    assert_null(s_get(f->db, 0, k2));
    g = s_get(f->db, 0, "");
    assert_null(g);
    free(k1);
    free(k2);
}

static void test_bad_utf8_rejected(void **state)
{
    fx *f = *state;
    Bulletin__Article a = s_article("k", "bad \xff title", "B", 1);
    store_result r = s_put1(f->db, &a, 1);
    assert_int_equal(r.status, BULLETIN__WRITE_STATUS__REJECTED);
    assert_int_equal(store_db_last_seq(f->db), 0);
}

static void test_map_growth_and_reopen(void **state)
{
    (void)state;
    char dir[] = "/tmp/store_db_grow.XXXXXX";
    assert_non_null(mkdtemp(dir));
    store_db *db = s_open(dir, 1u << 20); /* 1 MiB */
    assert_non_null(db);
    static char body[32 * 1024];
    memset(body, 'z', sizeof body - 1);
    enum { BATCHES = 16, PER = 16 }; /* 256 x 32 KiB = 8 MiB */
    char keys[BATCHES * PER][16];
    for (int bi = 0; bi < BATCHES; bi++) {
        s_batch b = {.n = 0};
        Bulletin__Article arts[PER];
        for (int i = 0; i < PER; i++) {
            int k = bi * PER + i;
            snprintf(keys[k], sizeof keys[k], "g%04d", k);
            arts[i] = s_article(keys[k], keys[k], body, 1);
            s_add_put(&b, &arts[i]);
        }
        store_write w = {0};
        char err[256];
        assert_int_equal(store_db_write(db, b.p, b.n, 1, &w, err, sizeof err), 0);
        for (int i = 0; i < PER; i++)
            assert_int_equal(w.results[i].status, BULLETIN__WRITE_STATUS__CREATED);
        store_write_clear(&w);
    }
    store_db_info info;
    assert_int_equal(store_db_info_get(db, &info), 0);
    assert_true(info.map_size > (8u << 20));
    const uint8_t *u = store_db_uuid(db);
    uint8_t uuid[STORE_DB_UUID_BYTES];
    memcpy(uuid, u, sizeof uuid);
    store_db_destroy(&db);
    assert_null(db);

    /* reopen with a tiny map again: everything is there, seq continues */
    db = s_open(dir, 1u << 20);
    assert_non_null(db);
    assert_memory_equal(store_db_uuid(db), uuid, STORE_DB_UUID_BYTES);
    assert_int_equal(store_db_last_seq(db), BATCHES * PER);
    for (int k = 0; k < BATCHES * PER; k++) {
        Bulletin__Article *g = s_get(db, 0, keys[k]);
        assert_non_null(g);
        assert_int_equal(g->id, (uint64_t)k + 1);
        assert_int_equal(strlen(g->body), sizeof body - 1);
        bulletin__article__free_unpacked(g, NULL);
    }
    Bulletin__Article a = s_article("after", "T", "B", 1);
    store_result r = s_put1(db, &a, 1);
    assert_int_equal(r.seq, BATCHES * PER + 1);
    assert_int_equal(r.id, BATCHES * PER + 1);

    /* hot backup: a compacted copy that opens with the same content */
    char dest[128];
    snprintf(dest, sizeof dest, "%s/backup", dir);
    char err[512];
    assert_int_equal(store_db_backup(dir, dest, err, sizeof err), 0);
    assert_int_equal(store_db_backup(dir, dest, err, sizeof err), -1); /* no overwrite */
    store_db *copy = s_open(dest, 1u << 20);
    assert_non_null(copy);
    assert_int_equal(store_db_last_seq(copy), BATCHES * PER + 1);
    assert_memory_equal(store_db_uuid(copy), uuid, STORE_DB_UUID_BYTES);
    store_db_destroy(&copy);
    store_db_destroy(&db);
    s_rm_rf(dir);
}

static void test_seq_persisted_no_reuse(void **state)
{
    fx *f = *state;
    Bulletin__Article a = s_article("p", "T", "1", 1);
    s_put1(f->db, &a, 1);
    s_batch bt = {.n = 0};
    s_add_del(&bt, 0, "p");
    store_write w = {0};
    char err[256];
    assert_int_equal(store_db_write(f->db, bt.p, bt.n, 3, &w, err, sizeof err), 0);
    store_write_clear(&w);
    assert_int_equal(store_db_last_seq(f->db), 2);
    store_db_destroy(&f->db);
    f->db = s_open(f->dir, 1u << 20);
    assert_non_null(f->db);
    assert_int_equal(store_db_last_seq(f->db), 2);
    store_result r = s_put1(f->db, &a, 5);
    assert_int_equal(r.status, BULLETIN__WRITE_STATUS__CREATED);
    assert_int_equal(r.seq, 3);
    assert_int_equal(r.id, 2); /* id 1 is never reused */
}

/* Ids stop at STORE_ID_MAX (the full-text index's 32-bit ids): with next_id
 * set to it in the meta record, one more article is created, the next one is
 * REJECTED, and updates of existing articles go on. */
static void test_id_space_exhausted(void **state)
{
    fx *f = *state;
    Bulletin__Article a = s_article("first", "T", "1", 1);
    assert_int_equal(s_put1(f->db, &a, 1).id, 1);
    store_db_destroy(&f->db);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
    assert_int_equal(mdb_env_set_mapsize(env, 64u << 20), 0);
    assert_int_equal(mdb_env_open(env, f->dir, MDB_NOTLS, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    uint8_t b[8];
    uint64_t v = STORE_ID_MAX;
    for (int i = 7; i >= 0; i--, v >>= 8)
        b[i] = (uint8_t)v;
    MDB_val k = {7, "next_id"}, d = {8, b};
    assert_int_equal(mdb_put(txn, meta, &k, &d, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    f->db = s_open(f->dir, 64u << 20);
    assert_non_null(f->db);
    Bulletin__Article l = s_article("last", "T", "2", 1), o = s_article("over", "T", "3", 1);
    store_result r = s_put1(f->db, &l, 2);
    assert_int_equal(r.status, BULLETIN__WRITE_STATUS__CREATED);
    assert_int_equal(r.id, STORE_ID_MAX);
    s_batch bt = {.n = 0};
    s_add_put(&bt, &o);
    store_write w = {0};
    char err[256];
    assert_int_equal(store_db_write(f->db, bt.p, bt.n, 3, &w, err, sizeof err), 0);
    assert_int_equal(w.results[0].status, BULLETIN__WRITE_STATUS__REJECTED);
    assert_non_null(strstr(w.results[0].error, "article id space exhausted"));
    store_write_clear(&w);
    assert_null(s_get(f->db, 0, "over"));
    a.body = "1 again"; /* an update still goes through */
    r = s_put1(f->db, &a, 4);
    assert_int_equal(r.status, BULLETIN__WRITE_STATUS__UPDATED);
    assert_int_equal(r.id, 1);
}

static void test_open_errors(void **state)
{
    (void)state;
    char err[512] = "";
    store_db *db = store_db_open("/proc/definitely/not/here", 1u << 20, err, sizeof err);
    assert_null(db);
    assert_true(strlen(err) > 0);
    assert_int_equal(store_db_backup("/nonexistent-dir-xyz", "/tmp/x", err, sizeof err), -1);
}

/* data.mdb is extended with zeros ahead of LMDB's last page after small
 * commits; LMDB writes over them and past them, and a reopened store reads
 * everything back. */
static void test_preextend(void **state)
{
    (void)state;
    char dir[] = "/tmp/store_db_pre.XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    store_db *db = s_open(dir, 256u << 20);
    assert_non_null(db);
    char keys[400][16];
    int nk = 0;
    for (int i = 0; i < 10; i++, nk++) {
        snprintf(keys[nk], sizeof keys[nk], "s%04d", nk);
        Bulletin__Article a = s_article(keys[nk], keys[nk], "small", 1);
        assert_int_equal(s_put1(db, &a, 1).status, BULLETIN__WRITE_STATUS__CREATED);
    }
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    store_db_info info;
    assert_int_equal(store_db_info_get(db, &info), 0);
    assert_true(info.map_used < (1u << 20));
    assert_true((uint64_t)st.st_size >= STORE_DB_EXTEND_STEP); /* zeros ahead */
    assert_true((uint64_t)st.st_size <= info.map_used + 2 * (uint64_t)STORE_DB_EXTEND_STEP);
    /* big commits fill the zeros and go past them */
    static char body[32 * 1024];
    memset(body, 'y', sizeof body - 1);
    for (int bi = 0; bi < 12; bi++) {
        s_batch b = {.n = 0};
        Bulletin__Article arts[30];
        for (int i = 0; i < 30; i++, nk++) {
            snprintf(keys[nk], sizeof keys[nk], "b%04d", nk);
            arts[i] = s_article(keys[nk], keys[nk], body, 1);
            s_add_put(&b, &arts[i]);
        }
        store_write w = {0};
        char err[256];
        assert_int_equal(store_db_write(db, b.p, b.n, 1, &w, err, sizeof err), 0);
        for (int i = 0; i < 30; i++)
            assert_int_equal(w.results[i].status, BULLETIN__WRITE_STATUS__CREATED);
        store_write_clear(&w);
    }
    assert_int_equal(store_db_info_get(db, &info), 0);
    assert_true(info.map_used > STORE_DB_EXTEND_STEP);
    store_db_destroy(&db);
    db = s_open(dir, 1u << 20); /* a smaller map than the file: LMDB adapts */
    assert_non_null(db);
    assert_int_equal(store_db_last_seq(db), (uint64_t)nk);
    for (int k = 0; k < nk; k++) {
        Bulletin__Article *g = s_get(db, 0, keys[k]);
        assert_non_null(g);
        assert_int_equal(g->id, (uint64_t)k + 1);
        bulletin__article__free_unpacked(g, NULL);
    }
    Bulletin__Article a = s_article("after", "T", "B", 1);
    assert_int_equal(s_put1(db, &a, 1).seq, (uint64_t)nk + 1);
    store_db_destroy(&db);
    s_rm_rf(dir);
}

int main(void)

{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upsert_unchanged_published, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_same_key_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_tombstone_and_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_utf8_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seq_persisted_no_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_id_space_exhausted, setup, teardown),
        cmocka_unit_test(test_map_growth_and_reopen),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_preextend),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
