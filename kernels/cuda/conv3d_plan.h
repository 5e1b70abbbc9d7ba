/* Host-only decisions of the CUDA conv3d (kernels/cuda/conv3d.cu, conv3d_cudnn.cu), in
 * plain C so that they are compiled and unit-tested in every build, with or without
 * CUDA (tests/cuda/test_conv3d_plan.c):
 *   - the argument checks of the op (shapes, dtypes, strides, pads, bias, aliasing);
 *   - whether cuDNN may be asked to run a call, and which path runs it;
 *   - the per-backend cache of cuDNN plans, keyed by the full shape/dtype/stride tuple.
 * Nothing here touches the device: tensor placement (device memory, allocation) is
 * checked by the caller (cu_check_tensor) before these run. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cuda_backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One validated conv3d call (kernels/ops.h infvsr_conv3d_args: NCDHW without the batch
 * axis; no temporal padding, the caller prepends the causal cache frames to x). */
struct infvsr_conv3d_geom {
    int64_t           cin, t, h, w;       /* x [Cin, T, H, W]                       */
    int64_t           cout, kt, kh, kw;   /* w [Cout, Cin, kt, kh, kw]              */
    int64_t           to, ho, wo;         /* y [Cout, To, Ho, Wo]                   */
    int               st, sh, sw;
    int               pt, pb, pl, pr;     /* spatial zero padding: top, bottom, left, right */
    enum infvsr_dtype x_dtype, w_dtype, y_dtype;
    bool              has_bias;
    enum infvsr_dtype b_dtype;            /* meaningful when has_bias               */
    int64_t           kc;                 /* GEMM depth Cin * kt * kh * kw          */
    int64_t           positions;          /* To * Ho * Wo                           */
};

/* The op's argument checks (everything but memory placement), with the CUDA backend's
 * messages; fills *g on success. x/w/y/b must be non-NULL where required (the caller has
 * checked placement). Errors: INVALID_ARG for malformed calls, UNSUPPORTED for f32 input
 * with a non-f32 output and for GEMM dims beyond 2^31. */
enum infvsr_status infvsr_conv3d_geom_check(const struct infvsr_conv3d_args * a, struct infvsr_conv3d_geom * g,
                                            struct infvsr_err * err);

/* The paths a conv3d call can take on the CUDA backend. */
enum infvsr_conv3d_path {
    INFVSR_CONV3D_PATH_IM2COL = 0, /* im2col chunks + cuBLASLt: takes every valid call   */
    INFVSR_CONV3D_PATH_IMPLICIT,   /* hand-written implicit GEMM, bf16 activations only  */
    INFVSR_CONV3D_PATH_CUDNN,      /* cuDNN graph API                                     */
};
const char * infvsr_conv3d_path_name(enum infvsr_conv3d_path p);

/* Element counts and dims cuDNN is given (int64 in the graph API, but its kernels index
 * with 32 bits in places): every tensor below 2^31 elements. */
#define INFVSR_CONV3D_CUDNN_MAX_ELEMS ((int64_t)1 << 31)
/* Byte alignment declared to cuDNN for x, w, b, y (the pool hands out 256-byte blocks;
 * a view into the middle of a tensor may be less aligned, and then cuDNN is not used). */
#define INFVSR_CONV3D_CUDNN_ALIGN 16

/* Whether cuDNN may be asked at all for this call: dtypes it can take (x f32 or bf16; y
 * f32 or bf16, not narrower than x; weights and bias any of f32/bf16/f16, converted),
 * sizes, and the alignment of the four data pointers (0 for an absent bias). On false,
 * *why (if non-NULL) names the reason. Whether cuDNN then has an engine for the shape is
 * its own answer, remembered per shape in the plan cache. */
bool infvsr_conv3d_cudnn_accepts(const struct infvsr_conv3d_geom * g, uintptr_t x, uintptr_t w, uintptr_t b,
                                 uintptr_t y, const char ** why);

