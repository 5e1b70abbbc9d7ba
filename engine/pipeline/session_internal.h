/* Private layout of the model bundle and the session (engine/pipeline/session*.c). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "infvsr/backend.h"
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
    struct infvsr_backend *     be;
    struct infvsr_session_opts  o;
    int                         h, w;         /* LR size                                */
    int                         sh, sw;       /* SR size (scale * LR)                   */
    int                         ph, pw;       /* padded SR size (multiples of 16)       */
    size_t                      lr_bytes;     /* h * w * 3                              */
    size_t                      sr_bytes;     /* sh * sw * 3                            */
    enum infvsr_dtype           act;          /* activation dtype of the backend        */
    enum infvsr_dtype           rdt;          /* dtype of the resize (f32 when accepted) */

    struct infvsr_chunker *     chunker;
    struct infvsr_vae_session * vae;
    struct infvsr_dit_session * dit;
    struct infvsr_dit_context * ctx;          /* visual reference (allocated at open)   */
    bool                        ctx_valid;    /* set by the first reference             */

    /* Backend buffers, allocated at open (F = 12 frames, the largest chunk). */
    struct infvsr_tensor lr_u8;     /* U8 [F, h, w, 3]      the chunk's LR frames (the upload) */
    struct infvsr_tensor lr;        /* rdt [3, F, h, w]     model range                        */
    struct infvsr_tensor up;        /* rdt [3, F, sh, sw]   upscaled (absent when scale == 1)  */
    struct infvsr_tensor frames;    /* act [3, F, ph, pw]   padded chunk; then decoded frames  */
    struct infvsr_tensor latents;   /* act [16, 3, ph/8, pw/8]                                 */
    struct infvsr_tensor pred;      /* same                                                    */
    struct infvsr_tensor restored;  /* same                                                    */
    struct infvsr_tensor image;     /* act [3, img, img]    visual reference image             */
    struct infvsr_tensor context;   /* act [n_tokens, out_dim] visual context                  */
    struct infvsr_tensor out_u8;    /* U8 [F, sh, sw, 3]    quantised frames (the download)    */
    size_t               device_bytes;

    /* Host buffers. */
    uint8_t * out;       /* [F][sh][sw][3] quantised frames of the last chunk            */
    int64_t   out_pts[INFVSR_CHUNK_MAX_FRAMES];
    int       out_n, out_pos;
    size_t    host_bytes;

    uint8_t * pool[INFVSR_SESSION_POOL_MAX];
    int       pool_n;

    struct infvsr_chunk held;     /* popped from the chunker, waiting for output room */
    bool      held_valid;
    bool      finished, drained;
    bool      scene_open;         /* a scene has started (DiT/VAE state valid)       */

    enum infvsr_status failed;    /* sticky error */
    char               failed_msg[INFVSR_ERR_MSG_MAX];

    struct infvsr_session_stats   stats;
    infvsr_session_chunk_hook     hook;
    void *                        hook_user;
    infvsr_abort_cb               should_abort; /* polled between stages (NULL: never) */
    void *                        abort_user;
    /* Host copy of the decoded frames for the hook (infvsr_session_capture_decoded). */
    bool                 capture;
    void *               capture_raw;   /* act-dtype bytes of frames, when act != f32 */
    struct infvsr_tensor capture_f32;   /* host F32 [3, F, ph, pw]                    */
};

/* ---- resize_pad.c: the pixel-level steps of a chunk (MODEL-SPEC §2.1, §2.4, §2.6), each
 * a strided copy on the backend ---- */

/* lr_u8 [L, h, w, 3] (HWC) -> lr [3, L, h, w] as (u / 255) * 2 - 1 in f32 (U8_TO_MODEL). */
enum infvsr_status infvsr__frames_to_model(struct infvsr_session * s, int L, struct infvsr_err * err);

/* src [3, L, sh, sw] -> frames [3, Lp, ph, pw] with edge replication on the right, at the
 * bottom and at the end in time (Lp >= L, ph >= sh, pw >= sw), converted to frames' dtype. */
enum infvsr_status infvsr__pad_replicate(struct infvsr_session * s, const struct infvsr_tensor * src, int L, int Lp,
                                         struct infvsr_err * err);

/* frames [3, Lp, ph, pw] cropped to [:, :L, :sh, :sw] -> out_u8 [L, sh, sw, 3] as
 * trunc(clamp((x + 1) * 127.5, 0, 255)) (MODEL_TO_U8). */
enum infvsr_status infvsr__quantise(struct infvsr_session * s, int L, int Lp, struct infvsr_err * err);

/* Padding amounts of MODEL-SPEC §2.4: (-n) mod 16 spatially; (first - L) mod 4 in time. */
static inline int infvsr__pad16(int n) { return (16 - n % 16) % 16; }
static inline int infvsr__padded_len(int L, bool first_of_scene) {
    int m = ((first_of_scene ? 1 : 0) - L) % 4;
    return L + (m < 0 ? m + 4 : m);
}
