/* Fast resampler: torch's antialiased separable resize (MODEL-SPEC §3), in f32 with
 * torch's own rounding so the output matches F.interpolate(antialias=True) to ~1e-7.
 *
 * Per axis a table of (xmin, ntaps, weights) is computed once per call with torch's
 * formulas and types (center, support and weights in f32, the +0.5 terms in double as
 * C++ promotes them). Then the W pass writes an f32 temp [P, Hi, Wo] and the H pass
 * reads it; each output is sum_j w_j in[xmin + j], accumulated in f32 from j = 0 (this
 * file is compiled in ISO C mode, where GCC does not contract a*b+c into FMA).
 * Threading: both passes over ranges of rows. NEAREST is nearest-exact. */
#include <math.h>
#include <stdlib.h>

#include "cpu_impl.h"
#include "resize_table.h"

static float filter_aa(enum infvsr_resize_mode mode, float x) {
    if (x < 0.0f) x = -x;
    if (mode == INFVSR_RESIZE_BILINEAR_AA) return x < 1.0f ? (float)(1.0 - x) : 0.0f;
    /* Keys cubic, a = -0.5, evaluated in double as torch's literal `a` makes it */
    const double a = -0.5;
    if (x < 1.0f) return (float)(((a + 2.0) * x - (a + 3.0)) * x * x + 1);
    if (x < 2.0f) return (float)((((x - 5) * x + 8) * x - 4) * a);
    return 0.0f;
}

static float axis_scale(int64_t in, int64_t out) {
    return (float)in / (float)out;
}

static float axis_support(enum infvsr_resize_mode mode, float scale) {
    int interp = mode == INFVSR_RESIZE_BICUBIC_AA ? 4 : 2;
    return scale >= 1.0f ? (float)((interp * 0.5) * scale) : (float)(interp * 0.5);
}

int infvsr_cpu_resize_max_taps(enum infvsr_resize_mode mode, int64_t in, int64_t out) {
    if (mode == INFVSR_RESIZE_NEAREST) return 1;
    return (int)ceilf(axis_support(mode, axis_scale(in, out))) * 2 + 1;
}

int infvsr_cpu_resize_taps(enum infvsr_resize_mode mode, int64_t in, int64_t out, int64_t i, int64_t * xmin,
                           float * w) {
    const float scale = axis_scale(in, out);
    if (mode == INFVSR_RESIZE_NEAREST) {
        int64_t s = (int64_t)floorf((float)(((double)i + 0.5) * (double)scale));
        *xmin = s < in - 1 ? s : in - 1;
        w[0]  = 1.0f;
        return 1;
    }
    const float support  = axis_support(mode, scale);
    const float center   = (float)((double)scale * ((double)i + 0.5));
    const float invscale = scale >= 1.0f ? (float)(1.0 / scale) : 1.0f;
    int64_t lo = (int64_t)((double)(center - support) + 0.5);
    int64_t hi = (int64_t)((double)(center + support) + 0.5);
    if (lo < 0) lo = 0;
    if (hi > in) hi = in;
    int n = (int)(hi - lo);
    float total = 0.0f;
    for (int j = 0; j < n; j++) {
        float arg = (float)(((double)((float)(j + lo) - center) + 0.5) * (double)invscale);
        w[j] = filter_aa(mode, arg);
        total += w[j];
    }
    if (total != 0.0f) {
        for (int j = 0; j < n; j++) w[j] /= total;
    }
    *xmin = lo;
    return n;
}

struct table {
    int64_t * xmin;
    int *     n;
    float *   w;     /* [out, max_taps] */
    int       max_taps;
};

static bool table_build(struct table * t, enum infvsr_resize_mode mode, int64_t in, int64_t out) {
    t->max_taps = infvsr_cpu_resize_max_taps(mode, in, out);
    t->xmin = malloc((size_t)out * sizeof *t->xmin);
    t->n    = malloc((size_t)out * sizeof *t->n);
    t->w    = malloc((size_t)(out * t->max_taps) * sizeof *t->w);
    if (!t->xmin || !t->n || !t->w) return false;
    for (int64_t i = 0; i < out; i++) {
        t->n[i] = infvsr_cpu_resize_taps(mode, in, out, i, &t->xmin[i], t->w + i * t->max_taps);
    }
    return true;
}

