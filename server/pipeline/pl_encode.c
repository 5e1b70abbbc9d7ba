/* The encode thread of a slot: SR frames from the ring and audio/subtitle packets from the
 * packet queue into the streaming writer, in time order, flushing to <id>.out.part after
 * every frame so the loop can serve the bytes at once; renames to <id>.out on success. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pl_internal.h"

/* Pops the head packet if `all` or its time is <= t (packets without a time go at once). */
static struct pl_packet_node * pop_packet(struct pl_job * j, bool all, double t) {
    struct pl_engine * e = j->e;
    pthread_mutex_lock(&e->mu);
    struct pl_packet_node * n = j->pk_head;
    if (n) {
        double pt = infvsr_media_packet_seconds(n->p);
        if (all || isnan(pt) || pt <= t) {
            j->pk_head = n->next;
            if (!j->pk_head) j->pk_tail = NULL;
            j->pk_count--;
            j->pk_bytes -= infvsr_media_packet_size(n->p);
            pthread_cond_broadcast(&j->cv); /* the decoder may wait for room */
        } else {
            n = NULL;
        }
    }
    pthread_mutex_unlock(&e->mu);
    return n;
}

static enum infvsr_status write_packets(struct pl_job * j, struct infvsr_media_writer * w, bool all, double t,
                                        int limit, struct infvsr_err * err) {
    for (int i = 0; limit <= 0 || i < limit; i++) {
        struct pl_packet_node * n = pop_packet(j, all, t);
        if (!n) break;
        enum infvsr_status st = infvsr_media_writer_copy_packet_sink(w, n->p, err);
        infvsr_media_packet_free(n->p);
        free(n);
        if (st != INFVSR_OK) return st;
    }
    return INFVSR_OK;
}

