/* Builds the VAE from a checkpoint: weight views per layer (Appendix A key names), the
 * named cache slots (Appendix C), and the strict key check (missing, wrong shape, wrong
 * dtype and extra keys are all INFVSR_ERR_MODEL naming the key). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infvsr/weights.h"
#include "vae/vae_internal.h"

#define KEY_MAX 128

struct loader {
    struct infvsr_vae *           m;
    const struct infvsr_weights * w;
    const char *                  prefix;
    struct infvsr_err *           err;
    char (*used)[KEY_MAX];        /* keys consumed, for the extra-key check */
    size_t                        n_used, cap_used;
};

static enum infvsr_status get(struct loader * L, const char * key, int ndim, const int64_t * shape,
                              struct infvsr_tensor * out) {
    INFVSR_TRY(infvsr_weights_get(L->w, L->prefix, key, ndim, shape, out, L->err));
    if (out->dtype != INFVSR_TYPE_F32 && out->dtype != INFVSR_TYPE_BF16 && out->dtype != INFVSR_TYPE_F16) {
        return infvsr_err_set(L->err, INFVSR_ERR_MODEL, "vae: tensor '%s%s' has dtype %s (need f32, bf16 or f16)",
                              L->prefix, key, infvsr_dtype_name(out->dtype));
    }
    if (L->n_used == L->cap_used) {
        size_t cap = L->cap_used ? 2 * L->cap_used : 256;
        char (*u)[KEY_MAX] = realloc(L->used, cap * sizeof *u);
        if (!u) return infvsr_err_set(L->err, INFVSR_ERR_NOMEM, "out of memory");
        L->used = u;
        L->cap_used = cap;
    }
    snprintf(L->used[L->n_used++], KEY_MAX, "%s%s", L->prefix, key);
    return INFVSR_OK;
}

/* A view of rows [r0, r0 + n) of a tensor whose first axis is rows. */
static void row_view(struct infvsr_tensor * dst, const struct infvsr_tensor * src, int64_t r0, int64_t n,
                     int ndim, const int64_t * shape) {
    int64_t row = infvsr_tensor_numel(src) / src->shape[0];
    char *  d   = (char *)src->data + (size_t)(r0 * row) * infvsr_dtype_size(src->dtype);
    infvsr_tensor_view(dst, src->name, src->dtype, ndim, shape, d);
    (void)n;
}

static int add_slot(struct infvsr_vae * m, const char * key, enum vae_slot_kind kind, int channels, int shift) {
    INFVSR_ASSERT(m->n_slots < VAE_MAX_SLOTS);
    struct vae_slot * s = &m->slots[m->n_slots];
    /* "encoder.downsamples.3.residual.2" -> "vae.enc.downsamples.3.residual.2" */
    const char * rest = strchr(key, '.');
    snprintf(s->name, sizeof s->name, "vae.%s%s", strncmp(key, "encoder", 7) == 0 ? "enc" : "dec", rest ? rest : "");
    s->kind     = kind;
    s->channels = channels;
    s->shift    = shift;
    s->frames   = kind == VAE_SLOT_DOWN_TIME ? 1 : VAE_CACHE_T;
    return m->n_slots++;
}

/* Loads `name`.weight/.bias. Conv2d weights (kt = 0) are viewed as [cout, cin, 1, kh, kw]. */
static enum infvsr_status load_conv(struct loader * L, const char * name, int cin, int cout, int kt, int kh, int kw,
                                    struct vae_conv * cv) {
    char key[KEY_MAX];
    struct infvsr_tensor w;
    int64_t s5[5] = { cout, cin, kt, kh, kw }, s4[4] = { cout, cin, kh, kw }, sb[1] = { cout };
    if (snprintf(key, sizeof key, "%s.weight", name) >= (int)sizeof key)
        return infvsr_err_set(L->err, INFVSR_ERR_MODEL, "VAE: weight name too long: %s", name);
    if (kt == 0) {
        INFVSR_TRY(get(L, key, 4, s4, &w));
        s5[2] = 1;
        infvsr_tensor_view(&cv->w, w.name, w.dtype, 5, s5, w.data);
    } else {
        INFVSR_TRY(get(L, key, 5, s5, &cv->w));
    }
    if (snprintf(key, sizeof key, "%s.bias", name) >= (int)sizeof key)
        return infvsr_err_set(L->err, INFVSR_ERR_MODEL, "VAE: weight name too long: %s", name);
    INFVSR_TRY(get(L, key, 1, sb, &cv->b));
    cv->cin = cin; cv->cout = cout; cv->kt = kt ? kt : 1; cv->kh = kh; cv->kw = kw;
    cv->slot = -1;
    return INFVSR_OK;
}

