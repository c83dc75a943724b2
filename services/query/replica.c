/*
 * replica: see replica.h for the databases.
 *
 * Apply path, per change, inside one write transaction:
 *
 *   seq <= applied ........................ skip (duplicate)
 *   PUT:    old summary? -> drop its index entries (and its key if it changed)
 *           put article, summary, key, by_time, by_site, by_cat, by_tag, counts
 *   DELETE: old summary? -> drop index entries, key, summary, article
 *   hook->on_change(txn, id, old, new)       (the full-text index, qsearch.h)
 *   applied = seq
 *
 * (a batch of several changes buffers the by_* entries of new versions and
 * writes them sorted, with one counts update per value, and defers the hook
 * calls of new articles, in order; both are written before any old version
 * is dropped and at the end: s_ibuf)
 * then meta.applied_seq, hook->before_commit (the index writes what it
 * buffered) and commit; after an abort, hook->after_abort. MDB_MAP_FULL aborts, doubles the map and
 * replays the batch.
 */
#include "replica.h"

#include "lmdb_map.h"
#include "log.h"
#include "pbscan.h"
#include "wire.h"
#include "grow.h"

#include <assert.h>
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_DEFAULT_MAP ((size_t)16 << 30)
#define S_MAX_KEY 511
#define S_SCHEMA 1u

/* The list-index entries (by_time, by_site, by_cat, by_tag) that the
 * articles of an apply transaction add: written at the end of the batch in
 * key order through one cursor per database (a bootstrap's articles come in
 * id order, their index keys in random order: sorted, the inserts walk each
 * B-tree once instead of descending it from the root per key), with one
 * `counts` update per distinct value. Written early when a change has an old
 * version (its entries are removed first, so they must be in the database). */
#define S_IKEY 32 /* h16 pub[8] id[8]; by_time keys use the last 16 bytes */
typedef struct {
    uint8_t (*k)[S_IKEY];
    size_t n, cap;
} s_ikeys;

/* replica_hash of recent attribute values (s_index_buffered): a batch
 * hashes its articles' sites and categories, a few thousand distinct ones,
 * again for every article (BLAKE2b, ~2.5% of a bootstrap's CPU). Direct
 * mapped by s_memo_slot; values over S_MEMO_VAL bytes are not kept. */
#define S_MEMO_SLOTS 1024
#define S_MEMO_VAL 46
typedef struct {
    uint8_t h[REPLICA_HASH_LEN];
    uint8_t len; /* 0: empty (empty values are not indexed) */
    char v[S_MEMO_VAL + 1];
} s_memo;

/* The `keys` entries of a batch's new articles (key -> id), put in key
 * order at the end of the batch like the index entries: in id order they
 * land on scattered pages of the keys B-tree. The key bytes are the
 * change's (they live as long as the batch); a key over S_MAX_KEY bytes
 * (stored as its hash) is put at once. */
#define S_KPUT_PRE 3 /* words of a key's first bytes kept as numbers */
typedef struct {
    uint64_t pre[S_KPUT_PRE]; /* the first 24 bytes (zero-padded), big-endian words as numbers */
    const char *k;
    uint32_t len;
    uint32_t seq; /* the order of the puts: the last put of a key wins */
    uint8_t id[8];
} s_kput;

typedef struct {
    s_ikeys time, attr[3]; /* attr[kind - 1] */
    s_kput *kp;
    size_t nkp, capkp;
    s_memo *memo;          /* S_MEMO_SLOTS, made at the first use (NULL: hash each time) */
    bool memo_tried;
    bool on;
    /* hook calls of new articles (no old version), deferred to the end of
     * the batch like the index entries: the full-text index's analysis
     * thread (qsearch_bulk_begin) gets the replica writes of the whole
     * batch as a head start instead of running neck and neck with it */
    Bulletin__Article *hq; /* copies sharing the change's strings */
    size_t nhq, caphq;
} s_ibuf;

struct replica {
    replica_dbs d;
    uint64_t applied;
    uint8_t uuid[REPLICA_UUID_MAX];
    size_t uuid_len;
    replica_hook hook;
    bool has_hook;
    MDB_txn *rtxn;   /* reusable read txn (reset between uses) */
    bool rtxn_live;
    s_ibuf ib;       /* list-index entries of the apply txn, written sorted */
    uint64_t last_id; /* apply txn: the largest id in `articles` and `summaries` */
};

/* --- encoding helpers ------------------------------------------------------ */

void replica_put_u64(uint8_t out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)v;
        v >>= 8;
    }
}

uint64_t replica_get_u64(const uint8_t in[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | in[i];
    return v;
}

void replica_put_time(uint8_t out[8], int64_t t)
{
    replica_put_u64(out, (uint64_t)t ^ 0x8000000000000000ULL);
}

int64_t replica_get_time(const uint8_t in[8])
{
    return (int64_t)(replica_get_u64(in) ^ 0x8000000000000000ULL);
}

void replica_hash(const char *value, size_t len, uint8_t out[REPLICA_HASH_LEN])
{
    crypto_generichash(out, REPLICA_HASH_LEN, (const unsigned char *)value, len, NULL, 0);
}

size_t replica_excerpt_len(const char *s, size_t len, size_t max_chars)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0, chars = 0;
    while (i < len && chars < max_chars) {
        /* ASCII 8 bytes at a time (one character each) */
        while (i + 8 <= len && chars + 8 <= max_chars) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if (w & 0x8080808080808080ull)
                break;
            i += 8;
            chars += 8;
        }
        if (i >= len || chars >= max_chars)
            break;
        size_t n = p[i] < 0x80 ? 1 : (p[i] >> 5) == 6 ? 2 : (p[i] >> 4) == 14 ? 3
                 : (p[i] >> 3) == 30 ? 4 : 0;
        if (n == 0 || i + n > len)
            break;
        for (size_t k = 1; k < n; k++)
            if ((p[i + k] & 0xC0) != 0x80)
                return i;
        i += n;
        chars++;
    }
    return i;
}

replica_feed_verdict replica_feed_check(uint64_t applied, uint64_t first_seq,
                                        uint64_t last_change_seq, size_t nchanges,
                                        uint64_t last_seq)
{
    if (nchanges == 0 || last_change_seq <= applied)
        return last_seq > applied ? REPLICA_FEED_GAP : REPLICA_FEED_SKIP;
    if (first_seq > applied + 1)
        return REPLICA_FEED_GAP;
    return REPLICA_FEED_APPLY;
}

/* --- open / close ------------------------------------------------------- */

