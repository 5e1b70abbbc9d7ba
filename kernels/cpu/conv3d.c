/* Fast 3-D convolution: im2col blocked over output positions, then OpenBLAS sgemm.
 *
 *   y[Cout, P] = W[Cout, Kc] . col[Kc, P],  Kc = Cin kt kh kw,  P = To Ho Wo
 *
 * The output positions are cut into blocks of at most COL_BYTES / (4 Kc) positions, so
 * the column buffer stays bounded (64 MiB) whatever the frame size; each block's columns
 * are a contiguous span of y, written by sgemm with ldc = P. The pool fills col (one
 * task per group of col rows), BLAS runs from the calling thread. BF16/F16 weights are
 * widened once per call (conv weights are small: <= 384 x 384 x 27). A 1x1x1 kernel
 * with stride 1 and no padding multiplies x directly (no im2col). 3x3 spatial kernels
 * with stride 1 go to a Winograd path when their GEMMs are large enough: F(4x4, 3x3)
 * (conv3d_winograd4.c) with many tiles, F(2x2, 3x3) (conv3d_winograd.c) with fewer. */
#include <cblas.h>
#include <string.h>

#include "conv3d_winograd.h"
#include "cpu_impl.h"

#define COL_BYTES ((size_t)64 << 20)

struct im2col_job {
    const struct infvsr_cpu_conv * a;
    float *                        col;
    int64_t                        p0, pb; /* positions [p0, p0 + pb) */
    int64_t                        rows_per_task;
};

