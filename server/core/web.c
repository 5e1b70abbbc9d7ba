/* GET / and /ui/<file>: the web page (server/web/), compiled into the binary. web_ui = off
 * answers 404. Every file carries a strict Content-Security-Policy (no inline script or
 * style, requests only to this origin), nosniff, and an ETag: browsers revalidate
 * (Cache-Control: no-cache) and get 304 while the binary is the same. */
#include <string.h>

#include "srv.h"
#include "web.h"

static const char CSP[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; media-src 'self' blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

enum MHD_Result srv_route_web(struct srv_req * r) {
    if (strcmp(r->srv->cfg.web_ui, "on") != 0)
        return srv_reply_error(r, SRV_E_NOT_FOUND, "no route %s %s (web_ui is off)", r->method, r->path);
    const struct srv_web_asset * a = NULL;
    for (int i = 0; i < srv_web_n_assets; i++)
        if (strcmp(srv_web_assets[i].url, r->path) == 0) a = &srv_web_assets[i];
    if (!a) return srv_reply_error(r, SRV_E_NOT_FOUND, "no file %s", r->path);
    const char * inm = srv_header(r, MHD_HTTP_HEADER_IF_NONE_MATCH);
    bool fresh = inm && strstr(inm, a->etag) != NULL;
    struct MHD_Response * resp =
        fresh ? MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT)
              : MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    if (!fresh) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, a->mime);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, a->etag);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "Content-Security-Policy", CSP);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    return srv_queue(r, fresh ? 304 : 200, resp);
}
