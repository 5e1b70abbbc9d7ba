/* Streaming encode and decode of chunks (MODEL-SPEC.md sections 5.6-5.8): per tile, one
 * encoder call per latent frame (frame 0 alone at the scene start, then groups of 4) and one
 * decoder call per latent frame; tiles blended with their masks into the caller's output.
 * Inputs, outputs, arena, caches and masks are all backend tensors; every data movement
 * below is a strided copy op (gather of a tile window with dtype conversion, blend with a
 * mask, division by the summed masks). */
#include <math.h>
#include <string.h>

#include "vae/vae_session.h"

/* A [C, T, H, W] tensor's element strides. */
static void strides4(const struct infvsr_tensor * t, int64_t * s) {
    s[3] = 1;
    s[2] = t->shape[3];
    s[1] = t->shape[2] * s[2];
    s[0] = t->shape[1] * s[1];
}

/* Copies the [c, n, rows, cols] window at (t0, y0, x0) of the [C, T, H, W] tensor `src`
 * (any float dtype) into the activation `dst` (converted to the activation dtype). */
static enum infvsr_status gather_window(struct vae_run * r, const struct vae_act * dst,
                                        const struct infvsr_tensor * src, int t0, int y0, int x0) {
    if (r->dry) return INFVSR_OK;
    struct infvsr_copy_args a = infvsr_copy_args_init(INFVSR_COPY_SET, 4);
    int64_t ext[4] = { dst->c, dst->t, dst->h, dst->w }, xs[4];
    strides4(src, xs);
    a.x        = src;
    a.x_offset = t0 * xs[1] + y0 * xs[2] + x0;
    a.y        = r->arena;
    a.y_offset = (int64_t)dst->off;
    for (int d = 3; d >= 0; d--) {
        a.extent[d]   = ext[d];
        a.x_stride[d] = xs[d];
        a.y_stride[d] = d == 3 ? 1 : a.y_stride[d + 1] * ext[d + 1];
    }
    return infvsr_op_copy(r->be, &a, r->err);
}

/* Per-channel x = (x + beta_c) * alpha_c or x * alpha_c + beta_c through the backend, with
 * the exact f32 op order of the reference. */
static enum infvsr_status channel_affine(struct vae_run * r, const struct vae_act * x, const float * add_first,
                                         const float * mul, const float * add_last) {
    if (r->dry) return INFVSR_OK;
    size_t plane = (size_t)x->t * x->h * x->w;
    int64_t shape[1] = { (int64_t)plane };
    for (int c = 0; c < x->c; c++) {
        struct infvsr_tensor t;
        vae_view_at(r, x->off + c * plane, 1, shape, &t);
        if (add_first) INFVSR_TRY(infvsr_op_affine_clamp(r->be, &t, 1.0f, add_first[c], -INFINITY, INFINITY, &t, r->err));
        INFVSR_TRY(infvsr_op_affine_clamp(r->be, &t, mul[c], 0.0f, -INFINITY, INFINITY, &t, r->err));
        if (add_last) INFVSR_TRY(infvsr_op_affine_clamp(r->be, &t, 1.0f, add_last[c], -INFINITY, INFINITY, &t, r->err));
    }
    return INFVSR_OK;
}

static void use_tile(struct vae_run * r, const struct vae_tile * tl) {
    r->top       = 0;
    r->cache_off = tl->cache_off;
    r->started   = tl->started;
}

