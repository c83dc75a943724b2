/* clock: wall time in Unix milliseconds, monotonic time, RFC 3339. */
#ifndef BULLETIN_CLOCK_H
#define BULLETIN_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Wall-clock time, Unix milliseconds. */
int64_t clock_now_ms(void);
/* Monotonic time in microseconds (for deadlines and durations). */
int64_t clock_mono_us(void);
/* Monotonic time in milliseconds. */
int64_t clock_mono_ms(void);

/* Parse an RFC 3339 timestamp ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00.5+02:00",
 * also a plain date "2024-05-01" read as midnight UTC) into Unix ms.
 * Returns 0 on success, -1 if the text is not such a timestamp. */
int clock_parse_rfc3339(const char *text, int64_t *out_ms);

/* Format Unix ms as RFC 3339 UTC with milliseconds into buf (>= 32 bytes). */
void clock_format_rfc3339(int64_t ms, char *buf, size_t cap);

#endif
