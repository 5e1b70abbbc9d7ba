/* Fast RoPE: x, y [N, H*D], freqs [N, D/2, 2] f64 (cos, sin). Rotation in double, as the
 * reference (the angles are f64 in the model too); threaded over token ranges. */
#include "cpu_impl.h"

struct rope_job {
    const float *  x;
    const double * f;
    float *        y;
    int64_t        N, H, D, per_task;
};

/* One token: x, y [H*D], f [D/2, 2]. In place (x == y) is safe: each pair is read whole
 * before it is written. */
void infvsr__rope_row(const float * x, const double * f, float * y, int64_t H, int64_t D) {
    const int64_t half = D / 2;
    for (int64_t h = 0; h < H; h++) {
        const float * xh = x + h * D;
        float *       yh = y + h * D;
        for (int64_t p = 0; p < half; p++) {
            double cs = f[2 * p], sn = f[2 * p + 1];
            double x0 = xh[2 * p], x1 = xh[2 * p + 1];
            yh[2 * p]     = (float)(x0 * cs - x1 * sn);
            yh[2 * p + 1] = (float)(x0 * sn + x1 * cs);
        }
    }
}

static void rope_task(void * ctx, int64_t t, int tid) {
    const struct rope_job * j = ctx;
    const int64_t HD = j->H * j->D;
    int64_t n0 = t * j->per_task, n1 = n0 + j->per_task < j->N ? n0 + j->per_task : j->N;
    for (int64_t n = n0; n < n1; n++) infvsr__rope_row(j->x + n * HD, j->f + n * j->D, j->y + n * HD, j->H, j->D);
}

void infvsr_cpu_op_rope(struct infvsr_cpu_ctx * c, const float * x, int64_t N, int64_t H, int64_t D,
                        const double * freqs, float * y) {
    struct rope_job j = { .x = x, .f = freqs, .y = y, .N = N, .H = H, .D = D };
    int64_t n_tasks = infvsr__n_chunks(c, N * H * D, 16384);
    j.per_task = (N + n_tasks - 1) / n_tasks;
    infvsr__par(c, (N + j.per_task - 1) / j.per_task, rope_task, &j);
}
