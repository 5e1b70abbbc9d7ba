/* Jobs as the loop sees them: admission, references, input bytes, output file, status,
 * cancel and delete (pipeline.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pl_internal.h"

static char * join_path(const char * dir, const char * id, const char * ext) {
    size_t n = strlen(dir) + strlen(id) + strlen(ext) + 2;
    char * p = malloc(n);
    if (p) snprintf(p, n, "%s/%s%s", dir, id, ext);
    return p;
}

void pl_job_free(struct pl_job * j) {
    if (j->deleted) {
        unlink(j->in_path);
        unlink(j->part_path);
        unlink(j->out_path);
        for (int slot = 0; slot < 2; slot++)
            for (int sr = 0; sr < 2; sr++) {
                char * pv = pl_preview_path(j, slot, sr);
                if (pv) unlink(pv);
                free(pv);
            }
    }
    if (j->in_fd >= 0) close(j->in_fd);
    if (j->writer) infvsr_media_writer_abort(j->writer); /* never the case: the threads hand it over */
    if (j->out_fd >= 0) close(j->out_fd);
    pl_ring_free(&j->lr);
    pl_ring_free(&j->sr);
    while (j->pk_head) {
        struct pl_packet_node * n = j->pk_head;
        j->pk_head = n->next;
        infvsr_media_packet_free(n->p);
        free(n);
    }
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->in_mu);
    free(j->in_path);
    free(j->out_path);
    free(j->part_path);
    struct pl_engine * e = j->e;
    free(j);
    pl_engine_unref(e);
}

