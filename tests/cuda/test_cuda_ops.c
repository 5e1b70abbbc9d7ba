/* Op-level parity: the CUDA backend against the CPU backend (kernels/ops.h), every op.
 *
 * For each op and each activation dtype (f32, bf16): fresh random inputs (a new seed
 * per case), rounded to the activation dtype so both backends see identical values;
 * weights in bf16 (both backends read the same bits); outputs poisoned with NaN on both
 * sides before the op, so an unwritten element fails the check (rel_err is INF on NaN).
 * Pass: relative L2 error <= 1e-4 for f32 activations, <= 1e-2 for bf16 activations
 * (bf16 output rounding alone is ~2e-3). A table of every case is printed.
 *
 * Also: invalid arguments give INVALID_ARG and leave the backend healthy; in-place ops;
 * the memory pool stops calling cudaMalloc once warm.
 *
 * Without a usable GPU (CI), prints "SKIP: <reason>" and exits 77 (ctest SKIP_RETURN_CODE). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cuda_backend.h"
#include "infvsr/tensor.h"
#include "ops.h"

static struct infvsr_backend * g_cpu;
static struct infvsr_backend * g_gpu;
static uint64_t                g_seed = 0x5eed0001;

/* ---- helpers ---- */

static float * rnd(int64_t n, float lo, float hi, enum infvsr_dtype round_to) {
    float * v = malloc((size_t)n * sizeof *v);
    test_fill_uniform(v, (size_t)n, lo, hi, g_seed++);
    if (round_to == INFVSR_TYPE_BF16)
        for (int64_t i = 0; i < n; i++) v[i] = infvsr_bf16_to_f32(infvsr_f32_to_bf16(v[i]));
    return v;
}

/* Allocates t on `be` as `dtype` and uploads host f32 values (NULL = NaN poison). */
static void put(struct infvsr_backend * be, struct infvsr_tensor * t, const char * name,
                enum infvsr_dtype dtype, int ndim, const int64_t * shape, const float * vals) {
    struct infvsr_err err = { 0 };
    memset(t, 0, sizeof *t);
    infvsr_tensor_setup(t, name, dtype, ndim, shape);
    enum infvsr_status st = infvsr_backend_tensor_alloc(be, t, &err);
    CHECK_MSG(st == INFVSR_OK, "alloc %s on %s: %s", name, infvsr_backend_name(be), err.msg);
    if (st != INFVSR_OK) return;
    int64_t n = infvsr_tensor_numel(t);
    float * src = malloc((size_t)(n ? n : 1) * sizeof *src);
    for (int64_t i = 0; i < n; i++) src[i] = vals ? vals[i] : NAN;
    void * buf = malloc(infvsr_tensor_nbytes(t) + 1);
    infvsr_convert_from_f32(buf, dtype, src, (size_t)n);
    st = infvsr_backend_tensor_set(be, t, buf, 0, infvsr_tensor_nbytes(t), NULL);
    CHECK_MSG(st == INFVSR_OK, "tensor_set %s on %s", name, infvsr_backend_name(be));
    free(buf);
    free(src);
}

static float * get(struct infvsr_backend * be, const struct infvsr_tensor * t) {
    int64_t n = infvsr_tensor_numel(t);
    void * buf = malloc(infvsr_tensor_nbytes(t) + 1);
    float * out = malloc((size_t)(n ? n : 1) * sizeof *out);
    enum infvsr_status st = infvsr_backend_tensor_get(be, t, buf, 0, infvsr_tensor_nbytes(t), NULL);
    CHECK_MSG(st == INFVSR_OK, "tensor_get %s on %s", t->name, infvsr_backend_name(be));
    if (st == INFVSR_OK) infvsr_convert_to_f32(out, buf, t->dtype, (size_t)n);
    else for (int64_t i = 0; i < n; i++) out[i] = NAN;
    free(buf);
    return out;
}

/* One tensor on both backends: CPU side always f32 (or the weight dtype), GPU side in
 * the case's dtype, same values. */
struct both {
    struct infvsr_tensor c, g;
};

static void both_put(struct both * b, const char * name, enum infvsr_dtype cpu_dt,
                     enum infvsr_dtype gpu_dt, int ndim, const int64_t * shape, const float * vals) {
    put(g_cpu, &b->c, name, cpu_dt, ndim, shape, vals);
    put(g_gpu, &b->g, name, gpu_dt, ndim, shape, vals);
}

static void both_free(struct both * b) {
    infvsr_backend_tensor_free(g_cpu, &b->c);
    infvsr_backend_tensor_free(g_gpu, &b->g);
}

