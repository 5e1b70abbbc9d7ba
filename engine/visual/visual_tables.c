/* Load-time constants of the Swin stages (MODEL-SPEC.md section 6.2), recomputed from the
 * formulas (never read from the checkpoint) once per stage and imported with the weights, so
 * that encode moves data only through ops:
 *
 *   window partition + cyclic roll   to_win[shift?][t] = s(t); reverse: from_win[..][s(t)] = t
 *                                    with s(t) the spatial token of window-order token t on
 *                                    the grid rolled by -shift (gather_rows tables)
 *   relative-position index          rel_idx[i N + j] = (dr + ws - 1)(2 ws - 1) + (dc + ws - 1)
 *   shift masks                      one [N, N] mask per mask class (visual_impl.h): a window
 *                                    whose tokens all carry one region label has no mask, and
 *                                    the others come in three classes with one mask each (the
 *                                    band split of every axis only ever cuts the last window
 *                                    row and column), 0 within a label, -100 across
 *   patch merging                    merge_idx[4 o + q] = x0..x3 of output token o
 *
 * Memory: for the full model 4 x 9216 + 4 x 2304 + 2 x 576 ... int32 window tables (~200 KB),
 * three 144 x 144 masks per shifted stage (~750 KB), 144^2 int32 rel_idx per stage. */
#include <stdio.h>
#include <string.h>

#include "visual_impl.h"

static enum infvsr_status alloc_const(struct infvsr_visual * v, struct infvsr_tensor * t, const char * name,
                                      enum infvsr_dtype dt, int ndim, const int64_t * shape, struct infvsr_err * err) {
    if (infvsr_tensor_alloc(t, name, dt, ndim, shape) != INFVSR_OK) {
        return infvsr_err_set(err, INFVSR_ERR_NOMEM, "visual load: out of memory for the table '%s'", name);
    }
    v->const_bytes += infvsr_tensor_nbytes(t);
    return INFVSR_OK;
}

/* Spatial token index of window-order token t: window (wr, wc) row-major, token (i, j) row-major
 * inside it, on the grid rolled by -shift, i.e. rolled[h][w] = s[(h + shift) % res][(w + shift) % res]. */
static int64_t window_to_spatial(int64_t t, int res, int ws, int shift) {
    int64_t n = (int64_t)ws * ws, win = t / n, in = t % n, per_row = res / ws;
    int64_t h = (win / per_row) * ws + in / ws, w = (win % per_row) * ws + in % ws;
    return ((h + shift) % res) * res + (w + shift) % res;
}

static enum infvsr_status window_tables(struct infvsr_visual * v, struct infvsr__swin_stage * st, int k, int shift,
                                        struct infvsr_err * err) {
    const int64_t n_tok = (int64_t)st->res * st->res;
    char name[64];
    snprintf(name, sizeof name, "swin.%d.to_win%s", (int)(st - v->stages), k ? "_shift" : "");
    INFVSR_TRY(alloc_const(v, &st->tab.to_win[k], name, INFVSR_TYPE_I32, 1, &n_tok, err));
    snprintf(name, sizeof name, "swin.%d.from_win%s", (int)(st - v->stages), k ? "_shift" : "");
    INFVSR_TRY(alloc_const(v, &st->tab.from_win[k], name, INFVSR_TYPE_I32, 1, &n_tok, err));
    int32_t * to = st->tab.to_win[k].data, * from = st->tab.from_win[k].data;
    for (int64_t t = 0; t < n_tok; t++) {
        int64_t s = window_to_spatial(t, st->res, st->ws, shift);
        to[t]   = (int32_t)s;
        from[s] = (int32_t)t;
    }
    return INFVSR_OK;
}

static enum infvsr_status rel_index(struct infvsr_visual * v, struct infvsr__swin_stage * st,
                                    struct infvsr_err * err) {
    const int     ws = st->ws, n = ws * ws, span = 2 * ws - 1;
    const int64_t nn = (int64_t)n * n;
    char name[64];
    snprintf(name, sizeof name, "swin.%d.rel_idx", (int)(st - v->stages));
    INFVSR_TRY(alloc_const(v, &st->tab.rel_idx, name, INFVSR_TYPE_I32, 1, &nn, err));
    int32_t * idx = st->tab.rel_idx.data;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) idx[(int64_t)i * n + j] = (i / ws - j / ws + ws - 1) * span + (i % ws - j % ws + ws - 1);
    }
    return INFVSR_OK;
}

/* Region label of a rolled coordinate: bands [0, res-ws), [res-ws, res-shift), [res-shift, res). */
static int band(int x, int res, int ws, int shift) { return x < res - ws ? 0 : (x < res - shift ? 1 : 2); }

