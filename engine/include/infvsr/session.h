/* The engine session (DESIGN.md "Dataflow", MODEL-SPEC.md §2): LR frames in, SR frames out,
 * as a stream, with flat memory whatever the video length.
 *
 *   struct infvsr_model * m;                     once per process (weights are mapped)
 *   infvsr_model_open_dir("models/", be, &m, &err);
 *   struct infvsr_session_opts o = infvsr_session_opts_default(w, h);
 *   struct infvsr_session * s;
 *   infvsr_session_open(m, &o, &s, &err);
 *   for each LR frame (RGB u8, h x w x 3):
 *       while (infvsr_session_push_frame(s, rgb, pts, &err) == INFVSR_ERR_BUSY)
 *           drain: while (infvsr_session_pull_frame(s, sr, &sr_pts, &err) == 1) write(sr);
 *       drain again (optional: frames leave as soon as their chunk is done)
 *   infvsr_session_finish(s, &err);
 *   drain until pull answers 0;  infvsr_session_close(s);
 *
 * Inside, per chunk of the scheduler (chunker.h: scene detection, 9 then 12 frames, forced
 * boundaries at cuts, reference refresh), everything runs on the model's backend: the
 * chunk's u8 LR frames are uploaded (the only frame upload), then the visual context when the
 * chunk starts a sequence or refreshes the reference; u8 -> [-1, 1] (/255, *2, -1 in f32);
 * bicubic x scale with antialias (Keys a = -0.5, the backend's INFVSR_RESIZE_BICUBIC_AA,
 * f32, no clamp); replicate padding right/bottom to multiples of 16 and in time to
 * L' = 1 (mod 4) for the first chunk of a scene, 0 (mod 4) otherwise; streaming VAE
 * encode; one DiT step with the rolling KV cache (start_frame = latent position in the
 * scene, padded latents included); restore; streaming VAE decode (clamped to [-1, 1]);
 * crop and u8 = trunc(clamp((x+1)*127.5, 0, 255)); then the u8 SR frames come back (the
 * only download, one per chunk). Besides the frames only the DiT's RoPE angle rows (about
 * 1 KiB per chunk, float64 from the host) cross (infvsr_session_stats counts it all).
 * A new scene resets the DiT cache and the VAE state.
 * Scene detection and chunking stay on the host.
 *
 * Precision: the backend's activation dtype (infvsr_backend_get_caps). f32 end to end on
 * the CPU backend; in bf16 (CUDA, devsim bf16) the padded frames, latents, prediction and
 * decoded frames are bf16 like the official pipeline's, and the u8 -> model range and the
 * bicubic upscale stay f32 (the reference upscales in f32 and rounds afterwards).
 *
 * Memory: every buffer and cache is allocated at open on the backend (sized from the LR
 * size, one chunk of at most 12 frames), plus one host buffer of output frames; a chunk
 * allocates nothing, a reference refresh neither (LR frame buffers of the chunker are
 * recycled through a pool). Memory after N chunks equals memory after 2N.
 *
 * Compute happens inside push_frame and pull_frame (synchronously, on the caller's thread).
 * Not thread-safe: one thread drives a session. Several sessions may share a model only
 * if they are driven from one thread (the modules keep per-model scratch). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "infvsr/model_config.h"
#include "infvsr/status.h"
#include "infvsr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

struct infvsr_backend;
struct infvsr_weights;
struct infvsr_model;
struct infvsr_session;

/* ---- model bundle: the four official files -------------------------------------------- */

/* File stems looked up in a model directory; each may be "<stem>.<ext>" with the official
 * extension or "<stem>.safetensors". */
#define INFVSR_MODEL_FILE_DIT    "InfVSR.ckpt"
#define INFVSR_MODEL_FILE_VAE    "Wan2.1_VAE.pth"
#define INFVSR_MODEL_FILE_RAM    "ram_swin_large_14m.pth"
#define INFVSR_MODEL_FILE_DAPE   "DAPE.pth"
#define INFVSR_MODEL_FILE_CONFIG "model.json"   /* optional; default: the full config */

