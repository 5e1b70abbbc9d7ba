/* The AMX GEMM of linear (kernels/cpu/gemm_amx_body.h) run here on an emulation of the tile
 * instructions (kernels/cpu/amx_tile.h with INFVSR_AMX_EMULATE): the kernel's own source,
 * so its tiling, VNNI packing, K tails and M/N edges are checked on machines without AMX (CI,
 * Zen 4), the way tests/cuda-emu checks the CUDA kernels.
 *
 *  - the emulated TDPBF16PS against values worked out by hand from the Intel SDM's
 *    pseudocode (order of the sums, rounding, DAZ, FTZ, the VNNI pairing), and the
 *    emulation stopping where the CPU would fault (no LDTILECFG, after TILERELEASE);
 *  - the GEMM against a float64 reference on many shapes (M, N, K off every tile size, odd K,
 *    M < 16), with and without bias, each activation, f32 and bf16 output, f32/f16/bf16
 *    weights; a bf16 output must be the f32 output rounded once;
 *  - bit for bit against the AVX512-BF16 kernel (gemm_bf16.c) where the two sum in the same
 *    order: exact (integer) data, and K <= 2 (one rounding in both); otherwise each within
 *    the stated bound of the reference, as the instructions' orders differ;
 *  - bit for bit across panel sizes and thread counts (the order of the sums depends on
 *    neither), LDTILECFG and TILERELEASE balanced;
 *  - the product's entry point (real tiles): refused with INFVSR_ERR_UNSUPPORTED without
 *    AMX, against the reference where AMX exists.
 * Built a second time with INFVSR_AMX_EMU_PLANT_VNNI (a wrong pair layout in the emulated
 * instruction): that build must fail the reference comparison (tests/ops/CMakeLists.txt). */
#define INFVSR_AMX_EMULATE 1
#include "amx_tile.h"
#include "gemm_amx_body.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "amx_test_util.h"
#include "check.h"
#include "isa.h"

static float f32_of_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- the emulated instruction ---- */

/* C (16x16 f32) += A (16 rows x 32 bf16) . B (16 pair-rows x 16 columns x 2 bf16) */
static void one_dp(const uint16_t a[16][32], const uint16_t b[16][32], float c[16][16]) {
    amx_config(&amx_cfg);
    amx_load(4, a, 64);
    amx_load(6, b, 64);
    amx_load(0, c, 64);
    amx_dpbf16ps(0, 4, 6);
    amx_store(0, c, 64);
    amx_release();
}

static void test_emu_tdpbf16ps_sdm(void) {
    static uint16_t a[16][32], b[16][32];
    static float c[16][16];
    const uint16_t one = 0x3f80, two24 = 0x4b80, neg_two24 = 0xcb80;
    /* small integers: every sum exact, so the result is the plain dot product over the
     * pairs, B's pair k holding column n's two k at bf16 2n and 2n+1 */
    uint64_t s = 7;
    for (int i = 0; i < 16; i++) {
        for (int j = 0; j < 32; j++) {
            a[i][j] = infvsr_f32_to_bf16((float)((int)(test_rng_next(&s) % 9) - 4));
            b[i][j] = infvsr_f32_to_bf16((float)((int)(test_rng_next(&s) % 9) - 4));
        }
    }
    for (int m = 0; m < 16; m++)
        for (int n = 0; n < 16; n++) c[m][n] = (float)(m - n);
    one_dp(a, b, c);
    int bad = 0;
    for (int m = 0; m < 16; m++) {
        for (int n = 0; n < 16; n++) {
            double want = m - n;
            for (int k = 0; k < 16; k++) {
                for (int e = 0; e < 2; e++)
                    want += (double)infvsr_bf16_to_f32(a[m][2 * k + e]) * infvsr_bf16_to_f32(b[k][2 * n + e]);
            }
            bad += c[m][n] != (float)want;
        }
    }
    CHECK_EQ_INT(bad, 0);

    /* the order: even and odd products in two separate f32 chains. Even 2^24 + 1 + 1 stays
     * 2^24 (each +1 is a tie, rounded to even), odd -2^24: the result is 0, where the exact
     * sum (and an order that pairs them first) gives 2. */
    memset(a, 0, sizeof a), memset(b, 0, sizeof b), memset(c, 0, sizeof c);
    a[0][0] = two24, a[0][1] = neg_two24, a[0][2] = one, a[0][4] = one;
    for (int k = 0; k < 3; k++) b[k][0] = b[k][1] = one;
    one_dp(a, b, c);
    CHECK_MSG(c[0][0] == 0.0f, "chains: %.9g, want 0", c[0][0]);
    /* C is added last, to the sum of the two chains: C = -2^24, even 2^24, odd 1: the
     * chains give 2^24 (a tie), C + that = 0, where (C + even) + odd would give 1 */
    memset(a, 0, sizeof a), memset(c, 0, sizeof c);
    a[0][0] = two24, a[0][1] = one;
    c[0][0] = -16777216.0f;
    one_dp(a, b, c);
    CHECK_MSG(c[0][0] == 0.0f, "C last: %.9g, want 0", c[0][0]);
    /* DAZ: the smallest bf16 denormal (2^-133) times 2^100 is 2^-33 in exact arithmetic,
     * but an input denormal counts as 0 */
    memset(a, 0, sizeof a), memset(b, 0, sizeof b), memset(c, 0, sizeof c);
    a[0][0] = 0x0001, b[0][0] = 0x7180;
    one_dp(a, b, c);
    CHECK_MSG(c[0][0] == 0.0f, "DAZ: %.9g, want 0", c[0][0]);
    /* FTZ: 2^-70 * 2^-70 = 2^-140 is an f32 denormal: flushed to 0 */
    a[0][0] = 0x1c80, b[0][0] = 0x1c80;
    one_dp(a, b, c);
    CHECK_MSG(c[0][0] == 0.0f, "FTZ: %.9g, want 0", c[0][0]);
    /* and a normal product is kept: 2^-60 * 2^-60 = 2^-120 */
    a[0][0] = 0x2180, b[0][0] = 0x2180;
    one_dp(a, b, c);
    CHECK_MSG(c[0][0] == f32_of_bits(0x03800000), "normal: %.9g, want 2^-120", c[0][0]);
}

