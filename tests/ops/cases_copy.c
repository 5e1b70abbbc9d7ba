/* Op cases: the strided copy family (backend_impl.h, "The strided copy family"), each
 * checked bit-exactly against copy_naive() below, a loop written from the contract with
 * conversions of its own (bf16 rounding by hand, f16 through the compiler's _Float16):
 *
 *   SET: every conversion between f32/bf16/f16 (ties, subnormals, overflow to inf),
 *        same-dtype byte copies (f64, i32, u8, and float dtypes holding raw bit patterns
 *        that a converting copy would change), transposes, the DiT patchify/unpatchify
 *        6-D views, crops, stride-0 broadcasts of x, overlapping dense memmoves in both
 *        directions (short and long relative to the gap), extent-1 dims with odd strides,
 *        and tensors large enough to be split across threads
 *   ACCUMULATE with and without mask and alpha (mask broadcast), in place; DIVIDE (in
 *   place too); U8_TO_MODEL and U8_TO_UNIT over every byte value; MODEL_TO_U8 with NaN,
 *   infinities, out-of-range and truncation edges; FILL (f64 too) over sub-boxes; the
 *   helpers infvsr_op_copy_range / _convert / _fill
 *   refused: overlaps that are neither in place nor a dense memmove, views that reach
 *   past their tensor (by one element), negative offsets/strides/extents, stride overflow,
 *   stride 0 in y, dtypes a mode does not take, missing x or m, a bad mode or ndim. */
#include <math.h>

#include "backend_ops.h"

#define MD INFVSR_COPY_MAX_DIMS

enum cp_values {
    V_RANGE,   /* uniform [lo, hi] (integers for i32/u8)                                  */
    V_RAW,     /* random bytes: float dtypes get NaN payloads, denormals, anything          */
    V_CONVERT, /* conversion edges (ties, subnormals, overflow) and a wide exponent range  */
    V_MODEL,   /* MODEL_TO_U8 edges: NaN, +-inf, +-1 and around, truncation boundaries     */
};

struct cp_slot {
    enum infvsr_dtype dt;
    int64_t           n;
    enum cp_values    vals;
    float             lo, hi;
};

struct cp_operand {
    int               slot;      /* -1: NULL                                               */
    bool              view;      /* a tensor struct of its own over the slot's storage      */
    enum infvsr_dtype vdt;
    int64_t           vbyte, vn; /* view: byte offset into the slot, elements              */
    int64_t           off, st[MD];
};

enum cp_helper { H_NONE, H_RANGE, H_CONVERT, H_FILL };

struct copy_p {
    const char *      label;
    int               mode, ndim;
    int64_t           ext[MD];
    int               n_slots;
    struct cp_slot    s[3];
    struct cp_operand x, m, y;
    float             alpha;
    enum cp_helper    helper;
};

/* ---- the naive reference ---- */

static float h_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Round to nearest, ties to even, on the bits: keep the top 16, look at the rest. */
static uint16_t h_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if (isnan(f)) return (uint16_t)((u >> 16) | 0x40u); /* the contract leaves NaN bits open */
    uint32_t r = u >> 16, rest = u & 0xffffu;
    if (rest > 0x8000u || (rest == 0x8000u && (r & 1u))) r++; /* carries into the exponent; max -> inf */
    return (uint16_t)r;
}

static float h_ld(const unsigned char * p, enum infvsr_dtype d, int64_t i) {
    switch (d) {
    case INFVSR_TYPE_F32: { float f; memcpy(&f, p + 4 * i, 4); return f; }
    case INFVSR_TYPE_BF16: { uint16_t h; memcpy(&h, p + 2 * i, 2); return h_bf16_to_f32(h); }
    case INFVSR_TYPE_F16: { _Float16 h; memcpy(&h, p + 2 * i, 2); return (float)h; }
    case INFVSR_TYPE_U8: return (float)p[i];
    default: INFVSR_ASSERT(!"copy_naive: bad load dtype"); return 0;
    }
}

static void h_st(unsigned char * p, enum infvsr_dtype d, int64_t i, float v) {
    switch (d) {
    case INFVSR_TYPE_F32: memcpy(p + 4 * i, &v, 4); break;
    case INFVSR_TYPE_BF16: { uint16_t h = h_f32_to_bf16(v); memcpy(p + 2 * i, &h, 2); break; }
    case INFVSR_TYPE_F16: { _Float16 h = (_Float16)v; memcpy(p + 2 * i, &h, 2); break; }
    default: INFVSR_ASSERT(!"copy_naive: bad store dtype");
    }
}

static enum infvsr_dtype op_dtype(const struct copy_p * p, const struct cp_operand * o) {
    return o->view ? o->vdt : p->s[o->slot].dt;
}

/* y = f(x, m, y) element by element in row-major order of the extent. Reads come from the
 * initial contents (a snapshot: what memmove semantics and element-wise in place mean),
 * writes go to the expected contents. */
