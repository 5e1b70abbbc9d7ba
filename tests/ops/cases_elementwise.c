/* Op cases: unary (GELU tanh/erf, SiLU), add, add_gated, affine_clamp and softmax, out
 * of place and in place (the tested backend writes its input, the reference a separate
 * y), and their refused calls. */
#include <math.h>

#include "backend_ops.h"

static const enum infvsr_dtype wtypes[] = { INFVSR_TYPE_F32, INFVSR_TYPE_BF16, INFVSR_TYPE_F16 };
static const char * unary_names[] = { "gelu_tanh", "gelu_erf", "silu" };

enum ew_op { UNARY, ADD, ADD_GATED, AFFINE_CLAMP, SOFTMAX };
static const char * ew_names[] = { "unary", "add", "add_gated", "affine_clamp", "softmax" };

/* Where y is: a separate tensor, the first input (x or a), the second (b or d). */
enum ew_out { OUT_SEPARATE, OUT_FIRST, OUT_SECOND };

struct ew_p {
    enum ew_op        op;
    int               unary;                /* enum infvsr_unary_op                      */
    int               nd, ynd, bnd;
    int64_t           xs[3], ys[3], bs[3];  /* bs: b (add), d (add_gated)                */
    enum infvsr_dtype xdt, gdt;             /* x dtype (BO_ACT; i32 when refused); gate  */
    bool              has_gate;
    int64_t           gn;                   /* gate elements (0: x's last dim)           */
    enum ew_out       out;
    bool              out_on_ref;           /* the reference aliases too (refused cases) */
    float             lo, hi;               /* input range                               */
    float             alpha, beta, clamp_lo, clamp_hi;
};

static enum infvsr_status run_ew(struct bo_ctx * c, const struct bo_case * k) {
    const struct ew_p * p = BO_P(k, struct ew_p);
    struct infvsr_tensor * x = bo_in(c, p->op == ADD ? "a" : "x", p->xdt, p->nd, p->xs, p->lo, p->hi);
    struct infvsr_tensor * b = NULL, * g = NULL;
    if (p->op == ADD || p->op == ADD_GATED) b = bo_in(c, p->op == ADD ? "b" : "d", BO_ACT, p->bnd, p->bs, p->lo, p->hi);
    if (p->has_gate) g = bo_in(c, "gate", p->gdt, 1, S1(p->gn ? p->gn : p->xs[p->nd - 1]), -1, 1);
    struct infvsr_tensor * y;
    if (p->out != OUT_SEPARATE && (!c->is_ref || p->out_on_ref)) y = bo_make_out(c, p->out == OUT_FIRST ? x : b);
    else y = bo_out(c, "y", p->xdt, p->ynd, p->ys);
    BO_SETUP_DONE(c);
    switch (p->op) {
    case UNARY:        return infvsr_op_unary(c->be, (enum infvsr_unary_op)p->unary, x, y, &c->err);
    case ADD:          return infvsr_op_add(c->be, x, b, y, &c->err);
    case ADD_GATED:    return infvsr_op_add_gated(c->be, x, g, b, y, &c->err);
    case AFFINE_CLAMP: return infvsr_op_affine_clamp(c->be, x, p->alpha, p->beta, p->clamp_lo, p->clamp_hi, y, &c->err);
    case SOFTMAX:      return infvsr_op_softmax(c->be, x, y, &c->err);
    }
    return INFVSR_ERR_INVALID_ARG;
}

static struct bo_case * add_ew(struct bo_list * l, const struct ew_p * p, enum bo_kind kind) {
    struct bo_case * k = bo_add(l, ew_names[p->op], kind, run_ew, p, sizeof *p);
    char sx[96], sy[96], sb[96], extra[96] = "";
    const char * outs[] = { "", p->op == ADD ? "=a" : "=x", p->op == ADD ? "=b" : "=d" };
    if (p->op == UNARY) snprintf(extra, sizeof extra, " %s", (unsigned)p->unary < 3 ? unary_names[p->unary] : "(bad op)");
    if (p->op == ADD || p->op == ADD_GATED) snprintf(extra, sizeof extra, " %s%s", p->op == ADD ? "b" : "d", bo_shape(sb, p->bnd, p->bs));
    if (p->op == ADD_GATED) {
        size_t n = strlen(extra);
        snprintf(extra + n, sizeof extra - n, " gate:%s", p->has_gate ? bo_dt_name(p->gdt) : "none");
    }
    if (p->op == AFFINE_CLAMP) {
        snprintf(extra, sizeof extra, " %gx%+g in [%g, %g]", (double)p->alpha, (double)p->beta, (double)p->clamp_lo,
                 (double)p->clamp_hi);
    }
    bo_desc(k, "x%s:%s%s y%s%s range [%g, %g]", bo_shape(sx, p->nd, p->xs), bo_dt_name(p->xdt), extra,
            p->out == OUT_SEPARATE ? bo_shape(sy, p->ynd, p->ys) : outs[p->out], p->out == OUT_SEPARATE ? "" : " in place",
            (double)p->lo, (double)p->hi);
    return k;
}

static struct ew_p ew(enum ew_op op, int nd, const int64_t * shape, float lo, float hi) {
    struct ew_p p = { .op = op, .nd = nd, .ynd = nd, .bnd = nd, .xdt = BO_ACT, .lo = lo, .hi = hi, .alpha = 1,
                      .clamp_lo = -INFINITY, .clamp_hi = INFINITY };
    for (int i = 0; i < nd; i++) p.xs[i] = p.ys[i] = p.bs[i] = shape[i];
    return p;
}

