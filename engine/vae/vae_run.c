/* Scratch arena and the primitives every VAE layer is built from: plain and cached
 * (causal, streaming) convolutions and the RMS-norm + SiLU pair. Data moves only through
 * ops on the session's backend tensors (arena, caches); views are pointer arithmetic. */
#include <string.h>

#include "vae/vae_internal.h"

enum infvsr_status vae_alloc(struct vae_run * r, struct vae_act * a, int c, int t, int h, int w) {
    a->c = c; a->t = t; a->h = h; a->w = w;
    /* Keep every activation 64-byte aligned for the kernels. */
    size_t n = vae_round_up(vae_act_numel(a), vae_align_elems(r->act));
    a->off = r->top;
    if (!r->dry && r->top + n > r->cap) {
        return infvsr_err_set(r->err, INFVSR_ERR_NOMEM,
                              "vae scratch arena too small: need %zu elements, have %zu (planner bug)",
                              r->top + n, r->cap);
    }
    r->top += n;
    if (r->top > r->peak) r->peak = r->top;
    return INFVSR_OK;
}

enum infvsr_status vae_settle(struct vae_run * r, size_t dst, struct vae_act * out) {
    INFVSR_ASSERT(dst <= out->off);
    if (!r->dry && dst != out->off) {
        /* Overlapping dense ranges of one tensor: the copy op's memmove case. */
        INFVSR_TRY(infvsr_op_copy_range(r->be, r->arena, (int64_t)out->off, r->arena, (int64_t)dst,
                                        (int64_t)vae_act_numel(out), r->err));
    }
    out->off = dst;
    r->top   = dst + vae_round_up(vae_act_numel(out), vae_align_elems(r->act));
    return INFVSR_OK;
}

void vae_view_at(const struct vae_run * r, size_t off, int ndim, const int64_t * shape, struct infvsr_tensor * t) {
    void * data = r->dry ? NULL : (char *)r->arena->data + off * infvsr_dtype_size(r->act);
    infvsr_tensor_view(t, "vae.scratch", r->act, ndim, shape, data);
    t->mem = r->dry ? INFVSR_MEM_HOST : r->arena->mem;
}

void vae_view(const struct vae_run * r, const struct vae_act * a, struct infvsr_tensor * t) {
    int64_t shape[4] = { a->c, a->t, a->h, a->w };
    vae_view_at(r, a->off, 4, shape, t);
}

enum infvsr_status vae_copy_frames(struct vae_run * r, struct infvsr_tensor * dst, int64_t dst_off, int64_t dst_t,
                                   int64_t d0, const struct infvsr_tensor * src, int64_t src_off, int64_t src_t,
                                   int64_t s0, int64_t n, int64_t c, int64_t plane) {
    /* Per channel the n frames are one contiguous run: [c, n * plane] with channel strides. */
    struct infvsr_copy_args a = infvsr_copy_args_init(INFVSR_COPY_SET, 2);
    a.extent[0]   = c;
    a.extent[1]   = n * plane;
    a.x           = src;
    a.x_offset    = src_off + s0 * plane;
    a.x_stride[0] = src_t * plane;
    a.x_stride[1] = 1;
    a.y           = dst;
    a.y_offset    = dst_off + d0 * plane;
    a.y_stride[0] = dst_t * plane;
    a.y_stride[1] = 1;
    return infvsr_op_copy(r->be, &a, r->err);
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

/* The three copies of a cached conv: [cache | x] into xin, then the new cache = the last
 * 2 frames of xin (the stream seen so far). */
static enum infvsr_status prepend_cache(struct vae_run * r, int slot, const struct vae_act * x,
                                        const struct vae_act * xin) {
    int64_t plane = (int64_t)x->h * x->w, co = r->cache_off[slot];
    INFVSR_TRY(vae_copy_frames(r, r->arena, (int64_t)xin->off, xin->t, 0, r->caches, co, VAE_CACHE_T, 0, VAE_CACHE_T,
                               x->c, plane));
    INFVSR_TRY(vae_copy_frames(r, r->arena, (int64_t)xin->off, xin->t, VAE_CACHE_T, r->arena, (int64_t)x->off, x->t, 0,
                               x->t, x->c, plane));
    return vae_copy_frames(r, r->caches, co, VAE_CACHE_T, 0, r->arena, (int64_t)xin->off, xin->t, x->t, VAE_CACHE_T,
                           x->c, plane);
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
    if (!r->dry) {
        st = prepend_cache(r, cv->slot, x, &xin);
        r->started[cv->slot] = 1;
        if (st == INFVSR_OK) {
            struct infvsr_tensor tx, ty;
            vae_view(r, &xin, &tx);
            vae_view(r, y, &ty);
            struct infvsr_conv3d_args a = {
                .x = &tx, .w = &cv->w, .b = &cv->b, .stride_t = 1, .stride_h = 1, .stride_w = 1,
                .pad_top = pad_h, .pad_bottom = pad_h, .pad_left = pad_w, .pad_right = pad_w, .y = &ty,
            };
            st = infvsr_op_conv3d(r->be, &a, r->err);
        }
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
    INFVSR_TRY(infvsr_op_channel_rms_norm(r->be, &tx, gamma, &ty, r->err));
    return infvsr_op_unary(r->be, INFVSR_UNARY_SILU, &ty, &ty, r->err);
}
