/* Op cases: conv3d (strides, asymmetric pads, 1x1x1, kt 3 and 4, 1-pixel images; shapes for
 * the cpu's native bf16 kernel: odd channel counts, tiny images, T = 1 (every bf16 case on
 * the cpu checks which path ran); the CPU's Winograd F(2x2) and F(4x4) paths forced, with
 * small blocks; on CUDA each case also with every conv kernel forced: cuDNN (its im2col
 * fallback where cuDNN refuses a shape), im2col, and with bf16 the implicit-GEMM kernel)
 * and resize (nearest, bilinear and bicubic with antialias, up and down), and their
 * refused calls. */
#include "backend_ops.h"
#include "conv3d_winograd.h"

#ifdef INFVSR_USE_CUDA
#include "cuda_backend.h"
#endif

static const enum infvsr_dtype wtypes[] = { INFVSR_TYPE_F32, INFVSR_TYPE_BF16, INFVSR_TYPE_F16 };

struct conv_p {
    int64_t           xs[4], ws[5], ys[4];
    int               st, sh, sw, pt, pb, pl, pr;
    enum infvsr_dtype wdt;
    bool              bias;
    int               wino_tile;     /* CPU kernels: 0 automatic, 2 or 4 forced         */
    bool              wino_small;    /* CPU kernels: a block budget of a few tiles      */
    bool              y_is_x;        /* refused: in place                               */
    bool              y_f32;         /* y f32 whatever the activation dtype (cpu only)  */
    bool              frame_groups;  /* cpu bf16: one output frame per input-copy group */
    int               cuda_kernel;   /* enum infvsr_cuda_conv_kernel                    */
};

