/* config: see config.h. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int s_set(const char *prog, const cfg_option *o, const char *val, const char *from)
{
    switch (o->type) {
    case CFG_STR_NONEMPTY:
        if (val && !*val) { /* only a flag gets here with "": env "" is unset */
            fprintf(stderr, "%s: --%s '': the value is empty; give one or leave the option out "
                            "(see --help)\n", prog, o->name);
            return -1;
        }
        /* fall through */
    case CFG_STR:
        *(const char **)o->dst = val;
        return 0;
    case CFG_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(val ? val : "0", &end, 10);
        if (errno || !val || end == val || *end) {
            fprintf(stderr, "%s: %s: '%s' is not an integer\n", prog, from, val ? val : "");
            return -1;
        }
        *(long long *)o->dst = v;
        return 0;
    }
    case CFG_BOOL:
        *(bool *)o->dst = val && (!strcasecmp(val, "1") || !strcasecmp(val, "true") ||
                                  !strcasecmp(val, "yes") || !strcasecmp(val, "on"));
        return 0;
    }
    return -1;
}

void cfg_print_help(const char *prog, const char *summary, const cfg_option *opts, size_t n)
{
    printf("Usage: %s [OPTIONS]\n\n%s\n\nOptions (each also as an environment variable):\n",
           prog, summary);
    for (size_t i = 0; i < n; i++) {
        const cfg_option *o = &opts[i];
        char flag[96];
        snprintf(flag, sizeof flag, "--%s%s", o->name, o->type == CFG_BOOL ? "" : " VALUE");
        printf("  %-28s %s\n", flag, o->help);
        if (o->env || o->def)
            printf("  %-28s %s%s%s%s%s\n", "", o->env ? "env " : "", o->env ? o->env : "",
                   o->env && o->def ? ", " : "", o->def ? "default " : "", o->def ? o->def : "");
    }
    printf("  %-28s %s\n", "--help", "show this help and exit");
}

int cfg_parse(const char *prog, const char *summary, const cfg_option *opts, size_t n,
              int argc, char **argv)
{
    for (size_t i = 0; i < n; i++) {
        const char *env = opts[i].env ? getenv(opts[i].env) : NULL;
        if (s_set(prog, &opts[i], env && *env ? env : opts[i].def,
                  env && *env ? opts[i].env : "default") < 0)
            return CFG_ERROR;
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            cfg_print_help(prog, summary, opts, n);
            return CFG_HELP;
        }
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", prog, arg);
            return CFG_ERROR;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const cfg_option *o = NULL;
        for (size_t i = 0; i < n; i++)
            if (strlen(opts[i].name) == len && !strncmp(opts[i].name, name, len))
                o = &opts[i];
        if (!o) {
            fprintf(stderr, "%s: unknown option '%s' (see --help)\n", prog, arg);
            return CFG_ERROR;
        }
        const char *val;
        if (o->type == CFG_BOOL) {
            val = eq ? eq + 1 : "1";
        } else if (eq) {
            val = eq + 1;
        } else if (a + 1 < argc) {
            val = argv[++a];
        } else {
            fprintf(stderr, "%s: option '--%s' needs a value\n", prog, o->name);
            return CFG_ERROR;
        }
        if (s_set(prog, o, val, arg) < 0)
            return CFG_ERROR;
    }
    return CFG_OK;
}
