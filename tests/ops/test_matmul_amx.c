/* The batched bf16 matmul's AMX kernel (kernels/cpu/matmul_amx_body.h) run here on the
 * emulated tile instructions (kernels/cpu/amx_tile.h with INFVSR_AMX_EMULATE): its packing
 * of b (both orientations) into VNNI strips, the zero-padded A rows (K off 32, row tails)
 * and the column tails, checked on machines without AMX (CI).
 *
 *  - against float64 on the same bf16 inputs: every output within an f32 accumulation bound
 *    (K x 2^-23 x sum |a b| x |alpha|, plus half a bf16 ulp of the value for bf16 c), for
 *    the Swin encoder's shapes (144 x 144 x 32, 144 x 32 x 144) and edges (odd K, K off 32,
 *    rows and columns off 16, few and many batch entries);
 *  - bf16 c is the f32 c rounded once; bit for bit across thread counts; LDTILECFG and
 *    TILERELEASE balanced;
 *  - the product's entry point (real tiles): bit for bit with the emulation where AMX
 *    exists, INFVSR_ERR_UNSUPPORTED (and Skipped) elsewhere.
 * The build with a planted wrong VNNI layout (INFVSR_AMX_EMU_PLANT_VNNI) must fail the
 * float64 test (tests/ops/CMakeLists.txt). */
#define INFVSR_AMX_EMULATE 1
#include "amx_tile.h"
#include "matmul_amx_body.h"

#include <math.h>
#include <stdlib.h>

#include "amx_test_util.h"
#include "check.h"
#include "isa.h"

struct mm_case {
    int64_t B, M, K, N;
    bool    tb;
    float   alpha;
};

static const struct mm_case g_cases[] = {
    { 3, 144, 32, 144, true, 0.1767767f }, { 3, 144, 144, 32, false, 1.0f }, /* Swin q k^T, p v */
    { 2, 17, 33, 9, true, 1.0f },          { 2, 17, 33, 9, false, 0.5f },    /* odd K, tails */
    { 1, 40, 70, 50, false, 1.0f },        { 1, 40, 70, 50, true, 2.0f },    /* K off 32 */
    { 5, 16, 64, 48, true, 1.0f },         { 2, 100, 20, 31, false, 1.0f },  /* exact tiles; K < 32 */
    { 1, 9, 31, 40, true, 1.0f },          { 64, 20, 32, 20, false, 1.0f },  /* M < 16; many entries */
    { 1, 300, 40, 70, true, 0.125f },      { 2, 70, 128, 200, false, 1.0f }, /* row blocks per task */
};
#define N_CASES ((int)(sizeof g_cases / sizeof g_cases[0]))

struct mm_data {
    struct mm_case c;
    uint16_t *     a, * b;
    double *       ref, * bound; /* f64 result and its f32 accumulation bound, [B, M, N] */
};

static uint16_t * rand_bf16(size_t n, uint64_t seed) {
    float * f = malloc(n * sizeof *f);
    uint16_t * b = malloc(n * sizeof *b);
    INFVSR_ASSERT(f && b);
    test_fill_uniform(f, n, -1.5f, 1.5f, seed);
    for (size_t i = 0; i < n; i++) b[i] = infvsr_f32_to_bf16(f[i]);
    free(f);
    return b;
}

static struct mm_data make_data(struct mm_case c, uint64_t seed) {
    struct mm_data d = { .c = c };
    const int64_t B = c.B, M = c.M, K = c.K, N = c.N;
    d.a = rand_bf16((size_t)(B * M * K), seed);
    d.b = rand_bf16((size_t)(B * K * N), seed + 1);
    d.ref = malloc((size_t)(B * M * N) * sizeof *d.ref);
    d.bound = malloc((size_t)(B * M * N) * sizeof *d.bound);
    INFVSR_ASSERT(d.ref && d.bound);
    for (int64_t bi = 0; bi < B; bi++)
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                double s = 0, sa = 0;
                for (int64_t k = 0; k < K; k++) {
                    const double x = amx_test_bf16(d.a[(bi * M + m) * K + k]);
                    const double y = amx_test_bf16(c.tb ? d.b[(bi * N + n) * K + k] : d.b[(bi * K + k) * N + n]);
                    s += x * y, sa += fabs(x * y);
                }
                const size_t o = (size_t)((bi * M + m) * N + n);
                d.ref[o] = c.alpha * s;
                d.bound[o] = (double)(K + 2) * ldexp(1.0, -23) * sa * fabs(c.alpha) + 1e-30;
            }
    return d;
}

static void free_data(struct mm_data * d) {
    free(d->a), free(d->b), free(d->ref), free(d->bound);
}

/* The emulated kernel's c (f32 or bf16 widened to f32); configs and releases must balance. */
static float * run_emu(struct infvsr_cpu_ctx * c, const struct mm_data * d, enum infvsr_dtype cdt) {
    const size_t n = (size_t)(d->c.B * d->c.M * d->c.N);
    void * out = malloc(n * 4);
    float * f = malloc(n * sizeof *f);
    INFVSR_ASSERT(out && f);
    const long c0 = atomic_load(&amx_emu_configs), r0 = atomic_load(&amx_emu_releases);
    CHECK_EQ_INT(mmx_matmul(c, d->a, d->b, d->c.B, d->c.M, d->c.K, d->c.N, d->c.tb, d->c.alpha, out, cdt), INFVSR_OK);
    CHECK(atomic_load(&amx_emu_configs) - c0 == atomic_load(&amx_emu_releases) - r0);
    for (size_t i = 0; i < n; i++) f[i] = cdt == INFVSR_TYPE_F32 ? ((float *)out)[i] : (float)amx_test_bf16(((uint16_t *)out)[i]);
    free(out);
    return f;
}

