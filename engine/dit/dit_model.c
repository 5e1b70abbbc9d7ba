/* DiT model: strict checkpoint validation (MODEL-SPEC §4.9), the one weight import
 * (engine/core/weight_set) and the constants hoisted once per model (§4.7), computed on
 * the backend: e = time embedding of t = 400, t_mod, mod_i = modulation_i + t_mod and
 * head_mod = head.modulation + e. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dit_internal.h"

#define KEY_MAX 96

/* Collects every loader problem; the error reports the first one and the count. */
struct load_check {
    const struct infvsr_weights * w;
    struct infvsr_err             first;
    int                           n_bad;
};

static void note_bad(struct load_check * lc, const struct infvsr_err * e) {
    if (lc->n_bad++ == 0) lc->first = *e;
}

static void get_weight(struct load_check * lc, const char * key, int ndim, const int64_t * shape,
                       struct infvsr_tensor * dst) {
    struct infvsr_err e;
    infvsr_err_clear(&e);
    if (infvsr_weights_get(lc->w, "", key, ndim, shape, dst, &e) != INFVSR_OK) {
        if (!strstr(e.msg, key)) infvsr_err_prefix(&e, "%s", key);
        note_bad(lc, &e);
        return;
    }
    /* The backend's linear reads F32/BF16/F16 weights in place; anything else (f64, ints)
     * would fail later in the middle of a chunk, so reject it at load. */
    if (dst->dtype != INFVSR_TYPE_F32 && dst->dtype != INFVSR_TYPE_BF16 && dst->dtype != INFVSR_TYPE_F16) {
        infvsr_err_set(&e, INFVSR_ERR_MODEL, "%s: tensor '%s': dtype %s not supported (expected bf16, f16 or f32)",
                       infvsr_weights_path(lc->w), key, infvsr_dtype_name(dst->dtype));
        note_bad(lc, &e);
    }
}

static void get1(struct load_check * lc, const char * key, int64_t a, struct infvsr_tensor * dst) {
    int64_t s[1] = { a };
    get_weight(lc, key, 1, s, dst);
}

static void get2(struct load_check * lc, const char * key, int64_t a, int64_t b, struct infvsr_tensor * dst) {
    int64_t s[2] = { a, b };
    get_weight(lc, key, 2, s, dst);
}

static void get3(struct load_check * lc, const char * key, int64_t a, int64_t b, int64_t c,
                 struct infvsr_tensor * dst) {
    int64_t s[3] = { a, b, c };
    get_weight(lc, key, 3, s, dst);
}

/* ---- expected key set (for rejecting unexpected keys, as the official strict load) ---- */

static const char * const block_attn_suffixes[] = {
    "q.weight", "q.bias", "k.weight", "k.bias", "v.weight", "v.bias", "o.weight", "o.bias",
    "norm_q.weight", "norm_k.weight",
};
static const char * const block_other_suffixes[] = {
    "modulation", "norm3.weight", "norm3.bias", "ffn.0.weight", "ffn.0.bias", "ffn.2.weight", "ffn.2.bias",
};
static const char * const top_keys[] = {
    "patch_embedding.weight", "patch_embedding.bias", "text_embedding.0.weight", "text_embedding.0.bias",
    "text_embedding.2.weight", "text_embedding.2.bias", "time_embedding.0.weight", "time_embedding.0.bias",
    "time_embedding.2.weight", "time_embedding.2.bias", "time_projection.1.weight", "time_projection.1.bias",
    "head.modulation", "head.head.weight", "head.head.bias",
};
#define N_ATTN  (sizeof block_attn_suffixes / sizeof block_attn_suffixes[0])
#define N_OTHER (sizeof block_other_suffixes / sizeof block_other_suffixes[0])
#define N_TOP   (sizeof top_keys / sizeof top_keys[0])

static bool in_list(const char * s, const char * const * list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0) return true;
    return false;
}

