/* Resampling (kernels/ops.h resize): nearest-exact, and PyTorch's antialiased separable
 * bilinear / bicubic (MODEL-SPEC section 3), x [.., H, W] -> y [.., Ho, Wo].
 *
 * The per-axis tap tables (first tap, tap count, normalised weights) come from the CPU
 * backend's own table function (kernels/cpu/resize_table.h, torch's f32 formulas of
 * MODEL-SPEC 3) and are uploaded into a pooled temporary, so both backends use the same
 * weights bit for bit. The device then does what the CPU path does: a horizontal pass
 * into an f32 temporary [planes, H, Wo], then a vertical pass, each output a sequential
 * f32 sum over its taps from tap 0, with explicit _rn intrinsics so nvcc does not fuse
 * multiply-adds the CPU code does not fuse (outputs then match to the last bit, up to
 * the order-independent cases).
 *
 * Thread split: one thread per output element of each pass (grid-stride), consecutive
 * threads along the output row, so writes are coalesced and the taps of neighbouring
 * outputs overlap in L1. */
#include "cuda_common.cuh"

#include <string.h>
#include <vector>

extern "C" {
#include "cpu/resize_table.h" /* the CPU backend's tap tables: identical weights by construction */
}

namespace {

struct axis_table {
    std::vector<int32_t> first;   /* per output index */
    std::vector<int32_t> ntaps;
    std::vector<float>   w;       /* out * max_taps  */
    int                  max_taps = 0;
};

void build_table(axis_table & t, enum infvsr_resize_mode mode, int64_t in, int64_t out) {
    t.max_taps = infvsr_cpu_resize_max_taps(mode, in, out);
    t.first.resize(out);
    t.ntaps.resize(out);
    t.w.assign((size_t)out * t.max_taps, 0.0f);
    for (int64_t i = 0; i < out; i++) {
        int64_t xmin = 0;
        t.ntaps[i] = infvsr_cpu_resize_taps(mode, in, out, i, &xmin, t.w.data() + i * t.max_taps);
        t.first[i] = (int32_t)xmin;
    }
}

}  // namespace

/* Pass along the last axis: src [rows, in] -> dst [rows, out]. */
__global__ void k_resize_h(const void * x, int xd, float * tmp, int64_t rows, int64_t in, int64_t out,
                           const int32_t * first, const int32_t * ntaps, const float * w, int maxt) {
    const int64_t n = rows * out;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / out, o = i % out;
        const int64_t base = r * in + first[o];
        const float * wo = w + o * maxt;
        float acc = 0.0f;
        for (int j = 0; j < ntaps[o]; j++) acc = __fadd_rn(acc, __fmul_rn(cu_load(x, xd, base + j), wo[j]));
        tmp[i] = acc;
    }
}

/* Pass along the second-to-last axis: tmp [planes, in, cols] -> y [planes, out, cols]. */
__global__ void k_resize_v(const float * tmp, void * y, int yd, int64_t planes, int64_t in,
                           int64_t out, int64_t cols, const int32_t * first, const int32_t * ntaps,
                           const float * w, int maxt) {
    const int64_t n = planes * out * cols;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t c = i % cols, o = (i / cols) % out, pl = i / (cols * out);
        const float * src = tmp + (pl * in + first[o]) * cols + c;
        const float * wo = w + o * maxt;
        float acc = 0.0f;
        for (int j = 0; j < ntaps[o]; j++) acc = __fadd_rn(acc, __fmul_rn(src[(int64_t)j * cols], wo[j]));
        cu_store(y, yd, i, acc);
    }
}

__global__ void k_resize_nearest(const void * x, int xd, void * y, int yd, int64_t planes, int64_t h,
                                 int64_t w, int64_t ho, int64_t wo, const int32_t * iy,
                                 const int32_t * ix) {
    const int64_t n = planes * ho * wo;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t c = i % wo, r = (i / wo) % ho, pl = i / (wo * ho);
        cu_store(y, yd, i, cu_load(x, xd, (pl * h + iy[r]) * w + ix[c]));
    }
}

namespace {

/* Packs first/ntaps/w of both axes into one pooled device block. */
struct dev_tables {
    cuda_ctx * c;
    void *     blk = nullptr;
    const int32_t * first[2] = { nullptr, nullptr };
    const int32_t * ntaps[2] = { nullptr, nullptr };
    const float *   w[2]     = { nullptr, nullptr };
    explicit dev_tables(cuda_ctx * ctx) : c(ctx) {}
    ~dev_tables() { if (blk) cu_scratch_free(c, blk); }

