/*
 * queue.c: the worker threads that run transcription jobs.
 *
 * Each worker loops: an interactive request waiting in the in-memory FIFO
 * (queue_transcribe) goes first; otherwise it claims the oldest queued job
 * from the store; when there is none it sleeps on a condition variable that
 * queue_notify() signals, and that the watch thread broadcasts when the
 * store announces a job queued by any process (PostgreSQL's LISTEN/NOTIFY).
 * Without announcements (SQLite) an idle worker looks every second; with
 * them, every ten as a safety net.
 *
 * Many processes on many machines may run one shared queue. Each worker
 * claims under its own name ("host:pid/n"), and a claim is a lease that
 * the watch thread renews every third of its length while the job runs.
 * The watch thread also puts back in the queue every job whose lease has
 * passed, whoever ran it: that is how a worker that died anywhere loses its
 * job. Should a heartbeat find the job no longer this worker's (it was cut
 * off from the database past its lease, and the job was taken back), the
 * run stops, and the store refuses its progress and its finish, so the job
 * is completed once. Results are written under names of their own for each
 * claim, renamed into place only just after a heartbeat has renewed the
 * lease, and left alone when the job turns out to be another worker's.
 *
 * One mutex guards the queue's shared fields (the FIFO, the model cache,
 * what each worker runs, the counters). It is never held while the store is
 * called, media is decoded or a model runs: those take seconds, and the
 * store has its own locking. Models are loaded on first use, outside the
 * mutex: the cache entry is made first with no model, so a second worker
 * wanting the same model waits for it (model_cv) while workers wanting
 * other models go on. A loaded model stays until queue_stop(). Each worker
 * keeps one engine state per model it has used (states are per thread; the
 * model is shared).
 *
 * A running job is stopped through the engine's and the decoder's progress
 * callbacks, which are also where progress reaches the store: the callback
 * asks to stop when queue_cancel() named the job, when the queue is
 * stopping, or when the store says the job is no longer running (canceled
 * or deleted by anyone, in any process). Progress is 0..10 % while the
 * media is decoded and 10..100 % while the model runs, written when it has
 * moved by 1 % or half a second has passed.
 *
 * A job interrupted by queue_stop() goes back to queued at once: its
 * worker releases it (store_job_release) before it ends. A process that
 * dies releases nothing: with a database of its own (SQLite) the next
 * queue_start puts its running jobs back, with a shared one lease expiry
 * does.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hark.h"
#include "media.h"
#include "queue.h"
#include "store.h"

#define POLL_MS 1000          /* idle workers and queue_wait look at the store this often */
#define ANNOUNCED_POLL_MS 10000 /* idle workers, when the store announces jobs: a safety net */
#define WATCH_MS 250          /* the watch thread's longest wait, hence its stop delay */
#define PROGRESS_STEP 1.0     /* percent between progress writes */
#define PROGRESS_PERIOD_S 0.5 /* or this long */
#define DECODE_SHARE 10.0     /* percent of a job's progress given to decoding */
/* An upload's folder path is shorter than DIR_MAX bytes, so that its
 * result names and its media file name (< 256 bytes) fit in PATH_MAX. */
#define DIR_MAX (PATH_MAX - 512)

struct model_entry {
    struct model_entry *next;
    char path[PATH_MAX];
    hark_model *model;        /* NULL while a worker loads it */
};

/* A worker's engine state for one model. */
struct worker_state {
    const hark_model *model;
    hark_state *state;
};

struct worker {
    struct queue *q;
    pthread_t thread;
    struct worker_state *states; /* owned by the worker's thread */
    int n_states;
    char name[96];            /* who claims: the queue's worker name and "/<n>" */
    /* Guarded by q->mu. */
    int64_t job_id;           /* the stored job it runs; 0 if none */
    int cancel;               /* queue_cancel named that job */
    int lost;                 /* its heartbeat found the job no longer its own */
};

/* An interactive request: lives on the stack of the queue_transcribe
 * caller, who waits until a worker has marked it done (or, if no worker
 * took it, until the queue stops). */
struct request {
    struct request *next;
    const char *model;
    const float *pcm;
    size_t n_samples;
    struct hark_options opt;
    pthread_cond_t cv;
    int taken, done, rc;      /* guarded by q->mu */
    hark_result *result;
    char err[512];
};

struct queue {
    struct store *store;
    char *data_dir, *models_dir, *default_model, *worker_name;
    int threads, n_workers, n_started;
    struct worker *workers;
    int lease_ms;             /* the store's lease; heartbeats every third of it */
    const hark_vad *vad;      /* speech detection (borrowed), or NULL */
    int vad_on;
    struct hark_vad_params vad_params;
    int words_on;
    int announced;            /* the store announces new jobs (store_wait_for_jobs) */
    pthread_t watch;          /* heartbeats, expiry, announcements */
    int watch_started;

