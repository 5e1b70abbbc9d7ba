/* Winograd paths of the CPU conv3d: F(2x2, 3x3) (kernels/cpu/conv3d_winograd.c) and
 * F(4x4, 3x3) (kernels/cpu/conv3d_winograd4.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

/* Both Winograd paths read a tile row from `n_rows` zero-padded copies of the input rows
 * y0 .. y0 + n_rows - 1 (rows of length row_len; row[k] holds input column k - pad_left):
 * fills columns [k0, k2) of each, with zeros outside the image. */
static inline void infvsr__wino_pad_rows(float * rows, int64_t row_len, int n_rows, const float * src, int64_t h,
                                         int64_t w_in, int64_t pad_left, int64_t y0, int64_t k0, int64_t k2) {
    /* k in [ka, kb) maps to an input column in [0, w_in) */
    int64_t ka = pad_left > k0 ? pad_left : k0, kb = pad_left + w_in < k2 ? pad_left + w_in : k2;
    if (kb < ka) kb = ka;
    for (int rr = 0; rr < n_rows; rr++) {
        float *       row = rows + rr * row_len;
        const int64_t yy  = y0 + rr;
        if (yy < 0 || yy >= h) {
            memset(row + k0, 0, (size_t)(k2 - k0) * sizeof(float));
            continue;
        }
        if (ka > k0) memset(row + k0, 0, (size_t)(ka - k0) * sizeof(float));
        if (kb > ka) memcpy(row + ka, src + yy * w_in + (ka - pad_left), (size_t)(kb - ka) * sizeof(float));
        if (k2 > kb) memset(row + kb, 0, (size_t)(k2 - kb) * sizeof(float));
    }
}
