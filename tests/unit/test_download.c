/*
 * test_download.c: models_download (src/cli/download.c) against a local
 * HTTP server run inside this program with libmicrohttpd on 127.0.0.1.
 *
 * The server serves ../shared/models/rt-mini.en-q4_0.bin as
 * ggml-rt-mini.en-q4_0.bin under several folders, each one behaviour:
 *   /files/      the file, with "Range: bytes=N-" answered by 206 (416 when
 *                N is past the end);
 *   /redirect/   302 to the same name under /files/;
 *   /missing/    404;
 *   /error/      503;
 *   /truncated/  a 200 whose Content-Length is the whole file, but the
 *                connection closes after 40% of it;
 *   /garbage/    200 with 200 KB of bytes that are not a model;
 *   /norange/    the whole file with 200, ignoring any Range header;
 *   /cancel/     the file, but halfway through it sets the downloader's
 *                cancel flag (as Ctrl-C would) and then trickles.
 * The server records each request's path and Range header so the tests can
 * check what the downloader asked for. Every downloaded file is compared
 * byte for byte with the source file.
 */
#include <dirent.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/cli/download.h"
#include "harness.h"
#include "hark.h"

#define MODEL "rt-mini.en-q4_0"
#define FILE_NAME "ggml-" MODEL ".bin"
#define GARBAGE_BYTES (200 * 1024)

static struct {
    struct MHD_Daemon *daemon;
    int port;
    unsigned char *data; /* the source model file */
    size_t size;
    unsigned char garbage[GARBAGE_BYTES];
    pthread_mutex_t lock;
    int n_requests;
    char last_path[256], last_range[64]; /* last_range is "" when absent */
    char cancel_part[800];               /* the .part file of the /cancel/ test */
} srv = {.lock = PTHREAD_MUTEX_INITIALIZER};

static char tmp_root[512];

/* ------------------------------------------------------------ the server */

