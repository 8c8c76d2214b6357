/*
 * store.h: the service's metadata and job queue, behind one interface that
 * every database backend implements. SQLite (sqlite.c, a file in WAL mode)
 * is the default, PostgreSQL (postgres.c, libpq) serves many processes on
 * many machines; the backend is picked by store_open() from the location.
 *
 * Two tables hold the work. An upload is one stored media file of one owner
 * (its content hash is unique per owner, so one owner never stores the same
 * bytes twice, while two owners each keep their own copy); a job is one
 * request to run a model over an upload. An upload has at most one active
 * (queued or running) job at a time; its history keeps every job, and the
 * upload row carries the outcome of the last one that finished. A third
 * table holds the API keys: a name (the owner of what the key uploads),
 * the SHA-256 of the key (never the key itself), whether it is an admin's
 * and when it was revoked.
 *
 * Every function is safe to call from any thread at any time, and every
 * change is one transaction: a process killed at any point leaves either
 * the whole change or none of it. Functions return 0 on success, a
 * positive STORE_* outcome where the call ran but found a state it reports
 * (a duplicate, nothing to claim), or a negative HARK_E* code with a line in
 * the store's last error (store_error) on failure: HARK_ENOENT for an
 * unknown id, HARK_EIO for a database fault, HARK_ENOMEM.
 *
 * Times are ISO 8601 UTC strings with milliseconds, "2026-11-24T08:01:02.345Z",
 * which sort as text in time order.
 *
 * Leases. A claim holds a job for a lease (store_set_lease; 30 s by
 * default) that its worker renews with store_job_heartbeat. A job whose
 * lease has passed (its worker died, or lost the database for longer than
 * the lease) goes back to the queue at the next store_requeue_expired,
 * which any process may call. Only the worker holding a running job can
 * record its progress, finish, fail or release it: a worker whose job was
 * taken back and claimed again by another gets HARK_ESTALE, so a job that
 * ran twice is still completed once. Lease times come from the database's
 * clock (the server's, for PostgreSQL), so the clocks of the machines
 * running workers need not agree.
 */
#ifndef HARK_STORE_H
#define HARK_STORE_H

#include <stddef.h>
#include <stdint.h>

/* Besides HARK_EIO (the database failed) and HARK_ENOENT (no such row), the
 * store answers four outcomes in the same code space (hark.h):
 *   HARK_EEXIST  upload_insert: the owner stored the content already; key_add: the
 *                name is taken
 *   HARK_EAGAIN  job_claim: no job is queued
 *   HARK_EBUSY   job_enqueue: the upload has a queued or running job
 *   HARK_ESTALE  job_progress/finish/fail/heartbeat/release: the job is no longer this
 *                worker's running job (canceled, deleted, taken back, re-claimed) */

/* How long a claim holds a job unless its worker renews it: the default of
 * store_set_lease. */
#define STORE_LEASE_MS_DEFAULT 30000

/* Job states, as stored and as shown. */
#define STORE_QUEUED "queued"
#define STORE_RUNNING "running"
#define STORE_DONE "done"
#define STORE_FAILED "failed"
#define STORE_CANCELED "canceled"

struct store_upload {
    char id[40];            /* UUID, 36 characters */
    char filename[256];     /* the stored (sanitised) file name in <data>/db/<id>/ */
    char sha256[65];        /* lower-case hex */
    char content_type[64];
    char model[128];        /* model asked for at upload (or the default); after a run, the model that ran */
    char upload_date[32];
    int64_t size;           /* bytes */
    double duration_s;      /* probed */
    /* The outcome of the last finished run. */
    int model_ran;          /* 1 once a job has finished */
    char model_date[32];    /* when it finished; "" before */
    double time_s;          /* seconds the model ran; 0 before */
    char language[16];      /* detected or given; "" before */
    /* The latest job, if any (filled by get and list; ignored by insert). */
    int64_t job_id;         /* 0: never scheduled */
    char status[16];        /* "uploaded" (no job), or the latest job's state */
    double progress;        /* 0..100 of the latest job */
    int queue_position;     /* 1-based among queued jobs, FIFO; 0 unless queued */
    char error[256];        /* why the latest job failed; "" otherwise */
    char owner[64];         /* the name of the key that uploaded it; "" for the
                             * service's own key or a service without keys */
};

