/*
 * test_queue.c: the job queue against the real store (SQLite in the test's
 * temporary folder), real media decoding and a real model.
 *
 * The media is the shared jfk.mp4 copied into <tmp>/data/db/<id>/ for each
 * upload, or, where a run must span two engine windows (progress, cancel,
 * delete), a WAV of 32 s of silence written here: the engine reports
 * progress and can be stopped only between 30 s windows, and with the
 * random-weight test model silence is the cheapest audio to decode. The model
 * is rt-mini.en-f16 from the shared models folder (random weights, real
 * layout: its text is nonsense but deterministic), run with one engine
 * thread per worker.
 *
 * Checked: model listing and resolving on a folder made here; a job runs to
 * done with its four result files (results.json parsed with jansson, with
 * segments), the upload row updated (model_ran, time_s, language) and the
 * queue's counters; progress seen rising by a poller, with a value between
 * the decoding share and 100; two workers finish six jobs, each exactly
 * once; a canceled job and a job whose upload is deleted end without
 * results when the engine window they were in ends, well before a full run
 * would; an unknown model, a model name with ".." and a text file as media
 * fail with a message; queue_transcribe gives the same segment texts as a
 * stored job on the same audio and does not call the caller's progress
 * callback; a job cut short by queue_stop is queued again
 * and finished by the next queue_start (attempts 2); queue_wait times out,
 * sees a job canceled in the store, and returns HARK_ECANCELED after
 * queue_shutdown; no workers means HARK_ENOTSUP.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"
#include "hark.h"
#include "media.h"
#include "queue.h"
#include "store.h"

#define MODEL "rt-mini.en-f16"

static char models_dir[PATH_MAX];
static char data_dir[PATH_MAX - 64];
static char long_wav[PATH_MAX]; /* 32 s of silence, 16 kHz 16-bit mono */
static float *jfk_pcm;          /* jfk.mp4 decoded */
static size_t jfk_n;
static int n_uploads;
static double full_run_ms;      /* test_progress's run of long_wav */
static double first_window_ms;  /* from its start to the end of its first engine window */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int copy_file(const char *from, const char *to)
{
    size_t n;
    char *buf = t_read_file(from, &n);
    FILE *f;
    int ok;
    if (!buf) return -1;
    f = fopen(to, "wb");
    ok = f && fwrite(buf, 1, n, f) == n;
    if (f && fclose(f) != 0) ok = 0;
    free(buf);
    return ok ? 0 : -1;
}

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    int ok;
    if (!f) return -1;
    ok = fputs(text, f) >= 0;
    if (fclose(f) != 0) ok = 0;
    return ok ? 0 : -1;
}

static void put_u32(FILE *f, uint32_t v)
{
    unsigned char b[4] = {v & 255, (v >> 8) & 255, (v >> 16) & 255, v >> 24};
    fwrite(b, 1, 4, f);
}

static void put_u16(FILE *f, unsigned v)
{
    unsigned char b[2] = {v & 255, (v >> 8) & 255};
    fwrite(b, 1, 2, f);
}

/* A 16 kHz 16-bit mono WAV of n samples of pcm, `times` times over, or of
 * silence when pcm is NULL. */
static int write_wav(const char *path, const float *pcm, uint32_t n, int times)
{
    FILE *f = fopen(path, "wb");
    uint32_t bytes = n * 2 * (uint32_t)times;
    if (!f) return -1;
    fwrite("RIFF", 1, 4, f);
    put_u32(f, 36 + bytes);
    fwrite("WAVEfmt ", 1, 8, f);
    put_u32(f, 16);
    put_u16(f, 1);     /* PCM */
    put_u16(f, 1);     /* mono */
    put_u32(f, 16000); /* sample rate */
    put_u32(f, 32000); /* bytes per second */
    put_u16(f, 2);     /* block align */
    put_u16(f, 16);    /* bits per sample */
    fwrite("data", 1, 4, f);
    put_u32(f, bytes);
    for (int k = 0; k < times; k++) {
        for (uint32_t i = 0; i < n; i++) {
            float v = pcm ? pcm[i] * 32767.0f : 0.0f;
            put_u16(f, (unsigned)(uint16_t)(int16_t)(v > 32767.0f ? 32767 : v < -32768.0f ? -32768 : (int)v));
        }
    }
    return fclose(f) == 0 ? 0 : -1;
}

static int write_silence(const char *path, uint32_t n) { return write_wav(path, NULL, n, 1); }

static struct store *open_store(const char *name)
{
    char path[PATH_MAX], err[512] = "";
    struct store *s = NULL;
    snprintf(path, sizeof path, "%s/%s", t_tmpdir(), name);
    int rc = store_open(path, &s, err, sizeof err);
    CHECKF(rc == 0 && s, "store_open %s: %d %s", path, rc, err);
    return rc == 0 ? s : NULL;
}

/* Stores an upload whose media is a copy of src (or, when src is NULL, the
 * text `text`) under <data>/db/<id>/<filename>. */
