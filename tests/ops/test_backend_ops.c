/* One op-case table for every backend (backend_ops.h says what a case is):
 *
 *   test_backend_ops [-b cpu|devsim|cuda[:N]] [-o OP[,OP...]] [-p PATTERN]
 *                    [--precision f32|bf16] [--isa amx|avx512bf16|avx2] [-v] [-l]
 *
 *   -b  backend under test (default cpu). cpu is checked against the float64 reference
 *       backend; every other backend against the fast CPU backend.
 *   -o  only these ops ("linear,copy"); -p only cases whose description contains PATTERN
 *   --precision  only this activation dtype (default: every one the backend runs:
 *       f32, then bf16)
 *   --isa  cpu only: force the instruction set of the bf16 kernels (cpu backend option
 *       cpu_isa); exit 77 (Skipped) when this CPU lacks it
 *   -v  one line per case; -l list the cases and exit
 *
 * Prints one summary line per op (cases, worst error against its tolerance) and every
 * failure; exit 0 when all passed, 1 on a failure, 77 when the backend is not available
 * here (no GPU; ctest's SKIP_RETURN_CODE). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend_ops.h"

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
    if (r->act == INFVSR_TYPE_BF16) return k->tol_bf16;
    if (r->mode == MODE_CPU) return k->tol_ref;
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
    if (!bo_download_all(&tc, gt, o->why, sizeof o->why) || !bo_download_all(&rc, gr, o->why, sizeof o->why)) goto done;
    if (!bo_check_untouched(&tc, gt, false, "", o->why, sizeof o->why)) goto done;
    if (!bo_check_untouched(&rc, gr, false, "reference: ", o->why, sizeof o->why)) goto done;
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
        if (!compare_output(&tc.ts[it].t, gt[it] + BO_GUARD, &rc.ts[ir].t, gr[ir] + BO_GUARD, o->tol,
                            r->mode == MODE_CPU && r->act == INFVSR_TYPE_F32 ? k->tol_elem_ref : 0, &e, o->why, sizeof o->why)) {
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
            !bo_download_all(&ac, ga, o->why, sizeof o->why)) {
            if (st_a != INFVSR_OK) snprintf(o->why, sizeof o->why, "second run failed: %s", ac.err.msg);
            o->ok = false;
        } else {
            for (int i = 0; i < tc.n && o->ok; i++) {
                if (tc.ts[i].role == BO_IN) continue;
                double e;
                char why[1024];
                if (!compare_output(&ac.ts[i].t, ga[i] + BO_GUARD, &tc.ts[i].t, gt[i] + BO_GUARD, 0, 0, &e, why, sizeof why)) {
                    snprintf(o->why, sizeof o->why, "not deterministic (%s vs %s): %s", infvsr_backend_name(r->alt),
                             infvsr_backend_name(r->be), why);
                    o->ok = false;
                }
            }
        }
        bo_free_all(ga, ac.n);
        bo_ctx_free(&ac);
    }
done:
    bo_free_all(gt, tc.n);
    bo_free_all(gr, rc.n);
    bo_ctx_free(&tc);
    bo_ctx_free(&rc);
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
    if (!bo_download_all(&tc, got, o->why, sizeof o->why)) goto done;
    if (!bo_check_untouched(&tc, got, false, "", o->why, sizeof o->why)) goto done;
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
        int64_t at = first_diff(got[i] + BO_GUARD, h.expect[i], (size_t)infvsr_tensor_numel(t), infvsr_dtype_size(t->dtype));
        if (at >= 0) {
            describe_diff(t, got[i] + BO_GUARD, h.expect[i], at, o->why, sizeof o->why);
            o->ok = false;
        }
    }
done:
    for (int i = 0; i < BO_MAX_TENSORS; i++) free(h.expect[i]);
    bo_free_all(got, tc.n);
    bo_ctx_free(&tc);
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
    if (!bo_download_all(&tc, got, o->why, sizeof o->why)) goto done;
    if (!bo_check_untouched(&tc, got, true, "", o->why, sizeof o->why)) goto done;
    if (!infvsr_backend_healthy(r->be)) {
        snprintf(o->why, sizeof o->why, "backend unhealthy after a refused call: %s", infvsr_backend_last_error(r->be));
        goto done;
    }
    o->ok = true;
    if (r->verbose) snprintf(o->why, sizeof o->why, "\"%s\"", tc.err.msg);
done:
    bo_free_all(got, tc.n);
    bo_ctx_free(&tc);
}

static void run_self(const struct runner * r, const struct bo_case * k, uint64_t seed, struct outcome * o) {
    struct bo_ctx tc;
    enum infvsr_status st;
    ctx_setup(&tc, r, r->be, false, seed);
    if (run_side(&tc, k, &st, o->why, sizeof o->why)) {
        o->ok = st == INFVSR_OK;
        if (!o->ok) snprintf(o->why, sizeof o->why, "%s", tc.err.msg);
    }
    bo_ctx_free(&tc);
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
                    "[--precision f32|bf16] [--isa amx|avx512bf16|avx2] [-v] [-l]\n");
}

int main(int argc, char ** argv) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress survives a crash */
    const char * backend = "cpu", * ops = NULL, * pattern = NULL, * precision = NULL, * isa = NULL;
    bool verbose = false, list = false;
    for (int i = 1; i < argc; i++) {
        const char * a = argv[i];
        bool has_val = i + 1 < argc;
        if (strcmp(a, "-b") == 0 && has_val) backend = argv[++i];
        else if (strcmp(a, "-o") == 0 && has_val) ops = argv[++i];
        else if (strcmp(a, "-p") == 0 && has_val) pattern = argv[++i];
        else if (strcmp(a, "--precision") == 0 && has_val) precision = argv[++i];
        else if (strcmp(a, "--isa") == 0 && has_val) isa = argv[++i];
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

    static const enum infvsr_precision passes[] = { INFVSR_PRECISION_F32, INFVSR_PRECISION_BF16 };
    int failures = 0, n_pass = 0;
    double t_all = now_s();
    for (size_t p = 0; p < 2; p++) {
        const char * pname = infvsr_precision_name(passes[p]);
        if (precision && strcmp(precision, pname) != 0) continue;
        struct infvsr_backend_opts o = infvsr_backend_default_opts();
        o.n_threads = r.mode == MODE_CPU ? 2 : 1; /* devsim on one thread: bit-identical to cpu on two */
        o.precision = passes[p];
        o.cpu_isa   = isa;
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
        if (r.mode == MODE_CPU) { /* BO_REPEAT: the same backend on one thread */
            struct infvsr_backend_opts o1 = o;
            o1.n_threads = 1;
            INFVSR_ASSERT(infvsr_backend_init_by_name("cpu", &o1, &one_thread, &err) == INFVSR_OK);
        }
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
        infvsr_backend_free(one_thread);
        r.be = NULL;
        one_thread = NULL;
        n_pass++;
    }
    printf("%s: %d failed, %.2f s\n", backend, failures, now_s() - t_all);
    infvsr_backend_free(one_thread);
    infvsr_backend_free(r.ref);
    free(l.v);
    return failures ? 1 : 0;
}
