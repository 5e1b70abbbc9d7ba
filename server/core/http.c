/* The MHD access handler: request state, routing, the checks every route shares (framing,
 * auth, ownership, tus version), the one JSON error shape, and request completion.
 *
 * DESIGN: the request state machine (struct srv_req.phase)
 *
 *   first call (headers only)    route + method (404/405), framing (TE+CL 400), auth (401),
 *       |                        job id: owner (307/404), lookup (404), tus version (412),
 *       |                        route checks (415, 413 by Content-Length, 409 upload taken)
 *       |                        -> an error is queued at once (MHD then discards the body
 *       |                           and closes), or the phase is set:
 *       v
 *   NEW | BODY_JSON | UPLOAD ----- body pieces ----> BODY_JSON: append (413 -> DISCARD)
 *       |                                            UPLOAD: pl_job_input_write; accepts less
 *       |                                              -> suspend (wait INPUT_SPACE), the rest
 *       |                                              stays in *upload_data_size
 *       |                                            error mid-body -> DISCARD (swallow the
 *       |                                              rest, answer at the end: MHD cannot
 *       |                                              queue a response mid-body)
 *       v
 *   final call (body complete)   DISCARD: the pending error
 *                                UPLOAD: pl_job_input_end (when the upload is complete);
 *                                  RUNNING but not probed -> WAIT_PROBE (suspended) -> 204/422
 *                                GET output: nothing yet -> WAIT_OUTPUT (suspended), then a
 *                                  callback response -> STREAM
 *                                GET events: callback response -> STREAM
 *                                else: the route's response -> DONE
 *
 * A suspended request is resumed by the mailbox (job events), by the 1 s tick (max_suspend_s,
 * SSE keep-alive) or at shutdown; MHD then repeats the call it was suspended in (the body
 * piece it left, or the final call), so every handler re-evaluates from the job's state. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hdrcheck.h"
#include "httpnum.h"
#include "srv.h"

static const char * const route_names[SRV_R_COUNT] = {
    [SRV_R_UNKNOWN] = "unknown",          [SRV_R_JOBS] = "/v1/jobs",
    [SRV_R_JOB] = "/v1/jobs/{id}",        [SRV_R_JOB_INPUT] = "/v1/jobs/{id}/input",
    [SRV_R_JOB_OUTPUT] = "/v1/jobs/{id}/output", [SRV_R_JOB_EVENTS] = "/v1/jobs/{id}/events",
    [SRV_R_UPLOADS] = "/v1/uploads",      [SRV_R_UPLOAD] = "/v1/uploads/{id}",
    [SRV_R_MODELS] = "/v1/models",        [SRV_R_HEALTHZ] = "/healthz",
    [SRV_R_READYZ] = "/readyz",           [SRV_R_METRICS] = "/metrics",
    [SRV_R_JOB_PREVIEW] = "/v1/jobs/{id}/preview", [SRV_R_WEB] = "/ui",
};

const char * srv_route_name(enum srv_route r) { return r < SRV_R_COUNT ? route_names[r] : "unknown"; }

/* Methods each route answers; the order is the Allow header. */
static const char * const route_methods[SRV_R_COUNT] = {
    [SRV_R_JOBS] = "GET, POST",         [SRV_R_JOB] = "GET, DELETE",
    [SRV_R_JOB_INPUT] = "PUT",          [SRV_R_JOB_OUTPUT] = "GET",
    [SRV_R_JOB_EVENTS] = "GET",         [SRV_R_UPLOADS] = "OPTIONS, POST",
    [SRV_R_UPLOAD] = "HEAD, PATCH, DELETE", [SRV_R_MODELS] = "GET",
    [SRV_R_HEALTHZ] = "GET, HEAD",      [SRV_R_READYZ] = "GET, HEAD",
    [SRV_R_METRICS] = "GET",            [SRV_R_JOB_PREVIEW] = "GET",
    [SRV_R_WEB] = "GET",
};

static bool method_allowed(enum srv_route r, const char * m) {
    const char * list = route_methods[r];
    size_t n = strlen(m);
    for (const char * p = list; p && *p;) {
        const char * comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, m, n) == 0) return true;
        p = comma ? comma + 2 : p + len;
    }
    return false;
}

static bool is_tus_route(const struct srv_req * r) { return r->route == SRV_R_UPLOADS || r->route == SRV_R_UPLOAD; }

