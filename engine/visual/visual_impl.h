/* Internals of the visual encoder shared by visual_load.c, visual_tables.c, lora_merge.c,
 * swin_block.c, swin_attention.c, swin_encode.c and reference_prep.c. Not part of the public
 * API (see infvsr/visual.h). */
#pragma once

#include <stdbool.h>

#include "core/weight_set.h"
#include "infvsr/visual.h"
#include "ops.h"

#define INFVSR__SWIN_STAGES   4
#define INFVSR__SWIN_KEY_MAX  128
#define INFVSR__SWIN_MAX_WINDOW_TOKENS 1024 /* window_size <= 32 */
#define INFVSR__SWIN_MASK_CLASSES 3         /* windows of a shifted block that straddle a label boundary */

/* One Swin block. Weight tensors are views into the checkpoint (host) or into the model's
 * weight import (device), except qkv_w when merged (BF16, owned on the host). q_w/k_w/v_w and
 * q_b/k_b/v_b are row views of qkv_w/qkv_b, made after the import, so that the three
 * projections write straight into separate q, k, v buffers. */
struct infvsr__swin_block {
    char                 prefix[INFVSR__SWIN_KEY_MAX]; /* "visual_encoder.layers.s.blocks.b." */
    int                  shift;                        /* 0 or ws/2                          */
    struct infvsr_tensor norm1_w, norm1_b, rel_table;  /* rel_table: [(2ws-1)^2, heads]      */
    struct infvsr_tensor qkv_w, qkv_b, proj_w, proj_b;
    struct infvsr_tensor q_w, k_w, v_w, q_b, k_b, v_b;
    struct infvsr_tensor norm2_w, norm2_b, fc1_w, fc1_b, fc2_w, fc2_b;
};

/* The windows of a shifted block whose tokens carry more than one region label: the last
 * window column (but the corner), the last window row (but the corner) and the corner.
 * Every window of one class has the same shift mask; all other windows have none. Window
 * w = first + i * step for i < count (window-row-major order). */
struct infvsr__mask_class {
    int64_t first, count, step;
};

/* Constants of one stage, computed once at load (visual_tables.c) and imported with the
 * weights. I32 index tables for infvsr_op_gather_rows:
 *   to_win[k][t]   = spatial row of window-order token t   (k = 0: no shift, 1: shifted)
 *   from_win[k][s] = window-order row of spatial token s   (the inverse permutation)
 *   rel_idx[i N + j] = row of the relative-position table for tokens i, j of a window
 *   merge_idx[4 o + q] = spatial row of part q of PatchMerging output token o
 * masks: F32 [3, N, N], the shift mask (0 or -100) of each mask class. Tensors a stage does
 * not need stay empty (identity window order, unshifted stage, last stage). */
struct infvsr__swin_tables {
    struct infvsr_tensor      to_win[2], from_win[2], rel_idx, merge_idx, masks;
    struct infvsr__mask_class mask_class[INFVSR__SWIN_MASK_CLASSES];
};

struct infvsr__swin_stage {
    int                         c, res, depth, heads, ws; /* ws = min(window, res)          */
    bool                        identity_windows;         /* one window = the map, no shift */
    struct infvsr__swin_block * blocks;                   /* [depth]                        */
    bool                        has_downsample;
    struct infvsr_tensor        down_norm_w, down_norm_b, down_reduction_w;
    struct infvsr__swin_tables  tab;
};

/* Scratch reserved on the backend at load, sized for the largest stage (stage 0 has the most
 * tokens x channels), reused by every block; typed views of the right shape are made per use
 * (infvsr__view). Activations are in the activation dtype `act`. */
