/* Internals of the CPU backend shared by backend.c, the fast op files and kernels/cpu/ref.
 *
 * backend.c validates every tensor (shapes, dtypes, aliasing) and then calls either the
 * fast op (infvsr_cpu_op_*) or the float64 reference (infvsr_cpu_ref_*, kernels/cpu/ref)
 * with plain pointers and sizes, so the op files contain arithmetic only.
 * Weights (F32/BF16/F16, read in place) travel as a `struct infvsr_cpu_w`. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend_impl.h"
#include "isa.h"
#include "threadpool.h"

/* A weight read in place: data == NULL means "absent" (optional bias, gamma, ...). */
struct infvsr_cpu_w {
    const void *      data;
    enum infvsr_dtype dtype; /* F32, BF16 or F16 */
};

static inline float infvsr__w_get(struct infvsr_cpu_w w, size_t i) {
    switch (w.dtype) {
    case INFVSR_TYPE_BF16: return infvsr_bf16_to_f32(((const uint16_t *)w.data)[i]);
    case INFVSR_TYPE_F16:  return infvsr_f16_to_f32(((const uint16_t *)w.data)[i]);
    default:               return ((const float *)w.data)[i];
    }
}

/* Widens n elements starting at element `offset` into f32 (F32 is copied). */
void infvsr__w_widen(float * dst, struct infvsr_cpu_w w, size_t offset, size_t n);

/* A growable 64-byte aligned f32 buffer owned by the backend and reused between calls. */
struct infvsr_cpu_buf {
    float * data;
    size_t  cap; /* floats */
};
/* Makes room for n floats (contents not preserved); NULL when out of memory. */
float * infvsr__buf_reserve(struct infvsr_cpu_buf * b, size_t n);
void    infvsr__buf_free(struct infvsr_cpu_buf * b);

/* Packed bf16 GEMM operands of imported weights (kernels/cpu/weight_pack.c). */
struct infvsr_cpu_wrange {
    uintptr_t lo, hi;  /* [lo, hi): the storage of one imported weight */
    uint64_t  token;   /* its weight set's                             */
};
struct infvsr_cpu_packed {
    const void *      data;   /* the weight's storage (a view inside a range) */
    int64_t           N, K;
    int64_t           taps;   /* 0: a linear weight [N, K]; else an AMX conv3d's [N, K = Cin, taps] */
    enum infvsr_dtype dtype;
    uint64_t          token;  /* dropped with this weight set                 */
    uint16_t *        panel;  /* infvsr_cpu_linear_bf16_pack's layout, or the AMX conv's */
    size_t            bytes;
};
struct infvsr_cpu_wcache {
    struct infvsr_cpu_wrange * ranges;
    size_t                     n_ranges, cap_ranges;
    struct infvsr_cpu_packed * packed;
    size_t                     n_packed, cap_packed;
    uint64_t                   next_token;
    size_t                     bytes, budget; /* held and allowed bytes of packed panels */
    int64_t                    hits, packs;   /* linear calls served / panels packed (tests) */
};

#define INFVSR_CPU_ACT_POOL       16
#define INFVSR_CPU_ACT_POOL_BYTES ((size_t)128 << 20)

struct infvsr_cpu_ctx {
    struct infvsr_backend      be;
    struct infvsr_threadpool * pool;
    int                        n_threads;
    bool                       use_ref;
    bool                       bf16;    /* caps.act_dtype BF16                            */
    enum infvsr_cpu_isa        isa;     /* picks the bf16 kernels (isa.h)                 */
    pthread_mutex_t            lock;    /* one op at a time: the buffers below are shared */
    struct infvsr_cpu_buf      panel;   /* widened weight panel (linear) / conv weights */
    struct infvsr_cpu_buf      col;     /* conv3d column buffer, resize temp */
    struct infvsr_cpu_buf      scratch; /* per-thread tiles (attention) */
    int64_t                    native_attention_calls; /* bf16 attention runs (tests check the path) */
    struct infvsr_cpu_wcache   wcache;  /* packed weights (under lock)                    */
    /* recycled f32 temporaries of the generic bf16 path (backend.c act_take/act_give) */
    pthread_mutex_t            act_mu;
    struct infvsr_cpu_buf      act_pool[INFVSR_CPU_ACT_POOL];
    int                        act_pool_n;
    size_t                     act_pool_bytes;
};

