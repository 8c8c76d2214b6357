/*
 * pool.c: the thread pool every kernel runs on (pool.h).
 *
 * A job is a function and a count of tasks; the caller and the workers claim
 * task indices from one atomic ticket until none is left. Workers spin a
 * while before sleeping because decoding issues a job every few
 * microseconds, faster than a futex wake-up. Each thread also owns a
 * scratch buffer, and the pool one buffer its tasks share.
 */
#include "pool.h"

#include <assert.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "blas.h"

struct kern_pool {
    int n_threads;
    pthread_t *threads;
    float **scratch;          /* n_threads buffers of KERN_SCRATCH_FLOATS */
    void *shared;             /* kern_pool_shared's buffer */
    size_t shared_bytes;
    int n_started;

    /* The current job. `ticket` packs the job's generation, its task count
     * and the next unclaimed task index (TICKET_* below) into one word, so
     * that a thread claims a task of one particular job with a single
     * compare-and-swap that also checks the count: a thread still holding a
     * previous job's ticket can neither claim a task of the new job nor
     * judge the old one by the new one's count. */
    _Atomic uint64_t ticket;
    _Atomic(kern_task_fn) fn;
    _Atomic(void *) arg;
    atomic_int done;          /* tasks of the current job finished */
    uint32_t gen;             /* the caller's generation counter */

    pthread_mutex_t mu;
    pthread_cond_t cv_work;
    atomic_int n_sleeping;    /* workers blocked in cv_work */
    atomic_int quit;
};

struct worker_arg {
    struct kern_pool *pool;
    int id;
};

/* Spin this many pause instructions before sleeping: decoding issues a job
 * every few microseconds, faster than a futex wake-up. */
#define POOL_SPIN 20000

/* ticket = generation (24 bits) | task count (20 bits) | next index (20). */
#define TICKET_BITS 20
#define TICKET_MASK ((1u << TICKET_BITS) - 1)
#define TICKET_GEN_MASK 0xffffffu
#define TICKET_GEN(v) ((uint32_t)((v) >> (2 * TICKET_BITS)))
#define TICKET_COUNT(v) ((uint32_t)((v) >> TICKET_BITS) & TICKET_MASK)
#define TICKET_INDEX(v) ((uint32_t)(v) & TICKET_MASK)

/* Claims and runs tasks of job generation g until none is left. */
static void run_tasks(struct kern_pool *p, uint32_t g, int thread)
{
    uint64_t v = atomic_load(&p->ticket);
    for (;;) {
        if (TICKET_GEN(v) != g) return;
        uint32_t idx = TICKET_INDEX(v);
        if (idx >= TICKET_COUNT(v)) return;
        if (!atomic_compare_exchange_weak(&p->ticket, &v, v + 1)) continue;
        /* The job cannot finish before this task does, so fn and arg are
         * still this job's. */
        kern_task_fn fn = atomic_load_explicit(&p->fn, memory_order_relaxed);
        fn(atomic_load_explicit(&p->arg, memory_order_relaxed), (int)idx, thread);
        atomic_fetch_add(&p->done, 1);
        v = atomic_load(&p->ticket);
    }
}

static void *worker_main(void *v)
{
    struct kern_pool *p = ((struct worker_arg *)v)->pool;
    int id = ((struct worker_arg *)v)->id;
    free(v);
    uint32_t seen = 0;
    for (;;) {
        uint32_t g = TICKET_GEN(atomic_load(&p->ticket));
        for (int spin = 0; g == seen && spin < POOL_SPIN; spin++) {
            __builtin_ia32_pause();
            g = TICKET_GEN(atomic_load(&p->ticket));
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->n_sleeping, 1);
            while ((g = TICKET_GEN(atomic_load(&p->ticket))) == seen && !atomic_load(&p->quit))
                pthread_cond_wait(&p->cv_work, &p->mu);
            atomic_fetch_sub(&p->n_sleeping, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit)) break;
        seen = g;
        run_tasks(p, g, id);
    }
    return NULL;
}

struct kern_pool *kern_pool_new(int n_threads)
{
    if (n_threads < 1) return NULL;
    blas_load(); /* it sets OPENBLAS_CORETYPE, which must happen before threads start */
    struct kern_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_work, NULL);
    p->scratch = calloc((size_t)n_threads, sizeof *p->scratch);
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->scratch || !p->threads) goto fail;
    for (int i = 0; i < n_threads; i++) {
        p->scratch[i] = aligned_alloc(64, (size_t)KERN_SCRATCH_FLOATS * sizeof(float));
        if (!p->scratch[i]) goto fail;
    }
    for (int i = 1; i < n_threads; i++) {
        struct worker_arg *wa = malloc(sizeof *wa);
        if (!wa) goto fail;
        wa->pool = p;
        wa->id = i;
        if (pthread_create(&p->threads[i], NULL, worker_main, wa) != 0) {
            free(wa);
            goto fail;
        }
        p->n_started++;
    }
    return p;
fail:
    kern_pool_free(p);
    return NULL;
}

void kern_pool_free(struct kern_pool *p)
{
    if (!p) return;
    if (p->n_started > 0) {
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->quit, 1);
        pthread_cond_broadcast(&p->cv_work);
        pthread_mutex_unlock(&p->mu);
        for (int i = 1; i <= p->n_started; i++) pthread_join(p->threads[i], NULL);
    }
    if (p->scratch)
        for (int i = 0; i < p->n_threads; i++) free(p->scratch[i]);
    free(p->scratch);
    free(p->shared);
    free(p->threads);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_work);
    free(p);
}

int kern_pool_threads(const struct kern_pool *p) { return p->n_threads; }

float *kern_pool_scratch(struct kern_pool *p, int thread) { return p->scratch[thread]; }

void *kern_pool_shared(struct kern_pool *p, size_t bytes)
{
    if (bytes <= p->shared_bytes) return p->shared;
    size_t want = bytes + bytes / 4;
    want = (want + 63) / 64 * 64;
    void *b = aligned_alloc(64, want);
    if (!b) return NULL;
    free(p->shared);
    p->shared = b;
    p->shared_bytes = want;
    return b;
}

/* The caller publishes the job, runs tasks itself, and waits only for tasks
 * other threads have claimed: a worker that the OS has not scheduled (the
 * machine may be busy) never holds the job up. */
void kern_pool_run(struct kern_pool *p, kern_task_fn fn, void *arg, int n_tasks)
{
    if (n_tasks <= 0) return;
    if (p->n_threads == 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++) fn(arg, t, 0);
        return;
    }
    assert((uint32_t)n_tasks <= TICKET_MASK);
    uint32_t g = ++p->gen & TICKET_GEN_MASK;
    if (g == 0) g = ++p->gen & TICKET_GEN_MASK; /* workers start having "seen" generation 0 */
    atomic_store_explicit(&p->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&p->arg, arg, memory_order_relaxed);
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    atomic_store(&p->ticket, (uint64_t)g << (2 * TICKET_BITS) | (uint64_t)n_tasks << TICKET_BITS);
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv_work);
        pthread_mutex_unlock(&p->mu);
    }
    run_tasks(p, g, 0);
    for (int spin = 0; atomic_load(&p->done) < n_tasks; spin++) {
        __builtin_ia32_pause();
        if (spin > POOL_SPIN) sched_yield();
    }
}
