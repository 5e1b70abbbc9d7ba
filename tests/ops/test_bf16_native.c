/* The native bf16 ops of the CPU backend (kernels/cpu/act_bf16.c, matmul_bf16.c) against
 * the generic bf16 path (the avx2 level: whole tensors widened, the f32 op, one rounding)
 * and a float64 reference, on every level this machine has (forced through the backend
 * option cpu_isa; Skipped, exit 77, on a CPU without AVX512-BF16).
 *  - softmax, layer_norm, add, unary, affine_clamp, rms_norm, modulate, add_gated, rope,
 *    channel_rms_norm do the same f32 math on the same values
 *    as the generic path: their outputs must be bit-identical, in place or not, with odd
 *    sizes (flat lengths around the task and block sizes, rows longer than the stack
 *    buffer) and mixed f32/bf16 operands.
 *  - matmul accumulates in another order (VDPBF16PS pairs vs OpenBLAS sgemm): an f32
 *    output must match the float64 product of the same bf16 inputs within 1e-5 (so every
 *    element of the packing is right), a bf16 output within its rounding; both forms of b,
 *    odd M, K, N, batches smaller and larger than the pool.
 * The hooks infvsr__act_bf16_calls / infvsr__matmul_bf16_calls prove the native path ran. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cpu_impl.h"
#include "infvsr/backend.h"
#include "isa.h"
#include "ops.h"

static struct infvsr_backend * g_gen, * g_nat[2];
static const char * g_nat_name[2];
static int g_n_nat;

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static float    g_x_range = 4; /* check_op's x in [-g_x_range, g_x_range] */
static float frand(float lo, float hi) {
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return lo + (hi - lo) * (float)((g_rng >> 40) * (1.0 / 16777216.0));
}

static void make(struct infvsr_tensor * t, enum infvsr_dtype dt, int nd, const int64_t * shape, float lo, float hi) {
    INFVSR_ASSERT(infvsr_tensor_alloc(t, "t", dt, nd, shape) == INFVSR_OK);
    int64_t n = infvsr_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        float v = frand(lo, hi);
        if (dt == INFVSR_TYPE_BF16) ((uint16_t *)t->data)[i] = infvsr_f32_to_bf16(v);
        else ((float *)t->data)[i] = v;
    }
}

static void dup_tensor(struct infvsr_tensor * d, const struct infvsr_tensor * s) {
    INFVSR_ASSERT(infvsr_tensor_alloc(d, "c", s->dtype, s->ndim, s->shape) == INFVSR_OK);
    memcpy(d->data, s->data, infvsr_tensor_nbytes(s));
}

static float get(const struct infvsr_tensor * t, int64_t i) {
    return t->dtype == INFVSR_TYPE_BF16 ? infvsr_bf16_to_f32(((const uint16_t *)t->data)[i]) : ((const float *)t->data)[i];
}

static bool same_bytes(const struct infvsr_tensor * a, const struct infvsr_tensor * b, const char * what) {
    if (memcmp(a->data, b->data, infvsr_tensor_nbytes(a)) == 0) return true;
    int64_t n = infvsr_tensor_numel(a);
    for (int64_t i = 0; i < n; i++) {
        if (memcmp((const char *)a->data + i * infvsr_dtype_size(a->dtype),
                   (const char *)b->data + i * infvsr_dtype_size(a->dtype), infvsr_dtype_size(a->dtype)) != 0) {
            fprintf(stderr, "  %s: element %lld of %lld: native %.9g, generic %.9g\n", what, (long long)i, (long long)n,
                    (double)get(a, i), (double)get(b, i));
            break;
        }
    }
    return false;
}

/* One op on the generic backend and on each native one, from the same inputs. */
enum op {
    OP_SOFTMAX, OP_LAYER_NORM, OP_ADD, OP_GELU, OP_SILU, OP_GELU_TANH, OP_AFFINE,
    OP_RMS_NORM, OP_MODULATE, OP_ADD_GATED, OP_ROPE, OP_CHAN_NORM
};
static const char * op_names[] = { "softmax", "layer_norm", "add", "gelu_erf", "silu", "gelu_tanh", "affine_clamp",
                                   "rms_norm", "modulate", "add_gated", "rope", "channel_rms_norm" };
static bool g_no_gate; /* add_gated without a gate */

