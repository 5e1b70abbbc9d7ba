/* devsim runs every op of the table exactly as the CPU backend does (label "devsim").
 *
 * Each case runs one op on small random tensors twice: on devsim and on cpu, from the
 * same host data, and compares the output bytes.
 *  - f32 (devsim opened with precision f32): bit-identical to cpu. Shows that translating
 *    operands to the shadow, the view checks and the staging of gets change nothing.
 *  - bf16 (precision bf16, activations allocated as bf16 on devsim): bit-identical to
 *    "cpu on bf16-rounded inputs, output rounded to bf16 (RNE)", the CUDA numerics
 *    (load bf16, compute f32, round once on store). GEMM weights (linear w/b, conv3d w)
 *    are rounded to bf16 in the expectation as well, because CUDA's cuBLASLt runs bf16 x
 *    bf16 and devsim emulates that. Operands in weight roles that can be activations
 *    (modulate scale/shift, add_gated gate) are bf16 on devsim and bf16-rounded f32 on
 *    cpu: reading them in place must equal widening them. copy and gather_rows handle
 *    bf16 natively on the CPU, so their expectation is cpu on the same bf16 tensors.
 * In-place cases (y == x) check that sharing one widened temporary keeps in-place calls
 * in place; mixed cases (bf16 in, f32 out and the reverse, which CUDA takes) that each
 * operand's own dtype decides.
 *
 * Op coverage across backends is tests/ops' job; this file is about devsim semantics. */
#include <string.h>

#include "check.h"
#include "infvsr/backend.h"
#include "ops.h"

enum spec_kind {
    ACT,    /* activation: f32, or bf16 on devsim in bf16 mode                         */
    W,      /* weight in its own dtype, read in place                                  */
    GEMM_W, /* GEMM weight: rounded to bf16 when the activations are bf16 (as on CUDA) */
    ACT_W,  /* weight role, but an activation in practice (bf16 in bf16 mode)          */
    ACT_F32,/* activation kept f32 in both modes (mixed-dtype calls, as CUDA takes)    */
    RAW,    /* as it is on both backends: tables (f64, i32), u8 frames                 */
};

struct spec {
    const char *      name;
    enum spec_kind    kind;
    enum infvsr_dtype dtype;  /* W, GEMM_W, RAW (ACT, ACT_W: the mode's dtype) */
    int               ndim;
    int64_t           shape[INFVSR_MAX_DIMS];
    float             lo, hi; /* uniform values (RAW i32: indices in [0, hi)) */
};

#define MAX_SPECS 8

typedef enum infvsr_status (*op_fn)(struct infvsr_backend * be, struct infvsr_tensor * t, struct infvsr_err * err);

struct op_case {
    const char * name;
    op_fn        run;
    int          out;     /* index of the output among specs          */
    bool         native;  /* copy/gather: bf16 expectation on bf16 too */
    struct spec  s[MAX_SPECS];
};

/* ---- the ops (t[] in spec order) ---- */

