/* GPU benchmark of the CUDA backend at the 720p DiT / VAE shapes (MODEL-SPEC 8.2).
 *
 *   - linear (bf16 in/out, fp32 accumulate, with bias) vs a raw cuBLASLt bf16 GEMM on
 *     the same shape (no bias): the gap is our per-call overhead (descriptor creation,
 *     heuristic query, bias epilogue);
 *   - attention, Nq = 10800, Nk = 10800 (cache) + 10800 (new), H = 12, D = 128, bf16:
 *     FLOPs = 4 Nq Nk D H (QK^T and PV); the VAE mid-block attention (one head of 384
 *     over a 90x160 latent frame, bf16); and the fp32 SIMT kernel for scale;
 *   - conv3d bf16 with bias at VAE shapes: 96 -> 96, 3x3x3, pad 1 on [96, 6, 180, 320] (a
 *     quarter-size VAE stage), 384 -> 384 3x3x3 on [384, 6, 90, 160] (the decoder's
 *     lowest-resolution stage) and the 1x3x3 stride-2 downsample with bottom/right padding
 *     on [96, 1, 360, 640]; each on cuDNN, the implicit-GEMM kernel and im2col + cuBLASLt,
 *     or only the one named by INFVSR_CUDA_CONV=cudnn|implicit|im2col|auto (read here, not
 *     by the backend). The row names the path that really ran ("ran:im2col" on a cudnn row
 *     means cuDNN refused the shape or is not in this build).
 * Timing: CUDA events on the backend's stream around each call, 3 warm-up calls, then
 * the median of N timed calls. Inputs are random (never zeros). Prints a table.
 * Exits 77 ("SKIP") without a GPU.
 * Usage: [INFVSR_CUDA_CONV=cudnn|implicit|im2col|auto] bench_cuda [iterations [all|gemm|attention|conv]] */
#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cuda_backend.h"
#include "infvsr/tensor.h"
#include "ops.h"

static struct infvsr_backend * g_be;
static cudaStream_t            g_stream;
static int                     g_iters = 20;

#define DIE_IF(cond, ...)                                                 \
    do {                                                                  \
        if (cond) {                                                       \
            fprintf(stderr, "bench_cuda: " __VA_ARGS__);                  \
            fputc('\n', stderr);                                          \
            exit(1);                                                      \
        }                                                                 \
    } while (0)

static void dev_rand(struct infvsr_tensor * t, const char * name, enum infvsr_dtype dt, int ndim,
                     const int64_t * shape, float lo, float hi, uint64_t seed) {
    struct infvsr_err err = { 0 };
    memset(t, 0, sizeof *t);
    infvsr_tensor_setup(t, name, dt, ndim, shape);
    DIE_IF(infvsr_backend_tensor_alloc(g_be, t, &err) != INFVSR_OK, "alloc %s: %s", name, err.msg);
    size_t n = (size_t)infvsr_tensor_numel(t);
    float * v = malloc(n * sizeof *v);
    void * buf = malloc(infvsr_tensor_nbytes(t));
    DIE_IF(!v || !buf, "host OOM");
    test_fill_uniform(v, n, lo, hi, seed);
    infvsr_convert_from_f32(buf, dt, v, n);
    DIE_IF(infvsr_backend_tensor_set(g_be, t, buf, 0, infvsr_tensor_nbytes(t), NULL) != INFVSR_OK, "set %s", name);
    free(v);
    free(buf);
}