struct store_job {
    int64_t id;
    char upload_id[40];
    char model[128];
    char language[16];      /* "" for detection */
    char task[16];          /* "transcribe" or "translate" */
    char state[16];
    double progress;        /* 0..100 */
    int attempts;           /* how many times a worker has claimed it */
    char created[32];
    char started[32];       /* "" until claimed */
    char finished[32];      /* "" until it ended */
    char worker[64];        /* who claimed it last */
    char error[256];
    char lease_until[32];   /* while running: when the claim lapses unless renewed, by the
                             * database's clock; "" otherwise */
    char options[512];      /* the job's own settings (JSON object) or "" */
    /* Where a run cut short resumes (store_job_checkpoint): the time the
     * next window begins at, and the segments final before it; 0, 0 for
     * the beginning. */
    double resume_s;
    int resume_segments;
    /* Where the job's end is told (store_job_set_callback; "" for
     * nowhere), how that went: "" not yet tried, "pending", "delivered" or
     * "failed", and the attempts so far. */
    char callback_url[1024];
    char callback_state[16];
    int callback_tries;
};

/* An API key as listed: never the key, nor its hash. */
struct store_key {
    char name[64];
    char created[32];
    int admin;              /* 1: sees and changes every owner's uploads */
    char revoked[32];       /* when it was revoked; "" while it is valid */
};

/* One segment of a transcript, as the search index keeps it. */
struct store_segment {
    int index;              /* its place in the upload's results */
    double start_s, end_s;
    const char *text;
};

/* Counts for /metrics and /health. */
struct store_stats {
    int64_t uploads;
    int64_t queued, running, done, failed, canceled;
};

struct store;

/* Opens (creating if needed) the store at location: a file path,
 * "sqlite:PATH", or a postgres:// / postgresql:// libpq URI. Applies schema migrations up to the current version (the
 * schema_version table records it); a database from a newer hark is refused
 * with HARK_ENOTSUP. On failure returns a negative code and a line in err. */
int store_open(const char *location, struct store **out, char *err, size_t errlen);
void store_close(struct store *s);

/* The last failure's message for the calling thread (never NULL). A file
 * that is not a database fails to open with HARK_EIO. */
const char *store_error(struct store *s);

/* The schema version this build writes. */
int store_schema_version(void);

/* Inserts a new upload (id, filename, sha256, content_type, model,
 * upload_date, size, duration_s, owner are read; the rest is set to "never
 * run"). If the same owner has an upload with the same sha256, returns
 * HARK_EEXIST and fills *existing (when not NULL) with it; nothing is
 * written. An id that exists with another sha256 is HARK_EINVAL. */
int store_upload_insert(struct store *s, const struct store_upload *u, struct store_upload *existing);

int store_upload_get(struct store *s, const char *id, struct store_upload *out);

/* Uploads newest first (upload_date, then id, descending): at most limit
 * rows after skipping offset, in a malloc'ed array (*rows, free()), with the
 * total number of uploads in *total. limit 0 gives *rows NULL, *n 0 and the
 * total. */
int store_upload_list(struct store *s, int limit, int64_t offset,
                      struct store_upload **rows, int *n, int64_t *total);

/* The same for one owner's uploads only (owner NULL: everyone's, as
 * store_upload_list); *total counts that owner's uploads. */
int store_upload_list_owner(struct store *s, const char *owner, int limit, int64_t offset,
                            struct store_upload **rows, int *n, int64_t *total);

