/* Every op of the CPU backend: the fast path against the float64 reference
 * (kernels/cpu/ref), on random data of several shapes including odd sizes, with
 * F32/BF16/F16 weights, canaries after every output, in-place variants, and invalid
 * arguments that must return INFVSR_ERR_INVALID_ARG with a message. */
#include <math.h>

#include "conv3d_winograd.h"
#include "ops_util.h"
#include "resize_table.h"

#define TOL 1e-5

static struct infvsr_backend * fast_be, * ref_be;

static const enum infvsr_dtype wtypes[] = { INFVSR_TYPE_F32, INFVSR_TYPE_BF16, INFVSR_TYPE_F16 };

static void setup_backends(void) {
    if (fast_be) return;
    struct infvsr_cpu_params p = infvsr_cpu_default_params();
    p.n_threads = 2; /* exercise the pool even on one core */
    INFVSR_ASSERT(infvsr_cpu_backend_init(&p, &fast_be) == INFVSR_OK);
    p.use_ref = true;
    INFVSR_ASSERT(infvsr_cpu_backend_init(&p, &ref_be) == INFVSR_OK);
}

/* compare fast (a) vs ref (b) outputs and both canaries */
#define CHECK_PAIR(a, b, tol)                                   \
    do {                                                        \
        CHECK_REL_ERR(tb_f(&(a)), tb_f(&(b)), (a).n, (tol));    \
        CHECK(tb_canary_ok(&(a)));                              \
        CHECK(tb_canary_ok(&(b)));                              \
    } while (0)

