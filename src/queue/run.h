/*
 * run.h: what the queue's two files share (not part of its interface): the
 * records of the queue, its workers, its interactive requests and its model
 * cache (queue.c owns them and their threads), and the running of one
 * stored job or one request on a worker (run.c).
 */
#ifndef HARK_QUEUE_RUN_H
#define HARK_QUEUE_RUN_H

#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "hark.h"
#include "queue.h"

struct store_job;

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
    int beam_size, no_fallback;
    int announced;            /* the store announces jobs and changes (store_wait_news) */
    pthread_t watch;          /* heartbeats, expiry, announcements */
    int watch_started;

    pthread_mutex_t mu;
    pthread_cond_t work_cv;   /* work may be waiting: a notify, a request, a stop */
    pthread_cond_t end_cv;    /* a job ended (end_gen moved) */
    pthread_cond_t change_cv; /* a job wrote progress or a segment, or ended (change_gen moved) */
    pthread_cond_t model_cv;  /* a model finished loading (or failed to) */
    pthread_cond_t watch_cv;  /* the queue is stopping (for the watch thread) */
    /* Guarded by mu. */
    int stopping;
    uint64_t notify_gen, end_gen, change_gen;
    struct request *req_head, *req_tail;
    struct model_entry *models;
    int busy;
    struct queue_stats stats;
    struct { int64_t job_id; int step, rc; } failures[QUEUE_FAILURES_KEPT]; /* a ring */
    int n_failures;           /* recorded so far; the next goes at n % KEPT */
};

/* Seconds on the monotonic clock. */
double run_now(void);

/* Keeps a message to one line: the store and the HTTP API show it as such. */
void run_one_line(char *s);

/* Moves change_gen and wakes those waiting on it. */
void run_changed(struct queue *q);

/* Runs a claimed job on worker w to its end: decodes the media, loads the
 * model, transcribes, writes and commits the results, and records the
 * outcome (done, failed, canceled, released or lost) in the store and the
 * queue's counters. */
void run_job(struct queue *q, struct worker *w, const struct store_job *job);

/* Runs an interactive request (queue_transcribe) on worker w and wakes its
 * caller. */
void run_request(struct queue *q, struct worker *w, struct request *r);

/* ---- segments.c: a job's segments as the store keeps them. */

/* The segment as stored (a malloc'ed JSON text), with the time it was
 * decoded when decoded_at is not NULL, or NULL when out of memory. */
char *run_segment_encode(const struct hark_segment *seg, const char *decoded_at);

/* A stored segment back into seg, which then owns its text, tokens and
 * words (run_segment_free). HARK_EFORMAT when data is not one. */
int run_segment_decode(const char *data, struct hark_segment *seg);
void run_segment_free(struct hark_segment *seg);

#endif
