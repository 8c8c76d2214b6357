/*
 * callbacks.c: telling a client's URL that its job ended ("callback_url"
 * of POST /model). A thread of the server claims each callback that is due
 * from the store (any server sharing the store may send it, once) and
 * POSTs there, with libcurl:
 *
 *   {"event": "job.done" | "job.failed" | "job.canceled",
 *    "job": {... as GET /jobs/<id>}, "upload": {... as GET /uploads/<id>},
 *    "results": {... results.json, when done}}
 *
 * signed: X-Hark-Signature is "sha256=" and the hex HMAC-SHA256 of the body
 * under the server's callback secret. A 2xx answer delivers it; anything
 * else is tried again after 2, 4, 8 ... s (at most 10 minutes apart) for an
 * hour after the job ended, every attempt recorded in the store. Only
 * hosts named by --callback-allow are called (none by default), so the
 * server cannot be turned against the network it sits in; redirects are not
 * followed. A server without --callback-allow runs no such thread.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hark.h"
#include "internal.h"
#include "store.h"

#define HOLD_MS 60000          /* a claimed callback is this process's for a minute */
#define FIRST_RETRY_MS 2000
#define MAX_RETRY_MS 600000
#define GIVE_UP_S 3600
#define SEND_TIMEOUT_S 10

/* An allow-list entry's host and port ("" for any): "host", "host:port",
 * "[v6]", "[v6]:port", or an IPv6 address without brackets. */
static void split_entry(const char *e, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *colon = strchr(e, ':');
    port[0] = 0;
    if (e[0] == '[') {
        const char *close = strchr(e, ']');
        size_t n = close ? (size_t)(close - e - 1) : strlen(e + 1);
        snprintf(host, hostlen, "%.*s", (int)n, e + 1);
        if (close && close[1] == ':') snprintf(port, portlen, "%s", close + 2);
    } else if (colon && !strchr(colon + 1, ':')) {
        snprintf(host, hostlen, "%.*s", (int)(colon - e), e);
        snprintf(port, portlen, "%s", colon + 1);
    } else {
        snprintf(host, hostlen, "%s", e);
    }
}

/* Whether url is http(s) to a host the allow list names ("host" or
 * "host:port", comma-separated, case-insensitive). Sets why when not. */
int callback_allowed(const char *allow, const char *url, char *why, size_t whylen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    int ok = 0;
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        snprintf(why, whylen, "callback_url is not a URL");
    } else if (strcasecmp(scheme, "http") && strcasecmp(scheme, "https")) {
        snprintf(why, whylen, "callback_url must be http or https, not %s", scheme);
    } else {
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
        char bare[300];
        size_t hl = strlen(host);
        if (hl >= 2 && host[0] == '[') snprintf(bare, sizeof bare, "%.*s", (int)hl - 2, host + 1);
        else snprintf(bare, sizeof bare, "%s", host);
        for (const char *p = allow ? allow : ""; *p && !ok;) {
            size_t n = strcspn(p, ",");
            char entry[300], h[300], pt[16];
            snprintf(entry, sizeof entry, "%.*s", (int)(n < sizeof entry ? n : sizeof entry - 1), p);
            split_entry(entry, h, sizeof h, pt, sizeof pt);
            ok = h[0] && !strcasecmp(h, bare) && (!pt[0] || (port && !strcmp(pt, port)));
            p += n;
            if (*p == ',') p++;
        }
        if (!ok)
            snprintf(why, whylen, "callback_url's host %s is not one the server may call (hark serve --callback-allow)",
                     host);
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return ok;
}

/* The secret: given, else the contents of <data>/callback-secret, made
 * (32 random bytes in hex, readable by the owner alone) when missing. */
int callback_secret_load(const char *data_dir, const char *given, char *out, size_t outlen, char *err,
                         size_t errlen)
{
    if (given && *given) {
        snprintf(out, outlen, "%s", given);
        return 0;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/callback-secret", data_dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        unsigned char raw[32];
        if (RAND_bytes(raw, sizeof raw) != 1) {
            snprintf(err, errlen, "no random bytes for the callback secret");
            return HARK_EIO;
        }
        char hex[65];
        for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", raw[i]);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd >= 0) {
            ssize_t w = write(fd, hex, 64);
            if (close(fd) != 0 || w != 64) {
                unlink(path);
                snprintf(err, errlen, "cannot write %s", path);
                return HARK_EIO;
            }
        } else if (errno != EEXIST) {
            snprintf(err, errlen, "cannot make %s: %s", path, strerror(errno));
            return HARK_EIO;
        }
        f = fopen(path, "r");
    }
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return HARK_EIO;
    }
    size_t n = fread(out, 1, outlen - 1, f);
    fclose(f);
    out[n] = 0;
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' ')) out[--n] = 0;
    if (!n) {
        snprintf(err, errlen, "%s is empty", path);
        return HARK_EINVAL;
    }
    return 0;
}

void callback_sign(const char *secret, const char *body, size_t len, char *out)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body, len, mac, &n);
    strcpy(out, "sha256=");
    for (unsigned i = 0; i < n; i++) snprintf(out + 7 + 2 * i, 3, "%02x", mac[i]);
}

