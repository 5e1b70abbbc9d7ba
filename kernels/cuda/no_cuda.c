/* The CUDA entry points of kernels/ops.h for builds without CUDA (INFVSR_USE_CUDA OFF):
 * callers get a clear INFVSR_ERR_UNSUPPORTED instead of a link error. Writes the message
 * directly so this file depends on nothing but the headers. */
#include <stdio.h>

#include "ops.h"

enum infvsr_status infvsr_cuda_backend_init(int device, struct infvsr_backend ** out,
                                            struct infvsr_err * err) {
    (void)device;
    if (out) *out = NULL;
    if (err) {
        err->status = INFVSR_ERR_UNSUPPORTED;
        snprintf(err->msg, sizeof err->msg, "CUDA backend: built without CUDA (INFVSR_CUDA=OFF "
                 "or nvcc not found at configure time)");
    }
    return INFVSR_ERR_UNSUPPORTED;
}

void infvsr_cuda_backend_free(struct infvsr_backend * be) {
    (void)be;
}