/* Activation input: random values rounded to dt; weight: random in bf16 on both sides. */
static void act_in(struct both * b, const char * name, enum infvsr_dtype dt, int ndim,
                   const int64_t * shape, float lo, float hi) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    float * v = rnd(n, lo, hi, dt);
    both_put(b, name, INFVSR_TYPE_F32, dt, ndim, shape, v);
    free(v);
}
static void weight_in_dt(struct both * b, const char * name, enum infvsr_dtype wdt, int ndim,
                         const int64_t * shape, float lo, float hi) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    float * v = rnd(n, lo, hi, wdt == INFVSR_TYPE_F32 ? INFVSR_TYPE_F32 : INFVSR_TYPE_BF16);
    both_put(b, name, wdt, wdt, ndim, shape, v);
    free(v);
}
static void weight_in(struct both * b, const char * name, int ndim, const int64_t * shape,
                      float lo, float hi) {
    weight_in_dt(b, name, INFVSR_TYPE_BF16, ndim, shape, lo, hi);
}
static void out_poison(struct both * b, const char * name, enum infvsr_dtype dt, int ndim,
                       const int64_t * shape) {
    both_put(b, name, INFVSR_TYPE_F32, dt, ndim, shape, NULL);
}

static double tol_for(enum infvsr_dtype dt) { return dt == INFVSR_TYPE_BF16 ? 1e-2 : 1e-4; }

/* Compares the two outputs, prints a table row, records failure. */
static void compare(const char * op, const char * what, enum infvsr_dtype dt, struct both * out,
                    enum infvsr_status st_cpu, enum infvsr_status st_gpu, const char * gpu_msg) {
    double e = INFINITY;
    if (st_cpu == INFVSR_OK && st_gpu == INFVSR_OK) {
        CHECK(infvsr_backend_synchronize(g_gpu, NULL) == INFVSR_OK);
        float * a = get(g_gpu, &out->g);
        float * b = get(g_cpu, &out->c);
        e = rel_err_f32(a, b, (size_t)infvsr_tensor_numel(&out->c));
        free(a);
        free(b);
    }
    double tol = tol_for(dt);
    bool ok = e <= tol;
    printf("| %-16s | %-40s | %-4s | %10.3e | %7.0e | %s |\n", op, what, infvsr_dtype_name(dt), e, tol,
           ok ? "ok" : "FAIL");
    CHECK_MSG(st_cpu == INFVSR_OK, "%s: CPU backend failed (%d)", op, (int)st_cpu);
    CHECK_MSG(st_gpu == INFVSR_OK, "%s: CUDA backend failed (%d): %s", op, (int)st_gpu, gpu_msg);
    CHECK_MSG(ok, "%s %s (%s): rel err %.3e > %.0e", op, what, infvsr_dtype_name(dt), e, tol);
}

static const enum infvsr_dtype k_dts[] = { INFVSR_TYPE_F32, INFVSR_TYPE_BF16 };
#define FOR_DT for (size_t di_ = 0; di_ < 2; di_++) for (enum infvsr_dtype dt = k_dts[di_]; dt == k_dts[di_]; dt = INFVSR_TYPE_COUNT)

/* ---- GEMM family ---- */

/* wdt: weight and bias dtype on both backends (bf16 = the checkpoints'; f32 and f16
 * exercise the CUDA backend's converted-weight temporaries). */
static void linear_case_w(int64_t M, int64_t K, int64_t N, bool bias, enum infvsr_unary_op act,
                          enum infvsr_dtype wdt) {
    static const char * act_names[] = { "gelu_tanh", "gelu_erf", "silu", "none" };
    FOR_DT {
        struct both x, w, b, y;
        struct infvsr_err err = { 0 };
        int64_t sx[2] = { M, K }, sw[2] = { N, K }, sb[1] = { N }, sy[2] = { M, N };
        act_in(&x, "x", dt, 2, sx, -1, 1);
        weight_in_dt(&w, "w", wdt, 2, sw, -0.2f, 0.2f);
        if (bias) weight_in_dt(&b, "b", wdt, 1, sb, -0.5f, 0.5f);
        out_poison(&y, "y", dt, 2, sy);
        enum infvsr_status sc = infvsr_op_linear(g_cpu, &x.c, &w.c, bias ? &b.c : NULL, act, &y.c, NULL);
        enum infvsr_status sg = infvsr_op_linear(g_gpu, &x.g, &w.g, bias ? &b.g : NULL, act, &y.g, &err);
        char what[80];
        snprintf(what, sizeof what, "[%lld,%lld]x[%lld,%lld]^T%s %s w:%s", (long long)M, (long long)K,
                 (long long)N, (long long)K, bias ? "+b" : "", act_names[act], infvsr_dtype_name(wdt));
        compare("linear", what, dt, &y, sc, sg, err.msg);
        both_free(&x); both_free(&w); both_free(&y);
        if (bias) both_free(&b);
    }
}

static void linear_case(int64_t M, int64_t K, int64_t N, bool bias, enum infvsr_unary_op act) {
    linear_case_w(M, K, N, bias, act, INFVSR_TYPE_BF16);
}

