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
 * Plans are cached per backend (plan_cache.h, keyed by shape, dtypes, transposes,
 * epilogue, bias presence and operand alignment): descriptors are built and the
 * heuristic asked once per distinct GEMM, not on each of the ~540 GEMMs of a DiT chunk. */
#include "cuda_common.cuh"

#include <new>

namespace {

/* A cached matmul plan: descriptors, layouts and the heuristic's algorithm for one
 * cu_gemm_shape. `supported` false records that the heuristic had no algorithm, so a
 * caller's retry without the epilogue does not ask it again on every call. */
struct lt_plan {
    cublasLtMatmulDesc_t   op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    bool                   supported = false;
    cublasLtMatmulAlgo_t   algo;
    ~lt_plan() {
        if (d) cublasLtMatrixLayoutDestroy(d);
        if (b) cublasLtMatrixLayoutDestroy(b);
        if (a) cublasLtMatrixLayoutDestroy(a);
        if (op) cublasLtMatmulDescDestroy(op);
    }
};

/* Distinct GEMM shapes kept per backend. The DiT's ~540 GEMMs per chunk have a few
 * dozen shapes (per block kind and token count; the VAE's im2col chunks add a few per
 * layer): 256 holds a whole model's working set with room for two resolutions, at
 * ~1 KB of host memory and a few cuBLASLt objects each. */
constexpr size_t GEMM_PLAN_CAP = 256;

void destroy_lt_plan(void * value, void * user) {
    (void)user;
    delete (lt_plan *)value;
}

/* Preference of one planning: destroyed on every return path. */
struct lt_pref {
    cublasLtMatmulPreference_t p = nullptr;
    ~lt_pref() { if (p) cublasLtMatmulPreferenceDestroy(p); }
};

cudaDataType_t lt_type(int dtype) {
    return dtype == INFVSR_TYPE_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

cu_gemm_shape shape_of(const cu_gemm * g) {
    cu_gemm_shape s = {};
    s.trans_a = g->trans_a; s.trans_b = g->trans_b;
    s.m = g->m; s.n = g->n; s.k = g->k;
    s.lda = g->lda; s.ldb = g->ldb; s.ldd = g->ldd;
    s.stride_a = g->stride_a; s.stride_b = g->stride_b; s.stride_d = g->stride_d;
    s.batch = g->batch;
    s.ab_dtype = g->ab_dtype; s.d_dtype = g->d_dtype;
    s.epilogue = (int32_t)g->epilogue;
    s.has_bias = g->bias != nullptr;
    /* Offsets into a tensor (conv3d's column chunks) can break the 256-byte alignment the
     * heuristic otherwise assumes; it is told the real alignment, so the plan depends on it. */
    s.align_a = cu_ptr_align(g->a);
    s.align_b = cu_ptr_align(g->b);
    s.align_d = cu_ptr_align(g->d);
    return s;
}

/* Creates the descriptors of shape s and asks the heuristic once. */
enum infvsr_status plan_gemm(cuda_ctx * c, const cu_gemm * g, const cu_gemm_shape & s, lt_plan * pl,
                             infvsr_err * err) {
    CUBLAS_CHECK(c, err, cublasLtMatmulDescCreate(&pl->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = s.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t tb = s.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(c, err, cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CUBLAS_CHECK(c, err, cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    cublasLtEpilogue_t epi = g->epilogue;
    CUBLAS_CHECK(c, err, cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
    if (s.has_bias) {
        const void * bp = g->bias; /* replaced per call (cu_gemm_run) */
        cudaDataType_t bt = lt_type(s.d_dtype);
        CUBLAS_CHECK(c, err, cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp, sizeof bp));
        CUBLAS_CHECK(c, err, cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt));
    }
    const cudaDataType_t abt = lt_type(s.ab_dtype), dt = lt_type(s.d_dtype);
    /* Stored shapes (before op): A is [m, k] or [k, m] when transposed; B likewise. */
    CUBLAS_CHECK(c, err, cublasLtMatrixLayoutCreate(&pl->a, abt, s.trans_a ? s.k : s.m,
                                                    s.trans_a ? s.m : s.k, s.lda));
    CUBLAS_CHECK(c, err, cublasLtMatrixLayoutCreate(&pl->b, abt, s.trans_b ? s.n : s.k,
                                                    s.trans_b ? s.k : s.n, s.ldb));
    CUBLAS_CHECK(c, err, cublasLtMatrixLayoutCreate(&pl->d, dt, s.m, s.n, s.ldd));
    if (s.batch > 1) {
        int32_t bc = s.batch;
        int64_t sa = s.stride_a, sb = s.stride_b, sd = s.stride_d;
        CUBLAS_CHECK(c, err, cublasLtMatrixLayoutSetAttribute(pl->a, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc));
        CUBLAS_CHECK(c, err, cublasLtMatrixLayoutSetAttribute(pl->b, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc));
        CUBLAS_CHECK(c, err, cublasLtMatrixLayoutSetAttribute(pl->d, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc));
        CUBLAS_CHECK(c, err, cublasLtMatrixLayoutSetAttribute(pl->a, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sa, sizeof sa));
        CUBLAS_CHECK(c, err, cublasLtMatrixLayoutSetAttribute(pl->b, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sb, sizeof sb));
        CUBLAS_CHECK(c, err, cublasLtMatrixLayoutSetAttribute(pl->d, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sd, sizeof sd));
    }
    lt_pref pref;
    CUBLAS_CHECK(c, err, cublasLtMatmulPreferenceCreate(&pref.p));
    uint64_t ws = c->lt_workspace_size;
    CUBLAS_CHECK(c, err, cublasLtMatmulPreferenceSetAttribute(pref.p, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    uint32_t al_a = s.align_a, al_b = s.align_b, al_d = s.align_d;
    CUBLAS_CHECK(c, err, cublasLtMatmulPreferenceSetAttribute(pref.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a));
    CUBLAS_CHECK(c, err, cublasLtMatmulPreferenceSetAttribute(pref.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b));
    CUBLAS_CHECK(c, err, cublasLtMatmulPreferenceSetAttribute(pref.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_d, sizeof al_d));
    CUBLAS_CHECK(c, err, cublasLtMatmulPreferenceSetAttribute(pref.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof al_d));

    cublasLtMatmulHeuristicResult_t res;
    int nres = 0;
    cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(c->lt, pl->op, pl->a, pl->b, pl->d, pl->d, pref.p,
                                                       1, &res, &nres);
    if (hs == CUBLAS_STATUS_NOT_SUPPORTED || (hs == CUBLAS_STATUS_SUCCESS && nres == 0)) {
        pl->supported = false;
        return INFVSR_OK;
    }
    CUBLAS_CHECK(c, err, hs);
    pl->supported = true;
    pl->algo = res.algo;
    return INFVSR_OK;
}

}  // namespace

enum infvsr_status cu_gemm_run(struct cuda_ctx * c, const struct cu_gemm * g, struct infvsr_err * err) {
    if (!c->gemm_plans) {
        c->gemm_plans = cu_plan_cache_create(GEMM_PLAN_CAP, destroy_lt_plan, nullptr);
        if (!c->gemm_plans)
            return infvsr_err_set(err, INFVSR_ERR_NOMEM, "CUDA backend: out of host memory for the GEMM plan cache");
    }
    const cu_gemm_shape s = shape_of(g);
    cu_plan_key key;
    cu_gemm_plan_key(&s, &key);
    lt_plan * pl = (lt_plan *)cu_plan_cache_get(c->gemm_plans, &key);
    if (!pl) {
        pl = new (std::nothrow) lt_plan();
        if (!pl) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "CUDA backend: out of host memory for a GEMM plan");
        enum infvsr_status st = plan_gemm(c, g, s, pl, err);
        if (st != INFVSR_OK) {
            delete pl;
            return st;
        }
        cu_plan_cache_put(c->gemm_plans, &key, pl);
    }
    if (!pl->supported) return INFVSR_ERR_UNSUPPORTED;
    if (s.has_bias) { /* the only per-call attribute: the plan is shared by every bias of this shape */
        const void * bp = g->bias;
        CUBLAS_CHECK(c, err, cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp, sizeof bp));
    }
    const float alpha = g->alpha, beta = 0.0f;
    CUBLAS_CHECK(c, err, cublasLtMatmul(c->lt, pl->op, &alpha, g->a, pl->a, g->b, pl->b, &beta, g->d,
                                        pl->d, g->d, pl->d, &pl->algo, c->lt_workspace,
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