/* True when `key` is a state-dict key of a model with n_layers blocks. */
static bool key_expected(const char * key, int n_layers) {
    if (in_list(key, top_keys, N_TOP)) return true;
    if (strncmp(key, "blocks.", 7) != 0) return false;
    const char * p = key + 7;
    char * end = NULL;
    if (*p < '0' || *p > '9') return false;
    long idx = strtol(p, &end, 10);
    if (idx < 0 || idx >= n_layers || *end != '.' || (p[0] == '0' && end - p > 1)) return false;
    const char * sfx = end + 1;
    if (in_list(sfx, block_other_suffixes, N_OTHER)) return true;
    if (strncmp(sfx, "self_attn.", 10) == 0) return in_list(sfx + 10, block_attn_suffixes, N_ATTN);
    if (strncmp(sfx, "cross_attn.", 11) == 0) return in_list(sfx + 11, block_attn_suffixes, N_ATTN);
    return false;
}

/* Strict like the official load_state_dict, over the state dict the weights came from: when
 * they sat under a checkpoint wrapper ("state_dict.module."), keys outside it (optimizer
 * state, callbacks, an EMA copy) are the checkpoint's business, not the DiT's. */
static void check_unexpected(struct load_check * lc, int n_layers) {
    size_t       n    = infvsr_weights_count(lc->w);
    const char * wrap = infvsr_weights_wrapper_of(lc->w, "patch_embedding.weight");
    if (!wrap) wrap = ""; /* missing: reported by the lookups already */
    size_t       wl   = strlen(wrap);
    for (size_t i = 0; i < n; i++) {
        const char * key = infvsr_weights_key_at(lc->w, i);
        if (key && wl) {
            if (strncmp(key, wrap, wl) != 0) continue;
            key += wl;
        }
        if (key && !key_expected(key, n_layers)) {
            struct infvsr_err e;
            infvsr_err_set(&e, INFVSR_ERR_MODEL, "%s: unexpected key '%s' (not part of a %d-layer DiT)",
                           infvsr_weights_path(lc->w), key, n_layers);
            note_bad(lc, &e);
        }
    }
}

static void get_attn(struct load_check * lc, int i, const char * which, int64_t dim, struct dit_attn_weights * a) {
    struct infvsr_tensor * dst[N_ATTN] = { &a->q_w, &a->q_b, &a->k_w, &a->k_b, &a->v_w,
                                           &a->v_b, &a->o_w, &a->o_b, &a->norm_q, &a->norm_k };
    for (size_t j = 0; j < N_ATTN; j++) {
        char key[KEY_MAX];
        snprintf(key, sizeof key, "blocks.%d.%s.%s", i, which, block_attn_suffixes[j]);
        if (strstr(block_attn_suffixes[j], "norm") == NULL && strstr(block_attn_suffixes[j], "weight"))
            get2(lc, key, dim, dim, dst[j]);
        else
            get1(lc, key, dim, dst[j]);
    }
}

static void get_block(struct load_check * lc, int i, const struct infvsr_dit_config * cfg,
                      struct dit_block_weights * b) {
    char key[KEY_MAX];
    int64_t dim = cfg->dim, ffn = cfg->ffn_dim;
#define BKEY(sfx) (snprintf(key, sizeof key, "blocks.%d.%s", i, sfx), key)
    get3(lc, BKEY("modulation"), 1, 6, dim, &b->modulation);
    get_attn(lc, i, "self_attn", dim, &b->self_attn);
    get_attn(lc, i, "cross_attn", dim, &b->cross_attn);
    get1(lc, BKEY("norm3.weight"), dim, &b->norm3_w);
    get1(lc, BKEY("norm3.bias"), dim, &b->norm3_b);
    get2(lc, BKEY("ffn.0.weight"), ffn, dim, &b->ffn0_w);
    get1(lc, BKEY("ffn.0.bias"), ffn, &b->ffn0_b);
    get2(lc, BKEY("ffn.2.weight"), dim, ffn, &b->ffn2_w);
    get1(lc, BKEY("ffn.2.bias"), dim, &b->ffn2_b);
#undef BKEY
}