static enum infvsr_status run_conv(struct bo_ctx * c, const struct bo_case * k) {
    const struct conv_p * p = BO_P(k, struct conv_p);
    struct infvsr_tensor * x = bo_in(c, "x", BO_ACT, 4, p->xs, -1, 1);
    struct infvsr_tensor * w = bo_in(c, "w", p->wdt, 5, p->ws, -0.3, 0.3);
    struct infvsr_tensor * b = p->bias ? bo_in(c, "b", p->wdt, 1, S1(p->ws[0]), -0.5, 0.5) : NULL;
    struct infvsr_tensor * y = p->y_is_x ? x : bo_out(c, "y", p->y_f32 ? INFVSR_TYPE_F32 : BO_ACT, 4, p->ys);
    BO_SETUP_DONE(c);
    struct infvsr_conv3d_args a = { .x = x, .w = w, .b = b, .stride_t = p->st, .stride_h = p->sh, .stride_w = p->sw,
                                    .pad_top = p->pt, .pad_bottom = p->pb, .pad_left = p->pl, .pad_right = p->pr, .y = y };
    /* The CPU kernels' path choice is process-wide (cpu and devsim share it); the float64
     * reference ignores it. */
    double old_volume = 0;
    int    old_tile = 0;
    size_t old_block = 0;
    if (p->wino_tile) {
        const size_t points = p->wino_tile == 4 ? 36 : 16;
        old_volume = infvsr__conv3d_winograd_set_min_volume(0);
        old_tile   = infvsr__conv3d_winograd_set_tile(p->wino_tile);
        /* 3 tiles of a 5 -> 4 channel conv per block: the tiles of a frame span blocks */
        old_block = infvsr__conv3d_winograd_set_block_bytes(p->wino_small ? 3 * points * (5 * 6 + 4 * 4) * sizeof(float) : 0);
    }
#ifdef INFVSR_USE_CUDA
    if (c->is_cuda) infvsr_cuda_backend_set_conv_kernel(c->be, (enum infvsr_cuda_conv_kernel)p->cuda_kernel);
#endif
    const uint64_t native0 = infvsr__conv3d_bf16_calls(), amx0 = infvsr__conv3d_amx_calls();
    const size_t old_xp = p->frame_groups ? infvsr__conv3d_bf16_set_xp_bytes(1) : 0;
    const size_t old_xp_amx = p->frame_groups ? infvsr__conv3d_amx_set_xp_bytes(1) : 0;
    enum infvsr_status st = infvsr_op_conv3d(c->be, &a, &c->err);
    if (p->frame_groups) infvsr__conv3d_bf16_set_xp_bytes(old_xp), infvsr__conv3d_amx_set_xp_bytes(old_xp_amx);
    if (st == INFVSR_OK && !c->is_ref && c->act == INFVSR_TYPE_BF16 && strcmp(infvsr_backend_name(c->be), "cpu") == 0) {
        /* The cpu's bf16 path: the AMX implicit GEMM on amx (every shape), the AVX512-BF16
         * one on avx512bf16 except where the f32 path would take Winograd F(4x4) with kt > 1
         * (generic: widen, f32 kernel, round), generic on avx2. A case that ran another
         * path fails. */
        const enum infvsr_cpu_isa isa = infvsr_cpu_backend_isa(c->be);
        const char * want = isa >= INFVSR_CPU_ISA_AMX ? "amx"
                          : isa >= INFVSR_CPU_ISA_AVX512BF16 && !(p->wino_tile == 4 && p->ws[2] > 1) ? "avx512bf16"
                                                                                                    : "generic";
        const char * ran = infvsr__conv3d_amx_calls() != amx0 ? "amx"
                         : infvsr__conv3d_bf16_calls() != native0 ? "avx512bf16"
                                                                  : "generic";
        if (strcmp(ran, want) != 0)
            st = infvsr_err_set(&c->err, INFVSR_ERR_UNSUPPORTED, "conv3d: the %s bf16 path ran, expected the %s one", ran, want);
    }
#ifdef INFVSR_USE_CUDA
    if (c->is_cuda) {
        /* A shape cuDNN refuses runs im2col (a legitimate fallback, not a failure): say
         * so, so that a GPU run's log shows which shapes cuDNN did not take. */
        const char * ran = infvsr_cuda_backend_last_conv_kernel(c->be);
        if (st == INFVSR_OK && p->cuda_kernel == INFVSR_CUDA_CONV_CUDNN && infvsr_cuda_backend_has_cudnn(c->be) &&
            strcmp(ran, "cudnn") != 0)
            printf("  note: conv3d x[%lld,%lld,%lld,%lld] k[%lld,%lld,%lld]: cuDNN refused, ran %s\n",
                   (long long)p->xs[0], (long long)p->xs[1], (long long)p->xs[2], (long long)p->xs[3],
                   (long long)p->ws[2], (long long)p->ws[3], (long long)p->ws[4], ran);
        infvsr_cuda_backend_set_conv_kernel(c->be, INFVSR_CUDA_CONV_AUTO);
    }
#endif
    if (p->wino_tile) {
        infvsr__conv3d_winograd_set_block_bytes(old_block);
        infvsr__conv3d_winograd_set_tile(old_tile);
        infvsr__conv3d_winograd_set_min_volume(old_volume);
    }
    return st;
}

static struct bo_case * add_conv(struct bo_list * l, const struct conv_p * p, enum bo_kind kind) {
    struct bo_case * k = bo_add(l, "conv3d", kind, run_conv, p, sizeof *p);
    char sx[96], sw[96], sy[96], path[48] = "";
    if (p->wino_tile) snprintf(path, sizeof path, " cpu:winograd%d%s", p->wino_tile, p->wino_small ? "-small-blocks" : "");
    static const char * cuda_kernels[] = { "", " cuda:im2col", " cuda:implicit", " cuda:cudnn" };
    if (p->cuda_kernel > 0 && p->cuda_kernel < 4) snprintf(path, sizeof path, "%s", cuda_kernels[p->cuda_kernel]);
    bo_desc(k, "x%s w%s:%s%s s%d%d%d p%d%d%d%d y%s%s", bo_shape(sx, 4, p->xs), bo_shape(sw, 5, p->ws), bo_dt_name(p->wdt),
            p->bias ? "+b" : "", p->st, p->sh, p->sw, p->pt, p->pb, p->pl, p->pr, p->y_is_x ? "=x" : bo_shape(sy, 4, p->ys),
            p->y_f32 ? ":f32" : p->frame_groups ? " cpu:frame-groups" : path);
    k->tol_f32 = BO_TOL_GEMM;
    return k;
}

