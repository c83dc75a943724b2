/*
 * cli_main: the `bulletin` command. Global options (a core/config table:
 * flags, environment, defaults, --help) come before the command; each
 * command has its own option table (cli_opt) that drives its parsing and its
 * --help. Commands are dispatched through s_commands.
 *
 * This file: dispatch, option parsing, and the small commands (get, delete,
 * stats, health). ingest is in cli_ingest.c, list in cli_list.c, up in
 * cli_up.c.
 */
#include "cli.h"
#include "cli_fmt.h"
#include "client_json.h"
#include "config.h"
#include "clock.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* option parsing                                                            */

void cli_list_free(cli_list *l)
{
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static int s_list_push(cli_list *l, const char *s)
{
    const char **v = realloc(l->v, (l->n + 1) * sizeof *v);
    if (!v)
        return -1;
    v[l->n++] = s;
    l->v = v;
    return 0;
}

static void s_print_cmd_help(const char *cmd, const char *usage, const char *summary,
                             const cli_opt *opts, size_t n)
{
    printf("Usage: bulletin [GLOBAL OPTIONS] %s %s\n\n%s\n\nOptions:\n", cmd, usage, summary);
    for (size_t i = 0; i < n; i++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s%s%s%s", opts[i].name, opts[i].metavar ? " " : "",
                 opts[i].metavar ? opts[i].metavar : "", opts[i].type == CLI_LIST ? "..." : "");
        printf("  %-24s %s\n", flag, opts[i].help);
    }
    printf("  %-24s %s\n", "--help", "show this help and exit");
    printf("\nGlobal options: see bulletin --help.\n");
}

int cli_parse(const char *cmd, const char *usage, const char *summary, const cli_opt *opts,
              size_t n, int argc, char **argv, cli_list *pos)
{
    pos->v = NULL;
    pos->n = 0;
    bool only_pos = false;
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (only_pos || arg[0] != '-' || !strcmp(arg, "-")) {
            if (s_list_push(pos, arg) != 0)
                goto oom;
            continue;
        }
        if (!strcmp(arg, "--")) {
            only_pos = true;
            continue;
        }
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            s_print_cmd_help(cmd, usage, summary, opts, n);
            cli_list_free(pos);
            return CLI_HELP_SHOWN;
        }
        const char *name = arg + (arg[1] == '-' ? 2 : 1), *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const cli_opt *o = NULL;
        for (size_t i = 0; i < n; i++)
            if (strlen(opts[i].name) == len && !strncmp(opts[i].name, name, len))
                o = &opts[i];
        if (!o || arg[1] != '-') {
            fprintf(stderr, "bulletin %s: unknown option '%s' (see bulletin %s --help)\n", cmd,
                    arg, cmd);
            goto usage;
        }
        if (o->type == CLI_FLAG) {
            if (eq) {
                fprintf(stderr, "bulletin %s: option '--%s' takes no value\n", cmd, o->name);
                goto usage;
            }
            *(bool *)o->dst = true;
            continue;
        }
        if (o->type == CLI_LIST) {
            cli_list *l = o->dst;
            size_t before = l->n;
            if (eq && s_list_push(l, eq + 1) != 0)
                goto oom;
            while (!eq && a + 1 < argc && (argv[a + 1][0] != '-' || !strcmp(argv[a + 1], "-")))
                if (s_list_push(l, argv[++a]) != 0)
                    goto oom;
            if (l->n == before) {
                fprintf(stderr, "bulletin %s: option '--%s' needs at least one %s\n", cmd,
                        o->name, o->metavar);
                goto usage;
            }
            continue;
        }
        const char *val;
        if (eq)
            val = eq + 1;
        else if (a + 1 < argc)
            val = argv[++a];
        else {
            fprintf(stderr, "bulletin %s: option '--%s' needs a value (%s)\n", cmd, o->name,
                    o->metavar);
            goto usage;
        }
        if (o->type == CLI_STR) {
            *(const char **)o->dst = val;
        } else {
            char *end;
            errno = 0;
            long long v = strtoll(val, &end, 10);
            if (errno || end == val || *end || v == CLI_INT_UNSET) {
                fprintf(stderr, "bulletin %s: --%s: '%s' is not an integer\n", cmd, o->name, val);
                goto usage;
            }
            *(long long *)o->dst = v;
        }
    }
    return 0;
