/*
 * cli_ingest: `bulletin ingest` and the loader of `bulletin up --load`.
 *
 * The main thread reads the inputs and cuts them into batches; a small pool
 * of sender threads (one bulletin_client each: clients are one per thread)
 * sends up to `parallel` batches at once; the main thread prints finished
 * batches strictly in input order, so the output does not depend on timing.
 *
 *    main:    read lines -> batch -> queue ----------------> print in order
 *                                      \                   /
 *    senders:                           take -> ingest -> done
 *
 * The queue holds at most 2 * parallel unprinted batches, so memory stays
 * bounded whatever the input size. A line that is not a valid article is
 * rejected here (with file:line) and never sent; the others go on. When the
 * service fails (UNAVAILABLE, ...) the remaining batches are not sent and
 * the run ends with exit status 2.
 */
#include "cli.h"
#include "client_json.h"
#include "clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CLI_BATCH_BYTES (8u * 1024 * 1024)

typedef struct {
    const char *file;
    long line;    /* 0 for a raw document (the whole file) */
    char *err;    /* rejected here (not sent) when set */
    size_t item;  /* index in the batch's items otherwise */
} s_entry;

typedef enum { B_QUEUED, B_SENDING, B_DONE } s_bstate;

typedef struct s_batch {
    s_entry *entries;
    size_t nentries;
    bulletin_ingest_item *items;
    size_t nitems;
    json_t **docs; /* one per article item: keeps its strings alive */
    char **bufs;   /* one per raw item: the file contents */
    bulletin_ingest_result *res;
    bulletin_status st;
    char err[600];
    s_bstate state;
    struct s_batch *next;
} s_batch;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    s_batch *head, *tail; /* unprinted batches, in input order */
    size_t queued;
    bool eof;    /* no more batches will come */
    bool failed; /* a batch failed: send no more */
    const bulletin_options *o;
} s_pool;

static s_batch *s_batch_new(size_t cap)
{
    s_batch *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->entries = calloc(cap, sizeof *b->entries);
    b->items = calloc(cap, sizeof *b->items);
    b->docs = calloc(cap, sizeof *b->docs);
    b->bufs = calloc(cap, sizeof *b->bufs);
    if (!b->entries || !b->items || !b->docs || !b->bufs) {
        free(b->entries);
        free(b->items);
        free(b->docs);
        free(b->bufs);
        free(b);
        return NULL;
    }
    return b;
}

static void s_batch_free(s_batch *b)
{
    for (size_t i = 0; i < b->nentries; i++)
        free(b->entries[i].err);
    for (size_t i = 0; i < b->nitems; i++) {
        if (b->items[i].kind == BULLETIN_ITEM_ARTICLE)
            client_json_article_clear(&b->items[i].article);
        json_decref(b->docs[i]);
        free(b->bufs[i]);
    }
    bulletin_ingest_results_free(&b->res, b->nitems);
    free(b->entries);
    free(b->items);
    free(b->docs);
    free(b->bufs);
    free(b);
}

/* ------------------------------------------------------------------------ */
/* senders                                                                   */

static void *s_sender(void *arg)
{
    s_pool *p = arg;
    bulletin_client *c = bulletin_client_new(p->o);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        s_batch *b = p->head;
        while (b && b->state != B_QUEUED)
            b = b->next;
        if (!b) {
            if (p->eof)
                break;
            pthread_cond_wait(&p->cv, &p->mu);
            continue;
        }
        b->state = B_SENDING;
        bool skip = p->failed;
        pthread_mutex_unlock(&p->mu);
        if (skip) {
            b->st = BULLETIN_CANCELLED;
            snprintf(b->err, sizeof b->err, "not sent: an earlier batch failed");
        } else if (!c) {
            b->st = BULLETIN_INVALID_ARGUMENT;
            snprintf(b->err, sizeof b->err,
                     "cannot create a client (is the ingest endpoint of the form "
                     "tcp://host:port?)");
        } else {
            b->st = bulletin_ingest(c, b->items, b->nitems, &b->res, NULL);
            if (b->st != BULLETIN_OK)
                snprintf(b->err, sizeof b->err, "%s", bulletin_client_last_error(c));
        }
        pthread_mutex_lock(&p->mu);
        if (b->st != BULLETIN_OK)
            p->failed = true;
        b->state = B_DONE;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    bulletin_client_destroy(&c);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* printing, in order                                                        */

typedef struct {
    bool json, tty;
    size_t index;
    int exit_code;
    bool reported_failure;
    int64_t start_us;
    cli_ingest_summary *sum;
} s_out;

static void s_where(char *buf, size_t cap, const s_entry *e)
{
    if (e->line)
        snprintf(buf, cap, "%s:%ld", e->file, e->line);
    else
        snprintf(buf, cap, "%s", e->file);
}

static void s_print_json_line(json_t *o, const s_entry *e)
{
    if (!o)
        return;
    json_object_set_new(o, "file", json_string(e->file));
    if (e->line)
        json_object_set_new(o, "line", json_integer(e->line));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s) {
        printf("%s\n", s);
        free(s);
    }
}

