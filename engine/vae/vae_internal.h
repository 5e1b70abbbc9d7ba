/* Internals of the Wan VAE shared by the engine/vae sources (not a public header).
 *
 * Model: weight views arranged as layers, imported once through engine/core/weight_set
 * (vae_model.c registers every checkpoint tensor, commits, then makes the derived views:
 * q/k/v row blocks, the mean rows of the top-level conv1, Conv2d weights as 5-D views).
 * Every cached convolution owns a named slot (assigned when the model is built, never by
 * call order); a session holds one cache region per slot per tile.
 *
 * Execution: one encoder or decoder call runs over a `struct vae_run`, which uses the
 * session's scratch arena, one backend tensor of the activation dtype. Activations are
 * `struct vae_act` = element offset into the arena + [C,T,H,W] dims. Each layer takes its
 * input as the topmost arena allocation and leaves its output at the same offset (moving it
 * down with a memmove-style copy op when needed), so peak scratch = the largest single
 * layer. Nothing here reads or writes tensor data on the host: every data movement is an op
 * (infvsr_op_copy and friends); views are pointer arithmetic only. With `dry` set nothing
 * is computed or copied; only the arena offsets advance. The session runs the dry mode once
 * at open to size the arena for the biggest call. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/weight_set.h"
#include "infvsr/status.h"
#include "infvsr/tensor.h"
#include "infvsr/vae.h"
#include "ops.h"

#define VAE_MAX_LAYERS  32
#define VAE_MAX_SLOTS   96
#define VAE_SLOT_NAME   80
#define VAE_CACHE_T     2
/* Every arena and cache region starts on a 64-byte boundary (16 f32 / 32 bf16 elements). */
#define VAE_ALIGN_BYTES 64

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
    enum infvsr_dtype        act;             /* activation dtype (backend caps)          */
    struct infvsr_weight_set ws;              /* the imported checkpoint tensors          */
    struct infvsr_tensor *   raw;             /* checkpoint tensors as registered in ws   */
    size_t                   n_raw, cap_raw;
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
    size_t off;                 /* element offset into the arena                         */
    int    c, t, h, w;
};

static inline size_t vae_act_numel(const struct vae_act * a) {
    return (size_t)a->c * (size_t)a->t * (size_t)a->h * (size_t)a->w;
}

struct vae_run {
    struct infvsr_backend * be;
    struct infvsr_tensor *  arena;     /* the session's scratch tensor (NULL in dry mode)    */
    enum infvsr_dtype       act;       /* its dtype                                          */
    size_t                  cap;       /* elements                                           */
    size_t                  top;       /* elements in use                                    */
    size_t                  peak;
    bool                    dry;
    struct infvsr_tensor *  caches;    /* the session's cache tensor (NULL in dry mode)      */
    const int64_t *         cache_off; /* per slot: this tile's cache region (elements)      */
    uint8_t *               started;   /* per slot: the stream has passed this conv once     */
    struct infvsr_err *     err;
    infvsr_abort_cb         should_abort;   /* the session's cancel hook (NULL: never)  */
    void *                  abort_user;
};

/* Elements per alignment unit of dtype `dt`. */
static inline size_t vae_align_elems(enum infvsr_dtype dt) { return VAE_ALIGN_BYTES / infvsr_dtype_size(dt); }
static inline size_t vae_round_up(size_t n, size_t align) { return (n + align - 1) / align * align; }

/* Polls the cancel hook (never in dry runs): INFVSR_ERR_CANCELLED naming `where`. */
static inline enum infvsr_status vae_check_abort(const struct vae_run * r, const char * where) {
    if (r->dry || !r->should_abort || !r->should_abort(r->abort_user)) return INFVSR_OK;
    return infvsr_err_set(r->err, INFVSR_ERR_CANCELLED, "vae: cancelled before %s", where);
}

/* Arena (vae_run.c). vae_alloc reports NOMEM (planner bug) when the arena is too small. */
enum infvsr_status vae_alloc(struct vae_run * r, struct vae_act * a, int c, int t, int h, int w);
/* Moves `out` to offset `dst` (the layer's input offset) and frees everything above it. */
enum infvsr_status vae_settle(struct vae_run * r, size_t dst, struct vae_act * out);
/* A [C, T, H, W] tensor view of an activation (data NULL in dry mode). */
void vae_view(const struct vae_run * r, const struct vae_act * a, struct infvsr_tensor * t);
/* A view of `ndim`/`shape` at element offset `off` of the arena. */
void vae_view_at(const struct vae_run * r, size_t off, int ndim, const int64_t * shape, struct infvsr_tensor * t);
/* Copies frames [s0, s0 + n) of every channel of a [c, *, plane] block at element offset
 * src_off of `src` (src_t frames per channel) to frame d0 of the block at dst_off of `dst`
 * (dst_t frames per channel): one strided copy op. */
enum infvsr_status vae_copy_frames(struct vae_run * r, struct infvsr_tensor * dst, int64_t dst_off, int64_t dst_t,
                                   int64_t d0, const struct infvsr_tensor * src, int64_t src_off, int64_t src_t,
                                   int64_t s0, int64_t n, int64_t c, int64_t plane);

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
 * (vae_blocks.c). One decoder call: x [z, 1, h, w] -> [3, 1 or 4, 8h, 8w]. */
enum infvsr_status vae_coder_forward(struct vae_run * r, const struct vae_coder * c, struct vae_act * x);

/* Model construction (vae_model.c): reads and checks every weight, imports them into the
 * model's backend (one weight_set commit) and makes the layers' views. */
enum infvsr_status vae_build(struct infvsr_vae * m, const struct infvsr_weights * w, const char * prefix,
                             struct infvsr_err * err);

/* Tiling (vae_tiling.c). */
struct vae_span { int start, end; };
/* Section 5.8 grid along one axis of n latents; returns the number of spans (<= max). */
int vae_tile_spans(int n, int tile, int stride, struct vae_span * spans, int max);
/* Blend ramp value at index i of a span of length len (factor-scaled units): 1 inside,
 * (k+1)/bw on a border that is not at the image edge. */
float vae_ramp(int i, int len, bool at_start, bool at_end, int bw);