oom:
    fprintf(stderr, "bulletin %s: out of memory\n", cmd);
usage:
    cli_list_free(pos);
    return CLI_EXIT_USAGE;
}

void cli_options(const cli_globals *g, bulletin_options *o)
{
    bulletin_options_init(o);
    o->ingest_endpoint = g->ingest && *g->ingest ? g->ingest : NULL;
    o->query_endpoint = g->query && *g->query ? g->query : NULL;
    o->store_endpoint = g->store && *g->store ? g->store : NULL;
    o->timeout_ms = (int)g->timeout_ms;
    o->retries = (int)g->retries;
}

bulletin_client *cli_client(const cli_globals *g, const char *cmd)
{
    bulletin_options o;
    cli_options(g, &o);
    bulletin_client *c = bulletin_client_new(&o);
    if (!c)
        fprintf(stderr,
                "bulletin %s: cannot create a client (is every endpoint of the form "
                "tcp://host:port?)\n",
                cmd);
    return c;
}

/* Exit code of a call: 1 for NOT_FOUND, 2 for transport/usage trouble. */
int cli_exit_for(bulletin_status st)
{
    switch (st) {
    case BULLETIN_OK: return CLI_EXIT_OK;
    case BULLETIN_NOT_FOUND: return CLI_EXIT_FAIL;
    default: return CLI_EXIT_USAGE;
    }
}

static int s_parse_id(const char *s, uint64_t *id)
{
    char *end;
    errno = 0;
    if (!s || *s == '-' || *s == '+')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v == 0)
        return -1;
    *id = v;
    return 0;
}

static int s_parse_service(const char *cmd, const char *s, bulletin_service *out)
{
    static const bulletin_service all[] = {BULLETIN_SERVICE_INGEST, BULLETIN_SERVICE_QUERY,
                                           BULLETIN_SERVICE_STORE};
    for (size_t i = 0; i < 3; i++)
        if (!strcmp(s, bulletin_service_name(all[i]))) {
            *out = all[i];
            return 0;
        }
    fprintf(stderr, "bulletin %s: --service '%s': expected ingest, query or store\n", cmd, s);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* get                                                                       */

static void s_print_article(const bulletin_article *a, const char *served_by,
                            uint64_t applied_seq)
{
    char date[40] = "no date";
    if (a->published_at)
        clock_format_rfc3339(a->published_at, date, sizeof date);
    printf("%s\n", a->title ? a->title : "(untitled)");
    printf("%s / %s  %s\n", a->site ? a->site : "-", a->category ? a->category : "-", date);
    printf("key=%s id=%" PRIu64 " seq=%" PRIu64, a->key ? a->key : "", a->id, a->seq);
    if (served_by && *served_by)
        printf(" served_by=%s applied_seq=%" PRIu64, served_by, applied_seq);
    printf("\n");
    if (a->tag_count) {
        printf("tags:");
        for (size_t i = 0; i < a->tag_count; i++)
            printf(" %s", a->tags[i]);
        printf("\n");
    }
    if (a->author)
        printf("author: %s\n", a->author);
    if (a->url)
        printf("url: %s\n", a->url);
    printf("\n%s\n", a->body ? a->body : "");
}

int cli_print_json(json_t *j)
{
    if (!j) {
        fprintf(stderr, "bulletin: cannot encode the answer as JSON\n");
        return -1;
    }
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!s)
        return -1;
    printf("%s\n", s);
    free(s);
    return 0;
}

