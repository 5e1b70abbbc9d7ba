/* Elementwise ops (unary, add, add_gated, affine_clamp, dtype conversion, bias+act)
 * and the row softmax.
 *
 * Thread/block split: elementwise kernels are grid-stride loops, 256 threads per block,
 * one element per thread per iteration (64-bit indices: VAE tensors exceed 2^31 bytes).
 * Dtypes are runtime arguments (warp-uniform branches in cu_load/cu_store) instead of
 * template parameters, to keep the instantiation count and CI compile time small; the
 * kernels are memory-bound, the branch costs nothing measurable next to the loads.
 * Softmax: one warp per row, three passes over the row (max, sum of exp, write), fp32. */
#include "cuda_common.cuh"

#define EW_THREADS 256

__global__ void k_unary(int op, const void * x, int xd, void * y, int yd, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        cu_store(y, yd, i, cu_act(op, cu_load(x, xd, i)));
}

__global__ void k_add(const void * a, int ad, const void * b, int bd, void * y, int yd, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        cu_store(y, yd, i, cu_load(a, ad, i) + cu_load(b, bd, i));
}

/* gate == nullptr means gate = 1. */
__global__ void k_add_gated(const void * x, int xd, const void * g, int gd, const void * d, int dd,
                            void * y, int yd, int64_t n, int64_t cols) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float gv = g ? cu_load(g, gd, i % cols) : 1.0f;
        cu_store(y, yd, i, cu_load(x, xd, i) + gv * cu_load(d, dd, i));
    }
}

__global__ void k_affine_clamp(const void * x, int xd, float alpha, float beta, float lo, float hi,
                               void * y, int yd, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float v = cu_load(x, xd, i) * alpha + beta;
        v = fminf(fmaxf(v, lo), hi);
        cu_store(y, yd, i, v);
    }
}

__global__ void k_convert(const void * x, int xd, void * y, int yd, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        cu_store(y, yd, i, cu_load(x, xd, i));
}

__global__ void k_bias_act(void * y, int yd, const void * b, int bd, int64_t rows, int64_t cols,
                           int per_row, int act) {
    const int64_t n = rows * cols;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float v = cu_load(y, yd, i);
        if (b) v += cu_load(b, bd, per_row ? i / cols : i % cols);
        cu_store(y, yd, i, cu_act(act, v));
    }
}

