/* One DiT transformer block (MODEL-SPEC §4.3) on the session's residual stream x [N, dim]:
 * modulated self-attention over (cached previous chunk, this chunk), cross-attention to the
 * per-reference context K/V, modulated GELU-tanh FFN. All through the backend op table. */
#include <math.h>

#include "dit_internal.h"

static void swap_storage(struct infvsr_tensor * a, struct infvsr_tensor * b) {
    void * t = a->data;
    a->data = b->data;
    b->data = t;
}

static enum infvsr_status self_attention(struct infvsr_dit_session * s, int l, int64_t n,
                                         const struct infvsr_tensor e[6], struct infvsr_err * err) {
    const struct infvsr_dit * dit = s->dit;
    struct infvsr_backend * be = dit->be;
    const struct dit_attn_weights * w = &dit->blocks[l].self_attn;
    int64_t dim = dit->cfg.dim;
    float eps = dit->cfg.eps;
    struct infvsr_tensor x, a, q, o, d, kn, vn, fr;
    dit_rows(&x, &s->s.x, n, dim);
    dit_rows(&a, &s->s.a, n, dim);
    dit_rows(&q, &s->s.q, n, dim);
    dit_rows(&o, &s->s.o, n, dim);
    dit_rows(&d, &s->s.d, n, dim);
    dit_rows(&kn, &s->spare_k, n, dim);
    dit_rows(&vn, &s->spare_v, n, dim);
    int64_t sf[3] = { n, dit->head_dim / 2, 2 };
    dit_view(&fr, &s->rope.freqs, 0, "dit.rope", INFVSR_TYPE_F64, 3, sf);

    /* a = LN(x) * (1 + e1) + e0 */
    INFVSR_TRY(infvsr_op_layer_norm(be, &x, NULL, NULL, eps, &a, err));
    INFVSR_TRY(infvsr_op_modulate(be, &a, &e[1], &e[0], &a, err));
    /* q, k: RMSNorm over all dim channels, then RoPE; v plain */
    INFVSR_TRY(infvsr_op_linear(be, &a, &w->q_w, &w->q_b, INFVSR_UNARY_COUNT, &q, err));
    INFVSR_TRY(infvsr_op_rms_norm(be, &q, &w->norm_q, eps, &q, err));
    INFVSR_TRY(infvsr_op_rope(be, &q, &fr, dit->cfg.num_heads, &q, err));
    INFVSR_TRY(infvsr_op_linear(be, &a, &w->k_w, &w->k_b, INFVSR_UNARY_COUNT, &kn, err));
    INFVSR_TRY(infvsr_op_rms_norm(be, &kn, &w->norm_k, eps, &kn, err));
    INFVSR_TRY(infvsr_op_rope(be, &kn, &fr, dit->cfg.num_heads, &kn, err));
    INFVSR_TRY(infvsr_op_linear(be, &a, &w->v_w, &w->v_b, INFVSR_UNARY_COUNT, &vn, err));

    /* Keys and values: the previous chunk (segment 0, if any) then this chunk. */
    struct infvsr_tensor k0, v0;
    struct infvsr_attn_args args = {
        .q = &q, .n_heads = dit->cfg.num_heads, .scale = (float)(1.0 / sqrt((double)dit->head_dim)), .out = &o,
    };
    if (s->n_cached > 0) {
        dit_rows(&k0, &s->cache_k[l], s->n_cached, dim);
        dit_rows(&v0, &s->cache_v[l], s->n_cached, dim);
        args.k0 = &k0;
        args.v0 = &v0;
        args.k1 = &kn;
        args.v1 = &vn;
    } else {
        args.k0 = &kn;
        args.v0 = &vn;
    }
    INFVSR_TRY(infvsr_op_attention(be, &args, err));
    /* Layer l's old cache is consumed: this chunk's K/V become the cache by swapping
     * storage with the spare pair (no copy; the old storage is the next layer's spare). */
    swap_storage(&s->cache_k[l], &s->spare_k);
    swap_storage(&s->cache_v[l], &s->spare_v);

    /* x = x + e2 * (W_o o + b_o) */
    INFVSR_TRY(infvsr_op_linear(be, &o, &w->o_w, &w->o_b, INFVSR_UNARY_COUNT, &d, err));
    INFVSR_TRY(infvsr_op_add_gated(be, &x, &e[2], &d, &x, err));
    return INFVSR_OK;
}