static enum infvsr_status check_config(const struct infvsr_dit_config * c, struct infvsr_err * err) {
    if (c->dim <= 0 || c->num_heads <= 0 || c->dim % c->num_heads != 0)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "dit config: dim %d not a positive multiple of num_heads %d",
                              c->dim, c->num_heads);
    int hd = c->dim / c->num_heads;
    if (hd % 2 != 0 || hd < 6)
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG, "dit config: head dim %d must be even and >= 6", hd);
    if (c->ffn_dim <= 0 || c->num_layers <= 0 || c->in_dim <= 0 || c->out_dim <= 0 || c->text_dim <= 0 ||
        c->freq_dim <= 0 || c->freq_dim % 2 != 0 || !(c->eps > 0))
        return infvsr_err_set(err, INFVSR_ERR_INVALID_ARG,
                              "dit config: ffn_dim, num_layers, in/out/text dims must be > 0, freq_dim even, eps > 0");
    return INFVSR_OK;
}

/* ---- weight import ---- */

/* Every weight tensor of the model, in one list (the import registers exactly these). */
static size_t weight_list(struct infvsr_dit * d, struct infvsr_tensor ** out) {
    size_t n = 0;
    struct infvsr_tensor * top[] = {
        &d->patch_w, &d->patch_b, &d->text0_w, &d->text0_b, &d->text2_w, &d->text2_b, &d->time0_w, &d->time0_b,
        &d->time2_w, &d->time2_b, &d->tproj_w, &d->tproj_b, &d->head_modulation, &d->head_w, &d->head_b,
    };
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++) out[n++] = top[i];
    for (int l = 0; l < d->cfg.num_layers; l++) {
        struct dit_block_weights * b = &d->blocks[l];
        const struct dit_attn_weights * at[2] = { &b->self_attn, &b->cross_attn };
        out[n++] = &b->modulation;
        for (int k = 0; k < 2; k++) {
            struct dit_attn_weights * a = (struct dit_attn_weights *)at[k];
            struct infvsr_tensor * t[] = { &a->q_w, &a->q_b, &a->k_w, &a->k_b, &a->v_w,
                                           &a->v_b, &a->o_w, &a->o_b, &a->norm_q, &a->norm_k };
            for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) out[n++] = t[i];
        }
        struct infvsr_tensor * o[] = { &b->norm3_w, &b->norm3_b, &b->ffn0_w, &b->ffn0_b, &b->ffn2_w, &b->ffn2_b };
        for (size_t i = 0; i < sizeof o / sizeof o[0]; i++) out[n++] = o[i];
    }
    return n;
}

#define DIT_TOP_WEIGHTS   15
#define DIT_BLOCK_WEIGHTS (1 + 2 * N_ATTN + 6)

/* The one import of the DiT's weights: register every tensor, commit once (views stay
 * views on a host-visible backend), then the derived view: the Conv3d(in_dim -> dim,
 * kernel = stride = (1,2,2)) as a linear on the channel-major flattened 2x2 patch (index
 * c*4 + dy*2 + dx), which is the weight's own memory order. */
static enum infvsr_status import_weights(struct infvsr_dit * d, struct infvsr_err * err) {
    size_t cap = DIT_TOP_WEIGHTS + (size_t)d->cfg.num_layers * DIT_BLOCK_WEIGHTS;
    struct infvsr_tensor ** list = malloc(cap * sizeof *list);
    if (!list) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "dit: no memory");
    size_t n = weight_list(d, list);
    INFVSR_ASSERT(n == cap);
    enum infvsr_status st = INFVSR_OK;
    for (size_t i = 0; i < n && st == INFVSR_OK; i++) st = infvsr_weight_set_add(&d->ws, list[i], 0, err);
    free(list);
    if (st == INFVSR_OK) st = infvsr_weight_set_commit(&d->ws, d->be, err);
    if (st != INFVSR_OK) {
        infvsr_err_prefix(err, "dit: weight import");
        return st;
    }
    d->patch_w.ndim = 2;
    d->patch_w.shape[0] = d->cfg.dim;
    d->patch_w.shape[1] = (int64_t)d->cfg.in_dim * 4;
    d->patch_w.shape[2] = d->patch_w.shape[3] = d->patch_w.shape[4] = 1;
    return INFVSR_OK;
}

