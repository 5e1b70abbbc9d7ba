/* Job input: PUT /v1/jobs/{id}/input (one streaming request, chunked allowed) and tus 1.0.0
 * (OPTIONS/POST /v1/uploads, HEAD/PATCH/DELETE /v1/uploads/{id}; the upload id is the job
 * id). Both feed pl_job_input_write.
 *
 * DESIGN
 * - One input per job: the first PUT or tus creation claims it (job->upload_kind); a second
 *   one is 409. One writer at a time (job->uploader). A new PATCH or HEAD takes over
 *   from the older PATCH (its client gave up on it; the connection may be dead without a
 *   FIN, which MHD cannot see): the old one is superseded and closes (see take_over).
 * - Backpressure: pl_job_input_write accepts fewer bytes when the upload is input_lead_bytes
 *   ahead of the decoder; the rest stays in *upload_data_size and the connection is
 *   suspended until PL_EV_INPUT_SPACE (the mailbox wakes the job's waiters).
 * - Bytes accepted are on disk at once, so a tus PATCH that breaks keeps them (HEAD shows
 *   them). A PUT that breaks before its end cancels the job: its input is truncated.
 * - Errors after the first body byte cannot be answered at once (MHD), so the request
 *   swallows the rest of the body and answers at the end (srv_req_fail_later).
 * - At the end of the input the response waits (suspended) while the job is RUNNING but
 *   not yet probed, so that garbage bytes answer 422 deterministically. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "httpnum.h"
#include "srv.h"

#define TUS_EXTENSIONS "creation,creation-with-upload,termination,expiration"

static bool content_type_is(const char * ct, const char * want, bool prefix_only) {
    if (!ct) return false;
    size_t n = strlen(want);
    if (strncasecmp(ct, want, n) != 0) return false;
    if (prefix_only) return ct[n] != 0 && ct[n] != ';';
    return ct[n] == 0 || ct[n] == ';' || ct[n] == ' ';
}

/* Content-Length as a count: -1 when absent (chunked), INT64_MAX when it does not fit
 * (httpnum.h; MHD itself rejects a malformed one with 400 before we see the request). */
static int64_t content_length(struct srv_req * r) {
    int64_t n = 0;
    if (srv_parse_count(srv_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH), &n) == SRV_NUM_INVALID) return -1;
    return n;
}

static bool has_body(struct srv_req * r) {
    if (srv_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH)) return content_length(r) != 0;
    return srv_header(r, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
}

/* tus Upload-Metadata: "key b64,key b64,key" -> the decoded job_id. */
static bool metadata_job_id(const char * md, char * out, size_t out_len) {
    if (!md) return false;
    const char * p = md;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        const char * key = p;
        while (*p && *p != ' ' && *p != ',') p++;
        size_t kl = (size_t)(p - key);
        const char * val = NULL;
        size_t vl = 0;
        if (*p == ' ') {
            while (*p == ' ') p++;
            val = p;
            while (*p && *p != ',') p++;
            vl = (size_t)(p - val);
            while (vl > 0 && val[vl - 1] == ' ') vl--;
        }
        if (kl == 6 && strncmp(key, "job_id", 6) == 0 && val) {
            size_t n = 0;
            return srv_base64_decode(val, vl, out, out_len, &n) && n > 0 && strlen(out) == n;
        }
    }
    return false;
}

static double expires_unix(struct srv * s, struct srv_job * j) {
    return j->created_unix + (j->last_input_mono - j->created_mono) + s->cfg.upload_expiry_s;
}

static void add_tus_headers(struct srv_req * r, struct MHD_Response * resp) {
    struct srv_job * j = r->job;
    char v[64];
    snprintf(v, sizeof(v), "%lld", (long long)pl_job_input_offset(j->pl));
    MHD_add_response_header(resp, "Upload-Offset", v);
    if (!j->input_ended) {
        srv_http_date(expires_unix(r->srv, j), v, sizeof(v));
        MHD_add_response_header(resp, "Upload-Expires", v);
    }
}

/* ---- first call ------------------------------------------------------------------------------ */

static enum MHD_Result claim_checks(struct srv_req * r) {
    struct srv_job * j = r->job;
    if (r->srv->draining) return srv_reply_error(r, SRV_E_UNAVAILABLE, "the server is draining; no new uploads");
    if (j->upload_kind != SRV_UPLOAD_NONE)
        return srv_reply_error(r, SRV_E_CONFLICT, "job %s already has an input (%s upload)", j->id,
                               j->upload_kind == SRV_UPLOAD_PUT ? "PUT" : "tus");
    struct pl_job_status st;
    pl_job_get_status(j->pl, &st);
    if (pl_job_state_terminal(st.state))
        return srv_reply_error(r, SRV_E_CONFLICT, "job %s is %s", j->id, pl_job_state_name(st.state));
    return MHD_YES;
}

