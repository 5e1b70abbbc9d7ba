/* Re-creating jobs after a restart (pipeline.h, "restart"). The daemon's journal decides
 * what each job was and which of its spool files are trustworthy; this file only turns
 * that into a pl_job: a terminal job with its old status (and its stored output when it
 * succeeded), or a job that waits for (more) input, queued at once when it has some, to be
 * processed again from the first byte. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pl_internal.h"

static void restore_status(struct pl_job * j, const struct pl_job_status * st) {
    j->error_code = st->error_code;
    snprintf(j->error, sizeof(j->error), "%s", st->error);
    j->probed = st->probed;
    if (st->probed) {
        j->info.width = st->width;
        j->info.height = st->height;
        j->info.fps = st->in_fps;
        j->out_w = st->out_width;
        j->out_h = st->out_height;
    }
    j->frames_in = st->frames_in;
    j->frames_out = st->frames_out;
    j->chunks = st->chunks;
    if (st->created_at > 0) j->created_at = st->created_at;
    j->started_at = st->started_at;
    j->first_output_at = st->first_output_at;
    j->finished_at = st->finished_at;
}

enum infvsr_status pl_job_restore(struct pl_engine * e, const struct pl_job_spec * spec, const struct pl_job_restore * r,
                                  struct pl_job ** out, struct infvsr_err * err) {
    *out = NULL;
    enum infvsr_status st = pl_job_spec_check(spec, err);
    if (st != INFVSR_OK) return st;
    bool terminal = pl_job_state_terminal(r->state);
    if (!terminal && r->state != PL_JOB_CREATED)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "restore: state %s", pl_job_state_name(r->state));
    if (r->input_bytes < 0 || r->output_bytes < 0)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "restore: negative size");
    struct pl_job * j = NULL;
    st = pl_job_alloc(e, spec, terminal ? PL_INPUT_NONE : PL_INPUT_REOPEN, &j, err);
    if (st != INFVSR_OK) return st;

    if (terminal) {
        restore_status(j, &r->status);
        j->state = r->state;
        j->in_written = r->status.input_bytes;
        j->in_ended = true;
        j->dec_done = j->enc_done = j->wrk_done = true;
        if (r->state == PL_JOB_SUCCEEDED) {
            j->renamed = true; /* pl_job_output_fd serves <id>.out */
            j->out_created = true;
            atomic_store(&j->output_bytes, r->output_bytes);
        }
        *out = j;
        return INFVSR_OK;
    }

    /* Bytes beyond what the journal vouches for are not the client's upload: cut them. */
    if (ftruncate(j->in_fd, (off_t)r->input_bytes) != 0) {
        st = infvsr_err_set(err, INFVSR_ERR_IO, "restore: cannot truncate %.300s: %s", j->in_path, strerror(errno));
        pl_job_unref(j);
        return st;
    }
    if (r->status.created_at > 0) j->created_at = r->status.created_at;
    j->in_written = r->input_bytes;
    pthread_mutex_lock(&e->mu);
    e->non_terminal++;
    e->awaiting++;
    j->in_ended = r->input_ended;
    pl_job_link_live_locked(j);
    if (!pl_job_state_terminal(j->state)) {
        if (j->in_written > 0) pl_job_enqueue_locked(j);
        else if (j->in_ended)
            pl_job_finish_locked(j, PL_JOB_FAILED, PL_ERROR_UNPROCESSABLE_VIDEO, "the upload is empty (0 bytes)");
    }
    pthread_mutex_unlock(&e->mu);
    *out = j;
    return INFVSR_OK;
}
