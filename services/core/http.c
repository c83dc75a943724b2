/*
 * http: see http.h. libmicrohttpd runs one internal polling thread
 * (MHD_USE_AUTO_INTERNAL_THREAD: epoll or poll); every answer is built from
 * the current snapshot, copied under s->lock, so the HTTP thread never waits
 * for the service loop and the service loop waits at most for one memcpy.
 *
 * The snapshot is the rendered exposition text (rendered by publish() in the
 * service's thread, outside the lock), the healthy flag, the detail and the
 * monotonic time of the publish.
 */
#include "http.h"

#include "clock.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define S_MAX_CONNECTIONS 64
#define S_MAX_PER_IP 16
#define S_TIMEOUT_S 5
#define S_CONN_MEMORY (32u << 10)
#define S_MAX_METRICS 4096
#define S_DETAIL 512

struct http_server {
    struct MHD_Daemon *mhd;
    char service[64];  /* sanitized, for metric names */
    int port;
    pthread_mutex_t lock;
    /* --- under lock --- */
    char *text;        /* rendered exposition, NULL before the first publish */
    size_t text_len;
    char *instance;    /* escaped label value of the last publish (malloc) */
    bool healthy;
    char detail[S_DETAIL];
    int64_t published_ms; /* clock_mono_ms() of the last publish */
    int64_t fresh_ms;
};

/* --- rendering --------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} s_buf;

static void s_put(s_buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void s_puts(s_buf *b, const char *s)
{
    s_put(b, s, strlen(s));
}

static void s_printf(s_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_printf(s_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        return;
    }
    if ((size_t)n < sizeof tmp) {
        s_put(b, tmp, (size_t)n);
    } else {
        char *big = malloc((size_t)n + 1);
        if (big) {
            vsnprintf(big, (size_t)n + 1, fmt, ap2);
            s_put(b, big, (size_t)n);
            free(big);
        } else {
            b->oom = true;
        }
    }
    va_end(ap2);
}

/* [a-zA-Z0-9_], everything else becomes '_'; at most cap-1 bytes. */
static void s_sanitize(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i + 1 < cap; i++) {
        char c = src[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_';
        dst[i] = ok ? c : '_';
    }
    dst[i] = '\0';
}

/* HELP text escapes backslash and newline; label values also the double quote. */
static void s_escape(s_buf *b, const char *s, bool label)
{
    for (; s && *s; s++) {
        if (*s == '\\')
            s_puts(b, "\\\\");
        else if (*s == '\n')
            s_puts(b, "\\n");
        else if (*s == '"' && label)
            s_puts(b, "\\\"");
        else if (*s == '\r')
            s_puts(b, " ");
        else
            s_put(b, s, 1);
    }
}

/* Shortest of %.15g/%.17g that reads back the same; NaN/Inf as Prometheus
 * spells them. */