static void table_free(struct table * t) {
    free(t->xmin);
    free(t->n);
    free(t->w);
}

struct resize_job {
    const float *  x;
    float *        tmp, * y;
    struct table   tw, th;
    int64_t        P, Hi, Wi, Ho, Wo, rows_per_task;
};

/* rows of the W pass: P * Hi rows of Wi -> Wo */
static void pass_w_task(void * ctx, int64_t t, int tid) {
    const struct resize_job * j = ctx;
    int64_t r0 = t * j->rows_per_task, r1 = r0 + j->rows_per_task < j->P * j->Hi ? r0 + j->rows_per_task : j->P * j->Hi;
    for (int64_t r = r0; r < r1; r++) {
        const float * src = j->x + r * j->Wi;
        float *       dst = j->tmp + r * j->Wo;
        for (int64_t o = 0; o < j->Wo; o++) {
            const float * w = j->tw.w + o * j->tw.max_taps;
            const float * s = src + j->tw.xmin[o];
            float acc = s[0] * w[0];
            for (int k = 1; k < j->tw.n[o]; k++) acc += s[k] * w[k];
            dst[o] = acc;
        }
    }
}

/* rows of the H pass: P * Ho output rows, each a weighted sum of temp rows */
static void pass_h_task(void * ctx, int64_t t, int tid) {
    const struct resize_job * j = ctx;
    int64_t r0 = t * j->rows_per_task, r1 = r0 + j->rows_per_task < j->P * j->Ho ? r0 + j->rows_per_task : j->P * j->Ho;
    for (int64_t r = r0; r < r1; r++) {
        int64_t p = r / j->Ho, o = r % j->Ho;
        const float * w   = j->th.w + o * j->th.max_taps;
        const float * src = j->tmp + (p * j->Hi + j->th.xmin[o]) * j->Wo;
        float *       dst = j->y + r * j->Wo;
        int           n   = j->th.n[o];
        for (int64_t x = 0; x < j->Wo; x++) dst[x] = src[x] * w[0];
        for (int k = 1; k < n; k++) {
            const float * s = src + k * j->Wo;
            for (int64_t x = 0; x < j->Wo; x++) dst[x] += s[x] * w[k];
        }
    }
}

enum infvsr_status infvsr_cpu_op_resize(struct infvsr_cpu_ctx * c, enum infvsr_resize_mode mode, const float * x,
                                        int64_t P, int64_t Hi, int64_t Wi, float * y, int64_t Ho, int64_t Wo) {
    struct resize_job j = { .x = x, .y = y, .P = P, .Hi = Hi, .Wi = Wi, .Ho = Ho, .Wo = Wo };
    enum infvsr_status st = INFVSR_ERR_NOMEM;
    if (!table_build(&j.tw, mode, Wi, Wo) || !table_build(&j.th, mode, Hi, Ho)) goto out;
    j.tmp = infvsr__buf_reserve(&c->col, (size_t)(P * Hi * Wo));
    if (!j.tmp) goto out;

    int64_t n_tasks = infvsr__n_chunks(c, P * Hi * Wo, 16384);
    j.rows_per_task = (P * Hi + n_tasks - 1) / n_tasks;
    infvsr__par(c, (P * Hi + j.rows_per_task - 1) / j.rows_per_task, pass_w_task, &j);

    n_tasks = infvsr__n_chunks(c, P * Ho * Wo, 16384);
    j.rows_per_task = (P * Ho + n_tasks - 1) / n_tasks;
    infvsr__par(c, (P * Ho + j.rows_per_task - 1) / j.rows_per_task, pass_h_task, &j);
    st = INFVSR_OK;
out:
    table_free(&j.tw);
    table_free(&j.th);
    return st;
}
