/* The loop's job table: jobs by id (hash with chaining), idempotency keys, the Job JSON,
 * reaping (TTL of finished jobs, expiry of uploads that stopped).
 *
 * DESIGN
 * A struct srv_job wraps one pipeline job (one pl_job reference) with what only HTTP
 * knows: the canonical spec, the idempotency key, which upload protocol claimed the input,
 * and the requests waiting on it. It is reference counted on the loop thread: the table
 * holds one reference while the job is visible, every request that looked the job up holds
 * one. Removal (DELETE, TTL, expiry, tus termination is NOT removal) takes it out of the
 * table at once (so the next lookup is a 404), deletes the pipeline job (cancel + files),
 * and wakes its suspended requests, which notice `deleted` and finish; the struct is freed
 * with its last request. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "srv.h"

static unsigned hash_id(const char * s) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h % SRV_JOB_BUCKETS;
}

struct srv_job * srv_job_find(struct srv * s, const char * id) {
    for (struct srv_job * j = s->buckets[hash_id(id)]; j; j = j->hnext)
        if (strcmp(j->id, id) == 0) return j;
    return NULL;
}

/* Linear: the table holds at most a few thousand jobs (admission + TTL). Keys are per
 * tenant: another tenant's key is not a conflict, and tells nothing about its jobs. */
struct srv_job * srv_job_find_idem(struct srv * s, const char * tenant, const char * key) {
    for (struct srv_link * l = s->jobs_all.next; l != &s->jobs_all; l = l->next) {
        struct srv_job * j = SRV_CONTAINER(l, struct srv_job, all_link);
        if (j->idem_key[0] && strcmp(j->idem_key, key) == 0 && strcmp(j->tenant, tenant) == 0) return j;
    }
    return NULL;
}

struct srv_job * srv_job_new(struct srv * s, const char * id, struct pl_job * pl, const char * spec_json,
                             const char * idem_key) {
    struct srv_job * j = calloc(1, sizeof(*j));
    if (!j) return NULL;
    j->spec_json = strdup(spec_json);
    if (!j->spec_json) {
        free(j);
        return NULL;
    }
    snprintf(j->id, sizeof(j->id), "%s", id);
    snprintf(j->idem_key, sizeof(j->idem_key), "%s", idem_key ? idem_key : "");
    j->pl = pl;
    j->seq = ++s->job_seq;
    j->refs = 1;
    j->in_table = true;
    j->created_unix = srv_unix_now();
    j->created_mono = srv_mono_now();
    j->last_input_mono = j->created_mono;
    j->tus_length = -1;
    j->seen_state = PL_JOB_CREATED;
    srv_list_init(&j->waiters);
    srv_list_init(&j->sse);
    unsigned b = hash_id(id);
    j->hnext = s->buckets[b];
    s->buckets[b] = j;
    srv_list_add(&s->jobs_all, &j->all_link);
    s->n_jobs++;
    return j;
}

struct srv_job * srv_job_hold(struct srv_job * j) {
    if (j) j->refs++;
    return j;
}

static void unlink_table(struct srv * s, struct srv_job * j) {
    if (!j->in_table) return;
    struct srv_job ** pp = &s->buckets[hash_id(j->id)];
    while (*pp && *pp != j) pp = &(*pp)->hnext;
    if (*pp) *pp = j->hnext;
    srv_list_del(&j->all_link);
    j->in_table = false;
    s->n_jobs--;
}

void srv_job_drop(struct srv * s, struct srv_job * j) {
    if (!j || --j->refs > 0) return;
    unlink_table(s, j);
    pl_job_unref(j->pl);
    free(j->spec_json);
    free(j);
}

void srv_job_remove(struct srv * s, struct srv_job * j, const char * why) {
    if (!j->in_table) return;
    RLOG(INFO, NULL, j->id, "job removed (%s)", why);
    srv_persist_removed(s, j); /* the record first: a crash after it only leaves orphan files */
    j->deleted = true;
    pl_job_delete(j->pl);
    unlink_table(s, j);
    srv_job_wake_all(j);
    srv_sse_on_event(s, j, PL_EV_FINISHED);
    srv_job_drop(s, j); /* the table's reference */
}

