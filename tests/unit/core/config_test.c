/* config: flags over environment over defaults; clear errors; --help. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"

static const char *g_data, *g_http;
static long long g_port;
static bool g_verbose;

static const cfg_option s_opts[] = {
    {"data", "BT_DATA", CFG_STR_NONEMPTY, "./data", "data directory", &g_data},
    {"http", "BT_HTTP", CFG_STR, ":9000", "HTTP address (\"\" = off)", &g_http},
    {"port", "BT_PORT", CFG_INT, "5557", "port", &g_port},
    {"verbose", "BT_VERBOSE", CFG_BOOL, NULL, "more logs", &g_verbose},
};
#define N (sizeof s_opts / sizeof s_opts[0])

static int s_parse(int argc, char **argv)
{
    return cfg_parse("t", "test", s_opts, N, argc, argv);
}

static int s_setup(void **state)
{
    (void)state;
    unsetenv("BT_DATA");
    unsetenv("BT_PORT");
    unsetenv("BT_VERBOSE");
    unsetenv("BT_HTTP");
    return 0;
}

static void test_defaults(void **state)
{
    (void)state;
    char *argv[] = {"t", NULL};
    assert_int_equal(s_parse(1, argv), CFG_OK);
    assert_string_equal(g_data, "./data");
    assert_int_equal(g_port, 5557);
    assert_false(g_verbose);
}

static void test_env_then_flags(void **state)
{
    (void)state;
    setenv("BT_DATA", "/env/dir", 1);
    setenv("BT_PORT", "6000", 1);
    setenv("BT_VERBOSE", "yes", 1);
    char *argv0[] = {"t", NULL};
    assert_int_equal(s_parse(1, argv0), CFG_OK);
    assert_string_equal(g_data, "/env/dir");
    assert_int_equal(g_port, 6000);
    assert_true(g_verbose);
    char *argv[] = {"t", "--data", "/flag/dir", "--port=7000", "--verbose=0", NULL};
    assert_int_equal(s_parse(5, argv), CFG_OK);
    assert_string_equal(g_data, "/flag/dir");
    assert_int_equal(g_port, 7000);
    assert_false(g_verbose);
}

static void test_errors(void **state)
{
    (void)state;
    char *unknown[] = {"t", "--nope", NULL};
    assert_int_equal(s_parse(2, unknown), CFG_ERROR);
    char *missing[] = {"t", "--data", NULL};
    assert_int_equal(s_parse(2, missing), CFG_ERROR);
    char *notint[] = {"t", "--port", "12ab", NULL};
    assert_int_equal(s_parse(3, notint), CFG_ERROR);
    char *positional[] = {"t", "stray", NULL};
    assert_int_equal(s_parse(2, positional), CFG_ERROR);
    setenv("BT_PORT", "lots", 1);
    char *argv[] = {"t", NULL};
    assert_int_equal(s_parse(1, argv), CFG_ERROR);
}

/* An empty flag value is an error where empty makes no sense (CFG_STR_NONEMPTY)
 * and a value where it means something (CFG_STR: --http '' = off); an empty
 * environment variable is unset either way. */
static void test_empty_values(void **state)
{
    (void)state;
    char *data_empty[] = {"t", "--data", "", NULL};
    assert_int_equal(s_parse(3, data_empty), CFG_ERROR);
    char *data_eq_empty[] = {"t", "--data=", NULL};
    assert_int_equal(s_parse(2, data_eq_empty), CFG_ERROR);
    char *http_empty[] = {"t", "--http", "", NULL};
    assert_int_equal(s_parse(3, http_empty), CFG_OK);
    assert_string_equal(g_http, "");
    assert_string_equal(g_data, "./data");
    setenv("BT_DATA", "", 1);
    setenv("BT_HTTP", "", 1);
    char *argv[] = {"t", NULL};
    assert_int_equal(s_parse(1, argv), CFG_OK);
    assert_string_equal(g_data, "./data");
    assert_string_equal(g_http, ":9000");
}

static void test_help(void **state)
{
    (void)state;
    char *argv[] = {"t", "--port", "1", "--help", NULL};
    assert_int_equal(s_parse(4, argv), CFG_HELP);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, s_setup),
        cmocka_unit_test_setup(test_env_then_flags, s_setup),
        cmocka_unit_test_setup(test_errors, s_setup),
        cmocka_unit_test_setup(test_empty_values, s_setup),
        cmocka_unit_test_setup(test_help, s_setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
