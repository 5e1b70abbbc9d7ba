/* The CPU backend's vtable: argument validation and dispatch.
 *
 * Every entry point checks the caller's tensors (memory kind, dtype, shape, aliasing) and
 * returns INFVSR_ERR_INVALID_ARG with a message naming the tensor and the shapes at
 * fault; only then does it call the fast op (kernels/cpu/<family>.c) or, with
 * params.use_ref, the float64 oracle (kernels/cpu/ref). Ops are serialised per backend
 * because the reusable scratch buffers live in the backend. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "cpu_impl.h"
#include "simd.h"

#define CTX(be) ((struct infvsr_cpu_ctx *)(be)->context)

/* ---- helpers shared with the op files ---- */

float * infvsr__buf_reserve(struct infvsr_cpu_buf * b, size_t n) {
    if (n <= b->cap && b->data) return b->data;
    free(b->data);
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    b->data = aligned_alloc(64, bytes ? bytes : 64);
    b->cap  = b->data ? n : 0;
    return b->data;
}

void infvsr__buf_free(struct infvsr_cpu_buf * b) {
    free(b->data);
    b->data = NULL;
    b->cap  = 0;
}

int64_t infvsr__n_chunks(const struct infvsr_cpu_ctx * c, int64_t n, int64_t grain) {
    int64_t k = grain > 0 ? (n + grain - 1) / grain : n;
    int64_t cap = (int64_t)c->n_threads * 8;
    if (k > cap) k = cap;
    return k < 1 ? 1 : k;
}

void infvsr__w_widen(float * dst, struct infvsr_cpu_w w, size_t offset, size_t n) {
    if (w.dtype == INFVSR_TYPE_F32) {
        memcpy(dst, (const float *)w.data + offset, n * sizeof *dst);
        return;
    }
    const uint16_t * s = (const uint16_t *)w.data + offset;
    size_t i = 0;
    if (w.dtype == INFVSR_TYPE_BF16) {
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, infvsr__load8_bf16(s + i));
    } else {
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, infvsr__load8_f16(s + i)); /* F16C: exact */
    }
    for (; i < n; i++) dst[i] = infvsr__w_get(w, i + offset);
}

/* ---- validation helpers ---- */

static const char * tname(const struct infvsr_tensor * t) {
    return t->name[0] ? t->name : "(unnamed)";
}

static enum infvsr_status check_host(const struct infvsr_tensor * t, const char * role, struct infvsr_err * err) {
    if (!t) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu: %s tensor is NULL", role);
    if (t->mem != INFVSR_MEM_HOST) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu: %s tensor '%s' is not in host memory", role, tname(t));
    }
    if (t->ndim < 0 || t->ndim > INFVSR_MAX_DIMS) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu: %s tensor '%s' has ndim %d", role, tname(t), t->ndim);
    }
    int64_t n;
    if (!infvsr_shape_numel(t->ndim, t->shape, &n)) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu: %s tensor '%s' has an invalid shape", role, tname(t));
    }
    if (n > 0 && !t->data) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu: %s tensor '%s' has no data", role, tname(t));
    }
    return INFVSR_OK;
}

/* An f32 activation tensor. */
static enum infvsr_status check_f32(const struct infvsr_tensor * t, const char * role, struct infvsr_err * err) {
    enum infvsr_status st = check_host(t, role, err);
    if (st) return st;
    if (t->dtype != INFVSR_TYPE_F32) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu: %s tensor '%s' must be f32, got %s", role,
                              tname(t), infvsr_dtype_name(t->dtype));
    }
    return INFVSR_OK;
}

/* An activation tensor: f32, or bf16 (act_in/act_out below widen it for the f32 kernels). */
static enum infvsr_status check_act(const struct infvsr_tensor * t, const char * role, struct infvsr_err * err) {
    enum infvsr_status st = check_host(t, role, err);
    if (st) return st;
    if (t->dtype != INFVSR_TYPE_F32 && t->dtype != INFVSR_TYPE_BF16) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu: %s tensor '%s' must be f32 or bf16, got %s", role,
                              tname(t), infvsr_dtype_name(t->dtype));
    }
    return INFVSR_OK;
}

/* bf16 activations on the f32 kernels (the generic path of every op without a native bf16
 * kernel, and of every op on the avx2 level): each bf16 input is widened into an f32
 * temporary, the f32 kernel runs, each bf16 output is rounded once (to nearest even) into
 * its storage. The numerics of a bf16 GPU kernel (load bf16, compute f32, round on
 * store); the cost is the conversions and the temporaries (per call, freed after it).
 * In-place calls stay correct: input and output get separate temporaries. */
struct act_call {
    struct infvsr_cpu_ctx * c;
    int                     n;
    bool                    oom;
    struct {
        float *                      tmp;
        size_t                       cap; /* floats */
        const struct infvsr_tensor * out; /* NULL: an input */
    } o[8];
};

/* The temporaries are recycled through a small pool (cpu_impl.h: act_pool) instead of a
 * malloc and free per call: a DiT chunk makes thousands of them of 0.1-7 MB, and glibc
 * returned and re-mapped that memory as its heap changed shape (measured: ~160k page
 * faults per chunk, ~0.5 s of system time, after the packed weights left the heap). The
 * smallest pooled buffer that fits is taken; what does not fit under the byte cap is
 * freed as before. */
static float * act_take(struct infvsr_cpu_ctx * c, size_t n, size_t * cap) {
    pthread_mutex_lock(&c->act_mu);
    int best = -1;
    for (int i = 0; i < c->act_pool_n; i++)
        if (c->act_pool[i].cap >= n && (best < 0 || c->act_pool[i].cap < c->act_pool[best].cap)) best = i;
    float * f = NULL;
    if (best >= 0) {
        f = c->act_pool[best].data;
        *cap = c->act_pool[best].cap;
        c->act_pool_bytes -= *cap * sizeof(float);
        c->act_pool[best] = c->act_pool[--c->act_pool_n];
    }
    pthread_mutex_unlock(&c->act_mu);
    if (!f) {
        f = malloc((n ? n : 1) * sizeof *f);
        *cap = n ? n : 1;
    }
    return f;
}

static void act_give(struct infvsr_cpu_ctx * c, float * f, size_t cap) {
    pthread_mutex_lock(&c->act_mu);
    const size_t bytes = cap * sizeof(float);
    if (c->act_pool_n < INFVSR_CPU_ACT_POOL && c->act_pool_bytes + bytes <= INFVSR_CPU_ACT_POOL_BYTES) {
        c->act_pool[c->act_pool_n++] = (struct infvsr_cpu_buf){ .data = f, .cap = cap };
        c->act_pool_bytes += bytes;
        f = NULL;
    }
    pthread_mutex_unlock(&c->act_mu);
    free(f);
}

static float * act_tmp(struct act_call * a, const struct infvsr_tensor * t, const struct infvsr_tensor * out) {
    INFVSR_ASSERT(a->n < 8);
    size_t n = (size_t)infvsr_tensor_numel(t), cap;
    float * f = act_take(a->c, n, &cap);
    if (!f) {
        a->oom = true;
        return NULL;
    }
    a->o[a->n].tmp = f;
    a->o[a->n].cap = cap;
    a->o[a->n].out = out;
    a->n++;
    return f;
}

