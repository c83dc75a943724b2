/*
 * front: see front.h for what and why.
 *
 * Data: one epoll (level-triggered) holds the listeners and the connections;
 * connections live in a slot array with a free list, and a connection's id
 * is (generation << 32 | slot), so that a reply for a client that left (its
 * slot reused since) is recognised and dropped. Each connection has an input
 * buffer, parsed in place (a message is delivered once its last frame is
 * in; an incomplete message is parsed again from its first frame after the
 * next read), and an output buffer that only holds what the socket did not
 * take at once (EPOLLOUT is asked for only then).
 */
#include "front.h"

#include "log.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#define S_GREETING_LEN 64
#define S_READ_MIN 16384           /* free input space before a read */
#define S_OUT_MAX (64u << 20)      /* bytes held back per connection before sends fail */
#define S_LISTEN_MAX 16
#define S_LISTENER (1ull << 63)    /* epoll data of a listener: this bit + its index */
#define S_EVENTS 64                /* epoll events per front_run */
#define S_READS 4                  /* reads per connection per front_run (fairness) */
#define S_CMD_MAX 512              /* largest command frame accepted */

enum { S_GREETING, S_HANDSHAKE, S_OPEN };

typedef struct {
    int fd;             /* -1: free slot */
    uint32_t gen;
    int state;
    bool out_armed;     /* EPOLLOUT asked for */
    bool dead;          /* close when front_run is done with it */
    uint8_t *in;
    size_t in_len, in_cap;
    uint8_t *out;
    size_t out_off, out_len, out_cap; /* pending bytes: out[out_off .. out_off + out_len) */
} s_conn;

struct front {
    int ep;
    int lfd[S_LISTEN_MAX];
    char *ipc[S_LISTEN_MAX]; /* socket file of an ipc listener, to remove; NULL for tcp */
    size_t nl;
    s_conn *c;
    size_t nc;
    uint32_t *freel;
    size_t nfree;
    int64_t max_msg;
    uint32_t parsing; /* slot whose input is being parsed (UINT32_MAX: none) */
};

/* Our greeting (ZMTP 3.0, NULL, not as-server) and READY (Socket-Type ROUTER). */
static const uint8_t s_hello[] = {
    0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x7F, 3, 0, 'N', 'U', 'L', 'L', 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0x04, 28, 5, 'R', 'E', 'A', 'D', 'Y', 11, 'S', 'o', 'c', 'k', 'e', 't', '-', 'T', 'y', 'p', 'e',
    0, 0, 0, 6, 'R', 'O', 'U', 'T', 'E', 'R'};
_Static_assert(sizeof s_hello == S_GREETING_LEN + 30, "greeting + READY");

static uint64_t s_id(const front *f, const s_conn *c)
{
    return (uint64_t)c->gen << 32 | (uint64_t)(c - f->c);
}

/* --- connections ------------------------------------------------------------ */

static void s_close(front *f, s_conn *c, const char *why)
{
    if (c->fd < 0)
        return;
    if (why)
        log_debug("query.front_close", "conn=%llu why=\"%s\"", (unsigned long long)s_id(f, c), why);
    epoll_ctl(f->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->gen = (c->gen + 1) & 0x7fffffffu; /* 31 bits: bit 63 of an epoll tag marks a listener */
    if (c->gen == 0)
        c->gen = 1;
    c->dead = false;
    free(c->in);
    free(c->out);
    c->in = c->out = NULL;
    c->in_len = c->in_cap = c->out_off = c->out_len = c->out_cap = 0;
    f->freel[f->nfree++] = (uint32_t)(c - f->c);
}

/* Close c now, or once its input is no longer being parsed. */
static void s_fail(front *f, s_conn *c, const char *why)
{
    if ((uint32_t)(c - f->c) == f->parsing) {
        if (!c->dead)
            log_debug("query.front_close", "conn=%llu why=\"%s\"", (unsigned long long)s_id(f, c), why);
        c->dead = true;
    } else {
        s_close(f, c, why);
    }
}

static int s_want_out(front *f, s_conn *c, bool on)
{
    if (c->out_armed == on)
        return 0;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0u), .data.u64 = s_id(f, c)};
    if (epoll_ctl(f->ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        return -1;
    c->out_armed = on;
    return 0;
}

/* Keep bytes the socket did not take. 0, or -1 (EAGAIN: over the limit; ENOMEM). */
static int s_hold(s_conn *c, const struct iovec *iov, int n, size_t skip)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    total -= skip;
    if (c->out_len + total > S_OUT_MAX) {
        errno = EAGAIN;
        return -1;
    }
    if (c->out_off && c->out_off + c->out_len + total > c->out_cap) {
        memmove(c->out, c->out + c->out_off, c->out_len);
        c->out_off = 0;
    }
    if (c->out_len + total > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + total)
            cap *= 2;
        uint8_t *nb = realloc(c->out, cap);
        if (!nb) {
            errno = ENOMEM;
            return -1;
        }
        c->out = nb;
        c->out_cap = cap;
    }
    uint8_t *p = c->out + c->out_off + c->out_len;
    for (int i = 0; i < n; i++) {
        size_t len = iov[i].iov_len;
        const uint8_t *src = iov[i].iov_base;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        memcpy(p, src + skip, len - skip);
        p += len - skip;
        skip = 0;
    }
    c->out_len += total;
    return 0;
}