static int fsync_dir(const char * dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

/* The output is complete (and fsynced unless sync_errno says otherwise). Order matters for
 * crash safety (DESIGN: "a crash or restart never leaves a truncated file presented as
 * complete"): rename <id>.out.part -> <id>.out, fsync the spool directory so the rename is
 * on disk, let the daemon record the completion (commit hook), and only then publish
 * SUCCEEDED. A crash anywhere before the commit leaves an .out the journal does not vouch
 * for, which the next start removes and re-runs. */
static void commit_output(struct pl_job * j, int sync_errno) {
    struct pl_engine * e = j->e;
    char fail[256] = "";
    pthread_mutex_lock(&e->mu);
    if (pl_job_state_terminal(j->state)) {
        pthread_mutex_unlock(&e->mu);
        return;
    }
    if (sync_errno) snprintf(fail, sizeof(fail), "writing the output to disk failed: %s", strerror(sync_errno));
    else if (rename(j->part_path, j->out_path) != 0)
        snprintf(fail, sizeof(fail), "cannot rename the finished output: %s", strerror(errno));
    else j->renamed = true;
    pthread_mutex_unlock(&e->mu);
    if (!fail[0] && fsync_dir(e->spool_dir) != 0)
        snprintf(fail, sizeof(fail), "cannot make the finished output durable: %s", strerror(errno));
    if (!fail[0] && e->o.commit && e->o.commit(e->o.notify_user, j, atomic_load(&j->output_bytes)) != 0)
        snprintf(fail, sizeof(fail), "cannot record the finished job in the spool journal");
    pthread_mutex_lock(&e->mu);
    if (fail[0]) {
        if (j->renamed) { /* nobody may serve an output the journal does not vouch for */
            unlink(j->out_path);
            j->renamed = false;
        }
        pl_job_finish_locked(j, PL_JOB_FAILED, PL_ERROR_INTERNAL, fail);
    } else {
        pl_job_finish_locked(j, PL_JOB_SUCCEEDED, PL_ERROR_NONE, "");
    }
    pthread_mutex_unlock(&e->mu);
}

static void run_encode(struct pl_job * j) {
    struct pl_engine * e = j->e;
    struct infvsr_err err = { 0 };
    pthread_mutex_lock(&e->mu);
    while (!j->writer && !atomic_load(&j->stop)) pthread_cond_wait(&j->cv, &e->mu);
    struct infvsr_media_writer * w = j->writer;
    j->writer = NULL;
    pthread_mutex_unlock(&e->mu);
    if (!w) return; /* failed or cancelled before the output existed: the decoder cleaned up */

    double tb = j->info.tb_den > 0 ? (double)j->info.tb_num / j->info.tb_den : 0;
    double fps = j->info.fps > 0 ? j->info.fps : 15;
    int64_t published = atomic_load(&j->output_bytes);
    const int64_t header_bytes = published;
    pthread_mutex_lock(&e->mu);
    e->m.output_bytes += (uint64_t)published; /* the header, written at open */
    pthread_mutex_unlock(&e->mu);
    int64_t n_frames = 0;
    enum infvsr_status st = INFVSR_OK;
    bool done = false;
    while (st == INFVSR_OK && !done) {
        pthread_mutex_lock(&e->mu);
        int idx = -1;
        bool drain_packets = false;
        for (;;) {
            if (atomic_load(&j->stop)) break;
            if (j->sr.count > 0) {
                idx = j->sr.head;
                break;
            }
            if (j->pk_count >= PL_PACKET_QUEUE_MAX || j->pk_bytes >= PL_PACKET_QUEUE_BYTES) {
                drain_packets = true; /* audio far ahead of video: let the muxer interleave */
                break;
            }
            if (j->wrk_eof) {
                done = true;
                break;
            }
            pthread_cond_wait(&j->cv, &e->mu);
        }
        int64_t pts = idx >= 0 ? j->sr.pts[idx] : 0;
        uint8_t * frame = idx >= 0 ? j->sr.buf[idx] : NULL;
        pthread_mutex_unlock(&e->mu);
        if (atomic_load(&j->stop)) break;
        if (drain_packets) {
            st = write_packets(j, w, true, 0, PL_PACKET_QUEUE_MAX / 2, &err);
        } else if (frame) {
            double t = pts != INFVSR_MEDIA_NOPTS && tb > 0 ? (double)pts * tb : (double)n_frames / fps;
            st = write_packets(j, w, false, t, 0, &err);
            if (st == INFVSR_OK) st = infvsr_media_writer_write(w, frame, pts, &err);
            if (st == INFVSR_OK) pl_preview_capture(j, n_frames, true, frame, j->out_w, j->out_h);
            pthread_mutex_lock(&e->mu);
            pl_ring_pop_locked(&j->sr);
            j->frames_out++;
            e->m.frames_out++;
            pthread_cond_broadcast(&j->slot->w->cv); /* room in the SR ring */
            pthread_mutex_unlock(&e->mu);
            n_frames++;
        } else if (done) {
            st = write_packets(j, w, true, 0, 0, &err);
            if (st == INFVSR_OK) {
                st = infvsr_media_writer_finish(w, &err); /* trailer + flush; frees w */
                w = NULL;
            }
        }
        if (st == INFVSR_OK && w) st = infvsr_media_writer_flush(w, &err);
        int64_t now_bytes = atomic_load(&j->output_bytes);
        pthread_mutex_lock(&e->mu);
        e->m.output_bytes += (uint64_t)(now_bytes - published);
        unsigned ev = now_bytes > published ? PL_EV_OUTPUT : 0;
        if (frame) ev |= PL_EV_PROGRESS;
        if (n_frames > 0 && j->first_output_at == 0 && now_bytes > header_bytes) { /* first encoded bytes */
            j->first_output_at = pl_now();
            pl_hist_observe(&e->m.time_to_first_frame, j->first_output_at - j->first_input_at);
        }
        pl_post_locked(e, j, ev);
        pthread_mutex_unlock(&e->mu);
        published = now_bytes;
    }
    if (st != INFVSR_OK) {
        char m[256];
        snprintf(m, sizeof(m), "encoding the output failed: %.220s", err.msg);
        pthread_mutex_lock(&e->mu);
        if (pl_errno_no_space(j->out_errno)) pl_job_fail_no_space_locked(j, "writing the output", j->out_errno);
        else pl_job_finish_locked(j, PL_JOB_FAILED, PL_ERROR_INTERNAL, m);
        pthread_mutex_unlock(&e->mu);
    }
    if (w) infvsr_media_writer_abort(w);
    int sync_errno = 0;
    if (st == INFVSR_OK && done && j->out_fd >= 0 && fsync(j->out_fd) != 0) sync_errno = errno;
    if (j->out_fd >= 0) close(j->out_fd);
    j->out_fd = -1;
    if (st == INFVSR_OK && done) commit_output(j, sync_errno);
}

void * pl_encode_main(void * arg) {
    struct pl_slot * s = arg;
    struct pl_engine * e = s->w->e;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        struct pl_job * j = s->job;
        if (j && !j->enc_done) {
            pthread_mutex_unlock(&e->mu);
            run_encode(j);
            pl_slot_party_done(j, &j->enc_done);
            pthread_mutex_lock(&e->mu);
            continue;
        }
        if (e->stopping && !j) break;
        pthread_cond_wait(&s->cv, &e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}
