/* text_test: analysis (fold, stem + exact, CJK, mixed, invalid input, stop
 * words) and snippets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libstemmer.h>
#include <utf8proc.h>

#include "text.h"
#include "utf8.h"

typedef struct {
    char s[4096];
    size_t len;
    unsigned n;
} dump;

/* "pos:kind:term" joined by spaces; exact terms shown as =term */
static int s_cb(void *ud, const text_token *t) {
    dump *d = ud;
    if (t->end < t->start)
        return 1;
    if (d->len + 300 > sizeof d->s) { /* full: count only */
        d->n++;
        return 0;
    }
    const char *term = t->term;
    uint32_t l = t->len;
    char kind = "SXUB"[t->kind];
    if (t->kind == TEXT_TERM_EXACT) {
        term++;
        l--;
    }
    d->len += (size_t)snprintf(d->s + d->len, sizeof d->s - d->len, "%s%u%c%s%.*s", d->n ? " " : "",
                               t->pos, kind, t->kind == TEXT_TERM_STEM && t->exact ? "!" : "", (int)l, term);
    d->n++;
    return 0;
}

static const char *s_an(text_analyzer *a, const char *s) {
    static dump d;
    memset(&d, 0, sizeof d);
    text_analyze(a, s, strlen(s), 0, s_cb, &d, NULL);
    return d.s;
}

static void test_words(void **state) {
    (void)state;
    text_analyzer *a = text_analyzer_new(NULL);
    assert_non_null(a);
    /* stem + exact form when they differ; exact flag when equal */
    assert_string_equal(s_an(a, "Running dogs run"), "0Srun 0Xrunning 1Sdog 1Xdogs 2S!run");
    /* folding: case, diacritics, NFKC (ligature, full width) */
    assert_string_equal(s_an(a, "ÉCLAIR ﬁsh Ｔｏｋｙｏ naïve"), "0S!eclair 1S!fish 2S!tokyo 3Snaiv 3Xnaive");
    /* joiners: apostrophes between letters, . , between digits */
    assert_string_equal(s_an(a, "don't 3.14 1,000 end. x_y"), "0S!don't 1S!3.14 2S!1,000 3S!end 4S!x_y");
    /* other scripts pass through folded, not stemmed */
    assert_string_equal(s_an(a, "Привет МИР"), "0S!привет 1S!мир");
    text_analyzer_destroy(&a);
    assert_null(a);
    text_analyzer_destroy(&a); /* safe twice */
}

/* The stem cache only remembers: a 3-slot cache (rounded up to 4), where
 * words evict each other, and a bulk load's big one stem like the default. */
static void test_stem_cache(void **state) {
    (void)state;
    const char *text = "Running dogs run; the runner's runs ran, running again and dogs bark. "
                       "Generalizations generalize general generously; running dogs.";
    text_analyzer *def = text_analyzer_new(NULL);
    text_options o = text_options_default();
    o.stem_cache = 3;
    text_analyzer *tiny = text_analyzer_new(&o);
    o.stem_cache = TEXT_STEM_CACHE_BULK;
    text_analyzer *big = text_analyzer_new(&o);
    assert_non_null(def);
    assert_non_null(tiny);
    assert_non_null(big);
    char want[4096];
    snprintf(want, sizeof want, "%s", s_an(def, text));
    assert_non_null(strstr(want, "0Srun 0Xrunning"));
    for (int round = 0; round < 2; round++) { /* the second finds the stems cached */
        assert_string_equal(s_an(tiny, text), want);
        assert_string_equal(s_an(big, text), want);
        assert_string_equal(s_an(def, text), want);
    }
    text_analyzer_destroy(&def);
    text_analyzer_destroy(&tiny);
    text_analyzer_destroy(&big);
}

/* Words of 1 or 2 letters skip the stem cache and Snowball as their own
 * stem: true of Snowball English for every one of [a-z']{1,2}. */
static void test_short_stems(void **state) {
    (void)state;
    struct sb_stemmer *sb = sb_stemmer_new("english", NULL);
    assert_non_null(sb);
    const char al[] = "abcdefghijklmnopqrstuvwxyz'";
    for (size_t i = 0; i < sizeof al - 1; i++) {
        for (size_t j = 0; j <= sizeof al - 1; j++) { /* j == 26 + 1: one letter */
            char w[2] = {al[i], j < sizeof al - 1 ? al[j] : 0};
            int wl = w[1] ? 2 : 1;
            const sb_symbol *r = sb_stemmer_stem(sb, (const sb_symbol *)w, wl);
            assert_non_null(r);
            assert_int_equal(sb_stemmer_length(sb), wl);
            assert_memory_equal(r, w, (size_t)wl);
        }
    }
    sb_stemmer_delete(sb);
    text_analyzer *a = text_analyzer_new(NULL);
    assert_string_equal(s_an(a, "Is it AS we do? I'm"), "0S!is 1S!it 2S!as 3S!we 4S!do 5S!i'm");
    text_analyzer_destroy(&a);
}

/* The analyzer stems with Snowball English's ISO-8859-1 stemmer (its words
 * are ASCII): the same stems as the UTF-8 one for every word of [a-z']{1,4},
 * and for random longer words and words ending in the rules' suffixes. */
