/* Float64 reference of the activations, additions, affine clamp and softmax. */
#include <math.h>

#include "../cpu_impl.h"

double infvsr_cpu_ref_unary1(enum infvsr_unary_op op, double x) {
    switch (op) {
    /* 0.5 (1 + tanh u) and 0.5 (1 + erf z) are written as 1 / (1 + e^{-2u}) and
     * 0.5 erfc(-z): the same values without the cancellation near -1, which would
     * otherwise cost the oracle all its digits for x < -6. */
    case INFVSR_UNARY_GELU_TANH:
        return x / (1.0 + exp(-2.0 * sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case INFVSR_UNARY_GELU_ERF:
        return 0.5 * x * erfc(-x / sqrt(2.0));
    case INFVSR_UNARY_SILU:
        return x / (1.0 + exp(-x));
    default:
        return x;
    }
}

void infvsr_cpu_ref_unary(enum infvsr_unary_op op, const float * x, int64_t n, float * y) {
    for (int64_t i = 0; i < n; i++) y[i] = (float)infvsr_cpu_ref_unary1(op, x[i]);
}

void infvsr_cpu_ref_add(const float * a, const float * b, int64_t n, float * y) {
    for (int64_t i = 0; i < n; i++) y[i] = (float)((double)a[i] + (double)b[i]);
}

/* x, d, y [R, C]; gate [C] or absent (= 1) */
void infvsr_cpu_ref_add_gated(const float * x, struct infvsr_cpu_w gate, const float * d, int64_t R,
                              int64_t C, float * y) {
    for (int64_t r = 0; r < R; r++) {
        for (int64_t i = 0; i < C; i++) {
            double g = gate.data ? (double)infvsr__w_get(gate, (size_t)i) : 1.0;
            y[r * C + i] = (float)((double)x[r * C + i] + g * (double)d[r * C + i]);
        }
    }
}

void infvsr_cpu_ref_affine_clamp(const float * x, int64_t n, float alpha, float beta, float lo, float hi,
                                 float * y) {
    for (int64_t i = 0; i < n; i++) {
        double v = (double)x[i] * alpha + beta;
        if (v < lo) v = lo;
        if (v > hi) v = hi;
        y[i] = (float)v;
    }
}

/* x, y [R, C], softmax over C */
void infvsr_cpu_ref_softmax(const float * x, int64_t R, int64_t C, float * y) {
    for (int64_t r = 0; r < R; r++) {
        const float * xr = x + r * C;
        double mx = -INFINITY, sum = 0;
        for (int64_t i = 0; i < C; i++) mx = xr[i] > mx ? xr[i] : mx;
        for (int64_t i = 0; i < C; i++) sum += exp((double)xr[i] - mx);
        for (int64_t i = 0; i < C; i++) y[r * C + i] = (float)(exp((double)xr[i] - mx) / sum);
    }
}
