/* One op-case table for every backend (backend_ops.h says what a case is):
 *
 *   test_backend_ops [-b cpu|devsim|cuda[:N]] [-o OP[,OP...]] [-p PATTERN]
 *                    [--precision f32|bf16] [-v] [-l]
 *
 *   -b  backend under test (default cpu). cpu is checked against the float64 reference
 *       backend; every other backend against the fast CPU backend.
 *   -o  only these ops ("linear,copy"); -p only cases whose description contains PATTERN
 *   --precision  only this activation dtype (default: every one the backend runs:
 *       cpu f32; devsim and cuda f32, then bf16)
 *   -v  one line per case; -l list the cases and exit
 *
 * Prints one summary line per op (cases, worst error against its tolerance) and every
 * failure; exit 0 when all passed, 1 on a failure, 77 when the backend is not available
 * here (no GPU; ctest's SKIP_RETURN_CODE). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend_ops.h"

#define GUARD 256 /* bytes before and after every tensor */

static uint8_t guard_byte(size_t i) { return (uint8_t)(0xA7u + 31u * (unsigned)i); }

/* ---- the case list ---- */

struct bo_case * bo_add(struct bo_list * l, const char * op, enum bo_kind kind, bo_run_fn run,
                        const void * params, size_t size) {
    INFVSR_ASSERT(size <= BO_PARAM_BYTES);
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->v   = realloc(l->v, (size_t)l->cap * sizeof *l->v);
        INFVSR_ASSERT(l->v);
    }
    struct bo_case * k = &l->v[l->n++];
    memset(k, 0, sizeof *k);
    k->op       = op;
    k->kind     = kind;
    k->run      = run;
    k->tol_ref  = BO_TOL_REF;
    k->tol_f32  = BO_TOL_F32;
    k->tol_bf16 = BO_TOL_BF16;
    k->want     = INFVSR_ERR_INVALID_ARG;
    if (params) memcpy(k->p, params, size);
    return k;
}

void bo_desc(struct bo_case * k, const char * fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k->desc, sizeof k->desc, fmt, ap);
    va_end(ap);
}

/* ---- tensors of a run ---- */

uint64_t bo_rand(struct bo_ctx * c) { return test_rng_next(&c->seed); }

enum infvsr_dtype bo_dtype(const struct bo_ctx * c, enum infvsr_dtype dt) { return dt == BO_ACT ? c->act : dt; }

const char * bo_dt_name(enum infvsr_dtype dt) { return dt == BO_ACT ? "act" : infvsr_dtype_name(dt); }

const char * bo_shape(char * buf, int ndim, const int64_t * shape) { return infvsr_shape_str(ndim, shape, buf, 96); }

static bool is_float(enum infvsr_dtype d) {
    return d == INFVSR_TYPE_F32 || d == INFVSR_TYPE_BF16 || d == INFVSR_TYPE_F16;
}

static void setup_fail(struct bo_ctx * c, const char * fmt, ...) {
    if (c->setup_failed) return;
    c->setup_failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->setup_msg, sizeof c->setup_msg, fmt, ap);
    va_end(ap);
}

/* Allocates the guarded storage and fills it: guards, then `bytes` (nbytes of t). */
static struct infvsr_tensor * place(struct bo_ctx * c, const char * name, enum infvsr_dtype dt, int ndim,
                                    const int64_t * shape, enum bo_role role, unsigned char * bytes) {
    if (c->setup_failed || c->n == BO_MAX_TENSORS) {
        setup_fail(c, "too many tensors");
        free(bytes);
        return NULL;
    }
    struct bo_tensor * b = &c->ts[c->n];
    memset(b, 0, sizeof *b);
    infvsr_tensor_setup(&b->t, name, dt, ndim, shape);
    b->nbytes = infvsr_tensor_nbytes(&b->t);
    size_t total = b->nbytes + 2 * GUARD;
    unsigned char * host = malloc(total);
    INFVSR_ASSERT(host);
    for (size_t i = 0; i < GUARD; i++) host[i] = host[GUARD + b->nbytes + i] = guard_byte(i);
    memcpy(host + GUARD, bytes, b->nbytes);
    struct infvsr_err err;
    infvsr_err_clear(&err);
    infvsr_tensor_setup(&b->base, name, INFVSR_TYPE_U8, 1, S1((int64_t)total));
    enum infvsr_status st = infvsr_backend_tensor_alloc(c->be, &b->base, &err);
    if (st == INFVSR_OK) st = infvsr_backend_tensor_set(c->be, &b->base, host, 0, total, &err);
    free(host);
    if (st != INFVSR_OK) {
        infvsr_backend_tensor_free(c->be, &b->base);
        setup_fail(c, "tensor '%s' on %s: %s", name, infvsr_backend_name(c->be), err.msg);
        free(bytes);
        return NULL;
    }
    b->t.data = (char *)b->base.data + GUARD; /* a view: pointer arithmetic only */
    b->t.mem  = b->base.mem;
    b->role   = role;
    b->init   = bytes;
    c->n++;
    return &b->t;
}