/* ---- hoisted constants (computed on the backend) ---- */

enum infvsr_status dit_alloc(struct infvsr_backend * be, struct infvsr_tensor * t, const char * name,
                             enum infvsr_dtype dt, int ndim, const int64_t * shape, struct infvsr_err * err) {
    infvsr_tensor_setup(t, name, dt, ndim, shape);
    return infvsr_backend_tensor_alloc(be, t, err);
}

/* sinusoid(t) = [cos(t w_k)] ++ [sin(t w_k)], w_k = 10000^(-k/half), float64 on the host,
 * rounded to f32 and uploaded in the activation dtype (256 values, once per model). */
static enum infvsr_status upload_sinusoid(struct infvsr_dit * d, struct infvsr_tensor * out,
                                          struct infvsr_err * err) {
    int64_t fd = d->cfg.freq_dim, half = fd / 2;
    struct infvsr_tensor host = { 0 };
    int64_t s2[2] = { 1, fd };
    if (infvsr_tensor_alloc(&host, "dit.sinusoid", INFVSR_TYPE_F32, 2, s2) != INFVSR_OK)
        return infvsr_err_set(err, INFVSR_ERR_NOMEM, "dit: no memory");
    float * sv = host.data;
    for (int64_t k = 0; k < half; k++) {
        double a = INFVSR_DIT_TIMESTEP * pow(10000.0, -(double)k / (double)half);
        sv[k] = (float)cos(a);
        sv[half + k] = (float)sin(a);
    }
    enum infvsr_status st = infvsr_backend_upload(d->be, &host, d->act, out, err);
    infvsr_tensor_release(&host);
    return st;
}

static enum infvsr_status hoist_constants(struct infvsr_dit * d, struct infvsr_err * err) {
    struct infvsr_backend * be = d->be;
    const enum infvsr_dtype act = d->act;
    int64_t dim = d->cfg.dim, L = d->cfg.num_layers;
    struct infvsr_tensor sinus = { 0 }, h1 = { 0 }, e = { 0 }, se = { 0 }, tmod = { 0 };
    enum infvsr_status st;
    int64_t s2[2];

    if ((st = upload_sinusoid(d, &sinus, err)) != INFVSR_OK) goto done;
    infvsr_shape2(s2, 1, dim);
    if ((st = dit_alloc(be, &h1, "dit.time_h", act, 2, s2, err)) != INFVSR_OK) goto done;
    if ((st = dit_alloc(be, &e, "dit.e", act, 2, s2, err)) != INFVSR_OK) goto done;
    if ((st = dit_alloc(be, &se, "dit.silu_e", act, 2, s2, err)) != INFVSR_OK) goto done;
    infvsr_shape2(s2, 1, 6 * dim);
    if ((st = dit_alloc(be, &tmod, "dit.t_mod", act, 2, s2, err)) != INFVSR_OK) goto done;

    /* e = time_embedding.2(SiLU(time_embedding.0(sinusoid))); t_mod = time_projection.1(SiLU(e)) */
    if ((st = infvsr_op_linear(be, &sinus, &d->time0_w, &d->time0_b, INFVSR_UNARY_SILU, &h1, err)) != INFVSR_OK) goto done;
    if ((st = infvsr_op_linear(be, &h1, &d->time2_w, &d->time2_b, INFVSR_UNARY_COUNT, &e, err)) != INFVSR_OK) goto done;
    if ((st = infvsr_op_unary(be, INFVSR_UNARY_SILU, &e, &se, err)) != INFVSR_OK) goto done;
    if ((st = infvsr_op_linear(be, &se, &d->tproj_w, &d->tproj_b, INFVSR_UNARY_COUNT, &tmod, err)) != INFVSR_OK) goto done;

