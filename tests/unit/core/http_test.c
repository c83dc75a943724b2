/* http: /metrics and /healthz served by libmicrohttpd, checked with a plain
 * socket client (no curl): exposition text, health, staleness, 404/405,
 * bad listen addresses, a port in use, idle clients that block nobody. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "clock.h"
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* --- a tiny HTTP/1.0 client ---------------------------------------------------- */

typedef struct {
    int status;
    char head[4096]; /* status line and headers */
    char *body;      /* malloc, NUL-terminated */
    size_t body_len;
} s_resp;

static int s_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Send `raw` as is, read until the server closes; -1 on a socket error or timeout. */
static int s_raw(int port, const char *raw, s_resp *r)
{
    memset(r, 0, sizeof *r);
    int fd = s_connect(port);
    if (fd < 0)
        return -1;
    size_t len = strlen(raw), off = 0;
    while (off < len) {
        ssize_t n = send(fd, raw + off, len - off, MSG_NOSIGNAL);
        if (n <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)n;
    }
    size_t cap = 1 << 16, got = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (got == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        ssize_t n = recv(fd, buf + got, cap - got, 0);
        if (n < 0) {
            free(buf);
            close(fd);
            return -1;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    if (!sep || sscanf(buf, "HTTP/1.%*d %d", &r->status) != 1) {
        free(buf);
        return -1;
    }
    size_t hl = (size_t)(sep - buf);
    if (hl >= sizeof r->head)
        hl = sizeof r->head - 1;
    memcpy(r->head, buf, hl);
    r->head[hl] = '\0';
    r->body_len = got - (size_t)(sep + 4 - buf);
    r->body = malloc(r->body_len + 1);
    memcpy(r->body, sep + 4, r->body_len);
    r->body[r->body_len] = '\0';
    free(buf);
    return 0;
}

static int s_get(int port, const char *method, const char *path, s_resp *r)
{
    char req[512];
    snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: localhost\r\n\r\n", method, path);
    return s_raw(port, req, r);
}

static void s_resp_free(s_resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* --- fixtures -------------------------------------------------------------------- */

static Bulletin__Metric s_m[4], *s_mp[4];
static Bulletin__StatsReply s_stats;

static void s_stats_init(void)
{
    static const struct {
        const char *name, *help;
        double v;
        bool counter;
    } t[] = {
        {"articles", "articles stored", 42, false},
        {"commits", "group commits since start", 7, true},
        {"map-used.bytes", "a \\ back\nslash", 1.5, false},
        {"bytes_total", "already named as a counter", 9007199254740993.0, true},
    };
    bulletin__stats_reply__init(&s_stats);
    for (int i = 0; i < 4; i++) {
        bulletin__metric__init(&s_m[i]);
        s_m[i].name = (char *)t[i].name;
        s_m[i].help = (char *)t[i].help;
        s_m[i].value = t[i].v;
        s_m[i].counter = t[i].counter;
        s_mp[i] = &s_m[i];
    }
    s_stats.service = "store";
    s_stats.instance = "host:\"1\"";
    s_stats.n_metrics = 4;
    s_stats.metrics = s_mp;
}

static http_server *s_start(void)
{
    http_server *h = http_server_new("127.0.0.1:0", "store");
    assert_non_null(h);
    assert_true(http_server_port(h) > 0);
    return h;
}

/* --- tests ------------------------------------------------------------------------- */

static void test_render(void **state)
{
    (void)state;
    s_stats_init();
    char *t = http_render_metrics("store", &s_stats, true);
    assert_non_null(t);
    assert_non_null(strstr(t, "# HELP bulletin_store_articles articles stored\n"
                              "# TYPE bulletin_store_articles gauge\n"
                              "bulletin_store_articles{instance=\"host:\\\"1\\\"\"} 42\n"));
    assert_non_null(strstr(t, "# TYPE bulletin_store_commits_total counter\n"
                              "bulletin_store_commits_total{instance=\"host:\\\"1\\\"\"} 7\n"));
    /* sanitized name, escaped help, a fraction */
    assert_non_null(strstr(t, "# HELP bulletin_store_map_used_bytes a \\\\ back\\nslash\n"));
    assert_non_null(strstr(t, "bulletin_store_map_used_bytes{instance=\"host:\\\"1\\\"\"} 1.5\n"));
    /* no second _total; large integers keep their digits */
    assert_null(strstr(t, "bytes_total_total"));
    assert_non_null(strstr(t, "bulletin_store_bytes_total{instance=\"host:\\\"1\\\"\"} "
                              "9007199254740992\n"));
    assert_non_null(strstr(t, "# TYPE bulletin_store_healthy gauge\n"
                              "bulletin_store_healthy{instance=\"host:\\\"1\\\"\"} 1\n"));
    /* every line is a comment or a sample of a bulletin_store_ family */
    for (char *line = t; *line;) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        assert_true(strncmp(line, "# HELP bulletin_store_", 22) == 0 ||
                    strncmp(line, "# TYPE bulletin_store_", 22) == 0 ||
                    strncmp(line, "bulletin_store_", 15) == 0);
        line = nl + 1;
    }
    free(t);

    /* duplicates after sanitizing keep the first; a reserved name is skipped;
     * NULL stats still give the healthy gauge */
    s_m[1].name = "articles";
    s_m[1].counter = false;
    s_m[2].name = "healthy";
    t = http_render_metrics("my-svc", &s_stats, false);
    assert_non_null(t);
    assert_non_null(strstr(t, "bulletin_my_svc_articles{"));
    char *first = strstr(t, "# TYPE bulletin_my_svc_articles gauge");
    assert_non_null(first);
    assert_null(strstr(first + 1, "# TYPE bulletin_my_svc_articles gauge"));
    assert_non_null(strstr(t, "bulletin_my_svc_healthy{instance=\"host:\\\"1\\\"\"} 0\n"));
    first = strstr(t, "# TYPE bulletin_my_svc_healthy");
    assert_null(strstr(first + 1, "# TYPE bulletin_my_svc_healthy"));
    free(t);
    t = http_render_metrics("x", NULL, true);
    assert_non_null(t);
    assert_string_equal(t, "# HELP bulletin_x_healthy 1 when the service reports itself "
                           "healthy, else 0\n# TYPE bulletin_x_healthy gauge\n"
                           "bulletin_x_healthy{instance=\"\"} 1\n");
    free(t);
}

static void test_metrics_and_health(void **state)
{
    (void)state;
    s_stats_init();
    http_server *h = s_start();
    int port = http_server_port(h);
    s_resp r;

    /* before the first publish: 503 on both */
    assert_int_equal(s_get(port, "GET", "/healthz", &r), 0);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "starting"));
    s_resp_free(&r);
    assert_int_equal(s_get(port, "GET", "/metrics", &r), 0);
    assert_int_equal(r.status, 503);
    s_resp_free(&r);

    http_server_publish(h, &s_stats, true, NULL);
    assert_int_equal(s_get(port, "GET", "/metrics", &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.head, "text/plain; version=0.0.4"));
    assert_non_null(strstr(r.body, "# TYPE bulletin_store_articles gauge\n"
                                   "bulletin_store_articles{instance=\"host:\\\"1\\\"\"} 42\n"));
    assert_non_null(strstr(r.body, "bulletin_store_commits_total{instance=\"host:\\\"1\\\"\"} 7\n"));
    assert_non_null(strstr(r.body, "# TYPE bulletin_store_snapshot_age_seconds gauge\n"
                                   "bulletin_store_snapshot_age_seconds{instance=\"host:\\\"1\\\"\"} "));
    assert_int_equal(r.body[r.body_len - 1], '\n');
    s_resp_free(&r);

    assert_int_equal(s_get(port, "GET", "/healthz", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok\n");
    s_resp_free(&r);

    /* a query string does not change the path */
    assert_int_equal(s_get(port, "GET", "/healthz?verbose=1", &r), 0);
    assert_int_equal(r.status, 200);
    s_resp_free(&r);

    /* new values replace the old ones */
    s_m[0].value = 43;
    http_server_publish(h, &s_stats, false, "degraded: the store\nis gone");
    assert_int_equal(s_get(port, "GET", "/healthz", &r), 0);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "degraded: the store is gone\n");
    s_resp_free(&r);
    assert_int_equal(s_get(port, "GET", "/metrics", &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "bulletin_store_articles{instance=\"host:\\\"1\\\"\"} 43\n"));
    assert_non_null(strstr(r.body, "bulletin_store_healthy{instance=\"host:\\\"1\\\"\"} 0\n"));
    s_resp_free(&r);

    http_server_publish(h, &s_stats, true, "");
    assert_int_equal(s_get(port, "GET", "/healthz", &r), 0);
    assert_int_equal(r.status, 200);
    s_resp_free(&r);

    /* HEAD: headers only */
    assert_int_equal(s_get(port, "HEAD", "/metrics", &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    s_resp_free(&r);

    http_server_destroy(&h);
    assert_null(h);
    http_server_destroy(&h); /* twice is fine */
}

static void test_stale(void **state)
{
    (void)state;
    s_stats_init();
    http_server *h = s_start();
    int port = http_server_port(h);
    http_server_set_fresh_ms(h, 200);
    http_server_publish(h, &s_stats, true, NULL);
    s_resp r;
    assert_int_equal(s_get(port, "GET", "/healthz", &r), 0);
    assert_int_equal(r.status, 200);
    s_resp_free(&r);
    usleep(400 * 1000);
    assert_int_equal(s_get(port, "GET", "/healthz", &r), 0);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "stale: the service loop has not reported for 0 s"));
    s_resp_free(&r);
    /* metrics are still served, with their age */
    assert_int_equal(s_get(port, "GET", "/metrics", &r), 0);
    assert_int_equal(r.status, 200);
    char *age = strstr(r.body, "bulletin_store_snapshot_age_seconds{instance=\"host:\\\"1\\\"\"} ");
    assert_non_null(age);
    double a = strtod(strchr(age, '}') + 2, NULL);
    assert_true(a >= 0.35 && a < 5);
    s_resp_free(&r);
    /* a publish makes it fresh again */
    http_server_publish(h, &s_stats, true, NULL);
    assert_int_equal(s_get(port, "GET", "/healthz", &r), 0);
    assert_int_equal(r.status, 200);
    s_resp_free(&r);
    http_server_destroy(&h);
}

static void test_not_found_and_methods(void **state)
{
    (void)state;
    s_stats_init();
    http_server *h = s_start();
    int port = http_server_port(h);
    http_server_publish(h, &s_stats, true, NULL);
    s_resp r;
    const char *paths[] = {"/", "/metricsx", "/healthz/", "/METRICS", "/../etc/passwd", NULL};
    for (int i = 0; paths[i]; i++) {
        assert_int_equal(s_get(port, "GET", paths[i], &r), 0);
        assert_int_equal(r.status, 404);
        s_resp_free(&r);
    }
    const char *methods[] = {"POST", "PUT", "DELETE", "OPTIONS", "PATCH", NULL};
    for (int i = 0; methods[i]; i++) {
        assert_int_equal(s_get(port, methods[i], "/metrics", &r), 0);
        assert_int_equal(r.status, 405);
        assert_non_null(strstr(r.head, "GET, HEAD"));
        s_resp_free(&r);
    }
    /* a POST with a body */
    assert_int_equal(s_raw(port, "POST /healthz HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello", &r), 0);
    assert_int_equal(r.status, 405);
    s_resp_free(&r);
    /* garbage gets an error status (400 from libmicrohttpd), and the server lives on */
    if (s_raw(port, "\x01\x02 garbage \xff\r\n\r\n", &r) == 0) {
        assert_true(r.status >= 400);
        s_resp_free(&r);
    }
    char big[40000];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET /", 5);
    memcpy(big + sizeof big - 14, " HTTP/1.0\r\n\r\n", 14);
    big[sizeof big - 1] = '\0';
    if (s_raw(port, big, &r) == 0) {
        assert_true(r.status >= 400);
        s_resp_free(&r);
    }
    assert_int_equal(s_get(port, "GET", "/healthz", &r), 0);
    assert_int_equal(r.status, 200);
    s_resp_free(&r);
    http_server_destroy(&h);
}

/* Clients that connect and send nothing, or half a request line, do not delay
 * a normal request. */
static void test_idle_clients_block_nobody(void **state)
{
    (void)state;
    s_stats_init();
    http_server *h = s_start();
    int port = http_server_port(h);
    http_server_publish(h, &s_stats, true, NULL);
    int idle[6];
    for (int i = 0; i < 6; i++) {
        idle[i] = s_connect(port);
        assert_true(idle[i] >= 0);
        if (i % 2)
            assert_int_equal(send(idle[i], "GET /metr", 9, MSG_NOSIGNAL), 9);
    }
    for (int k = 0; k < 5; k++) {
        int64_t t0 = clock_mono_ms();
        s_resp r;
        assert_int_equal(s_get(port, "GET", "/metrics", &r), 0);
        assert_int_equal(r.status, 200);
        s_resp_free(&r);
        assert_true(clock_mono_ms() - t0 < 1000);
    }
    for (int i = 0; i < 6; i++)
        close(idle[i]);
    http_server_destroy(&h); /* does not wait for idle clients either */
}

static void test_bad_listen(void **state)
{
    (void)state;
    assert_null(http_server_new(NULL, "store"));
    assert_null(http_server_new("", "store"));
    assert_null(http_server_new("off", "store")); /* off, as an environment variable says it */
    const char *bad[] = {"9557", "127.0.0.1", "127.0.0.1:", ":99999", ":-1", ":12a",
                         "1.2.3.4.5:80", "[::1:80", "no.such.host.invalid:80", ":123456",
                         NULL};
    for (int i = 0; bad[i]; i++)
        assert_null(http_server_new(bad[i], "store"));

    /* a port in use */
    http_server *a = s_start();
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", http_server_port(a));
    assert_null(http_server_new(addr, "store"));
    http_server_destroy(&a);

    /* the other accepted forms */
    const char *good[] = {":0", "*:0", "localhost:0", "0.0.0.0:0", NULL};
    for (int i = 0; good[i]; i++) {
        http_server *h = http_server_new(good[i], "store");
        assert_non_null(h);
        assert_true(http_server_port(h) > 0);
        http_server_destroy(&h);
    }
    /* the start-up check sees the form only: a malformed address is refused,
     * one that does not resolve or is in use is left to the start */
    char err[256];
    const char *malformed[] = {"9557", "127.0.0.1", "127.0.0.1:", ":99999", ":-1", ":12a",
                               "[::1:80", ":123456", NULL};
    for (int i = 0; malformed[i]; i++) {
        assert_int_equal(http_listen_check(malformed[i], err, sizeof err), -1);
        assert_non_null(strstr(err, "--http '"));
    }
    const char *formed[] = {NULL, "", "off", ":0", "*:9557", "localhost:0", "[::1]:80",
                            "no.such.host.invalid:80", addr};
    for (size_t i = 0; i < sizeof formed / sizeof formed[0]; i++)
        assert_int_equal(http_listen_check(formed[i], err, sizeof err), 0);
    /* NULL is tolerated everywhere */
    http_server_publish(NULL, NULL, true, NULL);
    assert_int_equal(http_server_port(NULL), 0);
    http_server_set_fresh_ms(NULL, 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_metrics_and_health),
        cmocka_unit_test(test_stale),
        cmocka_unit_test(test_not_found_and_methods),
        cmocka_unit_test(test_idle_clients_block_nobody),
        cmocka_unit_test(test_bad_listen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
