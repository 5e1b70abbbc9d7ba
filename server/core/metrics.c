/* GET /metrics: Prometheus text exposition (format 0.0.4). Names are a contract with the
 * deployment (HPA on infvsrd_jobs_queued) and the tests: listed in docs/OPERATIONS.md ("Metrics"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "srv.h"

void srv_metrics_count_http(struct srv * s, const char * method, enum srv_route route, int status) {
    for (int i = 0; i < s->n_http_counters; i++) {
        struct srv_http_counter * c = &s->http_counters[i];
        if (c->route == route && c->status == status && strcmp(c->method, method) == 0) {
            c->n++;
            return;
        }
    }
    if (s->n_http_counters == s->cap_http_counters) {
        int cap = s->cap_http_counters ? s->cap_http_counters * 2 : 32;
        struct srv_http_counter * p = realloc(s->http_counters, (size_t)cap * sizeof(*p));
        if (!p) return;
        s->http_counters = p;
        s->cap_http_counters = cap;
    }
    struct srv_http_counter * c = &s->http_counters[s->n_http_counters++];
    /* methods are client-chosen strings: keep the label set bounded */
    static const char * const known[] = { "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", NULL };
    const char * m = "OTHER";
    for (int i = 0; known[i]; i++)
        if (strcmp(known[i], method) == 0) m = known[i];
    snprintf(c->method, sizeof(c->method), "%s", m);
    c->route = route;
    c->status = status;
    c->n = 1;
}

static void histogram(struct srv_buf * b, const char * name, const char * help, const struct pl_histogram * h) {
    srv_buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < PL_N_LATENCY_BUCKETS; i++) {
        cum += h->counts[i];
        if (i == PL_N_LATENCY_BUCKETS - 1) srv_buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->count);
        else srv_buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, PL_LATENCY_BUCKETS[i], (unsigned long long)cum);
    }
    srv_buf_printf(b, "%s_sum %.9g\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->count);
}

