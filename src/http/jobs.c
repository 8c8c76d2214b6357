/*
 * jobs.c: POST /model (schedule a transcription of an upload, optionally
 * waiting for it), GET /jobs/<id> and POST /jobs/<id>/cancel. A job is
 * named by its number, or by its upload's id for the upload's active job.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hark.h"
#include "internal.h"
#include "queue.h"
#include "store.h"

/* -------------------------------------------------------------- /model */

static int valid_language(const char *lang)
{
    return !*lang || !strcmp(lang, "auto") || hark_lang_index(lang) >= 0;
}

/* Answers with the upload's current metadata at the given status. */
static enum MHD_Result send_upload(struct http_server *srv, struct MHD_Connection *c,
                                   struct request *rq, const char *id, int status)
{
    struct store_upload u;
    int rc = store_upload_get(srv->store, id, &u);
    if (rc < 0) return store_failure(srv, c, rq, rc);
    return http_send_json(c, rq, status, upload_json(&u));
}

/* A job waited for ended failed: the status is the table's for the step it
 * failed at, as when the request itself had done that step (415 for media
 * that decodes to nothing, 507 for a full disk); a failure this process did
 * not see is a 500. */
static enum MHD_Result send_job_failure(struct http_server *srv, struct MHD_Connection *c, struct request *rq,
                                        const struct store_upload *u, int64_t job_id)
{
    static const enum http_op op_of[] = {
        [QUEUE_STEP_STORE] = HTTP_OP_STORE,   [QUEUE_STEP_MODEL] = HTTP_OP_MODEL,
        [QUEUE_STEP_MEDIA] = HTTP_OP_MEDIA,   [QUEUE_STEP_ENGINE] = HTTP_OP_TRANSCRIBE,
        [QUEUE_STEP_RESULTS] = HTTP_OP_UPLOAD,
    };
    int why;
    enum queue_step step = queue_job_failure(srv->queue, job_id, &why);
    if (step == QUEUE_STEP_UNKNOWN)
        return http_send_error(c, rq, 500, "job_failed", NULL, upload_json(u), "the transcription failed: %s",
                               u->error);
    return http_send_failure(c, rq, op_of[step], why, NULL, upload_json(u), "the transcription failed: %s",
                             u->error);
}

enum MHD_Result route_model(struct http_server *srv, struct MHD_Connection *c, struct request *rq)
{
    json_t *body = NULL, *v;
    json_error_t jerr;
    struct store_upload u;
    struct store_job job;
    const char *id, *model, *language = "", *task = "transcribe", *path, *callback = NULL;
    int wait = 0, position = 0, rc;
    enum MHD_Result ret;