static void s_stems_agree(struct sb_stemmer *u, struct sb_stemmer *l, const char *w, int wl) {
    char su[128];
    const sb_symbol *r = sb_stemmer_stem(u, (const sb_symbol *)w, wl);
    assert_non_null(r);
    int n = sb_stemmer_length(u);
    assert_in_range(n, 0, (int)sizeof su);
    memcpy(su, r, (size_t)n);
    r = sb_stemmer_stem(l, (const sb_symbol *)w, wl);
    assert_non_null(r);
    assert_int_equal(sb_stemmer_length(l), n);
    assert_memory_equal(r, su, (size_t)n);
}

static void test_latin1_stems(void **state) {
    (void)state;
    struct sb_stemmer *u = sb_stemmer_new("english", NULL);
    struct sb_stemmer *l = sb_stemmer_new("english", "ISO_8859_1");
    assert_non_null(u);
    assert_non_null(l);
    const char al[] = "abcdefghijklmnopqrstuvwxyz'";
    const int na = (int)sizeof al - 1;
    char w[64];
    for (int len = 1; len <= 4; len++) {
        int tot = 1;
        for (int k = 0; k < len; k++)
            tot *= na;
        for (int x = 0; x < tot; x++) {
            for (int k = 0, v = x; k < len; k++, v /= na)
                w[k] = al[v % na];
            s_stems_agree(u, l, w, len);
        }
    }
    static const char *const sfx[] = {
        "s", "ss", "sses", "ied", "ies", "us", "eed", "eedly", "ed", "edly", "ing", "ingly",
        "at", "bl", "iz", "y", "tional", "enci", "anci", "abli", "entli", "izer", "ization",
        "ational", "ation", "ator", "alism", "aliti", "alli", "fulness", "ousli", "ousness",
        "iveness", "iviti", "biliti", "bli", "ogi", "fulli", "lessli", "li", "alize", "icate",
        "iciti", "ical", "ful", "ness", "ative", "al", "ance", "ence", "er", "ic", "able",
        "ible", "ant", "ement", "ment", "ent", "ism", "ate", "iti", "ous", "ive", "ize", "ion",
        "e", "l", "'s", "'s'", "'", "ly", "ying", "yed", "ably", "ibly"};
    uint64_t rnd = 88172645463325252ull;
    for (int it = 0; it < 60000; it++) {
        rnd ^= rnd << 13;
        rnd ^= rnd >> 7;
        rnd ^= rnd << 17;
        int len = 1 + (int)(rnd % 12);
        for (int k = 0; k < len; k++) /* vowels twice as often, an apostrophe now and then */
            w[k] = "abcdefghijklmnopqrstuvwxyzaeiouyaeiouy'"[(rnd >> (8 + 5 * (k % 10))) % 39];
        const char *x = sfx[(rnd >> 58) % (sizeof sfx / sizeof *sfx)];
        size_t xl = strlen(x);
        memcpy(w + len, x, xl);
        s_stems_agree(u, l, w, len); /* the random word alone */
        s_stems_agree(u, l, w, len + (int)xl);
    }
    sb_stemmer_delete(u);
    sb_stemmer_delete(l);
}

typedef struct {
    text_token t[1024];
    char terms[1024][TEXT_WORD_MAX + 2];
    size_t n;
} s_toks;

static int s_keep_cb(void *ud, const text_token *t) {
    s_toks *k = ud;
    if (k->n == 1024 || t->len > TEXT_WORD_MAX + 1)
        return 1;
    k->t[k->n] = *t;
    memcpy(k->terms[k->n], t->term, t->len);
    k->t[k->n].term = k->terms[k->n];
    k->n++;
    return 0;
}

/* The ASCII path (16 bytes at a time where it can) against the per-code-point
 * one: random ASCII text gives the tokens of its full-width twin (each
 * printable byte as U+FF01..U+FF5E, which NFKC folds back to it; 3 bytes
 * each, so offsets x3), with words of 16+ bytes, words cut at TEXT_WORD_MAX,
 * joiners, digits, '_' and the stem cache's words (one slot: evicting). */
