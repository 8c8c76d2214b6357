/*
 * internal.h: what the HTTP server's files share: the server and request
 * records, the router's route names, the multipart receiver and the
 * response helpers. Not part of any public interface.
 */
#ifndef HARK_HTTP_INTERNAL_H
#define HARK_HTTP_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <jansson.h>
#include <microhttpd.h>
#include <openssl/evp.h>

#include "http.h"

struct store;
struct queue;
struct store_upload;

enum route {
    ROUTE_NOT_FOUND,
    ROUTE_INDEX,
    ROUTE_UPLOAD,          /* POST /upload */
    ROUTE_MODEL,           /* POST /model */
    ROUTE_UPLOADS,         /* GET /uploads */
    ROUTE_UPLOAD_ONE,      /* GET, DELETE /uploads/<id> */
    ROUTE_JOB,             /* GET /jobs/<id> */
    ROUTE_JOB_EVENTS,      /* GET /jobs/<id>/events: the job as Server-Sent Events */
    ROUTE_JOB_CANCEL,      /* POST /jobs/<id>/cancel */
    ROUTE_RESULTS,         /* GET /results/<id> */
    ROUTE_FILE,            /* GET, HEAD /<id>/<file> */
    ROUTE_HEALTH,
    ROUTE_METRICS,
    ROUTE_V1_MODELS,
    ROUTE_V1_TRANSCRIPTIONS,
    ROUTE_V1_TRANSLATIONS,
    ROUTE_V1_SPEECH,       /* POST /v1/audio/speech-timestamps */
    ROUTE_UI_ASSET,        /* GET /ui/<file>: the web page's files */
    ROUTE_WHOAMI,          /* GET /whoami: the key's name and rights */
    ROUTE_SEARCH,          /* GET /search?q=: words across every transcript */
    ROUTE_COUNT
};

/* Requests counted for /metrics: route x method x status. */
#define METRIC_SLOTS 256
struct metric_slot {
    enum route route;
    char method[8];
    int status;
    int64_t count;
};

struct http_server {
    struct MHD_Daemon *daemon;
    struct store *store;
    struct queue *queue;
    char data_dir[PATH_MAX];   /* its layout: datadir.h */
    char models_dir[PATH_MAX];
    char default_model[128];
    char api_key[256];
    int64_t max_upload_bytes;
    int port;
    /* Set once the store has held a key: keys are revoked, never removed,
     * so from then on a request without a valid key is refused without
     * asking the store again. */
    atomic_int keys_exist;

    atomic_int stopping;       /* set when the server stops: event streams end */
    char callback_allow[1024]; /* hosts a callback may go to (callbacks.c) */
    char callback_secret[256]; /* the key of the callbacks' signatures; "" when none could be had */
    char callback_error[256];  /* ... and why */
    pthread_t callbacks_thread;
    int callbacks_started;
    pthread_cond_t callbacks_cv; /* signaled when the server stops */
    pthread_mutex_t lock;      /* guards what follows */
    pthread_cond_t streams_cv; /* signaled when n_streams drops to 0 */
    int n_streams;             /* threads feeding event streams */
    struct metric_slot metrics[METRIC_SLOTS];
    int n_metrics;
    int64_t upload_bytes;      /* bytes of accepted uploads since start */
};

/* One form field of a multipart body other than the file. */
struct form_field {
    char name[64];
    char *value;               /* NUL-terminated, malloc'ed */
    size_t len;
};

#define FORM_MAX_FIELDS 32
#define FORM_MAX_FIELD_BYTES (64 * 1024)

/* A multipart/form-data body being received: the part named "file" is
 * streamed to a temporary file while its SHA-256 is computed; the other
 * fields are kept in memory (small). The first error met is kept and
 * answered once the body ends (or at once, for a body that is too large). */
struct receive {
    struct MHD_PostProcessor *pp;
    int fd;                    /* -1 until the file part starts */
    struct spool *spool;       /* writes the file part to fd */
    char tmp_path[PATH_MAX + 16]; /* cleared once the file is moved into place */
    int tmp_made;
    char filename[256];        /* as the client named it */
    char part_type[128];       /* the part's Content-Type */
    int64_t bytes;
    int64_t limit;
    int file_parts;            /* how many parts named "file" arrived */
    int file_closed;
    EVP_MD_CTX *sha;
    struct form_field fields[FORM_MAX_FIELDS];
    int n_fields;
    size_t field_bytes;
    int status;                /* 0, or the HTTP status of the first error */
    char code[32];
    char param[32];
    char message[256];
};

