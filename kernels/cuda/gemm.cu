/* GEMM family: linear (y = act(x W^T + b)) and batched matmul, through cuBLASLt.
 *
 * Layout trick: our tensors are row-major; cuBLASLt is column-major. A row-major [R, C]
 * matrix is a column-major [C, R] one, so y[M, N] = x[M, K] . w[N, K]^T is computed as
 * the column-major D[N, M] = W^T[N, K] . X[K, M] with A = w (stored [K, N] col-major,
 * transposed), B = x (stored [K, M], not transposed), D = y (stored [N, M]): no copies.
 * The bias epilogue of cuBLASLt adds a vector along D's rows = our columns N: exactly
 * Linear's bias. GELU (tanh form, what cuBLASLt implements) is fused the same way;
 * erf-GELU and SiLU run as one extra elementwise pass fused with the bias.
 *
 * No per-shape descriptor cache yet: each call creates descriptors and asks the
 * heuristic (a few microseconds; negligible next to the DiT's 10k-token GEMMs). */
#include "cuda_common.cuh"

namespace {

/* Destroys cuBLASLt descriptors on every return path. */
struct lt_descs {
    cublasLtMatmulDesc_t       op   = nullptr;
    cublasLtMatrixLayout_t     a    = nullptr, b = nullptr, d = nullptr;
    cublasLtMatmulPreference_t pref = nullptr;
    ~lt_descs() {
        if (pref) cublasLtMatmulPreferenceDestroy(pref);
        if (d) cublasLtMatrixLayoutDestroy(d);
        if (b) cublasLtMatrixLayoutDestroy(b);
        if (a) cublasLtMatrixLayoutDestroy(a);
        if (op) cublasLtMatmulDescDestroy(op);
    }
};

cudaDataType_t lt_type(int dtype) {
    return dtype == INFVSR_TYPE_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

/* Largest power of two <= 256 dividing the address (cuBLASLt's alignment preference). */
uint32_t ptr_align(const void * p) {
    uintptr_t v = (uintptr_t)p;
    uint32_t a = 256;
    while (a > 1 && (v % a) != 0) a >>= 1;
    return a;
}

}  // namespace

enum infvsr_status cu_gemm_run(struct cuda_ctx * c, const struct cu_gemm * g, struct infvsr_err * err) {
    lt_descs ds;
    CUBLAS_CHECK(c, err, cublasLtMatmulDescCreate(&ds.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = g->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t tb = g->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(c, err, cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CUBLAS_CHECK(c, err, cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    cublasLtEpilogue_t epi = g->epilogue;
    CUBLAS_CHECK(c, err, cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
    if (g->bias) {
        const void * bp = g->bias;
        cudaDataType_t bt = lt_type(g->d_dtype);
        CUBLAS_CHECK(c, err, cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp, sizeof bp));
        CUBLAS_CHECK(c, err, cublasLtMatmulDescSetAttribute(ds.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt));
    }
    const cudaDataType_t abt = lt_type(g->ab_dtype), dt = lt_type(g->d_dtype);
    /* Stored shapes (before op): A is [m, k] or [k, m] when transposed; B likewise. */
    CUBLAS_CHECK(c, err, cublasLtMatrixLayoutCreate(&ds.a, abt, g->trans_a ? g->k : g->m,
                                                    g->trans_a ? g->m : g->k, g->lda));
    CUBLAS_CHECK(c, err, cublasLtMatrixLayoutCreate(&ds.b, abt, g->trans_b ? g->n : g->k,
                                                    g->trans_b ? g->k : g->n, g->ldb));
    CUBLAS_CHECK(c, err, cublasLtMatrixLayoutCreate(&ds.d, dt, g->m, g->n, g->ldd));
    if (g->batch > 1) {
        int32_t bc = g->batch;
        int64_t sa = g->stride_a, sb = g->stride_b, sd = g->stride_d;
        CUBLAS_CHECK(c, err, cublasLtMatrixLayoutSetAttribute(ds.a, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc));
        CUBLAS_CHECK(c, err, cublasLtMatrixLayoutSetAttribute(ds.b, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc));
        CUBLAS_CHECK(c, err, cublasLtMatrixLayoutSetAttribute(ds.d, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc));
        CUBLAS_CHECK(c, err, cublasLtMatrixLayoutSetAttribute(ds.a, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sa, sizeof sa));
        CUBLAS_CHECK(c, err, cublasLtMatrixLayoutSetAttribute(ds.b, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sb, sizeof sb));
        CUBLAS_CHECK(c, err, cublasLtMatrixLayoutSetAttribute(ds.d, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sd, sizeof sd));
    }
    CUBLAS_CHECK(c, err, cublasLtMatmulPreferenceCreate(&ds.pref));
    uint64_t ws = c->lt_workspace_size;
    CUBLAS_CHECK(c, err, cublasLtMatmulPreferenceSetAttribute(ds.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    /* Offsets into a tensor (conv3d's column chunks) can break the 256-byte alignment the
     * heuristic otherwise assumes; tell it the real alignment. */
    uint32_t al_a = ptr_align(g->a), al_b = ptr_align(g->b), al_d = ptr_align(g->d);
    CUBLAS_CHECK(c, err, cublasLtMatmulPreferenceSetAttribute(ds.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a));
    CUBLAS_CHECK(c, err, cublasLtMatmulPreferenceSetAttribute(ds.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b));
    CUBLAS_CHECK(c, err, cublasLtMatmulPreferenceSetAttribute(ds.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_d, sizeof al_d));
    CUBLAS_CHECK(c, err, cublasLtMatmulPreferenceSetAttribute(ds.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof al_d));

    cublasLtMatmulHeuristicResult_t res;
    int nres = 0;
    cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(c->lt, ds.op, ds.a, ds.b, ds.d, ds.d, ds.pref,
                                                       1, &res, &nres);
    if (hs == CUBLAS_STATUS_NOT_SUPPORTED || (hs == CUBLAS_STATUS_SUCCESS && nres == 0))
        return INFVSR_ERR_UNSUPPORTED;
    CUBLAS_CHECK(c, err, hs);
    const float alpha = g->alpha, beta = 0.0f;
    CUBLAS_CHECK(c, err, cublasLtMatmul(c->lt, ds.op, &alpha, g->a, ds.a, g->b, ds.b, &beta, g->d,
                                        ds.d, g->d, ds.d, &res.algo, c->lt_workspace,
                                        c->lt_workspace_size, c->stream));
    return INFVSR_OK;
}

namespace {

/* Pooled temporaries released on every return path (stream-ordered reuse is safe). */
struct scratch_set {
    cuda_ctx * c;
    void *     p[4] = { nullptr, nullptr, nullptr, nullptr };
    explicit scratch_set(cuda_ctx * ctx) : c(ctx) {}
    ~scratch_set() { for (void * q : p) if (q) cu_scratch_free(c, q); }
};

/* Returns t's data in `want` dtype: t itself, or a converted copy in s.p[slot]. */
enum infvsr_status as_dtype(cuda_ctx * c, const infvsr_tensor * t, int want, scratch_set & s,
                            int slot, const void ** out, infvsr_err * err) {
    if ((int)t->dtype == want) { *out = t->data; return INFVSR_OK; }
    int64_t n = infvsr_tensor_numel(t);
    INFVSR_TRY(cu_scratch(c, (size_t)n * infvsr_dtype_size((enum infvsr_dtype)want), &s.p[slot], err));
    INFVSR_TRY(cu_convert(c, t->data, t->dtype, s.p[slot], want, n, err));
    *out = s.p[slot];
    return INFVSR_OK;
}

}  // namespace

enum infvsr_status cu_linear(struct infvsr_backend * be, const struct infvsr_tensor * x,
                             const struct infvsr_tensor * w, const struct infvsr_tensor * b,
                             enum infvsr_unary_op act, struct infvsr_tensor * y,
                             struct infvsr_err * err) {
    cuda_ctx * c = cu_ctx(be);
    CU_ENTER(c, err);
    INFVSR_TRY(cu_check_tensor(x, "linear", "x", false, err));
    INFVSR_TRY(cu_check_tensor(w, "linear", "w", true, err));
    INFVSR_TRY(cu_check_tensor(y, "linear", "y", false, err));
    if (w->ndim != 2)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "linear: w ('%s') must be 2-D [N, K], has rank %d",
                      w->name, w->ndim);
    const int64_t N = w->shape[0], K = w->shape[1];
    if (K <= 0 || N <= 0 || cu_last_dim(x) != K)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "linear: x last dim %lld != w in-features %lld",
                      (long long)cu_last_dim(x), (long long)K);
    const int64_t M = infvsr_tensor_numel(x) / K;
    if (cu_last_dim(y) != N || infvsr_tensor_numel(y) != M * N)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "linear: y ('%s') must be [%lld rows, %lld], has "
                      "%lld elements, last dim %lld", y->name, (long long)M, (long long)N,
                      (long long)infvsr_tensor_numel(y), (long long)cu_last_dim(y));
    if (b) {
        INFVSR_TRY(cu_check_tensor(b, "linear", "b", true, err));
        if (infvsr_tensor_numel(b) != N)
            return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "linear: b has %lld elements, expected %lld",
                          (long long)infvsr_tensor_numel(b), (long long)N);
    }
    if ((int)act < 0 || act > INFVSR_UNARY_COUNT)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "linear: unknown activation %d", (int)act);
    if (x->data == y->data)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "linear: y must not alias x");
    if (M == 0) return INFVSR_OK;
    if (M > INT32_MAX || N > INT32_MAX || K > INT32_MAX)
        return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "linear: dims beyond 2^31 are not supported");

