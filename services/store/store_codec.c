/* store_codec: see store_codec.h. Wire format reference: protobuf encoding
 * (varint = 0, length-delimited = 2; tag = field << 3 | wire type). */
#include "store_codec.h"

#include "grow.h"
#include "pbscan.h"

#include <stdlib.h>
#include <string.h>

int store_buf_reserve(store_buf *b, size_t more)
{
    if (b->cap - b->len >= more)
        return 0;
    size_t need = b->len + more;
    if (need < b->len)
        return -1;
    uint8_t *p = grow_to(b->data, &b->cap, 1, 256, need);
    if (!p)
        return -1;
    b->data = p;
    return 0;
}

int store_buf_append(store_buf *b, const void *data, size_t len)
{
    if (store_buf_reserve(b, len) < 0)
        return -1;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

void store_buf_free(store_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static size_t s_varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static int s_varint(store_buf *b, uint64_t v)
{
    if (store_buf_reserve(b, 10) < 0)
        return -1;
    while (v >= 0x80) {
        b->data[b->len++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b->data[b->len++] = (uint8_t)v;
    return 0;
}

int store_codec_uint(store_buf *b, uint32_t field, uint64_t v)
{
    if (v == 0)
        return 0;
    if (s_varint(b, (uint64_t)field << 3 | 0) < 0)
        return -1;
    return s_varint(b, v);
}

int store_codec_bytes(store_buf *b, uint32_t field, const void *data, size_t len, bool always)
{
    if (len == 0 && !always)
        return 0;
    if (store_buf_reserve(b, store_codec_field_size(field, len)) < 0)
        return -1;
    s_varint(b, (uint64_t)field << 3 | 2);
    s_varint(b, len);
    return store_buf_append(b, data, len);
}

size_t store_codec_field_size(uint32_t field, size_t len)
{
    return s_varint_size((uint64_t)field << 3 | 2) + s_varint_size(len) + len;
}

int store_codec_change(store_buf *b, uint64_t seq, int op, uint64_t id, const char *key,
                       size_t key_len, const void *art, size_t art_len)
{
    if (store_codec_uint(b, 1, seq) < 0 || store_codec_uint(b, 2, (uint64_t)op) < 0 ||
        store_codec_uint(b, 3, id) < 0 || store_codec_bytes(b, 4, key, key_len, false) < 0)
        return -1;
    if (art && store_codec_bytes(b, 5, art, art_len, true) < 0)
        return -1;
    return 0;
}

int store_codec_article_meta(const void *data, size_t len, store_article_meta *m)
{
    const uint8_t *p = data, *end = p + len;
    memset(m, 0, sizeof *m);
    m->key = "";
    pbscan_field f;
    int r;
    while ((r = pbscan_next(&p, end, &f)) > 0) {
        if (f.wire_type == PB_VARINT) {
            if (f.field == 1)
                m->id = f.value;
            else if (f.field == 10)
                m->published_at = (int64_t)f.value;
            else if (f.field == 11)
                m->ingested_at = (int64_t)f.value;
            else if (f.field == 13)
                m->seq = f.value;
        } else if (f.wire_type == PB_LEN) {
            if (f.field == 2) {
                m->key = (const char *)f.data;
                m->key_len = f.len;
            } else if (f.field == 14) {
                m->content_hash = f.data;
                m->content_hash_len = f.len;
            }
        }
    }
    if (r < 0)
        return -1;
    return 0;
}