/* ---- packed weights (kernels/cpu/weight_pack.c), all under c->lock ---- */

/* Budget of the packed weights in bytes: INFVSR_CPU_PACKED_MB (0 turns packing off), else
 * min(4 GiB, a quarter of the physical memory). */
size_t             infvsr__wcache_default_budget(void);
/* weights_imported / weights_released of the backend table. */
enum infvsr_status infvsr__wcache_import(struct infvsr_cpu_ctx * c, struct infvsr_tensor * const * ts, size_t n,
                                         uint64_t * token);
void               infvsr__wcache_release(struct infvsr_cpu_ctx * c, uint64_t token);
void               infvsr__wcache_free(struct infvsr_cpu_ctx * c);
/* The packed operand of weight w [N, K] for the bf16 GEMM, packing it on first use; NULL
 * when w is not inside an imported weight set (a test's tensor, an activation), when
 * the budget is spent or out of memory: the GEMM then packs per call. */
const uint16_t *   infvsr__wcache_linear(struct infvsr_cpu_ctx * c, struct infvsr_cpu_w w, int64_t N, int64_t K);
struct infvsr_cpu_conv;
/* The same for the AMX conv3d's weights (a's w, packed into `strips` strips with channels
 * padded to Cp: infvsr__conv3d_bf16_pack_w's layout), packed on first use; AVX512-BF16 code,
 * only on the amx level. NULL as above (the conv then packs per call). */
const uint16_t *   infvsr__wcache_conv_amx(struct infvsr_cpu_ctx * c, const struct infvsr_cpu_conv * a,
                                           int64_t strips, int64_t Cp);

/* Packs the conv weight w [Cout, Cin, kt, kh, kw] of an imported set now, in the layout the
 * AMX conv3d reads (conv3d_amx.c; pack_at_import on the amx level); true when packed or not
 * that kernel's, false when the budget is spent (the rest pack on first use or per call). */
bool infvsr__conv3d_amx_pack_weight(struct infvsr_cpu_ctx * c, struct infvsr_cpu_w w, const int64_t shape[5]);

/* The level of the bf16 kernels of a CPU backend (tests: which path should have run). */
enum infvsr_cpu_isa infvsr_cpu_backend_isa(const struct infvsr_backend * be);

/* Widens up to two per-channel vectors (a, b; either may be absent) into the panel buffer,
 * once per call, for the row ops of norm.c and act_bf16.c; false when out of memory. */
bool infvsr__widen_pair(struct infvsr_cpu_ctx * c, int64_t C, struct infvsr_cpu_w a, struct infvsr_cpu_w b,
                        const float ** wa, const float ** wb);

/* Runs fn over n_tasks on the backend's pool. */
static inline void infvsr__par(struct infvsr_cpu_ctx * c, int64_t n_tasks, infvsr_task_cb fn, void * ctx) {
    infvsr_threadpool_parallel_for(c->pool, n_tasks, fn, ctx);
}

/* Splits n items into tasks of about `grain` items, at most 8 per thread, >= 1. */
int64_t infvsr__n_chunks(const struct infvsr_cpu_ctx * c, int64_t n, int64_t grain);

/* ---- bf16 (kernels/cpu/bf16.c, gemm_bf16.c, gemm_amx.c) ---- */

/* dst[i] = f32 of bf16 src[i] / dst[i] = bf16 of src[i] rounded to nearest even (NaN
 * stays NaN), threaded over the pool; the same bits on every ISA level. */
void infvsr_cpu_bf16_widen(struct infvsr_cpu_ctx * c, float * dst, const uint16_t * src, int64_t n);
void infvsr_cpu_bf16_round(struct infvsr_cpu_ctx * c, uint16_t * dst, const float * src, int64_t n);

