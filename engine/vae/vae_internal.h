/* Internals of the Wan VAE shared by the engine/vae sources (not a public header).
 *
 * Model: weight views arranged as layers. Every cached convolution owns a named slot
 * (assigned when the model is built, never by call order); a session allocates one cache
 * buffer per slot per tile.
 *
 * Execution: one encoder or decoder call runs over a `struct vae_run`, which owns a bump
 * arena of f32 scratch. Activations are `struct vae_act` = offset into the arena + [C,T,H,W]
 * dims. Each layer takes its input as the topmost arena allocation and leaves its output at
 * the same offset (moving it down when needed), so peak scratch = the largest single layer.
 * With `dry` set nothing is computed or copied; only the arena offsets advance. The session
 * runs the dry mode once at open to size the arena for the biggest call. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "infvsr/status.h"
#include "infvsr/tensor.h"
#include "infvsr/vae.h"
#include "ops.h"

#define VAE_MAX_LAYERS  32
#define VAE_MAX_SLOTS   96
#define VAE_SLOT_NAME   80
#define VAE_CACHE_T     2

/* ---- model ---- */

struct vae_conv {
    struct infvsr_tensor w;        /* 5-D view [cout, cin, kt, kh, kw]              */
    struct infvsr_tensor b;        /* [cout]                                          */
    int                  cin, cout, kt, kh, kw;
    int                  slot;     /* cache slot, or -1 for uncached convs            */
};

enum vae_slot_kind {
    VAE_SLOT_CONV,       /* 3x3x3 causal conv: last 2 input frames, zeros at stream start */
    VAE_SLOT_DOWN_TIME,  /* downsample3d time conv: last frame; first call passes through  */
    VAE_SLOT_UP_TIME,    /* upsample3d time conv: "Rep" first call, then like VAE_SLOT_CONV */
};

struct vae_slot {
    char               name[VAE_SLOT_NAME];
    enum vae_slot_kind kind;
    int                channels;
    int                shift;    /* spatial size = tile pixel size >> shift               */
    int                frames;   /* frames held                                            */
};

enum vae_layer_kind {
    VAE_LAYER_RESIDUAL,
    VAE_LAYER_ATTENTION,
    VAE_LAYER_DOWN2D,
    VAE_LAYER_DOWN3D,
    VAE_LAYER_UP2D,
    VAE_LAYER_UP3D,
};

struct vae_residual {
    struct infvsr_tensor gamma1, gamma2;   /* [cin], [cout] views                      */
    struct vae_conv      conv1, conv2, shortcut;
    bool                 has_shortcut;
};

struct vae_attention {
    int                  dim;
    struct infvsr_tensor gamma;                      /* [dim]                            */
    struct infvsr_tensor wq, wk, wv, bq, bk, bv;     /* row blocks of to_qkv: [dim, dim] */
    struct infvsr_tensor wproj, bproj;               /* [dim, dim], [dim]                */
};

struct vae_resample {
    struct vae_conv spatial;   /* Conv2d as a [cout, cin, 1, 3, 3] view              */
    struct vae_conv time;      /* time_conv (3d modes only)                           */
};

struct vae_layer {
    enum vae_layer_kind kind;
    char                name[VAE_SLOT_NAME];
    union {
        struct vae_residual  res;
        struct vae_attention attn;
        struct vae_resample  rs;
    } u;
};

struct vae_coder {
    struct vae_conv      conv1;
    struct vae_layer     layers[VAE_MAX_LAYERS];
    int                  n_layers;
    struct infvsr_tensor head_gamma;
    struct vae_conv      head;
    int                  first_slot, n_slots;   /* this coder's slots in the model's table */
};

struct infvsr_vae {
    struct infvsr_backend *  be;
    struct infvsr_vae_config cfg;
    struct vae_coder         enc, dec;
    struct vae_conv          quant_mean;      /* top-level conv1, rows 0..15 (the mean)   */
    struct vae_conv          post_quant;      /* top-level conv2                          */
    struct vae_slot          slots[VAE_MAX_SLOTS];
    int                      n_slots;
    float                    offset[INFVSR_VAE_Z_DIM];    /* bf16(mean)                   */
    float                    inv_std[INFVSR_VAE_Z_DIM];   /* bf16(1/std)                  */
};

