/*
 * run.c: one job, or one interactive request, on a worker thread: the
 * model cache and the worker's engine states, progress into the store (and
 * the stop it may ask for), the results written beside the media, and how
 * the run ended. The queue's threads and its locking rules are queue.c's
 * (see the top of that file).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "datadir.h"
#include "errors.h"
#include "hark.h"
#include "media.h"
#include "queue.h"
#include "run.h"
#include "store.h"

#define PROGRESS_STEP 1.0     /* percent between progress writes */
#define PROGRESS_PERIOD_S 0.5 /* or this long */

/* What a progress callback needs: the job (0 for a request), the share of
 * the whole it reports, and what it last wrote. */
struct run_ctx {
    struct queue *q;
    struct worker *w;
    int64_t job_id;
    double lo, hi;            /* percent range of the current stage */
    double last_pct, last_write_s;
    int gone;                 /* the store said the job is not running */
    hark_progress_fn ask;     /* a request's own callback: may cancel it */
    void *ask_user;
    int asked;                /* ... and did */
    int seg_base;             /* a job's segments kept from an earlier run */
};

double run_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void run_one_line(char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r') *s = ' ';
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
    if (ctx->ask && ctx->ask(ctx->ask_user, fraction)) return ctx->asked = 1;
    if (!ctx->job_id) return 0;
    t = run_now();
    if (pct - ctx->last_pct < PROGRESS_STEP && t - ctx->last_write_s < PROGRESS_PERIOD_S) return 0;
    if (pct < ctx->last_pct) pct = ctx->last_pct;
    ctx->last_pct = pct;
    ctx->last_write_s = t;
    if (store_job_progress(ctx->q->store, ctx->job_id, ctx->w->name, pct) == HARK_ESTALE) {
        ctx->gone = 1;
        return 1;
    }
    run_changed(ctx->q);
    return 0;
}

/* The segment callback of a job: each segment is kept in the store as it
 * is decoded, for the job's events and for a run that resumes after this
 * one is cut short. A store that cannot be reached only costs those; a
 * job that is no longer this worker's stops. */
static int on_job_segment(void *user, const struct hark_segment *seg, int index)
{
    struct run_ctx *ctx = user;
    char now[32];
    store_now(now);
    char *data = run_segment_encode(seg, now);
    if (!data) return 0;
    struct store_job_segment g = {ctx->seg_base + index, seg->seek / 100.0, "", data};
    snprintf(g.language, sizeof g.language, "%s", seg->language ? seg->language : "");
    int rc = store_job_segment_put(ctx->q->store, ctx->job_id, ctx->w->name, &g);
    free(data);
    if (rc == HARK_ESTALE) {
        ctx->gone = 1;
        return 1;
    }
    run_changed(ctx->q);
    return 0;
}

/* The window callback of a job: where it would resume if cut short now. */
static int on_job_window(void *user, double next_s, int n_segments)
{
    struct run_ctx *ctx = user;
    if (store_job_checkpoint(ctx->q->store, ctx->job_id, ctx->w->name, next_s, ctx->seg_base + n_segments) ==
        HARK_ESTALE) {
        ctx->gone = 1;
        return 1;
    }
    return 0;
}

/* What a job's earlier runs finished, for the run that resumes it (the
 * job's checkpoint): its final segments, read back from the store, and
 * where the window after them begins. */
struct resume {
    struct hark_segment *segs;
    int n;
    double start_s;
    char language[16];
    char *prompt;             /* the kept text's end, which conditions the first window */
};

#define RESUME_PAGE 512
#define RESUME_PROMPT_BYTES 1024 /* about the 223 tokens of earlier text a window sees */

static void resume_free(struct resume *r)
{
    for (int i = 0; i < r->n; i++) run_segment_free(&r->segs[i]);
    free(r->segs);
    free(r->prompt);
    memset(r, 0, sizeof *r);
}

/* Reads the job's final segments into r and drops the rest from the
 * store. A job whose final segments cannot all be read back starts from
 * the beginning (with none kept). */
