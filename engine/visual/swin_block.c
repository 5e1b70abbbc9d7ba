/* One Swin block (MODEL-SPEC.md section 6.2) on x [res*res, C] held in scratch.x:
 *
 *   s = LN1(x); roll by -shift; partition into ws x ws windows        (gather, here)
 *   q, k, v = three row-slices of the qkv Linear                       (backend linear)
 *   per window: softmax(q k^T / sqrt(d) + B_rel + M_shift) v           (backend attention)
 *   proj; reverse partition; roll by +shift; x += .                    (scatter here, backend add)
 *   x += fc2(GELU_erf(fc1(LN2(x))))
 *
 * The relative-position bias B_rel [heads, N, N] is gathered from the table once per block; the
 * shift mask (0 within a region label, -100 across) is added per window only for windows that
 * straddle a label boundary (interior windows see one label, so their mask is all zeros). Both are
 * recomputed from the formulas, never read from the checkpoint. */
#include <math.h>
#include <string.h>

#include "visual_impl.h"

void infvsr__view_f32(struct infvsr_tensor * t, const struct infvsr_tensor * buf, size_t offset_floats, int ndim,
                      const int64_t * shape) {
    infvsr_tensor_view(t, buf->name, INFVSR_TYPE_F32, ndim, shape, (float *)buf->data + offset_floats);
}

static void row_view(struct infvsr_tensor * dst, const struct infvsr_tensor * src, int64_t row0, int64_t rows) {
    *dst           = *src;
    dst->owns_data = false;
    dst->shape[0]  = rows;
    dst->data      = (char *)src->data + (size_t)(row0 * (src->ndim == 2 ? src->shape[1] : 1)) *
                                            infvsr_dtype_size(src->dtype);
}

void infvsr__swin_block_split_qkv(struct infvsr__swin_block * blk, int c) {
    row_view(&blk->q_w, &blk->qkv_w, 0, c);
    row_view(&blk->k_w, &blk->qkv_w, c, c);
    row_view(&blk->v_w, &blk->qkv_w, 2 * (int64_t)c, c);
    row_view(&blk->q_b, &blk->qkv_b, 0, c);
    row_view(&blk->k_b, &blk->qkv_b, c, c);
    row_view(&blk->v_b, &blk->qkv_b, 2 * (int64_t)c, c);
}

/* Spatial token index of window-order token t: window (wr, wc) row-major, token (i, j) row-major
 * inside it, on the grid rolled by -shift, i.e. rolled[h][w] = s[(h + shift) % res][(w + shift) % res]. */
static int64_t window_to_spatial(int64_t t, int res, int ws, int shift) {
    int64_t n = (int64_t)ws * ws, win = t / n, in = t % n, per_row = res / ws;
    int64_t h = (win / per_row) * ws + in / ws, w = (win % per_row) * ws + in % ws;
    return ((h + shift) % res) * res + (w + shift) % res;
}

/* dst[t] = src[spatial(t)] (to_windows) or dst[spatial(t)] = src[t] (back), rows of c floats. */
static void window_gather(float * dst, const float * src, int res, int ws, int shift, int64_t c, bool to_windows) {
    const int64_t n_tok = (int64_t)res * res;
    for (int64_t t = 0; t < n_tok; t++) {
        int64_t sp = window_to_spatial(t, res, ws, shift);
        if (to_windows) memcpy(dst + t * c, src + sp * c, (size_t)c * sizeof *dst);
        else memcpy(dst + sp * c, src + t * c, (size_t)c * sizeof *dst);
    }
}

/* bias[h][i][j] = table[(dr + ws - 1) * (2 ws - 1) + (dc + ws - 1)][h] for in-window tokens i, j. */
static void build_rel_bias(float * bias, float * table, const struct infvsr_tensor * rel_table, int ws, int heads) {
    const int n = ws * ws, span = 2 * ws - 1;
    infvsr_convert_to_f32(table, rel_table->data, rel_table->dtype, (size_t)span * span * heads);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) {
            int idx = (i / ws - j / ws + ws - 1) * span + (i % ws - j % ws + ws - 1);
            for (int h = 0; h < heads; h++) bias[((int64_t)h * n + i) * n + j] = table[idx * heads + h];
        }
    }
}

/* Region label of a rolled coordinate: bands [0, res-ws), [res-ws, res-shift), [res-shift, res). */
static int band(int x, int res, int ws, int shift) { return x < res - ws ? 0 : (x < res - shift ? 1 : 2); }

/* Labels of the n tokens of window `win`; returns whether they are not all equal. */
static bool window_labels(int * labels, int64_t win, int res, int ws, int shift) {
    int per_row = res / ws, r0 = (int)(win / per_row) * ws, c0 = (int)(win % per_row) * ws;
    bool mixed = false;
    for (int i = 0; i < ws * ws; i++) {
        labels[i] = band(r0 + i / ws, res, ws, shift) * 3 + band(c0 + i % ws, res, ws, shift);
        mixed |= labels[i] != labels[0];
    }
    return mixed;
}

/* bias_w = bias + mask, mask[i][j] = -100 where labels differ. */
static void add_shift_mask(float * bias_w, const float * bias, const int * labels, int n, int heads) {
    for (int h = 0; h < heads; h++) {
        for (int i = 0; i < n; i++) {
            const float * src = bias + ((int64_t)h * n + i) * n;
            float *       dst = bias_w + ((int64_t)h * n + i) * n;
            for (int j = 0; j < n; j++) dst[j] = src[j] + (labels[i] != labels[j] ? -100.0f : 0.0f);
        }
    }
}

