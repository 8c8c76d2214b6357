/*
 * download.c: fetches whisper.cpp ggml model files over HTTP(S) with
 * libcurl's easy interface, for `hark models download`.
 *
 * A model is fetched into a hidden partial file next to its final place,
 * <dir>/.ggml-NAME.bin.part, and only a complete file that loads as a model
 * (hark_model_load, the engine's strict validation) is renamed to
 * <dir>/ggml-NAME.bin; rename() within one folder is atomic, so `hark serve`
 * and `hark models list` never see half a file under a model's name.
 *
 * Model files are large (up to 3 GB) and links break, so a partial file is
 * kept after a network error or an interruption, and the next run asks for
 * the rest with "Range: bytes=N-". The answer decides what happens to the
 * partial file: a 206 that starts at N appends to it; a 200 (a server that
 * ignores ranges) starts it over from byte 0; a 416 (nothing left to send,
 * or a partial file longer than the model) or a 206 for another range
 * discards it and asks once more for the whole file. The partial file is
 * created only when the first body byte arrives, so an HTTP error such as
 * 404 leaves nothing behind.
 *
 * Hugging Face answers a model URL with a redirect to its CDN: redirects are
 * followed (HTTP and HTTPS only), certificates are verified, and a transfer
 * slower than 1 KB/s for a minute is abandoned rather than hanging forever.
 */
#include "download.h"
#include "errors.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "hark.h"
#include "queue.h"

#define MAX_NAME_BYTES 128
#define CONNECT_TIMEOUT_S 30L
#define LOW_SPEED_BYTES 1024L
#define LOW_SPEED_TIME_S 60L
#define MAX_REDIRECTS 10L
#define PROGRESS_INTERVAL_S 0.25

/* Set by models_download_set_canceled (from a signal handler); polled by
 * the transfer's progress callback, which libcurl calls at least about once
 * a second even when no data arrives. */
static volatile sig_atomic_t canceled;

/* One HTTP exchange (one attempt), as the callbacks see it. */
struct transfer {
    const char *name, *part;
    int fd;           /* the .part file, opened at the first body byte; -1 before */
    int64_t offset;   /* the Range start asked for; 0 for the whole file */
    int64_t base;     /* bytes of the .part file that the body continues */
    int64_t received; /* body bytes written by this attempt */
    int64_t total;    /* the whole file's size; -1 when the server did not say */
    /* The response whose headers are being read: a redirect's, then the file's. */
    long status;
    int64_t range_start, range_total, content_length;
    int started;      /* the first body byte arrived and the .part file is open */
    int bad_range;    /* a 206 for a range other than the one asked for */
    int write_errno;  /* why writing the .part file failed; 0 if it did not */
    int report;
    double t0, last_draw;
    int drawn;        /* a progress line is on the terminal */
};

void models_download_set_canceled(int on)
{
    canceled = on ? 1 : 0;
}

