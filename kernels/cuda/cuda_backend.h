/* CUDA backend extras beyond kernels/ops.h: health and memory-pool statistics.
 *
 * A backend instance is one worker: one device, one stream, one cuBLASLt handle, one
 * caching memory pool. The first CUDA/cuBLAS failure is recorded and makes the backend
 * permanently unhealthy: every later op returns INFVSR_ERR_DEVICE without touching the
 * device, so the server can mark the worker failed (readyz false) instead of crashing. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__cplusplus) && !defined(_Noreturn)
/* status.h uses C11 _Noreturn; the CUDA backend's host code is C++ (nvcc). */
#define _Noreturn [[noreturn]]
#endif
#include "backend_impl.h"

#ifdef __cplusplus
extern "C" {
#endif

struct infvsr_cuda_pool_stats {
    size_t   bytes_in_use;     /* handed out to live tensors/scratch               */
    size_t   bytes_peak;       /* max of bytes_in_use since init                    */
    size_t   bytes_reserved;   /* obtained from cudaMalloc and not yet cudaFree'd   */
    uint64_t n_device_mallocs; /* cudaMalloc calls since init (0 growth = steady)   */
    uint64_t n_allocs;         /* pool allocations served (cache hits + mallocs)    */
};

/* False once any CUDA/cuBLAS call of this backend failed (sticky). */
bool         infvsr_cuda_backend_healthy(struct infvsr_backend * be);
/* The first error ("cudaMemcpyAsync(...) at kernels/cuda/backend.cu:123: an illegal
 * memory access was encountered"), or "" while healthy. Valid until the backend is freed. */
const char * infvsr_cuda_backend_last_error(struct infvsr_backend * be);
void         infvsr_cuda_backend_pool_stats(struct infvsr_backend * be,
                                            struct infvsr_cuda_pool_stats * out);
/* Returns cached (free) blocks to the driver. */
void         infvsr_cuda_backend_trim(struct infvsr_backend * be);
/* Attention kernel choice (tests and benchmarks compare them; AUTO is the default).
 * A forced kernel that does not apply to a call (dtype, head dim, shared memory) falls
 * back to SIMT, which handles everything. */
enum infvsr_cuda_attn_kernel {
    INFVSR_CUDA_ATTN_AUTO = 0, /* mma for bf16 D=32/64/128, wmma for bf16 D=384, else simt */
    INFVSR_CUDA_ATTN_MMA,      /* register-resident mma.sync flash kernel                   */
    INFVSR_CUDA_ATTN_WMMA,     /* WMMA flash kernel, S/O in shared memory                   */
    INFVSR_CUDA_ATTN_SIMT,     /* fp32 CUDA-core flash kernel (any dtype, D <= 512)         */
};
void         infvsr_cuda_backend_set_attention_kernel(struct infvsr_backend * be,
                                                      enum infvsr_cuda_attn_kernel k);
/* Which kernel the last attention call launched: "mma", "wmma", "simt" ("" before any). */
const char * infvsr_cuda_backend_last_attention_kernel(struct infvsr_backend * be);

/* conv3d implementation (docs/CUDA.md "Convolutions"):
 *   AUTO     = CUDNN when this build has cuDNN (INFVSR_HAVE_CUDNN) and its handle was
 *              created, else IM2COL.
 *   CUDNN    = cuDNN's graph API (conv + fused bias, plan cached per shape); a call cuDNN
 *              refuses (no engine, misaligned view, > 2^31 elements) runs IM2COL.
 *   IM2COL   = im2col chunks + cuBLASLt (exact in f32), takes every valid call.
 *   IMPLICIT = the hand-written implicit-GEMM kernel; bf16 activations only (f32 calls
 *              use IM2COL). Opt-in until timed on a GPU.
 * Every path rounds a bf16 output once (bias added in fp32 before the store). */
enum infvsr_cuda_conv_kernel {
    INFVSR_CUDA_CONV_AUTO = 0,
    INFVSR_CUDA_CONV_IM2COL,
    INFVSR_CUDA_CONV_IMPLICIT,
    INFVSR_CUDA_CONV_CUDNN,
};
void         infvsr_cuda_backend_set_conv_kernel(struct infvsr_backend * be,
                                                 enum infvsr_cuda_conv_kernel k);
/* Which path the last conv3d call ran: "cudnn", "im2col", "implicit" ("" before any). */
const char * infvsr_cuda_backend_last_conv_kernel(struct infvsr_backend * be);
/* True when this backend can run convolutions on cuDNN (built with it and the handle
 * was created; a failed cudnnCreate is logged once and leaves this false). */
bool         infvsr_cuda_backend_has_cudnn(struct infvsr_backend * be);
struct infvsr_cuda_conv_plan_stats {
    uint64_t hits, misses, evictions; /* plan-cache lookups by full conv tuple          */
    int      plans, refused;          /* cached cuDNN plans / shapes cuDNN refused      */
};
void         infvsr_cuda_backend_conv_plan_stats(struct infvsr_backend * be,
                                                 struct infvsr_cuda_conv_plan_stats * out);

/* Test hook, host only (no GPU, no backend): builds and finalises the cuDNN operation
 * descriptors (tensors, convolution, conv and pointwise ops) that the cuDNN path would
 * build for a call of this geometry (conv3d_plan.h), NCDHW or channels-last; cuDNN's own
 * shape inference runs at each finalise. 0: accepted; 1: rejected (*status = cuDNN's
 * status string); -1: no cuDNN in this build or libcudnn.so.9 not loadable (*status =
 * why). The graph and engine steps need a device and are not covered. */
struct infvsr_conv3d_geom;
int          infvsr_cuda_cudnn_check_conv_ops(const struct infvsr_conv3d_geom * g, bool channels_last,
                                              const char ** status);

/* The backend's stream (cudaStream_t as void*), for benchmarks timing with events. */
void *       infvsr_cuda_backend_stream(struct infvsr_backend * be);

#ifdef __cplusplus
}
#endif
