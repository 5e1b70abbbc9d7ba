/* Float64 reference of linear and matmul: the oracle for tests/ops. */
#include "../cpu_impl.h"

/* x [M, K], w [N, K] (PyTorch Linear layout), b [N] or absent, y [M, N] */
void infvsr_cpu_ref_linear(const float * x, int64_t M, int64_t K, struct infvsr_cpu_w w, int64_t N,
                           struct infvsr_cpu_w b, enum infvsr_unary_op act, float * y) {
    for (int64_t m = 0; m < M; m++) {
        for (int64_t n = 0; n < N; n++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++) {
                acc += (double)x[m * K + k] * (double)infvsr__w_get(w, (size_t)(n * K + k));
            }
            if (b.data) acc += (double)infvsr__w_get(b, (size_t)n);
            if (act != INFVSR_UNARY_COUNT) acc = infvsr_cpu_ref_unary1(act, acc);
            y[m * N + n] = (float)acc;
        }
    }
}

/* a [B, M, K]; b [B, N, K] when trans_b else [B, K, N]; out [B, M, N] */
void infvsr_cpu_ref_matmul(const float * a, const float * b, int64_t B, int64_t M, int64_t K, int64_t N,
                           bool trans_b, float alpha, float * out) {
    for (int64_t bi = 0; bi < B; bi++) {
        const float * A  = a + bi * M * K;
        const float * Bm = b + bi * K * N;
        float *       C  = out + bi * M * N;
        for (int64_t m = 0; m < M; m++) {
            for (int64_t n = 0; n < N; n++) {
                double acc = 0;
                for (int64_t k = 0; k < K; k++) {
                    double bv = trans_b ? Bm[n * K + k] : Bm[k * N + n];
                    acc += (double)A[m * K + k] * bv;
                }
                C[m * N + n] = (float)(acc * alpha);
            }
        }
    }
}
