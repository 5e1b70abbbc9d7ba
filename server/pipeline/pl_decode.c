/* The decode thread of a slot: tails the job's input spool file through the media
 * reader (a pure stream: no seek), opens the output writer once the size is known, and
 * fills the LR ring; audio/subtitle packets go to the encode thread's packet queue. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pl_internal.h"


static int interrupt_cb(void * user) {
    const struct pl_job * j = user;
    return atomic_load(&j->stop) ? 1 : 0;
}

/* Read callback: the bytes of the spool file the upload has stored so far; when caught
 * up, waits for more, for the end of the input, or for a cancel. */
static int spool_read(void * opaque, uint8_t * buf, int size) {
    struct pl_job * j = opaque;
    struct pl_engine * e = j->e;
    pthread_mutex_lock(&e->mu);
    double deadline = e->o.decode_deadline_s > 0 ? pl_now() + e->o.decode_deadline_s : 0;
    while (j->in_consumed == j->in_written && !j->in_ended && !atomic_load(&j->stop)) {
        if (deadline > 0) {
            struct timespec ts;
            ts.tv_sec = (time_t)deadline;
            ts.tv_nsec = (long)((deadline - (double)ts.tv_sec) * 1e9);
            if (pthread_cond_timedwait(&j->cv, &e->mu, &ts) == ETIMEDOUT &&
                j->in_consumed == j->in_written && !j->in_ended) {
                char m[128];
                snprintf(m, sizeof(m), "no input bytes arrived for %g s (decode_deadline_s)", e->o.decode_deadline_s);
                pl_job_finish_locked(j, PL_JOB_FAILED, PL_ERROR_UNPROCESSABLE_VIDEO, m);
                break;
            }
        } else {
            pthread_cond_wait(&j->cv, &e->mu);
        }
    }
    if (atomic_load(&j->stop)) {
        pthread_mutex_unlock(&e->mu);
        return -1;
    }
    int64_t avail = j->in_written - j->in_consumed;
    int64_t off = j->in_consumed;
    pthread_mutex_unlock(&e->mu);
    if (avail == 0) return 0; /* end of input */
    size_t want = (size_t)(avail < size ? avail : size);
    ssize_t n;
    do n = pread(j->in_fd, buf, want, (off_t)off);
    while (n < 0 && errno == EINTR);
    if (n <= 0) return -1;

    pthread_mutex_lock(&e->mu);
    j->in_consumed += n;
    int64_t room = e->o.input_lead_bytes - (j->in_written - j->in_consumed);
    /* Wake a suspended upload once half the lead is free again (not for every 64 KiB). */
    if (j->want_space && (room >= e->o.input_lead_bytes / 2 || j->in_consumed == j->in_written)) {
        j->want_space = false;
        pl_post_locked(e, j, PL_EV_INPUT_SPACE);
    }
    pthread_mutex_unlock(&e->mu);
    return (int)n;
}

static int out_write(void * opaque, const uint8_t * buf, int size) {
    struct pl_job * j = opaque;
    int done = 0;
    while (done < size) {
        ssize_t n = write(j->out_fd, buf + done, (size_t)(size - done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) { /* the cause goes into the writer's message and picks the error code */
            j->out_errno = n < 0 ? errno : ENOSPC;
            return -j->out_errno;
        }
        done += (int)n;
    }
    /* Bytes in the file are final: the container is written front to back, never patched. */
    atomic_fetch_add(&j->output_bytes, size);
    return size;
}

/* Packet sink (decode thread): an owned copy into the bounded queue the encode thread
 * interleaves with the video. Waits while the queue is full: the encode thread drains a
 * full queue at once, so this never waits on the model. */
static enum infvsr_status packet_sink(void * user, const struct infvsr_media_packet * p, struct infvsr_err * err) {
    struct pl_job * j = user;
    struct pl_engine * e = j->e;
    struct pl_packet_node * n = malloc(sizeof(*n));
    struct infvsr_media_packet * c = n ? infvsr_media_packet_clone(p) : NULL;
    if (!c) {
        free(n);
        return infvsr_err_set(err, INFVSR_ERR_NOMEM, "out of memory for an audio packet");
    }
    n->p = c;
    n->next = NULL;
    pthread_mutex_lock(&e->mu);
    while ((j->pk_count >= PL_PACKET_QUEUE_MAX || j->pk_bytes >= PL_PACKET_QUEUE_BYTES) && !atomic_load(&j->stop))
        pthread_cond_wait(&j->cv, &e->mu);
    if (atomic_load(&j->stop)) {
        pthread_mutex_unlock(&e->mu);
        infvsr_media_packet_free(c);
        free(n);
        return infvsr_err_set(err, INFVSR_ERR_CANCELLED, "cancelled");
    }
    if (j->pk_tail) j->pk_tail->next = n;
    else j->pk_head = n;
    j->pk_tail = n;
    j->pk_count++;
    j->pk_bytes += infvsr_media_packet_size(c);
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&e->mu);
    return INFVSR_OK;
}