static int s_cmd_get(const cli_globals *g, int argc, char **argv)
{
    bool store = false, json = false;
    const char *key = NULL, *min_seq_text = NULL;
    const cli_opt opts[] = {
        {"key", CLI_STR, "KEY", "get the article with this key instead of ids", &key},
        {"min-seq", CLI_STR, "N", "answer only from a replica that applied seq N "
                                  "(read your writes: N = max_seq of an ingest)", &min_seq_text},
        {"store", CLI_FLAG, NULL, "read from the store (the system of record) instead of the "
                                  "query tier", &store},
        {"json", CLI_FLAG, NULL, "print one JSON object per article (bulletin.proto's field "
                                 "names; ingestible again)", &json},
    };
    cli_list pos;
    int rc = cli_parse("get", "[--min-seq N] [--store] [--json] ID... | --key KEY",
                       "Print articles by id or key, read through the query tier (a worker\n"
                       "replica) or, with --store, from the store. Exit 0 when every article\n"
                       "was found, 1 when one was not, 2 on usage or connection errors.",
                       opts, sizeof opts / sizeof *opts, argc, argv, &pos);
    if (rc)
        return rc == CLI_HELP_SHOWN ? CLI_EXIT_OK : rc;
    uint64_t min_seq = 0;
    if (min_seq_text && cli_parse_u64(min_seq_text, &min_seq) != 0) {
        fprintf(stderr, "bulletin get: --min-seq '%s' is not a seq (a non-negative integer)\n",
                min_seq_text);
        cli_list_free(&pos);
        return CLI_EXIT_USAGE;
    }
    if ((key != NULL) == (pos.n > 0)) {
        fprintf(stderr, "bulletin get: give ids or --key KEY (see bulletin get --help)\n");
        cli_list_free(&pos);
        return CLI_EXIT_USAGE;
    }
    size_t nq = key ? 1 : pos.n;
    uint64_t *ids = calloc(nq, sizeof *ids);
    if (!ids) {
        cli_list_free(&pos);
        return CLI_EXIT_USAGE;
    }
    for (size_t i = 0; !key && i < pos.n; i++)
        if (s_parse_id(pos.v[i], &ids[i]) != 0) {
            fprintf(stderr, "bulletin get: '%s' is not an article id (a positive integer)\n",
                    pos.v[i]);
            free(ids);
            cli_list_free(&pos);
            return CLI_EXIT_USAGE;
        }
    bulletin_client *c = cli_client(g, "get");
    int exit_code = c ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    for (size_t i = 0; c && i < nq; i++) {
        bulletin_article *a = NULL;
        bulletin_status st = bulletin_get(c, key ? 0 : ids[i], key, min_seq,
                                          store ? BULLETIN_READ_FROM_STORE : 0, &a);
        if (st != BULLETIN_OK) {
            fprintf(stderr, "bulletin get: %s%s: %s\n", key ? "key " : "", key ? key : pos.v[i],
                    bulletin_client_last_error(c));
            int e = cli_exit_for(st);
            if (e > exit_code)
                exit_code = e;
            if (e == CLI_EXIT_USAGE)
                break; /* the service is down: don't wait again for each id */
            continue;
        }
        if (json) {
            if (cli_print_json(client_json_article_to(a)) != 0)
                exit_code = CLI_EXIT_USAGE;
        } else {
            if (i)
                printf("\n----------------------------------------\n\n");
            uint64_t applied = 0;
            const char *by = bulletin_client_served_by(c, &applied);
            s_print_article(a, by, applied);
        }
        bulletin_article_free(&a);
    }
    bulletin_client_destroy(&c);
    free(ids);
    cli_list_free(&pos);
    return exit_code;
}

/* ------------------------------------------------------------------------ */
/* delete                                                                    */

