/* Native bf16 attention on AVX512-BF16 (VDPBF16PS): the kernel set of the shared flash
 * driver (attention_impl.h) for bf16 q/k/v, so the bf16 DiT KV cache and the chunk's
 * q/k/v are read as they are (no widened f32 copies of the tensors, half the bytes moved).
 *
 * Numerics: q.k^T and p.v are bf16 x bf16 products with f32 accumulation (VDPBF16PS);
 * the scores, scale, bias, running max/sum and the rescaling of the output stay f32 (the
 * driver's softmax); the probabilities are rounded to bf16 (to nearest even) only as the
 * left operand of p.v, while the row sums l use the f32 probabilities: what flash
 * attention and PyTorch's bf16 attention do. The output is rounded once (bf16) or stored
 * f32. Measured against the float64 reference on the op table: see docs/ARCHITECTURE.md.
 *
 * Tiles (VDPBF16PS multiplies pairs along the reduction: acc[c] += a[2p] b[2p][c] +
 * a[2p+1] b[2p+1][c], 16 columns c per zmm):
 *   Qp [QGROUP, 2 D2] bf16, D2 = ceil(D / 2) pairs; an odd D ends with a zero
 *   Kt [4 strips of 16 keys][D2 pairs][16][2]   the key block as pairs of channels
 *   Vp [Dp / 16 strips of 16 channels][BK / 2 pairs][16][2]   pairs of keys
 *   P  [BQ, BK] bf16   the probabilities of one sub-block (S rounded)
 * Zero padding: keys past the block end (K and V), channels past D (V) and the odd
 * channel's partner (Q and K), so every padded product is 0 * finite.
 * Micro-kernel: R <= 6 rows x NV <= 4 strips of 16 columns = up to 24 zmm accumulators,
 * one broadcast 32-bit pair of A per row, one 64-byte load of B per strip and pair; the
 * same kernel computes S = Q K^T (R query rows x the block's keys, over D2 pairs) and
 * O += P V (R rows x 64 channels, over the block's key pairs). */
#include <string.h>

#include "attention_impl.h"
#include "simd.h"

#define AVX512BF16_FN __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

#define BQ     ATTN_BQ
#define BK     ATTN_BK
#define QGROUP ATTN_QGROUP
#define MR     6

bool infvsr_cpu_attention_bf16_applies(const struct infvsr_cpu_ctx * c) {
    return c->isa >= INFVSR_CPU_ISA_AVX512BF16;
}

static inline int64_t pairs_of(int64_t D) { return (D + 1) / 2; }

static void bf16_tile_bytes(int64_t D, int64_t Dp, size_t bytes[4]) {
    const int64_t D2 = pairs_of(D);
    bytes[0] = (size_t)(QGROUP * 2 * D2) * 2; /* Qp */
    bytes[1] = (size_t)(BK * 2 * D2) * 2;     /* Kt */
    bytes[2] = (size_t)(Dp * BK) * 2;         /* Vp */
    bytes[3] = (size_t)(BQ * BK) * 2;         /* P  */
}

static void bf16_load_q(const struct infvsr_cpu_attn * a, int64_t h, int64_t i0, int64_t nq, int64_t rows,
                        const struct attn_tiles * t) {
    const int64_t D = a->head_dim, HD = a->n_heads * D, W = 2 * pairs_of(D);
    uint16_t * Qp = t->Qp;
    for (int64_t i = 0; i < rows; i++) {
        uint16_t * row = Qp + i * W;
        if (i < nq) {
            memcpy(row, (const uint16_t *)a->q + (i0 + i) * HD + h * D, (size_t)D * 2);
            if (W > D) row[D] = 0;
        } else {
            memset(row, 0, (size_t)W * 2);
        }
    }
}

/* One pair of channels (d, d + 1) of a row as a 32-bit word, d + 1 < D. */
static inline uint32_t pair_at(const uint16_t * row, int64_t d) {
    uint32_t w;
    memcpy(&w, row + d, sizeof w); /* rows of an odd D are not 4-byte aligned */
    return w;
}

