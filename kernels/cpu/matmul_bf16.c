/* Batched matmul with bf16 operands on VDPBF16PS: c[B, M, N] = alpha * a[B, M, K] . op(b),
 * op(b) = b[B, N, K]^T (trans_b) or b[B, K, N], f32 accumulation, alpha applied in f32 to
 * the sum, c stored as f32 or rounded once to bf16.
 *
 * Why: the generic path widened a, b and c whole and ran one OpenBLAS sgemm per batch entry
 * from the calling thread; the bf16 Swin encoder's explicit attention makes 2 x 384 such
 * small products per block (q k^T: 144 x 144 x 32, p v: 144 x 32 x 144), where the
 * conversion passes, OpenBLAS's per-call overhead and its yielding threads cost more than
 * the arithmetic. Here a pool task takes one batch entry (or a block of its rows when the
 * batch is small), packs that entry's b into 16-column strips in a per-thread buffer
 * (the layout of gemm_bf16_kern.h: [strip][k pair][16 columns][2], an odd K's last pair
 * with a zero second half) and runs the shared micro-kernel on 6-row x (1-4)-strip tiles,
 * reading a in place. The amx level runs matmul_amx.c instead (TDPBF16PS tiles; a 16 x 32
 * block of these products is one or a few tile operations).
 *  - trans_b, b [N, K]: a strip row is a pair b[n][2p], b[n][2p+1], one 32-bit word of a
 *    row of b: 16 rows x 16 pairs at a time by a 16x16 transpose of words.
 *  - b [K, N]: a strip row interleaves rows 2p and 2p+1 of b: two 16-column loads,
 *    zero-extended to 32 bits, the odd row shifted into the high half.
 * Small products (M, N or K < 8) keep the generic path (backend.c). */
#include <string.h>

#include "cpu_impl.h"
#include "gemm_bf16_kern.h"
#include "simd.h"

#define MR        6
#define NRV       4
#define MIN_DIM   8
#define MAX_PACK  ((int64_t)4 << 20) /* floats of packed b per thread (16 MiB) */

static _Atomic uint64_t g_calls;

uint64_t infvsr__matmul_bf16_calls(void) {
    return g_calls;
}

bool infvsr_cpu_matmul_bf16_applies(const struct infvsr_cpu_ctx * c, int64_t B, int64_t M, int64_t K, int64_t N) {
    (void)B;
    const int64_t strips = (N + 15) / 16, K2 = (K + 1) / 2;
    return infvsr_cpu_act_bf16_native(c) && M >= MIN_DIM && N >= MIN_DIM && K >= MIN_DIM &&
           strips * K2 * 16 <= MAX_PACK;
}

struct mm_job {
    const uint16_t *  a, * b;
    void *            out;
    enum infvsr_dtype c_dtype;
    bool              trans_b;
    float             alpha;
    int64_t           B, M, K, N, K2, strips, mb, n_mb;
    uint16_t *        pack;   /* per thread: strips x K2 x 32 bf16 */
    int64_t           pack_stride;
};

/* b [N, K] (one batch entry) into strips: pairs of a row are words, transposed 16x16. */
AVX512BF16_FN static void pack_trans(const uint16_t * b, int64_t N, int64_t K, int64_t K2, int64_t strips,
                                     uint16_t * dst) {
    const int64_t full = K / 2; /* pairs whose two halves are in the row */
    for (int64_t s = 0; s < strips; s++) {
        uint16_t * d = dst + s * K2 * 32;
        const int64_t n0 = s * 16, valid = N - n0 < 16 ? N - n0 : 16;
        for (int64_t p0 = 0; p0 < full; p0 += 16) {
            const int64_t np = full - p0 < 16 ? full - p0 : 16;
            const __mmask16 lm = (__mmask16)(np == 16 ? 0xffff : (1u << np) - 1);
            __m512i r[16], o[16];
            for (int c = 0; c < 16; c++)
                r[c] = c < valid ? _mm512_maskz_loadu_epi32(lm, b + (n0 + c) * K + 2 * p0) : _mm512_setzero_si512();
            infvsr__transpose16_epi32(r, o);
            for (int64_t q = 0; q < np; q++) _mm512_store_si512((void *)(d + (p0 + q) * 32), o[q]);
        }
        if (full < K2) { /* odd K: the last element alone, the zero beside it */
            memset(d + full * 32, 0, 64);
            for (int64_t c = 0; c < valid; c++) d[full * 32 + c * 2] = b[(n0 + c) * K + K - 1];
        }
    }
}