int models_name_check(const char *name)
{
    size_t n;
    if (!name || !*name || name[0] == '.' || name[0] == '-') return HARK_EINVAL;
    for (n = 0; name[n]; n++) {
        char c = name[n];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                 c == '-' || c == '_';
        if (!ok || n >= MAX_NAME_BYTES) return HARK_EINVAL;
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* mkdir -p: creates dir and its missing parents; 0 or -1 with errno. */
static int make_dirs(const char *dir)
{
    char buf[PATH_MAX];
    struct stat st;
    size_t n = strlen(dir);
    if (n >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        buf[i] = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
        buf[i] = i < n ? '/' : 0;
    }
    if (stat(dir, &st) != 0) return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

/* A header line's value as a non-negative integer; -1 if it is not one. */
static int64_t header_int(const char *s)
{
    char *end;
    long long v;
    while (*s == ' ' || *s == '\t') s++;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0) return -1;
    return (int64_t)v;
}

/* libcurl's header callback: one header line at a time (not NUL-terminated),
 * for every response including the redirects it follows. */
static size_t on_header(char *buf, size_t size, size_t n, void *user)
{
    struct transfer *t = user;
    size_t len = size * n, k;
    char line[256];

    k = len < sizeof line - 1 ? len : sizeof line - 1;
    memcpy(line, buf, k);
    line[k] = 0;
    if (!strncmp(line, "HTTP/", 5)) {
        const char *sp = strchr(line, ' ');
        t->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        t->range_start = t->range_total = t->content_length = -1;
    } else if (!strncasecmp(line, "content-length:", 15)) {
        t->content_length = header_int(line + 15);
    } else if (!strncasecmp(line, "content-range:", 14)) {
        /* "bytes FIRST-LAST/TOTAL", TOTAL possibly "*". */
        long long first, last, total;
        int got = sscanf(line + 14, " bytes %lld-%lld/%lld", &first, &last, &total);
        if (got >= 2 && first >= 0) t->range_start = first;
        if (got == 3 && total > 0) t->range_total = total;
    }
    return len;
}

/* At the first body byte: decides, from the final response's headers,
 * whether the body continues the .part file or replaces it, and opens it. */
static int start_body(struct transfer *t)
{
    t->started = 1;
    if (t->status == 206) {
        if (t->range_start != t->offset) {
            t->bad_range = 1;
            return -1;
        }
        t->base = t->offset;
        t->total = t->range_total;
    } else {
        t->base = 0;
        t->total = t->content_length;
    }
    t->fd = open(t->part, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (t->fd < 0 || ftruncate(t->fd, (off_t)t->base) != 0 || lseek(t->fd, (off_t)t->base, SEEK_SET) < 0) {
        t->write_errno = errno ? errno : EIO;
        return -1;
    }
    return 0;
}

/* libcurl's write callback: the body of the final response (libcurl drops
 * the bodies of the redirects it follows and, with CURLOPT_FAILONERROR, of
 * HTTP errors). Returning less than asked makes libcurl fail with
 * CURLE_WRITE_ERROR. */
static size_t on_body(char *buf, size_t size, size_t n, void *user)
{
    struct transfer *t = user;
    size_t len = size * n, done = 0;

    if (!t->started && start_body(t) != 0) return 0;
    while (done < len) {
        ssize_t w = write(t->fd, buf + done, len - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            t->write_errno = errno;
            return 0;
        }
        done += (size_t)w;
    }
    t->received += (int64_t)len;
    return len;
}

static void draw_progress(struct transfer *t, double now)
{
    double elapsed = now - t->t0;
    double have_mb = (double)(t->base + t->received) / 1e6;
    double rate = elapsed > 0 ? (double)t->received / 1e6 / elapsed : 0.0;

    if (t->total > 0)
        fprintf(stderr, "\r\033[Khark: %s  %5.1f%%  %.1f of %.1f MB  %.1f MB/s", t->name,
                100.0 * (double)(t->base + t->received) / (double)t->total, have_mb, (double)t->total / 1e6,
                rate);
    else
        fprintf(stderr, "\r\033[Khark: %s  %.1f MB  %.1f MB/s", t->name, have_mb, rate);
    fflush(stderr);
    t->drawn = 1;
}

/* libcurl's progress callback; a nonzero return aborts the transfer with
 * CURLE_ABORTED_BY_CALLBACK. */
static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    struct transfer *t = user;
    double now;

    if (canceled) return 1;
    if (t->report != MODELS_REPORT_PROGRESS || !t->started) return 0;
    now = now_s();
    if (now - t->last_draw >= PROGRESS_INTERVAL_S) {
        t->last_draw = now;
        draw_progress(t, now);
    }
    return 0;
}

/* Sets the options of one attempt; range is NULL for the whole file. */
static int setup(CURL *curl, const char *url, const char *range, struct transfer *t, char *curl_err)
{
    int bad = 0;
    bad |= curl_easy_setopt(curl, CURLOPT_URL, url) != CURLE_OK;
    bad |= curl_easy_setopt(curl, CURLOPT_RANGE, range) != CURLE_OK;
    bad |= curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err) != CURLE_OK;
    bad |= curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(curl, CURLOPT_USERAGENT, "hark/" HARK_VERSION) != CURLE_OK;
    bad |= curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(curl, CURLOPT_MAXREDIRS, MAX_REDIRECTS) != CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075500
    bad |= curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
    bad |= curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") != CURLE_OK;
#else
    bad |= curl_easy_setopt(curl, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) != CURLE_OK;
    bad |= curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) != CURLE_OK;
#endif
    bad |= curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
    bad |= curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S) != CURLE_OK;
    bad |= curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, LOW_SPEED_BYTES) != CURLE_OK;
    bad |= curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, LOW_SPEED_TIME_S) != CURLE_OK;
    bad |= curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK;
    bad |= curl_easy_setopt(curl, CURLOPT_HEADERDATA, t) != CURLE_OK;
    bad |= curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
    bad |= curl_easy_setopt(curl, CURLOPT_WRITEDATA, t) != CURLE_OK;
    bad |= curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress) != CURLE_OK;
    bad |= curl_easy_setopt(curl, CURLOPT_XFERINFODATA, t) != CURLE_OK;
    bad |= curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L) != CURLE_OK;
    return bad ? -1 : 0;
}

