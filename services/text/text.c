/*
 * text.c: analysis (fold, split, stem, CJK n-grams) and snippets.
 *
 * One pass over the original bytes with a small state machine:
 *
 *   SEP --word char--> WORD --joiner (' ’ . ,)--> WORD+pending
 *    ^  \--CJK char--> CJK run (unigram + bigram with the previous char)
 *    +------ separator / end: flush the word (stem, exact) or end the run
 *
 * Folding is done per code point (utf8proc_decompose_char with COMPAT,
 * CASEFOLD, STRIPMARK, then COMPOSE of the few code points it produced);
 * marks are stripped, so a composition across code points is never needed
 * except for Hangul, which decomposes and recomposes within one code point.
 * Traditional Chinese characters then fold to simplified ones (s_t2s_fold).
 */
#include "text.h"

#include <libstemmer.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
/* The snippets' needle scan has an AVX2 version chosen at run time (GCC or
 * Clang on x86-64: a function-level target, no -mavx2 for the file). */
#if defined(__SSE2__) && defined(__x86_64__) && defined(__GNUC__)
#define S_HAVE_AVX2 1
#include <immintrin.h>
#else
#define S_HAVE_AVX2 0
#endif

#define S_FOLD_OPTS (UTF8PROC_COMPAT | UTF8PROC_CASEFOLD | UTF8PROC_DECOMPOSE | \
                     UTF8PROC_STRIPMARK | UTF8PROC_IGNORE)
#define S_STEM_MAX 64

/* Stem cache: Snowball is the costliest step of English analysis and text
 * repeats its words (Zipf), so recent stems are kept in a direct-mapped
 * table (word -> stem) of text_options.stem_cache entries of short words.
 * A slot is one 64-byte line: the word zero-padded to a multiple of 8 bytes
 * (compared and hashed 8 bytes at a time), its stem, and whether the two are
 * equal (the word then has no EXACT token). */
#define S_SC_WORD 32
#define S_SC_STEM 29
typedef struct {
    char w[S_SC_WORD];
    char s[S_SC_STEM];
    uint8_t wl, sl; /* wl 0 = empty */
    uint8_t same;
} s_stem_slot;

/* Words of at most this many bytes are their own Snowball English stem (it
 * leaves words of fewer than 3 letters alone; tests/unit/text checks every
 * one of [a-z']{1,2}): they skip the stem cache. */
#define S_STEM_MIN 3

/* The current word's buffer: TEXT_EXACT_PREFIX, then the word (so its EXACT
 * token is the buffer itself), then room for the ASCII path's 16-byte stores
 * past TEXT_WORD_MAX - 3 and the stem cache's 8-byte loads past the word. */
#define S_WBUF (1 + TEXT_WORD_MAX + 24)

/* Snippets: s_cp_wordish of recent code points (a body repeats its few
 * non-ASCII ones: quotes, dashes, accented letters), direct-mapped; cp 0 =
 * empty (only code points from U+0080 are looked up). */
#define S_WC_SLOTS 256
typedef struct {
    int32_t cp;
    bool wordish;
} s_wc_slot;

/* A word deferred by s_flush_word: buf[7] is TEXT_EXACT_PREFIX, the word
 * from buf + 8 (zero-padded to a multiple of 8 bytes when it goes through
 * the stem cache slot c; c NULL: a word emitted as it is). Its tokens are
 * emitted from t, whose pos, start and end were stored when the word ended
 * (a token built on the stack when emitted was stored as one 16-byte vector
 * and the callback's 4-byte loads of it waited on the store). */
#define S_DEFER 8
typedef struct {
    text_token t;
    s_stem_slot *c;
    char buf[8 + S_SC_WORD];
    uint8_t wl;
} s_deferred;

struct text_analyzer {
    struct sb_stemmer *stemmer;
    s_stem_slot *sc;    /* 64-byte aligned in sc_mem */
    void *sc_mem;
    size_t scmask;      /* the stem cache's slots - 1 */
    bool stem;
    int simd;           /* the snippets' needle scan: TEXT_SIMD_SSE2 or _AVX2 */
    char **stops;
    size_t nstops;
    /* current word: w is wbuf + 1 (wbuf[0] is TEXT_EXACT_PREFIX) */
    char wbuf[S_WBUF];
    char *w;
    size_t wlen;
    uint32_t wstart, wend;
    bool w_alpha;       /* ASCII letters and apostrophes only: stemmable */
    int w_last;         /* 1 letter, 2 digit */
    int pending;        /* 0, or the joiner: '\'' or '.' or ',' */
    /* snippets: stem only words whose first byte some query term starts with
     * (a Snowball English stem keeps the word's first letter), NULL = all */
    const uint64_t *stem_gate;
    /* the words ended but not yet emitted (s_flush_word): d[(d_head + i) %
     * S_DEFER] for i < d_n, oldest first */
    s_deferred d[S_DEFER];
    unsigned d_head, d_n;
    /* CJK run */
    char cprev[4];
    int cprev_len;
    uint32_t cprev_start;
    /* emission */
    uint32_t pos;
    text_token_fn fn;
    void *ud;
    int rc;
    char tbuf[TEXT_WORD_MAX + 16];
    s_wc_slot wc[S_WC_SLOTS];
};

enum { S_SEP = 0, S_WORD = 1, S_CJK = 2, S_JOIN = 3 };

text_options text_options_default(void) {
    text_options o = {.stem = true, .stopwords = NULL};
    return o;
}

static int s_cmpstr(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

text_analyzer *text_analyzer_new(const text_options *opts) {
    text_options o = opts ? *opts : text_options_default();
    text_analyzer *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->stem = o.stem;
    self->wbuf[0] = TEXT_EXACT_PREFIX;
    for (int i = 0; i < S_DEFER; i++)
        self->d[i].buf[7] = TEXT_EXACT_PREFIX;
    self->w = self->wbuf + 1;
    self->simd = TEXT_SIMD_SSE2;
#if S_HAVE_AVX2
    if (o.simd != TEXT_SIMD_SSE2 && __builtin_cpu_supports("avx2"))
        self->simd = TEXT_SIMD_AVX2;
#endif
    if (o.stem) {
        /* only words of ASCII letters and apostrophes are stemmed (w_alpha):
         * the same bytes in ISO-8859-1 as in UTF-8, and its stemmer (the same
         * rules) steps a byte at a time instead of decoding UTF-8: ~20% less
         * CPU per word (tests/unit/text test_latin1_stems checks the two agree) */
        self->stemmer = sb_stemmer_new("english", "ISO_8859_1");
        if (!self->stemmer)
            self->stemmer = sb_stemmer_new("english", NULL);
        size_t n = o.stem_cache ? o.stem_cache : TEXT_STEM_CACHE;
        if (n > ((size_t)1 << 24))
            n = (size_t)1 << 24;
        size_t slots = 1;
        while (slots < n)
            slots <<= 1;
        self->scmask = slots - 1;
        /* calloc (its big blocks are fresh zero pages), aligned by hand */
        self->sc_mem = calloc(slots + 1, sizeof *self->sc);
        if (self->sc_mem)
            self->sc = (s_stem_slot *)(((uintptr_t)self->sc_mem + 63) & ~(uintptr_t)63);
        if (!self->stemmer || !self->sc) {
            text_analyzer_destroy(&self);
            return NULL;
        }
    }
    if (o.stopwords) {
        size_t n = 0;
        while (o.stopwords[n])
            n++;
        self->stops = calloc(n ? n : 1, sizeof(char *));
        if (!self->stops) {
            text_analyzer_destroy(&self);
            return NULL;
        }
        for (size_t i = 0; i < n; i++) {
            char buf[TEXT_WORD_MAX + 8];
            size_t l = text_fold(self, o.stopwords[i], strlen(o.stopwords[i]), buf, sizeof buf);
            if (!l)
                continue;
            char *c = malloc(l + 1);
            if (!c) {
                text_analyzer_destroy(&self);
                return NULL;
            }
            memcpy(c, buf, l);
            c[l] = 0;
            self->stops[self->nstops++] = c;
        }
        qsort(self->stops, self->nstops, sizeof(char *), s_cmpstr);
    }
    return self;
}

void text_analyzer_destroy(text_analyzer **self_p) {
    if (!self_p || !*self_p)
        return;
    text_analyzer *self = *self_p;
    if (self->stemmer)
        sb_stemmer_delete(self->stemmer);
    free(self->sc_mem);
    for (size_t i = 0; i < self->nstops; i++)
        free(self->stops[i]);
    free(self->stops);
    free(self);
    *self_p = NULL;
}

static bool s_is_cjk(int32_t c) {
    return (c >= 0x3040 && c <= 0x30FF) ||     /* Hiragana, Katakana */
           (c >= 0x31F0 && c <= 0x31FF) ||     /* Katakana ext */
           (c >= 0x3400 && c <= 0x4DBF) ||     /* Han ext A */
           (c >= 0x4E00 && c <= 0x9FFF) ||     /* Han */
           (c >= 0xF900 && c <= 0xFAFF) ||     /* Han compatibility */
           (c >= 0xAC00 && c <= 0xD7AF) ||     /* Hangul syllables */
           (c >= 0x1100 && c <= 0x11FF) ||     /* Hangul jamo */
           (c >= 0x3130 && c <= 0x318F) ||     /* Hangul compatibility jamo */
           (c >= 0x20000 && c <= 0x3FFFF);     /* Han ext B.. */
}

bool text_cjk_char(const char *term, size_t len) {
    /* decoded by hand: the index asks this for every posting it writes */
    const uint8_t *p = (const uint8_t *)term;
    int32_t cp;
    if (len == 3 && (p[0] & 0xF0) == 0xE0 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80)
        cp = (int32_t)((p[0] & 0x0Fu) << 12 | (p[1] & 0x3Fu) << 6 | (p[2] & 0x3Fu));
    else if (len == 4 && (p[0] & 0xF8) == 0xF0 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80 &&
             (p[3] & 0xC0) == 0x80)
        cp = (int32_t)((p[0] & 0x07u) << 18 | (p[1] & 0x3Fu) << 12 | (p[2] & 0x3Fu) << 6 | (p[3] & 0x3Fu));
    else
        return false;
    return s_is_cjk(cp); /* terms are the analyzer's output: never overlong */
}

static int s_class(int32_t c, int *letter_digit) {
    *letter_digit = 0;
    if (c < 0x80) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
            *letter_digit = 1;
            return S_WORD;
        }
        if (c >= '0' && c <= '9') {
            *letter_digit = 2;
            return S_WORD;
        }
        if (c == '_')
            return S_WORD;
        if (c == '\'' || c == '.' || c == ',')
            return S_JOIN;
        return S_SEP;
    }
    if (c == 0x2019)
        return S_JOIN;
    if (s_is_cjk(c))
        return S_CJK;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
        *letter_digit = 1;
        return S_WORD;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        *letter_digit = 2;
        return S_WORD;
    case UTF8PROC_CATEGORY_PC:
        return S_WORD;
    default:
        return S_SEP;
    }
}

