/* linear with bf16 activations on AVX512-BF16 (VDPBF16PS): y = act(x . w^T + b).
 *
 * Why our own kernel and not oneDNN or OpenBLAS: OpenBLAS 0.3.21 (Debian 12) has no bf16
 * GEMM for our row-major bf16 operands with an f32 epilogue, and oneDNN (libdnnl 2.6, what
 * PyTorch 1.13 runs its bf16 matmuls on: `brg:avx512_core_bf16` on this Zen 4) would be a
 * new build dependency for the same speed. Measured on the DiT's GEMMs at 192 tokens
 * (1536x1536, 1536->8960, 8960->1536), 2 threads, CPU-time normalised on a shared machine
 * (BENCH_CPU_TIME=1 tests/bench/bench_cpu 2 5 dit; tests/bench/torch_linear_bf16.py): this
 * kernel 316-346 GFLOP/s, 69-75% of the measured VDPBF16PS ceiling (458), about 2x our f32
 * path; PyTorch bf16 (oneDNN) 160-360 GFLOP/s on the same shapes. The AMX level runs
 * linear on the TDPBF16PS kernel instead (gemm_amx.c; infvsr_cpu_linear_bf16_kernel picks);
 * the AVX2 level never gets here: bf16 activations are widened and run on the f32 OpenBLAS
 * path (backend.c).
 *
 * Layout. VDPBF16PS multiplies pairs: acc[i] += a[2i] b[2i] + a[2i+1] b[2i+1], i < 16.
 *  - x (A) is used in place: a pair x[m][2p], x[m][2p+1] is one 32-bit word, broadcast.
 *  - w (B) is packed per call, one panel of columns at a time, into 16-column strips
 *    [strip][k pair][16 columns][2]: one 64-byte load per strip and pair. A strip holds
 *    K2s pairs, ceil(K / 2) padded with zero pairs to a multiple of 16
 *    (infvsr_cpu_bf16_strip_pairs): 16 pairs of a strip are one AMX B tile, so the AMX
 *    kernel reads the same packed weights (weight_pack.c keeps one copy for both). bf16 weights
 *    are packed by 16x16 transposes of 32-bit words (a pair is one word of a row); f32 or f16
 *    weights are rounded to bf16 (as cuBLASLt needs one dtype; devsim does the same).
 *    Columns past N are zero, an odd K's last pair has a zero second half.
 *  - Micro-tile (gemm_bf16_kern.h): MR = 6 rows x 4 strips (64 columns) = 24 zmm accumulators, K in blocks
 *    of KBP pairs (the B block stays in L2), partial sums in a per-task f32 tile.
 *  - Epilogue per task on the f32 tile: bias (f32), activation, store f32 or bf16
 *    (rounded to nearest even, the bits of infvsr_f32_to_bf16): infvsr__linear_bf16_epilogue,
 *    which the AMX kernel (gemm_amx.c) shares.
 * Tasks: (48-row block) x (64-column block) of the panel, over the backend's pool. */
#include <string.h>

#include "cpu_impl.h"
#include "gemm_bf16_kern.h"
#include "simd.h"

#define SMALL_M     8   /* below: the widened f32 path (dot products, as f32 linear) */
#define MR          6
#define NRV         4
#define NT          (NRV * 16)
#define MB          (MR * 8)
#define KBP         256
#define PANEL_BYTES ((size_t)4 << 20)

void infvsr__unary_span(enum infvsr_unary_op op, const float * x, float * y, int64_t n);

bool infvsr_cpu_linear_bf16_applies(const struct infvsr_cpu_ctx * c, int64_t M, int64_t N, int64_t K) {
    return c->isa >= INFVSR_CPU_ISA_AVX512BF16 && M >= SMALL_M && K < ((int64_t)1 << 24);
}

/* ---- packing ---- */

int64_t infvsr_cpu_bf16_strip_pairs(int64_t K) {
    return ((K + 1) / 2 + 15) / 16 * 16;
}