/* Whether linear with bf16 x of these sizes runs on a native bf16 GEMM here. */
bool infvsr_cpu_linear_bf16_applies(const struct infvsr_cpu_ctx * c, int64_t M, int64_t N, int64_t K);
/* The kernel that runs linear with bf16 x (backend.c): the AMX one only on the amx level,
 * the AVX512-BF16 one on avx512bf16, else (avx2, or sizes the native GEMMs skip) the
 * widened f32 path. */
enum infvsr_cpu_linear_bf16_kernel {
    INFVSR_CPU_LINEAR_BF16_WIDEN = 0,
    INFVSR_CPU_LINEAR_BF16_AVX512,
    INFVSR_CPU_LINEAR_BF16_AMX,
};
enum infvsr_cpu_linear_bf16_kernel infvsr_cpu_linear_bf16_kernel(const struct infvsr_cpu_ctx * c, int64_t M,
                                                                 int64_t N, int64_t K);
/* y[M, N] = act(x[M, K] . w[N, K]^T + b[N]) with bf16 x, w rounded to bf16 (read in place
 * when it is bf16), f32 accumulation and epilogue, y stored as y_dtype (F32 or BF16):
 * on AVX512-BF16 (gemm_bf16.c) and on AMX-BF16 tiles (gemm_amx.c; INFVSR_ERR_UNSUPPORTED
 * where this CPU has no AMX, so it can never fault). */
enum infvsr_status infvsr_cpu_op_linear_bf16(struct infvsr_cpu_ctx * c, const uint16_t * x, int64_t M, int64_t K,
                                             struct infvsr_cpu_w w, int64_t N, struct infvsr_cpu_w b,
                                             enum infvsr_unary_op act, void * y, enum infvsr_dtype y_dtype);
/* The same with w already packed whole (infvsr_cpu_linear_bf16_pack): no per-call packing. */
enum infvsr_status infvsr_cpu_op_linear_bf16_packed(struct infvsr_cpu_ctx * c, const uint16_t * x, int64_t M,
                                                    int64_t K, const uint16_t * packed, int64_t N,
                                                    struct infvsr_cpu_w b, enum infvsr_unary_op act, void * y,
                                                    enum infvsr_dtype y_dtype);
/* Pairs of k per packed strip: ceil(K / 2) rounded up to whole AMX B tiles (16 pairs), the
 * padding zero, so both bf16 GEMMs (AVX512-BF16 and AMX) read one packed layout. */
int64_t infvsr_cpu_bf16_strip_pairs(int64_t K);
/* bf16 elements of w [N, K] packed whole for the bf16 GEMMs (N padded to 64 columns,
 * strip_pairs(K) pairs per strip), and the packing. */
size_t infvsr_cpu_linear_bf16_packed_elems(int64_t N, int64_t K);
void   infvsr_cpu_linear_bf16_pack(struct infvsr_cpu_ctx * c, struct infvsr_cpu_w w, int64_t N, int64_t K,
                                   uint16_t * dst);
/* packed: w already packed whole (infvsr_cpu_linear_bf16_pack), or NULL to pack per call. */
enum infvsr_status infvsr_cpu_op_linear_amx(struct infvsr_cpu_ctx * c, const uint16_t * x, int64_t M, int64_t K,
                                            struct infvsr_cpu_w w, const uint16_t * packed, int64_t N,
                                            struct infvsr_cpu_w b, enum infvsr_unary_op act, void * y,
                                            enum infvsr_dtype y_dtype);
/* The bf16 GEMMs' shared epilogue: rows x cols of an f32 tile (row r at ct + r * ldc,
 * overwritten) plus bias[col0 + i] (f32, or NULL), then act (INFVSR_UNARY_COUNT: none),
 * stored at y[(m0 + r) * N + col0 + i] as y_dtype: f32, or bf16 rounded once to nearest
 * even (the bits of infvsr_f32_to_bf16). */
void infvsr__linear_bf16_epilogue(float * ct, int64_t ldc, int64_t rows, int64_t cols, const float * bias,
                                  enum infvsr_unary_op act, void * y, enum infvsr_dtype y_dtype, int64_t N,
                                  int64_t m0, int64_t col0);

