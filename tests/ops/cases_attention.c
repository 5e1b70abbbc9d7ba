/* Op cases: attention (one and two key segments, additive bias, a fully masked segment,
 * ragged and tiny shapes, head dims 32/64/128/384 and odd ones; on CUDA with bf16 every
 * kernel forced in turn) and RoPE (in place too), and their refused calls. */
#include <math.h>

#include <string.h>

#include "backend_ops.h"
#include "cpu_impl.h"

#ifdef INFVSR_USE_CUDA
#include "cuda_backend.h"
#endif

enum bias_mode { BIAS_NONE, BIAS_RANDOM, BIAS_MASK_SEGMENT0 };
static const char * kernel_names[] = { "auto", "mma", "wmma", "simt" };

struct attn_p {
    int64_t nq, n0, n1, H, D;
    enum bias_mode bias;
    int     kernel;              /* enum infvsr_cuda_attn_kernel (cuda only)        */
    float   scale;
    /* refused calls: */
    int64_t out_rows, bias_rows; /* 0: right                                        */
    int     heads;               /* 0: H                                            */
    bool    k1_only;
    bool    empty_k1;            /* k1/v1 given with no tokens (n1 = 0)             */
    int     out_alias;           /* refused: out shares the memory of q, k1 or v1 (ALIAS_*) */
};

enum { ALIAS_NONE, ALIAS_Q, ALIAS_K1, ALIAS_V1 };
static const char * alias_names[] = { "", " out=q", " out=k1", " out=v1" };

static enum infvsr_status run_attention(struct bo_ctx * c, const struct bo_case * k) {
    const struct attn_p * p = BO_P(k, struct attn_p);
    const int64_t hd = p->H * p->D, nk = p->n0 + p->n1;
    struct infvsr_tensor * q = bo_in(c, "q", BO_ACT, 2, S2(p->nq, hd), -1.5, 1.5);
    struct infvsr_tensor * k0 = bo_in(c, "k0", BO_ACT, 2, S2(p->n0, hd), -1.5, 1.5);
    struct infvsr_tensor * v0 = bo_in(c, "v0", BO_ACT, 2, S2(p->n0, hd), -1, 1);
    struct infvsr_tensor * k1 = NULL, * v1 = NULL, * bias = NULL;
    if (p->n1 || p->empty_k1) {
        k1 = bo_in(c, "k1", BO_ACT, 2, S2(p->n1, hd), -1.5, 1.5);
        v1 = bo_in(c, "v1", BO_ACT, 2, S2(p->n1, hd), -1, 1);
    }
    const int64_t bias_rows = p->bias_rows ? p->bias_rows : p->nq;
    if (p->bias == BIAS_RANDOM) {
        bias = bo_in(c, "bias", INFVSR_TYPE_F32, 3, S3(p->H, bias_rows, nk), -3, 3);
    } else if (p->bias == BIAS_MASK_SEGMENT0) {
        /* -inf on every key of segment 0: the result is attention over segment 1 alone */
        size_t n = (size_t)(p->H * bias_rows * nk);
        float * v = malloc(n * sizeof *v);
        for (size_t i = 0; i < n; i++) v[i] = (int64_t)(i % (size_t)nk) < p->n0 ? -INFINITY : 0.0f;
        bias = bo_in_f32(c, "bias", INFVSR_TYPE_F32, 3, S3(p->H, bias_rows, nk), v);
        free(v);
    }
    struct infvsr_tensor * out = p->out_alias == ALIAS_Q    ? q
                                 : p->out_alias == ALIAS_K1 ? k1
                                 : p->out_alias == ALIAS_V1 ? v1
                                 : bo_out(c, "out", BO_ACT, 2, S2(p->out_rows ? p->out_rows : p->nq, hd));
    BO_SETUP_DONE(c);
    struct infvsr_attn_args a = { .q = q, .k0 = k0, .v0 = v0, .k1 = k1, .v1 = p->k1_only ? NULL : v1, .bias = bias,
                                  .n_heads = (int)(p->heads ? p->heads : p->H), .scale = p->scale, .out = out };
#ifdef INFVSR_USE_CUDA
    if (c->is_cuda) infvsr_cuda_backend_set_attention_kernel(c->be, (enum infvsr_cuda_attn_kernel)p->kernel);
#endif
    /* the fast cpu backend with bf16 activations runs the native bf16 attention on every
     * case where its ISA level has it (avx512bf16, amx), the widened f32 one on avx2 */
    struct infvsr_cpu_ctx * cpu = !c->is_ref && strcmp(infvsr_backend_name(c->be), "cpu") == 0 ? c->be->context : NULL;
    const int64_t native0 = cpu ? cpu->native_attention_calls : 0;
    enum infvsr_status st = infvsr_op_attention(c->be, &a, &c->err);
#ifdef INFVSR_USE_CUDA
    if (c->is_cuda) infvsr_cuda_backend_set_attention_kernel(c->be, INFVSR_CUDA_ATTN_AUTO);
#endif
    if (cpu && st == INFVSR_OK) {
        const bool want = c->act == INFVSR_TYPE_BF16 && infvsr_cpu_attention_bf16_applies(cpu);
        if (cpu->native_attention_calls - native0 != (want ? 1 : 0)) {
            return infvsr_err_set(&c->err, INFVSR_ERR_UNSUPPORTED, "the %s attention did not run (isa %s)",
                                  want ? "native bf16" : "widened f32", infvsr_cpu_isa_name(cpu->isa));
        }
    }
    return st;
}

