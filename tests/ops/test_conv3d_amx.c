/* The AMX conv3d (kernels/cpu/conv3d_amx_body.h) run here on the emulated tile instructions
 * (kernels/cpu/amx_tile.h with INFVSR_AMX_EMULATE): the kernel's own source, so its tiling,
 * A tiles loaded from the input copy, ragged rows (the second tile configuration), K blocks
 * and channel padding are checked on machines without AMX (CI).
 *
 *  - against a float64 reference on shapes off every tile size: odd channel counts, Cin 3,
 *    strides 2 in t/h/w, one-sided and zero pads, kt 1, 1x1x1, 1- and 2-pixel rows, Wo
 *    not a multiple of 16 or 32, Wo past a task's 128 positions (segments), Cout 3 and past
 *    one 64-channel group, with and without bias, f32/f16/bf16 weights; a bf16 output must
 *    be the f32 output rounded once;
 *  - bit for bit across K blocks, frame groups and thread counts (the order of the sums
 *    depends on none of them), LDTILECFG and TILERELEASE balanced;
 *  - the plain C input copy, packing and epilogue against conv3d_bf16.c's AVX-512 ones
 *    (what the product runs), bit for bit, where the CPU has AVX512-BF16;
 *  - the product's entry point (real tiles): refused with INFVSR_ERR_UNSUPPORTED without
 *    AMX; where AMX exists, against the reference and the generic path (widen, f32 kernel).
 * Built a second time with INFVSR_AMX_EMU_PLANT_VNNI (a wrong pair layout in the emulated
 * instruction): that build must fail the reference comparison (tests/ops/CMakeLists.txt). */
#define INFVSR_AMX_EMULATE 1
#include "amx_tile.h"
#include "conv3d_amx_body.h"

#include <math.h>
#include <stdlib.h>

#include "amx_test_util.h"
#include "check.h"
#include "isa.h"

/* cin, t, h, w, cout, kt, kh, kw, st, sh, sw, pad top, bottom, left, right */
struct conv_case {
    int64_t           s[15];
    enum infvsr_dtype wdt, bdt; /* bdt INFVSR_TYPE_COUNT: no bias */
    uint64_t          seed;
};

static const int64_t g_shapes[][15] = {
    { 1, 3, 5, 6, 4, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1 },       /* Cin 1                               */
    { 3, 3, 6, 20, 20, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1 },     /* Cin 3 (the VAE's first conv), Wo 20 */
    { 7, 3, 6, 9, 70, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1 },      /* Cout 70: 2 groups, the last partial */
    { 17, 1, 9, 35, 33, 1, 3, 3, 1, 2, 2, 0, 1, 0, 1 },    /* stride 2 (VAE down), T 1, Wo 18     */
    { 33, 2, 4, 4, 16, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1 },     /* Cin 33: 2 k-steps per tap, Wo 4     */
    { 40, 4, 1, 1, 40, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1 },     /* 1x1 image: only the centre taps     */
    { 66, 3, 1, 2, 31, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1 },     /* 1x2 image, Cin 66 (3 k-steps)        */
    { 64, 1, 3, 37, 3, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1 },     /* head-like Cout 3, Wo 37 (32 + 5)    */
    { 35, 4, 6, 5, 49, 3, 1, 1, 2, 1, 1, 0, 0, 0, 0 },     /* time conv, stride 2 in t            */
    { 31, 2, 3, 50, 70, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0 },    /* 1x1x1, odd Cin, Wo 50 (32 + 18)     */
    { 5, 2, 2, 3, 9, 2, 2, 2, 2, 2, 2, 1, 0, 0, 1 },       /* even kernel, strides 2, 1-sided pads */
    { 32, 2, 2, 300, 24, 1, 1, 3, 1, 1, 1, 0, 0, 1, 1 },   /* Wo 300: 3 segments of a row, tail 44 */
    { 6, 7, 5, 16, 20, 3, 3, 3, 2, 1, 1, 1, 1, 1, 1 },     /* Wo 16 exactly, 3 output frames      */
    { 48, 2, 8, 64, 64, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1 },    /* Wo 64: 2 rows per task, full tiles  */
    { 20, 2, 7, 33, 17, 1, 3, 3, 1, 1, 2, 1, 1, 1, 1 },    /* stride 2 in w only, Wo 17 (16 + 1)   */
};
#define N_SHAPES (int)(sizeof g_shapes / sizeof g_shapes[0])