static enum infvsr_status cross_attention(struct infvsr_dit_session * s, const struct infvsr_dit_context * c,
                                          int l, int64_t n, struct infvsr_err * err) {
    const struct infvsr_dit * dit = s->dit;
    struct infvsr_backend * be = dit->be;
    const struct dit_block_weights * b = &dit->blocks[l];
    int64_t dim = dit->cfg.dim;
    struct infvsr_tensor x, a, q, o, d, ck, cv;
    dit_rows(&x, &s->s.x, n, dim);
    dit_rows(&a, &s->s.a, n, dim);
    dit_rows(&q, &s->s.q, n, dim);
    dit_rows(&o, &s->s.o, n, dim);
    dit_rows(&d, &s->s.d, n, dim);
    int64_t sc[2] = { c->n_ctx, dim };
    size_t off = (size_t)((int64_t)l * c->n_ctx * dim) * infvsr_dtype_size(dit->act);
    dit_view(&ck, &c->ck, off, "dit.cross_k.l", dit->act, 2, sc);
    dit_view(&cv, &c->cv, off, "dit.cross_v.l", dit->act, 2, sc);

    /* No gate, no modulation: x = x + W'_o attn(RMSNorm(W'_q LN3(x)), ck, cv) */
    INFVSR_TRY(infvsr_op_layer_norm(be, &x, &b->norm3_w, &b->norm3_b, dit->cfg.eps, &a, err));
    INFVSR_TRY(infvsr_op_linear(be, &a, &b->cross_attn.q_w, &b->cross_attn.q_b, INFVSR_UNARY_COUNT, &q, err));
    INFVSR_TRY(infvsr_op_rms_norm(be, &q, &b->cross_attn.norm_q, dit->cfg.eps, &q, err));
    struct infvsr_attn_args args = {
        .q = &q, .k0 = &ck, .v0 = &cv, .n_heads = dit->cfg.num_heads,
        .scale = (float)(1.0 / sqrt((double)dit->head_dim)), .out = &o,
    };
    INFVSR_TRY(infvsr_op_attention(be, &args, err));
    INFVSR_TRY(infvsr_op_linear(be, &o, &b->cross_attn.o_w, &b->cross_attn.o_b, INFVSR_UNARY_COUNT, &d, err));
    INFVSR_TRY(infvsr_op_add_gated(be, &x, NULL, &d, &x, err));
    return INFVSR_OK;
}

static enum infvsr_status feed_forward(struct infvsr_dit_session * s, int l, int64_t n,
                                       const struct infvsr_tensor e[6], struct infvsr_err * err) {
    const struct infvsr_dit * dit = s->dit;
    struct infvsr_backend * be = dit->be;
    const struct dit_block_weights * b = &dit->blocks[l];
    int64_t dim = dit->cfg.dim;

    /* x = x + e5 * ffn.2(GELU_tanh(ffn.0(LN(x) * (1 + e4) + e3))), rows are independent:
     * run it DIT_FFN_ROWS tokens at a time to bound the hidden buffer. */
    for (int64_t r0 = 0; r0 < n; r0 += DIT_FFN_ROWS) {
        int64_t m = n - r0 < DIT_FFN_ROWS ? n - r0 : DIT_FFN_ROWS;
        size_t off = (size_t)(r0 * dim) * infvsr_dtype_size(dit->act);
        int64_t sr[2] = { m, dim };
        struct infvsr_tensor x, a, h, d;
        dit_view(&x, &s->s.x, off, "dit.x", dit->act, 2, sr);
        dit_view(&a, &s->s.a, off, "dit.a", dit->act, 2, sr);
        dit_view(&d, &s->s.d, off, "dit.d", dit->act, 2, sr);
        dit_rows(&h, &s->s.h, m, dit->cfg.ffn_dim);
        INFVSR_TRY(infvsr_op_layer_norm(be, &x, NULL, NULL, dit->cfg.eps, &a, err));
        INFVSR_TRY(infvsr_op_modulate(be, &a, &e[4], &e[3], &a, err));
        INFVSR_TRY(infvsr_op_linear(be, &a, &b->ffn0_w, &b->ffn0_b, INFVSR_UNARY_GELU_TANH, &h, err));
        INFVSR_TRY(infvsr_op_linear(be, &h, &b->ffn2_w, &b->ffn2_b, INFVSR_UNARY_COUNT, &d, err));
        INFVSR_TRY(infvsr_op_add_gated(be, &x, &e[5], &d, &x, err));
    }
    return INFVSR_OK;
}

enum infvsr_status dit_block_forward(struct infvsr_dit_session * s, const struct infvsr_dit_context * c, int l,
                                     int64_t n, struct infvsr_err * err) {
    const struct infvsr_dit * dit = s->dit;
    int64_t dim = dit->cfg.dim;
    /* e0..e5 = shift_sa, scale_sa, gate_sa, shift_ff, scale_ff, gate_ff (hoisted mod rows) */
    struct infvsr_tensor e[6];
    for (int j = 0; j < 6; j++) dit_row(&e[j], &dit->mod, (int64_t)l * 6 + j, dim);

    enum infvsr_status st = self_attention(s, l, n, e, err);
    if (st == INFVSR_OK) st = cross_attention(s, c, l, n, err);
    if (st == INFVSR_OK) st = feed_forward(s, l, n, e, err);
    if (st != INFVSR_OK) infvsr_err_prefix(err, "dit block %d", l);
    return st;
}