static const float * act_in(struct act_call * a, const struct infvsr_tensor * t) {
    if (!t || t->dtype == INFVSR_TYPE_F32) return t ? t->data : NULL;
    float * f = act_tmp(a, t, NULL);
    if (f) {
        pthread_mutex_lock(&a->c->lock); /* the pool runs one op at a time */
        infvsr_cpu_bf16_widen(a->c, f, t->data, infvsr_tensor_numel(t));
        pthread_mutex_unlock(&a->c->lock);
    }
    return f;
}

static float * act_out(struct act_call * a, struct infvsr_tensor * t) {
    if (t->dtype == INFVSR_TYPE_F32) return t->data;
    return act_tmp(a, t, t);
}

/* Rounds the outputs into their bf16 storage when st is OK; frees the temporaries. */
static enum infvsr_status act_finish(struct act_call * a, enum infvsr_status st) {
    for (int i = 0; i < a->n; i++) {
        if (a->o[i].out && st == INFVSR_OK) {
            pthread_mutex_lock(&a->c->lock);
            infvsr_cpu_bf16_round(a->c, a->o[i].out->data, a->o[i].tmp, infvsr_tensor_numel(a->o[i].out));
            pthread_mutex_unlock(&a->c->lock);
        }
        act_give(a->c, a->o[i].tmp, a->o[i].cap);
    }
    a->n = 0;
    return st;
}

static enum infvsr_status act_oom(struct act_call * a, const char * op, struct infvsr_err * err) {
    act_finish(a, INFVSR_ERR_NOMEM);
    return infvsr_err_set(err, INFVSR_ERR_NOMEM, "cpu %s: out of memory widening bf16 activations", op);
}

/* A weight read in place (F32/BF16/F16) of exactly `numel` elements; NULL allowed when
 * optional. Fills *w (data NULL when absent). */
static enum infvsr_status check_weight(const struct infvsr_tensor * t, const char * role, int64_t numel,
                                       bool optional, struct infvsr_cpu_w * w, struct infvsr_err * err) {
    w->data  = NULL;
    w->dtype = INFVSR_TYPE_F32;
    if (!t) {
        if (optional) return INFVSR_OK;
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu: %s tensor is NULL", role);
    }
    enum infvsr_status st = check_host(t, role, err);
    if (st) return st;
    if (t->dtype != INFVSR_TYPE_F32 && t->dtype != INFVSR_TYPE_BF16 && t->dtype != INFVSR_TYPE_F16) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu: %s tensor '%s' must be f32, bf16 or f16, got %s",
                              role, tname(t), infvsr_dtype_name(t->dtype));
    }
    if (numel >= 0 && infvsr_tensor_numel(t) != numel) {
        char b[96];
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu: %s tensor '%s' has shape %s (%lld elements), expected %lld",
                              role, tname(t), infvsr_shape_str(t->ndim, t->shape, b, sizeof b),
                              (long long)infvsr_tensor_numel(t), (long long)numel);
    }
    w->data  = t->data;
    w->dtype = t->dtype;
    return INFVSR_OK;
}

static enum infvsr_status shape_mismatch(struct infvsr_err * err, const char * op, const struct infvsr_tensor * a,
                                         const struct infvsr_tensor * b, const char * what) {
    char sa[96], sb[96];
    return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu %s: '%s' %s and '%s' %s: %s", op, tname(a),
                          infvsr_shape_str(a->ndim, a->shape, sa, sizeof sa), tname(b),
                          infvsr_shape_str(b->ndim, b->shape, sb, sizeof sb), what);
}

static int64_t last_dim(const struct infvsr_tensor * t) {
    return t->ndim > 0 ? t->shape[t->ndim - 1] : 1;
}

static enum infvsr_status no_alias(const struct infvsr_tensor * out, const struct infvsr_tensor * in,
                                   const char * op, struct infvsr_err * err) {
    if (in && out->data == in->data && infvsr_tensor_numel(out) > 0) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu %s: output '%s' must not alias input '%s'", op,
                              tname(out), tname(in));
    }
    return INFVSR_OK;
}

/* Row-wise ops: x and y f32 with the same numel, C = last dim of x (> 0). */
static enum infvsr_status check_rows(const char * op, const struct infvsr_tensor * x, const struct infvsr_tensor * y,
                                     int64_t * R, int64_t * C, struct infvsr_err * err) {
    enum infvsr_status st;
    if ((st = check_act(x, "x", err)) || (st = check_act(y, "y", err))) return st;
    if (infvsr_tensor_numel(x) != infvsr_tensor_numel(y) || last_dim(x) != last_dim(y)) {
        return shape_mismatch(err, op, x, y, "x and y differ in size or last dim");
    }
    *C = last_dim(x);
    if (*C <= 0) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu %s: '%s' has an empty last dim", op, tname(x));
    *R = infvsr_tensor_numel(x) / *C;
    return INFVSR_OK;
}

/* OpenBLAS takes int sizes and leading dimensions. */
static enum infvsr_status check_blas_dims(const char * op, int64_t a, int64_t b, int64_t c, struct infvsr_err * err) {
    if (a > INT32_MAX || b > INT32_MAX || c > INT32_MAX) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu %s: GEMM dims %lld x %lld x %lld exceed the BLAS int range",
                              op, (long long)a, (long long)b, (long long)c);
    }
    return INFVSR_OK;
}

/* The native bf16 ops (act_bf16.c, matmul_bf16.c) take a call in which some activation is
 * bf16, on the avx512bf16 and amx levels: no whole-tensor temporaries. All-f32 calls, the
 * avx2 level and reference mode keep the f32 op and the generic path above. */
static bool native_bf16(const struct infvsr_cpu_ctx * c, const struct infvsr_tensor * a, const struct infvsr_tensor * b,
                        const struct infvsr_tensor * y) {
    const bool any = a->dtype == INFVSR_TYPE_BF16 || (b && b->dtype == INFVSR_TYPE_BF16) || y->dtype == INFVSR_TYPE_BF16;
    return any && infvsr_cpu_act_bf16_native(c);
}

static struct infvsr_cpu_act act_of(const struct infvsr_tensor * t) {
    return (struct infvsr_cpu_act){ .data = t->data, .dtype = t->dtype };
}

/* Starts an act_call for op `name` (variables ac, st). */
#define ACT_BEGIN(c) struct act_call ac = { .c = (c) }; enum infvsr_status st = INFVSR_OK

#define LOCKED(c, body)                             \
    do {                                            \
        pthread_mutex_lock(&(c)->lock);             \
        body;                                       \
        pthread_mutex_unlock(&(c)->lock);           \
    } while (0)

/* ---- memory ---- */

enum infvsr_cpu_isa infvsr_cpu_backend_isa(const struct infvsr_backend * be) {
    return ((const struct infvsr_cpu_ctx *)be->context)->isa;
}

static const char * cpu_name(struct infvsr_backend * be) {
    return CTX(be)->use_ref ? "cpu-ref" : "cpu";
}

