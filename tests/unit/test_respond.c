/*
 * test_respond.c: the table of failures (respond.h): the status and error
 * code every HARK_E* code of every kind of operation is answered with, the
 * same on every route. The expected statuses are the HTTP contract the
 * README documents (409 duplicate, 413 too large, 415 not media, 404 an
 * unknown model, 400 what the model cannot do).
 */
#include <string.h>

#include "harness.h"
#include "hark.h"
#include "respond.h"

static void expect(enum http_op op, int rc, int want_status, const char *want_code)
{
    int status = 0;
    const char *code = NULL;
    http_failure(op, rc, &status, &code);
    CHECKF(status == want_status && code && !strcmp(code, want_code), "op %d rc %d: %d %s, want %d %s", op, rc,
           status, code ? code : "(null)", want_status, want_code);
}

static void test_contract(void)
{
    expect(HTTP_OP_STORE, HARK_ENOENT, 404, "not_found");
    expect(HTTP_OP_STORE, HARK_EEXIST, 409, "duplicate");
    expect(HTTP_OP_STORE, HARK_EBUSY, 409, "job_active");
    expect(HTTP_OP_STORE, HARK_ESTALE, 409, "not_active");
    expect(HTTP_OP_STORE, HARK_EIO, 500, "storage");
    expect(HTTP_OP_MEDIA, HARK_EAUDIO, 415, "unsupported_media");
    expect(HTTP_OP_MEDIA, HARK_EFORMAT, 415, "unsupported_media");
    expect(HTTP_OP_MEDIA, HARK_ENOMEM, 500, "media");
    expect(HTTP_OP_UPLOAD, HARK_ERANGE, 413, "too_large");
    expect(HTTP_OP_UPLOAD, HARK_EIO, 507, "storage");
    expect(HTTP_OP_UPLOAD, HARK_ENOMEM, 500, "storage");
    expect(HTTP_OP_REQUEST, HARK_ERANGE, 413, "too_large");
    expect(HTTP_OP_REQUEST, HARK_EINVAL, 400, "invalid_request");
    expect(HTTP_OP_MODEL, HARK_ENOENT, 404, "model_not_found");
    expect(HTTP_OP_MODEL, HARK_EINVAL, 400, "invalid_request");
    expect(HTTP_OP_MODEL, HARK_EFORMAT, 500, "model_unusable");
    expect(HTTP_OP_TRANSCRIBE, HARK_ENOENT, 404, "model_not_found");
    expect(HTTP_OP_TRANSCRIBE, HARK_EINVAL, 400, "invalid_request");
    expect(HTTP_OP_TRANSCRIBE, HARK_ENOTSUP, 503, "unavailable");
    expect(HTTP_OP_TRANSCRIBE, HARK_ECANCELED, 503, "unavailable");
    expect(HTTP_OP_TRANSCRIBE, HARK_EFORMAT, 500, "transcription_failed");
}

/* Every code of every operation is answered by a row of the table (not
 * the fallback of a code nothing lists) with an error status and a code. */
static void test_total(void)
{
    for (int op = HTTP_OP_REQUEST; op <= HTTP_OP_TRANSCRIBE; op++)
        for (int rc = -20; rc < 0; rc++) {
            int status = 0;
            const char *code = NULL;
            http_failure((enum http_op)op, rc, &status, &code);
            CHECKF(status >= 400 && status < 600 && code && *code, "op %d rc %d: %d", op, rc, status);
            CHECKF(code && strcmp(code, "internal") != 0, "op %d rc %d falls through the table", op, rc);
        }
}

int main(int argc, char **argv)
{
    t_init(argc, argv);
    t_run("contract", test_contract);
    t_run("total", test_total);
    return t_summary();
}
