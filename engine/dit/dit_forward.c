/* One DiT step on a chunk (MODEL-SPEC §4.2-4.6): patchify, 30 blocks with the rolling KV
 * cache, modulated head, unpatchify; and the one-step restore of §2.4/§2.5. Everything is
 * queued on the backend: patchify and unpatchify are 6-D strided copies that also convert
 * between the latents' dtype and the activation dtype (see dit.h for the precision). */
#include <string.h>

#include "dit_internal.h"

static bool float_input(enum infvsr_dtype t) {
    return t == INFVSR_TYPE_F32 || t == INFVSR_TYPE_BF16 || t == INFVSR_TYPE_F16;
}

/* A caller's tensor must live where the backend computes (checked before anything is
 * queued, so that a misuse does not cost the cache). */
static enum infvsr_status check_mem(struct infvsr_backend * be, const char * what, const struct infvsr_tensor * t,
                                    struct infvsr_err * err) {
    if (t->mem == be->mem) return INFVSR_OK;
    return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "dit %s '%s' is in %s memory; backend %s computes in %s memory "
                          "(upload it with infvsr_backend_upload)", what, t->name[0] ? t->name : "(unnamed)",
                          t->mem == INFVSR_MEM_HOST ? "host" : "device", infvsr_backend_name(be),
                          be->mem == INFVSR_MEM_HOST ? "host" : "device");
}

/* patch[(f*gh + y)*gw + x, c*4 + dy*2 + dx] = lat[c, f, 2y + dy, 2x + dx]: token order
 * frame-major, patch vector channel-major (the order of the Conv3d weight). The innermost
 * dim is x (gw elements) so that each row of the copy is long. lat: [C, T, h, w]. */
static enum infvsr_status patchify(struct infvsr_backend * be, const struct infvsr_tensor * lat,
                                   struct infvsr_tensor * patch, int64_t C, int64_t T, int64_t h, int64_t w,
                                   struct infvsr_err * err) {
    const int64_t gh = h / 2, gw = w / 2;
    struct infvsr_copy_args a = infvsr_copy_args_init(INFVSR_COPY_SET, 6);
    /* dims: f, y, c, dy, dx, x */
    const int64_t ext[6] = { T, gh, C, 2, 2, gw };
    const int64_t xs[6]  = { h * w, 2 * w, T * h * w, w, 1, 2 };
    const int64_t ys[6]  = { gh * gw * C * 4, gw * C * 4, 4, 2, 1, C * 4 };
    memcpy(a.extent, ext, sizeof ext);
    memcpy(a.x_stride, xs, sizeof xs);
    memcpy(a.y_stride, ys, sizeof ys);
    a.x = lat;
    a.y = patch;
    return infvsr_op_copy(be, &a, err);
}

/* Head output channel j = (dy*2 + dx)*C + c goes to pred[c, f, 2y+dy, 2x+dx]: channel-minor,
 * unlike the patch embedding's channel-major input (MODEL-SPEC §4.6). Innermost dim x. */
static enum infvsr_status unpatchify(struct infvsr_backend * be, const struct infvsr_tensor * out,
                                     struct infvsr_tensor * pred, int64_t C, int64_t T, int64_t h, int64_t w,
                                     struct infvsr_err * err) {
    const int64_t gh = h / 2, gw = w / 2;
    struct infvsr_copy_args a = infvsr_copy_args_init(INFVSR_COPY_SET, 6);
    /* dims: c, f, y, dy, dx, x */
    const int64_t ext[6] = { C, T, gh, 2, 2, gw };
    const int64_t xs[6]  = { 1, gh * gw * C * 4, gw * C * 4, 2 * C, C, C * 4 };
    const int64_t ys[6]  = { T * h * w, h * w, 2 * w, w, 1, 2 };
    memcpy(a.extent, ext, sizeof ext);
    memcpy(a.x_stride, xs, sizeof xs);
    memcpy(a.y_stride, ys, sizeof ys);
    a.x = out;
    a.y = pred;
    return infvsr_op_copy(be, &a, err);
}

