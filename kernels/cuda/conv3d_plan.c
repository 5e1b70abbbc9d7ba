/* Host-only decisions of the CUDA conv3d: argument checks, path selection, plan cache
 * (conv3d_plan.h). Plain C, compiled in every build so that tests/cuda/test_conv3d_plan.c
 * runs in CI without nvcc or a GPU. */
#include "conv3d_plan.h"

#include <stdlib.h>
#include <string.h>

static bool is_act(enum infvsr_dtype d) {
    return d == INFVSR_TYPE_F32 || d == INFVSR_TYPE_BF16;
}
static bool is_weight(enum infvsr_dtype d) {
    return d == INFVSR_TYPE_F32 || d == INFVSR_TYPE_BF16 || d == INFVSR_TYPE_F16;
}

enum infvsr_status infvsr_conv3d_geom_check(const struct infvsr_conv3d_args * a, struct infvsr_conv3d_geom * g,
                                            struct infvsr_err * err) {
    if (!a) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "conv3d: args is NULL");
    if (!a->x || !a->w || !a->y) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "conv3d: x, w and y are required");
    const struct infvsr_tensor * x = a->x, * w = a->w, * y = a->y;
    if (!is_act(x->dtype) || !is_act(y->dtype) || !is_weight(w->dtype) || (a->b && !is_weight(a->b->dtype)))
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "conv3d: dtypes x %s, w %s, y %s: activations must be "
                              "f32 or bf16, weights f32, bf16 or f16", infvsr_dtype_name(x->dtype),
                              infvsr_dtype_name(w->dtype), infvsr_dtype_name(y->dtype));
    if (x->ndim != 4 || w->ndim != 5 || y->ndim != 4)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "conv3d: expected x [Cin,T,H,W], w [Cout,Cin,kt,kh,kw], "
                              "y [Cout,To,Ho,Wo]; got ranks %d, %d, %d", x->ndim, w->ndim, y->ndim);
    if (a->stride_t <= 0 || a->stride_h <= 0 || a->stride_w <= 0 || a->pad_top < 0 || a->pad_bottom < 0 ||
        a->pad_left < 0 || a->pad_right < 0)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "conv3d: strides must be > 0 and pads >= 0");
    memset(g, 0, sizeof *g);
    g->cin = x->shape[0]; g->t = x->shape[1]; g->h = x->shape[2]; g->w = x->shape[3];
    g->cout = w->shape[0]; g->kt = w->shape[2]; g->kh = w->shape[3]; g->kw = w->shape[4];
    g->st = a->stride_t; g->sh = a->stride_h; g->sw = a->stride_w;
    g->pt = a->pad_top; g->pb = a->pad_bottom; g->pl = a->pad_left; g->pr = a->pad_right;
    g->x_dtype = x->dtype; g->w_dtype = w->dtype; g->y_dtype = y->dtype;
    for (int i = 0; i < 4; i++)
        if (x->shape[i] < 0 || y->shape[i] < 0)
            return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "conv3d: negative dimension");
    if (w->shape[1] != g->cin)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "conv3d: w in-channels %lld != x channels %lld",
                              (long long)w->shape[1], (long long)g->cin);
    /* pads and strides are int, shapes int64: no overflow in these sums */
    const int64_t hp = g->h + a->pad_top + a->pad_bottom, wp = g->w + a->pad_left + a->pad_right;
    if (g->cout < 0 || g->kt < 1 || g->kh < 1 || g->kw < 1 || g->t < g->kt || hp < g->kh || wp < g->kw)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "conv3d: kernel [%lld, %lld, %lld] larger than the "
                              "padded input [%lld, %lld, %lld]", (long long)g->kt, (long long)g->kh,
                              (long long)g->kw, (long long)g->t, (long long)hp, (long long)wp);
    g->to = (g->t - g->kt) / g->st + 1;
    g->ho = (hp - g->kh) / g->sh + 1;
    g->wo = (wp - g->kw) / g->sw + 1;
    if (y->shape[0] != g->cout || y->shape[1] != g->to || y->shape[2] != g->ho || y->shape[3] != g->wo)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "conv3d: y must be [%lld, %lld, %lld, %lld], is "
                              "[%lld, %lld, %lld, %lld]", (long long)g->cout, (long long)g->to, (long long)g->ho,
                              (long long)g->wo, (long long)y->shape[0], (long long)y->shape[1],
                              (long long)y->shape[2], (long long)y->shape[3]);
    if (a->b) {
        if (infvsr_tensor_numel(a->b) != g->cout)
            return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "conv3d: b has %lld elements, expected %lld",
                                  (long long)infvsr_tensor_numel(a->b), (long long)g->cout);
        g->has_bias = true;
        g->b_dtype  = a->b->dtype;
    }
    if (x->dtype == INFVSR_TYPE_F32 && y->dtype != INFVSR_TYPE_F32)
        return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "conv3d: f32 input with %s output is not supported",
                              infvsr_dtype_name(y->dtype));
    if (x->data && x->data == y->data)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "conv3d: y must not alias x");
    /* Each factor is below 2^31 after the checks below, so the products are exact. */
    if (g->cin > INT32_MAX || g->kt > INT32_MAX || g->kh > INT32_MAX || g->kw > INT32_MAX || g->to > INT32_MAX ||
        g->ho > INT32_MAX || g->wo > INT32_MAX || g->cout > INT32_MAX)
        return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "conv3d: GEMM dims beyond 2^31");
    g->kc        = g->cin * g->kt * g->kh * g->kw;
    g->positions = g->to * g->ho * g->wo;
    if (g->kc > INT32_MAX || g->positions > INT32_MAX)
        return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "conv3d: GEMM dims beyond 2^31");
    return INFVSR_OK;
}

