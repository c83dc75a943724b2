/*
 * bulletin-bench-qsearch: the worker's search glue in-process, without the
 * transport. Opens a worker's replica directory (e.g. one kept by
 * `bulletin-bench-list --search --keep`), runs a bench/search query set
 * through qsearch_run and packs each reply as the worker would
 * (qsearch_reply_pack of the Reply), then prints the thread CPU time per search: the worker's search
 * cost minus the broker protocol.
 *
 *   bulletin-bench-qsearch --dir /tmp/.../worker-1 --rounds 20
 *   bulletin-bench-qsearch --dir ... --split     also idx_search alone
 *   bulletin-bench-qsearch --dir ... --dump F    every answer (every field of
 *                                                each hit, facets, cursor) as
 *                                                text, to diff
 *                                                two builds' outputs
 *   bulletin-bench-qsearch --dir ... --text --queries F   F holds one query
 *                                                text per line (any syntax)
 *   bulletin-bench-qsearch --dir ... --times F   CPU µs, hits and text of
 *                                                each query (tab-separated)
 *   bulletin-bench-qsearch --dir ... --no-typos  without the typo fallback
 *                                                (what it costs)
 *   bulletin-bench-qsearch --dir ... --idx-only  idx_search alone per query
 *                                                (--split repeats each query
 *                                                at once: warm caches)
 *
 * The replica is opened read-write (qsearch_new installs its hook and may
 * rebuild an outdated index, then the index is merged into one segment as
 * the worker does after its first sync), so point it at a copy or a kept
 * bench dir.
 */
#include "bench_common.h"
#include "bulletin.pb-c.h"
#include "config.h"
#include "log.h"
#include "qsearch.h"
#include "replica.h"
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *o_dir, *o_queries = "/tmp/corpus/queries/en.search.jsonl", *o_dump, *o_times;
static long o_rounds = 10, o_limit = 10;
static bool o_zh, o_facets, o_split, o_text, o_no_typos, o_idx_only;

static double s_cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* The query texts of a bench/search query set; NULL on error (logged). */
static char **s_queries(const char *path, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        log_error("bench.queries", "path=%s error=\"cannot open\"", path);
        return NULL;
    }
    char **q = NULL, *line = NULL;
    size_t cap = 0, lcap = 0;
    ssize_t len;
    *n = 0;
    while ((len = getline(&line, &lcap, f)) > 0) {
        if (len <= 1)
            continue;
        char text[2048];
        int rc = 0;
        if (o_text) { /* one query text per line */
            line[len - 1] = line[len - 1] == '\n' ? 0 : line[len - 1];
            snprintf(text, sizeof text, "%s", line);
        } else {
            json_error_t jerr;
            json_t *o = json_loadb(line, (size_t)len, 0, &jerr);
            rc = bench_search_text(json_object_get(o, "groups"), o_zh, text, sizeof text);
            json_decref(o);
        }
        if (rc != 0)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 256;
            char **nq = realloc(q, cap * sizeof *nq);
            if (!nq)
                break;
            q = nq;
        }
        q[(*n)++] = strdup(text);
    }
    free(line);
    fclose(f);
    return q;
}

static void s_dump(FILE *f, const char *query, const Bulletin__SearchReply *r)
{
    fprintf(f, "Q %s total=%llu hits=%zu cursor=", query, (unsigned long long)r->total, r->n_hits);
    for (size_t i = 0; i < r->next_cursor.len; i++)
        fprintf(f, "%02x", r->next_cursor.data[i]);
    fputc('\n', f);
    for (size_t i = 0; i < r->n_hits; i++) { /* every field of the hit */
        const Bulletin__SearchHit *h = r->hits[i];
        fprintf(f, "  %llu %.6f %lld [%s] [%s] [%s] %s | %s\n", (unsigned long long)h->id, h->score,
                (long long)h->published_at, h->key, h->site, h->category, h->title, h->snippet);
    }
    for (size_t i = 0; i < r->n_categories; i++)
        fprintf(f, "  cat %s %llu\n", r->categories[i]->value,
                (unsigned long long)r->categories[i]->count);
    for (size_t i = 0; i < r->n_sites; i++)
        fprintf(f, "  site %s %llu\n", r->sites[i]->value, (unsigned long long)r->sites[i]->count);
}

