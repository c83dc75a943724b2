/*
 * store_codec: hand-rolled protobuf encoding for the store's hot paths.
 *
 * The store keeps every article as packed bulletin.Article bytes. Sync chunks
 * and feed messages embed those bytes as-is instead of unpacking and repacking
 * each article: a protobuf message is a sequence of fields in any order, and
 * the concatenation of two encodings is their merge, so
 *
 *   Change     = [seq][op][id][key]  ++ field 5 (article bytes as stored)
 *   SyncChunk  = field 1 (Change) ... ++ [head_seq][done][store_uuid]
 *   FeedMessage= field 1 (Change) ... ++ [last_seq][store_uuid]
 *   StoreReply = field 2 (SyncChunk bytes)
 *
 * decode with the generated bulletin_internal__*__unpack like any other
 * encoding (see tests/unit/store/store_codec_test.c).
 */
#ifndef STORE_CODEC_H
#define STORE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer. Zero-initialize ({0}) before use. */
typedef struct {
    uint8_t *data;
    size_t len, cap;
} store_buf;

/* Make room for `more` bytes. 0, or -1 when out of memory (buf unchanged). */
int store_buf_reserve(store_buf *b, size_t more);
/* Append bytes. 0 or -1 (out of memory). */
int store_buf_append(store_buf *b, const void *data, size_t len);
/* Free the memory and zero the buffer; safe twice. */
void store_buf_free(store_buf *b);

/* Append a varint field (skipped when v == 0, as proto3 does). 0 or -1. */
int store_codec_uint(store_buf *b, uint32_t field, uint64_t v);
/* Append a length-delimited field (bytes, string or embedded message);
 * skipped when len == 0 unless `always`. 0 or -1. */
int store_codec_bytes(store_buf *b, uint32_t field, const void *data, size_t len, bool always);

/* Size of a length-delimited field of `len` bytes, with its tag and length. */
size_t store_codec_field_size(uint32_t field, size_t len);

/* Append one whole bulletin.internal.Change as a raw message (no outer tag):
 * seq, op (0 PUT, 1 DELETE), id, key, and for PUT the packed Article bytes
 * (art may be NULL/0 for DELETE). 0 or -1. */
int store_codec_change(store_buf *b, uint64_t seq, int op, uint64_t id, const char *key,
                       size_t key_len, const void *art, size_t art_len);

/* The fields of a packed bulletin.Article the store needs on the write
 * path, read without unpacking the whole message. Pointers point into the
 * packed bytes (valid as long as they are). */
typedef struct {
    uint64_t id, seq;
    int64_t published_at, ingested_at;
    const char *key; /* NOT NUL-terminated: use key_len */
    size_t key_len;
    const uint8_t *content_hash;
    size_t content_hash_len;
} store_article_meta;

/* Scan a packed bulletin.Article for store_article_meta (last occurrence of
 * a field wins, as in protobuf). 0, or -1 when the bytes are not a
 * well-formed protobuf message. */
int store_codec_article_meta(const void *data, size_t len, store_article_meta *m);

#endif