/* Splits the path into a route and (for job/upload routes) the id. */
static enum srv_route match_route(const char * url, char * id, size_t id_len) {
    id[0] = 0;
    if (strcmp(url, "/v1/jobs") == 0) return SRV_R_JOBS;
    if (strcmp(url, "/v1/uploads") == 0) return SRV_R_UPLOADS;
    if (strcmp(url, "/v1/models") == 0) return SRV_R_MODELS;
    if (strcmp(url, "/healthz") == 0) return SRV_R_HEALTHZ;
    if (strcmp(url, "/readyz") == 0) return SRV_R_READYZ;
    if (strcmp(url, "/metrics") == 0) return SRV_R_METRICS;
    if (strcmp(url, "/") == 0 || strncmp(url, "/ui/", 4) == 0) return SRV_R_WEB; /* web.c: 404s unknown files */
    const char * rest = NULL;
    bool uploads = false;
    if (strncmp(url, "/v1/jobs/", 9) == 0) rest = url + 9;
    else if (strncmp(url, "/v1/uploads/", 12) == 0) {
        rest = url + 12;
        uploads = true;
    }
    if (!rest || !*rest) return SRV_R_UNKNOWN;
    const char * slash = strchr(rest, '/');
    size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
    if (n == 0 || n >= id_len) return SRV_R_UNKNOWN;
    memcpy(id, rest, n);
    id[n] = 0;
    if (uploads) return slash ? SRV_R_UNKNOWN : SRV_R_UPLOAD;
    if (!slash) return SRV_R_JOB;
    if (strcmp(slash, "/input") == 0) return SRV_R_JOB_INPUT;
    if (strcmp(slash, "/output") == 0) return SRV_R_JOB_OUTPUT;
    if (strcmp(slash, "/events") == 0) return SRV_R_JOB_EVENTS;
    if (strcmp(slash, "/preview") == 0) return SRV_R_JOB_PREVIEW;
    return SRV_R_UNKNOWN;
}

const char * srv_header(struct srv_req * r, const char * name) {
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

/* ---- responses ---------------------------------------------------------------------------- */

enum MHD_Result srv_queue(struct srv_req * r, int status, struct MHD_Response * resp) {
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "X-Request-Id", r->request_id);
    if (r->extra_hdr_name) MHD_add_response_header(resp, r->extra_hdr_name, r->extra_hdr_value);
    if (r->close_conn) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (is_tus_route(r) && strcmp(r->method, "OPTIONS") != 0) MHD_add_response_header(resp, "Tus-Resumable", "1.0.0");
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    if (ret == MHD_YES) {
        r->status = status;
        if (r->phase != SRV_P_STREAM) r->phase = SRV_P_DONE;
    } else RLOG(ERROR, r->request_id, r->job ? r->job->id : NULL, "MHD_queue_response(%d) failed", status);
    return ret;
}

static struct MHD_Response * json_response(const char * json) {
    struct MHD_Response * resp =
        MHD_create_response_from_buffer(strlen(json), (void *)json, MHD_RESPMEM_MUST_COPY);
    if (resp) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    return resp;
}

enum MHD_Result srv_reply_json(struct srv_req * r, int status, const char * json) {
    return srv_queue(r, status, json_response(json));
}

static enum MHD_Result reply_error_v(struct srv_req * r, enum srv_error e, const char * fmt, va_list ap) {
    char msg[600];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    struct srv_buf b = { 0 };
    srv_buf_printf(&b, "{\"error\":{\"code\":\"%s\",\"message\":", srv_error_code(e));
    srv_buf_json_str(&b, msg);
    srv_buf_add(&b, ",\"request_id\":", 14);
    srv_buf_json_str(&b, r->request_id);
    srv_buf_add(&b, "}}", 2);
    struct MHD_Response * resp = b.p ? json_response(b.p) : NULL;
    free(b.p);
    if (!resp) return MHD_NO;
    int status = srv_error_status(e);
    if (status == 503 || status == 429) {
        char ra[16];
        snprintf(ra, sizeof(ra), "%d", r->retry_after_s > 0 ? r->retry_after_s : r->srv->cfg.retry_after_s);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if (status == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"infvsrd\"");
    if (status == 405 && route_methods[r->route]) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, route_methods[r->route]);
    if (status == 412) MHD_add_response_header(resp, "Tus-Version", "1.0.0");
    r->srv->errors_by_code[e]++;
    RLOG_AT(status >= 500 ? SRV_LOG_WARN : SRV_LOG_INFO, r->request_id, r->job ? r->job->id : NULL, "%s %s -> %d %s: %s",
         r->method, r->path, status, srv_error_code(e), msg);
    return srv_queue(r, status, resp);
}

