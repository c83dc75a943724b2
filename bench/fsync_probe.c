/*
 * fsync_probe: what one durable commit costs on this disk, by write pattern.
 *
 * The ingest benchmark showed that a Bulletin commit (LMDB) takes 2-4x longer
 * than a SQLite WAL commit on the same filesystem. This probe times the
 * patterns behind that, with nothing else in the way:
 *
 *   wal       1 page overwritten in place + fdatasync (SQLite WAL after its
 *             first checkpoint: the WAL file is reused, not grown)
 *   wal-grow  1 page appended + fdatasync (a fresh WAL)
 *   lmdb      P pages appended past the end of the file + fdatasync, then
 *             the meta page written through a second O_DSYNC descriptor
 *             (what mdb_txn_commit does for an insert-only workload)
 *   lmdb-pre  the same in a file that was written with zeros beforehand
 *             (the data pages land on allocated blocks)
 *   lmdb-nometa  lmdb without the meta write (MDB_NOMETASYNC; NOT durable
 *             on power loss, shown only to price the second sync)
 *
 * Usage: bulletin-bench-fsync [--dir DIR] [--commits N] [--pages P]
 * Output: a markdown table, p50/p99 us per commit and commits/s.
 */
#include "clock.h"
#include "config.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *o_dir;
static long long o_commits, o_pages;

static const cfg_option s_opts[] = {
    {"dir", "BULLETIN_BENCH_DATA_DIR", CFG_STR, "/tmp", "directory for the probe file", &o_dir},
    {"commits", NULL, CFG_INT, "2000", "commits per pattern", &o_commits},
    {"pages", NULL, CFG_INT, "5", "4 KiB pages written per LMDB-like commit", &o_pages},
};

typedef enum { S_WAL, S_WAL_GROW, S_LMDB, S_LMDB_PRE, S_LMDB_NOMETA } s_pattern;
static const char *s_names[] = {"wal", "wal-grow", "lmdb", "lmdb-pre", "lmdb-nometa"};
static const char *s_what[] = {
    "1 page overwritten + fdatasync (SQLite WAL, reused)",
    "1 page appended + fdatasync (SQLite WAL, growing)",
    "P pages appended + fdatasync + O_DSYNC meta write (LMDB commit)",
    "the same on pre-written blocks (LMDB file preallocated)",
    "P pages appended + fdatasync, no meta sync (MDB_NOMETASYNC, not durable)",
};

static int s_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int s_probe(s_pattern pat, const char *path, size_t n, size_t pages, int64_t *lat)
{
    unlink(path);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    int mfd = fd >= 0 ? open(path, O_RDWR | O_DSYNC) : -1;
    static char page[4096], zero[1 << 16];
    memset(page, 'x', sizeof page);
    if (fd < 0 || mfd < 0)
        goto fail;
    size_t per = (pat == S_WAL || pat == S_WAL_GROW) ? 1 : pages;
    if (pat == S_LMDB_PRE) {
        size_t total = (n * per + 2) * sizeof page;
        for (size_t off = 0; off < total; off += sizeof zero)
            if (pwrite(fd, zero, sizeof zero, (off_t)off) != (ssize_t)sizeof zero)
                goto fail;
        if (fsync(fd) != 0)
            goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t t0 = clock_mono_us();
        for (size_t j = 0; j < per; j++) {
            size_t pg = pat == S_WAL ? 1 : 2 + i * per + j;
            if (pwrite(fd, page, sizeof page, (off_t)(pg * sizeof page)) != (ssize_t)sizeof page)
                goto fail;
        }
        if (fdatasync(fd) != 0)
            goto fail;
        if (pat == S_LMDB || pat == S_LMDB_PRE) {
            if (pwrite(mfd, page, 120, (off_t)((i & 1) * sizeof page)) != 120)
                goto fail;
        }
        lat[i] = clock_mono_us() - t0;
    }
    close(fd);
    close(mfd);
    unlink(path);
    return 0;
fail:
    log_error("fsync.probe", "pattern=%s path=%s error=\"%s\"", s_names[pat], path, strerror(errno));
    if (fd >= 0)
        close(fd);
    if (mfd >= 0)
        close(mfd);
    unlink(path);
    return -1;
}

int main(int argc, char **argv)
{
    log_init("bench");
    switch (cfg_parse("bulletin-bench-fsync",
                      "Times one durable commit on this filesystem for SQLite-WAL-like and "
                      "LMDB-like write patterns.",
                      s_opts, sizeof s_opts / sizeof s_opts[0], argc, argv)) {
    case CFG_HELP:
        return 0;
    case CFG_ERROR:
        return 2;
    }
    if (o_commits <= 0 || o_commits > 1000000 || o_pages <= 0 || o_pages > 1024) {
        fprintf(stderr, "bulletin-bench-fsync: --commits 1..1000000, --pages 1..1024\n");
        return 2;
    }
    char path[4096];
    if (snprintf(path, sizeof path, "%s/bulletin-fsync-probe.%d", o_dir, (int)getpid()) >=
        (int)sizeof path) {
        fprintf(stderr, "bulletin-bench-fsync: --dir is too long\n");
        return 2;
    }
    size_t n = (size_t)o_commits;
    int64_t *lat = calloc(n, sizeof *lat);
    if (!lat)
        return 1;
    printf("| pattern | what | p50 us | p99 us | commits/s |\n|---|---|---:|---:|---:|\n");
    int rc = 0;
    for (int p = 0; p <= S_LMDB_NOMETA; p++) {
        if (s_probe((s_pattern)p, path, n, (size_t)o_pages, lat) < 0) {
            rc = 1;
            continue;
        }
        int64_t sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += lat[i];
        qsort(lat, n, sizeof *lat, s_cmp);
        printf("| %s | %s | %lld | %lld | %.0f |\n", s_names[p], s_what[p],
               (long long)lat[n / 2], (long long)lat[(n * 99) / 100],
               sum > 0 ? (double)n * 1e6 / (double)sum : 0);
    }
    free(lat);
    return rc;
}
