/* Host tensors with canaries for test_resize_torch (the op-case table has its own
 * guarded backend tensors: backend_ops.h). */
#pragma once

#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ops.h"

#define CANARY_N 16
#define CANARY_BITS 0x7fc0deadu /* a quiet NaN no op produces */

/* A tensor whose storage has CANARY_N guard floats after the data. */
struct tbuf {
    struct infvsr_tensor t;
    void *               mem;
    size_t               n;
};

static inline void tb_canary_fill(struct tbuf * b) {
    size_t esz = infvsr_dtype_size(b->t.dtype);
    char * tail = (char *)b->mem + b->n * esz; /* may be 2-byte aligned: memcpy */
    const uint32_t bits = CANARY_BITS;
    for (int i = 0; i < CANARY_N; i++) memcpy(tail + 4 * i, &bits, 4);
}

static inline bool tb_canary_ok(const struct tbuf * b) {
    size_t esz = infvsr_dtype_size(b->t.dtype);
    const char * tail = (const char *)b->mem + b->n * esz;
    for (int i = 0; i < CANARY_N; i++) {
        uint32_t bits;
        memcpy(&bits, tail + 4 * i, 4);
        if (bits != CANARY_BITS) return false;
    }
    return true;
}

/* New tensor of dtype/shape, zero-filled, canary after it. */
static inline struct tbuf tb_new(const char * name, enum infvsr_dtype dt, int ndim, const int64_t * shape) {
    struct tbuf b;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    b.n   = (size_t)n;
    b.mem = aligned_alloc(64, ((b.n * infvsr_dtype_size(dt) + CANARY_N * 4) + 63) / 64 * 64);
    memset(b.mem, 0, b.n * infvsr_dtype_size(dt));
    infvsr_tensor_view(&b.t, name, dt, ndim, shape, b.mem);
    tb_canary_fill(&b);
    return b;
}

static inline float * tb_f(struct tbuf * b) {
    return (float *)b->mem;
}

/* f32 tensor of uniform(lo, hi) values */
static inline struct tbuf tb_rand(const char * name, int ndim, const int64_t * shape, float lo, float hi, uint64_t seed) {
    struct tbuf b = tb_new(name, INFVSR_TYPE_F32, ndim, shape);
    test_fill_uniform(tb_f(&b), b.n, lo, hi, seed);
    return b;
}

/* Weight tensor of dtype dt holding uniform(lo, hi) values rounded to dt. */
static inline struct tbuf tb_rand_w(const char * name, enum infvsr_dtype dt, int ndim, const int64_t * shape, float lo,
                                    float hi, uint64_t seed) {
    struct tbuf b = tb_new(name, dt, ndim, shape);
    float * tmp = malloc(b.n * sizeof *tmp + 4);
    test_fill_uniform(tmp, b.n, lo, hi, seed);
    infvsr_convert_from_f32(b.mem, dt, tmp, b.n);
    free(tmp);
    return b;
}

static inline void tb_free(struct tbuf * b) {
    free(b->mem);
    b->mem = NULL;
}

#define S1(a) ((const int64_t[]){ a })
#define S2(a, b) ((const int64_t[]){ a, b })
#define S3(a, b, c) ((const int64_t[]){ a, b, c })
#define S4(a, b, c, d) ((const int64_t[]){ a, b, c, d })
#define S5(a, b, c, d, e) ((const int64_t[]){ a, b, c, d, e })
