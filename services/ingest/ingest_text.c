/*
 * ingest_text: normalization primitives. See ingest_text.h.
 *
 * Everything is one pass over the bytes. NFC goes through utf8proc, except
 * for text made only of code points NFC never changes (ingest_text_nfc_quick:
 * all of U+0000..U+02FF, the letters of most scripts, precomposed letters,
 * CJK ideographs, most punctuation and symbols), which is already in NFC and
 * is copied.
 * The in-place operations only ever shrink the text: a whitespace run becomes
 * one byte, CR LF becomes LF.
 */
#include "ingest_text.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

bool ingest_text_is_space(uint32_t cp)
{
    if (cp < 0x80)
        return cp == ' ' || (cp >= 0x09 && cp <= 0x0d);
    switch (cp) {
    case 0x85: case 0xa0: case 0x1680: case 0x2028: case 0x2029:
    case 0x202f: case 0x205f: case 0x3000:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200a;
    }
}

size_t ingest_text_decode(const char *s, size_t n, uint32_t *cp)
{
    const uint8_t *p = (const uint8_t *)s;
    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    utf8proc_int32_t c;
    utf8proc_ssize_t k = utf8proc_iterate(p, (utf8proc_ssize_t)n, &c);
    if (k <= 0) {
        *cp = 0xfffd;
        return 1;
    }
    *cp = (uint32_t)c;
    return (size_t)k;
}

/* utf8proc 2.x comb_index: UINT16_MAX = in no composition pair; the high
 * bit set = the second code point of a pair (it can merge into the code
 * point before it); otherwise only ever the first of a pair, which changes
 * nothing unless a second follows. tests/unit/ingest/text_test.c checks this
 * reading against utf8proc's own NFC for every first/second combination. */
#define S_COMB_SECOND(ci) ((ci) != UINT16_MAX && ((ci)&0x8000) != 0)

/* True when NFC leaves code point c alone whatever its neighbours are (in a
 * string of such code points): combining class 0, never the second code
 * point of a canonical composition, and either no canonical decomposition
 * (Latin, Greek, Cyrillic, CJK letters, punctuation) or one that NFC
 * composes back to c (precomposed letters such as U+0439 or U+00E9: not
 * excluded from composition, starting with a code point that is itself a
 * starter and never a second). Hangul jamo and syllables compose
 * algorithmically, so they always take the slow path. */
static bool s_cp_stable(utf8proc_int32_t c)
{
    if ((c >= 0x1100 && c <= 0x11ff) || (c >= 0xa960 && c <= 0xa97f) ||
        (c >= 0xac00 && c <= 0xd7ff))
        return false;
    const utf8proc_property_t *pr = utf8proc_get_property(c);
    if (pr->combining_class != 0 || S_COMB_SECOND(pr->comb_index))
        return false;
    if (pr->decomp_seqindex == UINT16_MAX || pr->decomp_type != 0)
        return true; /* no decomposition, or only a compatibility one (NFKC's) */
    if (pr->comp_exclusion)
        return false;
    utf8proc_int32_t d[8];
    int boundclass = 0;
    utf8proc_ssize_t n = utf8proc_decompose_char(c, d, 8, UTF8PROC_DECOMPOSE, &boundclass);
    if (n < 2 || n > 8)
        return false; /* a singleton (never composed back) or too long to check */
    const utf8proc_property_t *p0 = utf8proc_get_property(d[0]);
    if (p0->combining_class != 0 || S_COMB_SECOND(p0->comb_index))
        return false;
    /* compose the decomposition again (in place, no allocation): NFC keeps c
     * only if that gives c back (not so for U+1F71, whose mapping is a
     * singleton to U+03AC) */
    n = utf8proc_normalize_utf32(d, n, UTF8PROC_COMPOSE | UTF8PROC_STABLE);
    return n == 1 && d[0] == c;
}

bool ingest_text_nfc_quick(const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &c);
        if (k <= 0)
            return false;
        i += (size_t)k;
        if (c >= 0x300 && !s_cp_stable(c))
            return false;
    }
    return true;
}