static enum MHD_Result queue_buffer(struct MHD_Connection *conn, unsigned int status, const void *data,
                                    size_t size)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(size, (void *)data, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret;
    if (!r) return MHD_NO;
    ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* /truncated/: stops at 40% of a response that announced the whole file. */
static ssize_t read_truncated(void *cls, uint64_t pos, char *buf, size_t max)
{
    size_t cut = srv.size * 2 / 5, n;
    if (pos >= cut) return MHD_CONTENT_READER_END_WITH_ERROR;
    n = cut - (size_t)pos < max ? cut - (size_t)pos : max;
    memcpy(buf, srv.data + pos, n);
    return (ssize_t)n;
}

/* /cancel/: past half the file, waits (up to 5 s) until the client has
 * written some of it to its .part file (srv.cancel_part), raises the cancel
 * flag and then sends one byte every 10 ms, so the client is mid-transfer
 * when it notices. */
static ssize_t read_cancel(void *cls, uint64_t pos, char *buf, size_t max)
{
    int *trickles = cls;
    size_t n;
    if (pos >= srv.size) return MHD_CONTENT_READER_END_OF_STREAM;
    if (pos >= srv.size / 2) {
        struct stat st;
        /* Raised once: this reader may run on after the client has gone
         * and must not cancel the test's next download. */
        if (*trickles == 0) {
            for (int i = 0; i < 500 && (stat(srv.cancel_part, &st) != 0 || st.st_size == 0); i++)
                usleep(10000);
            models_download_set_canceled(1);
        }
        if (++*trickles > 500) return MHD_CONTENT_READER_END_WITH_ERROR;
        usleep(10000);
        buf[0] = (char)srv.data[pos];
        return 1;
    }
    n = srv.size / 2 - (size_t)pos < max ? srv.size / 2 - (size_t)pos : max;
    memcpy(buf, srv.data + pos, n);
    return (ssize_t)n;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    static int first_call_marker, trickles;
    const char *range = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Range");
    char folder[64], location[256];
    const char *slash;
    size_t folder_len;

    if (!*con_cls) {
        *con_cls = &first_call_marker;
        return MHD_YES;
    }
    pthread_mutex_lock(&srv.lock);
    srv.n_requests++;
    snprintf(srv.last_path, sizeof srv.last_path, "%s", url);
    snprintf(srv.last_range, sizeof srv.last_range, "%s", range ? range : "");
    pthread_mutex_unlock(&srv.lock);

    /* url is "/FOLDER/ggml-NAME.bin"; only the test model exists. */
    slash = strchr(url + 1, '/');
    if (!slash || strcmp(slash + 1, FILE_NAME) != 0 || (size_t)(slash - url) >= sizeof folder)
        return queue_buffer(conn, 404, "not found\n", 10);
    folder_len = (size_t)(slash - url - 1);
    memcpy(folder, url + 1, folder_len);
    folder[folder_len] = 0;

    if (!strcmp(folder, "files")) {
        unsigned long long from;
        char value[96];
        struct MHD_Response *r;
        enum MHD_Result ret;
        if (!range) return queue_buffer(conn, 200, srv.data, srv.size);
        if (sscanf(range, "bytes=%llu-", &from) != 1) return queue_buffer(conn, 400, "bad range\n", 10);
        if (from >= srv.size) {
            r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
            snprintf(value, sizeof value, "bytes */%zu", srv.size);
            MHD_add_response_header(r, "Content-Range", value);
            ret = MHD_queue_response(conn, 416, r);
            MHD_destroy_response(r);
            return ret;
        }
        r = MHD_create_response_from_buffer(srv.size - from, srv.data + from, MHD_RESPMEM_PERSISTENT);
        snprintf(value, sizeof value, "bytes %llu-%zu/%zu", from, srv.size - 1, srv.size);
        MHD_add_response_header(r, "Content-Range", value);
        ret = MHD_queue_response(conn, 206, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (!strcmp(folder, "redirect")) {
        struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        enum MHD_Result ret;
        snprintf(location, sizeof location, "http://127.0.0.1:%d/files/%s", srv.port, FILE_NAME);
        MHD_add_response_header(r, "Location", location);
        ret = MHD_queue_response(conn, 302, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (!strcmp(folder, "error")) return queue_buffer(conn, 503, "busy\n", 5);
    if (!strcmp(folder, "norange")) return queue_buffer(conn, 200, srv.data, srv.size);
    if (!strcmp(folder, "garbage")) return queue_buffer(conn, 200, srv.garbage, sizeof srv.garbage);
    if (!strcmp(folder, "truncated") || !strcmp(folder, "cancel")) {
        int is_cancel = !strcmp(folder, "cancel");
        struct MHD_Response *r;
        enum MHD_Result ret;
        trickles = 0;
        r = MHD_create_response_from_callback(srv.size, 64 * 1024, is_cancel ? read_cancel : read_truncated,
                                              &trickles, NULL);
        if (!r) return MHD_NO;
        ret = MHD_queue_response(conn, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    return queue_buffer(conn, 404, "not found\n", 10);
}

static int server_start(void)
{
    struct sockaddr_in sa;
    const union MHD_DaemonInfo *info;
    uint32_t x = 12345;

    srv.data = t_read_file(t_shared("models", MODEL ".bin"), &srv.size);
    if (!srv.data) return -1;
    for (size_t i = 0; i < sizeof srv.garbage; i++) {
        x = x * 1664525u + 1013904223u;
        srv.garbage[i] = (unsigned char)(x >> 24);
    }
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = 0;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    srv.daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, on_request, NULL,
                                  MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_END);
    if (!srv.daemon) return -1;
    info = MHD_get_daemon_info(srv.daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (!info || !info->port) return -1;
    srv.port = info->port;
    return 0;
}

static void server_stop(void)
{
    if (srv.daemon) MHD_stop_daemon(srv.daemon);
    free(srv.data);
}

static void server_reset(void)
{
    pthread_mutex_lock(&srv.lock);
    srv.n_requests = 0;
    srv.last_path[0] = srv.last_range[0] = 0;
    pthread_mutex_unlock(&srv.lock);
}

/* --------------------------------------------------------------- helpers */

static const char *base(const char *folder)
{
    static char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/%s", srv.port, folder);
    return url;
}

/* A fresh, not yet existing folder for one test's models. */
static const char *models_dir(const char *test)
{
    static char dir[600];
    snprintf(dir, sizeof dir, "%s/%s/models", tmp_root, test);
    return dir;
}

/* dir/file in one of 8 static buffers used in turn, so a test can hold a
 * few paths at once. */
static const char *in_dir(const char *dir, const char *file)
{
    static char paths[8][800];
    static int next;
    char *path = paths[next++ % 8];
    snprintf(path, sizeof paths[0], "%s/%s", dir, file);
    return path;
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* Entries in dir other than "." and ".."; -1 if it cannot be read. */
static int n_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (!d) return -1;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* Checks that path holds the first n bytes of the source file (its whole
 * length when n is the source size) and prints how many bytes differ. */
static void check_prefix(const char *path, size_t n)
{
    size_t len = 0, differ = 0;
    unsigned char *got = t_read_file(path, &len);
    CHECKF(got != NULL, "cannot read %s", path);
    if (!got) return;
    CHECKF(len == n, "%s: %zu bytes, expected %zu", path, len, n);
    for (size_t i = 0; i < len && i < n; i++) differ += got[i] != srv.data[i];
    printf("  %s: %zu bytes compared, %zu differ\n", path, len < n ? len : n, differ);
    CHECK(differ == 0);
    free(got);
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECKF(f != NULL, "cannot create %s", path);
    if (!f) return;
    CHECK(fwrite(data, 1, n, f) == n);
    CHECK(fclose(f) == 0);
}

/* Creates the models folder of a test before its first download. */
static void make_models_dir(const char *test)
{
    CHECK(mkdir(in_dir(tmp_root, test), 0755) == 0 && mkdir(models_dir(test), 0755) == 0);
}

static int get(const char *folder, const char *dir, int force, char *err, size_t errlen)
{
    return models_download(base(folder), dir, MODEL, force, MODELS_REPORT_QUIET, err, errlen);
}

/* ----------------------------------------------------------------- tests */

static void test_names(void)
{
    static const char *good[] = {"tiny", "base.en", "large-v3", "large-v3-turbo-q5_0", "small-q8_0",
                                 "medium.en", "base.en-q5_1", "rt-mini.en-q4_0", "A_1"};
    static const char *bad[] = {"", "../x", "a/b", ".hidden", "-x", "a b", "x\n", "ggml/../../etc", "a\\b"};
    char err[512], long_name[200];
    const char *dir = models_dir("names");

    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        CHECKF(models_name_check(good[i]) == 0, "'%s' refused", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECKF(models_name_check(bad[i]) == HARK_EINVAL, "'%s' accepted", bad[i]);
    CHECK(models_name_check(NULL) == HARK_EINVAL);
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    CHECK(models_name_check(long_name) == HARK_EINVAL);

    server_reset();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = models_download(base("files"), dir, bad[i], 0, MODELS_REPORT_QUIET, err, sizeof err);
        CHECKF(rc == HARK_EINVAL, "download of '%s': %d", bad[i], rc);
        CHECKF(strstr(err, "not a model name") != NULL, "err: %s", err);
    }
    CHECKF(srv.n_requests == 0, "%d requests for bad names", srv.n_requests);
    CHECKF(file_size(dir) < 0, "%s was created for a bad name", dir);
}

static void test_download(void)
{
    char err[512] = "";
    const char *dir = models_dir("download"); /* two levels that do not exist yet */
    int rc;

    server_reset();
    rc = get("files", dir, 0, err, sizeof err);
    CHECKF(rc == 0, "rc %d: %s", rc, err);
    check_prefix(in_dir(dir, FILE_NAME), srv.size);
    CHECKF(n_entries(dir) == 1, "%d files in %s, expected only the model", n_entries(dir), dir);
    CHECK(srv.n_requests == 1);
    CHECKF(!strcmp(srv.last_path, "/files/" FILE_NAME), "path %s", srv.last_path);
    CHECKF(srv.last_range[0] == 0, "a fresh download sent Range: %s", srv.last_range);
}

static void test_trailing_slash(void)
{
    char err[512] = "", url[160];
    const char *dir = models_dir("slash");
    int rc;

    snprintf(url, sizeof url, "%s//", base("files"));
    rc = models_download(url, dir, MODEL, 0, MODELS_REPORT_QUIET, err, sizeof err);
    CHECKF(rc == 0, "rc %d: %s", rc, err);
    check_prefix(in_dir(dir, FILE_NAME), srv.size);
}

static void test_redirect(void)
{
    char err[512] = "";
    const char *dir = models_dir("redirect");
    int rc;

    server_reset();
    rc = get("redirect", dir, 0, err, sizeof err);
    CHECKF(rc == 0, "rc %d: %s", rc, err);
    check_prefix(in_dir(dir, FILE_NAME), srv.size);
    CHECKF(srv.n_requests == 2, "%d requests, expected the redirect and the file", srv.n_requests);
    CHECKF(!strcmp(srv.last_path, "/files/" FILE_NAME), "followed to %s", srv.last_path);
}

/* A download from the server's `folder` into the models folder of the test
 * of the same name must fail with want_rc and a message holding want_err,
 * and leave nothing in that folder. */
static void check_refused(const char *folder, int want_rc, const char *want_err)
{
    char err[512] = "";
    const char *dir = models_dir(folder);
    int rc = get(folder, dir, 0, err, sizeof err);
    CHECKF(rc == want_rc, "rc %d (expected %d): %s", rc, want_rc, err);
    CHECKF(strstr(err, want_err) != NULL, "err: %s", err);
    CHECKF(n_entries(dir) == 0, "%d files left after the %s download", n_entries(dir), folder);
}

static void test_not_found(void)
{
    check_refused("missing", HARK_ENOENT, "no model " MODEL " at http://127.0.0.1:");
    /* A partial file from an earlier run goes too: the model is not there. */
    write_file(in_dir(models_dir("missing"), "." FILE_NAME ".part"), srv.data, 1000);
    check_refused("missing", HARK_ENOENT, "no model " MODEL " at http://127.0.0.1:");
}

static void test_http_error(void)
{
    check_refused("error", HARK_EIO, "HTTP 503");
}

static void test_connection_refused(void)
{
    char err[512] = "";
    const char *dir = models_dir("refused");
    /* Port 1 (tcpmux) is not served on a test machine. */
    int rc = models_download("http://127.0.0.1:1", dir, MODEL, 0, MODELS_REPORT_QUIET, err, sizeof err);
    CHECKF(rc == HARK_EIO, "rc %d: %s", rc, err);
    CHECKF(strstr(err, "cannot download " MODEL " from http://127.0.0.1:1/" FILE_NAME) != NULL, "err: %s",
           err);
    CHECKF(n_entries(dir) == 0, "%d files left", n_entries(dir));
}

static void test_truncated_then_resume(void)
{
    char err[512] = "", want[64];
    const char *dir = models_dir("truncated");
    const char *part = in_dir(dir, "." FILE_NAME ".part");
    long long have;
    int rc;

    rc = get("truncated", dir, 0, err, sizeof err);
    CHECKF(rc == HARK_EIO, "rc %d: %s", rc, err);
    CHECKF(strstr(err, "resume") != NULL, "err: %s", err);
    CHECKF(file_size(in_dir(dir, FILE_NAME)) < 0, "a truncated download was put in place");
    have = file_size(part);
    CHECKF(have > 0 && have <= (long long)(srv.size * 2 / 5), ".part holds %lld bytes", have);
    if (have <= 0) return;
    check_prefix(part, (size_t)have);

    server_reset();
    rc = get("files", dir, 0, err, sizeof err);
    CHECKF(rc == 0, "rc %d: %s", rc, err);
    snprintf(want, sizeof want, "bytes=%lld-", have);
    CHECKF(!strcmp(srv.last_range, want), "resumed with Range '%s', expected '%s'", srv.last_range, want);
    CHECK(srv.n_requests == 1);
    check_prefix(in_dir(dir, FILE_NAME), srv.size);
    CHECKF(file_size(part) < 0, ".part left after the resumed download");
}

static void test_server_ignores_range(void)
{
    char err[512] = "";
    const char *dir = models_dir("norange");
    const char *part = in_dir(dir, "." FILE_NAME ".part");
    int rc;

    /* A partial file that does not even match: the 200 must replace it. */
    make_models_dir("norange");
    write_file(part, srv.garbage, 5000);
    server_reset();
    rc = get("norange", dir, 0, err, sizeof err);
    CHECKF(rc == 0, "rc %d: %s", rc, err);
    CHECKF(!strcmp(srv.last_range, "bytes=5000-"), "Range '%s'", srv.last_range);
    check_prefix(in_dir(dir, FILE_NAME), srv.size);
    CHECKF(n_entries(dir) == 1, "%d files in %s", n_entries(dir), dir);
}

static void test_complete_part(void)
{
    char err[512] = "";
    const char *dir = models_dir("complete");
    const char *part = in_dir(dir, "." FILE_NAME ".part");
    int rc;

    /* A .part with every byte gets 416 for its range; the downloader then
     * asks for the whole file. */
    make_models_dir("complete");
    write_file(part, srv.data, srv.size);
    server_reset();
    rc = get("files", dir, 0, err, sizeof err);
    CHECKF(rc == 0, "rc %d: %s", rc, err);
    CHECKF(srv.n_requests == 2, "%d requests, expected the range and the whole file", srv.n_requests);
    CHECKF(srv.last_range[0] == 0, "the second request sent Range: %s", srv.last_range);
    check_prefix(in_dir(dir, FILE_NAME), srv.size);
    CHECKF(n_entries(dir) == 1, "%d files in %s", n_entries(dir), dir);
}

static void test_garbage(void)
{
    check_refused("garbage", HARK_EFORMAT, "not a valid model");
}

static void test_existing_kept(void)
{
    char err[512] = "";
    const char *dir = models_dir("existing");
    const char *final = in_dir(dir, FILE_NAME);
    size_t len = 0;
    char *got;
    int rc;

    make_models_dir("existing");
    write_file(final, "old", 3);
    server_reset();
    rc = get("files", dir, 0, err, sizeof err);
    CHECKF(rc == MODELS_PRESENT, "rc %d: %s", rc, err);
    CHECKF(srv.n_requests == 0, "%d requests for a model already present", srv.n_requests);
    got = t_read_file(final, &len);
    CHECK(got && len == 3 && !memcmp(got, "old", 3));
    free(got);

    /* A failed forced download leaves the old file alone. */
    rc = get("garbage", dir, 1, err, sizeof err);
    CHECKF(rc == HARK_EFORMAT, "rc %d: %s", rc, err);
    CHECK(file_size(final) == 3);

    rc = get("files", dir, 1, err, sizeof err);
    CHECKF(rc == 0, "rc %d: %s", rc, err);
    check_prefix(final, srv.size);
}

/* Last: it raises the process-wide cancel flag. */
static void test_cancel_then_resume(void)
{
    char err[512] = "", want[64];
    const char *dir = models_dir("cancel");
    const char *part = in_dir(dir, "." FILE_NAME ".part");
    long long have;
    int rc;

    snprintf(srv.cancel_part, sizeof srv.cancel_part, "%s", part);
    models_download_set_canceled(0);
    rc = get("cancel", dir, 0, err, sizeof err);
    CHECKF(rc == HARK_ECANCELED, "rc %d: %s", rc, err);
    CHECKF(strstr(err, "interrupted") != NULL, "err: %s", err);
    have = file_size(part);
    CHECKF(have > 0 && have < (long long)srv.size, ".part holds %lld bytes", have);
    if (have <= 0) return;
    check_prefix(part, (size_t)have);

    /* Still canceled: nothing more is fetched. */
    rc = get("files", dir, 0, err, sizeof err);
    CHECKF(rc == HARK_ECANCELED, "rc %d while canceled", rc);
    CHECKF(file_size(part) == have, ".part went from %lld to %lld bytes while canceled", have, file_size(part));

    models_download_set_canceled(0);
    server_reset();
    rc = get("files", dir, 0, err, sizeof err);
    CHECKF(rc == 0, "rc %d: %s", rc, err);
    snprintf(want, sizeof want, "bytes=%lld-", have);
    CHECKF(!strcmp(srv.last_range, want), "resumed with Range '%s', expected '%s'", srv.last_range, want);
    check_prefix(in_dir(dir, FILE_NAME), srv.size);
}

static void test_no_server(void)
{
    CHECKF(0, "cannot read %s or start the local HTTP server", t_shared("models", MODEL ".bin"));
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    /* The server is on loopback; a proxy from the environment must not
     * carry these requests. */
    setenv("no_proxy", "*", 1);
    snprintf(tmp_root, sizeof tmp_root, "%s", t_tmpdir());
    if (server_start() != 0) {
        t_run("server", test_no_server);
        server_stop();
        return t_summary();
    }
    t_run("names", test_names);
    t_run("download", test_download);
    t_run("trailing_slash", test_trailing_slash);
    t_run("redirect", test_redirect);
    t_run("not_found", test_not_found);
    t_run("http_error", test_http_error);
    t_run("connection_refused", test_connection_refused);
    t_run("truncated_then_resume", test_truncated_then_resume);
    t_run("server_ignores_range", test_server_ignores_range);
    t_run("complete_part", test_complete_part);
    t_run("garbage", test_garbage);
    t_run("existing_kept", test_existing_kept);
    t_run("cancel_then_resume", test_cancel_then_resume);
    server_stop();
    return t_summary();
}
