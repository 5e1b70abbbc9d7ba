/* The VAE's layers (MODEL-SPEC.md section 5.2): residual block, single-head spatial
 * attention, and the four resample modes with their first-call rules; plus the
 * encoder/decoder driver (conv1, layers, head). */
#include <math.h>
#include <string.h>

#include "vae/vae_internal.h"

#define TRY(x) do { enum infvsr_status st_ = (x); if (st_ != INFVSR_OK) return st_; } while (0)

/* path = conv2(silu(norm2(conv1(silu(norm1(x)))))); out = path + shortcut(x). */
static enum infvsr_status residual_forward(struct vae_run * r, const struct vae_residual * l, struct vae_act * x) {
    size_t base = x->off;
    struct vae_act h = *x, a, b, c;
    if (l->has_shortcut) TRY(vae_conv_plain(r, &l->shortcut, x, 1, 1, 0, 0, 0, 0, &h));
    TRY(vae_alloc(r, &a, x->c, x->t, x->h, x->w));
    TRY(vae_norm_silu(r, &l->gamma1, x, &a));
    TRY(vae_conv_cached(r, &l->conv1, &a, &b));
    TRY(vae_norm_silu(r, &l->gamma2, &b, &b));
    TRY(vae_conv_cached(r, &l->conv2, &b, &c));
    /* Identity shortcut: the sum goes straight into x's storage (no move of the output). */
    struct vae_act * sum = l->has_shortcut ? &c : x;
    if (!r->dry) {
        struct infvsr_tensor tc, th, ts;
        vae_view(r, &c, &tc);
        vae_view(r, &h, &th);
        vae_view(r, sum, &ts);
        TRY(r->be->iface->add(r->be, &tc, &th, &ts, r->err));
    }
    vae_settle(r, base, sum);
    *x = *sum;
    return INFVSR_OK;
}

/* Per frame: tokens [HW, C] of norm(x), q/k/v 1x1 convs, single-head softmax attention
 * (head dim C), 1x1 projection, added to x in place. */
static enum infvsr_status attention_forward(struct vae_run * r, const struct vae_attention * l, struct vae_act * x) {
    size_t base = x->off;
    int c = x->c, hw = x->h * x->w;
    struct vae_act n, tok, q, k, v, o;
    TRY(vae_alloc(r, &n, x->c, x->t, x->h, x->w));
    TRY(vae_alloc(r, &tok, 1, 1, hw, c));
    TRY(vae_alloc(r, &q, 1, 1, hw, c));
    TRY(vae_alloc(r, &k, 1, 1, hw, c));
    TRY(vae_alloc(r, &v, 1, 1, hw, c));
    TRY(vae_alloc(r, &o, 1, 1, hw, c));
    if (!r->dry) {
        const struct infvsr_backend_i * be = r->be->iface;
        struct infvsr_tensor tx, tn, ttok, tq, tk, tv, to;
        vae_view(r, x, &tx);
        vae_view(r, &n, &tn);
        TRY(be->channel_rms_norm(r->be, &tx, &l->gamma, &tn, r->err));
        int64_t s2[2] = { hw, c };
        infvsr_tensor_view(&ttok, NULL, INFVSR_TYPE_F32, 2, s2, vae_ptr(r, &tok));
        infvsr_tensor_view(&tq, NULL, INFVSR_TYPE_F32, 2, s2, vae_ptr(r, &q));
        infvsr_tensor_view(&tk, NULL, INFVSR_TYPE_F32, 2, s2, vae_ptr(r, &k));
        infvsr_tensor_view(&tv, NULL, INFVSR_TYPE_F32, 2, s2, vae_ptr(r, &v));
        infvsr_tensor_view(&to, NULL, INFVSR_TYPE_F32, 2, s2, vae_ptr(r, &o));
        float * xs = vae_ptr(r, x), * ns = vae_ptr(r, &n), * ts = vae_ptr(r, &tok);
        for (int t = 0; t < x->t; t++) {
            for (int ch = 0; ch < c; ch++) {
                const float * src = ns + ((size_t)ch * x->t + t) * hw;
                for (int p = 0; p < hw; p++) ts[(size_t)p * c + ch] = src[p];
            }
            TRY(be->linear(r->be, &ttok, &l->wq, &l->bq, INFVSR_UNARY_COUNT, &tq, r->err));
            TRY(be->linear(r->be, &ttok, &l->wk, &l->bk, INFVSR_UNARY_COUNT, &tk, r->err));
            TRY(be->linear(r->be, &ttok, &l->wv, &l->bv, INFVSR_UNARY_COUNT, &tv, r->err));
            struct infvsr_attn_args aa = {
                .q = &tq, .k0 = &tk, .v0 = &tv, .n_heads = 1, .scale = 1.0f / sqrtf((float)c), .out = &to,
            };
            TRY(be->attention(r->be, &aa, r->err));
            TRY(be->linear(r->be, &to, &l->wproj, &l->bproj, INFVSR_UNARY_COUNT, &ttok, r->err));
            for (int ch = 0; ch < c; ch++) {
                float * dst = xs + ((size_t)ch * x->t + t) * hw;
                for (int p = 0; p < hw; p++) dst[p] += ts[(size_t)p * c + ch];
            }
        }
    }
    vae_settle(r, base, x);
    return INFVSR_OK;
}

