/* 3-D convolution (kernels/ops.h infvsr_conv3d_args) as im2col + cuBLASLt GEMM.
 *
 * The path for builds without cuDNN and for calls cuDNN refuses. im2col + cuBLASLt gets the library's
 * tensor-core GEMM rate (bf16 in, fp32 accumulate) today; the price is the column
 * buffer traffic (K = Cin*kt*kh*kw times the input, 27x for 3x3x3), bounded by
 * processing output positions in chunks whose column buffer fits in CU_COL_BUDGET, a
 * pooled temporary (so it is allocated once and reused every call). A 1x1x1 stride-1
 * unpadded conv skips im2col entirely (x already is the [K, P] column matrix).
 * conv3d_implicit.cu holds an implicit-GEMM tensor-core kernel (bf16), selectable with
 * infvsr_cuda_backend_set_conv_kernel. When the build has cuDNN, cuDNN runs the call
 * first (conv3d_cudnn.cu) and this path is the fallback for calls cuDNN refuses; the
 * choice is infvsr_conv3d_select (conv3d_plan.c, host-only and unit-tested).
 * Bias: a bf16 output is rounded once (the GEMM writes fp32 chunks, k_bias_round adds
 * the bias and stores); an f32 output takes the bias in place after the GEMM.
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

/* The bias epilogue of the im2col path for bf16 outputs: the GEMM chunk is written in
 * fp32 to acc [Cout, n]; y[co, p0 + j] = bf16(acc[co, j] + b[co]), rounded once (a GEMM
 * straight into bf16 y followed by a bias pass would round twice). cuBLASLt's own bias
 * epilogue adds along D's rows, which are output positions here, not channels. */
__global__ void k_bias_round(const float * acc, int64_t n, const void * b, int b_dtype, void * y, int y_dtype,
                             int64_t P, int64_t p0, int64_t cout) {
    const int64_t total = cout * n;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t co = i / n, j = i % n;
        cu_store(y, y_dtype, co * P + p0 + j, acc[i] + cu_load(b, b_dtype, co));
    }
}

namespace {
struct scratch3 {
    cuda_ctx * c;
    void *     w = nullptr, * col = nullptr, * acc = nullptr;
    explicit scratch3(cuda_ctx * ctx) : c(ctx) {}
    ~scratch3() {
        if (w) cu_scratch_free(c, w);
        if (col) cu_scratch_free(c, col);
        if (acc) cu_scratch_free(c, acc);
    }
};

/* Largest chunk of output positions whose per-position bytes fit CU_COL_BUDGET; a
 * multiple of 64 so chunk starts stay 128-byte aligned in y; at least 64. */
int64_t chunk_fit(size_t bytes_per_position) {
    int64_t fit = (int64_t)(CU_COL_BUDGET / bytes_per_position);
    fit = fit / 64 * 64;
    return fit < 64 ? 64 : fit;
}
}  // namespace

