/* Startup recovery (journal.h): from the records and files in the spool back to a job table.
 *
 * Per record, srv_recover_plan decides (pure, unit-tested):
 *   succeeded        <id>.out of exactly output_bytes -> served again until job_ttl_s;
 *                    anything else -> failed `interrupted` (never a partial output as complete)
 *   failed/cancelled -> restored as they were until job_ttl_s
 *   input_complete   every input byte still there -> re-run from the first byte;
 *                    else a tus upload resumes from what is there, a PUT fails `interrupted`
 *   uploading (tus)  resumes from the bytes there: in the same boot the file's size (the page
 *                    cache survived the process), after a reboot the fdatasync'ed count
 *   created          no input byte -> waits for input again (input_wait_timeout_s from its
 *                    creation); bytes -> a PUT was cut by the restart: failed `interrupted`
 * Then every spool file of this instance that no restored job needs (partial outputs, the
 * inputs of finished jobs, files without a record, temporary records) is removed. Files of
 * other instances and unknown names are left alone. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "srv.h"

static bool expired(double since_unix, int ttl_s, double now) { return since_unix > 0 && now - since_unix >= ttl_s; }

struct srv_recover_plan srv_recover_plan(const struct srv_jrec * r, const struct srv_spool_facts * f) {
    struct srv_recover_plan p = { SRV_RECOVER_INTERRUPTED, 0, false, "" };
    int64_t avail = 0; /* input bytes recovery may vouch for */
    if (f->has_in) avail = f->same_boot ? f->in_size : (f->in_size < r->input_synced ? f->in_size : r->input_synced);
    if (r->tus_length >= 0 && avail > r->tus_length) avail = r->tus_length;
    double finished = r->st.finished_at > 0 ? r->st.finished_at : r->created_unix;
    switch (r->state) {
    case SRV_J_SUCCEEDED:
        if (expired(finished, f->job_ttl_s, f->now_unix)) return p.action = SRV_RECOVER_DROP, p.why = "job_ttl_s", p;
        if (f->has_out && f->out_size == r->output_bytes) {
            p.action = SRV_RECOVER_TERMINAL;
            p.keep_out = true;
            p.why = "succeeded";
            return p;
        }
        p.why = "the stored output is missing or damaged";
        return p;
    case SRV_J_FAILED:
    case SRV_J_CANCELLED:
        if (expired(finished, f->job_ttl_s, f->now_unix)) return p.action = SRV_RECOVER_DROP, p.why = "job_ttl_s", p;
        p.action = SRV_RECOVER_TERMINAL;
        p.why = srv_jstate_name(r->state);
        return p;
    case SRV_J_INPUT_COMPLETE:
        if (r->input_bytes > 0 && avail >= r->input_bytes) {
            p.action = SRV_RECOVER_RERUN;
            p.input_bytes = r->input_bytes;
            p.why = "the input is complete";
            return p;
        }
        if (r->upload == SRV_JU_TUS) {
            p.action = SRV_RECOVER_AWAIT;
            p.input_bytes = avail;
            p.why = "the tus upload lost bytes in a reboot and resumes";
            return p;
        }
        p.why = "the server restarted and the stored input is incomplete; create the job again";
        return p;
    case SRV_J_UPLOADING:
        if (r->tus_length > 0 && avail == r->tus_length) {
            p.action = SRV_RECOVER_RERUN;
            p.input_bytes = avail;
            p.why = "the tus upload is complete";
            return p;
        }
        if (avail == 0 && expired(r->created_unix, f->input_wait_timeout_s, f->now_unix))
            return p.action = SRV_RECOVER_DROP, p.why = "input_wait_timeout_s", p;
        p.action = SRV_RECOVER_AWAIT;
        p.input_bytes = avail;
        p.why = "the tus upload resumes";
        return p;
    case SRV_J_CREATED:
    default:
        if (f->has_in && f->in_size > 0) {
            p.why = "the server restarted during the upload; create the job again";
            return p;
        }
        if (expired(r->created_unix, f->input_wait_timeout_s, f->now_unix))
            return p.action = SRV_RECOVER_DROP, p.why = "input_wait_timeout_s", p;
        p.action = SRV_RECOVER_AWAIT;
        p.why = "waiting for input";
        return p;
    }
}

/* ---- the spool ------------------------------------------------------------------------------ */