struct conv_data {
    struct infvsr_cpu_conv a;
    uint16_t *             x;
    void *                 w, * b;
    double *               ref, * mag; /* x*w + b and the sum of |x w| + |b|, [Cout][P] */
    int64_t                P, K;
};

static void store_as(void * dst, enum infvsr_dtype dt, size_t i, float v) {
    switch (dt) {
    case INFVSR_TYPE_BF16: ((uint16_t *)dst)[i] = infvsr_f32_to_bf16(v); break;
    case INFVSR_TYPE_F16:  ((uint16_t *)dst)[i] = infvsr_f32_to_f16(v); break;
    default:               ((float *)dst)[i] = v; break;
    }
}

static float read_as(const void * src, enum infvsr_dtype dt, size_t i) {
    switch (dt) {
    case INFVSR_TYPE_BF16: return infvsr_bf16_to_f32(((const uint16_t *)src)[i]);
    case INFVSR_TYPE_F16:  return infvsr_f16_to_f32(((const uint16_t *)src)[i]);
    default:               return ((const float *)src)[i];
    }
}

static float draw(uint64_t * s) {
    return (float)((double)(test_rng_next(s) >> 11) * (2.0 / 9007199254740992.0) - 1.0);
}

/* Inputs at their exact sizes (ASan sees any read past them) and the float64 reference of
 * the contract: x bf16, w rounded to bf16, products and sums in float64. */
static struct conv_data make_data(const struct conv_case * cc) {
    const int64_t * s = cc->s;
    struct conv_data d = { 0 };
    struct infvsr_cpu_conv * a = &d.a;
    a->cin = s[0], a->t = s[1], a->h = s[2], a->w_in = s[3], a->cout = s[4], a->kt = s[5], a->kh = s[6], a->kw = s[7];
    a->st = s[8], a->sh = s[9], a->sw = s[10], a->pad_top = s[11], a->pad_bottom = s[12], a->pad_left = s[13];
    a->pad_right = s[14];
    a->to = (a->t - a->kt) / a->st + 1;
    a->ho = (a->h + a->pad_top + a->pad_bottom - a->kh) / a->sh + 1;
    a->wo = (a->w_in + a->pad_left + a->pad_right - a->kw) / a->sw + 1;
    const int64_t taps = a->kt * a->kh * a->kw, nx = a->cin * a->t * a->h * a->w_in, nw = a->cout * a->cin * taps;
    d.P = a->to * a->ho * a->wo, d.K = a->cin * taps;
    d.x = malloc((size_t)nx * 2);
    d.w = malloc((size_t)nw * infvsr_dtype_size(cc->wdt));
    d.b = cc->bdt != INFVSR_TYPE_COUNT ? malloc((size_t)a->cout * infvsr_dtype_size(cc->bdt)) : NULL;
    d.ref = malloc((size_t)(a->cout * d.P) * sizeof(double));
    d.mag = malloc((size_t)(a->cout * d.P) * sizeof(double));
    INFVSR_ASSERT(d.x && d.w && d.ref && d.mag);
    uint64_t r = cc->seed;
    for (int64_t i = 0; i < nx; i++) d.x[i] = infvsr_f32_to_bf16(draw(&r));
    for (int64_t i = 0; i < nw; i++) store_as(d.w, cc->wdt, (size_t)i, draw(&r));
    for (int64_t i = 0; d.b && i < a->cout; i++) store_as(d.b, cc->bdt, (size_t)i, 0.5f * draw(&r));
    a->w = (struct infvsr_cpu_w){ .data = d.w, .dtype = cc->wdt };
    a->b = (struct infvsr_cpu_w){ .data = d.b, .dtype = d.b ? cc->bdt : INFVSR_TYPE_F32 };
    for (int64_t co = 0; co < a->cout; co++) {
        for (int64_t p = 0; p < d.P; p++) {
            const int64_t to = p / (a->ho * a->wo), oh = p / a->wo % a->ho, ow = p % a->wo;
            double acc = d.b ? read_as(d.b, cc->bdt, (size_t)co) : 0.0, mag = fabs(acc);
            for (int64_t ci = 0; ci < a->cin; ci++) {
                for (int64_t dt = 0; dt < a->kt; dt++) {
                    for (int64_t dh = 0; dh < a->kh; dh++) {
                        const int64_t ih = oh * a->sh + dh - a->pad_top;
                        if (ih < 0 || ih >= a->h) continue;
                        for (int64_t dw = 0; dw < a->kw; dw++) {
                            const int64_t iw = ow * a->sw + dw - a->pad_left;
                            if (iw < 0 || iw >= a->w_in) continue;
                            const int64_t it = to * a->st + dt;
                            const double xv = infvsr_bf16_to_f32(d.x[((ci * a->t + it) * a->h + ih) * a->w_in + iw]);
                            const size_t wi = (size_t)((((co * a->cin + ci) * a->kt + dt) * a->kh + dh) * a->kw + dw);
                            const double wv = infvsr_bf16_to_f32(infvsr_f32_to_bf16(read_as(d.w, cc->wdt, wi)));
                            acc += xv * wv, mag += fabs(xv * wv);
                        }
                    }
                }
            }
            d.ref[co * d.P + p] = acc, d.mag[co * d.P + p] = mag;
        }
    }
    return d;
}

