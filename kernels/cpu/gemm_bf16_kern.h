/* The AVX512-BF16 (VDPBF16PS) GEMM micro-kernel shared by the native bf16 ops: linear
 * (gemm_bf16.c) and conv3d (conv3d_bf16.c, an implicit GEMM).
 *
 *   C[mr][nrv * 16] (+)= A[mr][K] . B[K][nrv * 16],  f32 accumulation
 *
 * VDPBF16PS multiplies pairs: acc[i] += a[2i] b[2i] + a[2i+1] b[2i+1], i < 16, so K runs in
 * pairs of bf16 values.
 *  - A: one pointer per row (a[r]); a pair a[r][2p], a[r][2p+1] is one 32-bit word,
 *    broadcast. Rows need not be evenly spaced: the conv's rows are output positions
 *    that may cross an image row.
 *  - K in segments: the kernel runs `nseg` segments of `np` pairs each; segment s reads
 *    A at a[r] + seg[s] (elements; seg NULL: one segment at offset 0). B continues across
 *    segments. The conv's segments are its kernel taps (A of a tap is the channels-last
 *    input shifted by the tap), so the accumulators stay in registers over many taps.
 *  - B: packed 16-column strips [strip][k pair][16 columns][2] (one 64-byte load per
 *    strip and pair), strip v at b + v * bstride.
 *  - odd_tail (one segment only): one more k, A's a[r][2 np] alone, paired with the zero
 *    that the packing put in B's second half (an odd K; A is not read past its row).
 *  - C: an f32 tile, row r at ct + r * nrv * 16; init: start from zero, else add to it.
 * Register budget: mr * nrv accumulators <= 24 plus nrv B vectors and a broadcast, so
 * (mr, nrv) = (6, 4) or (8, 3) or fewer; mr and nrv must be constants at the call (the
 * function is always inlined, so the accumulators live in zmm registers). */
#pragma once

#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define AVX512BF16_FN __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

#define INFVSR_BF16K_MR_MAX  8
#define INFVSR_BF16K_NRV_MAX 4

/* out[k] word c = r[c] word k: a 16x16 transpose of 32-bit words (a bf16 pair) in registers,
 * how B-packing turns 16 source rows into 16 strip rows (4x faster than 32-bit gathers). */
static inline __attribute__((always_inline)) AVX512BF16_FN void infvsr__transpose16_epi32(const __m512i r[16],
                                                                                          __m512i out[16]) {
    __m512i t[16], u[16];
    for (int c = 0; c < 16; c += 2) {
        t[c]     = _mm512_unpacklo_epi32(r[c], r[c + 1]);
        t[c + 1] = _mm512_unpackhi_epi32(r[c], r[c + 1]);
    }
    for (int g = 0; g < 16; g += 4) {
        u[g]     = _mm512_unpacklo_epi64(t[g], t[g + 2]);
        u[g + 1] = _mm512_unpackhi_epi64(t[g], t[g + 2]);
        u[g + 2] = _mm512_unpacklo_epi64(t[g + 1], t[g + 3]);
        u[g + 3] = _mm512_unpackhi_epi64(t[g + 1], t[g + 3]);
    }
    for (int k = 0; k < 4; k++) {
        __m512i a88 = _mm512_shuffle_i32x4(u[k], u[4 + k], 0x88), b88 = _mm512_shuffle_i32x4(u[8 + k], u[12 + k], 0x88);
        __m512i add = _mm512_shuffle_i32x4(u[k], u[4 + k], 0xDD), bdd = _mm512_shuffle_i32x4(u[8 + k], u[12 + k], 0xDD);
        out[k]      = _mm512_shuffle_i32x4(a88, b88, 0x88);
        out[k + 8]  = _mm512_shuffle_i32x4(a88, b88, 0xDD);
        out[k + 4]  = _mm512_shuffle_i32x4(add, bdd, 0x88);
        out[k + 12] = _mm512_shuffle_i32x4(add, bdd, 0xDD);
    }
}

/* The small loops are unrolled by pragma (GCC's -O2 does not peel them). */
#define INFVSR_BF16K_UNROLL _Pragma("GCC unroll 8")

static inline __attribute__((always_inline)) AVX512BF16_FN void
infvsr__bf16_kern(const int mr, const int nrv, const uint16_t * const * a, const int64_t * seg, int nseg, int64_t np,
                  const uint16_t * b, int64_t bstride, bool odd_tail, float * ct, bool init) {
    __m512 acc[INFVSR_BF16K_MR_MAX][INFVSR_BF16K_NRV_MAX];
    const int nt = nrv * 16;
    INFVSR_BF16K_UNROLL for (int r = 0; r < mr; r++) {
        INFVSR_BF16K_UNROLL for (int v = 0; v < nrv; v++) acc[r][v] = init ? _mm512_setzero_ps() : _mm512_load_ps(ct + r * nt + v * 16);
    }
    for (int s = 0; s < nseg; s++) {
        const int64_t off = seg ? seg[s] : 0;
        const uint16_t * bs = b + (int64_t)s * np * 32;
        for (int64_t p = 0; p < np; p++) {
            __m512i bv[INFVSR_BF16K_NRV_MAX];
            INFVSR_BF16K_UNROLL for (int v = 0; v < nrv; v++) bv[v] = _mm512_load_si512((const void *)(bs + v * bstride + p * 32));
            INFVSR_BF16K_UNROLL for (int r = 0; r < mr; r++) {
                int32_t pair;
                memcpy(&pair, a[r] + off + 2 * p, sizeof pair); /* rows of odd K are not 4-byte aligned */
                __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
                INFVSR_BF16K_UNROLL for (int v = 0; v < nrv; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, (__m512bh)bv[v]);
            }
        }
    }
    if (odd_tail) { /* the last k of an odd K, paired with the zero the packing put there */
        __m512i bv[INFVSR_BF16K_NRV_MAX];
        INFVSR_BF16K_UNROLL for (int v = 0; v < nrv; v++) bv[v] = _mm512_load_si512((const void *)(b + v * bstride + np * 32));
        INFVSR_BF16K_UNROLL for (int r = 0; r < mr; r++) {
            __m512bh av = (__m512bh)_mm512_set1_epi32((int32_t)a[r][2 * np]);
            INFVSR_BF16K_UNROLL for (int v = 0; v < nrv; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, (__m512bh)bv[v]);
        }
    }
    INFVSR_BF16K_UNROLL for (int r = 0; r < mr; r++) {
        INFVSR_BF16K_UNROLL for (int v = 0; v < nrv; v++) _mm512_store_ps(ct + r * nt + v * 16, acc[r][v]);
    }
}