static enum infvsr_status cpu_tensor_alloc(struct infvsr_backend * be, struct infvsr_tensor * t, struct infvsr_err * err) {
    if (!t) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu: tensor_alloc of NULL");
    struct infvsr_tensor tmp;
    enum infvsr_status st = infvsr_tensor_alloc(&tmp, t->name, t->dtype, t->ndim, t->shape);
    if (st) {
        char b[96];
        return infvsr_err_set(err, st, "cpu: cannot allocate '%s' %s %s", tname(t), infvsr_dtype_name(t->dtype),
                              infvsr_shape_str(t->ndim, t->shape, b, sizeof b));
    }
    *t = tmp;
    return INFVSR_OK;
}

static void cpu_tensor_free(struct infvsr_backend * be, struct infvsr_tensor * t) {
    infvsr_tensor_release(t);
}

static enum infvsr_status copy_check(const struct infvsr_tensor * t, size_t offset, size_t nbytes, const char * op,
                                     struct infvsr_err * err) {
    if (!t || t->mem != INFVSR_MEM_HOST || (nbytes && !t->data)) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu %s: '%s' is not an allocated host tensor", op,
                              t ? tname(t) : "NULL");
    }
    size_t total = infvsr_tensor_nbytes(t);
    if (offset > total || nbytes > total - offset) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu %s: '%s' range [%zu, +%zu) outside its %zu bytes", op,
                              tname(t), offset, nbytes, total);
    }
    return INFVSR_OK;
}

static enum infvsr_status cpu_tensor_set(struct infvsr_backend * be, struct infvsr_tensor * t, const void * src,
                                         size_t offset, size_t nbytes, struct infvsr_err * err) {
    INFVSR_TRY(copy_check(t, offset, nbytes, "tensor_set", err));
    if (nbytes) memmove((char *)t->data + offset, src, nbytes);
    return INFVSR_OK;
}

static enum infvsr_status cpu_tensor_get(struct infvsr_backend * be, const struct infvsr_tensor * t, void * dst,
                                         size_t offset, size_t nbytes, struct infvsr_err * err) {
    INFVSR_TRY(copy_check(t, offset, nbytes, "tensor_get", err));
    if (nbytes) memmove(dst, (const char *)t->data + offset, nbytes);
    return INFVSR_OK;
}

/* ---- GEMM family ---- */

static enum infvsr_status cpu_linear(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                     const struct infvsr_tensor * w, const struct infvsr_tensor * b,
                                     enum infvsr_unary_op act, struct infvsr_tensor * y, struct infvsr_err * err) {
    struct infvsr_cpu_ctx * c = CTX(be);
    INFVSR_TRY(check_act(x, "x", err));
    INFVSR_TRY(check_act(y, "y", err));
    INFVSR_TRY(check_host(w, "w", err));
    if (w->ndim != 2) {
        char s[96];
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu linear: weight '%s' must be 2-D [N, K], got %s",
                              tname(w), infvsr_shape_str(w->ndim, w->shape, s, sizeof s));
    }
    int64_t N = w->shape[0], K = w->shape[1];
    struct infvsr_cpu_w wv, bv;
    INFVSR_TRY(check_weight(w, "w", N * K, false, &wv, err));
    INFVSR_TRY(check_weight(b, "b", N, true, &bv, err));
    if ((unsigned)act > INFVSR_UNARY_COUNT) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu linear: unknown activation %d", (int)act);
    }
    if (K <= 0 || last_dim(x) != K) return shape_mismatch(err, "linear", x, w, "last dim of x must equal K = w.shape[1]");
    int64_t M = infvsr_tensor_numel(x) / K;
    if (last_dim(y) != N || infvsr_tensor_numel(y) != M * N) {
        return shape_mismatch(err, "linear", y, w, "y must be [rows of x, N = w.shape[0]]");
    }
    INFVSR_TRY(no_alias(y, x, "linear", err));
    INFVSR_TRY(check_blas_dims("linear", M, N, K, err));
    if (M == 0 || N == 0) return INFVSR_OK;
    ACT_BEGIN(c);
    /* the native bf16 GEMMs: bf16 operands, f32 accumulation, y stored in its dtype */
    const enum infvsr_cpu_linear_bf16_kernel gk = !c->use_ref && x->dtype == INFVSR_TYPE_BF16
                                                      ? infvsr_cpu_linear_bf16_kernel(c, M, N, K)
                                                      : INFVSR_CPU_LINEAR_BF16_WIDEN;
    if (gk == INFVSR_CPU_LINEAR_BF16_AMX || gk == INFVSR_CPU_LINEAR_BF16_AVX512) {
        /* an imported weight is packed once (weight_pack.c; one layout for both kernels),
         * any other per call */
        pthread_mutex_lock(&c->lock);
        const uint16_t * packed = infvsr__wcache_linear(c, wv, N, K);
        if (gk == INFVSR_CPU_LINEAR_BF16_AMX)
            st = infvsr_cpu_op_linear_amx(c, x->data, M, K, wv, packed, N, bv, act, y->data, y->dtype);
        else if (packed)
            st = infvsr_cpu_op_linear_bf16_packed(c, x->data, M, K, packed, N, bv, act, y->data, y->dtype);
        else
            st = infvsr_cpu_op_linear_bf16(c, x->data, M, K, wv, N, bv, act, y->data, y->dtype);
        pthread_mutex_unlock(&c->lock);
    } else {
        const float * xf = act_in(&ac, x);
        float * yf = act_out(&ac, y);
        if (ac.oom) return act_oom(&ac, "linear", err);
        if (c->use_ref) infvsr_cpu_ref_linear(xf, M, K, wv, N, bv, act, yf);
        else LOCKED(c, st = infvsr_cpu_op_linear(c, xf, M, K, wv, N, bv, act, yf));
    }
    if (act_finish(&ac, st) == INFVSR_ERR_NOMEM) {
        return infvsr_err_set(err, st, "cpu linear: out of memory (panel of %lld x %lld)", (long long)N, (long long)K);
    }
    if (st) {
        return infvsr_err_set(err, st, "cpu linear: %s", gk == INFVSR_CPU_LINEAR_BF16_AMX
                                                             ? "the AMX kernel does not run on this CPU"
                                                             : "failed");
    }
    return INFVSR_OK;
}

