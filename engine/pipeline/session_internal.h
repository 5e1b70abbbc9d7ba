/* Private layout of the model bundle and the session (engine/pipeline/session*.c). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "infvsr/chunker.h"
#include "infvsr/model_config.h"
#include "infvsr/session.h"
#include "infvsr/tensor.h"

struct infvsr_dit;
struct infvsr_dit_context;
struct infvsr_dit_session;
struct infvsr_vae;
struct infvsr_vae_session;
struct infvsr_visual;
struct infvsr_weights;

struct infvsr_model {
    struct infvsr_model_config cfg;
    struct infvsr_backend *    be;
    struct infvsr_weights *    w_dit, * w_vae, * w_ram, * w_dape;
    struct infvsr_dit *        dit;
    struct infvsr_vae *        vae;
    struct infvsr_visual *     visual;
};

/* LR frame buffers handed to the chunker and recycled when their chunk is done, so that
 * a steady-state stream does not call malloc per frame. */
#define INFVSR_SESSION_POOL_MAX (INFVSR_CHUNKER_MAX_PENDING + INFVSR_CHUNK_MAX_FRAMES)

struct infvsr_session {
    struct infvsr_model *       m;
    struct infvsr_session_opts  o;
    int                         h, w;         /* LR size                                */
    int                         sh, sw;       /* SR size (scale * LR)                   */
    int                         ph, pw;       /* padded SR size (multiples of 16)       */
    size_t                      lr_bytes;     /* h * w * 3                              */
    size_t                      sr_bytes;     /* sh * sw * 3                            */

    struct infvsr_chunker *     chunker;
    struct infvsr_vae_session * vae;
    struct infvsr_dit_session * dit;
    struct infvsr_dit_context * ctx;          /* current visual reference (NULL before) */

    /* Buffers sized at open. */
    float *   lr;        /* [3, 12, h, w]   model-range LR chunk                        */
    float *   up;        /* [3, 12, sh, sw] upscaled                                    */
    float *   frames;    /* [3, 12, ph, pw] padded chunk; reused for the decoded frames */
    float *   latents;   /* [16, 3, ph/8, pw/8]                                         */
    float *   pred;      /* same                                                        */
    float *   restored;  /* same                                                        */
    float *   image;     /* [3, img, img] visual reference image                        */
    float *   context;   /* [n_tokens, out_dim] visual context                          */
    uint8_t * out;       /* [12][sh][sw][3] quantised frames of the last chunk          */
    int64_t   out_pts[INFVSR_CHUNK_MAX_FRAMES];
    int       out_n, out_pos;
    size_t    buffer_bytes;

    uint8_t * pool[INFVSR_SESSION_POOL_MAX];
    int       pool_n;

    struct infvsr_chunk held;     /* popped from the chunker, waiting for output room */
    bool      held_valid;
    bool      finished, drained;
    bool      scene_open;         /* a scene has started (DiT/VAE state valid)       */

    enum infvsr_status failed;    /* sticky error */
    char               failed_msg[INFVSR_ERR_MSG_MAX];

    struct infvsr_session_stats stats;
    infvsr_session_chunk_hook   hook;
    void *                      hook_user;
    infvsr_abort_cb             should_abort; /* polled between stages (NULL: never) */
    void *                      abort_user;
};

/* ---- resize_pad.c: the pixel-level steps of a chunk (MODEL-SPEC §2.1, §2.4, §2.6) ---- */

/* Frame t of a chunk of L frames: RGB u8 [h, w, 3] -> planar model range into dst
 * [3, L, h, w] f32, as (u / 255) * 2 - 1 with three f32 operations in this order. */
void infvsr__lr_to_model(const uint8_t * rgb, int h, int w, int t, int L, float * dst);

/* src [3, L, sh, sw] -> dst [3, Lp, ph, pw] with edge replication on the right, at the
 * bottom and at the end in time (Lp >= L, ph >= sh, pw >= sw). */
void infvsr__pad_replicate(const float * src, int L, int sh, int sw, float * dst, int Lp, int ph, int pw);

/* Frame t of decoded [3, Lp, ph, pw] (cropped to sh x sw) -> RGB u8 [sh, sw, 3] as
 * trunc(clamp((x + 1) * 127.5, 0, 255)) in f32. */
void infvsr__quantise_frame(const float * dec, int Lp, int ph, int pw, int t, int sh, int sw, uint8_t * rgb);

/* Padding amounts of MODEL-SPEC §2.4: (-n) mod 16 spatially; (first - L) mod 4 in time. */
static inline int infvsr__pad16(int n) { return (16 - n % 16) % 16; }
static inline int infvsr__padded_len(int L, bool first_of_scene) {
    int m = ((first_of_scene ? 1 : 0) - L) % 4;
    return L + (m < 0 ? m + 4 : m);
}