static void s_print_batch(s_out *out, s_batch *b)
{
    cli_ingest_summary *sum = out->sum;
    char where[512];
    if (b->st != BULLETIN_OK && b->st != BULLETIN_CANCELLED && !out->reported_failure) {
        s_where(where, sizeof where, &b->entries[0]);
        fprintf(stderr, "%sbulletin ingest: batch starting at %s: %s: %s\n", out->tty ? "\r\033[K" : "",
                where, bulletin_status_name(b->st), b->err);
        out->reported_failure = true;
    }
    if (b->st != BULLETIN_OK)
        out->exit_code = CLI_EXIT_USAGE;
    for (size_t i = 0; i < b->nentries; i++, out->index++) {
        const s_entry *e = &b->entries[i];
        sum->records++;
        s_where(where, sizeof where, e);
        if (e->err) {
            sum->rejected++;
            if (out->json) {
                bulletin_ingest_result r = {.status = BULLETIN_WRITE_REJECTED, .error = e->err};
                s_print_json_line(client_json_result_to(&r, out->index), e);
            } else {
                printf("%s: rejected: %s\n", where, e->err);
            }
            continue;
        }
        if (b->st != BULLETIN_OK)
            continue; /* not written; the failure was reported once */
        const bulletin_ingest_result *r = &b->res[e->item];
        switch (r->status) {
        case BULLETIN_WRITE_CREATED: sum->created++; break;
        case BULLETIN_WRITE_UPDATED: sum->updated++; break;
        case BULLETIN_WRITE_UNCHANGED: sum->unchanged++; break;
        case BULLETIN_WRITE_DELETED: sum->deleted++; break;
        default: sum->rejected++; break;
        }
        sum->warnings += r->warning_count;
        if (r->status != BULLETIN_WRITE_REJECTED && r->status != BULLETIN_WRITE_UNSPECIFIED &&
            r->seq > sum->max_seq)
            sum->max_seq = r->seq;
        if (out->json) {
            s_print_json_line(client_json_result_to(r, out->index), e);
            continue;
        }
        if (r->status == BULLETIN_WRITE_REJECTED || r->status == BULLETIN_WRITE_UNSPECIFIED)
            printf("%s: rejected: %s\n", where,
                   r->error ? r->error : "no reason given (the service did not set a status)");
        for (size_t w = 0; w < r->warning_count; w++)
            printf("%s: warning: %s\n", where, r->warnings[w]);
    }
    if (sum->rejected && out->exit_code == CLI_EXIT_OK)
        out->exit_code = CLI_EXIT_FAIL;
    if (out->tty) {
        double secs = (double)(clock_mono_us() - out->start_us) / 1e6;
        fprintf(stderr, "\r\033[K%zu records, %zu rejected, %.0f/s", sum->records, sum->rejected,
                secs > 0 ? (double)sum->records / secs : 0.0);
    }
    fflush(stdout);
}

/* Wait for the oldest batch, print and free it. Called with p->mu held. */
static void s_pop(s_pool *p, s_out *out)
{
    s_batch *b = p->head;
    while (b->state != B_DONE)
        pthread_cond_wait(&p->cv, &p->mu);
    p->head = b->next;
    if (!p->head)
        p->tail = NULL;
    p->queued--;
    pthread_mutex_unlock(&p->mu);
    s_print_batch(out, b);
    s_batch_free(b);
    pthread_mutex_lock(&p->mu);
}

static void s_push(s_pool *p, s_out *out, s_batch *b, size_t max_queued)
{
    pthread_mutex_lock(&p->mu);
    b->state = b->nitems ? B_QUEUED : B_DONE; /* nothing to send: only local rejects */
    if (p->tail)
        p->tail->next = b;
    else
        p->head = b;
    p->tail = b;
    p->queued++;
    pthread_cond_broadcast(&p->cv);
    while (p->queued >= max_queued)
        s_pop(p, out);
    pthread_mutex_unlock(&p->mu);
}

/* ------------------------------------------------------------------------ */
/* reading                                                                   */

