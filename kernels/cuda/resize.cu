/* Resampling (kernels/ops.h resize): nearest-exact, and PyTorch's antialiased separable
 * bilinear / bicubic (MODEL-SPEC section 3), x [.., H, W] -> y [.., Ho, Wo].
 *
 * The per-axis tap tables (first tap, tap count, normalised weights) come from the CPU
 * backend's own table function (kernels/cpu/resize_table.h, torch's f32 formulas of
 * MODEL-SPEC 3), so both backends use the same weights bit for bit. They are built and
 * uploaded once per (mode, in, out) per backend and cached (axis_table_for below): the
 * steady state of a stream does no host table work and no host-to-device copy. The
 * device then does what the CPU path does: a horizontal pass
 * into an f32 temporary [planes, H, Wo], then a vertical pass, each output a sequential
 * f32 sum over its taps from tap 0, with explicit _rn intrinsics so nvcc does not fuse
 * multiply-adds the CPU code does not fuse (outputs then match to the last bit, up to
 * the order-independent cases).
 *
 * Thread split: one thread per output element of each pass (grid-stride), consecutive
 * threads along the output row, so writes are coalesced and the taps of neighbouring
 * outputs overlap in L1. */
#include "cuda_common.cuh"

#include <new>
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

/* One axis's tap table on the device, cached per backend under (mode, in, out): a stream
 * resizes every frame with the same sizes, so after the first call a resize costs a
 * lookup and two launches, no host table build and no host-to-device copy. */
struct axis_plan {
    void *          blk = nullptr; /* pool block: first | ntaps | w */
    const int32_t * first = nullptr;
    const int32_t * ntaps = nullptr;
    const float *   w = nullptr;
    int             max_taps = 0;
};

/* At most this many axis tables per backend (a few streams' worth of sizes; a 1080p
 * bicubic table is ~40 KB). At least 2: one call holds both of its axes' entries while
 * looking them up, and inserting the second must not evict the first. */
constexpr size_t RESIZE_PLAN_CAP = 32;
static_assert(RESIZE_PLAN_CAP >= 2, "a resize call needs two live entries");

void destroy_axis_plan(void * value, void * user) {
    axis_plan * pl = (axis_plan *)value;
    /* Stream-ordered pool: kernels already queued that read the table run before any
     * later reuse of the block. */
    if (pl->blk) cu_scratch_free((cuda_ctx *)user, pl->blk);
    delete pl;
}

/* Builds the table on the host and queues its upload. The source is pageable, so
 * cudaMemcpyAsync returns once it is staged and `host` may go out of scope at once; no
 * stream synchronisation here (on a GPU the runtime orders a pageable upload behind
 * the stream's earlier work by itself). Runs once per (mode, in, out) per backend. */
enum infvsr_status upload_axis(cuda_ctx * c, enum infvsr_resize_mode mode, int64_t in, int64_t out,
                               axis_plan * pl, infvsr_err * err) {
    axis_table t;
    std::vector<unsigned char> host;
    size_t off_n = 0, off_w = 0;
    try {
        build_table(t, mode, in, out);
        off_n = t.first.size() * 4;
        off_w = off_n + t.ntaps.size() * 4;
        host.resize(off_w + t.w.size() * 4);
    } catch (...) { /* std::vector's bad_alloc must not cross into C */
        return infvsr_err_set(err, INFVSR_ERR_NOMEM, "resize: out of host memory for the tap tables");
    }
    memcpy(host.data(), t.first.data(), t.first.size() * 4);
    memcpy(host.data() + off_n, t.ntaps.data(), t.ntaps.size() * 4);
    if (!t.w.empty()) memcpy(host.data() + off_w, t.w.data(), t.w.size() * 4);
    INFVSR_TRY(cu_scratch(c, host.size(), &pl->blk, err));
    CU_CHECK(c, err, cudaMemcpyAsync(pl->blk, host.data(), host.size(), cudaMemcpyHostToDevice, c->stream));
    pl->first = (const int32_t *)pl->blk;
    pl->ntaps = (const int32_t *)((char *)pl->blk + off_n);
    pl->w = (const float *)((char *)pl->blk + off_w);
    pl->max_taps = t.max_taps;
    return INFVSR_OK;
}

/* The cached table of one axis, uploading it on the first call with this shape. */
enum infvsr_status axis_table_for(cuda_ctx * c, enum infvsr_resize_mode mode, int64_t in, int64_t out,
                                  const axis_plan ** res, infvsr_err * err) {
    if (!c->resize_plans) {
        c->resize_plans = cu_plan_cache_create(RESIZE_PLAN_CAP, destroy_axis_plan, c);
        if (!c->resize_plans)
            return infvsr_err_set(err, INFVSR_ERR_NOMEM, "resize: out of host memory for the table cache");
    }
    cu_plan_key key;
    cu_resize_plan_key((int)mode, in, out, &key);
    axis_plan * pl = (axis_plan *)cu_plan_cache_get(c->resize_plans, &key);
    if (!pl) {
        pl = new (std::nothrow) axis_plan();
        if (!pl) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "resize: out of host memory for a tap table");
        enum infvsr_status st = upload_axis(c, mode, in, out, pl, err);
        if (st != INFVSR_OK) {
            destroy_axis_plan(pl, c);
            return st;
        }
        cu_plan_cache_put(c->resize_plans, &key, pl);
    }
    *res = pl;
    return INFVSR_OK;
}

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

    /* 0 = vertical (H), 1 = horizontal (W); both stay cached (RESIZE_PLAN_CAP >= 2) */
    const axis_plan * tab[2] = { nullptr, nullptr };
    INFVSR_TRY(axis_table_for(c, mode, H, Ho, &tab[0], err));
    INFVSR_TRY(axis_table_for(c, mode, W, Wo, &tab[1], err));
    if (mode == INFVSR_RESIZE_NEAREST) {
        const int64_t n = planes * Ho * Wo;
        CU_LAUNCH(cu_grid_for(n, 256), 256, 0, c->stream, k_resize_nearest)(
            x->data, x->dtype, y->data, y->dtype, planes, H, W, Ho, Wo, tab[0]->first, tab[1]->first);
        CU_CHECK_LAUNCH(c, err);
        return INFVSR_OK;
    }
    tmp_block tmp(c);
    INFVSR_TRY(cu_scratch(c, (size_t)(planes * H * Wo) * sizeof(float), &tmp.p, err));
    const int64_t nh = planes * H * Wo;
    CU_LAUNCH(cu_grid_for(nh, 256), 256, 0, c->stream, k_resize_h)(x->data, x->dtype, (float *)tmp.p,
                                                            planes * H, W, Wo, tab[1]->first,
                                                            tab[1]->ntaps, tab[1]->w, tab[1]->max_taps);
    CU_CHECK_LAUNCH(c, err);
    const int64_t nv = planes * Ho * Wo;
    CU_LAUNCH(cu_grid_for(nv, 256), 256, 0, c->stream, k_resize_v)((const float *)tmp.p, y->data, y->dtype,
                                                            planes, H, Ho, Wo, tab[0]->first,
                                                            tab[0]->ntaps, tab[0]->w, tab[0]->max_taps);
    CU_CHECK_LAUNCH(c, err);
    return INFVSR_OK;
}