static void free_data(struct conv_data * d) {
    free(d->x), free(d->w), free(d->b), free(d->ref), free(d->mag);
}

/* Worst |y - ref| over its allowed error (> 1 fails). Each f32 rounding costs at most 2^-24
 * of the sum of magnitudes; a TDPBF16PS chain is 16 FMAs, then two additions per k-step
 * (32 channels of one tap), so (K/2 + 20) 2^-24 covers it generously; the bias's addition
 * one more. A wrong tap, channel, pair or position moves a value by about one |x w| term,
 * K/(K/2 + 20) 2^24 times more. */
static double worst_err(const struct conv_data * d, const float * y, int64_t * at) {
    double worst = 0;
    const int64_t Kp = d->a.kt * d->a.kh * d->a.kw * ((d->a.cin + 31) / 32 * 32);
    for (int64_t i = 0; i < d->a.cout * d->P; i++) {
        const double tol = ldexp(((double)Kp / 2 + 20) * d->mag[i] * 1.2, -24) + 1e-7;
        const double e = fabs((double)y[i] - d->ref[i]) / tol;
        if (!(e <= worst)) worst = e, *at = i; /* NaN counts as worst */
    }
    return worst;
}

/* The emulated kernel into a fresh y; configs and releases must balance. */
static void * run_emu(struct infvsr_cpu_ctx * c, const struct conv_data * d, enum infvsr_dtype ydt, bool fast) {
    void * y = malloc((size_t)(d->a.cout * d->P) * infvsr_dtype_size(ydt));
    INFVSR_ASSERT(y);
    const long c0 = atomic_load(&amx_emu_configs), r0 = atomic_load(&amx_emu_releases);
    CHECK_EQ_INT(amxc_conv(c, &d->a, d->x, y, ydt, fast), INFVSR_OK);
    const long configs = atomic_load(&amx_emu_configs) - c0, releases = atomic_load(&amx_emu_releases) - r0;
    CHECK(configs > 0);
    /* a task configures once or twice (full blocks, then the rows' tails) and releases once */
    CHECK(releases > 0 && releases <= configs && configs <= 2 * releases);
    return y;
}

