/* The loop thread: libuv + libmicrohttpd in external epoll mode, the pipeline mailbox,
 * signals, the 1 s housekeeping tick and the shutdown sequence.
 *
 * DESIGN (SERVING-NOTES §2.3, §2.5, §2.9)
 * - MHD runs with MHD_USE_EPOLL and no internal thread: its epoll fd sits on a uv_poll_t;
 *   after every MHD_run we ask MHD_get_timeout and re-arm mhd_timer (MHD keeps an
 *   edge-triggered "ready" list, so a missed run means a hung connection).
 * - Suspend/resume: srv_req_suspend() is called from the access handler or the content
 *   reader (the only places MHD allows); srv_req_wake() queues the request; srv_run_mhd()
 *   resumes the queue outside any MHD callback, then runs MHD. One flag per request
 *   (`suspended`) guarantees resume is called once per suspend.
 * - Mailbox: the pipeline's notify callback (any thread) appends {pl_job_ref, events} under
 *   a mutex and calls uv_async_send; the async callback takes the whole list at once.
 * - SIGTERM/SIGINT: draining (readyz 503, new jobs 503; the daemon keeps listening, so
 *   probes are answered rather than refused), jobs get drain_timeout_s, then are
 *   cancelled; once no job runs and no request is left (or max_suspend_s after the
 *   deadline), every suspended connection is resumed, MHD is stopped, the engine stopped,
 *   the loop closed. A second signal skips the wait. */
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "srv.h"

/* ---- suspend / wake ------------------------------------------------------------------- */

void srv_req_suspend(struct srv_req * r, enum srv_wait_reason why) {
    INFVSR_ASSERT(!r->suspended);
    MHD_suspend_connection(r->conn);
    r->suspended = true;
    r->wait = why;
    r->suspended_mono = srv_mono_now();
    r->srv->n_suspended++;
    r->srv->suspends[why]++;
    srv_list_add(r->job ? &r->job->waiters : &r->srv->idle_waiters, &r->wait_link);
}

void srv_req_wake(struct srv_req * r) {
    if (!r->suspended || r->wake_pending) return;
    r->wake_pending = true;
    srv_list_add(&r->srv->wake, &r->wake_link);
}

void srv_job_wake_all(struct srv_job * j) {
    for (struct srv_link * l = j->waiters.next; l != &j->waiters; l = l->next)
        srv_req_wake(SRV_CONTAINER(l, struct srv_req, wait_link));
}

static void resume_wake_list(struct srv * s) {
    while (!srv_list_empty(&s->wake)) {
        struct srv_link * l = s->wake.next;
        struct srv_req * r = SRV_CONTAINER(l, struct srv_req, wake_link);
        srv_list_del(l);
        r->wake_pending = false;
        if (!r->suspended) continue;
        r->suspended = false;
        r->wait = SRV_WAIT_NONE;
        s->n_suspended--;
        srv_list_del(&r->wait_link);
        /* a new min-rate window: time spent suspended is not the client's fault */
        r->rate_mark_mono = srv_mono_now();
        r->rate_mark_bytes = r->upload_written;
        MHD_resume_connection(r->conn);
    }
}

static void on_mhd_timer(uv_timer_t * t);

void srv_run_mhd(struct srv * s) {
    if (s->in_mhd || !s->mhd) return;
    for (int round = 0; round < 8; round++) {
        resume_wake_list(s);
        s->in_mhd = true;
        MHD_run(s->mhd);
        s->in_mhd = false;
        if (srv_list_empty(&s->wake)) break;
    }
    uv_update_time(s->loop);
    MHD_UNSIGNED_LONG_LONG to = 0;
    if (!srv_list_empty(&s->wake)) uv_timer_start(&s->mhd_timer, on_mhd_timer, 0, 0);
    else if (MHD_get_timeout(s->mhd, &to) == MHD_YES)
        uv_timer_start(&s->mhd_timer, on_mhd_timer, to > 3600000 ? 3600000 : (uint64_t)to, 0);
    else uv_timer_stop(&s->mhd_timer);
}

static void on_mhd_timer(uv_timer_t * t) { srv_run_mhd(t->data); }

static void on_mhd_poll(uv_poll_t * p, int status, int events) {
    (void)status;
    (void)events;
    srv_run_mhd(p->data);
}

/* ---- mailbox ------------------------------------------------------------------------------ */