static void test_ascii_path(void **state) {
    (void)state;
    static const char *words[] = {
        "running", "Dogs", "the", "an", "generalizations", "internationalization",
        "Antidisestablishmentarianism", "electroencephalographically", "don't", "x_y",
        "3.14", "1,000", "A", "HAPPILY", "zz", "abcdefghijklmnopqrstuvwxyzabcdefgh", "end.",
        "runners", "runnels", "generalizations", "generalizator", "generalizers", "cats",
    };
    static const char seps[] = " ,.'-_!?;:\"()\t\n";
    text_options o = text_options_default();
    o.stem_cache = 1;
    text_analyzer *tiny = text_analyzer_new(&o);
    text_analyzer *def = text_analyzer_new(NULL);
    assert_non_null(tiny);
    assert_non_null(def);
    static s_toks ka, kb, kc;
    static char txt[1200], fw[3600];
    unsigned seed = 12345;
    size_t total = 0;
    for (int round = 0; round < 400; round++) {
        size_t n = 0;
        while (n < 900) {
            seed = seed * 1103515245u + 12345u;
            unsigned r = seed >> 8;
            if (r % 5 == 0 && round % 7 == 0) { /* a word longer than TEXT_WORD_MAX */
                for (int k = 0; k < 260 && n < 1000; k++)
                    txt[n++] = (char)("aBc9_"[(r >> 4) % 5 == 0 ? k % 5 : k % 3]);
            } else if (r % 3 == 0) {
                const char *w = words[(r >> 3) % (sizeof words / sizeof *words)];
                size_t l = strlen(w);
                memcpy(txt + n, w, l);
                n += l;
            } else {
                for (unsigned k = 0; k < 1 + (r >> 5) % 20; k++) /* random word bytes */
                    txt[n++] = "abcXYZ019_'.,"[((r >> 9) + k * 7) % 13];
            }
            txt[n++] = seps[(r >> 12) % (sizeof seps - 1)];
        }
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            uint8_t c = (uint8_t)txt[i];
            if (c > 0x20 && c < 0x7F) { /* U+FF01 + (c - 0x21) */
                unsigned cp = 0xFF01u + (c - 0x21u);
                fw[m++] = (char)(0xE0 | cp >> 12);
                fw[m++] = (char)(0x80 | (cp >> 6 & 0x3F));
                fw[m++] = (char)(0x80 | (cp & 0x3F));
            } else {
                fw[m++] = (char)c;
            }
        }
        text_analyzer *an = round % 2 ? tiny : def;
        ka.n = kb.n = kc.n = 0;
        assert_int_equal(text_analyze(an, txt, n, 0, s_keep_cb, &ka, NULL), 0);
        assert_int_equal(text_analyze(an, fw, m, 0, s_keep_cb, &kb, NULL), 0);
        assert_int_equal(text_analyze(an == tiny ? def : tiny, txt, n, 0, s_keep_cb, &kc, NULL), 0);
        assert_true(ka.n > 0);
        total += ka.n;
        assert_int_equal(ka.n, kb.n);
        assert_int_equal(ka.n, kc.n);
        for (size_t i = 0; i < ka.n; i++) {
            const text_token *x = &ka.t[i], *y = &kb.t[i];
            assert_int_equal(x->len, kc.t[i].len); /* the other stem cache */
            assert_memory_equal(x->term, kc.t[i].term, x->len);
            assert_int_equal(x->exact, kc.t[i].exact);
            assert_int_equal(x->len, y->len);
            assert_memory_equal(x->term, y->term, x->len);
            assert_int_equal(x->pos, y->pos);
            assert_int_equal(x->kind, y->kind);
            assert_int_equal(x->exact, y->exact);
            /* the first byte of the full-width text's range, and its end */
            size_t fs = 0, fe = 0;
            for (size_t j = 0; j < x->end; j++) {
                size_t w = ((uint8_t)txt[j] > 0x20 && (uint8_t)txt[j] < 0x7F) ? 3 : 1;
                if (j < x->start)
                    fs += w;
                fe += w;
            }
            assert_int_equal(y->start, fs);
            assert_int_equal(y->end, fe);
            if (x->kind == TEXT_TERM_STEM)
                assert_true(x->len <= TEXT_WORD_MAX);
        }
    }
    assert_true(total > 20000);
    /* a word cut at TEXT_WORD_MAX - 3 bytes, lower case */
    memset(txt, 'Q', 300);
    ka.n = 0;
    assert_int_equal(text_analyze(def, txt, 300, 0, s_keep_cb, &ka, NULL), 0);
    assert_int_equal(ka.n, 1);
    assert_int_equal(ka.t[0].len, TEXT_WORD_MAX - 3);
    assert_int_equal(ka.t[0].term[0], 'q');
    assert_int_equal(ka.t[0].term[TEXT_WORD_MAX - 4], 'q');
    assert_int_equal(ka.t[0].end, 300);
    text_analyzer_destroy(&tiny);
    text_analyzer_destroy(&def);
}

/* s_flush_word defers words (a ring of a few): a text's tokens are those of
 * its words analyzed one by one, in order, whatever mix of stemmed words,
 * short ones, words too long for the stem cache, digits, other scripts,
 * stop-free CJK runs and joiners follows which (each word alone has nothing
 * deferred across words). Positions and offsets shifted by the word's. */
static void test_defer_order(void **state) {
    (void)state;
    static const char *pieces[] = {
        "running", "dogs", "a", "of", "the", "generalizations", "Antidisestablishmentarianism",
        "electroencephalographicallyyyyyyy", "supercalifragilisticexpialidocious", "3.14",
        "123456789012345678901234567890123456", "x_y", "don't", "Привет", "naïve", "東京大學",
        "中", "ﬁsh", "runners", "cats", "cat's", "ran", "i", "zz", "Ｔｏｋｙｏ", "end.",
        "abcdefghijklmnopqrstuvwxyzabcdef", "abcdefghijklmnopqrstuvwxyzabcdefg",
    };
    const size_t np = sizeof pieces / sizeof *pieces;
    text_options o = text_options_default();
    o.stem_cache = 2;
    text_analyzer *tiny = text_analyzer_new(&o);
    text_analyzer *def = text_analyzer_new(NULL);
    assert_non_null(tiny);
    assert_non_null(def);
    static s_toks whole, one;
    static char txt[4096];
    unsigned seed = 777;
    size_t total = 0;
    for (int round = 0; round < 300; round++) {
        text_analyzer *an = round % 2 ? tiny : def;
        size_t n = 0, at[64], len[64], cnt = 0;
        while (cnt < 64) {
            seed = seed * 1103515245u + 12345u;
            /* runs of one kind (stemmed words, then short ones, ...) or mixed */
            size_t k = round % 3 ? (seed >> 8) % np : (size_t)(cnt / 9 + (unsigned)round) % np;
            size_t l = strlen(pieces[k]);
            if (n + l + 1 >= sizeof txt)
                break;
            at[cnt] = n;
            len[cnt] = l;
            memcpy(txt + n, pieces[k], l);
            n += l;
            txt[n++] = ' ';
            cnt++;
        }
        whole.n = 0;
        uint32_t wnext = 0;
        assert_int_equal(text_analyze(an, txt, n, 0, s_keep_cb, &whole, &wnext), 0);
        size_t ti = 0;
        uint32_t pos = 0;
        for (size_t c = 0; c < cnt; c++) {
            one.n = 0;
            assert_int_equal(text_analyze(an, txt + at[c], len[c], pos, s_keep_cb, &one, &pos), 0);
            for (size_t i = 0; i < one.n; i++, ti++) {
                assert_true(ti < whole.n);
                const text_token *x = &whole.t[ti], *y = &one.t[i];
                assert_int_equal(x->len, y->len);
                assert_memory_equal(x->term, y->term, x->len);
                assert_int_equal(x->pos, y->pos);
                assert_int_equal(x->kind, y->kind);
                assert_int_equal(x->exact, y->exact);
                assert_int_equal(x->start, y->start + at[c]);
                assert_int_equal(x->end, y->end + at[c]);
            }
        }
        assert_int_equal(ti, whole.n);
        assert_int_equal(pos, wnext);
        total += whole.n;
    }
    assert_true(total > 10000);
    text_analyzer_destroy(&tiny);
    text_analyzer_destroy(&def);
}

