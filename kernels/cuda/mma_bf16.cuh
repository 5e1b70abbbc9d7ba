/* The one tensor-core instruction our hand-written kernels issue, behind one function:
 *   D (16x8 f32) = A (16x16 bf16, row) . B (16x8 bf16, col) + C (16x8 f32)
 * as `mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32` (sm_80+), warp-collective:
 * every lane passes its fragment registers (PTX ISA 9.7.14.5.8, "Matrix Fragments for
 * mma.m16n8k16 with floating point type") and receives its part of D in d.
 * The kernel-emulation build (INFVSR_CUDA_EMU, kernels/cuda/emu) replaces the inline
 * PTX with an implementation written from that section, so the kernels' fragment
 * indexing is checked on any machine. On nvcc this is exactly the inline asm. */
#pragma once

#include <stdint.h>

__device__ __forceinline__ void cu_mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                                  uint32_t b1) {
#ifdef INFVSR_CUDA_EMU
    ::emu::mma_m16n8k16_bf16(d, a, b0, b1);
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}