/* ---- f32 span and row kernels shared by the f32 ops and the native bf16 ops (one
 * implementation, so both paths give the same bits). In place (x == y) is allowed. ---- */

void infvsr__unary_span(enum infvsr_unary_op op, const float * x, float * y, int64_t n);
/* The same bits on 16 lanes (act_bf16.c): AVX-512 F, so only on the avx512bf16 and amx levels. */
void infvsr__unary_span16(enum infvsr_unary_op op, const float * x, float * y, int64_t n);
void infvsr__add_span(const float * a, const float * b, float * y, int64_t n);
void infvsr__affine_clamp_span(const float * x, float * y, int64_t n, float alpha, float beta, float lo, float hi);
void infvsr__softmax_row(const float * x, float * y, int64_t C);
/* w, b: f32 [C] or NULL */
void infvsr__layer_norm_row(const float * x, float * y, int64_t C, const float * w, const float * b, float eps);
void infvsr__rms_norm_row(const float * x, float * y, int64_t C, const float * w, float eps);
/* one_plus_scale: 1 + scale, widened (the f32 op's own preparation) */
void infvsr__modulate_row(const float * x, float * y, int64_t C, const float * one_plus_scale, const float * shift);
/* y = x + gate * d (gate f32 [C] or NULL: y = x + d) */
void infvsr__add_gated_row(const float * x, const float * d, float * y, int64_t C, const float * gate);
/* x, y [H*D] of one token, f [D/2, 2] its (cos, sin) */
void infvsr__rope_row(const float * x, const double * f, float * y, int64_t H, int64_t D);
/* channel RMS norm of n <= 256 positions: channel ch at x + ch * ldx (y + ch * ldy), g [C] or NULL */
void infvsr__channel_norm_block(const float * x, int64_t ldx, float * y, int64_t ldy, int64_t C, int64_t n,
                                const float * g);

/* ---- native bf16 activation ops (kernels/cpu/act_bf16.c, matmul_bf16.c) ----
 * The generic bf16 path (backend.c act_in/act_finish) widens every bf16 tensor whole into an
 * f32 temporary, runs the f32 op and rounds the output back: three passes over memory
 * and temporaries as large as the tensors. The native ops convert block by block inside
 * the pool task instead (bf16 -> f32 into a small per-thread buffer, the shared f32
 * span/row kernel above, one rounding to nearest even on store), so they give the generic
 * path's bits. Operands are F32 or BF16 each (a mixed call converts only the bf16 ones). */
struct infvsr_cpu_act {
    void *            data;
    enum infvsr_dtype dtype; /* F32 or BF16 */
};
/* Whether bf16 activations take the native ops on this backend: the avx512bf16 and amx
 * levels (the avx2 level keeps the generic path), never in reference mode. */
bool infvsr_cpu_act_bf16_native(const struct infvsr_cpu_ctx * c);
void infvsr_cpu_op_unary_bf16(struct infvsr_cpu_ctx * c, enum infvsr_unary_op op, struct infvsr_cpu_act x, int64_t n,
                              struct infvsr_cpu_act y);
void infvsr_cpu_op_add_bf16(struct infvsr_cpu_ctx * c, struct infvsr_cpu_act a, struct infvsr_cpu_act b, int64_t n,
                            struct infvsr_cpu_act y);
void infvsr_cpu_op_affine_clamp_bf16(struct infvsr_cpu_ctx * c, struct infvsr_cpu_act x, int64_t n, float alpha,
                                     float beta, float lo, float hi, struct infvsr_cpu_act y);
/* INFVSR_ERR_NOMEM when a row is too long for the stack buffers and no memory is left */
enum infvsr_status infvsr_cpu_op_softmax_bf16(struct infvsr_cpu_ctx * c, struct infvsr_cpu_act x, int64_t R, int64_t C,
                                              struct infvsr_cpu_act y);
enum infvsr_status infvsr_cpu_op_layer_norm_bf16(struct infvsr_cpu_ctx * c, struct infvsr_cpu_act x, int64_t R,
                                                 int64_t C, struct infvsr_cpu_w w, struct infvsr_cpu_w b, float eps,
                                                 struct infvsr_cpu_act y);