static size_t s_utf8(uint32_t cp, char *o) {
    return (size_t)utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)o);
}

/* text.c's Han path takes U+3400..U+4DBF and U+4E00..U+9FFF as they are:
 * utf8proc's folding (NFKC, case, marks kept for CJK) leaves each alone. */
static void test_han_fold(void **state) {
    (void)state;
    const utf8proc_option_t opts = UTF8PROC_COMPAT | UTF8PROC_CASEFOLD | UTF8PROC_DECOMPOSE |
                                   UTF8PROC_IGNORE;
    for (int32_t cp = 0x3400; cp <= 0x9FFF; cp++) {
        if (cp > 0x4DBF && cp < 0x4E00)
            continue;
        utf8proc_int32_t out[8];
        int bc = 0;
        assert_int_equal(utf8proc_decompose_char(cp, out, 8, opts, &bc), 1);
        assert_int_equal(out[0], cp);
    }
}

#include "t2s_table.inc"

/* Every traditional character of the table whose folding leaves it alone
 * (Han, extension A, B and later) is analyzed as its simplified one, alone
 * and between two others (the BMP ones are found by s_t2s_bmp's rank). */
static void test_t2s_table(void **state) {
    (void)state;
    text_analyzer *a = text_analyzer_new(NULL);
    assert_non_null(a);
    static s_toks k;
    size_t checked = 0, rank = 0;
    for (size_t i = 0; i < S_T2S_N; i++) {
        uint32_t src = s_t2s[i][0], dst = s_t2s[i][1];
        if (i == 0 || src >> 5 != s_t2s[i - 1][0] >> 5) { /* the rank of the entry's word */
            if (src < 0x10000)
                assert_int_equal(s_t2s_rank[src >> 5], i);
        }
        rank += src < 0x10000;
        if (!((src >= 0x3400 && src <= 0x4DBF) || (src >= 0x4E00 && src <= 0x9FFF) ||
              (src >= 0x20000 && src < 0x2F800)))
            continue;
        char in[16], want[8];
        size_t l = s_utf8(0x4E00, in); /* 一 + src + 一 */
        l += s_utf8(src, in + l);
        l += s_utf8(0x4E00, in + l);
        size_t wl = s_utf8(dst, want);
        k.n = 0;
        assert_int_equal(text_analyze(a, in, l, 0, s_keep_cb, &k, NULL), 0);
        assert_int_equal(k.n, 5); /* U B U B U */
        assert_int_equal(k.t[2].kind, TEXT_TERM_CJK1);
        assert_int_equal(k.t[2].len, wl);
        assert_memory_equal(k.t[2].term, want, wl);
        assert_int_equal(k.t[1].len, 3 + wl);
        assert_memory_equal(k.t[1].term + 3, want, wl);
        checked++;
    }
    assert_int_equal(rank, 3751);
    assert_true(checked > 4000);
    text_analyzer_destroy(&a);
}

static void test_cjk(void **state) {
    (void)state;
    text_analyzer *a = text_analyzer_new(NULL);
    assert_string_equal(s_an(a, "北京天气"), "0U北 0B北京 1U京 1B京天 2U天 2B天气 3U气");
    /* mixed with English: runs are cut by Latin words; positions continue */
    assert_string_equal(s_an(a, "在Beijing的新闻"), "0U在 1Sbeij 1Xbeijing 2U的 2B的新 3U新 3B新闻 4U闻");
    /* single character */
    assert_string_equal(s_an(a, "中"), "0U中");
    /* kana keep their voicing marks; Hangul stays composed */
    assert_string_equal(s_an(a, "です 한국"), "0Uで 0Bです 1Uす 2U한 2B한국 3U국");
    text_analyzer_destroy(&a);
}

/* traditional Chinese folds to simplified (OpenCC's character table), in
 * unigrams and bigrams alike; simplified text and other scripts are unchanged */
