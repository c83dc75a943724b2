/* zio: see zio.h. */
#include "zio.h"

#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

void *zio_socket(void *ctx, int type, int linger_ms, int64_t max_msg)
{
    void *s = zmq_socket(ctx, type);
    if (!s)
        return NULL;
    zmq_setsockopt(s, ZMQ_LINGER, &linger_ms, sizeof linger_ms);
    if (max_msg > 0)
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max_msg, sizeof max_msg);
    if (type == ZMQ_ROUTER) {
        int one = 1;
        zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    }
    return s;
}

int zio_bind(void *sock, const char *ep)
{
    if (zmq_bind(sock, ep) == 0)
        return 0;
    log_error("zmq.bind", "endpoint=%s error=\"%s\"", ep, zmq_strerror(errno));
    return -1;
}

int zio_connect(void *sock, const char *ep)
{
    if (zmq_connect(sock, ep) == 0)
        return 0;
    log_error("zmq.connect", "endpoint=%s error=\"%s\"", ep, zmq_strerror(errno));
    return -1;
}

/* One bind endpoint as text: NULL when well formed, else what is wrong. */
static const char *s_bind_endpoint_problem(const char *ep)
{
    static const char *const known[] = {"ipc", "inproc", "pgm", "epgm", "tipc", "vmci",
                                        "udp", "ws", "wss", "norm"};
    const char *sep = strstr(ep, "://");
    if (!sep || sep == ep)
        return "no transport:// in front";
    size_t tlen = (size_t)(sep - ep);
    const char *addr = sep + 3;
    if (!*addr)
        return "the address after :// is empty";
    if (tlen == 3 && !strncmp(ep, "tcp", 3)) {
        const char *colon = strrchr(addr, ':');
        if (!colon || colon == addr)
            return "a tcp endpoint needs host:port (tcp://*:5557, tcp://127.0.0.1:5557)";
        const char *port = colon + 1;
        if (!strcmp(port, "*") || !strcmp(port, "!"))
            return NULL;
        long v = 0;
        for (const char *c = port; *c; c++) {
            if (*c < '0' || *c > '9' || v > 65535)
                return "the port is not a number 0..65535 (or *)";
            v = v * 10 + (*c - '0');
        }
        return *port && v <= 65535 ? NULL : "the port is not a number 0..65535 (or *)";
    }
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strlen(known[i]) == tlen && !strncmp(ep, known[i], tlen))
            return NULL;
    return "unknown transport (tcp://, ipc://, inproc://)";
}

int zio_endpoints_check(const char *option, const char *value, bool bind, bool many, char *err,
                        size_t cap)
{
    const char *p = value ? value : "";
    void *ctx = NULL;
    int rc = 0;
    for (;;) {
        const char *end = many ? strchr(p, ',') : NULL;
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char ep[512];
        const char *why = NULL;
        if (len == 0)
            why = many ? "an endpoint in the list is empty" : "it is empty";
        else if (len >= sizeof ep)
            why = "an endpoint is longer than 511 bytes";
        if (!why) {
            memcpy(ep, p, len);
            ep[len] = '\0';
            if (bind) {
                why = s_bind_endpoint_problem(ep);
            } else {
                void *s = (ctx || (ctx = zmq_ctx_new())) ? zio_socket(ctx, ZMQ_DEALER, 0, 0) : NULL;
                if (!s)
                    why = "no socket to try it on";
                else if (zmq_connect(s, ep) != 0)
                    why = zmq_strerror(errno);
                zio_close(&s);
            }
        }
        if (why) {
            snprintf(err, cap, "%s '%s' is not %s (tcp://host:port, ipc:///path): %s", option,
                     value ? value : "", many ? "a list of endpoints" : "an endpoint", why);
            rc = -1;
            break;
        }
        if (!end)
            break;
        p = end + 1;
    }
    if (ctx)
        zmq_ctx_term(ctx);
    return rc;
}

void zio_close(void **sock)
{
    if (sock && *sock) {
        zmq_close(*sock);
        *sock = NULL;
    }
}

void zio_route_close(zio_route *r)
{
    for (int i = 0; i < r->n; i++)
        zmq_msg_close(&r->f[i]);
    r->n = 0;
}

int zio_route_copy(zio_route *dst, const zio_route *src)
{
    dst->n = 0;
    for (int i = 0; i < src->n; i++) {
        zmq_msg_init(&dst->f[i]);
        if (zmq_msg_copy(&dst->f[i], (zmq_msg_t *)&src->f[i]) != 0) {
            zmq_msg_close(&dst->f[i]);
            zio_route_close(dst);
            return -1;
        }
        dst->n++;
    }
    return 0;
}

/* Drain the rest of a multipart message. */
static void s_drain(void *sock)
{
    int more = 1;
    size_t sz = sizeof more;
    while (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz) == 0 && more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, 0) < 0) {
            zmq_msg_close(&m);
            return;
        }
        zmq_msg_close(&m);
    }
}