static int resume_load(struct queue *q, const struct store_job *job, struct resume *r)
{
    memset(r, 0, sizeof *r);
    int want = job->resume_segments, rc = 0;
    r->segs = want > 0 ? calloc((size_t)want, sizeof *r->segs) : NULL;
    if (want > 0 && !r->segs) rc = HARK_ENOMEM;
    while (rc == 0 && r->n < want) {
        struct store_job_segment *page = NULL;
        int got = 0;
        rc = store_job_segments(q->store, job->id, r->n - 1, RESUME_PAGE, &page, &got);
        if (rc == 0 && got == 0) rc = HARK_EFORMAT; /* fewer than the checkpoint counted */
        if (rc == 0 && r->n == 0) snprintf(r->language, sizeof r->language, "%s", page[0].language);
        for (int i = 0; rc == 0 && i < got && r->n < want; i++) {
            if (page[i].seq != r->n) rc = HARK_EFORMAT;
            else if ((rc = run_segment_decode(page[i].data, &r->segs[r->n])) == 0) r->n++;
        }
        store_job_segments_free(page, got);
    }
    if (rc == 0) r->start_s = job->resume_s;
    size_t text = 0;
    for (int i = 0; rc == 0 && i < r->n; i++) text += strlen(r->segs[i].text);
    if (rc == 0 && text > 0 && (r->prompt = malloc(RESUME_PROMPT_BYTES + 1))) {
        /* The end of the kept text, cut where a character begins. */
        size_t skip = text > RESUME_PROMPT_BYTES ? text - RESUME_PROMPT_BYTES : 0, len = 0;
        for (int i = 0; i < r->n; i++) {
            size_t tl = strlen(r->segs[i].text), k = skip < tl ? skip : tl;
            memcpy(r->prompt + len, r->segs[i].text + k, tl - k);
            len += tl - k;
            skip -= k;
        }
        r->prompt[len] = 0;
        while (((unsigned char)r->prompt[skip] & 0xc0) == 0x80) skip++;
        memmove(r->prompt, r->prompt + skip, len - skip + 1);
    }
    if (rc < 0) resume_free(r);
    /* What is not kept is decoded again: its rows go. */
    int trim = store_job_segments_trim(q->store, job->id, r->n);
    return rc < 0 ? rc : trim;
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
        err_set(err, errlen, "no model named and no default model");
        return HARK_ENOENT;
    }
    if (models_resolve(q->models_dir, name, path, sizeof path) < 0) {
        err_set(err, errlen, "unknown model '%s'", name);
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
        err_set(err, errlen, "out of memory");
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
        err_set(err, errlen, "out of memory");
        return HARK_ENOMEM;
    }
    w->states = grown;
    w->states[w->n_states].model = m;
    w->states[w->n_states].state = st;
    w->n_states++;
    *out = st;
    return 0;
}

/* -------------------------------------------------------------------- jobs */

/* OUT_LOST: the job is no longer this worker's (its lease passed and it
 * was taken back), or the database could not be told how it ended; the
 * worker leaves it alone, and lease expiry runs it again if need be. */
enum outcome { OUT_DONE, OUT_FAILED, OUT_CANCELED, OUT_INTERRUPTED, OUT_LOST };

/* Marks a job failed with a one-line message, and keeps the step and code
 * (why, a HARK_E* code) for queue_job_failure; a job that is gone meanwhile
 * (canceled, deleted, taken back) counts as canceled. */