/* The PUT body's declared type. None (`curl -T -` sends none) or the generic
 * application/octet-stream leave it to the media reader, which sniffs the container from
 * the bytes (not a video: 422 unprocessable_video); a declared type must be a video one. */
static bool put_type_ok(const char * ct) {
    return !ct || !*ct || content_type_is(ct, "application/octet-stream", false) || content_type_is(ct, "video/", true) ||
           content_type_is(ct, "application/mp4", false);
}

static enum MHD_Result begin_put(struct srv_req * r) {
    const char * ct = srv_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!put_type_ok(ct))
        return srv_reply_error(r, SRV_E_UNSUPPORTED_MEDIA_TYPE,
                               "Content-Type: expected video/*, application/mp4, application/octet-stream or none, got '%.60s'",
                               ct);
    int64_t cl = content_length(r);
    if (cl > r->srv->cfg.max_upload_bytes)
        return srv_reply_error(r, SRV_E_PAYLOAD_TOO_LARGE, "Content-Length %.40s exceeds max_upload_bytes %lld",
                               srv_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH), (long long)r->srv->cfg.max_upload_bytes);
    enum MHD_Result rc = claim_checks(r);
    if (rc != MHD_YES || r->phase == SRV_P_DONE) return rc;
    r->job->upload_kind = SRV_UPLOAD_PUT;
    r->job->uploader = r;
    r->phase = SRV_P_UPLOAD;
    return MHD_YES;
}

static enum MHD_Result begin_tus_create(struct srv_req * r) {
    struct srv * s = r->srv;
    if (srv_header(r, "Upload-Defer-Length"))
        return srv_reply_error(r, SRV_E_BAD_REQUEST, "Upload-Defer-Length is not supported: send Upload-Length");
    int64_t len = 0;
    const char * ul = srv_header(r, "Upload-Length");
    if (srv_parse_count(ul, &len) == SRV_NUM_INVALID || len < 1)
        return srv_reply_error(r, SRV_E_BAD_REQUEST, "Upload-Length: expected an integer >= 1");
    if (len > s->cfg.max_upload_bytes) /* also one past INT64_MAX: saturated */
        return srv_reply_error(r, SRV_E_PAYLOAD_TOO_LARGE, "Upload-Length %.40s exceeds Tus-Max-Size %lld", ul,
                               (long long)s->cfg.max_upload_bytes);
    char id[SRV_JOB_ID_MAX], owner[64];
    if (!metadata_job_id(srv_header(r, "Upload-Metadata"), id, sizeof(id)))
        return srv_reply_error(r, SRV_E_BAD_REQUEST, "Upload-Metadata: expected 'job_id <base64 job id>'");
    if (!srv_job_id_parse(id, owner, sizeof(owner)))
        return srv_reply_error(r, SRV_E_NOT_FOUND, "no job '%.100s' (not a job id)", id);
    if (strcmp(owner, s->cfg.instance) != 0) return srv_reply_not_owner(r, owner);
    struct srv_job * j = srv_job_find(s, id);
    if (!j || !srv_req_sees_job(r, j)) return srv_reply_error(r, SRV_E_NOT_FOUND, "no job %s", id);
    r->job = srv_job_hold(j);
    bool body = has_body(r);
    if (body && !content_type_is(srv_header(r, MHD_HTTP_HEADER_CONTENT_TYPE), "application/offset+octet-stream", false))
        return srv_reply_error(r, SRV_E_UNSUPPORTED_MEDIA_TYPE, "creation-with-upload: Content-Type must be application/offset+octet-stream");
    if (content_length(r) > len)
        return srv_reply_error(r, SRV_E_PAYLOAD_TOO_LARGE, "Content-Length exceeds Upload-Length %lld", (long long)len);
    enum MHD_Result rc = claim_checks(r);
    if (rc != MHD_YES || r->phase == SRV_P_DONE) return rc;
    j->upload_kind = SRV_UPLOAD_TUS;
    j->tus_length = len;
    if (srv_persist_upload_created(s, j) != 0) { /* no 201 for an upload a restart would forget */
        j->upload_kind = SRV_UPLOAD_NONE;
        j->tus_length = -1;
        return srv_reply_error(r, SRV_E_UNAVAILABLE, "cannot record the upload in the spool");
    }
    j->last_input_mono = srv_mono_now();
    r->is_tus = true;
    if (body) {
        j->uploader = r;
        r->phase = SRV_P_UPLOAD;
    }
    RLOG(INFO, r->request_id, j->id, "tus upload created length=%lld", (long long)len);
    return MHD_YES;
}

