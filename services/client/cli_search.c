/*
 * cli_search: `bulletin search QUERY`, full-text search through the query
 * tier.
 *
 *   parse options -> SearchRequest (query, filters, limit/offset/cursor,
 *   facets, min_seq) -> bulletin_search -> print one page:
 *     human: rank, score, title / site, category, date / snippet, then the
 *            total, took_us, the worker, facets (--facets), the next cursor
 *     --json: one object with bulletin.proto's field names (cli_fmt.h)
 *
 * On a terminal the matches in the snippet are bold: the command asks the
 * worker for private-use markers (CLI_MARK_OPEN/CLOSE) and turns them into
 * ANSI attributes; elsewhere it keeps the default markers « ». Control
 * characters of scraped text are never written to the terminal as such.
 */
#include "cli.h"
#include "cli_fmt.h"

#include "clock.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void s_print_facets(const char *what, const bulletin_facet *f, size_t n)
{
    printf("%s:", what);
    if (!n)
        printf(" (none)");
    for (size_t i = 0; i < n; i++) {
        char *v = cli_snippet_render(f[i].value, 0);
        printf("%s %s (%" PRIu64 ")", i ? "," : "", v ? v : "?", f[i].count);
        free(v);
    }
    printf("\n");
}

static void s_print_human(const bulletin_search_result *r, uint64_t first_rank, int ansi,
                          int facets)
{
    for (size_t i = 0; i < r->hit_count; i++) {
        const bulletin_hit *h = &r->hits[i];
        char date[40] = "-";
        if (h->published_at) {
            char full[40];
            clock_format_rfc3339(h->published_at, full, sizeof full);
            snprintf(date, sizeof date, "%.10s %.5s", full, full + 11);
        }
        char *title = cli_snippet_render(h->title && *h->title ? h->title : "(untitled)", 0);
        char *site = cli_snippet_render(h->site && *h->site ? h->site : "-", 0);
        char *cat = cli_snippet_render(h->category && *h->category ? h->category : "-", 0);
        char *snip = cli_snippet_render(h->snippet ? h->snippet : "", ansi);
        if (ansi)
            printf("%3" PRIu64 ". \x1b[1m%s\x1b[0m  (score %.3f)\n", first_rank + i, title ? title : "?",
                   h->score);
        else
            printf("%3" PRIu64 ". %s  (score %.3f)\n", first_rank + i, title ? title : "?", h->score);
        printf("     %s | %s | %s | id %" PRIu64 "\n", site ? site : "?", cat ? cat : "?", date,
               h->id);
        if (snip && *snip)
            printf("     %s\n", snip);
        printf("\n");
        free(title);
        free(site);
        free(cat);
        free(snip);
    }
    if (!r->hit_count)
        printf("no matches on this page\n");
    printf("%" PRIu64 " article%s match%s (took %" PRIu64 " us on %s at seq %" PRIu64 ")\n",
           r->total, r->total == 1 ? "" : "s", r->total == 1 ? "es" : "", r->took_us,
           r->served_by ? r->served_by : "?", r->applied_seq);
    if (facets) {
        s_print_facets("categories", r->categories, r->category_count);
        s_print_facets("sites", r->sites, r->site_count);
    }
    if (r->next_cursor_len) {
        char *t = cli_cursor_encode(r->next_cursor, r->next_cursor_len);
        printf("more: --cursor %s\n", t ? t : "(out of memory)");
        free(t);
    }
}