    if (!rq->body_len) {
        ret = http_send_error(c, rq, 400, "invalid_request", NULL, NULL,
                              "expected a JSON body: {\"id\": \"<upload id>\"}");
        goto out;
    }
    body = json_loadb(rq->body, rq->body_len, 0, &jerr);
    if (!body || !json_is_object(body)) {
        ret = http_send_error(c, rq, 400, "invalid_json", NULL, NULL, "the body is not a JSON object: %s",
                              body ? "another JSON value" : jerr.text);
        goto out;
    }
#define STRING_MEMBER(name, var)                                                               \
    do {                                                                                       \
        v = json_object_get(body, name);                                                       \
        if (v && !json_is_null(v)) {                                                           \
            if (!json_is_string(v)) {                                                          \
                ret = http_send_error(c, rq, 400, "invalid_request", name, NULL,               \
                                      "\"%s\" must be a string", name);                        \
                goto out;                                                                      \
            }                                                                                  \
            var = json_string_value(v);                                                        \
        }                                                                                      \
    } while (0)
    id = NULL;
    model = NULL;
    path = NULL;
    STRING_MEMBER("id", id);
    STRING_MEMBER("model", model);
    STRING_MEMBER("language", language);
    STRING_MEMBER("task", task);
    STRING_MEMBER("path", path);
    STRING_MEMBER("callback_url", callback);
#undef STRING_MEMBER
    v = json_object_get(body, "wait");
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v)) {
            ret = http_send_error(c, rq, 400, "invalid_request", "wait", NULL,
                                  "\"wait\" must be true or false");
            goto out;
        }
        wait = json_is_true(v);
    }
    if (!id || !*id) {
        ret = http_send_error(c, rq, 400, "invalid_request", "id", NULL,
                              "\"id\" (the upload's id) is required");
        goto out;
    }
    /* Speech detection (false, true or an object of settings over the
     * server's) and word timestamps (true or false); kept with the job,
     * resolved. */
    struct hark_vad_params vad_defaults;
    struct queue_options jo;
    char opt_err[256], options[sizeof job.options];
    queue_vad_defaults(srv->queue, NULL, &vad_defaults);
    queue_options_init(&jo, &vad_defaults);
    if (queue_vad_parse(json_object_get(body, "vad"), &jo.vad, opt_err, sizeof opt_err) < 0) {
        ret = http_send_error(c, rq, 400, "invalid_request", "vad", NULL, "%s", opt_err);
        goto out;
    }
    if (queue_words_parse(json_object_get(body, "word_timestamps"), &jo, opt_err, sizeof opt_err) < 0) {
        ret = http_send_error(c, rq, 400, "invalid_request", "word_timestamps", NULL, "%s", opt_err);
        goto out;
    }
    if (jo.vad.mode == QUEUE_VAD_ON && !queue_vad_model(srv->queue)) {
        ret = http_send_error(c, rq, 400, "vad_unavailable", "vad", NULL,
                              "speech detection needs a VAD model, and there is none in the models folder: "
                              "hark models download silero-v6.2.0");
        goto out;
    }
    /* Told when the job ends: only hosts the operator allows. */
    if (callback && *callback) {
        char why[400];
        if (strlen(callback) >= sizeof job.callback_url) {
            ret = http_send_error(c, rq, 400, "invalid_request", "callback_url", NULL,
                                  "callback_url is longer than %zu bytes", sizeof job.callback_url - 1);
            goto out;
        }
        if (!callback_allowed(srv->callback_allow, callback, why, sizeof why)) {
            ret = http_send_error(c, rq, 400, "callback_not_allowed", "callback_url", NULL, "%s", why);
            goto out;
        }
        if (!srv->callback_secret[0]) {
            ret = http_send_error(c, rq, 503, "callbacks_unavailable", "callback_url", NULL,
                                  "callbacks cannot be signed here: %s", srv->callback_error);
            goto out;
        }
    }
    queue_options_encode(&jo, options, sizeof options);
    snprintf(rq->id, sizeof rq->id, "%s", id);
    if (strcmp(task, "transcribe") && strcmp(task, "translate")) {
        ret = http_send_error(c, rq, 400, "invalid_request", "task", NULL,
                              "\"task\" must be \"transcribe\" or \"translate\", not \"%s\"", task);
        goto out;
    }
    if (!valid_language(language)) {
        ret = http_send_error(c, rq, 400, "invalid_request", "language", NULL,
                              "unknown language \"%s\": use a code such as \"en\" or \"de\", or \"auto\"",
                              language);
        goto out;
    }
    if (!strcmp(language, "auto")) language = "";
    rc = is_uuid(id) ? visible_upload_get(srv, rq, id, &u) : HARK_ENOENT;
    if (rc < 0) {
        ret = store_failure(srv, c, rq, rc);
        goto out;
    }
    if (path && *path && strcmp(path, u.filename)) {
        char location[512];
        snprintf(location, sizeof location, "/%s/%s", u.id, u.filename);
        if (strcmp(path, location) && strcmp(path, location + 1)) {
            ret = http_send_error(c, rq, 404, "not_found", "path", NULL,
                                  "upload %s holds no file \"%s\"", u.id, path);
            goto out;
        }
    }
    model = check_model(srv, c, rq, model, u.model[0] ? u.model : srv->default_model, !strcmp(task, "translate"),
                        language, &ret);
    if (!model) goto out;

    rc = store_job_enqueue(srv->store, u.id, model, language, task, options, &job, &position);
    if (rc == HARK_EBUSY) {
        rc = store_upload_get(srv->store, u.id, &u);
        if (rc < 0) {
            ret = store_failure(srv, c, rq, rc);
            goto out;
        }
        ret = http_send_failure(c, rq, HTTP_OP_STORE, HARK_EBUSY, "id", upload_json(&u),
                                "upload %s already has a %s job (%lld)", u.id, u.status, (long long)u.job_id);
        goto out;
    }
    if (rc < 0) {
        ret = store_failure(srv, c, rq, rc);
        goto out;
    }
    /* Set after the job is queued: a callback is due once the job has
     * ended and has a URL, whichever comes last. */
    if (callback && *callback && (rc = store_job_set_callback(srv->store, job.id, callback)) < 0) {
        store_job_cancel(srv->store, job.id);
        ret = store_failure(srv, c, rq, rc);
        goto out;
    }
    queue_notify(srv->queue);
    if (!wait) {
        ret = send_upload(srv, c, rq, u.id, 202);
        goto out;
    }
    queue_wait(srv->queue, job.id, -1);
    rc = store_upload_get(srv->store, u.id, &u);
    if (rc < 0) {
        ret = store_failure(srv, c, rq, rc);
        goto out;
    }
    if (u.job_id == job.id && !strcmp(u.status, STORE_FAILED))
        ret = send_job_failure(srv, c, rq, &u, job.id);
    else if (u.job_id == job.id && !strcmp(u.status, STORE_CANCELED))
        ret = http_send_error(c, rq, 409, "canceled", NULL, upload_json(&u),
                              "the job was canceled");
    else
        ret = http_send_json(c, rq, 200, upload_json(&u));
