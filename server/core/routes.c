/* Routes that answer at once: job creation, status, deletion, models, health, metrics. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpnum.h"
#include "srv.h"

static bool idem_key_ok(const char * k) {
    size_t n = strlen(k);
    if (n < 1 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

static enum MHD_Result reply_job(struct srv_req * r, struct srv_job * j, int status) {
    char * json = srv_job_json(r->srv, j);
    if (!json) return srv_reply_error(r, SRV_E_INTERNAL, "out of memory");
    struct MHD_Response * resp = MHD_create_response_from_buffer(strlen(json), json, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(json);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (status == 201 || status == 200) {
        char loc[160];
        snprintf(loc, sizeof(loc), "/v1/jobs/%s", j->id);
        if (r->route == SRV_R_JOBS) MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, loc);
    }
    return srv_queue(r, status, resp);
}

/* The client's numeric address ("" when MHD cannot tell): the peer, or the address a
 * trusted proxy names in X-Forwarded-For (resolved once per request, conns.c). */
void srv_client_address(struct srv_req * r, char * out, size_t len) { snprintf(out, len, "%s", r->client); }

/* Non-terminal jobs created from `client` (the per-client admission limit). */
static int client_jobs(struct srv * s, const char * client) {
    int n = 0;
    for (struct srv_link * l = s->jobs_all.next; l != &s->jobs_all; l = l->next) {
        struct srv_job * j = SRV_CONTAINER(l, struct srv_job, all_link);
        if (j->deleted || strcmp(j->client, client) != 0) continue;
        struct pl_job_status st;
        pl_job_get_status(j->pl, &st);
        if (!pl_job_state_terminal(st.state)) n++;
    }
    return n;
}

enum MHD_Result srv_route_jobs_post(struct srv_req * r) {
    struct srv * s = r->srv;
    if (s->draining) return srv_reply_error(r, SRV_E_UNAVAILABLE, "the server is draining");
    struct pl_engine_health h;
    pl_engine_health(s->engine, &h);
    const char * names[] = { s->cfg.model, h.model_name, NULL };
    struct srv_spec_result sp;
    if (!srv_spec_parse(r->body, r->body_len, names, s->cfg.max_upload_bytes, &sp))
        return srv_reply_error(r, sp.err, "%s", sp.msg);
    enum MHD_Result ret;
    const char * key = srv_header(r, "Idempotency-Key");
    if (key && !idem_key_ok(key)) {
        ret = srv_reply_error(r, SRV_E_BAD_REQUEST, "Idempotency-Key: expected 1-64 of [A-Za-z0-9_.-]");
        goto out;
    }
    if (key) {
        struct srv_job * old = srv_job_find_idem(s, r->tenant, key);
        if (old) {
            if (strcmp(old->spec_json, sp.canonical) == 0) ret = reply_job(r, old, 200);
            else ret = srv_reply_error(r, SRV_E_CONFLICT, "Idempotency-Key '%s' was used for job %s with a different spec",
                                       key, old->id);
            goto out;
        }
    }
    if (!srv_job_id_new(s->cfg.instance, sp.spec.id, sizeof(sp.spec.id))) {
        ret = srv_reply_error(r, SRV_E_INTERNAL, "no entropy for a job id");
        goto out;
    }
    struct infvsr_err err = { 0 };
    if (pl_job_spec_check(&sp.spec, &err) != INFVSR_OK) {
        ret = srv_reply_error(r, SRV_E_BAD_REQUEST, "%s", err.msg);
        goto out;
    }
    char client[sizeof(((struct srv_job *)0)->client)];
    srv_client_address(r, client, sizeof(client));
    if (s->cfg.max_jobs_per_client > 0 && client_jobs(s, client) >= s->cfg.max_jobs_per_client) {
        ret = srv_reply_error(r, SRV_E_RATE_LIMITED, "client %s already holds %d unfinished jobs (max_jobs_per_client)",
                              client, s->cfg.max_jobs_per_client);
        goto out;
    }
    if (srv_tenant_awaiting_jobs(s, r->tenant) >= s->cfg.max_awaiting_jobs_per_tenant) {
        s->tenant_refusals++;
        ret = srv_reply_error(r, SRV_E_RATE_LIMITED,
                              "this tenant already holds %d jobs without input (max_awaiting_jobs_per_tenant): upload to "
                              "them or delete them first", s->cfg.max_awaiting_jobs_per_tenant);
        goto out;
    }
    if (h.state != PL_ENGINE_READY) {
        ret = srv_reply_error(r, SRV_E_UNAVAILABLE, "the model is %s%s%s",
                              h.state == PL_ENGINE_LOADING ? "loading" : "not available", h.error[0] ? ": " : "", h.error);
        goto out;
    }
    struct pl_job * pl = NULL;
    enum infvsr_status st = pl_job_create(s->engine, &sp.spec, &pl, &err);
    if (st == INFVSR_ERR_BUSY) {
        ret = srv_reply_error(r, SRV_E_UNAVAILABLE, "admission limit reached: %s", err.msg);
        goto out;
    }
    if (st != INFVSR_OK) {
        ret = srv_reply_error(r, st == INFVSR_ERR_INVALID_ARG ? SRV_E_BAD_REQUEST : SRV_E_INTERNAL, "%s", err.msg);
        goto out;
    }
    struct srv_job * j = srv_job_new(s, sp.spec.id, pl, sp.canonical, key);
    if (!j) {
        pl_job_delete(pl);
        pl_job_unref(pl);
        ret = srv_reply_error(r, SRV_E_INTERNAL, "out of memory");
        goto out;
    }
    j->expected_bytes = sp.expected_bytes;
    snprintf(j->client, sizeof(j->client), "%s", client);
    snprintf(j->tenant, sizeof(j->tenant), "%s", r->tenant);
    if (srv_persist_created(s, j) != 0) { /* no 201 for a job a restart would forget */
        int e = errno;
        srv_job_remove(s, j, "journal write failed");
        ret = srv_reply_error(r, SRV_E_UNAVAILABLE, "cannot record the job in the spool: %s", strerror(e));
        goto out;
    }
    RLOG(INFO, r->request_id, j->id, "job created tenant='%s' spec=%s", r->tenant, sp.canonical);
    ret = reply_job(r, j, 201);
out:
    free(sp.canonical);
    return ret;
}

