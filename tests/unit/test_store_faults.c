/*
 * test_store_faults.c: the service when its store fails one call.
 *
 * A real server (http_start) and queue (queue_start, one worker) run in
 * this process on a SQLite store in the test's temporary folder, seen
 * through a store that passes every call on but fails one chosen call with
 * HARK_EIO, as a database that drops a connection or hits a full disk
 * does. A client goes through an upload's whole life over HTTP: upload 1 s
 * of silence, schedule it, wait until it is done, read its results, delete
 * it. It acts as a careful client does: a 5xx is repeated (a 409 after a
 * repeated POST /model counts as scheduled, the first try having queued the
 * job), and a job that ended failed is scheduled again.
 *
 * First a run without faults records the calls the life makes, in order.
 * Then the life is lived once for every one of those calls failing (its
 * k-th call of that operation), and once each for the first claim of a job,
 * the first and second lease renewals and progress writes, whose number
 * depends on timing. The client watches the job in the database itself.
 * After each: every 5xx had an error object with a one-line message, a job
 * that failed says why in one line, the results were whole when read, the
 * delete left no row, no folder and no temporary file, no job is left
 * queued or running, and /health still answers 200. The fault must have
 * fired; under the sanitizers only the first of a run of calls to the same
 * operation is failed, to bound the time.
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "backend.h"
#include "datadir.h"
#include "harness.h"
#include "hark.h"
#include "http.h"
#include "queue.h"
#include "store.h"

#define MODEL "rt-mini.en-f16"
#define LEASE_MS 1500
#define MAX_TRACE 256
#define OP_NAME 24

#if defined(__SANITIZE_ADDRESS__)
#define SLOW 6
#else
#define SLOW 1
#endif

/* ------------------------------------------------------- the faulty store */

struct fault_store {
    struct store base;         /* first: a struct store * is one of these */
    struct store *inner;
    pthread_mutex_t mu;
    int tracing;               /* record the calls of the ops counted */
    char trace[MAX_TRACE][OP_NAME];
    int n_trace;
    char fail_op[OP_NAME];     /* the operation to fail, "" for none */
    int fail_k;                /* its k-th call (from 1) since arming */
    int seen;                  /* calls of fail_op since arming */
    int fired;
};

static struct fault_store fs;

/* Whether this call of op is the one to fail; a traced op's call is
 * recorded in the trace. */
static int fault_call(const char *op, int traced)
{
    int hit = 0;
    pthread_mutex_lock(&fs.mu);
    if (traced && fs.tracing && fs.n_trace < MAX_TRACE) snprintf(fs.trace[fs.n_trace++], OP_NAME, "%s", op);
    if (fs.fail_op[0] && !strcmp(fs.fail_op, op) && ++fs.seen == fs.fail_k) hit = fs.fired = 1;
    pthread_mutex_unlock(&fs.mu);
    if (hit) store_set_error("injected failure of %s", op);
    return hit;
}

/* The operations whose calls the life makes in a fixed order are traced;
 * claims, lease renewals and progress come at times of their own and are
 * not. */
#define PASS(op, ...) return fault_call(#op, 1) ? HARK_EIO : fs.inner->ops->op(fs.inner, __VA_ARGS__)

