/* Data movement on the device: the strided copy family (backend_impl.h, validated by
 * infvsr_copy_validate exactly as on the CPU) and gather_rows.
 *
 * One grid-stride kernel serves every copy mode: element i is split into its indices
 * over the (up to 6) extents, which gives the three view offsets. The divisions are
 * 64-bit; these copies move activations between layers and are memory bound, and the
 * dense same-dtype cases skip the kernel (cudaMemcpyAsync). Arithmetic uses __fmul_rn /
 * __fadd_rn / __fdiv_rn so that nvcc cannot contract into FMA: results are bit-identical
 * to the CPU backend's f32 code. An overlapping dense SET (the VAE arena settle, dst below
 * src) is done as stream-ordered chunks no longer than the gap, each of which cannot
 * overlap its own source, or through a pooled temporary when that would take many chunks. */
#include "cuda_common.cuh"

#define CP_THREADS 256

struct cu_copy_params {
    int     mode, ndim;
    int64_t extent[INFVSR_COPY_MAX_DIMS];
    int64_t xs[INFVSR_COPY_MAX_DIMS], ms[INFVSR_COPY_MAX_DIMS], ys[INFVSR_COPY_MAX_DIMS];
    int64_t xo, mo, yo;
    const void * x; int xd;
    const void * m; int md;
    void *       y; int yd;
    int     es;     /* element size for same-dtype SET */
    float   alpha;
    int64_t n;
};

__device__ __forceinline__ float cp_load(const void * p, int d, int64_t i) {
    if (d == INFVSR_TYPE_U8) return (float)((const uint8_t *)p)[i];
    return cu_load(p, d, i);
}

__device__ __forceinline__ void cp_bytes(void * y, int64_t yi, const void * x, int64_t xi, int es) {
    switch (es) {
    case 1: ((uint8_t *)y)[yi] = ((const uint8_t *)x)[xi]; break;
    case 2: ((uint16_t *)y)[yi] = ((const uint16_t *)x)[xi]; break;
    case 4: ((uint32_t *)y)[yi] = ((const uint32_t *)x)[xi]; break;
    default: ((uint64_t *)y)[yi] = ((const uint64_t *)x)[xi]; break;
    }
}

__global__ void k_copy(const cu_copy_params p) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < p.n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i, xo = p.xo, mo = p.mo, yo = p.yo;
        for (int d = p.ndim - 1; d >= 0; d--) {
            int64_t k = r % p.extent[d];
            r /= p.extent[d];
            xo += k * p.xs[d];
            mo += k * p.ms[d];
            yo += k * p.ys[d];
        }
        switch (p.mode) {
        case INFVSR_COPY_SET:
            if (p.xd == p.yd) cp_bytes(p.y, yo, p.x, xo, p.es);
            else cu_store(p.y, p.yd, yo, cu_load(p.x, p.xd, xo));
            break;
        case INFVSR_COPY_ACCUMULATE: {
            float v = __fmul_rn(p.alpha, cu_load(p.x, p.xd, xo));
            if (p.m) v = __fmul_rn(v, cu_load(p.m, p.md, mo));
            cu_store(p.y, p.yd, yo, __fadd_rn(cu_load(p.y, p.yd, yo), v));
            break;
        }
        case INFVSR_COPY_DIVIDE:
            cu_store(p.y, p.yd, yo, __fdiv_rn(cu_load(p.x, p.xd, xo), cu_load(p.m, p.md, mo)));
            break;
        case INFVSR_COPY_U8_TO_MODEL:
        case INFVSR_COPY_U8_TO_UNIT: {
            float v = __fdiv_rn(cp_load(p.x, INFVSR_TYPE_U8, xo), 255.0f);
            v = __fadd_rn(__fmul_rn(v, 2.0f), -1.0f);
            if (p.mode == INFVSR_COPY_U8_TO_UNIT) v = __fadd_rn(__fdiv_rn(v, 2.0f), 0.5f);
            cu_store(p.y, p.yd, yo, v);
            break;
        }
        case INFVSR_COPY_MODEL_TO_U8: {
            float v = __fmul_rn(__fadd_rn(cu_load(p.x, p.xd, xo), 1.0f), 127.5f);
            v = v >= 0.0f ? (v <= 255.0f ? v : 255.0f) : 0.0f; /* NaN -> 0 */
            ((uint8_t *)p.y)[yo] = (uint8_t)v;
            break;
        }
        case INFVSR_COPY_FILL:
            if (p.yd == INFVSR_TYPE_F64) ((double *)p.y)[yo] = (double)p.alpha;
            else cu_store(p.y, p.yd, yo, p.alpha);
            break;
        default:
            break;
        }
    }
}

