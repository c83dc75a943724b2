/*
 * client_internal: the parts of libbulletin shared between its own files and
 * its unit tests, but not public (not in include/bulletin.h, not exported by
 * the shared library).
 */
#ifndef BULLETIN_CLIENT_INTERNAL_H
#define BULLETIN_CLIENT_INTERNAL_H

#include "bulletin.h"
#include "bulletin.pb-c.h"

/* One request/reply exchange with the Lazy Pirate retries (see client.c).
 * Sets req's version, request_id and deadline. On BULLETIN_OK *out is the
 * decoded reply, whose status was OK (free with wire_free); otherwise *out is
 * NULL and bulletin_client_last_error(c) says why. */
bulletin_status client_call(bulletin_client *c, bulletin_service svc, Bulletin__Request *req,
                            Bulletin__Reply **out);

/* The deadline sent with a request of an attempt that waits timeout_ms
 * (>= 1): timeout_ms less a margin of a tenth of it, at least 100 ms, at most
 * half of it, so that the service's DEADLINE_EXCEEDED still finds the client
 * listening on a loaded machine, and a long wait keeps a margin that grows
 * with it. Always >= 1 (0 on the wire would mean "no deadline"). */
uint32_t client_deadline_ms(int timeout_ms);

/* A library-owned copy of a decoded article (free with bulletin_article_free);
 * empty strings become NULL. NULL when out of memory. */
bulletin_article *client_article_from_pb(const Bulletin__Article *pa);

/* Copy a decoded result into *r (cleared first). 0, or -1 when out of memory
 * (then *r is left empty). */
int client_result_from_pb(const Bulletin__IngestResult *pr, bulletin_ingest_result *r);

#endif