/* cin, t, h, w, cout, kt, kh, kw, st, sh, sw, pt, pb, pl, pr */
static struct conv_p conv(const int64_t * g, enum infvsr_dtype wdt, bool bias) {
    struct conv_p p = { .xs = { g[0], g[1], g[2], g[3] }, .ws = { g[4], g[0], g[5], g[6], g[7] }, .st = (int)g[8],
                        .sh = (int)g[9], .sw = (int)g[10], .pt = (int)g[11], .pb = (int)g[12], .pl = (int)g[13],
                        .pr = (int)g[14], .wdt = wdt, .bias = bias };
    p.ys[0] = g[4];
    p.ys[1] = (g[1] - g[5]) / g[8] + 1;
    p.ys[2] = (g[2] + g[11] + g[12] - g[6]) / g[9] + 1;
    p.ys[3] = (g[3] + g[13] + g[14] - g[7]) / g[10] + 1;
    return p;
}

/* ---- resize ---- */

static const char * resize_names[] = { "nearest", "bilinear_aa", "bicubic_aa" };

struct resize_p {
    int     mode, nd;
    int64_t xs[3], ys[3];
    bool    y_is_x;
};

static enum infvsr_status run_resize(struct bo_ctx * c, const struct bo_case * k) {
    const struct resize_p * p = BO_P(k, struct resize_p);
    struct infvsr_tensor * x = bo_in(c, "x", BO_ACT, p->nd, p->xs, 0, 1);
    struct infvsr_tensor * y = p->y_is_x ? x : bo_out(c, "y", BO_ACT, p->nd, p->ys);
    BO_SETUP_DONE(c);
    return infvsr_op_resize(c->be, (enum infvsr_resize_mode)p->mode, x, y, &c->err);
}

static struct bo_case * add_resize(struct bo_list * l, int mode, const int64_t * xs, const int64_t * ys,
                                   enum bo_kind kind) {
    struct resize_p p = { .mode = mode, .nd = 3, .xs = { xs[0], xs[1], xs[2] }, .ys = { ys[0], ys[1], ys[2] } };
    struct bo_case * k = bo_add(l, "resize", kind, run_resize, &p, sizeof p);
    char sx[96], sy[96];
    bo_desc(k, "%s x%s -> y%s", (unsigned)mode < 3 ? resize_names[mode] : "(bad mode)", bo_shape(sx, 3, p.xs),
            bo_shape(sy, 3, p.ys));
    return k;
}