/* dst < src or dst > src, n bytes, regions may overlap. */
static enum infvsr_status device_memmove(struct cuda_ctx * c, char * dst, const char * src, size_t n,
                                         struct infvsr_err * err) {
    if (dst == src || n == 0) return INFVSR_OK;
    size_t gap = dst < src ? (size_t)(src - dst) : (size_t)(dst - src);
    if (gap >= n) {
        CU_CHECK(c, err, cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, c->stream));
        return INFVSR_OK;
    }
    if (dst < src && n / gap <= 64) {
        /* Forward chunks of `gap` bytes: chunk k reads [src + k gap, +gap), above everything
         * written so far, and writes below it. */
        for (size_t off = 0; off < n; off += gap) {
            size_t len = n - off < gap ? n - off : gap;
            CU_CHECK(c, err, cudaMemcpyAsync(dst + off, src + off, len, cudaMemcpyDeviceToDevice, c->stream));
        }
        return INFVSR_OK;
    }
    void * tmp = nullptr;
    INFVSR_TRY(cu_scratch(c, n, &tmp, err));
    CU_CHECK(c, err, cudaMemcpyAsync(tmp, src, n, cudaMemcpyDeviceToDevice, c->stream));
    CU_CHECK(c, err, cudaMemcpyAsync(dst, tmp, n, cudaMemcpyDeviceToDevice, c->stream));
    cu_scratch_free(c, tmp); /* stream-ordered pool: reuse happens after the copies */
    return INFVSR_OK;
}

enum infvsr_status cu_copy(struct infvsr_backend * be, const struct infvsr_copy_args * a,
                           struct infvsr_err * err) {
    struct cuda_ctx * c = cu_ctx(be);
    CU_ENTER(c, err);
    struct infvsr_copy_plan plan;
    INFVSR_TRY(infvsr_copy_validate("cuda", a, &plan, err));
    if (a->y->mem != INFVSR_MEM_DEVICE || (a->x && a->x->mem != INFVSR_MEM_DEVICE) ||
        (plan.use_m && a->m->mem != INFVSR_MEM_DEVICE))
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "copy: every tensor must be device memory of this backend");
    if (plan.n == 0) return INFVSR_OK;
    size_t es = infvsr_dtype_size(a->y->dtype);
    if (plan.dense_set) {
        return device_memmove(c, (char *)a->y->data + a->y_offset * es,
                              (const char *)a->x->data + a->x_offset * es, (size_t)plan.n * es, err);
    }
    cu_copy_params p;
    memset(&p, 0, sizeof p);
    p.mode = (int)a->mode;
    p.ndim = a->ndim;
    for (int d = 0; d < a->ndim; d++) {
        p.extent[d] = a->extent[d];
        p.xs[d]     = a->x_stride[d];
        p.ms[d]     = plan.use_m ? a->m_stride[d] : 0;
        p.ys[d]     = a->y_stride[d];
    }
    p.xo = a->x_offset, p.mo = plan.use_m ? a->m_offset : 0, p.yo = a->y_offset;
    p.x = a->x ? a->x->data : nullptr, p.xd = a->x ? (int)a->x->dtype : 0;
    p.m = plan.use_m ? a->m->data : nullptr, p.md = plan.use_m ? (int)a->m->dtype : 0;
    p.y = a->y->data, p.yd = (int)a->y->dtype;
    p.es = (int)es, p.alpha = a->alpha, p.n = plan.n;
    CU_LAUNCH(cu_grid_for(plan.n, CP_THREADS), CP_THREADS, 0, c->stream, k_copy)(p);
    CU_CHECK_LAUNCH(c, err);
    return INFVSR_OK;
}

__global__ void k_gather_rows(const char * x, const int32_t * idx, char * y, int64_t rows, int64_t row_words,
                              int word) {
    const int64_t n = rows * row_words;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / row_words, k = i % row_words;
        int64_t src = (int64_t)idx[r] * row_words + k;
        if (word == 16) ((uint4 *)y)[i] = ((const uint4 *)x)[src];
        else if (word == 8) ((uint64_t *)y)[i] = ((const uint64_t *)x)[src];
        else if (word == 4) ((uint32_t *)y)[i] = ((const uint32_t *)x)[src];
        else ((uint16_t *)y)[i] = ((const uint16_t *)x)[src];
    }
}

enum infvsr_status cu_gather_rows(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                  const struct infvsr_tensor * idx, struct infvsr_tensor * y,
                                  struct infvsr_err * err) {
    struct cuda_ctx * c = cu_ctx(be);
    CU_ENTER(c, err);
    int64_t rows, cols;
    INFVSR_TRY(infvsr_gather_validate("cuda", x, idx, y, &rows, &cols, err));
    if (x->mem != INFVSR_MEM_DEVICE || idx->mem != INFVSR_MEM_DEVICE || y->mem != INFVSR_MEM_DEVICE)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "gather_rows: every tensor must be device memory");
    if (rows == 0) return INFVSR_OK;
    /* Widest word that divides the row and both base addresses (rows are contiguous). */
    size_t row_bytes = (size_t)cols * infvsr_dtype_size(x->dtype);
    int word = 16;
    while (word > 2 && (row_bytes % word || (uintptr_t)x->data % word || (uintptr_t)y->data % word)) word /= 2;
    int64_t row_words = (int64_t)(row_bytes / word);
    CU_LAUNCH(cu_grid_for(rows * row_words, CP_THREADS), CP_THREADS, 0, c->stream, k_gather_rows)(
        (const char *)x->data, (const int32_t *)idx->data, (char *)y->data, rows, row_words, word);
    CU_CHECK_LAUNCH(c, err);
    return INFVSR_OK;
}