#define CHECK_OK(expr)                                                              \
    do {                                                                            \
        struct infvsr_err e_ = { 0 };                                               \
        (void)e_;                                                                   \
        enum infvsr_status st_ = (expr);                                            \
        CHECK_MSG(st_ == INFVSR_OK, "%s -> %d", #expr, (int)st_);                   \
    } while (0)

static bool bits_equal(const struct tbuf * a, const struct tbuf * b) {
    return a->n == b->n && memcmp(a->mem, b->mem, a->n * 4) == 0;
}

/* ---- GEMM family ---- */

static void test_linear(void) {
    setup_backends();
    const int64_t Ms[] = { 1, 7, 33, 130 }, Ks[] = { 5, 64, 129 }, Ns[] = { 1, 17, 300 };
    int combo = 0;
    for (int mi = 0; mi < 4; mi++)
    for (int ki = 0; ki < 3; ki++)
    for (int ni = 0; ni < 3; ni++)
    for (int di = 0; di < 3; di++, combo++) {
        int64_t M = Ms[mi], K = Ks[ki], N = Ns[ni];
        enum infvsr_unary_op act = (enum infvsr_unary_op)(combo % (INFVSR_UNARY_COUNT + 1)); /* COUNT = none */
        bool with_bias = combo % 2 == 0;
        struct tbuf x = tb_rand("x", 2, S2(M, K), -1, 1, 100 + combo);
        struct tbuf w = tb_rand_w("w", wtypes[di], 2, S2(N, K), -0.3f, 0.3f, 200 + combo);
        struct tbuf b = tb_rand_w("b", wtypes[(di + 1) % 3], 1, S1(N), -0.5f, 0.5f, 300 + combo);
        struct tbuf y = tb_new("y", INFVSR_TYPE_F32, 2, S2(M, N)), yr = tb_new("yr", INFVSR_TYPE_F32, 2, S2(M, N));
        struct infvsr_err err = { 0 };
        CHECK_OK(infvsr_op_linear(fast_be, &x.t, &w.t, with_bias ? &b.t : NULL, act, &y.t, &err));
        CHECK_OK(infvsr_op_linear(ref_be, &x.t, &w.t, with_bias ? &b.t : NULL, act, &yr.t, &err));
        double e = rel_err_f32(tb_f(&y), tb_f(&yr), y.n);
        CHECK_MSG(e <= TOL, "linear M=%lld K=%lld N=%lld %s bias=%d act=%d: rel err %.3e", (long long)M, (long long)K,
                  (long long)N, infvsr_dtype_name(wtypes[di]), with_bias, (int)act, e);
        CHECK(tb_canary_ok(&y) && tb_canary_ok(&yr));
        tb_free(&x), tb_free(&w), tb_free(&b), tb_free(&y), tb_free(&yr);
    }
}

/* 3-D x [B, T, K]: rows are all leading dims */
static void test_linear_batched_rows(void) {
    setup_backends();
    struct tbuf x = tb_rand("x", 3, S3(3, 11, 40), -1, 1, 1);
    struct tbuf w = tb_rand_w("w", INFVSR_TYPE_BF16, 2, S2(520, 40), -0.2f, 0.2f, 2); /* 3 panels */
    struct tbuf y = tb_new("y", INFVSR_TYPE_F32, 3, S3(3, 11, 520)), yr = tb_new("yr", INFVSR_TYPE_F32, 3, S3(3, 11, 520));
    CHECK_OK(infvsr_op_linear(fast_be, &x.t, &w.t, NULL, INFVSR_UNARY_COUNT, &y.t, NULL));
    CHECK_OK(infvsr_op_linear(ref_be, &x.t, &w.t, NULL, INFVSR_UNARY_COUNT, &yr.t, NULL));
    CHECK_PAIR(y, yr, TOL);
    /* same bytes on a second run (deterministic threading) */
    struct tbuf y2 = tb_new("y2", INFVSR_TYPE_F32, 3, S3(3, 11, 520));
    CHECK_OK(infvsr_op_linear(fast_be, &x.t, &w.t, NULL, INFVSR_UNARY_COUNT, &y2.t, NULL));
    CHECK(bits_equal(&y, &y2));
    tb_free(&x), tb_free(&w), tb_free(&y), tb_free(&yr), tb_free(&y2);
}

static void test_matmul(void) {
    setup_backends();
    const int64_t cases[][4] = { { 1, 1, 5, 1 }, { 3, 7, 33, 20 }, { 2, 144, 32, 144 }, { 4, 17, 129, 9 } };
    for (int c = 0; c < 4; c++) {
        for (int tb = 0; tb < 2; tb++) {
            int64_t B = cases[c][0], M = cases[c][1], K = cases[c][2], N = cases[c][3];
            struct tbuf a = tb_rand("a", 3, S3(B, M, K), -1, 1, 10 + c);
            struct tbuf b = tb_rand("b", 3, tb ? S3(B, N, K) : S3(B, K, N), -1, 1, 20 + c);
            struct tbuf o = tb_new("c", INFVSR_TYPE_F32, 3, S3(B, M, N)), orf = tb_new("cr", INFVSR_TYPE_F32, 3, S3(B, M, N));
            CHECK_OK(infvsr_op_matmul(fast_be, &a.t, &b.t, tb, 0.37f, &o.t, NULL));
            CHECK_OK(infvsr_op_matmul(ref_be, &a.t, &b.t, tb, 0.37f, &orf.t, NULL));
            CHECK_PAIR(o, orf, TOL);
            tb_free(&a), tb_free(&b), tb_free(&o), tb_free(&orf);
        }
    }
}

/* ---- norms ---- */

static const int64_t row_shapes[][2] = { { 1, 5 }, { 7, 64 }, { 33, 129 }, { 300, 1536 } };

static void test_layer_norm(void) {
    setup_backends();
    for (int s = 0; s < 4; s++) {
        for (int variant = 0; variant < 4; variant++) { /* w/b: none, w, b, both */
            int64_t R = row_shapes[s][0], C = row_shapes[s][1];
            enum infvsr_dtype dt = wtypes[(s + variant) % 3];
            struct tbuf x = tb_rand("x", 2, S2(R, C), -2, 3, 30 + s);
            struct tbuf w = tb_rand_w("w", dt, 1, S1(C), 0.5f, 1.5f, 31 + s);
            struct tbuf b = tb_rand_w("b", dt, 1, S1(C), -1, 1, 32 + s);
            const struct infvsr_tensor * wp = variant & 1 ? &w.t : NULL, * bp = variant & 2 ? &b.t : NULL;
            struct tbuf y = tb_new("y", INFVSR_TYPE_F32, 2, S2(R, C)), yr = tb_new("yr", INFVSR_TYPE_F32, 2, S2(R, C));
            CHECK_OK(infvsr_op_layer_norm(fast_be, &x.t, wp, bp, 1e-6f, &y.t, NULL));
            CHECK_OK(infvsr_op_layer_norm(ref_be, &x.t, wp, bp, 1e-6f, &yr.t, NULL));
            CHECK_PAIR(y, yr, TOL);
            /* in place gives the same bytes */
            CHECK_OK(infvsr_op_layer_norm(fast_be, &x.t, wp, bp, 1e-6f, &x.t, NULL));
            CHECK(bits_equal(&x, &y));
            CHECK(tb_canary_ok(&x));
            tb_free(&x), tb_free(&w), tb_free(&b), tb_free(&y), tb_free(&yr);
        }
    }
}

static void test_rms_norm(void) {
    setup_backends();
    for (int s = 0; s < 4; s++) {
        for (int with_w = 0; with_w < 2; with_w++) {
            int64_t R = row_shapes[s][0], C = row_shapes[s][1];
            struct tbuf x = tb_rand("x", 2, S2(R, C), -2, 3, 40 + s);
            struct tbuf w = tb_rand_w("w", wtypes[s % 3], 1, S1(C), 0.5f, 1.5f, 41 + s);
            struct tbuf y = tb_new("y", INFVSR_TYPE_F32, 2, S2(R, C)), yr = tb_new("yr", INFVSR_TYPE_F32, 2, S2(R, C));
            const struct infvsr_tensor * wp = with_w ? &w.t : NULL;
            CHECK_OK(infvsr_op_rms_norm(fast_be, &x.t, wp, 1e-6f, &y.t, NULL));
            CHECK_OK(infvsr_op_rms_norm(ref_be, &x.t, wp, 1e-6f, &yr.t, NULL));
            CHECK_PAIR(y, yr, TOL);
            CHECK_OK(infvsr_op_rms_norm(fast_be, &x.t, wp, 1e-6f, &x.t, NULL));
            CHECK(bits_equal(&x, &y));
            tb_free(&x), tb_free(&w), tb_free(&y), tb_free(&yr);
        }
    }
}

static void test_channel_rms_norm(void) {
    setup_backends();
    const int64_t shapes[][4] = { { 7, 2, 3, 5 }, { 96, 1, 4, 300 }, { 3, 1, 1, 1 } };
    for (int s = 0; s < 3; s++) {
        const int64_t * sh = shapes[s];
        struct tbuf x = tb_rand("x", 4, sh, -2, 2, 50 + s);
        struct tbuf g = tb_rand_w("gamma", wtypes[s % 3], 4, S4(sh[0], 1, 1, 1), 0.5f, 1.5f, 51 + s);
        struct tbuf y = tb_new("y", INFVSR_TYPE_F32, 4, sh), yr = tb_new("yr", INFVSR_TYPE_F32, 4, sh);
        CHECK_OK(infvsr_op_channel_rms_norm(fast_be, &x.t, &g.t, &y.t, NULL));
        CHECK_OK(infvsr_op_channel_rms_norm(ref_be, &x.t, &g.t, &yr.t, NULL));
        CHECK_PAIR(y, yr, TOL);
        CHECK_OK(infvsr_op_channel_rms_norm(fast_be, &x.t, &g.t, &x.t, NULL));
        CHECK(bits_equal(&x, &y));
        tb_free(&x), tb_free(&g), tb_free(&y), tb_free(&yr);
    }
}

static void test_modulate(void) {
    setup_backends();
    for (int s = 0; s < 4; s++) {
        int64_t R = row_shapes[s][0], C = row_shapes[s][1];
        struct tbuf x = tb_rand("x", 2, S2(R, C), -2, 2, 60 + s);
        struct tbuf sc = tb_rand_w("scale", wtypes[s % 3], 1, S1(C), -0.5f, 0.5f, 61 + s);
        struct tbuf sh = tb_rand_w("shift", wtypes[(s + 1) % 3], 1, S1(C), -0.5f, 0.5f, 62 + s);
        struct tbuf y = tb_new("y", INFVSR_TYPE_F32, 2, S2(R, C)), yr = tb_new("yr", INFVSR_TYPE_F32, 2, S2(R, C));
        CHECK_OK(infvsr_op_modulate(fast_be, &x.t, &sc.t, &sh.t, &y.t, NULL));
        CHECK_OK(infvsr_op_modulate(ref_be, &x.t, &sc.t, &sh.t, &yr.t, NULL));
        CHECK_PAIR(y, yr, TOL);
        CHECK_OK(infvsr_op_modulate(fast_be, &x.t, &sc.t, &sh.t, &x.t, NULL));
        CHECK(bits_equal(&x, &y));
        tb_free(&x), tb_free(&sc), tb_free(&sh), tb_free(&y), tb_free(&yr);
    }
}

/* ---- elementwise ---- */

static void test_unary(void) {
    setup_backends();
    const int64_t ns[] = { 1, 7, 1000, 70001 };
    for (int op = 0; op < INFVSR_UNARY_COUNT; op++) {
        for (int s = 0; s < 4; s++) {
            struct tbuf x = tb_rand("x", 1, S1(ns[s]), -12, 12, 70 + s);
            struct tbuf y = tb_new("y", INFVSR_TYPE_F32, 1, S1(ns[s])), yr = tb_new("yr", INFVSR_TYPE_F32, 1, S1(ns[s]));
            CHECK_OK(infvsr_op_unary(fast_be, (enum infvsr_unary_op)op, &x.t, &y.t, NULL));
            CHECK_OK(infvsr_op_unary(ref_be, (enum infvsr_unary_op)op, &x.t, &yr.t, NULL));
            CHECK_PAIR(y, yr, 1e-6);
            /* elementwise relative error too, over the whole range [-12, 12] (outputs below
             * 1e-30 in magnitude are skipped: f32 denormals have no relative precision) */
            double worst = 0;
            for (size_t i = 0; i < y.n; i++) {
                double d = fabs((double)tb_f(&y)[i] - tb_f(&yr)[i]), m = fabs(tb_f(&yr)[i]);
                if (m > 1e-30 && d / m > worst) worst = d / m;
            }
            CHECK_MSG(worst <= 1e-6, "unary op %d n=%lld: worst elementwise rel err %.3e", op, (long long)ns[s], worst);
            CHECK_OK(infvsr_op_unary(fast_be, (enum infvsr_unary_op)op, &x.t, &x.t, NULL));
            CHECK(bits_equal(&x, &y));
            tb_free(&x), tb_free(&y), tb_free(&yr);
        }
    }
}

static void test_add_and_affine(void) {
    setup_backends();
    const int64_t ns[] = { 1, 9, 50001 };
    for (int s = 0; s < 3; s++) {
        int64_t n = ns[s];
        struct tbuf a = tb_rand("a", 1, S1(n), -3, 3, 80 + s), b = tb_rand("b", 1, S1(n), -3, 3, 81 + s);
        struct tbuf y = tb_new("y", INFVSR_TYPE_F32, 1, S1(n)), yr = tb_new("yr", INFVSR_TYPE_F32, 1, S1(n));
        CHECK_OK(infvsr_op_add(fast_be, &a.t, &b.t, &y.t, NULL));
        CHECK_OK(infvsr_op_add(ref_be, &a.t, &b.t, &yr.t, NULL));
        CHECK_PAIR(y, yr, TOL);
        CHECK_OK(infvsr_op_affine_clamp(fast_be, &a.t, 0.5f, 0.25f, -1.0f, 1.0f, &y.t, NULL));
        CHECK_OK(infvsr_op_affine_clamp(ref_be, &a.t, 0.5f, 0.25f, -1.0f, 1.0f, &yr.t, NULL));
        CHECK_PAIR(y, yr, TOL);
        CHECK_OK(infvsr_op_affine_clamp(fast_be, &a.t, 2.0f, -1.0f, -INFINITY, INFINITY, &y.t, NULL));
        CHECK_OK(infvsr_op_affine_clamp(ref_be, &a.t, 2.0f, -1.0f, -INFINITY, INFINITY, &yr.t, NULL));
        CHECK_PAIR(y, yr, TOL);
        /* in place: y == a, then y == b */
        struct tbuf a2 = tb_rand("a2", 1, S1(n), -3, 3, 80 + s), b2 = tb_rand("b2", 1, S1(n), -3, 3, 81 + s);
        CHECK_OK(infvsr_op_add(fast_be, &a.t, &b.t, &yr.t, NULL));
        CHECK_OK(infvsr_op_add(fast_be, &a2.t, &b.t, &a2.t, NULL));
        CHECK(bits_equal(&a2, &yr));
        CHECK_OK(infvsr_op_add(fast_be, &a.t, &b2.t, &b2.t, NULL));
        CHECK(bits_equal(&b2, &yr));
        tb_free(&a), tb_free(&b), tb_free(&a2), tb_free(&b2), tb_free(&y), tb_free(&yr);
    }
}

static void test_add_gated(void) {
    setup_backends();
    for (int s = 0; s < 4; s++) {
        for (int with_gate = 0; with_gate < 2; with_gate++) {
            int64_t R = row_shapes[s][0], C = row_shapes[s][1];
            struct tbuf x = tb_rand("x", 2, S2(R, C), -2, 2, 90 + s), d = tb_rand("d", 2, S2(R, C), -2, 2, 91 + s);
            struct tbuf g = tb_rand_w("gate", wtypes[s % 3], 1, S1(C), -1, 1, 92 + s);
            struct tbuf y = tb_new("y", INFVSR_TYPE_F32, 2, S2(R, C)), yr = tb_new("yr", INFVSR_TYPE_F32, 2, S2(R, C));
            const struct infvsr_tensor * gp = with_gate ? &g.t : NULL;
            CHECK_OK(infvsr_op_add_gated(fast_be, &x.t, gp, &d.t, &y.t, NULL));
            CHECK_OK(infvsr_op_add_gated(ref_be, &x.t, gp, &d.t, &yr.t, NULL));
            CHECK_PAIR(y, yr, TOL);
            CHECK_OK(infvsr_op_add_gated(fast_be, &x.t, gp, &d.t, &x.t, NULL));
            CHECK(bits_equal(&x, &y));
            tb_free(&x), tb_free(&d), tb_free(&g), tb_free(&y), tb_free(&yr);
        }
    }
}

static void test_softmax(void) {
    setup_backends();
    const int64_t shapes[][2] = { { 3, 1 }, { 5, 7 }, { 33, 64 }, { 4, 1000 } };
    for (int s = 0; s < 4; s++) {
        int64_t R = shapes[s][0], C = shapes[s][1];
        struct tbuf x = tb_rand("x", 2, S2(R, C), -30, 30, 95 + s);
        struct tbuf y = tb_new("y", INFVSR_TYPE_F32, 2, S2(R, C)), yr = tb_new("yr", INFVSR_TYPE_F32, 2, S2(R, C));
        CHECK_OK(infvsr_op_softmax(fast_be, &x.t, &y.t, NULL));
        CHECK_OK(infvsr_op_softmax(ref_be, &x.t, &yr.t, NULL));
        CHECK_PAIR(y, yr, TOL);
        CHECK_OK(infvsr_op_softmax(fast_be, &x.t, &x.t, NULL));
        CHECK(bits_equal(&x, &y));
        tb_free(&x), tb_free(&y), tb_free(&yr);
    }
}

/* ---- attention ---- */

struct attn_case {
    int64_t nq, n0, n1, H, D;
    bool    bias;
};

static void run_attention(const struct attn_case * c, uint64_t seed) {
    int64_t HD = c->H * c->D, nk = c->n0 + c->n1;
    struct tbuf q = tb_rand("q", 2, S2(c->nq, HD), -1.5f, 1.5f, seed);
    struct tbuf k0 = tb_rand("k0", 2, S2(c->n0, HD), -1.5f, 1.5f, seed + 1);
    struct tbuf v0 = tb_rand("v0", 2, S2(c->n0, HD), -1, 1, seed + 2);
    struct tbuf k1 = tb_rand("k1", 2, S2(c->n1 ? c->n1 : 1, HD), -1.5f, 1.5f, seed + 3);
    struct tbuf v1 = tb_rand("v1", 2, S2(c->n1 ? c->n1 : 1, HD), -1, 1, seed + 4);
    struct tbuf bias = tb_rand("bias", 3, S3(c->H, c->nq, nk), -3, 3, seed + 5);
    struct tbuf o = tb_new("out", INFVSR_TYPE_F32, 2, S2(c->nq, HD)), orf = tb_new("outr", INFVSR_TYPE_F32, 2, S2(c->nq, HD));
    struct infvsr_attn_args a = {
        .q = &q.t, .k0 = &k0.t, .v0 = &v0.t, .k1 = c->n1 ? &k1.t : NULL, .v1 = c->n1 ? &v1.t : NULL,
        .bias = c->bias ? &bias.t : NULL, .n_heads = (int)c->H, .scale = (float)(1.0 / sqrt((double)c->D)), .out = &o.t,
    };
    struct infvsr_err err = { 0 };
    CHECK_OK(infvsr_op_attention(fast_be, &a, &err));
    a.out = &orf.t;
    CHECK_OK(infvsr_op_attention(ref_be, &a, &err));
    double e = rel_err_f32(tb_f(&o), tb_f(&orf), o.n);
    CHECK_MSG(e <= TOL, "attention nq=%lld n0=%lld n1=%lld H=%lld D=%lld bias=%d: rel err %.3e", (long long)c->nq,
              (long long)c->n0, (long long)c->n1, (long long)c->H, (long long)c->D, c->bias, e);
    CHECK(tb_canary_ok(&o) && tb_canary_ok(&orf));
    tb_free(&q), tb_free(&k0), tb_free(&v0), tb_free(&k1), tb_free(&v1), tb_free(&bias), tb_free(&o), tb_free(&orf);
}

static void test_attention(void) {
    setup_backends();
    const struct attn_case cases[] = {
        { 33, 33, 0, 2, 32, false },   /* one segment, partial blocks */
        { 70, 50, 77, 3, 128, true },  /* two segments, Nq != Nk, bias */
        { 5, 145, 0, 2, 20, false },   /* odd head dim, cross-attention-like Nk */
        { 64, 130, 0, 1, 384, false }, /* VAE single head */
        { 17, 9, 3, 4, 64, true },     /* tiny segments */
        { 1, 1, 0, 1, 1, false },      /* degenerate */
        { 130, 64, 64, 2, 24, true },  /* block-aligned segments, odd D */
        { 300, 70, 0, 2, 32, true },   /* more than one query group per head */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_attention(&cases[i], 1000 + 10 * i);
}

/* Fully masked keys (bias -inf on one segment) must behave as if absent. */
static void test_attention_masked_segment(void) {
    setup_backends();
    int64_t nq = 9, n0 = 70, n1 = 6, H = 2, D = 16, HD = H * D;
    struct tbuf q = tb_rand("q", 2, S2(nq, HD), -1, 1, 1), k0 = tb_rand("k0", 2, S2(n0, HD), -1, 1, 2);
    struct tbuf v0 = tb_rand("v0", 2, S2(n0, HD), -1, 1, 3), k1 = tb_rand("k1", 2, S2(n1, HD), -1, 1, 4);
    struct tbuf v1 = tb_rand("v1", 2, S2(n1, HD), -1, 1, 5);
    struct tbuf bias = tb_new("bias", INFVSR_TYPE_F32, 3, S3(H, nq, n0 + n1));
    for (int64_t h = 0; h < H; h++)
        for (int64_t i = 0; i < nq; i++)
            for (int64_t j = 0; j < n0; j++) tb_f(&bias)[(h * nq + i) * (n0 + n1) + j] = -INFINITY;
    struct tbuf o = tb_new("o", INFVSR_TYPE_F32, 2, S2(nq, HD)), o1 = tb_new("o1", INFVSR_TYPE_F32, 2, S2(nq, HD));
    struct infvsr_attn_args a = { .q = &q.t, .k0 = &k0.t, .v0 = &v0.t, .k1 = &k1.t, .v1 = &v1.t, .bias = &bias.t,
                                  .n_heads = (int)H, .scale = 0.25f, .out = &o.t };
    CHECK_OK(infvsr_op_attention(fast_be, &a, NULL));
    struct infvsr_attn_args b = { .q = &q.t, .k0 = &k1.t, .v0 = &v1.t, .n_heads = (int)H, .scale = 0.25f, .out = &o1.t };
    CHECK_OK(infvsr_op_attention(ref_be, &b, NULL));
    CHECK_PAIR(o, o1, TOL);
    tb_free(&q), tb_free(&k0), tb_free(&v0), tb_free(&k1), tb_free(&v1), tb_free(&bias), tb_free(&o), tb_free(&o1);
}

/* The result must not depend on the thread count (bit-identical). */
static void test_attention_thread_invariance(void) {
    setup_backends();
    struct infvsr_backend * one;
    struct infvsr_cpu_params p = infvsr_cpu_default_params();
    p.n_threads = 1;
    INFVSR_ASSERT(infvsr_cpu_backend_init(&p, &one) == INFVSR_OK);
    int64_t nq = 150, nk = 90, H = 3, D = 40, HD = H * D;
    struct tbuf q = tb_rand("q", 2, S2(nq, HD), -1, 1, 7), k = tb_rand("k", 2, S2(nk, HD), -1, 1, 8);
    struct tbuf v = tb_rand("v", 2, S2(nk, HD), -1, 1, 9);
    struct tbuf o = tb_new("o", INFVSR_TYPE_F32, 2, S2(nq, HD)), o1 = tb_new("o1", INFVSR_TYPE_F32, 2, S2(nq, HD));
    struct infvsr_attn_args a = { .q = &q.t, .k0 = &k.t, .v0 = &v.t, .n_heads = (int)H, .scale = 0.2f, .out = &o.t };
    CHECK_OK(infvsr_op_attention(fast_be, &a, NULL));
    a.out = &o1.t;
    CHECK_OK(infvsr_op_attention(one, &a, NULL));
    CHECK(bits_equal(&o, &o1));
    infvsr_backend_free(one);
    tb_free(&q), tb_free(&k), tb_free(&v), tb_free(&o), tb_free(&o1);
}

/* ---- rope ---- */

static void test_rope(void) {
    setup_backends();
    const int64_t cases[][3] = { { 7, 3, 8 }, { 33, 2, 128 }, { 1, 1, 2 } };
    for (int c = 0; c < 3; c++) {
        int64_t N = cases[c][0], H = cases[c][1], D = cases[c][2];
        struct tbuf x = tb_rand("x", 2, S2(N, H * D), -2, 2, 110 + c);
        struct tbuf f = tb_new("freqs", INFVSR_TYPE_F64, 3, S3(N, D / 2, 2));
        double * fd = f.mem;
        uint64_t s = 5;
        for (int64_t i = 0; i < N * D / 2; i++) {
            double ang = (double)(test_rng_next(&s) >> 11) * (1.0 / 9007199254740992.0) * 100.0;
            fd[2 * i] = cos(ang);
            fd[2 * i + 1] = sin(ang);
        }
        struct tbuf y = tb_new("y", INFVSR_TYPE_F32, 2, S2(N, H * D)), yr = tb_new("yr", INFVSR_TYPE_F32, 2, S2(N, H * D));
        CHECK_OK(infvsr_op_rope(fast_be, &x.t, &f.t, (int)H, &y.t, NULL));
        CHECK_OK(infvsr_op_rope(ref_be, &x.t, &f.t, (int)H, &yr.t, NULL));
        CHECK_PAIR(y, yr, TOL);
        CHECK_OK(infvsr_op_rope(fast_be, &x.t, &f.t, (int)H, &x.t, NULL));
        CHECK(bits_equal(&x, &y));
        tb_free(&x), tb_free(&f), tb_free(&y), tb_free(&yr);
    }
}

/* ---- conv3d ---- */

struct conv_case {
    int64_t cin, t, h, w, cout, kt, kh, kw;
    int     st, sh, sw, pt, pb, pl, pr;
};

static void run_conv(const struct conv_case * c, enum infvsr_dtype wdt, bool with_bias, uint64_t seed) {
    int64_t to = (c->t - c->kt) / c->st + 1, ho = (c->h + c->pt + c->pb - c->kh) / c->sh + 1;
    int64_t wo = (c->w + c->pl + c->pr - c->kw) / c->sw + 1;
    struct tbuf x = tb_rand("x", 4, S4(c->cin, c->t, c->h, c->w), -1, 1, seed);
    struct tbuf w = tb_rand_w("w", wdt, 5, S5(c->cout, c->cin, c->kt, c->kh, c->kw), -0.3f, 0.3f, seed + 1);
    struct tbuf b = tb_rand_w("b", wdt, 1, S1(c->cout), -0.5f, 0.5f, seed + 2);
    struct tbuf y = tb_new("y", INFVSR_TYPE_F32, 4, S4(c->cout, to, ho, wo)), yr = tb_new("yr", INFVSR_TYPE_F32, 4, S4(c->cout, to, ho, wo));
    struct infvsr_conv3d_args a = { .x = &x.t, .w = &w.t, .b = with_bias ? &b.t : NULL, .stride_t = c->st,
                                    .stride_h = c->sh, .stride_w = c->sw, .pad_top = c->pt, .pad_bottom = c->pb,
                                    .pad_left = c->pl, .pad_right = c->pr, .y = &y.t };
    struct infvsr_err err = { 0 };
    CHECK_OK(infvsr_op_conv3d(fast_be, &a, &err));
    a.y = &yr.t;
    CHECK_OK(infvsr_op_conv3d(ref_be, &a, &err));
    double e = rel_err_f32(tb_f(&y), tb_f(&yr), y.n);
    CHECK_MSG(e <= TOL, "conv3d cin=%lld k=%lldx%lldx%lld s=%d,%d,%d pads=%d,%d,%d,%d %s: rel err %.3e", (long long)c->cin,
              (long long)c->kt, (long long)c->kh, (long long)c->kw, c->st, c->sh, c->sw, c->pt, c->pb, c->pl, c->pr,
              infvsr_dtype_name(wdt), e);
    CHECK(tb_canary_ok(&y) && tb_canary_ok(&yr));
    tb_free(&x), tb_free(&w), tb_free(&b), tb_free(&y), tb_free(&yr);
}

static void test_conv3d(void) {
    setup_backends();
    const struct conv_case cases[] = {
        { 3, 3, 9, 11, 5, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1 },   /* causal-style 3x3x3, same padding */
        { 4, 1, 10, 13, 6, 1, 3, 3, 1, 2, 2, 0, 1, 0, 1 },  /* stride 2, asymmetric pads (VAE downsample) */
        { 2, 5, 4, 6, 3, 4, 1, 1, 1, 1, 1, 0, 0, 0, 0 },    /* kt 4 */
        { 3, 6, 9, 9, 4, 3, 4, 4, 2, 2, 2, 2, 1, 1, 2 },    /* kh = kw = 4, strides 2 in t, h, w */
        { 8, 2, 5, 7, 16, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0 },   /* 1x1x1: direct sgemm */
        { 5, 1, 1, 3, 2, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1 },    /* a 1-pixel-high image */
        { 1, 1, 7, 5, 1, 1, 3, 1, 1, 3, 1, 2, 0, 0, 0 },    /* stride 3, top pad only */
    };
    int i = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int d = 0; d < 3; d++, i++) run_conv(&cases[c], wtypes[d], i % 2 == 0, 2000 + 10 * (uint64_t)i);
    }
}

