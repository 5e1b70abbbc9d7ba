/* devsim's op slots: each runs the CPU backend's kernel on host views of its operands.
 *
 * Per call: count it (fault injection), translate every operand from its PROT_NONE
 * address to the shadow (devsim_translate: must be devsim memory, inside one live
 * allocation), then run the CPU op through the ops.h wrappers.
 *
 * bf16 activations. The CPU kernels take f32 activations only, while every devsim op
 * accepts f32 and bf16 ones, the tensor's dtype deciding, as the CUDA backend does. So an
 * activation operand (x, y, a, b, q, k, v, out, d, ...) in bf16 is widened into an f32
 * temporary, the kernel runs, and a bf16 output is rounded once (round to nearest even)
 * into its storage: load bf16 -> compute in f32 -> round on store, the CUDA numerics.
 * Operands that are the same tensor share one temporary, so in-place calls stay in place.
 * Weights (w, b, gamma, scale, shift, gate) are read in place in F32/BF16/F16 by the CPU
 * kernels, so a bf16 activation used in a weight role (modulate's scale/shift, add_gated's
 * gate) is exact as it is; rope's freqs are F64; copy and gather_rows handle bf16 natively.
 * Where CUDA quantises a weight, devsim does too: with bf16 activations cuBLASLt needs A
 * and B in one dtype, so linear and conv3d round a non-bf16 weight to bf16 (and linear's
 * bias when y is bf16 as well) for the call.
 *
 * Dtype rules CUDA enforces are enforced here too, so code that passes on devsim does not
 * fail on a GPU: activations f32 or bf16; operands sharing storage share a dtype;
 * matmul's a and b one dtype; attention's bias f32 and both key (value) segments one
 * dtype; conv3d refuses f32 input with a non-f32 output (INFVSR_ERR_UNSUPPORTED). */
#include <stdlib.h>
#include <string.h>

#include "devsim_impl.h"
#include "ops.h"

#define MAX_OPERANDS 8

enum role_kind {
    KIND_RAW,       /* any dtype, handed over as it is (weights, tables, copy/gather)  */
    KIND_ACT,       /* activation: f32, or bf16 widened to an f32 temporary            */
    KIND_W_BF16,    /* GEMM weight with bf16 activations: rounded to bf16 for the call */
};

struct operand {
    const char *                 role;
    const struct infvsr_tensor * dev;     /* the caller's devsim tensor                  */
    struct infvsr_tensor         host;    /* what the CPU kernel sees                    */
    void *                       tmp;     /* conversion buffer owned by this operand     */
    void *                       shadow;  /* dev's bytes                                 */
    bool                         out;     /* round host (f32) back into dev's bf16 bytes */
};

struct call {
    struct devsim * d;
    const char *    op;
    int             n;
    struct operand  o[MAX_OPERANDS];
};

static const char * tname(const struct infvsr_tensor * t) { return t->name[0] ? t->name : "(unnamed)"; }

static bool same_storage(const struct infvsr_tensor * a, const struct infvsr_tensor * b) {
    return a->data && a->data == b->data && infvsr_tensor_numel(a) > 0 && infvsr_tensor_numel(b) > 0;
}

/* Adds operand t to the call and sets *res to the tensor the CPU kernel gets (NULL for
 * NULL: the ops.h wrapper of the CPU backend reports missing required operands). */
