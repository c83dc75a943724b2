/*
 * bench_common: what the benchmark programs (bulletin-bench-ingest,
 * bulletin-bench-list) share: the corpus line parser, spawning and stopping
 * services on free loopback ports, Health/Stats round trips, CPU accounting
 * from /proc, percentiles, and the machine description of a report.
 *
 * Not a service library: benchmarks only. Errors are logged through log.h
 * (events bench.*) where noted; nothing here exits the program.
 */
#ifndef BULLETIN_BENCH_COMMON_H
#define BULLETIN_BENCH_COMMON_H

#include "bulletin.pb-c.h"

#include <jansson.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* ---- corpus ------------------------------------------------------------- */

/* What the ingest contract rejects; such lines are skipped by the benches so
 * that every write can succeed. */
#define BENCH_TITLE_MAX 1000
#define BENCH_BODY_MAX (1024 * 1024)
#define BENCH_KEY_MAX 2048
#define BENCH_DATE_MIN_MS 631152000000LL /* 1990-01-01T00:00:00Z */

/* One corpus article (all strings owned, never NULL once parsed). */
typedef struct {
    char *key, *title, *body, *category, *site;
    int64_t published_ms;
    uint64_t id; /* set by the caller (e.g. the id the store assigned); 0 = none */
} bench_article;

/* Why a corpus line was (not) taken, in the order the checks run. */
typedef enum {
    BENCH_ART_OK = 0,
    BENCH_ART_BAD_JSON,     /* not a JSON object */
    BENCH_ART_BAD_DATE,     /* published_at missing or not RFC 3339 */
    BENCH_ART_OUT_OF_RANGE, /* before BENCH_DATE_MIN_MS or after max_ms */
    BENCH_ART_BAD_TITLE,    /* empty or longer than BENCH_TITLE_MAX */
    BENCH_ART_TOO_BIG,      /* body > BENCH_BODY_MAX or key > BENCH_KEY_MAX */
    BENCH_ART_NO_KEY,       /* empty key */
} bench_verdict;

/* strdup of the string member `name` of object o, "" if absent or not a string;
 * NULL only when out of memory. */
char *bench_json_str(json_t *o, const char *name);

/* Parse one JSON Lines line (key, title, body, category, site, published_at)
 * into *a. On BENCH_ART_OK *a owns its strings (bench_article_free); on any
 * other verdict *a is left zeroed and nothing is owned. max_ms: the latest
 * accepted publication time (callers use now + 1 day). */
bench_verdict bench_article_parse(const char *line, size_t len, int64_t max_ms, bench_article *a);

/* Free the strings of *a (not a itself) and zero it; safe on a zeroed article. */
void bench_article_free(bench_article *a);

/* bench_article_free on a[0..n), then free(a). */
void bench_articles_free(bench_article *a, size_t n);

/* fopen(path, "r") for a corpus; on failure logs bench.corpus with a hint on
 * how to build the corpora and returns NULL. */
FILE *bench_corpus_open(const char *path);

/* ---- processes ---------------------------------------------------------- */

/* A currently free TCP port on 127.0.0.1, -1 on failure. */
int bench_free_port(void);

/* n distinct free ports into ports[] (the kernel may hand one out twice);
 * 0, or -1 after 20 failed tries for one port. */
int bench_free_ports(int *ports, int n);

/* fork + execv(argv[0], argv) with stdout and stderr to log_path (truncated)
 * and an empty signal mask; if cpus is not NULL the child is pinned to it
 * (sched_setaffinity) before exec. The child pid, or -1. */
pid_t bench_spawn(char *const argv[], const char *log_path, const cpu_set_t *cpus);

/* bench_spawn, then bench_wait_healthy(endpoint, up to wait_ms). *pid gets the
 * child (or -1) even on failure, so that the caller's stop path stops it.
 * 0, or -1 after logging bench.spawn service=<name> log=<log_path>. */
int bench_start_service(void *ctx, pid_t *pid, char *const argv[], const char *log_path,
                        const cpu_set_t *cpus, const char *endpoint, const char *name, int wait_ms);

