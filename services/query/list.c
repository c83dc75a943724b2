/* list: see list.h for the plan and the cursor. */
#include "list.h"

#include "grow.h"
#include "pbscan.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_CURSOR_VERSION 1

uint64_t list_filter_hash(const Bulletin__Filter *f)
{
    crypto_generichash_state st;
    uint8_t out[16];
    crypto_generichash_init(&st, NULL, 0, sizeof out);
    const char *strs[3] = {f ? f->site : NULL, f ? f->category : NULL, f ? f->tag : NULL};
    for (int i = 0; i < 3; i++) {
        const char *s = strs[i] ? strs[i] : "";
        uint8_t len[8];
        replica_put_u64(len, strlen(s));
        crypto_generichash_update(&st, len, 8);
        crypto_generichash_update(&st, (const uint8_t *)s, strlen(s));
    }
    uint8_t t[16];
    replica_put_time(t, f ? f->since : 0);
    replica_put_time(t + 8, f ? f->until : 0);
    crypto_generichash_update(&st, t, 16);
    crypto_generichash_final(&st, out, sizeof out);
    return replica_get_u64(out);
}

void list_cursor_encode(uint8_t out[LIST_CURSOR_LEN], int order, uint64_t fh, int64_t pub,
                        uint64_t id)
{
    out[0] = S_CURSOR_VERSION;
    out[1] = (uint8_t)order;
    replica_put_u64(out + 2, fh);
    replica_put_time(out + 10, pub);
    replica_put_u64(out + 18, id);
}

int list_cursor_decode(const uint8_t *c, size_t len, int order, uint64_t fh, int64_t *pub,
                       uint64_t *id)
{
    if (len != LIST_CURSOR_LEN || c[0] != S_CURSOR_VERSION || c[1] != (uint8_t)order ||
        replica_get_u64(c + 2) != fh)
        return -1;
    *pub = replica_get_time(c + 10);
    *id = replica_get_u64(c + 18);
    return 0;
}

void list_result_clear(list_result *res)
{
    free(res->items);
    res->items = NULL;
    res->n_items = res->items_len = res->items_cap = 0;
    bulletin__list_reply__init(&res->reply);
}

/* --- serialization by concatenation ------------------------------------------
 * A protobuf message may carry its fields in any order and a repeated field's
 * entries anywhere in it, so a ListReply is [packed rest][items...] and a Reply
 * is [packed head][tag 13, LEN][ListReply]. */

#define S_TAG_LEN(field) ((uint8_t)((field) << 3 | 2)) /* wire type 2, field < 16 */
#define S_VARINT_MAX 10

/* Append one stored summary, framed as ListReply field 1. 0 or -1 (ENOMEM). */
static int s_items_append(list_result *res, const void *data, size_t len)
{
    size_t need = res->items_len + 1 + S_VARINT_MAX + len;
    if (need > res->items_cap) {
        uint8_t *nb = grow_to(res->items, &res->items_cap, 1, 8192, need);
        if (!nb)
            return -1;
        res->items = nb;
    }
    uint8_t *p = res->items + res->items_len;
    *p++ = S_TAG_LEN(1);
    p = pbscan_varint_put(p, len);
    memcpy(p, data, len);
    res->items_len = (size_t)(p - res->items) + len;
    res->n_items++;
    return 0;
}

static void s_free_buf(void *data, void *hint)
{
    (void)hint;
    free(data);
}

int list_reply_pack_zmq(const Bulletin__Reply *head, const list_result *res, zmq_msg_t *out)
{
    size_t hsz = protobuf_c_message_get_packed_size(&head->base);
    size_t rsz = protobuf_c_message_get_packed_size(&res->reply.base); /* cursor, total */
    size_t lsz = rsz + res->items_len;
    size_t total = hsz + 1 + pbscan_varint_len(lsz) + lsz;
    uint8_t *buf = malloc(total);
    if (!buf) {
        zmq_msg_init(out);
        return -1;
    }
    uint8_t *p = buf;
    p += protobuf_c_message_pack(&head->base, p);
    *p++ = S_TAG_LEN(13); /* Reply.list */
    p = pbscan_varint_put(p, lsz);
    p += protobuf_c_message_pack(&res->reply.base, p);
    if (res->items_len)
        memcpy(p, res->items, res->items_len);
    if (zmq_msg_init_data(out, buf, total, s_free_buf, NULL) != 0) {
        free(buf);
        zmq_msg_init(out);
        return -1;
    }
    return 0;
}