static int64_t ceil_div(int64_t a, int64_t b) {
    return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

static int64_t floor_div(int64_t a, int64_t b) {
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* col row r: input channel ci, tap (dt, dh, dw), over the block's positions */
static void im2col_row(const struct im2col_job * j, int64_t r) {
    const struct infvsr_cpu_conv * a = j->a;
    const int64_t kvol = a->kt * a->kh * a->kw;
    const int64_t ci = r / kvol, dt = (r / (a->kh * a->kw)) % a->kt, dh = (r / a->kw) % a->kh, dw = r % a->kw;
    float * dst = j->col + r * j->pb;
    int64_t p = j->p0, to = p / (a->ho * a->wo), oh = (p / a->wo) % a->ho, ow = p % a->wo;
    /* output columns ox whose input column ox*sw + dw - pad_left lies inside [0, W) */
    const int64_t ox_lo = ceil_div(a->pad_left - dw, a->sw) > 0 ? ceil_div(a->pad_left - dw, a->sw) : 0;
    const int64_t ox_hi = floor_div(a->w_in - 1 + a->pad_left - dw, a->sw); /* inclusive */
    for (int64_t filled = 0; filled < j->pb;) {
        int64_t n  = a->wo - ow < j->pb - filled ? a->wo - ow : j->pb - filled;
        int64_t ti = to * a->st + dt, hi = oh * a->sh + dh - a->pad_top;
        float * d  = dst + filled;
        if (hi < 0 || hi >= a->h) {
            memset(d, 0, (size_t)n * sizeof *d);
        } else {
            const float * src = a->x + ((ci * a->t + ti) * a->h + hi) * a->w_in;
            int64_t qa = ox_lo - ow > 0 ? ox_lo - ow : 0;
            int64_t qb = ox_hi - ow + 1 < n ? ox_hi - ow + 1 : n;
            if (qb < qa) qb = qa;
            for (int64_t q = 0; q < qa; q++) d[q] = 0;
            if (qb == qa) {
                /* no input column in range */
            } else if (a->sw == 1) {
                memcpy(d + qa, src + (ow + qa) + dw - a->pad_left, (size_t)(qb - qa) * sizeof *d);
            } else {
                for (int64_t q = qa; q < qb; q++) d[q] = src[(ow + q) * a->sw + dw - a->pad_left];
            }
            for (int64_t q = qb; q < n; q++) d[q] = 0;
        }
        filled += n;
        ow = 0;
        if (++oh == a->ho) {
            oh = 0;
            to++;
        }
    }
}

/* rows [r rows_per_task, (r + 1) rows_per_task): small blocks (e.g. 64 positions of an
 * 8x8 frame) would otherwise make one task per 256 bytes */
static void im2col_task(void * ctx, int64_t t, int tid) {
    (void)tid;
    const struct im2col_job * j = ctx;
    const int64_t             Kc = j->a->cin * j->a->kt * j->a->kh * j->a->kw;
    const int64_t             r1 = (t + 1) * j->rows_per_task < Kc ? (t + 1) * j->rows_per_task : Kc;
    for (int64_t r = t * j->rows_per_task; r < r1; r++) im2col_row(j, r);
}

struct bias_job {
    float *       y;
    const float * b;
    int64_t       P;
};

static void bias_task(void * ctx, int64_t co, int tid) {
    const struct bias_job * j = ctx;
    float * y = j->y + co * j->P;
    for (int64_t i = 0; i < j->P; i++) y[i] += j->b[co];
}

enum infvsr_status infvsr_cpu_op_conv3d(struct infvsr_cpu_ctx * c, const struct infvsr_cpu_conv * a) {
    /* 3x3 spatial, stride 1 (the bulk of the VAE): Winograd, 2.25x (F(2x2)) or 4x (F(4x4))
     * fewer multiplies */
    switch (infvsr__conv3d_winograd_tile(a)) {
    case 4: return infvsr__conv3d_winograd4(c, a);
    case 2: return infvsr__conv3d_winograd(c, a);
    default: break;
    }
    const int64_t Kc = a->cin * a->kt * a->kh * a->kw, P = a->to * a->ho * a->wo;
    /* weights (+ bias) in f32 */
    size_t wn = a->w.dtype == INFVSR_TYPE_F32 ? 0 : (size_t)(a->cout * Kc);
    float * wbuf = infvsr__buf_reserve(&c->panel, wn + (size_t)a->cout);
    if (!wbuf) return INFVSR_ERR_NOMEM;
    const float * W = a->w.dtype == INFVSR_TYPE_F32 ? (const float *)a->w.data : wbuf;
    if (wn) infvsr__w_widen(wbuf, a->w, 0, wn);
    const float * bias = NULL;
    if (a->b.data) {
        infvsr__w_widen(wbuf + wn, a->b, 0, (size_t)a->cout);
        bias = wbuf + wn;
    }

    bool direct = a->kt == 1 && a->kh == 1 && a->kw == 1 && a->st == 1 && a->sh == 1 && a->sw == 1 &&
                  a->pad_top == 0 && a->pad_bottom == 0 && a->pad_left == 0 && a->pad_right == 0;
    if (direct) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)a->cout, (int)P, (int)Kc, 1.0f, W, (int)Kc,
                    a->x, (int)P, 0.0f, a->y, (int)P);
    } else {
        int64_t pb = (int64_t)(COL_BYTES / sizeof(float)) / Kc;
        if (pb < 1) pb = 1;
        if (pb > P) pb = P;
        float * col = infvsr__buf_reserve(&c->col, (size_t)(Kc * pb));
        if (!col) return INFVSR_ERR_NOMEM;
        for (int64_t p0 = 0; p0 < P; p0 += pb) {
            struct im2col_job j = { .a = a, .col = col, .p0 = p0, .pb = P - p0 < pb ? P - p0 : pb };
            j.rows_per_task = (4096 + j.pb - 1) / j.pb; /* >= 16 KiB of col per task */
            infvsr__par(c, (Kc + j.rows_per_task - 1) / j.rows_per_task, im2col_task, &j);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)a->cout, (int)j.pb, (int)Kc, 1.0f, W, (int)Kc,
                        col, (int)j.pb, 0.0f, a->y + p0, (int)P);
        }
    }
    if (bias) {
        struct bias_job bj = { .y = a->y, .b = bias, .P = P };
        infvsr__par(c, a->cout, bias_task, &bj);
    }
    return INFVSR_OK;
}
