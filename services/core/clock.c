/* clock: see clock.h. */
#include "clock.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t clock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t clock_mono_ms(void)
{
    return clock_mono_us() / 1000;
}

/* Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t s_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int s_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int clock_parse_rfc3339(const char *s, int64_t *out_ms)
{
    int Y, M, D, h = 0, mi = 0, sec = 0;
    int64_t frac_ms = 0, off_min = 0;
    const char *p = s;
    if (!s || s_digits(&p, 4, &Y) || *p++ != '-' || s_digits(&p, 2, &M) || *p++ != '-' ||
        s_digits(&p, 2, &D))
        return -1;
    if (M < 1 || M > 12 || D < 1 || D > 31)
        return -1;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (s_digits(&p, 2, &h) || *p++ != ':' || s_digits(&p, 2, &mi))
            return -1;
        if (*p == ':') {
            p++;
            if (s_digits(&p, 2, &sec))
                return -1;
        }
        if (h > 23 || mi > 59 || sec > 60)
            return -1;
        if (*p == '.' || *p == ',') {
            p++;
            int scale = 100, any = 0;
            while (isdigit((unsigned char)*p)) {
                frac_ms += (*p - '0') * scale;
                scale /= 10;
                p++;
                any = 1;
            }
            if (!any)
                return -1;
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p == '-' ? -1 : 1, oh, om;
            p++;
            if (s_digits(&p, 2, &oh) || *p++ != ':' || s_digits(&p, 2, &om))
                return -1;
            off_min = sign * (oh * 60 + om);
        } else if (*p) {
            return -1;
        }
    }
    if (*p)
        return -1;
    int64_t days = s_days_from_civil(Y, (unsigned)M, (unsigned)D);
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - off_min * 60;
    *out_ms = secs * 1000 + frac_ms;
    return 0;
}

void clock_format_rfc3339(int64_t ms, char *buf, size_t cap)
{
    time_t t = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    int msec = (int)(ms - (int64_t)t * 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, msec);
}
