/* utf8: validation of untrusted text. */
#ifndef BULLETIN_UTF8_H
#define BULLETIN_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* True when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF) and contains no NUL byte. On false, *bad_offset
 * (if not NULL) gets the byte offset of the first problem. */
bool utf8_valid(const char *s, size_t len, size_t *bad_offset);

#endif