static void copy_naive(const struct bo_case * k, struct bo_host * h) {
    const struct copy_p * p = BO_P(k, struct copy_p);
    int64_t n = 1;
    for (int d = 0; d < p->ndim; d++) n *= p->ext[d];
    if (n == 0) return;
    const enum infvsr_dtype yd = op_dtype(p, &p->y);
    const enum infvsr_dtype xd = p->x.slot >= 0 ? op_dtype(p, &p->x) : INFVSR_TYPE_F32;
    const enum infvsr_dtype md = p->m.slot >= 0 ? op_dtype(p, &p->m) : INFVSR_TYPE_F32;
    const unsigned char * x = p->x.slot >= 0 ? h->init[p->x.slot] + p->x.vbyte : NULL;
    const unsigned char * m = p->m.slot >= 0 ? h->init[p->m.slot] + p->m.vbyte : NULL;
    const unsigned char * y0 = h->init[p->y.slot] + p->y.vbyte;
    unsigned char *       y = h->expect[p->y.slot] + p->y.vbyte;
    const bool            use_m = m && (p->mode == INFVSR_COPY_ACCUMULATE || p->mode == INFVSR_COPY_DIVIDE);
    const size_t          es = infvsr_dtype_size(yd);
    int64_t               idx[MD] = { 0 };
    for (int64_t e = 0; e < n; e++) {
        int64_t xo = p->x.off, mo = p->m.off, yo = p->y.off;
        for (int d = 0; d < p->ndim; d++) xo += idx[d] * p->x.st[d], mo += idx[d] * p->m.st[d], yo += idx[d] * p->y.st[d];
        float v;
        switch (p->mode) {
        case INFVSR_COPY_SET:
            if (xd == yd) memcpy(y + (size_t)yo * es, x + (size_t)xo * es, es);
            else h_st(y, yd, yo, h_ld(x, xd, xo));
            break;
        case INFVSR_COPY_ACCUMULATE:
            v = p->alpha * h_ld(x, xd, xo);
            if (use_m) v = v * h_ld(m, md, mo);
            h_st(y, yd, yo, h_ld(y0, yd, yo) + v);
            break;
        case INFVSR_COPY_DIVIDE:
            h_st(y, yd, yo, h_ld(x, xd, xo) / h_ld(m, md, mo));
            break;
        case INFVSR_COPY_U8_TO_MODEL:
        case INFVSR_COPY_U8_TO_UNIT:
            v = (float)x[xo] / 255.0f;
            v = v * 2.0f;
            v = v - 1.0f;
            if (p->mode == INFVSR_COPY_U8_TO_UNIT) {
                v = v / 2.0f;
                v = v + 0.5f;
            }
            h_st(y, yd, yo, v);
            break;
        case INFVSR_COPY_MODEL_TO_U8:
            v = (h_ld(x, xd, xo) + 1.0f) * 127.5f;
            if (!(v >= 0.0f)) v = 0.0f; /* NaN too */
            if (v > 255.0f) v = 255.0f;
            y[yo] = (unsigned char)(int)truncf(v);
            break;
        case INFVSR_COPY_FILL:
            if (yd == INFVSR_TYPE_F64) {
                double dv = (double)p->alpha;
                memcpy(y + (size_t)yo * 8, &dv, 8);
            } else {
                h_st(y, yd, yo, p->alpha);
            }
            break;
        default:
            INFVSR_ASSERT(!"copy_naive: bad mode");
        }
        for (int d = p->ndim - 1; d >= 0; d--) { /* next index, last dim fastest */
            if (++idx[d] < p->ext[d]) break;
            idx[d] = 0;
        }
    }
}

/* ---- running a case ---- */

static void model_edges(float * v, size_t n, struct bo_ctx * c) {
    static const float edge[] = { NAN, -NAN, INFINITY, -INFINITY, -1.0f, 1.0f, 0.0f, -0.0f, -1.0000001f, 1.0000001f,
                                  -0.99999994f, 0.99999994f, -2.0f, 2.0f, 3e38f, -3e38f, 1e-40f,
                                  /* (x + 1) * 127.5 lands on or just below an integer: truncation */
                                  (2.0f / 255.0f) - 1.0f, (128.0f / 127.5f) - 1.0f, 0.003921569f, -0.99607843f };
    const size_t ne = sizeof edge / sizeof edge[0];
    for (size_t i = 0; i < n; i++) {
        double u = (double)(bo_rand(c) >> 11) * (1.0 / 9007199254740992.0);
        v[i] = i < ne ? edge[i] : (float)(-1.2 + 2.4 * u);
    }
}

static void convert_edges(float * v, size_t n, struct bo_ctx * c) {
    static const float edge[] = {
        0.0f, -0.0f, 1.0f, -1.0f, INFINITY, -INFINITY, 3.0e38f, -3.4e38f, 65504.0f, 65519.99f, 65520.0f, -65520.0f,
        1e5f, 6e-8f, 2.98e-8f, 5.96e-8f, 3e-5f, 6.1e-5f, 1e-40f, -1e-40f, 1.17549435e-38f,
        1.00390625f,                 /* 1 + 2^-8: a bf16 tie, rounds to even (1)            */
        1.01171875f,                 /* 1 + 3 * 2^-8: a bf16 tie, rounds to even (up)      */
        1.00048828125f,              /* 1 + 2^-11: an f16 tie                              */
        1.00146484375f,              /* 1 + 3 * 2^-11: an f16 tie, up                      */
        3.3895314e38f,               /* bf16 rounds up to inf                              */
    };
    const size_t ne = sizeof edge / sizeof edge[0];
    for (size_t i = 0; i < n; i++) {
        if (i < ne) { v[i] = edge[i]; continue; }
        uint64_t r = bo_rand(c);
        double mant = 1.0 + (double)(r >> 40) / (double)(1ull << 24);
        int    e = (int)((r >> 8) % 64) - 40; /* 2^-40 .. 2^23: f16 subnormals to overflow */
        v[i] = (float)ldexp((r & 1) ? -mant : mant, e);
    }
}

static struct infvsr_tensor * make_slot(struct bo_ctx * c, const struct cp_slot * s, const char * name) {
    const size_t n = (size_t)s->n;
    if (s->vals == V_RANGE) return bo_in(c, name, s->dt, 1, S1(s->n), s->lo, s->hi);
    if (s->vals == V_RAW) {
        size_t nb = n * infvsr_dtype_size(s->dt);
        unsigned char * b = malloc(nb ? nb : 1);
        for (size_t i = 0; i < nb; i++) b[i] = (unsigned char)(bo_rand(c) >> 32);
        struct infvsr_tensor * t = bo_in_bytes(c, name, s->dt, 1, S1(s->n), b);
        free(b);
        return t;
    }
    float * v = malloc((n ? n : 1) * sizeof *v);
    if (s->vals == V_MODEL) model_edges(v, n, c);
    else convert_edges(v, n, c);
    struct infvsr_tensor * t = bo_in_f32(c, name, s->dt, 1, S1(s->n), v);
    free(v);
    return t;
}

static const struct infvsr_tensor * operand(struct bo_ctx * c, struct infvsr_tensor ** slots, const struct cp_operand * o,
                                            const char * name) {
    if (o->slot < 0) return NULL;
    if (!o->view) return slots[o->slot];
    return bo_view(c, slots[o->slot], name, o->vdt, 1, S1(o->vn), o->vbyte);
}

static void set_view(struct infvsr_copy_args * a, const struct copy_p * p, const struct cp_operand * o, int64_t * off,
                     int64_t * st) {
    *off = o->off;
    for (int d = 0; d < p->ndim && d < MD; d++) st[d] = o->st[d];
}

