/* bulletin-ingest: flags and environment -> ingest_server_run. */
#include "config.h"
#include "ingest_server.h"
#include "log.h"

#include <stdio.h>

int main(int argc, char **argv)
{
    ingest_server_cfg cfg;
    ingest_server_cfg_defaults(&cfg);
    const char *bind = NULL, *store = NULL, *http = NULL;
    long long deadline = 0, max_request = 0, max_items = 0, max_inflight = 0;
    const cfg_option opts[] = {
        {"bind", "BULLETIN_INGEST_BIND", CFG_STR_NONEMPTY, "tcp://*:5555",
         "endpoint where clients connect (ROUTER)", &bind},
        {"store", "BULLETIN_STORE", CFG_STR_NONEMPTY, "tcp://127.0.0.1:5557",
         "the store's API endpoint (ingest connects a DEALER)", &store},
        {"deadline-ms", "BULLETIN_DEADLINE_MS", CFG_INT, "5000",
         "how long to wait for the store before answering UNAVAILABLE (a smaller "
         "Request.deadline_ms wins)", &deadline},
        {"max-request", "BULLETIN_MAX_REQUEST", CFG_INT, "16777216",
         "largest client request in bytes (ZMQ_MAXMSGSIZE: bigger ones are refused by the socket)",
         &max_request},
        {"max-items", "BULLETIN_MAX_ITEMS", CFG_INT, "10000",
         "most items in one IngestRequest", &max_items},
        {"max-inflight", "BULLETIN_INGEST_MAX_INFLIGHT", CFG_INT, "4096",
         "most client requests waiting for the store at once (more get RESOURCE_EXHAUSTED)",
         &max_inflight},
        {"http", "BULLETIN_INGEST_HTTP", CFG_STR, ":9555",
         "HTTP /healthz and Prometheus /metrics address (host:port or :port; \"\" or off = off)",
         &http},
    };
    int rc = cfg_parse("bulletin-ingest",
                       "The front door for writes: validates, normalizes and extracts articles, "
                       "derives their keys and forwards them to the store.\n\n" CFG_EXIT_STATUS,
                       opts, sizeof opts / sizeof opts[0], argc, argv);
    if (rc == CFG_HELP)
        return 0;
    if (rc != CFG_OK)
        return 2;
    log_init("ingest");
    cfg.bind = bind;
    cfg.store = store;
    cfg.deadline_ms = deadline;
    cfg.max_request = max_request;
    cfg.max_items = max_items;
    cfg.max_inflight = max_inflight;
    cfg.http = http;
    char err[640];
    if (ingest_server_config_check(&cfg, err, sizeof err) < 0) {
        fprintf(stderr, "bulletin-ingest: %s\n", err);
        return 2;
    }
    return ingest_server_run(&cfg) == 0 ? 0 : 1;
}
