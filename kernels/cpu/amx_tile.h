/* The AMX tile primitives the AMX GEMM (gemm_amx_body.h) is written against, in two
 * implementations of one interface, picked by the file that includes this header:
 *
 *   real      (default) LDTILECFG, TILEZERO, TILELOADD, TDPBF16PS, TILESTORED, TILERELEASE
 *             through GCC's intrinsics. Functions that use them carry AMX_FN (target
 *             "amx-tile,amx-bf16"), so the build stays x86-64-v3; they run only on the `amx`
 *             level, i.e. where isa.c found AMX-BF16 and Linux granted the tile state.
 *   emulated  (INFVSR_AMX_EMULATE defined before the include) the same operations in scalar C
 *             on a thread-local register file, TDPBF16PS as the Intel SDM defines it (below).
 *             tests/ops/test_gemm_amx.c builds the kernel body with it, so the kernel's own
 *             tiling, packing and edges are checked on machines without AMX (CI, Zen 4), as
 *             kernels/cuda/emu does for the CUDA kernels.
 *
 * The interface (tile numbers t, c, a, b are integer literals: the instructions encode them):
 *   amx_config(const struct infvsr_amx_cfg *)  LDTILECFG: shapes of the 8 tiles, all zeroed
 *   amx_release()                              TILERELEASE: back to the unconfigured state
 *   amx_zero(t)                                TILEZERO
 *   amx_load(t, const void * p, stride_bytes)  TILELOADD: rows x colsb bytes, row r at p + r*stride
 *   amx_store(t, void * p, stride_bytes)       TILESTORED
 *   amx_dpbf16ps(c, a, b)                      TDPBF16PS: C[m][n] += sum over k of pairs of
 *                                              A[m][2k+e] * B[k][2n+e] (B in the VNNI layout)
 *
 * TDPBF16PS, per the SDM's Operation section: for each row m of C, two f32 partial sums
 * per column n start at 0; for each pair k (A's colsb/4 of them) the even products
 * A[m].bf16[2k] * B[k].bf16[2n] go into the first with an f32 FMA (one rounding), the odd
 * ones into the second; then C[m][n] = C[m][n] + (even + odd), two f32 additions. Every
 * step rounds to nearest even, input denormals count as zero (DAZ), denormal results are
 * flushed to zero (FTZ), MXCSR is ignored. A bf16 is the upper half of an f32.
 * Not modelled: the sign of a flushed zero beyond copying the sign of the value it
 * replaces, and NaN payloads (the GEMM never feeds NaN on purpose). */
#pragma once

#include <stdint.h>

/* The 64-byte operand of LDTILECFG (palette 1: 8 tiles of at most 16 rows x 64 bytes). */
struct infvsr_amx_cfg {
    uint8_t  palette;      /* 1 */
    uint8_t  start_row;    /* 0: where an interrupted load/store resumes */
    uint8_t  reserved0[14];
    uint16_t colsb[16];    /* bytes per row of tile i (8..15 reserved, 0) */
    uint8_t  rows[16];     /* rows of tile i (8..15 reserved, 0) */
};
_Static_assert(sizeof(struct infvsr_amx_cfg) == 64, "LDTILECFG reads 64 bytes");

#ifndef INFVSR_AMX_EMULATE

#include <immintrin.h>

#define AMX_FN __attribute__((target("amx-tile,amx-bf16")))

/* GCC 12's TILELOADD intrinsic is an asm statement that does not tell the compiler it reads
 * memory, and LDTILECFG's declares 8 of its 64 bytes: a compiler barrier before each makes
 * every store to their operands happen first (TILESTORED already clobbers memory). */
#define AMX_COMPILER_BARRIER() __asm__ volatile("" ::: "memory")
#define amx_config(cfg)                                                                 \
    do {                                                                                \
        AMX_COMPILER_BARRIER();                                                         \
        _tile_loadconfig(cfg);                                                          \
    } while (0)
#define amx_release() _tile_release()
#define amx_zero(t)   _tile_zero(t)
#define amx_load(t, p, stride)                                                          \
    do {                                                                                \
        AMX_COMPILER_BARRIER();                                                         \
        _tile_loadd(t, p, stride);                                                      \
    } while (0)
#define amx_store(t, p, stride)  _tile_stored(t, p, stride)
#define amx_dpbf16ps(c, a, b)    _tile_dpbf16ps(c, a, b)

#else /* INFVSR_AMX_EMULATE */

#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AMX_FN

struct infvsr_amx_emu_regs {
    bool    configured;
    uint8_t rows[8];
    uint8_t colsb[8];
    uint8_t data[8][16][64];
};
static _Thread_local struct infvsr_amx_emu_regs amx_emu;
/* LDTILECFG / TILERELEASE executed, over all threads: a test checks they balance. */
static atomic_long amx_emu_configs, amx_emu_releases;

/* Where the CPU would fault (#UD / #GP), the emulation stops the program: a test that
 * misconfigures tiles fails loudly instead of computing something. */
static inline void amx_emu_fault(const char * what, int t) {
    fprintf(stderr, "AMX emulation: %s (tile %d): the CPU would raise #UD/#GP here\n", what, t);
    abort();
}