/* Per frame: zero-pad right/bottom by 1, 3x3 conv with stride 2. */
static enum infvsr_status down_spatial(struct vae_run * r, const struct vae_resample * l, struct vae_act * x) {
    size_t base = x->off;
    struct vae_act y;
    TRY(vae_conv_plain(r, &l->spatial, x, 1, 2, 0, 1, 0, 1, &y));
    vae_settle(r, base, &y);
    *x = y;
    return INFVSR_OK;
}

/* Time conv (3,1,1) stride 2 over [last cached frame | x]; the stream's first call only
 * stores its last frame and passes through. */
static enum infvsr_status down_time(struct vae_run * r, const struct vae_resample * l, struct vae_act * x) {
    int     slot = l->time.slot;
    size_t  base = x->off, hw = (size_t)x->h * (size_t)x->w;
    bool    started = r->started[slot] != 0;
    if (!started) {
        if (!r->dry) {
            float * cache = r->cache[slot];
            for (int ch = 0; ch < x->c; ch++) {
                memcpy(cache + ch * hw, vae_ptr(r, x) + ((size_t)ch * x->t + x->t - 1) * hw, hw * sizeof(float));
            }
        }
        r->started[slot] = 1;
        return INFVSR_OK;
    }
    struct vae_act xin, y;
    TRY(vae_alloc(r, &xin, x->c, x->t + 1, x->h, x->w));
    if (!r->dry) {
        float * cache = r->cache[slot], * xi = vae_ptr(r, &xin), * xs = vae_ptr(r, x);
        for (int ch = 0; ch < x->c; ch++) {
            float * d = xi + (size_t)ch * xin.t * hw;
            memcpy(d, cache + ch * hw, hw * sizeof(float));
            memcpy(d + hw, xs + (size_t)ch * x->t * hw, (size_t)x->t * hw * sizeof(float));
            memcpy(cache + ch * hw, xs + ((size_t)ch * x->t + x->t - 1) * hw, hw * sizeof(float));
        }
    }
    TRY(vae_conv_plain(r, &l->time, &xin, 2, 1, 0, 0, 0, 0, &y));
    vae_settle(r, base, &y);
    *x = y;
    return INFVSR_OK;
}

