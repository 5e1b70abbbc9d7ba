/* conv3d with bf16 activations on AVX512-BF16 (VDPBF16PS): an implicit GEMM on the micro-
 * kernel that linear uses (gemm_bf16_kern.h), f32 accumulation over the whole K, bias in
 * f32 in the epilogue, the output rounded once to bf16 (or stored f32 when y is f32).
 *
 *   y[P, Cout] = A[P, K] . B[K, Cout],  P = To Ho Wo output positions,  K = taps x Cp
 *
 * K runs tap-major (tap = (dt, dh, dw)), channel-minor, Cp = Cin rounded up to even so a
 * pair of K is two channels of one tap: with the input copied once per call to a zero-
 * padded channels-last buffer xp [T][Hp][Wp][Cp] (the spatial pads become real zeros, so
 * no border cases remain), row p of A restricted to one tap is the Cp contiguous values at
 * xp + base(p) + off(tap). The micro-kernel takes one pointer per row and the taps as its
 * K segments, so A is never materialised (no im2col) and the accumulators stay in
 * registers across taps. Rows are any 8 output positions, crossing image rows, so strides,
 * 1-pixel images and Wo not a multiple of 8 cost nothing extra.
 * B (the weights, [Cout, Cin, kt, kh, kw] in F32/BF16/F16) is packed per call into the
 * micro-kernel's 16-column strips, rounded to bf16 (as devsim and cuBLASLt do; the VAE's
 * weights are bf16 already on a bf16 backend); zero columns past Cout, zero rows for the
 * padding channel.
 * Tiles: MR = 8 positions x 3 strips (48 output channels; the VAE's widths 96/192/384/768
 * are multiples of 48, where 64-wide strips would waste a quarter on 96), 2 or 1 strips
 * for Cout <= 32 or 16 (the heads). A task is 48 positions x 48 channels, K in blocks of
 * whole taps of about KBP pairs so the B block stays in L2; the epilogue transposes the
 * task's f32 tile into y [Cout, P].
 * Input frames are processed in groups whose xp fits XP_BYTES, so memory stays bounded at
 * any frame size (xp is about the size of x itself; the generic path needed an f32 copy
 * of x, twice that).
 *
 * Where it runs. Measured with bench_cpu conv3d (2 threads, CPU time, alternating rounds,
 * medians, Zen 4, shared machine): this kernel runs at 82-92% of the measured VDPBF16PS
 * ceiling on the VAE's wide layers and is faster than the generic path (widen, f32 kernel,
 * round) where the f32 path runs im2col or Winograd F(2x2): 1.5-2x at 384 channels on
 * 16x16 and 8x8 latents, 2.4-2.7x on the stride-2 downsampling convs, 1.4-1.8x on 1x1x1.
 * Where the f32 path takes Winograd F(4x4) (4x fewer multiplies) on a 3x3x3 kernel (96
 * channels at 64x64, 192 at 32x32) the generic path was 1.1-1.2x faster, so those shapes
 * stay on it (infvsr_cpu_conv3d_bf16_applies); with kt = 1 F(4x4) amortises its input
 * transform over one tap only and the two were even (this kernel kept: no f32 copies).
 * Winograd in bf16 itself is not done: F(4x4)'s transforms (entries up to 5) would round
 * the transformed operands to bf16 and magnify that on every output, where this direct
 * form rounds only the output.
 * Weights are packed per call (no cache yet): memory-bound, about 1.3 ms for 384x384x27,
 * half the time of that conv on an 8x8 latent, 1% on a 64x64 frame.
 *
 * Fallback: every shape of the op's contract runs here (any kernel size, stride, padding,
 * channel count, T = 1); the generic path is used for the 3x3x3 F(4x4) shapes above, on the avx2
 * level, for f32 inputs, and with the float64 reference backend (backend.c). On the amx
 * level the AMX kernel (conv3d_amx.c) runs every shape instead (3-9x faster, measured
 * there); it reuses this file's input copy, weight packing (with Cp a multiple of 32) and
 * epilogue. */
#include <string.h>

#include "conv3d_winograd.h"
#include "cpu_impl.h"
#include "gemm_bf16_kern.h"
#include "simd.h"

#define MR       8
#define MB       (MR * 6)
#define NT_MAX   48
#define KBP      512                 /* pairs per K block (whole taps, at least one) */
#define XP_BYTES ((size_t)64 << 20)  /* the channels-last input copy per frame group */