static inline void amx_emu_config(const struct infvsr_amx_cfg * cfg) {
    if (cfg->palette != 1 || cfg->start_row != 0) amx_emu_fault("palette must be 1 and start_row 0", -1);
    for (int i = 0; i < 14; i++)
        if (cfg->reserved0[i]) amx_emu_fault("reserved bytes of the config must be 0", -1);
    for (int t = 0; t < 16; t++) {
        if (t >= 8 ? cfg->colsb[t] || cfg->rows[t] : cfg->colsb[t] > 64 || cfg->rows[t] > 16)
            amx_emu_fault("tile shape beyond palette 1", t);
        if (t < 8 && (cfg->rows[t] == 0) != (cfg->colsb[t] == 0)) amx_emu_fault("half-configured tile", t);
    }
    memset(&amx_emu, 0, sizeof amx_emu);
    amx_emu.configured = true;
    for (int t = 0; t < 8; t++) amx_emu.rows[t] = cfg->rows[t], amx_emu.colsb[t] = (uint8_t)cfg->colsb[t];
    atomic_fetch_add(&amx_emu_configs, 1);
}

static inline void amx_emu_release(void) {
    memset(&amx_emu, 0, sizeof amx_emu);
    atomic_fetch_add(&amx_emu_releases, 1);
}

static inline void amx_emu_check(int t) {
    if (!amx_emu.configured) amx_emu_fault("tile instruction without LDTILECFG", t);
    if (t < 0 || t > 7 || amx_emu.rows[t] == 0) amx_emu_fault("tile not configured", t);
}

static inline void amx_emu_zero(int t) {
    amx_emu_check(t);
    memset(amx_emu.data[t], 0, sizeof amx_emu.data[t]);
}

/* Reads exactly rows x colsb bytes (the rest of the register is zeroed), so a load past a
 * buffer is seen by ASan as the real instruction would fault or read garbage. */
static inline void amx_emu_load(int t, const void * p, int64_t stride) {
    amx_emu_check(t);
    memset(amx_emu.data[t], 0, sizeof amx_emu.data[t]);
    for (int r = 0; r < amx_emu.rows[t]; r++)
        memcpy(amx_emu.data[t][r], (const uint8_t *)p + (int64_t)r * stride, amx_emu.colsb[t]);
}

static inline void amx_emu_store(int t, void * p, int64_t stride) {
    amx_emu_check(t);
    for (int r = 0; r < amx_emu.rows[t]; r++)
        memcpy((uint8_t *)p + (int64_t)r * stride, amx_emu.data[t][r], amx_emu.colsb[t]);
}

static inline float amx_emu_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* DAZ on an operand / FTZ on a result: a denormal becomes a zero of the same sign. */
static inline float amx_emu_flush(float x) {
    return fpclassify(x) == FP_SUBNORMAL ? copysignf(0.0f, x) : x;
}

static inline float amx_emu_bf16(const uint8_t * row, int i) {
    uint16_t h;
    memcpy(&h, row + 2 * i, sizeof h);
    return amx_emu_flush(amx_emu_f32((uint32_t)h << 16));
}

/* Which bf16 of B's pair-row k is the e-th half of column n. The VNNI layout interleaves
 * the pair: element 2n + e. INFVSR_AMX_EMU_PLANT_VNNI plants the classic mistake (the
 * halves as two blocks of 16, as if B were not interleaved) in the emulated instruction:
 * the test built that way must fail, which shows it checks the kernel's layout. */
static inline int amx_emu_b_index(int n, int e) {
#ifdef INFVSR_AMX_EMU_PLANT_VNNI
    return e * 16 + n;
#else
    return 2 * n + e;
#endif
}

static inline void amx_emu_dpbf16ps(int c, int a, int b) {
    amx_emu_check(c), amx_emu_check(a), amx_emu_check(b);
    if (c == a || c == b || a == b) amx_emu_fault("TDPBF16PS operands must be three different tiles", c);
    const int pairs = amx_emu.colsb[a] / 4, cols = amx_emu.colsb[c] / 4;
    if (amx_emu.colsb[a] % 4 || amx_emu.colsb[b] % 4 || amx_emu.colsb[c] % 4 || pairs != amx_emu.rows[b] ||
        amx_emu.colsb[c] != amx_emu.colsb[b] || amx_emu.rows[c] != amx_emu.rows[a])
        amx_emu_fault("TDPBF16PS tile shapes do not match", c);
    for (int m = 0; m < amx_emu.rows[c]; m++) {
        float even[16] = { 0 }, odd[16] = { 0 };
        const uint8_t * arow = amx_emu.data[a][m];
        for (int k = 0; k < pairs; k++) {
            const uint8_t * brow = amx_emu.data[b][k];
            const float a0 = amx_emu_bf16(arow, 2 * k), a1 = amx_emu_bf16(arow, 2 * k + 1);
            for (int n = 0; n < cols; n++) {
                even[n] = amx_emu_flush(fmaf(a0, amx_emu_bf16(brow, amx_emu_b_index(n, 0)), even[n]));
                odd[n]  = amx_emu_flush(fmaf(a1, amx_emu_bf16(brow, amx_emu_b_index(n, 1)), odd[n]));
            }
        }
        for (int n = 0; n < cols; n++) {
            float acc;
            memcpy(&acc, amx_emu.data[c][m] + 4 * n, sizeof acc);
            const float sum = amx_emu_flush(even[n] + odd[n]);
            acc = amx_emu_flush(amx_emu_flush(acc) + sum);
            memcpy(amx_emu.data[c][m] + 4 * n, &acc, sizeof acc);
        }
    }
}

#define amx_config(cfg)          amx_emu_config(cfg)
#define amx_release()            amx_emu_release()
#define amx_zero(t)              amx_emu_zero(t)
#define amx_load(t, p, stride)   amx_emu_load(t, p, stride)
#define amx_store(t, p, stride)  amx_emu_store(t, p, stride)
#define amx_dpbf16ps(c, a, b)    amx_emu_dpbf16ps(c, a, b)

#endif /* INFVSR_AMX_EMULATE */