/* Fill *set with every online CPU. */
void bench_cpuset_all(cpu_set_t *set);

/* SIGTERM *pid and wait up to wait_s seconds, then SIGKILL; logs bench.stop
 * when it did not exit cleanly. Sets *pid to 0; no-op if *pid <= 0. */
void bench_stop(pid_t *pid, const char *name, int wait_s);

/* true if the child pid has exited (and reaps it). */
bool bench_exited(pid_t pid);

/* rm -rf dir (errors ignored). */
void bench_rm_rf(const char *dir);

/* Done with the temp directory dir (no-op if ""): keep it (logs bench.keep
 * dir=...) or remove it; then dir[0] = 0. */
void bench_dir_release(char *dir, bool keep);

/* ---- CPU accounting ----------------------------------------------------- */

/* User + system CPU time of a process so far (all threads, /proc/PID/stat),
 * in us; -1 if unknown. */
double bench_proc_cpu_us(pid_t pid);

/* User + system CPU time of this process so far, in us; -1 if unknown. */
double bench_self_cpu_us(void);

/* after - before, or -1 when either is unknown (< 0). */
double bench_cpu_delta(double before, double after);

/* ---- request / reply ---------------------------------------------------- */

/* Send [empty][data] on a DEALER and wait up to timeout_ms for the reply
 * body. Returns the unpacked Reply (caller frees with wire_free) or NULL with
 * a sentence in why. */
Bulletin__Reply *bench_roundtrip(void *sock, const void *data, size_t len, int timeout_ms,
                                 char *why, size_t why_cap);

/* Send a body-only request (body: HEALTH or STATS) with request_id id and
 * return the Reply or NULL (see bench_roundtrip). */
Bulletin__Reply *bench_simple_request(void *sock, Bulletin__Request__BodyCase body, uint64_t id,
                                      int timeout_ms, char *why, size_t cap);

/* true if r is a reply whose status is absent or OK. */
bool bench_reply_ok(const Bulletin__Reply *r);

/* Ask `endpoint` for Health (a new DEALER per try, every 100 ms) until it
 * answers OK, the process pid (if > 0) exits, or ms pass. 0, or -1 after
 * logging bench.spawn. */
int bench_wait_healthy(void *ctx, const char *endpoint, pid_t pid, int ms);

/* ---- search query sets -------------------------------------------------- */

/* The search-box text of a bench/search query (the "groups" array of one line
 * of en.search.jsonl / zh.search.jsonl: [[tokens]]), as bulletin-bench-search
 * gives it to our index and to Xapian: groups are ANDed; an en group of
 * several tokens is a quoted phrase; a zh group of overlapping bigrams is
 * sent as its character run. 0 with out NUL-terminated, or -1 when groups is
 * not a non-empty array of non-empty arrays of strings or the text does not
 * fit in cap bytes. */
int bench_search_text(json_t *groups, bool zh, char *out, size_t cap);

/* ---- statistics and report ---------------------------------------------- */

/* qsort comparator for int64_t. */
int bench_cmp_i64(const void *a, const void *b);

/* Nearest-rank percentile of the sorted v[0..n), fraction in [0, 1]
 * (0.99 = p99); 0 when n == 0. */
double bench_pct(const int64_t *v, size_t n, double fraction);

/* The rest of the first line of `path` that starts with prefix, after its ':'
 * and blanks (prefix NULL: the first line); "" if none. */
void bench_read_line(const char *path, const char *prefix, char *out, size_t cap);

/* The 1, 5 and 15 minute load averages ("0.12 0.34 0.56"), or `fallback`. */
void bench_loadavg(char *out, size_t cap, const char *fallback);

/* The CPU model (/proc/cpuinfo "model name", "" if unknown) and the kernel
 * ("Linux 6.1.0-...", "" if unknown). */
void bench_machine(char *cpu, size_t cpu_cap, char *kernel, size_t kernel_cap);

#endif
