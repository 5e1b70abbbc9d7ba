/* conv3d with bf16 activations on AMX-BF16 tiles (TDPBF16PS), and which bf16 conv3d kernel
 * runs where (infvsr_cpu_conv3d_bf16_kernel).
 *
 * The kernel (conv3d_amx_body.h) is compiled here with the real tile instructions, and in
 * tests/ops/test_conv3d_amx.c against the emulation of them (amx_tile.h), which checks its
 * tiling and edges on machines without AMX (CI); on this Sapphire Rapids the real kernel
 * gave the emulation's bits on every test case.
 *
 * Where each shape runs. On the amx level every shape runs here: measured with bench_cpu
 * conv3d (2 threads, CPU time, alternating rounds, medians of 5, Sapphire Rapids, a shared
 * machine at load 7-13, so +-15%) on the VAE's conv3d shapes at a 64x64 output (latent
 * 16x16, channels 96/192/384), this kernel was faster than both the AVX512-BF16 implicit
 * GEMM (conv3d_bf16.c) and the generic path (widen, f32 Winograd/im2col, round) on every one,
 * as a multiple of the faster of the two:
 *   3x3x3 at 96/192/384 channels (64x64, 32x32, 16x16)   3.4-4.3x (AVX-512 kernel: 6-9x)
 *     (the first two are the Winograd F(4x4) shapes)
 *   3x3x3 384 at 8x8 (1 frame)                            2.4x
 *   stride-2 downsamples, 1x1x1 shortcuts, 3x1x1 time conv 1.8-4.7x
 *   the narrow ends: Cin 3 (first conv), Cout 3 (head),   1.3-4.6x
 *   16 -> 384, 384 -> 32 (32 -> 32 1x1x1: too small to tell, ~0.03 ms)
 * Cin 3 pads its channels to 32 (10x the multiplies) and Cout 3 computes 32 columns, and
 * still win: the measured TDPBF16PS ceiling is ~30x the VDPBF16PS one on this CPU. Winograd is not done in bf16
 * (conv3d_bf16.c says why); against the f32 Winograd F(4x4) the direct form on tiles is
 * 3x faster. What it costs besides the tiles (perf over the bench's shapes): the
 * channels-last input copy ~15%, the transposing epilogue ~10%, packing the weights ~5%;
 * the packing is a third to a half of the 384-channel latent convs, so an imported
 * weight's packing is cached (weight_pack.c): 384->384 at 2x16x16 2.3-3.3 -> 1.8-2.0 ms, at
 * 1x8x8 0.83-1.45 -> 0.42-0.68 ms (bench_cpu conv3d-amx, three runs).
 * Below the amx level: conv3d_bf16.c's rule (the AVX512-BF16 kernel except on the F(4x4)
 * shapes, which stay generic). */
#include "amx_tile.h"
#include "conv3d_amx_body.h"

static uint64_t                           g_amx_calls;
static enum infvsr_cpu_conv3d_bf16_kernel g_force; /* bench hook; GENERIC: the rule decides */

uint64_t infvsr__conv3d_amx_calls(void) {
    return __atomic_load_n(&g_amx_calls, __ATOMIC_RELAXED);
}

size_t infvsr__conv3d_amx_set_xp_bytes(size_t bytes) {
    const size_t old = amxc_xp_bytes;
    amxc_xp_bytes = bytes ? bytes : (size_t)64 << 20;
    return old;
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

bool infvsr__conv3d_amx_pack_weight(struct infvsr_cpu_ctx * c, struct infvsr_cpu_w w, const int64_t shape[5]) {
    const struct infvsr_cpu_conv a = { .w = w, .cout = shape[0], .cin = shape[1], .kt = shape[2], .kh = shape[3],
                                       .kw = shape[4] };
    for (int i = 0; i < 5; i++)
        if (shape[i] <= 0) return true; /* an empty tensor: nothing to pack */
    if (infvsr_cpu_isa_detect() < INFVSR_CPU_ISA_AMX || infvsr_cpu_conv3d_bf16_kernel(c, &a) != INFVSR_CPU_CONV3D_BF16_AMX)
        return true; /* not this kernel's: nothing to pack */
    /* the layout amxc_conv reads: channels padded to whole k tiles, whole column groups */
    const int64_t Cp = (a.cin + AMXC_TK - 1) / AMXC_TK * AMXC_TK, strips = (a.cout + AMXC_NB - 1) / AMXC_NB * (AMXC_NB / 16);
    return infvsr__wcache_conv_amx(c, &a, strips, Cp) != NULL;
}
