/*
 * events.c: Server-Sent Events. A stream is a buffer of formatted events
 * between one producer (a thread that runs a transcription) and the HTTP
 * response that sends them: libmicrohttpd calls the response's reader on
 * the connection's own thread, which waits for the next event. Each side
 * holds a reference; the last to let go frees the stream. When the client
 * goes away, the producer's next sse_send says so, and it stops its work.
 *
 * A pulled stream has no producer thread: when all is sent, the reader
 * itself asks its source for what is new (sse_pull_response), and waits
 * on the source between asks that found nothing.
 *
 * While nothing new comes, the reader sends a comment line every
 * SSE_KEEPALIVE_S seconds, which keeps proxies and the idle timeout from
 * closing the connection, and looks at the socket every second: a client
 * that hung up ends the response at once, and so its work.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hark.h"
#include "internal.h"

#define SSE_KEEPALIVE_S 10

struct sse {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *buf;        /* events formatted and not yet sent: [head, len) */
    size_t head, len, cap;
    int refs;
    int closed;       /* the producer sent its last event */
    int gone;         /* the response was freed: no one reads any more */
    atomic_int *stopping; /* the server's flag: set, the reader ends */
    int fd;           /* the connection's socket, or -1 */
    const struct sse_source *source; /* a pulled stream's, or NULL */
    void *source_user;
};

struct sse *sse_new(atomic_int *stopping)
{
    struct sse *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->refs = 2;
    s->stopping = stopping;
    s->fd = -1;
    return s;
}

static void sse_release(struct sse *s)
{
    pthread_mutex_lock(&s->mu);
    int last = --s->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (!last) return;
    if (s->source) s->source->release(s->source_user);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->buf);
    free(s);
}

/* Appends bytes; called with the lock held. */
static int put(struct sse *s, const char *p, size_t n)
{
    if (s->head > 0 && s->head == s->len) s->head = s->len = 0;
    if (s->len + n > s->cap) {
        if (s->head > 0) {
            memmove(s->buf, s->buf + s->head, s->len - s->head);
            s->len -= s->head;
            s->head = 0;
        }
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n) cap *= 2;
        if (cap != s->cap) {
            char *b = realloc(s->buf, cap);
            if (!b) return -1;
            s->buf = b;
            s->cap = cap;
        }
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    return 0;
}