enum infvsr_status infvsr_dit_step(struct infvsr_dit_session * s, const struct infvsr_dit_context * c,
                                   const struct infvsr_tensor * latents, int64_t start_frame,
                                   struct infvsr_tensor * pred, struct infvsr_err * err) {
    struct infvsr_dit * dit = s->dit;
    const struct infvsr_dit_config * cfg = &dit->cfg;
    struct infvsr_backend * be = dit->be;
    const enum infvsr_dtype act = dit->act;
    enum infvsr_status st;
    char sbuf[64];

    if (!c || c->dit != dit) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "dit step: context of another model");
    INFVSR_TRY(check_mem(be, "step: latents", latents, err));
    INFVSR_TRY(check_mem(be, "step: pred", pred, err));
    /* latents [in_dim, T, h, w] or [1, in_dim, T, h, w] */
    const int64_t * sh = latents->shape;
    int lead = latents->ndim == 5 ? 1 : 0;
    if (!((latents->ndim == 4) || (latents->ndim == 5 && sh[0] == 1)) || sh[lead] != cfg->in_dim ||
        sh[lead + 1] < 1 || sh[lead + 2] < 2 || sh[lead + 3] < 2 || sh[lead + 2] % 2 || sh[lead + 3] % 2)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG,
                              "dit step: latents shape %s, expected [%d, T, h, w] with T >= 1, h and w even",
                              infvsr_shape_str(latents->ndim, sh, sbuf, sizeof sbuf), cfg->in_dim);
    if (!float_input(latents->dtype))
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "dit step: latents dtype %s, expected f32/bf16/f16",
                              infvsr_dtype_name(latents->dtype));
    int64_t T = sh[lead + 1], h = sh[lead + 2], w = sh[lead + 3];
    int64_t gh = h / 2, gw = w / 2, n = T * gh * gw;
    if (n > s->max_tokens)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "dit step: chunk of %lld tokens > session max %lld",
                              (long long)n, (long long)s->max_tokens);
    if (!float_input(pred->dtype) || infvsr_tensor_numel(pred) != (int64_t)cfg->out_dim * T * h * w)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "dit step: pred must be f32/bf16/f16 with %lld elements",
                              (long long)cfg->out_dim * T * h * w);
    if (s->n_cached > 0 && (gh != s->cached_gh || gw != s->cached_gw))
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG,
                              "dit step: patch grid %lldx%lld differs from the cached chunk's %lldx%lld (reset first)",
                              (long long)gh, (long long)gw, (long long)s->cached_gh, (long long)s->cached_gw);
    int64_t start = start_frame < 0 ? s->position : start_frame;
    int64_t dim = cfg->dim, pin = (int64_t)cfg->in_dim * 4, pout = (int64_t)cfg->out_dim * 4;

    struct infvsr_tensor patch, x, a, out, shift, scale;
    int64_t s2[2] = { n, pin };
    dit_view(&patch, &s->s.patch, 0, "dit.patch", act, 2, s2);
    s2[1] = dim;
    dit_view(&x, &s->s.x, 0, "dit.x", act, 2, s2);
    dit_view(&a, &s->s.a, 0, "dit.a", act, 2, s2);
    s2[1] = pout;
    dit_view(&out, &s->s.patch, 0, "dit.head_out", act, 2, s2);

    if ((st = patchify(be, latents, &patch, cfg->in_dim, T, h, w, err)) != INFVSR_OK) goto fail;
    if ((st = dit_rope_prepare(s, start, T, gh, gw, err)) != INFVSR_OK) goto fail;
    if ((st = infvsr_op_linear(be, &patch, &dit->patch_w, &dit->patch_b, INFVSR_UNARY_COUNT, &x, err)) != INFVSR_OK)
        goto fail;

    for (int l = 0; l < cfg->num_layers; l++) {
        if (s->should_abort && s->should_abort(s->abort_user)) {
            (void)infvsr_backend_synchronize(be, NULL); /* nothing in flight on the arena */
            st = infvsr_err_set(err, INFVSR_ERR_CANCELLED, "cancelled before block %d of %d", l, cfg->num_layers);
            goto fail;
        }
        if ((st = dit_block_forward(s, c, l, n, err)) != INFVSR_OK) goto fail;
    }

    /* out = head(LN(x) * (1 + scale) + shift), (shift, scale) = head.modulation + e */
    dit_row(&shift, &dit->head_mod, 0, dim);
    dit_row(&scale, &dit->head_mod, 1, dim);
    if ((st = infvsr_op_layer_norm(be, &x, NULL, NULL, cfg->eps, &a, err)) != INFVSR_OK) goto fail;
    if ((st = infvsr_op_modulate(be, &a, &scale, &shift, &a, err)) != INFVSR_OK) goto fail;
    if ((st = infvsr_op_linear(be, &a, &dit->head_w, &dit->head_b, INFVSR_UNARY_COUNT, &out, err)) != INFVSR_OK)
        goto fail;
    if ((st = unpatchify(be, &out, pred, cfg->out_dim, T, h, w, err)) != INFVSR_OK) goto fail;

    /* Every layer's cache now holds this chunk (rolling rule, MODEL-SPEC §4.5). */
    s->n_cached = n;
    s->cached_gh = gh;
    s->cached_gw = gw;
    s->position = start + T;
    return INFVSR_OK;
fail:
    /* Some layers may already hold this chunk's K/V: the cache is inconsistent, drop it. */
    infvsr_dit_session_reset(s);
    infvsr_err_prefix(err, "dit step (cache reset)");
    return st;
}

enum infvsr_status infvsr_dit_restore(struct infvsr_backend * be, const struct infvsr_tensor * latents,
                                      const struct infvsr_tensor * pred, struct infvsr_tensor * restored,
                                      struct infvsr_err * err) {
    int64_t n = infvsr_tensor_numel(latents);
    if (infvsr_tensor_numel(pred) != n || infvsr_tensor_numel(restored) != n)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "dit restore: numel differs (latents %lld, pred %lld, out %lld)",
                              (long long)n, (long long)infvsr_tensor_numel(pred),
                              (long long)infvsr_tensor_numel(restored));
    if (!float_input(latents->dtype) || !float_input(pred->dtype) || !float_input(restored->dtype))
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "dit restore: latents, pred and out must be f32/bf16/f16");
    INFVSR_TRY(check_mem(be, "restore: latents", latents, err));
    INFVSR_TRY(check_mem(be, "restore: pred", pred, err));
    INFVSR_TRY(check_mem(be, "restore: restored", restored, err));
    /* restored = 0 + (-sigma * pred): the product rounded once into restored's dtype; then
     * restored += latents. In f32 this is exactly latents - f32(sigma * pred); in bf16 it is
     * the reference's two roundings (MODEL-SPEC §2.4 step 7). */
    INFVSR_TRY(infvsr_op_fill(be, restored, 0.0f, err));
    struct infvsr_copy_args a = infvsr_copy_args_init(INFVSR_COPY_ACCUMULATE, 1);
    a.extent[0]   = n;
    a.x           = pred;
    a.x_stride[0] = 1;
    a.y           = restored;
    a.y_stride[0] = 1;
    a.alpha       = -INFVSR_DIT_SIGMA;
    INFVSR_TRY(infvsr_op_copy(be, &a, err));
    a.x     = latents;
    a.alpha = 1.0f;
    return infvsr_op_copy(be, &a, err);
}
