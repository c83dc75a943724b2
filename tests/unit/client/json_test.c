/* json_test: the bulletin command's JSON <-> article/result conversions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "client_json.h"

static json_t *s_parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
    assert_non_null(j);
    return j;
}

/* Convert text; expect failure whose message contains `needle`. */
static void s_expect_error(const char *text, const char *needle)
{
    json_t *j = s_parse(text);
    bulletin_article a;
    char err[400] = "";
    assert_int_equal(client_json_article_from(j, &a, err, sizeof err), -1);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
    assert_null(a.tags);
    json_decref(j);
}

static void test_all_fields(void **state)
{
    (void)state;
    json_t *j = s_parse("{\"key\":\"k1\",\"site\":\"Riverside Daily\",\"category\":\"News\","
                        "\"title\":\"Bridge\",\"body\":\"Text\",\"tags\":[\"a\",\"b\"],"
                        "\"author\":\"Mara\",\"lang\":\"en\",\"url\":\"https://x.example/1\","
                        "\"raw\":\"R\",\"published_at\":\"2024-03-11T07:45:00Z\"}");
    bulletin_article a;
    char err[200];
    assert_int_equal(client_json_article_from(j, &a, err, sizeof err), 0);
    assert_string_equal(a.key, "k1");
    assert_string_equal(a.site, "Riverside Daily");
    assert_string_equal(a.category, "News");
    assert_string_equal(a.title, "Bridge");
    assert_string_equal(a.body, "Text");
    assert_int_equal(a.tag_count, 2);
    assert_string_equal(a.tags[0], "a");
    assert_string_equal(a.tags[1], "b");
    assert_string_equal(a.author, "Mara");
    assert_string_equal(a.lang, "en");
    assert_string_equal(a.url, "https://x.example/1");
    assert_string_equal(a.raw, "R");
    assert_int_equal(a.published_at, 1710143100000LL);
    assert_int_equal(a.id, 0);
    client_json_article_clear(&a);
    assert_null(a.tags);
    json_decref(j);
}

