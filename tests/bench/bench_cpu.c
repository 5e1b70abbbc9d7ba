/* CPU backend throughput: linear (f32 and bf16 weights) against calling cblas_sgemm
 * directly on the same shapes, flash attention on DiT- and VAE-like shapes, and a
 * the VAE's 3x3x3 conv3d shapes, each as the median of >= 5 timed repeats after one warm-up, plus
 * the machine's measured ceilings (FMA-throughput loops for AVX2 and AVX-512 f32, a
 * VDPBF16PS loop for AVX512-BF16, a TDPBF16PS-only loop where AMX is present) and each row's
 * share of the ceiling of the instruction it runs on. linear also runs with bf16
 * activations (bf16 x, w, y: the native bf16 GEMM on avx512bf16/amx).
 *
 *   bench_cpu [n_threads] [repeats] [only]   (tests/bench/bench_cpu.sh runs it)
 * `only` = linear, dit (the DiT's GEMMs at 192 tokens), attention, unary, resize, conv3d or
 * swin (the bf16 Swin encoder's ops: native against the generic path) runs just that
 * family; amx runs the bf16 GEMMs on the amx and avx512bf16 levels side by side (Skipped
 * where the CPU has no AMX). conv3d times, with bf16 activations, the AVX512-BF16 kernel
 * (`native`), the generic path and, where the CPU has AMX, the AMX kernel side by side,
 * alternating, and names the one the backend picks (`auto`); conv3d-amx times the AMX
 * kernel alone on the same shapes (tuning). */
#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "amx_tile.h"
#include "check.h"
#include "cpu_impl.h"
#include "isa.h"
#include "ops.h"

static int    g_repeats = 5;
static double g_peak;

/* BENCH_CPU_TIME=1: the benchmarks' times are this process's CPU seconds divided by the
 * thread count instead of wall seconds: on a machine shared with other work, the time the
 * cores would have taken had they been ours (the ceiling loops then use each thread's own
 * CPU seconds, so the shares compare like with like). */
static int g_threads_for_cpu_time;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double bench_now_s(void) {
    if (!g_threads_for_cpu_time) return now_s();
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ((double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec) / g_threads_for_cpu_time;
}

static int cmp_double(const void * a, const void * b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* median seconds of g_repeats runs of fn(ctx), after one warm-up */
static double time_median(void (*fn)(void *), void * ctx) {
    double t[64];
    int n = g_repeats < 64 ? g_repeats : 64;
    fn(ctx);
    for (int i = 0; i < n; i++) {
        double t0 = bench_now_s();
        fn(ctx);
        t[i] = bench_now_s() - t0;
    }
    qsort(t, (size_t)n, sizeof t[0], cmp_double);
    return t[n / 2];
}

/* ---- measured ceilings ----
 * Each loop keeps enough independent accumulators busy that only the issue rate of its
 * instruction limits it (12 chains against a 4-cycle latency and 2 ports), on every
 * thread at once; FLOP / wall time is the machine's ceiling for that instruction right
 * now (a loaded machine gives less, and the benchmarks' shares are of that). A loop for
 * an instruction the CPU lacks is not run (isa.h decides, so never SIGILL). */

#define T_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define CEIL_ITERS 4000000L

static double loop_fma_avx2(long iters) {
    __m256 a[12], m = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(1e-3f);
    for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps((float)i);
    for (long it = 0; it < iters; it++)
        _Pragma("GCC unroll 12") for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], m, b);
    __m256 s = a[0];
    for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, a[i]);
    volatile float sink = _mm256_cvtss_f32(s);
    (void)sink;
    return (double)iters * 12 * 8 * 2;
}

T_AVX512 static double loop_fma_avx512(long iters) {
    __m512 a[12], m = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-3f);
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iters; it++)
        _Pragma("GCC unroll 12") for (int i = 0; i < 12; i++) a[i] = _mm512_fmadd_ps(a[i], m, b);
    __m512 s = a[0];
    for (int i = 1; i < 12; i++) s = _mm512_add_ps(s, a[i]);
    volatile float sink = _mm512_reduce_add_ps(s);
    (void)sink;
    return (double)iters * 12 * 16 * 2;
}

T_AVX512 static double loop_dpbf16(long iters) {
    __m512 a[12];
    __m512bh x = (__m512bh)_mm512_set1_epi32(0x3f803f80), y = (__m512bh)_mm512_set1_epi32(0x3a003a00);
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iters; it++)
        _Pragma("GCC unroll 12") for (int i = 0; i < 12; i++) a[i] = _mm512_dpbf16_ps(a[i], x, y);
    __m512 s = a[0];
    for (int i = 1; i < 12; i++) s = _mm512_add_ps(s, a[i]);
    volatile float sink = _mm512_reduce_add_ps(s);
    (void)sink;
    return (double)iters * 12 * 16 * 4; /* 16 lanes x 2 products x (mul + add) */
}

/* TDPBF16PS only: 6 independent 16x16 f32 accumulator tiles (6 x 16 cycles of issue cover
 * the instruction's latency) from one A and one B tile, 16 x 16 x 32 products each, through
 * the GEMM's own tile primitives (kernels/cpu/amx_tile.h). Only called on the amx level
 * (isa.c got the tile permission). */
