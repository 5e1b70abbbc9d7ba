/* Fast row norms (layer, RMS), the VAE channel norm and AdaLN modulation.
 * Threading: contiguous row ranges per pool task (channel norm: ranges of positions).
 * Per-channel weights are widened to f32 once per call into the backend's panel buffer.
 * Statistics are accumulated in f32 vectors of 8 lanes plus a double final sum: well
 * inside the 1e-5 contract for rows of up to ~10^5 elements. */
#include <math.h>

#include "cpu_impl.h"
#include "simd.h"

struct norm_job {
    const float * x;
    float *       y;
    const float * w, * b;   /* widened, or NULL */
    int64_t       R, C, rows_per_task;
    float         eps;
};

static double row_sum(const float * x, int64_t C) {
    __m256 s = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= C; i += 8) s = _mm256_add_ps(s, _mm256_loadu_ps(x + i));
    double acc = infvsr__hsum8(s);
    for (; i < C; i++) acc += x[i];
    return acc;
}

/* sum (x - mean)^2 */
static double row_sqdev(const float * x, int64_t C, float mean) {
    __m256 s = _mm256_setzero_ps(), m = _mm256_set1_ps(mean);
    int64_t i = 0;
    for (; i + 8 <= C; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), m);
        s = _mm256_fmadd_ps(d, d, s);
    }
    double acc = infvsr__hsum8(s);
    for (; i < C; i++) acc += (double)(x[i] - mean) * (x[i] - mean);
    return acc;
}

static void task_rows(const struct norm_job * j, int64_t t, int64_t * r0, int64_t * r1) {
    *r0 = t * j->rows_per_task;
    *r1 = *r0 + j->rows_per_task < j->R ? *r0 + j->rows_per_task : j->R;
}

void infvsr__layer_norm_row(const float * x, float * y, int64_t C, const float * w, const float * b, float eps) {
    float mean = (float)(row_sum(x, C) / (double)C);
    float inv  = (float)(1.0 / sqrt(row_sqdev(x, C, mean) / (double)C + (double)eps));
    if (w && b) {
        for (int64_t i = 0; i < C; i++) y[i] = (x[i] - mean) * inv * w[i] + b[i];
    } else if (w) {
        for (int64_t i = 0; i < C; i++) y[i] = (x[i] - mean) * inv * w[i];
    } else if (b) {
        for (int64_t i = 0; i < C; i++) y[i] = (x[i] - mean) * inv + b[i];
    } else {
        for (int64_t i = 0; i < C; i++) y[i] = (x[i] - mean) * inv;
    }
}

static void layer_norm_task(void * ctx, int64_t t, int tid) {
    const struct norm_job * j = ctx;
    int64_t r0, r1;
    task_rows(j, t, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) infvsr__layer_norm_row(j->x + r * j->C, j->y + r * j->C, j->C, j->w, j->b, j->eps);
}

void infvsr__rms_norm_row(const float * x, float * y, int64_t C, const float * w, float eps) {
    float inv = (float)(1.0 / sqrt(row_sqdev(x, C, 0.0f) / (double)C + (double)eps));
    if (w) {
        for (int64_t i = 0; i < C; i++) y[i] = x[i] * inv * w[i];
    } else {
        for (int64_t i = 0; i < C; i++) y[i] = x[i] * inv;
    }
}

void infvsr__modulate_row(const float * x, float * y, int64_t C, const float * one_plus_scale, const float * shift) {
    for (int64_t i = 0; i < C; i++) y[i] = x[i] * one_plus_scale[i] + shift[i];
}

static void rms_norm_task(void * ctx, int64_t t, int tid) {
    const struct norm_job * j = ctx;
    int64_t r0, r1;
    task_rows(j, t, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) infvsr__rms_norm_row(j->x + r * j->C, j->y + r * j->C, j->C, j->w, j->eps);
}

static void modulate_task(void * ctx, int64_t t, int tid) {
    const struct norm_job * j = ctx;
    int64_t r0, r1;
    task_rows(j, t, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) infvsr__modulate_row(j->x + r * j->C, j->y + r * j->C, j->C, j->w, j->b);
}

bool infvsr__widen_pair(struct infvsr_cpu_ctx * c, int64_t C, struct infvsr_cpu_w a, struct infvsr_cpu_w b,
                        const float ** wa, const float ** wb) {
    float * buf = infvsr__buf_reserve(&c->panel, (size_t)(2 * C));
    if (!buf) return false;
    *wa = *wb = NULL;
    if (a.data) {
        infvsr__w_widen(buf, a, 0, (size_t)C);
        *wa = buf;
    }
    if (b.data) {
        infvsr__w_widen(buf + C, b, 0, (size_t)C);
        *wb = buf + C;
    }
    return true;
}