static size_t g_xp_bytes = XP_BYTES; /* a variable only so that tests can force small groups */

size_t infvsr__conv3d_bf16_set_xp_bytes(size_t bytes) {
    size_t old = g_xp_bytes;
    g_xp_bytes = bytes ? bytes : XP_BYTES;
    return old;
}

static uint64_t g_native_calls;
static bool     g_always; /* bench hook: ignore the F(4x4) preference */

bool infvsr__conv3d_bf16_set_always(bool on) {
    bool old = g_always;
    g_always = on;
    return old;
}

uint64_t infvsr__conv3d_bf16_calls(void) {
    return __atomic_load_n(&g_native_calls, __ATOMIC_RELAXED);
}

bool infvsr_cpu_conv3d_bf16_applies(const struct infvsr_cpu_ctx * c, const struct infvsr_cpu_conv * a) {
    const int64_t K = a->kt * a->kh * a->kw * (a->cin + 1);
    /* where the f32 path takes Winograd F(4x4) on a 3x3x3 kernel, it was faster than this
     * kernel on the widened inputs (see the header) */
    return c->isa >= INFVSR_CPU_ISA_AVX512BF16 && K < ((int64_t)1 << 24) &&
           (g_always || a->kt == 1 || infvsr__conv3d_winograd_tile(a) != 4);
}

/* ---- the channels-last padded input: xp [tl][Hp][Wp][Cp] for input frames [t0, t0 + tl) ---- */

struct xp_job {
    const struct infvsr_cpu_conv * a;
    const uint16_t *               x;
    uint16_t *                     xp;
    int64_t                        t0, Hp, Wp, Cp;
};

/* One row (frame tl, padded row hp) of xp: [Cin][W] -> [W][Cp]. Blocks of 16 columns x 32
 * channels: channel pairs interleaved into 32-bit words (one register per pair, a word per
 * column), a 16x16 word transpose, then one 64-byte (masked) store per column; about 4x
 * faster than a scalar transpose, which cost up to a tenth of a 1x1x1 or kt = 1 conv. */
AVX512BF16_FN static void xp_task(void * ctx, int64_t row, int tid) {
    (void)tid;
    const struct xp_job * j = ctx;
    const struct infvsr_cpu_conv * a = j->a;
    const int64_t tl = row / j->Hp, hp = row % j->Hp, h = hp - a->pad_top, Cp = j->Cp;
    uint16_t * d = j->xp + row * j->Wp * Cp;
    if (h < 0 || h >= a->h) {
        memset(d, 0, (size_t)(j->Wp * Cp) * sizeof *d);
        return;
    }
    memset(d, 0, (size_t)(a->pad_left * Cp) * sizeof *d);
    memset(d + (a->pad_left + a->w_in) * Cp, 0, (size_t)(a->pad_right * Cp) * sizeof *d);
    const int64_t plane = a->t * a->h * a->w_in;
    const uint16_t * s = j->x + ((j->t0 + tl) * a->h + h) * a->w_in;
    uint16_t * dd = d + a->pad_left * Cp;
    __m512i idx = _mm512_setzero_si512();
    for (int w = 0; w < 16; w++) /* lane 2w: channel ci at column w, lane 2w + 1: ci + 1 (lanes 16..31) */
        idx = _mm512_mask_blend_epi16((__mmask32)(3u << (2 * w)), idx, _mm512_set1_epi32(w | (16 + w) << 16));
    for (int64_t w0 = 0; w0 < a->w_in; w0 += 16) {
        const int64_t nw = a->w_in - w0 < 16 ? a->w_in - w0 : 16;
        const __mmask16 lm = (__mmask16)((1u << nw) - 1);
        for (int64_t c0 = 0; c0 < Cp; c0 += 32) {
            __m512i r[16], out[16];
            for (int64_t p = 0; p < 16; p++) {
                const int64_t ci = c0 + 2 * p;
                const __m256i e0 = ci < a->cin ? _mm256_maskz_loadu_epi16(lm, s + ci * plane + w0) : _mm256_setzero_si256();
                const __m256i e1 = ci + 1 < a->cin ? _mm256_maskz_loadu_epi16(lm, s + (ci + 1) * plane + w0) : _mm256_setzero_si256();
                r[p] = _mm512_permutexvar_epi16(idx, _mm512_inserti64x4(_mm512_castsi256_si512(e0), e1, 1));
            }
            infvsr__transpose16_epi32(r, out);
            const int64_t words = (Cp - c0) / 2 < 16 ? (Cp - c0) / 2 : 16;
            const __mmask16 sm = (__mmask16)(words == 16 ? 0xffff : (1u << words) - 1);
            for (int64_t w = 0; w < nw; w++) _mm512_mask_storeu_epi32(dd + (w0 + w) * Cp + c0, sm, out[w]);
        }
    }
}

