/* Swin forward around the blocks (MODEL-SPEC.md section 6.2): patch embedding, the four stages
 * with patch merging, the final LayerNorm, the 1 + N output tokens and image_proj.
 *
 *   image [3, img, img] -> patches [T0, 3 p p] -> Linear + LN -> x [T0, C0]
 *   stage s: blocks on x [res_s^2, C_s]; PatchMerging -> [res_s^2 / 4, 2 C_s]
 *   LN -> tokens[1 + i] (i row-major), tokens[0] = mean over the N normalised tokens
 *   context = image_proj(tokens)                                   [1 + N, out_dim]
 *
 * Precision (activation dtype = the backend's caps.act_dtype, MODEL-SPEC.md section 6):
 *  - f32 backends: every activation f32; the qkv weight is the bf16-rounded DAPE merge, other
 *    weights as stored (f32). Attention is the fused op per window with an f32 bias.
 *  - bf16 backends: activations, weights (converted once at import), the rel-pos bias and the
 *    masks bf16, and every op rounds its output to bf16 as the reference does: the attention
 *    is explicit (q * d^-0.5, q k^T, + bias, + mask, softmax, . v, swin_attention.c) and fc1
 *    and the GELU are two ops. What stays f32: the statistics inside LayerNorm and softmax and
 *    GEMM accumulation (inside the kernels, as in torch), and the reference preparation
 *    (reference_prep.c: u8 -> unit range, resize, ImageNet normalisation in f32 as the
 *    reference computes it; the image is rounded to bf16 by the patch gather here). Index
 *    tables are int32, the ImageNet std f32 on every backend. One rounding per op is also where
 *    torch 1.13's CPU bf16 kernels differ: its LayerNorm rounds inside, its mean is
 *    bf16(bf16(sum) / N) (measured in tests/visual/test_visual.c, docs/VERIFY.md). */
#include "visual_impl.h"

/* patches[t][(ch * p + kh) * p + kw] = image[ch][ty * p + kh][tx * p + kw], t = ty * res + tx:
 * the conv weight [C0, 3, p, p] flattened, so that the stride-p conv is one Linear. One strided
 * copy over (ty, tx, ch, kh, kw), converting the image to the activation dtype. */
static enum infvsr_status patch_embed(struct infvsr_visual * v, const struct infvsr_tensor * image,
                                      struct infvsr_err * err) {
    struct infvsr__visual_scratch * sc = &v->scratch;
    const int64_t p = v->cfg.patch_size, img = v->cfg.img_size, res = v->res0, t0 = res * res;
    int64_t ps[2] = { t0, 3 * p * p }, xs[2] = { t0, v->cfg.embed_dim };
    struct infvsr_tensor patches, x;
    infvsr__view_act(v, &patches, &sc->h, 0, 2, ps);   /* patches: [T0, 3 p p] */
    infvsr__view_act(v, &x, &sc->x, 0, 2, xs);         /* x: [T0, C0] */
    const int64_t xst[5] = { p * img, p, img * img, img, 1 }, yst[5] = { res * 3 * p * p, 3 * p * p, p * p, p, 1 };
    const int64_t ext[5] = { res, res, 3, p, p };
    struct infvsr_copy_args a = infvsr_copy_args_init(INFVSR_COPY_SET, 5);
    a.x = image, a.y = &patches;
    for (int d = 0; d < 5; d++) a.extent[d] = ext[d], a.x_stride[d] = xst[d], a.y_stride[d] = yst[d];
    INFVSR_TRY(infvsr_op_copy(v->be, &a, err));
    INFVSR_TRY(infvsr_op_linear(v->be, &patches, &v->pe_w, &v->pe_b, INFVSR_UNARY_COUNT, &x, err));
    return infvsr_op_layer_norm(v->be, &x, &v->pe_norm_w, &v->pe_norm_b, 1e-5f, &x, err);
}

/* out[i][j] = concat(x[2i][2j], x[2i+1][2j], x[2i][2j+1], x[2i+1][2j+1]) (x0, x1, x2, x3 of the
 * spec): one gather of C-wide rows by the stage's merge_idx, then LN and the reduction. */
static enum infvsr_status patch_merging(struct infvsr_visual * v, const struct infvsr__swin_stage * st,
                                        struct infvsr_err * err) {
    struct infvsr__visual_scratch * sc = &v->scratch;
    const int64_t n_in = (int64_t)st->res * st->res, n_out = n_in / 4;
    int64_t xs[2] = { n_in, st->c }, ms[2] = { n_out, 4 * st->c }, ys[2] = { n_out, 2 * st->c };
    struct infvsr_tensor x, rows, m, y;
    infvsr__view_act(v, &x, &sc->x, 0, 2, xs);
    infvsr__view_act(v, &rows, &sc->s, 0, 2, xs);  /* rows: [HW, C] in merge order */
    infvsr__view_act(v, &m, &sc->s, 0, 2, ms);     /* the same memory as m: [HW/4, 4C] */
    infvsr__view_act(v, &y, &sc->x, 0, 2, ys);     /* y: [HW/4, 2C], the next stage's x */
    INFVSR_TRY(infvsr_op_gather_rows(v->be, &x, &st->tab.merge_idx, &rows, err));
    INFVSR_TRY(infvsr_op_layer_norm(v->be, &m, &st->down_norm_w, &st->down_norm_b, 1e-5f, &m, err));
    return infvsr_op_linear(v->be, &m, &st->down_reduction_w, NULL, INFVSR_UNARY_COUNT, &y, err);
}

