/* Native bf16 elementwise and row ops on the avx512bf16 and amx levels: unary, add,
 * affine_clamp, softmax, layer_norm, rms_norm, modulate, add_gated, rope, channel_rms_norm
 * (cpu_impl.h has the contract).
 *
 * Why: the generic bf16 path widens each bf16 tensor whole into an f32 temporary, runs the
 * f32 op and rounds the output back (three passes over memory, temporaries the size of
 * the tensors; in the bf16 Swin encoder the widen and round passes alone were 12% of the
 * time). Here each pool task converts its own elements block by block through a small
 * buffer on its stack (BLK floats per operand, L1-resident), calls the f32 span or row
 * kernel the f32 op uses (elementwise.c, norm.c) on it, and rounds once to nearest even
 * on store (infvsr__round8_bf16, the bits of infvsr_f32_to_bf16): the same f32 math on
 * the same values, so the same bits as the generic path, with one pass over memory.
 * In-place calls (x == y) are safe: a block (a row) is read whole before it is written.
 * rms_norm, modulate, add_gated and rope go row by row the same way, channel_rms_norm
 * ([C, S], statistics down the channels) through blocks of positions of every channel.
 * Threading: the f32 ops' chunking (elements or rows per task); results do not depend
 * on it. The conversions are AVX2 (memory-bound). softmax, GELU(tanh), GELU(erf) and SiLU,
 * bound by their e^x, run 16 lanes wide (AVX-512 F, which both native levels have): the AVX2
 * kernels' operations lane for lane, and softmax's 8-lane partial sums kept in the same
 * order, so the bits stay the generic path's (tests/ops/test_bf16_native.c checks). */
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include "cpu_impl.h"
#include "simd.h"

#define AVX512_FN __attribute__((target("avx512f")))

/* infvsr__exp8 (simd.h) on 16 lanes: the same operations in the same order. */
static inline __attribute__((always_inline)) AVX512_FN __m512 exp16(__m512 x) {
    const __m512 hi = _mm512_set1_ps(88.3762626647949f), lo = _mm512_set1_ps(-87.3365447504f);
    const __mmask16 under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
    const __mmask16 over  = _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ);
    x = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500E-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
    __m512 r2 = _mm512_mul_ps(r, r);
    p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512i ni = _mm512_cvtps_epi32(n);
    __m512i h1 = _mm512_srai_epi32(ni, 1);
    __m512i h2 = _mm512_sub_epi32(ni, h1);
    __m512 s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(h1, _mm512_set1_epi32(127)), 23));
    __m512 s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(h2, _mm512_set1_epi32(127)), 23));
    __m512 res = _mm512_mul_ps(_mm512_mul_ps(p, s1), s2);
    res = _mm512_mask_blend_ps(over, res, _mm512_set1_ps(__builtin_inff()));
    return _mm512_maskz_mov_ps((__mmask16)~under, res);
}

/* elementwise.c gelu_erf8 on 16 lanes (the coefficients and steps of its comment). */
static inline __attribute__((always_inline)) AVX512_FN __m512 gelu_erf16(__m512 x) {
    const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
    __m512 ax = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff))); /* |x| */
    __m512 z  = _mm512_mul_ps(ax, _mm512_set1_ps(0.70710678118654752f));
    __m512 t  = _mm512_div_ps(one, _mm512_fmadd_ps(half, z, one));
    __m512 p  = _mm512_set1_ps(0.17087277f);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.82215223f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.48851587f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.13520398f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.27886807f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.18628806f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.09678418f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.37409196f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.00002368f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.26551223f));
    __m512 x2 = _mm512_mul_ps(x, x);
    __m512 x2_lo = _mm512_fmsub_ps(x, x, x2);
    __m512 z2 = _mm512_mul_ps(x2, half), z2_lo = _mm512_mul_ps(x2_lo, half);
    __m512 e = _mm512_mul_ps(exp16(_mm512_sub_ps(_mm512_setzero_ps(), z2)), exp16(_mm512_sub_ps(p, z2_lo)));
    __m512 erfc = _mm512_mul_ps(t, e);
    __m512 pos = _mm512_mul_ps(x, _mm512_fnmadd_ps(half, erfc, one));
    __m512 neg = _mm512_mul_ps(_mm512_mul_ps(half, x), erfc);
    const __mmask16 sign = _mm512_cmplt_epi32_mask(_mm512_castps_si512(x), _mm512_setzero_si512()); /* sign bit of x */
    return _mm512_mask_blend_ps(sign, pos, neg);
}