out:
    json_decref(body);
    return ret;
}

/* --------------------------------------------------------------- /jobs */

/* A job named by its number, or an upload's active job by the upload id;
 * a job of an upload the sender may not see is HARK_ENOENT, as an unknown
 * one is. */
static int find_job(struct http_server *srv, const struct request *rq, const char *id, struct store_job *job)
{
    struct store_upload u;
    long long n;
    int rc;
    if (is_uuid(id)) rc = store_job_active(srv->store, id, job);
    else if (parse_count(id, 1, INT64_MAX, &n) < 0) rc = HARK_ENOENT;
    else rc = store_job_get(srv->store, (int64_t)n, job);
    if (rc == 0 && !rq->admin) rc = visible_upload_get(srv, rq, job->upload_id, &u);
    return rc;
}

enum MHD_Result route_job(struct http_server *srv, struct MHD_Connection *c, struct request *rq)
{
    struct store_job job;
    int rc = rq->bad_path ? HARK_ENOENT : find_job(srv, rq, rq->id, &job);
    if (rc == HARK_ENOENT)
        return http_send_error(c, rq, 404, "not_found", "id", NULL, "no job \"%s\"", rq->id);
    if (rc < 0) return store_failure(srv, c, rq, rc);
    json_t *o = job_json(&job);
    if (o && job.callback_url[0]) {
        /* Where its end is told, and every attempt so far. */
        struct store_callback_attempt *at = NULL;
        int n = 0;
        json_t *list = json_array();
        if (store_callback_attempts(srv->store, job.id, &at, &n) == 0)
            for (int i = 0; i < n; i++)
                json_array_append_new(list, json_pack("{s:i, s:s, s:i, s:s?}", "attempt", at[i].n, "at", at[i].at,
                                                      "status", at[i].status, "error",
                                                      at[i].error[0] ? at[i].error : NULL));
        free(at);
        json_object_set_new(o, "callback",
                            json_pack("{s:s, s:s, s:o}", "url", job.callback_url, "state",
                                      job.callback_state[0] ? job.callback_state : "waiting", "attempts", list));
    }
    return http_send_json(c, rq, 200, o);
}

enum MHD_Result route_job_cancel(struct http_server *srv, struct MHD_Connection *c, struct request *rq)
{
    struct store_job job;
    struct store_upload u;
    int rc;
    if (rq->bad_path)
        return http_send_error(c, rq, 404, "not_found", "id", NULL, "no such job");
    rc = find_job(srv, rq, rq->id, &job);
    if (rc == HARK_ENOENT && is_uuid(rq->id) && visible_upload_get(srv, rq, rq->id, &u) == 0)
        return http_send_error(c, rq, 409, "not_active", "id", upload_json(&u),
                               "upload %s has no queued or running job", u.id);
    if (rc == HARK_ENOENT)
        return http_send_error(c, rq, 404, "not_found", "id", NULL, "no job \"%s\"", rq->id);
    if (rc < 0) return store_failure(srv, c, rq, rc);
    rc = store_job_cancel(srv->store, job.id);
    if (rc == 0) queue_cancel(srv->queue, job.id);
    if (store_upload_get(srv->store, job.upload_id, &u) < 0)
        return http_send_error(c, rq, 404, "not_found", "id", NULL, "the job's upload is gone");
    if (rc == HARK_ESTALE)
        return http_send_failure(c, rq, HTTP_OP_STORE, rc, "id", upload_json(&u), "job %lld has already ended (%s)",
                                 (long long)job.id, job.state);
    if (rc < 0) return store_failure(srv, c, rq, rc);
    return http_send_json(c, rq, 200, upload_json(&u));
}
