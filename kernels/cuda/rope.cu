/* Complex RoPE: x [N, H*D] (D even), freqs [N, D/2, 2] F64 (cos, sin) on the device.
 * For token n, head h, pair p: (x0, x1) -> (x0 cos - x1 sin, x0 sin + x1 cos), evaluated
 * in float64 as the reference (MODEL-SPEC 4.8), rounded once into y's dtype.
 *
 * Thread/block split: one thread per (n, h, p) pair, grid-stride, 256 threads per block.
 * Consecutive threads take consecutive pairs of one token, so x/y accesses are
 * coalesced and the 16-byte (cos, sin) loads of a token are shared through L1 by its
 * H heads. In place is safe: a thread reads its pair before writing it. fp64 throughput
 * is no concern at these sizes (10800 x 768 pairs per call). */
#include "cuda_common.cuh"

__global__ void k_rope(const void * x, int xd, const double * f, void * y, int yd, int64_t N, int H,
                       int64_t half_d) {
    const int64_t pairs_per_tok = (int64_t)H * half_d;
    const int64_t total         = N * pairs_per_tok;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t n = i / pairs_per_tok;
        const int64_t r = i % pairs_per_tok;       /* h * half_d + p */
        const int64_t p = r % half_d;
        const double  c = f[(n * half_d + p) * 2 + 0];
        const double  s = f[(n * half_d + p) * 2 + 1];
        const int64_t e = 2 * i;                   /* element of x0 = n*H*D + h*D + 2p */
        const double  x0 = cu_load(x, xd, e), x1 = cu_load(x, xd, e + 1);
        cu_store(y, yd, e, (float)(x0 * c - x1 * s));
        cu_store(y, yd, e + 1, (float)(x0 * s + x1 * c));
    }
}

enum infvsr_status cu_rope(struct infvsr_backend * be, const struct infvsr_tensor * x,
                           const struct infvsr_tensor * freqs, int n_heads, struct infvsr_tensor * y,
                           struct infvsr_err * err) {
    struct cuda_ctx * c = cu_ctx(be);
    CU_ENTER(c, err);
    enum infvsr_status st;
    if ((st = cu_check_tensor(x, "rope", "x", false, err)) != INFVSR_OK) return st;
    if ((st = cu_check_tensor(y, "rope", "y", false, err)) != INFVSR_OK) return st;
    if ((st = cu_check_same(x, y, "rope", err)) != INFVSR_OK) return st;
    if (!freqs || freqs->mem != INFVSR_MEM_DEVICE || !freqs->data || freqs->dtype != INFVSR_TYPE_F64)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "rope: freqs must be an allocated F64 device tensor");
    if (n_heads <= 0 || infvsr_tensor_numel(x) == 0)
        return n_heads <= 0 ? infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "rope: n_heads %d", n_heads) : INFVSR_OK;
    const int64_t HD = cu_last_dim(x);
    const int64_t N  = infvsr_tensor_numel(x) / HD;
    if (HD % n_heads != 0 || (HD / n_heads) % 2 != 0)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "rope: last dim %lld is not n_heads (%d) x an even "
                      "head dim", (long long)HD, n_heads);
    const int64_t half_d = HD / n_heads / 2;
    if (freqs->ndim != 3 || freqs->shape[0] != N || freqs->shape[1] != half_d || freqs->shape[2] != 2)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "rope: freqs must be [%lld, %lld, 2]", (long long)N,
                      (long long)half_d);
    const int64_t total = N * n_heads * half_d;
    CU_LAUNCH(cu_grid_for(total, 256), 256, 0, c->stream, k_rope)(x->data, x->dtype,
                                                           (const double *)freqs->data, y->data,
                                                           y->dtype, N, n_heads, half_d);
    CU_CHECK_LAUNCH(c, err);
    return INFVSR_OK;
}
