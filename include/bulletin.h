/**
 * @file bulletin.h
 * @brief libbulletin: the client API of Bulletin, the article store.
 *
 * Bulletin stores articles scraped from news, bulletin and joke-collection
 * websites. This header is the whole public client API: every symbol starts
 * with `bulletin_`, and no ZeroMQ or protobuf type appears in it.
 *
 * A minimal program:
 * @code
 *   bulletin_options o;
 *   bulletin_options_init(&o);
 *   o.ingest_endpoint = "tcp://127.0.0.1:5555";
 *   bulletin_client *c = bulletin_client_new(&o);
 *   bulletin_ingest_item it = { .kind = BULLETIN_ITEM_ARTICLE };
 *   it.article.site = "example.org"; it.article.title = "Hello"; it.article.body = "...";
 *   bulletin_ingest_result *res;
 *   if (bulletin_ingest(c, &it, 1, &res, NULL) == BULLETIN_OK) {
 *       printf("%s id=%llu\n", bulletin_write_status_name(res[0].status),
 *              (unsigned long long)res[0].id);
 *       bulletin_ingest_results_free(&res, 1);
 *   } else {
 *       fprintf(stderr, "%s\n", bulletin_client_last_error(c));
 *   }
 *   bulletin_client_destroy(&c);
 * @endcode
 *
 * Transport: each call sends one request to one service and waits for its
 * reply, at most `timeout_ms` per attempt. When no reply comes the socket is
 * closed and reopened and the request is sent again, up to `retries` more
 * times (the "Lazy Pirate" pattern; every write is idempotent, so a retry
 * never duplicates an article), then the call gives up with
 * ::BULLETIN_UNAVAILABLE. A late reply to an earlier attempt is recognised by
 * its request id and discarded. Each request carries a deadline for the
 * service shorter than the attempt by a tenth of `timeout_ms`, at least
 * 100 ms and at most half of it (5000 ms: the service has 4500 ms), so that a
 * service that cannot finish in time answers ::BULLETIN_DEADLINE_EXCEEDED
 * while the client still listens, also on a loaded machine.
 *
 * Threads: a ::bulletin_client is not thread-safe. Use one client per
 * thread (clients are independent: each has its own ZeroMQ context and
 * sockets). The library never prints, never exits and never raises signals.
 *
 * Memory: every structure returned by the library is owned by the caller
 * and freed with the matching `bulletin_*_free` function, which takes the
 * address of the pointer and sets it to NULL (safe to call twice). Structures
 * the caller passes in are only read during the call.
 */
#ifndef BULLETIN_H
#define BULLETIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @brief Status codes: the numbers and meanings of bulletin.proto's
 *  StatusCode (the gRPC codes). */
typedef enum bulletin_status {
    BULLETIN_OK = 0,                  /**< success */
    BULLETIN_CANCELLED = 1,           /**< the operation was cancelled */
    BULLETIN_UNKNOWN = 2,             /**< an error the service could not classify */
    BULLETIN_INVALID_ARGUMENT = 3,    /**< the request is malformed or a field is out of range */
    BULLETIN_DEADLINE_EXCEEDED = 4,   /**< no answer within the request's deadline */
    BULLETIN_NOT_FOUND = 5,           /**< no such article */
    BULLETIN_ALREADY_EXISTS = 6,      /**< the thing already exists */
    BULLETIN_PERMISSION_DENIED = 7,   /**< the client may not do this */
    BULLETIN_RESOURCE_EXHAUSTED = 8,  /**< too large, too many, out of space or memory */
    BULLETIN_FAILED_PRECONDITION = 9, /**< e.g. unsupported protocol major version */
    BULLETIN_ABORTED = 10,            /**< aborted, e.g. a conflict */
    BULLETIN_OUT_OF_RANGE = 11,       /**< a value past the valid range */
    BULLETIN_UNIMPLEMENTED = 12,      /**< the service does not answer this request type */
    BULLETIN_INTERNAL = 13,           /**< a bug or storage failure; see the service's log */
    BULLETIN_UNAVAILABLE = 14,        /**< the service did not answer (after retries); retry later */
    BULLETIN_DATA_LOSS = 15,          /**< unrecoverable data loss or corruption */
    BULLETIN_UNAUTHENTICATED = 16     /**< the client's identity was not accepted */
} bulletin_status;

