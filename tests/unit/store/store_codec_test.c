/* store_codec: the hand-rolled encodings decode with the generated protobuf-c
 * code (Change, SyncChunk, FeedMessage, StoreReply), and the Article scanner
 * agrees with protobuf-c. Also the content hash (services/core/hash.h), which
 * the store's UNCHANGED decision rests on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include <sodium.h>
#include "store_codec.h"
#include "store_db.h"

/* hash_article_content of s_sample(); cross-checked with Python's
 * hashlib.blake2b(digest_size=16) over the encoding documented in hash.c */
#define HASH_PINNED "e604bc8b2a0da7077a08dded3b007a78"

static ProtobufCBinaryData s_pack_article(const Bulletin__Article *a)
{
    ProtobufCBinaryData b;
    b.len = bulletin__article__get_packed_size(a);
    b.data = malloc(b.len ? b.len : 1);
    bulletin__article__pack(a, b.data);
    return b;
}

static Bulletin__Article s_sample(void)
{
    static char *tags[] = {"politics", "world"};
    static uint8_t hash[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    Bulletin__Article a = BULLETIN__ARTICLE__INIT;
    a.id = 42;
    a.key = "https://news.example/a/1";
    a.site = "news.example";
    a.category = "World";
    a.title = "Title \xc3\xa9";
    a.body = "Body text";
    a.tags = tags;
    a.n_tags = 2;
    a.author = "Ann";
    a.lang = "en";
    a.published_at = -86400000; /* before 1970: negative int64 varint */
    a.ingested_at = 1700000000000;
    a.updated_at = 1700000000001;
    a.seq = 300;
    a.content_hash.data = hash;
    a.content_hash.len = sizeof hash;
    a.url = "https://news.example/a/1";
    a.raw = "raw";
    return a;
}

static void test_change_roundtrip(void **state)
{
    (void)state;
    Bulletin__Article a = s_sample();
    ProtobufCBinaryData ab = s_pack_article(&a);
    store_buf b = {0};
    assert_int_equal(store_codec_change(&b, 300, STORE_OP_PUT, 42, a.key, strlen(a.key), ab.data,
                                        ab.len),
                     0);
    Bulletin__Internal__Change *c = bulletin__internal__change__unpack(NULL, b.len, b.data);
    assert_non_null(c);
    assert_int_equal(c->seq, 300);
    assert_int_equal(c->op, BULLETIN__INTERNAL__CHANGE_OP__PUT);
    assert_int_equal(c->id, 42);
    assert_string_equal(c->key, a.key);
    assert_non_null(c->article);
    assert_string_equal(c->article->title, a.title);
    assert_int_equal(c->article->published_at, a.published_at);
    assert_int_equal(c->article->n_tags, 2);
    assert_string_equal(c->article->tags[1], "world");
    /* packing the decoded Change again gives the same bytes (same field order) */
    size_t n = bulletin__internal__change__get_packed_size(c);
    assert_int_equal(n, b.len);
    uint8_t *again = malloc(n);
    bulletin__internal__change__pack(c, again);
    assert_memory_equal(again, b.data, n);
    free(again);
    bulletin__internal__change__free_unpacked(c, NULL);

    /* a tombstone: no article, key kept */
    b.len = 0;
    assert_int_equal(store_codec_change(&b, 301, STORE_OP_DELETE, 42, "k", 1, NULL, 0), 0);
    c = bulletin__internal__change__unpack(NULL, b.len, b.data);
    assert_non_null(c);
    assert_int_equal(c->op, BULLETIN__INTERNAL__CHANGE_OP__DELETE);
    assert_string_equal(c->key, "k");
    assert_null(c->article);
    bulletin__internal__change__free_unpacked(c, NULL);

    /* an article that packs to zero bytes is still present */
    b.len = 0;
    assert_int_equal(store_codec_change(&b, 1, STORE_OP_PUT, 1, "", 0, "", 0), 0);
    c = bulletin__internal__change__unpack(NULL, b.len, b.data);
    assert_non_null(c);
    assert_non_null(c->article);
    bulletin__internal__change__free_unpacked(c, NULL);
    store_buf_free(&b);
    store_buf_free(&b);
    free(ab.data);
}

static void test_chunk_and_feed_roundtrip(void **state)
{
    (void)state;
    Bulletin__Article a = s_sample();
    ProtobufCBinaryData ab = s_pack_article(&a);
    store_buf ch = {0}, chunk = {0}, reply = {0}, feed = {0};
    uint8_t uuid[16];
    size_t expect = 0;
    memset(uuid, 0xab, sizeof uuid);
    for (uint64_t i = 0; i < 3; i++) {
        ch.len = 0;
        if (i == 2)
            assert_int_equal(store_codec_change(&ch, 10 + i, 1, 7, "gone", 4, NULL, 0), 0);
        else
            assert_int_equal(store_codec_change(&ch, 10 + i, 0, 100 + i, a.key, strlen(a.key),
                                                ab.data, ab.len),
                             0);
        assert_int_equal(store_codec_bytes(&chunk, 1, ch.data, ch.len, true), 0);
        assert_int_equal(store_codec_bytes(&feed, 1, ch.data, ch.len, true), 0);
        expect += store_codec_field_size(1, ch.len);
        assert_int_equal(chunk.len, expect);
    }
    assert_int_equal(store_codec_uint(&chunk, 2, 99), 0);
    assert_int_equal(store_codec_uint(&chunk, 3, 1), 0);
    assert_int_equal(store_codec_bytes(&chunk, 4, uuid, 16, true), 0);
    assert_int_equal(store_codec_bytes(&reply, 2, chunk.data, chunk.len, true), 0);

    Bulletin__Internal__StoreReply *sr =
        bulletin__internal__store_reply__unpack(NULL, reply.len, reply.data);
    assert_non_null(sr);
    assert_int_equal(sr->body_case, BULLETIN__INTERNAL__STORE_REPLY__BODY_SYNC);
    Bulletin__Internal__SyncChunk *c = sr->sync;
    assert_int_equal(c->n_changes, 3);
    assert_int_equal(c->head_seq, 99);
    assert_true(c->done);
    assert_int_equal(c->store_uuid.len, 16);
    assert_memory_equal(c->store_uuid.data, uuid, 16);
    assert_int_equal(c->changes[0]->seq, 10);
    assert_int_equal(c->changes[1]->id, 101);
    assert_string_equal(c->changes[1]->article->body, "Body text");
    assert_int_equal(c->changes[2]->op, BULLETIN__INTERNAL__CHANGE_OP__DELETE);
    assert_string_equal(c->changes[2]->key, "gone");
    bulletin__internal__store_reply__free_unpacked(sr, NULL);

    /* done = false is simply absent (proto3 default) */
    store_buf empty = {0};
    assert_int_equal(store_codec_uint(&empty, 3, 0), 0);
    assert_int_equal(empty.len, 0);

    assert_int_equal(store_codec_uint(&feed, 2, 12), 0);
    assert_int_equal(store_codec_bytes(&feed, 3, uuid, 16, true), 0);
    Bulletin__Internal__FeedMessage *f =
        bulletin__internal__feed_message__unpack(NULL, feed.len, feed.data);
    assert_non_null(f);
    assert_int_equal(f->n_changes, 3);
    assert_int_equal(f->last_seq, 12);
    assert_int_equal(f->changes[2]->seq, 12);
    bulletin__internal__feed_message__free_unpacked(f, NULL);

    store_buf_free(&ch);
    store_buf_free(&chunk);
    store_buf_free(&reply);
    store_buf_free(&feed);
    free(ab.data);
}

static void test_varint_edges(void **state)
{
    (void)state;
    store_buf b = {0};
    Bulletin__Internal__Change want = BULLETIN__INTERNAL__CHANGE__INIT;
    want.seq = UINT64_MAX;
    want.id = 127;
    want.op = BULLETIN__INTERNAL__CHANGE_OP__DELETE;
    want.key = "k";
    size_t n = bulletin__internal__change__get_packed_size(&want);
    uint8_t *ref = malloc(n);
    bulletin__internal__change__pack(&want, ref);
    assert_int_equal(store_codec_change(&b, UINT64_MAX, 1, 127, "k", 1, NULL, 0), 0);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.data, ref, n);
    free(ref);
    store_buf_free(&b);
}