/* One attribute constraint: an index and the value's hash. */
typedef struct {
    MDB_dbi dbi;
    uint8_t h[REPLICA_HASH_LEN];
    uint64_t count;
} s_attr;

/* The walk: prefix (0 or 16 bytes) + 16-byte tail [pub][id]. */
typedef struct {
    MDB_txn *txn;
    const replica_dbs *d;
    MDB_dbi dbi;
    size_t plen;
    uint8_t prefix[REPLICA_HASH_LEN];
    uint8_t lo[16];        /* inclusive */
    uint8_t hi[16];        /* exclusive, when has_hi */
    bool has_hi;
    s_attr others[3];
    int n_others;
} s_plan;

/* Does the cursor's current key belong to the walk? 1 yes, 0 past the end. */
static int s_in_range(const s_plan *p, const MDB_val *k)
{
    if (k->mv_size != p->plen + 16 || (p->plen && memcmp(k->mv_data, p->prefix, p->plen) != 0))
        return 0;
    const uint8_t *tail = (const uint8_t *)k->mv_data + p->plen;
    if (memcmp(tail, p->lo, 16) < 0)
        return 0;
    if (p->has_hi && memcmp(tail, p->hi, 16) >= 0)
        return 0;
    return 1;
}

static bool s_matches_others(const s_plan *p, const uint8_t tail[16])
{
    for (int i = 0; i < p->n_others; i++) {
        uint8_t kb[REPLICA_HASH_LEN + 16];
        memcpy(kb, p->others[i].h, REPLICA_HASH_LEN);
        memcpy(kb + REPLICA_HASH_LEN, tail, 16);
        MDB_val k = {sizeof kb, kb}, v;
        if (mdb_get(p->txn, p->others[i].dbi, &k, &v) != 0)
            return false;
    }
    return true;
}

/* Position cursor `c` on the first key of the walk. newest: descending.
 * start (may be NULL) is a tail: the walk starts strictly after it when
 * `exclusive`, at or after it otherwise. Returns 0 positioned, MDB_NOTFOUND
 * when nothing, or an LMDB error. */
static int s_seek(const s_plan *p, MDB_cursor *c, bool newest, const uint8_t *start,
                  bool exclusive, MDB_val *k)
{
    uint8_t kb[REPLICA_HASH_LEN + 16];
    memcpy(kb, p->prefix, p->plen);
    MDB_val v;
    int rc;
    if (!newest) {
        memcpy(kb + p->plen, start ? start : p->lo, 16);
        *k = (MDB_val){p->plen + 16, kb};
        rc = mdb_cursor_get(c, k, &v, MDB_SET_RANGE);
        if (rc == 0 && exclusive && k->mv_size == p->plen + 16 &&
            memcmp(k->mv_data, kb, p->plen + 16) == 0)
            rc = mdb_cursor_get(c, k, &v, MDB_NEXT);
        return rc;
    }
    /* descending: the greatest key < target (or <= when inclusive) */
    if (start) {
        memcpy(kb + p->plen, start, 16);
    } else if (p->has_hi) {
        memcpy(kb + p->plen, p->hi, 16);
        exclusive = true;
    } else {
        memset(kb + p->plen, 0xff, 16);
        exclusive = false;
    }
    *k = (MDB_val){p->plen + 16, kb};
    MDB_val target = *k;
    rc = mdb_cursor_get(c, k, &v, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND)
        return mdb_cursor_get(c, k, &v, MDB_LAST);
    if (rc)
        return rc;
    if (!exclusive && k->mv_size == target.mv_size &&
        memcmp(k->mv_data, target.mv_data, target.mv_size) == 0)
        return 0;
    return mdb_cursor_get(c, k, &v, MDB_PREV);
}

