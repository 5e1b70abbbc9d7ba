/* The bf16 attention on AMX-BF16 tiles: what infvsr_cpu_op_attention_bf16 runs on the `amx`
 * level (the AVX512-BF16 kernel set, attention_bf16.c, on `avx512bf16`).
 *
 * Why: VDPBF16PS peaks near 200 GFLOP/s on 2 Sapphire Rapids threads, TDPBF16PS near 5900,
 * and with the GEMMs on AMX the VDPBF16PS attention was ~15% of a bf16 DiT chunk. The
 * kernel set (attention_amx_body.h) is compiled here with the real tile instructions, and
 * in tests/ops/test_attention_amx.c on their exact emulation (amx_tile.h), so machines
 * without AMX (CI) verify the same code; on AMX machines that test also compares the real
 * instructions with the emulation bit for bit. */
#include "amx_tile.h"
#include "attention_amx_body.h"

enum infvsr_status infvsr_cpu_op_attention_amx(struct infvsr_cpu_ctx * c, const struct infvsr_cpu_attn * a) {
    /* the backend's level is never above the detected one; this keeps any other caller from
     * a tile instruction on a CPU (or OS) without AMX, which would fault */
    if (infvsr_cpu_isa_detect() < INFVSR_CPU_ISA_AMX) return INFVSR_ERR_UNSUPPORTED;
    return atx_attention(c, a);
}
