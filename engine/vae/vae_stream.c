/* Streaming encode and decode of chunks (MODEL-SPEC.md sections 5.6-5.8): per tile, one
 * encoder call per latent frame (frame 0 alone at the scene start, then groups of 4) and one
 * decoder call per latent frame; tiles blended with their masks, accumulated in f32. */
#include <math.h>
#include <string.h>

#include "vae/vae_session.h"

#define TRY(x) do { enum infvsr_status st_ = (x); if (st_ != INFVSR_OK) return st_; } while (0)

/* Copies a [c, n, rows, cols] window at (t0, y0, x0) of a [C, T, H, W] F32/BF16 tensor into
 * the f32 activation `dst`. */
static void gather_window(float * dst, const struct infvsr_tensor * src, int t0, int y0, int x0, int c, int n,
                          int rows, int cols) {
    int64_t T = src->shape[1], H = src->shape[2], W = src->shape[3];
    size_t  es = infvsr_dtype_size(src->dtype);
    for (int ch = 0; ch < c; ch++) {
        for (int t = 0; t < n; t++) {
            for (int y = 0; y < rows; y++) {
                size_t so = (size_t)(((ch * T + t0 + t) * H + y0 + y) * W + x0);
                infvsr_convert_to_f32(dst, (const char *)src->data + so * es, src->dtype, (size_t)cols);
                dst += cols;
            }
        }
    }
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
        infvsr_tensor_view(&t, NULL, INFVSR_TYPE_F32, 1, shape, vae_ptr(r, x) + c * plane);
        const struct infvsr_backend_i * be = r->be->iface;
        if (add_first) TRY(be->affine_clamp(r->be, &t, 1.0f, add_first[c], -INFINITY, INFINITY, &t, r->err));
        TRY(be->affine_clamp(r->be, &t, mul[c], 0.0f, -INFINITY, INFINITY, &t, r->err));
        if (add_last) TRY(be->affine_clamp(r->be, &t, 1.0f, add_last[c], -INFINITY, INFINITY, &t, r->err));
    }
    return INFVSR_OK;
}

static void use_tile(struct vae_run * r, const struct vae_tile * tl) {
    r->top     = 0;
    r->cache   = tl->cache;
    r->started = tl->started;
}

enum infvsr_status vae_encode_call(struct infvsr_vae_session * s, struct vae_run * r, const struct vae_tile * tl,
                                   const struct infvsr_tensor * frames, int t0, int n, struct vae_act * out) {
    const struct infvsr_vae * m = s->m;
    int th = tl->r1 - tl->r0, tw = tl->c1 - tl->c0;
    struct vae_act x, mu;
    TRY(vae_alloc(r, &x, 3, n, 8 * th, 8 * tw));
    if (!r->dry) gather_window(vae_ptr(r, &x), frames, t0, 8 * tl->r0, 8 * tl->c0, 3, n, 8 * th, 8 * tw);
    TRY(vae_coder_forward(r, &m->enc, &x));
    if (x.t != 1) {
        return infvsr_err_set(r->err, INFVSR_ERR_INVALID_ARG, "vae encode: %d frames gave %d latents (expected 1)",
                              n, x.t);
    }
    /* Top-level conv1, mean rows only, then (mu - offset) * inv_std. */
    TRY(vae_conv_plain(r, &m->quant_mean, &x, 1, 1, 0, 0, 0, 0, &mu));
    float neg_offset[INFVSR_VAE_Z_DIM];
    for (int c = 0; c < INFVSR_VAE_Z_DIM; c++) neg_offset[c] = -m->offset[c];
    TRY(channel_affine(r, &mu, neg_offset, m->inv_std, NULL));
    vae_settle(r, 0, &mu);
    *out = mu;
    return INFVSR_OK;
}

enum infvsr_status vae_decode_call(struct infvsr_vae_session * s, struct vae_run * r, const struct vae_tile * tl,
                                   const struct infvsr_tensor * latents, int t, struct vae_act * out) {
    const struct infvsr_vae * m = s->m;
    int th = tl->r1 - tl->r0, tw = tl->c1 - tl->c0;
    struct vae_act z, y;
    TRY(vae_alloc(r, &z, INFVSR_VAE_Z_DIM, 1, th, tw));
    if (!r->dry) gather_window(vae_ptr(r, &z), latents, t, tl->r0, tl->c0, INFVSR_VAE_Z_DIM, 1, th, tw);
    /* z = latent / inv_std + offset (a multiply by the f32 reciprocal of the bf16 inv_std). */
    float recip[INFVSR_VAE_Z_DIM];
    for (int c = 0; c < INFVSR_VAE_Z_DIM; c++) recip[c] = 1.0f / m->inv_std[c];
    TRY(channel_affine(r, &z, NULL, recip, m->offset));
    TRY(vae_conv_plain(r, &m->post_quant, &z, 1, 1, 0, 0, 0, 0, &y));
    vae_settle(r, 0, &y);
    TRY(vae_coder_forward(r, &m->dec, &y));
    *out = y;
    return INFVSR_OK;
}

/* dst[c, t0 + t, y0 + y, x0 + x] (+)= src[c, t, y, x] * mask[y, x]; mask NULL = plain copy. */
static void blend(const struct infvsr_tensor * dst, int t0, int y0, int x0, const float * src, int c, int n,
                  int rows, int cols, const float * mask) {
    int64_t T = dst->shape[1], H = dst->shape[2], W = dst->shape[3];
    float * d = dst->data;
    for (int ch = 0; ch < c; ch++) {
        for (int t = 0; t < n; t++) {
            for (int y = 0; y < rows; y++, src += cols) {
                float * row = d + ((ch * T + t0 + t) * H + y0 + y) * W + x0;
                if (!mask) {
                    memcpy(row, src, (size_t)cols * sizeof(float));
                } else {
                    const float * mr = mask + (size_t)y * cols;
                    for (int x = 0; x < cols; x++) row[x] += src[x] * mr[x];
                }
            }
        }
    }
}

