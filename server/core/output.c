/* GET /v1/jobs/{id}/output and GET /v1/jobs/{id}/events.
 *
 * DESIGN
 * - Output while the job runs: the first byte decides the status. Until the encoder has
 *   written something the request waits suspended in the access handler (WAIT_OUTPUT), so a
 *   job that fails before any output still gets a proper error status. Then a chunked
 *   callback response reads the spool file with pread up to pl_job_output_bytes (bytes
 *   below that are final); when it has caught up it suspends (returning 0 only together
 *   with the suspend) until PL_EV_OUTPUT/PL_EV_FINISHED wake it. Success ends the stream
 *   normally; a failure after the first byte ends it with END_WITH_ERROR (the chunked
 *   encoding is left unterminated, so the client sees a truncated body).
 * - Output of a succeeded job: the stored file (the final rename happened), served from an
 *   fd with Content-Length, Accept-Ranges and single byte ranges (206/416).
 * - Events: text/event-stream; a `progress` event (the Job JSON) for every PL_EV_PROGRESS,
 *   `error` and `done` at the end, a comment every 15 s to keep proxies (and MHD's
 *   disconnect detection) going. Events are appended to a per-request buffer by the
 *   mailbox; the reader drains it. A slow reader loses intermediate progress events
 *   (the buffer is capped), never the final ones. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "httpnum.h"
#include "srv.h"

#define SSE_BUF_CAP (1u << 20)
#define SSE_KEEPALIVE_S 15.0

/* ---- output -------------------------------------------------------------------------------- */

