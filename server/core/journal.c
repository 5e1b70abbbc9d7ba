/* The journal store (journal.h): the newest record of every job in memory, record files
 * written atomically on the calling thread, input fdatasyncs on the journal's own thread.
 *
 * Locks: io_mu serialises every file operation of the journal, so writes reach the disk in
 * the order they were made; mu guards the table, the sync queue and the counters and is
 * never held across a system call that waits for the disk. Order: io_mu before mu. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal.h"

#define JN_BUCKETS 1024

struct jentry {
    struct srv_jrec rec;
    struct jentry * hnext;
};

struct sync_req {
    char    id[SRV_JOB_ID_MAX];
    char *  path;
    int64_t bytes;
    struct sync_req * next;
};

struct srv_journal {
    int     dir_fd;
    char    boot_id[SRV_BOOT_ID_MAX];
    pthread_mutex_t io_mu;
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    pthread_t thread;
    bool    thread_started, quit;
    struct jentry * buckets[JN_BUCKETS];
    struct sync_req * q_head, * q_tail;
    struct srv_journal_stats stats;
};

static unsigned bucket_of(const char * id) {
    uint32_t h = 2166136261u;
    for (; *id; id++) h = (h ^ (unsigned char)*id) * 16777619u;
    return h % JN_BUCKETS;
}

static struct jentry ** find_slot(struct srv_journal * jn, const char * id) {
    struct jentry ** pp = &jn->buckets[bucket_of(id)];
    while (*pp && strcmp((*pp)->rec.id, id) != 0) pp = &(*pp)->hnext;
    return pp;
}

static void read_boot_id(char out[SRV_BOOT_ID_MAX]) {
    out[0] = 0;
    FILE * f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (!f) return; /* unknown: recovery then trusts only fdatasync'ed input bytes */
    if (fgets(out, SRV_BOOT_ID_MAX, f)) out[strcspn(out, "\r\n")] = 0;
    fclose(f);
}

/* ---- file operations (io_mu held) --------------------------------------------------------- */