/* Replaces the upload's transcript in the search index with segs (n_segs
 * 0: none), as store_job_finish does (`hark search --reindex`).
 * HARK_ENOENT for an unknown upload. */
int store_index_set(struct store *s, const char *upload_id, const struct store_segment *segs, int n_segs);

/* A hit of store_search: one segment of one transcript. */
struct store_hit {
    char upload_id[40];
    char filename[256];
    int segment;            /* store_segment.index */
    double start_s, end_s;
    double score;           /* relevance: higher is better (the backends rank differently) */
    char *text;             /* the segment's text (malloc'ed) */
    char *snippet;          /* its words around the matches, each match between the bytes
                             * STORE_MARK_ON and STORE_MARK_OFF (malloc'ed) */
};
#define STORE_MARK_ON '\x01'
#define STORE_MARK_OFF '\x02'

/* Full-text search over every indexed segment (owner NULL: every owner's;
 * else that owner's uploads only), best first, at most limit hits after
 * offset, in a malloc'ed array (store_hits_free), with the number of hits
 * in all in *total. The query: words (every one must match), "quoted
 * phrases", and a word ending in * matches it as a prefix; case and
 * diacritics do not count. HARK_EINVAL, with a reason, for a query
 * without a word or over STORE_QUERY_MAX bytes or terms. */
#define STORE_QUERY_MAX 256
#define STORE_QUERY_TERMS 16
int store_search(struct store *s, const char *query, const char *owner, int limit, int64_t offset,
                 struct store_hit **hits, int *n, int64_t *total);
void store_hits_free(struct store_hit *hits, int n);

/* The ids of every upload whose last run finished (model_ran), in a
 * malloc'ed array of n strings (free each, then the array). */
int store_uploads_ran(struct store *s, char ***ids, int *n);

/* Deletes the upload and all its jobs. HARK_ENOENT if unknown. A running
 * job's worker finds its job gone (HARK_ESTALE) at its next call. */
int store_upload_delete(struct store *s, const char *id);

/* Queues a job for the upload: FIFO after every queued job. Fills *out with
 * the new job and *position (1-based place in the queue) when not NULL.
 * HARK_ENOENT for an unknown upload; HARK_EBUSY, with *out the active
 * job, if the upload already has a queued or running job. task is
 * "transcribe" or "translate" (NULL or "" mean "transcribe"; anything else
 * is HARK_EINVAL); language may be "" (detect). options (NULL or "": none)
 * is the job's own settings as the queue reads them, a JSON object of at
 * most 511 bytes, kept as given. */
int store_job_enqueue(struct store *s, const char *upload_id, const char *model,
                      const char *language, const char *task, const char *options,
                      struct store_job *out, int *position);

int store_job_get(struct store *s, int64_t id, struct store_job *out);

/* The active (queued or running) job of an upload: 0 and *out, or
 * HARK_ENOENT when there is none. */
int store_job_active(struct store *s, const char *upload_id, struct store_job *out);

/* Sets the lease of every later claim and heartbeat on this handle, in
 * milliseconds (at least 1; STORE_LEASE_MS_DEFAULT until set). Not
 * thread-safe against concurrent claims: set it before the workers start. */
void store_set_lease(struct store *s, int lease_ms);

/* Takes the oldest queued job: it becomes running, attempts goes up by one,
 * started and worker are set, progress is 0, and it is leased to worker
 * for the store's lease. HARK_EAGAIN if none is queued. Two callers never
 * get the same job. worker names one claimer (a thread of a process),
 * different from every other claimer's. */
int store_job_claim(struct store *s, const char *worker, struct store_job *out);

/* Renews worker's lease on its running job for the store's lease from now.
 * HARK_ESTALE if the job is not running or is held by another worker: the
 * worker should stop it and leave it alone. A lease that has passed but
 * whose job was not yet taken back is renewed. */
int store_job_heartbeat(struct store *s, int64_t id, const char *worker);