/* elementwise.c exp_small8 (exp16 for |r| < 0.25: its polynomial alone) on 16 lanes */
static inline __attribute__((always_inline)) AVX512_FN __m512 exp_small16(__m512 r) {
    __m512 p = _mm512_set1_ps(1.9875691500E-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
    __m512 r2 = _mm512_mul_ps(r, r);
    return _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
}

/* elementwise.c gelu_tanh8 on 16 lanes: the exponent in double (8 lanes a half), split
 * into f32 hi + lo, e^{hi} e^{lo}; every lane's operations are gelu_tanh8's. */
static inline __attribute__((always_inline)) AVX512_FN __m512 gelu_tanh16(__m512 x) {
    const __m512d k0 = _mm512_set1_pd(-2.0 * 0.7978845608028654), k1 = _mm512_set1_pd(0.044715);
    __m512d xl = _mm512_cvtps_pd(_mm512_castps512_ps256(x));
    __m512d xh = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
    __m512d al = _mm512_mul_pd(k0, _mm512_fmadd_pd(_mm512_mul_pd(k1, xl), _mm512_mul_pd(xl, xl), xl));
    __m512d ah = _mm512_mul_pd(k0, _mm512_fmadd_pd(_mm512_mul_pd(k1, xh), _mm512_mul_pd(xh, xh), xh));
    __m256 hl = _mm512_cvtpd_ps(al), hh = _mm512_cvtpd_ps(ah);
    __m256 ll = _mm512_cvtpd_ps(_mm512_sub_pd(al, _mm512_cvtps_pd(hl)));
    __m256 lh = _mm512_cvtpd_ps(_mm512_sub_pd(ah, _mm512_cvtps_pd(hh)));
    __m512 hi = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(hl)), _mm256_castps_pd(hh), 1));
    __m512 lo = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(ll)), _mm256_castps_pd(lh), 1));
    const __mmask16 small = _mm512_cmp_ps_mask(_mm512_abs_ps(lo), _mm512_set1_ps(0.25f), _CMP_LT_OQ);
    __m512 e = _mm512_mul_ps(exp16(hi), small == 0xffff ? exp_small16(lo) : exp16(lo));
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

static inline __attribute__((always_inline)) AVX512_FN __m512 silu16(__m512 x) {
    __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), x));
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

/* infvsr__unary_span for GELU(tanh), GELU(erf) and SiLU: 16 lanes, then the f32 span's
 * own 8-lane loop and scalar tail on what is left (every element's math is the same
 * either way). AVX-512 F: only on the avx512bf16 and amx levels. */
AVX512_FN void infvsr__unary_span16(enum infvsr_unary_op op, const float * x, float * y, int64_t n) {
    int64_t i = 0;
    if (op == INFVSR_UNARY_GELU_TANH) {
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, gelu_tanh16(_mm512_loadu_ps(x + i)));
    } else if (op == INFVSR_UNARY_GELU_ERF) {
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, gelu_erf16(_mm512_loadu_ps(x + i)));
    } else if (op == INFVSR_UNARY_SILU) {
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, silu16(_mm512_loadu_ps(x + i)));
    }
    infvsr__unary_span(op, x + i, y + i, n - i);
}

/* infvsr__softmax_row with e^x on 16 lanes. The row sum is the f32 kernel's: 8 lane sums,
 * lane j adding x[j], x[j + 8], x[j + 16], ... in order (the low half of a 16-lane block
 * first), then the same horizontal sum and scalar tail. Max is exact in any order. */
