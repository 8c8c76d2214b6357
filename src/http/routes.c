/*
 * routes.c: what the service's routes share: upload ids (random UUIDs),
 * the JSON shapes of an upload and of a job, the check of a model name
 * against the models folder, which uploads a request's sender may see, and
 * the answer to a failed store call.
 *
 * The routes themselves live by resource: uploads.c (/upload, /uploads),
 * jobs.c (/model, /jobs), results.c (/results and the stored files),
 * ops.c (/health, /metrics) and openai.c (/v1).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "hark.h"
#include "internal.h"
#include "queue.h"
#include "store.h"

/* ------------------------------------------------------------- helpers */

int make_uuid(char *out)
{
    unsigned char b[16];
    size_t got = 0;
    int i;
    while (got < sizeof b) {
        ssize_t r = getrandom(b + got, sizeof b - got, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        got += (size_t)r;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    for (i = 0; i < 16; i++) {
        static const int dash_after[] = {3, 5, 7, 9};
        int j;
        out += sprintf(out, "%02x", b[i]);
        for (j = 0; j < 4; j++)
            if (i == dash_after[j]) *out++ = '-';
    }
    *out = 0;
    return 0;
}

int is_uuid(const char *s)
{
    int i;
    if (strlen(s) != 36) return 0;
    for (i = 0; i < 36; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    }
    return 1;
}

json_t *upload_json(const struct store_upload *u)
{
    char location[512];
    json_t *o;
    snprintf(location, sizeof location, "/%s/%s", u->id, u->filename);
    o = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:f, s:s, s:b, s:s, s:s, s:f}",
                  "id", u->id, "filename", u->filename, "location", location,
                  "size", (json_int_t)u->size, "sha256", u->sha256,
                  "content_type", u->content_type, "duration_s", u->duration_s,
                  "model", u->model, "model_ran", u->model_ran, "upload_date", u->upload_date,
                  "status", u->status[0] ? u->status : "uploaded", "progress", u->progress);
    if (!o) return NULL;
    json_object_set_new(o, "job_id", u->job_id ? json_integer(u->job_id) : json_null());
    json_object_set_new(o, "owner", u->owner[0] ? json_string(u->owner) : json_null());
    if (!strcmp(u->status, STORE_QUEUED))
        json_object_set_new(o, "queue_position", json_integer(u->queue_position));
    if (!strcmp(u->status, STORE_FAILED) && u->error[0])
        json_object_set_new(o, "error", json_string(u->error));
    if (u->model_ran) {
        char results[64];
        snprintf(results, sizeof results, "/results/%s", u->id);
        json_object_set_new(o, "time", json_real(u->time_s));
        json_object_set_new(o, "model_date", json_string(u->model_date));
        json_object_set_new(o, "language", json_string(u->language));
        json_object_set_new(o, "results", json_string(results));
    }
    return o;
}

json_t *job_json(const struct store_job *j)
{
    /* The job's own speech detection and word timestamps: null when it
     * takes the default. */
    json_t *opts = j->options[0] ? json_loads(j->options, 0, NULL) : NULL, *vad = json_object_get(opts, "vad");
    json_t *words = json_object_get(opts, "word_timestamps");
    vad = vad ? json_incref(vad) : json_null();
    words = words ? json_incref(words) : json_null();
    json_decref(opts);
    return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:f, s:i, s:s, s:o, s:o, s:o, s:o, s:o, s:o}",
                     "id", (json_int_t)j->id, "upload_id", j->upload_id, "model", j->model,
                     "language", j->language, "task", j->task, "state", j->state,
                     "progress", j->progress, "attempts", j->attempts, "created", j->created,
                     "started", j->started[0] ? json_string(j->started) : json_null(),
                     "finished", j->finished[0] ? json_string(j->finished) : json_null(),
                     "worker", j->worker[0] ? json_string(j->worker) : json_null(),
                     "error", j->error[0] ? json_string(j->error) : json_null(), "vad", vad,
                     "word_timestamps", words);
}

/* The models folder's names, "a, b, c", into list. */
static void model_names(const char *dir, char *list, size_t len)
{
    char **names = NULL;
    int n = 0;
    size_t off = 0;
    models_list(dir, &names, &n);
    list[0] = 0;
    for (int i = 0; i < n && off + 1 < len; i++)
        off += (size_t)snprintf(list + off, len - off, "%s%s", i ? ", " : "", names[i]);
    models_list_free(names, n);
}