static int cmp_float(const void * a, const void * b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

typedef enum infvsr_status (*bench_fn)(void * ctx);

/* Median milliseconds of one call, timed with events on the backend's stream. */
static float time_ms(bench_fn fn, void * ctx) {
    cudaEvent_t e0, e1;
    DIE_IF(cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess, "events");
    for (int i = 0; i < 3; i++) DIE_IF(fn(ctx) != INFVSR_OK, "warm-up call failed");
    float * t = malloc((size_t)g_iters * sizeof *t);
    for (int i = 0; i < g_iters; i++) {
        DIE_IF(cudaEventRecord(e0, g_stream) != cudaSuccess, "record");
        DIE_IF(fn(ctx) != INFVSR_OK, "timed call failed");
        DIE_IF(cudaEventRecord(e1, g_stream) != cudaSuccess, "record");
        DIE_IF(cudaEventSynchronize(e1) != cudaSuccess, "sync: %s", cudaGetErrorString(cudaGetLastError()));
        DIE_IF(cudaEventElapsedTime(&t[i], e0, e1) != cudaSuccess, "elapsed");
    }
    qsort(t, (size_t)g_iters, sizeof *t, cmp_float);
    float med = t[g_iters / 2];
    free(t);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    DIE_IF(!infvsr_cuda_backend_healthy(g_be), "backend unhealthy: %s", infvsr_cuda_backend_last_error(g_be));
    return med;
}

static void row(const char * what, const char * shape, double flops, float ms, float ref_ms) {
    double tf = flops / (ms * 1e-3) / 1e12;
    if (ref_ms > 0)
        printf("| %-26s | %-30s | %9.3f | %8.1f | %8.1f | %5.2f |\n", what, shape, ms, tf,
               flops / (ref_ms * 1e-3) / 1e12, ref_ms / ms);
    else
        printf("| %-26s | %-30s | %9.3f | %8.1f | %8s | %5s |\n", what, shape, ms, tf, "-", "-");
    fflush(stdout);
}

/* ---- linear vs raw cuBLASLt ---- */

struct lin_ctx {
    struct infvsr_tensor x, w, b, y;
};
static enum infvsr_status run_linear(void * p) {
    struct lin_ctx * c = p;
    struct infvsr_err err = { 0 };
    enum infvsr_status st = infvsr_op_linear(g_be, &c->x, &c->w, &c->b, INFVSR_UNARY_COUNT, &c->y, &err);
    if (st) fprintf(stderr, "linear: %s\n", err.msg);
    return st;
}

struct raw_ctx {
    cublasLtHandle_t           lt;
    cublasLtMatmulDesc_t       op;
    cublasLtMatrixLayout_t     a, b, d;
    cublasLtMatmulHeuristicResult_t res;
    void *                     ws;
    size_t                     ws_size;
    const void *               A, * B;
    void *                     D;
};
static enum infvsr_status run_raw(void * p) {
    struct raw_ctx * r = p;
    const float alpha = 1.0f, beta = 0.0f;
    cublasStatus_t s = cublasLtMatmul(r->lt, r->op, &alpha, r->A, r->a, r->B, r->b, &beta, r->D, r->d, r->D,
                                      r->d, &r->res.algo, r->ws, r->ws_size, g_stream);
    return s == CUBLAS_STATUS_SUCCESS ? INFVSR_OK : INFVSR_ERR_DEVICE;
}

static void bench_gemm(int64_t M, int64_t K, int64_t N, const char * what) {
    struct lin_ctx c;
    int64_t sx[2] = { M, K }, sw[2] = { N, K }, sb[1] = { N }, sy[2] = { M, N };
    dev_rand(&c.x, "x", INFVSR_TYPE_BF16, 2, sx, -1, 1, 1);
    dev_rand(&c.w, "w", INFVSR_TYPE_BF16, 2, sw, -0.05f, 0.05f, 2);
    dev_rand(&c.b, "b", INFVSR_TYPE_BF16, 1, sb, -0.5f, 0.5f, 3);
    dev_rand(&c.y, "y", INFVSR_TYPE_BF16, 2, sy, -1, 1, 4);
    float ms = time_ms(run_linear, &c);

    /* the same GEMM straight through cuBLASLt (column-major D[N,M] = W^T X) */
    struct raw_ctx r;
    memset(&r, 0, sizeof r);
    r.ws_size = 32u << 20;
    DIE_IF(cublasLtCreate(&r.lt) != CUBLAS_STATUS_SUCCESS, "cublasLtCreate");
    DIE_IF(cudaMalloc(&r.ws, r.ws_size) != cudaSuccess, "workspace");
    DIE_IF(cublasLtMatmulDescCreate(&r.op, CUBLAS_COMPUTE_32F, CUDA_R_32F) != CUBLAS_STATUS_SUCCESS, "desc");
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasLtMatmulDescSetAttribute(r.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    cublasLtMatmulDescSetAttribute(r.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    cublasLtMatrixLayoutCreate(&r.a, CUDA_R_16BF, (uint64_t)K, (uint64_t)N, K);
    cublasLtMatrixLayoutCreate(&r.b, CUDA_R_16BF, (uint64_t)K, (uint64_t)M, K);
    cublasLtMatrixLayoutCreate(&r.d, CUDA_R_16BF, (uint64_t)N, (uint64_t)M, N);
    cublasLtMatmulPreference_t pref;
    cublasLtMatmulPreferenceCreate(&pref);
    uint64_t wsz = r.ws_size;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsz, sizeof wsz);
    int nres = 0;
    DIE_IF(cublasLtMatmulAlgoGetHeuristic(r.lt, r.op, r.a, r.b, r.d, r.d, pref, 1, &r.res, &nres) !=
               CUBLAS_STATUS_SUCCESS || nres == 0, "no raw cuBLASLt algorithm");
    r.A = c.w.data;
    r.B = c.x.data;
    r.D = c.y.data;
    float ref = time_ms(run_raw, &r);
    char shape[64];
    snprintf(shape, sizeof shape, "[%lld,%lld]x[%lld,%lld]^T", (long long)M, (long long)K, (long long)N,
             (long long)K);
    row(what, shape, 2.0 * M * K * N, ms, ref);
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(r.a);
    cublasLtMatrixLayoutDestroy(r.b);
    cublasLtMatrixLayoutDestroy(r.d);
    cublasLtMatmulDescDestroy(r.op);
    cudaFree(r.ws);
    cublasLtDestroy(r.lt);
    infvsr_backend_tensor_free(g_be, &c.x);
    infvsr_backend_tensor_free(g_be, &c.w);
    infvsr_backend_tensor_free(g_be, &c.b);
    infvsr_backend_tensor_free(g_be, &c.y);
}

/* ---- attention ---- */

struct attn_ctx {
    struct infvsr_tensor q, k0, v0, k1, v1, o;
    int                  h, d;
};
static enum infvsr_status run_attn(void * p) {
    struct attn_ctx * c = p;
    struct infvsr_err err = { 0 };
    struct infvsr_attn_args a = { &c->q, &c->k0, &c->v0, &c->k1, &c->v1, NULL, c->h,
                                  1.0f / sqrtf((float)c->d), &c->o };
    enum infvsr_status st = infvsr_op_attention(g_be, &a, &err);
    if (st) fprintf(stderr, "attention: %s\n", err.msg);
    return st;
}

static void bench_attention(int64_t nq, int64_t n0, int64_t n1, int h, int d, enum infvsr_dtype dt,
                            const char * what) {
    struct attn_ctx c;
    c.h = h;
    c.d = d;
    int64_t sq[2] = { nq, (int64_t)h * d }, s0[2] = { n0, (int64_t)h * d }, s1[2] = { n1, (int64_t)h * d };
    dev_rand(&c.q, "q", dt, 2, sq, -1, 1, 11);
    dev_rand(&c.k0, "k0", dt, 2, s0, -1, 1, 12);
    dev_rand(&c.v0, "v0", dt, 2, s0, -1, 1, 13);
    dev_rand(&c.k1, "k1", dt, 2, s1, -1, 1, 14);
    dev_rand(&c.v1, "v1", dt, 2, s1, -1, 1, 15);
    dev_rand(&c.o, "o", dt, 2, sq, -1, 1, 16);
    float ms = time_ms(run_attn, &c);
    char shape[64], label[64];
    snprintf(shape, sizeof shape, "Nq=%lld Nk=%lld H=%d D=%d", (long long)nq, (long long)(n0 + n1), h, d);
    /* name the kernel that really ran (a forced kernel that does not apply falls back) */
    snprintf(label, sizeof label, "%s ran:%s", what, infvsr_cuda_backend_last_attention_kernel(g_be));
    row(label, shape, 4.0 * nq * (n0 + n1) * d * h, ms, 0);
    struct infvsr_tensor * ts[] = { &c.q, &c.k0, &c.v0, &c.k1, &c.v1, &c.o };
    for (size_t i = 0; i < 6; i++) infvsr_backend_tensor_free(g_be, ts[i]);
}

/* ---- conv3d ---- */

struct conv_ctx {
    struct infvsr_tensor      x, w, b, y;
    struct infvsr_conv3d_args a;
};
static enum infvsr_status run_conv(void * p) {
    struct conv_ctx * c = p;
    struct infvsr_err err = { 0 };
    enum infvsr_status st = infvsr_op_conv3d(g_be, &c->a, &err);
    if (st) fprintf(stderr, "conv3d: %s\n", err.msg);
    return st;
}

/* Cin = Cout = C; kernel kt x k x k; spatial stride s; pads top/left pt, bottom/right pb. */
static void bench_conv(int64_t C, int64_t T, int64_t H, int64_t W, int64_t kt, int64_t k, int s, int pt, int pb,
                       const char * what) {
    struct conv_ctx c;
    const int64_t to = T - kt + 1, ho = (H + pt + pb - k) / s + 1, wo = (W + pt + pb - k) / s + 1;
    int64_t sx[4] = { C, T, H, W }, sw[5] = { C, C, kt, k, k }, sb[1] = { C }, sy[4] = { C, to, ho, wo };
    dev_rand(&c.x, "x", INFVSR_TYPE_BF16, 4, sx, -1, 1, 21);
    dev_rand(&c.w, "w", INFVSR_TYPE_BF16, 5, sw, -0.05f, 0.05f, 22);
    dev_rand(&c.b, "b", INFVSR_TYPE_BF16, 1, sb, -0.5f, 0.5f, 23);
    dev_rand(&c.y, "y", INFVSR_TYPE_BF16, 4, sy, -1, 1, 24);
    c.a = (struct infvsr_conv3d_args){ .x = &c.x, .w = &c.w, .b = &c.b, .stride_t = 1, .stride_h = s, .stride_w = s,
                                       .pad_top = pt, .pad_bottom = pb, .pad_left = pt, .pad_right = pb, .y = &c.y };
    float ms = time_ms(run_conv, &c);
    char shape[64], label[64];
    snprintf(shape, sizeof shape, "%lld %lldx%lldx%lld s%d [%lld,%lld,%lld]", (long long)C, (long long)kt,
             (long long)k, (long long)k, s, (long long)T, (long long)H, (long long)W);
    snprintf(label, sizeof label, "%s ran:%s", what, infvsr_cuda_backend_last_conv_kernel(g_be));
    row(label, shape, 2.0 * C * C * kt * k * k * to * ho * wo, ms, 0);
    infvsr_backend_tensor_free(g_be, &c.x);
    infvsr_backend_tensor_free(g_be, &c.w);
    infvsr_backend_tensor_free(g_be, &c.b);
    infvsr_backend_tensor_free(g_be, &c.y);
}

/* The conv3d paths to time: INFVSR_CUDA_CONV=cudnn|implicit|im2col|auto picks one (for
 * tests/cuda/run_gpu_checks.sh, one path per process); unset: all three. */
static void bench_convs(void) {
    static const struct {
        const char *                 name;
        enum infvsr_cuda_conv_kernel k;
    } paths[] = { { "cudnn", INFVSR_CUDA_CONV_CUDNN }, { "implicit", INFVSR_CUDA_CONV_IMPLICIT },
                  { "im2col", INFVSR_CUDA_CONV_IM2COL }, { "auto", INFVSR_CUDA_CONV_AUTO } };
    const char * want = getenv("INFVSR_CUDA_CONV");
    bool         any  = false;
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        if (want ? strcmp(want, paths[i].name) != 0 : paths[i].k == INFVSR_CUDA_CONV_AUTO) continue;
        any = true;
        char what[32];
        snprintf(what, sizeof what, "conv %s", paths[i].name);
        infvsr_cuda_backend_set_conv_kernel(g_be, paths[i].k);
        bench_conv(96, 6, 180, 320, 3, 3, 1, 1, 1, what);
        bench_conv(384, 6, 90, 160, 3, 3, 1, 1, 1, what);
        bench_conv(96, 1, 360, 640, 1, 3, 2, 0, 1, what);
    }
    DIE_IF(!any, "INFVSR_CUDA_CONV=%s: expected cudnn, implicit, im2col or auto", want);
    infvsr_cuda_backend_set_conv_kernel(g_be, INFVSR_CUDA_CONV_AUTO);
    struct infvsr_cuda_conv_plan_stats ps;
    infvsr_cuda_backend_conv_plan_stats(g_be, &ps);
    printf("conv3d: cuDNN %s; %d plans cached, %d shapes refused, %llu hits, %llu misses\n",
           infvsr_cuda_backend_has_cudnn(g_be) ? "available" : "not available", ps.plans, ps.refused,
           (unsigned long long)ps.hits, (unsigned long long)ps.misses);
}

int main(int argc, char ** argv) {
    if (argc > 1) g_iters = atoi(argv[1]) > 0 ? atoi(argv[1]) : 20;
    /* one family per process if asked (tests/cuda/run_gpu_checks.sh: a fault in one does
     * not hide the others' numbers) */
    const char * family = argc > 2 ? argv[2] : "all";
    const bool   all = strcmp(family, "all") == 0;
    DIE_IF(!all && strcmp(family, "gemm") != 0 && strcmp(family, "attention") != 0 && strcmp(family, "conv") != 0,
           "family %s: expected all, gemm, attention or conv", family);
    struct infvsr_err err = { 0 };
    enum infvsr_status st = infvsr_cuda_backend_init(0, INFVSR_PRECISION_AUTO, &g_be, &err);
    if (st == INFVSR_ERR_UNSUPPORTED) {
        printf("SKIP: %s\n", err.msg);
        return 77;
    }
    DIE_IF(st != INFVSR_OK, "init: %s", err.msg);
    g_stream = (cudaStream_t)infvsr_cuda_backend_stream(g_be);
    printf("device: %s, median of %d calls\n", infvsr_backend_name(g_be), g_iters);
    printf("| %-26s | %-30s | %9s | %8s | %8s | %5s |\n", "op", "shape", "ms", "TFLOP/s", "cuBLASLt", "ratio");
    if (all || strcmp(family, "gemm") == 0) {
        bench_gemm(10800, 1536, 1536, "linear bf16 (qkvo)");
        bench_gemm(10800, 1536, 8960, "linear bf16 (ffn up)");
        bench_gemm(10800, 8960, 1536, "linear bf16 (ffn down)");
    }
    if (all || strcmp(family, "attention") == 0) {
        infvsr_cuda_backend_set_attention_kernel(g_be, INFVSR_CUDA_ATTN_MMA);
        bench_attention(10800, 10800, 10800, 12, 128, INFVSR_TYPE_BF16, "attn bf16 mma");
        infvsr_cuda_backend_set_attention_kernel(g_be, INFVSR_CUDA_ATTN_WMMA);
        bench_attention(10800, 10800, 10800, 12, 128, INFVSR_TYPE_BF16, "attn bf16 wmma");
        infvsr_cuda_backend_set_attention_kernel(g_be, INFVSR_CUDA_ATTN_AUTO);
        bench_attention(14400, 14400, 0, 1, 384, INFVSR_TYPE_BF16, "attn bf16 D384");
        bench_attention(2048, 2048, 0, 1, 384, INFVSR_TYPE_F32, "attn f32 D384");
    }
    if (all || strcmp(family, "conv") == 0) bench_convs();
    struct infvsr_cuda_pool_stats ps;
    infvsr_cuda_backend_pool_stats(g_be, &ps);
    printf("pool: peak %.1f MiB, reserved %.1f MiB, %llu cudaMalloc calls\n", ps.bytes_peak / 1048576.0,
           ps.bytes_reserved / 1048576.0, (unsigned long long)ps.n_device_mallocs);
    infvsr_backend_free(g_be);
    return 0;
}