struct pack_job {
    uint16_t *          panel;
    struct infvsr_cpu_w w;
    int64_t             n0, N, K, K2, K2s; /* K2s: pairs per strip, K2 padded (strip_pairs) */
};

AVX512BF16_FN static void pack_task(void * ctx, int64_t s, int tid) {
    const struct pack_job * j = ctx;
    uint16_t * dst = j->panel + s * j->K2s * 32;
    const int64_t nb = j->n0 + s * 16, K = j->K, K2 = j->K2;
    const int64_t valid = j->N - nb < 0 ? 0 : j->N - nb > 16 ? 16 : j->N - nb;
    if (K2 < j->K2s) memset(dst + K2 * 32, 0, (size_t)(j->K2s - K2) * 64); /* the padding pairs */
    if (valid == 0) {
        memset(dst, 0, (size_t)K2 * 64);
        return;
    }
    if (j->w.dtype == INFVSR_TYPE_BF16) {
        /* 16 pairs of 16 rows at a time: a 16x16 transpose of 32-bit words in registers
         * (4x faster than 32-bit gathers here); masked loads for the last pairs, zero rows
         * past N. */
        const uint16_t * w = j->w.data;
        const int64_t full = K / 2; /* pairs whose two halves are in the row */
        for (int64_t p0 = 0; p0 < full; p0 += 16) {
            const int64_t n = full - p0 < 16 ? full - p0 : 16;
            const __mmask16 lm = (__mmask16)(n == 16 ? 0xffff : (1u << n) - 1);
            __m512i r[16], out[16];
            for (int c = 0; c < 16; c++)
                r[c] = c < valid ? _mm512_maskz_loadu_epi32(lm, w + (size_t)(nb + c) * (size_t)K + (size_t)(2 * p0))
                                 : _mm512_setzero_si512();
            infvsr__transpose16_epi32(r, out);
            for (int64_t q = 0; q < n; q++) _mm512_store_si512((void *)(dst + (p0 + q) * 32), out[q]);
        }
        if (full < K2) { /* odd K: the last element alone */
            memset(dst + full * 32, 0, 64);
            for (int64_t c = 0; c < valid; c++) dst[full * 32 + c * 2] = w[(size_t)(nb + c) * (size_t)K + (size_t)(K - 1)];
        }
        return;
    }
    for (int64_t p = 0; p < K2; p++) {
        uint16_t * d = dst + p * 32;
        for (int64_t c = 0; c < 16; c++) {
            for (int e = 0; e < 2; e++) {
                int64_t k = 2 * p + e;
                d[c * 2 + e] = c < valid && k < K ? infvsr_f32_to_bf16(infvsr__w_get(j->w, (size_t)((nb + c) * K + k))) : 0;
            }
        }
    }
}

/* ---- epilogue (shared with the AMX kernel, gemm_amx_body.h) ---- */

void infvsr__linear_bf16_epilogue(float * ct, int64_t ldc, int64_t rows, int64_t cols, const float * bias,
                                  enum infvsr_unary_op act, void * y, enum infvsr_dtype y_dtype, int64_t N,
                                  int64_t m0, int64_t col0) {
    for (int64_t r = 0; r < rows; r++) {
        float * row = ct + r * ldc;
        if (bias) { /* explicit AVX2: GCC's -O2 left this loop scalar, a tenth of an AMX DiT chunk */
            const float * bc = bias + col0;
            int64_t i = 0;
            for (; i + 8 <= cols; i += 8) _mm256_storeu_ps(row + i, _mm256_add_ps(_mm256_loadu_ps(row + i), _mm256_loadu_ps(bc + i)));
            for (; i < cols; i++) row[i] += bc[i];
        }
        /* 8 lanes on purpose: the 16-lane span (act_bf16.c, same bits, 1.4x faster alone on
         * 64- and 256-wide rows) took more samples here than this one in a perf of the bf16
         * DiT on Sapphire Rapids (836-922 vs 775-778 per run), between AMX tiles. */
        if (act != INFVSR_UNARY_COUNT) infvsr__unary_span(act, row, row, cols);
        const size_t at = (size_t)(m0 + r) * (size_t)N + (size_t)col0;
        if (y_dtype == INFVSR_TYPE_F32) {
            memcpy((float *)y + at, row, (size_t)cols * sizeof(float));
        } else {
            uint16_t * yo = (uint16_t *)y + at;
            int64_t i = 0;
            for (; i + 8 <= cols; i += 8) _mm_storeu_si128((__m128i *)(yo + i), infvsr__round8_bf16(_mm256_loadu_ps(row + i)));
            for (; i < cols; i++) yo[i] = infvsr_f32_to_bf16(row[i]);
        }
    }
}