static ssize_t output_reader(void * cls, uint64_t pos, char * buf, size_t max) {
    struct srv_req * r = cls;
    struct srv_job * j = r->job;
    if (r->timed_out || j->deleted) return MHD_CONTENT_READER_END_WITH_ERROR;
    for (int pass = 0; pass < 2; pass++) {
        int64_t avail = pl_job_output_bytes(j->pl);
        if ((int64_t)pos < avail) {
            size_t n = (size_t)(avail - (int64_t)pos) < max ? (size_t)(avail - (int64_t)pos) : max;
            ssize_t got = pread(r->out_fd, buf, n, (off_t)pos);
            if (got <= 0) {
                RLOG(ERROR, r->request_id, j->id, "pread of the output at %llu failed: %s", (unsigned long long)pos,
                     got < 0 ? strerror(errno) : "end of file");
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
            return got;
        }
        if (pass == 1) break;
        struct pl_job_status st;
        pl_job_get_status(j->pl, &st); /* then re-read the size: it may have grown */
        if (st.state == PL_JOB_SUCCEEDED) continue;
        if (pl_job_state_terminal(st.state)) {
            RLOG(WARN, r->request_id, j->id, "output stream ends early: job %s: %s", pl_job_state_name(st.state), st.error);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        srv_req_suspend(r, SRV_WAIT_OUTPUT);
        return 0;
    }
    return MHD_CONTENT_READER_END_OF_STREAM;
}

static enum MHD_Result serve_stored(struct srv_req * r) {
    struct srv_job * j = r->job;
    int64_t size = pl_job_output_bytes(j->pl);
    const char * mime = pl_container_mime(pl_job_spec_of(j->pl)->container);
    int64_t off = 0, len = size;
    enum srv_range rng = srv_parse_range(srv_header(r, MHD_HTTP_HEADER_RANGE), size, &off, &len);
    if (rng == SRV_RANGE_UNSATISFIABLE) {
        snprintf(r->extra_hdr_value, sizeof(r->extra_hdr_value), "bytes */%lld", (long long)size);
        r->extra_hdr_name = MHD_HTTP_HEADER_CONTENT_RANGE;
        return srv_reply_error(r, SRV_E_RANGE_NOT_SATISFIABLE, "Range '%.60s' is outside the %lld-byte output",
                               srv_header(r, MHD_HTTP_HEADER_RANGE), (long long)size);
    }
    struct MHD_Response * resp;
    if (len == 0) resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    else {
        int fd = pl_job_output_fd(j->pl);
        if (fd < 0) return srv_reply_error(r, SRV_E_INTERNAL, "the output file of job %s cannot be opened", j->id);
        resp = MHD_create_response_from_fd_at_offset64((uint64_t)len, fd, (uint64_t)off); /* MHD closes fd */
        if (!resp) close(fd);
    }
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, mime);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    if (rng == SRV_RANGE_OK) {
        char cr[96];
        snprintf(cr, sizeof(cr), "bytes %lld-%lld/%lld", (long long)off, (long long)(off + len - 1), (long long)size);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
    }
    return srv_queue(r, rng == SRV_RANGE_OK ? 206 : 200, resp);
}

enum MHD_Result srv_route_output(struct srv_req * r) {
    struct srv_job * j = r->job;
    if (j->deleted) return srv_reply_error(r, SRV_E_GONE, "job %s was deleted", j->id);
    struct pl_job_status st;
    pl_job_get_status(j->pl, &st);
    if (st.state == PL_JOB_SUCCEEDED) return serve_stored(r);
    if (pl_job_state_terminal(st.state)) {
        char msg[300];
        enum srv_error e = srv_job_error(j, &st, msg, sizeof(msg));
        return srv_reply_error(r, e, "job %s %s: %s", j->id, pl_job_state_name(st.state), msg);
    }
    if (pl_job_output_bytes(j->pl) <= 0 || (r->out_fd = pl_job_output_fd(j->pl)) < 0) {
        if (r->srv->stopping) return srv_reply_error(r, SRV_E_UNAVAILABLE, "the server is shutting down");
        if (srv_output_waited_out(r, srv_mono_now()))
            return srv_reply_error(r, SRV_E_CONFLICT, "job %s has no input: no upload started within input_wait_s=%d",
                                   j->id, r->srv->cfg.input_wait_s);
        if (r->timed_out)
            return srv_reply_error(r, SRV_E_UNAVAILABLE, "no output from job %s within max_suspend_s=%d", j->id,
                                   r->srv->cfg.max_suspend_s);
        srv_req_suspend(r, SRV_WAIT_OUTPUT);
        return MHD_YES;
    }
    struct MHD_Response * resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, output_reader, r, NULL);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, pl_container_mime(pl_job_spec_of(j->pl)->container));
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    r->phase = SRV_P_STREAM;
    RLOG(INFO, r->request_id, j->id, "streaming output while the job runs");
    return srv_queue(r, 200, resp);
}

/* A reader of a job that nobody uploads to must not hang for max_suspend_s (README's
 * example used to wait 300 s for a PUT that had been refused): it waits input_wait_s from
 * its start for an upload to begin. */
bool srv_output_waited_out(const struct srv_req * r, double now) {
    return r->job && r->job->upload_kind == SRV_UPLOAD_NONE && now - r->started_mono >= r->srv->cfg.input_wait_s;
}

/* ---- server-sent events ---------------------------------------------------------------------- */

static void sse_append(struct srv_req * r, const char * event, const char * data) {
    size_t need = strlen(event) + strlen(data) + 32;
    if (r->sse_len + need > r->sse_cap) {
        size_t cap = r->sse_cap ? r->sse_cap : 4096;
        while (cap < r->sse_len + need) cap *= 2;
        char * p = realloc(r->sse_buf, cap);
        if (!p) return;
        r->sse_buf = p;
        r->sse_cap = cap;
    }
    r->sse_len += (size_t)snprintf(r->sse_buf + r->sse_len, r->sse_cap - r->sse_len, "event: %s\ndata: %s\n\n", event, data);
}

