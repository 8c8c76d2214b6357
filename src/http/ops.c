/*
 * ops.c: what operators ask: GET /health (the database reachable, workers
 * and queue) and GET /metrics (Prometheus text: requests by route and
 * status, the queue, every worker's running job, totals of this process),
 * and GET /whoami (whose history a key sees).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hark.h"
#include "internal.h"
#include "queue.h"
#include "store.h"

/* ------------------------------------------------- /health, /metrics, / */

enum MHD_Result route_health(struct http_server *srv, struct MHD_Connection *c, struct request *rq)
{
    struct store_stats st;
    struct queue_stats qs;
    if (store_stats(srv->store, &st) < 0)
        return http_send_json(c, rq, 503,
                              json_pack("{s:s, s:s}", "status", "unavailable", "reason",
                                        store_error(srv->store)));
    queue_stats(srv->queue, &qs);
    return http_send_json(c, rq, 200,
                          json_pack("{s:s, s:s, s:i, s:i, s:I, s:I, s:s}", "status", "ok",
                                    "database", "ok", "workers", qs.workers, "busy_workers",
                                    qs.busy_workers, "queued", (json_int_t)st.queued, "running",
                                    (json_int_t)st.running, "default_model", srv->default_model));
}

/* Writes a label value with Prometheus's escapes (backslash, quote, newline). */
static void label_value(FILE *f, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"') fputc('\\', f);
        if (*v == '\n') fputs("\\n", f);
        else fputc(*v, f);
    }
}

/* What every worker of every process sharing the database is running now:
 * one line per running job, by the worker holding it. */
static void worker_activity(struct http_server *srv, FILE *f)
{
    int64_t *ids = NULL;
    int n = 0;
    if (store_jobs_in_state(srv->store, STORE_RUNNING, &ids, &n) < 0) return;
    fputs("# HELP hark_worker_job_progress Progress (percent) of each running job, by the worker"
          " that holds it, in any process sharing the database.\n"
          "# TYPE hark_worker_job_progress gauge\n", f);
    for (int i = 0; i < n; i++) {
        struct store_job j;
        if (store_job_get(srv->store, ids[i], &j) < 0 || strcmp(j.state, STORE_RUNNING) != 0)
            continue;
        fputs("hark_worker_job_progress{worker=\"", f);
        label_value(f, j.worker);
        fprintf(f, "\",job=\"%lld\"} %.1f\n", (long long)j.id, j.progress);
    }
    free(ids);
}