static int s_meta_load(replica *r)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(r->d.env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return rc;
    MDB_val k = {11, "applied_seq"}, v;
    r->applied = 0;
    if (mdb_get(txn, r->d.meta, &k, &v) == 0 && v.mv_size == 8)
        r->applied = replica_get_u64(v.mv_data);
    k = (MDB_val){10, "store_uuid"};
    r->uuid_len = 0;
    if (mdb_get(txn, r->d.meta, &k, &v) == 0 && v.mv_size <= REPLICA_UUID_MAX) {
        memcpy(r->uuid, v.mv_data, v.mv_size);
        r->uuid_len = v.mv_size;
    }
    mdb_txn_abort(txn);
    return 0;
}

static int s_write(replica *r, int (*fn)(replica *r, MDB_txn *txn, void *ud),
                   void (*on_ok)(replica *r, void *ud), void *ud, bool hooked);

/* The first write of an open: every database opened (created when new) and
 * the schema recorded; replayable (s_write) on a map too small for it. */
/* The order of `articles`: LMDB's default (memcmp over the shorter length,
 * then the shorter key first), with its 8-byte keys (big-endian ids)
 * compared as numbers, which is the same order: the file is what the
 * default comparator reads and writes, and a lookup's descent (~20 key
 * compares) makes no memcmp call. A search's hits are read by id here:
 * -0.55 to -0.78% of an en search's CPU in-process (bench/README.md, hit
 * path, session 8). */
static int s_cmp_id(const MDB_val *a, const MDB_val *b)
{
    if (a->mv_size == 8 && b->mv_size == 8) {
        uint64_t x = 0, y = 0;
        const uint8_t *pa = a->mv_data, *pb = b->mv_data;
        memcpy(&x, pa, 8);
        memcpy(&y, pb, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        x = __builtin_bswap64(x);
        y = __builtin_bswap64(y);
#endif
        return (x > y) - (x < y);
    }
    size_t n = a->mv_size < b->mv_size ? a->mv_size : b->mv_size;
    int d = n ? memcmp(a->mv_data, b->mv_data, n) : 0;
    return d ? d : (a->mv_size > b->mv_size) - (a->mv_size < b->mv_size);
}

static int s_open_fn(replica *r, MDB_txn *txn, void *ud)
{
    (void)ud;
    struct {
        const char *name;
        MDB_dbi *dbi;
    } dbs[] = {{"articles", &r->d.articles}, {"summaries", &r->d.summaries},
               {"keys", &r->d.keys},         {"by_time", &r->d.by_time},
               {"by_site", &r->d.by_site},   {"by_cat", &r->d.by_cat},
               {"by_tag", &r->d.by_tag},     {"counts", &r->d.counts},
               {"meta", &r->d.meta}};
    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++) {
        int rc = mdb_dbi_open(txn, dbs[i].name, MDB_CREATE, dbs[i].dbi);
        if (rc)
            return rc;
    }
    int rc = mdb_set_compare(txn, r->d.articles, s_cmp_id);
    if (rc)
        return rc;
    uint8_t sv[4] = {0, 0, 0, S_SCHEMA};
    MDB_val k = {6, "schema"}, v = {4, sv};
    return mdb_put(txn, r->d.meta, &k, &v, 0);
}

replica *replica_new(const char *dir, size_t map_size)
{
    if (sodium_init() < 0) {
        log_error("replica.open", "error=\"libsodium init failed\"");
        return NULL;
    }
    if (!*dir) {
        log_error("replica.open", "dir= error=\"the data directory is an empty string: give a path (--data DIR)\"");
        return NULL;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        log_error("replica.open", "dir=%s error=\"%s\"", dir, strerror(errno));
        return NULL;
    }
    replica *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    int rc = mdb_env_create(&r->d.env);
    if (rc)
        goto fail;
    mdb_env_set_maxdbs(r->d.env, 32);
    mdb_env_set_mapsize(r->d.env, map_size ? map_size : S_DEFAULT_MAP);
    rc = mdb_env_open(r->d.env, dir, MDB_NOMETASYNC | MDB_NOTLS, 0644);
    if (rc)
        goto fail;
    int dead = 0;
    mdb_reader_check(r->d.env, &dead);
    if ((rc = s_write(r, s_open_fn, NULL, NULL, false)) || (rc = s_meta_load(r)))
        goto fail;
    log_info("replica.open", "dir=%s applied_seq=%llu stale_readers=%d", dir,
             (unsigned long long)r->applied, dead);
    return r;
fail:
    log_error("replica.open", "dir=%s error=\"%s\"", dir, mdb_strerror(rc));
    replica_destroy(&r);
    return NULL;
}

void replica_destroy(replica **self)
{
    if (!self || !*self)
        return;
    replica *r = *self;
    if (r->rtxn)
        mdb_txn_abort(r->rtxn);
    if (r->d.env)
        mdb_env_close(r->d.env);
    free(r->ib.time.k);
    for (size_t i = 0; i < 3; i++)
        free(r->ib.attr[i].k);
    free(r->ib.hq);
    free(r->ib.memo);
    free(r->ib.kp);
    free(r);
    *self = NULL;
}

const replica_dbs *replica_dbs_get(const replica *self) { return &self->d; }
uint64_t replica_applied_seq(const replica *self) { return self->applied; }

const uint8_t *replica_store_uuid(const replica *self, size_t *len)
{
    *len = self->uuid_len;
    return self->uuid;
}

void replica_set_hook(replica *self, const replica_hook *hook)
{
    self->has_hook = hook != NULL;
    if (hook)
        self->hook = *hook;
}

/* --- write helpers ---------------------------------------------------------- */

/* The `keys` database key for an article key. */
static MDB_val s_key_dbkey(const char *key, size_t len, uint8_t buf[33])
{
    if (len <= S_MAX_KEY)
        return (MDB_val){len, (void *)key};
    buf[0] = 0;
    crypto_generichash(buf + 1, 32, (const unsigned char *)key, len, NULL, 0);
    return (MDB_val){33, buf};
}

static int s_count_add(MDB_txn *txn, const replica_dbs *d, replica_kind kind,
                       const uint8_t h[REPLICA_HASH_LEN], int64_t delta)
{
    uint8_t kb[1 + REPLICA_HASH_LEN];
    kb[0] = (uint8_t)kind;
    memcpy(kb + 1, h, REPLICA_HASH_LEN);
    MDB_val k = {sizeof kb, kb}, v;
    uint64_t n = 0;
    int rc = mdb_get(txn, d->counts, &k, &v);
    if (rc == 0 && v.mv_size == 8)
        n = replica_get_u64(v.mv_data);
    else if (rc && rc != MDB_NOTFOUND)
        return rc;
    n = delta < 0 ? (n > (uint64_t)-delta ? n - (uint64_t)-delta : 0) : n + (uint64_t)delta;
    if (n == 0) {
        rc = mdb_del(txn, d->counts, &k, NULL);
        return rc == MDB_NOTFOUND ? 0 : rc;
    }
    uint8_t vb[8];
    replica_put_u64(vb, n);
    v = (MDB_val){8, vb};
    return mdb_put(txn, d->counts, &k, &v, 0);
}