static int s_cmd_delete(const cli_globals *g, int argc, char **argv)
{
    const char *key = NULL;
    bool json = false;
    const cli_opt opts[] = {
        {"key", CLI_STR, "KEY", "delete the article with this key", &key},
        {"json", CLI_FLAG, NULL, "print the result as JSON", &json},
    };
    cli_list pos;
    int rc = cli_parse("delete", "ID | --key KEY",
                       "Delete one article (through the ingest service; replicas learn of it "
                       "from the store's change log).",
                       opts, sizeof opts / sizeof *opts, argc, argv, &pos);
    if (rc)
        return rc == CLI_HELP_SHOWN ? CLI_EXIT_OK : rc;
    uint64_t id = 0;
    if ((key != NULL) == (pos.n == 1) || pos.n > 1 ||
        (pos.n == 1 && s_parse_id(pos.v[0], &id) != 0)) {
        fprintf(stderr, "bulletin delete: give one article id (a positive integer) or --key KEY\n");
        cli_list_free(&pos);
        return CLI_EXIT_USAGE;
    }
    cli_list_free(&pos);
    bulletin_client *c = cli_client(g, "delete");
    if (!c)
        return CLI_EXIT_USAGE;
    bulletin_ingest_result *r = NULL;
    bulletin_status st = bulletin_delete(c, id, key, &r);
    int exit_code = CLI_EXIT_OK;
    if (st != BULLETIN_OK) {
        fprintf(stderr, "bulletin delete: %s\n", bulletin_client_last_error(c));
        exit_code = cli_exit_for(st);
    } else if (json) {
        if (cli_print_json(client_json_result_to(r, 0)) != 0)
            exit_code = CLI_EXIT_USAGE;
    } else {
        printf("%s id=%" PRIu64 " key=%s seq=%" PRIu64 "\n", bulletin_write_status_name(r->status),
               r->id, r->key ? r->key : "", r->seq);
        if (r->status == BULLETIN_WRITE_REJECTED) {
            fprintf(stderr, "bulletin delete: %s\n", r->error ? r->error : "rejected");
            exit_code = CLI_EXIT_FAIL;
        }
    }
    bulletin_ingest_results_free(&r, 1);
    bulletin_client_destroy(&c);
    return exit_code;
}

/* ------------------------------------------------------------------------ */
/* stats, health                                                             */

static int s_cmd_stats(const cli_globals *g, int argc, char **argv)
{
    bool json = false;
    const char *service = "store";
    const cli_opt opts[] = {
        {"service", CLI_STR, "NAME", "ingest, query or store (default store)", &service},
        {"json", CLI_FLAG, NULL, "print one JSON object", &json},
    };
    cli_list pos;
    int rc = cli_parse("stats", "[--json] [--service ingest|query|store]",
                       "Print the metrics of a service.", opts, sizeof opts / sizeof *opts,
                       argc, argv, &pos);
    if (rc)
        return rc == CLI_HELP_SHOWN ? CLI_EXIT_OK : rc;
    bulletin_service svc;
    if (pos.n || s_parse_service("stats", service, &svc) != 0) {
        if (pos.n)
            fprintf(stderr, "bulletin stats: unexpected argument '%s'\n", pos.v[0]);
        cli_list_free(&pos);
        return CLI_EXIT_USAGE;
    }
    cli_list_free(&pos);
    bulletin_client *c = cli_client(g, "stats");
    if (!c)
        return CLI_EXIT_USAGE;
    bulletin_stats *s = NULL;
    bulletin_status st = bulletin_stats_get(c, svc, &s);
    int exit_code = CLI_EXIT_OK;
    if (st != BULLETIN_OK) {
        fprintf(stderr, "bulletin stats: %s\n", bulletin_client_last_error(c));
        exit_code = CLI_EXIT_USAGE;
    } else if (json) {
        json_t *o = json_object(), *m = json_object();
        if (o && m) {
            json_object_set_new(o, "service", json_string(s->service ? s->service : ""));
            json_object_set_new(o, "instance", json_string(s->instance ? s->instance : ""));
            for (size_t i = 0; i < s->metric_count; i++)
                json_object_set_new(m, s->metrics[i].name, json_real(s->metrics[i].value));
            json_object_set_new(o, "metrics", m);
            m = NULL;
        }
        json_decref(m);
        if (cli_print_json(o) != 0)
            exit_code = CLI_EXIT_USAGE;
    } else {
        printf("%s %s\n", s->service ? s->service : bulletin_service_name(svc),
               s->instance ? s->instance : "");
        for (size_t i = 0; i < s->metric_count; i++) {
            double v = s->metrics[i].value;
            char num[64];
            if (v == (double)(long long)v && v > -1e15 && v < 1e15)
                snprintf(num, sizeof num, "%lld", (long long)v); /* counters */
            else
                snprintf(num, sizeof num, "%.6g", v);
            printf("  %-28s %-14s%s%s\n", s->metrics[i].name, num,
                   s->metrics[i].help ? "  # " : "", s->metrics[i].help ? s->metrics[i].help : "");
        }
    }
    bulletin_stats_free(&s);
    bulletin_client_destroy(&c);
    return exit_code;
}