int main(int argc, char **argv)
{
    log_init("bench-qsearch");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--dir") && v)
            o_dir = v, i++;
        else if (!strcmp(a, "--queries") && v)
            o_queries = v, i++;
        else if (!strcmp(a, "--rounds") && v)
            o_rounds = strtol(v, NULL, 10), i++;
        else if (!strcmp(a, "--limit") && v)
            o_limit = strtol(v, NULL, 10), i++;
        else if (!strcmp(a, "--dump") && v)
            o_dump = v, i++;
        else if (!strcmp(a, "--zh"))
            o_zh = true;
        else if (!strcmp(a, "--facets"))
            o_facets = true;
        else if (!strcmp(a, "--split"))
            o_split = true;
        else if (!strcmp(a, "--times") && v)
            o_times = v, i++;
        else if (!strcmp(a, "--idx-only"))
            o_idx_only = true;
        else if (!strcmp(a, "--no-typos"))
            o_no_typos = true;
        else if (!strcmp(a, "--text"))
            o_text = true;
        else {
            fprintf(stderr,
                    "usage: bulletin-bench-qsearch --dir WORKER_REPLICA_DIR [--queries FILE] "
                    "[--zh] [--text] [--times FILE] [--no-typos] [--idx-only] [--rounds N] [--limit N] [--facets] [--split] [--dump FILE]\n");
            return 2;
        }
    }
    if (!o_dir || o_rounds < 1)
        return 2;
    size_t nq = 0;
    char **qs = s_queries(o_queries, &nq);
    if (!qs || !nq)
        return 1;
    replica *rep = replica_new(o_dir, 0);
    idx_options io = {.no_typos = o_no_typos};
    qsearch *s = rep ? qsearch_new(rep, &io) : NULL;
    if (!s)
        return 1;
    qsearch_optimize(s); /* as the worker after its first sync (a rebuilt index has segments) */
    FILE *dump = o_dump ? fopen(o_dump, "w") : NULL;
    double total_us = 0, idx_us = 0;
    double *qus = calloc(nq, sizeof *qus); /* per query, over the timed rounds */
    size_t *qhits = calloc(nq, sizeof *qhits);
    if (!qus || !qhits)
        return 1;
    size_t runs = 0, bytes = 0, hits = 0;
    for (long round = 0; round <= o_rounds; round++) { /* round 0 warms the caches */
        for (size_t i = 0; i < nq; i++) {
            Bulletin__SearchRequest req;
            bulletin__search_request__init(&req);
            req.query = qs[i];
            req.limit = (uint32_t)o_limit;
            req.facets = o_facets;
            qsearch_result res;
            char why[256];
            double t0 = s_cpu_us();
            int code;
            if (o_idx_only) { /* idx_search alone, in a read txn, as qsearch_run calls it */
                idx_query iq = {.query = qs[i], .limit = (uint32_t)o_limit, .facets = o_facets};
                memset(&res, 0, sizeof res);
                MDB_txn *txn = replica_read_begin(rep);
                code = txn ? idx_search(qsearch_index(s), txn, &iq, &res.res) : IDX_INTERNAL;
                res.has_res = txn != NULL;
                replica_read_end(rep);
                res.reply.n_hits = res.res.nhits;
                snprintf(why, sizeof why, "%s", res.res.error);
            } else {
                code = qsearch_run(s, &req, &res, why, sizeof why);
            }
            zmq_msg_t packed;
            zmq_msg_init(&packed);
            size_t len = 0;
            if (code == BULLETIN__STATUS_CODE__OK && !o_idx_only) {
                Bulletin__Reply rep_msg;
                bulletin__reply__init(&rep_msg);
                rep_msg.body_case = BULLETIN__REPLY__BODY_SEARCH;
                rep_msg.search = &res.reply;
                if (qsearch_reply_pack_zmq(&rep_msg, &packed) == 0)
                    len = zmq_msg_size(&packed);
            }
            double t1 = s_cpu_us();
            if (round > 0) {
                total_us += t1 - t0;
                qus[i] += t1 - t0;
                qhits[i] = res.reply.n_hits;
                runs++;
                bytes += len;
                hits += res.reply.n_hits;
            }
            if (round == 0 && dump && !o_idx_only) {
                if (code == BULLETIN__STATUS_CODE__OK)
                    s_dump(dump, qs[i], &res.reply);
                else
                    fprintf(dump, "Q %s error %d %s\n", qs[i], code, why);
            }
            zmq_msg_close(&packed);
            qsearch_result_clear(&res);
            if (o_split && round > 0) {
                /* idx_search alone, in a read txn, as qsearch_run calls it */
                idx_query q = {.query = qs[i], .limit = (uint32_t)o_limit, .facets = o_facets};
                idx_result r;
                double a = s_cpu_us();
                MDB_txn *txn = replica_read_begin(rep);
                idx_search(qsearch_index(s), txn, &q, &r);
                replica_read_end(rep);
                idx_result_free(&r);
                idx_us += s_cpu_us() - a;
            }
        }
    }
    if (dump)
        fclose(dump);
    FILE *times = o_times ? fopen(o_times, "w") : NULL;
    for (size_t i = 0; times && i < nq; i++)
        fprintf(times, "%.1f\t%zu\t%s\n", qus[i] / (double)o_rounds, qhits[i], qs[i]);
    if (times)
        fclose(times);
    free(qus);
    free(qhits);
    printf("queries=%zu rounds=%ld searches=%zu cpu_us_per_search=%.1f", nq, o_rounds, runs,
           total_us / (double)runs);
    if (o_split)
        printf(" idx_search_us=%.1f glue_us=%.1f", idx_us / (double)runs,
               (total_us - idx_us) / (double)runs);
    printf(" hits_per_search=%.2f reply_bytes=%.0f typo_cache_bytes=%zu\n", (double)hits / (double)runs,
           (double)bytes / (double)runs, idx_typo_cache_bytes(qsearch_index(s)));
    qsearch_destroy(&s);
    replica_destroy(&rep);
    for (size_t i = 0; i < nq; i++)
        free(qs[i]);
    free(qs);
    return 0;
}
