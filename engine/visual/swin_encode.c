/* Swin forward around the blocks (MODEL-SPEC.md section 6.2): patch embedding, the four stages
 * with patch merging, the final LayerNorm, the 1 + N output tokens and image_proj.
 *
 *   image [3, img, img] -> patches [T0, 3 p p] -> Linear + LN -> x [T0, C0]
 *   stage s: blocks on x [res_s^2, C_s]; PatchMerging -> [res_s^2 / 4, 2 C_s]
 *   LN -> tokens[1 + i] (i row-major), tokens[0] = mean over the N normalised tokens
 *   context = image_proj(tokens)                                   [1 + N, out_dim] */
#include <string.h>

#include "visual_impl.h"

/* patches[t][(ch * p + kh) * p + kw] = image[ch][ty * p + kh][tx * p + kw]: the conv weight
 * [C0, 3, p, p] flattened, so that the stride-p conv is one Linear. */
static void gather_patches(float * patches, const float * image, int img, int p) {
    const int res = img / p;
    for (int ty = 0; ty < res; ty++) {
        for (int tx = 0; tx < res; tx++) {
            float * dst = patches + ((int64_t)ty * res + tx) * 3 * p * p;
            for (int ch = 0; ch < 3; ch++) {
                for (int kh = 0; kh < p; kh++) {
                    const float * src = image + ((int64_t)ch * img + ty * p + kh) * img + tx * p;
                    memcpy(dst + (ch * p + kh) * p, src, (size_t)p * sizeof *dst);
                }
            }
        }
    }
}

static enum infvsr_status patch_embed(struct infvsr_visual * v, const struct infvsr_tensor * image,
                                      struct infvsr_err * err) {
    struct infvsr__visual_scratch * sc = &v->scratch;
    const int     p = v->cfg.patch_size;
    const int64_t t0 = (int64_t)v->res0 * v->res0;
    int64_t ps[2] = { t0, 3 * p * p }, xs[2] = { t0, v->cfg.embed_dim };
    struct infvsr_tensor patches, x;
    infvsr__view_f32(&patches, &sc->h, 0, 2, ps);   /* patches: [T0, 3 p p] */
    infvsr__view_f32(&x, &sc->x, 0, 2, xs);         /* x: [T0, C0] */
    gather_patches(patches.data, image->data, v->cfg.img_size, p);
    enum infvsr_status r = infvsr_op_linear(v->be, &patches, &v->pe_w, &v->pe_b, INFVSR_UNARY_COUNT, &x, err);
    if (r == INFVSR_OK) r = infvsr_op_layer_norm(v->be, &x, &v->pe_norm_w, &v->pe_norm_b, 1e-5f, &x, err);
    return r;
}

/* out[i][j] = concat(x[2i][2j], x[2i+1][2j], x[2i][2j+1], x[2i+1][2j+1]) (x0, x1, x2, x3 of the spec). */
static void gather_merge(float * out, const float * x, int res, int64_t c) {
    const int half = res / 2;
    for (int i = 0; i < half; i++) {
        for (int j = 0; j < half; j++) {
            float *       dst = out + ((int64_t)i * half + j) * 4 * c;
            const int64_t src[4] = { (2 * i) * res + 2 * j, (2 * i + 1) * res + 2 * j,
                                     (2 * i) * res + 2 * j + 1, (2 * i + 1) * res + 2 * j + 1 };
            for (int q = 0; q < 4; q++) memcpy(dst + q * c, x + src[q] * c, (size_t)c * sizeof *dst);
        }
    }
}