/* The numerical notes cuDNN attaches to an engine, as flags (conv3d_cudnn.cu reads them;
 * this header stays free of cudnn.h). */
struct infvsr_conv3d_engine_notes {
    bool tensor_core;        /* uses tensor cores: TF32 for f32 data            */
    bool down_convert;       /* converts inputs to a narrower type first        */
    bool reduced_reduction;  /* accumulates in less than fp32                   */
    bool nondeterministic;   /* results may vary run to run                     */
};
/* Whether an engine keeps the op's numerics: fp32 accumulation and deterministic
 * always; for f32 activations also no TF32 and no down-conversion (the f32 path is the
 * exact one, matching the CPU to ~1e-6, as the GEMMs with CUBLAS_COMPUTE_32F). */
bool infvsr_conv3d_cudnn_engine_ok(enum infvsr_dtype x_dtype, const struct infvsr_conv3d_engine_notes * n);

/* The path a call takes:
 *   IM2COL                -> IM2COL
 *   IMPLICIT              -> IMPLICIT for bf16 x, else IM2COL
 *   CUDNN, AUTO           -> CUDNN when cudnn_ready (built with cuDNN and its handle was
 *                            created), cudnn_accepts is true and the shape is not known to
 *                            be refused by cuDNN (cudnn_refused, from the plan cache);
 *                            else IM2COL, the fallback that takes everything. */
enum infvsr_conv3d_path infvsr_conv3d_select(enum infvsr_cuda_conv_kernel requested, const struct infvsr_conv3d_geom * g,
                                             bool cudnn_ready, bool cudnn_accepts, bool cudnn_refused);

/* ---- plan cache ----
 * A small LRU map from the full call tuple to an opaque plan (the cuDNN execution plan
 * and what it needs, conv3d_cudnn.cu) or to a remembered refusal (payload NULL with
 * found = true: cuDNN had no engine, so the call goes to im2col without asking again).
 * Bounded: inserting into a full cache evicts the least recently used entry and hands
 * its payload to destroy(). Not thread-safe (one backend per worker thread). */
#define INFVSR_CONV3D_KEY_LEN 18
struct infvsr_conv3d_plan_key {
    int64_t v[INFVSR_CONV3D_KEY_LEN];
};
/* Every field of g that changes the plan: shapes, strides, pads, x/y dtypes, bias. */
void infvsr_conv3d_plan_key_make(const struct infvsr_conv3d_geom * g, struct infvsr_conv3d_plan_key * k);

struct infvsr_conv3d_plan_entry {
    struct infvsr_conv3d_plan_key key;
    void *                        payload; /* NULL: cuDNN refused this shape */
    uint64_t                      last_use;
};

struct infvsr_conv3d_plan_cache {
    struct infvsr_conv3d_plan_entry * e;
    int                               n, cap;
    uint64_t                          tick;
    uint64_t                          hits, misses, evictions;
    void (*destroy)(void * payload, void * ud);
    void *                            ud;
};

/* cap >= 1. destroy may be NULL. Returns false when out of memory. */
bool   infvsr_conv3d_plan_cache_init(struct infvsr_conv3d_plan_cache * c, int cap,
                                     void (*destroy)(void * payload, void * ud), void * ud);
/* Destroys every payload and frees the table; c may be zero-initialised (no-op). */
void   infvsr_conv3d_plan_cache_free(struct infvsr_conv3d_plan_cache * c);
/* Returns the payload and sets *found (a hit, counted) or returns NULL with *found false
 * (a miss, counted). */
void * infvsr_conv3d_plan_cache_get(struct infvsr_conv3d_plan_cache * c, const struct infvsr_conv3d_plan_key * k,
                                    bool * found);
/* Inserts (or replaces, destroying the old payload) the entry for k; payload NULL records
 * a refusal. Evicts the least recently used entry when full. */
void   infvsr_conv3d_plan_cache_put(struct infvsr_conv3d_plan_cache * c, const struct infvsr_conv3d_plan_key * k,
                                    void * payload);

#ifdef __cplusplus
}
#endif