/* A new PATCH or HEAD of a tus upload takes it over from the request writing it now (as
 * tusd's locks do): a client only sends one after it gave up on the old PATCH, whose
 * connection may be dead without a FIN (the daemon cannot tell, and min_upload_rate would
 * only notice after 30 s). The old request is superseded: it never writes another byte
 * (srv_upload_data/srv_upload_end close its connection with MHD_NO without touching the
 * job), so the offset HEAD reports is the one the next PATCH must start at. A suspended
 * old request is woken (srv_req_wake: resumed exactly once by srv_run_mhd, outside MHD's
 * callbacks); MHD then repeats its body call, which closes it. A running one gets a 1 s
 * connection timeout from the tick (srv_upload_tick), outside MHD's callbacks too. */
static void take_over(struct srv_req * r, struct srv_job * j) {
    struct srv_req * old = j->uploader;
    if (!old || old == r) return;
    RLOG(INFO, r->request_id, j->id, "%s takes over the upload from %s request %s (offset %lld)", r->method,
         old->suspended ? "suspended" : "running", old->request_id, (long long)pl_job_input_offset(j->pl));
    old->superseded = true;
    j->uploader = NULL;
    if (old->suspended) srv_req_wake(old);
}

static enum MHD_Result begin_tus_patch(struct srv_req * r) {
    struct srv_job * j = r->job;
    if (j->upload_kind != SRV_UPLOAD_TUS || j->tus_terminated)
        return srv_reply_error(r, SRV_E_NOT_FOUND, "no tus upload for job %s", j->id);
    if (!content_type_is(srv_header(r, MHD_HTTP_HEADER_CONTENT_TYPE), "application/offset+octet-stream", false))
        return srv_reply_error(r, SRV_E_UNSUPPORTED_MEDIA_TYPE, "PATCH: Content-Type must be application/offset+octet-stream");
    int64_t off = 0; /* one past INT64_MAX saturates and then cannot match: 409 below */
    if (srv_parse_count(srv_header(r, "Upload-Offset"), &off) == SRV_NUM_INVALID)
        return srv_reply_error(r, SRV_E_BAD_REQUEST, "Upload-Offset: expected an integer >= 0");
    take_over(r, j);
    int64_t cur = pl_job_input_offset(j->pl);
    if (off != cur)
        return srv_reply_error(r, SRV_E_OFFSET_MISMATCH, "Upload-Offset %.40s does not match the stored offset %lld",
                               srv_header(r, "Upload-Offset"), (long long)cur);
    if (j->input_ended) return srv_reply_error(r, SRV_E_CONFLICT, "the upload is already complete");
    int64_t cl = content_length(r);
    if (cl >= 0 && cl > j->tus_length - off) /* off == cur <= tus_length: no overflow */
        return srv_reply_error(r, SRV_E_PAYLOAD_TOO_LARGE, "Upload-Offset + Content-Length exceeds Upload-Length %lld",
                               (long long)j->tus_length);
    struct pl_job_status st;
    pl_job_get_status(j->pl, &st);
    if (pl_job_state_terminal(st.state)) {
        char msg[300];
        enum srv_error e = srv_job_error(j, &st, msg, sizeof(msg));
        return srv_reply_error(r, e, "job %s %s: %s", j->id, pl_job_state_name(st.state), msg);
    }
    j->uploader = r;
    r->is_tus = true;
    r->tus_offset_start = off;
    r->phase = SRV_P_UPLOAD;
    j->last_input_mono = srv_mono_now();
    return MHD_YES;
}

enum MHD_Result srv_upload_begin(struct srv_req * r) {
    if (r->route == SRV_R_JOB_INPUT) return begin_put(r);
    if (r->route == SRV_R_UPLOADS) return begin_tus_create(r);
    return begin_tus_patch(r);
}

/* ---- body ------------------------------------------------------------------------------------ */

