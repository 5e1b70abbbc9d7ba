/* Validation of the strided copy op, shared by every backend so that they accept and
 * refuse exactly the same calls: mode/dtype rules, every reachable element inside its
 * tensor (with overflow checks), and the aliasing rule of backend_impl.h. */
#include <string.h>

#include "backend_impl.h"

static bool is_float(enum infvsr_dtype d) {
    return d == INFVSR_TYPE_F32 || d == INFVSR_TYPE_BF16 || d == INFVSR_TYPE_F16;
}

static const char * tname(const struct infvsr_tensor * t) { return t->name[0] ? t->name : "(unnamed)"; }

static const char * mode_name(enum infvsr_copy_mode m) {
    static const char * names[] = { "SET", "ACCUMULATE", "DIVIDE", "U8_TO_MODEL", "U8_TO_UNIT", "MODEL_TO_U8", "FILL" };
    return (unsigned)m < INFVSR_COPY_MODE_COUNT ? names[m] : "?";
}

/* Reachable element range [lo, hi] of a view; false on overflow or a negative stride. */
static bool view_range(const struct infvsr_copy_args * a, int64_t offset, const int64_t * stride, int64_t * hi) {
    int64_t top = offset;
    if (offset < 0) return false;
    for (int d = 0; d < a->ndim; d++) {
        if (stride[d] < 0) return false;
        int64_t step;
        if (__builtin_mul_overflow(a->extent[d] - 1, stride[d], &step)) return false;
        if (__builtin_add_overflow(top, step, &top)) return false;
    }
    *hi = top;
    return true;
}

static enum infvsr_status check_view(const char * be, const struct infvsr_copy_args * a, const char * role,
                                     const struct infvsr_tensor * t, int64_t offset, const int64_t * stride,
                                     int64_t * hi, struct infvsr_err * err) {
    int64_t numel;
    if (!infvsr_shape_numel(t->ndim, t->shape, &numel) || (numel > 0 && !t->data)) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "%s copy: %s tensor '%s' has no storage or a bad shape", be,
                              role, tname(t));
    }
    if (!view_range(a, offset, stride, hi) || *hi >= numel) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG,
                              "%s copy: the %s view (offset %lld) reaches past tensor '%s' (%lld elements) or has a "
                              "negative stride", be, role, (long long)offset, tname(t), (long long)numel);
    }
    return INFVSR_OK;
}

/* Row-major dense over the extent (dims of extent 1 do not matter). */
static bool dense(const struct infvsr_copy_args * a, const int64_t * stride) {
    int64_t want = 1;
    for (int d = a->ndim - 1; d >= 0; d--) {
        if (a->extent[d] == 1) continue;
        if (stride[d] != want) return false;
        want *= a->extent[d];
    }
    return true;
}

static bool same_view(const struct infvsr_copy_args * a, const struct infvsr_tensor * t, int64_t off,
                      const int64_t * stride) {
    if (t->data != a->y->data || t->dtype != a->y->dtype || off != a->y_offset) return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->extent[d] > 1 && stride[d] != a->y_stride[d]) return false;
    return true;
}

static bool bytes_overlap(const struct infvsr_tensor * t, int64_t lo, int64_t hi, const struct infvsr_tensor * y,
                          int64_t ylo, int64_t yhi) {
    uintptr_t a0 = (uintptr_t)t->data + (uintptr_t)lo * infvsr_dtype_size(t->dtype);
    uintptr_t a1 = (uintptr_t)t->data + (uintptr_t)(hi + 1) * infvsr_dtype_size(t->dtype);
    uintptr_t b0 = (uintptr_t)y->data + (uintptr_t)ylo * infvsr_dtype_size(y->dtype);
    uintptr_t b1 = (uintptr_t)y->data + (uintptr_t)(yhi + 1) * infvsr_dtype_size(y->dtype);
    return a0 < b1 && b0 < a1;
}

static enum infvsr_status check_dtypes(const char * be, const struct infvsr_copy_args * a, struct infvsr_err * err) {
    enum infvsr_dtype yd = a->y->dtype, xd = a->x ? a->x->dtype : INFVSR_TYPE_COUNT;
    bool ok;
    switch (a->mode) {
    case INFVSR_COPY_SET:         ok = xd == yd || (is_float(xd) && is_float(yd)); break;
    case INFVSR_COPY_ACCUMULATE:  ok = is_float(xd) && is_float(yd) && (!a->m || is_float(a->m->dtype)); break;
    case INFVSR_COPY_DIVIDE:      ok = is_float(xd) && is_float(yd) && a->m && is_float(a->m->dtype); break;
    case INFVSR_COPY_U8_TO_MODEL:
    case INFVSR_COPY_U8_TO_UNIT:  ok = xd == INFVSR_TYPE_U8 && is_float(yd); break;
    case INFVSR_COPY_MODEL_TO_U8: ok = is_float(xd) && yd == INFVSR_TYPE_U8; break;
    case INFVSR_COPY_FILL:        ok = is_float(yd) || yd == INFVSR_TYPE_F64; break;
    default:
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "%s copy: unknown mode %d", be, (int)a->mode);
    }
    if (!ok) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "%s copy: mode %s does not take x %s%s, m %s, y %s '%s'", be,
                              mode_name(a->mode), a->x ? infvsr_dtype_name(a->x->dtype) : "none",
                              a->mode == INFVSR_COPY_DIVIDE && !a->m ? " (DIVIDE needs m)" : "",
                              a->m ? infvsr_dtype_name(a->m->dtype) : "none", infvsr_dtype_name(yd), tname(a->y));
    }
    return INFVSR_OK;
}