#include "t2s_table.inc"

/* Set bits of x (no popcount instruction in the baseline x86-64 target). */
static inline uint32_t s_pop32(uint32_t x) {
    x -= (x >> 1) & 0x55555555u;
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    x = (x + (x >> 4)) & 0x0F0F0F0Fu;
    return (x * 0x01010101u) >> 24;
}

/* Traditional -> simplified Chinese, one character to one (OpenCC's character
 * table, see scripts/gen-t2s): most Han text has no traditional characters,
 * so a BMP code point is first checked in a bitmap, one load, and one that
 * has an entry finds it by the bitmap's rank (no search); beyond the BMP a
 * binary search. */
static int32_t s_t2s_fold(int32_t c) {
    if (c < 0x3400 || (c >= 0x10000 && c < 0x20000))
        return c;
    if (c < 0x10000) {
        uint32_t w = s_t2s_bmp[c >> 5], b = 1u << (c & 31);
        if (!(w & b))
            return c;
        return (int32_t)s_t2s[s_t2s_rank[c >> 5] + s_pop32(w & (b - 1))][1];
    }
    size_t lo = 0, hi = S_T2S_N;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s_t2s[mid][0] == (uint32_t)c)
            return (int32_t)s_t2s[mid][1];
        if (s_t2s[mid][0] < (uint32_t)c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return c;
}