/**
 * @brief The name of a status code, as spelled in bulletin.proto.
 * @param[in] s a status code.
 * @return a static string such as "OK" or "NOT_FOUND"; "UNKNOWN" for a number
 *         outside the enum. Never NULL.
 * @note Thread-safe.
 */
const char *bulletin_status_name(bulletin_status s);

/** @brief The services a client talks to. */
typedef enum bulletin_service {
    BULLETIN_SERVICE_INGEST = 0, /**< bulletin-ingest: writes */
    BULLETIN_SERVICE_QUERY = 1,  /**< bulletin-query: reads (list, search, get) */
    BULLETIN_SERVICE_STORE = 2   /**< bulletin-store: the system of record */
} bulletin_service;

/**
 * @brief The lower-case name of a service ("ingest", "query", "store").
 * @param[in] s a service.
 * @return a static string; "?" for a value outside the enum.
 * @note Thread-safe.
 */
const char *bulletin_service_name(bulletin_service s);

/** @brief Options of a client. Initialise with bulletin_options_init(). */
typedef struct bulletin_options {
    const char *ingest_endpoint; /**< e.g. "tcp://127.0.0.1:5555"; NULL = no ingest */
    const char *query_endpoint;  /**< e.g. "tcp://127.0.0.1:5556"; NULL = no query tier */
    const char *store_endpoint;  /**< e.g. "tcp://127.0.0.1:5557"; NULL = no store */
    int timeout_ms;              /**< per attempt; <= 0 means the default, 5000 */
    int retries;                 /**< extra attempts after a timeout; < 0 means the default, 2 */
} bulletin_options;

/**
 * @brief Fill @p o with the defaults: no endpoints, timeout 5000 ms, 2 retries.
 * @param[out] o the options to initialise.
 * @note Thread-safe.
 */
void bulletin_options_init(bulletin_options *o);

/** @brief A client: an opaque handle owning a ZeroMQ context and one socket
 *  per configured service. */
typedef struct bulletin_client bulletin_client;

/**
 * @brief Create a client. No connection is made until the first call.
 * @param[in] opts options (copied; the strings too). NULL = all defaults,
 *            which gives a client with no endpoint (every call then fails
 *            with ::BULLETIN_FAILED_PRECONDITION).
 * @return a new client, owned by the caller (free with
 *         bulletin_client_destroy()), or NULL when out of memory, when
 *         ZeroMQ cannot create a context, or when an endpoint is not a
 *         ZeroMQ endpoint ("transport://address").
 * @note Thread-safe; the client itself must be used by one thread at a time.
 */
bulletin_client *bulletin_client_new(const bulletin_options *opts);

/**
 * @brief Close the client's sockets and context, free it and set *c to NULL.
 * @param[in,out] c the client; NULL or *c == NULL is a no-op (safe twice).
 * @note Returns promptly: sockets have a short linger.
 */
void bulletin_client_destroy(bulletin_client **c);

/**
 * @brief The last error sentence of this client: the server's Status.message,
 *        or a local explanation (timeout, bad argument, ...).
 * @param[in] c the client (NULL gives a fixed sentence).
 * @return a string owned by the client, valid until its next call; "" after a
 *         successful call. Never NULL.
 */
const char *bulletin_client_last_error(const bulletin_client *c);

/**
 * @brief Which process answered this client's last successful call, and the
 *        seq it had applied then (the Reply's served_by and applied_seq).
 *
 * For reads through the query tier this is the worker that served the read;
 * for the store its instance and last committed seq.
 * @param[in] c the client (NULL gives "").
 * @param[out] applied_seq if not NULL, that process's applied seq (0 when
 *             unknown or after a failed call).
 * @return a string owned by the client, valid until its next call; "" when
 *         the service did not say or the last call failed. Never NULL.
 */