static void test_t2s(void **state) {
    (void)state;
    text_analyzer *a = text_analyzer_new(NULL);
    char trad[256];
    strcpy(trad, s_an(a, "臺灣電視新聞"));
    assert_string_equal(trad, "0U台 0B台湾 1U湾 1B湾电 2U电 2B电视 3U视 3B视新 4U新 4B新闻 5U闻");
    assert_string_equal(s_an(a, "台湾电视新闻"), trad);
    /* compatibility ideograph (NFKC) then folding; Ext-B and kana untouched */
    assert_string_equal(s_an(a, "\xef\xa4\x80"), "0U岂"); /* U+F900 -> 豈 U+8C48 -> 岂 */
    assert_string_equal(s_an(a, "\xf0\xa0\x80\x80"), "0U\xf0\xa0\x80\x80"); /* U+20000 */
    assert_string_equal(s_an(a, "ひらがな"), "0Uひ 0Bひら 1Uら 1Bらが 2Uが 2Bがな 3Uな");
    /* query side: text_fold of a traditional word is its simplified form */
    char out[64];
    size_t n = text_fold(a, "國", strlen("國"), out, sizeof out);
    assert_int_equal(n, strlen("国"));
    assert_memory_equal(out, "国", n);
    text_analyzer_destroy(&a);
}

static void test_invalid(void **state) {
    (void)state;
    text_analyzer *a = text_analyzer_new(NULL);
    /* invalid bytes and NUL act as separators; never a crash */
    const char bad[] = "ab\xff\xfe" "cd\xe4\xb8" "ef\0gh\xc0\xaf";
    dump d = {0};
    assert_int_equal(text_analyze(a, bad, sizeof bad - 1, 0, s_cb, &d, NULL), 0);
    assert_string_equal(d.s, "0S!ab 1S!cd 2S!ef 3S!gh");
    /* random bytes: offsets stay inside the input */
    unsigned r = 7;
    char buf[4096];
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < sizeof buf; i++) {
            r = r * 1103515245u + 12345u;
            buf[i] = (char)(r >> 16);
        }
        memset(&d, 0, sizeof d);
        text_analyze(a, buf, sizeof buf, 0, s_cb, &d, NULL);
    }
    /* a word longer than TEXT_WORD_MAX is cut on a character boundary */
    char longw[3000];
    for (int i = 0; i < 1000; i++)
        memcpy(longw + i * 2, "é", 2);
    longw[2000] = 0;
    memset(&d, 0, sizeof d);
    text_analyze(a, longw, 2000, 0, s_cb, &d, NULL);
    assert_int_equal(d.n, 1);
    text_analyzer_destroy(&a);
}

static void test_stopwords(void **state) {
    (void)state;
    const char *stops[] = {"the", "OF", NULL};
    text_options o = text_options_default();
    o.stopwords = stops;
    text_analyzer *a = text_analyzer_new(&o);
    /* stop words are skipped but keep their position */
    assert_string_equal(s_an(a, "The Mass of line"), "1S!mass 3S!line");
    text_analyzer_destroy(&a);
}

static void test_fold(void **state) {
    (void)state;
    text_analyzer *a = text_analyzer_new(NULL);
    char out[64];
    size_t n = text_fold(a, "Sécurité", strlen("Sécurité"), out, sizeof out);
    assert_int_equal(n, 8);
    assert_memory_equal(out, "securite", 8);
    assert_int_equal(text_fold(a, "!!", 2, out, sizeof out), 0);
    text_analyzer_destroy(&a);
}

static void test_snippet(void **state) {
    (void)state;
    text_analyzer *a = text_analyzer_new(NULL);
    const char *terms[] = {"run", "polic"};
    uint32_t lens[] = {3, 5};
    text_snippet_opts o = {.terms = terms, .term_lens = lens, .nterms = 2};
    char out[1024];
    const char *body = "The fox was running from the police.\nPolice said running\tis fun.";
    text_snippet(a, body, strlen(body), &o, out, sizeof out);
    assert_string_equal(out, "The fox was «running» from the «police». «Police» said «running» is fun.");
    /* snippets stem only words that can match (same first letter as a term):
     * exceptional stems still match ("dying" -> "die"), and the analyzer
     * stems everything again afterwards */
    const char *die[] = {"die"};
    uint32_t die_len[] = {3};
    text_snippet(a, "nobody is dying today", 21,
                 &(text_snippet_opts){.terms = die, .term_lens = die_len, .nterms = 1}, out,
                 sizeof out);
    assert_string_equal(out, "nobody is «dying» today");
    assert_string_equal(s_an(a, "Running dogs"), "0Srun 0Xrunning 1Sdog 1Xdogs");
    o.mark_open = "<b>";
    o.mark_close = "</b>";
    text_snippet(a, "中国北京", strlen("中国北京"), &(text_snippet_opts){.terms = (const char *[]){"北京"},
                 .term_lens = (uint32_t[]){6}, .nterms = 1, .mark_open = "[", .mark_close = "]"},
                 out, sizeof out);
    assert_string_equal(out, "中国[北京]");
    /* long text: cut around the densest cluster, on character boundaries */
    char *big = malloc(200000);
    size_t len = 0;
    while (len < 190000) {
        const char *w = "word 字 ";
        memcpy(big + len, w, strlen(w));
        len += strlen(w);
    }
    memcpy(big + 100000, " police running police ", 23);
    size_t sl = text_snippet(a, big, len, &(text_snippet_opts){.terms = terms, .term_lens = lens,
                             .nterms = 2, .scan_bytes = 150000}, out, sizeof out);
    assert_true(sl > 100);
    assert_non_null(strstr(out, "«police» «running» «police»"));
    assert_true(utf8_valid(out, sl, NULL));
    /* tiny output buffer: still valid UTF-8, NUL-terminated */
    for (size_t cap = 1; cap < 40; cap++) {
        char small[40];
        sl = text_snippet(a, big, len, &o, small, cap);
        assert_true(sl < cap);
        assert_true(utf8_valid(small, sl, NULL));
    }
    /* no match: the beginning */
    sl = text_snippet(a, "hello world", 11, &(text_snippet_opts){0}, out, sizeof out);
    assert_string_equal(out, "hello world");
    /* invalid bytes in the body are replaced */
    sl = text_snippet(a, "ab\xff" "cd", 5, &o, out, sizeof out);
    assert_true(utf8_valid(out, sl, NULL));
    free(big);
    text_analyzer_destroy(&a);
}