static const char * const SUFFIXES[] = { ".job.tmp", ".out.part", ".job", ".out", ".in",
                                         /* frame previews (pipeline.h): never kept across a restart */
                                         ".pv0.lr.png", ".pv0.sr.png", ".pv1.lr.png", ".pv1.sr.png",
                                         ".pv0.lr.png.tmp", ".pv0.sr.png.tmp", ".pv1.lr.png.tmp", ".pv1.sr.png.tmp", NULL };

static bool is_preview(const char * suffix) { return strncmp(suffix, ".pv", 3) == 0; }

/* Splits "<id><suffix>" for a known suffix; false for any other name. */
static bool split_name(const char * name, char * id, size_t id_len, const char ** suffix) {
    size_t n = strlen(name);
    for (const char * const * s = SUFFIXES; *s; s++) {
        size_t sl = strlen(*s);
        if (n > sl && strcmp(name + n - sl, *s) == 0 && n - sl < id_len) {
            memcpy(id, name, n - sl);
            id[n - sl] = 0;
            *suffix = *s;
            return srv_job_id_parse(id, NULL, 0);
        }
    }
    return false;
}

static bool file_size(int dfd, const char * id, const char * suffix, int64_t * size) {
    char name[SRV_JOB_ID_MAX + 16];
    snprintf(name, sizeof(name), "%s%s", id, suffix);
    struct stat st;
    if (fstatat(dfd, name, &st, 0) != 0 || !S_ISREG(st.st_mode)) return false;
    *size = (int64_t)st.st_size;
    return true;
}

static char * read_small(int dfd, const char * name, size_t * len) {
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct stat st;
    char * buf = NULL;
    if (fstat(fd, &st) == 0 && st.st_size > 0 && st.st_size < (1 << 20) && (buf = malloc((size_t)st.st_size + 1))) {
        ssize_t n = pread(fd, buf, (size_t)st.st_size, 0);
        if (n != st.st_size) {
            free(buf);
            buf = NULL;
        } else {
            buf[n] = 0;
            *len = (size_t)n;
        }
    }
    close(fd);
    return buf;
}

/* ---- restoring one job ------------------------------------------------------------------------ */

static bool spec_of(const struct srv_jrec * r, struct srv_spec_result * sp) {
    json_error_t je;
    json_t * o = json_loads(r->spec_json, 0, &je);
    const char * model = json_string_value(json_object_get(o, "model"));
    char name[64];
    snprintf(name, sizeof(name), "%s", model ? model : "");
    json_decref(o);
    const char * names[] = { name, NULL };
    if (!srv_spec_parse(r->spec_json, strlen(r->spec_json), names, INT64_MAX / 2, sp)) return false;
    free(sp->canonical);
    sp->canonical = NULL;
    snprintf(sp->spec.id, sizeof(sp->spec.id), "%s", r->id);
    return true;
}

/* mono time of unix time `t`, clamped so that "0 = not set" stays distinguishable */
static double mono_of(double t, double now_unix, double now_mono) {
    double m = now_mono - (now_unix - t);
    return m > 1e-6 ? m : 1e-6;
}

