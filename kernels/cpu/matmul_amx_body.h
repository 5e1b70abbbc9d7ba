/* The batched matmul with bf16 operands on AMX-BF16 tiles (TDPBF16PS): c[B, M, N] =
 * alpha * a[B, M, K] . op(b), op(b) = b[B, N, K]^T (trans_b) or b[B, K, N], f32
 * accumulation, alpha applied in f32 to the sum, c stored f32 or rounded once to bf16: the
 * contract of infvsr_cpu_op_matmul_bf16, whose `amx` level runs this (matmul_amx.c).
 *
 * Why: the bf16 Swin encoder's explicit window attention is 2 x (windows x heads) small
 * products per block (q k^T: 144 x 144 x 32, p v: 144 x 32 x 144). On VDPBF16PS they were
 * ~12% of an encode on Sapphire Rapids; a 16 x 16 x 32 TDPBF16PS does in 16 cycles what
 * takes VDPBF16PS 16 instructions, and with K = 32 one tile holds a whole row's depth.
 *
 * Not a normal header: the kernel's one source, included twice like gemm_amx_body.h:
 * matmul_amx.c includes it after amx_tile.h with the real instructions (the product),
 * tests/ops/test_matmul_amx.c after amx_tile.h with INFVSR_AMX_EMULATE, so machines without
 * AMX (CI) verify the same layouts and edges. Outside the tile primitives only plain C and
 * AVX2 (the build's baseline).
 *
 * Layouts (palette 1, all 8 tiles 16 rows x 64 bytes; KT = K rounded up to 32, in tiles):
 *  - b of one batch entry, packed per task into strips of 16 columns, [strip][KT * 16
 *    pairs][16][2] bf16: the VNNI layout of B tiles (1 KB each, contiguous), pairs past K
 *    and columns past N zero, the strip count even (a micro-kernel reads two).
 *  - a read in place as A tiles (16 rows at a stride of K) when K is a multiple of 32 and
 *    the 16 rows exist; otherwise the 16 rows are copied into a zero-padded [16][KT * 32]
 *    buffer first, so no tile load reads past a row or past the tensor.
 *  - micro-kernel: 16 rows x 32 columns (tmm0, 1) from one A tile (tmm4) and two B tiles
 *    (tmm6, 7) per k tile, stored to an f32 tile [16][32], then scaled and stored as c
 *    (infvsr__matmul_store_rows, matmul_bf16.c's store).
 * Tasks: a batch entry (or a block of its rows when there are few entries), as
 * matmul_bf16.c; LDTILECFG at a task's start and TILERELEASE at its end. */
#include <immintrin.h>
#include <string.h>

#include "cpu_impl.h"
#include "simd.h"
#include "transpose8.h"

#define MMX_TM   16
#define MMX_TK   32
#define MMX_TN   16            /* columns of a B or C tile */
#define MMX_TILE (MMX_TM * MMX_TK) /* bf16 in one A or B tile */

static const struct infvsr_amx_cfg mmx_cfg = {
    .palette = 1,
    .colsb   = { 64, 64, 64, 64, 64, 64, 64, 64 },
    .rows    = { 16, 16, 16, 16, 16, 16, 16, 16 },
};

struct mmx_job {
    const uint16_t *  a, * b;
    void *            out;
    enum infvsr_dtype c_dtype;
    bool              trans_b;
    float             alpha;
    int64_t           B, M, K, N;
    int64_t           KT, strips;  /* k tiles; strips of 16 columns, even */
    int64_t           mb, n_mb;    /* rows per task, tasks per batch entry */
    uint16_t *        buf;         /* per thread: packed b, then the padded A rows */
    int64_t           buf_stride;  /* bf16 per thread */
};

static int64_t mmx_pack_elems(const struct mmx_job * j) { return j->strips * j->KT * MMX_TILE; }

/* b [N, K] into strips: pair p of column n is word p of row n of b; 8 rows x 8 pairs move
 * by one transpose of words while the 16 elements are inside the row. */