AVX512BF16_FN static void bf16_pack_kv(const struct infvsr_cpu_attn * a, int64_t h, int seg, const void * kv,
                                       const void * vv, int64_t j0, int64_t nk, int64_t Dp, struct attn_tiles * t) {
    const int64_t D = a->head_dim, HD = a->n_heads * D, D2 = pairs_of(D), full = D / 2;
    const int64_t nkp = (nk + 15) / 16 * 16;
    const uint16_t * k = (const uint16_t *)kv + j0 * HD + h * D, * v = (const uint16_t *)vv + j0 * HD + h * D;
    /* K: key j's channel pairs go to strip j / 16, column j % 16 */
    uint32_t * Kt = t->Kt;
    for (int64_t j = 0; j < nkp; j++) {
        uint32_t * dst = Kt + (j / 16) * D2 * 16 + (j % 16);
        if (j >= nk) {
            for (int64_t p = 0; p < D2; p++) dst[p * 16] = 0;
            continue;
        }
        const uint16_t * row = k + j * HD;
        for (int64_t p = 0; p < full; p++) dst[p * 16] = pair_at(row, 2 * p);
        if (full < D2) dst[full * 16] = row[D - 1]; /* odd D: the last channel and a zero */
    }
    /* V: keys (2p, 2p + 1) of 16 channels interleaved into one zmm of pairs */
    uint32_t * Vp = t->Vp;
    const int64_t nk2 = (nk + 1) / 2, strips = Dp / 16;
    for (int64_t s = 0; s < strips; s++) {
        const int64_t c0 = s * 16, nc = D - c0 < 16 ? D - c0 : 16;
        const __mmask16 cm = (__mmask16)((1u << nc) - 1);
        for (int64_t p = 0; p < nk2; p++) {
            __m512i lo = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(cm, v + 2 * p * HD + c0));
            __m512i hi = 2 * p + 1 < nk ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(cm, v + (2 * p + 1) * HD + c0))
                                        : _mm512_setzero_si512();
            _mm512_store_si512((void *)(Vp + (s * (BK / 2) + p) * 16), _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
        }
    }
}

/* C[r][v*16 .. +16) (+)= sum_p A[r][2p, 2p+1] . B[v][p][16][2] for r < R, v < NV. */
static inline __attribute__((always_inline)) AVX512BF16_FN void kern(const int R, const int NV, const uint16_t * a,
                                                                      int64_t lda, const uint32_t * b, int64_t bstride,
                                                                      int64_t np, float * c, int64_t ldc, bool init) {
    __m512 acc[MR][4];
    _Pragma("GCC unroll 6") for (int r = 0; r < R; r++) {
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[r][v] =
            init ? _mm512_setzero_ps() : _mm512_loadu_ps(c + r * ldc + v * 16);
    }
    for (int64_t p = 0; p < np; p++) {
        __m512i bv[4];
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) bv[v] = _mm512_load_si512((const void *)(b + v * bstride + p * 16));
        _Pragma("GCC unroll 6") for (int r = 0; r < R; r++) {
            int32_t pair;
            memcpy(&pair, a + r * lda + 2 * p, sizeof pair);
            __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, (__m512bh)bv[v]);
        }
    }
    _Pragma("GCC unroll 6") for (int r = 0; r < R; r++) {
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) _mm512_storeu_ps(c + r * ldc + v * 16, acc[r][v]);
    }
}

#define KERN_NV(R, NV) kern(R, NV, a, lda, b, bstride, np, c, ldc, init)
#define KERN_ROWS(R)                          \
    switch (nv) {                             \
    case 4: KERN_NV(R, 4); break;             \
    case 3: KERN_NV(R, 3); break;             \
    case 2: KERN_NV(R, 2); break;             \
    default: KERN_NV(R, 1); break;            \
    }