/* Appends what the job's current state says: progress, and error/done once terminal. */
static void sse_push_state(struct srv * s, struct srv_req * r, bool progress) {
    struct srv_job * j = r->job;
    if (r->sse_finished) return;
    if (j->deleted) {
        char err[300];
        snprintf(err, sizeof(err), "{\"error\":{\"code\":\"gone\",\"message\":\"job %s was deleted\",\"request_id\":\"%s\"}}",
                 j->id, r->request_id);
        sse_append(r, "error", err);
        sse_append(r, "done", "{}");
        r->sse_finished = true;
        return;
    }
    struct pl_job_status st;
    pl_job_get_status(j->pl, &st);
    bool terminal = pl_job_state_terminal(st.state);
    char * json = srv_job_json(s, j);
    if (!json) return;
    if (progress && (terminal || r->sse_len - r->sse_off < SSE_BUF_CAP)) sse_append(r, "progress", json);
    if (terminal) {
        if (st.state != PL_JOB_SUCCEEDED) {
            char msg[300];
            enum srv_error e = srv_job_error(j, &st, msg, sizeof(msg));
            struct srv_buf b = { 0 };
            srv_buf_printf(&b, "{\"error\":{\"code\":\"%s\",\"message\":", srv_error_code(e));
            srv_buf_json_str(&b, msg);
            srv_buf_add(&b, ",\"request_id\":", 14);
            srv_buf_json_str(&b, r->request_id);
            srv_buf_add(&b, "}}", 2);
            if (b.p) sse_append(r, "error", b.p);
            free(b.p);
        }
        sse_append(r, "done", json);
        r->sse_finished = true;
    }
    free(json);
}

void srv_sse_on_event(struct srv * s, struct srv_job * j, unsigned events) {
    for (struct srv_link * l = j->sse.next; l != &j->sse; l = l->next) {
        struct srv_req * r = SRV_CONTAINER(l, struct srv_req, sse_link);
        if (j->deleted || (events & (PL_EV_PROGRESS | PL_EV_FINISHED))) sse_push_state(s, r, (events & PL_EV_PROGRESS) != 0);
        srv_req_wake(r);
    }
}

static ssize_t sse_reader(void * cls, uint64_t pos, char * buf, size_t max) {
    (void)pos;
    struct srv_req * r = cls;
    double now = srv_mono_now();
    if (r->sse_off < r->sse_len) {
        size_t n = r->sse_len - r->sse_off < max ? r->sse_len - r->sse_off : max;
        memcpy(buf, r->sse_buf + r->sse_off, n);
        r->sse_off += n;
        if (r->sse_off == r->sse_len) r->sse_off = r->sse_len = 0;
        r->sse_last_write_mono = now;
        return (ssize_t)n;
    }
    if (r->sse_finished || r->timed_out) return MHD_CONTENT_READER_END_OF_STREAM;
    if (now - r->sse_last_write_mono >= SSE_KEEPALIVE_S && max >= 14) {
        memcpy(buf, ": keep-alive\n\n", 14);
        r->sse_last_write_mono = now;
        return 14;
    }
    srv_req_suspend(r, SRV_WAIT_SSE);
    return 0;
}

enum MHD_Result srv_route_events(struct srv_req * r) {
    struct srv_job * j = r->job;
    if (j->deleted) return srv_reply_error(r, SRV_E_GONE, "job %s was deleted", j->id);
    struct MHD_Response * resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, sse_reader, r, NULL);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    /* the stream is the connection's last response: EOF marks its end for any client */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    srv_list_add(&j->sse, &r->sse_link);
    r->sse_last_write_mono = srv_mono_now();
    sse_push_state(r->srv, r, true);
    r->phase = SRV_P_STREAM;
    return srv_queue(r, 200, resp);
}

void srv_req_close_stream(struct srv_req * r) {
    if (r->out_fd >= 0) close(r->out_fd);
    r->out_fd = -1;
    srv_list_del(&r->sse_link);
    free(r->sse_buf);
    r->sse_buf = NULL;
    r->sse_len = r->sse_off = r->sse_cap = 0;
}
