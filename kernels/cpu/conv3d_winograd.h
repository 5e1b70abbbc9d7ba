/* Winograd paths of the CPU conv3d: F(2x2, 3x3) (kernels/cpu/conv3d_winograd.c) and
 * F(4x4, 3x3) (kernels/cpu/conv3d_winograd4.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "cpu_impl.h"

/* The Winograd tile size for this convolution: 4 (F(4x4, 3x3)), 2 (F(2x2, 3x3)) or 0 (not
 * Winograd: use im2col). Needs a 3x3 spatial kernel (any kt), stride 1 in t, h and w (any
 * spatial padding) and GEMMs large enough (see infvsr__conv3d_winograd_set_min_volume);
 * the tile size follows the number of GEMM columns (conv3d_winograd.c). */
int infvsr__conv3d_winograd_tile(const struct infvsr_cpu_conv * a);
/* infvsr__conv3d_winograd_tile(a) != 0 */
bool infvsr__conv3d_winograd_fits(const struct infvsr_cpu_conv * a);
/* Same contract as infvsr_cpu_op_conv3d (bias included): F(2x2, 3x3) ... */
enum infvsr_status infvsr__conv3d_winograd(struct infvsr_cpu_ctx * c, const struct infvsr_cpu_conv * a);
/* ... and F(4x4, 3x3). */
enum infvsr_status infvsr__conv3d_winograd4(struct infvsr_cpu_ctx * c, const struct infvsr_cpu_conv * a);
/* The V + M block budget in bytes shared by both paths. */
size_t infvsr__conv3d_winograd_block_bytes(void);
/* Test hook: sets the V + M block budget in bytes (0 = the default 64 MiB), returns the
 * previous one. Not thread-safe; only tests call it, between ops. */
size_t infvsr__conv3d_winograd_set_block_bytes(size_t bytes);
/* Test hook: sets the smallest GEMM volume Cout Cin To tiles that uses the Winograd path
 * (default 100^3; 0 = every fitting shape, with F(2x2) unless a tile size is forced),
 * returns the previous one. Not thread-safe. */
double infvsr__conv3d_winograd_set_min_volume(double volume);
/* Test hook: forces tile size 2 or 4 on every shape that takes a Winograd path (0 = the
 * automatic choice), returns the previous setting. Not thread-safe. */
int infvsr__conv3d_winograd_set_tile(int m);
