/*
 * respond.h: the answers of every route (respond.c): JSON, bytes, errors in
 * OpenAI's shape {"error": {"message", "type", "param", "code"}}, and the
 * one table from a failed operation's HARK_E* code to its HTTP status and
 * error code. The error's type is "server_error" for a 5xx status, and
 * "invalid_request_error" otherwise.
 */
#ifndef HARK_HTTP_RESPOND_H
#define HARK_HTTP_RESPOND_H

#include <stddef.h>
#include <jansson.h>
#include <microhttpd.h>

struct request;

/* A JSON response (takes the reference to body); NULL if out of memory. */
struct MHD_Response *http_json_response(json_t *body);

/* An error response in OpenAI's shape (see http_send_error). */
struct MHD_Response *http_error_response(int status, const char *code, const char *param,
                                         json_t *extra, const char *message);

/* Queues a JSON response (takes the reference to body). */
enum MHD_Result http_send_json(struct MHD_Connection *c, struct request *rq, int status, json_t *body);

/* Queues an error in OpenAI's shape: {"error":{"message","type","param","code"}};
 * extra, when not NULL, is a JSON object whose members go beside "error"
 * (taken). param and code may be NULL. */
enum MHD_Result http_send_error(struct MHD_Connection *c, struct request *rq, int status,
                                const char *code, const char *param, json_t *extra,
                                const char *fmt, ...) __attribute__((format(printf, 7, 8)));

/* Queues a response of bytes (copied) with a content type. */
enum MHD_Result http_send_bytes(struct MHD_Connection *c, struct request *rq, int status,
                                const char *content_type, const void *data, size_t len);

/* Queues a prepared response (destroyed here). */
enum MHD_Result http_send_response(struct MHD_Connection *c, struct request *rq, int status,
                                   struct MHD_Response *r);

/* A query argument, percent-decoded into buf; NULL if absent. */
const char *http_query(struct MHD_Connection *c, const char *name, char *buf, size_t len);

/* What failed, for the table of statuses: the request itself, a store call,
 * writing an upload as it arrives, reading the client's media, choosing the
 * model a request names, a transcription. */
enum http_op { HTTP_OP_REQUEST, HTTP_OP_STORE, HTTP_OP_UPLOAD, HTTP_OP_MEDIA, HTTP_OP_MODEL, HTTP_OP_TRANSCRIBE };

/* The status and error code answering code rc of operation op: the same on
 * every route, /v1 included. */
void http_failure(enum http_op op, int rc, int *status, const char **code);

/* Queues the error http_failure chooses for rc, with a message. */
enum MHD_Result http_send_failure(struct MHD_Connection *c, struct request *rq, enum http_op op, int rc,
                                  const char *param, json_t *extra, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

#endif