/* The Winograd F(2x2, 3x3) and F(4x4, 3x3) paths (3x3 spatial, stride 1), each forced in
 * turn: odd sizes (partial last tiles), 1 and 6 frames, kt 1 and 3, Cin 5 and 96,
 * asymmetric and zero pads, a row of more than 8 tiles (full and partial vector groups),
 * all weight dtypes; then once more with a tiny block budget so that the tiles of a frame
 * are split into several blocks (the last one partial), as happens on large frames. */
static void test_conv3d_winograd(void) {
    setup_backends();
    const struct conv_case cases[] = {
        { 5, 6, 7, 9, 4, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1 },    /* 6 frames, kt 3, 7x9 */
        { 5, 1, 7, 9, 3, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1 },    /* 1 frame, kt 1 */
        { 96, 3, 7, 9, 8, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1 },   /* Cin 96 */
        { 4, 2, 6, 5, 3, 1, 3, 3, 1, 1, 1, 0, 2, 2, 0 },    /* asymmetric pads */
        { 3, 4, 8, 8, 2, 2, 3, 3, 1, 1, 1, 0, 0, 0, 0 },    /* no pads, kt 2 */
        { 2, 1, 3, 3, 2, 1, 3, 3, 1, 1, 1, 0, 0, 0, 0 },    /* a single output pixel */
        { 3, 3, 1, 4, 2, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1 },    /* a 1-pixel-high image */
        { 16, 3, 13, 37, 8, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1 }, /* 10 (F(4x4)) / 19 (F(2x2)) tiles a row */
    };
    /* these shapes are below the path's GEMM-size threshold: lower it to 0 so they take it */
    const double old_volume = infvsr__conv3d_winograd_set_min_volume(0);
    CHECK(infvsr__conv3d_winograd_fits(&(struct infvsr_cpu_conv){ .cin = 1, .cout = 1, .kt = 3, .kh = 3, .kw = 3,
                                                                   .st = 1, .sh = 1, .sw = 1, .to = 1, .ho = 1, .wo = 1 }));
    int i = 0;
    for (int tile = 2; tile <= 4; tile += 2) {
        const int old_tile = infvsr__conv3d_winograd_set_tile(tile);
        CHECK(infvsr__conv3d_winograd_tile(&(struct infvsr_cpu_conv){ .cin = 1, .cout = 1, .kt = 3, .kh = 3, .kw = 3,
                                                                       .st = 1, .sh = 1, .sw = 1, .to = 1, .ho = 1,
                                                                       .wo = 1 }) == tile);
        for (int small = 0; small < 2; small++) {
            /* 3 tiles of the first case per block: tile points * (5 * 6 + 4 * 4) floats per tile */
            const size_t points = tile == 4 ? 36 : 16;
            size_t       old    = infvsr__conv3d_winograd_set_block_bytes(small ? 3 * points * (5 * 6 + 4 * 4) * sizeof(float) : 0);
            for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
                for (int d = 0; d < 3; d++, i++) run_conv(&cases[c], wtypes[d], i % 2 == 0, 3000 + 10 * (uint64_t)i);
            }
            infvsr__conv3d_winograd_set_block_bytes(old);
        }
        infvsr__conv3d_winograd_set_tile(old_tile);
    }
    infvsr__conv3d_winograd_set_min_volume(old_volume);
    /* the default threshold keeps tiny convs on im2col, VAE-sized ones on Winograd */
    CHECK(!infvsr__conv3d_winograd_fits(&(struct infvsr_cpu_conv){ .cin = 8, .cout = 8, .kt = 3, .kh = 3, .kw = 3,
                                                                    .st = 1, .sh = 1, .sw = 1, .to = 4, .ho = 16, .wo = 16 }));
    CHECK(infvsr__conv3d_winograd_fits(&(struct infvsr_cpu_conv){ .cin = 96, .cout = 96, .kt = 3, .kh = 3, .kw = 3,
                                                                   .st = 1, .sh = 1, .sw = 1, .to = 4, .ho = 64, .wo = 64 }));
    /* many tiles: F(4x4); 384 channels at 16x16, 2 frames: F(2x2); at 8x8: im2col */
    CHECK(infvsr__conv3d_winograd_tile(&(struct infvsr_cpu_conv){ .cin = 96, .cout = 96, .kt = 3, .kh = 3, .kw = 3,
                                                                   .st = 1, .sh = 1, .sw = 1, .to = 4, .ho = 64, .wo = 64 }) == 4);
    CHECK(infvsr__conv3d_winograd_tile(&(struct infvsr_cpu_conv){ .cin = 384, .cout = 384, .kt = 3, .kh = 3, .kw = 3,
                                                                   .st = 1, .sh = 1, .sw = 1, .to = 2, .ho = 16, .wo = 16 }) == 2);
    CHECK(infvsr__conv3d_winograd_tile(&(struct infvsr_cpu_conv){ .cin = 384, .cout = 384, .kt = 3, .kh = 3, .kw = 3,
                                                                   .st = 1, .sh = 1, .sw = 1, .to = 1, .ho = 8, .wo = 8 }) == 0);
}

