/*
 * load.c: many clients, slow ones and idle ones against `hark serve` on
 * loopback; the load tests (tests/api/test_load.sh) and `make bench`
 * (tests/bench/api.sh) run it against a server they started.
 *
 *   load idle URL [--connections N] [--pid PID]
 *       Opens N connections that send nothing (default 1,000), waits until
 *       the server holds them (with --pid: until it runs N threads more),
 *       starts a client that trickles a request's header one byte every
 *       50 ms, and meanwhile sends PROBES probe requests, each on a new
 *       connection (GET /health and GET /uploads?limit=1 in turn): each
 *       must be answered 200 within PROBE_LIMIT_MS milliseconds. The
 *       trickled request must be answered 200, and every silent connection
 *       must still be open at the end.
 *
 *   load mixed URL --id ID --dir DIR --media-id MID --media PATH
 *              [--clients N] [--seconds S]
 *       N clients at once (default 200) on libcurl's multi interface, each
 *       sending one request after another on its own connection for S
 *       seconds (default 60): uploads of a small WAV of its own (201, then
 *       DELETE of it, 200), a page of GET /uploads, GET /uploads/ID,
 *       GET /results/ID as json and vtt (the bytes of DIR/results.json and
 *       DIR/results.vtt), and ranged GET /MID/NAME (206 with the bytes of
 *       PATH in that range). ID is an upload the server has transcribed and
 *       DIR its folder on the server; MID is an upload of the file PATH,
 *       under PATH's own name NAME. Every answer's status and body are checked; prints the
 *       requests per second and the latency's p50, p99 and maximum.
 *
 *   load limits URL --max-connections N --per-ip P --idle-timeout S [--pid PID]
 *       Against a server started with those limits (N > P > 2): P
 *       connections from 127.0.0.1 fill its share of one address, and one
 *       more from there is closed unanswered; from 127.0.0.2 a request is
 *       answered, then connections up to N fill the server, and one more is
 *       closed unanswered. Every connection left idle (silent, half a
 *       header, after an answer) is closed by the server S seconds later,
 *       give or take a second, and the server then answers as before. With
 *       --pid it waits for the server's threads to know that connections
 *       have been accepted, instead of 300 ms. A connection the server is
 *       closing still counts until it is gone, so every connection here
 *       stays open until the timeout closes it.
 *
 * Each failed check prints a line "error: ..."; the exit status is 0 when
 * every check held, 1 when one did not, 2 for a command line it does not
 * understand.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <jansson.h>

#define MAX_ERRORS_SHOWN 20
/* The idle run's probes, and the time each may take. */
#define PROBES 20
#define PROBE_LIMIT_MS 1000

static const char health_req[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";

static int n_errors;
static pthread_mutex_t error_lock = PTHREAD_MUTEX_INITIALIZER;

/* Counts a failed check and prints it (the first MAX_ERRORS_SHOWN);
 * called from the trickling client's thread too. */
static void error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void error(const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&error_lock);
    if (++n_errors <= MAX_ERRORS_SHOWN) {
        fputs("error: ", stdout);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        fputc('\n', stdout);
        fflush(stdout);
    }
    pthread_mutex_unlock(&error_lock);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* Raises the soft limit on open files to the hard one: the idle mode holds
 * more than 1,024 sockets. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* ------------------------------------------------------- plain sockets */

static struct sockaddr_in server_addr;
static char base_url[256];

/* Takes "http://A.B.C.D:PORT" (an IPv4 address, as `hark serve` prints
 * it); 0, or -1. */
static int parse_url(const char *url)
{
    char host[64];
    const char *p, *colon;
    int port;
    if (strncmp(url, "http://", 7)) return -1;
    p = url + 7;
    colon = strchr(p, ':');
    if (!colon || (size_t)(colon - p) >= sizeof host) return -1;
    memcpy(host, p, (size_t)(colon - p));
    host[colon - p] = 0;
    port = atoi(colon + 1);
    if (port <= 0 || port > 65535) return -1;
    memset(&server_addr, 0, sizeof server_addr);
    server_addr.sin_family = AF_INET;
    server_addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &server_addr.sin_addr) != 1) return -1;
    snprintf(base_url, sizeof base_url, "http://%s:%d", host, port);
    return 0;
}

/* A connection to the server from the address from (NULL: any); the
 * socket, or -1 after an error line. */
