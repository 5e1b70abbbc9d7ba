/* Weight import (engine/core/weight_set) on devsim, the path every module takes
 * (label "devsim"):
 *  - committed weights become views into ONE devsim allocation (device memory, unreadable
 *    by the host) and a linear + layer_norm on them is bit-identical to cpu on the original
 *    host weights (f32); in bf16 (import converts f32 weights to bf16 once, as the
 *    official pipeline's .to(bfloat16)) bit-identical to cpu on bf16 weights with every
 *    op's output rounded through bf16;
 *  - a KEEP_DTYPE table (rope freqs, f64) keeps its dtype and works through rope;
 *  - a weight the module forgot to register stays a host tensor and the op names it;
 *  - derived views made after commit (a row slice of w) work, a slice past the end of
 *    the import allocation is refused, and release hands the memory back. */
#include <string.h>

#include "check.h"
#include "core/weight_set.h"
#include "infvsr/backend.h"
#include "ops.h"

enum { M = 6, K = 32, N = 12 };

struct weights {
    struct infvsr_tensor w, b, ln_w, freqs, forgotten;
};

static void make_weights(struct weights * h) {
    memset(h, 0, sizeof *h);
    CHECK_EQ_INT(infvsr_tensor_alloc(&h->w, "blk.w", INFVSR_TYPE_F32, 2, (const int64_t[]){ N, K }), INFVSR_OK);
    CHECK_EQ_INT(infvsr_tensor_alloc(&h->b, "blk.b", INFVSR_TYPE_BF16, 1, (const int64_t[]){ N }), INFVSR_OK);
    CHECK_EQ_INT(infvsr_tensor_alloc(&h->ln_w, "blk.ln_w", INFVSR_TYPE_F32, 1, (const int64_t[]){ N }), INFVSR_OK);
    CHECK_EQ_INT(infvsr_tensor_alloc(&h->freqs, "rope.freqs", INFVSR_TYPE_F64, 3, (const int64_t[]){ M, 3, 2 }),
                 INFVSR_OK);
    CHECK_EQ_INT(infvsr_tensor_alloc(&h->forgotten, "blk.forgotten_w", INFVSR_TYPE_F32, 2, (const int64_t[]){ N, K }),
                 INFVSR_OK);
    test_fill_uniform(h->w.data, N * K, -0.3f, 0.3f, 1);
    float tmp[N];
    test_fill_uniform(tmp, N, -1.0f, 1.0f, 2);
    infvsr_convert_from_f32(h->b.data, INFVSR_TYPE_BF16, tmp, N);
    test_fill_uniform(h->ln_w.data, N, 0.5f, 1.5f, 3);
    for (int i = 0; i < M * 3; i++) {
        ((double *)h->freqs.data)[2 * i]     = __builtin_cos(0.1 * i);
        ((double *)h->freqs.data)[2 * i + 1] = __builtin_sin(0.1 * i);
    }
    test_fill_uniform(h->forgotten.data, N * K, -0.3f, 0.3f, 4);
}

static void free_weights(struct weights * h) {
    infvsr_tensor_release(&h->w);
    infvsr_tensor_release(&h->b);
    infvsr_tensor_release(&h->ln_w);
    infvsr_tensor_release(&h->freqs);
    infvsr_tensor_release(&h->forgotten);
}

/* A host weight converted to bf16 in place (what the import does on a bf16 backend). */
static void to_bf16(struct infvsr_tensor * t) {
    struct infvsr_tensor b;
    CHECK_EQ_INT(infvsr_tensor_alloc(&b, t->name, INFVSR_TYPE_BF16, t->ndim, t->shape), INFVSR_OK);
    infvsr_convert_from_f32(b.data, INFVSR_TYPE_BF16, t->data, (size_t)infvsr_tensor_numel(t));
    infvsr_tensor_release(t);
    *t = b;
}

/* y = bf16(y) for an f32 tensor: the rounding a bf16 store does, through the copy op. */
static enum infvsr_status round_bf16(struct infvsr_backend * be, struct infvsr_tensor * y, struct infvsr_err * err) {
    struct infvsr_tensor h;
    memset(&h, 0, sizeof h);
    infvsr_tensor_setup(&h, "y_bf16", INFVSR_TYPE_BF16, y->ndim, y->shape);
    enum infvsr_status st = infvsr_backend_tensor_alloc(be, &h, err);
    if (st == INFVSR_OK) st = infvsr_op_convert(be, y, &h, err);
    if (st == INFVSR_OK) st = infvsr_op_convert(be, &h, y, err);
    infvsr_backend_tensor_free(be, &h);
    return st;
}