static void test_article_meta(void **state)
{
    (void)state;
    Bulletin__Article a = s_sample();
    ProtobufCBinaryData ab = s_pack_article(&a);
    store_article_meta m;
    assert_int_equal(store_codec_article_meta(ab.data, ab.len, &m), 0);
    assert_int_equal(m.id, 42);
    assert_int_equal(m.seq, 300);
    assert_int_equal(m.published_at, -86400000);
    assert_int_equal(m.ingested_at, 1700000000000);
    assert_int_equal(m.key_len, strlen(a.key));
    assert_memory_equal(m.key, a.key, m.key_len);
    assert_int_equal(m.content_hash_len, 16);
    assert_memory_equal(m.content_hash, a.content_hash.data, 16);
    /* every truncation is either a valid prefix or -1, never a read past the end */
    for (size_t cut = 0; cut < ab.len; cut++) {
        uint8_t *p = malloc(cut ? cut : 1);
        memcpy(p, ab.data, cut);
        (void)store_codec_article_meta(p, cut, &m);
        free(p);
    }
    /* a cut inside the title's bytes is malformed */
    assert_int_equal(store_codec_article_meta(ab.data, 40, &m), -1);
    /* garbage: wire type 7 */
    uint8_t bad[] = {0x0f, 0x01};
    assert_int_equal(store_codec_article_meta(bad, sizeof bad, &m), -1);
    /* empty = an all-default article */
    assert_int_equal(store_codec_article_meta("", 0, &m), 0);
    assert_int_equal(m.key_len, 0);
    free(ab.data);
}

