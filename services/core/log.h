/*
 * log: one line per event on stderr, as key=value pairs:
 *
 *   ts=2026-11-29T01:02:03.456Z level=info svc=store msg=store.commit docs=12 us=412
 *
 * The level is checked before any formatting (Redis serverLog style), so a
 * disabled log_debug costs one comparison. The level comes from
 * BULLETIN_LOG_LEVEL (debug|info|warn|error, default info).
 * Thread-safe: each line is written with one write(2).
 */
#ifndef BULLETIN_LOG_H
#define BULLETIN_LOG_H

typedef enum { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 } log_level;

extern log_level log_min_level;

/* Set the service name printed as svc= and read BULLETIN_LOG_LEVEL. */
void log_init(const char *service);

/* Write one event. `event` is a dotted name ("store.commit"); fmt/... are
 * appended after it and should be key=value pairs. */
void log_write(log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(ev, ...) do { if (log_min_level <= LOG_DEBUG) log_write(LOG_DEBUG, ev, __VA_ARGS__); } while (0)
#define log_info(ev, ...)  do { if (log_min_level <= LOG_INFO)  log_write(LOG_INFO, ev, __VA_ARGS__); } while (0)
#define log_warn(ev, ...)  do { if (log_min_level <= LOG_WARN)  log_write(LOG_WARN, ev, __VA_ARGS__); } while (0)
#define log_error(ev, ...) log_write(LOG_ERROR, ev, __VA_ARGS__)

#endif
