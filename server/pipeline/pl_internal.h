/* Inside the job pipeline (pipeline.h): the engine, its workers and slots, the job, and the
 * helpers the threads share. Not part of the contract with the loop.
 *
 * Locking: ONE mutex, engine->mu, guards every field marked [mu] below, of the engine and
 * of every job (bookkeeping only: no codec, model or file work is done while holding it,
 * except rename(2) and open(2) of the output). Frame buffers move between threads by
 * ownership, not under the lock: a ring slot between `head` and `head + count` belongs to
 * the consumer, the others to the producer; only the counters are [mu].
 * A job's input file has its own mutex, job->in_mu (taken BEFORE engine->mu), so that the
 * upload's write(2) never holds the engine lock.
 *
 * Lifetimes: jobs hold a reference on the engine (the struct outlives pl_engine_stop
 * until the last job is gone). Every pointer to a job kept by the engine (FIFO, slot,
 * notify list) holds a job reference. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "media.h"
#include "pipeline.h"

struct infvsr_backend;
struct infvsr_model;
struct infvsr_session;

/* Demuxers for common video containers and elementary streams. Nothing that opens other
 * files or URLs (hls, dash, concat, playlists, image sequences, tee...). */
#define PL_DEMUXERS "mov,matroska,mpegts,avi,flv,yuv4mpegpipe,mpeg,h264,hevc,m4v,ivf,nut,ogg,asf,mxf,gif,obu"

/* A bounded ring of equal-size frames (LR or SR), buffers allocated on first use so that a
 * job only pays for the depth it really reaches. */
struct pl_ring {
    int       cap;
    size_t    frame_bytes;
    uint8_t ** buf;     /* cap pointers, NULL until first used                        */
    int64_t * pts;
    int       head, count;   /* [mu] */
};

/* Audio/subtitle packets from the decode thread to the encode thread. */
#define PL_PACKET_QUEUE_MAX   512
#define PL_PACKET_QUEUE_BYTES (8 << 20)
struct pl_packet_node {
    struct infvsr_media_packet * p;
    struct pl_packet_node *      next;
};

struct pl_slot;

struct pl_job {
    struct pl_engine * e;
    atomic_int         refs;
    struct pl_job_spec spec;
    char *             in_path, * out_path, * part_path;

    /* input file: in_fd is written by pl_job_input_write (under in_mu) and read with pread
     * by the decode thread; closed when the job leaves its slot or at the last unref. */
    pthread_mutex_t in_mu;
    int             in_fd;
    int64_t         in_written;   /* [mu] bytes stored                                   */
    int64_t         in_consumed;  /* [mu] bytes handed to the demuxer                    */
    bool            in_ended;     /* [mu] pl_job_input_end was called                    */
    bool            want_space;   /* [mu] a write was cut short: fire PL_EV_INPUT_SPACE  */
    bool            in_dropped;   /* [in_mu] <id>.in was unlinked (pl_job_drop_input)     */

    pthread_cond_t  cv;           /* media threads of the job wait here (with mu)       */
    atomic_bool     stop;         /* terminal or engine stopping: threads wind down      */

    /* [mu] state */
    enum pl_job_state  state;
    enum pl_error_code error_code;
    char               error[256];
    bool               deleted;
    bool               in_fifo;
    struct pl_job *    fifo_next;
    struct pl_slot *   slot;
    bool               dec_done, enc_done, wrk_done; /* the slot's three parties are finished */
    bool               probed;
    struct infvsr_media_info info;  /* valid once probed (format/codec names not kept) */
    int                out_w, out_h;
    bool               dec_eof;       /* every LR frame is in the ring                    */
    bool               wrk_eof;       /* every SR frame is in the ring                    */
    bool               renamed;       /* .out.part became .out                            */
    bool               out_created;
    struct infvsr_media_writer * writer; /* opened by the decode thread, then the encoder's */
    int                out_fd;        /* <id>.out.part, used by whoever owns the writer    */
    int                out_errno;     /* errno of the failed output write or create (set and
                                         read by whoever owns the writer), 0 = none         */
    struct pl_ring     lr, sr;
    struct pl_packet_node * pk_head, * pk_tail;
    int                pk_count;
    int64_t            pk_bytes;
    int64_t            frames_in, frames_out, chunks;
    atomic_llong       output_bytes;  /* bytes in the output file (read without mu)        */
    double             created_at, first_input_at, started_at, first_output_at, finished_at;

