/* 3-D convolution (kernels/ops.h infvsr_conv3d_args) as im2col + cuBLASLt GEMM.
 *
 * Why not an implicit-GEMM tensor-core kernel or cuDNN: a hand-written implicit GEMM
 * that reaches cuBLAS-class throughput is weeks of tuning we cannot test without a GPU,
 * and cuDNN would add a 1 GB dependency to CI. im2col + cuBLASLt gets the library's
 * tensor-core GEMM rate (bf16 in, fp32 accumulate) today; the price is the column
 * buffer traffic (K = Cin*kt*kh*kw times the input, 27x for 3x3x3), bounded by
 * processing output positions in chunks whose column buffer fits in CU_COL_BUDGET, a
 * pooled temporary (so it is allocated once and reused every call). A 1x1x1 stride-1
 * unpadded conv skips im2col entirely (x already is the [K, P] column matrix).
 * conv3d_implicit.cu holds an implicit-GEMM tensor-core kernel (bf16), selectable with
 * infvsr_cuda_backend_set_conv_kernel; it becomes the default once measured on a GPU.
 *
 * GEMM mapping (row-major -> cuBLASLt column-major, no transposes):
 *   y[Cout, P] = W[Cout, K] . col[K, P]   ==  D(P x Cout, ld P) = A(P x K, ld pc) . B(K x Cout, ld K)
 * with A = the column chunk [K, pc] (row-major) and D = y + p0 (leading dim P).
 *
 * im2col thread split: one thread per (k, p) element of the chunk, p fastest, so writes
 * are coalesced and reads walk consecutive output columns (stride sw in x). */
#include "cuda_common.cuh"

#define CU_COL_BUDGET ((size_t)256 << 20)

struct conv_geom {
    int64_t cin, t, h, w;
    int64_t kt, kh, kw;
    int64_t to, ho, wo;
    int     st, sh, sw, pt, pl;
};

__global__ void k_im2col(const void * x, int xd, void * col, conv_geom g, int64_t p0, int64_t pc,
                         int64_t kc) {
    const int64_t n = kc * pc;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t k  = i / pc, pl = i % pc, p = p0 + pl;
        const int64_t wo = p % g.wo, ho = (p / g.wo) % g.ho, to = p / (g.wo * g.ho);
        const int64_t dw = k % g.kw, dh = (k / g.kw) % g.kh, dt = (k / (g.kw * g.kh)) % g.kt;
        const int64_t ci = k / (g.kw * g.kh * g.kt);
        const int64_t tt = to * g.st + dt;
        const int64_t hh = ho * g.sh - g.pt + dh;
        const int64_t ww = wo * g.sw - g.pl + dw;
        float v = 0.0f;
        if (hh >= 0 && hh < g.h && ww >= 0 && ww < g.w)
            v = cu_load(x, xd, ((ci * g.t + tt) * g.h + hh) * g.w + ww);
        cu_store(col, xd, i, v); /* same dtype in and out: exact */
    }
}

namespace {
struct scratch2 {
    cuda_ctx * c;
    void *     w = nullptr, * col = nullptr;
    explicit scratch2(cuda_ctx * ctx) : c(ctx) {}
    ~scratch2() {
        if (w) cu_scratch_free(c, w);
        if (col) cu_scratch_free(c, col);
    }
};
}  // namespace