static void mmx_pack_trans(const struct mmx_job * j, const uint16_t * b, uint16_t * dst) {
    const int64_t N = j->N, K = j->K, P2 = j->KT * 16, full = K / 2;
    memset(dst, 0, (size_t)mmx_pack_elems(j) * sizeof *dst);
    for (int64_t n8 = 0; n8 < N; n8 += 8) {
        uint16_t * strip = dst + (n8 / 16) * P2 * 32 + (n8 % 16) * 2;
        const int64_t rows = N - n8 < 8 ? N - n8 : 8;
        int64_t p = 0;
        for (; p + 8 <= full; p += 8) {
            __m256i r[8];
            for (int i = 0; i < 8; i++)
                r[i] = i < rows ? _mm256_loadu_si256((const __m256i *)(const void *)(b + (n8 + i) * K + 2 * p))
                                : _mm256_setzero_si256();
            infvsr__transpose8_epi32(r);
            for (int q = 0; q < 8; q++) _mm256_storeu_si256((__m256i *)(void *)(strip + (p + q) * 32), r[q]);
        }
        for (; 2 * p < K; p++) /* the last pairs; an odd K's last element with the zero beside it */
            for (int64_t i = 0; i < rows; i++) {
                strip[p * 32 + 2 * i] = b[(n8 + i) * K + 2 * p];
                if (2 * p + 1 < K) strip[p * 32 + 2 * i + 1] = b[(n8 + i) * K + 2 * p + 1];
            }
    }
}

/* b [K, N] into strips: rows 2p and 2p + 1 interleaved, 16 columns at a time. */
static void mmx_pack_plain(const struct mmx_job * j, const uint16_t * b, uint16_t * dst) {
    const int64_t N = j->N, K = j->K, P2 = j->KT * 16;
    memset(dst, 0, (size_t)mmx_pack_elems(j) * sizeof *dst);
    for (int64_t s = 0; s * 16 < N; s++) {
        const int64_t n0 = s * 16, cols = N - n0 < 16 ? N - n0 : 16;
        uint16_t * d = dst + s * P2 * 32;
        for (int64_t p = 0; 2 * p < K; p++, d += 32) {
            const uint16_t * r0 = b + 2 * p * N + n0, * r1 = r0 + N;
            if (cols == 16 && 2 * p + 1 < K) {
                const __m256i lo = _mm256_loadu_si256((const __m256i *)(const void *)r0);
                const __m256i hi = _mm256_loadu_si256((const __m256i *)(const void *)r1);
                const __m256i x0 = _mm256_unpacklo_epi16(lo, hi), x1 = _mm256_unpackhi_epi16(lo, hi);
                _mm256_storeu_si256((__m256i *)(void *)d, _mm256_permute2x128_si256(x0, x1, 0x20));
                _mm256_storeu_si256((__m256i *)(void *)(d + 16), _mm256_permute2x128_si256(x0, x1, 0x31));
                continue;
            }
            for (int64_t c = 0; c < cols; c++) {
                d[2 * c] = r0[c];
                if (2 * p + 1 < K) d[2 * c + 1] = r1[c];
            }
        }
    }
}