static struct conv_case case_of(int i) {
    static const enum infvsr_dtype wdts[3] = { INFVSR_TYPE_BF16, INFVSR_TYPE_F32, INFVSR_TYPE_F16 };
    static const enum infvsr_dtype bdts[4] = { INFVSR_TYPE_COUNT, INFVSR_TYPE_F32, INFVSR_TYPE_BF16, INFVSR_TYPE_F16 };
    struct conv_case cc = { .wdt = wdts[i % 3], .bdt = bdts[(i / 3 + i) % 4], .seed = 100 + (uint64_t)i };
    memcpy(cc.s, g_shapes[i % N_SHAPES], sizeof cc.s);
    return cc;
}

static int g_reported;

static void report(const struct conv_data * d, const char * what, int i, double err, int64_t at) {
    if (g_reported++ >= 10) return;
    fprintf(stderr, "  %s: shape %d (Cin %lld Cout %lld Wo %lld): error %.3g x the bound at channel %lld position %lld\n",
            what, i, (long long)d->a.cin, (long long)d->a.cout, (long long)d->a.wo, err, (long long)(at / d->P),
            (long long)(at % d->P));
}

/* Every shape twice (different weight/bias dtypes), f32 output within the bound, bf16 output
 * the f32 one rounded once. */
static void test_amx_conv_vs_f64(void) {
    struct infvsr_backend * be = amx_test_backend(2);
    int failed = 0;
    double worst = 0;
    g_reported = 0;
    for (int i = 0; i < 2 * N_SHAPES; i++) {
        const struct conv_case cc = case_of(i);
        struct conv_data d = make_data(&cc);
        float * y = run_emu(amx_test_ctx(be), &d, INFVSR_TYPE_F32, false);
        int64_t at = 0;
        const double e = worst_err(&d, y, &at);
        if (!(e <= 1)) report(&d, "emulated", i % N_SHAPES, e, at), failed++;
        if (e > worst) worst = e;
        uint16_t * yb = run_emu(amx_test_ctx(be), &d, INFVSR_TYPE_BF16, false);
        int64_t bad = 0;
        for (int64_t j = 0; j < d.a.cout * d.P; j++) bad += yb[j] != infvsr_f32_to_bf16(y[j]);
        CHECK_MSG(bad == 0, "shape %d: %lld bf16 outputs are not the f32 output rounded once", i % N_SHAPES, (long long)bad);
        free(y), free(yb);
        free_data(&d);
    }
    printf("  %d cases, worst error %.3f x the bound\n", 2 * N_SHAPES, worst);
    CHECK_EQ_INT(failed, 0);
    infvsr_backend_free(be);
}

/* K blocks of 1 and 3 k-steps and the whole K, one output frame per input copy, 1 thread:
 * the same bits (the sums' order is per output, over k-steps in order, in every case). */
