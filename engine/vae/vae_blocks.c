/* The VAE's layers (MODEL-SPEC.md section 5.2): residual block, single-head spatial
 * attention, and the four resample modes with their first-call rules; plus the
 * encoder/decoder driver (conv1, layers, head). */
#include <math.h>

#include "vae/vae_internal.h"


/* path = conv2(silu(norm2(conv1(silu(norm1(x)))))); out = path + shortcut(x). */
static enum infvsr_status residual_forward(struct vae_run * r, const struct vae_residual * l, struct vae_act * x) {
    size_t base = x->off;
    struct vae_act h = *x, a, b, c;
    if (l->has_shortcut) INFVSR_TRY(vae_conv_plain(r, &l->shortcut, x, 1, 1, 0, 0, 0, 0, &h));
    INFVSR_TRY(vae_alloc(r, &a, x->c, x->t, x->h, x->w));
    INFVSR_TRY(vae_norm_silu(r, &l->gamma1, x, &a));
    INFVSR_TRY(vae_conv_cached(r, &l->conv1, &a, &b));
    INFVSR_TRY(vae_norm_silu(r, &l->gamma2, &b, &b));
    INFVSR_TRY(vae_conv_cached(r, &l->conv2, &b, &c));
    /* Identity shortcut: the sum goes straight into x's storage (no move of the output). */
    struct vae_act * sum = l->has_shortcut ? &c : x;
    if (!r->dry) {
        struct infvsr_tensor tc, th, ts;
        vae_view(r, &c, &tc);
        vae_view(r, &h, &th);
        vae_view(r, sum, &ts);
        INFVSR_TRY(infvsr_op_add(r->be, &tc, &th, &ts, r->err));
    }
    INFVSR_TRY(vae_settle(r, base, sum));
    *x = *sum;
    return INFVSR_OK;
}

/* Per frame: tokens [HW, C] of norm(x), q/k/v 1x1 convs, single-head softmax attention
 * (head dim C), 1x1 projection, added to x in place. The [C, HW] <-> [HW, C] transposes
 * are strided copies (the add-back an ACCUMULATE: x + (1 * p), the same f32 sum as before). */
static enum infvsr_status attention_forward(struct vae_run * r, const struct vae_attention * l, struct vae_act * x) {
    size_t base = x->off;
    int c = x->c, hw = x->h * x->w;
    struct vae_act n, tok, q, k, v, o;
    INFVSR_TRY(vae_alloc(r, &n, x->c, x->t, x->h, x->w));
    INFVSR_TRY(vae_alloc(r, &tok, 1, 1, hw, c));
    INFVSR_TRY(vae_alloc(r, &q, 1, 1, hw, c));
    INFVSR_TRY(vae_alloc(r, &k, 1, 1, hw, c));
    INFVSR_TRY(vae_alloc(r, &v, 1, 1, hw, c));
    INFVSR_TRY(vae_alloc(r, &o, 1, 1, hw, c));
    if (!r->dry) {
        struct infvsr_tensor tx, tn, ttok, tq, tk, tv, to;
        vae_view(r, x, &tx);
        vae_view(r, &n, &tn);
        INFVSR_TRY(infvsr_op_channel_rms_norm(r->be, &tx, &l->gamma, &tn, r->err));
        int64_t s2[2] = { hw, c };
        vae_view_at(r, tok.off, 2, s2, &ttok);
        vae_view_at(r, q.off, 2, s2, &tq);
        vae_view_at(r, k.off, 2, s2, &tk);
        vae_view_at(r, v.off, 2, s2, &tv);
        vae_view_at(r, o.off, 2, s2, &to);
        /* [C, T, HW] frame t <-> tokens [HW, C]: extent [C, HW]. */
        struct infvsr_copy_args in = infvsr_copy_args_init(INFVSR_COPY_SET, 2);
        in.extent[0] = c, in.extent[1] = hw;
        in.x = r->arena, in.x_stride[0] = (int64_t)x->t * hw, in.x_stride[1] = 1;
        in.y = r->arena, in.y_offset = (int64_t)tok.off, in.y_stride[0] = 1, in.y_stride[1] = c;
        struct infvsr_copy_args back = infvsr_copy_args_init(INFVSR_COPY_ACCUMULATE, 2);
        back.extent[0] = c, back.extent[1] = hw;
        back.x = r->arena, back.x_offset = (int64_t)tok.off, back.x_stride[0] = 1, back.x_stride[1] = c;
        back.y = r->arena, back.y_stride[0] = (int64_t)x->t * hw, back.y_stride[1] = 1;
        for (int t = 0; t < x->t; t++) {
            in.x_offset   = (int64_t)n.off + (int64_t)t * hw;
            back.y_offset = (int64_t)x->off + (int64_t)t * hw;
            INFVSR_TRY(infvsr_op_copy(r->be, &in, r->err));
            INFVSR_TRY(infvsr_op_linear(r->be, &ttok, &l->wq, &l->bq, INFVSR_UNARY_COUNT, &tq, r->err));
            INFVSR_TRY(infvsr_op_linear(r->be, &ttok, &l->wk, &l->bk, INFVSR_UNARY_COUNT, &tk, r->err));
            INFVSR_TRY(infvsr_op_linear(r->be, &ttok, &l->wv, &l->bv, INFVSR_UNARY_COUNT, &tv, r->err));
            struct infvsr_attn_args aa = {
                .q = &tq, .k0 = &tk, .v0 = &tv, .n_heads = 1, .scale = 1.0f / sqrtf((float)c), .out = &to,
            };
            INFVSR_TRY(infvsr_op_attention(r->be, &aa, r->err));
            INFVSR_TRY(infvsr_op_linear(r->be, &to, &l->wproj, &l->bproj, INFVSR_UNARY_COUNT, &ttok, r->err));
            INFVSR_TRY(infvsr_op_copy(r->be, &back, r->err));
        }
    }
    return vae_settle(r, base, x);
}