/* ---- resize ---- */

static void run_resize(enum infvsr_resize_mode mode, int64_t P, int64_t hi, int64_t wi, int64_t ho, int64_t wo) {
    struct tbuf x = tb_rand("x", 3, S3(P, hi, wi), 0, 1, (uint64_t)(hi * 131 + wi));
    struct tbuf y = tb_new("y", INFVSR_TYPE_F32, 3, S3(P, ho, wo)), yr = tb_new("yr", INFVSR_TYPE_F32, 3, S3(P, ho, wo));
    CHECK_OK(infvsr_op_resize(fast_be, mode, &x.t, &y.t, NULL));
    CHECK_OK(infvsr_op_resize(ref_be, mode, &x.t, &yr.t, NULL));
    double e = rel_err_f32(tb_f(&y), tb_f(&yr), y.n);
    CHECK_MSG(e <= TOL, "resize mode %d %lldx%lld -> %lldx%lld: rel err %.3e", (int)mode, (long long)hi, (long long)wi,
              (long long)ho, (long long)wo, e);
    CHECK(tb_canary_ok(&y) && tb_canary_ok(&yr));
    tb_free(&x), tb_free(&y), tb_free(&yr);
}

static void test_resize(void) {
    setup_backends();
    for (int m = 0; m < INFVSR_RESIZE_COUNT; m++) {
        run_resize((enum infvsr_resize_mode)m, 3, 6, 9, 24, 36);    /* x4 up */
        run_resize((enum infvsr_resize_mode)m, 1, 480, 20, 384, 30); /* 480 -> 384 down, 20 -> 30 up */
        run_resize((enum infvsr_resize_mode)m, 2, 180, 7, 384, 5);   /* 180 -> 384 up, odd down */
        run_resize((enum infvsr_resize_mode)m, 1, 1, 50, 3, 7);      /* single row, strong down */
    }
}

