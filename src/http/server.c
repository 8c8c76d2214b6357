/*
 * server.c: the libmicrohttpd daemon, the router and the response helpers.
 *
 * The daemon runs a thread per connection, so a route may block (a
 * `"wait": true` schedule, a synchronous /v1 transcription, a slow
 * database) without holding up others; with a pool of threads each
 * serving many connections, one blocked route would stall every
 * connection of its thread. An idle or trickling client costs one thread
 * (stack address space, a few pages of memory) and nothing else, and the
 * number of them is bounded by the connection limits of struct
 * http_config. Each thread waits on its socket with poll(), never
 * select(), so descriptors past FD_SETSIZE are served.
 *
 * Paths reach the router exactly as the client sent
 * them (the daemon's own unescaping is switched off); the router splits
 * them at '/' first and percent-decodes each segment after, so an encoded
 * slash or dot can never become a path separator or a parent directory. A
 * segment that decodes to "." or "..", or holds '/', '\\' or NUL, marks the
 * request as a bad path, which every route answers with 404.
 *
 * Each request's state (struct request) lives from the first call of the
 * access handler to the completion callback, which also counts the request
 * for /metrics and removes what a broken-off upload left behind.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <sys/socket.h>

#include "hark.h"
#include "internal.h"
#include "store.h"

#define JSON_BODY_MAX (64 * 1024)
#define DISCARD_MAX ((int64_t)64 << 20)

static const char *const route_names[ROUTE_COUNT] = {
    [ROUTE_NOT_FOUND] = "other",
    [ROUTE_INDEX] = "/",
    [ROUTE_UPLOAD] = "/upload",
    [ROUTE_MODEL] = "/model",
    [ROUTE_UPLOADS] = "/uploads",
    [ROUTE_UPLOAD_ONE] = "/uploads/:id",
    [ROUTE_JOB] = "/jobs/:id",
    [ROUTE_JOB_CANCEL] = "/jobs/:id/cancel",
    [ROUTE_JOB_EVENTS] = "/jobs/:id/events",
    [ROUTE_RESULTS] = "/results/:id",
    [ROUTE_FILE] = "/:id/:file",
    [ROUTE_HEALTH] = "/health",
    [ROUTE_METRICS] = "/metrics",
    [ROUTE_V1_MODELS] = "/v1/models",
    [ROUTE_V1_TRANSCRIPTIONS] = "/v1/audio/transcriptions",
    [ROUTE_V1_TRANSLATIONS] = "/v1/audio/translations",
    [ROUTE_V1_SPEECH] = "/v1/audio/speech-timestamps",
    [ROUTE_UI_ASSET] = "/ui/:file",
    [ROUTE_WHOAMI] = "/whoami",
    [ROUTE_SEARCH] = "/search",
};

const char *route_name(enum route r)
{
    return r >= 0 && r < ROUTE_COUNT ? route_names[r] : "other";
}

/* --------------------------------------------------------------- router */

/* Percent-decodes one path segment into out (len bytes). Returns 0, or -1
 * for a segment that must never name a file: empty, ".", "..", or one that
 * decodes to hold '/', '\\' or NUL, or too long. */
static int decode_segment(const char *seg, size_t seglen, char *out, size_t len)
{
    size_t n;
    if (seglen == 0 || seglen >= len) return -1;
    memcpy(out, seg, seglen);
    out[seglen] = 0;
    n = MHD_http_unescape(out);
    if (n != strlen(out)) return -1;
    if (!strcmp(out, ".") || !strcmp(out, "..")) return -1;
    if (strchr(out, '/') || strchr(out, '\\')) return -1;
    return 0;
}

