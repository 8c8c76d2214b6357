/*
 * http.h: the HTTP face of `hark serve`: the routes of the upload service
 * (upload, schedule, history, results, media), the OpenAI-compatible /v1
 * routes, /health and /metrics, on libmicrohttpd with a thread per
 * connection, within limits on connections and idle time. The routes and
 * their JSON are described in the README.
 */
#ifndef HARK_HTTP_H
#define HARK_HTTP_H

#include <stdint.h>

struct store;
struct queue;

struct http_config {
    const char *host;          /* address to bind: "127.0.0.1", "0.0.0.0", "::1", a name */
    int port;                  /* 0: a free port, see http_port() */
    const char *data_dir;      /* media in <data_dir>/db, uploads in flight in <data_dir>/tmp */
    const char *models_dir;
    const char *default_model; /* may be "" when the models folder is empty */
    int64_t max_upload_bytes;
    const char *api_key;       /* NULL or "": no key needed */
    /* Connections: each open one holds a thread (see server.c). Beyond
     * max_connections, or max_connections_per_ip from one address, a new
     * connection is closed as soon as it is accepted, without an answer.
     * A connection with no bytes moving either way for idle_timeout_s is
     * closed; a route that takes longer to answer is not cut off. */
    unsigned max_connections;        /* at least 1 */
    unsigned max_connections_per_ip; /* 0: no limit */
    unsigned idle_timeout_s;         /* 0: never */
    /* Callbacks (POST /model "callback_url"): the hosts they may go to,
     * "host" or "host:port" comma-separated (NULL or "": none), and the key
     * that signs them (NULL or "": <data_dir>/callback-secret, made when
     * missing). */
    const char *callback_allow;
    const char *callback_secret;
};

struct http_server;

/* Binds and starts serving. The store and queue must outlive the server.
 * Returns 0, or a negative HARK_E* code with a line in err. */
int http_start(const struct http_config *cfg, struct store *store, struct queue *queue,
               struct http_server **out, char *err, size_t errlen);

/* The port the server listens on. */
int http_port(const struct http_server *srv);

/* Stops accepting, finishes or aborts the connections in flight, frees. */
void http_stop(struct http_server *srv);

#endif