struct infvsr__visual_scratch {
    struct infvsr_tensor x;       /* residual stream, [T0 * C0]                                  */
    struct infvsr_tensor s;       /* LN output / gathers / head-major q, [T0 * C0]                */
    struct infvsr_tensor p;       /* windowed tokens / projections / head-major k, [T0 * C0]     */
    struct infvsr_tensor q, k, v; /* [T0 * C0] each                                              */
    struct infvsr_tensor o;       /* attention output / head-major v, [T0 * C0]                  */
    struct infvsr_tensor h;       /* MLP hidden, [T0 * mlp * C0] (also the patches)              */
    struct infvsr_tensor relg;    /* rel-pos table rows gathered for a block, [N * N, heads]     */
    struct infvsr_tensor bias;    /* rel-pos bias of a block, [heads, N, N]                      */
    struct infvsr_tensor bias_w;  /* bias + shift mask of one mask class (fused attention)       */
    struct infvsr_tensor scores;  /* [nW * heads, N, N] scores (explicit attention)              */
    struct infvsr_tensor tokens;  /* final tokens, [n_tokens, C_last]                            */
    size_t               bytes;   /* all of the above                                            */
};

struct infvsr_visual {
    struct infvsr_visual_config   cfg;
    struct infvsr_backend *       be;
    struct infvsr_backend_caps    caps;
    enum infvsr_dtype             act;            /* activation dtype: caps.act_dtype         */
    enum infvsr_dtype             bias_dtype;     /* F32 (fused attention) or act (explicit)   */
    bool                          explicit_attn;  /* bf16: matmul, add, softmax per op (spec 6.2) */
    int                           res0, n_tokens, c_last;
    struct infvsr_tensor          pe_w, pe_b, pe_norm_w, pe_norm_b; /* pe_w viewed [C0, 3 p p] */
    struct infvsr__swin_stage     stages[INFVSR__SWIN_STAGES];
    struct infvsr_tensor          norm_w, norm_b, proj_w, proj_b;
    struct infvsr_tensor          ones;           /* F32 [1, N]: the token mean as a matmul    */
    struct infvsr_tensor          imagenet_std;   /* F32 [3], kept f32 on every backend        */
    struct infvsr_weight_set      weights;        /* everything above that an op reads         */
    size_t                        const_bytes;    /* bytes of constants computed at load       */
    struct infvsr__visual_scratch scratch;
};

/* ImageNet normalisation constants (reference_prep.c). */
extern const float infvsr__imagenet_mean[3], infvsr__imagenet_std[3];

/* Merges this block's DAPE pair into qkv_w (owned BF16 afterwards). */
enum infvsr_status infvsr__swin_block_merge_dape(const struct infvsr_weights * dape, int rank,
                                                 struct infvsr__swin_block * blk, struct infvsr_err * err);

/* Sets up q_w/k_w/v_w/q_b/k_b/v_b as row views of qkv_w/qkv_b. */
void infvsr__swin_block_split_qkv(struct infvsr__swin_block * blk, int c);

/* Builds the index tables and masks of every stage (owned host tensors, imported later). */
enum infvsr_status infvsr__swin_tables_build(struct infvsr_visual * v, struct infvsr_err * err);
/* Frees what the import left on the host (tables of a host backend); safe on empty tensors. */
void               infvsr__swin_tables_release(struct infvsr_visual * v);

/* x: [res*res, C] in scratch.x, updated in place. */
enum infvsr_status infvsr__swin_block_forward(struct infvsr_visual * v, const struct infvsr__swin_stage * st,
                                              const struct infvsr__swin_block * blk, struct infvsr_err * err);

/* Window attention of one block: q, k, v [nW * N, C] (window order) in scratch.q/k/v ->
 * scratch.o [nW * N, C]. Clobbers scratch.s and scratch.p. */
enum infvsr_status infvsr__swin_window_attention(struct infvsr_visual * v, const struct infvsr__swin_stage * st,
                                                 const struct infvsr__swin_block * blk, struct infvsr_err * err);

/* A view of `dtype` elements of backend buffer `buf`, starting `offset` elements (of
 * `dtype`) in, with the given shape. Pointer arithmetic only: nothing is dereferenced. */
void infvsr__view(struct infvsr_tensor * t, const struct infvsr_tensor * buf, enum infvsr_dtype dtype,
                  int64_t offset, int ndim, const int64_t * shape);
/* The same in the model's activation dtype. */
void infvsr__view_act(const struct infvsr_visual * v, struct infvsr_tensor * t, const struct infvsr_tensor * buf,
                      int64_t offset, int ndim, const int64_t * shape);
