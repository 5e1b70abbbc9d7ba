/* The engine: options, threads (workers, slot media threads, notifier), admission state,
 * promotion of queued jobs into slots, health and metrics (pipeline.h, pl_internal.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pl_internal.h"

const double PL_LATENCY_BUCKETS[PL_N_LATENCY_BUCKETS] = {
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, INFINITY,
};

double pl_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void pl_hist_observe(struct pl_histogram * h, double seconds) {
    if (!(seconds >= 0)) seconds = 0;
    int b = 0;
    while (b < PL_N_LATENCY_BUCKETS - 1 && seconds > PL_LATENCY_BUCKETS[b]) b++;
    h->counts[b]++;
    h->count++;
    h->sum += seconds;
}

struct pl_engine_opts pl_engine_opts_default(void) {
    struct pl_engine_opts o;
    memset(&o, 0, sizeof(o));
    o.model = "null";
    o.spool_dir = "/var/spool/infvsrd";
    o.workers = 1;
    o.threads = 0;
    o.max_active_per_worker = 2;
    o.max_queued_jobs = 16;
    o.input_lead_bytes = 32LL << 20;
    o.max_input_bytes = 16LL << 30;
    o.frame_queue = 24;
    o.output_queue = 24;
    o.max_frame_pixels = 1920LL * 1080LL;
    o.max_dimension = 4096;
    o.decode_deadline_s = 0;
    o.device_reserve_bytes = 512LL << 20;
    return o;
}

/* ---- notifier ---- */

void pl_post_locked(struct pl_engine * e, struct pl_job * j, unsigned events) {
    if (e->notifier_quit || !e->o.notify || events == 0) return;
    if (!j) {
        e->engine_ev |= events;
    } else {
        if (j->ev_pending == 0) {
            atomic_fetch_add(&j->refs, 1); /* the list's reference */
            j->ev_next = NULL;
            if (e->ev_tail) e->ev_tail->ev_next = j;
            else e->ev_head = j;
            e->ev_tail = j;
        }
        j->ev_pending |= events;
    }
    pthread_cond_signal(&e->notify_cv);
}

/* Events are coalesced per job (bits OR-ed while the job waits in the list), so a burst
 * of frames costs the loop one wake-up, and the callback never runs under a lock. */