/* Write iov now as far as the socket takes it; hold the rest. 0 or -1
 * (errno: EAGAIN over the limit, else the connection failed). */
static int s_write(front *f, s_conn *c, struct iovec *iov, int n)
{
    size_t done = 0;
    if (c->out_len == 0) {
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        done = w > 0 ? (size_t)w : 0;
        size_t total = 0;
        for (int i = 0; i < n; i++)
            total += iov[i].iov_len;
        if (done == total)
            return 0;
    }
    if (s_hold(c, iov, n, done) < 0) {
        if (errno == EAGAIN && done == 0)
            return -1; /* dropped whole: the stream is still in step */
        errno = ENOMEM;  /* part of a frame went out: the stream is broken */
        return -1;
    }
    if (s_want_out(f, c, true) < 0)
        return -1;
    return 0;
}

static void s_on_writable(front *f, s_conn *c)
{
    while (c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            s_fail(f, c, strerror(errno));
            return;
        }
        c->out_off += (size_t)w;
        c->out_len -= (size_t)w;
    }
    c->out_off = 0;
    if (s_want_out(f, c, false) < 0)
        s_fail(f, c, "epoll_ctl failed");
}

/* --- input -------------------------------------------------------------------- */

static uint64_t s_be64(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return v;
}

/* The peer's READY: its Socket-Type must be one a ROUTER talks to. */
static bool s_ready_ok(const uint8_t *p, size_t len)
{
    if (len < 6 || memcmp(p, "\x05READY", 6) != 0)
        return false;
    size_t i = 6;
    bool typed = false;
    while (i < len) {
        size_t nl = p[i++];
        if (nl == 0 || len - i < nl + 4)
            return false;
        const uint8_t *name = p + i;
        i += nl;
        uint64_t vl = (uint64_t)p[i] << 24 | (uint64_t)p[i + 1] << 16 | (uint64_t)p[i + 2] << 8 | p[i + 3];
        i += 4;
        if (vl > len - i)
            return false;
        if (nl == 11 && strncasecmp((const char *)name, "Socket-Type", 11) == 0) {
            const char *v = (const char *)p + i;
            typed = (vl == 6 && (memcmp(v, "DEALER", 6) == 0 || memcmp(v, "ROUTER", 6) == 0)) ||
                    (vl == 3 && memcmp(v, "REQ", 3) == 0);
            if (!typed)
                return false;
        }
        i += vl;
    }
    return typed;
}

static void s_command(front *f, s_conn *c, const uint8_t *p, size_t len)
{
    if (c->state == S_HANDSHAKE) {
        if (!s_ready_ok(p, len)) {
            s_fail(f, c, "handshake: expected READY from a DEALER, REQ or ROUTER");
            return;
        }
        c->state = S_OPEN;
        return;
    }
    if (len >= 7 && memcmp(p, "\x04PING", 5) == 0) { /* [ttl u16][context] -> PONG [context] */
        size_t cl = len - 7 > 16 ? 16 : len - 7;
        uint8_t pong[2 + 5 + 16] = {0x04, (uint8_t)(5 + cl), 4, 'P', 'O', 'N', 'G'};
        memcpy(pong + 7, p + 7, cl);
        struct iovec iov = {pong, 7 + cl};
        if (s_write(f, c, &iov, 1) < 0)
            s_fail(f, c, "cannot answer PING");
    } else if (len >= 6 && memcmp(p, "\x05""ERROR", 6) == 0) {
        s_fail(f, c, "peer sent ERROR");
    } /* other commands (PONG, SUBSCRIBE...) mean nothing here */
}

