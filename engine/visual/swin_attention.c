/* Window attention of one Swin block (MODEL-SPEC.md section 6.2, steps 2-5 of "Window
 * attention"): per window, softmax(q k^T / sqrt(d) + B_rel + M_shift) v, heads concatenated.
 *
 * The relative-position bias B_rel [heads, N, N] is made once per block from the block's
 * table by two ops: gather_rows of table rows by the stage's rel_idx ([N*N, heads]), then a
 * strided copy that transposes it to [heads, N, N] (converting the dtype). The shift mask of a
 * window is one of the stage's three mask-class masks (visual_tables.c); windows inside one
 * region label have none.
 *
 * Two ways to compute it, chosen by the activation dtype:
 *  - f32 (cpu, devsim f32, cuda f32): the fused attention op per window, bias f32; the windows
 *    of each mask class get bias + mask (copy SET then ACCUMULATE), made once per class.
 *  - bf16: as the reference does (explicit bf16 ops, each rounding to bf16): q *= d^-0.5;
 *    A = q k^T; A += B_rel; A += M; softmax; A v, batched over all windows and heads, with
 *    strided copies between the token-major [nW, N, heads, d] and head-major [nW, heads, N, d]
 *    layouts. The fused kernel would keep the scores in f32, which is more accurate but not
 *    what the model was run with. */
#include <math.h>

#include "visual_impl.h"

/* scratch.bias = B_rel of this block, [heads, N*N] in v->bias_dtype. */
static enum infvsr_status build_rel_bias(struct infvsr_visual * v, const struct infvsr__swin_stage * st,
                                         const struct infvsr__swin_block * blk, struct infvsr_err * err) {
    struct infvsr__visual_scratch * sc = &v->scratch;
    const int64_t n = (int64_t)st->ws * st->ws, nn = n * n, heads = st->heads;
    int64_t gs[2] = { nn, heads }, bs[2] = { heads, nn };
    struct infvsr_tensor g, bias;
    infvsr__view(&g, &sc->relg, blk->rel_table.dtype, 0, 2, gs);
    infvsr__view(&bias, &sc->bias, v->bias_dtype, 0, 2, bs);
    INFVSR_TRY(infvsr_op_gather_rows(v->be, &blk->rel_table, &st->tab.rel_idx, &g, err));
    struct infvsr_copy_args a = infvsr_copy_args_init(INFVSR_COPY_SET, 2);
    a.extent[0] = heads, a.extent[1] = nn;
    a.x = &g, a.x_stride[0] = 1, a.x_stride[1] = heads;
    a.y = &bias, a.y_stride[0] = nn, a.y_stride[1] = 1;
    return infvsr_op_copy(v->be, &a, err);
}

/* y[first + i * step][h] += mask of class c for i < count and every head h (the mask is
 * broadcast over windows and heads); y is laid out [windows, heads, N*N]. */
static enum infvsr_status add_mask(struct infvsr_visual * v, const struct infvsr__swin_stage * st, int c,
                                   int64_t first, int64_t count, int64_t step, struct infvsr_tensor * y,
                                   struct infvsr_err * err) {
    const int64_t nn = (int64_t)st->ws * st->ws * st->ws * st->ws, heads = st->heads;
    struct infvsr_copy_args a = infvsr_copy_args_init(INFVSR_COPY_ACCUMULATE, 3);
    a.extent[0] = count, a.extent[1] = heads, a.extent[2] = nn;
    a.x = &st->tab.masks, a.x_offset = c * nn, a.x_stride[2] = 1;  /* strides 0: broadcast */
    a.y = y, a.y_offset = first * heads * nn, a.y_stride[0] = step * heads * nn, a.y_stride[1] = nn, a.y_stride[2] = 1;
    return infvsr_op_copy(v->be, &a, err);
}

static enum infvsr_status attend_window(struct infvsr_visual * v, const struct infvsr__swin_stage * st, int64_t w,
                                        const struct infvsr_tensor * bias, struct infvsr_err * err) {
    struct infvsr__visual_scratch * sc = &v->scratch;
    const int64_t n = (int64_t)st->ws * st->ws, c = st->c;
    int64_t tshape[2] = { n, c };
    struct infvsr_tensor q, k, vv, o;
    infvsr__view_act(v, &q, &sc->q, w * n * c, 2, tshape);   /* q, k, v, o: [N, C] of window w */
    infvsr__view_act(v, &k, &sc->k, w * n * c, 2, tshape);
    infvsr__view_act(v, &vv, &sc->v, w * n * c, 2, tshape);
    infvsr__view_act(v, &o, &sc->o, w * n * c, 2, tshape);
    struct infvsr_attn_args a = { .q = &q, .k0 = &k, .v0 = &vv, .bias = bias, .n_heads = st->heads,
                                  .scale = 1.0f / sqrtf((float)(c / st->heads)), .out = &o };
    return infvsr_op_attention(v->be, &a, err);
}

static enum infvsr_status fused_attention(struct infvsr_visual * v, const struct infvsr__swin_stage * st,
                                          const struct infvsr__swin_block * blk, struct infvsr_err * err) {
    struct infvsr__visual_scratch * sc = &v->scratch;
    const int64_t r = st->res / st->ws, n_win = r * r, n = (int64_t)st->ws * st->ws;
    int64_t bshape[3] = { st->heads, n, n };
    struct infvsr_tensor bias, bias_w;
    infvsr__view(&bias, &sc->bias, v->bias_dtype, 0, 3, bshape);
    infvsr__view(&bias_w, &sc->bias_w, v->bias_dtype, 0, 3, bshape);
    /* Windows without a mask: all of them unshifted, all but the last row and column shifted. */
    for (int64_t w = 0; w < n_win; w++) {
        if (blk->shift && (w / r == r - 1 || w % r == r - 1)) continue;
        INFVSR_TRY(attend_window(v, st, w, &bias, err));
    }
    for (int cl = 0; blk->shift && cl < INFVSR__SWIN_MASK_CLASSES; cl++) {
        const struct infvsr__mask_class * mc = &st->tab.mask_class[cl];
        INFVSR_TRY(infvsr_op_copy_range(v->be, &bias, 0, &bias_w, 0, infvsr_tensor_numel(&bias), err));
        INFVSR_TRY(add_mask(v, st, cl, 0, 1, 1, &bias_w, err));
        for (int64_t i = 0; i < mc->count; i++) INFVSR_TRY(attend_window(v, st, mc->first + i * mc->step, &bias_w, err));
    }
    return INFVSR_OK;
}

