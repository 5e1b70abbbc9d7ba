/* The CUDA backend: kernels/ops.h on device memory.
 *
 * Precision and dtypes
 *   Activations may be F32 or BF16 device tensors; the tensor's dtype decides. Every
 *   kernel loads into fp32 registers, computes in fp32 (RoPE in fp64, as the reference)
 *   and rounds once when storing in the OUTPUT tensor's dtype, so an op may read bf16
 *   and write f32 or the reverse. Weights (w, b, gamma, scale, ...) may be F32, BF16 or
 *   F16 and are read in place.
 *   GEMMs (linear, matmul, conv3d) go through cuBLASLt, which needs A and B of one type:
 *     - bf16 activations: bf16 x bf16 -> fp32 accumulate (CUBLAS_COMPUTE_32F), output in
 *       y's dtype; a weight that is not bf16 is converted into a pooled temporary.
 *     - f32 activations: full fp32 GEMM (CUBLAS_COMPUTE_32F, no TF32) so results match
 *       the CPU backend to ~1e-6; a bf16/f16 weight is widened into a pooled temporary.
 *       This path is for tests and debugging; production runs bf16 activations.
 *   Attention: bf16 q/k/v with head dim 32/64/128 use the tensor-core flash kernel
 *   (attention.cu); everything else (f32, any other head dim such as the VAE's 384)
 *   uses an fp32 SIMT flash kernel that is exact to fp32 rounding.
 *
 * Streams and memory
 *   One backend instance = one worker: one cudaStream_t (non-blocking), one cuBLASLt
 *   handle and workspace, one caching pool (mem_pool.h) used by tensor_alloc and by the
 *   ops' temporaries, so the steady state calls cudaMalloc zero times. All work is
 *   queued on the stream; tensor_set/tensor_get synchronise it (host buffers are
 *   pageable and the op table promises synchronous copies).
 *
 * Errors
 *   Argument errors -> INFVSR_ERR_INVALID_ARG, backend stays healthy. Any CUDA/cuBLAS
 *   failure -> INFVSR_ERR_DEVICE, recorded once, backend unhealthy for good
 *   (infvsr_cuda_backend_healthy false): the server marks the worker failed. A device
 *   fault (illegal address) also poisons the CUDA context of the whole process, so the
 *   worker process has to be restarted; we never exit or abort. */
#include "cuda_common.cuh"

#include <new>
#include <string.h>

enum infvsr_status cu_scratch(struct cuda_ctx * c, size_t nbytes, void ** out,
                              struct infvsr_err * err) {
    cudaError_t e = cuda_pool_alloc(c->pool, nbytes, out);
    if (e == cudaErrorMemoryAllocation)
        return infvsr_err_set(err, INFVSR_ERR_NOMEM, "CUDA backend: out of device memory for a %zu-byte "
                      "temporary", nbytes);
    if (e != cudaSuccess) return cu_fail(c, err, "cudaMalloc (pool)", __FILE__, __LINE__,
                                         cudaGetErrorString(e));
    return INFVSR_OK;
}

void cu_scratch_free(struct cuda_ctx * c, void * p) {
    cuda_pool_free(c->pool, p);
}

/* ---- memory slots ---- */

static const char * be_name(struct infvsr_backend * be) {
    return cu_ctx(be)->name;
}

static enum infvsr_status be_tensor_alloc(struct infvsr_backend * be, struct infvsr_tensor * t,
                                          struct infvsr_err * err) {
    struct cuda_ctx * c = cu_ctx(be);
    CU_ENTER(c, err);
    size_t es = infvsr_dtype_size(t->dtype);
    if (es == 0 || t->ndim < 0 || t->ndim > INFVSR_MAX_DIMS)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "tensor_alloc: '%s' has an invalid dtype/rank",
                      t->name);
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0 || (t->shape[i] > 0 && n > INT64_MAX / 8 / t->shape[i]))
            return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "tensor_alloc: '%s' has an invalid shape",
                          t->name);
        n *= t->shape[i];
    }
    void * p = nullptr;
    enum infvsr_status st = cu_scratch(c, (size_t)n * es, &p, err);
    if (st != INFVSR_OK) return st;
    t->data      = p;
    t->mem       = INFVSR_MEM_DEVICE;
    t->owns_data = true;
    return INFVSR_OK;
}