enum infvsr_status infvsr_cpu_op_rms_norm_bf16(struct infvsr_cpu_ctx * c, struct infvsr_cpu_act x, int64_t R, int64_t C,
                                               struct infvsr_cpu_w w, float eps, struct infvsr_cpu_act y);
enum infvsr_status infvsr_cpu_op_modulate_bf16(struct infvsr_cpu_ctx * c, struct infvsr_cpu_act x, int64_t R, int64_t C,
                                               struct infvsr_cpu_w scale, struct infvsr_cpu_w shift,
                                               struct infvsr_cpu_act y);
/* y may alias x, not d */
enum infvsr_status infvsr_cpu_op_add_gated_bf16(struct infvsr_cpu_ctx * c, struct infvsr_cpu_act x,
                                                struct infvsr_cpu_w gate, struct infvsr_cpu_act d, int64_t R,
                                                int64_t C, struct infvsr_cpu_act y);
enum infvsr_status infvsr_cpu_op_rope_bf16(struct infvsr_cpu_ctx * c, struct infvsr_cpu_act x, int64_t N, int64_t H,
                                           int64_t D, const double * freqs, struct infvsr_cpu_act y);
/* x, y [C, S] */
enum infvsr_status infvsr_cpu_op_channel_rms_norm_bf16(struct infvsr_cpu_ctx * c, struct infvsr_cpu_act x, int64_t C,
                                                       int64_t S, struct infvsr_cpu_w gamma, struct infvsr_cpu_act y);
/* Test hooks: how many calls the native elementwise/row ops and the native matmul ran in
 * this process. */
uint64_t infvsr__act_bf16_calls(void);
uint64_t infvsr__matmul_bf16_calls(void);
/* Whether matmul with bf16 a and b of these sizes runs on the native bf16 kernel. */
bool infvsr_cpu_matmul_bf16_applies(const struct infvsr_cpu_ctx * c, int64_t B, int64_t M, int64_t K, int64_t N);
/* c[B, M, N] = alpha * a[B, M, K] . op(b) with bf16 a and b (VDPBF16PS, f32 accumulation,
 * alpha applied in f32), c stored as c_dtype (F32, or BF16 rounded once). */
enum infvsr_status infvsr_cpu_op_matmul_bf16(struct infvsr_cpu_ctx * c, const uint16_t * a, const uint16_t * b,
                                             int64_t B, int64_t M, int64_t K, int64_t N, bool trans_b, float alpha,
                                             void * out, enum infvsr_dtype c_dtype);
/* out rows at + r * ld (r < rows), columns 0..cols = alpha * ct rows (at ct + r * ldc), f32
 * or rounded once to bf16: the store of both batched bf16 matmul kernels (AVX2). */
void infvsr__matmul_store_rows(const float * ct, int64_t ldc, int64_t rows, int64_t cols, float alpha, void * out,
                               enum infvsr_dtype c_dtype, int64_t at, int64_t ld);
/* The same on AMX-BF16 tiles (matmul_amx.c; what the amx level runs): INFVSR_ERR_UNSUPPORTED
 * where the CPU has no AMX. */
enum infvsr_status infvsr_cpu_op_matmul_amx(struct infvsr_cpu_ctx * c, const uint16_t * a, const uint16_t * b,
                                            int64_t B, int64_t M, int64_t K, int64_t N, bool trans_b, float alpha,
                                            void * out, enum infvsr_dtype c_dtype);

/* ---- fast ops (kernels/cpu/<family>.c). All shapes were validated by backend.c. ---- */

/* y[M, N] = act(x[M, K] . w[N, K]^T + b[N]); act == INFVSR_UNARY_COUNT: none */
enum infvsr_status infvsr_cpu_op_linear(struct infvsr_cpu_ctx * c, const float * x, int64_t M, int64_t K,
                                        struct infvsr_cpu_w w, int64_t N, struct infvsr_cpu_w b,
                                        enum infvsr_unary_op act, float * y);
