/* infvsrd core: the daemon's shared state, used only on the loop thread.
 *
 * DESIGN
 * One libuv loop thread owns everything in this header: the MHD daemon (external epoll
 * mode: MHD's epoll fd on a uv_poll_t, MHD_get_timeout re-armed on a uv_timer after every
 * MHD_run), the job table, and every request. The pipeline's threads reach the loop only
 * through the mailbox (mutex + list + uv_async_send); the async callback drains it fully
 * (sends coalesce) and wakes the requests suspended on each job.
 *
 * Requests (struct srv_req, MHD's per-request *con_cls) are created on the first access-
 * handler call and freed in NOTIFY_COMPLETED. A request that has to wait (upload ahead of
 * the decoder, output not produced yet, waiting for the probe, an idle SSE stream) calls
 * srv_req_suspend() from the access handler or content reader and returns MHD_YES / 0;
 * it is linked into its job's `waiters` list (or the server's `idle_waiters`) with
 * `suspended = true`. srv_req_wake() only moves it to the wake list; srv_run_mhd()
 * resumes everything on the wake list (MHD_resume_connection, exactly once per suspend,
 * guarded by the flag) and then runs MHD. So MHD_resume_connection is never called from
 * inside an MHD callback nor on a connection that is not suspended.
 *
 * Responses are queued only from the access handler. */
#pragma once

#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "errors.h"
#include "log.h"
#include "netaddr.h"
#include "pipeline.h"
#include "tenant.h"
#include "util.h"

/* ---- intrusive doubly linked lists ------------------------------------------------- */
struct srv_link {
    struct srv_link * prev, * next;
};
static inline void srv_list_init(struct srv_link * h) { h->prev = h->next = h; }
static inline bool srv_list_empty(const struct srv_link * h) { return h->next == h; }
static inline bool srv_linked(const struct srv_link * l) { return l->next != NULL && l->next != l; }
static inline void srv_list_add(struct srv_link * h, struct srv_link * l) {
    l->prev = h->prev;
    l->next = h;
    h->prev->next = l;
    h->prev = l;
}
static inline void srv_list_del(struct srv_link * l) {
    if (!l->next) return;
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = NULL;
}
#define SRV_CONTAINER(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* ---- jobs ----------------------------------------------------------------------------- */
enum srv_upload_kind { SRV_UPLOAD_NONE, SRV_UPLOAD_PUT, SRV_UPLOAD_TUS };

struct srv_req;

struct srv_job {
    char    id[SRV_JOB_ID_MAX];
    uint64_t seq;                  /* creation order in this process (GET /v1/jobs cursor)   */
    struct pl_job * pl;            /* one pipeline reference, dropped when the job is freed  */
    int     refs;                  /* the table's + one per request that points here         */
    bool    in_table;
    bool    deleted;               /* DELETE / TTL / expiry: requests see it and finish      */
    char *  spec_json;             /* canonical spec (all defaults applied), for 200/409    */
    char    idem_key[72];
    char    tenant[SRV_TENANT_MAX]; /* the owner (tenant.h); "" without auth                 */
    char    client[48];            /* numeric address of the creating peer (per-client limit) */
    double  created_unix;
    double  created_mono;
    double  finished_mono;         /* when the loop first saw a terminal state, 0 = not yet */
    enum srv_upload_kind upload_kind;
    struct srv_req * uploader;     /* the PUT/PATCH request writing now, NULL = none        */
    bool    input_ended;
    bool    tus_terminated;
    int64_t tus_length;            /* Upload-Length (tus), -1 otherwise                      */
    double  last_input_mono;       /* last upload byte or creation (expiry)                 */
    int64_t expected_bytes;        /* spec input.expected_bytes, 0 = unknown                */
    enum pl_job_state seen_state;  /* last state the loop reported (metrics, logs)          */
    struct srv_link waiters;       /* suspended requests waiting on this job                */
    struct srv_link sse;           /* SSE requests of this job (suspended or not)           */
    struct srv_link all_link;      /* srv->jobs_all                                          */
    struct srv_job * hnext;        /* hash chain                                             */
    /* the spool journal (persist.c) */
    bool    persisted_terminal;    /* the terminal record is written, the input dropped      */
    bool    journal_removed;       /* the record is gone (DELETE, TTL, expiry)              */
    int64_t journaled_offset;      /* tus: input bytes of the last checkpoint record        */
    double  journaled_mono;
};