static enum infvsr_status op_linear(struct infvsr_backend * be, struct infvsr_tensor * t, struct infvsr_err * err) {
    return infvsr_op_linear(be, &t[0], &t[1], &t[2], INFVSR_UNARY_GELU_TANH, &t[3], err);
}
static enum infvsr_status op_linear_nobias(struct infvsr_backend * be, struct infvsr_tensor * t, struct infvsr_err * err) {
    return infvsr_op_linear(be, &t[0], &t[1], NULL, INFVSR_UNARY_COUNT, &t[2], err);
}
static enum infvsr_status op_matmul(struct infvsr_backend * be, struct infvsr_tensor * t, struct infvsr_err * err) {
    return infvsr_op_matmul(be, &t[0], &t[1], true, 0.375f, &t[2], err);
}
static enum infvsr_status op_matmul_nt(struct infvsr_backend * be, struct infvsr_tensor * t, struct infvsr_err * err) {
    return infvsr_op_matmul(be, &t[0], &t[1], false, 1.0f, &t[2], err);
}
static enum infvsr_status op_layer_norm(struct infvsr_backend * be, struct infvsr_tensor * t, struct infvsr_err * err) {
    return infvsr_op_layer_norm(be, &t[0], &t[1], &t[2], 1e-6f, &t[3], err);
}
static enum infvsr_status op_layer_norm_inplace(struct infvsr_backend * be, struct infvsr_tensor * t,
                                                struct infvsr_err * err) {
    return infvsr_op_layer_norm(be, &t[0], NULL, NULL, 1e-6f, &t[0], err);
}
static enum infvsr_status op_rms_norm(struct infvsr_backend * be, struct infvsr_tensor * t, struct infvsr_err * err) {
    return infvsr_op_rms_norm(be, &t[0], &t[1], 1e-6f, &t[2], err);
}
static enum infvsr_status op_channel_rms_norm(struct infvsr_backend * be, struct infvsr_tensor * t,
                                              struct infvsr_err * err) {
    return infvsr_op_channel_rms_norm(be, &t[0], &t[1], &t[2], err);
}
static enum infvsr_status op_modulate(struct infvsr_backend * be, struct infvsr_tensor * t, struct infvsr_err * err) {
    return infvsr_op_modulate(be, &t[0], &t[1], &t[2], &t[3], err);
}
static enum infvsr_status op_modulate_inplace(struct infvsr_backend * be, struct infvsr_tensor * t,
                                              struct infvsr_err * err) {
    return infvsr_op_modulate(be, &t[0], &t[1], &t[2], &t[0], err);
}
static enum infvsr_status op_gelu_tanh(struct infvsr_backend * be, struct infvsr_tensor * t, struct infvsr_err * err) {
    return infvsr_op_unary(be, INFVSR_UNARY_GELU_TANH, &t[0], &t[1], err);
}
static enum infvsr_status op_gelu_erf(struct infvsr_backend * be, struct infvsr_tensor * t, struct infvsr_err * err) {
    return infvsr_op_unary(be, INFVSR_UNARY_GELU_ERF, &t[0], &t[1], err);
}
static enum infvsr_status op_silu_inplace(struct infvsr_backend * be, struct infvsr_tensor * t, struct infvsr_err * err) {
    return infvsr_op_unary(be, INFVSR_UNARY_SILU, &t[0], &t[0], err);
}
static enum infvsr_status op_add(struct infvsr_backend * be, struct infvsr_tensor * t, struct infvsr_err * err) {
    return infvsr_op_add(be, &t[0], &t[1], &t[2], err);
}
static enum infvsr_status op_add_inplace_b(struct infvsr_backend * be, struct infvsr_tensor * t, struct infvsr_err * err) {
    return infvsr_op_add(be, &t[0], &t[1], &t[1], err);
}
static enum infvsr_status op_add_gated(struct infvsr_backend * be, struct infvsr_tensor * t, struct infvsr_err * err) {
    return infvsr_op_add_gated(be, &t[0], &t[1], &t[2], &t[3], err);
}
static enum infvsr_status op_add_gated_inplace(struct infvsr_backend * be, struct infvsr_tensor * t,
                                               struct infvsr_err * err) {
    return infvsr_op_add_gated(be, &t[0], &t[1], &t[2], &t[0], err);
}
static enum infvsr_status op_affine_clamp(struct infvsr_backend * be, struct infvsr_tensor * t, struct infvsr_err * err) {
    return infvsr_op_affine_clamp(be, &t[0], 1.5f, -0.25f, -1.0f, 1.0f, &t[1], err);
}
static enum infvsr_status op_softmax(struct infvsr_backend * be, struct infvsr_tensor * t, struct infvsr_err * err) {
    return infvsr_op_softmax(be, &t[0], &t[1], err);
}
static enum infvsr_status op_attention(struct infvsr_backend * be, struct infvsr_tensor * t, struct infvsr_err * err) {
    struct infvsr_attn_args a = { .q = &t[0], .k0 = &t[1], .v0 = &t[2], .k1 = &t[3], .v1 = &t[4], .bias = &t[5],
                                  .n_heads = 2, .scale = 0.25f, .out = &t[6] };
    return infvsr_op_attention(be, &a, err);
}
static enum infvsr_status op_attention_1seg(struct infvsr_backend * be, struct infvsr_tensor * t,
                                            struct infvsr_err * err) {
    struct infvsr_attn_args a = { .q = &t[0], .k0 = &t[1], .v0 = &t[2], .n_heads = 4, .scale = 0.3f, .out = &t[3] };
    return infvsr_op_attention(be, &a, err);
}
static enum infvsr_status op_rope(struct infvsr_backend * be, struct infvsr_tensor * t, struct infvsr_err * err) {
    return infvsr_op_rope(be, &t[0], &t[1], 2, &t[2], err);
}
static enum infvsr_status op_rope_inplace(struct infvsr_backend * be, struct infvsr_tensor * t, struct infvsr_err * err) {
    return infvsr_op_rope(be, &t[0], &t[1], 2, &t[0], err);
}
static enum infvsr_status op_conv3d(struct infvsr_backend * be, struct infvsr_tensor * t, struct infvsr_err * err) {
    struct infvsr_conv3d_args a = { .x = &t[0], .w = &t[1], .b = &t[2], .stride_t = 1, .stride_h = 1, .stride_w = 1,
                                    .pad_top = 1, .pad_bottom = 1, .pad_left = 1, .pad_right = 1, .y = &t[3] };
    return infvsr_op_conv3d(be, &a, err);
}
static enum infvsr_status op_conv3d_strided(struct infvsr_backend * be, struct infvsr_tensor * t,
                                            struct infvsr_err * err) {
    struct infvsr_conv3d_args a = { .x = &t[0], .w = &t[1], .b = NULL, .stride_t = 1, .stride_h = 2, .stride_w = 2,
                                    .pad_top = 0, .pad_bottom = 1, .pad_left = 0, .pad_right = 1, .y = &t[2] };
    return infvsr_op_conv3d(be, &a, err);
}
static enum infvsr_status op_resize_bicubic(struct infvsr_backend * be, struct infvsr_tensor * t,
                                            struct infvsr_err * err) {
    return infvsr_op_resize(be, INFVSR_RESIZE_BICUBIC_AA, &t[0], &t[1], err);
}
static enum infvsr_status op_resize_bilinear(struct infvsr_backend * be, struct infvsr_tensor * t,
                                             struct infvsr_err * err) {
    return infvsr_op_resize(be, INFVSR_RESIZE_BILINEAR_AA, &t[0], &t[1], err);
}
/* x [4, 6] transposed into the middle of y [8, 5] (rows 2..7, cols 0..3) */
static enum infvsr_status op_copy_transpose(struct infvsr_backend * be, struct infvsr_tensor * t,
                                            struct infvsr_err * err) {
    struct infvsr_copy_args a = infvsr_copy_args_init(INFVSR_COPY_SET, 2);
    a.extent[0] = 6, a.extent[1] = 4;
    a.x = &t[0], a.x_stride[0] = 1, a.x_stride[1] = 6;
    a.y = &t[1], a.y_offset = 10, a.y_stride[0] = 5, a.y_stride[1] = 1;
    return infvsr_op_copy(be, &a, err);
}
static enum infvsr_status op_copy_accumulate(struct infvsr_backend * be, struct infvsr_tensor * t,
                                             struct infvsr_err * err) {
    struct infvsr_copy_args a = infvsr_copy_args_init(INFVSR_COPY_ACCUMULATE, 2);
    a.extent[0] = 3, a.extent[1] = 8;
    a.x = &t[0], a.x_stride[0] = 8, a.x_stride[1] = 1;
    a.m = &t[1], a.m_stride[0] = 0, a.m_stride[1] = 1; /* one mask row broadcast */
    a.y = &t[2], a.y_stride[0] = 8, a.y_stride[1] = 1;
    a.alpha = 0.5f;
    return infvsr_op_copy(be, &a, err);
}
static enum infvsr_status op_copy_convert(struct infvsr_backend * be, struct infvsr_tensor * t, struct infvsr_err * err) {
    return infvsr_op_convert(be, &t[0], &t[1], err); /* f32 -> the mode's dtype */
}
static enum infvsr_status op_copy_u8_to_model(struct infvsr_backend * be, struct infvsr_tensor * t,
                                              struct infvsr_err * err) {
    struct infvsr_copy_args a = infvsr_copy_args_init(INFVSR_COPY_U8_TO_MODEL, 1);
    a.extent[0] = 40;
    a.x = &t[0], a.x_stride[0] = 1;
    a.y = &t[1], a.y_stride[0] = 1;
    return infvsr_op_copy(be, &a, err);
}
static enum infvsr_status op_copy_model_to_u8(struct infvsr_backend * be, struct infvsr_tensor * t,
                                              struct infvsr_err * err) {
    struct infvsr_copy_args a = infvsr_copy_args_init(INFVSR_COPY_MODEL_TO_U8, 1);
    a.extent[0] = 40;
    a.x = &t[0], a.x_stride[0] = 1;
    a.y = &t[1], a.y_stride[0] = 1;
    return infvsr_op_copy(be, &a, err);
}
static enum infvsr_status op_copy_memmove(struct infvsr_backend * be, struct infvsr_tensor * t, struct infvsr_err * err) {
    return infvsr_op_copy_range(be, &t[0], 5, &t[0], 0, 30, err); /* overlapping: a memmove */
}
static enum infvsr_status op_fill(struct infvsr_backend * be, struct infvsr_tensor * t, struct infvsr_err * err) {
    return infvsr_op_fill(be, &t[0], -0.1f, err);
}
static enum infvsr_status op_gather_rows(struct infvsr_backend * be, struct infvsr_tensor * t, struct infvsr_err * err) {
    return infvsr_op_gather_rows(be, &t[0], &t[1], &t[2], err);
}

