/* The pieces of the CUDA backend's host side that the emulated ops call but that live
 * in files not compiled for emulation (backend.cu: the pool and cuBLASLt): temporaries
 * come from the host heap (256-byte aligned, as the pool hands out). */
#include "cuda_common.cuh"

#include <stdlib.h>

enum infvsr_status cu_scratch(struct cuda_ctx * c, size_t nbytes, void ** out, struct infvsr_err * err) {
    (void)c;
    void * p = nullptr;
    if (posix_memalign(&p, 256, nbytes ? nbytes : 1) != 0)
        return infvsr_err_set(err, INFVSR_ERR_NOMEM, "CUDA backend (emulated): no memory for a %zu-byte temporary",
                              nbytes);
    memset(p, 0xff, nbytes ? nbytes : 1); /* device memory is not zeroed: NaN until written */
    *out = p;
    return INFVSR_OK;
}

void cu_scratch_free(struct cuda_ctx * c, void * p) {
    (void)c;
    free(p);
}
