/*
 * routes.c: the upload service's routes: upload, schedule, history,
 * results, the stored files (with byte ranges), delete, cancel, health and
 * metrics.
 *
 * An upload is first received into <data>/tmp, probed with FFmpeg, then
 * renamed to <data>/db/<uuid>/<name> and only then recorded; a duplicate
 * (the store refuses a second row with the same SHA-256) is removed again.
 * A crash between the rename and the row leaves a folder without a row,
 * which `hark serve` sweeps away at start-up; a crash earlier leaves a file
 * in <data>/tmp, swept too. Deleting removes the row first and the files
 * after, for the same reason.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hark.h"
#include "internal.h"
#include "media.h"
#include "queue.h"
#include "store.h"

/* ------------------------------------------------------------- helpers */

static int make_uuid(char *out)
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

/* A UUID as make_uuid writes it (lower-case hex, dashes at 8-4-4-4-12). */
static int is_uuid(const char *s)
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

/* The stored name of an uploaded file: its base name with bytes outside
 * [A-Za-z0-9._-] replaced by '_', leading dots dropped, at most 200 bytes,
 * "media" when nothing is left, and "media-" before a name that could be
 * taken for a result file. */
static void sanitize_name(const char *in, char *out, size_t len)
{
    const char *base = in, *p;
    size_t n = 0;
    for (p = in; *p; p++)
        if (*p == '/' || *p == '\\') base = p + 1;
    while (*base == '.') base++;
    if (!strncmp(base, "results.", 8)) n = (size_t)snprintf(out, len, "media-");
    for (p = base; *p && n + 1 < len && n < 200; p++) {
        char ch = *p;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '.' || ch == '_' || ch == '-';
        out[n++] = ok ? ch : '_';
    }
    out[n] = 0;
    if (!n) snprintf(out, len, "media");
}

const char *media_reason(const char *err, const char *path)
{
    size_t n = strlen(path);
    return strncmp(err, path, n) == 0 && strncmp(err + n, ": ", 2) == 0 ? err + n + 2 : err;
}

