/* The bf16 attention's AMX kernel set (kernels/cpu/attention_amx_body.h) run here on the
 * emulated tile instructions (kernels/cpu/amx_tile.h with INFVSR_AMX_EMULATE): the kernel's
 * own packing of q, k and v into A/VNNI-B tiles, its 16-row and 32-key tile edges and the
 * probabilities' rounding, checked on machines without AMX (CI).
 *
 *  - against a float64 reference on the same bf16 inputs (odd key counts, two key
 *    segments, bias, a masked segment, head dims 20/32/33/64/127/128/384, query counts off
 *    16 and above one 256-query group), at the op table's bf16 tolerance (1e-2, relative
 *    L2), f32 and bf16 output; the bf16 output must be the f32 one rounded once;
 *  - against the f32 attention on the widened inputs and, where AVX512-BF16 exists, the
 *    VDPBF16PS kernel set (the same products, summed in another order);
 *  - bit for bit across thread counts, LDTILECFG and TILERELEASE balanced;
 *  - the product's entry point (real tiles): bit for bit with the emulation where AMX
 *    exists, INFVSR_ERR_UNSUPPORTED (and Skipped) elsewhere. */
#define INFVSR_AMX_EMULATE 1
#include "amx_tile.h"
#include "attention_amx_body.h"

#include <math.h>
#include <stdlib.h>

#include "amx_test_util.h"
#include "check.h"
#include "isa.h"

#define TOL_BF16 1e-2 /* tests/ops/backend_ops.h BO_TOL_BF16 */

struct attn_case {
    int64_t nq, n0, n1, H, D;
    int     bias; /* 0 none, 1 random, 2 -inf on segment 0 */
};

static const struct attn_case g_cases[] = {
    { 33, 33, 0, 2, 32, 0 },     { 70, 50, 77, 3, 128, 1 }, { 5, 145, 0, 2, 20, 0 },   { 17, 9, 3, 4, 64, 1 },
    { 192, 192, 192, 2, 128, 0 }, { 61, 45, 19, 2, 33, 1 }, { 300, 70, 0, 2, 32, 1 },  { 35, 66, 63, 1, 127, 1 },
    { 7, 3, 0, 3, 64, 1 },       { 9, 70, 6, 2, 16, 2 },    { 50, 80, 0, 1, 384, 0 },  { 100, 31, 97, 2, 64, 0 },
    /* more than one query group per head: K and V packed once per call */
    { 600, 100, 77, 2, 64, 1 },  { 520, 3, 64, 1, 33, 2 },  { 257, 129, 0, 1, 128, 0 },
};
#define N_CASES ((int)(sizeof g_cases / sizeof g_cases[0]))

struct attn_data {
    struct attn_case c;
    uint16_t *       q, * k0, * v0, * k1, * v1;
    float *          bias;
    double *         ref; /* [nq, H * D] */
};

static uint16_t * rand_bf16(size_t n, float lo, float hi, uint64_t seed) {
    float * f = malloc((n ? n : 1) * sizeof *f);
    uint16_t * b = malloc((n ? n : 1) * sizeof *b);
    INFVSR_ASSERT(f && b);
    test_fill_uniform(f, n, lo, hi, seed);
    for (size_t i = 0; i < n; i++) b[i] = infvsr_f32_to_bf16(f[i]);
    free(f);
    return b;
}

static struct attn_data make_data(struct attn_case c, uint64_t seed) {
    struct attn_data d = { .c = c };
    const int64_t HD = c.H * c.D, NK = c.n0 + c.n1;
    d.q = rand_bf16((size_t)(c.nq * HD), -1.5f, 1.5f, seed);
    d.k0 = rand_bf16((size_t)(c.n0 * HD), -1.5f, 1.5f, seed + 1);
    d.v0 = rand_bf16((size_t)(c.n0 * HD), -1, 1, seed + 2);
    d.k1 = rand_bf16((size_t)(c.n1 * HD), -1.5f, 1.5f, seed + 3);
    d.v1 = rand_bf16((size_t)(c.n1 * HD), -1, 1, seed + 4);
    if (c.bias) {
        const size_t n = (size_t)(c.H * c.nq * NK);
        d.bias = malloc(n * sizeof *d.bias);
        INFVSR_ASSERT(d.bias);
        test_fill_uniform(d.bias, n, -3, 3, seed + 5);
        if (c.bias == 2)
            for (size_t i = 0; i < n; i++) d.bias[i] = (int64_t)(i % (size_t)NK) < c.n0 ? -INFINITY : 0.0f;
    }
    /* float64 reference */
    const double scale = 1.0 / sqrt((double)c.D);
    d.ref = calloc((size_t)(c.nq * HD), sizeof *d.ref);
    double * s = malloc((size_t)NK * sizeof *s);
    INFVSR_ASSERT(d.ref && s);
    for (int64_t h = 0; h < c.H; h++) {
        for (int64_t i = 0; i < c.nq; i++) {
            double mx = -INFINITY, sum = 0;
            for (int64_t j = 0; j < NK; j++) {
                const uint16_t * k = j < c.n0 ? d.k0 + j * HD : d.k1 + (j - c.n0) * HD;
                double dot = 0;
                for (int64_t e = 0; e < c.D; e++) dot += amx_test_bf16(d.q[i * HD + h * c.D + e]) * amx_test_bf16(k[h * c.D + e]);
                s[j] = dot * scale + (d.bias ? d.bias[(h * c.nq + i) * NK + j] : 0.0);
                if (s[j] > mx) mx = s[j];
            }
            for (int64_t j = 0; j < NK; j++) sum += s[j] = exp(s[j] - mx);
            double * o = d.ref + i * HD + h * c.D;
            for (int64_t j = 0; j < NK; j++) {
                const uint16_t * v = j < c.n0 ? d.v0 + j * HD : d.v1 + (j - c.n0) * HD;
                for (int64_t e = 0; e < c.D; e++) o[e] += s[j] / sum * amx_test_bf16(v[h * c.D + e]);
            }
        }
    }
    free(s);
    return d;
}