    scratch_set s(c);
    const int ab = x->dtype;
    /* f32 inputs cannot write bf16 in cuBLASLt: compute into an f32 temporary instead. */
    const int dd = (ab == INFVSR_TYPE_F32) ? INFVSR_TYPE_F32 : y->dtype;
    void * dptr = y->data;
    if (dd != (int)y->dtype) {
        INFVSR_TRY(cu_scratch(c, (size_t)(M * N) * 4, &s.p[2], err));
        dptr = s.p[2];
    }
    const void * wp = nullptr;
    INFVSR_TRY(as_dtype(c, w, ab, s, 0, &wp, err));
    const void * bp = nullptr;
    if (b) INFVSR_TRY(as_dtype(c, b, dd, s, 1, &bp, err));

    cu_gemm g = {};
    g.trans_a = true;  g.trans_b = false;
    g.m = N; g.n = M; g.k = K;
    g.a = wp;      g.lda = K;
    g.b = x->data; g.ldb = K;
    g.d = dptr;    g.ldd = N;
    g.ab_dtype = ab; g.d_dtype = dd;
    g.batch = 1; g.alpha = 1.0f;
    g.bias = bp;
    bool fused_act = (act == INFVSR_UNARY_GELU_TANH);
    g.epilogue = fused_act ? (b ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU)
                           : (b ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT);
    enum infvsr_status st = cu_gemm_run(c, &g, err);
    bool post_bias = false, post_act = (act < INFVSR_UNARY_COUNT && !fused_act);
    if (st == INFVSR_ERR_UNSUPPORTED && g.epilogue != CUBLASLT_EPILOGUE_DEFAULT) {
        g.epilogue = CUBLASLT_EPILOGUE_DEFAULT;
        g.bias = nullptr;
        post_bias = b != nullptr;
        post_act = act < INFVSR_UNARY_COUNT;
        st = cu_gemm_run(c, &g, err);
    }
    if (st == INFVSR_ERR_UNSUPPORTED)
        return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "linear: cuBLASLt has no algorithm for "
                      "[%lld x %lld] . [%lld x %lld]^T (%s)", (long long)M, (long long)K,
                      (long long)N, (long long)K, infvsr_dtype_name(x->dtype));
    INFVSR_TRY(st);
    if (post_bias || post_act)
        INFVSR_TRY(cu_bias_act(c, dptr, dd, post_bias ? bp : nullptr, dd, M, N, false,
                             post_act ? act : INFVSR_UNARY_COUNT, err));
    if (dptr != y->data) INFVSR_TRY(cu_convert(c, dptr, dd, y->data, y->dtype, M * N, err));
    return INFVSR_OK;
}

