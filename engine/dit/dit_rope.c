/* 3-D RoPE table of one chunk (MODEL-SPEC §4.4), built on the backend in float64.
 *
 * Wan splits a head's D channels as D - 4*(D/6) for time and 2*(D/6) each for height and
 * width (integer division; 128 -> 44, 42, 42 channels = 22, 21, 21 complex pairs), with
 * frequencies w_i = 10000^(-2i/d_axis) per axis. The temporal position is absolute within
 * the scene (start_frame + f), so cached keys keep the rotation of where they were.
 *
 * The host computes only the per-axis rows (cos, sin of pos * w_i for one position); the
 * backend expands them into the per-token table with stride-0 broadcasting copies. Tokens
 * are frame-major, so for a fixed grid the height/width columns of frame f do not depend
 * on T or on the start frame: they are expanded once per grid for every frame the session
 * can hold, and a chunk only uploads and expands its T time rows. */
#include <math.h>
#include <stdlib.h>

#include "dit_internal.h"

void dit_rope_split(int head_dim, int * pairs_t, int * pairs_h, int * pairs_w) {
    int s = 2 * (head_dim / 6);
    *pairs_t = (head_dim - 2 * s) / 2;
    *pairs_h = s / 2;
    *pairs_w = s / 2;
}

enum infvsr_status dit_rope_open(struct infvsr_dit_session * s, struct infvsr_err * err) {
    struct dit_rope * r = &s->rope;
    dit_rope_split(s->dit->head_dim, &r->pairs_t, &r->pairs_h, &r->pairs_w);
    int pmax = r->pairs_t > r->pairs_h ? r->pairs_t : r->pairs_h;
    if (r->pairs_w > pmax) pmax = r->pairs_w;
    r->row = 2 * pmax;
    /* Rows used at once: gh + gw + T <= T*gh*gw + 2 <= max_tokens + 2. */
    int64_t sf[3] = { s->max_tokens, s->dit->head_dim / 2, 2 };
    int64_t sa[2] = { s->max_tokens + 2, r->row };
    INFVSR_TRY(dit_alloc(s->dit->be, &r->freqs, "dit.rope", INFVSR_TYPE_F64, 3, sf, err));
    INFVSR_TRY(dit_alloc(s->dit->be, &r->axes, "dit.rope_axes", INFVSR_TYPE_F64, 2, sa, err));
    r->host = malloc((size_t)(DIT_ROPE_BATCH * r->row) * sizeof(double));
    if (!r->host) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "dit rope: no memory");
    r->gh = r->gw = 0;
    return INFVSR_OK;
}

void dit_rope_close(struct infvsr_dit_session * s) {
    infvsr_backend_tensor_free(s->dit->be, &s->rope.freqs);
    infvsr_backend_tensor_free(s->dit->be, &s->rope.axes);
    free(s->rope.host);
    s->rope.host = NULL;
}

/* Rows first_row .. first_row+n-1 of `axes` = (cos, sin) of (pos0 + i) * w_k for the
 * `pairs` frequencies of an axis of 2*pairs channels (the same float64 expressions as
 * the reference: w_k = 1 / 10000^(2k / d_axis), angle = pos * w_k). */
static enum infvsr_status upload_axis(struct infvsr_dit_session * s, int64_t first_row, int64_t pos0, int64_t n,
                                      int pairs, struct infvsr_err * err) {
    struct dit_rope * r = &s->rope;
    double w[128];
    for (int i = 0; i < pairs; i++) w[i] = 1.0 / pow(10000.0, (double)(2 * i) / (double)(2 * pairs));
    for (int64_t b = 0; b < n; b += DIT_ROPE_BATCH) {
        int64_t m = n - b < DIT_ROPE_BATCH ? n - b : DIT_ROPE_BATCH;
        for (int64_t j = 0; j < m; j++) {
            double   pos = (double)(pos0 + b + j);
            double * p   = r->host + j * r->row;
            for (int i = 0; i < pairs; i++) {
                double a = pos * w[i];
                p[2 * i]     = cos(a);
                p[2 * i + 1] = sin(a);
            }
        }
        size_t bytes = (size_t)(m * r->row) * sizeof(double);
        INFVSR_TRY(infvsr_backend_tensor_set(s->dit->be, &r->axes, r->host,
                                             (size_t)((first_row + b) * r->row) * sizeof(double), bytes, err));
    }
    return INFVSR_OK;
}

/* freqs[f, y, x, col0 .. col0 + 2*pairs) = axes[row0 + f*sf + y*sy + x*sx, 0 .. 2*pairs)
 * for f < T, y < gh, x < gw: one broadcasting copy (exactly one of sf, sy, sx is 1). */
static enum infvsr_status expand_axis(struct infvsr_dit_session * s, int64_t T, int64_t gh, int64_t gw, int col0,
                                      int pairs, int64_t row0, int64_t sf, int64_t sy, int64_t sx,
                                      struct infvsr_err * err) {
    struct dit_rope * r  = &s->rope;
    const int64_t     hd = s->dit->head_dim; /* doubles per token: head_dim/2 pairs of (cos, sin) */
    struct infvsr_copy_args a = infvsr_copy_args_init(INFVSR_COPY_SET, 4);
    a.extent[0] = T, a.extent[1] = gh, a.extent[2] = gw, a.extent[3] = 2 * pairs;
    a.x = &r->axes;
    a.x_offset = row0 * r->row;
    a.x_stride[0] = sf * r->row, a.x_stride[1] = sy * r->row, a.x_stride[2] = sx * r->row, a.x_stride[3] = 1;
    a.y = &r->freqs;
    a.y_offset = 2 * col0;
    a.y_stride[0] = gh * gw * hd, a.y_stride[1] = gw * hd, a.y_stride[2] = hd, a.y_stride[3] = 1;
    return infvsr_op_copy(s->dit->be, &a, err);
}

enum infvsr_status dit_rope_prepare(struct infvsr_dit_session * s, int64_t start_frame, int64_t T, int64_t gh,
                                    int64_t gw, struct infvsr_err * err) {
    struct dit_rope * r = &s->rope;
    /* Axis rows: height at [0, gh), width at [gh, gh + gw), time after them. */
    if (gh != r->gh || gw != r->gw) {
        int64_t frames = s->max_tokens / (gh * gw); /* every frame a chunk of this grid can have */
        r->gh = r->gw = 0;                          /* invalid until both columns are written */
        INFVSR_TRY(upload_axis(s, 0, 0, gh, r->pairs_h, err));
        INFVSR_TRY(upload_axis(s, gh, 0, gw, r->pairs_w, err));
        INFVSR_TRY(expand_axis(s, frames, gh, gw, r->pairs_t, r->pairs_h, 0, 0, 1, 0, err));
        INFVSR_TRY(expand_axis(s, frames, gh, gw, r->pairs_t + r->pairs_h, r->pairs_w, gh, 0, 0, 1, err));
        r->gh = gh, r->gw = gw;
    }
    INFVSR_TRY(upload_axis(s, gh + gw, start_frame, T, r->pairs_t, err));
    return expand_axis(s, T, gh, gw, 0, r->pairs_t, gh + gw, 1, 0, 0, err);
}
