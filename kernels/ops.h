/* The backend op table: every computation the engine does goes through this interface.
 *
 * A backend is a vtable (`struct infvsr_backend_i`) plus a context. The CPU backend
 * (kernels/cpu) is the reference every test runs and must also be fast; the CUDA backend
 * (kernels/cuda) implements the same table on device memory. kernels/ knows nothing
 * about models: ops are described by shapes and a few scalar parameters.
 *
 * Conventions for every op below:
 *  - Activations are f32 tensors in the backend's memory ("x", "y", "q", ...).
 *    Weights ("w", "b", "gamma") may be F32, BF16 or F16 and are read in place; a backend
 *    must never keep a second full-size copy of a weight (the CPU backend widens small
 *    panels on the fly).
 *  - Shapes are PyTorch order (outermost first) and every tensor is contiguous.
 *  - "rows" means all dimensions but the last, flattened: a [T, H, W, C] tensor is
 *    T*H*W rows of C.
 *  - Output may alias input only where the comment says "in place allowed".
 *  - Ops validate shapes/dtypes and return INFVSR_ERR_INVALID_ARG (never assert) with a
 *    message in `err` when the caller passes inconsistent tensors.
 *  - All ops are synchronous on the CPU backend; on async backends results are ready
 *    after `synchronize`.
 *
 * Tolerances (tests/ops): fast CPU vs the float64 reference of kernels/cpu/ref:
 * relative L2 error <= 1e-5 for every op on f32 data. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "infvsr/status.h"
#include "infvsr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

struct infvsr_backend;

enum infvsr_unary_op {
    INFVSR_UNARY_GELU_TANH = 0, /* 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3)))  (DiT FFN)      */
    INFVSR_UNARY_GELU_ERF,      /* 0.5x(1 + erf(x/sqrt(2)))                   (Swin MLP)      */
    INFVSR_UNARY_SILU,          /* x * sigmoid(x)                                              */
    INFVSR_UNARY_COUNT
};

enum infvsr_resize_mode {
    INFVSR_RESIZE_NEAREST = 0,  /* nearest-exact: src = floor((dst + 0.5) * in/out)            */
    INFVSR_RESIZE_BILINEAR_AA,  /* torch interpolate(bilinear, antialias=True, align_corners=False) */
    INFVSR_RESIZE_BICUBIC_AA,   /* torch interpolate(bicubic, antialias=True): Keys a = -0.5   */
    INFVSR_RESIZE_COUNT
};

/* Arguments of the attention op. Multi-head softmax attention, never materialising the
 * full [Nq, Nk] score matrix (flash-style tiling, online softmax):
 *
 *   q:  [Nq, H*D]   head h uses channels [h*D, (h+1)*D)
 *   keys/values are the concatenation of up to two segments along tokens, segment 0
 *   first (the DiT passes the cached previous chunk as segment 0, the new chunk as
 *   segment 1, so the cache is never copied into a concat buffer):
 *   k0, v0: [N0, H*D]      k1, v1: [N1, H*D] or NULL
 *   bias: optional additive score bias, [H, Nq, Nk] (Nk = N0 + N1), f32
 *   out: [Nq, H*D]
 *   out[i, h] = sum_j softmax_j(scale * q_i.k_j + bias[h,i,j]) v_j
 */
struct infvsr_attn_args {
    const struct infvsr_tensor * q;
    const struct infvsr_tensor * k0;
    const struct infvsr_tensor * v0;
    const struct infvsr_tensor * k1;   /* optional */
    const struct infvsr_tensor * v1;   /* optional */
    const struct infvsr_tensor * bias; /* optional */
    int                          n_heads;
    float                        scale;
    struct infvsr_tensor *       out;
};

