/*
 * front: the broker's client side, ZMTP 3.0 (the NULL mechanism) spoken by
 * the broker's own thread over its own epoll, instead of a libzmq ROUTER.
 *
 * Why: with a ROUTER every client message crosses two threads of the broker
 * (libzmq's I/O thread reads the socket, hands the message over a pipe and an
 * eventfd to the broker thread; a reply goes back the same way, with a
 * POLLOUT set/reset, two epoll_ctl, per message). Under load that hand-off,
 * not the broker's code, was most of the broker's CPU per request. Here a
 * request is one read(2) and a reply one writev(2) in the broker's thread.
 *
 * To a client this is a ROUTER: libzmq DEALER and REQ sockets (and ROUTER)
 * connect with tcp:// or ipc:// as before. A message is delivered with its
 * envelope (every frame before the last, e.g. the empty delimiter of a
 * DEALER or REQ) as raw ZMTP bytes, and a reply is sent with the same
 * envelope in front, as a ROUTER would route it.
 *
 * Connection life:
 *
 *   accept ─▶ GREETING ──(64-byte greeting, ZMTP ≥ 3, NULL)──▶ READY
 *             (ours and our READY      READY command with a socket type
 *              are sent at once)       that may talk to a ROUTER ──▶ OPEN
 *   any state: bad bytes, a frame over max_msg, EOF ──▶ closed (logged)
 *
 * Not supported: CURVE/PLAIN, ZMTP 1.0/2.0 peers, inproc:// (use a ROUTER).
 */
#ifndef QUERY_FRONT_H
#define QUERY_FRONT_H

#include <stddef.h>
#include <stdint.h>

typedef struct front front;

/* A client message: conn says where it came from (see front_send); env is
 * the envelope as it came on the wire (ZMTP frames, MORE flag set on each),
 * body the last frame. Both are valid only during the callback. */
typedef struct {
    uint64_t conn;
    const uint8_t *env;
    size_t env_len;
    const uint8_t *body;
    size_t body_len;
} front_msg;

typedef void (*front_msg_fn)(void *ud, const front_msg *m);

#define FRONT_ENV_MAX 64 /* longest envelope accepted (bytes; a delimiter is 2) */

/* Listen on every endpoint of a comma-separated list (tcp://HOST:PORT with
 * HOST "*", an address or a name; ipc://PATH, an old socket file there is
 * replaced). max_msg: largest frame accepted (bytes). Returns NULL when an
 * endpoint is malformed, unsupported or cannot be bound (logged). */
front *front_new(const char *endpoints, int64_t max_msg);

/* Close every connection and listener (removes ipc socket files); *fp = NULL.
 * Safe on NULL. */
void front_destroy(front **fp);

/* An fd that is readable when front_run has something to do (poll it). */
int front_fd(const front *f);

/* Without waiting: accept connections, read what arrived, call on_msg for
 * every complete message, write what was held back. Returns the number of
 * messages delivered. on_msg may call front_send. */
size_t front_run(front *f, front_msg_fn on_msg, void *ud);

/* Send env (as given by a front_msg, may be empty) + body as one message to
 * connection conn, without waiting: what the socket does not take now is
 * kept and written when it can (up to a limit per connection). Returns 0, or
 * -1 with errno EHOSTUNREACH (that client is gone) or EAGAIN (too much is
 * held back for it: the message is dropped, as at a ROUTER's high-water mark). */
int front_send(front *f, uint64_t conn, const uint8_t *env, size_t env_len, const void *body,
               size_t body_len);

#endif