/* rope's n_heads for a row of C: 2 heads when the head dim stays even, else 1 */
static int rope_heads(int64_t C) {
    return C % 4 == 0 ? 2 : 1;
}

static enum infvsr_status run_op(struct infvsr_backend * be, enum op op, const struct infvsr_tensor * a,
                                 const struct infvsr_tensor * b, const struct infvsr_tensor * w,
                                 const struct infvsr_tensor * bias, struct infvsr_tensor * y) {
    struct infvsr_err err = { 0 };
    enum infvsr_status st = INFVSR_ERR_INVALID_ARG;
    switch (op) {
    case OP_SOFTMAX:    st = infvsr_op_softmax(be, a, y, &err); break;
    case OP_LAYER_NORM: st = infvsr_op_layer_norm(be, a, w, bias, 1e-5f, y, &err); break;
    case OP_ADD:        st = infvsr_op_add(be, a, b, y, &err); break;
    case OP_GELU:       st = infvsr_op_unary(be, INFVSR_UNARY_GELU_ERF, a, y, &err); break;
    case OP_SILU:       st = infvsr_op_unary(be, INFVSR_UNARY_SILU, a, y, &err); break;
    case OP_GELU_TANH:  st = infvsr_op_unary(be, INFVSR_UNARY_GELU_TANH, a, y, &err); break;
    case OP_AFFINE:     st = infvsr_op_affine_clamp(be, a, 0.37f, -0.25f, -0.8f, 0.9f, y, &err); break;
    case OP_RMS_NORM:   st = infvsr_op_rms_norm(be, a, w, 1e-6f, y, &err); break;
    case OP_MODULATE:   st = infvsr_op_modulate(be, a, w, bias, y, &err); break;
    case OP_ADD_GATED:  st = infvsr_op_add_gated(be, a, w, b, y, &err); break;
    case OP_ROPE:       st = infvsr_op_rope(be, a, bias, rope_heads(a->shape[1]), y, &err); break;
    case OP_CHAN_NORM:  st = infvsr_op_channel_rms_norm(be, a, w, y, &err); break;
    }
    if (st) fprintf(stderr, "  %s: %s\n", op_names[op], err.msg);
    return st;
}

/* x [R, C] of xdt (b of bdt for add), y of ydt, or in place (y = x) */
static void check_op(enum op op, int64_t R, int64_t C, enum infvsr_dtype xdt, enum infvsr_dtype bdt,
                     enum infvsr_dtype ydt, bool in_place) {
    const int64_t shape[2] = { R, C };
    struct infvsr_tensor x, b = { 0 }, w = { 0 }, bias = { 0 };
    make(&x, xdt, 2, shape, -g_x_range, g_x_range);
    if (op == OP_ADD || op == OP_ADD_GATED) make(&b, bdt, 2, shape, -2, 2);
    if (op == OP_LAYER_NORM || op == OP_MODULATE) {
        make(&w, INFVSR_TYPE_BF16, 1, &C, 0.5f, 1.5f);
        make(&bias, INFVSR_TYPE_F32, 1, &C, -0.5f, 0.5f);
    }
    if (op == OP_RMS_NORM || (op == OP_ADD_GATED && !g_no_gate)) make(&w, INFVSR_TYPE_F32, 1, &C, -1.5f, 1.5f);
    if (op == OP_CHAN_NORM) make(&w, INFVSR_TYPE_BF16, 1, &R, 0.5f, 1.5f); /* gamma [channels = R] */
    if (op == OP_ROPE) { /* freqs f64 [R, D/2, 2]: (cos, sin) of random angles */
        const int64_t fs[3] = { R, C / rope_heads(C) / 2, 2 };
        INFVSR_ASSERT(infvsr_tensor_alloc(&bias, "freqs", INFVSR_TYPE_F64, 3, fs) == INFVSR_OK);
        double * f = bias.data;
        for (int64_t i = 0; i < fs[0] * fs[1]; i++) {
            const double a = frand(-20, 20);
            f[2 * i] = cos(a), f[2 * i + 1] = sin(a);
        }
    }
    const bool has_b = op == OP_ADD || op == OP_ADD_GATED;
    struct infvsr_tensor xg, yg = { 0 };
    dup_tensor(&xg, &x);
    if (!in_place) INFVSR_ASSERT(infvsr_tensor_alloc(&yg, "y", ydt, 2, shape) == INFVSR_OK);
    struct infvsr_tensor * outg = in_place ? &xg : &yg;
    CHECK_EQ_INT(run_op(g_gen, op, &xg, has_b ? &b : NULL, w.data ? &w : NULL, bias.data ? &bias : NULL, outg),
                 INFVSR_OK);
    for (int l = 0; l < g_n_nat; l++) {
        struct infvsr_tensor xn, yn = { 0 };
        dup_tensor(&xn, &x);
        if (!in_place) INFVSR_ASSERT(infvsr_tensor_alloc(&yn, "y", ydt, 2, shape) == INFVSR_OK);
        struct infvsr_tensor * outn = in_place ? &xn : &yn;
        const uint64_t calls = infvsr__act_bf16_calls();
        CHECK_EQ_INT(run_op(g_nat[l], op, &xn, has_b ? &b : NULL, w.data ? &w : NULL, bias.data ? &bias : NULL,
                            outn), INFVSR_OK);
        CHECK_EQ_INT(infvsr__act_bf16_calls(), calls + 1);
        char what[160];
        snprintf(what, sizeof what, "%s [%lld, %lld] x:%s%s y:%s%s on %s", op_names[op], (long long)R, (long long)C,
                 infvsr_dtype_name(xdt), has_b ? infvsr_dtype_name(bdt) : "", infvsr_dtype_name(outn->dtype),
                 in_place ? " (in place)" : "", g_nat_name[l]);
        CHECK_MSG(same_bytes(outn, outg, what), "%s: not bit-identical to the generic path", what);
        infvsr_tensor_release(&xn);
        infvsr_tensor_release(&yn);
    }
    infvsr_tensor_release(&x);
    infvsr_tensor_release(&b);
    infvsr_tensor_release(&w);
    infvsr_tensor_release(&bias);
    infvsr_tensor_release(&xg);
    infvsr_tensor_release(&yg);
}

