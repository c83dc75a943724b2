/*
 * store_db: see store_db.h for the schema.
 *
 * A put (WriteOp.put, already validated and normalized by ingest):
 *
 *   key absent                 -> CREATED, id = next_id++, ingested_at = updated_at = now
 *   key present, same content  -> UNCHANGED, stored id and seq, nothing written
 *   key present, new content   -> UPDATED, same id, ingested_at kept, updated_at = now
 *
 * published_at == 0 means "absent": the stored version's published_at is
 * used, else now, so re-sending an undated article is UNCHANGED. Content is
 * compared by hash_article_content (hash.h). A delete (by id or key) removes
 * the article from `articles` and `keys` and leaves a DELETE tombstone in
 * `log`. Every CREATED/UPDATED/DELETED takes seq = last_seq + 1 and deletes
 * the id's previous log entry (its seq is in the stored article; a deleted
 * id is never reused, so a tombstone is never replaced). next_id and last_seq are written to `meta` in the same
 * transaction, so they are never reused after a crash.
 *
 * Pre-extension (s_preextend): LMDB appends new pages past the end of
 * data.mdb, so the fdatasync of a small commit must also persist the new
 * file size and block allocation (here, a second device write per commit).
 * After a small commit, when fewer than STORE_DB_EXTEND_LOW bytes of file
 * are left past the last used page, the store appends STORE_DB_EXTEND_STEP
 * bytes of real zeros (not fallocate: unwritten extents still need a
 * metadata update when first written) and fdatasyncs them once, so the next
 * commits overwrite allocated blocks. Safe: it runs between transactions in
 * the only writer, writes only past the file's end (beyond every page LMDB
 * has used), and LMDB ignores what lies past its last page (it never derives
 * anything from the file size). Durability is untouched: every commit still
 * does LMDB's own two syncs. Big commits skip it (their own growth costs
 * little per article, and zeros would double the bytes written).
 */
#include "store_db.h"

#include "clock.h"
#include "hash.h"
#include "lmdb_map.h"
#include "log.h"
#include "utf8.h"
#include "grow.h"

#include <errno.h>
#include <lmdb.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

struct store_db {
    MDB_env *env;
    char *dir;
    MDB_dbi articles, keys, log, meta;
    uint64_t last_seq, next_id;
    int64_t created_at;
    uint8_t uuid[STORE_DB_UUID_BYTES];
    /* pre-extension of data.mdb (s_preextend) */
    int fd;              /* LMDB's data file descriptor */
    size_t psize;        /* page size */
    uint64_t used_prev;  /* bytes in use after the previous commit */
    bool extend_off;     /* stopped after an error */
    uint64_t extended;   /* bytes of zeros written */
};

/* State of one write transaction. */
typedef struct {
    store_db *db;
    MDB_txn *txn;
    uint64_t last_seq, next_id;
    int64_t now;
    store_write *out;
} s_wctx;

/* A key as stored in `keys`: the key itself, or "#" + hex BLAKE2b-256. */
typedef struct {
    char hashed[1 + 64 + 1];
    MDB_val val;
} s_dbkey;

/* --- small helpers ------------------------------------------------------- */