enum MHD_Result srv_route_job_get(struct srv_req * r) {
    if (r->job->deleted) return srv_reply_error(r, SRV_E_NOT_FOUND, "no job %s", r->job->id);
    return reply_job(r, r->job, 200);
}

/* GET /v1/jobs?limit=N&before=CURSOR: the jobs this request may see (its tenant's, or all
 * for an admin), newest first, at most `limit` (default 20, at most 100) per page;
 * `next` is the cursor of the following page (null on the last). The cursor is a job's
 * creation sequence number in this process: pages stay consistent while jobs come and go. */
enum MHD_Result srv_route_jobs_list(struct srv_req * r) {
    struct srv * s = r->srv;
    const char * ls = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "limit");
    const char * bs = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "before");
    int64_t limit = 20, before = INT64_MAX;
    if (ls && (srv_parse_count(ls, &limit) != SRV_NUM_OK || limit < 1 || limit > 100))
        return srv_reply_error(r, SRV_E_BAD_REQUEST, "limit: expected an integer in [1, 100], got '%.40s'", ls);
    if (bs && srv_parse_count(bs, &before) == SRV_NUM_INVALID) /* saturated = past every job: fine */
        return srv_reply_error(r, SRV_E_BAD_REQUEST, "before: expected a cursor (digits) from 'next', got '%.40s'", bs);
    struct srv_buf b = { 0 };
    srv_buf_add(&b, "{\"jobs\":[", 9);
    int64_t n = 0;
    uint64_t last = 0;
    bool more = false;
    for (struct srv_link * l = s->jobs_all.prev; l != &s->jobs_all; l = l->prev) { /* newest first */
        struct srv_job * j = SRV_CONTAINER(l, struct srv_job, all_link);
        if (j->deleted || j->seq >= (uint64_t)before || !srv_req_sees_job(r, j)) continue;
        if (n == limit) {
            more = true;
            break;
        }
        char * json = srv_job_json(s, j);
        if (!json) {
            free(b.p);
            return srv_reply_error(r, SRV_E_INTERNAL, "out of memory");
        }
        if (n++) srv_buf_add(&b, ",", 1);
        srv_buf_add(&b, json, strlen(json));
        free(json);
        last = j->seq;
    }
    if (more) srv_buf_printf(&b, "],\"next\":\"%llu\"}", (unsigned long long)last);
    else srv_buf_add(&b, "],\"next\":null}", 14);
    struct MHD_Response * resp = b.p ? MHD_create_response_from_buffer(b.len, b.p, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!resp) {
        free(b.p);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    return srv_queue(r, 200, resp);
}