static const enum infvsr_dtype BF = INFVSR_TYPE_BF16, F = INFVSR_TYPE_F32;

static void test_flat_ops_bit_identical(void) {
    /* lengths around the block (2048) and task (16384) sizes, the 16- and 8-lane loops'
     * tails, tiny ones */
    const int64_t lens[] = { 1, 7, 29, 2047, 2049, 16383, 16384 + 9, 3 * 16384 + 2048 + 5 };
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        for (int op = OP_ADD; op <= OP_AFFINE; op++) {
            check_op((enum op)op, 1, lens[i], BF, BF, BF, false);
            check_op((enum op)op, 1, lens[i], BF, BF, BF, true);
        }
    }
    /* mixed operands: f32 x with bf16 b or y, bf16 x into f32 y */
    check_op(OP_ADD, 5, 4001, F, BF, BF, false);
    check_op(OP_ADD, 5, 4001, BF, F, F, false);
    check_op(OP_GELU, 3, 5003, BF, BF, F, false);
    check_op(OP_AFFINE, 3, 5003, F, BF, BF, false);
}

static void test_row_ops_bit_identical(void) {
    /* rows shorter than a vector, odd, the Swin softmax row (144), longer than the stack buffer */
    const int64_t shapes[][2] = { { 37, 1 }, { 9, 7 }, { 5, 29 }, { 301, 144 }, { 13, 385 }, { 3, 4097 }, { 2, 9001 } };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        for (int op = OP_SOFTMAX; op <= OP_LAYER_NORM; op++) {
            check_op((enum op)op, shapes[i][0], shapes[i][1], BF, BF, BF, false);
            check_op((enum op)op, shapes[i][0], shapes[i][1], BF, BF, BF, true);
        }
    }
    check_op(OP_SOFTMAX, 11, 144, BF, BF, F, false);
    /* e^x past its clamps (underflow to 0): softmax differences and GELU/SiLU arguments of ~100 */
    g_x_range = 60;
    check_op(OP_SOFTMAX, 7, 301, BF, BF, BF, false);
    check_op(OP_GELU, 1, 3001, BF, BF, BF, false);
    check_op(OP_SILU, 1, 3001, BF, BF, BF, false);
    check_op(OP_GELU_TANH, 1, 3001, BF, BF, BF, false);
    check_op(OP_GELU_TANH, 3, 5003, BF, BF, F, false);
    g_x_range = 4;
    check_op(OP_LAYER_NORM, 11, 192, F, BF, BF, false);
    check_op(OP_LAYER_NORM, 11, 192, BF, BF, F, false);
}