/* --- content hash -------------------------------------------------------- */

static void test_hash_stable(void **state)
{
    (void)state;
    Bulletin__Article a = s_sample();
    uint8_t h1[16], h2[16];
    char hex[33];
    hash_article_content(&a, h1);
    hash_to_hex(h1, 16, hex);
    /* pinned: changing the canonical encoding changes every stored hash */
    assert_string_equal(hex, HASH_PINNED);

    /* id, seq, timestamps and content_hash are not content */
    Bulletin__Article b = a;
    b.id = 1;
    b.seq = 2;
    b.ingested_at = 3;
    b.updated_at = 4;
    b.content_hash.len = 0;
    hash_article_content(&b, h2);
    assert_memory_equal(h1, h2, 16);

    /* each content field matters */
    const char *alt = "other";
    char **fields[] = {&b.key, &b.url, &b.site, &b.category, &b.title,
                       &b.body, &b.author, &b.lang, &b.raw};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        b = a;
        char **f = (char **)((char *)&b + ((char *)fields[i] - (char *)&b));
        *f = (char *)alt;
        hash_article_content(&b, h2);
        assert_memory_not_equal(h1, h2, 16);
    }
    b = a;
    b.published_at = 0;
    hash_article_content(&b, h2);
    assert_memory_not_equal(h1, h2, 16);

    /* boundaries are unambiguous: tags ["ab"] != ["a","b"], title|body shifts */
    char *t1[] = {"ab"}, *t2[] = {"a", "b"};
    b = a;
    b.tags = t1;
    b.n_tags = 1;
    hash_article_content(&b, h1);
    b.tags = t2;
    b.n_tags = 2;
    hash_article_content(&b, h2);
    assert_memory_not_equal(h1, h2, 16);
    b = a;
    b.title = "ab";
    b.body = "c";
    hash_article_content(&b, h1);
    b.title = "a";
    b.body = "bc";
    hash_article_content(&b, h2);
    assert_memory_not_equal(h1, h2, 16);
    /* NULL strings hash like empty ones */
    b = a;
    b.author = NULL;
    hash_article_content(&b, h1);
    b.author = "";
    hash_article_content(&b, h2);
    assert_memory_equal(h1, h2, 16);
}

/* The encoding of hash.c written out field by field, one BLAKE2b update per
 * piece: hash_article_content gathers the pieces in a buffer, and must give
 * the same digest for every size (short, around its buffer size, long). */
