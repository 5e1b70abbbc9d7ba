/* Spatial tiling grid and blend ramps of MODEL-SPEC.md section 5.8. */
#include "vae/vae_internal.h"

int vae_tile_spans(int n, int tile, int stride, struct vae_span * spans, int max) {
    int count = 0;
    for (int s = 0; s < n; s += stride) {
        /* Skip a start whose previous tile already reached the end. */
        if (s - stride >= 0 && s - stride + tile >= n) continue;
        if (count == max) return -1;
        spans[count].start = s;
        spans[count].end   = s + tile < n ? s + tile : n;
        count++;
    }
    return count;
}

float vae_ramp(int i, int len, bool at_start, bool at_end, int bw) {
    float r = 1.0f;
    /* Same order as the reference: the start ramp is written first, the end ramp last. */
    if (!at_start && i < bw) r = (float)(i + 1) / (float)bw;
    if (!at_end && i >= len - bw) r = (float)(len - i) / (float)bw;
    return r;
}