static void s_value(char *out, size_t cap, double v)
{
    if (isnan(v)) {
        snprintf(out, cap, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    snprintf(out, cap, "%.15g", v);
    if (strtod(out, NULL) != v)
        snprintf(out, cap, "%.17g", v);
}

static bool s_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* One metric family: HELP, TYPE and one sample with the instance label. */
static void s_family(s_buf *b, const char *name, const char *help, bool counter,
                     const char *instance, double v)
{
    char val[64];
    s_value(val, sizeof val, v);
    s_printf(b, "# HELP %s ", name);
    s_escape(b, help && *help ? help : name, false);
    s_printf(b, "\n# TYPE %s %s\n%s{instance=\"", name, counter ? "counter" : "gauge", name);
    s_escape(b, instance, true);
    s_printf(b, "\"} %s\n", val);
}

char *http_render_metrics(const char *service, const Bulletin__StatsReply *stats, bool healthy)
{
    char svc[64];
    s_sanitize(svc, sizeof svc, service && *service ? service : "service");
    const char *instance = stats && stats->instance ? stats->instance : "";
    size_t n = stats ? stats->n_metrics : 0;
    if (n > S_MAX_METRICS)
        n = S_MAX_METRICS;
    /* full names, to skip a name that repeats after sanitizing */
    char (*names)[256] = calloc(n + 2, sizeof *names);
    s_buf b = {0};
    if (!names)
        return NULL;
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        const Bulletin__Metric *m = stats->metrics[i];
        if (!m || !m->name || !m->name[0])
            continue;
        char base[128], full[256];
        s_sanitize(base, sizeof base, m->name);
        if (m->counter && !s_ends_with(base, "_total"))
            snprintf(full, sizeof full, "bulletin_%s_%s_total", svc, base);
        else
            snprintf(full, sizeof full, "bulletin_%s_%s", svc, base);
        bool dup = false;
        char reserved[2][256];
        snprintf(reserved[0], sizeof reserved[0], "bulletin_%s_healthy", svc);
        snprintf(reserved[1], sizeof reserved[1], "bulletin_%s_snapshot_age_seconds", svc);
        dup = strcmp(full, reserved[0]) == 0 || strcmp(full, reserved[1]) == 0;
        for (size_t j = 0; j < kept && !dup; j++)
            dup = strcmp(names[j], full) == 0;
        if (dup)
            continue;
        memcpy(names[kept++], full, sizeof full);
        s_family(&b, full, m->help, m->counter, instance, m->value);
    }
    char hname[256];
    snprintf(hname, sizeof hname, "bulletin_%s_healthy", svc);
    s_family(&b, hname, "1 when the service reports itself healthy, else 0", false, instance,
             healthy ? 1 : 0);
    free(names);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* --- serving ------------------------------------------------------------------ */

static enum MHD_Result s_respond(struct MHD_Connection *c, unsigned code, const char *type,
                                 const char *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO; /* out of memory: MHD closes the connection */
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

#define S_TEXT "text/plain; charset=utf-8"
#define S_PROM "text/plain; version=0.0.4; charset=utf-8"

static enum MHD_Result s_metrics(http_server *h, struct MHD_Connection *c)
{
    pthread_mutex_lock(&h->lock);
    if (!h->text) {
        pthread_mutex_unlock(&h->lock);
        static const char msg[] = "starting: the service loop has not reported yet\n";
        return s_respond(c, MHD_HTTP_SERVICE_UNAVAILABLE, S_TEXT, msg, sizeof msg - 1);
    }
    s_buf b = {0};
    s_put(&b, h->text, h->text_len);
    double age = (double)(clock_mono_ms() - h->published_ms) / 1000.0;
    char val[64];
    s_value(val, sizeof val, age);
    s_printf(&b,
             "# HELP bulletin_%s_snapshot_age_seconds seconds since the service loop last "
             "published these metrics\n"
             "# TYPE bulletin_%s_snapshot_age_seconds gauge\n"
             "bulletin_%s_snapshot_age_seconds{instance=\"%s\"} %s\n",
             h->service, h->service, h->service, h->instance ? h->instance : "", val);
    pthread_mutex_unlock(&h->lock);
    if (b.oom) {
        free(b.p);
        return MHD_NO;
    }
    enum MHD_Result ret = s_respond(c, MHD_HTTP_OK, S_PROM, b.p, b.len);
    free(b.p);
    return ret;
}

static enum MHD_Result s_healthz(http_server *h, struct MHD_Connection *c)
{
    char msg[S_DETAIL + 64];
    unsigned code = MHD_HTTP_SERVICE_UNAVAILABLE;
    pthread_mutex_lock(&h->lock);
    int64_t age = clock_mono_ms() - h->published_ms;
    if (!h->text)
        snprintf(msg, sizeof msg, "starting: the service loop has not reported yet\n");
    else if (age > h->fresh_ms)
        snprintf(msg, sizeof msg, "stale: the service loop has not reported for %lld s\n",
                 (long long)(age / 1000));
    else if (!h->healthy)
        snprintf(msg, sizeof msg, "%s\n", h->detail[0] ? h->detail : "unhealthy");
    else {
        snprintf(msg, sizeof msg, "ok\n");
        code = MHD_HTTP_OK;
    }
    pthread_mutex_unlock(&h->lock);
    return s_respond(c, code, S_TEXT, msg, strlen(msg));
}

static enum MHD_Result s_answer(void *cls, struct MHD_Connection *c, const char *url,
                                const char *method, const char *version,
                                const char *upload_data, size_t *upload_data_size,
                                void **con_cls)
{
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    http_server *h = cls;
    log_debug("http.request", "method=%.16s url=\"%.100s\"", method, url);
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        static const char msg[] = "method not allowed: use GET\n";
        return s_respond(c, MHD_HTTP_METHOD_NOT_ALLOWED, S_TEXT, msg, sizeof msg - 1);
    }
    if (strcmp(url, "/metrics") == 0)
        return s_metrics(h, c);
    if (strcmp(url, "/healthz") == 0)
        return s_healthz(h, c);
    static const char msg[] = "not found: try /healthz or /metrics\n";
    return s_respond(c, MHD_HTTP_NOT_FOUND, S_TEXT, msg, sizeof msg - 1);
}

static void s_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    for (char *p = msg; *p; p++)
        if (*p == '"' || *p == '\n')
            *p = '\'';
    /* what a client did wrong (a malformed or oversized request, a reset)
     * must not flood the log at the default level; a failed bind is logged
     * by http_server_new with the address (MHD's message says "port 0") */
    if (strstr(msg, "processing request") || strstr(msg, "reset") || strstr(msg, "timed out") ||
        strstr(msg, "closed") || strstr(msg, "Failed to bind"))
        log_debug("http.mhd", "error=\"%s\"", msg);
    else
        log_warn("http.mhd", "error=\"%s\"", msg);
}

/* --- life ---------------------------------------------------------------------- */

/* NULL, "" and "off" turn HTTP off ("off" for the environment, where ""
 * counts as unset: see config.h). */
static bool s_off(const char *listen)
{
    return !listen || !*listen || !strcmp(listen, "off");
}

/* Split "host:port", ":port", "*:port", "[v6]:port" into host (host_cap
 * bytes) and *port (points into listen). 0, or -1 with the reason in err. */
static int s_split(const char *listen, char *host, size_t host_cap, const char **port_out,
                   char *err, size_t cap)
{
    const char *colon, *hs, *he;
    if (listen[0] == '[') {
        he = strchr(listen, ']');
        if (!he || he[1] != ':') {
            snprintf(err, cap, "expected [IPv6]:port");
            return -1;
        }
        hs = listen + 1;
        colon = he + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon) {
            snprintf(err, cap, "expected host:port or :port");
            return -1;
        }
        hs = listen;
        he = colon;
    }
    const char *port = colon + 1;
    size_t plen = strlen(port);
    if (plen == 0 || plen > 5 || strspn(port, "0123456789") != plen || atoi(port) > 65535) {
        snprintf(err, cap, "the port must be a number from 0 to 65535");
        return -1;
    }
    size_t hlen = (size_t)(he - hs);
    if (hlen >= host_cap) {
        snprintf(err, cap, "host name too long");
        return -1;
    }
    memcpy(host, hs, hlen);
    host[hlen] = '\0';
    *port_out = port;
    return 0;
}