enum infvsr_status cu_matmul(struct infvsr_backend * be, const struct infvsr_tensor * a,
                             const struct infvsr_tensor * b, bool trans_b, float alpha,
                             struct infvsr_tensor * cten, struct infvsr_err * err) {
    cuda_ctx * c = cu_ctx(be);
    CU_ENTER(c, err);
    INFVSR_TRY(cu_check_tensor(a, "matmul", "a", false, err));
    INFVSR_TRY(cu_check_tensor(b, "matmul", "b", false, err));
    INFVSR_TRY(cu_check_tensor(cten, "matmul", "c", false, err));
    if (a->ndim < 2 || a->ndim > 3 || b->ndim != a->ndim || cten->ndim != a->ndim)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "matmul: a, b, c must all be 2-D or all 3-D "
                      "(ranks %d, %d, %d)", a->ndim, b->ndim, cten->ndim);
    const int r = a->ndim;
    const int64_t B = r == 3 ? a->shape[0] : 1;
    const int64_t M = a->shape[r - 2], K = a->shape[r - 1];
    const int64_t N = trans_b ? b->shape[r - 2] : b->shape[r - 1];
    const int64_t Kb = trans_b ? b->shape[r - 1] : b->shape[r - 2];
    if (Kb != K || (r == 3 && (b->shape[0] != B || cten->shape[0] != B)) ||
        cten->shape[r - 2] != M || cten->shape[r - 1] != N)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "matmul: shapes do not match (a [B=%lld, %lld, "
                      "%lld], b inner %lld, trans_b %d, c [.., %lld, %lld])", (long long)B,
                      (long long)M, (long long)K, (long long)Kb, (int)trans_b,
                      (long long)cten->shape[r - 2], (long long)cten->shape[r - 1]);
    if (a->dtype != b->dtype)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "matmul: a (%s) and b (%s) must share a dtype",
                      infvsr_dtype_name(a->dtype), infvsr_dtype_name(b->dtype));
    if (cten->data == a->data || cten->data == b->data)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "matmul: c must not alias a or b");
    if (B * M * N == 0) return INFVSR_OK;
    if (B > INT32_MAX || M > INT32_MAX || N > INT32_MAX || K > INT32_MAX)
        return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "matmul: dims beyond 2^31 are not supported");

    scratch_set s(c);
    const int ab = a->dtype;
    const int dd = (ab == INFVSR_TYPE_F32) ? INFVSR_TYPE_F32 : cten->dtype;
    void * dptr = cten->data;
    if (K == 0) return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "matmul: K = 0 is not supported");
    if (dd != (int)cten->dtype) {
        INFVSR_TRY(cu_scratch(c, (size_t)(B * M * N) * 4, &s.p[0], err));
        dptr = s.p[0];
    }

    cu_gemm g = {};
    g.trans_a = trans_b; g.trans_b = false;
    g.m = N; g.n = M; g.k = K;
    g.a = b->data;    g.lda = trans_b ? K : N; g.stride_a = N * K;
    g.b = a->data;    g.ldb = K;               g.stride_b = M * K;
    g.d = dptr;       g.ldd = N;               g.stride_d = M * N;
    g.ab_dtype = ab;  g.d_dtype = dd;
    g.batch = (int)B; g.alpha = alpha;
    g.epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    enum infvsr_status st = cu_gemm_run(c, &g, err);
    if (st == INFVSR_ERR_UNSUPPORTED)
        return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "matmul: cuBLASLt has no algorithm for this shape");
    INFVSR_TRY(st);
    if (dptr != cten->data) INFVSR_TRY(cu_convert(c, dptr, dd, cten->data, cten->dtype, B * M * N, err));
    return INFVSR_OK;
}