AVX512_FN static void softmax_row16(const float * x, float * y, int64_t C) {
    float mx = -INFINITY;
    int64_t i = 0;
    if (C >= 8) {
        __m256 m8 = _mm256_set1_ps(-INFINITY);
        for (; i + 8 <= C; i += 8) m8 = _mm256_max_ps(m8, _mm256_loadu_ps(x + i));
        mx = infvsr__hmax8(m8);
    }
    for (; i < C; i++) mx = x[i] > mx ? x[i] : mx;
    if (mx == -INFINITY) mx = 0; /* all -inf: every exp is 0, sum 0 -> NaN like torch */
    __m256 s8 = _mm256_setzero_ps();
    const __m512 m16 = _mm512_set1_ps(mx);
    double sum = 0;
    for (i = 0; i + 16 <= C; i += 16) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), m16));
        _mm512_storeu_ps(y + i, e);
        s8 = _mm256_add_ps(s8, _mm512_castps512_ps256(e));
        s8 = _mm256_add_ps(s8, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1)));
    }
    for (; i + 8 <= C; i += 8) {
        __m256 e = infvsr__exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), _mm256_set1_ps(mx)));
        _mm256_storeu_ps(y + i, e);
        s8 = _mm256_add_ps(s8, e);
    }
    sum = infvsr__hsum8(s8);
    for (; i < C; i++) {
        y[i] = expf(x[i] - mx);
        sum += y[i];
    }
    const float inv = (float)(1.0 / sum);
    for (i = 0; i < C; i++) y[i] *= inv;
}

#define BLK   2048  /* elements per conversion block: 8 KiB per f32 operand */
#define CHUNK 16384 /* elements per task, as the f32 ops */
#define ROW_STACK 4096 /* row ops: rows up to this long use the stack, longer ones the heap */

static _Atomic uint64_t g_calls;

uint64_t infvsr__act_bf16_calls(void) {
    return g_calls;
}

bool infvsr_cpu_act_bf16_native(const struct infvsr_cpu_ctx * c) {
    return !c->use_ref && c->isa >= INFVSR_CPU_ISA_AVX512BF16;
}

/* f32 view of n elements of a at element off: in place when F32, else widened into buf. */
static inline const float * load_f32(struct infvsr_cpu_act a, int64_t off, int64_t n, float * buf) {
    if (a.dtype == INFVSR_TYPE_F32) return (const float *)a.data + off;
    const uint16_t * s = (const uint16_t *)a.data + off;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(buf + i, infvsr__load8_bf16(s + i));
    for (; i < n; i++) buf[i] = infvsr_bf16_to_f32(s[i]);
    return buf;
}

/* n f32 values into a at element off: copied when F32, else rounded once to bf16. */
static inline void store_act(struct infvsr_cpu_act a, int64_t off, const float * v, int64_t n) {
    if (a.dtype == INFVSR_TYPE_F32) {
        float * d = (float *)a.data + off;
        if (d != v) memcpy(d, v, (size_t)n * sizeof *v);
        return;
    }
    uint16_t * d = (uint16_t *)a.data + off;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm_storeu_si128((__m128i *)(d + i), infvsr__round8_bf16(_mm256_loadu_ps(v + i)));
    for (; i < n; i++) d[i] = infvsr_f32_to_bf16(v[i]);
}

/* ---- flat ops: tasks of CHUNK elements, blocks of BLK ---- */

enum flat_kind { FLAT_UNARY, FLAT_ADD, FLAT_AFFINE };

struct flat_job {
    enum flat_kind        kind;
    enum infvsr_unary_op  op;
    struct infvsr_cpu_act a, b, y;
    int64_t               n;
    float                 alpha, beta, lo, hi;
};