static struct bo_case * add_attention(struct bo_list * l, const struct attn_p * p, enum bo_kind kind) {
    struct bo_case * k = bo_add(l, "attention", kind, run_attention, p, sizeof *p);
    static const char * biases[] = { "", " bias", " bias=-inf on k0" };
    bo_desc(k, "Nq=%lld Nk=%lld+%lld H=%lld D=%lld%s scale=%.4g%s%s%s%s%s%s", (long long)p->nq, (long long)p->n0,
            (long long)p->n1, (long long)p->H, (long long)p->D, biases[p->bias], (double)p->scale,
            p->kernel ? " kernel=" : "", p->kernel ? kernel_names[p->kernel] : "", p->out_rows ? " out rows wrong" : "",
            p->bias_rows ? " bias rows wrong" : "", p->heads ? " n_heads wrong" : "",
            p->k1_only ? " k1 without v1" : p->empty_k1 ? " empty k1/v1" : alias_names[p->out_alias]);
    k->tol_f32 = BO_TOL_GEMM;
    return k;
}

static struct attn_p attn(int64_t nq, int64_t n0, int64_t n1, int64_t H, int64_t D, enum bias_mode bias) {
    struct attn_p p = { .nq = nq, .n0 = n0, .n1 = n1, .H = H, .D = D, .bias = bias,
                        .scale = (float)(1.0 / sqrt((double)D)) };
    return p;
}

/* ---- rope ---- */

struct rope_p {
    int64_t           N, H, D;
    bool              inplace;
    enum infvsr_dtype fdt;        /* F64; F32 when refused */
    int               heads;      /* 0: H                  */
};

static enum infvsr_status run_rope(struct bo_ctx * c, const struct bo_case * k) {
    const struct rope_p * p = BO_P(k, struct rope_p);
    struct infvsr_tensor * x = bo_in(c, "x", BO_ACT, 2, S2(p->N, p->H * p->D), -2, 2);
    /* freqs: (cos, sin) of angles in [0, 100) rad, float64 as the DiT computes them */
    size_t pairs = (size_t)(p->N * p->D / 2);
    double * f = malloc(2 * pairs * sizeof *f);
    for (size_t i = 0; i < pairs; i++) {
        double ang = (double)(bo_rand(c) >> 11) * (1.0 / 9007199254740992.0) * 100.0;
        f[2 * i] = cos(ang), f[2 * i + 1] = sin(ang);
    }
    struct infvsr_tensor * freqs;
    if (p->fdt == INFVSR_TYPE_F64) {
        freqs = bo_in_bytes(c, "freqs", INFVSR_TYPE_F64, 3, S3(p->N, p->D / 2, 2), f);
    } else {
        float * f32 = malloc(2 * pairs * sizeof *f32);
        for (size_t i = 0; i < 2 * pairs; i++) f32[i] = (float)f[i];
        freqs = bo_in_f32(c, "freqs", INFVSR_TYPE_F32, 3, S3(p->N, p->D / 2, 2), f32);
        free(f32);
    }
    free(f);
    struct infvsr_tensor * y = p->inplace && !c->is_ref ? bo_make_out(c, x) : bo_out(c, "y", BO_ACT, 2, S2(p->N, p->H * p->D));
    BO_SETUP_DONE(c);
    return infvsr_op_rope(c->be, x, freqs, (int)(p->heads ? p->heads : p->H), y, &c->err);
}

static struct bo_case * add_rope(struct bo_list * l, const struct rope_p * p, enum bo_kind kind) {
    struct bo_case * k = bo_add(l, "rope", kind, run_rope, p, sizeof *p);
    bo_desc(k, "x[%lld, %lldx%lld] freqs:%s%s%s", (long long)p->N, (long long)p->H, (long long)p->D,
            infvsr_dtype_name(p->fdt), p->inplace ? " in place" : "", p->heads ? " n_heads wrong" : "");
    return k;
}

