/* Placeholder until the device-emulating backend lands: refuses with a clear message. */
#include "backend_impl.h"

enum infvsr_status infvsr_devsim_backend_init(int index, const struct infvsr_backend_opts * opts,
                                              struct infvsr_backend ** out, struct infvsr_err * err) {
    (void)index;
    (void)opts;
    if (out) *out = NULL;
    return infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "backend devsim: not built yet");
}