static size_t numel_of(int ndim, const int64_t * shape) {
    int64_t n;
    INFVSR_ASSERT(infvsr_shape_numel(ndim, shape, &n));
    return (size_t)n;
}

/* Host bytes of n values of dtype dt from f32 values (BO_ACT: rounded to c->round first). */
static unsigned char * from_f32(struct bo_ctx * c, enum infvsr_dtype dt, const float * v, size_t n) {
    enum infvsr_dtype sd = bo_dtype(c, dt);
    INFVSR_ASSERT(is_float(sd) || sd == INFVSR_TYPE_F64);
    float * tmp = malloc((n ? n : 1) * sizeof *tmp);
    memcpy(tmp, v, n * sizeof *tmp);
    if (dt == BO_ACT && c->round == INFVSR_TYPE_BF16)
        for (size_t i = 0; i < n; i++) tmp[i] = infvsr_bf16_to_f32(infvsr_f32_to_bf16(tmp[i]));
    unsigned char * out = malloc((n ? n : 1) * infvsr_dtype_size(sd));
    infvsr_convert_from_f32(out, sd, tmp, n);
    free(tmp);
    return out;
}

static unsigned char * random_bytes(struct bo_ctx * c, enum infvsr_dtype dt, size_t n, double lo, double hi) {
    enum infvsr_dtype sd = bo_dtype(c, dt);
    size_t es = infvsr_dtype_size(sd);
    unsigned char * out = malloc((n ? n : 1) * es);
    INFVSR_ASSERT(out);
    if (is_float(sd)) {
        float * v = malloc((n ? n : 1) * sizeof *v);
        for (size_t i = 0; i < n; i++) {
            double u = (double)(bo_rand(c) >> 11) * (1.0 / 9007199254740992.0);
            v[i] = (float)(lo + (hi - lo) * u);
        }
        free(out);
        out = from_f32(c, dt, v, n);
        free(v);
    } else if (sd == INFVSR_TYPE_F64) {
        for (size_t i = 0; i < n; i++) {
            double u = (double)(bo_rand(c) >> 11) * (1.0 / 9007199254740992.0), d = lo + (hi - lo) * u;
            memcpy(out + i * 8, &d, 8);
        }
    } else if (sd == INFVSR_TYPE_I32 || sd == INFVSR_TYPE_U8) {
        int64_t a = (int64_t)lo, span = (int64_t)hi - a + 1;
        for (size_t i = 0; i < n; i++) {
            int64_t v = a + (int64_t)(bo_rand(c) % (uint64_t)(span > 0 ? span : 1));
            if (sd == INFVSR_TYPE_U8) out[i] = (uint8_t)v;
            else { int32_t w = (int32_t)v; memcpy(out + 4 * i, &w, 4); }
        }
    } else {
        for (size_t i = 0; i < n * es; i++) out[i] = (uint8_t)bo_rand(c);
    }
    return out;
}

struct infvsr_tensor * bo_in(struct bo_ctx * c, const char * name, enum infvsr_dtype dt, int ndim,
                             const int64_t * shape, double lo, double hi) {
    unsigned char * b = random_bytes(c, dt, numel_of(ndim, shape), lo, hi);
    return place(c, name, bo_dtype(c, dt), ndim, shape, BO_IN, b);
}

struct infvsr_tensor * bo_in_f32(struct bo_ctx * c, const char * name, enum infvsr_dtype dt, int ndim,
                                 const int64_t * shape, const float * vals) {
    unsigned char * b = from_f32(c, dt, vals, numel_of(ndim, shape));
    return place(c, name, bo_dtype(c, dt), ndim, shape, BO_IN, b);
}

struct infvsr_tensor * bo_in_bytes(struct bo_ctx * c, const char * name, enum infvsr_dtype dt, int ndim,
                                   const int64_t * shape, const void * bytes) {
    size_t nb = numel_of(ndim, shape) * infvsr_dtype_size(dt);
    unsigned char * b = malloc(nb ? nb : 1);
    memcpy(b, bytes, nb);
    return place(c, name, dt, ndim, shape, BO_IN, b);
}

