/* Float64 reference RoPE. x, y [N, H*D]; freqs [N, D/2, 2] (cos, sin) */
#include "../cpu_impl.h"

void infvsr_cpu_ref_rope(const float * x, int64_t N, int64_t H, int64_t D, const double * freqs, float * y) {
    for (int64_t n = 0; n < N; n++) {
        for (int64_t h = 0; h < H; h++) {
            for (int64_t p = 0; p < D / 2; p++) {
                double cs = freqs[(n * (D / 2) + p) * 2], sn = freqs[(n * (D / 2) + p) * 2 + 1];
                int64_t i = n * H * D + h * D + 2 * p;
                double x0 = x[i], x1 = x[i + 1];
                y[i]     = (float)(x0 * cs - x1 * sn);
                y[i + 1] = (float)(x0 * sn + x1 * cs);
            }
        }
    }
}
