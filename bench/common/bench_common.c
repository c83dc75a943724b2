/* bench_common: see bench_common.h. */
#include "bench_common.h"

#include "clock.h"
#include "log.h"
#include "wire.h"
#include "zio.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- corpus ------------------------------------------------------------- */

char *bench_json_str(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    return strdup(json_is_string(v) ? json_string_value(v) : "");
}

void bench_article_free(bench_article *a)
{
    free(a->key);
    free(a->title);
    free(a->body);
    free(a->category);
    free(a->site);
    memset(a, 0, sizeof *a);
}

void bench_articles_free(bench_article *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        bench_article_free(&a[i]);
    free(a);
}

bench_verdict bench_article_parse(const char *line, size_t len, int64_t max_ms, bench_article *a)
{
    memset(a, 0, sizeof *a);
    json_error_t jerr;
    json_t *o = json_loadb(line, len, 0, &jerr);
    if (!json_is_object(o)) {
        json_decref(o);
        return BENCH_ART_BAD_JSON;
    }
    a->key = bench_json_str(o, "key");
    a->title = bench_json_str(o, "title");
    a->body = bench_json_str(o, "body");
    a->category = bench_json_str(o, "category");
    a->site = bench_json_str(o, "site");
    json_t *pv = json_object_get(o, "published_at");
    bool date_ok = clock_parse_rfc3339(json_is_string(pv) ? json_string_value(pv) : "",
                                       &a->published_ms) == 0;
    json_decref(o);
    bench_verdict v = BENCH_ART_OK;
    if (!a->key || !a->title || !a->body || !a->category || !a->site) {
        v = BENCH_ART_TOO_BIG; /* out of memory: treat the line as unusable */
    } else {
        size_t tlen = strlen(a->title);
        if (!date_ok)
            v = BENCH_ART_BAD_DATE;
        else if (a->published_ms < BENCH_DATE_MIN_MS || a->published_ms > max_ms)
            v = BENCH_ART_OUT_OF_RANGE;
        else if (tlen == 0 || tlen > BENCH_TITLE_MAX)
            v = BENCH_ART_BAD_TITLE;
        else if (strlen(a->body) > BENCH_BODY_MAX || strlen(a->key) > BENCH_KEY_MAX)
            v = BENCH_ART_TOO_BIG;
        else if (!a->key[0])
            v = BENCH_ART_NO_KEY;
    }
    if (v != BENCH_ART_OK)
        bench_article_free(a);
    return v;
}

FILE *bench_corpus_open(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        log_error("bench.corpus", "path=%s error=\"%s\" hint=\"bash /work/shared/corpus/build_corpora.sh\"",
                  path, strerror(errno));
    return f;
}

/* ---- processes ---------------------------------------------------------- */

int bench_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

int bench_free_ports(int *ports, int n)
{
    for (int i = 0; i < n; i++) {
        int tries = 0;
        for (;;) {
            ports[i] = bench_free_port();
            bool dup = ports[i] <= 0;
            for (int j = 0; j < i && !dup; j++)
                dup = ports[j] == ports[i];
            if (!dup)
                break;
            if (++tries > 20)
                return -1;
        }
    }
    return 0;
}

int bench_start_service(void *ctx, pid_t *pid, char *const argv[], const char *log_path,
                        const cpu_set_t *cpus, const char *endpoint, const char *name, int wait_ms)
{
    *pid = bench_spawn(argv, log_path, cpus);
    if (*pid < 0 || bench_wait_healthy(ctx, endpoint, *pid, wait_ms) < 0) {
        log_error("bench.spawn", "service=%s log=%s", name, log_path);
        return -1;
    }
    return 0;
}

void bench_cpuset_all(cpu_set_t *set)
{
    CPU_ZERO(set);
    for (long c = 0; c < sysconf(_SC_NPROCESSORS_ONLN) && c < CPU_SETSIZE; c++)
        CPU_SET((int)c, set);
}

pid_t bench_spawn(char *const argv[], const char *log_path, const cpu_set_t *cpus)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
            close(fd);
        }
        /* the parent may block signals; the services must see SIGTERM */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (cpus)
            sched_setaffinity(0, sizeof *cpus, cpus);
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