/* [nW, N, heads, d] (token-major, as the linears write) <-> [nW, heads, N, d] (head-major). */
static enum infvsr_status permute_heads(struct infvsr_visual * v, const struct infvsr__swin_stage * st,
                                        const struct infvsr_tensor * x, struct infvsr_tensor * y, bool to_heads,
                                        struct infvsr_err * err) {
    const int64_t r = st->res / st->ws, n = (int64_t)st->ws * st->ws, h = st->heads, d = st->c / st->heads;
    const int64_t tok[4] = { n * h * d, d, h * d, 1 }, head[4] = { h * n * d, n * d, d, 1 }; /* over (w, h, i, j) */
    struct infvsr_copy_args a = infvsr_copy_args_init(INFVSR_COPY_SET, 4);
    a.extent[0] = r * r, a.extent[1] = h, a.extent[2] = n, a.extent[3] = d;
    a.x = x, a.y = y;
    for (int i = 0; i < 4; i++) {
        a.x_stride[i] = to_heads ? tok[i] : head[i];
        a.y_stride[i] = to_heads ? head[i] : tok[i];
    }
    return infvsr_op_copy(v->be, &a, err);
}

static enum infvsr_status explicit_attention(struct infvsr_visual * v, const struct infvsr__swin_stage * st,
                                             const struct infvsr__swin_block * blk, struct infvsr_err * err) {
    struct infvsr__visual_scratch * sc = &v->scratch;
    const int64_t r = st->res / st->ws, n_win = r * r, n = (int64_t)st->ws * st->ws, h = st->heads;
    const int64_t d = st->c / h, n_tok = n_win * n, bh = n_win * h;
    int64_t ts[2] = { n_tok, st->c }, hs[3] = { bh, n, d }, ss[3] = { bh, n, n };
    struct infvsr_tensor q, k, vv, o, qh, kh, vh, oh, scores, bias;
    infvsr__view_act(v, &q, &sc->q, 0, 2, ts);
    infvsr__view_act(v, &k, &sc->k, 0, 2, ts);
    infvsr__view_act(v, &vv, &sc->v, 0, 2, ts);
    infvsr__view_act(v, &o, &sc->o, 0, 2, ts);
    infvsr__view_act(v, &qh, &sc->s, 0, 3, hs);
    infvsr__view_act(v, &kh, &sc->p, 0, 3, hs);
    infvsr__view_act(v, &vh, &sc->o, 0, 3, hs);
    infvsr__view_act(v, &oh, &sc->q, 0, 3, hs);
    infvsr__view_act(v, &scores, &sc->scores, 0, 3, ss);
    infvsr__view(&bias, &sc->bias, v->bias_dtype, 0, 1, (int64_t[]){ h * n * n });
    /* d^-0.5 rounded once from double to f32, the Python float as torch's CUDA kernels use it
     * (torch 1.13's CPU kernel rounds it to bf16 first: tests/visual/test_visual.c) */
    const float scale = (float)(1.0 / sqrt((double)d));
    INFVSR_TRY(infvsr_op_affine_clamp(v->be, &q, scale, 0.0f, -INFINITY, INFINITY, &q, err));
    INFVSR_TRY(permute_heads(v, st, &q, &qh, true, err));
    INFVSR_TRY(permute_heads(v, st, &k, &kh, true, err));
    INFVSR_TRY(permute_heads(v, st, &vv, &vh, true, err));
    INFVSR_TRY(infvsr_op_matmul(v->be, &qh, &kh, true, 1.0f, &scores, err));
    struct infvsr_copy_args a = infvsr_copy_args_init(INFVSR_COPY_ACCUMULATE, 2);   /* A += B_rel */
    a.extent[0] = n_win, a.extent[1] = h * n * n;
    a.x = &bias, a.x_stride[1] = 1;
    a.y = &scores, a.y_stride[0] = h * n * n, a.y_stride[1] = 1;
    INFVSR_TRY(infvsr_op_copy(v->be, &a, err));
    for (int cl = 0; blk->shift && cl < INFVSR__SWIN_MASK_CLASSES; cl++) {               /* A += M */
        const struct infvsr__mask_class * mc = &st->tab.mask_class[cl];
        INFVSR_TRY(add_mask(v, st, cl, mc->first, mc->count, mc->step, &scores, err));
    }
    INFVSR_TRY(infvsr_op_softmax(v->be, &scores, &scores, err));
    INFVSR_TRY(infvsr_op_matmul(v->be, &scores, &vh, false, 1.0f, &oh, err));
    return permute_heads(v, st, &oh, &o, false, err);
}

enum infvsr_status infvsr__swin_window_attention(struct infvsr_visual * v, const struct infvsr__swin_stage * st,
                                                 const struct infvsr__swin_block * blk, struct infvsr_err * err) {
    INFVSR_TRY(build_rel_bias(v, st, blk, err));
    return v->explicit_attn ? explicit_attention(v, st, blk, err) : fused_attention(v, st, blk, err);
}
