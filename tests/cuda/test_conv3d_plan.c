/* The CUDA conv3d's host-only decisions (kernels/cuda/conv3d_plan.c), in every build and
 * without a GPU: argument checks, whether cuDNN may take a call, which path runs it
 * (cuDNN, its im2col fallback, the implicit kernel), and the plan cache (hits, misses,
 * remembered refusals, LRU eviction with the payload destroyed exactly once). */
#include <string.h>

#include "check.h"
#include "conv3d_plan.h"

/* Metadata-only tensors: the checks never read data (dangling fake addresses are fine). */
static struct infvsr_tensor mk(enum infvsr_dtype dt, int nd, const int64_t * s, uintptr_t addr) {
    struct infvsr_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dt;
    t.ndim  = nd;
    for (int i = 0; i < nd; i++) t.shape[i] = s[i];
    t.data = (void *)addr;
    t.mem  = INFVSR_MEM_DEVICE;
    return t;
}

struct call {
    struct infvsr_tensor      x, w, b, y;
    struct infvsr_conv3d_args a;
};

/* The VAE's causal 3x3x3: x holds 2 cache frames + 4 new ones, "same" spatial padding. */
static void causal_333(struct call * c, enum infvsr_dtype act) {
    static const int64_t xs[4] = { 8, 6, 10, 12 }, ws[5] = { 16, 8, 3, 3, 3 }, bs[1] = { 16 }, ys[4] = { 16, 4, 10, 12 };
    c->x = mk(act, 4, xs, 0x10000);
    c->w = mk(INFVSR_TYPE_BF16, 5, ws, 0x20000);
    c->b = mk(INFVSR_TYPE_F32, 1, bs, 0x30000);
    c->y = mk(act, 4, ys, 0x40000);
    memset(&c->a, 0, sizeof c->a);
    c->a.x = &c->x, c->a.w = &c->w, c->a.b = &c->b, c->a.y = &c->y;
    c->a.stride_t = c->a.stride_h = c->a.stride_w = 1;
    c->a.pad_top = c->a.pad_bottom = c->a.pad_left = c->a.pad_right = 1;
}

static enum infvsr_status check(struct call * c, struct infvsr_conv3d_geom * g, struct infvsr_err * err) {
    memset(err, 0, sizeof *err);
    return infvsr_conv3d_geom_check(&c->a, g, err);
}

static void test_geom_valid(void) {
    struct call c;
    struct infvsr_conv3d_geom g;
    struct infvsr_err err;
    causal_333(&c, INFVSR_TYPE_BF16);
    CHECK_EQ_INT(check(&c, &g, &err), INFVSR_OK);
    CHECK_EQ_INT(g.to, 4); /* no temporal padding: the cache frames make the output length */
    CHECK_EQ_INT(g.ho, 10);
    CHECK_EQ_INT(g.wo, 12);
    CHECK_EQ_INT(g.kc, 8 * 27);
    CHECK_EQ_INT(g.positions, 4 * 10 * 12);
    CHECK(g.has_bias);
    CHECK_EQ_INT(g.b_dtype, INFVSR_TYPE_F32);
    /* the VAE downsample: stride 2, pads bottom/right only */
    static const int64_t xs[4] = { 4, 1, 10, 13 }, ws[5] = { 6, 4, 1, 3, 3 }, ys[4] = { 6, 1, 5, 6 };
    c.x = mk(INFVSR_TYPE_BF16, 4, xs, 0x10000);
    c.w = mk(INFVSR_TYPE_F16, 5, ws, 0x20000);
    c.y = mk(INFVSR_TYPE_F32, 4, ys, 0x40000); /* bf16 in, f32 out: allowed */
    c.a.b = NULL;
    c.a.stride_h = c.a.stride_w = 2;
    c.a.pad_top = c.a.pad_left = 0;
    CHECK_EQ_INT(check(&c, &g, &err), INFVSR_OK);
    CHECK_EQ_INT(g.pb, 1);
    CHECK(!g.has_bias);
}

