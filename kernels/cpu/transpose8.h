/* An 8x8 transpose of 32-bit words in AVX2 registers: the AMX kernels' way of moving bf16
 * pairs (one word each) into the VNNI layout of a B tile (gemm_amx_body.h,
 * attention_amx_body.h, matmul_amx_body.h). Plain AVX2, so the emulated-tile builds of
 * those kernels run on any x86-64-v3 machine. */
#pragma once

#include <immintrin.h>

/* 8 rows of 8 32-bit words in, their 8 columns out: r[q] word i = old r[i] word q. */
static inline void infvsr__transpose8_epi32(__m256i r[8]) {
    __m256i t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i]     = _mm256_unpacklo_epi32(r[i], r[i + 1]); /* words 0,1 | 4,5 of rows i, i+1 */
        t[i + 1] = _mm256_unpackhi_epi32(r[i], r[i + 1]); /* words 2,3 | 6,7 */
    }
    for (int i = 0; i < 8; i += 4) {
        u[i]     = _mm256_unpacklo_epi64(t[i], t[i + 2]);     /* word 0 | 4 of rows i..i+3 */
        u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);     /* word 1 | 5 */
        u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]); /* word 2 | 6 */
        u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]); /* word 3 | 7 */
    }
    for (int q = 0; q < 4; q++) {
        r[q]     = _mm256_permute2x128_si256(u[q], u[4 + q], 0x20);
        r[q + 4] = _mm256_permute2x128_si256(u[q], u[4 + q], 0x31);
    }
}
