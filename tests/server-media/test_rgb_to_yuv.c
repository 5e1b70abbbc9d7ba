/* The media writer's RGB24 -> YUV converter (server/media/rgb_to_yuv.c):
 *  - against the definition computed here in double precision (BT.601 3-decimal matrix,
 *    limited range; 4:2:0 chroma = pixel-pair mean, then the exact Keys a = -0.6 2:1
 *    vertical filter, replicated edges): every sample within 1, at least 98% the nearest
 *    integer, at every size down to 2x2;
 *  - against swscale configured as the ffmpeg CLI converts an rgb24 pipe (SWS_BICUBIC,
 *    BT.601 limited), the conversion the reference pipeline's output goes through, on
 *    frames of 16x16 and up: luma and 4:4:4 chroma identical, 4:2:0 chroma within one
 *    code value and mostly identical (swscale's vertical filter truncates each tap: it is
 *    off the nearest integer for ~9% of 4:2:0 chroma samples, ours for < 1%; on frames
 *    under 8 rows it is far off, and those are not compared);
 *  - AVX2 and scalar paths byte-identical; exact-size buffers (ASan catches any over-read
 *    or over-write); grey stays grey, black and white hit 16 and 235.
 *   test_rgb_to_yuv            the checks
 *   test_rgb_to_yuv --bench    also prints ms per 1280x720 frame, ours vs swscale */
#include <libavutil/frame.h>
#include <libavutil/mem.h>
#include <libswscale/swscale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rgb_to_yuv.h"

