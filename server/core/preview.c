/* GET /v1/jobs/{id}/preview?frame=N&side=lr|sr: a PNG of one frame, the input (lr) or the
 * upscaled (sr, default) version. The pipeline's media threads write the PNGs into the
 * spool as the frames pass (pipeline.h "frame previews"); here the loop only opens the
 * file and lets MHD send it, so a preview blocks neither the loop nor the worker.
 *
 *   200 image/png          the frame is processed and kept
 *   409 conflict           not processed yet (Retry-After: 1); frame 0, or the frame this
 *                          request pinned, will be kept when it is
 *   404 not_found          out of range (the job finished with fewer frames), not kept
 *                          (passed before anyone asked, or another frame holds the pin), or
 *                          the job failed first
 *   400 bad_request        frame not a non-negative integer, side not lr|sr, other parameters */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "httpnum.h"
#include "srv.h"

struct arg_check {
    char bad[64];
};

static enum MHD_Result check_arg(void * cls, enum MHD_ValueKind kind, const char * key, const char * value) {
    (void)kind;
    (void)value;
    struct arg_check * c = cls;
    if (strcmp(key, "frame") != 0 && strcmp(key, "side") != 0 && !c->bad[0]) snprintf(c->bad, sizeof(c->bad), "%s", key);
    return MHD_YES;
}

enum MHD_Result srv_route_preview(struct srv_req * r) {
    struct srv_job * j = r->job;
    if (j->deleted) return srv_reply_error(r, SRV_E_NOT_FOUND, "no job %s", j->id);
    struct arg_check chk = { "" };
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, check_arg, &chk);
    if (chk.bad[0]) return srv_reply_error(r, SRV_E_BAD_REQUEST, "unknown query parameter '%.60s' (frame, side)", chk.bad);
    const char * fs = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "frame");
    const char * side = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "side");
    int64_t frame = 0;
    if (fs) {
        enum srv_num n = srv_parse_count(fs, &frame);
        if (n == SRV_NUM_INVALID)
            return srv_reply_error(r, SRV_E_BAD_REQUEST, "frame: expected a frame index (digits only), got '%.40s'", fs);
        if (n == SRV_NUM_TOO_LARGE) /* saturated: no video has 2^63 frames */
            return srv_reply_error(r, SRV_E_NOT_FOUND, "frame %.40s is out of range", fs);
    }
    bool sr = true;
    if (side && strcmp(side, "lr") == 0) sr = false;
    else if (side && strcmp(side, "sr") != 0)
        return srv_reply_error(r, SRV_E_BAD_REQUEST, "side: expected lr or sr, got '%.20s'", side);

    struct pl_job_status st;
    pl_job_get_status(j->pl, &st);
    char * path = NULL;
    enum pl_preview_state ps = pl_job_preview(j->pl, frame, sr, &path);
    if (ps == PL_PREVIEW_PENDING) {
        r->extra_hdr_name = MHD_HTTP_HEADER_RETRY_AFTER;
        snprintf(r->extra_hdr_value, sizeof(r->extra_hdr_value), "1");
        return srv_reply_error(r, SRV_E_CONFLICT, "frame %lld of job %s is not processed yet (%lld frames out so far, state %s)",
                               (long long)frame, j->id, (long long)st.frames_out, pl_job_state_name(st.state));
    }
    if (ps == PL_PREVIEW_NOT_KEPT) {
        if (st.state == PL_JOB_SUCCEEDED && frame >= st.frames_out)
            return srv_reply_error(r, SRV_E_NOT_FOUND, "frame %lld is out of range: job %s has %lld frames", (long long)frame,
                                   j->id, (long long)st.frames_out);
        if (pl_job_state_terminal(st.state) && st.state != PL_JOB_SUCCEEDED && frame >= st.frames_out)
            return srv_reply_error(r, SRV_E_NOT_FOUND, "job %s %s before frame %lld was processed", j->id,
                                   pl_job_state_name(st.state), (long long)frame);
        return srv_reply_error(r, SRV_E_NOT_FOUND,
                               "frame %lld of job %s was not kept: previews keep frame 0 and one frame asked for before it "
                               "was processed (also: none survive a restart)", (long long)frame, j->id);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        if (fd >= 0) close(fd);
        return srv_reply_error(r, SRV_E_NOT_FOUND, "the preview of frame %lld of job %s is gone", (long long)frame, j->id);
    }
    struct MHD_Response * resp = MHD_create_response_from_fd64((uint64_t)sb.st_size, fd); /* MHD closes fd */
    if (!resp) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "image/png");
    /* a kept frame never changes; private: it is one tenant's data */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "private, max-age=3600");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    return srv_queue(r, 200, resp);
}