static enum infvsr_status run_copy(struct bo_ctx * c, const struct bo_case * k) {
    const struct copy_p * p = BO_P(k, struct copy_p);
    static const char * names[] = { "s0", "s1", "s2" };
    struct infvsr_tensor * slots[3] = { 0 };
    for (int s = 0; s < p->n_slots; s++) {
        slots[s] = make_slot(c, &p->s[s], names[s]);
        if (slots[s] && s == p->y.slot) bo_make_out(c, slots[s]);
    }
    BO_SETUP_DONE(c);
    const struct infvsr_tensor * x = operand(c, slots, &p->x, "x_view");
    const struct infvsr_tensor * m = operand(c, slots, &p->m, "m_view");
    struct infvsr_tensor *       y = (struct infvsr_tensor *)operand(c, slots, &p->y, "y_view");
    BO_SETUP_DONE(c);
    switch (p->helper) {
    case H_RANGE:   return infvsr_op_copy_range(c->be, x, p->x.off, y, p->y.off, p->ext[0], &c->err);
    case H_CONVERT: return infvsr_op_convert(c->be, x, y, &c->err);
    case H_FILL:    return infvsr_op_fill(c->be, y, p->alpha, &c->err);
    case H_NONE:    break;
    }
    struct infvsr_copy_args a = infvsr_copy_args_init((enum infvsr_copy_mode)p->mode, p->ndim);
    for (int d = 0; d < MD; d++) a.extent[d] = p->ext[d];
    a.x = x, a.m = m, a.y = y, a.alpha = p->alpha;
    set_view(&a, p, &p->x, &a.x_offset, a.x_stride);
    set_view(&a, p, &p->m, &a.m_offset, a.m_stride);
    set_view(&a, p, &p->y, &a.y_offset, a.y_stride);
    return infvsr_op_copy(c->be, &a, &c->err);
}

/* ---- building cases ---- */

static const char * mode_names[] = { "set", "accumulate", "divide", "u8_to_model", "u8_to_unit", "model_to_u8", "fill" };

static struct bo_case * add_copy(struct bo_list * l, const struct copy_p * p, enum bo_kind kind) {
    struct bo_case * k = bo_add(l, "copy", kind, run_copy, p, sizeof *p);
    char ext[96] = "";
    size_t n = 0;
    for (int d = 0; d < p->ndim && d < MD; d++) n += (size_t)snprintf(ext + n, sizeof ext - n, "%s%lld", d ? "," : "", (long long)p->ext[d]);
    bo_desc(k, "%s: %s [%s] x:%s%s y:%s%s%s", p->label, (unsigned)p->mode < 7 ? mode_names[p->mode] : "(bad mode)", ext,
            p->x.slot >= 0 ? infvsr_dtype_name(op_dtype(p, &p->x)) : "none", p->m.slot >= 0 ? " m" : "",
            infvsr_dtype_name(op_dtype(p, &p->y)), p->x.slot >= 0 && p->x.slot == p->y.slot ? " (same tensor)" : "",
            p->helper == H_RANGE ? " via copy_range" : p->helper == H_CONVERT ? " via convert" : p->helper == H_FILL ? " via fill" : "");
    k->host_ref = copy_naive;
    k->flags |= BO_ACT_FREE; /* dtypes are the case's own */
    return k;
}

static struct copy_p cp(const char * label, int mode, int ndim, const int64_t * ext) {
    struct copy_p p;
    memset(&p, 0, sizeof p);
    p.label = label, p.mode = mode, p.ndim = ndim, p.alpha = 1.0f;
    for (int d = 0; d < MD; d++) p.ext[d] = d < ndim ? ext[d] : 1;
    p.x.slot = p.m.slot = p.y.slot = -1;
    return p;
}

/* A new slot of n elements; returns its index. */
static int slot(struct copy_p * p, enum infvsr_dtype dt, int64_t n, enum cp_values vals, float lo, float hi) {
    INFVSR_ASSERT(p->n_slots < 3);
    p->s[p->n_slots] = (struct cp_slot){ .dt = dt, .n = n, .vals = vals, .lo = lo, .hi = hi };
    return p->n_slots++;
}

/* Operand over slot s with offset and strides (ndim of them). */
static struct cp_operand on(int s, int64_t off, const int64_t * st, int ndim) {
    struct cp_operand o = { .slot = s, .off = off };
    for (int d = 0; d < ndim; d++) o.st[d] = st[d];
    return o;
}

/* Row-major dense strides of the extent. */
static struct cp_operand dense(int s, int64_t off, const struct copy_p * p) {
    struct cp_operand o = { .slot = s, .off = off };
    int64_t acc = 1;
    for (int d = p->ndim - 1; d >= 0; d--) o.st[d] = acc, acc *= p->ext[d];
    return o;
}

static int64_t numel(const struct copy_p * p) {
    int64_t n = 1;
    for (int d = 0; d < p->ndim; d++) n *= p->ext[d];
    return n;
}

#define ST(...) ((const int64_t[]){ __VA_ARGS__ })

static const enum infvsr_dtype fdts[] = { INFVSR_TYPE_F32, INFVSR_TYPE_BF16, INFVSR_TYPE_F16 };