enum MHD_Result srv_route_job_delete(struct srv_req * r) {
    /* the record goes first and durably: after the 204 no restart brings the job back */
    if (srv_persist_removed(r->srv, r->job) != 0)
        return srv_reply_error(r, SRV_E_INTERNAL, "cannot remove the job's record from the spool: %s", strerror(errno));
    srv_job_remove(r->srv, r->job, "DELETE");
    return srv_queue(r, 204, MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT));
}

enum MHD_Result srv_route_models(struct srv_req * r) {
    struct pl_engine_health h;
    pl_engine_health(r->srv->engine, &h);
    struct srv_buf b = { 0 };
    srv_buf_add(&b, "{\"models\":[{\"name\":", 19);
    srv_buf_json_str(&b, h.model_name[0] ? h.model_name : r->srv->cfg.model);
    srv_buf_printf(&b, ",\"ready\":%s,\"backend\":", h.state == PL_ENGINE_READY ? "true" : "false");
    srv_buf_json_str(&b, h.n_workers > 0 ? h.workers[0].backend : "");
    srv_buf_add(&b, ",\"description\":", 15);
    srv_buf_json_str(&b, strcmp(r->srv->cfg.model, "null") == 0 ? "identity (nearest-neighbour x scale), no network"
                                                                 : "InfVSR streaming video super-resolution");
    srv_buf_add(&b, ",\"workers\":", 11);
    srv_workers_json(&b, &h);
    srv_buf_add(&b, "}]}", 3);
    enum MHD_Result ret = b.p ? srv_reply_json(r, 200, b.p) : MHD_NO;
    free(b.p);
    return ret;
}

/* Health: "ok" | "loading" | "draining" | "unhealthy" and the workers. */
static enum MHD_Result reply_health(struct srv_req * r, bool readiness) {
    struct srv * s = r->srv;
    struct pl_engine_health h;
    pl_engine_health(s->engine, &h);
    /* ready while any worker is (the engine is READY); "degraded" when some have failed */
    bool some_failed = false;
    for (int i = 0; i < h.n_workers && i < PL_MAX_WORKERS; i++)
        if (h.workers[i].loaded && !h.workers[i].healthy) some_failed = true;
    const char * status = h.state == PL_ENGINE_FAILED ? "unhealthy"
                          : s->draining               ? "draining"
                          : h.state == PL_ENGINE_LOADING ? "loading"
                          : some_failed               ? "degraded"
                                                      : "ok";
    bool good = readiness ? h.state == PL_ENGINE_READY && !s->draining : h.state != PL_ENGINE_FAILED;
    struct srv_buf b = { 0 };
    srv_buf_printf(&b, "{\"status\":\"%s\",\"model\":", status);
    srv_buf_json_str(&b, h.model_name);
    srv_buf_printf(&b, ",\"jobs_queued\":%d,\"jobs_active\":%d,\"jobs_awaiting_input\":%d", h.jobs_queued,
                   h.jobs_active, h.jobs_awaiting_input);
    if (h.error[0]) {
        srv_buf_add(&b, ",\"error\":", 9);
        srv_buf_json_str(&b, h.error);
    }
    srv_buf_add(&b, ",\"workers\":", 11);
    srv_workers_json(&b, &h);
    srv_buf_add(&b, "}", 1);
    struct MHD_Response * resp = b.p ? MHD_create_response_from_buffer(b.len, b.p, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!resp) {
        free(b.p);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (!good) {
        char ra[16];
        snprintf(ra, sizeof(ra), "%d", s->cfg.retry_after_s);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    return srv_queue(r, good ? 200 : 503, resp);
}

enum MHD_Result srv_route_healthz(struct srv_req * r) { return reply_health(r, false); }
enum MHD_Result srv_route_readyz(struct srv_req * r) { return reply_health(r, true); }

enum MHD_Result srv_route_metrics(struct srv_req * r) {
    size_t len = 0;
    char * text = srv_metrics_render(r->srv, &len);
    if (!text) return srv_reply_error(r, SRV_E_INTERNAL, "out of memory");
    struct MHD_Response * resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
    return srv_queue(r, 200, resp);
}
