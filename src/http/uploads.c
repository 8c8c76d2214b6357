/*
 * uploads.c: POST /upload, GET /uploads (the history, paged) and GET or
 * DELETE /uploads/<id>.
 *
 * An upload is first received into the data folder's tmp/, probed with
 * FFmpeg, then moved into a folder of its own (named by its new id, so two
 * owners' copies of the same file never share one) and only then recorded;
 * a duplicate (the store refuses a second row with the same SHA-256 for
 * one owner) is removed again. Deleting removes the row first and the
 * files after. The data folder's start-up sweep clears what a crash leaves
 * between the two (datadir.h). An upload belongs to the key that sent it:
 * a key lists, reads and deletes only its own, an admin key every owner's,
 * and another owner's upload is answered as an unknown id is.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datadir.h"
#include "hark.h"
#include "internal.h"
#include "media.h"
#include "queue.h"
#include "store.h"

/* ------------------------------------------------------------- /upload */

enum MHD_Result route_upload(struct http_server *srv, struct MHD_Connection *c, struct request *rq)
{
    struct receive *rx = rq->rx;
    struct store_upload u, existing;
    struct media_info info;
    char sha[65], err[DATADIR_PATH_MAX + 128];
    const char *model;
    enum MHD_Result ret;
    int rc;

    if (receive_end(rx, sha) < 0)
        return http_send_error(c, rq, rx->status, rx->code, rx->param[0] ? rx->param : NULL, NULL,
                               "%s", rx->message);
    model = receive_field(rx, "model", 0);
    if ((model && *model) || srv->default_model[0]) {
        model = check_model(srv, c, rq, model, srv->default_model, 0, NULL, &ret);
        if (!model) return ret;
    } else {
        model = "";
    }

    rc = media_probe(rx->tmp_path, &info, err, sizeof err);
    if (rc == HARK_EAUDIO || rc == HARK_EFORMAT)
        return http_send_failure(c, rq, HTTP_OP_MEDIA, rc, "file", NULL, "unsupported media: %s",
                                 media_reason(err, rx->tmp_path));
    if (rc < 0) return http_send_failure(c, rq, HTTP_OP_MEDIA, rc, "file", NULL, "cannot read the upload: %s", err);

    memset(&u, 0, sizeof u);
    if (make_uuid(u.id) < 0)
        return http_send_error(c, rq, 500, "internal", NULL, NULL, "no random numbers: %s",
                               strerror(errno));
    datadir_clean_name(rx->filename[0] ? rx->filename : "media", u.filename, sizeof u.filename);
    snprintf(u.sha256, sizeof u.sha256, "%s", sha);
    snprintf(u.content_type, sizeof u.content_type, "%s",
             info.content_type[0] ? info.content_type : "application/octet-stream");
    snprintf(u.model, sizeof u.model, "%s", model);
    store_now(u.upload_date);
    u.size = rx->bytes;
    u.duration_s = info.duration_s;
    snprintf(u.owner, sizeof u.owner, "%s", rq->owner);

    rc = datadir_upload_adopt(srv->data_dir, u.id, u.filename, rx->tmp_path, err, sizeof err);
    if (rc) return http_send_failure(c, rq, HTTP_OP_STORE, rc, NULL, NULL, "%s", err);
    rx->tmp_path[0] = 0;

    rc = store_upload_insert(srv->store, &u, &existing);
    if (rc != 0) {
        datadir_upload_remove(srv->data_dir, u.id);
        if (rc == HARK_EEXIST)
            return http_send_failure(c, rq, HTTP_OP_STORE, rc, "file", upload_json(&existing),
                                     "this file was uploaded before, as %s", existing.id);
        return store_failure(srv, c, rq, rc);
    }
    pthread_mutex_lock(&srv->lock);
    srv->upload_bytes += u.size;
    pthread_mutex_unlock(&srv->lock);
    snprintf(u.status, sizeof u.status, "uploaded");
    return http_send_json(c, rq, 201, upload_json(&u));
}

/* ------------------------------------------------------------ /uploads */

enum MHD_Result route_uploads(struct http_server *srv, struct MHD_Connection *c, struct request *rq)
{
    char buf[32];
    const char *s;
    long long limit = 100, offset = 0;
    struct store_upload *rows = NULL;
    int n = 0, i, rc;
    int64_t total = 0;
    json_t *list, *o;

    if ((s = http_query(c, "limit", buf, sizeof buf)) && parse_count(s, 1, 1000, &limit) < 0)
        return http_send_error(c, rq, 400, "invalid_request", "limit", NULL,
                               "limit must be a whole number from 1 to 1000");
    if ((s = http_query(c, "offset", buf, sizeof buf)) && parse_count(s, 0, INT64_MAX / 2, &offset) < 0)
        return http_send_error(c, rq, 400, "invalid_request", "offset", NULL,
                               "offset must be a whole number, 0 or more");
    rc = store_upload_list_owner(srv->store, rq->admin ? NULL : rq->owner, (int)limit, offset, &rows, &n,
                                 &total);
    if (rc < 0) return store_failure(srv, c, rq, rc);
    list = json_array();
    for (i = 0; i < n; i++) json_array_append_new(list, upload_json(&rows[i]));
    free(rows);
    o = json_pack("{s:o, s:I, s:I, s:I}", "uploads", list, "total", (json_int_t)total, "limit",
                  (json_int_t)limit, "offset", (json_int_t)offset);
    json_object_set_new(o, "next_offset", offset + n < total ? json_integer(offset + n) : json_null());
    return http_send_json(c, rq, 200, o);
}

enum MHD_Result route_upload_one(struct http_server *srv, struct MHD_Connection *c, struct request *rq)
{
    struct store_upload u;
    struct store_job job;
    int rc = rq->bad_path || !is_uuid(rq->id) ? HARK_ENOENT : visible_upload_get(srv, rq, rq->id, &u);
    if (rc < 0) return store_failure(srv, c, rq, rc);
    if (strcmp(rq->method, "DELETE")) return http_send_json(c, rq, 200, upload_json(&u));

    if (store_job_active(srv->store, u.id, &job) == 0 && store_job_cancel(srv->store, job.id) == 0)
        queue_cancel(srv->queue, job.id);
    rc = store_upload_delete(srv->store, u.id);
    if (rc < 0) return store_failure(srv, c, rq, rc);
    datadir_upload_remove(srv->data_dir, u.id);
    return http_send_json(c, rq, 200, json_pack("{s:s, s:b}", "id", u.id, "deleted", 1));
}