static enum infvsr_status patch_merging(struct infvsr_visual * v, const struct infvsr__swin_stage * st,
                                        struct infvsr_err * err) {
    struct infvsr__visual_scratch * sc = &v->scratch;
    const int64_t n_out = (int64_t)(st->res / 2) * (st->res / 2);
    int64_t ms[2] = { n_out, 4 * st->c }, ys[2] = { n_out, 2 * st->c };
    struct infvsr_tensor m, y;
    infvsr__view_f32(&m, &sc->s, 0, 2, ms);   /* m: [HW/4, 4C] */
    infvsr__view_f32(&y, &sc->x, 0, 2, ys);   /* y: [HW/4, 2C], the next stage's x */
    gather_merge(m.data, sc->x.data, st->res, st->c);
    enum infvsr_status r = infvsr_op_layer_norm(v->be, &m, &st->down_norm_w, &st->down_norm_b, 1e-5f, &m, err);
    if (r == INFVSR_OK) r = infvsr_op_linear(v->be, &m, &st->down_reduction_w, NULL, INFVSR_UNARY_COUNT, &y, err);
    return r;
}

/* tokens[1..N] = LN(x); tokens[0] = their mean (adaptive average pool over the N tokens). */
static enum infvsr_status final_tokens(struct infvsr_visual * v, struct infvsr_err * err) {
    struct infvsr__visual_scratch * sc = &v->scratch;
    const int64_t n = v->n_tokens - 1, c = v->c_last;
    int64_t xs[2] = { n, c };
    struct infvsr_tensor x, y;
    infvsr__view_f32(&x, &sc->x, 0, 2, xs);
    infvsr__view_f32(&y, &sc->tokens, (size_t)c, 2, xs);   /* rows 1..N of tokens */
    enum infvsr_status r = infvsr_op_layer_norm(v->be, &x, &v->norm_w, &v->norm_b, 1e-5f, &y, err);
    if (r != INFVSR_OK) return r;
    float *       mean = sc->tokens.data;
    const float * rows = (const float *)sc->tokens.data + c;
    for (int64_t j = 0; j < c; j++) {
        double acc = 0;
        for (int64_t i = 0; i < n; i++) acc += rows[i * c + j];
        mean[j] = (float)(acc / (double)n);
    }
    return INFVSR_OK;
}

static enum infvsr_status check_io(const struct infvsr_visual * v, const struct infvsr_tensor * t, const char * what,
                                   int ndim, const int64_t * shape, struct infvsr_err * err) {
    bool ok = t && t->data && t->dtype == INFVSR_TYPE_F32 && t->mem == INFVSR_MEM_HOST && t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (ok) return INFVSR_OK;
    char want[96], got[96];
    return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "visual encode: %s must be a host F32 tensor %s, got %s %s",
                          what, infvsr_shape_str(ndim, shape, want, sizeof want),
                          t ? infvsr_dtype_name(t->dtype) : "NULL",
                          t ? infvsr_shape_str(t->ndim, t->shape, got, sizeof got) : "");
}

enum infvsr_status infvsr_visual_encode(struct infvsr_visual * v, const struct infvsr_tensor * image,
                                        struct infvsr_tensor * tokens, struct infvsr_tensor * context,
                                        struct infvsr_err * err) {
    const int64_t is[3] = { 3, v->cfg.img_size, v->cfg.img_size };
    const int64_t ts[2] = { v->n_tokens, v->c_last }, cs[2] = { v->n_tokens, v->cfg.out_dim };
    enum infvsr_status r;
    if ((r = check_io(v, image, "image", 3, is, err)) || (r = check_io(v, context, "context", 2, cs, err)) ||
        (tokens && (r = check_io(v, tokens, "tokens", 2, ts, err)))) {
        return r;
    }
    if ((r = patch_embed(v, image, err))) return r;
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
    if ((r = final_tokens(v, err))) return r;
    struct infvsr_tensor tok;
    infvsr__view_f32(&tok, &v->scratch.tokens, 0, 2, ts);
    if ((r = infvsr_op_linear(v->be, &tok, &v->proj_w, &v->proj_b, INFVSR_UNARY_COUNT, context, err))) return r;
    if (tokens) memcpy(tokens->data, tok.data, infvsr_tensor_nbytes(&tok));
    return INFVSR_OK;
}
