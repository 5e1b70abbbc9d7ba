/* Float64 reference of the resampler of MODEL-SPEC §3, written straight from the formulas
 * (support, center, xmin/xmax truncation, renormalised weights) in double, without the
 * f32 table code of kernels/cpu/resize.c, so the two check each other.
 * x [P, Hi, Wi] -> y [P, Ho, Wo]; separable: W pass into a double temp, then H. */
#include <math.h>
#include <stdlib.h>

#include "../cpu_impl.h"

static double filter(enum infvsr_resize_mode mode, double x) {
    x = fabs(x);
    if (mode == INFVSR_RESIZE_BILINEAR_AA) return x < 1.0 ? 1.0 - x : 0.0;
    const double A = -0.5;
    if (x < 1.0) return ((A + 2) * x - (A + 3)) * x * x + 1;
    if (x < 2.0) return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
    return 0.0;
}

/* One output sample of one axis: writes the taps into idx/wt, returns their count. */
static int axis_taps(enum infvsr_resize_mode mode, int64_t in, int64_t out, int64_t i, int64_t * idx, double * wt) {
    double scale = (double)in / (double)out;
    if (mode == INFVSR_RESIZE_NEAREST) {
        int64_t s = (int64_t)floor(((double)i + 0.5) * scale);
        idx[0] = s < in - 1 ? s : in - 1;
        wt[0]  = 1.0;
        return 1;
    }
    double interp   = mode == INFVSR_RESIZE_BICUBIC_AA ? 4.0 : 2.0;
    double support  = scale >= 1.0 ? interp * 0.5 * scale : interp * 0.5;
    double invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
    double center   = scale * ((double)i + 0.5);
    int64_t xmin = (int64_t)(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int64_t xmax = (int64_t)(center + support + 0.5);
    if (xmax > in) xmax = in;
    double total = 0;
    int n = 0;
    for (int64_t j = 0; j < xmax - xmin; j++, n++) {
        idx[n] = xmin + j;
        wt[n]  = filter(mode, ((double)(j + xmin) - center + 0.5) * invscale);
        total += wt[n];
    }
    if (total != 0.0) {
        for (int j = 0; j < n; j++) wt[j] /= total;
    }
    return n;
}

bool infvsr_cpu_ref_resize(enum infvsr_resize_mode mode, const float * x, int64_t P, int64_t Hi, int64_t Wi,
                           float * y, int64_t Ho, int64_t Wo) {
    /* taps per output sample are at most 2 * support + 1 */
    int64_t maxw = 2 * (int64_t)ceil(2.0 * (Wi > Wo ? (double)Wi / Wo : 1.0)) + 3;
    int64_t maxh = 2 * (int64_t)ceil(2.0 * (Hi > Ho ? (double)Hi / Ho : 1.0)) + 3;
    int64_t maxt = maxw > maxh ? maxw : maxh;
    double *  tmp = malloc((size_t)(Hi * Wo) * sizeof *tmp);
    int64_t * idx = malloc((size_t)maxt * sizeof *idx);
    double *  wt  = malloc((size_t)maxt * sizeof *wt);
    if (!tmp || !idx || !wt) {
        free(tmp);
        free(idx);
        free(wt);
        return false;
    }
    for (int64_t p = 0; p < P; p++) {
        const float * xp = x + p * Hi * Wi;
        for (int64_t ox = 0; ox < Wo; ox++) {
            int n = axis_taps(mode, Wi, Wo, ox, idx, wt);
            for (int64_t r = 0; r < Hi; r++) {
                double acc = 0;
                for (int j = 0; j < n; j++) acc += wt[j] * xp[r * Wi + idx[j]];
                tmp[r * Wo + ox] = acc;
            }
        }
        for (int64_t oy = 0; oy < Ho; oy++) {
            int n = axis_taps(mode, Hi, Ho, oy, idx, wt);
            for (int64_t ox = 0; ox < Wo; ox++) {
                double acc = 0;
                for (int j = 0; j < n; j++) acc += wt[j] * tmp[idx[j] * Wo + ox];
                y[(p * Ho + oy) * Wo + ox] = (float)acc;
            }
        }
    }
    free(tmp);
    free(idx);
    free(wt);
    return true;
}