enum infvsr_status pl_job_alloc(struct pl_engine * e, const struct pl_job_spec * spec, enum pl_input_open in,
                                struct pl_job ** out, struct infvsr_err * err) {
    *out = NULL;
    enum infvsr_status st = INFVSR_OK;
    struct pl_job * j = calloc(1, sizeof(*j));
    if (j) {
        j->spec = *spec;
        j->in_fd = -1;
        j->out_fd = -1;
        atomic_init(&j->preview_pin, -1);
        j->in_path = join_path(e->spool_dir, spec->id, ".in");
        j->out_path = join_path(e->spool_dir, spec->id, ".out");
        j->part_path = join_path(e->spool_dir, spec->id, ".out.part");
    }
    if (!j || !j->in_path || !j->out_path || !j->part_path) {
        st = infvsr_err_set(err, INFVSR_ERR_NOMEM, "job: out of memory");
    } else if (in == PL_INPUT_NONE) {
        j->in_dropped = true;
    } else {
        /* O_EXCL: an id whose input already exists belongs to another job. Every spool
         * file is 0600: inputs and outputs are the clients' data, only the daemon reads them. */
        j->in_fd = open(j->in_path, O_RDWR | O_CREAT | O_CLOEXEC | (in == PL_INPUT_NEW ? O_EXCL : 0), 0600);
        if (j->in_fd < 0)
            st = infvsr_err_set(err, errno == EEXIST ? INFVSR_ERR_INVALID_ARG : INFVSR_ERR_IO,
                                "cannot create the input spool file %.300s: %s", j->in_path, strerror(errno));
    }
    if (st != INFVSR_OK) {
        if (j) {
            free(j->in_path);
            free(j->out_path);
            free(j->part_path);
            free(j);
        }
        return st;
    }
    j->e = e;
    atomic_fetch_add(&e->refs, 1);
    atomic_init(&j->refs, 1);
    atomic_init(&j->stop, false);
    atomic_init(&j->output_bytes, 0);
    pthread_mutex_init(&j->in_mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->state = PL_JOB_CREATED;
    j->created_at = pl_now();
    *out = j;
    return INFVSR_OK;
}

void pl_job_link_live_locked(struct pl_job * j) {
    struct pl_engine * e = j->e;
    j->live_next = e->live; /* a stop that raced with us is caught here: the job ends cancelled */
    if (e->live) e->live->live_prev = j;
    e->live = j;
    if (e->stopping) pl_job_finish_locked(j, PL_JOB_CANCELLED, PL_ERROR_CANCELLED, "cancelled: the server is shutting down");
}

enum infvsr_status pl_job_create(struct pl_engine * e, const struct pl_job_spec * spec, struct pl_job ** out,
                                 struct infvsr_err * err) {
    *out = NULL;
    enum infvsr_status st = pl_job_spec_check(spec, err);
    if (st != INFVSR_OK) return st;
    pthread_mutex_lock(&e->mu);
    int limit = e->n_workers * e->o.max_active_per_worker + e->o.max_queued_jobs;
    int held = e->non_terminal - e->awaiting; /* jobs with input: queued or running */
    if (e->stopping || e->state != PL_ENGINE_READY) {
        const char * why = e->stopping ? "the server is shutting down"
                         : e->state == PL_ENGINE_LOADING ? "the model is still loading"
                                                         : "the model failed to load";
        pthread_mutex_unlock(&e->mu);
        return infvsr_err_set(err, INFVSR_ERR_BUSY, "not accepting jobs: %s", why);
    }
    if (held >= limit) {
        pthread_mutex_unlock(&e->mu);
        return infvsr_err_set(err, INFVSR_ERR_BUSY, "too many jobs: %d jobs with input are queued or running (limit %d)",
                              held, limit);
    }
    e->non_terminal++; /* reserved; given back below on failure */
    e->awaiting++;
    pthread_mutex_unlock(&e->mu);

    struct pl_job * j = NULL;
    st = pl_job_alloc(e, spec, PL_INPUT_NEW, &j, err);
    pthread_mutex_lock(&e->mu);
    if (st != INFVSR_OK) {
        e->non_terminal--;
        e->awaiting--;
    } else {
        pl_job_link_live_locked(j);
    }
    pthread_mutex_unlock(&e->mu);
    if (st != INFVSR_OK) return st;
    *out = j;
    return INFVSR_OK;
}

struct pl_job * pl_job_ref(struct pl_job * j) {
    atomic_fetch_add(&j->refs, 1);
    return j;
}

void pl_job_unref(struct pl_job * j) {
    if (!j) return;
    if (atomic_fetch_sub(&j->refs, 1) == 1) pl_job_free(j);
}

const struct pl_job_spec * pl_job_spec_of(const struct pl_job * j) { return &j->spec; }

static int64_t terminal_error(const struct pl_job * j, struct infvsr_err * err) {
    return infvsr_err_set(err, INFVSR_ERR_CANCELLED, "the job is %s%s%s", pl_job_state_name(j->state),
                          j->error[0] ? ": " : "", j->error);
}

int64_t pl_job_input_write(struct pl_job * j, const void * data, size_t len, struct infvsr_err * err) {
    struct pl_engine * e = j->e;
    pthread_mutex_lock(&j->in_mu); /* one upload piece at a time; the spool fd stays open */
    pthread_mutex_lock(&e->mu);
    int64_t rc = 0;
    if (pl_job_state_terminal(j->state) && j->state != PL_JOB_SUCCEEDED) {
        rc = terminal_error(j, err);
    } else if (j->in_ended || j->state == PL_JOB_SUCCEEDED) {
        rc = infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "the input is complete (%lld bytes): no more bytes accepted",
                            (long long)j->in_written);
    } else if ((int64_t)len > e->o.max_input_bytes - j->in_written) {
        rc = infvsr_err_set(err, INFVSR_ERR_BUSY, "the input would exceed max_upload_bytes (%lld bytes)",
                            (long long)e->o.max_input_bytes);
    } else if (j->in_fd < 0) {
        rc = infvsr_err_set(err, INFVSR_ERR_IO, "the input spool file is closed");
    }
    if (rc == 0 && len > 0 && (j->dec_done || j->state == PL_JOB_SUCCEEDED)) {
        /* The decoder has finished (end of the container, or max_frames): the rest of the
         * upload is counted (the offset stays true for resumable uploads) and dropped. */
        j->in_written += (int64_t)len;
        e->m.input_bytes += len;
        rc = (int64_t)len;
    }
    if (rc < 0 || len == 0 || rc == (int64_t)len) {
        pthread_mutex_unlock(&e->mu);
        pthread_mutex_unlock(&j->in_mu);
        return rc;
    }
    int64_t room = e->o.input_lead_bytes - (j->in_written - j->in_consumed);
    int64_t n = room <= 0 ? 0 : (int64_t)len < room ? (int64_t)len : room;
    if (n < (int64_t)len) j->want_space = true;
    int64_t off = j->in_written; /* only this function moves it, under in_mu */
    pthread_mutex_unlock(&e->mu);
    if (n == 0) {
        pthread_mutex_unlock(&j->in_mu);
        return 0;
    }

    int64_t done = 0;
    int werr = 0;
    while (done < n) {
        ssize_t w = pwrite(j->in_fd, (const char *)data + done, (size_t)(n - done), (off_t)(off + done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            werr = w < 0 ? errno : ENOSPC;
            break;
        }
        done += w;
    }

    pthread_mutex_lock(&e->mu);
    if (done > 0) {
        j->in_written += done;
        e->m.input_bytes += (uint64_t)done;
        if (j->state == PL_JOB_CREATED) pl_job_enqueue_locked(j);
        pthread_cond_broadcast(&j->cv); /* the decoder may wait for bytes */
    }
    /* A write error ends this upload even after a partial write (the bytes that made it
     * count in the offset): a short count would read as backpressure and wait forever. A
     * full spool fails the job at once, with the reason. */
    int64_t rc_err = 0;
    if (werr != 0 && pl_errno_no_space(werr)) {
        pl_job_fail_no_space_locked(j, "storing the upload", werr);
        rc_err = terminal_error(j, err);
    }
    pthread_mutex_unlock(&e->mu);
    pthread_mutex_unlock(&j->in_mu);
    if (rc_err != 0) return rc_err;
    if (werr != 0)
        return infvsr_err_set(err, INFVSR_ERR_IO, "writing the input spool file failed: %s", strerror(werr));
    return done;
}

void pl_job_enqueue_locked(struct pl_job * j) {
    struct pl_engine * e = j->e;
    j->state = PL_JOB_QUEUED;
    e->awaiting--;
    j->first_input_at = pl_now();
    pl_job_ref(j); /* the FIFO's reference */
    j->in_fifo = true;
    j->fifo_next = NULL;
    if (e->fifo_tail) e->fifo_tail->fifo_next = j;
    else e->fifo_head = j;
    e->fifo_tail = j;
    pl_post_locked(e, j, PL_EV_PROGRESS);
    pl_promote_locked(e);
}

int64_t pl_job_input_offset(const struct pl_job * j) {
    pthread_mutex_lock(&j->e->mu);
    int64_t n = j->in_written;
    pthread_mutex_unlock(&j->e->mu);
    return n;
}

enum infvsr_status pl_job_input_end(struct pl_job * j, struct infvsr_err * err) {
    struct pl_engine * e = j->e;
    pthread_mutex_lock(&e->mu);
    enum infvsr_status st = INFVSR_OK;
    if (pl_job_state_terminal(j->state) && j->state != PL_JOB_SUCCEEDED) {
        st = (enum infvsr_status)terminal_error(j, err);
    } else if (!j->in_ended) {
        j->in_ended = true;
        if (j->in_written == 0)
            pl_job_finish_locked(j, PL_JOB_FAILED, PL_ERROR_UNPROCESSABLE_VIDEO, "the upload is empty (0 bytes)");
        pthread_cond_broadcast(&j->cv);
    }
    pthread_mutex_unlock(&e->mu);
    return st;
}

int pl_job_output_fd(struct pl_job * j) {
    pthread_mutex_lock(&j->e->mu);
    int fd = -1;
    if (j->renamed) fd = open(j->out_path, O_RDONLY | O_CLOEXEC);
    else if (j->out_created) fd = open(j->part_path, O_RDONLY | O_CLOEXEC);
    pthread_mutex_unlock(&j->e->mu);
    return fd;
}

int64_t pl_job_output_bytes(const struct pl_job * j) {
    return (int64_t)atomic_load(&((struct pl_job *)j)->output_bytes);
}

void pl_job_get_status(struct pl_job * j, struct pl_job_status * out) {
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&j->e->mu);
    out->state = j->state;
    out->probed = j->probed;
    if (j->probed) {
        out->width = j->info.width;
        out->height = j->info.height;
        out->out_width = j->out_w;
        out->out_height = j->out_h;
        out->in_fps = j->info.fps;
    }
    out->input_bytes = j->in_written;
    out->frames_in = j->frames_in;
    out->frames_out = j->frames_out;
    out->chunks = j->chunks;
    out->output_bytes = (int64_t)atomic_load(&j->output_bytes);
    out->created_at = j->created_at;
    out->started_at = j->started_at;
    out->first_output_at = j->first_output_at;
    out->finished_at = j->finished_at;
    if (j->started_at > 0) {
        double end = j->finished_at > 0 ? j->finished_at : pl_now();
        out->fps = end > j->started_at ? (double)j->frames_out / (end - j->started_at) : 0;
    }
    out->error_code = j->error_code;
    snprintf(out->error, sizeof(out->error), "%s", j->error);
    pthread_mutex_unlock(&j->e->mu);
}

void pl_job_cancel(struct pl_job * j) {
    pthread_mutex_lock(&j->e->mu);
    pl_job_finish_locked(j, PL_JOB_CANCELLED, PL_ERROR_CANCELLED, "cancelled");
    pthread_mutex_unlock(&j->e->mu);
}

void pl_job_drop_input(struct pl_job * j) {
    pthread_mutex_lock(&j->in_mu);
    if (!j->in_dropped) {
        j->in_dropped = true;
        (void)unlink(j->in_path); /* a failure leaves it to pl_job_free or the next start */
    }
    pthread_mutex_unlock(&j->in_mu);
}

void pl_job_delete(struct pl_job * j) {
    pthread_mutex_lock(&j->e->mu);
    j->deleted = true;
    pl_job_finish_locked(j, PL_JOB_CANCELLED, PL_ERROR_CANCELLED, "cancelled: the job was deleted");
    pthread_mutex_unlock(&j->e->mu);
}
