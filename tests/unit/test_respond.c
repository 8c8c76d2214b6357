/*
 * test_respond.c: the table of failures (respond.h): the status and error
 * code every HARK_E* code of every kind of operation is answered with, on
 * the service's routes and on /v1. The expected statuses are the HTTP
 * contract the README documents (409 duplicate, 413 too large, 415 not
 * media on /upload, 400 invalid_file_format on /v1 as OpenAI answers).
 */
#include <string.h>

#include "harness.h"
#include "hark.h"
#include "respond.h"

static void expect(enum http_op op, int rc, int v1, int want_status, const char *want_code)
{
    int status = 0;
    const char *code = NULL;
    http_failure(op, rc, v1, &status, &code);
    CHECKF(status == want_status && code && !strcmp(code, want_code), "op %d rc %d v1 %d: %d %s, want %d %s", op,
           rc, v1, status, code ? code : "(null)", want_status, want_code);
}

static void test_contract(void)
{
    expect(HTTP_OP_STORE, HARK_ENOENT, 0, 404, "not_found");
    expect(HTTP_OP_STORE, HARK_EEXIST, 0, 409, "duplicate");
    expect(HTTP_OP_STORE, HARK_EBUSY, 0, 409, "job_active");
    expect(HTTP_OP_STORE, HARK_ESTALE, 0, 409, "not_active");
    expect(HTTP_OP_STORE, HARK_EIO, 0, 500, "storage");
    expect(HTTP_OP_MEDIA, HARK_EAUDIO, 0, 415, "unsupported_media");
    expect(HTTP_OP_MEDIA, HARK_EFORMAT, 0, 415, "unsupported_media");
    expect(HTTP_OP_MEDIA, HARK_EAUDIO, 1, 400, "invalid_file_format");
    expect(HTTP_OP_MEDIA, HARK_ENOMEM, 1, 500, "media");
    expect(HTTP_OP_UPLOAD, HARK_ERANGE, 0, 413, "too_large");
    expect(HTTP_OP_UPLOAD, HARK_EIO, 0, 507, "storage");
    expect(HTTP_OP_UPLOAD, HARK_ENOMEM, 0, 500, "storage");
    expect(HTTP_OP_REQUEST, HARK_ERANGE, 1, 413, "too_large");
    expect(HTTP_OP_REQUEST, HARK_EINVAL, 0, 400, "invalid_request");
    expect(HTTP_OP_TRANSCRIBE, HARK_ENOENT, 1, 404, "model_not_found");
    expect(HTTP_OP_TRANSCRIBE, HARK_ENOTSUP, 1, 503, "unavailable");
    expect(HTTP_OP_TRANSCRIBE, HARK_EFORMAT, 1, 500, "transcription_failed");
}

/* Every code of every operation gets an error status and a code. */
static void test_total(void)
{
    for (int op = HTTP_OP_REQUEST; op <= HTTP_OP_TRANSCRIBE; op++)
        for (int rc = -20; rc < 0; rc++)
            for (int v1 = 0; v1 < 2; v1++) {
                int status = 0;
                const char *code = NULL;
                http_failure((enum http_op)op, rc, v1, &status, &code);
                CHECKF(status >= 400 && status < 600 && code && *code, "op %d rc %d: %d", op, rc, status);
            }
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    t_run("contract", test_contract);
    t_run("total", test_total);
    return t_summary();
}