static void test_geom_refusals(void) {
    struct call c;
    struct infvsr_conv3d_geom g;
    struct infvsr_err err;

    causal_333(&c, INFVSR_TYPE_BF16);
    c.y.shape[2] = 12; /* as if the padding were wider */
    CHECK_EQ_INT(check(&c, &g, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "[16, 4, 10, 12]");

    causal_333(&c, INFVSR_TYPE_BF16);
    c.a.stride_h = 0;
    CHECK_EQ_INT(check(&c, &g, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "stride");

    causal_333(&c, INFVSR_TYPE_BF16);
    c.a.pad_right = -1;
    CHECK_EQ_INT(check(&c, &g, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "pads");

    causal_333(&c, INFVSR_TYPE_BF16);
    c.x.ndim = 5; /* a batch axis the op does not have */
    CHECK_EQ_INT(check(&c, &g, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "ranks 5, 5, 4");

    causal_333(&c, INFVSR_TYPE_BF16);
    c.w.shape[1] = 7;
    CHECK_EQ_INT(check(&c, &g, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "in-channels 7");

    causal_333(&c, INFVSR_TYPE_BF16);
    c.x.shape[1] = 2; /* fewer frames than the kernel: the caller forgot the cache */
    CHECK_EQ_INT(check(&c, &g, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "larger than the padded input");

    causal_333(&c, INFVSR_TYPE_BF16);
    c.b.shape[0] = 15;
    CHECK_EQ_INT(check(&c, &g, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "b has 15 elements");

    causal_333(&c, INFVSR_TYPE_F32);
    c.y.dtype = INFVSR_TYPE_BF16;
    CHECK_EQ_INT(check(&c, &g, &err), INFVSR_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(err.msg, "f32 input with bf16 output");

    causal_333(&c, INFVSR_TYPE_BF16);
    c.x.dtype = INFVSR_TYPE_F16; /* a weight dtype, not an activation one */
    CHECK_EQ_INT(check(&c, &g, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "activations must be");

    causal_333(&c, INFVSR_TYPE_BF16);
    c.y.data = c.x.data;
    CHECK_EQ_INT(check(&c, &g, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "alias");

    causal_333(&c, INFVSR_TYPE_BF16);
    c.a.w = NULL;
    CHECK_EQ_INT(check(&c, &g, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_EQ_INT(infvsr_conv3d_geom_check(NULL, &g, &err), INFVSR_ERR_INVALID_ARG);

    /* GEMM depth beyond 2^31: Cin * 27 */
    causal_333(&c, INFVSR_TYPE_BF16);
    c.x.shape[0] = c.w.shape[1] = (int64_t)1 << 27;
    CHECK_EQ_INT(check(&c, &g, &err), INFVSR_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(err.msg, "2^31");
}

static void test_cudnn_accepts(void) {
    struct call c;
    struct infvsr_conv3d_geom g;
    struct infvsr_err err;
    const char * why = NULL;
    causal_333(&c, INFVSR_TYPE_BF16);
    CHECK_EQ_INT(check(&c, &g, &err), INFVSR_OK);
    CHECK(infvsr_conv3d_cudnn_accepts(&g, 0x10000, 0x20000, 0x30000, 0x40000, &why));
    CHECK(why == NULL);
    CHECK(infvsr_conv3d_cudnn_accepts(&g, 0x10000, 0x20000, 0, 0x40000, NULL)); /* no bias pointer */
    /* a view 2 bf16 elements into a tensor: cuDNN was promised 16-byte alignment */
    CHECK(!infvsr_conv3d_cudnn_accepts(&g, 0x10004, 0x20000, 0x30000, 0x40000, &why));
    CHECK_STR_CONTAINS(why, "aligned");
    CHECK(!infvsr_conv3d_cudnn_accepts(&g, 0x10000, 0x20000, 0x30000, 0x40008, &why));
    /* an output of 2^31 elements: beyond what cuDNN is given */
    struct infvsr_conv3d_geom big = g;
    big.cout = 1 << 16, big.to = 1 << 5, big.ho = 1 << 5, big.wo = 1 << 5;
    CHECK(!infvsr_conv3d_cudnn_accepts(&big, 0x10000, 0x20000, 0x30000, 0x40000, &why));
    CHECK_STR_CONTAINS(why, "2^31");
    big.wo = (1 << 5) - 1; /* one row less: fits */
    CHECK(infvsr_conv3d_cudnn_accepts(&big, 0x10000, 0x20000, 0x30000, 0x40000, &why));
    /* f32 activations: cuDNN takes them too (FLOAT graph) */
    causal_333(&c, INFVSR_TYPE_F32);
    CHECK_EQ_INT(check(&c, &g, &err), INFVSR_OK);
    CHECK(infvsr_conv3d_cudnn_accepts(&g, 0x10000, 0x20000, 0x30000, 0x40000, &why));
    /* empty output */
    g.positions = 0;
    CHECK(!infvsr_conv3d_cudnn_accepts(&g, 0x10000, 0x20000, 0x30000, 0x40000, &why));
}

static void test_engine_notes(void) {
    struct infvsr_conv3d_engine_notes n = { 0 };
    CHECK(infvsr_conv3d_cudnn_engine_ok(INFVSR_TYPE_BF16, &n));
    CHECK(infvsr_conv3d_cudnn_engine_ok(INFVSR_TYPE_F32, &n));
    n.tensor_core = true; /* bf16 on tensor cores: the point; f32 on tensor cores: TF32 */
    CHECK(infvsr_conv3d_cudnn_engine_ok(INFVSR_TYPE_BF16, &n));
    CHECK(!infvsr_conv3d_cudnn_engine_ok(INFVSR_TYPE_F32, &n));
    n = (struct infvsr_conv3d_engine_notes){ .down_convert = true };
    CHECK(infvsr_conv3d_cudnn_engine_ok(INFVSR_TYPE_BF16, &n));
    CHECK(!infvsr_conv3d_cudnn_engine_ok(INFVSR_TYPE_F32, &n));
    n = (struct infvsr_conv3d_engine_notes){ .reduced_reduction = true };
    CHECK(!infvsr_conv3d_cudnn_engine_ok(INFVSR_TYPE_BF16, &n));
    n = (struct infvsr_conv3d_engine_notes){ .nondeterministic = true };
    CHECK(!infvsr_conv3d_cudnn_engine_ok(INFVSR_TYPE_BF16, &n));
}

static void test_select(void) {
    struct call c;
    struct infvsr_conv3d_geom bf, f32;
    struct infvsr_err err;
    causal_333(&c, INFVSR_TYPE_BF16);
    CHECK_EQ_INT(check(&c, &bf, &err), INFVSR_OK);
    causal_333(&c, INFVSR_TYPE_F32);
    CHECK_EQ_INT(check(&c, &f32, &err), INFVSR_OK);
    /* args: requested, geom, cudnn_ready, cudnn_accepts, cudnn_refused */
    CHECK_EQ_INT(infvsr_conv3d_select(INFVSR_CUDA_CONV_AUTO, &bf, true, true, false), INFVSR_CONV3D_PATH_CUDNN);
    CHECK_EQ_INT(infvsr_conv3d_select(INFVSR_CUDA_CONV_AUTO, &f32, true, true, false), INFVSR_CONV3D_PATH_CUDNN);
    CHECK_EQ_INT(infvsr_conv3d_select(INFVSR_CUDA_CONV_CUDNN, &bf, true, true, false), INFVSR_CONV3D_PATH_CUDNN);
    /* built without cuDNN, or cudnnCreate failed: im2col */
    CHECK_EQ_INT(infvsr_conv3d_select(INFVSR_CUDA_CONV_AUTO, &bf, false, true, false), INFVSR_CONV3D_PATH_IM2COL);
    CHECK_EQ_INT(infvsr_conv3d_select(INFVSR_CUDA_CONV_CUDNN, &bf, false, true, false), INFVSR_CONV3D_PATH_IM2COL);
    /* a call cuDNN may not take, or a shape it refused before: im2col */
    CHECK_EQ_INT(infvsr_conv3d_select(INFVSR_CUDA_CONV_AUTO, &bf, true, false, false), INFVSR_CONV3D_PATH_IM2COL);
    CHECK_EQ_INT(infvsr_conv3d_select(INFVSR_CUDA_CONV_CUDNN, &bf, true, true, true), INFVSR_CONV3D_PATH_IM2COL);
    /* forced paths */
    CHECK_EQ_INT(infvsr_conv3d_select(INFVSR_CUDA_CONV_IM2COL, &bf, true, true, false), INFVSR_CONV3D_PATH_IM2COL);
    CHECK_EQ_INT(infvsr_conv3d_select(INFVSR_CUDA_CONV_IMPLICIT, &bf, true, true, false), INFVSR_CONV3D_PATH_IMPLICIT);
    CHECK_EQ_INT(infvsr_conv3d_select(INFVSR_CUDA_CONV_IMPLICIT, &f32, true, true, false), INFVSR_CONV3D_PATH_IM2COL);
    CHECK(strcmp(infvsr_conv3d_path_name(INFVSR_CONV3D_PATH_CUDNN), "cudnn") == 0);
    CHECK(strcmp(infvsr_conv3d_path_name(INFVSR_CONV3D_PATH_IM2COL), "im2col") == 0);
    CHECK(strcmp(infvsr_conv3d_path_name(INFVSR_CONV3D_PATH_IMPLICIT), "implicit") == 0);
}

static void test_key_covers_the_tuple(void) {
    struct call c;
    struct infvsr_conv3d_geom g, h;
    struct infvsr_err err;
    struct infvsr_conv3d_plan_key k0, k1;
    causal_333(&c, INFVSR_TYPE_BF16);
    CHECK_EQ_INT(check(&c, &g, &err), INFVSR_OK);
    infvsr_conv3d_plan_key_make(&g, &k0);
    /* w's and b's stored dtypes do not change the plan (converted before cuDNN) */
    h = g, h.w_dtype = INFVSR_TYPE_F32, h.b_dtype = INFVSR_TYPE_BF16;
    infvsr_conv3d_plan_key_make(&h, &k1);
    CHECK(memcmp(&k0, &k1, sizeof k0) == 0);
    /* every other field does */
    for (int f = 0; f < 18; f++) {
        h = g;
        switch (f) {
        case 0: h.cin++; break;
        case 1: h.t++; break;
        case 2: h.h++; break;
        case 3: h.w++; break;
        case 4: h.cout++; break;
        case 5: h.kt++; break;
        case 6: h.kh++; break;
        case 7: h.kw++; break;
        case 8: h.st++; break;
        case 9: h.sh++; break;
        case 10: h.sw++; break;
        case 11: h.pt++; break;
        case 12: h.pb++; break;
        case 13: h.pl++; break;
        case 14: h.pr++; break;
        case 15: h.x_dtype = INFVSR_TYPE_F32; break;
        case 16: h.y_dtype = INFVSR_TYPE_F32; break;
        case 17: h.has_bias = false; break;
        }
        infvsr_conv3d_plan_key_make(&h, &k1);
        CHECK_MSG(memcmp(&k0, &k1, sizeof k0) != 0, "field %d not in the key", f);
    }
}

static int destroyed[16];
static void destroy(void * payload, void * ud) {
    CHECK(ud == (void *)destroyed);
    destroyed[(int *)payload - destroyed]++;
}

static struct infvsr_conv3d_plan_key key_n(int n) {
    struct infvsr_conv3d_plan_key k;
    memset(&k, 0, sizeof k);
    k.v[0] = n;
    return k;
}

static void test_cache(void) {
    memset(destroyed, 0, sizeof destroyed);
    struct infvsr_conv3d_plan_cache c;
    CHECK(infvsr_conv3d_plan_cache_init(&c, 3, destroy, destroyed));
    bool found = true;
    struct infvsr_conv3d_plan_key k1 = key_n(1), k2 = key_n(2), k3 = key_n(3), k4 = key_n(4);
    CHECK(infvsr_conv3d_plan_cache_get(&c, &k1, &found) == NULL);
    CHECK(!found);
    CHECK_EQ_INT(c.misses, 1);
    infvsr_conv3d_plan_cache_put(&c, &k1, &destroyed[1]);
    infvsr_conv3d_plan_cache_put(&c, &k2, NULL); /* cuDNN refused shape 2 */
    infvsr_conv3d_plan_cache_put(&c, &k3, &destroyed[3]);
    CHECK(infvsr_conv3d_plan_cache_get(&c, &k1, &found) == &destroyed[1]);
    CHECK(found);
    CHECK(infvsr_conv3d_plan_cache_get(&c, &k2, &found) == NULL);
    CHECK(found); /* a remembered refusal is a hit */
    CHECK_EQ_INT(c.hits, 2);
    CHECK_EQ_INT(c.misses, 1);
    /* full: 3 is the least recently used (1 and 2 were just read) and goes */
    infvsr_conv3d_plan_cache_put(&c, &k4, &destroyed[4]);
    CHECK_EQ_INT(c.evictions, 1);
    CHECK_EQ_INT(destroyed[3], 1);
    CHECK(infvsr_conv3d_plan_cache_get(&c, &k3, &found) == NULL);
    CHECK(!found);
    /* evicting a refusal destroys nothing */
    infvsr_conv3d_plan_cache_get(&c, &k1, &found);
    infvsr_conv3d_plan_cache_get(&c, &k4, &found);
    infvsr_conv3d_plan_cache_put(&c, &k3, &destroyed[3]);
    CHECK_EQ_INT(c.evictions, 2);
    CHECK(infvsr_conv3d_plan_cache_get(&c, &k2, &found) == NULL && !found);
    CHECK_EQ_INT(destroyed[3], 1);
    /* replacing a plan with a refusal (an engine that failed at run time) destroys it */
    infvsr_conv3d_plan_cache_put(&c, &k1, NULL);
    CHECK_EQ_INT(destroyed[1], 1);
    CHECK(infvsr_conv3d_plan_cache_get(&c, &k1, &found) == NULL && found);
    /* free destroys what is left, once each */
    infvsr_conv3d_plan_cache_free(&c);
    CHECK_EQ_INT(destroyed[1], 1);
    CHECK_EQ_INT(destroyed[3], 2);
    CHECK_EQ_INT(destroyed[4], 1);
    CHECK(c.e == NULL && c.n == 0);
    infvsr_conv3d_plan_cache_free(&c); /* twice: harmless */
}

static const struct test_case tests[] = {
    TEST(test_geom_valid),
    TEST(test_geom_refusals),
    TEST(test_cudnn_accepts),
    TEST(test_engine_notes),
    TEST(test_select),
    TEST(test_key_covers_the_tuple),
    TEST(test_cache),
    { 0 },
};

int main(int argc, char ** argv) { return test_main(argc, argv, tests); }