static int dial(const char *from)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (fd < 0) {
        error("socket: %s", strerror(errno));
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (from) {
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        inet_pton(AF_INET, from, &a.sin_addr);
        if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
            error("bind to %s: %s", from, strerror(errno));
            close(fd);
            return -1;
        }
    }
    if (connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr) < 0) {
        error("connect to %s%s%s: %s", base_url, from ? " from " : "", from ? from : "", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads what the server sends until it closes the connection, len - 1
 * bytes have come, or timeout_ms pass. Returns the bytes read (buf is
 * NUL-terminated), and sets *closed when the server closed the connection
 * (an orderly close or a reset). */
static int read_until_closed(int fd, int timeout_ms, char *buf, size_t len, int *closed)
{
    double end = now_ms() + timeout_ms;
    size_t got = 0;
    *closed = 0;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int left = (int)(end - now_ms()), r;
        ssize_t n;
        if (left <= 0 || got + 1 >= len) break;
        r = poll(&p, 1, left);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n = recv(fd, buf + got, len - 1 - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            *closed = 1;
            break;
        }
        got += (size_t)n;
    }
    buf[got] = 0;
    return (int)got;
}

/* Reads one answer on a connection kept open: its header and the body its
 * Content-Length announces. Returns its status, or -1. */
static int read_answer(int fd, int timeout_ms)
{
    char buf[8192];
    double end = now_ms() + timeout_ms;
    size_t got = 0;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        char *eoh, *cl;
        int left = (int)(end - now_ms()), r;
        ssize_t n;
        buf[got] = 0;
        if ((eoh = strstr(buf, "\r\n\r\n")) && (cl = strcasestr(buf, "\r\nContent-Length:")) && cl < eoh &&
            got >= (size_t)(eoh + 4 - buf) + strtoul(cl + 17, NULL, 10))
            return strncmp(buf, "HTTP/1.1 ", 9) ? -1 : atoi(buf + 9);
        if (left <= 0 || got + 1 >= sizeof buf) return -1;
        r = poll(&p, 1, left);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        got += (size_t)n;
    }
}

/* Whether the server has closed fd (without waiting). */
static int is_closed(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    char c;
    if (poll(&p, 1, 0) <= 0) return 0;
    return recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) <= 0;
}

/* One request on a new connection from the address from, answered and
 * closed; its status line's code, or -1 with no answer. */
static int raw_request(const char *from, const char *path, int timeout_ms)
{
    char req[256], buf[4096];
    int fd = dial(from), closed, code = -1;
    if (fd < 0) return -1;
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    if (send_all(fd, req, strlen(req)) == 0 && read_until_closed(fd, timeout_ms, buf, sizeof buf, &closed) > 12 &&
        !strncmp(buf, "HTTP/1.1 ", 9))
        code = atoi(buf + 9);
    close(fd);
    return code;
}

/* Whether a new connection from the address from is closed by the server
 * without an answer to the request it sends (1), or answered (0). */
static int refused(const char *from, const char *what)
{
    char buf[512];
    int fd = dial(from), closed, n;
    if (fd < 0) return 0;
    send_all(fd, health_req, sizeof health_req - 1);
    n = read_until_closed(fd, 3000, buf, sizeof buf, &closed);
    close(fd);
    if (n == 0 && closed) return 1;
    if (n > 0) error("%s: the connection was answered (%.40s), expected it closed unanswered", what, buf);
    else error("%s: the connection was neither answered nor closed in 3 s", what);
    return 0;
}

/* ---------------------------------------------------------- curl easy */

struct buf {
    char *p;
    size_t len, cap;
};

static size_t buf_write(char *data, size_t size, size_t n, void *cls)
{
    struct buf *b = cls;
    size_t add = size * n;
    if (b->len + add + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        char *p;
        while (cap < b->len + add + 1) cap *= 2;
        p = realloc(b->p, cap);
        if (!p) return 0;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, add);
    b->len += add;
    b->p[b->len] = 0;
    return add;
}

/* A GET of path on a new connection: its status (0 for none), the time it
 * took into *ms. */