enum infvsr_status cu_conv3d(struct infvsr_backend * be, const struct infvsr_conv3d_args * a,
                             struct infvsr_err * err) {
    cuda_ctx * c = cu_ctx(be);
    CU_ENTER(c, err);
    if (!a) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "conv3d: args is NULL");
    INFVSR_TRY(cu_check_tensor(a->x, "conv3d", "x", false, err));
    INFVSR_TRY(cu_check_tensor(a->w, "conv3d", "w", true, err));
    INFVSR_TRY(cu_check_tensor(a->y, "conv3d", "y", false, err));
    if (a->b) INFVSR_TRY(cu_check_tensor(a->b, "conv3d", "b", true, err));
    /* shapes, strides, pads, dtypes, aliasing: host-only, unit-tested (conv3d_plan.c) */
    struct infvsr_conv3d_geom geo;
    INFVSR_TRY(infvsr_conv3d_geom_check(a, &geo, err));
    const infvsr_tensor * x = a->x, * w = a->w, * y = a->y;
    const int64_t kc = geo.kc, P = geo.positions, cout = geo.cout;
    if (P == 0 || cout == 0) return INFVSR_OK;

    const bool ready = cu_cudnn_ready(c);
    const bool accepts = ready && infvsr_conv3d_cudnn_accepts(&geo, (uintptr_t)x->data, (uintptr_t)w->data,
                                                               a->b ? (uintptr_t)a->b->data : 0,
                                                               (uintptr_t)y->data, nullptr);
    const bool refused = accepts && cu_cudnn_refused(c, &geo);
    enum infvsr_conv3d_path path =
        infvsr_conv3d_select((enum infvsr_cuda_conv_kernel)c->conv_kernel, &geo, ready, accepts, refused);
    if (path == INFVSR_CONV3D_PATH_CUDNN) {
        enum infvsr_status st = cu_conv3d_cudnn(c, &geo, x->data, w->data, a->b ? a->b->data : nullptr, y->data,
                                                err);
        if (st != INFVSR_ERR_UNSUPPORTED) {
            if (st == INFVSR_OK) c->last_conv_kernel = "cudnn";
            return st;
        }
        path = INFVSR_CONV3D_PATH_IM2COL; /* cuDNN has no engine for this shape (remembered) */
    }

    scratch3 s(c);
    const int ab = x->dtype;
    const size_t es = infvsr_dtype_size(x->dtype);
    const void * wptr = w->data;
    if ((int)w->dtype != ab) {
        INFVSR_TRY(cu_scratch(c, (size_t)infvsr_tensor_numel(w) * es, &s.w, err));
        INFVSR_TRY(cu_convert(c, w->data, w->dtype, s.w, ab, infvsr_tensor_numel(w), err));
        wptr = s.w;
    }
    if (path == INFVSR_CONV3D_PATH_IMPLICIT) { /* bias in its epilogue: one rounding */
        const int stride[3] = { geo.st, geo.sh, geo.sw };
        enum infvsr_status st = cu_conv3d_implicit(c, x->data, wptr, a->b ? a->b->data : nullptr,
                                                   a->b ? a->b->dtype : 0, y->data, y->dtype, x->shape, w->shape,
                                                   y->shape, stride, geo.pt, geo.pl, err);
        if (st == INFVSR_OK) c->last_conv_kernel = "implicit";
        return st;
    }
    conv_geom g;
    g.cin = geo.cin; g.t = geo.t; g.h = geo.h; g.w = geo.w;
    g.kt = geo.kt; g.kh = geo.kh; g.kw = geo.kw;
    g.to = geo.to; g.ho = geo.ho; g.wo = geo.wo;
    g.st = geo.st; g.sh = geo.sh; g.sw = geo.sw;
    g.pt = geo.pt; g.pl = geo.pl;
    const bool direct = g.kt == 1 && g.kh == 1 && g.kw == 1 && g.st == 1 && g.sh == 1 && g.sw == 1 &&
                        geo.pt == 0 && geo.pb == 0 && geo.pl == 0 && geo.pr == 0;
    /* bf16 y with a bias: GEMM into fp32, bias added and rounded once (k_bias_round) */
    const bool bias_epilogue = a->b && y->dtype == INFVSR_TYPE_BF16;
    int64_t pc = P;
    if (!direct) {
        const int64_t fit = chunk_fit((size_t)kc * es);
        if (fit < pc) pc = fit;
    }
    if (bias_epilogue) {
        const int64_t fit = chunk_fit((size_t)cout * sizeof(float));
        if (fit < pc) pc = fit;
        INFVSR_TRY(cu_scratch(c, (size_t)cout * (size_t)pc * sizeof(float), &s.acc, err));
    }
    if (!direct) INFVSR_TRY(cu_scratch(c, (size_t)kc * (size_t)pc * es, &s.col, err));
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
        if (bias_epilogue) {
            gm.d = s.acc; gm.ldd = n; gm.d_dtype = INFVSR_TYPE_F32;
        } else {
            gm.d = (char *)y->data + p0 * infvsr_dtype_size(y->dtype); gm.ldd = P; gm.d_dtype = y->dtype;
        }
        gm.ab_dtype = ab;
        gm.batch = 1; gm.alpha = 1.0f;
        gm.epilogue = CUBLASLT_EPILOGUE_DEFAULT;
        enum infvsr_status st = cu_gemm_run(c, &gm, err);
        if (st == INFVSR_ERR_UNSUPPORTED)
            return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "conv3d: cuBLASLt has no algorithm for "
                          "[%lld x %lld] . [%lld x %lld]", (long long)n, (long long)kc, (long long)kc,
                          (long long)cout);
        INFVSR_TRY(st);
        if (bias_epilogue) {
            CU_LAUNCH(cu_grid_for(cout * n, 256), 256, 0, c->stream, k_bias_round)(
                (const float *)s.acc, n, a->b->data, a->b->dtype, y->data, y->dtype, P, p0, cout);
            CU_CHECK_LAUNCH(c, err);
        }
    }
    if (a->b && !bias_epilogue) /* f32 y: the fp32 GEMM result plus the bias, as the CPU does */
        INFVSR_TRY(cu_bias_act(c, y->data, y->dtype, a->b->data, a->b->dtype, cout, P, true,
                             INFVSR_UNARY_COUNT, err));
    c->last_conv_kernel = "im2col";
    return INFVSR_OK;
}
