/*
 * backend.h: what a store backend implements, internal to src/store.
 *
 * store.c keeps the public functions of store.h thin: each checks its
 * handle and its arguments (the pointers it must write through, the task,
 * the range of progress and run time, clearing the outputs of a listing or
 * stats) and calls through the backend's operations table, so a backend
 * gets only arguments that passed those checks. A backend
 * (sqlite.c, postgres.c; a new one needs no change in any caller) defines
 * its own handle whose first member is a struct store, so a struct store *
 * converts to the backend's handle and back, and fills one const table of
 * operations with the same meanings as the functions of store.h.
 *
 * Failures are reported through store_set_error(), which keeps a one-line
 * message per thread for store_error().
 */
#ifndef HARK_STORE_BACKEND_H
#define HARK_STORE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct store_backend;

/* The head of every backend's handle. */
struct store {
    const struct store_backend *ops;
    int lease_ms;               /* store_set_lease; set by store_open */
};

/* One entry per function of store.h, same arguments and results. open gets
 * the location with any scheme prefix ("sqlite:") removed; a PostgreSQL
 * location is a libpq URI and is passed whole. open reports a failure only
 * through store_set_error(); store_open copies it into its caller's err. */
struct store_backend {
    const char *name;
    int shared;                 /* store_is_shared */
    int (*open)(const char *location, struct store **out);
    void (*close)(struct store *s);
    int (*upload_insert)(struct store *s, const struct store_upload *u, struct store_upload *existing);
    int (*upload_get)(struct store *s, const char *id, struct store_upload *out);
    int (*upload_list)(struct store *s, const char *owner, int limit, int64_t offset,
                       struct store_upload **rows, int *n, int64_t *total);
    int (*upload_delete)(struct store *s, const char *id);
    int (*job_enqueue)(struct store *s, const char *upload_id, const char *model, const char *language,
                       const char *task, const char *options, struct store_job *out, int *position);
    int (*job_get)(struct store *s, int64_t id, struct store_job *out);
    int (*job_active)(struct store *s, const char *upload_id, struct store_job *out);
    int (*job_claim)(struct store *s, const char *worker, struct store_job *out);
    int (*job_heartbeat)(struct store *s, int64_t id, const char *worker);
    int (*job_progress)(struct store *s, int64_t id, const char *worker, double progress);
    int (*job_finish)(struct store *s, int64_t id, const char *worker, const char *model,
                      const char *language, double time_s, const struct store_segment *segs, int n_segs);
    int (*job_fail)(struct store *s, int64_t id, const char *worker, const char *error);
    int (*job_release)(struct store *s, int64_t id, const char *worker);
    int (*job_cancel)(struct store *s, int64_t id);
    int (*requeue_running)(struct store *s, int *n);
    int (*requeue_expired)(struct store *s, int *n);
    int (*wait_news)(struct store *s, int timeout_ms);
    int (*jobs_in_state)(struct store *s, const char *state, int64_t **ids, int *n);
    int (*stats)(struct store *s, struct store_stats *out);
    int (*key_add)(struct store *s, const char *name, const char *hash, int admin);
    int (*key_list)(struct store *s, struct store_key **rows, int *n);
    int (*key_revoke)(struct store *s, const char *name);
    int (*key_find)(struct store *s, const char *hash, struct store_key *out);
    int (*key_count)(struct store *s, int64_t *n);
    int (*index_set)(struct store *s, const char *upload_id, const struct store_segment *segs, int n_segs);
    /* The query comes parsed: fts is an SQLite FTS5 query, tsq a PostgreSQL
     * tsquery (before folding), each quoting every word. */
    int (*search)(struct store *s, const char *fts, const char *tsq, const char *owner, int limit,
                  int64_t offset, struct store_hit **hits, int *n, int64_t *total);
    int (*uploads_ran)(struct store *s, char ***ids, int *n);
    int (*job_segment_put)(struct store *s, int64_t id, const char *worker, const struct store_job_segment *seg);
    int (*job_segments)(struct store *s, int64_t id, int after, int limit, struct store_job_segment **rows,
                        int *n);
    int (*job_segments_trim)(struct store *s, int64_t id, int from);
    int (*job_checkpoint)(struct store *s, int64_t id, const char *worker, double resume_s, int n_segments);
    int (*job_set_callback)(struct store *s, int64_t id, const char *url);
    int (*callback_claim)(struct store *s, int hold_ms, struct store_callback *out);
    int (*callback_record)(struct store *s, int64_t id, int n, int status, const char *error, const char *state,
                           int retry_ms);
    int (*callback_attempts)(struct store *s, int64_t id, struct store_callback_attempt **rows, int *n);
};

extern const struct store_backend store_sqlite_backend;
extern const struct store_backend store_postgres_backend;

/* Sets the calling thread's last error message (printf-style, truncated to
 * one line of at most 511 bytes). Returns nothing; thread-safe. */
void store_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Copies src into dst[dstlen], cutting it at a UTF-8 character boundary
 * when it does not fit; dst is always NUL-terminated. src NULL gives "". */
void store_copy(char *dst, size_t dstlen, const char *src);

#endif
