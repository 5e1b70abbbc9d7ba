/* RGB24 -> planar YUV, BT.601 limited range (see rgb_to_yuv.h for the exact definition).
 *
 * One pass over the frame: each RGB row is converted to its Y row and, for 4:2:0, to U
 * and V of its horizontal pixel pairs kept at Q7 in a ring of 8 rows; as soon as the 8
 * rows around a chroma row are there, the vertical filter writes that chroma row. The
 * AVX2 code does the same integer arithmetic as the scalar code, 16 pixels at a time. */
#include "rgb_to_yuv.h"

#include <math.h>

#ifdef __AVX2__
#include <immintrin.h>
#endif

/* Q15 coefficients of the BT.601 matrix in its customary 3-decimal form
 * (Y 0.299 0.587 0.114; U -0.169 -0.331 0.5; V 0.5 -0.419 -0.081), scaled to limited range
 * (219/255, 224/255) and rounded one by one: the values swscale uses for BT.601, so the
 * results agree with it except for rounding in its intermediate steps. */
struct coefs {
    int yr, yg, yb, ur, ug, ub, vr, vg, vb;
};

static int q15(double k, double range) { return (int)lround(k * range / 255.0 * 32768); }

static struct coefs bt601_limited(void) {
    struct coefs c = { q15(0.299, 219), q15(0.587, 219), q15(0.114, 219),  q15(-0.169, 224), q15(-0.331, 224),
                       q15(0.5, 224),   q15(0.5, 224),   q15(-0.419, 224), q15(-0.081, 224) };
    return c;
}

/* Y and 4:4:4 chroma are rounded in two steps, to Q6 and then to an integer, as swscale
 * rounds them (its intermediate format): luma then matches it exactly. */
#define Y_BIAS   ((16 << 15) + (1 << 8))  /* +16, round to Q6 */
#define C_BIAS   ((128 << 15) + (1 << 8)) /* +128, round to Q6 */
#define Q15_VIA_Q6(a) ((((a) >> 9) + 32) >> 6)
#define PAIR_Q7(p) (((p) + (1 << 8)) >> 9) /* pair sum (Q15, twice the value) -> Q7 */
/* Vertical 2:1 bicubic, Keys a = -0.6, at distances 0.25, 0.75, 1.25, 1.75 output rows:
 * 0.4359375, 0.1203125, -0.0421875, -0.0140625 (each side sums to 1/2), in Q12. */
static const int v_taps[8] = { -58, -173, 493, 1786, 1786, 493, -173, -58 };
#define V_BIAS ((128 << 19) + (1 << 18)) /* Q7 x Q12 = Q19: +128, then round */

static int use_simd = 1;

void infvsr_rgb_to_yuv_use_simd(int on) { use_simd = on; }