/* Per frame: zero-pad right/bottom by 1, 3x3 conv with stride 2. */
static enum infvsr_status down_spatial(struct vae_run * r, const struct vae_resample * l, struct vae_act * x) {
    size_t base = x->off;
    struct vae_act y;
    INFVSR_TRY(vae_conv_plain(r, &l->spatial, x, 1, 2, 0, 1, 0, 1, &y));
    INFVSR_TRY(vae_settle(r, base, &y));
    *x = y;
    return INFVSR_OK;
}

/* Time conv (3,1,1) stride 2 over [last cached frame | x]; the stream's first call only
 * stores its last frame and passes through. */
static enum infvsr_status down_time(struct vae_run * r, const struct vae_resample * l, struct vae_act * x) {
    int     slot    = l->time.slot;
    size_t  base    = x->off;
    int64_t plane   = (int64_t)x->h * x->w;
    bool    started = r->started[slot] != 0;
    if (!started) {
        if (!r->dry) {
            INFVSR_TRY(vae_copy_frames(r, r->caches, r->cache_off[slot], 1, 0, r->arena, (int64_t)x->off, x->t,
                                       x->t - 1, 1, x->c, plane));
        }
        r->started[slot] = 1;
        return INFVSR_OK;
    }
    struct vae_act xin, y;
    INFVSR_TRY(vae_alloc(r, &xin, x->c, x->t + 1, x->h, x->w));
    if (!r->dry) {
        int64_t co = r->cache_off[slot];
        INFVSR_TRY(vae_copy_frames(r, r->arena, (int64_t)xin.off, xin.t, 0, r->caches, co, 1, 0, 1, x->c, plane));
        INFVSR_TRY(vae_copy_frames(r, r->arena, (int64_t)xin.off, xin.t, 1, r->arena, (int64_t)x->off, x->t, 0, x->t,
                                   x->c, plane));
        INFVSR_TRY(vae_copy_frames(r, r->caches, co, 1, 0, r->arena, (int64_t)x->off, x->t, x->t - 1, 1, x->c, plane));
    }
    INFVSR_TRY(vae_conv_plain(r, &l->time, &xin, 2, 1, 0, 0, 0, 0, &y));
    INFVSR_TRY(vae_settle(r, base, &y));
    *x = y;
    return INFVSR_OK;
}

