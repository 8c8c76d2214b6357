/*
 * results.c: GET /results/<id> (the transcript in a stored format, or
 * subtitles cut again from results.json with the query's cue options) and
 * GET or HEAD /<id>/<file> (an upload's stored files, with single byte
 * ranges, so that the page's video player can seek).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datadir.h"
#include "hark.h"
#include "internal.h"
#include "store.h"

/* ------------------------------------------------------------ /results */

/* Serves an open file (taken) whole, with headers. */
static enum MHD_Result send_file(struct MHD_Connection *c, struct request *rq, int fd, int64_t size,
                                 const char *type, const char *disposition)
{
    struct MHD_Response *r = MHD_create_response_from_fd_at_offset64((uint64_t)size, fd, 0);
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (disposition) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_DISPOSITION, disposition);
    return http_send_response(c, rq, 200, r);
}

/* The subtitle options of a query: max_line_chars, max_lines,
 * max_cue_seconds and word_tags (WebVTT). Returns 1 when it names any, 0
 * when none, or -1 after queueing a 400. */
static int cue_query(struct MHD_Connection *c, struct request *rq, const struct hark_format_info *f,
                     struct hark_cue_options *o, enum MHD_Result *ret)
{
    static const char *const names[] = {"max_line_chars", "max_lines", "max_cue_seconds", "word_tags"};
    char buf[64], why[160], *end;
    int any = 0;
    hark_cue_options_init(o);
    for (int i = 0; i < 4; i++) {
        const char *v = http_query(c, names[i], buf, sizeof buf);
        if (!v) continue;
        any = 1;
        if (f->fmt != HARK_FORMAT_SRT && f->fmt != HARK_FORMAT_VTT) {
            *ret = http_send_error(c, rq, 400, "invalid_request", names[i], NULL,
                                   "%s applies to the srt and vtt formats", names[i]);
            return -1;
        }
        if (i == 3) {
            if (f->fmt != HARK_FORMAT_VTT) {
                *ret = http_send_error(c, rq, 400, "invalid_request", names[i], NULL,
                                       "word_tags applies to the vtt format");
                return -1;
            }
            o->word_tags = !strcmp(v, "1") || !strcmp(v, "true") ? 1 : !strcmp(v, "0") || !strcmp(v, "false") ? 0 : -1;
            if (o->word_tags < 0) {
                *ret = http_send_error(c, rq, 400, "invalid_request", names[i], NULL,
                                       "word_tags must be true or false, not \"%s\"", v);
                return -1;
            }
            continue;
        }
        double x = strtod(v, &end);
        if (!*v || *end || !isfinite(x) || (i < 2 && (x < 1 || x > 1e6 || x != floor(x)))) {
            *ret = http_send_error(c, rq, 400, "invalid_request", names[i], NULL, "%s must be a %s, not \"%s\"",
                                   names[i], i < 2 ? "whole number" : "number of seconds", v);
            return -1;
        }
        if (i == 0) o->max_line_chars = (int)x;
        else if (i == 1) o->max_lines = (int)x;
        else o->max_cue_s = x;
    }
    if (any && hark_cue_options_check(o, why, sizeof why) != 0) {
        *ret = http_send_error(c, rq, 400, "invalid_request", NULL, NULL, "%s", why);
        return -1;
    }
    return any;
}

enum MHD_Result route_results(struct http_server *srv, struct MHD_Connection *c, struct request *rq)
{
    struct store_upload u;
    const struct hark_format_info *f;
    struct hark_cue_options cues;
    char buf[32], name_buf[32], path[DATADIR_PATH_MAX], disp[512], stem[256];
    const char *name, *dot;
    enum MHD_Result ret;
    struct stat st;
    int rc, fd, render;