    /* mod[i] = blocks.i.modulation + t_mod: the weight converted into row block i by a
     * copy on the backend, then the add. */
    int64_t sm[3] = { L, 6, dim };
    if ((st = dit_alloc(be, &d->mod, "dit.mod", act, 3, sm, err)) != INFVSR_OK) goto done;
    for (int64_t i = 0; i < L; i++) {
        size_t off = (size_t)(i * 6 * dim) * infvsr_dtype_size(act);
        struct infvsr_tensor mi;
        int64_t s1[2] = { 1, 6 * dim };
        dit_view(&mi, &d->mod, off, "dit.mod_i", act, 2, s1);
        if ((st = infvsr_op_convert(be, &d->blocks[i].modulation, &mi, err)) != INFVSR_OK) goto done;
        if ((st = infvsr_op_add(be, &mi, &tmod, &mi, err)) != INFVSR_OK) goto done;
    }

    /* head_mod = head.modulation + e (no SiLU, no projection: MODEL-SPEC §4.6) */
    infvsr_shape2(s2, 2, dim);
    if ((st = dit_alloc(be, &d->head_mod, "dit.head_mod", act, 2, s2, err)) != INFVSR_OK) goto done;
    if ((st = infvsr_op_convert(be, &d->head_modulation, &d->head_mod, err)) != INFVSR_OK) goto done;
    for (int r = 0; r < 2; r++) {
        struct infvsr_tensor row, e1;
        dit_row(&row, &d->head_mod, r, dim);
        dit_row(&e1, &e, 0, dim);
        if ((st = infvsr_op_add(be, &row, &e1, &row, err)) != INFVSR_OK) goto done;
    }
    /* The temporaries are freed below: wait until the queued ops have read them. */
    st = infvsr_backend_synchronize(be, err);
done:
    infvsr_backend_tensor_free(be, &sinus);
    infvsr_backend_tensor_free(be, &h1);
    infvsr_backend_tensor_free(be, &e);
    infvsr_backend_tensor_free(be, &se);
    infvsr_backend_tensor_free(be, &tmod);
    if (st != INFVSR_OK) infvsr_err_prefix(err, "dit: time constants");
    return st;
}

/* ---- public ---- */

void dit_view(struct infvsr_tensor * t, const struct infvsr_tensor * base, size_t byte_offset, const char * name,
              enum infvsr_dtype dtype, int ndim, const int64_t * shape) {
    infvsr_tensor_view(t, name, dtype, ndim, shape, (char *)base->data + byte_offset);
    t->mem = base->mem;
}

void dit_row(struct infvsr_tensor * t, const struct infvsr_tensor * base, int64_t r, int64_t dim) {
    int64_t s[1] = { dim };
    dit_view(t, base, (size_t)(r * dim) * infvsr_dtype_size(base->dtype), base->name, base->dtype, 1, s);
}

void dit_rows(struct infvsr_tensor * t, const struct infvsr_tensor * base, int64_t n, int64_t cols) {
    int64_t s[2] = { n, cols };
    dit_view(t, base, 0, base->name, base->dtype, 2, s);
}