static enum infvsr_status cpu_matmul(struct infvsr_backend * be, const struct infvsr_tensor * a,
                                     const struct infvsr_tensor * b, bool trans_b, float alpha,
                                     struct infvsr_tensor * cm, struct infvsr_err * err) {
    struct infvsr_cpu_ctx * c = CTX(be);
    INFVSR_TRY(check_act(a, "a", err));
    INFVSR_TRY(check_act(b, "b", err));
    INFVSR_TRY(check_act(cm, "c", err));
    if (a->ndim < 2 || b->ndim < 2 || cm->ndim < 2) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu matmul: a, b and c must have >= 2 dims (got %d, %d, %d)",
                              a->ndim, b->ndim, cm->ndim);
    }
    int64_t M = a->shape[a->ndim - 2], K = a->shape[a->ndim - 1];
    int64_t N = trans_b ? b->shape[b->ndim - 2] : b->shape[b->ndim - 1];
    int64_t Kb = trans_b ? b->shape[b->ndim - 1] : b->shape[b->ndim - 2];
    if (Kb != K) return shape_mismatch(err, "matmul", a, b, trans_b ? "b must be [B, N, K]" : "b must be [B, K, N]");
    if (M * K == 0 || M * N == 0) {
        if (infvsr_tensor_numel(cm) != 0) return shape_mismatch(err, "matmul", a, cm, "empty product");
        return INFVSR_OK;
    }
    int64_t B = infvsr_tensor_numel(a) / (M * K);
    if (K * N == 0 || infvsr_tensor_numel(b) != B * K * N) {
        return shape_mismatch(err, "matmul", a, b, "batch sizes differ");
    }
    if (cm->shape[cm->ndim - 2] != M || cm->shape[cm->ndim - 1] != N || infvsr_tensor_numel(cm) != B * M * N) {
        return shape_mismatch(err, "matmul", cm, a, "c must be [B, M, N]");
    }
    INFVSR_TRY(no_alias(cm, a, "matmul", err));
    INFVSR_TRY(check_blas_dims("matmul", M, N, K, err));
    INFVSR_TRY(no_alias(cm, b, "matmul", err));
    if (a->dtype == INFVSR_TYPE_BF16 && b->dtype == INFVSR_TYPE_BF16 && infvsr_cpu_matmul_bf16_applies(c, B, M, K, N)) {
        /* the native bf16 matmul: operands read as stored, f32 accumulation, c in its dtype */
        enum infvsr_status sn;
        LOCKED(c, sn = infvsr_cpu_op_matmul_bf16(c, a->data, b->data, B, M, K, N, trans_b, alpha, cm->data, cm->dtype));
        if (sn) return infvsr_err_set(err, sn, "cpu matmul: out of memory for the packed operand");
        return INFVSR_OK;
    }
    ACT_BEGIN(c);
    const float * af = act_in(&ac, a), * bf = act_in(&ac, b);
    float * cf = act_out(&ac, cm);
    if (ac.oom) return act_oom(&ac, "matmul", err);
    if (c->use_ref) {
        infvsr_cpu_ref_matmul(af, bf, B, M, K, N, trans_b, alpha, cf);
    } else {
        LOCKED(c, st = infvsr_cpu_op_matmul(c, af, bf, B, M, K, N, trans_b, alpha, cf));
    }
    if (act_finish(&ac, st)) return infvsr_err_set(err, st, "cpu matmul: failed");
    return INFVSR_OK;
}

/* ---- normalisation ---- */

static enum infvsr_status cpu_layer_norm(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                         const struct infvsr_tensor * w, const struct infvsr_tensor * b, float eps,
                                         struct infvsr_tensor * y, struct infvsr_err * err) {
    struct infvsr_cpu_ctx * c = CTX(be);
    int64_t R, C;
    struct infvsr_cpu_w wv, bv;
    INFVSR_TRY(check_rows("layer_norm", x, y, &R, &C, err));
    INFVSR_TRY(check_weight(w, "w", C, true, &wv, err));
    INFVSR_TRY(check_weight(b, "b", C, true, &bv, err));
    if (native_bf16(c, x, NULL, y)) {
        enum infvsr_status sn;
        LOCKED(c, sn = infvsr_cpu_op_layer_norm_bf16(c, act_of(x), R, C, wv, bv, eps, act_of(y)));
        if (sn) return infvsr_err_set(err, sn, "cpu layer_norm: out of memory");
        return INFVSR_OK;
    }
    ACT_BEGIN(c);
    const float * xf = act_in(&ac, x);
    float * yf = act_out(&ac, y);
    if (ac.oom) return act_oom(&ac, "layer_norm", err);
    if (c->use_ref) infvsr_cpu_ref_layer_norm(xf, R, C, wv, bv, eps, yf);
    else LOCKED(c, infvsr_cpu_op_layer_norm(c, xf, R, C, wv, bv, eps, yf));
    return act_finish(&ac, st);
}

static enum infvsr_status cpu_rms_norm(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                       const struct infvsr_tensor * w, float eps, struct infvsr_tensor * y,
                                       struct infvsr_err * err) {
    struct infvsr_cpu_ctx * c = CTX(be);
    int64_t R, C;
    struct infvsr_cpu_w wv;
    INFVSR_TRY(check_rows("rms_norm", x, y, &R, &C, err));
    INFVSR_TRY(check_weight(w, "w", C, true, &wv, err));
    if (native_bf16(c, x, NULL, y)) {
        enum infvsr_status sn;
        LOCKED(c, sn = infvsr_cpu_op_rms_norm_bf16(c, act_of(x), R, C, wv, eps, act_of(y)));
        if (sn) return infvsr_err_set(err, sn, "cpu rms_norm: out of memory");
        return INFVSR_OK;
    }
    ACT_BEGIN(c);
    const float * xf = act_in(&ac, x);
    float * yf = act_out(&ac, y);
    if (ac.oom) return act_oom(&ac, "rms_norm", err);
    if (c->use_ref) infvsr_cpu_ref_rms_norm(xf, R, C, wv, eps, yf);
    else LOCKED(c, infvsr_cpu_op_rms_norm(c, xf, R, C, wv, eps, yf));
    return act_finish(&ac, st);
}

static enum infvsr_status cpu_channel_rms_norm(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                               const struct infvsr_tensor * gamma, struct infvsr_tensor * y,
                                               struct infvsr_err * err) {
    struct infvsr_cpu_ctx * c = CTX(be);
    INFVSR_TRY(check_act(x, "x", err));
    INFVSR_TRY(check_act(y, "y", err));
    if (x->ndim < 1 || !infvsr_tensor_same_shape(x, y)) return shape_mismatch(err, "channel_rms_norm", x, y, "x and y must have the same shape [C, ...]");
    int64_t C = x->shape[0];
    if (C <= 0) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu channel_rms_norm: '%s' has no channels", tname(x));
    int64_t S = infvsr_tensor_numel(x) / C;
    struct infvsr_cpu_w g;
    INFVSR_TRY(check_weight(gamma, "gamma", C, true, &g, err));
    if (native_bf16(c, x, NULL, y)) {
        enum infvsr_status sn;
        LOCKED(c, sn = infvsr_cpu_op_channel_rms_norm_bf16(c, act_of(x), C, S, g, act_of(y)));
        if (sn) return infvsr_err_set(err, sn, "cpu channel_rms_norm: out of memory");
        return INFVSR_OK;
    }
    ACT_BEGIN(c);
    const float * xf = act_in(&ac, x);
    float * yf = act_out(&ac, y);
    if (ac.oom) return act_oom(&ac, "channel_rms_norm", err);
    if (c->use_ref) infvsr_cpu_ref_channel_rms_norm(xf, C, S, g, yf);
    else LOCKED(c, infvsr_cpu_op_channel_rms_norm(c, xf, C, S, g, yf));
    return act_finish(&ac, st);
}

static enum infvsr_status cpu_modulate(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                       const struct infvsr_tensor * scale, const struct infvsr_tensor * shift,
                                       struct infvsr_tensor * y, struct infvsr_err * err) {
    struct infvsr_cpu_ctx * c = CTX(be);
    int64_t R, C;
    struct infvsr_cpu_w sc, sh;
    INFVSR_TRY(check_rows("modulate", x, y, &R, &C, err));
    INFVSR_TRY(check_weight(scale, "scale", C, false, &sc, err));
    INFVSR_TRY(check_weight(shift, "shift", C, false, &sh, err));
    if (native_bf16(c, x, NULL, y)) {
        enum infvsr_status sn;
        LOCKED(c, sn = infvsr_cpu_op_modulate_bf16(c, act_of(x), R, C, sc, sh, act_of(y)));
        if (sn) return infvsr_err_set(err, sn, "cpu modulate: out of memory");
        return INFVSR_OK;
    }
    ACT_BEGIN(c);
    const float * xf = act_in(&ac, x);
    float * yf = act_out(&ac, y);
    if (ac.oom) return act_oom(&ac, "modulate", err);
    if (c->use_ref) infvsr_cpu_ref_modulate(xf, R, C, sc, sh, yf);
    else LOCKED(c, infvsr_cpu_op_modulate(c, xf, R, C, sc, sh, yf));
    return act_finish(&ac, st);
}