static void fail_from_write(struct srv_req * r, int64_t rc, const struct infvsr_err * err) {
    struct srv_job * j = r->job;
    if (j->deleted) {
        srv_req_fail_later(r, SRV_E_GONE, "job %s was deleted during the upload", j->id);
        return;
    }
    switch ((enum infvsr_status)rc) {
    case INFVSR_ERR_BUSY:
        srv_req_fail_later(r, SRV_E_PAYLOAD_TOO_LARGE, "input exceeds max_upload_bytes %lld",
                           (long long)r->srv->cfg.max_upload_bytes);
        return;
    case INFVSR_ERR_CANCELLED: {
        struct pl_job_status st;
        pl_job_get_status(j->pl, &st);
        char msg[300];
        enum srv_error e = srv_job_error(j, &st, msg, sizeof(msg));
        srv_req_fail_later(r, e, "job %s %s: %s", j->id, pl_job_state_name(st.state), msg);
        return;
    }
    case INFVSR_ERR_INVALID_ARG:
        srv_req_fail_later(r, SRV_E_CONFLICT, "the input of job %s is already complete", j->id);
        return;
    default:
        srv_req_fail_later(r, SRV_E_INTERNAL, "storing the input failed: %s", err->msg);
        return;
    }
}

enum MHD_Result srv_upload_data(struct srv_req * r, const char * data, size_t * size) {
    if (r->superseded || r->cut_off || r->timed_out) return MHD_NO; /* close the connection */
    struct srv_job * j = r->job;
    if (j->deleted) { /* nobody wants the rest: close rather than swallow gigabytes */
        RLOG(INFO, r->request_id, j->id, "job deleted during the upload: closing the connection");
        return MHD_NO;
    }
    size_t want = *size;
    bool overflow = false;
    if (r->is_tus) {
        int64_t room = j->tus_length - pl_job_input_offset(j->pl);
        if ((int64_t)want > room) {
            want = room > 0 ? (size_t)room : 0;
            overflow = true;
        }
    }
    struct infvsr_err err = { 0 };
    int64_t n = want ? pl_job_input_write(j->pl, data, want, &err) : 0;
    if (n < 0) {
        fail_from_write(r, n, &err);
        *size = 0;
        return MHD_YES;
    }
    if (n > 0) {
        r->upload_written += n;
        j->last_input_mono = srv_mono_now();
        *size -= (size_t)n;
    }
    if ((size_t)n < want) { /* the decoder is input_lead_bytes behind: wait for space */
        srv_req_suspend(r, SRV_WAIT_INPUT);
        return MHD_YES;
    }
    if (overflow) {
        srv_req_fail_later(r, SRV_E_PAYLOAD_TOO_LARGE, "body goes beyond Upload-Length %lld", (long long)j->tus_length);
        *size = 0;
    }
    return MHD_YES;
}

/* ---- end of body --------------------------------------------------------------------------- */

/* After the input is complete: 0 = answer now, 1 = wait for the probe; e and msg are set when
 * the job failed. */
static int probe_verdict(struct srv_req * r, enum srv_error * e, char * msg, size_t len) {
    struct pl_job_status st;
    pl_job_get_status(r->job->pl, &st);
    *e = SRV_E_COUNT;
    if (pl_job_state_terminal(st.state)) {
        if (st.state != PL_JOB_SUCCEEDED) *e = srv_job_error(r->job, &st, msg, len);
        return 0;
    }
    if (st.state == PL_JOB_RUNNING && !st.probed) return 1;
    if (st.state == PL_JOB_CREATED) return 1; /* the pipeline has not picked the input up yet */
    return 0;
}

static enum MHD_Result reply_upload_ok(struct srv_req * r) {
    struct srv_job * j = r->job;
    struct MHD_Response * resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    int status = 204;
    if (r->is_tus) {
        add_tus_headers(r, resp);
        if (r->route == SRV_R_UPLOADS) {
            char loc[160];
            snprintf(loc, sizeof(loc), "/v1/uploads/%s", j->id);
            MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, loc);
            status = 201;
        }
    }
    return srv_queue(r, status, resp);
}