static void test_dit_vae_row_ops_bit_identical(void) {
    /* rows shorter than a vector, odd, the DiT width (1536), longer than the stack buffer;
     * channel_rms_norm reads them as [channels = rows, positions = cols]: positions around
     * its task (256) and block sizes, channel counts past its stack buffer (8192 / 8) */
    const int64_t shapes[][2] = { { 37, 2 }, { 9, 6 }, { 5, 30 }, { 7, 1536 }, { 13, 386 }, { 3, 4100 }, { 2, 9002 },
                                  { 96, 257 }, { 1100, 19 }, { 40, 1000 } };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        for (int op = OP_RMS_NORM; op <= OP_CHAN_NORM; op++) {
            if (op == OP_ROPE && shapes[i][1] % 2) continue; /* rope pairs need an even row */
            check_op((enum op)op, shapes[i][0], shapes[i][1], BF, BF, BF, false);
            check_op((enum op)op, shapes[i][0], shapes[i][1], BF, BF, BF, true);
        }
    }
    /* mixed operands: f32 x into bf16 y, bf16 x into f32 y, add_gated with either d */
    for (int op = OP_RMS_NORM; op <= OP_CHAN_NORM; op++) {
        check_op((enum op)op, 11, 192, F, BF, BF, false);
        check_op((enum op)op, 11, 192, BF, BF, F, false);
    }
    check_op(OP_ADD_GATED, 11, 192, F, BF, F, false);
    check_op(OP_ADD_GATED, 11, 192, BF, F, BF, false);
    check_op(OP_ADD_GATED, 11, 192, F, BF, F, true);
    g_no_gate = true;
    check_op(OP_ADD_GATED, 5, 301, BF, BF, BF, false);
    check_op(OP_ADD_GATED, 5, 301, BF, BF, BF, true);
    g_no_gate = false;
}

/* float64 product of the stored values */
static void ref_matmul(const struct infvsr_tensor * a, const struct infvsr_tensor * b, int64_t B, int64_t M, int64_t K,
                       int64_t N, bool tb, float alpha, double * out) {
    for (int64_t i = 0; i < B; i++)
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++)
                    s += (double)get(a, (i * M + m) * K + k) * get(b, tb ? (i * N + n) * K + k : (i * K + k) * N + n);
                out[(i * M + m) * N + n] = (double)alpha * s;
            }
}

/* max |c - ref| / max(|ref|, 1) over the elements */
static double max_err(const struct infvsr_tensor * c, const double * ref, int64_t n) {
    double e = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)get(c, i) - ref[i]) / fmax(fabs(ref[i]), 1.0);
        if (!(d <= e)) e = d; /* NaN sticks */
    }
    return e;
}

static void check_matmul(int64_t B, int64_t M, int64_t K, int64_t N, bool tb, float alpha) {
    const int64_t as[3] = { B, M, K }, bs[3] = { B, tb ? N : K, tb ? K : N }, cs[3] = { B, M, N };
    struct infvsr_tensor a, b;
    make(&a, BF, 3, as, -1, 1);
    make(&b, BF, 3, bs, -1, 1);
    double * ref = malloc((size_t)(B * M * N) * sizeof *ref);
    INFVSR_ASSERT(ref);
    ref_matmul(&a, &b, B, M, K, N, tb, alpha, ref);
    for (int l = 0; l < g_n_nat; l++) {
        for (int od = 0; od < 2; od++) {
            struct infvsr_tensor c, cg;
            struct infvsr_err err;
            const enum infvsr_dtype cdt = od ? BF : F;
            INFVSR_ASSERT(infvsr_tensor_alloc(&c, "c", cdt, 3, cs) == INFVSR_OK);
            INFVSR_ASSERT(infvsr_tensor_alloc(&cg, "c", cdt, 3, cs) == INFVSR_OK);
            const uint64_t calls = infvsr__matmul_bf16_calls();
            CHECK_EQ_INT(infvsr_op_matmul(g_nat[l], &a, &b, tb, alpha, &c, &err), INFVSR_OK);
            CHECK_EQ_INT(infvsr__matmul_bf16_calls(), calls + 1);
            CHECK_EQ_INT(infvsr_op_matmul(g_gen, &a, &b, tb, alpha, &cg, &err), INFVSR_OK);
            /* f32: accumulation order only; bf16: one rounding (2^-8 relative) on top */
            const double tol = od ? 4e-3 : 1e-5, e = max_err(&c, ref, B * M * N), eg = max_err(&cg, ref, B * M * N);
            CHECK_MSG(e <= tol, "matmul B=%lld M=%lld K=%lld N=%lld%s c:%s on %s: max err %.3g > %.3g (generic %.3g)",
                      (long long)B, (long long)M, (long long)K, (long long)N, tb ? " trans_b" : "", infvsr_dtype_name(cdt),
                      g_nat_name[l], e, tol, eg);
            infvsr_tensor_release(&c);
            infvsr_tensor_release(&cg);
        }
    }
    free(ref);
    infvsr_tensor_release(&a);
    infvsr_tensor_release(&b);
}