static enum infvsr_status add(struct call * c, const char * role, const struct infvsr_tensor * t, enum role_kind kind,
                              bool out, const struct infvsr_tensor ** res, struct infvsr_err * err) {
    *res = NULL;
    if (!t) return INFVSR_OK;
    INFVSR_ASSERT(c->n < MAX_OPERANDS);
    struct operand * o = &c->o[c->n];
    memset(o, 0, sizeof *o);
    o->role = role;
    o->dev  = t;
    INFVSR_TRY(devsim_translate(c->d, c->op, role, t, &o->host, err));
    o->shadow = o->host.data;
    c->n++; /* from here on finish() frees o->tmp */
    const size_t n = (size_t)infvsr_tensor_numel(t);
    for (int i = 0; i < c->n - 1; i++) {
        const struct operand * p = &c->o[i];
        if (!same_storage(p->dev, t)) continue;
        if (p->dev->dtype != t->dtype) {
            return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "devsim %s: %s '%s' (%s) and %s '%s' (%s) share storage: "
                                  "an in-place call needs one dtype", c->op, p->role, tname(p->dev),
                                  infvsr_dtype_name(p->dev->dtype), role, tname(t), infvsr_dtype_name(t->dtype));
        }
    }
    if (kind == KIND_ACT) {
        if (t->dtype != INFVSR_TYPE_F32 && t->dtype != INFVSR_TYPE_BF16) {
            return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "devsim %s: %s tensor '%s' has dtype %s; activations "
                                  "must be f32 or bf16", c->op, role, tname(t), infvsr_dtype_name(t->dtype));
        }
        if (t->dtype == INFVSR_TYPE_BF16) {
            o->out        = out;
            o->host.dtype = INFVSR_TYPE_F32;
            o->host.data  = NULL;
            /* The same bf16 tensor seen earlier in this call (in place): share its f32 copy. */
            for (int i = 0; i < c->n - 1 && !o->host.data; i++) {
                const struct operand * p = &c->o[i];
                if (p->host.dtype == INFVSR_TYPE_F32 && p->dev->dtype == INFVSR_TYPE_BF16 && same_storage(p->dev, t) &&
                    (size_t)infvsr_tensor_numel(p->dev) == n)
                    o->host.data = p->host.data;
            }
            if (!o->host.data && n > 0) {
                if (!(o->tmp = malloc(n * sizeof(float)))) goto nomem;
                infvsr_convert_to_f32(o->tmp, o->shadow, INFVSR_TYPE_BF16, n);
                o->host.data = o->tmp;
            }
        }
    } else if (kind == KIND_W_BF16 && t->dtype != INFVSR_TYPE_BF16 && infvsr_dtype_is_float(t->dtype) && n > 0) {
        if (!(o->tmp = malloc(n * sizeof(uint16_t)))) goto nomem;
        float * f = o->shadow;
        if (t->dtype != INFVSR_TYPE_F32) {
            if (!(f = malloc(n * sizeof(float)))) goto nomem;
            infvsr_convert_to_f32(f, o->shadow, t->dtype, n);
        }
        infvsr_convert_from_f32(o->tmp, INFVSR_TYPE_BF16, f, n);
        if (f != o->shadow) free(f);
        o->host.data  = o->tmp;
        o->host.dtype = INFVSR_TYPE_BF16;
    }
    *res = &o->host;
    return INFVSR_OK;
nomem:
    return infvsr_err_set(err, INFVSR_ERR_NOMEM, "devsim %s: out of host memory widening %s '%s' (%zu elements)",
                          c->op, role, tname(t), n);
}

/* After the kernel: bf16 outputs rounded into their storage (only on success), temporaries
 * freed. Returns st. */
static enum infvsr_status finish(struct call * c, enum infvsr_status st) {
    for (int i = 0; i < c->n && st == INFVSR_OK; i++) { /* before any free: outputs may share an input's copy */
        struct operand * o = &c->o[i];
        size_t n = (size_t)infvsr_tensor_numel(o->dev);
        if (o->out && n > 0) infvsr_convert_from_f32(o->shadow, INFVSR_TYPE_BF16, o->host.data, n);
    }
    for (int i = 0; i < c->n; i++) free(c->o[i].tmp);
    return st;
}

static enum infvsr_status kernel_status(enum infvsr_status st, struct infvsr_err * err) {
    if (st != INFVSR_OK) infvsr_err_prefix(err, "devsim");
    return st;
}

