/*
 * wire: the protobuf envelope on the wire. Decoding untrusted bytes with a
 * byte budget (protobuf-c can allocate ~25x the input), version checks,
 * packing straight into zmq messages, status replies, and a generic check
 * that every string field of a decoded message is valid UTF-8 without NUL
 * (protobuf-c does not check that).
 */
#ifndef BULLETIN_WIRE_H
#define BULLETIN_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bulletin.pb-c.h"
#include "internal.pb-c.h"
#include "zio.h"

#define WIRE_VERSION_MAJOR 1
#define WIRE_VERSION_MINOR 0

/* Budget for decoding: a multiple of the input plus slack. The worst case
 * measured is a batch of empty articles: 4 bytes on the wire each, ~200 bytes
 * decoded (50x), so 10,000 of them need ~2 MiB; text-heavy messages decode to
 * about 1-2x their size. 16x + 4 MiB covers the legitimate cases and bounds a
 * 16 MiB message to ~260 MiB. */
#define WIRE_BUDGET(len) ((size_t)(len) * 16 + ((size_t)4 << 20))

typedef Bulletin__StatusCode wire_code;

/* Decode a message of type `desc` from untrusted bytes, allocating at most
 * `budget` bytes. Returns NULL when the bytes do not decode or the budget is
 * exceeded (*code = INVALID_ARGUMENT or RESOURCE_EXHAUSTED, with a sentence in
 * why). Free the result with wire_free (or protobuf_c_message_free_unpacked
 * with a NULL allocator). */
ProtobufCMessage *wire_unpack(const ProtobufCMessageDescriptor *desc, const void *data,
                              size_t len, size_t budget, wire_code *code, char *why,
                              size_t why_cap);

/* wire_unpack for a Request, plus envelope checks: major version 0/1, a body
 * present. On failure returns NULL; *request_id (if the bytes decoded far
 * enough) lets the caller still answer with the right id. */
Bulletin__Request *wire_request_unpack(const void *data, size_t len, size_t budget,
                                       uint64_t *request_id, wire_code *code, char *why,
                                       size_t why_cap);

void wire_free(void *msg);

/* Pack a message into a new zmq message (initialized by this call). 0 or -1. */
int wire_pack_zmq(const ProtobufCMessage *m, zmq_msg_t *out);

/* Pack a message into a malloc'd buffer stored in *out (caller frees out->data). */
int wire_pack_bytes(const ProtobufCMessage *m, ProtobufCBinaryData *out);

/* Pack and send with a route (NULL = none). 0 or -1 with errno. */
int wire_send(void *sock, const zio_route *route, const ProtobufCMessage *m);

/* Set version and request_id of a reply for `request_id`, status OK. The
 * Status is stored in *status_storage, which must outlive rep. */
void wire_reply_init(Bulletin__Reply *rep, Bulletin__Status *status_storage,
                     uint64_t request_id);

/* Send a reply with only a status (an error). fmt is the human message. */
int wire_send_status(void *sock, const zio_route *route, uint64_t request_id, wire_code code,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* protobuf-c accepts some bytes that are not protobuf (a field number above
 * 2^29 - 1, a group): the byte offset of the first such field in data, read
 * as desc and its nested messages, or SIZE_MAX when all is well-formed. The
 * checks on raw bytes (wire_check_strings) stop at such a field, so the
 * unpack functions (wire_unpack, arena_unpack) refuse what this refuses. */
size_t wire_malformed_at(const ProtobufCMessageDescriptor *desc, const void *data, size_t len);

/* wire_malformed_at as an answer: true when well-formed; otherwise false with
 * *code = INVALID_ARGUMENT and a sentence naming the byte in why. */
bool wire_accepted(const ProtobufCMessageDescriptor *desc, const void *data, size_t len,
                   wire_code *code, char *why, size_t why_cap);

/* wire_accepted and wire_strings_ok in one walk of the raw bytes (the walk
 * of wire_accepted again only when something is wrong): true when the message
 * is well-formed, with *strings_ok = whether every string field is valid
 * UTF-8 without NUL (when not, wire_check_strings says which); otherwise
 * false, as wire_accepted (*code = INVALID_ARGUMENT, the sentence in why). */
bool wire_accepted_clean(const ProtobufCMessageDescriptor *desc, const void *data, size_t len,
                         bool *strings_ok, wire_code *code, char *why, size_t why_cap);

/* wire_accepted, then wire_strings_why, in one walk of the raw bytes (the
 * two walks again only when something is wrong, to say what): true when the
 * message is well-formed and every string field valid UTF-8 without NUL;
 * otherwise false, *code = INVALID_ARGUMENT and the sentence of the first of
 * the two that refuses it in why. */
bool wire_accepted_strings(const ProtobufCMessageDescriptor *desc, const void *data, size_t len,
                           wire_code *code, char *why, size_t why_cap);

/* "OK", "INVALID_ARGUMENT", ... ("UNKNOWN" for anything else). */
const char *wire_code_name(int code);

/* Called for each string field that is not valid UTF-8 or contains NUL:
 * path like "ingest.items[3].article.title", offset = first bad byte. */
typedef void (*wire_bad_string_fn)(void *ud, const char *path, size_t offset);

/* Walk the RAW bytes of a message of type desc (before or after decoding it;
 * protobuf-c itself checks neither UTF-8 nor NUL) and call fn (may be NULL)
 * for every bad string field. Returns the number of bad strings. */
int wire_check_strings(const ProtobufCMessageDescriptor *desc, const void *data, size_t len,
                       wire_bad_string_fn fn, void *ud);

/* true when every string field of the raw message is valid UTF-8 without NUL:
 * the walk of wire_check_strings without building field paths (several times
 * cheaper; call wire_check_strings only when this says false). */
bool wire_strings_ok(const ProtobufCMessageDescriptor *desc, const void *data, size_t len);

/* wire_check_strings with the answer a client needs: when a string field is
 * bad, writes "field PATH is not valid UTF-8 or contains NUL (byte N)" about
 * the first one into why (cap bytes, NUL-terminated) and returns the number
 * of bad strings; 0 when all are valid (why untouched). */
int wire_strings_why(const ProtobufCMessageDescriptor *desc, const void *data, size_t len,
                     char *why, size_t cap);

#endif