/* ---- the weights: strips [Cout/16][K2][16][2], K = tap * Cp + ci ---- */

struct wpack_job {
    const struct infvsr_cpu_conv * a;
    uint16_t *                     wp;
    int64_t                        K2, Cp, taps;
};

/* bf16 weights with at most 32 taps (every kernel of the models): one output channel's
 * taps of channels ci and ci + 1 are two contiguous runs, interleaved into 32-bit pairs
 * (one register per 16 taps); 16 output channels of those are one 16x16 transpose away
 * from 16 strip rows (one per tap). About 3x faster than the scalar loop below, which took
 * half the time of a 384-channel conv at 8x8 (a scatter per channel was slower still). */
AVX512BF16_FN static void wpack_bf16(const struct wpack_job * j, uint16_t * dst, int64_t co0, int64_t valid) {
    const struct infvsr_cpu_conv * a = j->a;
    const uint16_t * w = a->w.data;
    const int taps = (int)j->taps, n_lo = taps < 16 ? taps : 16, n_hi = taps - n_lo;
    const int64_t np = j->Cp / 2;
    const __mmask32 lm = taps == 32 ? 0xffffffffu : (1u << taps) - 1;
    __m512i idx_lo = _mm512_setzero_si512(), idx_hi = _mm512_setzero_si512();
    for (int t = 0; t < 16; t++) { /* lane 2t: w_ci[t], lane 2t + 1: w_ci+1[t] (b's lanes are 32..63) */
        idx_lo = _mm512_mask_blend_epi16((__mmask32)(3u << (2 * t)), idx_lo, _mm512_set1_epi32(t | (32 + t) << 16));
        idx_hi = _mm512_mask_blend_epi16((__mmask32)(3u << (2 * t)), idx_hi, _mm512_set1_epi32((16 + t) | (48 + t) << 16));
    }
    for (int64_t ci = 0; ci < a->cin; ci += 2) {
        __m512i lo[16], hi[16], out[16];
        for (int64_t c = 0; c < 16; c++) {
            if (c >= valid) {
                lo[c] = hi[c] = _mm512_setzero_si512();
                continue;
            }
            const uint16_t * src = w + ((co0 + c) * a->cin + ci) * j->taps;
            const __m512i e0 = _mm512_maskz_loadu_epi16(lm, src);
            const __m512i e1 = ci + 1 < a->cin ? _mm512_maskz_loadu_epi16(lm, src + j->taps) : _mm512_setzero_si512();
            lo[c] = _mm512_permutex2var_epi16(e0, idx_lo, e1);
            hi[c] = _mm512_permutex2var_epi16(e0, idx_hi, e1);
        }
        infvsr__transpose16_epi32(lo, out);
        for (int t = 0; t < n_lo; t++) _mm512_store_si512((void *)(dst + (t * np + ci / 2) * 32), out[t]);
        if (n_hi > 0) {
            infvsr__transpose16_epi32(hi, out);
            for (int t = 0; t < n_hi; t++) _mm512_store_si512((void *)(dst + ((16 + t) * np + ci / 2) * 32), out[t]);
        }
    }
    /* zero pairs for the padding channels past Cin (the AMX kernel's Cp is a multiple of 32) */
    for (int64_t ci = (a->cin + 1) / 2 * 2; ci < j->Cp; ci += 2)
        for (int t = 0; t < taps; t++) _mm512_store_si512((void *)(dst + (t * np + ci / 2) * 32), _mm512_setzero_si512());
}