#define BEGIN(name)                                             \
    struct devsim * d = devsim_ctx(be);                         \
    INFVSR_TRY(devsim_enter_op(d, name, err));                  \
    struct call c = { .d = d, .op = name, .n = 0 };             \
    enum infvsr_status st = INFVSR_OK

/* Adds an operand; on failure jumps to `done` (which frees what was added so far). */
#define ADD(role, t, kind, out, res)                                              \
    do {                                                                          \
        if ((st = add(&c, role, t, kind, out, res, err)) != INFVSR_OK) goto done; \
    } while (0)

#define IN(role, t, kind, res)  ADD(role, t, kind, false, res)
#define OUT(role, t, res)       ADD(role, t, KIND_ACT, true, res)

/* ---- GEMM family ---- */

static enum infvsr_status ds_linear(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                    const struct infvsr_tensor * w, const struct infvsr_tensor * b,
                                    enum infvsr_unary_op act, struct infvsr_tensor * y, struct infvsr_err * err) {
    BEGIN("linear");
    const struct infvsr_tensor * hx, * hw, * hb, * hy;
    const bool bf16_in = x && x->dtype == INFVSR_TYPE_BF16, bf16_out = bf16_in && y && y->dtype == INFVSR_TYPE_BF16;
    IN("x", x, KIND_ACT, &hx);
    IN("w", w, bf16_in ? KIND_W_BF16 : KIND_RAW, &hw);
    IN("b", b, bf16_out ? KIND_W_BF16 : KIND_RAW, &hb);
    OUT("y", y, &hy);
    st = kernel_status(infvsr_op_linear(d->cpu, hx, hw, hb, act, (struct infvsr_tensor *)hy, err), err);
done:
    return finish(&c, st);
}

static enum infvsr_status ds_matmul(struct infvsr_backend * be, const struct infvsr_tensor * a,
                                    const struct infvsr_tensor * b, bool trans_b, float alpha,
                                    struct infvsr_tensor * cm, struct infvsr_err * err) {
    BEGIN("matmul");
    const struct infvsr_tensor * ha, * hb, * hc;
    if (a && b && a->dtype != b->dtype) {
        st = infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "devsim matmul: a '%s' (%s) and b '%s' (%s) must share a "
                            "dtype", tname(a), infvsr_dtype_name(a->dtype), tname(b), infvsr_dtype_name(b->dtype));
        goto done;
    }
    IN("a", a, KIND_ACT, &ha);
    IN("b", b, KIND_ACT, &hb);
    OUT("c", cm, &hc);
    st = kernel_status(infvsr_op_matmul(d->cpu, ha, hb, trans_b, alpha, (struct infvsr_tensor *)hc, err), err);
done:
    return finish(&c, st);
}

/* ---- normalisation ---- */

static enum infvsr_status ds_layer_norm(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                        const struct infvsr_tensor * w, const struct infvsr_tensor * b, float eps,
                                        struct infvsr_tensor * y, struct infvsr_err * err) {
    BEGIN("layer_norm");
    const struct infvsr_tensor * hx, * hw, * hb, * hy;
    IN("x", x, KIND_ACT, &hx);
    IN("w", w, KIND_RAW, &hw);
    IN("b", b, KIND_RAW, &hb);
    OUT("y", y, &hy);
    st = kernel_status(infvsr_op_layer_norm(d->cpu, hx, hw, hb, eps, (struct infvsr_tensor *)hy, err), err);
done:
    return finish(&c, st);
}

static enum infvsr_status ds_rms_norm(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                      const struct infvsr_tensor * w, float eps, struct infvsr_tensor * y,
                                      struct infvsr_err * err) {
    BEGIN("rms_norm");
    const struct infvsr_tensor * hx, * hw, * hy;
    IN("x", x, KIND_ACT, &hx);
    IN("w", w, KIND_RAW, &hw);
    OUT("y", y, &hy);
    st = kernel_status(infvsr_op_rms_norm(d->cpu, hx, hw, eps, (struct infvsr_tensor *)hy, err), err);
done:
    return finish(&c, st);
}