enum infvsr_status infvsr_copy_validate(const char * be, const struct infvsr_copy_args * a,
                                        struct infvsr_copy_plan * plan, struct infvsr_err * err) {
    memset(plan, 0, sizeof *plan);
    if (!a || !a->y) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "%s copy: NULL args or y", be);
    if (a->ndim < 1 || a->ndim > INFVSR_COPY_MAX_DIMS) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "%s copy: ndim %d outside 1..%d", be, a->ndim,
                              INFVSR_COPY_MAX_DIMS);
    }
    if (a->mode != INFVSR_COPY_FILL && !a->x) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "%s copy: x is NULL", be);
    INFVSR_TRY(check_dtypes(be, a, err));
    int64_t n = 1;
    for (int d = 0; d < a->ndim; d++) {
        if (a->extent[d] < 0 || __builtin_mul_overflow(n, a->extent[d], &n)) {
            return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "%s copy: bad extent %lld in dim %d", be,
                                  (long long)a->extent[d], d);
        }
    }
    plan->n = n;
    if (n == 0) return INFVSR_OK;
    int64_t yhi, xhi = 0, mhi = 0;
    INFVSR_TRY(check_view(be, a, "y", a->y, a->y_offset, a->y_stride, &yhi, err));
    for (int d = 0; d < a->ndim; d++) {
        if (a->extent[d] > 1 && a->y_stride[d] == 0) {
            return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "%s copy: y '%s' has stride 0 in dim %d (each element "
                                  "of y must be written once)", be, tname(a->y), d);
        }
    }
    const bool use_m = a->m && (a->mode == INFVSR_COPY_ACCUMULATE || a->mode == INFVSR_COPY_DIVIDE);
    if (a->mode != INFVSR_COPY_FILL) INFVSR_TRY(check_view(be, a, "x", a->x, a->x_offset, a->x_stride, &xhi, err));
    if (use_m) INFVSR_TRY(check_view(be, a, "m", a->m, a->m_offset, a->m_stride, &mhi, err));
    plan->use_m = use_m;
    plan->dense_set = a->mode == INFVSR_COPY_SET && a->x->dtype == a->y->dtype && dense(a, a->x_stride) &&
                      dense(a, a->y_stride);

    /* Writes to y must not change an element of x or m that is still to be read, except in
     * the two patterns every backend can honour: element-wise in place, and memmove. */
    if (a->mode != INFVSR_COPY_FILL && bytes_overlap(a->x, a->x_offset, xhi, a->y, a->y_offset, yhi) &&
        !same_view(a, a->x, a->x_offset, a->x_stride)) {
        if (plan->dense_set) {
            plan->memmove = true;
        } else {
            return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG,
                                  "%s copy: y '%s' overlaps x '%s' in a way that is neither in place nor a dense memmove",
                                  be, tname(a->y), tname(a->x));
        }
    }
    if (use_m && bytes_overlap(a->m, a->m_offset, mhi, a->y, a->y_offset, yhi) &&
        !same_view(a, a->m, a->m_offset, a->m_stride)) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "%s copy: y '%s' overlaps m '%s'", be, tname(a->y),
                              tname(a->m));
    }
    return INFVSR_OK;
}

enum infvsr_status infvsr_gather_validate(const char * be, const struct infvsr_tensor * x,
                                          const struct infvsr_tensor * idx, const struct infvsr_tensor * y,
                                          int64_t * rows, int64_t * cols, struct infvsr_err * err) {
    if (!x || !idx || !y) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "%s gather_rows: NULL tensor", be);
    if (x->dtype != y->dtype || !(is_float(x->dtype) || x->dtype == INFVSR_TYPE_F64)) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "%s gather_rows: x '%s' %s and y '%s' %s must share a float dtype",
                              be, tname(x), infvsr_dtype_name(x->dtype), tname(y), infvsr_dtype_name(y->dtype));
    }
    if (idx->dtype != INFVSR_TYPE_I32) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "%s gather_rows: idx '%s' must be i32, got %s", be, tname(idx),
                              infvsr_dtype_name(idx->dtype));
    }
    int64_t c = x->ndim > 0 ? x->shape[x->ndim - 1] : 1, cy = y->ndim > 0 ? y->shape[y->ndim - 1] : 1;
    int64_t nx = infvsr_tensor_numel(x), ny = infvsr_tensor_numel(y);
    if (c <= 0 || c != cy || nx % c || ny % c) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "%s gather_rows: x '%s' and y '%s' need the same last dim",
                              be, tname(x), tname(y));
    }
    if (infvsr_tensor_numel(idx) != ny / c) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "%s gather_rows: idx '%s' has %lld entries, y has %lld rows",
                              be, tname(idx), (long long)infvsr_tensor_numel(idx), (long long)(ny / c));
    }
    /* Any shared byte, not just the same start: a view of x's storage written while x's
     * rows are read gives a result that depends on the order of the copies. */
    if (ny > 0 && nx > 0 && bytes_overlap(x, 0, nx - 1, y, 0, ny - 1)) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "%s gather_rows: y '%s' must not alias x '%s'", be, tname(y),
                              tname(x));
    }
    *rows = ny / c;
    *cols = c;
    return INFVSR_OK;
}
