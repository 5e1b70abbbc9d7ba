/* Winograd F(2x2, 3x3) path of the CPU conv3d (kernels/cpu/conv3d_winograd.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "cpu_impl.h"

/* True when the Winograd path handles this convolution: 3x3 spatial kernel (any kt),
 * stride 1 in t, h and w, any spatial padding, and GEMMs large enough (see
 * infvsr__conv3d_winograd_set_min_volume). */
bool infvsr__conv3d_winograd_fits(const struct infvsr_cpu_conv * a);
/* Same contract as infvsr_cpu_op_conv3d (bias included). */
enum infvsr_status infvsr__conv3d_winograd(struct infvsr_cpu_ctx * c, const struct infvsr_cpu_conv * a);
/* Test hook: sets the V + M block budget in bytes (0 = the default 64 MiB), returns the
 * previous one. Not thread-safe; only tests call it, between ops. */
size_t infvsr__conv3d_winograd_set_block_bytes(size_t bytes);
/* Test hook: sets the smallest GEMM volume Cout Cin To tiles that uses the Winograd path
 * (default 100^3; 0 = every fitting shape), returns the previous one. Not thread-safe. */
double infvsr__conv3d_winograd_set_min_volume(double volume);