enum MHD_Result srv_upload_end(struct srv_req * r) {
    if (r->superseded) return MHD_NO; /* a newer PATCH owns the upload: close, touch nothing */
    struct srv_job * j = r->job;
    if (j->uploader == r) j->uploader = NULL;
    if (j->deleted) return srv_reply_error(r, SRV_E_GONE, "job %s was deleted during the upload", j->id);
    if (r->phase == SRV_P_UPLOAD && !r->is_tus && r->upload_written == 0) {
        j->upload_kind = SRV_UPLOAD_NONE; /* nothing stored: the client may PUT again */
        return srv_reply_error(r, SRV_E_BAD_REQUEST, "empty body: expected the input video");
    }
    bool complete = !r->is_tus || pl_job_input_offset(j->pl) >= j->tus_length;
    if (complete && !j->input_ended && r->phase == SRV_P_UPLOAD) {
        struct infvsr_err err = { 0 };
        if (pl_job_input_end(j->pl, &err) != INFVSR_OK) {
            struct pl_job_status st;
            pl_job_get_status(j->pl, &st);
            if (pl_job_state_terminal(st.state)) {
                char msg[300];
                enum srv_error e = srv_job_error(j, &st, msg, sizeof(msg));
                return srv_reply_error(r, e, "job %s %s: %s", j->id, pl_job_state_name(st.state), msg);
            }
            return srv_reply_error(r, SRV_E_INTERNAL, "ending the input failed: %s", err.msg);
        }
        j->input_ended = true;
        srv_persist_input_complete(r->srv, j);
        RLOG(INFO, r->request_id, j->id, "input complete bytes=%lld", (long long)pl_job_input_offset(j->pl));
    }
    if (r->phase == SRV_P_UPLOAD) r->phase = SRV_P_WAIT_PROBE;
    if (r->phase == SRV_P_WAIT_PROBE && j->input_ended) {
        enum srv_error e;
        char msg[300];
        int wait = probe_verdict(r, &e, msg, sizeof(msg));
        if (e != SRV_E_COUNT) return srv_reply_error(r, e, "job %s: %s", j->id, msg);
        if (wait && r->srv->stopping)
            return srv_reply_error(r, SRV_E_UNAVAILABLE, "the server is shutting down");
        if (wait && !r->timed_out) {
            srv_req_suspend(r, SRV_WAIT_PROBE);
            return MHD_YES;
        }
    }
    return reply_upload_ok(r);
}

void srv_upload_abort(struct srv_req * r, enum MHD_RequestTerminationCode toe) {
    struct srv_job * j = r->job;
    if (!j || j->uploader != r) return;
    j->uploader = NULL;
    if (r->is_tus) {
        RLOG(INFO, r->request_id, j->id, "PATCH ended early; %lld bytes of it kept (offset %lld)",
             (long long)r->upload_written, (long long)pl_job_input_offset(j->pl));
        if (!j->input_ended && !j->deleted && pl_job_input_offset(j->pl) >= j->tus_length) {
            struct infvsr_err err = { 0 };
            if (pl_job_input_end(j->pl, &err) == INFVSR_OK) {
                j->input_ended = true;
                srv_persist_input_complete(r->srv, j);
            }
        }
        return;
    }
    if (!j->input_ended && !j->deleted) {
        RLOG(WARN, r->request_id, j->id, "PUT ended before the end of its body (code %d): cancelling the job", (int)toe);
        pl_job_cancel(j->pl);
    }
}

/* ---- OPTIONS, HEAD, DELETE --------------------------------------------------------------------- */

enum MHD_Result srv_tus_options(struct srv_req * r) {
    struct MHD_Response * resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    char max[32];
    snprintf(max, sizeof(max), "%lld", (long long)r->srv->cfg.max_upload_bytes);
    MHD_add_response_header(resp, "Tus-Version", "1.0.0");
    MHD_add_response_header(resp, "Tus-Extension", TUS_EXTENSIONS);
    MHD_add_response_header(resp, "Tus-Max-Size", max);
    return srv_queue(r, 204, resp);
}

enum MHD_Result srv_tus_head(struct srv_req * r) {
    struct srv_job * j = r->job;
    if (j->upload_kind != SRV_UPLOAD_TUS || j->tus_terminated)
        return srv_reply_error(r, SRV_E_NOT_FOUND, "no tus upload for job %s", j->id);
    take_over(r, j); /* the offset answered is final: the old PATCH writes no more */
    struct MHD_Response * resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    char v[32];
    add_tus_headers(r, resp);
    snprintf(v, sizeof(v), "%lld", (long long)j->tus_length);
    MHD_add_response_header(resp, "Upload-Length", v);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    return srv_queue(r, 200, resp);
}

enum MHD_Result srv_tus_delete(struct srv_req * r) {
    struct srv_job * j = r->job;
    if (j->upload_kind != SRV_UPLOAD_TUS || j->tus_terminated)
        return srv_reply_error(r, SRV_E_NOT_FOUND, "no tus upload for job %s", j->id);
    j->tus_terminated = true;
    if (j->uploader && j->uploader->suspended) {
        j->uploader->superseded = true;
        srv_req_wake(j->uploader);
    }
    pl_job_cancel(j->pl);
    RLOG(INFO, r->request_id, j->id, "tus upload terminated: job cancelled");
    return srv_queue(r, 204, MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT));
}
