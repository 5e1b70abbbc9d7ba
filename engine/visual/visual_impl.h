/* Internals of the visual encoder shared by visual_load.c, lora_merge.c, swin_block.c,
 * swin_encode.c and reference_prep.c. Not part of the public API (see infvsr/visual.h). */
#pragma once

#include <stdbool.h>

#include "infvsr/visual.h"
#include "ops.h"

#define INFVSR__SWIN_STAGES   4
#define INFVSR__SWIN_KEY_MAX  128
#define INFVSR__SWIN_MAX_WINDOW_TOKENS 1024 /* window_size <= 32 */

/* One Swin block. Weight tensors are views into the checkpoint, except qkv_w when merged
 * (owned BF16). q_w/k_w/v_w and q_b/k_b/v_b are row views of qkv_w/qkv_b so that the three
 * projections write straight into separate q, k, v buffers. */
struct infvsr__swin_block {
    char                 prefix[INFVSR__SWIN_KEY_MAX]; /* "visual_encoder.layers.s.blocks.b." */
    int                  shift;                        /* 0 or ws/2                          */
    struct infvsr_tensor norm1_w, norm1_b, rel_table;  /* rel_table: [(2ws-1)^2, heads]      */
    struct infvsr_tensor qkv_w, qkv_b, proj_w, proj_b;
    struct infvsr_tensor q_w, k_w, v_w, q_b, k_b, v_b;
    struct infvsr_tensor norm2_w, norm2_b, fc1_w, fc1_b, fc2_w, fc2_b;
};

struct infvsr__swin_stage {
    int                         c, res, depth, heads, ws; /* ws = min(window, res)          */
    struct infvsr__swin_block * blocks;                   /* [depth]                        */
    bool                        has_downsample;
    struct infvsr_tensor        down_norm_w, down_norm_b, down_reduction_w;
};

/* Scratch reserved at load from the largest stage (stage 0 has the most tokens x channels),
 * reused by every block; views of the right shape are made per use. */
struct infvsr__visual_scratch {
    struct infvsr_tensor x;       /* residual stream, [T0 * C0]                    */
    struct infvsr_tensor s;       /* LN output / gathers, [T0 * C0]                */
    struct infvsr_tensor p;       /* windowed tokens / projections, [T0 * C0]      */
    struct infvsr_tensor q, k, v; /* [T0 * C0] each                                */
    struct infvsr_tensor o;       /* attention output, [T0 * C0]                   */
    struct infvsr_tensor h;       /* MLP hidden, [T0 * mlp * C0] (also the patches)*/
    struct infvsr_tensor bias;    /* rel-pos bias of a block, [heads, N, N]        */
    struct infvsr_tensor bias_w;  /* bias + shift mask of one window, [heads, N, N]*/
    struct infvsr_tensor table;   /* rel-pos table widened to f32                  */
    struct infvsr_tensor tokens;  /* final tokens, [n_tokens, C_last]              */
};

struct infvsr_visual {
    struct infvsr_visual_config   cfg;
    struct infvsr_backend *       be;
    int                           res0, n_tokens, c_last;
    struct infvsr_tensor          pe_w, pe_b, pe_norm_w, pe_norm_b; /* pe_w viewed [C0, 3 p p] */
    struct infvsr__swin_stage     stages[INFVSR__SWIN_STAGES];
    struct infvsr_tensor          norm_w, norm_b, proj_w, proj_b;
    struct infvsr__visual_scratch scratch;
};

/* Merges this block's DAPE pair into qkv_w (owned BF16 afterwards). */
enum infvsr_status infvsr__swin_block_merge_dape(const struct infvsr_weights * dape, int rank,
                                                 struct infvsr__swin_block * blk, struct infvsr_err * err);

/* Sets up q_w/k_w/v_w/q_b/k_b/v_b as row views of qkv_w/qkv_b. */
void infvsr__swin_block_split_qkv(struct infvsr__swin_block * blk, int c);

/* x: [res*res, C] in scratch.x, updated in place. */
enum infvsr_status infvsr__swin_block_forward(struct infvsr_visual * v, const struct infvsr__swin_stage * st,
                                              const struct infvsr__swin_block * blk, struct infvsr_err * err);

/* F32 view of a scratch buffer starting `offset_floats` in, with the given shape. */
void infvsr__view_f32(struct infvsr_tensor * t, const struct infvsr_tensor * buf, size_t offset_floats,
                      int ndim, const int64_t * shape);
