/*
 * fuzz_router.c: libFuzzer target for the HTTP router (route_request in
 * src/http/server.c).
 *
 * The input, cut at its first NUL as libmicrohttpd hands a path over, is
 * routed as a request path. The route must be one of the table's; a route
 * that names an upload or a file must come with its name or with the bad
 * path mark, and a bad path must leave both names empty. A name the router
 * gives must be one a route may use as a file name: non-empty, not "." or
 * "..", without '/', '\\' or NUL. Encoding the names again (every byte
 * where that fits the router's bound on a segment) and routing the result
 * must give back the same route and names. A broken expectation calls
 * abort() so that the fuzzer records the input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NAME "router"
#include "fuzz_expect.h"
#include "internal.h"

/* A name a route may open as a file in an upload's folder. */
static int safe_name(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    return n > 0 && n < cap && strcmp(s, ".") && strcmp(s, "..") && !strchr(s, '/') && !strchr(s, '\\');
}

/* Appends s percent-encoded: every byte when that fits a segment of cap
 * bytes (the router's bound on a segment as sent), else only '%'. Returns
 * the new end, or 0 when even that does not fit. */
static size_t encode(char *out, size_t at, const char *s, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s), n_pct = 0, i;
    int all;
    for (i = 0; i < n; i++) n_pct += s[i] == '%';
    all = 3 * n < cap;
    if (!all && n + 2 * n_pct >= cap) return 0;
    for (; *s; s++) {
        if (all || *s == '%') {
            out[at++] = '%';
            out[at++] = hex[(unsigned char)*s >> 4];
            out[at++] = hex[(unsigned char)*s & 15];
        } else {
            out[at++] = *s;
        }
    }
    out[at] = 0;
    return at;
}

/* Routes the names of rq again, encoded under prefix (which ends in '/'),
 * with suffix after them, and checks the same route and names come back. */
static void round_trip(const struct request *rq, const char *prefix, int with_file, const char *suffix)
{
    static char url[3 * (sizeof rq->id + sizeof rq->file) + 64];
    struct request again;
    size_t at = (size_t)snprintf(url, sizeof url, "%s", prefix);

    at = encode(url, at, rq->id, sizeof rq->id);
    if (!at) return;
    if (with_file) {
        url[at++] = '/';
        at = encode(url, at, rq->file, sizeof rq->file);
        if (!at) return;
    }
    snprintf(url + at, sizeof url - at, "%s", suffix);
    memset(&again, 0, sizeof again);
    route_request(&again, url);
    expect(again.route == rq->route && !again.bad_path, "the encoded names route the same way");
    expect(!strcmp(again.id, rq->id) && !strcmp(again.file, rq->file), "the encoded names come back");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct request rq;
    char *url = malloc(size + 1);

    expect(url != NULL, "memory for the path");
    memcpy(url, data, size);
    url[size] = 0;
    memset(&rq, 0, sizeof rq);
    route_request(&rq, url);
    expect(rq.route >= ROUTE_NOT_FOUND && rq.route < ROUTE_COUNT, "a route from the table");
    expect(url[0] == '/' || rq.route == ROUTE_NOT_FOUND, "a path not starting with '/' routes nowhere");
    expect(strnlen(rq.id, sizeof rq.id) < sizeof rq.id && strnlen(rq.file, sizeof rq.file) < sizeof rq.file,
           "the names are terminated");
    if (rq.bad_path) {
        expect(!rq.id[0] && !rq.file[0], "a bad path leaves the names empty");
        free(url);
        return 0;
    }
    /* A name a route opens names no other file, and encodes back to the
     * path it came from. */
    int id_named = rq.route == ROUTE_UPLOAD_ONE || rq.route == ROUTE_JOB || rq.route == ROUTE_RESULTS ||
                   rq.route == ROUTE_JOB_CANCEL || rq.route == ROUTE_FILE;
    if (id_named) expect(safe_name(rq.id, sizeof rq.id), "an id that names no other file");
    if (rq.route == ROUTE_FILE || rq.route == ROUTE_UI_ASSET)
        expect(safe_name(rq.file, sizeof rq.file), "a file name that names no other file");
    switch (rq.route) {
    case ROUTE_UPLOAD_ONE: round_trip(&rq, "/uploads/", 0, ""); break;
    case ROUTE_JOB: round_trip(&rq, "/jobs/", 0, "/"); break;
    case ROUTE_RESULTS: round_trip(&rq, "/results/", 0, ""); break;
    case ROUTE_JOB_CANCEL: round_trip(&rq, "/jobs/", 0, "/cancel"); break;
    case ROUTE_FILE: round_trip(&rq, "/", 1, ""); break;
    default: break;
    }
    free(url);
    return 0;
}