/* ---- elementwise ---- */

static enum infvsr_status same_numel(const char * op, const struct infvsr_tensor * a, const struct infvsr_tensor * b,
                                     struct infvsr_err * err) {
    if (infvsr_tensor_numel(a) != infvsr_tensor_numel(b)) return shape_mismatch(err, op, a, b, "element counts differ");
    return INFVSR_OK;
}

static enum infvsr_status cpu_unary(struct infvsr_backend * be, enum infvsr_unary_op op, const struct infvsr_tensor * x,
                                    struct infvsr_tensor * y, struct infvsr_err * err) {
    struct infvsr_cpu_ctx * c = CTX(be);
    INFVSR_TRY(check_act(x, "x", err));
    INFVSR_TRY(check_act(y, "y", err));
    INFVSR_TRY(same_numel("unary", x, y, err));
    if ((unsigned)op >= INFVSR_UNARY_COUNT) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu unary: unknown op %d", (int)op);
    int64_t n = infvsr_tensor_numel(x);
    if (native_bf16(c, x, NULL, y)) {
        LOCKED(c, infvsr_cpu_op_unary_bf16(c, op, act_of(x), n, act_of(y)));
        return INFVSR_OK;
    }
    ACT_BEGIN(c);
    const float * xf = act_in(&ac, x);
    float * yf = act_out(&ac, y);
    if (ac.oom) return act_oom(&ac, "unary", err);
    if (c->use_ref) infvsr_cpu_ref_unary(op, xf, n, yf);
    else LOCKED(c, infvsr_cpu_op_unary(c, op, xf, n, yf));
    return act_finish(&ac, st);
}

static enum infvsr_status cpu_add(struct infvsr_backend * be, const struct infvsr_tensor * a,
                                  const struct infvsr_tensor * b, struct infvsr_tensor * y, struct infvsr_err * err) {
    struct infvsr_cpu_ctx * c = CTX(be);
    INFVSR_TRY(check_act(a, "a", err));
    INFVSR_TRY(check_act(b, "b", err));
    INFVSR_TRY(check_act(y, "y", err));
    INFVSR_TRY(same_numel("add", a, b, err));
    INFVSR_TRY(same_numel("add", a, y, err));
    int64_t n = infvsr_tensor_numel(a);
    if (native_bf16(c, a, b, y)) {
        LOCKED(c, infvsr_cpu_op_add_bf16(c, act_of(a), act_of(b), n, act_of(y)));
        return INFVSR_OK;
    }
    ACT_BEGIN(c);
    const float * af = act_in(&ac, a), * bf = act_in(&ac, b);
    float * yf = act_out(&ac, y);
    if (ac.oom) return act_oom(&ac, "add", err);
    if (c->use_ref) infvsr_cpu_ref_add(af, bf, n, yf);
    else LOCKED(c, infvsr_cpu_op_add(c, af, bf, n, yf));
    return act_finish(&ac, st);
}

static enum infvsr_status cpu_add_gated(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                        const struct infvsr_tensor * gate, const struct infvsr_tensor * d,
                                        struct infvsr_tensor * y, struct infvsr_err * err) {
    struct infvsr_cpu_ctx * c = CTX(be);
    int64_t R, C;
    struct infvsr_cpu_w g;
    INFVSR_TRY(check_rows("add_gated", x, y, &R, &C, err));
    INFVSR_TRY(check_act(d, "d", err));
    INFVSR_TRY(same_numel("add_gated", x, d, err));
    INFVSR_TRY(check_weight(gate, "gate", C, true, &g, err));
    if (d->data == y->data && d->data != x->data) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu add_gated: output '%s' may alias x only, not d", tname(y));
    }
    if (native_bf16(c, x, d, y)) {
        enum infvsr_status sn;
        LOCKED(c, sn = infvsr_cpu_op_add_gated_bf16(c, act_of(x), g, act_of(d), R, C, act_of(y)));
        if (sn) return infvsr_err_set(err, sn, "cpu add_gated: out of memory");
        return INFVSR_OK;
    }
    ACT_BEGIN(c);
    const float * xf = act_in(&ac, x), * df = act_in(&ac, d);
    float * yf = act_out(&ac, y);
    if (ac.oom) return act_oom(&ac, "add_gated", err);
    if (c->use_ref) infvsr_cpu_ref_add_gated(xf, g, df, R, C, yf);
    else LOCKED(c, infvsr_cpu_op_add_gated(c, xf, g, df, R, C, yf));
    return act_finish(&ac, st);
}

static enum infvsr_status cpu_affine_clamp(struct infvsr_backend * be, const struct infvsr_tensor * x, float alpha,
                                           float beta, float lo, float hi, struct infvsr_tensor * y,
                                           struct infvsr_err * err) {
    struct infvsr_cpu_ctx * c = CTX(be);
    INFVSR_TRY(check_act(x, "x", err));
    INFVSR_TRY(check_act(y, "y", err));
    INFVSR_TRY(same_numel("affine_clamp", x, y, err));
    if (isnan(lo) || isnan(hi) || lo > hi) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu affine_clamp: bad clamp range [%g, %g]", (double)lo, (double)hi);
    }
    int64_t n = infvsr_tensor_numel(x);
    if (native_bf16(c, x, NULL, y)) {
        LOCKED(c, infvsr_cpu_op_affine_clamp_bf16(c, act_of(x), n, alpha, beta, lo, hi, act_of(y)));
        return INFVSR_OK;
    }
    ACT_BEGIN(c);
    const float * xf = act_in(&ac, x);
    float * yf = act_out(&ac, y);
    if (ac.oom) return act_oom(&ac, "affine_clamp", err);
    if (c->use_ref) infvsr_cpu_ref_affine_clamp(xf, n, alpha, beta, lo, hi, yf);
    else LOCKED(c, infvsr_cpu_op_affine_clamp(c, xf, n, alpha, beta, lo, hi, yf));
    return act_finish(&ac, st);
}

static enum infvsr_status cpu_softmax(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                      struct infvsr_tensor * y, struct infvsr_err * err) {
    struct infvsr_cpu_ctx * c = CTX(be);
    int64_t R, C;
    INFVSR_TRY(check_rows("softmax", x, y, &R, &C, err));
    if (native_bf16(c, x, NULL, y)) {
        enum infvsr_status sn;
        LOCKED(c, sn = infvsr_cpu_op_softmax_bf16(c, act_of(x), R, C, act_of(y)));
        if (sn) return infvsr_err_set(err, sn, "cpu softmax: out of memory");
        return INFVSR_OK;
    }
    ACT_BEGIN(c);
    const float * xf = act_in(&ac, x);
    float * yf = act_out(&ac, y);
    if (ac.oom) return act_oom(&ac, "softmax", err);
    if (c->use_ref) infvsr_cpu_ref_softmax(xf, R, C, yf);
    else LOCKED(c, infvsr_cpu_op_softmax(c, xf, R, C, yf));
    return act_finish(&ac, st);
}

