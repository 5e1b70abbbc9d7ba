/* linear with bf16 activations on AMX-BF16 (TDPBF16PS tiles), and which bf16 linear kernel
 * runs where.
 *
 * Why our own AMX kernel: one AMX unit does 1024 bf16 FLOP per cycle per core, about 20x the
 * f32 FMA rate (issue 18), and the AVX512-BF16 kernel (gemm_bf16.c) reaches about 70% of
 * VDPBF16PS, which is a sixteenth of that. oneDNN (what PyTorch's bf16 matmuls run on AMX)
 * would be a new build dependency, and it is not faster here: on the DiT's GEMMs at 192
 * tokens (2 threads, Sapphire Rapids) PyTorch's oneDNN AMX matmul ran ~700 GFLOP/s, this
 * kernel on weights packed once 1200-1900 GFLOP/s (oneDNN reorders a plain weight on every
 * call; tests/bench/torch_linear_bf16.py against bench_cpu amx). The kernel
 * (gemm_amx_body.h) is compiled here with the real tile instructions, and in
 * tests/ops/test_gemm_amx.c against an exact emulation of them (amx_tile.h), so machines
 * without AMX (CI) verify the same code; on AMX machines the test also compares the real
 * instructions with the emulation and with float64. */
#include "amx_tile.h"
#include "gemm_amx_body.h"

enum infvsr_cpu_linear_bf16_kernel infvsr_cpu_linear_bf16_kernel(const struct infvsr_cpu_ctx * c, int64_t M,
                                                                 int64_t N, int64_t K) {
    if (!infvsr_cpu_linear_bf16_applies(c, M, N, K)) return INFVSR_CPU_LINEAR_BF16_WIDEN;
    return c->isa == INFVSR_CPU_ISA_AMX ? INFVSR_CPU_LINEAR_BF16_AMX : INFVSR_CPU_LINEAR_BF16_AVX512;
}

enum infvsr_status infvsr_cpu_op_linear_amx(struct infvsr_cpu_ctx * c, const uint16_t * x, int64_t M, int64_t K,
                                            struct infvsr_cpu_w w, const uint16_t * packed, int64_t N,
                                            struct infvsr_cpu_w b, enum infvsr_unary_op act, void * y,
                                            enum infvsr_dtype y_dtype) {
    /* the backend's level is never above the detected one; this keeps any other caller from
     * a tile instruction on a CPU (or OS) without AMX, which would fault */
    if (infvsr_cpu_isa_detect() < INFVSR_CPU_ISA_AMX) return INFVSR_ERR_UNSUPPORTED;
    return amx_linear(c, x, M, K, w, packed, N, b, act, y, y_dtype);
}
