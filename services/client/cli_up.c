/*
 * cli_up: `bulletin up`, a complete local stack in the foreground for people
 * without Docker: store, ingest, the query broker and N workers.
 *
 *   start each service of s_children in order ──▶ wait until it answers Health
 *        │ (store, ingest: healthy; broker: answers, as itself — it is not
 *        │  healthy before a worker registers; workers: all N started, then
 *        │  the broker's Stats shows N registered and its Health is ok)
 *        │ (a child that dies or stays silent: stop the others, exit 1/2)
 *        ▼
 *   --load: ingest files and directories, print the summary
 *        ▼
 *   print the endpoints, then wait for:
 *        SIGINT/SIGTERM ──▶ stop children (reverse order), exit 0
 *        a child exits  ──▶ say so, stop the rest, exit 1
 *
 * Stopping a child: SIGTERM, wait up to 5 s, then SIGKILL. Children find
 * their binaries next to this one (/proc/self/exe) and die with us if we are
 * killed (PR_SET_PDEATHSIG). They share our stderr, so their key=value logs
 * appear in this terminal.
 */
#include "cli.h"
#include "clock.h"
#include "grow.h"
#include "zio.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define UP_MAX_ARGS 16
#define UP_MAX_WORKERS 32
#define UP_STOP_GRACE_MS 5000
#define UP_START_TIMEOUT_MS 20000

typedef struct {
    const char *data;
    const char *ingest_bind, *store_bind, *feed_bind, *query_bind, *workers_bind;
    long long nworkers;
    char store_dir[PATH_MAX];
    char worker_dir[UP_MAX_WORKERS][PATH_MAX];
    char worker_name[UP_MAX_WORKERS][32];
    /* where clients (and workers) connect */
    char ingest_ep[256], store_ep[256], feed_ep[256], query_ep[256], workers_ep[256];
    /* the workers run on this host: they reach the broker over a Unix socket in
     * the data directory (ipc://, cheaper for the broker than loopback TCP),
     * which the broker binds next to --workers-bind; empty when the path is too
     * long for a socket address */
    char workers_ipc[128], workers_bind_all[400];
} s_up;

/* Fill argv (after argv[0]) for one service (k: the worker's index);
 * returns argc. */
typedef int (*s_args_fn)(const s_up *u, int k, const char **argv);

static int s_args_store(const s_up *u, int k, const char **argv)
{
    (void)k;
    int n = 1;
    argv[n++] = "--data";
    argv[n++] = u->store_dir;
    argv[n++] = "--bind";
    argv[n++] = u->store_bind;
    argv[n++] = "--feed";
    argv[n++] = u->feed_bind;
    return n;
}

static int s_args_ingest(const s_up *u, int k, const char **argv)
{
    (void)k;
    int n = 1;
    argv[n++] = "--bind";
    argv[n++] = u->ingest_bind;
    argv[n++] = "--store";
    argv[n++] = u->store_ep;
    return n;
}

static int s_args_query(const s_up *u, int k, const char **argv)
{
    (void)k;
    int n = 1;
    argv[n++] = "--bind";
    argv[n++] = u->query_bind;
    argv[n++] = "--workers";
    argv[n++] = u->workers_ipc[0] ? u->workers_bind_all : u->workers_bind;
    return n;
}

static int s_args_worker(const s_up *u, int k, const char **argv)
{
    int n = 1;
    argv[n++] = "--broker";
    argv[n++] = u->workers_ipc[0] ? u->workers_ipc : u->workers_ep;
    argv[n++] = "--store";
    argv[n++] = u->store_ep;
    argv[n++] = "--feed";
    argv[n++] = u->feed_ep;
    argv[n++] = "--data";
    argv[n++] = u->worker_dir[k];
    argv[n++] = "--name";
    argv[n++] = u->worker_name[k];
    return n;
}

