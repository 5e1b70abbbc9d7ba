/* A worker thread: loads the model (or nothing, for the null engine), then serves the
 * jobs in its slots round robin at chunk granularity: for the next job with work and room
 * in its SR ring, push its LR frames into its session until BUSY (or the ring is empty),
 * then pull the frames of ONE chunk. A job whose SR ring is full is skipped, so one slow
 * consumer never holds up the others. Sessions are opened on this thread (a model's
 * sessions must be driven from one thread). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infvsr/session.h"
#include "infvsr/backend.h"
#include "pl_internal.h"

#define NULL_CHUNK_FRAMES 12 /* the null engine's "chunk": as many frames as a model chunk */

void pl_upscale_nearest(const uint8_t * src, int w, int h, int scale, uint8_t * dst) {
    size_t out_row = (size_t)w * scale * 3;
    for (int y = 0; y < h; y++) {
        const uint8_t * s = src + (size_t)y * w * 3;
        uint8_t * d0 = dst + (size_t)y * scale * out_row;
        uint8_t * d = d0;
        for (int x = 0; x < w; x++, s += 3)
            for (int k = 0; k < scale; k++, d += 3) d[0] = s[0], d[1] = s[1], d[2] = s[2];
        for (int k = 1; k < scale; k++) memcpy(d0 + (size_t)k * out_row, d0, out_row);
    }
}

static void chunk_hook(void * user, const struct infvsr_session_chunk_info * info, const struct infvsr_tensor * t) {
    struct pl_slot * s = user;
    s->ready_frames += info->n;
    s->hook_chunks++;
    (void)t;
}

static void load_model(struct pl_worker * w) {
    struct pl_engine * e = w->e;
    struct infvsr_err err = { 0 };
    bool ok = true;
    char name[64] = "null";
    if (!e->is_null) {
        struct infvsr_backend_opts bo = infvsr_backend_default_opts();
        bo.n_threads = e->o.threads;
        int prec = infvsr_precision_from_name(e->o.precision ? e->o.precision : "auto");
        bo.precision = prec < 0 ? INFVSR_PRECISION_AUTO : (enum infvsr_precision)prec;
        if (prec < 0) {
            ok = false;
            infvsr_err_set(&err, INFVSR_ERR_INVALID_ARG, "unknown precision '%s'", e->o.precision);
        } else if (infvsr_backend_init_by_name(e->o.device ? e->o.device : "cpu", &bo, &w->be, &err) != INFVSR_OK) {
            ok = false;
        } else if (infvsr_model_open_dir(e->model, w->be, &w->model, &err) != INFVSR_OK) {
            ok = false;
        } else {
            snprintf(name, sizeof(name), "%s", infvsr_model_config_of(w->model)->name);
        }
    }
    pthread_mutex_lock(&e->mu);
    w->loaded = true;
    w->healthy = ok;
    if (e->is_null) {
        snprintf(w->backend, sizeof(w->backend), "null");
    } else if (w->be) {
        struct infvsr_backend_caps caps;
        infvsr_backend_get_caps(w->be, &caps);
        snprintf(w->backend, sizeof(w->backend), "%.31s", caps.name);
    } else {
        snprintf(w->backend, sizeof(w->backend), "%.31s", e->o.device ? e->o.device : "cpu");
    }
    if (!ok) snprintf(w->error, sizeof(w->error), "%.250s", err.msg);
    bool all = true, all_ok = true;
    for (int i = 0; i < e->n_workers; i++) {
        all = all && e->workers[i].loaded;
        all_ok = all_ok && (!e->workers[i].loaded || e->workers[i].healthy);
    }
    if (!ok && e->state != PL_ENGINE_FAILED) {
        e->state = PL_ENGINE_FAILED;
        snprintf(e->error, sizeof(e->error), "worker %d: %.230s", w->id, w->error);
    }
    if (ok && !e->model_name[0]) snprintf(e->model_name, sizeof(e->model_name), "%s", name);
    if (all && all_ok) e->state = PL_ENGINE_READY;
    pl_post_locked(e, NULL, PL_EV_ENGINE);
    pl_promote_locked(e);
    pthread_mutex_unlock(&e->mu);
}

/* The session's cancel hook: a cancel (or any other end of the job) sets stop, and the
 * chunk being computed stops within one DiT block or VAE layer. */
static bool job_stopped(void * user) {
    const struct pl_job * j = user;
    return atomic_load(&j->stop);
}

