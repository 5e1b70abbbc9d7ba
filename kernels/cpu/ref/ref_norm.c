/* Float64 reference of the row norms, the VAE channel norm and AdaLN modulation.
 * Every row is read completely before it is written, so in-place calls are fine. */
#include <math.h>

#include "../cpu_impl.h"

/* x, y [R, C]; w, b [C] or absent */
void infvsr_cpu_ref_layer_norm(const float * x, int64_t R, int64_t C, struct infvsr_cpu_w w,
                               struct infvsr_cpu_w b, float eps, float * y) {
    for (int64_t r = 0; r < R; r++) {
        const float * xr = x + r * C;
        double mean = 0, var = 0;
        for (int64_t i = 0; i < C; i++) mean += xr[i];
        mean /= (double)C;
        for (int64_t i = 0; i < C; i++) var += ((double)xr[i] - mean) * ((double)xr[i] - mean);
        var /= (double)C;
        double inv = 1.0 / sqrt(var + (double)eps);
        for (int64_t i = 0; i < C; i++) {
            double v = ((double)xr[i] - mean) * inv;
            if (w.data) v *= infvsr__w_get(w, (size_t)i);
            if (b.data) v += infvsr__w_get(b, (size_t)i);
            y[r * C + i] = (float)v;
        }
    }
}

/* x, y [R, C]; w [C] or absent */
void infvsr_cpu_ref_rms_norm(const float * x, int64_t R, int64_t C, struct infvsr_cpu_w w, float eps, float * y) {
    for (int64_t r = 0; r < R; r++) {
        const float * xr = x + r * C;
        double ss = 0;
        for (int64_t i = 0; i < C; i++) ss += (double)xr[i] * xr[i];
        double inv = 1.0 / sqrt(ss / (double)C + (double)eps);
        for (int64_t i = 0; i < C; i++) {
            double v = xr[i] * inv;
            if (w.data) v *= infvsr__w_get(w, (size_t)i);
            y[r * C + i] = (float)v;
        }
    }
}

/* x, y [C, S]; gamma [C]: y[c, s] = x[c, s] / max(||x[:, s]||, 1e-12) * sqrt(C) * gamma[c] */
void infvsr_cpu_ref_channel_rms_norm(const float * x, int64_t C, int64_t S, struct infvsr_cpu_w gamma, float * y) {
    for (int64_t s = 0; s < S; s++) {
        double ss = 0;
        for (int64_t c = 0; c < C; c++) ss += (double)x[c * S + s] * x[c * S + s];
        double nrm = sqrt(ss);
        double f   = sqrt((double)C) / (nrm > 1e-12 ? nrm : 1e-12);
        for (int64_t c = 0; c < C; c++) {
            double v = x[c * S + s] * f;
            if (gamma.data) v *= infvsr__w_get(gamma, (size_t)c);
            y[c * S + s] = (float)v;
        }
    }
}

/* x, y [R, C]; scale, shift [C]: y = x * (1 + scale) + shift */
void infvsr_cpu_ref_modulate(const float * x, int64_t R, int64_t C, struct infvsr_cpu_w scale,
                             struct infvsr_cpu_w shift, float * y) {
    for (int64_t r = 0; r < R; r++) {
        for (int64_t i = 0; i < C; i++) {
            double v = (double)x[r * C + i] * (1.0 + (double)infvsr__w_get(scale, (size_t)i)) +
                       (double)infvsr__w_get(shift, (size_t)i);
            y[r * C + i] = (float)v;
        }
    }
}