enum MHD_Result route_metrics(struct http_server *srv, struct MHD_Connection *c, struct request *rq)
{
    struct store_stats st;
    struct queue_stats qs;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    struct MHD_Response *r;
    int i, have_store;
    if (!f) return MHD_NO;
    have_store = store_stats(srv->store, &st) == 0;
    queue_stats(srv->queue, &qs);
    fputs("# HELP hark_http_requests_total HTTP requests answered, by route, method and status.\n"
          "# TYPE hark_http_requests_total counter\n", f);
    pthread_mutex_lock(&srv->lock);
    for (i = 0; i < srv->n_metrics; i++) {
        const struct metric_slot *m = &srv->metrics[i];
        fprintf(f, "hark_http_requests_total{route=\"%s\",method=\"%s\",status=\"%d\"} %lld\n",
                route_name(m->route), m->method, m->status, (long long)m->count);
    }
    fprintf(f, "# HELP hark_upload_bytes_total Bytes of media accepted by POST /upload.\n"
               "# TYPE hark_upload_bytes_total counter\nhark_upload_bytes_total %lld\n",
            (long long)srv->upload_bytes);
    pthread_mutex_unlock(&srv->lock);
    if (have_store) {
        fprintf(f, "# HELP hark_queue_depth Jobs waiting in the queue.\n"
                   "# TYPE hark_queue_depth gauge\nhark_queue_depth %lld\n"
                   "# HELP hark_jobs_running Jobs being run now.\n"
                   "# TYPE hark_jobs_running gauge\nhark_jobs_running %lld\n"
                   "# HELP hark_uploads Uploads stored.\n"
                   "# TYPE hark_uploads gauge\nhark_uploads %lld\n",
                (long long)st.queued, (long long)st.running, (long long)st.uploads);
        fprintf(f, "# HELP hark_jobs Jobs in the database, by state.\n"
                   "# TYPE hark_jobs gauge\n"
                   "hark_jobs{state=\"queued\"} %lld\nhark_jobs{state=\"running\"} %lld\n"
                   "hark_jobs{state=\"done\"} %lld\nhark_jobs{state=\"failed\"} %lld\n"
                   "hark_jobs{state=\"canceled\"} %lld\n",
                (long long)st.queued, (long long)st.running, (long long)st.done,
                (long long)st.failed, (long long)st.canceled);
        worker_activity(srv, f);
    }
    fprintf(f, "# HELP hark_jobs_done_total Jobs finished by this process.\n"
               "# TYPE hark_jobs_done_total counter\nhark_jobs_done_total %lld\n"
               "# HELP hark_jobs_failed_total Jobs failed in this process.\n"
               "# TYPE hark_jobs_failed_total counter\nhark_jobs_failed_total %lld\n"
               "# HELP hark_jobs_canceled_total Jobs canceled while this process ran them.\n"
               "# TYPE hark_jobs_canceled_total counter\nhark_jobs_canceled_total %lld\n"
               "# HELP hark_jobs_released_total Jobs this process handed back to the queue when"
               " it stopped.\n"
               "# TYPE hark_jobs_released_total counter\nhark_jobs_released_total %lld\n"
               "# HELP hark_jobs_lost_total Jobs this process lost to lease expiry (taken back"
               " while it ran them) or could not record.\n"
               "# TYPE hark_jobs_lost_total counter\nhark_jobs_lost_total %lld\n"
               "# HELP hark_audio_seconds_total Seconds of audio transcribed.\n"
               "# TYPE hark_audio_seconds_total counter\nhark_audio_seconds_total %.3f\n"
               "# HELP hark_model_seconds_total Seconds workers spent transcribing.\n"
               "# TYPE hark_model_seconds_total counter\nhark_model_seconds_total %.3f\n"
               "# HELP hark_realtime_factor Model seconds per audio second, over all work.\n"
               "# TYPE hark_realtime_factor gauge\nhark_realtime_factor %.6f\n"
               "# HELP hark_workers Worker threads, and how many are busy.\n"
               "# TYPE hark_workers gauge\nhark_workers %d\n"
               "# HELP hark_workers_busy Worker threads running a job now.\n"
               "# TYPE hark_workers_busy gauge\nhark_workers_busy %d\n",
            (long long)qs.jobs_done, (long long)qs.jobs_failed, (long long)qs.jobs_canceled,
            (long long)qs.jobs_released, (long long)qs.jobs_lost, qs.audio_seconds, qs.busy_seconds,
            qs.audio_seconds > 0 ? qs.busy_seconds / qs.audio_seconds : 0.0, qs.workers,
            qs.busy_workers);
    fclose(f);
    r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
    return http_send_response(c, rq, 200, r);
}

/* ------------------------------------------------------------- /whoami */

/* The sender as server.c's identify found it: the key's name (null for the
 * service's own key or an open service), whether it is an admin's (sees
 * every owner's uploads) and whether any key was sent at all. */
enum MHD_Result route_whoami(struct http_server *srv, struct MHD_Connection *c, struct request *rq)
{
    json_t *o = json_pack("{s:b, s:b}", "admin", rq->admin, "keyed", rq->keyed);
    json_object_set_new(o, "name", rq->owner[0] ? json_string(rq->owner) : json_null());
    return http_send_json(c, rq, 200, o);
}
