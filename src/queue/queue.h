/*
 * queue.h: runs transcription jobs. A queue is a set of worker threads,
 * each with its own engine state, that take jobs from the store (FIFO),
 * decode the upload's media, run the model and write the results beside the
 * media. Models are found by name in the models folder, loaded the first
 * time a job needs them and kept for every later job and worker.
 *
 * Results of a finished job, in <data>/db/<upload id>/: results.json (the
 * engine's JSON writer), results.srt, results.vtt and results.txt. They are
 * written under temporary names and renamed into place before the job is
 * marked done, so a reader never sees a half-written result; a job that
 * fails, is canceled or whose upload is deleted leaves none behind.
 *
 * The queue also serves interactive requests (the OpenAI-compatible
 * routes): queue_transcribe() hands decoded audio to the next free worker,
 * ahead of stored jobs, and waits for the result.
 */
#ifndef HARK_QUEUE_H
#define HARK_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "hark.h"

struct store;

/* ---- Models: a folder of ggml files, named by file name without the
 * "ggml-" prefix and ".bin" suffix ("ggml-large-v3.bin" is "large-v3",
 * "rt-tiny.en-f16.bin" is "rt-tiny.en-f16"). */

/* The names of the models in dir, sorted, in a malloc'ed array of malloc'ed
 * strings (models_list_free). An unreadable or missing folder is an empty
 * list. */
int models_list(const char *dir, char ***names, int *n);
void models_list_free(char **names, int n);

/* The file of a model a client names: a name from models_list, never a
 * path. Fills path (PATH_MAX bytes) and returns 0, or HARK_ENOENT if the
 * folder holds no such model (names with '/' or ".." included). */
int models_find(const char *dir, const char *name, char *path, size_t pathlen);

/* The file of a model the operator names: as models_find, or a path to a
 * .bin file (containing '/', no ".."), which must be a regular file. */
int models_resolve(const char *dir, const char *name, char *path, size_t pathlen);

/* 1 if a model name or file name ("silero-v6.2.0", "ggml-silero-v5.1.2.bin")
 * is a speech-detection (Silero VAD) model's, which models_list and
 * models_resolve leave out. */
int models_is_vad(const char *name);

/* The speech-detection model in dir: ggml-silero-v6.2.0.bin when present,
 * else the last other silero file by name. Fills path and returns 0, or
 * HARK_ENOENT when there is none. */
int models_find_vad(const char *dir, char *path, size_t pathlen);

/* ---- A job's own settings: speech detection and word timestamps
 * (options.c). */

enum { QUEUE_VAD_DEFAULT = -1, QUEUE_VAD_OFF = 0, QUEUE_VAD_ON = 1 };

struct queue_vad {
    int mode;                      /* QUEUE_VAD_DEFAULT: as the worker's settings say */
    struct hark_vad_params params; /* with QUEUE_VAD_ON */
};

/* The default request, its settings started from defaults (NULL: the
 * engine's). */
void queue_vad_init(struct queue_vad *v, const struct hark_vad_params *defaults);

/* Reads a request's "vad": NULL or null changes nothing; false or true
 * turn detection off or on; an object turns it on with the settings it
 * names (threshold, min_speech_ms, min_silence_ms, max_speech_s (null:
 * no limit), pad_ms, or faster-whisper's names for them) over what v
 * holds. Returns 0, or HARK_EINVAL with a reason naming the member. */
struct json_t;
int queue_vad_parse(struct json_t *value, struct queue_vad *v, char *err, size_t errlen);

/* Sets one setting by name (as queue_vad_parse does for an object's
 * member). Returns 0, HARK_EINVAL for a value out of its range, or
 * HARK_ENOENT for a name that is no setting, with a reason in err. */
int queue_vad_set(struct queue_vad *v, const char *key, double value, char *err, size_t errlen);

/* A request's choices: speech detection, and word timestamps (-1: as the
 * worker's settings say; 0 off; 1 on). */