/* Parse what c's input holds: deliver complete messages, keep the rest. */
static size_t s_parse(front *f, s_conn *c, front_msg_fn on_msg, void *ud)
{
    size_t pos = 0, n = 0;
    if (c->state == S_GREETING) {
        if (c->in_len >= 1 && c->in[0] != 0xFF) {
            s_fail(f, c, "not a ZMTP 3 peer");
            return 0;
        }
        if (c->in_len < S_GREETING_LEN)
            return 0;
        if (!(c->in[9] & 1) || c->in[10] < 3 || memcmp(c->in + 12, "NULL\0", 5) != 0) {
            s_fail(f, c, "greeting: ZMTP >= 3.0 with the NULL mechanism expected");
            return 0;
        }
        pos = S_GREETING_LEN;
        c->state = S_HANDSHAKE;
    }
    size_t msg_start = pos; /* first frame of the message being read */
    while (!c->dead) {
        size_t avail = c->in_len - pos;
        if (avail < 2)
            break;
        uint8_t flags = c->in[pos];
        size_t hl = (flags & 0x02) ? 9 : 2;
        if (flags & ~0x07u) {
            s_fail(f, c, "bad frame flags");
            return n;
        }
        if (avail < hl)
            break;
        uint64_t size = hl == 9 ? s_be64(c->in + pos + 1) : c->in[pos + 1];
        bool cmd = (flags & 0x04) != 0, more = (flags & 0x01) != 0;
        if ((cmd && (size > S_CMD_MAX || more || pos != msg_start)) ||
            (!cmd && (c->state != S_OPEN || size > (uint64_t)f->max_msg)) ||
            (more && pos + hl + size - msg_start > FRONT_ENV_MAX)) {
            s_fail(f, c, cmd ? "bad command frame" : c->state != S_OPEN ? "message before the handshake"
                                                   : more ? "envelope too long" : "frame over max_msg");
            return n;
        }
        if (avail - hl < size) {
            if (c->in_cap < msg_start + (pos - msg_start) + hl + size) {
                /* make room for the whole frame (the buffer is compacted below) */
                size_t need = (pos - msg_start) + hl + (size_t)size;
                if (need > c->in_cap) {
                    uint8_t *nb = realloc(c->in, need);
                    if (!nb) {
                        s_fail(f, c, "out of memory");
                        return n;
                    }
                    c->in = nb;
                    c->in_cap = need;
                }
            }
            break;
        }
        const uint8_t *data = c->in + pos + hl;
        pos += hl + (size_t)size;
        if (cmd) {
            s_command(f, c, data, (size_t)size);
            msg_start = pos;
        } else if (!more) {
            front_msg m = {.conn = s_id(f, c),
                           .env = c->in + msg_start,
                           .env_len = (size_t)(data - hl - (c->in + msg_start)),
                           .body = data,
                           .body_len = (size_t)size};
            on_msg(ud, &m);
            n++;
            msg_start = pos;
        }
    }
    if (c->fd >= 0 && !c->dead && msg_start) {
        memmove(c->in, c->in + msg_start, c->in_len - msg_start);
        c->in_len -= msg_start;
    }
    return n;
}

