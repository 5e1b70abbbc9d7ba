/* One DiT step on a chunk (MODEL-SPEC §4.2-4.6): patchify, 30 blocks with the rolling KV
 * cache, modulated head, unpatchify; and the one-step restore of §2.5. */
#include <string.h>

#include "dit_internal.h"

#define CALL(expr)                                  \
    do {                                            \
        st = (expr);                                \
        if (st != INFVSR_OK) goto fail;             \
    } while (0)

/* Token (f, y, x) frame-major; patch vector index c*4 + dy*2 + dx (channel-major, the
 * order of the Conv3d weight). lat: [C, T, h, w] f32. */
static void patchify(float * dst, const float * lat, int64_t C, int64_t T, int64_t h, int64_t w) {
    int64_t gh = h / 2, gw = w / 2;
    for (int64_t f = 0; f < T; f++)
        for (int64_t y = 0; y < gh; y++)
            for (int64_t x = 0; x < gw; x++) {
                float * p = dst + ((f * gh + y) * gw + x) * C * 4;
                for (int64_t c = 0; c < C; c++) {
                    const float * src = lat + ((c * T + f) * h + 2 * y) * w + 2 * x;
                    p[c * 4 + 0] = src[0];
                    p[c * 4 + 1] = src[1];
                    p[c * 4 + 2] = src[w];
                    p[c * 4 + 3] = src[w + 1];
                }
            }
}

/* Head output channel j = (dy*2 + dx)*C + c goes to pred[c, f, 2y+dy, 2x+dx]: channel-minor,
 * unlike the patch embedding's channel-major input (MODEL-SPEC §4.6). */
static void unpatchify(float * pred, const float * out, int64_t C, int64_t T, int64_t h, int64_t w) {
    int64_t gh = h / 2, gw = w / 2;
    for (int64_t f = 0; f < T; f++)
        for (int64_t y = 0; y < gh; y++)
            for (int64_t x = 0; x < gw; x++) {
                const float * p = out + ((f * gh + y) * gw + x) * C * 4;
                for (int64_t c = 0; c < C; c++) {
                    float * d = pred + ((c * T + f) * h + 2 * y) * w + 2 * x;
                    d[0] = p[0 * C + c];
                    d[1] = p[1 * C + c];
                    d[w] = p[2 * C + c];
                    d[w + 1] = p[3 * C + c];
                }
            }
}

static bool float_input(enum infvsr_dtype t) {
    return t == INFVSR_TYPE_F32 || t == INFVSR_TYPE_BF16 || t == INFVSR_TYPE_F16;
}

