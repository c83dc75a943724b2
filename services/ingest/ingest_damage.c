/*
 * ingest_damage: see ingest_damage.h.
 *
 * The scan jumps from one interesting byte to the next: '?' (0x3f), 0xC3/0xC2
 * (the UTF-8 lead byte of U+00C0..U+00FF and U+0080..U+00BF) and 0xEF (lead
 * byte of U+FFFD). Plain ASCII text costs a memchr-like loop.
 */
#include "ingest_damage.h"

#include "ingest_text.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <utf8proc.h>

static bool s_is_letter(uint32_t cp)
{
    if (cp < 0x80)
        return (cp | 32) >= 'a' && (cp | 32) <= 'z';
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
}

/* The characters cp1252 maps bytes 0x80..0x9F to. */
static bool s_is_cp1252_high(uint32_t cp)
{
    switch (cp) {
    case 0x20ac: case 0x201a: case 0x0192: case 0x201e: case 0x2026: case 0x2020:
    case 0x2021: case 0x02c6: case 0x2030: case 0x0160: case 0x2039: case 0x0152:
    case 0x017d: case 0x2018: case 0x2019: case 0x201c: case 0x201d: case 0x2022:
    case 0x2013: case 0x2014: case 0x02dc: case 0x2122: case 0x0161: case 0x203a:
    case 0x0153: case 0x017e: case 0x0178:
        return true;
    default:
        return cp >= 0x80 && cp <= 0xbf;
    }
}

/* Start of the code point that ends right before byte i. */
static size_t s_prev_start(const char *s, size_t i)
{
    size_t st = i - 1;
    while (st > 0 && ((unsigned char)s[st] & 0xc0) == 0x80 && i - st < 4)
        st--;
    return st;
}

static void s_hit(ingest_damage *d, ingest_damage_kind k, size_t at)
{
    if (d->count[k]++ == 0)
        d->first[k] = at;
}

void ingest_damage_find(const char *s, size_t len, ingest_damage *d)
{
    memset(d, 0, sizeof *d);
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        if (c != '?' && c != 0xc2 && c != 0xc3 && c != 0xe2 && c != 0xef) {
            i++;
            continue;
        }
        if (c == '?') {
            size_t j = i;
            while (j < len && p[j] == '?')
                j++;
            if (j - i >= 2) {
                uint32_t before = 0, after = 0;
                if (i > 0)
                    ingest_text_decode(s + s_prev_start(s, i), i - s_prev_start(s, i), &before);
                if (j < len)
                    ingest_text_decode(s + j, len - j, &after);
                if ((i > 0 && s_is_letter(before)) || (j < len && s_is_letter(after)))
                    s_hit(d, INGEST_DAMAGE_LOST, i);
            }
            i = j;
            continue;
        }
        uint32_t cp;
        size_t k = ingest_text_decode(s + i, len - i, &cp);
        if (cp == 0xfffd) {
            s_hit(d, INGEST_DAMAGE_FFFD, i);
        } else if ((cp == 0xc2 || cp == 0xc3 || cp == 0xe2) && i + k < len) {
            uint32_t next;
            ingest_text_decode(s + i + k, len - i - k, &next);
            if (s_is_cp1252_high(next))
                s_hit(d, INGEST_DAMAGE_MOJIBAKE, i);
        }
        i += k;
    }
}

/* Copy up to `want` bytes of context around [at, at+span) into out, cut at
 * character boundaries, control characters shown as spaces. */
static void s_context(const char *s, size_t len, size_t at, size_t span, char *out, size_t cap)
{
    const size_t want = 16;
    size_t a = at > want ? at - want : 0, b = at + span + want < len ? at + span + want : len;
    while (a > 0 && a < len && ((unsigned char)s[a] & 0xc0) == 0x80)
        a--;
    while (b < len && ((unsigned char)s[b] & 0xc0) == 0x80)
        b++;
    size_t w = 0;
    for (size_t i = a; i < b && w + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        out[w++] = (char)(c < 0x20 || c == 0x7f ? ' ' : c);
    }
    /* never end in the middle of a character */
    while (w > 0 && ((unsigned char)out[w - 1] & 0x80)) {
        size_t st = w - 1;
        while (st > 0 && ((unsigned char)out[st] & 0xc0) == 0x80)
            st--;
        uint32_t cp;
        size_t k = ingest_text_decode(out + st, w - st, &cp);
        if (st + k == w)
            break;
        w = st;
    }
    out[w] = '\0';
}

int ingest_damage_describe(const char *field, const char *s, size_t len, const ingest_damage *d,
                           ingest_damage_kind kind, char *buf, size_t cap)
{
    if (cap)
        buf[0] = '\0';
    if (kind >= INGEST_DAMAGE_KINDS || d->count[kind] == 0)
        return -1;
    size_t n = d->count[kind], at = d->first[kind], span = 1;
    if (kind == INGEST_DAMAGE_LOST)
        while (at + span < len && s[at + span] == '?')
            span++;
    char ctx[96];
    s_context(s, len, at, span, ctx, sizeof ctx);
    const char *what;
    switch (kind) {
    case INGEST_DAMAGE_LOST:
        what = n == 1 ? "place where characters look lost ('?\?')"
                      : "places where characters look lost ('?\?')";
        break;
    case INGEST_DAMAGE_FFFD:
        what = n == 1 ? "U+FFFD replacement character (a character lost in decoding)"
                      : "U+FFFD replacement characters (characters lost in decoding)";
        break;
    default:
        what = n == 1 ? "place that looks like UTF-8 read as Latin-1 (mojibake such as 'Ã©' for 'é')"
                      : "places that look like UTF-8 read as Latin-1 (mojibake such as 'Ã©' for 'é')";
        break;
    }
    snprintf(buf, cap, "%s: %zu %s, first at byte %zu: '%s'", field, n, what, at, ctx);
    return 0;
}