void bo_cases_conv(struct bo_list * l) {
    static const int64_t cases[][15] = {
        { 3, 3, 9, 11, 5, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1 },    /* causal-style 3x3x3, same padding      */
        { 4, 1, 10, 13, 6, 1, 3, 3, 1, 2, 2, 0, 1, 0, 1 },   /* stride 2, asymmetric pads (VAE down)  */
        { 2, 5, 4, 6, 3, 4, 1, 1, 1, 1, 1, 0, 0, 0, 0 },     /* kt 4                                  */
        { 3, 6, 9, 9, 4, 3, 4, 4, 2, 2, 2, 2, 1, 1, 2 },     /* kh = kw = 4, strides 2 in t, h, w     */
        { 8, 2, 5, 7, 16, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0 },    /* 1x1x1: a direct GEMM                  */
        { 5, 1, 1, 3, 2, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1 },     /* a 1-pixel-high image                  */
        { 1, 1, 7, 5, 1, 1, 3, 1, 1, 3, 1, 2, 0, 0, 0 },     /* stride 3, top pad only                */
        { 8, 5, 11, 13, 12, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1 },  /* causal 3x3x3, more channels           */
        { 6, 3, 12, 10, 5, 1, 3, 3, 1, 2, 2, 0, 1, 0, 1 },   /* downsample 2-D                        */
        { 16, 2, 7, 9, 24, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0 },   /* 1x1x1, wider                          */
        { 4, 6, 8, 8, 8, 3, 1, 1, 2, 1, 1, 0, 0, 0, 0 },     /* time conv, stride 2                   */
        { 3, 3, 20, 37, 70, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1 },  /* Cin 3 (K = 81), several tiles         */
    };
    int i = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int d = 0; d < 3; d++, i++) {
            struct conv_p p = conv(cases[c], wtypes[d], i % 2 == 0);
            add_conv(l, &p, BO_COMPARE);
            /* enum infvsr_cuda_conv_kernel; AUTO (above) is cuDNN in a cuDNN build, else im2col */
            p.cuda_kernel = 1; /* IM2COL: the fallback, on every case */
            add_conv(l, &p, BO_COMPARE)->flags |= BO_CUDA_ONLY;
            p.cuda_kernel = 3; /* CUDNN (im2col where cuDNN refuses the shape) */
            add_conv(l, &p, BO_COMPARE)->flags |= BO_CUDA_ONLY;
            p.cuda_kernel = 2; /* IMPLICIT: bf16 only */
            add_conv(l, &p, BO_COMPARE)->flags |= BO_CUDA_ONLY | BO_BF16_ONLY;
        }
    }
    /* Shapes for the cpu's native bf16 conv (implicit GEMM; f32 and bf16 activations run
     * them too): odd Cin (a padding channel), Cin not a multiple of 2/16/32, Cout past one
     * 48-channel tile group and below 16/32 (the 1- and 2-strip tiles), strides 2 in h and w
     * (VAE downsampling: pad right/bottom only), 1x1 and 1xW images, T = 1, rows of 8
     * positions crossing image rows, a 1x1x1, each with and without bias. */
    static const int64_t native[][15] = {
        { 1, 3, 5, 6, 4, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1 },     /* Cin 1                                 */
        { 7, 3, 6, 9, 50, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1 },    /* Cin 7, Cout 50 (2 groups, partial)    */
        { 17, 1, 9, 7, 33, 1, 3, 3, 1, 2, 2, 0, 1, 0, 1 },   /* Cin 17, stride 2 (VAE down), T = 1    */
        { 33, 2, 4, 4, 16, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1 },   /* Cin 33, Cout 16 (1 strip)             */
        { 48, 4, 1, 1, 96, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1 },   /* 1x1 image: only the centre taps       */
        { 66, 3, 1, 13, 31, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1 },  /* 1-row image, Cout 31 (2 strips)       */
        { 96, 1, 5, 5, 3, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1 },    /* head-like: Cout 3, T = 1              */
        { 35, 4, 6, 5, 49, 3, 1, 1, 2, 1, 1, 0, 0, 0, 0 },   /* time conv stride 2, Cout 49           */
        { 31, 2, 3, 11, 70, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0 },  /* 1x1x1, odd Cin                        */
        { 5, 2, 2, 3, 9, 2, 2, 2, 2, 2, 2, 1, 0, 0, 1 },     /* even kernel, strides 2, one-sided pads */
        { 41, 2, 5, 35, 20, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1 },  /* 2 blocks of 32 channels x 3 of 16 columns, both partial */
        { 6, 7, 5, 6, 20, 3, 3, 3, 2, 1, 1, 1, 1, 1, 1 },    /* time stride 2, 3 output frames          */
    };
    for (size_t c = 0; c < sizeof native / sizeof native[0]; c++) {
        for (int bias = 0; bias < 2; bias++) {
            struct conv_p p = conv(native[c], wtypes[(c + (size_t)bias) % 3], bias);
            add_conv(l, &p, BO_COMPARE);
        }
    }
    for (size_t c = 0; c < sizeof native / sizeof native[0]; c++) { /* input copied per output frame */
        if ((native[c][1] - native[c][5]) / native[c][8] < 1) continue; /* one output frame */
        struct conv_p p = conv(native[c], INFVSR_TYPE_BF16, true);
        p.frame_groups = true;
        add_conv(l, &p, BO_COMPARE)->flags |= BO_HOST_ONLY;
    }
    for (size_t c = 1; c < 3; c++) { /* bf16 x, f32 y: the native kernel's f32 store */
        struct conv_p p = conv(native[c], INFVSR_TYPE_BF16, c == 1);
        p.y_f32 = true;
        add_conv(l, &p, BO_COMPARE)->flags |= BO_HOST_ONLY;
    }
    /* The CPU's Winograd paths (3x3 spatial, stride 1), each forced: odd sizes (partial
     * last tiles), 1 and 6 frames, kt 1/2/3, Cin 5 and 96, asymmetric and zero pads, a
     * row of more than 8 tiles; then with blocks of 3 tiles so a frame spans blocks. */
    static const int64_t wino[][15] = {
        { 5, 6, 7, 9, 4, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1 },
        { 5, 1, 7, 9, 3, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1 },
        { 96, 3, 7, 9, 8, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1 },
        { 4, 2, 6, 5, 3, 1, 3, 3, 1, 1, 1, 0, 2, 2, 0 },
        { 3, 4, 8, 8, 2, 2, 3, 3, 1, 1, 1, 0, 0, 0, 0 },
        { 2, 1, 3, 3, 2, 1, 3, 3, 1, 1, 1, 0, 0, 0, 0 },
        { 3, 3, 1, 4, 2, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1 },
        { 16, 3, 13, 37, 8, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1 },
    };
    i = 0;
    for (int tile = 2; tile <= 4; tile += 2) {
        for (int small = 0; small < 2; small++) {
            for (size_t c = 0; c < sizeof wino / sizeof wino[0]; c++) {
                for (int d = 0; d < 3; d++, i++) {
                    struct conv_p p = conv(wino[c], wtypes[d], i % 2 == 0);
                    p.wino_tile = tile, p.wino_small = small;
                    add_conv(l, &p, BO_COMPARE);
                }
            }
        }
    }
    /* refused: y of the wrong shape, stride 0, x not 4-D, in-channels that differ */
    {
        static const int64_t g[15] = { 2, 3, 5, 5, 3, 3, 3, 3, 1, 1, 1, 0, 0, 0, 0 };
        struct conv_p p = conv(g, INFVSR_TYPE_F32, false);
        p.ys[2] = p.ys[3] = 5; /* as if padded */
        add_conv(l, &p, BO_INVALID)->needle = "[3, 1, 3, 3]";
        p = conv(g, INFVSR_TYPE_F32, false);
        p.sh = 0;
        add_conv(l, &p, BO_INVALID)->needle = "stride";
        p = conv(g, INFVSR_TYPE_F32, false);
        p.ws[1] = 3;
        add_conv(l, &p, BO_INVALID);
        p = conv(g, INFVSR_TYPE_F32, false);
        p.pt = -1;
        add_conv(l, &p, BO_INVALID);
        p = conv(g, INFVSR_TYPE_F32, true);
        p.ws[2] = 4; /* kernel longer than the clip */
        add_conv(l, &p, BO_INVALID);
        static const int64_t one[15] = { 4, 2, 3, 3, 4, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0 };
        p = conv(one, INFVSR_TYPE_F32, false);
        p.y_is_x = true; /* 1x1x1 with Cin == Cout: y could be x, but is not allowed to */
        add_conv(l, &p, BO_INVALID)->needle = "alias";
    }

    for (int m = 0; m < INFVSR_RESIZE_COUNT; m++) {
        add_resize(l, m, S3(3, 6, 9), S3(3, 24, 36), BO_COMPARE);     /* x4 up                        */
        add_resize(l, m, S3(1, 480, 20), S3(1, 384, 30), BO_COMPARE); /* 480 -> 384 down, 20 -> 30 up */
        add_resize(l, m, S3(2, 180, 7), S3(2, 384, 5), BO_COMPARE);   /* 180 -> 384 up, odd down      */
        add_resize(l, m, S3(1, 1, 50), S3(1, 3, 7), BO_COMPARE);      /* single row, strong down      */
        add_resize(l, m, S3(2, 40, 30), S3(2, 17, 23), BO_COMPARE);   /* down in both                 */
        add_resize(l, m, S3(3, 9, 11), S3(3, 36, 44), BO_COMPARE);    /* x4 up, odd                   */
    }
    add_resize(l, INFVSR_RESIZE_BILINEAR_AA, S3(3, 18, 32), S3(3, 38, 38), BO_COMPARE);
    add_resize(l, INFVSR_RESIZE_NEAREST, S3(2, 7, 9), S3(2, 14, 5), BO_COMPARE);
    add_resize(l, INFVSR_RESIZE_BICUBIC_AA, S3(2, 4, 4), S3(3, 8, 8), BO_INVALID)->needle = "leading";
    add_resize(l, 9, S3(2, 4, 4), S3(2, 8, 8), BO_INVALID)->needle = "mode";
    struct bo_case * k = add_resize(l, INFVSR_RESIZE_BILINEAR_AA, S3(2, 4, 4), S3(2, 4, 4), BO_INVALID);
    ((struct resize_p *)(void *)k->p)->y_is_x = true;
    k->needle = "alias";
    bo_desc(k, "bilinear_aa x[2, 4, 4] -> y=x");
}