/* c[B, M, N] = alpha * a[B, M, K] . op(b) */
enum infvsr_status infvsr_cpu_op_matmul(struct infvsr_cpu_ctx * c, const float * a, const float * b,
                                        int64_t B, int64_t M, int64_t K, int64_t N, bool trans_b,
                                        float alpha, float * out);
void infvsr_cpu_op_layer_norm(struct infvsr_cpu_ctx * c, const float * x, int64_t R, int64_t C,
                              struct infvsr_cpu_w w, struct infvsr_cpu_w b, float eps, float * y);
void infvsr_cpu_op_rms_norm(struct infvsr_cpu_ctx * c, const float * x, int64_t R, int64_t C,
                            struct infvsr_cpu_w w, float eps, float * y);
void infvsr_cpu_op_channel_rms_norm(struct infvsr_cpu_ctx * c, const float * x, int64_t C, int64_t S,
                                    struct infvsr_cpu_w gamma, float * y);
void infvsr_cpu_op_modulate(struct infvsr_cpu_ctx * c, const float * x, int64_t R, int64_t C,
                            struct infvsr_cpu_w scale, struct infvsr_cpu_w shift, float * y);
void infvsr_cpu_op_unary(struct infvsr_cpu_ctx * c, enum infvsr_unary_op op, const float * x, int64_t n,
                         float * y);
void infvsr_cpu_op_add(struct infvsr_cpu_ctx * c, const float * a, const float * b, int64_t n, float * y);
void infvsr_cpu_op_add_gated(struct infvsr_cpu_ctx * c, const float * x, struct infvsr_cpu_w gate,
                             const float * d, int64_t R, int64_t C, float * y);
void infvsr_cpu_op_affine_clamp(struct infvsr_cpu_ctx * c, const float * x, int64_t n, float alpha,
                                float beta, float lo, float hi, float * y);
void infvsr_cpu_op_softmax(struct infvsr_cpu_ctx * c, const float * x, int64_t R, int64_t C, float * y);

/* Plain-pointer form of struct infvsr_attn_args (k1/v1/bias NULL when absent). q, k, v
 * are all of `dtype`, out of `out_dtype`: F32, or BF16 on the native bf16 attention only
 * (infvsr_cpu_attention_bf16_applies); the reference and the f32 kernel take F32. */
struct infvsr_cpu_attn {
    const void *      q;
    const void *      k0, * v0;
    const void *      k1, * v1;
    const float *     bias;
    int64_t           nq, n0, n1, n_heads, head_dim;
    float             scale;
    void *            out;
    enum infvsr_dtype dtype, out_dtype;
};
enum infvsr_status infvsr_cpu_op_attention(struct infvsr_cpu_ctx * c, const struct infvsr_cpu_attn * a);
/* Whether attention with bf16 q/k/v runs natively here (kernels/cpu/attention_bf16.c):
 * bf16 tiles, VDPBF16PS products, f32 softmax statistics. */
bool infvsr_cpu_attention_bf16_applies(const struct infvsr_cpu_ctx * c);
/* Same contract as infvsr_cpu_op_attention with a->dtype BF16 (out F32 or BF16). */
enum infvsr_status infvsr_cpu_op_attention_bf16(struct infvsr_cpu_ctx * c, const struct infvsr_cpu_attn * a);
/* The same on AMX-BF16 tiles (attention_amx.c), what the former runs on the `amx` level;
 * INFVSR_ERR_UNSUPPORTED where the CPU lacks AMX. */
enum infvsr_status infvsr_cpu_op_attention_amx(struct infvsr_cpu_ctx * c, const struct infvsr_cpu_attn * a);
void infvsr_cpu_op_rope(struct infvsr_cpu_ctx * c, const float * x, int64_t N, int64_t H, int64_t D,
                        const double * freqs, float * y);