/* Removes a folder of plain files (an upload's folder) and the folder. */
static void remove_folder(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    if (d) {
        int fd = dirfd(d);
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                unlinkat(fd, e->d_name, 0);
        closedir(d);
    }
    rmdir(path);
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

static json_t *job_json(const struct store_job *j)
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

int check_model(struct http_server *srv, struct MHD_Connection *c, struct request *rq,
                const char *name, int openai, enum MHD_Result *ret)
{
    char path[PATH_MAX], list[1024];
    char **names = NULL;
    int n = 0, i;
    size_t off = 0;
    if (name && *name && models_resolve(srv->models_dir, name, path, sizeof path) == 0) return 0;
    models_list(srv->models_dir, &names, &n);
    list[0] = 0;
    for (i = 0; i < n && off + 1 < sizeof list; i++)
        off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", i ? ", " : "", names[i]);
    models_list_free(names, n);
    if (!name || !*name)
        *ret = http_send_error(c, rq, openai ? 404 : 400, "model_not_found", "model", NULL,
                               "no model given and no default model: the models folder %s "
                               "holds no ggml-*.bin files",
                               srv->models_dir);
    else if (n)
        *ret = http_send_error(c, rq, openai ? 404 : 400, "model_not_found", "model", NULL,
                               "unknown model \"%s\"; available: %s", name, list);
    else
        *ret = http_send_error(c, rq, openai ? 404 : 400, "model_not_found", "model", NULL,
                               "unknown model \"%s\": the models folder %s holds no models", name,
                               srv->models_dir);
    return -1;
}

static enum MHD_Result store_failure(struct http_server *srv, struct MHD_Connection *c,
                                     struct request *rq, int rc)
{
    if (rc == HARK_ENOENT)
        return http_send_error(c, rq, 404, "not_found", "id", NULL, "no upload with id \"%s\"", rq->id);
    return http_send_error(c, rq, 500, "storage", NULL, NULL, "database error: %s",
                           store_error(srv->store));
}

/* ------------------------------------------------------------- /upload */

enum MHD_Result route_upload(struct http_server *srv, struct MHD_Connection *c, struct request *rq)
{
    struct receive *rx = rq->rx;
    struct store_upload u, existing;
    struct media_info info;
    char sha[65], dir[PATH_MAX + 64], path[PATH_MAX + 384], err[512];
    const char *model;
    enum MHD_Result ret;
    int rc;

    if (receive_end(rx, sha) < 0)
        return http_send_error(c, rq, rx->status, rx->code, rx->param[0] ? rx->param : NULL, NULL,
                               "%s", rx->message);
    model = receive_field(rx, "model", 0);
    if (!model || !*model) model = srv->default_model;
    if (*model && check_model(srv, c, rq, model, 0, &ret) < 0) return ret;

    rc = media_probe(rx->tmp_path, &info, err, sizeof err);
    if (rc == HARK_EAUDIO || rc == HARK_EFORMAT)
        return http_send_error(c, rq, 415, "unsupported_media", "file", NULL,
                               "unsupported media: %s", media_reason(err, rx->tmp_path));
    if (rc < 0)
        return http_send_error(c, rq, 500, "media", "file", NULL, "cannot read the upload: %s", err);

    memset(&u, 0, sizeof u);
    if (make_uuid(u.id) < 0)
        return http_send_error(c, rq, 500, "internal", NULL, NULL, "no random numbers: %s",
                               strerror(errno));
    sanitize_name(rx->filename[0] ? rx->filename : "media", u.filename, sizeof u.filename);
    snprintf(u.sha256, sizeof u.sha256, "%s", sha);
    snprintf(u.content_type, sizeof u.content_type, "%s",
             info.content_type[0] ? info.content_type : "application/octet-stream");
    snprintf(u.model, sizeof u.model, "%s", model);
    store_now(u.upload_date);
    u.size = rx->bytes;
    u.duration_s = info.duration_s;

    snprintf(dir, sizeof dir, "%s/%s", srv->db_dir, u.id);
    snprintf(path, sizeof path, "%s/%s", dir, u.filename);
    if (mkdir(dir, 0755) < 0 || rename(rx->tmp_path, path) < 0) {
        rc = errno;
        rmdir(dir);
        return http_send_error(c, rq, 500, "storage", NULL, NULL, "cannot store the upload: %s",
                               strerror(rc));
    }
    rx->tmp_path[0] = 0;

    rc = store_upload_insert(srv->store, &u, &existing);
    if (rc != 0) {
        unlink(path);
        rmdir(dir);
        if (rc == STORE_DUPLICATE)
            return http_send_error(c, rq, 409, "duplicate", "file", upload_json(&existing),
                                   "this file was uploaded before, as %s", existing.id);
        return store_failure(srv, c, rq, rc);
    }
    pthread_mutex_lock(&srv->lock);
    srv->upload_bytes += u.size;
    pthread_mutex_unlock(&srv->lock);
    snprintf(u.status, sizeof u.status, "uploaded");
    return http_send_json(c, rq, 201, upload_json(&u));
}

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

enum MHD_Result route_model(struct http_server *srv, struct MHD_Connection *c, struct request *rq)
{
    json_t *body = NULL, *v;
    json_error_t jerr;
    struct store_upload u;
    struct store_job job;
    const char *id, *model, *language = "", *task = "transcribe", *path;
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
    char opt_err[256], options[512];
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
    rc = is_uuid(id) ? store_upload_get(srv->store, id, &u) : HARK_ENOENT;
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
    if (!model || !*model) model = u.model[0] ? u.model : srv->default_model;
    if (check_model(srv, c, rq, model, 0, &ret) < 0) goto out;

    rc = store_job_enqueue(srv->store, u.id, model, language, task, options, &job, &position);
    if (rc == STORE_ACTIVE) {
        rc = store_upload_get(srv->store, u.id, &u);
        if (rc < 0) {
            ret = store_failure(srv, c, rq, rc);
            goto out;
        }
        ret = http_send_error(c, rq, 409, "job_active", "id", upload_json(&u),
                              "upload %s already has a %s job (%lld)", u.id, u.status,
                              (long long)u.job_id);
        goto out;
    }
    if (rc < 0) {
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
        ret = http_send_error(c, rq, 500, "job_failed", NULL, upload_json(&u),
                              "the transcription failed: %s", u.error);
    else if (u.job_id == job.id && !strcmp(u.status, STORE_CANCELED))
        ret = http_send_error(c, rq, 409, "canceled", NULL, upload_json(&u),
                              "the job was canceled");
    else
        ret = http_send_json(c, rq, 200, upload_json(&u));
out:
    json_decref(body);
    return ret;
}

/* ------------------------------------------------------------ /uploads */

static int parse_count(const char *s, long long lo, long long hi, long long *out)
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

enum MHD_Result route_uploads(struct http_server *srv, struct MHD_Connection *c, struct request *rq)
{
    char buf[32];
    const char *s;
    long long limit = 100, offset = 0;
    struct store_upload *rows = NULL;
    int n = 0, i, rc;
    int64_t total = 0;
    json_t *list, *o;

    if ((s = http_query(c, "limit", buf, sizeof buf)) && parse_count(s, 1, 1000, &limit) < 0)
        return http_send_error(c, rq, 400, "invalid_request", "limit", NULL,
                               "limit must be a whole number from 1 to 1000");
    if ((s = http_query(c, "offset", buf, sizeof buf)) && parse_count(s, 0, INT64_MAX / 2, &offset) < 0)
        return http_send_error(c, rq, 400, "invalid_request", "offset", NULL,
                               "offset must be a whole number, 0 or more");
    rc = store_upload_list(srv->store, (int)limit, offset, &rows, &n, &total);
    if (rc < 0) return store_failure(srv, c, rq, rc);
    list = json_array();
    for (i = 0; i < n; i++) json_array_append_new(list, upload_json(&rows[i]));
    free(rows);
    o = json_pack("{s:o, s:I, s:I, s:I}", "uploads", list, "total", (json_int_t)total, "limit",
                  (json_int_t)limit, "offset", (json_int_t)offset);
    json_object_set_new(o, "next_offset", offset + n < total ? json_integer(offset + n) : json_null());
    return http_send_json(c, rq, 200, o);
}

enum MHD_Result route_upload_one(struct http_server *srv, struct MHD_Connection *c, struct request *rq)
{
    struct store_upload u;
    struct store_job job;
    char dir[PATH_MAX + 64];
    int rc = rq->bad_path || !is_uuid(rq->id) ? HARK_ENOENT : store_upload_get(srv->store, rq->id, &u);
    if (rc < 0) return store_failure(srv, c, rq, rc);
    if (strcmp(rq->method, "DELETE")) return http_send_json(c, rq, 200, upload_json(&u));

    if (store_job_active(srv->store, u.id, &job) == 0 && store_job_cancel(srv->store, job.id) == 0)
        queue_cancel(srv->queue, job.id);
    rc = store_upload_delete(srv->store, u.id);
    if (rc < 0) return store_failure(srv, c, rq, rc);
    snprintf(dir, sizeof dir, "%s/%s", srv->db_dir, u.id);
    remove_folder(dir);
    return http_send_json(c, rq, 200, json_pack("{s:s, s:b}", "id", u.id, "deleted", 1));
}

/* --------------------------------------------------------------- /jobs */

/* A job named by its number, or an upload's active job by the upload id. */
static int find_job(struct http_server *srv, const char *id, struct store_job *job)
{
    long long n;
    if (is_uuid(id)) return store_job_active(srv->store, id, job);
    if (parse_count(id, 1, INT64_MAX, &n) < 0) return HARK_ENOENT;
    return store_job_get(srv->store, (int64_t)n, job);
}

enum MHD_Result route_job(struct http_server *srv, struct MHD_Connection *c, struct request *rq)
{
    struct store_job job;
    int rc = rq->bad_path ? HARK_ENOENT : find_job(srv, rq->id, &job);
    if (rc == HARK_ENOENT)
        return http_send_error(c, rq, 404, "not_found", "id", NULL, "no job \"%s\"", rq->id);
    if (rc < 0) return store_failure(srv, c, rq, rc);
    return http_send_json(c, rq, 200, job_json(&job));
}

enum MHD_Result route_job_cancel(struct http_server *srv, struct MHD_Connection *c, struct request *rq)
{
    struct store_job job;
    struct store_upload u;
    int rc;
    if (rq->bad_path)
        return http_send_error(c, rq, 404, "not_found", "id", NULL, "no such job");
    rc = find_job(srv, rq->id, &job);
    if (rc == HARK_ENOENT && is_uuid(rq->id) && store_upload_get(srv->store, rq->id, &u) == 0)
        return http_send_error(c, rq, 409, "not_active", "id", upload_json(&u),
                               "upload %s has no queued or running job", u.id);
    if (rc == HARK_ENOENT)
        return http_send_error(c, rq, 404, "not_found", "id", NULL, "no job \"%s\"", rq->id);
    if (rc < 0) return store_failure(srv, c, rq, rc);
    rc = store_job_cancel(srv->store, job.id);
    if (rc == 0) queue_cancel(srv->queue, job.id);
    if (store_upload_get(srv->store, job.upload_id, &u) < 0)
        return http_send_error(c, rq, 404, "not_found", "id", NULL, "the job's upload is gone");
    if (rc == STORE_GONE)
        return http_send_error(c, rq, 409, "not_active", "id", upload_json(&u),
                               "job %lld has already ended (%s)", (long long)job.id, job.state);
    if (rc < 0) return store_failure(srv, c, rq, rc);
    return http_send_json(c, rq, 200, upload_json(&u));
}

/* ------------------------------------------------------------ /results */

struct format {
    const char *name, *ext, *type;
};

static const struct format formats[] = {
    {"json", "json", "application/json; charset=utf-8"},
    {"srt", "srt", "application/x-subrip; charset=utf-8"},
    {"vtt", "vtt", "text/vtt; charset=utf-8"},
    {"txt", "txt", "text/plain; charset=utf-8"},
    {"text", "txt", "text/plain; charset=utf-8"},
};

static const struct format *find_format(const char *name)
{
    size_t i;
    for (i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (!strcmp(formats[i].name, name)) return &formats[i];
    return NULL;
}

/* Serves an open file (taken) whole, with headers. */
static enum MHD_Result send_file(struct MHD_Connection *c, struct request *rq, int fd, int64_t size,
                                 const char *type, const char *disposition)
{
    struct MHD_Response *r = MHD_create_response_from_fd_at_offset64((uint64_t)size, fd, 0);
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (disposition) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_DISPOSITION, disposition);
    return http_send_response(c, rq, 200, r);
}

/* The subtitle options of a query: max_line_chars, max_lines,
 * max_cue_seconds and word_tags (WebVTT). Returns 1 when it names any, 0
 * when none, or -1 after queueing a 400. */
static int cue_query(struct MHD_Connection *c, struct request *rq, const struct format *f,
                     struct hark_cue_options *o, enum MHD_Result *ret)
{
    static const char *const names[] = {"max_line_chars", "max_lines", "max_cue_seconds", "word_tags"};
    char buf[64], why[160], *end;
    int any = 0;
    hark_cue_options_init(o);
    for (int i = 0; i < 4; i++) {
        const char *v = http_query(c, names[i], buf, sizeof buf);
        if (!v) continue;
        any = 1;
        if (strcmp(f->ext, "srt") && strcmp(f->ext, "vtt")) {
            *ret = http_send_error(c, rq, 400, "invalid_request", names[i], NULL,
                                   "%s applies to the srt and vtt formats", names[i]);
            return -1;
        }
        if (i == 3) {
            if (strcmp(f->ext, "vtt")) {
                *ret = http_send_error(c, rq, 400, "invalid_request", names[i], NULL,
                                       "word_tags applies to the vtt format");
                return -1;
            }
            o->word_tags = !strcmp(v, "1") || !strcmp(v, "true") ? 1 : !strcmp(v, "0") || !strcmp(v, "false") ? 0 : -1;
            if (o->word_tags < 0) {
                *ret = http_send_error(c, rq, 400, "invalid_request", names[i], NULL,
                                       "word_tags must be true or false, not \"%s\"", v);
                return -1;
            }
            continue;
        }
        double x = strtod(v, &end);
        if (!*v || *end || !isfinite(x) || (i < 2 && (x < 1 || x > 1e6 || x != floor(x)))) {
            *ret = http_send_error(c, rq, 400, "invalid_request", names[i], NULL, "%s must be a %s, not \"%s\"",
                                   names[i], i < 2 ? "whole number" : "number of seconds", v);
            return -1;
        }
        if (i == 0) o->max_line_chars = (int)x;
        else if (i == 1) o->max_lines = (int)x;
        else o->max_cue_s = x;
    }
    if (any && hark_cue_options_check(o, why, sizeof why) != 0) {
        *ret = http_send_error(c, rq, 400, "invalid_request", NULL, NULL, "%s", why);
        return -1;
    }
    return any;
}

enum MHD_Result route_results(struct http_server *srv, struct MHD_Connection *c, struct request *rq)
{
    struct store_upload u;
    const struct format *f;
    struct hark_cue_options cues;
    char buf[32], path[PATH_MAX + 128], disp[512], stem[256];
    const char *name, *dot;
    enum MHD_Result ret;
    struct stat st;
    int rc, fd, render;

    name = http_query(c, "format", buf, sizeof buf);
    f = find_format(name ? name : "json");
    if (!f)
        return http_send_error(c, rq, 400, "invalid_request", "format", NULL,
                               "unknown format \"%s\": use json, srt, vtt or txt", name);
    if ((render = cue_query(c, rq, f, &cues, &ret)) < 0) return ret;
    rc = rq->bad_path || !is_uuid(rq->id) ? HARK_ENOENT : store_upload_get(srv->store, rq->id, &u);
    if (rc < 0) return store_failure(srv, c, rq, rc);
    if (!u.model_ran)
        return http_send_error(c, rq, 404, "not_ready", "id", NULL,
                               "upload %s has not been transcribed yet (status: %s)", u.id, u.status);
    snprintf(path, sizeof path, "%s/%s/results.%s", srv->db_dir, u.id, render ? "json" : f->ext);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0) close(fd);
        return http_send_error(c, rq, 404, "not_ready", "id", NULL,
                               "the results of upload %s are missing", u.id);
    }
    snprintf(stem, sizeof stem, "%s", u.filename);
    dot = strrchr(stem, '.');
    if (dot && dot != stem) stem[dot - stem] = 0;
    name = http_query(c, "download", buf, sizeof buf);
    snprintf(disp, sizeof disp, "%s; filename=\"%s.%s\"",
             name && strcmp(name, "0") && strcmp(name, "false") ? "attachment" : "inline", stem, f->ext);
    if (!render) return send_file(c, rq, fd, st.st_size, f->type, disp);
    /* Cut again from the words in results.json. */
    char *text, err[256];
    size_t len;
    close(fd);
    rc = subtitles_render(path, strcmp(f->ext, "srt") ? HARK_FORMAT_VTT : HARK_FORMAT_SRT, &cues, &text, &len, err,
                          sizeof err);
    if (rc) return http_send_error(c, rq, 500, "internal", NULL, NULL, "%s", err);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, f->type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_DISPOSITION, disp);
    return http_send_response(c, rq, 200, r);
}

