/* Throughput of the scene detector and the chunk scheduler on synthetic 1280x720 frames
 * of random noise, the worst case for the hue branches (not a ctest; numbers for docs
 * and reports):  bench_scene [width height frames] */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "infvsr/chunker.h"
#include "infvsr/scene.h"

/* CPU time of this process: on a shared, loaded machine wall time says little. */
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char ** argv) {
    int w = argc > 3 ? atoi(argv[1]) : 1280, h = argc > 3 ? atoi(argv[2]) : 720;
    int frames = argc > 3 ? atoi(argv[3]) : 120;
    size_t bytes = (size_t)w * h * 3;
    uint8_t * src = malloc(bytes * 2);
    uint64_t rng = 1;
    for (size_t i = 0; i < bytes * 2; i++) src[i] = (uint8_t)test_rng_next(&rng);

    struct infvsr_scene_detector * det = NULL;
    if (infvsr_scene_detector_create(w, h, 27.0, 15, &det, NULL) != INFVSR_OK) return 1;
    double t0 = now_s();
    for (int f = 0; f < frames; f++) infvsr_scene_detector_push(det, src + (size_t)(f & 1) * bytes, f, NULL, NULL, NULL);
    double det_ms = (now_s() - t0) * 1e3 / frames;
    infvsr_scene_detector_destroy(det);

    struct infvsr_chunker_config cfg = infvsr_chunker_config_default(w, h);
    struct infvsr_chunker * ch = NULL;
    if (infvsr_chunker_create(&cfg, &ch, NULL) != INFVSR_OK) return 1;
    t0 = now_s();
    int chunks = 0;
    for (int f = 0; f < frames; f++) {
        uint8_t * fr = malloc(bytes);
        memcpy(fr, src + (size_t)(f & 1) * bytes, bytes);
        infvsr_chunker_push(ch, fr, NULL);
        struct infvsr_chunk c;
        while (infvsr_chunker_pop(ch, &c)) { chunks++; infvsr_chunk_release(&c); }
    }
    infvsr_chunker_finish(ch, NULL);
    struct infvsr_chunk c;
    while (infvsr_chunker_pop(ch, &c)) { chunks++; infvsr_chunk_release(&c); }
    double ch_ms = (now_s() - t0) * 1e3 / frames;
    infvsr_chunker_destroy(ch);
    printf("%dx%d, %d frames (CPU time, one thread): detector %.2f ms/frame, chunker (detector + copy + reference checks) %.2f ms/frame, "
           "%d chunks\n", w, h, frames, det_ms, ch_ms, chunks);
    free(src);
    return 0;
}