AMX_FN static double loop_amx(long iters) {
    struct infvsr_amx_cfg cfg = { .palette = 1 };
    for (int t = 0; t < 8; t++) cfg.colsb[t] = 64, cfg.rows[t] = 16;
    amx_config(&cfg);
    _Alignas(64) uint16_t src[16 * 32];
    for (int i = 0; i < 16 * 32; i++) src[i] = 0x3c00; /* bf16 2^-7: the sums stay finite */
    amx_zero(0);
    amx_zero(1);
    amx_zero(2);
    amx_zero(3);
    amx_zero(4);
    amx_zero(5);
    amx_load(6, src, 64);
    amx_load(7, src, 64);
    iters /= 8;
    for (long it = 0; it < iters; it++) {
        amx_dpbf16ps(0, 6, 7);
        amx_dpbf16ps(1, 6, 7);
        amx_dpbf16ps(2, 6, 7);
        amx_dpbf16ps(3, 6, 7);
        amx_dpbf16ps(4, 6, 7);
        amx_dpbf16ps(5, 6, 7);
    }
    _Alignas(64) float out[16 * 16];
    amx_store(0, out, 64);
    amx_release();
    volatile float sink = out[0];
    (void)sink;
    return (double)iters * 6 * 16 * 16 * 32 * 2;
}

struct ceil_job {
    double (*fn)(long);
    long               iters;
    double             flop, cpu_s;
    pthread_barrier_t *go;
};

static void * ceil_thread(void * p) {
    struct ceil_job * j = p;
    pthread_barrier_wait(j->go);
    struct timespec a, b;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    j->flop = j->fn(j->iters);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    j->cpu_s = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
    return NULL;
}

/* GFLOP/s of fn on n threads at once. */
static double ceiling(double (*fn)(long), int n, long iters) {
    pthread_t th[64];
    struct ceil_job jobs[64];
    pthread_barrier_t go;
    n = n < 1 ? 1 : n > 64 ? 64 : n;
    pthread_barrier_init(&go, NULL, (unsigned)n + 1);
    for (int i = 0; i < n; i++) {
        jobs[i] = (struct ceil_job){ .fn = fn, .iters = iters, .go = &go };
        pthread_create(&th[i], NULL, ceil_thread, &jobs[i]);
    }
    pthread_barrier_wait(&go);
    double t0 = now_s(), flop = 0, cpu = 0;
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL), flop += jobs[i].flop, cpu += jobs[i].cpu_s;
    double dt = g_threads_for_cpu_time ? cpu / n : now_s() - t0;
    pthread_barrier_destroy(&go);
    return flop / dt * 1e-9;
}

static double best_of(double (*fn)(long), int n, long iters) {
    double b = 0;
    for (int r = 0; r < 3; r++) {
        double g = ceiling(fn, n, iters);
        if (g > b) b = g;
    }
    return b;
}

static double g_peak_bf16; /* vdpbf16ps (or AMX) ceiling; 0 where the CPU has neither */

/* ---- linear ---- */

struct lin_ctx {
    struct infvsr_backend * be;
    struct infvsr_tensor    x, w, y;
    const float *           wf;
    int                     M, K, N;
};

static void run_linear(void * p) {
    struct lin_ctx * c = p;
    INFVSR_ASSERT(infvsr_op_linear(c->be, &c->x, &c->w, NULL, INFVSR_UNARY_COUNT, &c->y, NULL) == INFVSR_OK);
}

static void run_sgemm(void * p) {
    struct lin_ctx * c = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, c->M, c->N, c->K, 1.0f, c->x.data, c->K, c->wf, c->K, 0.0f,
                c->y.data, c->N);
}

static void bench_linear(struct infvsr_backend * be, int M, int K, int N) {
    struct lin_ctx c = { .be = be, .M = M, .K = K, .N = N };
    int64_t sx[2] = { M, K }, sw[2] = { N, K }, sy[2] = { M, N };
    struct infvsr_tensor wb;
    INFVSR_ASSERT(infvsr_tensor_alloc(&c.x, "x", INFVSR_TYPE_F32, 2, sx) == INFVSR_OK);
    INFVSR_ASSERT(infvsr_tensor_alloc(&c.w, "w", INFVSR_TYPE_F32, 2, sw) == INFVSR_OK);
    INFVSR_ASSERT(infvsr_tensor_alloc(&wb, "wb", INFVSR_TYPE_BF16, 2, sw) == INFVSR_OK);
    INFVSR_ASSERT(infvsr_tensor_alloc(&c.y, "y", INFVSR_TYPE_F32, 2, sy) == INFVSR_OK);
    test_fill_uniform(c.x.data, (size_t)M * K, -1, 1, 1);
    test_fill_uniform(c.w.data, (size_t)N * K, -0.1f, 0.1f, 2);
    infvsr_convert_from_f32(wb.data, INFVSR_TYPE_BF16, c.w.data, (size_t)N * K);
    c.wf = c.w.data;
    double flop = 2.0 * M * N * K;
    double t_blas = time_median(run_sgemm, &c);
    double t_f32 = time_median(run_linear, &c);
    struct infvsr_tensor wf32 = c.w;
    c.w = wb;
    double t_bf16 = time_median(run_linear, &c);
    /* bf16 activations: x and y bf16, w bf16 */
    struct infvsr_tensor xf = c.x, yf = c.y, xb, yb;
    INFVSR_ASSERT(infvsr_tensor_alloc(&xb, "xb", INFVSR_TYPE_BF16, 2, sx) == INFVSR_OK);
    INFVSR_ASSERT(infvsr_tensor_alloc(&yb, "yb", INFVSR_TYPE_BF16, 2, sy) == INFVSR_OK);
    infvsr_convert_from_f32(xb.data, INFVSR_TYPE_BF16, xf.data, (size_t)M * K);
    c.x = xb, c.y = yb;
    double t_act = time_median(run_linear, &c);
    /* the same with w imported as a model weight: packed once, not per call (weight_pack.c) */
    struct infvsr_tensor * wts[1] = { &wb };
    uint64_t token = 0;
    INFVSR_ASSERT(infvsr_backend_weights_imported(be, wts, 1, &token, NULL) == INFVSR_OK);
    double t_packed = time_median(run_linear, &c);
    infvsr_backend_weights_released(be, token);
    c.x = xf, c.y = yf, c.w = wf32;
    printf("linear M=%-5d K=%-5d N=%-5d  sgemm %7.1f GF/s | linear f32 %7.1f GF/s (x%.2f, %.0f%% of AVX2 FMA) | "
           "bf16 w %7.1f GF/s (x%.2f) | bf16 act %7.1f GF/s (x%.2f vs f32",
           M, K, N, flop / t_blas * 1e-9, flop / t_f32 * 1e-9, t_blas / t_f32, 100.0 * flop / t_f32 * 1e-9 / g_peak,
           flop / t_bf16 * 1e-9, t_blas / t_bf16, flop / t_act * 1e-9, t_f32 / t_act);
    if (g_peak_bf16 > 0) printf(", %.0f%% of the bf16 ceiling", 100.0 * flop / t_act * 1e-9 / g_peak_bf16);
    printf(") | imported w %7.1f GF/s (x%.2f vs per-call packing)\n", flop / t_packed * 1e-9, t_act / t_packed);
    infvsr_tensor_release(&c.x), infvsr_tensor_release(&c.w), infvsr_tensor_release(&wb), infvsr_tensor_release(&c.y);
    infvsr_tensor_release(&xb), infvsr_tensor_release(&yb);
}