static enum infvsr_status shift_masks(struct infvsr_visual * v, struct infvsr__swin_stage * st, int shift,
                                      struct infvsr_err * err) {
    const int     ws = st->ws, n = ws * ws;
    const int64_t r = st->res / ws; /* windows per row (>= 2: the map is larger than a window) */
    const struct infvsr__mask_class cls[INFVSR__SWIN_MASK_CLASSES] = {
        { .first = r - 1, .count = r - 1, .step = r },           /* last column, rows 0..r-2 */
        { .first = (r - 1) * r, .count = r - 1, .step = 1 },     /* last row, columns 0..r-2 */
        { .first = r * r - 1, .count = 1, .step = 1 },           /* the corner               */
    };
    const int64_t shape[3] = { INFVSR__SWIN_MASK_CLASSES, n, n };
    char name[64];
    snprintf(name, sizeof name, "swin.%d.shift_masks", (int)(st - v->stages));
    INFVSR_TRY(alloc_const(v, &st->tab.masks, name, INFVSR_TYPE_F32, 3, shape, err));
    memcpy(st->tab.mask_class, cls, sizeof cls);
    float * m = st->tab.masks.data;
    int     labels[INFVSR__SWIN_MAX_WINDOW_TOKENS]; /* n <= this: checked at load */
    for (int c = 0; c < INFVSR__SWIN_MASK_CLASSES; c++, m += (int64_t)n * n) {
        const int64_t win = cls[c].first;
        const int     r0 = (int)(win / r) * ws, c0 = (int)(win % r) * ws;
        for (int i = 0; i < n; i++) labels[i] = band(r0 + i / ws, st->res, ws, shift) * 3 + band(c0 + i % ws, st->res, ws, shift);
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) m[(int64_t)i * n + j] = labels[i] != labels[j] ? -100.0f : 0.0f;
        }
    }
    return INFVSR_OK;
}

static enum infvsr_status merge_index(struct infvsr_visual * v, struct infvsr__swin_stage * st,
                                      struct infvsr_err * err) {
    const int     res = st->res, half = res / 2;
    const int64_t n_tok = (int64_t)res * res;
    char name[64];
    snprintf(name, sizeof name, "swin.%d.merge_idx", (int)(st - v->stages));
    INFVSR_TRY(alloc_const(v, &st->tab.merge_idx, name, INFVSR_TYPE_I32, 1, &n_tok, err));
    int32_t * idx = st->tab.merge_idx.data;
    for (int i = 0; i < half; i++) {
        for (int j = 0; j < half; j++) {
            int32_t * o = idx + ((int64_t)i * half + j) * 4; /* x0, x1, x2, x3 of the spec */
            o[0] = (2 * i) * res + 2 * j;
            o[1] = (2 * i + 1) * res + 2 * j;
            o[2] = (2 * i) * res + 2 * j + 1;
            o[3] = (2 * i + 1) * res + 2 * j + 1;
        }
    }
    return INFVSR_OK;
}

enum infvsr_status infvsr__swin_tables_build(struct infvsr_visual * v, struct infvsr_err * err) {
    for (int s = 0; s < INFVSR__SWIN_STAGES; s++) {
        struct infvsr__swin_stage * st = &v->stages[s];
        int shift = 0;
        for (int b = 0; b < st->depth; b++) shift = st->blocks[b].shift > shift ? st->blocks[b].shift : shift;
        st->identity_windows = st->res == st->ws && shift == 0;
        if (!st->identity_windows) INFVSR_TRY(window_tables(v, st, 0, 0, err));
        if (shift) {
            INFVSR_TRY(window_tables(v, st, 1, shift, err));
            INFVSR_TRY(shift_masks(v, st, shift, err));
        }
        INFVSR_TRY(rel_index(v, st, err));
        if (st->has_downsample) INFVSR_TRY(merge_index(v, st, err));
    }
    const int64_t ones_shape[2] = { 1, v->n_tokens - 1 }, std_shape[1] = { 3 };
    INFVSR_TRY(alloc_const(v, &v->ones, "visual.ones", INFVSR_TYPE_F32, 2, ones_shape, err));
    INFVSR_TRY(alloc_const(v, &v->imagenet_std, "visual.imagenet_std", INFVSR_TYPE_F32, 1, std_shape, err));
    float * ones = v->ones.data;
    for (int64_t i = 0; i < ones_shape[1]; i++) ones[i] = 1.0f;
    memcpy(v->imagenet_std.data, infvsr__imagenet_std, sizeof infvsr__imagenet_std);
    return INFVSR_OK;
}

void infvsr__swin_tables_release(struct infvsr_visual * v) {
    for (int s = 0; s < INFVSR__SWIN_STAGES; s++) {
        struct infvsr__swin_tables * t = &v->stages[s].tab;
        struct infvsr_tensor * all[] = { &t->to_win[0], &t->to_win[1], &t->from_win[0], &t->from_win[1],
                                         &t->rel_idx, &t->merge_idx, &t->masks };
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) infvsr_tensor_release(all[i]);
    }
    infvsr_tensor_release(&v->ones);
    infvsr_tensor_release(&v->imagenet_std);
}