/* ---- requests ------------------------------------------------------------------------- */
enum srv_route {
    SRV_R_UNKNOWN, SRV_R_JOBS, SRV_R_JOB, SRV_R_JOB_INPUT, SRV_R_JOB_OUTPUT, SRV_R_JOB_EVENTS,
    SRV_R_UPLOADS, SRV_R_UPLOAD, SRV_R_MODELS, SRV_R_HEALTHZ, SRV_R_READYZ, SRV_R_METRICS,
    SRV_R_JOB_PREVIEW, SRV_R_WEB, SRV_R_COUNT
};
const char * srv_route_name(enum srv_route r);

/* What the request is doing; see DESIGN in http.c for the transitions. */
enum srv_req_phase {
    SRV_P_NEW,          /* first access-handler call done, nothing decided yet            */
    SRV_P_BODY_JSON,    /* collecting a JSON body                                         */
    SRV_P_UPLOAD,       /* PUT/PATCH/POST-with-upload body -> pl_job_input_write          */
    SRV_P_DISCARD,      /* an error is pending: swallow the rest of the body, answer at end */
    SRV_P_WAIT_PROBE,   /* body done, waiting until the job is probed or failed          */
    SRV_P_WAIT_OUTPUT,  /* GET output before the first output byte                        */
    SRV_P_STREAM,       /* a callback response is queued (output stream or SSE)          */
    SRV_P_DONE,         /* a response is queued                                           */
};

enum srv_wait_reason { SRV_WAIT_NONE, SRV_WAIT_INPUT, SRV_WAIT_PROBE, SRV_WAIT_OUTPUT, SRV_WAIT_SSE };

struct srv;
struct srv_req {
    struct srv * srv;
    struct MHD_Connection * conn;
    char    request_id[72];
    char    client[SRV_ADDR_STR];  /* who limits count it for: the peer, or X-Forwarded-For
                                    * from a trusted proxy (conns.c)                        */
    bool    close_conn;            /* answer with Connection: close (framing errors, limits) */
    char    tenant[SRV_TENANT_MAX]; /* who is asking (srv_auth_request)                       */
    bool    admin;                 /* an admin token: sees every tenant's jobs              */
    char    method[12];
    char    path[256];             /* URL path as received (for logs and redirects)        */
    enum srv_route route;
    enum srv_req_phase phase;
    int     status;                /* the status queued (metrics, access log)              */
    double  started_mono;
    const char * extra_hdr_name;   /* one more header for the response (416 Content-Range) */
    char    extra_hdr_value[96];
    struct srv_job * job;          /* counted reference, or NULL                            */

    /* suspend bookkeeping (see DESIGN above) */
    bool    suspended;
    bool    wake_pending;
    bool    timed_out;             /* max_suspend_s passed: finish with an error            */
    bool    cut_off;               /* upload slower than min_upload_rate: close             */
    bool    superseded;            /* a newer tus PATCH took over this upload: close        */
    enum srv_wait_reason wait;
    double  suspended_mono;
    struct srv_link wait_link;     /* job->waiters or srv->idle_waiters while suspended    */
    struct srv_link wake_link;     /* srv->wake while wake_pending                          */
    struct srv_link all_link;      /* srv->reqs                                             */

    /* JSON body */
    char *  body;
    size_t  body_len, body_cap;

    /* upload (PUT, tus PATCH/POST) */
    bool    is_tus;
    int64_t upload_written;        /* bytes of this request stored                           */
    int64_t tus_offset_start;
    double  rate_mark_mono;        /* min-upload-rate window                                 */
    int64_t rate_mark_bytes;
    int     retry_after_s;          /* Retry-After of an error reply when > 0 (else the config's) */
    enum srv_error pending_err;    /* SRV_P_DISCARD: what to answer at the end              */
    int64_t discarded;             /* body bytes swallowed after the error                  */
    char    pending_msg[300];

    /* output stream / SSE */
    int     out_fd;
    bool    sse_finished;          /* done event queued                                     */
    char *  sse_buf;
    size_t  sse_len, sse_off, sse_cap;
    double  sse_last_write_mono;
    struct srv_link sse_link;      /* job->sse                                               */
};