static int write_all(int fd, const char * p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* <id>.job.tmp, fsync, rename over <id>.job, fsync the directory. */
static int write_record_file(struct srv_journal * jn, const char * id, const char * text, size_t len) {
    char tmp[SRV_JOB_ID_MAX + 16], fin[SRV_JOB_ID_MAX + 16];
    snprintf(tmp, sizeof(tmp), "%s.job.tmp", id);
    snprintf(fin, sizeof(fin), "%s.job", id);
    int fd = openat(jn->dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    int rc = write_all(fd, text, len) == 0 && fsync(fd) == 0 ? 0 : -1;
    int saved = errno;
    close(fd);
    if (rc == 0 && renameat(jn->dir_fd, tmp, jn->dir_fd, fin) != 0) {
        rc = -1;
        saved = errno;
    }
    if (rc != 0) {
        unlinkat(jn->dir_fd, tmp, 0); /* the old record stays as it was */
    } else if (fsync(jn->dir_fd) != 0) {
        rc = -1;
        saved = errno;
    }
    errno = saved;
    return rc;
}

/* Formats the entry of `id` under mu and writes it; 0 when there is no entry any more. */
static int flush_entry(struct srv_journal * jn, const char * id) {
    pthread_mutex_lock(&jn->mu);
    struct jentry * e = *find_slot(jn, id);
    size_t len = 0;
    char * text = e ? srv_jrec_format(&e->rec, &len) : NULL;
    bool oom = e && !text;
    pthread_mutex_unlock(&jn->mu);
    if (oom) {
        errno = ENOMEM;
        return -1;
    }
    if (!text) return 0;
    int rc = write_record_file(jn, id, text, len);
    int saved = errno;
    free(text);
    pthread_mutex_lock(&jn->mu);
    if (rc == 0) jn->stats.writes++;
    else jn->stats.errors++;
    pthread_mutex_unlock(&jn->mu);
    errno = saved;
    return rc;
}

/* ---- the input-sync thread ------------------------------------------------------------------ */

static void * sync_main(void * arg) {
    struct srv_journal * jn = arg;
    pthread_mutex_lock(&jn->mu);
    for (;;) {
        struct sync_req * q = jn->q_head;
        if (!q) {
            if (jn->quit) break;
            pthread_cond_wait(&jn->cv, &jn->mu);
            continue;
        }
        jn->q_head = q->next;
        if (!jn->q_head) jn->q_tail = NULL;
        pthread_mutex_unlock(&jn->mu);
        /* the file may be gone (job deleted, input dropped): then there is nothing to vouch for */
        int fd = open(q->path, O_RDONLY | O_CLOEXEC);
        bool synced = fd >= 0 && fdatasync(fd) == 0;
        if (fd >= 0) close(fd);
        pthread_mutex_lock(&jn->io_mu);
        pthread_mutex_lock(&jn->mu);
        struct jentry * e = synced ? *find_slot(jn, q->id) : NULL;
        bool write = e && !srv_jstate_terminal(e->rec.state) && q->bytes > e->rec.input_synced;
        if (write) e->rec.input_synced = q->bytes;
        jn->stats.input_syncs += synced;
        pthread_mutex_unlock(&jn->mu);
        if (write) flush_entry(jn, q->id);
        pthread_mutex_unlock(&jn->io_mu);
        free(q->path);
        free(q);
        pthread_mutex_lock(&jn->mu);
    }
    pthread_mutex_unlock(&jn->mu);
    return NULL;
}

/* ---- API -------------------------------------------------------------------------------------- */

int srv_journal_open(struct srv_journal ** out, const char * dir, char * err, size_t err_len) {
    *out = NULL;
    struct srv_journal * jn = calloc(1, sizeof(*jn));
    if (!jn) {
        snprintf(err, err_len, "journal: out of memory");
        return -1;
    }
    jn->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (jn->dir_fd < 0) {
        snprintf(err, err_len, "journal: cannot open spool_dir '%s': %s", dir, strerror(errno));
        free(jn);
        return -1;
    }
    read_boot_id(jn->boot_id);
    pthread_mutex_init(&jn->io_mu, NULL);
    pthread_mutex_init(&jn->mu, NULL);
    pthread_cond_init(&jn->cv, NULL);
    if (pthread_create(&jn->thread, NULL, sync_main, jn) != 0) {
        snprintf(err, err_len, "journal: cannot start its thread");
        srv_journal_close(jn);
        return -1;
    }
    jn->thread_started = true;
    *out = jn;
    return 0;
}

void srv_journal_close(struct srv_journal * jn) {
    if (!jn) return;
    pthread_mutex_lock(&jn->mu);
    jn->quit = true; /* the queued syncs still run: they only make records more useful */
    pthread_cond_signal(&jn->cv);
    pthread_mutex_unlock(&jn->mu);
    if (jn->thread_started) pthread_join(jn->thread, NULL);
    for (int b = 0; b < JN_BUCKETS; b++)
        while (jn->buckets[b]) {
            struct jentry * e = jn->buckets[b];
            jn->buckets[b] = e->hnext;
            srv_jrec_clear(&e->rec);
            free(e);
        }
    close(jn->dir_fd);
    pthread_cond_destroy(&jn->cv);
    pthread_mutex_destroy(&jn->mu);
    pthread_mutex_destroy(&jn->io_mu);
    free(jn);
}

const char * srv_journal_boot_id(const struct srv_journal * jn) { return jn->boot_id; }

int srv_journal_put(struct srv_journal * jn, const struct srv_jrec * rec) {
    char * spec = rec->spec_json ? strdup(rec->spec_json) : NULL;
    if (rec->spec_json && !spec) {
        errno = ENOMEM;
        return -1;
    }
    pthread_mutex_lock(&jn->io_mu);
    pthread_mutex_lock(&jn->mu);
    struct jentry ** pp = find_slot(jn, rec->id), * e = *pp;
    bool stale = e && srv_jstate_terminal(e->rec.state) &&
                 (!srv_jstate_terminal(rec->state) || rec->state == e->rec.state);
    if (!stale && !e) {
        e = calloc(1, sizeof(*e));
        if (e) *pp = e;
    }
    if (!stale && e) {
        free(e->rec.spec_json);
        int64_t synced = e->rec.input_synced; /* the sync thread's knowledge is newer */
        e->rec = *rec;
        e->rec.spec_json = spec;
        spec = NULL;
        if (synced > e->rec.input_synced) e->rec.input_synced = synced;
        snprintf(e->rec.boot_id, sizeof(e->rec.boot_id), "%s", jn->boot_id);
    }
    pthread_mutex_unlock(&jn->mu);
    free(spec);
    int rc = 0;
    if (!stale && !e) errno = ENOMEM, rc = -1;
    else if (!stale) rc = flush_entry(jn, rec->id);
    pthread_mutex_unlock(&jn->io_mu);
    return rc;
}

int srv_journal_adopt(struct srv_journal * jn, const struct srv_jrec * rec) {
    struct jentry * e = calloc(1, sizeof(*e));
    char * spec = rec->spec_json ? strdup(rec->spec_json) : NULL;
    if (!e || (rec->spec_json && !spec)) {
        free(e);
        free(spec);
        errno = ENOMEM;
        return -1;
    }
    e->rec = *rec;
    e->rec.spec_json = spec;
    pthread_mutex_lock(&jn->mu);
    struct jentry ** pp = find_slot(jn, rec->id);
    struct jentry * old = *pp;
    if (old) { /* never: ids are unique in the spool */
        *pp = old->hnext;
        srv_jrec_clear(&old->rec);
        free(old);
    }
    e->hnext = jn->buckets[bucket_of(rec->id)];
    jn->buckets[bucket_of(rec->id)] = e;
    pthread_mutex_unlock(&jn->mu);
    return 0;
}

int srv_journal_commit_success(struct srv_journal * jn, const char * id, int64_t output_bytes,
                               const struct pl_job_status * st) {
    pthread_mutex_lock(&jn->io_mu);
    pthread_mutex_lock(&jn->mu);
    struct jentry * e = *find_slot(jn, id);
    bool write = e && !srv_jstate_terminal(e->rec.state);
    if (write) {
        e->rec.state = SRV_J_SUCCEEDED;
        e->rec.output_bytes = output_bytes;
        e->rec.st = *st;
        e->rec.st.state = PL_JOB_SUCCEEDED;
        e->rec.st.error_code = PL_ERROR_NONE;
        e->rec.st.error[0] = 0;
        e->rec.st.output_bytes = output_bytes;
        if (e->rec.st.finished_at <= 0) e->rec.st.finished_at = srv_unix_now();
        snprintf(e->rec.boot_id, sizeof(e->rec.boot_id), "%s", jn->boot_id);
    }
    pthread_mutex_unlock(&jn->mu);
    int rc = write ? flush_entry(jn, id) : 0;
    pthread_mutex_unlock(&jn->io_mu);
    return rc;
}

int srv_journal_remove(struct srv_journal * jn, const char * id) {
    pthread_mutex_lock(&jn->io_mu);
    pthread_mutex_lock(&jn->mu);
    struct jentry ** pp = find_slot(jn, id), * e = *pp;
    if (e) *pp = e->hnext;
    pthread_mutex_unlock(&jn->mu);
    if (e) {
        srv_jrec_clear(&e->rec);
        free(e);
    }
    char fin[SRV_JOB_ID_MAX + 16];
    snprintf(fin, sizeof(fin), "%s.job", id);
    int rc = unlinkat(jn->dir_fd, fin, 0);
    if (rc != 0 && errno == ENOENT) rc = 0;
    else if (rc == 0) rc = fsync(jn->dir_fd);
    int saved = errno;
    pthread_mutex_lock(&jn->mu);
    if (rc == 0) jn->stats.removes++;
    else jn->stats.errors++;
    pthread_mutex_unlock(&jn->mu);
    pthread_mutex_unlock(&jn->io_mu);
    errno = saved;
    return rc;
}

void srv_journal_sync_input(struct srv_journal * jn, const char * id, const char * in_path, int64_t bytes) {
    pthread_mutex_lock(&jn->mu);
    for (struct sync_req * q = jn->q_head; q; q = q->next)
        if (strcmp(q->id, id) == 0) { /* coalesce: one fdatasync covers every byte written before it */
            if (bytes > q->bytes) q->bytes = bytes;
            pthread_mutex_unlock(&jn->mu);
            return;
        }
    struct sync_req * q = calloc(1, sizeof(*q));
    if (q) q->path = strdup(in_path);
    if (!q || !q->path) { /* out of memory: the record keeps its older synced count */
        free(q);
        pthread_mutex_unlock(&jn->mu);
        return;
    }
    snprintf(q->id, sizeof(q->id), "%s", id);
    q->bytes = bytes;
    if (jn->q_tail) jn->q_tail->next = q;
    else jn->q_head = q;
    jn->q_tail = q;
    pthread_cond_signal(&jn->cv);
    pthread_mutex_unlock(&jn->mu);
}

bool srv_journal_state(struct srv_journal * jn, const char * id, enum srv_jstate * out) {
    pthread_mutex_lock(&jn->mu);
    struct jentry * e = *find_slot(jn, id);
    if (e) *out = e->rec.state;
    pthread_mutex_unlock(&jn->mu);
    return e != NULL;
}

void srv_journal_stats(struct srv_journal * jn, struct srv_journal_stats * out) {
    pthread_mutex_lock(&jn->mu);
    *out = jn->stats;
    pthread_mutex_unlock(&jn->mu);
}