static enum infvsr_status ds_channel_rms_norm(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                              const struct infvsr_tensor * gamma, struct infvsr_tensor * y,
                                              struct infvsr_err * err) {
    BEGIN("channel_rms_norm");
    const struct infvsr_tensor * hx, * hg, * hy;
    IN("x", x, KIND_ACT, &hx);
    IN("gamma", gamma, KIND_RAW, &hg);
    OUT("y", y, &hy);
    st = kernel_status(infvsr_op_channel_rms_norm(d->cpu, hx, hg, (struct infvsr_tensor *)hy, err), err);
done:
    return finish(&c, st);
}

static enum infvsr_status ds_modulate(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                      const struct infvsr_tensor * scale, const struct infvsr_tensor * shift,
                                      struct infvsr_tensor * y, struct infvsr_err * err) {
    BEGIN("modulate");
    const struct infvsr_tensor * hx, * hsc, * hsh, * hy;
    IN("x", x, KIND_ACT, &hx);
    IN("scale", scale, KIND_RAW, &hsc);
    IN("shift", shift, KIND_RAW, &hsh);
    OUT("y", y, &hy);
    st = kernel_status(infvsr_op_modulate(d->cpu, hx, hsc, hsh, (struct infvsr_tensor *)hy, err), err);
done:
    return finish(&c, st);
}

/* ---- elementwise ---- */

static enum infvsr_status ds_unary(struct infvsr_backend * be, enum infvsr_unary_op op,
                                   const struct infvsr_tensor * x, struct infvsr_tensor * y, struct infvsr_err * err) {
    BEGIN("unary");
    const struct infvsr_tensor * hx, * hy;
    IN("x", x, KIND_ACT, &hx);
    OUT("y", y, &hy);
    st = kernel_status(infvsr_op_unary(d->cpu, op, hx, (struct infvsr_tensor *)hy, err), err);
done:
    return finish(&c, st);
}

static enum infvsr_status ds_add(struct infvsr_backend * be, const struct infvsr_tensor * a,
                                 const struct infvsr_tensor * b, struct infvsr_tensor * y, struct infvsr_err * err) {
    BEGIN("add");
    const struct infvsr_tensor * ha, * hb, * hy;
    IN("a", a, KIND_ACT, &ha);
    IN("b", b, KIND_ACT, &hb);
    OUT("y", y, &hy);
    st = kernel_status(infvsr_op_add(d->cpu, ha, hb, (struct infvsr_tensor *)hy, err), err);
done:
    return finish(&c, st);
}

static enum infvsr_status ds_add_gated(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                       const struct infvsr_tensor * gate, const struct infvsr_tensor * dd,
                                       struct infvsr_tensor * y, struct infvsr_err * err) {
    BEGIN("add_gated");
    const struct infvsr_tensor * hx, * hg, * hd, * hy;
    IN("x", x, KIND_ACT, &hx);
    IN("gate", gate, KIND_RAW, &hg);
    IN("d", dd, KIND_ACT, &hd);
    OUT("y", y, &hy);
    st = kernel_status(infvsr_op_add_gated(d->cpu, hx, hg, hd, (struct infvsr_tensor *)hy, err), err);
done:
    return finish(&c, st);
}

static enum infvsr_status ds_affine_clamp(struct infvsr_backend * be, const struct infvsr_tensor * x, float alpha,
                                          float beta, float lo, float hi, struct infvsr_tensor * y,
                                          struct infvsr_err * err) {
    BEGIN("affine_clamp");
    const struct infvsr_tensor * hx, * hy;
    IN("x", x, KIND_ACT, &hx);
    OUT("y", y, &hy);
    st = kernel_status(infvsr_op_affine_clamp(d->cpu, hx, alpha, beta, lo, hi, (struct infvsr_tensor *)hy, err), err);
done:
    return finish(&c, st);
}