static void test_amx_conv_blocks_groups_threads_bitexact(void) {
    struct infvsr_backend * be2 = amx_test_backend(2), * be1 = amx_test_backend(1);
    const int pick[] = { 2, 4, 8, 9, 11, 12 };
    const int64_t old_kblk = amxc_kblk;
    const size_t old_xp = amxc_xp_bytes;
    for (int k = 0; k < (int)(sizeof pick / sizeof pick[0]); k++) {
        const struct conv_case cc = case_of(pick[k]);
        struct conv_data d = make_data(&cc);
        const size_t n = (size_t)(d.a.cout * d.P) * sizeof(float);
        float * base = run_emu(amx_test_ctx(be2), &d, INFVSR_TYPE_F32, false);
        const int64_t kblks[3] = { 1, 3, 1 << 20 };
        for (int b = 0; b < 3; b++) {
            amxc_kblk = kblks[b];
            float * y = run_emu(amx_test_ctx(be2), &d, INFVSR_TYPE_F32, false);
            CHECK_MSG(memcmp(base, y, n) == 0, "shape %d: K blocks of %lld changed the result", pick[k], (long long)kblks[b]);
            free(y);
        }
        amxc_kblk = old_kblk;
        amxc_xp_bytes = 1;
        float * groups = run_emu(amx_test_ctx(be2), &d, INFVSR_TYPE_F32, false);
        amxc_xp_bytes = old_xp;
        float * one = run_emu(amx_test_ctx(be1), &d, INFVSR_TYPE_F32, false);
        CHECK_MSG(memcmp(base, groups, n) == 0, "shape %d: frame groups changed the result", pick[k]);
        CHECK_MSG(memcmp(base, one, n) == 0, "shape %d: 1 thread changed the result", pick[k]);
        int64_t at;
        CHECK(worst_err(&d, base, &at) <= 1);
        free(base), free(groups), free(one);
        free_data(&d);
    }
    infvsr_backend_free(be2), infvsr_backend_free(be1);
}

/* The product's input copy, packing and epilogue (conv3d_bf16.c, AVX-512) against the plain
 * C ones the emulated test uses: the same bits, f32 and bf16 output. */
static void test_amx_conv_fast_prep_bitexact(void) {
    if (infvsr_cpu_isa_detect() < INFVSR_CPU_ISA_AVX512BF16) {
        printf("  no AVX512-BF16 here: skipped (the product's prep is conv3d_bf16.c's, tested on that level)\n");
        return;
    }
    struct infvsr_backend * be = amx_test_backend(2);
    for (int i = 0; i < 2 * N_SHAPES; i++) {
        const struct conv_case cc = case_of(i);
        struct conv_data d = make_data(&cc);
        const enum infvsr_dtype ydt = i % 2 ? INFVSR_TYPE_BF16 : INFVSR_TYPE_F32;
        const size_t n = (size_t)(d.a.cout * d.P) * infvsr_dtype_size(ydt);
        void * plain = run_emu(amx_test_ctx(be), &d, ydt, false), * fast = run_emu(amx_test_ctx(be), &d, ydt, true);
        CHECK_MSG(memcmp(plain, fast, n) == 0, "shape %d: the AVX-512 prep gives other bits than the plain C one", i % N_SHAPES);
        free(plain), free(fast);
        free_data(&d);
    }
    infvsr_backend_free(be);
}

/* The product's entry point runs the real tile instructions: without AMX it must refuse (never
 * fault) and leave y alone; with AMX it must meet the reference and agree with the generic
 * path (x widened, the f32 kernel; bf16 weights so both use the same values). */