static enum infvsr_status load_cached_conv(struct loader * L, const char * name, int cin, int cout, int shift,
                                           struct vae_conv * cv) {
    INFVSR_TRY(load_conv(L, name, cin, cout, 3, 3, 3, cv));
    cv->slot = add_slot(L->m, name, VAE_SLOT_CONV, cin, shift);
    return INFVSR_OK;
}

/* gamma stored as (C, 1, 1, 1) (or (C, 1, 1) in attention), viewed as [C]. */
static enum infvsr_status load_gamma(struct loader * L, const char * key, int c, int ndim, struct infvsr_tensor * g) {
    int64_t shape[4] = { c, 1, 1, 1 }, s1[1] = { c };
    struct infvsr_tensor t;
    INFVSR_TRY(get(L, key, ndim, shape, &t));
    infvsr_tensor_view(g, t.name, t.dtype, 1, s1, t.data);
    return INFVSR_OK;
}

static enum infvsr_status load_residual(struct loader * L, struct vae_layer * l, int cin, int cout, int shift) {
    char key[KEY_MAX];
    struct vae_residual * r = &l->u.res;
    l->kind = VAE_LAYER_RESIDUAL;
    snprintf(key, sizeof key, "%s.residual.0.gamma", l->name);
    INFVSR_TRY(load_gamma(L, key, cin, 4, &r->gamma1));
    snprintf(key, sizeof key, "%s.residual.2", l->name);
    INFVSR_TRY(load_cached_conv(L, key, cin, cout, shift, &r->conv1));
    snprintf(key, sizeof key, "%s.residual.3.gamma", l->name);
    INFVSR_TRY(load_gamma(L, key, cout, 4, &r->gamma2));
    snprintf(key, sizeof key, "%s.residual.6", l->name);
    INFVSR_TRY(load_cached_conv(L, key, cout, cout, shift, &r->conv2));
    r->has_shortcut = cin != cout;
    if (r->has_shortcut) {
        snprintf(key, sizeof key, "%s.shortcut", l->name);
        INFVSR_TRY(load_conv(L, key, cin, cout, 1, 1, 1, &r->shortcut));
    }
    return INFVSR_OK;
}

static enum infvsr_status load_attention(struct loader * L, struct vae_layer * l, int c) {
    char key[KEY_MAX];
    struct vae_attention * a = &l->u.attn;
    struct infvsr_tensor qkv_w, qkv_b, proj_w;
    int64_t sqkv[4] = { 3 * c, c, 1, 1 }, sb3[1] = { 3 * c }, sp[4] = { c, c, 1, 1 }, sb[1] = { c };
    int64_t s2[2] = { c, c }, s1[1] = { c };
    l->kind = VAE_LAYER_ATTENTION;
    a->dim  = c;
    snprintf(key, sizeof key, "%s.norm.gamma", l->name);
    INFVSR_TRY(load_gamma(L, key, c, 3, &a->gamma));
    snprintf(key, sizeof key, "%s.to_qkv.weight", l->name);
    INFVSR_TRY(get(L, key, 4, sqkv, &qkv_w));
    snprintf(key, sizeof key, "%s.to_qkv.bias", l->name);
    INFVSR_TRY(get(L, key, 1, sb3, &qkv_b));
    snprintf(key, sizeof key, "%s.proj.weight", l->name);
    INFVSR_TRY(get(L, key, 4, sp, &proj_w));
    snprintf(key, sizeof key, "%s.proj.bias", l->name);
    INFVSR_TRY(get(L, key, 1, sb, &a->bproj));
    /* q, k, v are the channel blocks [0, c), [c, 2c), [2c, 3c) of to_qkv. */
    row_view(&a->wq, &qkv_w, 0, c, 2, s2);
    row_view(&a->wk, &qkv_w, c, c, 2, s2);
    row_view(&a->wv, &qkv_w, 2 * c, c, 2, s2);
    row_view(&a->bq, &qkv_b, 0, c, 1, s1);
    row_view(&a->bk, &qkv_b, c, c, 1, s1);
    row_view(&a->bv, &qkv_b, 2 * c, c, 1, s1);
    infvsr_tensor_view(&a->wproj, proj_w.name, proj_w.dtype, 2, s2, proj_w.data);
    return INFVSR_OK;
}

