/* Internals shared by the CUDA backend's .cu files: the backend context, the error
 * macros, dtype-generic loads/stores and argument-validation helpers.
 *
 * Error model: CU_CHECK / CUBLAS_CHECK record the FIRST failure (statement, file, line,
 * error string) in the context, mark it failed and return INFVSR_ERR_DEVICE from the
 * enclosing function. Every op starts with CU_ENTER, which refuses work once failed.
 * Nothing here exits or aborts. */
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cublasLt.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include "conv3d_plan.h"
#include "cuda_backend.h"
#include "mem_pool.h"
#include "backend_impl.h"

struct cuda_ctx {
    int                   device;
    cudaDeviceProp        prop;
    cudaStream_t          stream;
    cublasLtHandle_t      lt;
    void *                lt_workspace;      /* pool block, CU_LT_WORKSPACE bytes */
    size_t                lt_workspace_size;
    struct cuda_pool *    pool;
    int                   attn_kernel;       /* enum infvsr_cuda_attn_kernel */
    int                   conv_kernel;       /* enum infvsr_cuda_conv_kernel */
    const char *          last_attn_kernel;  /* "mma", "wmma", "simt" or ""  */
    const char *          last_conv_kernel;  /* "cudnn", "im2col", "implicit" or "" */
    struct cu_cudnn *     cudnn;             /* NULL: no cuDNN (compiled out or init failed) */
    enum infvsr_dtype     act_dtype;         /* activation dtype the engine uses here */
    bool                  failed;
    char                  first_error[INFVSR_ERR_MSG_MAX];
    char                  name[64];
};

/* Every kernel launch is written CU_LAUNCH(grid, block, smem, stream, kernel)(args...):
 * on nvcc exactly kernel<<<grid, block, smem, stream>>>(args...); in the kernel-emulation
 * build (INFVSR_CUDA_EMU: the .cu files compiled as host C++, kernels/cuda/emu) a call of
 * the emulator's launcher, which has no <<< >>> syntax to parse. */