/* The last component of a model's name or path, for a message. */
static const char *model_label(const char *model)
{
    const char *slash = strrchr(model, '/');
    return slash ? slash + 1 : model;
}

/* Whether the model in path can do the task in the language: 0, or a
 * HARK_E* code with a reason for the client in err. */
static int model_can(const char *path, const char *model, int translate, const char *language, char *err,
                     size_t errlen)
{
    struct hark_hparams hp;
    char why[512];
    int lang = language && *language && strcmp(language, "auto") ? hark_lang_index(language) : -1;
    if (!translate && lang <= 0) return 0;
    int rc = hark_model_peek(path, &hp, why, sizeof why);
    if (rc == HARK_ENOENT) {
        snprintf(err, errlen, "model \"%s\" is no longer in the models folder", model_label(model));
        return rc;
    }
    if (rc) {
        snprintf(err, errlen, "model \"%s\" cannot be read as a Whisper model", model_label(model));
        return rc;
    }
    if (hp.n_vocab >= 51865) return 0;
    if (translate)
        snprintf(err, errlen, "model \"%s\" is English-only and cannot translate: choose a multilingual model",
                 model_label(model));
    else
        snprintf(err, errlen, "model \"%s\" is English-only and cannot transcribe \"%s\": choose a "
                 "multilingual model, or language \"en\"", model_label(model), language);
    return HARK_EINVAL;
}

const char *check_model(struct http_server *srv, struct MHD_Connection *c, struct request *rq, const char *asked,
                        const char *fallback, int translate, const char *language, enum MHD_Result *ret)
{
    char path[PATH_MAX], list[1024], err[1200];
    int chosen = asked && *asked; /* by the client: a name only */
    const char *model = chosen ? asked : fallback;
    int rc;

    if (!model || !*model) {
        *ret = http_send_failure(c, rq, HTTP_OP_MODEL, HARK_ENOENT, "model", NULL,
                                 "no model given, and the server has no default model: its models folder "
                                 "holds no models");
        return NULL;
    }
    rc = chosen ? models_find(srv->models_dir, model, path, sizeof path)
                : models_resolve(srv->models_dir, model, path, sizeof path);
    if (rc < 0) {
        model_names(srv->models_dir, list, sizeof list);
        if (!chosen)
            *ret = http_send_failure(c, rq, HTTP_OP_MODEL, rc, "model", NULL,
                                     "the model \"%s\" is no longer available; available: %s",
                                     model_label(model), *list ? list : "none");
        else if (*list)
            *ret = http_send_failure(c, rq, HTTP_OP_MODEL, rc, "model", NULL,
                                     "unknown model \"%s\"; available: %s", model, list);
        else
            *ret = http_send_failure(c, rq, HTTP_OP_MODEL, rc, "model", NULL,
                                     "unknown model \"%s\": the server's models folder holds no models", model);
        return NULL;
    }
    rc = model_can(path, model, translate, language, err, sizeof err);
    if (rc < 0) {
        *ret = http_send_failure(c, rq, HTTP_OP_MODEL, rc, rc == HARK_EINVAL ? (translate ? "task" : "language")
                                                                            : "model",
                                 NULL, "%s", err);
        return NULL;
    }
    return model;
}

int visible_upload_get(struct http_server *srv, const struct request *rq, const char *id,
                       struct store_upload *out)
{
    int rc = store_upload_get(srv->store, id, out);
    if (rc == 0 && !rq->admin && strcmp(out->owner, rq->owner) != 0) return HARK_ENOENT;
    return rc;
}

enum MHD_Result store_failure(struct http_server *srv, struct MHD_Connection *c,
                                     struct request *rq, int rc)
{
    if (rc == HARK_ENOENT)
        return http_send_failure(c, rq, HTTP_OP_STORE, rc, "id", NULL, "no upload with id \"%s\"", rq->id);
    return http_send_failure(c, rq, HTTP_OP_STORE, rc, NULL, NULL, "database error: %s", store_error(srv->store));
}

int parse_count(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    long long v;
    if (!s || !*s) return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}
