/* Internals of the CPU backend that the op-case table (test_backend_ops) cannot see:
 * the bicubic tap tables of MODEL-SPEC §3.1, and which conv3d path (Winograd F(4x4),
 * F(2x2), im2col) the CPU picks for a shape, the choice of the bf16 kernels' instruction
 * set (isa.h), which linear kernel each level runs and the lifetime of the packed bf16
 * weights (weight_pack.c). Every path itself is checked numerically by the table's
 * cases, which force each one (the AMX GEMM also on emulated tiles, test_gemm_amx.c). */
#include <math.h>
#include <stdlib.h>

#include <string.h>

#include "check.h"
#include "conv3d_winograd.h"
#include "cpu_impl.h"
#include "infvsr/backend.h"
#include "isa.h"
#include "ops.h"
#include "resize_table.h"

/* MODEL-SPEC §3.1: bicubic x4 interior phase weights and the left border. */
static void test_resize_bicubic_tables(void) {
    const double phase[4][4] = {
        { -0.0439453125, 0.3896484375, 0.7275390625, -0.0732421875 },
        { -0.0068359375, 0.0908203125, 0.9638671875, -0.0478515625 },
        { -0.0478515625, 0.9638671875, 0.0908203125, -0.0068359375 },
        { -0.0732421875, 0.7275390625, 0.3896484375, -0.0439453125 },
    };
    const int first_off[4] = { -2, -2, -1, -1 };
    int64_t in = 40, out = 160, xmin;
    float w[16];
    CHECK(infvsr_cpu_resize_max_taps(INFVSR_RESIZE_BICUBIC_AA, in, out) <= 16);
    for (int64_t k = 5; k < 30; k++) {
        for (int p = 0; p < 4; p++) {
            int n = infvsr_cpu_resize_taps(INFVSR_RESIZE_BICUBIC_AA, in, out, 4 * k + p, &xmin, w);
            CHECK_EQ_INT(n, 4);
            CHECK_EQ_INT(xmin, k + first_off[p]);
            for (int j = 0; j < 4; j++) CHECK_MSG(fabs(w[j] - phase[p][j]) <= 1e-6, "phase %d tap %d: %.9f", p, j, w[j]);
        }
    }
    const double border[4][3] = {
        { 1.1119403, -0.1119403, 0 },
        { 1.0522388, -0.0522388, 0 },
        { 0.91985089, 0.08667288, -0.00652377 },
        { 0.67788899, 0.36305732, -0.04094631 },
    };
    const int border_n[4] = { 2, 2, 3, 3 };
    for (int i = 0; i < 4; i++) {
        int n = infvsr_cpu_resize_taps(INFVSR_RESIZE_BICUBIC_AA, in, out, i, &xmin, w);
        CHECK_EQ_INT(n, border_n[i]);
        CHECK_EQ_INT(xmin, 0);
        for (int j = 0; j < n; j++) CHECK_MSG(fabs(w[j] - border[i][j]) <= 1e-6, "border out %d tap %d: %.9f", i, j, w[j]);
    }
    /* the right edge is the mirror image */
    for (int i = 0; i < 4; i++) {
        int n = infvsr_cpu_resize_taps(INFVSR_RESIZE_BICUBIC_AA, in, out, out - 1 - i, &xmin, w);
        CHECK_EQ_INT(n, border_n[i]);
        CHECK_EQ_INT(xmin + n, in);
        for (int j = 0; j < n; j++) CHECK(fabs(w[n - 1 - j] - border[i][j]) <= 1e-6);
    }
}

static struct infvsr_cpu_conv conv3(int64_t cin, int64_t cout, int64_t to, int64_t ho, int64_t wo) {
    return (struct infvsr_cpu_conv){ .cin = cin, .cout = cout, .kt = 3, .kh = 3, .kw = 3, .st = 1, .sh = 1, .sw = 1,
                                     .to = to, .ho = ho, .wo = wo };
}

