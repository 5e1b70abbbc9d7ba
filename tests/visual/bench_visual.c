/* bench_visual RAM DAPE CONFIG CASE N_THREADS REPEATS [DEVICE [PRECISION]]: loads the visual
 * encoder on DEVICE (default cpu), uploads the `frame` of CASE (safetensors) once and times REPEATS
 * full encodes (prepare + Swin + image_proj, synchronized); prints one line
 * "c_encode_s median=... min=... load_s=... resident_mb=... cpu_s=..." (cpu_s: the median
 * process CPU time of one encode, the measure to compare on a shared machine) for tests/bench/bench_visual.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "infvsr/model_config.h"
#include "infvsr/visual.h"
#include "infvsr/weights.h"
#include "infvsr/backend.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds of the whole process (all threads): on a shared machine the work done, which
 * wall time is not (the pool sleeps on a condition variable, it never spins). */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void * a, const void * b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char ** argv) {
    if (argc < 7 || argc > 9) {
        fprintf(stderr, "usage: %s RAM DAPE CONFIG CASE N_THREADS REPEATS [DEVICE [PRECISION]]\n", argv[0]);
        return 2;
    }
    int n_threads = atoi(argv[5]), repeats = atoi(argv[6]);
    if (repeats < 1 || repeats > 100) repeats = 3;
    struct infvsr_err err = { 0 };
    struct infvsr_model_config cfg;
    struct infvsr_weights * ram = NULL, * dape = NULL, * cse = NULL;
    struct infvsr_backend * be = NULL;
    struct infvsr_visual * v = NULL;
    struct infvsr_backend_opts bo = infvsr_backend_default_opts();
    bo.n_threads = n_threads;
    if (argc > 8 && infvsr_precision_from_name(argv[8]) >= 0) bo.precision = infvsr_precision_from_name(argv[8]);
    double t0 = now_s();
    if (infvsr_model_config_load(argv[3], &cfg, &err) || infvsr_weights_open(argv[1], &ram, &err) ||
        infvsr_weights_open(argv[2], &dape, &err) || infvsr_weights_open(argv[4], &cse, &err) ||
        infvsr_backend_init_by_name(argc > 7 ? argv[7] : "cpu", &bo, &be, &err) ||
        infvsr_visual_load(ram, dape, &cfg.visual, be, &v, &err)) {
        fprintf(stderr, "bench_visual: %s\n", err.msg);
        return 1;
    }
    double load_s = now_s() - t0;
    const struct infvsr_tensor * frame = infvsr_weights_find(cse, "frame");
    struct infvsr_tensor img = { 0 }, ctx = { 0 }, dframe = { 0 };
    int64_t is[3] = { 3, infvsr_visual_img_size(v), infvsr_visual_img_size(v) };
    int64_t cs[2] = { infvsr_visual_n_tokens(v), infvsr_visual_out_dim(v) };
    infvsr_tensor_setup(&img, "image", INFVSR_TYPE_F32, 3, is);
    infvsr_tensor_setup(&ctx, "context", INFVSR_TYPE_F32, 2, cs);
    if (!frame || infvsr_backend_tensor_alloc(be, &img, &err) || infvsr_backend_tensor_alloc(be, &ctx, &err) ||
        infvsr_backend_upload(be, frame, INFVSR_TYPE_COUNT, &dframe, &err)) {
        fprintf(stderr, "bench_visual: no frame in %s or out of memory: %s\n", argv[4], err.msg);
        return 1;
    }
    double times[100], cpu[100];
    for (int i = 0; i < repeats; i++) {
        double t = now_s(), tc = cpu_s();
        if (infvsr_visual_prepare_reference(v, &dframe, &img, &err) || infvsr_visual_encode(v, &img, NULL, &ctx, &err) ||
            infvsr_backend_synchronize(be, &err)) {
            fprintf(stderr, "bench_visual: %s\n", err.msg);
            return 1;
        }
        times[i] = now_s() - t;
        cpu[i]   = cpu_s() - tc;
    }
    qsort(times, (size_t)repeats, sizeof times[0], cmp_double);
    qsort(cpu, (size_t)repeats, sizeof cpu[0], cmp_double);
    printf("c_encode_s median=%.4f min=%.4f load_s=%.3f threads=%d repeats=%d resident_mb=%.1f cpu_s=%.4f\n",
           times[repeats / 2], times[0], load_s, n_threads, repeats, (double)infvsr_visual_resident_bytes(v) / (1 << 20),
           cpu[repeats / 2]);
    infvsr_backend_tensor_free(be, &img);
    infvsr_backend_tensor_free(be, &ctx);
    infvsr_backend_tensor_free(be, &dframe);
    infvsr_visual_free(v);
    infvsr_backend_free(be);
    infvsr_weights_close(ram);
    infvsr_weights_close(dape);
    infvsr_weights_close(cse);
    return 0;
}