    enum infvsr_status upload(const axis_table * t, infvsr_err * err) {
        std::vector<unsigned char> host;
        size_t off[2][3];
        for (int a = 0; a < 2; a++) {
            off[a][0] = host.size();
            host.resize(host.size() + t[a].first.size() * 4);
            memcpy(host.data() + off[a][0], t[a].first.data(), t[a].first.size() * 4);
            off[a][1] = host.size();
            host.resize(host.size() + t[a].ntaps.size() * 4);
            memcpy(host.data() + off[a][1], t[a].ntaps.data(), t[a].ntaps.size() * 4);
            off[a][2] = host.size();
            host.resize(host.size() + t[a].w.size() * 4);
            if (!t[a].w.empty()) memcpy(host.data() + off[a][2], t[a].w.data(), t[a].w.size() * 4);
        }
        INFVSR_TRY(cu_scratch(c, host.size(), &blk, err));
        /* Pageable source: the copy is staged before cudaMemcpyAsync returns, so `host`
         * may go out of scope right after. */
        CU_CHECK(c, err, cudaMemcpyAsync(blk, host.data(), host.size(), cudaMemcpyHostToDevice, c->stream));
        CU_CHECK(c, err, cudaStreamSynchronize(c->stream));
        for (int a = 0; a < 2; a++) {
            first[a] = (const int32_t *)((char *)blk + off[a][0]);
            ntaps[a] = (const int32_t *)((char *)blk + off[a][1]);
            w[a]     = (const float *)((char *)blk + off[a][2]);
        }
        return INFVSR_OK;
    }
};

struct tmp_block {
    cuda_ctx * c;
    void *     p = nullptr;
    explicit tmp_block(cuda_ctx * ctx) : c(ctx) {}
    ~tmp_block() { if (p) cu_scratch_free(c, p); }
};

}  // namespace

enum infvsr_status cu_resize(struct infvsr_backend * be, enum infvsr_resize_mode mode,
                             const struct infvsr_tensor * x, struct infvsr_tensor * y,
                             struct infvsr_err * err) {
    cuda_ctx * c = cu_ctx(be);
    CU_ENTER(c, err);
    INFVSR_TRY(cu_check_tensor(x, "resize", "x", false, err));
    INFVSR_TRY(cu_check_tensor(y, "resize", "y", false, err));
    if (x->ndim < 2 || y->ndim != x->ndim)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "resize: x and y need the same rank >= 2 (%d, %d)",
                      x->ndim, y->ndim);
    for (int i = 0; i < x->ndim - 2; i++)
        if (x->shape[i] != y->shape[i])
            return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "resize: leading dim %d differs (%lld vs %lld)",
                          i, (long long)x->shape[i], (long long)y->shape[i]);
    if ((int)mode < 0 || mode >= INFVSR_RESIZE_COUNT)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "resize: unknown mode %d", (int)mode);
    if (x->data == y->data)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "resize: y must not alias x");
    const int64_t H = x->shape[x->ndim - 2], W = x->shape[x->ndim - 1];
    const int64_t Ho = y->shape[y->ndim - 2], Wo = y->shape[y->ndim - 1];
    if (infvsr_tensor_numel(y) == 0) return INFVSR_OK;
    if (H <= 0 || W <= 0)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "resize: empty input plane");
    if (H > INT32_MAX || W > INT32_MAX)
        return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "resize: planes beyond 2^31 pixels per axis");
    const int64_t planes = infvsr_tensor_numel(x) / (H * W);

    axis_table tab[2]; /* 0 = vertical (H), 1 = horizontal (W) */
    dev_tables dt(c);
    try {
        build_table(tab[0], mode, H, Ho);
        build_table(tab[1], mode, W, Wo);
        INFVSR_TRY(dt.upload(tab, err));
    } catch (...) { /* std::vector's bad_alloc must not cross into C */
        return infvsr_err_set(err, INFVSR_ERR_NOMEM, "resize: out of host memory for the tap tables");
    }
    if (mode == INFVSR_RESIZE_NEAREST) {
        const int64_t n = planes * Ho * Wo;
        CU_LAUNCH(cu_grid_for(n, 256), 256, 0, c->stream, k_resize_nearest)(
            x->data, x->dtype, y->data, y->dtype, planes, H, W, Ho, Wo, dt.first[0], dt.first[1]);
        CU_CHECK_LAUNCH(c, err);
        return INFVSR_OK;
    }
    tmp_block tmp(c);
    INFVSR_TRY(cu_scratch(c, (size_t)(planes * H * Wo) * sizeof(float), &tmp.p, err));
    const int64_t nh = planes * H * Wo;
    CU_LAUNCH(cu_grid_for(nh, 256), 256, 0, c->stream, k_resize_h)(x->data, x->dtype, (float *)tmp.p,
                                                            planes * H, W, Wo, dt.first[1],
                                                            dt.ntaps[1], dt.w[1], tab[1].max_taps);
    CU_CHECK_LAUNCH(c, err);
    const int64_t nv = planes * Ho * Wo;
    CU_LAUNCH(cu_grid_for(nv, 256), 256, 0, c->stream, k_resize_v)((const float *)tmp.p, y->data, y->dtype,
                                                            planes, H, Ho, Wo, dt.first[0],
                                                            dt.ntaps[0], dt.w[0], tab[0].max_taps);
    CU_CHECK_LAUNCH(c, err);
    return INFVSR_OK;
}