void bo_cases_attention(struct bo_list * l) {
    const struct attn_p cases[] = {
        attn(33, 33, 0, 2, 32, BIAS_NONE),    /* one segment, partial blocks                 */
        attn(70, 50, 77, 3, 128, BIAS_RANDOM), /* two segments, Nq != Nk, bias                */
        attn(5, 145, 0, 2, 20, BIAS_NONE),    /* odd head dim, cross-attention-like Nk        */
        attn(64, 130, 0, 1, 384, BIAS_NONE),  /* VAE single head                              */
        attn(17, 9, 3, 4, 64, BIAS_RANDOM),   /* tiny segments                                */
        attn(1, 1, 0, 1, 1, BIAS_NONE),       /* degenerate                                   */
        attn(130, 64, 64, 2, 24, BIAS_RANDOM), /* block-aligned segments, odd D               */
        attn(300, 70, 0, 2, 32, BIAS_RANDOM), /* more than one query group per head           */
        attn(100, 70, 90, 2, 64, BIAS_NONE),  /* two segments, ragged tiles                   */
        attn(200, 150, 130, 2, 128, BIAS_RANDOM), /* several query blocks and key tiles       */
        attn(130, 200, 0, 3, 128, BIAS_NONE), /* one segment, D = 128                          */
        attn(65, 33, 31, 4, 32, BIAS_RANDOM), /* D = 32 with bias                              */
        attn(50, 80, 0, 1, 384, BIAS_NONE),   /* VAE head dim, two key tiles                   */
        attn(40, 30, 20, 3, 40, BIAS_RANDOM), /* odd head dim with two segments                */
        attn(9, 70, 6, 2, 16, BIAS_MASK_SEGMENT0), /* a fully masked segment                   */
        attn(192, 192, 192, 2, 128, BIAS_NONE), /* the DiT's steady chunk (2 of its 12 heads)   */
        attn(61, 45, 19, 2, 33, BIAS_RANDOM), /* odd D: 3 value strips of 16                   */
        attn(70, 100, 0, 2, 80, BIAS_NONE),   /* D = 80: a 64- and a 16-channel pass           */
        attn(35, 66, 63, 1, 127, BIAS_RANDOM), /* odd D > 64, key blocks of 64 + 2 and 63     */
        attn(7, 3, 0, 3, 64, BIAS_RANDOM),    /* fewer keys than one 16-key strip              */
    };
    const size_t n = sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < n; i++) add_attention(l, &cases[i], BO_COMPARE);
    {
        /* k1/v1 present but empty (a cache segment with no tokens yet) */
        struct attn_p p = attn(48, 100, 0, 2, 64, BIAS_RANDOM);
        p.empty_k1 = true;
        add_attention(l, &p, BO_COMPARE);
    }
    {
        /* the result does not depend on the thread count (cpu: 2 threads vs 1) */
        struct attn_p p = attn(150, 90, 0, 3, 40, BIAS_NONE);
        p.scale = 0.2f;
        add_attention(l, &p, BO_COMPARE)->flags |= BO_REPEAT;
    }
    /* CUDA with bf16: every kernel on every case (a forced kernel that does not apply
     * falls back to SIMT) */
    for (int kern = 1; kern <= 3; kern++) {
        for (size_t i = 0; i < n; i++) {
            struct attn_p p = cases[i];
            p.kernel = kern;
            add_attention(l, &p, BO_COMPARE)->flags |= BO_CUDA_ONLY | BO_BF16_ONLY;
        }
    }
    /* refused: out of another shape, bias of another shape, heads that do not divide,
     * k1 without v1, out sharing the memory of q or of the second key/value segment */
    {
        struct attn_p p = attn(4, 4, 0, 2, 4, BIAS_NONE);
        p.out_rows = 3;
        add_attention(l, &p, BO_INVALID)->needle = "out";
        p = attn(4, 4, 0, 2, 4, BIAS_RANDOM);
        p.bias_rows = 3;
        add_attention(l, &p, BO_INVALID)->needle = "bias";
        p = attn(4, 4, 0, 2, 4, BIAS_NONE);
        p.heads = 3;
        add_attention(l, &p, BO_INVALID);
        p = attn(4, 4, 2, 2, 4, BIAS_NONE);
        p.k1_only = true;
        add_attention(l, &p, BO_INVALID)->needle = "k1";
        p = attn(4, 4, 0, 2, 4, BIAS_NONE);
        p.out_alias = ALIAS_Q;
        add_attention(l, &p, BO_INVALID)->needle = "alias";
        /* k1 / v1 as long as q, so out = k1 has q's shape and only the aliasing is wrong */
        for (int al = ALIAS_K1; al <= ALIAS_V1; al++) {
            p = attn(4, 3, 4, 2, 4, BIAS_NONE);
            p.out_alias = al;
            add_attention(l, &p, BO_INVALID)->needle = "alias";
        }
    }

    const int64_t rc[][3] = { { 7, 3, 8 }, { 33, 2, 128 }, { 1, 1, 2 }, { 20, 3, 16 } };
    for (int i = 0; i < 4; i++) {
        for (int ip = 0; ip < 2; ip++) {
            struct rope_p p = { .N = rc[i][0], .H = rc[i][1], .D = rc[i][2], .inplace = ip, .fdt = INFVSR_TYPE_F64 };
            add_rope(l, &p, BO_COMPARE);
        }
    }
    {
        struct rope_p p = { .N = 4, .H = 2, .D = 4, .fdt = INFVSR_TYPE_F32 };
        add_rope(l, &p, BO_INVALID)->needle = "freqs";
        p.fdt = INFVSR_TYPE_F64, p.heads = 3;
        add_rope(l, &p, BO_INVALID)->needle = "n_heads";
    }
}