struct infvsr_tensor * bo_out(struct bo_ctx * c, const char * name, enum infvsr_dtype dt, int ndim,
                              const int64_t * shape) {
    enum infvsr_dtype sd = bo_dtype(c, dt);
    size_t n = numel_of(ndim, shape), es = infvsr_dtype_size(sd);
    unsigned char * b = malloc(n * es + 1);
    if (is_float(sd) || sd == INFVSR_TYPE_F64) {
        float * nan = malloc((n ? n : 1) * sizeof *nan);
        for (size_t i = 0; i < n; i++) nan[i] = NAN;
        infvsr_convert_from_f32(b, sd, nan, n);
        free(nan);
    } else {
        memset(b, 0xAB, n * es);
    }
    return place(c, name, sd, ndim, shape, BO_OUT, b);
}

struct infvsr_tensor * bo_inout(struct bo_ctx * c, const char * name, enum infvsr_dtype dt, int ndim,
                                const int64_t * shape, double lo, double hi) {
    unsigned char * b = random_bytes(c, dt, numel_of(ndim, shape), lo, hi);
    return place(c, name, bo_dtype(c, dt), ndim, shape, BO_INOUT, b);
}

struct infvsr_tensor * bo_make_out(struct bo_ctx * c, struct infvsr_tensor * t) {
    for (int i = 0; i < c->n; i++) {
        if (&c->ts[i].t == t) c->ts[i].role = BO_INOUT;
    }
    return t;
}

struct infvsr_tensor * bo_view(struct bo_ctx * c, const struct infvsr_tensor * t, const char * name,
                               enum infvsr_dtype dt, int ndim, const int64_t * shape, int64_t byte_offset) {
    if (!t || c->n_views == BO_MAX_TENSORS) {
        setup_fail(c, "view '%s': no tensor or too many views", name);
        return NULL;
    }
    struct infvsr_tensor * v = &c->views[c->n_views++];
    infvsr_tensor_setup(v, name, dt, ndim, shape);
    v->data = (char *)t->data + byte_offset; /* pointer arithmetic only */
    v->mem  = t->mem;
    return v;
}

static void ctx_free(struct bo_ctx * c) {
    for (int i = 0; i < c->n; i++) {
        infvsr_backend_tensor_free(c->be, &c->ts[i].base);
        free(c->ts[i].init);
    }
    c->n = 0;
}

/* Downloads every tensor (guards included) into out[i]; false (with why) on failure. */
static bool download_all(struct bo_ctx * c, unsigned char ** out, char * why, size_t why_len) {
    struct infvsr_err err;
    infvsr_err_clear(&err);
    bool ok = true;
    for (int i = 0; i < c->n; i++) {
        size_t total = c->ts[i].nbytes + 2 * GUARD;
        out[i] = malloc(total);
        if (ok && infvsr_backend_tensor_get(c->be, &c->ts[i].base, out[i], 0, total, &err) != INFVSR_OK) {
            snprintf(why, why_len, "tensor_get '%s': %s", c->ts[i].t.name, err.msg);
            ok = false;
        }
    }
    if (ok && infvsr_backend_synchronize(c->be, &err) != INFVSR_OK) {
        snprintf(why, why_len, "synchronize: %s", err.msg);
        ok = false;
    }
    return ok;
}

static void free_all(unsigned char ** bufs, int n) {
    for (int i = 0; i < n; i++) free(bufs[i]);
}

/* Guards intact everywhere, inputs (and, when all_unchanged, every tensor) as uploaded. */
static bool check_untouched(const struct bo_ctx * c, unsigned char ** got, bool all_unchanged, const char * side,
                            char * why, size_t why_len) {
    for (int i = 0; i < c->n; i++) {
        const struct bo_tensor * b = &c->ts[i];
        for (size_t g = 0; g < GUARD; g++) {
            if (got[i][g] != guard_byte(g) || got[i][GUARD + b->nbytes + g] != guard_byte(g)) {
                snprintf(why, why_len, "%swrite %s '%s' (guard byte %zu%s)", side,
                         got[i][g] != guard_byte(g) ? "before" : "after", b->t.name, g, got[i][g] != guard_byte(g) ? " from its start" : " past its end");
                return false;
            }
        }
        if ((all_unchanged || b->role == BO_IN) && memcmp(got[i] + GUARD, b->init, b->nbytes) != 0) {
            size_t at = 0;
            while (got[i][GUARD + at] == b->init[at]) at++;
            snprintf(why, why_len, "%s%s '%s' was modified (byte %zu of %zu)", side, b->role == BO_IN ? "input" : "tensor",
                     b->t.name, at, b->nbytes);
            return false;
        }
    }
    return true;
}

/* ---- comparison ---- */

static float * to_f32(const unsigned char * bytes, enum infvsr_dtype dt, size_t n) {
    float * v = malloc((n ? n : 1) * sizeof *v);
    infvsr_convert_to_f32(v, bytes, dt, n);
    return v;
}