/* Records a running job's progress (0..100). HARK_ESTALE if the job is no
 * longer worker's running job (canceled, deleted, taken back, or an
 * unknown id): the worker should stop. finish, fail and release answer an
 * unknown id with HARK_ESTALE too. */
int store_job_progress(struct store *s, int64_t id, const char *worker, double progress);

/* A segment of a job as its worker decoded it. The segments are kept as
 * the job runs and after it ends (deleted with the job), so a client can
 * follow a job from any process and a job run again after a crash can
 * resume where the earlier run stopped. */
struct store_job_segment {
    int seq;                /* 0, 1, ...: its place in the job's results */
    double window_s;        /* where the window it came from began: a resume point */
    char language[16];      /* the language its run decoded in */
    char *data;             /* the segment, a JSON object (malloc'ed when read) */
};

/* Keeps segment seg->seq of worker's running job, replacing one kept
 * there before. HARK_ESTALE, and nothing written, if the job is not
 * worker's running job. */
int store_job_segment_put(struct store *s, int64_t id, const char *worker, const struct store_job_segment *seg);

/* The job's kept segments after seq `after` (-1: from the first), in
 * order, at most limit of them, in a malloc'ed array
 * (store_job_segments_free). An unknown job has none. */
int store_job_segments(struct store *s, int64_t id, int after, int limit, struct store_job_segment **rows,
                       int *n);
void store_job_segments_free(struct store_job_segment *rows, int n);

/* Drops the job's kept segments from seq `from` on (a run that resumes
 * redoes their window). */
int store_job_segments_trim(struct store *s, int64_t id, int from);

/* Sets the URL told when the job ends. HARK_ENOENT for an unknown job. */
int store_job_set_callback(struct store *s, int64_t id, const char *url);

/* A job whose end is due to be told. */
struct store_callback {
    int64_t job_id;
    char url[1024];
    int tries;              /* attempts before this one */
    char finished[32];      /* when the job ended */
    char state[16];         /* how it ended */
};

/* Claims the callback that is due first (a job that ended, with a URL,
 * neither delivered nor failed, whose next attempt is due), holding it for
 * hold_ms so that no other process sends it meanwhile. HARK_EAGAIN when
 * none is due. */
int store_callback_claim(struct store *s, int hold_ms, struct store_callback *out);

/* Records attempt n (1, 2, ...) of a job's callback: the HTTP status (0:
 * none came) and the error, and the callback's state after it
 * ("delivered", "pending" again in retry_ms, or "failed"). */
int store_callback_record(struct store *s, int64_t id, int n, int status, const char *error, const char *state,
                          int retry_ms);

struct store_callback_attempt {
    int n;
    char at[32];
    int status;
    char error[256];
};

/* The attempts of a job's callback, in order (malloc'ed array). */
int store_callback_attempts(struct store *s, int64_t id, struct store_callback_attempt **rows, int *n);

/* Records where worker's running job would resume if its run were cut
 * short now: every window before resume_s is finished, and its first
 * n_segments segments are final. Kept across claims (a new job starts at
 * 0, 0). HARK_ESTALE if the job is not worker's running job. */
int store_job_checkpoint(struct store *s, int64_t id, const char *worker, double resume_s, int n_segments);

/* Completes worker's running job, once: the job becomes done (progress 100,
 * finished set), its upload gets model_ran = 1, model_date = now, model,
 * time_s and language, and the upload's transcript in the search index
 * becomes segs[0 .. n_segs-1], in one transaction. HARK_ESTALE, and nothing
 * written, if the job is not worker's running job (canceled, deleted, done
 * already, taken back). */
int store_job_finish(struct store *s, int64_t id, const char *worker, const char *model,
                     const char *language, double time_s, const struct store_segment *segs, int n_segs);

/* worker's running job failed: state failed, error kept. HARK_ESTALE if it
 * was not worker's running job. */
