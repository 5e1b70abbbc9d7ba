/* CPU instruction sets the bf16 kernels can use, detected once at backend init.
 *
 *   AMX        AMX-BF16 tiles (TDPBF16PS) + AVX512-BF16: Sapphire Rapids and newer Xeons
 *   AVX512BF16 AVX-512 F/BW/VL + AVX512-BF16 (VDPBF16PS): Cooper Lake, Zen 4 and newer
 *   AVX2       AVX2 + FMA + F16C: the build's baseline (x86-64-v3); bf16 activations are
 *              widened to f32 and run on the f32 kernels
 *
 * The f32 kernels are the same on every level (AVX2/FMA, OpenBLAS); the level only picks
 * the bf16 kernels. The build targets x86-64-v3, so AVX-512 code is compiled per function
 * with target attributes and called only when the level says the CPU and the OS run it. */
#pragma once

#include <stdbool.h>

#include "infvsr/status.h"

enum infvsr_cpu_isa {
    INFVSR_CPU_ISA_AVX2 = 0,
    INFVSR_CPU_ISA_AVX512BF16,
    INFVSR_CPU_ISA_AMX,
};

/* "avx2", "avx512bf16", "amx". */
const char * infvsr_cpu_isa_name(enum infvsr_cpu_isa isa);

/* The best level this CPU and OS run (cpuid + xgetbv; AMX also asks Linux for the tile
 * state, arch_prctl(ARCH_REQ_XCOMP_PERM), which a process must do before its first tile
 * instruction). Detected once per process. */
enum infvsr_cpu_isa infvsr_cpu_isa_detect(void);

/* The level a backend should use: `request` (NULL or "" or "auto": the environment
 * variable INFVSR_CPU_ISA, else the detected best). A named level this machine lacks is
 * INFVSR_ERR_UNSUPPORTED and an unknown name INFVSR_ERR_INVALID_ARG, both with a message
 * in err, so a forced path never runs an instruction the CPU does not have (no SIGILL). */
enum infvsr_status infvsr_cpu_isa_select(const char * request, enum infvsr_cpu_isa * out, struct infvsr_err * err);
