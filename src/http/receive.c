/*
 * receive.c: multipart/form-data bodies, parsed by libmicrohttpd's post
 * processor. The part named "file" goes straight to a temporary file in
 * <data>/tmp as it arrives: the connection's thread hashes it (SHA-256,
 * OpenSSL's EVP interface) while a spool thread writes it (spool.c), so
 * memory stays constant whatever the file's size; every other field is
 * kept in memory, up to FORM_MAX_FIELDS fields of FORM_MAX_FIELD_BYTES.
 *
 * The temporary file belongs to the receive record until the upload route
 * renames it into place (it then clears tmp_path); receive_free removes
 * whatever is left, so a rejected or broken-off upload leaves nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datadir.h"
#include "hark.h"
#include "internal.h"
#include "spool.h"

#define POST_BUFFER (64 * 1024)

void receive_fail(struct receive *rx, int status, const char *code, const char *param,
                  const char *fmt, ...)
{
    va_list ap;
    if (rx->status) return;
    if (status < 0) http_failure(HTTP_OP_UPLOAD, status, &status, &code);
    rx->status = status;
    snprintf(rx->code, sizeof rx->code, "%s", code ? code : "");
    snprintf(rx->param, sizeof rx->param, "%s", param ? param : "");
    va_start(ap, fmt);
    vsnprintf(rx->message, sizeof rx->message, fmt, ap);
    va_end(ap);
}

static enum MHD_Result file_data(struct receive *rx, const char *filename, const char *type,
                                 const char *data, uint64_t off, size_t size)
{
    /* The post processor may call with offset 0 more than once for one
     * part (first with no data); a part that starts at offset 0 after
     * file bytes have arrived is a second file. */
    if (off == 0 && (rx->file_closed || (rx->fd >= 0 && rx->bytes > 0))) {
        rx->file_parts++;
        receive_fail(rx, 400, "invalid_request", "file", "send one file per request");
        return MHD_NO;
    }
    if (rx->fd < 0) {
        snprintf(rx->filename, sizeof rx->filename, "%s", filename ? filename : "");
        snprintf(rx->part_type, sizeof rx->part_type, "%s", type ? type : "");
        rx->fd = mkostemp(rx->tmp_path, O_CLOEXEC);
        if (rx->fd < 0) {
            rx->tmp_path[0] = 0;
            receive_fail(rx, 500, "storage", NULL, "cannot create a temporary file: %s",
                         strerror(errno));
            return MHD_NO;
        }
        rx->tmp_made = 1;
        rx->file_parts++;
        if (spool_open(rx->fd, &rx->spool) < 0) {
            receive_fail(rx, HARK_ENOMEM, NULL, NULL, "cannot start the file writer: %s",
                         strerror(errno));
            return MHD_NO;
        }
    }
    if (!size) return MHD_YES;
    if (rx->bytes + (int64_t)size > rx->limit) {
        receive_fail(rx, HARK_ERANGE, NULL, "file",
                     "the file is larger than the limit of %lld bytes", (long long)rx->limit);
        return MHD_NO;
    }
    if (spool_write(rx->spool, data, size) < 0) {
        receive_fail(rx, HARK_EIO, NULL, NULL, "cannot store the upload: %s", strerror(errno));
        return MHD_NO;
    }
    EVP_DigestUpdate(rx->sha, data, size);
    rx->bytes += (int64_t)size;
    return MHD_YES;
}

/* The form fields the routes read (speech detection's settings among
 * them, in hark's and in speaches' words); others are skipped unread. */
static int known_field(const char *key)
{
    static const char *const names[] = {"model", "language", "prompt", "response_format", "temperature", "stream",
                                        "timestamp_granularities[]", "timestamp_granularities",
                                        "chunking_strategy", "vad", "threshold", "min_speech_ms",
                                        "min_speech_duration_ms", "min_silence_ms", "min_silence_duration_ms",
                                        "max_speech_s", "max_speech_duration_s", "pad_ms", "speech_pad_ms"};
    size_t i;
    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(key, names[i])) return 1;
    return !strncmp(key, "chunking_strategy[", 18);
}

