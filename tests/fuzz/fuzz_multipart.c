/*
 * fuzz_multipart.c: libFuzzer target for the multipart receiver
 * (src/http/receive.c on libmicrohttpd's post processor).
 *
 * The post processor needs a connection, so the target starts a
 * libmicrohttpd daemon on 127.0.0.1 (a free port) once per process, with a
 * request handler that does what the server does with an upload's body:
 * receive_begin on the first call, receive_data for each piece,
 * receive_end at the end. Each input is sent over a socket as the body of
 * POST /upload; when its first line (up to 200 bytes, before a '\n')
 * holds no '\r', that line is the request's Content-Type, else the
 * Content-Type is multipart/form-data with the boundary "XyZ".
 *
 * What must hold: a body refused comes with an HTTP status of 400 to 599,
 * a code and a one-line message; a body taken has one file part of 1 to
 * LIMIT bytes, a temporary file of exactly that many bytes whose SHA-256
 * is the one reported, at most FORM_MAX_FIELDS fields of at most
 * FORM_MAX_FIELD_BYTES in all, each terminated; and once the record is
 * freed its temporary file is gone. A broken expectation calls abort() so
 * that the fuzzer records the input.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>

#define FUZZ_NAME "multipart"
#include "fuzz_expect.h"
#include "internal.h"

/* The largest file part taken: small, so that inputs reach the limit. */
#define LIMIT 2048
#define DEFAULT_TYPE "multipart/form-data; boundary=XyZ"

/* The daemon and its data folder last as long as the process. */
static struct http_server server;
static struct MHD_Daemon *mhd;
static int port;

/* Requests the handler started and the completion callback ended. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ended_cond = PTHREAD_COND_INITIALIZER;
static long n_started, n_ended;

struct conn {
    struct receive *rx;        /* NULL when the body is not multipart */
};

static void sha_of_file(const char *path, char *hex)
{
    unsigned char buf[4096], md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0, i;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    expect(ctx && fd >= 0 && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL), "the temporary file opens");
    while ((n = read(fd, buf, sizeof buf)) > 0) EVP_DigestUpdate(ctx, buf, (size_t)n);
    expect(n == 0, "the temporary file reads");
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    for (i = 0; i < mdlen; i++) sprintf(hex + 2 * i, "%02x", md[i]);
    hex[2 * i] = 0;
    close(fd);
    EVP_MD_CTX_free(ctx);
}