/* Per frame: nearest x2 (pixel replication), then 3x3 conv (padding 1) halving channels. */
static enum infvsr_status up_spatial(struct vae_run * r, const struct vae_resample * l, struct vae_act * x) {
    size_t base = x->off;
    struct vae_act u, y;
    INFVSR_TRY(vae_alloc(r, &u, x->c, x->t, 2 * x->h, 2 * x->w));
    if (!r->dry) {
        struct infvsr_tensor tx, tu;
        int64_t sx[3] = { (int64_t)x->c * x->t, x->h, x->w }, su[3] = { sx[0], 2 * x->h, 2 * x->w };
        vae_view_at(r, x->off, 3, sx, &tx);
        vae_view_at(r, u.off, 3, su, &tu);
        INFVSR_TRY(infvsr_op_resize(r->be, INFVSR_RESIZE_NEAREST, &tx, &tu, r->err));
    }
    INFVSR_TRY(vae_conv_plain(r, &l->spatial, &u, 1, 1, 1, 1, 1, 1, &y));
    INFVSR_TRY(vae_settle(r, base, &y));
    *x = y;
    return INFVSR_OK;
}

/* Time conv (3,1,1) to 2C channels over the stream without its first frame (the first call
 * is the "Rep" pass-through), channel halves interleaved as two frames each:
 * u[ch, 2t + half] = y[half * C + ch, t], one strided copy. */
static enum infvsr_status up_time(struct vae_run * r, const struct vae_resample * l, struct vae_act * x) {
    int slot = l->time.slot;
    if (!r->started[slot]) {
        r->started[slot] = 1;
        return INFVSR_OK;
    }
    size_t base = x->off;
    struct vae_act y, u;
    int c = x->c;
    INFVSR_TRY(vae_conv_cached(r, &l->time, x, &y));
    INFVSR_TRY(vae_alloc(r, &u, c, 2 * y.t, y.h, y.w));
    if (!r->dry) {
        int64_t plane = (int64_t)y.h * y.w;
        struct infvsr_copy_args a = infvsr_copy_args_init(INFVSR_COPY_SET, 4);
        int64_t ext[4] = { 2, c, y.t, plane };
        int64_t xs[4]  = { (int64_t)c * y.t * plane, (int64_t)y.t * plane, plane, 1 };
        int64_t ys[4]  = { plane, (int64_t)u.t * plane, 2 * plane, 1 };
        for (int d = 0; d < 4; d++) a.extent[d] = ext[d], a.x_stride[d] = xs[d], a.y_stride[d] = ys[d];
        a.x = r->arena, a.x_offset = (int64_t)y.off;
        a.y = r->arena, a.y_offset = (int64_t)u.off;
        INFVSR_TRY(infvsr_op_copy(r->be, &a, r->err));
    }
    INFVSR_TRY(vae_settle(r, base, &u));
    *x = u;
    return INFVSR_OK;
}

enum infvsr_status vae_layer_forward(struct vae_run * r, const struct vae_layer * l, struct vae_act * x) {
    switch (l->kind) {
    case VAE_LAYER_RESIDUAL:  return residual_forward(r, &l->u.res, x);
    case VAE_LAYER_ATTENTION: return attention_forward(r, &l->u.attn, x);
    case VAE_LAYER_DOWN2D:    return down_spatial(r, &l->u.rs, x);
    case VAE_LAYER_DOWN3D:
        INFVSR_TRY(down_spatial(r, &l->u.rs, x));
        return down_time(r, &l->u.rs, x);
    case VAE_LAYER_UP2D:      return up_spatial(r, &l->u.rs, x);
    case VAE_LAYER_UP3D:
        INFVSR_TRY(up_time(r, &l->u.rs, x));
        return up_spatial(r, &l->u.rs, x);
    }
    return infvsr_err_set(r->err, INFVSR_ERR_INVALID_ARG, "vae: unknown layer kind %d", (int)l->kind);
}

enum infvsr_status vae_coder_forward(struct vae_run * r, const struct vae_coder * c, struct vae_act * x) {
    size_t base = x->off;
    struct vae_act y;
    INFVSR_TRY(vae_conv_cached(r, &c->conv1, x, &y));
    INFVSR_TRY(vae_settle(r, base, &y));
    for (int i = 0; i < c->n_layers; i++) {
        INFVSR_TRY(vae_check_abort(r, c->layers[i].name));
        INFVSR_TRY(vae_layer_forward(r, &c->layers[i], &y));
    }
    INFVSR_TRY(vae_norm_silu(r, &c->head_gamma, &y, &y));
    struct vae_act z;
    INFVSR_TRY(vae_conv_cached(r, &c->head, &y, &z));
    INFVSR_TRY(vae_settle(r, base, &z));
    *x = z;
    return INFVSR_OK;
}