/* Fold one code point into out (up to cap); returns the count (0 = dropped). */
static int s_fold_cp(int32_t cp, int32_t *out, int cap) {
    if (cp < 0x80) {
        out[0] = (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
        return 1;
    }
    int bc = 0;
    /* CJK keeps its marks (kana voicing: で must not become て) */
    utf8proc_option_t opts = s_is_cjk(cp) ? (S_FOLD_OPTS & ~UTF8PROC_STRIPMARK) : S_FOLD_OPTS;
    utf8proc_ssize_t n = utf8proc_decompose_char(cp, out, cap, opts, &bc);
    if (n < 0 || n > cap)
        return 0;
    if (n > 1) {
        n = utf8proc_normalize_utf32(out, n, UTF8PROC_COMPOSE);
        if (n < 0)
            return 0;
    }
    for (utf8proc_ssize_t k = 0; k < n; k++)
        out[k] = s_t2s_fold(out[k]);
    return (int)n;
}

static bool s_is_stop(text_analyzer *self, const char *w, size_t len) {
    if (!self->nstops)
        return false;
    size_t lo = 0, hi = self->nstops;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strncmp(self->stops[mid], w, len);
        if (c == 0 && self->stops[mid][len] != 0)
            c = 1;
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static void s_emit(text_analyzer *self, const char *term, size_t len, uint8_t kind,
                   uint8_t exact, uint32_t pos, uint32_t start, uint32_t end) {
    if (self->rc)
        return;
    text_token t = {.term = term, .len = (uint32_t)len, .pos = pos, .start = start,
                    .end = end, .kind = kind, .exact = exact};
    self->rc = self->fn(self->ud, &t);
}

static inline uint64_t s_ld8(const char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* The stem of the word w[0..wl) (stemmable: ASCII letters and apostrophes,
 * S_STEM_MIN..S_STEM_MAX bytes) through the stem cache slot c (NULL: a word
 * too long for the cache; else w is zero-padded to a multiple of 8 bytes);
 * *same tells whether it equals the word. Returns w itself when Snowball
 * fails. */
static const char *s_stem_at(text_analyzer *self, const char *w, size_t wl, s_stem_slot *c,
                             size_t *sl, bool *same) {
    size_t nk = (wl + 7) / 8;
    if (c && c->wl == wl) {
        uint64_t d = 0;
        for (size_t j = 0; j < nk; j++)
            d |= s_ld8(w + 8 * j) ^ s_ld8(c->w + 8 * j);
        if (!d) {
            *sl = c->sl;
            *same = c->same;
            return c->s;
        }
    }
    const sb_symbol *r = sb_stemmer_stem(self->stemmer, (const sb_symbol *)w, (int)wl);
    if (!r) {
        *sl = wl;
        *same = true;
        return w;
    }
    *sl = (size_t)sb_stemmer_length(self->stemmer);
    *same = *sl == wl && memcmp(r, w, wl) == 0;
    if (c && *sl <= S_SC_STEM) {
        c->wl = (uint8_t)wl;
        c->sl = (uint8_t)*sl;
        c->same = *same;
        for (size_t j = 0; j < nk; j++)
            memcpy(c->w + 8 * j, w + 8 * j, 8);
        memcpy(c->s, r, *sl);
    }
    return (const char *)r;
}

/* Emit the deferred token d->t with its term, length, kind and flag. */
static inline void s_emit_at(text_analyzer *self, s_deferred *d, const char *term, size_t len,
                             uint8_t kind, uint8_t exact) {
    if (self->rc)
        return;
    d->t.term = term;
    d->t.len = (uint32_t)len;
    d->t.kind = kind;
    d->t.exact = exact;
    self->rc = self->fn(self->ud, &d->t);
}

/* Emit the oldest deferred word's tokens (s_flush_word). */
static void s_flush_oldest(text_analyzer *self) {
    s_deferred *d = &self->d[self->d_head];
    self->d_head = (self->d_head + 1) & (S_DEFER - 1);
    self->d_n--;
    const char *w = d->buf + 8;
    if (!d->c) {
        s_emit_at(self, d, w, d->wl, TEXT_TERM_STEM, 1);
        return;
    }
    size_t sl;
    bool same;
    const char *stem = s_stem_at(self, w, d->wl, d->c, &sl, &same);
    s_emit_at(self, d, stem, sl, TEXT_TERM_STEM, same ? 1 : 0);
    if (!same) /* the prefix byte is in front of the word */
        s_emit_at(self, d, w - 1, (size_t)d->wl + 1, TEXT_TERM_EXACT, 1);
}

/* Emit every deferred word's tokens, oldest first (before any other token). */
static inline void s_flush_deferred(text_analyzer *self) {
    while (self->d_n)
        s_flush_oldest(self);
}

/* A new deferred word at the ring's end (the oldest emitted when full). */
static inline s_deferred *s_defer_push(text_analyzer *self, uint32_t pos) {
    if (self->d_n == S_DEFER)
        s_flush_oldest(self);
    s_deferred *d = &self->d[(self->d_head + self->d_n++) & (S_DEFER - 1)];
    d->t.pos = pos;
    d->t.start = self->wstart;
    d->t.end = self->wend;
    return d;
}

/* End the current word: its tokens, in order. A word of at most S_SC_WORD
 * bytes is deferred (the ring self->d): one that goes through the stem cache
 * has its slot prefetched now and looked up S_DEFER words later, or before
 * any other token (the bulk analyzers' 4 MB table misses L2, and the lookup
 * a word later still waited on the slot: 70% of the lookup's samples); any
 * other is deferred so that the tokens keep their order. */
static void s_flush_word(text_analyzer *self) {
    self->pending = 0;
    if (!self->wlen)
        return;
    size_t wl = self->wlen;
    self->wlen = 0;
    uint32_t pos = self->pos++;
    if (s_is_stop(self, self->w, wl))
        return;
    const uint8_t w0 = (uint8_t)self->w[0];
    if (self->stemmer && self->w_alpha && wl >= S_STEM_MIN && wl <= S_STEM_MAX &&
        (!self->stem_gate || (self->stem_gate[w0 >> 6] >> (w0 & 63) & 1))) {
        if (wl <= S_SC_WORD) {
            s_deferred *d = s_defer_push(self, pos);
            /* the word's 8-byte pieces, the last one zero-padded in a
             * register (zeros stored past the word and loaded back stalled
             * on a partial store forward: a quarter of this function) */
            size_t nk = (wl + 7) / 8;
            uint64_t h = wl;
            for (size_t j = 0; j < nk; j++) {
                uint64_t k = s_ld8(self->w + 8 * j);
                if (j == nk - 1 && (wl & 7))
                    k &= ~0ull >> (64 - 8 * (wl & 7));
                memcpy(d->buf + 8 + 8 * j, &k, 8);
                h = (h + k) * 0x9E3779B97F4A7C15ull;
                h ^= h >> 32;
            }
            d->c = &self->sc[(h * 0xFF51AFD7ED558CCDull) >> 40 & self->scmask];
            __builtin_prefetch(d->c);
            d->wl = (uint8_t)wl;
            return;
        }
        s_flush_deferred(self);
        size_t sl;
        bool same;
        const char *stem = s_stem_at(self, self->w, wl, NULL, &sl, &same);
        s_emit(self, stem, sl, TEXT_TERM_STEM, same ? 1 : 0, pos, self->wstart, self->wend);
        if (!same) /* the prefix byte is in front of the word */
            s_emit(self, self->w - 1, wl + 1, TEXT_TERM_EXACT, 1, pos, self->wstart, self->wend);
        return;
    }
    if (wl <= S_SC_WORD) {
        s_deferred *d = s_defer_push(self, pos);
        memcpy(d->buf + 8, self->w, S_SC_WORD); /* bytes past wl unused */
        d->c = NULL;
        d->wl = (uint8_t)wl;
        return;
    }
    s_flush_deferred(self);
    s_emit(self, self->w, wl, TEXT_TERM_STEM, 1, pos, self->wstart, self->wend);
}

static void s_word_append(text_analyzer *self, int32_t cp, int ld, uint32_t start, uint32_t end) {
    if (!self->wlen) {
        self->wstart = start;
        self->w_alpha = true;
    } else if (self->pending) {
        /* a joiner stays inside the word only between letters (') or digits (. ,) */
        bool keep = (self->pending == '\'' && self->w_last == 1 && ld == 1) ||
                    (self->pending != '\'' && self->w_last == 2 && ld == 2);
        if (!keep) {
            s_flush_word(self);
            self->wstart = start;
            self->w_alpha = true;
        } else if (self->wlen + 1 <= TEXT_WORD_MAX) {
            self->w[self->wlen++] = (char)self->pending;
            if (self->pending != '\'')
                self->w_alpha = false;
        }
        self->pending = 0;
    }
    if (!(cp >= 'a' && cp <= 'z'))
        self->w_alpha = false;
    if (self->wlen + 4 <= TEXT_WORD_MAX) {
        if (cp < 0x80)
            self->w[self->wlen++] = (char)cp;
        else
            self->wlen += (size_t)utf8proc_encode_char(cp, (utf8proc_uint8_t *)self->w + self->wlen);
    }
    self->w_last = ld;
    self->wend = end;
}

/* The letter/digit kind (s_class's *letter_digit) of an ASCII byte that
 * folds to itself or by case and is a word character: 1 letter, 2 digit,
 * 3 '_' (kind 0); 0 for any other byte. */
static inline int s_ascii_word(uint8_t c) {
    if ((uint8_t)((c | 0x20) - 'a') < 26)
        return 1;
    if ((uint8_t)(c - '0') < 10)
        return 2;
    return c == '_' ? 3 : 0;
}

/* Append the ASCII word characters at p[i..len), folded by case, to the
 * current word, as s_word_append would one by one with no joiner pending
 * (bytes past TEXT_WORD_MAX - 3 dropped); returns the index after them. */
static size_t s_ascii_run(text_analyzer *self, const uint8_t *p, size_t i, size_t len) {
    const size_t lim = TEXT_WORD_MAX - 3;
    char *w = self->w;
    size_t wl = self->wlen;
    bool alpha = self->w_alpha;
    int last = self->w_last;
    size_t i0 = i;
#if defined(__SSE2__)
    while (i + 16 <= len) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        /* unsigned x - lo < n as a signed compare of x - lo - 128 */
        __m128i lt = _mm_cmplt_epi8(_mm_sub_epi8(_mm_or_si128(v, _mm_set1_epi8(0x20)),
                                                 _mm_set1_epi8((char)('a' + 128))),
                                    _mm_set1_epi8((char)(26 - 128)));
        __m128i dg = _mm_cmplt_epi8(_mm_sub_epi8(v, _mm_set1_epi8((char)('0' + 128))),
                                    _mm_set1_epi8((char)(10 - 128)));
        __m128i us = _mm_cmpeq_epi8(v, _mm_set1_epi8('_'));
        unsigned lm = (unsigned)_mm_movemask_epi8(lt), dm = (unsigned)_mm_movemask_epi8(dg);
        unsigned m = lm | dm | (unsigned)_mm_movemask_epi8(us);
        unsigned run = (unsigned)__builtin_ctz(~m | 0x10000u);
        if (run) {
            unsigned rm = (1u << run) - 1;
            if (wl < lim) {
                _mm_storeu_si128((__m128i *)(void *)(w + wl),
                                 _mm_or_si128(v, _mm_and_si128(lt, _mm_set1_epi8(0x20))));
                wl = wl + run < lim ? wl + run : lim;
            }
            if (~lm & rm)
                alpha = false;
            unsigned top = 1u << (run - 1);
            last = (lm & top) ? 1 : (dm & top) ? 2 : 0;
            i += run;
        }
        if (run < 16)
            goto done;
    }
#endif
    for (int aw; i < len && (aw = s_ascii_word(p[i])) != 0; i++) {
        uint8_t c = p[i];
        if (aw == 1)
            c |= 0x20;
        else
            alpha = false;
        if (wl < lim)
            w[wl++] = (char)c;
        last = aw == 3 ? 0 : aw;
    }
#if defined(__SSE2__)
done:
#endif
    if (i != i0) {
        self->wlen = wl;
        self->w_alpha = alpha;
        self->w_last = last;
        self->wend = (uint32_t)i;
    }
    return i;
}

static void s_cjk(text_analyzer *self, int32_t cp, uint32_t start, uint32_t end) {
    char cur[4];
    int cl;
    if (cp < 0x10000) { /* CJK code points are U+1100 and up: 3 or 4 bytes */
        cur[0] = (char)(0xE0 | cp >> 12);
        cur[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        cur[2] = (char)(0x80 | (cp & 0x3F));
        cl = 3;
    } else {
        cl = (int)utf8proc_encode_char(cp, (utf8proc_uint8_t *)cur);
    }
    uint32_t pos = self->pos++;
    s_flush_deferred(self);
    if (self->cprev_len) {
        memcpy(self->tbuf, self->cprev, (size_t)self->cprev_len);
        memcpy(self->tbuf + self->cprev_len, cur, (size_t)cl);
        s_emit(self, self->tbuf, (size_t)(self->cprev_len + cl), TEXT_TERM_CJK2, 1, pos - 1,
               self->cprev_start, end);
    }
    s_emit(self, cur, (size_t)cl, TEXT_TERM_CJK1, 1, pos, start, end);
    memcpy(self->cprev, cur, (size_t)cl);
    self->cprev_len = cl;
    self->cprev_start = start;
}

int text_analyze(text_analyzer *self, const char *s, size_t len, uint32_t pos_base,
                 text_token_fn fn, void *ud, uint32_t *next_pos) {
    self->fn = fn;
    self->ud = ud;
    self->rc = 0;
    self->pos = pos_base;
    self->wlen = 0;
    self->pending = 0;
    self->cprev_len = 0;
    self->d_head = self->d_n = 0;
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    int32_t cps[32];
    if (len > UINT32_MAX)
        len = UINT32_MAX; /* offsets are 32-bit */
    while (i < len && !self->rc) {
        if (p[i] < 0x80) {
            /* ASCII: a byte is its own folded code point (case aside) */
            uint8_t b = p[i];
            if (s_ascii_word(b)) {
                /* a word character (what s_class says of it) and the ASCII
                 * word characters after it */
                self->cprev_len = 0;
                if (self->pending) {
                    int aw = s_ascii_word(b);
                    s_word_append(self, aw == 1 ? (b | 0x20) : b, aw == 3 ? 0 : aw, (uint32_t)i,
                                  (uint32_t)(i + 1));
                    i++;
                } else if (!self->wlen) {
                    self->wstart = (uint32_t)i;
                    self->w_alpha = true;
                }
                i = s_ascii_run(self, p, i, len);
                continue;
            }
            if ((b == '\'' || b == '.' || b == ',') && self->wlen && !self->pending) {
                self->pending = b; /* a joiner (S_JOIN) */
                i++;
                continue;
            }
            /* a separator, NUL, or a joiner that ends the word */
            s_flush_word(self);
            self->cprev_len = 0;
            i++;
            continue;
        }
        if (p[i] >= 0xE3 && p[i] <= 0xE9 && len - i >= 3 && (p[i + 1] & 0xC0) == 0x80 &&
            (p[i + 2] & 0xC0) == 0x80) {
            int32_t h = (int32_t)((p[i] & 0x0Fu) << 12 | (p[i + 1] & 0x3Fu) << 6 | (p[i + 2] & 0x3Fu));
            if ((h >= 0x4E00 && h <= 0x9FFF) || (h >= 0x3400 && h <= 0x4DBF)) {
                /* a Han character (CJK unified, ext A): no decomposition, case or
                 * mark to fold (test_han_fold checks it against utf8proc), so
                 * s_fold_cp would give s_t2s_fold of it */
                int32_t f = s_t2s_fold(h);
                if (s_is_cjk(f)) {
                    s_flush_word(self);
                    s_cjk(self, f, (uint32_t)i, (uint32_t)(i + 3));
                    i += 3;
                    continue;
                }
            }
        }
        int32_t cp;
        size_t cl;
        int n;
        utf8proc_ssize_t r = utf8proc_iterate(p + i, (utf8proc_ssize_t)(len - i), &cp);
        if (r <= 0) {
            cl = 1;
            n = 0;
        } else {
            cl = (size_t)r;
            n = s_fold_cp(cp, cps, 32);
        }
        uint32_t st = (uint32_t)i, en = (uint32_t)(i + cl);
        if (n == 0) {
            /* invalid byte, NUL, or a code point folded away (ignorable): a separator
             * only when it was not ignorable */
            if (cl == 1 || (cp >= 0 && utf8proc_category(cp) != UTF8PROC_CATEGORY_CF &&
                            utf8proc_category(cp) != UTF8PROC_CATEGORY_MN)) {
                s_flush_word(self);
                self->cprev_len = 0;
            }
        }
        for (int k = 0; k < n && !self->rc; k++) {
            int ld;
            int cls = s_class(cps[k], &ld);
            switch (cls) {
            case S_WORD:
                self->cprev_len = 0;
                s_word_append(self, cps[k], ld, st, en);
                break;
            case S_CJK:
                s_flush_word(self);
                s_cjk(self, cps[k], st, en);
                break;
            case S_JOIN:
                if (self->wlen && !self->pending) {
                    self->pending = cps[k] == 0x2019 ? '\'' : (int)cps[k];
                    break;
                }
                /* fallthrough */
            default:
                s_flush_word(self);
                self->cprev_len = 0;
                break;
            }
        }
        i += cl;
    }
    if (!self->rc)
        s_flush_word(self);
    s_flush_deferred(self);
    if (next_pos)
        *next_pos = self->pos;
    return self->rc;
}

typedef struct {
    char *out;
    size_t cap, len;
} s_fold_ctx;

static int s_fold_cb(void *ud, const text_token *t) {
    s_fold_ctx *c = ud;
    if (t->kind == TEXT_TERM_CJK2 || c->len)
        return 0;
    const char *w = t->term;
    size_t l = t->len;
    if (t->kind == TEXT_TERM_STEM && !t->exact)
        return 0; /* the EXACT token follows with the surface */
    if (t->kind == TEXT_TERM_EXACT) {
        w++;
        l--;
    }
    if (l > c->cap)
        l = c->cap;
    memcpy(c->out, w, l);
    c->len = l;
    return 1;
}

size_t text_fold(text_analyzer *self, const char *s, size_t len, char *out, size_t cap) {
    /* stemming and stop words must not interfere: analyze without them */
    struct sb_stemmer *st = self->stemmer;
    size_t ns = self->nstops;
    self->stemmer = NULL;
    self->nstops = 0;
    s_fold_ctx c = {out, cap, 0};
    text_analyze(self, s, len, 0, s_fold_cb, &c, NULL);
    self->stemmer = st;
    self->nstops = ns;
    return c.len;
}

/* --- snippets ---------------------------------------------------------- */

#define S_SNIP_RING 512   /* matches kept in the sliding window */
#define S_SNIP_MARKS 256  /* matches marked in the output window */
#define S_SNIP_FEW_TERMS 64 /* terms + prefixes counted without a calloc */

typedef struct {
    uint32_t start, end;
    uint32_t term;    /* which query term (for "distinct terms" density) */
    uint32_t chr;     /* character index of start */
} s_match;

typedef struct {
    const text_snippet_opts *o;
    const char *body;
    uint32_t blen;        /* bytes of body */
    int simd;             /* the analyzer's */
    uint32_t off;         /* body offset of the text being analyzed */
    uint32_t counted_to, chars;
    /* pass 1: online densest window */
    size_t head, n;       /* ring: n entries from head (ring is last) */
    uint32_t *counts;     /* per term, inside the window */
    long distinct;
    long best;
    s_match best_first, best_last;
    uint32_t span;
    /* pass 1: its first S_SNIP_MARKS matches, in marks (see s_snip_kept);
     * kept_to: where the first match not kept starts (UINT32_MAX: none) */
    uint32_t kept_to;
    /* pass 2: matches to mark */
    bool mark_pass;
    s_match *marks;
    size_t nmarks;
    s_match last;         /* last match seen (overlap merging) */
    bool have_last;
    /* last, and not zeroed: only ring[head .. head + n) is ever read */
    s_match ring[S_SNIP_RING];
} s_snip_ctx;

#if defined(__SSE2__)
/* Characters (bytes that are not UTF-8 continuation bytes) in p[0..16).
 * Summed per byte lane: the baseline x86-64 target has no popcount
 * instruction (__builtin_popcount is a libgcc call). */
static uint32_t s_chars16(const char *p) {
    const __m128i lim = _mm_set1_epi8(-65); /* continuation bytes are -128..-65 as int8 */
    const __m128i zero = _mm_setzero_si128();
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i sum = _mm_sad_epu8(_mm_sub_epi8(zero, _mm_cmpgt_epi8(v, lim)), zero);
    return (uint32_t)_mm_cvtsi128_si32(sum) + (uint32_t)_mm_extract_epi16(sum, 4);
}
#endif

#if S_HAVE_AVX2
/* s_count_chars 32 bytes at a time, the last block masked when it can be
 * read whole (a popcount is an instruction with AVX2's CPUs). */
__attribute__((target("avx2,popcnt"))) static uint32_t s_count_chars_avx2(const char *s,
                                                                         uint32_t i, uint32_t to,
                                                                         uint32_t lim) {
    const __m256i lim65 = _mm256_set1_epi8(-65);
    uint32_t n = 0;
    for (; i < to && i + 32 <= lim; i += 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(s + i));
        uint32_t ch = (uint32_t)_mm256_movemask_epi8(_mm256_cmpgt_epi8(v, lim65));
        if (to - i < 32)
            ch &= (1u << (to - i)) - 1;
        n += (uint32_t)__builtin_popcount(ch);
    }
    for (; i < to; i++)
        n += ((uint8_t)s[i] & 0xC0) != 0x80;
    return n;
}
#endif

/* Characters (bytes that are not UTF-8 continuation bytes) in s[from..to);
 * s[0..lim) can be read (lim >= to). */
static uint32_t s_count_chars(const char *s, uint32_t from, uint32_t to, uint32_t lim, int simd) {
    uint32_t n = 0, i = from;
#if S_HAVE_AVX2
    if (simd == TEXT_SIMD_AVX2)
        return s_count_chars_avx2(s, from, to, lim);
#endif
    (void)simd;
    (void)lim;
#if defined(__SSE2__)
    for (; i + 16 <= to; i += 16)
        n += s_chars16(s + i);
#endif
    for (; i < to; i++)
        n += ((uint8_t)s[i] & 0xC0) != 0x80;
    return n;
}

static long s_snip_term(const text_snippet_opts *o, const text_token *t) {
    for (size_t i = 0; i < o->nterms; i++)
        if (o->term_lens[i] == t->len && memcmp(o->terms[i], t->term, t->len) == 0)
            return (long)i;
    if (o->nprefixes && ((t->kind == TEXT_TERM_STEM && t->exact) || t->kind == TEXT_TERM_EXACT)) {
        const char *w = t->term + (t->kind == TEXT_TERM_EXACT);
        uint32_t l = t->len - (t->kind == TEXT_TERM_EXACT);
        for (size_t i = 0; i < o->nprefixes; i++)
            if (o->prefix_lens[i] <= l && memcmp(o->prefixes[i], w, o->prefix_lens[i]) == 0)
                return (long)(o->nterms + i);
    }
    return -1;
}

static void s_ring_score(s_snip_ctx *c) {
    long score = c->distinct * 100000 + (long)c->n;
    if (score > c->best) {
        c->best = score;
        c->best_first = c->ring[c->head];
        c->best_last = c->ring[(c->head + c->n - 1) % S_SNIP_RING];
    }
}

static int s_snip_cb(void *ud, const text_token *tok) {
    s_snip_ctx *c = ud;
    long hit = s_snip_term(c->o, tok);
    if (hit < 0)
        return 0;
    text_token at = *tok; /* offsets in the body */
    at.start += c->off;
    at.end += c->off;
    const text_token *t = &at;
    if (c->have_last && c->last.start <= t->start && c->last.end >= t->end)
        return 0; /* already covered (exact form of a stem hit, CJK unigram in a bigram) */
    if (c->have_last && t->start < c->last.end) {
        /* overlapping (CJK bigrams): extend the previous match */
        if (t->end > c->last.end) {
            c->last.end = t->end;
            if (c->mark_pass && c->nmarks)
                c->marks[c->nmarks - 1].end = t->end;
            else if (!c->mark_pass && c->n) {
                c->ring[(c->head + c->n - 1) % S_SNIP_RING].end = t->end;
                if (c->kept_to == UINT32_MAX) /* the last match is the last kept */
                    c->marks[c->nmarks - 1].end = t->end;
            }
        }
        return 0;
    }
    s_match m = {.start = t->start, .end = t->end, .term = (uint32_t)hit};
    c->last = m;
    c->have_last = true;
    if (c->nmarks < S_SNIP_MARKS)
        c->marks[c->nmarks++] = m;
    else if (!c->mark_pass && c->kept_to == UINT32_MAX)
        c->kept_to = m.start;
    if (c->mark_pass)
        return 0;
    c->chars += s_count_chars(c->body, c->counted_to, t->start, c->blen, c->simd);
    c->counted_to = t->start;
    m.chr = c->chars;
    /* slide: drop matches that are too far behind, then add this one */
    while (c->n && (m.chr - c->ring[c->head].chr > c->span || c->n == S_SNIP_RING)) {
        if (--c->counts[c->ring[c->head].term] == 0)
            c->distinct--;
        c->head = (c->head + 1) % S_SNIP_RING;
        c->n--;
    }
    c->ring[(c->head + c->n) % S_SNIP_RING] = m;
    c->n++;
    if (c->counts[m.term]++ == 0)
        c->distinct++;
    s_ring_score(c);
    return 0;
}

typedef struct {
    char *out;
    size_t cap, len;
} s_buf;

static void s_put(s_buf *b, const char *s, size_t n) {
    if (b->len >= b->cap)
        return;
    size_t room = b->cap - b->len;
    if (n > room)
        n = room;
    memcpy(b->out + b->len, s, n);
    b->len += n;
}

#if defined(__SSE2__)
/* Where a run of printable ASCII (see s_put_text) that goes on at e ends,
 * 16 bytes at a time while 17 can be read (up to lim >= to: a short
 * segment between two marks gets its blocks too): the first byte that is
 * neither a printable character but space nor a space before one, or where
 * the blocks stop (the caller goes on byte by byte from there; it also
 * takes the byte before to, whose next one is not the segment's). */
static uint32_t s_run_end16(const char *s, uint32_t e, uint32_t to, uint32_t lim) {
    const __m128i sp = _mm_set1_epi8(' '), del = _mm_set1_epi8(0x7f);
    for (; e + 1 < to && e + 17 <= lim; e += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + e));
        __m128i n = _mm_loadu_si128((const __m128i *)(const void *)(s + e + 1));
        /* printable but space (bytes from 0x80 are negative as int8) */
        __m128i vch = _mm_and_si128(_mm_cmpgt_epi8(v, sp), _mm_cmplt_epi8(v, del));
        __m128i nch = _mm_and_si128(_mm_cmpgt_epi8(n, sp), _mm_cmplt_epi8(n, del));
        __m128i good = _mm_or_si128(vch, _mm_and_si128(_mm_cmpeq_epi8(v, sp), nch));
        unsigned bad = ~(unsigned)_mm_movemask_epi8(good) & 0xffffu;
        if (to - e <= 16)
            bad |= 0xffffu << (to - e - 1);
        if (bad)
            return e + (uint32_t)__builtin_ctz(bad);
    }
    return e;
}
#endif