static void test_linear(void) {
    linear_case_w(45, 64, 72, true, INFVSR_UNARY_GELU_TANH, INFVSR_TYPE_F32);
    linear_case_w(45, 64, 72, true, INFVSR_UNARY_COUNT, INFVSR_TYPE_F16);
    linear_case(77, 96, 136, true, INFVSR_UNARY_COUNT);
    linear_case(77, 96, 136, false, INFVSR_UNARY_COUNT);
    linear_case(64, 128, 256, true, INFVSR_UNARY_GELU_TANH);
    linear_case(33, 72, 40, true, INFVSR_UNARY_GELU_ERF);
    linear_case(50, 64, 24, false, INFVSR_UNARY_SILU);
    linear_case(300, 256, 520, true, INFVSR_UNARY_COUNT);
}

static void matmul_case(int64_t B, int64_t M, int64_t K, int64_t N, bool trans_b, float alpha) {
    FOR_DT {
        struct both a, b, c;
        struct infvsr_err err = { 0 };
        int64_t sa[3] = { B, M, K }, sb[3] = { B, trans_b ? N : K, trans_b ? K : N }, sc3[3] = { B, M, N };
        act_in(&a, "a", dt, 3, sa, -1, 1);
        act_in(&b, "b", dt, 3, sb, -1, 1);
        out_poison(&c, "c", dt, 3, sc3);
        /* The CPU matmul is f32-only: b on the CPU side is f32 already (act_in). */
        enum infvsr_status s1 = infvsr_op_matmul(g_cpu, &a.c, &b.c, trans_b, alpha, &c.c, NULL);
        enum infvsr_status s2 = infvsr_op_matmul(g_gpu, &a.g, &b.g, trans_b, alpha, &c.g, &err);
        char what[80];
        snprintf(what, sizeof what, "B=%lld [%lld,%lld].[%lld,%lld]%s a=%.2f", (long long)B, (long long)M,
                 (long long)K, (long long)K, (long long)N, trans_b ? "^T" : "", alpha);
        compare("matmul", what, dt, &c, s1, s2, err.msg);
        both_free(&a); both_free(&b); both_free(&c);
    }
}

static void test_matmul(void) {
    matmul_case(3, 33, 40, 50, true, 0.7f);
    matmul_case(2, 17, 64, 31, false, 1.0f);
    matmul_case(1, 128, 96, 80, true, 0.125f);
}

/* ---- normalisation ---- */

static void test_norms(void) {
    FOR_DT {
        for (int affine = 0; affine < 2; affine++) {
            struct both x, w, b, y;
            struct infvsr_err err = { 0 };
            int64_t sx[3] = { 5, 7, 200 }, sw[1] = { 200 };
            act_in(&x, "x", dt, 3, sx, -2, 3);
            if (affine) { weight_in(&w, "w", 1, sw, 0.5f, 1.5f); weight_in(&b, "b", 1, sw, -0.5f, 0.5f); }
            out_poison(&y, "y", dt, 3, sx);
            enum infvsr_status s1 = infvsr_op_layer_norm(g_cpu, &x.c, affine ? &w.c : NULL, affine ? &b.c : NULL, 1e-6f, &y.c, NULL);
            enum infvsr_status s2 = infvsr_op_layer_norm(g_gpu, &x.g, affine ? &w.g : NULL, affine ? &b.g : NULL, 1e-6f, &y.g, &err);
            compare("layer_norm", affine ? "[5,7,200] affine" : "[5,7,200] no affine", dt, &y, s1, s2, err.msg);
            both_free(&x); both_free(&y);
            if (affine) { both_free(&w); both_free(&b); }
        }
        {
            struct both x, w, y;
            struct infvsr_err err = { 0 };
            int64_t sx[2] = { 37, 1536 }, sw[1] = { 1536 };
            act_in(&x, "x", dt, 2, sx, -2, 2);
            weight_in(&w, "w", 1, sw, 0.5f, 1.5f);
            out_poison(&y, "y", dt, 2, sx);
            enum infvsr_status s1 = infvsr_op_rms_norm(g_cpu, &x.c, &w.c, 1e-6f, &y.c, NULL);
            enum infvsr_status s2 = infvsr_op_rms_norm(g_gpu, &x.g, &w.g, 1e-6f, &y.g, &err);
            compare("rms_norm", "[37,1536] w", dt, &y, s1, s2, err.msg);
            both_free(&x); both_free(&w); both_free(&y);
        }
        {
            struct both x, g, y;
            struct infvsr_err err = { 0 };
            int64_t sx[4] = { 16, 3, 5, 7 }, sg[1] = { 16 };
            act_in(&x, "x", dt, 4, sx, -1, 1);
            weight_in(&g, "gamma", 1, sg, 0.5f, 1.5f);
            out_poison(&y, "y", dt, 4, sx);
            enum infvsr_status s1 = infvsr_op_channel_rms_norm(g_cpu, &x.c, &g.c, &y.c, NULL);
            enum infvsr_status s2 = infvsr_op_channel_rms_norm(g_gpu, &x.g, &g.g, &y.g, &err);
            compare("channel_rms_norm", "[16,3,5,7]", dt, &y, s1, s2, err.msg);
            both_free(&x); both_free(&g); both_free(&y);
        }
        {
            struct both x, sc, sh, y;
            struct infvsr_err err = { 0 };
            int64_t sx[2] = { 50, 64 }, sv[1] = { 64 };
            act_in(&x, "x", dt, 2, sx, -1, 1);
            act_in(&sc, "scale", dt, 1, sv, -0.5f, 0.5f);
            act_in(&sh, "shift", dt, 1, sv, -0.5f, 0.5f);
            out_poison(&y, "y", dt, 2, sx);
            enum infvsr_status s1 = infvsr_op_modulate(g_cpu, &x.c, &sc.c, &sh.c, &y.c, NULL);
            enum infvsr_status s2 = infvsr_op_modulate(g_gpu, &x.g, &sc.g, &sh.g, &y.g, &err);
            compare("modulate", "[50,64]", dt, &y, s1, s2, err.msg);
            both_free(&x); both_free(&sc); both_free(&sh); both_free(&y);
        }
    }
}