#ifdef INFVSR_CUDA_EMU
#define CU_LAUNCH(grid, block, smem, stream, ...) \
    ::emu::launch_of((grid), (block), (smem), #__VA_ARGS__, __VA_ARGS__)
#else
#define CU_LAUNCH(grid, block, smem, stream, ...) __VA_ARGS__<<<grid, block, smem, stream>>>
#endif

#define CU_LT_WORKSPACE (32u << 20) /* cuBLASLt heuristics prefer >= 32 MiB on Hopper */

static inline struct cuda_ctx * cu_ctx(struct infvsr_backend * be) {
    return (struct cuda_ctx *)be->context;
}

/* Records the first device failure; returns INFVSR_ERR_DEVICE. */
enum infvsr_status cu_fail(struct cuda_ctx * c, struct infvsr_err * err, const char * what,
                           const char * file, int line, const char * detail);

#define CU_CHECK(c, err, call)                                                              \
    do {                                                                                    \
        cudaError_t e_ = (call);                                                            \
        if (e_ != cudaSuccess)                                                              \
            return cu_fail((c), (err), #call, __FILE__, __LINE__, cudaGetErrorString(e_));  \
    } while (0)

#define CUBLAS_CHECK(c, err, call)                                                          \
    do {                                                                                    \
        cublasStatus_t s_ = (call);                                                         \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                    \
            return cu_fail((c), (err), #call, __FILE__, __LINE__, cublasGetStatusString(s_)); \
    } while (0)

/* After every kernel launch: catches bad launch configurations immediately (device
 * faults surface asynchronously at the next synchronising call, also checked). */
#define CU_CHECK_LAUNCH(c, err) CU_CHECK((c), (err), cudaGetLastError())

/* Refuses work on a failed backend; makes the backend's device current for this
 * thread (cheap when it already is; a worker thread may own a backend on device != 0). */
#define CU_ENTER(c, err)                                                                    \
    do {                                                                                    \
        if ((c)->failed)                                                                    \
            return infvsr_err_set((err), INFVSR_ERR_DEVICE, "CUDA backend unhealthy: %s",           \
                          (c)->first_error);                                                \
        CU_CHECK((c), (err), cudaSetDevice((c)->device));                                   \
    } while (0)

/* ---- validation helpers (host) ---- */

static inline int64_t cu_last_dim(const struct infvsr_tensor * t) {
    return t->ndim > 0 ? t->shape[t->ndim - 1] : 1;
}
static inline bool cu_is_act(enum infvsr_dtype d) {
    return d == INFVSR_TYPE_F32 || d == INFVSR_TYPE_BF16;
}
static inline bool cu_is_weight(enum infvsr_dtype d) {
    return d == INFVSR_TYPE_F32 || d == INFVSR_TYPE_BF16 || d == INFVSR_TYPE_F16;
}

/* Checks that t is non-NULL, on the device, allocated and of an accepted dtype. */
enum infvsr_status cu_check_tensor(const struct infvsr_tensor * t, const char * op,
                                   const char * role, bool weight_dtype_ok,
                                   struct infvsr_err * err);

/* ---- device-side dtype-generic access: fp32 in registers, storage in dtype ---- */

__device__ __forceinline__ float cu_load(const void * p, int dtype, int64_t i) {
    switch (dtype) {
    case INFVSR_TYPE_BF16: return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    case INFVSR_TYPE_F16:  return __half2float(((const __half *)p)[i]);
    default:               return ((const float *)p)[i];
    }
}
__device__ __forceinline__ void cu_store(void * p, int dtype, int64_t i, float v) {
    if (dtype == INFVSR_TYPE_BF16) ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
    else if (dtype == INFVSR_TYPE_F16) ((__half *)p)[i] = __float2half_rn(v);
    else ((float *)p)[i] = v;
}

static inline bool infvsr_tensor_same_shape_cu(const struct infvsr_tensor * a,
                                               const struct infvsr_tensor * b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

/* Same numel and, when they share storage, same dtype (in-place ops). */
enum infvsr_status cu_check_same(const struct infvsr_tensor * a, const struct infvsr_tensor * y,
                                 const char * op, struct infvsr_err * err);

__device__ __forceinline__ float cu_act(int op, float x) {
    switch (op) {
    case INFVSR_UNARY_GELU_TANH: {
        const float k = 0.7978845608028654f; /* sqrt(2/pi) */
        return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
    }
    case INFVSR_UNARY_GELU_ERF: return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
    case INFVSR_UNARY_SILU:     return x / (1.0f + expf(-x));
    default:                    return x; /* INFVSR_UNARY_COUNT: identity */
    }
}

/* Grid size for a grid-stride loop over n elements, capped so launches stay legal. */
static inline unsigned cu_grid_for(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    if (b > 65535LL * 32) b = 65535LL * 32;
    return (unsigned)b;
}

/* ---- temporaries from the pool (stream-ordered: one stream per backend) ---- */
enum infvsr_status cu_scratch(struct cuda_ctx * c, size_t nbytes, void ** out,
                              struct infvsr_err * err);
void               cu_scratch_free(struct cuda_ctx * c, void * p);

/* Converts n elements between float dtypes on the stream (weights into the activation
 * dtype for cuBLASLt, which needs A and B of one type). */
enum infvsr_status cu_convert(struct cuda_ctx * c, const void * src, int src_dtype, void * dst,
                              int dst_dtype, int64_t n, struct infvsr_err * err);

/* ---- op entry points (one file per family) ---- */
#define CU_OP(name, ...) enum infvsr_status name(struct infvsr_backend * be, __VA_ARGS__)
CU_OP(cu_linear, const struct infvsr_tensor * x, const struct infvsr_tensor * w,
      const struct infvsr_tensor * b, enum infvsr_unary_op act, struct infvsr_tensor * y,
      struct infvsr_err * err);
CU_OP(cu_matmul, const struct infvsr_tensor * a, const struct infvsr_tensor * b, bool trans_b,
      float alpha, struct infvsr_tensor * c, struct infvsr_err * err);
CU_OP(cu_layer_norm, const struct infvsr_tensor * x, const struct infvsr_tensor * w,
      const struct infvsr_tensor * b, float eps, struct infvsr_tensor * y, struct infvsr_err * err);
CU_OP(cu_rms_norm, const struct infvsr_tensor * x, const struct infvsr_tensor * w, float eps,
      struct infvsr_tensor * y, struct infvsr_err * err);
CU_OP(cu_channel_rms_norm, const struct infvsr_tensor * x, const struct infvsr_tensor * gamma,
      struct infvsr_tensor * y, struct infvsr_err * err);
CU_OP(cu_modulate, const struct infvsr_tensor * x, const struct infvsr_tensor * scale,
      const struct infvsr_tensor * shift, struct infvsr_tensor * y, struct infvsr_err * err);
CU_OP(cu_unary, enum infvsr_unary_op op, const struct infvsr_tensor * x, struct infvsr_tensor * y,
      struct infvsr_err * err);
CU_OP(cu_add, const struct infvsr_tensor * a, const struct infvsr_tensor * b,
      struct infvsr_tensor * y, struct infvsr_err * err);
CU_OP(cu_add_gated, const struct infvsr_tensor * x, const struct infvsr_tensor * gate,
      const struct infvsr_tensor * d, struct infvsr_tensor * y, struct infvsr_err * err);
CU_OP(cu_affine_clamp, const struct infvsr_tensor * x, float alpha, float beta, float lo, float hi,
      struct infvsr_tensor * y, struct infvsr_err * err);
CU_OP(cu_softmax, const struct infvsr_tensor * x, struct infvsr_tensor * y, struct infvsr_err * err);
CU_OP(cu_attention, const struct infvsr_attn_args * a, struct infvsr_err * err);
CU_OP(cu_rope, const struct infvsr_tensor * x, const struct infvsr_tensor * freqs, int n_heads,
      struct infvsr_tensor * y, struct infvsr_err * err);
CU_OP(cu_conv3d, const struct infvsr_conv3d_args * a, struct infvsr_err * err);
CU_OP(cu_resize, enum infvsr_resize_mode mode, const struct infvsr_tensor * x,
      struct infvsr_tensor * y, struct infvsr_err * err);
CU_OP(cu_copy, const struct infvsr_copy_args * a, struct infvsr_err * err);
CU_OP(cu_gather_rows, const struct infvsr_tensor * x, const struct infvsr_tensor * idx,
      struct infvsr_tensor * y, struct infvsr_err * err);

/* Unary activation applied in place on n elements of dtype (used by linear's fallback). */
enum infvsr_status cu_apply_unary(struct cuda_ctx * c, enum infvsr_unary_op op, const void * x,
                                  int x_dtype, void * y, int y_dtype, int64_t n,
                                  struct infvsr_err * err);
/* Bias after a GEMM without epilogue, y is [rows, cols]:
 * per_row false: y[r, c] += b[c] (linear);  per_row true: y[r, c] += b[r] (conv, rows = Cout).
 * Then, when act < INFVSR_UNARY_COUNT, y = act(y) in the same pass. */
enum infvsr_status cu_bias_act(struct cuda_ctx * c, void * y, int y_dtype, const void * b,
                               int b_dtype, int64_t rows, int64_t cols, bool per_row,
                               enum infvsr_unary_op act, struct infvsr_err * err);

/* ---- cuBLASLt GEMM on the backend's stream (gemm.cu) ----
 * Column-major, as cuBLASLt: D[m, n] = alpha * op(A)[m, k] . op(B)[k, n].
 * A and B share one dtype (F32 or BF16); D is F32 or BF16 (bf16 inputs may write f32).
 * Compute is always CUBLAS_COMPUTE_32F (fp32 accumulate; no TF32 for f32 inputs).
 * epilogue: CUBLASLT_EPILOGUE_DEFAULT, _BIAS, _GELU or _GELU_BIAS (bias: m entries in D's
 * dtype). Returns INFVSR_ERR_UNSUPPORTED (backend stays healthy, err untouched) when the
 * heuristic has no algorithm for this combination, so callers can retry without the
 * epilogue. batch > 1 uses strided batches (strides in elements). */
struct cu_gemm {
    bool                  trans_a, trans_b;
    int64_t               m, n, k;
    const void *          a; int64_t lda; int64_t stride_a;
    const void *          b; int64_t ldb; int64_t stride_b;
    void *                d; int64_t ldd; int64_t stride_d;
    int                   ab_dtype, d_dtype;
    int                   batch;
    float                 alpha;
    cublasLtEpilogue_t    epilogue;
    const void *          bias;
};
enum infvsr_status cu_gemm_run(struct cuda_ctx * c, const struct cu_gemm * g, struct infvsr_err * err);

/* Implicit-GEMM conv3d on tensor cores (conv3d_implicit.cu). x, w bf16; y bf16 or f32;
 * shapes as validated by cu_conv3d; stride = {st, sh, sw}. */
enum infvsr_status cu_conv3d_implicit(struct cuda_ctx * c, const void * x, const void * w,
                                      const void * bias, int bias_dtype, void * y, int y_dtype,
                                      const int64_t * xs, const int64_t * ws, const int64_t * ys,
                                      const int * stride, int pad_top, int pad_left,
                                      struct infvsr_err * err);

/* ---- cuDNN conv3d (conv3d_cudnn.cu; stubs when built without cuDNN) ---- */
struct cu_cudnn;
/* Creates the handle (bound to c->stream) and the plan cache; false (logged once) when
 * cuDNN cannot be used: conv3d then runs im2col. */
bool               cu_cudnn_init(struct cuda_ctx * c);
void               cu_cudnn_destroy(struct cuda_ctx * c);
bool               cu_cudnn_ready(const struct cuda_ctx * c);
/* True when the plan cache remembers cuDNN refusing this call tuple. */
bool               cu_cudnn_refused(struct cuda_ctx * c, const struct infvsr_conv3d_geom * g);
void               cu_cudnn_cache_stats(const struct cuda_ctx * c, struct infvsr_cuda_conv_plan_stats * out);
/* y = conv3d(x, w) + b on cuDNN; g validated by infvsr_conv3d_geom_check, pointers as in
 * the op (w, b in their stored dtypes; b may be NULL). INFVSR_ERR_UNSUPPORTED with err
 * untouched and y untouched when cuDNN refuses the call (remembered per shape): the
 * caller runs im2col instead. */
enum infvsr_status cu_conv3d_cudnn(struct cuda_ctx * c, const struct infvsr_conv3d_geom * g, const void * x,
                                   const void * w, const void * b, void * y, struct infvsr_err * err);