void route_request(struct request *rq, const char *url)
{
    const char *seg[4];
    size_t seglen[4];
    int n = 0;
    const char *p = url;

    rq->route = ROUTE_NOT_FOUND;
    if (*p != '/') return;
    p++;
    if (!*p) {
        rq->route = ROUTE_INDEX;
        return;
    }
    while (*p) {
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (n == 4) return;
        seg[n] = p;
        seglen[n] = l;
        n++;
        if (!e) break;
        p = e + 1;
        if (!*p) break; /* a trailing slash names the same route */
    }
#define SEG_IS(i, s) (seglen[i] == sizeof(s) - 1 && !memcmp(seg[i], s, sizeof(s) - 1))
    if (n == 1) {
        if (SEG_IS(0, "upload")) rq->route = ROUTE_UPLOAD;
        else if (SEG_IS(0, "model")) rq->route = ROUTE_MODEL;
        else if (SEG_IS(0, "uploads")) rq->route = ROUTE_UPLOADS;
        else if (SEG_IS(0, "health")) rq->route = ROUTE_HEALTH;
        else if (SEG_IS(0, "metrics")) rq->route = ROUTE_METRICS;
        else if (SEG_IS(0, "whoami")) rq->route = ROUTE_WHOAMI;
        else if (SEG_IS(0, "search")) rq->route = ROUTE_SEARCH;
        return;
    }
    if (n == 2 && SEG_IS(0, "v1") && SEG_IS(1, "models")) {
        rq->route = ROUTE_V1_MODELS;
        return;
    }
    if (n == 2 && SEG_IS(0, "ui")) {
        rq->route = ROUTE_UI_ASSET;
        if (decode_segment(seg[1], seglen[1], rq->file, sizeof rq->file) < 0) {
            rq->bad_path = 1;
            rq->file[0] = 0;
        }
        return;
    }
    if (n == 3 && SEG_IS(0, "v1") && SEG_IS(1, "audio")) {
        if (SEG_IS(2, "transcriptions")) rq->route = ROUTE_V1_TRANSCRIPTIONS;
        else if (SEG_IS(2, "translations")) rq->route = ROUTE_V1_TRANSLATIONS;
        else if (SEG_IS(2, "speech-timestamps")) rq->route = ROUTE_V1_SPEECH;
        return;
    }
    if (n < 2 || n > 3) return;
    if (decode_segment(seg[1], seglen[1], rq->id, sizeof rq->id) < 0) {
        rq->bad_path = 1;
        rq->id[0] = 0;
    }
    if (n == 3) {
        if (SEG_IS(0, "jobs") && SEG_IS(2, "cancel")) rq->route = ROUTE_JOB_CANCEL;
        else if (SEG_IS(0, "jobs") && SEG_IS(2, "events")) rq->route = ROUTE_JOB_EVENTS;
        return;
    }
    if (SEG_IS(0, "uploads")) rq->route = ROUTE_UPLOAD_ONE;
    else if (SEG_IS(0, "jobs")) rq->route = ROUTE_JOB;
    else if (SEG_IS(0, "results")) rq->route = ROUTE_RESULTS;
    else {
        /* The second segment is a file name here, not an id: its own
         * decoding decides, whatever the id's bounds made of it above. */
        rq->route = ROUTE_FILE;
        rq->bad_path = decode_segment(seg[0], seglen[0], rq->id, sizeof rq->id) < 0 ||
                       decode_segment(seg[1], seglen[1], rq->file, sizeof rq->file) < 0;
        if (rq->bad_path) rq->id[0] = rq->file[0] = 0;
    }
#undef SEG_IS
}

/* The methods each route answers ("Allow" of a 405). */
static const char *route_methods(enum route r)
{
    switch (r) {
    case ROUTE_UPLOAD:
    case ROUTE_MODEL:
    case ROUTE_JOB_CANCEL:
    case ROUTE_V1_TRANSCRIPTIONS:
    case ROUTE_V1_TRANSLATIONS:
    case ROUTE_V1_SPEECH: return "POST";
    case ROUTE_UPLOAD_ONE: return "GET, HEAD, DELETE";
    default: return "GET, HEAD";
    }
}

/* Whether m is one of the methods route_methods lists. */
static int method_allowed(enum route r, const char *m)
{
    const char *allow = route_methods(r), *p;
    size_t n = strlen(m);
    for (p = allow; n && (p = strstr(p, m)); p += n)
        if ((p == allow || p[-1] == ' ') && (p[n] == ',' || !p[n])) return 1;
    return 0;
}

/* Who sends the request, from its "Authorization: Bearer KEY" header, into
 * rq->owner and rq->admin. The service's own key (--api-key) is an admin
 * with the owner ""; a key of the store (hark keys add) is its name's, an
 * admin when it was added as one. With no key at all (no --api-key and no
 * key ever added to the store, revoked ones included) the service is open
 * and every request, whatever it sends, is the one anonymous admin, as
 * before keys existed. Otherwise a request without a key, or with an
 * unknown or revoked one, is refused. Returns 0, 1 when refused, or a
 * negative HARK_E* code when the store cannot say. */
