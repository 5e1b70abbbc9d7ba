/* Fast elementwise ops: activations, add, gated residual, affine clamp, softmax.
 * Threading: the flat element range (or the rows, for row ops) is cut into contiguous
 * chunks, one pool task each. Every output element depends only on its own inputs, so
 * in-place calls and any chunking give identical bytes. */
#include <math.h>

#include "cpu_impl.h"
#include "simd.h"

/* infvsr__exp8(r) for |r| < 0.25, where its n = round(r log2 e) is 0: the reduction
 * leaves r as it is (up to the sign of a zero), 2^n is 1 and the clamps do nothing, so
 * its polynomial alone gives the same bits. */
static inline __m256 exp_small8(__m256 r) {
    __m256 p = _mm256_set1_ps(1.9875691500E-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
    __m256 r2 = _mm256_mul_ps(r, r);
    return _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
}

/* GELU(tanh) = 0.5 x (1 + tanh(u)) = x * sigmoid(2u) = x / (1 + e^{-2u}),
 * u = sqrt(2/pi) (x + 0.044715 x^3): no cancellation. The exponent reaches |2u| ~ 100 in
 * the negative tail, where one f32 rounding of it alone is a 4e-6 relative error, so it
 * is evaluated in double and split into f32 hi + lo with e^{hi} e^{lo}. */
static inline __m256 gelu_tanh8(__m256 x) {
    const __m256d k0 = _mm256_set1_pd(-2.0 * 0.7978845608028654), k1 = _mm256_set1_pd(0.044715);
    __m256d xl = _mm256_cvtps_pd(_mm256_castps256_ps128(x)), xh = _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1));
    __m256d al = _mm256_mul_pd(k0, _mm256_fmadd_pd(_mm256_mul_pd(k1, xl), _mm256_mul_pd(xl, xl), xl));
    __m256d ah = _mm256_mul_pd(k0, _mm256_fmadd_pd(_mm256_mul_pd(k1, xh), _mm256_mul_pd(xh, xh), xh));
    __m128 hl = _mm256_cvtpd_ps(al), hh = _mm256_cvtpd_ps(ah);
    __m128 ll = _mm256_cvtpd_ps(_mm256_sub_pd(al, _mm256_cvtps_pd(hl)));
    __m128 lh = _mm256_cvtpd_ps(_mm256_sub_pd(ah, _mm256_cvtps_pd(hh)));
    __m256 lo = _mm256_set_m128(lh, ll);
    /* lo is at most half an ulp of hi: nearly always small enough for exp_small8 */
    const bool small = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), lo),
                                                        _mm256_set1_ps(0.25f), _CMP_LT_OQ)) == 0xff;
    __m256 e = _mm256_mul_ps(infvsr__exp8(_mm256_set_m128(hh, hl)), small ? exp_small8(lo) : infvsr__exp8(lo));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

/* GELU(erf) = 0.5 x (1 + erf(x / sqrt 2)) through erfc(z), z = |x| / sqrt 2, with the
 * Chebyshev fit of Numerical Recipes (erfcc: relative error < 1.2e-7 for all z >= 0):
 *   erfc(z) = t exp(-z^2 + P(t)),  t = 1 / (1 + z/2)
 * z^2 = x^2 / 2 is split exactly into hi + lo (FMA) and e^{-hi} e^{P - lo} are taken
 * separately, so the large exponent is never rounded. Then x >= 0: x (1 - erfc/2),
 * x < 0: x erfc / 2, without the cancellation of 1 + erf near -1. */
static inline __m256 gelu_erf8(__m256 x) {
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
    __m256 z  = _mm256_mul_ps(ax, _mm256_set1_ps(0.70710678118654752f));
    __m256 t  = _mm256_div_ps(one, _mm256_fmadd_ps(half, z, one));
    __m256 p  = _mm256_set1_ps(0.17087277f);
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.82215223f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.48851587f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.13520398f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.27886807f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.18628806f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.09678418f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.37409196f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.00002368f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.26551223f));
    __m256 x2 = _mm256_mul_ps(x, x);
    __m256 x2_lo = _mm256_fmsub_ps(x, x, x2);             /* x^2 = x2 + x2_lo exactly */
    __m256 z2 = _mm256_mul_ps(x2, half), z2_lo = _mm256_mul_ps(x2_lo, half); /* exact halving */
    __m256 e = _mm256_mul_ps(infvsr__exp8(_mm256_sub_ps(_mm256_setzero_ps(), z2)),
                             infvsr__exp8(_mm256_sub_ps(p, z2_lo)));
    __m256 erfc = _mm256_mul_ps(t, e);
    __m256 pos = _mm256_mul_ps(x, _mm256_fnmadd_ps(half, erfc, one));
    __m256 neg = _mm256_mul_ps(_mm256_mul_ps(half, x), erfc);
    return _mm256_blendv_ps(pos, neg, x); /* sign bit of x selects */
}