static inline uint8_t clamp_u8(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

/* ---- scalar code (the definition; also the row tails of the AVX2 code) ---------------- */

static void row420_scalar(const uint8_t * s, int x0, int w, const struct coefs * c, uint8_t * y, int16_t * uq,
                          int16_t * vq) {
    for (int x = x0; x < w; x += 2, s += 6) {
        int r0 = s[0], g0 = s[1], b0 = s[2], r1 = s[3], g1 = s[4], b1 = s[5];
        y[x] = (uint8_t)Q15_VIA_Q6(c->yr * r0 + c->yg * g0 + c->yb * b0 + Y_BIAS);
        y[x + 1] = (uint8_t)Q15_VIA_Q6(c->yr * r1 + c->yg * g1 + c->yb * b1 + Y_BIAS);
        int up = c->ur * r0 + c->ug * g0 + c->ub * b0 + c->ur * r1 + c->ug * g1 + c->ub * b1;
        int vp = c->vr * r0 + c->vg * g0 + c->vb * b0 + c->vr * r1 + c->vg * g1 + c->vb * b1;
        uq[x / 2] = (int16_t)PAIR_Q7(up);
        vq[x / 2] = (int16_t)PAIR_Q7(vp);
    }
}

static void row444_scalar(const uint8_t * s, int x0, int w, const struct coefs * c, uint8_t * y, uint8_t * u,
                          uint8_t * v) {
    for (int x = x0; x < w; x++, s += 3) {
        int r = s[0], g = s[1], b = s[2];
        y[x] = (uint8_t)Q15_VIA_Q6(c->yr * r + c->yg * g + c->yb * b + Y_BIAS);
        u[x] = clamp_u8(Q15_VIA_Q6(c->ur * r + c->ug * g + c->ub * b + C_BIAS));
        v[x] = clamp_u8(Q15_VIA_Q6(c->vr * r + c->vg * g + c->vb * b + C_BIAS));
    }
}

static void vfilter_scalar(const int16_t * const r[8], int x0, int n, uint8_t * out) {
    for (int x = x0; x < n; x++) {
        int acc = V_BIAS;
        for (int k = 0; k < 8; k++) acc += v_taps[k] * r[k][x];
        out[x] = clamp_u8(acc >> 19);
    }
}

/* ---- AVX2 ------------------------------------------------------------------------------ */
#ifdef __AVX2__
/* 8 pixels: 4 per 128-bit lane (bytes p[0..12) and p[12..24); each load reads 16 bytes, so
 * p[0..28) must be readable). rg = (R, G) and b = (B, 0) as int16 pairs, for madd. */
static inline void load8(const uint8_t * p, __m256i * rg, __m256i * b) {
    const __m256i m_rg = _mm256_setr_epi8(0, -1, 1, -1, 3, -1, 4, -1, 6, -1, 7, -1, 9, -1, 10, -1,
                                          0, -1, 1, -1, 3, -1, 4, -1, 6, -1, 7, -1, 9, -1, 10, -1);
    const __m256i m_b = _mm256_setr_epi8(2, -1, -1, -1, 5, -1, -1, -1, 8, -1, -1, -1, 11, -1, -1, -1,
                                         2, -1, -1, -1, 5, -1, -1, -1, 8, -1, -1, -1, 11, -1, -1, -1);
    __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)p)),
                                        _mm_loadu_si128((const __m128i *)(p + 12)), 1);
    *rg = _mm256_shuffle_epi8(v, m_rg);
    *b = _mm256_shuffle_epi8(v, m_b);
}

static inline __m256i pair(int lo, int hi) { return _mm256_set1_epi32((int)((uint32_t)(uint16_t)lo | ((uint32_t)(uint16_t)hi << 16))); }

/* Q15_VIA_Q6 of (a + bias). */
static inline __m256i round_via_q6(__m256i a, __m256i bias) {
    const __m256i h = _mm256_set1_epi32(32);
    return _mm256_srai_epi32(_mm256_add_epi32(_mm256_srai_epi32(_mm256_add_epi32(a, bias), 9), h), 6);
}

/* cr_g = (r, g) coefficient pairs, cb = (b, 0): one int32 dot product per pixel. */
static inline __m256i dot(__m256i rg, __m256i b, __m256i crg, __m256i cb) {
    return _mm256_add_epi32(_mm256_madd_epi16(rg, crg), _mm256_madd_epi16(b, cb));
}

/* 16 int32 (two vectors, pixels in order) -> 16 bytes at out (values must fit 0..255 after
 * the saturating packs). */
static inline void store16(__m256i a, __m256i b, uint8_t * out) {
    __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8);
    __m256i bytes = _mm256_permute4x64_epi64(_mm256_packus_epi16(w, w), 0x08);
    _mm_storeu_si128((__m128i *)out, _mm256_castsi256_si128(bytes));
}