/* ---- bf16 linear per instruction set (`amx` mode) ----
 * The same bf16 GEMM (bf16 x, w, y) on a backend forced to amx (TDPBF16PS, gemm_amx.c) and
 * one forced to avx512bf16 (VDPBF16PS, gemm_bf16.c), each with its share of its own
 * instruction's ceiling. Skipped where the CPU has no AMX. */

static double g_peak_dp, g_peak_amx;

/* Median seconds per call with w packed per call, and (*t_imported) with w imported as a
 * model weight: packed once into the layout both kernels read (weight_pack.c). */
static double time_linear_bf16(int n_threads, enum infvsr_cpu_isa isa, int M, int K, int N, double * t_imported) {
    struct infvsr_cpu_params p = infvsr_cpu_default_params();
    p.n_threads = n_threads;
    p.isa       = (int)isa;
    struct infvsr_backend * be;
    INFVSR_ASSERT(infvsr_cpu_backend_init(&p, &be) == INFVSR_OK);
    struct lin_ctx c = { .be = be, .M = M, .K = K, .N = N };
    int64_t sx[2] = { M, K }, sw[2] = { N, K }, sy[2] = { M, N };
    INFVSR_ASSERT(infvsr_tensor_alloc(&c.x, "x", INFVSR_TYPE_BF16, 2, sx) == INFVSR_OK);
    INFVSR_ASSERT(infvsr_tensor_alloc(&c.w, "w", INFVSR_TYPE_BF16, 2, sw) == INFVSR_OK);
    INFVSR_ASSERT(infvsr_tensor_alloc(&c.y, "y", INFVSR_TYPE_BF16, 2, sy) == INFVSR_OK);
    float * tmp = malloc((size_t)(M > N ? M : N) * K * sizeof *tmp); /* x and w in turn */
    INFVSR_ASSERT(tmp);
    test_fill_uniform(tmp, (size_t)M * K, -1, 1, 1);
    infvsr_convert_from_f32(c.x.data, INFVSR_TYPE_BF16, tmp, (size_t)M * K);
    test_fill_uniform(tmp, (size_t)N * K, -0.1f, 0.1f, 2);
    infvsr_convert_from_f32(c.w.data, INFVSR_TYPE_BF16, tmp, (size_t)N * K);
    free(tmp);
    double t = time_median(run_linear, &c);
    struct infvsr_tensor * wts[1] = { &c.w };
    uint64_t token = 0;
    INFVSR_ASSERT(infvsr_backend_weights_imported(be, wts, 1, &token, NULL) == INFVSR_OK);
    *t_imported = time_median(run_linear, &c);
    infvsr_backend_weights_released(be, token);
    infvsr_tensor_release(&c.x), infvsr_tensor_release(&c.w), infvsr_tensor_release(&c.y);
    infvsr_backend_free(be);
    return t;
}

static void bench_linear_amx(int n_threads, int M, int K, int N) {
    const double flop = 2.0 * M * N * K;
    double ti_amx, ti_dp;
    const double t_amx = time_linear_bf16(n_threads, INFVSR_CPU_ISA_AMX, M, K, N, &ti_amx);
    const double t_dp = time_linear_bf16(n_threads, INFVSR_CPU_ISA_AVX512BF16, M, K, N, &ti_dp);
    printf("linear bf16 M=%-5d K=%-5d N=%-5d  imported w: amx %8.1f GF/s (%.0f%% of TDPBF16PS) | avx512bf16 %7.1f GF/s "
           "(%.0f%% of VDPBF16PS) | amx x%.2f; w packed per call: amx %7.1f | avx512bf16 %7.1f GF/s\n",
           M, K, N, flop / ti_amx * 1e-9, 100.0 * flop / ti_amx * 1e-9 / g_peak_amx, flop / ti_dp * 1e-9,
           100.0 * flop / ti_dp * 1e-9 / g_peak_dp, ti_dp / ti_amx, flop / t_amx * 1e-9, flop / t_dp * 1e-9);
}

/* ---- attention ---- */

struct attn_ctx {
    struct infvsr_backend * be;
    struct infvsr_attn_args a;
};

static void run_attn(void * p) {
    struct attn_ctx * c = p;
    INFVSR_ASSERT(infvsr_op_attention(c->be, &c->a, NULL) == INFVSR_OK);
}

/* One attention shape with f32 or bf16 q/k/v/out (bf16: the native bf16 attention on
 * avx512bf16/amx, the widened f32 kernel on avx2; its share is of the bf16 ceiling). */
