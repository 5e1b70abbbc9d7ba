/* bench_visual RAM DAPE CONFIG CASE N_THREADS REPEATS: loads the visual encoder, prepares the
 * `frame` of CASE (safetensors) and times REPEATS full encodes (prepare + Swin + image_proj);
 * prints one line "c_encode_s median=... min=... load_s=..." for tests/bench/bench_visual.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "infvsr/model_config.h"
#include "infvsr/visual.h"
#include "infvsr/weights.h"
#include "ops.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void * a, const void * b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char ** argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s RAM DAPE CONFIG CASE N_THREADS REPEATS\n", argv[0]);
        return 2;
    }
    int n_threads = atoi(argv[5]), repeats = atoi(argv[6]);
    if (repeats < 1 || repeats > 100) repeats = 3;
    struct infvsr_err err = { 0 };
    struct infvsr_model_config cfg;
    struct infvsr_weights * ram = NULL, * dape = NULL, * cse = NULL;
    struct infvsr_backend * be = NULL;
    struct infvsr_visual * v = NULL;
    struct infvsr_cpu_params p = infvsr_cpu_default_params();
    p.n_threads = n_threads;
    double t0 = now_s();
    if (infvsr_model_config_load(argv[3], &cfg, &err) || infvsr_weights_open(argv[1], &ram, &err) ||
        infvsr_weights_open(argv[2], &dape, &err) || infvsr_weights_open(argv[4], &cse, &err) ||
        infvsr_cpu_backend_init(&p, &be) || infvsr_visual_load(ram, dape, &cfg.visual, be, &v, &err)) {
        fprintf(stderr, "bench_visual: %s\n", err.msg);
        return 1;
    }
    double load_s = now_s() - t0;
    const struct infvsr_tensor * frame = infvsr_weights_find(cse, "frame");
    struct infvsr_tensor img = { 0 }, ctx = { 0 };
    int64_t is[3] = { 3, infvsr_visual_img_size(v), infvsr_visual_img_size(v) };
    int64_t cs[2] = { infvsr_visual_n_tokens(v), infvsr_visual_out_dim(v) };
    if (!frame || infvsr_tensor_alloc(&img, "image", INFVSR_TYPE_F32, 3, is) ||
        infvsr_tensor_alloc(&ctx, "context", INFVSR_TYPE_F32, 2, cs)) {
        fprintf(stderr, "bench_visual: no frame in %s or out of memory\n", argv[4]);
        return 1;
    }
    double times[100];
    for (int i = 0; i < repeats; i++) {
        double t = now_s();
        if (infvsr_visual_prepare_reference(v, frame, &img, &err) || infvsr_visual_encode(v, &img, NULL, &ctx, &err)) {
            fprintf(stderr, "bench_visual: %s\n", err.msg);
            return 1;
        }
        times[i] = now_s() - t;
    }
    qsort(times, (size_t)repeats, sizeof times[0], cmp_double);
    printf("c_encode_s median=%.4f min=%.4f load_s=%.3f threads=%d repeats=%d\n", times[repeats / 2], times[0],
           load_s, n_threads, repeats);
    infvsr_tensor_release(&img);
    infvsr_tensor_release(&ctx);
    infvsr_visual_free(v);
    infvsr_backend_free(be);
    infvsr_weights_close(ram);
    infvsr_weights_close(dape);
    infvsr_weights_close(cse);
    return 0;
}