const char * infvsr_conv3d_path_name(enum infvsr_conv3d_path p) {
    switch (p) {
    case INFVSR_CONV3D_PATH_IM2COL:   return "im2col";
    case INFVSR_CONV3D_PATH_IMPLICIT: return "implicit";
    case INFVSR_CONV3D_PATH_CUDNN:    return "cudnn";
    }
    return "?";
}

static bool elems_ok(int64_t a, int64_t b, int64_t c, int64_t d, int64_t e) {
    /* product < 2^31 with every factor >= 0; checked step by step against overflow */
    const int64_t f[5] = { a, b, c, d, e };
    int64_t       n = 1;
    for (int i = 0; i < 5; i++) {
        if (f[i] < 0) return false;
        if (f[i] == 0) return true;
        if (n > (INFVSR_CONV3D_CUDNN_MAX_ELEMS - 1) / f[i]) return false;
        n *= f[i];
    }
    return true;
}

bool infvsr_conv3d_cudnn_accepts(const struct infvsr_conv3d_geom * g, uintptr_t x, uintptr_t w, uintptr_t b,
                                 uintptr_t y, const char ** why) {
    const char * r = NULL;
    if (!is_act(g->x_dtype) || !is_act(g->y_dtype)) r = "activation dtype";
    else if (g->x_dtype == INFVSR_TYPE_F32 && g->y_dtype != INFVSR_TYPE_F32) r = "f32 input with a narrower output";
    else if (!is_weight(g->w_dtype) || (g->has_bias && !is_weight(g->b_dtype))) r = "weight dtype";
    else if (g->positions == 0 || g->cout == 0 || g->cin == 0) r = "empty tensor";
    else if (!elems_ok(g->cin, g->t, g->h, g->w, 1) || !elems_ok(g->cout, g->cin, g->kt, g->kh, g->kw) ||
             !elems_ok(g->cout, g->to, g->ho, g->wo, 1))
        r = "a tensor of 2^31 elements or more";
    else if (x % INFVSR_CONV3D_CUDNN_ALIGN || w % INFVSR_CONV3D_CUDNN_ALIGN || b % INFVSR_CONV3D_CUDNN_ALIGN ||
             y % INFVSR_CONV3D_CUDNN_ALIGN)
        r = "a data pointer not 16-byte aligned";
    if (why) *why = r;
    return r == NULL;
}

bool infvsr_conv3d_cudnn_engine_ok(enum infvsr_dtype x_dtype, const struct infvsr_conv3d_engine_notes * n) {
    if (n->reduced_reduction || n->nondeterministic) return false;
    if (x_dtype == INFVSR_TYPE_F32 && (n->tensor_core || n->down_convert)) return false;
    return true;
}

