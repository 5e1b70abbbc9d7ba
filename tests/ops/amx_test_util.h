/* What the AMX kernels' emulated-tile tests (tests/ops/test_*_amx.c) share: a CPU backend
 * of n threads at the machine's level, the context the kernel bodies take, and a bf16's
 * exact value. Include after the kernel body (it declares the CPU backend's internals). */
#pragma once

#include <stdint.h>
#include <string.h>

#include "check.h"

static inline struct infvsr_backend * amx_test_backend(int n_threads) {
    struct infvsr_cpu_params p = infvsr_cpu_default_params();
    p.n_threads = n_threads;
    struct infvsr_backend * be = NULL;
    INFVSR_ASSERT(infvsr_cpu_backend_init(&p, &be) == INFVSR_OK);
    return be;
}

static inline struct infvsr_cpu_ctx * amx_test_ctx(struct infvsr_backend * be) {
    return be->context;
}

static inline double amx_test_bf16(uint16_t h) {
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