const char *bulletin_client_served_by(const bulletin_client *c, uint64_t *applied_seq);

/* ------------------------------------------------------------------------ */
/* Articles                                                                  */

/**
 * @brief An article. Strings are UTF-8; NULL means absent.
 *
 * As input (bulletin_ingest()), the caller owns every pointer and id, seq,
 * ingested_at and updated_at are ignored (the store assigns them). As output
 * (bulletin_get()) the library owns the whole structure: free it with
 * bulletin_article_free().
 */
typedef struct bulletin_article {
    uint64_t id;              /**< assigned by the store; 0 on input */
    const char *key;          /**< the unique key; NULL on input = derived by ingest */
    const char *site;         /**< e.g. "Joke Collection Website" */
    const char *category;     /**< e.g. "Bulletin headlines" */
    const char *title;
    const char *body;
    const char **tags;        /**< tag_count strings */
    size_t tag_count;
    const char *author;
    const char *lang;         /**< BCP 47 ("en", "zh") or NULL */
    const char *url;          /**< canonical URL; becomes the key when key is NULL */
    const char *raw;          /**< the original raw text, for articles made from raw documents */
    int64_t published_at;     /**< Unix ms; 0 = absent */
    int64_t ingested_at;      /**< Unix ms, first time the store saw this key (output only) */
    int64_t updated_at;       /**< Unix ms, last content change (output only) */
    uint64_t seq;             /**< the change that wrote this version (output only) */
} bulletin_article;

/**
 * @brief Free an article returned by the library and set *a to NULL.
 * @param[in,out] a the article; NULL or *a == NULL is a no-op.
 * @note Only for articles made by the library, never for caller-built ones.
 */
void bulletin_article_free(bulletin_article **a);

/** @brief A raw scraped page: "Site - Category - Title", a blank line, the
 *  title again, then the body. Ingest extracts the article from it.
 *  Strings owned by the caller; NULL = absent. */
typedef struct bulletin_raw_document {
    const char *text;         /**< the page as scraped, UTF-8 (required) */
    const char *url;          /**< where it came from (becomes the key) */
    const char *key;          /**< explicit key */
    const char **tags;        /**< tag_count strings */
    size_t tag_count;
    int64_t published_at;     /**< Unix ms; 0 = absent */
    const char *lang;
} bulletin_raw_document;

/** @brief What an ingest item carries. */
typedef enum bulletin_item_kind {
    BULLETIN_ITEM_ARTICLE = 1, /**< a structured article (field `article`) */
    BULLETIN_ITEM_RAW = 2      /**< a raw document (field `raw`) */
} bulletin_item_kind;

/** @brief One item of an ingest request: an article or a raw document,
 *  chosen by `kind` (the other member is ignored). */
typedef struct bulletin_ingest_item {
    bulletin_item_kind kind;
    bulletin_article article;
    bulletin_raw_document raw;
} bulletin_ingest_item;

/** @brief The outcome of one written item (bulletin.proto's WriteStatus). */
typedef enum bulletin_write_status {
    BULLETIN_WRITE_UNSPECIFIED = 0, /**< the service did not say (a protocol error) */
    BULLETIN_WRITE_CREATED = 1,     /**< a new article */
    BULLETIN_WRITE_UPDATED = 2,     /**< an existing key got new content */
    BULLETIN_WRITE_UNCHANGED = 3,   /**< identical content was already stored; no new seq */
    BULLETIN_WRITE_DELETED = 4,     /**< the article was deleted */
    BULLETIN_WRITE_REJECTED = 5     /**< nothing was written; see `error` */
} bulletin_write_status;

/**
 * @brief The lower-case name of a write status ("created", "rejected", ...).
 * @param[in] s a write status.
 * @return a static string; "unspecified" for values outside the enum.
 * @note Thread-safe.
 */
const char *bulletin_write_status_name(bulletin_write_status s);

/** @brief The result of one item of bulletin_ingest() or of bulletin_delete().
 *  Owned by the library's caller; free with bulletin_ingest_results_free(). */