static enum infvsr_status ds_softmax(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                     struct infvsr_tensor * y, struct infvsr_err * err) {
    BEGIN("softmax");
    const struct infvsr_tensor * hx, * hy;
    IN("x", x, KIND_ACT, &hx);
    OUT("y", y, &hy);
    st = kernel_status(infvsr_op_softmax(d->cpu, hx, (struct infvsr_tensor *)hy, err), err);
done:
    return finish(&c, st);
}

/* ---- attention and positions ---- */

static enum infvsr_status ds_attention(struct infvsr_backend * be, const struct infvsr_attn_args * a,
                                       struct infvsr_err * err) {
    BEGIN("attention");
    if (!a) {
        st = infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "devsim attention: NULL args");
        goto done;
    }
    if (a->bias && a->bias->dtype != INFVSR_TYPE_F32) {
        st = infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "devsim attention: bias '%s' is %s, must be f32 (as on CUDA)",
                            tname(a->bias), infvsr_dtype_name(a->bias->dtype));
        goto done;
    }
    if (a->k0 && a->k1 && a->v0 && a->v1 && (a->k0->dtype != a->k1->dtype || a->v0->dtype != a->v1->dtype)) {
        st = infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "devsim attention: both key (value) segments must share a "
                            "dtype (k0 %s, k1 %s, v0 %s, v1 %s)", infvsr_dtype_name(a->k0->dtype),
                            infvsr_dtype_name(a->k1->dtype), infvsr_dtype_name(a->v0->dtype),
                            infvsr_dtype_name(a->v1->dtype));
        goto done;
    }
    struct infvsr_attn_args h = *a;
    IN("q", a->q, KIND_ACT, &h.q);
    IN("k0", a->k0, KIND_ACT, &h.k0);
    IN("v0", a->v0, KIND_ACT, &h.v0);
    IN("k1", a->k1, KIND_ACT, &h.k1);
    IN("v1", a->v1, KIND_ACT, &h.v1);
    IN("bias", a->bias, KIND_RAW, &h.bias);
    const struct infvsr_tensor * ho;
    OUT("out", a->out, &ho);
    h.out = (struct infvsr_tensor *)ho;
    st = kernel_status(infvsr_op_attention(d->cpu, &h, err), err);
done:
    return finish(&c, st);
}

static enum infvsr_status ds_rope(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                  const struct infvsr_tensor * freqs, int n_heads, struct infvsr_tensor * y,
                                  struct infvsr_err * err) {
    BEGIN("rope");
    const struct infvsr_tensor * hx, * hf, * hy;
    IN("x", x, KIND_ACT, &hx);
    IN("freqs", freqs, KIND_RAW, &hf);
    OUT("y", y, &hy);
    st = kernel_status(infvsr_op_rope(d->cpu, hx, hf, n_heads, (struct infvsr_tensor *)hy, err), err);
done:
    return finish(&c, st);
}

/* ---- convolution and resampling ---- */

static enum infvsr_status ds_conv3d(struct infvsr_backend * be, const struct infvsr_conv3d_args * a,
                                    struct infvsr_err * err) {
    BEGIN("conv3d");
    if (!a) {
        st = infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "devsim conv3d: NULL args");
        goto done;
    }
    if (a->x && a->y && a->x->dtype == INFVSR_TYPE_F32 && a->y->dtype != INFVSR_TYPE_F32) {
        st = infvsr_err_set(err, INFVSR_ERR_UNSUPPORTED, "devsim conv3d: f32 input with %s output is not supported "
                            "(as on CUDA)", infvsr_dtype_name(a->y->dtype));
        goto done;
    }
    struct infvsr_conv3d_args h = *a;
    const bool bf16_in = a->x && a->x->dtype == INFVSR_TYPE_BF16;
    IN("x", a->x, KIND_ACT, &h.x);
    IN("w", a->w, bf16_in ? KIND_W_BF16 : KIND_RAW, &h.w);
    IN("b", a->b, KIND_RAW, &h.b);
    const struct infvsr_tensor * hy;
    OUT("y", a->y, &hy);
    h.y = (struct infvsr_tensor *)hy;
    st = kernel_status(infvsr_op_conv3d(d->cpu, &h, err), err);