static void metric(struct srv_buf * b, const char * name, const char * type, const char * help, double v) {
    srv_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

static double rss_bytes(void) {
    FILE * f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    long pages = 0, resident = 0;
    int n = fscanf(f, "%ld %ld", &pages, &resident);
    fclose(f);
    return n == 2 ? (double)resident * (double)sysconf(_SC_PAGESIZE) : 0;
}

char * srv_metrics_render(struct srv * s, size_t * len) {
    struct pl_engine_health h;
    struct pl_metrics m;
    pl_engine_health(s->engine, &h);
    pl_engine_metrics(s->engine, &m);
    bool ready = h.state == PL_ENGINE_READY && !s->draining; /* any worker ready (as /readyz) */

    struct srv_buf b = { 0 };
    metric(&b, "infvsrd_jobs_queued", "gauge", "Jobs with input waiting for a worker slot (queue depth).", h.jobs_queued);
    metric(&b, "infvsrd_jobs_awaiting_input", "gauge", "Created jobs without an input byte yet.", h.jobs_awaiting_input);
    metric(&b, "infvsrd_jobs_active", "gauge", "Jobs holding a worker slot (active streams).", h.jobs_active);
    srv_buf_printf(&b, "# HELP infvsrd_jobs_total Jobs that reached a terminal state.\n# TYPE infvsrd_jobs_total counter\n"
                       "infvsrd_jobs_total{state=\"succeeded\"} %llu\ninfvsrd_jobs_total{state=\"failed\"} %llu\n"
                       "infvsrd_jobs_total{state=\"cancelled\"} %llu\n",
                   (unsigned long long)m.jobs_succeeded, (unsigned long long)m.jobs_failed,
                   (unsigned long long)m.jobs_cancelled);
    metric(&b, "infvsrd_frames_in_total", "counter", "LR frames decoded.", (double)m.frames_in);
    metric(&b, "infvsrd_frames_out_total", "counter", "SR frames encoded.", (double)m.frames_out);
    metric(&b, "infvsrd_chunks_total", "counter", "Chunks computed by the workers.", (double)m.chunks);
    metric(&b, "infvsrd_upload_bytes_total", "counter", "Input bytes stored.", (double)m.input_bytes);
    metric(&b, "infvsrd_output_bytes_total", "counter", "Output bytes written.", (double)m.output_bytes);
    histogram(&b, "infvsrd_chunk_seconds", "Worker time per chunk.", &m.chunk_seconds);
    histogram(&b, "infvsrd_time_to_first_frame_seconds", "First input byte to first output byte.", &m.time_to_first_frame);
    histogram(&b, "infvsrd_queue_seconds", "First input byte to a worker slot.", &m.queue_seconds);

    srv_buf_printf(&b, "# HELP infvsrd_http_requests_total HTTP requests by method, route and status.\n"
                       "# TYPE infvsrd_http_requests_total counter\n");
    for (int i = 0; i < s->n_http_counters; i++) {
        const struct srv_http_counter * c = &s->http_counters[i];
        srv_buf_printf(&b, "infvsrd_http_requests_total{method=\"%s\",route=\"%s\",status=\"%d\"} %llu\n", c->method,
                       srv_route_name(c->route), c->status, (unsigned long long)c->n);
    }
    srv_buf_printf(&b, "# HELP infvsrd_errors_total Error responses by code (proto/errors.json).\n"
                       "# TYPE infvsrd_errors_total counter\n");
    for (int e = 0; e < SRV_E_COUNT; e++)
        srv_buf_printf(&b, "infvsrd_errors_total{code=\"%s\"} %llu\n", srv_errors[e].code,
                       (unsigned long long)s->errors_by_code[e]);
    metric(&b, "infvsrd_ready", "gauge", "1 when /readyz answers 200.", ready ? 1 : 0);
    srv_workers_metrics(&b, &h);
    metric(&b, "infvsrd_active_connections", "gauge", "Open HTTP connections.", s->n_connections);
    metric(&b, "infvsrd_suspended_connections", "gauge", "Connections suspended (backpressure, waiting for output).",
           s->n_suspended);
    static const char * const why[5] = { "none", "input", "probe", "output", "sse" };
    srv_buf_printf(&b, "# HELP infvsrd_suspends_total Connection suspensions by reason.\n"
                       "# TYPE infvsrd_suspends_total counter\n");
    for (int i = 1; i < 5; i++)
        srv_buf_printf(&b, "infvsrd_suspends_total{reason=\"%s\"} %llu\n", why[i], (unsigned long long)s->suspends[i]);
    static const char * const closes[SRV_CONN_CLOSE_COUNT] = { "header_timeout", "evicted", "per_client_limit" };
    srv_buf_printf(&b, "# HELP infvsrd_connections_closed_total Connections the daemon closed itself, by reason.\n"
                       "# TYPE infvsrd_connections_closed_total counter\n");
    for (int i = 0; i < SRV_CONN_CLOSE_COUNT; i++)
        srv_buf_printf(&b, "infvsrd_connections_closed_total{reason=\"%s\"} %llu\n", closes[i],
                       (unsigned long long)s->conn_closes[i]);
    metric(&b, "infvsrd_upload_cutoffs_total", "counter", "Uploads closed for going below min_upload_rate.",
           (double)s->upload_cutoffs);
    metric(&b, "infvsrd_rate_limit_untracked_total", "counter",
           "Requests let through unlimited: the rate-limit table had no room for their client.", (double)s->rate_untracked);
    metric(&b, "infvsrd_suspend_timeouts_total", "counter", "Requests failed after max_suspend_s.", (double)s->suspend_timeouts);
    metric(&b, "infvsrd_jobs_tracked", "gauge", "Jobs in the table (all states, until job_ttl_s).", s->n_jobs);
    srv_persist_metrics(s, &b); /* journal, recovery, per-tenant limits: never a tenant label */
    metric(&b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", rss_bytes());
    *len = b.len;
    return b.p;
}