static void fail_job(struct pl_job * j, enum infvsr_status st, const char * what, const struct infvsr_err * err) {
    if (st == INFVSR_ERR_CANCELLED) {
        /* The session stopped because the job already ended (cancel, delete, a failure
         * elsewhere, shutdown): its state says why; nothing to add. */
        pthread_mutex_lock(&j->e->mu);
        pl_job_finish_locked(j, PL_JOB_CANCELLED, PL_ERROR_CANCELLED, "cancelled");
        pthread_mutex_unlock(&j->e->mu);
        return;
    }
    char m[256];
    snprintf(m, sizeof(m), "%.40s: %.200s", what, err->msg[0] ? err->msg : infvsr_status_str(st));
    enum pl_error_code code = st == INFVSR_ERR_NOMEM ? PL_ERROR_INTERNAL
                            : st == INFVSR_ERR_INVALID_ARG ? PL_ERROR_UNPROCESSABLE_VIDEO
                                                           : PL_ERROR_WORKER_FAILED;
    pthread_mutex_lock(&j->e->mu);
    if (st == INFVSR_ERR_DEVICE) { /* sticky: this worker takes no more jobs */
        struct pl_worker * w = j->slot->w;
        w->healthy = false;
        snprintf(w->error, sizeof(w->error), "%s", m);
        pl_post_locked(j->e, NULL, PL_EV_ENGINE);
    }
    pl_job_finish_locked(j, PL_JOB_FAILED, code, m);
    pthread_mutex_unlock(&j->e->mu);
}

static void teardown(struct pl_slot * s, struct pl_job * j) {
    infvsr_session_close(s->session);
    s->session = NULL;
    s->session_job = NULL;
    s->finished = s->busy = false;
    s->ready_frames = 0;
    s->hook_chunks = 0;
    pl_slot_party_done(j, &j->wrk_done);
}

static void mark_eof_and_teardown(struct pl_slot * s, struct pl_job * j) {
    pthread_mutex_lock(&j->e->mu);
    j->wrk_eof = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->e->mu);
    teardown(s, j);
}

static void count_chunk(struct pl_job * j, double seconds, int frames) {
    struct pl_engine * e = j->e;
    pthread_mutex_lock(&e->mu);
    j->chunks++;
    e->m.chunks++;
    pl_hist_observe(&e->m.chunk_seconds, seconds);
    pl_post_locked(e, j, PL_EV_PROGRESS);
    pthread_mutex_unlock(&e->mu);
    (void)frames;
}

/* The null engine: up to NULL_CHUNK_FRAMES frames, nearest-neighbour x scale. */
static void turn_null(struct pl_slot * s, struct pl_job * j) {
    struct pl_engine * e = j->e;
    double t0 = pl_now();
    int k = 0;
    bool eof = false;
    while (k < NULL_CHUNK_FRAMES) {
        pthread_mutex_lock(&e->mu);
        bool ok = j->lr.count > 0 && j->sr.count < j->sr.cap;
        int li = j->lr.head, si = pl_ring_tail_locked(&j->sr);
        int64_t pts = j->lr.pts[li];
        eof = j->dec_eof && j->lr.count == 0;
        pthread_mutex_unlock(&e->mu);
        if (!ok) break;
        uint8_t * dst = pl_ring_buf(&j->sr, si);
        if (!dst) {
            struct infvsr_err err;
            infvsr_err_set(&err, INFVSR_ERR_NOMEM, "out of memory for an SR frame");
            fail_job(j, INFVSR_ERR_NOMEM, "null engine", &err);
            teardown(s, j);
            return;
        }
        pl_upscale_nearest(j->lr.buf[li], j->info.width, j->info.height, j->spec.scale, dst);
        pthread_mutex_lock(&e->mu);
        j->sr.pts[si] = pts;
        j->sr.count++;
        pl_ring_pop_locked(&j->lr);
        pthread_cond_broadcast(&j->cv);
        eof = j->dec_eof && j->lr.count == 0;
        pthread_mutex_unlock(&e->mu);
        k++;
    }
    if (k > 0) count_chunk(j, pl_now() - t0, k);
    if (eof) mark_eof_and_teardown(s, j);
}

static bool open_session(struct pl_slot * s, struct pl_job * j) {
    struct infvsr_err err = { 0 };
    struct infvsr_session_opts so = infvsr_session_opts_default(j->info.width, j->info.height);
    so.scale = j->spec.scale;
    so.scene_detection = j->spec.scene_detect;
    if (j->spec.scene_threshold > 0) so.scene_threshold = j->spec.scene_threshold;
    if (j->spec.reference_threshold > 0) so.reference_threshold = j->spec.reference_threshold;
    enum infvsr_status st = infvsr_session_open(s->w->model, &so, &s->session, &err);
    if (st != INFVSR_OK) {
        fail_job(j, st, "cannot open the engine session", &err);
        teardown(s, j);
        return false;
    }
    infvsr_session_set_chunk_hook(s->session, chunk_hook, s);
    infvsr_session_set_abort(s->session, job_stopped, j);
    s->session_job = j;
    return true;
}