#define SH(...) .shape = { __VA_ARGS__ }
#define A(nm, nd, ...) { nm, ACT, INFVSR_TYPE_F32, nd, SH(__VA_ARGS__), -2.0f, 2.0f }
#define F(nm, nd, ...) { nm, ACT_F32, INFVSR_TYPE_F32, nd, SH(__VA_ARGS__), -2.0f, 2.0f }
#define WT(nm, kind, dt, nd, ...) { nm, kind, dt, nd, SH(__VA_ARGS__), -0.5f, 0.5f }

static const struct op_case cases[] = {
    { "linear_m5", op_linear, 3, false,
      { A("x", 2, 5, 24), WT("w", GEMM_W, INFVSR_TYPE_F32, 2, 16, 24), WT("b", GEMM_W, INFVSR_TYPE_F32, 1, 16),
        A("y", 2, 5, 16) } },
    { "linear_m13_bf16w", op_linear, 3, false,
      { A("x", 3, 1, 13, 24), WT("w", GEMM_W, INFVSR_TYPE_BF16, 2, 16, 24), WT("b", GEMM_W, INFVSR_TYPE_BF16, 1, 16),
        A("y", 2, 13, 16) } },
    { "linear_f16w_nobias", op_linear_nobias, 2, false,
      { A("x", 2, 9, 24), WT("w", GEMM_W, INFVSR_TYPE_F16, 2, 7, 24), A("y", 2, 9, 7) } },
    { "matmul_trans_b", op_matmul, 2, false, { A("a", 3, 2, 5, 8), A("b", 3, 2, 6, 8), A("c", 3, 2, 5, 6) } },
    { "matmul", op_matmul_nt, 2, false, { A("a", 2, 9, 8), A("b", 2, 8, 10), A("c", 2, 9, 10) } },
    { "layer_norm", op_layer_norm, 3, false,
      { A("x", 2, 6, 32), WT("w", W, INFVSR_TYPE_BF16, 1, 32), WT("b", W, INFVSR_TYPE_F32, 1, 32), A("y", 2, 6, 32) } },
    { "layer_norm_inplace", op_layer_norm_inplace, 0, false, { A("x", 2, 6, 40) } },
    { "rms_norm", op_rms_norm, 2, false, { A("x", 2, 7, 32), WT("w", W, INFVSR_TYPE_F32, 1, 32), A("y", 2, 7, 32) } },
    { "channel_rms_norm", op_channel_rms_norm, 2, false,
      { A("x", 3, 8, 3, 5), WT("gamma", W, INFVSR_TYPE_F32, 1, 8), A("y", 3, 8, 3, 5) } },
    { "modulate", op_modulate, 3, false,
      { A("x", 2, 6, 32), WT("scale", ACT_W, INFVSR_TYPE_F32, 1, 32), WT("shift", ACT_W, INFVSR_TYPE_F32, 1, 32),
        A("y", 2, 6, 32) } },
    { "modulate_inplace", op_modulate_inplace, 0, false,
      { A("x", 2, 6, 32), WT("scale", W, INFVSR_TYPE_BF16, 1, 32), WT("shift", W, INFVSR_TYPE_F16, 1, 32) } },
    { "gelu_tanh", op_gelu_tanh, 1, false, { A("x", 1, 77), A("y", 1, 77) } },
    { "gelu_erf", op_gelu_erf, 1, false, { A("x", 2, 7, 11), A("y", 1, 77) } },
    { "silu_inplace", op_silu_inplace, 0, false, { A("x", 1, 77) } },
    { "add", op_add, 2, false, { A("a", 1, 50), A("b", 2, 5, 10), A("y", 1, 50) } },
    { "add_inplace_b", op_add_inplace_b, 1, false, { A("a", 1, 50), A("b", 1, 50) } },
    { "add_gated", op_add_gated, 3, false,
      { A("x", 2, 4, 12), WT("gate", ACT_W, INFVSR_TYPE_F32, 1, 12), A("d", 2, 4, 12), A("y", 2, 4, 12) } },
    { "add_gated_inplace", op_add_gated_inplace, 0, false,
      { A("x", 2, 4, 12), WT("gate", ACT_W, INFVSR_TYPE_F32, 1, 12), A("d", 2, 4, 12) } },
    { "affine_clamp", op_affine_clamp, 1, false, { A("x", 1, 64), A("y", 1, 64) } },
    { "softmax", op_softmax, 1, false, { A("x", 2, 5, 19), A("y", 2, 5, 19) } },
    { "attention_2seg_bias", op_attention, 6, false,
      { A("q", 2, 7, 32), A("k0", 2, 5, 32), A("v0", 2, 5, 32), A("k1", 2, 4, 32), A("v1", 2, 4, 32),
        { "bias", RAW, INFVSR_TYPE_F32, 3, SH(2, 7, 9), -1.0f, 1.0f }, A("out", 2, 7, 32) } },
    { "attention_1seg", op_attention_1seg, 3, false,
      { A("q", 2, 9, 64), A("k0", 2, 70, 64), A("v0", 2, 70, 64), A("out", 2, 9, 64) } },
    { "rope", op_rope, 2, false,
      { A("x", 2, 6, 16), { "freqs", RAW, INFVSR_TYPE_F64, 3, SH(6, 4, 2), -1.0f, 1.0f }, A("y", 2, 6, 16) } },
    { "rope_inplace", op_rope_inplace, 0, false,
      { A("x", 2, 6, 16), { "freqs", RAW, INFVSR_TYPE_F64, 3, SH(6, 4, 2), -1.0f, 1.0f } } },
    { "conv3d", op_conv3d, 3, false,
      { A("x", 4, 3, 4, 6, 6), WT("w", GEMM_W, INFVSR_TYPE_F32, 5, 5, 3, 3, 3, 3), WT("b", W, INFVSR_TYPE_F32, 1, 5),
        A("y", 4, 5, 2, 6, 6) } },
    { "conv3d_strided_bf16w", op_conv3d_strided, 2, false,
      { A("x", 4, 4, 2, 7, 7), WT("w", GEMM_W, INFVSR_TYPE_BF16, 5, 6, 4, 1, 3, 3), A("y", 4, 6, 2, 3, 3) } },
    { "resize_bicubic", op_resize_bicubic, 1, false, { A("x", 3, 2, 6, 8), A("y", 3, 2, 9, 5) } },
    { "resize_bilinear", op_resize_bilinear, 1, false, { A("x", 3, 2, 6, 8), A("y", 3, 2, 3, 17) } },
    /* mixed dtypes: bf16 in, f32 out and the reverse (in f32 mode all f32) */
    { "linear_to_f32", op_linear, 3, false,
      { A("x", 2, 5, 24), WT("w", GEMM_W, INFVSR_TYPE_F32, 2, 16, 24), WT("b", W, INFVSR_TYPE_F32, 1, 16),
        F("y", 2, 5, 16) } },
    { "add_f32_bf16", op_add, 2, false, { F("a", 1, 50), A("b", 1, 50), A("y", 1, 50) } },
    { "rms_norm_to_f32", op_rms_norm, 2, false,
      { A("x", 2, 7, 32), WT("w", W, INFVSR_TYPE_BF16, 1, 32), F("y", 2, 7, 32) } },
    { "attention_to_f32", op_attention_1seg, 3, false,
      { A("q", 2, 9, 64), A("k0", 2, 20, 64), A("v0", 2, 20, 64), F("out", 2, 9, 64) } },
    { "matmul_to_f32", op_matmul_nt, 2, false, { A("a", 2, 9, 8), A("b", 2, 8, 10), F("c", 2, 9, 10) } },
    { "copy_transpose", op_copy_transpose, 1, true, { A("x", 2, 4, 6), A("y", 2, 8, 5) } },
    { "copy_accumulate", op_copy_accumulate, 2, true,
      { A("x", 2, 3, 8), { "m", RAW, INFVSR_TYPE_F32, 1, SH(8), 0.0f, 1.0f }, A("y", 2, 3, 8) } },
    { "copy_convert", op_copy_convert, 1, true, { { "x", RAW, INFVSR_TYPE_F32, 1, SH(33), -3.0f, 3.0f }, A("y", 1, 33) } },
    { "copy_u8_to_model", op_copy_u8_to_model, 1, true,
      { { "x", RAW, INFVSR_TYPE_U8, 1, SH(40), 0.0f, 256.0f }, A("y", 1, 40) } },
    { "copy_model_to_u8", op_copy_model_to_u8, 1, true,
      { A("x", 1, 40), { "y", RAW, INFVSR_TYPE_U8, 1, SH(40), 0.0f, 256.0f } } },
    { "copy_memmove", op_copy_memmove, 0, true, { A("x", 1, 40) } },
    { "fill", op_fill, 0, true, { A("y", 2, 3, 7) } },
    { "gather_rows", op_gather_rows, 2, true,
      { A("x", 2, 6, 5), { "idx", RAW, INFVSR_TYPE_I32, 1, SH(9), 0.0f, 6.0f }, A("y", 2, 9, 5) } },
    { NULL, NULL, 0, false, { { 0 } } },
};