/* The body for a claimed callback (malloc'ed), or NULL when out of memory. */
static char *payload(struct http_server *srv, const struct store_callback *cb)
{
    struct store_job job;
    struct store_upload u;
    json_t *o = json_object();
    char event[32];
    snprintf(event, sizeof event, "job.%s", cb->state);
    json_object_set_new(o, "event", json_string(event));
    if (store_job_get(srv->store, cb->job_id, &job) == 0) {
        json_object_set_new(o, "job", job_json(&job));
        if (store_upload_get(srv->store, job.upload_id, &u) == 0) {
            json_object_set_new(o, "upload", upload_json(&u));
            if (!strcmp(cb->state, STORE_DONE) && u.job_id == job.id) {
                char path[PATH_MAX + 128];
                snprintf(path, sizeof path, "%s/db/%s/results.json", srv->data_dir, u.id);
                json_t *r = json_load_file(path, 0, NULL);
                if (r) json_object_set_new(o, "results", r);
            }
        }
    }
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

static size_t discard(char *p, size_t size, size_t n, void *user)
{
    (void)p;
    (void)user;
    return size * n;
}

/* Seconds since the store time t ("YYYY-MM-DDTHH:MM:SS.mmmZ"). */
static double age_s(const char *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!strptime(t, "%Y-%m-%dT%H:%M:%S", &tm)) return 0.0;
    return difftime(time(NULL), timegm(&tm));
}

static void send_one(struct http_server *srv, const struct store_callback *cb)
{
    int n = cb->tries + 1, status = 0;
    char error[256] = "", sig[80], why[256];
    char *body = NULL;
    if (!callback_allowed(srv->callback_allow, cb->url, why, sizeof why)) {
        store_callback_record(srv->store, cb->job_id, n, 0, why, "failed", 0);
        return;
    }
    body = payload(srv, cb);
    CURL *curl = body ? curl_easy_init() : NULL;
    if (!curl) {
        snprintf(error, sizeof error, "out of memory");
    } else {
        char delivery[64], ev[48];
        callback_sign(srv->callback_secret, body, strlen(body), sig);
        char sig_h[100];
        snprintf(sig_h, sizeof sig_h, "X-Hark-Signature: %s", sig);
        snprintf(delivery, sizeof delivery, "X-Hark-Delivery: %lld-%d", (long long)cb->job_id, n);
        snprintf(ev, sizeof ev, "X-Hark-Event: job.%s", cb->state);
        struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
        h = curl_slist_append(h, sig_h);
        h = curl_slist_append(h, delivery);
        h = curl_slist_append(h, ev);
        curl_easy_setopt(curl, CURLOPT_URL, cb->url);
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 5L);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT, (long)SEND_TIMEOUT_S);
        curl_easy_setopt(curl, CURLOPT_USERAGENT, "hark");
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
        CURLcode cc = curl_easy_perform(curl);
        long code = 0;
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
        status = (int)code;
        if (cc != CURLE_OK) snprintf(error, sizeof error, "%s", curl_easy_strerror(cc));
        else if (code < 200 || code > 299) snprintf(error, sizeof error, "HTTP %ld", code);
        curl_slist_free_all(h);
        curl_easy_cleanup(curl);
    }
    free(body);
    if (!error[0]) {
        store_callback_record(srv->store, cb->job_id, n, status, "", "delivered", 0);
        return;
    }
    long long retry = (long long)FIRST_RETRY_MS << (n - 1 < 20 ? n - 1 : 20);
    if (retry > MAX_RETRY_MS) retry = MAX_RETRY_MS;
    int over = age_s(cb->finished) + retry / 1000.0 > GIVE_UP_S;
    store_callback_record(srv->store, cb->job_id, n, status, error, over ? "failed" : "pending", over ? 0 : (int)retry);
}

static void *callbacks_main(void *arg)
{
    struct http_server *srv = arg;
    while (!atomic_load(&srv->stopping)) {
        struct store_callback cb;
        int rc = store_callback_claim(srv->store, HOLD_MS, &cb);
        if (rc == 0) {
            send_one(srv, &cb);
            continue;
        }
        /* Nothing due (or the store out of reach): look again soon. */
        pthread_mutex_lock(&srv->lock);
        if (!atomic_load(&srv->stopping)) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += 500 * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&srv->callbacks_cv, &srv->lock, &until);
        }
        pthread_mutex_unlock(&srv->lock);
    }
    return NULL;
}

int callbacks_start(struct http_server *srv)
{
    /* A server that may call no host sends nothing: another server on the
     * same database, which may, sends what is due. */
    if (!srv->callback_allow[0]) return 0;
    if (pthread_create(&srv->callbacks_thread, NULL, callbacks_main, srv) != 0) return HARK_ENOMEM;
    srv->callbacks_started = 1;
    return 0;
}

void callbacks_stop(struct http_server *srv)
{
    if (!srv->callbacks_started) return;
    pthread_mutex_lock(&srv->lock);
    pthread_cond_broadcast(&srv->callbacks_cv);
    pthread_mutex_unlock(&srv->lock);
    pthread_join(srv->callbacks_thread, NULL);
    srv->callbacks_started = 0;
}