static int identify(struct http_server *srv, struct MHD_Connection *c, struct request *rq)
{
    const char *h;
    char key[512], hash[65];
    size_t klen = strlen(srv->api_key), hlen;
    int64_t n_keys = 0;
    struct store_key k;
    int rc;

    rq->owner[0] = 0;
    rq->admin = 0;
    rq->keyed = 0;
    h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (h && !strncasecmp(h, "Bearer ", 7)) {
        h += 7;
        while (*h == ' ') h++;
        hlen = strlen(h);
        while (hlen && (h[hlen - 1] == ' ' || h[hlen - 1] == '\t')) hlen--;
        if (klen && hlen == klen && CRYPTO_memcmp(h, srv->api_key, klen) == 0) {
            rq->admin = rq->keyed = 1;
            return 0;
        }
        if (hlen > 0 && hlen < sizeof key) {
            memcpy(key, h, hlen);
            key[hlen] = 0;
            if ((rc = store_key_hash(key, hash)) < 0) return rc;
            rc = store_key_find(srv->store, hash, &k);
            if (rc == 0) {
                snprintf(rq->owner, sizeof rq->owner, "%s", k.name);
                rq->admin = k.admin;
                rq->keyed = 1;
                return 0;
            }
            if (rc != HARK_ENOENT) return rc;
        }
    }
    if (klen || atomic_load(&srv->keys_exist)) return 1;
    if ((rc = store_key_count(srv->store, &n_keys)) < 0) return rc;
    if (n_keys > 0) {
        atomic_store(&srv->keys_exist, 1);
        return 1;
    }
    rq->admin = 1;
    return 0;
}

static enum MHD_Result dispatch(struct http_server *srv, struct MHD_Connection *c, struct request *rq)
{
    switch (rq->route) {
    case ROUTE_INDEX:
    case ROUTE_UI_ASSET: return route_ui(srv, c, rq);
    case ROUTE_UPLOAD: return route_upload(srv, c, rq);
    case ROUTE_MODEL: return route_model(srv, c, rq);
    case ROUTE_UPLOADS: return route_uploads(srv, c, rq);
    case ROUTE_UPLOAD_ONE: return route_upload_one(srv, c, rq);
    case ROUTE_JOB: return route_job(srv, c, rq);
    case ROUTE_JOB_EVENTS: return route_job_events(srv, c, rq);
    case ROUTE_JOB_CANCEL: return route_job_cancel(srv, c, rq);
    case ROUTE_RESULTS: return route_results(srv, c, rq);
    case ROUTE_FILE: return route_file(srv, c, rq);
    case ROUTE_HEALTH: return route_health(srv, c, rq);
    case ROUTE_METRICS: return route_metrics(srv, c, rq);
    case ROUTE_WHOAMI: return route_whoami(srv, c, rq);
    case ROUTE_SEARCH: return route_search(srv, c, rq);
    case ROUTE_V1_MODELS: return route_v1_models(srv, c, rq);
    case ROUTE_V1_TRANSCRIPTIONS:
    case ROUTE_V1_TRANSLATIONS: return route_v1_audio(srv, c, rq);
    case ROUTE_V1_SPEECH: return route_v1_speech(srv, c, rq);
    default: break;
    }
    return http_send_error(c, rq, 404, "not_found", NULL, NULL, "no such route");
}

static int is_multipart_route(enum route r)
{
    return r == ROUTE_UPLOAD || r == ROUTE_V1_TRANSCRIPTIONS || r == ROUTE_V1_TRANSLATIONS || r == ROUTE_V1_SPEECH;
}

/* The limit of a whole multipart body: the file plus room for the other
 * fields and the part headers. */
static int64_t body_limit(struct http_server *srv)
{
    return srv->max_upload_bytes > INT64_MAX - (1 << 20) ? INT64_MAX
                                                         : srv->max_upload_bytes + (1 << 20);
}

/* Whether the request comes with a body (a length above 0, or chunked). */
static int has_body(struct MHD_Connection *c)
{
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    return (cl && strtoll(cl, NULL, 10) > 0) || (te && strcasestr(te, "chunked"));
}

static enum MHD_Result send_refusal(struct MHD_Connection *c, struct request *rq)
{
    struct MHD_Response *r =
        http_error_response(rq->refuse_status, rq->refuse_code,
                            rq->refuse_param[0] ? rq->refuse_param : NULL, NULL, rq->refuse_message);
    if (r && rq->refuse_status == 405) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, route_methods(rq->route));
    return http_send_response(c, rq, rq->refuse_status, r);
}

/* Answers an error found before the body has been read. A client that is
 * still sending would see the connection close under it instead of the
 * answer, so a request with a body is answered once its body has been read
 * (and dropped), up to DISCARD_MAX bytes; beyond that, or without a body,
 * at once. status is an HTTP status with its code, or a HARK_E* code of the
 * request, answered as the table of failures says (respond.h). */
