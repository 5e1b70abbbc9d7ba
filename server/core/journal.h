/* The spool journal: what survives a restart (docs/ARCHITECTURE.md "Restart safety").
 *
 * DESIGN
 * - One record file per job, <spool>/<id>.job, always replaced whole: written to
 *   <id>.job.tmp, fsync'ed, renamed over <id>.job, then the spool directory fsync'ed. A
 *   reader therefore sees the previous record or the new one, never a mix; a CRC-32C
 *   trailer catches the rest (bit rot, a hand-edited file). Why not one append-only log:
 *   per-job files need no compaction, deleting a job is one unlink, and one damaged file
 *   costs one job, not the history after it.
 * - A record is written when the job's durable facts change: created (before the 201),
 *   tus upload created (before the 201), tus offset checkpoints (1 s tick), input complete,
 *   output committed (on the encode thread after the .out rename is durable and BEFORE the
 *   job is seen as succeeded), failed/cancelled; a removed job's record is unlinked before
 *   the DELETE's 204. Records only move forward: a terminal record is never replaced by a
 *   non-terminal one (a late writer with an older view loses).
 * - Input bytes: pwrite'd bytes survive a killed process (page cache) but not a power
 *   loss. Each record carries the kernel's boot_id: after a restart in the same boot the
 *   size of <id>.in is the truth; after a reboot only `input_synced` (bytes a background
 *   fdatasync confirmed before the record was written) is.
 * - Writes go straight from the calling thread (loop or encode thread) under one I/O
 *   mutex, so they are ordered; only the fdatasync of large input files runs on the
 *   journal's own thread.
 * - Startup recovery (recover.c) reads every record, decides per job what its files are
 *   worth, restores the jobs, and removes every spool file no record vouches for. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pipeline.h"
#include "tenant.h"
#include "util.h"

#define SRV_JOURNAL_VERSION 1
#define SRV_BOOT_ID_MAX 40

enum srv_jstate {
    SRV_J_CREATED,         /* no upload claimed (PUT claims are not recorded)          */
    SRV_J_UPLOADING,       /* a tus upload exists; input_bytes = the last checkpoint    */
    SRV_J_INPUT_COMPLETE,  /* every input byte is in <id>.in (input_bytes of them)      */
    SRV_J_SUCCEEDED,       /* <id>.out holds output_bytes complete bytes                */
    SRV_J_FAILED,
    SRV_J_CANCELLED,
};
static inline bool srv_jstate_terminal(enum srv_jstate s) { return s >= SRV_J_SUCCEEDED; }
const char * srv_jstate_name(enum srv_jstate s);

enum srv_jupload { SRV_JU_NONE, SRV_JU_PUT, SRV_JU_TUS };

/* What a record file says. */
struct srv_jrec {
    char    id[SRV_JOB_ID_MAX];
    char    tenant[SRV_TENANT_MAX];
    char    idem_key[72];
    char *  spec_json;             /* canonical JobSpec (owned; srv_jrec_clear frees)        */
    double  created_unix;
    enum srv_jupload upload;
    int64_t tus_length;            /* -1 = none                                              */
    int64_t expected_bytes;
    enum srv_jstate state;
    int64_t input_bytes;           /* stored input bytes when the record was written         */
    int64_t input_synced;          /* of those, bytes an fdatasync confirmed                 */
    char    boot_id[SRV_BOOT_ID_MAX];
    int64_t output_bytes;          /* SUCCEEDED                                              */
    struct pl_job_status st;       /* counters, sizes, timestamps, error (code + message)    */
};

void srv_jrec_clear(struct srv_jrec * r);
/* The record file's bytes: a JSON object, "\n", then "crc32c=XXXXXXXX\n" over everything
 * before it. Returns a malloc'ed string (NULL: out of memory). */
char * srv_jrec_format(const struct srv_jrec * r, size_t * len);
/* Parses a record file; false with a message when it is damaged or not a record. */
bool srv_jrec_parse(const char * text, size_t len, struct srv_jrec * out, char * err, size_t err_len);
/* CRC-32C (Castagnoli), as iSCSI/ext4 use it. */
uint32_t srv_crc32c(uint32_t crc, const void * data, size_t len);

/* ---- the store (journal.c) ------------------------------------------------------------------ */
struct srv_journal;

int  srv_journal_open(struct srv_journal ** out, const char * spool_dir, char * err, size_t err_len);
void srv_journal_close(struct srv_journal * jn);
const char * srv_journal_boot_id(const struct srv_journal * jn);
/* Writes `rec` as the job's record now (a copy is kept). A terminal stored record is not
 * replaced by a non-terminal one (returns 0: nothing to write). -1 with errno on failure. */
int  srv_journal_put(struct srv_journal * jn, const struct srv_jrec * rec);
/* Keeps `rec` (read back at start) as the job's record without writing it. */
int  srv_journal_adopt(struct srv_journal * jn, const struct srv_jrec * rec);
/* The output of job `id` is complete and durable: its record becomes SUCCEEDED with these
 * facts. From the encode thread. 0 also when the job has no record any more (deleted). */
int  srv_journal_commit_success(struct srv_journal * jn, const char * id, int64_t output_bytes,
                                const struct pl_job_status * st);
/* Unlinks the job's record (and fsyncs the directory); -1 on failure. */
int  srv_journal_remove(struct srv_journal * jn, const char * id);
/* Asks the journal thread to fdatasync `in_path` and then record `bytes` as input_synced. */
void srv_journal_sync_input(struct srv_journal * jn, const char * id, const char * in_path, int64_t bytes);
/* The stored record's state (false when the journal has no record of `id`). */
bool srv_journal_state(struct srv_journal * jn, const char * id, enum srv_jstate * out);

struct srv_journal_stats {
    uint64_t writes, removes, errors, input_syncs;
};
void srv_journal_stats(struct srv_journal * jn, struct srv_journal_stats * out);

/* ---- startup recovery (recover.c) -------------------------------------------------------- */
/* What the spool holds for one job, as recovery found it. */
struct srv_spool_facts {
    bool    has_in, has_out, has_part;
    int64_t in_size, out_size;
    bool    same_boot;             /* the record was written in this boot (page cache intact) */
    double  now_unix;
    int     job_ttl_s, input_wait_timeout_s;
};
enum srv_recover_action {
    SRV_RECOVER_DROP,              /* expired (TTL, input wait): remove record and files       */
    SRV_RECOVER_TERMINAL,          /* restore as the terminal job the record describes         */
    SRV_RECOVER_AWAIT,             /* restore waiting for input: input_bytes so far (tus) or 0 */
    SRV_RECOVER_RERUN,             /* the input is complete: restore queued, process again     */
    SRV_RECOVER_INTERRUPTED,       /* the input is incomplete and cannot be resumed: failed     */
};
struct srv_recover_plan {
    enum srv_recover_action action;
    int64_t input_bytes;           /* AWAIT / RERUN: the input bytes to keep                   */
    bool    keep_out;              /* TERMINAL succeeded: serve <id>.out                       */
    const char * why;              /* for the log and for INTERRUPTED's message                */
};
/* The decision for one record (pure: tested by the unit tests). */
struct srv_recover_plan srv_recover_plan(const struct srv_jrec * r, const struct srv_spool_facts * f);

struct srv;
/* Reads the spool, restores the jobs of this instance into the table, removes orphan files.
 * Called once by srv_open after the engine started and before the listener opens. */
int srv_recover(struct srv * s, char * err, size_t err_len);
