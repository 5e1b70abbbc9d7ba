/* The batched bf16 matmul on AMX-BF16 tiles: what infvsr_cpu_op_matmul_bf16 runs on the
 * `amx` level (the VDPBF16PS kernel, matmul_bf16.c, on `avx512bf16`). The kernel
 * (matmul_amx_body.h) is compiled here with the real tile instructions, and in
 * tests/ops/test_matmul_amx.c on their exact emulation (amx_tile.h), so machines without
 * AMX (CI) verify the same code; on AMX machines that test also compares the real
 * instructions with the emulation bit for bit. */
#include "amx_tile.h"
#include "matmul_amx_body.h"

enum infvsr_status infvsr_cpu_op_matmul_amx(struct infvsr_cpu_ctx * c, const uint16_t * a, const uint16_t * b,
                                            int64_t B, int64_t M, int64_t K, int64_t N, bool trans_b, float alpha,
                                            void * out, enum infvsr_dtype c_dtype) {
    /* the backend's level is never above the detected one; this keeps any other caller from
     * a tile instruction on a CPU (or OS) without AMX, which would fault */
    if (infvsr_cpu_isa_detect() < INFVSR_CPU_ISA_AMX) return INFVSR_ERR_UNSUPPORTED;
    return mmx_matmul(c, a, b, B, M, K, N, trans_b, alpha, out, c_dtype);
}
