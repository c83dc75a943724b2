/*
 * hash: see hash.h. The canonical content encoding is
 *
 *   "bulletin.article.v1\0"
 *   for each of key, url, site, category, title, body:  u64le(len) bytes
 *   u64le(tag count), then for each tag:                 u64le(len) bytes
 *   for each of author, lang:                            u64le(len) bytes
 *   i64le(published_at)
 *   raw:                                                 u64le(len) bytes
 *
 * Length prefixes make the encoding injective (no two different articles
 * share an input to BLAKE2b).
 */
#include "hash.h"

#include <pthread.h>
#include <sodium.h>
#include <string.h>

static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void s_init(void)
{
    /* generichash needs no init, but sodium_init picks the fastest
     * implementation for this CPU; a failure only means the portable one. */
    if (sodium_init() < 0)
        return; /* the portable code paths still work */
}

static size_t s_clamp(size_t bytes)
{
    if (bytes < HASH_MIN_BYTES)
        return HASH_MIN_BYTES;
    if (bytes > HASH_MAX_BYTES)
        return HASH_MAX_BYTES;
    return bytes;
}

/* The encoding goes to BLAKE2b through a small staging buffer: the length
 * prefixes and short strings are gathered and passed in one update, long
 * strings go straight through. Same bytes, same order, so the same hash as
 * one update per field; but ~3 updates per article instead of ~25 (each
 * update has a fixed cost that dominated for 8-byte prefixes). */
#define S_STAGE 2048

typedef struct {
    crypto_generichash_state st;
    size_t n;
    unsigned char buf[S_STAGE];
} s_hasher;

static void s_flush(s_hasher *h)
{
    if (h->n)
        crypto_generichash_update(&h->st, h->buf, h->n);
    h->n = 0;
}

static void s_put(s_hasher *h, const void *data, size_t len)
{
    if (len > S_STAGE - h->n) {
        s_flush(h);
        if (len > S_STAGE / 2) {
            crypto_generichash_update(&h->st, data, len);
            return;
        }
    }
    memcpy(h->buf + h->n, data, len);
    h->n += len;
}

static void s_u64(s_hasher *h, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    s_put(h, b, sizeof b);
}

static void s_str(s_hasher *h, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    s_u64(h, n);
    if (n)
        s_put(h, s, n);
}

void hash_article_content(const Bulletin__Article *a, uint8_t out[HASH_CONTENT_BYTES])
{
    static const char domain[] = "bulletin.article.v1";
    s_hasher h;
    h.n = 0;
    pthread_once(&s_once, s_init);
    crypto_generichash_init(&h.st, NULL, 0, HASH_CONTENT_BYTES);
    s_put(&h, domain, sizeof domain);
    s_str(&h, a->key);
    s_str(&h, a->url);
    s_str(&h, a->site);
    s_str(&h, a->category);
    s_str(&h, a->title);
    s_str(&h, a->body);
    s_u64(&h, a->n_tags);
    for (size_t i = 0; i < a->n_tags; i++)
        s_str(&h, a->tags[i]);
    s_str(&h, a->author);
    s_str(&h, a->lang);
    s_u64(&h, (uint64_t)a->published_at);
    s_str(&h, a->raw);
    s_flush(&h);
    crypto_generichash_final(&h.st, out, HASH_CONTENT_BYTES);
}

void hash_bytes(const void *data, size_t len, uint8_t *out, size_t bytes)
{
    pthread_once(&s_once, s_init);
    crypto_generichash(out, s_clamp(bytes), data, len, NULL, 0);
}

void hash_to_hex(const void *data, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * len] = '\0';
}

void hash_hex(const void *data, size_t len, char *out, size_t bytes)
{
    uint8_t d[HASH_MAX_BYTES];
    bytes = s_clamp(bytes);
    hash_bytes(data, len, d, bytes);
    hash_to_hex(d, bytes, out);
}