struct queue_options {
    struct queue_vad vad;
    int words;
};

/* The default request (queue_vad_init for its speech detection). */
void queue_options_init(struct queue_options *o, const struct hark_vad_params *vad_defaults);

/* Reads a request's "word_timestamps": NULL or null changes nothing, true
 * or false turn them on or off. Returns 0, or HARK_EINVAL with a reason. */
int queue_words_parse(struct json_t *value, struct queue_options *o, char *err, size_t errlen);

/* The job options the store keeps for a request: "" for the default,
 * else a JSON object with what it chose, resolved ({"vad": {...every
 * setting...}, "word_timestamps": true}). HARK_ERANGE if cap is too small
 * (512 is enough). */
int queue_options_encode(const struct queue_options *o, char *buf, size_t cap);

/* Reads stored job options back over o ("" leaves the default). */
int queue_options_decode(const char *s, struct queue_options *o, char *err, size_t errlen);

struct queue_config {
    const char *data_dir;      /* media live in <data_dir>/db/<id>/<filename> */
    const char *models_dir;
    const char *default_model; /* used when a job names none */
    int workers;               /* worker threads; 0 runs no jobs */
    int threads;               /* engine threads per worker */
    const char *worker_name;   /* names this process's workers in the store, e.g. "host:pid";
                                * worker n (from 1) claims as "<worker_name>/<n>" */
    int lease_ms;              /* how long a claim holds a job without a heartbeat (the store's
                                * lease; 0: STORE_LEASE_MS_DEFAULT); heartbeats every third */
    const hark_vad *vad;       /* speech detection's model (borrowed; outlives the queue), or NULL */
    int vad_on;                /* detection for jobs and requests that do not say (with a model) */
    struct hark_vad_params vad_params; /* settings for those that give none */
    int words_on;              /* word timestamps for jobs and requests that do not say */
    int beam_size;             /* decoding of jobs and requests: beam size (0: the engine's default) */
    int no_fallback;           /* ... and 1: each window decoded once */
};

/* A job's progress (0..100) gives its first QUEUE_DECODE_SHARE percent to
 * decoding the media, the rest to the transcription. */
#define QUEUE_DECODE_SHARE 10.0

/* Figures for /metrics, since start. */
struct queue_stats {
    int64_t jobs_done, jobs_failed, jobs_canceled;
    int64_t jobs_released;     /* handed back to the queue by a stop */
    int64_t jobs_lost;         /* taken back after their lease passed, or not recorded */
    double audio_seconds;      /* audio transcribed by finished jobs and requests */
    double busy_seconds;       /* time workers spent running the model on it */
    int busy_workers;          /* running something now */
    int workers;
    int models_loaded;
};

struct queue;

/* Starts the workers, and a watch thread that renews the leases of the
 * jobs they run, puts back in the queue jobs whose lease has passed, and
 * wakes idle workers when the store announces a job (PostgreSQL's
 * LISTEN/NOTIFY; without announcements idle workers look every second).
 * With announcements the watch thread runs even with no workers, to pass
 * on other processes' changes to running jobs (queue_changes).
 * Sets the store's lease. With a database of its own (SQLite), jobs left
 * running by a process that died are put back in the queue first
 * (store_requeue_running), so each runs once more; with a shared one
 * (store_is_shared) lease expiry does it. Returns 0, or a negative code
 * with a line in err. */
int queue_start(struct store *store, const struct queue_config *cfg, struct queue **out,
                char *err, size_t errlen);

/* Begins stopping, without waiting: workers take no more work and cancel
 * what they run, and every queue_wait and queue_transcribe caller returns
 * at once (HARK_ECANCELED). Safe to call more than once; queue_stop calls
 * it too. Lets a server end its blocked requests before it joins them. */
void queue_shutdown(struct queue *q);

/* Stops taking work, cuts short what is running (each stored job cut
 * short is released: back to queued, for any worker), joins the workers
 * and frees the queue and every loaded model. */