struct request {
    enum route route;
    char method[8];
    char id[64];               /* first path parameter, percent-decoded */
    char file[256];            /* second path parameter (ROUTE_FILE) */
    int bad_path;              /* a segment decoded to "..", "/", NUL, ... */
    char *body;                /* a JSON body (POST /model), NUL-terminated */
    size_t body_len;
    int body_too_large;
    struct receive *rx;
    int status;                /* of the response queued */
    int responded;
    /* An error found before the body was read, answered after it. */
    int refuse_status;
    char refuse_code[32];
    char refuse_param[32];
    char refuse_message[512];
    int64_t discarded;
    /* Who sent it (server.c's identify): the owner its uploads get and the
     * only owner whose uploads it may see, unless admin. */
    char owner[64];            /* the key's name; "" for the service's own key or no key */
    int admin;                 /* sees and changes every owner's uploads */
    int keyed;                 /* sent a valid key of the store or --api-key */
};

#include "respond.h"

/* ---- receive.c: multipart bodies */

/* Starts receiving a multipart body whose file part may be at most limit
 * bytes. Returns NULL, with rq's status set, if the request is not
 * multipart/form-data or resources run out. */
struct receive *receive_begin(struct http_server *srv, struct MHD_Connection *c, int64_t limit);

/* Feeds a piece of the body. Returns 0, or -1 once an error is recorded. */
int receive_data(struct receive *rx, const char *data, size_t size);

/* Ends the body: closes the file, checks a file came. Returns 0, or -1
 * with the error recorded (400 for a missing or empty file). On success
 * fills sha (65 bytes hex). */
int receive_end(struct receive *rx, char *sha);

/* A field's value, or NULL. index picks among repeated fields. */
const char *receive_field(const struct receive *rx, const char *name, int index);

/* Removes the temporary file (if still there) and frees. NULL is a no-op. */
void receive_free(struct receive *rx);

/* Records an error (first one wins): an HTTP status and error code, or a
 * HARK_E* code (negative) of writing the upload, whose status and code
 * come from the table of failures (respond.h). */