int sse_send(struct sse *s, const char *id, const char *event, json_t *data)
{
    char *text = data ? json_dumps(data, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(data);
    if (!text) return HARK_ENOMEM;
    pthread_mutex_lock(&s->mu);
    int rc = s->gone ? HARK_ECANCELED : 0;
    if (!rc && id) rc = put(s, "id: ", 4) || put(s, id, strlen(id)) || put(s, "\n", 1) ? HARK_ENOMEM : 0;
    if (!rc && event)
        rc = put(s, "event: ", 7) || put(s, event, strlen(event)) || put(s, "\n", 1) ? HARK_ENOMEM : 0;
    /* json_dumps escapes line breaks, so the data is one line. */
    if (!rc) rc = put(s, "data: ", 6) || put(s, text, strlen(text)) || put(s, "\n\n", 2) ? HARK_ENOMEM : 0;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    free(text);
    return rc;
}

int sse_retry(struct sse *s, int ms)
{
    char line[32];
    int n = snprintf(line, sizeof line, "retry: %d\n\n", ms);
    pthread_mutex_lock(&s->mu);
    int rc = put(s, line, (size_t)n) ? HARK_ENOMEM : 0;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int sse_gone(struct sse *s)
{
    pthread_mutex_lock(&s->mu);
    int gone = s->gone;
    pthread_mutex_unlock(&s->mu);
    return gone;
}

void sse_close(struct sse *s)
{
    pthread_mutex_lock(&s->mu);
    s->closed = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    sse_release(s);
}

/* Whether the client hung up: the socket says so without blocking. */
static int hung_up(const struct sse *s)
{
    struct pollfd pf = {.fd = s->fd, .events = POLLRDHUP};
    return s->fd >= 0 && poll(&pf, 1, 0) > 0 && (pf.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static ssize_t read_events(void *cls, uint64_t pos, char *out, size_t max)
{
    struct sse *s = cls;
    ssize_t n;
    (void)pos;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (s->len > s->head) {
            n = (ssize_t)(s->len - s->head < max ? s->len - s->head : max);
            memcpy(out, s->buf + s->head, (size_t)n);
            s->head += (size_t)n;
            break;
        }
        if (s->closed) {
            n = MHD_CONTENT_READER_END_OF_STREAM;
            break;
        }
        if (atomic_load(s->stopping)) {
            n = MHD_CONTENT_READER_END_WITH_ERROR;
            break;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        static const char keepalive[] = ": keep-alive\n\n";
        int waited = 0, gone = 0;
        while (!s->closed && s->len == s->head && !atomic_load(s->stopping) && waited < SSE_KEEPALIVE_S &&
               !gone) {
            if (pthread_cond_timedwait(&s->cv, &s->mu, &until) == ETIMEDOUT) {
                waited++;
                until.tv_sec += 1;
                gone = hung_up(s);
            }
        }
        if (gone) {
            n = MHD_CONTENT_READER_END_WITH_ERROR;
            break;
        }
        if (waited >= SSE_KEEPALIVE_S && s->len == s->head && !s->closed && max >= sizeof keepalive - 1) {
            memcpy(out, keepalive, sizeof keepalive - 1);
            n = (ssize_t)(sizeof keepalive - 1);
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Copies up to max buffered bytes into out; 0 when none. */
static ssize_t take(struct sse *s, char *out, size_t max)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->len - s->head < max ? s->len - s->head : max;
    if (n) memcpy(out, s->buf + s->head, n);
    s->head += n;
    pthread_mutex_unlock(&s->mu);
    return (ssize_t)n;
}

static ssize_t read_pulled(void *cls, uint64_t pos, char *out, size_t max)
{
    struct sse *s = cls;
    static const char keepalive[] = ": keep-alive\n\n";
    double quiet_since = mono_s(), checked = quiet_since;
    (void)pos;
    for (;;) {
        ssize_t n = take(s, out, max);
        if (n > 0) return n;
        if (s->closed) return MHD_CONTENT_READER_END_OF_STREAM;
        if (atomic_load(s->stopping)) return MHD_CONTENT_READER_END_WITH_ERROR;
        int rc = s->source->fill(s->source_user, s);
        if (rc < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (rc > 0) s->closed = 1;
        if ((n = take(s, out, max)) > 0) return n;
        if (s->closed) return MHD_CONTENT_READER_END_OF_STREAM;
        s->source->wait(s->source_user);
        double now = mono_s();
        if (now - checked >= 1.0) {
            checked = now;
            if (hung_up(s)) return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (now - quiet_since >= SSE_KEEPALIVE_S && max >= sizeof keepalive - 1) {
            memcpy(out, keepalive, sizeof keepalive - 1);
            return (ssize_t)(sizeof keepalive - 1);
        }
    }
}

static void free_reader(void *cls)
{
    struct sse *s = cls;
    pthread_mutex_lock(&s->mu);
    s->gone = 1;
    pthread_mutex_unlock(&s->mu);
    sse_release(s);
}

static struct MHD_Response *respond(struct sse *s, struct MHD_Connection *c, MHD_ContentReaderCallback reader)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    s->fd = ci ? ci->connect_fd : -1;
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, reader, s, free_reader);
    if (!r) {
        free_reader(s);
        return NULL;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    return r;
}

struct MHD_Response *sse_response(struct sse *s, struct MHD_Connection *c)
{
    return respond(s, c, read_events);
}

struct MHD_Response *sse_pull_response(struct MHD_Connection *c, atomic_int *stopping,
                                       const struct sse_source *source, void *user)
{
    struct sse *s = sse_new(stopping);
    if (!s) {
        source->release(user);
        return NULL;
    }
    s->refs = 1;
    s->source = source;
    s->source_user = user;
    return respond(s, c, read_pulled);
}