int http_listen_check(const char *listen, char *err, size_t cap)
{
    char host[256];
    const char *port;
    if (s_off(listen))
        return 0;
    char why[128];
    if (s_split(listen, host, sizeof host, &port, why, sizeof why) < 0) {
        snprintf(err, cap, "--http '%s' is not an address (host:port or :port; \"\" = off): %s",
                 listen, why);
        return -1;
    }
    return 0;
}

/* Split listen (s_split) and resolve it. */
static int s_resolve(const char *listen, struct sockaddr_storage *ss, socklen_t *sslen,
                     char *err, size_t cap)
{
    char host[256];
    const char *port;
    if (s_split(listen, host, sizeof host, &port, err, cap) < 0)
        return -1;
    size_t hlen = strlen(host);
    bool any = hlen == 0 || strcmp(host, "*") == 0;
    struct addrinfo hints = {.ai_family = listen[0] == '[' ? AF_INET6 : AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *res = NULL;
    if (any)
        hints.ai_family = AF_INET;
    int rc = getaddrinfo(any ? NULL : host, port, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, cap, "cannot resolve '%s': %s", host, gai_strerror(rc));
        return -1;
    }
    /* prefer IPv4 for names that resolve to both (Docker service names) */
    const struct addrinfo *pick = res;
    for (const struct addrinfo *a = res; a; a = a->ai_next)
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
    memcpy(ss, pick->ai_addr, pick->ai_addrlen);
    *sslen = pick->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

http_server *http_server_new(const char *listen, const char *service)
{
    if (s_off(listen))
        return NULL;
    char err[384];
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    if (s_resolve(listen, &ss, &sslen, err, sizeof err) < 0) {
        log_error("http.start", "listen=\"%.200s\" error=\"%s\"", listen, err);
        return NULL;
    }
    http_server *h = calloc(1, sizeof *h);
    if (!h) {
        log_error("http.start", "listen=\"%.200s\" error=\"out of memory\"", listen);
        return NULL;
    }
    if (pthread_mutex_init(&h->lock, NULL) != 0) {
        free(h);
        log_error("http.start", "listen=\"%.200s\" error=\"cannot create a mutex\"", listen);
        return NULL;
    }
    s_sanitize(h->service, sizeof h->service, service && *service ? service : "service");
    h->fresh_ms = HTTP_FRESH_MS;

    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* the MHD thread inherits our signal mask: block everything so SIGINT/
     * SIGTERM stay with the service's signalfd */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    errno = 0;
    h->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, s_answer, h,
        /* first, so that MHD's own start-up messages come here too */
        MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, (void *)NULL,
        MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)S_MAX_CONNECTIONS,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)S_MAX_PER_IP,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)S_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)S_CONN_MEMORY,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)32, MHD_OPTION_END);
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!h->mhd) {
        log_error("http.start", "listen=\"%.200s\" error=\"cannot listen: %s\"", listen,
                  e ? strerror(e) : "libmicrohttpd failed to start");
        pthread_mutex_destroy(&h->lock);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : 0;
    log_info("http.start", "listen=\"%.200s\" port=%d paths=/healthz,/metrics", listen, h->port);
    return h;
}