done:
    return finish(&c, st);
}

static enum infvsr_status ds_resize(struct infvsr_backend * be, enum infvsr_resize_mode mode,
                                    const struct infvsr_tensor * x, struct infvsr_tensor * y, struct infvsr_err * err) {
    BEGIN("resize");
    const struct infvsr_tensor * hx, * hy;
    IN("x", x, KIND_ACT, &hx);
    OUT("y", y, &hy);
    st = kernel_status(infvsr_op_resize(d->cpu, mode, hx, (struct infvsr_tensor *)hy, err), err);
done:
    return finish(&c, st);
}

/* ---- data movement: every dtype natively on the CPU, so operands go as they are ---- */

static enum infvsr_status ds_copy(struct infvsr_backend * be, const struct infvsr_copy_args * a,
                                  struct infvsr_err * err) {
    BEGIN("copy");
    if (!a) {
        st = infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "devsim copy: NULL args");
        goto done;
    }
    struct infvsr_copy_args h = *a;
    const bool uses_m = a->mode == INFVSR_COPY_ACCUMULATE || a->mode == INFVSR_COPY_DIVIDE;
    IN("x", a->mode == INFVSR_COPY_FILL ? NULL : a->x, KIND_RAW, &h.x);
    IN("m", uses_m ? a->m : NULL, KIND_RAW, &h.m);
    const struct infvsr_tensor * hy;
    IN("y", a->y, KIND_RAW, &hy);
    h.y = (struct infvsr_tensor *)hy;
    st = kernel_status(infvsr_op_copy(d->cpu, &h, err), err);
done:
    return finish(&c, st);
}

static enum infvsr_status ds_gather_rows(struct infvsr_backend * be, const struct infvsr_tensor * x,
                                         const struct infvsr_tensor * idx, struct infvsr_tensor * y,
                                         struct infvsr_err * err) {
    BEGIN("gather_rows");
    const struct infvsr_tensor * hx, * hi, * hy;
    IN("x", x, KIND_RAW, &hx);
    IN("idx", idx, KIND_RAW, &hi);
    IN("y", y, KIND_RAW, &hy);
    st = kernel_status(infvsr_op_gather_rows(d->cpu, hx, hi, (struct infvsr_tensor *)hy, err), err);
done:
    return finish(&c, st);
}

const struct infvsr_backend_i devsim_iface = {
    .name             = devsim_name,
    .get_caps         = devsim_get_caps,
    .last_error       = devsim_last_error,
    .free             = devsim_free,
    .tensor_alloc     = devsim_tensor_alloc,
    .tensor_free      = devsim_tensor_free,
    .tensor_set       = devsim_tensor_set,
    .tensor_get       = devsim_tensor_get,
    .synchronize      = devsim_synchronize,
    .linear           = ds_linear,
    .matmul           = ds_matmul,
    .layer_norm       = ds_layer_norm,
    .rms_norm         = ds_rms_norm,
    .channel_rms_norm = ds_channel_rms_norm,
    .modulate         = ds_modulate,
    .unary            = ds_unary,
    .add              = ds_add,
    .add_gated        = ds_add_gated,
    .affine_clamp     = ds_affine_clamp,
    .softmax          = ds_softmax,
    .attention        = ds_attention,
    .rope             = ds_rope,
    .conv3d           = ds_conv3d,
    .resize           = ds_resize,
    .copy             = ds_copy,
    .gather_rows      = ds_gather_rows,
};