enum MHD_Result srv_reply_error(struct srv_req * r, enum srv_error e, const char * fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    enum MHD_Result ret = reply_error_v(r, e, fmt, ap);
    va_end(ap);
    return ret;
}

void srv_req_fail_later(struct srv_req * r, enum srv_error e, const char * fmt, ...) {
    if (r->phase == SRV_P_DISCARD) return; /* keep the first error */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->pending_msg, sizeof(r->pending_msg), fmt, ap);
    va_end(ap);
    r->pending_err = e;
    r->phase = SRV_P_DISCARD;
}

/* ---- ownership routing (issue 9) ------------------------------------------------------------ */

struct query_ctx {
    struct srv_buf * b;
    bool first;
};

static void url_encode(struct srv_buf * b, const char * s) {
    for (const unsigned char * p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || strchr("-._~", *p)) srv_buf_add(b, (const char *)p, 1);
        else srv_buf_printf(b, "%%%02X", *p);
    }
}

static enum MHD_Result add_query_arg(void * cls, enum MHD_ValueKind kind, const char * key, const char * value) {
    (void)kind;
    struct query_ctx * q = cls;
    srv_buf_add(q->b, q->first ? "?" : "&", 1);
    q->first = false;
    url_encode(q->b, key);
    if (value) {
        srv_buf_add(q->b, "=", 1);
        url_encode(q->b, value);
    }
    return MHD_YES;
}

/* The job belongs to `owner`: 307 to its URL (same method and body), or 404 when no URL
 * for it is configured. */
enum MHD_Result srv_reply_not_owner(struct srv_req * r, const char * owner) {
    char base[300];
    if (!srv_config_peer_url(&r->srv->cfg, owner, base, sizeof(base)))
        return srv_reply_error(r, SRV_E_NOT_FOUND, "job belongs to instance %s, which this server does not know", owner);
    struct srv_buf loc = { 0 };
    srv_buf_add(&loc, base, strlen(base));
    srv_buf_add(&loc, r->path, strlen(r->path));
    struct query_ctx q = { &loc, true };
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, add_query_arg, &q);
    struct srv_buf b = { 0 };
    srv_buf_printf(&b, "{\"error\":{\"code\":\"moved\",\"message\":");
    char msg[400];
    snprintf(msg, sizeof(msg), "job belongs to instance %s: repeat the request at %s", owner, loc.p ? loc.p : "");
    srv_buf_json_str(&b, msg);
    srv_buf_add(&b, ",\"request_id\":", 14);
    srv_buf_json_str(&b, r->request_id);
    srv_buf_add(&b, "}}", 2);
    struct MHD_Response * resp = b.p && loc.p ? json_response(b.p) : NULL;
    if (resp) MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, loc.p);
    free(b.p);
    free(loc.p);
    r->srv->errors_by_code[SRV_E_MOVED]++;
    RLOG(INFO, r->request_id, NULL, "%s %s -> 307 owner %s", r->method, r->path, owner);
    return srv_queue(r, 307, resp);
}

/* ---- the first call ---------------------------------------------------------------------------- */

static bool auth_exempt(const struct srv_req * r) {
    /* the page's static files hold no data: the page asks for a token itself */
    return r->route == SRV_R_HEALTHZ || r->route == SRV_R_READYZ || r->route == SRV_R_METRICS || r->route == SRV_R_WEB ||
           (r->route == SRV_R_UPLOADS && strcmp(r->method, "OPTIONS") == 0);
}

static bool content_type_is(const char * ct, const char * want) {
    if (!ct) return false;
    size_t n = strlen(want);
    if (strncasecmp(ct, want, n) != 0) return false;
    return ct[n] == 0 || ct[n] == ';' || ct[n] == ' ';
}