enum infvsr_status infvsr_dit_load(const struct infvsr_dit_config * cfg, const struct infvsr_weights * w,
                                   struct infvsr_backend * be, struct infvsr_dit ** out, struct infvsr_err * err) {
    *out = NULL;
    enum infvsr_status st = check_config(cfg, err);
    if (st != INFVSR_OK) return st;
    struct infvsr_dit * d = calloc(1, sizeof *d);
    if (!d) return infvsr_err_set(err, INFVSR_ERR_NOMEM, "dit: no memory");
    d->cfg = *cfg;
    d->head_dim = cfg->dim / cfg->num_heads;
    d->be = be;
    d->weights = w;
    struct infvsr_backend_caps caps;
    infvsr_backend_get_caps(be, &caps);
    d->act = caps.act_dtype;
    infvsr_weight_set_init(&d->ws);
    d->blocks = calloc((size_t)cfg->num_layers, sizeof *d->blocks);
    if (!d->blocks) {
        free(d);
        return infvsr_err_set(err, INFVSR_ERR_NOMEM, "dit: no memory");
    }

    struct load_check lc = { .w = w, .n_bad = 0 };
    int64_t dim = cfg->dim;
    int64_t sp[5] = { dim, cfg->in_dim, 1, 2, 2 };
    get_weight(&lc, "patch_embedding.weight", 5, sp, &d->patch_w);
    get1(&lc, "patch_embedding.bias", dim, &d->patch_b);
    get2(&lc, "text_embedding.0.weight", dim, cfg->text_dim, &d->text0_w);
    get1(&lc, "text_embedding.0.bias", dim, &d->text0_b);
    get2(&lc, "text_embedding.2.weight", dim, dim, &d->text2_w);
    get1(&lc, "text_embedding.2.bias", dim, &d->text2_b);
    get2(&lc, "time_embedding.0.weight", dim, cfg->freq_dim, &d->time0_w);
    get1(&lc, "time_embedding.0.bias", dim, &d->time0_b);
    get2(&lc, "time_embedding.2.weight", dim, dim, &d->time2_w);
    get1(&lc, "time_embedding.2.bias", dim, &d->time2_b);
    get2(&lc, "time_projection.1.weight", 6 * dim, dim, &d->tproj_w);
    get1(&lc, "time_projection.1.bias", 6 * dim, &d->tproj_b);
    get3(&lc, "head.modulation", 1, 2, dim, &d->head_modulation);
    get2(&lc, "head.head.weight", (int64_t)cfg->out_dim * 4, dim, &d->head_w);
    get1(&lc, "head.head.bias", (int64_t)cfg->out_dim * 4, &d->head_b);
    for (int i = 0; i < cfg->num_layers; i++) get_block(&lc, i, cfg, &d->blocks[i]);
    check_unexpected(&lc, cfg->num_layers);

    if (lc.n_bad > 0) {
        if (err) {
            *err = lc.first;
            err->status = INFVSR_ERR_MODEL;
            if (lc.n_bad > 1) {
                size_t len = strlen(err->msg);
                snprintf(err->msg + len, sizeof err->msg - len, " (and %d more problems)", lc.n_bad - 1);
            }
        }
        infvsr_dit_free(d);
        return INFVSR_ERR_MODEL;
    }

    if ((st = import_weights(d, err)) != INFVSR_OK) {
        infvsr_dit_free(d);
        return st;
    }
    st = hoist_constants(d, err);
    if (st != INFVSR_OK) {
        infvsr_dit_free(d);
        return st;
    }
    *out = d;
    return INFVSR_OK;
}

void infvsr_dit_free(struct infvsr_dit * d) {
    if (!d) return;
    infvsr_backend_tensor_free(d->be, &d->mod);
    infvsr_backend_tensor_free(d->be, &d->head_mod);
    infvsr_weight_set_release(&d->ws, d->be);
    free(d->blocks);
    free(d);
}

const struct infvsr_dit_config * infvsr_dit_config_of(const struct infvsr_dit * d) { return &d->cfg; }
enum infvsr_dtype                infvsr_dit_act_dtype(const struct infvsr_dit * d) { return d->act; }

size_t infvsr_dit_resident_bytes(const struct infvsr_dit * d) {
    return d->ws.resident_bytes + infvsr_tensor_nbytes(&d->mod) + infvsr_tensor_nbytes(&d->head_mod);
}

double infvsr_dit_chunk_flops(const struct infvsr_dit_config * c, int64_t n, int64_t n_cached, int64_t n_ctx) {
    double dim = c->dim, ffn = c->ffn_dim, L = c->num_layers, N = (double)n;
    double lin_per_block = N * (4.0 * dim * dim      /* self q, k, v, o   */
                                + 2.0 * dim * dim    /* cross q, o        */
                                + 2.0 * dim * ffn);  /* ffn.0, ffn.2      */
    double attn_per_block = 2.0 * N * (double)(n + n_cached) * dim  /* QK^T + AV, all heads */
                            + 2.0 * N * (double)n_ctx * dim;
    double outer = N * ((double)c->in_dim * 4.0 * dim + dim * (double)c->out_dim * 4.0);
    return 2.0 * (L * (lin_per_block + attn_per_block) + outer);
}