__global__ void k_softmax(const void * x, int xd, void * y, int yd, int64_t rows, int64_t cols) {
    const int     lane = threadIdx.x & 31;
    const int64_t row  = blockIdx.x * (int64_t)(blockDim.x / 32) + threadIdx.x / 32;
    if (row >= rows) return;
    const int64_t base = row * cols;
    float m = -INFINITY;
    for (int64_t j = lane; j < cols; j += 32) m = fmaxf(m, cu_load(x, xd, base + j));
    for (int o = 16; o; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    float s = 0.0f;
    for (int64_t j = lane; j < cols; j += 32) s += expf(cu_load(x, xd, base + j) - m);
    for (int o = 16; o; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    const float inv = 1.0f / s;
    for (int64_t j = lane; j < cols; j += 32)
        cu_store(y, yd, base + j, expf(cu_load(x, xd, base + j) - m) * inv);
}

/* ---- host entry points ---- */

enum infvsr_status cu_apply_unary(struct cuda_ctx * c, enum infvsr_unary_op op, const void * x,
                                  int x_dtype, void * y, int y_dtype, int64_t n,
                                  struct infvsr_err * err) {
    if (n == 0) return INFVSR_OK;
    k_unary<<<cu_grid_for(n, EW_THREADS), EW_THREADS, 0, c->stream>>>((int)op, x, x_dtype, y,
                                                                       y_dtype, n);
    CU_CHECK_LAUNCH(c, err);
    return INFVSR_OK;
}

enum infvsr_status cu_convert(struct cuda_ctx * c, const void * src, int src_dtype, void * dst,
                              int dst_dtype, int64_t n, struct infvsr_err * err) {
    if (n == 0) return INFVSR_OK;
    k_convert<<<cu_grid_for(n, EW_THREADS), EW_THREADS, 0, c->stream>>>(src, src_dtype, dst,
                                                                         dst_dtype, n);
    CU_CHECK_LAUNCH(c, err);
    return INFVSR_OK;
}

enum infvsr_status cu_bias_act(struct cuda_ctx * c, void * y, int y_dtype, const void * b,
                               int b_dtype, int64_t rows, int64_t cols, bool per_row,
                               enum infvsr_unary_op act, struct infvsr_err * err) {
    int64_t n = rows * cols;
    if (n == 0 || (!b && act >= INFVSR_UNARY_COUNT)) return INFVSR_OK;
    k_bias_act<<<cu_grid_for(n, EW_THREADS), EW_THREADS, 0, c->stream>>>(
        y, y_dtype, b, b_dtype, rows, cols, per_row ? 1 : 0, (int)act);
    CU_CHECK_LAUNCH(c, err);
    return INFVSR_OK;
}

enum infvsr_status cu_unary(struct infvsr_backend * be, enum infvsr_unary_op op,
                            const struct infvsr_tensor * x, struct infvsr_tensor * y,
                            struct infvsr_err * err) {
    struct cuda_ctx * c = cu_ctx(be);
    CU_ENTER(c, err);
    INFVSR_TRY(cu_check_tensor(x, "unary", "x", false, err));
    INFVSR_TRY(cu_check_tensor(y, "unary", "y", false, err));
    INFVSR_TRY(cu_check_same(x, y, "unary", err));
    if ((int)op < 0 || op >= INFVSR_UNARY_COUNT)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "unary: unknown op %d", (int)op);
    return cu_apply_unary(c, op, x->data, x->dtype, y->data, y->dtype, infvsr_tensor_numel(x), err);
}

enum infvsr_status cu_add(struct infvsr_backend * be, const struct infvsr_tensor * a,
                          const struct infvsr_tensor * b, struct infvsr_tensor * y,
                          struct infvsr_err * err) {
    struct cuda_ctx * c = cu_ctx(be);
    CU_ENTER(c, err);
    INFVSR_TRY(cu_check_tensor(a, "add", "a", false, err));
    INFVSR_TRY(cu_check_tensor(b, "add", "b", false, err));
    INFVSR_TRY(cu_check_tensor(y, "add", "y", false, err));
    INFVSR_TRY(cu_check_same(a, y, "add", err));
    INFVSR_TRY(cu_check_same(b, y, "add", err));
    int64_t n = infvsr_tensor_numel(y);
    if (n == 0) return INFVSR_OK;
    k_add<<<cu_grid_for(n, EW_THREADS), EW_THREADS, 0, c->stream>>>(a->data, a->dtype, b->data,
                                                                     b->dtype, y->data, y->dtype, n);
    CU_CHECK_LAUNCH(c, err);
    return INFVSR_OK;
}

enum infvsr_status cu_add_gated(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                const struct infvsr_tensor * gate, const struct infvsr_tensor * d,
                                struct infvsr_tensor * y, struct infvsr_err * err) {
    struct cuda_ctx * c = cu_ctx(be);
    CU_ENTER(c, err);
    INFVSR_TRY(cu_check_tensor(x, "add_gated", "x", false, err));
    INFVSR_TRY(cu_check_tensor(d, "add_gated", "d", false, err));
    INFVSR_TRY(cu_check_tensor(y, "add_gated", "y", false, err));
    INFVSR_TRY(cu_check_same(x, y, "add_gated", err));
    INFVSR_TRY(cu_check_same(d, y, "add_gated", err));
    if (d->data == y->data && d->data != x->data) /* as the CPU backend: in place on x only */
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "add_gated: y ('%s') may alias x only, not d", y->name);
    int64_t cols = cu_last_dim(x);
    if (gate) {
        INFVSR_TRY(cu_check_tensor(gate, "add_gated", "gate", true, err));
        if (infvsr_tensor_numel(gate) != cols)
            return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "add_gated: gate has %lld elements, x rows "
                          "have %lld", (long long)infvsr_tensor_numel(gate), (long long)cols);
    }
    int64_t n = infvsr_tensor_numel(y);
    if (n == 0) return INFVSR_OK;
    k_add_gated<<<cu_grid_for(n, EW_THREADS), EW_THREADS, 0, c->stream>>>(
        x->data, x->dtype, gate ? gate->data : nullptr, gate ? gate->dtype : 0, d->data, d->dtype,
        y->data, y->dtype, n, cols);
    CU_CHECK_LAUNCH(c, err);
    return INFVSR_OK;
}

enum infvsr_status cu_affine_clamp(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                   float alpha, float beta, float lo, float hi,
                                   struct infvsr_tensor * y, struct infvsr_err * err) {
    struct cuda_ctx * c = cu_ctx(be);
    CU_ENTER(c, err);
    INFVSR_TRY(cu_check_tensor(x, "affine_clamp", "x", false, err));
    INFVSR_TRY(cu_check_tensor(y, "affine_clamp", "y", false, err));
    INFVSR_TRY(cu_check_same(x, y, "affine_clamp", err));
    if (!(lo <= hi)) /* NaN or an empty range, refused as by the CPU backend */
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "affine_clamp: bad clamp range [%g, %g]", (double)lo,
                              (double)hi);
    int64_t n = infvsr_tensor_numel(y);
    if (n == 0) return INFVSR_OK;
    k_affine_clamp<<<cu_grid_for(n, EW_THREADS), EW_THREADS, 0, c->stream>>>(
        x->data, x->dtype, alpha, beta, lo, hi, y->data, y->dtype, n);
    CU_CHECK_LAUNCH(c, err);
    return INFVSR_OK;
}

enum infvsr_status cu_softmax(struct infvsr_backend * be, const struct infvsr_tensor * x,
                              struct infvsr_tensor * y, struct infvsr_err * err) {
    struct cuda_ctx * c = cu_ctx(be);
    CU_ENTER(c, err);
    INFVSR_TRY(cu_check_tensor(x, "softmax", "x", false, err));
    INFVSR_TRY(cu_check_tensor(y, "softmax", "y", false, err));
    INFVSR_TRY(cu_check_same(x, y, "softmax", err));
    int64_t cols = cu_last_dim(x);
    if (cols == 0 || infvsr_tensor_numel(x) == 0) return INFVSR_OK;
    int64_t rows = infvsr_tensor_numel(x) / cols;
    const int warps = 8;
    int64_t blocks = (rows + warps - 1) / warps;
    if (blocks > 0x7fffffffLL)
        return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "softmax: %lld rows is too many", (long long)rows);
    k_softmax<<<(unsigned)blocks, warps * 32, 0, c->stream>>>(x->data, x->dtype, y->data, y->dtype,
                                                              rows, cols);
    CU_CHECK_LAUNCH(c, err);
    return INFVSR_OK;
}
