/* What one core's AMX unit does with the AMX GEMM's own tile sequence, apart from
 * everything else the GEMM does (packing, epilogue, threads): the limits behind the GEMM's
 * share of the TDPBF16PS ceiling (docs/ARCHITECTURE.md, "The CPU backend in bf16").
 *
 *   tests/bench/bench_amx_tiles            (one thread; pin it: taskset -c 0 ...)
 *
 * Each line runs the 2x2 micro-kernel of kernels/cpu/gemm_amx_body.h (C in tmm0-3, A in
 * tmm4-5, B in tmm6-7: 2 A + 2 B tile loads per 4 TDPBF16PS) with its A and B tiles cycling
 * through buffers of the stated sizes: a few KB stay in L1, hundreds of KB in L2, tens of
 * MB come from memory. Best of 5, GFLOP/s and the share of TDPBF16PS alone. Then the
 * memory's read bandwidth on 1 and 2 threads (a 1 GB buffer, 64-byte loads): what the
 * weights of a GEMM with few rows stream at. Skipped (exit 0) where the CPU has no AMX. */
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "amx_tile.h"
#include "isa.h"

#define TILE 512 /* bf16 per tile */

static const struct infvsr_amx_cfg g_cfg = {
    .palette = 1,
    .colsb   = { 64, 64, 64, 64, 64, 64, 64, 64 },
    .rows    = { 16, 16, 16, 16, 16, 16, 16, 16 },
};

static uint16_t * g_a, * g_b;
static float *    g_c;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* TDPBF16PS alone, 4 independent accumulators (the ceiling of this core). */
AMX_FN static void loop_tdp(long n, long at, long bt, long c_every) {
    (void)at, (void)bt, (void)c_every;
    amx_config(&g_cfg);
    amx_load(4, g_a, 64);
    amx_load(5, g_a + TILE, 64);
    amx_load(6, g_b, 64);
    amx_load(7, g_b + TILE, 64);
    for (long i = 0; i < n; i++) {
        amx_dpbf16ps(0, 4, 6);
        amx_dpbf16ps(1, 4, 7);
        amx_dpbf16ps(2, 5, 6);
        amx_dpbf16ps(3, 5, 7);
    }
    amx_store(0, g_c, 64);
    amx_release();
}

/* The micro-kernel: A pairs of tiles cycle through at pairs, B through bt; every c_every
 * k steps (0: never) C goes to memory and back, as between the GEMM's K blocks. */
AMX_FN static void loop_micro(long n, long at, long bt, long c_every) {
    amx_config(&g_cfg);
    long ai = 0, bi = 0;
    for (long i = 0; i < n; i++) {
        const uint16_t * a = g_a + ai * 2 * TILE, * b = g_b + bi * 2 * TILE;
        amx_load(4, a, 64);
        amx_load(6, b, 64);
        amx_load(7, b + TILE, 64);
        amx_dpbf16ps(0, 4, 6);
        amx_dpbf16ps(1, 4, 7);
        amx_load(5, a + TILE, 64);
        amx_dpbf16ps(2, 5, 6);
        amx_dpbf16ps(3, 5, 7);
        if (++ai == at) ai = 0;
        if (++bi == bt) bi = 0;
        if (c_every && (i + 1) % c_every == 0) {
            amx_store(0, g_c, 512);
            amx_store(1, g_c + 16, 512);
            amx_store(2, g_c + 16 * 128, 512);
            amx_store(3, g_c + 16 * 128 + 16, 512);
            amx_load(0, g_c, 512);
            amx_load(1, g_c + 16, 512);
            amx_load(2, g_c + 16 * 128, 512);
            amx_load(3, g_c + 16 * 128 + 16, 512);
        }
    }
    amx_store(0, g_c, 64);
    amx_release();
}

/* ---- memory read bandwidth ---- */

struct bw_arg {
    const char * p;
    size_t       bytes;
    uint64_t     sum;
};