/* Index of the first differing element, or -1. */
static int64_t first_diff(const unsigned char * a, const unsigned char * b, size_t n, size_t es) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(a + i * es, b + i * es, es) != 0) return (int64_t)i;
    return -1;
}

static void describe_diff(const struct infvsr_tensor * t, const unsigned char * got, const unsigned char * want,
                          int64_t at, char * why, size_t why_len) {
    size_t es = infvsr_dtype_size(t->dtype);
    float g, w;
    infvsr_convert_to_f32(&g, got + (size_t)at * es, t->dtype, 1);
    infvsr_convert_to_f32(&w, want + (size_t)at * es, t->dtype, 1);
    snprintf(why, why_len, "'%s' (%s) differs at element %lld: %.9g, expected %.9g", t->name,
             infvsr_dtype_name(t->dtype), (long long)at, (double)g, (double)w);
}

/* Compares output a (tested) with b (reference). tol 0: bit-identical (same dtype). */
static bool compare_output(const struct infvsr_tensor * ta, const unsigned char * a, const struct infvsr_tensor * tb,
                           const unsigned char * b, double tol, double tol_elem, double * err_out, char * why,
                           size_t why_len) {
    size_t n = (size_t)infvsr_tensor_numel(ta);
    if ((size_t)infvsr_tensor_numel(tb) != n) {
        snprintf(why, why_len, "outputs '%s' and '%s' differ in size", ta->name, tb->name);
        return false;
    }
    if (tol == 0) {
        *err_out = 0;
        if (ta->dtype != tb->dtype) {
            snprintf(why, why_len, "'%s' is %s on one side, %s on the other", ta->name, infvsr_dtype_name(ta->dtype),
                     infvsr_dtype_name(tb->dtype));
            return false;
        }
        int64_t at = first_diff(a, b, n, infvsr_dtype_size(ta->dtype));
        if (at >= 0) {
            describe_diff(ta, a, b, at, why, why_len);
            *err_out = INFINITY;
            return false;
        }
        return true;
    }
    float * fa = to_f32(a, ta->dtype, n), * fb = to_f32(b, tb->dtype, n);
    double e = rel_err_f32(fa, fb, n), worst = 0;
    int64_t worst_at = -1;
    if (tol_elem > 0) {
        for (size_t i = 0; i < n; i++) {
            double d = fabs((double)fa[i] - fb[i]), m = fabs((double)fb[i]);
            if (m > 1e-30 && d / m > worst) worst = d / m, worst_at = (int64_t)i; /* denormals: no rel precision */
        }
    }
    *err_out = e;
    bool ok = e <= tol && worst <= tol_elem;
    if (!(e <= tol)) {
        snprintf(why, why_len, "'%s': rel L2 error %.3e > %.0e", ta->name, e, tol);
    } else if (worst > tol_elem) {
        snprintf(why, why_len, "'%s': elementwise rel error %.3e > %.0e at %lld (%.9g vs %.9g)", ta->name, worst, tol_elem,
                 (long long)worst_at, (double)fa[worst_at], (double)fb[worst_at]);
    }
    free(fa);
    free(fb);
    return ok;
}

/* ---- the runner ---- */

enum mode { MODE_CPU, MODE_DEVICE };

struct runner {
    enum mode               mode;
    struct infvsr_backend * be;      /* tested                                            */
    struct infvsr_backend * ref;     /* reference: cpu-ref (MODE_CPU) or cpu               */
    struct infvsr_backend * alt;     /* BO_REPEAT: cpu on one thread, else the tested one  */
    struct infvsr_backend_caps caps;
    enum infvsr_dtype       act;
    bool                    exact;   /* devsim in f32: bit-identical to cpu                */
    bool                    first_pass, verbose;
};

struct outcome {
    bool   ok;
    double err, tol;    /* BO_COMPARE: worst error of the outputs and its bound */
    char   why[2048];
};

static void ctx_setup(struct bo_ctx * c, const struct runner * r, struct infvsr_backend * be, bool is_ref,
                      uint64_t seed) {
    memset(c, 0, sizeof *c);
    c->be      = be;
    c->is_ref  = is_ref;
    c->act     = is_ref ? INFVSR_TYPE_F32 : r->act;
    c->round   = r->act;
    c->seed    = seed;
    c->is_cuda = strncmp(infvsr_backend_name(be), "cuda", 4) == 0;
    infvsr_err_clear(&c->err);
}

