/* Scratch arena and the primitives every VAE layer is built from: plain and cached
 * (causal, streaming) convolutions and the RMS-norm + SiLU pair. */
#include <string.h>

#include "vae/vae_internal.h"

enum infvsr_status vae_alloc(struct vae_run * r, struct vae_act * a, int c, int t, int h, int w) {
    a->c = c; a->t = t; a->h = h; a->w = w;
    /* Keep every activation 64-byte aligned (16 floats) for the kernels. */
    size_t n = (vae_act_numel(a) + 15) & ~(size_t)15;
    a->off = r->top;
    if (!r->dry && r->top + n > r->cap) {
        return infvsr_err_set(r->err, INFVSR_ERR_NOMEM,
                              "vae scratch arena too small: need %zu floats, have %zu (planner bug)",
                              r->top + n, r->cap);
    }
    r->top += n;
    if (r->top > r->peak) r->peak = r->top;
    return INFVSR_OK;
}

void vae_settle(struct vae_run * r, size_t dst, struct vae_act * out) {
    INFVSR_ASSERT(dst <= out->off);
    if (!r->dry && dst != out->off) {
        memmove(r->base + dst, r->base + out->off, vae_act_numel(out) * sizeof(float));
    }
    out->off = dst;
    r->top   = dst + ((vae_act_numel(out) + 15) & ~(size_t)15);
}

void vae_view(const struct vae_run * r, const struct vae_act * a, struct infvsr_tensor * t) {
    int64_t shape[4] = { a->c, a->t, a->h, a->w };
    infvsr_tensor_view(t, NULL, INFVSR_TYPE_F32, 4, shape, r->dry ? NULL : (void *)vae_ptr(r, a));
}

enum infvsr_status vae_conv_plain(struct vae_run * r, const struct vae_conv * cv, const struct vae_act * x,
                                  int stride_t, int stride_s, int pad_top, int pad_bottom, int pad_left,
                                  int pad_right, struct vae_act * y) {
    int to = (x->t - cv->kt) / stride_t + 1;
    int ho = (x->h + pad_top + pad_bottom - cv->kh) / stride_s + 1;
    int wo = (x->w + pad_left + pad_right - cv->kw) / stride_s + 1;
    enum infvsr_status st = vae_alloc(r, y, cv->cout, to, ho, wo);
    if (st != INFVSR_OK || r->dry) return st;
    struct infvsr_tensor tx, ty;
    vae_view(r, x, &tx);
    vae_view(r, y, &ty);
    struct infvsr_conv3d_args a = {
        .x = &tx, .w = &cv->w, .b = &cv->b,
        .stride_t = stride_t, .stride_h = stride_s, .stride_w = stride_s,
        .pad_top = pad_top, .pad_bottom = pad_bottom, .pad_left = pad_left, .pad_right = pad_right,
        .y = &ty,
    };
    return infvsr_op_conv3d(r->be, &a, r->err);
}

/* Copies frames [t0, t0+n) of every channel of src ([C, st, hw]) to frame d0 of dst ([C, dt, hw]). */
static void copy_frames(float * dst, int dt, int d0, const float * src, int st, int t0, int n, int c, size_t hw) {
    for (int ch = 0; ch < c; ch++) {
        memcpy(dst + ((size_t)ch * dt + d0) * hw, src + ((size_t)ch * st + t0) * hw, (size_t)n * hw * sizeof(float));
    }
}

enum infvsr_status vae_conv_cached(struct vae_run * r, const struct vae_conv * cv, const struct vae_act * x,
                                   struct vae_act * y) {
    INFVSR_ASSERT(cv->slot >= 0 && cv->kt == 3);
    /* The stream view: [cache (2 frames, zeros at stream start) | x], valid conv in time.
     * y is allocated below the temporary xin so that dropping xin needs no move. */
    int pad_h = cv->kh / 2, pad_w = cv->kw / 2;
    enum infvsr_status st = vae_alloc(r, y, cv->cout, x->t, x->h + 2 * pad_h - cv->kh + 1, x->w + 2 * pad_w - cv->kw + 1);
    if (st != INFVSR_OK) return st;
    size_t mark = r->top;
    struct vae_act xin;
    st = vae_alloc(r, &xin, x->c, x->t + VAE_CACHE_T, x->h, x->w);
    if (st != INFVSR_OK) return st;
    size_t hw = (size_t)x->h * (size_t)x->w;
    if (!r->dry) {
        float * cache = r->cache[cv->slot];
        copy_frames(vae_ptr(r, &xin), xin.t, 0, cache, VAE_CACHE_T, 0, VAE_CACHE_T, x->c, hw);
        copy_frames(vae_ptr(r, &xin), xin.t, VAE_CACHE_T, vae_ptr(r, x), x->t, 0, x->t, x->c, hw);
        /* The new cache is the last 2 frames of the stream seen so far. */
        copy_frames(cache, VAE_CACHE_T, 0, vae_ptr(r, &xin), xin.t, x->t, VAE_CACHE_T, x->c, hw);
        r->started[cv->slot] = 1;
        struct infvsr_tensor tx, ty;
        vae_view(r, &xin, &tx);
        vae_view(r, y, &ty);
        struct infvsr_conv3d_args a = {
            .x = &tx, .w = &cv->w, .b = &cv->b, .stride_t = 1, .stride_h = 1, .stride_w = 1,
            .pad_top = pad_h, .pad_bottom = pad_h, .pad_left = pad_w, .pad_right = pad_w, .y = &ty,
        };
        st = infvsr_op_conv3d(r->be, &a, r->err);
    }
    r->top = mark;   /* drop xin */
    return st;
}

enum infvsr_status vae_norm_silu(struct vae_run * r, const struct infvsr_tensor * gamma, const struct vae_act * x,
                                 const struct vae_act * y) {
    if (r->dry) return INFVSR_OK;
    struct infvsr_tensor tx, ty;
    vae_view(r, x, &tx);
    vae_view(r, y, &ty);
    enum infvsr_status st = infvsr_op_channel_rms_norm(r->be, &tx, gamma, &ty, r->err);
    if (st != INFVSR_OK) return st;
    return infvsr_op_unary(r->be, INFVSR_UNARY_SILU, &ty, &ty, r->err);
}