/* -------------------------------------------------------- /<id>/<file> */

static const char *file_type(const struct store_upload *u, const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!strcmp(name, u->filename)) return u->content_type;
    if (!strncmp(name, "results.", 8) && dot) {
        const struct format *f = find_format(dot + 1);
        if (f) return f->type;
    }
    return "application/octet-stream";
}

/* Parses a Range header for a file of size bytes. Returns 1 with [*first,
 * *last] for a satisfiable single range, 0 to serve the whole file (no
 * header, a syntax this server does not take, or several ranges), -1 for an
 * unsatisfiable range. */
static int parse_range(const char *h, int64_t size, int64_t *first, int64_t *last)
{
    const char *p;
    int64_t a = -1, b = -1;
    if (!h) return 0;
    while (*h == ' ') h++;
    if (strncasecmp(h, "bytes=", 6)) return 0;
    p = h + 6;
    while (*p == ' ') p++;
    if (strchr(p, ',')) return 0;
    if (*p >= '0' && *p <= '9') {
        a = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (a > (INT64_MAX - 9) / 10) return 0;
            a = a * 10 + (*p - '0');
        }
    }
    if (*p++ != '-') return 0;
    if (*p >= '0' && *p <= '9') {
        b = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (b > (INT64_MAX - 9) / 10) return 0;
            b = b * 10 + (*p - '0');
        }
    }
    while (*p == ' ') p++;
    if (*p) return 0;
    if (a < 0 && b < 0) return 0;
    if (a < 0) { /* a suffix: the last b bytes */
        if (b == 0 || size == 0) return -1;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 1;
    }
    if (b >= 0 && b < a) return 0;
    if (a >= size) return -1;
    *first = a;
    *last = b < 0 || b >= size ? size - 1 : b;
    return 1;
}