enum infvsr_status cu_conv3d(struct infvsr_backend * be, const struct infvsr_conv3d_args * a,
                             struct infvsr_err * err) {
    cuda_ctx * c = cu_ctx(be);
    CU_ENTER(c, err);
    if (!a) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "conv3d: args is NULL");
    INFVSR_TRY(cu_check_tensor(a->x, "conv3d", "x", false, err));
    INFVSR_TRY(cu_check_tensor(a->w, "conv3d", "w", true, err));
    INFVSR_TRY(cu_check_tensor(a->y, "conv3d", "y", false, err));
    const infvsr_tensor * x = a->x, * w = a->w, * y = a->y;
    if (x->ndim != 4 || w->ndim != 5 || y->ndim != 4)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "conv3d: expected x [Cin,T,H,W], w [Cout,Cin,kt,kh,kw], "
                      "y [Cout,To,Ho,Wo]; got ranks %d, %d, %d", x->ndim, w->ndim, y->ndim);
    if (a->stride_t <= 0 || a->stride_h <= 0 || a->stride_w <= 0 || a->pad_top < 0 ||
        a->pad_bottom < 0 || a->pad_left < 0 || a->pad_right < 0)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "conv3d: strides must be > 0 and pads >= 0");
    conv_geom g;
    g.cin = x->shape[0]; g.t = x->shape[1]; g.h = x->shape[2]; g.w = x->shape[3];
    const int64_t cout = w->shape[0];
    g.kt = w->shape[2]; g.kh = w->shape[3]; g.kw = w->shape[4];
    g.st = a->stride_t; g.sh = a->stride_h; g.sw = a->stride_w;
    g.pt = a->pad_top;  g.pl = a->pad_left;
    if (w->shape[1] != g.cin)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "conv3d: w in-channels %lld != x channels %lld",
                      (long long)w->shape[1], (long long)g.cin);
    const int64_t hp = g.h + a->pad_top + a->pad_bottom, wp = g.w + a->pad_left + a->pad_right;
    if (g.kt < 1 || g.kh < 1 || g.kw < 1 || g.t < g.kt || hp < g.kh || wp < g.kw)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "conv3d: kernel [%lld, %lld, %lld] larger than the "
                      "padded input [%lld, %lld, %lld]", (long long)g.kt, (long long)g.kh,
                      (long long)g.kw, (long long)g.t, (long long)hp, (long long)wp);
    g.to = (g.t - g.kt) / g.st + 1;
    g.ho = (hp - g.kh) / g.sh + 1;
    g.wo = (wp - g.kw) / g.sw + 1;
    if (y->shape[0] != cout || y->shape[1] != g.to || y->shape[2] != g.ho || y->shape[3] != g.wo)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "conv3d: y must be [%lld, %lld, %lld, %lld], is "
                      "[%lld, %lld, %lld, %lld]", (long long)cout, (long long)g.to, (long long)g.ho,
                      (long long)g.wo, (long long)y->shape[0], (long long)y->shape[1],
                      (long long)y->shape[2], (long long)y->shape[3]);
    if (a->b) {
        INFVSR_TRY(cu_check_tensor(a->b, "conv3d", "b", true, err));
        if (infvsr_tensor_numel(a->b) != cout)
            return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "conv3d: b has %lld elements, expected %lld",
                          (long long)infvsr_tensor_numel(a->b), (long long)cout);
    }
    if (x->dtype == INFVSR_TYPE_F32 && y->dtype != INFVSR_TYPE_F32)
        return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "conv3d: f32 input with %s output is not supported",
                      infvsr_dtype_name(y->dtype));
    if (x->data == y->data)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "conv3d: y must not alias x");
    const int64_t kc = g.cin * g.kt * g.kh * g.kw;
    const int64_t P  = g.to * g.ho * g.wo;
    if (P == 0 || cout == 0) return INFVSR_OK;
    if (kc > INT32_MAX || P > INT32_MAX || cout > INT32_MAX)
        return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "conv3d: GEMM dims beyond 2^31");

    scratch2 s(c);
    const int ab = x->dtype;
    const size_t es = infvsr_dtype_size(x->dtype);
    const void * wptr = w->data;
    if ((int)w->dtype != ab) {
        INFVSR_TRY(cu_scratch(c, (size_t)infvsr_tensor_numel(w) * es, &s.w, err));
        INFVSR_TRY(cu_convert(c, w->data, w->dtype, s.w, ab, infvsr_tensor_numel(w), err));
        wptr = s.w;
    }
    if (c->conv_kernel == INFVSR_CUDA_CONV_IMPLICIT && ab == INFVSR_TYPE_BF16) {
        const int stride[3] = { g.st, g.sh, g.sw };
        return cu_conv3d_implicit(c, x->data, wptr, a->b ? a->b->data : nullptr, a->b ? a->b->dtype : 0,
                                  y->data, y->dtype, x->shape, w->shape, y->shape, stride, g.pt, g.pl,
                                  err);
    }
    const bool direct = g.kt == 1 && g.kh == 1 && g.kw == 1 && g.st == 1 && g.sh == 1 && g.sw == 1 &&
                        a->pad_top == 0 && a->pad_bottom == 0 && a->pad_left == 0 && a->pad_right == 0;
    int64_t pc = P;
    if (!direct) {
        int64_t fit = (int64_t)(CU_COL_BUDGET / ((size_t)kc * es));
        fit = fit / 64 * 64; /* chunk starts stay 128-byte aligned in y */
        if (fit < 64) fit = 64;
        if (fit < pc) pc = fit;
        INFVSR_TRY(cu_scratch(c, (size_t)kc * (size_t)pc * es, &s.col, err));
    }
    for (int64_t p0 = 0; p0 < P; p0 += pc) {
        const int64_t n = (P - p0 < pc) ? P - p0 : pc;
        cu_gemm gm = {};
        gm.trans_a = false; gm.trans_b = false;
        gm.m = n; gm.n = cout; gm.k = kc;
        if (direct) {
            gm.a = (const char *)x->data + p0 * es; gm.lda = P;
        } else {
            CU_LAUNCH(cu_grid_for(kc * n, 256), 256, 0, c->stream, k_im2col)(x->data, x->dtype, s.col, g, p0,
                                                                       n, kc);
            CU_CHECK_LAUNCH(c, err);
            gm.a = s.col; gm.lda = n;
        }
        gm.b = wptr; gm.ldb = kc;
        gm.d = (char *)y->data + p0 * infvsr_dtype_size(y->dtype); gm.ldd = P;
        gm.ab_dtype = ab; gm.d_dtype = y->dtype;
        gm.batch = 1; gm.alpha = 1.0f;
        gm.epilogue = CUBLASLT_EPILOGUE_DEFAULT;
        enum infvsr_status st = cu_gemm_run(c, &gm, err);
        if (st == INFVSR_ERR_UNSUPPORTED)
            return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "conv3d: cuBLASLt has no algorithm for "
                          "[%lld x %lld] . [%lld x %lld]", (long long)n, (long long)kc, (long long)kc,
                          (long long)cout);
        INFVSR_TRY(st);
    }
    if (a->b)
        INFVSR_TRY(cu_bias_act(c, y->data, y->dtype, a->b->data, a->b->dtype, cout, P, true,
                             INFVSR_UNARY_COUNT, err));
    return INFVSR_OK;
}