static void f_close(struct store *s) {}
static int f_upload_insert(struct store *s, const struct store_upload *u, struct store_upload *e)
{
    PASS(upload_insert, u, e);
}
static int f_upload_get(struct store *s, const char *id, struct store_upload *out) { PASS(upload_get, id, out); }
static int f_upload_list(struct store *s, const char *owner, int limit, int64_t offset, struct store_upload **rows,
                         int *n, int64_t *total)
{
    PASS(upload_list, owner, limit, offset, rows, n, total);
}
static int f_upload_delete(struct store *s, const char *id) { PASS(upload_delete, id); }
static int f_job_enqueue(struct store *s, const char *upload_id, const char *model, const char *language,
                         const char *task, const char *options, struct store_job *out, int *position)
{
    PASS(job_enqueue, upload_id, model, language, task, options, out, position);
}
static int f_job_get(struct store *s, int64_t id, struct store_job *out) { PASS(job_get, id, out); }
static int f_job_active(struct store *s, const char *upload_id, struct store_job *out)
{
    PASS(job_active, upload_id, out);
}
static int f_job_finish(struct store *s, int64_t id, const char *worker, const char *model, const char *language,
                        double time_s, const struct store_segment *segs, int n_segs)
{
    PASS(job_finish, id, worker, model, language, time_s, segs, n_segs);
}
static int f_job_fail(struct store *s, int64_t id, const char *worker, const char *error)
{
    PASS(job_fail, id, worker, error);
}
static int f_job_release(struct store *s, int64_t id, const char *worker) { PASS(job_release, id, worker); }
static int f_job_cancel(struct store *s, int64_t id) { PASS(job_cancel, id); }
/* A segment and a checkpoint per window: as many in every run. */
static int f_job_segment_put(struct store *s, int64_t id, const char *worker, const struct store_job_segment *g)
{
    PASS(job_segment_put, id, worker, g);
}
static int f_job_checkpoint(struct store *s, int64_t id, const char *worker, double at, int n)
{
    PASS(job_checkpoint, id, worker, at, n);
}
static int f_job_segments_trim(struct store *s, int64_t id, int from) { PASS(job_segments_trim, id, from); }

/* Untraced: their calls depend on timing. */
#define PASS_UNTRACED(op, ...) return fault_call(#op, 0) ? HARK_EIO : fs.inner->ops->op(fs.inner, __VA_ARGS__)

static int f_job_claim(struct store *s, const char *worker, struct store_job *out)
{
    /* Only a claim that would take a job counts: peek first. */
    struct store_stats st;
    if (fs.inner->ops->stats(fs.inner, &st) == 0 && st.queued > 0 && fault_call("job_claim", 0)) return HARK_EIO;
    return fs.inner->ops->job_claim(fs.inner, worker, out);
}
static int f_job_heartbeat(struct store *s, int64_t id, const char *worker)
{
    PASS_UNTRACED(job_heartbeat, id, worker);
}
static int f_job_progress(struct store *s, int64_t id, const char *worker, double progress)
{
    PASS_UNTRACED(job_progress, id, worker, progress);
}
static int f_wait_news(struct store *s, int timeout_ms)
{
    return fs.inner->ops->wait_news ? fs.inner->ops->wait_news(fs.inner, timeout_ms) : HARK_ENOTSUP;
}
static int f_requeue_running(struct store *s, int *n) { return fs.inner->ops->requeue_running(fs.inner, n); }
static int f_requeue_expired(struct store *s, int *n) { return fs.inner->ops->requeue_expired(fs.inner, n); }
static int f_jobs_in_state(struct store *s, const char *state, int64_t **ids, int *n)
{
    return fs.inner->ops->jobs_in_state(fs.inner, state, ids, n);
}
static int f_stats(struct store *s, struct store_stats *out) { return fs.inner->ops->stats(fs.inner, out); }
static int f_key_add(struct store *s, const char *name, const char *hash, int admin)
{
    return fs.inner->ops->key_add(fs.inner, name, hash, admin);
}
static int f_key_list(struct store *s, struct store_key **rows, int *n)
{
    return fs.inner->ops->key_list(fs.inner, rows, n);
}
static int f_key_revoke(struct store *s, const char *name) { return fs.inner->ops->key_revoke(fs.inner, name); }
static int f_key_find(struct store *s, const char *hash, struct store_key *out)
{
    return fs.inner->ops->key_find(fs.inner, hash, out);
}
static int f_key_count(struct store *s, int64_t *n) { return fs.inner->ops->key_count(fs.inner, n); }
static int f_index_set(struct store *s, const char *id, const struct store_segment *segs, int n)
{
    return fs.inner->ops->index_set(fs.inner, id, segs, n);
}
static int f_search(struct store *s, const char *fts, const char *tsq, const char *owner, int limit, int64_t offset,
                    struct store_hit **hits, int *n, int64_t *total)
{
    return fs.inner->ops->search(fs.inner, fts, tsq, owner, limit, offset, hits, n, total);
}
static int f_uploads_ran(struct store *s, char ***ids, int *n) { return fs.inner->ops->uploads_ran(fs.inner, ids, n); }
static int f_job_segments(struct store *s, int64_t id, int after, int limit, struct store_job_segment **rows, int *n)
{
    return fs.inner->ops->job_segments(fs.inner, id, after, limit, rows, n);
}
static int f_job_set_callback(struct store *s, int64_t id, const char *url)
{
    return fs.inner->ops->job_set_callback(fs.inner, id, url);
}
static int f_callback_claim(struct store *s, int hold_ms, struct store_callback *out)
{
    return fs.inner->ops->callback_claim(fs.inner, hold_ms, out);
}
static int f_callback_record(struct store *s, int64_t id, int n, int status, const char *error, const char *state,
                             int retry_ms)
{
    return fs.inner->ops->callback_record(fs.inner, id, n, status, error, state, retry_ms);
}
static int f_callback_attempts(struct store *s, int64_t id, struct store_callback_attempt **rows, int *n)
{
    return fs.inner->ops->callback_attempts(fs.inner, id, rows, n);
}