/* MODEL-SPEC §3.1: bicubic x4 interior phase weights and the left border. */
static void test_resize_bicubic_tables(void) {
    const double phase[4][4] = {
        { -0.0439453125, 0.3896484375, 0.7275390625, -0.0732421875 },
        { -0.0068359375, 0.0908203125, 0.9638671875, -0.0478515625 },
        { -0.0478515625, 0.9638671875, 0.0908203125, -0.0068359375 },
        { -0.0732421875, 0.7275390625, 0.3896484375, -0.0439453125 },
    };
    const int first_off[4] = { -2, -2, -1, -1 };
    int64_t in = 40, out = 160, xmin;
    float w[16];
    CHECK(infvsr_cpu_resize_max_taps(INFVSR_RESIZE_BICUBIC_AA, in, out) <= 16);
    for (int64_t k = 5; k < 30; k++) {
        for (int p = 0; p < 4; p++) {
            int n = infvsr_cpu_resize_taps(INFVSR_RESIZE_BICUBIC_AA, in, out, 4 * k + p, &xmin, w);
            CHECK_EQ_INT(n, 4);
            CHECK_EQ_INT(xmin, k + first_off[p]);
            for (int j = 0; j < 4; j++) CHECK_MSG(fabs(w[j] - phase[p][j]) <= 1e-6, "phase %d tap %d: %.9f", p, j, w[j]);
        }
    }
    const double border[4][3] = {
        { 1.1119403, -0.1119403, 0 },
        { 1.0522388, -0.0522388, 0 },
        { 0.91985089, 0.08667288, -0.00652377 },
        { 0.67788899, 0.36305732, -0.04094631 },
    };
    const int border_n[4] = { 2, 2, 3, 3 };
    for (int i = 0; i < 4; i++) {
        int n = infvsr_cpu_resize_taps(INFVSR_RESIZE_BICUBIC_AA, in, out, i, &xmin, w);
        CHECK_EQ_INT(n, border_n[i]);
        CHECK_EQ_INT(xmin, 0);
        for (int j = 0; j < n; j++) CHECK_MSG(fabs(w[j] - border[i][j]) <= 1e-6, "border out %d tap %d: %.9f", i, j, w[j]);
    }
    /* the right edge is the mirror image */
    for (int i = 0; i < 4; i++) {
        int n = infvsr_cpu_resize_taps(INFVSR_RESIZE_BICUBIC_AA, in, out, out - 1 - i, &xmin, w);
        CHECK_EQ_INT(n, border_n[i]);
        CHECK_EQ_INT(xmin + n, in);
        for (int j = 0; j < n; j++) CHECK(fabs(w[n - 1 - j] - border[i][j]) <= 1e-6);
    }
}