static struct srv_job * restore_job(struct srv * s, struct srv_jrec * r, const struct srv_recover_plan * p) {
    struct srv_spec_result sp;
    if (!spec_of(r, &sp)) {
        LOG_WARN("recovery: job %s: its spec no longer parses (%s); dropped", r->id, sp.msg);
        return NULL;
    }
    struct pl_job_restore pr;
    memset(&pr, 0, sizeof(pr));
    pr.status = r->st;
    pr.status.created_at = r->created_unix;
    double now = srv_unix_now();
    switch (p->action) {
    case SRV_RECOVER_TERMINAL:
        pr.state = r->state == SRV_J_SUCCEEDED ? PL_JOB_SUCCEEDED : r->state == SRV_J_FAILED ? PL_JOB_FAILED : PL_JOB_CANCELLED;
        pr.output_bytes = r->output_bytes;
        break;
    case SRV_RECOVER_INTERRUPTED:
        pr.state = PL_JOB_FAILED;
        pr.status.error_code = PL_ERROR_INTERRUPTED;
        snprintf(pr.status.error, sizeof(pr.status.error), "%s", p->why);
        pr.status.finished_at = now;
        pr.status.output_bytes = 0;
        break;
    default: /* AWAIT, RERUN */
        pr.state = PL_JOB_CREATED;
        pr.input_bytes = p->input_bytes;
        pr.input_ended = p->action == SRV_RECOVER_RERUN;
        break;
    }
    struct pl_job * pl = NULL;
    struct infvsr_err err = { 0 };
    if (pl_job_restore(s->engine, &sp.spec, &pr, &pl, &err) != INFVSR_OK) {
        LOG_WARN("recovery: job %s: %s; dropped", r->id, err.msg);
        return NULL;
    }
    struct srv_job * j = srv_job_new(s, r->id, pl, r->spec_json, r->idem_key[0] ? r->idem_key : NULL);
    if (!j) {
        pl_job_delete(pl);
        pl_job_unref(pl);
        return NULL;
    }
    double now_mono = srv_mono_now();
    snprintf(j->tenant, sizeof(j->tenant), "%s", r->tenant);
    j->created_unix = r->created_unix > 0 ? r->created_unix : now;
    j->created_mono = mono_of(j->created_unix, now, now_mono);
    j->last_input_mono = now_mono; /* uploads get upload_expiry_s from the restart */
    j->expected_bytes = r->expected_bytes;
    j->upload_kind = r->upload == SRV_JU_TUS ? SRV_UPLOAD_TUS : r->upload == SRV_JU_PUT ? SRV_UPLOAD_PUT : SRV_UPLOAD_NONE;
    j->tus_length = r->upload == SRV_JU_TUS ? r->tus_length : -1;
    j->input_ended = p->action != SRV_RECOVER_AWAIT;
    j->journaled_offset = p->input_bytes;
    j->journaled_mono = now_mono;
    struct pl_job_status st;
    pl_job_get_status(pl, &st);
    j->seen_state = st.state;
    if (pl_job_state_terminal(st.state)) {
        j->finished_mono = mono_of(st.finished_at > 0 ? st.finished_at : now, now, now_mono);
        j->persisted_terminal = p->action == SRV_RECOVER_TERMINAL;
    }
    return j;
}

/* The record the journal keeps for the restored job: the old one (only adopted: rewriting
 * every record would cost an fsync each at every start), or the new state it is in. */
static void record_restored(struct srv * s, struct srv_job * j, const struct srv_jrec * r, const struct srv_recover_plan * p) {
    if (p->action == SRV_RECOVER_INTERRUPTED) {
        struct pl_job_status st;
        pl_job_get_status(j->pl, &st);
        srv_persist_terminal(s, j, &st);
    } else if (p->action == SRV_RECOVER_RERUN && r->state != SRV_J_INPUT_COMPLETE) {
        srv_journal_adopt(s->journal, r);
        srv_persist_input_complete(s, j);
    } else {
        srv_journal_adopt(s->journal, r);
    }
}

/* ---- the whole spool ------------------------------------------------------------------------ */

struct found {
    struct srv_jrec rec;
    struct srv_recover_plan plan;
    struct found * next;
};

/* Whether the plans need the file `id``suffix`. */
static bool needed(const struct found * list, const char * id, const char * suffix) {
    for (const struct found * f = list; f; f = f->next) {
        if (strcmp(f->rec.id, id) != 0) continue;
        enum srv_recover_action a = f->plan.action;
        if (strcmp(suffix, ".job") == 0) return a != SRV_RECOVER_DROP;
        if (strcmp(suffix, ".in") == 0) return a == SRV_RECOVER_AWAIT || a == SRV_RECOVER_RERUN;
        if (strcmp(suffix, ".out") == 0) return a == SRV_RECOVER_TERMINAL && f->plan.keep_out;
        return false; /* .out.part, .job.tmp: never */
    }
    return false;
}

static void unlink_job_files(int dfd, const char * id) {
    static const char * const sfx[] = { ".job", ".in", ".out", ".out.part" };
    for (int i = 0; i < 4; i++) {
        char name[SRV_JOB_ID_MAX + 16];
        snprintf(name, sizeof(name), "%s%s", id, sfx[i]);
        unlinkat(dfd, name, 0);
    }
}

static const char * action_name(enum srv_recover_action a) {
    return a == SRV_RECOVER_DROP       ? "removed"
           : a == SRV_RECOVER_TERMINAL ? "restored"
           : a == SRV_RECOVER_AWAIT    ? "waiting for input"
           : a == SRV_RECOVER_RERUN    ? "processing again"
                                       : "failed (interrupted)";
}