static enum MHD_Result first_call(struct srv_req * r, const char * id) {
    struct srv * s = r->srv;
    const char * cl = srv_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if ((!auth_exempt(r) || r->route == SRV_R_WEB) && s->cfg.max_requests_per_s > 0) { /* the page's files count */
        char client[64];
        double wait;
        srv_client_address(r, client, sizeof(client));
        if (!srv_rate_take(s, client, srv_mono_now(), &wait)) {
            r->retry_after_s = (int)ceil(wait) > 1 ? (int)ceil(wait) : 1;
            return srv_reply_error(r, SRV_E_RATE_LIMITED, "client %s exceeds max_requests_per_s %d (burst %d)", client,
                                   s->cfg.max_requests_per_s, s->cfg.request_burst);
        }
    }
    if (r->route == SRV_R_UNKNOWN) return srv_reply_error(r, SRV_E_NOT_FOUND, "no route %s %s", r->method, r->path);
    if (!method_allowed(r->route, r->method))
        return srv_reply_error(r, SRV_E_METHOD_NOT_ALLOWED, "%s does not allow %s (allowed: %s)",
                               srv_route_name(r->route), r->method, route_methods[r->route]);
    if (!auth_exempt(r) && !srv_auth_request(r, srv_header(r, MHD_HTTP_HEADER_AUTHORIZATION)))
        return srv_reply_error(r, SRV_E_UNAUTHORIZED, "missing or invalid bearer token");
    if (is_tus_route(r) && strcmp(r->method, "OPTIONS") != 0) {
        const char * v = srv_header(r, "Tus-Resumable");
        if (!v || strcmp(v, "1.0.0") != 0)
            return srv_reply_error(r, SRV_E_UNSUPPORTED_TUS_VERSION, "Tus-Resumable: expected 1.0.0, got '%.20s'",
                                   v ? v : "(none)");
    }
    if (id[0]) {
        char owner[64];
        if (!srv_job_id_parse(id, owner, sizeof(owner)))
            return srv_reply_error(r, SRV_E_NOT_FOUND, "no job '%.100s' (not a job id)", id);
        if (strcmp(owner, s->cfg.instance) != 0) return srv_reply_not_owner(r, owner);
        struct srv_job * j = srv_job_find(s, id);
        if (!j || !srv_req_sees_job(r, j)) return srv_reply_error(r, SRV_E_NOT_FOUND, "no job %s", id); /* tenant.h */
        r->job = srv_job_hold(j);
    }
    switch (r->route) {
    case SRV_R_JOBS: {
        if (strcmp(r->method, "GET") == 0) return MHD_YES;
        if (!content_type_is(srv_header(r, MHD_HTTP_HEADER_CONTENT_TYPE), "application/json"))
            return srv_reply_error(r, SRV_E_UNSUPPORTED_MEDIA_TYPE, "Content-Type: expected application/json");
        int64_t n = 0;
        if (srv_parse_count(cl, &n) != SRV_NUM_INVALID && n > s->cfg.max_json_bytes) /* saturated: too large */
            return srv_reply_error(r, SRV_E_PAYLOAD_TOO_LARGE, "JSON body of %s bytes exceeds max_json_bytes %lld", cl,
                                   (long long)s->cfg.max_json_bytes);
        r->phase = SRV_P_BODY_JSON;
        return MHD_YES;
    }
    case SRV_R_JOB_INPUT: return srv_upload_begin(r);
    case SRV_R_UPLOADS:
        if (strcmp(r->method, "POST") == 0) return srv_upload_begin(r);
        return MHD_YES;
    case SRV_R_UPLOAD:
        if (strcmp(r->method, "PATCH") == 0) return srv_upload_begin(r);
        return MHD_YES;
    default: return MHD_YES;
    }
}

/* ---- body pieces and the final call --------------------------------------------------------- */