static void be_tensor_free(struct infvsr_backend * be, struct infvsr_tensor * t) {
    if (!t || t->mem != INFVSR_MEM_DEVICE) return;
    if (t->owns_data && t->data) cuda_pool_free(cu_ctx(be)->pool, t->data);
    t->data      = nullptr;
    t->owns_data = false;
}

static enum infvsr_status copy_check(const struct infvsr_tensor * t, size_t offset, size_t nbytes,
                                     const char * op, struct infvsr_err * err) {
    if (!t || t->mem != INFVSR_MEM_DEVICE || !t->data)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "%s: not an allocated device tensor", op);
    int64_t n = infvsr_tensor_numel(t);
    size_t total = (size_t)n * infvsr_dtype_size(t->dtype);
    if (offset > total || nbytes > total - offset)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG,
                      "%s: '%s' range [%zu, %zu) outside its %zu bytes", op, t->name, offset,
                      offset + nbytes, total);
    return INFVSR_OK;
}

static enum infvsr_status be_tensor_set(struct infvsr_backend * be, struct infvsr_tensor * t,
                                        const void * src, size_t offset, size_t nbytes,
                                        struct infvsr_err * err) {
    struct cuda_ctx * c = cu_ctx(be);
    CU_ENTER(c, err);
    enum infvsr_status st = copy_check(t, offset, nbytes, "tensor_set", err);
    if (st != INFVSR_OK) return st;
    if (nbytes == 0) return INFVSR_OK;
    CU_CHECK(c, err, cudaSetDevice(c->device));
    CU_CHECK(c, err, cudaMemcpyAsync((char *)t->data + offset, src, nbytes,
                                     cudaMemcpyHostToDevice, c->stream));
    CU_CHECK(c, err, cudaStreamSynchronize(c->stream));
    return INFVSR_OK;
}

static enum infvsr_status be_tensor_get(struct infvsr_backend * be, const struct infvsr_tensor * t,
                                        void * dst, size_t offset, size_t nbytes,
                                        struct infvsr_err * err) {
    struct cuda_ctx * c = cu_ctx(be);
    CU_ENTER(c, err);
    enum infvsr_status st = copy_check(t, offset, nbytes, "tensor_get", err);
    if (st != INFVSR_OK) return st;
    if (nbytes == 0) return INFVSR_OK;
    CU_CHECK(c, err, cudaSetDevice(c->device));
    CU_CHECK(c, err, cudaMemcpyAsync(dst, (const char *)t->data + offset, nbytes,
                                     cudaMemcpyDeviceToHost, c->stream));
    CU_CHECK(c, err, cudaStreamSynchronize(c->stream));
    return INFVSR_OK;
}

static enum infvsr_status be_synchronize(struct infvsr_backend * be, struct infvsr_err * err) {
    struct cuda_ctx * c = cu_ctx(be);
    CU_ENTER(c, err);
    CU_CHECK(c, err, cudaSetDevice(c->device));
    CU_CHECK(c, err, cudaStreamSynchronize(c->stream));
    return INFVSR_OK;
}

static void be_get_caps(struct infvsr_backend * be, struct infvsr_backend_caps * caps) {
    struct cuda_ctx * c = cu_ctx(be);
    snprintf(caps->name, sizeof caps->name, "cuda:%d", c->device);
    snprintf(caps->device, sizeof caps->device, "%.100s (sm_%d%d)", c->prop.name, c->prop.major, c->prop.minor);
    caps->host_visible = false;
    caps->act_dtype    = c->act_dtype;
    caps->act_f32      = true;
    caps->act_bf16     = true;
    size_t free_b = 0, total_b = 0;
    if (!c->failed && cudaSetDevice(c->device) == cudaSuccess && cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) {
        caps->mem_total = total_b;
        caps->mem_free  = free_b;
    } else {
        cudaGetLastError();
        caps->mem_total = c->prop.totalGlobalMem;
    }
}

static const char * be_last_error(struct infvsr_backend * be) {
    return cu_ctx(be)->failed ? cu_ctx(be)->first_error : "";
}

static void be_free(struct infvsr_backend * be);