/* Where the CPU would fault, the emulation must stop the program, or a kernel that forgot
 * LDTILECFG on a worker thread (or after TILERELEASE) would pass here and fault on AMX. */
static bool faults(int what) {
    fflush(NULL);
    const pid_t pid = fork();
    INFVSR_ASSERT(pid >= 0);
    if (pid == 0) {
        static uint16_t t[16][32];
        if (freopen("/dev/null", "w", stderr) == NULL) _exit(3);
        if (what >= 1) amx_config(&amx_cfg);
        if (what == 2) amx_release();
        if (what == 3) amx_dpbf16ps(0, 4, 4); /* the same tile twice */
        else amx_load(4, t, 64);
        _exit(0);
    }
    int status = 0;
    INFVSR_ASSERT(waitpid(pid, &status, 0) == pid);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

static void test_emu_faults_like_the_cpu(void) {
    CHECK(faults(0)); /* never configured */
    CHECK(!faults(1)); /* configured: the load runs */
    CHECK(faults(2)); /* released */
    CHECK(faults(3));
}

/* ---- the GEMM against float64 ---- */

struct lin_case {
    int64_t              M, N, K;
    enum infvsr_dtype    wdt;
    int                  bias;  /* 0 none, else the bias dtype index in dtypes[] + 1 */
    enum infvsr_unary_op act;   /* INFVSR_UNARY_COUNT: none */
    bool                 integers;
    uint64_t             seed;
};

static const enum infvsr_dtype dtypes[3] = { INFVSR_TYPE_BF16, INFVSR_TYPE_F32, INFVSR_TYPE_F16 };

/* Inputs (allocated to their exact sizes, so ASan sees any read past them) and the float64
 * reference of the contract: x bf16, w rounded to bf16, sums and bias in float64. */
struct lin_data {
    struct lin_case c;
    uint16_t *      x;
    void *          w, * b;
    double *        pre, * mag; /* x.w + b and sum |x w| + |b|, [M][N] */
};

static void store_as(void * dst, enum infvsr_dtype dt, size_t i, float v) {
    switch (dt) {
    case INFVSR_TYPE_BF16: ((uint16_t *)dst)[i] = infvsr_f32_to_bf16(v); break;
    case INFVSR_TYPE_F16:  ((uint16_t *)dst)[i] = infvsr_f32_to_f16(v); break;
    default:               ((float *)dst)[i] = v; break;
    }
}

static float read_as(const void * src, enum infvsr_dtype dt, size_t i) {
    switch (dt) {
    case INFVSR_TYPE_BF16: return infvsr_bf16_to_f32(((const uint16_t *)src)[i]);
    case INFVSR_TYPE_F16:  return infvsr_f16_to_f32(((const uint16_t *)src)[i]);
    default:               return ((const float *)src)[i];
    }
}

static float draw(uint64_t * s, bool integers) {
    if (integers) return (float)((int)(test_rng_next(s) % 9) - 4);
    return (float)((double)(test_rng_next(s) >> 11) * (2.0 / 9007199254740992.0) - 1.0);
}

static struct lin_data make_data(struct lin_case c) {
    struct lin_data d = { .c = c };
    const int64_t M = c.M, N = c.N, K = c.K;
    const enum infvsr_dtype bdt = c.bias ? dtypes[c.bias - 1] : INFVSR_TYPE_F32;
    d.x = malloc((size_t)(M * K) * 2);
    d.w = malloc((size_t)(N * K) * infvsr_dtype_size(c.wdt));
    d.b = c.bias ? malloc((size_t)N * infvsr_dtype_size(bdt)) : NULL;
    d.pre = malloc((size_t)(M * N) * sizeof(double));
    d.mag = malloc((size_t)(M * N) * sizeof(double));
    INFVSR_ASSERT(d.x && d.w && (d.b || !c.bias) && d.pre && d.mag);
    uint64_t s = c.seed;
    for (int64_t i = 0; i < M * K; i++) d.x[i] = infvsr_f32_to_bf16(draw(&s, c.integers));
    for (int64_t i = 0; i < N * K; i++) store_as(d.w, c.wdt, (size_t)i, draw(&s, c.integers));
    for (int64_t i = 0; c.bias && i < N; i++) store_as(d.b, bdt, (size_t)i, c.integers ? draw(&s, true) : 0.5f * draw(&s, false));
    for (int64_t m = 0; m < M; m++) {
        for (int64_t n = 0; n < N; n++) {
            double acc = 0, mag = 0;
            for (int64_t k = 0; k < K; k++) {
                const double xv = infvsr_bf16_to_f32(d.x[m * K + k]);
                const double wv = infvsr_bf16_to_f32(infvsr_f32_to_bf16(read_as(d.w, c.wdt, (size_t)(n * K + k))));
                acc += xv * wv;
                mag += fabs(xv * wv);
            }
            if (c.bias) {
                const double bv = read_as(d.b, bdt, (size_t)n);
                acc += bv, mag += fabs(bv);
            }
            d.pre[m * N + n] = acc, d.mag[m * N + n] = mag;
        }
    }
    return d;
}

static void free_data(struct lin_data * d) {
    free(d->x), free(d->w), free(d->b), free(d->pre), free(d->mag);
}

static struct infvsr_cpu_w w_of(const struct lin_data * d) {
    return (struct infvsr_cpu_w){ .data = d->w, .dtype = d->c.wdt };
}

static struct infvsr_cpu_w b_of(const struct lin_data * d) {
    return (struct infvsr_cpu_w){ .data = d->b, .dtype = d->c.bias ? dtypes[d->c.bias - 1] : INFVSR_TYPE_F32 };
}

/* The emulated AMX kernel into a fresh y of exactly M x N; LDTILECFG and TILERELEASE must
 * balance (every task configures its thread's tiles and releases them). */
static void * run_emu(struct infvsr_cpu_ctx * c, const struct lin_data * d, enum infvsr_dtype ydt) {
    void * y = malloc((size_t)(d->c.M * d->c.N) * infvsr_dtype_size(ydt));
    INFVSR_ASSERT(y);
    const long c0 = atomic_load(&amx_emu_configs), r0 = atomic_load(&amx_emu_releases);
    CHECK_EQ_INT(amx_linear(c, d->x, d->c.M, d->c.K, w_of(d), NULL, d->c.N, b_of(d), d->c.act, y, ydt), INFVSR_OK);
    const long configs = atomic_load(&amx_emu_configs) - c0, releases = atomic_load(&amx_emu_releases) - r0;
    CHECK(configs > 0);
    CHECK_EQ_INT(configs, releases);
    return y;
}

/* Worst |y - ref| over its allowed error (> 1 fails). The bound: each f32 rounding of the
 * sums costs at most 2^-24 of the sum of magnitudes, and a TDPBF16PS chain is at most 16
 * FMAs, plus the two additions and one per 32-k tile, so (K/2 + 20) 2^-24 is generous for
 * both orders; the activation's own error (the kernels' vector approximations) is a few
 * 1e-7 relative. A wrong element, pair or tile moves a value by about one |x w| term, which
 * is >= K/(K/2 + 20) 2^24 times more. */
static double worst_err(const struct lin_data * d, const float * y, int64_t * at) {
    const int64_t M = d->c.M, N = d->c.N, K = d->c.K;
    double worst = 0;
    for (int64_t i = 0; i < M * N; i++) {
        const double ref = infvsr_cpu_ref_unary1(d->c.act, d->pre[i]);
        const double tol = ldexp(((double)K / 2 + 20) * d->mag[i] * 1.2, -24) + 1e-6 * fabs(ref) + 1e-7;
        const double e = fabs((double)y[i] - ref) / tol;
        if (!(e <= worst)) worst = e, *at = i; /* NaN counts as worst */
    }
    return worst;
}

static int g_reported;

static void report(const struct lin_data * d, const char * what, double err, int64_t at) {
    if (g_reported++ >= 10) return;
    fprintf(stderr, "  %s: M=%lld N=%lld K=%lld w %s bias %d act %d: error %.3g x the bound at [%lld][%lld]\n", what,
            (long long)d->c.M, (long long)d->c.N, (long long)d->c.K, infvsr_dtype_name(d->c.wdt), d->c.bias,
            (int)d->c.act, err, (long long)(at / d->c.N), (long long)(at % d->c.N));
}

/* f32 output within the bound; the bf16 output exactly the f32 one rounded once. Returns
 * the error ratio. */
static double check_case(struct infvsr_cpu_ctx * c, struct lin_case lc, bool bf16_out) {
    struct lin_data d = make_data(lc);
    float * y = run_emu(c, &d, INFVSR_TYPE_F32);
    int64_t at = 0;
    const double err = worst_err(&d, y, &at);
    if (!(err <= 1)) report(&d, "f32 out", err, at);
    if (bf16_out) {
        uint16_t * yb = run_emu(c, &d, INFVSR_TYPE_BF16);
        int64_t bad = 0;
        for (int64_t i = 0; i < lc.M * lc.N; i++) bad += yb[i] != infvsr_f32_to_bf16(y[i]);
        CHECK_MSG(bad == 0, "M=%lld N=%lld K=%lld: %lld bf16 outputs are not the f32 output rounded once",
                  (long long)lc.M, (long long)lc.N, (long long)lc.K, (long long)bad);
        free(yb);
    }
    free(y);
    free_data(&d);
    return err;
}

static const int64_t g_ms[] = { 1, 5, 15, 16, 17, 32, 33, 50 };
static const int64_t g_ns[] = { 1, 7, 16, 31, 33, 64, 129, 200 };
static const int64_t g_ks[] = { 1, 2, 3, 15, 16, 17, 31, 32, 33, 64, 65, 257, 300 };
#define COUNT(a) (int)(sizeof(a) / sizeof((a)[0]))

static const enum infvsr_unary_op g_acts[4] = { INFVSR_UNARY_COUNT, INFVSR_UNARY_GELU_TANH, INFVSR_UNARY_GELU_ERF,
                                                INFVSR_UNARY_SILU };

/* Case i of the shape sweep: every M x N x K, the options cycling through all 96 mixes. */
static struct lin_case sweep_case(int i, int64_t M, int64_t N, int64_t K) {
    return (struct lin_case){ .M = M, .N = N, .K = K, .wdt = dtypes[i % 3], .bias = (i / 3) % 4,
                              .act = g_acts[(i / 12) % 4], .seed = 1000 + (uint64_t)i };
}

static void test_amx_vs_f64_shapes(void) {
    struct infvsr_backend * be = amx_test_backend(2);
    int i = 0, failed = 0;
    double worst = 0;
    g_reported = 0;
    for (int a = 0; a < COUNT(g_ms); a++) {
        for (int b = 0; b < COUNT(g_ns); b++) {
            for (int k = 0; k < COUNT(g_ks); k++, i++) {
                const double e = check_case(amx_test_ctx(be), sweep_case(i, g_ms[a], g_ns[b], g_ks[k]), (i / 48) % 2);
                failed += !(e <= 1);
                if (e > worst) worst = e;
            }
        }
    }
    /* bigger: several K blocks (8 tiles each), tasks and micro-kernels */
    const struct lin_case big[] = {
        { .M = 100, .N = 300, .K = 600, .wdt = INFVSR_TYPE_BF16, .bias = 1, .act = INFVSR_UNARY_GELU_TANH, .seed = 5 },
        { .M = 64, .N = 256, .K = 513, .wdt = INFVSR_TYPE_F32, .bias = 0, .act = INFVSR_UNARY_COUNT, .seed = 6 },
        { .M = 47, .N = 161, .K = 1023, .wdt = INFVSR_TYPE_F16, .bias = 3, .act = INFVSR_UNARY_SILU, .seed = 7 },
    };
    for (int j = 0; j < COUNT(big); j++, i++) {
        const double e = check_case(amx_test_ctx(be), big[j], true);
        failed += !(e <= 1);
        if (e > worst) worst = e;
    }
    printf("  %d cases, worst error %.3f x the bound\n", i, worst);
    CHECK_EQ_INT(failed, 0);
    infvsr_backend_free(be);
}

/* ---- against the AVX512-BF16 kernel ---- */

static bool have_avx512bf16(void) {
    return infvsr_cpu_isa_detect() >= INFVSR_CPU_ISA_AVX512BF16;
}

/* Both kernels on the same data: the number of outputs whose bits differ. */
static int64_t diff_vs_avx512(struct infvsr_cpu_ctx * c, struct lin_case lc, enum infvsr_dtype ydt, double * worst) {
    struct lin_data d = make_data(lc);
    const size_t n = (size_t)(lc.M * lc.N), es = infvsr_dtype_size(ydt);
    void * ya = run_emu(c, &d, ydt), * yv = malloc(n * es);
    INFVSR_ASSERT(yv);
    CHECK_EQ_INT(infvsr_cpu_op_linear_bf16(c, d.x, lc.M, lc.K, w_of(&d), lc.N, b_of(&d), lc.act, yv, ydt), INFVSR_OK);
    int64_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += memcmp((char *)ya + i * es, (char *)yv + i * es, es) != 0;
    if (worst && ydt == INFVSR_TYPE_F32) {
        int64_t at;
        const double e = worst_err(&d, yv, &at);
        if (e > *worst) *worst = e;
    }
    free(ya), free(yv);
    free_data(&d);
    return bad;
}

/* Small integers: every partial sum is exact in f32, so any order gives the exact value and
 * both kernels must agree bit for bit, with the reference too (and through the shared
 * epilogue with each activation and bf16 output). */
static void test_amx_exact_vs_avx512(void) {
    struct infvsr_backend * be = amx_test_backend(2);
    static const int64_t shapes[][3] = { { 8, 16, 32 }, { 17, 33, 65 }, { 50, 129, 257 }, { 33, 200, 1001 }, { 9, 7, 3 },
                                         { 64, 64, 600 } };
    for (int s = 0; s < COUNT(shapes); s++) {
        for (int v = 0; v < 8; v++) {
            struct lin_case lc = { .M = shapes[s][0], .N = shapes[s][1], .K = shapes[s][2], .wdt = dtypes[v % 3],
                                   .bias = v % 4, .act = g_acts[(v + s) % 4], .integers = true, .seed = 77 + (uint64_t)v };
            if (lc.act == INFVSR_UNARY_COUNT) { /* exact: equal to the float64 reference */
                struct lin_data d = make_data(lc);
                float * y = run_emu(amx_test_ctx(be), &d, INFVSR_TYPE_F32);
                int64_t bad = 0;
                for (int64_t i = 0; i < lc.M * lc.N; i++) bad += (double)y[i] != d.pre[i];
                CHECK_MSG(bad == 0, "shape %d: %lld integer outputs differ from the exact sums", s, (long long)bad);
                free(y);
                free_data(&d);
            }
            if (have_avx512bf16()) {
                const enum infvsr_dtype ydt = v % 2 ? INFVSR_TYPE_BF16 : INFVSR_TYPE_F32;
                const int64_t bad = diff_vs_avx512(amx_test_ctx(be), lc, ydt, NULL);
                CHECK_MSG(bad == 0, "shape %d variant %d: %lld outputs differ from the AVX512-BF16 kernel", s, v, (long long)bad);
            }
        }
    }
    if (!have_avx512bf16()) printf("  no AVX512-BF16 here: compared with the exact sums only\n");
    infvsr_backend_free(be);
}

/* K <= 2: one pair, whose two products are exact in f32, so both kernels round their sum
 * once (plus the bias in the shared epilogue): bit for bit on random data. Larger K: the
 * instructions sum in different orders (TDPBF16PS: two chains per 32 k then C; VDPBF16PS:
 * one chain over all pairs), so the two are compared through the reference: both within its
 * bound. */
static void test_amx_vs_avx512_random(void) {
    if (!have_avx512bf16()) {
        printf("  no AVX512-BF16 here: skipped (the reference comparison covers the AMX kernel)\n");
        return;
    }
    struct infvsr_backend * be = amx_test_backend(2);
    int i = 0;
    for (int a = 0; a < COUNT(g_ms); a++) {
        for (int b = 0; b < COUNT(g_ns); b++) {
            for (int64_t K = 1; K <= 2; K++, i++) {
                struct lin_case lc = sweep_case(i, g_ms[a], g_ns[b], K);
                const int64_t bad = diff_vs_avx512(amx_test_ctx(be), lc, i % 2 ? INFVSR_TYPE_BF16 : INFVSR_TYPE_F32, NULL);
                CHECK_MSG(bad == 0, "M=%lld N=%lld K=%lld: %lld outputs differ from the AVX512-BF16 kernel",
                          (long long)lc.M, (long long)lc.N, (long long)K, (long long)bad);
            }
        }
    }
    double worst = 0;
    int64_t differ = 0, total = 0;
    for (int k = 2; k < COUNT(g_ks); k++, i++) {
        struct lin_case lc = sweep_case(i, 33, 129, g_ks[k]);
        differ += diff_vs_avx512(amx_test_ctx(be), lc, INFVSR_TYPE_F32, &worst);
        total += lc.M * lc.N;
    }
    printf("  K > 2: %lld of %lld outputs differ in their bits; the AVX512-BF16 kernel's worst error %.3f x the bound\n",
           (long long)differ, (long long)total, worst);
    CHECK(worst <= 1);
    infvsr_backend_free(be);
}

/* The order of the sums depends neither on the panels nor on the threads: bit for bit. */
static void test_amx_panels_threads_bitexact(void) {
    struct infvsr_backend * be2 = amx_test_backend(2), * be1 = amx_test_backend(1);
    const struct lin_case cases[] = {
        { .M = 40, .N = 300, .K = 99, .wdt = INFVSR_TYPE_BF16, .bias = 2, .act = INFVSR_UNARY_SILU, .seed = 11 },
        { .M = 17, .N = 520, .K = 300, .wdt = INFVSR_TYPE_F32, .bias = 0, .act = INFVSR_UNARY_COUNT, .seed = 12 },
    };
    const size_t old = amx_panel_bytes;
    for (int i = 0; i < COUNT(cases); i++) {
        struct lin_data d = make_data(cases[i]);
        float * base = run_emu(amx_test_ctx(be2), &d, INFVSR_TYPE_F32);
        amx_panel_bytes = 1; /* one task's columns per panel: 3 and 5 panels, the last partial */
        float * panels = run_emu(amx_test_ctx(be2), &d, INFVSR_TYPE_F32);
        amx_panel_bytes = old;
        float * one = run_emu(amx_test_ctx(be1), &d, INFVSR_TYPE_F32);
        const size_t n = (size_t)(d.c.M * d.c.N) * sizeof(float);
        CHECK_MSG(memcmp(base, panels, n) == 0, "case %d: small panels changed the result", i);
        CHECK_MSG(memcmp(base, one, n) == 0, "case %d: 1 thread changed the result", i);
        int64_t at;
        CHECK(worst_err(&d, panels, &at) <= 1);
        free(base), free(panels), free(one);
        free_data(&d);
    }
    infvsr_backend_free(be2), infvsr_backend_free(be1);
}

/* The product's entry point runs the real tile instructions: without AMX it must refuse
 * (never fault) and leave y alone; with AMX it must meet the reference like the emulation. */
static void test_amx_real_entry(void) {
    struct infvsr_backend * be = amx_test_backend(2);
    struct infvsr_cpu_ctx * c = amx_test_ctx(be);
    if (infvsr_cpu_isa_detect() < INFVSR_CPU_ISA_AMX) {
        struct lin_data d = make_data((struct lin_case){ .M = 20, .N = 40, .K = 70, .wdt = INFVSR_TYPE_BF16, .seed = 3 });
        float y[20 * 40];
        for (int i = 0; i < 20 * 40; i++) y[i] = 42.0f;
        CHECK_EQ_INT(infvsr_cpu_op_linear_amx(c, d.x, 20, 70, w_of(&d), NULL, 40, b_of(&d), INFVSR_UNARY_COUNT, y,
                                              INFVSR_TYPE_F32),
                     INFVSR_ERR_UNSUPPORTED);
        int untouched = 1;
        for (int i = 0; i < 20 * 40; i++) untouched &= y[i] == 42.0f;
        CHECK(untouched);
        free_data(&d);
        printf("  no AMX here: the real kernel refuses (INFVSR_ERR_UNSUPPORTED)\n");
        infvsr_backend_free(be);
        return;
    }
    int i = 0, failed = 0;
    int64_t differ = 0, total = 0;
    for (int a = 0; a < COUNT(g_ms); a++) {
        for (int k = 0; k < COUNT(g_ks); k++, i++) {
            struct lin_case lc = sweep_case(i, g_ms[a], g_ns[(a + k) % COUNT(g_ns)], g_ks[k]);
            struct lin_data d = make_data(lc);
            float * y = malloc((size_t)(lc.M * lc.N) * sizeof *y);
            INFVSR_ASSERT(y);
            CHECK_EQ_INT(infvsr_cpu_op_linear_amx(c, d.x, lc.M, lc.K, w_of(&d), NULL, lc.N, b_of(&d), lc.act, y,
                                                  INFVSR_TYPE_F32),
                         INFVSR_OK);
            int64_t at = 0;
            const double e = worst_err(&d, y, &at);
            if (!(e <= 1)) report(&d, "real AMX", e, at), failed++;
            float * ye = run_emu(c, &d, INFVSR_TYPE_F32);
            for (int64_t j = 0; j < lc.M * lc.N; j++) differ += memcmp(&y[j], &ye[j], sizeof(float)) != 0;
            total += lc.M * lc.N;
            free(y), free(ye);
            free_data(&d);
        }
    }
    /* the SDM's pseudocode fixes the order the emulation uses; a CPU may differ within it */
    printf("  real AMX: %d cases; %lld of %lld outputs differ in their bits from the emulation\n", i, (long long)differ,
           (long long)total);
    CHECK_EQ_INT(failed, 0);
    infvsr_backend_free(be);
}

/* ---- weights packed once (weight_pack.c) ----
 * An imported weight is packed once into infvsr_cpu_linear_bf16_pack's layout (strips of
 * 16 columns, strip_pairs(K) pairs each, columns padded to 64) and the AMX kernel reads it
 * in place. Its own per-call packing (amx_pack_b_task) writes the same strips, so packing
 * w whole with it (every strip of the padded columns) stands for the cached copy here. */
static uint16_t * pack_whole_emu(struct infvsr_cpu_ctx * c, const struct lin_data * d) {
    const int64_t N = d->c.N, K = d->c.K, KT = (K + AMX_TK - 1) / AMX_TK, strips = (N + 63) / 64 * 4;
    CHECK_EQ_INT(KT * AMX_TK / 2, infvsr_cpu_bf16_strip_pairs(K));
    CHECK_EQ_INT((size_t)(strips * KT * AMX_TILE), infvsr_cpu_linear_bf16_packed_elems(N, K));
    uint16_t * packed = malloc((size_t)(strips * KT * AMX_TILE) * sizeof *packed);
    INFVSR_ASSERT(packed);
    struct amx_pack_b pb = { .panel = packed, .w = w_of(d), .n0 = 0, .N = N, .K = K, .KT = KT };
    infvsr__par(c, strips, amx_pack_b_task, &pb);
    return packed;
}

/* The emulated kernel on packed weights: bit for bit the per-call result (the sums run
 * in the same order; only where B comes from differs). */
static void test_amx_packed_weights_bitexact(void) {
    struct infvsr_backend * be = amx_test_backend(2);
    struct infvsr_cpu_ctx * c = amx_test_ctx(be);
    const struct lin_case cases[] = {
        { .M = 40, .N = 300, .K = 99, .wdt = INFVSR_TYPE_BF16, .bias = 2, .act = INFVSR_UNARY_SILU, .seed = 21 },
        { .M = 17, .N = 520, .K = 300, .wdt = INFVSR_TYPE_F32, .bias = 0, .act = INFVSR_UNARY_COUNT, .seed = 22 },
        { .M = 64, .N = 64, .K = 64, .wdt = INFVSR_TYPE_BF16, .bias = 1, .act = INFVSR_UNARY_GELU_TANH, .seed = 23 },
        { .M = 9, .N = 33, .K = 1, .wdt = INFVSR_TYPE_F16, .bias = 3, .act = INFVSR_UNARY_COUNT, .seed = 24 },
    };
    for (int i = 0; i < COUNT(cases); i++) {
        struct lin_data d = make_data(cases[i]);
        float * base = run_emu(c, &d, INFVSR_TYPE_F32);
        uint16_t * packed = pack_whole_emu(c, &d);
        const size_t n = (size_t)(d.c.M * d.c.N);
        float * y = malloc(n * sizeof *y);
        INFVSR_ASSERT(y);
        CHECK_EQ_INT(amx_linear(c, d.x, d.c.M, d.c.K, w_of(&d), packed, d.c.N, b_of(&d), d.c.act, y, INFVSR_TYPE_F32),
                     INFVSR_OK);
        CHECK_MSG(memcmp(base, y, n * sizeof *y) == 0, "case %d: packed weights changed the result", i);
        free(base), free(y), free(packed);
        free_data(&d);
    }
    infvsr_backend_free(be);
}

/* Where the CPU has AVX512-BF16, the product's packing (infvsr_cpu_linear_bf16_pack, what
 * the weight cache stores) must be exactly the strips the AMX kernel expects; and on AMX
 * the real kernel on those packed weights gives the per-call result bit for bit. */
static void test_amx_reads_the_cached_layout(void) {
    if (infvsr_cpu_isa_detect() < INFVSR_CPU_ISA_AVX512BF16) {
        printf("  no AVX512-BF16 here: the product's packing does not run\n");
        return;
    }
    struct infvsr_backend * be = amx_test_backend(2);
    struct infvsr_cpu_ctx * c = amx_test_ctx(be);
    const struct lin_case cases[] = {
        { .M = 40, .N = 300, .K = 99, .wdt = INFVSR_TYPE_BF16, .bias = 2, .act = INFVSR_UNARY_SILU, .seed = 31 },
        { .M = 33, .N = 520, .K = 300, .wdt = INFVSR_TYPE_F32, .bias = 0, .act = INFVSR_UNARY_COUNT, .seed = 32 },
        { .M = 70, .N = 100, .K = 1536, .wdt = INFVSR_TYPE_BF16, .bias = 1, .act = INFVSR_UNARY_GELU_TANH, .seed = 33 },
        { .M = 8, .N = 16, .K = 33, .wdt = INFVSR_TYPE_F16, .bias = 3, .act = INFVSR_UNARY_COUNT, .seed = 34 },
    };
    for (int i = 0; i < COUNT(cases); i++) {
        struct lin_data d = make_data(cases[i]);
        const size_t elems = infvsr_cpu_linear_bf16_packed_elems(d.c.N, d.c.K);
        uint16_t * product = malloc(elems * sizeof *product), * emu = pack_whole_emu(c, &d);
        INFVSR_ASSERT(product);
        memset(product, 0xAB, elems * sizeof *product); /* padding must be written, not left */
        infvsr_cpu_linear_bf16_pack(c, w_of(&d), d.c.N, d.c.K, product);
        CHECK_MSG(memcmp(product, emu, elems * sizeof *product) == 0, "case %d: the cached layout is not the AMX strips", i);
        if (infvsr_cpu_isa_detect() >= INFVSR_CPU_ISA_AMX) {
            const size_t n = (size_t)(d.c.M * d.c.N);
            float * y0 = malloc(n * sizeof *y0), * y1 = malloc(n * sizeof *y1);
            INFVSR_ASSERT(y0 && y1);
            CHECK_EQ_INT(infvsr_cpu_op_linear_amx(c, d.x, d.c.M, d.c.K, w_of(&d), NULL, d.c.N, b_of(&d), d.c.act, y0,
                                                  INFVSR_TYPE_F32),
                         INFVSR_OK);
            CHECK_EQ_INT(infvsr_cpu_op_linear_amx(c, d.x, d.c.M, d.c.K, w_of(&d), product, d.c.N, b_of(&d), d.c.act,
                                                  y1, INFVSR_TYPE_F32),
                         INFVSR_OK);
            CHECK_MSG(memcmp(y0, y1, n * sizeof *y0) == 0, "case %d: real AMX on packed weights differs", i);
            int64_t at = 0;
            CHECK(worst_err(&d, y1, &at) <= 1);
            free(y0), free(y1);
        }
        free(product), free(emu);
        free_data(&d);
    }
    printf("  product packing == AMX strips%s\n",
           infvsr_cpu_isa_detect() >= INFVSR_CPU_ISA_AMX ? "; real AMX on them == per call" : "");
    infvsr_backend_free(be);
}

#ifdef INFVSR_AMX_EMU_PLANT_VNNI
/* With the pair layout planted wrong in the emulated instruction, every case with two or
 * more k and columns must be out of bounds: the comparison sees the kernel's layout. */
static void test_planted_vnni_detected(void) {
    struct infvsr_backend * be = amx_test_backend(2);
    int cases = 0, caught = 0;
    g_reported = 100; /* quiet */
    for (int a = 0; a < COUNT(g_ms); a++) {
        for (int k = 1; k < COUNT(g_ks); k++) {
            struct lin_case lc = sweep_case(cases, g_ms[a], g_ns[2 + (a + k) % (COUNT(g_ns) - 2)], g_ks[k]);
            caught += !(check_case(amx_test_ctx(be), lc, false) <= 1);
            cases++;
        }
    }
    printf("  planted pair layout: %d of %d cases out of bounds\n", caught, cases);
    CHECK_EQ_INT(caught, cases);
    infvsr_backend_free(be);
}
#endif

static const struct test_case tests[] = {
    TEST(test_emu_tdpbf16ps_sdm),
    TEST(test_emu_faults_like_the_cpu),
    TEST(test_amx_vs_f64_shapes),
    TEST(test_amx_exact_vs_avx512),
    TEST(test_amx_vs_avx512_random),
    TEST(test_amx_panels_threads_bitexact),
    TEST(test_amx_real_entry),
    TEST(test_amx_packed_weights_bitexact),
    TEST(test_amx_reads_the_cached_layout),
#ifdef INFVSR_AMX_EMU_PLANT_VNNI
    TEST(test_planted_vnni_detected),
#endif
    { 0 },
};

int main(int argc, char ** argv) {
    return test_main(argc, argv, tests);
}