/* The length of the well-formed UTF-8 sequence of two to four bytes at
 * p[0..n) (n >= 1, p[0] >= 0x80), or 0: what utf8proc_iterate accepts
 * (Unicode's table 3-7: no overlongs, surrogates or code points above
 * U+10FFFF), without its call (tests/unit/text test_put_text_utf8 compares
 * the two). */
static inline uint32_t s_utf8_len(const uint8_t *p, uint32_t n) {
    uint8_t c = p[0];
    if (c < 0xC2 || c > 0xF4)
        return 0;
    if (c < 0xE0)
        return n >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 ||
            (c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] > 0x9F))
            return 0;
        return 3;
    }
    if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80 ||
        (c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] > 0x8F))
        return 0;
    return 4;
}

/* Copy body[from..to) with whitespace runs collapsed and bad bytes replaced;
 * s[0..lim) can be read (lim >= to). */
static void s_put_text(s_buf *b, const char *s, uint32_t from, uint32_t to, uint32_t lim,
                       bool *space) {
    uint32_t i = from;
    while (i < to) {
        uint8_t c = (uint8_t)s[i];
        if (c > ' ' && c < 0x7f) {
            /* a run of printable ASCII, as is: it starts and ends with a
             * character but space, and its spaces are single (what the
             * collapsing below would write) */
            uint32_t e = i + 1;
#if defined(__SSE2__)
            e = s_run_end16(s, e, to, lim);
#else
            (void)lim;
#endif
            for (;;) {
                while (e < to && (uint8_t)s[e] > ' ' && (uint8_t)s[e] < 0x7f)
                    e++;
                if (e + 1 < to && s[e] == ' ' && (uint8_t)s[e + 1] > ' ' && (uint8_t)s[e + 1] < 0x7f)
                    e += 2;
                else
                    break;
            }
            s_put(b, s + i, e - i);
            *space = false;
            i = e;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            if (!*space)
                s_put(b, " ", 1);
            *space = true;
            i++;
            continue;
        }
        *space = false;
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                s_put(b, " ", 1);
            else
                s_put(b, (const char *)&s[i], 1);
            i++;
            continue;
        }
        uint32_t r = s_utf8_len((const uint8_t *)s + i, to - i);
        if (!r) {
            s_put(b, "\xEF\xBF\xBD", 3);
            i++;
        } else {
            s_put(b, s + i, (size_t)r);
            i += (uint32_t)r;
        }
    }
}