static void test_matmul_vs_f64(void) {
    /* the Swin shapes (q k^T, p v), odd everything, one batch entry split by rows, many */
    const int64_t mm[][4] = { { 3, 144, 32, 144 }, { 3, 144, 144, 32 }, { 1, 131, 37, 45 }, { 2, 9, 8, 8 },
                              { 5, 17, 129, 9 }, { 1, 8, 300, 257 }, { 40, 13, 33, 19 }, { 2, 61, 16, 80 } };
    for (size_t i = 0; i < sizeof mm / sizeof mm[0]; i++) {
        for (int tb = 0; tb < 2; tb++) check_matmul(mm[i][0], mm[i][1], mm[i][2], mm[i][3], tb, i % 2 ? 0.125f : 1.0f);
    }
}

/* Below 8 in M, N or K the generic path runs (no native call). */
static void test_matmul_small_falls_back(void) {
    const int64_t as[3] = { 2, 7, 16 }, bs[3] = { 2, 16, 16 }, cs[3] = { 2, 7, 16 };
    struct infvsr_tensor a, b, c;
    struct infvsr_err err;
    make(&a, BF, 3, as, -1, 1);
    make(&b, BF, 3, bs, -1, 1);
    INFVSR_ASSERT(infvsr_tensor_alloc(&c, "c", BF, 3, cs) == INFVSR_OK);
    for (int l = 0; l < g_n_nat; l++) {
        const uint64_t calls = infvsr__matmul_bf16_calls();
        CHECK_EQ_INT(infvsr_op_matmul(g_nat[l], &a, &b, false, 1.0f, &c, &err), INFVSR_OK);
        CHECK_EQ_INT(infvsr__matmul_bf16_calls(), calls);
    }
    infvsr_tensor_release(&a);
    infvsr_tensor_release(&b);
    infvsr_tensor_release(&c);
}

static const struct test_case tests[] = {
    TEST(test_flat_ops_bit_identical),
    TEST(test_row_ops_bit_identical),
    TEST(test_dit_vae_row_ops_bit_identical),
    TEST(test_matmul_vs_f64),
    TEST(test_matmul_small_falls_back),
    { 0 },
};

static struct infvsr_backend * open_cpu(const char * isa) {
    struct infvsr_backend_opts o = infvsr_backend_default_opts();
    o.n_threads = 2; /* the pool runs even on one core */
    o.precision = INFVSR_PRECISION_BF16;
    o.cpu_isa   = isa;
    struct infvsr_backend * be = NULL;
    struct infvsr_err err;
    return infvsr_backend_init_by_name("cpu", &o, &be, &err) == INFVSR_OK ? be : NULL;
}

int main(int argc, char ** argv) {
    g_gen = open_cpu("avx2");
    INFVSR_ASSERT(g_gen);
    static const char * levels[] = { "avx512bf16", "amx" };
    for (int i = 0; i < 2; i++) {
        struct infvsr_backend * be = open_cpu(levels[i]);
        if (!be) continue;
        g_nat_name[g_n_nat] = levels[i];
        g_nat[g_n_nat++] = be;
    }
    if (g_n_nat == 0) {
        printf("SKIP: this CPU has no AVX512-BF16 (best: %s): no native bf16 ops to test\n",
               infvsr_cpu_isa_name(infvsr_cpu_isa_detect()));
        infvsr_backend_free(g_gen);
        return 77;
    }
    int rc = test_main(argc, argv, tests);
    for (int i = 0; i < g_n_nat; i++) infvsr_backend_free(g_nat[i]);
    infvsr_backend_free(g_gen);
    return rc;
}