enum MHD_Result route_file(struct http_server *srv, struct MHD_Connection *c, struct request *rq)
{
    struct store_upload u;
    struct stat st;
    struct MHD_Response *r;
    char dir[PATH_MAX + 64], range[96];
    const char *type;
    int64_t first = 0, last = 0;
    int dfd = -1, fd = -1, rc, kind;

    if (rq->bad_path || !is_uuid(rq->id) || rq->file[0] == '.' ||
        store_upload_get(srv->store, rq->id, &u) < 0)
        return http_send_error(c, rq, 404, "not_found", NULL, NULL, "no such file");
    snprintf(dir, sizeof dir, "%s/%s", srv->db_dir, u.id);
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd >= 0) fd = openat(dfd, rq->file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    rc = fd >= 0 ? fstat(fd, &st) : -1;
    if (dfd >= 0) close(dfd);
    if (rc < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0) close(fd);
        return http_send_error(c, rq, 404, "not_found", NULL, NULL, "no such file");
    }
    type = file_type(&u, rq->file);
    kind = parse_range(MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE),
                       st.st_size, &first, &last);
    if (kind < 0) {
        struct MHD_Response *e;
        close(fd);
        snprintf(range, sizeof range, "bytes */%lld", (long long)st.st_size);
        e = http_error_response(416, "range_not_satisfiable", NULL, NULL,
                                "the range is outside the file");
        if (!e) return MHD_NO;
        MHD_add_response_header(e, MHD_HTTP_HEADER_CONTENT_RANGE, range);
        MHD_add_response_header(e, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
        return http_send_response(c, rq, 416, e);
    }
    if (kind == 0) {
        first = 0;
        last = st.st_size - 1;
    }
    r = MHD_create_response_from_fd_at_offset64((uint64_t)(last - first + 1), fd, (uint64_t)first);
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "private, max-age=3600");
    if (kind > 0) {
        snprintf(range, sizeof range, "bytes %lld-%lld/%lld", (long long)first, (long long)last,
                 (long long)st.st_size);
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, range);
        return http_send_response(c, rq, 206, r);
    }
    return http_send_response(c, rq, 200, r);
}