static void wpack_task(void * ctx, int64_t s, int tid) {
    (void)tid;
    const struct wpack_job * j = ctx;
    const struct infvsr_cpu_conv * a = j->a;
    uint16_t * dst = j->wp + s * j->K2 * 32;
    const int64_t co0 = s * 16, valid = a->cout - co0 < 0 ? 0 : a->cout - co0 > 16 ? 16 : a->cout - co0;
    const int64_t ktot = a->cin * j->taps; /* one output channel's weights */
    if (a->w.dtype == INFVSR_TYPE_BF16 && j->taps <= 32) {
        wpack_bf16(j, dst, co0, valid);
        return;
    }
    for (int64_t q = 0; q < j->K2; q++) {
        const int64_t tap = 2 * q / j->Cp, ci = 2 * q % j->Cp;
        uint16_t * d = dst + q * 32;
        int64_t c = 0;
        for (; c < valid && ci < a->cin; c++) { /* padding channels (ci >= Cin): zero */
            const size_t at = (size_t)((co0 + c) * ktot + ci * j->taps + tap);
            if (a->w.dtype == INFVSR_TYPE_BF16) {
                const uint16_t * w = a->w.data;
                d[2 * c]     = w[at];
                d[2 * c + 1] = ci + 1 < a->cin ? w[at + (size_t)j->taps] : 0;
            } else {
                d[2 * c]     = infvsr_f32_to_bf16(infvsr__w_get(a->w, at));
                d[2 * c + 1] = ci + 1 < a->cin ? infvsr_f32_to_bf16(infvsr__w_get(a->w, at + (size_t)j->taps)) : 0;
            }
        }
        for (; c < 16; c++) d[2 * c] = d[2 * c + 1] = 0;
    }
}

/* ---- the GEMM ---- */

struct gemm_job {
    const struct infvsr_cpu_conv * a;
    const uint16_t *               xp;
    const uint16_t *               wp;
    const float *                  bias;   /* f32 [Cout] or NULL */
    const int64_t *                tap_off; /* element offset of each tap in xp */
    void *                         y;
    enum infvsr_dtype              y_dtype;
    int64_t                        K2, Cp, taps, tap_block, nrv, n_mb;
    int64_t                        f0, Pg, P, Hp, Wp; /* this frame group: output frames from f0, Pg positions */
};

/* one micro-tile for every (rows, strips) pair the tiles use: constants inside */
static inline __attribute__((always_inline)) AVX512BF16_FN void kern_n(const int nrv, int mr, const uint16_t * const * rows,
                                                                        const int64_t * seg, int nseg, int64_t np,
                                                                        const uint16_t * b, int64_t bstride, float * ct,
                                                                        bool init) {
    switch (mr) {
    case 8: infvsr__bf16_kern(8, nrv, rows, seg, nseg, np, b, bstride, false, ct, init); break;
    case 7: infvsr__bf16_kern(7, nrv, rows, seg, nseg, np, b, bstride, false, ct, init); break;
    case 6: infvsr__bf16_kern(6, nrv, rows, seg, nseg, np, b, bstride, false, ct, init); break;
    case 5: infvsr__bf16_kern(5, nrv, rows, seg, nseg, np, b, bstride, false, ct, init); break;
    case 4: infvsr__bf16_kern(4, nrv, rows, seg, nseg, np, b, bstride, false, ct, init); break;
    case 3: infvsr__bf16_kern(3, nrv, rows, seg, nseg, np, b, bstride, false, ct, init); break;
    case 2: infvsr__bf16_kern(2, nrv, rows, seg, nseg, np, b, bstride, false, ct, init); break;
    default: infvsr__bf16_kern(1, nrv, rows, seg, nseg, np, b, bstride, false, ct, init); break;
    }
}