static size_t s_on_readable(front *f, s_conn *c, front_msg_fn on_msg, void *ud)
{
    size_t n = 0;
    f->parsing = (uint32_t)(c - f->c);
    for (int k = 0; k < S_READS && !c->dead; k++) {
        if (c->in_cap - c->in_len < S_READ_MIN) {
            size_t cap = c->in_cap ? c->in_cap * 2 : 2 * S_READ_MIN;
            while (cap - c->in_len < S_READ_MIN)
                cap *= 2;
            uint8_t *nb = realloc(c->in, cap);
            if (!nb) {
                s_fail(f, c, "out of memory");
                break;
            }
            c->in = nb;
            c->in_cap = cap;
        }
        size_t space = c->in_cap - c->in_len;
        ssize_t r = read(c->fd, c->in + c->in_len, space);
        if (r == 0) {
            s_fail(f, c, "closed by the client");
            break;
        }
        if (r < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                s_fail(f, c, strerror(errno));
            break;
        }
        c->in_len += (size_t)r;
        n += s_parse(f, c, on_msg, ud);
        if ((size_t)r < space)
            break;
    }
    f->parsing = UINT32_MAX;
    if (c->dead)
        s_close(f, c, NULL);
    return n;
}

static void s_accept(front *f, int lfd, bool tcp)
{
    for (int k = 0; k < S_EVENTS; k++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                log_warn("query.front_accept", "error=\"%s\"", strerror(errno));
            return;
        }
        if (tcp) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        if (f->nfree == 0) {
            size_t cap = f->nc ? f->nc * 2 : 64;
            s_conn *nc = realloc(f->c, cap * sizeof *nc);
            uint32_t *nf = nc ? realloc(f->freel, cap * sizeof *nf) : NULL;
            if (nc)
                f->c = nc;
            if (!nf) {
                close(fd);
                log_warn("query.front_accept", "error=\"out of memory\"");
                return;
            }
            f->freel = nf;
            for (size_t i = cap; i > f->nc; i--) {
                memset(&f->c[i - 1], 0, sizeof f->c[0]);
                f->c[i - 1].fd = -1;
                f->c[i - 1].gen = 1;
                f->freel[f->nfree++] = (uint32_t)(i - 1);
            }
            f->nc = cap;
        }
        s_conn *c = &f->c[f->freel[--f->nfree]];
        c->fd = fd;
        c->state = S_GREETING;
        c->out_armed = false;
        c->dead = false;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = s_id(f, c)};
        struct iovec iov = {(void *)s_hello, sizeof s_hello};
        if (epoll_ctl(f->ep, EPOLL_CTL_ADD, fd, &ev) < 0 || s_write(f, c, &iov, 1) < 0)
            s_close(f, c, "cannot set up");
    }
}

size_t front_run(front *f, front_msg_fn on_msg, void *ud)
{
    struct epoll_event ev[S_EVENTS];
    int n = epoll_wait(f->ep, ev, S_EVENTS, 0);
    size_t msgs = 0;
    for (int i = 0; i < n; i++) {
        uint64_t d = ev[i].data.u64;
        if (d & S_LISTENER) {
            size_t k = (size_t)(d & 0xffff);
            s_accept(f, f->lfd[k], f->ipc[k] == NULL);
            continue;
        }
        uint32_t slot = (uint32_t)d;
        if (slot >= f->nc || f->c[slot].fd < 0 || f->c[slot].gen != (uint32_t)(d >> 32))
            continue; /* closed (and maybe reused) since */
        s_conn *c = &f->c[slot];
        if (ev[i].events & EPOLLOUT)
            s_on_writable(f, c);
        if (c->fd >= 0 && (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
            msgs += s_on_readable(f, c, on_msg, ud);
    }
    return msgs;
}

int front_send(front *f, uint64_t conn, const uint8_t *env, size_t env_len, const void *body,
               size_t body_len)
{
    uint32_t slot = (uint32_t)conn;
    s_conn *c = slot < f->nc ? &f->c[slot] : NULL;
    if (!c || c->fd < 0 || c->dead || c->gen != (uint32_t)(conn >> 32) || c->state != S_OPEN) {
        errno = EHOSTUNREACH;
        return -1;
    }
    uint8_t h[9];
    size_t hl;
    if (body_len <= 255) {
        h[0] = 0;
        h[1] = (uint8_t)body_len;
        hl = 2;
    } else {
        h[0] = 0x02;
        uint64_t v = body_len;
        for (int i = 8; i >= 1; i--, v >>= 8)
            h[i] = (uint8_t)v;
        hl = 9;
    }
    struct iovec iov[3] = {{(void *)env, env_len}, {h, hl}, {(void *)body, body_len}};
    if (s_write(f, c, iov, 3) < 0) {
        if (errno == EAGAIN)
            return -1;
        s_fail(f, c, strerror(errno));
        errno = EHOSTUNREACH;
        return -1;
    }
    return 0;
}

/* --- listeners ------------------------------------------------------------------ */

static int s_listen_tcp(const char *addr)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof host || !colon[1])
        return -1;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    char *h = host;
    if (h[0] == '[') { /* [v6 address] */
        size_t l = strlen(h);
        if (l < 2 || h[l - 1] != ']')
            return -1;
        h[l - 1] = '\0';
        h++;
    }
    bool any = strcmp(h, "*") == 0;
    struct addrinfo hints = {.ai_family = any ? AF_INET : AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE}, *res = NULL;
    if (getaddrinfo(any ? NULL : h, colon + 1, &hints, &res) != 0 || !res)
        return -1;
    struct addrinfo *a = res;
    for (struct addrinfo *r = res; r; r = r->ai_next)
        if (r->ai_family == AF_INET) { /* as libzmq: IPv4 unless asked otherwise */
            a = r;
            break;
        }
    int fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
                    bind(fd, a->ai_addr, a->ai_addrlen) < 0 || listen(fd, 1024) < 0)) {
        int e = errno;
        close(fd);
        errno = e;
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static int s_listen_ipc(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!*path || strlen(path) >= sizeof sa.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sa.sun_path, path);
    unlink(path); /* a socket file left by an earlier run (libzmq does the same) */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 1024) < 0)) {
        int e = errno;
        close(fd);
        errno = e;
        fd = -1;
    }
    return fd;
}

