/* Fast linear and batched matmul.
 *
 * linear, y[M, N] = act(x[M, K] . w[N, K]^T + b):
 *  - M >= SMALL_M: OpenBLAS sgemm from the calling thread (our pool sleeps meanwhile).
 *    F32 weights are used in place; BF16/F16 weights are widened 256-1024 output rows
 *    at a time into the backend's reusable panel buffer (never the whole weight), the pool
 *    widening, BLAS multiplying each panel into its column block of y.
 *  - M < SMALL_M (time embeddings, modulation: M = 1): each output feature is a dot
 *    product read straight from the 16-bit weight with AVX2, split over the pool by
 *    blocks of output features; BLAS would spend longer widening than computing.
 *  - bias and activation are applied in one pass over y afterwards, threaded by rows.
 * matmul: one sgemm per batch entry from the calling thread. */
#include <cblas.h>
#include <string.h>

#include "cpu_impl.h"
#include "simd.h"

#define SMALL_M 8
/* Output rows per widened panel: as many as fit PANEL_BYTES, between 256 and 1024
 * (fewer, larger sgemm calls amortise OpenBLAS's packing of x; the buffer stays small). */
#define PANEL_BYTES ((size_t)16 << 20)
#define PANEL_MIN 256
#define PANEL_MAX 1024

static int64_t panel_rows(int64_t K, int64_t N) {
    int64_t r = (int64_t)(PANEL_BYTES / sizeof(float)) / K;
    r = r < PANEL_MIN ? PANEL_MIN : r > PANEL_MAX ? PANEL_MAX : r;
    return r < N ? r : N;
}

void infvsr__unary_span(enum infvsr_unary_op op, const float * x, float * y, int64_t n);

/* ---- epilogue: y += b, y = act(y) ---- */

struct epi_job {
    float *       y;
    const float * b;
    int64_t       M, N, rows_per_task;
    enum infvsr_unary_op act;
};

static void epi_task(void * ctx, int64_t t, int tid) {
    const struct epi_job * j = ctx;
    int64_t r0 = t * j->rows_per_task, r1 = r0 + j->rows_per_task < j->M ? r0 + j->rows_per_task : j->M;
    for (int64_t r = r0; r < r1; r++) {
        float * y = j->y + r * j->N;
        if (j->b) {
            for (int64_t i = 0; i < j->N; i++) y[i] += j->b[i];
        }
        if (j->act != INFVSR_UNARY_COUNT) infvsr__unary_span(j->act, y, y, j->N);
    }
}

static void epilogue(struct infvsr_cpu_ctx * c, float * y, int64_t M, int64_t N, const float * b,
                     enum infvsr_unary_op act) {
    if (!b && act == INFVSR_UNARY_COUNT) return;
    struct epi_job j = { .y = y, .b = b, .M = M, .N = N, .act = act };
    int64_t n_tasks = infvsr__n_chunks(c, M * N, 16384);
    j.rows_per_task = (M + n_tasks - 1) / n_tasks;
    infvsr__par(c, (M + j.rows_per_task - 1) / j.rows_per_task, epi_task, &j);
}

/* ---- panel widening ---- */

struct widen_job {
    float *             dst;
    struct infvsr_cpu_w w;
    int64_t             n0, K;
};

static void widen_task(void * ctx, int64_t t, int tid) {
    const struct widen_job * j = ctx;
    infvsr__w_widen(j->dst + t * j->K, j->w, (size_t)((j->n0 + t) * j->K), (size_t)j->K);
}

/* ---- small M: direct dot products against the weight in its own dtype ---- */

struct small_job {
    const float *       x;
    struct infvsr_cpu_w w;
    float *             y;
    int64_t             M, K, N, n_per_task;
};

static inline __m256 load8_w(struct infvsr_cpu_w w, size_t i) {
    switch (w.dtype) {
    case INFVSR_TYPE_BF16: return infvsr__load8_bf16((const uint16_t *)w.data + i);
    case INFVSR_TYPE_F16:  return infvsr__load8_f16((const uint16_t *)w.data + i);
    default:               return _mm256_loadu_ps((const float *)w.data + i);
    }
}