static enum MHD_Result refuse(struct MHD_Connection *c, struct request *rq, int status,
                              const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static enum MHD_Result refuse(struct MHD_Connection *c, struct request *rq, int status,
                              const char *code, const char *param, const char *fmt, ...)
{
    va_list ap;
    if (status < 0) http_failure(HTTP_OP_REQUEST, status, &status, &code);
    rq->refuse_status = status;
    snprintf(rq->refuse_code, sizeof rq->refuse_code, "%s", code);
    snprintf(rq->refuse_param, sizeof rq->refuse_param, "%s", param ? param : "");
    va_start(ap, fmt);
    vsnprintf(rq->refuse_message, sizeof rq->refuse_message, fmt, ap);
    va_end(ap);
    if (has_body(c)) return MHD_YES;
    return send_refusal(c, rq);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct http_server *srv = cls;
    struct request *rq = *con_cls;

    if (!rq) {
        const char *cl;
        rq = calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        *con_cls = rq;
        snprintf(rq->method, sizeof rq->method, "%s", method);
        route_request(rq, url);
        if (rq->route == ROUTE_NOT_FOUND)
            return refuse(c, rq, 404, "not_found", NULL, "no such route: %s", url);
        if (!method_allowed(rq->route, method))
            return refuse(c, rq, 405, "method_not_allowed", NULL,
                          "%s is not allowed here (allowed: %s)", method, route_methods(rq->route));
        if (rq->route != ROUTE_HEALTH && rq->route != ROUTE_INDEX && rq->route != ROUTE_UI_ASSET) {
            int who = identify(srv, c, rq);
            if (who > 0)
                return refuse(c, rq, 401, "invalid_api_key", NULL,
                              "a valid API key is needed: send \"Authorization: Bearer <key>\"");
            if (who < 0) {
                int status;
                const char *code;
                http_failure(HTTP_OP_STORE, who, &status, &code);
                return refuse(c, rq, status, code, NULL, "cannot check the API key: %s",
                              store_error(srv->store));
            }
            if (rq->route == ROUTE_METRICS && !rq->admin)
                return refuse(c, rq, 403, "permission_denied", NULL, "/metrics needs an admin key");
        }
        cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (is_multipart_route(rq->route)) {
            /* Too large by its declared length: answered at once, before
             * a client that asked "Expect: 100-continue" sends anything. */
            if (cl && strtoll(cl, NULL, 10) > body_limit(srv))
                return http_send_failure(c, rq, HTTP_OP_REQUEST, HARK_ERANGE, "file", NULL,
                                         "the upload is larger than the limit of %lld bytes",
                                         (long long)srv->max_upload_bytes);
            rq->rx = receive_begin(srv, c, srv->max_upload_bytes);
            if (!rq->rx)
                return refuse(c, rq, 400, "invalid_request", "file",
                              "expected a multipart/form-data body with a \"file\" field");
        } else if (cl && strtoll(cl, NULL, 10) > JSON_BODY_MAX) {
            return http_send_failure(c, rq, HTTP_OP_REQUEST, HARK_ERANGE, NULL, NULL,
                                     "the request body is larger than %d bytes", JSON_BODY_MAX);
        }
        return MHD_YES;
    }

    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rq->responded) return MHD_YES;
        if (rq->refuse_status) {
            rq->discarded += n;
            return rq->discarded > DISCARD_MAX ? send_refusal(c, rq) : MHD_YES;
        }
        if (rq->rx) {
            /* After an error the rest of the body is read and dropped;
             * the error is answered at its end. */
            receive_data(rq->rx, upload_data, n);
        } else if (!rq->body_too_large) {
            char *b;
            if (rq->body_len + n > JSON_BODY_MAX) {
                rq->body_too_large = 1;
                return refuse(c, rq, HARK_ERANGE, NULL, NULL, "the request body is larger than %d bytes",
                              JSON_BODY_MAX);
            }
            b = realloc(rq->body, rq->body_len + n + 1);
            if (!b) return MHD_NO;
            memcpy(b + rq->body_len, upload_data, n);
            rq->body = b;
            rq->body_len += n;
            b[rq->body_len] = 0;
        }
        return MHD_YES;
    }
    if (rq->responded) return MHD_YES;
    if (rq->refuse_status) return send_refusal(c, rq);
    return dispatch(srv, c, rq);
}

