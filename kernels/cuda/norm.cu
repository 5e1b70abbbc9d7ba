/* Normalisations: layer_norm, rms_norm (row-wise over the last dim), channel_rms_norm
 * (over the leading channel dim of the Wan VAE), and AdaLN modulate.
 *
 * Thread/block split:
 *  - layer_norm / rms_norm: one warp per row, 8 warps (256 threads) per block. Each lane
 *    strides over the row; fp32 partial sums are combined with xor-shuffles. layer_norm
 *    is two-pass (mean, then sum of squared deviations), as torch: no E[x^2]-E[x]^2
 *    cancellation. The row is read 2-3 times; rows are <= a few KiB and stay in L1/L2.
 *    In place is safe: each lane writes only the elements it read in the final pass.
 *  - channel_rms_norm: one thread per spatial position s, looping over channels c, so a
 *    warp reads 32 consecutive s of one channel (coalesced).
 *  - modulate: grid-stride elementwise.
 * Everything accumulates in fp32 and rounds once into y's dtype. */
#include "cuda_common.cuh"

#define ROW_WARPS 8

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__global__ void k_layer_norm(const void * x, int xd, const void * w, int wd, const void * b, int bd,
                             float eps, void * y, int yd, int64_t rows, int64_t cols) {
    const int     lane = threadIdx.x & 31;
    const int64_t row  = blockIdx.x * (int64_t)ROW_WARPS + threadIdx.x / 32;
    if (row >= rows) return;
    const int64_t base = row * cols;
    float s = 0.0f;
    for (int64_t j = lane; j < cols; j += 32) s += cu_load(x, xd, base + j);
    const float mean = warp_sum(s) / (float)cols;
    float v = 0.0f;
    for (int64_t j = lane; j < cols; j += 32) {
        float d = cu_load(x, xd, base + j) - mean;
        v += d * d;
    }
    const float rstd = 1.0f / sqrtf(warp_sum(v) / (float)cols + eps);
    for (int64_t j = lane; j < cols; j += 32) {
        float o = (cu_load(x, xd, base + j) - mean) * rstd;
        if (w) o *= cu_load(w, wd, j);
        if (b) o += cu_load(b, bd, j);
        cu_store(y, yd, base + j, o);
    }
}

__global__ void k_rms_norm(const void * x, int xd, const void * w, int wd, float eps, void * y,
                           int yd, int64_t rows, int64_t cols) {
    const int     lane = threadIdx.x & 31;
    const int64_t row  = blockIdx.x * (int64_t)ROW_WARPS + threadIdx.x / 32;
    if (row >= rows) return;
    const int64_t base = row * cols;
    float s = 0.0f;
    for (int64_t j = lane; j < cols; j += 32) {
        float t = cu_load(x, xd, base + j);
        s += t * t;
    }
    const float r = 1.0f / sqrtf(warp_sum(s) / (float)cols + eps);
    for (int64_t j = lane; j < cols; j += 32) {
        float o = cu_load(x, xd, base + j) * r;
        if (w) o *= cu_load(w, wd, j);
        cu_store(y, yd, base + j, o);
    }
}

__global__ void k_channel_rms_norm(const void * x, int xd, const void * g, int gd, void * y, int yd,
                                   int64_t C, int64_t S) {
    const float sqrt_c = sqrtf((float)C);
    for (int64_t s = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; s < S;
         s += (int64_t)gridDim.x * blockDim.x) {
        float acc = 0.0f;
        for (int64_t c = 0; c < C; c++) {
            float t = cu_load(x, xd, c * S + s);
            acc += t * t;
        }
        const float inv = sqrt_c / fmaxf(sqrtf(acc), 1e-12f);
        for (int64_t c = 0; c < C; c++)
            cu_store(y, yd, c * S + s, cu_load(x, xd, c * S + s) * inv * cu_load(g, gd, c));
    }
}

__global__ void k_modulate(const void * x, int xd, const void * sc, int scd, const void * sh, int shd,
                           void * y, int yd, int64_t n, int64_t cols) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t c = i % cols;
        cu_store(y, yd, i, cu_load(x, xd, i) * (1.0f + cu_load(sc, scd, c)) + cu_load(sh, shd, c));
    }
}

static enum infvsr_status check_vec(const struct infvsr_tensor * v, int64_t n, const char * op,
                                    const char * role, struct infvsr_err * err) {
    INFVSR_TRY(cu_check_tensor(v, op, role, true, err));
    if (infvsr_tensor_numel(v) != n)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "%s: %s ('%s') has %lld elements, expected %lld",
                      op, role, v->name, (long long)infvsr_tensor_numel(v), (long long)n);
    return INFVSR_OK;
}

static enum infvsr_status row_grid(int64_t rows, unsigned * blocks, const char * op,
                                   struct infvsr_err * err) {
    int64_t b = (rows + ROW_WARPS - 1) / ROW_WARPS;
    if (b > 0x7fffffffLL)
        return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "%s: %lld rows is too many", op, (long long)rows);
    *blocks = (unsigned)b;
    return INFVSR_OK;
}