static void free_data(struct attn_data * d) {
    free(d->q), free(d->k0), free(d->v0), free(d->k1), free(d->v1), free(d->bias), free(d->ref);
}

static struct infvsr_cpu_attn args_of(const struct attn_data * d, void * out, enum infvsr_dtype out_dtype) {
    const struct attn_case c = d->c;
    struct infvsr_cpu_attn a = {
        .q = d->q, .k0 = d->k0, .v0 = d->v0, .k1 = c.n1 ? d->k1 : NULL, .v1 = c.n1 ? d->v1 : NULL, .bias = d->bias,
        .nq = c.nq, .n0 = c.n0, .n1 = c.n1, .n_heads = c.H, .head_dim = c.D, .scale = (float)(1.0 / sqrt((double)c.D)),
        .out = out, .dtype = INFVSR_TYPE_BF16, .out_dtype = out_dtype,
    };
    return a;
}

static size_t out_elems(const struct attn_data * d) { return (size_t)(d->c.nq * d->c.H * d->c.D); }

/* The emulated kernel set: f32 out into y, bf16 out into yb (NULL: not run). */
static void run_emu(struct infvsr_cpu_ctx * c, const struct attn_data * d, float * y, uint16_t * yb) {
    struct infvsr_cpu_attn a = args_of(d, y, INFVSR_TYPE_F32);
    CHECK_EQ_INT(atx_attention(c, &a), INFVSR_OK);
    if (yb) {
        a = args_of(d, yb, INFVSR_TYPE_BF16);
        CHECK_EQ_INT(atx_attention(c, &a), INFVSR_OK);
    }
}

static void test_amx_attention_vs_f64(void) {
    struct infvsr_backend * be = amx_test_backend(2);
    struct infvsr_cpu_ctx * c = be->context;
    const long cfg0 = atomic_load(&amx_emu_configs), rel0 = atomic_load(&amx_emu_releases);
    double worst = 0, worst_f32 = 0;
    for (int i = 0; i < N_CASES; i++) {
        struct attn_data d = make_data(g_cases[i], 100 + 10 * (uint64_t)i);
        const size_t n = out_elems(&d);
        float * y = malloc(n * sizeof *y), * ref = malloc(n * sizeof *ref), * yw = malloc(n * sizeof *yw);
        uint16_t * yb = malloc(n * sizeof *yb);
        INFVSR_ASSERT(y && ref && yw && yb);
        run_emu(c, &d, y, yb);
        for (size_t e = 0; e < n; e++) ref[e] = (float)d.ref[e];
        const double err = rel_err_f32(y, ref, n);
        CHECK_MSG(err <= TOL_BF16, "case %d: rel err %.3e vs float64", i, err);
        if (err > worst) worst = err;
        size_t bad = 0;
        for (size_t e = 0; e < n; e++) bad += yb[e] != infvsr_f32_to_bf16(y[e]);
        CHECK_MSG(bad == 0, "case %d: %zu bf16 outputs are not the f32 output rounded once", i, bad);
        /* the f32 attention on the widened inputs */
        struct attn_data w = d;
        const struct attn_case k = d.c;
        const int64_t HD = k.H * k.D;
        float * f[5];
        const uint16_t * src[5] = { d.q, d.k0, d.v0, d.k1, d.v1 };
        const int64_t rows[5] = { k.nq, k.n0, k.n0, k.n1, k.n1 };
        for (int t = 0; t < 5; t++) {
            f[t] = malloc((size_t)(rows[t] * HD + 1) * sizeof(float));
            INFVSR_ASSERT(f[t]);
            for (int64_t e = 0; e < rows[t] * HD; e++) f[t][e] = (float)amx_test_bf16(src[t][e]);
        }
        struct infvsr_cpu_attn a = args_of(&w, yw, INFVSR_TYPE_F32);
        a.q = f[0], a.k0 = f[1], a.v0 = f[2], a.k1 = k.n1 ? f[3] : NULL, a.v1 = k.n1 ? f[4] : NULL;
        a.dtype = INFVSR_TYPE_F32;
        CHECK_EQ_INT(infvsr_cpu_op_attention(c, &a), INFVSR_OK);
        const double ef = rel_err_f32(y, yw, n);
        CHECK_MSG(ef <= TOL_BF16, "case %d: rel err %.3e vs the f32 attention", i, ef);
        if (ef > worst_f32) worst_f32 = ef;
        for (int t = 0; t < 5; t++) free(f[t]);
        free(y), free(ref), free(yw), free(yb);
        free_data(&d);
    }
    CHECK_EQ_INT(atomic_load(&amx_emu_configs) - cfg0, atomic_load(&amx_emu_releases) - rel0);
    CHECK(atomic_load(&amx_emu_configs) > cfg0);
    printf("  %d cases: worst rel err %.2e vs float64, %.2e vs the f32 attention (tol %.0e)\n", N_CASES, worst,
           worst_f32, TOL_BF16);
    infvsr_backend_free(be);
}

