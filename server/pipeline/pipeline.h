/* The job pipeline of infvsrd: everything between the bytes of an upload and the bytes of
 * the output file, off the loop thread (DESIGN.md "Dataflow" and "Threads").
 *
 *   upload bytes --pl_job_input_write--> <spool>/<id>.in (append-only file)
 *     --[decode thread: tails the file, FFmpeg demux+decode]--> LR frame queue (bounded)
 *     --[worker thread: engine session, round robin at chunk granularity]--> SR frame queue
 *     --[encode thread: FFmpeg encode+mux]--> <spool>/<id>.out.part --rename--> <id>.out
 *
 * The loop thread (server/core) calls the pl_* functions; they never block for long (a
 * mutex held for bookkeeping, one write(2) of an upload piece to the spool file). The
 * pipeline's threads tell the loop that something changed through the notify callback
 * (called from any pipeline thread, never with a pipeline lock held); the loop then reads
 * the new state with pl_job_get_status / pl_job_output_bytes.
 *
 * Threads: one worker per engine slot (the CPU build: one worker whose kernels use a
 * thread pool), and two media threads per ACTIVE job (decode, encode); active jobs are
 * bounded by workers x max_active_per_worker, so media threads are bounded too.
 *
 * Memory per active job is bounded by: frame_queue LR frames + output_queue SR frames
 * (each queue also capped at PL_QUEUE_MAX_BYTES, at least 2 frames) + the engine session
 * (sized at open from the frame size) + the codecs' own buffers + an audio packet queue
 * (at most 512 packets / 8 MiB). The
 * upload may run ahead of the decoder by at most input_lead_bytes on disk; beyond that
 * pl_job_input_write accepts nothing until PL_EV_INPUT_SPACE (the loop suspends the
 * upload connection meanwhile).
 *
 * Lifetime: a pl_job is reference counted. pl_job_create returns one reference (the
 * loop's). The notify callback receives a job that stays alive for the duration of the
 * call; take a reference (pl_job_ref) to keep it longer. The spool files of a job are
 * removed when the job is deleted (pl_job_delete) and its last reference is dropped. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "infvsr/status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct pl_engine;
struct pl_job;

/* Byte cap of each per-job frame queue (LR and SR): 256 MiB. */
#define PL_QUEUE_MAX_BYTES ((size_t)256 << 20)

/* Event bits passed to the notify callback. */
enum {
    PL_EV_INPUT_SPACE = 1u << 0, /* pl_job_input_write may accept bytes again                 */
    PL_EV_PROGRESS    = 1u << 1, /* status changed: probed, frames in/out, state              */
    PL_EV_OUTPUT      = 1u << 2, /* more output bytes are readable (pl_job_output_bytes grew) */
    PL_EV_FINISHED    = 1u << 3, /* the job reached a terminal state                          */
    PL_EV_ENGINE      = 1u << 4, /* engine health changed (job == NULL): loaded, failed      */
};

typedef void (*pl_notify_cb)(void * user, struct pl_job * job, unsigned events);

/* Called on a job's encode thread, with no pipeline lock held, once its output is complete
 * and durable under its final name (<id>.out fsynced, renamed, spool directory fsynced) and
 * BEFORE the job becomes SUCCEEDED: the daemon records the completion durably here, so that
 * no client can see a success that a crash would take back. Non-zero fails the job
 * (internal error) and removes the output. */
typedef int (*pl_commit_cb)(void * user, struct pl_job * job, int64_t output_bytes);

#define PL_MAX_WORKERS 16
struct pl_engine_opts {
    const char * model;            /* "null" (identity: nearest-neighbour x scale, no network)
                                      or a model directory (infvsr_model_open_dir)            */
    const char * spool_dir;        /* must exist and be writable                             */
    int     workers;               /* worker threads, one backend each (1..PL_MAX_WORKERS)    */
    int     threads;               /* CPU kernel threads per worker; 0 = all cores            */
    const char * device;           /* backend name (infvsr_backend_init_by_name) of workers
                                      without their own worker_device; NULL: cpu              */
    const char * worker_device[PL_MAX_WORKERS]; /* per worker (index < workers); NULL: device              */
    const char * worker_name[PL_MAX_WORKERS]; /* label in metrics and health; NULL: its device name      */
    int64_t devsim_fault_at_op[PL_MAX_WORKERS]; /* tests: the worker's devsim faults at this op; 0 = none  */
    int64_t device_reserve_bytes;  /* device memory a worker's sessions leave free; 512 MiB   */
    const char * precision;        /* "auto", "f32" or "bf16"; NULL: auto                     */
    int     max_active_per_worker; /* jobs a worker interleaves; default 2                    */
    int     max_queued_jobs;       /* non-terminal jobs beyond the active ones; default 16    */
    int64_t input_lead_bytes;      /* upload may be this far ahead of the decoder; 32 MiB     */
    int64_t max_input_bytes;       /* total upload size limit; default 16 GiB                  */
    int     frame_queue;           /* LR frames between decoder and worker; default 24        */
    int     output_queue;          /* SR frames between worker and encoder; default 24        */
    int64_t max_frame_pixels;      /* LR width*height limit; default 1920*1080                 */
    int     max_dimension;         /* LR side limit; default 4096                              */
    double  decode_deadline_s;     /* stall limit for the decoder waiting on input bytes;
                                      0 = none (the loop enforces upload timeouts)            */
    pl_notify_cb notify;
    void *  notify_user;           /* also passed to `commit`                                */
    pl_commit_cb commit;           /* NULL: a job succeeds as soon as its output is renamed  */
};