enum infvsr_status cu_layer_norm(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                 const struct infvsr_tensor * w, const struct infvsr_tensor * b,
                                 float eps, struct infvsr_tensor * y, struct infvsr_err * err) {
    struct cuda_ctx * c = cu_ctx(be);
    CU_ENTER(c, err);
    INFVSR_TRY(cu_check_tensor(x, "layer_norm", "x", false, err));
    INFVSR_TRY(cu_check_tensor(y, "layer_norm", "y", false, err));
    INFVSR_TRY(cu_check_same(x, y, "layer_norm", err));
    const int64_t cols = cu_last_dim(x);
    if (w) INFVSR_TRY(check_vec(w, cols, "layer_norm", "w", err));
    if (b) INFVSR_TRY(check_vec(b, cols, "layer_norm", "b", err));
    if (cols == 0 || infvsr_tensor_numel(x) == 0) return INFVSR_OK;
    const int64_t rows = infvsr_tensor_numel(x) / cols;
    unsigned blocks = 0;
    INFVSR_TRY(row_grid(rows, &blocks, "layer_norm", err));
    CU_LAUNCH(blocks, ROW_WARPS * 32, 0, c->stream, k_layer_norm)(
        x->data, x->dtype, w ? w->data : nullptr, w ? w->dtype : 0, b ? b->data : nullptr,
        b ? b->dtype : 0, eps, y->data, y->dtype, rows, cols);
    CU_CHECK_LAUNCH(c, err);
    return INFVSR_OK;
}

enum infvsr_status cu_rms_norm(struct infvsr_backend * be, const struct infvsr_tensor * x,
                               const struct infvsr_tensor * w, float eps, struct infvsr_tensor * y,
                               struct infvsr_err * err) {
    struct cuda_ctx * c = cu_ctx(be);
    CU_ENTER(c, err);
    INFVSR_TRY(cu_check_tensor(x, "rms_norm", "x", false, err));
    INFVSR_TRY(cu_check_tensor(y, "rms_norm", "y", false, err));
    INFVSR_TRY(cu_check_same(x, y, "rms_norm", err));
    const int64_t cols = cu_last_dim(x);
    if (w) INFVSR_TRY(check_vec(w, cols, "rms_norm", "w", err));
    if (cols == 0 || infvsr_tensor_numel(x) == 0) return INFVSR_OK;
    const int64_t rows = infvsr_tensor_numel(x) / cols;
    unsigned blocks = 0;
    INFVSR_TRY(row_grid(rows, &blocks, "rms_norm", err));
    CU_LAUNCH(blocks, ROW_WARPS * 32, 0, c->stream, k_rms_norm)(x->data, x->dtype, w ? w->data : nullptr,
                                                         w ? w->dtype : 0, eps, y->data, y->dtype,
                                                         rows, cols);
    CU_CHECK_LAUNCH(c, err);
    return INFVSR_OK;
}

enum infvsr_status cu_channel_rms_norm(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                       const struct infvsr_tensor * gamma, struct infvsr_tensor * y,
                                       struct infvsr_err * err) {
    struct cuda_ctx * c = cu_ctx(be);
    CU_ENTER(c, err);
    INFVSR_TRY(cu_check_tensor(x, "channel_rms_norm", "x", false, err));
    INFVSR_TRY(cu_check_tensor(y, "channel_rms_norm", "y", false, err));
    INFVSR_TRY(cu_check_same(x, y, "channel_rms_norm", err));
    if (x->ndim < 1)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "channel_rms_norm: x must have a channel dim");
    const int64_t C = x->shape[0];
    INFVSR_TRY(check_vec(gamma, C, "channel_rms_norm", "gamma", err));
    if (C == 0 || infvsr_tensor_numel(x) == 0) return INFVSR_OK;
    const int64_t S = infvsr_tensor_numel(x) / C;
    CU_LAUNCH(cu_grid_for(S, 256), 256, 0, c->stream, k_channel_rms_norm)(
        x->data, x->dtype, gamma->data, gamma->dtype, y->data, y->dtype, C, S);
    CU_CHECK_LAUNCH(c, err);
    return INFVSR_OK;
}

enum infvsr_status cu_modulate(struct infvsr_backend * be, const struct infvsr_tensor * x,
                               const struct infvsr_tensor * scale, const struct infvsr_tensor * shift,
                               struct infvsr_tensor * y, struct infvsr_err * err) {
    struct cuda_ctx * c = cu_ctx(be);
    CU_ENTER(c, err);
    INFVSR_TRY(cu_check_tensor(x, "modulate", "x", false, err));
    INFVSR_TRY(cu_check_tensor(y, "modulate", "y", false, err));
    INFVSR_TRY(cu_check_same(x, y, "modulate", err));
    const int64_t cols = cu_last_dim(x);
    INFVSR_TRY(check_vec(scale, cols, "modulate", "scale", err));
    INFVSR_TRY(check_vec(shift, cols, "modulate", "shift", err));
    const int64_t n = infvsr_tensor_numel(x);
    if (n == 0) return INFVSR_OK;
    CU_LAUNCH(cu_grid_for(n, 256), 256, 0, c->stream, k_modulate)(x->data, x->dtype, scale->data,
                                                           scale->dtype, shift->data, shift->dtype,
                                                           y->data, y->dtype, n, cols);
    CU_CHECK_LAUNCH(c, err);
    return INFVSR_OK;
}
