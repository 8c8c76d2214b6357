/*
 * respond.c: how every answer leaves the server: JSON, bytes, errors in
 * OpenAI's shape, and the one table that turns a failed operation's HARK_E*
 * code into an HTTP status and error code (respond.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hark.h"
#include "internal.h"

enum MHD_Result http_send_response(struct MHD_Connection *c, struct request *rq, int status,
                                   struct MHD_Response *r)
{
    enum MHD_Result ret;
    if (!r) return MHD_NO;
    if (rq->responded) {
        MHD_destroy_response(r);
        return MHD_YES;
    }
    ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    rq->status = status;
    rq->responded = 1;
    return ret;
}

enum MHD_Result http_send_bytes(struct MHD_Connection *c, struct request *rq, int status,
                                const char *content_type, const void *data, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    return http_send_response(c, rq, status, r);
}

struct MHD_Response *http_json_response(json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    struct MHD_Response *r;
    json_decref(body);
    if (!text) return NULL;
    r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return NULL;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    return r;
}

enum MHD_Result http_send_json(struct MHD_Connection *c, struct request *rq, int status, json_t *body)
{
    return http_send_response(c, rq, status, http_json_response(body));
}

/* A JSON string of s, which may quote a client's bytes: when s is not
 * valid UTF-8, every byte outside ASCII becomes '?', so that the error
 * still reaches the client whole. */
static json_t *text_json(const char *s)
{
    json_t *j = json_string(s);
    if (j) return j;
    char *copy = strdup(s);
    if (!copy) return json_string("(no memory for the message)");
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80) *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

struct MHD_Response *http_error_response(int status, const char *code, const char *param,
                                         json_t *extra, const char *message)
{
    json_t *body = extra && json_is_object(extra) ? extra : json_object();
    if (extra && body != extra) json_decref(extra);
    json_object_set_new(body, "error",
                        json_pack("{s:o, s:s, s:o, s:o}", "message", text_json(message), "type",
                                  status >= 500 ? "server_error" : "invalid_request_error",
                                  "param", param ? text_json(param) : json_null(),
                                  "code", code ? text_json(code) : json_null()));
    return http_json_response(body);
}

enum MHD_Result http_send_error(struct MHD_Connection *c, struct request *rq, int status,
                                const char *code, const char *param, json_t *extra,
                                const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return http_send_response(c, rq, status, http_error_response(status, code, param, extra, msg));
}

const char *http_query(struct MHD_Connection *c, const char *name, char *buf, size_t len)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
    size_t n;
    if (!v) return NULL;
    n = strlen(v);
    if (n >= len) n = len - 1;
    memcpy(buf, v, n);
    buf[n] = 0;
    n = MHD_http_unescape(buf);
    buf[n] = 0;
    return buf;
}

/* ------------------------------------------------------------ failures */

/* A row answers code rc (or, with ANY, every code not listed before it) of
 * one kind of operation, with the same status and code on every route:
 * what a client can fix is a 4xx, a 5xx is the server's own failure. */
#define ANY 1
static const struct failure {
    enum http_op op;
    int rc;
    int status;
    const char *code;
} failures[] = {
    {HTTP_OP_REQUEST, HARK_ERANGE, 413, "too_large"},
    {HTTP_OP_REQUEST, ANY, 400, "invalid_request"},
    {HTTP_OP_STORE, HARK_ENOENT, 404, "not_found"},
    {HTTP_OP_STORE, HARK_EEXIST, 409, "duplicate"},
    {HTTP_OP_STORE, HARK_EBUSY, 409, "job_active"},
    {HTTP_OP_STORE, HARK_ESTALE, 409, "not_active"},
    {HTTP_OP_STORE, ANY, 500, "storage"},
    {HTTP_OP_UPLOAD, HARK_ERANGE, 413, "too_large"},
    {HTTP_OP_UPLOAD, HARK_EIO, 507, "storage"},
    {HTTP_OP_UPLOAD, ANY, 500, "storage"},
    {HTTP_OP_MEDIA, HARK_EAUDIO, 415, "unsupported_media"},
    {HTTP_OP_MEDIA, HARK_EFORMAT, 415, "unsupported_media"},
    {HTTP_OP_MEDIA, ANY, 500, "media"},
    {HTTP_OP_MODEL, HARK_ENOENT, 404, "model_not_found"},
    {HTTP_OP_MODEL, HARK_EINVAL, 400, "invalid_request"},
    {HTTP_OP_MODEL, ANY, 500, "model_unusable"},
    {HTTP_OP_TRANSCRIBE, HARK_ENOENT, 404, "model_not_found"},
    {HTTP_OP_TRANSCRIBE, HARK_EINVAL, 400, "invalid_request"},
    {HTTP_OP_TRANSCRIBE, HARK_ENOTSUP, 503, "unavailable"},
    {HTTP_OP_TRANSCRIBE, HARK_ECANCELED, 503, "unavailable"},
    {HTTP_OP_TRANSCRIBE, ANY, 500, "transcription_failed"},
};

void http_failure(enum http_op op, int rc, int *status, const char **code)
{
    for (size_t i = 0; i < sizeof failures / sizeof failures[0]; i++) {
        const struct failure *f = &failures[i];
        if (f->op != op || (f->rc != rc && f->rc != ANY)) continue;
        *status = f->status;
        *code = f->code;
        return;
    }
    *status = 500;
    *code = "internal";
}

enum MHD_Result http_send_failure(struct MHD_Connection *c, struct request *rq, enum http_op op, int rc,
                                  const char *param, json_t *extra, const char *fmt, ...)
{
    char msg[1024];
    const char *code;
    int status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    http_failure(op, rc, &status, &code);
    return http_send_response(c, rq, status, http_error_response(status, code, param, extra, msg));
}