void srv_notify_cb(void * user, struct pl_job * job, unsigned events) {
    struct srv * s = user;
    pthread_mutex_lock(&s->mail_mu);
    /* coalesce with the newest entry for the same job: cheap and common (progress bursts) */
    if (s->mail_tail && s->mail_tail->job == job) {
        s->mail_tail->events |= events;
        pthread_mutex_unlock(&s->mail_mu);
        uv_async_send(&s->mailbox_async);
        return;
    }
    pthread_mutex_unlock(&s->mail_mu);
    struct srv_mail * m = malloc(sizeof(*m));
    if (!m) return; /* lost wake-up under OOM: the 1 s tick re-checks waiters */
    m->job = job ? pl_job_ref(job) : NULL;
    m->events = events;
    m->next = NULL;
    pthread_mutex_lock(&s->mail_mu);
    if (s->mail_tail) s->mail_tail->next = m;
    else s->mail_head = m;
    s->mail_tail = m;
    pthread_mutex_unlock(&s->mail_mu);
    uv_async_send(&s->mailbox_async);
}

static void on_mailbox(uv_async_t * a) {
    struct srv * s = a->data;
    pthread_mutex_lock(&s->mail_mu);
    struct srv_mail * m = s->mail_head;
    s->mail_head = s->mail_tail = NULL;
    pthread_mutex_unlock(&s->mail_mu);
    while (m) {
        struct srv_mail * next = m->next;
        if (m->job) {
            struct srv_job * j = srv_job_find(s, pl_job_spec_of(m->job)->id);
            if (j && j->pl == m->job) srv_job_on_event(s, j, m->events);
            pl_job_unref(m->job);
        } else if (m->events & PL_EV_ENGINE) {
            struct pl_engine_health h;
            pl_engine_health(s->engine, &h);
            srv_log_workers(s, &h);
        }
        free(m);
        m = next;
    }
    srv_run_mhd(s);
}

static void mailbox_free(struct srv * s) {
    struct srv_mail * m = s->mail_head;
    while (m) {
        struct srv_mail * next = m->next;
        if (m->job) pl_job_unref(m->job);
        free(m);
        m = next;
    }
    s->mail_head = s->mail_tail = NULL;
}

/* ---- the 1 s tick ---------------------------------------------------------------------------- */

static void check_requests(struct srv * s) {
    double now = srv_mono_now();
    for (struct srv_link * l = s->reqs.next; l != &s->reqs; l = l->next) {
        struct srv_req * r = SRV_CONTAINER(l, struct srv_req, all_link);
        if (r->suspended) {
            /* SSE streams are woken for keep-alives; everything else has max_suspend_s */
            if (r->wait == SRV_WAIT_SSE) {
                if (now - r->sse_last_write_mono >= 15.0) srv_req_wake(r);
            } else if (r->wait == SRV_WAIT_OUTPUT && srv_output_waited_out(r, now)) {
                srv_req_wake(r); /* answers 409: no upload within input_wait_s */
            } else if (now - r->suspended_mono >= s->cfg.max_suspend_s) {
                RLOG(WARN, r->request_id, r->job ? r->job->id : NULL, "suspended for %d s, failing the request",
                     s->cfg.max_suspend_s);
                r->timed_out = true;
                s->suspend_timeouts++;
                srv_req_wake(r);
            } else if (s->stopping) srv_req_wake(r);
            continue;
        }
        /* superseded by a newer tus PATCH/HEAD (upload.c take_over): its next body piece
         * closes it; a dead connection that sends none is timed out in 1 s. Done here, not
         * in take_over, because that runs inside MHD's callbacks. */
        if (r->superseded && !r->cut_off) {
            r->cut_off = true;
            MHD_set_connection_option(r->conn, MHD_CONNECTION_OPTION_TIMEOUT, 1u);
            continue;
        }
        /* min_upload_rate over 30 s windows of time the upload was not suspended */
        if (r->phase == SRV_P_UPLOAD && s->cfg.min_upload_rate > 0 && !r->cut_off) {
            double dt = now - r->rate_mark_mono;
            if (dt >= 30.0) {
                double rate = (double)(r->upload_written - r->rate_mark_bytes) / dt;
                if (rate < (double)s->cfg.min_upload_rate) {
                    RLOG(WARN, r->request_id, r->job ? r->job->id : NULL,
                         "upload too slow (%.0f B/s < min_upload_rate %lld), closing", rate,
                         (long long)s->cfg.min_upload_rate);
                    r->cut_off = true;
                    s->upload_cutoffs++;
                    /* the next body piece gets MHD_NO; a silent client times out in 1 s */
                    MHD_set_connection_option(r->conn, MHD_CONNECTION_OPTION_TIMEOUT, 1u);
                }
                r->rate_mark_mono = now;
                r->rate_mark_bytes = r->upload_written;
            }
        }
    }
}