static void bench_attention(struct infvsr_backend * be, const char * what, int nq, int n0, int n1, int H, int D,
                            enum infvsr_dtype dt) {
    const int64_t rows[6] = { nq, nq, n0, n0, n1 ? n1 : 1, n1 ? n1 : 1 };
    static const char * names[6] = { "q", "o", "k0", "v0", "k1", "v1" };
    struct infvsr_tensor t[6];
    for (int i = 0; i < 6; i++) {
        int64_t s2[2] = { rows[i], (int64_t)H * D };
        size_t n = (size_t)(rows[i] * H * D);
        INFVSR_ASSERT(infvsr_tensor_alloc(&t[i], names[i], dt, 2, s2) == INFVSR_OK);
        float * f = malloc(n * sizeof *f);
        test_fill_uniform(f, n, -1, 1, 3 + (uint64_t)i);
        infvsr_convert_from_f32(t[i].data, dt, f, n);
        free(f);
    }
    struct attn_ctx c = { .be = be, .a = { .q = &t[0], .k0 = &t[2], .v0 = &t[3], .k1 = n1 ? &t[4] : NULL,
                                           .v1 = n1 ? &t[5] : NULL, .n_heads = H, .scale = 0.088f, .out = &t[1] } };
    double flop = 4.0 * nq * (double)(n0 + n1) * D * H;
    double t_s = time_median(run_attn, &c);
    const bool bf = dt == INFVSR_TYPE_BF16;
    const double peak = bf ? g_peak_bf16 : g_peak;
    printf("attention %-4s %-9s Nq=%-5d Nk=%-5d (%s) H=%-2d D=%-3d  %7.1f GF/s  %8.2f ms", bf ? "bf16" : "f32", what, nq,
           n0 + n1, n1 ? "2 segments" : "1 segment ", H, D, flop / t_s * 1e-9, t_s * 1e3);
    if (peak > 0) printf(" | peak %.0f%%", 100.0 * flop / t_s * 1e-9 / peak);
    printf("\n");
    for (int i = 0; i < 6; i++) infvsr_tensor_release(&t[i]);
}

/* ---- conv3d ---- */

struct conv_ctx {
    struct infvsr_backend *   be;
    struct infvsr_conv3d_args a;
    float *                   col, * wf;
    int                       M, N, K;
};

static void run_conv(void * p) {
    struct conv_ctx * c = p;
    INFVSR_ASSERT(infvsr_op_conv3d(c->be, &c->a, NULL) == INFVSR_OK);
}

static void run_conv_native(void * p) { /* the AVX512-BF16 kernel even where auto picks another */
    const enum infvsr_cpu_conv3d_bf16_kernel old = infvsr__conv3d_bf16_force(INFVSR_CPU_CONV3D_BF16_AVX512);
    run_conv(p);
    infvsr__conv3d_bf16_force(old);
}

static void run_conv_amx(void * p) { /* the AMX kernel on every shape */
    const enum infvsr_cpu_conv3d_bf16_kernel old = infvsr__conv3d_bf16_force(INFVSR_CPU_CONV3D_BF16_AMX);
    run_conv(p);
    infvsr__conv3d_bf16_force(old);
}

static void run_conv_gemm_only(void * p) {
    struct conv_ctx * c = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c->M, c->N, c->K, 1.0f, c->wf, c->K, c->col, c->N, 0.0f,
                c->a.y->data, c->N);
}

/* medians of g_repeats rounds, each round running every fn once in turn (after one warm-up
 * round), so load from other processes hits each alike */
static void time_alternating(int n, void (*const * fn)(void *), void * const * ctx, double * med) {
    double t[8][64];
    int rounds = g_repeats < 64 ? g_repeats : 64;
    for (int i = 0; i < n; i++) fn[i](ctx[i]);
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < n; i++) {
            double t0 = bench_now_s();
            fn[i](ctx[i]);
            t[i][r] = bench_now_s() - t0;
        }
    }
    for (int i = 0; i < n; i++) {
        qsort(t[i], (size_t)rounds, sizeof t[i][0], cmp_double);
        med[i] = t[i][rounds / 2];
    }
}

/* Cin -> Cout, kt x 3 x 3 (padding 1 in h and w, none in t), T output frames of HW x HW:
 * the f32 path (f32 x, w, y), and with bf16 x, w, y the AVX512-BF16 kernel (`native`,
 * forced on every shape), the generic path (`generic`: widen, f32 kernel, round; the
 * backend forced to avx2), the AMX kernel (`amx`, forced; where the CPU has AMX) and which
 * one the backend picks (`auto`), alternating; plus the f32 path's sgemm alone on an
 * im2col-sized GEMM when `with_sgemm`. */
static bool g_conv_amx_only; /* `conv3d-amx`: the AMX kernel alone (tuning), ms per shape */

