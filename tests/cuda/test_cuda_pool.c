/* The CUDA memory pool in a worker's steady state: after one warm-up iteration, the same
 * sequence of allocations and ops (linear with a converted f32 weight, conv3d with its
 * im2col chunk, resize with its tap tables and f32 intermediate) calls cudaMalloc no
 * more, and builds no new cuBLASLt plan or resize tap table (the plan caches only hit). Op parity is the op-case table's job (tests/ops: test_backend_ops -b cuda).
 *
 * Without a usable GPU (CI), prints "SKIP: <reason>" and exits 77 (ctest SKIP_RETURN_CODE). */
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "cuda_backend.h"
#include "ops.h"

static struct infvsr_backend * g_gpu;

/* Allocates t on the GPU and fills it with uniform values (NULL range: zeros stay). */
static void put(struct infvsr_tensor * t, const char * name, enum infvsr_dtype dt, int ndim, const int64_t * shape,
                bool fill, uint64_t seed) {
    infvsr_tensor_setup(t, name, dt, ndim, shape);
    CHECK(infvsr_backend_tensor_alloc(g_gpu, t, NULL) == INFVSR_OK);
    if (!fill) return;
    size_t n = (size_t)infvsr_tensor_numel(t);
    float * v = malloc(n * sizeof *v);
    void * b = malloc(infvsr_tensor_nbytes(t));
    test_fill_uniform(v, n, -0.1f, 0.1f, seed);
    infvsr_convert_from_f32(b, dt, v, n);
    CHECK(infvsr_backend_tensor_set(g_gpu, t, b, 0, infvsr_tensor_nbytes(t), NULL) == INFVSR_OK);
    free(b);
    free(v);
}

static void test_pool_steady_state(void) {
    struct infvsr_cuda_pool_stats s0, s1;
    struct infvsr_cuda_plan_stats p0, p1;
    for (int it = 0; it < 3; it++) {
        if (it == 1) {
            infvsr_cuda_backend_pool_stats(g_gpu, &s0);
            infvsr_cuda_backend_plan_stats(g_gpu, &p0);
        }
        struct infvsr_tensor x, w, y, cx, cw, cy, ry;
        struct infvsr_err err = { 0 };
        put(&x, "x", INFVSR_TYPE_BF16, 2, (const int64_t[]){ 256, 384 }, true, 1);
        put(&w, "w", INFVSR_TYPE_F32, 2, (const int64_t[]){ 512, 384 }, true, 2); /* the converted-weight temporary */
        put(&y, "y", INFVSR_TYPE_BF16, 2, (const int64_t[]){ 256, 512 }, false, 0);
        CHECK(infvsr_op_linear(g_gpu, &x, &w, NULL, INFVSR_UNARY_GELU_ERF, &y, &err) == INFVSR_OK);
        put(&cx, "cx", INFVSR_TYPE_BF16, 4, (const int64_t[]){ 8, 3, 16, 16 }, false, 0);
        put(&cw, "cw", INFVSR_TYPE_F32, 5, (const int64_t[]){ 8, 8, 3, 3, 3 }, false, 0);
        put(&cy, "cy", INFVSR_TYPE_BF16, 4, (const int64_t[]){ 8, 1, 16, 16 }, false, 0);
        put(&ry, "ry", INFVSR_TYPE_BF16, 4, (const int64_t[]){ 8, 3, 40, 24 }, false, 0);
        struct infvsr_conv3d_args ca = { &cx, &cw, NULL, 1, 1, 1, 1, 1, 1, 1, &cy };
        CHECK(infvsr_op_conv3d(g_gpu, &ca, &err) == INFVSR_OK);
        CHECK(infvsr_op_resize(g_gpu, INFVSR_RESIZE_BICUBIC_AA, &cx, &ry, &err) == INFVSR_OK);
        CHECK(infvsr_backend_synchronize(g_gpu, NULL) == INFVSR_OK);
        struct infvsr_tensor * all[] = { &cx, &cw, &cy, &ry, &x, &w, &y };
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) infvsr_backend_tensor_free(g_gpu, all[i]);
    }
    infvsr_cuda_backend_pool_stats(g_gpu, &s1);
    printf("pool: %llu cudaMalloc calls in total, %llu after warm-up; in use %zu B, peak %zu B, reserved %zu B\n",
           (unsigned long long)s1.n_device_mallocs, (unsigned long long)(s1.n_device_mallocs - s0.n_device_mallocs),
           s1.bytes_in_use, s1.bytes_peak, s1.bytes_reserved);
    CHECK_EQ_INT(s1.n_device_mallocs, s0.n_device_mallocs);
    infvsr_cuda_backend_plan_stats(g_gpu, &p1);
    printf("plans: %zu GEMM plans (%llu misses, %llu after warm-up; %llu hits), %zu resize tables (%llu misses, "
           "%llu after warm-up; %llu hits)\n", p1.gemm_plans, (unsigned long long)p1.gemm_misses,
           (unsigned long long)(p1.gemm_misses - p0.gemm_misses), (unsigned long long)p1.gemm_hits, p1.resize_tables,
           (unsigned long long)p1.resize_misses, (unsigned long long)(p1.resize_misses - p0.resize_misses),
           (unsigned long long)p1.resize_hits);
    CHECK_EQ_INT(p1.gemm_misses, p0.gemm_misses);
    CHECK(p1.gemm_hits > p0.gemm_hits);
    CHECK_EQ_INT(p1.resize_misses, p0.resize_misses);
    CHECK_EQ_INT(p1.resize_hits - p0.resize_hits, 4); /* two calls after warm-up, two axes each */
    CHECK(s1.n_allocs > s0.n_allocs);
    CHECK(infvsr_cuda_backend_healthy(g_gpu));
}

static const struct test_case tests[] = {
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
    int rc = test_main(argc, argv, tests);
    infvsr_backend_free(g_gpu);
    return rc;
}
