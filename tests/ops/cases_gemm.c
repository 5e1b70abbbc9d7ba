/* Op cases: linear and matmul (shapes with odd sizes and more than one GEMM panel,
 * F32/BF16/F16 weights and biases, every fused activation), and their refused calls. */
#include "backend_ops.h"

static const enum infvsr_dtype wtypes[] = { INFVSR_TYPE_F32, INFVSR_TYPE_BF16, INFVSR_TYPE_F16 };
static const char * act_names[] = { "gelu_tanh", "gelu_erf", "silu", "none" };

/* ---- linear: y[rows, N] = act(x[rows, K] . w[N, K]^T + b[N]) ---- */

struct linear_p {
    int               xnd, ynd;
    int64_t           xs[3], ys[3];
    int64_t           wn, wk;          /* w [wn, wk]                               */
    enum infvsr_dtype wdt, bdt;
    int64_t           bn;              /* 0: no bias                               */
    int               act;             /* enum infvsr_unary_op; COUNT = none       */
    bool              y_null, y_is_x;
};

static enum infvsr_status run_linear(struct bo_ctx * c, const struct bo_case * k) {
    const struct linear_p * p = BO_P(k, struct linear_p);
    struct infvsr_tensor * x = bo_in(c, "x", BO_ACT, p->xnd, p->xs, -1, 1);
    struct infvsr_tensor * w = bo_in(c, "w", p->wdt, 2, S2(p->wn, p->wk), -0.3, 0.3);
    struct infvsr_tensor * b = p->bn ? bo_in(c, "b", p->bdt, 1, S1(p->bn), -0.5, 0.5) : NULL;
    struct infvsr_tensor * y = p->y_null ? NULL : p->y_is_x ? x : bo_out(c, "y", BO_ACT, p->ynd, p->ys);
    BO_SETUP_DONE(c);
    return infvsr_op_linear(c->be, x, w, b, (enum infvsr_unary_op)p->act, y, &c->err);
}

static struct bo_case * add_linear(struct bo_list * l, const struct linear_p * p, enum bo_kind kind) {
    struct bo_case * k = bo_add(l, "linear", kind, run_linear, p, sizeof *p);
    char sx[96], sy[96];
    bo_desc(k, "x%s w[%lld,%lld]:%s b:%s y%s %s", bo_shape(sx, p->xnd, p->xs), (long long)p->wn, (long long)p->wk,
            bo_dt_name(p->wdt), p->bn ? bo_dt_name(p->bdt) : "none", p->y_null ? "=NULL" : p->y_is_x ? "=x" : bo_shape(sy, p->ynd, p->ys),
            (unsigned)p->act <= INFVSR_UNARY_COUNT ? act_names[p->act] : "(bad)");
    k->tol_f32 = BO_TOL_GEMM;
    return k;
}

static struct linear_p linear_2d(int64_t M, int64_t K, int64_t N, enum infvsr_dtype wdt, enum infvsr_dtype bdt,
                                 bool bias, int act) {
    struct linear_p p = { .xnd = 2, .ynd = 2, .xs = { M, K }, .ys = { M, N }, .wn = N, .wk = K, .wdt = wdt,
                          .bdt = bdt, .bn = bias ? N : 0, .act = act };
    return p;
}

/* ---- matmul: c[B, M, N] = alpha * a[B, M, K] . op(b) ---- */

struct matmul_p {
    int               nd;
    int64_t           as[3], bs[3], cs[3];
    enum infvsr_dtype bdt;
    bool              trans_b, c_is_a;
    float             alpha;
};

static enum infvsr_status run_matmul(struct bo_ctx * c, const struct bo_case * k) {
    const struct matmul_p * p = BO_P(k, struct matmul_p);
    struct infvsr_tensor * a = bo_in(c, "a", BO_ACT, p->nd, p->as, -1, 1);
    struct infvsr_tensor * b = bo_in(c, "b", p->bdt, p->nd, p->bs, -1, 1);
    struct infvsr_tensor * o = p->c_is_a ? a : bo_out(c, "c", BO_ACT, p->nd, p->cs);
    BO_SETUP_DONE(c);
    return infvsr_op_matmul(c->be, a, b, p->trans_b, p->alpha, o, &c->err);
}

static struct bo_case * add_matmul(struct bo_list * l, const struct matmul_p * p, enum bo_kind kind) {
    struct bo_case * k = bo_add(l, "matmul", kind, run_matmul, p, sizeof *p);
    char sa[96], sb[96], sc[96];
    bo_desc(k, "a%s b%s:%s%s c%s alpha=%g", bo_shape(sa, p->nd, p->as), bo_shape(sb, p->nd, p->bs), bo_dt_name(p->bdt),
            p->trans_b ? "^T" : "", p->c_is_a ? "=a" : bo_shape(sc, p->nd, p->cs), (double)p->alpha);
    k->tol_f32 = BO_TOL_GEMM;
    return k;
}

static struct matmul_p matmul_3d(int64_t B, int64_t M, int64_t K, int64_t N, bool trans_b, float alpha) {
    struct matmul_p p = { .nd = 3, .as = { B, M, K }, .cs = { B, M, N }, .bdt = BO_ACT, .trans_b = trans_b,
                          .alpha = alpha };
    p.bs[0] = B, p.bs[1] = trans_b ? N : K, p.bs[2] = trans_b ? K : N;
    return p;
}