/* Opens DIR/{InfVSR.ckpt, Wan2.1_VAE.pth, ram_swin_large_14m.pth, DAPE.pth} (or the
 * .safetensors of the same stem) and DIR/model.json if present, and loads the three
 * modules. Missing files: INFVSR_ERR_IO with a message listing every missing file and where
 * users get them. A module that does not match the config: INFVSR_ERR_MODEL naming the
 * file and the key. `be` must outlive the model. */
enum infvsr_status infvsr_model_open_dir(const char * dir, struct infvsr_backend * be,
                                         struct infvsr_model ** out, struct infvsr_err * err);
/* The same from explicit paths (cfg may be NULL for the full config). */
enum infvsr_status infvsr_model_open_files(const struct infvsr_model_config * cfg, const char * dit_path,
                                           const char * vae_path, const char * ram_path,
                                           const char * dape_path, struct infvsr_backend * be,
                                           struct infvsr_model ** out, struct infvsr_err * err);
void infvsr_model_close(struct infvsr_model * m);

/* Backend bytes the model's three modules hold (weights imported into device memory and
 * constants; 0 for weights that stay views into the mapped files on the CPU). */
size_t infvsr_model_resident_bytes(const struct infvsr_model * m);

const struct infvsr_model_config * infvsr_model_config_of(const struct infvsr_model * m);
/* The safetensors "__metadata__" value of `key` in the DiT file (e.g. "infvsr.random_weights"),
 * or NULL. */
const char * infvsr_model_metadata(const struct infvsr_model * m, const char * key);

/* ---- session ---------------------------------------------------------------------------- */

struct infvsr_session_opts {
    int     width, height;         /* LR frame size (pixels), fixed for the whole stream      */
    int     scale;                 /* integer upscale factor, default 4                        */
    bool    scene_detection;       /* default true                                             */
    double  scene_threshold;       /* ContentDetector threshold, default 27                    */
    double  reference_threshold;   /* reference refresh threshold, default 27                  */
    int64_t max_frames;            /* 0 = all; later frames are accepted and dropped           */
    int     vae_tile_threshold;    /* VAE tiled iff padded SR height > this; default 1024      */
};

struct infvsr_session_opts infvsr_session_opts_default(int width, int height);

/* Checks the options (sizes > 0 and <= 16384, scale 1..8, thresholds > 0, max_frames >= 0)
 * and allocates every buffer. */
enum infvsr_status infvsr_session_open(struct infvsr_model * m, const struct infvsr_session_opts * o,
                                       struct infvsr_session ** out, struct infvsr_err * err);
void infvsr_session_close(struct infvsr_session * s);

/* Output frame size (scale * LR size). */
int infvsr_session_out_width(const struct infvsr_session * s);
int infvsr_session_out_height(const struct infvsr_session * s);

/* Adds one LR frame (RGB u8, height x width x 3, copied). INFVSR_ERR_BUSY when output is
 * pending and a chunk is waiting: pull first, then push the same frame again (bounded
 * memory). INFVSR_ERR_INVALID_ARG after finish. Other errors (model failures) leave the
 * session failed: every later call returns the same error. */
enum infvsr_status infvsr_session_push_frame(struct infvsr_session * s, const uint8_t * rgb, int64_t pts,
                                             struct infvsr_err * err);

/* End of input: every pending frame becomes chunks (processed by the next pulls). */
enum infvsr_status infvsr_session_finish(struct infvsr_session * s, struct infvsr_err * err);

/* Writes the next SR frame (RGB u8, out_height x out_width x 3) and its pts (as pushed).
 * Returns 1 when a frame was written, 0 when none is available yet (push more, or after
 * finish: the stream is complete), or a negative infvsr_status on error. May run the model
 * on the next ready chunk. */
int infvsr_session_pull_frame(struct infvsr_session * s, uint8_t * rgb, int64_t * pts,
                              struct infvsr_err * err);

/* True once finish was called and every frame was pulled. */
bool infvsr_session_done(const struct infvsr_session * s);