/* ---- the server ----------------------------------------------------------------------- */
struct srv_http_counter {
    char    method[12];
    enum srv_route route;
    int     status;
    uint64_t n;
};

struct srv_mail {                   /* a pipeline notification waiting for the loop        */
    struct pl_job * job;            /* a reference taken by the notify callback, or NULL    */
    unsigned events;
    struct srv_mail * next;
};

#define SRV_JOB_BUCKETS 1024

/* Why the daemon closed a connection itself (infvsrd_connections_closed_total{reason}). */
enum srv_conn_close { SRV_CONN_CLOSE_HEADER_TIMEOUT, SRV_CONN_CLOSE_EVICTED, SRV_CONN_CLOSE_PER_CLIENT, SRV_CONN_CLOSE_COUNT };

struct srv {
    struct srv_config cfg;
    uv_loop_t * loop;
    struct MHD_Daemon * mhd;
    uv_poll_t mhd_poll;
    uv_timer_t mhd_timer;
    uv_timer_t tick_timer;          /* 1 s: TTL/expiry, upload rate, max suspend, SSE keep-alive */
    uv_async_t mailbox_async;
    uv_signal_t sig_term, sig_int;
    int     port;                   /* the real port */
    bool    in_mhd;                 /* inside MHD_run (callbacks): never call MHD_run       */

    struct pl_engine * engine;

    pthread_mutex_t mail_mu;
    struct srv_mail * mail_head, * mail_tail;

    struct srv_job * buckets[SRV_JOB_BUCKETS];
    struct srv_link jobs_all;      /* oldest first                                           */
    int     n_jobs;
    uint64_t job_seq;              /* last srv_job.seq handed out                            */

    struct srv_link reqs;           /* every live request                                    */
    struct srv_link wake;           /* requests to resume before the next MHD_run            */
    struct srv_link idle_waiters;   /* suspended requests without a job                      */
    int     n_suspended;
    int     n_connections;
    struct srv_link conns;          /* every open connection, oldest first (conns.c)        */
    struct srv_ipcount ** ipc;      /* connections per client address (conns.c)             */
    uint64_t conn_closes[SRV_CONN_CLOSE_COUNT];
    uint64_t conn_reported[SRV_CONN_CLOSE_COUNT]; /* conn_closes at the last log summary  */
    double  conn_report_mono;

    /* auth (auth.c, tenant.h) */
    struct srv_token * tokens;
    int     n_tokens;

    /* restart safety (journal.h, persist.c, recover.c) */
    struct srv_journal * journal;
    int     recovered[5];           /* by enum srv_recover_action, at start                 */
    int     orphans_removed;        /* spool files no record vouched for, at start           */
    uint64_t input_wait_expired;    /* jobs removed after input_wait_timeout_s              */
    uint64_t tenant_refusals;       /* 429: max_awaiting_jobs_per_tenant                    */

    /* draining */
    bool    draining;
    double  drain_started_mono;
    bool    drain_cancelled;        /* jobs were cancelled after drain_timeout_s            */
    bool    stopping;               /* the loop is closing its handles                       */
    int     signals_seen;

    /* metrics */
    struct srv_http_counter * http_counters;
    int     n_http_counters, cap_http_counters;
    uint64_t errors_by_code[SRV_E_COUNT];
    uint64_t upload_cutoffs, suspend_timeouts;
    uint64_t suspends[5];           /* by enum srv_wait_reason                               */

    /* request rate limit (ratelimit.c) */
    struct srv_rl_entry * rl;
    size_t  rl_cap, rl_n;
    double  rl_rebuilt;             /* when the table was last rebuilt (srv_mono_now)        */
    uint64_t rate_untracked;        /* requests let through: no room to track their client  */
};

/* ---- loop.c ----------------------------------------------------------------------------- */
int  srv_open(struct srv * s, const struct srv_config * cfg, char * err, size_t err_len);
int  srv_run(struct srv * s);       /* runs the loop until drained; returns the exit code   */
void srv_close(struct srv * s);
void srv_run_mhd(struct srv * s);    /* resume the wake list, MHD_run, re-arm the timer      */
void srv_req_suspend(struct srv_req * r, enum srv_wait_reason why);
void srv_req_wake(struct srv_req * r);
void srv_job_wake_all(struct srv_job * j);
void srv_notify_cb(void * user, struct pl_job * job, unsigned events); /* pipeline threads */