typedef struct bulletin_ingest_result {
    const char *key;          /**< the article's key (derived by ingest when not given); may be NULL */
    uint64_t id;              /**< the article id; 0 when rejected */
    uint64_t seq;             /**< the seq that made it durable (pass as min_seq to reads) */
    bulletin_write_status status;
    const char *error;        /**< why it was rejected; NULL otherwise */
    const char **warnings;    /**< warning_count sentences (e.g. encoding damage) */
    size_t warning_count;
} bulletin_ingest_result;

/**
 * @brief Write articles and raw documents through the ingest service.
 *
 * Writing an article whose key exists is an upsert; writing identical
 * content again reports ::BULLETIN_WRITE_UNCHANGED. Sent as one request.
 *
 * @param[in] c the client (needs an ingest endpoint).
 * @param[in] items @p n items; only read during the call.
 * @param[in] n number of items, 1..10000.
 * @param[out] out on ::BULLETIN_OK, an array of @p n results, one per item in
 *             order; the caller owns it: free with
 *             bulletin_ingest_results_free(out, n). NULL on error.
 * @param[out] max_seq if not NULL, the highest seq in the results (pass it as
 *             min_seq to reads to read your own writes).
 * @return ::BULLETIN_OK (check each result's status: an item can be rejected
 *         while the call succeeds); ::BULLETIN_INVALID_ARGUMENT (n out of range,
 *         NULL arguments, an item of unknown kind, or refused by the service);
 *         ::BULLETIN_FAILED_PRECONDITION (no ingest endpoint);
 *         ::BULLETIN_UNAVAILABLE (no answer after all attempts);
 *         ::BULLETIN_RESOURCE_EXHAUSTED (out of memory, or too large for the
 *         service); ::BULLETIN_INTERNAL (the reply did not match the request),
 *         or any status the service answers with.
 * @note The message of a failure is in bulletin_client_last_error().
 */
bulletin_status bulletin_ingest(bulletin_client *c, const bulletin_ingest_item *items, size_t n,
                                bulletin_ingest_result **out, uint64_t *max_seq);

/**
 * @brief Free an array of results and set *results to NULL.
 * @param[in,out] results the array from bulletin_ingest() or bulletin_delete();
 *                NULL or *results == NULL is a no-op.
 * @param[in] n the number of results in the array.
 */
void bulletin_ingest_results_free(bulletin_ingest_result **results, size_t n);

/** @brief Flags of read calls. */
enum {
    /** Read from the store (the system of record) instead of the query tier.
     *  The store is also used when the client has no query endpoint. */
    BULLETIN_READ_FROM_STORE = 1
};

/**
 * @brief Get one article by id or by key.
 * @param[in] c the client.
 * @param[in] id the article id, or 0 to look up by @p key.
 * @param[in] key the article key when @p id is 0 (NULL otherwise).
 * @param[in] min_seq 0, or a seq the answering replica must have applied
 *            (read-your-writes; the store has always applied its own seqs).
 * @param[in] flags 0 or ::BULLETIN_READ_FROM_STORE.
 * @param[out] out on ::BULLETIN_OK, the article; the caller owns it: free
 *             with bulletin_article_free(). NULL on error.
 * @return ::BULLETIN_OK; ::BULLETIN_NOT_FOUND; ::BULLETIN_INVALID_ARGUMENT
 *         (neither or both of id and key, NULL out);
 *         ::BULLETIN_FAILED_PRECONDITION (no endpoint for the chosen service);
 *         ::BULLETIN_UNAVAILABLE; ::BULLETIN_DEADLINE_EXCEEDED (no replica
 *         reached @p min_seq in time); ::BULLETIN_RESOURCE_EXHAUSTED;
 *         ::BULLETIN_INTERNAL, or any status the service answers with.
 */
bulletin_status bulletin_get(bulletin_client *c, uint64_t id, const char *key, uint64_t min_seq,
                             unsigned flags, bulletin_article **out);