static void s_ref_u64(crypto_generichash_state *st, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    crypto_generichash_update(st, b, 8);
}

static void s_ref_str(crypto_generichash_state *st, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    s_ref_u64(st, n);
    crypto_generichash_update(st, (const unsigned char *)s, n);
}

static void s_ref_hash(const Bulletin__Article *a, uint8_t out[16])
{
    static const char domain[] = "bulletin.article.v1";
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 16);
    crypto_generichash_update(&st, (const unsigned char *)domain, sizeof domain);
    s_ref_str(&st, a->key);
    s_ref_str(&st, a->url);
    s_ref_str(&st, a->site);
    s_ref_str(&st, a->category);
    s_ref_str(&st, a->title);
    s_ref_str(&st, a->body);
    s_ref_u64(&st, a->n_tags);
    for (size_t i = 0; i < a->n_tags; i++)
        s_ref_str(&st, a->tags[i]);
    s_ref_str(&st, a->author);
    s_ref_str(&st, a->lang);
    s_ref_u64(&st, (uint64_t)a->published_at);
    s_ref_str(&st, a->raw);
    crypto_generichash_final(&st, out, 16);
}

static void test_hash_sizes(void **state)
{
    (void)state;
    static const size_t sizes[] = {0,    1,    7,    8,    127,  128,  129,  1000, 1023, 1024,
                                   1025, 2000, 2040, 2047, 2048, 2049, 4096, 9000, 70000};
    const size_t ns = sizeof sizes / sizeof sizes[0];
    char *buf[3];
    for (int k = 0; k < 3; k++) {
        buf[k] = malloc(70001);
        assert_non_null(buf[k]);
        for (size_t i = 0; i < 70000; i++)
            buf[k][i] = (char)('a' + (i * 7 + (size_t)k * 3) % 26);
        buf[k][70000] = '\0';
    }
    uint8_t h1[16], h2[16];
    for (size_t i = 0; i < ns; i++)
        for (size_t j = 0; j < ns; j += 3) {
            Bulletin__Article a = s_sample();
            char *tags[3] = {buf[2] + 70000 - sizes[(i + j) % ns], "x", buf[2] + 70000 - sizes[j]};
            buf[0][sizes[i]] = '\0';
            buf[1][sizes[j]] = '\0';
            a.title = buf[0];
            a.body = buf[1];
            a.tags = tags;
            a.n_tags = 3;
            a.raw = buf[0] + sizes[i] / 2;
            hash_article_content(&a, h1);
            s_ref_hash(&a, h2);
            assert_memory_equal(h1, h2, 16);
            buf[0][sizes[i]] = 'q';
            buf[1][sizes[j]] = 'q';
        }
    Bulletin__Article a = s_sample();
    hash_article_content(&a, h1);
    s_ref_hash(&a, h2);
    assert_memory_equal(h1, h2, 16);
    for (int k = 0; k < 3; k++)
        free(buf[k]);
}

static void test_hash_hex(void **state)
{
    (void)state;
    char out[2 * HASH_MAX_BYTES + 1];
    hash_hex("abc", 3, out, 16);
    assert_int_equal(strlen(out), 32);
    /* BLAKE2b-512("abc") from RFC 7693 appendix A */
    hash_hex("abc", 3, out, 64);
    assert_string_equal(out, "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
                             "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923");
    hash_hex("abc", 3, out, 1000); /* clamped to 64 */
    assert_int_equal(strlen(out), 128);
    hash_hex("abc", 3, out, 1); /* clamped to 16 */
    assert_int_equal(strlen(out), 32);
    uint8_t raw[2] = {0x0f, 0xa0};
    hash_to_hex(raw, 2, out);
    assert_string_equal(out, "0fa0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_change_roundtrip),   cmocka_unit_test(test_chunk_and_feed_roundtrip),
        cmocka_unit_test(test_varint_edges),       cmocka_unit_test(test_article_meta),
        cmocka_unit_test(test_hash_stable),        cmocka_unit_test(test_hash_hex),
        cmocka_unit_test(test_hash_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