static void run_rows(struct infvsr_cpu_ctx * c, struct norm_job * j, infvsr_task_cb fn) {
    int64_t n_tasks = infvsr__n_chunks(c, j->R * j->C, 16384);
    j->rows_per_task = (j->R + n_tasks - 1) / n_tasks;
    infvsr__par(c, (j->R + j->rows_per_task - 1) / j->rows_per_task, fn, j);
}

void infvsr_cpu_op_layer_norm(struct infvsr_cpu_ctx * c, const float * x, int64_t R, int64_t C,
                              struct infvsr_cpu_w w, struct infvsr_cpu_w b, float eps, float * y) {
    struct norm_job j = { .x = x, .y = y, .R = R, .C = C, .eps = eps };
    if (!infvsr__widen_pair(c, C, w, b, &j.w, &j.b)) {
        infvsr_cpu_ref_layer_norm(x, R, C, w, b, eps, y);
        return;
    }
    run_rows(c, &j, layer_norm_task);
}

void infvsr_cpu_op_rms_norm(struct infvsr_cpu_ctx * c, const float * x, int64_t R, int64_t C,
                            struct infvsr_cpu_w w, float eps, float * y) {
    struct norm_job j = { .x = x, .y = y, .R = R, .C = C, .eps = eps };
    struct infvsr_cpu_w none = { 0 };
    if (!infvsr__widen_pair(c, C, w, none, &j.w, &j.b)) {
        infvsr_cpu_ref_rms_norm(x, R, C, w, eps, y);
        return;
    }
    run_rows(c, &j, rms_norm_task);
}

void infvsr_cpu_op_modulate(struct infvsr_cpu_ctx * c, const float * x, int64_t R, int64_t C,
                            struct infvsr_cpu_w scale, struct infvsr_cpu_w shift, float * y) {
    struct norm_job j = { .x = x, .y = y, .R = R, .C = C };
    if (!infvsr__widen_pair(c, C, scale, shift, &j.w, &j.b)) {
        infvsr_cpu_ref_modulate(x, R, C, scale, shift, y);
        return;
    }
    float * one_plus = (float *)j.w;
    for (int64_t i = 0; i < C; i++) one_plus[i] += 1.0f;
    run_rows(c, &j, modulate_task);
}

/* ---- channel norm: x [C, S], statistics across C for every position s ---- */

#define POS_BLOCK 256

/* Each position's result depends on its own column only, so any split into blocks gives
 * the same bits (the native bf16 op uses narrower blocks). In place (x == y) is safe. */
void infvsr__channel_norm_block(const float * x, int64_t ldx, float * y, int64_t ldy, int64_t C, int64_t n,
                                const float * g) {
    float ss[POS_BLOCK];
    INFVSR_ASSERT(n <= POS_BLOCK);
    for (int64_t i = 0; i < n; i++) ss[i] = 0;
    for (int64_t ch = 0; ch < C; ch++) {
        const float * xc = x + ch * ldx;
        for (int64_t i = 0; i < n; i++) ss[i] += xc[i] * xc[i];
    }
    const float sqrt_c = sqrtf((float)C);
    for (int64_t i = 0; i < n; i++) {
        float nrm = sqrtf(ss[i]);
        ss[i] = sqrt_c / (nrm > 1e-12f ? nrm : 1e-12f);
    }
    for (int64_t ch = 0; ch < C; ch++) {
        const float * xc = x + ch * ldx;
        float *       yc = y + ch * ldy;
        float         gc = g ? g[ch] : 1.0f;
        for (int64_t i = 0; i < n; i++) yc[i] = xc[i] * ss[i] * gc;
    }
}

static void channel_norm_task(void * ctx, int64_t t, int tid) {
    const struct norm_job * j = ctx; /* R = S positions, C channels, w = gamma (or NULL) */
    const int64_t S = j->R;
    int64_t s0 = t * POS_BLOCK, n = s0 + POS_BLOCK < S ? POS_BLOCK : S - s0;
    infvsr__channel_norm_block(j->x + s0, S, j->y + s0, S, j->C, n, j->w);
}

void infvsr_cpu_op_channel_rms_norm(struct infvsr_cpu_ctx * c, const float * x, int64_t C, int64_t S,
                                    struct infvsr_cpu_w gamma, float * y) {
    struct norm_job j = { .x = x, .y = y, .R = S, .C = C };
    struct infvsr_cpu_w none = { 0 };
    if (!infvsr__widen_pair(c, C, gamma, none, &j.w, &j.b)) {
        infvsr_cpu_ref_channel_rms_norm(x, C, S, gamma, y);
        return;
    }
    infvsr__par(c, (S + POS_BLOCK - 1) / POS_BLOCK, channel_norm_task, &j);
}
