/* core/grow.h: grow (one more element) and grow_to (room for `need`): the
 * capacities they reach, the data they keep, and the overflows they refuse
 * leaving the array as it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "grow.h"

static void test_grow_doubles(void **state)
{
    (void)state;
    int *v = NULL;
    size_t n = 0, cap = 0;
    size_t seen[16], nseen = 0;
    for (int i = 0; i < 1000; i++) {
        if (n == cap) {
            int *p = grow(v, &cap, sizeof *p, 4);
            assert_non_null(p);
            v = p;
            seen[nseen++] = cap;
        }
        v[n++] = i;
    }
    /* 4, 8, 16, ..., 1024 */
    assert_int_equal(nseen, 9);
    for (size_t i = 0; i < nseen; i++)
        assert_int_equal(seen[i], (size_t)4 << i);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(v[i], i);
    free(v);
}

static void test_grow_to(void **state)
{
    (void)state;
    size_t cap = 0;
    char *b = grow_to(NULL, &cap, 1, 256, 10);
    assert_non_null(b);
    assert_int_equal(cap, 256); /* first capacity when it is enough */
    memset(b, 'x', cap);
    char *same = grow_to(b, &cap, 1, 256, 256);
    assert_ptr_equal(same, b); /* enough already: untouched */
    assert_int_equal(cap, 256);
    b = grow_to(b, &cap, 1, 256, 5000);
    assert_non_null(b);
    assert_int_equal(cap, 8192); /* doubled until it holds 5000 */
    for (size_t i = 0; i < 256; i++)
        assert_int_equal(b[i], 'x');
    free(b);
    cap = 0;
    uint64_t *w = grow_to(NULL, &cap, sizeof *w, 0, 3); /* first 0: from 1 */
    assert_non_null(w);
    assert_int_equal(cap, 4);
    free(w);
}

static void test_overflow_refused(void **state)
{
    (void)state;
    size_t cap = 16;
    uint64_t *w = malloc(cap * sizeof *w);
    assert_non_null(w);
    w[0] = 42;
    /* elements that would not fit in size_t bytes */
    assert_null(grow_to(w, &cap, sizeof *w, 16, SIZE_MAX / 4));
    assert_int_equal(cap, 16);
    /* a count that cannot double */
    assert_null(grow_to(w, &cap, sizeof *w, 16, SIZE_MAX));
    assert_int_equal(cap, 16);
    size_t huge = SIZE_MAX;
    assert_null(grow(w, &huge, 1, 16));
    assert_int_equal(huge, SIZE_MAX);
    huge = SIZE_MAX / 2 + 1;
    assert_null(grow(w, &huge, 1, 16));
    assert_int_equal(huge, SIZE_MAX / 2 + 1);
    assert_int_equal(w[0], 42); /* the array is still the caller's */
    free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grow_doubles),
        cmocka_unit_test(test_grow_to),
        cmocka_unit_test(test_overflow_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