/* y = rope(layer_norm(gelu(x w^T + b)) * ln_w) on backend be, x given on the host as f32;
 * returns y as f32 on the host (malloc'd). act: activation dtype; round: round each op's
 * f32 output through bf16 (the cpu expectation of a bf16 run). */
static float * forward(struct infvsr_backend * be, enum infvsr_dtype act, bool round, const struct weights * w,
                       const float * x_host, struct infvsr_err * err) {
    struct infvsr_tensor xh, x, y;
    float * out = NULL;
    memset(&x, 0, sizeof x);
    memset(&y, 0, sizeof y);
    infvsr_tensor_view(&xh, "x", INFVSR_TYPE_F32, 2, (const int64_t[]){ M, K }, (void *)x_host);
    infvsr_tensor_setup(&y, "y", act, 2, (const int64_t[]){ M, N });
    if (infvsr_backend_upload(be, &xh, act, &x, err) != INFVSR_OK) goto done;
    if (infvsr_backend_tensor_alloc(be, &y, err) != INFVSR_OK) goto done;
    if (infvsr_op_linear(be, &x, &w->w, &w->b, INFVSR_UNARY_GELU_TANH, &y, err) != INFVSR_OK) goto done;
    if (round && round_bf16(be, &y, err) != INFVSR_OK) goto done;
    if (infvsr_op_layer_norm(be, &y, &w->ln_w, NULL, 1e-6f, &y, err) != INFVSR_OK) goto done;
    if (round && round_bf16(be, &y, err) != INFVSR_OK) goto done;
    if (infvsr_op_rope(be, &y, &w->freqs, 2, &y, err) != INFVSR_OK) goto done;
    if (round && round_bf16(be, &y, err) != INFVSR_OK) goto done;
    struct infvsr_tensor yh;
    if (infvsr_backend_download_f32(be, &y, &yh, err) != INFVSR_OK) goto done;
    out = yh.data; /* owned: hand the buffer over */
done:
    infvsr_backend_tensor_free(be, &x);
    infvsr_backend_tensor_free(be, &y);
    return out;
}

static struct infvsr_backend * open_be(const char * name, enum infvsr_precision p) {
    struct infvsr_backend_opts o = infvsr_backend_default_opts();
    o.precision       = p;
    o.devsim_capacity = (size_t)16 << 20;
    struct infvsr_backend * be = NULL;
    struct infvsr_err err = { 0 };
    if (infvsr_backend_init_by_name(name, &o, &be, &err) != INFVSR_OK) fprintf(stderr, "  %s: %s\n", name, err.msg);
    return be;
}