static void * notifier_main(void * arg) {
    struct pl_engine * e = arg;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        if (e->zombies) {
            struct pl_job * z = e->zombies;
            e->zombies = z->zombie_next;
            pthread_mutex_unlock(&e->mu);
            pl_job_free(z);
            pthread_mutex_lock(&e->mu);
            continue;
        }
        if (e->engine_ev) {
            unsigned ev = e->engine_ev;
            e->engine_ev = 0;
            pthread_mutex_unlock(&e->mu);
            e->o.notify(e->o.notify_user, NULL, ev);
            pthread_mutex_lock(&e->mu);
            continue;
        }
        if (e->ev_head) {
            struct pl_job * j = e->ev_head;
            e->ev_head = j->ev_next;
            if (!e->ev_head) e->ev_tail = NULL;
            unsigned ev = j->ev_pending;
            j->ev_pending = 0;
            j->ev_next = NULL;
            pthread_mutex_unlock(&e->mu);
            e->o.notify(e->o.notify_user, j, ev);
            pl_job_unref(j);
            pthread_mutex_lock(&e->mu);
            continue;
        }
        if (e->notifier_quit) break;
        pthread_cond_wait(&e->notify_cv, &e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* ---- job state transitions ---- */

static void fifo_remove_locked(struct pl_engine * e, struct pl_job * j) {
    struct pl_job ** pp = &e->fifo_head;
    struct pl_job * prev = NULL;
    while (*pp && *pp != j) {
        prev = *pp;
        pp = &(*pp)->fifo_next;
    }
    if (!*pp) return;
    *pp = j->fifo_next;
    if (e->fifo_tail == j) e->fifo_tail = prev;
    j->fifo_next = NULL;
    j->in_fifo = false;
    pl_job_unref_locked(j); /* the FIFO's reference */
}

void pl_job_unref_locked(struct pl_job * j) {
    if (atomic_fetch_sub(&j->refs, 1) != 1) return;
    struct pl_engine * e = j->e;
    j->zombie_next = e->zombies; /* freed by the notifier, outside the lock */
    e->zombies = j;
    pthread_cond_signal(&e->notify_cv);
}

void pl_job_finish_locked(struct pl_job * j, enum pl_job_state st, enum pl_error_code code, const char * msg) {
    struct pl_engine * e = j->e;
    if (pl_job_state_terminal(j->state)) return;
    if (j->state == PL_JOB_CREATED) e->awaiting--;
    j->state = st;
    j->error_code = code;
    snprintf(j->error, sizeof(j->error), "%s", msg ? msg : "");
    j->finished_at = pl_now();
    atomic_store(&j->stop, st != PL_JOB_SUCCEEDED);
    e->non_terminal--;
    if (j->live_prev) j->live_prev->live_next = j->live_next;
    else e->live = j->live_next;
    if (j->live_next) j->live_next->live_prev = j->live_prev;
    j->live_prev = j->live_next = NULL;
    if (st == PL_JOB_SUCCEEDED) e->m.jobs_succeeded++;
    else if (st == PL_JOB_FAILED) e->m.jobs_failed++;
    else e->m.jobs_cancelled++;
    if (j->in_fifo) fifo_remove_locked(e, j);
    pthread_cond_broadcast(&j->cv);
    if (j->slot) pthread_cond_broadcast(&j->slot->w->cv);
    unsigned ev = PL_EV_FINISHED | PL_EV_PROGRESS;
    if (j->want_space) {
        j->want_space = false; /* the next write answers with the terminal state */
        ev |= PL_EV_INPUT_SPACE;
    }
    pl_post_locked(e, j, ev);
}

bool pl_errno_no_space(int err_no) { return err_no == ENOSPC || err_no == EDQUOT || err_no == EFBIG; }

void pl_job_fail_no_space_locked(struct pl_job * j, const char * what, int err_no) {
    const char * why = err_no == EDQUOT ? "the spool disk quota is exhausted"
                     : err_no == EFBIG  ? "the spool file reached the file size limit"
                                        : "the spool disk is full";
    char m[256];
    snprintf(m, sizeof(m), "%.80s: %s (%s)", what, why, strerror(err_no));
    pl_job_finish_locked(j, PL_JOB_FAILED, PL_ERROR_INSUFFICIENT_STORAGE, m);
}

static struct pl_slot * free_slot_locked(struct pl_engine * e) {
    struct pl_worker * best = NULL;
    /* scanned from the worker after the last one chosen: equals take turns, so jobs that
     * arrive one after another spread over idle workers too */
    for (int k = 0; k < e->n_workers; k++) {
        struct pl_worker * w = &e->workers[(e->place_rr + k) % e->n_workers];
        if (!w->loaded || !w->healthy || w->active >= e->o.max_active_per_worker) continue;
        /* least loaded first; among equals the one with the most free device memory */
        if (!best || w->active < best->active || (w->active == best->active && w->mem_free > best->mem_free))
            best = w;
    }
    if (!best) return NULL;
    e->place_rr = (best->id + 1) % e->n_workers;
    for (int s = 0; s < e->o.max_active_per_worker; s++)
        if (!best->slots[s].job) return &best->slots[s];
    return NULL;
}

void pl_engine_update_state_locked(struct pl_engine * e, enum pl_error_code code) {
    bool all_loaded = true, any_ok = false;
    const struct pl_worker * last_bad = NULL;
    for (int i = 0; i < e->n_workers; i++) {
        const struct pl_worker * w = &e->workers[i];
        all_loaded = all_loaded && w->loaded;
        if (w->loaded && w->healthy) any_ok = true;
        if (w->loaded && !w->healthy) last_bad = w;
    }
    enum pl_engine_state before = e->state;
    if (any_ok) e->state = PL_ENGINE_READY;
    else if (all_loaded) e->state = PL_ENGINE_FAILED;
    else e->state = PL_ENGINE_LOADING;
    if (e->state == PL_ENGINE_FAILED && last_bad) {
        if (e->n_workers == 1) snprintf(e->error, sizeof(e->error), "worker %s: %.200s", last_bad->name, last_bad->error);
        else snprintf(e->error, sizeof(e->error), "every worker failed; worker %s: %.180s", last_bad->name,
                      last_bad->error);
        /* nothing will ever run the queued jobs */
        while (e->fifo_head) pl_job_finish_locked(e->fifo_head, PL_JOB_FAILED, code, e->error);
    } else if (e->state == PL_ENGINE_READY) {
        e->error[0] = 0;
    }
    if (before != e->state) pl_post_locked(e, NULL, PL_EV_ENGINE);
}

void pl_promote_locked(struct pl_engine * e) {
    if (e->state != PL_ENGINE_READY || e->stopping) return;
    while (e->fifo_head) {
        struct pl_slot * s = free_slot_locked(e);
        if (!s) return;
        struct pl_job * j = e->fifo_head;
        e->fifo_head = j->fifo_next;
        if (!e->fifo_head) e->fifo_tail = NULL;
        j->fifo_next = NULL;
        j->in_fifo = false;
        s->job = j; /* the FIFO's reference moves to the slot */
        j->slot = s;
        j->dec_done = j->enc_done = j->wrk_done = false;
        j->state = PL_JOB_RUNNING;
        j->started_at = pl_now();
        pl_hist_observe(&e->m.queue_seconds, j->started_at - j->first_input_at);
        s->w->active++;
        e->active++;
        pthread_cond_broadcast(&s->cv);
        pthread_cond_broadcast(&s->w->cv);
        pl_post_locked(e, j, PL_EV_PROGRESS);
    }
}

static void free_packets(struct pl_packet_node * n) {
    while (n) {
        struct pl_packet_node * next = n->next;
        infvsr_media_packet_free(n->p);
        free(n);
        n = next;
    }
}

void pl_slot_party_done(struct pl_job * j, bool * flag) {
    struct pl_engine * e = j->e;
    pthread_mutex_lock(&e->mu);
    *flag = true;
    if (flag == &j->dec_done && j->want_space) {
        j->want_space = false; /* nothing reads the input any more: writes are dropped */
        pl_post_locked(e, j, PL_EV_INPUT_SPACE);
    }
    if (!(j->dec_done && j->enc_done && j->wrk_done)) {
        pthread_cond_broadcast(&j->cv);
        if (j->slot) pthread_cond_broadcast(&j->slot->w->cv);
        pthread_mutex_unlock(&e->mu);
        return;
    }
    /* All three threads are finished with the job: free its buffers and the slot. */
    struct pl_slot * s = j->slot;
    s->job = NULL;
    j->slot = NULL;
    s->w->active--;
    e->active--;
    struct pl_ring lr = j->lr, sr = j->sr;
    memset(&j->lr, 0, sizeof(j->lr));
    memset(&j->sr, 0, sizeof(j->sr));
    struct pl_packet_node * pk = j->pk_head;
    j->pk_head = j->pk_tail = NULL;
    j->pk_count = 0;
    j->pk_bytes = 0;
    if (j->state != PL_JOB_SUCCEEDED && j->out_created && !j->renamed) {
        j->out_created = false;
        unlink(j->part_path);
    }
    pl_promote_locked(e);
    pthread_cond_broadcast(&s->cv);
    pthread_cond_broadcast(&s->w->cv);
    pthread_mutex_unlock(&e->mu);

    pl_ring_free(&lr);
    pl_ring_free(&sr);
    free_packets(pk);
    pthread_mutex_lock(&j->in_mu);
    if (j->in_fd >= 0) close(j->in_fd);
    j->in_fd = -1;
    pthread_mutex_unlock(&j->in_mu);
    pl_job_unref(j); /* the slot's reference */
}

/* ---- start / stop ---- */

static void engine_free(struct pl_engine * e) {
    for (int i = 0; i < e->n_workers; i++) {
        struct pl_worker * w = &e->workers[i];
        if (w->slots) {
            for (int s = 0; s < e->o.max_active_per_worker; s++) pthread_cond_destroy(&w->slots[s].cv);
            free(w->slots);
        }
        pthread_cond_destroy(&w->cv);
    }
    free(e->workers);
    pthread_cond_destroy(&e->notify_cv);
    pthread_mutex_destroy(&e->mu);
    free(e->model);
    free(e->spool_dir);
    free(e);
}

void pl_engine_unref(struct pl_engine * e) {
    if (atomic_fetch_sub(&e->refs, 1) == 1) engine_free(e);
}

static enum infvsr_status check_opts(const struct pl_engine_opts * o, struct infvsr_err * err) {
    if (!o->model || !o->model[0]) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "model: empty");
    if (!o->spool_dir || !o->spool_dir[0]) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "spool_dir: empty");
    if (o->workers < 1 || o->workers > PL_MAX_WORKERS)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "workers: must be 1..%d (got %d)", PL_MAX_WORKERS,
                              o->workers);
    if (o->device_reserve_bytes < 0)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "device_reserve_mb: must be >= 0");
    if (o->threads < 0) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "threads: must be >= 0");
    if (o->max_active_per_worker < 1 || o->max_active_per_worker > 64)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "max_active_jobs_per_worker: must be 1..64 (got %d)",
                              o->max_active_per_worker);
    if (o->max_queued_jobs < 0) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "max_queued_jobs: must be >= 0");
    if (o->input_lead_bytes < 65536)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "input_lead_bytes: must be >= 65536 (got %lld)",
                              (long long)o->input_lead_bytes);
    if (o->max_input_bytes < 1) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "max_upload_bytes: must be > 0");
    if (o->frame_queue < 1 || o->frame_queue > 4096 || o->output_queue < 1 || o->output_queue > 4096)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "frame_queue, output_queue: must be 1..4096");
    if (o->max_frame_pixels < 1) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "max_frame_pixels: must be > 0");
    if (o->max_dimension < 1 || o->max_dimension > 16384)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "max_dimension: must be 1..16384");
    if (!(o->decode_deadline_s >= 0))
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "decode_deadline_s: must be >= 0");
    struct stat st;
    if (stat(o->spool_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return infvsr_err_set(err, INFVSR_ERR_IO, "spool_dir %.200s: not a directory", o->spool_dir);
    if (access(o->spool_dir, W_OK | X_OK) != 0)
        return infvsr_err_set(err, INFVSR_ERR_IO, "spool_dir %.200s: not writable (%s)", o->spool_dir,
                              strerror(errno));
    return INFVSR_OK;
}

enum infvsr_status pl_engine_start(const struct pl_engine_opts * o, struct pl_engine ** out,
                                   struct infvsr_err * err) {
    *out = NULL;
    if (!o) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "engine options: NULL");
    enum infvsr_status st = check_opts(o, err);
    if (st != INFVSR_OK) return st;
    struct pl_engine * e = calloc(1, sizeof(*e));
    if (!e) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "engine: out of memory");
    e->o = *o;
    e->o.device = NULL; /* copied into each worker; the caller's strings need not outlive this */
    memset(e->o.worker_device, 0, sizeof(e->o.worker_device));
    memset(e->o.worker_name, 0, sizeof(e->o.worker_name));
    e->model = strdup(o->model);
    e->spool_dir = strdup(o->spool_dir);
    e->o.model = e->model;
    e->o.spool_dir = e->spool_dir;
    e->is_null = strcmp(o->model, "null") == 0;
    atomic_init(&e->refs, 1);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->notify_cv, NULL);
    e->state = PL_ENGINE_LOADING;
    snprintf(e->model_name, sizeof(e->model_name), "%s", e->is_null ? "null" : "");
    e->n_workers = o->workers;
    e->workers = calloc((size_t)o->workers, sizeof(*e->workers));
    if (!e->model || !e->spool_dir || !e->workers) {
        engine_free(e);
        return infvsr_err_set(err, INFVSR_ERR_NOMEM, "engine: out of memory");
    }
    for (int i = 0; i < e->n_workers; i++) {
        struct pl_worker * w = &e->workers[i];
        w->e = e;
        w->id = i;
        const char * dev = o->worker_device[i] ? o->worker_device[i] : o->device ? o->device : "cpu";
        snprintf(w->device, sizeof(w->device), "%s", dev);
        snprintf(w->name, sizeof(w->name), "%s", o->worker_name[i] ? o->worker_name[i] : dev);
        w->fault_at_op = o->devsim_fault_at_op[i];
        pthread_cond_init(&w->cv, NULL);
        w->slots = calloc((size_t)o->max_active_per_worker, sizeof(*w->slots));
        if (!w->slots) {
            e->n_workers = i + 1;
            engine_free(e);
            return infvsr_err_set(err, INFVSR_ERR_NOMEM, "engine: out of memory");
        }
        for (int s = 0; s < o->max_active_per_worker; s++) {
            w->slots[s].w = w;
            w->slots[s].index = s;
            pthread_cond_init(&w->slots[s].cv, NULL);
        }
    }
    /* Threads: the notifier first (others post to it), then workers and slot threads. */
    bool ok = pthread_create(&e->notifier, NULL, notifier_main, e) == 0;
    e->notifier_started = ok;
    for (int i = 0; ok && i < e->n_workers; i++) {
        struct pl_worker * w = &e->workers[i];
        for (int s = 0; ok && s < o->max_active_per_worker; s++) {
            struct pl_slot * sl = &w->slots[s];
            ok = (sl->dec_started = pthread_create(&sl->dec_thread, NULL, pl_decode_main, sl) == 0);
            if (ok) ok = (sl->enc_started = pthread_create(&sl->enc_thread, NULL, pl_encode_main, sl) == 0);
        }
        if (ok) ok = (w->started = pthread_create(&w->thread, NULL, pl_worker_main, w) == 0);
    }
    if (!ok) {
        pl_engine_stop(e);
        return infvsr_err_set(err, INFVSR_ERR_NOMEM, "engine: cannot start its threads");
    }
    *out = e;
    return INFVSR_OK;
}