/* ---- execution ---- */

struct vae_act {
    size_t off;                 /* float offset into the arena                           */
    int    c, t, h, w;
};

static inline size_t vae_act_numel(const struct vae_act * a) {
    return (size_t)a->c * (size_t)a->t * (size_t)a->h * (size_t)a->w;
}

struct vae_run {
    struct infvsr_backend * be;
    float *                 base;     /* arena storage (NULL in dry mode)                    */
    size_t                  cap;      /* floats                                               */
    size_t                  top;      /* floats in use                                        */
    size_t                  peak;
    bool                    dry;
    float **                cache;    /* per slot: this tile's cache buffer                  */
    uint8_t *               started;  /* per slot: the stream has passed this conv once      */
    struct infvsr_err *     err;
    infvsr_abort_cb         should_abort;   /* the session's cancel hook (NULL: never)  */
    void *                  abort_user;
};

/* Polls the cancel hook (never in dry runs): INFVSR_ERR_CANCELLED naming `where`. */
static inline enum infvsr_status vae_check_abort(const struct vae_run * r, const char * where) {
    if (r->dry || !r->should_abort || !r->should_abort(r->abort_user)) return INFVSR_OK;
    return infvsr_err_set(r->err, INFVSR_ERR_CANCELLED, "vae: cancelled before %s", where);
}

/* Arena (vae_run.c). vae_alloc reports NOMEM (planner bug) when the arena is too small. */
enum infvsr_status vae_alloc(struct vae_run * r, struct vae_act * a, int c, int t, int h, int w);
static inline float * vae_ptr(const struct vae_run * r, const struct vae_act * a) { return r->base + a->off; }
/* Moves `out` to offset `dst` (the layer's input offset) and frees everything above it. */
void vae_settle(struct vae_run * r, size_t dst, struct vae_act * out);
/* A [C, T, H, W] f32 tensor view of an activation (data NULL in dry mode). */
void vae_view(const struct vae_run * r, const struct vae_act * a, struct infvsr_tensor * t);

/* Primitives (vae_run.c). */
enum infvsr_status vae_conv_plain(struct vae_run * r, const struct vae_conv * cv, const struct vae_act * x,
                                  int stride_t, int stride_s, int pad_top, int pad_bottom, int pad_left,
                                  int pad_right, struct vae_act * y);
/* Causal conv over the stream: prepends the slot's cached frames, updates the cache. */
enum infvsr_status vae_conv_cached(struct vae_run * r, const struct vae_conv * cv, const struct vae_act * x,
                                   struct vae_act * y);
/* y = SiLU(channel_rms_norm(x) * gamma); y may equal x. */
enum infvsr_status vae_norm_silu(struct vae_run * r, const struct infvsr_tensor * gamma, const struct vae_act * x,
                                 const struct vae_act * y);

/* Layers (vae_blocks.c): input x is the topmost allocation; output replaces it. */
enum infvsr_status vae_layer_forward(struct vae_run * r, const struct vae_layer * l, struct vae_act * x);

/* One encoder call (1 frame at stream start, else 4): x [3, n, H, W] -> [2*z, 1, H/8, W/8]
 * (vae_coder.c). One decoder call: x [z, 1, h, w] -> [3, 1 or 4, 8h, 8w]. */
enum infvsr_status vae_coder_forward(struct vae_run * r, const struct vae_coder * c, struct vae_act * x);

/* Model construction (vae_model.c). */
enum infvsr_status vae_build(struct infvsr_vae * m, const struct infvsr_weights * w, const char * prefix,
                             struct infvsr_err * err);

/* Tiling (vae_tiling.c). */
struct vae_span { int start, end; };
/* Section 5.8 grid along one axis of n latents; returns the number of spans (<= max). */
int vae_tile_spans(int n, int tile, int stride, struct vae_span * spans, int max);
/* Blend ramp value at index i of a span of length len (factor-scaled units): 1 inside,
 * (k+1)/bw on a border that is not at the image edge. */
float vae_ramp(int i, int len, bool at_start, bool at_end, int bw);