enum infvsr_conv3d_path infvsr_conv3d_select(enum infvsr_cuda_conv_kernel requested, const struct infvsr_conv3d_geom * g,
                                             bool cudnn_ready, bool cudnn_accepts, bool cudnn_refused) {
    switch (requested) {
    case INFVSR_CUDA_CONV_IM2COL:
        return INFVSR_CONV3D_PATH_IM2COL;
    case INFVSR_CUDA_CONV_IMPLICIT:
        return g->x_dtype == INFVSR_TYPE_BF16 ? INFVSR_CONV3D_PATH_IMPLICIT : INFVSR_CONV3D_PATH_IM2COL;
    case INFVSR_CUDA_CONV_AUTO:
    case INFVSR_CUDA_CONV_CUDNN:
    default:
        return cudnn_ready && cudnn_accepts && !cudnn_refused ? INFVSR_CONV3D_PATH_CUDNN : INFVSR_CONV3D_PATH_IM2COL;
    }
}

/* ---- plan cache ---- */

void infvsr_conv3d_plan_key_make(const struct infvsr_conv3d_geom * g, struct infvsr_conv3d_plan_key * k) {
    /* w's and b's dtypes are not in the key: the cuDNN path converts w to x's dtype and
     * b to f32 before the plan sees them. */
    const int64_t v[INFVSR_CONV3D_KEY_LEN] = {
        g->cin, g->t, g->h, g->w, g->cout, g->kt, g->kh, g->kw, g->st, g->sh,
        g->sw,  g->pt, g->pb, g->pl, g->pr, (int64_t)g->x_dtype, (int64_t)g->y_dtype, g->has_bias ? 1 : 0,
    };
    memcpy(k->v, v, sizeof v);
}

bool infvsr_conv3d_plan_cache_init(struct infvsr_conv3d_plan_cache * c, int cap,
                                   void (*destroy)(void * payload, void * ud), void * ud) {
    memset(c, 0, sizeof *c);
    if (cap < 1) cap = 1;
    c->e = calloc((size_t)cap, sizeof *c->e);
    if (!c->e) return false;
    c->cap     = cap;
    c->destroy = destroy;
    c->ud      = ud;
    return true;
}

void infvsr_conv3d_plan_cache_free(struct infvsr_conv3d_plan_cache * c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++)
        if (c->e[i].payload && c->destroy) c->destroy(c->e[i].payload, c->ud);
    free(c->e);
    memset(c, 0, sizeof *c);
}

static int find(const struct infvsr_conv3d_plan_cache * c, const struct infvsr_conv3d_plan_key * k) {
    for (int i = 0; i < c->n; i++)
        if (memcmp(c->e[i].key.v, k->v, sizeof k->v) == 0) return i;
    return -1;
}

void * infvsr_conv3d_plan_cache_get(struct infvsr_conv3d_plan_cache * c, const struct infvsr_conv3d_plan_key * k,
                                    bool * found) {
    const int i = c->e ? find(c, k) : -1;
    if (i < 0) {
        c->misses++;
        *found = false;
        return NULL;
    }
    c->hits++;
    c->e[i].last_use = ++c->tick;
    *found = true;
    return c->e[i].payload;
}

void infvsr_conv3d_plan_cache_put(struct infvsr_conv3d_plan_cache * c, const struct infvsr_conv3d_plan_key * k,
                                  void * payload) {
    if (!c->e) { /* never initialised (out of memory at init): nothing is cached */
        if (payload && c->destroy) c->destroy(payload, c->ud);
        return;
    }
    int i = find(c, k);
    if (i >= 0) {
        if (c->e[i].payload && c->e[i].payload != payload && c->destroy) c->destroy(c->e[i].payload, c->ud);
    } else if (c->n < c->cap) {
        i = c->n++;
    } else {
        i = 0;
        for (int j = 1; j < c->n; j++)
            if (c->e[j].last_use < c->e[i].last_use) i = j;
        if (c->e[i].payload && c->destroy) c->destroy(c->e[i].payload, c->ud);
        c->evictions++;
    }
    c->e[i].key      = *k;
    c->e[i].payload  = payload;
    c->e[i].last_use = ++c->tick;
}
