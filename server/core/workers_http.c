/* The workers as the HTTP side shows them: the `workers` array of /healthz and
 * GET /v1/models, the per-worker metrics (label worker="<name>", e.g. worker="devsim:1"),
 * and the log lines when a worker becomes ready or fails. */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "srv.h"

const char * srv_worker_state(const struct pl_worker_health * w) {
    return !w->loaded ? "loading" : w->healthy ? "ready" : "failed";
}

void srv_workers_json(struct srv_buf * b, const struct pl_engine_health * h) {
    srv_buf_add(b, "[", 1);
    for (int i = 0; i < h->n_workers && i < PL_MAX_WORKERS; i++) {
        const struct pl_worker_health * w = &h->workers[i];
        srv_buf_printf(b, "%s{\"id\":%d,\"name\":", i ? "," : "", w->id);
        srv_buf_json_str(b, w->name);
        srv_buf_add(b, ",\"device\":", 10);
        srv_buf_json_str(b, w->device);
        srv_buf_add(b, ",\"backend\":", 11);
        srv_buf_json_str(b, w->backend);
        srv_buf_printf(b,
                       ",\"state\":\"%s\",\"healthy\":%s,\"active_jobs\":%d,\"waiting_jobs\":%d,"
                       "\"memory\":{\"total_bytes\":%llu,\"free_bytes\":%llu,\"model_bytes\":%llu,"
                       "\"session_bytes\":%llu}",
                       srv_worker_state(w), w->healthy ? "true" : "false", w->active_jobs, w->waiting_jobs,
                       (unsigned long long)w->mem_total, (unsigned long long)w->mem_free,
                       (unsigned long long)w->model_bytes, (unsigned long long)w->session_bytes);
        if (w->error[0]) {
            srv_buf_add(b, ",\"error\":", 9);
            srv_buf_json_str(b, w->error);
        }
        srv_buf_add(b, "}", 1);
    }
    srv_buf_add(b, "]", 1);
}

static void family(struct srv_buf * b, const char * name, const char * type, const char * help) {
    srv_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void srv_workers_metrics(struct srv_buf * b, const struct pl_engine_health * h) {
    int n = h->n_workers < PL_MAX_WORKERS ? h->n_workers : PL_MAX_WORKERS;
    /* worker names are device names ([a-z0-9:/]), nothing to escape */
#define PER_WORKER(NAME, TYPE, HELP, FMT, EXPR)                                                \
    do {                                                                                       \
        family(b, NAME, TYPE, HELP);                                                           \
        for (int i = 0; i < n; i++) {                                                          \
            const struct pl_worker_health * w = &h->workers[i];                                \
            srv_buf_printf(b, NAME "{worker=\"%s\"} " FMT "\n", w->name, EXPR);                \
        }                                                                                      \
    } while (0)
    PER_WORKER("infvsrd_worker_healthy", "gauge", "1 while the worker is loaded and has no sticky device fault.",
               "%d", w->healthy ? 1 : 0);
    PER_WORKER("infvsrd_worker_chunks_total", "counter", "Chunks computed by the worker.", "%llu",
               (unsigned long long)w->chunks);
    PER_WORKER("infvsrd_worker_frames_total", "counter", "SR frames computed by the worker.", "%llu",
               (unsigned long long)w->frames);
    PER_WORKER("infvsrd_worker_busy_seconds_total", "counter", "Seconds the worker spent computing chunks.", "%.6f",
               w->busy_seconds);
    PER_WORKER("infvsrd_worker_active_jobs", "gauge", "Jobs placed on the worker (holding one of its slots).", "%d",
               w->active_jobs);
    PER_WORKER("infvsrd_worker_queue_depth", "gauge",
               "Jobs placed on the worker that wait to start computing (probe, device memory).", "%d",
               w->waiting_jobs);
    PER_WORKER("infvsrd_worker_model_bytes", "gauge", "Backend bytes of the model resident on the worker's device.",
               "%llu", (unsigned long long)w->model_bytes);
    PER_WORKER("infvsrd_worker_session_bytes", "gauge", "Backend bytes of the worker's open engine sessions.", "%llu",
               (unsigned long long)w->session_bytes);
    PER_WORKER("infvsrd_worker_memory_total_bytes", "gauge", "Device memory of the worker (0: host memory).", "%llu",
               (unsigned long long)w->mem_total);
    PER_WORKER("infvsrd_worker_memory_free_bytes", "gauge", "Free device memory of the worker, last measured.",
               "%llu", (unsigned long long)w->mem_free);
    PER_WORKER("infvsrd_worker_faults_total", "counter", "Device faults of the worker.", "%llu",
               (unsigned long long)w->faults);
#undef PER_WORKER
}

/* What was last logged per worker (the loop thread is the only caller). */
static char logged[PL_MAX_WORKERS];
static int  logged_engine = -1;

void srv_log_workers(struct srv * s, const struct pl_engine_health * h) {
    (void)s;
    for (int i = 0; i < h->n_workers && i < PL_MAX_WORKERS; i++) {
        const struct pl_worker_health * w = &h->workers[i];
        char st = !w->loaded ? 'l' : w->healthy ? 'r' : 'f';
        if (st == logged[i]) continue;
        logged[i] = st;
        if (st == 'r')
            LOG_INFO("worker %s ready backend=%s model_bytes=%llu memory_total=%llu memory_free=%llu", w->name,
                     w->backend, (unsigned long long)w->model_bytes, (unsigned long long)w->mem_total,
                     (unsigned long long)w->mem_free);
        else if (st == 'f') LOG_ERROR("worker %s failed: %s", w->name, w->error);
    }
    if ((int)h->state == logged_engine) return;
    logged_engine = (int)h->state;
    if (h->state == PL_ENGINE_READY) {
        LOG_INFO("engine ready model=%s workers=%d", h->model_name, h->n_workers);
        for (int f = 0; f < 4; f++) /* what each model file held (issue 19): the `infvsr verify-model` line */
            if (h->model_files[f][0]) LOG_INFO("model file %s", h->model_files[f]);
    }
    else if (h->state == PL_ENGINE_FAILED) LOG_ERROR("engine failed: %s", h->error);
}