/* 3-D convolution, NCDHW without the batch axis:
 *   x: [Cin, T, H, W]  w: [Cout, Cin, kt, kh, kw]  b: [Cout] or NULL
 *   y: [Cout, To, Ho, Wo] with
 *   To = (T - kt) / st + 1                                 (no temporal padding: causal
 *                                                          padding / caches are prepended
 *                                                          by the caller)
 *   Ho = (H + pad_top + pad_bottom - kh) / sh + 1,  Wo likewise with pad_left/pad_right.
 * Spatial padding is zeros. A 2-D convolution is kt = 1 with T frames treated
 * independently. */
struct infvsr_conv3d_args {
    const struct infvsr_tensor * x;
    const struct infvsr_tensor * w;
    const struct infvsr_tensor * b;    /* optional */
    int stride_t, stride_h, stride_w;
    int pad_top, pad_bottom, pad_left, pad_right;
    struct infvsr_tensor *       y;
};

struct infvsr_backend_i {
    const char * (*name)(struct infvsr_backend * be);

    /* ---- memory ---- */
    /* Allocates device (or host) storage for t (metadata already set up). */
    enum infvsr_status (*tensor_alloc)(struct infvsr_backend * be, struct infvsr_tensor * t,
                                       struct infvsr_err * err);
    void               (*tensor_free) (struct infvsr_backend * be, struct infvsr_tensor * t);
    /* Copies nbytes between host memory and the tensor's storage (offset in bytes). */
    enum infvsr_status (*tensor_set)  (struct infvsr_backend * be, struct infvsr_tensor * t,
                                       const void * src, size_t offset, size_t nbytes);
    enum infvsr_status (*tensor_get)  (struct infvsr_backend * be, const struct infvsr_tensor * t,
                                       void * dst, size_t offset, size_t nbytes);
    /* (optional) waits for queued work; NULL on synchronous backends. */
    enum infvsr_status (*synchronize) (struct infvsr_backend * be);

    /* ---- GEMM family ---- */
    /* y[M, N] = act(x[M, K] . w[N, K]^T + b[N]);  w: F32/BF16/F16 (PyTorch Linear layout),
     * b optional (F32/BF16/F16). x, y: any rank, rows = numel/K. */
    enum infvsr_status (*linear)(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                 const struct infvsr_tensor * w, const struct infvsr_tensor * b,
                                 enum infvsr_unary_op act_or_count, struct infvsr_tensor * y,
                                 struct infvsr_err * err);
    /* Batched f32 matmul: c[B, M, N] = alpha * a[B, M, K] . op(b) with op(b) = b[B, N, K]^T
     * when trans_b, else b[B, K, N]. B = 1 for 2-D tensors. */
    enum infvsr_status (*matmul)(struct infvsr_backend * be, const struct infvsr_tensor * a,
                                 const struct infvsr_tensor * b, bool trans_b, float alpha,
                                 struct infvsr_tensor * c, struct infvsr_err * err);

    /* ---- normalisation (row-wise over the last dim C) ---- */
    /* y = (x - mean) / sqrt(var + eps) * w + b; w, b optional (non-affine when NULL).
     * In place allowed. */
    enum infvsr_status (*layer_norm)(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                     const struct infvsr_tensor * w, const struct infvsr_tensor * b,
                                     float eps, struct infvsr_tensor * y, struct infvsr_err * err);
    /* y = x * rsqrt(mean(x^2) + eps) * w; w optional. In place allowed. */
    enum infvsr_status (*rms_norm)(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                   const struct infvsr_tensor * w, float eps,
                                   struct infvsr_tensor * y, struct infvsr_err * err);
    /* Channel-first L2 norm of the Wan VAE: x [C, S...] (S = all trailing dims),
     * y[c, s] = x[c, s] / max(||x[:, s]||_2, 1e-12) * sqrt(C) * gamma[c]. In place allowed. */
    enum infvsr_status (*channel_rms_norm)(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                           const struct infvsr_tensor * gamma,
                                           struct infvsr_tensor * y, struct infvsr_err * err);
    /* AdaLN modulation: y[r, c] = x[r, c] * (1 + scale[c]) + shift[c]. In place allowed. */
    enum infvsr_status (*modulate)(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                   const struct infvsr_tensor * scale, const struct infvsr_tensor * shift,
                                   struct infvsr_tensor * y, struct infvsr_err * err);

