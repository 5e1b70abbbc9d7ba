/* Host-side argument checks and the failure record shared by every op of the CUDA
 * backend (declared in cuda_common.cuh). Their own file, free of cuBLASLt and the pool,
 * so that the kernel-emulation build (kernels/cuda/emu) compiles them unchanged. */
#include "cuda_common.cuh"

#include <string.h>

enum infvsr_status cu_fail(struct cuda_ctx * c, struct infvsr_err * err, const char * what,
                           const char * file, int line, const char * detail) {
    if (!c->failed) {
        c->failed = true;
        const char * base = strstr(file, "kernels/cuda/");
        snprintf(c->first_error, sizeof c->first_error, "%s at %s:%d: %s", what,
                 base ? base : file, line, detail ? detail : "?");
    }
    return infvsr_err_set(err, INFVSR_ERR_DEVICE, "CUDA backend: %s", c->first_error);
}

enum infvsr_status cu_check_tensor(const struct infvsr_tensor * t, const char * op,
                                   const char * role, bool weight_dtype_ok,
                                   struct infvsr_err * err) {
    if (!t) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "%s: %s is NULL", op, role);
    if (t->mem != INFVSR_MEM_DEVICE || !t->data)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG,
                      "%s: %s ('%s') is not an allocated device tensor of the CUDA backend",
                      op, role, t->name);
    bool ok = weight_dtype_ok ? cu_is_weight(t->dtype) : cu_is_act(t->dtype);
    if (!ok)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "%s: %s ('%s') has dtype %s; expected %s",
                      op, role, t->name, infvsr_dtype_name(t->dtype),
                      weight_dtype_ok ? "f32, bf16 or f16" : "f32 or bf16");
    if (t->ndim < 0 || t->ndim > INFVSR_MAX_DIMS)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "%s: %s has invalid rank %d", op, role, t->ndim);
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] < 0)
            return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "%s: %s has negative dim %d", op, role, i);
    return INFVSR_OK;
}

enum infvsr_status cu_check_same(const struct infvsr_tensor * a, const struct infvsr_tensor * y,
                                 const char * op, struct infvsr_err * err) {
    if (infvsr_tensor_numel(a) != infvsr_tensor_numel(y))
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "%s: '%s' has %lld elements, '%s' has %lld", op,
                      a->name, (long long)infvsr_tensor_numel(a), y->name, (long long)infvsr_tensor_numel(y));
    if (a->data == y->data && a->dtype != y->dtype)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG,
                      "%s: in-place call with different dtypes (%s -> %s)", op,
                      infvsr_dtype_name(a->dtype), infvsr_dtype_name(y->dtype));
    return INFVSR_OK;
}