static enum MHD_Result body_call(struct srv_req * r, const char * data, size_t * size) {
    switch (r->phase) {
    case SRV_P_BODY_JSON:
        if (r->body_len + *size > (size_t)r->srv->cfg.max_json_bytes) {
            srv_req_fail_later(r, SRV_E_PAYLOAD_TOO_LARGE, "JSON body exceeds max_json_bytes %lld",
                               (long long)r->srv->cfg.max_json_bytes);
            free(r->body);
            r->body = NULL;
            r->body_len = r->body_cap = 0;
            *size = 0;
            return MHD_YES;
        }
        if (r->body_len + *size + 1 > r->body_cap) {
            size_t cap = r->body_cap ? r->body_cap * 2 : 4096;
            while (cap < r->body_len + *size + 1) cap *= 2;
            char * p = realloc(r->body, cap);
            if (!p) return MHD_NO;
            r->body = p;
            r->body_cap = cap;
        }
        memcpy(r->body + r->body_len, data, *size);
        r->body_len += *size;
        r->body[r->body_len] = 0;
        *size = 0;
        return MHD_YES;
    case SRV_P_UPLOAD: return srv_upload_data(r, data, size);
    default: { /* DISCARD, or a body on a route that takes none */
        /* The answer has to wait for the end of the body (MHD); swallow a bounded amount,
         * then give up and close: the client then sees a reset instead of a status. */
        int64_t cap = r->route == SRV_R_JOB_INPUT || is_tus_route(r) ? r->srv->cfg.input_lead_bytes : 1 << 20;
        r->discarded += (int64_t)*size;
        *size = 0;
        if (r->discarded > cap) {
            RLOG(INFO, r->request_id, r->job ? r->job->id : NULL,
                 "%lld bytes discarded after an error (%s): closing the connection", (long long)r->discarded,
                 r->phase == SRV_P_DISCARD ? srv_error_code(r->pending_err) : "no body expected");
            return MHD_NO;
        }
        return MHD_YES;
    }
    }
}

static enum MHD_Result final_call(struct srv_req * r) {
    if (r->phase == SRV_P_DISCARD) return srv_reply_error(r, r->pending_err, "%s", r->pending_msg);
    const char * m = r->method;
    switch (r->route) {
    case SRV_R_JOBS: return strcmp(m, "GET") == 0 ? srv_route_jobs_list(r) : srv_route_jobs_post(r);
    case SRV_R_JOB: return strcmp(m, "DELETE") == 0 ? srv_route_job_delete(r) : srv_route_job_get(r);
    case SRV_R_JOB_INPUT: return srv_upload_end(r);
    case SRV_R_JOB_OUTPUT: return srv_route_output(r);
    case SRV_R_JOB_EVENTS: return srv_route_events(r);
    case SRV_R_UPLOADS: return strcmp(m, "OPTIONS") == 0 ? srv_tus_options(r) : srv_upload_end(r);
    case SRV_R_UPLOAD:
        if (strcmp(m, "HEAD") == 0) return srv_tus_head(r);
        if (strcmp(m, "DELETE") == 0) return srv_tus_delete(r);
        return srv_upload_end(r);
    case SRV_R_MODELS: return srv_route_models(r);
    case SRV_R_HEALTHZ: return srv_route_healthz(r);
    case SRV_R_READYZ: return srv_route_readyz(r);
    case SRV_R_METRICS: return srv_route_metrics(r);
    case SRV_R_JOB_PREVIEW: return srv_route_preview(r);
    case SRV_R_WEB: return srv_route_web(r);
    default: return srv_reply_error(r, SRV_E_NOT_FOUND, "no route %s %s", r->method, r->path);
    }
}

static bool request_id_ok(const char * v) {
    size_t n = strlen(v);
    if (n < 1 || n > 64) return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)v[i]) || strchr("-_.:", v[i]))) return false;
    return true;
}

static struct srv_req * req_new(struct srv * s, struct MHD_Connection * c, const char * url, const char * method,
                                char * id, size_t id_len) {
    struct srv_req * r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    r->srv = s;
    r->conn = c;
    r->out_fd = -1;
    r->started_mono = srv_mono_now();
    r->rate_mark_mono = r->started_mono;
    snprintf(r->path, sizeof(r->path), "%s", url);
    for (char * p = r->path; *p; p++) /* a decoded %0A must not forge log lines */
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    /* X-HTTP-Method-Override (tus clients without PATCH/DELETE) on POST only */
    const char * ov = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-HTTP-Method-Override");
    if (ov && strcmp(method, "POST") == 0 &&
        (strcmp(ov, "PATCH") == 0 || strcmp(ov, "DELETE") == 0 || strcmp(ov, "HEAD") == 0))
        method = ov;
    snprintf(r->method, sizeof(r->method), "%s", method);
    const char * rid = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
    if (rid && request_id_ok(rid)) snprintf(r->request_id, sizeof(r->request_id), "%s", rid);
    else srv_request_id_new(r->request_id);
    r->route = match_route(url, id, id_len);
    srv_list_add(&s->reqs, &r->all_link);
    return r;
}

static enum MHD_Result check_field(void * cls, enum MHD_ValueKind kind, const char * key, size_t key_size,
                                   const char * value, size_t value_size) {
    (void)kind;
    srv_hdr_check_field(cls, key, key_size, value ? value : "", value ? value_size : 0);
    return MHD_YES;
}

