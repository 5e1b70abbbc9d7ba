/* PySceneDetect 0.6.7.1 ContentDetector + FlashFilter(MERGE), see MODEL-SPEC §2.3 and
 * infvsr/scene.h. Every rounding rule here is OpenCV's or Python's, not ours: the C
 * detector must report the same cuts as the reference on the same frames. */
#include "infvsr/scene.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* OpenCV RGB2HSV_b: fixed point with 12 fractional bits and two division tables built
 * with cvRound (round half to even; no exact .5 occurs for these tables). */
enum { HSV_SHIFT = 12, HSV_HALF = 1 << (HSV_SHIFT - 1), HUE_RANGE = 180 };

static int sdiv_table[256];
static int hdiv_table[256];
static int tables_ready;

static void init_tables(void) {
    if (tables_ready) return; /* idempotent; racing threads write identical values */
    sdiv_table[0] = 0;
    hdiv_table[0] = 0;
    for (int i = 1; i < 256; i++) {
        sdiv_table[i] = (int)lrint((255.0 * (1 << HSV_SHIFT)) / (double)i);
        hdiv_table[i] = (int)lrint(((double)HUE_RANGE * (1 << HSV_SHIFT)) / (6.0 * i));
    }
    tables_ready = 1;
}

/* OpenCV's own formulation: masks instead of branches (the hue case depends on the data
 * and mispredicts on noisy frames) and an arithmetic right shift of a signed int, which
 * C leaves implementation-defined; GCC and Clang define it as flooring, checked below. */
_Static_assert((-1 >> 1) == -1, "signed >> must be an arithmetic (flooring) shift");

void infvsr_rgb_to_hsv_u8(const uint8_t * rgb, size_t npix,
                          uint8_t * h_out, uint8_t * s_out, uint8_t * v_out) {
    init_tables();
    for (size_t i = 0; i < npix; i++) {
        int r = rgb[3 * i + 0], g = rgb[3 * i + 1], b = rgb[3 * i + 2];
        int v = r > g ? r : g;
        v = v > b ? v : b;
        int vmin = r < g ? r : g;
        vmin = vmin < b ? vmin : b;
        int diff = v - vmin;
        int vr = v == r ? -1 : 0;
        int vg = v == g ? -1 : 0;
        /* v == R: G - B;  else v == G: B - R + 2 diff;  else: R - G + 4 diff */
        int h = (vr & (g - b)) + (~vr & ((vg & (b - r + 2 * diff)) + (~vg & (r - g + 4 * diff))));
        h = (h * hdiv_table[diff] + HSV_HALF) >> HSV_SHIFT;
        h += (h >> 31) & HUE_RANGE; /* +180 when negative; result is in 0..179 */
        h_out[i] = (uint8_t)h;
        s_out[i] = (uint8_t)((diff * sdiv_table[v] + HSV_HALF) >> HSV_SHIFT);
        v_out[i] = (uint8_t)v;
    }
}

static uint64_t sum_abs_diff(const uint8_t * a, const uint8_t * b, size_t n) {
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) sum += (uint64_t)(a[i] > b[i] ? a[i] - b[i] : b[i] - a[i]);
    return sum;
}

double infvsr_hsv_score(const uint8_t * const a[3], const uint8_t * const b[3], size_t npix) {
    /* numpy: np.sum(|int32 a - int32 b|) / float(npix), exact integer then one division. */
    double d[3];
    for (int c = 0; c < 3; c++) d[c] = (double)sum_abs_diff(a[c], b[c], npix) / (double)npix;
    /* Python's sum(component * weight) starts at 0 and adds left to right; the edge
     * term is 0.0 * 0.0. Dividing by sum(|weights|) = 3.0. */
    double acc = 0.0;
    acc += d[0] * 1.0;
    acc += d[1] * 1.0;
    acc += d[2] * 1.0;
    acc += 0.0 * 0.0;
    return acc / 3.0;
}

bool infvsr_hsv_reference_changed(const uint8_t * const ref[3], const uint8_t * const cur[3],
                                  size_t npix, double threshold) {
    return infvsr_hsv_score(ref, cur, npix) >= threshold;
}

struct infvsr_scene_detector {
    int     width, height;
    size_t  npix;
    double  threshold;
    int     min_scene_len;
    uint8_t * planes[2][3]; /* [current/previous][h,s,v], swapped each frame */
    int     cur;            /* index of the planes holding the last frame pushed */
    bool    have_prev;
    int64_t expected_frame;
    /* FlashFilter (MERGE) state, names as in PySceneDetect. */
    bool    have_last_above;
    int64_t last_above;
    bool    merge_enabled;
    bool    merge_triggered;
    int64_t merge_start;
};