static void drain_step(struct srv * s);

static void on_tick(uv_timer_t * t) {
    struct srv * s = t->data;
    check_requests(s);
    srv_conns_tick(s);
    if (!s->draining) srv_jobs_reap(s);
    else drain_step(s);
    srv_run_mhd(s);
}

/* ---- shutdown ------------------------------------------------------------------------------ */

static void on_close_noop(uv_handle_t * h) { (void)h; }

static int running_jobs(struct srv * s) {
    int n = 0;
    for (struct srv_link * l = s->jobs_all.next; l != &s->jobs_all; l = l->next) {
        struct srv_job * j = SRV_CONTAINER(l, struct srv_job, all_link);
        struct pl_job_status st;
        pl_job_get_status(j->pl, &st);
        if (!pl_job_state_terminal(st.state) && st.state != PL_JOB_CREATED) n++;
    }
    return n;
}

static void final_stop(struct srv * s) {
    if (s->stopping) return;
    s->stopping = true;
    LOG_INFO("stopping: resuming %d suspended connection(s)", s->n_suspended);
    /* Every suspended request must be resumed before MHD_stop_daemon (API rule); they see
     * `stopping` and finish (streams end, waits answer 503). */
    for (struct srv_link * l = s->reqs.next; l != &s->reqs; l = l->next) {
        struct srv_req * r = SRV_CONTAINER(l, struct srv_req, all_link);
        r->timed_out = true;
        srv_req_wake(r);
    }
    srv_run_mhd(s);
    resume_wake_list(s);
    MHD_stop_daemon(s->mhd); /* completes the remaining requests with DAEMON_SHUTDOWN */
    s->mhd = NULL;
    uv_poll_stop(&s->mhd_poll);
    uv_close((uv_handle_t *)&s->mhd_poll, on_close_noop);
    uv_close((uv_handle_t *)&s->mhd_timer, on_close_noop);
    uv_close((uv_handle_t *)&s->tick_timer, on_close_noop);
    uv_close((uv_handle_t *)&s->sig_term, on_close_noop);
    uv_close((uv_handle_t *)&s->sig_int, on_close_noop);
    /* the mailbox stays open until the engine has stopped (its threads may still notify);
     * unreferenced, it no longer keeps uv_run going */
    uv_unref((uv_handle_t *)&s->mailbox_async);
}

static void drain_step(struct srv * s) {
    double waited = srv_mono_now() - s->drain_started_mono;
    int running = running_jobs(s);
    if (running > 0 && waited >= s->cfg.drain_timeout_s && !s->drain_cancelled) {
        LOG_WARN("drain_timeout_s=%d passed, cancelling %d running job(s)", s->cfg.drain_timeout_s, running);
        s->drain_cancelled = true;
        for (struct srv_link * l = s->jobs_all.next; l != &s->jobs_all; l = l->next)
            pl_job_cancel(SRV_CONTAINER(l, struct srv_job, all_link)->pl);
        return;
    }
    /* Done when no job runs and no request is being served; requests that never end on
     * their own (idle output readers of created jobs, SSE) are finished by final_stop. */
    bool busy_reqs = false;
    for (struct srv_link * l = s->reqs.next; l != &s->reqs; l = l->next) {
        struct srv_req * r = SRV_CONTAINER(l, struct srv_req, all_link);
        if (!r->suspended && r->route != SRV_R_JOB_EVENTS) busy_reqs = true; /* sending or receiving */
    }
    bool hard_deadline = waited >= s->cfg.drain_timeout_s + 10.0 || s->signals_seen >= 2;
    if ((running == 0 && !busy_reqs) || hard_deadline) final_stop(s);
}

static void on_signal(uv_signal_t * h, int signum) {
    struct srv * s = h->data;
    s->signals_seen++;
    if (s->draining) {
        LOG_WARN("second signal %d: stopping now", signum);
        drain_step(s);
        return;
    }
    LOG_INFO("signal %d: draining (drain_timeout_s=%d)", signum, s->cfg.drain_timeout_s);
    s->draining = true;
    s->drain_started_mono = srv_mono_now();
    /* Keep listening until the end of the drain: probes must get their 503 (readyz) or
     * 200 "draining" (healthz), not a refused connection, and clients may still fetch
     * outputs and status; new jobs and uploads are answered 503 (routes, upload.c). */
    drain_step(s);
    srv_run_mhd(s);
}

