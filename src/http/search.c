/*
 * search.c: GET /search, full-text search over every transcript the caller
 * may read (store_search): ranked hits, each one segment with its upload,
 * times, text and a snippet in which the matches are marked.
 */
#include <stdlib.h>
#include <string.h>

#include "hark.h"
#include "internal.h"
#include "store.h"

/* What a byte of the store's snippet becomes in HTML, or NULL to keep it. */
static const char *html_of(char c)
{
    switch (c) {
    case STORE_MARK_ON: return "<mark>";
    case STORE_MARK_OFF: return "</mark>";
    case '&': return "&amp;";
    case '<': return "&lt;";
    case '>': return "&gt;";
    case '"': return "&quot;";
    case '\'': return "&#39;";
    default: return NULL;
    }
}

/* The store's snippet as HTML: the text escaped, each match in <mark>. */
static char *snippet_html(const char *s)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++) cap += html_of(*p) ? strlen(html_of(*p)) : 1;
    char *out = malloc(cap), *o = out;
    if (!out) return NULL;
    for (const char *p = s; *p; p++) {
        const char *rep = html_of(*p);
        if (rep) o = stpcpy(o, rep);
        else *o++ = *p;
    }
    *o = 0;
    return out;
}

static json_t *hit_json(const struct store_hit *h)
{
    char location[320];
    char *html = snippet_html(h->snippet);
    snprintf(location, sizeof location, "/%s/%s", h->upload_id, h->filename);
    json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:f, s:f, s:s, s:s?, s:f}", "upload_id", h->upload_id, "filename",
                          h->filename, "location", location, "segment", h->segment, "start", h->start_s, "end",
                          h->end_s, "text", h->text, "snippet", html, "score", h->score);
    free(html);
    return o;
}

enum MHD_Result route_search(struct http_server *srv, struct MHD_Connection *c, struct request *rq)
{
    char q[STORE_QUERY_MAX + 2], buf[32];
    const char *s, *query = http_query(c, "q", q, sizeof q);
    long long limit = 20, offset = 0;
    if (!query || !*query)
        return http_send_error(c, rq, 400, "invalid_request", "q", NULL, "q is the text to look for");
    if (strlen(query) > STORE_QUERY_MAX)
        return http_send_error(c, rq, 400, "invalid_value", "q", NULL, "q is longer than %d bytes", STORE_QUERY_MAX);
    if ((s = http_query(c, "limit", buf, sizeof buf)) && parse_count(s, 1, 100, &limit) < 0)
        return http_send_error(c, rq, 400, "invalid_request", "limit", NULL,
                               "limit must be a whole number from 1 to 100");
    if ((s = http_query(c, "offset", buf, sizeof buf)) && parse_count(s, 0, INT64_MAX / 2, &offset) < 0)
        return http_send_error(c, rq, 400, "invalid_request", "offset", NULL,
                               "offset must be a whole number, 0 or more");
    struct store_hit *hits = NULL;
    int n = 0;
    int64_t total = 0;
    int rc = store_search(srv->store, query, rq->admin ? NULL : rq->owner, (int)limit, offset, &hits, &n, &total);
    if (rc == HARK_EINVAL) {
        const char *why = store_error(srv->store), *colon = strstr(why, ": ");
        return http_send_error(c, rq, 400, "invalid_value", "q", NULL, "%s", colon ? colon + 2 : why);
    }
    if (rc < 0) return store_failure(srv, c, rq, rc);
    json_t *list = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(list, hit_json(&hits[i]));
    store_hits_free(hits, n);
    json_t *o = json_pack("{s:s, s:o, s:I, s:I, s:I}", "query", query, "hits", list, "total", (json_int_t)total,
                          "limit", (json_int_t)limit, "offset", (json_int_t)offset);
    if (!o) return http_send_error(c, rq, 400, "invalid_value", "q", NULL, "q is not valid UTF-8");
    json_object_set_new(o, "next_offset", offset + n < total ? json_integer(offset + n) : json_null());
    return http_send_json(c, rq, 200, o);
}