/* How start-up waits for a service. */
typedef enum {
    UP_WAIT_HEALTHY,  /* Health answers ok, from our child (instance pid) */
    UP_WAIT_ANSWERS,  /* Health answers, from our child (the broker: not ok until a
                       * worker registers) */
    UP_WAIT_WORKERS,  /* the last worker: the broker has them all and is healthy */
} s_wait_kind;

/* The services of the local stack, started in this order and stopped in the
 * reverse order; "worker" stands for --workers N copies. */
typedef struct {
    const char *name;
    const char *binary;
    int health; /* bulletin_service to ask for Health */
    s_wait_kind wait;
    s_args_fn args;
} s_child_def;

static const s_child_def s_defs[] = {
    {"store", "bulletin-store", BULLETIN_SERVICE_STORE, UP_WAIT_HEALTHY, s_args_store},
    {"ingest", "bulletin-ingest", BULLETIN_SERVICE_INGEST, UP_WAIT_HEALTHY, s_args_ingest},
    {"query", "bulletin-query", BULLETIN_SERVICE_QUERY, UP_WAIT_ANSWERS, s_args_query},
    {"worker", "bulletin-worker", BULLETIN_SERVICE_QUERY, UP_WAIT_WORKERS, s_args_worker},
};
#define S_NDEFS (sizeof s_defs / sizeof *s_defs)
#define S_MAX_CHILDREN (S_NDEFS - 1 + UP_MAX_WORKERS)

/* The children of this run, in start order. */
typedef struct {
    const s_child_def *def;
    const char *name; /* def->name, or the worker's name */
    int k;            /* worker index */
    pid_t pid;
} s_child;

static s_child s_children[S_MAX_CHILDREN];
static size_t s_nchildren;

/* A wildcard bind address becomes 127.0.0.1: where a local client connects. */
static void s_connect_ep(const char *bind, char *out, size_t cap)
{
    const char *hosts[] = {"tcp://*:", "tcp://0.0.0.0:"};
    for (size_t i = 0; i < 2; i++) {
        size_t n = strlen(hosts[i]);
        if (!strncmp(bind, hosts[i], n)) {
            snprintf(out, cap, "tcp://127.0.0.1:%s", bind + n);
            return;
        }
    }
    snprintf(out, cap, "%s", bind);
}

