/*
 * queue.c: the worker threads that run transcription jobs.
 *
 * Each worker loops: an interactive request waiting in the in-memory FIFO
 * (queue_transcribe) goes first; otherwise it claims the oldest queued job
 * from the store; when there is none it sleeps on a condition variable that
 * queue_notify() signals, and that the watch thread broadcasts when the
 * store announces a job queued by any process (PostgreSQL's LISTEN/NOTIFY).
 * Without announcements (SQLite) an idle worker looks every second; with
 * them, every ten as a safety net. The store also announces what changes
 * in a running job (progress, segments, its end), which the watch thread
 * passes on to queue_wait_changes(): that is how a job's event stream in
 * one process follows a job run by another, even one with no workers.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "errors.h"
#include "hark.h"
#include "queue.h"
#include "run.h"
#include "store.h"

#define POLL_MS 1000          /* idle workers and queue_wait look at the store this often */
#define ANNOUNCED_POLL_MS 10000 /* idle workers, when the store announces jobs: a safety net */
#define WATCH_MS 250          /* the watch thread's longest wait, hence its stop delay */

/* ---------------------------------------------------------------- helpers */


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



/* ----------------------------------------------------------------- workers */

/* Takes the queue's mutex and returns 0, or returns -1 without it once the
 * queue is stopping. */
static int lock_unless_stopping(struct queue *q)
{
    pthread_mutex_lock(&q->mu);
    if (!q->stopping) return 0;
    pthread_mutex_unlock(&q->mu);
    return -1;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct queue *q = w->q;
    struct store_job job;

    for (;;) {
        uint64_t gen;
        int rc;
        if (lock_unless_stopping(q) < 0) break;
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
        if (store_job_heartbeat(q->store, id, w->name) != HARK_ESTALE) continue;
        pthread_mutex_lock(&q->mu);
        if (w->job_id == id) w->lost = 1;
        pthread_mutex_unlock(&q->mu);
    }
}

/* The watch thread: every third of a lease it renews the leases of the
 * jobs this queue runs and puts back in the queue the jobs whose lease has
 * passed (anyone's: a worker that died anywhere); in between it waits for
 * the store's announcements: new jobs wake the idle workers, changes to
 * running jobs wake queue_wait_changes(). A queue with no workers only
 * listens. A failing database is retried at the next beat: only
 * HARK_ESTALE stops a run, so a database restart costs nothing but a few
 * failed calls. */