static long probe(const char *path, double *ms)
{
    char url[512];
    struct buf b = {0};
    long code = 0;
    CURL *h = curl_easy_init();
    double t0 = now_ms();
    if (!h) return 0;
    snprintf(url, sizeof url, "%s%s", base_url, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, buf_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
    if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    *ms = now_ms() - t0;
    curl_easy_cleanup(h);
    free(b.p);
    return code;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile (0..1) of n sorted values, nearest rank. */
static double quantile(const double *v, size_t n, double q)
{
    size_t i;
    if (!n) return 0;
    i = (size_t)(q * (double)n + 0.999999);
    if (i < 1) i = 1;
    if (i > n) i = n;
    return v[i - 1];
}

/* --------------------------------------------------------------- idle */

/* The server's thread count, from /proc; -1 when it cannot be read. */
static int server_threads(int pid)
{
    char path[64], line[256];
    int n = -1;
    FILE *f;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    if (!(f = fopen(path, "r"))) return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1) break;
    fclose(f);
    return n;
}

/* Waits up to 10 s until the server (pid, 0: unknown) runs at least n
 * threads: the connections just opened have been accepted. Returns the
 * threads it runs (-1 without pid, after 300 ms). */
static int wait_threads(int pid, int n)
{
    int now;
    if (!pid) {
        sleep_ms(300);
        return -1;
    }
    for (int i = 0; (now = server_threads(pid)) < n && i < 200; i++) sleep_ms(50);
    return now;
}

struct trickle {
    int bytes;          /* of the request */
    int code;           /* of its answer, -1 for none */
    double ms;          /* from its first byte to the answer */
};

#define TRICKLE_STEP_MS 50

/* A request whose header arrives one byte every TRICKLE_STEP_MS. */
static void *trickle_run(void *cls)
{
    struct trickle *t = cls;
    char req[1024], buf[4096];
    int fd, n, closed, pad;
    double t0 = now_ms();
    t->code = -1;
    pad = t->bytes - 64;
    if (pad < 1) pad = 1;
    if (pad > 900) pad = 900;
    n = snprintf(req, sizeof req, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Slow: ");
    memset(req + n, '.', (size_t)pad);
    n += pad;
    n += snprintf(req + n, sizeof req - (size_t)n, "\r\n\r\n");
    t->bytes = n;
    if ((fd = dial(NULL)) < 0) return NULL;
    for (int i = 0; i < n; i++) {
        if (send_all(fd, req + i, 1) < 0) {
            error("the trickling client's connection broke after %d of %d bytes", i, n);
            close(fd);
            return NULL;
        }
        sleep_ms(TRICKLE_STEP_MS);
    }
    if (read_until_closed(fd, 10000, buf, sizeof buf, &closed) > 12 && !strncmp(buf, "HTTP/1.1 ", 9))
        t->code = atoi(buf + 9);
    t->ms = now_ms() - t0;
    close(fd);
    return NULL;
}

static int run_idle(int n_conn, int pid)
{
    int *fds = calloc((size_t)n_conn, sizeof *fds), threads0 = pid ? server_threads(pid) : -1, opened = 0;
    double lat[PROBES], t0;
    struct trickle tr = {0};
    pthread_t th;
    int n_closed = 0;

    if (!fds) return 1;
    t0 = now_ms();
    for (; opened < n_conn; opened++)
        if ((fds[opened] = dial(NULL)) < 0) break;
    printf("idle: %d of %d connections opened in %.0f ms\n", opened, n_conn, now_ms() - t0);
    if (opened < n_conn) goto out;
    if (pid && threads0 > 0) {
        int th_now = wait_threads(pid, threads0 + n_conn);
        printf("idle: the server runs %d threads (%d before)\n", th_now, threads0);
        if (th_now < threads0 + n_conn)
            error("the server runs %d threads, expected at least %d with %d connections open", th_now,
                  threads0 + n_conn, n_conn);
    }
    /* The trickle lasts past the probes. */
    tr.bytes = (PROBES * 150 + 1500) / TRICKLE_STEP_MS;
    if (pthread_create(&th, NULL, trickle_run, &tr)) {
        error("no thread for the trickling client");
        goto out;
    }
    sleep_ms(300);
    for (int i = 0; i < PROBES; i++) {
        const char *path = i % 2 ? "/uploads?limit=1" : "/health";
        long code = probe(path, &lat[i]);
        if (code != 200) error("probe %d, GET %s: status %ld, expected 200", i + 1, path, code);
        else if (lat[i] > PROBE_LIMIT_MS)
            error("probe %d, GET %s: answered in %.0f ms, over %d ms", i + 1, path, lat[i], PROBE_LIMIT_MS);
        sleep_ms(150);
    }
    pthread_join(th, NULL);
    qsort(lat, PROBES, sizeof *lat, cmp_double);
    printf("idle: with %d idle connections and one trickling its header, %d probes answered in "
           "median %.1f ms, at most %.1f ms\n",
           n_conn, PROBES, quantile(lat, PROBES, 0.5), lat[PROBES - 1]);
    printf("idle: the trickled request (%d bytes, one every %d ms) was answered %d after %.1f s\n", tr.bytes,
           TRICKLE_STEP_MS, tr.code, tr.ms / 1000);
    if (tr.code != 200) error("the trickled request was answered %d, expected 200", tr.code);
    for (int i = 0; i < opened; i++) n_closed += is_closed(fds[i]);
    if (n_closed) error("the server closed %d of the %d idle connections", n_closed, opened);
out:
    for (int i = 0; i < opened; i++) close(fds[i]);
    free(fds);
    return n_errors ? 1 : 0;
}

/* -------------------------------------------------------------- mixed */

enum kind { K_UPLOAD, K_DELETE, K_HISTORY, K_ONE, K_JSON, K_VTT, K_RANGE, N_KINDS };

static const char *const kind_names[N_KINDS] = {
    "upload", "delete", "history", "metadata", "results json", "results vtt", "ranged media",
};

#define WAV_SAMPLES 4000 /* 0.25 s at 16 kHz */
#define WAV_BYTES (44 + 2 * WAV_SAMPLES)
#define RANGE_MAX 65536

struct mixed {
    const char *id, *media_id, *name;
    struct buf media, json, vtt;
    char esc_name[768];
    double *lat;
    size_t n_lat, cap_lat;
    long by_kind[N_KINDS];
};

struct client {
    int n;
    CURL *h;
    unsigned seed;
    enum kind kind;
    unsigned seq;
    char up_id[64];
    char up_name[64];
    char url[2048];
    long long first, last;
    struct buf body;
    char content_range[128];
    curl_mime *mime;
    unsigned char wav[WAV_BYTES];
};

static int read_whole(const char *path, struct buf *f)
{
    FILE *fp = fopen(path, "rb");
    long n;
    if (!fp) return -1;
    if (fseek(fp, 0, SEEK_END) < 0 || (n = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) < 0 ||
        !(f->p = malloc((size_t)n + 1)) || fread(f->p, 1, (size_t)n, fp) != (size_t)n) {
        fclose(fp);
        return -1;
    }
    f->len = (size_t)n;
    fclose(fp);
    return 0;
}

static void le(unsigned char *p, uint32_t v, int n)
{
    for (int i = 0; i < n; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* A 16 kHz mono WAV whose samples carry the client and the upload's
 * number, so that no two uploads have the same bytes. */
static void make_wav(struct client *c)
{
    unsigned char *w = c->wav;
    memcpy(w, "RIFF", 4);
    le(w + 4, WAV_BYTES - 8, 4);
    memcpy(w + 8, "WAVEfmt ", 8);
    le(w + 16, 16, 4);
    le(w + 20, 1, 2);
    le(w + 22, 1, 2);
    le(w + 24, 16000, 4);
    le(w + 28, 32000, 4);
    le(w + 32, 2, 2);
    le(w + 34, 16, 2);
    memcpy(w + 36, "data", 4);
    le(w + 40, 2 * WAV_SAMPLES, 4);
    for (int i = 0; i < WAV_SAMPLES; i++) {
        int s = (i % 40 < 20 ? 3000 : -3000) + (i < 2 ? (int)(i ? c->seq : (unsigned)c->n) : 0);
        le(w + 44 + 2 * i, (uint32_t)(uint16_t)(int16_t)s, 2);
    }
}

static size_t header_line(char *data, size_t size, size_t n, void *cls)
{
    struct client *c = cls;
    size_t len = size * n;
    if (len > 15 && !strncasecmp(data, "Content-Range:", 14)) {
        const char *v = data + 14;
        size_t vl = len - 14;
        while (vl && (*v == ' ' || *v == '\t')) v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' ')) vl--;
        if (vl >= sizeof c->content_range) vl = sizeof c->content_range - 1;
        memcpy(c->content_range, v, vl);
        c->content_range[vl] = 0;
    }
    return len;
}

static enum kind next_kind(struct client *c)
{
    int r;
    if (c->up_id[0]) return K_DELETE;
    r = (int)(rand_r(&c->seed) % 100);
    if (r < 10) return K_UPLOAD;
    if (r < 25) return K_HISTORY;
    if (r < 35) return K_ONE;
    if (r < 50) return K_JSON;
    if (r < 60) return K_VTT;
    return K_RANGE;
}

/* Sets c's handle up for its next request. Returns 0, or -1. */
static int start_request(struct mixed *m, struct client *c)
{
    CURL *h = c->h;
    curl_easy_reset(h);
    c->kind = next_kind(c);
    c->body.len = 0;
    c->content_range[0] = 0;
    if (c->mime) {
        curl_mime_free(c->mime);
        c->mime = NULL;
    }
    switch (c->kind) {
    case K_UPLOAD: {
        curl_mimepart *part;
        c->seq++;
        make_wav(c);
        snprintf(c->up_name, sizeof c->up_name, "load-%d-%u.wav", c->n, c->seq);
        snprintf(c->url, sizeof c->url, "%s/upload", base_url);
        if (!(c->mime = curl_mime_init(h)) || !(part = curl_mime_addpart(c->mime))) return -1;
        curl_mime_name(part, "file");
        curl_mime_filename(part, c->up_name);
        curl_mime_type(part, "audio/wav");
        curl_mime_data(part, (const char *)c->wav, WAV_BYTES);
        curl_easy_setopt(h, CURLOPT_MIMEPOST, c->mime);
        break;
    }
    case K_DELETE:
        snprintf(c->url, sizeof c->url, "%s/uploads/%s", base_url, c->up_id);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
        break;
    case K_HISTORY: snprintf(c->url, sizeof c->url, "%s/uploads?limit=20", base_url); break;
    case K_ONE: snprintf(c->url, sizeof c->url, "%s/uploads/%s", base_url, m->id); break;
    case K_JSON: snprintf(c->url, sizeof c->url, "%s/results/%s", base_url, m->id); break;
    case K_VTT: snprintf(c->url, sizeof c->url, "%s/results/%s?format=vtt", base_url, m->id); break;
    case K_RANGE: {
        char range[64];
        long long size = (long long)m->media.len;
        c->first = (long long)(rand_r(&c->seed) % (unsigned)size);
        if (rand_r(&c->seed) % 8 == 0) {
            c->last = size - 1;
            snprintf(range, sizeof range, "%lld-", c->first);
        } else {
            c->last = c->first + (long long)(rand_r(&c->seed) % RANGE_MAX);
            if (c->last >= size) c->last = size - 1;
            snprintf(range, sizeof range, "%lld-%lld", c->first, c->last);
        }
        snprintf(c->url, sizeof c->url, "%s/%s/%s", base_url, m->media_id, m->esc_name);
        curl_easy_setopt(h, CURLOPT_RANGE, range);
        break;
    }
    default: return -1;
    }
    curl_easy_setopt(h, CURLOPT_URL, c->url);
    curl_easy_setopt(h, CURLOPT_PRIVATE, c);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, buf_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &c->body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_line);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    return 0;
}

/* The error's start: the request as "<kind> <url>". */
#define WHAT(c) kind_names[(c)->kind], (c)->url

/* Checks an answered request; 0 when it is what was expected. */
static int check_answer(struct mixed *m, struct client *c, long code)
{
    json_t *j = NULL, *v;
    json_error_t je;
    const struct buf *want = NULL;
    int ok = 0;
    long expect = c->kind == K_UPLOAD ? 201 : c->kind == K_RANGE ? 206 : 200;

    if (code != expect) {
        error("%s %s: status %ld, expected %ld: %.200s", WHAT(c), code, expect, c->body.p ? c->body.p : "");
        return -1;
    }
    switch (c->kind) {
    case K_UPLOAD:
        j = json_loadb(c->body.p, c->body.len, 0, &je);
        v = json_object_get(j, "id");
        if (json_is_string(v) && strlen(json_string_value(v)) == 36 &&
            json_is_string(json_object_get(j, "filename")) &&
            !strcmp(json_string_value(json_object_get(j, "filename")), c->up_name) &&
            json_integer_value(json_object_get(j, "size")) == WAV_BYTES) {
            snprintf(c->up_id, sizeof c->up_id, "%s", json_string_value(v));
            ok = 1;
        }
        break;
    case K_DELETE:
        j = json_loadb(c->body.p, c->body.len, 0, &je);
        ok = json_is_true(json_object_get(j, "deleted")) && json_is_string(json_object_get(j, "id")) &&
             !strcmp(json_string_value(json_object_get(j, "id")), c->up_id);
        c->up_id[0] = 0;
        break;
    case K_HISTORY:
        j = json_loadb(c->body.p, c->body.len, 0, &je);
        v = json_object_get(j, "uploads");
        ok = json_is_array(v) && json_array_size(v) >= 1 && json_array_size(v) <= 20 &&
             json_integer_value(json_object_get(j, "total")) >= 1;
        break;
    case K_ONE:
        j = json_loadb(c->body.p, c->body.len, 0, &je);
        ok = json_is_string(json_object_get(j, "id")) && !strcmp(json_string_value(json_object_get(j, "id")), m->id) &&
             json_is_string(json_object_get(j, "status")) &&
             !strcmp(json_string_value(json_object_get(j, "status")), "done");
        break;
    case K_JSON: want = &m->json; break;
    case K_VTT: want = &m->vtt; break;
    case K_RANGE: {
        char cr[128];
        snprintf(cr, sizeof cr, "bytes %lld-%lld/%zu", c->first, c->last, m->media.len);
        ok = !strcmp(c->content_range, cr) && c->body.len == (size_t)(c->last - c->first + 1) &&
             !memcmp(c->body.p, m->media.p + c->first, c->body.len);
        if (!ok) {
            error("%s %s: Content-Range \"%s\" and %zu bytes, expected \"%s\" and the file's bytes there",
                  WHAT(c), c->content_range, c->body.len, cr);
            return -1;
        }
        break;
    }
    default: break;
    }
    if (want) ok = c->body.len == want->len && !memcmp(c->body.p, want->p, want->len);
    json_decref(j);
    if (!ok) {
        error("%s %s: unexpected body (%zu bytes): %.200s", WHAT(c), c->body.len, c->body.p ? c->body.p : "");
        return -1;
    }
    return 0;
}

static void record(struct mixed *m, double ms)
{
    if (m->n_lat == m->cap_lat) {
        size_t cap = m->cap_lat ? m->cap_lat * 2 : 65536;
        double *p = realloc(m->lat, cap * sizeof *p);
        if (!p) return;
        m->lat = p;
        m->cap_lat = cap;
    }
    m->lat[m->n_lat++] = ms;
}

/* The mixed load's figures: throughput, latency quantiles, requests by kind. */
static void print_mixed(struct mixed *m, int n_clients, int seconds, double secs)
{
    long total = (long)m->n_lat;
    qsort(m->lat, m->n_lat, sizeof *m->lat, cmp_double);
    printf("mixed: %d clients for %d s: %ld requests in %.1f s, %.0f requests/s; latency p50 %.1f ms, "
           "p99 %.1f ms, max %.1f ms; %d errors\n",
           n_clients, seconds, total, secs, secs > 0 ? total / secs : 0, quantile(m->lat, m->n_lat, 0.5),
           quantile(m->lat, m->n_lat, 0.99), m->n_lat ? m->lat[m->n_lat - 1] : 0, n_errors);
    printf("mixed: by kind:");
    for (int k = 0; k < N_KINDS; k++) printf("%s %s %ld", k ? "," : "", kind_names[k], m->by_kind[k]);
    printf("\n");
}

static int run_mixed(struct mixed *m, int n_clients, int seconds)
{
    CURLM *multi = curl_multi_init();
    struct client *cl = calloc((size_t)n_clients, sizeof *cl);
    double t0, end, last_done;
    int running = 0, active = 0;
    char *esc;

    if (!multi || !cl) return 1;
    esc = curl_easy_escape(NULL, m->name, 0);
    snprintf(m->esc_name, sizeof m->esc_name, "%s", esc ? esc : m->name);
    curl_free(esc);
    t0 = now_ms();
    end = t0 + seconds * 1000.0;
    last_done = t0;
    for (int i = 0; i < n_clients; i++) {
        cl[i].n = i;
        cl[i].seed = 0x9e3779b9u * (unsigned)(i + 1);
        if (!(cl[i].h = curl_easy_init()) || start_request(m, &cl[i]) < 0) {
            error("client %d: cannot set up a request", i);
            continue;
        }
        curl_multi_add_handle(multi, cl[i].h);
        active++;
    }
    while (active) {
        CURLMsg *msg;
        int left;
        curl_multi_perform(multi, &running);
        while ((msg = curl_multi_info_read(multi, &left))) {
            struct client *c;
            long code = 0;
            curl_off_t us = 0;
            if (msg->msg != CURLMSG_DONE) continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
            curl_multi_remove_handle(multi, c->h);
            curl_easy_getinfo(c->h, CURLINFO_TOTAL_TIME_T, &us);
            m->by_kind[c->kind]++;
            record(m, us / 1000.0);
            last_done = now_ms();
            if (msg->data.result != CURLE_OK) {
                error("%s %s: %s", WHAT(c), curl_easy_strerror(msg->data.result));
                if (c->kind == K_DELETE) c->up_id[0] = 0;
            } else {
                curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &code);
                check_answer(m, c, code);
            }
            /* An upload is deleted even after the time is up. */
            if ((now_ms() < end || c->up_id[0]) && start_request(m, c) == 0) {
                curl_multi_add_handle(multi, c->h);
            } else {
                active--;
            }
        }
        if (active) curl_multi_poll(multi, NULL, 0, 100, NULL);
        if (now_ms() > end + 60000) {
            error("%d clients still waiting for an answer 60 s after the end", active);
            break;
        }
    }
    print_mixed(m, n_clients, seconds, (last_done - t0) / 1000.0);
    for (int i = 0; i < n_clients; i++) {
        if (cl[i].h) {
            curl_multi_remove_handle(multi, cl[i].h);
            curl_easy_cleanup(cl[i].h);
        }
        curl_mime_free(cl[i].mime);
        free(cl[i].body.p);
    }
    curl_multi_cleanup(multi);
    free(cl);
    return n_errors ? 1 : 0;
}