static void run(enum infvsr_precision p) {
    const bool bf16 = p == INFVSR_PRECISION_BF16;
    struct infvsr_err err = { 0 };
    struct infvsr_backend * cpu = open_be("cpu", INFVSR_PRECISION_F32), * dev = open_be("devsim", p);
    CHECK(cpu && dev);
    if (!cpu || !dev) goto out;
    float x[M * K];
    test_fill_uniform(x, M * K, -1.0f, 1.0f, 9);

    /* The expectation: cpu on host weights (bf16: what the import turns them into). */
    struct weights ref;
    make_weights(&ref);
    if (bf16) {
        to_bf16(&ref.w);
        to_bf16(&ref.ln_w);
    }
    float xr[M * K];
    for (int i = 0; i < M * K; i++) xr[i] = bf16 ? infvsr_bf16_to_f32(infvsr_f32_to_bf16(x[i])) : x[i];
    float * want = forward(cpu, INFVSR_TYPE_F32, bf16, &ref, xr, &err);
    CHECK_MSG(want, "cpu: %s", err.msg);

    /* devsim: register, commit, run. */
    struct weights w;
    make_weights(&w);
    struct infvsr_weight_set ws;
    infvsr_weight_set_init(&ws);
    CHECK_EQ_INT(infvsr_weight_set_add(&ws, &w.w, 0, &err), INFVSR_OK);
    CHECK_EQ_INT(infvsr_weight_set_add(&ws, &w.b, 0, &err), INFVSR_OK);
    CHECK_EQ_INT(infvsr_weight_set_add(&ws, &w.ln_w, 0, &err), INFVSR_OK);
    CHECK_EQ_INT(infvsr_weight_set_add(&ws, &w.freqs, INFVSR_WEIGHT_KEEP_DTYPE, &err), INFVSR_OK);
    CHECK_EQ_INT(infvsr_weight_set_commit(&ws, dev, &err), INFVSR_OK);
    CHECK_EQ_INT(w.w.mem, INFVSR_MEM_DEVICE);
    CHECK_EQ_INT(w.w.dtype, bf16 ? INFVSR_TYPE_BF16 : INFVSR_TYPE_F32);
    CHECK_EQ_INT(w.freqs.dtype, INFVSR_TYPE_F64);
    CHECK(ws.resident_bytes > 0);
    struct infvsr_backend_caps caps;
    infvsr_backend_get_caps(dev, &caps);
    CHECK_EQ_INT(caps.mem_total - caps.mem_free, (ws.resident_bytes + 255) / 256 * 256);

    float * got = forward(dev, bf16 ? INFVSR_TYPE_BF16 : INFVSR_TYPE_F32, false, &w, x, &err);
    CHECK_MSG(got, "devsim: %s", err.msg);
    if (want && got) {
        size_t diff = 0;
        for (int i = 0; i < M * N; i++) diff += memcmp(&want[i], &got[i], 4) != 0;
        CHECK_EQ_INT(diff, 0);
    }
    free(want);
    free(got);

    /* A weight the module forgot to register is still a host tensor: named, refused. */
    struct infvsr_tensor xd, yd;
    memset(&xd, 0, sizeof xd);
    memset(&yd, 0, sizeof yd);
    infvsr_tensor_setup(&xd, "x", INFVSR_TYPE_F32, 2, (const int64_t[]){ M, K });
    infvsr_tensor_setup(&yd, "y", INFVSR_TYPE_F32, 2, (const int64_t[]){ M, N });
    CHECK_EQ_INT(infvsr_backend_tensor_alloc(dev, &xd, &err), INFVSR_OK);
    CHECK_EQ_INT(infvsr_backend_tensor_alloc(dev, &yd, &err), INFVSR_OK);
    CHECK_EQ_INT(infvsr_op_linear(dev, &xd, &w.forgotten, NULL, INFVSR_UNARY_COUNT, &yd, &err),
                 INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "blk.forgotten_w");

    /* Derived views after commit: rows 4..11 of w are fine, rows 8..15 are not. */
    struct infvsr_tensor rows, y8;
    const size_t row_bytes = K * infvsr_dtype_size(w.w.dtype);
    memset(&y8, 0, sizeof y8);
    infvsr_tensor_setup(&y8, "y8", INFVSR_TYPE_F32, 2, (const int64_t[]){ M, 8 });
    CHECK_EQ_INT(infvsr_backend_tensor_alloc(dev, &y8, &err), INFVSR_OK);
    infvsr_tensor_view(&rows, "blk.w[4:12]", w.w.dtype, 2, (const int64_t[]){ 8, K }, (char *)w.w.data + 4 * row_bytes);
    rows.mem = INFVSR_MEM_DEVICE;
    CHECK_EQ_INT(infvsr_op_linear(dev, &xd, &rows, NULL, INFVSR_UNARY_COUNT, &y8, &err), INFVSR_OK);
    /* The import allocation ends with freqs (last registered) padded to 256 bytes; a view
     * from the freqs' start running 4 KiB long leaves it. */
    struct infvsr_tensor past;
    infvsr_tensor_view(&past, "rope.freqs_too_long", INFVSR_TYPE_F64, 1, (const int64_t[]){ 512 }, w.freqs.data);
    past.mem = INFVSR_MEM_DEVICE;
    CHECK_EQ_INT(infvsr_op_rope(dev, &yd, &past, 2, &yd, &err), INFVSR_ERR_INVALID_ARG);
    CHECK_STR_CONTAINS(err.msg, "past the end of its allocation");

    infvsr_backend_tensor_free(dev, &xd);
    infvsr_backend_tensor_free(dev, &yd);
    infvsr_backend_tensor_free(dev, &y8);
    infvsr_weight_set_release(&ws, dev);
    infvsr_backend_get_caps(dev, &caps);
    CHECK_EQ_INT(caps.mem_free, caps.mem_total);
    free_weights(&w); /* the unregistered one is still owned host memory */
    free_weights(&ref);
out:
    infvsr_backend_free(cpu);
    infvsr_backend_free(dev);
}

static void test_weights_f32(void) { run(INFVSR_PRECISION_F32); }
static void test_weights_bf16(void) { run(INFVSR_PRECISION_BF16); }

static const struct test_case tests[] = {
    TEST(test_weights_f32),
    TEST(test_weights_bf16),
    { 0 },
};

int main(int argc, char ** argv) { return test_main(argc, argv, tests); }