/* ---- conns.c --------------------------------------------------------------------------------- */
/* On a request's first call: resolves r->client (X-Forwarded-For from trusted_proxies)
 * and counts the connection under it; false when the connection is over
 * max_connections_per_ip (answer 429 and close). */
bool srv_conn_request_begin(struct srv_req * r);
void srv_conn_request_end(struct srv_req * r);
void srv_conns_tick(struct srv * s);  /* header_timeout_s, from the 1 s tick               */
void srv_conns_free(struct srv * s);

/* ---- ratelimit.c ------------------------------------------------------------------------- */
/* Takes one token from `addr`'s bucket; false (and the seconds until a token) when empty. */
bool srv_rate_take(struct srv * s, const char * addr, double now, double * wait_s);
void srv_rate_free(struct srv * s);

/* ---- jobs.c ------------------------------------------------------------------------------ */
struct srv_job * srv_job_find(struct srv * s, const char * id);
struct srv_job * srv_job_find_idem(struct srv * s, const char * tenant, const char * key);
struct srv_job * srv_job_new(struct srv * s, const char * id, struct pl_job * pl, const char * spec_json,
                             const char * idem_key);
struct srv_job * srv_job_hold(struct srv_job * j);
void srv_job_drop(struct srv * s, struct srv_job * j);
/* Cancels the pipeline job, deletes its files, takes it out of the table and wakes its
 * requests (they see `deleted`). */
void srv_job_remove(struct srv * s, struct srv_job * j, const char * why);
/* Renders the Job JSON object (a jansson-free string, caller frees). */
char * srv_job_json(struct srv * s, struct srv_job * j);
/* Called by the mailbox for each event of a job. */
void srv_job_on_event(struct srv * s, struct srv_job * j, unsigned events);
void srv_jobs_reap(struct srv * s);   /* TTL and upload expiry, from the 1 s tick           */
/* Error of a terminal job as an API error: code, message. */
enum srv_error srv_job_error(struct srv_job * j, const struct pl_job_status * st, char * msg, size_t len);

/* ---- http.c ------------------------------------------------------------------------------ */
enum MHD_Result srv_access_cb(void * cls, struct MHD_Connection * c, const char * url, const char * method,
                              const char * version, const char * upload_data, size_t * upload_data_size,
                              void ** con_cls);
void srv_completed_cb(void * cls, struct MHD_Connection * c, void ** con_cls,
                      enum MHD_RequestTerminationCode toe);
void srv_connection_cb(void * cls, struct MHD_Connection * c, void ** socket_context,
                       enum MHD_ConnectionNotificationCode code);
/* Queues the one JSON error shape; `fmt` names what was wrong. Returns MHD's result. */
enum MHD_Result srv_reply_error(struct srv_req * r, enum srv_error e, const char * fmt, ...)
    __attribute__((format(printf, 3, 4)));
enum MHD_Result srv_reply_json(struct srv_req * r, int status, const char * json);
/* Queues `resp` with X-Request-Id (and Tus-Resumable for tus routes); destroys it. */
enum MHD_Result srv_queue(struct srv_req * r, int status, struct MHD_Response * resp);
const char * srv_header(struct srv_req * r, const char * name);
/* The job belongs to instance `owner`: 307 to its URL (same method, path and query), or
 * 404 when no peer URL is configured for it. */