/* ------------------------------------------------------------- limits */

struct idle_conn {
    int fd;
    double since;       /* the last byte either way */
    const char *what;
};

/* Watches n idle connections at once: each must be closed by the server
 * about timeout_s after its last byte (ic[i].since). */
static void watch_timeouts(const struct idle_conn *ic, int n, int timeout_s)
{
    struct pollfd *pf = calloc((size_t)n, sizeof *pf);
    double *closed_at = calloc((size_t)n, sizeof *closed_at), worst = 0, earliest = 1e9;
    double end = now_ms() + (timeout_s + 5) * 1000.0;
    int n_open = n;

    if (!pf || !closed_at) {
        error("out of memory");
        goto out;
    }
    while (n_open && now_ms() < end) {
        int k = 0;
        for (int i = 0; i < n; i++)
            if (!closed_at[i]) pf[k++] = (struct pollfd){ic[i].fd, POLLIN, 0};
        if (poll(pf, (nfds_t)k, 100) <= 0) continue;
        for (int i = 0, j = 0; i < n; i++) {
            char buf[4096];
            if (closed_at[i]) continue;
            if (pf[j++].revents && recv(ic[i].fd, buf, sizeof buf, MSG_DONTWAIT) <= 0) {
                closed_at[i] = now_ms();
                n_open--;
            }
        }
    }
    for (int i = 0; i < n; i++) {
        double after = ((closed_at[i] ? closed_at[i] : now_ms()) - ic[i].since) / 1000.0;
        if (!closed_at[i]) {
            error("connection %d (%s) still open %.1f s after its last byte (--idle-timeout-seconds %d)", i,
                  ic[i].what, after, timeout_s);
            continue;
        }
        if (after < timeout_s - 1.0)
            error("connection %d (%s) closed after %.1f s, before the timeout of %d s", i, ic[i].what, after,
                  timeout_s);
        if (after > worst) worst = after;
        if (after < earliest) earliest = after;
    }
    if (!n_open)
        printf("limits: all %d idle connections closed %.1f to %.1f s after their last byte (timeout %d s)\n", n,
               earliest, worst, timeout_s);
out:
    free(pf);
    free(closed_at);
}

