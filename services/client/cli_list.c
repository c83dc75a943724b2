/*
 * cli_list: `bulletin list`, articles a page at a time from the query tier.
 *
 *   parse options -> first request (filters, order, limit, cursor, min_seq)
 *        loop: bulletin_list -> print the page (table rows or one JSON line)
 *              --all and a next cursor: ask for the next page
 *        end:  the next cursor (table: "more: --cursor C"), the total
 *
 * A page that brings no article but a cursor, or the same cursor again,
 * would make --all loop for ever: that is reported as a service error.
 */
#include "cli.h"
#include "cli_fmt.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define CLI_ALL_PAGE 500 /* page size of --all when --limit is not given */

int cli_cmd_list(const cli_globals *g, int argc, char **argv)
{
    cli_read_args ra = {0};
    bool oldest = false, all = false, total = false, json = false;
    long long limit = CLI_INT_UNSET;
    const cli_opt opts[] = {
        CLI_READ_FILTER_OPTS(ra),
        {"oldest", CLI_FLAG, NULL, "oldest first (default: newest first; ties by id)", &oldest},
        {"limit", CLI_INT, "N", "articles per page, 1..1000 (default 20; 500 with --all)", &limit},
        {"cursor", CLI_STR, "C", "continue where a previous page ended (its next cursor)",
         &ra.cursor},
        {"all", CLI_FLAG, NULL, "follow the cursors to the last page", &all},
        {"total", CLI_FLAG, NULL, "also count every match (costs more than a page)", &total},
        CLI_READ_MIN_SEQ_OPT(ra),
        {"json", CLI_FLAG, NULL, "print one JSON object per page instead of a table", &json},
    };
    cli_list pos;
    int rc = cli_parse(
        "list",
        "[--site S] [--category C] [--tag T] [--since DATE] [--until DATE] [--oldest]\n"
        "       [--limit N] [--cursor C] [--all] [--total] [--min-seq N] [--json]",
        "List articles through the query tier, newest first by publication date (ties\n"
        "by id). Filters combine (AND). A page ends with the cursor of the next one\n"
        "(\"more: --cursor C\"); pass it back with --cursor to continue exactly there,\n"
        "even while articles arrive. --json prints one object per page with the field\n"
        "names of bulletin.proto's ListReply: items (id, key, site, category, title,\n"
        "published_at, excerpt, tags, seq), next_cursor (base64url; null at the end),\n"
        "total (with --total), served_by and applied_seq. Exit 0 on success (also\n"
        "when nothing matches), 2 on usage or connection errors.",
        opts, sizeof opts / sizeof *opts, argc, argv, &pos);
    if (rc)
        return rc == CLI_HELP_SHOWN ? CLI_EXIT_OK : rc;
    bulletin_list_request req = {0};
    void *cursor = NULL;
    int exit_code = CLI_EXIT_USAGE;
    bulletin_client *c = NULL;
    if (pos.n) {
        fprintf(stderr, "bulletin list: unexpected argument '%s' (see bulletin list --help)\n",
                pos.v[0]);
        goto done;
    }
    if (limit != CLI_INT_UNSET && (limit < 1 || limit > 1000)) {
        fprintf(stderr, "bulletin list: --limit must be 1..1000 (got %lld)\n", limit);
        goto done;
    }
    if (cli_read_args_apply("list", &ra, &req.filter, &req.min_seq, &cursor, &req.cursor_len))
        goto done;
    req.order = oldest ? BULLETIN_OLDEST_FIRST : BULLETIN_NEWEST_FIRST;
    req.limit = limit != CLI_INT_UNSET ? (uint32_t)limit : all ? CLI_ALL_PAGE : 0;
    req.cursor = cursor;
    req.with_total = total;
    if (!(c = cli_client(g, "list")))
        goto done;

    exit_code = CLI_EXIT_OK;
    size_t shown = 0;
    bool header = false, has_total = false;
    uint64_t total_count = 0;
    for (;;) {
        bulletin_list_page *p = NULL;
        bulletin_status st = bulletin_list(c, &req, &p);
        if (st != BULLETIN_OK) {
            fprintf(stderr, "bulletin list: %s: %s\n", bulletin_status_name(st),
                    bulletin_client_last_error(c));
            exit_code = CLI_EXIT_USAGE;
            break;
        }
        if (json) {
            if (cli_print_json(cli_json_list_page(p)) != 0)
                exit_code = CLI_EXIT_USAGE;
        } else {
            if (!header && p->count) {
                cli_table_header(stdout);
                header = true;
            }
            for (size_t i = 0; i < p->count; i++)
                cli_table_row(stdout, &p->items[i]);
        }
        shown += p->count;
        bool more = p->next_cursor_len > 0;
        if (more && (p->count == 0 ||
                     (req.cursor_len == p->next_cursor_len &&
                      !memcmp(req.cursor, p->next_cursor, p->next_cursor_len)))) {
            fprintf(stderr, "bulletin list: the service answered %s; stopping here rather than "
                            "asking again for ever\n",
                    p->count ? "the same cursor it was given" : "an empty page with a cursor");
            bulletin_list_page_free(&p);
            exit_code = CLI_EXIT_USAGE;
            break;
        }
        if (p->has_total) {
            has_total = true;
            total_count = p->total;
        }
        if (!json) {
            if (!more || !all) {
                if (!shown)
                    printf("no articles\n");
                if (has_total)
                    printf("%" PRIu64 " article%s match%s\n", total_count,
                           total_count == 1 ? "" : "s", total_count == 1 ? "es" : "");
                if (more) {
                    char *t = cli_cursor_encode(p->next_cursor, p->next_cursor_len);
                    printf("more: --cursor %s\n", t ? t : "(out of memory)");
                    free(t);
                }
            }
        }
        if (!more || !all) {
            bulletin_list_page_free(&p);
            break;
        }
        /* the next page: take over this page's cursor */
        free(cursor);
        cursor = p->next_cursor;
        req.cursor = cursor;
        req.cursor_len = p->next_cursor_len;
        p->next_cursor = NULL;
        p->next_cursor_len = 0;
        req.with_total = 0; /* counted once is enough */
        bulletin_list_page_free(&p);
        fflush(stdout);
    }
done:
    bulletin_client_destroy(&c);
    free(cursor);
    cli_list_free(&pos);
    return exit_code;
}