/* Against the VDPBF16PS kernel set (attention_bf16.c) where this CPU has it. */
static void test_amx_attention_vs_avx512(void) {
    if (infvsr_cpu_isa_detect() < INFVSR_CPU_ISA_AVX512BF16) {
        printf("  no AVX512-BF16 here: skipped\n");
        return;
    }
    struct infvsr_backend * be = amx_test_backend(2);
    struct infvsr_cpu_ctx * c = be->context;
    const enum infvsr_cpu_isa isa = c->isa;
    c->isa = INFVSR_CPU_ISA_AVX512BF16; /* the VDPBF16PS kernel set */
    double worst = 0;
    for (int i = 0; i < N_CASES; i++) {
        struct attn_data d = make_data(g_cases[i], 200 + 10 * (uint64_t)i);
        const size_t n = out_elems(&d);
        float * y = malloc(n * sizeof *y), * y5 = malloc(n * sizeof *y5);
        INFVSR_ASSERT(y && y5);
        run_emu(c, &d, y, NULL);
        struct infvsr_cpu_attn a = args_of(&d, y5, INFVSR_TYPE_F32);
        CHECK_EQ_INT(infvsr_cpu_op_attention_bf16(c, &a), INFVSR_OK);
        const double e = rel_err_f32(y, y5, n);
        CHECK_MSG(e <= TOL_BF16, "case %d: rel err %.3e vs the AVX512-BF16 kernels", i, e);
        if (e > worst) worst = e;
        free(y), free(y5);
        free_data(&d);
    }
    c->isa = isa;
    printf("  worst rel err vs the AVX512-BF16 kernels %.2e\n", worst);
    infvsr_backend_free(be);
}

/* The order of the sums depends on no thread count; the real tiles equal the emulated. */
static void test_amx_attention_threads_and_real(void) {
    struct infvsr_backend * be1 = amx_test_backend(1), * be2 = amx_test_backend(2);
    const bool amx = infvsr_cpu_isa_detect() >= INFVSR_CPU_ISA_AMX;
    for (int i = 0; i < N_CASES; i++) {
        struct attn_data d = make_data(g_cases[i], 300 + 10 * (uint64_t)i);
        const size_t n = out_elems(&d);
        float * y1 = malloc(n * sizeof *y1), * y2 = malloc(n * sizeof *y2), * yr = malloc(n * sizeof *yr);
        uint16_t * b1 = malloc(n * sizeof *b1), * br = malloc(n * sizeof *br);
        INFVSR_ASSERT(y1 && y2 && yr && b1 && br);
        run_emu(be1->context, &d, y1, b1);
        run_emu(be2->context, &d, y2, NULL);
        CHECK_MSG(memcmp(y1, y2, n * sizeof *y1) == 0, "case %d: 1 and 2 threads differ", i);
        struct infvsr_cpu_attn a = args_of(&d, yr, INFVSR_TYPE_F32);
        enum infvsr_status st = infvsr_cpu_op_attention_amx(be2->context, &a);
        if (!amx) {
            CHECK_EQ_INT(st, INFVSR_ERR_UNSUPPORTED);
        } else {
            CHECK_EQ_INT(st, INFVSR_OK);
            CHECK_MSG(memcmp(y1, yr, n * sizeof *y1) == 0, "case %d: real AMX f32 out differs from the emulation", i);
            a = args_of(&d, br, INFVSR_TYPE_BF16);
            CHECK_EQ_INT(infvsr_cpu_op_attention_amx(be2->context, &a), INFVSR_OK);
            CHECK_MSG(memcmp(b1, br, n * sizeof *b1) == 0, "case %d: real AMX bf16 out differs from the emulation", i);
        }
        free(y1), free(y2), free(yr), free(b1), free(br);
        free_data(&d);
    }
    printf("  1 == 2 threads; real AMX == emulation: %s\n", amx ? "checked" : "skipped (no AMX here)");
    infvsr_backend_free(be1), infvsr_backend_free(be2);
}

static const struct test_case tests[] = {
    TEST(test_amx_attention_vs_f64),
    TEST(test_amx_attention_vs_avx512),
    TEST(test_amx_attention_threads_and_real),
    { 0 },
};

int main(int argc, char ** argv) {
    return test_main(argc, argv, tests);
}
