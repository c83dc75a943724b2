/*
 * qsearch_pack_test: qsearch_reply_pack_zmq writes a Reply with a SearchReply
 * body byte for byte as protobuf-c's bulletin__reply__pack does, on random
 * replies with every field's edge values (0, empty and NULL strings,
 * negative published_at, scores of 0, -0.0, NaN and infinity, long strings
 * whose lengths take 2-3 varint bytes, no hits, many hits, facets, a
 * cursor), and protobuf-c unpacks the bytes back to the same hits. Other
 * bodies (and a search body that is NULL) are packed by protobuf-c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qsearch.h"
#include "wire.h"

static unsigned rng = 7;
static unsigned rnd(void)
{
    rng = rng * 1103515245u + 12345u;
    return (rng >> 8) & 0xffffff;
}

static char pool[64][20000];

/* NULL, "", or a random string of 1 to ~20k bytes (mostly short). */
static char *s_str(size_t slot)
{
    unsigned k = rnd() % 8;
    if (k == 0)
        return NULL;
    if (k == 1)
        return "";
    size_t n = k < 6 ? 1 + rnd() % 200 : k == 6 ? 100 + rnd() % 400 : 1 + rnd() % 19990;
    char *s = pool[slot % 64];
    for (size_t i = 0; i < n; i++)
        s[i] = (char)('a' + rnd() % 26);
    s[n] = '\0';
    return s;
}

static uint64_t s_u64(void)
{
    switch (rnd() % 5) {
    case 0:
        return 0;
    case 1:
        return rnd() % 128;
    case 2:
        return rnd();
    case 3:
        return UINT64_MAX - rnd();
    default:
        return (uint64_t)rnd() << 40 | rnd();
    }
}

static double s_score(void)
{
    switch (rnd() % 7) {
    case 0:
        return 0.0;
    case 1:
        return -0.0;
    case 2:
        return NAN;
    case 3:
        return INFINITY;
    case 4:
        return -(double)rnd() / 1000.0;
    default:
        return (double)rnd() / 7.0;
    }
}

static void s_check(const Bulletin__Reply *rep)
{
    size_t want = bulletin__reply__get_packed_size(rep);
    uint8_t *a = malloc(want + 1);
    assert_non_null(a);
    assert_int_equal(bulletin__reply__pack(rep, a), want);
    zmq_msg_t m;
    assert_int_equal(qsearch_reply_pack_zmq(rep, &m), 0);
    assert_int_equal(zmq_msg_size(&m), want);
    const uint8_t *b = zmq_msg_data(&m);
    assert_memory_equal(a, b, want);
    Bulletin__Reply *u = bulletin__reply__unpack(NULL, want, b);
    assert_non_null(u);
    assert_int_equal(u->request_id, rep->request_id);
    if (rep->body_case == BULLETIN__REPLY__BODY_SEARCH && rep->search) {
        assert_int_equal(u->body_case, BULLETIN__REPLY__BODY_SEARCH);
        assert_int_equal(u->search->n_hits, rep->search->n_hits);
        for (size_t i = 0; i < u->search->n_hits; i++) {
            const Bulletin__SearchHit *x = u->search->hits[i], *y = rep->search->hits[i];
            assert_int_equal(x->id, y->id);
            assert_int_equal(x->published_at, y->published_at);
            assert_string_equal(x->title, y->title ? y->title : "");
            assert_string_equal(x->snippet, y->snippet ? y->snippet : "");
        }
        assert_int_equal(u->search->n_sites, rep->search->n_sites);
        assert_int_equal(u->search->total, rep->search->total);
    }
    bulletin__reply__free_unpacked(u, NULL);
    free(a);
    zmq_msg_close(&m);
}

