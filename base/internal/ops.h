/* The engine's entry to the op table: one thin inline wrapper per slot of
 * `struct infvsr_backend_i` (backend_impl.h). Modules call `infvsr_op_linear(be, ...)`,
 * never `be->iface->linear(...)`, so that checks common to every backend live here once
 * (every tensor lives where the backend computes: a host tensor handed to a device
 * backend, e.g. a weight that was never imported, is refused with its name instead of
 * crashing on a GPU) and a later per-op timer or graph capture has one place to go.
 * Backend-specific shape/dtype checks stay in the backends. */
#pragma once

#include <string.h>

#include "backend_impl.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A tensor argument of an op: NULL is refused unless optional; it must live in the
 * backend's memory kind. */
static inline enum infvsr_status infvsr__op_arg(struct infvsr_backend * be, const char * op, const char * role,
                                                const struct infvsr_tensor * t, bool optional,
                                                struct infvsr_err * err) {
    if (!t) {
        if (optional) return INFVSR_OK;
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "%s: %s tensor is NULL", op, role);
    }
    if (t->mem != be->mem) {
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "%s: %s tensor '%s' is in %s memory, backend %s computes "
                              "in %s memory (not imported/allocated on this backend?)", op, role,
                              t->name[0] ? t->name : "(unnamed)", t->mem == INFVSR_MEM_HOST ? "host" : "device",
                              be->iface->name(be), be->mem == INFVSR_MEM_HOST ? "host" : "device");
    }
    return INFVSR_OK;
}

#define INFVSR__ARG(role, t, optional) INFVSR_TRY(infvsr__op_arg(be, op, role, t, optional, err))

static inline enum infvsr_status infvsr_op_linear(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                                  const struct infvsr_tensor * w, const struct infvsr_tensor * b,
                                                  enum infvsr_unary_op act, struct infvsr_tensor * y,
                                                  struct infvsr_err * err) {
    const char * op = "linear";
    INFVSR__ARG("x", x, false); INFVSR__ARG("w", w, false); INFVSR__ARG("b", b, true); INFVSR__ARG("y", y, false);
    return be->iface->linear(be, x, w, b, act, y, err);
}

static inline enum infvsr_status infvsr_op_matmul(struct infvsr_backend * be, const struct infvsr_tensor * a,
                                                  const struct infvsr_tensor * b, bool trans_b, float alpha,
                                                  struct infvsr_tensor * c, struct infvsr_err * err) {
    const char * op = "matmul";
    INFVSR__ARG("a", a, false); INFVSR__ARG("b", b, false); INFVSR__ARG("c", c, false);
    return be->iface->matmul(be, a, b, trans_b, alpha, c, err);
}

static inline enum infvsr_status infvsr_op_layer_norm(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                                      const struct infvsr_tensor * w, const struct infvsr_tensor * b,
                                                      float eps, struct infvsr_tensor * y, struct infvsr_err * err) {
    const char * op = "layer_norm";
    INFVSR__ARG("x", x, false); INFVSR__ARG("w", w, true); INFVSR__ARG("b", b, true); INFVSR__ARG("y", y, false);
    return be->iface->layer_norm(be, x, w, b, eps, y, err);
}

static inline enum infvsr_status infvsr_op_rms_norm(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                                    const struct infvsr_tensor * w, float eps,
                                                    struct infvsr_tensor * y, struct infvsr_err * err) {
    const char * op = "rms_norm";
    INFVSR__ARG("x", x, false); INFVSR__ARG("w", w, true); INFVSR__ARG("y", y, false);
    return be->iface->rms_norm(be, x, w, eps, y, err);
}

static inline enum infvsr_status infvsr_op_channel_rms_norm(struct infvsr_backend * be,
                                                            const struct infvsr_tensor * x,
                                                            const struct infvsr_tensor * gamma,
                                                            struct infvsr_tensor * y, struct infvsr_err * err) {
    const char * op = "channel_rms_norm";
    INFVSR__ARG("x", x, false); INFVSR__ARG("gamma", gamma, true); INFVSR__ARG("y", y, false);
    return be->iface->channel_rms_norm(be, x, gamma, y, err);
}

static inline enum infvsr_status infvsr_op_modulate(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                                    const struct infvsr_tensor * scale,
                                                    const struct infvsr_tensor * shift, struct infvsr_tensor * y,
                                                    struct infvsr_err * err) {
    const char * op = "modulate";
    INFVSR__ARG("x", x, false); INFVSR__ARG("scale", scale, false); INFVSR__ARG("shift", shift, false);
    INFVSR__ARG("y", y, false);
    return be->iface->modulate(be, x, scale, shift, y, err);
}

static inline enum infvsr_status infvsr_op_unary(struct infvsr_backend * be, enum infvsr_unary_op u,
                                                 const struct infvsr_tensor * x, struct infvsr_tensor * y,
                                                 struct infvsr_err * err) {
    const char * op = "unary";
    INFVSR__ARG("x", x, false); INFVSR__ARG("y", y, false);
    return be->iface->unary(be, u, x, y, err);
}

static inline enum infvsr_status infvsr_op_add(struct infvsr_backend * be, const struct infvsr_tensor * a,
                                               const struct infvsr_tensor * b, struct infvsr_tensor * y,
                                               struct infvsr_err * err) {
    const char * op = "add";
    INFVSR__ARG("a", a, false); INFVSR__ARG("b", b, false); INFVSR__ARG("y", y, false);
    return be->iface->add(be, a, b, y, err);
}

