/* The backend op table (private to base/, kernels/ and engine/): the vtable every backend
 * implements, the argument blocks of the larger ops, and the backend constructors.
 * Programs above the engine see only infvsr/backend.h; the engine calls ops through the
 * inline wrappers of ops.h, never through `iface` directly.
 *
 * Conventions for every op:
 *  - Activations ("x", "y", "q", ...) are tensors in the backend's memory, of an
 *    activation dtype the backend accepts (caps.act_f32 / caps.act_bf16; the CPU backend
 *    takes f32 only). Weights ("w", "b", "gamma", "scale", ...) may be F32, BF16 or F16 and
 *    are read in place; a backend never keeps a second full-size copy of a weight
 *    resident beside it (the CPU's packed bf16 GEMM operands replace the original's pages
 *    in the resident set: kernels/cpu/weight_pack.c).
 *  - Shapes are PyTorch order (outermost first) and every tensor is contiguous; views with
 *    other layouts are expressed through the `copy` op's strides.
 *  - "rows" means all dimensions but the last, flattened: a [T, H, W, C] tensor is
 *    T*H*W rows of C.
 *  - Output may alias input only where the comment says "in place allowed".
 *  - Ops validate shapes/dtypes and return INFVSR_ERR_INVALID_ARG (never assert) with a
 *    message in `err` when the caller passes inconsistent tensors.
 *  - Ops and tensor_get are asynchronous on device backends: results are ready (and
 *    queued errors reported) after `synchronize` (see infvsr/backend.h).
 *
 * Tolerances (tests/ops): fast CPU vs the float64 reference of kernels/cpu/ref: relative
 * L2 error <= 1e-5 for every op on f32 data; other backends vs the CPU backend in the
 * one op-case table of tests/ops. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "infvsr/backend.h"
#include "infvsr/status.h"
#include "infvsr/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

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

/* The strided ("pitched") copy family: every data movement between ops (cache prepend,
 * permutes, tile gather and blend, patchify, frame conversion) is one of these, so the
 * engine never touches tensor memory on the host.
 *
 * Each operand is a view of up to INFVSR_COPY_MAX_DIMS dims over a tensor: element offset
 * + one element stride per dim (>= 0; 0 broadcasts x or m); all operands share `extent`;
 * y's view must address each element at most once (stride 0 in y is refused). For element
 * index (i0, ..., i5): x[xo + sum i_d xs_d], m[...], y[...]. Every element any view can
 * reach must lie inside its tensor (checked). Math is f32 (each operation rounded to f32
 * in the order written), stored with round-to-nearest-even into y's dtype.
 *
 *   SET           y = x          any dtype to the same dtype (byte copy; F64, I32, U8 too)
 *                                or between F32/BF16/F16 (converted)
 *   ACCUMULATE    y = y + (alpha * x) * m      m optional (1); product rounded, then the add
 *   DIVIDE        y = x / m
 *   U8_TO_MODEL   y = ((x / 255) * 2) - 1      x U8: frames into the model range
 *   U8_TO_UNIT    y = (((x / 255) * 2) - 1) / 2 + 0.5   (the reference frame, MODEL-SPEC 3.2)
 *   MODEL_TO_U8   y = trunc(clamp((x + 1) * 127.5, 0, 255))   y U8 (NaN -> 0)
 *   FILL          y = alpha      x unused (may be NULL): zeroing caches, constants
 *
 * Aliasing: y may overlap x or m only when the overlapping view is exactly y's view
 * (element-wise in place), or, for SET, when x and y are both dense row-major views
 * (a memmove: the arena settle of the VAE). */
#define INFVSR_COPY_MAX_DIMS 6

enum infvsr_copy_mode {
    INFVSR_COPY_SET = 0,
    INFVSR_COPY_ACCUMULATE,
    INFVSR_COPY_DIVIDE,
    INFVSR_COPY_U8_TO_MODEL,
    INFVSR_COPY_U8_TO_UNIT,
    INFVSR_COPY_MODEL_TO_U8,
    INFVSR_COPY_FILL,
    INFVSR_COPY_MODE_COUNT
};