/* ------------------------------------------------- /health, /metrics, / */

enum MHD_Result route_health(struct http_server *srv, struct MHD_Connection *c, struct request *rq)
{
    struct store_stats st;
    struct queue_stats qs;
    if (store_stats(srv->store, &st) < 0)
        return http_send_json(c, rq, 503,
                              json_pack("{s:s, s:s}", "status", "unavailable", "reason",
                                        store_error(srv->store)));
    queue_stats(srv->queue, &qs);
    return http_send_json(c, rq, 200,
                          json_pack("{s:s, s:s, s:i, s:i, s:I, s:I, s:s}", "status", "ok",
                                    "database", "ok", "workers", qs.workers, "busy_workers",
                                    qs.busy_workers, "queued", (json_int_t)st.queued, "running",
                                    (json_int_t)st.running, "default_model", srv->default_model));
}

/* Writes a label value with Prometheus's escapes (backslash, quote, newline). */
static void label_value(FILE *f, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"') fputc('\\', f);
        if (*v == '\n') fputs("\\n", f);
        else fputc(*v, f);
    }
}

/* What every worker of every process sharing the database is running now:
 * one line per running job, by the worker holding it. */
static void worker_activity(struct http_server *srv, FILE *f)
{
    int64_t *ids = NULL;
    int n = 0;
    if (store_jobs_in_state(srv->store, STORE_RUNNING, &ids, &n) < 0) return;
    fputs("# HELP hark_worker_job_progress Progress (percent) of each running job, by the worker"
          " that holds it, in any process sharing the database.\n"
          "# TYPE hark_worker_job_progress gauge\n", f);
    for (int i = 0; i < n; i++) {
        struct store_job j;
        if (store_job_get(srv->store, ids[i], &j) < 0 || strcmp(j.state, STORE_RUNNING) != 0)
            continue;
        fputs("hark_worker_job_progress{worker=\"", f);
        label_value(f, j.worker);
        fprintf(f, "\",job=\"%lld\"} %.1f\n", (long long)j.id, j.progress);
    }
    free(ids);
}

