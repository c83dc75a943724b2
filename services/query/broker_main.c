/* bulletin-query: parse flags and environment, run the broker (broker.h). */
#include "broker.h"

#include "config.h"
#include "log.h"
#include "zio.h"

#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    broker_config cfg;
    broker_config_defaults(&cfg);
    const cfg_option opts[] = {
        {"bind", "BULLETIN_QUERY_BIND", CFG_STR_NONEMPTY, "tcp://*:5556", "endpoint(s) for clients (ROUTER), comma-separated: e.g. tcp://*:5556,ipc:///run/bulletin/query.sock (ipc:// costs the broker less CPU per request than TCP for clients on this host)", &cfg.bind},
        {"workers", "BULLETIN_QUERY_WORKERS", CFG_STR_NONEMPTY, "tcp://*:5559", "endpoint(s) for workers (ROUTER), comma-separated: e.g. tcp://*:5559,ipc:///run/bulletin/workers.sock (workers on this host then use --broker ipc://...)", &cfg.workers},
        {"deadline-ms", "BULLETIN_DEADLINE_MS", CFG_INT, "5000", "default per-request deadline; a client may ask for less", &cfg.deadline_ms},
        {"heartbeat-ms", "BULLETIN_QUERY_HEARTBEAT_MS", CFG_INT, "1000", "heartbeat interval with workers, both ways", &cfg.heartbeat_ms},
        {"liveness", "BULLETIN_QUERY_LIVENESS", CFG_INT, "3", "heartbeats a worker may miss before it is dropped", &cfg.liveness},
        {"max-queue", "BULLETIN_QUERY_MAX_QUEUE", CFG_INT, "100000", "requests waiting for a worker before RESOURCE_EXHAUSTED", &cfg.max_queue},
        {"http", "BULLETIN_QUERY_HTTP", CFG_STR, ":9556", "HTTP /healthz and Prometheus /metrics address (host:port or :port; \"\" or off = off)", &cfg.http},
        {"max-msg", "BULLETIN_MAX_MSG", CFG_INT, "16777216", "largest accepted message frame in bytes (0 = no limit, else >= 65536)", &cfg.max_msg},
    };
    switch (cfg_parse("bulletin-query",
                      "The read tier's broker: clients send Get/List/Search here; it forwards each "
                      "request to the least recently used ready worker.\n\n" CFG_EXIT_STATUS,
                      opts, sizeof opts / sizeof opts[0], argc, argv)) {
    case CFG_HELP:
        return 0;
    case CFG_ERROR:
        return 2;
    }
    log_init("query");
    char err[640];
    if (broker_config_check(&cfg, err, sizeof err) < 0) {
        fprintf(stderr, "bulletin-query: %s\n", err);
        return 2;
    }
    cfg.stop_fd = zio_signal_fd();
    if (cfg.stop_fd < 0) {
        log_error("query.start", "error=\"cannot set up signal handling\"");
        return 1;
    }
    int rc = broker_run(&cfg);
    close(cfg.stop_fd);
    return rc == 0 ? 0 : 1;
}
