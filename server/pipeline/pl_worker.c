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
#include "infvsr/model_files.h"
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
        bo.devsim_fault_at_op = w->fault_at_op;
        int prec = infvsr_precision_from_name(e->o.precision ? e->o.precision : "auto");
        bo.precision = prec < 0 ? INFVSR_PRECISION_AUTO : (enum infvsr_precision)prec;
        if (prec < 0) {
            ok = false;
            infvsr_err_set(&err, INFVSR_ERR_INVALID_ARG, "unknown precision '%s'", e->o.precision);
        } else if (infvsr_backend_init_by_name(w->device, &bo, &w->be, &err) != INFVSR_OK) {
            ok = false;
        } else if (infvsr_model_open_dir(e->model, w->be, &w->model, &err) != INFVSR_OK) {
            ok = false;
        } else {
            snprintf(name, sizeof(name), "%s", infvsr_model_config_of(w->model)->name);
        }
    }
    /* the per-file summary of the startup log, from the first worker that loads (outside the lock: it reads every key) */
    char files[INFVSR_FILE_COUNT][320] = { "" };
    pthread_mutex_lock(&e->mu);
    bool want_files = ok && w->model && !e->model_files[0][0];
    pthread_mutex_unlock(&e->mu);
    for (int f = 0; want_files && f < INFVSR_FILE_COUNT; f++) {
        infvsr_model_file_summary(w->model, (enum infvsr_model_file)f, files[f], sizeof files[f]);
    }
    struct infvsr_backend_caps caps = { 0 };
    if (w->be) infvsr_backend_get_caps(w->be, &caps); /* after the load: free = what sessions get */
    pthread_mutex_lock(&e->mu);
    w->loaded = true;
    w->healthy = ok;
    if (e->is_null) snprintf(w->backend, sizeof(w->backend), "null");
    else if (w->be) snprintf(w->backend, sizeof(w->backend), "%.31s", caps.name);
    else snprintf(w->backend, sizeof(w->backend), "%.31s", w->device);
    w->mem_total = caps.mem_total;
    w->mem_free = w->idle_free = caps.mem_free;
    w->model_bytes = w->model ? infvsr_model_resident_bytes(w->model) : 0;
    if (!ok) snprintf(w->error, sizeof(w->error), "%.250s", err.msg);
    if (ok && !e->model_name[0]) snprintf(e->model_name, sizeof(e->model_name), "%s", name);
    if (want_files && !e->model_files[0][0]) memcpy(e->model_files, files, sizeof e->model_files);
    pl_engine_update_state_locked(e, PL_ERROR_WORKER_FAILED);
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

/* A device fault is sticky (the backend stays unhealthy): the worker takes no more jobs,
 * and every job it still computes for fails with device_fault (their sessions live on the
 * broken device; none of their output is presented as complete: the slot release removes
 * <id>.out.part). Jobs whose frames were all computed before the fault are left to finish.
 * The other workers go on; with none left the engine is FAILED (readyz 503). [mu held] */
static void worker_fault_locked(struct pl_worker * w, const char * what) {
    struct pl_engine * e = w->e;
    if (w->healthy) w->faults++;
    w->healthy = false;
    snprintf(w->error, sizeof(w->error), "device fault: %.230s", what);
    char m[300];
    snprintf(m, sizeof(m), "worker %.39s had a device fault: %.200s", w->name, what);
    for (int i = 0; i < e->o.max_active_per_worker; i++) {
        struct pl_job * j = w->slots[i].job;
        if (j && !j->wrk_done && !j->wrk_eof) pl_job_finish_locked(j, PL_JOB_FAILED, PL_ERROR_DEVICE_FAULT, m);
    }
    pl_engine_update_state_locked(e, PL_ERROR_DEVICE_FAULT);
    pl_post_locked(e, NULL, PL_EV_ENGINE);
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
    enum pl_error_code code = st == INFVSR_ERR_DEVICE ? PL_ERROR_DEVICE_FAULT
                            : st == INFVSR_ERR_NOMEM ? PL_ERROR_INTERNAL
                            : st == INFVSR_ERR_INVALID_ARG ? PL_ERROR_UNPROCESSABLE_VIDEO
                                                           : PL_ERROR_WORKER_FAILED;
    pthread_mutex_lock(&j->e->mu);
    if (st == INFVSR_ERR_DEVICE) worker_fault_locked(j->slot->w, m);
    pl_job_finish_locked(j, PL_JOB_FAILED, code, m);
    pthread_mutex_unlock(&j->e->mu);
}