static int failures;
#define CHECK(cond, ...)                                                                                 \
    do {                                                                                                 \
        if (!(cond)) {                                                                                   \
            failures++;                                                                                  \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                  \
            printf(__VA_ARGS__);                                                                         \
            printf("\n");                                                                                \
        }                                                                                                \
    } while (0)

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t next_u32(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

enum pattern { NOISE, SCENE, GREY };

/* Exactly w*3*h bytes (no padding: an over-read is an ASan error). */
static uint8_t * make_rgb(int w, int h, enum pattern p) {
    uint8_t * rgb = malloc((size_t)w * 3 * h);
    for (int yy = 0; yy < h; yy++)
        for (int x = 0; x < w; x++) {
            uint8_t * px = rgb + ((size_t)yy * w + x) * 3;
            if (p == NOISE) {
                uint32_t r = next_u32();
                px[0] = (uint8_t)r, px[1] = (uint8_t)(r >> 8), px[2] = (uint8_t)(r >> 16);
            } else if (p == GREY) {
                px[0] = px[1] = px[2] = (uint8_t)((x * 7 + yy * 3) & 255);
            } else { /* gradients, colour bars, a disc with a hard edge, mild noise */
                double fx = (double)x / w, fy = (double)yy / h;
                int r = (int)(255 * fx), g = (int)(255 * fy), b = (int)(255 * (1 - fx) * fy);
                if (((int)(fx * 8)) % 2 && fy > 0.7) r = 235, g = 16, b = 128;
                double dx = fx - 0.5, dy = fy - 0.4;
                if (dx * dx + dy * dy < 0.04) r = 250, g = 240, b = 20;
                int n = (int)(next_u32() % 7) - 3;
                px[0] = (uint8_t)(r + n < 0 ? 0 : r + n > 255 ? 255 : r + n);
                px[1] = (uint8_t)(g + n < 0 ? 0 : g + n > 255 ? 255 : g + n);
                px[2] = (uint8_t)(b + n < 0 ? 0 : b + n > 255 ? 255 : b + n);
            }
        }
    return rgb;
}

struct planes {
    uint8_t * p[3];
    int       w[3], h[3];
};

static struct planes alloc_planes(int w, int h, int is420) {
    struct planes pl;
    for (int i = 0; i < 3; i++) {
        pl.w[i] = i && is420 ? w / 2 : w;
        pl.h[i] = i && is420 ? h / 2 : h;
        pl.p[i] = malloc((size_t)pl.w[i] * pl.h[i]); /* exact: an over-write is an ASan error */
    }
    return pl;
}

static void free_planes(struct planes * pl) {
    for (int i = 0; i < 3; i++) free(pl->p[i]);
}

static void ours(const uint8_t * rgb, int w, int h, int is420, struct planes * pl) {
    if (is420) {
        void * scratch = malloc(infvsr_rgb_to_yuv420p_scratch_bytes(w));
        infvsr_rgb24_to_yuv420p(rgb, (ptrdiff_t)w * 3, w, h, pl->p[0], w, pl->p[1], w / 2, pl->p[2], w / 2, scratch);
        free(scratch);
    } else {
        infvsr_rgb24_to_yuv444p(rgb, (ptrdiff_t)w * 3, w, h, pl->p[0], w, pl->p[1], w, pl->p[2], w);
    }
}

/* swscale as the media writer used it before (and as the ffmpeg CLI does). */
static struct SwsContext * ref_ctx(int w, int h, int is420) {
    struct SwsContext * s = sws_getContext(w, h, AV_PIX_FMT_RGB24, w, h, is420 ? AV_PIX_FMT_YUV420P : AV_PIX_FMT_YUV444P,
                                           SWS_BICUBIC, NULL, NULL, NULL);
    const int * bt601 = sws_getCoefficients(SWS_CS_DEFAULT);
    sws_setColorspaceDetails(s, bt601, 0, bt601, 0, 0, 1 << 16, 1 << 16);
    return s;
}

static void reference(struct SwsContext * s, const uint8_t * rgb, int w, int h, AVFrame * f) {
    int stride = (w * 3 + 63) & ~63; /* swscale reads past the row end: give it padded rows */
    uint8_t * pad = av_mallocz((size_t)stride * (h + 1));
    for (int y = 0; y < h; y++) memcpy(pad + (size_t)y * stride, rgb + (size_t)y * w * 3, (size_t)w * 3);
    const uint8_t * src[4] = { pad, NULL, NULL, NULL };
    int ss[4] = { stride, 0, 0, 0 };
    sws_scale(s, src, ss, 0, h, f->data, f->linesize);
    av_free(pad);
}

/* Compares our planes with swscale's: max |diff| <= 1; luma and 4:4:4 chroma identical,
 * at least `min_equal` of 4:2:0 chroma. */
static void compare_with_swscale(int w, int h, int is420, enum pattern p, double min_equal) {
    static const char * names[] = { "noise", "scene", "grey" };
    uint8_t * rgb = make_rgb(w, h, p);
    struct planes pl = alloc_planes(w, h, is420);
    ours(rgb, w, h, is420, &pl);
    AVFrame * f = av_frame_alloc();
    f->format = is420 ? AV_PIX_FMT_YUV420P : AV_PIX_FMT_YUV444P;
    f->width = w, f->height = h;
    av_frame_get_buffer(f, 0);
    struct SwsContext * s = ref_ctx(w, h, is420);
    reference(s, rgb, w, h, f);
    for (int i = 0; i < 3; i++) {
        long equal = 0, n = (long)pl.w[i] * pl.h[i];
        int maxd = 0;
        for (int y = 0; y < pl.h[i]; y++)
            for (int x = 0; x < pl.w[i]; x++) {
                int d = abs((int)pl.p[i][(size_t)y * pl.w[i] + x] - (int)f->data[i][(size_t)y * f->linesize[i] + x]);
                equal += d == 0;
                maxd = d > maxd ? d : maxd;
            }
        double fr = (double)equal / (double)n;
        printf("%4dx%-4d %s %-5s plane %c: max |diff| %d, identical %.4f%%\n", w, h, is420 ? "420" : "444",
               names[p], "YUV"[i], maxd, 100 * fr);
        CHECK(maxd <= 1, "%dx%d %s plane %d: max diff %d", w, h, names[p], i, maxd);
        double want = i == 0 || !is420 ? 1.0 : min_equal;
        CHECK(fr >= want, "%dx%d %s plane %d: only %.4f%% identical (want >= %.2f%%)", w, h, names[p], i, 100 * fr,
              100 * want);
    }
    sws_freeContext(s);
    av_frame_free(&f);
    free_planes(&pl);
    free(rgb);
}

/* The definition in double precision. */
static double exact_sample(const uint8_t * rgb, int w, int h, int is420, int plane, int x, int yy) {
    static const double k[3][3] = { { 0.299, 0.587, 0.114 }, { -0.169, -0.331, 0.5 }, { 0.5, -0.419, -0.081 } };
    const double scale = plane ? 224.0 / 255.0 : 219.0 / 255.0, offset = plane ? 128 : 16;
    if (!is420 || plane == 0) {
        const uint8_t * px = rgb + ((size_t)yy * w + x) * 3;
        return offset + scale * (k[plane][0] * px[0] + k[plane][1] * px[1] + k[plane][2] * px[2]);
    }
    /* Keys cubic, a = -0.6, at the distances of the 8 source rows from the chroma row's
     * centre (between rows 2y and 2y+1) in output-row units, normalised (sum 2 -> 1). */
    double acc = 0;
    for (int t = 0; t < 8; t++) {
        double d = fabs((t - 3.5) / 2), a = -0.6;
        double wt = d < 1 ? (a + 2) * d * d * d - (a + 3) * d * d + 1 : a * d * d * d - 5 * a * d * d + 8 * a * d - 4 * a;
        int r = 2 * yy - 3 + t;
        r = r < 0 ? 0 : r > h - 1 ? h - 1 : r;
        const uint8_t * px = rgb + ((size_t)r * w + 2 * x) * 3;
        double pair = 0;
        for (int c = 0; c < 3; c++) pair += k[plane][c] * (px[c] + px[3 + c]) / 2;
        acc += wt / 2 * pair;
    }
    return offset + scale * acc;
}

static void compare_with_definition(int w, int h, int is420, enum pattern p) {
    uint8_t * rgb = make_rgb(w, h, p);
    struct planes pl = alloc_planes(w, h, is420);
    ours(rgb, w, h, is420, &pl);
    for (int i = 0; i < 3; i++) {
        long nearest = 0, n = (long)pl.w[i] * pl.h[i];
        double maxe = 0;
        for (int y = 0; y < pl.h[i]; y++)
            for (int x = 0; x < pl.w[i]; x++) {
                double ex = exact_sample(rgb, w, h, is420, i, x, y);
                ex = ex < 0 ? 0 : ex > 255 ? 255 : ex;
                double e = fabs(pl.p[i][(size_t)y * pl.w[i] + x] - ex);
                nearest += e <= 0.5 + 1e-9;
                maxe = e > maxe ? e : maxe;
            }
        CHECK(maxe < 1, "%dx%d %s plane %d: |ours - exact| up to %.3f", w, h, is420 ? "420" : "444", i, maxe);
        if (n >= 10000)
            printf("%4dx%-4d %s %-5s plane %c: max |ours - exact| %.3f, nearest integer %.3f%%\n", w, h,
                   is420 ? "420" : "444", p == NOISE ? "noise" : "scene", "YUV"[i], maxe, 100.0 * nearest / n);
        CHECK(nearest >= 0.98 * (double)n - 2, "%dx%d %s plane %d: only %ld of %ld samples are the nearest integer", w,
              h, is420 ? "420" : "444", i, nearest, n);
    }
    free_planes(&pl);
    free(rgb);
}

static void simd_equals_scalar(int w, int h, int is420) {
    uint8_t * rgb = make_rgb(w, h, NOISE);
    struct planes a = alloc_planes(w, h, is420), b = alloc_planes(w, h, is420);
    infvsr_rgb_to_yuv_use_simd(1);
    ours(rgb, w, h, is420, &a);
    infvsr_rgb_to_yuv_use_simd(0);
    ours(rgb, w, h, is420, &b);
    infvsr_rgb_to_yuv_use_simd(1);
    for (int i = 0; i < 3; i++)
        CHECK(memcmp(a.p[i], b.p[i], (size_t)a.w[i] * a.h[i]) == 0, "%dx%d %s plane %d: AVX2 != scalar", w, h,
              is420 ? "420" : "444", i);
    free_planes(&a);
    free_planes(&b);
    free(rgb);
}

static void grey_stays_grey(void) {
    int w = 64, h = 8;
    uint8_t * rgb = make_rgb(w, h, GREY);
    for (int is420 = 0; is420 < 2; is420++) {
        struct planes pl = alloc_planes(w, h, is420);
        ours(rgb, w, h, is420, &pl);
        int bad = 0;
        for (int i = 1; i < 3; i++)
            for (int k = 0; k < pl.w[i] * pl.h[i]; k++) bad += pl.p[i][k] != 128;
        for (int k = 0; k < w * h; k++) /* Y within 1 of 16 + g*219/255 (swscale's coefficients sum 1/32768 short) */
            bad += fabs(pl.p[0][k] - (16 + rgb[k * 3] * 219.0 / 255.0)) >= 1;
        CHECK(bad == 0, "grey %s: %d samples off (want |Y - (16 + g*219/255)| < 1, U = V = 128)", is420 ? "420" : "444", bad);
        free_planes(&pl);
    }
    /* black and white hit the range ends exactly */
    uint8_t bw[6 * 2] = { 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255 };
    uint8_t y[4], u[1], v[1];
    void * scratch = malloc(infvsr_rgb_to_yuv420p_scratch_bytes(2));
    infvsr_rgb24_to_yuv420p(bw, 6, 2, 2, y, 2, u, 1, v, 1, scratch);
    free(scratch);
    CHECK(y[0] == 16 && y[1] == 16 && y[2] == 235 && y[3] == 235 && u[0] == 128 && v[0] == 128,
          "black/white: Y %d %d %d %d U %d V %d", y[0], y[1], y[2], y[3], u[0], v[0]);
    free(rgb);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void bench(void) {
    int w = 1280, h = 720, reps = 30;
    uint8_t * rgb = make_rgb(w, h, SCENE);
    struct planes pl = alloc_planes(w, h, 1);
    void * scratch = malloc(infvsr_rgb_to_yuv420p_scratch_bytes(w));
    AVFrame * f = av_frame_alloc();
    f->format = AV_PIX_FMT_YUV420P, f->width = w, f->height = h;
    av_frame_get_buffer(f, 0);
    struct SwsContext * s = ref_ctx(w, h, 1);
    double t_ours[5], t_sws[5];
    for (int r = 0; r < 5; r++) { /* alternate, keep the best of each (least disturbed) */
        double t0 = now();
        for (int i = 0; i < reps; i++)
            infvsr_rgb24_to_yuv420p(rgb, w * 3, w, h, pl.p[0], w, pl.p[1], w / 2, pl.p[2], w / 2, scratch);
        t_ours[r] = (now() - t0) / reps;
        t0 = now();
        for (int i = 0; i < reps; i++) reference(s, rgb, w, h, f);
        t_sws[r] = (now() - t0) / reps;
    }
    double bo = t_ours[0], bs = t_sws[0];
    for (int r = 1; r < 5; r++) bo = t_ours[r] < bo ? t_ours[r] : bo, bs = t_sws[r] < bs ? t_sws[r] : bs;
    printf("bench 1280x720 rgb24->yuv420p: ours %.3f ms, swscale bicubic (incl. padding copy) %.3f ms, %.1fx\n",
           1e3 * bo, 1e3 * bs, bs / bo);
    sws_freeContext(s);
    av_frame_free(&f);
    free(scratch);
    free_planes(&pl);
    free(rgb);
}

int main(int argc, char ** argv) {
    /* sizes exercise the 16-pixel AVX2 blocks, their scalar tails and tiny frames */
    static const int sizes420[][2] = { { 1280, 720 }, { 640, 360 }, { 130, 66 }, { 34, 16 }, { 18, 4 }, { 2, 2 }, { 16, 2 } };
    static const int sizes444[][2] = { { 161, 121 }, { 640, 360 }, { 17, 3 }, { 1, 1 } };
    for (int is420 = 1; is420 >= 0; is420--) {
        const int(*sizes)[2] = is420 ? sizes420 : sizes444;
        size_t n = is420 ? sizeof sizes420 / sizeof sizes420[0] : sizeof sizes444 / sizeof sizes444[0];
        for (size_t i = 0; i < n; i++) {
            int w = sizes[i][0], h = sizes[i][1];
            compare_with_definition(w, h, is420, NOISE);
            compare_with_definition(w, h, is420, SCENE);
            simd_equals_scalar(w, h, is420);
            if (w >= 16 && h >= 16) {
                compare_with_swscale(w, h, is420, NOISE, is420 ? 0.85 : 0.95);
                compare_with_swscale(w, h, is420, SCENE, is420 ? 0.85 : 0.95);
            }
        }
    }
    grey_stays_grey();
    if (argc > 1 && strcmp(argv[1], "--bench") == 0) bench();
    printf("%s (%d failure%s)\n", failures ? "FAILED" : "ok", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