static int run_limits(int max_conn, int per_ip, int timeout_s, int pid)
{
    struct idle_conn *ic = calloc((size_t)max_conn + 1, sizeof *ic);
    int n = 0, code, threads0 = pid ? server_threads(pid) : 0;

    if (!ic || per_ip < 3 || max_conn <= per_ip) {
        error("limits needs --max-connections N --per-ip P with N > P > 2");
        return 2;
    }
    /* One address's share: a silent connection, one with half a header,
     * one kept open after an answer, and silent ones. */
    for (; n < per_ip; n++) {
        if ((ic[n].fd = dial("127.0.0.1")) < 0) goto out;
        ic[n].what = "silent";
        ic[n].since = now_ms();
    }
    {
        send_all(ic[1].fd, health_req, sizeof health_req - 3); /* without the blank line */
        ic[1].what = "half a header";
        ic[1].since = now_ms();
        send_all(ic[2].fd, health_req, sizeof health_req - 1);
        if ((code = read_answer(ic[2].fd, 3000)) != 200)
            error("a request on a connection kept open: %d, expected 200", code);
        ic[2].what = "kept open after an answer";
        ic[2].since = now_ms();
    }
    wait_threads(pid, threads0 + n);
    if (refused("127.0.0.1", "one more connection from 127.0.0.1 than --max-connections-per-ip"))
        printf("limits: connection %d from 127.0.0.1 closed unanswered (limit per address %d)\n", per_ip + 1,
               per_ip);
    /* Another address is served meanwhile; its connection stays open, so
     * that no connection is being closed (and still counted) below. */
    {
        if ((ic[n].fd = dial("127.0.0.2")) < 0) goto out;
        send_all(ic[n].fd, health_req, sizeof health_req - 1);
        if ((code = read_answer(ic[n].fd, 3000)) != 200)
            error("GET /health from 127.0.0.2 with 127.0.0.1 at its limit: %d, expected 200", code);
        else
            printf("limits: another address answered 200 meanwhile\n");
        ic[n].what = "kept open after an answer";
        ic[n].since = now_ms();
        n++;
    }
    for (; n < max_conn; n++) {
        if ((ic[n].fd = dial("127.0.0.2")) < 0) goto out;
        ic[n].what = "silent";
        ic[n].since = now_ms();
    }
    wait_threads(pid, threads0 + n);
    if (now_ms() - ic[0].since > (timeout_s - 1) * 1000.0)
        error("the connections took %.1f s to set up, too close to the timeout of %d s",
              (now_ms() - ic[0].since) / 1000, timeout_s);
    else if (refused("127.0.0.2", "one more connection than --max-connections"))
        printf("limits: connection %d closed unanswered (limit %d)\n", max_conn + 1, max_conn);

    watch_timeouts(ic, n, timeout_s);

    /* Freed: the server answers up to its limits again. */
    int answered = 0;
    for (int i = 0; i < per_ip; i++) {
        if ((code = raw_request("127.0.0.1", "/health", 3000)) == 200) answered++;
        else error("after the timeouts, GET /health %d: %d, expected 200", i + 1, code);
    }
    printf("limits: afterwards %d of %d requests answered 200\n", answered, per_ip);
out:
    for (int i = 0; i < n; i++)
        if (ic[i].fd > 0) close(ic[i].fd);
    free(ic);
    return n_errors ? 1 : 0;
}