static void bench_conv3d_k(struct infvsr_backend * be, struct infvsr_backend * be_generic, int Cin, int Cout, int kt,
                           int k, int stride, int T, int HW, bool with_sgemm) {
    /* k = 3: padding 1 (stride 1) or the VAE's downsampling (stride 2, pad right/bottom 1);
     * k = 1: no padding. HW is the output size. */
    const int hin = stride * HW, pad = k == 3 && stride == 1;
    int64_t sx[4] = { Cin, T + kt - 1, hin, hin }, sw[5] = { Cout, Cin, kt, k, k }, sy[4] = { Cout, T, HW, HW },
            sb[1] = { Cout };
    struct infvsr_tensor x, w, b, y, xb, wb, yb;
    INFVSR_ASSERT(infvsr_tensor_alloc(&x, "x", INFVSR_TYPE_F32, 4, sx) == INFVSR_OK);
    INFVSR_ASSERT(infvsr_tensor_alloc(&w, "w", INFVSR_TYPE_F32, 5, sw) == INFVSR_OK);
    INFVSR_ASSERT(infvsr_tensor_alloc(&b, "b", INFVSR_TYPE_F32, 1, sb) == INFVSR_OK);
    INFVSR_ASSERT(infvsr_tensor_alloc(&y, "y", INFVSR_TYPE_F32, 4, sy) == INFVSR_OK);
    INFVSR_ASSERT(infvsr_tensor_alloc(&xb, "xb", INFVSR_TYPE_BF16, 4, sx) == INFVSR_OK);
    INFVSR_ASSERT(infvsr_tensor_alloc(&wb, "wb", INFVSR_TYPE_BF16, 5, sw) == INFVSR_OK);
    INFVSR_ASSERT(infvsr_tensor_alloc(&yb, "yb", INFVSR_TYPE_BF16, 4, sy) == INFVSR_OK);
    test_fill_uniform(x.data, (size_t)infvsr_tensor_numel(&x), -1, 1, 8);
    test_fill_uniform(w.data, (size_t)infvsr_tensor_numel(&w), -0.05f, 0.05f, 9);
    test_fill_uniform(b.data, (size_t)Cout, -0.1f, 0.1f, 10);
    infvsr_convert_from_f32(xb.data, INFVSR_TYPE_BF16, x.data, (size_t)infvsr_tensor_numel(&x));
    infvsr_convert_from_f32(wb.data, INFVSR_TYPE_BF16, w.data, (size_t)infvsr_tensor_numel(&w));
    const struct infvsr_conv3d_args a32 = { .x = &x, .w = &w, .b = &b, .stride_t = 1, .stride_h = stride, .stride_w = stride,
                                            .pad_top = pad, .pad_bottom = k == 3 ? 1 : 0, .pad_left = pad,
                                            .pad_right = k == 3 ? 1 : 0, .y = &y };
    struct infvsr_conv3d_args a16 = a32;
    a16.x = &xb, a16.w = &wb, a16.y = &yb;
    struct conv_ctx cf = { .be = be, .a = a32 }, cn = { .be = be, .a = a16 }, cg = { .be = be_generic, .a = a16 };
    const bool amx = infvsr_cpu_backend_isa(be) >= INFVSR_CPU_ISA_AMX;
    if (g_conv_amx_only) {
        struct conv_ctx cn0 = { .be = be, .a = a16 };
        const double ta = amx ? time_median(run_conv_amx, &cn0) : 0;
        /* and with w imported (its packing cached, as a model's weights are) */
        struct infvsr_tensor * ts[1] = { &wb };
        uint64_t token = 0;
        INFVSR_ASSERT(infvsr_backend_weights_imported(be, ts, 1, &token, NULL) == INFVSR_OK);
        const double ti = amx ? time_median(run_conv_amx, &cn0) : 0;
        infvsr_backend_weights_released(be, token);
        const double fl = 2.0 * Cout * (double)Cin * kt * k * k * T * HW * HW;
        printf("conv3d %3d->%-3d %dx%dx%d%s %d frames %3dx%-3d amx %7.3f ms %7.1f GF/s | w imported %7.3f ms %7.1f GF/s\n", Cin,
               Cout, kt, k, k, stride == 2 ? " s2" : "   ", T, HW, HW, ta * 1e3, ta > 0 ? fl / ta * 1e-9 : 0, ti * 1e3,
               ti > 0 ? fl / ti * 1e-9 : 0);
        infvsr_tensor_release(&x), infvsr_tensor_release(&w), infvsr_tensor_release(&b), infvsr_tensor_release(&y);
        infvsr_tensor_release(&xb), infvsr_tensor_release(&wb), infvsr_tensor_release(&yb);
        return;
    }
    void (*const fns[4])(void *) = { run_conv, run_conv_native, run_conv, run_conv_amx };
    void * const ctxs[4] = { &cf, &cn, &cg, &cn };
    double t[4];
    if (amx) {
        time_alternating(4, fns, ctxs, t);
    } else {
        time_alternating(be_generic ? 3 : 2, fns, ctxs, t);
    }
    const double flop = 2.0 * Cout * (double)Cin * kt * k * k * T * HW * HW;
    printf("conv3d %3d->%-3d %dx%dx%d%s %d frames %3dx%-3d f32 %7.2f ms %6.1f GF/s | bf16 native %7.2f ms %6.1f GF/s (x%.2f vs f32",
           Cin, Cout, kt, k, k, stride == 2 ? " s2" : "   ", T, HW, HW, t[0] * 1e3, flop / t[0] * 1e-9, t[1] * 1e3, flop / t[1] * 1e-9, t[0] / t[1]);
    if (g_peak_bf16 > 0) printf(", %.0f%% of the bf16 ceiling", 100.0 * flop / t[1] * 1e-9 / g_peak_bf16);
    printf(")");
    if (be_generic) printf(" | bf16 generic %7.2f ms (native x%.2f)", t[2] * 1e3, t[2] / t[1]);
    if (amx) {
        printf(" | bf16 amx %7.2f ms %6.1f GF/s (x%.2f vs native, x%.2f vs generic)", t[3] * 1e3, flop / t[3] * 1e-9,
               t[1] / t[3], t[2] / t[3]);
    }
    if (be_generic) {
        const uint64_t n0 = infvsr__conv3d_bf16_calls(), m0 = infvsr__conv3d_amx_calls();
        run_conv(&cn);
        printf(" | auto: %s", infvsr__conv3d_amx_calls() != m0 ? "amx" : infvsr__conv3d_bf16_calls() != n0 ? "native" : "generic");
    }
    printf("\n");
    if (with_sgemm) {
        struct conv_ctx c = cf;
        c.M = Cout, c.K = Cin * kt * k * k, c.N = T * HW * HW;
        c.wf = w.data;
        c.col = malloc((size_t)c.K * c.N * sizeof(float));
        test_fill_uniform(c.col, (size_t)c.K * c.N, -1, 1, 11);
        double tg = time_median(run_conv_gemm_only, &c);
        printf("  its im2col sgemm alone (f32) %7.2f ms %6.1f GF/s (AVX2 FMA peak %.0f%%)\n", tg * 1e3, flop / tg * 1e-9,
               100.0 * flop / tg * 1e-9 / g_peak);
        free(c.col);
    }
    infvsr_tensor_release(&x), infvsr_tensor_release(&w), infvsr_tensor_release(&b), infvsr_tensor_release(&y);
    infvsr_tensor_release(&xb), infvsr_tensor_release(&wb), infvsr_tensor_release(&yb);
}

