/* 3-D RoPE table of one chunk (MODEL-SPEC §4.4), built on the host in float64.
 *
 * Wan splits a head's D channels as D - 4*(D/6) for time and 2*(D/6) each for height and
 * width (integer division; 128 -> 44, 42, 42 channels = 22, 21, 21 complex pairs), with
 * frequencies w_i = 10000^(-2i/d_axis) per axis. The temporal position is absolute within
 * the scene (start_frame + f), so cached keys keep the rotation of where they were. */
#include <math.h>

#include "dit_internal.h"

void dit_rope_split(int head_dim, int * pairs_t, int * pairs_h, int * pairs_w) {
    int s = 2 * (head_dim / 6);
    *pairs_t = (head_dim - 2 * s) / 2;
    *pairs_h = s / 2;
    *pairs_w = s / 2;
}

/* freqs [N, head_dim/2, 2] = (cos, sin) of the angle of pair p for token n, tokens in
 * frame-major, row, column order. */
void dit_rope_fill(double * freqs, int head_dim, int64_t start_frame, int64_t n_frames, int64_t gh, int64_t gw) {
    int pt, ph, pw;
    dit_rope_split(head_dim, &pt, &ph, &pw);
    double wt[64], wh[64], ww[64]; /* head_dim <= 256 is checked by the session */
    for (int i = 0; i < pt; i++) wt[i] = 1.0 / pow(10000.0, (double)(2 * i) / (double)(2 * pt));
    for (int i = 0; i < ph; i++) wh[i] = 1.0 / pow(10000.0, (double)(2 * i) / (double)(2 * ph));
    for (int i = 0; i < pw; i++) ww[i] = 1.0 / pow(10000.0, (double)(2 * i) / (double)(2 * pw));
    double * p = freqs;
    for (int64_t f = 0; f < n_frames; f++) {
        double tpos = (double)(start_frame + f);
        for (int64_t y = 0; y < gh; y++) {
            for (int64_t x = 0; x < gw; x++) {
                for (int i = 0; i < pt; i++) { double a = tpos * wt[i]; p[0] = cos(a); p[1] = sin(a); p += 2; }
                for (int i = 0; i < ph; i++) { double a = (double)y * wh[i]; p[0] = cos(a); p[1] = sin(a); p += 2; }
                for (int i = 0; i < pw; i++) { double a = (double)x * ww[i]; p[0] = cos(a); p[1] = sin(a); p += 2; }
            }
        }
    }
}
