/*
 * job_events.c: GET /jobs/<id>/events, a job followed as Server-Sent
 * Events. The job is named by its number, or by an upload id for that
 * upload's latest job. Events:
 *
 *   progress  {"job", "state", "percent", "audio_seconds", "queue_position"
 *              while queued}, whenever the state or the percentage moves
 *   segment   id: the segment's place (0, 1, ...); {"index", "start",
 *              "end", "text", "decoded_at", "words" with word timestamps},
 *              each segment as soon as its worker has decoded and stored it
 *   done      id: "end"; {"job", "upload_id", "segments", "language"}
 *   failed    id: "end"; {"job", "error"}
 *   canceled  id: "end"; {"job"} (also when the upload was deleted)
 *
 * Everything comes from the store, so a client sees a job run by any
 * process sharing it: one that connects late first gets every segment
 * decoded so far, and Last-Event-ID: N resumes after segment N. A client
 * that reconnects after the end (Last-Event-ID: end) gets 204, which tells
 * a browser's EventSource to stop. The stream is pulled (events.c): the
 * connection's thread asks the store for what is new whenever this
 * process's queue reports a change (its own jobs', and on PostgreSQL any
 * process's, announced by the store), and at least every POLL_MS in case
 * an announcement was lost. The stream begins with "retry: 1000": a
 * client that loses it (a restarted server) tries again after a second.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hark.h"
#include "internal.h"
#include "queue.h"
#include "store.h"

#define POLL_MS 250
#define RETRY_MS 1000 /* a client that lost the stream connects again this soon */
#define SEGMENTS_PER_FILL 64

struct job_watch {
    struct http_server *srv;
    int64_t job_id;
    char upload_id[40];
    double duration_s;
    int last_seq;             /* the last segment sent; -1 before the first */
    char state[16];           /* the state last sent */
    double percent;           /* the percentage last sent */
    uint64_t seen;            /* the queue's change count last seen */
    int sent_progress;
    int started;              /* the retry line went out */
};

static int fill(void *user, struct sse *s)
{
    struct job_watch *jw = user;
    struct store *st = jw->srv->store;
    struct store_job job;
    char id[24];
    if (!jw->started) {
        sse_retry(s, RETRY_MS);
        jw->started = 1;
    }
    /* The state first: when it has ended, every segment was stored
     * before, and the segments read below are all of them. */
    int rc = store_job_get(st, jw->job_id, &job);
    if (rc == HARK_ENOENT) {
        sse_send(s, "end", "canceled", json_pack("{s:I, s:s}", "job", (json_int_t)jw->job_id, "reason", "deleted"));
        return 1;
    }
    if (rc < 0) return 0; /* the store is out of reach: asked again after the wait */

    struct store_job_segment *rows = NULL;
    int n = 0;
    if (store_job_segments(st, jw->job_id, jw->last_seq, SEGMENTS_PER_FILL, &rows, &n) < 0) return 0;
    for (int i = 0; i < n; i++) {
        json_t *e = queue_segment_event(rows[i].data, rows[i].seq);
        snprintf(id, sizeof id, "%d", rows[i].seq);
        if (e && sse_send(s, id, "segment", e) < 0) break;
        jw->last_seq = rows[i].seq;
    }
    store_job_segments_free(rows, n);
    if (n == SEGMENTS_PER_FILL) return 0; /* more to send first */

    int ended = !strcmp(job.state, STORE_DONE) || !strcmp(job.state, STORE_FAILED) ||
                !strcmp(job.state, STORE_CANCELED);
    /* Tenths of a percent and hundredths of a second: what moves less
     * is not sent again. */
    double percent = round(job.progress * 10.0) / 10.0;
    if (!ended && (!jw->sent_progress || strcmp(job.state, jw->state) || percent != jw->percent)) {
        double share = (job.progress - QUEUE_DECODE_SHARE) / (100.0 - QUEUE_DECODE_SHARE);
        double audio_s = share > 0 ? round(share * jw->duration_s * 100.0) / 100.0 : 0.0;
        json_t *e = json_pack("{s:I, s:s, s:f, s:f}", "job", (json_int_t)job.id, "state", job.state, "percent",
                              percent, "audio_seconds", audio_s);
        struct store_upload u;
        if (e && !strcmp(job.state, STORE_QUEUED) && store_upload_get(st, jw->upload_id, &u) == 0 &&
            u.job_id == job.id)
            json_object_set_new(e, "queue_position", json_integer(u.queue_position));
        snprintf(jw->state, sizeof jw->state, "%s", job.state);
        jw->percent = percent;
        jw->sent_progress = 1;
        if (e) sse_send(s, NULL, "progress", e);
    }
    if (!ended) return 0;
    if (!strcmp(job.state, STORE_DONE)) {
        struct store_upload u;
        const char *lang = store_upload_get(st, jw->upload_id, &u) == 0 ? u.language : "";
        sse_send(s, "end", "done",
                 json_pack("{s:I, s:s, s:i, s:s}", "job", (json_int_t)job.id, "upload_id", jw->upload_id,
                           "segments", jw->last_seq + 1, "language", lang));
    } else if (!strcmp(job.state, STORE_FAILED)) {
        sse_send(s, "end", "failed", json_pack("{s:I, s:s}", "job", (json_int_t)job.id, "error", job.error));
    } else {
        sse_send(s, "end", "canceled", json_pack("{s:I}", "job", (json_int_t)job.id));
    }
    return 1;
}

