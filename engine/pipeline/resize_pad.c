/* Pixel-level steps of a chunk around the model: u8 -> model range, padding, and the
 * writer's quantisation. The bicubic upscale itself is the backend's resize op. */
#include <string.h>

#include "session_internal.h"

void infvsr__lr_to_model(const uint8_t * rgb, int h, int w, int t, int L, float * dst) {
    size_t plane = (size_t)h * w;
    for (int c = 0; c < 3; c++) {
        float * d = dst + ((size_t)c * L + t) * plane;
        const uint8_t * s = rgb + c;
        for (size_t i = 0; i < plane; i++) {
            /* Three separate f32 roundings, as torch does x / 255 * 2 - 1 on an f32 tensor. */
            float v = (float)s[3 * i] / 255.0f;
            v = v * 2.0f;
            d[i] = v - 1.0f;
        }
    }
}

void infvsr__pad_replicate(const float * src, int L, int sh, int sw, float * dst, int Lp, int ph, int pw) {
    for (int c = 0; c < 3; c++) {
        for (int t = 0; t < Lp; t++) {
            const float * sf = src + ((size_t)c * L + (t < L ? t : L - 1)) * sh * sw;
            float *       df = dst + ((size_t)c * Lp + t) * ph * pw;
            for (int y = 0; y < ph; y++) {
                const float * sr = sf + (size_t)(y < sh ? y : sh - 1) * sw;
                float *       dr = df + (size_t)y * pw;
                memcpy(dr, sr, (size_t)sw * sizeof *dr);
                for (int x = sw; x < pw; x++) dr[x] = sr[sw - 1];
            }
        }
    }
}

void infvsr__quantise_frame(const float * dec, int Lp, int ph, int pw, int t, int sh, int sw, uint8_t * rgb) {
    for (int c = 0; c < 3; c++) {
        const float * df = dec + ((size_t)c * Lp + t) * ph * pw;
        for (int y = 0; y < sh; y++) {
            const float * dr = df + (size_t)y * pw;
            uint8_t *     o  = rgb + (size_t)y * sw * 3 + c;
            for (int x = 0; x < sw; x++) {
                float v = (dr[x] + 1.0f) * 127.5f;
                v = v >= 0.0f ? (v <= 255.0f ? v : 255.0f) : 0.0f; /* NaN -> 0 */
                o[3 * x] = (uint8_t)v; /* truncation, as numpy's astype(uint8) after clip */
            }
        }
    }
}
