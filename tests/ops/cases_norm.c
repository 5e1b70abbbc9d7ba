/* Op cases: layer_norm, rms_norm, channel_rms_norm and modulate, out of place and in
 * place (the tested backend writes x itself, the reference a separate y), with optional
 * and F32/BF16/F16 weights; and their refused calls. */
#include "backend_ops.h"

static const enum infvsr_dtype wtypes[] = { INFVSR_TYPE_F32, INFVSR_TYPE_BF16, INFVSR_TYPE_F16 };

enum norm_op { LAYER_NORM, RMS_NORM, CHANNEL_RMS_NORM, MODULATE };
static const char * norm_names[] = { "layer_norm", "rms_norm", "channel_rms_norm", "modulate" };

struct norm_p {
    enum norm_op      op;
    int               nd, ynd, wnd;
    int64_t           xs[5], ys[5], ws[5];  /* ws: w / gamma / scale and shift             */
    enum infvsr_dtype wdt, bdt;             /* w / gamma / scale; b / shift                */
    bool              has_w, has_b, inplace;
    float             eps;
};

static enum infvsr_status run_norm(struct bo_ctx * c, const struct bo_case * k) {
    const struct norm_p * p = BO_P(k, struct norm_p);
    struct infvsr_tensor * x = bo_in(c, "x", BO_ACT, p->nd, p->xs, -2, 3);
    struct infvsr_tensor * w = NULL, * b = NULL;
    const double wlo = p->op == MODULATE ? -0.5 : 0.5, whi = p->op == MODULATE ? 0.5 : 1.5;
    if (p->has_w) w = bo_in(c, p->op == MODULATE ? "scale" : p->op == CHANNEL_RMS_NORM ? "gamma" : "w", p->wdt, p->wnd, p->ws, wlo, whi);
    if (p->has_b) b = bo_in(c, p->op == MODULATE ? "shift" : "b", p->bdt, p->wnd, p->ws, -0.5, 0.5);
    /* in place on the tested side; the reference writes a separate y */
    struct infvsr_tensor * y = p->inplace && !c->is_ref ? bo_make_out(c, x) : bo_out(c, "y", BO_ACT, p->ynd, p->ys);
    BO_SETUP_DONE(c);
    switch (p->op) {
    case LAYER_NORM:       return infvsr_op_layer_norm(c->be, x, w, b, p->eps, y, &c->err);
    case RMS_NORM:         return infvsr_op_rms_norm(c->be, x, w, p->eps, y, &c->err);
    case CHANNEL_RMS_NORM: return infvsr_op_channel_rms_norm(c->be, x, w, y, &c->err);
    case MODULATE:         return infvsr_op_modulate(c->be, x, w, b, y, &c->err);
    }
    return INFVSR_ERR_INVALID_ARG;
}

static struct bo_case * add_norm(struct bo_list * l, const struct norm_p * p, enum bo_kind kind) {
    struct bo_case * k = bo_add(l, norm_names[p->op], kind, run_norm, p, sizeof *p);
    char sx[96], sy[96], sw[96];
    bo_desc(k, "x%s y%s w%s:%s b:%s%s", bo_shape(sx, p->nd, p->xs), p->inplace ? "=x" : bo_shape(sy, p->ynd, p->ys),
            p->has_w ? bo_shape(sw, p->wnd, p->ws) : "", p->has_w ? bo_dt_name(p->wdt) : "none",
            p->has_b ? bo_dt_name(p->bdt) : "none", p->inplace ? " in place" : "");
    return k;
}

/* x [R, C] row-wise with a weight [C]. */
static struct norm_p rows(enum norm_op op, int64_t R, int64_t C, enum infvsr_dtype wdt, enum infvsr_dtype bdt,
                          bool has_w, bool has_b) {
    struct norm_p p = { .op = op, .nd = 2, .ynd = 2, .wnd = 1, .xs = { R, C }, .ys = { R, C }, .ws = { C },
                        .wdt = wdt, .bdt = bdt, .has_w = has_w, .has_b = has_b, .eps = 1e-6f };
    return p;
}

static void add_both(struct bo_list * l, struct norm_p p) {
    add_norm(l, &p, BO_COMPARE);
    p.inplace = true;
    add_norm(l, &p, BO_COMPARE);
}