AVX512BF16_FN static void gemm_task(void * ctx, int64_t t, int tid) {
    (void)tid;
    const struct gemm_job * j = ctx;
    const struct infvsr_cpu_conv * a = j->a;
    const int64_t mi = t % j->n_mb, ni = t / j->n_mb, nt = j->nrv * 16;
    const int64_t p0 = mi * MB, rows = j->Pg - p0 < MB ? j->Pg - p0 : MB;
    const int64_t col0 = ni * nt, cols = a->cout - col0 < nt ? a->cout - col0 : nt;
    _Alignas(64) float ct[MB * NT_MAX];
    const uint16_t * ptr[MB];
    for (int64_t r = 0; r < rows; r++) { /* the first tap's input of each position */
        const int64_t p = p0 + r, to = p / (a->ho * a->wo), oh = (p / a->wo) % a->ho, ow = p % a->wo;
        ptr[r] = j->xp + ((to * a->st * j->Hp + oh * a->sh) * j->Wp + ow * a->sw) * j->Cp;
    }
    const int64_t bstride = j->K2 * 32, np = j->Cp / 2;
    const uint16_t * b0 = j->wp + ni * j->nrv * bstride;
    for (int64_t tb = 0; tb < j->taps; tb += j->tap_block) {
        const int nseg = (int)(j->taps - tb < j->tap_block ? j->taps - tb : j->tap_block);
        for (int64_t r0 = 0; r0 < rows; r0 += MR) {
            const int mr = (int)(rows - r0 < MR ? rows - r0 : MR);
            float * c = ct + r0 * nt;
            const uint16_t * b = b0 + tb * np * 32;
            switch (j->nrv) {
            case 3: kern_n(3, mr, ptr + r0, j->tap_off + tb, nseg, np, b, bstride, c, tb == 0); break;
            case 2: kern_n(2, mr, ptr + r0, j->tap_off + tb, nseg, np, b, bstride, c, tb == 0); break;
            default: kern_n(1, mr, ptr + r0, j->tap_off + tb, nseg, np, b, bstride, c, tb == 0); break;
            }
        }
    }
    infvsr__conv3d_bf16_epilogue(ct, nt, rows, col0, cols, j->bias, j->y, j->y_dtype, (size_t)j->P,
                                 (size_t)(j->f0 * a->ho * a->wo + p0));
}

/* The f32 tile ct [rows][nt] (rows of output positions ybase.., columns col0..; rows up to
 * the next multiple of 16 are scratch) into y [Cout, P]: column i of the tile is output
 * channel col0 + i at positions ybase .. ybase + rows, a contiguous run of y: 16x16
 * transposes of the tile, bias added, one (masked) store of 16 positions per channel (a
 * scalar transpose cost as much as the GEMM at K = 96). Shared with the AMX conv. */
AVX512BF16_FN void infvsr__conv3d_bf16_epilogue(float * ct, int64_t nt, int64_t rows, int64_t col0, int64_t cols,
                                                const float * bias, void * y, enum infvsr_dtype y_dtype, size_t P,
                                                size_t ybase) {
    const int64_t rows16 = (rows + 15) / 16 * 16;
    for (int64_t r = rows; r < rows16; r++) memset(ct + r * nt, 0, (size_t)nt * sizeof(float)); /* no stale lanes */
    for (int64_t r0 = 0; r0 < rows; r0 += 16) {
        const int64_t nr = rows - r0 < 16 ? rows - r0 : 16;
        const __mmask16 rm = (__mmask16)(nr == 16 ? 0xffff : (1u << nr) - 1);
        for (int64_t i0 = 0; i0 < cols; i0 += 16) {
            __m512i v[16], o[16];
            for (int k = 0; k < 16; k++) v[k] = _mm512_castps_si512(_mm512_load_ps(ct + (r0 + k) * nt + i0));
            infvsr__transpose16_epi32(v, o);
            const int64_t nc = cols - i0 < 16 ? cols - i0 : 16;
            for (int64_t i = 0; i < nc; i++) {
                const int64_t co = col0 + i0 + i;
                __m512 val = _mm512_castsi512_ps(o[i]);
                if (bias) val = _mm512_add_ps(val, _mm512_set1_ps(bias[co]));
                const size_t at = (size_t)co * P + ybase + (size_t)r0;
                if (y_dtype == INFVSR_TYPE_F32) {
                    _mm512_mask_storeu_ps((float *)y + at, rm, val);
                } else {
                    const __m256i h = _mm256_inserti128_si256(_mm256_castsi128_si256(infvsr__round8_bf16(_mm512_castps512_ps256(val))),
                                                              infvsr__round8_bf16(_mm512_extractf32x8_ps(val, 1)), 1);
                    _mm256_mask_storeu_epi16((uint16_t *)y + at, rm, h);
                }
            }
        }
    }
}

/* The AMX conv's input copy and weight packing (conv3d_amx.c): the same layouts with its
 * Cp (a multiple of 32). */
void infvsr__conv3d_bf16_fill_xp(struct infvsr_cpu_ctx * c, const struct infvsr_cpu_conv * a, const uint16_t * x,
                                 uint16_t * xp, int64_t t0, int64_t tl, int64_t Hp, int64_t Wp, int64_t Cp) {
    struct xp_job xj = { .a = a, .x = x, .xp = xp, .t0 = t0, .Hp = Hp, .Wp = Wp, .Cp = Cp };
    infvsr__par(c, tl * Hp, xp_task, &xj);
}

