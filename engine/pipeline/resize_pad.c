/* Pixel-level steps of a chunk around the model, as strided copies on the backend (the
 * engine never touches frame data on the host): u8 -> model range, replicate padding, and
 * the writer's crop + quantisation. The bicubic upscale itself is the backend's resize op. */
#include <string.h>

#include "ops.h"
#include "session_internal.h"

enum infvsr_status infvsr__frames_to_model(struct infvsr_session * s, int L, struct infvsr_err * err) {
    const int64_t h = s->h, w = s->w;
    /* dims: c, t, y, x; three separate f32 roundings, as torch does x / 255 * 2 - 1. */
    struct infvsr_copy_args a = infvsr_copy_args_init(INFVSR_COPY_U8_TO_MODEL, 4);
    const int64_t ext[4] = { 3, L, h, w };
    const int64_t xs[4]  = { 1, h * w * 3, w * 3, 3 };
    const int64_t ys[4]  = { L * h * w, h * w, w, 1 };
    memcpy(a.extent, ext, sizeof ext);
    memcpy(a.x_stride, xs, sizeof xs);
    memcpy(a.y_stride, ys, sizeof ys);
    a.x = &s->lr_u8;
    a.y = &s->lr;
    return infvsr_op_copy(s->be, &a, err);
}

/* frames[c, t0 + t, y0 + y, x0 + x] = src[c, st0 + t*stt, sy0 + y*sty, sx0 + x*stx] for
 * t < nt, y < ny, x < nx (a stride of 0 repeats the source's last frame, row or column). */
struct pad_region {
    int64_t t0, nt, y0, ny, x0, nx;   /* destination block                 */
    int64_t st0, stt, sy0, sty, sx0, stx;
};

static enum infvsr_status pad_copy(struct infvsr_session * s, const struct infvsr_tensor * src, int L, int Lp,
                                   const struct pad_region * r, struct infvsr_err * err) {
    if (r->nt == 0 || r->ny == 0 || r->nx == 0) return INFVSR_OK;
    const int64_t sh = s->sh, sw = s->sw, ph = s->ph, pw = s->pw;
    struct infvsr_copy_args a = infvsr_copy_args_init(INFVSR_COPY_SET, 4);
    a.extent[0] = 3, a.extent[1] = r->nt, a.extent[2] = r->ny, a.extent[3] = r->nx;
    a.x = src;
    a.x_offset = (r->st0 * sh + r->sy0) * sw + r->sx0;
    a.x_stride[0] = (int64_t)L * sh * sw, a.x_stride[1] = r->stt * sh * sw, a.x_stride[2] = r->sty * sw;
    a.x_stride[3] = r->stx;
    a.y = &s->frames;
    a.y_offset = (r->t0 * ph + r->y0) * pw + r->x0;
    a.y_stride[0] = (int64_t)Lp * ph * pw, a.y_stride[1] = ph * pw, a.y_stride[2] = pw, a.y_stride[3] = 1;
    return infvsr_op_copy(s->be, &a, err);
}

enum infvsr_status infvsr__pad_replicate(struct infvsr_session * s, const struct infvsr_tensor * src, int L, int Lp,
                                         struct infvsr_err * err) {
    const int64_t sh = s->sh, sw = s->sw, ph = s->ph, pw = s->pw;
    /* Every copy reads `src` (never frames itself, so no view overlaps the one written):
     * the picture, the right columns, the bottom rows, the bottom-right corner; the same
     * four again for the padded frames at the end, from the last frame (time stride 0). */
    for (int k = 0; k < 2; k++) {
        int64_t t0 = k == 0 ? 0 : L, nt = k == 0 ? L : Lp - L, st0 = k == 0 ? 0 : L - 1, stt = k == 0 ? 1 : 0;
        const struct pad_region rs[4] = {
            { t0, nt, 0, sh, 0, sw, st0, stt, 0, 1, 0, 1 },
            { t0, nt, 0, sh, sw, pw - sw, st0, stt, 0, 1, sw - 1, 0 },
            { t0, nt, sh, ph - sh, 0, sw, st0, stt, sh - 1, 0, 0, 1 },
            { t0, nt, sh, ph - sh, sw, pw - sw, st0, stt, sh - 1, 0, sw - 1, 0 },
        };
        for (int i = 0; i < 4; i++) INFVSR_TRY(pad_copy(s, src, L, Lp, &rs[i], err));
    }
    return INFVSR_OK;
}

enum infvsr_status infvsr__quantise(struct infvsr_session * s, int L, int Lp, struct infvsr_err * err) {
    const int64_t sh = s->sh, sw = s->sw, ph = s->ph, pw = s->pw;
    /* dims: t, y, c, x (x innermost: long rows); truncation as numpy's astype(uint8). */
    struct infvsr_copy_args a = infvsr_copy_args_init(INFVSR_COPY_MODEL_TO_U8, 4);
    const int64_t ext[4] = { L, sh, 3, sw };
    const int64_t xs[4]  = { ph * pw, pw, (int64_t)Lp * ph * pw, 1 };
    const int64_t ys[4]  = { sh * sw * 3, sw * 3, 1, 3 };
    memcpy(a.extent, ext, sizeof ext);
    memcpy(a.x_stride, xs, sizeof xs);
    memcpy(a.y_stride, ys, sizeof ys);
    a.x = &s->frames;
    a.y = &s->out_u8;
    return infvsr_op_copy(s->be, &a, err);
}