static void small_task(void * ctx, int64_t t, int tid) {
    const struct small_job * j = ctx;
    int64_t n0 = t * j->n_per_task, n1 = n0 + j->n_per_task < j->N ? n0 + j->n_per_task : j->N;
    for (int64_t n = n0; n < n1; n++) {
        size_t wrow = (size_t)(n * j->K);
        for (int64_t m = 0; m < j->M; m++) {
            const float * x = j->x + m * j->K;
            __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
            int64_t k = 0;
            for (; k + 16 <= j->K; k += 16) {
                acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k), load8_w(j->w, wrow + (size_t)k), acc0);
                acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k + 8), load8_w(j->w, wrow + (size_t)k + 8), acc1);
            }
            for (; k + 8 <= j->K; k += 8) {
                acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + k), load8_w(j->w, wrow + (size_t)k), acc0);
            }
            float acc = infvsr__hsum8(_mm256_add_ps(acc0, acc1));
            for (; k < j->K; k++) acc += x[k] * infvsr__w_get(j->w, wrow + (size_t)k);
            j->y[m * j->N + n] = acc;
        }
    }
}

enum infvsr_status infvsr_cpu_op_linear(struct infvsr_cpu_ctx * c, const float * x, int64_t M, int64_t K,
                                        struct infvsr_cpu_w w, int64_t N, struct infvsr_cpu_w b,
                                        enum infvsr_unary_op act, float * y) {
    float * bias = NULL;
    if (b.data) {
        /* the bias lives at the end of the panel buffer: reserve room for both up front */
        size_t panel = w.dtype == INFVSR_TYPE_F32 || M < SMALL_M ? 0 : (size_t)(panel_rows(K, N) * K);
        float * buf = infvsr__buf_reserve(&c->panel, panel + (size_t)N);
        if (!buf) return INFVSR_ERR_NOMEM;
        bias = buf + panel;
        infvsr__w_widen(bias, b, 0, (size_t)N);
    }
    if (M < SMALL_M) {
        struct small_job j = { .x = x, .w = w, .y = y, .M = M, .K = K, .N = N };
        int64_t n_tasks = infvsr__n_chunks(c, N * K * M, 65536);
        j.n_per_task = (N + n_tasks - 1) / n_tasks;
        infvsr__par(c, (N + j.n_per_task - 1) / j.n_per_task, small_task, &j);
    } else if (w.dtype == INFVSR_TYPE_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, x, (int)K,
                    (const float *)w.data, (int)K, 0.0f, y, (int)N);
    } else {
        const int64_t pn = panel_rows(K, N);
        float * panel = infvsr__buf_reserve(&c->panel, (size_t)(pn * K) + (b.data ? (size_t)N : 0));
        if (!panel) return INFVSR_ERR_NOMEM;
        for (int64_t n0 = 0; n0 < N; n0 += pn) {
            int64_t nb = N - n0 < pn ? N - n0 : pn;
            struct widen_job wj = { .dst = panel, .w = w, .n0 = n0, .K = K };
            infvsr__par(c, nb, widen_task, &wj);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)nb, (int)K, 1.0f, x, (int)K, panel,
                        (int)K, 0.0f, y + n0, (int)N);
        }
    }
    epilogue(c, y, M, N, bias, act);
    return INFVSR_OK;
}

enum infvsr_status infvsr_cpu_op_matmul(struct infvsr_cpu_ctx * c, const float * a, const float * b, int64_t B,
                                        int64_t M, int64_t K, int64_t N, bool trans_b, float alpha, float * out) {
    for (int64_t i = 0; i < B; i++) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, alpha,
                    a + i * M * K, (int)K, b + i * K * N, trans_b ? (int)K : (int)N, 0.0f, out + i * M * N, (int)N);
    }
    return INFVSR_OK;
}