static void *watch_main(void *arg)
{
    struct queue *q = arg;
    double beat_s = q->lease_ms / 3000.0, next_beat = 0.0;
    for (;;) {
        pthread_mutex_lock(&q->mu);
        int stopping = q->stopping;
        pthread_mutex_unlock(&q->mu);
        if (stopping) break;
        double t = run_now();
        if (t >= next_beat && q->n_workers > 0) {
            int n = 0;
            heartbeat_all(q);
            if (store_requeue_expired(q->store, &n) == 0 && n > 0) wake_workers(q);
            next_beat = t + beat_s;
        }
        long wait_ms = (long)((next_beat - run_now()) * 1000.0) + 1;
        if (wait_ms > WATCH_MS || q->n_workers == 0) wait_ms = WATCH_MS;
        if (wait_ms < 1) wait_ms = 1;
        if (q->announced) {
            int news = store_wait_news(q->store, (int)wait_ms);
            if (news > 0) {
                if (news & STORE_NEWS_JOBS) wake_workers(q);
                if (news & STORE_NEWS_CHANGES) run_changed(q);
            }
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
    pthread_cond_destroy(&q->change_cv);
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
        err_set(err, errlen, "queue_start: no store, no configuration or a negative worker count");
        return HARK_EINVAL;
    }
    if (cfg->workers > 0 && (!cfg->data_dir || !*cfg->data_dir)) {
        err_set(err, errlen, "queue_start: no data folder");
        return HARK_EINVAL;
    }
    if (!(q = calloc(1, sizeof *q))) goto oom;
    if (pthread_mutex_init(&q->mu, NULL) != 0) {
        free(q);
        err_set(err, errlen, "queue_start: cannot create a mutex");
        return HARK_ENOMEM;
    }
    if (cond_init(&q->work_cv) || cond_init(&q->end_cv) || cond_init(&q->change_cv) || cond_init(&q->watch_cv) ||
        pthread_cond_init(&q->model_cv, NULL)) {
        /* Destroying a condition variable that was never made is harmless
         * for glibc's zero-filled ones. */
        queue_free(q);
        err_set(err, errlen, "queue_start: cannot create a condition variable");
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
    q->beam_size = cfg->beam_size;
    q->no_fallback = cfg->no_fallback;
    if (hark_vad_params_check(&q->vad_params, NULL, 0) != 0) hark_vad_params_init(&q->vad_params);
    q->lease_ms = cfg->lease_ms > 0 ? cfg->lease_ms : STORE_LEASE_MS_DEFAULT;
    store_set_lease(store, q->lease_ms);

    /* A database of its own: whatever is running was cut short by a
     * process that died. A shared one: running jobs may be live workers'
     * elsewhere, and only lease expiry takes them back. */
    if (!store_is_shared(store) && cfg->workers > 0) {
        rc = store_requeue_running(store, &n_requeued);
        if (rc < 0) {
            err_set(err, errlen, "queue_start: %s", store_error(store));
            queue_free(q);
            return rc;
        }
    }

    for (int i = 0; i < cfg->workers; i++) {
        q->workers[i].q = q;
        snprintf(q->workers[i].name, sizeof q->workers[i].name, "%.80s/%d", q->worker_name, i + 1);
        if (pthread_create(&q->workers[i].thread, NULL, worker_main, &q->workers[i]) != 0) {
            err_set(err, errlen, "queue_start: cannot start a worker thread");
            queue_stop(q);
            return HARK_ENOMEM;
        }
        q->n_started++;
    }
    /* Subscribes to the announcements before the first idle wait, so none
     * made from now on is missed. */
    q->announced = store_wait_news(store, 0) != HARK_ENOTSUP;
    if (cfg->workers > 0 || q->announced) {
        if (pthread_create(&q->watch, NULL, watch_main, q) != 0) {
            err_set(err, errlen, "queue_start: cannot start the watch thread");
            queue_stop(q);
            return HARK_ENOMEM;
        }
        q->watch_started = 1;
    }
    *out = q;
    return 0;
oom:
    err_set(err, errlen, "queue_start: out of memory");
    return HARK_ENOMEM;
}

void queue_shutdown(struct queue *q)
{
    if (!q) return;
    pthread_mutex_lock(&q->mu);
    q->stopping = 1;
    pthread_cond_broadcast(&q->work_cv);
    pthread_cond_broadcast(&q->end_cv);
    pthread_cond_broadcast(&q->change_cv);
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

enum queue_step queue_job_failure(struct queue *q, int64_t job_id, int *rc)
{
    enum queue_step step = QUEUE_STEP_UNKNOWN;
    *rc = 0;
    if (!q) return step;
    pthread_mutex_lock(&q->mu);
    for (int i = 0; i < QUEUE_FAILURES_KEPT && i < q->n_failures; i++) {
        if (q->failures[i].job_id != job_id) continue;
        step = (enum queue_step)q->failures[i].step;
        *rc = q->failures[i].rc;
    }
    pthread_mutex_unlock(&q->mu);
    return step;
}

void run_changed(struct queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->change_gen++;
    pthread_cond_broadcast(&q->change_cv);
    pthread_mutex_unlock(&q->mu);
}

uint64_t queue_changes(struct queue *q)
{
    if (!q) return 0;
    pthread_mutex_lock(&q->mu);
    uint64_t gen = q->change_gen;
    pthread_mutex_unlock(&q->mu);
    return gen;
}

void queue_wait_changes(struct queue *q, uint64_t *seen, int timeout_ms)
{
    struct timespec until = deadline_in(timeout_ms);
    if (!q) {
        struct timespec pause = {timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
        nanosleep(&pause, NULL);
        return;
    }
    pthread_mutex_lock(&q->mu);
    if (!q->stopping && q->change_gen == *seen) pthread_cond_timedwait(&q->change_cv, &q->mu, &until);
    *seen = q->change_gen;
    pthread_mutex_unlock(&q->mu);
}

int queue_wait(struct queue *q, int64_t job_id, int timeout_ms)
{
    double deadline = timeout_ms >= 0 ? run_now() + timeout_ms / 1000.0 : 0.0;
    struct store_job job;
    if (!q) return HARK_EINVAL;
    for (;;) {
        uint64_t gen;
        int rc;
        if (lock_unless_stopping(q) < 0) return HARK_ECANCELED;
        gen = q->end_gen;
        pthread_mutex_unlock(&q->mu);

        rc = store_job_get(q->store, job_id, &job);
        if (rc == HARK_ENOENT) return 0;
        if (rc < 0) return rc;
        if (job_ended(&job)) return 0;

        long wait_ms = POLL_MS;
        if (timeout_ms >= 0) {
            double left = deadline - run_now();
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
        err_set(err, errlen, "queue_transcribe: no queue, no audio or no output");
        return HARK_EINVAL;
    }
    if (q->n_workers == 0) {
        err_set(err, errlen, "no workers");
        return HARK_ENOTSUP;
    }
    memset(&r, 0, sizeof r);
    r.model = model && *model ? model : q->default_model;
    r.pcm = pcm;
    r.n_samples = n_samples;
    if (opt) r.opt = *opt;
    else hark_options_init(&r.opt);
    if (pthread_cond_init(&r.cv, NULL) != 0) {
        err_set(err, errlen, "queue_transcribe: cannot create a condition variable");
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
    else err_set(err, errlen, "%s", r.err);
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
    if (q->beam_size > 0) opt->beam_size = opt->best_of = q->beam_size;
    if (q->no_fallback) opt->no_fallback = 1;
    opt->vad = NULL;
    opt->vad_params = v && v->mode == QUEUE_VAD_ON ? v->params : q->vad_params;
    if (!on) return 0;
    if (!q->vad) {
        err_set(err, errlen, "speech detection was asked for, but no VAD model is loaded here (put one in the "
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