/* Fails the job from a reader/writer error, naming the class. */
static void fail_media(struct pl_job * j, enum infvsr_status st, const struct infvsr_err * err) {
    struct pl_engine * e = j->e;
    char m[256];
    /* The reader names the input's faults (FORMAT, UNSUPPORTED); out of memory and a failed
     * read of the stored input are the server's. */
    enum pl_error_code code = PL_ERROR_UNPROCESSABLE_VIDEO;
    if (st == INFVSR_ERR_NOMEM || st == INFVSR_ERR_IO) code = PL_ERROR_INTERNAL;
    snprintf(m, sizeof(m), "%.250s", err->msg[0] ? err->msg : infvsr_status_str(st));
    pthread_mutex_lock(&e->mu);
    if (st == INFVSR_ERR_CANCELLED || atomic_load(&j->stop))
        pl_job_finish_locked(j, PL_JOB_CANCELLED, PL_ERROR_CANCELLED, "cancelled");
    else
        pl_job_finish_locked(j, PL_JOB_FAILED, code, m);
    pthread_mutex_unlock(&e->mu);
}

static void fail_internal(struct pl_job * j, const char * what, const struct infvsr_err * err) {
    char m[256];
    snprintf(m, sizeof(m), "%.60s%s%.180s", what, err && err->msg[0] ? ": " : "", err ? err->msg : "");
    pthread_mutex_lock(&j->e->mu);
    pl_job_finish_locked(j, PL_JOB_FAILED, PL_ERROR_INTERNAL, m);
    pthread_mutex_unlock(&j->e->mu);
}

static enum infvsr_media_container container_of(enum pl_container c) {
    switch (c) {
        case PL_CONTAINER_MATROSKA: return INFVSR_CONTAINER_MATROSKA;
        case PL_CONTAINER_MPEGTS:   return INFVSR_CONTAINER_MPEGTS;
        case PL_CONTAINER_MP4:      return INFVSR_CONTAINER_MP4;
        case PL_CONTAINER_Y4M:      return INFVSR_CONTAINER_Y4M;
    }
    return INFVSR_CONTAINER_MATROSKA;
}

static enum infvsr_media_codec codec_of(enum pl_codec c) {
    return c == PL_CODEC_FFV1 ? INFVSR_CODEC_FFV1 : c == PL_CODEC_RAWVIDEO ? INFVSR_CODEC_Y4M : INFVSR_CODEC_H264;
}