    /* frame previews (pl_preview.c): PNGs of frame 0 and of at most one more frame (the
     * "pin", asked for through pl_job_preview before the decoder reached it) */
    atomic_llong       preview_pin;   /* frame index of slot 1, -1 = none; written under mu,
                                         read without it by the media threads (per frame) */
    bool               preview_pin_fixed; /* [mu] slot 1's LR frame is taken: pin final */
    unsigned           preview_have;  /* [mu] PL_PV_BIT(slot, sr): that PNG is on disk   */
    unsigned           preview_failed;/* [mu] same bits: writing it failed               */

    /* notify list [mu] */
    unsigned           ev_pending;
    struct pl_job *    ev_next;
    struct pl_job *    zombie_next;   /* [mu] last reference dropped under the lock */
    struct pl_job *    live_prev, * live_next; /* [mu] in e->live while not terminal */
};

struct pl_worker;

/* One active-job slot of a worker: a decode and an encode thread that serve the slot's
 * successive jobs. */
struct pl_slot {
    struct pl_worker * w;
    int                index;
    struct pl_job *    job;           /* [mu] NULL when free (holds a reference)            */
    pthread_cond_t     cv;            /* slot threads wait for a job here                    */
    pthread_t          dec_thread, enc_thread;
    bool               dec_started, enc_started;
    /* worker-private (only the worker thread touches these) */
    struct infvsr_session * session;
    bool               session_failed;
    bool               finished;       /* infvsr_session_finish called */
    bool               busy;           /* last push answered BUSY: output is pending */
    int64_t            ready_frames;   /* frames of computed chunks not yet pulled */
    int                hook_chunks;    /* chunks computed (chunk hook calls) */
    struct pl_job *    session_job;
    /* [mu] placement */
    bool               waiting_mem;    /* the session did not fit next to the worker's other
                                          sessions: retried when one of them closes        */
    size_t             session_bytes;  /* backend bytes of the open session               */
};

struct pl_worker {
    struct pl_engine * e;
    int                id;
    pthread_t          thread;
    bool               started;
    pthread_cond_t     cv;             /* the worker waits for work here */
    struct pl_slot *   slots;          /* max_active_per_worker */
    int                rr;             /* next slot to look at (round robin) */
    char               device[32];     /* backend name it opens ("devsim:1")            */
    char               name[40];       /* label in metrics and /healthz                  */
    int64_t            fault_at_op;    /* devsim fault injection (tests); 0 = none       */
    /* [mu] health */
    bool               loaded, healthy;
    char               backend[32];
    char               error[256];
    int                active;
    /* [mu] memory (bytes; mem_total 0 = host memory, no budget) and counters */
    size_t             mem_total, mem_free, idle_free; /* idle_free: free after the model load */
    size_t             model_bytes, session_bytes;     /* resident weights; open sessions     */
    uint64_t           chunks, frames, faults;
    double             busy_s;                         /* time spent computing             */
    /* worker thread only */
    struct infvsr_backend * be;
    struct infvsr_model *   model;
};

struct pl_engine {
    struct pl_engine_opts o;
    char *             model;
    char *             spool_dir;
    atomic_int         refs;
    bool               is_null;
    pthread_mutex_t    mu;
    struct pl_worker * workers;
    int                n_workers;

    /* [mu] */
    bool               stopping;
    enum pl_engine_state state;
    char               model_name[64];
    char               model_files[4][320]; /* per file summary of the first worker's load (infvsr_model_file_summary) */
    char               error[256];
    struct pl_job *    fifo_head, * fifo_tail; /* QUEUED jobs with input, in arrival order */
    int                non_terminal;           /* admitted jobs not yet terminal           */
    int                active;                 /* jobs holding a slot (not yet released)    */
    int                awaiting;               /* non-terminal jobs without an input byte
                                                  (CREATED): not counted by admission      */
    struct pl_metrics  m;

    /* notifier thread: delivers the events of pl_post (never under mu) */
    pthread_t          notifier;
    bool               notifier_started;
    pthread_cond_t     notify_cv;
    struct pl_job *    ev_head, * ev_tail;     /* [mu] */
    unsigned           engine_ev;              /* [mu] pending PL_EV_ENGINE */
    bool               notifier_quit;          /* [mu] */
    struct pl_job *    zombies;                /* [mu] jobs to free outside the lock */
    struct pl_job *    live;                   /* [mu] every non-terminal job (no reference) */
    /* [mu] session bytes by LR size, as measured by the workers' opens (pl_worker.c) */
    struct { int w, h, scale; size_t bytes; } sizing[16];
    int                n_sizing;
    int                place_rr;               /* [mu] where the next placement scan starts */
};