int store_job_fail(struct store *s, int64_t id, const char *worker, const char *error);

/* Gives worker's running job back to the queue (a worker that stops before
 * the job ends): queued again at its place, progress 0, no lease; its
 * attempt stays counted. HARK_ESTALE if it was not worker's running job. */
int store_job_release(struct store *s, int64_t id, const char *worker);

/* Cancels a queued or running job: state canceled, finished set.
 * HARK_ENOENT if unknown; HARK_ESTALE if it had already ended. */
int store_job_cancel(struct store *s, int64_t id);

/* At start-up of a single-process service: every job left running (its
 * process died) goes back to the queue, keeping its place by creation
 * order. *n gets how many. Never for a shared database (store_is_shared):
 * its running jobs may be other processes'. */
int store_requeue_running(struct store *s, int *n);

/* Every running job whose lease has passed goes back to the queue, keeping
 * its place; *n (when not NULL) gets how many. Idle workers are told
 * (store_wait_news). */
int store_requeue_expired(struct store *s, int *n);

/* What store_wait_news heard: a job may have been queued by any process
 * (an enqueue, a release, a requeue), or a running job changed (its
 * progress, a segment stored, its end: what GET /jobs/<n>/events shows). */
enum { STORE_NEWS_JOBS = 1, STORE_NEWS_CHANGES = 2 };

/* Waits until the store announces news from any process, or timeout_ms
 * passes: the STORE_NEWS_* bits heard (both after a reconnection, when
 * announcements may have been missed), 0 on timeout. HARK_ENOTSUP at once
 * on a backend without announcements (SQLite): the caller looks at the
 * queue on its own schedule. A negative code for a database fault, after
 * waiting up to timeout_ms. One thread at a time per handle waits (others
 * queue behind it). */
int store_wait_news(struct store *s, int timeout_ms);

/* 1 when other processes, on other machines, may use the database at the
 * same time (PostgreSQL): then a running job may belong to a live worker
 * elsewhere, and only lease expiry takes it back. 0 for SQLite. */
int store_is_shared(struct store *s);

/* Ids of all jobs in the given state, oldest first (malloc'ed, free()). */
int store_jobs_in_state(struct store *s, const char *state, int64_t **ids, int *n);

int store_stats(struct store *s, struct store_stats *out);

/* ---- API keys */

/* The SHA-256 of key in lower-case hex into hex (65 bytes): what the store
 * keeps and looks keys up by. Thread-safe. 0, or HARK_ENOMEM. */
int store_key_hash(const char *key, char *hex);

/* Whether name is a key's name store_key_add accepts: 1 to 63 bytes of
 * [A-Za-z0-9._-]. */
int store_key_name_ok(const char *name);

/* Adds a key: name (1 to 63 bytes of [A-Za-z0-9._-]), the hash of the key
 * (store_key_hash), admin 0 or 1, created now. HARK_EEXIST when the name is
 * taken, by a valid or a revoked key (names are never reused, so that
 * uploads kept under a name never pass to a new key); HARK_EINVAL for a
 * bad name. */
int store_key_add(struct store *s, const char *name, const char *hash, int admin);

/* Every key ever added, oldest first, in a malloc'ed array (*rows, free()). */
int store_key_list(struct store *s, struct store_key **rows, int *n);

/* Revokes a key: it is refused from now on; its uploads stay, under its
 * name. HARK_ENOENT for an unknown name; revoking twice keeps the first
 * date. */
int store_key_revoke(struct store *s, const char *name);

/* The valid (not revoked) key with this hash into *out: 0, or HARK_ENOENT. */
int store_key_find(struct store *s, const char *hash, struct store_key *out);

/* How many keys were ever added, revoked ones included, into *n. */
int store_key_count(struct store *s, int64_t *n);

/* The current UTC time in the store's format (buf of at least 32 bytes). */
void store_now(char *buf);

#endif
