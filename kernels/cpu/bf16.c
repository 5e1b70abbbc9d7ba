/* bf16 <-> f32 conversion of activations for the generic bf16 path (backend.c act_in /
 * act_out). AVX2 on every level: the loops are memory-bound, and one implementation gives
 * the same bits whichever bf16 kernels the backend uses. Rounding as infvsr_f32_to_bf16:
 * to nearest even, NaN stays a (quiet) NaN, denormals kept (VCVTNEPS2BF16 would flush
 * them, so it is not used). */
#include "cpu_impl.h"
#include "simd.h"

#define GRAIN 65536

struct cvt_job {
    void *       dst;
    const void * src;
    int64_t      n, per_task;
};

static void widen_task(void * ctx, int64_t t, int tid) {
    const struct cvt_job * j = ctx;
    int64_t i0 = t * j->per_task, i1 = i0 + j->per_task < j->n ? i0 + j->per_task : j->n;
    const uint16_t * s = j->src;
    float * d = j->dst;
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8) _mm256_storeu_ps(d + i, infvsr__load8_bf16(s + i));
    for (; i < i1; i++) d[i] = infvsr_bf16_to_f32(s[i]);
}

static void round_task(void * ctx, int64_t t, int tid) {
    const struct cvt_job * j = ctx;
    int64_t i0 = t * j->per_task, i1 = i0 + j->per_task < j->n ? i0 + j->per_task : j->n;
    const float * s = j->src;
    uint16_t * d = j->dst;
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8) _mm_storeu_si128((__m128i *)(d + i), infvsr__round8_bf16(_mm256_loadu_ps(s + i)));
    for (; i < i1; i++) d[i] = infvsr_f32_to_bf16(s[i]);
}

static void run(struct infvsr_cpu_ctx * c, infvsr_task_cb fn, void * dst, const void * src, int64_t n) {
    if (n <= 0) return;
    struct cvt_job j = { .dst = dst, .src = src, .n = n };
    int64_t tasks = infvsr__n_chunks(c, n, GRAIN);
    j.per_task = ((n + tasks - 1) / tasks + 7) / 8 * 8;
    infvsr__par(c, (n + j.per_task - 1) / j.per_task, fn, &j);
}

void infvsr_cpu_bf16_widen(struct infvsr_cpu_ctx * c, float * dst, const uint16_t * src, int64_t n) {
    run(c, widen_task, dst, src, n);
}

void infvsr_cpu_bf16_round(struct infvsr_cpu_ctx * c, uint16_t * dst, const float * src, int64_t n) {
    run(c, round_task, dst, src, n);
}