static const struct infvsr_backend_i cuda_iface = {
    /* name             */ be_name,
    /* get_caps         */ be_get_caps,
    /* last_error       */ be_last_error,
    /* free             */ be_free,
    /* tensor_alloc     */ be_tensor_alloc,
    /* tensor_free      */ be_tensor_free,
    /* tensor_set       */ be_tensor_set,
    /* tensor_get       */ be_tensor_get,
    /* synchronize      */ be_synchronize,
    /* linear           */ cu_linear,
    /* matmul           */ cu_matmul,
    /* layer_norm       */ cu_layer_norm,
    /* rms_norm         */ cu_rms_norm,
    /* channel_rms_norm */ cu_channel_rms_norm,
    /* modulate         */ cu_modulate,
    /* unary            */ cu_unary,
    /* add              */ cu_add,
    /* add_gated        */ cu_add_gated,
    /* affine_clamp     */ cu_affine_clamp,
    /* softmax          */ cu_softmax,
    /* attention        */ cu_attention,
    /* rope             */ cu_rope,
    /* conv3d           */ cu_conv3d,
    /* resize           */ cu_resize,
    /* copy             */ cu_copy,
    /* gather_rows      */ cu_gather_rows,
    /* weights_imported */ NULL, /* weights live in the device copy of the weight set */
    /* weights_released */ NULL,
};

/* ---- lifecycle ---- */

struct cuda_backend_box {
    struct infvsr_backend be;
    struct cuda_ctx       ctx;
};

static void destroy_ctx(struct cuda_ctx * c) {
    cudaSetDevice(c->device);
    if (c->stream) cudaStreamSynchronize(c->stream);
    cu_cudnn_destroy(c);
    cu_plan_cache_free(c->gemm_plans);   /* cuBLASLt descriptors: before the handle goes */
    cu_plan_cache_free(c->resize_plans); /* pool blocks: before the pool goes            */
    c->gemm_plans = c->resize_plans = nullptr;
    if (c->lt) cublasLtDestroy(c->lt);
    if (c->stream) cudaStreamDestroy(c->stream);
    cuda_pool_destroy(c->pool); /* frees the workspace and any tensor still alive */
}

extern "C" enum infvsr_status infvsr_cuda_backend_init(int device, enum infvsr_precision precision,
                                                       struct infvsr_backend ** out,
                                                       struct infvsr_err * err) {
    if (!out) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "infvsr_cuda_backend_init: out is NULL");
    *out = nullptr;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "CUDA backend: no usable device (%s: %s)",
                      cudaGetErrorName(e), cudaGetErrorString(e));
    }
    if (n == 0) return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "CUDA backend: no CUDA device present");
    if (device < 0 || device >= n) /* a GPU this machine does not have: unavailable, not a usage error */
        return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "CUDA backend: device %d not present (%d present)",
                      device, n);
    cudaDeviceProp prop;
    e = cudaGetDeviceProperties(&prop, device);
    if (e != cudaSuccess)
        return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "CUDA backend: cudaGetDeviceProperties(%d): %s",
                      device, cudaGetErrorString(e));
    if (prop.major < 8)
        return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED,
                      "CUDA backend: device %d (%s) is sm_%d%d; sm_80 or newer is required (bf16 "
                      "tensor cores)", device, prop.name, prop.major, prop.minor);

    cuda_backend_box * box = new (std::nothrow) cuda_backend_box();
    if (!box) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "CUDA backend: out of host memory");
    struct cuda_ctx * c = &box->ctx;
    c->device = device;
    c->prop   = prop;
    /* bf16 is the official dtype and what the tensor-core paths run; f32 is for parity runs. */
    c->act_dtype = precision == INFVSR_PRECISION_F32 ? INFVSR_TYPE_F32 : INFVSR_TYPE_BF16;
    c->attn_kernel      = INFVSR_CUDA_ATTN_AUTO;
    c->conv_kernel      = INFVSR_CUDA_CONV_AUTO;
    c->last_attn_kernel = "";
    c->last_conv_kernel = "";
    snprintf(c->name, sizeof c->name, "cuda:%d", device);
    box->be.iface   = &cuda_iface;
    box->be.context = c;
    box->be.mem     = INFVSR_MEM_DEVICE;

    enum infvsr_status st = INFVSR_OK;
    do {
        if ((e = cudaSetDevice(device)) != cudaSuccess) {
            st = cu_fail(c, err, "cudaSetDevice", __FILE__, __LINE__, cudaGetErrorString(e));
            break;
        }
        c->pool = cuda_pool_create(device);
        if (!c->pool) { st = infvsr_err_set(err, INFVSR_ERR_NOMEM, "CUDA backend: out of host memory"); break; }
        if ((e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) != cudaSuccess) {
            st = cu_fail(c, err, "cudaStreamCreateWithFlags", __FILE__, __LINE__, cudaGetErrorString(e));
            break;
        }
        cublasStatus_t s = cublasLtCreate(&c->lt);
        if (s != CUBLAS_STATUS_SUCCESS) {
            c->lt = nullptr;
            st = cu_fail(c, err, "cublasLtCreate", __FILE__, __LINE__, cublasGetStatusString(s));
            break;
        }
        c->lt_workspace_size = CU_LT_WORKSPACE;
        st = cu_scratch(c, c->lt_workspace_size, &c->lt_workspace, err);
        /* Not fatal: without cuDNN (compiled out, libraries missing at run time) conv3d
         * runs im2col + cuBLASLt; cu_cudnn_init logs the reason once. */
        if (st == INFVSR_OK) cu_cudnn_init(c);
    } while (0);
    if (st != INFVSR_OK) {
        destroy_ctx(c);
        delete box;
        return st;
    }
    *out = &box->be;
    return INFVSR_OK;
}