static void test_random_replies(void **state)
{
    (void)state;
    enum { MAXH = 120, MAXF = 12 };
    static Bulletin__SearchHit hits[MAXH];
    static Bulletin__SearchHit *hitp[MAXH];
    static Bulletin__FacetCount fc[2 * MAXF];
    static Bulletin__FacetCount *cats[MAXF], *sites[MAXF];
    uint8_t cursor[300];
    for (int iter = 0; iter < 3000; iter++) {
        Bulletin__Reply rep;
        Bulletin__Status st;
        wire_reply_init(&rep, &st, s_u64());
        if (rnd() % 3 == 0) {
            st.code = (Bulletin__StatusCode)(rnd() % 14);
            st.message = s_str(63);
        }
        rep.served_by = rnd() % 4 ? "worker-1" : NULL;
        rep.applied_seq = s_u64();
        Bulletin__SearchReply sr;
        bulletin__search_reply__init(&sr);
        size_t slot = 0;
        sr.n_hits = rnd() % 4 == 0 ? 0 : rnd() % 3 == 0 ? rnd() % MAXH : rnd() % 12;
        for (size_t i = 0; i < sr.n_hits; i++) {
            Bulletin__SearchHit *h = &hits[i];
            bulletin__search_hit__init(h);
            h->id = s_u64();
            h->key = s_str(slot++);
            h->site = s_str(slot++);
            h->category = s_str(slot++);
            h->title = s_str(slot++);
            h->published_at = rnd() % 3 == 0 ? 0 : (int64_t)s_u64();
            h->score = s_score();
            h->snippet = s_str(slot++);
            hitp[i] = h;
        }
        sr.hits = hitp;
        sr.total = s_u64();
        sr.next_cursor.len = rnd() % 3 ? 0 : rnd() % sizeof cursor;
        for (size_t i = 0; i < sr.next_cursor.len; i++)
            cursor[i] = (uint8_t)rnd();
        sr.next_cursor.data = cursor;
        sr.n_categories = rnd() % 2 ? 0 : rnd() % MAXF;
        sr.n_sites = rnd() % 2 ? 0 : rnd() % MAXF;
        for (size_t i = 0; i < sr.n_categories + sr.n_sites; i++) {
            bulletin__facet_count__init(&fc[i]);
            fc[i].value = s_str(slot++);
            fc[i].count = s_u64();
            if (i < sr.n_categories)
                cats[i] = &fc[i];
            else
                sites[i - sr.n_categories] = &fc[i];
        }
        sr.categories = cats;
        sr.sites = sites;
        sr.took_us = s_u64();
        rep.body_case = BULLETIN__REPLY__BODY_SEARCH;
        rep.search = &sr;
        s_check(&rep);
    }
}

/* Lengths at the varint boundaries: a hit (and the SearchReply, and a facet)
 * whose bytes are 127/128, 16383/16384 and 2^21 - 1/2^21 long, around
 * strings of those lengths, with one hit and with two. */
static void test_length_boundaries(void **state)
{
    (void)state;
    size_t big = ((size_t)1 << 21) + 64;
    char *s = malloc(big + 1);
    assert_non_null(s);
    memset(s, 'x', big);
    s[big] = '\0';
    static const size_t at[] = {127, 128, 16383, 16384, (size_t)1 << 21};
    for (size_t a = 0; a < sizeof at / sizeof *at; a++)
        for (size_t l = at[a] - 24; l <= at[a] + 4; l++) {
            Bulletin__Reply rep;
            Bulletin__Status st;
            wire_reply_init(&rep, &st, l);
            Bulletin__SearchReply sr;
            bulletin__search_reply__init(&sr);
            Bulletin__SearchHit h[2];
            Bulletin__SearchHit *hp[2] = {&h[0], &h[1]};
            Bulletin__FacetCount fc;
            Bulletin__FacetCount *fp[1] = {&fc};
            for (int k = 0; k < 2; k++) {
                bulletin__search_hit__init(&h[k]);
                h[k].id = l;
                h[k].snippet = s + big - l; /* l bytes */
                h[k].published_at = k ? -1 : 0;
            }
            bulletin__facet_count__init(&fc);
            fc.value = s + big - l;
            fc.count = l;
            sr.hits = hp;
            sr.n_hits = 1 + l % 2;
            sr.sites = fp;
            sr.n_sites = l % 3 == 0;
            rep.body_case = BULLETIN__REPLY__BODY_SEARCH;
            rep.search = &sr;
            s_check(&rep);
        }
    free(s);
}

/* Not a search body: protobuf-c's bytes all the same. */
static void test_other_bodies(void **state)
{
    (void)state;
    Bulletin__Reply rep;
    Bulletin__Status st;
    wire_reply_init(&rep, &st, 77);
    s_check(&rep); /* no body */
    Bulletin__HealthReply h;
    bulletin__health_reply__init(&h);
    h.ok = true;
    h.service = "worker";
    rep.body_case = BULLETIN__REPLY__BODY_HEALTH;
    rep.health = &h;
    s_check(&rep);
    rep.body_case = BULLETIN__REPLY__BODY_SEARCH;
    rep.search = NULL;
    s_check(&rep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_replies),
        cmocka_unit_test(test_length_boundaries),
        cmocka_unit_test(test_other_bodies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