static inline __m256 silu8(__m256 x) {
    __m256 e = infvsr__exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

static inline float gelu_tanh1(float x) {
    double xd = x;
    return (float)(xd / (1.0 + exp(-2.0 * 0.7978845608028654 * (xd + 0.044715 * xd * xd * xd))));
}

/* scalar tail: 0.5 x erfc(-x / sqrt 2) in double (no cancellation near -1) */
static inline float gelu_erf1(float x) {
    return (float)(0.5 * x * erfc(-(double)x * 0.70710678118654752));
}

static inline float silu1(float x) {
    return x / (1.0f + expf(-x));
}

/* Applies op to n elements (also used by linear's fused epilogue). */
void infvsr__unary_span(enum infvsr_unary_op op, const float * x, float * y, int64_t n) {
    int64_t i = 0;
    switch (op) {
    case INFVSR_UNARY_GELU_TANH:
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, gelu_tanh8(_mm256_loadu_ps(x + i)));
        for (; i < n; i++) y[i] = gelu_tanh1(x[i]);
        break;
    case INFVSR_UNARY_GELU_ERF:
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, gelu_erf8(_mm256_loadu_ps(x + i)));
        for (; i < n; i++) y[i] = gelu_erf1(x[i]);
        break;
    case INFVSR_UNARY_SILU:
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, silu8(_mm256_loadu_ps(x + i)));
        for (; i < n; i++) y[i] = silu1(x[i]);
        break;
    default:
        if (x != y) for (; i < n; i++) y[i] = x[i];
        break;
    }
}

/* ---- flat ops: chunks of CHUNK elements ---- */

#define CHUNK 16384

struct flat_job {
    enum infvsr_unary_op op;
    const float *        a, * b;
    float *              y;
    int64_t              n;
    float                alpha, beta, lo, hi;
};

static void flat_range(const struct flat_job * j, int64_t t, int64_t * s, int64_t * e) {
    *s = t * CHUNK;
    *e = *s + CHUNK < j->n ? *s + CHUNK : j->n;
}

static void unary_task(void * ctx, int64_t t, int tid) {
    const struct flat_job * j = ctx;
    int64_t s, e;
    flat_range(j, t, &s, &e);
    infvsr__unary_span(j->op, j->a + s, j->y + s, e - s);
}

void infvsr_cpu_op_unary(struct infvsr_cpu_ctx * c, enum infvsr_unary_op op, const float * x, int64_t n, float * y) {
    struct flat_job j = { .op = op, .a = x, .y = y, .n = n };
    infvsr__par(c, (n + CHUNK - 1) / CHUNK, unary_task, &j);
}

void infvsr__add_span(const float * a, const float * b, float * y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

static void add_task(void * ctx, int64_t t, int tid) {
    const struct flat_job * j = ctx;
    int64_t s, e;
    flat_range(j, t, &s, &e);
    infvsr__add_span(j->a + s, j->b + s, j->y + s, e - s);
}

void infvsr_cpu_op_add(struct infvsr_cpu_ctx * c, const float * a, const float * b, int64_t n, float * y) {
    struct flat_job j = { .a = a, .b = b, .y = y, .n = n };
    infvsr__par(c, (n + CHUNK - 1) / CHUNK, add_task, &j);
}

void infvsr__affine_clamp_span(const float * x, float * y, int64_t n, float alpha, float beta, float lo, float hi) {
    /* x * alpha + beta rounded twice as the reference's single rounding could differ by
     * one ulp: that is inside the 1e-5 contract. GCC -O2 calls libm's fminf/fmaxf per
     * element (1% of a bf16 Swin encode): MAXPS/MINPS return their second operand when
     * either is NaN, so with lo and hi not NaN they give fminf(fmaxf(v, lo), hi) (a NaN v
     * becomes lo), except perhaps the sign of a zero result. */
    int64_t i = 0;
    if (lo == lo && hi == hi) {
        const __m256 a = _mm256_set1_ps(alpha), b = _mm256_set1_ps(beta), l = _mm256_set1_ps(lo), h = _mm256_set1_ps(hi);
        for (; i + 8 <= n; i += 8) {
            const __m256 v = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), a), b);
            _mm256_storeu_ps(y + i, _mm256_min_ps(_mm256_max_ps(v, l), h));
        }
    }
    for (; i < n; i++) y[i] = fminf(fmaxf(x[i] * alpha + beta, lo), hi);
}

