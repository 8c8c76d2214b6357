/*
 * pool.h: the small thread pool every kernel runs on (pool.c).
 *
 * Threading: a kern_pool has n threads including the caller of
 * kern_pool_run(). A pool is used by one thread at a time (it belongs to one
 * hark_state or one speech detection run); different pools run
 * concurrently.
 */
#ifndef HARK_POOL_H
#define HARK_POOL_H

#include <stddef.h>

struct kern_pool;

/* A task: `task` is its index in 0..n_tasks-1, `thread` the index (0..n-1)
 * of the pool thread running it, which selects its scratch buffer. */
typedef void (*kern_task_fn)(void *arg, int task, int thread);

/* Floats of per-thread scratch memory every pool owns. */
#define KERN_SCRATCH_FLOATS (1u << 20)

/* Starts n_threads - 1 worker threads. Returns NULL on failure. */
struct kern_pool *kern_pool_new(int n_threads);

/* Stops the workers and frees the pool; NULL is a no-op. */
void kern_pool_free(struct kern_pool *pool);

int kern_pool_threads(const struct kern_pool *pool);

/* Runs fn for every task index 0..n_tasks-1 across the pool's threads and
 * returns when all have finished. Tasks are handed out dynamically. */
void kern_pool_run(struct kern_pool *pool, kern_task_fn fn, void *arg, int n_tasks);

/* The scratch buffer (KERN_SCRATCH_FLOATS floats, 64-byte aligned) of pool
 * thread `thread`; owned by the pool. */
float *kern_pool_scratch(struct kern_pool *pool, int thread);

/* A buffer of at least `bytes` (64-byte aligned) that the pool's tasks
 * share, grown as needed and owned by the pool; valid until the next call.
 * Called only by the thread that runs kern_pool_run. NULL when it cannot
 * grow (the old buffer is kept). */
void *kern_pool_shared(struct kern_pool *pool, size_t bytes);

#endif
