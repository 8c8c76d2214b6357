/*
 * store.c: the backend-independent part of the store (store.h).
 *
 * store_open() picks a backend from the location: "sqlite:PATH" or a plain
 * path for SQLite, a "postgres://" or "postgresql://" URI (handed to libpq
 * whole) for PostgreSQL. Every other function checks its handle and its
 * arguments (pointers it must write through, a task it knows, progress
 * and run time brought into range), then calls the backend through its
 * operations table (backend.h), so callers never depend on which database
 * is behind it and no backend checks them again.
 *
 * The last error message is kept per thread, in a thread-local buffer: a
 * thread reads the message of its own last failed call, whatever other
 * threads do meanwhile.
 */
#include "backend.h"

#include "errors.h"
#include "hark.h"

#include <openssl/evp.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCHEMA_VERSION 6

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

int store_open(const char *location, struct store **out, char *err, size_t errlen)
{
    if (out) *out = NULL;
    if (!location || !out) {
        store_set_error("store_open: no location given");
        err_set(err, errlen, "%s", last_error);
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
    int rc = ops->open(rest, out);
    if (rc < 0) err_set(err, errlen, "%s", last_error);
    else (*out)->lease_ms = STORE_LEASE_MS_DEFAULT;
    return rc;
}

void store_close(struct store *s)
{
    if (s) s->ops->close(s);
}

/* Records a call's bad arguments; returns HARK_EINVAL. */
static int bad_args(const char *fn, const char *what)
{
    store_set_error("%s: %s", fn, what);
    return HARK_EINVAL;
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
    if (!u || !u->id[0] || !u->sha256[0])
        return bad_args("store_upload_insert", "an upload needs an id and a sha256");
    return s->ops->upload_insert(s, u, existing);
}

int store_upload_get(struct store *s, const char *id, struct store_upload *out)
{
    NEED_HANDLE(s, "store_upload_get");
    if (!id || !out) return bad_args("store_upload_get", "no id or no output");
    return s->ops->upload_get(s, id, out);
}

int store_upload_list(struct store *s, int limit, int64_t offset, struct store_upload **rows, int *n,
                      int64_t *total)
{
    return store_upload_list_owner(s, NULL, limit, offset, rows, n, total);
}

int store_upload_list_owner(struct store *s, const char *owner, int limit, int64_t offset,
                            struct store_upload **rows, int *n, int64_t *total)
{
    NEED_HANDLE(s, "store_upload_list");
    if (!rows || !n || limit < 0 || offset < 0) {
        store_set_error("store_upload_list: bad arguments (limit %d, offset %lld)", limit,
                        (long long)offset);
        return HARK_EINVAL;
    }
    *rows = NULL;
    *n = 0;
    return s->ops->upload_list(s, owner, limit, offset, rows, n, total);
}

int store_upload_delete(struct store *s, const char *id)
{
    NEED_HANDLE(s, "store_upload_delete");
    if (!id) return bad_args("store_upload_delete", "no id");
    return s->ops->upload_delete(s, id);
}

int store_job_enqueue(struct store *s, const char *upload_id, const char *model, const char *language,
                      const char *task, const char *options, struct store_job *out, int *position)
{
    NEED_HANDLE(s, "store_job_enqueue");
    if (!task || !task[0]) task = "transcribe";
    if (!upload_id || (strcmp(task, "transcribe") != 0 && strcmp(task, "translate") != 0))
        return bad_args("store_job_enqueue",
                        "needs an upload id and a task of transcribe or translate");
    if (options && strlen(options) >= sizeof(((struct store_job *)0)->options))
        return bad_args("store_job_enqueue", "options too long");
    return s->ops->job_enqueue(s, upload_id, model, language, task, options, out, position);
}

int store_job_get(struct store *s, int64_t id, struct store_job *out)
{
    NEED_HANDLE(s, "store_job_get");
    if (!out) return bad_args("store_job_get", "no output");
    return s->ops->job_get(s, id, out);
}

int store_job_active(struct store *s, const char *upload_id, struct store_job *out)
{
    NEED_HANDLE(s, "store_job_active");
    if (!upload_id || !out) return bad_args("store_job_active", "no upload id or no output");
    return s->ops->job_active(s, upload_id, out);
}

int store_job_claim(struct store *s, const char *worker, struct store_job *out)
{
    NEED_HANDLE(s, "store_job_claim");
    return s->ops->job_claim(s, worker, out);
}

void store_set_lease(struct store *s, int lease_ms)
{
    if (s) s->lease_ms = lease_ms > 0 ? lease_ms : 1;
}

int store_job_heartbeat(struct store *s, int64_t id, const char *worker)
{
    NEED_HANDLE(s, "store_job_heartbeat");
    return s->ops->job_heartbeat(s, id, worker ? worker : "");
}

int store_job_progress(struct store *s, int64_t id, const char *worker, double progress)
{
    NEED_HANDLE(s, "store_job_progress");
    if (!(progress >= 0)) progress = 0;
    if (progress > 100) progress = 100;
    return s->ops->job_progress(s, id, worker ? worker : "", progress);
}

/* Segments to index: a count and texts that can be read. */
static int segs_ok(const struct store_segment *segs, int n)
{
    if (n < 0 || (n > 0 && !segs)) return 0;
    for (int i = 0; i < n; i++)
        if (!segs[i].text) return 0;
    return 1;
}

int store_job_finish(struct store *s, int64_t id, const char *worker, const char *model,
                     const char *language, double time_s, const struct store_segment *segs, int n_segs)
{
    NEED_HANDLE(s, "store_job_finish");
    if (!segs_ok(segs, n_segs)) return bad_args("store_job_finish", "bad segments");
    if (!isfinite(time_s) || time_s < 0) time_s = 0;
    return s->ops->job_finish(s, id, worker ? worker : "", model, language, time_s, segs, n_segs);
}

int store_index_set(struct store *s, const char *upload_id, const struct store_segment *segs, int n_segs)
{
    NEED_HANDLE(s, "store_index_set");
    if (!upload_id || !segs_ok(segs, n_segs)) return bad_args("store_index_set", "no upload id or bad segments");
    return s->ops->index_set(s, upload_id, segs, n_segs);
}

int store_uploads_ran(struct store *s, char ***ids, int *n)
{
    NEED_HANDLE(s, "store_uploads_ran");
    if (!ids || !n) return bad_args("store_uploads_ran", "no output");
    *ids = NULL;
    *n = 0;
    return s->ops->uploads_ran(s, ids, n);
}

int store_job_segment_put(struct store *s, int64_t id, const char *worker, const struct store_job_segment *seg)
{
    NEED_HANDLE(s, "store_job_segment_put");
    if (!seg || !seg->data || seg->seq < 0 || !(seg->window_s >= 0.0))
        return bad_args("store_job_segment_put", "no segment, or a bad place or time");
    return s->ops->job_segment_put(s, id, worker ? worker : "", seg);
}

int store_job_segments(struct store *s, int64_t id, int after, int limit, struct store_job_segment **rows,
                       int *n)
{
    NEED_HANDLE(s, "store_job_segments");
    if (!rows || !n || limit < 1) return bad_args("store_job_segments", "no output or a limit below 1");
    *rows = NULL;
    *n = 0;
    return s->ops->job_segments(s, id, after < -1 ? -1 : after, limit, rows, n);
}

void store_job_segments_free(struct store_job_segment *rows, int n)
{
    for (int i = 0; rows && i < n; i++) free(rows[i].data);
    free(rows);
}

int store_job_segments_trim(struct store *s, int64_t id, int from)
{
    NEED_HANDLE(s, "store_job_segments_trim");
    return s->ops->job_segments_trim(s, id, from < 0 ? 0 : from);
}

int store_job_checkpoint(struct store *s, int64_t id, const char *worker, double resume_s, int n_segments)
{
    NEED_HANDLE(s, "store_job_checkpoint");
    if (!(resume_s >= 0.0) || n_segments < 0)
        return bad_args("store_job_checkpoint", "a resume point before the start");
    return s->ops->job_checkpoint(s, id, worker ? worker : "", resume_s, n_segments);
}

int store_job_set_callback(struct store *s, int64_t id, const char *url)
{
    NEED_HANDLE(s, "store_job_set_callback");
    if (!url || strlen(url) >= sizeof ((struct store_job *)0)->callback_url)
        return bad_args("store_job_set_callback", "no URL, or one too long");
    return s->ops->job_set_callback(s, id, url);
}

int store_callback_claim(struct store *s, int hold_ms, struct store_callback *out)
{
    NEED_HANDLE(s, "store_callback_claim");
    if (!out || hold_ms < 1) return bad_args("store_callback_claim", "no output or no hold");
    return s->ops->callback_claim(s, hold_ms, out);
}

int store_callback_record(struct store *s, int64_t id, int n, int status, const char *error, const char *state,
                          int retry_ms)
{
    NEED_HANDLE(s, "store_callback_record");
    if (n < 1 || !state || (strcmp(state, "delivered") && strcmp(state, "pending") && strcmp(state, "failed")) ||
        retry_ms < 0)
        return bad_args("store_callback_record", "a bad attempt number, state or delay");
    return s->ops->callback_record(s, id, n, status, error ? error : "", state, retry_ms);
}

int store_callback_attempts(struct store *s, int64_t id, struct store_callback_attempt **rows, int *n)
{
    NEED_HANDLE(s, "store_callback_attempts");
    if (!rows || !n) return bad_args("store_callback_attempts", "no output");
    *rows = NULL;
    *n = 0;
    return s->ops->callback_attempts(s, id, rows, n);
}

/* ------------------------------------------------------------- search */

/* A search query taken apart: terms, each a word or a quoted phrase (its
 * words in order), the last word of a term possibly a prefix. Words are
 * runs of letters and digits: ASCII ones, and every byte of a non-ASCII
 * character (the backends' own tokenizers split those further). */
struct query_term {
    int n_words, prefix;
    const char *word[STORE_QUERY_TERMS];
    int len[STORE_QUERY_TERMS];
};

static int word_byte(unsigned char c) { return c >= 0x80 || (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z'); }

static int parse_query(const char *q, struct query_term *t, int *n_terms, int *n_words)
{
    int nt = 0, nw = 0, quoted = 0;
    struct query_term *cur = NULL;
    for (const char *p = q; *p;) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            quoted = !quoted;
            cur = NULL;
            p++;
            continue;
        }
        if (!word_byte(c)) {
            /* A * right after a word makes it a prefix and ends its term;
             * outside quotes any other separator ends the term too. */
            if (c == '*' && cur && p > q && word_byte((unsigned char)p[-1])) {
                cur->prefix = 1;
                cur = NULL;
            } else if (!quoted) {
                cur = NULL;
            }
            p++;
            continue;
        }
        const char *w = p;
        while (*p && word_byte((unsigned char)*p)) p++;
        if (!cur) {
            if (nt == STORE_QUERY_TERMS) return bad_args("store_search", "too many terms (at most 16)");
            cur = &t[nt++];
            memset(cur, 0, sizeof *cur);
        }
        if (cur->n_words == STORE_QUERY_TERMS || nw == 2 * STORE_QUERY_TERMS)
            return bad_args("store_search", "too many words (at most 32)");
        cur->word[cur->n_words] = w;
        cur->len[cur->n_words++] = (int)(p - w);
        nw++;
    }
    *n_terms = nt;
    *n_words = nw;
    if (!nw) return bad_args("store_search", "the query has no word to look for");
    return 0;
}

/* The terms as an FTS5 query ("a b" "c"* ...) and a tsquery
 * ('a' <-> 'b' & 'c':* ...): every word quoted, so nothing in a word is
 * read as syntax. */
static void render_query(const struct query_term *t, int nt, char *fts, char *tsq)
{
    char *f = fts, *g = tsq;
    for (int i = 0; i < nt; i++) {
        if (i) {
            *f++ = ' ';
            g += sprintf(g, " & ");
        }
        *f++ = '"';
        for (int k = 0; k < t[i].n_words; k++) {
            f += sprintf(f, "%s%.*s", k ? " " : "", t[i].len[k], t[i].word[k]);
            g += sprintf(g, "%s'%.*s'%s", k ? " <-> " : "", t[i].len[k], t[i].word[k],
                         t[i].prefix && k == t[i].n_words - 1 ? ":*" : "");
        }
        *f++ = '"';
        if (t[i].prefix) *f++ = '*';
    }
    *f = *g = 0;
}

int store_search(struct store *s, const char *query, const char *owner, int limit, int64_t offset,
                 struct store_hit **hits, int *n, int64_t *total)
{
    NEED_HANDLE(s, "store_search");
    if (!query || !hits || !n || limit < 0 || offset < 0) return bad_args("store_search", "bad arguments");
    *hits = NULL;
    *n = 0;
    if (total) *total = 0;
    if (strlen(query) > STORE_QUERY_MAX) return bad_args("store_search", "the query is longer than 256 bytes");
    struct query_term t[STORE_QUERY_TERMS];
    int nt, nw;
    int rc = parse_query(query, t, &nt, &nw);
    if (rc) return rc;
    /* Each word at most doubles in the tsquery's quoting and operators. */
    char fts[4 * STORE_QUERY_MAX + 64], tsq[8 * STORE_QUERY_MAX + 256];
    render_query(t, nt, fts, tsq);
    return s->ops->search(s, fts, tsq, owner, limit, offset, hits, n, total);
}

void store_hits_free(struct store_hit *hits, int n)
{
    for (int i = 0; hits && i < n; i++) {
        free(hits[i].text);
        free(hits[i].snippet);
    }
    free(hits);
}

int store_job_fail(struct store *s, int64_t id, const char *worker, const char *error)
{
    NEED_HANDLE(s, "store_job_fail");
    return s->ops->job_fail(s, id, worker ? worker : "", error);
}

int store_job_release(struct store *s, int64_t id, const char *worker)
{
    NEED_HANDLE(s, "store_job_release");
    return s->ops->job_release(s, id, worker ? worker : "");
}

int store_requeue_expired(struct store *s, int *n)
{
    NEED_HANDLE(s, "store_requeue_expired");
    return s->ops->requeue_expired(s, n);
}

int store_wait_news(struct store *s, int timeout_ms)
{
    NEED_HANDLE(s, "store_wait_news");
    if (!s->ops->wait_news) {
        store_set_error("store_wait_news: the %s store announces nothing", s->ops->name);
        return HARK_ENOTSUP;
    }
    return s->ops->wait_news(s, timeout_ms < 0 ? 0 : timeout_ms);
}

int store_is_shared(struct store *s) { return s && s->ops->shared; }

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
    if (!state || !ids || !n) return bad_args("store_jobs_in_state", "no state or no output");
    *ids = NULL;
    *n = 0;
    return s->ops->jobs_in_state(s, state, ids, n);
}