/**
 * @brief Delete one article by id or by key, through the ingest service.
 *        The store keeps a tombstone so that replicas learn of it.
 * @param[in] c the client (needs an ingest endpoint).
 * @param[in] id the article id, or 0 to delete by @p key.
 * @param[in] key the article key when @p id is 0 (NULL otherwise).
 * @param[out] out if not NULL, on ::BULLETIN_OK, one result (status
 *             ::BULLETIN_WRITE_DELETED, and the seq of the deletion); the
 *             caller owns it: free with bulletin_ingest_results_free(out, 1).
 * @return ::BULLETIN_OK; ::BULLETIN_NOT_FOUND (no such article);
 *         ::BULLETIN_INVALID_ARGUMENT; ::BULLETIN_FAILED_PRECONDITION;
 *         ::BULLETIN_UNAVAILABLE; ::BULLETIN_RESOURCE_EXHAUSTED;
 *         ::BULLETIN_INTERNAL, or any status the service answers with.
 */
bulletin_status bulletin_delete(bulletin_client *c, uint64_t id, const char *key,
                                bulletin_ingest_result **out);

/* ------------------------------------------------------------------------ */
/* Reads from the query tier: list and search                                */

/** @brief Filters shared by list and search. NULL / 0 = no constraint. */
typedef struct bulletin_filter {
    const char *site;
    const char *category;
    const char *tag;
    int64_t since;  /**< published_at >= since (Unix ms); 0 = unbounded */
    int64_t until;  /**< published_at < until (Unix ms); 0 = unbounded */
} bulletin_filter;

/** @brief Order of a list. */
typedef enum bulletin_order {
    BULLETIN_NEWEST_FIRST = 0, /**< published_at descending, ties by id descending */
    BULLETIN_OLDEST_FIRST = 1  /**< published_at ascending, ties by id ascending */
} bulletin_order;

/** @brief A list request. Zero-initialise, then set what you need. */
typedef struct bulletin_list_request {
    bulletin_filter filter;
    bulletin_order order;
    uint32_t limit;          /**< 1..1000; 0 = the service's default (20) */
    const void *cursor;      /**< NULL, or next_cursor of the previous page */
    size_t cursor_len;
    int with_total;          /**< nonzero: count all matches (costs more) */
    uint64_t min_seq;        /**< 0, or a seq the answering replica must have applied */
} bulletin_list_request;

/** @brief One listed article (no body: see excerpt). */
typedef struct bulletin_summary {
    uint64_t id;
    const char *key, *site, *category, *title;
    int64_t published_at;    /**< Unix ms; 0 = absent */
    const char *excerpt;     /**< the first ~200 characters of the body */
    const char **tags;
    size_t tag_count;
    uint64_t seq;
} bulletin_summary;

/** @brief One page of a list. Library-owned: free with bulletin_list_page_free(). */
typedef struct bulletin_list_page {
    bulletin_summary *items;
    size_t count;
    void *next_cursor;       /**< pass as cursor for the next page; NULL at the end */
    size_t next_cursor_len;
    uint64_t total;          /**< valid when has_total */
    int has_total;
    const char *served_by;   /**< the worker that answered; NULL when it did not say */
    uint64_t applied_seq;    /**< that worker's applied seq when it answered */
} bulletin_list_page;

/**
 * @brief List articles matching filters, a page at a time (query tier).
 * @param[in] c the client (needs a query endpoint).
 * @param[in] req the request; only read during the call.
 * @param[out] out on ::BULLETIN_OK, the page; the caller owns it: free with
 *             bulletin_list_page_free(). NULL on error.
 * @return ::BULLETIN_OK; ::BULLETIN_INVALID_ARGUMENT (NULL arguments, limit
 *         over 1000, or refused by the service); ::BULLETIN_FAILED_PRECONDITION
 *         (no query endpoint); ::BULLETIN_UNAVAILABLE;
 *         ::BULLETIN_DEADLINE_EXCEEDED (no replica reached min_seq in time);
 *         ::BULLETIN_RESOURCE_EXHAUSTED; ::BULLETIN_INTERNAL, or any status the
 *         service answers with.
 */