static void test_amx_conv_real_entry(void) {
    struct infvsr_backend * be = amx_test_backend(2);
    struct infvsr_cpu_ctx * c = amx_test_ctx(be);
    if (infvsr_cpu_isa_detect() < INFVSR_CPU_ISA_AMX) {
        const struct conv_case cc = case_of(2);
        struct conv_data d = make_data(&cc);
        float * y = malloc((size_t)(d.a.cout * d.P) * sizeof *y);
        INFVSR_ASSERT(y);
        for (int64_t i = 0; i < d.a.cout * d.P; i++) y[i] = 42.0f;
        CHECK_EQ_INT(infvsr_cpu_op_conv3d_amx(c, &d.a, d.x, y, INFVSR_TYPE_F32), INFVSR_ERR_UNSUPPORTED);
        int untouched = 1;
        for (int64_t i = 0; i < d.a.cout * d.P; i++) untouched &= y[i] == 42.0f;
        CHECK(untouched);
        free(y);
        free_data(&d);
        printf("  no AMX here: the real kernel refuses (INFVSR_ERR_UNSUPPORTED)\n");
        infvsr_backend_free(be);
        return;
    }
    int failed = 0;
    int64_t differ = 0, total = 0;
    double worst = 0, worst_gen = 0;
    g_reported = 0;
    for (int i = 0; i < 2 * N_SHAPES; i++) {
        struct conv_case cc = case_of(i);
        cc.wdt = INFVSR_TYPE_BF16;
        struct conv_data d = make_data(&cc);
        const int64_t n = d.a.cout * d.P, nx = d.a.cin * d.a.t * d.a.h * d.a.w_in;
        float * y = malloc((size_t)n * sizeof *y), * yg = malloc((size_t)n * sizeof *yg), * xf = malloc((size_t)nx * sizeof *xf);
        INFVSR_ASSERT(y && yg && xf);
        CHECK_EQ_INT(infvsr_cpu_op_conv3d_amx(c, &d.a, d.x, y, INFVSR_TYPE_F32), INFVSR_OK);
        int64_t at = 0;
        const double e = worst_err(&d, y, &at);
        if (!(e <= 1)) report(&d, "real AMX", i % N_SHAPES, e, at), failed++;
        if (e > worst) worst = e;
        /* the generic path: within the same bound of the reference, and so of each other */
        for (int64_t j = 0; j < nx; j++) xf[j] = infvsr_bf16_to_f32(d.x[j]);
        struct infvsr_cpu_conv g = d.a;
        g.x = xf, g.y = yg;
        CHECK_EQ_INT(infvsr_cpu_op_conv3d(c, &g), INFVSR_OK);
        const double eg = worst_err(&d, yg, &at);
        if (!(eg <= 1)) report(&d, "generic", i % N_SHAPES, eg, at), failed++;
        if (eg > worst_gen) worst_gen = eg;
        float * ye = run_emu(c, &d, INFVSR_TYPE_F32, true);
        for (int64_t j = 0; j < n; j++) differ += memcmp(&y[j], &ye[j], sizeof(float)) != 0;
        total += n;
        free(y), free(yg), free(xf), free(ye);
        free_data(&d);
    }
    /* the SDM's pseudocode fixes the order the emulation uses; a CPU may differ within it */
    printf("  real AMX: %d cases, worst error %.3f x the bound (generic path %.3f); %lld of %lld outputs differ in their "
           "bits from the emulation\n",
           2 * N_SHAPES, worst, worst_gen, (long long)differ, (long long)total);
    CHECK_EQ_INT(failed, 0);
    infvsr_backend_free(be);
}

#ifdef INFVSR_AMX_EMU_PLANT_VNNI
/* With the pair layout planted wrong in the emulated instruction, every case must be out
 * of bounds (each has more than one channel and column somewhere): the comparison sees
 * the kernel's layout. */
static void test_planted_vnni_detected(void) {
    struct infvsr_backend * be = amx_test_backend(2);
    int cases = 0, caught = 0;
    for (int i = 0; i < N_SHAPES; i++) {
        if (g_shapes[i][0] < 2) continue; /* Cin 1: one k per pair, nothing to swap */
        const struct conv_case cc = case_of(i);
        struct conv_data d = make_data(&cc);
        float * y = run_emu(amx_test_ctx(be), &d, INFVSR_TYPE_F32, false);
        int64_t at;
        caught += !(worst_err(&d, y, &at) <= 1);
        cases++;
        free(y);
        free_data(&d);
    }
    printf("  planted pair layout: %d of %d cases out of bounds\n", caught, cases);
    CHECK_EQ_INT(caught, cases);
    infvsr_backend_free(be);
}
#endif

static const struct test_case tests[] = {
    TEST(test_amx_conv_vs_f64),
    TEST(test_amx_conv_blocks_groups_threads_bitexact),
    TEST(test_amx_conv_fast_prep_bitexact),
    TEST(test_amx_conv_real_entry),
#ifdef INFVSR_AMX_EMU_PLANT_VNNI
    TEST(test_planted_vnni_detected),
#endif
    { 0 },
};

int main(int argc, char ** argv) {
    return test_main(argc, argv, tests);
}