    name = http_query(c, "format", buf, sizeof buf);
    f = hark_format_find(name ? name : "json");
    if (!f || !f->stored)
        return http_send_error(c, rq, 400, "invalid_request", "format", NULL,
                               "unknown format \"%s\": use json, srt, vtt or txt", name);
    if ((render = cue_query(c, rq, f, &cues, &ret)) < 0) return ret;
    rc = rq->bad_path || !is_uuid(rq->id) ? HARK_ENOENT : visible_upload_get(srv, rq, rq->id, &u);
    if (rc < 0) return store_failure(srv, c, rq, rc);
    if (!u.model_ran)
        return http_send_error(c, rq, 404, "not_ready", "id", NULL,
                               "upload %s has not been transcribed yet (status: %s)", u.id, u.status);
    /* Subtitles with cue options are cut again from the JSON results. */
    datadir_result_name(render ? hark_format_of(HARK_FORMAT_JSON) : f, name_buf, sizeof name_buf);
    fd = datadir_upload_open(srv->data_dir, u.id, name_buf);
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0) close(fd);
        return http_send_error(c, rq, 404, "not_ready", "id", NULL,
                               "the results of upload %s are missing", u.id);
    }
    snprintf(stem, sizeof stem, "%s", u.filename);
    dot = strrchr(stem, '.');
    if (dot && dot != stem) stem[dot - stem] = 0;
    name = http_query(c, "download", buf, sizeof buf);
    snprintf(disp, sizeof disp, "%s; filename=\"%s.%s\"",
             name && strcmp(name, "0") && strcmp(name, "false") ? "attachment" : "inline", stem, f->ext);
    if (!render) return send_file(c, rq, fd, st.st_size, f->content_type, disp);
    char *text, err[256];
    size_t len;
    close(fd);
    if (datadir_upload_path(srv->data_dir, u.id, name_buf, path, sizeof path))
        return http_send_error(c, rq, 500, "internal", NULL, NULL, "the results' path is too long");
    rc = subtitles_render(path, f->fmt, &cues, &text, &len, err, sizeof err);
    if (rc) return http_send_error(c, rq, 500, "internal", NULL, NULL, "%s", err);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, f->content_type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_DISPOSITION, disp);
    return http_send_response(c, rq, 200, r);
}

/* -------------------------------------------------------- /<id>/<file> */

static const char *file_type(const struct store_upload *u, const char *name)
{
    const struct hark_format_info *f = datadir_result_format(name);
    if (!strcmp(name, u->filename)) return u->content_type;
    return f ? f->content_type : "application/octet-stream";
}

/* Declared in internal.h. */
int parse_range(const char *h, int64_t size, int64_t *first, int64_t *last)
{
    const char *p;
    int64_t a = -1, b = -1;
    if (!h) return 0;
    while (*h == ' ') h++;
    if (strncasecmp(h, "bytes=", 6)) return 0;
    p = h + 6;
    while (*p == ' ') p++;
    if (strchr(p, ',')) return 0;
    if (*p >= '0' && *p <= '9') {
        a = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (a > (INT64_MAX - 9) / 10) return 0;
            a = a * 10 + (*p - '0');
        }
    }
    if (*p++ != '-') return 0;
    if (*p >= '0' && *p <= '9') {
        b = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (b > (INT64_MAX - 9) / 10) return 0;
            b = b * 10 + (*p - '0');
        }
    }
    while (*p == ' ') p++;
    if (*p) return 0;
    if (a < 0 && b < 0) return 0;
    if (a < 0) { /* a suffix: the last b bytes */
        if (b == 0 || size == 0) return -1;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 1;
    }
    if (b >= 0 && b < a) return 0;
    if (a >= size) return -1;
    *first = a;
    *last = b < 0 || b >= size ? size - 1 : b;
    return 1;
}

enum MHD_Result route_file(struct http_server *srv, struct MHD_Connection *c, struct request *rq)
{
    struct store_upload u;
    struct stat st;
    struct MHD_Response *r;
    char range[96];
    const char *type;
    int64_t first = 0, last = 0;
    int fd, rc, kind;

    if (rq->bad_path || !is_uuid(rq->id) || visible_upload_get(srv, rq, rq->id, &u) < 0)
        return http_send_error(c, rq, 404, "not_found", NULL, NULL, "no such file");
    fd = datadir_upload_open(srv->data_dir, u.id, rq->file);
    rc = fd >= 0 ? fstat(fd, &st) : -1;
    if (rc < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0) close(fd);
        return http_send_error(c, rq, 404, "not_found", NULL, NULL, "no such file");
    }
    type = file_type(&u, rq->file);
    kind = parse_range(MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE),
                       st.st_size, &first, &last);
    if (kind < 0) {
        struct MHD_Response *e;
        close(fd);
        snprintf(range, sizeof range, "bytes */%lld", (long long)st.st_size);
        e = http_error_response(416, "range_not_satisfiable", NULL, NULL,
                                "the range is outside the file");
        if (!e) return MHD_NO;
        MHD_add_response_header(e, MHD_HTTP_HEADER_CONTENT_RANGE, range);
        MHD_add_response_header(e, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
        return http_send_response(c, rq, 416, e);
    }
    if (kind == 0) {
        first = 0;
        last = st.st_size - 1;
    }
    r = MHD_create_response_from_fd_at_offset64((uint64_t)(last - first + 1), fd, (uint64_t)first);
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "private, max-age=3600");
    if (kind > 0) {
        snprintf(range, sizeof range, "bytes %lld-%lld/%lld", (long long)first, (long long)last,
                 (long long)st.st_size);
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, range);
        return http_send_response(c, rq, 206, r);
    }
    return http_send_response(c, rq, 200, r);
}
