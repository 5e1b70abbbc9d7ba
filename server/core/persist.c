/* The job table's side of the spool journal (journal.h): which change of a job is recorded
 * when, and what a record says about a job.
 *
 * The rule behind every call site: a client must never be told something a crash could
 * take back. So a job's record exists before its 201, a tus upload's before its 201, the
 * removal is on disk before a DELETE's 204, and an output is committed on the encode thread
 * before the job turns SUCCEEDED (srv_persist_commit_cb). Changes nobody has been promised
 * yet (input complete, failed, tus checkpoints) are recorded as they happen; a crash just
 * before one of them leaves the older record, which recovery handles conservatively. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "journal.h"
#include "srv.h"

#define TUS_CHECKPOINT_S 5.0

static enum srv_jupload upload_of(const struct srv_job * j) {
    return j->upload_kind == SRV_UPLOAD_TUS ? SRV_JU_TUS : j->upload_kind == SRV_UPLOAD_PUT ? SRV_JU_PUT : SRV_JU_NONE;
}

/* The loop's view of the job as a record in `state` (spec_json is borrowed). */
static void snapshot(struct srv_job * j, enum srv_jstate state, struct srv_jrec * rec) {
    memset(rec, 0, sizeof(*rec));
    snprintf(rec->id, sizeof(rec->id), "%s", j->id);
    snprintf(rec->tenant, sizeof(rec->tenant), "%s", j->tenant);
    snprintf(rec->idem_key, sizeof(rec->idem_key), "%s", j->idem_key);
    rec->spec_json = j->spec_json;
    rec->created_unix = j->created_unix;
    rec->upload = upload_of(j);
    rec->tus_length = j->tus_length;
    rec->expected_bytes = j->expected_bytes;
    rec->state = state;
    pl_job_get_status(j->pl, &rec->st);
    rec->input_bytes = rec->st.input_bytes;
    rec->output_bytes = rec->st.output_bytes;
}

static int put(struct srv * s, struct srv_job * j, enum srv_jstate state) {
    struct srv_jrec rec;
    snapshot(j, state, &rec);
    int rc = srv_journal_put(s->journal, &rec);
    if (rc != 0) RLOG(ERROR, NULL, j->id, "journal: cannot write the %s record: %s", srv_jstate_name(state), strerror(errno));
    return rc;
}

int srv_persist_created(struct srv * s, struct srv_job * j) { return put(s, j, SRV_J_CREATED); }

int srv_persist_upload_created(struct srv * s, struct srv_job * j) {
    j->journaled_offset = 0;
    j->journaled_mono = srv_mono_now();
    return put(s, j, SRV_J_UPLOADING);
}

void srv_persist_input_complete(struct srv * s, struct srv_job * j) {
    if (put(s, j, SRV_J_INPUT_COMPLETE) == 0) {
        char path[sizeof(s->cfg.spool_dir) + SRV_JOB_ID_MAX + 8];
        snprintf(path, sizeof(path), "%s/%s.in", s->cfg.spool_dir, j->id);
        srv_journal_sync_input(s->journal, j->id, path, pl_job_input_offset(j->pl));
    }
}

void srv_persist_terminal(struct srv * s, struct srv_job * j, const struct pl_job_status * st) {
    if (j->persisted_terminal || j->deleted || j->journal_removed) return;
    /* Cancelled by the shutdown (drain timeout, engine stop): not the client's doing. The
     * job keeps its record and input, so the next start re-runs or resumes it. */
    if (st->state == PL_JOB_CANCELLED && (s->drain_cancelled || s->stopping)) return;
    enum srv_jstate js = st->state == PL_JOB_SUCCEEDED ? SRV_J_SUCCEEDED
                       : st->state == PL_JOB_FAILED    ? SRV_J_FAILED
                                                       : SRV_J_CANCELLED;
    put(s, j, js); /* a failed write leaves the older record: recovery re-runs or fails the job */
    pl_job_drop_input(j->pl); /* a finished job never reads its input again: free the space now */
    j->persisted_terminal = true;
}