/* b [K, N] (one batch entry) into strips: rows 2p and 2p+1 interleaved, 16 columns a time. */
AVX512BF16_FN static void pack_plain(const uint16_t * b, int64_t N, int64_t K, int64_t K2, int64_t strips,
                                     uint16_t * dst) {
    for (int64_t s = 0; s < strips; s++) {
        uint16_t * d = dst + s * K2 * 32;
        const int64_t n0 = s * 16, valid = N - n0 < 16 ? N - n0 : 16;
        const __mmask16 cm = (__mmask16)(valid == 16 ? 0xffff : (1u << valid) - 1);
        for (int64_t p = 0; p < K2; p++) {
            __m512i lo = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(cm, b + 2 * p * N + n0));
            __m512i hi = 2 * p + 1 < K ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(cm, b + (2 * p + 1) * N + n0))
                                       : _mm512_setzero_si512();
            _mm512_store_si512((void *)(d + p * 32), _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
        }
    }
}

/* One tile: rows mr (<= MR) x nrv strips of c, from the packed strips at bp. */
static inline __attribute__((always_inline)) AVX512BF16_FN void tile(const int mr, const int nrv, const uint16_t * a,
                                                                      int64_t K, const uint16_t * bp, int64_t bstride,
                                                                      int64_t np, bool odd, float * ct) {
    const uint16_t * rows[MR];
    for (int r = 0; r < mr; r++) rows[r] = a + r * K;
    infvsr__bf16_kern(mr, nrv, rows, NULL, 1, np, bp, bstride, odd, ct, true);
}

#define TILE_NRV(mr)                                                          \
    switch (nrv) {                                                            \
    case 4: tile(mr, 4, a, K, bp, bstride, np, odd, ct); break;               \
    case 3: tile(mr, 3, a, K, bp, bstride, np, odd, ct); break;               \
    case 2: tile(mr, 2, a, K, bp, bstride, np, odd, ct); break;               \
    default: tile(mr, 1, a, K, bp, bstride, np, odd, ct); break;              \
    }

AVX512BF16_FN static void run_tile(int mr, int nrv, const uint16_t * a, int64_t K, const uint16_t * bp,
                                   int64_t bstride, int64_t np, bool odd, float * ct) {
    switch (mr) {
    case 6: TILE_NRV(6) break;
    case 5: TILE_NRV(5) break;
    case 4: TILE_NRV(4) break;
    case 3: TILE_NRV(3) break;
    case 2: TILE_NRV(2) break;
    default: TILE_NRV(1) break;
    }
}

void infvsr__matmul_store_rows(const float * ct, int64_t ldc, int64_t rows, int64_t cols, float alpha, void * out,
                               enum infvsr_dtype c_dtype, int64_t at, int64_t ld) {
    const __m256 al = _mm256_set1_ps(alpha);
    for (int64_t r = 0; r < rows; r++) {
        const float * t = ct + r * ldc;
        const int64_t o = at + r * ld;
        int64_t i = 0;
        if (c_dtype == INFVSR_TYPE_F32) {
            float * y = (float *)out + o;
            for (; i + 8 <= cols; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(al, _mm256_loadu_ps(t + i)));
            for (; i < cols; i++) y[i] = alpha * t[i];
        } else {
            uint16_t * y = (uint16_t *)out + o;
            for (; i + 8 <= cols; i += 8)
                _mm_storeu_si128((__m128i *)(void *)(y + i), infvsr__round8_bf16(_mm256_mul_ps(al, _mm256_loadu_ps(t + i))));
            for (; i < cols; i++) y[i] = infvsr_f32_to_bf16(alpha * t[i]);
        }
    }
}