void bo_cases_gemm(struct bo_list * l) {
    /* Every (M, K, N) of odd and panel-crossing sizes with each weight dtype; the bias
     * dtype and the activation rotate. */
    const int64_t Ms[] = { 1, 7, 33, 130 }, Ks[] = { 5, 64, 129 }, Ns[] = { 1, 17, 300 };
    int combo = 0;
    for (int mi = 0; mi < 4; mi++)
        for (int ki = 0; ki < 3; ki++)
            for (int ni = 0; ni < 3; ni++)
                for (int di = 0; di < 3; di++, combo++) {
                    struct linear_p p = linear_2d(Ms[mi], Ks[ki], Ns[ni], wtypes[di], wtypes[(di + 1) % 3], combo % 2 == 0,
                                                  combo % (INFVSR_UNARY_COUNT + 1));
                    add_linear(l, &p, BO_COMPARE);
                }
    /* Shapes of the models: DiT FFN-like, Swin MLP, a 3-panel N, 3-D rows. */
    const struct { int64_t M, K, N; int wdt, act; bool bias; } model[] = {
        { 45, 64, 72, 0, INFVSR_UNARY_GELU_TANH, true }, { 45, 64, 72, 2, INFVSR_UNARY_COUNT, true },
        { 77, 96, 136, 1, INFVSR_UNARY_COUNT, true },    { 77, 96, 136, 1, INFVSR_UNARY_COUNT, false },
        { 64, 128, 256, 1, INFVSR_UNARY_GELU_TANH, true }, { 33, 72, 40, 1, INFVSR_UNARY_GELU_ERF, true },
        { 50, 64, 24, 1, INFVSR_UNARY_SILU, false },     { 300, 256, 520, 1, INFVSR_UNARY_COUNT, true },
    };
    for (size_t i = 0; i < sizeof model / sizeof model[0]; i++) {
        struct linear_p p = linear_2d(model[i].M, model[i].K, model[i].N, wtypes[model[i].wdt], wtypes[model[i].wdt],
                                      model[i].bias, model[i].act);
        add_linear(l, &p, BO_COMPARE);
    }
    {
        /* rows over all leading dims, 3 panels of N; deterministic across threads */
        struct linear_p p = { .xnd = 3, .ynd = 3, .xs = { 3, 11, 40 }, .ys = { 3, 11, 520 }, .wn = 520, .wk = 40,
                              .wdt = INFVSR_TYPE_BF16, .act = INFVSR_UNARY_COUNT };
        add_linear(l, &p, BO_COMPARE)->flags |= BO_REPEAT;
    }
    /* refused: in-features differ, integer weight, wrong y, wrong bias, no y, y == x */
    {
        struct linear_p p = linear_2d(4, 8, 6, INFVSR_TYPE_F32, INFVSR_TYPE_F32, false, INFVSR_UNARY_COUNT);
        p.wk = 7;
        add_linear(l, &p, BO_INVALID);
        p = linear_2d(4, 8, 6, INFVSR_TYPE_I32, INFVSR_TYPE_F32, false, INFVSR_UNARY_COUNT);
        add_linear(l, &p, BO_INVALID)->needle = "i32";
        p = linear_2d(4, 8, 6, INFVSR_TYPE_F32, INFVSR_TYPE_F32, false, INFVSR_UNARY_COUNT);
        p.ys[1] = 5;
        add_linear(l, &p, BO_INVALID)->needle = "'y'";
        p = linear_2d(4, 8, 6, INFVSR_TYPE_F32, INFVSR_TYPE_F32, true, INFVSR_UNARY_COUNT);
        p.bn = 8;
        add_linear(l, &p, BO_INVALID)->needle = "expected 6";
        p = linear_2d(4, 8, 6, INFVSR_TYPE_F32, INFVSR_TYPE_F32, false, INFVSR_UNARY_COUNT);
        p.y_null = true;
        add_linear(l, &p, BO_INVALID)->needle = "NULL";
        p = linear_2d(4, 8, 8, INFVSR_TYPE_F32, INFVSR_TYPE_F32, false, INFVSR_UNARY_COUNT);
        p.y_is_x = true;
        add_linear(l, &p, BO_INVALID)->needle = "alias";
        p = linear_2d(4, 8, 6, INFVSR_TYPE_F32, INFVSR_TYPE_F32, false, 7);
        add_linear(l, &p, BO_INVALID)->needle = "activation";
    }

    const int64_t mm[][4] = { { 1, 1, 5, 1 }, { 3, 7, 33, 20 }, { 2, 144, 32, 144 }, { 4, 17, 129, 9 },
                              { 3, 33, 40, 50 }, { 2, 17, 64, 31 }, { 1, 128, 96, 80 } };
    const float alphas[] = { 0.37f, 0.37f, 0.37f, 0.37f, 0.7f, 1.0f, 0.125f };
    for (size_t i = 0; i < sizeof mm / sizeof mm[0]; i++) {
        for (int tb = 0; tb < 2; tb++) {
            struct matmul_p p = matmul_3d(mm[i][0], mm[i][1], mm[i][2], mm[i][3], tb, alphas[i]);
            add_matmul(l, &p, BO_COMPARE);
        }
    }
    {
        struct matmul_p p = { .nd = 2, .as = { 9, 24 }, .bs = { 13, 24 }, .cs = { 9, 13 }, .bdt = BO_ACT, .trans_b = true,
                              .alpha = 1.0f };
        add_matmul(l, &p, BO_COMPARE);
        /* refused: inner dims differ, b of another dtype, c == a */
        p.bs[1] = 23;
        add_matmul(l, &p, BO_INVALID);
        p.bs[1] = 24;
        p.bdt = INFVSR_TYPE_F16;
        add_matmul(l, &p, BO_INVALID);
        struct matmul_p q = matmul_3d(2, 8, 8, 8, false, 1.0f);
        q.c_is_a = true;
        add_matmul(l, &q, BO_INVALID);
    }
}