void receive_fail(struct receive *rx, int status, const char *code, const char *param,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* ---- events.c: Server-Sent Events fed by a thread of the server */

struct sse;

/* A stream with two references: the producer's (sse_close) and the
 * response's (sse_response). Its reader ends when *stopping is set. */
struct sse *sse_new(atomic_int *stopping);

/* Queues one event (data taken; id and event may be NULL). Returns 0,
 * HARK_ECANCELED once the client is gone, or HARK_ENOMEM. */
int sse_send(struct sse *s, const char *id, const char *event, json_t *data);

/* Queues a "retry:" line: how many milliseconds a client that lost the
 * stream waits before it connects again. */
int sse_retry(struct sse *s, int ms);

/* 1 once nobody reads the stream any more. */
int sse_gone(struct sse *s);

/* The producer's last word: the response ends once what is queued is sent.
 * Drops the producer's reference. */
void sse_close(struct sse *s);

/* The response (text/event-stream) that sends the stream on connection c;
 * it holds the other reference, dropped when libmicrohttpd frees it (also
 * when this returns NULL). */
struct MHD_Response *sse_response(struct sse *s, struct MHD_Connection *c);

/* Where a pulled stream's events come from. On the connection's thread,
 * whenever all is sent: fill sends what is new (sse_send) and returns 0,
 * or 1 after the last event, or a negative code to end the response; when
 * fill sent nothing, wait blocks until something may have changed (a
 * fraction of a second at most). release frees user once the response is
 * freed. */
struct sse_source {
    int (*fill)(void *user, struct sse *s);
    void (*wait)(void *user);
    void (*release)(void *user);
};

/* The response that sends a pulled stream on c (user released on failure
 * too). */
struct MHD_Response *sse_pull_response(struct MHD_Connection *c, atomic_int *stopping,
                                       const struct sse_source *source, void *user);

/* ---- callbacks.c: telling a job's callback_url that it ended */

/* Whether url is http or https to a host the allow list names ("host" or
 * "host:port", comma-separated); otherwise 0 with the reason in why. */
int callback_allowed(const char *allow, const char *url, char *why, size_t whylen);

/* The signatures' key: given (not NULL or ""), else the text of
 * <data>/callback-secret, which is made when missing. */
int callback_secret_load(const char *data_dir, const char *given, char *out, size_t outlen, char *err,
                         size_t errlen);

/* "sha256=" and the hex HMAC-SHA256 of body under secret, into out (72
 * bytes). */
void callback_sign(const char *secret, const char *body, size_t len, char *out);

/* The thread that sends the callbacks that are due; stopped (joined) once
 * srv->stopping is set. */
int callbacks_start(struct http_server *srv);
void callbacks_stop(struct http_server *srv);

/* ---- the service's routes, by resource */

/* uploads.c */
enum MHD_Result route_upload(struct http_server *srv, struct MHD_Connection *c, struct request *rq);
enum MHD_Result route_uploads(struct http_server *srv, struct MHD_Connection *c, struct request *rq);
enum MHD_Result route_upload_one(struct http_server *srv, struct MHD_Connection *c, struct request *rq);
/* jobs.c */
enum MHD_Result route_model(struct http_server *srv, struct MHD_Connection *c, struct request *rq);
enum MHD_Result route_job(struct http_server *srv, struct MHD_Connection *c, struct request *rq);
/* job_events.c */
enum MHD_Result route_job_events(struct http_server *srv, struct MHD_Connection *c, struct request *rq);
enum MHD_Result route_job_cancel(struct http_server *srv, struct MHD_Connection *c, struct request *rq);
/* results.c */
enum MHD_Result route_results(struct http_server *srv, struct MHD_Connection *c, struct request *rq);
enum MHD_Result route_file(struct http_server *srv, struct MHD_Connection *c, struct request *rq);
/* ops.c */
enum MHD_Result route_health(struct http_server *srv, struct MHD_Connection *c, struct request *rq);
enum MHD_Result route_metrics(struct http_server *srv, struct MHD_Connection *c, struct request *rq);
enum MHD_Result route_whoami(struct http_server *srv, struct MHD_Connection *c, struct request *rq);
/* search.c */
enum MHD_Result route_search(struct http_server *srv, struct MHD_Connection *c, struct request *rq);

/* ---- ui.c: the web page, embedded at build time */

/* GET / (the page) and GET /ui/<file> (rq->file: its scripts, styles,
 * images). Needs no API key: the page asks for it and sends it itself. */
enum MHD_Result route_ui(struct http_server *srv, struct MHD_Connection *c, struct request *rq);

/* ---- routes.c: what the routes share */

struct store_job;

/* A new random (version 4) UUID, lower-case, into out (37 bytes). -1 when
 * the system has no random numbers. */
int make_uuid(char *out);

/* Whether s is a UUID as make_uuid writes it (hex, dashes at 8-4-4-4-12). */
int is_uuid(const char *s);

/* A whole number of s in [lo, hi] into *out: 0, or -1. */
int parse_count(const char *s, long long lo, long long hi, long long *out);

/* An upload's and a job's metadata as the routes show them (new objects). */
json_t *upload_json(const struct store_upload *u);
json_t *job_json(const struct store_job *j);

/* The model a request runs: asked, the client's choice, which must be a
 * plain name the models folder holds (as /v1/models lists it), or when
 * asked is NULL or "", fallback (an upload's model or the server's default,
 * which the operator may have given as a path). With translate set, or a
 * language other than English, the model must be multilingual. Returns the
 * model, or NULL after queueing the error (404 model_not_found, 400 for
 * what the model cannot do). */
const char *check_model(struct http_server *srv, struct MHD_Connection *c, struct request *rq, const char *asked,
                        const char *fallback, int translate, const char *language, enum MHD_Result *ret);

/* The upload id as rq's sender may see it: store_upload_get, except that
 * another owner's upload is HARK_ENOENT, as an unknown id is, unless the
 * sender is an admin. */
int visible_upload_get(struct http_server *srv, const struct request *rq, const char *id,
                       struct store_upload *out);

/* Answers a failed store call: 404 for an unknown upload (rq->id), else 500
 * with the store's reason. */
enum MHD_Result store_failure(struct http_server *srv, struct MHD_Connection *c, struct request *rq, int rc);

/* ---- subtitles.c */

struct hark_cue_options;

/* Makes SRT or WebVTT (fmt: HARK_FORMAT_SRT or HARK_FORMAT_VTT) from a
 * stored results.json with the cue options o, into *out (malloc'ed, *len
 * bytes). Returns 0, or a HARK_E* code with a reason in err. */
int subtitles_render(const char *json_path, int fmt, const struct hark_cue_options *o, char **out, size_t *len,
                     char *err, size_t errlen);

/* ---- openai.c: /v1 */

enum MHD_Result route_v1_models(struct http_server *srv, struct MHD_Connection *c, struct request *rq);
enum MHD_Result route_v1_audio(struct http_server *srv, struct MHD_Connection *c, struct request *rq);
enum MHD_Result route_v1_speech(struct http_server *srv, struct MHD_Connection *c, struct request *rq);

/* ---- metrics (server.c) */

const char *route_name(enum route r);

/* ---- parsers of request lines and headers, reachable from the fuzz targets */

/* server.c: sets rq->route from the path as the client sent it, and rq->id
 * and rq->file (percent-decoded) for the routes that name them; a segment
 * that decodes to "." or "..", holds '/', '\\' or NUL, or is too long sets
 * rq->bad_path instead and leaves both empty. */
void route_request(struct request *rq, const char *url);

/* results.c: parses a Range header (h may be NULL) for a file of size
 * bytes. Returns 1 with [*first, *last] for a satisfiable single range, 0
 * to serve the whole file (no header, a syntax this server does not take,
 * or several ranges), -1 for an unsatisfiable range. */
int parse_range(const char *h, int64_t size, int64_t *first, int64_t *last);

#endif