struct infvsr_copy_args {
    enum infvsr_copy_mode        mode;
    int                          ndim;                            /* 1..INFVSR_COPY_MAX_DIMS */
    int64_t                      extent[INFVSR_COPY_MAX_DIMS];
    const struct infvsr_tensor * x;
    int64_t                      x_offset;
    int64_t                      x_stride[INFVSR_COPY_MAX_DIMS];
    const struct infvsr_tensor * m;                               /* ACCUMULATE (optional), DIVIDE */
    int64_t                      m_offset;
    int64_t                      m_stride[INFVSR_COPY_MAX_DIMS];
    struct infvsr_tensor *       y;
    int64_t                      y_offset;
    int64_t                      y_stride[INFVSR_COPY_MAX_DIMS];
    float                        alpha;                           /* ACCUMULATE, FILL        */
};

struct infvsr_backend_i {
    const char * (*name)(struct infvsr_backend * be);
    void         (*get_caps)(struct infvsr_backend * be, struct infvsr_backend_caps * caps);
    /* "" while healthy, else the first device failure. */
    const char * (*last_error)(struct infvsr_backend * be);
    void         (*free)(struct infvsr_backend * be);

    /* ---- memory ---- */
    /* Allocates zeroed storage for t (metadata already set up); sets data, mem, owns_data. */
    enum infvsr_status (*tensor_alloc)(struct infvsr_backend * be, struct infvsr_tensor * t,
                                       struct infvsr_err * err);
    void               (*tensor_free) (struct infvsr_backend * be, struct infvsr_tensor * t);
    /* Copies nbytes between host memory and the tensor's storage (offset in bytes). */
    enum infvsr_status (*tensor_set)  (struct infvsr_backend * be, struct infvsr_tensor * t,
                                       const void * src, size_t offset, size_t nbytes,
                                       struct infvsr_err * err);
    enum infvsr_status (*tensor_get)  (struct infvsr_backend * be, const struct infvsr_tensor * t,
                                       void * dst, size_t offset, size_t nbytes, struct infvsr_err * err);
    /* (optional) waits for queued work; NULL on synchronous backends. */
    enum infvsr_status (*synchronize) (struct infvsr_backend * be, struct infvsr_err * err);

    /* ---- GEMM family ---- */
    /* y[M, N] = act(x[M, K] . w[N, K]^T + b[N]);  w: F32/BF16/F16 (PyTorch Linear layout),
     * b optional (F32/BF16/F16). x, y: any rank, rows = numel/K. */
    enum infvsr_status (*linear)(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                 const struct infvsr_tensor * w, const struct infvsr_tensor * b,
                                 enum infvsr_unary_op act_or_count, struct infvsr_tensor * y,
                                 struct infvsr_err * err);
    /* Batched matmul: c[B, M, N] = alpha * a[B, M, K] . op(b) with op(b) = b[B, N, K]^T
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

    /* ---- data movement ---- */
    /* The strided copy family above. */
    enum infvsr_status (*copy)(struct infvsr_backend * be, const struct infvsr_copy_args * a,
                               struct infvsr_err * err);
    /* y[i, :] = x[idx[i], :] for every row i of y (rows over the last dim C, equal in x
     * and y; same dtype, any of F32/BF16/F16/F64). idx: I32 [rows of y] in backend
     * memory, every entry in [0, rows of x) (checked by the CPU backend; device backends
     * may not check). Tables are built once (Swin window partition, shift roll, patch
     * merge) so the per-call cost is one gather. y must not alias x. */
    enum infvsr_status (*gather_rows)(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                      const struct infvsr_tensor * idx, struct infvsr_tensor * y,
                                      struct infvsr_err * err);