static enum outcome fail_job(struct queue *q, struct worker *w, int64_t id, enum queue_step step, int why,
                             char *msg)
{
    run_one_line(msg);
    int rc = store_job_fail(q->store, id, w->name, msg[0] ? msg : "failed");
    if (rc == HARK_ESTALE || rc == HARK_ENOENT) return OUT_CANCELED;
    pthread_mutex_lock(&q->mu);
    int i = q->n_failures++ % QUEUE_FAILURES_KEPT;
    q->failures[i].job_id = id;
    q->failures[i].step = step;
    q->failures[i].rc = why;
    pthread_mutex_unlock(&q->mu);
    return OUT_FAILED;
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
                      const char *language, double time_s, const hark_result *res)
{
    double give_up = run_now() + q->lease_ms / 2000.0;
    int n = hark_result_n_segments(res);
    struct store_segment *segs = n ? malloc((size_t)n * sizeof *segs) : NULL;
    if (n && !segs) return HARK_ENOMEM;
    for (int i = 0; i < n; i++) {
        const struct hark_segment *g = hark_result_segment(res, i);
        segs[i] = (struct store_segment){i, g->start_s, g->end_s, g->text};
    }
    for (;;) {
        int rc = store_job_finish(q->store, id, w->name, model, language, time_s, segs, n);
        if (rc == 0 || rc == HARK_ESTALE || run_now() + 0.25 >= give_up) {
            free(segs);
            return rc;
        }
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

void run_job(struct queue *q, struct worker *w, const struct store_job *job)
{
    char err[512] = "", media[DATADIR_PATH_MAX], tag[48];
    struct store_upload up;
    const char *model_name = job->model[0] ? job->model : q->default_model;
    const hark_model *model = NULL;
    hark_state *state = NULL;
    hark_result *res = NULL;
    float *pcm = NULL;
    size_t n_samples = 0;
    struct hark_options opt;
    struct run_ctx ctx = {q, w, job->id, 0.0, QUEUE_DECODE_SHARE, 0.0, run_now(), 0, NULL, NULL, 0, 0};
    struct resume rs = {0};
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
        out = fail_job(q, w, job->id, QUEUE_STEP_STORE, rc, err);
        goto end;
    }
    if (datadir_upload_path(q->data_dir, up.id, up.filename, media, sizeof media)) {
        snprintf(err, sizeof err, "upload %s: its folder's path is too long", up.id);
        out = fail_job(q, w, job->id, QUEUE_STEP_STORE, HARK_EINVAL, err);
        goto end;
    }

    if ((rc = model_get(q, model_name, &model, err, sizeof err)) < 0 ||
        (rc = worker_state_get(w, model, &state, err, sizeof err)) < 0) {
        out = fail_job(q, w, job->id, QUEUE_STEP_MODEL, rc, err);
        goto end;
    }

    t0 = run_now();
    rc = media_decode(media, &pcm, &n_samples, on_progress, &ctx, err, sizeof err);
    if (rc < 0) {
        /* The reason names the file as its owner does, not by the
         * server's path. */
        const char *why = media_reason(err, media);
        if (why != err) {
            char reason[sizeof err];
            snprintf(reason, sizeof reason, "%s: %s", up.filename, why);
            memcpy(err, reason, sizeof err);
        }
        out = rc == HARK_ECANCELED ? stopped_job(&ctx) : fail_job(q, w, job->id, QUEUE_STEP_MEDIA, rc, err);
        goto end;
    }

    /* The engine's part of the progress starts where decoding ended. */
    ctx.last_write_s = 0.0;
    ctx.lo = QUEUE_DECODE_SHARE;
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
        out = fail_job(q, w, job->id, QUEUE_STEP_ENGINE, rc, err);
        goto end;
    }
    /* A job run before (cut short by a crash or a stop) goes on from the
     * last window its earlier runs were decoding. */
    if (job->attempts > 1 && (rc = resume_load(q, job, &rs)) < 0)
        fprintf(stderr, "hark: job %lld: its earlier run's segments cannot be read (%s); it starts over\n",
                (long long)job->id, rc == HARK_EFORMAT ? "not a segment" : store_error(q->store));
    if (rs.n > 0 || rs.start_s > 0.0) {
        opt.start_s = rs.start_s;
        if (!opt.language && rs.language[0]) opt.language = rs.language;
        if (rs.prompt) opt.initial_prompt = rs.prompt;
        ctx.seg_base = rs.n;
        fprintf(stderr, "hark: job %lld resumes at %.2f s, after %d segments\n", (long long)job->id, rs.start_s,
                rs.n);
    }
    opt.on_segment = on_job_segment;
    opt.segment_user = &ctx;
    opt.on_window = on_job_window;
    opt.window_user = &ctx;
    rc = hark_transcribe(state, pcm, n_samples, &opt, &res, err, sizeof err);
    time_s = run_now() - t0;
    if (rc == 0 && rs.n > 0 && hark_result_prepend(res, rs.segs, rs.n) < 0) {
        snprintf(err, sizeof err, "out of memory");
        rc = HARK_ENOMEM;
    }
    if (rc < 0) {
        out = rc == HARK_ECANCELED ? stopped_job(&ctx) : fail_job(q, w, job->id, QUEUE_STEP_ENGINE, rc, err);
        goto end;
    }
    if (should_stop(&ctx)) {
        out = stopped_job(&ctx);
        goto end;
    }

    if ((rc = datadir_results_write(q->data_dir, up.id, tag, res, err, sizeof err)) < 0) {
        out = fail_job(q, w, job->id, QUEUE_STEP_RESULTS, rc, err);
        goto end;
    }
    /* The results replace any earlier ones only while the job is surely
     * this worker's: a fresh lease leaves time to rename them and record
     * the finish before any other worker could be given the job. */
    rc = store_job_heartbeat(q->store, job->id, w->name);
    if (rc == 0) rc = datadir_results_commit(q->data_dir, up.id, tag, err, sizeof err);
    else datadir_results_remove(q->data_dir, up.id, tag, 0);
    if (rc == HARK_EIO && !err[0]) snprintf(err, sizeof err, "%s", store_error(q->store));
    if (rc != 0) {
        if (rc == HARK_ESTALE) out = ended_by_someone(q, job->id) ? OUT_CANCELED : OUT_LOST;
        else out = fail_job(q, w, job->id, QUEUE_STEP_RESULTS, rc, err);
        goto end;
    }
    /* Rows an earlier run left past this run's last segment go (a first
     * run has none). */
    if (job->attempts > 1) store_job_segments_trim(q->store, job->id, hark_result_n_segments(res));
    const char *lang = hark_result_language(res);
    rc = finish_job(q, w, job->id, model_name, lang ? lang : "", time_s, res);
    if (rc == 0) {
        out = OUT_DONE;
    } else if (rc == HARK_ESTALE || rc == HARK_ENOENT) {
        /* Canceled or deleted: no results. Taken back: the results are
         * the other worker's now (or will be). */
        if (ended_by_someone(q, job->id)) {
            datadir_results_remove(q->data_dir, up.id, tag, 1);
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
    resume_free(&rs);
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
    q->change_gen++;
    pthread_cond_broadcast(&q->end_cv);
    pthread_cond_broadcast(&q->change_cv);
    pthread_mutex_unlock(&q->mu);
}

/* ---------------------------------------------------------------- requests */

void run_request(struct queue *q, struct worker *w, struct request *r)
{
    char err[512] = "";
    const hark_model *model = NULL;
    hark_state *state = NULL;
    hark_result *res = NULL;
    struct hark_options opt = r->opt;
    struct run_ctx ctx = {q, w, 0, 0.0, 100.0, 0.0, 0.0, 0, r->opt.progress, r->opt.progress_user, 0, 0};
    double t0 = run_now(), time_s = 0.0;
    int rc;

    if ((rc = model_get(q, r->model, &model, err, sizeof err)) == 0 &&
        (rc = worker_state_get(w, model, &state, err, sizeof err)) == 0) {
        opt.progress = on_progress;
        opt.progress_user = &ctx;
        t0 = run_now();
        rc = hark_transcribe(state, r->pcm, r->n_samples, &opt, &res, err, sizeof err);
        time_s = run_now() - t0;
        if (rc == HARK_ECANCELED)
            snprintf(err, sizeof err, "%s", ctx.asked ? "canceled by the client" : "the queue is stopping");
    }
    run_one_line(err);

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