static void bench_conv3d(struct infvsr_backend * be, struct infvsr_backend * be_generic, int Cin, int Cout, int kt,
                         int T, int HW, bool with_sgemm) {
    bench_conv3d_k(be, be_generic, Cin, Cout, kt, 3, 1, T, HW, with_sgemm);
}

/* ---- activations ---- */

struct unary_ctx {
    struct infvsr_backend * be;
    enum infvsr_unary_op    op;
    struct infvsr_tensor    x, y;
};

static void run_unary(void * p) {
    struct unary_ctx * c = p;
    INFVSR_ASSERT(infvsr_op_unary(c->be, c->op, &c->x, &c->y, NULL) == INFVSR_OK);
}

static void bench_unary(struct infvsr_backend * be, int64_t n) {
    static const char * names[] = { "gelu_tanh", "gelu_erf", "silu" };
    struct unary_ctx c = { .be = be };
    INFVSR_ASSERT(infvsr_tensor_alloc(&c.x, "x", INFVSR_TYPE_F32, 1, &n) == INFVSR_OK);
    INFVSR_ASSERT(infvsr_tensor_alloc(&c.y, "y", INFVSR_TYPE_F32, 1, &n) == INFVSR_OK);
    test_fill_uniform(c.x.data, (size_t)n, -5, 5, 11);
    for (int op = 0; op < INFVSR_UNARY_COUNT; op++) {
        c.op = (enum infvsr_unary_op)op;
        double t = time_median(run_unary, &c);
        printf("unary %-9s n=%lld  %7.1f Melem/s  %6.2f ms\n", names[op], (long long)n, n / t * 1e-6, t * 1e3);
    }
    infvsr_tensor_release(&c.x), infvsr_tensor_release(&c.y);
}

/* ---- resize ---- */

struct resize_ctx {
    struct infvsr_backend * be;
    enum infvsr_resize_mode mode;
    struct infvsr_tensor    x, y;
};

/* ---- the bf16 Swin encoder's ops (stage 1: 64 windows of 144 tokens, 6 heads of 32, C 192),
 * each on the native bf16 kernels of this CPU's level and on the generic path (the same
 * backend forced to avx2: widen, f32 op, round), alternating ---- */

enum swin_op { SW_QK, SW_PV, SW_SOFTMAX, SW_LAYER_NORM, SW_GELU, SW_ADD, SW_SCALE, SW_BIAS };

struct swin_ctx {
    struct infvsr_backend * be;
    enum swin_op            op;
    struct infvsr_tensor *  t; /* the shared tensors below */
};

static void run_swin(void * p) {
    const struct swin_ctx * c = p;
    struct infvsr_tensor * t = c->t; /* q k v scores o x s h w b bias */
    struct infvsr_copy_args a;
    switch (c->op) {
    case SW_QK:         INFVSR_ASSERT(infvsr_op_matmul(c->be, &t[0], &t[1], true, 1.0f, &t[3], NULL) == INFVSR_OK); break;
    case SW_PV:         INFVSR_ASSERT(infvsr_op_matmul(c->be, &t[3], &t[2], false, 1.0f, &t[4], NULL) == INFVSR_OK); break;
    case SW_SOFTMAX:    INFVSR_ASSERT(infvsr_op_softmax(c->be, &t[3], &t[3], NULL) == INFVSR_OK); break;
    case SW_LAYER_NORM: INFVSR_ASSERT(infvsr_op_layer_norm(c->be, &t[5], &t[8], &t[9], 1e-5f, &t[6], NULL) == INFVSR_OK); break;
    case SW_GELU:       INFVSR_ASSERT(infvsr_op_unary(c->be, INFVSR_UNARY_GELU_ERF, &t[7], &t[7], NULL) == INFVSR_OK); break;
    case SW_ADD:        INFVSR_ASSERT(infvsr_op_add(c->be, &t[5], &t[6], &t[5], NULL) == INFVSR_OK); break;
    case SW_SCALE:
        INFVSR_ASSERT(infvsr_op_affine_clamp(c->be, &t[6], 0.1767767f, 0.0f, -INFINITY, INFINITY, &t[6], NULL) == INFVSR_OK);
        break;
    case SW_BIAS: /* scores [64, 6 * 144 * 144] += bias [6 * 144 * 144] */
        a = infvsr_copy_args_init(INFVSR_COPY_ACCUMULATE, 2);
        a.extent[0] = 64, a.extent[1] = 6 * 144 * 144;
        a.x = &t[10], a.x_stride[1] = 1;
        a.y = &t[3], a.y_stride[0] = 6 * 144 * 144, a.y_stride[1] = 1;
        INFVSR_ASSERT(infvsr_op_copy(c->be, &a, NULL) == INFVSR_OK);
        break;
    }
}