/* ---- the harness ---- */

static int n_specs(const struct op_case * c) {
    int n = 0;
    while (n < MAX_SPECS && c->s[n].name) n++;
    return n;
}

/* Host data of a spec as raw bytes of `dt` (floats: uniform in [lo, hi) rounded to dt). */
static void * host_data(const struct spec * s, enum infvsr_dtype dt, size_t n, uint64_t seed) {
    float * f = malloc(n * sizeof *f + 8);
    test_fill_uniform(f, n, s->lo, s->hi, seed);
    void * out = malloc(n * infvsr_dtype_size(dt) + 8);
    if (dt == INFVSR_TYPE_I32) {
        for (size_t i = 0; i < n; i++) ((int32_t *)out)[i] = (int32_t)f[i];
    } else if (dt == INFVSR_TYPE_U8) {
        for (size_t i = 0; i < n; i++) ((uint8_t *)out)[i] = (uint8_t)f[i];
    } else {
        infvsr_convert_from_f32(out, dt, f, n);
    }
    free(f);
    return out;
}

static struct infvsr_backend * open_be(const char * name, enum infvsr_precision p) {
    struct infvsr_backend_opts o = infvsr_backend_default_opts();
    o.precision       = p;
    o.devsim_capacity = (size_t)64 << 20;
    struct infvsr_backend * be = NULL;
    struct infvsr_err err = { 0 };
    if (infvsr_backend_init_by_name(name, &o, &be, &err) != INFVSR_OK) {
        fprintf(stderr, "  cannot open %s: %s\n", name, err.msg);
        return NULL;
    }
    return be;
}