enum infvsr_status infvsr_dit_step(struct infvsr_dit_session * s, const struct infvsr_dit_context * c,
                                   const struct infvsr_tensor * latents, int64_t start_frame,
                                   struct infvsr_tensor * pred, struct infvsr_err * err) {
    struct infvsr_dit * dit = s->dit;
    const struct infvsr_dit_config * cfg = &dit->cfg;
    struct infvsr_backend * be = dit->be;
    enum infvsr_status st;
    char sbuf[64];

    if (!c || c->dit != dit) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "dit step: context of another model");
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
    if (pred->dtype != INFVSR_TYPE_F32 || infvsr_tensor_numel(pred) != (int64_t)cfg->out_dim * T * h * w)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "dit step: pred must be f32 with %lld elements",
                              (long long)cfg->out_dim * T * h * w);
    if (s->n_cached > 0 && (gh != s->cached_gh || gw != s->cached_gw))
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG,
                              "dit step: patch grid %lldx%lld differs from the cached chunk's %lldx%lld (reset first)",
                              (long long)gh, (long long)gw, (long long)s->cached_gh, (long long)s->cached_gw);
    int64_t start = start_frame < 0 ? s->position : start_frame;
    int64_t dim = cfg->dim, pin = (int64_t)cfg->in_dim * 4, pout = (int64_t)cfg->out_dim * 4;

    /* Host: latents -> f32 -> patches; RoPE table. Then upload both. */
    float * gathered = s->host_patch;
    float * converted = s->host_patch + s->max_tokens * (pin > pout ? pin : pout);
    const float * lat = latents->data;
    if (latents->dtype != INFVSR_TYPE_F32) {
        infvsr_convert_to_f32(converted, latents->data, latents->dtype, (size_t)(cfg->in_dim * T * h * w));
        lat = converted;
    }
    patchify(gathered, lat, cfg->in_dim, T, h, w);
    dit_rope_fill(s->host_freqs, dit->head_dim, start, T, gh, gw);

    struct infvsr_tensor patch, x, a, out, fr;
    int64_t s2[2] = { n, pin };
    dit_view(&patch, &s->s.patch, 0, "dit.patch", INFVSR_TYPE_F32, 2, s2);
    s2[1] = dim;
    dit_view(&x, &s->s.x, 0, "dit.x", INFVSR_TYPE_F32, 2, s2);
    dit_view(&a, &s->s.a, 0, "dit.a", INFVSR_TYPE_F32, 2, s2);
    s2[1] = pout;
    dit_view(&out, &s->s.patch, 0, "dit.head_out", INFVSR_TYPE_F32, 2, s2);
    int64_t sf[3] = { n, dit->head_dim / 2, 2 };
    dit_view(&fr, &s->s.freqs, 0, "dit.rope", INFVSR_TYPE_F64, 3, sf);

    CALL(infvsr_backend_tensor_set(be, &patch, gathered, 0, (size_t)(n * pin) * sizeof(float), err));
    CALL(infvsr_backend_tensor_set(be, &fr, s->host_freqs, 0, (size_t)(n * dit->head_dim) * sizeof(double), err));
    CALL(infvsr_op_linear(be, &patch, &dit->patch_w, &dit->patch_b, INFVSR_UNARY_COUNT, &x, err));

    for (int l = 0; l < cfg->num_layers; l++) {
        if (s->should_abort && s->should_abort(s->abort_user)) {
            (void)infvsr_backend_synchronize(be, NULL); /* nothing in flight on the arena */
            st = infvsr_err_set(err, INFVSR_ERR_CANCELLED, "cancelled before block %d of %d", l, cfg->num_layers);
            goto fail;
        }
        CALL(dit_block_forward(s, c, l, n, err));
    }

    /* out = head(LN(x) * (1 + scale) + shift), (shift, scale) = head.modulation + e */
    struct infvsr_tensor shift, scale;
    dit_row(&shift, &dit->head_mod, 0, dim);
    dit_row(&scale, &dit->head_mod, 1, dim);
    CALL(infvsr_op_layer_norm(be, &x, NULL, NULL, cfg->eps, &a, err));
    CALL(infvsr_op_modulate(be, &a, &scale, &shift, &a, err));
    CALL(infvsr_op_linear(be, &a, &dit->head_w, &dit->head_b, INFVSR_UNARY_COUNT, &out, err));
    CALL(infvsr_backend_synchronize(be, err));
    CALL(infvsr_backend_tensor_get(be, &out, gathered, 0, (size_t)(n * pout) * sizeof(float), err));
    unpatchify(pred->data, gathered, cfg->out_dim, T, h, w);

    /* Every layer's cache now holds this chunk (rolling rule, MODEL-SPEC §4.5). */
    s->n_cached = n;
    s->cached_gh = gh;
    s->cached_gw = gw;
    s->position = start + T;
    return INFVSR_OK;
fail:
    /* Some layers may already hold this chunk's K/V: the cache is inconsistent, drop it. */
    infvsr_dit_session_reset(s);
    if (err && err->status == INFVSR_OK) infvsr_err_set(err, st, "backend transfer failed");
    infvsr_err_prefix(err, "dit step (cache reset)");
    return st;
}

enum infvsr_status infvsr_dit_restore(const struct infvsr_tensor * latents, const struct infvsr_tensor * pred,
                                      struct infvsr_tensor * restored, struct infvsr_err * err) {
    int64_t n = infvsr_tensor_numel(latents);
    if (infvsr_tensor_numel(pred) != n || infvsr_tensor_numel(restored) != n)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "dit restore: numel differs (latents %lld, pred %lld, out %lld)",
                              (long long)n, (long long)infvsr_tensor_numel(pred),
                              (long long)infvsr_tensor_numel(restored));
    if (!float_input(latents->dtype) || pred->dtype != INFVSR_TYPE_F32 || restored->dtype != INFVSR_TYPE_F32)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "dit restore: latents f32/bf16/f16, pred and out f32");
    float * r = restored->data;
    const float * p = pred->data;
    if (latents->dtype != INFVSR_TYPE_F32) {
        infvsr_convert_to_f32(r, latents->data, latents->dtype, (size_t)n);
    } else if (restored->data != latents->data) {
        memmove(r, latents->data, (size_t)n * sizeof(float));
    }
    /* latents - sigma * pred: the product rounded to f32, then the difference. */
    for (int64_t i = 0; i < n; i++) {
        float prod = INFVSR_DIT_SIGMA * p[i];
        r[i] = r[i] - prod;
    }
    return INFVSR_OK;
}