int zio_recv_routed(void *sock, zio_route *route, zmq_msg_t *body, int flags)
{
    route->n = 0;
    zmq_msg_init(body);
    bool bad = false, delim = false;
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, route->n == 0 ? flags : 0) < 0) {
            int e = errno;
            zmq_msg_close(&m);
            if (route->n == 0) {
                errno = e;
                return -1;
            }
            bad = true; /* interrupted mid-message: cannot happen (atomic), be safe */
            break;
        }
        int more = zmq_msg_more(&m);
        if (!delim && route->n > 0 && !more) {
            /* no delimiter: [id][body] */
            zmq_msg_move(body, &m);
            zmq_msg_close(&m);
            break;
        }
        if (!delim) {
            if (route->n == ZIO_MAX_ROUTE) {
                zmq_msg_close(&m);
                bad = true;
                if (more)
                    s_drain(sock);
                break;
            }
            if (route->n > 0 && zmq_msg_size(&m) == 0)
                delim = true;
            zmq_msg_init(&route->f[route->n]); /* zmq_msg_move closes the target first */
            zmq_msg_move(&route->f[route->n], &m);
            zmq_msg_close(&m);
            route->n++;
            if (!more) { /* only routing frames, no body */
                bad = true;
                break;
            }
            continue;
        }
        /* after the delimiter: exactly one body frame */
        zmq_msg_move(body, &m);
        zmq_msg_close(&m);
        if (more) {
            bad = true;
            s_drain(sock);
        }
        break;
    }
    if (bad) {
        zmq_msg_close(body);
        zmq_msg_init(body);
    }
    return 0;
}

int zio_recv_body(void *sock, zmq_msg_t *body, int flags)
{
    zmq_msg_init(body);
    int nframes = 0;
    bool bad = false;
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, nframes == 0 ? flags : 0) < 0) {
            int e = errno;
            zmq_msg_close(&m);
            if (nframes == 0) {
                errno = e;
                return -1;
            }
            bad = true;
            break;
        }
        int more = zmq_msg_more(&m);
        nframes++;
        if (nframes == 1 && more && zmq_msg_size(&m) == 0) {
            zmq_msg_close(&m); /* delimiter */
            continue;
        }
        zmq_msg_close(body);
        zmq_msg_init(body);
        zmq_msg_move(body, &m);
        zmq_msg_close(&m);
        if (more) {
            bad = true;
            s_drain(sock);
        }
        break;
    }
    if (bad) {
        zmq_msg_close(body);
        zmq_msg_init(body);
    }
    return 0;
}

int zio_recv_frames(void *sock, zmq_msg_t *f, int cap, int *n, bool *too_many, int flags)
{
    *n = 0;
    *too_many = false;
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, *n == 0 && !*too_many ? flags : 0) < 0) {
            int e = errno;
            zmq_msg_close(&m);
            if (*n == 0 && !*too_many) {
                errno = e;
                return -1;
            }
            return 0; /* cannot happen mid-message (atomic delivery); keep what came */
        }
        int more = zmq_msg_more(&m);
        if (*n < cap) {
            zmq_msg_init(&f[*n]);
            zmq_msg_move(&f[(*n)++], &m);
        } else {
            *too_many = true;
        }
        zmq_msg_close(&m);
        if (!more)
            return 0;
    }
}

static int s_send_route(void *sock, const zio_route *route)
{
    if (!route)
        return 0;
    for (int i = 0; i < route->n; i++) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        zmq_msg_copy(&m, (zmq_msg_t *)&route->f[i]);
        if (zmq_msg_send(&m, sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
            int e = errno;
            zmq_msg_close(&m);
            errno = e;
            return -1;
        }
    }
    return 0;
}

int zio_send_routed_msg(void *sock, const zio_route *route, zmq_msg_t *body)
{
    if (s_send_route(sock, route) < 0) {
        zmq_msg_close(body);
        return -1;
    }
    if (zmq_msg_send(body, sock, ZMQ_DONTWAIT) < 0) {
        int e = errno;
        zmq_msg_close(body);
        errno = e;
        return -1;
    }
    return 0;
}

int zio_send_routed(void *sock, const zio_route *route, const void *data, size_t len)
{
    zmq_msg_t m;
    if (zmq_msg_init_size(&m, len) != 0)
        return -1;
    if (len)
        memcpy(zmq_msg_data(&m), data, len);
    return zio_send_routed_msg(sock, route, &m);
}

int zio_signal_fd(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    signal(SIGPIPE, SIG_IGN);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return -1;
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

int zio_signal_read(int fd)
{
    struct signalfd_siginfo si;
    int sig = 0;
    while (read(fd, &si, sizeof si) == (ssize_t)sizeof si)
        sig = (int)si.ssi_signo;
    return sig;
}