/* --------------------------------------------------------------- main */

static void usage(void)
{
    fputs("usage: load idle URL [--connections N] [--pid PID]\n"
          "       load mixed URL --id ID --dir DIR --media-id MID --media PATH\n"
          "                  [--clients N] [--seconds S]\n"
          "       load limits URL --max-connections N --per-ip P --idle-timeout S [--pid PID]\n",
          stderr);
}

int main(int argc, char **argv)
{
    int connections = 1000, pid = 0, clients = 200, seconds = 60;
    int max_conn = 0, per_ip = 0, timeout_s = 0, rc;
    const char *dir = NULL, *media = NULL;
    struct mixed m;
    char path[4096];

    memset(&m, 0, sizeof m);
    if (argc < 3 || parse_url(argv[2]) < 0) {
        usage();
        return 2;
    }
    for (int i = 3; i < argc; i += 2) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            usage();
            return 2;
        }
        if (!strcmp(o, "--connections")) connections = atoi(v);
        else if (!strcmp(o, "--pid")) pid = atoi(v);
        else if (!strcmp(o, "--clients")) clients = atoi(v);
        else if (!strcmp(o, "--seconds")) seconds = atoi(v);
        else if (!strcmp(o, "--id")) m.id = v;
        else if (!strcmp(o, "--media-id")) m.media_id = v;
        else if (!strcmp(o, "--media")) media = v;
        else if (!strcmp(o, "--dir")) dir = v;
        else if (!strcmp(o, "--max-connections")) max_conn = atoi(v);
        else if (!strcmp(o, "--per-ip")) per_ip = atoi(v);
        else if (!strcmp(o, "--idle-timeout")) timeout_s = atoi(v);
        else {
            usage();
            return 2;
        }
    }
    raise_nofile();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!strcmp(argv[1], "idle") && connections > 0) {
        rc = run_idle(connections, pid);
    } else if (!strcmp(argv[1], "mixed") && m.id && m.media_id && media && dir && clients > 0 && seconds > 0) {
        m.name = strrchr(media, '/') ? strrchr(media, '/') + 1 : media;
        if (read_whole(media, &m.media) < 0 || !m.media.len) {
            fprintf(stderr, "load: cannot read %s\n", media);
            return 2;
        }
        snprintf(path, sizeof path, "%s/results.json", dir);
        if (read_whole(path, &m.json) < 0) {
            fprintf(stderr, "load: cannot read %s\n", path);
            return 2;
        }
        snprintf(path, sizeof path, "%s/results.vtt", dir);
        if (read_whole(path, &m.vtt) < 0) {
            fprintf(stderr, "load: cannot read %s\n", path);
            return 2;
        }
        rc = run_mixed(&m, clients, seconds);
        free(m.media.p);
        free(m.json.p);
        free(m.vtt.p);
        free(m.lat);
    } else if (!strcmp(argv[1], "limits") && max_conn > 0 && timeout_s > 0) {
        rc = run_limits(max_conn, per_ip, timeout_s, pid);
    } else {
        usage();
        return 2;
    }
    curl_global_cleanup();
    if (n_errors > MAX_ERRORS_SHOWN) printf("(%d more errors not shown)\n", n_errors - MAX_ERRORS_SHOWN);
    return rc;
}