/* Creates <id>.out.part and the streaming writer (header included). */
static enum infvsr_status open_output(struct pl_job * j, struct infvsr_media_reader * r, int out_w, int out_h,
                                      struct infvsr_media_writer ** out, struct infvsr_err * err) {
    struct pl_engine * e = j->e;
    j->out_fd = open(j->part_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600); /* spool files: 0600 */
    if (j->out_fd < 0) {
        j->out_errno = errno;
        return infvsr_err_set(err, INFVSR_ERR_IO, "cannot create %.300s: %s", j->part_path, strerror(errno));
    }
    pthread_mutex_lock(&e->mu);
    j->out_created = true;
    pthread_mutex_unlock(&e->mu);
    const struct infvsr_media_info * in = infvsr_media_reader_info(r);
    struct infvsr_media_writer_opts wo = infvsr_media_writer_opts_for(in, codec_of(j->spec.codec));
    wo.width = out_w;
    wo.height = out_h;
    wo.container = container_of(j->spec.container);
    wo.crf = j->spec.crf;
    wo.yuv444p = j->spec.pix_fmt == PL_PIX_YUV444P;
    wo.copy_from = j->spec.copy_audio && j->spec.container != PL_CONTAINER_Y4M ? r : NULL;
    /* x264 at x scale the input size is the heaviest codec work: as many encoder threads
     * as cores (as the ffmpeg CLI does); concurrent jobs share them through the scheduler.
     * Each x264 frame thread adds a frame of latency before the first output bytes. */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    wo.threads = cpus < 1 ? 1 : cpus > 16 ? 16 : (int)cpus;
    struct infvsr_media_output_io io = { .opaque = j, .write = out_write };
    return infvsr_media_writer_open_io(&io, &wo, out, err);
}

/* An output write or create failed: a full spool gets its own error code. */
static void fail_output(struct pl_job * j, const char * what, const struct infvsr_err * err) {
    if (!pl_errno_no_space(j->out_errno)) {
        fail_internal(j, what, err);
        return;
    }
    pthread_mutex_lock(&j->e->mu);
    pl_job_fail_no_space_locked(j, what, j->out_errno);
    pthread_mutex_unlock(&j->e->mu);
}

static void close_output_fd(struct pl_job * j) {
    if (j->out_fd >= 0) close(j->out_fd);
    j->out_fd = -1;
}


/* Frames a queue may hold: the configured count, but never more than PL_QUEUE_MAX_BYTES
 * (so that 4K/8K outputs do not turn output_queue=24 into gigabytes), and at least 2. */
static int queue_frames(int configured, size_t frame_bytes) {
    size_t by_bytes = frame_bytes ? PL_QUEUE_MAX_BYTES / frame_bytes : (size_t)configured;
    size_t n = (size_t)configured < by_bytes ? (size_t)configured : by_bytes;
    return n < 2 ? 2 : (int)n;
}