/* Runs k on one side; false (with why) if setup or the op failed. */
static bool run_side(struct bo_ctx * c, const struct bo_case * k, enum infvsr_status * st, char * why, size_t len) {
    *st = k->run(c, k);
    if (c->setup_failed) {
        snprintf(why, len, "setup on %s: %s", infvsr_backend_name(c->be), c->setup_msg);
        return false;
    }
    return true;
}

static double case_tol(const struct runner * r, const struct bo_case * k) {
    if (r->mode == MODE_CPU) return k->tol_ref;
    if (r->act == INFVSR_TYPE_BF16) return k->tol_bf16;
    return r->exact ? 0 : k->tol_f32;
}

static void run_compare(const struct runner * r, const struct bo_case * k, uint64_t seed, struct outcome * o) {
    struct bo_ctx tc, rc;
    enum infvsr_status st_t, st_r;
    unsigned char * gt[BO_MAX_TENSORS] = { 0 }, * gr[BO_MAX_TENSORS] = { 0 };
    o->tol = case_tol(r, k);
    ctx_setup(&tc, r, r->be, false, seed);
    ctx_setup(&rc, r, r->ref, true, seed);
    if (!run_side(&tc, k, &st_t, o->why, sizeof o->why)) goto done;
    if (st_t != INFVSR_OK) {
        snprintf(o->why, sizeof o->why, "%s failed (%s): %s", infvsr_backend_name(r->be), infvsr_status_str(st_t), tc.err.msg);
        goto done;
    }
    if (!run_side(&rc, k, &st_r, o->why, sizeof o->why)) goto done;
    if (st_r != INFVSR_OK) {
        snprintf(o->why, sizeof o->why, "reference %s failed (%s): %s", infvsr_backend_name(r->ref), infvsr_status_str(st_r),
                 rc.err.msg);
        goto done;
    }
    if (!download_all(&tc, gt, o->why, sizeof o->why) || !download_all(&rc, gr, o->why, sizeof o->why)) goto done;
    if (!check_untouched(&tc, gt, false, "", o->why, sizeof o->why)) goto done;
    if (!check_untouched(&rc, gr, false, "reference: ", o->why, sizeof o->why)) goto done;
    int it = 0, ir = 0;
    o->ok = true;
    for (;;) {
        while (it < tc.n && tc.ts[it].role == BO_IN) it++;
        while (ir < rc.n && rc.ts[ir].role == BO_IN) ir++;
        if (it == tc.n || ir == rc.n) {
            if (it != tc.n || ir != rc.n) {
                snprintf(o->why, sizeof o->why, "the two sides have different outputs");
                o->ok = false;
            }
            break;
        }
        double e;
        if (!compare_output(&tc.ts[it].t, gt[it] + GUARD, &rc.ts[ir].t, gr[ir] + GUARD, o->tol,
                            r->mode == MODE_CPU ? k->tol_elem_ref : 0, &e, o->why, sizeof o->why)) {
            o->ok = false;
        }
        if (e > o->err) o->err = e;
        if (!o->ok) break;
        it++, ir++;
    }
    if (o->ok && (k->flags & BO_REPEAT)) {
        /* Same case again (cpu: on one thread): bit-identical outputs. */
        struct bo_ctx ac;
        unsigned char * ga[BO_MAX_TENSORS] = { 0 };
        enum infvsr_status st_a;
        ctx_setup(&ac, r, r->alt, false, seed);
        if (!run_side(&ac, k, &st_a, o->why, sizeof o->why) || st_a != INFVSR_OK ||
            !download_all(&ac, ga, o->why, sizeof o->why)) {
            if (st_a != INFVSR_OK) snprintf(o->why, sizeof o->why, "second run failed: %s", ac.err.msg);
            o->ok = false;
        } else {
            for (int i = 0; i < tc.n && o->ok; i++) {
                if (tc.ts[i].role == BO_IN) continue;
                double e;
                char why[1024];
                if (!compare_output(&ac.ts[i].t, ga[i] + GUARD, &tc.ts[i].t, gt[i] + GUARD, 0, 0, &e, why, sizeof why)) {
                    snprintf(o->why, sizeof o->why, "not deterministic (%s vs %s): %s", infvsr_backend_name(r->alt),
                             infvsr_backend_name(r->be), why);
                    o->ok = false;
                }
            }
        }
        free_all(ga, ac.n);
        ctx_free(&ac);
    }
done:
    free_all(gt, tc.n);
    free_all(gr, rc.n);
    ctx_free(&tc);
    ctx_free(&rc);
}