static inline enum infvsr_status infvsr_op_add_gated(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                                     const struct infvsr_tensor * gate,
                                                     const struct infvsr_tensor * d, struct infvsr_tensor * y,
                                                     struct infvsr_err * err) {
    const char * op = "add_gated";
    INFVSR__ARG("x", x, false); INFVSR__ARG("gate", gate, true); INFVSR__ARG("d", d, false);
    INFVSR__ARG("y", y, false);
    return be->iface->add_gated(be, x, gate, d, y, err);
}

static inline enum infvsr_status infvsr_op_affine_clamp(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                                        float alpha, float beta, float lo, float hi,
                                                        struct infvsr_tensor * y, struct infvsr_err * err) {
    const char * op = "affine_clamp";
    INFVSR__ARG("x", x, false); INFVSR__ARG("y", y, false);
    return be->iface->affine_clamp(be, x, alpha, beta, lo, hi, y, err);
}

static inline enum infvsr_status infvsr_op_softmax(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                                   struct infvsr_tensor * y, struct infvsr_err * err) {
    const char * op = "softmax";
    INFVSR__ARG("x", x, false); INFVSR__ARG("y", y, false);
    return be->iface->softmax(be, x, y, err);
}

static inline enum infvsr_status infvsr_op_attention(struct infvsr_backend * be, const struct infvsr_attn_args * a,
                                                     struct infvsr_err * err) {
    const char * op = "attention";
    if (!a) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "attention: NULL args");
    INFVSR__ARG("q", a->q, false); INFVSR__ARG("k0", a->k0, false); INFVSR__ARG("v0", a->v0, false);
    INFVSR__ARG("k1", a->k1, true); INFVSR__ARG("v1", a->v1, true); INFVSR__ARG("bias", a->bias, true);
    INFVSR__ARG("out", a->out, false);
    return be->iface->attention(be, a, err);
}

static inline enum infvsr_status infvsr_op_rope(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                                const struct infvsr_tensor * freqs, int n_heads,
                                                struct infvsr_tensor * y, struct infvsr_err * err) {
    const char * op = "rope";
    INFVSR__ARG("x", x, false); INFVSR__ARG("freqs", freqs, false); INFVSR__ARG("y", y, false);
    return be->iface->rope(be, x, freqs, n_heads, y, err);
}

static inline enum infvsr_status infvsr_op_conv3d(struct infvsr_backend * be, const struct infvsr_conv3d_args * a,
                                                  struct infvsr_err * err) {
    const char * op = "conv3d";
    if (!a) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "conv3d: NULL args");
    INFVSR__ARG("x", a->x, false); INFVSR__ARG("w", a->w, false); INFVSR__ARG("b", a->b, true);
    INFVSR__ARG("y", a->y, false);
    return be->iface->conv3d(be, a, err);
}

static inline enum infvsr_status infvsr_op_resize(struct infvsr_backend * be, enum infvsr_resize_mode mode,
                                                  const struct infvsr_tensor * x, struct infvsr_tensor * y,
                                                  struct infvsr_err * err) {
    const char * op = "resize";
    INFVSR__ARG("x", x, false); INFVSR__ARG("y", y, false);
    return be->iface->resize(be, mode, x, y, err);
}

static inline enum infvsr_status infvsr_op_copy(struct infvsr_backend * be, const struct infvsr_copy_args * a,
                                                struct infvsr_err * err) {
    const char * op = "copy";
    if (!a) return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "copy: NULL args");
    INFVSR__ARG("x", a->x, a->mode == INFVSR_COPY_FILL); INFVSR__ARG("m", a->m, true);
    INFVSR__ARG("y", a->y, false);
    return be->iface->copy(be, a, err);
}

static inline enum infvsr_status infvsr_op_gather_rows(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                                       const struct infvsr_tensor * idx, struct infvsr_tensor * y,
                                                       struct infvsr_err * err) {
    const char * op = "gather_rows";
    INFVSR__ARG("x", x, false); INFVSR__ARG("idx", idx, false); INFVSR__ARG("y", y, false);
    return be->iface->gather_rows(be, x, idx, y, err);
}

#undef INFVSR__ARG

/* ---- helpers that build copy arguments (all through infvsr_op_copy) ---- */

/* A copy of `mode` with every stride and offset zero: fill in extent/strides. */
static inline struct infvsr_copy_args infvsr_copy_args_init(enum infvsr_copy_mode mode, int ndim) {
    struct infvsr_copy_args a;
    memset(&a, 0, sizeof a);
    a.mode  = mode;
    a.ndim  = ndim;
    a.alpha = 1.0f;
    for (int d = 0; d < INFVSR_COPY_MAX_DIMS; d++) a.extent[d] = 1;
    return a;
}

/* y[y_off + i] = x[x_off + i] for i < n (elements; converting between float dtypes). Dense
 * row-major views on the same storage may overlap (memmove). */
enum infvsr_status infvsr_op_copy_range(struct infvsr_backend * be, const struct infvsr_tensor * x, int64_t x_off,
                                        struct infvsr_tensor * y, int64_t y_off, int64_t n, struct infvsr_err * err);

/* The whole of x into y (same numel; dtype converted). */
enum infvsr_status infvsr_op_convert(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                     struct infvsr_tensor * y, struct infvsr_err * err);

/* Every element of y = value (FILL over the whole tensor). */
enum infvsr_status infvsr_op_fill(struct infvsr_backend * be, struct infvsr_tensor * y, float value,
                                  struct infvsr_err * err);

#ifdef __cplusplus
}
#endif