/* Add (add=true) or remove one attribute index entry and its count. */
static int s_attr(MDB_txn *txn, const replica_dbs *d, replica_kind kind, const char *value,
                  const uint8_t tail[16], bool add)
{
    MDB_dbi dbi = kind == REPLICA_SITE ? d->by_site : kind == REPLICA_CATEGORY ? d->by_cat : d->by_tag;
    uint8_t kb[REPLICA_HASH_LEN + 16];
    replica_hash(value, strlen(value), kb);
    memcpy(kb + REPLICA_HASH_LEN, tail, 16);
    MDB_val k = {sizeof kb, kb}, v = {0, ""};
    int rc;
    if (add) {
        rc = mdb_put(txn, dbi, &k, &v, MDB_NOOVERWRITE);
        if (rc == MDB_KEYEXIST)
            return 0; /* already there: count unchanged */
    } else {
        rc = mdb_del(txn, dbi, &k, NULL);
        if (rc == MDB_NOTFOUND)
            return 0;
    }
    if (rc)
        return rc;
    return s_count_add(txn, d, kind, kb, add ? 1 : -1);
}

static int s_ikeys_add(s_ikeys *a, const uint8_t *h, const uint8_t tail[16])
{
    if (a->n == a->cap) {
        uint8_t(*k)[S_IKEY] = grow(a->k, &a->cap, sizeof *k, 4096);
        if (!k)
            return ENOMEM;
        a->k = k;
    }
    if (h)
        memcpy(a->k[a->n], h, REPLICA_HASH_LEN);
    else
        memset(a->k[a->n], 0, REPLICA_HASH_LEN);
    memcpy(a->k[a->n] + REPLICA_HASH_LEN, tail, 16);
    a->n++;
    return 0;
}

/* A big-endian 64-bit word of a key as a number (memcmp order of words =
 * numeric order), and back: the same swap. */
static inline uint64_t s_be_word(uint64_t w)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return __builtin_bswap64(w);
#else
    return w;
#endif
}

/* Merge sort of n elements of `size` bytes by `less` (stable): insertion
 * sort of runs of 16, then bottom-up merges through tmp (n elements).
 * Inlined into each caller with its own `less` and size, so the
 * comparisons are not calls (qsort's were: a call to the comparison and
 * one to memcmp per step, 3% of a bootstrap's worker thread). */
static inline __attribute__((always_inline)) void
s_msort(void *base, size_t n, size_t size, void *tmp, bool (*less)(const void *a, const void *b))
{
    assert(size <= 64);
    uint8_t *src = base, *dst = tmp;
    for (size_t lo = 0; lo < n; lo += 16) {
        size_t hi = lo + 16 < n ? lo + 16 : n;
        for (size_t i = lo + 1; i < hi; i++) {
            uint8_t x[64];
            memcpy(x, src + i * size, size);
            size_t j = i;
            while (j > lo && less(x, src + (j - 1) * size)) {
                memcpy(src + j * size, src + (j - 1) * size, size);
                j--;
            }
            memcpy(src + j * size, x, size);
        }
    }
    for (size_t w = 16; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, o = lo;
            while (i < mid && j < hi) {
                const uint8_t *e = less(src + j * size, src + i * size) ? src + j++ * size : src + i++ * size;
                memcpy(dst + o++ * size, e, size);
            }
            if (i < mid)
                memcpy(dst + o * size, src + i * size, (mid - i) * size);
            else if (j < hi)
                memcpy(dst + o * size, src + j * size, (hi - j) * size);
        }
        uint8_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != base)
        memcpy(base, src, n * size);
}

/* The words of a key from word w0 on, as numbers (s_ikeys_sort). */
static inline __attribute__((always_inline)) bool s_ikey_less_w(const void *pa, const void *pb, int w0)
{
    for (int i = w0; i < S_IKEY / 8; i++) {
        uint64_t x, y;
        memcpy(&x, (const uint8_t *)pa + 8 * i, 8);
        memcpy(&y, (const uint8_t *)pb + 8 * i, 8);
        if (x != y)
            return x < y;
    }
    return false;
}
static bool s_ikey_less0(const void *a, const void *b) { return s_ikey_less_w(a, b, 0); }
static bool s_ikey_less2(const void *a, const void *b) { return s_ikey_less_w(a, b, 2); }

/* Turn the words of every key from word w0 on into numbers, or back. */
static void s_ikeys_swap(s_ikeys *a, int w0)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (size_t i = 0; i < a->n; i++)
        for (int j = w0; j < S_IKEY / 8; j++) {
            uint64_t w;
            memcpy(&w, a->k[i] + 8 * j, 8);
            w = s_be_word(w);
            memcpy(a->k[i] + 8 * j, &w, 8);
        }
#else
    (void)a;
    (void)w0;
#endif
}

static int s_ikey_cmp(const void *a, const void *b) { return memcmp(a, b, S_IKEY); }

/* Sort the keys in memcmp order from byte off (16: by_time's keys, whose
 * hash part is zero; 0: all), comparing 64-bit numbers (the big-endian words
 * swapped once per key instead of at each comparison); qsort when the merge
 * array cannot be had. */
static void s_ikeys_sort(s_ikeys *a, size_t off)
{
    if (a->n < 2)
        return;
    void *tmp = malloc(a->n * S_IKEY);
    if (!tmp) {
        qsort(a->k, a->n, S_IKEY, s_ikey_cmp);
        return;
    }
    int w0 = (int)(off / 8);
    s_ikeys_swap(a, w0);
    if (w0 == 2)
        s_msort(a->k, a->n, S_IKEY, tmp, s_ikey_less2);
    else
        s_msort(a->k, a->n, S_IKEY, tmp, s_ikey_less0);
    s_ikeys_swap(a, w0);
    free(tmp);
}

/* Whether the first len bytes (a multiple of 8) of two keys are equal. */
static inline bool s_ikey_eq(const uint8_t *a, const uint8_t *b, size_t len)
{
    uint64_t d = 0;
    for (size_t i = 0; i < len; i += 8) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        d |= x ^ y;
    }
    return d == 0;
}

/* Insert the sorted keys of one database (skipping repeats and keys already
 * there); for an attribute database, add the new entries of each value to
 * its count. */