/* ---- attention and positions ---- */

/* t must be f32 [rows, hd] in the sense numel == rows * hd and last dim == hd */
static enum infvsr_status check_tokens(const struct infvsr_tensor * t, const char * role, int64_t hd, int64_t * rows,
                                       struct infvsr_err * err) {
    INFVSR_TRY(check_act(t, role, err));
    if (last_dim(t) != hd) {
        char s[96];
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu attention: %s '%s' %s must have last dim H*D = %lld", role,
                              tname(t), infvsr_shape_str(t->ndim, t->shape, s, sizeof s), (long long)hd);
    }
    *rows = infvsr_tensor_numel(t) / hd;
    return INFVSR_OK;
}

static enum infvsr_status cpu_attention(struct infvsr_backend * be, const struct infvsr_attn_args * a,
                                        struct infvsr_err * err) {
    struct infvsr_cpu_ctx * c = CTX(be);
    if (!a) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu attention: NULL args");
    INFVSR_TRY(check_act(a->q, "q", err));
    INFVSR_TRY(check_act(a->out, "out", err));
    int64_t hd = last_dim(a->q);
    if (a->n_heads <= 0 || hd <= 0 || hd % a->n_heads != 0) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu attention: q '%s' last dim %lld is not a multiple of n_heads %d",
                              tname(a->q), (long long)hd, a->n_heads);
    }
    if ((a->k1 == NULL) != (a->v1 == NULL)) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu attention: k1 and v1 must be both set or both NULL");
    }
    struct infvsr_cpu_attn p = { 0 };
    int64_t nv0, nv1 = 0, nout;
    INFVSR_TRY(check_tokens(a->q, "q", hd, &p.nq, err));
    INFVSR_TRY(check_tokens(a->k0, "k0", hd, &p.n0, err));
    INFVSR_TRY(check_tokens(a->v0, "v0", hd, &nv0, err));
    if (a->k1) {
        INFVSR_TRY(check_tokens(a->k1, "k1", hd, &p.n1, err));
        INFVSR_TRY(check_tokens(a->v1, "v1", hd, &nv1, err));
    }
    INFVSR_TRY(check_tokens(a->out, "out", hd, &nout, err));
    if (nv0 != p.n0 || nv1 != p.n1) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu attention: keys and values differ in token count (%lld/%lld vs %lld/%lld)",
                              (long long)p.n0, (long long)p.n1, (long long)nv0, (long long)nv1);
    }
    if (nout != p.nq) return shape_mismatch(err, "attention", a->out, a->q, "out must have the shape of q");
    if (p.n0 + p.n1 <= 0) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu attention: no keys");
    if (a->bias) {
        INFVSR_TRY(check_f32(a->bias, "bias", err));
        int64_t want = (int64_t)a->n_heads * p.nq * (p.n0 + p.n1);
        if (infvsr_tensor_numel(a->bias) != want) {
            char s[96];
            return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu attention: bias '%s' %s must be [H=%d, Nq=%lld, Nk=%lld]",
                                  tname(a->bias), infvsr_shape_str(a->bias->ndim, a->bias->shape, s, sizeof s), a->n_heads,
                                  (long long)p.nq, (long long)(p.n0 + p.n1));
        }
        p.bias = a->bias->data;
    }
    const struct infvsr_tensor * ins[] = { a->q, a->k0, a->v0, a->k1, a->v1, a->bias };
    for (size_t i = 0; i < sizeof ins / sizeof ins[0]; i++) INFVSR_TRY(no_alias(a->out, ins[i], "attention", err));
    p.n_heads = a->n_heads;
    p.head_dim = hd / a->n_heads;
    p.scale = a->scale;
    if (p.nq == 0) return INFVSR_OK;
    ACT_BEGIN(c);
    const bool all_bf16 = a->q->dtype == INFVSR_TYPE_BF16 && a->k0->dtype == INFVSR_TYPE_BF16 &&
                          a->v0->dtype == INFVSR_TYPE_BF16 && (!a->k1 || a->k1->dtype == INFVSR_TYPE_BF16) &&
                          (!a->v1 || a->v1->dtype == INFVSR_TYPE_BF16);
    if (!c->use_ref && all_bf16 && infvsr_cpu_attention_bf16_applies(c)) {
        /* the native bf16 attention: q/k/v read as stored, out rounded once (or f32) */
        p.q = a->q->data, p.k0 = a->k0->data, p.v0 = a->v0->data;
        p.k1 = a->k1 ? a->k1->data : NULL, p.v1 = a->v1 ? a->v1->data : NULL;
        p.out = a->out->data;
        p.dtype = INFVSR_TYPE_BF16, p.out_dtype = a->out->dtype;
        LOCKED(c, st = infvsr_cpu_op_attention_bf16(c, &p); if (st == INFVSR_OK) c->native_attention_calls++);
        if (st) return infvsr_err_set(err, st, "cpu attention: out of memory for tiles");
        return INFVSR_OK;
    }
    p.q = act_in(&ac, a->q);
    p.k0 = act_in(&ac, a->k0);
    p.v0 = act_in(&ac, a->v0);
    p.k1 = act_in(&ac, a->k1);
    p.v1 = act_in(&ac, a->v1);
    p.out = act_out(&ac, a->out);
    if (ac.oom) return act_oom(&ac, "attention", err);
    if (c->use_ref) st = infvsr_cpu_ref_attention(&p) ? INFVSR_OK : INFVSR_ERR_NOMEM;
    else LOCKED(c, st = infvsr_cpu_op_attention(c, &p));
    if (act_finish(&ac, st)) return infvsr_err_set(err, st, "cpu attention: out of memory for tiles");
    return INFVSR_OK;
}

static enum infvsr_status cpu_rope(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                   const struct infvsr_tensor * freqs, int n_heads, struct infvsr_tensor * y,
                                   struct infvsr_err * err) {
    struct infvsr_cpu_ctx * c = CTX(be);
    int64_t N, HD;
    INFVSR_TRY(check_rows("rope", x, y, &N, &HD, err));
    if (n_heads <= 0 || HD % n_heads != 0 || (HD / n_heads) % 2 != 0) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu rope: last dim %lld of '%s' is not n_heads (%d) x an even head dim",
                              (long long)HD, tname(x), n_heads);
    }
    int64_t D = HD / n_heads;
    INFVSR_TRY(check_host(freqs, "freqs", err));
    if (freqs->dtype != INFVSR_TYPE_F64 || infvsr_tensor_numel(freqs) != N * D) {
        char s[96];
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu rope: freqs '%s' %s %s must be f64 [N=%lld, D/2=%lld, 2]",
                              tname(freqs), infvsr_dtype_name(freqs->dtype),
                              infvsr_shape_str(freqs->ndim, freqs->shape, s, sizeof s), (long long)N, (long long)(D / 2));
    }
    if (native_bf16(c, x, NULL, y)) {
        enum infvsr_status sn;
        LOCKED(c, sn = infvsr_cpu_op_rope_bf16(c, act_of(x), N, n_heads, D, freqs->data, act_of(y)));
        if (sn) return infvsr_err_set(err, sn, "cpu rope: out of memory");
        return INFVSR_OK;
    }
    ACT_BEGIN(c);
    const float * xf = act_in(&ac, x);
    float * yf = act_out(&ac, y);
    if (ac.oom) return act_oom(&ac, "rope", err);
    if (c->use_ref) infvsr_cpu_ref_rope(xf, N, n_heads, D, freqs->data, yf);
    else LOCKED(c, infvsr_cpu_op_rope(c, xf, N, n_heads, D, freqs->data, yf));
    return act_finish(&ac, st);
}

