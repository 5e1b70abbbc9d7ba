/* Builds the VAE from a checkpoint: every tensor is read (Appendix A key names), checked
 * (missing, wrong shape, wrong dtype and extra keys are all INFVSR_ERR_MODEL naming the
 * key) and registered for import into the model's backend; the named cache slots are
 * assigned (Appendix C). After the one weight_set commit the layers get their views: the
 * q/k/v row blocks of to_qkv, the mean rows of the top-level conv1, Conv2d weights as
 * [cout, cin, 1, kh, kw] and gammas as [C]. Views are made only then because on a device
 * backend the commit moves (and may convert) every tensor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infvsr/weights.h"
#include "vae/vae_internal.h"

#define KEY_MAX 128

/* A layer tensor that becomes a view of rows [row0, ...) of `src` once committed. */
struct view_fix {
    struct infvsr_tensor *       dst;
    const struct infvsr_tensor * src;
    int64_t                      row0;
    int                          ndim;
    int64_t                      shape[INFVSR_MAX_DIMS];
};

struct loader {
    struct infvsr_vae *           m;
    const struct infvsr_weights * w;
    const char *                  prefix;
    struct infvsr_err *           err;
    char (*used)[KEY_MAX];        /* keys consumed, for the extra-key check */
    size_t                        n_used, cap_used;
    struct view_fix *             fix;
    size_t                        n_fix, cap_fix;
};

/* Reads checkpoint tensor `key`, registers it for import and returns it in *out. */
static enum infvsr_status get(struct loader * L, const char * key, int ndim, const int64_t * shape,
                              const struct infvsr_tensor ** out) {
    struct infvsr_vae *  m = L->m;
    struct infvsr_tensor got;
    INFVSR_TRY(infvsr_weights_get(L->w, L->prefix, key, ndim, shape, &got, L->err));
    /* Every key is read once and exists, so the file's key count bounds n_raw. */
    INFVSR_ASSERT(m->n_raw < m->cap_raw);
    struct infvsr_tensor * t = &m->raw[m->n_raw];
    *t = got;
    if (t->dtype != INFVSR_TYPE_F32 && t->dtype != INFVSR_TYPE_BF16 && t->dtype != INFVSR_TYPE_F16) {
        return infvsr_err_set(L->err, INFVSR_ERR_MODEL, "vae: tensor '%s%s' has dtype %s (need f32, bf16 or f16)",
                              L->prefix, key, infvsr_dtype_name(t->dtype));
    }
    if (L->n_used == L->cap_used) {
        size_t cap = L->cap_used ? 2 * L->cap_used : 256;
        char (*u)[KEY_MAX] = realloc(L->used, cap * sizeof *u);
        if (!u) return infvsr_err_set(L->err, INFVSR_ERR_NOMEM, "out of memory");
        L->used = u;
        L->cap_used = cap;
    }
    INFVSR_TRY(infvsr_weight_set_add(&m->ws, t, 0, L->err));
    m->n_raw++;
    snprintf(L->used[L->n_used++], KEY_MAX, "%s%s", L->prefix, key);
    *out = t;
    return INFVSR_OK;
}

/* After commit, *dst becomes a view of rows [row0, ...) of src shaped (ndim, shape). */
static enum infvsr_status view_later(struct loader * L, struct infvsr_tensor * dst, const struct infvsr_tensor * src,
                                     int64_t row0, int ndim, const int64_t * shape) {
    if (L->n_fix == L->cap_fix) {
        size_t cap = L->cap_fix ? 2 * L->cap_fix : 256;
        struct view_fix * f = realloc(L->fix, cap * sizeof *f);
        if (!f) return infvsr_err_set(L->err, INFVSR_ERR_NOMEM, "out of memory");
        L->fix = f;
        L->cap_fix = cap;
    }
    struct view_fix * f = &L->fix[L->n_fix++];
    memset(f, 0, sizeof *f);
    f->dst  = dst;
    f->src  = src;
    f->row0 = row0;
    f->ndim = ndim;
    memcpy(f->shape, shape, (size_t)ndim * sizeof *shape);
    return INFVSR_OK;
}