/* ---- micro-kernel: C[mr][64] (+)= A[mr][pairs] . B[pairs][64] (gemm_bf16_kern.h) ---- */

static inline __attribute__((always_inline)) AVX512BF16_FN void kern(const int mr, const uint16_t * a, int64_t lda,
                                                                      const uint16_t * b, int64_t bstride, int64_t np,
                                                                      bool odd_tail, float * ct, bool init) {
    const uint16_t * rows[MR];
    for (int r = 0; r < mr; r++) rows[r] = a + r * lda;
    infvsr__bf16_kern(mr, NRV, rows, NULL, 1, np, b, bstride, odd_tail, ct, init);
}

struct gemm_job {
    const uint16_t * x;
    const uint16_t * panel;
    const float *    bias;   /* f32 [N] or NULL */
    void *           y;
    enum infvsr_dtype y_dtype;
    enum infvsr_unary_op act;
    int64_t          M, N, K, K2, K2s, n0, pn, n_mb;
};

AVX512BF16_FN static void gemm_task(void * ctx, int64_t t, int tid) {
    const struct gemm_job * j = ctx;
    const int64_t mi = t % j->n_mb, ni = t / j->n_mb;
    const int64_t m0 = mi * MB, rows = j->M - m0 < MB ? j->M - m0 : MB;
    const int64_t col0 = j->n0 + ni * NT;
    const int64_t cols = j->N - col0 < NT ? j->N - col0 : NT;
    if (cols <= 0) return;
    _Alignas(64) float ct[MB * NT];
    const int64_t bstride = j->K2s * 32;
    const uint16_t * b0 = j->panel + ni * NRV * bstride;
    const bool odd = j->K & 1;
    for (int64_t kb = 0; kb < j->K2; kb += KBP) {
        int64_t np = j->K2 - kb < KBP ? j->K2 - kb : KBP;
        bool tail = odd && kb + np == j->K2;
        if (tail) np--;
        for (int64_t r0 = 0; r0 < rows; r0 += MR) {
            const uint16_t * a = j->x + (m0 + r0) * j->K + 2 * kb;
            const uint16_t * b = b0 + kb * 32;
            float * c = ct + r0 * NT;
            bool init = kb == 0;
            switch (rows - r0 < MR ? rows - r0 : MR) {
            case 6: kern(6, a, j->K, b, bstride, np, tail, c, init); break;
            case 5: kern(5, a, j->K, b, bstride, np, tail, c, init); break;
            case 4: kern(4, a, j->K, b, bstride, np, tail, c, init); break;
            case 3: kern(3, a, j->K, b, bstride, np, tail, c, init); break;
            case 2: kern(2, a, j->K, b, bstride, np, tail, c, init); break;
            default: kern(1, a, j->K, b, bstride, np, tail, c, init); break;
            }
        }
    }
    infvsr__linear_bf16_epilogue(ct, NT, rows, cols, j->bias, j->act, j->y, j->y_dtype, j->N, m0, col0);
}

size_t infvsr_cpu_linear_bf16_packed_elems(int64_t N, int64_t K) {
    return (size_t)((N + NT - 1) / NT * NT) * (size_t)infvsr_cpu_bf16_strip_pairs(K) * 2; /* strips x K2s x 32 */
}

void infvsr_cpu_linear_bf16_pack(struct infvsr_cpu_ctx * c, struct infvsr_cpu_w w, int64_t N, int64_t K,
                                 uint16_t * dst) {
    struct pack_job pj = { .panel = dst, .w = w, .n0 = 0, .N = N, .K = K, .K2 = (K + 1) / 2,
                           .K2s = infvsr_cpu_bf16_strip_pairs(K) };
    infvsr__par(c, (N + NT - 1) / NT * NRV, pack_task, &pj);
}

