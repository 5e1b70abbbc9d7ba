/* Per-axis tap tables of the CPU resampler (kernels/cpu/resize.c), exposed for tests. */
#pragma once

#include <stdint.h>

#include "ops.h"

/* Most taps one output sample can have on an axis resized from `in` to `out`
 * (torch's max_interp_size: ceil(support) * 2 + 1; 1 for nearest). */
int infvsr_cpu_resize_max_taps(enum infvsr_resize_mode mode, int64_t in, int64_t out);

/* Taps of output sample i: first input index in *xmin, weights in w[0..n), returns n.
 * Computed in f32 exactly as PyTorch's CPU antialias path (MODEL-SPEC §3). */
int infvsr_cpu_resize_taps(enum infvsr_resize_mode mode, int64_t in, int64_t out, int64_t i, int64_t * xmin,
                           float * w);
