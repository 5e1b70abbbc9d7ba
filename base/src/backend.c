/* The public backend API (infvsr/backend.h) on top of the vtable, and the copy helpers of
 * ops.h. Creation by name lives in kernels/registry.c, which knows the backends; this
 * file only dispatches, so base/ stays below kernels/. */
#include <stdlib.h>
#include <string.h>

#include "ops.h"

struct infvsr_backend_opts infvsr_backend_default_opts(void) {
    struct infvsr_backend_opts o;
    memset(&o, 0, sizeof o);
    o.precision = INFVSR_PRECISION_AUTO;
    return o;
}

const char * infvsr_precision_name(enum infvsr_precision p) {
    switch (p) {
    case INFVSR_PRECISION_AUTO: return "auto";
    case INFVSR_PRECISION_F32:  return "f32";
    case INFVSR_PRECISION_BF16: return "bf16";
    }
    return NULL;
}

int infvsr_precision_from_name(const char * name) {
    if (!name) return -1;
    if (strcmp(name, "auto") == 0) return INFVSR_PRECISION_AUTO;
    if (strcmp(name, "f32") == 0) return INFVSR_PRECISION_F32;
    if (strcmp(name, "bf16") == 0) return INFVSR_PRECISION_BF16;
    return -1;
}

void infvsr_backend_free(struct infvsr_backend * be) {
    if (be) be->iface->free(be);
}

void infvsr_backend_get_caps(struct infvsr_backend * be, struct infvsr_backend_caps * caps) {
    memset(caps, 0, sizeof *caps);
    be->iface->get_caps(be, caps);
}

const char * infvsr_backend_name(struct infvsr_backend * be) { return be->iface->name(be); }

const char * infvsr_backend_last_error(struct infvsr_backend * be) {
    const char * e = be->iface->last_error ? be->iface->last_error(be) : NULL;
    return e ? e : "";
}

bool infvsr_backend_healthy(struct infvsr_backend * be) { return infvsr_backend_last_error(be)[0] == '\0'; }

enum infvsr_status infvsr_backend_tensor_alloc(struct infvsr_backend * be, struct infvsr_tensor * t,
                                               struct infvsr_err * err) {
    if (!be || !t) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "tensor_alloc: NULL backend or tensor");
    return be->iface->tensor_alloc(be, t, err);
}

void infvsr_backend_tensor_free(struct infvsr_backend * be, struct infvsr_tensor * t) {
    if (!t) return;
    if (be && t->data && t->owns_data) be->iface->tensor_free(be, t);
    memset(t, 0, sizeof *t);
}

enum infvsr_status infvsr_backend_tensor_set(struct infvsr_backend * be, struct infvsr_tensor * t, const void * src,
                                             size_t offset, size_t nbytes, struct infvsr_err * err) {
    if (!be || !t) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "tensor_set: NULL backend or tensor");
    enum infvsr_status st = be->iface->tensor_set(be, t, src, offset, nbytes, err);
    if (st == INFVSR_OK) be->traffic.bytes_to_device += nbytes;
    return st;
}

enum infvsr_status infvsr_backend_tensor_get(struct infvsr_backend * be, const struct infvsr_tensor * t, void * dst,
                                             size_t offset, size_t nbytes, struct infvsr_err * err) {
    if (!be || !t) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "tensor_get: NULL backend or tensor");
    enum infvsr_status st = be->iface->tensor_get(be, t, dst, offset, nbytes, err);
    if (st == INFVSR_OK) be->traffic.bytes_from_device += nbytes;
    return st;
}

enum infvsr_status infvsr_backend_synchronize(struct infvsr_backend * be, struct infvsr_err * err) {
    if (!be) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "synchronize: NULL backend");
    if (!be->iface->synchronize) return INFVSR_OK;
    return be->iface->synchronize(be, err);
}

enum infvsr_status infvsr_backend_weights_imported(struct infvsr_backend * be, struct infvsr_tensor * const * ts,
                                                   size_t n, uint64_t * token, struct infvsr_err * err) {
    *token = 0;
    if (!be || !be->iface->weights_imported || n == 0) return INFVSR_OK;
    return be->iface->weights_imported(be, ts, n, token, err);
}

void infvsr_backend_weights_released(struct infvsr_backend * be, uint64_t token) {
    if (be && token && be->iface->weights_released) be->iface->weights_released(be, token);
}

void infvsr_backend_get_traffic(struct infvsr_backend * be, struct infvsr_backend_traffic * out) {
    *out = be->traffic;
}

static bool is_float(enum infvsr_dtype d) {
    return d == INFVSR_TYPE_F32 || d == INFVSR_TYPE_BF16 || d == INFVSR_TYPE_F16;
}