enum MHD_Result route_metrics(struct http_server *srv, struct MHD_Connection *c, struct request *rq)
{
    struct store_stats st;
    struct queue_stats qs;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    struct MHD_Response *r;
    int i, have_store;
    if (!f) return MHD_NO;
    have_store = store_stats(srv->store, &st) == 0;
    queue_stats(srv->queue, &qs);
    fputs("# HELP hark_http_requests_total HTTP requests answered, by route, method and status.\n"
          "# TYPE hark_http_requests_total counter\n", f);
    pthread_mutex_lock(&srv->lock);
    for (i = 0; i < srv->n_metrics; i++) {
        const struct metric_slot *m = &srv->metrics[i];
        fprintf(f, "hark_http_requests_total{route=\"%s\",method=\"%s\",status=\"%d\"} %lld\n",
                route_name(m->route), m->method, m->status, (long long)m->count);
    }
    fprintf(f, "# HELP hark_upload_bytes_total Bytes of media accepted by POST /upload.\n"
               "# TYPE hark_upload_bytes_total counter\nhark_upload_bytes_total %lld\n",
            (long long)srv->upload_bytes);
    pthread_mutex_unlock(&srv->lock);
    if (have_store) {
        fprintf(f, "# HELP hark_queue_depth Jobs waiting in the queue.\n"
                   "# TYPE hark_queue_depth gauge\nhark_queue_depth %lld\n"
                   "# HELP hark_jobs_running Jobs being run now.\n"
                   "# TYPE hark_jobs_running gauge\nhark_jobs_running %lld\n"
                   "# HELP hark_uploads Uploads stored.\n"
                   "# TYPE hark_uploads gauge\nhark_uploads %lld\n",
                (long long)st.queued, (long long)st.running, (long long)st.uploads);
        fprintf(f, "# HELP hark_jobs Jobs in the database, by state.\n"
                   "# TYPE hark_jobs gauge\n"
                   "hark_jobs{state=\"queued\"} %lld\nhark_jobs{state=\"running\"} %lld\n"
                   "hark_jobs{state=\"done\"} %lld\nhark_jobs{state=\"failed\"} %lld\n"
                   "hark_jobs{state=\"canceled\"} %lld\n",
                (long long)st.queued, (long long)st.running, (long long)st.done,
                (long long)st.failed, (long long)st.canceled);
        worker_activity(srv, f);
    }
    fprintf(f, "# HELP hark_jobs_done_total Jobs finished by this process.\n"
               "# TYPE hark_jobs_done_total counter\nhark_jobs_done_total %lld\n"
               "# HELP hark_jobs_failed_total Jobs failed in this process.\n"
               "# TYPE hark_jobs_failed_total counter\nhark_jobs_failed_total %lld\n"
               "# HELP hark_jobs_canceled_total Jobs canceled while this process ran them.\n"
               "# TYPE hark_jobs_canceled_total counter\nhark_jobs_canceled_total %lld\n"
               "# HELP hark_jobs_released_total Jobs this process handed back to the queue when"
               " it stopped.\n"
               "# TYPE hark_jobs_released_total counter\nhark_jobs_released_total %lld\n"
               "# HELP hark_jobs_lost_total Jobs this process lost to lease expiry (taken back"
               " while it ran them) or could not record.\n"
               "# TYPE hark_jobs_lost_total counter\nhark_jobs_lost_total %lld\n"
               "# HELP hark_audio_seconds_total Seconds of audio transcribed.\n"
               "# TYPE hark_audio_seconds_total counter\nhark_audio_seconds_total %.3f\n"
               "# HELP hark_model_seconds_total Seconds workers spent transcribing.\n"
               "# TYPE hark_model_seconds_total counter\nhark_model_seconds_total %.3f\n"
               "# HELP hark_realtime_factor Model seconds per audio second, over all work.\n"
               "# TYPE hark_realtime_factor gauge\nhark_realtime_factor %.6f\n"
               "# HELP hark_workers Worker threads, and how many are busy.\n"
               "# TYPE hark_workers gauge\nhark_workers %d\n"
               "# HELP hark_workers_busy Worker threads running a job now.\n"
               "# TYPE hark_workers_busy gauge\nhark_workers_busy %d\n",
            (long long)qs.jobs_done, (long long)qs.jobs_failed, (long long)qs.jobs_canceled,
            (long long)qs.jobs_released, (long long)qs.jobs_lost, qs.audio_seconds, qs.busy_seconds,
            qs.audio_seconds > 0 ? qs.busy_seconds / qs.audio_seconds : 0.0, qs.workers,
            qs.busy_workers);
    fclose(f);
    r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
    return http_send_response(c, rq, 200, r);
}