static void test_conv3d_path_choice(void) {
    /* with the volume threshold at 0 every 3x3 stride-1 shape fits */
    const double old_volume = infvsr__conv3d_winograd_set_min_volume(0);
    struct infvsr_cpu_conv one = conv3(1, 1, 1, 1, 1);
    CHECK(infvsr__conv3d_winograd_fits(&one));
    for (int tile = 2; tile <= 4; tile += 2) {
        const int old_tile = infvsr__conv3d_winograd_set_tile(tile);
        CHECK_EQ_INT(infvsr__conv3d_winograd_tile(&one), tile);
        infvsr__conv3d_winograd_set_tile(old_tile);
    }
    infvsr__conv3d_winograd_set_min_volume(old_volume);
    /* the default threshold keeps tiny convs on im2col, VAE-sized ones on Winograd */
    struct infvsr_cpu_conv tiny = conv3(8, 8, 4, 16, 16), vae = conv3(96, 96, 4, 64, 64);
    CHECK(!infvsr__conv3d_winograd_fits(&tiny));
    CHECK(infvsr__conv3d_winograd_fits(&vae));
    /* many tiles: F(4x4); 384 channels at 16x16, 2 frames: F(2x2); at 8x8: im2col */
    CHECK_EQ_INT(infvsr__conv3d_winograd_tile(&vae), 4);
    struct infvsr_cpu_conv mid = conv3(384, 384, 2, 16, 16), small = conv3(384, 384, 1, 8, 8);
    CHECK_EQ_INT(infvsr__conv3d_winograd_tile(&mid), 2);
    CHECK_EQ_INT(infvsr__conv3d_winograd_tile(&small), 0);
    /* strided or non-3x3 kernels never take Winograd */
    struct infvsr_cpu_conv strided = vae;
    strided.sh = 2;
    CHECK(!infvsr__conv3d_winograd_fits(&strided));
}

/* Forcing an instruction set: every level up to the detected one is accepted, one above it
 * is UNSUPPORTED (the test's Skipped), a bad name INVALID_ARG; the env var is the fallback
 * of an unset option, and the backend reports its level in caps.device. */