enum infvsr_status vae_encode_call(struct infvsr_vae_session * s, struct vae_run * r, const struct vae_tile * tl,
                                   const struct infvsr_tensor * frames, int t0, int n, struct vae_act * out) {
    const struct infvsr_vae * m = s->m;
    int th = tl->r1 - tl->r0, tw = tl->c1 - tl->c0;
    struct vae_act x, mu;
    INFVSR_TRY(vae_alloc(r, &x, 3, n, 8 * th, 8 * tw));
    INFVSR_TRY(gather_window(r, &x, frames, t0, 8 * tl->r0, 8 * tl->c0));
    INFVSR_TRY(vae_coder_forward(r, &m->enc, &x));
    if (x.t != 1) {
        return infvsr_err_set(r->err, INFVSR_ERR_INVALID_ARG, "vae encode: %d frames gave %d latents (expected 1)",
                              n, x.t);
    }
    /* Top-level conv1, mean rows only, then (mu - offset) * inv_std. */
    INFVSR_TRY(vae_conv_plain(r, &m->quant_mean, &x, 1, 1, 0, 0, 0, 0, &mu));
    float neg_offset[INFVSR_VAE_Z_DIM];
    for (int c = 0; c < INFVSR_VAE_Z_DIM; c++) neg_offset[c] = -m->offset[c];
    INFVSR_TRY(channel_affine(r, &mu, neg_offset, m->inv_std, NULL));
    INFVSR_TRY(vae_settle(r, 0, &mu));
    *out = mu;
    return INFVSR_OK;
}

enum infvsr_status vae_decode_call(struct infvsr_vae_session * s, struct vae_run * r, const struct vae_tile * tl,
                                   const struct infvsr_tensor * latents, int t, struct vae_act * out) {
    const struct infvsr_vae * m = s->m;
    int th = tl->r1 - tl->r0, tw = tl->c1 - tl->c0;
    struct vae_act z, y;
    INFVSR_TRY(vae_alloc(r, &z, INFVSR_VAE_Z_DIM, 1, th, tw));
    INFVSR_TRY(gather_window(r, &z, latents, t, tl->r0, tl->c0));
    /* z = latent / inv_std + offset (a multiply by the f32 reciprocal of the bf16 inv_std). */
    float recip[INFVSR_VAE_Z_DIM];
    for (int c = 0; c < INFVSR_VAE_Z_DIM; c++) recip[c] = 1.0f / m->inv_std[c];
    INFVSR_TRY(channel_affine(r, &z, NULL, recip, m->offset));
    INFVSR_TRY(vae_conv_plain(r, &m->post_quant, &z, 1, 1, 0, 0, 0, 0, &y));
    INFVSR_TRY(vae_settle(r, 0, &y));
    INFVSR_TRY(vae_coder_forward(r, &m->dec, &y));
    *out = y;
    return INFVSR_OK;
}

/* dst[c, t0 + t, y0 + y, x0 + x] (+)= src[c, t, y, x] * mask[y, x] for the activation src;
 * mask < 0: a plain copy (untiled). The product and the sum are f32, rounded to dst's dtype
 * (see the Precision note in vae.h). */
static enum infvsr_status blend(struct infvsr_vae_session * s, struct vae_run * r, struct infvsr_tensor * dst, int t0,
                                int y0, int x0, const struct vae_act * src, int64_t mask) {
    struct infvsr_copy_args a = infvsr_copy_args_init(mask < 0 ? INFVSR_COPY_SET : INFVSR_COPY_ACCUMULATE, 4);
    int64_t ext[4] = { src->c, src->t, src->h, src->w }, ys[4];
    strides4(dst, ys);
    a.x        = r->arena;
    a.x_offset = (int64_t)src->off;
    a.y        = dst;
    a.y_offset = t0 * ys[1] + y0 * ys[2] + x0;
    for (int d = 3; d >= 0; d--) {
        a.extent[d]   = ext[d];
        a.y_stride[d] = ys[d];
        a.x_stride[d] = d == 3 ? 1 : a.x_stride[d + 1] * ext[d + 1];
    }
    if (mask >= 0) {
        a.m           = &s->blend;
        a.m_offset    = mask;
        a.m_stride[2] = src->w;
        a.m_stride[3] = 1;
    }
    return infvsr_op_copy(r->be, &a, r->err);
}

