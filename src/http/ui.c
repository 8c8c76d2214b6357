/*
 * ui.c: serves the web page: GET / is web/index.html, GET /ui/<file> the
 * page's other files, all from the table compiled into the binary. The
 * page is same-origin only: a Content-Security-Policy keeps scripts,
 * styles, media and requests to this server.
 */
#include <string.h>

#include "internal.h"
#include "ui.h"

static const char csp[] = "default-src 'self'; script-src 'self'; style-src 'self'; "
                          "img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; "
                          "object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

enum MHD_Result route_ui(struct http_server *srv, struct MHD_Connection *c, struct request *rq)
{
    const char *name = rq->route == ROUTE_INDEX ? "index.html" : rq->file;
    const struct ui_asset *a;
    struct MHD_Response *r;
    if (!rq->bad_path)
        for (a = ui_assets; a->name; a++) {
            if (strcmp(a->name, name)) continue;
            r = MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
            if (!r) return MHD_NO;
            MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, a->content_type);
            MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
            MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
            MHD_add_response_header(r, "Content-Security-Policy", csp);
            MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
            return http_send_response(c, rq, 200, r);
        }
    return http_send_error(c, rq, 404, "not_found", NULL, NULL,
                           rq->route == ROUTE_INDEX ? "this build has no web page" : "no such file");
}