static int add_upload(struct store *s, const char *src, const char *text, const char *filename,
                      struct store_upload *u)
{
    char dir[PATH_MAX], path[PATH_MAX + 300];
    int k = ++n_uploads, rc;
    memset(u, 0, sizeof *u);
    snprintf(u->id, sizeof u->id, "00000000-0000-4000-8000-%012d", k);
    snprintf(u->filename, sizeof u->filename, "%s", filename);
    snprintf(u->sha256, sizeof u->sha256, "%064d", k);
    snprintf(u->content_type, sizeof u->content_type, "video/mp4");
    snprintf(u->model, sizeof u->model, MODEL);
    store_now(u->upload_date);
    u->size = 1;
    u->duration_s = 11.0;
    snprintf(dir, sizeof dir, "%s/db/%s", data_dir, u->id);
    if (mkdir(dir, 0755) != 0) {
        CHECKF(0, "mkdir %s: %s", dir, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/%s", dir, filename);
    rc = src ? copy_file(src, path) : write_text(path, text);
    CHECKF(rc == 0, "cannot write %s", path);
    if (rc) return -1;
    rc = store_upload_insert(s, u, NULL);
    CHECKF(rc == 0, "store_upload_insert: %d %s", rc, store_error(s));
    return rc == 0 ? 0 : -1;
}

static int64_t add_job(struct store *s, const char *src, const char *filename, const char *model,
                       struct store_upload *u)
{
    struct store_job job;
    if (add_upload(s, src, NULL, filename, u) < 0) return 0;
    int rc = store_job_enqueue(s, u->id, model, "", "transcribe", NULL, &job, NULL);
    CHECKF(rc == 0, "store_job_enqueue: %d %s", rc, store_error(s));
    return rc == 0 ? job.id : 0;
}

static struct queue *start(struct store *s, int workers)
{
    struct queue_config cfg = {.data_dir = data_dir, .models_dir = models_dir, .default_model = MODEL,
                               .workers = workers, .threads = 1, .worker_name = "test:1"};
    struct queue *q = NULL;
    char err[512] = "";
    int rc = queue_start(s, &cfg, &q, err, sizeof err);
    CHECKF(rc == 0 && q, "queue_start: %d %s", rc, err);
    return q;
}

static const char *result_path(const struct store_upload *u, const char *name)
{
    static char path[PATH_MAX + 300];
    snprintf(path, sizeof path, "%s/db/%s/%s", data_dir, u->id, name);
    return path;
}

/* Result files in the upload's folder, final or temporary ("results.*",
 * ".results.*"). */
static int n_result_files(const struct store_upload *u)
{
    char dir[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s/db/%s", data_dir, u->id);
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (!d) return 0;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, "results.", 8) || !strncmp(e->d_name, ".results.", 9)) n++;
    closedir(d);
    return n;
}

static const char *seg_text(json_t *segs, size_t i)
{
    const char *t = json_string_value(json_object_get(json_array_get(segs, i), "text"));
    return t ? t : "";
}

/* The segment texts of results.json, joined with '|' (malloc'ed), and the
 * segment count; NULL if the file does not parse. */
static char *json_segments(const struct store_upload *u, int *n_segments)
{
    json_error_t jerr;
    json_t *root = json_load_file(result_path(u, "results.json"), 0, &jerr), *segs;
    size_t i, len = 1;
    char *out;
    *n_segments = -1;
    if (!root) return NULL;
    segs = json_object_get(root, "segments");
    if (!json_is_array(segs)) {
        json_decref(root);
        return NULL;
    }
    for (i = 0; i < json_array_size(segs); i++) len += strlen(seg_text(segs, i)) + 1;
    out = calloc(1, len);
    for (i = 0; out && i < json_array_size(segs); i++) {
        if (i) strcat(out, "|");
        strcat(out, seg_text(segs, i));
    }
    *n_segments = (int)json_array_size(segs);
    json_decref(root);
    return out;
}

/* Polls the job until its state is `state` or ms pass; 1 if it got there. */
static int wait_state(struct store *s, int64_t id, const char *state, double min_progress, int ms)
{
    struct store_job job;
    double t0 = now_ms();
    while (now_ms() - t0 < ms) {
        if (store_job_get(s, id, &job) == 0 && strcmp(job.state, state) == 0 &&
            job.progress >= min_progress)
            return 1;
        sleep_ms(5);
    }
    return 0;
}

/* ------------------------------------------------------------------ models */

static void touch(const char *dir, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    CHECKF(write_text(path, "x") == 0, "cannot write %s", path);
}

static void test_models(void)
{
    char dir[PATH_MAX], sub[PATH_MAX + 16], path[PATH_MAX], want[PATH_MAX + 64];
    char **names = NULL;
    int n = -1;

    snprintf(dir, sizeof dir, "%s/models", t_tmpdir());
    CHECK(mkdir(dir, 0755) == 0);
    touch(dir, "ggml-base.en.bin");
    touch(dir, "tiny.bin");
    touch(dir, "ggml-tiny.bin"); /* the same name as tiny.bin: listed once */
    touch(dir, "a-model.bin");
    touch(dir, ".hidden.bin");
    touch(dir, "notes.txt");
    touch(dir, "model.bin.part");
    touch(dir, "ggml-.bin");
    snprintf(sub, sizeof sub, "%s/folder.bin", dir);
    CHECK(mkdir(sub, 0755) == 0);

    CHECK(models_list(dir, &names, &n) == 0);
    CHECKF(n == 3, "n = %d", n);
    if (n == 3) {
        CHECKF(strcmp(names[0], "a-model") == 0, "[0] %s", names[0]);
        CHECKF(strcmp(names[1], "base.en") == 0, "[1] %s", names[1]);
        CHECKF(strcmp(names[2], "tiny") == 0, "[2] %s", names[2]);
    }
    models_list_free(names, n);

    /* A missing folder is an empty list. */
    names = (char **)1;
    CHECK(models_list("/nonexistent/models", &names, &n) == 0 && n == 0 && names == NULL);

    /* The shared folder lists the model the other tests use. */
    CHECK(models_list(models_dir, &names, &n) == 0);
    int found = 0;
    for (int i = 0; i < n; i++) found |= strcmp(names[i], MODEL) == 0;
    CHECKF(found, "%s not in %s (%d names)", MODEL, models_dir, n);
    models_list_free(names, n);

    CHECK(models_resolve(dir, "base.en", path, sizeof path) == 0);
    snprintf(want, sizeof want, "%s/ggml-base.en.bin", dir);
    CHECKF(strcmp(path, want) == 0, "%s", path);
    CHECK(models_resolve(dir, "a-model", path, sizeof path) == 0);
    snprintf(want, sizeof want, "%s/a-model.bin", dir);
    CHECKF(strcmp(path, want) == 0, "%s", path);
    /* "ggml-" first when both exist. */
    CHECK(models_resolve(dir, "tiny", path, sizeof path) == 0);
    snprintf(want, sizeof want, "%s/ggml-tiny.bin", dir);
    CHECKF(strcmp(path, want) == 0, "%s", path);
    /* A path to a .bin file. */
    snprintf(want, sizeof want, "%s/a-model.bin", dir);
    CHECK(models_resolve(NULL, want, path, sizeof path) == 0 && strcmp(path, want) == 0);

    static const char *const bad[] = {"", "nope", "../models/tiny", "..", "tiny/..", ".hidden",
                                      "base.en.bin", "notes", "folder", "x\ny"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = models_resolve(dir, bad[i], path, sizeof path);
        CHECKF(rc == HARK_ENOENT, "'%s': %d", bad[i], rc);
    }
    CHECK(models_resolve(dir, NULL, path, sizeof path) == HARK_ENOENT);
    /* Paths: ".." anywhere, not .bin, a folder, missing. */
    snprintf(want, sizeof want, "%s/../models/tiny.bin", dir);
    CHECK(models_resolve(dir, want, path, sizeof path) == HARK_ENOENT);
    snprintf(want, sizeof want, "%s/notes.txt", dir);
    CHECK(models_resolve(dir, want, path, sizeof path) == HARK_ENOENT);
    CHECK(models_resolve(dir, sub, path, sizeof path) == HARK_ENOENT);
    snprintf(want, sizeof want, "%s/missing.bin", dir);
    CHECK(models_resolve(dir, want, path, sizeof path) == HARK_ENOENT);
    /* Too small a buffer is no model rather than a cut path. */
    CHECK(models_resolve(dir, "base.en", path, 8) == HARK_ENOENT);

    /* A client's name: the folder's names only, never a path. */
    CHECK(models_find(dir, "base.en", path, sizeof path) == 0);
    snprintf(want, sizeof want, "%s/ggml-base.en.bin", dir);
    CHECKF(strcmp(path, want) == 0, "%s", path);
    snprintf(want, sizeof want, "%s/a-model.bin", dir);
    CHECK(models_find(dir, want, path, sizeof path) == HARK_ENOENT && path[0] == 0);
    CHECK(models_find(NULL, want, path, sizeof path) == HARK_ENOENT);
    CHECK(models_find(dir, "a-model/", path, sizeof path) == HARK_ENOENT);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECKF(models_find(dir, bad[i], path, sizeof path) == HARK_ENOENT, "'%s'", bad[i]);
}

/* -------------------------------------------------------------------- jobs */

/* A job over 32 s of audio (two engine windows at least): progress is seen
 * rising while it runs, with a value between the decoding share and 100. */
static void test_progress(void)
{
    struct store *s = open_store("progress.db");
    struct store_upload u;
    struct store_job job;
    struct queue *q;
    double last = -1, t0;
    int n_values = 0, decreased = 0, between = 0;
    if (!s) return;
    int64_t id = add_job(s, long_wav, "long.wav", MODEL, &u);
    t0 = now_ms();
    q = start(s, 1);
    if (!q || !id) goto out;
    while (now_ms() - t0 < 120000) {
        if (store_job_get(s, id, &job) != 0) break;
        if (strcmp(job.state, STORE_RUNNING) == 0 && job.progress != last) {
            if (job.progress < last) decreased = 1;
            if (job.progress > 10.5 && job.progress < 100.0 && !between) {
                between = 1;
                first_window_ms = now_ms() - t0;
            }
            last = job.progress;
            n_values++;
        }
        if (strcmp(job.state, STORE_QUEUED) && strcmp(job.state, STORE_RUNNING)) break;
        sleep_ms(2);
    }
    CHECK(queue_wait(q, id, 10000) == 0);
    full_run_ms = now_ms() - t0;
    CHECK(store_job_get(s, id, &job) == 0);
    CHECKF(strcmp(job.state, STORE_DONE) == 0, "state %s (%s)", job.state, job.error);
    CHECKF(job.progress == 100.0, "progress %g", job.progress);
    CHECKF(n_values >= 3 && between && !decreased,
           "progress values seen while running: %d, one in (10, 100): %d, decreased: %d", n_values,
           between, decreased);
    printf("  32 s job: %d progress values seen while running, last %.1f%%; first window ended "
           "after %.0f ms, the job after %.0f ms\n", n_values, last, first_window_ms, full_run_ms);
    CHECK(n_result_files(&u) == 4);
out:
    queue_stop(q);
    store_close(s);
}

static void test_job_done(void)
{
    struct store *s = open_store("done.db");
    struct store_upload u, got;
    struct store_job job;
    struct queue *q;
    struct queue_stats st;
    int n_seg = 0;
    size_t len = 0;
    if (!s) return;
    int64_t id = add_job(s, t_shared("media", "jfk.mp4"), "jfk.mp4", MODEL, &u);
    q = start(s, 1);
    if (!q || !id) goto out;
    queue_notify(q);
    CHECK(queue_wait(q, id, 60000) == 0);
    CHECK(store_job_get(s, id, &job) == 0);
    CHECKF(strcmp(job.state, STORE_DONE) == 0, "state %s (%s)", job.state, job.error);
    CHECKF(job.progress == 100.0, "progress %g", job.progress);
    CHECK(job.attempts == 1);
    CHECKF(strcmp(job.worker, "test:1/1") == 0, "worker '%s'", job.worker);

    CHECK(n_result_files(&u) == 4);
    char *texts = json_segments(&u, &n_seg);
    CHECKF(texts && n_seg > 0, "results.json: %d segments", n_seg);
    free(texts);
    char *srt = t_read_file(result_path(&u, "results.srt"), &len);
    CHECK(srt && strstr(srt, " --> "));
    free(srt);
    char *vtt = t_read_file(result_path(&u, "results.vtt"), &len);
    CHECK(vtt && strncmp(vtt, "WEBVTT", 6) == 0);
    free(vtt);
    char *txt = t_read_file(result_path(&u, "results.txt"), &len);
    CHECK(txt && len > 0);
    free(txt);

    CHECK(store_upload_get(s, u.id, &got) == 0);
    CHECK(got.model_ran == 1 && got.model_date[0]);
    CHECKF(got.time_s > 0, "time_s %g", got.time_s);
    CHECKF(strcmp(got.language, "en") == 0, "language '%s'", got.language);
    CHECKF(strcmp(got.model, MODEL) == 0, "model '%s'", got.model);
    CHECKF(strcmp(got.status, STORE_DONE) == 0, "status %s", got.status);
    printf("  jfk.mp4: %d segments, time_s %.2f\n", n_seg, got.time_s);

    queue_stats(q, &st);
    CHECK(st.jobs_done == 1 && st.jobs_failed == 0 && st.jobs_canceled == 0);
    CHECK(st.workers == 1 && st.models_loaded == 1 && st.busy_workers == 0);
    CHECKF(fabs(st.audio_seconds - (double)jfk_n / 16000.0) < 1e-6, "audio_seconds %g",
           st.audio_seconds);
    CHECKF(fabs(st.busy_seconds - got.time_s) < 1e-6, "busy %g time_s %g", st.busy_seconds, got.time_s);
out:
    queue_stop(q);
    store_close(s);
}

static void test_two_workers(void)
{
    struct store *s = open_store("two.db");
    struct store_upload u[6];
    struct store_job job;
    int64_t ids[6];
    struct queue *q;
    struct queue_stats st;
    if (!s) return;
    for (int i = 0; i < 6; i++) ids[i] = add_job(s, t_shared("media", "jfk.mp4"), "jfk.mp4", MODEL, &u[i]);
    double t0 = now_ms();
    q = start(s, 2);
    if (!q) goto out;
    for (int i = 0; i < 6; i++) CHECK(queue_wait(q, ids[i], 120000) == 0);
    double ms = now_ms() - t0;
    for (int i = 0; i < 6; i++) {
        CHECK(store_job_get(s, ids[i], &job) == 0);
        CHECKF(strcmp(job.state, STORE_DONE) == 0, "job %d: %s (%s)", i, job.state, job.error);
        CHECKF(job.attempts == 1, "job %d: attempts %d", i, job.attempts);
        CHECK(n_result_files(&u[i]) == 4);
    }
    queue_stats(q, &st);
    CHECKF(st.jobs_done == 6 && st.jobs_failed == 0 && st.jobs_canceled == 0, "done %lld",
           (long long)st.jobs_done);
    CHECK(st.models_loaded == 1 && st.workers == 2);
    printf("  6 jobs of 11 s on 2 workers: %.0f ms\n", ms);
out:
    queue_stop(q);
    store_close(s);
}

/* Runs a long job that is stopped by `how` once the model runs: 0 cancel,
 * 1 delete the upload. */
static void stopped_run(int how)
{
    struct store *s = open_store(how ? "delete.db" : "cancel.db");
    struct store_upload u;
    struct store_job job;
    struct queue *q;
    struct queue_stats st;
    if (!s) return;
    int64_t id = add_job(s, long_wav, "long.wav", MODEL, &u);
    q = start(s, 1);
    if (!q || !id) goto out;
    CHECK(wait_state(s, id, STORE_RUNNING, 10.0, 60000));
    double t0 = now_ms();
    if (how == 0) {
        CHECK(store_job_cancel(s, id) == 0);
    } else {
        char dir[PATH_MAX + 64];
        CHECK(store_upload_delete(s, u.id) == 0);
        /* As the service does: the folder goes with the upload. */
        snprintf(dir, sizeof dir, "%s/db/%s", data_dir, u.id);
        unlink(result_path(&u, "long.wav"));
        CHECK(rmdir(dir) == 0);
    }
    queue_cancel(q, id);
    CHECK(queue_wait(q, id, 60000) == 0);
    /* The worker is done with the job once the busy count drops. */
    while (now_ms() - t0 < 120000) {
        queue_stats(q, &st);
        if (st.busy_workers == 0) break;
        sleep_ms(5);
    }
    double ms = now_ms() - t0;
    queue_stats(q, &st);
    CHECK(st.busy_workers == 0);
    CHECKF(st.jobs_canceled == 1 && st.jobs_done == 0 && st.jobs_failed == 0,
           "canceled %lld done %lld failed %lld", (long long)st.jobs_canceled,
           (long long)st.jobs_done, (long long)st.jobs_failed);
    if (how == 0) {
        CHECK(store_job_get(s, id, &job) == 0);
        CHECKF(strcmp(job.state, STORE_CANCELED) == 0, "state %s", job.state);
        CHECK(n_result_files(&u) == 0);
    } else {
        CHECK(store_job_get(s, id, &job) == HARK_ENOENT);
        CHECK(access(result_path(&u, ""), F_OK) != 0);
    }
    /* The engine stops between windows: the worker lets go at the end of
     * the first one, nearer its end than the end of a full run. */
    double bound = 0.5 * (first_window_ms + full_run_ms);
    printf("  %s: the worker let go %.0f ms after it (bound %.0f ms)\n", how ? "delete" : "cancel",
           ms, bound);
    if (first_window_ms > 0) CHECKF(ms < bound, "%.0f ms", ms);
out:
    queue_stop(q);
    store_close(s);
}

static void test_cancel(void) { stopped_run(0); }
static void test_delete(void) { stopped_run(1); }

static void test_failures(void)
{
    struct store *s = open_store("fail.db");
    struct store_upload u1, u2, u3;
    struct store_job job;
    struct queue *q;
    struct queue_stats st;
    int64_t id1, id2, id3 = 0;
    if (!s) return;
    id1 = add_job(s, t_shared("media", "jfk.mp4"), "jfk.mp4", "no-such-model", &u1);
    if (add_upload(s, NULL, "this is not media\n", "notes.mp4", &u2) == 0 &&
        store_job_enqueue(s, u2.id, MODEL, "", "transcribe", NULL, &job, NULL) == 0)
        id2 = job.id;
    else
        id2 = 0;
    /* A model name that tries to leave the folder. */
    if (add_upload(s, t_shared("media", "jfk.mp4"), NULL, "jfk.mp4", &u3) == 0 &&
        store_job_enqueue(s, u3.id, "../models/" MODEL, "", "transcribe", NULL, &job, NULL) == 0)
        id3 = job.id;
    q = start(s, 1);
    if (!q || !id1 || !id2 || !id3) goto out;
    CHECK(queue_wait(q, id1, 30000) == 0);
    CHECK(queue_wait(q, id2, 30000) == 0);
    CHECK(queue_wait(q, id3, 30000) == 0);
    CHECK(store_job_get(s, id1, &job) == 0);
    CHECKF(strcmp(job.state, STORE_FAILED) == 0 && strstr(job.error, "no-such-model"),
           "%s: %s", job.state, job.error);
    printf("  unknown model: %s\n", job.error);
    CHECK(store_job_get(s, id2, &job) == 0);
    CHECKF(strcmp(job.state, STORE_FAILED) == 0 && job.error[0] && !strchr(job.error, '\n'),
           "%s: %s", job.state, job.error);
    printf("  text as media: %s\n", job.error);
    CHECK(store_job_get(s, id3, &job) == 0);
    CHECKF(strcmp(job.state, STORE_FAILED) == 0, "%s: %s", job.state, job.error);
    CHECK(n_result_files(&u1) == 0 && n_result_files(&u2) == 0 && n_result_files(&u3) == 0);
    queue_stats(q, &st);
    CHECK(st.jobs_failed == 3 && st.jobs_done == 0);
    CHECK(st.models_loaded <= 1);

    /* queue_transcribe with an unknown model. */
    hark_result *r = (hark_result *)1;
    char err[512] = "";
    int rc = queue_transcribe(q, "no-such-model", jfk_pcm, jfk_n, NULL, &r, err, sizeof err);
    CHECKF(rc == HARK_ENOENT && r == NULL && strstr(err, "no-such-model"), "%d %s", rc, err);
out:
    queue_stop(q);
    store_close(s);
}

static int n_calls;

static int count_call(void *user, float fraction)
{
    (*(int *)user)++;
    return 0;
}

static int stop_now(void *user, float fraction) { return 1; }

static void test_transcribe(void)
{
    struct store *s = open_store("transcribe.db");
    struct store_upload u;
    struct store_job job;
    struct queue *q;
    struct hark_options opt;
    hark_result *r = NULL;
    char err[512] = "", *stored = NULL;
    int n_seg = 0;
    if (!s) return;
    int64_t id = add_job(s, t_shared("media", "jfk.mp4"), "jfk.mp4", MODEL, &u);
    q = start(s, 2);
    if (!q || !id) goto out;
    hark_options_init(&opt);
    /* The caller's progress callback is asked too, on the worker's thread;
     * one that says stop cancels the request alone. */
    opt.progress = stop_now;
    int rc = queue_transcribe(q, NULL, jfk_pcm, jfk_n, &opt, &r, err, sizeof err);
    CHECKF(rc == HARK_ECANCELED && !r && strstr(err, "canceled by the client"), "canceled: %d %s", rc, err);
    opt.progress = count_call;
    opt.progress_user = &n_calls;
    rc = queue_transcribe(q, NULL, jfk_pcm, jfk_n, &opt, &r, err, sizeof err);
    CHECKF(rc == 0 && r, "queue_transcribe: %d %s", rc, err);
    CHECK(queue_wait(q, id, 60000) == 0);
    CHECK(store_job_get(s, id, &job) == 0 && strcmp(job.state, STORE_DONE) == 0);
    stored = json_segments(&u, &n_seg);
    CHECK(stored != NULL);
    if (r && stored) {
        int n = hark_result_n_segments(r), same = n == n_seg;
        size_t at = 0;
        for (int i = 0; same && i < n; i++) {
            const char *t = hark_result_segment(r, i)->text;
            size_t len = strlen(t);
            if (i) same = stored[at++] == '|';
            same = same && strncmp(stored + at, t, len) == 0;
            at += len;
        }
        same = same && stored[at] == 0;
        CHECKF(n > 0 && same, "request: %d segments, job: %d segments", n, n_seg);
        printf("  request and stored job: %d identical segments\n", n);
    }
    CHECKF(n_calls > 0, "the caller's progress callback was never called");
    struct queue_stats st;
    queue_stats(q, &st);
    CHECKF(fabs(st.audio_seconds - 2.0 * (double)jfk_n / 16000.0) < 1e-6, "audio_seconds %g",
           st.audio_seconds);
out:
    free(stored);
    hark_result_free(r);
    queue_stop(q);
    store_close(s);
}

struct caller {
    struct queue *q;
    int rc;
    hark_result *result;
    char err[512];
};

static void *call_transcribe(void *arg)
{
    struct caller *c = arg;
    c->rc = queue_transcribe(c->q, MODEL, jfk_pcm, jfk_n, NULL, &c->result, c->err, sizeof c->err);
    return NULL;
}

/* A job cut short by the stop is queued again and the next start finishes
 * it; a request waiting behind it (one worker) returns HARK_ECANCELED at
 * queue_shutdown. */
static void test_stop_restart(void)
{
    struct store *s = open_store("restart.db");
    struct store_upload u;
    struct store_job job;
    struct queue *q;
    struct caller c = {0};
    pthread_t thread;
    if (!s) return;
    int64_t id = add_job(s, t_shared("media", "jfk.mp4"), "jfk.mp4", MODEL, &u);
    q = start(s, 1);
    if (!q || !id) goto out;
    CHECK(wait_state(s, id, STORE_RUNNING, 10.0, 60000));
    c.q = q;
    c.rc = 1;
    CHECK(pthread_create(&thread, NULL, call_transcribe, &c) == 0);
    sleep_ms(50);
    double t0 = now_ms();
    queue_shutdown(q);
    pthread_join(thread, NULL);
    double call_ms = now_ms() - t0;
    CHECKF(c.rc == HARK_ECANCELED && c.result == NULL, "queue_transcribe: %d %s", c.rc, c.err);
    queue_stop(q);
    double ms = now_ms() - t0;
    q = NULL;
    CHECK(store_job_get(s, id, &job) == 0);
    CHECKF(strcmp(job.state, STORE_QUEUED) == 0, "after stop: %s", job.state);
    CHECK(job.attempts == 1);
    CHECK(n_result_files(&u) == 0);
    printf("  stop with a job running: the waiting request returned in %.0f ms, the stop took %.0f ms\n",
           call_ms, ms);

    q = start(s, 1);
    if (!q) goto out;
    CHECK(queue_wait(q, id, 120000) == 0);
    CHECK(store_job_get(s, id, &job) == 0);
    CHECKF(strcmp(job.state, STORE_DONE) == 0, "after restart: %s", job.state);
    CHECKF(job.attempts == 2, "attempts %d", job.attempts);
    CHECK(n_result_files(&u) == 4);
out:
    queue_stop(q);
    store_close(s);
}

/* A kept segment as the worker stores it, with the given text and times
 * and two tokens (a timestamp and one text token). */
static void put_kept(struct store *s, int64_t id, int seq, double window_s, const char *text, double t0, double t1)
{
    char data[512];
    snprintf(data, sizeof data,
             "{\"seek\":%d,\"start\":%.2f,\"end\":%.2f,\"text\":\"%s\",\"temperature\":0,"
             "\"avg_logprob\":-0.5,\"compression_ratio\":1.25,\"no_speech_prob\":0.125,"
             "\"tokens\":[[50364,\"\",1,0,%.2f,%.2f,-1],[1234,\"206b\",0.5,-0.75,%.2f,%.2f,-1]],\"words\":[]}",
             (int)(window_s * 100 + 0.5), t0, t1, text, t0, t0, t0, t1);
    struct store_job_segment g = {seq, window_s, "en", data};
    int rc = store_job_segment_put(s, id, "gone:1", &g);
    CHECKF(rc == 0, "store_job_segment_put %d: %d %s", seq, rc, store_error(s));
}

/* A job cut short (its process died) runs again from its checkpoint: the
 * window after the last one finished. Its final segments are kept as they
 * were stored, the rest is decoded again from that window's start, and
 * every segment and checkpoint of the new run is stored as it comes. Final
 * segments that cannot be read back make it start over. */
static void test_resume(void)
{
    struct store *s = open_store("resume.db");
    struct store_upload u, v;
    struct store_job job;
    struct queue *q = NULL;
    char wav[PATH_MAX];
    if (!s) return;
    snprintf(wav, sizeof wav, "%s/jfk2.wav", t_tmpdir());
    CHECK(write_wav(wav, jfk_pcm, (uint32_t)jfk_n, 2) == 0);
    int64_t id = add_job(s, wav, "jfk2.wav", MODEL, &u);
    int64_t id2 = add_job(s, t_shared("media", "jfk.mp4"), "jfk.mp4", MODEL, &v);
    /* A worker that died: two segments of the first window, one of the
     * window from 9.5 s, which it was decoding. */
    CHECK(store_job_claim(s, "gone:1", &job) == 0 && job.id == id);
    put_kept(s, id, 0, 0.0, " kept zero", 0.5, 4.0);
    put_kept(s, id, 1, 0.0, " kept one", 4.0, 9.5);
    put_kept(s, id, 2, 9.5, " cut short", 10.0, 12.0);
    CHECK(store_job_checkpoint(s, id, "gone:1", 9.5, 2) == 0);
    /* The other's kept segment is not one. */
    CHECK(store_job_claim(s, "gone:1", &job) == 0 && job.id == id2);
    struct store_job_segment bad = {0, 0.0, "en", "{\"text\":\" unreadable\"}"};
    CHECK(store_job_segment_put(s, id2, "gone:1", &bad) == 0);
    put_kept(s, id2, 1, 5.0, " later", 5.0, 6.0);
    CHECK(store_job_checkpoint(s, id2, "gone:1", 5.0, 1) == 0);
    q = start(s, 1); /* puts both back in the queue, as after a crash */
    if (!q || !id || !id2) goto out;
    CHECK(queue_wait(q, id, 300000) == 0 && queue_wait(q, id2, 300000) == 0);
    CHECK(store_job_get(s, id, &job) == 0 && strcmp(job.state, STORE_DONE) == 0 && job.attempts == 2);

    json_t *root = json_load_file(result_path(&u, "results.json"), 0, NULL);
    json_t *segs = json_object_get(root, "segments");
    size_t n = json_array_size(segs);
    CHECKF(n >= 3, "%zu segments", n);
    CHECKF(!strcmp(seg_text(segs, 0), " kept zero") && !strcmp(seg_text(segs, 1), " kept one"), "\"%s\" \"%s\"",
           seg_text(segs, 0), seg_text(segs, 1));
    json_t *s1 = json_array_get(segs, 1);
    CHECK(json_number_value(json_object_get(s1, "start")) == 4.0 && json_number_value(json_object_get(s1, "end")) == 9.5);
    CHECK(json_integer_value(json_array_get(json_object_get(s1, "tokens"), 1)) == 1234);
    CHECK(json_integer_value(json_object_get(s1, "id")) == 1);
    for (size_t i = 2; i < n; i++) {
        json_t *g = json_array_get(segs, i);
        CHECKF(strcmp(seg_text(segs, i), " cut short") != 0, "segment %zu was not decoded again", i);
        CHECKF(json_number_value(json_object_get(g, "start")) >= 9.5, "segment %zu starts at %g", i,
               json_number_value(json_object_get(g, "start")));
        CHECK(json_integer_value(json_object_get(g, "id")) == (json_int_t)i);
    }
    /* The store holds each segment of the result as the result has it. */
    struct store_job_segment *rows = NULL;
    int nr = 0;
    CHECK(store_job_segments(s, id, -1, 100, &rows, &nr) == 0);
    CHECKF((size_t)nr == n, "%d kept segments for %zu in the result", nr, n);
    for (int i = 0; i < nr && (size_t)i < n; i++) {
        json_t *e = queue_segment_event(rows[i].data, rows[i].seq);
        json_t *g = json_array_get(segs, (size_t)i);
        CHECKF(e && rows[i].seq == i && !strcmp(json_string_value(json_object_get(e, "text")), seg_text(segs, i)) &&
                   json_number_value(json_object_get(e, "end")) == json_number_value(json_object_get(g, "end")),
               "kept segment %d", i);
        json_decref(e);
    }
    CHECK(nr < 3 || rows[2].window_s >= 9.5);
    store_job_segments_free(rows, nr);
    /* The run's own checkpoints: the last counts every segment. */
    CHECK(store_job_get(s, id, &job) == 0 && job.resume_segments == (int)n && job.resume_s > 9.5);
    json_decref(root);

    /* Unreadable: started over, none of the earlier text kept. */
    CHECK(store_job_get(s, id2, &job) == 0 && strcmp(job.state, STORE_DONE) == 0);
    int n2 = 0;
    char *text = json_segments(&v, &n2);
    CHECKF(text && n2 > 0 && !strstr(text, "unreadable") && !strstr(text, "later"), "jfk.mp4: %s", text);
    free(text);
    CHECK(store_job_segments(s, id2, -1, 100, &rows, &nr) == 0 && nr == n2);
    store_job_segments_free(rows, nr);
out:
    queue_stop(q);
    store_close(s);
}

/* Leases: a run of several leases (300 ms) is kept by its heartbeats and
 * finishes once; a job taken from the worker (released under its name and
 * claimed by another, as after an expiry) stops at the worker's next
 * heartbeat, writes no results and leaves the finish to the other. */
static void test_lease(void)
{
    struct store *s = open_store("lease.db"), *other = NULL;
    struct store_upload u, u2;
    struct store_job job;
    struct queue_stats st;
    struct queue *q = NULL;
    char err[512] = "";
    if (!s) return;
    int64_t id = add_job(s, long_wav, "long.wav", MODEL, &u);
    struct queue_config cfg = {.data_dir = data_dir, .models_dir = models_dir, .default_model = MODEL,
                               .workers = 1, .threads = 1, .worker_name = "lease:1", .lease_ms = 300};
    int rc = queue_start(s, &cfg, &q, err, sizeof err);
    CHECKF(rc == 0 && q, "queue_start: %d %s", rc, err);
    if (!q || !id) goto out;
    double t0 = now_ms();
    CHECK(queue_wait(q, id, 120000) == 0);
    double run_ms = now_ms() - t0;
    CHECK(store_job_get(s, id, &job) == 0);
    CHECKF(strcmp(job.state, STORE_DONE) == 0 && job.attempts == 1, "%s, attempts %d", job.state,
           job.attempts);
    CHECK(strcmp(job.worker, "lease:1/1") == 0 && job.lease_until[0] == 0);
    CHECK(n_result_files(&u) == 4);
    printf("  a run of %.0f ms kept through %.0f leases of 300 ms\n", run_ms, run_ms / 300);

    /* The other claimer is another process: a store of its own on the same
     * database, whose lease outlasts the test, so the job cannot expire
     * back to this queue while the worker is letting go of it (which takes
     * longer than 300 ms under the sanitizers). */
    other = open_store("lease.db");
    if (!other) goto out;
    store_set_lease(other, 600000);
    int64_t id2 = add_job(s, long_wav, "long.wav", MODEL, &u2);
    CHECK(wait_state(s, id2, STORE_RUNNING, 10.0, 60000));
    CHECK(store_job_release(s, id2, "lease:1/1") == 0);
    CHECK(store_job_claim(other, "elsewhere:2/1", &job) == 0 && job.id == id2 && job.attempts == 2);
    t0 = now_ms();
    do {
        queue_stats(q, &st);
        if (st.busy_workers == 0) break;
        sleep_ms(5);
    } while (now_ms() - t0 < 60000);
    double ms = now_ms() - t0;
    CHECKF(st.busy_workers == 0 && st.jobs_lost == 1 && st.jobs_done == 1,
           "busy %d, lost %lld, done %lld", st.busy_workers, (long long)st.jobs_lost,
           (long long)st.jobs_done);
    CHECK(n_result_files(&u2) == 0);
    CHECK(store_job_get(s, id2, &job) == 0 && strcmp(job.state, STORE_RUNNING) == 0);
    CHECK(strcmp(job.worker, "elsewhere:2/1") == 0);
    CHECK(store_job_finish(other, id2, "elsewhere:2/1", MODEL, "en", 1, NULL, 0) == 0);
    printf("  a job taken from the worker: it let go %.0f ms later\n", ms);
out:
    queue_stop(q);
    if (other) store_close(other);
    store_close(s);
}

static void test_no_workers(void)
{
    struct store *s = open_store("idle.db");
    struct store_upload u;
    struct store_job job;
    struct queue *q;
    hark_result *r = (hark_result *)1;
    char err[512] = "";
    if (!s) return;
    int64_t id = add_job(s, t_shared("media", "jfk.mp4"), "jfk.mp4", MODEL, &u);
    q = start(s, 0);
    if (!q || !id) goto out;
    double t0 = now_ms();
    int rc = queue_wait(q, id, 300);
    double ms = now_ms() - t0;
    CHECKF(rc == HARK_ERANGE, "queue_wait: %d", rc);
    CHECKF(ms >= 290 && ms < 2000, "waited %.0f ms for 300", ms);
    printf("  queue_wait(300 ms) returned after %.0f ms\n", ms);
    CHECK(store_job_get(s, id, &job) == 0 && strcmp(job.state, STORE_QUEUED) == 0);
    /* Unknown jobs have ended. */
    CHECK(queue_wait(q, 999999, 100) == 0);

    rc = queue_transcribe(q, MODEL, jfk_pcm, jfk_n, NULL, &r, err, sizeof err);
    CHECKF(rc == HARK_ENOTSUP && r == NULL && strstr(err, "no workers"), "%d %s", rc, err);

    /* Canceling a queued job needs no worker; queue_wait sees it. */
    CHECK(store_job_cancel(s, id) == 0);
    CHECK(queue_wait(q, id, 5000) == 0);

    /* After queue_shutdown, waiting returns at once. */
    id = add_job(s, t_shared("media", "jfk.mp4"), "jfk.mp4", MODEL, &u);
    queue_shutdown(q);
    queue_shutdown(q);
    CHECK(queue_wait(q, id, -1) == HARK_ECANCELED);
out:
    queue_stop(q);
    store_close(s);
}

/* A job's options: speech detection and word timestamps parsed from
 * requests, kept resolved, read back the same; bad values refused naming
 * the setting. */
static void test_job_options(void)
{
    struct hark_vad_params d;
    struct queue_options o, back;
    char buf[512], err[256];
    hark_vad_params_init(&d);
    d.pad_ms = 45; /* a server default that a resolved job keeps */
    queue_options_init(&o, &d);
    CHECK(o.vad.mode == QUEUE_VAD_DEFAULT && o.words == -1 && queue_options_encode(&o, buf, sizeof buf) == 0 &&
          buf[0] == 0);
    json_t *j = json_loads("{\"threshold\":0.6,\"min_silence_duration_ms\":300,\"max_speech_s\":20}", 0, NULL);
    CHECK(queue_vad_parse(j, &o.vad, err, sizeof err) == 0 && o.vad.mode == QUEUE_VAD_ON);
    json_decref(j);
    CHECK(queue_options_encode(&o, buf, sizeof buf) == 0);
    CHECKF(!strcmp(buf, "{\"vad\":{\"threshold\":0.6,\"min_speech_ms\":250,\"min_silence_ms\":300,"
                        "\"max_speech_s\":20,\"pad_ms\":45}}"),
           "%s", buf);
    queue_options_init(&back, NULL);
    CHECK(queue_options_decode(buf, &back, err, sizeof err) == 0 && back.vad.mode == QUEUE_VAD_ON &&
          back.vad.params.threshold == 0.6f && back.vad.params.min_silence_ms == 300 &&
          back.vad.params.max_speech_s == 20.0f && back.vad.params.pad_ms == 45 && back.words == -1);
    j = json_true();
    CHECK(queue_words_parse(j, &o, err, sizeof err) == 0 && o.words == 1);
    CHECK(queue_options_encode(&o, buf, sizeof buf) == 0 && strstr(buf, ",\"word_timestamps\":true}"));
    queue_options_init(&back, NULL);
    CHECK(queue_options_decode(buf, &back, err, sizeof err) == 0 && back.words == 1 && back.vad.mode == QUEUE_VAD_ON);
    j = json_false();
    CHECK(queue_vad_parse(j, &o.vad, err, sizeof err) == 0 && o.vad.mode == QUEUE_VAD_OFF);
    CHECK(queue_words_parse(j, &o, err, sizeof err) == 0 && o.words == 0);
    CHECKF(queue_options_encode(&o, buf, sizeof buf) == 0 && !strcmp(buf, "{\"vad\":false,\"word_timestamps\":false}"),
           "%s", buf);
    queue_options_init(&o, &d);
    o.words = 1;
    CHECK(queue_options_encode(&o, buf, sizeof buf) == 0 && !strcmp(buf, "{\"word_timestamps\":true}"));
    CHECK(queue_options_decode("{\"vad\":false}", &back, err, sizeof err) == 0 && back.vad.mode == QUEUE_VAD_OFF);
    static const char *const bad[][2] = {{"{\"threshold\":0}", "threshold"}, {"{\"pad_ms\":-1}", "pad_ms"},
                                         {"{\"min_speech_ms\":2.5}", "min_speech_ms"}, {"{\"x\":1}", "\"x\""},
                                         {"{\"threshold\":\"a\"}", "threshold"}, {"\"on\"", "\"vad\""}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *b = json_loads(bad[i][0], JSON_DECODE_ANY, NULL);
        queue_options_init(&o, &d);
        err[0] = 0;
        CHECKF(queue_vad_parse(b, &o.vad, err, sizeof err) == HARK_EINVAL && strstr(err, bad[i][1]), "%s: '%s'",
               bad[i][0], err);
        json_decref(b);
    }
    j = json_string("yes");
    err[0] = 0;
    CHECK(queue_words_parse(j, &o, err, sizeof err) == HARK_EINVAL && strstr(err, "word_timestamps"));
    json_decref(j);
    CHECK(queue_options_decode("not json", &o, err, sizeof err) == HARK_EINVAL);
    CHECK(queue_options_decode("{\"word_timestamps\":1}", &o, err, sizeof err) == HARK_EINVAL);
}

int main(int argc, char **argv)
{
    char err[512] = "", path[PATH_MAX];
    t_init(argc, argv);

    snprintf(path, sizeof path, "%s", t_shared("models", MODEL ".bin"));
    char *slash = strrchr(path, '/');
    if (slash) *slash = 0;
    snprintf(models_dir, sizeof models_dir, "%s", path);
    snprintf(data_dir, sizeof data_dir, "%s/data", t_tmpdir());
    snprintf(path, sizeof path, "%s/db", data_dir);
    if (mkdir(data_dir, 0755) != 0 || mkdir(path, 0755) != 0) {
        fprintf(stderr, "cannot make %s\n", path);
        return 2;
    }
    if (media_decode(t_shared("media", "jfk.mp4"), &jfk_pcm, &jfk_n, NULL, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "cannot decode jfk.mp4: %s\n", err);
        return 2;
    }
    snprintf(long_wav, sizeof long_wav, "%s/long.wav", t_tmpdir());
    if (write_silence(long_wav, 32 * 16000) != 0) {
        fprintf(stderr, "cannot write %s\n", long_wav);
        return 2;
    }

    t_run("models", test_models);
    t_run("job_options", test_job_options);
    t_run("job_done", test_job_done);
    t_run("progress", test_progress);
    t_run("two_workers", test_two_workers);
    t_run("cancel", test_cancel);
    t_run("delete", test_delete);
    t_run("failures", test_failures);
    t_run("transcribe", test_transcribe);
    t_run("stop_restart", test_stop_restart);
    t_run("resume", test_resume);
    t_run("lease", test_lease);
    t_run("no_workers", test_no_workers);
    free(jfk_pcm);
    return t_summary();
}