/* ---- open / run / close ------------------------------------------------------------------------ */

static void mhd_log(void * cls, const char * fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = 0;
    /* A client that goes away mid-request (or is closed by header_timeout_s, conns.c) is
     * not a server fault, and any client can cause it at will: debug, not warn. */
    static const char * const client_side[] = { "Connection socket is closed when reading request",
                                                "Socket has been disconnected when reading request",
                                                "Connection was closed by remote side with incomplete request" };
    for (size_t i = 0; i < sizeof(client_side) / sizeof(client_side[0]); i++)
        if (strncmp(msg, client_side[i], strlen(client_side[i])) == 0) {
            LOG_DEBUG("libmicrohttpd: %s", msg);
            return;
        }
    LOG_WARN("libmicrohttpd: %s", msg);
}

static int mkdir_p(const char * path) {
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char * p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0750) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    if (mkdir(buf, 0750) != 0 && errno != EEXIST) return -1;
    return 0;
}

static int start_mhd(struct srv * s, char * err, size_t err_len) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    struct sockaddr_in * a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 * a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, s->cfg.listen_host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)s->cfg.listen_port);
    } else if (inet_pton(AF_INET6, s->cfg.listen_host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)s->cfg.listen_port);
        flags |= MHD_USE_IPv6;
    } else {
        snprintf(err, err_len, "listen: '%s' is not an IPv4 or IPv6 address", s->cfg.listen_host);
        return -1;
    }
    s->mhd = MHD_start_daemon(
        flags, (uint16_t)s->cfg.listen_port, NULL, NULL, srv_access_cb, s,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s, /* first, so that every message goes through it */
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->cfg.max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->cfg.idle_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)s->cfg.connection_memory,
        MHD_OPTION_NOTIFY_COMPLETED, srv_completed_cb, s,
        MHD_OPTION_NOTIFY_CONNECTION, srv_connection_cb, s,
        MHD_OPTION_SIGPIPE_HANDLED_BY_APP, 1,
        MHD_OPTION_END);
    if (!s->mhd) {
        snprintf(err, err_len, "cannot listen on %s: %s (is the port in use?)", s->cfg.listen, strerror(errno));
        return -1;
    }
    const union MHD_DaemonInfo * di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : s->cfg.listen_port;
    return 0;
}

/* Drops the table's references (the jobs stay in the spool and its journal). */
static void drop_jobs(struct srv * s) {
    while (!srv_list_empty(&s->jobs_all)) {
        struct srv_job * j = SRV_CONTAINER(s->jobs_all.next, struct srv_job, all_link);
        srv_list_del(&j->all_link);
        j->in_table = false;
        s->n_jobs--;
        srv_job_drop(s, j);
    }
}