static void test_dates(void **state)
{
    (void)state;
    struct {
        const char *json;
        int64_t ms;
    } cases[] = {
        {"{\"title\":\"t\",\"published_at\":1712131200000}", 1712131200000LL},
        {"{\"title\":\"t\",\"published_at\":\"2024-11-20T16:00:00+01:00\"}", 1732114800000LL},
        {"{\"title\":\"t\",\"published_at\":\"2021-06-01\"}", 1622505600000LL},
        {"{\"title\":\"t\",\"published_at\":\"2024-03-11T07:45:00.250Z\"}", 1710143100250LL},
        {"{\"title\":\"t\",\"published_at\":null}", 0},
        {"{\"title\":\"t\"}", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *j = s_parse(cases[i].json);
        bulletin_article a;
        char err[200];
        assert_int_equal(client_json_article_from(j, &a, err, sizeof err), 0);
        assert_int_equal(a.published_at, cases[i].ms);
        client_json_article_clear(&a);
        json_decref(j);
    }
    s_expect_error("{\"published_at\":\"yesterday\"}", "RFC 3339");
    s_expect_error("{\"published_at\":\"2024-13-01\"}", "RFC 3339");
    s_expect_error("{\"published_at\":1.5}", "integer of Unix ms");
    s_expect_error("{\"published_at\":true}", "not a boolean");
}

static void test_wrong_types(void **state)
{
    (void)state;
    s_expect_error("{\"title\":42}", "\"title\" must be a string, not an integer");
    s_expect_error("{\"body\":[\"x\"]}", "\"body\" must be a string, not an array");
    s_expect_error("{\"tags\":\"news\"}", "\"tags\" must be an array of strings, not a string");
    s_expect_error("{\"tags\":[\"ok\",7]}", "\"tags\"[1] must be a string");
    s_expect_error("{\"site\":{}}", "\"site\" must be a string, not an object");
}

static void test_not_an_object(void **state)
{
    (void)state;
    s_expect_error("[1,2]", "expected a JSON object, got an array");
    s_expect_error("\"text\"", "expected a JSON object, got a string");
    bulletin_article a;
    char err[100];
    assert_int_equal(client_json_article_from(NULL, &a, err, sizeof err), -1);
}

static void test_unknown_fields(void **state)
{
    (void)state;
    s_expect_error("{\"titel\":\"x\"}", "unknown field \"titel\"");
    s_expect_error("{\"title\":\"x\",\"foo\":1,\"bar\":2}", "unknown fields \"foo\", \"bar\"");
    /* the store's own fields are accepted and ignored (get --json | ingest) */
    json_t *j = s_parse("{\"title\":\"x\",\"id\":7,\"seq\":9,\"ingested_at\":\"2024-01-01\","
                        "\"updated_at\":5}");
    bulletin_article a;
    char err[200];
    assert_int_equal(client_json_article_from(j, &a, err, sizeof err), 0);
    assert_int_equal(a.id, 0);
    assert_int_equal(a.seq, 0);
    assert_int_equal(a.ingested_at, 0);
    client_json_article_clear(&a);
    json_decref(j);
}

static void test_article_to_json_round_trip(void **state)
{
    (void)state;
    const char *tags[] = {"城市", "公园"};
    bulletin_article a = {.id = 42, .key = "https://x.example/1", .site = "每日新闻网",
                          .title = "城市公园", .body = "正文", .tags = tags, .tag_count = 2,
                          .lang = "zh", .published_at = 1725364800000LL,
                          .ingested_at = 1725364801000LL, .seq = 7};
    json_t *o = client_json_article_to(&a);
    assert_non_null(o);
    assert_int_equal(json_integer_value(json_object_get(o, "id")), 42);
    assert_int_equal(json_integer_value(json_object_get(o, "seq")), 7);
    assert_string_equal(json_string_value(json_object_get(o, "published_at")),
                        "2024-09-03T12:00:00.000Z");
    assert_null(json_object_get(o, "author")); /* absent stays absent */
    assert_null(json_object_get(o, "updated_at"));
    assert_int_equal(json_array_size(json_object_get(o, "tags")), 2);
    /* and back: the output of get --json is valid input */
    bulletin_article b;
    char err[200];
    assert_int_equal(client_json_article_from(o, &b, err, sizeof err), 0);
    assert_string_equal(b.title, "城市公园");
    assert_string_equal(b.tags[0], "城市");
    assert_int_equal(b.published_at, a.published_at);
    assert_int_equal(b.id, 0);
    client_json_article_clear(&b);
    json_decref(o);
}

static void test_result_to_json(void **state)
{
    (void)state;
    const char *warn[] = {"body: '?\?' at byte 12 looks like a lost character"};
    bulletin_ingest_result r = {.key = "k", .id = 3, .seq = 11,
                                .status = BULLETIN_WRITE_CREATED, .warnings = warn,
                                .warning_count = 1};
    json_t *o = client_json_result_to(&r, 5);
    assert_non_null(o);
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"error\":null,\"id\":3,\"index\":5,\"key\":\"k\",\"seq\":11,"
                           "\"status\":\"created\",\"warnings\":[\"body: '?\?' at byte 12 looks "
                           "like a lost character\"]}");
    free(s);
    json_decref(o);

    bulletin_ingest_result rej = {.status = BULLETIN_WRITE_REJECTED, .error = "title is empty"};
    o = client_json_result_to(&rej, 0);
    s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"error\":\"title is empty\",\"id\":0,\"index\":0,\"key\":null,"
                           "\"seq\":0,\"status\":\"rejected\",\"warnings\":[]}");
    free(s);
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_fields),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_not_an_object),
        cmocka_unit_test(test_unknown_fields),
        cmocka_unit_test(test_article_to_json_round_trip),
        cmocka_unit_test(test_result_to_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
