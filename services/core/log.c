/* log: key=value event lines on stderr. See log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

log_level log_min_level = LOG_INFO;
static const char *s_service = "bulletin";

void log_init(const char *service)
{
    if (service)
        s_service = service;
    const char *lvl = getenv("BULLETIN_LOG_LEVEL");
    if (!lvl)
        return;
    if (!strcasecmp(lvl, "debug"))
        log_min_level = LOG_DEBUG;
    else if (!strcasecmp(lvl, "info"))
        log_min_level = LOG_INFO;
    else if (!strcasecmp(lvl, "warn") || !strcasecmp(lvl, "warning"))
        log_min_level = LOG_WARN;
    else if (!strcasecmp(lvl, "error"))
        log_min_level = LOG_ERROR;
}

void log_write(log_level level, const char *event, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s svc=%s msg=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, names[level], s_service, event);
    if (n < 0)
        return;
    if ((size_t)n < sizeof line - 2 && fmt && *fmt) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
        va_end(ap);
        if (m > 0)
            n += m;
    }
    if ((size_t)n > sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