/* fsync of a folder, so a rename in it survives a crash; best effort. */
static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

int models_download(const char *base_url, const char *dir, const char *name, int force, int report,
                    char *err, size_t errlen)
{
    char url[4096], part[PATH_MAX], final[PATH_MAX], range[48], curl_err[CURL_ERROR_SIZE];
    char load_err[512];
    struct transfer t;
    struct stat st;
    CURL *curl = NULL;
    CURLcode res = CURLE_OK;
    hark_model *model;
    size_t base_len;
    long status = 0;
    int rc = 0, code = 0;

    memset(&t, 0, sizeof t);
    t.fd = -1;
    if (err && errlen) err[0] = 0;
    if (models_name_check(name) != 0) {
        err_set(err, errlen,
               "'%s' is not a model name: use a whisper.cpp name such as base.en or large-v3-turbo-q5_0",
               name ? name : "");
        return HARK_EINVAL;
    }
    if (!base_url || !*base_url || !dir || !*dir) {
        err_set(err, errlen, "a download needs a base URL and a models folder");
        return HARK_EINVAL;
    }
    base_len = strlen(base_url);
    while (base_len > 1 && base_url[base_len - 1] == '/') base_len--;
    if (snprintf(url, sizeof url, "%.*s/ggml-%s.bin", (int)base_len, base_url, name) >= (int)sizeof url ||
        snprintf(final, sizeof final, "%s/ggml-%s.bin", dir, name) >= (int)sizeof final ||
        snprintf(part, sizeof part, "%s/.ggml-%s.bin.part", dir, name) >= (int)sizeof part) {
        err_set(err, errlen, "the URL or the path of model %s is too long", name);
        return HARK_EINVAL;
    }
    if (!force && stat(final, &st) == 0) return MODELS_PRESENT;
    if (make_dirs(dir) != 0) {
        err_set(err, errlen, "cannot create the models folder %s: %s", dir, strerror(errno));
        return HARK_EIO;
    }
    if (!(curl = curl_easy_init())) {
        err_set(err, errlen, "cannot start libcurl");
        return HARK_ENOMEM;
    }

    /* At most two attempts: the second asks for the whole file after the
     * server refused the range of the first. */
    for (int attempt = 0; attempt < 2; attempt++) {
        memset(&t, 0, sizeof t);
        t.fd = -1;
        t.name = name;
        t.part = part;
        t.report = report;
        t.total = t.range_start = t.range_total = t.content_length = -1;
        t.offset = stat(part, &st) == 0 && S_ISREG(st.st_mode) ? (int64_t)st.st_size : 0;
        t.t0 = now_s();
        curl_err[0] = 0;
        snprintf(range, sizeof range, "%lld-", (long long)t.offset);
        if (setup(curl, url, t.offset > 0 ? range : NULL, &t, curl_err) != 0) {
            err_set(err, errlen, "cannot set up libcurl for %s", url);
            rc = HARK_EINVAL;
            goto fail;
        }
        res = curl_easy_perform(curl);
        status = 0;
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        if (t.drawn) {
            if (res == CURLE_OK) draw_progress(&t, now_s());
            fputc('\n', stderr);
            t.drawn = 0;
        }
        if (attempt == 0 && t.offset > 0 && (t.bad_range || (res != CURLE_OK && status == 416))) {
            if (t.fd >= 0) close(t.fd);
            t.fd = -1;
            unlink(part);
            continue;
        }
        break;
    }

    if (res != CURLE_OK) {
        const char *why = curl_err[0] ? curl_err : curl_easy_strerror(res);
        if (res == CURLE_HTTP_RETURNED_ERROR && status == 404) {
            unlink(part);
            err_set(err, errlen, "no model %s at %s (HTTP 404)", name, url);
            rc = HARK_ENOENT;
        } else if (res == CURLE_HTTP_RETURNED_ERROR) {
            err_set(err, errlen, "cannot download %s: %s answered HTTP %ld", name, url, status);
            rc = HARK_EIO;
        } else if (res == CURLE_ABORTED_BY_CALLBACK) {
            err_set(err, errlen, "download of %s interrupted; run the command again to resume it", name);
            rc = HARK_ECANCELED;
        } else if (res == CURLE_WRITE_ERROR && t.write_errno) {
            err_set(err, errlen, "cannot write %s: %s", part, strerror(t.write_errno));
            rc = HARK_EIO;
        } else if (res == CURLE_OPERATION_TIMEDOUT && t.started) {
            err_set(err, errlen,
                   "download of %s stalled (under %ld bytes/s for %ld s) after %.1f MB; run the command "
                   "again to resume it",
                   name, LOW_SPEED_BYTES, LOW_SPEED_TIME_S, (double)(t.base + t.received) / 1e6);
            rc = HARK_EIO;
        } else if (t.started) {
            err_set(err, errlen, "download of %s from %s broke off after %.1f MB (%s); run the command again "
                   "to resume it", name, url, (double)(t.base + t.received) / 1e6, why);
            rc = HARK_EIO;
        } else {
            err_set(err, errlen, "cannot download %s from %s: %s", name, url, why);
            rc = HARK_EIO;
        }
        goto fail;
    }
    if (!t.started) {
        unlink(part);
        err_set(err, errlen, "%s answered HTTP %ld with no data", url, status);
        rc = HARK_EIO;
        goto fail;
    }
    if (fsync(t.fd) != 0 || close(t.fd) != 0) {
        t.fd = -1;
        err_set(err, errlen, "cannot write %s: %s", part, strerror(errno));
        rc = HARK_EIO;
        goto fail;
    }
    t.fd = -1;

    load_err[0] = 0;
    if (models_is_vad(name)) {
        hark_vad *vad = hark_vad_load(part, &code, load_err, sizeof load_err);
        model = NULL;
        if (vad) hark_vad_free(vad);
        else code = code ? code : HARK_EFORMAT;
    } else {
        model = hark_model_load(part, &code, load_err, sizeof load_err);
        if (model) code = 0;
        else code = code ? code : HARK_EFORMAT;
        hark_model_free(model);
    }
    if (code) {
        unlink(part);
        err_set(err, errlen, "the file at %s is not a valid %s (%s); removed it", url,
               models_is_vad(name) ? "speech-detection model" : "model",
               load_err[0] ? load_err : hark_strerror(code));
        rc = HARK_EFORMAT;
        goto fail;
    }
    if (rename(part, final) != 0) {
        err_set(err, errlen, "cannot rename %s to %s: %s", part, final, strerror(errno));
        rc = HARK_EIO;
        goto fail;
    }
    sync_dir(dir);

    if (report != MODELS_REPORT_QUIET) {
        double elapsed = now_s() - t.t0;
        double mb = (double)t.received / 1e6;
        fprintf(stderr, "hark: downloaded %s: %.1f MB in %.1f s (%.1f MB/s)%s, saved as %s\n", name, mb,
                elapsed, elapsed > 0 ? mb / elapsed : 0.0, t.base > 0 ? ", resumed" : "", final);
    }
    curl_easy_cleanup(curl);
    return 0;

fail:
    if (t.fd >= 0) close(t.fd);
    curl_easy_cleanup(curl);
    return rc;
}