/* ---- convolution and resampling ---- */

static enum infvsr_status cpu_conv3d(struct infvsr_backend * be, const struct infvsr_conv3d_args * a,
                                     struct infvsr_err * err) {
    struct infvsr_cpu_ctx * c = CTX(be);
    if (!a) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu conv3d: NULL args");
    INFVSR_TRY(check_act(a->x, "x", err));
    INFVSR_TRY(check_act(a->y, "y", err));
    INFVSR_TRY(check_host(a->w, "w", err));
    if (a->x->ndim != 4 || a->w->ndim != 5 || a->y->ndim != 4) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG,
                              "cpu conv3d: need x [Cin, T, H, W], w [Cout, Cin, kt, kh, kw], y [Cout, To, Ho, Wo] (got %d, %d, %d dims)",
                              a->x->ndim, a->w->ndim, a->y->ndim);
    }
    if (a->stride_t < 1 || a->stride_h < 1 || a->stride_w < 1 || a->pad_top < 0 || a->pad_bottom < 0 ||
        a->pad_left < 0 || a->pad_right < 0) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu conv3d: strides must be >= 1 and pads >= 0");
    }
    struct infvsr_cpu_conv p = {
        .cin = a->x->shape[0], .t = a->x->shape[1], .h = a->x->shape[2], .w_in = a->x->shape[3],
        .cout = a->w->shape[0], .kt = a->w->shape[2], .kh = a->w->shape[3], .kw = a->w->shape[4],
        .st = a->stride_t, .sh = a->stride_h, .sw = a->stride_w,
        .pad_top = a->pad_top, .pad_bottom = a->pad_bottom, .pad_left = a->pad_left, .pad_right = a->pad_right,
    };
    if (a->w->shape[1] != p.cin) return shape_mismatch(err, "conv3d", a->w, a->x, "w.shape[1] must equal Cin = x.shape[0]");
    if (p.kt < 1 || p.kh < 1 || p.kw < 1) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu conv3d: empty kernel");
    int64_t hp = p.h + p.pad_top + p.pad_bottom, wp = p.w_in + p.pad_left + p.pad_right;
    if (p.t < p.kt || hp < p.kh || wp < p.kw) {
        return shape_mismatch(err, "conv3d", a->x, a->w, "input (with padding) is smaller than the kernel");
    }
    p.to = (p.t - p.kt) / p.st + 1;
    p.ho = (hp - p.kh) / p.sh + 1;
    p.wo = (wp - p.kw) / p.sw + 1;
    if (a->y->shape[0] != p.cout || a->y->shape[1] != p.to || a->y->shape[2] != p.ho || a->y->shape[3] != p.wo) {
        char s[96];
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu conv3d: y '%s' is %s, expected [%lld, %lld, %lld, %lld]",
                              tname(a->y), infvsr_shape_str(a->y->ndim, a->y->shape, s, sizeof s), (long long)p.cout,
                              (long long)p.to, (long long)p.ho, (long long)p.wo);
    }
    INFVSR_TRY(check_weight(a->w, "w", infvsr_tensor_numel(a->w), false, &p.w, err));
    INFVSR_TRY(check_weight(a->b, "b", p.cout, true, &p.b, err));
    INFVSR_TRY(no_alias(a->y, a->x, "conv3d", err));
    INFVSR_TRY(check_blas_dims("conv3d", p.cout, p.to * p.ho * p.wo, p.cin * p.kt * p.kh * p.kw, err));
    if (infvsr_tensor_numel(a->y) == 0) return INFVSR_OK;
    ACT_BEGIN(c);
    const enum infvsr_cpu_conv3d_bf16_kernel kern =
        !c->use_ref && a->x->dtype == INFVSR_TYPE_BF16 ? infvsr_cpu_conv3d_bf16_kernel(c, &p) : INFVSR_CPU_CONV3D_BF16_GENERIC;
    if (kern == INFVSR_CPU_CONV3D_BF16_AMX) {
        /* the native bf16 convs (implicit GEMMs): f32 accumulation, y stored in its dtype */
        LOCKED(c, st = infvsr_cpu_op_conv3d_amx(c, &p, a->x->data, a->y->data, a->y->dtype));
    } else if (kern == INFVSR_CPU_CONV3D_BF16_AVX512) {
        LOCKED(c, st = infvsr_cpu_op_conv3d_bf16(c, &p, a->x->data, a->y->data, a->y->dtype));
    } else {
        p.x = act_in(&ac, a->x);
        p.y = act_out(&ac, a->y);
        if (ac.oom) return act_oom(&ac, "conv3d", err);
        if (c->use_ref) infvsr_cpu_ref_conv3d(&p);
        else LOCKED(c, st = infvsr_cpu_op_conv3d(c, &p));
    }
    if (act_finish(&ac, st)) return infvsr_err_set(err, st, "cpu conv3d: out of memory for the column buffer");
    return INFVSR_OK;
}

static enum infvsr_status cpu_resize(struct infvsr_backend * be, enum infvsr_resize_mode mode,
                                     const struct infvsr_tensor * x, struct infvsr_tensor * y, struct infvsr_err * err) {
    struct infvsr_cpu_ctx * c = CTX(be);
    INFVSR_TRY(check_act(x, "x", err));
    INFVSR_TRY(check_act(y, "y", err));
    if ((unsigned)mode >= INFVSR_RESIZE_COUNT) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu resize: unknown mode %d", (int)mode);
    if (x->ndim < 2 || y->ndim != x->ndim) return shape_mismatch(err, "resize", x, y, "need [..., H, W] with the same rank");
    int64_t Hi = x->shape[x->ndim - 2], Wi = x->shape[x->ndim - 1];
    int64_t Ho = y->shape[y->ndim - 2], Wo = y->shape[y->ndim - 1];
    if (Hi <= 0 || Wi <= 0 || Ho <= 0 || Wo <= 0) return shape_mismatch(err, "resize", x, y, "empty plane");
    int64_t P = infvsr_tensor_numel(x) / (Hi * Wi);
    if (infvsr_tensor_numel(y) != P * Ho * Wo) return shape_mismatch(err, "resize", x, y, "leading dims differ");
    INFVSR_TRY(no_alias(y, x, "resize", err));
    if (P == 0) return INFVSR_OK;
    ACT_BEGIN(c);
    const float * xf = act_in(&ac, x);
    float * yf = act_out(&ac, y);
    if (ac.oom) return act_oom(&ac, "resize", err);
    if (c->use_ref) st = infvsr_cpu_ref_resize(mode, xf, P, Hi, Wi, yf, Ho, Wo) ? INFVSR_OK : INFVSR_ERR_NOMEM;
    else LOCKED(c, st = infvsr_cpu_op_resize(c, mode, xf, P, Hi, Wi, yf, Ho, Wo));
    if (act_finish(&ac, st)) return infvsr_err_set(err, st, "cpu resize: out of memory");
    return INFVSR_OK;
}

