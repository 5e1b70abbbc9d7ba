/* Status codes and error messages shared by every layer of infvsr.
 *
 * Recoverable failures return an `enum infvsr_status` (negative = error) and, when the
 * caller passes a `struct infvsr_err *`, a human-readable message naming the file,
 * tensor, offset or value at fault. Error paths never allocate: the message lives in
 * the caller's struct. Passing NULL for the err pointer is always allowed.
 *
 * Programmer errors (a violated precondition inside our own code) use INFVSR_ASSERT,
 * which aborts with file and line. Never assert on bytes from a file, socket or user. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum infvsr_status {
    INFVSR_OK              =  0,
    INFVSR_ERR_INVALID_ARG = -1,
    INFVSR_ERR_NOMEM       = -2,
    INFVSR_ERR_IO          = -3,
    INFVSR_ERR_FORMAT      = -4, /* malformed or unsupported checkpoint or media          */
    INFVSR_ERR_UNSUPPORTED = -5, /* op, dtype or shape not supported by this backend      */
    INFVSR_ERR_DEVICE      = -6, /* CUDA/cuBLAS failure; the worker is now unhealthy      */
    INFVSR_ERR_BUSY        = -7, /* a bounded queue is full                               */
    INFVSR_ERR_CANCELLED   = -8,
    INFVSR_ERR_MODEL       = -9, /* model file does not match the architecture (key/shape) */
};

#define INFVSR_ERR_MSG_MAX 1024 /* room for "missing tensor" hints (top-level entries, nearest keys) */

/* Cancellation hook of long computations (a session's chunk, a DiT step, a VAE call): polled
 * between stages, DiT blocks and VAE layers; when it returns true the computation stops and
 * returns INFVSR_ERR_CANCELLED. Called on the computing thread, so it must be cheap and
 * thread-safe towards whoever requests the cancel (typically an atomic load). */
typedef bool (*infvsr_abort_cb)(void * user);

struct infvsr_err {
    enum infvsr_status status;
    char               msg[INFVSR_ERR_MSG_MAX];
};

const char * infvsr_status_str(enum infvsr_status st);

/* Records `st` and a printf-style message in `err` (if non-NULL); returns `st` so that
 * callers can write `return infvsr_err_set(err, INFVSR_ERR_FORMAT, "...", ...);`. */
enum infvsr_status infvsr_err_set(struct infvsr_err * err, enum infvsr_status st,
                                  const char * fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to an existing message (used to add the file name or key path as
 * an error travels up). No-op when err is NULL. */
void infvsr_err_prefix(struct infvsr_err * err, const char * fmt, ...)
    __attribute__((format(printf, 2, 3)));

void infvsr_err_clear(struct infvsr_err * err);

_Noreturn void infvsr_abort(const char * file, int line, const char * expr);

#define INFVSR_ASSERT(x) \
    do { if (!(x)) infvsr_abort(__FILE__, __LINE__, #x); } while (0)

/* Propagates a failure: evaluates `expr` (an enum infvsr_status) once and returns it from
 * the enclosing function when it is not INFVSR_OK. The one early-return macro of the code
 * base; functions that must release something on failure use `if ((st = ...)) goto fail;`. */
#define INFVSR_TRY(expr)                                  \
    do {                                                  \
        enum infvsr_status infvsr_try_st_ = (expr);       \
        if (infvsr_try_st_ != INFVSR_OK) return infvsr_try_st_; \
    } while (0)

#ifdef __cplusplus
}
#endif