bulletin_status bulletin_list(bulletin_client *c, const bulletin_list_request *req,
                              bulletin_list_page **out);

/**
 * @brief Free a page and set *p to NULL.
 * @param[in,out] p NULL or *p == NULL is a no-op.
 */
void bulletin_list_page_free(bulletin_list_page **p);

/**
 * @brief Wait until the query tier can read what a write made durable
 *        (read-your-writes after bulletin_ingest() or bulletin_delete()).
 *
 * Sends a one-item List with `min_seq` = @p min_seq, which the broker
 * answers only from a worker that has applied that seq, and repeats it
 * (after ::BULLETIN_DEADLINE_EXCEEDED or ::BULLETIN_UNAVAILABLE) until one
 * succeeds or @p timeout_ms has passed. Each attempt waits at most the
 * client's timeout_ms, and no longer than what is left of @p timeout_ms.
 *
 * @param[in] c the client (needs a query endpoint).
 * @param[in] min_seq the seq to wait for (max_seq of bulletin_ingest());
 *            0 returns ::BULLETIN_OK at once.
 * @param[in] timeout_ms the whole wait, > 0.
 * @param[out] served_by_seq if not NULL, on ::BULLETIN_OK the applied seq of
 *             the worker that answered (>= @p min_seq); its name is in
 *             bulletin_client_served_by().
 * @return ::BULLETIN_OK (readable); ::BULLETIN_DEADLINE_EXCEEDED (no worker
 *         reached @p min_seq in time); ::BULLETIN_UNAVAILABLE (the query tier
 *         did not answer in time); ::BULLETIN_INVALID_ARGUMENT (timeout_ms <= 0);
 *         ::BULLETIN_FAILED_PRECONDITION (no query endpoint), or any other
 *         status the service answers with (not retried).
 */
bulletin_status bulletin_wait_readable(bulletin_client *c, uint64_t min_seq, int timeout_ms,
                                       uint64_t *served_by_seq);

/** @brief A search request. Zero-initialise, then set what you need. */
typedef struct bulletin_search_request {
    const char *query;       /**< search-box syntax: words, "phrase", -not, a OR b, pre*, title:, site:, ... */
    bulletin_filter filter;
    uint32_t limit;          /**< 1..1000; 0 = the service's default (10) */
    uint32_t offset;
    const void *cursor;      /**< NULL, or next_cursor of the previous answer (instead of offset) */
    size_t cursor_len;
    int facets;              /**< nonzero: count matches per category and site */
    const char *mark_open;   /**< snippet markers; NULL = the default "«" */
    const char *mark_close;  /**< NULL = the default "»" */
    uint64_t min_seq;        /**< 0, or a seq the answering replica must have applied */
} bulletin_search_request;

/** @brief One search hit. */
typedef struct bulletin_hit {
    uint64_t id;
    const char *key, *site, *category, *title;
    int64_t published_at;
    double score;            /**< BM25 with title boost; higher is better */
    const char *snippet;     /**< body around the best match, matches marked */
} bulletin_hit;

/** @brief A facet: how many matches have this category or site. */
typedef struct bulletin_facet {
    const char *value;
    uint64_t count;
} bulletin_facet;

/** @brief A search answer. Library-owned: free with bulletin_search_result_free(). */
typedef struct bulletin_search_result {
    bulletin_hit *hits;
    size_t hit_count;
    uint64_t total;          /**< exact number of matching articles */
    void *next_cursor;       /**< NULL at the end */
    size_t next_cursor_len;
    bulletin_facet *categories;
    size_t category_count;
    bulletin_facet *sites;
    size_t site_count;
    uint64_t took_us;        /**< time the replica spent */
    const char *served_by;   /**< the worker that answered; NULL when it did not say */
    uint64_t applied_seq;    /**< that worker's applied seq when it answered */
} bulletin_search_result;