static void s_be64_put(uint8_t b[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        b[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t s_be64_get(const void *p)
{
    const uint8_t *b = p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return v;
}

static void s_dbkey_make(s_dbkey *k, const char *key, size_t len)
{
    if (len <= STORE_DB_MAX_KEY) {
        k->val.mv_data = (void *)key;
        k->val.mv_size = len;
        return;
    }
    k->hashed[0] = '#';
    hash_hex(key, len, k->hashed + 1, 32);
    k->val.mv_data = k->hashed;
    k->val.mv_size = 1 + 64;
}

static char *s_strdup(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    char *d = malloc(n + 1);
    if (d) {
        if (n)
            memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static char *s_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *s_printf(const char *fmt, ...)
{
    char buf[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return s_strdup(buf);
}

static int s_mkdir_p(const char *dir)
{
    char path[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] == '/' || path[i] == '\0') {
            char c = path[i];
            path[i] = '\0';
            if (mkdir(path, 0755) < 0 && errno != EEXIST)
                return -1;
            path[i] = c;
        }
    }
    return 0;
}

static int s_meta_get_u64(MDB_txn *txn, MDB_dbi meta, const char *name, uint64_t *v)
{
    MDB_val k = {strlen(name), (void *)name}, d;
    int rc = mdb_get(txn, meta, &k, &d);
    if (rc == 0) {
        if (d.mv_size != 8)
            return MDB_CORRUPTED;
        *v = s_be64_get(d.mv_data);
    }
    return rc;
}

static int s_meta_put(MDB_txn *txn, MDB_dbi meta, const char *name, const void *data,
                      size_t len)
{
    MDB_val k = {strlen(name), (void *)name}, d = {len, (void *)data};
    return mdb_put(txn, meta, &k, &d, 0);
}

static int s_meta_put_u64(MDB_txn *txn, MDB_dbi meta, const char *name, uint64_t v)
{
    uint8_t b[8];
    s_be64_put(b, v);
    return s_meta_put(txn, meta, name, b, 8);
}

void store_write_clear(store_write *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_results; i++) {
        free(w->results[i].key);
        free(w->results[i].error);
    }
    free(w->results);
    for (size_t i = 0; i < w->n_changes; i++)
        store_buf_free(&w->changes[i].bytes);
    free(w->changes);
    memset(w, 0, sizeof *w);
}

/* --- open / close -------------------------------------------------------- */

static int s_init_schema(store_db *db, char *err, size_t err_cap)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(db->env, NULL, 0, &txn);
    if (rc) {
        snprintf(err, err_cap, "cannot begin the first transaction: %s", mdb_strerror(rc));
        return rc;
    }
    if ((rc = mdb_dbi_open(txn, "articles", MDB_CREATE, &db->articles)) ||
        (rc = mdb_dbi_open(txn, "keys", MDB_CREATE, &db->keys)) ||
        (rc = mdb_dbi_open(txn, "log", MDB_CREATE, &db->log)) ||
        (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &db->meta))) {
        snprintf(err, err_cap, "cannot open the named databases: %s", mdb_strerror(rc));
        goto fail;
    }
    uint64_t version = 0;
    rc = s_meta_get_u64(txn, db->meta, "schema_version", &version);
    if (rc == MDB_NOTFOUND) {
        /* a new database */
        uint8_t ts[8];
        randombytes_buf(db->uuid, sizeof db->uuid);
        db->created_at = clock_now_ms();
        db->next_id = 1;
        db->last_seq = 0;
        s_be64_put(ts, (uint64_t)db->created_at);
        if ((rc = s_meta_put_u64(txn, db->meta, "schema_version", STORE_DB_SCHEMA_VERSION)) ||
            (rc = s_meta_put_u64(txn, db->meta, "next_id", db->next_id)) ||
            (rc = s_meta_put_u64(txn, db->meta, "last_seq", db->last_seq)) ||
            (rc = s_meta_put(txn, db->meta, "store_uuid", db->uuid, sizeof db->uuid)) ||
            (rc = s_meta_put(txn, db->meta, "created_at", ts, 8))) {
            snprintf(err, err_cap, "cannot write the schema: %s", mdb_strerror(rc));
            goto fail;
        }
    } else if (rc) {
        snprintf(err, err_cap, "cannot read meta.schema_version: %s", mdb_strerror(rc));
        goto fail;
    } else {
        if (version > STORE_DB_SCHEMA_VERSION) {
            snprintf(err, err_cap,
                     "the database has schema version %llu, newer than this program's %d",
                     (unsigned long long)version, STORE_DB_SCHEMA_VERSION);
            rc = MDB_INCOMPATIBLE;
            goto fail;
        }
        MDB_val k = {10, "store_uuid"}, d;
        uint64_t created = 0;
        if ((rc = s_meta_get_u64(txn, db->meta, "next_id", &db->next_id)) ||
            (rc = s_meta_get_u64(txn, db->meta, "last_seq", &db->last_seq)) ||
            (rc = s_meta_get_u64(txn, db->meta, "created_at", &created)) ||
            (rc = mdb_get(txn, db->meta, &k, &d))) {
            snprintf(err, err_cap, "cannot read meta: %s", mdb_strerror(rc));
            goto fail;
        }
        if (d.mv_size != STORE_DB_UUID_BYTES) {
            rc = MDB_CORRUPTED;
            snprintf(err, err_cap, "meta.store_uuid has %zu bytes, expected %d", d.mv_size,
                     STORE_DB_UUID_BYTES);
            goto fail;
        }
        memcpy(db->uuid, d.mv_data, STORE_DB_UUID_BYTES);
        db->created_at = (int64_t)created;
    }
    rc = mdb_txn_commit(txn);
    if (rc)
        snprintf(err, err_cap, "cannot commit the schema: %s", mdb_strerror(rc));
    return rc;
fail:
    mdb_txn_abort(txn);
    return rc;
}

store_db *store_db_open(const char *dir, size_t map_size, char *err, size_t err_cap)
{
    if (sodium_init() < 0) {
        snprintf(err, err_cap, "libsodium failed to initialize");
        return NULL;
    }
    if (!*dir) {
        snprintf(err, err_cap, "the data directory is an empty string: give a path (--data DIR)");
        return NULL;
    }
    if (s_mkdir_p(dir) < 0) {
        snprintf(err, err_cap, "cannot create directory %s: %s", dir, strerror(errno));
        return NULL;
    }
    /* LMDB writes its lock file through a shared mapping: on a disk with no
     * free block at all that is a SIGBUS, not an error code. Refuse first. */
    struct statvfs vfs;
    if (statvfs(dir, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < STORE_DB_MIN_DISK) {
        snprintf(err, err_cap, "the disk holding %s is full (%llu bytes free): free some space",
                 dir, (unsigned long long)vfs.f_bavail * vfs.f_frsize);
        return NULL;
    }
    store_db *db = calloc(1, sizeof *db);
    if (!db) {
        snprintf(err, err_cap, "out of memory");
        return NULL;
    }
    int rc, dead = 0;
    if ((rc = mdb_env_create(&db->env))) {
        snprintf(err, err_cap, "mdb_env_create: %s", mdb_strerror(rc));
        free(db);
        return NULL;
    }
    if ((rc = mdb_env_set_maxdbs(db->env, 8)) ||
        (rc = mdb_env_set_mapsize(db->env, map_size ? map_size : (size_t)1 << 30))) {
        snprintf(err, err_cap, "cannot configure the environment: %s", mdb_strerror(rc));
        goto fail;
    }
    /* MDB_NOTLS: read txns are not tied to threads. No NOSYNC flags: durable. */
    if ((rc = mdb_env_open(db->env, dir, MDB_NOTLS, 0644))) {
        snprintf(err, err_cap, "cannot open the LMDB environment in %s: %s", dir,
                 mdb_strerror(rc));
        goto fail;
    }
    mdb_reader_check(db->env, &dead);
    if (dead)
        log_warn("store.readers", "cleared=%d", dead);
    if (s_init_schema(db, err, err_cap))
        goto fail;
    if (!(db->dir = s_strdup(dir))) {
        snprintf(err, err_cap, "out of memory");
        goto fail;
    }
    MDB_stat ms;
    MDB_envinfo ei;
    if (mdb_env_get_fd(db->env, &db->fd) != 0 || mdb_env_stat(db->env, &ms) != 0 ||
        mdb_env_info(db->env, &ei) != 0) {
        db->extend_off = true;
    } else {
        db->psize = ms.ms_psize;
        db->used_prev = (uint64_t)(ei.me_last_pgno + 1) * db->psize;
    }
    return db;
fail:
    mdb_env_close(db->env);
    free(db);
    return NULL;
}

void store_db_destroy(store_db **self_p)
{
    if (!self_p || !*self_p)
        return;
    store_db *db = *self_p;
    mdb_env_close(db->env);
    free(db->dir);
    free(db);
    *self_p = NULL;
}

uint64_t store_db_last_seq(const store_db *db)
{
    return db->last_seq;
}

const uint8_t *store_db_uuid(const store_db *db)
{
    return db->uuid;
}

int store_db_reader_check(store_db *db)
{
    int dead = 0;
    mdb_reader_check(db->env, &dead);
    return dead;
}

int store_db_info_get(store_db *db, store_db_info *out)
{
    memset(out, 0, sizeof *out);
    MDB_txn *txn;
    MDB_stat st;
    MDB_envinfo ei;
    int rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return rc;
    if ((rc = s_meta_get_u64(txn, db->meta, "last_seq", &out->last_seq)) ||
        (rc = s_meta_get_u64(txn, db->meta, "next_id", &out->next_id)))
        goto done;
    if ((rc = mdb_stat(txn, db->articles, &st)))
        goto done;
    out->articles = st.ms_entries;
    if ((rc = mdb_stat(txn, db->log, &st)))
        goto done;
    out->log_entries = st.ms_entries;
    mdb_env_info(db->env, &ei);
    mdb_env_stat(db->env, &st);
    out->map_size = ei.me_mapsize;
    out->map_used = (uint64_t)(ei.me_last_pgno + 1) * st.ms_psize;
    out->created_at = db->created_at;
done:
    mdb_txn_abort(txn);
    return rc;
}

/* --- lookups ------------------------------------------------------------- */

/* Find the stored article for a key: *id and *val (valid until txn ends).
 * For hashed keys the stored article's key is compared: a different key is
 * MDB_NOTFOUND with *collision set. */
static int s_find_by_key(store_db *db, MDB_txn *txn, const char *key, size_t len, uint64_t *id,
                         MDB_val *val, bool *collision)
{
    s_dbkey k;
    MDB_val d;
    *collision = false;
    s_dbkey_make(&k, key, len);
    int rc = mdb_get(txn, db->keys, &k.val, &d);
    if (rc)
        return rc;
    if (d.mv_size != 8)
        return MDB_CORRUPTED;
    *id = s_be64_get(d.mv_data);
    uint8_t idb[8];
    s_be64_put(idb, *id);
    MDB_val ik = {8, idb};
    rc = mdb_get(txn, db->articles, &ik, val);
    if (rc == MDB_NOTFOUND)
        return MDB_CORRUPTED; /* keys points to a missing article */
    if (rc)
        return rc;
    if (len > STORE_DB_MAX_KEY) {
        store_article_meta m;
        if (store_codec_article_meta(val->mv_data, val->mv_size, &m) < 0 || m.key_len != len ||
            memcmp(m.key, key, len) != 0) {
            *collision = true;
            return MDB_NOTFOUND;
        }
    }
    return 0;
}

static int s_get_by_id(store_db *db, MDB_txn *txn, uint64_t id, MDB_val *val)
{
    uint8_t idb[8];
    s_be64_put(idb, id);
    MDB_val ik = {8, idb};
    return mdb_get(txn, db->articles, &ik, val);
}

int store_db_get(store_db *db, uint64_t id, const char *key, size_t key_len, store_buf *out)
{
    MDB_txn *txn;
    MDB_val val;
    bool collision;
    int rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return rc;
    if (id)
        rc = s_get_by_id(db, txn, id, &val);
    else if (key && key_len)
        rc = s_find_by_key(db, txn, key, key_len, &id, &val, &collision);
    else
        rc = MDB_NOTFOUND;
    if (rc == 0 && store_buf_append(out, val.mv_data, val.mv_size) < 0)
        rc = ENOMEM;
    mdb_txn_abort(txn);
    return rc;
}

/* --- writes -------------------------------------------------------------- */

static int s_change_add(s_wctx *c, uint64_t seq, int op, uint64_t id, const char *key,
                        const void *art, size_t art_len)
{
    store_write *w = c->out;
    if (w->n_changes == w->cap_changes) {
        store_change *p = grow(w->changes, &w->cap_changes, sizeof *p, 64);
        if (!p)
            return ENOMEM;
        w->changes = p;
    }
    store_change *ch = &w->changes[w->n_changes];
    memset(ch, 0, sizeof *ch);
    ch->seq = seq;
    if (store_codec_change(&ch->bytes, seq, op, id, key, strlen(key), art, art_len) < 0) {
        store_buf_free(&ch->bytes);
        return ENOMEM;
    }
    w->n_changes++;
    w->changed_bytes += ch->bytes.len;
    return 0;
}

static void s_reject(store_result *r, char *error)
{
    r->status = BULLETIN__WRITE_STATUS__REJECTED;
    free(r->error);
    r->error = error ? error : s_strdup("rejected");
}

/* The first string field of a that is not valid UTF-8 (or has NUL), or NULL. */
static const char *s_bad_string(const Bulletin__Article *a, size_t *off)
{
    struct {
        const char *name, *v;
    } f[] = {{"key", a->key},       {"url", a->url},       {"site", a->site},
             {"category", a->category}, {"title", a->title}, {"body", a->body},
             {"author", a->author}, {"lang", a->lang},     {"raw", a->raw}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v && !utf8_valid(f[i].v, strlen(f[i].v), off))
            return f[i].name;
    for (size_t i = 0; i < a->n_tags; i++)
        if (a->tags[i] && !utf8_valid(a->tags[i], strlen(a->tags[i]), off))
            return "tags";
    return NULL;
}

static int s_log_put(s_wctx *c, uint64_t seq, uint64_t id, int op, const char *key)
{
    uint8_t kb[8];
    size_t klen = op == STORE_OP_DELETE ? strlen(key) : 0;
    s_be64_put(kb, seq);
    MDB_val k = {8, kb}, d = {9 + klen, NULL};
    int rc = mdb_put(c->txn, c->db->log, &k, &d, MDB_APPEND | MDB_RESERVE);
    if (rc)
        return rc;
    uint8_t *p = d.mv_data;
    s_be64_put(p, id);
    p[8] = (uint8_t)op;
    if (klen)
        memcpy(p + 9, key, klen);
    return 0;
}

static int s_log_del(s_wctx *c, uint64_t seq)
{
    uint8_t kb[8];
    s_be64_put(kb, seq);
    MDB_val k = {8, kb};
    int rc = mdb_del(c->txn, c->db->log, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int s_put(s_wctx *c, const Bulletin__Article *a, store_result *r)
{
    store_db *db = c->db;
    if (!a) {
        s_reject(r, s_strdup("the put op carries no article"));
        return 0;
    }
    free(r->key);
    r->key = s_strdup(a->key);
    if (!r->key)
        return ENOMEM;
    size_t klen = strlen(r->key), off = 0;
    if (klen == 0) {
        s_reject(r, s_strdup("the article has an empty key (ingest derives one)"));
        return 0;
    }
    const char *bad = s_bad_string(a, &off);
    if (bad) {
        s_reject(r, s_printf("field '%s' is not valid UTF-8 or contains NUL (byte %zu)", bad,
                             off));
        return 0;
    }

    uint64_t id = 0;
    MDB_val sv;
    bool collision, found = false;
    store_article_meta sm;
    int rc = s_find_by_key(db, c->txn, a->key, klen, &id, &sv, &collision);
    if (rc == 0) {
        found = true;
        if (store_codec_article_meta(sv.mv_data, sv.mv_size, &sm) < 0) {
            log_error("store.corrupt", "id=%llu what=\"stored article does not decode\"",
                      (unsigned long long)id);
            s_reject(r, s_printf("the stored version of this article (id %llu) is unreadable",
                                 (unsigned long long)id));
            return 0;
        }
    } else if (rc == MDB_NOTFOUND && collision) {
        s_reject(r, s_strdup("the hash of this long key collides with another key"));
        return 0;
    } else if (rc != MDB_NOTFOUND) {
        return rc;
    }

    Bulletin__Article art = *a;
    art.base.n_unknown_fields = 0;
    art.base.unknown_fields = NULL;
    if (art.published_at == 0)
        art.published_at = found && sm.published_at ? sm.published_at : c->now;
    uint8_t h[HASH_CONTENT_BYTES];
    hash_article_content(&art, h);
    if (found && sm.content_hash_len == HASH_CONTENT_BYTES &&
        !memcmp(sm.content_hash, h, HASH_CONTENT_BYTES)) {
        r->status = BULLETIN__WRITE_STATUS__UNCHANGED;
        r->id = id;
        r->seq = sm.seq;
        return 0;
    }

    if (!found && c->next_id > STORE_ID_MAX) {
        s_reject(r, s_printf("article id space exhausted: ids are 32-bit for the full-text index "
                             "(at most %llu articles can ever be created)",
                             (unsigned long long)STORE_ID_MAX));
        return 0;
    }
    /* sm points into LMDB pages that the writes below may change: copy now */
    uint64_t seq = ++c->last_seq;
    uint64_t old_seq = found ? sm.seq : 0;
    art.id = found ? id : c->next_id++;
    art.seq = seq;
    art.ingested_at = found ? sm.ingested_at : c->now;
    art.updated_at = c->now;
    art.content_hash.len = HASH_CONTENT_BYTES;
    art.content_hash.data = h;

    /* articles: packed straight into the space LMDB reserves */
    uint8_t idb[8];
    s_be64_put(idb, art.id);
    MDB_val ik = {8, idb};
    MDB_val av = {bulletin__article__get_packed_size(&art), NULL};
    rc = mdb_put(c->txn, db->articles, &ik, &av, MDB_RESERVE | (found ? 0 : MDB_APPEND));
    if (rc)
        return rc;
    bulletin__article__pack(&art, av.mv_data);
    if (!found) {
        s_dbkey k;
        MDB_val d = {8, idb};
        s_dbkey_make(&k, a->key, klen);
        if ((rc = mdb_put(c->txn, db->keys, &k.val, &d, MDB_NOOVERWRITE)))
            return rc;
    } else if ((rc = s_log_del(c, old_seq))) {
        return rc;
    }
    if ((rc = s_log_put(c, seq, art.id, STORE_OP_PUT, a->key)))
        return rc;
    if ((rc = s_change_add(c, seq, STORE_OP_PUT, art.id, a->key, av.mv_data, av.mv_size)))
        return rc;
    r->status = found ? BULLETIN__WRITE_STATUS__UPDATED : BULLETIN__WRITE_STATUS__CREATED;
    r->id = art.id;
    r->seq = seq;
    return 0;
}

static int s_delete(s_wctx *c, const Bulletin__DeleteRequest *d, store_result *r)
{
    store_db *db = c->db;
    if (!d) {
        s_reject(r, s_strdup("the delete op is empty"));
        return 0;
    }
    bool has_key = d->key && d->key[0];
    if (has_key) {
        free(r->key);
        if (!(r->key = s_strdup(d->key)))
            return ENOMEM;
    }
    if (d->id && has_key) {
        s_reject(r, s_strdup("a delete takes an id or a key, not both"));
        return 0;
    }
    if (!d->id && !has_key) {
        s_reject(r, s_strdup("a delete needs an id or a key"));
        return 0;
    }
    uint64_t id = d->id;
    MDB_val sv;
    bool collision = false;
    int rc = has_key ? s_find_by_key(db, c->txn, d->key, strlen(d->key), &id, &sv, &collision)
                     : s_get_by_id(db, c->txn, id, &sv);
    if (rc == MDB_NOTFOUND) {
        if (has_key)
            s_reject(r, s_printf("not found: no article with key '%.300s'", d->key));
        else
            s_reject(r, s_printf("not found: no article with id %llu", (unsigned long long)id));
        return 0;
    }
    if (rc)
        return rc;
    store_article_meta sm;
    if (store_codec_article_meta(sv.mv_data, sv.mv_size, &sm) < 0) {
        log_error("store.corrupt", "id=%llu what=\"stored article does not decode\"",
                  (unsigned long long)id);
        s_reject(r, s_printf("the stored article (id %llu) is unreadable",
                             (unsigned long long)id));
        return 0;
    }
    free(r->key);
    r->key = malloc(sm.key_len + 1);
    if (!r->key)
        return ENOMEM;
    memcpy(r->key, sm.key, sm.key_len);
    r->key[sm.key_len] = '\0';
    uint64_t old_seq = sm.seq;

    uint8_t idb[8];
    s_be64_put(idb, id);
    MDB_val ik = {8, idb};
    s_dbkey k;
    s_dbkey_make(&k, r->key, strlen(r->key));
    if ((rc = mdb_del(c->txn, db->articles, &ik, NULL)))
        return rc;
    rc = mdb_del(c->txn, db->keys, &k.val, NULL);
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    if ((rc = s_log_del(c, old_seq)))
        return rc;
    uint64_t seq = ++c->last_seq;
    if ((rc = s_log_put(c, seq, id, STORE_OP_DELETE, r->key)))
        return rc;
    if ((rc = s_change_add(c, seq, STORE_OP_DELETE, id, r->key, NULL, 0)))
        return rc;
    r->status = BULLETIN__WRITE_STATUS__DELETED;
    r->id = id;
    r->seq = seq;
    return 0;
}

static int s_write_once(store_db *db, Bulletin__Internal__WriteOp *const *ops, size_t n,
                        int64_t now, store_write *out)
{
    s_wctx c = {.db = db, .now = now, .out = out};
    out->results = calloc(n ? n : 1, sizeof *out->results);
    if (!out->results)
        return ENOMEM;
    out->n_results = n;
    int rc = mdb_txn_begin(db->env, NULL, 0, &c.txn);
    if (rc)
        return rc;
    if ((rc = s_meta_get_u64(c.txn, db->meta, "last_seq", &c.last_seq)) ||
        (rc = s_meta_get_u64(c.txn, db->meta, "next_id", &c.next_id)))
        goto fail;
    uint64_t seq0 = c.last_seq, id0 = c.next_id;
    for (size_t i = 0; i < n; i++) {
        const Bulletin__Internal__WriteOp *op = ops[i];
        store_result *r = &out->results[i];
        switch (op ? op->op_case : BULLETIN__INTERNAL__WRITE_OP__OP__NOT_SET) {
        case BULLETIN__INTERNAL__WRITE_OP__OP_PUT:
            rc = s_put(&c, op->put, r);
            break;
        case BULLETIN__INTERNAL__WRITE_OP__OP_DELETE:
            rc = s_delete(&c, op->delete_, r);
            break;
        default:
            s_reject(r, s_strdup("the write op has neither put nor delete"));
            rc = 0;
            break;
        }
        if (rc)
            goto fail;
        if (!r->key && !(r->key = s_strdup(""))) {
            rc = ENOMEM;
            goto fail;
        }
    }
    if (c.last_seq != seq0 && (rc = s_meta_put_u64(c.txn, db->meta, "last_seq", c.last_seq)))
        goto fail;
    if (c.next_id != id0 && (rc = s_meta_put_u64(c.txn, db->meta, "next_id", c.next_id)))
        goto fail;
    if ((rc = mdb_txn_commit(c.txn)))
        return rc;
    db->last_seq = c.last_seq;
    db->next_id = c.next_id;
    out->last_seq = c.last_seq;
    return 0;
fail:
    mdb_txn_abort(c.txn);
    return rc;
}

/* See the top of this file. Errors only stop the pre-extension. */
static void s_preextend(store_db *db)
{
    if (db->extend_off)
        return;
    MDB_envinfo ei;
    struct stat st;
    if (mdb_env_info(db->env, &ei) != 0 || fstat(db->fd, &st) != 0)
        return;
    uint64_t used = (uint64_t)(ei.me_last_pgno + 1) * db->psize;
    uint64_t grew = used > db->used_prev ? used - db->used_prev : 0;
    db->used_prev = used;
    uint64_t end = (uint64_t)st.st_size;
    if (grew > STORE_DB_EXTEND_MAX_COMMIT || (end > used && end - used >= STORE_DB_EXTEND_LOW))
        return;
    if (end < used)
        end = used; /* not expected: LMDB has written every page it uses */
    uint64_t to = end + STORE_DB_EXTEND_STEP;
    if (to > ei.me_mapsize)
        to = ei.me_mapsize;
    if (to <= end)
        return;
    static const uint8_t zeros[1 << 16];
    int64_t t0 = clock_mono_us();
    for (uint64_t off = end; off < to;) {
        size_t n = to - off < sizeof zeros ? (size_t)(to - off) : sizeof zeros;
        ssize_t w = pwrite(db->fd, zeros, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            log_warn("store.preextend", "offset=%llu error=\"%s\" what=\"pre-extension stopped\"",
                     (unsigned long long)off, w < 0 ? strerror(errno) : "short write");
            db->extend_off = true;
            return;
        }
        off += (uint64_t)w;
    }
    if (fdatasync(db->fd) != 0) {
        log_warn("store.preextend", "error=\"fdatasync: %s\" what=\"pre-extension stopped\"",
                 strerror(errno));
        db->extend_off = true;
        return;
    }
    db->extended += to - end;
    log_debug("store.preextend", "from=%llu to=%llu used=%llu us=%lld", (unsigned long long)end,
              (unsigned long long)to, (unsigned long long)used,
              (long long)(clock_mono_us() - t0));
}

int store_db_write(store_db *db, Bulletin__Internal__WriteOp *const *ops, size_t n,
                   int64_t now_ms, store_write *out, char *err, size_t err_cap)
{
    int rc;
    for (int attempt = 0;; attempt++) {
        store_write_clear(out);
        rc = s_write_once(db, ops, n, now_ms, out);
        if (rc == 0)
            s_preextend(db);
        if (rc == MDB_MAP_FULL && attempt < 24) {
            if (lmdb_map_grow(db->env, "store.map_grow", NULL) == 0)
                continue;
        } else if (rc == MDB_MAP_RESIZED && attempt < 24) {
            /* another process grew the map: adopt its size */
            if (mdb_env_set_mapsize(db->env, 0) == 0)
                continue;
        }
        break;
    }
    if (rc == 0)
        return 0;
    /* LMDB reports a short write on a full disk as EIO: tell them apart */
    struct statvfs vfs;
    if ((rc == EIO || rc == ENOSPC || rc == EDQUOT) && statvfs(db->dir, &vfs) == 0 &&
        (uint64_t)vfs.f_bavail * vfs.f_frsize < STORE_DB_LOW_DISK) {
        snprintf(err, err_cap, "the disk holding %s is full (%llu bytes free)", db->dir,
                 (unsigned long long)vfs.f_bavail * vfs.f_frsize);
        rc = ENOSPC;
    } else {
        snprintf(err, err_cap, "the write transaction failed: %s", mdb_strerror(rc));
    }
    /* nothing was committed: every op is rejected with the reason */
    for (size_t i = 0; i < out->n_changes; i++)
        store_buf_free(&out->changes[i].bytes);
    out->n_changes = 0;
    out->changed_bytes = 0;
    if (!out->results) {
        out->results = calloc(n ? n : 1, sizeof *out->results);
        out->n_results = out->results ? n : 0;
    }
    for (size_t i = 0; i < out->n_results; i++) {
        store_result *r = &out->results[i];
        r->id = r->seq = 0;
        s_reject(r, s_strdup(err));
        if (!r->key)
            r->key = s_strdup("");
    }
    return rc;
}

/* --- sync ---------------------------------------------------------------- */

int store_db_sync(store_db *db, uint64_t from_seq, uint32_t max_changes, uint32_t max_bytes,
                  store_buf *chunk, store_sync_info *info, char *err, size_t err_cap)
{
    if (!max_changes)
        max_changes = STORE_DB_SYNC_MAX_CHANGES;
    if (!max_bytes)
        max_bytes = STORE_DB_SYNC_MAX_BYTES;
    memset(info, 0, sizeof *info);
    info->last_sent = from_seq;
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    store_buf change = {0};
    size_t start = chunk->len;
    int rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn);
    if (rc) {
        snprintf(err, err_cap, "cannot begin a read transaction: %s", mdb_strerror(rc));
        return rc;
    }
    if ((rc = s_meta_get_u64(txn, db->meta, "last_seq", &info->head_seq))) {
        snprintf(err, err_cap, "cannot read meta.last_seq: %s", mdb_strerror(rc));
        goto done;
    }
    info->done = true;
    if (from_seq >= info->head_seq)
        goto tail;
    if ((rc = mdb_cursor_open(txn, db->log, &cur))) {
        snprintf(err, err_cap, "cannot open a cursor: %s", mdb_strerror(rc));
        goto done;
    }
    uint8_t kb[8];
    s_be64_put(kb, from_seq + 1);
    MDB_val k = {8, kb}, d;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        if (info->n_changes >= max_changes) {
            info->done = false;
            break;
        }
        if (k.mv_size != 8 || d.mv_size < 9) {
            rc = MDB_CORRUPTED;
            snprintf(err, err_cap, "a log entry has the wrong size");
            goto done;
        }
        uint64_t seq = s_be64_get(k.mv_data), id = s_be64_get(d.mv_data);
        int op = ((uint8_t *)d.mv_data)[8];
        change.len = 0;
        if (op == STORE_OP_PUT) {
            MDB_val av;
            if ((rc = s_get_by_id(db, txn, id, &av))) {
                snprintf(err, err_cap, "log seq %llu names article %llu: %s",
                         (unsigned long long)seq, (unsigned long long)id,
                         rc == MDB_NOTFOUND ? "missing" : mdb_strerror(rc));
                if (rc == MDB_NOTFOUND)
                    rc = MDB_CORRUPTED;
                goto done;
            }
            /* Change.key is set for PUT too; the key lives in the article */
            store_article_meta m;
            if (store_codec_article_meta(av.mv_data, av.mv_size, &m) < 0) {
                rc = MDB_CORRUPTED;
                snprintf(err, err_cap, "article %llu does not decode",
                         (unsigned long long)id);
                goto done;
            }
            rc = store_codec_change(&change, seq, op, id, m.key, m.key_len, av.mv_data,
                                    av.mv_size);
        } else {
            rc = store_codec_change(&change, seq, op, id, (const char *)d.mv_data + 9,
                                    d.mv_size - 9, NULL, 0);
        }
        if (rc < 0) {
            rc = ENOMEM;
            snprintf(err, err_cap, "out of memory");
            goto done;
        }
        size_t fs = store_codec_field_size(1, change.len);
        if (info->n_changes > 0 && chunk->len - start + fs > max_bytes) {
            info->done = false;
            break;
        }
        if (store_codec_bytes(chunk, 1, change.data, change.len, true) < 0) {
            rc = ENOMEM;
            snprintf(err, err_cap, "out of memory");
            goto done;
        }
        info->n_changes++;
        info->last_sent = seq;
    }
    if (rc && rc != MDB_NOTFOUND) {
        snprintf(err, err_cap, "cannot walk the log: %s", mdb_strerror(rc));
        goto done;
    }
tail:
    rc = 0;
    if (store_codec_uint(chunk, 2, info->head_seq) < 0 ||
        store_codec_uint(chunk, 3, info->done ? 1 : 0) < 0 ||
        store_codec_bytes(chunk, 4, db->uuid, sizeof db->uuid, true) < 0) {
        rc = ENOMEM;
        snprintf(err, err_cap, "out of memory");
    }
done:
    if (rc)
        chunk->len = start;
    store_buf_free(&change);
    if (cur)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc;
}

/* --- backup -------------------------------------------------------------- */

int store_db_backup(const char *dir, const char *dest, char *err, size_t err_cap)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    if (stat(path, &st) < 0) {
        snprintf(err, err_cap, "no database in %s (%s)", dir, strerror(errno));
        return -1;
    }
    if (s_mkdir_p(dest) < 0) {
        snprintf(err, err_cap, "cannot create directory %s: %s", dest, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/data.mdb", dest);
    if (stat(path, &st) == 0) {
        snprintf(err, err_cap, "%s already holds a database (%s): refusing to overwrite", dest,
                 path);
        return -1;
    }
    MDB_env *env;
    int rc = mdb_env_create(&env);
    if (rc) {
        snprintf(err, err_cap, "mdb_env_create: %s", mdb_strerror(rc));
        return -1;
    }
    mdb_env_set_maxdbs(env, 8);
    if ((rc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0644))) {
        snprintf(err, err_cap, "cannot open %s: %s", dir, mdb_strerror(rc));
        mdb_env_close(env);
        return -1;
    }
    rc = mdb_env_copy2(env, dest, MDB_CP_COMPACT);
    mdb_env_close(env);
    if (rc) {
        snprintf(err, err_cap, "cannot copy %s to %s: %s", dir, dest, mdb_strerror(rc));
        return -1;
    }
    return 0;
}
