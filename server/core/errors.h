/* The API's error codes and their HTTP statuses: one table, generated from
 * proto/errors.json into errors_gen.h (python3 proto/gen_errors.py). */
#pragma once

#include "errors_gen.h"

enum srv_error {
#define X(e, code, status, desc) SRV_E_##e,
    SRV_ERROR_TABLE(X)
#undef X
    SRV_E_COUNT
};

struct srv_error_info {
    const char * code;
    int          status;
    const char * description;
};

extern const struct srv_error_info srv_errors[SRV_E_COUNT];

static inline const char * srv_error_code(enum srv_error e) { return srv_errors[e].code; }
static inline int srv_error_status(enum srv_error e) { return srv_errors[e].status; }