/* ---- invalid arguments: INFVSR_ERR_INVALID_ARG and a message, never a crash ---- */

#define CHECK_INVALID(expr, needle)                                                 \
    do {                                                                            \
        infvsr_err_clear(&err);                                                     \
        enum infvsr_status st_ = (expr);                                            \
        CHECK_EQ_INT(st_, INFVSR_ERR_INVALID_ARG);                                  \
        CHECK_STR_CONTAINS(err.msg, needle);                                        \
    } while (0)

static void test_invalid_args(void) {
    setup_backends();
    struct infvsr_err err;
    struct infvsr_backend * bes[] = { fast_be, ref_be };
    for (int i = 0; i < 2; i++) {
        struct infvsr_backend * be = bes[i];
        const struct infvsr_backend_i * f = be->iface;
        struct tbuf x = tb_rand("x", 2, S2(4, 8), -1, 1, 1), w = tb_rand("w", 2, S2(6, 7), -1, 1, 2);
        struct tbuf y = tb_new("y", INFVSR_TYPE_F32, 2, S2(4, 6)), wi = tb_new("wi", INFVSR_TYPE_I32, 2, S2(6, 8));
        struct tbuf y5 = tb_new("y5", INFVSR_TYPE_F32, 2, S2(4, 5)), w8 = tb_rand("w8", 2, S2(6, 8), -1, 1, 3);
        CHECK_INVALID(f->linear(be, &x.t, &w.t, NULL, INFVSR_UNARY_COUNT, &y.t, &err), "linear");
        CHECK_INVALID(f->linear(be, &x.t, &wi.t, NULL, INFVSR_UNARY_COUNT, &y.t, &err), "i32");
        CHECK_INVALID(f->linear(be, &x.t, &w8.t, NULL, INFVSR_UNARY_COUNT, &y5.t, &err), "y5");
        CHECK_INVALID(f->linear(be, &x.t, &w8.t, &x.t, INFVSR_UNARY_COUNT, &y.t, &err), "expected 6");
        CHECK_INVALID(f->linear(be, &x.t, &w8.t, NULL, INFVSR_UNARY_COUNT, NULL, &err), "NULL");
        CHECK_INVALID(f->matmul(be, &x.t, &w.t, true, 1.0f, &y.t, &err), "matmul");
        CHECK_INVALID(f->layer_norm(be, &x.t, &w.t, NULL, 1e-6f, &x.t, &err), "expected 8");
        CHECK_INVALID(f->rms_norm(be, &x.t, NULL, 1e-6f, &y.t, &err), "rms_norm");
        CHECK_INVALID(f->add(be, &x.t, &y.t, &x.t, &err), "add");
        CHECK_INVALID(f->softmax(be, &wi.t, &wi.t, &err), "f32");
        CHECK_INVALID(f->affine_clamp(be, &x.t, 1, 0, 2, 1, &x.t, &err), "clamp");
        CHECK_INVALID(f->unary(be, (enum infvsr_unary_op)7, &x.t, &x.t, &err), "unknown");
        /* rope: freqs must be f64 [N, D/2, 2] */
        struct tbuf f32f = tb_new("freqs", INFVSR_TYPE_F32, 3, S3(4, 4, 2));
        CHECK_INVALID(f->rope(be, &x.t, &f32f.t, 1, &x.t, &err), "freqs");
        CHECK_INVALID(f->rope(be, &x.t, &f32f.t, 3, &x.t, &err), "n_heads");
        /* attention: bias shape, head split, aliasing */
        struct infvsr_attn_args a = { .q = &x.t, .k0 = &x.t, .v0 = &x.t, .bias = &w.t, .n_heads = 2, .scale = 1, .out = &y.t };
        CHECK_INVALID(f->attention(be, &a, &err), "out");
        struct tbuf o = tb_new("o", INFVSR_TYPE_F32, 2, S2(4, 8));
        a.out = &o.t;
        CHECK_INVALID(f->attention(be, &a, &err), "bias");
        a.bias = NULL;
        a.n_heads = 3;
        CHECK_INVALID(f->attention(be, &a, &err), "n_heads");
        a.n_heads = 2;
        a.k1 = &x.t;
        CHECK_INVALID(f->attention(be, &a, &err), "k1");
        a.k1 = NULL;
        a.out = &x.t;
        CHECK_INVALID(f->attention(be, &a, &err), "alias");
        /* conv3d: wrong y, Cin mismatch, kernel larger than input */
        struct tbuf cx = tb_rand("cx", 4, S4(2, 3, 5, 5), -1, 1, 4), cw = tb_rand("cw", 5, S5(3, 2, 3, 3, 3), -1, 1, 5);
        struct tbuf cy = tb_new("cy", INFVSR_TYPE_F32, 4, S4(3, 1, 5, 5));
        struct infvsr_conv3d_args ca = { .x = &cx.t, .w = &cw.t, .stride_t = 1, .stride_h = 1, .stride_w = 1, .y = &cy.t };
        CHECK_INVALID(f->conv3d(be, &ca, &err), "expected [3, 1, 3, 3]");
        ca.pad_top = ca.pad_bottom = ca.pad_left = ca.pad_right = 1;
        CHECK_OK(f->conv3d(be, &ca, &err));
        ca.stride_h = 0;
        CHECK_INVALID(f->conv3d(be, &ca, &err), "stride");
        ca.stride_h = 1;
        ca.x = &x.t;
        CHECK_INVALID(f->conv3d(be, &ca, &err), "dims");
        /* resize: leading dims differ */
        struct tbuf rx = tb_rand("rx", 3, S3(2, 4, 4), 0, 1, 6), ry = tb_new("ry", INFVSR_TYPE_F32, 3, S3(3, 8, 8));
        CHECK_INVALID(f->resize(be, INFVSR_RESIZE_BICUBIC_AA, &rx.t, &ry.t, &err), "leading");
        CHECK_INVALID(f->resize(be, (enum infvsr_resize_mode)9, &rx.t, &ry.t, &err), "mode");
        tb_free(&x), tb_free(&w), tb_free(&y), tb_free(&wi), tb_free(&y5), tb_free(&w8), tb_free(&f32f), tb_free(&o);
        tb_free(&cx), tb_free(&cw), tb_free(&cy), tb_free(&rx), tb_free(&ry);
    }
}