/* dst[c, t, p] /= weight[p] over every channel and frame of a [C, T, H, W] tensor (in place). */
static enum infvsr_status divide_by_weight(struct infvsr_vae_session * s, struct infvsr_tensor * dst, int64_t weight,
                                           struct infvsr_err * err) {
    struct infvsr_copy_args a = infvsr_copy_args_init(INFVSR_COPY_DIVIDE, 2);
    a.extent[0]   = dst->shape[0] * dst->shape[1];
    a.extent[1]   = dst->shape[2] * dst->shape[3];
    a.x           = dst;
    a.x_stride[0] = a.extent[1];
    a.x_stride[1] = 1;
    a.y           = dst;
    a.y_stride[0] = a.extent[1];
    a.y_stride[1] = 1;
    a.m           = &s->blend;
    a.m_offset    = weight;
    a.m_stride[1] = 1;
    return infvsr_op_copy(s->m->be, &a, err);
}

static bool float_dtype(enum infvsr_dtype d) {
    return d == INFVSR_TYPE_F32 || d == INFVSR_TYPE_BF16 || d == INFVSR_TYPE_F16;
}

/* Inputs: any float dtype (converted into the activation dtype on the way in); outputs: F32
 * or the activation dtype. Both in the model's backend memory. */
static enum infvsr_status check_tensor(const struct infvsr_vae_session * s, const struct infvsr_tensor * t,
                                       const char * what, int64_t c, int64_t h, int64_t w, bool output,
                                       struct infvsr_err * err) {
    char buf[96];
    const struct infvsr_backend * be = s->m->be;
    if (!t || !t->data || t->mem != be->mem) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "vae: %s must be a tensor with data in the memory of "
                              "backend %s (%s)", what, infvsr_backend_name(s->m->be),
                              be->mem == INFVSR_MEM_HOST ? "host" : "device");
    }
    if (t->ndim != 4 || t->shape[0] != c || t->shape[2] != h || t->shape[3] != w || t->shape[1] < 1) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "vae: %s has shape %s, expected [%lld, T, %lld, %lld]",
                              what, infvsr_shape_str(t->ndim, t->shape, buf, sizeof buf), (long long)c,
                              (long long)h, (long long)w);
    }
    bool ok = output ? t->dtype == INFVSR_TYPE_F32 || t->dtype == s->m->act : float_dtype(t->dtype);
    if (!ok) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "vae: %s has dtype %s, expected %s", what,
                              infvsr_dtype_name(t->dtype), !output ? "f32, bf16 or f16"
                              : s->m->act == INFVSR_TYPE_F32 ? "f32" : "f32 or bf16");
    }
    return INFVSR_OK;
}

int64_t infvsr_vae_encode_n_latents(int64_t n_frames, bool first_of_scene) {
    if (first_of_scene) return n_frames >= 1 && n_frames % 4 == 1 ? 1 + (n_frames - 1) / 4 : -1;
    return n_frames >= 4 && n_frames % 4 == 0 ? n_frames / 4 : -1;
}

int64_t infvsr_vae_decode_n_frames(const struct infvsr_vae_session * s, int64_t n_latents) {
    if (n_latents < 1) return -1;
    return s->dec_started ? 4 * n_latents : 4 * n_latents - 3;
}

static struct vae_run make_run(struct infvsr_vae_session * s, struct infvsr_err * err) {
    struct vae_run r = {
        .be = s->m->be, .arena = &s->arena, .act = s->m->act, .cap = (size_t)infvsr_tensor_numel(&s->arena),
        .caches = &s->cache, .err = err, .should_abort = s->should_abort, .abort_user = s->abort_user,
    };
    return r;
}