/* The checks on a body that ended (rc from receive_end). */
static void check_end(const struct receive *rx, int rc, const char *sha)
{
    if (rc != 0) {
        expect(rc == -1, "receive_end gives 0 or -1");
        expect(rx->status >= 400 && rx->status <= 599, "a refused body has a 4xx or 5xx status");
        expect(rx->code[0] != 0, "a refused body has an error code");
        expect(rx->message[0] != 0 && !strchr(rx->message, '\n'), "a refused body has a one-line message");
        return;
    }
    struct stat st;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    size_t total = 0;
    expect(rx->status == 0, "no error recorded for a body taken");
    expect(rx->file_parts == 1, "one file part");
    expect(rx->bytes > 0 && rx->bytes <= rx->limit, "a file of 1 to LIMIT bytes");
    expect(strlen(sha) == 64 && strspn(sha, "0123456789abcdef") == 64, "a SHA-256 in hex");
    expect(rx->tmp_made && stat(rx->tmp_path, &st) == 0, "the temporary file is there");
    expect(st.st_size == rx->bytes, "the temporary file holds the bytes counted");
    sha_of_file(rx->tmp_path, hex);
    expect(!strcmp(hex, sha), "the SHA-256 reported is the file's");
    expect(rx->n_fields >= 0 && rx->n_fields <= FORM_MAX_FIELDS, "at most FORM_MAX_FIELDS fields");
    for (int i = 0; i < rx->n_fields; i++) {
        const struct form_field *f = &rx->fields[i];
        expect(f->name[0] && f->value && f->value[f->len] == 0, "a field has a name and a terminated value");
        expect(receive_field(rx, f->name, 0) != NULL, "a field is found by its name");
        total += f->len;
    }
    expect(total == rx->field_bytes && total <= FORM_MAX_FIELD_BYTES, "the fields' bytes are counted and bounded");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct conn *cn = *con_cls;
    struct MHD_Response *r;
    enum MHD_Result ret;
    char sha[65] = "";
    int rc, status = 400;

    if (!cn) {
        cn = calloc(1, sizeof *cn);
        expect(cn != NULL, "memory for a connection");
        *con_cls = cn;
        pthread_mutex_lock(&lock);
        n_started++;
        pthread_mutex_unlock(&lock);
        cn->rx = receive_begin(&server, c, LIMIT);
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (cn->rx) receive_data(cn->rx, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (cn->rx) {
        rc = receive_end(cn->rx, sha);
        check_end(cn->rx, rc, sha);
        if (rc == 0) status = 200;
    }
    r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    expect(r != NULL, "a response");
    ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    struct conn *cn = *con_cls;
    char path[sizeof cn->rx->tmp_path] = "";
    if (!cn) return;
    if (cn->rx && cn->rx->tmp_made) snprintf(path, sizeof path, "%s", cn->rx->tmp_path);
    receive_free(cn->rx);
    expect(!path[0] || access(path, F_OK) != 0, "the temporary file is gone once the record is freed");
    free(cn);
    *con_cls = NULL;
    pthread_mutex_lock(&lock);
    n_ended++;
    pthread_cond_broadcast(&ended_cond);
    pthread_mutex_unlock(&lock);
}

static char dir[] = "/tmp/hark-fuzz-multipart-XXXXXX";
static char tmp[sizeof dir + 8];

/* Removes the data folder at exit (the receiver removes the files in it). */
static void remove_dir(void)
{
    rmdir(tmp);
    rmdir(dir);
}

static void start(void)
{
    struct sockaddr_in sa;
    const union MHD_DaemonInfo *info;

    /* OpenSSL sets itself up on first use, leaving an error state in the
     * thread that used it; done here, that is the main thread, which lives
     * to the end, rather than a connection's, which LeakSanitizer would
     * report once it has gone. */
    expect(OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, NULL) == 1, "OpenSSL starts");
    expect(mkdtemp(dir) != NULL, "a data folder");
    snprintf(tmp, sizeof tmp, "%s/tmp", dir);
    expect(mkdir(tmp, 0700) == 0, "its tmp folder");
    atexit(remove_dir);
    snprintf(server.data_dir, sizeof server.data_dir, "%s", dir);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    mhd = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
                         on_request, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                         MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024), MHD_OPTION_END);
    expect(mhd != NULL, "the daemon starts");
    info = MHD_get_daemon_info(mhd, MHD_DAEMON_INFO_BIND_PORT);
    expect(info && info->port, "the daemon's port");
    port = info->port;
}

static void send_all(int fd, const void *data, size_t size)
{
    const char *p = data;
    while (size) {
        ssize_t n = send(fd, p, size, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return; /* the daemon closed the connection: it has answered */
        p += n;
        size -= (size_t)n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int started;
    struct sockaddr_in sa;
    char head[512], type[256], buf[4096];
    const uint8_t *body = data;
    size_t body_len = size, i;
    struct timespec until;
    long target;
    int fd;

    if (!started) {
        start();
        started = 1;
    }
    snprintf(type, sizeof type, "%s", DEFAULT_TYPE);
    for (i = 0; i < size && i <= 200; i++) {
        if (data[i] == '\r' || data[i] == 0) break;
        if (data[i] == '\n') {
            memcpy(type, data, i);
            type[i] = 0;
            body = data + i + 1;
            body_len = size - i - 1;
            break;
        }
    }
    snprintf(head, sizeof head,
             "POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: %s\r\n"
             "Content-Length: %zu\r\n\r\n",
             type, body_len);

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    expect(fd >= 0, "a socket");
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    expect(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "a connection to the daemon");
    send_all(fd, head, strlen(head));
    send_all(fd, body, body_len);
    while (recv(fd, buf, sizeof buf, 0) > 0) {
    }
    close(fd);

    /* Every request the handler started has ended before the next input. */
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 30;
    pthread_mutex_lock(&lock);
    target = n_started;
    while (n_ended < target)
        expect(pthread_cond_timedwait(&ended_cond, &lock, &until) != ETIMEDOUT, "the request ends");
    pthread_mutex_unlock(&lock);
    return 0;
}