static int s_ikeys_write(MDB_txn *txn, const replica_dbs *d, MDB_dbi dbi, s_ikeys *a,
                         replica_kind kind)
{
    if (a->n == 0)
        return 0;
    size_t off = kind ? 0 : REPLICA_HASH_LEN;
    s_ikeys_sort(a, off);
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, dbi, &c);
    if (rc)
        return rc;
    int64_t added = 0;
    for (size_t i = 0; i < a->n && rc == 0; i++) {
        if (i == 0 || !s_ikey_eq(a->k[i], a->k[i - 1], S_IKEY)) { /* not a repeat */
            MDB_val k = {S_IKEY - off, a->k[i] + off}, v = {0, ""};
            rc = mdb_cursor_put(c, &k, &v, MDB_NOOVERWRITE);
            if (rc == 0)
                added++;
            else if (rc == MDB_KEYEXIST)
                rc = 0;
        }
        if (rc == 0 && kind && added &&
            (i + 1 == a->n || !s_ikey_eq(a->k[i + 1], a->k[i], REPLICA_HASH_LEN))) {
            rc = s_count_add(txn, d, kind, a->k[i], added);
            added = 0;
        }
    }
    mdb_cursor_close(c);
    a->n = 0;
    return rc;
}

/* LMDB's order of keys (memcmp, then the shorter first), then put order. */
static int s_kput_cmp(const void *pa, const void *pb)
{
    const s_kput *a = pa, *b = pb;
    int c = memcmp(a->k, b->k, a->len < b->len ? a->len : b->len);
    if (c)
        return c;
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* s_kput_cmp(a, b) < 0, from the prefix words where they differ (keys
 * hold no NUL, so equal words of keys up to 24 bytes long mean one is a
 * prefix of the other or both are the same). */
static bool s_kput_less(const void *pa, const void *pb)
{
    const s_kput *a = pa, *b = pb;
    for (int i = 0; i < S_KPUT_PRE; i++)
        if (a->pre[i] != b->pre[i])
            return a->pre[i] < b->pre[i];
    if (a->len <= 8 * S_KPUT_PRE && b->len <= 8 * S_KPUT_PRE)
        return a->len != b->len ? a->len < b->len : a->seq < b->seq;
    return s_kput_cmp(a, b) < 0;
}

/* Put the buffered `keys` entries (s_kput) in key order. */
static int s_kputs_write(MDB_txn *txn, const replica_dbs *d, s_ibuf *b)
{
    if (b->nkp == 0)
        return 0;
    void *tmp = b->nkp > 1 ? malloc(b->nkp * sizeof *b->kp) : NULL;
    if (tmp)
        s_msort(b->kp, b->nkp, sizeof *b->kp, tmp, s_kput_less);
    else
        qsort(b->kp, b->nkp, sizeof *b->kp, s_kput_cmp);
    free(tmp);
    size_t n = b->nkp;
    b->nkp = 0;
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, d->keys, &c);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        MDB_val k = {b->kp[i].len, (void *)b->kp[i].k}, v = {8, b->kp[i].id};
        rc = mdb_cursor_put(c, &k, &v, 0);
    }
    mdb_cursor_close(c);
    return rc;
}

/* Write the buffered index entries (see s_ibuf). 0 or an LMDB error. */
static int s_ibuf_write(MDB_txn *txn, const replica_dbs *d, s_ibuf *b)
{
    int rc = s_kputs_write(txn, d, b);
    if (rc == 0)
        rc = s_ikeys_write(txn, d, d->by_time, &b->time, 0);
    MDB_dbi attr[3] = {d->by_site, d->by_cat, d->by_tag};
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = s_ikeys_write(txn, d, attr[i], &b->attr[i], (replica_kind)(i + 1));
    return rc;
}

static void s_ibuf_reset(s_ibuf *b)
{
    b->nkp = 0;
    b->time.n = 0;
    for (int i = 0; i < 3; i++)
        b->attr[i].n = 0;
    b->nhq = 0;
}

static size_t s_memo_slot(const char *v, size_t len)
{
    uint64_t h = (uint64_t)len * 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)v[i]) * 0x100000001b3ull;
    h ^= h >> 29;
    return (size_t)h & (S_MEMO_SLOTS - 1);
}

/* replica_hash of a non-empty value, through the batch's memo (s_memo). */
static void s_hash_memo(s_ibuf *b, const char *v, uint8_t out[REPLICA_HASH_LEN])
{
    size_t len = strlen(v);
    if (!b->memo && !b->memo_tried) {
        b->memo = calloc(S_MEMO_SLOTS, sizeof *b->memo);
        b->memo_tried = true;
    }
    if (!b->memo || len > S_MEMO_VAL) {
        replica_hash(v, len, out);
        return;
    }
    s_memo *m = &b->memo[s_memo_slot(v, len)];
    if (m->len != len || memcmp(m->v, v, len) != 0) {
        replica_hash(v, len, m->h);
        memcpy(m->v, v, len);
        m->len = (uint8_t)len;
    }
    memcpy(out, m->h, REPLICA_HASH_LEN);
}

/* Buffer the `keys` entry of a new article (s_kput). 0 or ENOMEM. */
static int s_kput_add(s_ibuf *b, const char *key, size_t len, const uint8_t idk[8])
{
    if (b->nkp == b->capkp) {
        s_kput *n = grow(b->kp, &b->capkp, sizeof *n, 1024);
        if (!n)
            return ENOMEM;
        b->kp = n;
    }
    s_kput *e = &b->kp[b->nkp];
    uint8_t pre[8 * S_KPUT_PRE] = {0};
    memcpy(pre, key, len < sizeof pre ? len : sizeof pre);
    for (int i = 0; i < S_KPUT_PRE; i++) {
        memcpy(&e->pre[i], pre + 8 * i, 8);
        e->pre[i] = s_be_word(e->pre[i]);
    }
    e->k = key;
    e->len = (uint32_t)len;
    e->seq = (uint32_t)b->nkp++;
    memcpy(e->id, idk, 8);
    return 0;
}

/* Buffer the index entries of a new summary (s_ibuf). */
static int s_index_buffered(s_ibuf *b, const Bulletin__ArticleSummary *s)
{
    uint8_t tail[16], h[REPLICA_HASH_LEN];
    replica_put_time(tail, s->published_at);
    replica_put_u64(tail + 8, s->id);
    int rc = s_ikeys_add(&b->time, NULL, tail);
    if (rc == 0 && s->site && *s->site) {
        s_hash_memo(b, s->site, h);
        rc = s_ikeys_add(&b->attr[REPLICA_SITE - 1], h, tail);
    }
    if (rc == 0 && s->category && *s->category) {
        s_hash_memo(b, s->category, h);
        rc = s_ikeys_add(&b->attr[REPLICA_CATEGORY - 1], h, tail);
    }
    for (size_t i = 0; rc == 0 && i < s->n_tags; i++)
        if (s->tags[i] && *s->tags[i]) {
            s_hash_memo(b, s->tags[i], h);
            rc = s_ikeys_add(&b->attr[REPLICA_TAG - 1], h, tail);
        }
    return rc;
}

