/* Per-reference DiT state (MODEL-SPEC §4.2 context embedding, §4.3 step 2.5): the embedded
 * context c = text_embedding(ctx) and, for every block, the cross-attention keys
 * RMSNorm_k(W'_k c + b'_k) and values W'_v c + b'_v. They depend only on the visual
 * reference, so they are computed once per reference instead of once per chunk, into
 * buffers allocated once (a session refreshing its reference allocates nothing). */
#include <stdlib.h>
#include <string.h>

#include "dit_internal.h"

enum infvsr_status infvsr_dit_context_alloc(struct infvsr_dit * dit, int64_t n_ctx, struct infvsr_dit_context ** out,
                                            struct infvsr_err * err) {
    *out = NULL;
    const struct infvsr_dit_config * cfg = &dit->cfg;
    struct infvsr_backend * be = dit->be;
    if (n_ctx <= 0 || n_ctx > (1 << 20))
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "dit context: n_ctx %lld out of range", (long long)n_ctx);
    struct infvsr_dit_context * c = calloc(1, sizeof *c);
    if (!c) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "dit context: no memory");
    c->dit = dit;
    c->n_ctx = n_ctx;
    enum infvsr_status st;
    int64_t s2[2] = { n_ctx, cfg->text_dim }, s3[3] = { cfg->num_layers, n_ctx, cfg->dim };
    if ((st = dit_alloc(be, &c->in, "dit.ctx", dit->act, 2, s2, err)) != INFVSR_OK) goto fail;
    s2[1] = cfg->dim;
    if ((st = dit_alloc(be, &c->h, "dit.ctx_h", dit->act, 2, s2, err)) != INFVSR_OK) goto fail;
    if ((st = dit_alloc(be, &c->emb, "dit.ctx_c", dit->act, 2, s2, err)) != INFVSR_OK) goto fail;
    if ((st = dit_alloc(be, &c->ck, "dit.cross_k", dit->act, 3, s3, err)) != INFVSR_OK) goto fail;
    if ((st = dit_alloc(be, &c->cv, "dit.cross_v", dit->act, 3, s3, err)) != INFVSR_OK) goto fail;
    *out = c;
    return INFVSR_OK;
fail:
    infvsr_err_prefix(err, "dit context");
    infvsr_dit_context_free(c);
    return st;
}

enum infvsr_status infvsr_dit_context_set(struct infvsr_dit_context * c, const struct infvsr_tensor * ctx,
                                          struct infvsr_err * err) {
    struct infvsr_dit * dit = c->dit;
    const struct infvsr_dit_config * cfg = &dit->cfg;
    struct infvsr_backend * be = dit->be;
    char sbuf[64];

    int64_t n_ctx = ctx->ndim >= 2 ? ctx->shape[ctx->ndim - 2] : 0;
    bool shape_ok = (ctx->ndim == 2 || (ctx->ndim == 3 && ctx->shape[0] == 1)) && n_ctx == c->n_ctx &&
                    ctx->shape[ctx->ndim - 1] == cfg->text_dim;
    if (!shape_ok)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "dit context: shape %s, expected [%lld, %d]",
                              infvsr_shape_str(ctx->ndim, ctx->shape, sbuf, sizeof sbuf), (long long)c->n_ctx,
                              cfg->text_dim);
    if (ctx->mem != be->mem)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "dit context: tensor '%s' is not in the memory of backend %s "
                              "(upload it with infvsr_backend_upload)", ctx->name, infvsr_backend_name(be));
    if (!infvsr_dtype_is_float(ctx->dtype) || ctx->dtype == INFVSR_TYPE_F64)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "dit context: dtype %s, expected f32/bf16/f16",
                              infvsr_dtype_name(ctx->dtype));

    /* c = text_embedding.2(GELU_tanh(text_embedding.0(ctx))), the tokens converted into the
     * activation dtype first. */
    enum infvsr_status st;
    if ((st = infvsr_op_convert(be, ctx, &c->in, err)) != INFVSR_OK) goto fail;
    if ((st = infvsr_op_linear(be, &c->in, &dit->text0_w, &dit->text0_b, INFVSR_UNARY_GELU_TANH, &c->h, err)) !=
        INFVSR_OK)
        goto fail;
    if ((st = infvsr_op_linear(be, &c->h, &dit->text2_w, &dit->text2_b, INFVSR_UNARY_COUNT, &c->emb, err)) != INFVSR_OK)
        goto fail;
    int64_t s2[2] = { c->n_ctx, cfg->dim };
    for (int l = 0; l < cfg->num_layers; l++) {
        const struct dit_attn_weights * ca = &dit->blocks[l].cross_attn;
        size_t off = (size_t)((int64_t)l * c->n_ctx * cfg->dim) * infvsr_dtype_size(dit->act);
        struct infvsr_tensor kl, vl;
        dit_view(&kl, &c->ck, off, "dit.cross_k.l", dit->act, 2, s2);
        dit_view(&vl, &c->cv, off, "dit.cross_v.l", dit->act, 2, s2);
        if ((st = infvsr_op_linear(be, &c->emb, &ca->k_w, &ca->k_b, INFVSR_UNARY_COUNT, &kl, err)) != INFVSR_OK) goto fail;
        if ((st = infvsr_op_rms_norm(be, &kl, &ca->norm_k, cfg->eps, &kl, err)) != INFVSR_OK) goto fail;
        if ((st = infvsr_op_linear(be, &c->emb, &ca->v_w, &ca->v_b, INFVSR_UNARY_COUNT, &vl, err)) != INFVSR_OK) goto fail;
    }
    return INFVSR_OK;
fail:
    infvsr_err_prefix(err, "dit context");
    return st;
}

enum infvsr_status infvsr_dit_context_init(struct infvsr_dit * dit, const struct infvsr_tensor * ctx,
                                           struct infvsr_dit_context ** out, struct infvsr_err * err) {
    *out = NULL;
    int64_t n_ctx = ctx && ctx->ndim >= 2 ? ctx->shape[ctx->ndim - 2] : 0;
    if (!ctx || n_ctx <= 0)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "dit context: expected a [n_ctx, %d] tensor",
                              dit->cfg.text_dim);
    struct infvsr_dit_context * c = NULL;
    INFVSR_TRY(infvsr_dit_context_alloc(dit, n_ctx, &c, err));
    enum infvsr_status st = infvsr_dit_context_set(c, ctx, err);
    if (st != INFVSR_OK) {
        infvsr_dit_context_free(c);
        return st;
    }
    *out = c;
    return INFVSR_OK;
}

void infvsr_dit_context_free(struct infvsr_dit_context * c) {
    if (!c) return;
    struct infvsr_backend * be = c->dit->be;
    infvsr_backend_tensor_free(be, &c->in);
    infvsr_backend_tensor_free(be, &c->h);
    infvsr_backend_tensor_free(be, &c->emb);
    infvsr_backend_tensor_free(be, &c->ck);
    infvsr_backend_tensor_free(be, &c->cv);
    free(c);
}

size_t infvsr_dit_context_nbytes(const struct infvsr_dit_context * c) {
    return c ? infvsr_tensor_nbytes(&c->in) + infvsr_tensor_nbytes(&c->h) + infvsr_tensor_nbytes(&c->emb) +
                   infvsr_tensor_nbytes(&c->ck) + infvsr_tensor_nbytes(&c->cv)
             : 0;
}