static int s_reject(s_batch *b, const char *file, long line, const char *fmt, const char *detail)
{
    s_entry *e = &b->entries[b->nentries];
    size_t n = strlen(fmt) + strlen(detail) + 1;
    e->err = malloc(n);
    if (!e->err)
        return -1;
    snprintf(e->err, n, fmt, detail);
    e->file = file;
    e->line = line;
    b->nentries++;
    return 0;
}

static bool s_blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n')
            return false;
    return true;
}

/* Read a whole stream into a NUL-terminated buffer. NULL on failure. */
static char *s_slurp(FILE *f, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    for (;;) {
        if (cap - n < 2) {
            char *nb = cap > ((size_t)1 << 30) ? NULL : realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                errno = EFBIG;
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) {
            if (ferror(f)) {
                free(buf);
                return NULL;
            }
            break;
        }
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

typedef struct {
    s_pool *p;
    s_out *out;
    s_batch *cur;
    size_t batch, max_queued;
    size_t cur_bytes; /* input bytes in the current batch */
} s_feed;

/* The current batch, starting a new one when the last is full: `batch`
 * items, or CLI_BATCH_BYTES of input (the ingest service refuses requests
 * over its size limit, 16 MB by default, by dropping them). An item bigger
 * than that goes alone. */
static s_batch *s_room(s_feed *f, size_t bytes)
{
    if (f->cur && (f->cur->nentries == f->batch ||
                   (f->cur->nentries > 0 && f->cur_bytes + bytes > CLI_BATCH_BYTES))) {
        s_push(f->p, f->out, f->cur, f->max_queued);
        f->cur = NULL;
    }
    if (!f->cur)
        f->cur_bytes = 0;
    f->cur_bytes += bytes;
    if (!f->cur)
        f->cur = s_batch_new(f->batch);
    return f->cur;
}

static int s_read_jsonl(s_feed *f, const char *path, FILE *in)
{
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    ssize_t len;
    int rc = 0;
    while ((len = getline(&line, &cap, in)) >= 0) {
        lineno++;
        if (s_blank(line))
            continue;
        s_batch *b = s_room(f, (size_t)len);
        if (!b) {
            rc = -1;
            break;
        }
        json_error_t jerr;
        json_t *doc = json_loadb(line, (size_t)len, JSON_REJECT_DUPLICATES, &jerr);
        if (!doc) {
            char detail[300];
            snprintf(detail, sizeof detail, "column %d: %s", jerr.column, jerr.text);
            if (s_reject(b, path, lineno, "invalid JSON: %s", detail) != 0)
                rc = -1;
            continue;
        }
        bulletin_ingest_item *it = &b->items[b->nitems];
        char err[400];
        it->kind = BULLETIN_ITEM_ARTICLE;
        if (client_json_article_from(doc, &it->article, err, sizeof err) != 0) {
            json_decref(doc);
            memset(it, 0, sizeof *it);
            if (s_reject(b, path, lineno, "%s", err) != 0)
                rc = -1;
            continue;
        }
        b->docs[b->nitems] = doc;
        s_entry *e = &b->entries[b->nentries++];
        e->file = path;
        e->line = lineno;
        e->item = b->nitems++;
    }
    if (rc == 0 && ferror(in)) {
        fprintf(stderr, "bulletin ingest: %s: read error: %s\n", path, strerror(errno));
        rc = 1;
    }
    free(line);
    return rc;
}

static int s_read_raw(s_feed *f, const char *path, FILE *in)
{
    size_t len;
    char *text = s_slurp(in, &len);
    if (!text) {
        fprintf(stderr, "bulletin ingest: %s: cannot read: %s\n", path, strerror(errno));
        return 1;
    }
    s_batch *b = s_room(f, len);
    if (!b) {
        free(text);
        return -1;
    }
    if (strlen(text) != len) {
        free(text);
        return s_reject(b, path, 0, "%s", "the file contains a NUL byte: not a text document");
    }
    bulletin_ingest_item *it = &b->items[b->nitems];
    it->kind = BULLETIN_ITEM_RAW;
    it->raw.text = text;
    b->bufs[b->nitems] = text;
    s_entry *e = &b->entries[b->nentries++];
    e->file = path;
    e->line = 0;
    e->item = b->nitems++;
    return 0;
}

void cli_ingest_print_summary(FILE *to, const cli_ingest_summary *s)
{
    fprintf(to, "%zu records in %.2f s (%.0f articles/s): %zu created, %zu updated, %zu unchanged, "
           "%zu deleted, %zu rejected, %zu warning%s; max_seq=%llu\n",
           s->records, s->seconds, s->seconds > 0 ? (double)s->records / s->seconds : 0.0,
           s->created, s->updated, s->unchanged, s->deleted, s->rejected, s->warnings,
           s->warnings == 1 ? "" : "s", (unsigned long long)s->max_seq);
}

int cli_ingest_run(const bulletin_options *o, const cli_input *in, size_t n, size_t batch,
                   int parallel, bool json, cli_ingest_summary *sum)
{
    memset(sum, 0, sizeof *sum);
    s_pool p = {.o = o};
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    s_out out = {.json = json, .tty = isatty(2), .sum = sum, .start_us = clock_mono_us()};
    s_feed f = {.p = &p, .out = &out, .batch = batch, .max_queued = (size_t)parallel * 2};

    pthread_t th[16];
    int nth = 0;
    for (; nth < parallel && nth < 16; nth++)
        if (pthread_create(&th[nth], NULL, s_sender, &p) != 0)
            break;
    int read_rc = 0;
    if (nth == 0) {
        fprintf(stderr, "bulletin ingest: cannot start a thread\n");
        read_rc = -1;
    }
    for (size_t i = 0; read_rc >= 0 && i < n; i++) {
        pthread_mutex_lock(&p.mu);
        bool failed = p.failed;
        pthread_mutex_unlock(&p.mu);
        if (failed)
            break; /* the service failed: reading on would only be wasted */
        bool std = !strcmp(in[i].path, "-");
        FILE *fp = std ? stdin : fopen(in[i].path, in[i].raw ? "rb" : "r");
        if (!fp) {
            fprintf(stderr, "bulletin ingest: %s: %s\n", in[i].path, strerror(errno));
            read_rc = 1;
            continue;
        }
        int rc = in[i].raw ? s_read_raw(&f, in[i].path, fp) : s_read_jsonl(&f, in[i].path, fp);
        if (!std)
            fclose(fp);
        if (rc < 0) {
            fprintf(stderr, "bulletin ingest: out of memory\n");
            read_rc = -1;
        } else if (rc > 0) {
            read_rc = 1;
        }
    }
    if (f.cur)
        s_push(&p, &out, f.cur, f.max_queued);
    pthread_mutex_lock(&p.mu);
    p.eof = true;
    pthread_cond_broadcast(&p.cv);
    while (p.head)
        s_pop(&p, &out);
    pthread_mutex_unlock(&p.mu);
    for (int i = 0; i < nth; i++)
        pthread_join(th[i], NULL);
    pthread_cond_destroy(&p.cv);
    pthread_mutex_destroy(&p.mu);
    if (out.tty)
        fprintf(stderr, "\r\033[K");
    sum->seconds = (double)(clock_mono_us() - out.start_us) / 1e6;
    if (read_rc != 0)
        out.exit_code = CLI_EXIT_USAGE;
    return out.exit_code;
}

/* --wait: a read through the query tier with min_seq = max_seq. */
static int s_wait(const cli_globals *g, const cli_ingest_summary *sum, int wait_ms, bool json)
{
    int exit_code = CLI_EXIT_OK;
    uint64_t applied = 0;
    const char *by = "";
    char err[600] = "";
    bulletin_client *c = NULL;
    int64_t t0 = clock_mono_ms();
    if (sum->max_seq) {
        fflush(stdout);
        c = cli_client(g, "ingest");
        if (!c)
            return CLI_EXIT_USAGE;
        bulletin_status st = bulletin_wait_readable(c, sum->max_seq, wait_ms, &applied);
        if (st == BULLETIN_OK) {
            by = bulletin_client_served_by(c, NULL);
        } else {
            snprintf(err, sizeof err, "%s: %s", bulletin_status_name(st),
                     bulletin_client_last_error(c));
            exit_code = CLI_EXIT_USAGE;
        }
    }
    long long waited = (long long)(clock_mono_ms() - t0);
    if (json) {
        json_t *o = json_object();
        if (o) {
            json_object_set_new(o, "max_seq", json_integer((json_int_t)sum->max_seq));
            json_object_set_new(o, "readable", json_boolean(exit_code == CLI_EXIT_OK));
            json_object_set_new(o, "served_by", *by ? json_string(by) : json_null());
            json_object_set_new(o, "applied_seq", json_integer((json_int_t)applied));
            json_object_set_new(o, "waited_ms", json_integer(waited));
            if (*err)
                json_object_set_new(o, "error", json_string(err));
        }
        cli_print_json(o);
    } else if (exit_code == CLI_EXIT_OK) {
        printf("readable max_seq=%llu served_by=%s applied_seq=%llu waited_ms=%lld\n",
               (unsigned long long)sum->max_seq, *by ? by : "-", (unsigned long long)applied,
               waited);
    }
    if (*err)
        fprintf(stderr, "bulletin ingest --wait: %s\n", err);
    bulletin_client_destroy(&c);
    return exit_code;
}

int cli_cmd_ingest(const cli_globals *g, int argc, char **argv)
{
    bool raw = false, json = false, wait = false;
    long long batch = 500, parallel = 2, wait_ms = 30000;
    const cli_opt opts[] = {
        {"raw", CLI_FLAG, NULL, "each FILE is one raw scraped page (RawDocument)", &raw},
        {"batch", CLI_INT, "N", "items per request, 1..10000 (default 500)", &batch},
        {"parallel", CLI_INT, "N", "requests in flight, 1..16 (default 2)", &parallel},
        {"json", CLI_FLAG, NULL, "print one JSON object per result instead of a summary", &json},
        {"wait", CLI_FLAG, NULL, "then wait until the query tier can read what was written "
                                 "(a read with min_seq = max_seq)", &wait},
        {"wait-timeout", CLI_INT, "MS", "how long --wait waits, 1..3600000 ms (default 30000)",
         &wait_ms},
    };
    cli_list pos;
    int rc = cli_parse(
        "ingest", "[--raw] [--batch N] [--parallel N] [--json] [--wait [--wait-timeout MS]] "
                  "FILE...|-",
        "Write articles through the ingest service. Each FILE (- = standard input) holds\n"
        "JSON Lines: one article object per line, with the field names of bulletin.proto\n"
        "(key, site, category, title, body, tags, author, lang, url, raw, published_at as\n"
        "RFC 3339 or Unix ms); blank lines are skipped, unknown fields are an error. With\n"
        "--raw, each FILE is one raw page (\"Site - Category - Title\", blank line, title,\n"
        "body). Lines that are not valid articles are rejected with FILE:LINE; the rest go\n"
        "on. The summary ends with max_seq, the highest seq written: pass it as\n"
        "--min-seq to list/get to read your own writes. With --wait, the command then\n"
        "waits until a query worker has applied max_seq and prints\n"
        "\"readable max_seq=N served_by=W\" (with --json, a last line\n"
        "{\"max_seq\":N,\"readable\":true,\"served_by\":W,\"applied_seq\":S}). Exit 0 when\n"
        "nothing was rejected, 1 when something was, 2 on usage or connection errors or\n"
        "when --wait timed out.",
        opts, sizeof opts / sizeof *opts, argc, argv, &pos);
    if (rc)
        return rc == CLI_HELP_SHOWN ? CLI_EXIT_OK : rc;
    if (!pos.n || batch < 1 || batch > 10000 || parallel < 1 || parallel > 16 || wait_ms < 1 ||
        wait_ms > 3600000) {
        fprintf(stderr, "bulletin ingest: %s (see bulletin ingest --help)\n",
                !pos.n ? "no FILE given (use - for standard input)"
                       : "--batch must be 1..10000, --parallel 1..16 and --wait-timeout "
                         "1..3600000");
        cli_list_free(&pos);
        return CLI_EXIT_USAGE;
    }
    cli_input *in = calloc(pos.n, sizeof *in);
    if (!in) {
        cli_list_free(&pos);
        return CLI_EXIT_USAGE;
    }
    size_t nstdin = 0;
    for (size_t i = 0; i < pos.n; i++) {
        in[i].path = pos.v[i];
        in[i].raw = raw;
        nstdin += !strcmp(pos.v[i], "-");
    }
    if (nstdin > 1) {
        fprintf(stderr, "bulletin ingest: standard input (-) given more than once\n");
        free(in);
        cli_list_free(&pos);
        return CLI_EXIT_USAGE;
    }
    bulletin_options o;
    cli_options(g, &o);
    cli_ingest_summary sum;
    int exit_code = cli_ingest_run(&o, in, pos.n, (size_t)batch, (int)parallel, json, &sum);
    /* with --json, stdout stays one JSON object per line: summary to stderr */
    cli_ingest_print_summary(json ? stderr : stdout, &sum);
    if (wait && exit_code != CLI_EXIT_USAGE) {
        int w = s_wait(g, &sum, (int)wait_ms, json);
        if (w > exit_code)
            exit_code = w;
    }
    free(in);
    cli_list_free(&pos);
    return exit_code;
}