    pthread_mutex_t mu;
    pthread_cond_t work_cv;   /* work may be waiting: a notify, a request, a stop */
    pthread_cond_t end_cv;    /* a job ended (end_gen moved) */
    pthread_cond_t model_cv;  /* a model finished loading (or failed to) */
    pthread_cond_t watch_cv;  /* the queue is stopping (for the watch thread) */
    /* Guarded by mu. */
    int stopping;
    uint64_t notify_gen, end_gen;
    struct request *req_head, *req_tail;
    struct model_entry *models;
    int busy;
    struct queue_stats stats;
};

/* What a progress callback needs: the job (0 for a request), the share of
 * the whole it reports, and what it last wrote. */
struct run_ctx {
    struct queue *q;
    struct worker *w;
    int64_t job_id;
    double lo, hi;            /* percent range of the current stage */
    double last_pct, last_write_s;
    int gone;                 /* the store said the job is not running */
};

/* ---------------------------------------------------------------- helpers */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The absolute CLOCK_MONOTONIC time ms from now, for the condition
 * variables (which all use that clock). */
static struct timespec deadline_in(long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s ? s : "") + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s ? s : "", n);
    return p;
}

/* Keeps a message to one line: the store and the HTTP API show it as such. */
static void one_line(char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r') *s = ' ';
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || !errlen) return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Whether the run in ctx should stop: queue_cancel, queue_stop, or the
 * store said so. */
static int should_stop(struct run_ctx *ctx)
{
    int stop;
    if (ctx->gone) return 1;
    pthread_mutex_lock(&ctx->q->mu);
    stop = ctx->q->stopping || (ctx->job_id && (ctx->w->cancel || ctx->w->lost));
    pthread_mutex_unlock(&ctx->q->mu);
    return stop;
}

/* The progress callback of both media_decode and hark_transcribe: fraction
 * is of the current stage, mapped into [lo, hi] percent of the job. */