/* Add or remove every index entry of one summary. Empty values are not
 * indexed (an empty filter means "no constraint"). */
static int s_index(MDB_txn *txn, const replica_dbs *d, const Bulletin__ArticleSummary *s,
                   bool add)
{
    uint8_t tail[16];
    replica_put_time(tail, s->published_at);
    replica_put_u64(tail + 8, s->id);
    MDB_val k = {16, tail}, v = {0, ""};
    int rc = add ? mdb_put(txn, d->by_time, &k, &v, 0) : mdb_del(txn, d->by_time, &k, NULL);
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    if (s->site && *s->site && (rc = s_attr(txn, d, REPLICA_SITE, s->site, tail, add)))
        return rc;
    if (s->category && *s->category &&
        (rc = s_attr(txn, d, REPLICA_CATEGORY, s->category, tail, add)))
        return rc;
    /* s_attr dedupes repeated tags: put with NOOVERWRITE / del NOTFOUND leave the count alone */
    for (size_t i = 0; i < s->n_tags; i++)
        if (s->tags[i] && *s->tags[i] && (rc = s_attr(txn, d, REPLICA_TAG, s->tags[i], tail, add)))
            return rc;
    return 0;
}

/* Reserve size bytes under an 8-byte id key (flags: 0 or MDB_APPEND) for
 * the caller to write into *out. 0 or an LMDB error. */
static int s_put_reserve(MDB_txn *txn, MDB_dbi dbi, const uint8_t idk[8], size_t size, unsigned flags,
                         uint8_t **out)
{
    MDB_val k = {8, (void *)idk}, v = {size, NULL};
    int rc = mdb_put(txn, dbi, &k, &v, MDB_RESERVE | flags);
    if (rc == MDB_KEYEXIST && (flags & MDB_APPEND)) /* not past the last key after all */
        rc = mdb_put(txn, dbi, &k, &v, MDB_RESERVE);
    *out = rc ? NULL : v.mv_data;
    return rc;
}

/* Put a packed message under an 8-byte id key, packing straight into LMDB. */
static int s_put_packed(MDB_txn *txn, MDB_dbi dbi, const uint8_t idk[8], const ProtobufCMessage *m,
                        unsigned flags)
{
    uint8_t *p;
    int rc = s_put_reserve(txn, dbi, idk, protobuf_c_message_get_packed_size(m), flags, &p);
    if (rc == 0)
        protobuf_c_message_pack(m, p);
    return rc;
}

/* --- the stored article and summary, encoded by hand ---------------------------
 *
 * protobuf_c_message_pack walks the message's descriptor field by field
 * (and get_packed_size once more before it): ~3.5% of a bootstrap's CPU for
 * the two messages every new article stores. s_pbw lists the fields to
 * write, in field-number order, and writes the bytes protobuf-c writes for
 * these proto3 messages: a zero scalar, a NULL or empty string and empty
 * bytes are left out; every element of a repeated string is written (NULL
 * as empty); int64 values are varints of their two's complement. A message
 * with unknown fields, or more tags than S_PBW_MAX holds, goes through
 * protobuf-c (which writes the unknown fields too). */
#define S_PBW_MAX 48
typedef struct {
    uint32_t tag;      /* field number << 3 | wire type (0 varint, 2 length-delimited) */
    uint64_t v;        /* the varint, or the length */
    const void *p;     /* the bytes of a length-delimited field */
} s_pbf;

typedef struct {
    s_pbf f[S_PBW_MAX];
    size_t n;
    size_t size;
    bool over; /* too many fields: use protobuf-c */
} s_pbw;

static void s_pbw_add(s_pbw *w, uint32_t no, uint32_t wt, uint64_t v, const void *p)
{
    if (w->n == S_PBW_MAX) {
        w->over = true;
        return;
    }
    uint32_t tag = no << 3 | wt;
    w->f[w->n++] = (s_pbf){tag, v, p};
    w->size += pbscan_varint_len(tag) + pbscan_varint_len(v) + (wt == 2 ? (size_t)v : 0);
}

static void s_pbw_varint(s_pbw *w, uint32_t no, uint64_t v)
{
    if (v)
        s_pbw_add(w, no, 0, v, NULL);
}

static void s_pbw_bytes(s_pbw *w, uint32_t no, const void *p, size_t len)
{
    if (len)
        s_pbw_add(w, no, 2, len, p);
}

static void s_pbw_str(s_pbw *w, uint32_t no, const char *s)
{
    if (s && *s)
        s_pbw_add(w, no, 2, strlen(s), s);
}

static void s_pbw_strs(s_pbw *w, uint32_t no, char *const *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        s_pbw_add(w, no, 2, v[i] ? strlen(v[i]) : 0, v[i]);
}

/* Put the listed fields under an 8-byte id key, written straight into LMDB. */
static int s_put_pbw(MDB_txn *txn, MDB_dbi dbi, const uint8_t idk[8], const s_pbw *w, unsigned flags)
{
    uint8_t *p;
    int rc = s_put_reserve(txn, dbi, idk, w->size, flags, &p);
    if (rc)
        return rc;
    for (size_t i = 0; i < w->n; i++) {
        const s_pbf *f = &w->f[i];
        p = pbscan_varint_put(p, f->tag);
        p = pbscan_varint_put(p, f->v);
        if ((f->tag & 7) == 2 && f->v) {
            memcpy(p, f->p, (size_t)f->v);
            p += f->v;
        }
    }
    return 0;
}

/* Store article a (its stored copy) under idk. */
static int s_put_article(MDB_txn *txn, MDB_dbi dbi, const uint8_t idk[8], const Bulletin__Article *a,
                         unsigned flags)
{
    s_pbw w;
    w.n = w.size = 0;
    w.over = a->base.n_unknown_fields != 0;
    s_pbw_varint(&w, 1, a->id);
    s_pbw_str(&w, 2, a->key);
    s_pbw_str(&w, 3, a->site);
    s_pbw_str(&w, 4, a->category);
    s_pbw_str(&w, 5, a->title);
    s_pbw_str(&w, 6, a->body);
    s_pbw_strs(&w, 7, a->tags, a->n_tags);
    s_pbw_str(&w, 8, a->author);
    s_pbw_str(&w, 9, a->lang);
    s_pbw_varint(&w, 10, (uint64_t)a->published_at);
    s_pbw_varint(&w, 11, (uint64_t)a->ingested_at);
    s_pbw_varint(&w, 12, (uint64_t)a->updated_at);
    s_pbw_varint(&w, 13, a->seq);
    s_pbw_bytes(&w, 14, a->content_hash.data, a->content_hash.len);
    s_pbw_str(&w, 15, a->url);
    s_pbw_str(&w, 16, a->raw);
    if (w.over)
        return s_put_packed(txn, dbi, idk, &a->base, flags);
    return s_put_pbw(txn, dbi, idk, &w, flags);
}