static void flat_task(void * ctx, int64_t t, int tid) {
    (void)tid;
    const struct flat_job * j = ctx;
    _Alignas(64) float ba[BLK], bb[BLK], out[BLK];
    const int64_t e = (t + 1) * CHUNK < j->n ? (t + 1) * CHUNK : j->n;
    for (int64_t s = t * CHUNK; s < e; s += BLK) {
        const int64_t n = e - s < BLK ? e - s : BLK;
        const float * x = load_f32(j->a, s, n, ba);
        /* an f32 y is written in place (as the f32 op does); a bf16 one goes through out */
        float * y = j->y.dtype == INFVSR_TYPE_F32 ? (float *)j->y.data + s : out;
        switch (j->kind) {
        case FLAT_UNARY:  infvsr__unary_span16(j->op, x, y, n); break;
        case FLAT_ADD:    infvsr__add_span(x, load_f32(j->b, s, n, bb), y, n); break;
        case FLAT_AFFINE: infvsr__affine_clamp_span(x, y, n, j->alpha, j->beta, j->lo, j->hi); break;
        }
        if (y == out) store_act(j->y, s, out, n);
    }
}

static void run_flat(struct infvsr_cpu_ctx * c, struct flat_job * j) {
    g_calls++;
    if (j->n > 0) infvsr__par(c, (j->n + CHUNK - 1) / CHUNK, flat_task, j);
}

void infvsr_cpu_op_unary_bf16(struct infvsr_cpu_ctx * c, enum infvsr_unary_op op, struct infvsr_cpu_act x, int64_t n,
                              struct infvsr_cpu_act y) {
    struct flat_job j = { .kind = FLAT_UNARY, .op = op, .a = x, .y = y, .n = n };
    run_flat(c, &j);
}

void infvsr_cpu_op_add_bf16(struct infvsr_cpu_ctx * c, struct infvsr_cpu_act a, struct infvsr_cpu_act b, int64_t n,
                            struct infvsr_cpu_act y) {
    struct flat_job j = { .kind = FLAT_ADD, .a = a, .b = b, .y = y, .n = n };
    run_flat(c, &j);
}

void infvsr_cpu_op_affine_clamp_bf16(struct infvsr_cpu_ctx * c, struct infvsr_cpu_act x, int64_t n, float alpha,
                                     float beta, float lo, float hi, struct infvsr_cpu_act y) {
    struct flat_job j = { .kind = FLAT_AFFINE, .a = x, .y = y, .n = n, .alpha = alpha, .beta = beta, .lo = lo, .hi = hi };
    run_flat(c, &j);
}

/* ---- row ops: tasks of whole rows, one row at a time through the buffer ---- */

enum row_kind { ROW_SOFTMAX, ROW_LAYER_NORM, ROW_RMS_NORM, ROW_MODULATE, ROW_ADD_GATED, ROW_ROPE };

struct row_job {
    enum row_kind         kind;
    struct infvsr_cpu_act x, d, y;  /* d: add_gated's second operand */
    const float *         w, * b;   /* widened per-channel vectors, or NULL */
    const double *        freqs;    /* rope: [R, D/2, 2] */
    int64_t               R, C, H, D, rows_per_task;
    float                 eps;
    _Atomic int           oom;
};

static void row_task(void * ctx, int64_t t, int tid) {
    (void)tid;
    struct row_job * j = ctx;
    _Alignas(64) float stack[ROW_STACK], stack_d[ROW_STACK];
    const int64_t C = j->C, r0 = t * j->rows_per_task;
    const int64_t r1 = r0 + j->rows_per_task < j->R ? r0 + j->rows_per_task : j->R;
    const bool two = j->kind == ROW_ADD_GATED && j->d.dtype != INFVSR_TYPE_F32;
    float * buf = C <= ROW_STACK ? stack : malloc((size_t)C * sizeof(float));
    float * dbuf = !two || C <= ROW_STACK ? stack_d : malloc((size_t)C * sizeof(float));
    if (!buf || !dbuf) {
        j->oom = 1;
        if (buf != stack) free(buf);
        if (dbuf != stack_d) free(dbuf);
        return;
    }
    for (int64_t r = r0; r < r1; r++) {
        const float * x = load_f32(j->x, r * C, C, buf);
        /* a bf16 y goes through buf: x's row is in it or x is f32, so in place stays safe */
        float * y = j->y.dtype == INFVSR_TYPE_F32 ? (float *)j->y.data + r * C : buf;
        switch (j->kind) {
        case ROW_SOFTMAX:    softmax_row16(x, y, C); break;
        case ROW_LAYER_NORM: infvsr__layer_norm_row(x, y, C, j->w, j->b, j->eps); break;
        case ROW_RMS_NORM:   infvsr__rms_norm_row(x, y, C, j->w, j->eps); break;
        case ROW_MODULATE:   infvsr__modulate_row(x, y, C, j->w, j->b); break;
        case ROW_ADD_GATED:  infvsr__add_gated_row(x, load_f32(j->d, r * C, C, dbuf), y, C, j->w); break;
        case ROW_ROPE:       infvsr__rope_row(x, j->freqs + r * j->D, y, j->H, j->D); break;
        }
        if (y == buf) store_act(j->y, r * C, buf, C);
    }
    if (buf != stack) free(buf);
    if (dbuf != stack_d) free(dbuf);
}