static void run_host_ref(const struct runner * r, const struct bo_case * k, uint64_t seed, struct outcome * o) {
    struct bo_ctx tc;
    enum infvsr_status st;
    unsigned char * got[BO_MAX_TENSORS] = { 0 };
    struct bo_host h;
    memset(&h, 0, sizeof h);
    ctx_setup(&tc, r, r->be, false, seed);
    if (!run_side(&tc, k, &st, o->why, sizeof o->why)) goto done;
    if (st != INFVSR_OK) {
        snprintf(o->why, sizeof o->why, "%s failed (%s): %s", infvsr_backend_name(r->be), infvsr_status_str(st), tc.err.msg);
        goto done;
    }
    if (!download_all(&tc, got, o->why, sizeof o->why)) goto done;
    if (!check_untouched(&tc, got, false, "", o->why, sizeof o->why)) goto done;
    h.n = tc.n;
    for (int i = 0; i < tc.n; i++) {
        h.t[i]    = &tc.ts[i].t;
        h.init[i] = tc.ts[i].init;
        if (tc.ts[i].role != BO_IN) {
            h.expect[i] = malloc(tc.ts[i].nbytes ? tc.ts[i].nbytes : 1);
            memcpy(h.expect[i], tc.ts[i].init, tc.ts[i].nbytes);
        }
    }
    k->host_ref(k, &h);
    o->ok = true;
    for (int i = 0; i < tc.n && o->ok; i++) {
        if (!h.expect[i]) continue;
        const struct infvsr_tensor * t = &tc.ts[i].t;
        int64_t at = first_diff(got[i] + GUARD, h.expect[i], (size_t)infvsr_tensor_numel(t), infvsr_dtype_size(t->dtype));
        if (at >= 0) {
            describe_diff(t, got[i] + GUARD, h.expect[i], at, o->why, sizeof o->why);
            o->ok = false;
        }
    }
done:
    for (int i = 0; i < BO_MAX_TENSORS; i++) free(h.expect[i]);
    free_all(got, tc.n);
    ctx_free(&tc);
}

static void run_invalid(const struct runner * r, const struct bo_case * k, uint64_t seed, struct outcome * o) {
    struct bo_ctx tc;
    enum infvsr_status st;
    unsigned char * got[BO_MAX_TENSORS] = { 0 };
    ctx_setup(&tc, r, r->be, false, seed);
    if (!run_side(&tc, k, &st, o->why, sizeof o->why)) goto done;
    if (st != k->want) {
        snprintf(o->why, sizeof o->why, "returned %s, expected %s (message: \"%s\")", infvsr_status_str(st),
                 infvsr_status_str(k->want), tc.err.msg);
        goto done;
    }
    if (!tc.err.msg[0] || (k->needle && !strstr(tc.err.msg, k->needle))) {
        snprintf(o->why, sizeof o->why, "message \"%s\" does not say \"%s\"", tc.err.msg, k->needle ? k->needle : "");
        goto done;
    }
    if (!download_all(&tc, got, o->why, sizeof o->why)) goto done;
    if (!check_untouched(&tc, got, true, "", o->why, sizeof o->why)) goto done;
    if (!infvsr_backend_healthy(r->be)) {
        snprintf(o->why, sizeof o->why, "backend unhealthy after a refused call: %s", infvsr_backend_last_error(r->be));
        goto done;
    }
    o->ok = true;
    if (r->verbose) snprintf(o->why, sizeof o->why, "\"%s\"", tc.err.msg);
done:
    free_all(got, tc.n);
    ctx_free(&tc);
}

static void run_self(const struct runner * r, const struct bo_case * k, uint64_t seed, struct outcome * o) {
    struct bo_ctx tc;
    enum infvsr_status st;
    ctx_setup(&tc, r, r->be, false, seed);
    if (run_side(&tc, k, &st, o->why, sizeof o->why)) {
        o->ok = st == INFVSR_OK;
        if (!o->ok) snprintf(o->why, sizeof o->why, "%s", tc.err.msg);
    }
    ctx_free(&tc);
}

static bool applies(const struct runner * r, const struct bo_case * k) {
    if ((k->flags & BO_ACT_FREE) && !r->first_pass) return false;
    if ((k->flags & BO_DEVICE_ONLY) && r->caps.host_visible) return false;
    if ((k->flags & BO_HOST_ONLY) && !r->caps.host_visible) return false;
    if ((k->flags & BO_BF16_ONLY) && r->act != INFVSR_TYPE_BF16) return false;
    if ((k->flags & BO_CUDA_ONLY) && strncmp(r->caps.name, "cuda", 4) != 0) return false;
    return true;
}

static bool op_selected(const char * ops, const char * op) {
    if (!ops) return true;
    size_t n = strlen(op);
    for (const char * s = ops; *s;) {
        const char * e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len == n && strncmp(s, op, n) == 0) return true;
        if (!e) break;
        s = e + 1;
    }
    return false;
}