void bo_cases_norm(struct bo_list * l) {
    static const int64_t row_shapes[][2] = { { 1, 5 }, { 7, 64 }, { 33, 129 }, { 300, 1536 } };
    for (int s = 0; s < 4; s++) {
        const int64_t R = row_shapes[s][0], C = row_shapes[s][1];
        for (int v = 0; v < 4; v++) /* weight and bias: none, w, b, both */
            add_both(l, rows(LAYER_NORM, R, C, wtypes[(s + v) % 3], wtypes[(s + v) % 3], v & 1, v & 2));
        for (int v = 0; v < 2; v++) add_both(l, rows(RMS_NORM, R, C, wtypes[s % 3], INFVSR_TYPE_F32, v, false));
        add_both(l, rows(MODULATE, R, C, wtypes[s % 3], wtypes[(s + 1) % 3], true, true));
    }
    {
        struct norm_p p = rows(LAYER_NORM, 35, 200, INFVSR_TYPE_BF16, INFVSR_TYPE_BF16, true, true);
        p.nd = p.ynd = 3, p.xs[0] = p.ys[0] = 5, p.xs[1] = p.ys[1] = 7, p.xs[2] = p.ys[2] = 200, p.ws[0] = 200;
        add_both(l, p);
        p.has_w = p.has_b = false;
        add_norm(l, &p, BO_COMPARE);
        add_both(l, rows(RMS_NORM, 37, 1536, INFVSR_TYPE_BF16, INFVSR_TYPE_F32, true, false));
        add_both(l, rows(MODULATE, 50, 64, BO_ACT, BO_ACT, true, true)); /* DiT: scale/shift are activations */
    }
    /* channel_rms_norm: x [C, T, H, W], gamma [C, 1, 1, 1] (as the VAE stores it) or [C] */
    static const int64_t ch_shapes[][4] = { { 7, 2, 3, 5 }, { 96, 1, 4, 300 }, { 3, 1, 1, 1 }, { 16, 3, 5, 7 } };
    for (int s = 0; s < 4; s++) {
        const int64_t * sh = ch_shapes[s];
        struct norm_p p = { .op = CHANNEL_RMS_NORM, .nd = 4, .ynd = 4, .xs = { sh[0], sh[1], sh[2], sh[3] },
                            .ys = { sh[0], sh[1], sh[2], sh[3] }, .wdt = wtypes[s % 3], .has_w = true };
        if (s == 3) p.wnd = 1, p.ws[0] = sh[0];
        else p.wnd = 4, p.ws[0] = sh[0], p.ws[1] = p.ws[2] = p.ws[3] = 1;
        add_both(l, p);
    }
    /* refused: weight of the wrong size, y of another shape, integer weight */
    {
        struct norm_p p = rows(LAYER_NORM, 4, 8, INFVSR_TYPE_F32, INFVSR_TYPE_F32, true, false);
        p.ws[0] = 7;
        add_norm(l, &p, BO_INVALID)->needle = "expected 8";
        p = rows(LAYER_NORM, 4, 8, INFVSR_TYPE_F32, INFVSR_TYPE_F32, false, false);
        p.ys[1] = 6;
        add_norm(l, &p, BO_INVALID);
        p = rows(RMS_NORM, 4, 8, INFVSR_TYPE_F32, INFVSR_TYPE_F32, false, false);
        p.ys[1] = 6;
        add_norm(l, &p, BO_INVALID);
        p = rows(RMS_NORM, 4, 8, INFVSR_TYPE_I32, INFVSR_TYPE_F32, true, false);
        add_norm(l, &p, BO_INVALID)->needle = "i32";
        p = rows(MODULATE, 4, 8, INFVSR_TYPE_F32, INFVSR_TYPE_F32, true, true);
        p.ws[0] = 9;
        add_norm(l, &p, BO_INVALID)->needle = "expected 8";
        p = rows(MODULATE, 4, 8, INFVSR_TYPE_F32, INFVSR_TYPE_F32, true, false); /* shift is required */
        add_norm(l, &p, BO_INVALID)->needle = "NULL";
        struct norm_p q = { .op = CHANNEL_RMS_NORM, .nd = 4, .ynd = 4, .wnd = 1, .xs = { 6, 1, 2, 3 },
                            .ys = { 6, 1, 2, 3 }, .ws = { 5 }, .wdt = INFVSR_TYPE_F32, .has_w = true };
        add_norm(l, &q, BO_INVALID)->needle = "expected 6";
        q.ws[0] = 6, q.ys[1] = 2;
        add_norm(l, &q, BO_INVALID);
    }
}