static enum infvsr_status run_rows(struct infvsr_cpu_ctx * c, struct row_job * j) {
    g_calls++;
    if (j->R <= 0 || j->C <= 0) return INFVSR_OK;
    int64_t n_tasks = infvsr__n_chunks(c, j->R * j->C, CHUNK);
    j->rows_per_task = (j->R + n_tasks - 1) / n_tasks;
    infvsr__par(c, (j->R + j->rows_per_task - 1) / j->rows_per_task, row_task, j);
    return j->oom ? INFVSR_ERR_NOMEM : INFVSR_OK;
}

enum infvsr_status infvsr_cpu_op_softmax_bf16(struct infvsr_cpu_ctx * c, struct infvsr_cpu_act x, int64_t R, int64_t C,
                                              struct infvsr_cpu_act y) {
    struct row_job j = { .kind = ROW_SOFTMAX, .x = x, .y = y, .R = R, .C = C };
    return run_rows(c, &j);
}

enum infvsr_status infvsr_cpu_op_layer_norm_bf16(struct infvsr_cpu_ctx * c, struct infvsr_cpu_act x, int64_t R,
                                                 int64_t C, struct infvsr_cpu_w w, struct infvsr_cpu_w b, float eps,
                                                 struct infvsr_cpu_act y) {
    struct row_job j = { .kind = ROW_LAYER_NORM, .x = x, .y = y, .R = R, .C = C, .eps = eps };
    if (!infvsr__widen_pair(c, C, w, b, &j.w, &j.b)) return INFVSR_ERR_NOMEM;
    return run_rows(c, &j);
}

enum infvsr_status infvsr_cpu_op_rms_norm_bf16(struct infvsr_cpu_ctx * c, struct infvsr_cpu_act x, int64_t R, int64_t C,
                                               struct infvsr_cpu_w w, float eps, struct infvsr_cpu_act y) {
    struct row_job j = { .kind = ROW_RMS_NORM, .x = x, .y = y, .R = R, .C = C, .eps = eps };
    if (!infvsr__widen_pair(c, C, w, (struct infvsr_cpu_w){ 0 }, &j.w, &j.b)) return INFVSR_ERR_NOMEM;
    return run_rows(c, &j);
}

enum infvsr_status infvsr_cpu_op_modulate_bf16(struct infvsr_cpu_ctx * c, struct infvsr_cpu_act x, int64_t R, int64_t C,
                                               struct infvsr_cpu_w scale, struct infvsr_cpu_w shift,
                                               struct infvsr_cpu_act y) {
    struct row_job j = { .kind = ROW_MODULATE, .x = x, .y = y, .R = R, .C = C };
    if (!infvsr__widen_pair(c, C, scale, shift, &j.w, &j.b)) return INFVSR_ERR_NOMEM;
    float * one_plus = (float *)j.w;
    for (int64_t i = 0; i < C; i++) one_plus[i] += 1.0f; /* as infvsr_cpu_op_modulate */
    return run_rows(c, &j);
}