static enum infvsr_status linear_bf16(struct infvsr_cpu_ctx * c, const uint16_t * x, int64_t M, int64_t K,
                                      struct infvsr_cpu_w w, const uint16_t * packed, int64_t N, struct infvsr_cpu_w b,
                                      enum infvsr_unary_op act, void * y, enum infvsr_dtype y_dtype);

enum infvsr_status infvsr_cpu_op_linear_bf16(struct infvsr_cpu_ctx * c, const uint16_t * x, int64_t M, int64_t K,
                                             struct infvsr_cpu_w w, int64_t N, struct infvsr_cpu_w b,
                                             enum infvsr_unary_op act, void * y, enum infvsr_dtype y_dtype) {
    return linear_bf16(c, x, M, K, w, NULL, N, b, act, y, y_dtype);
}

enum infvsr_status infvsr_cpu_op_linear_bf16_packed(struct infvsr_cpu_ctx * c, const uint16_t * x, int64_t M,
                                                    int64_t K, const uint16_t * packed, int64_t N,
                                                    struct infvsr_cpu_w b, enum infvsr_unary_op act, void * y,
                                                    enum infvsr_dtype y_dtype) {
    const struct infvsr_cpu_w none = { 0 };
    return linear_bf16(c, x, M, K, none, packed, N, b, act, y, y_dtype);
}

/* w packed per call panel by panel (packed NULL), or its whole packed form read in place
 * (a panel is a run of strips, so panel n0 starts at strip n0 / 16). */
static enum infvsr_status linear_bf16(struct infvsr_cpu_ctx * c, const uint16_t * x, int64_t M, int64_t K,
                                      struct infvsr_cpu_w w, const uint16_t * packed, int64_t N, struct infvsr_cpu_w b,
                                      enum infvsr_unary_op act, void * y, enum infvsr_dtype y_dtype) {
    const int64_t K2 = (K + 1) / 2, K2s = infvsr_cpu_bf16_strip_pairs(K);
    int64_t pn = (int64_t)(PANEL_BYTES / ((size_t)K2s * 64)) * 16 / NT * NT; /* columns per panel */
    if (pn < NT) pn = NT;
    const int64_t n_pad = (N + NT - 1) / NT * NT;
    if (pn > n_pad) pn = n_pad;
    float * bias = NULL;
    if (b.data) {
        if (!(bias = infvsr__buf_reserve(&c->col, (size_t)N))) return INFVSR_ERR_NOMEM;
        infvsr__w_widen(bias, b, 0, (size_t)N);
    }
    /* packed strips: pn/16 x K2s x 32 bf16 = pn * K2s * 4 bytes = pn * K2s floats */
    uint16_t * panel = packed ? NULL : (uint16_t *)infvsr__buf_reserve(&c->panel, (size_t)(pn * K2s));
    if (!packed && !panel) return INFVSR_ERR_NOMEM;
    struct gemm_job g = { .x = x, .panel = panel, .bias = bias, .y = y, .y_dtype = y_dtype, .act = act,
                          .M = M, .N = N, .K = K, .K2 = K2, .K2s = K2s, .n_mb = (M + MB - 1) / MB };
    for (int64_t n0 = 0; n0 < N; n0 += pn) {
        const int64_t cols = N - n0 < pn ? N - n0 : pn, strips = (cols + NT - 1) / NT * NRV;
        if (packed) {
            g.panel = packed + (n0 / 16) * K2s * 32;
        } else {
            struct pack_job pj = { .panel = panel, .w = w, .n0 = n0, .N = N, .K = K, .K2 = K2, .K2s = K2s };
            infvsr__par(c, strips, pack_task, &pj);
        }
        g.n0 = n0;
        infvsr__par(c, g.n_mb * (strips / NRV), gemm_task, &g);
    }
    return INFVSR_OK;
}