AVX512BF16_FN static void mm_task(void * ctx, int64_t t, int tid) {
    const struct mm_job * j = ctx;
    const int64_t bi = t / j->n_mb, m0 = (t % j->n_mb) * j->mb;
    const int64_t m1 = m0 + j->mb < j->M ? m0 + j->mb : j->M;
    const int64_t K = j->K, N = j->N, K2 = j->K2, bstride = K2 * 32;
    uint16_t * bp = j->pack + (int64_t)tid * j->pack_stride;
    const uint16_t * b = j->b + bi * K * N;
    if (j->trans_b) pack_trans(b, N, K, K2, j->strips, bp);
    else pack_plain(b, N, K, K2, j->strips, bp);
    const bool odd = K & 1;
    const int64_t np = K / 2;
    _Alignas(64) float ct[MR * NRV * 16];
    for (int64_t r0 = m0; r0 < m1; r0 += MR) {
        const int mr = m1 - r0 < MR ? (int)(m1 - r0) : MR;
        const uint16_t * a = j->a + (bi * j->M + r0) * K;
        for (int64_t s0 = 0; s0 < j->strips; s0 += NRV) {
            const int nrv = j->strips - s0 < NRV ? (int)(j->strips - s0) : NRV;
            run_tile(mr, nrv, a, K, bp + s0 * bstride, bstride, np, odd, ct);
            const int64_t cols = N - s0 * 16 < nrv * 16 ? N - s0 * 16 : nrv * 16;
            infvsr__matmul_store_rows(ct, nrv * 16, mr, cols, j->alpha, j->out, j->c_dtype, (bi * j->M + r0) * N + s0 * 16, N);
        }
    }
}

enum infvsr_status infvsr_cpu_op_matmul_bf16(struct infvsr_cpu_ctx * c, const uint16_t * a, const uint16_t * b,
                                             int64_t B, int64_t M, int64_t K, int64_t N, bool trans_b, float alpha,
                                             void * out, enum infvsr_dtype c_dtype) {
    if (c->isa == INFVSR_CPU_ISA_AMX) {
        const enum infvsr_status st = infvsr_cpu_op_matmul_amx(c, a, b, B, M, K, N, trans_b, alpha, out, c_dtype);
        if (st == INFVSR_OK) g_calls++;
        return st;
    }
    struct mm_job j = { .a = a, .b = b, .out = out, .c_dtype = c_dtype, .trans_b = trans_b, .alpha = alpha,
                        .B = B, .M = M, .K = K, .N = N, .K2 = (K + 1) / 2, .strips = (N + 15) / 16 };
    /* a task per batch entry, or per block of rows (a multiple of MR) when there are fewer
     * entries than 4 tasks per thread: each task packs its entry's b once */
    const int64_t want = 4 * (int64_t)c->n_threads;
    int64_t per = B >= want ? 1 : (want + B - 1) / B;
    int64_t mb = (M + per - 1) / per;
    mb = (mb + MR - 1) / MR * MR;
    if (mb < 8 * MR && M > 8 * MR) mb = 8 * MR; /* a block of rows worth its packing */
    j.mb = mb < M ? mb : M;
    j.n_mb = (M + j.mb - 1) / j.mb;
    /* pack stride in bf16 elements, a multiple of 32 (64 bytes) */
    j.pack_stride = j.strips * j.K2 * 32;
    float * buf = infvsr__buf_reserve(&c->scratch, (size_t)(j.pack_stride / 2) * (size_t)c->n_threads);
    if (!buf) return INFVSR_ERR_NOMEM;
    j.pack = (uint16_t *)buf;
    infvsr__par(c, B * j.n_mb, mm_task, &j);
    g_calls++;
    return INFVSR_OK;
}