/* Uploads `bytes` of dtype dt as t (shape from s). */
static bool upload(struct infvsr_backend * be, const struct spec * s, enum infvsr_dtype dt, const void * bytes,
                   struct infvsr_tensor * t) {
    struct infvsr_err err = { 0 };
    memset(t, 0, sizeof *t);
    infvsr_tensor_setup(t, s->name, dt, s->ndim, s->shape);
    if (infvsr_backend_tensor_alloc(be, t, &err) != INFVSR_OK ||
        infvsr_backend_tensor_set(be, t, bytes, 0, infvsr_tensor_nbytes(t), &err) != INFVSR_OK) {
        fprintf(stderr, "  upload of %s: %s\n", s->name, err.msg);
        return false;
    }
    return true;
}

static void * download(struct infvsr_backend * be, const struct infvsr_tensor * t) {
    struct infvsr_err err = { 0 };
    size_t nb = infvsr_tensor_nbytes(t);
    void * out = malloc(nb + 8);
    if (infvsr_backend_tensor_get(be, t, out, 0, nb, &err) != INFVSR_OK ||
        infvsr_backend_synchronize(be, &err) != INFVSR_OK) {
        fprintf(stderr, "  download of %s: %s\n", t->name, err.msg);
        free(out);
        return NULL;
    }
    return out;
}