static const struct store_backend fault_backend = {
    .name = "faulty", .shared = 0, .close = f_close,
    .upload_insert = f_upload_insert, .upload_get = f_upload_get, .upload_list = f_upload_list,
    .upload_delete = f_upload_delete, .job_enqueue = f_job_enqueue, .job_get = f_job_get,
    .job_active = f_job_active, .job_claim = f_job_claim, .job_heartbeat = f_job_heartbeat,
    .job_progress = f_job_progress, .job_finish = f_job_finish, .job_fail = f_job_fail,
    .job_release = f_job_release, .job_cancel = f_job_cancel, .requeue_running = f_requeue_running,
    .requeue_expired = f_requeue_expired, .wait_news = f_wait_news, .jobs_in_state = f_jobs_in_state,
    .stats = f_stats, .key_add = f_key_add, .key_list = f_key_list, .key_revoke = f_key_revoke,
    .key_find = f_key_find, .key_count = f_key_count, .index_set = f_index_set, .search = f_search,
    .uploads_ran = f_uploads_ran, .job_segment_put = f_job_segment_put, .job_segments = f_job_segments,
    .job_segments_trim = f_job_segments_trim, .job_checkpoint = f_job_checkpoint,
    .job_set_callback = f_job_set_callback, .callback_claim = f_callback_claim,
    .callback_record = f_callback_record, .callback_attempts = f_callback_attempts,
};

static void arm(const char *op, int k)
{
    pthread_mutex_lock(&fs.mu);
    snprintf(fs.fail_op, sizeof fs.fail_op, "%s", op ? op : "");
    fs.fail_k = k;
    fs.seen = 0;
    fs.fired = 0;
    pthread_mutex_unlock(&fs.mu);
}

/* ------------------------------------------------------------- the client */

static char base_url[64];
static char data_dir[PATH_MAX - 64];
static char media_path[PATH_MAX];

struct resp {
    long status;
    char body[16384];
    size_t len;
};

static size_t on_body(char *p, size_t size, size_t n, void *user)
{
    struct resp *r = user;
    size_t take = size * n;
    if (take > sizeof r->body - 1 - r->len) take = sizeof r->body - 1 - r->len;
    memcpy(r->body + r->len, p, take);
    r->len += take;
    r->body[r->len] = 0;
    return size * n;
}