static void cases_set(struct bo_list * l) {
    /* every conversion, dense with offsets, then transposed */
    for (int a = 0; a < 3; a++) {
        for (int b = 0; b < 3; b++) {
            struct copy_p p = cp("convert dense", INFVSR_COPY_SET, 1, ST(1000));
            int sx = slot(&p, fdts[a], 1003, V_CONVERT, 0, 0), sy = slot(&p, fdts[b], 1010, V_RANGE, -1, 1);
            p.x = dense(sx, 3, &p), p.y = dense(sy, 5, &p);
            add_copy(l, &p, BO_HOST_REF);
            p = cp("transpose [37,29] -> [29,37]", INFVSR_COPY_SET, 2, ST(29, 37));
            sx = slot(&p, fdts[a], 37 * 29, V_CONVERT, 0, 0), sy = slot(&p, fdts[b], 37 * 29, V_RANGE, -1, 1);
            p.x = on(sx, 0, ST(1, 29), 2), p.y = dense(sy, 0, &p);
            add_copy(l, &p, BO_HOST_REF);
        }
    }
    /* same dtype: bytes as they are (raw bit patterns, NaN payloads included) */
    const enum infvsr_dtype same[] = { INFVSR_TYPE_F32, INFVSR_TYPE_BF16, INFVSR_TYPE_F16, INFVSR_TYPE_F64,
                                       INFVSR_TYPE_I32, INFVSR_TYPE_U8 };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        struct copy_p p = cp("raw bytes, every 2nd element", INFVSR_COPY_SET, 1, ST(500));
        int sx = slot(&p, same[i], 1001, V_RAW, 0, 0), sy = slot(&p, same[i], 600, V_RAW, 0, 0);
        p.x = on(sx, 1, ST(2), 1), p.y = dense(sy, 7, &p);
        add_copy(l, &p, BO_HOST_REF);
        p = cp("raw bytes, transpose [13,17] -> [17,13]", INFVSR_COPY_SET, 2, ST(17, 13));
        sx = slot(&p, same[i], 13 * 17, V_RAW, 0, 0), sy = slot(&p, same[i], 13 * 17, V_RAW, 0, 0);
        p.x = on(sx, 0, ST(1, 17), 2), p.y = dense(sy, 0, &p);
        add_copy(l, &p, BO_HOST_REF);
        p = cp("raw bytes, dense", INFVSR_COPY_SET, 2, ST(30, 41));
        sx = slot(&p, same[i], 30 * 41 + 3, V_RAW, 0, 0), sy = slot(&p, same[i], 30 * 41 + 9, V_RAW, 0, 0);
        p.x = dense(sx, 3, &p), p.y = dense(sy, 9, &p);
        add_copy(l, &p, BO_HOST_REF);
    }
    {
        /* u8 frames: crop a [2, 5, 7, 3] box at (0, 1, 2, 0) out of [2, 9, 11, 3] */
        struct copy_p p = cp("u8 crop of HWC frames", INFVSR_COPY_SET, 4, ST(2, 5, 7, 3));
        int sx = slot(&p, INFVSR_TYPE_U8, 2 * 9 * 11 * 3, V_RANGE, 0, 255), sy = slot(&p, INFVSR_TYPE_U8, 2 * 5 * 7 * 3, V_RANGE, 0, 255);
        p.x = on(sx, 1 * 11 * 3 + 2 * 3, ST(9 * 11 * 3, 11 * 3, 3, 1), 4), p.y = dense(sy, 0, &p);
        add_copy(l, &p, BO_HOST_REF);
    }
    {
        /* VAE layouts: [C, T, H, W] -> [T, H, W, C] and back, converting */
        const int64_t C = 6, T = 3, H = 5, W = 7;
        struct copy_p p = cp("permute CTHW -> THWC", INFVSR_COPY_SET, 4, ST(T, H, W, C));
        int sx = slot(&p, INFVSR_TYPE_F32, C * T * H * W, V_RANGE, -2, 2), sy = slot(&p, INFVSR_TYPE_BF16, C * T * H * W, V_RANGE, 0, 1);
        p.x = on(sx, 0, ST(H * W, W, 1, T * H * W), 4), p.y = dense(sy, 0, &p);
        add_copy(l, &p, BO_HOST_REF);
        p = cp("permute THWC -> CTHW", INFVSR_COPY_SET, 4, ST(C, T, H, W));
        sx = slot(&p, INFVSR_TYPE_BF16, C * T * H * W, V_RANGE, -2, 2), sy = slot(&p, INFVSR_TYPE_F32, C * T * H * W, V_RANGE, 0, 1);
        p.x = on(sx, 0, ST(1, H * W * C, W * C, C), 4), p.y = dense(sy, 0, &p);
        add_copy(l, &p, BO_HOST_REF);
    }
    {
        /* DiT patchify: latent x [C, F, H, W], patch (1, 2, 2) -> tokens
         * y [F, H/2, W/2, C, 2, 2]: y[f, h, w, c, i, j] = x[c, f, 2h + i, 2w + j] */
        const int64_t C = 5, F = 3, H = 6, W = 8;
        for (int conv = 0; conv < 2; conv++) {
            struct copy_p p = cp("DiT patchify (1,2,2)", INFVSR_COPY_SET, 6, ST(F, H / 2, W / 2, C, 2, 2));
            int sx = slot(&p, INFVSR_TYPE_F32, C * F * H * W, V_RANGE, -3, 3);
            int sy = slot(&p, conv ? INFVSR_TYPE_BF16 : INFVSR_TYPE_F32, C * F * H * W, V_RANGE, 0, 1);
            p.x = on(sx, 0, ST(H * W, 2 * W, 2, F * H * W, W, 1), 6), p.y = dense(sy, 0, &p);
            add_copy(l, &p, BO_HOST_REF);
            /* unpatchify: tokens x [F, H/2, W/2, C, 2, 2] -> y [C, F, H, W], walked in y's
             * order as (C, F, H/2, 2, W/2, 2) */
            p = cp("DiT unpatchify (1,2,2)", INFVSR_COPY_SET, 6, ST(C, F, H / 2, 2, W / 2, 2));
            sx = slot(&p, conv ? INFVSR_TYPE_BF16 : INFVSR_TYPE_F32, C * F * H * W, V_RANGE, -3, 3);
            sy = slot(&p, INFVSR_TYPE_F32, C * F * H * W, V_RANGE, 0, 1);
            const int64_t tok = C * 4, row = (W / 2) * tok, frame = (H / 2) * row;
            p.x = on(sx, 0, ST(4, frame, row, 2, tok, 1), 6), p.y = dense(sy, 0, &p);
            add_copy(l, &p, BO_HOST_REF);
        }
    }
    {
        /* stride 0 in x: a row broadcast over rows, a scalar over a box */
        struct copy_p p = cp("broadcast a row", INFVSR_COPY_SET, 2, ST(9, 33));
        int sx = slot(&p, INFVSR_TYPE_BF16, 40, V_RANGE, -1, 1), sy = slot(&p, INFVSR_TYPE_F32, 9 * 33, V_RANGE, 0, 1);
        p.x = on(sx, 5, ST(0, 1), 2), p.y = dense(sy, 0, &p);
        add_copy(l, &p, BO_HOST_REF);
        p = cp("broadcast a scalar into a column", INFVSR_COPY_SET, 2, ST(4, 6));
        sx = slot(&p, INFVSR_TYPE_F32, 3, V_RANGE, -1, 1), sy = slot(&p, INFVSR_TYPE_F16, 10 * 12, V_RANGE, 0, 1);
        p.x = on(sx, 2, ST(0, 0), 2), p.y = on(sy, 13, ST(24, 2), 2); /* every 2nd column of rows 1, 3, 5, 7 */
        add_copy(l, &p, BO_HOST_REF);
    }
    {
        /* extent-1 dims with arbitrary strides, a column copy, the view ending exactly at
         * the tensor's last element */
        struct copy_p p = cp("extent-1 dims, odd strides", INFVSR_COPY_SET, 5, ST(1, 4, 1, 5, 1));
        int sx = slot(&p, INFVSR_TYPE_F32, 20, V_RANGE, -1, 1), sy = slot(&p, INFVSR_TYPE_F32, 20, V_RANGE, 0, 1);
        p.x = on(sx, 0, ST(1000, 5, 77, 1, 3), 5), p.y = on(sy, 0, ST(999, 5, 1, 1, 12345), 5);
        add_copy(l, &p, BO_HOST_REF);
        p = cp("column of a matrix", INFVSR_COPY_SET, 1, ST(31));
        sx = slot(&p, INFVSR_TYPE_F32, 31 * 17, V_RANGE, -1, 1), sy = slot(&p, INFVSR_TYPE_F32, 31 * 5, V_RANGE, 0, 1);
        p.x = on(sx, 16, ST(17), 1), p.y = on(sy, 4, ST(5), 1); /* last column into last column */
        add_copy(l, &p, BO_HOST_REF);
    }
    {
        /* big enough for several CPU tasks and many CUDA blocks */
        struct copy_p p = cp("large transpose [300,1001] -> [1001,300]", INFVSR_COPY_SET, 2, ST(1001, 300));
        int sx = slot(&p, INFVSR_TYPE_F32, 300 * 1001, V_RANGE, -1, 1), sy = slot(&p, INFVSR_TYPE_BF16, 300 * 1001, V_RANGE, 0, 1);
        p.x = on(sx, 0, ST(1, 1001), 2), p.y = dense(sy, 0, &p);
        add_copy(l, &p, BO_HOST_REF);
        p = cp("large dense", INFVSR_COPY_SET, 3, ST(7, 300, 257));
        sx = slot(&p, INFVSR_TYPE_F32, numel(&p) + 1, V_RANGE, -1, 1), sy = slot(&p, INFVSR_TYPE_F32, numel(&p) + 2, V_RANGE, 0, 1);
        p.x = dense(sx, 1, &p), p.y = dense(sy, 2, &p);
        add_copy(l, &p, BO_HOST_REF);
        p = cp("long strided rows", INFVSR_COPY_SET, 2, ST(3, 70001));
        sx = slot(&p, INFVSR_TYPE_BF16, 3 * 2 * 70001, V_RANGE, -1, 1), sy = slot(&p, INFVSR_TYPE_F16, 3 * 70001, V_RANGE, 0, 1);
        p.x = on(sx, 1, ST(2 * 70001, 2), 2), p.y = dense(sy, 0, &p);
        add_copy(l, &p, BO_HOST_REF);
    }
    {
        /* nothing to do: extent 0 (even with offsets past the end) */
        struct copy_p p = cp("empty extent", INFVSR_COPY_SET, 2, ST(0, 5));
        int sx = slot(&p, INFVSR_TYPE_F32, 4, V_RANGE, -1, 1), sy = slot(&p, INFVSR_TYPE_F32, 4, V_RANGE, 0, 1);
        p.x = on(sx, 100, ST(5, 1), 2), p.y = on(sy, 100, ST(5, 1), 2);
        add_copy(l, &p, BO_HOST_REF);
    }
}