/* The model: push until BUSY or no LR frame, then pull the frames of one chunk. */
static void turn_model(struct pl_slot * s, struct pl_job * j) {
    struct pl_engine * e = j->e;
    struct infvsr_err err = { 0 };
    int chunks0 = s->hook_chunks;
    double chunk_s = 0;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        bool have = j->lr.count > 0;
        int li = j->lr.head;
        int64_t pts = j->lr.pts[li];
        pthread_mutex_unlock(&e->mu);
        if (!have) break;
        int before = s->hook_chunks;
        double t0 = pl_now();
        enum infvsr_status st = infvsr_session_push_frame(s->session, j->lr.buf[li], pts, &err);
        if (s->hook_chunks != before) chunk_s += pl_now() - t0;
        if (st == INFVSR_ERR_BUSY) {
            s->busy = true;
            break;
        }
        if (st != INFVSR_OK) {
            fail_job(j, st, "the model failed", &err);
            teardown(s, j);
            return;
        }
        pthread_mutex_lock(&e->mu);
        pl_ring_pop_locked(&j->lr);
        pthread_cond_broadcast(&j->cv);
        pthread_mutex_unlock(&e->mu);
    }
    pthread_mutex_lock(&e->mu);
    bool input_done = j->dec_eof && j->lr.count == 0;
    pthread_mutex_unlock(&e->mu);
    if (input_done && !s->finished) {
        enum infvsr_status st = infvsr_session_finish(s->session, &err);
        if (st != INFVSR_OK) {
            fail_job(j, st, "the model failed", &err);
            teardown(s, j);
            return;
        }
        s->finished = true;
    }
    for (;;) {
        if (s->ready_frames == 0 && s->hook_chunks != chunks0) break; /* one chunk per turn */
        pthread_mutex_lock(&e->mu);
        bool room = j->sr.count < j->sr.cap;
        int si = pl_ring_tail_locked(&j->sr);
        pthread_mutex_unlock(&e->mu);
        if (!room) break;
        uint8_t * dst = pl_ring_buf(&j->sr, si);
        if (!dst) {
            infvsr_err_set(&err, INFVSR_ERR_NOMEM, "out of memory for an SR frame");
            fail_job(j, INFVSR_ERR_NOMEM, "the model failed", &err);
            teardown(s, j);
            return;
        }
        int before = s->hook_chunks;
        double t0 = pl_now();
        int64_t pts = 0;
        int got = infvsr_session_pull_frame(s->session, dst, &pts, &err);
        if (s->hook_chunks != before) chunk_s += pl_now() - t0;
        if (got < 0) {
            fail_job(j, (enum infvsr_status)got, "the model failed", &err);
            teardown(s, j);
            return;
        }
        if (got == 0) {
            s->busy = false;
            break;
        }
        s->ready_frames--;
        pthread_mutex_lock(&e->mu);
        j->sr.pts[si] = pts;
        j->sr.count++;
        pthread_cond_broadcast(&j->cv);
        pthread_mutex_unlock(&e->mu);
    }
    if (s->hook_chunks != chunks0) count_chunk(j, chunk_s, 0);
    if (s->finished && infvsr_session_done(s->session)) mark_eof_and_teardown(s, j);
}

enum action { ACT_NONE, ACT_TEARDOWN, ACT_OPEN, ACT_TURN };

/* Next slot with something to do, round robin from w->rr. [mu held] */
static enum action pick_locked(struct pl_worker * w, struct pl_slot ** out) {
    struct pl_engine * e = w->e;
    int n = e->o.max_active_per_worker;
    for (int i = 0; i < n; i++) {
        struct pl_slot * s = &w->slots[(w->rr + i) % n];
        struct pl_job * j = s->job;
        if (!j || j->wrk_done) continue;
        enum action a = ACT_NONE;
        if (atomic_load(&j->stop)) a = ACT_TEARDOWN;
        else if (!j->probed) continue;
        else if (!e->is_null && !s->session) a = ACT_OPEN;
        else if (j->sr.count < j->sr.cap) {
            bool input = j->lr.count > 0 || j->dec_eof;
            if (e->is_null ? input : (input || s->ready_frames > 0 || s->busy)) a = ACT_TURN;
        }
        if (a == ACT_NONE) continue;
        w->rr = (int)((s - w->slots) + 1) % n;
        *out = s;
        return a;
    }
    return ACT_NONE;
}

void * pl_worker_main(void * arg) {
    struct pl_worker * w = arg;
    struct pl_engine * e = w->e;
    load_model(w);
    pthread_mutex_lock(&e->mu);
    for (;;) {
        struct pl_slot * s = NULL;
        enum action a = pick_locked(w, &s);
        if (a == ACT_NONE) {
            bool busy = false;
            for (int i = 0; i < e->o.max_active_per_worker; i++) busy = busy || w->slots[i].job;
            if (e->stopping && !busy) break;
            pthread_cond_wait(&w->cv, &e->mu);
            continue;
        }
        struct pl_job * j = s->job; /* the slot's reference keeps it alive until wrk_done */
        pthread_mutex_unlock(&e->mu);
        if (a == ACT_TEARDOWN) teardown(s, j);
        else if (a == ACT_OPEN) (void)open_session(s, j);
        else if (e->is_null) turn_null(s, j);
        else turn_model(s, j);
        pthread_mutex_lock(&e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    infvsr_model_close(w->model);
    if (w->be) infvsr_backend_free(w->be);
    return NULL;
}
