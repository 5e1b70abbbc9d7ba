/* RGB24 -> planar YUV (BT.601, limited range), the conversion the media writer feeds the
 * encoder with. It reproduces what the ffmpeg CLI does for an rgb24 pipe encoded as
 * yuv420p / yuv444p (swscale, SWS_BICUBIC, untagged -> BT.601 limited; MODEL-SPEC §2.6)
 * at a fraction of swscale's cost (it is the largest per-frame cost of the daemon after
 * x264 itself; 1280x720 4:2:0: ~0.4 ms vs ~2.8 ms):
 *   coefficients  the BT.601 matrix in its 3-decimal form, limited range, Q15 (swscale's);
 *   Y, 4:4:4 U/V  per pixel, rounded to Q6 and then to an integer as swscale does: these
 *                 planes are byte-identical to swscale's (tested);
 *   4:2:0 U/V     from the sum of each horizontal pixel pair (chroma sited between the two
 *                 columns, as swscale's RGB input does) kept at Q7, then a vertical 2:1
 *                 bicubic (Keys a = -0.6, swscale's default) 8-tap filter centred between
 *                 rows 2j and 2j+1, edge rows replicated, Q12 taps, rounded once. swscale
 *                 truncates each tap's product instead, so it is off the exactly rounded
 *                 value for ~9% of these samples (ours < 1%); the two differ by at most 1.
 * All integer arithmetic: the AVX2 and the scalar paths give identical bytes (tested).
 * Reads exactly width*3 bytes per row (no over-read), writes exactly the plane widths. */
#ifndef INFVSR_RGB_TO_YUV_H
#define INFVSR_RGB_TO_YUV_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of scratch memory infvsr_rgb24_to_yuv420p needs for frames `width` wide. */
size_t infvsr_rgb_to_yuv420p_scratch_bytes(int width);

/* width and height must be even and > 0; scratch holds ..._scratch_bytes(width) bytes,
 * aligned to 32. */
void infvsr_rgb24_to_yuv420p(const uint8_t * rgb, ptrdiff_t rgb_stride, int width, int height, uint8_t * y,
                             ptrdiff_t y_stride, uint8_t * u, ptrdiff_t u_stride, uint8_t * v, ptrdiff_t v_stride,
                             void * scratch);

void infvsr_rgb24_to_yuv444p(const uint8_t * rgb, ptrdiff_t rgb_stride, int width, int height, uint8_t * y,
                             ptrdiff_t y_stride, uint8_t * u, ptrdiff_t u_stride, uint8_t * v, ptrdiff_t v_stride);

/* Tests only: 0 forces the portable scalar code, 1 (the default) uses AVX2 where the
 * build has it. Not thread safe; set it before converting. */
void infvsr_rgb_to_yuv_use_simd(int on);

#endif