AMX_FN static void mmx_task(void * ctx, int64_t t, int tid) {
    const struct mmx_job * j = ctx;
    const int64_t bi = t / j->n_mb, m0 = (t % j->n_mb) * j->mb, m1 = m0 + j->mb < j->M ? m0 + j->mb : j->M;
    const int64_t K = j->K, KT = j->KT, Kp = KT * MMX_TK, P2 = KT * 16;
    uint16_t * bp = j->buf + (int64_t)tid * j->buf_stride, * apad = bp + mmx_pack_elems(j);
    if (j->trans_b) mmx_pack_trans(j, j->b + bi * K * j->N, bp);
    else mmx_pack_plain(j, j->b + bi * K * j->N, bp);
    _Alignas(64) float ct[MMX_TM * 2 * MMX_TN];
    amx_config(&mmx_cfg);
    for (int64_t r0 = m0; r0 < m1; r0 += MMX_TM) {
        const int64_t rows = m1 - r0 < MMX_TM ? m1 - r0 : MMX_TM;
        const uint16_t * a = j->a + (bi * j->M + r0) * K;
        int64_t a_stride = K * 2;
        if (K % MMX_TK || rows < MMX_TM) { /* the rows zero-padded to whole tiles */
            memset(apad, 0, (size_t)(MMX_TM * Kp) * sizeof *apad);
            for (int64_t r = 0; r < rows; r++) memcpy(apad + r * Kp, a + r * K, (size_t)K * sizeof *a);
            a = apad, a_stride = Kp * 2;
        }
        for (int64_t s = 0; s < j->strips; s += 2) {
            const uint16_t * b0 = bp + s * P2 * 32, * b1 = b0 + P2 * 32;
            amx_zero(0);
            amx_zero(1);
            for (int64_t kt = 0; kt < KT; kt++) {
                amx_load(4, a + kt * MMX_TK, a_stride);
                amx_load(6, b0 + kt * MMX_TILE, 64);
                amx_load(7, b1 + kt * MMX_TILE, 64);
                amx_dpbf16ps(0, 4, 6);
                amx_dpbf16ps(1, 4, 7);
            }
            amx_store(0, ct, 2 * MMX_TN * (int64_t)sizeof(float));
            amx_store(1, ct + MMX_TN, 2 * MMX_TN * (int64_t)sizeof(float));
            const int64_t n0 = s * 16, cols = j->N - n0 < 32 ? j->N - n0 : 32;
            /* the tile state stays configured over the store: plain AVX2 code there */
            infvsr__matmul_store_rows(ct, 2 * MMX_TN, rows, cols, j->alpha, j->out, j->c_dtype,
                                      (bi * j->M + r0) * j->N + n0, j->N);
        }
    }
    amx_release();
}

/* The contract of infvsr_cpu_op_matmul_bf16 (shapes validated, M, N, K >= 1). */
static enum infvsr_status mmx_matmul(struct infvsr_cpu_ctx * c, const uint16_t * a, const uint16_t * b, int64_t B,
                                     int64_t M, int64_t K, int64_t N, bool trans_b, float alpha, void * out,
                                     enum infvsr_dtype c_dtype) {
    struct mmx_job j = { .a = a, .b = b, .out = out, .c_dtype = c_dtype, .trans_b = trans_b, .alpha = alpha,
                         .B = B, .M = M, .K = K, .N = N, .KT = (K + MMX_TK - 1) / MMX_TK,
                         .strips = (N + 31) / 32 * 2 };
    /* a task per batch entry, or per block of 16-row tiles when there are fewer entries
     * than 4 tasks per thread: each task packs its entry's b once */
    const int     n_threads = infvsr_threadpool_n_threads(c->pool);
    const int64_t want = 4 * (int64_t)n_threads, per = B >= want ? 1 : (want + B - 1) / B;
    int64_t mb = (M + per - 1) / per;
    mb = (mb + MMX_TM - 1) / MMX_TM * MMX_TM;
    if (mb < 4 * MMX_TM && M > 4 * MMX_TM) mb = 4 * MMX_TM; /* a block of rows worth its packing */
    j.mb = mb < M ? mb : M;
    j.n_mb = (M + j.mb - 1) / j.mb;
    /* per thread: the packed b, then 16 padded rows of a; a multiple of 32 bf16 (64 bytes) */
    j.buf_stride = mmx_pack_elems(&j) + MMX_TM * j.KT * MMX_TK;
    float * buf = infvsr__buf_reserve(&c->scratch, (size_t)(j.buf_stride / 2) * (size_t)n_threads);
    if (!buf) return INFVSR_ERR_NOMEM;
    j.buf = (uint16_t *)buf;
    infvsr__par(c, B * j.n_mb, mmx_task, &j);
    return INFVSR_OK;
}