static char *s_copy(const char *s, size_t len, size_t *out_len)
{
    char *r = malloc(len + 1);
    if (!r)
        return NULL;
    memcpy(r, s, len);
    r[len] = '\0';
    if (out_len)
        *out_len = len;
    return r;
}

char *ingest_text_nfc(const char *s, size_t len, size_t *out_len)
{
    if (ingest_text_nfc_quick(s, len))
        return s_copy(s, len, out_len);
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &dst,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (n < 0) {
        /* only UTF8PROC_ERROR_NOMEM is possible on valid input; keep the text */
        free(dst);
        return n == UTF8PROC_ERROR_NOMEM ? NULL : s_copy(s, len, out_len);
    }
    if (out_len)
        *out_len = (size_t)n;
    return (char *)dst;
}

size_t ingest_text_trim(char *s, size_t len)
{
    size_t a = 0, b = len;
    while (a < len) {
        uint32_t cp;
        size_t k = ingest_text_decode(s + a, len - a, &cp);
        if (!ingest_text_is_space(cp))
            break;
        a += k;
    }
    /* walk back from the end: find the start of the last code point */
    while (b > a) {
        size_t st = b - 1;
        while (st > a && ((unsigned char)s[st] & 0xc0) == 0x80)
            st--;
        uint32_t cp;
        ingest_text_decode(s + st, b - st, &cp);
        if (!ingest_text_is_space(cp))
            break;
        b = st;
    }
    if (a > 0)
        memmove(s, s + a, b - a);
    s[b - a] = '\0';
    return b - a;
}

size_t ingest_text_collapse(char *s, size_t len)
{
    size_t r = 0, w = 0;
    bool pending = false;
    while (r < len) {
        uint32_t cp;
        size_t k = ingest_text_decode(s + r, len - r, &cp);
        if (ingest_text_is_space(cp)) {
            pending = w > 0; /* leading whitespace is dropped */
        } else {
            if (pending)
                s[w++] = ' ';
            pending = false;
            memmove(s + w, s + r, k);
            w += k;
        }
        r += k;
    }
    s[w] = '\0';
    return w;
}

size_t ingest_text_crlf(char *s, size_t len)
{
    char *cr = memchr(s, '\r', len);
    if (!cr)
        return len;
    size_t w = (size_t)(cr - s);
    for (size_t r = w; r < len; r++) {
        if (s[r] == '\r' && r + 1 < len && s[r + 1] == '\n')
            continue;
        s[w++] = s[r];
    }
    s[w] = '\0';
    return w;
}

char *ingest_text_lower(const char *s, size_t len, size_t *out_len)
{
    /* a simple lower-case mapping can turn a 2-byte character into 3 bytes */
    char *r = malloc(len * 2 + 1);
    if (!r)
        return NULL;
    size_t i = 0, w = 0;
    while (i < len) {
        uint32_t cp;
        size_t k = ingest_text_decode(s + i, len - i, &cp);
        if (cp < 0x80) {
            r[w++] = (char)((cp >= 'A' && cp <= 'Z') ? cp + 32 : cp);
        } else {
            utf8proc_int32_t lc = utf8proc_tolower((utf8proc_int32_t)cp);
            w += (size_t)utf8proc_encode_char(lc, (utf8proc_uint8_t *)r + w);
        }
        i += k;
    }
    r[w] = '\0';
    if (out_len)
        *out_len = w;
    return r;
}

char *ingest_text_title(const char *s, size_t len, size_t *out_len)
{
    size_t n;
    char *r = ingest_text_nfc(s, len, &n);
    if (!r)
        return NULL;
    n = ingest_text_collapse(r, n);
    if (out_len)
        *out_len = n;
    return r;
}

char *ingest_text_field(const char *s, size_t len, size_t *out_len)
{
    size_t n;
    char *r = ingest_text_nfc(s, len, &n);
    if (!r)
        return NULL;
    n = ingest_text_trim(r, n);
    if (out_len)
        *out_len = n;
    return r;
}

char *ingest_text_body(const char *s, size_t len, size_t *out_len)
{
    size_t n;
    char *r = ingest_text_nfc(s, len, &n);
    if (!r)
        return NULL;
    n = ingest_text_crlf(r, n);
    n = ingest_text_trim(r, n);
    if (out_len)
        *out_len = n;
    return r;
}
