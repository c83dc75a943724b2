/* ingest_key: URL canonicalization and the content hash key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_key.h"

static void canon(const char *in, const char *want)
{
    int not_url = -1;
    char *r = ingest_key_canonical_url(in, strlen(in), &not_url);
    if (!want) {
        assert_null(r);
        assert_int_equal(not_url, 1);
        return;
    }
    assert_non_null(r);
    assert_int_equal(not_url, 0);
    assert_string_equal(r, want);
    free(r);
}

static void test_canonical(void **state)
{
    (void)state;
    canon("HTTP://Example.COM/Path/Page?Q=A", "http://example.com/Path/Page?Q=A");
    canon("http://example.com:80/a", "http://example.com/a");
    canon("https://example.com:443/a", "https://example.com/a");
    canon("http://example.com:443/a", "http://example.com:443/a");
    canon("https://example.com:80/a", "https://example.com:80/a");
    canon("https://example.com:8443/a", "https://example.com:8443/a");
    canon("http://example.com/a#section-2", "http://example.com/a");
    canon("http://example.com/", "http://example.com");
    canon("http://example.com", "http://example.com");
    canon("http://example.com/#top", "http://example.com");
    canon("http://example.com/?q=1", "http://example.com?q=1");
    canon("http://example.com/dir/", "http://example.com/dir/");
    canon("http://example.com/a%2Fb?x=%41", "http://example.com/a%2Fb?x=%41");
    canon("http://User:Pw@Example.com:80/", "http://User:Pw@example.com");
    canon("http://[2001:DB8::1]:80/x", "http://[2001:db8::1]/x");
    canon("http://[2001:DB8::1]/x", "http://[2001:db8::1]/x");
    canon("http://example.com:/x", "http://example.com/x");
    canon("example.com/page", NULL);
    canon("/relative/path", NULL);
    canon("http:///nohost", NULL);
    canon("", NULL);
    canon("1http://x.org", NULL);
}

static void test_hash(void **state)
{
    (void)state;
    char a[INGEST_KEY_HASH_LEN], b[INGEST_KEY_HASH_LEN], c[INGEST_KEY_HASH_LEN];
    assert_int_equal(ingest_key_hash("site", "title", "body", a), 0);
    assert_int_equal(ingest_key_hash("site", "title", "body", b), 0);
    assert_string_equal(a, b);
    assert_int_equal(strlen(a), 34);
    assert_memory_equal(a, "h:", 2);
    for (size_t i = 2; i < 34; i++)
        assert_non_null(strchr("0123456789abcdef", a[i]));
    /* the separator matters: moving text between fields changes the key */
    assert_int_equal(ingest_key_hash("sitet", "itle", "body", c), 0);
    assert_string_not_equal(a, c);
    assert_int_equal(ingest_key_hash("site", "title", "body.", c), 0);
    assert_string_not_equal(a, c);
    /* known value: BLAKE2b-128("\x1f\x1f") */
    assert_int_equal(ingest_key_hash("", "", "", c), 0);
    assert_string_equal(c, "h:0cc3e55864080de7a268bbd4890cc6ae");
    assert_string_equal(a, "h:6aa750310ec0fc071d0c0cae46c2cc20");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