static void run_decode(struct pl_job * j) {
    struct pl_engine * e = j->e;
    struct infvsr_err err = { 0 };
    struct infvsr_media_limits L = infvsr_media_limits_default();
    L.max_pixels = e->o.max_frame_pixels;
    L.max_dimension = e->o.max_dimension;
    L.format_whitelist = PL_DEMUXERS;
    L.interrupt = interrupt_cb;
    L.interrupt_user = j;
    L.input_format = j->spec.input_format[0] ? j->spec.input_format : NULL;
    L.threads = 1;
    struct infvsr_media_io io = { .opaque = j, .read = spool_read, .seek = NULL };
    struct infvsr_media_reader * r = NULL;
    enum infvsr_status st = infvsr_media_reader_open_io(&io, &L, &r, &err);
    if (st != INFVSR_OK) {
        fail_media(j, st, &err);
        return;
    }
    const struct infvsr_media_info * in = infvsr_media_reader_info(r);
    int scale = j->spec.scale;
    int out_w = in->width * scale, out_h = in->height * scale;
    if (out_w > 16384 || out_h > 16384) {
        infvsr_err_set(&err, INFVSR_ERR_FORMAT, "the output %dx%d (x%d) is larger than 16384 per side", out_w, out_h,
                       scale);
        fail_media(j, INFVSR_ERR_FORMAT, &err);
        infvsr_media_reader_close(r);
        return;
    }
    struct infvsr_media_writer * w = NULL;
    st = open_output(j, r, out_w, out_h, &w, &err);
    if (st != INFVSR_OK) {
        if (st == INFVSR_ERR_FORMAT) fail_media(j, st, &err); /* a copied stream of the input was refused */
        else fail_output(j, "cannot start the output", &err);
        close_output_fd(j);
        infvsr_media_reader_close(r);
        return;
    }
    struct pl_ring lr = { 0 }, sr = { 0 };
    size_t lr_bytes = (size_t)in->width * in->height * 3, sr_bytes = (size_t)out_w * out_h * 3;
    if (pl_ring_init(&lr, queue_frames(e->o.frame_queue, lr_bytes), lr_bytes) != 0 ||
        pl_ring_init(&sr, queue_frames(e->o.output_queue, sr_bytes), sr_bytes) != 0) {
        pl_ring_free(&lr);
        pl_ring_free(&sr);
        infvsr_media_writer_abort(w);
        close_output_fd(j);
        infvsr_media_reader_close(r);
        fail_internal(j, "out of memory for the frame queues", NULL);
        return;
    }
    bool copy = j->spec.copy_audio && j->spec.container != PL_CONTAINER_Y4M && in->n_copy_streams > 0;
    pthread_mutex_lock(&e->mu);
    if (atomic_load(&j->stop)) {
        /* cancelled while probing: the encode thread may already have given up waiting
         * for the writer (it checks stop under the same lock), so it is not handed over */
        pthread_mutex_unlock(&e->mu);
        pl_ring_free(&lr);
        pl_ring_free(&sr);
        infvsr_media_writer_abort(w);
        close_output_fd(j);
        infvsr_media_reader_close(r);
        return;
    }
    j->info = *in;
    j->info.format_name = NULL; /* the reader's strings die with it */
    j->info.codec_name = NULL;
    j->out_w = out_w;
    j->out_h = out_h;
    j->lr = lr;
    j->sr = sr;
    j->writer = w; /* from here on the encode thread's */
    j->probed = true;
    pl_post_locked(e, j, PL_EV_PROGRESS | PL_EV_OUTPUT);
    pthread_cond_broadcast(&j->cv);
    pthread_cond_broadcast(&j->slot->w->cv);
    pthread_mutex_unlock(&e->mu);
    if (copy) infvsr_media_reader_set_packet_sink(r, packet_sink, j);

    int64_t frames = 0;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (j->lr.count == j->lr.cap && !atomic_load(&j->stop)) pthread_cond_wait(&j->cv, &e->mu);
        int idx = pl_ring_tail_locked(&j->lr);
        pthread_mutex_unlock(&e->mu);
        if (atomic_load(&j->stop)) break;
        bool eof = j->spec.max_frames > 0 && frames >= j->spec.max_frames;
        int64_t pts = INFVSR_MEDIA_NOPTS;
        uint8_t * buf = NULL;
        if (!eof) {
            buf = pl_ring_buf(&j->lr, idx);
            if (!buf) {
                fail_internal(j, "out of memory for an LR frame", NULL);
                break;
            }
            int rc = infvsr_media_reader_next(r, buf, &pts, &err);
            if (rc == INFVSR_MEDIA_EOF) eof = true;
            else if (rc != INFVSR_OK) {
                fail_media(j, (enum infvsr_status)rc, &err);
                break;
            }
        }
        pthread_mutex_lock(&e->mu);
        if (eof) {
            j->dec_eof = true;
            pl_post_locked(e, j, PL_EV_PROGRESS);
        } else {
            j->lr.pts[idx] = pts;
            j->lr.count++;
            j->frames_in++;
            e->m.frames_in++;
            frames++;
        }
        pthread_cond_broadcast(&j->slot->w->cv);
        pthread_mutex_unlock(&e->mu);
        if (eof) break;
        /* after publishing (a pin set before frames_in grew is seen here): the worker only
         * reads the slot, and only this thread writes it again */
        pl_preview_capture(j, frames - 1, false, buf, j->info.width, j->info.height);
    }
    infvsr_media_reader_close(r);
}

void * pl_decode_main(void * arg) {
    struct pl_slot * s = arg;
    struct pl_engine * e = s->w->e;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        struct pl_job * j = s->job;
        if (j && !j->dec_done) {
            pthread_mutex_unlock(&e->mu);
            if (!atomic_load(&j->stop)) run_decode(j);
            pl_slot_party_done(j, &j->dec_done);
            pthread_mutex_lock(&e->mu);
            continue;
        }
        if (e->stopping && !j) break;
        pthread_cond_wait(&s->cv, &e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}