static int on_progress(void *user, float fraction)
{
    struct run_ctx *ctx = user;
    double pct = ctx->lo + (ctx->hi - ctx->lo) * (double)fraction, t;
    if (should_stop(ctx)) return 1;
    if (!ctx->job_id) return 0;
    t = now_s();
    if (pct - ctx->last_pct < PROGRESS_STEP && t - ctx->last_write_s < PROGRESS_PERIOD_S) return 0;
    if (pct < ctx->last_pct) pct = ctx->last_pct;
    ctx->last_pct = pct;
    ctx->last_write_s = t;
    if (store_job_progress(ctx->q->store, ctx->job_id, ctx->w->name, pct) == STORE_GONE) {
        ctx->gone = 1;
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ models */

/* The loaded model for a name, loading it on first use. The model belongs
 * to the queue's cache. */
static int model_get(struct queue *q, const char *name, const hark_model **out, char *err,
                     size_t errlen)
{
    char path[PATH_MAX];
    struct model_entry *e;
    hark_model *m;
    int code = 0;

    if (!name || !*name) {
        set_err(err, errlen, "no model named and no default model");
        return HARK_ENOENT;
    }
    if (models_resolve(q->models_dir, name, path, sizeof path) < 0) {
        set_err(err, errlen, "unknown model '%s'", name);
        return HARK_ENOENT;
    }
    pthread_mutex_lock(&q->mu);
    for (;;) {
        for (e = q->models; e; e = e->next)
            if (strcmp(e->path, path) == 0) break;
        if (!e) break;
        if (e->model) {
            *out = e->model;
            pthread_mutex_unlock(&q->mu);
            return 0;
        }
        /* Another worker is loading it. */
        pthread_cond_wait(&q->model_cv, &q->mu);
    }
    e = calloc(1, sizeof *e);
    if (!e) {
        pthread_mutex_unlock(&q->mu);
        set_err(err, errlen, "out of memory");
        return HARK_ENOMEM;
    }
    memcpy(e->path, path, sizeof path);
    e->next = q->models;
    q->models = e;
    pthread_mutex_unlock(&q->mu);

    m = hark_model_load(path, &code, err, errlen);

    pthread_mutex_lock(&q->mu);
    if (m) {
        e->model = m;
        q->stats.models_loaded++;
    } else {
        struct model_entry **pp = &q->models;
        while (*pp != e) pp = &(*pp)->next;
        *pp = e->next;
        free(e);
    }
    pthread_cond_broadcast(&q->model_cv);
    pthread_mutex_unlock(&q->mu);
    if (!m) return code < 0 ? code : HARK_EFORMAT;
    *out = m;
    return 0;
}

/* The worker's engine state for a model, made on first use. */
static int worker_state_get(struct worker *w, const hark_model *m, hark_state **out, char *err,
                            size_t errlen)
{
    struct worker_state *grown;
    hark_state *st;
    for (int i = 0; i < w->n_states; i++) {
        if (w->states[i].model == m) {
            *out = w->states[i].state;
            return 0;
        }
    }
    st = hark_state_new(m, w->q->threads, err, errlen);
    if (!st) return HARK_ENOMEM;
    grown = realloc(w->states, (size_t)(w->n_states + 1) * sizeof *grown);
    if (!grown) {
        hark_state_free(st);
        set_err(err, errlen, "out of memory");
        return HARK_ENOMEM;
    }
    w->states = grown;
    w->states[w->n_states].model = m;
    w->states[w->n_states].state = st;
    w->n_states++;
    *out = st;
    return 0;
}

/* ----------------------------------------------------------------- results */

static const struct {
    enum hark_format fmt;
    const char *name;
} outputs[] = {
    {HARK_FORMAT_JSON, "results.json"},
    {HARK_FORMAT_SRT, "results.srt"},
    {HARK_FORMAT_VTT, "results.vtt"},
    {HARK_FORMAT_TXT, "results.txt"},
};
#define N_OUTPUTS (int)(sizeof outputs / sizeof outputs[0])

/* A result file's name, and its temporary name for one claim of a job
 * (tag "<job id>-<attempt>"): two workers that run the same job at once
 * (one of them cut off from the database) never write the same file. */
static void output_paths(const char *dir, const char *tag, int i, char final[PATH_MAX],
                         char tmp[PATH_MAX])
{
    snprintf(final, PATH_MAX, "%.*s/%s", DIR_MAX, dir, outputs[i].name);
    snprintf(tmp, PATH_MAX, "%.*s/.%s.%.40s.tmp", DIR_MAX, dir, outputs[i].name, tag);
}

/* Removes the result files in dir (or only this claim's temporaries),
 * those missing being fine. */
static void remove_results(const char *dir, const char *tag, int temporaries_only)
{
    char final[PATH_MAX], tmp[PATH_MAX];
    for (int i = 0; i < N_OUTPUTS; i++) {
        output_paths(dir, tag, i, final, tmp);
        unlink(tmp);
        if (!temporaries_only) unlink(final);
    }
}

/* Writes every result file under its temporary name. If a write fails,
 * the temporaries are removed and the files of an earlier run, if any,
 * stay as they were. */
static int write_results(const char *dir, const char *tag, const hark_result *r, char *err,
                         size_t errlen)
{
    char final[PATH_MAX], tmp[PATH_MAX];
    int rc = 0;
    for (int i = 0; i < N_OUTPUTS; i++) {
        FILE *f;
        output_paths(dir, tag, i, final, tmp);
        if (!(f = fopen(tmp, "w"))) {
            set_err(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
            rc = HARK_EIO;
            goto fail;
        }
        rc = hark_result_write(r, outputs[i].fmt, f);
        if (fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0) rc = rc ? rc : HARK_EIO;
        if (fclose(f) != 0) rc = rc ? rc : HARK_EIO;
        if (rc) {
            set_err(err, errlen, "cannot write %s: %s", tmp, hark_strerror(rc));
            goto fail;
        }
    }
    return 0;
fail:
    remove_results(dir, tag, 1);
    return rc;
}

/* Renames the temporaries into place. If a rename fails, no result file is
 * left, so there is never a mix of two runs. */
static int commit_results(const char *dir, const char *tag, char *err, size_t errlen)
{
    char final[PATH_MAX], tmp[PATH_MAX];
    int rc = 0, renamed = 0;
    for (int i = 0; i < N_OUTPUTS; i++) {
        output_paths(dir, tag, i, final, tmp);
        if (rename(tmp, final) != 0) {
            set_err(err, errlen, "cannot rename %s: %s", tmp, strerror(errno));
            rc = HARK_EIO;
            goto fail;
        }
        renamed = 1;
    }
    return 0;
fail:
    remove_results(dir, tag, !renamed);
    return rc;
}

/* -------------------------------------------------------------------- jobs */

/* OUT_LOST: the job is no longer this worker's (its lease passed and it
 * was taken back), or the database could not be told how it ended; the
 * worker leaves it alone, and lease expiry runs it again if need be. */
enum outcome { OUT_DONE, OUT_FAILED, OUT_CANCELED, OUT_INTERRUPTED, OUT_LOST };

/* Marks a job failed with a one-line message; a job that is gone meanwhile
 * (canceled, deleted, taken back) counts as canceled. */
static enum outcome fail_job(struct queue *q, struct worker *w, int64_t id, char *msg)
{
    one_line(msg);
    int rc = store_job_fail(q->store, id, w->name, msg[0] ? msg : "failed");
    return rc == STORE_GONE || rc == HARK_ENOENT ? OUT_CANCELED : OUT_FAILED;
}

/* Whether the job was ended by someone (canceled, or deleted with its
 * upload) rather than taken back and given to another worker, whose
 * results must then be left alone. */
static int ended_by_someone(struct queue *q, int64_t id)
{
    struct store_job j;
    int rc = store_job_get(q->store, id, &j);
    return rc == HARK_ENOENT || (rc == 0 && strcmp(j.state, STORE_CANCELED) == 0);
}

/* Records the finish, trying again while the database cannot be reached,
 * for at most half a lease after the heartbeat that preceded the results:
 * within that time no other worker can have been given the job. */
static int finish_job(struct queue *q, struct worker *w, int64_t id, const char *model,
                      const char *language, double time_s)
{
    double give_up = now_s() + q->lease_ms / 2000.0;
    for (;;) {
        int rc = store_job_finish(q->store, id, w->name, model, language, time_s);
        if (rc >= 0 || now_s() + 0.25 >= give_up) return rc;
        struct timespec ts = {0, 250 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* What a run stopped by a progress callback amounts to. */
static enum outcome stopped_job(struct run_ctx *ctx)
{
    struct queue *q = ctx->q;
    int canceled, stopping;
    pthread_mutex_lock(&q->mu);
    canceled = ctx->w->cancel;
    stopping = q->stopping;
    int lost = ctx->w->lost;
    pthread_mutex_unlock(&q->mu);
    if (ctx->gone) return OUT_CANCELED;
    if (lost) return OUT_LOST;
    /* queue_cancel follows store_job_cancel; making sure costs one call,
     * and leaves no job running that no worker runs. */
    if (canceled) {
        store_job_cancel(q->store, ctx->job_id);
        return OUT_CANCELED;
    }
    if (stopping) return OUT_INTERRUPTED;
    return OUT_CANCELED;
}

static void run_job(struct queue *q, struct worker *w, const struct store_job *job)
{
    char err[512] = "", dir[DIR_MAX], media[PATH_MAX], tag[48];
    struct store_upload up;
    const char *model_name = job->model[0] ? job->model : q->default_model;
    const hark_model *model = NULL;
    hark_state *state = NULL;
    hark_result *res = NULL;
    float *pcm = NULL;
    size_t n_samples = 0;
    struct hark_options opt;
    struct run_ctx ctx = {q, w, job->id, 0.0, DECODE_SHARE, 0.0, now_s(), 0};
    enum outcome out = OUT_FAILED;
    double t0, time_s = 0.0;
    int rc;

    snprintf(tag, sizeof tag, "%lld-%d", (long long)job->id, job->attempts);
    rc = store_upload_get(q->store, job->upload_id, &up);
    if (rc == HARK_ENOENT) {
        out = OUT_CANCELED; /* deleted since the claim; the job went with it */
        goto end;
    }
    if (rc < 0) {
        snprintf(err, sizeof err, "upload %s: %s", job->upload_id, store_error(q->store));
        out = fail_job(q, w, job->id, err);
        goto end;
    }
    if (snprintf(dir, sizeof dir, "%s/db/%s", q->data_dir, up.id) >= (int)sizeof dir) {
        snprintf(err, sizeof err, "upload %s: its folder's path is too long", up.id);
        out = fail_job(q, w, job->id, err);
        goto end;
    }
    snprintf(media, sizeof media, "%.*s/%.255s", DIR_MAX, dir, up.filename);

    if ((rc = model_get(q, model_name, &model, err, sizeof err)) < 0 ||
        (rc = worker_state_get(w, model, &state, err, sizeof err)) < 0) {
        out = fail_job(q, w, job->id, err);
        goto end;
    }

    t0 = now_s();
    rc = media_decode(media, &pcm, &n_samples, on_progress, &ctx, err, sizeof err);
    if (rc < 0) {
        out = rc == HARK_ECANCELED ? stopped_job(&ctx) : fail_job(q, w, job->id, err);
        goto end;
    }

    /* The engine's part of the progress starts where decoding ended. */
    ctx.last_write_s = 0.0;
    ctx.lo = DECODE_SHARE;
    ctx.hi = 100.0;
    if (on_progress(&ctx, 0.0f)) {
        out = stopped_job(&ctx);
        goto end;
    }
    hark_options_init(&opt);
    opt.language = job->language[0] ? job->language : NULL;
    opt.task = strcmp(job->task, "translate") == 0 ? HARK_TASK_TRANSLATE : HARK_TASK_TRANSCRIBE;
    opt.progress = on_progress;
    opt.progress_user = &ctx;
    struct queue_options jo;
    queue_options_init(&jo, &q->vad_params);
    if ((rc = queue_options_decode(job->options, &jo, err, sizeof err)) < 0 ||
        (rc = queue_options_apply(q, &jo, &opt, err, sizeof err)) < 0) {
        out = fail_job(q, w, job->id, err);
        goto end;
    }
    rc = hark_transcribe(state, pcm, n_samples, &opt, &res, err, sizeof err);
    time_s = now_s() - t0;
    if (rc < 0) {
        out = rc == HARK_ECANCELED ? stopped_job(&ctx) : fail_job(q, w, job->id, err);
        goto end;
    }
    if (should_stop(&ctx)) {
        out = stopped_job(&ctx);
        goto end;
    }

    if ((rc = write_results(dir, tag, res, err, sizeof err)) < 0) {
        out = fail_job(q, w, job->id, err);
        goto end;
    }
    /* The results replace any earlier ones only while the job is surely
     * this worker's: a fresh lease leaves time to rename them and record
     * the finish before any other worker could be given the job. */
    rc = store_job_heartbeat(q->store, job->id, w->name);
    if (rc == 0) rc = commit_results(dir, tag, err, sizeof err);
    else remove_results(dir, tag, 1);
    if (rc == HARK_EIO && !err[0]) snprintf(err, sizeof err, "%s", store_error(q->store));
    if (rc != 0) {
        if (rc == STORE_GONE) out = ended_by_someone(q, job->id) ? OUT_CANCELED : OUT_LOST;
        else out = fail_job(q, w, job->id, err);
        goto end;
    }
    const char *lang = hark_result_language(res);
    rc = finish_job(q, w, job->id, model_name, lang ? lang : "", time_s);
    if (rc == 0) {
        out = OUT_DONE;
    } else if (rc == STORE_GONE || rc == HARK_ENOENT) {
        /* Canceled or deleted: no results. Taken back: the results are
         * the other worker's now (or will be). */
        if (ended_by_someone(q, job->id)) {
            remove_results(dir, tag, 0);
            out = OUT_CANCELED;
        } else {
            out = OUT_LOST;
        }
    } else {
        /* The database stayed out of reach: the results stay, the job
         * runs again once its lease has passed. */
        fprintf(stderr, "hark: job %lld: %s\n", (long long)job->id, store_error(q->store));
        out = OUT_LOST;
    }

end:
    free(pcm);
    hark_result_free(res);
    /* Cut short by queue_stop: the job goes back to the queue now, for any
     * worker anywhere (a failure leaves it to lease expiry). */
    if (out == OUT_INTERRUPTED) store_job_release(q->store, job->id, w->name);
    pthread_mutex_lock(&q->mu);
    switch (out) {
    case OUT_DONE:
        q->stats.jobs_done++;
        q->stats.audio_seconds += (double)n_samples / MEDIA_SAMPLE_RATE;
        q->stats.busy_seconds += time_s;
        break;
    case OUT_FAILED: q->stats.jobs_failed++; break;
    case OUT_CANCELED: q->stats.jobs_canceled++; break;
    case OUT_INTERRUPTED: q->stats.jobs_released++; break;
    case OUT_LOST: q->stats.jobs_lost++; break;
    }
    w->job_id = 0;
    w->cancel = 0;
    w->lost = 0;
    q->busy--;
    q->end_gen++;
    pthread_cond_broadcast(&q->end_cv);
    pthread_mutex_unlock(&q->mu);
}

/* ---------------------------------------------------------------- requests */

static void run_request(struct queue *q, struct worker *w, struct request *r)
{
    char err[512] = "";
    const hark_model *model = NULL;
    hark_state *state = NULL;
    hark_result *res = NULL;
    struct hark_options opt = r->opt;
    struct run_ctx ctx = {q, w, 0, 0.0, 100.0, 0.0, 0.0, 0};
    double t0 = now_s(), time_s = 0.0;
    int rc;

    if ((rc = model_get(q, r->model, &model, err, sizeof err)) == 0 &&
        (rc = worker_state_get(w, model, &state, err, sizeof err)) == 0) {
        opt.progress = on_progress;
        opt.progress_user = &ctx;
        t0 = now_s();
        rc = hark_transcribe(state, r->pcm, r->n_samples, &opt, &res, err, sizeof err);
        time_s = now_s() - t0;
        if (rc == HARK_ECANCELED) snprintf(err, sizeof err, "the queue is stopping");
    }
    one_line(err);

    pthread_mutex_lock(&q->mu);
    if (rc == 0) {
        q->stats.audio_seconds += (double)r->n_samples / MEDIA_SAMPLE_RATE;
        q->stats.busy_seconds += time_s;
    }
    q->busy--;
    r->rc = rc;
    r->result = res;
    memcpy(r->err, err, sizeof err);
    r->done = 1;
    /* The caller may return as soon as the mutex is released: r is not
     * touched after this. */
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&q->mu);
}

/* ----------------------------------------------------------------- workers */

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct queue *q = w->q;
    struct store_job job;

    for (;;) {
        uint64_t gen;
        int rc;
        pthread_mutex_lock(&q->mu);
        if (q->stopping) {
            pthread_mutex_unlock(&q->mu);
            break;
        }
        if (q->req_head) {
            struct request *r = q->req_head;
            q->req_head = r->next;
            if (!q->req_head) q->req_tail = NULL;
            r->next = NULL;
            r->taken = 1;
            q->busy++;
            pthread_mutex_unlock(&q->mu);
            run_request(q, w, r);
            continue;
        }
        gen = q->notify_gen;
        pthread_mutex_unlock(&q->mu);

        rc = store_job_claim(q->store, w->name, &job);
        if (rc == 0) {
            pthread_mutex_lock(&q->mu);
            w->job_id = job.id;
            w->cancel = 0;
            w->lost = 0;
            q->busy++;
            pthread_mutex_unlock(&q->mu);
            run_job(q, w, &job);
            continue;
        }
        /* Nothing queued (or the store failed: try again later). */
        pthread_mutex_lock(&q->mu);
        if (!q->stopping && !q->req_head && gen == q->notify_gen) {
            struct timespec until = deadline_in(q->announced ? ANNOUNCED_POLL_MS : POLL_MS);
            pthread_cond_timedwait(&q->work_cv, &q->mu, &until);
        }
        pthread_mutex_unlock(&q->mu);
    }

    for (int i = 0; i < w->n_states; i++) hark_state_free(w->states[i].state);
    free(w->states);
    w->states = NULL;
    w->n_states = 0;
    return NULL;
}

/* ------------------------------------------------------------------- watch */

/* Wakes every idle worker: jobs may be waiting. */
static void wake_workers(struct queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->notify_gen++;
    pthread_cond_broadcast(&q->work_cv);
    pthread_mutex_unlock(&q->mu);
}

/* Renews the lease of every job this queue runs; a worker whose job is no
 * longer its own is told to stop. */
static void heartbeat_all(struct queue *q)
{
    for (int i = 0; i < q->n_started; i++) {
        struct worker *w = &q->workers[i];
        pthread_mutex_lock(&q->mu);
        int64_t id = w->job_id;
        pthread_mutex_unlock(&q->mu);
        if (!id) continue;
        if (store_job_heartbeat(q->store, id, w->name) != STORE_GONE) continue;
        pthread_mutex_lock(&q->mu);
        if (w->job_id == id) w->lost = 1;
        pthread_mutex_unlock(&q->mu);
    }
}

/* The watch thread: every third of a lease it renews the leases of the
 * jobs this queue runs and puts back in the queue the jobs whose lease has
 * passed (anyone's: a worker that died anywhere); in between it waits for
 * the store's announcements of new jobs and wakes the idle workers. A
 * failing database is retried at the next beat: only STORE_GONE stops a
 * run, so a database restart costs nothing but a few failed calls. */
static void *watch_main(void *arg)
{
    struct queue *q = arg;
    double beat_s = q->lease_ms / 3000.0, next_beat = 0.0;
    for (;;) {
        pthread_mutex_lock(&q->mu);
        int stopping = q->stopping;
        pthread_mutex_unlock(&q->mu);
        if (stopping) break;
        double t = now_s();
        if (t >= next_beat) {
            int n = 0;
            heartbeat_all(q);
            if (store_requeue_expired(q->store, &n) == 0 && n > 0) wake_workers(q);
            next_beat = t + beat_s;
        }
        long wait_ms = (long)((next_beat - now_s()) * 1000.0) + 1;
        if (wait_ms > WATCH_MS) wait_ms = WATCH_MS;
        if (wait_ms < 1) wait_ms = 1;
        if (q->announced) {
            int rc = store_wait_for_jobs(q->store, (int)wait_ms);
            if (rc > 0) wake_workers(q);
            continue;
        }
        pthread_mutex_lock(&q->mu);
        if (!q->stopping) {
            struct timespec until = deadline_in(wait_ms);
            pthread_cond_timedwait(&q->watch_cv, &q->mu, &until);
        }
        pthread_mutex_unlock(&q->mu);
    }
    return NULL;
}

/* -------------------------------------------------------------- public API */

static void queue_free(struct queue *q)
{
    struct model_entry *e, *next;
    if (!q) return;
    for (e = q->models; e; e = next) {
        next = e->next;
        hark_model_free(e->model);
        free(e);
    }
    pthread_cond_destroy(&q->work_cv);
    pthread_cond_destroy(&q->end_cv);
    pthread_cond_destroy(&q->model_cv);
    pthread_cond_destroy(&q->watch_cv);
    pthread_mutex_destroy(&q->mu);
    free(q->workers);
    free(q->data_dir);
    free(q->models_dir);
    free(q->default_model);
    free(q->worker_name);
    free(q);
}

/* Initialises a condition variable on CLOCK_MONOTONIC. */
static int cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    int rc;
    if (pthread_condattr_init(&attr) != 0) return -1;
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0) rc = pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
    return rc ? -1 : 0;
}

int queue_start(struct store *store, const struct queue_config *cfg, struct queue **out,
                char *err, size_t errlen)
{
    struct queue *q = NULL;
    int n_requeued = 0, rc;

    if (out) *out = NULL;
    if (!store || !cfg || !out || cfg->workers < 0) {
        set_err(err, errlen, "queue_start: no store, no configuration or a negative worker count");
        return HARK_EINVAL;
    }
    if (cfg->workers > 0 && (!cfg->data_dir || !*cfg->data_dir)) {
        set_err(err, errlen, "queue_start: no data folder");
        return HARK_EINVAL;
    }
    if (!(q = calloc(1, sizeof *q))) goto oom;
    if (pthread_mutex_init(&q->mu, NULL) != 0) {
        free(q);
        set_err(err, errlen, "queue_start: cannot create a mutex");
        return HARK_ENOMEM;
    }
    if (cond_init(&q->work_cv) || cond_init(&q->end_cv) || cond_init(&q->watch_cv) ||
        pthread_cond_init(&q->model_cv, NULL)) {
        /* Destroying a condition variable that was never made is harmless
         * for glibc's zero-filled ones. */
        queue_free(q);
        set_err(err, errlen, "queue_start: cannot create a condition variable");
        return HARK_ENOMEM;
    }
    q->store = store;
    q->threads = cfg->threads > 0 ? cfg->threads : 1;
    q->n_workers = cfg->workers;
    q->stats.workers = cfg->workers;
    q->data_dir = dup_str(cfg->data_dir);
    q->models_dir = dup_str(cfg->models_dir);
    q->default_model = dup_str(cfg->default_model);
    q->worker_name = dup_str(cfg->worker_name && *cfg->worker_name ? cfg->worker_name : "hark");
    q->workers = calloc(cfg->workers > 0 ? (size_t)cfg->workers : 1, sizeof *q->workers);
    if (!q->data_dir || !q->models_dir || !q->default_model || !q->worker_name || !q->workers) {
        queue_free(q);
        goto oom;
    }

    q->vad = cfg->vad;
    q->vad_on = cfg->vad && cfg->vad_on;
    q->vad_params = cfg->vad_params;
    q->words_on = cfg->words_on;
    if (hark_vad_params_check(&q->vad_params, NULL, 0) != 0) hark_vad_params_init(&q->vad_params);
    q->lease_ms = cfg->lease_ms > 0 ? cfg->lease_ms : STORE_LEASE_MS_DEFAULT;
    store_set_lease(store, q->lease_ms);

    /* A database of its own: whatever is running was cut short by a
     * process that died. A shared one: running jobs may be live workers'
     * elsewhere, and only lease expiry takes them back. */
    if (!store_is_shared(store) && cfg->workers > 0) {
        rc = store_requeue_running(store, &n_requeued);
        if (rc < 0) {
            set_err(err, errlen, "queue_start: %s", store_error(store));
            queue_free(q);
            return rc;
        }
    }

    for (int i = 0; i < cfg->workers; i++) {
        q->workers[i].q = q;
        snprintf(q->workers[i].name, sizeof q->workers[i].name, "%.80s/%d", q->worker_name, i + 1);
        if (pthread_create(&q->workers[i].thread, NULL, worker_main, &q->workers[i]) != 0) {
            set_err(err, errlen, "queue_start: cannot start a worker thread");
            queue_stop(q);
            return HARK_ENOMEM;
        }
        q->n_started++;
    }
    if (cfg->workers > 0) {
        /* Subscribes to the announcements before the first idle wait, so
         * none made from now on is missed. */
        q->announced = store_wait_for_jobs(store, 0) != HARK_ENOTSUP;
        if (pthread_create(&q->watch, NULL, watch_main, q) != 0) {
            set_err(err, errlen, "queue_start: cannot start the watch thread");
            queue_stop(q);
            return HARK_ENOMEM;
        }
        q->watch_started = 1;
    }
    *out = q;
    return 0;
oom:
    set_err(err, errlen, "queue_start: out of memory");
    return HARK_ENOMEM;
}

void queue_shutdown(struct queue *q)
{
    if (!q) return;
    pthread_mutex_lock(&q->mu);
    q->stopping = 1;
    pthread_cond_broadcast(&q->work_cv);
    pthread_cond_broadcast(&q->end_cv);
    pthread_cond_broadcast(&q->watch_cv);
    for (struct request *r = q->req_head; r; r = r->next) pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&q->mu);
}

void queue_stop(struct queue *q)
{
    if (!q) return;
    queue_shutdown(q);
    /* Each worker releases the job it was cut short on before it ends;
     * the watch thread renews leases until then. */
    for (int i = 0; i < q->n_started; i++) pthread_join(q->workers[i].thread, NULL);
    if (q->watch_started) pthread_join(q->watch, NULL);
    queue_free(q);
}

void queue_notify(struct queue *q)
{
    if (!q) return;
    pthread_mutex_lock(&q->mu);
    q->notify_gen++;
    pthread_cond_signal(&q->work_cv);
    pthread_mutex_unlock(&q->mu);
}

void queue_cancel(struct queue *q, int64_t job_id)
{
    if (!q || job_id <= 0) return;
    pthread_mutex_lock(&q->mu);
    for (int i = 0; i < q->n_started; i++)
        if (q->workers[i].job_id == job_id) q->workers[i].cancel = 1;
    pthread_mutex_unlock(&q->mu);
}

static int job_ended(const struct store_job *job)
{
    return strcmp(job->state, STORE_DONE) == 0 || strcmp(job->state, STORE_FAILED) == 0 ||
           strcmp(job->state, STORE_CANCELED) == 0;
}

int queue_wait(struct queue *q, int64_t job_id, int timeout_ms)
{
    double deadline = timeout_ms >= 0 ? now_s() + timeout_ms / 1000.0 : 0.0;
    struct store_job job;
    if (!q) return HARK_EINVAL;
    for (;;) {
        uint64_t gen;
        int rc;
        pthread_mutex_lock(&q->mu);
        if (q->stopping) {
            pthread_mutex_unlock(&q->mu);
            return HARK_ECANCELED;
        }
        gen = q->end_gen;
        pthread_mutex_unlock(&q->mu);

        rc = store_job_get(q->store, job_id, &job);
        if (rc == HARK_ENOENT) return 0;
        if (rc < 0) return rc;
        if (job_ended(&job)) return 0;

        long wait_ms = POLL_MS;
        if (timeout_ms >= 0) {
            double left = deadline - now_s();
            if (left <= 0) return HARK_ERANGE;
            if (left * 1000.0 < wait_ms) wait_ms = (long)(left * 1000.0) + 1;
        }
        pthread_mutex_lock(&q->mu);
        if (!q->stopping && gen == q->end_gen) {
            struct timespec until = deadline_in(wait_ms);
            pthread_cond_timedwait(&q->end_cv, &q->mu, &until);
        }
        pthread_mutex_unlock(&q->mu);
    }
}

int queue_transcribe(struct queue *q, const char *model, const float *pcm, size_t n_samples,
                     const struct hark_options *opt, hark_result **out, char *err, size_t errlen)
{
    struct request r;
    int rc;

    if (out) *out = NULL;
    if (!q || !pcm || n_samples == 0 || !out) {
        set_err(err, errlen, "queue_transcribe: no queue, no audio or no output");
        return HARK_EINVAL;
    }
    if (q->n_workers == 0) {
        set_err(err, errlen, "no workers");
        return HARK_ENOTSUP;
    }
    memset(&r, 0, sizeof r);
    r.model = model && *model ? model : q->default_model;
    r.pcm = pcm;
    r.n_samples = n_samples;
    if (opt) r.opt = *opt;
    else hark_options_init(&r.opt);
    r.opt.progress = NULL;
    r.opt.progress_user = NULL;
    if (pthread_cond_init(&r.cv, NULL) != 0) {
        set_err(err, errlen, "queue_transcribe: cannot create a condition variable");
        return HARK_ENOMEM;
    }

    pthread_mutex_lock(&q->mu);
    if (!q->stopping) {
        if (q->req_tail) q->req_tail->next = &r;
        else q->req_head = &r;
        q->req_tail = &r;
        q->notify_gen++;
        pthread_cond_signal(&q->work_cv);
    }
    while (!r.done) {
        if (q->stopping && !r.taken) {
            /* Take it back out of the FIFO, if it got in. */
            struct request **pp = &q->req_head, *prev = NULL;
            while (*pp && *pp != &r) {
                prev = *pp;
                pp = &(*pp)->next;
            }
            if (*pp) {
                *pp = r.next;
                if (q->req_tail == &r) q->req_tail = prev;
            }
            r.rc = HARK_ECANCELED;
            snprintf(r.err, sizeof r.err, "the queue is stopping");
            break;
        }
        pthread_cond_wait(&r.cv, &q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    pthread_cond_destroy(&r.cv);

    rc = r.rc;
    if (rc == 0) *out = r.result;
    else set_err(err, errlen, "%s", r.err);
    return rc;
}

void queue_stats(struct queue *q, struct queue_stats *out)
{
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!q) return;
    pthread_mutex_lock(&q->mu);
    *out = q->stats;
    out->busy_workers = q->busy;
    pthread_mutex_unlock(&q->mu);
}

int queue_options_apply(struct queue *q, const struct queue_options *o, struct hark_options *opt, char *err,
                        size_t errlen)
{
    const struct queue_vad *v = o ? &o->vad : NULL;
    int on = v && v->mode != QUEUE_VAD_DEFAULT ? v->mode == QUEUE_VAD_ON : q->vad_on;
    opt->word_timestamps = o && o->words >= 0 ? o->words : q->words_on;
    opt->vad = NULL;
    opt->vad_params = v && v->mode == QUEUE_VAD_ON ? v->params : q->vad_params;
    if (!on) return 0;
    if (!q->vad) {
        set_err(err, errlen, "speech detection was asked for, but no VAD model is loaded here (put one in the "
                             "models folder: hark models download silero-v6.2.0)");
        return HARK_ENOTSUP;
    }
    opt->vad = q->vad;
    return 0;
}

const hark_vad *queue_vad_model(struct queue *q) { return q ? q->vad : NULL; }

void queue_vad_defaults(struct queue *q, int *on, struct hark_vad_params *params)
{
    if (on) *on = q && q->vad_on;
    if (params) {
        if (q) *params = q->vad_params;
        else hark_vad_params_init(params);
    }
}
