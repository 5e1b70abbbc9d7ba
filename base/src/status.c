#include "infvsr/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char * infvsr_status_str(enum infvsr_status st) {
    switch (st) {
        case INFVSR_OK:              return "ok";
        case INFVSR_ERR_INVALID_ARG: return "invalid argument";
        case INFVSR_ERR_NOMEM:       return "out of memory";
        case INFVSR_ERR_IO:          return "i/o error";
        case INFVSR_ERR_FORMAT:      return "malformed or unsupported format";
        case INFVSR_ERR_UNSUPPORTED: return "unsupported";
        case INFVSR_ERR_DEVICE:      return "device error";
        case INFVSR_ERR_BUSY:        return "busy";
        case INFVSR_ERR_CANCELLED:   return "cancelled";
        case INFVSR_ERR_MODEL:       return "model mismatch";
    }
    return "unknown status";
}

enum infvsr_status infvsr_err_set(struct infvsr_err * err, enum infvsr_status st,
                                  const char * fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = st;
    }
    return st;
}

void infvsr_err_prefix(struct infvsr_err * err, const char * fmt, ...) {
    if (!err) return;
    char prefix[INFVSR_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* Room for both parts; the result is cut to the message size. */
    char joined[2 * INFVSR_ERR_MSG_MAX + 4];
    snprintf(joined, sizeof joined, "%s: %s", prefix, err->msg);
    size_t n = strlen(joined);
    if (n >= sizeof err->msg) n = sizeof err->msg - 1;
    memcpy(err->msg, joined, n);
    err->msg[n] = '\0';
}

void infvsr_err_clear(struct infvsr_err * err) {
    if (!err) return;
    err->status = INFVSR_OK;
    err->msg[0] = '\0';
}

void infvsr_abort(const char * file, int line, const char * expr) {
    fprintf(stderr, "infvsr: %s:%d: assertion failed: %s\n", file, line, expr);
    abort();
}
