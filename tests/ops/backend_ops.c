/* The op-case table's plumbing (backend_ops.h): building the case list, and the tensors
 * of one run: guarded storage on the backend, initial contents kept on the host, and
 * reading everything back to check guards, inputs and outputs. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_ops.h"

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
    size_t total = b->nbytes + 2 * BO_GUARD;
    unsigned char * host = malloc(total);
    INFVSR_ASSERT(host);
    for (size_t i = 0; i < BO_GUARD; i++) host[i] = host[BO_GUARD + b->nbytes + i] = guard_byte(i);
    memcpy(host + BO_GUARD, bytes, b->nbytes);
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
    b->t.data = (char *)b->base.data + BO_GUARD; /* a view: pointer arithmetic only */
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

void bo_ctx_free(struct bo_ctx * c) {
    for (int i = 0; i < c->n; i++) {
        infvsr_backend_tensor_free(c->be, &c->ts[i].base);
        free(c->ts[i].init);
    }
    c->n = 0;
}

/* Downloads every tensor (guards included) into out[i]; false (with why) on failure. */
bool bo_download_all(struct bo_ctx * c, unsigned char ** out, char * why, size_t why_len) {
    struct infvsr_err err;
    infvsr_err_clear(&err);
    bool ok = true;
    for (int i = 0; i < c->n; i++) {
        size_t total = c->ts[i].nbytes + 2 * BO_GUARD;
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

void bo_free_all(unsigned char ** bufs, int n) {
    for (int i = 0; i < n; i++) free(bufs[i]);
}

/* Guards intact everywhere, inputs (and, when all_unchanged, every tensor) as uploaded. */
bool bo_check_untouched(const struct bo_ctx * c, unsigned char ** got, bool all_unchanged, const char * side,
                        char * why, size_t why_len) {
    for (int i = 0; i < c->n; i++) {
        const struct bo_tensor * b = &c->ts[i];
        for (size_t g = 0; g < BO_GUARD; g++) {
            if (got[i][g] != guard_byte(g) || got[i][BO_GUARD + b->nbytes + g] != guard_byte(g)) {
                snprintf(why, why_len, "%swrite %s '%s' (guard byte %zu%s)", side,
                         got[i][g] != guard_byte(g) ? "before" : "after", b->t.name, g, got[i][g] != guard_byte(g) ? " from its start" : " past its end");
                return false;
            }
        }
        if ((all_unchanged || b->role == BO_IN) && memcmp(got[i] + BO_GUARD, b->init, b->nbytes) != 0) {
            size_t at = 0;
            while (got[i][BO_GUARD + at] == b->init[at]) at++;
            snprintf(why, why_len, "%s%s '%s' was modified (byte %zu of %zu)", side, b->role == BO_IN ? "input" : "tensor",
                     b->t.name, at, b->nbytes);
            return false;
        }
    }
    return true;
}