enum MHD_Result srv_reply_not_owner(struct srv_req * r, const char * owner);
/* "job ... not found" etc. need the pending error of an upload in DISCARD. */
void srv_req_fail_later(struct srv_req * r, enum srv_error e, const char * fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- route handlers (routes_*.c): called on the final access-handler call unless noted -- */
enum MHD_Result srv_route_jobs_post(struct srv_req * r);
void srv_client_address(struct srv_req * r, char * out, size_t len); /* "" when unknown */
enum MHD_Result srv_route_job_get(struct srv_req * r);
enum MHD_Result srv_route_jobs_list(struct srv_req * r);   /* GET /v1/jobs (routes.c)     */
enum MHD_Result srv_route_preview(struct srv_req * r);     /* preview.c                   */
enum MHD_Result srv_route_web(struct srv_req * r);         /* web.c: / and /ui/<file>     */
enum MHD_Result srv_route_job_delete(struct srv_req * r);
enum MHD_Result srv_route_models(struct srv_req * r);
enum MHD_Result srv_route_healthz(struct srv_req * r);
enum MHD_Result srv_route_readyz(struct srv_req * r);
enum MHD_Result srv_route_metrics(struct srv_req * r);
/* uploads (upload.c): `begin` runs on the first call (checks, claims the job), `data`
 * for each body piece, `end` on the final call. */
enum MHD_Result srv_upload_begin(struct srv_req * r);
enum MHD_Result srv_upload_data(struct srv_req * r, const char * data, size_t * size);
enum MHD_Result srv_upload_end(struct srv_req * r);
void srv_upload_abort(struct srv_req * r, enum MHD_RequestTerminationCode toe);
enum MHD_Result srv_tus_options(struct srv_req * r);
enum MHD_Result srv_tus_head(struct srv_req * r);
enum MHD_Result srv_tus_delete(struct srv_req * r);
/* output.c */
enum MHD_Result srv_route_output(struct srv_req * r);
enum MHD_Result srv_route_events(struct srv_req * r);
void srv_sse_on_event(struct srv * s, struct srv_job * j, unsigned events);
void srv_req_close_stream(struct srv_req * r);
/* GET output of a job without an upload has waited input_wait_s (answer 409). */
bool srv_output_waited_out(const struct srv_req * r, double now);

/* ---- metrics.c ---------------------------------------------------------------------------- */
void srv_metrics_count_http(struct srv * s, const char * method, enum srv_route route, int status);
char * srv_metrics_render(struct srv * s, size_t * len);

/* ---- workers_http.c: the workers in /healthz, /v1/models, /metrics and the log ---- */
struct srv_buf;
const char * srv_worker_state(const struct pl_worker_health * w); /* loading | ready | failed */
void srv_workers_json(struct srv_buf * b, const struct pl_engine_health * h);    /* a JSON array */
void srv_workers_metrics(struct srv_buf * b, const struct pl_engine_health * h);
void srv_log_workers(struct srv * s, const struct pl_engine_health * h);         /* on PL_EV_ENGINE */

/* ---- auth.c -------------------------------------------------------------------------------- */
int  srv_auth_load(struct srv * s, char * err, size_t err_len);
/* Checks the bearer token and sets r->tenant / r->admin; false = 401. */
bool srv_auth_request(struct srv_req * r, const char * authorization);
void srv_auth_free(struct srv * s);

/* ---- persist.c: the job table <-> the spool journal (journal.h) -------------------------------- */
/* Each returns 0 or -1 (errno); callers that answer a client refuse on -1. */
struct srv_buf;
int  srv_persist_created(struct srv * s, struct srv_job * j);        /* before the 201           */
int  srv_persist_upload_created(struct srv * s, struct srv_job * j); /* tus, before the 201      */
void srv_persist_input_complete(struct srv * s, struct srv_job * j);
void srv_persist_terminal(struct srv * s, struct srv_job * j, const struct pl_job_status * st);
int  srv_persist_removed(struct srv * s, struct srv_job * j);
void srv_persist_tick(struct srv * s);                               /* tus offset checkpoints   */
int  srv_persist_commit_cb(void * user, struct pl_job * pl, int64_t output_bytes); /* encode thread */
void srv_persist_metrics(struct srv * s, struct srv_buf * b);

/* ---- spec.c (jansson stays inside spec.c and json helpers) --------------------------------- */
struct srv_spec_result {
    struct pl_job_spec spec;
    char    model[64];
    int64_t expected_bytes;
    char *  canonical;             /* canonical JSON of the full spec (caller frees)       */
    enum srv_error err;            /* when parsing failed                                   */
    char    msg[300];
};
/* Parses a JobSpec body strictly. `model_names` are the accepted model names
 * (NULL-terminated). Returns true on success. */
bool srv_spec_parse(const char * body, size_t len, const char * const * model_names, int64_t max_upload_bytes,
                    struct srv_spec_result * out);
/* Appends `s` JSON-escaped with quotes to a growable buffer (for hand-built JSON). */
struct srv_buf {
    char * p;
    size_t len, cap;
};
void srv_buf_add(struct srv_buf * b, const char * s, size_t n);
void srv_buf_printf(struct srv_buf * b, const char * fmt, ...) __attribute__((format(printf, 2, 3)));
void srv_buf_json_str(struct srv_buf * b, const char * s);