enum srv_error srv_job_error(struct srv_job * j, const struct pl_job_status * st, char * msg, size_t len) {
    (void)j;
    switch (st->error_code) {
    case PL_ERROR_UNPROCESSABLE_VIDEO:
        snprintf(msg, len, "%s", st->error[0] ? st->error : "the input is not a decodable video");
        return SRV_E_UNPROCESSABLE_VIDEO;
    case PL_ERROR_WORKER_FAILED:
        snprintf(msg, len, "%s", st->error[0] ? st->error : "the worker failed");
        return SRV_E_WORKER_FAILED;
    case PL_ERROR_CANCELLED:
        snprintf(msg, len, "the job was cancelled%s%s", st->error[0] ? ": " : "", st->error);
        return SRV_E_CONFLICT;
    case PL_ERROR_INTERRUPTED:
        snprintf(msg, len, "%s", st->error[0] ? st->error : "the server restarted while the input was incomplete");
        return SRV_E_INTERRUPTED;
    case PL_ERROR_DEVICE_FAULT:
        snprintf(msg, len, "%s", st->error[0] ? st->error : "the worker's device had a fault");
        return SRV_E_DEVICE_FAULT;
    case PL_ERROR_INSUFFICIENT_STORAGE:
        snprintf(msg, len, "%s", st->error[0] ? st->error : "the spool disk is full");
        return SRV_E_INSUFFICIENT_STORAGE;
    case PL_ERROR_INTERNAL:
    case PL_ERROR_NONE:
    default:
        if (st->state == PL_JOB_CANCELLED) {
            snprintf(msg, len, "the job was cancelled%s%s", st->error[0] ? ": " : "", st->error);
            return SRV_E_CONFLICT;
        }
        snprintf(msg, len, "%s", st->error[0] ? st->error : "internal error");
        return SRV_E_INTERNAL;
    }
}

static void add_time(struct srv_buf * b, const char * key, double t) {
    char ts[40];
    srv_rfc3339(t, ts, sizeof(ts));
    if (ts[0]) srv_buf_printf(b, ",\"%s\":\"%s\"", key, ts);
    else srv_buf_printf(b, ",\"%s\":null", key);
}

char * srv_job_json(struct srv * s, struct srv_job * j) {
    struct pl_job_status st;
    pl_job_get_status(j->pl, &st);
    struct srv_buf b = { 0 };
    srv_buf_add(&b, "{\"id\":", 6);
    srv_buf_json_str(&b, j->id);
    srv_buf_printf(&b, ",\"state\":\"%s\"", pl_job_state_name(st.state));
    add_time(&b, "created_at", st.created_at > 0 ? st.created_at : j->created_unix);
    add_time(&b, "started_at", st.started_at);
    add_time(&b, "first_output_at", st.first_output_at);
    add_time(&b, "finished_at", st.finished_at);
    srv_buf_printf(&b, ",\"spec\":%s", j->spec_json);
    srv_buf_printf(&b, ",\"upload\":\"%s\"",
                   j->upload_kind == SRV_UPLOAD_PUT ? "put" : j->upload_kind == SRV_UPLOAD_TUS ? "tus" : "none");
    srv_buf_printf(&b, ",\"input\":{\"bytes_received\":%lld,\"complete\":%s", (long long)st.input_bytes,
                   j->input_ended ? "true" : "false");
    if (j->tus_length >= 0) srv_buf_printf(&b, ",\"upload_length\":%lld", (long long)j->tus_length);
    if (st.probed)
        srv_buf_printf(&b, ",\"width\":%d,\"height\":%d,\"fps\":%.6g", st.width, st.height, isfinite(st.in_fps) ? st.in_fps : 0.0);
    srv_buf_add(&b, "}", 1);
    srv_buf_printf(&b, ",\"output\":{\"bytes\":%lld", (long long)st.output_bytes);
    if (st.probed) srv_buf_printf(&b, ",\"width\":%d,\"height\":%d", st.out_width, st.out_height);
    srv_buf_add(&b, ",\"content_type\":", 16);
    srv_buf_json_str(&b, pl_container_mime(pl_job_spec_of(j->pl)->container));
    srv_buf_add(&b, "}", 1);
    srv_buf_printf(&b, ",\"frames_in\":%lld,\"frames_out\":%lld,\"chunks\":%lld,\"fps\":%.6g", (long long)st.frames_in,
                   (long long)st.frames_out, (long long)st.chunks, isfinite(st.fps) && st.fps > 0 ? st.fps : 0.0);
    if (pl_job_state_terminal(st.state) && st.state != PL_JOB_SUCCEEDED) {
        char msg[300];
        enum srv_error e = srv_job_error(j, &st, msg, sizeof(msg));
        srv_buf_printf(&b, ",\"error\":{\"code\":\"%s\",\"message\":", srv_error_code(e));
        srv_buf_json_str(&b, msg);
        srv_buf_add(&b, "}", 1);
    } else srv_buf_add(&b, ",\"error\":null", 13);
    srv_buf_printf(&b,
                   ",\"urls\":{\"self\":\"/v1/jobs/%s\",\"input\":\"/v1/jobs/%s/input\",\"uploads\":\"/v1/uploads\","
                   "\"output\":\"/v1/jobs/%s/output\",\"events\":\"/v1/jobs/%s/events\"}}",
                   j->id, j->id, j->id, j->id);
    (void)s;
    return b.p;
}

