/*
 * client_json: articles and results as JSON, for the bulletin command
 * (not part of the public API; built into bulletin_client_lib only).
 *
 * Input objects use the field names of bulletin.proto's Article: key, site,
 * category, title, body, tags (array of strings), author, lang, url, raw and
 * published_at (an RFC 3339 string such as "2024-05-01T08:30:00Z" or
 * "2024-05-01", or an integer of Unix milliseconds). null means absent.
 * The fields the store writes (id, seq, ingested_at, updated_at) are accepted
 * and ignored, so that the output of `bulletin get --json` can be ingested
 * again. Any other field is an error that names it: a misspelt "titel" must
 * not silently lose the title.
 */
#ifndef BULLETIN_CLIENT_JSON_H
#define BULLETIN_CLIENT_JSON_H

#include "bulletin.h"

#include <jansson.h>
#include <stddef.h>

/* Fill *a from a JSON object. The strings point into obj (valid while obj
 * lives); a->tags is allocated: release with client_json_article_clear().
 * Returns 0, or -1 with a sentence in err (then nothing needs releasing). */
int client_json_article_from(const json_t *obj, bulletin_article *a, char *err, size_t cap);

/* Free what client_json_article_from allocated and zero *a. */
void client_json_article_clear(bulletin_article *a);

/* An article as a JSON object: absent fields are left out, times are RFC 3339
 * strings (UTC, milliseconds), id and seq are integers. NULL when out of
 * memory. Caller owns the reference (json_decref). */
json_t *client_json_article_to(const bulletin_article *a);

/* An ingest result as {"index", "key", "id", "seq", "status", "error",
 * "warnings"}: status is the lower-case name ("created", ...), error is null
 * unless rejected, warnings an array (possibly empty). NULL when out of memory. */
json_t *client_json_result_to(const bulletin_ingest_result *r, size_t index);

#endif