/* Rows [0, rows) of C over nv strips, 6 rows at a time. */
AVX512BF16_FN static void gemm_rows(int64_t rows, int nv, const uint16_t * a, int64_t lda, const uint32_t * b,
                                    int64_t bstride, int64_t np, float * c, int64_t ldc, bool init) {
    for (int64_t r0 = 0; r0 < rows; r0 += MR, a += MR * lda, c += MR * ldc) {
        switch (rows - r0 < MR ? rows - r0 : MR) {
        case 6: KERN_ROWS(6); break;
        case 5: KERN_ROWS(5); break;
        case 4: KERN_ROWS(4); break;
        case 3: KERN_ROWS(3); break;
        case 2: KERN_ROWS(2); break;
        default: KERN_ROWS(1); break;
        }
    }
}

AVX512BF16_FN static void bf16_qk(const struct attn_tiles * t, int64_t r0, int64_t nq_blk, int64_t D, int64_t nkp) {
    const int64_t D2 = pairs_of(D);
    gemm_rows(nq_blk, (int)(nkp / 16), (const uint16_t *)t->Qp + r0 * 2 * D2, 2 * D2, t->Kt, D2 * 16, D2, t->S, BK,
              true);
}

AVX512BF16_FN static void bf16_pv(const struct attn_tiles * t, int64_t r0, int64_t nq_blk, int64_t nk, int64_t Dp) {
    /* P = S rounded to bf16; columns [nk, nkp) of S are the probabilities 0 */
    const int64_t nkp = (nk + 15) / 16 * 16, nk2 = (nk + 1) / 2;
    uint16_t * P = t->P;
    for (int64_t i = 0; i < nq_blk; i++) {
        for (int64_t j = 0; j < nkp; j += 16)
            _mm256_store_si256((__m256i *)(void *)(P + i * BK + j), (__m256i)_mm512_cvtneps_pbh(_mm512_load_ps(t->S + i * BK + j)));
    }
    float * O = t->O + r0 * Dp;
    for (int64_t c0 = 0; c0 < Dp; c0 += 64) {
        const int nv = Dp - c0 < 64 ? (int)((Dp - c0) / 16) : 4;
        gemm_rows(nq_blk, nv, P, BK, (const uint32_t *)t->Vp + (c0 / 16) * (BK / 2) * 16, (BK / 2) * 16, nk2, O + c0, Dp,
                  false);
    }
}

void infvsr__attention_store_bf16(const struct infvsr_cpu_attn * a, int64_t h, int64_t i0, int64_t nq, int64_t Dp,
                                  const struct attn_tiles * t) {
    const int64_t D = a->head_dim, HD = a->n_heads * D;
    for (int64_t i = 0; i < nq; i++) {
        const float inv = 1.0f / t->l[i];
        float * o = t->O + i * Dp; /* scaled in place: the tile is not read again */
        const __m256 iv = _mm256_set1_ps(inv);
        for (int64_t d = 0; d < Dp; d += 8) _mm256_store_ps(o + d, _mm256_mul_ps(_mm256_load_ps(o + d), iv));
        const size_t at = (size_t)((i0 + i) * HD + h * D);
        if (a->out_dtype == INFVSR_TYPE_F32) {
            memcpy((float *)a->out + at, o, (size_t)D * sizeof(float));
            continue;
        }
        uint16_t * out = (uint16_t *)a->out + at;
        int64_t d = 0;
        for (; d + 8 <= D; d += 8) _mm_storeu_si128((__m128i *)(void *)(out + d), infvsr__round8_bf16(_mm256_load_ps(o + d)));
        for (; d < D; d++) out[d] = infvsr_f32_to_bf16(o[d]);
    }
}

static const struct attn_kernels bf16_kernels = {
    .tile_bytes = bf16_tile_bytes, .load_q = bf16_load_q, .pack_kv = bf16_pack_kv,
    .qk = bf16_qk, .pv = bf16_pv, .store = infvsr__attention_store_bf16,
};

enum infvsr_status infvsr_cpu_op_attention_bf16(struct infvsr_cpu_ctx * c, const struct infvsr_cpu_attn * a) {
    /* the `amx` level runs the same driver with the products on tiles (attention_amx.c) */
    if (c->isa == INFVSR_CPU_ISA_AMX) return infvsr_cpu_op_attention_amx(c, a);
    return infvsr__attention_run(c, a, &bf16_kernels, NULL);
}