/* Returns the first pixel left for the scalar code. */
static int row420_avx2(const uint8_t * s, int w, const struct coefs * c, uint8_t * y, int16_t * uq, int16_t * vq) {
    const __m256i yrg = pair(c->yr, c->yg), yb = pair(c->yb, 0), urg = pair(c->ur, c->ug), ub = pair(c->ub, 0),
                  vrg = pair(c->vr, c->vg), vb = pair(c->vb, 0), ybias = _mm256_set1_epi32(Y_BIAS),
                  half = _mm256_set1_epi32(1 << 8), order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
    int x = 0;
    for (; x + 18 <= w; x += 16) { /* the second load8 reads up to byte 3x + 52 < 3(x + 18) */
        __m256i rg0, b0, rg1, b1;
        load8(s + 3 * x, &rg0, &b0);
        load8(s + 3 * x + 24, &rg1, &b1);
        store16(round_via_q6(dot(rg0, b0, yrg, yb), ybias), round_via_q6(dot(rg1, b1, yrg, yb), ybias), y + x);
        /* hadd sums neighbouring pixels: [a01 a23 b01 b23 | a45 a67 b45 b67] -> in order */
        __m256i up = _mm256_permutevar8x32_epi32(_mm256_hadd_epi32(dot(rg0, b0, urg, ub), dot(rg1, b1, urg, ub)), order);
        __m256i vp = _mm256_permutevar8x32_epi32(_mm256_hadd_epi32(dot(rg0, b0, vrg, vb), dot(rg1, b1, vrg, vb)), order);
        up = _mm256_srai_epi32(_mm256_add_epi32(up, half), 9);
        vp = _mm256_srai_epi32(_mm256_add_epi32(vp, half), 9);
        __m256i uv = _mm256_permute4x64_epi64(_mm256_packs_epi32(up, vp), 0xD8); /* [u0..7 | v0..7] */
        _mm_storeu_si128((__m128i *)(uq + x / 2), _mm256_castsi256_si128(uv));
        _mm_storeu_si128((__m128i *)(vq + x / 2), _mm256_extracti128_si256(uv, 1));
    }
    return x;
}

static int row444_avx2(const uint8_t * s, int w, const struct coefs * c, uint8_t * y, uint8_t * u, uint8_t * v) {
    const __m256i yrg = pair(c->yr, c->yg), yb = pair(c->yb, 0), urg = pair(c->ur, c->ug), ub = pair(c->ub, 0),
                  vrg = pair(c->vr, c->vg), vb = pair(c->vb, 0), ybias = _mm256_set1_epi32(Y_BIAS),
                  cbias = _mm256_set1_epi32(C_BIAS);
    int x = 0;
    for (; x + 18 <= w; x += 16) {
        __m256i rg0, b0, rg1, b1;
        load8(s + 3 * x, &rg0, &b0);
        load8(s + 3 * x + 24, &rg1, &b1);
        store16(round_via_q6(dot(rg0, b0, yrg, yb), ybias), round_via_q6(dot(rg1, b1, yrg, yb), ybias), y + x);
        store16(round_via_q6(dot(rg0, b0, urg, ub), cbias), round_via_q6(dot(rg1, b1, urg, ub), cbias), u + x);
        store16(round_via_q6(dot(rg0, b0, vrg, vb), cbias), round_via_q6(dot(rg1, b1, vrg, vb), cbias), v + x);
    }
    return x;
}

static int vfilter_avx2(const int16_t * const r[8], int n, uint8_t * out) {
    const __m256i t01 = pair(v_taps[0], v_taps[1]), t23 = pair(v_taps[2], v_taps[3]),
                  t45 = pair(v_taps[4], v_taps[5]), t67 = pair(v_taps[6], v_taps[7]),
                  bias = _mm256_set1_epi32(V_BIAS);
    const __m256i t[4] = { t01, t23, t45, t67 };
    int x = 0;
    for (; x + 16 <= n; x += 16) {
        __m256i lo = bias, hi = bias;
        for (int k = 0; k < 4; k++) {
            __m256i a = _mm256_loadu_si256((const __m256i *)(r[2 * k] + x));
            __m256i b = _mm256_loadu_si256((const __m256i *)(r[2 * k + 1] + x));
            lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(a, b), t[k]));
            hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(a, b), t[k]));
        }
        /* unpacklo/hi then packs within each lane restores the order */
        __m256i v16 = _mm256_packs_epi32(_mm256_srai_epi32(lo, 19), _mm256_srai_epi32(hi, 19));
        __m256i bytes = _mm256_permute4x64_epi64(_mm256_packus_epi16(v16, v16), 0x08);
        _mm_storeu_si128((__m128i *)(out + x), _mm256_castsi256_si128(bytes));
    }
    return x;
}
#endif

