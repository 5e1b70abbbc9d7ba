/* conv3d with bf16 activations on AMX-BF16 tiles (TDPBF16PS), and which bf16 conv3d kernel
 * runs where (infvsr_cpu_conv3d_bf16_kernel).
 *
 * The kernel (conv3d_amx_body.h) is compiled here with the real tile instructions, and in
 * tests/ops/test_conv3d_amx.c against the emulation of them (amx_tile.h), which checks its
 * tiling and edges on machines without AMX (CI).
 *
 * Where each shape runs: MEASURED_BELOW */
#include "amx_tile.h"
#include "conv3d_amx_body.h"

static uint64_t                           g_amx_calls;
static enum infvsr_cpu_conv3d_bf16_kernel g_force; /* bench hook; GENERIC: the rule decides */

uint64_t infvsr__conv3d_amx_calls(void) {
    return __atomic_load_n(&g_amx_calls, __ATOMIC_RELAXED);
}

enum infvsr_cpu_conv3d_bf16_kernel infvsr__conv3d_bf16_force(enum infvsr_cpu_conv3d_bf16_kernel k) {
    const enum infvsr_cpu_conv3d_bf16_kernel old = g_force;
    g_force = k;
    return old;
}

enum infvsr_cpu_conv3d_bf16_kernel infvsr_cpu_conv3d_bf16_kernel(const struct infvsr_cpu_ctx * c,
                                                                 const struct infvsr_cpu_conv * a) {
    const int64_t taps = a->kt * a->kh * a->kw;
    if (c->isa >= INFVSR_CPU_ISA_AMX && taps * (a->cin + 31) < ((int64_t)1 << 24) &&
        (g_force == INFVSR_CPU_CONV3D_BF16_AMX || g_force == INFVSR_CPU_CONV3D_BF16_GENERIC))
        return INFVSR_CPU_CONV3D_BF16_AMX;
    if (g_force == INFVSR_CPU_CONV3D_BF16_AVX512 && c->isa >= INFVSR_CPU_ISA_AVX512BF16 &&
        taps * (a->cin + 1) < ((int64_t)1 << 24))
        return INFVSR_CPU_CONV3D_BF16_AVX512;
    return infvsr_cpu_conv3d_bf16_applies(c, a) ? INFVSR_CPU_CONV3D_BF16_AVX512 : INFVSR_CPU_CONV3D_BF16_GENERIC;
}

enum infvsr_status infvsr_cpu_op_conv3d_amx(struct infvsr_cpu_ctx * c, const struct infvsr_cpu_conv * a,
                                            const uint16_t * x, void * y, enum infvsr_dtype y_dtype) {
    /* the backend's level is never above the detected one; this keeps any other caller from
     * a tile instruction on a CPU (or OS) without AMX, which would fault */
    if (infvsr_cpu_isa_detect() < INFVSR_CPU_ISA_AMX) return INFVSR_ERR_UNSUPPORTED;
    const enum infvsr_status st = amxc_conv(c, a, x, y, y_dtype, true);
    if (st == INFVSR_OK) __atomic_fetch_add(&g_amx_calls, 1, __ATOMIC_RELAXED);
    return st;
}