/* Store the summary of s, whose excerpt is the elen bytes at excerpt, under idk. */
static int s_put_summary(MDB_txn *txn, MDB_dbi dbi, const uint8_t idk[8],
                         const Bulletin__ArticleSummary *s, const char *excerpt, size_t elen,
                         unsigned flags)
{
    s_pbw w;
    w.n = w.size = 0;
    w.over = false;
    s_pbw_varint(&w, 1, s->id);
    s_pbw_str(&w, 2, s->key);
    s_pbw_str(&w, 3, s->site);
    s_pbw_str(&w, 4, s->category);
    s_pbw_str(&w, 5, s->title);
    s_pbw_varint(&w, 6, (uint64_t)s->published_at);
    s_pbw_bytes(&w, 7, excerpt, elen);
    s_pbw_strs(&w, 8, s->tags, s->n_tags);
    s_pbw_varint(&w, 9, s->seq);
    if (w.over) {
        Bulletin__ArticleSummary c = *s;
        char *e = malloc(elen + 1);
        if (!e)
            return ENOMEM;
        memcpy(e, excerpt, elen);
        e[elen] = '\0';
        c.excerpt = e;
        int rc = s_put_packed(txn, dbi, idk, &c.base, flags);
        free(e);
        return rc;
    }
    return s_put_pbw(txn, dbi, idk, &w, flags);
}

static Bulletin__ArticleSummary *s_load_summary(MDB_txn *txn, const replica_dbs *d,
                                                const uint8_t idk[8], int *rc)
{
    MDB_val k = {8, (void *)idk}, v;
    *rc = mdb_get(txn, d->summaries, &k, &v);
    if (*rc == MDB_NOTFOUND) {
        *rc = 0;
        return NULL;
    }
    if (*rc)
        return NULL;
    Bulletin__ArticleSummary *s = bulletin__article_summary__unpack(NULL, v.mv_size, v.mv_data);
    if (!s)
        *rc = MDB_CORRUPTED;
    return s;
}

static Bulletin__Article *s_load_article(MDB_txn *txn, const replica_dbs *d, const uint8_t idk[8])
{
    MDB_val k = {8, (void *)idk}, v;
    if (mdb_get(txn, d->articles, &k, &v))
        return NULL;
    return bulletin__article__unpack(NULL, v.mv_size, v.mv_data);
}

/* Drop an old version: index entries, and (unless keep_key) its key. */
static int s_unindex(MDB_txn *txn, const replica_dbs *d, const Bulletin__ArticleSummary *old,
                     const char *new_key)
{
    int rc = s_index(txn, d, old, false);
    if (rc)
        return rc;
    if (old->key && *old->key && (!new_key || strcmp(new_key, old->key) != 0)) {
        uint8_t hb[33];
        MDB_val k = s_key_dbkey(old->key, strlen(old->key), hb);
        rc = mdb_del(txn, d->keys, &k, NULL);
        if (rc && rc != MDB_NOTFOUND)
            return rc;
    }
    return 0;
}

static int s_hook_failed(replica *r);

/* Defer the hook call of a new article (s_ibuf.hq). 0 or ENOMEM. */
static int s_hook_defer(s_ibuf *b, const Bulletin__Article *copy)
{
    if (b->nhq == b->caphq) {
        Bulletin__Article *n = grow(b->hq, &b->caphq, sizeof *n, 1024);
        if (!n)
            return ENOMEM;
        b->hq = n;
    }
    b->hq[b->nhq++] = *copy;
    return 0;
}

/* Make the deferred hook calls, in order. 0 or the s_hook_failed code. */
static int s_hook_run_deferred(replica *r, MDB_txn *txn)
{
    s_ibuf *b = &r->ib;
    int rc = 0;
    for (size_t i = 0; i < b->nhq && rc == 0; i++)
        if (r->hook.on_change(r->hook.ud, txn, b->hq[i].id, NULL, &b->hq[i]) != 0)
            rc = s_hook_failed(r);
    b->nhq = 0;
    return rc;
}

/* Write what the batch deferred (index entries, hook calls): before a change
 * with an old version, and at the end of the batch. */
static int s_ibuf_flush(replica *r, MDB_txn *txn)
{
    int rc = s_ibuf_write(txn, &r->d, &r->ib);
    if (rc == 0 && r->ib.nhq)
        rc = s_hook_run_deferred(r, txn);
    return rc;
}

static int s_apply_one(replica *r, MDB_txn *txn, const Bulletin__Internal__Change *c)
{
    const replica_dbs *d = &r->d;
    const Bulletin__Article *a = c->article;
    uint64_t id = c->id ? c->id : a ? a->id : 0;
    bool put = c->op == BULLETIN__INTERNAL__CHANGE_OP__PUT;
    if (id == 0 || (put && (!a || !a->key || !*a->key))) {
        log_warn("replica.bad_change", "seq=%llu op=%d id=%llu why=\"%s\"",
                 (unsigned long long)c->seq, (int)c->op, (unsigned long long)id,
                 id == 0 ? "no id" : "PUT without an article or key");
        return 0;
    }
    uint8_t idk[8];
    replica_put_u64(idk, id);
    int rc = 0;
    /* an id past the largest stored one (a bootstrap's order) has no old version: no lookup */
    Bulletin__ArticleSummary *old = id <= r->last_id ? s_load_summary(txn, d, idk, &rc) : NULL;
    if (rc)
        return rc;
    Bulletin__Article *old_article = NULL;
    if (r->has_hook && old)
        old_article = s_load_article(txn, d, idk);
    if (old && r->ib.on && (rc = s_ibuf_flush(r, txn)))
        goto out; /* the old version's entries and index call may still be deferred */
    if (old && (rc = s_unindex(txn, d, old, put ? a->key : NULL)))
        goto out;
    if (put) {
        /* the stored copy: id and seq as the store says */
        Bulletin__Article copy = *a;
        copy.id = id;
        if (copy.seq == 0)
            copy.seq = c->seq;
        /* ids past the largest stored one (a bootstrap's order) are appended:
         * no search, and full pages instead of half-full ones after splits */
        unsigned app = id > r->last_id ? MDB_APPEND : 0;
        if ((rc = s_put_article(txn, d->articles, idk, &copy, app)))
            goto out;
        Bulletin__ArticleSummary s = BULLETIN__ARTICLE_SUMMARY__INIT;
        s.id = id;
        s.key = copy.key;
        s.site = copy.site;
        s.category = copy.category;
        s.title = copy.title;
        s.published_at = copy.published_at;
        s.n_tags = copy.n_tags;
        s.tags = copy.tags;
        s.seq = copy.seq;
        const char *body = copy.body ? copy.body : "";
        size_t blen = strlen(body);
        size_t elen = replica_excerpt_len(body, blen, REPLICA_EXCERPT_CHARS);
        if ((rc = s_put_summary(txn, d->summaries, idk, &s, body, elen, app)))
            goto out;
        if (app)
            r->last_id = id;
        if ((rc = r->ib.on ? s_index_buffered(&r->ib, &s) : s_index(txn, d, &s, true)))
            goto out;
        size_t kl = strlen(copy.key);
        if (r->ib.on && kl <= S_MAX_KEY) {
            if ((rc = s_kput_add(&r->ib, copy.key, kl, idk)))
                goto out;
        } else {
            uint8_t hb[33];
            MDB_val k = s_key_dbkey(copy.key, kl, hb), v = {8, idk};
            if ((rc = mdb_put(txn, d->keys, &k, &v, 0)))
                goto out;
        }
        if (r->has_hook && r->hook.on_change) {
            if (r->ib.on && !old)
                rc = s_hook_defer(&r->ib, &copy);
            else if (r->hook.on_change(r->hook.ud, txn, id, old_article, &copy) != 0)
                rc = s_hook_failed(r);
        }
    } else if (old) {
        MDB_val k = {8, idk};
        if ((rc = mdb_del(txn, d->articles, &k, NULL)) && rc != MDB_NOTFOUND)
            goto out;
        if ((rc = mdb_del(txn, d->summaries, &k, NULL)) && rc != MDB_NOTFOUND)
            goto out;
        rc = 0;
        if (r->has_hook && r->hook.on_change &&
            r->hook.on_change(r->hook.ud, txn, id, old_article, NULL) != 0)
            rc = s_hook_failed(r);
    }
out:
    wire_free(old);
    wire_free(old_article);
    return rc;
}