static void test_cpu_isa_select(void) {
    const enum infvsr_cpu_isa best = infvsr_cpu_isa_detect();
    const char * names[] = { "avx2", "avx512bf16", "amx" };
    struct infvsr_err err;
    enum infvsr_cpu_isa got;
    unsetenv("INFVSR_CPU_ISA");
    CHECK_EQ_INT(infvsr_cpu_isa_select(NULL, &got, &err), INFVSR_OK);
    CHECK_EQ_INT(got, best);
    CHECK_EQ_INT(infvsr_cpu_isa_select("auto", &got, &err), INFVSR_OK);
    CHECK_EQ_INT(got, best);
    for (int i = 0; i < 3; i++) {
        enum infvsr_status st = infvsr_cpu_isa_select(names[i], &got, &err);
        if (i <= (int)best) {
            CHECK_EQ_INT(st, INFVSR_OK);
            CHECK_EQ_INT(got, i);
            CHECK(strcmp(infvsr_cpu_isa_name(got), names[i]) == 0);
        } else {
            CHECK_EQ_INT(st, INFVSR_ERR_UNSUPPORTED);
            CHECK_STR_CONTAINS(err.msg, "not available");
        }
    }
    CHECK_EQ_INT(infvsr_cpu_isa_select("avx1024", &got, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "avx1024");
    setenv("INFVSR_CPU_ISA", "avx2", 1);
    CHECK_EQ_INT(infvsr_cpu_isa_select(NULL, &got, &err), INFVSR_OK);
    CHECK_EQ_INT(got, INFVSR_CPU_ISA_AVX2);
    setenv("INFVSR_CPU_ISA", "bogus", 1);
    CHECK_EQ_INT(infvsr_cpu_isa_select(NULL, &got, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "INFVSR_CPU_ISA");
    /* through the public API: the option wins over the env var; precision bf16 is accepted */
    struct infvsr_backend_opts o = infvsr_backend_default_opts();
    struct infvsr_backend * be = NULL;
    o.cpu_isa   = "avx2";
    o.precision = INFVSR_PRECISION_BF16;
    CHECK_EQ_INT(infvsr_backend_init_by_name("cpu", &o, &be, &err), INFVSR_OK);
    struct infvsr_backend_caps caps;
    infvsr_backend_get_caps(be, &caps);
    CHECK_STR_CONTAINS(caps.device, "bf16 avx2");
    CHECK_EQ_INT(caps.act_dtype, INFVSR_TYPE_BF16);
    CHECK(caps.act_bf16 && caps.act_f32);
    infvsr_backend_free(be);
    unsetenv("INFVSR_CPU_ISA");
}

/* y = x . w^T on the cpu in bf16 (bf16 x, w, y); y's bits into out. */
static void linear_bits(struct infvsr_backend * be, const struct infvsr_tensor * x, const struct infvsr_tensor * w,
                        struct infvsr_tensor * y, uint16_t * out) {
    struct infvsr_err err;
    CHECK_EQ_INT(infvsr_op_linear(be, x, w, NULL, INFVSR_UNARY_COUNT, y, &err), INFVSR_OK);
    memcpy(out, y->data, infvsr_tensor_nbytes(y));
}

static void fill_bf16(struct infvsr_tensor * t, uint64_t seed) {
    size_t n = (size_t)infvsr_tensor_numel(t);
    float * f = malloc(n * sizeof *f);
    test_fill_uniform(f, n, -1, 1, seed);
    infvsr_convert_from_f32(t->data, INFVSR_TYPE_BF16, f, n);
    free(f);
}

/* Packed weights: only imported weights are packed, once; the result is the bits of the
 * per-call packing; release drops the copies, so new contents at the same address (a
 * freed weight's memory reused) are packed afresh, never served stale; the budget bounds
 * them. */
static void test_cpu_packed_weights(void) {
    struct infvsr_backend_opts o = infvsr_backend_default_opts();
    struct infvsr_backend * be = NULL;
    struct infvsr_err err;
    o.cpu_isa   = "avx512bf16";
    o.precision = INFVSR_PRECISION_BF16;
    o.n_threads = 2;
    if (infvsr_backend_init_by_name("cpu", &o, &be, &err) == INFVSR_ERR_UNSUPPORTED) {
        printf("  (no AVX512-BF16 here: packed weights not exercised)\n");
        return;
    }
    struct infvsr_cpu_ctx * c = be->context;
    c->wcache.budget = (size_t)64 << 20;
    const int64_t M = 20, N = 72, K = 50; /* N past one 64-column block, K even */
    struct infvsr_tensor x, w, y;
    CHECK_EQ_INT(infvsr_tensor_alloc(&x, "x", INFVSR_TYPE_BF16, 2, (int64_t[]){ M, K }), INFVSR_OK);
    CHECK_EQ_INT(infvsr_tensor_alloc(&w, "w", INFVSR_TYPE_BF16, 2, (int64_t[]){ N, K }), INFVSR_OK);
    CHECK_EQ_INT(infvsr_tensor_alloc(&y, "y", INFVSR_TYPE_BF16, 2, (int64_t[]){ M, N }), INFVSR_OK);
    fill_bf16(&x, 1);
    fill_bf16(&w, 2);
    uint16_t * per_call = malloc((size_t)(M * N) * 2), * got = malloc((size_t)(M * N) * 2);

    linear_bits(be, &x, &w, &y, per_call); /* not imported: packed per call */
    CHECK_EQ_INT(c->wcache.packs, 0);
    CHECK_EQ_INT(c->wcache.hits, 0);

    struct infvsr_tensor * ts[1] = { &w };
    uint64_t token = 0;
    CHECK_EQ_INT(infvsr_backend_weights_imported(be, ts, 1, &token, &err), INFVSR_OK);
    CHECK(token != 0);
    for (int r = 0; r < 2; r++) {
        linear_bits(be, &x, &w, &y, got);
        CHECK(memcmp(got, per_call, (size_t)(M * N) * 2) == 0);
    }
    CHECK_EQ_INT(c->wcache.packs, 1); /* packed once, served twice */
    CHECK_EQ_INT(c->wcache.hits, 2);
    CHECK(c->wcache.bytes > 0);

    /* the set goes, the memory is reused with other values: never the old panel */
    infvsr_backend_weights_released(be, token);
    CHECK_EQ_INT(c->wcache.n_packed, 0);
    CHECK_EQ_INT(c->wcache.bytes, 0);
    fill_bf16(&w, 3);
    linear_bits(be, &x, &w, &y, per_call);
    CHECK_EQ_INT(c->wcache.packs, 1);
    CHECK_EQ_INT(infvsr_backend_weights_imported(be, ts, 1, &token, &err), INFVSR_OK);
    linear_bits(be, &x, &w, &y, got);
    CHECK(memcmp(got, per_call, (size_t)(M * N) * 2) == 0);
    CHECK_EQ_INT(c->wcache.packs, 2);
    infvsr_backend_weights_released(be, token);

    /* over the budget: per call, nothing held */
    c->wcache.budget = 1024;
    CHECK_EQ_INT(infvsr_backend_weights_imported(be, ts, 1, &token, &err), INFVSR_OK);
    linear_bits(be, &x, &w, &y, got);
    CHECK(memcmp(got, per_call, (size_t)(M * N) * 2) == 0);
    CHECK_EQ_INT(c->wcache.packs, 2);
    CHECK_EQ_INT(c->wcache.bytes, 0);
    infvsr_backend_weights_released(be, token);

    free(per_call), free(got);
    infvsr_tensor_release(&x), infvsr_tensor_release(&w), infvsr_tensor_release(&y);
    infvsr_backend_free(be);
}

/* Which kernel runs linear with bf16 activations: the AMX one only on the amx level, the
 * AVX512-BF16 one on avx512bf16, the widened f32 path on avx2 and below the native GEMMs'
 * row threshold. A level is only ever set up to the detected one (backend init clamps it),
 * and forcing amx where AMX is absent is refused, by the option and by INFVSR_CPU_ISA. */
static void test_linear_bf16_dispatch(void) {
    struct infvsr_cpu_ctx c = { .isa = INFVSR_CPU_ISA_AVX2 };
    const int64_t N = 1536, K = 1536;
    CHECK_EQ_INT(infvsr_cpu_linear_bf16_kernel(&c, 192, N, K), INFVSR_CPU_LINEAR_BF16_WIDEN);
    c.isa = INFVSR_CPU_ISA_AVX512BF16;
    CHECK_EQ_INT(infvsr_cpu_linear_bf16_kernel(&c, 192, N, K), INFVSR_CPU_LINEAR_BF16_AVX512);
    CHECK_EQ_INT(infvsr_cpu_linear_bf16_kernel(&c, 4, N, K), INFVSR_CPU_LINEAR_BF16_WIDEN);
    c.isa = INFVSR_CPU_ISA_AMX;
    CHECK_EQ_INT(infvsr_cpu_linear_bf16_kernel(&c, 192, N, K), INFVSR_CPU_LINEAR_BF16_AMX);
    CHECK_EQ_INT(infvsr_cpu_linear_bf16_kernel(&c, 8, N, K), INFVSR_CPU_LINEAR_BF16_AMX);
    CHECK_EQ_INT(infvsr_cpu_linear_bf16_kernel(&c, 4, N, K), INFVSR_CPU_LINEAR_BF16_WIDEN);

    const bool amx = infvsr_cpu_isa_detect() == INFVSR_CPU_ISA_AMX;
    struct infvsr_backend_opts o = infvsr_backend_default_opts();
    struct infvsr_backend * be = NULL;
    struct infvsr_err err;
    o.cpu_isa   = "amx";
    o.precision = INFVSR_PRECISION_BF16;
    enum infvsr_status st = infvsr_backend_init_by_name("cpu", &o, &be, &err);
    CHECK_EQ_INT(st, amx ? INFVSR_OK : INFVSR_ERR_UNSUPPORTED);
    if (!amx) CHECK_STR_CONTAINS(err.msg, "ISA amx is not available");
    infvsr_backend_free(be);
    be = NULL;
    setenv("INFVSR_CPU_ISA", "amx", 1);
    o.cpu_isa = NULL;
    st = infvsr_backend_init_by_name("cpu", &o, &be, &err);
    CHECK_EQ_INT(st, amx ? INFVSR_OK : INFVSR_ERR_UNSUPPORTED);
    if (!amx) CHECK_STR_CONTAINS(err.msg, "INFVSR_CPU_ISA");
    infvsr_backend_free(be);
    unsetenv("INFVSR_CPU_ISA");
    /* a backend asked for a level above the CPU's (the internal constructor) is clamped */
    struct infvsr_cpu_params p = infvsr_cpu_default_params();
    p.isa = INFVSR_CPU_ISA_AMX;
    CHECK_EQ_INT(infvsr_cpu_backend_init(&p, &be), INFVSR_OK);
    CHECK_EQ_INT(((struct infvsr_cpu_ctx *)be->context)->isa, infvsr_cpu_isa_detect());
    infvsr_backend_free(be);
}

/* Which kernel runs conv3d with bf16 activations: AMX on every shape of the amx level, the
 * AVX512-BF16 one on avx512bf16 except the 3x3x3 Winograd F(4x4) shapes (generic), the
 * generic path on avx2; the bench hook forces one within the level. */
static void test_conv3d_bf16_dispatch(void) {
    struct infvsr_cpu_ctx c = { .isa = INFVSR_CPU_ISA_AVX2 };
    struct infvsr_cpu_conv vae = conv3(96, 96, 4, 64, 64), mid = conv3(384, 384, 2, 16, 16), head = conv3(96, 3, 4, 64, 64);
    vae.h = vae.w_in = 64, vae.t = 6, mid.h = mid.w_in = 16, mid.t = 4, head.h = head.w_in = 64, head.t = 6;
    CHECK_EQ_INT(infvsr_cpu_conv3d_bf16_kernel(&c, &vae), INFVSR_CPU_CONV3D_BF16_GENERIC);
    c.isa = INFVSR_CPU_ISA_AVX512BF16;
    CHECK_EQ_INT(infvsr_cpu_conv3d_bf16_kernel(&c, &vae), INFVSR_CPU_CONV3D_BF16_GENERIC);
    CHECK_EQ_INT(infvsr_cpu_conv3d_bf16_kernel(&c, &mid), INFVSR_CPU_CONV3D_BF16_AVX512);
    c.isa = INFVSR_CPU_ISA_AMX;
    CHECK_EQ_INT(infvsr_cpu_conv3d_bf16_kernel(&c, &vae), INFVSR_CPU_CONV3D_BF16_AMX);
    CHECK_EQ_INT(infvsr_cpu_conv3d_bf16_kernel(&c, &mid), INFVSR_CPU_CONV3D_BF16_AMX);
    CHECK_EQ_INT(infvsr_cpu_conv3d_bf16_kernel(&c, &head), INFVSR_CPU_CONV3D_BF16_AMX);
    const enum infvsr_cpu_conv3d_bf16_kernel old = infvsr__conv3d_bf16_force(INFVSR_CPU_CONV3D_BF16_AVX512);
    CHECK_EQ_INT(infvsr_cpu_conv3d_bf16_kernel(&c, &vae), INFVSR_CPU_CONV3D_BF16_AVX512);
    c.isa = INFVSR_CPU_ISA_AVX2;
    CHECK_EQ_INT(infvsr_cpu_conv3d_bf16_kernel(&c, &vae), INFVSR_CPU_CONV3D_BF16_GENERIC);
    infvsr__conv3d_bf16_force(INFVSR_CPU_CONV3D_BF16_AMX);
    CHECK_EQ_INT(infvsr_cpu_conv3d_bf16_kernel(&c, &vae), INFVSR_CPU_CONV3D_BF16_GENERIC);
    c.isa = INFVSR_CPU_ISA_AVX512BF16;
    CHECK_EQ_INT(infvsr_cpu_conv3d_bf16_kernel(&c, &mid), INFVSR_CPU_CONV3D_BF16_AVX512);
    infvsr__conv3d_bf16_force(old);
}

/* y = conv3d(x, w) on the cpu in bf16, 3x3x3 with padding 1; y's bits into out. */
static void conv_bits(struct infvsr_backend * be, struct infvsr_tensor * x, struct infvsr_tensor * w,
                      struct infvsr_tensor * y, uint16_t * out) {
    struct infvsr_err err;
    const struct infvsr_conv3d_args a = { .x = x, .w = w, .stride_t = 1, .stride_h = 1, .stride_w = 1, .pad_top = 1,
                                          .pad_bottom = 1, .pad_left = 1, .pad_right = 1, .y = y };
    CHECK_EQ_INT(infvsr_op_conv3d(be, &a, &err), INFVSR_OK);
    memcpy(out, y->data, infvsr_tensor_nbytes(y));
}

/* The AMX conv's packed weights follow the linear ones' rules (only imported weights, packed
 * once, the per-call bits, dropped at release, bounded by the budget). AMX only. */
static void test_cpu_packed_conv_weights_amx(void) {
    struct infvsr_backend_opts o = infvsr_backend_default_opts();
    struct infvsr_backend * be = NULL;
    struct infvsr_err err;
    o.cpu_isa   = "amx";
    o.precision = INFVSR_PRECISION_BF16;
    o.n_threads = 2;
    if (infvsr_backend_init_by_name("cpu", &o, &be, &err) == INFVSR_ERR_UNSUPPORTED) {
        printf("  (no AMX here: packed conv weights not exercised)\n");
        return;
    }
    struct infvsr_cpu_ctx * c = be->context;
    c->wcache.budget = (size_t)64 << 20;
    struct infvsr_tensor x, w, y;
    CHECK_EQ_INT(infvsr_tensor_alloc(&x, "x", INFVSR_TYPE_BF16, 4, (int64_t[]){ 40, 4, 6, 20 }), INFVSR_OK);
    CHECK_EQ_INT(infvsr_tensor_alloc(&w, "w", INFVSR_TYPE_BF16, 5, (int64_t[]){ 70, 40, 3, 3, 3 }), INFVSR_OK);
    CHECK_EQ_INT(infvsr_tensor_alloc(&y, "y", INFVSR_TYPE_BF16, 4, (int64_t[]){ 70, 2, 6, 20 }), INFVSR_OK);
    fill_bf16(&x, 4);
    fill_bf16(&w, 5);
    const size_t n = infvsr_tensor_nbytes(&y);
    uint16_t * per_call = malloc(n), * got = malloc(n);
    const uint64_t amx0 = infvsr__conv3d_amx_calls();
    conv_bits(be, &x, &w, &y, per_call); /* not imported: packed per call */
    CHECK(infvsr__conv3d_amx_calls() != amx0);
    CHECK_EQ_INT(c->wcache.packs, 0);
    struct infvsr_tensor * ts[1] = { &w };
    uint64_t token = 0;
    CHECK_EQ_INT(infvsr_backend_weights_imported(be, ts, 1, &token, &err), INFVSR_OK);
    CHECK_EQ_INT(c->wcache.packs, 1); /* at import (pack_at_import), not in the first conv */
    const uint64_t hits0 = c->wcache.hits;
    for (int r = 0; r < 2; r++) {
        conv_bits(be, &x, &w, &y, got);
        CHECK(memcmp(got, per_call, n) == 0);
    }
    CHECK_EQ_INT(c->wcache.packs, 1);
    CHECK_EQ_INT(c->wcache.hits, hits0 + 2);
    /* released, new contents at the same address: packed afresh */
    infvsr_backend_weights_released(be, token);
    CHECK_EQ_INT(c->wcache.n_packed, 0);
    CHECK_EQ_INT(c->wcache.bytes, 0);
    fill_bf16(&w, 6);
    conv_bits(be, &x, &w, &y, per_call);
    CHECK_EQ_INT(infvsr_backend_weights_imported(be, ts, 1, &token, &err), INFVSR_OK);
    conv_bits(be, &x, &w, &y, got);
    CHECK(memcmp(got, per_call, n) == 0);
    CHECK_EQ_INT(c->wcache.packs, 2);
    infvsr_backend_weights_released(be, token);
    /* over the budget: per call, nothing held */
    c->wcache.budget = 1024;
    CHECK_EQ_INT(infvsr_backend_weights_imported(be, ts, 1, &token, &err), INFVSR_OK);
    conv_bits(be, &x, &w, &y, got);
    CHECK(memcmp(got, per_call, n) == 0);
    CHECK_EQ_INT(c->wcache.packs, 2);
    CHECK_EQ_INT(c->wcache.bytes, 0);
    infvsr_backend_weights_released(be, token);
    free(per_call), free(got);
    infvsr_tensor_release(&x), infvsr_tensor_release(&w), infvsr_tensor_release(&y);
    infvsr_backend_free(be);
}

static const struct test_case tests[] = {
    TEST(test_conv3d_bf16_dispatch),
    TEST(test_cpu_packed_conv_weights_amx),
    TEST(test_cpu_packed_weights),
    TEST(test_cpu_isa_select),
    TEST(test_linear_bf16_dispatch),
    TEST(test_resize_bicubic_tables),
    TEST(test_conv3d_path_choice),
    { 0 },
};

int main(int argc, char ** argv) {
    return test_main(argc, argv, tests);
}
