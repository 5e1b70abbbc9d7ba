/* The cuDNN conv3d path's descriptors against cuDNN itself, without a GPU: for the op-case
 * table's conv shapes and the VAE's, every dtype combination, with and without bias, NCDHW
 * and channels-last, the operation descriptors conv3d_cudnn.cu builds must finalise (cuDNN
 * infers y's shape from x, w, strides and pre/post paddings at finalise and refuses a
 * mismatch, so this checks our reading of the op's padding and output-size convention
 * against cuDNN's), and a y one row too tall must be refused. What needs a device (the
 * operation graph, engines, execution) is not covered. Exit 77 without cuDNN. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "conv3d_plan.h"
#include "cuda_backend.h"

/* cin, t, h, w, cout, kt, kh, kw, st, sh, sw, pt, pb, pl, pr (tests/ops/cases_conv.c, plus VAE shapes) */
static const int64_t cases[][15] = {
    { 3, 3, 9, 11, 5, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1 },   { 4, 1, 10, 13, 6, 1, 3, 3, 1, 2, 2, 0, 1, 0, 1 },
    { 2, 5, 4, 6, 3, 4, 1, 1, 1, 1, 1, 0, 0, 0, 0 },    { 3, 6, 9, 9, 4, 3, 4, 4, 2, 2, 2, 2, 1, 1, 2 },
    { 8, 2, 5, 7, 16, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0 },   { 5, 1, 1, 3, 2, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1 },
    { 1, 1, 7, 5, 1, 1, 3, 1, 1, 3, 1, 2, 0, 0, 0 },    { 8, 5, 11, 13, 12, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1 },
    { 6, 3, 12, 10, 5, 1, 3, 3, 1, 2, 2, 0, 1, 0, 1 },  { 16, 2, 7, 9, 24, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0 },
    { 4, 6, 8, 8, 8, 3, 1, 1, 2, 1, 1, 0, 0, 0, 0 },    { 3, 3, 20, 37, 70, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1 },
    { 96, 6, 180, 320, 96, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1 }, /* VAE stage, 2 cache frames + 4     */
    { 384, 6, 90, 160, 384, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1 },
    { 96, 1, 360, 640, 96, 1, 3, 3, 1, 2, 2, 0, 1, 0, 1 }, /* downsample: bottom/right pad only */
    { 384, 3, 90, 160, 384, 3, 1, 1, 2, 1, 1, 0, 0, 0, 0 }, /* time downsample, stride 2       */
};

static struct infvsr_tensor mk(enum infvsr_dtype dt, int nd, const int64_t * s, uintptr_t addr) {
    struct infvsr_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dt;
    t.ndim  = nd;
    for (int i = 0; i < nd; i++) t.shape[i] = s[i];
    t.data = (void *)addr;
    return t;
}

static int n_checked;

static void check_case(const int64_t * c, enum infvsr_dtype xd, enum infvsr_dtype yd, bool bias, bool cl) {
    const int64_t xs[4] = { c[0], c[1], c[2], c[3] }, ws[5] = { c[4], c[0], c[5], c[6], c[7] }, bs[1] = { c[4] };
    const int64_t ys[4] = { c[4], (c[1] - c[5]) / c[8] + 1, (c[2] + c[11] + c[12] - c[6]) / c[9] + 1,
                            (c[3] + c[13] + c[14] - c[7]) / c[10] + 1 };
    struct infvsr_tensor      x = mk(xd, 4, xs, 0x1000), w = mk(INFVSR_TYPE_BF16, 5, ws, 0x2000),
                              b = mk(INFVSR_TYPE_F32, 1, bs, 0x3000), y = mk(yd, 4, ys, 0x4000);
    struct infvsr_conv3d_args a = { .x = &x, .w = &w, .b = bias ? &b : NULL, .stride_t = (int)c[8],
                                    .stride_h = (int)c[9], .stride_w = (int)c[10], .pad_top = (int)c[11],
                                    .pad_bottom = (int)c[12], .pad_left = (int)c[13], .pad_right = (int)c[14],
                                    .y = &y };
    struct infvsr_conv3d_geom g;
    struct infvsr_err         err = { 0 };
    CHECK_EQ_INT(infvsr_conv3d_geom_check(&a, &g, &err), INFVSR_OK);
    const char * st = "";
    const int    r  = infvsr_cuda_cudnn_check_conv_ops(&g, cl, &st);
    CHECK_MSG(r == 0, "x[%lld,%lld,%lld,%lld] k[%lld,%lld,%lld] %s -> %s%s %s: %s", (long long)c[0], (long long)c[1],
              (long long)c[2], (long long)c[3], (long long)c[5], (long long)c[6], (long long)c[7],
              infvsr_dtype_name(xd), infvsr_dtype_name(yd), bias ? " +b" : "", cl ? "NDHWC" : "NCDHW", st);
    /* the same call with y one row too tall: cuDNN's shape inference must refuse it */
    g.ho += 1;
    CHECK_MSG(infvsr_cuda_cudnn_check_conv_ops(&g, cl, &st) == 1, "a y one row too tall was accepted (%s)", st);
    n_checked += 2;
}

static void test_descriptors_finalise(void) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int cl = 0; cl < 2; cl++)
            for (int bias = 0; bias < 2; bias++) {
                check_case(cases[i], INFVSR_TYPE_BF16, INFVSR_TYPE_BF16, bias, cl);
                check_case(cases[i], INFVSR_TYPE_BF16, INFVSR_TYPE_F32, bias, cl);
                check_case(cases[i], INFVSR_TYPE_F32, INFVSR_TYPE_F32, bias, cl);
            }
    printf("  %d descriptor sets checked\n", n_checked);
}

static const struct test_case tests[] = {
    TEST(test_descriptors_finalise),
    { 0 },
};

int main(int argc, char ** argv) {
    struct infvsr_conv3d_geom g;
    memset(&g, 0, sizeof g);
    g.cin = g.t = g.h = g.w = g.cout = g.kt = g.kh = g.kw = g.to = g.ho = g.wo = 1;
    g.st = g.sh = g.sw = 1;
    g.x_dtype = g.w_dtype = g.y_dtype = INFVSR_TYPE_F32;
    const char * st = "";
    if (infvsr_cuda_cudnn_check_conv_ops(&g, false, &st) < 0) {
        printf("SKIP: %s\n", st);
        return 77;
    }
    return test_main(argc, argv, tests);
}