static int s_cmd_health(const cli_globals *g, int argc, char **argv)
{
    const char *service = NULL;
    const cli_opt opts[] = {
        {"service", CLI_STR, "NAME",
         "ingest, query or store (default: all three)", &service},
    };
    cli_list pos;
    int rc = cli_parse("health", "[--service ingest|query|store]",
                       "Ask services whether they are healthy. Exit 0 when every one asked\n"
                       "answers healthy, 1 otherwise (for Docker health checks). The query\n"
                       "broker is healthy when at least one worker is registered; its\n"
                       "applied_seq is the highest among its workers.",
                       opts, sizeof opts / sizeof *opts, argc, argv, &pos);
    if (rc)
        return rc == CLI_HELP_SHOWN ? CLI_EXIT_OK : rc;
    bulletin_service list[3] = {BULLETIN_SERVICE_INGEST, BULLETIN_SERVICE_STORE,
                                BULLETIN_SERVICE_QUERY};
    size_t nl = 3;
    if (pos.n || (service && s_parse_service("health", service, &list[0]) != 0)) {
        if (pos.n)
            fprintf(stderr, "bulletin health: unexpected argument '%s'\n", pos.v[0]);
        cli_list_free(&pos);
        return CLI_EXIT_USAGE;
    }
    cli_list_free(&pos);
    if (service)
        nl = 1;
    bulletin_client *c = cli_client(g, "health");
    if (!c)
        return CLI_EXIT_USAGE;
    int exit_code = CLI_EXIT_OK;
    for (size_t i = 0; i < nl; i++) {
        bulletin_health *h = NULL;
        bulletin_status st = bulletin_health_get(c, list[i], &h);
        if (st != BULLETIN_OK) {
            printf("%s unhealthy: %s\n", bulletin_service_name(list[i]),
                   bulletin_client_last_error(c));
            exit_code = CLI_EXIT_FAIL;
            continue;
        }
        printf("%s %s %s applied_seq=%" PRIu64 "%s%s\n", bulletin_service_name(list[i]),
               h->ok ? "healthy" : "unhealthy", h->instance ? h->instance : "", h->applied_seq,
               h->detail ? " " : "", h->detail ? h->detail : "");
        if (!h->ok)
            exit_code = CLI_EXIT_FAIL;
        bulletin_health_free(&h);
    }
    bulletin_client_destroy(&c);
    return exit_code;
}

/* ------------------------------------------------------------------------ */
/* dispatch                                                                  */

typedef struct {
    const char *name;
    int (*fn)(const cli_globals *g, int argc, char **argv);
    const char *summary;
} s_command;

static const s_command s_commands[] = {
    {"ingest", cli_cmd_ingest, "write articles from JSON Lines files or raw documents"},
    {"list", cli_cmd_list, "list articles, newest first, with filters and pages"},
    {"search", cli_cmd_search, "full-text search: best matches first, with snippets"},
    {"get", s_cmd_get, "print articles by id or key"},
    {"delete", s_cmd_delete, "delete an article by id or key"},
    {"stats", s_cmd_stats, "print the metrics of a service"},
    {"health", s_cmd_health, "check that services answer and are healthy"},
    {"up", cli_cmd_up, "run a local stack (store, ingest, query broker, workers)"},
};