struct pl_engine_opts pl_engine_opts_default(void);

/* Starts the worker threads; the model loads on the worker threads (the engine reports
 * PL_ENGINE_LOADING until then, then PL_EV_ENGINE). Errors here are only option/spool
 * errors; a model that fails to load shows as PL_ENGINE_FAILED with the message. */
enum infvsr_status pl_engine_start(const struct pl_engine_opts * o, struct pl_engine ** out,
                                   struct infvsr_err * err);
/* Cancels every job that is still running, joins all threads, frees the engine. Jobs the
 * loop still references stay valid (status: cancelled) until their last unref. */
void pl_engine_stop(struct pl_engine * e);

enum pl_engine_state { PL_ENGINE_LOADING, PL_ENGINE_READY, PL_ENGINE_FAILED };

struct pl_worker_health {
    int  id;
    bool healthy;          /* false after a device fault (sticky) or a failed model load */
    bool loaded;           /* the model load has finished (well or not)                  */
    int  active_jobs;
    int  waiting_jobs;     /* placed here, waiting for device memory or their probe      */
    char name[40];         /* label: its device name ("devsim:1"), "cpu/0" when several
                              workers share one device                                   */
    char device[32];       /* the backend name it opened                                 */
    char backend[32];      /* the backend's name ("cpu", "cuda:0", "devsim") or "null" */
    char error[256];
    /* bytes; mem_total 0: host memory (no device budget) */
    uint64_t mem_total, mem_free, model_bytes, session_bytes;
    uint64_t chunks, frames, faults;
    double   busy_seconds;
};

struct pl_engine_health {
    enum pl_engine_state state;
    char model_name[64];   /* "infvsr" (full), "infvsr-tiny", "null" ... */
    char model_files[4][320]; /* one line per model file once a worker has loaded it ("" before) */
    char error[256];       /* when FAILED */
    int  n_workers;
    struct pl_worker_health workers[PL_MAX_WORKERS];
    int  jobs_queued;      /* jobs with input waiting for an active slot (queue depth) */
    int  jobs_active;
    int  jobs_awaiting_input; /* created, not one input byte yet (hold no slot, no queue place) */
};
void pl_engine_health(struct pl_engine * e, struct pl_engine_health * out);

/* Cumulative counters and histograms for /metrics (the loop renders them). Bucket upper
 * bounds are fixed: PL_LATENCY_BUCKETS seconds, the last one +Inf. */
#define PL_N_LATENCY_BUCKETS 14
extern const double PL_LATENCY_BUCKETS[PL_N_LATENCY_BUCKETS]; /* 0.01 .. 300, then +Inf */
struct pl_histogram {
    uint64_t counts[PL_N_LATENCY_BUCKETS]; /* non-cumulative per bucket */
    uint64_t count;
    double   sum;
};
struct pl_metrics {
    uint64_t frames_in, frames_out, chunks, input_bytes, output_bytes;
    uint64_t jobs_succeeded, jobs_failed, jobs_cancelled;
    struct pl_histogram chunk_seconds;         /* worker time per chunk                    */
    struct pl_histogram time_to_first_frame;   /* first input byte -> first output byte    */
    struct pl_histogram queue_seconds;         /* first input byte -> active slot          */
};
void pl_engine_metrics(struct pl_engine * e, struct pl_metrics * out);

/* ---- jobs ------------------------------------------------------------------------------ */

enum pl_container { PL_CONTAINER_MATROSKA, PL_CONTAINER_MPEGTS, PL_CONTAINER_MP4, PL_CONTAINER_Y4M };
enum pl_codec     { PL_CODEC_H264, PL_CODEC_FFV1, PL_CODEC_RAWVIDEO };
enum pl_pix_fmt   { PL_PIX_AUTO, PL_PIX_YUV420P, PL_PIX_YUV444P };