static int s_put_applied(MDB_txn *txn, const replica_dbs *d, uint64_t seq)
{
    uint8_t b[8];
    replica_put_u64(b, seq);
    MDB_val k = {11, "applied_seq"}, v = {8, b};
    return mdb_put(txn, d->meta, &k, &v, 0);
}

static int s_grow(replica *r)
{
    replica_read_end(r);
    if (r->rtxn) {
        mdb_txn_abort(r->rtxn);
        r->rtxn = NULL;
    }
    return lmdb_map_grow(r->d.env, "replica.grow", NULL);
}

/* The code the hook's last_error reports for its failure (0 when unknown). */
static int s_hook_error(replica *r)
{
    return r->has_hook && r->hook.last_error ? r->hook.last_error(r->hook.ud) : 0;
}

/* The hook failed: the code it reports (MDB_MAP_FULL: grow and replay), else
 * a guess from the COMMITTED state (a big txn may fill the map while that is
 * small): MDB_MAP_FULL when the map is over 75% full, else MDB_PANIC (give
 * up, logged by the hook). */
static int s_hook_failed(replica *r)
{
    int code = s_hook_error(r);
    if (code)
        return code;
    MDB_envinfo info;
    MDB_stat st;
    if (mdb_env_info(r->d.env, &info) == 0 && mdb_env_stat(r->d.env, &st) == 0 &&
        (double)(info.me_last_pgno + 1) * st.ms_psize > (double)info.me_mapsize * 0.75)
        return MDB_MAP_FULL;
    return MDB_PANIC;
}

/* Run fn in one write transaction, with (when `hooked`) the hook's
 * before_commit/after_abort around the commit; on MDB_MAP_FULL abort, double
 * the map and run fn again (fn must be replayable: it may only change r's
 * state through on_ok). Every write of the replica goes through here.
 * Returns 0 or the LMDB error (logged by the caller). */
static int s_write(replica *r, int (*fn)(replica *r, MDB_txn *txn, void *ud),
                   void (*on_ok)(replica *r, void *ud), void *ud, bool hooked)
{
    hooked = hooked && r->has_hook;
    int rc = 0;
    for (int attempt = 0; attempt < 8; attempt++) {
        MDB_txn *txn;
        rc = mdb_txn_begin(r->d.env, NULL, 0, &txn);
        if (rc)
            return rc;
        rc = fn(r, txn, ud);
        if (rc == 0 && hooked && r->hook.before_commit &&
            r->hook.before_commit(r->hook.ud, txn) != 0)
            rc = s_hook_failed(r);
        if (rc == 0) {
            rc = mdb_txn_commit(txn);
            if (rc == 0) {
                if (on_ok)
                    on_ok(r, ud);
                return 0;
            }
        } else {
            mdb_txn_abort(txn);
        }
        if (hooked && r->hook.after_abort)
            r->hook.after_abort(r->hook.ud);
        if (rc != MDB_MAP_FULL)
            return rc;
        if ((rc = s_grow(r)))
            return rc;
    }
    return rc;
}

typedef struct {
    Bulletin__Internal__Change *const *changes;
    size_t n;
    uint64_t applied_to, applied;
} s_apply_args;

/* The largest 8-byte id key of dbi (0 when empty). 0 or an LMDB error. */
static int s_last_id(MDB_txn *txn, MDB_dbi dbi, uint64_t *id)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, dbi, &c);
    if (rc)
        return rc;
    MDB_val k, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    *id = rc == 0 && k.mv_size == 8 ? replica_get_u64(k.mv_data) : 0;
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int s_apply_fn(replica *r, MDB_txn *txn, void *ud)
{
    s_apply_args *a = ud;
    uint64_t applied = r->applied;
    int rc = 0;
    s_ibuf_reset(&r->ib); /* a replay starts over */
    r->ib.on = a->n > 1;
    if ((rc = s_last_id(txn, r->d.articles, &r->last_id)))
        return rc;
    for (size_t i = 0; i < a->n && rc == 0; i++) {
        if (a->changes[i]->seq <= applied)
            continue;
        rc = s_apply_one(r, txn, a->changes[i]);
        if (rc == 0)
            applied = a->changes[i]->seq;
    }
    if (rc == 0 && r->ib.on)
        rc = s_ibuf_flush(r, txn);
    r->ib.on = false;
    if (rc == 0 && a->applied_to > applied)
        applied = a->applied_to;
    if (rc == 0 && applied != r->applied)
        rc = s_put_applied(txn, &r->d, applied);
    a->applied = applied;
    return rc;
}

static void s_apply_ok(replica *r, void *ud) { r->applied = ((s_apply_args *)ud)->applied; }

int replica_apply(replica *r, Bulletin__Internal__Change *const *changes, size_t n,
                  uint64_t applied_to)
{
    s_apply_args a = {changes, n, applied_to, 0};
    int rc = s_write(r, s_apply_fn, s_apply_ok, &a, true);
    if (rc) {
        log_error("replica.apply", "changes=%zu error=\"%s\"", n, mdb_strerror(rc));
        return -1;
    }
    return 0;
}

