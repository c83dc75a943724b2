/*
 * ingest_key: see ingest_key.h. URL parsing follows RFC 3986's generic
 * syntax just far enough to find scheme, authority (userinfo@host:port) and
 * the rest; nothing is percent-decoded or re-encoded, because two URLs that
 * differ there may really be different pages.
 */
#include "ingest_key.h"

#include "hash.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static bool s_scheme_char(char c, bool first)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return !first && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.');
}

static char s_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

char *ingest_key_canonical_url(const char *url, size_t len, int *not_url)
{
    *not_url = 1;
    size_t i = 0;
    while (i < len && s_scheme_char(url[i], i == 0))
        i++;
    if (i == 0 || i + 3 > len || memcmp(url + i, "://", 3) != 0)
        return NULL;
    size_t scheme_len = i;
    size_t auth = i + 3, auth_end = auth;
    while (auth_end < len && url[auth_end] != '/' && url[auth_end] != '?' && url[auth_end] != '#')
        auth_end++;
    if (auth_end == auth)
        return NULL; /* no host */
    /* userinfo: up to the last '@' of the authority */
    size_t host = auth;
    for (size_t k = auth; k < auth_end; k++)
        if (url[k] == '@')
            host = k + 1;
    /* port: after the last ':' that is not inside an IPv6 [literal] */
    size_t host_end = auth_end;
    for (size_t k = auth_end; k > host; k--) {
        if (url[k - 1] == ']')
            break;
        if (url[k - 1] == ':') {
            host_end = k - 1;
            break;
        }
    }
    if (host_end == host)
        return NULL;
    size_t rest = auth_end, rest_end = len;
    const char *hash = memchr(url + rest, '#', len - rest);
    if (hash)
        rest_end = (size_t)(hash - url);

    char *out = malloc(len + 1);
    if (!out) {
        *not_url = 0;
        return NULL;
    }
    size_t w = 0;
    for (size_t k = 0; k < scheme_len; k++)
        out[w++] = s_lower(url[k]);
    memcpy(out + w, "://", 3);
    w += 3;
    memcpy(out + w, url + auth, host - auth); /* userinfo@ as is */
    w += host - auth;
    for (size_t k = host; k < host_end; k++)
        out[w++] = s_lower(url[k]);
    if (host_end < auth_end) {
        const char *port = url + host_end + 1;
        size_t plen = auth_end - host_end - 1;
        const char *scheme = out;
        bool web = (scheme_len == 4 && !memcmp(scheme, "http", 4)) ||
                   (scheme_len == 2 && !memcmp(scheme, "ws", 2));
        bool tls = (scheme_len == 5 && !memcmp(scheme, "https", 5)) ||
                   (scheme_len == 3 && !memcmp(scheme, "wss", 3));
        bool dflt = plen == 0 || (web && plen == 2 && !memcmp(port, "80", 2)) ||
                    (tls && plen == 3 && !memcmp(port, "443", 3));
        if (!dflt) {
            out[w++] = ':';
            memcpy(out + w, port, plen);
            w += plen;
        }
    }
    size_t path = rest;
    if (rest_end - rest >= 1 && url[rest] == '/' && (rest_end - rest == 1 || url[rest + 1] == '?'))
        path++; /* the path is just "/" */
    memcpy(out + w, url + path, rest_end - path);
    w += rest_end - path;
    out[w] = '\0';
    *not_url = 0;
    return out;
}

int ingest_key_hash(const char *site, const char *title, const char *body,
                    char out[INGEST_KEY_HASH_LEN])
{
    size_t ls = strlen(site), lt = strlen(title), lb = strlen(body);
    char *buf = malloc(ls + lt + lb + 2);
    if (!buf)
        return -1;
    memcpy(buf, site, ls);
    buf[ls] = 0x1f;
    memcpy(buf + ls + 1, title, lt);
    buf[ls + 1 + lt] = 0x1f;
    memcpy(buf + ls + lt + 2, body, lb);
    out[0] = 'h';
    out[1] = ':';
    hash_hex(buf, ls + lt + lb + 2, out + 2, 16); /* BLAKE2b-128, 32 hex digits */
    free(buf);
    return 0;
}