/* Cases grouped by op (in the order ops first appear), each group in table order. */
static void group_by_op(struct bo_list * l) {
    struct bo_case * sorted = malloc((size_t)(l->n ? l->n : 1) * sizeof *sorted);
    bool * taken = calloc((size_t)(l->n ? l->n : 1), 1);
    int n = 0;
    for (int i = 0; i < l->n; i++) {
        if (taken[i]) continue;
        for (int j = i; j < l->n; j++) {
            if (!taken[j] && strcmp(l->v[j].op, l->v[i].op) == 0) sorted[n++] = l->v[j], taken[j] = true;
        }
    }
    memcpy(l->v, sorted, (size_t)n * sizeof *sorted);
    free(sorted);
    free(taken);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char * kind_name(enum bo_kind k) {
    static const char * n[] = { "compare", "host-ref", "invalid", "self" };
    return n[k];
}

/* One pass over the selected cases; returns the number of failures. */
static int run_pass(struct runner * r, const struct bo_list * l, const char * ops, const char * pattern) {
    int failures = 0, total = 0;
    for (int i = 0; i < l->n;) {
        const char * op = l->v[i].op;
        int j = i, n = 0, nfail = 0;
        double worst_ratio = 0, worst_err = 0, worst_tol = 0;
        double t0 = now_s();
        for (; j < l->n && strcmp(l->v[j].op, op) == 0; j++) {
            const struct bo_case * k = &l->v[j];
            if (!op_selected(ops, op) || (pattern && !strstr(k->desc, pattern)) || !applies(r, k)) continue;
            struct outcome o;
            memset(&o, 0, sizeof o);
            if (r->verbose) { /* the case is named before it runs: a crash shows which */
                printf("  %-16s %-8s %s ...", op, kind_name(k->kind), k->desc);
                fflush(stdout);
            }
            uint64_t seed = 0x5eed0000ull + 7919ull * (uint64_t)j;
            switch (k->kind) {
            case BO_COMPARE:  run_compare(r, k, seed, &o); break;
            case BO_HOST_REF: run_host_ref(r, k, seed, &o); break;
            case BO_INVALID:  run_invalid(r, k, seed, &o); break;
            case BO_SELF:     run_self(r, k, seed, &o); break;
            }
            n++;
            if (!o.ok) nfail++;
            if (k->kind == BO_COMPARE && o.ok) {
                double ratio = o.tol > 0 ? o.err / o.tol : 0;
                if (ratio >= worst_ratio) worst_ratio = ratio, worst_err = o.err, worst_tol = o.tol;
            }
            if (r->verbose) printf(" %s", o.ok ? "ok" : "FAIL");
            else if (!o.ok) printf("  FAIL %-16s %-8s %s", op, kind_name(k->kind), k->desc);
            if (!o.ok || r->verbose) {
                if (k->kind == BO_COMPARE && o.ok) printf("  err %.2e tol %.0e", o.err, o.tol);
                if (o.why[0]) printf("  %s", o.why);
                printf("\n");
            }
        }
        if (n > 0) {
            printf("%-16s %4d cases  %4d failed  worst err %.2e (tol %.0e)  %6.2f s  %s\n", op, n, nfail, worst_err,
                   worst_tol, now_s() - t0, nfail ? "FAIL" : "ok");
            fflush(stdout);
        }
        total += n;
        failures += nfail;
        i = j;
    }
    printf("pass %s: %d cases, %d failed\n", infvsr_dtype_name(r->act), total, failures);
    return failures;
}

static void usage(void) {
    fprintf(stderr, "usage: test_backend_ops [-b cpu|devsim|cuda[:N]] [-o OP[,OP]] [-p PATTERN] "
                    "[--precision f32|bf16] [-v] [-l]\n");
}

int main(int argc, char ** argv) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress survives a crash */
    const char * backend = "cpu", * ops = NULL, * pattern = NULL, * precision = NULL;
    bool verbose = false, list = false;
    for (int i = 1; i < argc; i++) {
        const char * a = argv[i];
        bool has_val = i + 1 < argc;
        if (strcmp(a, "-b") == 0 && has_val) backend = argv[++i];
        else if (strcmp(a, "-o") == 0 && has_val) ops = argv[++i];
        else if (strcmp(a, "-p") == 0 && has_val) pattern = argv[++i];
        else if (strcmp(a, "--precision") == 0 && has_val) precision = argv[++i];
        else if (strcmp(a, "-v") == 0) verbose = true;
        else if (strcmp(a, "-l") == 0) list = true;
        else { usage(); return 2; }
    }
    if (precision && strcmp(precision, "f32") != 0 && strcmp(precision, "bf16") != 0) { usage(); return 2; }

    struct bo_list l = { 0 };
    bo_cases_gemm(&l);
    bo_cases_norm(&l);
    bo_cases_elementwise(&l);
    bo_cases_attention(&l);
    bo_cases_conv(&l);
    bo_cases_copy(&l);
    bo_cases_gather(&l);
    bo_cases_memory(&l);
    group_by_op(&l);
    if (list) {
        for (int i = 0; i < l.n; i++)
            if (op_selected(ops, l.v[i].op) && (!pattern || strstr(l.v[i].desc, pattern)))
                printf("%-16s %-8s %s\n", l.v[i].op, kind_name(l.v[i].kind), l.v[i].desc);
        free(l.v);
        return 0;
    }

    struct runner r;
    memset(&r, 0, sizeof r);
    r.verbose = verbose;
    r.mode = strcmp(backend, "cpu") == 0 ? MODE_CPU : MODE_DEVICE;
    struct infvsr_err err;
    infvsr_err_clear(&err);
    struct infvsr_backend_opts ro = infvsr_backend_default_opts();
    ro.n_threads     = 2; /* the pool runs even on one core */
    ro.cpu_reference = r.mode == MODE_CPU;
    if (infvsr_backend_init_by_name("cpu", &ro, &r.ref, &err) != INFVSR_OK) {
        printf("FAIL: reference backend: %s\n", err.msg);
        return 1;
    }
    struct infvsr_backend * one_thread = NULL;
    if (r.mode == MODE_CPU) {
        struct infvsr_backend_opts o1 = infvsr_backend_default_opts();
        o1.n_threads = 1;
        INFVSR_ASSERT(infvsr_backend_init_by_name("cpu", &o1, &one_thread, &err) == INFVSR_OK);
    }

    static const enum infvsr_precision passes[] = { INFVSR_PRECISION_F32, INFVSR_PRECISION_BF16 };
    int failures = 0, n_pass = 0;
    double t_all = now_s();
    for (size_t p = 0; p < 2; p++) {
        const char * pname = infvsr_precision_name(passes[p]);
        if (precision && strcmp(precision, pname) != 0) continue;
        if (r.mode == MODE_CPU && passes[p] == INFVSR_PRECISION_BF16) continue; /* the CPU computes in f32 only */
        struct infvsr_backend_opts o = infvsr_backend_default_opts();
        o.n_threads = r.mode == MODE_CPU ? 2 : 1; /* devsim on one thread: bit-identical to cpu on two */
        o.precision = passes[p];
        infvsr_err_clear(&err);
        enum infvsr_status st = infvsr_backend_init_by_name(backend, &o, &r.be, &err);
        if (st == INFVSR_ERR_UNSUPPORTED && n_pass == 0) {
            printf("SKIP: %s\n", err.msg);
            infvsr_backend_free(r.ref);
            free(l.v);
            return 77;
        }
        if (st != INFVSR_OK) {
            printf("FAIL: backend %s (%s): %s\n", backend, pname, err.msg);
            failures++;
            continue;
        }
        infvsr_backend_get_caps(r.be, &r.caps);
        r.act = passes[p] == INFVSR_PRECISION_BF16 ? INFVSR_TYPE_BF16 : INFVSR_TYPE_F32;
        if ((r.act == INFVSR_TYPE_BF16 && !r.caps.act_bf16) || (r.act == INFVSR_TYPE_F32 && !r.caps.act_f32)) {
            infvsr_backend_free(r.be);
            continue;
        }
        r.exact      = r.mode == MODE_DEVICE && strncmp(r.caps.name, "devsim", 6) == 0 && r.act == INFVSR_TYPE_F32;
        r.alt        = one_thread ? one_thread : r.be;
        r.first_pass = n_pass == 0;
        printf("backend %s (%s), %s activations, against %s%s\n", r.caps.name, r.caps.device, infvsr_dtype_name(r.act),
               infvsr_backend_name(r.ref), r.exact ? " (bit-identical)" : "");
        double t0 = now_s();
        failures += run_pass(&r, &l, ops, pattern);
        printf("pass %s: %.2f s\n", infvsr_dtype_name(r.act), now_s() - t0);
        if (!infvsr_backend_healthy(r.be)) {
            printf("FAIL: backend unhealthy at the end: %s\n", infvsr_backend_last_error(r.be));
            failures++;
        }
        infvsr_backend_free(r.be);
        r.be = NULL;
        n_pass++;
    }
    printf("%s: %d failed, %.2f s\n", backend, failures, now_s() - t_all);
    infvsr_backend_free(one_thread);
    infvsr_backend_free(r.ref);
    free(l.v);
    return failures ? 1 : 0;
}