static void be_free(struct infvsr_backend * be) {
    if (!be) return;
    cuda_backend_box * box = (cuda_backend_box *)((char *)be - offsetof(cuda_backend_box, be));
    destroy_ctx(&box->ctx);
    delete box;
}

extern "C" bool infvsr_cuda_backend_healthy(struct infvsr_backend * be) {
    return be && !cu_ctx(be)->failed;
}

extern "C" const char * infvsr_cuda_backend_last_error(struct infvsr_backend * be) {
    return be ? cu_ctx(be)->first_error : "";
}

extern "C" void infvsr_cuda_backend_pool_stats(struct infvsr_backend * be,
                                               struct infvsr_cuda_pool_stats * out) {
    cuda_pool_stats(be ? cu_ctx(be)->pool : nullptr, out);
}

extern "C" void infvsr_cuda_backend_plan_stats(struct infvsr_backend * be, struct infvsr_cuda_plan_stats * out) {
    memset(out, 0, sizeof *out);
    if (!be) return;
    cu_plan_cache_stats g, r;
    cu_plan_cache_get_stats(cu_ctx(be)->gemm_plans, &g); /* zeros while a cache is not created yet */
    cu_plan_cache_get_stats(cu_ctx(be)->resize_plans, &r);
    out->gemm_hits = g.hits, out->gemm_misses = g.misses, out->gemm_plans = g.size;
    out->resize_hits = r.hits, out->resize_misses = r.misses, out->resize_tables = r.size;
}

extern "C" void infvsr_cuda_backend_trim(struct infvsr_backend * be) {
    if (!be) return;
    struct cuda_ctx * c = cu_ctx(be);
    cudaSetDevice(c->device);
    cudaStreamSynchronize(c->stream);
    cuda_pool_trim(c->pool);
}

extern "C" void infvsr_cuda_backend_set_attention_kernel(struct infvsr_backend * be,
                                                         enum infvsr_cuda_attn_kernel k) {
    if (be && (int)k >= INFVSR_CUDA_ATTN_AUTO && k <= INFVSR_CUDA_ATTN_SIMT) cu_ctx(be)->attn_kernel = k;
}

extern "C" void infvsr_cuda_backend_set_conv_kernel(struct infvsr_backend * be,
                                                    enum infvsr_cuda_conv_kernel k) {
    if (be && (int)k >= INFVSR_CUDA_CONV_AUTO && k <= INFVSR_CUDA_CONV_CUDNN) cu_ctx(be)->conv_kernel = k;
}

extern "C" const char * infvsr_cuda_backend_last_conv_kernel(struct infvsr_backend * be) {
    return be && cu_ctx(be)->last_conv_kernel ? cu_ctx(be)->last_conv_kernel : "";
}

extern "C" bool infvsr_cuda_backend_has_cudnn(struct infvsr_backend * be) {
    return be && cu_cudnn_ready(cu_ctx(be));
}

extern "C" void infvsr_cuda_backend_conv_plan_stats(struct infvsr_backend * be,
                                                    struct infvsr_cuda_conv_plan_stats * out) {
    if (!out) return;
    if (!be) {
        memset(out, 0, sizeof *out);
        return;
    }
    cu_cudnn_cache_stats(cu_ctx(be), out);
}

extern "C" const char * infvsr_cuda_backend_last_attention_kernel(struct infvsr_backend * be) {
    return be && cu_ctx(be)->last_attn_kernel ? cu_ctx(be)->last_attn_kernel : "";
}

extern "C" void * infvsr_cuda_backend_stream(struct infvsr_backend * be) {
    return be ? (void *)cu_ctx(be)->stream : nullptr;
}