/* mode: VAE_LAYER_DOWN2D/3D, UP2D/3D. `shift` is the input's spatial shift. */
static enum infvsr_status load_resample(struct loader * L, struct vae_layer * l, enum vae_layer_kind mode, int c,
                                        int shift) {
    char key[KEY_MAX];
    struct vae_resample * rs = &l->u.rs;
    bool up = mode == VAE_LAYER_UP2D || mode == VAE_LAYER_UP3D;
    l->kind = mode;
    snprintf(key, sizeof key, "%s.resample.1", l->name);
    INFVSR_TRY(load_conv(L, key, c, up ? c / 2 : c, 0, 3, 3, &rs->spatial));
    snprintf(key, sizeof key, "%s.time_conv", l->name);
    if (mode == VAE_LAYER_DOWN3D) {
        INFVSR_TRY(load_conv(L, key, c, c, 3, 1, 1, &rs->time));
        rs->time.slot = add_slot(L->m, key, VAE_SLOT_DOWN_TIME, c, shift + 1);
    } else if (mode == VAE_LAYER_UP3D) {
        INFVSR_TRY(load_conv(L, key, c, 2 * c, 3, 1, 1, &rs->time));
        rs->time.slot = add_slot(L->m, key, VAE_SLOT_UP_TIME, c, shift);
    }
    return INFVSR_OK;
}

static struct vae_layer * next_layer(struct vae_coder * c, const char * fmt, const char * part, int i) {
    INFVSR_ASSERT(c->n_layers < VAE_MAX_LAYERS);
    struct vae_layer * l = &c->layers[c->n_layers++];
    snprintf(l->name, sizeof l->name, fmt, part, i);
    return l;
}

static enum infvsr_status build_middle(struct loader * L, struct vae_coder * c, const char * part, int d, int shift) {
    INFVSR_TRY(load_residual(L, next_layer(c, "%s.middle.%d", part, 0), d, d, shift));
    INFVSR_TRY(load_attention(L, next_layer(c, "%s.middle.%d", part, 1), d));
    INFVSR_TRY(load_residual(L, next_layer(c, "%s.middle.%d", part, 2), d, d, shift));
    return INFVSR_OK;
}

static enum infvsr_status build_encoder(struct loader * L, const struct infvsr_vae_config * cfg, struct vae_coder * c) {
    int dims[5] = { cfg->dim };
    for (int i = 0; i < 4; i++) dims[i + 1] = cfg->dim * cfg->dim_mult[i];
    int shift = 0, idx = 0, cin = dims[0];
    c->first_slot = L->m->n_slots;
    INFVSR_TRY(load_cached_conv(L, "encoder.conv1", 3, dims[0], shift, &c->conv1));
    for (int i = 0; i < 4; i++) {
        int cout = dims[i + 1];
        for (int j = 0; j < cfg->num_res_blocks; j++, cin = cout) {
            INFVSR_TRY(load_residual(L, next_layer(c, "%s.downsamples.%d", "encoder", idx++), cin, cout, shift));
        }
        if (i != 3) {   /* temporal downsample = [False, True, True] */
            INFVSR_TRY(load_resample(L, next_layer(c, "%s.downsamples.%d", "encoder", idx++),
                              i == 0 ? VAE_LAYER_DOWN2D : VAE_LAYER_DOWN3D, cout, shift));
            shift++;
        }
    }
    INFVSR_TRY(build_middle(L, c, "encoder", cin, shift));
    INFVSR_TRY(load_gamma(L, "encoder.head.0.gamma", cin, 4, &c->head_gamma));
    INFVSR_TRY(load_cached_conv(L, "encoder.head.2", cin, 2 * cfg->z_dim, shift, &c->head));
    c->n_slots = L->m->n_slots - c->first_slot;
    return INFVSR_OK;
}