/* dst[c, t, p] /= weight[p] over every channel and frame of a [C, T, H, W] tensor. */
static void divide_by_weight(const struct infvsr_tensor * dst, const float * weight) {
    size_t  plane = (size_t)(dst->shape[2] * dst->shape[3]);
    size_t  n     = (size_t)(dst->shape[0] * dst->shape[1]);
    float * d     = dst->data;
    for (size_t i = 0; i < n; i++, d += plane) {
        for (size_t p = 0; p < plane; p++) d[p] /= weight[p];
    }
}

static enum infvsr_status check_tensor(const struct infvsr_tensor * t, const char * what, int64_t c, int64_t h,
                                       int64_t w, bool allow_bf16, struct infvsr_err * err) {
    char buf[96];
    if (!t || !t->data || t->mem != INFVSR_MEM_HOST) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "vae: %s must be a host tensor with data", what);
    }
    if (t->ndim != 4 || t->shape[0] != c || t->shape[2] != h || t->shape[3] != w || t->shape[1] < 1) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "vae: %s has shape %s, expected [%lld, T, %lld, %lld]",
                              what, infvsr_shape_str(t->ndim, t->shape, buf, sizeof buf), (long long)c,
                              (long long)h, (long long)w);
    }
    if (t->dtype != INFVSR_TYPE_F32 && !(allow_bf16 && t->dtype == INFVSR_TYPE_BF16)) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "vae: %s has dtype %s, expected f32%s", what,
                              infvsr_dtype_name(t->dtype), allow_bf16 ? " or bf16" : "");
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
    struct vae_run r = { .be = s->m->be, .base = s->arena, .cap = s->arena_floats, .err = err,
                         .should_abort = s->should_abort, .abort_user = s->abort_user };
    return r;
}

enum infvsr_status infvsr_vae_encode_chunk(struct infvsr_vae_session * s, const struct infvsr_tensor * frames,
                                           bool first_of_scene, struct infvsr_tensor * latents,
                                           struct infvsr_err * err) {
    TRY(check_tensor(frames, "frames", 3, s->p.height, s->p.width, true, err));
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
    TRY(check_tensor(latents, "latents", INFVSR_VAE_Z_DIM, s->h, s->w, false, err));
    if (latents->shape[1] != n_lat) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "vae encode: latents hold %lld frames, need %lld",
                              (long long)latents->shape[1], (long long)n_lat);
    }
    if (first_of_scene) infvsr_vae_session_reset(s);
    if (s->tiled) memset(latents->data, 0, infvsr_tensor_nbytes(latents));
    struct vae_run r = make_run(s, err);
    for (int ti = 0; ti < s->n_tiles; ti++) {
        const struct vae_tile * tl = &s->tiles[ti];
        for (int64_t k = 0; k < n_lat; k++) {
            /* Calls: [0], [1..4], [5..8], ... at the scene start; [0..3], [4..7], ... after. */
            int t0 = first_of_scene ? (k == 0 ? 0 : (int)(1 + 4 * (k - 1))) : (int)(4 * k);
            int n  = first_of_scene && k == 0 ? 1 : 4;
            struct vae_act mu;
            use_tile(&r, tl);
            TRY(vae_check_abort(&r, "an encoder call"));
            TRY(vae_encode_call(s, &r, tl, frames, t0, n, &mu));
            blend(latents, (int)k, tl->r0, tl->c0, vae_ptr(&r, &mu), INFVSR_VAE_Z_DIM, 1, mu.h, mu.w, tl->enc_mask);
        }
    }
    if (s->tiled) divide_by_weight(latents, s->enc_weight);
    s->enc_started = true;
    return INFVSR_OK;
}

enum infvsr_status infvsr_vae_decode_chunk(struct infvsr_vae_session * s, const struct infvsr_tensor * latents,
                                           struct infvsr_tensor * frames, struct infvsr_err * err) {
    TRY(check_tensor(latents, "latents", INFVSR_VAE_Z_DIM, s->h, s->w, true, err));
    int64_t n_lat = latents->shape[1];
    int64_t n_px  = infvsr_vae_decode_n_frames(s, n_lat);
    TRY(check_tensor(frames, "frames", 3, s->p.height, s->p.width, false, err));
    if (frames->shape[1] != n_px) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "vae decode: frames hold %lld frames, need %lld",
                              (long long)frames->shape[1], (long long)n_px);
    }
    if (s->tiled) memset(frames->data, 0, infvsr_tensor_nbytes(frames));
    struct vae_run r = make_run(s, err);
    for (int ti = 0; ti < s->n_tiles; ti++) {
        const struct vae_tile * tl = &s->tiles[ti];
        int t_out = 0;
        for (int64_t k = 0; k < n_lat; k++) {
            struct vae_act y;
            use_tile(&r, tl);
            TRY(vae_check_abort(&r, "a decoder call"));
            TRY(vae_decode_call(s, &r, tl, latents, (int)k, &y));
            if (t_out + y.t > n_px) {
                return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "vae decode: tile %d produced too many frames", ti);
            }
            blend(frames, t_out, 8 * tl->r0, 8 * tl->c0, vae_ptr(&r, &y), 3, y.t, y.h, y.w, tl->dec_mask);
            t_out += y.t;
        }
    }
    if (s->tiled) divide_by_weight(frames, s->dec_weight);
    s->dec_started = true;
    return s->m->be->iface->affine_clamp(s->m->be, frames, 1.0f, 0.0f, -1.0f, 1.0f, frames, err);
}