void pl_engine_stop(struct pl_engine * e) {
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    e->stopping = true;
    /* every unfinished job, with or without input, running or not */
    while (e->live) pl_job_finish_locked(e->live, PL_JOB_CANCELLED, PL_ERROR_CANCELLED,
                                         "cancelled: the server is shutting down");
    for (int i = 0; i < e->n_workers; i++) {
        struct pl_worker * w = &e->workers[i];
        for (int s = 0; s < e->o.max_active_per_worker; s++) {
            pthread_cond_broadcast(&w->slots[s].cv);
        }
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&e->mu);
    for (int i = 0; i < e->n_workers; i++) {
        struct pl_worker * w = &e->workers[i];
        for (int s = 0; s < e->o.max_active_per_worker; s++) {
            struct pl_slot * sl = &w->slots[s];
            if (sl->dec_started) pthread_join(sl->dec_thread, NULL);
            if (sl->enc_started) pthread_join(sl->enc_thread, NULL);
        }
        if (w->started) pthread_join(w->thread, NULL);
    }
    pthread_mutex_lock(&e->mu);
    e->notifier_quit = true; /* it delivers what is queued, then exits */
    pthread_cond_signal(&e->notify_cv);
    pthread_mutex_unlock(&e->mu);
    if (e->notifier_started) pthread_join(e->notifier, NULL);
    while (e->zombies) { /* only when the notifier never started */
        struct pl_job * z = e->zombies;
        e->zombies = z->zombie_next;
        pl_job_free(z);
    }
    pl_engine_unref(e);
}