/* The snippet of body with terms, checked against the one that analyzes
 * everything (scan_all) before it is returned in out. */
static void s_snip_both(text_analyzer *a, const char *body, const char *const *terms,
                        const uint32_t *lens, size_t n, char *out, size_t cap) {
    char all[1024];
    text_snippet_opts o = {.terms = terms, .term_lens = lens, .nterms = n};
    size_t l1 = text_snippet(a, body, strlen(body), &o, out, cap);
    o.scan_all = true;
    size_t l2 = text_snippet(a, body, strlen(body), &o, all, sizeof all);
    if (l1 != l2 || memcmp(out, all, l1) != 0)
        fail_msg("\"%s\" != all \"%s\"", out, all);
}

/* Pass 2 takes pass 1's matches inside the window only when they are the
 * matches an analysis of the window finds (text.c, s_snip_kept); the cases
 * where they are not. */
static void test_snippet_window(void **state) {
    (void)state;
    text_analyzer *a = text_analyzer_new(NULL);
    const char *terms[] = {"run", "polic"};
    uint32_t lens[] = {3, 5};
    char body[4096], out[1024];
    /* the window starts inside "zz..zrunning": analyzed alone its "running"
     * matches (the snippet has always marked it) */
    size_t n = 0;
    memset(body, 'z', 100);
    n += 100;
    n += (size_t)sprintf(body + n, "running-");
    memset(body + n, 'q', 51);
    n += 51;
    sprintf(body + n, "-police and more");
    s_snip_both(a, body, terms, lens, 2, out, sizeof out);
    assert_non_null(strstr(out, "\xE2\x80\xA6\xC2\xABrunning\xC2\xBB-qqq"));
    /* the window ends inside "policeman": its "police" is marked */
    n = (size_t)sprintf(body, "police-");
    memset(body + n, 'w', 186);
    n += 186;
    n += (size_t)sprintf(body + n, "-policeman");
    for (int k = 0; k < 20; k++)
        n += (size_t)sprintf(body + n, " and more");
    s_snip_both(a, body, terms, lens, 2, out, sizeof out);
    assert_non_null(strstr(out, "-\xC2\xABpolice\xC2\xBB\xE2\x80\xA6"));
    /* the window after more matches than pass 1 keeps */
    n = 0;
    for (int k = 0; k < 300; k++)
        n += (size_t)sprintf(body + n, "police ");
    sprintf(body + n, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx run police");
    s_snip_both(a, body, terms, lens, 2, out, sizeof out);
    assert_non_null(strstr(out, " \xC2\xABrun\xC2\xBB \xC2\xABpolice\xC2\xBB"));
    /* overlapping CJK matches are one mark */
    const char *zh[] = {"北京", "京大"};
    uint32_t zhl[] = {6, 6};
    s_snip_both(a, "中国北京大学", zh, zhl, 2, out, sizeof out);
    assert_string_equal(out, "中国«北京大»学");
    text_analyzer_destroy(&a);
}

/* The text between and inside marks: whitespace runs collapsed across the
 * segments, control bytes and invalid UTF-8 replaced, a space before a mark
 * kept once; segments shorter than one vector block (s_put_text reads past
 * their end up to the body's). */
static void test_snippet_segments(void **state) {
    (void)state;
    text_analyzer *a = text_analyzer_new(NULL);
    const char *terms[] = {"run", "x"};
    uint32_t lens[] = {3, 1};
    char out[512];
    s_snip_both(a, "a run  b\trun x\n\nrun!  end", terms, lens, 2, out, sizeof out);
    assert_string_equal(out, "a \xC2\xABrun\xC2\xBB b \xC2\xABrun\xC2\xBB \xC2\xABx\xC2\xBB "
                             "\xC2\xABrun\xC2\xBB! end");
    s_snip_both(a, "run run\x01run  \xC3\xA9 run \xff run.run", terms, lens, 2, out, sizeof out);
    assert_string_equal(out, "\xC2\xABrun\xC2\xBB \xC2\xABrun\xC2\xBB \xC2\xABrun\xC2\xBB "
                             "\xC3\xA9 \xC2\xABrun\xC2\xBB \xEF\xBF\xBD \xC2\xABrun\xC2\xBB."
                             "\xC2\xABrun\xC2\xBB");
    /* a long run of printable text with single spaces, then a mark */
    s_snip_both(a, "one two three four five six seven eight nine ten run  eleven", terms, lens, 2,
                out, sizeof out);
    assert_string_equal(out, "one two three four five six seven eight nine ten \xC2\xABrun\xC2\xBB "
                             "eleven");
    text_analyzer_destroy(&a);
}

typedef struct {
    char tb[16][64];
    const char *terms[16];
    uint32_t lens[16];
    size_t n;
} s_terms;

static int s_term_cb(void *ud, const text_token *tok) {
    s_terms *t = ud;
    if (t->n < 16 && tok->len < 64) {
        memcpy(t->tb[t->n], tok->term, tok->len);
        t->terms[t->n] = t->tb[t->n];
        t->lens[t->n++] = tok->len;
    }
    return 0;
}

/* Pass 1 analyzes only the regions that can hold a match (text.c): random
 * bodies of tricky words give the same snippet as analyzing everything,
 * with the needle scan's SSE2 version and with the one text_analyzer_new
 * chooses (AVX2 where the CPU has it). */
static void test_snippet_regions(void **state) {
    (void)state;
    static const char *vocab[] = {
        "the", "The", "running", "RUNNING", "runs", "ran", "police", "Polic\xC3\xA9", "dying",
        "lying", "tie", "ties", "die", "skies", "sky", "o'neil", "don\xE2\x80\x99t", "run's",
        "\xC3\x89" "clair", "eclair", "\xEF\xBC\xB4\xEF\xBD\x8F\xEF\xBD\x8B\xEF\xBD\x99\xEF\xBD\x8F",
        "tokyo", "\xEF\xAC\x81le", "file", "hel\xC2\xADlo", "hello", "na\xC3\xAFve", "naive",
        "3.14", "3,000", "x_y", "_run", "r\xCC\x81un", "\xE2\x80\x94", "\xE2\x80\x9Cquoted\xE2\x80\x9D",
        "\xE2\x80\xA6", "\xC2\xA0", "\xE4\xB8\xAD\xE5\x9B\xBD", "\xE5\x8C\x97\xE4\xBA\xAC",
        "mixed\xE4\xB8\xAD", "\xFF", "\xC3", "ab\xE2\x80\x8B" "cd", "abcd", "secure", "security",
        "secur", "zeal", "a", "i", "5", "55", "\t", "\n", "  ", ".", "(run)", "-police-",
        /* the third byte: Snowball's y -> i, restored e, and what stays */
        "using", "USING", "use", "cry", "Cries", "cried", "dry", "hoping", "hopping", "hope",
        "agreed", "idly", "ugly", "only", "gently", "univers", "Universities", "sing's",
        "ab'cd", "1,5", "x2y", "Cr\xC3\xA9me", "cre\xCC\x81me", "us", "US", "uSe",
        /* the long prefixes: a stem's last two bytes when e, i, l or y */
        "capability", "Capabilities", "capable", "happy", "HAPPINESS", "happier", "presidents",
        "President", "presi\xC2\xAD" "dent", "presidential", "relational", "generate",
        "generational", "possibly", "possibility", "skiing", "skis", "news", "early", "agreeable",
        "agreeability", "Hyphen-ated", "x'y'z", "secured"};
    const size_t nv = sizeof vocab / sizeof *vocab;
    text_analyzer *a = text_analyzer_new(NULL);
    text_options so = text_options_default();
    so.simd = TEXT_SIMD_SSE2;
    text_analyzer *sse2 = text_analyzer_new(&so);
    assert_non_null(a);
    assert_non_null(sse2);
    srand(4242);
    char body[4096], out1[2048], out2[2048], out3[2048], out4[2048];
    for (int iter = 0; iter < 3000; iter++) {
        size_t len = 0;
        int words = 1 + rand() % 300;
        for (int w = 0; w < words; w++) {
            const char *v = vocab[(size_t)rand() % nv];
            size_t l = strlen(v);
            if (len + l + 1 >= sizeof body)
                break;
            memcpy(body + len, v, l);
            len += l;
            if (rand() % 4)
                body[len++] = ' ';
        }
        /* terms: what the analyzer makes of 1-3 vocabulary words */
        s_terms t = {.n = 0};
        for (int k = 0; k < 1 + rand() % 3; k++) {
            const char *v = vocab[(size_t)rand() % nv];
            text_analyze(a, v, strlen(v), 0, s_term_cb, &t, NULL);
        }
        const char *pre[1] = {"secur"};
        uint32_t plen[1] = {5};
        text_snippet_opts o = {.terms = t.terms, .term_lens = t.lens, .nterms = t.n,
                               .scan_bytes = (uint32_t)(rand() % 2 ? len : 1 + rand() % (len + 1))};
        if (rand() % 4 == 0) {
            o.prefixes = pre;
            o.prefix_lens = plen;
            o.nprefixes = 1;
        }
        size_t l1 = text_snippet(a, body, len, &o, out1, sizeof out1);
        size_t l3 = text_snippet(sse2, body, len, &o, out3, sizeof out3);
        /* the terms prepared once (text_snippet_prepare), for this body,
         * the same body scanned whole, and a later part of it */
        text_snippet_prep *sp = text_snippet_prepare(&o);
        assert_non_null(sp);
        text_snippet_opts po = o;
        po.prep = sp;
        size_t l4 = text_snippet(sse2, body, len, &po, out4, sizeof out4);
        o.scan_all = true;
        size_t l2 = text_snippet(a, body, len, &o, out2, sizeof out2);
        if (l1 != l2 || memcmp(out1, out2, l1) != 0)
            fail_msg("iteration %d: regions \"%s\" != all \"%s\"", iter, out1, out2);
        if (l3 != l2 || memcmp(out3, out2, l3) != 0)
            fail_msg("iteration %d: SSE2 regions \"%s\" != all \"%s\"", iter, out3, out2);
        if (l4 != l2 || memcmp(out4, out2, l4) != 0)
            fail_msg("iteration %d: prepared \"%s\" != all \"%s\"", iter, out4, out2);
        po.scan_all = true;
        l4 = text_snippet(a, body, len, &po, out4, sizeof out4);
        if (l4 != l2 || memcmp(out4, out2, l4) != 0)
            fail_msg("iteration %d: prepared, all \"%s\" != all \"%s\"", iter, out4, out2);
        size_t half = len / 2;
        l2 = text_snippet(a, body + half, len - half, &o, out2, sizeof out2);
        po.scan_all = false;
        l4 = text_snippet(a, body + half, len - half, &po, out4, sizeof out4);
        if (l4 != l2 || memcmp(out4, out2, l4) != 0)
            fail_msg("iteration %d: prepared, 2nd half \"%s\" != all \"%s\"", iter, out4, out2);
        text_snippet_prep_free(&sp);
        assert_null(sp);
    }
    text_snippet_prep_free(NULL);
    text_analyzer_destroy(&sse2);
    text_analyzer_destroy(&a);
}

/* The body as s_put_text writes it (whitespace runs collapsed, control
 * characters as spaces, what utf8proc_iterate rejects as U+FFFD, leading
 * and trailing spaces gone): the reference for test_put_text_utf8. */
static size_t s_put_ref(const char *s, size_t len, char *out) {
    bool space = true;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        uint8_t c = (uint8_t)s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            if (!space)
                out[o++] = ' ';
            space = true;
            i++;
            continue;
        }
        space = false;
        if (c < 0x80) {
            out[o++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
            i++;
            continue;
        }
        utf8proc_int32_t cp;
        utf8proc_ssize_t r = utf8proc_iterate((const uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (r <= 0) {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, s + i, (size_t)r);
            o += (size_t)r;
            i += (size_t)r;
        }
    }
    while (o && out[o - 1] == ' ')
        o--;
    return o;
}

/* Snippets copy well-formed UTF-8 (s_utf8_len) and replace what
 * utf8proc_iterate rejects (overlongs, surrogates, above U+10FFFF,
 * stray or missing continuation bytes, a sequence cut by the body's or a
 * mark's end): random short bodies of such pieces around the term x, whole
 * (no match) and cut into segments by the marks (\x01, \x02, removed),
 * against s_put_ref. */
static void test_put_text_utf8(void **state) {
    (void)state;
    static const char *piece[] = {
        "x", "x", "ab", " ", "  ", "\t", "\n", "\x01", "\x7f", "\xC3\xA9", "\xC2\x80", "\xDF\xBF",
        "\xE2\x80\x94", "\xE0\xA0\x80", "\xEF\xBF\xBF", "\xED\x9F\xBF", "\xEE\x80\x80",
        "\xF0\x90\x80\x80", "\xF4\x8F\xBF\xBF", "\xF3\xBF\xBF\xBF",
        /* rejected */
        "\xC0\xAF", "\xC1\xBF", "\xE0\x9F\xBF", "\xED\xA0\x80", "\xF0\x8F\xBF\xBF",
        "\xF4\x90\x80\x80", "\xF5\x80\x80\x80", "\xFF", "\x80", "\xBF", "\xC3", "\xE2\x80",
        "\xF0\x90\x80", "\xC3\x41", "\xE2\x28\xA1", "\xF0\x90\x28\xBC"};
    const size_t np = sizeof piece / sizeof *piece;
    text_analyzer *a = text_analyzer_new(NULL);
    assert_non_null(a);
    const char *terms[] = {"x"};
    uint32_t lens[] = {1};
    srand(777);
    char body[64], out[1024], ref[1024];
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = 0;
        for (int k = rand() % 12; k >= 0; k--) {
            const char *v = piece[(size_t)rand() % np];
            size_t l = strlen(v);
            if (len + l > 48)
                break;
            memcpy(body + len, v, l);
            len += l;
        }
        /* a cut at a random byte: the body's end inside a sequence */
        if (len && rand() % 4 == 0)
            len -= (size_t)rand() % 2;
        size_t rl = s_put_ref(body, len, ref);
        for (int marked = 0; marked < 2; marked++) {
            text_snippet_opts o = {.max_chars = 1000, .mark_open = "\x01", .mark_close = "\x02"};
            if (marked) {
                o.terms = terms;
                o.term_lens = lens;
                o.nterms = 1;
            }
            size_t l = text_snippet(a, body, len, &o, out, sizeof out);
            size_t n = 0;
            for (size_t k = 0; k < l; k++) /* the marks out */
                if (out[k] != '\x01' && out[k] != '\x02')
                    out[n++] = out[k];
            if (n != rl || memcmp(out, ref, n) != 0)
                fail_msg("iteration %d (marked %d): \"%.*s\" != \"%.*s\"", iter, marked, (int)n,
                         out, (int)rl, ref);
        }
    }
    text_analyzer_destroy(&a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_words),     cmocka_unit_test(test_cjk),
        cmocka_unit_test(test_invalid),   cmocka_unit_test(test_stopwords),
        cmocka_unit_test(test_fold),      cmocka_unit_test(test_snippet),
        cmocka_unit_test(test_t2s),       cmocka_unit_test(test_stem_cache),
        cmocka_unit_test(test_snippet_regions), cmocka_unit_test(test_snippet_window),
        cmocka_unit_test(test_short_stems),     cmocka_unit_test(test_ascii_path),
        cmocka_unit_test(test_defer_order),
        cmocka_unit_test(test_latin1_stems),
        cmocka_unit_test(test_han_fold),        cmocka_unit_test(test_t2s_table),
        cmocka_unit_test(test_snippet_segments), cmocka_unit_test(test_put_text_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