static void apply_views(const struct loader * L) {
    for (size_t i = 0; i < L->n_fix; i++) {
        const struct view_fix *      f   = &L->fix[i];
        const struct infvsr_tensor * src = f->src;
        int64_t row = infvsr_tensor_numel(src) / src->shape[0];
        char *  d   = (char *)src->data + (size_t)(f->row0 * row) * infvsr_dtype_size(src->dtype);
        infvsr_tensor_view(f->dst, src->name, src->dtype, f->ndim, f->shape, d);
        f->dst->mem = src->mem;
    }
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

/* Loads `name`.weight/.bias, keeping output rows [0, rows) (rows = cout except for the
 * top-level conv1, of which only the mean rows are used). Conv2d weights (kt = 0) are
 * viewed as [rows, cin, 1, kh, kw]. */
static enum infvsr_status load_conv_rows(struct loader * L, const char * name, int cin, int cout, int rows, int kt,
                                         int kh, int kw, struct vae_conv * cv) {
    char key[KEY_MAX];
    const struct infvsr_tensor * w, * b;
    int64_t s5[5] = { cout, cin, kt, kh, kw }, s4[4] = { cout, cin, kh, kw }, sb[1] = { cout };
    int64_t v5[5] = { rows, cin, kt ? kt : 1, kh, kw }, vb[1] = { rows };
    if (snprintf(key, sizeof key, "%s.weight", name) >= (int)sizeof key)
        return infvsr_err_set(L->err, INFVSR_ERR_MODEL, "VAE: weight name too long: %s", name);
    INFVSR_TRY(kt == 0 ? get(L, key, 4, s4, &w) : get(L, key, 5, s5, &w));
    INFVSR_TRY(view_later(L, &cv->w, w, 0, 5, v5));
    if (snprintf(key, sizeof key, "%s.bias", name) >= (int)sizeof key)
        return infvsr_err_set(L->err, INFVSR_ERR_MODEL, "VAE: weight name too long: %s", name);
    INFVSR_TRY(get(L, key, 1, sb, &b));
    INFVSR_TRY(view_later(L, &cv->b, b, 0, 1, vb));
    cv->cin = cin; cv->cout = rows; cv->kt = kt ? kt : 1; cv->kh = kh; cv->kw = kw;
    cv->slot = -1;
    return INFVSR_OK;
}

static enum infvsr_status load_conv(struct loader * L, const char * name, int cin, int cout, int kt, int kh, int kw,
                                    struct vae_conv * cv) {
    return load_conv_rows(L, name, cin, cout, cout, kt, kh, kw, cv);
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
    const struct infvsr_tensor * t = NULL;
    INFVSR_TRY(get(L, key, ndim, shape, &t));
    return view_later(L, g, t, 0, 1, s1);
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
    const struct infvsr_tensor * qkv_w, * qkv_b, * proj_w, * proj_b;
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
    INFVSR_TRY(get(L, key, 1, sb, &proj_b));
    /* q, k, v are the channel blocks [0, c), [c, 2c), [2c, 3c) of to_qkv. */
    INFVSR_TRY(view_later(L, &a->wq, qkv_w, 0, 2, s2));
    INFVSR_TRY(view_later(L, &a->wk, qkv_w, c, 2, s2));
    INFVSR_TRY(view_later(L, &a->wv, qkv_w, 2 * c, 2, s2));
    INFVSR_TRY(view_later(L, &a->bq, qkv_b, 0, 1, s1));
    INFVSR_TRY(view_later(L, &a->bk, qkv_b, c, 1, s1));
    INFVSR_TRY(view_later(L, &a->bv, qkv_b, 2 * c, 1, s1));
    INFVSR_TRY(view_later(L, &a->wproj, proj_w, 0, 2, s2));
    return view_later(L, &a->bproj, proj_b, 0, 1, s1);
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
    INFVSR_TRY(load_conv_rows(L, "conv1", 2 * cfg->z_dim, 2 * cfg->z_dim, cfg->z_dim, 1, 1, 1, &m->quant_mean));
    INFVSR_TRY(load_conv(L, "conv2", cfg->z_dim, cfg->z_dim, 1, 1, 1, &m->post_quant));
    INFVSR_TRY(build_decoder(L, cfg, &m->dec));
    INFVSR_TRY(check_extra_keys(L));
    /* One import of every tensor (nothing moves on a host-memory backend), then the views. */
    INFVSR_TRY(infvsr_weight_set_commit(&m->ws, m->be, L->err));
    apply_views(L);
    return INFVSR_OK;
}

enum infvsr_status vae_build(struct infvsr_vae * m, const struct infvsr_weights * w, const char * prefix,
                             struct infvsr_err * err) {
    struct loader L = { .m = m, .w = w, .prefix = prefix, .err = err };
    enum infvsr_status st = INFVSR_OK;
    infvsr_weight_set_init(&m->ws);
    m->cap_raw = infvsr_weights_count(w);
    m->raw     = calloc(m->cap_raw ? m->cap_raw : 1, sizeof *m->raw);
    if (!m->raw) st = infvsr_err_set(err, INFVSR_ERR_NOMEM, "out of memory");
    if (st == INFVSR_OK) st = build_all(&L, &m->cfg);
    free(L.used);
    free(L.fix);
    return st;
}