static void bench_swin_bf16(struct infvsr_backend * be, struct infvsr_backend * be_generic) {
    const int64_t B = 384, N = 144, D = 32, T = 9216, C = 192;
    const int64_t shapes[11][3] = { { B, N, D }, { B, N, D }, { B, N, D }, { B, N, N }, { B, N, D },
                                    { T, C, 1 }, { T, C, 1 }, { T, 4 * C, 1 }, { C, 1, 1 }, { C, 1, 1 },
                                    { 6 * N * N, 1, 1 } };
    const int nd[11] = { 3, 3, 3, 3, 3, 2, 2, 2, 1, 1, 1 };
    struct infvsr_tensor t[11];
    for (int i = 0; i < 11; i++) {
        INFVSR_ASSERT(infvsr_tensor_alloc(&t[i], "t", INFVSR_TYPE_BF16, nd[i], shapes[i]) == INFVSR_OK);
        uint16_t * d = t[i].data;
        for (int64_t e = 0; e < infvsr_tensor_numel(&t[i]); e++) d[e] = infvsr_f32_to_bf16((float)((e * 7919 % 997) - 498) / 997.0f);
    }
    static const char * names[] = { "matmul q.k^T [384,144,32]x[384,144,32]^T", "matmul p.v [384,144,144]x[384,144,32]",
                                    "softmax [55296,144] in place", "layer_norm [9216,192]", "unary gelu_erf [9216,768] in place",
                                    "add [9216,192]", "affine_clamp (q scale) [9216,192] in place",
                                    "copy accumulate bias [64 windows,6x144x144]" };
    if (!be_generic) {
        printf("swin bf16 ops: Skipped (this CPU has no AVX512-BF16: no native bf16 ops)\n");
    }
    for (int op = 0; be_generic && op <= SW_BIAS; op++) {
        struct swin_ctx cn = { .be = be, .op = (enum swin_op)op, .t = t }, cg = { .be = be_generic, .op = (enum swin_op)op, .t = t };
        void (*const fn[2])(void *) = { run_swin, run_swin };
        void * const ctx[2] = { &cn, &cg };
        double med[2];
        time_alternating(2, fn, ctx, med);
        printf("swin bf16 %-46s native %7.2f ms  generic %7.2f ms  %.2fx\n", names[op], med[0] * 1e3, med[1] * 1e3,
               med[1] / med[0]);
    }
    for (int i = 0; i < 11; i++) infvsr_tensor_release(&t[i]);
}

static void run_resize(void * p) {
    struct resize_ctx * c = p;
    INFVSR_ASSERT(infvsr_op_resize(c->be, c->mode, &c->x, &c->y, NULL) == INFVSR_OK);
}

static void bench_resize(struct infvsr_backend * be, const char * what, enum infvsr_resize_mode mode, int hi, int wi,
                         int ho, int wo) {
    int64_t sx[3] = { 3, hi, wi }, sy[3] = { 3, ho, wo };
    struct resize_ctx c = { .be = be, .mode = mode };
    INFVSR_ASSERT(infvsr_tensor_alloc(&c.x, "x", INFVSR_TYPE_F32, 3, sx) == INFVSR_OK);
    INFVSR_ASSERT(infvsr_tensor_alloc(&c.y, "y", INFVSR_TYPE_F32, 3, sy) == INFVSR_OK);
    test_fill_uniform(c.x.data, (size_t)(3 * hi * wi), 0, 1, 12);
    double t = time_median(run_resize, &c);
    printf("resize %-22s 3x%dx%d -> 3x%dx%d  %7.2f ms  %7.1f Mpix/s out\n", what, hi, wi, ho, wo, t * 1e3,
           3.0 * ho * wo / t * 1e-6);
    infvsr_tensor_release(&c.x), infvsr_tensor_release(&c.y);
}

