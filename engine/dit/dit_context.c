/* Per-reference DiT state (MODEL-SPEC §4.2 context embedding, §4.3 step 2.5): the embedded
 * context c = text_embedding(ctx) and, for every block, the cross-attention keys
 * RMSNorm_k(W'_k c + b'_k) and values W'_v c + b'_v. They depend only on the visual
 * reference, so they are computed once per reference instead of once per chunk. */
#include <stdlib.h>
#include <string.h>

#include "dit_internal.h"

static void free_tensor(struct infvsr_backend * be, struct infvsr_tensor * t) {
    infvsr_backend_tensor_free(be, t);
}

enum infvsr_status infvsr_dit_context_init(struct infvsr_dit * dit, const struct infvsr_tensor * ctx,
                                           struct infvsr_dit_context ** out, struct infvsr_err * err) {
    *out = NULL;
    const struct infvsr_dit_config * cfg = &dit->cfg;
    struct infvsr_backend * be = dit->be;
    char sbuf[64];

    int64_t n_ctx = ctx->ndim >= 2 ? ctx->shape[ctx->ndim - 2] : 0;
    bool shape_ok = (ctx->ndim == 2 || (ctx->ndim == 3 && ctx->shape[0] == 1)) && n_ctx > 0 &&
                    ctx->shape[ctx->ndim - 1] == cfg->text_dim;
    if (!shape_ok)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "dit context: shape %s, expected [n_ctx, %d]",
                              infvsr_shape_str(ctx->ndim, ctx->shape, sbuf, sizeof sbuf), cfg->text_dim);
    if (!infvsr_dtype_is_float(ctx->dtype) || ctx->dtype == INFVSR_TYPE_F64)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "dit context: dtype %s, expected f32/bf16/f16",
                              infvsr_dtype_name(ctx->dtype));

    struct infvsr_dit_context * c = calloc(1, sizeof *c);
    if (!c) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "dit context: no memory");
    c->dit = dit;
    c->n_ctx = n_ctx;
    struct infvsr_tensor in = { 0 }, h = { 0 }, emb = { 0 };
    float * host = NULL;
    enum infvsr_status st;
    int64_t s2[2], s3[3] = { cfg->num_layers, n_ctx, cfg->dim };

    /* Upload the tokens as f32. */
    size_t n_in = (size_t)(n_ctx * cfg->text_dim);
    host = malloc(n_in * sizeof(float));
    if (!host) {
        st = infvsr_err_set(err, INFVSR_ERR_NOMEM, "dit context: no memory");
        goto fail;
    }
    infvsr_convert_to_f32(host, ctx->data, ctx->dtype, n_in);
    infvsr_shape2(s2, n_ctx, cfg->text_dim);
    infvsr_tensor_setup(&in, "dit.ctx", INFVSR_TYPE_F32, 2, s2);
    if ((st = infvsr_backend_tensor_alloc(be, &in, err)) != INFVSR_OK) goto fail;
    if ((st = infvsr_backend_tensor_set(be, &in, host, 0, n_in * sizeof(float), err)) != INFVSR_OK) goto fail;

    infvsr_shape2(s2, n_ctx, cfg->dim);
    infvsr_tensor_setup(&h, "dit.ctx_h", INFVSR_TYPE_F32, 2, s2);
    if ((st = infvsr_backend_tensor_alloc(be, &h, err)) != INFVSR_OK) goto fail;
    infvsr_tensor_setup(&emb, "dit.ctx_c", INFVSR_TYPE_F32, 2, s2);
    if ((st = infvsr_backend_tensor_alloc(be, &emb, err)) != INFVSR_OK) goto fail;
    infvsr_tensor_setup(&c->ck, "dit.cross_k", INFVSR_TYPE_F32, 3, s3);
    if ((st = infvsr_backend_tensor_alloc(be, &c->ck, err)) != INFVSR_OK) goto fail;
    infvsr_tensor_setup(&c->cv, "dit.cross_v", INFVSR_TYPE_F32, 3, s3);
    if ((st = infvsr_backend_tensor_alloc(be, &c->cv, err)) != INFVSR_OK) goto fail;

    /* c = text_embedding.2(GELU_tanh(text_embedding.0(ctx))) */
    if ((st = infvsr_op_linear(be, &in, &dit->text0_w, &dit->text0_b, INFVSR_UNARY_GELU_TANH, &h, err)) != INFVSR_OK)
        goto fail;
    if ((st = infvsr_op_linear(be, &h, &dit->text2_w, &dit->text2_b, INFVSR_UNARY_COUNT, &emb, err)) != INFVSR_OK)
        goto fail;

    for (int l = 0; l < cfg->num_layers; l++) {
        const struct dit_attn_weights * ca = &dit->blocks[l].cross_attn;
        size_t off = (size_t)((int64_t)l * n_ctx * cfg->dim) * sizeof(float);
        struct infvsr_tensor kl, vl;
        dit_view(&kl, &c->ck, off, "dit.cross_k.l", INFVSR_TYPE_F32, 2, s2);
        dit_view(&vl, &c->cv, off, "dit.cross_v.l", INFVSR_TYPE_F32, 2, s2);
        if ((st = infvsr_op_linear(be, &emb, &ca->k_w, &ca->k_b, INFVSR_UNARY_COUNT, &kl, err)) != INFVSR_OK) goto fail;
        if ((st = infvsr_op_rms_norm(be, &kl, &ca->norm_k, cfg->eps, &kl, err)) != INFVSR_OK) goto fail;
        if ((st = infvsr_op_linear(be, &emb, &ca->v_w, &ca->v_b, INFVSR_UNARY_COUNT, &vl, err)) != INFVSR_OK) goto fail;
    }
    if ((st = infvsr_backend_synchronize(be, err)) != INFVSR_OK) goto fail;

    free(host);
    free_tensor(be, &in);
    free_tensor(be, &h);
    free_tensor(be, &emb);
    *out = c;
    return INFVSR_OK;
fail:
    infvsr_err_prefix(err, "dit context");
    free(host);
    free_tensor(be, &in);
    free_tensor(be, &h);
    free_tensor(be, &emb);
    infvsr_dit_context_free(c);
    return st;
}

void infvsr_dit_context_free(struct infvsr_dit_context * c) {
    if (!c) return;
    free_tensor(c->dit->be, &c->ck);
    free_tensor(c->dit->be, &c->cv);
    free(c);
}
