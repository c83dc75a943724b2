/*
 * config: one table drives flags, environment variables and --help
 * (Redis standardConfig style).
 *
 *   static const char *data; static long long port; static bool verbose;
 *   static const cfg_option opts[] = {
 *       {"data", "BULLETIN_DATA", CFG_STR, "./data/store", "LMDB directory", &data},
 *       ...
 *   };
 *   switch (cfg_parse("bulletin-store", "The system of record.", opts, N, argc, argv)) ...
 *
 * Precedence: flag > environment variable > default; an environment variable
 * set to "" counts as unset. Flags are --name VALUE or --name=VALUE; CFG_BOOL
 * flags take no value (--name) and read env values 1/true/yes/on. String
 * results point into argv, the environment or the table's default: nothing
 * is allocated.
 */
#ifndef BULLETIN_CONFIG_H
#define BULLETIN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* CFG_STR_NONEMPTY is CFG_STR for options where an empty value makes no sense
 * (a path, an endpoint, a name): a flag given as "" (--name '') is an error
 * instead of the value "" (which a service would read as "not given"). Plain
 * CFG_STR takes "" as a value (e.g. --http '' = off). */
typedef enum { CFG_STR, CFG_INT, CFG_BOOL, CFG_STR_NONEMPTY } cfg_type;

typedef struct {
    const char *name;  /* flag name without the leading "--" */
    const char *env;   /* environment variable, or NULL */
    cfg_type type;
    const char *def;   /* default as text (NULL = no value / false / 0) */
    const char *help;
    void *dst;         /* const char ** (both STR types) | long long * | bool * */
} cfg_option;

enum { CFG_OK = 0, CFG_HELP = 1, CFG_ERROR = 2 };

/* The services' exit status, for their --help (after the summary) and their
 * main: 2 for everything their option parsing and config check refuse. */
#define CFG_EXIT_STATUS                                                                  \
    "Exit status: 0 after SIGTERM or SIGINT (and --help), 1 when it fails at run time "   \
    "(an address in use, a data directory it cannot open), 2 for a bad option or value."

/* Fill every option's dst. Returns CFG_OK; CFG_HELP after printing --help to
 * stdout (exit 0); CFG_ERROR after printing a clear error to stderr (exit 2).
 * Positional arguments are not accepted. */
int cfg_parse(const char *prog, const char *summary, const cfg_option *opts, size_t n,
              int argc, char **argv);

/* Print the option table as --help text to stdout. */
void cfg_print_help(const char *prog, const char *summary, const cfg_option *opts, size_t n);

#endif