int cli_cmd_search(const cli_globals *g, int argc, char **argv)
{
    cli_read_args ra = {0};
    bool facets = false, json = false;
    long long limit = CLI_INT_UNSET, offset = CLI_INT_UNSET;
    const cli_opt opts[] = {
        CLI_READ_FILTER_OPTS(ra),
        {"limit", CLI_INT, "N", "hits per page, 1..1000 (default 10)", &limit},
        {"offset", CLI_INT, "N", "skip the first N hits (offset + limit <= 10000)", &offset},
        {"cursor", CLI_STR, "C", "the next page of a previous search (its \"more: --cursor\"); "
                                 "same query and filters", &ra.cursor},
        {"facets", CLI_FLAG, NULL, "also count all matches per category and per site", &facets},
        CLI_READ_MIN_SEQ_OPT(ra),
        {"json", CLI_FLAG, NULL, "print one JSON object instead of text", &json},
    };
    cli_list pos;
    int rc = cli_parse(
        "search",
        "QUERY [--site S] [--category C] [--tag T] [--since DATE] [--until DATE]\n"
        "       [--limit N] [--offset N] [--cursor C] [--facets] [--min-seq N] [--json]",
        "Full-text search through the query tier, best match first (BM25, title\n"
        "weighted x2). QUERY is one argument (quote it) in search-box syntax:\n"
        "  mass line        articles with all the words (any form: lines, lining)\n"
        "  \"mass line\"      the exact phrase\n"
        "  -party           without this word (or -\"a phrase\")\n"
        "  police OR army   either word\n"
        "  secur*           words starting with a prefix (2 characters or more)\n"
        "  title:word       the word in the title\n"
        "  site:S category:C tag:T   filters (quote values with spaces)\n"
        "Chinese (and Japanese, Korean) text matches by characters: 1, 2 or more.\n"
        "Each hit shows its rank, score, title, site, category, date and a snippet\n"
        "of the body with the matches marked (bold on a terminal, else \xc2\xab \xc2\xbb). --json\n"
        "prints one object with the field names of bulletin.proto's SearchReply:\n"
        "hits (id, key, site, category, title, published_at, score, snippet), total,\n"
        "next_cursor (base64url; null at the end), categories and sites (with\n"
        "--facets: [{value, count}]), took_us, served_by and applied_seq.\n"
        "Exit 0 on success (also when nothing matches), 2 when the query is refused\n"
        "(the message says at which position) or on usage or connection errors.",
        opts, sizeof opts / sizeof *opts, argc, argv, &pos);
    if (rc)
        return rc == CLI_HELP_SHOWN ? CLI_EXIT_OK : rc;
    bulletin_search_request req = {0};
    void *cursor = NULL;
    int exit_code = CLI_EXIT_USAGE;
    bulletin_client *c = NULL;
    bulletin_search_result *r = NULL;
    if (pos.n != 1) {
        if (pos.n)
            fprintf(stderr, "bulletin search: one QUERY argument, got %zu (quote the query: "
                            "bulletin search 'mass line')\n", pos.n);
        else
            fprintf(stderr, "bulletin search: a QUERY is needed (see bulletin search --help)\n");
        goto done;
    }
    if (limit != CLI_INT_UNSET && (limit < 1 || limit > 1000)) {
        fprintf(stderr, "bulletin search: --limit must be 1..1000 (got %lld)\n", limit);
        goto done;
    }
    if (offset != CLI_INT_UNSET && (offset < 0 || offset > 10000)) {
        fprintf(stderr, "bulletin search: --offset must be 0..10000 (got %lld)\n", offset);
        goto done;
    }
    if (offset > 0 && ra.cursor) {
        fprintf(stderr, "bulletin search: --offset and --cursor are alternatives; give one\n");
        goto done;
    }
    if (cli_read_args_apply("search", &ra, &req.filter, &req.min_seq, &cursor, &req.cursor_len))
        goto done;
    int ansi = !json && isatty(1) && !getenv("NO_COLOR");
    req.query = pos.v[0];
    req.limit = limit != CLI_INT_UNSET ? (uint32_t)limit : 0;
    req.offset = offset != CLI_INT_UNSET ? (uint32_t)offset : 0;
    req.cursor = cursor;
    req.facets = facets;
    if (ansi) {
        req.mark_open = CLI_MARK_OPEN;
        req.mark_close = CLI_MARK_CLOSE;
    }
    if (!(c = cli_client(g, "search")))
        goto done;
    bulletin_status st = bulletin_search(c, &req, &r);
    if (st != BULLETIN_OK) {
        fprintf(stderr, "bulletin search: %s: %s\n", bulletin_status_name(st),
                bulletin_client_last_error(c));
        exit_code = cli_exit_for(st);
        goto done;
    }
    exit_code = CLI_EXIT_OK;
    if (json) {
        if (cli_print_json(cli_json_search_page(r, facets)) != 0)
            exit_code = CLI_EXIT_USAGE;
    } else {
        s_print_human(r, (uint64_t)req.offset + 1, ansi, facets);
    }
done:
    bulletin_search_result_free(&r);
    bulletin_client_destroy(&c);
    free(cursor);
    cli_list_free(&pos);
    return exit_code;
}