/* ---- health, metrics ---- */

void pl_engine_health(struct pl_engine * e, struct pl_engine_health * out) {
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&e->mu);
    out->state = e->state;
    snprintf(out->model_name, sizeof(out->model_name), "%s", e->model_name);
    memcpy(out->model_files, e->model_files, sizeof out->model_files);
    snprintf(out->error, sizeof(out->error), "%s", e->error);
    out->n_workers = e->n_workers;
    int active_live = 0;
    for (int i = 0; i < e->n_workers && i < PL_MAX_WORKERS; i++) {
        struct pl_worker * w = &e->workers[i];
        struct pl_worker_health * h = &out->workers[i];
        h->id = w->id;
        h->healthy = w->loaded && w->healthy;
        h->loaded = w->loaded;
        h->active_jobs = w->active;
        snprintf(h->name, sizeof(h->name), "%s", w->name);
        snprintf(h->device, sizeof(h->device), "%s", w->device);
        snprintf(h->backend, sizeof(h->backend), "%s", w->backend);
        snprintf(h->error, sizeof(h->error), "%s", w->error);
        h->mem_total = w->mem_total;
        h->mem_free = w->mem_free;
        h->model_bytes = w->model_bytes;
        h->session_bytes = w->session_bytes;
        h->chunks = w->chunks;
        h->frames = w->frames;
        h->faults = w->faults;
        h->busy_seconds = w->busy_s;
        for (int s = 0; s < e->o.max_active_per_worker; s++) {
            const struct pl_slot * sl = &w->slots[s];
            if (sl->job && !pl_job_state_terminal(sl->job->state)) {
                active_live++;
                if (!sl->job->wrk_done && (sl->waiting_mem || !sl->job->probed)) h->waiting_jobs++;
            }
        }
    }
    int fifo = 0;
    for (struct pl_job * j = e->fifo_head; j; j = j->fifo_next) fifo++;
    out->jobs_active = e->active;
    out->jobs_queued = fifo;
    /* every other non-terminal job is still waiting for its first input byte */
    out->jobs_awaiting_input = e->non_terminal - active_live - fifo > 0 ? e->non_terminal - active_live - fifo : 0;
    pthread_mutex_unlock(&e->mu);
}

void pl_engine_metrics(struct pl_engine * e, struct pl_metrics * out) {
    pthread_mutex_lock(&e->mu);
    *out = e->m;
    pthread_mutex_unlock(&e->mu);
}