    /* ---- elementwise ---- */
    /* y = op(x). In place allowed. */
    enum infvsr_status (*unary)(struct infvsr_backend * be, enum infvsr_unary_op op,
                                const struct infvsr_tensor * x, struct infvsr_tensor * y,
                                struct infvsr_err * err);
    /* y = a + b (same numel). In place allowed (y may be a or b). */
    enum infvsr_status (*add)(struct infvsr_backend * be, const struct infvsr_tensor * a,
                              const struct infvsr_tensor * b, struct infvsr_tensor * y,
                              struct infvsr_err * err);
    /* Gated residual: y[r, c] = x[r, c] + gate[c] * d[r, c]; gate optional (= 1).
     * In place allowed (y == x). */
    enum infvsr_status (*add_gated)(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                    const struct infvsr_tensor * gate, const struct infvsr_tensor * d,
                                    struct infvsr_tensor * y, struct infvsr_err * err);
    /* y = x * alpha + beta, then clamped to [lo, hi] (pass -INF/INF for no clamp).
     * In place allowed. */
    enum infvsr_status (*affine_clamp)(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                       float alpha, float beta, float lo, float hi,
                                       struct infvsr_tensor * y, struct infvsr_err * err);
    /* Row softmax over the last dim. In place allowed. */
    enum infvsr_status (*softmax)(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                  struct infvsr_tensor * y, struct infvsr_err * err);

    /* ---- attention and positions ---- */
    enum infvsr_status (*attention)(struct infvsr_backend * be, const struct infvsr_attn_args * a,
                                    struct infvsr_err * err);
    /* Complex RoPE on x [N, H*D] (D even): for token n, pair p of every head,
     * (x0, x1) -> (x0 cos - x1 sin, x0 sin + x1 cos) with cos/sin from `freqs`
     * [N, D/2, 2] F64 (cos, sin), evaluated in float64. In place allowed. */
    enum infvsr_status (*rope)(struct infvsr_backend * be, const struct infvsr_tensor * x,
                               const struct infvsr_tensor * freqs, int n_heads,
                               struct infvsr_tensor * y, struct infvsr_err * err);

    /* ---- convolution and resampling ---- */
    enum infvsr_status (*conv3d)(struct infvsr_backend * be, const struct infvsr_conv3d_args * a,
                                 struct infvsr_err * err);
    /* x [C, H, W] -> y [C, Ho, Wo] (any leading dims are batched planes), output size
     * taken from y. Computed in f32 as PyTorch's CPU path: horizontal pass first. */
    enum infvsr_status (*resize)(struct infvsr_backend * be, enum infvsr_resize_mode mode,
                                 const struct infvsr_tensor * x, struct infvsr_tensor * y,
                                 struct infvsr_err * err);
};

struct infvsr_backend {
    const struct infvsr_backend_i * iface;
    void *                          context;
};

/* ---- the CPU backend ---- */

struct infvsr_cpu_params {
    int  n_threads;   /* 0 = all online cores                                      */
    bool use_ref;     /* route every op to kernels/cpu/ref (float64 naive oracle)   */
};

struct infvsr_cpu_params infvsr_cpu_default_params(void);
enum infvsr_status       infvsr_cpu_backend_init(const struct infvsr_cpu_params * p,
                                                 struct infvsr_backend ** out);
void                     infvsr_cpu_backend_free(struct infvsr_backend * be);

/* ---- the CUDA backend (kernels/cuda; only when built with INFVSR_CUDA) ---- */
/* Returns INFVSR_ERR_UNSUPPORTED when the build has no CUDA or no device is present. */
enum infvsr_status infvsr_cuda_backend_init(int device, struct infvsr_backend ** out,
                                            struct infvsr_err * err);
void               infvsr_cuda_backend_free(struct infvsr_backend * be);

#ifdef __cplusplus
}
#endif