static enum MHD_Result field_data(struct receive *rx, const char *key, const char *data,
                                  uint64_t off, size_t size)
{
    struct form_field *f = rx->n_fields ? &rx->fields[rx->n_fields - 1] : NULL;
    char *v;
    if (!known_field(key)) return MHD_YES;
    /* Offset 0 starts a field, unless it repeats the start of the field
     * just begun (the post processor may announce a part before its data). */
    if (off == 0 && !(f && f->len == 0 && !strcmp(f->name, key))) {
        if (rx->n_fields == FORM_MAX_FIELDS) {
            receive_fail(rx, 400, "invalid_request", NULL, "too many form fields");
            return MHD_NO;
        }
        f = &rx->fields[rx->n_fields++];
        snprintf(f->name, sizeof f->name, "%s", key);
        f->value = calloc(1, 1);
        f->len = 0;
        if (!f->value) return MHD_NO;
    } else if (!f || strcmp(f->name, key)) {
        return MHD_YES;
    }
    if (!size) return MHD_YES;
    if (rx->field_bytes + size > FORM_MAX_FIELD_BYTES) {
        receive_fail(rx, HARK_ERANGE, NULL, key, "the form fields are larger than %d bytes",
                     FORM_MAX_FIELD_BYTES);
        return MHD_NO;
    }
    v = realloc(f->value, f->len + size + 1);
    if (!v) return MHD_NO;
    memcpy(v + f->len, data, size);
    f->value = v;
    f->len += size;
    v[f->len] = 0;
    rx->field_bytes += size;
    return MHD_YES;
}

static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *filename, const char *content_type,
                               const char *transfer_encoding, const char *data, uint64_t off,
                               size_t size)
{
    struct receive *rx = cls;
    if (rx->status) return MHD_NO;
    if (!key) return MHD_YES;
    if (!strcmp(key, "file")) return file_data(rx, filename, content_type, data, off, size);
    return field_data(rx, key, data, off, size);
}

struct receive *receive_begin(struct http_server *srv, struct MHD_Connection *c, int64_t limit)
{
    struct receive *rx = calloc(1, sizeof *rx);
    if (!rx) return NULL;
    rx->fd = -1;
    rx->limit = limit;
    datadir_upload_template(srv->data_dir, rx->tmp_path, sizeof rx->tmp_path);
    rx->sha = EVP_MD_CTX_new();
    if (!rx->sha || !EVP_DigestInit_ex(rx->sha, EVP_sha256(), NULL)) goto fail;
    rx->pp = MHD_create_post_processor(c, POST_BUFFER, on_part, rx);
    if (!rx->pp) goto fail;
    return rx;
fail:
    receive_free(rx);
    return NULL;
}

int receive_data(struct receive *rx, const char *data, size_t size)
{
    if (rx->status) return -1;
    if (MHD_post_process(rx->pp, data, size) != MHD_YES) {
        receive_fail(rx, 400, "invalid_request", NULL, "the multipart body is malformed");
        return -1;
    }
    return 0;
}

int receive_end(struct receive *rx, char *sha)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0, i;
    if (rx->pp) {
        if (MHD_destroy_post_processor(rx->pp) != MHD_YES)
            receive_fail(rx, 400, "invalid_request", NULL, "the multipart body is incomplete");
        rx->pp = NULL;
    }
    if (rx->spool) {
        if (spool_close(rx->spool) < 0)
            receive_fail(rx, HARK_EIO, NULL, NULL, "cannot store the upload: %s", strerror(errno));
        rx->spool = NULL;
    }
    if (rx->fd >= 0) {
        if (close(rx->fd) < 0)
            receive_fail(rx, HARK_EIO, NULL, NULL, "cannot store the upload: %s", strerror(errno));
        rx->fd = -1;
        rx->file_closed = 1;
    }
    if (rx->status) return -1;
    if (!rx->file_parts) {
        receive_fail(rx, 400, "missing_file", "file", "no file: send it in the form field \"file\"");
        return -1;
    }
    if (!rx->bytes) {
        receive_fail(rx, 400, "empty_file", "file", "the file is empty");
        return -1;
    }
    EVP_DigestFinal_ex(rx->sha, md, &mdlen);
    for (i = 0; i < mdlen && i < 32; i++) sprintf(sha + 2 * i, "%02x", md[i]);
    sha[2 * i] = 0;
    return 0;
}

const char *receive_field(const struct receive *rx, const char *name, int index)
{
    int i;
    for (i = 0; i < rx->n_fields; i++)
        if (!strcmp(rx->fields[i].name, name) && index-- == 0) return rx->fields[i].value;
    return NULL;
}

void receive_free(struct receive *rx)
{
    int i;
    if (!rx) return;
    if (rx->pp) MHD_destroy_post_processor(rx->pp);
    spool_abort(rx->spool);
    if (rx->fd >= 0) close(rx->fd);
    if (rx->tmp_made && rx->tmp_path[0]) unlink(rx->tmp_path);
    for (i = 0; i < rx->n_fields; i++) free(rx->fields[i].value);
    EVP_MD_CTX_free(rx->sha);
    free(rx);
}