void http_server_destroy(http_server **p)
{
    if (!p || !*p)
        return;
    http_server *h = *p;
    if (h->mhd)
        MHD_stop_daemon(h->mhd);
    pthread_mutex_destroy(&h->lock);
    free(h->text);
    free(h->instance);
    free(h);
    *p = NULL;
}

void http_server_publish(http_server *h, const Bulletin__StatsReply *stats, bool healthy,
                         const char *detail)
{
    if (!h)
        return;
    char *text = http_render_metrics(h->service, stats, healthy);
    s_buf inst = {0};
    s_escape(&inst, stats && stats->instance ? stats->instance : "", true);
    pthread_mutex_lock(&h->lock);
    if (text) { /* out of memory: keep the old text, still refresh health */
        free(h->text);
        h->text = text;
        h->text_len = strlen(text);
        text = NULL;
    }
    if (!inst.oom && inst.p) { /* out of memory: keep the old label */
        free(h->instance);
        h->instance = inst.p;
        inst.p = NULL;
    }
    h->healthy = healthy;
    snprintf(h->detail, sizeof h->detail, "%s", detail ? detail : "");
    for (char *q = h->detail; *q; q++)
        if (*q == '\n' || *q == '\r')
            *q = ' ';
    h->published_ms = clock_mono_ms();
    pthread_mutex_unlock(&h->lock);
    free(inst.p);
}

int http_server_port(const http_server *h)
{
    return h ? h->port : 0;
}

void http_server_set_fresh_ms(http_server *h, int64_t ms)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    h->fresh_ms = ms < 1 ? 1 : ms;
    pthread_mutex_unlock(&h->lock);
}