int main(int argc, char ** argv) {
    struct infvsr_cpu_params p = infvsr_cpu_default_params();
    if (argc > 1) p.n_threads = atoi(argv[1]);
    if (argc > 2) g_repeats = atoi(argv[2]) > 0 ? atoi(argv[2]) : 5;
    struct infvsr_backend * be;
    if (infvsr_cpu_backend_init(&p, &be) != INFVSR_OK) {
        fprintf(stderr, "bench_cpu: cannot start the CPU backend\n");
        return 1;
    }
    int n_threads = openblas_get_num_threads();
    if (getenv("BENCH_CPU_TIME") && atoi(getenv("BENCH_CPU_TIME")) > 0) g_threads_for_cpu_time = n_threads;
    const enum infvsr_cpu_isa isa = infvsr_cpu_isa_detect();
    const char * only = argc > 3 ? argv[3] : "";
    if (strcmp(only, "amx") == 0 && isa < INFVSR_CPU_ISA_AMX) {
        printf("linear bf16 on AMX (TDPBF16PS): Skipped (this CPU has no AMX-BF16; best here: %s)\n",
               infvsr_cpu_isa_name(isa));
        infvsr_backend_free(be);
        return 0;
    }
    double avx2 = best_of(loop_fma_avx2, n_threads, CEIL_ITERS);
    double avx512 = isa >= INFVSR_CPU_ISA_AVX512BF16 ? best_of(loop_fma_avx512, n_threads, CEIL_ITERS) : 0;
    double dp = isa >= INFVSR_CPU_ISA_AVX512BF16 ? best_of(loop_dpbf16, n_threads, CEIL_ITERS) : 0;
    double amx = isa >= INFVSR_CPU_ISA_AMX ? best_of(loop_amx, n_threads, CEIL_ITERS) : 0;
    /* f32 shares are of the f32 kernels' own instruction (AVX2 FMA: they are AVX2 code) */
    g_peak      = avx2;
    g_peak_bf16 = amx > 0 ? amx : dp;
    g_peak_dp = dp, g_peak_amx = amx;
    printf("ceilings on %d threads (measured now, best of 3): f32 FMA AVX2 %.1f GFLOP/s | f32 FMA AVX-512 ", n_threads, avx2);
    if (avx512 > 0) printf("%.1f", avx512); else printf("n/a");
    printf(" | bf16 VDPBF16PS ");
    if (dp > 0) printf("%.1f", dp); else printf("n/a (no AVX512-BF16)");
    printf(" | bf16 AMX TDPBF16PS ");
    if (amx > 0) printf("%.1f", amx); else printf("Skipped (no AMX here)");
    printf(" GFLOP/s; median of %d repeats\n", g_repeats);

    if (strcmp(only, "amx") == 0) {
        /* the DiT's GEMMs at 192 tokens, then more rows */
        bench_linear_amx(n_threads, 192, 1536, 1536);
        bench_linear_amx(n_threads, 192, 1536, 8960);
        bench_linear_amx(n_threads, 192, 8960, 1536);
        bench_linear_amx(n_threads, 1024, 1536, 1536);
        bench_linear_amx(n_threads, 1024, 1536, 8960);
    }
    if (!*only || strcmp(only, "linear") == 0 || strcmp(only, "dit") == 0) {
        /* the DiT's GEMMs on a chunk of 192 tokens (3 latent frames of 16x16) */
        bench_linear(be, 192, 1536, 1536);
        bench_linear(be, 192, 1536, 8960);
        bench_linear(be, 192, 8960, 1536);
    }
    if (!*only || strcmp(only, "linear") == 0) {
        bench_linear(be, 1024, 1536, 1536);
        bench_linear(be, 4096, 1536, 1536);
        bench_linear(be, 1024, 1536, 8960);
        bench_linear(be, 1024, 8960, 1536);
        bench_linear(be, 64, 1536, 1536);
        bench_linear(be, 1, 1536, 9216);
    }
    if (!*only || strcmp(only, "attention") == 0) {
        for (int b = 0; b < 2; b++) {
            const enum infvsr_dtype dt = b ? INFVSR_TYPE_BF16 : INFVSR_TYPE_F32;
            bench_attention(be, "DiT self", 2400, 2400, 0, 12, 128, dt);
            bench_attention(be, "DiT cache", 1200, 1200, 1200, 12, 128, dt);
            bench_attention(be, "DiT chunk", 192, 192, 192, 12, 128, dt); /* the 192-token steady chunk */
            bench_attention(be, "DiT cross", 2400, 145, 0, 12, 128, dt);
            bench_attention(be, "VAE", 4096, 4096, 0, 1, 384, dt);
        }
    }
    if (!*only || strcmp(only, "unary") == 0) bench_unary(be, 8 << 20);
    if (!*only || strcmp(only, "swin") == 0) {
        struct infvsr_backend * be_generic = NULL;
        struct infvsr_cpu_params pg = p;
        pg.isa = INFVSR_CPU_ISA_AVX2;
        if (isa > INFVSR_CPU_ISA_AVX2) INFVSR_ASSERT(infvsr_cpu_backend_init(&pg, &be_generic) == INFVSR_OK);
        bench_swin_bf16(be, be_generic);
        if (be_generic) infvsr_backend_free(be_generic);
    }
    if (!*only || strcmp(only, "resize") == 0) {
        bench_resize(be, "bicubic AA x4", INFVSR_RESIZE_BICUBIC_AA, 270, 480, 1080, 1920);
        bench_resize(be, "bilinear AA to 384", INFVSR_RESIZE_BILINEAR_AA, 1080, 1920, 384, 384);
    }
    g_conv_amx_only = strcmp(only, "conv3d-amx") == 0;
    if (!*only || strcmp(only, "conv3d") == 0 || g_conv_amx_only) {
        /* bf16 activations on the generic path: the same backend forced to the avx2 level */
        struct infvsr_backend * be_generic = NULL;
        struct infvsr_cpu_params pg = p;
        pg.isa = INFVSR_CPU_ISA_AVX2;
        if (isa > INFVSR_CPU_ISA_AVX2) INFVSR_ASSERT(infvsr_cpu_backend_init(&pg, &be_generic) == INFVSR_OK);
        /* GF/s count the direct conv's flops, so Winograd paths can pass the peak. The
         * 3x3x3 and time/spatial convs of a full-width VAE chunk at 64x64: the issue's
         * 96->96 at 4x64x64 first, then the decoder's widest layers. */
        bench_conv3d(be, be_generic, 96, 96, 3, 4, 64, true);
        bench_conv3d(be, be_generic, 192, 192, 3, 4, 32, false);
        bench_conv3d(be, be_generic, 384, 384, 3, 2, 16, false);
        bench_conv3d(be, be_generic, 384, 384, 3, 1, 8, false);
        bench_conv3d(be, be_generic, 192, 96, 1, 4, 64, false);  /* upsamples.11 spatial conv */
        bench_conv3d(be, be_generic, 384, 192, 1, 4, 32, false); /* upsamples.7 spatial conv  */
        bench_conv3d(be, be_generic, 96, 96, 3, 4, 128, false);  /* the same at 128x128       */
        /* the encoder's downsampling (3x3 stride 2) and 1x1x1 shortcut convs */
        bench_conv3d_k(be, be_generic, 96, 96, 1, 3, 2, 4, 32, false);
        bench_conv3d_k(be, be_generic, 192, 192, 1, 3, 2, 4, 16, false);
        bench_conv3d_k(be, be_generic, 96, 192, 1, 1, 1, 4, 32, false);
        bench_conv3d_k(be, be_generic, 192, 384, 1, 1, 1, 2, 16, false);
        /* the narrow ends: the encoder's first conv (3 channels in), the decoder's head (3
         * out), the latent side (16 in, 32 out; z_dim 16) */
        bench_conv3d(be, be_generic, 3, 96, 3, 4, 64, false);
        bench_conv3d(be, be_generic, 96, 3, 3, 4, 64, false);
        bench_conv3d(be, be_generic, 16, 384, 3, 4, 16, false);
        bench_conv3d(be, be_generic, 384, 32, 3, 4, 16, false);
        bench_conv3d_k(be, be_generic, 32, 32, 1, 1, 1, 4, 16, false);
        /* the decoder's temporal upsampling conv (3x1x1, doubling the channels) */
        bench_conv3d_k(be, be_generic, 384, 768, 3, 1, 1, 2, 16, false);
        if (be_generic) infvsr_backend_free(be_generic);
    }

    infvsr_backend_free(be);
    return 0;
}