/* Runs case c on devsim (precision p) and on cpu; the output bytes must be identical. */
static void run_case(const struct op_case * c, enum infvsr_precision p) {
    const bool bf16 = p == INFVSR_PRECISION_BF16, widened = bf16 && !c->native;
    struct infvsr_backend * dev = open_be("devsim", p), * cpu = open_be("cpu", INFVSR_PRECISION_F32);
    CHECK(dev && cpu);
    if (!dev || !cpu) goto out_be;
    const int n = n_specs(c);
    struct infvsr_tensor td[MAX_SPECS], tc[MAX_SPECS];
    memset(td, 0, sizeof td);
    memset(tc, 0, sizeof tc);
    bool ok = true;
    for (int i = 0; i < n && ok; i++) {
        const struct spec * s = &c->s[i];
        int64_t numel = 1;
        for (int k = 0; k < s->ndim; k++) numel *= s->shape[k];
        const size_t cnt = (size_t)numel;
        const bool act = s->kind == ACT || s->kind == ACT_W;
        enum infvsr_dtype dd = act ? (bf16 ? INFVSR_TYPE_BF16 : INFVSR_TYPE_F32) : s->kind == ACT_F32 ? INFVSR_TYPE_F32
                                                                                                : s->dtype;
        enum infvsr_dtype dc = dd;
        void * bytes = host_data(s, dd, cnt, 1000 + 17 * (uint64_t)i);
        void * cbytes = bytes;
        if (widened && act) { /* cpu gets f32 holding the bf16 values */
            dc = INFVSR_TYPE_F32;
            cbytes = malloc(cnt * 4 + 8);
            infvsr_convert_to_f32(cbytes, bytes, INFVSR_TYPE_BF16, cnt);
        } else if (widened && s->kind == GEMM_W && s->dtype != INFVSR_TYPE_BF16) { /* as CUDA: bf16 weight */
            dc = INFVSR_TYPE_BF16;
            float * f = malloc(cnt * 4 + 8);
            infvsr_convert_to_f32(f, bytes, s->dtype, cnt);
            cbytes = malloc(cnt * 2 + 8);
            infvsr_convert_from_f32(cbytes, INFVSR_TYPE_BF16, f, cnt);
            free(f);
        }
        ok = upload(dev, s, dd, bytes, &td[i]) && upload(cpu, s, dc, cbytes, &tc[i]);
        if (cbytes != bytes) free(cbytes);
        free(bytes);
    }
    CHECK_MSG(ok, "%s: setup failed", c->name);
    struct infvsr_err ed = { 0 }, ec = { 0 };
    enum infvsr_status sd = ok ? c->run(dev, td, &ed) : INFVSR_ERR_INVALID_ARG;
    enum infvsr_status sc = ok ? c->run(cpu, tc, &ec) : INFVSR_ERR_INVALID_ARG;
    CHECK_MSG(sd == INFVSR_OK, "%s on devsim (%s): %s", c->name, bf16 ? "bf16" : "f32", ed.msg);
    CHECK_MSG(sc == INFVSR_OK, "%s on cpu: %s", c->name, ec.msg);
    if (ok && sd == INFVSR_OK && sc == INFVSR_OK) {
        const struct infvsr_tensor * od = &td[c->out], * oc = &tc[c->out];
        void * bd = download(dev, od), * bc = download(cpu, oc);
        CHECK(bd && bc);
        size_t cnt = (size_t)infvsr_tensor_numel(od);
        if (bd && bc && oc->dtype != od->dtype) { /* widened: round the cpu result once, as on store */
            void * r = malloc(cnt * 2 + 8);
            infvsr_convert_from_f32(r, od->dtype, bc, cnt);
            free(bc);
            bc = r;
        }
        if (bd && bc) {
            size_t nb = infvsr_tensor_nbytes(od), diff = 0;
            for (size_t k = 0; k < nb; k++) diff += ((const uint8_t *)bd)[k] != ((const uint8_t *)bc)[k];
            CHECK_MSG(diff == 0, "%s (%s): %zu of %zu output bytes differ from cpu", c->name,
                      bf16 ? "bf16" : "f32", diff, nb);
            /* Not trivially equal: the op wrote something that is not all zero. */
            size_t nonzero = 0;
            for (size_t k = 0; k < nb; k++) nonzero += ((const uint8_t *)bd)[k] != 0;
            CHECK_MSG(nonzero > nb / 4, "%s: output mostly zero", c->name);
        }
        free(bd);
        free(bc);
    }
    for (int i = 0; i < n; i++) {
        infvsr_backend_tensor_free(dev, &td[i]);
        infvsr_backend_tensor_free(cpu, &tc[i]);
    }
out_be:
    infvsr_backend_free(dev);
    infvsr_backend_free(cpu);
}

static void run_all(enum infvsr_precision p) {
    int n = 0;
    for (const struct op_case * c = cases; c->name; c++, n++) run_case(c, p);
    printf("  %d cases\n", n);
}

static void test_ops_f32_bit_identical(void) { run_all(INFVSR_PRECISION_F32); }
static void test_ops_bf16_round_on_store(void) { run_all(INFVSR_PRECISION_BF16); }

static const struct test_case tests[] = {
    TEST(test_ops_f32_bit_identical),
    TEST(test_ops_bf16_round_on_store),
    { 0 },
};

int main(int argc, char ** argv) { return test_main(argc, argv, tests); }