/* ---- elementwise ---- */

static void test_elementwise(void) {
    static const char * names[] = { "gelu_tanh [1000,33]", "gelu_erf [1000,33]", "silu [1000,33]" };
    FOR_DT {
        int64_t s[2] = { 1000, 33 }, sg[1] = { 33 };
        for (int op = 0; op < INFVSR_UNARY_COUNT; op++) {
            struct both x, y;
            struct infvsr_err err = { 0 };
            act_in(&x, "x", dt, 2, s, -4, 4);
            out_poison(&y, "y", dt, 2, s);
            enum infvsr_status s1 = infvsr_op_unary(g_cpu, (enum infvsr_unary_op)op, &x.c, &y.c, NULL);
            enum infvsr_status s2 = infvsr_op_unary(g_gpu, (enum infvsr_unary_op)op, &x.g, &y.g, &err);
            compare("unary", names[op], dt, &y, s1, s2, err.msg);
            both_free(&x); both_free(&y);
        }
        {
            struct both a, b, y;
            struct infvsr_err err = { 0 };
            act_in(&a, "a", dt, 2, s, -1, 1);
            act_in(&b, "b", dt, 2, s, -1, 1);
            out_poison(&y, "y", dt, 2, s);
            enum infvsr_status s1 = infvsr_op_add(g_cpu, &a.c, &b.c, &y.c, NULL);
            enum infvsr_status s2 = infvsr_op_add(g_gpu, &a.g, &b.g, &y.g, &err);
            compare("add", "[1000,33]", dt, &y, s1, s2, err.msg);
            both_free(&a); both_free(&b); both_free(&y);
        }
        for (int gated = 0; gated < 2; gated++) {
            struct both x, g, d, y;
            struct infvsr_err err = { 0 };
            act_in(&x, "x", dt, 2, s, -1, 1);
            act_in(&d, "d", dt, 2, s, -1, 1);
            if (gated) act_in(&g, "gate", dt, 1, sg, -1, 1);
            out_poison(&y, "y", dt, 2, s);
            enum infvsr_status s1 = infvsr_op_add_gated(g_cpu, &x.c, gated ? &g.c : NULL, &d.c, &y.c, NULL);
            enum infvsr_status s2 = infvsr_op_add_gated(g_gpu, &x.g, gated ? &g.g : NULL, &d.g, &y.g, &err);
            compare("add_gated", gated ? "[1000,33] gate" : "[1000,33] no gate", dt, &y, s1, s2, err.msg);
            both_free(&x); both_free(&d); both_free(&y);
            if (gated) both_free(&g);
        }
        {
            struct both x, y;
            struct infvsr_err err = { 0 };
            act_in(&x, "x", dt, 2, s, -2, 2);
            out_poison(&y, "y", dt, 2, s);
            enum infvsr_status s1 = infvsr_op_affine_clamp(g_cpu, &x.c, 1.7f, -0.3f, -1.0f, 1.0f, &y.c, NULL);
            enum infvsr_status s2 = infvsr_op_affine_clamp(g_gpu, &x.g, 1.7f, -0.3f, -1.0f, 1.0f, &y.g, &err);
            compare("affine_clamp", "[1000,33] 1.7x-0.3 in [-1,1]", dt, &y, s1, s2, err.msg);
            both_free(&x); both_free(&y);
        }
        {
            struct both x, y;
            struct infvsr_err err = { 0 };
            int64_t ss[2] = { 20, 300 };
            act_in(&x, "x", dt, 2, ss, -6, 6);
            out_poison(&y, "y", dt, 2, ss);
            enum infvsr_status s1 = infvsr_op_softmax(g_cpu, &x.c, &y.c, NULL);
            enum infvsr_status s2 = infvsr_op_softmax(g_gpu, &x.g, &y.g, &err);
            compare("softmax", "[20,300]", dt, &y, s1, s2, err.msg);
            both_free(&x); both_free(&y);
        }
    }
}

/* ---- attention and RoPE ---- */