int srv_open(struct srv * s, const struct srv_config * cfg, char * err, size_t err_len) {
    memset(s, 0, sizeof(*s));
    s->cfg = *cfg;
    srv_list_init(&s->jobs_all);
    srv_list_init(&s->reqs);
    srv_list_init(&s->wake);
    srv_list_init(&s->idle_waiters);
    srv_list_init(&s->conns);
    pthread_mutex_init(&s->mail_mu, NULL);
    signal(SIGPIPE, SIG_IGN); /* MHD_OPTION_SIGPIPE_HANDLED_BY_APP */

    if (srv_auth_load(s, err, err_len) != 0) return -1;
    if (mkdir_p(cfg->spool_dir) != 0 || access(cfg->spool_dir, W_OK) != 0) {
        snprintf(err, err_len, "spool_dir: cannot create or write '%s': %s", cfg->spool_dir, strerror(errno));
        return -1;
    }
    if (srv_journal_open(&s->journal, cfg->spool_dir, err, err_len) != 0) return -1;

    s->loop = uv_default_loop();
    uv_async_init(s->loop, &s->mailbox_async, on_mailbox);
    s->mailbox_async.data = s;

    struct pl_engine_opts o = pl_engine_opts_default();
    o.model = strcmp(cfg->model, "null") == 0 ? "null" : cfg->model_dir;
    o.spool_dir = cfg->spool_dir;
    _Static_assert(SRV_MAX_WORKERS == PL_MAX_WORKERS, "the worker limits agree");
    srv_workers_resolve_auto(&s->cfg.plan);
    o.workers = s->cfg.plan.n;
    for (int i = 0; i < s->cfg.plan.n; i++) {
        o.worker_device[i] = s->cfg.plan.device[i];
        o.worker_name[i] = s->cfg.plan.name[i];
        o.devsim_fault_at_op[i] = s->cfg.plan.fault_at_op[i];
    }
    o.device_reserve_bytes = (int64_t)cfg->device_reserve_mb << 20;
    o.threads = cfg->threads;
    o.device = cfg->device;
    o.precision = cfg->precision;
    o.max_active_per_worker = cfg->max_active_jobs_per_worker;
    o.max_queued_jobs = cfg->max_queued_jobs;
    o.input_lead_bytes = cfg->input_lead_bytes;
    o.max_input_bytes = cfg->max_upload_bytes;
    o.frame_queue = cfg->frame_queue;
    o.output_queue = cfg->output_queue;
    o.max_frame_pixels = cfg->max_frame_pixels;
    o.notify = srv_notify_cb;
    o.notify_user = s;
    o.commit = srv_persist_commit_cb;
    struct infvsr_err perr = { 0 };
    if (pl_engine_start(&o, &s->engine, &perr) != INFVSR_OK) {
        snprintf(err, err_len, "engine: %s", perr.msg);
        uv_close((uv_handle_t *)&s->mailbox_async, NULL);
        uv_run(s->loop, UV_RUN_NOWAIT);
        srv_journal_close(s->journal);
        s->journal = NULL;
        return -1;
    }
    /* the jobs of the previous run, before anyone can ask for them */
    if (srv_recover(s, err, err_len) != 0 || start_mhd(s, err, err_len) != 0) {
        pl_engine_stop(s->engine);
        s->engine = NULL;
        uv_close((uv_handle_t *)&s->mailbox_async, NULL);
        uv_run(s->loop, UV_RUN_NOWAIT);
        mailbox_free(s);
        drop_jobs(s);
        srv_journal_close(s->journal);
        s->journal = NULL;
        return -1;
    }
    const union MHD_DaemonInfo * di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    uv_poll_init(s->loop, &s->mhd_poll, di->epoll_fd);
    s->mhd_poll.data = s;
    uv_poll_start(&s->mhd_poll, UV_READABLE, on_mhd_poll);
    uv_timer_init(s->loop, &s->mhd_timer);
    s->mhd_timer.data = s;
    uv_timer_init(s->loop, &s->tick_timer);
    s->tick_timer.data = s;
    uv_timer_start(&s->tick_timer, on_tick, 1000, 1000);
    uv_signal_init(s->loop, &s->sig_term);
    s->sig_term.data = s;
    uv_signal_start(&s->sig_term, on_signal, SIGTERM);
    uv_signal_init(s->loop, &s->sig_int);
    s->sig_int.data = s;
    uv_signal_start(&s->sig_int, on_signal, SIGINT);
    /* always written, whatever log_level: tests and scripts find the port here */
    srv_log_write(SRV_LOG_INFO, __func__, NULL, NULL, "listening port=%d host=%s instance=%s model=%s spool_dir=%s",
                  s->port, cfg->listen_host, cfg->instance, cfg->model, cfg->spool_dir);
    return 0;
}

int srv_run(struct srv * s) {
    srv_run_mhd(s);
    uv_run(s->loop, UV_RUN_DEFAULT);
    return 0;
}

void srv_close(struct srv * s) {
    if (s->mhd) final_stop(s);
    uv_run(s->loop, UV_RUN_NOWAIT); /* the close callbacks */
    if (s->engine) pl_engine_stop(s->engine); /* cancels, joins threads: no notify after this */
    s->engine = NULL;
    srv_journal_close(s->journal); /* after the engine: encode threads commit through it */
    s->journal = NULL;
    uv_close((uv_handle_t *)&s->mailbox_async, on_close_noop);
    uv_run(s->loop, UV_RUN_NOWAIT);
    mailbox_free(s);
    drop_jobs(s); /* requests are gone (MHD_stop_daemon completed them) */
    uv_loop_close(s->loop);
    srv_auth_free(s);
    srv_rate_free(s);
    srv_conns_free(s);
    free(s->http_counters);
    pthread_mutex_destroy(&s->mail_mu);
}