struct pl_job_spec {
    char    id[96];               /* job id, also the spool file stem                         */
    int     scale;                /* 1..8; the model's scale for a real model (4)            */
    char    input_format[32];     /* demuxer name to skip probing, "" = probe                */
    int64_t max_frames;           /* 0 = all                                                  */
    enum pl_container container;  /* matroska (default), mpegts, mp4 (fragmented), y4m       */
    enum pl_codec codec;          /* h264 (default), ffv1 (matroska only), rawvideo (y4m)   */
    int     crf;                  /* h264: 0..51, default 15                                  */
    enum pl_pix_fmt pix_fmt;
    bool    copy_audio;           /* copy audio/subtitle streams the container can hold     */
    bool    scene_detect;
    double  scene_threshold, reference_threshold;
};
struct pl_job_spec pl_job_spec_default(void);
/* Rejects impossible combinations (ffv1 outside matroska, rawvideo outside y4m, y4m with
 * h264...) with INFVSR_ERR_INVALID_ARG and a message naming the fields. */
enum infvsr_status pl_job_spec_check(const struct pl_job_spec * s, struct infvsr_err * err);
/* MIME type of the output container ("video/x-matroska", "video/mp2t", "video/mp4",
 * "video/x-yuv4mpeg"). */
const char * pl_container_mime(enum pl_container c);

/* Admission: INFVSR_ERR_BUSY when the engine already has workers*max_active_per_worker +
 * max_queued_jobs non-terminal jobs WITH input (jobs still waiting for their first byte
 * are bounded per tenant by the loop, not here), or is not READY (the loop answers 503 +
 * Retry-After). Creates <spool>/<id>.in (mode 0600). Processing starts once input bytes
 * arrive and a slot is free (FIFO over jobs with input); a job that gets its first byte
 * joins the queue even when the limit has been reached since it was created. */
enum infvsr_status pl_job_create(struct pl_engine * e, const struct pl_job_spec * spec, struct pl_job ** out,
                                 struct infvsr_err * err);
struct pl_job * pl_job_ref(struct pl_job * j);
void pl_job_unref(struct pl_job * j);
const struct pl_job_spec * pl_job_spec_of(const struct pl_job * j);

/* Appends up to len bytes to the input. Returns the number of bytes accepted (fewer than
 * len, possibly 0, when the upload is input_lead_bytes ahead of the decoder: wait for
 * PL_EV_INPUT_SPACE), or a negative infvsr_status: INFVSR_ERR_INVALID_ARG after
 * pl_job_input_end; INFVSR_ERR_BUSY when the total would exceed max_input_bytes (the loop
 * answers 413; nothing of this piece is stored); INFVSR_ERR_CANCELLED when the job is
 * terminal (failed or cancelled: the status says which); a full spool (ENOSPC, EDQUOT,
 * EFBIG) fails the job with PL_ERROR_INSUFFICIENT_STORAGE and answers that way too;
 * INFVSR_ERR_IO when another spool write error happened (the bytes stored before a write
 * error count in the offset). */
int64_t pl_job_input_write(struct pl_job * j, const void * data, size_t len, struct infvsr_err * err);
/* Bytes stored so far (the tus Upload-Offset). */
int64_t pl_job_input_offset(const struct pl_job * j);
/* The upload is complete: the decoder sees end of input after the stored bytes. */
enum infvsr_status pl_job_input_end(struct pl_job * j, struct infvsr_err * err);

/* Output: the spool file grows while the job runs (a streamable container: Matroska
 * without seeking back, MPEG-TS, fragmented MP4, y4m) and is complete when the state is
 * SUCCEEDED. pl_job_output_fd returns a new read-only descriptor of it (the caller closes
 * it; valid across the final rename) or -1 before the encoder has created it. Bytes
 * [0, pl_job_output_bytes) are final and may be read with pread. */
int     pl_job_output_fd(struct pl_job * j);
int64_t pl_job_output_bytes(const struct pl_job * j);

enum pl_job_state {
    PL_JOB_CREATED,   /* no input yet                                  */
    PL_JOB_QUEUED,    /* input arriving, waiting for an active slot    */
    PL_JOB_RUNNING,   /* decoding / upscaling / encoding               */
    PL_JOB_SUCCEEDED, PL_JOB_FAILED, PL_JOB_CANCELLED,
};
const char * pl_job_state_name(enum pl_job_state s); /* "created", "queued", ... */
static inline bool pl_job_state_terminal(enum pl_job_state s) { return s >= PL_JOB_SUCCEEDED; }