/* ---- data movement ---- */

static enum infvsr_status cpu_copy(struct infvsr_backend * be, const struct infvsr_copy_args * a,
                                   struct infvsr_err * err) {
    struct infvsr_cpu_ctx * c = CTX(be);
    struct infvsr_copy_plan plan;
    INFVSR_TRY(infvsr_copy_validate("cpu", a, &plan, err));
    INFVSR_TRY(check_host(a->y, "y", err));
    if (a->x) INFVSR_TRY(check_host(a->x, "x", err));
    if (plan.use_m) INFVSR_TRY(check_host(a->m, "m", err));
    if (plan.n == 0) return INFVSR_OK;
    LOCKED(c, infvsr_cpu_op_copy(c, a, &plan));
    return INFVSR_OK;
}

static enum infvsr_status cpu_gather_rows(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                          const struct infvsr_tensor * idx, struct infvsr_tensor * y,
                                          struct infvsr_err * err) {
    struct infvsr_cpu_ctx * c = CTX(be);
    int64_t rows, cols;
    INFVSR_TRY(infvsr_gather_validate("cpu", x, idx, y, &rows, &cols, err));
    INFVSR_TRY(check_host(x, "x", err));
    INFVSR_TRY(check_host(idx, "idx", err));
    INFVSR_TRY(check_host(y, "y", err));
    const int32_t * ix = idx->data;
    int64_t xrows = infvsr_tensor_numel(x) / cols;
    for (int64_t r = 0; r < rows; r++) {
        if (ix[r] < 0 || ix[r] >= xrows) {
            return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "cpu gather_rows: idx '%s'[%lld] = %d outside [0, %lld)",
                                  tname(idx), (long long)r, ix[r], (long long)xrows);
        }
    }
    if (rows == 0) return INFVSR_OK;
    LOCKED(c, infvsr_cpu_op_gather_rows(c, x->data, ix, rows, (size_t)cols * infvsr_dtype_size(x->dtype), y->data));
    return INFVSR_OK;
}

/* ---- backend object ---- */

static void cpu_get_caps(struct infvsr_backend * be, struct infvsr_backend_caps * caps) {
    struct infvsr_cpu_ctx * c = CTX(be);
    snprintf(caps->name, sizeof caps->name, "%s", cpu_name(be));
    snprintf(caps->device, sizeof caps->device, "CPU (f32 AVX2/FMA, bf16 %s), %d threads%s", infvsr_cpu_isa_name(c->isa),
             c->n_threads, c->use_ref ? ", float64 reference ops" : "");
    caps->host_visible = true;
    caps->act_dtype    = c->bf16 ? INFVSR_TYPE_BF16 : INFVSR_TYPE_F32;
    caps->act_f32      = true;
    caps->act_bf16     = true;
}

static void cpu_free(struct infvsr_backend * be);

static enum infvsr_status cpu_weights_imported(struct infvsr_backend * be, struct infvsr_tensor * const * ts, size_t n,
                                               uint64_t * token, struct infvsr_err * err) {
    struct infvsr_cpu_ctx * c = CTX(be);
    enum infvsr_status st;
    LOCKED(c, st = infvsr__wcache_import(c, ts, n, token));
    if (st) return infvsr_err_set(err, st, "cpu: out of memory registering %zu weights", n);
    return INFVSR_OK;
}

static void cpu_weights_released(struct infvsr_backend * be, uint64_t token) {
    struct infvsr_cpu_ctx * c = CTX(be);
    LOCKED(c, infvsr__wcache_release(c, token));
}

static const struct infvsr_backend_i cpu_iface = {
    .name             = cpu_name,
    .get_caps         = cpu_get_caps,
    .last_error       = NULL,
    .free             = cpu_free,
    .tensor_alloc     = cpu_tensor_alloc,
    .tensor_free      = cpu_tensor_free,
    .tensor_set       = cpu_tensor_set,
    .tensor_get       = cpu_tensor_get,
    .synchronize      = NULL,
    .linear           = cpu_linear,
    .matmul           = cpu_matmul,
    .layer_norm       = cpu_layer_norm,
    .rms_norm         = cpu_rms_norm,
    .channel_rms_norm = cpu_channel_rms_norm,
    .modulate         = cpu_modulate,
    .unary            = cpu_unary,
    .add              = cpu_add,
    .add_gated        = cpu_add_gated,
    .affine_clamp     = cpu_affine_clamp,
    .softmax          = cpu_softmax,
    .attention        = cpu_attention,
    .rope             = cpu_rope,
    .conv3d           = cpu_conv3d,
    .resize           = cpu_resize,
    .copy             = cpu_copy,
    .gather_rows      = cpu_gather_rows,
    .weights_imported = cpu_weights_imported,
    .weights_released = cpu_weights_released,
};

struct infvsr_cpu_params infvsr_cpu_default_params(void) {
    return (struct infvsr_cpu_params){ .n_threads = 0, .use_ref = false, .bf16 = false, .isa = -1 };
}

enum infvsr_status infvsr_cpu_backend_init(const struct infvsr_cpu_params * p, struct infvsr_backend ** out) {
    if (!out) return INFVSR_ERR_INVALID_ARG;
    *out = NULL;
    struct infvsr_cpu_params params = p ? *p : infvsr_cpu_default_params();
    struct infvsr_cpu_ctx * c = calloc(1, sizeof *c);
    if (!c) return INFVSR_ERR_NOMEM;
    c->pool = infvsr_threadpool_init(params.n_threads);
    if (!c->pool) {
        free(c);
        return INFVSR_ERR_NOMEM;
    }
    c->n_threads = infvsr_threadpool_n_threads(c->pool);
    c->use_ref   = params.use_ref;
    c->bf16      = params.bf16;
    c->isa       = params.isa < 0 ? infvsr_cpu_isa_detect() : (enum infvsr_cpu_isa)params.isa;
    if (c->isa > infvsr_cpu_isa_detect()) c->isa = infvsr_cpu_isa_detect(); /* never an instruction the CPU lacks */
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->act_mu, NULL);
    c->wcache.budget = infvsr__wcache_default_budget();
    /* BLAS runs from the calling thread only, while our workers sleep: give it the same
     * number of threads so the two never oversubscribe the cores. */
    openblas_set_num_threads(c->n_threads);
    c->be.iface   = &cpu_iface;
    c->be.context = c;
    c->be.mem     = INFVSR_MEM_HOST;
    *out = &c->be;
    return INFVSR_OK;
}

static void cpu_free(struct infvsr_backend * be) {
    struct infvsr_cpu_ctx * c = CTX(be);
    infvsr_threadpool_free(c->pool);
    infvsr__buf_free(&c->panel);
    infvsr__buf_free(&c->col);
    infvsr__buf_free(&c->scratch);
    infvsr__wcache_free(c);
    for (int i = 0; i < c->act_pool_n; i++) free(c->act_pool[i].data);
    pthread_mutex_destroy(&c->act_mu);
    pthread_mutex_destroy(&c->lock);
    free(c);
}