void queue_stop(struct queue *q);

/* Wakes an idle worker: a job was just queued. */
void queue_notify(struct queue *q);

/* Tells the worker running this job, if any, to stop now (after
 * store_job_cancel or store_upload_delete marked it); the job's results are
 * not written. */
void queue_cancel(struct queue *q, int64_t job_id);

/* Blocks until the job has ended (done, failed, canceled or deleted) or
 * timeout_ms passes (-1: no limit). Returns 0 when it ended, HARK_ERANGE on
 * timeout, HARK_ECANCELED when the queue is shutting down. */
int queue_wait(struct queue *q, int64_t job_id, int timeout_ms);

/* A count that moves whenever a job run by this process writes its
 * progress or a segment, or ends, and when the store announces the same
 * of a job run by another process (PostgreSQL): what a client following
 * jobs waits on. Without announcements (SQLite), jobs run by other
 * processes are seen only by asking the store again. */
uint64_t queue_changes(struct queue *q);

/* Waits until the count has moved past *seen or timeout_ms pass, and sets
 * *seen to the count. Returns at once while the queue stops. */
void queue_wait_changes(struct queue *q, uint64_t *seen, int timeout_ms);

/* The step at which a job failed: what a request that waited for it
 * answers depends on it (a file that decodes to nothing is the client's,
 * a full disk the server's). */
enum queue_step {
    QUEUE_STEP_UNKNOWN = 0, /* it ran in another process, or long ago */
    QUEUE_STEP_STORE,       /* reading the upload's row */
    QUEUE_STEP_MODEL,       /* loading the model */
    QUEUE_STEP_MEDIA,       /* decoding the media */
    QUEUE_STEP_ENGINE,      /* the job's options, the transcription */
    QUEUE_STEP_RESULTS,     /* writing and committing the results */
};

/* Where and why (a HARK_E* code in *rc) a job that a worker of this queue
 * ran ended failed; QUEUE_STEP_UNKNOWN when it is not among the last
 * QUEUE_FAILURES_KEPT failures here. */
#define QUEUE_FAILURES_KEPT 64
enum queue_step queue_job_failure(struct queue *q, int64_t job_id, int *rc);

/* Transcribes decoded 16 kHz mono audio now, on the next free worker (ahead
 * of stored jobs), with the named model ("" or NULL: the default) and the
 * given options. Their callbacks run on the worker's thread: the progress
 * callback may cancel the run (HARK_ECANCELED, "canceled by the client"),
 * the segment callback gets each segment as it is done. Returns 0 and a
 * result (hark_result_free), HARK_ENOENT for an unknown model, or another
 * negative code, with a line in err. */
int queue_transcribe(struct queue *q, const char *model, const float *pcm, size_t n_samples,
                     const struct hark_options *opt, hark_result **out, char *err, size_t errlen);

void queue_stats(struct queue *q, struct queue_stats *out);

/* A kept segment of a job (store_job_segments' data, its place seq) as a
 * client sees it: {"index", "start", "end", "text", "decoded_at" (when
 * its worker stored it, in the store's time format)} and, with word
 * timestamps, "words" ({"word", "start", "end", "probability"}, as in
 * results.json). NULL when data cannot be read or out of memory. */
struct json_t *queue_segment_event(const char *data, int seq);

/* Sets opt->vad, opt->vad_params and opt->word_timestamps for a request or
 * job: its own choices, else the queue's defaults; and the queue's beam size
 * and fallback. Returns 0, or
 * HARK_ENOTSUP with a reason when detection is asked for and the queue has
 * no VAD model. */
int queue_options_apply(struct queue *q, const struct queue_options *o, struct hark_options *opt, char *err,
                        size_t errlen);

/* The queue's VAD model (NULL: none), whether detection is on by default,
 * and its default settings. */
const hark_vad *queue_vad_model(struct queue *q);
void queue_vad_defaults(struct queue *q, int *on, struct hark_vad_params *params);

#endif
