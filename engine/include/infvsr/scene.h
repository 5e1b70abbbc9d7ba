/* Scene detection: a C port of PySceneDetect 0.6.7.1 ContentDetector with the defaults the
 * InfVSR reference uses (MODEL-SPEC §2.3): OpenCV's integer 8-bit HSV, per-frame score
 * (dH + dS + dV) / 3 in float64 against the previous frame, `score >= threshold`, and the
 * FlashFilter in MERGE mode with length min_scene_len.
 *
 *   struct infvsr_scene_detector * det = NULL;
 *   infvsr_scene_detector_create(w, h, 27.0, 15, &det, &err);
 *   for each frame f:  infvsr_scene_detector_push(det, rgb, f, &score, &cut, &err);
 *                      if (cut >= 0) ... a cut starts at frame `cut` (<= f)
 *   infvsr_scene_detector_destroy(det);
 *
 * Frames are RGB u8, shape (H, W, 3), rows contiguous. Memory is O(W*H) and does not grow
 * with the number of frames. Not thread-safe: one detector per stream. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "infvsr/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define INFVSR_SCENE_THRESHOLD_DEFAULT     27.0
#define INFVSR_SCENE_MIN_SCENE_LEN_DEFAULT 15

/* OpenCV COLOR_BGR2HSV (8-bit, hue range 180) of `npix` RGB pixels into three planes.
 * Bit-exact with cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV). */
void infvsr_rgb_to_hsv_u8(const uint8_t * rgb, size_t npix,
                          uint8_t * h, uint8_t * s, uint8_t * v);

/* Content score between two HSV images of `npix` pixels each (planes h, s, v), exactly as
 * ContentDetector computes it: ((dH + dS) + dV) / 3 with each d = sum|a-b| / npix. */
double infvsr_hsv_score(const uint8_t * const a[3], const uint8_t * const b[3], size_t npix);

/* The "reference comparison" of MODEL-SPEC §2.2 step 6: a fresh detector with
 * min_scene_len 0 fed frame 0 = reference and frame 1 = current reports a cut, i.e.
 * score(reference, current) >= threshold. Both are HSV planes. */
bool infvsr_hsv_reference_changed(const uint8_t * const ref[3], const uint8_t * const cur[3],
                                  size_t npix, double threshold);

struct infvsr_scene_detector;

/* threshold > 0, min_scene_len >= 0 (0 disables the flash filter). */
enum infvsr_status infvsr_scene_detector_create(int width, int height, double threshold,
                                                int min_scene_len,
                                                struct infvsr_scene_detector ** out,
                                                struct infvsr_err * err);
void infvsr_scene_detector_destroy(struct infvsr_scene_detector * det);

/* Feeds frame number `frame_num` (must increase by one per call after the first). Writes
 * its score (0.0 for the first frame) and the frame number of a cut reported by this
 * call, or -1. ContentDetector reports at most one cut per frame; the cut can name an
 * earlier frame (MERGE mode reports a delayed cut at the last above-threshold frame). */
enum infvsr_status infvsr_scene_detector_push(struct infvsr_scene_detector * det,
                                              const uint8_t * rgb, int64_t frame_num,
                                              double * score, int64_t * cut,
                                              struct infvsr_err * err);

/* The HSV planes of the last frame pushed (valid until the next push), or NULL. */
const uint8_t * infvsr_scene_detector_last_hsv(const struct infvsr_scene_detector * det, int plane);

#ifdef __cplusplus
}
#endif