void infvsr__conv3d_bf16_pack_w(struct infvsr_cpu_ctx * c, const struct infvsr_cpu_conv * a, uint16_t * wp,
                                int64_t strips, int64_t Cp) {
    const int64_t taps = a->kt * a->kh * a->kw;
    struct wpack_job wj = { .a = a, .wp = wp, .K2 = taps * Cp / 2, .Cp = Cp, .taps = taps };
    infvsr__par(c, strips, wpack_task, &wj);
}

enum infvsr_status infvsr_cpu_op_conv3d_bf16(struct infvsr_cpu_ctx * c, const struct infvsr_cpu_conv * a,
                                             const uint16_t * x, void * y, enum infvsr_dtype y_dtype) {
    const int64_t taps = a->kt * a->kh * a->kw, Cp = (a->cin + 1) / 2 * 2, K2 = taps * Cp / 2;
    const int64_t nrv = a->cout <= 16 ? 1 : a->cout <= 32 ? 2 : 3, nt = nrv * 16;
    const int64_t n_ng = (a->cout + nt - 1) / nt, strips = n_ng * nrv;
    const int64_t Hp = a->h + a->pad_top + a->pad_bottom, Wp = a->w_in + a->pad_left + a->pad_right;
    /* panel: packed weights | f32 bias | tap offsets (int64), in float units */
    const size_t wp_f = (size_t)(strips * K2 * 16), bias_f = ((size_t)a->cout + 15) / 16 * 16;
    float * panel = infvsr__buf_reserve(&c->panel, wp_f + bias_f + 2 * (size_t)taps);
    if (!panel) return INFVSR_ERR_NOMEM;
    uint16_t * wp = (uint16_t *)panel;
    float * bias = a->b.data ? panel + wp_f : NULL;
    int64_t * tap_off = (int64_t *)(void *)(panel + wp_f + bias_f);
    if (bias) infvsr__w_widen(bias, a->b, 0, (size_t)a->cout);
    for (int64_t dt = 0, i = 0; dt < a->kt; dt++)
        for (int64_t dh = 0; dh < a->kh; dh++)
            for (int64_t dw = 0; dw < a->kw; dw++, i++) tap_off[i] = ((dt * Hp + dh) * Wp + dw) * Cp;
    struct wpack_job wj = { .a = a, .wp = wp, .K2 = K2, .Cp = Cp, .taps = taps };
    infvsr__par(c, strips, wpack_task, &wj);

    /* output frames per group: its input frames' xp within XP_BYTES (at least one) */
    const size_t frame_bytes = (size_t)(Hp * Wp * Cp) * sizeof(uint16_t);
    int64_t fg = ((int64_t)(g_xp_bytes / frame_bytes) - a->kt) / a->st + 1;
    if (fg < 1) fg = 1;
    if (fg > a->to) fg = a->to;
    const int64_t tl_max = (fg - 1) * a->st + a->kt;
    uint16_t * xp = (uint16_t *)infvsr__buf_reserve(&c->col, ((size_t)tl_max * frame_bytes + 3) / 4);
    if (!xp) return INFVSR_ERR_NOMEM;

    struct gemm_job g = { .a = a, .xp = xp, .wp = wp, .bias = bias, .tap_off = tap_off, .y = y, .y_dtype = y_dtype,
                          .K2 = K2, .Cp = Cp, .taps = taps, .nrv = nrv, .P = a->to * a->ho * a->wo, .Hp = Hp, .Wp = Wp };
    g.tap_block = KBP / (Cp / 2) > 0 ? KBP / (Cp / 2) : 1;
    for (int64_t f0 = 0; f0 < a->to; f0 += fg) {
        const int64_t nf = a->to - f0 < fg ? a->to - f0 : fg, tl = (nf - 1) * a->st + a->kt;
        struct xp_job xj = { .a = a, .x = x, .xp = xp, .t0 = f0 * a->st, .Hp = Hp, .Wp = Wp, .Cp = Cp };
        infvsr__par(c, tl * Hp, xp_task, &xj);
        g.f0 = f0;
        g.Pg = nf * a->ho * a->wo;
        g.n_mb = (g.Pg + MB - 1) / MB;
        infvsr__par(c, g.n_mb * n_ng, gemm_task, &g);
    }
    __atomic_fetch_add(&g_native_calls, 1, __ATOMIC_RELAXED);
    return INFVSR_OK;
}