static int s_mkdirs(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

static int s_bindir(char *out, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", out, cap - 1);
    if (n <= 0)
        return -1;
    out[n] = '\0';
    char *slash = strrchr(out, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    return 0;
}

static pid_t s_spawn(const char *path, const char **argv)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid; /* parent, or -1 */
    /* child: undo what the parent set up for itself */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    execv(path, (char *const *)argv);
    fprintf(stderr, "bulletin up: cannot run %s: %s\n", path, strerror(errno));
    _exit(127);
}

static void s_describe_exit(int status, char *buf, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(buf, cap, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, cap, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, cap, "status %d", status);
}

/* Reap children that exited; returns the index of the first one, or -1. */
static int s_reap(int *status)
{
    for (size_t i = 0; i < s_nchildren; i++) {
        if (s_children[i].pid <= 0)
            continue;
        pid_t r = waitpid(s_children[i].pid, status, WNOHANG);
        if (r == s_children[i].pid) {
            s_children[i].pid = 0;
            return (int)i;
        }
    }
    return -1;
}

/* SIGTERM everyone still running, newest first; SIGKILL after the grace. */
static void s_stop_all(void)
{
    for (size_t k = s_nchildren; k-- > 0;) {
        if (s_children[k].pid <= 0)
            continue;
        kill(s_children[k].pid, SIGTERM);
        int64_t deadline = clock_mono_ms() + UP_STOP_GRACE_MS;
        int status;
        for (;;) {
            pid_t r = waitpid(s_children[k].pid, &status, WNOHANG);
            if (r == s_children[k].pid || (r < 0 && errno == ECHILD))
                break;
            if (clock_mono_ms() >= deadline) {
                fprintf(stderr, "bulletin up: %s did not stop within %d s: killing it\n",
                        s_children[k].name, UP_STOP_GRACE_MS / 1000);
                kill(s_children[k].pid, SIGKILL);
                waitpid(s_children[k].pid, &status, 0);
                break;
            }
            usleep(20000);
        }
        s_children[k].pid = 0;
    }
}

/* The broker's "workers" metric (registered workers), or -1. */
static long s_registered_workers(bulletin_client *c)
{
    bulletin_stats *st = NULL;
    if (bulletin_stats_get(c, BULLETIN_SERVICE_QUERY, &st) != BULLETIN_OK)
        return -1;
    long n = -1;
    for (size_t i = 0; i < st->metric_count; i++)
        if (!strcmp(st->metrics[i].name, "workers"))
            n = (long)st->metrics[i].value;
    bulletin_stats_free(&st);
    return n;
}

/* Wait until child i is up, as its s_wait_kind says. 0 ok, 1 it died or
 * stayed unhealthy, 2 a signal asked us to stop. */
static int s_wait_healthy(const s_up *u, size_t i, int sigfd)
{
    const s_child *ch = &s_children[i];
    const s_child_def *d = ch->def;
    bulletin_options o;
    bulletin_options_init(&o);
    o.ingest_endpoint = u->ingest_ep;
    o.store_endpoint = u->store_ep;
    o.query_endpoint = u->query_ep;
    o.timeout_ms = 300;
    o.retries = 0;
    bulletin_client *c = bulletin_client_new(&o);
    if (!c) {
        fprintf(stderr, "bulletin up: cannot create a client for %s\n", ch->name);
        return 1;
    }
    const char *ep = d->health == BULLETIN_SERVICE_STORE    ? u->store_ep
                     : d->health == BULLETIN_SERVICE_INGEST ? u->ingest_ep
                                                            : u->query_ep;
    int64_t deadline = clock_mono_ms() + UP_START_TIMEOUT_MS;
    int rc = 1;
    char last[600] = "no answer";
    for (;;) {
        int status;
        int dead = s_reap(&status);
        if (dead >= 0) {
            char why[100];
            s_describe_exit(status, why, sizeof why);
            fprintf(stderr, "bulletin up: %s stopped while starting (%s); see its log above\n",
                    s_children[dead].name, why);
            break;
        }
        struct pollfd pfd = {sigfd, POLLIN, 0};
        if (poll(&pfd, 1, 0) > 0 && zio_signal_read(sigfd)) {
            rc = 2;
            break;
        }
        bulletin_health *h = NULL;
        if (bulletin_health_get(c, (bulletin_service)d->health, &h) == BULLETIN_OK) {
            /* instance is "host:pid": make sure the answer is from our child,
             * not from another stack already bound to that endpoint (workers
             * are answered for by the broker, which was checked before) */
            const char *colon = h->instance ? strrchr(h->instance, ':') : NULL;
            long pid = colon ? strtol(colon + 1, NULL, 10) : 0;
            if (d->wait != UP_WAIT_WORKERS && pid > 0 && pid != (long)ch->pid) {
                fprintf(stderr,
                        "bulletin up: another %s (instance %s) already answers on %s: is "
                        "another stack running? Stop it or choose other --*-bind endpoints\n",
                        ch->name, h->instance, ep);
                bulletin_health_free(&h);
                break;
            }
            bool ok = h->ok;
            snprintf(last, sizeof last, "unhealthy: %s", h->detail ? h->detail : "no detail");
            bulletin_health_free(&h);
            if (d->wait == UP_WAIT_ANSWERS) {
                rc = 0;
                break;
            }
            if (ok && d->wait == UP_WAIT_WORKERS) {
                long n = s_registered_workers(c);
                snprintf(last, sizeof last, "%ld of %lld workers registered with the broker", n,
                         u->nworkers);
                ok = n >= u->nworkers;
            }
            if (ok) {
                rc = 0;
                break;
            }
            usleep(100000);
        } else {
            snprintf(last, sizeof last, "%s", bulletin_client_last_error(c));
        }
        if (clock_mono_ms() >= deadline) {
            fprintf(stderr, "bulletin up: %s is not healthy after %d s (%s)\n",
                    d->wait == UP_WAIT_WORKERS ? "the read tier" : ch->name,
                    UP_START_TIMEOUT_MS / 1000, last);
            break;
        }
    }
    bulletin_client_destroy(&c);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* --load                                                                    */

typedef struct {
    cli_input *v;
    size_t n, cap;
    char **owned; /* paths built here */
    size_t nowned;
} s_inputs;

static bool s_ends(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static int s_add(s_inputs *in, const char *path, bool owned)
{
    if (in->n == in->cap) { /* the two arrays grow together (nowned <= n) */
        size_t cv = in->cap, co = in->cap;
        cli_input *v = grow(in->v, &cv, sizeof *v, 16);
        if (v)
            in->v = v;
        char **o = v ? grow(in->owned, &co, sizeof *o, 16) : NULL;
        if (o)
            in->owned = o;
        if (!v || !o)
            return -1;
        in->cap = cv;
    }
    in->v[in->n].path = path;
    in->v[in->n].raw = s_ends(path, ".txt");
    in->n++;
    if (owned)
        in->owned[in->nowned++] = (char *)path;
    return 0;
}

/* A directory: every *.jsonl and *.txt below it, in name order. */
static int s_walk(s_inputs *in, const char *dir, int depth)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "bulletin up: --load %s: %s\n", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const char *nm = names[i]->d_name;
        if (rc == 0 && nm[0] != '.') {
            size_t len = strlen(dir) + strlen(nm) + 2;
            char *p = malloc(len);
            struct stat st;
            if (!p) {
                rc = -1;
            } else {
                snprintf(p, len, "%s/%s", dir, nm);
                if (stat(p, &st) == 0 && S_ISDIR(st.st_mode) && depth < 8) {
                    rc = s_walk(in, p, depth + 1);
                    free(p);
                } else if (s_ends(nm, ".jsonl") || s_ends(nm, ".txt")) {
                    if (s_add(in, p, true) != 0) {
                        free(p);
                        rc = -1;
                    }
                } else {
                    free(p);
                }
            }
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

static void s_inputs_free(s_inputs *in)
{
    for (size_t i = 0; i < in->nowned; i++)
        free(in->owned[i]);
    free(in->owned);
    free(in->v);
}

static int s_load(const s_up *u, const cli_list *paths)
{
    s_inputs in = {0};
    for (size_t i = 0; i < paths->n; i++) {
        struct stat st;
        if (stat(paths->v[i], &st) != 0) {
            fprintf(stderr, "bulletin up: --load %s: %s\n", paths->v[i], strerror(errno));
            s_inputs_free(&in);
            return CLI_EXIT_USAGE;
        }
        int rc = S_ISDIR(st.st_mode) ? s_walk(&in, paths->v[i], 0)
                                     : s_add(&in, paths->v[i], false);
        if (rc != 0) {
            s_inputs_free(&in);
            return CLI_EXIT_USAGE;
        }
    }
    if (!in.n) {
        fprintf(stderr, "bulletin up: --load found no *.jsonl or *.txt files\n");
        s_inputs_free(&in);
        return CLI_EXIT_FAIL;
    }
    bulletin_options o;
    bulletin_options_init(&o);
    o.ingest_endpoint = u->ingest_ep;
    cli_ingest_summary sum;
    printf("loading %zu file%s...\n", in.n, in.n == 1 ? "" : "s");
    fflush(stdout);
    int rc = cli_ingest_run(&o, in.v, in.n, 500, 2, false, &sum);
    cli_ingest_print_summary(stdout, &sum);
    s_inputs_free(&in);
    if (u->nworkers && sum.max_seq) {
        /* read-your-writes for the person who asked: the workers have it */
        o.query_endpoint = u->query_ep;
        bulletin_client *c = bulletin_client_new(&o);
        bulletin_status st = c ? bulletin_wait_readable(c, sum.max_seq, UP_START_TIMEOUT_MS, NULL)
                               : BULLETIN_RESOURCE_EXHAUSTED;
        if (st == BULLETIN_OK)
            printf("readable through the query tier (max_seq=%llu)\n",
                   (unsigned long long)sum.max_seq);
        else
            fprintf(stderr, "bulletin up: the loaded articles are not readable yet: %s\n",
                    c ? bulletin_client_last_error(c) : "out of memory");
        bulletin_client_destroy(&c);
    }
    return rc;
}

/* ------------------------------------------------------------------------ */

/* Build the list of children for this run: store, ingest and, with
 * workers, the broker and N workers. */
static void s_plan(s_up *u)
{
    s_nchildren = 0;
    for (size_t d = 0; d < S_NDEFS; d++) {
        bool query_tier = s_defs[d].health == BULLETIN_SERVICE_QUERY;
        if (query_tier && u->nworkers == 0)
            continue;
        int copies = s_defs[d].args == s_args_worker ? (int)u->nworkers : 1;
        for (int k = 0; k < copies; k++) {
            s_child *ch = &s_children[s_nchildren++];
            ch->def = &s_defs[d];
            ch->k = k;
            ch->pid = 0;
            ch->name = copies > 1 || s_defs[d].args == s_args_worker ? u->worker_name[k]
                                                                     : s_defs[d].name;
        }
    }
}

int cli_cmd_up(const cli_globals *g, int argc, char **argv)
{
    (void)g;
    s_up u = {.data = "./data",
              .ingest_bind = "tcp://127.0.0.1:5555",
              .store_bind = "tcp://127.0.0.1:5557",
              .feed_bind = "tcp://127.0.0.1:5558",
              .query_bind = "tcp://127.0.0.1:5556",
              .workers_bind = "tcp://127.0.0.1:5559",
              .nworkers = 2};
    cli_list load = {0};
    const cli_opt opts[] = {
        {"data", CLI_STR, "DIR", "data directory: DIR/store, DIR/worker-K (default ./data)", &u.data},
        {"workers", CLI_INT, "N", "query workers (read replicas), 0..32 (default 2; 0 = no "
                                  "query tier)", &u.nworkers},
        {"load", CLI_LIST, "PATH", "after start-up, ingest these files or directories "
                                   "(*.jsonl as JSON Lines, *.txt as raw documents)", &load},
        {"ingest-bind", CLI_STR, "EP", "ingest endpoint (default tcp://127.0.0.1:5555)", &u.ingest_bind},
        {"query-bind", CLI_STR, "EP", "query broker, clients (default tcp://127.0.0.1:5556)", &u.query_bind},
        {"store-bind", CLI_STR, "EP", "store API endpoint (default tcp://127.0.0.1:5557)", &u.store_bind},
        {"feed-bind", CLI_STR, "EP", "store change feed (default tcp://127.0.0.1:5558)", &u.feed_bind},
        {"workers-bind", CLI_STR, "EP", "query broker, workers (default tcp://127.0.0.1:5559; the workers started here use DIR/query-workers.sock)", &u.workers_bind},
    };
    cli_list pos;
    int rc = cli_parse("up", "[--data DIR] [--workers N] [--load PATH...] [--ingest-bind EP]\n"
                             "       [--query-bind EP] [--store-bind EP] [--feed-bind EP] "
                             "[--workers-bind EP]",
                       "Run a local stack in the foreground until Ctrl-C: bulletin-store,\n"
                       "bulletin-ingest, the query broker bulletin-query and N bulletin-worker\n"
                       "read replicas (each with its own DIR/worker-K), found next to this\n"
                       "program. It waits until every service is healthy and every worker has\n"
                       "registered with the broker, then prints the endpoints. With --load, the\n"
                       "files are ingested and the command waits until the workers can read\n"
                       "them. Exit 0 after Ctrl-C/SIGTERM, 1 if a service stops by itself, 2 if\n"
                       "the stack cannot start.",
                       opts, sizeof opts / sizeof *opts, argc, argv, &pos);
    if (rc) {
        cli_list_free(&load);
        return rc == CLI_HELP_SHOWN ? CLI_EXIT_OK : rc;
    }
    if (pos.n) {
        fprintf(stderr, "bulletin up: unexpected argument '%s' (see bulletin up --help)\n",
                pos.v[0]);
        cli_list_free(&pos);
        cli_list_free(&load);
        return CLI_EXIT_USAGE;
    }
    cli_list_free(&pos);
    /* an empty --data was the root directory ("" + "/store"), an empty
     * endpoint a service that refuses to start */
    for (size_t i = 0; i < sizeof opts / sizeof *opts; i++)
        if (opts[i].type == CLI_STR && *(const char **)opts[i].dst &&
            !**(const char **)opts[i].dst) {
            fprintf(stderr, "bulletin up: --%s '': the value is empty; give one or leave the "
                            "option out (see bulletin up --help)\n", opts[i].name);
            cli_list_free(&load);
            return CLI_EXIT_USAGE;
        }
    if (u.nworkers < 0 || u.nworkers > UP_MAX_WORKERS) {
        fprintf(stderr, "bulletin up: --workers must be 0..%d (got %lld)\n", UP_MAX_WORKERS,
                u.nworkers);
        cli_list_free(&load);
        return CLI_EXIT_USAGE;
    }
    s_connect_ep(u.ingest_bind, u.ingest_ep, sizeof u.ingest_ep);
    s_connect_ep(u.store_bind, u.store_ep, sizeof u.store_ep);
    s_connect_ep(u.feed_bind, u.feed_ep, sizeof u.feed_ep);
    s_connect_ep(u.query_bind, u.query_ep, sizeof u.query_ep);
    s_connect_ep(u.workers_bind, u.workers_ep, sizeof u.workers_ep);
    if (snprintf(u.store_dir, sizeof u.store_dir, "%s/store", u.data) >= (int)sizeof u.store_dir ||
        s_mkdirs(u.store_dir) != 0) {
        fprintf(stderr, "bulletin up: cannot create %s/store: %s\n", u.data, strerror(errno));
        cli_list_free(&load);
        return CLI_EXIT_USAGE;
    }
    char absdata[PATH_MAX];
    if (realpath(u.data, absdata) && strlen(absdata) + sizeof "ipc:///query-workers.sock" <= 100 &&
        !strchr(absdata, ',')) { /* sun_path holds 108 bytes; a comma would split the list */
        snprintf(u.workers_ipc, sizeof u.workers_ipc, "ipc://%s/query-workers.sock", absdata);
        snprintf(u.workers_bind_all, sizeof u.workers_bind_all, "%s,%s", u.workers_bind,
                 u.workers_ipc);
    }
    for (int k = 0; k < (int)u.nworkers; k++) {
        snprintf(u.worker_name[k], sizeof u.worker_name[k], "worker-%d", k + 1);
        if (snprintf(u.worker_dir[k], sizeof u.worker_dir[k], "%s/%s", u.data,
                     u.worker_name[k]) >= (int)sizeof u.worker_dir[k] ||
            s_mkdirs(u.worker_dir[k]) != 0) {
            fprintf(stderr, "bulletin up: cannot create %s/%s: %s\n", u.data, u.worker_name[k],
                    strerror(errno));
            cli_list_free(&load);
            return CLI_EXIT_USAGE;
        }
    }
    s_plan(&u);

    char bindir[PATH_MAX];
    if (s_bindir(bindir, sizeof bindir) != 0) {
        fprintf(stderr, "bulletin up: cannot find my own directory (/proc/self/exe)\n");
        cli_list_free(&load);
        return CLI_EXIT_USAGE;
    }
    static char paths[S_MAX_CHILDREN][PATH_MAX + 64];
    for (size_t i = 0; i < s_nchildren; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/%s", bindir, s_children[i].def->binary);
        if (access(paths[i], X_OK) != 0) {
            fprintf(stderr, "bulletin up: %s not found next to bulletin (%s): build it first\n",
                    s_children[i].def->binary, paths[i]);
            cli_list_free(&load);
            return CLI_EXIT_USAGE;
        }
    }

    /* Signals arrive on a descriptor (and are blocked for our threads); the
     * children get a clean mask in s_spawn. */
    int sigfd = zio_signal_fd();
    if (sigfd < 0) {
        fprintf(stderr, "bulletin up: cannot set up signal handling: %s\n", strerror(errno));
        cli_list_free(&load);
        return CLI_EXIT_USAGE;
    }
    int exit_code = CLI_EXIT_OK;
    for (size_t i = 0; i < s_nchildren; i++) {
        const char *cargv[UP_MAX_ARGS + 1] = {paths[i]};
        int n = s_children[i].def->args(&u, s_children[i].k, cargv);
        cargv[n] = NULL;
        fprintf(stderr, "bulletin up: starting %s\n", s_children[i].name);
        s_children[i].pid = s_spawn(paths[i], cargv);
        if (s_children[i].pid < 0) {
            fprintf(stderr, "bulletin up: cannot start %s: %s\n", s_children[i].name,
                    strerror(errno));
            s_children[i].pid = 0;
            exit_code = CLI_EXIT_USAGE;
            break;
        }
        /* workers start together; the last one waits for all of them */
        if (s_children[i].def->wait == UP_WAIT_WORKERS && (i + 1 < s_nchildren))
            continue;
        int w = s_wait_healthy(&u, i, sigfd);
        if (w != 0) {
            exit_code = w == 2 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
            break;
        }
    }
    if (exit_code != CLI_EXIT_OK || s_reap(&(int){0}) >= 0) {
        s_stop_all();
        cli_list_free(&load);
        close(sigfd);
        return exit_code;
    }
    if (load.n) {
        int lrc = s_load(&u, &load);
        if (lrc != CLI_EXIT_OK)
            fprintf(stderr, "bulletin up: the load %s; the stack keeps running\n",
                    lrc == CLI_EXIT_FAIL ? "rejected some items (see above)" : "failed");
    }
    cli_list_free(&load);

    printf("\nBulletin is up.\n"
           "  ingest  %s   (writes: bulletin ingest --wait FILE.jsonl)\n",
           u.ingest_ep);
    if (u.nworkers)
        printf("  query   %s   (reads: bulletin list, bulletin get ID) with %lld worker%s\n"
               "          workers connect to %s\n",
               u.query_ep, u.nworkers, u.nworkers == 1 ? "" : "s", u.workers_ep);
    printf("  store   %s   (bulletin get --store ID, bulletin stats)\n"
           "  feed    %s\n"
           "  data    %s\n"
           "Ctrl-C stops everything.\n",
           u.store_ep, u.feed_ep, u.data);
    fflush(stdout);

    for (;;) {
        struct pollfd pfd = {sigfd, POLLIN, 0};
        int pr = poll(&pfd, 1, 250);
        if (pr > 0) {
            int sig = zio_signal_read(sigfd);
            if (sig) {
                fprintf(stderr, "\nbulletin up: %s received, stopping\n", strsignal(sig));
                break;
            }
        }
        int status;
        int dead = s_reap(&status);
        if (dead >= 0) {
            char why[100];
            s_describe_exit(status, why, sizeof why);
            fprintf(stderr, "bulletin up: %s stopped unexpectedly (%s); stopping the rest\n",
                    s_children[dead].name, why);
            exit_code = CLI_EXIT_FAIL;
            break;
        }
    }
    s_stop_all();
    close(sigfd);
    return exit_code;
}