static void cases_memmove(struct bo_list * l) {
    /* Overlapping dense SETs (the VAE arena settle): y below x and above it, the overlap
     * short and long relative to the gap (CUDA: chunked copies vs a temporary), in one
     * tensor and through two views of the same storage, 1-D and 2-D dense views. */
    const struct { int64_t n, xo, yo; } mv[] = {
        { 800, 100, 0 },  /* down, gap 100: 8 gaps long        */
        { 900, 3, 0 },    /* down, gap 3: 300 gaps long         */
        { 800, 0, 100 },  /* up                                 */
        { 999, 0, 1 },    /* up by one element                  */
        { 999, 1, 0 },    /* down by one element                */
        { 400, 0, 500 },  /* same tensor, no overlap            */
        { 1000, 0, 0 },   /* onto itself                        */
    };
    for (size_t i = 0; i < sizeof mv / sizeof mv[0]; i++) {
        for (int dt = 0; dt < 2; dt++) {
            struct copy_p p = cp("memmove in one tensor", INFVSR_COPY_SET, 1, ST(mv[i].n));
            int s = slot(&p, dt ? INFVSR_TYPE_BF16 : INFVSR_TYPE_F32, 1000, V_RAW, 0, 0);
            p.x = dense(s, mv[i].xo, &p), p.y = dense(s, mv[i].yo, &p);
            add_copy(l, &p, BO_HOST_REF);
        }
    }
    {
        /* 2-D dense views [10, 80] of one tensor, y 37 elements below x */
        struct copy_p p = cp("memmove, 2-D dense views", INFVSR_COPY_SET, 2, ST(10, 80));
        int s = slot(&p, INFVSR_TYPE_F32, 1000, V_RAW, 0, 0);
        p.x = dense(s, 137, &p), p.y = dense(s, 100, &p);
        add_copy(l, &p, BO_HOST_REF);
        /* two tensor structs over one arena (different data pointers), up and down */
        for (int up = 0; up < 2; up++) {
            p = cp(up ? "memmove between two views, up" : "memmove between two views, down", INFVSR_COPY_SET, 1, ST(600));
            s = slot(&p, INFVSR_TYPE_F32, 1000, V_RAW, 0, 0);
            p.x = (struct cp_operand){ .slot = s, .view = true, .vdt = INFVSR_TYPE_F32, .vbyte = up ? 0 : 4 * 300, .vn = 700, .off = 0, .st = { 1 } };
            p.y = (struct cp_operand){ .slot = s, .view = true, .vdt = INFVSR_TYPE_F32, .vbyte = up ? 4 * 250 : 4 * 100, .vn = 750, .off = 0, .st = { 1 } };
            add_copy(l, &p, BO_HOST_REF);
        }
        /* the helper the VAE calls */
        p = cp("memmove down", INFVSR_COPY_SET, 1, ST(700));
        s = slot(&p, INFVSR_TYPE_F32, 1000, V_RAW, 0, 0);
        p.x = dense(s, 250, &p), p.y = dense(s, 20, &p), p.helper = H_RANGE;
        add_copy(l, &p, BO_HOST_REF);
    }
}