/* ---- frame drivers ----------------------------------------------------------------------- */

static void row420(const uint8_t * s, int w, const struct coefs * c, uint8_t * y, int16_t * uq, int16_t * vq) {
    int x = 0;
#ifdef __AVX2__
    if (use_simd) x = row420_avx2(s, w, c, y, uq, vq);
#endif
    row420_scalar(s + 3 * (size_t)x, x, w, c, y, uq, vq);
}

static void vfilter(const int16_t * const r[8], int n, uint8_t * out) {
    int x = 0;
#ifdef __AVX2__
    if (use_simd) x = vfilter_avx2(r, n, out);
#endif
    vfilter_scalar(r, x, n, out);
}

static size_t ring_stride(int width) { return ((size_t)width / 2 + 15) & ~(size_t)15; }

size_t infvsr_rgb_to_yuv420p_scratch_bytes(int width) { return 16 * ring_stride(width) * sizeof(int16_t); }

void infvsr_rgb24_to_yuv420p(const uint8_t * rgb, ptrdiff_t rgb_stride, int width, int height, uint8_t * y,
                             ptrdiff_t y_stride, uint8_t * u, ptrdiff_t u_stride, uint8_t * v, ptrdiff_t v_stride,
                             void * scratch) {
    const struct coefs c = bt601_limited();
    const size_t rs = ring_stride(width);
    int16_t * ring_u = scratch;           /* source row r's pairs live in slot r % 8 */
    int16_t * ring_v = ring_u + 8 * rs;
    int next = 0;                         /* first source row not converted yet */
    for (int j = 0; j < height / 2; j++) {
        int last = 2 * j + 4 < height - 1 ? 2 * j + 4 : height - 1;
        for (; next <= last; next++)
            row420(rgb + next * rgb_stride, width, &c, y + next * y_stride, ring_u + (size_t)(next % 8) * rs,
                   ring_v + (size_t)(next % 8) * rs);
        const int16_t *ru[8], *rv[8];
        for (int k = 0; k < 8; k++) {
            int r = 2 * j - 3 + k;
            r = r < 0 ? 0 : r > height - 1 ? height - 1 : r;
            ru[k] = ring_u + (size_t)(r % 8) * rs;
            rv[k] = ring_v + (size_t)(r % 8) * rs;
        }
        vfilter(ru, width / 2, u + j * u_stride);
        vfilter(rv, width / 2, v + j * v_stride);
    }
}

void infvsr_rgb24_to_yuv444p(const uint8_t * rgb, ptrdiff_t rgb_stride, int width, int height, uint8_t * y,
                             ptrdiff_t y_stride, uint8_t * u, ptrdiff_t u_stride, uint8_t * v, ptrdiff_t v_stride) {
    const struct coefs c = bt601_limited();
    for (int r = 0; r < height; r++) {
        const uint8_t * s = rgb + r * rgb_stride;
        uint8_t *yr = y + r * y_stride, *ur = u + r * u_stride, *vr = v + r * v_stride;
        int x = 0;
#ifdef __AVX2__
        if (use_simd) x = row444_avx2(s, width, &c, yr, ur, vr);
#endif
        row444_scalar(s + 3 * (size_t)x, x, width, &c, yr, ur, vr);
    }
}