void bench_stop(pid_t *pid, const char *name, int wait_s)
{
    if (*pid <= 0)
        return;
    kill(*pid, SIGTERM);
    int st;
    for (int i = 0; i < wait_s * 20; i++) {
        if (waitpid(*pid, &st, WNOHANG) == *pid) {
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                log_warn("bench.stop", "service=%s pid=%d status=%d msg=\"did not exit cleanly\"",
                         name, (int)*pid, st);
            *pid = 0;
            return;
        }
        usleep(50000);
    }
    log_warn("bench.stop", "service=%s pid=%d msg=\"no exit %d s after SIGTERM; SIGKILL\"", name,
             (int)*pid, wait_s);
    kill(*pid, SIGKILL);
    waitpid(*pid, &st, 0);
    *pid = 0;
}

bool bench_exited(pid_t pid)
{
    int st;
    return pid > 0 && waitpid(pid, &st, WNOHANG) == pid;
}

static int s_rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void bench_rm_rf(const char *dir)
{
    nftw(dir, s_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

void bench_dir_release(char *dir, bool keep)
{
    if (!dir[0])
        return;
    if (keep)
        log_info("bench.keep", "dir=%s", dir);
    else
        bench_rm_rf(dir);
    dir[0] = 0;
}

/* ---- CPU accounting ----------------------------------------------------- */

double bench_proc_cpu_us(pid_t pid)
{
    if (pid <= 0)
        return -1;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* fields after the command name "(...)": state is field 3, utime 14, stime 15 */
    const char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

double bench_self_cpu_us(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

double bench_cpu_delta(double before, double after)
{
    return before >= 0 && after >= 0 ? after - before : -1;
}

/* ---- request / reply ---------------------------------------------------- */

Bulletin__Reply *bench_roundtrip(void *sock, const void *data, size_t len, int timeout_ms,
                                 char *why, size_t why_cap)
{
    if (zmq_send(sock, "", 0, ZMQ_SNDMORE) < 0 || zmq_send(sock, data, len, 0) < 0) {
        snprintf(why, why_cap, "send failed: %s", zmq_strerror(errno));
        return NULL;
    }
    int64_t deadline = clock_mono_ms() + timeout_ms;
    for (;;) {
        zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
        int64_t left = deadline - clock_mono_ms();
        if (left <= 0) {
            snprintf(why, why_cap, "no reply within %d ms", timeout_ms);
            return NULL;
        }
        int rc = zmq_poll(&it, 1, (long)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0) {
            snprintf(why, why_cap, "poll failed: %s", zmq_strerror(errno));
            return NULL;
        }
        if (rc > 0)
            break;
    }
    zmq_msg_t body;
    int rc;
    while ((rc = zio_recv_body(sock, &body, 0)) < 0 && errno == EINTR)
        ;
    if (rc < 0) {
        snprintf(why, why_cap, "receive failed: %s", zmq_strerror(errno));
        return NULL;
    }
    wire_code code;
    char uwhy[256];
    size_t blen = zmq_msg_size(&body);
    Bulletin__Reply *rep = NULL;
    if (blen == 0)
        snprintf(why, why_cap, "the reply has an empty or malformed body");
    else if (!(rep = (Bulletin__Reply *)wire_unpack(&bulletin__reply__descriptor, zmq_msg_data(&body),
                                                    blen, WIRE_BUDGET(blen), &code, uwhy,
                                                    sizeof uwhy)))
        snprintf(why, why_cap, "the reply does not decode: %s", uwhy);
    zmq_msg_close(&body);
    return rep;
}

Bulletin__Reply *bench_simple_request(void *sock, Bulletin__Request__BodyCase body, uint64_t id,
                                      int timeout_ms, char *why, size_t cap)
{
    Bulletin__Request req = BULLETIN__REQUEST__INIT;
    Bulletin__HealthRequest h = BULLETIN__HEALTH_REQUEST__INIT;
    Bulletin__StatsRequest s = BULLETIN__STATS_REQUEST__INIT;
    req.version_major = WIRE_VERSION_MAJOR;
    req.request_id = id;
    req.body_case = body;
    if (body == BULLETIN__REQUEST__BODY_HEALTH)
        req.health = &h;
    else
        req.stats = &s;
    uint8_t buf[64];
    size_t n = bulletin__request__pack(&req, buf);
    return bench_roundtrip(sock, buf, n, timeout_ms, why, cap);
}

bool bench_reply_ok(const Bulletin__Reply *r)
{
    return r && (!r->status || r->status->code == BULLETIN__STATUS_CODE__OK);
}

int bench_wait_healthy(void *ctx, const char *endpoint, pid_t pid, int ms)
{
    int64_t deadline = clock_mono_ms() + ms;
    char why[256] = "";
    while (clock_mono_ms() < deadline) {
        int st;
        if (pid > 0 && waitpid(pid, &st, WNOHANG) == pid) {
            log_error("bench.spawn", "endpoint=%s msg=\"the service exited at start\" status=%d",
                      endpoint, st);
            return -1;
        }
        void *s = zio_socket(ctx, ZMQ_DEALER, 0, 0);
        if (!s || zio_connect(s, endpoint) < 0) {
            zio_close(&s);
            return -1;
        }
        Bulletin__Reply *r = bench_simple_request(s, BULLETIN__REQUEST__BODY_HEALTH, 1, 500, why,
                                                  sizeof why);
        zio_close(&s);
        bool ok = bench_reply_ok(r);
        if (r && !ok)
            snprintf(why, sizeof why, "status %s", wire_code_name((int)r->status->code));
        wire_free(r);
        if (ok)
            return 0;
        usleep(100000);
    }
    log_error("bench.spawn", "endpoint=%s msg=\"no healthy answer within %d ms\" last=\"%s\"",
              endpoint, ms, why);
    return -1;
}

/* ---- statistics and report ---------------------------------------------- */

int bench_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

double bench_pct(const int64_t *v, size_t n, double fraction)
{
    if (n == 0)
        return 0;
    size_t rank = (size_t)(fraction * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (double)v[rank - 1];
}

void bench_read_line(const char *path, const char *prefix, char *out, size_t cap)
{
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (!prefix || !strncmp(line, prefix, strlen(prefix))) {
            const char *v = prefix ? strchr(line, ':') : line;
            v = v ? v + (prefix ? 1 : 0) : line;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t l = strcspn(v, "\n");
            if (l >= cap)
                l = cap - 1;
            memcpy(out, v, l);
            out[l] = 0;
            break;
        }
    }
    fclose(f);
}

void bench_loadavg(char *out, size_t cap, const char *fallback)
{
    double a[3];
    if (getloadavg(a, 3) == 3)
        snprintf(out, cap, "%.2f %.2f %.2f", a[0], a[1], a[2]);
    else
        snprintf(out, cap, "%s", fallback);
}

void bench_machine(char *cpu, size_t cpu_cap, char *kernel, size_t kernel_cap)
{
    bench_read_line("/proc/cpuinfo", "model name", cpu, cpu_cap);
    struct utsname u;
    kernel[0] = 0;
    if (uname(&u) == 0 && snprintf(kernel, kernel_cap, "%s %s", u.sysname, u.release) >= (int)kernel_cap)
        kernel[kernel_cap - 1] = 0;
}

/* ---- search query sets -------------------------------------------------- */

int bench_search_text(json_t *groups, bool zh, char *text, size_t cap)
{
    size_t used = 0;
    if (cap < 3 || !json_is_array(groups) || json_array_size(groups) == 0)
        return -1;
    text[0] = 0;
    size_t gi;
    json_t *g;
    json_array_foreach(groups, gi, g) {
        size_t ng = json_array_size(g);
        if (!json_is_array(g) || ng == 0)
            return -1;
        bool phrase = !zh && ng > 1;
        for (size_t t = 0; t < ng; t++) {
            const char *tok = json_string_value(json_array_get(g, t));
            if (!tok || !*tok)
                return -1;
            if (zh && t > 0) { /* the bigram's last character */
                size_t l = strlen(tok), k = l;
                while (k > 0 && ((uint8_t)tok[k - 1] & 0xC0) == 0x80)
                    k--;
                tok += k ? k - 1 : 0;
            }
            int w = snprintf(text + used, cap - used, "%s%s%s%s", gi && t == 0 ? " " : "",
                             phrase && t == 0 ? "\"" : "", !zh && t ? " " : "", tok);
            if (w < 0 || (size_t)w >= cap - used - 2)
                return -1;
            used += (size_t)w;
        }
        if (phrase) {
            text[used++] = '"';
            text[used] = 0;
        }
    }
    return 0;
}