enum infvsr_session_stage {
    INFVSR_STAGE_SCENE = 0,  /* scene detection + scheduling (chunker push)  */
    INFVSR_STAGE_VISUAL,     /* reference preparation + Swin + DiT context   */
    INFVSR_STAGE_RESIZE,     /* u8 -> f32, bicubic upscale, padding           */
    INFVSR_STAGE_VAE_ENCODE,
    INFVSR_STAGE_DIT,        /* DiT step + restore                           */
    INFVSR_STAGE_VAE_DECODE,
    INFVSR_STAGE_OUTPUT,     /* crop + quantise to u8                         */
    INFVSR_STAGE_COUNT
};

const char * infvsr_session_stage_name(enum infvsr_session_stage st);

struct infvsr_session_stats {
    int64_t frames_in;       /* accepted by push (max_frames excluded)        */
    int64_t frames_out;      /* handed out by pull                            */
    int64_t chunks;          /* chunks run through the model                  */
    int64_t scenes;          /* chunks with new_scene                         */
    int64_t references;      /* visual contexts computed                      */
    double  seconds[INFVSR_STAGE_COUNT];  /* wall time per stage (the backend synchronised
                                             at each stage's end)                          */
    /* Backend memory held by the session (all allocated at open): */
    size_t  vae_cache_bytes; /* VAE temporal caches + scratch                  */
    size_t  dit_bytes;       /* DiT KV cache + arena + RoPE tables + context   */
    size_t  buffer_bytes;    /* the session's own chunk buffers (frames, latents...) */
    size_t  session_bytes;   /* the sum of the three above                      */
    size_t  model_bytes;     /* infvsr_model_resident_bytes (shared by sessions) */
    size_t  host_bytes;      /* host buffers: output frames, LR frame pool, capture */
    /* Bytes moved between host and backend by this session's chunks (tensor_set/get; the
     * one-time uploads of open, such as VAE blend masks, are not counted). Per chunk that
     * is its u8 LR frames in and its u8 SR frames out, plus the DiT's RoPE angle rows
     * (float64 cos/sin computed on the host: T rows per chunk, and gh + gw rows when the
     * latent grid changes, 2 * max(pairs) doubles each; 1 KiB per chunk at full size), plus
     * the decoded frames when infvsr_session_capture_decoded is on and the backend's memory
     * is not host f32. */
    uint64_t bytes_to_device;
    uint64_t bytes_from_device;
};

void infvsr_session_get_stats(const struct infvsr_session * s, struct infvsr_session_stats * out);

/* Debug/test hook, called once per chunk right after the VAE decode, before crop and
 * quantisation. `decoded` is NULL unless infvsr_session_capture_decoded was called; then it
 * is a host f32 tensor [3, L', H', W'] (padded, clamped to [-1, 1]; downloaded from the
 * backend and converted when the backend's memory is not host f32, so capture costs one
 * download per chunk there); the kept frames are [:, :n, :out_height, :out_width].
 * `first` is the chunk's first input frame index. */
struct infvsr_session_chunk_info {
    int64_t first;
    int     n;            /* frames kept                                    */
    int     n_padded;     /* L'                                             */
    int     n_latents;    /* T                                              */
    int64_t start_frame;  /* DiT latent position of the chunk               */
    bool    new_scene, update;
};
typedef void (*infvsr_session_chunk_hook)(void * user, const struct infvsr_session_chunk_info * info,
                                          const struct infvsr_tensor * decoded);
void infvsr_session_set_chunk_hook(struct infvsr_session * s, infvsr_session_chunk_hook hook, void * user);
/* Makes the hook receive the decoded frames (allocates the host copy once). */
enum infvsr_status infvsr_session_capture_decoded(struct infvsr_session * s, struct infvsr_err * err);

/* Cancellation: every later chunk computation polls `should_abort` (on the thread driving
 * the session) between the stages of a chunk, between DiT blocks and between VAE
 * encoder/decoder calls and layers, so a cancel takes effect within one block or layer.
 * When it returns true the push/pull that runs the chunk returns INFVSR_ERR_CANCELLED and
 * the session is failed (every later call returns the same; the aborted chunk is never
 * resumed): close it, which frees everything. NULL clears the hook. */
void infvsr_session_set_abort(struct infvsr_session * s, infvsr_abort_cb should_abort, void * user);

#ifdef __cplusplus
}
#endif