static void cases_math(struct bo_list * l) {
    /* ACCUMULATE: plain, with alpha and a mask broadcast over channels (tile blend),
     * mixed dtypes, in place, into a sub-box of a larger canvas */
    {
        struct copy_p p = cp("accumulate", INFVSR_COPY_ACCUMULATE, 2, ST(33, 47));
        int sx = slot(&p, INFVSR_TYPE_F32, 33 * 47, V_RANGE, -1, 1), sy = slot(&p, INFVSR_TYPE_F32, 33 * 47, V_RANGE, -1, 1);
        p.x = dense(sx, 0, &p), p.y = dense(sy, 0, &p);
        add_copy(l, &p, BO_HOST_REF);
        const int64_t C = 4, H = 9, W = 13;
        for (int mix = 0; mix < 2; mix++) {
            p = cp("accumulate alpha * x * mask[h, w] into a canvas box", INFVSR_COPY_ACCUMULATE, 3, ST(C, H, W));
            sx = slot(&p, mix ? INFVSR_TYPE_BF16 : INFVSR_TYPE_F32, C * H * W, V_RANGE, -2, 2);
            int sm = slot(&p, mix ? INFVSR_TYPE_F16 : INFVSR_TYPE_F32, H * W, V_RANGE, 0, 1);
            sy = slot(&p, mix ? INFVSR_TYPE_BF16 : INFVSR_TYPE_F32, C * 20 * 30, V_RANGE, -1, 1);
            p.x = dense(sx, 0, &p), p.m = on(sm, 0, ST(0, W, 1), 3), p.y = on(sy, 3 * 30 + 5, ST(20 * 30, 30, 1), 3);
            p.alpha = 0.37f;
            add_copy(l, &p, BO_HOST_REF);
        }
        p = cp("accumulate in place: y += -0.5 y", INFVSR_COPY_ACCUMULATE, 1, ST(777));
        int s = slot(&p, INFVSR_TYPE_BF16, 800, V_RANGE, -3, 3);
        p.x = dense(s, 7, &p), p.y = dense(s, 7, &p), p.alpha = -0.5f;
        add_copy(l, &p, BO_HOST_REF);
        /* dense bf16 rows (the vector loop of the avx512bf16/amx levels, copy.c
         * accumulate_bf16, and its scalar tail): f32 x with a bf16 mask, bf16 x alone */
        p = cp("accumulate dense bf16 rows, f32 x times a bf16 mask", INFVSR_COPY_ACCUMULATE, 2, ST(5, 37));
        sx = slot(&p, INFVSR_TYPE_F32, 5 * 37, V_RANGE, -2, 2);
        int sm2 = slot(&p, INFVSR_TYPE_BF16, 5 * 37, V_RANGE, 0, 1);
        sy = slot(&p, INFVSR_TYPE_BF16, 5 * 37, V_RANGE, -1, 1);
        p.x = dense(sx, 0, &p), p.m = dense(sm2, 0, &p), p.y = dense(sy, 0, &p), p.alpha = 0.37f;
        add_copy(l, &p, BO_HOST_REF);
        p = cp("accumulate dense bf16 rows, bf16 x", INFVSR_COPY_ACCUMULATE, 2, ST(3, 150));
        sx = slot(&p, INFVSR_TYPE_BF16, 3 * 150, V_RANGE, -2, 2), sy = slot(&p, INFVSR_TYPE_BF16, 3 * 150, V_RANGE, -1, 1);
        p.x = dense(sx, 0, &p), p.y = dense(sy, 0, &p), p.alpha = 1.0f;
        add_copy(l, &p, BO_HOST_REF);
        p = cp("accumulate, a row broadcast over rows", INFVSR_COPY_ACCUMULATE, 2, ST(20, 64));
        sx = slot(&p, INFVSR_TYPE_F32, 64, V_RANGE, -1, 1), sy = slot(&p, INFVSR_TYPE_F16, 20 * 64, V_RANGE, -1, 1);
        p.x = on(sx, 0, ST(0, 1), 2), p.y = dense(sy, 0, &p), p.alpha = 2.5f;
        add_copy(l, &p, BO_HOST_REF);
    }
    /* DIVIDE: normalise blended tiles by the weight sum (broadcast over channels), and in place */
    {
        const int64_t C = 3, H = 11, W = 17;
        struct copy_p p = cp("divide by weights[h, w]", INFVSR_COPY_DIVIDE, 3, ST(C, H, W));
        int sx = slot(&p, INFVSR_TYPE_F32, C * H * W, V_RANGE, -2, 2), sm = slot(&p, INFVSR_TYPE_F32, H * W, V_RANGE, 0.25f, 2);
        int sy = slot(&p, INFVSR_TYPE_BF16, C * H * W, V_RANGE, 0, 1);
        p.x = dense(sx, 0, &p), p.m = on(sm, 0, ST(0, W, 1), 3), p.y = dense(sy, 0, &p);
        add_copy(l, &p, BO_HOST_REF);
        p = cp("divide in place", INFVSR_COPY_DIVIDE, 3, ST(C, H, W));
        int s = slot(&p, INFVSR_TYPE_F32, C * H * W, V_RANGE, -2, 2);
        sm = slot(&p, INFVSR_TYPE_BF16, H * W, V_RANGE, 0.25f, 2);
        p.x = dense(s, 0, &p), p.m = on(sm, 0, ST(0, W, 1), 3), p.y = dense(s, 0, &p);
        add_copy(l, &p, BO_HOST_REF);
    }
    /* frames in: u8 [T, H, W, 3] -> [3, T, H, W] in the model range / the unit range */
    {
        const int64_t T = 2, H = 9, W = 15;
        for (int m = 0; m < 2; m++) {
            for (int d = 0; d < 3; d++) {
                struct copy_p p = cp(m ? "frames in, unit range" : "frames in, model range",
                                     m ? INFVSR_COPY_U8_TO_UNIT : INFVSR_COPY_U8_TO_MODEL, 4, ST(3, T, H, W));
                int sx = slot(&p, INFVSR_TYPE_U8, T * H * W * 3, V_RANGE, 0, 255);
                int sy = slot(&p, fdts[d], 3 * T * H * W, V_RANGE, -1, 1);
                p.x = on(sx, 0, ST(1, H * W * 3, W * 3, 3), 4), p.y = dense(sy, 0, &p);
                add_copy(l, &p, BO_HOST_REF);
            }
        }
        /* every byte value */
        struct copy_p p = cp("every byte value", INFVSR_COPY_U8_TO_MODEL, 1, ST(256));
        int sx = slot(&p, INFVSR_TYPE_U8, 4096, V_RANGE, 0, 255), sy = slot(&p, INFVSR_TYPE_F32, 256, V_RANGE, 0, 1);
        p.x = dense(sx, 0, &p), p.y = dense(sy, 0, &p);
        add_copy(l, &p, BO_HOST_REF);
    }
    /* frames out: [3, T, H, W] -> u8 [T, H, W, 3], NaN/inf/out of range/truncation edges */
    {
        const int64_t T = 2, H = 7, W = 9;
        for (int d = 0; d < 3; d++) {
            struct copy_p p = cp("frames out", INFVSR_COPY_MODEL_TO_U8, 4, ST(T, H, W, 3));
            int sx = slot(&p, fdts[d], 3 * T * H * W, V_MODEL, 0, 0), sy = slot(&p, INFVSR_TYPE_U8, T * H * W * 3, V_RANGE, 0, 255);
            p.x = on(sx, 0, ST(H * W, W, 1, T * H * W), 4), p.y = dense(sy, 0, &p);
            add_copy(l, &p, BO_HOST_REF);
        }
    }
    /* FILL: whole tensors and sub-boxes, f64 too; through the helper */
    {
        const float alphas[] = { 0.0f, -0.1f, 70000.0f };
        for (int d = 0; d < 4; d++) {
            struct copy_p p = cp("fill a box", INFVSR_COPY_FILL, 3, ST(3, 4, 5));
            int sy = slot(&p, d < 3 ? fdts[d] : INFVSR_TYPE_F64, 5 * 8 * 9, V_RANGE, -1, 1);
            p.y = on(sy, 9 + 2, ST(72, 9, 1), 3), p.alpha = alphas[d % 3];
            add_copy(l, &p, BO_HOST_REF);
            p = cp("fill", INFVSR_COPY_FILL, 1, ST(1000));
            sy = slot(&p, d < 3 ? fdts[d] : INFVSR_TYPE_F64, 1000, V_RANGE, -1, 1);
            p.y = dense(sy, 0, &p), p.alpha = alphas[(d + 1) % 3], p.helper = H_FILL;
            add_copy(l, &p, BO_HOST_REF);
        }
        struct copy_p p = cp("whole tensor", INFVSR_COPY_SET, 1, ST(1234));
        int sx = slot(&p, INFVSR_TYPE_F16, 1234, V_CONVERT, 0, 0), sy = slot(&p, INFVSR_TYPE_BF16, 1234, V_RANGE, 0, 1);
        p.x = dense(sx, 0, &p), p.y = dense(sy, 0, &p), p.helper = H_CONVERT;
        add_copy(l, &p, BO_HOST_REF);
    }
}