/* Runs every attention kernel that applies: bf16 through the default dispatch and each
 * forced kernel (mma, wmma, simt), f32 through the default (simt). The table names the
 * kernel that actually ran. */
static void attn_case(int64_t nq, int64_t n0, int64_t n1, int H, int D, bool bias) {
    static const enum infvsr_cuda_attn_kernel kinds[] = { INFVSR_CUDA_ATTN_AUTO, INFVSR_CUDA_ATTN_MMA,
                                                          INFVSR_CUDA_ATTN_WMMA, INFVSR_CUDA_ATTN_SIMT };
    FOR_DT for (size_t ki = 0; ki < (dt == INFVSR_TYPE_BF16 ? 4u : 1u); ki++) {
        infvsr_cuda_backend_set_attention_kernel(g_gpu, kinds[ki]);
        struct both q, k0, v0, k1, v1, b, o;
        struct infvsr_err err = { 0 };
        const int64_t hd = (int64_t)H * D, nk = n0 + n1;
        int64_t sq[2] = { nq, hd }, s0[2] = { n0, hd }, s1[2] = { n1, hd }, sb[3] = { H, nq, nk };
        act_in(&q, "q", dt, 2, sq, -1.5f, 1.5f);
        act_in(&k0, "k0", dt, 2, s0, -1.5f, 1.5f);
        act_in(&v0, "v0", dt, 2, s0, -1, 1);
        if (n1) { act_in(&k1, "k1", dt, 2, s1, -1.5f, 1.5f); act_in(&v1, "v1", dt, 2, s1, -1, 1); }
        if (bias) act_in(&b, "bias", INFVSR_TYPE_F32, 3, sb, -2, 2);
        out_poison(&o, "out", dt, 2, sq);
        struct infvsr_attn_args ac = { &q.c, &k0.c, &v0.c, n1 ? &k1.c : NULL, n1 ? &v1.c : NULL,
                                       bias ? &b.c : NULL, H, 1.0f / sqrtf((float)D), &o.c };
        struct infvsr_attn_args ag = { &q.g, &k0.g, &v0.g, n1 ? &k1.g : NULL, n1 ? &v1.g : NULL,
                                       bias ? &b.g : NULL, H, 1.0f / sqrtf((float)D), &o.g };
        enum infvsr_status s_c = infvsr_op_attention(g_cpu, &ac, NULL);
        enum infvsr_status s_g = infvsr_op_attention(g_gpu, &ag, &err);
        char what[80];
        snprintf(what, sizeof what, "Nq=%lld Nk=%lld+%lld H=%d D=%d%s %s%s", (long long)nq, (long long)n0,
                 (long long)n1, H, D, bias ? " bias" : "", ki == 0 ? "auto:" : "",
                 infvsr_cuda_backend_last_attention_kernel(g_gpu));
        compare("attention", what, dt, &o, s_c, s_g, err.msg);
        infvsr_cuda_backend_set_attention_kernel(g_gpu, INFVSR_CUDA_ATTN_AUTO);
        both_free(&q); both_free(&k0); both_free(&v0); both_free(&o);
        if (n1) { both_free(&k1); both_free(&v1); }
        if (bias) both_free(&b);
    }
}

static void test_attention(void) {
    attn_case(100, 70, 90, 2, 64, false);  /* two segments, ragged tiles                     */
    attn_case(200, 150, 130, 2, 128, true); /* several query blocks and key tiles, bias      */
    attn_case(130, 200, 0, 3, 128, false); /* one segment, D = 128                          */
    attn_case(65, 33, 31, 4, 32, true);    /* D = 32 with additive bias                     */
    attn_case(50, 80, 0, 1, 384, false);   /* VAE head dim: 2-warp wmma on sm_90 in bf16     */
    attn_case(40, 30, 20, 3, 40, true);    /* odd head dim: generic path                    */
}