static void wait_change(void *user)
{
    struct job_watch *jw = user;
    struct timespec t0, t1;
    uint64_t before = jw->seen;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    queue_wait_changes(jw->srv->queue, &jw->seen, POLL_MS);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* A queue that is stopping answers at once: no busy loop meanwhile. */
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    if (jw->seen == before && ms < 50) {
        struct timespec pause = {0, 50 * 1000000L};
        nanosleep(&pause, NULL);
    }
}

static const struct sse_source job_source = {fill, wait_change, free};

enum MHD_Result route_job_events(struct http_server *srv, struct MHD_Connection *c, struct request *rq)
{
    struct store_upload u;
    struct store_job job;
    long long n;
    int rc;
    if (rq->bad_path) return http_send_error(c, rq, 404, "not_found", "id", NULL, "no such job");
    if (is_uuid(rq->id)) {
        rc = visible_upload_get(srv, rq, rq->id, &u);
        if (rc == 0 && !u.job_id)
            return http_send_error(c, rq, 404, "not_found", "id", upload_json(&u),
                                   "upload %s was never scheduled", u.id);
        if (rc == 0) rc = store_job_get(srv->store, u.job_id, &job);
    } else if (parse_count(rq->id, 1, INT64_MAX, &n) < 0) {
        rc = HARK_ENOENT;
    } else {
        rc = store_job_get(srv->store, (int64_t)n, &job);
        if (rc == 0) rc = visible_upload_get(srv, rq, job.upload_id, &u);
    }
    if (rc == HARK_ENOENT) return http_send_error(c, rq, 404, "not_found", "id", NULL, "no job \"%s\"", rq->id);
    if (rc < 0) return store_failure(srv, c, rq, rc);

    int after = -1;
    const char *last = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
    if (last && !strcmp(last, "end")) {
        struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
        return r ? http_send_response(c, rq, 204, r)
                 : http_send_error(c, rq, 500, "out_of_memory", NULL, NULL, "out of memory");
    }
    if (last && parse_count(last, 0, INT32_MAX - 1, &n) == 0) after = (int)n;

    struct job_watch *jw = calloc(1, sizeof *jw);
    if (!jw) return http_send_error(c, rq, 500, "out_of_memory", NULL, NULL, "out of memory");
    jw->srv = srv;
    jw->job_id = job.id;
    snprintf(jw->upload_id, sizeof jw->upload_id, "%s", job.upload_id);
    jw->duration_s = u.duration_s;
    jw->last_seq = after;
    jw->seen = queue_changes(srv->queue);
    struct MHD_Response *r = sse_pull_response(c, &srv->stopping, &job_source, jw);
    if (!r) return http_send_error(c, rq, 500, "out_of_memory", NULL, NULL, "out of memory");
    return http_send_response(c, rq, 200, r);
}