enum infvsr_status infvsr_vae_encode_chunk(struct infvsr_vae_session * s, const struct infvsr_tensor * frames,
                                           bool first_of_scene, struct infvsr_tensor * latents,
                                           struct infvsr_err * err) {
    INFVSR_TRY(check_tensor(s, frames, "frames", 3, s->p.height, s->p.width, false, err));
    int64_t n_frames = frames->shape[1];
    int64_t n_lat    = infvsr_vae_encode_n_latents(n_frames, first_of_scene);
    if (n_lat < 0) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG,
                              "vae encode: %lld frames; a scene's first chunk needs 1 mod 4, later chunks 0 mod 4",
                              (long long)n_frames);
    }
    if (!first_of_scene && !s->enc_started) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG,
                              "vae encode: the first chunk after open/reset must be first_of_scene");
    }
    INFVSR_TRY(check_tensor(s, latents, "latents", INFVSR_VAE_Z_DIM, s->h, s->w, true, err));
    if (latents->shape[1] != n_lat) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "vae encode: latents hold %lld frames, need %lld",
                              (long long)latents->shape[1], (long long)n_lat);
    }
    if (first_of_scene) infvsr_vae_session_reset(s);
    INFVSR_TRY(vae_session_apply_reset(s, err));
    if (s->tiled) INFVSR_TRY(infvsr_op_fill(s->m->be, latents, 0.0f, err));
    struct vae_run r = make_run(s, err);
    for (int ti = 0; ti < s->n_tiles; ti++) {
        const struct vae_tile * tl = &s->tiles[ti];
        for (int64_t k = 0; k < n_lat; k++) {
            /* Calls: [0], [1..4], [5..8], ... at the scene start; [0..3], [4..7], ... after. */
            int t0 = first_of_scene ? (k == 0 ? 0 : (int)(1 + 4 * (k - 1))) : (int)(4 * k);
            int n  = first_of_scene && k == 0 ? 1 : 4;
            struct vae_act mu;
            use_tile(&r, tl);
            INFVSR_TRY(vae_check_abort(&r, "an encoder call"));
            INFVSR_TRY(vae_encode_call(s, &r, tl, frames, t0, n, &mu));
            INFVSR_TRY(blend(s, &r, latents, (int)k, tl->r0, tl->c0, &mu, s->tiled ? tl->enc_mask : -1));
        }
    }
    if (s->tiled) INFVSR_TRY(divide_by_weight(s, latents, s->enc_weight, err));
    s->enc_started = true;
    return INFVSR_OK;
}

enum infvsr_status infvsr_vae_decode_chunk(struct infvsr_vae_session * s, const struct infvsr_tensor * latents,
                                           struct infvsr_tensor * frames, struct infvsr_err * err) {
    INFVSR_TRY(check_tensor(s, latents, "latents", INFVSR_VAE_Z_DIM, s->h, s->w, false, err));
    int64_t n_lat = latents->shape[1];
    int64_t n_px  = infvsr_vae_decode_n_frames(s, n_lat);
    INFVSR_TRY(check_tensor(s, frames, "frames", 3, s->p.height, s->p.width, true, err));
    if (frames->shape[1] != n_px) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "vae decode: frames hold %lld frames, need %lld",
                              (long long)frames->shape[1], (long long)n_px);
    }
    INFVSR_TRY(vae_session_apply_reset(s, err));
    if (s->tiled) INFVSR_TRY(infvsr_op_fill(s->m->be, frames, 0.0f, err));
    struct vae_run r = make_run(s, err);
    for (int ti = 0; ti < s->n_tiles; ti++) {
        const struct vae_tile * tl = &s->tiles[ti];
        int t_out = 0;
        for (int64_t k = 0; k < n_lat; k++) {
            struct vae_act y;
            use_tile(&r, tl);
            INFVSR_TRY(vae_check_abort(&r, "a decoder call"));
            INFVSR_TRY(vae_decode_call(s, &r, tl, latents, (int)k, &y));
            if (t_out + y.t > n_px) {
                return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "vae decode: tile %d produced too many frames", ti);
            }
            INFVSR_TRY(blend(s, &r, frames, t_out, 8 * tl->r0, 8 * tl->c0, &y, s->tiled ? tl->dec_mask : -1));
            t_out += y.t;
        }
    }
    if (s->tiled) INFVSR_TRY(divide_by_weight(s, frames, s->dec_weight, err));
    s->dec_started = true;
    return infvsr_op_affine_clamp(s->m->be, frames, 1.0f, 0.0f, -1.0f, 1.0f, frames, err);
}