static void test_rope(void) {
    FOR_DT {
        const int64_t N = 20, H = 3, D = 16;
        int64_t sx[2] = { N, H * D }, sf[3] = { N, D / 2, 2 };
        struct both x, y;
        struct infvsr_err err = { 0 };
        act_in(&x, "x", dt, 2, sx, -1, 1);
        out_poison(&y, "y", dt, 2, sx);
        /* freqs: F64 (cos, sin) of random angles, same bytes on both backends */
        double * f = malloc((size_t)(N * D) * sizeof *f);
        float * ang = rnd(N * D / 2, -3.1f, 3.1f, INFVSR_TYPE_F32);
        for (int64_t i = 0; i < N * D / 2; i++) { f[2 * i] = cos(ang[i]); f[2 * i + 1] = sin(ang[i]); }
        struct infvsr_tensor fc, fg;
        memset(&fc, 0, sizeof fc);
        memset(&fg, 0, sizeof fg);
        infvsr_tensor_setup(&fc, "freqs", INFVSR_TYPE_F64, 3, sf);
        infvsr_tensor_setup(&fg, "freqs", INFVSR_TYPE_F64, 3, sf);
        CHECK(infvsr_backend_tensor_alloc(g_cpu, &fc, NULL) == INFVSR_OK);
        CHECK(infvsr_backend_tensor_alloc(g_gpu, &fg, NULL) == INFVSR_OK);
        CHECK(infvsr_backend_tensor_set(g_cpu, &fc, f, 0, (size_t)(N * D) * sizeof *f, NULL) == INFVSR_OK);
        CHECK(infvsr_backend_tensor_set(g_gpu, &fg, f, 0, (size_t)(N * D) * sizeof *f, NULL) == INFVSR_OK);
        enum infvsr_status s1 = infvsr_op_rope(g_cpu, &x.c, &fc, (int)H, &y.c, NULL);
        enum infvsr_status s2 = infvsr_op_rope(g_gpu, &x.g, &fg, (int)H, &y.g, &err);
        compare("rope", "[20, 3x16]", dt, &y, s1, s2, err.msg);
        both_free(&x); both_free(&y);
        infvsr_backend_tensor_free(g_cpu, &fc);
        infvsr_backend_tensor_free(g_gpu, &fg);
        free(f);
        free(ang);
    }
}

/* ---- convolution and resampling ---- */

static void conv_case(int64_t cin, int64_t T, int64_t H, int64_t W, int64_t cout, int kt, int kh, int kw,
                      int st, int sh, int sw, int pt, int pb, int pl, int pr, bool bias) {
    /* bf16 runs both implementations (im2col + cuBLASLt, implicit GEMM); f32 only im2col */
    FOR_DT for (int impl = 0; impl < (dt == INFVSR_TYPE_BF16 ? 2 : 1); impl++) {
        infvsr_cuda_backend_set_conv_kernel(g_gpu, impl ? INFVSR_CUDA_CONV_IMPLICIT : INFVSR_CUDA_CONV_IM2COL);
        struct both x, w, b, y;
        struct infvsr_err err = { 0 };
        const int64_t to = (T - kt) / st + 1, ho = (H + pt + pb - kh) / sh + 1, wo = (W + pl + pr - kw) / sw + 1;
        int64_t sx[4] = { cin, T, H, W }, swt[5] = { cout, cin, kt, kh, kw }, sb[1] = { cout };
        int64_t sy[4] = { cout, to, ho, wo };
        act_in(&x, "x", dt, 4, sx, -1, 1);
        weight_in(&w, "w", 5, swt, -0.2f, 0.2f);
        if (bias) weight_in(&b, "b", 1, sb, -0.5f, 0.5f);
        out_poison(&y, "y", dt, 4, sy);
        struct infvsr_conv3d_args ac = { &x.c, &w.c, bias ? &b.c : NULL, st, sh, sw, pt, pb, pl, pr, &y.c };
        struct infvsr_conv3d_args ag = { &x.g, &w.g, bias ? &b.g : NULL, st, sh, sw, pt, pb, pl, pr, &y.g };
        enum infvsr_status s1 = infvsr_op_conv3d(g_cpu, &ac, NULL);
        enum infvsr_status s2 = infvsr_op_conv3d(g_gpu, &ag, &err);
        char what[80];
        snprintf(what, sizeof what, "%lld->%lld k%d%d%d s%d%d%d p%d%d%d%d [%lld,%lld,%lld] %s", (long long)cin,
                 (long long)cout, kt, kh, kw, st, sh, sw, pt, pb, pl, pr, (long long)T, (long long)H, (long long)W,
                 impl ? "implicit" : "im2col");
        compare("conv3d", what, dt, &y, s1, s2, err.msg);
        infvsr_cuda_backend_set_conv_kernel(g_gpu, INFVSR_CUDA_CONV_AUTO);
        both_free(&x); both_free(&w); both_free(&y);
        if (bias) both_free(&b);
    }
}

static void test_conv3d(void) {
    conv_case(8, 5, 11, 13, 12, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, true);  /* causal 3x3x3      */
    conv_case(6, 3, 12, 10, 5, 1, 3, 3, 1, 2, 2, 0, 1, 0, 1, true);   /* downsample 2-D    */
    conv_case(16, 2, 7, 9, 24, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, true);   /* 1x1x1 (no im2col) */
    conv_case(4, 6, 8, 8, 8, 3, 1, 1, 2, 1, 1, 0, 0, 0, 0, false);    /* time conv stride 2 */
    conv_case(3, 3, 20, 37, 70, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, true);  /* Cin=3 (K=81, ragged), several tiles */
}