void srv_job_on_event(struct srv * s, struct srv_job * j, unsigned events) {
    if (events & (PL_EV_PROGRESS | PL_EV_FINISHED)) {
        struct pl_job_status st;
        pl_job_get_status(j->pl, &st);
        if (st.state != j->seen_state) {
            RLOG(DEBUG, NULL, j->id, "state %s -> %s", pl_job_state_name(j->seen_state), pl_job_state_name(st.state));
            if (pl_job_state_terminal(st.state)) {
                if (st.state == PL_JOB_SUCCEEDED)
                    RLOG(INFO, NULL, j->id, "job succeeded frames_in=%lld frames_out=%lld output_bytes=%lld fps=%.2f",
                         (long long)st.frames_in, (long long)st.frames_out, (long long)st.output_bytes, st.fps);
                else
                    RLOG(INFO, NULL, j->id, "job %s: %s", pl_job_state_name(st.state), st.error);
            }
            j->seen_state = st.state;
        }
        if (pl_job_state_terminal(st.state) && j->finished_mono == 0) j->finished_mono = srv_mono_now();
        if (pl_job_state_terminal(st.state)) srv_persist_terminal(s, j, &st);
    }
    srv_job_wake_all(j);
    srv_sse_on_event(s, j, events);
}

/* Every second from the tick timer: finished jobs past job_ttl_s; jobs without an input
 * byte input_wait_timeout_s after creation; uploads with no new byte for upload_expiry_s
 * (tus, or a job that never got input); tus offset checkpoints for the journal. */
void srv_jobs_reap(struct srv * s) {
    double now = srv_mono_now();
    srv_persist_tick(s);
    struct srv_link * l = s->jobs_all.next;
    while (l != &s->jobs_all) {
        struct srv_job * j = SRV_CONTAINER(l, struct srv_job, all_link);
        l = l->next; /* removal unlinks j */
        if (j->finished_mono == 0) {
            struct pl_job_status st;
            pl_job_get_status(j->pl, &st);
            if (pl_job_state_terminal(st.state)) {
                j->finished_mono = now;
                srv_persist_terminal(s, j, &st);
            }
        }
        if (j->finished_mono > 0) {
            if (now - j->finished_mono >= s->cfg.job_ttl_s) srv_job_remove(s, j, "job_ttl_s");
            continue;
        }
        if (srv_job_input_wait_expired(s, j, now)) {
            s->input_wait_expired++;
            srv_job_remove(s, j, "input_wait_timeout_s");
        } else if (!j->input_ended && !j->uploader && now - j->last_input_mono >= s->cfg.upload_expiry_s)
            srv_job_remove(s, j, "upload_expiry_s");
    }
}
