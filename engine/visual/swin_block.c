/* One Swin block (MODEL-SPEC.md section 6.2) on x [res*res, C] held in scratch.x:
 *
 *   s = LN1(x); roll by -shift; partition into ws x ws windows        (one gather_rows)
 *   q, k, v = three row-slices of the qkv Linear                       (backend linear)
 *   window attention with the rel-pos bias and shift mask             (swin_attention.c)
 *   proj; reverse partition; roll by +shift                           (one gather_rows)
 *   x += .;  x += fc2(GELU_erf(fc1(LN2(x))))
 *
 * Partition + roll and their inverse are permutations of token rows, so each is one
 * gather_rows with an index table built at load (visual_tables.c). When one window covers the
 * whole map and nothing is shifted (the last stage) the window order is the spatial order and
 * both gathers are skipped. */
#include "visual_impl.h"

void infvsr__view(struct infvsr_tensor * t, const struct infvsr_tensor * buf, enum infvsr_dtype dtype,
                  int64_t offset, int ndim, const int64_t * shape) {
    infvsr_tensor_setup(t, buf->name, dtype, ndim, shape);
    t->data      = (char *)buf->data + (size_t)offset * infvsr_dtype_size(dtype);
    t->mem       = buf->mem;
    t->owns_data = false;
}

void infvsr__view_act(const struct infvsr_visual * v, struct infvsr_tensor * t, const struct infvsr_tensor * buf,
                      int64_t offset, int ndim, const int64_t * shape) {
    infvsr__view(t, buf, v->act, offset, ndim, shape);
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

/* fc1 + exact GELU: fused on f32; in bf16 two ops, because the reference rounds fc1's output
 * to bf16 before the GELU. */
static enum infvsr_status mlp_hidden(struct infvsr_visual * v, const struct infvsr__swin_block * blk,
                                     const struct infvsr_tensor * s, struct infvsr_tensor * h, struct infvsr_err * err) {
    if (v->act == INFVSR_TYPE_F32) return infvsr_op_linear(v->be, s, &blk->fc1_w, &blk->fc1_b, INFVSR_UNARY_GELU_ERF, h, err);
    INFVSR_TRY(infvsr_op_linear(v->be, s, &blk->fc1_w, &blk->fc1_b, INFVSR_UNARY_COUNT, h, err));
    return infvsr_op_unary(v->be, INFVSR_UNARY_GELU_ERF, h, h, err);
}

enum infvsr_status infvsr__swin_block_forward(struct infvsr_visual * v, const struct infvsr__swin_stage * st,
                                              const struct infvsr__swin_block * blk, struct infvsr_err * err) {
    struct infvsr__visual_scratch * sc = &v->scratch;
    const int64_t c = st->c, n_tok = (int64_t)st->res * st->res;
    const int     k = blk->shift ? 1 : 0;
    int64_t xs[2] = { n_tok, c }, hs[2] = { n_tok, c * v->cfg.mlp_ratio };
    struct infvsr_tensor x, s, p, q, k_, vv, o, h;
    infvsr__view_act(v, &x, &sc->x, 0, 2, xs);   /* x: [HW, C] residual stream */
    infvsr__view_act(v, &s, &sc->s, 0, 2, xs);
    infvsr__view_act(v, &p, &sc->p, 0, 2, xs);
    infvsr__view_act(v, &q, &sc->q, 0, 2, xs);
    infvsr__view_act(v, &k_, &sc->k, 0, 2, xs);
    infvsr__view_act(v, &vv, &sc->v, 0, 2, xs);
    infvsr__view_act(v, &o, &sc->o, 0, 2, xs);
    infvsr__view_act(v, &h, &sc->h, 0, 2, hs);   /* h: [HW, mlp C] */
    /* win: the tokens in window order ([nW * N, C]); back: where proj writes before the reverse */
    struct infvsr_tensor * win = st->identity_windows ? &s : &p, * back = st->identity_windows ? &s : &p;
    INFVSR_TRY(infvsr_op_layer_norm(v->be, &x, &blk->norm1_w, &blk->norm1_b, 1e-5f, &s, err));
    if (!st->identity_windows) INFVSR_TRY(infvsr_op_gather_rows(v->be, &s, &st->tab.to_win[k], &p, err));
    INFVSR_TRY(infvsr_op_linear(v->be, win, &blk->q_w, &blk->q_b, INFVSR_UNARY_COUNT, &q, err));
    INFVSR_TRY(infvsr_op_linear(v->be, win, &blk->k_w, &blk->k_b, INFVSR_UNARY_COUNT, &k_, err));
    INFVSR_TRY(infvsr_op_linear(v->be, win, &blk->v_w, &blk->v_b, INFVSR_UNARY_COUNT, &vv, err));
    INFVSR_TRY(infvsr__swin_window_attention(v, st, blk, err));                       /* o: [nW * N, C] */
    INFVSR_TRY(infvsr_op_linear(v->be, &o, &blk->proj_w, &blk->proj_b, INFVSR_UNARY_COUNT, back, err));
    if (!st->identity_windows) INFVSR_TRY(infvsr_op_gather_rows(v->be, &p, &st->tab.from_win[k], &s, err));
    INFVSR_TRY(infvsr_op_add(v->be, &x, &s, &x, err));                                /* s: [HW, C] */
    INFVSR_TRY(infvsr_op_layer_norm(v->be, &x, &blk->norm2_w, &blk->norm2_b, 1e-5f, &s, err));
    INFVSR_TRY(mlp_hidden(v, blk, &s, &h, err));
    INFVSR_TRY(infvsr_op_linear(v->be, &h, &blk->fc2_w, &blk->fc2_b, INFVSR_UNARY_COUNT, &p, err));
    return infvsr_op_add(v->be, &x, &p, &x, err);
}
