/*
 * zio: ZeroMQ helpers that encode the traps of ../shared/pitfalls.md once:
 * linger is bounded, ROUTERs are mandatory (an unroutable reply is an error,
 * not a silent drop), every frame has a size limit, the number of frames per
 * message is capped, and signals arrive on a file descriptor that zmq_poll
 * can watch.
 *
 * Routed messages: a ROUTER receives [routing id ...][empty][body]. zio_route
 * keeps every frame up to and including the first empty frame, so a reply
 * sent with the same route reaches REQ and DEALER clients alike. A DEALER that
 * sends no delimiter ([id][body]) is answered the same way it wrote.
 * Sockets are not thread-safe: use each one from one thread only.
 */
#ifndef BULLETIN_ZIO_H
#define BULLETIN_ZIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#define ZIO_MAX_ROUTE 8  /* routing frames kept; a message with more is refused */

typedef struct {
    int n;
    zmq_msg_t f[ZIO_MAX_ROUTE];
} zio_route;

/* A new socket with linger `linger_ms`, ZMQ_MAXMSGSIZE `max_msg` (0 = none)
 * and, for ROUTER, ZMQ_ROUTER_MANDATORY. NULL on failure (errno set). */
void *zio_socket(void *ctx, int type, int linger_ms, int64_t max_msg);

/* Bind or connect, logging a clear error on failure. 0 or -1. */
int zio_bind(void *sock, const char *endpoint);
int zio_connect(void *sock, const char *endpoint);

/* Whether the option `option` (its name, for the message: "--bind") holds
 * endpoints this program can bind (bind) or connect to: one endpoint, or with
 * `many` a comma-separated list of them. Returns 0, or -1 with one sentence in
 * err naming the option and the value. Connect endpoints are tried on a
 * throwaway socket (zmq_connect refuses only malformed ones: an unreachable
 * endpoint is retried later, not refused); bind endpoints are checked as text
 * (transport://address; for tcp a host or * and a port number or *), since a
 * trial bind would take the address. What passes can still fail at run time
 * (an address in use). For start-up checks of bad option values. */
int zio_endpoints_check(const char *option, const char *value, bool bind, bool many, char *err,
                        size_t cap);

/* Close a socket and set *sock to NULL; safe on NULL. */
void zio_close(void **sock);

/* Receive one routed message from a ROUTER. On success returns 0, the routing
 * frames are in *route (caller closes with zio_route_close) and the body in
 * *body (caller closes with zmq_msg_close). A message whose shape is wrong
 * (too many frames, several body frames) still returns 0 with an EMPTY body,
 * so the caller answers it with INVALID_ARGUMENT. Returns -1 with errno
 * (EAGAIN with ZMQ_DONTWAIT, EINTR, ETERM) when nothing was received. */
int zio_recv_routed(void *sock, zio_route *route, zmq_msg_t *body, int flags);

/* Receive a whole message from a REQ-style peer (DEALER/SUB): skips an empty
 * delimiter frame if present and returns the last frame in *body; extra
 * frames beyond a delimiter and one body make the body empty (see above). */
int zio_recv_body(void *sock, zmq_msg_t *body, int flags);

/* Receive one whole multipart message into f[0..cap) (each initialized by
 * this call; the caller closes f[0..*n)). Frames beyond cap are read and
 * dropped, and *too_many is set. Returns 0, or -1 with errno when nothing
 * was received (EAGAIN with ZMQ_DONTWAIT, EINTR, ETERM). */
int zio_recv_frames(void *sock, zmq_msg_t *f, int cap, int *n, bool *too_many, int flags);

/* Send `route` (copied, still owned by the caller; NULL = no routing frames)
 * followed by one body frame. zio_send_routed copies len bytes of data;
 * zio_send_routed_msg takes ownership of *body. Sends with ZMQ_DONTWAIT: a
 * full pipe or an unknown peer is -1 with errno (EAGAIN, EHOSTUNREACH). */
int zio_send_routed(void *sock, const zio_route *route, const void *data, size_t len);
int zio_send_routed_msg(void *sock, const zio_route *route, zmq_msg_t *body);

/* Copy a route (dst must not be initialized). 0 or -1. */
int zio_route_copy(zio_route *dst, const zio_route *src);
void zio_route_close(zio_route *route);

/* Block SIGINT and SIGTERM (and ignore SIGPIPE) in this thread and every
 * thread created after it, and return a signalfd that becomes readable when
 * one arrives. Call before zmq_ctx_new so ZeroMQ's threads inherit the mask.
 * -1 on failure. */
int zio_signal_fd(void);

/* Drain the signalfd; returns the signal number read, or 0. */
int zio_signal_read(int fd);

#endif