static void resize_case(enum infvsr_resize_mode mode, const char * name, int64_t C, int64_t H, int64_t W,
                        int64_t Ho, int64_t Wo) {
    FOR_DT {
        struct both x, y;
        struct infvsr_err err = { 0 };
        int64_t sx[3] = { C, H, W }, sy[3] = { C, Ho, Wo };
        act_in(&x, "x", dt, 3, sx, 0, 1);
        out_poison(&y, "y", dt, 3, sy);
        enum infvsr_status s1 = infvsr_op_resize(g_cpu, mode, &x.c, &y.c, NULL);
        enum infvsr_status s2 = infvsr_op_resize(g_gpu, mode, &x.g, &y.g, &err);
        char what[80];
        snprintf(what, sizeof what, "%s [%lld,%lld,%lld]->[%lld,%lld]", name, (long long)C, (long long)H,
                 (long long)W, (long long)Ho, (long long)Wo);
        compare("resize", what, dt, &y, s1, s2, err.msg);
        both_free(&x); both_free(&y);
    }
}

static void test_resize(void) {
    resize_case(INFVSR_RESIZE_BICUBIC_AA, "bicubic x4", 3, 9, 11, 36, 44);
    resize_case(INFVSR_RESIZE_BILINEAR_AA, "bilinear down", 2, 40, 30, 17, 23);
    resize_case(INFVSR_RESIZE_BILINEAR_AA, "bilinear up", 3, 18, 32, 38, 38);
    resize_case(INFVSR_RESIZE_NEAREST, "nearest", 2, 7, 9, 14, 5);
}

/* ---- behaviour beyond parity ---- */