enum infvsr_status infvsr_backend_upload(struct infvsr_backend * be, const struct infvsr_tensor * host,
                                         enum infvsr_dtype dtype, struct infvsr_tensor * out, struct infvsr_err * err) {
    if (!be || !host || !out || host->mem != INFVSR_MEM_HOST) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "upload: needs a backend and a host tensor");
    }
    if (dtype == INFVSR_TYPE_COUNT) dtype = host->dtype;
    if (dtype != host->dtype && !(is_float(dtype) && is_float(host->dtype))) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "upload: cannot convert '%s' from %s to %s", host->name,
                              infvsr_dtype_name(host->dtype), infvsr_dtype_name(dtype));
    }
    infvsr_tensor_setup(out, host->name, dtype, host->ndim, host->shape);
    INFVSR_TRY(infvsr_backend_tensor_alloc(be, out, err));
    size_t n = (size_t)infvsr_tensor_numel(host), bytes = infvsr_tensor_nbytes(out);
    const void * src = host->data;
    void * tmp = NULL;
    if (dtype != host->dtype && n > 0) {
        float * f = malloc(n * sizeof *f);
        tmp = malloc(bytes);
        if (!f || !tmp) {
            free(f);
            free(tmp);
            infvsr_backend_tensor_free(be, out);
            return infvsr_err_set(err, INFVSR_ERR_NOMEM, "upload: out of memory for '%s'", host->name);
        }
        infvsr_convert_to_f32(f, host->data, host->dtype, n);
        infvsr_convert_from_f32(tmp, dtype, f, n);
        free(f);
        src = tmp;
    }
    enum infvsr_status st = bytes ? infvsr_backend_tensor_set(be, out, src, 0, bytes, err) : INFVSR_OK;
    free(tmp);
    if (st != INFVSR_OK) infvsr_backend_tensor_free(be, out);
    return st;
}

enum infvsr_status infvsr_backend_download_f32(struct infvsr_backend * be, const struct infvsr_tensor * dev,
                                               struct infvsr_tensor * out, struct infvsr_err * err) {
    if (!be || !dev || !out || !is_float(dev->dtype)) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "download: needs a backend and a float tensor");
    }
    if (infvsr_tensor_alloc(out, dev->name, INFVSR_TYPE_F32, dev->ndim, dev->shape) != INFVSR_OK) {
        return infvsr_err_set(err, INFVSR_ERR_NOMEM, "download: out of memory for '%s'", dev->name);
    }
    size_t n = (size_t)infvsr_tensor_numel(dev), bytes = infvsr_tensor_nbytes(dev);
    void * buf = dev->dtype == INFVSR_TYPE_F32 ? out->data : malloc(bytes ? bytes : 1);
    enum infvsr_status st = buf ? INFVSR_OK : infvsr_err_set(err, INFVSR_ERR_NOMEM, "download: out of memory");
    if (st == INFVSR_OK && bytes) st = infvsr_backend_tensor_get(be, dev, buf, 0, bytes, err);
    if (st == INFVSR_OK) st = infvsr_backend_synchronize(be, err);
    if (st == INFVSR_OK && buf != out->data) infvsr_convert_to_f32(out->data, buf, dev->dtype, n);
    if (buf != out->data) free(buf);
    if (st != INFVSR_OK) infvsr_tensor_release(out);
    return st;
}

/* ---- copy helpers (ops.h) ---- */

enum infvsr_status infvsr_op_copy_range(struct infvsr_backend * be, const struct infvsr_tensor * x, int64_t x_off,
                                        struct infvsr_tensor * y, int64_t y_off, int64_t n, struct infvsr_err * err) {
    if (n == 0) return INFVSR_OK;
    struct infvsr_copy_args a = infvsr_copy_args_init(INFVSR_COPY_SET, 1);
    a.extent[0]   = n;
    a.x           = x;
    a.x_offset    = x_off;
    a.x_stride[0] = 1;
    a.y           = y;
    a.y_offset    = y_off;
    a.y_stride[0] = 1;
    return infvsr_op_copy(be, &a, err);
}

enum infvsr_status infvsr_op_convert(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                     struct infvsr_tensor * y, struct infvsr_err * err) {
    if (!x) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "convert: x is NULL");
    int64_t n = infvsr_tensor_numel(x);
    if (!y || infvsr_tensor_numel(y) != n) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "convert: '%s' has %lld elements, '%s' %lld", x->name,
                              (long long)n, y ? y->name : "NULL", y ? (long long)infvsr_tensor_numel(y) : 0LL);
    }
    return infvsr_op_copy_range(be, x, 0, y, 0, n, err);
}

enum infvsr_status infvsr_op_fill(struct infvsr_backend * be, struct infvsr_tensor * y, float value,
                                  struct infvsr_err * err) {
    int64_t n = infvsr_tensor_numel(y);
    if (n == 0) return INFVSR_OK;
    struct infvsr_copy_args a = infvsr_copy_args_init(INFVSR_COPY_FILL, 1);
    a.extent[0]   = n;
    a.y           = y;
    a.y_stride[0] = 1;
    a.alpha       = value;
    return infvsr_op_copy(be, &a, err);
}
