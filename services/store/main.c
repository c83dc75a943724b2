/* bulletin-store: parses the configuration and runs store_server_run (or a
 * hot backup with --backup). Everything else lives in the library. */
#include "config.h"
#include "log.h"
#include "store_db.h"
#include "store_server.h"

#include <stdio.h>

int main(int argc, char **argv)
{
    static const char *data, *bind, *feed, *backup, *http;
    static long long map_size, max_msg, heartbeat_ms;
    static const cfg_option opts[] = {
        {"data", "BULLETIN_DATA", CFG_STR_NONEMPTY, "./data/store", "LMDB environment directory", &data},
        {"bind", "BULLETIN_STORE_BIND", CFG_STR_NONEMPTY, "tcp://*:5557", "API endpoint (ROUTER)", &bind},
        {"feed", "BULLETIN_STORE_FEED", CFG_STR_NONEMPTY, "tcp://*:5558",
         "change feed endpoint (PUB)", &feed},
        {"map-size", "BULLETIN_MAP_SIZE", CFG_INT, "1073741824",
         "initial LMDB map size in bytes (grows by itself)", &map_size},
        {"max-msg", "BULLETIN_MAX_MSG", CFG_INT, "16777216",
         "largest accepted request frame in bytes (ZMQ_MAXMSGSIZE)", &max_msg},
        {"heartbeat-ms", "BULLETIN_HEARTBEAT_MS", CFG_INT, "1000",
         "feed heartbeat period in milliseconds", &heartbeat_ms},
        {"http", "BULLETIN_STORE_HTTP", CFG_STR, ":9557",
         "HTTP /healthz and Prometheus /metrics address (host:port or :port; \"\" or off = off)",
         &http},
        {"backup", NULL, CFG_STR_NONEMPTY, NULL,
         "copy the database in --data to this directory (compacted, safe while the "
         "store runs) and exit",
         &backup},
    };
    switch (cfg_parse("bulletin-store",
                      "The system of record: stores articles in LMDB, commits writes in "
                      "groups, assigns sequence numbers, publishes the change feed.\n\n" CFG_EXIT_STATUS,
                      opts, sizeof opts / sizeof opts[0], argc, argv)) {
    case CFG_HELP:
        return 0;
    case CFG_ERROR:
        return 2;
    }
    log_init("store");
    store_server_config cfg = {.data_dir = data, .bind = bind, .feed = feed,
                               .map_size = map_size, .max_msg = max_msg,
                               .heartbeat_ms = heartbeat_ms, .http = http};
    char err[640];
    if (store_server_config_check(&cfg, err, sizeof err) < 0) {
        fprintf(stderr, "bulletin-store: %s\n", err);
        return 2;
    }
    if (backup) {
        char err[1024];
        if (store_db_backup(data, backup, err, sizeof err) < 0) {
            log_error("store.backup", "data=%s dest=%s error=\"%s\"", data, backup, err);
            return 1;
        }
        log_info("store.backup", "data=%s dest=%s ok=1", data, backup);
        return 0;
    }
    return store_server_run(&cfg);
}