    /* ---- weight lifetime (optional, NULL: nothing to do) ---- */
    /* ts[0 .. n) are one module's weights, committed (engine/core/weight_set.h): their
     * storage (and every view inside it) stays unchanged until weights_released with the
     * token returned here. A backend may keep data derived from them in between (the CPU
     * backend's packed bf16 GEMM operands) and must drop it at release, before the memory
     * can be reused. Called between ops, like tensor_alloc. */
    enum infvsr_status (*weights_imported)(struct infvsr_backend * be, struct infvsr_tensor * const * ts, size_t n,
                                           uint64_t * token, struct infvsr_err * err);
    void               (*weights_released)(struct infvsr_backend * be, uint64_t token);
};

/* The wrappers of weights_imported / weights_released (base/src/backend.c): no-ops (token
 * 0) on a backend without them. */
enum infvsr_status infvsr_backend_weights_imported(struct infvsr_backend * be, struct infvsr_tensor * const * ts,
                                                   size_t n, uint64_t * token, struct infvsr_err * err);
void               infvsr_backend_weights_released(struct infvsr_backend * be, uint64_t token);

/* Every backend object starts with this header; `context` is the backend's own state. */
struct infvsr_backend {
    const struct infvsr_backend_i * iface;
    void *                          context;
    enum infvsr_mem                 mem;      /* where this backend's tensors live        */
    struct infvsr_backend_traffic   traffic;  /* counted by base/src/backend.c            */
};

/* ---- shared argument validation (base/src/copy_check.c), so that every backend accepts
 * and refuses exactly the same copy and gather calls ---- */

struct infvsr_copy_plan {
    int64_t n;        /* elements to process (0: nothing to do)                         */
    bool    use_m;    /* m takes part                                                   */
    bool    memmove;  /* SET over overlapping dense views: one memmove of n elements    */
    bool    dense_set; /* SET, one dtype, both views dense: one memcpy/memmove of n elements */
};
enum infvsr_status infvsr_copy_validate(const char * be, const struct infvsr_copy_args * a,
                                        struct infvsr_copy_plan * plan, struct infvsr_err * err);
/* rows/cols of y (cols = the shared last dim). */
enum infvsr_status infvsr_gather_validate(const char * be, const struct infvsr_tensor * x,
                                          const struct infvsr_tensor * idx, const struct infvsr_tensor * y,
                                          int64_t * rows, int64_t * cols, struct infvsr_err * err);

/* ---- backend constructors (kernels/; programs use infvsr_backend_init_by_name) ---- */

struct infvsr_cpu_params {
    int  n_threads;   /* 0 = all online cores                                      */
    bool use_ref;     /* route every op to kernels/cpu/ref (float64 naive oracle)   */
    bool bf16;        /* caps.act_dtype BF16 (every op accepts f32 and bf16 anyway)  */
    int  isa;         /* enum infvsr_cpu_isa (kernels/cpu/isa.h) of the bf16 kernels;
                         -1: the best this CPU runs (registry.c applies the overrides) */
};

struct infvsr_cpu_params infvsr_cpu_default_params(void);
enum infvsr_status       infvsr_cpu_backend_init(const struct infvsr_cpu_params * p,
                                                 struct infvsr_backend ** out);

/* The CUDA backend (kernels/cuda; kernels/cuda/no_cuda.c when built without CUDA):
 * INFVSR_ERR_UNSUPPORTED when the build has no CUDA or no usable device is present. */
enum infvsr_status infvsr_cuda_backend_init(int device, enum infvsr_precision precision,
                                            struct infvsr_backend ** out, struct infvsr_err * err);

/* The device-emulating test backend (kernels/devsim). */
enum infvsr_status infvsr_devsim_backend_init(int index, const struct infvsr_backend_opts * opts,
                                              struct infvsr_backend ** out, struct infvsr_err * err);

#ifdef __cplusplus
}
#endif