/* Plain-pointer form of struct infvsr_conv3d_args. */
struct infvsr_cpu_conv {
    const float *       x;
    struct infvsr_cpu_w w, b;
    int64_t             cin, t, h, w_in;
    int64_t             cout, kt, kh, kw;
    int64_t             st, sh, sw;
    int64_t             pad_top, pad_bottom, pad_left, pad_right;
    int64_t             to, ho, wo;
    float *             y;
};
enum infvsr_status infvsr_cpu_op_conv3d(struct infvsr_cpu_ctx * c, const struct infvsr_cpu_conv * a);
/* Whether conv3d with bf16 x of this shape runs on the native bf16 kernel here. */
bool infvsr_cpu_conv3d_bf16_applies(const struct infvsr_cpu_ctx * c, const struct infvsr_cpu_conv * a);
/* The native bf16 conv3d (conv3d_bf16.c): a's shapes, w and b; x bf16 [Cin, T, H, W] (a->x
 * unused), y [Cout, To, Ho, Wo] stored as y_dtype (F32 or BF16; a->y unused). */
enum infvsr_status infvsr_cpu_op_conv3d_bf16(struct infvsr_cpu_ctx * c, const struct infvsr_cpu_conv * a,
                                             const uint16_t * x, void * y, enum infvsr_dtype y_dtype);
/* Test hook: how many calls the native bf16 conv3d has run in this process. */
uint64_t infvsr__conv3d_bf16_calls(void);
/* Bench hook: the native bf16 conv3d on every shape, also where the generic path is
 * preferred (F(4x4) shapes); returns the previous setting. Not thread-safe. */
bool infvsr__conv3d_bf16_set_always(bool on);
/* Test hook: the budget of the channels-last input copy per frame group (0 = the default
 * 64 MiB; 1 = one output frame per group), returns the previous one. Not thread-safe. */
size_t infvsr__conv3d_bf16_set_xp_bytes(size_t bytes);
/* The kernel that runs conv3d with bf16 x (backend.c; where each shape runs and why:
 * conv3d_amx.c's header): the AMX one only on the amx level, the AVX512-BF16 implicit GEMM
 * on avx512bf16 and up, else the generic path (widen, f32 kernel, round). */
enum infvsr_cpu_conv3d_bf16_kernel {
    INFVSR_CPU_CONV3D_BF16_GENERIC = 0,
    INFVSR_CPU_CONV3D_BF16_AVX512,
    INFVSR_CPU_CONV3D_BF16_AMX,
};
enum infvsr_cpu_conv3d_bf16_kernel infvsr_cpu_conv3d_bf16_kernel(const struct infvsr_cpu_ctx * c,
                                                                 const struct infvsr_cpu_conv * a);
/* The AMX-BF16 conv3d (conv3d_amx.c), the contract of infvsr_cpu_op_conv3d_bf16;
 * INFVSR_ERR_UNSUPPORTED where this CPU has no AMX (never faults). */
enum infvsr_status infvsr_cpu_op_conv3d_amx(struct infvsr_cpu_ctx * c, const struct infvsr_cpu_conv * a,
                                            const uint16_t * x, void * y, enum infvsr_dtype y_dtype);
/* Test hook: how many calls the AMX conv3d has run in this process. */
uint64_t infvsr__conv3d_amx_calls(void);
/* Test hook: infvsr__conv3d_bf16_set_xp_bytes for the AMX conv3d. */
size_t infvsr__conv3d_amx_set_xp_bytes(size_t bytes);
/* Bench hook: force the bf16 conv3d kernel (GENERIC: no forcing, the shape rule decides;
 * AVX512 or AMX: that kernel on every shape its level allows); returns the previous one.
 * Not thread-safe. */
enum infvsr_cpu_conv3d_bf16_kernel infvsr__conv3d_bf16_force(enum infvsr_cpu_conv3d_bf16_kernel k);
/* conv3d_bf16.c's pieces that the AMX conv reuses on the real tiles (AVX512-BF16 code: only
 * where the level is avx512bf16 or amx): the channels-last input copy xp [tl][Hp][Wp][Cp]
 * of input frames t0 .. t0 + tl (channels Cin .. Cp zero), the weights packed into `strips`
 * 16-column strips [strip][taps * Cp / 2][16][2] (zero past Cout and Cin), and the
 * transposing epilogue of an f32 tile ct [rows][nt] (rows up to the next multiple of 16
 * are scratch) into y [Cout, P] at channels col0 .. col0 + cols, positions ybase .. */