static void * bw_read(void * v) {
    struct bw_arg * a = v;
    __m256i acc = _mm256_setzero_si256();
    for (size_t i = 0; i < a->bytes; i += 64) {
        acc = _mm256_add_epi64(acc, _mm256_load_si256((const __m256i *)(const void *)(a->p + i)));
        acc = _mm256_add_epi64(acc, _mm256_load_si256((const __m256i *)(const void *)(a->p + i + 32)));
    }
    a->sum = (uint64_t)_mm256_extract_epi64(acc, 0);
    return NULL;
}

/* GB/s reading `bytes` split over n threads, best of 3. */
static double read_gbs(const char * p, size_t bytes, int n) {
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        pthread_t     th[2];
        struct bw_arg a[2];
        const double  t0 = now();
        for (int i = 0; i < n; i++) {
            a[i] = (struct bw_arg){ .p = p + (size_t)i * (bytes / (size_t)n), .bytes = bytes / (size_t)n };
            if (i) pthread_create(&th[i], NULL, bw_read, &a[i]);
        }
        bw_read(&a[0]);
        for (int i = 1; i < n; i++) pthread_join(th[i], NULL);
        const double t = now() - t0;
        if (t < best) best = t;
    }
    return (double)bytes / best * 1e-9;
}

static double gflops(void (*f)(long, long, long, long), long n, long at, long bt, long c_every) {
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        const double t0 = now();
        f(n, at, bt, c_every);
        const double t = now() - t0;
        if (t < best) best = t;
    }
    return (double)n * 4 * 16 * 16 * 32 * 2 / best * 1e-9;
}

int main(void) {
    if (infvsr_cpu_isa_detect() < INFVSR_CPU_ISA_AMX) {
        printf("bench_amx_tiles: Skipped (this CPU has no AMX-BF16, or Linux did not grant the tile state)\n");
        return 0;
    }
    const size_t a_pairs = 256, b_pairs = 16384; /* pairs of 1 KB tiles: 512 KB of A, 32 MB of B */
    g_a = aligned_alloc(4096, a_pairs * 2 * TILE * sizeof *g_a);
    g_b = aligned_alloc(4096, b_pairs * 2 * TILE * sizeof *g_b);
    g_c = aligned_alloc(4096, 64 * 1024);
    if (!g_a || !g_b || !g_c) return 1;
    for (size_t i = 0; i < a_pairs * 2 * TILE; i++) g_a[i] = (uint16_t)(0x3c00 + (i & 7)); /* small bf16: finite sums */
    for (size_t i = 0; i < b_pairs * 2 * TILE; i++) g_b[i] = (uint16_t)(0x3c00 - (i & 3));
    memset(g_c, 0, 64 * 1024);
    const long n = 1000000;
    const double peak = gflops(loop_tdp, n, 1, 1, 0);
    printf("one thread: TDPBF16PS alone %.0f GFLOP/s\n", peak);
    static const struct {
        const char * what;
        long         at, bt, c_every;
    } cases[] = {
        { "2x2, A 2 KB + B 2 KB (L1)", 1, 1, 0 },
        { "2x2, A 16 KB + B 16 KB (L1)", 8, 8, 0 },
        { "2x2, A 16 KB (L1) + B 512 KB (L2)", 8, 256, 0 },
        { "2x2, A 512 KB + B 512 KB (L2)", 256, 256, 0 },
        { "2x2, A 16 KB (L1) + B 32 MB (memory)", 8, 16384, 0 },
        { "2x2, L1, C to memory and back every 8 k", 8, 8, 8 },
        { "2x2, L1, C to memory and back every 16 k", 8, 8, 16 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const double g = gflops(loop_micro, cases[i].bt > 1000 ? n / 4 : n, cases[i].at, cases[i].bt, cases[i].c_every);
        printf("%-44s %7.0f GFLOP/s  %3.0f%%\n", cases[i].what, g, 100 * g / peak);
    }
    free(g_a), free(g_b), free(g_c);
    const size_t bytes = (size_t)1 << 30;
    char *       buf   = aligned_alloc(4096, bytes);
    if (!buf) return 1;
    memset(buf, 1, bytes);
    printf("memory read: 1 thread %.1f GB/s, 2 threads %.1f GB/s\n", read_gbs(buf, bytes, 1), read_gbs(buf, bytes, 2));
    free(buf);
    return 0;
}