/* tokens[1..N] = LN(x); tokens[0] = their mean (adaptive average pool over the N tokens), as
 * (1/N) * ones[1, N] . tokens[1..N] on the backend: an f32 sum of N terms in the GEMM (the
 * reference's mean also sums in f32). */
static enum infvsr_status final_tokens(struct infvsr_visual * v, struct infvsr_err * err) {
    struct infvsr__visual_scratch * sc = &v->scratch;
    const int64_t n = v->n_tokens - 1, c = v->c_last;
    int64_t xs[2] = { n, c }, ms[2] = { 1, c };
    struct infvsr_tensor x, y, mean;
    infvsr__view_act(v, &x, &sc->x, 0, 2, xs);
    infvsr__view_act(v, &y, &sc->tokens, c, 2, xs);   /* rows 1..N of tokens */
    infvsr__view_act(v, &mean, &sc->tokens, 0, 2, ms);
    INFVSR_TRY(infvsr_op_layer_norm(v->be, &x, &v->norm_w, &v->norm_b, 1e-5f, &y, err));
    return infvsr_op_matmul(v->be, &v->ones, &y, false, 1.0f / (float)n, &mean, err);
}

/* t: a tensor of this shape in the backend's memory; outputs F32 or the activation dtype,
 * inputs any float dtype the copy op converts (F32, BF16, F16). */
static enum infvsr_status check_io(const struct infvsr_visual * v, const struct infvsr_tensor * t, const char * what,
                                   bool input, int ndim, const int64_t * shape, struct infvsr_err * err) {
    bool ok = t && t->data && t->mem == v->be->mem && t->ndim == ndim &&
              (t->dtype == INFVSR_TYPE_F32 || t->dtype == v->act ||
               (input && (t->dtype == INFVSR_TYPE_BF16 || t->dtype == INFVSR_TYPE_F16)));
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (ok) return INFVSR_OK;
    char want[96], got[96];
    return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "visual encode: %s must be a %s tensor %s in the memory of "
                          "backend %s, got %s %s%s", what, input ? "float" : "F32 or activation-dtype",
                          infvsr_shape_str(ndim, shape, want, sizeof want), v->caps.name,
                          t ? infvsr_dtype_name(t->dtype) : "NULL",
                          t ? infvsr_shape_str(t->ndim, t->shape, got, sizeof got) : "",
                          t && t->mem != v->be->mem ? " in other memory" : "");
}

enum infvsr_status infvsr_visual_encode(struct infvsr_visual * v, const struct infvsr_tensor * image,
                                        struct infvsr_tensor * tokens, struct infvsr_tensor * context,
                                        struct infvsr_err * err) {
    const int64_t is[3] = { 3, v->cfg.img_size, v->cfg.img_size };
    const int64_t ts[2] = { v->n_tokens, v->c_last }, cs[2] = { v->n_tokens, v->cfg.out_dim };
    enum infvsr_status r;
    if ((r = check_io(v, image, "image", true, 3, is, err)) || (r = check_io(v, context, "context", false, 2, cs, err)) ||
        (tokens && (r = check_io(v, tokens, "tokens", false, 2, ts, err)))) {
        return r;
    }
    INFVSR_TRY(patch_embed(v, image, err));
    for (int s = 0; s < INFVSR__SWIN_STAGES; s++) {
        const struct infvsr__swin_stage * st = &v->stages[s];
        for (int b = 0; b < st->depth; b++) {
            if ((r = infvsr__swin_block_forward(v, st, &st->blocks[b], err))) {
                infvsr_err_prefix(err, "visual encode: %s", st->blocks[b].prefix);
                return r;
            }
        }
        if (st->has_downsample && (r = patch_merging(v, st, err))) return r;
    }
    INFVSR_TRY(final_tokens(v, err));
    struct infvsr_tensor tok, ctx;
    infvsr__view_act(v, &tok, &v->scratch.tokens, 0, 2, ts);
    if (tokens) INFVSR_TRY(infvsr_op_convert(v->be, &tok, tokens, err));
    if (context->dtype == v->act) return infvsr_op_linear(v->be, &tok, &v->proj_w, &v->proj_b, INFVSR_UNARY_COUNT, context, err);
    /* an f32 context on a bf16 backend: the bf16 result of the reference, widened */
    infvsr__view_act(v, &ctx, &v->scratch.h, 0, 2, cs);
    INFVSR_TRY(infvsr_op_linear(v->be, &tok, &v->proj_w, &v->proj_b, INFVSR_UNARY_COUNT, &ctx, err));
    return infvsr_op_convert(v->be, &ctx, context, err);
}