static void test_bad_args_keep_backend_healthy(void) {
    struct infvsr_tensor host, dev;
    struct infvsr_err err = { 0 };
    int64_t s[2] = { 4, 8 };
    CHECK(infvsr_tensor_alloc(&host, "host_x", INFVSR_TYPE_F32, 2, s) == INFVSR_OK);
    put(g_gpu, &dev, "dev_y", INFVSR_TYPE_F32, 2, s, NULL);
    CHECK_EQ_INT(infvsr_op_unary(g_gpu, INFVSR_UNARY_SILU, &host, &dev, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "host_x");
    int64_t s2[2] = { 4, 9 };
    struct infvsr_tensor dev2;
    put(g_gpu, &dev2, "dev_wrong", INFVSR_TYPE_F32, 2, s2, NULL);
    CHECK_EQ_INT(infvsr_op_add(g_gpu, &dev, &dev2, &dev, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "elements");
    CHECK(infvsr_cuda_backend_healthy(g_gpu));
    CHECK_EQ_INT(strlen(infvsr_cuda_backend_last_error(g_gpu)), 0);
    infvsr_backend_tensor_free(g_gpu, &dev);
    infvsr_backend_tensor_free(g_gpu, &dev2);
    infvsr_tensor_release(&host);
}

/* layer_norm and add_gated with y == x on the device against out-of-place on the CPU. */
static void test_in_place(void) {
    int64_t s[2] = { 9, 130 }, sv[1] = { 130 };
    struct both x, w, b, y, g, d;
    struct infvsr_err err = { 0 };
    act_in(&x, "x", INFVSR_TYPE_F32, 2, s, -1, 1);
    weight_in(&w, "w", 1, sv, 0.5f, 1.5f);
    weight_in(&b, "b", 1, sv, -0.5f, 0.5f);
    out_poison(&y, "y", INFVSR_TYPE_F32, 2, s);
    enum infvsr_status s1 = infvsr_op_layer_norm(g_cpu, &x.c, &w.c, &b.c, 1e-5f, &y.c, NULL);
    enum infvsr_status s2 = infvsr_op_layer_norm(g_gpu, &x.g, &w.g, &b.g, 1e-5f, &x.g, &err);
    /* compare x.g (in place result) with y.c */
    struct both view = { y.c, x.g };
    compare("layer_norm", "[9,130] in place", INFVSR_TYPE_F32, &view, s1, s2, err.msg);
    act_in(&g, "gate", INFVSR_TYPE_F32, 1, sv, -1, 1);
    act_in(&d, "d", INFVSR_TYPE_F32, 2, s, -1, 1);
    s1 = infvsr_op_add_gated(g_cpu, &y.c, &g.c, &d.c, &y.c, NULL);
    s2 = infvsr_op_add_gated(g_gpu, &x.g, &g.g, &d.g, &x.g, &err);
    struct both view2 = { y.c, x.g };
    compare("add_gated", "[9,130] in place", INFVSR_TYPE_F32, &view2, s1, s2, err.msg);
    both_free(&x); both_free(&w); both_free(&b); both_free(&y); both_free(&g); both_free(&d);
}

/* After one warm-up iteration, the same sequence of allocations and ops must not call
 * cudaMalloc again (the steady state of a worker). */
static void test_pool_steady_state(void) {
    struct infvsr_cuda_pool_stats s0, s1;
    for (int it = 0; it < 3; it++) {
        if (it == 1) infvsr_cuda_backend_pool_stats(g_gpu, &s0);
        struct infvsr_tensor x, w, y;
        struct infvsr_err err = { 0 };
        int64_t sx[2] = { 256, 384 }, sw[2] = { 512, 384 }, sy[2] = { 256, 512 };
        float * vx = rnd(256 * 384, -1, 1, INFVSR_TYPE_BF16);
        float * vw = rnd(512 * 384, -0.1f, 0.1f, INFVSR_TYPE_BF16);
        put(g_gpu, &x, "x", INFVSR_TYPE_BF16, 2, sx, vx);
        put(g_gpu, &w, "w", INFVSR_TYPE_F32, 2, sw, vw); /* f32 weight: exercises the converted temporary */
        put(g_gpu, &y, "y", INFVSR_TYPE_BF16, 2, sy, NULL);
        CHECK(infvsr_op_linear(g_gpu, &x, &w, NULL, INFVSR_UNARY_GELU_ERF, &y, &err) == INFVSR_OK);
        /* ops with temporaries of their own: conv3d (im2col chunk, converted weight),
         * resize (tap tables, f32 intermediate) */
        struct infvsr_tensor cx, cw, cy, ry;
        int64_t scx[4] = { 8, 3, 16, 16 }, scw[5] = { 8, 8, 3, 3, 3 }, scy[4] = { 8, 1, 16, 16 };
        int64_t sry[4] = { 8, 3, 40, 24 };
        put(g_gpu, &cx, "cx", INFVSR_TYPE_BF16, 4, scx, NULL);
        put(g_gpu, &cw, "cw", INFVSR_TYPE_F32, 5, scw, NULL);
        put(g_gpu, &cy, "cy", INFVSR_TYPE_BF16, 4, scy, NULL);
        put(g_gpu, &ry, "ry", INFVSR_TYPE_BF16, 4, sry, NULL);
        struct infvsr_conv3d_args ca = { &cx, &cw, NULL, 1, 1, 1, 1, 1, 1, 1, &cy };
        CHECK(infvsr_op_conv3d(g_gpu, &ca, &err) == INFVSR_OK);
        CHECK(infvsr_op_resize(g_gpu, INFVSR_RESIZE_BICUBIC_AA, &cx, &ry, &err) == INFVSR_OK);
        CHECK(infvsr_backend_synchronize(g_gpu, NULL) == INFVSR_OK);
        infvsr_backend_tensor_free(g_gpu, &cx);
        infvsr_backend_tensor_free(g_gpu, &cw);
        infvsr_backend_tensor_free(g_gpu, &cy);
        infvsr_backend_tensor_free(g_gpu, &ry);
        infvsr_backend_tensor_free(g_gpu, &x);
        infvsr_backend_tensor_free(g_gpu, &w);
        infvsr_backend_tensor_free(g_gpu, &y);
        free(vx);
        free(vw);
    }
    infvsr_cuda_backend_pool_stats(g_gpu, &s1);
    printf("pool: %llu cudaMalloc calls in total, %llu after warm-up; in use %zu B, peak %zu B, reserved %zu B\n",
           (unsigned long long)s1.n_device_mallocs,
           (unsigned long long)(s1.n_device_mallocs - s0.n_device_mallocs), s1.bytes_in_use, s1.bytes_peak,
           s1.bytes_reserved);
    CHECK_EQ_INT(s1.n_device_mallocs, s0.n_device_mallocs);
    CHECK(s1.n_allocs > s0.n_allocs);
    CHECK(infvsr_cuda_backend_healthy(g_gpu));
}

static const struct test_case tests[] = {
    TEST(test_linear),
    TEST(test_matmul),
    TEST(test_norms),
    TEST(test_elementwise),
    TEST(test_attention),
    TEST(test_rope),
    TEST(test_conv3d),
    TEST(test_resize),
    TEST(test_bad_args_keep_backend_healthy),
    TEST(test_in_place),
    TEST(test_pool_steady_state),
    { 0 },
};

int main(int argc, char ** argv) {
    struct infvsr_err err = { 0 };
    enum infvsr_status st = infvsr_cuda_backend_init(0, INFVSR_PRECISION_AUTO, &g_gpu, &err);
    if (st == INFVSR_ERR_UNSUPPORTED) {
        printf("SKIP: %s\n", err.msg);
        return 77;
    }
    if (st != INFVSR_OK) {
        printf("FAIL: CUDA backend init: %s\n", err.msg);
        return 1;
    }
    struct infvsr_cpu_params cp = infvsr_cpu_default_params();
    if (infvsr_cpu_backend_init(&cp, &g_cpu) != INFVSR_OK) {
        printf("FAIL: CPU backend init\n");
        infvsr_backend_free(g_gpu);
        return 1;
    }
    printf("CUDA backend: %s\n", infvsr_backend_name(g_gpu));
    printf("| %-16s | %-40s | %-4s | %10s | %7s | %s |\n", "op", "case", "act", "rel err", "tol", "ok");
    int rc = test_main(argc, argv, tests);
    if (!infvsr_cuda_backend_healthy(g_gpu)) {
        printf("CUDA backend unhealthy: %s\n", infvsr_cuda_backend_last_error(g_gpu));
        rc = 1;
    }
    infvsr_backend_free(g_cpu);
    infvsr_backend_free(g_gpu);
    return rc;
}