int srv_recover(struct srv * s, char * err, size_t err_len) {
    int dfd = open(s->cfg.spool_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR * d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        snprintf(err, err_len, "recovery: cannot read spool_dir '%s': %s", s->cfg.spool_dir, strerror(errno));
        if (dfd >= 0) close(dfd);
        return -1;
    }
    const char * boot = srv_journal_boot_id(s->journal);
    double now_unix = srv_unix_now();
    struct found * list = NULL;
    int foreign = 0, damaged = 0;
    struct dirent * de;

    /* 1. every record of this instance, and the plan for it */
    while ((de = readdir(d))) {
        char id[SRV_JOB_ID_MAX], owner[64];
        const char * suffix;
        if (!split_name(de->d_name, id, sizeof(id), &suffix) || strcmp(suffix, ".job") != 0) continue;
        if (!srv_job_id_parse(id, owner, sizeof(owner)) || strcmp(owner, s->cfg.instance) != 0) {
            foreign++;
            continue;
        }
        size_t len = 0;
        char * text = read_small(dfd, de->d_name, &len);
        struct found * f = calloc(1, sizeof(*f));
        char why[200] = "unreadable";
        if (!f || !text || !srv_jrec_parse(text, len, &f->rec, why, sizeof(why)) || strcmp(f->rec.id, id) != 0) {
            LOG_WARN("recovery: record %s is damaged (%s): the job is dropped", de->d_name, why);
            damaged++;
            if (f) srv_jrec_clear(&f->rec);
            free(f);
            free(text);
            continue;
        }
        free(text);
        struct srv_jrec * r = &f->rec;
        struct srv_spool_facts facts = { 0 };
        int64_t part_size = 0;
        facts.has_in = file_size(dfd, r->id, ".in", &facts.in_size);
        facts.has_out = file_size(dfd, r->id, ".out", &facts.out_size);
        facts.has_part = file_size(dfd, r->id, ".out.part", &part_size);
        facts.same_boot = boot[0] && strcmp(boot, r->boot_id) == 0;
        facts.now_unix = now_unix;
        facts.job_ttl_s = s->cfg.job_ttl_s;
        facts.input_wait_timeout_s = s->cfg.input_wait_timeout_s;
        f->plan = srv_recover_plan(r, &facts);
        f->next = list;
        list = f;
    }

    /* 2. the sweep, before any job is restored (a restored job may start writing at once):
     *    every file of this instance the plans do not need */
    rewinddir(d);
    while ((de = readdir(d))) {
        char id[SRV_JOB_ID_MAX], owner[64];
        const char * suffix;
        if (!split_name(de->d_name, id, sizeof(id), &suffix)) continue;
        if (!srv_job_id_parse(id, owner, sizeof(owner)) || strcmp(owner, s->cfg.instance) != 0) continue;
        if (needed(list, id, suffix)) continue;
        if (unlinkat(dfd, de->d_name, 0) == 0) s->orphans_removed += !is_preview(suffix); /* previews are expected */
        else LOG_WARN("recovery: cannot remove %s: %s", de->d_name, strerror(errno));
    }
    if (s->orphans_removed) fsync(dfd);

    /* 3. the jobs */
    while (list) {
        struct found * f = list;
        list = f->next;
        struct srv_jrec * r = &f->rec;
        struct srv_recover_plan p = f->plan;
        struct srv_job * j = p.action == SRV_RECOVER_DROP ? NULL : restore_job(s, r, &p);
        if (j) record_restored(s, j, r, &p);
        else if (p.action != SRV_RECOVER_DROP) {
            p.action = SRV_RECOVER_DROP;
            p.why = "it cannot be restored";
            unlink_job_files(dfd, r->id);
        }
        s->recovered[p.action]++;
        LOG_INFO("recovery: job %s (%s, tenant '%s'): %s -> %s", r->id, srv_jstate_name(r->state), r->tenant, p.why,
                 action_name(p.action));
        srv_jrec_clear(r);
        free(f);
    }
    closedir(d);
    int total = 0;
    for (int i = 0; i < 5; i++) total += s->recovered[i];
    LOG_INFO("recovery: %d job record(s): %d restored, %d re-run, %d waiting for input, %d interrupted, %d removed; "
             "%d orphan file(s) removed, %d damaged record(s), %d record(s) of other instances left alone",
             total, s->recovered[SRV_RECOVER_TERMINAL], s->recovered[SRV_RECOVER_RERUN], s->recovered[SRV_RECOVER_AWAIT],
             s->recovered[SRV_RECOVER_INTERRUPTED], s->recovered[SRV_RECOVER_DROP], s->orphans_removed, damaged, foreign);
    return 0;
}