static enum infvsr_status window_attention(struct infvsr_visual * v, const struct infvsr__swin_stage * st,
                                           const struct infvsr__swin_block * blk, struct infvsr_err * err) {
    struct infvsr__visual_scratch * sc = &v->scratch;
    const int     ws = st->ws, n = ws * ws, heads = st->heads;
    const int64_t c = st->c, n_win = ((int64_t)st->res / ws) * (st->res / ws);
    const float   scale = 1.0f / sqrtf((float)(c / heads));
    int           labels[INFVSR__SWIN_MAX_WINDOW_TOKENS]; /* n <= this: checked at load */
    build_rel_bias(sc->bias.data, sc->table.data, &blk->rel_table, ws, heads);
    int64_t bshape[3] = { heads, n, n }, tshape[2] = { n, c };
    struct infvsr_tensor bias, bias_w, q, k, vv, o;
    infvsr__view_f32(&bias, &sc->bias, 0, 3, bshape);
    infvsr__view_f32(&bias_w, &sc->bias_w, 0, 3, bshape);
    for (int64_t w = 0; w < n_win; w++) {
        const struct infvsr_tensor * b = &bias;
        if (blk->shift && window_labels(labels, w, st->res, ws, blk->shift)) {
            add_shift_mask(sc->bias_w.data, sc->bias.data, labels, n, heads);
            b = &bias_w;
        }
        infvsr__view_f32(&q, &sc->q, (size_t)(w * n * c), 2, tshape);  /* q, k, v, o: [N, C] of window w */
        infvsr__view_f32(&k, &sc->k, (size_t)(w * n * c), 2, tshape);
        infvsr__view_f32(&vv, &sc->v, (size_t)(w * n * c), 2, tshape);
        infvsr__view_f32(&o, &sc->o, (size_t)(w * n * c), 2, tshape);
        struct infvsr_attn_args a = { .q = &q, .k0 = &k, .v0 = &vv, .bias = b, .n_heads = heads, .scale = scale,
                                      .out = &o };
        enum infvsr_status r = infvsr_op_attention(v->be, &a, err);
        if (r != INFVSR_OK) return r;
    }
    return INFVSR_OK;
}

enum infvsr_status infvsr__swin_block_forward(struct infvsr_visual * v, const struct infvsr__swin_stage * st,
                                              const struct infvsr__swin_block * blk, struct infvsr_err * err) {
    struct infvsr__visual_scratch * sc = &v->scratch;
    const int64_t c = st->c, n_tok = (int64_t)st->res * st->res;
    int64_t xs[2] = { n_tok, c }, hs[2] = { n_tok, c * v->cfg.mlp_ratio };
    struct infvsr_tensor x, s, p, q, k, vv, o, h;
    infvsr__view_f32(&x, &sc->x, 0, 2, xs);   /* x: [HW, C] residual stream */
    infvsr__view_f32(&s, &sc->s, 0, 2, xs);
    infvsr__view_f32(&p, &sc->p, 0, 2, xs);
    infvsr__view_f32(&q, &sc->q, 0, 2, xs);
    infvsr__view_f32(&k, &sc->k, 0, 2, xs);
    infvsr__view_f32(&vv, &sc->v, 0, 2, xs);
    infvsr__view_f32(&o, &sc->o, 0, 2, xs);
    infvsr__view_f32(&h, &sc->h, 0, 2, hs);   /* h: [HW, mlp C] */
    enum infvsr_status r;
    if ((r = infvsr_op_layer_norm(v->be, &x, &blk->norm1_w, &blk->norm1_b, 1e-5f, &s, err))) return r;
    window_gather(p.data, s.data, st->res, st->ws, blk->shift, c, true);        /* p: [nW * N, C] */
    if ((r = infvsr_op_linear(v->be, &p, &blk->q_w, &blk->q_b, INFVSR_UNARY_COUNT, &q, err)) ||
        (r = infvsr_op_linear(v->be, &p, &blk->k_w, &blk->k_b, INFVSR_UNARY_COUNT, &k, err)) ||
        (r = infvsr_op_linear(v->be, &p, &blk->v_w, &blk->v_b, INFVSR_UNARY_COUNT, &vv, err)) ||
        (r = window_attention(v, st, blk, err)) ||                              /* o: [nW * N, C] */
        (r = infvsr_op_linear(v->be, &o, &blk->proj_w, &blk->proj_b, INFVSR_UNARY_COUNT, &p, err))) {
        return r;
    }
    window_gather(s.data, p.data, st->res, st->ws, blk->shift, c, false);       /* s: [HW, C] */
    if ((r = infvsr_op_add(v->be, &x, &s, &x, err)) ||
        (r = infvsr_op_layer_norm(v->be, &x, &blk->norm2_w, &blk->norm2_b, 1e-5f, &s, err)) ||
        (r = infvsr_op_linear(v->be, &s, &blk->fc1_w, &blk->fc1_b, INFVSR_UNARY_GELU_ERF, &h, err)) ||
        (r = infvsr_op_linear(v->be, &h, &blk->fc2_w, &blk->fc2_b, INFVSR_UNARY_COUNT, &p, err)) ||
        (r = infvsr_op_add(v->be, &x, &p, &x, err))) {
        return r;
    }
    return INFVSR_OK;
}