/* ---- shared helpers (pl_engine.c) ---- */
double pl_now(void);
void   pl_hist_observe(struct pl_histogram * h, double seconds);
/* Queues events for the notifier thread. [mu held] */
void   pl_post_locked(struct pl_engine * e, struct pl_job * j, unsigned events);
/* Makes a job terminal (no-op if it already is): state, error, finished_at, metrics,
 * stop flag, wake-ups, PL_EV_FINISHED. [mu held] */
void   pl_job_finish_locked(struct pl_job * j, enum pl_job_state st, enum pl_error_code code, const char * msg);
/* True for the errno values of a full spool: ENOSPC, EDQUOT, EFBIG (file size limit). */
bool   pl_errno_no_space(int err_no);
/* Fails the job with PL_ERROR_INSUFFICIENT_STORAGE: "<what>: the spool disk is full (...)".
 * [mu held] */
void   pl_job_fail_no_space_locked(struct pl_job * j, const char * what, int err_no);
/* Recomputes the engine state from its workers: READY while any worker is ready, FAILED
 * once every worker has loaded and none is healthy (then queued jobs fail with `code`),
 * else LOADING. [mu held] */
void   pl_engine_update_state_locked(struct pl_engine * e, enum pl_error_code code);
/* Promotes FIFO jobs into free slots. [mu held] */
void   pl_promote_locked(struct pl_engine * e);
/* A slot party is done; releases the slot when all three are. Call WITHOUT mu; takes it. */
void   pl_slot_party_done(struct pl_job * j, bool * flag);
void   pl_engine_unref(struct pl_engine * e);
/* Drops a reference while holding mu: a last reference hands the job to the notifier
 * thread, which frees it outside the lock. */
void   pl_job_unref_locked(struct pl_job * j);
void   pl_job_free(struct pl_job * j);  /* pl_job.c */
/* How pl_job_alloc treats <id>.in: create it (an existing file is an error: the id belongs
 * to another job), open it (created if missing), or leave it alone (a terminal job). */
enum pl_input_open { PL_INPUT_NEW, PL_INPUT_REOPEN, PL_INPUT_NONE };
/* A new job struct in state CREATED with its paths (and <id>.in, mode 0600, as `in` says).
 * Takes an engine reference; counts nothing. (pl_job.c) */
enum infvsr_status pl_job_alloc(struct pl_engine * e, const struct pl_job_spec * spec, enum pl_input_open in,
                                struct pl_job ** out, struct infvsr_err * err);
/* Links a non-terminal job into e->live (a racing engine stop cancels it). [mu held] */
void   pl_job_link_live_locked(struct pl_job * j);
/* First input bytes: CREATED -> QUEUED, into the FIFO, promotion. [mu held] */
void   pl_job_enqueue_locked(struct pl_job * j);

/* ---- previews (pl_preview.c) ---- */
#define PL_PV_BIT(slot, sr) (1u << ((slot) * 2 + ((sr) ? 1 : 0)))
/* Called by the decode thread (LR, sr=false) for each frame it publishes and by the encode
 * thread (SR) for each frame it writes, WITHOUT mu: writes the PNG when `index` is frame 0
 * or the pinned frame. The pixels stay the caller's. */
void pl_preview_capture(struct pl_job * j, int64_t index, bool sr, const uint8_t * rgb, int w, int h);
/* Path of a preview file (malloc'd). */
char * pl_preview_path(const struct pl_job * j, int slot, bool sr);

/* ---- rings (pl_ring.c) ---- */
int        pl_ring_init(struct pl_ring * r, int cap, size_t frame_bytes);
void       pl_ring_free(struct pl_ring * r);
/* Producer side: index of the free slot after the last full one (only when count < cap)
 * [mu held], then its buffer, allocated on first use (NULL when out of memory). */
static inline int pl_ring_tail_locked(const struct pl_ring * r) { return (r->head + r->count) % r->cap; }
uint8_t *  pl_ring_buf(struct pl_ring * r, int i);
static inline void pl_ring_pop_locked(struct pl_ring * r) {
    r->head = (r->head + 1) % r->cap;
    r->count--;
}

/* ---- threads ---- */
void * pl_decode_main(void * slot);  /* pl_decode.c */
void * pl_encode_main(void * slot);  /* pl_encode.c */
void * pl_worker_main(void * worker);/* pl_worker.c */
/* Nearest-neighbour x scale of an RGB24 frame (the null engine). */
void   pl_upscale_nearest(const uint8_t * src, int w, int h, int scale, uint8_t * dst);