static void affine_task(void * ctx, int64_t t, int tid) {
    const struct flat_job * j = ctx;
    int64_t s, e;
    flat_range(j, t, &s, &e);
    infvsr__affine_clamp_span(j->a + s, j->y + s, e - s, j->alpha, j->beta, j->lo, j->hi);
}

void infvsr_cpu_op_affine_clamp(struct infvsr_cpu_ctx * c, const float * x, int64_t n, float alpha, float beta,
                                float lo, float hi, float * y) {
    struct flat_job j = { .a = x, .y = y, .n = n, .alpha = alpha, .beta = beta, .lo = lo, .hi = hi };
    infvsr__par(c, (n + CHUNK - 1) / CHUNK, affine_task, &j);
}

/* ---- row ops ---- */

struct rows_job {
    const float *       x, * d;
    struct infvsr_cpu_w g;
    float *             y;
    float *             gate_f32; /* widened gate, or NULL */
    int64_t             R, C, rows_per_task;
};

void infvsr__add_gated_row(const float * x, const float * d, float * y, int64_t C, const float * gate) {
    if (gate) {
        for (int64_t i = 0; i < C; i++) y[i] = x[i] + gate[i] * d[i];
    } else {
        for (int64_t i = 0; i < C; i++) y[i] = x[i] + d[i];
    }
}

static void add_gated_task(void * ctx, int64_t t, int tid) {
    const struct rows_job * j = ctx;
    int64_t r0 = t * j->rows_per_task, r1 = r0 + j->rows_per_task < j->R ? r0 + j->rows_per_task : j->R;
    for (int64_t r = r0; r < r1; r++) infvsr__add_gated_row(j->x + r * j->C, j->d + r * j->C, j->y + r * j->C, j->C, j->gate_f32);
}

void infvsr_cpu_op_add_gated(struct infvsr_cpu_ctx * c, const float * x, struct infvsr_cpu_w gate, const float * d,
                             int64_t R, int64_t C, float * y) {
    struct rows_job j = { .x = x, .d = d, .y = y, .R = R, .C = C };
    if (gate.data) {
        j.gate_f32 = infvsr__buf_reserve(&c->panel, (size_t)C);
        if (!j.gate_f32) { /* no memory for C floats: fall back to the oracle */
            infvsr_cpu_ref_add_gated(x, gate, d, R, C, y);
            return;
        }
        infvsr__w_widen(j.gate_f32, gate, 0, (size_t)C);
    }
    int64_t n_tasks = infvsr__n_chunks(c, R * C, CHUNK);
    j.rows_per_task = (R + n_tasks - 1) / n_tasks;
    infvsr__par(c, (R + j.rows_per_task - 1) / j.rows_per_task, add_gated_task, &j);
}

void infvsr__softmax_row(const float * x, float * y, int64_t C) {
    float mx = -INFINITY;
    int64_t i = 0;
    if (C >= 8) {
        __m256 m8 = _mm256_set1_ps(-INFINITY);
        for (; i + 8 <= C; i += 8) m8 = _mm256_max_ps(m8, _mm256_loadu_ps(x + i));
        mx = infvsr__hmax8(m8);
    }
    for (; i < C; i++) mx = x[i] > mx ? x[i] : mx;
    if (mx == -INFINITY) mx = 0; /* all -inf: every exp is 0, sum 0 -> NaN like torch */
    __m256 s8 = _mm256_setzero_ps(), m8 = _mm256_set1_ps(mx);
    double sum = 0;
    for (i = 0; i + 8 <= C; i += 8) {
        __m256 e = infvsr__exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), m8));
        _mm256_storeu_ps(y + i, e);
        s8 = _mm256_add_ps(s8, e);
    }
    sum = infvsr__hsum8(s8);
    for (; i < C; i++) {
        y[i] = expf(x[i] - mx);
        sum += y[i];
    }
    float inv = (float)(1.0 / sum);
    for (i = 0; i < C; i++) y[i] *= inv;
}

static void softmax_task(void * ctx, int64_t t, int tid) {
    const struct rows_job * j = ctx;
    int64_t r0 = t * j->rows_per_task, r1 = r0 + j->rows_per_task < j->R ? r0 + j->rows_per_task : j->R;
    for (int64_t r = r0; r < r1; r++) infvsr__softmax_row(j->x + r * j->C, j->y + r * j->C, j->C);
}

void infvsr_cpu_op_softmax(struct infvsr_cpu_ctx * c, const float * x, int64_t R, int64_t C, float * y) {
    struct rows_job j = { .x = x, .y = y, .R = R, .C = C };
    int64_t n_tasks = infvsr__n_chunks(c, R * C, CHUNK);
    j.rows_per_task = (R + n_tasks - 1) / n_tasks;
    infvsr__par(c, (R + j.rows_per_task - 1) / j.rows_per_task, softmax_task, &j);
}