/**
 * @brief Search articles (query tier).
 * @param[in] c the client (needs a query endpoint).
 * @param[in] req the request (query must not be NULL); only read during the call.
 * @param[out] out on ::BULLETIN_OK, the answer; the caller owns it: free with
 *             bulletin_search_result_free(). NULL on error.
 * @return ::BULLETIN_OK; ::BULLETIN_INVALID_ARGUMENT (NULL arguments, limit
 *         over 1000, or a query the service refuses); ::BULLETIN_FAILED_PRECONDITION
 *         (no query endpoint); ::BULLETIN_UNAVAILABLE; ::BULLETIN_DEADLINE_EXCEEDED;
 *         ::BULLETIN_RESOURCE_EXHAUSTED; ::BULLETIN_INTERNAL, or any status the
 *         service answers with.
 */
bulletin_status bulletin_search(bulletin_client *c, const bulletin_search_request *req,
                                bulletin_search_result **out);

/**
 * @brief Free a search answer and set *r to NULL.
 * @param[in,out] r NULL or *r == NULL is a no-op.
 */
void bulletin_search_result_free(bulletin_search_result **r);

/* ------------------------------------------------------------------------ */
/* Operations                                                                */

/** @brief One metric of a service. */
typedef struct bulletin_metric {
    const char *name;  /**< e.g. "articles", "last_seq", "commits" */
    double value;
    const char *help;  /**< a sentence, or NULL */
} bulletin_metric;

/** @brief The metrics of one service process. */
typedef struct bulletin_stats {
    const char *service;       /**< "store", "ingest", ... */
    const char *instance;      /**< host:pid or worker id */
    bulletin_metric *metrics;  /**< metric_count metrics */
    size_t metric_count;
} bulletin_stats;

/**
 * @brief Ask a service for its metrics.
 * @param[in] c the client.
 * @param[in] svc which service to ask.
 * @param[out] out on ::BULLETIN_OK, the metrics; the caller owns them: free
 *             with bulletin_stats_free(). NULL on error.
 * @return ::BULLETIN_OK; ::BULLETIN_INVALID_ARGUMENT (bad svc, NULL out);
 *         ::BULLETIN_FAILED_PRECONDITION (no endpoint for svc);
 *         ::BULLETIN_UNAVAILABLE; ::BULLETIN_RESOURCE_EXHAUSTED;
 *         ::BULLETIN_INTERNAL, or any status the service answers with.
 */
bulletin_status bulletin_stats_get(bulletin_client *c, bulletin_service svc, bulletin_stats **out);

/**
 * @brief Free metrics and set *s to NULL.
 * @param[in,out] s NULL or *s == NULL is a no-op.
 */
void bulletin_stats_free(bulletin_stats **s);

/** @brief The health of one service process. */
typedef struct bulletin_health {
    int ok;                  /**< 1 healthy, 0 not */
    const char *service;     /**< "store", "ingest", ... */
    const char *instance;    /**< host:pid or worker id */
    const char *detail;      /**< why not ok, or what is degraded; may be NULL */
    uint64_t applied_seq;    /**< store: last committed seq; worker: last applied seq */
} bulletin_health;

/**
 * @brief Ask a service whether it is healthy.
 * @param[in] c the client.
 * @param[in] svc which service to ask.
 * @param[out] out on ::BULLETIN_OK, the answer (look at out->ok); the caller
 *             owns it: free with bulletin_health_free(). NULL on error.
 * @return ::BULLETIN_OK when the service answered (healthy or not);
 *         ::BULLETIN_INVALID_ARGUMENT; ::BULLETIN_FAILED_PRECONDITION;
 *         ::BULLETIN_UNAVAILABLE (no answer: certainly not healthy);
 *         ::BULLETIN_RESOURCE_EXHAUSTED; ::BULLETIN_INTERNAL, or any status
 *         the service answers with.
 */
bulletin_status bulletin_health_get(bulletin_client *c, bulletin_service svc,
                                    bulletin_health **out);

/**
 * @brief Free a health answer and set *h to NULL.
 * @param[in,out] h NULL or *h == NULL is a no-op.
 */
void bulletin_health_free(bulletin_health **h);

#ifdef __cplusplus
}
#endif

#endif /* BULLETIN_H */
