/* Private structures of the DiT, shared by the files of engine/dit only. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/weight_set.h"
#include "infvsr/dit.h"
#include "ops.h"

/* One block's weights (MODEL-SPEC §4.9 names), imported into the backend. */
struct dit_attn_weights {
    struct infvsr_tensor q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b, norm_q, norm_k;
};

struct dit_block_weights {
    struct infvsr_tensor    modulation;  /* [1, 6, dim] */
    struct dit_attn_weights self_attn, cross_attn;
    struct infvsr_tensor    norm3_w, norm3_b;
    struct infvsr_tensor    ffn0_w, ffn0_b, ffn2_w, ffn2_b;
};

struct infvsr_dit {
    struct infvsr_dit_config  cfg;
    int                       head_dim;
    struct infvsr_backend *   be;
    enum infvsr_dtype         act;         /* activation dtype (backend caps)          */
    const struct infvsr_weights * weights;
    struct infvsr_weight_set  ws;          /* every weight below, imported at load     */

    struct infvsr_tensor      patch_w;     /* reshaped to [dim, in_dim*4] after import */
    struct infvsr_tensor      patch_b;
    struct infvsr_tensor      text0_w, text0_b, text2_w, text2_b;
    struct infvsr_tensor      time0_w, time0_b, time2_w, time2_b;
    struct infvsr_tensor      tproj_w, tproj_b;
    struct infvsr_tensor      head_modulation, head_w, head_b;
    struct dit_block_weights * blocks;

    /* Hoisted constants (backend memory, activation dtype): mod[i] = blocks.i.modulation
     * + t_mod, head_mod = head.modulation + e (MODEL-SPEC §4.7). */
    struct infvsr_tensor      mod;         /* [num_layers, 6, dim] */
    struct infvsr_tensor      head_mod;    /* [2, dim]: shift, scale */
};

struct infvsr_dit_context {
    struct infvsr_dit *       dit;
    int64_t                   n_ctx;
    struct infvsr_tensor      in;          /* [n_ctx, text_dim] the tokens, act dtype  */
    struct infvsr_tensor      h, emb;      /* [n_ctx, dim] embedding scratch, c        */
    struct infvsr_tensor      ck, cv;      /* [num_layers, n_ctx, dim] each            */
};

/* The FFN runs over blocks of at most this many tokens, so its hidden activation (the
 * largest one, ffn_dim = 5.8 x dim wide) stays small at large chunks: 2048 x 8960 f32 is
 * 73 MB instead of 387 MB for a 720p chunk of 10 800 tokens. */
#define DIT_FFN_ROWS 2048

/* Activation arena views of one step (shapes set per chunk, storage fixed at open). */
struct dit_scratch {
    struct infvsr_tensor x;      /* [N, dim] residual stream           */
    struct infvsr_tensor a;      /* [N, dim] normed + modulated input  */
    struct infvsr_tensor q;      /* [N, dim]                           */
    struct infvsr_tensor o;      /* [N, dim] attention output          */
    struct infvsr_tensor d;      /* [N, dim] branch output             */
    struct infvsr_tensor h;      /* [min(N, DIT_FFN_ROWS), ffn_dim]    */
    struct infvsr_tensor patch;  /* [N, in_dim*4] patches / head out   */
};

/* 3-D RoPE state (dit_rope.c). The table `freqs` [N, head_dim/2, 2] f64 holds per token
 * the (cos, sin) of its time pairs, then height pairs, then width pairs. It is expanded on
 * the backend from small per-axis tables `axes` (one row of (cos, sin) pairs per time,
 * height or width position) with broadcasting copies: the height/width columns whenever
 * the patch grid changes, the time columns every chunk (the only per-chunk upload: T rows
 * of 2 * pairs_t doubles). */
#define DIT_ROPE_BATCH 256

struct dit_rope {
    int                  pairs_t, pairs_h, pairs_w;
    int64_t              row;          /* doubles per row of `axes`                   */
    struct infvsr_tensor freqs;        /* [max_tokens, head_dim/2, 2] f64             */
    struct infvsr_tensor axes;         /* [max_tokens + 2, row] f64                   */
    int64_t              gh, gw;       /* grid whose h/w columns are in freqs (0: none) */
    double *             host;         /* staging for DIT_ROPE_BATCH axis rows        */
};

struct infvsr_dit_session {
    struct infvsr_dit *  dit;
    int64_t              max_tokens;

    /* KV cache: slot l holds layer l's previous-chunk post-RoPE K/V ([max_tokens, dim]
     * storage). The spare pair receives the new chunk's K/V; once layer l's attention
     * has consumed its cache, the spare and slot l swap storage, so the cache is replaced
     * without a copy and only one extra K/V pair is ever allocated. */
    struct infvsr_tensor * cache_k;    /* [num_layers] */
    struct infvsr_tensor * cache_v;
    struct infvsr_tensor   spare_k, spare_v;
    int64_t              n_cached;     /* tokens in every slot (0 = empty)           */
    int64_t              cached_gh, cached_gw; /* patch grid of the cached chunk      */
    int64_t              position;     /* next chunk's scene-relative start frame    */

    struct infvsr_tensor arena;        /* one backend allocation for all activations */
    struct dit_scratch   s;
    struct dit_rope      rope;
    size_t               nbytes;
    infvsr_abort_cb      should_abort;  /* polled before each block (NULL: never)   */
    void *               abort_user;
};

/* dit_rope.c */
void               dit_rope_split(int head_dim, int * pairs_t, int * pairs_h, int * pairs_w);
enum infvsr_status dit_rope_open(struct infvsr_dit_session * s, struct infvsr_err * err);
void               dit_rope_close(struct infvsr_dit_session * s);
/* Fills freqs[0 .. T*gh*gw) for a chunk of T frames starting at start_frame. */
enum infvsr_status dit_rope_prepare(struct infvsr_dit_session * s, int64_t start_frame, int64_t T, int64_t gh,
                                    int64_t gw, struct infvsr_err * err);

/* dit_block.c: one transformer block on s->s.x (N tokens), in place. */
enum infvsr_status dit_block_forward(struct infvsr_dit_session * s, const struct infvsr_dit_context * c,
                                     int layer, int64_t n_tokens, struct infvsr_err * err);

/* Helpers shared by the DiT files. */
void dit_view(struct infvsr_tensor * t, const struct infvsr_tensor * base, size_t byte_offset,
              const char * name, enum infvsr_dtype dtype, int ndim, const int64_t * shape);
/* Row r (of length dim) of a [rows, dim]-shaped tensor as a [dim] view. */
void dit_row(struct infvsr_tensor * t, const struct infvsr_tensor * base, int64_t r, int64_t dim);
/* First n rows of a tensor as an [n, cols] view (same dtype). */
void dit_rows(struct infvsr_tensor * t, const struct infvsr_tensor * base, int64_t n, int64_t cols);
/* A backend tensor allocation with its metadata. */
enum infvsr_status dit_alloc(struct infvsr_backend * be, struct infvsr_tensor * t, const char * name,
                             enum infvsr_dtype dt, int ndim, const int64_t * shape, struct infvsr_err * err);