static enum infvsr_status build_decoder(struct loader * L, const struct infvsr_vae_config * cfg, struct vae_coder * c) {
    const int * mu = cfg->dim_mult;
    int dims[5] = { cfg->dim * mu[3], cfg->dim * mu[3], cfg->dim * mu[2], cfg->dim * mu[1], cfg->dim * mu[0] };
    int shift = 3, idx = 0;
    c->first_slot = L->m->n_slots;
    INFVSR_TRY(load_cached_conv(L, "decoder.conv1", cfg->z_dim, dims[0], shift, &c->conv1));
    INFVSR_TRY(build_middle(L, c, "decoder", dims[0], shift));
    int cout = dims[0];
    for (int i = 0; i < 4; i++) {
        int cin = i == 0 ? dims[0] : dims[i] / 2;
        cout = dims[i + 1];
        for (int j = 0; j < cfg->num_res_blocks + 1; j++, cin = cout) {
            INFVSR_TRY(load_residual(L, next_layer(c, "%s.upsamples.%d", "decoder", idx++), cin, cout, shift));
        }
        if (i != 3) {   /* temporal upsample = [True, True, False] */
            INFVSR_TRY(load_resample(L, next_layer(c, "%s.upsamples.%d", "decoder", idx++),
                              i < 2 ? VAE_LAYER_UP3D : VAE_LAYER_UP2D, cout, shift));
            shift--;
        }
    }
    INFVSR_TRY(load_gamma(L, "decoder.head.0.gamma", cout, 4, &c->head_gamma));
    INFVSR_TRY(load_cached_conv(L, "decoder.head.2", cout, 3, shift, &c->head));
    c->n_slots = L->m->n_slots - c->first_slot;
    return INFVSR_OK;
}

static enum infvsr_status check_extra_keys(struct loader * L) {
    size_t n = infvsr_weights_count(L->w);
    for (size_t i = 0; i < n; i++) {
        const char * key = infvsr_weights_key_at(L->w, i);
        bool found = false;
        for (size_t j = 0; j < L->n_used && !found; j++) found = strcmp(L->used[j], key) == 0;
        if (!found) {
            return infvsr_err_set(L->err, INFVSR_ERR_MODEL, "vae: unexpected tensor '%s' in %s (not a Wan 2.1 VAE key)",
                                  key, infvsr_weights_path(L->w));
        }
    }
    return INFVSR_OK;
}

static enum infvsr_status build_all(struct loader * L, const struct infvsr_vae_config * cfg) {
    struct infvsr_vae * m = L->m;
    INFVSR_TRY(build_encoder(L, cfg, &m->enc));
    /* Top-level conv1 (2z -> 2z, 1x1x1): only the mean rows [0, z) are used. */
    struct vae_conv full;
    INFVSR_TRY(load_conv(L, "conv1", 2 * cfg->z_dim, 2 * cfg->z_dim, 1, 1, 1, &full));
    int64_t sw[5] = { cfg->z_dim, 2 * cfg->z_dim, 1, 1, 1 }, sb[1] = { cfg->z_dim };
    m->quant_mean = full;
    m->quant_mean.cout = cfg->z_dim;
    row_view(&m->quant_mean.w, &full.w, 0, cfg->z_dim, 5, sw);
    row_view(&m->quant_mean.b, &full.b, 0, cfg->z_dim, 1, sb);
    INFVSR_TRY(load_conv(L, "conv2", cfg->z_dim, cfg->z_dim, 1, 1, 1, &m->post_quant));
    INFVSR_TRY(build_decoder(L, cfg, &m->dec));
    return check_extra_keys(L);
}

enum infvsr_status vae_build(struct infvsr_vae * m, const struct infvsr_weights * w, const char * prefix,
                             struct infvsr_err * err) {
    struct loader L = { .m = m, .w = w, .prefix = prefix, .err = err };
    enum infvsr_status st = build_all(&L, &m->cfg);
    free(L.used);
    return st;
}
