/* The CUDA entry point for builds without CUDA (INFVSR_USE_CUDA OFF): callers get a clear
 * INFVSR_ERR_UNSUPPORTED instead of a link error. */
#include "backend_impl.h"

enum infvsr_status infvsr_cuda_backend_init(int device, enum infvsr_precision precision,
                                            struct infvsr_backend ** out, struct infvsr_err * err) {
    (void)device;
    (void)precision;
    if (out) *out = NULL;
    return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED,
                          "CUDA backend: this binary was built without CUDA (INFVSR_CUDA=OFF or nvcc not found at configure time)");
}