/* Out of place, then in place on each input that may be overwritten. */
static void add_places(struct bo_list * l, struct ew_p p, int n_inplace, double tol_ref, double tol_elem) {
    for (int o = 0; o <= n_inplace; o++) {
        p.out = (enum ew_out)o;
        struct bo_case * k = add_ew(l, &p, BO_COMPARE);
        k->tol_ref = tol_ref;
        k->tol_elem_ref = tol_elem;
    }
}

void bo_cases_elementwise(struct bo_list * l) {
    /* unary over [-12, 12] (saturation of tanh/erf/sigmoid included): 1e-6 relative,
     * elementwise too against the float64 reference */
    static const int64_t ns[] = { 1, 7, 1000, 70001 };
    for (int op = 0; op < INFVSR_UNARY_COUNT; op++) {
        for (int s = 0; s < 4; s++) {
            struct ew_p p = ew(UNARY, 1, S1(ns[s]), -12, 12);
            p.unary = op;
            add_places(l, p, 1, 1e-6, 1e-6);
        }
        struct ew_p p = ew(UNARY, 2, S2(1000, 33), -4, 4);
        p.unary = op;
        add_places(l, p, 0, 1e-6, 1e-6);
    }
    static const int64_t an[] = { 1, 9, 50001 };
    for (int s = 0; s < 3; s++) {
        add_places(l, ew(ADD, 1, S1(an[s]), -3, 3), 2, BO_TOL_REF, 0);
        struct ew_p p = ew(AFFINE_CLAMP, 1, S1(an[s]), -3, 3);
        p.alpha = 0.5f, p.beta = 0.25f, p.clamp_lo = -1, p.clamp_hi = 1;
        add_places(l, p, 1, BO_TOL_REF, 0);
        p.alpha = 2.0f, p.beta = -1.0f, p.clamp_lo = -INFINITY, p.clamp_hi = INFINITY;
        add_places(l, p, 1, BO_TOL_REF, 0);
    }
    {
        add_places(l, ew(ADD, 2, S2(1000, 33), -1, 1), 0, BO_TOL_REF, 0);
        struct ew_p p = ew(AFFINE_CLAMP, 2, S2(1000, 33), -2, 2);
        p.alpha = 1.7f, p.beta = -0.3f, p.clamp_lo = -1, p.clamp_hi = 1;
        add_places(l, p, 0, BO_TOL_REF, 0);
    }
    static const int64_t row_shapes[][2] = { { 1, 5 }, { 7, 64 }, { 33, 129 }, { 300, 1536 }, { 1000, 33 } };
    for (int s = 0; s < 5; s++) {
        for (int gated = 0; gated < 2; gated++) {
            struct ew_p p = ew(ADD_GATED, 2, row_shapes[s], -2, 2);
            p.has_gate = gated;
            p.gdt = s == 4 ? BO_ACT : wtypes[s % 3]; /* DiT gates are activations */
            add_places(l, p, 1, BO_TOL_REF, 0);
        }
    }
    static const int64_t sm[][2] = { { 3, 1 }, { 5, 7 }, { 33, 64 }, { 4, 1000 } };
    for (int s = 0; s < 4; s++) add_places(l, ew(SOFTMAX, 2, sm[s], -30, 30), 1, BO_TOL_REF, 0);
    add_places(l, ew(SOFTMAX, 2, S2(20, 300), -6, 6), 1, BO_TOL_REF, 0);

    /* refused: sizes differ, integer tensors, an unknown op, an empty clamp range, a gate
     * of the wrong size, add_gated writing over d */
    {
        struct ew_p p = ew(ADD, 2, S2(4, 8), -1, 1);
        p.ys[1] = 6;
        add_ew(l, &p, BO_INVALID);
        p = ew(ADD, 2, S2(4, 8), -1, 1);
        p.bs[1] = 6;
        p.out = OUT_FIRST, p.out_on_ref = true;
        add_ew(l, &p, BO_INVALID);
        p = ew(SOFTMAX, 2, S2(4, 8), -1, 1);
        p.xdt = INFVSR_TYPE_I32;
        p.out = OUT_FIRST, p.out_on_ref = true;
        add_ew(l, &p, BO_INVALID)->needle = "i32";
        p = ew(UNARY, 2, S2(4, 8), -1, 1);
        p.unary = 7;
        add_ew(l, &p, BO_INVALID)->needle = "unknown op";
        p = ew(UNARY, 2, S2(4, 8), -1, 1);
        p.ys[0] = 3;
        add_ew(l, &p, BO_INVALID);
        p = ew(AFFINE_CLAMP, 2, S2(4, 8), -1, 1);
        p.clamp_lo = 2, p.clamp_hi = 1;
        add_ew(l, &p, BO_INVALID);
        p = ew(ADD_GATED, 2, S2(4, 8), -1, 1);
        p.has_gate = true, p.gdt = INFVSR_TYPE_F32, p.gn = 7;
        add_ew(l, &p, BO_INVALID)->needle = "gate";
        p = ew(ADD_GATED, 2, S2(4, 8), -1, 1);
        p.out = OUT_SECOND, p.out_on_ref = true;
        add_ew(l, &p, BO_INVALID)->needle = "alias";
        p = ew(SOFTMAX, 2, S2(4, 8), -1, 1);
        p.ys[1] = 9;
        add_ew(l, &p, BO_INVALID);
    }
}