/* Per frame: nearest x2 (pixel replication), then 3x3 conv (padding 1) halving channels. */
static enum infvsr_status up_spatial(struct vae_run * r, const struct vae_resample * l, struct vae_act * x) {
    size_t base = x->off;
    struct vae_act u, y;
    TRY(vae_alloc(r, &u, x->c, x->t, 2 * x->h, 2 * x->w));
    if (!r->dry) {
        struct infvsr_tensor tx, tu;
        int64_t sx[3] = { (int64_t)x->c * x->t, x->h, x->w }, su[3] = { sx[0], 2 * x->h, 2 * x->w };
        infvsr_tensor_view(&tx, NULL, INFVSR_TYPE_F32, 3, sx, vae_ptr(r, x));
        infvsr_tensor_view(&tu, NULL, INFVSR_TYPE_F32, 3, su, vae_ptr(r, &u));
        TRY(r->be->iface->resize(r->be, INFVSR_RESIZE_NEAREST, &tx, &tu, r->err));
    }
    TRY(vae_conv_plain(r, &l->spatial, &u, 1, 1, 1, 1, 1, 1, &y));
    vae_settle(r, base, &y);
    *x = y;
    return INFVSR_OK;
}

/* Time conv (3,1,1) to 2C channels over the stream without its first frame (the first call
 * is the "Rep" pass-through), channel halves interleaved as two frames each. */
static enum infvsr_status up_time(struct vae_run * r, const struct vae_resample * l, struct vae_act * x) {
    int slot = l->time.slot;
    if (!r->started[slot]) {
        r->started[slot] = 1;
        return INFVSR_OK;
    }
    size_t base = x->off, hw = (size_t)x->h * (size_t)x->w;
    struct vae_act y, u;
    int c = x->c;
    TRY(vae_conv_cached(r, &l->time, x, &y));
    TRY(vae_alloc(r, &u, c, 2 * y.t, y.h, y.w));
    if (!r->dry) {
        const float * ys = vae_ptr(r, &y);
        float *       us = vae_ptr(r, &u);
        for (int half = 0; half < 2; half++) {
            for (int ch = 0; ch < c; ch++) {
                for (int t = 0; t < y.t; t++) {
                    memcpy(us + ((size_t)ch * u.t + 2 * t + half) * hw,
                           ys + ((size_t)(half * c + ch) * y.t + t) * hw, hw * sizeof(float));
                }
            }
        }
    }
    vae_settle(r, base, &u);
    *x = u;
    return INFVSR_OK;
}

enum infvsr_status vae_layer_forward(struct vae_run * r, const struct vae_layer * l, struct vae_act * x) {
    switch (l->kind) {
    case VAE_LAYER_RESIDUAL:  return residual_forward(r, &l->u.res, x);
    case VAE_LAYER_ATTENTION: return attention_forward(r, &l->u.attn, x);
    case VAE_LAYER_DOWN2D:    return down_spatial(r, &l->u.rs, x);
    case VAE_LAYER_DOWN3D:
        TRY(down_spatial(r, &l->u.rs, x));
        return down_time(r, &l->u.rs, x);
    case VAE_LAYER_UP2D:      return up_spatial(r, &l->u.rs, x);
    case VAE_LAYER_UP3D:
        TRY(up_time(r, &l->u.rs, x));
        return up_spatial(r, &l->u.rs, x);
    }
    return infvsr_err_set(r->err, INFVSR_ERR_INVALID_ARG, "vae: unknown layer kind %d", (int)l->kind);
}

enum infvsr_status vae_coder_forward(struct vae_run * r, const struct vae_coder * c, struct vae_act * x) {
    size_t base = x->off;
    struct vae_act y;
    TRY(vae_conv_cached(r, &c->conv1, x, &y));
    vae_settle(r, base, &y);
    for (int i = 0; i < c->n_layers; i++) {
        TRY(vae_check_abort(r, c->layers[i].name));
        TRY(vae_layer_forward(r, &c->layers[i], &y));
    }
    TRY(vae_norm_silu(r, &c->head_gamma, &y, &y));
    struct vae_act z;
    TRY(vae_conv_cached(r, &c->head, &y, &z));
    vae_settle(r, base, &z);
    *x = z;
    return INFVSR_OK;
}