/* The worker's free device memory as its backend reports it now (worker thread). */
static size_t device_free(struct pl_worker * w) {
    if (!w->be) return 0;
    struct infvsr_backend_caps caps;
    infvsr_backend_get_caps(w->be, &caps);
    return caps.mem_free;
}

static void teardown(struct pl_slot * s, struct pl_job * j) {
    bool had = s->session != NULL;
    infvsr_session_close(s->session);
    s->session = NULL;
    if (had) {
        size_t free_now = device_free(s->w);
        pthread_mutex_lock(&j->e->mu);
        s->w->session_bytes -= s->session_bytes;
        s->session_bytes = 0;
        s->w->mem_free = free_now;
        /* memory came free: sessions that did not fit are tried again */
        for (int i = 0; i < j->e->o.max_active_per_worker; i++) s->w->slots[i].waiting_mem = false;
        pthread_mutex_unlock(&j->e->mu);
    }
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
    if (j->slot) {
        j->slot->w->chunks++;
        j->slot->w->frames += (uint64_t)frames;
    }
    pl_post_locked(e, j, PL_EV_PROGRESS);
    pthread_mutex_unlock(&e->mu);
}

/* Frames pulled in a turn that computed no chunk (the rest of an earlier chunk). */
static void count_frames(struct pl_job * j, int frames) {
    pthread_mutex_lock(&j->e->mu);
    if (j->slot) j->slot->w->frames += (uint64_t)frames;
    pthread_mutex_unlock(&j->e->mu);
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

/* Session bytes measured for this LR size by an earlier open on any worker (0: unknown).
 * [mu held] */
static size_t sizing_lookup_locked(struct pl_engine * e, int w, int h, int scale) {
    for (int i = 0; i < e->n_sizing; i++)
        if (e->sizing[i].w == w && e->sizing[i].h == h && e->sizing[i].scale == scale) return e->sizing[i].bytes;
    return 0;
}

static void sizing_store_locked(struct pl_engine * e, int w, int h, int scale, size_t bytes) {
    if (sizing_lookup_locked(e, w, h, scale)) return;
    int n = (int)(sizeof(e->sizing) / sizeof(e->sizing[0]));
    int i = e->n_sizing < n ? e->n_sizing++ : (int)(bytes % (size_t)n); /* full: overwrite one */
    e->sizing[i].w = w;
    e->sizing[i].h = h;
    e->sizing[i].scale = scale;
    e->sizing[i].bytes = bytes;
}

static size_t budget(size_t free_bytes, int64_t reserve) {
    return free_bytes > (size_t)reserve ? free_bytes - (size_t)reserve : 0;
}

enum fit { FIT_YES, FIT_LATER, FIT_NEVER };

/* Placement by memory (a device with its own memory only): a session of `need` bytes (0:
 * not measured yet, try) fits when the worker's free memory less the reserve holds it. One
 * that does not fit now but would on the idle worker waits for a session of this worker to
 * close (the job stays here: its decode already runs on this slot); one that would not fit
 * even idle is refused. [mu held] */
static enum fit check_fit_locked(struct pl_slot * s, size_t need, size_t free_now, char * why, size_t why_len) {
    struct pl_worker * w = s->w;
    struct pl_engine * e = w->e;
    if (w->mem_total == 0 || need == 0) return FIT_YES;
    size_t idle = budget(w->idle_free, e->o.device_reserve_bytes);
    if (need > idle) {
        snprintf(why, why_len, "the job needs %zu MiB of device memory for its session; worker %s has %zu MiB for "
                 "sessions when idle (free memory after the model, less device_reserve_mb)",
                 (need + (1 << 20) - 1) >> 20, w->name, idle >> 20);
        return FIT_NEVER;
    }
    return need > budget(free_now, e->o.device_reserve_bytes) ? FIT_LATER : FIT_YES;
}

/* Opens the job's session; false when the slot has nothing to run yet (waiting for memory)
 * or the job failed. */
static bool open_session(struct pl_slot * s, struct pl_job * j) {
    struct pl_engine * e = j->e;
    struct pl_worker * w = s->w;
    struct infvsr_err err = { 0 };
    struct infvsr_session_opts so = infvsr_session_opts_default(j->info.width, j->info.height);
    so.scale = j->spec.scale;
    so.scene_detection = j->spec.scene_detect;
    if (j->spec.scene_threshold > 0) so.scene_threshold = j->spec.scene_threshold;
    if (j->spec.reference_threshold > 0) so.reference_threshold = j->spec.reference_threshold;
    char why[256];
    size_t free_now = device_free(w);
    pthread_mutex_lock(&e->mu);
    size_t need = sizing_lookup_locked(e, so.width, so.height, so.scale);
    enum fit f = check_fit_locked(s, need, free_now, why, sizeof(why));
    bool others = w->session_bytes > 0;
    if (f == FIT_LATER && others) s->waiting_mem = true;
    pthread_mutex_unlock(&e->mu);
    if (f == FIT_LATER && others) return false;
    if (f == FIT_NEVER) {
        infvsr_err_set(&err, INFVSR_ERR_INVALID_ARG, "%s", why);
        fail_job(j, INFVSR_ERR_INVALID_ARG, "too large for the device", &err);
        teardown(s, j);
        return false;
    }
    enum infvsr_status st = infvsr_session_open(w->model, &so, &s->session, &err);
    if (st == INFVSR_ERR_NOMEM && w->mem_total > 0) {
        /* Not measured yet (or the device is fuller than it said): with other sessions open
         * it may fit once they close; alone on the worker it never will. */
        pthread_mutex_lock(&e->mu);
        others = w->session_bytes > 0;
        if (others) s->waiting_mem = true;
        size_t idle = budget(w->idle_free, e->o.device_reserve_bytes);
        pthread_mutex_unlock(&e->mu);
        if (others) return false;
        char cause[96];
        snprintf(cause, sizeof(cause), "%.95s", err.msg); /* err is rewritten below */
        infvsr_err_set(&err, INFVSR_ERR_INVALID_ARG,
                       "the job's session (%dx%d, scale %d) does not fit in the device memory of worker %s: %zu MiB "
                       "for sessions when idle (free memory after the model, less device_reserve_mb); %s",
                       so.width, so.height, so.scale, w->name, idle >> 20, cause);
        fail_job(j, INFVSR_ERR_INVALID_ARG, "too large for the device", &err);
        teardown(s, j);
        return false;
    }
    if (st != INFVSR_OK) {
        fail_job(j, st, "cannot open the engine session", &err);
        teardown(s, j);
        return false;
    }
    struct infvsr_session_stats ss;
    infvsr_session_get_stats(s->session, &ss);
    free_now = device_free(w);
    pthread_mutex_lock(&e->mu);
    sizing_store_locked(e, so.width, so.height, so.scale, ss.session_bytes);
    s->session_bytes = ss.session_bytes;
    w->session_bytes += ss.session_bytes;
    w->mem_free = free_now;
    pthread_mutex_unlock(&e->mu);
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
    int pulled = 0;
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
        pulled++;
        pthread_mutex_lock(&e->mu);
        j->sr.pts[si] = pts;
        j->sr.count++;
        pthread_cond_broadcast(&j->cv);
        pthread_mutex_unlock(&e->mu);
    }
    if (s->hook_chunks != chunks0) count_chunk(j, chunk_s, pulled);
    else if (pulled > 0) count_frames(j, pulled);
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
        else if (!e->is_null && !s->session) a = s->waiting_mem ? ACT_NONE : ACT_OPEN;
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
        double t0 = pl_now();
        if (a == ACT_TEARDOWN) teardown(s, j);
        else if (a == ACT_OPEN) (void)open_session(s, j);
        else if (e->is_null) turn_null(s, j);
        else turn_model(s, j);
        double dt = pl_now() - t0;
        pthread_mutex_lock(&e->mu);
        if (a == ACT_TURN) w->busy_s += dt;
    }
    pthread_mutex_unlock(&e->mu);
    infvsr_model_close(w->model);
    if (w->be) infvsr_backend_free(w->be);
    return NULL;
}
