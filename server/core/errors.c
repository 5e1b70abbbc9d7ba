/* The error table (see errors.h); its rows come from proto/errors.json. */
#include "errors.h"

const struct srv_error_info srv_errors[SRV_E_COUNT] = {
#define X(e, code, status, desc) [SRV_E_##e] = { code, status, desc },
    SRV_ERROR_TABLE(X)
#undef X
};
