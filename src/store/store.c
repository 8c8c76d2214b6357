/*
 * store.c: the backend-independent part of the store (store.h).
 *
 * store_open() picks a backend from the location: "sqlite:PATH" or a plain
 * path for SQLite, a "postgres://" or "postgresql://" URI (handed to libpq
 * whole) for PostgreSQL. Every other function checks
 * its handle and calls the backend through its operations table
 * (backend.h), so callers never depend on which database is behind it.
 *
 * The last error message is kept per thread, in a thread-local buffer: a
 * thread reads the message of its own last failed call, whatever other
 * threads do meanwhile.
 */
#include "backend.h"

#include "hark.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define SCHEMA_VERSION 1

static _Thread_local char last_error[512];

void store_set_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    for (char *p = last_error; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
}

const char *store_error(struct store *s)
{
    (void)s;
    return last_error;
}

void store_copy(char *dst, size_t dstlen, const char *src)
{
    if (dstlen == 0) return;
    if (!src) src = "";
    size_t n = strlen(src);
    if (n >= dstlen) {
        n = dstlen - 1;
        /* Back off over continuation bytes so no character is cut in half. */
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80) n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

int store_schema_version(void) { return SCHEMA_VERSION; }

void store_now(char *buf)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (!gmtime_r(&ts.tv_sec, &tm) || strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm) != 19) {
        store_copy(buf, 32, "1970-01-01T00:00:00.000Z");
        return;
    }
    snprintf(buf + 19, 13, ".%03uZ", (unsigned)(ts.tv_nsec / 1000000) % 1000u);
}

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen) store_copy(err, errlen, msg);
}

int store_open(const char *location, struct store **out, char *err, size_t errlen)
{
    if (out) *out = NULL;
    if (!location || !out) {
        store_set_error("store_open: no location given");
        set_err(err, errlen, last_error);
        return HARK_EINVAL;
    }
    const struct store_backend *ops = &store_sqlite_backend;
    const char *rest = location;
    if (strncmp(location, "sqlite:", 7) == 0) {
        rest = location + 7;
    } else if (strncmp(location, "postgres://", 11) == 0 ||
               strncmp(location, "postgresql://", 13) == 0) {
        ops = &store_postgres_backend;
    }
    int rc = ops->open(rest, out, err, errlen);
    if (rc < 0) set_err(err, errlen, last_error);
    return rc;
}

void store_close(struct store *s)
{
    if (s) s->ops->close(s);
}

/* The guard every forwarding function starts with. */
#define NEED_HANDLE(s, fn)                                        \
    do {                                                          \
        if (!(s)) {                                               \
            store_set_error(fn ": no store");                     \
            return HARK_EINVAL;                                   \
        }                                                         \
    } while (0)

int store_upload_insert(struct store *s, const struct store_upload *u, struct store_upload *existing)
{
    NEED_HANDLE(s, "store_upload_insert");
    return s->ops->upload_insert(s, u, existing);
}

int store_upload_get(struct store *s, const char *id, struct store_upload *out)
{
    NEED_HANDLE(s, "store_upload_get");
    return s->ops->upload_get(s, id, out);
}

int store_upload_list(struct store *s, int limit, int64_t offset, struct store_upload **rows, int *n,
                      int64_t *total)
{
    NEED_HANDLE(s, "store_upload_list");
    return s->ops->upload_list(s, limit, offset, rows, n, total);
}

int store_upload_delete(struct store *s, const char *id)
{
    NEED_HANDLE(s, "store_upload_delete");
    return s->ops->upload_delete(s, id);
}

int store_job_enqueue(struct store *s, const char *upload_id, const char *model, const char *language,
                      const char *task, struct store_job *out, int *position)
{
    NEED_HANDLE(s, "store_job_enqueue");
    return s->ops->job_enqueue(s, upload_id, model, language, task, out, position);
}

int store_job_get(struct store *s, int64_t id, struct store_job *out)
{
    NEED_HANDLE(s, "store_job_get");
    return s->ops->job_get(s, id, out);
}

int store_job_active(struct store *s, const char *upload_id, struct store_job *out)
{
    NEED_HANDLE(s, "store_job_active");
    return s->ops->job_active(s, upload_id, out);
}

int store_job_claim(struct store *s, const char *worker, struct store_job *out)
{
    NEED_HANDLE(s, "store_job_claim");
    return s->ops->job_claim(s, worker, out);
}

int store_job_progress(struct store *s, int64_t id, double progress)
{
    NEED_HANDLE(s, "store_job_progress");
    return s->ops->job_progress(s, id, progress);
}

int store_job_finish(struct store *s, int64_t id, const char *model, const char *language, double time_s)
{
    NEED_HANDLE(s, "store_job_finish");
    return s->ops->job_finish(s, id, model, language, time_s);
}

int store_job_fail(struct store *s, int64_t id, const char *error)
{
    NEED_HANDLE(s, "store_job_fail");
    return s->ops->job_fail(s, id, error);
}

int store_job_cancel(struct store *s, int64_t id)
{
    NEED_HANDLE(s, "store_job_cancel");
    return s->ops->job_cancel(s, id);
}

int store_requeue_running(struct store *s, int *n)
{
    NEED_HANDLE(s, "store_requeue_running");
    return s->ops->requeue_running(s, n);
}

int store_jobs_in_state(struct store *s, const char *state, int64_t **ids, int *n)
{
    NEED_HANDLE(s, "store_jobs_in_state");
    return s->ops->jobs_in_state(s, state, ids, n);
}

int store_stats(struct store *s, struct store_stats *out)
{
    NEED_HANDLE(s, "store_stats");
    return s->ops->stats(s, out);
}