/* The header section as MHD parsed it in place: [method, method + header size). See
 * hdrcheck.h for what is checked and why. */
static bool headers_ok(struct MHD_Connection * c, const char * method, char * msg, size_t len) {
    const union MHD_ConnectionInfo * hi = MHD_get_connection_info(c, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    struct srv_hdr_check chk;
    srv_hdr_check_begin(&chk, hi ? method : NULL, hi ? hi->header_size : 0);
    MHD_get_connection_values_n(c, MHD_HEADER_KIND, check_field, &chk);
    if (srv_hdr_check_end(&chk)) return true;
    snprintf(msg, len, "%s", chk.msg);
    return false;
}

static bool is_probe(const struct srv_req * r) {
    return r->route == SRV_R_HEALTHZ || r->route == SRV_R_READYZ || r->route == SRV_R_METRICS;
}

enum MHD_Result srv_access_cb(void * cls, struct MHD_Connection * c, const char * url, const char * method,
                              const char * version, const char * upload_data, size_t * upload_data_size,
                              void ** con_cls) {
    struct srv * s = cls;
    struct srv_req * r = *con_cls;
    if (!r) {
        char id[SRV_JOB_ID_MAX + 32], why[200];
        bool hdr_ok = headers_ok(c, method, why, sizeof(why)); /* before req_new: `method` is MHD's */
        r = req_new(s, c, url, method, id, sizeof(id));
        if (!r) return MHD_NO;
        *con_cls = r;
        RLOG(DEBUG, r->request_id, NULL, "%s %s", r->method, r->path);
        bool within_limit = srv_conn_request_begin(r);
        if (!hdr_ok) { /* where this request ends is in doubt: nothing after it is read */
            r->close_conn = true;
            return srv_reply_error(r, SRV_E_BAD_REQUEST, "%s", why);
        }
        /* RFC 9112 3.2: an HTTP/1.1 request without Host is 400. MHD's strict mode would
         * check this too, but it also rejects much more (whitespace, bare LF). */
        if (version && strcmp(version, MHD_HTTP_VERSION_1_1) == 0 && !srv_header(r, MHD_HTTP_HEADER_HOST))
            return srv_reply_error(r, SRV_E_BAD_REQUEST, "HTTP/1.1 request without a Host header");
        if (!within_limit && !is_probe(r)) {
            r->close_conn = true;
            r->retry_after_s = s->cfg.retry_after_s;
            s->conn_closes[SRV_CONN_CLOSE_PER_CLIENT]++;
            return srv_reply_error(r, SRV_E_RATE_LIMITED, "client %s holds more than max_connections_per_ip=%d connections",
                                   r->client, s->cfg.max_connections_per_ip);
        }
        return first_call(r, id);
    }
    if (*upload_data_size > 0) return body_call(r, upload_data, upload_data_size);
    return final_call(r);
}

/* ---- completion -------------------------------------------------------------------------------- */

void srv_completed_cb(void * cls, struct MHD_Connection * c, void ** con_cls, enum MHD_RequestTerminationCode toe) {
    (void)c;
    struct srv * s = cls;
    struct srv_req * r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    int status = r->status ? r->status : 499; /* no response: the client went away first */
    srv_metrics_count_http(s, r->method, r->route, status);
    bool clean = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK;
    RLOG_AT(clean ? SRV_LOG_INFO : SRV_LOG_WARN, r->request_id, r->job ? r->job->id : NULL,
         "%s %s %d %.1fms%s%s", r->method, r->path, status, (srv_mono_now() - r->started_mono) * 1e3,
         clean ? "" : " terminated=",
         clean ? "" : toe == MHD_REQUEST_TERMINATED_WITH_ERROR ? "error"
                    : toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "timeout"
                    : toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN ? "shutdown"
                    : toe == MHD_REQUEST_TERMINATED_READ_ERROR ? "read_error"
                    : toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT ? "client_abort" : "other");
    srv_upload_abort(r, toe);
    srv_conn_request_end(r);
    if (r->suspended) { /* only at MHD_stop_daemon, which we avoid; keep the count true */
        r->suspended = false;
        s->n_suspended--;
    }
    srv_list_del(&r->wait_link);
    srv_list_del(&r->wake_link);
    srv_list_del(&r->all_link);
    srv_req_close_stream(r);
    srv_job_drop(s, r->job);
    free(r->body);
    free(r);
}