static void cases_refused(struct bo_list * l) {
    struct copy_p p;
    int s, sx, sy, sm;
    /* overlaps that are neither in place nor a dense memmove */
    p = cp("transpose onto itself", INFVSR_COPY_SET, 2, ST(8, 8));
    s = slot(&p, INFVSR_TYPE_F32, 64, V_RANGE, -1, 1);
    p.x = on(s, 0, ST(1, 8), 2), p.y = dense(s, 0, &p);
    add_copy(l, &p, BO_INVALID)->needle = "overlaps";
    p = cp("strided views overlapping", INFVSR_COPY_SET, 1, ST(100));
    s = slot(&p, INFVSR_TYPE_F32, 300, V_RANGE, -1, 1);
    p.x = on(s, 0, ST(2), 1), p.y = on(s, 1, ST(2), 1);
    add_copy(l, &p, BO_INVALID)->needle = "overlaps";
    p = cp("accumulate shifted onto itself", INFVSR_COPY_ACCUMULATE, 1, ST(100));
    s = slot(&p, INFVSR_TYPE_F32, 200, V_RANGE, -1, 1);
    p.x = dense(s, 1, &p), p.y = dense(s, 0, &p);
    add_copy(l, &p, BO_INVALID)->needle = "overlaps";
    p = cp("converting through a view of the same storage", INFVSR_COPY_SET, 1, ST(100));
    s = slot(&p, INFVSR_TYPE_F32, 200, V_RANGE, -1, 1);
    p.x = dense(s, 0, &p);
    p.y = (struct cp_operand){ .slot = s, .view = true, .vdt = INFVSR_TYPE_BF16, .vbyte = 100, .vn = 300, .st = { 1 } };
    add_copy(l, &p, BO_INVALID)->needle = "overlaps";
    p = cp("mask overlapping y", INFVSR_COPY_ACCUMULATE, 1, ST(100));
    sx = slot(&p, INFVSR_TYPE_F32, 100, V_RANGE, -1, 1), s = slot(&p, INFVSR_TYPE_F32, 200, V_RANGE, -1, 1);
    p.x = dense(sx, 0, &p), p.m = dense(s, 50, &p), p.y = dense(s, 0, &p);
    add_copy(l, &p, BO_INVALID)->needle = "overlaps m";

    /* views reaching past their tensor (by one element), bad offsets, strides, extents */
    p = cp("y one past the end", INFVSR_COPY_SET, 2, ST(10, 10));
    sx = slot(&p, INFVSR_TYPE_F32, 100, V_RANGE, -1, 1), sy = slot(&p, INFVSR_TYPE_F32, 100, V_RANGE, -1, 1);
    p.x = dense(sx, 0, &p), p.y = dense(sy, 1, &p);
    add_copy(l, &p, BO_INVALID)->needle = "reaches past";
    p.label = "y rows one element too far apart";
    p.y = on(sy, 0, ST(11, 1), 2); /* the last row would start at 99 */
    add_copy(l, &p, BO_INVALID)->needle = "reaches past";
    p.label = "x last column stride one too big";
    p.y = dense(sy, 0, &p), p.x = on(sx, 0, ST(10, 2), 2);
    add_copy(l, &p, BO_INVALID)->needle = "reaches past";
    p.label = "x offset -1";
    p.x = dense(sx, -1, &p);
    add_copy(l, &p, BO_INVALID)->needle = "reaches past";
    p.label = "x negative stride";
    p.x = on(sx, 99, ST(-10, 1), 2);
    add_copy(l, &p, BO_INVALID)->needle = "negative stride";
    p.label = "x stride overflows int64";
    p.x = on(sx, 0, ST(INT64_MAX / 4, 1), 2);
    add_copy(l, &p, BO_INVALID)->needle = "reaches past";
    p = cp("mask past the end", INFVSR_COPY_DIVIDE, 1, ST(50));
    sx = slot(&p, INFVSR_TYPE_F32, 50, V_RANGE, -1, 1), sm = slot(&p, INFVSR_TYPE_F32, 49, V_RANGE, 1, 2);
    sy = slot(&p, INFVSR_TYPE_F32, 50, V_RANGE, -1, 1);
    p.x = dense(sx, 0, &p), p.m = dense(sm, 0, &p), p.y = dense(sy, 0, &p);
    add_copy(l, &p, BO_INVALID)->needle = "m view";
    p = cp("negative extent", INFVSR_COPY_SET, 2, ST(-1, 4));
    sx = slot(&p, INFVSR_TYPE_F32, 16, V_RANGE, -1, 1), sy = slot(&p, INFVSR_TYPE_F32, 16, V_RANGE, -1, 1);
    p.x = on(sx, 0, ST(4, 1), 2), p.y = on(sy, 0, ST(4, 1), 2);
    add_copy(l, &p, BO_INVALID)->needle = "extent";
    p.ext[0] = 1;
    p.label = "ndim 0", p.ndim = 0;
    add_copy(l, &p, BO_INVALID)->needle = "ndim";
    p.label = "ndim 7", p.ndim = 7;
    add_copy(l, &p, BO_INVALID)->needle = "ndim";
    p.label = "unknown mode", p.ndim = 2, p.mode = 9;
    add_copy(l, &p, BO_INVALID)->needle = "mode";

    /* stride 0 in y: two elements of x into one element of y */
    p = cp("y broadcast", INFVSR_COPY_SET, 2, ST(3, 4));
    sx = slot(&p, INFVSR_TYPE_F32, 12, V_RANGE, -1, 1), sy = slot(&p, INFVSR_TYPE_F32, 12, V_RANGE, -1, 1);
    p.x = dense(sx, 0, &p), p.y = on(sy, 0, ST(0, 1), 2);
    add_copy(l, &p, BO_INVALID)->needle = "stride 0";
    p.label = "fill with y broadcast", p.mode = INFVSR_COPY_FILL, p.x.slot = -1;
    add_copy(l, &p, BO_INVALID)->needle = "stride 0";

    /* dtypes a mode does not take; missing operands */
    const struct { int mode; enum infvsr_dtype x, m, y; const char * label; } bad[] = {
        { INFVSR_COPY_SET, INFVSR_TYPE_I32, INFVSR_TYPE_COUNT, INFVSR_TYPE_F32, "i32 into f32" },
        { INFVSR_COPY_SET, INFVSR_TYPE_F32, INFVSR_TYPE_COUNT, INFVSR_TYPE_F64, "f32 into f64" },
        { INFVSR_COPY_ACCUMULATE, INFVSR_TYPE_F32, INFVSR_TYPE_COUNT, INFVSR_TYPE_U8, "accumulate into u8" },
        { INFVSR_COPY_ACCUMULATE, INFVSR_TYPE_F32, INFVSR_TYPE_I32, INFVSR_TYPE_F32, "accumulate with an i32 mask" },
        { INFVSR_COPY_DIVIDE, INFVSR_TYPE_F32, INFVSR_TYPE_COUNT, INFVSR_TYPE_F32, "divide without m" },
        { INFVSR_COPY_U8_TO_MODEL, INFVSR_TYPE_F32, INFVSR_TYPE_COUNT, INFVSR_TYPE_F32, "u8_to_model from f32" },
        { INFVSR_COPY_U8_TO_UNIT, INFVSR_TYPE_U8, INFVSR_TYPE_COUNT, INFVSR_TYPE_U8, "u8_to_unit into u8" },
        { INFVSR_COPY_MODEL_TO_U8, INFVSR_TYPE_F32, INFVSR_TYPE_COUNT, INFVSR_TYPE_F32, "model_to_u8 into f32" },
        { INFVSR_COPY_MODEL_TO_U8, INFVSR_TYPE_U8, INFVSR_TYPE_COUNT, INFVSR_TYPE_U8, "model_to_u8 from u8" },
        { INFVSR_COPY_FILL, INFVSR_TYPE_COUNT, INFVSR_TYPE_COUNT, INFVSR_TYPE_I32, "fill i32" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = cp(bad[i].label, bad[i].mode, 1, ST(16));
        p.y = dense(slot(&p, bad[i].y, 16, V_RANGE, 0, 1), 0, &p);
        if (bad[i].x != INFVSR_TYPE_COUNT) p.x = dense(slot(&p, bad[i].x, 16, V_RANGE, 0, 1), 0, &p);
        if (bad[i].m != INFVSR_TYPE_COUNT) p.m = dense(slot(&p, bad[i].m, 16, V_RANGE, 1, 2), 0, &p);
        add_copy(l, &p, BO_INVALID)->needle = "does not take";
    }
    p = cp("set without x", INFVSR_COPY_SET, 1, ST(16));
    p.y = dense(slot(&p, INFVSR_TYPE_F32, 16, V_RANGE, 0, 1), 0, &p);
    add_copy(l, &p, BO_INVALID)->needle = "NULL";
}

void bo_cases_copy(struct bo_list * l) {
    cases_set(l);
    cases_memmove(l);
    cases_math(l);
    cases_refused(l);
}