/* Worst |c - ref| / bound (bf16 c: plus half a bf16 ulp of the reference). */
static double worst(const struct mm_data * d, const float * c, bool bf16) {
    double w = 0;
    for (size_t i = 0; i < (size_t)(d->c.B * d->c.M * d->c.N); i++) {
        const double bound = d->bound[i] + (bf16 ? ldexp(fabs(d->ref[i]), -8) * 1.01 : 0);
        const double e = fabs(c[i] - d->ref[i]) / bound;
        if (!(e <= w)) w = e; /* NaN counts as out of bounds */
    }
    return w;
}

static void test_mmx_vs_f64(void) {
    struct infvsr_backend * be = amx_test_backend(2);
    for (int i = 0; i < N_CASES; i++) {
        struct mm_data d = make_data(g_cases[i], 100 + 7 * (uint64_t)i);
        float * f = run_emu(amx_test_ctx(be), &d, INFVSR_TYPE_F32);
        float * h = run_emu(amx_test_ctx(be), &d, INFVSR_TYPE_BF16);
        const double wf = worst(&d, f, false), wh = worst(&d, h, true);
        CHECK_MSG(wf <= 1 && wh <= 1, "case %d (B %lld M %lld K %lld N %lld%s): %.3g / %.3g x the bound", i,
                  (long long)d.c.B, (long long)d.c.M, (long long)d.c.K, (long long)d.c.N, d.c.tb ? " b^T" : "", wf, wh);
        int64_t not_rounded = 0;
        for (size_t k = 0; k < (size_t)(d.c.B * d.c.M * d.c.N); k++)
            not_rounded += (float)amx_test_bf16(infvsr_f32_to_bf16(f[k])) != h[k];
        CHECK_MSG(not_rounded == 0, "case %d: %lld bf16 outputs are not the f32 ones rounded once", i,
                  (long long)not_rounded);
        free(f), free(h);
        free_data(&d);
    }
    infvsr_backend_free(be);
}

static void test_mmx_threads_bitexact(void) {
    struct infvsr_backend * be1 = amx_test_backend(1), * be3 = amx_test_backend(3);
    for (int i = 0; i < N_CASES; i += 3) {
        struct mm_data d = make_data(g_cases[i], 300 + (uint64_t)i);
        float * one = run_emu(amx_test_ctx(be1), &d, INFVSR_TYPE_F32);
        float * three = run_emu(amx_test_ctx(be3), &d, INFVSR_TYPE_F32);
        CHECK_MSG(memcmp(one, three, (size_t)(d.c.B * d.c.M * d.c.N) * sizeof *one) == 0,
                  "case %d: 3 threads changed the result", i);
        free(one), free(three);
        free_data(&d);
    }
    infvsr_backend_free(be1), infvsr_backend_free(be3);
}

/* The product's entry point runs the real tile instructions: without AMX it must refuse
 * (never fault) and leave c alone; with AMX it must equal the emulation bit for bit. */
static void test_mmx_real_entry(void) {
    struct infvsr_backend * be = amx_test_backend(2);
    struct infvsr_cpu_ctx * c = amx_test_ctx(be);
    if (infvsr_cpu_isa_detect() < INFVSR_CPU_ISA_AMX) {
        struct mm_data d = make_data(g_cases[2], 5);
        float y[2 * 17 * 9];
        for (int i = 0; i < 2 * 17 * 9; i++) y[i] = 42.0f;
        CHECK_EQ_INT(infvsr_cpu_op_matmul_amx(c, d.a, d.b, 2, 17, 33, 9, true, 1.0f, y, INFVSR_TYPE_F32),
                     INFVSR_ERR_UNSUPPORTED);
        int untouched = 1;
        for (int i = 0; i < 2 * 17 * 9; i++) untouched &= y[i] == 42.0f;
        CHECK(untouched);
        free_data(&d);
        printf("  Skipped: no AMX here, the real kernel refuses (INFVSR_ERR_UNSUPPORTED)\n");
        infvsr_backend_free(be);
        return;
    }
    int64_t differ = 0, total = 0;
    for (int i = 0; i < N_CASES; i++) {
        struct mm_data d = make_data(g_cases[i], 500 + (uint64_t)i);
        for (int h = 0; h < 2; h++) {
            const enum infvsr_dtype cdt = h ? INFVSR_TYPE_BF16 : INFVSR_TYPE_F32;
            const size_t n = (size_t)(d.c.B * d.c.M * d.c.N);
            float * emu = run_emu(c, &d, cdt);
            void * out = malloc(n * 4);
            INFVSR_ASSERT(out);
            CHECK_EQ_INT(infvsr_cpu_op_matmul_amx(c, d.a, d.b, d.c.B, d.c.M, d.c.K, d.c.N, d.c.tb, d.c.alpha, out, cdt),
                         INFVSR_OK);
            for (size_t k = 0; k < n; k++) {
                const float v = h ? (float)amx_test_bf16(((uint16_t *)out)[k]) : ((float *)out)[k];
                differ += memcmp(&v, &emu[k], sizeof v) != 0;
            }
            total += (int64_t)n;
            free(emu), free(out);
        }
        free_data(&d);
    }
    printf("  real AMX: %lld of %lld outputs differ in their bits from the emulation\n", (long long)differ,
           (long long)total);
    CHECK_EQ_INT(differ, 0);
    infvsr_backend_free(be);
}

static const struct test_case tests[] = {
    TEST(test_mmx_vs_f64),
    TEST(test_mmx_threads_bitexact),
    TEST(test_mmx_real_entry),
    { 0 },
};

int main(int argc, char ** argv) {
    return test_main(argc, argv, tests);
}