enum infvsr_status infvsr_scene_detector_create(int width, int height, double threshold,
                                                int min_scene_len,
                                                struct infvsr_scene_detector ** out,
                                                struct infvsr_err * err) {
    *out = NULL;
    if (width <= 0 || height <= 0 || (int64_t)width * height > (int64_t)1 << 31)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "scene detector: bad frame size %dx%d",
                              width, height);
    if (!(threshold > 0.0) || !isfinite(threshold))
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG,
                              "scene detector: threshold must be > 0 (got %g)", threshold);
    if (min_scene_len < 0)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG,
                              "scene detector: min_scene_len must be >= 0 (got %d)", min_scene_len);
    struct infvsr_scene_detector * det = calloc(1, sizeof(*det));
    if (!det) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "scene detector: out of memory");
    det->width = width;
    det->height = height;
    det->npix = (size_t)width * (size_t)height;
    det->threshold = threshold;
    det->min_scene_len = min_scene_len;
    /* One allocation for the 6 planes. */
    uint8_t * mem = malloc(6 * det->npix);
    if (!mem) {
        free(det);
        return infvsr_err_set(err, INFVSR_ERR_NOMEM, "scene detector: out of memory (%zu bytes)",
                              6 * (size_t)width * (size_t)height);
    }
    for (int k = 0; k < 2; k++)
        for (int c = 0; c < 3; c++) det->planes[k][c] = mem + (size_t)(3 * k + c) * det->npix;
    *out = det;
    return INFVSR_OK;
}

void infvsr_scene_detector_destroy(struct infvsr_scene_detector * det) {
    if (!det) return;
    free(det->planes[0][0]);
    free(det);
}

/* FlashFilter.filter() in MERGE mode; returns the cut frame or -1 (MODEL-SPEC §2.3). */
static int64_t flash_filter(struct infvsr_scene_detector * det, int64_t f, bool above) {
    int64_t len = det->min_scene_len;
    if (len <= 0) return above ? f : -1;
    if (!det->have_last_above) {
        det->have_last_above = true;
        det->last_above = f;
    }
    bool min_len_met = (f - det->last_above) >= len; /* before the update below */
    if (above) det->last_above = f;
    if (det->merge_triggered) {
        if (min_len_met && !above && (det->last_above - det->merge_start) >= len) {
            det->merge_triggered = false;
            return det->last_above;
        }
        return -1;
    }
    if (!above) return -1;
    if (min_len_met) {
        det->merge_enabled = true;
        return f;
    }
    if (det->merge_enabled) {
        det->merge_triggered = true;
        det->merge_start = f;
    }
    return -1;
}

enum infvsr_status infvsr_scene_detector_push(struct infvsr_scene_detector * det,
                                              const uint8_t * rgb, int64_t frame_num,
                                              double * score, int64_t * cut,
                                              struct infvsr_err * err) {
    if (score) *score = 0.0;
    if (cut) *cut = -1;
    if (!det || !rgb) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "scene detector: NULL argument");
    if (det->have_prev && frame_num != det->expected_frame)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG,
                              "scene detector: frame %lld pushed, expected %lld",
                              (long long)frame_num, (long long)det->expected_frame);
    int next = det->have_prev ? 1 - det->cur : det->cur;
    uint8_t ** p = det->planes[next];
    infvsr_rgb_to_hsv_u8(rgb, det->npix, p[0], p[1], p[2]);
    double s = 0.0;
    if (det->have_prev) {
        const uint8_t * const prev[3] = { det->planes[det->cur][0], det->planes[det->cur][1],
                                          det->planes[det->cur][2] };
        const uint8_t * const now[3] = { p[0], p[1], p[2] };
        s = infvsr_hsv_score(prev, now, det->npix);
    }
    det->cur = next;
    det->have_prev = true;
    det->expected_frame = frame_num + 1;
    int64_t c = flash_filter(det, frame_num, s >= det->threshold);
    if (score) *score = s;
    if (cut) *cut = c;
    return INFVSR_OK;
}

const uint8_t * infvsr_scene_detector_last_hsv(const struct infvsr_scene_detector * det, int plane) {
    if (!det || !det->have_prev || plane < 0 || plane > 2) return NULL;
    return det->planes[det->cur][plane];
}