void infvsr__conv3d_bf16_fill_xp(struct infvsr_cpu_ctx * c, const struct infvsr_cpu_conv * a, const uint16_t * x,
                                 uint16_t * xp, int64_t t0, int64_t tl, int64_t Hp, int64_t Wp, int64_t Cp);
void infvsr__conv3d_bf16_pack_w(struct infvsr_cpu_ctx * c, const struct infvsr_cpu_conv * a, uint16_t * wp,
                                int64_t strips, int64_t Cp);
void infvsr__conv3d_bf16_epilogue(float * ct, int64_t nt, int64_t rows, int64_t col0, int64_t cols,
                                  const float * bias, void * y, enum infvsr_dtype y_dtype, size_t P, size_t ybase);
/* x [P, Hi, Wi] -> y [P, Ho, Wo] */
enum infvsr_status infvsr_cpu_op_resize(struct infvsr_cpu_ctx * c, enum infvsr_resize_mode mode,
                                        const float * x, int64_t P, int64_t Hi, int64_t Wi, float * y,
                                        int64_t Ho, int64_t Wo);

/* Strided copy family (a validated by infvsr_copy_validate, plan from it). */
void infvsr_cpu_op_copy(struct infvsr_cpu_ctx * c, const struct infvsr_copy_args * a,
                        const struct infvsr_copy_plan * plan);
/* y[r] = x[idx[r]] for rows of row_bytes (indices already range-checked). */
void infvsr_cpu_op_gather_rows(struct infvsr_cpu_ctx * c, const void * x, const int32_t * idx, int64_t rows,
                               size_t row_bytes, void * y);

/* ---- float64 reference ops (kernels/cpu/ref/ref_*.c): naive loops, double accumulation,
 * f32 stores, single-threaded. Same arguments as the fast ops. ---- */

void infvsr_cpu_ref_linear(const float * x, int64_t M, int64_t K, struct infvsr_cpu_w w, int64_t N,
                           struct infvsr_cpu_w b, enum infvsr_unary_op act, float * y);
void infvsr_cpu_ref_matmul(const float * a, const float * b, int64_t B, int64_t M, int64_t K, int64_t N,
                           bool trans_b, float alpha, float * out);
void infvsr_cpu_ref_layer_norm(const float * x, int64_t R, int64_t C, struct infvsr_cpu_w w,
                               struct infvsr_cpu_w b, float eps, float * y);
void infvsr_cpu_ref_rms_norm(const float * x, int64_t R, int64_t C, struct infvsr_cpu_w w, float eps, float * y);
void infvsr_cpu_ref_channel_rms_norm(const float * x, int64_t C, int64_t S, struct infvsr_cpu_w gamma, float * y);
void infvsr_cpu_ref_modulate(const float * x, int64_t R, int64_t C, struct infvsr_cpu_w scale,
                             struct infvsr_cpu_w shift, float * y);
double infvsr_cpu_ref_unary1(enum infvsr_unary_op op, double x);
void infvsr_cpu_ref_unary(enum infvsr_unary_op op, const float * x, int64_t n, float * y);
void infvsr_cpu_ref_add(const float * a, const float * b, int64_t n, float * y);
void infvsr_cpu_ref_add_gated(const float * x, struct infvsr_cpu_w gate, const float * d, int64_t R,
                              int64_t C, float * y);
void infvsr_cpu_ref_affine_clamp(const float * x, int64_t n, float alpha, float beta, float lo, float hi,
                                 float * y);
void infvsr_cpu_ref_softmax(const float * x, int64_t R, int64_t C, float * y);
/* needs Nk doubles of scratch per call; returns false when out of memory */
bool infvsr_cpu_ref_attention(const struct infvsr_cpu_attn * a);
void infvsr_cpu_ref_rope(const float * x, int64_t N, int64_t H, int64_t D, const double * freqs, float * y);
void infvsr_cpu_ref_conv3d(const struct infvsr_cpu_conv * a);
bool infvsr_cpu_ref_resize(enum infvsr_resize_mode mode, const float * x, int64_t P, int64_t Hi, int64_t Wi,
                           float * y, int64_t Ho, int64_t Wo);