enum infvsr_status infvsr_cpu_op_add_gated_bf16(struct infvsr_cpu_ctx * c, struct infvsr_cpu_act x,
                                                struct infvsr_cpu_w gate, struct infvsr_cpu_act d, int64_t R,
                                                int64_t C, struct infvsr_cpu_act y) {
    struct row_job j = { .kind = ROW_ADD_GATED, .x = x, .d = d, .y = y, .R = R, .C = C };
    if (!infvsr__widen_pair(c, C, gate, (struct infvsr_cpu_w){ 0 }, &j.w, &j.b)) return INFVSR_ERR_NOMEM;
    return run_rows(c, &j);
}

enum infvsr_status infvsr_cpu_op_rope_bf16(struct infvsr_cpu_ctx * c, struct infvsr_cpu_act x, int64_t N, int64_t H,
                                           int64_t D, const double * freqs, struct infvsr_cpu_act y) {
    struct row_job j = { .kind = ROW_ROPE, .x = x, .y = y, .R = N, .C = H * D, .H = H, .D = D, .freqs = freqs };
    return run_rows(c, &j);
}

/* ---- channel RMS norm: x [C, S], statistics across the C channels of each position ----
 * A task takes POS_TASK positions (the f32 op's block) and converts them in narrower
 * blocks of [C, n] (n positions of every channel, CH_BUF floats at most on the stack):
 * each position's result depends on its own column only, so the bits are the f32 op's. */

#define POS_TASK 256
#define CH_BUF   8192

struct chan_job {
    struct infvsr_cpu_act x, y;
    const float *         g;
    int64_t               C, S;
    _Atomic int           oom;
};

static void chan_task(void * ctx, int64_t t, int tid) {
    (void)tid;
    struct chan_job * j = ctx;
    _Alignas(64) float stack[CH_BUF];
    const int64_t C = j->C, S = j->S, s0 = t * POS_TASK, s1 = s0 + POS_TASK < S ? s0 + POS_TASK : S;
    int64_t nb = CH_BUF / C;
    nb = nb >= 8 ? nb & ~(int64_t)7 : 8; /* whole 8-lane groups; past CH_BUF / 8 channels, the heap */
    if (nb > POS_TASK) nb = POS_TASK;
    float * buf = C * nb <= CH_BUF ? stack : malloc((size_t)(C * nb) * sizeof(float));
    if (!buf) {
        j->oom = 1;
        return;
    }
    const bool xf = j->x.dtype == INFVSR_TYPE_F32, yf = j->y.dtype == INFVSR_TYPE_F32;
    for (int64_t s = s0; s < s1; s += nb) {
        const int64_t n = s1 - s < nb ? s1 - s : nb;
        if (!xf)
            for (int64_t ch = 0; ch < C; ch++) load_f32(j->x, ch * S + s, n, buf + ch * n);
        const float * x = xf ? (const float *)j->x.data + s : buf;
        float *       y = yf ? (float *)j->y.data + s : buf;
        infvsr__channel_norm_block(x, xf ? S : n, y, yf ? S : n, C, n, j->g);
        if (!yf)
            for (int64_t ch = 0; ch < C; ch++) store_act(j->y, ch * S + s, buf + ch * n, n);
    }
    if (buf != stack) free(buf);
}

enum infvsr_status infvsr_cpu_op_channel_rms_norm_bf16(struct infvsr_cpu_ctx * c, struct infvsr_cpu_act x, int64_t C,
                                                       int64_t S, struct infvsr_cpu_w gamma, struct infvsr_cpu_act y) {
    struct chan_job j = { .x = x, .y = y, .C = C, .S = S };
    const float * unused;
    g_calls++;
    if (!infvsr__widen_pair(c, C, gamma, (struct infvsr_cpu_w){ 0 }, &j.g, &unused)) return INFVSR_ERR_NOMEM;
    if (C <= 0 || S <= 0) return INFVSR_OK;
    infvsr__par(c, (S + POS_TASK - 1) / POS_TASK, chan_task, &j);
    return j.oom ? INFVSR_ERR_NOMEM : INFVSR_OK;
}