/* Move forward n characters from byte i (bounded by len): the n-th byte
 * after i that is not a UTF-8 continuation byte, or len. */
static uint32_t s_fwd(const char *s, uint32_t len, uint32_t i, uint32_t n) {
    if (i >= len || !n)
        return i;
    uint32_t j = i + 1;
#if defined(__SSE2__)
    for (uint32_t k; j + 16 <= len && (k = s_chars16(s + j)) < n; j += 16)
        n -= k;
#endif
    for (; j < len; j++)
        if (((uint8_t)s[j] & 0xC0) != 0x80 && --n == 0)
            return j;
    return len;
}

static uint32_t s_back(const char *s, uint32_t i, uint32_t n) {
    while (i > 0 && n) {
        i--;
        while (i > 0 && ((uint8_t)s[i] & 0xC0) == 0x80)
            i--;
        n--;
    }
    return i;
}

static bool s_isspace(char c) {
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

/* --- snippets: where the passes need to analyze --------------------------
 *
 * Pass 1 (the densest cluster) used to analyze the whole scanned prefix of
 * the body, although only the words that match a query term matter. It now
 * analyzes only regions that can hold such a word and gets the same matches
 * (pass 2, the marks inside the chosen window, does the same on the window):
 *
 *   needles    the first (up to) two folded bytes of every term and prefix
 *              (a Snowball English stem keeps its word's first two letters,
 *              except dying/lying/tying -> die/lie/tie: a term "xi..." also
 *              looks for "xy"; checked on the 500k distinct words of the en
 *              corpus), found ASCII-case-insensitively at a word start;
 *              and the third byte when it is an ASCII letter or digit and,
 *              for a stem, not e, i or y: Snowball keeps the third letter
 *              too but for y -> i (cry -> cri), a restored e (using -> use)
 *              and skies -> sky (also checked on those 457k words: Step 1b's
 *              e is the only letter it adds, Steps 2-5 delete or keep the
 *              first letter of what they replace, and a word of two letters
 *              is its own stem). A non-ASCII byte there passes (its code
 *              point is a trigger anyway)
 *   triggers   every non-ASCII code point that can be part of a word (it
 *              folds to a letter, digit or CJK character, or is ignorable
 *              and so joins its neighbours): it may fold to a needle
 *   region     around each candidate, out to the nearest ASCII whitespace on
 *              both sides (the analyzer's state is reset there, so the
 *              tokens of a region are those of the full pass)
 *
 * A term whose first bytes are not ASCII letters or digits, more than
 * S_SNIP_TRIGGERS word characters outside ASCII (a CJK one counts 8: CJK
 * text gives up after a few characters) or more than S_SNIP_REGIONS regions:
 * the whole prefix (or the rest of it) is analyzed, as before. */

#define S_SNIP_NEEDLES 32
#define S_SNIP_TRIGGERS 48
#define S_SNIP_REGIONS 96
#define S_SNIP_LONG 16

/* A candidate of the scan also has to start with the longer prefix every
 * word of its needle's term starts with (s_needle_long) before its region
 * is analyzed: an exact term's or a prefix's whole folded surface, and a
 * stem but its last two bytes when they are e, i, l or y. A Snowball English
 * stem is its word's first bytes but for a tail of at most two bytes among
 * e (a restored e: using -> use), i (y -> i: happy -> happi), l (-bility ->
 * -bl), y (skies -> sky) and "ie" (dying -> die, whose y-needle is kept):
 * checked on the 497k distinct ASCII words of the en corpus. The prefix
 * ends before the term's first byte from 0x80; a text byte from 0x80 passes
 * (as for the third byte), and so does the end of the text. */
typedef struct {
    /* b1 0: a one-byte needle; b2 0: a two-byte one */
    uint8_t b0[S_SNIP_NEEDLES], b1[S_SNIP_NEEDLES], b2[S_SNIP_NEEDLES];
    /* the long prefix (folded), lpl[k] bytes of lp[k] */
    uint8_t lp[S_SNIP_NEEDLES][S_SNIP_LONG], lpl[S_SNIP_NEEDLES];
    /* its first 8 bytes or fewer as a word, each | 0x20, and their mask */
    uint64_t l8[S_SNIP_NEEDLES], m8[S_SNIP_NEEDLES];
    size_t n;
} s_needles;

static bool s_needle_byte(uint8_t b) {
    return (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9');
}

/* l8 and m8 of needle k from its long prefix. */
static void s_needle_l8(s_needles *nd, size_t k) {
    uint64_t l = 0, m = 0;
    for (uint32_t j = 0; j < nd->lpl[k] && j < 8; j++) {
        l |= (uint64_t)(nd->lp[k][j] | 0x20) << (8 * j);
        m |= (uint64_t)0xff << (8 * j);
    }
    nd->l8[k] = l;
    nd->m8[k] = m;
}

static bool s_needle_add(s_needles *nd, const char *w, uint32_t l, bool stem_variants) {
    if (l && (uint8_t)w[0] == (uint8_t)TEXT_EXACT_PREFIX) {
        w++;
        l--;
        stem_variants = false;
    }
    if (!l || !s_needle_byte((uint8_t)w[0]) || (l > 1 && !s_needle_byte((uint8_t)w[1])))
        return false;
    if (nd->n + 2 > S_SNIP_NEEDLES)
        return false;
    /* the third byte, when it must be the word's (see "needles" above) */
    uint8_t b2 = l > 2 && s_needle_byte((uint8_t)w[2]) ? (uint8_t)w[2] : 0;
    if (stem_variants && (b2 == 'e' || b2 == 'i' || b2 == 'y'))
        b2 = 0;
    /* the long prefix (see S_SNIP_LONG) */
    uint32_t pl = l;
    for (int cut = 0; stem_variants && cut < 2 && pl > 0 && strchr("eily", w[pl - 1]); cut++)
        pl--;
    if (pl > S_SNIP_LONG)
        pl = S_SNIP_LONG;
    uint32_t j = 0;
    while (j < pl && (uint8_t)w[j] < 0x80)
        j++;
    memcpy(nd->lp[nd->n], w, j);
    nd->lpl[nd->n] = (uint8_t)j;
    s_needle_l8(nd, nd->n);
    nd->b0[nd->n] = (uint8_t)w[0];
    nd->b1[nd->n] = l > 1 ? (uint8_t)w[1] : 0;
    nd->b2[nd->n++] = b2;
    if (stem_variants && l > 1 && w[1] == 'i') { /* dying -> die */
        nd->b0[nd->n] = (uint8_t)w[0];
        nd->b1[nd->n] = 'y';
        nd->b2[nd->n] = 0;
        nd->lp[nd->n][0] = (uint8_t)w[0];
        nd->lp[nd->n][1] = 'y';
        nd->lpl[nd->n] = 2;
        s_needle_l8(nd, nd->n++);
    }
    return true;
}

static bool s_is_ws(uint8_t c) {
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

static bool s_is_wordbyte(uint8_t c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Can this code point be (part of) a word? See text_analyze: folded to word
 * or CJK characters, or folded away without separating (ignorable). */
static bool s_cp_wordish(int32_t cp) {
    int32_t f[32];
    int n = s_fold_cp(cp, f, 32);
    if (n == 0)
        return utf8proc_category(cp) == UTF8PROC_CATEGORY_CF ||
               utf8proc_category(cp) == UTF8PROC_CATEGORY_MN;
    for (int k = 0; k < n; k++) {
        int ld;
        int cls = s_class(f[k], &ld);
        if (cls == S_WORD || cls == S_CJK)
            return true;
    }
    return false;
}

typedef struct {
    const uint8_t *p;
    uint32_t len;
    const s_needles *nd;
    s_wc_slot *wc; /* the analyzer's */
    uint32_t (*reg)[2];
    size_t nreg;
    uint32_t rs, re; /* the open region [rs, re), when have */
    bool have, full;
    uint32_t skip_to; /* inside a multi-byte code point already looked at */
    int triggers;
} s_regions;

static void s_region_add(s_regions *r, uint32_t q) {
    if (r->full || (r->have && q < r->re))
        return;
    uint32_t lo = r->have ? r->re : 0, s = q, e = q;
    while (s > lo && !s_is_ws(r->p[s - 1]))
        s--;
    while (e < r->len && !s_is_ws(r->p[e]))
        e++;
    if (r->have && s <= r->re) {
        r->re = e;
        return;
    }
    if (r->have) {
        if (r->nreg + 1 == S_SNIP_REGIONS) { /* too many: the rest in one */
            r->re = r->len;
            r->full = true;
            return;
        }
        r->reg[r->nreg][0] = r->rs;
        r->reg[r->nreg++][1] = r->re;
    }
    r->rs = s;
    r->re = e;
    r->have = true;
}

/* A byte with the high bit at i: a trigger when it starts a word-like code
 * point. false when there are too many (the caller analyzes everything). */
static bool s_region_high(s_regions *r, uint32_t i) {
    if (i < r->skip_to || r->p[i] < 0xC0)
        return true; /* continuation (or stray) byte */
    int32_t cp;
    utf8proc_ssize_t n = utf8proc_iterate(r->p + i, (utf8proc_ssize_t)(r->len - i), &cp);
    if (n <= 0)
        return true; /* invalid: a separator */
    r->skip_to = i + (uint32_t)n;
    s_wc_slot *w = &r->wc[((uint32_t)cp * 2654435761u) >> 24];
    if (w->cp != cp) {
        w->cp = cp;
        w->wordish = s_cp_wordish(cp);
    }
    if (!w->wordish)
        return true;
    /* CJK text is all triggers: give up on it early */
    r->triggers += s_is_cjk(cp) ? 8 : 1;
    if (r->triggers > S_SNIP_TRIGGERS)
        return false;
    s_region_add(r, i);
    return true;
}

/* Whether the text at i matches needle k's long prefix from its byte j on
 * (ASCII letters case-insensitively; a byte from 0x80 or the end of the
 * text passes: see S_SNIP_LONG). */
static inline bool s_needle_tail(const s_needles *nd, size_t k, const uint8_t *p, uint32_t len,
                                 uint32_t i, uint32_t j) {
    const uint8_t *t = nd->lp[k];
    uint32_t l = nd->lpl[k];
    for (; j < l && i + j < len; j++) {
        uint8_t c = p[i + j];
        if (c >= 0x80)
            return true;
        if ((uint8_t)(c - 'A') < 26)
            c |= 0x20;
        if (c != t[j])
            return false;
    }
    return true;
}

/* Whether the word at i starts with some needle's long prefix (as
 * s_needle_tail). */
static bool s_needle_long(const s_needles *nd, const uint8_t *p, uint32_t len, uint32_t i) {
    if (i + 8 <= len) { /* the first 8 bytes at once, | 0x20 (more candidates, never fewer) */
        uint64_t w;
        memcpy(&w, p + i, 8);
        uint64_t wl = w | 0x2020202020202020ull;
        for (size_t k = 0; k < nd->n; k++) {
            uint64_t m = nd->m8[k];
            if (w & m & 0x8080808080808080ull)
                return true;
            if ((wl ^ nd->l8[k]) & m)
                continue;
            if (nd->lpl[k] <= 8 || s_needle_tail(nd, k, p, len, i, 8))
                return true;
        }
        return false;
    }
    for (size_t k = 0; k < nd->n; k++)
        if (s_needle_tail(nd, k, p, len, i, 0))
            return true;
    return false;
}

static bool s_needle_at(const s_needles *nd, const uint8_t *p, uint32_t len, uint32_t i) {
    if (i > 0 && s_is_wordbyte(p[i - 1]))
        return false;
    uint8_t a = p[i] | 0x20, b = i + 1 < len ? (uint8_t)(p[i + 1] | 0x20) : 0;
    uint8_t c = i + 2 < len ? p[i + 2] : 0;
    for (size_t k = 0; k < nd->n; k++)
        if (a == nd->b0[k] && (!nd->b1[k] || b == nd->b1[k]) &&
            (!nd->b2[k] || c >= 0x80 || (c | 0x20) == nd->b2[k]))
            return true;
    return false;
}

/* The needles by what they check (no branch per needle and block): class 0
 * b0 b1 b2, 1 b0 b1, 2 b0 alone; a needle another one covers is left out
 * (the candidates are the same: each is checked again by s_needle_at's
 * rules, which the vector tests equal while 2 bytes after the block can be
 * read). */
typedef struct {
    uint8_t b0[3][S_SNIP_NEEDLES], b1[3][S_SNIP_NEEDLES], b2[S_SNIP_NEEDLES];
    size_t n[3];
} s_needle_sets;

static void s_needle_sets_make(const s_needles *nd, s_needle_sets *ns) {
    ns->n[0] = ns->n[1] = ns->n[2] = 0;
    for (size_t k = 0; k < nd->n; k++) {
        bool covered = false;
        for (size_t x = 0; x < nd->n && !covered; x++)
            covered = x != k && nd->b0[x] == nd->b0[k] && (!nd->b1[x] || nd->b1[x] == nd->b1[k]) &&
                      (!nd->b2[x] || nd->b2[x] == nd->b2[k]) &&
                      /* of two equal needles the first stays */
                      (x < k || nd->b1[x] != nd->b1[k] || nd->b2[x] != nd->b2[k]);
        if (covered)
            continue;
        size_t cls = nd->b1[k] ? (nd->b2[k] ? 0 : 1) : 2;
        ns->b0[cls][ns->n[cls]] = nd->b0[k];
        ns->b1[cls][ns->n[cls]] = nd->b1[k];
        if (cls == 0)
            ns->b2[ns->n[0]] = nd->b2[k];
        ns->n[cls]++;
    }
}

/* A search's terms made ready for the snippets of its hits (see
 * text_snippet_prepare). */
struct text_snippet_prep {
    uint64_t gate[4];   /* the stem gate: bit b, a term or prefix starts with byte b */
    bool needles;       /* every term and prefix gave a needle (else: no regions) */
    s_needles nd;
    s_needle_sets ns;   /* nd's, when needles */
};

/* The candidates of the block at i: bit j of m a needle at a word start or a
 * byte with the high bit (bit j of high) at i + j. false: give up (too many
 * triggers, see s_region_high). */
static inline bool s_block_cands(s_regions *r, uint32_t i, uint32_t m, uint32_t high) {
    while (m) {
        uint32_t j = (uint32_t)__builtin_ctz(m);
        m &= m - 1;
        if (high >> j & 1) {
            if (!s_region_high(r, i + j))
                return false;
        } else if (!(r->have && i + j < r->re) && s_needle_long(r->nd, r->p, r->len, i + j)) {
            s_region_add(r, i + j);
        }
    }
    return true;
}

#define S_SCAN_GIVE_UP UINT32_MAX

#if defined(__SSE2__)
/* The needle scan 16 bytes a block from i while 18 can be read; *carry:
 * the byte before i is a word byte (s_is_wordbyte). Returns where it
 * stopped, or S_SCAN_GIVE_UP. */
static uint32_t s_scan_sse2(const s_needle_sets *ns, s_regions *r, uint32_t i, uint32_t *carry) {
    const uint8_t *p = r->p;
    const uint32_t len = r->len;
    const __m128i lower = _mm_set1_epi8(0x20);
    __m128i n0[3][S_SNIP_NEEDLES], n1[3][S_SNIP_NEEDLES], n2[S_SNIP_NEEDLES];
    for (size_t cls = 0; cls < 3; cls++)
        for (size_t k = 0; k < ns->n[cls]; k++) {
            n0[cls][k] = _mm_set1_epi8((char)ns->b0[cls][k]);
            n1[cls][k] = _mm_set1_epi8((char)ns->b1[cls][k]);
            if (cls == 0)
                n2[k] = _mm_set1_epi8((char)ns->b2[k]);
        }
    /* word bytes (s_is_wordbyte): a candidate's byte before must not be one */
    const __m128i a1 = _mm_set1_epi8('a' - 1), z1 = _mm_set1_epi8('z' + 1);
    const __m128i d1 = _mm_set1_epi8('0' - 1), d9 = _mm_set1_epi8('9' + 1);
    const __m128i us = _mm_set1_epi8('_');
    uint32_t cy = *carry;
    for (; i + 18 <= len; i += 16) {
        __m128i v0 = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        __m128i l0 = _mm_or_si128(v0, lower);
        __m128i l1 = _mm_or_si128(_mm_loadu_si128((const __m128i *)(const void *)(p + i + 1)), lower);
        __m128i hit = _mm_setzero_si128();
        if (ns->n[0]) {
            __m128i v2 = _mm_loadu_si128((const __m128i *)(const void *)(p + i + 2));
            __m128i l2 = _mm_or_si128(v2, lower);
            __m128i high2 = _mm_cmplt_epi8(v2, _mm_setzero_si128()); /* not ASCII: not checked */
            for (size_t k = 0; k < ns->n[0]; k++)
                hit = _mm_or_si128(hit, _mm_and_si128(_mm_and_si128(_mm_cmpeq_epi8(l0, n0[0][k]),
                                                                    _mm_cmpeq_epi8(l1, n1[0][k])),
                                                      _mm_or_si128(_mm_cmpeq_epi8(l2, n2[k]), high2)));
        }
        for (size_t k = 0; k < ns->n[1]; k++)
            hit = _mm_or_si128(hit, _mm_and_si128(_mm_cmpeq_epi8(l0, n0[1][k]),
                                                  _mm_cmpeq_epi8(l1, n1[1][k])));
        for (size_t k = 0; k < ns->n[2]; k++)
            hit = _mm_or_si128(hit, _mm_cmpeq_epi8(l0, n0[2][k]));
        __m128i wb = _mm_or_si128(_mm_and_si128(_mm_cmpgt_epi8(l0, a1), _mm_cmplt_epi8(l0, z1)),
                                  _mm_or_si128(_mm_and_si128(_mm_cmpgt_epi8(v0, d1),
                                                             _mm_cmplt_epi8(v0, d9)),
                                               _mm_cmpeq_epi8(v0, us)));
        uint32_t wbm = (uint32_t)_mm_movemask_epi8(wb);
        uint32_t after_word = (wbm << 1 | cy) & 0xffffu;
        cy = wbm >> 15;
        uint32_t high = (uint32_t)_mm_movemask_epi8(v0);
        uint32_t m = ((uint32_t)_mm_movemask_epi8(hit) & ~after_word) | high;
        if (m && !s_block_cands(r, i, m, high))
            return S_SCAN_GIVE_UP;
    }
    *carry = cy;
    return i;
}
#endif

#if S_HAVE_AVX2
/* s_scan_sse2 with 32-byte blocks (VEX three-operand compares), while 34
 * bytes can be read; chosen at run time (text_options.simd). */
__attribute__((target("avx2"))) static uint32_t s_scan_avx2(const s_needle_sets *ns, s_regions *r,
                                                           uint32_t i, uint32_t *carry) {
    const uint8_t *p = r->p;
    const uint32_t len = r->len;
    const __m256i lower = _mm256_set1_epi8(0x20);
    __m256i n0[3][S_SNIP_NEEDLES], n1[3][S_SNIP_NEEDLES], n2[S_SNIP_NEEDLES];
    for (size_t cls = 0; cls < 3; cls++)
        for (size_t k = 0; k < ns->n[cls]; k++) {
            n0[cls][k] = _mm256_set1_epi8((char)ns->b0[cls][k]);
            n1[cls][k] = _mm256_set1_epi8((char)ns->b1[cls][k]);
            if (cls == 0)
                n2[k] = _mm256_set1_epi8((char)ns->b2[k]);
        }
    const __m256i a1 = _mm256_set1_epi8('a' - 1), z1 = _mm256_set1_epi8('z' + 1);
    const __m256i d1 = _mm256_set1_epi8('0' - 1), d9 = _mm256_set1_epi8('9' + 1);
    const __m256i us = _mm256_set1_epi8('_');
    uint32_t cy = *carry;
    for (; i + 34 <= len; i += 32) {
        __m256i v0 = _mm256_loadu_si256((const __m256i *)(const void *)(p + i));
        __m256i l0 = _mm256_or_si256(v0, lower);
        __m256i l1 = _mm256_or_si256(_mm256_loadu_si256((const __m256i *)(const void *)(p + i + 1)),
                                     lower);
        __m256i hit = _mm256_setzero_si256();
        if (ns->n[0]) {
            __m256i v2 = _mm256_loadu_si256((const __m256i *)(const void *)(p + i + 2));
            __m256i l2 = _mm256_or_si256(v2, lower);
            __m256i high2 = _mm256_cmpgt_epi8(_mm256_setzero_si256(), v2);
            for (size_t k = 0; k < ns->n[0]; k++)
                hit = _mm256_or_si256(
                    hit, _mm256_and_si256(_mm256_and_si256(_mm256_cmpeq_epi8(l0, n0[0][k]),
                                                           _mm256_cmpeq_epi8(l1, n1[0][k])),
                                          _mm256_or_si256(_mm256_cmpeq_epi8(l2, n2[k]), high2)));
        }
        for (size_t k = 0; k < ns->n[1]; k++)
            hit = _mm256_or_si256(hit, _mm256_and_si256(_mm256_cmpeq_epi8(l0, n0[1][k]),
                                                        _mm256_cmpeq_epi8(l1, n1[1][k])));
        for (size_t k = 0; k < ns->n[2]; k++)
            hit = _mm256_or_si256(hit, _mm256_cmpeq_epi8(l0, n0[2][k]));
        __m256i wb = _mm256_or_si256(
            _mm256_and_si256(_mm256_cmpgt_epi8(l0, a1), _mm256_cmpgt_epi8(z1, l0)),
            _mm256_or_si256(_mm256_and_si256(_mm256_cmpgt_epi8(v0, d1), _mm256_cmpgt_epi8(d9, v0)),
                            _mm256_cmpeq_epi8(v0, us)));
        uint32_t wbm = (uint32_t)_mm256_movemask_epi8(wb);
        uint32_t after_word = wbm << 1 | cy;
        cy = wbm >> 31;
        uint32_t high = (uint32_t)_mm256_movemask_epi8(v0);
        uint32_t m = ((uint32_t)_mm256_movemask_epi8(hit) & ~after_word) | high;
        if (m && !s_block_cands(r, i, m, high))
            return S_SCAN_GIVE_UP;
    }
    *carry = cy;
    return i;
}
#endif

/* The regions of p[0..len) pass 1 must analyze, into reg[S_SNIP_REGIONS];
 * returns their number, or 0 when everything must be analyzed. */
static size_t s_snip_regions(const text_snippet_prep *sp, text_analyzer *self, const uint8_t *p,
                             uint32_t len, uint32_t (*reg)[2]) {
    const s_needles *nd = &sp->nd;
    s_regions r = {.p = p, .len = len, .nd = nd, .wc = self->wc, .reg = reg};
    const int simd = self->simd;
    uint32_t i = 0;
#if defined(__SSE2__)
    uint32_t carry = 0; /* the byte before the block is a word byte */
#if S_HAVE_AVX2
    if (simd == TEXT_SIMD_AVX2 && (i = s_scan_avx2(&sp->ns, &r, i, &carry)) == S_SCAN_GIVE_UP)
        return 0;
#endif
    if ((i = s_scan_sse2(&sp->ns, &r, i, &carry)) == S_SCAN_GIVE_UP)
        return 0;
#endif
    (void)simd;
    for (; i < len; i++) {
        if (p[i] >= 0x80) {
            if (!s_region_high(&r, i))
                return 0;
        } else if (s_needle_at(nd, p, len, i) && s_needle_long(nd, p, len, i)) {
            s_region_add(&r, i);
        }
    }
    if (r.have) {
        r.reg[r.nreg][0] = r.rs;
        r.reg[r.nreg++][1] = r.re;
    }
    if (!r.nreg) { /* nothing can match: one empty region */
        r.reg[0][0] = r.reg[0][1] = 0;
        r.nreg = 1;
    }
    return r.nreg;
}

/* Pass 2 from pass 1's matches: the kept ones (c->marks[0..nmarks)) inside
 * body[from..to) moved to the front, when they are all the matches pass 2
 * would find there. They are when pass 1 analyzed the window's text as pass 2
 * would (it ends at slen or before), the window starts and ends where the
 * analyzer's state is reset (ASCII whitespace: no token crosses the edges, and
 * the first match of the window is merged with nothing before it), and no
 * match of the window was left out of the kept ones (at most S_SNIP_MARKS,
 * so the marks' cap cuts nothing either). false: analyze the window again. */
static bool s_snip_kept(s_snip_ctx *c, const char *body, uint32_t slen, uint32_t from,
                        uint32_t to) {
    if (to > slen || to > c->kept_to || (from > 0 && !s_isspace(body[from - 1])) ||
        (to < slen && !s_isspace(body[to])))
        return false;
    size_t k = 0, n = 0;
    while (k < c->nmarks && c->marks[k].start < from)
        k++;
    for (; k < c->nmarks && c->marks[k].start < to; k++)
        c->marks[n++] = c->marks[k];
    c->nmarks = n;
    return true;
}

/* Run the snippet callback over the tokens of body[from..to) that can
 * match (sp NULL: over all of them). */
static void s_snip_analyze(text_analyzer *self, s_snip_ctx *c, const text_snippet_prep *sp,
                           const char *body, uint32_t from, uint32_t to) {
    uint32_t reg[S_SNIP_REGIONS][2];
    size_t nreg = sp ? s_snip_regions(sp, self, (const uint8_t *)body + from, to - from, reg) : 0;
    if (!nreg) {
        reg[0][0] = 0;
        reg[0][1] = to - from;
        nreg = 1;
    }
    for (size_t k = 0; k < nreg; k++) {
        c->off = from + reg[k][0];
        text_analyze(self, body + c->off, reg[k][1] - reg[k][0], 0, s_snip_cb, c, NULL);
    }
}

/* The stem gate (a word whose first byte starts no term cannot match: its
 * stemming is skipped; terms are stems or TEXT_EXACT_PREFIX + a folded
 * surface, prefixes folded surfaces) and the needles of o's terms and
 * prefixes. */
static void s_snip_prep_make(const text_snippet_opts *o, text_snippet_prep *sp) {
    memset(sp->gate, 0, sizeof sp->gate);
    for (size_t i = 0; i < o->nterms; i++) {
        const char *t = o->terms[i];
        uint32_t tl = o->term_lens[i];
        if (tl && t[0] == TEXT_EXACT_PREFIX) {
            t++;
            tl--;
        }
        if (tl)
            sp->gate[(uint8_t)t[0] >> 6] |= 1ULL << ((uint8_t)t[0] & 63);
    }
    for (size_t i = 0; i < o->nprefixes; i++)
        if (o->prefix_lens[i])
            sp->gate[(uint8_t)o->prefixes[i][0] >> 6] |= 1ULL << ((uint8_t)o->prefixes[i][0] & 63);
    sp->nd.n = 0; /* only nd.n needles are read */
    bool all = true; /* every term gives a needle */
    for (size_t i = 0; all && i < o->nterms; i++)
        all = s_needle_add(&sp->nd, o->terms[i], o->term_lens[i], true);
    for (size_t i = 0; all && i < o->nprefixes; i++)
        all = s_needle_add(&sp->nd, o->prefixes[i], o->prefix_lens[i], false);
    sp->needles = all;
#if defined(__SSE2__)
    if (all)
        s_needle_sets_make(&sp->nd, &sp->ns);
#endif
}

text_snippet_prep *text_snippet_prepare(const text_snippet_opts *opts) {
    text_snippet_prep *sp = malloc(sizeof *sp);
    if (sp)
        s_snip_prep_make(opts ? opts : &(text_snippet_opts){0}, sp);
    return sp;
}

void text_snippet_prep_free(text_snippet_prep **sp) {
    if (sp) {
        free(*sp);
        *sp = NULL;
    }
}

size_t text_snippet(text_analyzer *self, const char *body, size_t blen,
                    const text_snippet_opts *opts, char *out, size_t cap) {
    if (!cap)
        return 0;
    text_snippet_opts o = opts ? *opts : (text_snippet_opts){0};
    const char *mo = o.mark_open ? o.mark_open : "\xC2\xAB";
    const char *mc = o.mark_close ? o.mark_close : "\xC2\xBB";
    uint32_t maxc = o.max_chars ? o.max_chars : 200;
    uint32_t scan = o.scan_bytes ? o.scan_bytes : 16384;
    uint32_t len = blen > UINT32_MAX ? UINT32_MAX : (uint32_t)blen;
    uint32_t slen = len < scan ? len : scan;
    s_buf b = {out, cap - 1, 0};
    /* on the stack (12 KiB, not zeroed but the head of the context): a
     * malloc of this size is a free-list consolidation in glibc */
    s_snip_ctx ctx, *c = &ctx;
    memset(c, 0, offsetof(s_snip_ctx, ring));
    size_t nt = o.nterms + o.nprefixes;
    uint32_t counts_few[S_SNIP_FEW_TERMS] = {0};
    uint32_t *counts = nt <= S_SNIP_FEW_TERMS ? counts_few : calloc(nt, sizeof *counts);
    s_match marks[S_SNIP_MARKS];
    bool found = false;
    /* the gate and the needles: the caller's, or made here */
    text_snippet_prep own;
    const text_snippet_prep *sp = o.prep;
    if (!sp) {
        s_snip_prep_make(&o, &own);
        sp = &own;
    }
    const text_snippet_prep *regions = !o.scan_all && sp->needles ? sp : NULL;
    self->stem_gate = sp->gate;
    if (counts && nt) {
        c->o = &o;
        c->body = body;
        c->blen = len;
        c->simd = self->simd;
        c->counts = counts;
        c->best = -1;
        c->span = maxc * 3 / 4;
        c->kept_to = UINT32_MAX;
        c->marks = marks;
        s_snip_analyze(self, c, regions, body, 0, slen);
        found = c->best >= 0;
    }
    uint32_t from = 0;
    if (found) {
        uint32_t cluster = c->best_last.chr - c->best_first.chr;
        uint32_t lead = cluster < maxc ? (maxc - cluster) / 3 : 0;
        if (lead > 60)
            lead = 60;
        from = s_back(body, c->best_first.start, lead);
        /* start at a word boundary when one is near */
        if (from > 0) {
            uint32_t k = from;
            while (k < c->best_first.start && k < from + 20 && !s_isspace(body[k]))
                k++;
            if (k < c->best_first.start && s_isspace(body[k]))
                from = k + 1;
        }
    }
    uint32_t to = s_fwd(body, len, from, maxc);
    if (to < len) {
        uint32_t k = to;
        while (k > from + maxc / 2 && !s_isspace(body[k]))
            k--;
        if (k > from + maxc / 2)
            to = k;
    }
    size_t nm = 0;
    if (found) {
        /* pass 2: the matches inside [from, to), pass 1's when they can be */
        if (o.scan_all || !s_snip_kept(c, body, slen, from, to)) {
            c->mark_pass = true;
            c->have_last = false;
            c->nmarks = 0;
            s_snip_analyze(self, c, regions, body, from, to);
        }
        nm = c->nmarks;
    }
    self->stem_gate = NULL;
    bool space = true;
    if (from > 0)
        s_put(&b, "\xE2\x80\xA6", 3);
    uint32_t at = from;
    for (size_t k = 0; k < nm; k++) {
        s_put_text(&b, body, at, marks[k].start, len, &space);
        s_put(&b, mo, strlen(mo));
        s_put_text(&b, body, marks[k].start, marks[k].end, len, &space);
        s_put(&b, mc, strlen(mc));
        at = marks[k].end;
    }
    s_put_text(&b, body, at, to, len, &space);
    while (b.len && b.out[b.len - 1] == ' ')
        b.len--;
    if (to < len)
        s_put(&b, "\xE2\x80\xA6", 3);
    /* never leave a cut character at the end of the buffer */
    if (b.len >= b.cap) {
        size_t k = b.len;
        while (k > 0 && ((uint8_t)out[k - 1] & 0xC0) == 0x80)
            k--;
        if (k > 0 && ((uint8_t)out[k - 1] & 0x80)) {
            uint8_t lead = (uint8_t)out[k - 1];
            size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
            if (b.len - (k - 1) < need)
                b.len = k - 1;
        }
    }
    out[b.len] = 0;
    if (counts != counts_few)
        free(counts);
    return b.len;
}