front *front_new(const char *endpoints, int64_t max_msg)
{
    front *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->parsing = UINT32_MAX;
    f->max_msg = max_msg > 0 ? max_msg : INT64_MAX;
    f->ep = epoll_create1(EPOLL_CLOEXEC);
    if (f->ep < 0) {
        free(f);
        return NULL;
    }
    const char *p = endpoints ? endpoints : "";
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char ep[512];
        int fd = -1;
        errno = EINVAL;
        if (len > 0 && len < sizeof ep && f->nl < S_LISTEN_MAX) {
            memcpy(ep, p, len);
            ep[len] = '\0';
            if (strncmp(ep, "tcp://", 6) == 0) {
                fd = s_listen_tcp(ep + 6);
            } else if (strncmp(ep, "ipc://", 6) == 0) {
                fd = s_listen_ipc(ep + 6);
                if (fd >= 0 && !(f->ipc[f->nl] = strdup(ep + 6))) {
                    close(fd);
                    fd = -1;
                }
            } else {
                errno = EPROTONOSUPPORT;
            }
        } else {
            snprintf(ep, sizeof ep, "%.*s", (int)(len < 200 ? len : 200), p);
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = S_LISTENER | f->nl};
        if (fd < 0 || epoll_ctl(f->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            log_error("zmq.bind", "endpoint=\"%s\" error=\"%s\" endpoints=\"%s\"", ep,
                      errno == EPROTONOSUPPORT ? "the query front takes tcp:// and ipc:// endpoints"
                                               : strerror(errno),
                      endpoints ? endpoints : "");
            if (fd >= 0) {
                close(fd);
                if (f->ipc[f->nl])
                    unlink(f->ipc[f->nl]);
            }
            free(f->ipc[f->nl]);
            f->ipc[f->nl] = NULL;
            front_destroy(&f);
            return NULL;
        }
        f->lfd[f->nl++] = fd;
        if (!end)
            return f;
        p = end + 1;
    }
}

void front_destroy(front **fp)
{
    if (!fp || !*fp)
        return;
    front *f = *fp;
    for (size_t i = 0; i < f->nc; i++)
        s_close(f, &f->c[i], NULL);
    for (size_t i = 0; i < f->nl; i++) {
        close(f->lfd[i]);
        if (f->ipc[i])
            unlink(f->ipc[i]);
        free(f->ipc[i]);
    }
    close(f->ep);
    free(f->c);
    free(f->freel);
    free(f);
    *fp = NULL;
}

int front_fd(const front *f)
{
    return f->ep;
}