/* One request; a file to upload, or a JSON body, or neither. 0 on an answer. */
static int request(const char *method, const char *path, const char *json, const char *file, struct resp *r)
{
    char url[256];
    CURL *c = curl_easy_init();
    curl_mime *mime = NULL;
    struct curl_slist *hdr = NULL;
    CURLcode cc;
    memset(r, 0, sizeof *r);
    snprintf(url, sizeof url, "%s%s", base_url, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L * SLOW);
    if (file) {
        mime = curl_mime_init(c);
        curl_mimepart *part = curl_mime_addpart(mime);
        curl_mime_name(part, "file");
        curl_mime_filedata(part, file);
        curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
    } else if (json) {
        hdr = curl_slist_append(hdr, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
    }
    cc = curl_easy_perform(c);
    if (cc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_mime_free(mime);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    return cc == CURLE_OK ? 0 : -1;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* What a run of the life saw that breaks a rule; "" when none. */
static char broken[512];

#define BREAK(...)                                                                                          \
    do {                                                                                                    \
        if (!broken[0]) snprintf(broken, sizeof broken, __VA_ARGS__);                                      \
    } while (0)

/* An error answer must be an error object with a one-line message. */
static void check_error_body(const char *what, const struct resp *r)
{
    json_t *o = json_loads(r->body, 0, NULL), *e = json_object_get(o, "error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    if (!msg || !*msg || strchr(msg, '\n') || !json_string_value(json_object_get(e, "code")))
        BREAK("%s: %ld without an error object: %.200s", what, r->status, r->body);
    json_decref(o);
}

/* The request repeated while it is answered 5xx (at most 4 times); the
 * last answer in r. */
static void persist(const char *what, const char *method, const char *path, const char *json, const char *file,
                    struct resp *r)
{
    for (int i = 0; i < 4; i++) {
        if (request(method, path, json, file, r) < 0) {
            BREAK("%s: no answer", what);
            return;
        }
        if (r->status < 500) return;
        check_error_body(what, r);
    }
}

/* Waits for the upload's job to end, watching the database itself (so
 * that the number of calls the service makes does not depend on time); a
 * failed job (with its one-line reason) is scheduled again, at most twice.
 * 0 when done. */
static int wait_done(const char *id, const char *schedule)
{
    struct resp r;
    struct store_upload u;
    int again = 0;
    for (int i = 0; i < 600 * SLOW; i++) {
        if (store_upload_get(fs.inner, id, &u) != 0) {
            BREAK("the upload's row is gone: %s", store_error(fs.inner));
            return -1;
        }
        int failed = !strcmp(u.status, STORE_FAILED);
        if (failed && (!u.error[0] || strchr(u.error, '\n'))) BREAK("a failed job without a one-line reason");
        if (!strcmp(u.status, STORE_DONE)) return 0;
        if (failed) {
            if (++again > 2) {
                BREAK("the job failed three times");
                return -1;
            }
            persist("POST /model again", "POST", "/model", schedule, NULL, &r);
            if (r.status != 202) {
                BREAK("POST /model after a failure: %ld %.200s", r.status, r.body);
                return -1;
            }
        }
        sleep_ms(100);
    }
    BREAK("the job did not end within %d s", 60 * SLOW);
    return -1;
}

/* One upload's life; the rules it broke in `broken`. */
static void life(void)
{
    struct resp r;
    char id[64] = "", path[128], schedule[128], dir[PATH_MAX];
    json_t *o;
    broken[0] = 0;

    persist("POST /upload", "POST", "/upload", NULL, media_path, &r);
    o = json_loads(r.body, 0, NULL);
    const char *v = json_string_value(json_object_get(o, "id"));
    if (r.status == 201 && v) snprintf(id, sizeof id, "%s", v);
    json_decref(o);
    if (!id[0]) {
        BREAK("POST /upload: %ld %.200s", r.status, r.body);
        return;
    }

    snprintf(schedule, sizeof schedule, "{\"id\":\"%s\"}", id);
    for (int i = 0; i < 4; i++) {
        if (request("POST", "/model", schedule, NULL, &r) < 0) break;
        if (r.status == 202 || (i > 0 && r.status == 409)) break;
        if (r.status < 500) break;
        check_error_body("POST /model", &r);
    }
    if (r.status != 202 && r.status != 409) BREAK("POST /model: %ld %.200s", r.status, r.body);
    else wait_done(id, schedule);
    snprintf(path, sizeof path, "/uploads/%s", id);
    persist("GET /uploads/<id>", "GET", path, NULL, NULL, &r);
    o = json_loads(r.body, 0, NULL);
    const char *st = json_string_value(json_object_get(o, "status"));
    if (r.status != 200 || !st || strcmp(st, "done")) BREAK("GET /uploads/<id>: %ld %.200s", r.status, r.body);
    json_decref(o);

    snprintf(path, sizeof path, "/results/%s", id);
    persist("GET /results/<id>", "GET", path, NULL, NULL, &r);
    o = json_loads(r.body, 0, NULL);
    if (r.status != 200 || !json_is_array(json_object_get(o, "segments")))
        BREAK("GET /results: %ld %.200s", r.status, r.body);
    json_decref(o);

    snprintf(path, sizeof path, "/uploads/%s", id);
    persist("DELETE /uploads/<id>", "DELETE", path, NULL, NULL, &r);
    if (r.status != 200) BREAK("DELETE: %ld %.200s", r.status, r.body);
    persist("GET /uploads/<id> after the delete", "GET", path, NULL, NULL, &r);
    if (r.status != 404) BREAK("GET after the delete: %ld", r.status);

    /* Nothing left: no folder, no temporary file, no row, no job. */
    snprintf(dir, sizeof dir, "%s/db", data_dir);
    if (t_count_files(dir) != 0) BREAK("%d folder(s) left in db/", t_count_files(dir));
    snprintf(dir, sizeof dir, "%s/tmp", data_dir);
    if (t_count_files(dir) != 0) BREAK("%d file(s) left in tmp/", t_count_files(dir));
    struct store_stats ss;
    if (store_stats(fs.inner, &ss) != 0) BREAK("store_stats: %s", store_error(fs.inner));
    else if (ss.uploads || ss.queued || ss.running)
        BREAK("left in the store: %lld uploads, %lld queued, %lld running", (long long)ss.uploads,
              (long long)ss.queued, (long long)ss.running);
    if (request("GET", "/health", NULL, NULL, &r) < 0 || r.status != 200) BREAK("/health: %ld", r.status);
}

/* ------------------------------------------------------------------ tests */

static struct http_server *srv;
static struct queue *queue;

static int start(void)
{
    char err[512], db[PATH_MAX];
    const char *models;
    struct queue_config qc;
    struct http_config hc;
    FILE *f;

    snprintf(data_dir, sizeof data_dir, "%s/data", t_tmpdir());
    if (datadir_make(data_dir, err, sizeof err) < 0) {
        CHECKF(0, "%s", err);
        return -1;
    }
    snprintf(db, sizeof db, "%s/hark.db", data_dir);
    if (store_open(db, &fs.inner, err, sizeof err) < 0) {
        CHECKF(0, "store_open: %s", err);
        return -1;
    }
    pthread_mutex_init(&fs.mu, NULL);
    fs.base.ops = &fault_backend;
    fs.base.lease_ms = LEASE_MS;

    /* One second of silence: the cheapest audio for the random-weight model. */
    snprintf(media_path, sizeof media_path, "%s/silence.wav", t_tmpdir());
    f = fopen(media_path, "wb");
    if (!f) return -1;
    static const unsigned char head[44] = {'R', 'I', 'F', 'F', 36, 125, 0, 0, 'W', 'A', 'V', 'E', 'f', 'm', 't', ' ',
                                           16, 0, 0, 0, 1, 0, 1, 0, 0x80, 0x3e, 0, 0, 0, 0x7d, 0, 0,
                                           2, 0, 16, 0, 'd', 'a', 't', 'a', 0, 125, 0, 0};
    static const short zeros[16000];
    fwrite(head, 1, sizeof head, f);
    fwrite(zeros, 1, sizeof zeros, f);
    fclose(f);

    models = t_shared("models", "");
    static char models_dir[PATH_MAX];
    snprintf(models_dir, sizeof models_dir, "%s", models);
    memset(&qc, 0, sizeof qc);
    qc.data_dir = data_dir;
    qc.models_dir = models_dir;
    qc.default_model = MODEL;
    qc.workers = 1;
    qc.threads = 2;
    qc.worker_name = "test";
    qc.lease_ms = LEASE_MS;
    if (queue_start(&fs.base, &qc, &queue, err, sizeof err) < 0) {
        CHECKF(0, "queue_start: %s", err);
        return -1;
    }
    memset(&hc, 0, sizeof hc);
    hc.host = "127.0.0.1";
    hc.data_dir = data_dir;
    hc.models_dir = models_dir;
    hc.default_model = MODEL;
    hc.max_upload_bytes = 1 << 20;
    hc.max_connections = 64;
    hc.idle_timeout_s = 30;
    if (http_start(&hc, &fs.base, queue, &srv, err, sizeof err) < 0) {
        CHECKF(0, "http_start: %s", err);
        return -1;
    }
    snprintf(base_url, sizeof base_url, "http://127.0.0.1:%d", http_port(srv));
    return 0;
}

/* The calls of the life, in order, as (operation, k-th call of it). */
static char trace[MAX_TRACE][OP_NAME];
static int n_trace;

static void test_clean_life(void)
{
    pthread_mutex_lock(&fs.mu);
    fs.tracing = 1;
    fs.n_trace = 0;
    pthread_mutex_unlock(&fs.mu);
    arm(NULL, 0);
    life();
    pthread_mutex_lock(&fs.mu);
    fs.tracing = 0;
    n_trace = fs.n_trace;
    memcpy(trace, fs.trace, sizeof trace);
    pthread_mutex_unlock(&fs.mu);
    CHECKF(!broken[0], "without faults: %s", broken);
    CHECKF(n_trace >= 8 && n_trace < MAX_TRACE, "%d store calls traced", n_trace);
    printf("  a life without faults makes %d traced store calls:", n_trace);
    for (int i = 0; i < n_trace; i++) printf(" %s", trace[i]);
    printf("\n");
}

/* One life with the k-th call of op failing. */
static int faulty_life(const char *op, int k, int must_fire)
{
    arm(op, k);
    life();
    pthread_mutex_lock(&fs.mu);
    int fired = fs.fired;
    pthread_mutex_unlock(&fs.mu);
    arm(NULL, 0);
    CHECKF(!broken[0], "%s call %d failing: %s", op, k, broken);
    if (must_fire) CHECKF(fired, "%s call %d failing: the fault never fired", op, k);
    return fired;
}

static void test_every_call_fails(void)
{
    int runs = 0, fired = 0;
    CHECKF(n_trace > 0, "no calls traced: clean_life must run first");
    for (int i = 0; i < n_trace; i++) {
        int k = 0;
        for (int j = 0; j <= i; j++) k += !strcmp(trace[j], trace[i]);
        /* Under the sanitizers: the first of a run of the same operation. */
        if (SLOW > 1 && i > 0 && !strcmp(trace[i - 1], trace[i])) continue;
        runs++;
        fired += faulty_life(trace[i], k, 1);
    }
    printf("  %d lives, each with one store call failing: %d faults fired\n", runs, fired);
}

static void test_timed_calls_fail(void)
{
    static const struct { const char *op; int k; } cases[] = {
        {"job_claim", 1}, {"job_heartbeat", 1}, {"job_heartbeat", 2}, {"job_progress", 1}, {"job_progress", 2},
    };
    int fired = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int f = faulty_life(cases[i].op, cases[i].k, 0);
        fired += f;
        printf("  %s call %d failing: %s\n", cases[i].op, cases[i].k, f ? "fired" : "never came");
    }
    CHECKF(fired >= 3, "only %d of the timed faults fired", fired);
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (start() == 0) {
        t_run("clean_life", test_clean_life);
        t_run("every_call_fails", test_every_call_fails);
        t_run("timed_calls_fail", test_timed_calls_fail);
    }
    if (srv) http_stop(srv);
    if (queue) queue_stop(queue);
    if (fs.inner) store_close(fs.inner);
    curl_global_cleanup();
    return t_summary();
}
