/*
 * cli: shared parts of the `bulletin` command (cli_main.c: dispatch, global
 * options, get/delete/stats/health; cli_ingest.c: ingest; cli_list.c: list;
 * cli_search.c: search; cli_up.c: up; cli_fmt.c: cursor text, dates, tables,
 * page JSON, snippets).
 * Exit codes everywhere: 0 success, 1 something was rejected / not found /
 * not healthy, 2 usage or connection error.
 */
#ifndef BULLETIN_CLI_H
#define BULLETIN_CLI_H

#include "bulletin.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

/* Global options (before the command), filled from the config table. */
typedef struct {
    const char *ingest, *query, *store;
    long long timeout_ms;
    long long retries;
} cli_globals;

/* Options of one command: a table drives parsing and --help. */
typedef enum { CLI_FLAG, CLI_STR, CLI_INT, CLI_LIST } cli_opt_type;

/* The value of a CLI_INT option that was not given: start such an option's
 * variable at CLI_INT_UNSET and compare. No argument parses to it (the
 * parser refuses LLONG_MIN), so every value typed is checked — a -1 sentinel
 * let "--limit -1" pass as "not given". */
#define CLI_INT_UNSET LLONG_MIN

typedef struct {
    const char *name;    /* without "--" */
    cli_opt_type type;   /* FLAG: bool*; STR: const char **; INT: long long *;
                          * LIST: cli_list * (values up to the next --option; repeatable) */
    const char *metavar; /* "N", "PATH", ... (NULL for flags) */
    const char *help;
    void *dst;
} cli_opt;

typedef struct {
    const char **v;
    size_t n;
} cli_list;

/* The rows of a command's option table for the read commands' filter options
 * (--site --category --tag --since --until) and --min-seq, into the fields of
 * a cli_read_args (cli_fmt.h) `a`; cli_read_args_apply reads them. */
#define CLI_READ_FILTER_OPTS(a)                                                                \
    {"site", CLI_STR, "S", "only articles of this site (exact name)", &(a).site},              \
    {"category", CLI_STR, "C", "only articles of this category (exact name)", &(a).category},  \
    {"tag", CLI_STR, "T", "only articles with this tag", &(a).tag},                            \
    {"since", CLI_STR, "DATE", "published at or after DATE (RFC 3339, or YYYY-MM-DD = "        \
                               "midnight UTC)", &(a).since},                                   \
    {"until", CLI_STR, "DATE", "published before DATE (exclusive)", &(a).until}
#define CLI_READ_MIN_SEQ_OPT(a)                                                                \
    {"min-seq", CLI_STR, "N", "answer only from a replica that applied seq N "                 \
                              "(read your writes: N = max_seq of an ingest)", &(a).min_seq}

/* Parse argv[1..argc) of a command. Positional arguments go to *pos (array
 * allocated here, caller frees; strings point into argv). Returns 0, or
 * CLI_EXIT_OK+100 after printing --help (caller exits 0), or CLI_EXIT_USAGE
 * after printing an error to stderr. */
#define CLI_HELP_SHOWN 100
int cli_parse(const char *cmd, const char *usage, const char *summary, const cli_opt *opts,
              size_t n, int argc, char **argv, cli_list *pos);
void cli_list_free(cli_list *l);

/* Client options from the globals (endpoint strings point into g). */
void cli_options(const cli_globals *g, bulletin_options *o);

/* A client from the globals; NULL after printing why ("bulletin CMD: ..."). */
bulletin_client *cli_client(const cli_globals *g, const char *cmd);

/* Exit code of a call's status: 0 OK, 1 NOT_FOUND, 2 anything else. */
int cli_exit_for(bulletin_status st);

/* Print a JSON value as one compact line on stdout and release it (NULL =
 * out of memory: says so on stderr). 0 or -1. */
struct json_t;
int cli_print_json(struct json_t *j);

/* ingest engine, shared by `bulletin ingest` and `bulletin up --load` */
typedef struct {
    const char *path; /* "-" = stdin */
    bool raw;         /* one raw document per file, else JSON Lines */
} cli_input;

typedef struct {
    size_t records, created, updated, unchanged, deleted, rejected, warnings;
    uint64_t max_seq; /* highest seq among the written items (0: none) */
    double seconds;
} cli_ingest_summary;

/* Ingest the inputs in batches of `batch` with up to `parallel` batches in
 * flight. Prints one JSON line per result (json) or the rejected items and
 * warnings (default) to stdout, and a progress line on stderr when it is a
 * terminal. Fills *sum. Returns 0, 1 (something rejected) or 2 (a file could
 * not be read, or the service failed: the message is on stderr). */
int cli_ingest_run(const bulletin_options *o, const cli_input *in, size_t n, size_t batch,
                   int parallel, bool json, cli_ingest_summary *sum);
void cli_ingest_print_summary(FILE *to, const cli_ingest_summary *s);

int cli_cmd_ingest(const cli_globals *g, int argc, char **argv);
int cli_cmd_list(const cli_globals *g, int argc, char **argv);
int cli_cmd_search(const cli_globals *g, int argc, char **argv);
int cli_cmd_up(const cli_globals *g, int argc, char **argv);

#endif