int srv_persist_removed(struct srv * s, struct srv_job * j) {
    if (j->journal_removed) return 0;
    if (srv_journal_remove(s->journal, j->id) != 0) {
        RLOG(ERROR, NULL, j->id, "journal: cannot remove the record: %s", strerror(errno));
        return -1;
    }
    j->journal_removed = true;
    return 0;
}

/* tus uploads: a checkpoint record when the offset moved, at most every TUS_CHECKPOINT_S
 * while a PATCH runs, at once when no request writes (the PATCH ended); the fdatasync that
 * makes the bytes count after a reboot follows on the journal's thread. */
void srv_persist_tick(struct srv * s) {
    double now = srv_mono_now();
    for (struct srv_link * l = s->jobs_all.next; l != &s->jobs_all; l = l->next) {
        struct srv_job * j = SRV_CONTAINER(l, struct srv_job, all_link);
        if (j->upload_kind != SRV_UPLOAD_TUS || j->input_ended || j->deleted || j->persisted_terminal) continue;
        int64_t off = pl_job_input_offset(j->pl);
        if (off == j->journaled_offset || (j->uploader && now - j->journaled_mono < TUS_CHECKPOINT_S)) continue;
        if (put(s, j, SRV_J_UPLOADING) != 0) continue;
        j->journaled_offset = off;
        j->journaled_mono = now;
        char path[sizeof(s->cfg.spool_dir) + SRV_JOB_ID_MAX + 8];
        snprintf(path, sizeof(path), "%s/%s.in", s->cfg.spool_dir, j->id);
        srv_journal_sync_input(s->journal, j->id, path, off);
    }
}

int srv_persist_commit_cb(void * user, struct pl_job * pl, int64_t output_bytes) {
    struct srv * s = user;
    struct pl_job_status st;
    pl_job_get_status(pl, &st);
    st.finished_at = srv_unix_now();
    int rc = srv_journal_commit_success(s->journal, pl_job_spec_of(pl)->id, output_bytes, &st);
    if (rc != 0)
        RLOG(ERROR, NULL, pl_job_spec_of(pl)->id, "journal: cannot commit the finished output: %s", strerror(errno));
    return rc;
}

void srv_persist_metrics(struct srv * s, struct srv_buf * b) {
    struct srv_journal_stats js;
    srv_journal_stats(s->journal, &js);
    srv_buf_printf(b, "# HELP infvsrd_journal_writes_total Job records written to the spool journal.\n"
                      "# TYPE infvsrd_journal_writes_total counter\ninfvsrd_journal_writes_total %llu\n",
                   (unsigned long long)js.writes);
    srv_buf_printf(b, "# HELP infvsrd_journal_errors_total Journal writes or removals that failed (disk full, I/O).\n"
                      "# TYPE infvsrd_journal_errors_total counter\ninfvsrd_journal_errors_total %llu\n",
                   (unsigned long long)js.errors);
    static const char * const outcome[5] = { "dropped", "restored", "awaiting_input", "rerun", "interrupted" };
    srv_buf_printf(b, "# HELP infvsrd_recovered_jobs Jobs found in the journal at start, by what became of them.\n"
                      "# TYPE infvsrd_recovered_jobs gauge\n");
    for (int i = 0; i < 5; i++) srv_buf_printf(b, "infvsrd_recovered_jobs{outcome=\"%s\"} %d\n", outcome[i], s->recovered[i]);
    srv_buf_printf(b, "# HELP infvsrd_spool_orphans_removed Spool files no journal record vouched for, removed at start.\n"
                      "# TYPE infvsrd_spool_orphans_removed gauge\ninfvsrd_spool_orphans_removed %d\n", s->orphans_removed);
    srv_buf_printf(b, "# HELP infvsrd_input_wait_expired_total Jobs deleted after input_wait_timeout_s without an input byte.\n"
                      "# TYPE infvsrd_input_wait_expired_total counter\ninfvsrd_input_wait_expired_total %llu\n",
                   (unsigned long long)s->input_wait_expired);
    srv_buf_printf(b, "# HELP infvsrd_tenant_limit_refusals_total Job creations refused by max_awaiting_jobs_per_tenant.\n"
                      "# TYPE infvsrd_tenant_limit_refusals_total counter\ninfvsrd_tenant_limit_refusals_total %llu\n",
                   (unsigned long long)s->tenant_refusals);
}