static void test_memory_ops(void) {
    setup_backends();
    struct infvsr_tensor t;
    infvsr_tensor_setup(&t, "t", INFVSR_TYPE_F32, 2, S2(3, 5));
    struct infvsr_err err = { 0 };
    CHECK_OK(infvsr_backend_tensor_alloc(fast_be, &t, &err));
    float src[15], dst[15];
    for (int i = 0; i < 15; i++) src[i] = (float)i * 0.5f;
    CHECK_OK(infvsr_backend_tensor_set(fast_be, &t, src, 0, sizeof src, NULL));
    CHECK_OK(infvsr_backend_tensor_get(fast_be, &t, dst, 4, 8, NULL));
    CHECK(dst[0] == 0.5f && dst[1] == 1.0f);
    CHECK_EQ_INT(infvsr_backend_tensor_get(fast_be, &t, dst, 56, 8, NULL), INFVSR_ERR_INVALID_ARG);
    CHECK_EQ_INT(infvsr_backend_tensor_set(fast_be, &t, src, 0, 61, NULL), INFVSR_ERR_INVALID_ARG);
    CHECK(strcmp(infvsr_backend_name(fast_be), "cpu") == 0);
    CHECK(strcmp(infvsr_backend_name(ref_be), "cpu-ref") == 0);
    infvsr_backend_tensor_free(fast_be, &t);
    CHECK(t.data == NULL);
}

static void test_teardown(void) {
    infvsr_backend_free(fast_be);
    infvsr_backend_free(ref_be);
    fast_be = ref_be = NULL;
    infvsr_backend_free(NULL);
}

static const struct test_case tests[] = {
    TEST(test_linear),
    TEST(test_linear_batched_rows),
    TEST(test_matmul),
    TEST(test_layer_norm),
    TEST(test_rms_norm),
    TEST(test_channel_rms_norm),
    TEST(test_modulate),
    TEST(test_unary),
    TEST(test_add_and_affine),
    TEST(test_add_gated),
    TEST(test_softmax),
    TEST(test_attention),
    TEST(test_attention_masked_segment),
    TEST(test_attention_thread_invariance),
    TEST(test_rope),
    TEST(test_conv3d),
    TEST(test_conv3d_winograd),
    TEST(test_resize),
    TEST(test_resize_bicubic_tables),
    TEST(test_invalid_args),
    TEST(test_memory_ops),
    TEST(test_teardown),
    { 0 },
};

int main(int argc, char ** argv) {
    return test_main(argc, argv, tests);
}