int store_stats(struct store *s, struct store_stats *out)
{
    NEED_HANDLE(s, "store_stats");
    if (!out) return bad_args("store_stats", "no output");
    memset(out, 0, sizeof *out);
    return s->ops->stats(s, out);
}

/* ---------------------------------------------------------------- keys */

int store_key_hash(const char *key, char *hex)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!key || EVP_Digest(key, strlen(key), md, &len, EVP_sha256(), NULL) != 1 || len != 32) {
        store_set_error("store_key_hash: SHA-256 failed");
        hex[0] = '\0';
        return HARK_ENOMEM;
    }
    for (unsigned int i = 0; i < len; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 0;
}

int store_key_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= sizeof(((struct store_key *)0)->name)) return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return 0;
    return 1;
}

/* Whether hash is 64 lower-case hex digits. */
static int key_hash_ok(const char *hash)
{
    if (!hash || strlen(hash) != 64) return 0;
    for (const char *p = hash; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
    return 1;
}

int store_key_add(struct store *s, const char *name, const char *hash, int admin)
{
    NEED_HANDLE(s, "store_key_add");
    if (!store_key_name_ok(name))
        return bad_args("store_key_add", "a key's name is 1 to 63 letters, digits, '.', '_' or '-'");
    if (!key_hash_ok(hash)) return bad_args("store_key_add", "a key's hash is 64 lower-case hex digits");
    return s->ops->key_add(s, name, hash, admin ? 1 : 0);
}

int store_key_list(struct store *s, struct store_key **rows, int *n)
{
    NEED_HANDLE(s, "store_key_list");
    if (!rows || !n) return bad_args("store_key_list", "no output");
    *rows = NULL;
    *n = 0;
    return s->ops->key_list(s, rows, n);
}

int store_key_revoke(struct store *s, const char *name)
{
    NEED_HANDLE(s, "store_key_revoke");
    if (!name) return bad_args("store_key_revoke", "no name");
    return s->ops->key_revoke(s, name);
}

int store_key_find(struct store *s, const char *hash, struct store_key *out)
{
    NEED_HANDLE(s, "store_key_find");
    if (!hash || !out) return bad_args("store_key_find", "no hash or no output");
    return s->ops->key_find(s, hash, out);
}

int store_key_count(struct store *s, int64_t *n)
{
    NEED_HANDLE(s, "store_key_count");
    if (!n) return bad_args("store_key_count", "no output");
    *n = 0;
    return s->ops->key_count(s, n);
}