static void count_request(struct http_server *srv, const struct request *rq)
{
    int i;
    pthread_mutex_lock(&srv->lock);
    for (i = 0; i < srv->n_metrics; i++) {
        struct metric_slot *m = &srv->metrics[i];
        if (m->route == rq->route && m->status == rq->status && !strcmp(m->method, rq->method)) {
            m->count++;
            break;
        }
    }
    if (i == srv->n_metrics && i < METRIC_SLOTS) {
        struct metric_slot *m = &srv->metrics[srv->n_metrics++];
        m->route = rq->route;
        m->status = rq->status;
        snprintf(m->method, sizeof m->method, "%s", rq->method);
        m->count = 1;
    }
    pthread_mutex_unlock(&srv->lock);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *srv = cls;
    struct request *rq = *con_cls;
    if (!rq) return;
    if (rq->status) count_request(srv, rq);
    receive_free(rq->rx);
    free(rq->body);
    free(rq);
    *con_cls = NULL;
}

/* Paths reach the router undecoded (see the top of the file). */
static size_t keep_escaped(void *cls, struct MHD_Connection *c, char *s)
{
    return strlen(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    /* The daemon's complaints (a client that went away, a malformed request
     * line) are answered to the client; they are not the operator's
     * business, so they are dropped. */
}

/* ------------------------------------------------------------- lifecycle */

int http_start(const struct http_config *cfg, struct store *store, struct queue *queue,
               struct http_server **out, char *err, size_t errlen)
{
    struct http_server *srv;
    struct addrinfo hints, *ai = NULL;
    char port[16];
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ERROR_LOG;
    const union MHD_DaemonInfo *info;
    int rc;

    *out = NULL;
    if (cfg->max_connections < 1) {
        snprintf(err, errlen, "the connection limit must be at least 1");
        return HARK_EINVAL;
    }
    srv = calloc(1, sizeof *srv);
    if (!srv) return HARK_ENOMEM;
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->streams_cv, NULL);
    srv->store = store;
    srv->queue = queue;
    snprintf(srv->data_dir, sizeof srv->data_dir, "%s", cfg->data_dir);
    snprintf(srv->models_dir, sizeof srv->models_dir, "%s", cfg->models_dir);
    snprintf(srv->default_model, sizeof srv->default_model, "%s",
             cfg->default_model ? cfg->default_model : "");
    snprintf(srv->api_key, sizeof srv->api_key, "%s", cfg->api_key ? cfg->api_key : "");
    srv->max_upload_bytes = cfg->max_upload_bytes;
    pthread_cond_init(&srv->callbacks_cv, NULL);
    snprintf(srv->callback_allow, sizeof srv->callback_allow, "%s", cfg->callback_allow ? cfg->callback_allow : "");
    /* Without a key there are no callbacks, and POST /model says why. */
    if (callback_secret_load(cfg->data_dir, cfg->callback_secret, srv->callback_secret,
                             sizeof srv->callback_secret, srv->callback_error, sizeof srv->callback_error) < 0)
        srv->callback_secret[0] = 0;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port, sizeof port, "%d", cfg->port);
    rc = getaddrinfo(cfg->host, port, &hints, &ai);
    if (rc) {
        snprintf(err, errlen, "cannot resolve address %s: %s", cfg->host, gai_strerror(rc));
        http_stop(srv);
        return HARK_EINVAL;
    }
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    srv->daemon = MHD_start_daemon(
        flags, (uint16_t)cfg->port, NULL, NULL, on_request, srv,
        MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, srv,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv,
        MHD_OPTION_CONNECTION_TIMEOUT, cfg->idle_timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->max_connections_per_ip,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024),
        MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
        MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!srv->daemon) {
        snprintf(err, errlen, "cannot listen on %s port %d: %s", cfg->host, cfg->port,
                 errno ? strerror(errno) : "the HTTP daemon did not start");
        http_stop(srv);
        return HARK_EIO;
    }
    info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : cfg->port;
    if (callbacks_start(srv) < 0) {
        snprintf(err, errlen, "cannot start the callbacks' thread");
        http_stop(srv);
        return HARK_ENOMEM;
    }
    *out = srv;
    return 0;
}

int http_port(const struct http_server *srv)
{
    return srv->port;
}

void http_stop(struct http_server *srv)
{
    if (!srv) return;
    atomic_store(&srv->stopping, 1);
    callbacks_stop(srv);
    if (srv->daemon) MHD_stop_daemon(srv->daemon);
    /* The threads of event streams end once their transcriptions do (the
     * queue is shut down first). */
    pthread_mutex_lock(&srv->lock);
    while (srv->n_streams > 0) pthread_cond_wait(&srv->streams_cv, &srv->lock);
    pthread_mutex_unlock(&srv->lock);
    pthread_cond_destroy(&srv->streams_cv);
    pthread_cond_destroy(&srv->callbacks_cv);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
}