/* Count every match of the plan (for with_total). */
static int s_count(const s_plan *p, uint64_t *total)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(p->txn, p->dbi, &c);
    if (rc)
        return rc;
    MDB_val k, v;
    uint64_t n = 0;
    rc = s_seek(p, c, false, NULL, false, &k);
    while (rc == 0 && s_in_range(p, &k)) {
        if (s_matches_others(p, (const uint8_t *)k.mv_data + p->plen))
            n++;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    *total = n;
    return 0;
}

int list_run(replica *r, const Bulletin__ListRequest *req, list_result *out, char *why,
             size_t why_cap)
{
    memset(out, 0, sizeof *out);
    bulletin__list_reply__init(&out->reply);
    const Bulletin__Filter *f = req->filter;
    int order = req->order == BULLETIN__ORDER__OLDEST_FIRST ? 1 : 0;
    if (req->order != BULLETIN__ORDER__NEWEST_FIRST && req->order != BULLETIN__ORDER__OLDEST_FIRST) {
        snprintf(why, why_cap, "unknown order %d (use NEWEST_FIRST or OLDEST_FIRST)", (int)req->order);
        return BULLETIN__STATUS_CODE__INVALID_ARGUMENT;
    }
    size_t limit = req->limit ? req->limit : LIST_DEFAULT_LIMIT;
    if (limit > LIST_MAX_LIMIT) {
        snprintf(why, why_cap, "limit %u is out of range (1..%d, 0 = default %d)", req->limit,
                 LIST_MAX_LIMIT, LIST_DEFAULT_LIMIT);
        return BULLETIN__STATUS_CODE__INVALID_ARGUMENT;
    }
    uint64_t fh = list_filter_hash(f);
    int64_t cpub = 0;
    uint64_t cid = 0;
    bool has_cursor = req->cursor.len > 0;
    if (has_cursor &&
        list_cursor_decode(req->cursor.data, req->cursor.len, order, fh, &cpub, &cid) != 0) {
        snprintf(why, why_cap, "the cursor is malformed or was made for another filter or order; "
                               "start again without a cursor");
        return BULLETIN__STATUS_CODE__INVALID_ARGUMENT;
    }
    const replica_dbs *d = replica_dbs_get(r);
    MDB_txn *txn = replica_read_begin(r);
    if (!txn) {
        snprintf(why, why_cap, "the replica could not be read; see the worker's log");
        return BULLETIN__STATUS_CODE__INTERNAL;
    }
    s_plan p = {.txn = txn, .d = d, .dbi = d->by_time};
    int64_t since = f ? f->since : 0, until = f ? f->until : 0;
    replica_put_time(p.lo, since ? since : INT64_MIN);
    memset(p.lo + 8, 0, 8);
    p.has_hi = until != 0;
    replica_put_time(p.hi, until);
    memset(p.hi + 8, 0, 8);

    /* attribute filters, smallest first as the driver */
    struct {
        const char *v;
        replica_kind kind;
        MDB_dbi dbi;
    } attrs[3] = {{f ? f->site : NULL, REPLICA_SITE, d->by_site},
                  {f ? f->category : NULL, REPLICA_CATEGORY, d->by_cat},
                  {f ? f->tag : NULL, REPLICA_TAG, d->by_tag}};
    s_attr all[3];
    int nall = 0;
    bool empty = false;
    for (int i = 0; i < 3; i++) {
        if (!attrs[i].v || !*attrs[i].v)
            continue;
        s_attr *a = &all[nall++];
        a->dbi = attrs[i].dbi;
        replica_hash(attrs[i].v, strlen(attrs[i].v), a->h);
        uint8_t kb[1 + REPLICA_HASH_LEN];
        kb[0] = (uint8_t)attrs[i].kind;
        memcpy(kb + 1, a->h, REPLICA_HASH_LEN);
        MDB_val k = {sizeof kb, kb}, v;
        a->count = mdb_get(txn, d->counts, &k, &v) == 0 && v.mv_size == 8
                       ? replica_get_u64(v.mv_data) : 0;
        if (a->count == 0)
            empty = true;
    }
    if (nall > 0) {
        int best = 0;
        for (int i = 1; i < nall; i++)
            if (all[i].count < all[best].count)
                best = i;
        p.dbi = all[best].dbi;
        p.plen = REPLICA_HASH_LEN;
        memcpy(p.prefix, all[best].h, REPLICA_HASH_LEN);
        for (int i = 0; i < nall; i++)
            if (i != best)
                p.others[p.n_others++] = all[i];
    }
    if (p.has_hi && memcmp(p.hi, p.lo, 16) <= 0)
        empty = true;

    int code = BULLETIN__STATUS_CODE__OK;
    int rc = 0;
    if (!empty) {
        MDB_cursor *c;
        if ((rc = mdb_cursor_open(txn, p.dbi, &c)))
            goto fail;
        uint8_t start[16];
        if (has_cursor) {
            replica_put_time(start, cpub);
            replica_put_u64(start + 8, cid);
        }
        bool newest = order == 0;
        MDB_val k, v;
        uint8_t last[16] = {0}; /* [pub][id] of the last item added */
        rc = s_seek(&p, c, newest, has_cursor ? start : NULL, true, &k);
        while (rc == 0 && s_in_range(&p, &k)) {
            const uint8_t *tail = (const uint8_t *)k.mv_data + p.plen;
            if (s_matches_others(&p, tail)) {
                if (out->n_items == limit) {
                    /* the page is full and more follow: continue after the last item */
                    list_cursor_encode(out->cursor, order, fh, replica_get_time(last),
                                       replica_get_u64(last + 8));
                    out->reply.next_cursor.data = out->cursor;
                    out->reply.next_cursor.len = LIST_CURSOR_LEN;
                    break;
                }
                /* the stored summary goes into the reply as it is (no decode) */
                MDB_val sk = {8, (void *)(tail + 8)}, sv;
                if ((rc = mdb_get(txn, d->summaries, &sk, &sv))) {
                    if (rc == MDB_NOTFOUND)
                        rc = MDB_CORRUPTED; /* indexed but no summary */
                    break;
                }
                if (sv.mv_size == 0) {
                    rc = MDB_CORRUPTED;
                    break;
                }
                if (s_items_append(out, sv.mv_data, sv.mv_size) < 0) {
                    mdb_cursor_close(c);
                    snprintf(why, why_cap, "out of memory");
                    code = BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED;
                    goto done;
                }
                memcpy(last, tail, 16);
            }
            rc = mdb_cursor_get(c, &k, &v, newest ? MDB_PREV : MDB_NEXT);
        }
        mdb_cursor_close(c);
        if (rc == MDB_NOTFOUND)
            rc = 0;
        if (rc)
            goto fail;
    }
    if (req->with_total) {
        uint64_t total = 0;
        if (empty) {
            total = 0;
        } else if (since == 0 && until == 0 && nall == 0) {
            MDB_stat st;
            if ((rc = mdb_stat(txn, d->by_time, &st)))
                goto fail;
            total = st.ms_entries;
        } else if (since == 0 && until == 0 && nall == 1) {
            total = all[0].count;
        } else if ((rc = s_count(&p, &total))) {
            goto fail;
        }
        out->reply.total = total;
        out->reply.has_total = true;
    }
    goto done;
fail:
    snprintf(why, why_cap, "the replica could not be read (%s); see the worker's log",
             mdb_strerror(rc));
    code = BULLETIN__STATUS_CODE__INTERNAL;
done:
    replica_read_end(r);
    return code;
}