/* Error classes, named as in proto/errors.json. */
enum pl_error_code {
    PL_ERROR_NONE = 0,
    PL_ERROR_UNPROCESSABLE_VIDEO, /* not a decodable video, limits, resolution change   */
    PL_ERROR_WORKER_FAILED,       /* device fault / model failure                       */
    PL_ERROR_INTERNAL,            /* encoder failure, out of memory                      */
    PL_ERROR_CANCELLED,
    PL_ERROR_INTERRUPTED,         /* the server restarted while the input was incomplete  */
    PL_ERROR_INSUFFICIENT_STORAGE, /* the spool is full (ENOSPC, EDQUOT, file size limit) */
    PL_ERROR_DEVICE_FAULT,        /* the job's worker had a device fault (sticky)         */
};
/* The last code: loops over every code (the journal reads codes back by name) end here. */
#define PL_ERROR_LAST PL_ERROR_DEVICE_FAULT
const char * pl_error_code_name(enum pl_error_code c); /* "unprocessable_video", ... */

struct pl_job_status {
    enum pl_job_state state;
    bool    probed;               /* the decoder has opened the input (width.. are valid)   */
    int     width, height;        /* LR                                                      */
    int     out_width, out_height;
    double  in_fps;
    int64_t input_bytes, frames_in, frames_out, chunks, output_bytes;
    double  fps;                  /* output frames/s over the job's running time           */
    double  created_at, started_at, first_output_at, finished_at; /* unix seconds, 0 = not yet */
    enum pl_error_code error_code;
    char    error[256];
};
void pl_job_get_status(struct pl_job * j, struct pl_job_status * out);

/* Cancels (state CANCELLED unless already terminal), stops the job's threads, frees its
 * worker slot and session. Asynchronous and idempotent; PL_EV_FINISHED follows. */
void pl_job_cancel(struct pl_job * j);
/* Cancel + remove the spool files once the last reference is gone. */
void pl_job_delete(struct pl_job * j);
/* Removes <id>.in now: a terminal job never reads its input again, so a failed job frees
 * its spool space at once instead of at job_ttl_s. Idempotent; threads that still hold
 * the file open finish with it unaffected. */
void pl_job_drop_input(struct pl_job * j);

/* ---- frame previews (pl_preview.c) ------------------------------------------------------
 * The decode and encode threads write PNGs of the LR and SR versions of frame 0 and of at
 * most one other frame per job into the spool (<id>.pv<slot>.<lr|sr>.png), so that a
 * preview costs the loop one open(2) and the worker nothing; the encode thread spends one
 * PNG encode on it per kept frame. At most 4 PNGs per job; they go with the job's other
 * files (and do not survive a restart). A frame other than 0 is kept only when asked for
 * before the decoder reaches it ("pins" it): the first such request wins. */
enum pl_preview_state {
    PL_PREVIEW_READY,     /* *path names the PNG (caller frees)                            */
    PL_PREVIEW_PENDING,   /* not processed yet; it will be kept (pinned, or frame 0)      */
    PL_PREVIEW_NOT_KEPT,  /* already passed without being kept, another frame holds the
                             pin, the job ended before it, or writing the PNG failed     */
};
enum pl_preview_state pl_job_preview(struct pl_job * j, int64_t frame, bool sr, char ** path);

/* ---- restart (pl_restore.c) ---------------------------------------------------------------
 * The daemon's journal knows which jobs existed before a restart; it re-creates them here
 * from their spool files. Restored jobs are ordinary jobs afterwards. */
struct pl_job_restore {
    enum pl_job_state state;      /* CREATED: <id>.in holds input_bytes stored bytes (0 = none);
                                     with bytes the job is queued at once and re-run from the
                                     start. SUCCEEDED: <id>.out holds output_bytes complete
                                     bytes. FAILED / CANCELLED: no files.                     */
    int64_t input_bytes;          /* CREATED: the file is truncated to this length            */
    bool    input_ended;          /* CREATED: the upload is complete                           */
    int64_t output_bytes;         /* SUCCEEDED                                                 */
    struct pl_job_status status;  /* terminal: timestamps, counters, sizes, error; CREATED:
                                     created_at                                                */
};
/* Terminal jobs do not count against admission; CREATED ones do, like new jobs, but are
 * never refused (they were admitted before the restart). */
enum infvsr_status pl_job_restore(struct pl_engine * e, const struct pl_job_spec * spec, const struct pl_job_restore * r,
                                  struct pl_job ** out, struct infvsr_err * err);

#ifdef __cplusplus
}
#endif