typedef struct {
    int (*fn)(void *ud, MDB_txn *txn);
    void *ud;
} s_user_args;

static int s_user_fn(replica *r, MDB_txn *txn, void *ud)
{
    s_user_args *a = ud;
    if (a->fn(a->ud, txn) == 0)
        return 0;
    int code = s_hook_error(r); /* e.g. MDB_MAP_FULL from the index's writes in fn */
    return code ? code : MDB_PANIC;
}

int replica_write(replica *r, int (*fn)(void *ud, MDB_txn *txn), void *ud)
{
    s_user_args a = {fn, ud};
    int rc = s_write(r, s_user_fn, NULL, &a, true);
    if (rc) {
        log_error("replica.write", "error=\"%s\"", mdb_strerror(rc));
        return -1;
    }
    return 0;
}

static int s_set_uuid(MDB_txn *txn, const replica_dbs *d, const uint8_t *uuid, size_t len)
{
    MDB_val k = {10, "store_uuid"}, v = {len, (void *)uuid};
    if (len == 0) {
        int rc = mdb_del(txn, d->meta, &k, NULL);
        return rc == MDB_NOTFOUND ? 0 : rc;
    }
    return mdb_put(txn, d->meta, &k, &v, 0);
}

typedef struct {
    const uint8_t *uuid;
    size_t len;
} s_uuid_args; /* a store uuid to record (len <= REPLICA_UUID_MAX) */

static int s_uuid_fn(replica *r, MDB_txn *txn, void *ud)
{
    const s_uuid_args *a = ud;
    return s_set_uuid(txn, &r->d, a->uuid, a->len);
}

static void s_uuid_ok(replica *r, void *ud)
{
    const s_uuid_args *a = ud;
    memcpy(r->uuid, a->uuid, a->len);
    r->uuid_len = a->len;
}

/* Every table emptied, applied_seq 0, the new store uuid, the hook's on_reset
 * (the index dropped): replayable like an apply (s_write). */
static int s_reset_fn(replica *r, MDB_txn *txn, void *ud)
{
    const s_uuid_args *a = ud;
    MDB_dbi all[] = {r->d.articles, r->d.summaries, r->d.keys,   r->d.by_time,
                     r->d.by_site,  r->d.by_cat,    r->d.by_tag, r->d.counts};
    int rc = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0] && rc == 0; i++)
        rc = mdb_drop(txn, all[i], 0);
    if (rc == 0)
        rc = s_put_applied(txn, &r->d, 0);
    if (rc == 0)
        rc = s_set_uuid(txn, &r->d, a->uuid, a->len);
    if (rc == 0 && r->has_hook && r->hook.on_reset && r->hook.on_reset(r->hook.ud, txn) != 0)
        rc = s_hook_failed(r);
    return rc;
}

static void s_reset_ok(replica *r, void *ud)
{
    r->applied = 0;
    s_uuid_ok(r, ud);
}

int replica_reset(replica *r, const uint8_t *uuid, size_t len)
{
    s_uuid_args a = {uuid, len > REPLICA_UUID_MAX ? REPLICA_UUID_MAX : len};
    int rc = s_write(r, s_reset_fn, s_reset_ok, &a, true);
    if (rc) {
        log_error("replica.reset", "error=\"%s\"", mdb_strerror(rc));
        return -1;
    }
    log_info("replica.reset", "uuid_len=%zu", a.len);
    return 0;
}

int replica_set_store_uuid(replica *r, const uint8_t *uuid, size_t len)
{
    /* not an index transaction: no hook calls (before_commit would flush or
     * begin a bulk job of the full-text index) */
    s_uuid_args a = {uuid, len > REPLICA_UUID_MAX ? REPLICA_UUID_MAX : len};
    int rc = s_write(r, s_uuid_fn, s_uuid_ok, &a, false);
    if (rc) {
        log_error("replica.uuid", "error=\"%s\"", mdb_strerror(rc));
        return -1;
    }
    return 0;
}

/* --- reads -------------------------------------------------------------- */

MDB_txn *replica_read_begin(replica *r)
{
    int rc;
    if (r->rtxn_live)
        return r->rtxn;
    if (r->rtxn)
        rc = mdb_txn_renew(r->rtxn);
    else
        rc = mdb_txn_begin(r->d.env, NULL, MDB_RDONLY, &r->rtxn);
    if (rc) {
        log_error("replica.read", "error=\"%s\"", mdb_strerror(rc));
        if (r->rtxn) {
            mdb_txn_abort(r->rtxn);
            r->rtxn = NULL;
        }
        return NULL;
    }
    r->rtxn_live = true;
    return r->rtxn;
}

void replica_read_end(replica *r)
{
    if (r->rtxn && r->rtxn_live)
        mdb_txn_reset(r->rtxn);
    r->rtxn_live = false;
}

uint64_t replica_count(replica *r)
{
    MDB_txn *txn = replica_read_begin(r);
    if (!txn)
        return 0;
    MDB_stat st;
    uint64_t n = mdb_stat(txn, r->d.by_time, &st) == 0 ? st.ms_entries : 0;
    replica_read_end(r);
    return n;
}

int replica_get(replica *r, uint64_t id, const char *key, Bulletin__Article **out)
{
    *out = NULL;
    MDB_txn *txn = replica_read_begin(r);
    if (!txn)
        return BULLETIN__STATUS_CODE__INTERNAL;
    int code = BULLETIN__STATUS_CODE__NOT_FOUND;
    uint8_t idk[8];
    MDB_val k, v;
    if (key && *key) {
        uint8_t hb[33];
        k = s_key_dbkey(key, strlen(key), hb);
        if (mdb_get(txn, r->d.keys, &k, &v) != 0 || v.mv_size != 8)
            goto done;
        memcpy(idk, v.mv_data, 8);
    } else {
        replica_put_u64(idk, id);
    }
    k = (MDB_val){8, idk};
    int rc = mdb_get(txn, r->d.articles, &k, &v);
    if (rc == MDB_NOTFOUND)
        goto done;
    if (rc == 0)
        *out = bulletin__article__unpack(NULL, v.mv_size, v.mv_data);
    if (!*out) {
        log_error("replica.get", "id=%llu error=\"%s\"", (unsigned long long)replica_get_u64(idk),
                  rc ? mdb_strerror(rc) : "stored article does not decode");
        code = BULLETIN__STATUS_CODE__INTERNAL;
        goto done;
    }
    if (key && *key && strcmp((*out)->key, key) != 0) { /* hashed long key collision: never */
        wire_free(*out);
        *out = NULL;
        goto done;
    }
    code = BULLETIN__STATUS_CODE__OK;
done:
    replica_read_end(r);
    return code;
}