static cli_globals s_g;

static const cfg_option s_globals[] = {
    {"ingest", "BULLETIN_INGEST", CFG_STR_NONEMPTY, "tcp://127.0.0.1:5555", "ingest service endpoint (writes)", &s_g.ingest},
    {"query", "BULLETIN_QUERY", CFG_STR_NONEMPTY, "tcp://127.0.0.1:5556", "query service endpoint (reads)", &s_g.query},
    {"store", "BULLETIN_STORE", CFG_STR_NONEMPTY, "tcp://127.0.0.1:5557", "store service endpoint", &s_g.store},
    {"timeout", "BULLETIN_TIMEOUT", CFG_INT, "5000", "milliseconds to wait for each attempt of a request", &s_g.timeout_ms},
    {"retries", "BULLETIN_RETRIES", CFG_INT, "2", "attempts after a timeout before giving up", &s_g.retries},
};
#define S_NGLOBALS (sizeof s_globals / sizeof *s_globals)

static void s_usage(void)
{
    printf("Usage: bulletin [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGS]\n\n"
           "The command-line client of Bulletin, the article store.\n\nCommands:\n");
    for (size_t i = 0; i < sizeof s_commands / sizeof *s_commands; i++)
        printf("  %-10s %s\n", s_commands[i].name, s_commands[i].summary);
    printf("\nGlobal options (each also as an environment variable):\n");
    for (size_t i = 0; i < S_NGLOBALS; i++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s VALUE", s_globals[i].name);
        printf("  %-20s %s\n  %-20s env %s, default %s\n", flag, s_globals[i].help, "",
               s_globals[i].env, s_globals[i].def);
    }
    printf("  %-20s %s\n\nbulletin COMMAND --help describes a command.\n"
           "Exit status: 0 success, 1 rejected/not found/unhealthy, 2 usage or connection "
           "error.\n",
           "--help", "show this help and exit");
}

int main(int argc, char **argv)
{
    /* Find the command: the first argument that is not a global option or
     * its value. */
    int cmd = 1;
    while (cmd < argc && argv[cmd][0] == '-') {
        const char *a = argv[cmd];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            s_usage();
            return CLI_EXIT_OK;
        }
        cmd++;
        if (!strchr(a, '='))
            for (size_t i = 0; i < S_NGLOBALS; i++)
                if (!strncmp(a, "--", 2) && !strcmp(a + 2, s_globals[i].name)) {
                    cmd++; /* skip its value */
                    break;
                }
    }
    if (cmd > argc)
        cmd = argc; /* a last option without its value: cfg_parse reports it */
    int rc = cfg_parse("bulletin", "", s_globals, S_NGLOBALS, cmd, argv);
    if (rc == CFG_ERROR)
        return CLI_EXIT_USAGE;
    if (rc == CFG_HELP)
        return CLI_EXIT_OK;
    if (cmd >= argc) { /* one line on stderr, as for every usage error */
        fprintf(stderr, "bulletin: no COMMAND given (");
        for (size_t i = 0; i < sizeof s_commands / sizeof *s_commands; i++)
            fprintf(stderr, "%s%s", i ? ", " : "", s_commands[i].name);
        fprintf(stderr, "; see bulletin --help)\n");
        return CLI_EXIT_USAGE;
    }
    if (s_g.timeout_ms <= 0 || s_g.timeout_ms > 3600000 || s_g.retries < 0 || s_g.retries > 100) {
        fprintf(stderr, "bulletin: --timeout must be 1..3600000 ms and --retries 0..100\n");
        return CLI_EXIT_USAGE;
    }
    for (size_t i = 0; i < sizeof s_commands / sizeof *s_commands; i++)
        if (!strcmp(argv[cmd], s_commands[i].name))
            return s_commands[i].fn(&s_g, argc - cmd, argv + cmd);
    fprintf(stderr, "bulletin: unknown command '%s' (see bulletin --help)\n", argv[cmd]);
    return CLI_EXIT_USAGE;
}
